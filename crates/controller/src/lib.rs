//! Berth's control loops: the glue between the store, the engine and the pure core.
//!
//! * the **reconciler** ([`reconcile`]) is level-triggered: it reads desired state from the
//!   store and observed state from the engine, asks `berth_core::planner` what to do, and
//!   executes the actions; a keyed [`queue::WorkQueue`] guarantees one app is never reconciled
//!   twice at once;
//! * the **engine watcher** turns engine events into wake-ups, and a periodic **resync**
//!   catches whatever events miss;
//! * the **prober** ([`prober`]) probes instances over HTTP or TCP and wakes the reconciler
//!   when an instance's health changes;
//! * the **usage sampler** ([`usage`]) samples every running instance's CPU and memory use
//!   each `usage_interval` and keeps the last minute, read through a [`UsageBook`];
//! * the **node monitor** ([`nodes`]) samples each node's CPU, memory and disks, judges it
//!   against the thresholds and records when a node runs low or recovers.
//!
//! Before any of them acts, the server claims the engine namespace ([`claim`]): a namespace
//! another installation holds is refused.

pub mod canary;
pub mod claim;
pub mod endpoints;
pub mod flows;
pub mod host;
pub mod leadership;
pub mod metrics;
pub mod nodes;
pub mod prober;
pub mod queue;
pub mod reconcile;
pub mod sharing;
pub mod usage;
pub mod workers;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_core::backoff::Backoff;
use berth_core::planner::{BackOff, StartFailure};
use berth_core::{Event, Millis};
use berth_engine::probe::InstanceProbe;
use berth_engine::{Runtime, labels};
use berth_store::AppStore;
use futures::StreamExt;

pub use canary::TrafficSource;
pub use endpoints::{Drain, Endpoint, EndpointMap, Endpoints};
pub use prober::{HostProbe, Prober};
pub use queue::WorkQueue;
pub use reconcile::InstanceStatus;
pub use usage::{InstanceUsage, UsageBook};

/// The platform's clock (one definition, in the core).
pub use berth_core::clock::{Clock, system_clock};

/// Settings of the control loops.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// Engine namespace: labels, container-name prefix and network name of this installation.
    pub namespace: String,
    /// Every app is reconciled at least this often, events or not.
    pub resync_interval: Duration,
    /// Revisions kept per app.
    pub revision_history: u32,
    /// Events kept per app.
    pub event_history: u32,
    /// Crash-loop backoff.
    pub backoff: Backoff,
    /// Reconciles running at once (for different apps).
    pub workers: usize,
    /// The credential the engine pulls from the built-in registry with (user, password), at
    /// any of its hosts; none: the engine pulls anonymously.
    pub pull_credential: Option<(String, String)>,
    /// The built-in registry's hosts (see [`berth_core::image_ref::RegistryHosts`]).
    pub registry_hosts: berth_core::image_ref::RegistryHosts,
    /// How often every running instance's CPU and memory use is sampled; zero turns the
    /// sampler off.
    pub usage_interval: Duration,
    /// Where the usage sampler tells admins how its rounds go (the server's workers).
    pub usage_report: Option<workers::WorkerReport>,
    /// How long a stop waits at most for the requests in flight to an instance taken out of
    /// the endpoint table.
    pub drain_patience: Duration,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            namespace: "berth".into(),
            resync_interval: Duration::from_secs(30),
            revision_history: 10,
            event_history: 1_000,
            backoff: Backoff::default(),
            workers: 4,
            pull_credential: None,
            registry_hosts: Default::default(),
            usage_interval: Duration::from_secs(5),
            usage_report: None,
            drain_patience: Duration::from_secs(30),
        }
    }
}

/// State shared by the loops.
pub struct Shared {
    pub store: Arc<dyn AppStore>,
    /// The instance runtime (the controller needs nothing else from the engine).
    pub runtime: Arc<dyn Runtime>,
    pub config: ControllerConfig,
    pub queue: Arc<WorkQueue>,
    pub prober: Prober,
    /// The latest CPU and memory use of every running instance.
    pub usage: UsageBook,
    /// Reconcile durations and errors, probe failures (read by `/metrics`).
    pub metrics: metrics::ControllerMetrics,
    pub clock: Clock,
    /// How the prober reaches instances (HTTP requests and TCP connects from the host, or a
    /// fake's answers).
    pub(crate) probe: Arc<dyn InstanceProbe>,
    /// The instances that may receive traffic now (a router subscribes).
    pub endpoints: Endpoints,
    /// What a stop waits for once its instance left the endpoint table (the router's
    /// in-flight requests), when a router is running.
    pub(crate) drain: std::sync::OnceLock<Arc<dyn Drain>>,
    /// Where the values of apps' secrets come from at an instance's start.
    pub(crate) secrets: std::sync::OnceLock<Arc<dyn SecretSource>>,
    /// The router's per-instance counts a canary is judged on, when a router is running.
    pub(crate) traffic: std::sync::OnceLock<Arc<dyn TrafficSource>>,
    /// Where every wake is also handed when several servers share the store (a follower
    /// tells the leader).
    pub(crate) wake_relay: std::sync::OnceLock<WakeRelay>,
    /// When [`Controller::start`] ran (unix ms).
    pub(crate) started_at: std::sync::OnceLock<Millis>,
    /// Where each canary being judged started counting.
    pub(crate) canary_counts: canary::CanaryCounts,
    /// Containers Berth has asked to stop, with when it asked.
    pub(crate) terminating: Mutex<HashMap<String, Millis>>,
    /// The latest failure to start an instance, per app.
    pub(crate) start_failures: Mutex<HashMap<String, StartFailure>>,
    /// Replacements held back by crash-loop backoff, per app (for status output).
    pub(crate) backing_off: Mutex<HashMap<String, Vec<BackOff>>>,
    /// Keys of one-off events already recorded, per app (so they are not repeated).
    pub(crate) reported: Mutex<HashMap<String, std::collections::HashSet<String>>>,
    /// Consecutive failed reconciles per app (engine or store unreachable), for backoff.
    pub(crate) failures: Mutex<HashMap<String, u32>>,
    /// The last engine error, when the engine is failing.
    pub(crate) engine_error: Mutex<Option<String>>,
    /// Set when the server stops: workers finish the reconcile in hand and take no other.
    stopping: tokio::sync::watch::Sender<bool>,
    /// Held (read) by every reconcile; [`Controller::pause`] takes it (write) so that none runs.
    reconciling: Arc<tokio::sync::RwLock<()>>,
    /// The reconcile workers, awaited at shutdown.
    workers: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

/// Where a server hands the wakes of its API when another server may run the controllers.
pub type WakeRelay = Arc<dyn Fn(&str) + Send + Sync>;

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    /// Records events; a store failure is logged, never fatal to a loop.
    pub(crate) async fn record_events(&self, events: Vec<Event>) {
        if events.is_empty() {
            return;
        }
        for event in &events {
            tracing::info!(app = %event.app, kind = event.kind.as_str(), "{}", event.message);
        }
        if let Err(error) = self
            .store
            .append_events(&events, self.config.event_history)
            .await
        {
            tracing::warn!(%error, "could not record events");
        }
    }

    /// Forgets the recorded health of containers that are going (in the background: a stop
    /// never waits on it).
    pub(crate) fn forget_recorded_health(&self, container_ids: Vec<String>) {
        if container_ids.is_empty() {
            return;
        }
        let store = Arc::clone(&self.store);
        tokio::spawn(async move {
            if let Err(error) = store.forget_instance_health(&container_ids).await {
                tracing::debug!(%error, "cannot forget the recorded health of stopped instances");
            }
        });
    }

    /// The credential to pull `image` with: the system credential when the image is in the
    /// built-in registry (at any of its hosts), else none (never handed to another registry).
    pub fn pull_auth(&self, image: &str) -> Option<berth_engine::RegistryAuth> {
        let (username, password) = self.config.pull_credential.as_ref()?;
        let host = image.trim().split_once('/').map(|(host, _)| host)?;
        let ours = self
            .config
            .registry_hosts
            .get()
            .iter()
            .any(|h| h.eq_ignore_ascii_case(host));
        ours.then(|| berth_engine::RegistryAuth {
            username: username.clone(),
            password: password.clone(),
            server: host.to_string(),
        })
    }

    /// This installation's app instances (of one app, if given), as the engine lists them.
    ///
    /// Labels alone do not make an instance: an image can carry any label, and so do the
    /// containers made from it (a build's intermediate containers among them). A container
    /// counts only when it also bears the name Berth gave it, `<namespace>-<app>-<ordinal>`,
    /// which no image and no build can choose.
    pub async fn list_instances(
        &self,
        app: Option<&str>,
    ) -> Result<Vec<berth_engine::ObservedContainer>, berth_engine::EngineError> {
        let containers = self
            .runtime
            .list_containers(&self.label_filter(app))
            .await?;
        Ok(containers
            .into_iter()
            .filter(|c| is_named_instance(&self.config.namespace, c))
            .collect())
    }

    /// The label filter selecting this installation's containers (of one app, if given).
    pub fn label_filter(&self, app: Option<&str>) -> BTreeMap<String, String> {
        let mut filter =
            BTreeMap::from([(labels::NAMESPACE.to_string(), self.config.namespace.clone())]);
        if let Some(app) = app {
            filter.insert(labels::APP.to_string(), app.to_string());
        }
        filter
    }
}

/// Whether a container's Berth labels agree with the name Berth gives an instance.
fn is_named_instance(namespace: &str, container: &berth_engine::ObservedContainer) -> bool {
    let get = |key: &str| container.labels.get(key).map(String::as_str);
    match (
        get(labels::APP),
        get(labels::INSTANCE),
        get(labels::ORDINAL),
    ) {
        (Some(app), Some(instance), Some(ordinal)) if !app.is_empty() => {
            instance == format!("{app}-{ordinal}")
                && container.name == format!("{namespace}-{instance}")
        }
        _ => false,
    }
}

/// Where the values of an app's secrets come from at instance start (the application layer
/// opens them from the store with the server's key).
#[async_trait::async_trait]
pub trait SecretSource: Send + Sync + 'static {
    /// The value of version `version` of `team`'s secret `name`, or why it cannot be had.
    async fn secret_value(&self, team: &str, name: &str, version: u32) -> Result<Vec<u8>, String>;
}

/// The control plane's loops, started once per server.
#[derive(Clone)]
pub struct Controller {
    shared: Arc<Shared>,
}

impl Controller {
    /// The loops over `store` and `runtime`, probing instances over plain HTTP from this host.
    pub fn new(
        store: Arc<dyn AppStore>,
        runtime: Arc<dyn Runtime>,
        config: ControllerConfig,
        clock: Clock,
    ) -> Self {
        Self::with_probe(store, runtime, Arc::new(HostProbe::new()), config, clock)
    }

    /// The loops with health probes sent through `probe` (a fake runtime answers them itself).
    pub fn with_probe(
        store: Arc<dyn AppStore>,
        runtime: Arc<dyn Runtime>,
        probe: Arc<dyn InstanceProbe>,
        config: ControllerConfig,
        clock: Clock,
    ) -> Self {
        Controller {
            shared: Arc::new(Shared {
                store,
                runtime,
                config,
                queue: WorkQueue::new(),
                prober: Prober::default(),
                usage: UsageBook::default(),
                metrics: metrics::ControllerMetrics::default(),
                clock,
                probe,
                endpoints: Endpoints::default(),
                drain: std::sync::OnceLock::new(),
                secrets: std::sync::OnceLock::new(),
                traffic: std::sync::OnceLock::new(),
                wake_relay: std::sync::OnceLock::new(),
                started_at: std::sync::OnceLock::new(),
                canary_counts: canary::CanaryCounts::default(),
                terminating: Mutex::new(HashMap::new()),
                start_failures: Mutex::new(HashMap::new()),
                backing_off: Mutex::new(HashMap::new()),
                reported: Mutex::new(HashMap::new()),
                failures: Mutex::new(HashMap::new()),
                engine_error: Mutex::new(None),
                stopping: tokio::sync::watch::Sender::new(false),
                reconciling: Arc::default(),
                workers: Mutex::new(Vec::new()),
            }),
        }
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The instances that may receive traffic, live (see [`endpoints`]).
    pub fn endpoints(&self) -> Endpoints {
        self.shared.endpoints.clone()
    }

    /// Opens apps' secrets with `source` when their instances start; set once, by the server.
    /// Without it an app that uses secrets cannot start (its start fails saying why).
    pub fn set_secrets(&self, source: Arc<dyn SecretSource>) {
        let _ = self.shared.secrets.set(source);
    }

    /// Makes every stop wait for `drain` (at most [`ControllerConfig::drain_patience`]) after
    /// its instance left the endpoint table; set once, by the server that runs a router.
    pub fn set_drain(&self, drain: Arc<dyn Drain>) {
        let _ = self.shared.drain.set(drain);
    }

    /// Judges canaries on `traffic` (the router's counts); without it a canary passes on its
    /// health checks alone. Set once, by the server that runs a router.
    pub fn set_traffic_source(&self, traffic: Arc<dyn TrafficSource>) {
        let _ = self.shared.traffic.set(traffic);
    }

    /// Starts the workers, the engine-event watcher, the periodic resync and the usage
    /// sampler.
    pub fn start(&self) {
        let _ = self.shared.started_at.set((self.shared.clock)());
        let mut workers = lock(&self.shared.workers);
        for _ in 0..self.shared.config.workers.max(1) {
            workers.push(tokio::spawn(worker(Arc::clone(&self.shared))));
        }
        drop(workers);
        tokio::spawn(watch_engine(Arc::clone(&self.shared)));
        tokio::spawn(resync(Arc::clone(&self.shared)));
        tokio::spawn(usage::run(Arc::clone(&self.shared)));
    }

    /// Holds every reconcile back until the returned guard is dropped, once the ones in hand
    /// have finished: while it is held the controller changes nothing (apps' wakes wait in the
    /// queue). A server handing over to its successor pauses before it takes the snapshot of
    /// ready instances the successor starts from.
    pub async fn pause(&self) -> Paused {
        Paused {
            _guard: Arc::clone(&self.shared.reconciling).write_owned().await,
        }
    }

    /// Sets the instances that may take traffic to those a predecessor server saw ready, and
    /// their health to ready (until this server's own probes say otherwise), so a successor
    /// routes to them from its first request instead of waiting for its probes.
    pub fn seed_ready_endpoints(&self, endpoints: EndpointMap) {
        let now = (self.shared.clock)();
        for (app, list) in endpoints {
            for endpoint in &list {
                self.shared.prober.seed_ready(&endpoint.container_id, now);
            }
            self.shared.endpoints.set_app(&app, list);
        }
    }

    /// Stops reconciling: each worker finishes the reconcile in hand (so no container is left
    /// half made by a server that exits mid-request) and takes no other. Waits up to
    /// `patience` for them.
    pub async fn shut_down(&self, patience: Duration) {
        self.shared.stopping.send_replace(true);
        let workers: Vec<_> = lock(&self.shared.workers).drain(..).collect();
        if tokio::time::timeout(patience, futures::future::join_all(workers))
            .await
            .is_err()
        {
            tracing::warn!("reconciles still running at shutdown were abandoned");
        }
    }

    /// The latest CPU and memory use of every running instance (see [`usage`]).
    pub fn usage(&self) -> UsageBook {
        self.shared.usage.clone()
    }

    /// Records events in the apps' timelines (the platform's one event recorder: the
    /// controller's loops and the application layer both write through it).
    pub async fn record(&self, events: Vec<Event>) {
        self.shared.record_events(events).await;
    }

    /// Asks for a reconcile of `app` soon: here, and through the wake relay, when one is set,
    /// on the server that runs the controllers.
    pub fn wake(&self, app: &str) {
        self.shared.queue.add(app);
        if let Some(relay) = self.shared.wake_relay.get() {
            relay(app);
        }
    }

    /// Asks for a reconcile of `app` soon on this server only (a wake another server relayed).
    pub fn wake_here(&self, app: &str) {
        self.shared.queue.add(app);
    }

    /// Hands every [`wake`](Self::wake) to `relay` as well; set once, by a server that shares
    /// its store with others.
    pub fn set_wake_relay(&self, relay: WakeRelay) {
        let _ = self.shared.wake_relay.set(relay);
    }

    /// The instances of `app` as observed now, with their health.
    pub async fn instances(
        &self,
        app: &berth_core::App,
    ) -> Result<Vec<InstanceStatus>, berth_engine::EngineError> {
        reconcile::instance_statuses(&self.shared, app).await
    }

    /// The instances of each of `apps`, with one engine listing.
    pub async fn instances_of_all(
        &self,
        apps: &[berth_core::App],
    ) -> Result<HashMap<String, Vec<InstanceStatus>>, berth_engine::EngineError> {
        reconcile::instance_statuses_of_all(&self.shared, apps).await
    }

    /// Stops and removes every container of `app` (used when the app is deleted).
    pub async fn remove_instances(&self, app: &str) -> Result<usize, berth_engine::EngineError> {
        let removed = reconcile::remove_all(&self.shared, app).await;
        // After the containers (and with them their probe loops) are gone.
        self.shared.metrics.forget_app(app);
        removed
    }

    /// The controller's metric handles (reconciles, probe failures).
    pub fn metrics(&self) -> &metrics::ControllerMetrics {
        &self.shared.metrics
    }

    /// Apps waiting in the work queue to be reconciled.
    pub fn queue_depth(&self) -> usize {
        self.shared.queue.len()
    }

    /// The last engine error, while the engine is failing.
    pub fn engine_error(&self) -> Option<String> {
        lock(&self.shared.engine_error).clone()
    }
}

/// Reconciles held back while it lives ([`Controller::pause`]).
#[derive(Debug)]
pub struct Paused {
    _guard: tokio::sync::OwnedRwLockWriteGuard<()>,
}

async fn worker(shared: Arc<Shared>) {
    let mut stopping = shared.stopping.subscribe();
    loop {
        let app = tokio::select! {
            app = shared.queue.next() => app,
            _ = stopping.wait_for(|stop| *stop) => return,
        };
        if *stopping.borrow() {
            return;
        }
        let permit = tokio::select! {
            permit = Arc::clone(&shared.reconciling).read_owned() => permit,
            _ = stopping.wait_for(|stop| *stop) => return,
        };
        // Run each reconcile as its own task so a panic in it cannot take the worker (and the
        // app's queue slot) down with it: the app is retried after a pause instead.
        let task = tokio::spawn({
            let shared = Arc::clone(&shared);
            let app = app.clone();
            async move {
                let _permit = permit;
                reconcile::reconcile(&shared, &app).await
            }
        });
        let requeue = match task.await {
            Ok(requeue) => requeue,
            Err(error) => {
                shared.metrics.reconciled("panic", 0.0);
                tracing::error!(app = %app, %error, "reconcile panicked; retrying in 5 s");
                Some(Duration::from_secs(5))
            }
        };
        shared.queue.done(&app);
        if let Some(delay) = requeue {
            shared.queue.add_after(&app, delay);
        }
    }
}

/// Wakes the app of every engine event about one of our containers; re-subscribes with
/// backoff when the stream breaks.
async fn watch_engine(shared: Arc<Shared>) {
    let filter = shared.label_filter(None);
    let mut attempt = 0u32;
    loop {
        let mut events = shared.runtime.events(&filter);
        while let Some(event) = events.next().await {
            match event {
                Ok(event) => {
                    attempt = 0;
                    if let Some(app) = event.labels.get(labels::APP) {
                        shared.queue.add(app);
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "engine event stream failed");
                    break;
                }
            }
        }
        attempt = attempt.saturating_add(1);
        let delay = Backoff {
            base_ms: 500,
            cap_ms: 15_000,
            reset_after_ms: 0,
        }
        .delay_ms(attempt);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        // Whatever happened while we were not listening is caught by a full resync.
        wake_all(&shared).await;
    }
}

async fn resync(shared: Arc<Shared>) {
    loop {
        wake_all(&shared).await;
        tokio::time::sleep(shared.config.resync_interval).await;
    }
}

/// Queues every app in the store and every app that still has containers on the engine
/// (an app deleted while Berth was down still gets its containers removed).
async fn wake_all(shared: &Arc<Shared>) {
    let mut names = std::collections::BTreeSet::new();
    match shared.store.list_apps().await {
        Ok(apps) => names.extend(apps.into_iter().map(|app| app.name)),
        Err(error) => tracing::warn!(%error, "resync: cannot list apps"),
    }
    match shared.list_instances(None).await {
        Ok(containers) => {
            for container in containers {
                if let Some(app) = container.labels.get(labels::APP) {
                    names.insert(app.clone());
                }
            }
        }
        Err(error) => tracing::warn!(%error, "resync: cannot list containers"),
    }
    names.iter().for_each(|name| shared.queue.add(name));
}
