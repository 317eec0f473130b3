//! The reconciler end to end on the in-memory fake runtime, with tokio's clock paused: create,
//! rolling upgrade, automatic rollback, healing, crash-loop backoff, adoption after a restart,
//! delete. No Docker.
//!
//! Times are virtual: the controller reads the fake runtime's clock, which follows tokio's, so
//! a test waits minutes of backoff in no real time. No test asserts how long anything took in
//! real time; waits are bounded in virtual time only, and assertions compare the fake's
//! timestamps with each other.
//!
//! The store is `berth_store::memory::MemoryStore` (the apps area in memory, passing the same
//! conformance suite as SQLite). The clock is held still ([`hold_clock`]) and moves only when a
//! test steps it ([`World::until`], [`World::pass`]), each step after the store has answered a
//! ping, so a step never races a store answer — which also keeps the tests valid on a store
//! that answers from another thread (SQLite: swap [`new_store`]).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use berth_controller::{Controller, ControllerConfig, Drain, Endpoints};
use berth_core::backoff::Backoff;
use berth_core::health::Readiness;
use berth_core::{App, Event, EventKind, Probe, Revision, Rollout, RolloutPhase, Template};
use berth_engine::fake::{FakeRuntime, HttpAnswer};
use berth_engine::{ContainerState, ObservedContainer, labels};
use berth_store::memory::MemoryStore;
use berth_store::{AppStore, EventQuery, StoreError};

const NAMESPACE: &str = "t";
const V1: &str = "registry.test/web:v1";
const V2: &str = "registry.test/web:v2";
const BROKEN: &str = "registry.test/web:broken";
/// Longest virtual time a test waits for one outcome.
const PATIENCE: Duration = Duration::from_secs(30 * 60);

/// Virtual time per step of [`World::until`] and [`World::pass`].
const STEP: Duration = Duration::from_millis(100);

/// The store the tests run on.
async fn new_store() -> Arc<dyn AppStore> {
    Arc::new(MemoryStore::new())
}

const BACKOFF: Backoff = Backoff {
    base_ms: 1_000,
    cap_ms: 8_000,
    reset_after_ms: 30_000,
};

/// Keeps tokio's paused clock from advancing on its own until the returned sender is dropped:
/// a running blocking task inhibits auto-advance.
fn hold_clock() -> std::sync::mpsc::Sender<()> {
    let (hold, held) = std::sync::mpsc::channel::<()>();
    tokio::task::spawn_blocking(move || {
        let _ = held.recv();
    });
    hold
}

struct World {
    store: Arc<dyn AppStore>,
    fake: FakeRuntime,
    controller: Controller,
    _clock: std::sync::mpsc::Sender<()>,
}

impl World {
    async fn new() -> World {
        let clock = hold_clock();
        let store = new_store().await;
        let fake = FakeRuntime::new()
            .with_image(V1)
            .with_image(V2)
            .with_image(BROKEN);
        let controller = start_controller(&store, &fake);
        World {
            store,
            fake,
            controller,
            _clock: clock,
        }
    }

    /// Stops this controller and starts a new one on the same store and runtime (a restarted
    /// Berth: nothing kept in memory).
    async fn restart(&mut self) {
        self.controller.shut_down(Duration::from_secs(10)).await;
        self.controller = start_controller(&self.store, &self.fake);
    }

    async fn create(&self, name: &str, replicas: u32, template: Template) {
        let now = self.fake.now_ms();
        let spec = berth_core::AppSpec {
            template: template.clone(),
            replicas,
            strategy: berth_core::RolloutStrategy {
                progress_deadline_ms: 20_000,
                ..Default::default()
            },
            dependencies: Vec::new(),
            routes: Default::default(),
            idle_timeout_secs: None,
        };
        let app = App::created(name, "default", &spec, now);
        self.store
            .create_app(&app, &revision(name, 1, template, now))
            .await
            .expect("create app");
        self.controller.wake(name);
    }

    /// Deploys `template` as the app's next revision, as the API does.
    async fn deploy(&self, name: &str, template: Template) {
        let now = self.fake.now_ms();
        let mut app = self.app(name).await;
        let number = app.latest_revision + 1;
        app.latest_revision = number;
        app.current_revision = number;
        app.rollout = Rollout::start(number, "deploy", now);
        app.updated_at = now;
        self.store
            .add_revision(&app, &revision(name, number, template, now), 10)
            .await
            .expect("deploy");
        self.controller.wake(name);
    }

    /// Scales the app as the API does: re-read and retry when the reconciler wrote meanwhile.
    async fn scale(&self, name: &str, replicas: u32) {
        loop {
            let mut app = self.app(name).await;
            app.replicas = replicas;
            match self.store.update_app(&app).await {
                Ok(_) => break,
                Err(StoreError::Conflict(_)) => continue,
                Err(error) => panic!("scale: {error}"),
            }
        }
        self.controller.wake(name);
    }

    async fn app(&self, name: &str) -> App {
        self.store
            .get_app(name)
            .await
            .expect("get app")
            .expect("app exists")
    }

    async fn events(&self, name: &str) -> Vec<Event> {
        let query = EventQuery {
            after_id: None,
            limit: 10_000,
        };
        self.store.list_events(name, query).await.expect("events")
    }

    async fn count(&self, name: &str, kind: EventKind) -> usize {
        self.events(name)
            .await
            .iter()
            .filter(|e| e.kind == kind)
            .count()
    }

    /// The app's containers, by name.
    fn containers(&self, app: &str) -> Vec<ObservedContainer> {
        let mut all: Vec<_> = self
            .fake
            .containers()
            .into_iter()
            .filter(|c| label(c, labels::APP) == Some(app))
            .collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// The app's running containers, by name.
    fn running(&self, app: &str) -> Vec<ObservedContainer> {
        let mut running = self.containers(app);
        running.retain(|c| c.state == ContainerState::Running);
        running
    }

    /// Moves the clock one [`STEP`], once the store has caught up with what is queued.
    async fn step(&self) {
        self.store.ping().await.expect("ping");
        tokio::time::advance(STEP).await;
    }

    /// Lets `duration` of virtual time pass.
    async fn pass(&self, duration: Duration) {
        let until = tokio::time::Instant::now() + duration;
        while tokio::time::Instant::now() < until {
            self.step().await;
        }
    }

    /// Steps the clock until `check` gives a value.
    async fn until<T>(&self, what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
        let give_up = tokio::time::Instant::now() + PATIENCE;
        loop {
            if let Some(value) = check().await {
                return value;
            }
            assert!(
                tokio::time::Instant::now() < give_up,
                "gave up waiting for: {what}\ncontainers: {:#?}",
                self.fake.containers()
            );
            self.step().await;
        }
    }

    /// Waits until the app's rollout has ended in `phase` with every instance running.
    async fn settled(&self, name: &str, phase: RolloutPhase) -> App {
        self.until(&format!("{name} to settle in {phase:?}"), async || {
            let app = self.app(name).await;
            let running = self.running(name);
            (app.rollout.phase == phase
                && running.len() == app.replicas as usize
                && self.containers(name).len() == running.len())
            .then_some(app)
        })
        .await
    }
}

fn start_controller(store: &Arc<dyn AppStore>, fake: &FakeRuntime) -> Controller {
    let controller = new_controller(store, fake);
    controller.start();
    controller
}

/// A controller on the fake, not started yet.
fn new_controller(store: &Arc<dyn AppStore>, fake: &FakeRuntime) -> Controller {
    let config = ControllerConfig {
        namespace: NAMESPACE.to_owned(),
        backoff: BACKOFF,
        workers: 2,
        usage_interval: Duration::ZERO,
        ..ControllerConfig::default()
    };
    // The fake is both the runtime and what the probes reach.
    Controller::with_probe(
        Arc::clone(store),
        Arc::new(fake.clone()),
        Arc::new(fake.clone()),
        config,
        fake.clock(),
    )
}

fn revision(app: &str, number: u32, template: Template, now: i64) -> Revision {
    Revision {
        app: app.to_owned(),
        number,
        template,
        created_at: now,
        created_by: "test".to_owned(),
        reason: "test".to_owned(),
    }
}

/// A template of `image` probed for readiness every second.
fn template(image: &str) -> Template {
    Template {
        image: image.to_owned(),
        readiness: Some(Probe {
            failure_threshold: 1,
            ..Probe::default()
        }),
        ..Template::default()
    }
}

fn label<'a>(container: &'a ObservedContainer, key: &str) -> Option<&'a str> {
    container.labels.get(key).map(String::as_str)
}

fn ordinal(container: &ObservedContainer) -> u64 {
    label(container, labels::ORDINAL)
        .and_then(|o| o.parse().ok())
        .expect("ordinal label")
}

fn names(containers: &[ObservedContainer]) -> Vec<&str> {
    containers.iter().map(|c| c.name.as_str()).collect()
}

/// Every ordinal the app's containers ever had is distinct.
fn assert_ordinals_never_reused(fake: &FakeRuntime, app: &str) {
    let ordinals: Vec<u64> = fake
        .history()
        .iter()
        .filter(|c| label(c, labels::APP) == Some(app))
        .map(ordinal)
        .collect();
    let distinct: BTreeSet<u64> = ordinals.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        ordinals.len(),
        "an ordinal was reused: {ordinals:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn create_starts_every_replica_and_completes_the_rollout() {
    let w = World::new().await;
    w.create("web", 3, template(V1)).await;
    let app = w.settled("web", RolloutPhase::Complete).await;

    assert_eq!(
        names(&w.running("web")),
        ["t-web-1", "t-web-2", "t-web-3"],
        "slots from next_ordinal"
    );
    assert_eq!(app.next_ordinal, 4, "the taken slots are stored");
    assert_eq!(app.stable_revision, Some(1));
    let spec = w.fake.spec("t-web-1").expect("spec");
    assert_eq!(spec.network, "t-team-default");
    assert_eq!(
        spec.env.get("BERTH_INSTANCE").map(String::as_str),
        Some("web-1")
    );
    assert_eq!(w.count("web", EventKind::InstanceStarted).await, 3);
    assert_eq!(w.count("web", EventKind::InstanceReady).await, 3);
    assert_eq!(w.count("web", EventKind::RolloutComplete).await, 1);
}

#[tokio::test(start_paused = true)]
async fn rolling_upgrade_replaces_every_instance_within_the_surge() {
    let w = World::new().await;
    w.create("web", 3, template(V1)).await;
    w.settled("web", RolloutPhase::Complete).await;

    w.deploy("web", template(V2)).await;
    // max_unavailable 0: at every look, three instances are ready.
    let mut fewest = usize::MAX;
    let app = w
        .until("the upgrade to complete", async || {
            let app = w.app("web").await;
            let statuses = w.controller.instances(&app).await.expect("instances");
            let ready = statuses
                .iter()
                .filter(|s| matches!(s.readiness, Readiness::Ready { .. }))
                .count();
            fewest = fewest.min(ready);
            (app.rollout.phase == RolloutPhase::Complete && w.fake.containers().len() == 3)
                .then_some(app)
        })
        .await;
    assert_eq!(
        fewest, 3,
        "fewer instances ready than max_unavailable allows"
    );
    assert_eq!(app.stable_revision, Some(2));
    let running = w.running("web");
    assert!(running.iter().all(|c| c.image == V2), "{running:#?}");
    assert!(
        running.iter().all(|c| ordinal(c) >= 4),
        "new instances take new slots: {:?}",
        names(&running)
    );
    assert_eq!(app.next_ordinal, 7);
    assert_ordinals_never_reused(&w.fake, "web");
}

#[tokio::test(start_paused = true)]
async fn a_revision_that_never_gets_ready_is_rolled_back() {
    let w = World::new().await;
    w.create("web", 2, template(V1)).await;
    w.settled("web", RolloutPhase::Complete).await;
    let serving: Vec<String> = w.running("web").into_iter().map(|c| c.id).collect();

    w.fake.set_image_http(BROKEN, HttpAnswer::Status(503));
    w.deploy("web", template(BROKEN)).await;
    let app = w.settled("web", RolloutPhase::RolledBack).await;

    assert_eq!(app.current_revision, 1);
    assert_eq!(app.rollout.failed_revision, Some(2));
    let still: Vec<String> = w.running("web").into_iter().map(|c| c.id).collect();
    assert_eq!(still, serving, "the old instances served throughout");
    assert!(
        w.fake.history().iter().any(|c| c.image == BROKEN),
        "the broken revision was tried"
    );
    assert_eq!(w.count("web", EventKind::RolloutFailed).await, 1);
    assert_eq!(w.count("web", EventKind::RolledBack).await, 1);
    assert_ordinals_never_reused(&w.fake, "web");
}

#[tokio::test(start_paused = true)]
async fn tcp_probes_pass_on_a_connection_and_a_refused_one_gets_the_instance_replaced() {
    let w = World::new().await;
    // Its HTTP answers fail: only TCP probes let it become ready and stay.
    w.fake.set_image_http(V1, HttpAnswer::Status(503));
    let tcp = Template {
        readiness: Some(Probe {
            failure_threshold: 1,
            ..Probe::tcp()
        }),
        liveness: Some(Probe {
            failure_threshold: 2,
            ..Probe::tcp()
        }),
        ..template(V1)
    };
    w.create("web", 1, tcp).await;
    w.settled("web", RolloutPhase::Complete).await;
    let first = w.running("web")[0].clone();

    assert!(w.fake.set_http(&first.id, HttpAnswer::Refused));
    w.until("a replacement to be ready", async || {
        let running = w.running("web");
        let app = w.app("web").await;
        let statuses = w.controller.instances(&app).await.expect("instances");
        (running.len() == 1
            && running[0].id != first.id
            && statuses
                .iter()
                .any(|s| matches!(s.readiness, Readiness::Ready { .. })))
        .then_some(())
    })
    .await;
    let unhealthy: Vec<String> = w
        .events("web")
        .await
        .into_iter()
        .filter(|e| e.kind == EventKind::InstanceUnhealthy)
        .map(|e| e.message)
        .collect();
    assert_eq!(unhealthy.len(), 1, "{unhealthy:?}");
    assert!(
        unhealthy[0].contains("failed liveness 2 times (connection refused)"),
        "{unhealthy:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_killed_instance_is_replaced_in_a_new_slot() {
    let w = World::new().await;
    w.create("web", 2, template(V1)).await;
    w.settled("web", RolloutPhase::Complete).await;

    // Longer than the backoff's reset time: the kill does not count as a crash loop.
    w.pass(Duration::from_secs(60)).await;
    assert!(w.fake.kill("t-web-1"));
    let running = w
        .until("the killed instance to be replaced", async || {
            let running = w.running("web");
            (running.len() == 2 && w.fake.containers().len() == 2).then_some(running)
        })
        .await;
    assert_eq!(names(&running), ["t-web-2", "t-web-3"]);
    let replacement = &running[1];
    assert_eq!(
        label(replacement, labels::RESTARTS),
        Some("0"),
        "it ran long: no crash loop"
    );
    w.until("the crash and the replacement to be recorded", async || {
        let events = w.events("web").await;
        let crashed = events.iter().any(|e| {
            e.kind == EventKind::InstanceCrashed
                && e.params.get("code").map(String::as_str) == Some("137")
        });
        let replaced = events.iter().any(|e| {
            e.kind == EventKind::InstanceReplaced
                && e.params.get("old").map(String::as_str) == Some("web-1")
        });
        (crashed && replaced).then_some(())
    })
    .await;
    assert_eq!(w.app("web").await.next_ordinal, 4);
}

#[tokio::test(start_paused = true)]
async fn a_crash_loop_backs_off_exponentially() {
    let w = World::new().await;
    let mut crashing = template(V1);
    crashing.readiness = None;
    crashing.env.insert("EXIT_IMMEDIATELY".into(), "1".into());
    w.create("web", 1, crashing).await;

    let history = w
        .until("six attempts", async || {
            let history = w.fake.history();
            (history.len() >= 6).then_some(history)
        })
        .await;
    // Each replacement carries one more crash, and starts no earlier than its backoff allows
    // after its predecessor exited (measured on the runtime's clock).
    for (n, pair) in history.windows(2).take(5).enumerate() {
        let (before, after) = (&pair[0], &pair[1]);
        let restarts: u32 = label(after, labels::RESTARTS).unwrap().parse().unwrap();
        assert_eq!(restarts, n as u32 + 1, "crash count of attempt {}", n + 2);
        let waited = after.created_at_ms - before.finished_at_ms.expect("exited");
        let delay = BACKOFF.delay_ms(restarts) as i64;
        assert!(
            waited >= delay,
            "attempt {} started {waited} ms after the crash, before its {delay} ms backoff",
            n + 2
        );
    }
    let backoffs = w.count("web", EventKind::CrashLoopBackOff).await;
    assert!(backoffs >= 3, "{backoffs} crash-loop events");
    assert_ordinals_never_reused(&w.fake, "web");
}

#[tokio::test(start_paused = true)]
async fn a_restarted_controller_adopts_what_runs() {
    let mut w = World::new().await;
    w.create("web", 3, template(V1)).await;
    w.settled("web", RolloutPhase::Complete).await;
    let before = w.fake.history();

    w.restart().await;
    w.controller.wake("web");
    // Let several resyncs and probe rounds pass.
    w.pass(Duration::from_secs(120)).await;
    assert_eq!(
        w.fake.history(),
        before,
        "nothing restarted, duplicated or removed"
    );

    // Slots stay taken across the restart.
    w.scale("web", 4).await;
    let running = w
        .until("the fourth instance", async || {
            let running = w.running("web");
            (running.len() == 4).then_some(running)
        })
        .await;
    assert!(
        names(&running).contains(&"t-web-4"),
        "{:?}",
        names(&running)
    );
    assert_ordinals_never_reused(&w.fake, "web");
}

#[tokio::test(start_paused = true)]
async fn a_deleted_app_loses_its_instances() {
    let w = World::new().await;
    w.create("web", 2, template(V1)).await;
    w.create("api", 1, template(V1)).await;
    w.settled("web", RolloutPhase::Complete).await;
    w.settled("api", RolloutPhase::Complete).await;

    assert!(w.store.delete_app("web").await.expect("delete"));
    w.controller.wake("web");
    w.until("the deleted app's containers to go", async || {
        w.running("web").is_empty().then_some(())
    })
    .await;
    assert!(
        w.fake
            .containers()
            .iter()
            .all(|c| label(c, labels::APP) == Some("api"))
    );
    assert_eq!(
        names(&w.running("api")),
        ["t-api-1"],
        "other apps keep running"
    );
}

#[tokio::test(start_paused = true)]
async fn writes_racing_the_reconciler_never_reuse_a_slot() {
    let w = World::new().await;
    w.create("web", 1, template(V1)).await;
    // Each scale bumps the app's version while the reconciler stores slots it takes.
    for replicas in [3, 1, 4, 2, 5, 1, 3] {
        w.scale("web", replicas).await;
        w.step().await;
    }
    let app = w.settled("web", RolloutPhase::Complete).await;
    assert_eq!(w.running("web").len(), 3);
    assert_ordinals_never_reused(&w.fake, "web");
    let highest = w
        .fake
        .history()
        .iter()
        .map(ordinal)
        .max()
        .expect("instances");
    assert!(
        app.next_ordinal > highest,
        "next_ordinal {} not past {highest}",
        app.next_ordinal
    );
}

/// At each drain, records the instance's address, whether it was still in the endpoint table
/// and whether it was still running.
struct RecordingDrain {
    endpoints: Endpoints,
    fake: FakeRuntime,
    seen: Arc<std::sync::Mutex<Vec<(String, bool, bool)>>>,
}

#[async_trait::async_trait]
impl Drain for RecordingDrain {
    async fn drained(&self, address: &str, port: u16, _patience: Duration) {
        let in_table = self
            .endpoints
            .current()
            .values()
            .flatten()
            .any(|e| e.address == address && e.port == port);
        let running = self.fake.containers().iter().any(|c| {
            c.ip_address.as_deref() == Some(address) && c.state == ContainerState::Running
        });
        self.seen
            .lock()
            .unwrap()
            .push((address.to_owned(), in_table, running));
    }
}

/// The addresses the endpoint table gives `app`.
fn endpoint_addresses(endpoints: &Endpoints, app: &str) -> Vec<String> {
    endpoints
        .current()
        .get(app)
        .map(|list| list.iter().map(|e| e.address.clone()).collect())
        .unwrap_or_default()
}

fn addresses(containers: &[ObservedContainer]) -> Vec<String> {
    let mut addresses: Vec<String> = containers
        .iter()
        .filter_map(|c| c.ip_address.clone())
        .collect();
    addresses.sort();
    addresses
}

#[tokio::test(start_paused = true)]
async fn endpoints_follow_readiness_and_every_stop_leaves_them_first() {
    let w = World::new().await;
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let endpoints = w.controller.endpoints();
    w.controller.set_drain(Arc::new(RecordingDrain {
        endpoints: endpoints.clone(),
        fake: w.fake.clone(),
        seen: Arc::clone(&seen),
    }));
    w.create("web", 2, template(V1)).await;
    w.settled("web", RolloutPhase::Complete).await;
    let mut table = endpoint_addresses(&endpoints, "web");
    table.sort();
    assert_eq!(table, addresses(&w.running("web")), "both ready instances");

    // Failing readiness takes an instance out; passing again brings it back.
    let first = w.running("web")[0].clone();
    let first_address = first.ip_address.clone().expect("address");
    assert!(w.fake.set_http(&first.id, HttpAnswer::Status(503)));
    w.until("the failing instance to leave the table", async || {
        (!endpoint_addresses(&endpoints, "web").contains(&first_address)).then_some(())
    })
    .await;
    assert_eq!(endpoint_addresses(&endpoints, "web").len(), 1);
    // Each failed probe is counted for `/metrics`.
    let metrics = w.controller.metrics();
    assert!(metrics.probe_failures("web", "readiness") >= 1);
    assert_eq!(metrics.probe_failures("other", "readiness"), 0);
    assert!(w.fake.set_http(&first.id, HttpAnswer::Status(200)));
    w.until("the instance to come back", async || {
        (endpoint_addresses(&endpoints, "web").len() == 2).then_some(())
    })
    .await;

    // A rolling upgrade: each old instance leaves the table before it is stopped.
    let old = addresses(&w.running("web"));
    w.deploy("web", template(V2)).await;
    w.until("the upgrade to complete", async || {
        let app = w.app("web").await;
        (app.rollout.phase == RolloutPhase::Complete && w.fake.containers().len() == 2)
            .then_some(())
    })
    .await;
    let mut table = endpoint_addresses(&endpoints, "web");
    table.sort();
    assert_eq!(
        table,
        addresses(&w.running("web")),
        "only the new instances"
    );
    let drained: Vec<(String, bool, bool)> = seen.lock().unwrap().clone();
    let mut drained_addresses: Vec<String> = drained.iter().map(|d| d.0.clone()).collect();
    drained_addresses.sort();
    assert_eq!(drained_addresses, old, "every old instance was drained");
    for (address, in_table, running) in &drained {
        assert!(!in_table, "{address} was drained while still in the table");
        assert!(running, "{address} was stopped before its drain");
    }

    // Deleting the app empties its entry at once.
    assert!(w.store.delete_app("web").await.expect("delete"));
    w.controller.wake("web");
    w.until("the deleted app to leave the table", async || {
        (!endpoints.current().contains_key("web")).then_some(())
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_deleted_apps_probe_failures_are_forgotten() {
    let w = World::new().await;
    w.create("web", 1, template(V1)).await;
    w.settled("web", RolloutPhase::Complete).await;
    let instance = w.running("web")[0].clone();
    assert!(w.fake.set_http(&instance.id, HttpAnswer::Status(503)));
    let metrics = w.controller.metrics().clone();
    w.until("a failed probe to be counted", async || {
        (metrics.probe_failures("web", "readiness") > 0).then_some(())
    })
    .await;
    w.controller.remove_instances("web").await.expect("remove");
    assert_eq!(metrics.probe_failures("web", "readiness"), 0);
}

#[tokio::test(start_paused = true)]
async fn a_paused_controller_changes_nothing_until_it_resumes() {
    let w = World::new().await;
    w.create("web", 2, template(V1)).await;
    w.settled("web", RolloutPhase::Complete).await;

    let paused = w.controller.pause().await;
    w.scale("web", 4).await;
    w.pass(Duration::from_secs(30)).await;
    assert_eq!(w.running("web").len(), 2, "nothing starts while paused");

    drop(paused);
    w.until("the scale-up after resuming", async || {
        (w.running("web").len() == 4).then_some(())
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_successor_routes_to_the_handed_over_instances_from_its_first_reconcile() {
    let mut w = World::new().await;
    w.create("web", 2, template(V1)).await;
    w.settled("web", RolloutPhase::Complete).await;
    let handed_over = w.controller.endpoints().current();
    assert_eq!(handed_over.get("web").map(Vec::len), Some(2));

    // A new controller (a new server process) seeded with the old one's table keeps both
    // instances in its table while its own probes start: none is taken out as "unknown".
    w.controller.shut_down(Duration::from_secs(10)).await;
    w.controller = new_controller(&w.store, &w.fake);
    w.controller.seed_ready_endpoints((*handed_over).clone());
    assert_eq!(w.controller.endpoints().current(), handed_over);
    w.controller.start();
    w.controller.wake("web");
    for _ in 0..20 {
        w.step().await;
        assert_eq!(
            endpoint_addresses(&w.controller.endpoints(), "web").len(),
            2,
            "the seeded instances stay in the table"
        );
    }
    // The seed is no promise: an instance that dies leaves the table as usual.
    assert!(w.fake.kill("t-web-1"));
    w.until("the dead instance out of the table", async || {
        let endpoints = w.controller.endpoints().current();
        endpoints
            .get("web")
            .is_some_and(|list| list.iter().all(|e| e.instance != "web-1"))
            .then_some(())
    })
    .await;
}
