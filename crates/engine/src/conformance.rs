//! The conformance suite every [`Engine`] implementation must pass, run against a real engine.
//!
//! Each check creates what it needs in `fixture.namespace` (containers labelled
//! `berth.namespace=<namespace>`, on a network named after the namespace), removes it again on
//! success, and panics with a message naming the broken promise on failure. Callers wrap the run
//! in a guard that removes whatever a failed check left behind.
//!
//! The fixture image must serve HTTP on port 8080 (`GET /healthz`), print
//! `listening on 0.0.0.0:8080` at start, exit at once with `CODE` when `EXIT_IMMEDIATELY=CODE`
//! is set (printing `exiting immediately with code CODE`), burn that much CPU while
//! `BURN_CPU_MILLICORES` is set, and stop quickly on SIGTERM; its program is `/berth-testapp`. Images the checks build carry the `berth.namespace` label and
//! are removed again.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::{
    BuildContext, BuildSpec, ContainerState, Engine, EngineError, EngineEvent, InstanceSpec,
    LogLine, LogOptions, ObservedContainer, RegistryAuth, RunOutcome, RunSpec, labels,
};

/// What the suite runs against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConformanceFixture {
    /// A local test image that serves HTTP on 8080 with `GET /healthz` and handles SIGTERM.
    pub image: String,
    /// A namespace unique to this run; also the name of the network the checks use.
    pub namespace: String,
    /// A registry the engine can push to (`server` is its host, e.g. `127.0.0.1:5000`) with
    /// credentials it accepts; the push checks are skipped without one.
    pub registry: Option<RegistryAuth>,
}

/// An image name that exists nowhere.
pub const MISSING_IMAGE: &str = "berth-conformance-missing:nope";
/// Label naming the check that created a container.
pub const CHECK_LABEL: &str = "berth.conformance.check";
/// The line the fixture image prints when it is ready.
pub const STARTUP_LINE: &str = "listening on";

/// How long the suite waits for an eventual outcome; generous, since other work may share
/// the engine. No check asserts how fast anything is.
const PATIENCE: Duration = Duration::from_secs(60);
const GRACE: Duration = Duration::from_secs(5);

/// Runs every check in turn.
pub async fn run_all(engine: &dyn Engine, fixture: &ConformanceFixture) {
    check_info(engine).await;
    check_ensure_network_idempotent(engine, fixture).await;
    check_ensure_image(engine, fixture).await;
    check_instance_lifecycle(engine, fixture).await;
    check_resource_sample(engine, fixture).await;
    check_logs(engine, fixture).await;
    check_events(engine, fixture).await;
    check_missing_image(engine, fixture).await;
    check_crashed_container(engine, fixture).await;
    check_name_conflict(engine, fixture).await;
    check_stop_unknown(engine).await;
    check_build_image(engine, fixture).await;
    check_build_failures(engine, fixture).await;
    check_build_from_tar(engine, fixture).await;
    check_run_to_completion(engine, fixture).await;
    check_run_timeout_and_cancel(engine, fixture).await;
    check_tag_and_remove_image(engine, fixture).await;
    match &fixture.registry {
        Some(registry) => check_push_image(engine, fixture, registry).await,
        None => eprintln!("conformance: no registry in the fixture, push checks skipped"),
    }
}

/// A spec for a container of `check` in the fixture's namespace, without limits.
pub fn instance_spec(fixture: &ConformanceFixture, check: &str) -> InstanceSpec {
    let name = format!("{}-{check}", fixture.namespace);
    InstanceSpec {
        name: name.clone(),
        image: fixture.image.clone(),
        command: Vec::new(),
        args: Vec::new(),
        env: BTreeMap::from([("BERTH_CONFORMANCE".to_owned(), check.to_owned())]),
        labels: BTreeMap::from([
            (labels::NAMESPACE.to_owned(), fixture.namespace.clone()),
            (labels::APP.to_owned(), "conformance".to_owned()),
            (labels::REVISION.to_owned(), "1".to_owned()),
            (labels::INSTANCE.to_owned(), name),
            (labels::ORDINAL.to_owned(), "0".to_owned()),
            (CHECK_LABEL.to_owned(), check.to_owned()),
        ]),
        network: fixture.namespace.clone(),
        network_aliases: vec![format!("conformance-{check}")],
        cpu_millis: None,
        memory_bytes: None,
        stop_grace: GRACE,
        registry_auth: None,
    }
}

/// The label filter matching the fixture's namespace.
pub fn namespace_filter(fixture: &ConformanceFixture) -> BTreeMap<String, String> {
    BTreeMap::from([(labels::NAMESPACE.to_owned(), fixture.namespace.clone())])
}

/// Polls `probe` every 100 ms until it returns `Some`, panicking after a minute.
pub async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up after {PATIENCE:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The container with `id` among those in the fixture's namespace.
pub async fn find_container(
    engine: &dyn Engine,
    fixture: &ConformanceFixture,
    id: &str,
) -> Option<ObservedContainer> {
    engine
        .list_containers(&namespace_filter(fixture))
        .await
        .expect("list_containers failed")
        .into_iter()
        .find(|c| c.id == id)
}

/// Starts the fixture's network and an instance of `check`; panics when that fails.
pub async fn start(engine: &dyn Engine, spec: &InstanceSpec) -> String {
    engine
        .ensure_network(&spec.network)
        .await
        .expect("ensure_network failed");
    engine
        .start_instance(spec)
        .await
        .unwrap_or_else(|e| panic!("start_instance({}) failed: {e}", spec.name))
}

/// Waits until the container is listed as running with an address.
pub async fn wait_running(
    engine: &dyn Engine,
    fixture: &ConformanceFixture,
    id: &str,
) -> ObservedContainer {
    eventually(
        "the container to be listed as running with an IP",
        || async {
            find_container(engine, fixture, id)
                .await
                .filter(|c| c.state == ContainerState::Running && c.ip_address.is_some())
        },
    )
    .await
}

/// `info` answers and describes the engine.
pub async fn check_info(engine: &dyn Engine) {
    let info = engine.info().await.expect("info failed");
    assert!(!info.name.is_empty(), "info.name is empty");
    assert!(!info.version.is_empty(), "info.version is empty");
    assert!(!info.node_name.is_empty(), "info.node_name is empty");
    assert!(info.cpus > 0, "info.cpus is 0");
    assert!(info.memory_bytes > 0, "info.memory_bytes is 0");
}

/// `ensure_network` may be called again, and concurrently, without error.
pub async fn check_ensure_network_idempotent(engine: &dyn Engine, fixture: &ConformanceFixture) {
    let name = fixture.namespace.as_str();
    engine
        .ensure_network(name)
        .await
        .expect("first ensure_network failed");
    engine
        .ensure_network(name)
        .await
        .expect("second ensure_network failed");
    let (a, b) = futures::join!(engine.ensure_network(name), engine.ensure_network(name));
    a.expect("concurrent ensure_network failed");
    b.expect("concurrent ensure_network failed");
}

/// `ensure_image` of a present image succeeds without a registry.
pub async fn check_ensure_image(engine: &dyn Engine, fixture: &ConformanceFixture) {
    engine
        .ensure_image(&fixture.image, None)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "ensure_image({}) of a local image failed: {e}",
                fixture.image
            )
        });
}

/// Start → listed running with an IP and intact labels → stop removes it → stop again is fine.
pub async fn check_instance_lifecycle(engine: &dyn Engine, fixture: &ConformanceFixture) {
    let mut spec = instance_spec(fixture, "lifecycle");
    spec.labels
        .insert("example.com/custom".to_owned(), "kept as is".to_owned());
    spec.env.insert("GREETING".to_owned(), "hello".to_owned());
    let info = engine.info().await.expect("info failed");
    let id = start(engine, &spec).await;
    assert!(!id.is_empty(), "start_instance returned an empty id");

    let observed = wait_running(engine, fixture, &id).await;
    assert_eq!(observed.name, spec.name, "listed name");
    assert_eq!(observed.image, spec.image, "listed image");
    for (k, v) in &spec.labels {
        assert_eq!(
            observed.labels.get(k),
            Some(v),
            "label {k} not intact in {:?}",
            observed.labels
        );
    }
    assert!(observed.created_at_ms > 0, "created_at_ms not set");
    let started = observed.started_at_ms.expect("started_at_ms not set");
    assert!(
        started >= observed.created_at_ms - 1000,
        "started before created"
    );
    assert_eq!(
        observed.finished_at_ms, None,
        "finished_at_ms set on a running container"
    );
    assert_eq!(
        observed.exit_code, None,
        "exit_code set on a running container"
    );
    assert_eq!(observed.error, None, "error set on a running container");
    assert_eq!(observed.node, info.node_name, "node");

    // The filter is an AND over labels.
    let mut other = namespace_filter(fixture);
    other.insert(labels::APP.to_owned(), "some-other-app".to_owned());
    let listed = engine
        .list_containers(&other)
        .await
        .expect("list_containers failed");
    assert!(
        listed.iter().all(|c| c.id != id),
        "a container was listed for a label filter it does not match"
    );
    let mut exact = namespace_filter(fixture);
    exact.insert(CHECK_LABEL.to_owned(), "lifecycle".to_owned());
    let listed = engine
        .list_containers(&exact)
        .await
        .expect("list_containers failed");
    assert_eq!(
        listed.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
        vec![id.as_str()],
        "listing by two labels"
    );

    engine
        .stop_instance(&id, GRACE)
        .await
        .expect("stop_instance failed");
    assert!(
        find_container(engine, fixture, &id).await.is_none(),
        "the container is still listed after stop_instance"
    );
    engine
        .stop_instance(&id, GRACE)
        .await
        .expect("a second stop_instance must be Ok");
}

/// A running container's sample shows memory in use, its memory limit, and CPU time that
/// grows while it burns CPU; an exited container is a `Conflict`, a missing one `NotFound`.
pub async fn check_resource_sample(engine: &dyn Engine, fixture: &ConformanceFixture) {
    const LIMIT: u64 = 256 * 1024 * 1024;
    // 50 ms of CPU: a quarter of a second of the burn below.
    const GROWTH_NS: u64 = 50_000_000;
    let mut spec = instance_spec(fixture, "usage");
    spec.env
        .insert("BURN_CPU_MILLICORES".to_owned(), "200".to_owned());
    spec.memory_bytes = Some(LIMIT);
    let id = start(engine, &spec).await;
    wait_running(engine, fixture, &id).await;

    let first = engine
        .resource_sample(&id)
        .await
        .expect("resource_sample of a running container failed");
    assert!(first.memory_bytes > 0, "no memory in use: {first:?}");
    assert!(first.sampled_at_ms > 0, "no sample time: {first:?}");
    assert_eq!(
        first.memory_limit_bytes,
        Some(LIMIT),
        "memory limit of {first:?}"
    );
    let later = eventually("CPU time to grow while the app burns CPU", || async {
        let sample = engine
            .resource_sample(&id)
            .await
            .expect("resource_sample of a running container failed");
        (sample.cpu_time_ns >= first.cpu_time_ns + GROWTH_NS).then_some(sample)
    })
    .await;
    assert!(
        later.sampled_at_ms >= first.sampled_at_ms,
        "a later sample is older: {first:?} then {later:?}"
    );
    engine
        .stop_instance(&id, GRACE)
        .await
        .expect("stop_instance failed");
    match engine.resource_sample(&id).await {
        Err(EngineError::NotFound(_)) => {}
        other => panic!("resource_sample of a removed container gave {other:?}, want NotFound"),
    }
    match engine
        .resource_sample("berth-conformance-no-such-container")
        .await
    {
        Err(EngineError::NotFound(_)) => {}
        other => panic!("resource_sample of an unknown container gave {other:?}, want NotFound"),
    }

    let mut spec = instance_spec(fixture, "usage-exited");
    spec.env
        .insert("EXIT_IMMEDIATELY".to_owned(), "0".to_owned());
    let id = start(engine, &spec).await;
    eventually("the container to be listed as exited", || async {
        find_container(engine, fixture, &id)
            .await
            .filter(|c| c.state == ContainerState::Exited)
    })
    .await;
    match engine.resource_sample(&id).await {
        Err(EngineError::Conflict(_)) => {}
        other => panic!("resource_sample of an exited container gave {other:?}, want Conflict"),
    }
    engine
        .stop_instance(&id, GRACE)
        .await
        .expect("stop_instance of an exited container failed");
}

/// Logs return the startup line with a timestamp, with and without follow; tail limits lines.
pub async fn check_logs(engine: &dyn Engine, fixture: &ConformanceFixture) {
    let spec = instance_spec(fixture, "logs");
    let id = start(engine, &spec).await;

    let history = eventually("the startup line in the logs", || async {
        let lines: Vec<_> = engine
            .logs(
                &id,
                LogOptions {
                    follow: false,
                    tail: None,
                },
            )
            .collect()
            .await;
        let lines: Vec<_> = lines
            .into_iter()
            .collect::<Result<Vec<_>, _>>()
            .expect("logs failed");
        lines
            .iter()
            .any(|l| l.text.contains(STARTUP_LINE))
            .then_some(lines)
    })
    .await;
    let line = history
        .iter()
        .find(|l| l.text.contains(STARTUP_LINE))
        .expect("startup line");
    assert!(
        line.timestamp_ms.is_some(),
        "log line without timestamp: {line:?}"
    );
    assert!(
        !line.text.ends_with('\n') && !line.text.starts_with(' '),
        "log text not trimmed: {:?}",
        line.text
    );

    let tail: Vec<_> = engine
        .logs(
            &id,
            LogOptions {
                follow: false,
                tail: Some(1),
            },
        )
        .collect()
        .await;
    assert!(tail.len() <= 1, "tail=1 returned {} lines", tail.len());

    let mut follow = engine.logs(
        &id,
        LogOptions {
            follow: true,
            tail: None,
        },
    );
    let found = tokio::time::timeout(PATIENCE, async {
        while let Some(line) = follow.next().await {
            let line = line.expect("follow logs failed");
            if line.text.contains(STARTUP_LINE) {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(found, Ok(true), "follow did not yield the startup line");
    drop(follow);

    let missing: Vec<_> = engine
        .logs(
            "berth-conformance-no-such-container",
            LogOptions {
                follow: false,
                tail: None,
            },
        )
        .collect()
        .await;
    assert!(
        missing.iter().any(Result::is_err),
        "logs of an unknown container must yield an error"
    );

    engine
        .stop_instance(&id, GRACE)
        .await
        .expect("stop_instance failed");
}

/// Events yield `start` and `die` for a matching container, and nothing for others.
pub async fn check_events(engine: &dyn Engine, fixture: &ConformanceFixture) {
    let mut filter = namespace_filter(fixture);
    filter.insert(CHECK_LABEL.to_owned(), "events".to_owned());
    let mut events = engine.events(&filter);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let pump = tokio::spawn(async move {
        while let Some(event) = events.next().await {
            if tx.send(event).is_err() {
                break;
            }
        }
    });

    let decoy = start(engine, &instance_spec(fixture, "events-decoy")).await;
    let spec = instance_spec(fixture, "events");
    let id = start(engine, &spec).await;

    let mut seen: Vec<EngineEvent> = Vec::new();
    wait_for_event(&mut rx, &id, "start", &mut seen).await;
    engine
        .stop_instance(&id, GRACE)
        .await
        .expect("stop_instance failed");
    wait_for_event(&mut rx, &id, "die", &mut seen).await;
    pump.abort();

    let start_event = seen
        .iter()
        .find(|e| e.container_id == id && e.action == "start")
        .expect("start event");
    assert_eq!(
        start_event.labels.get(labels::NAMESPACE),
        Some(&fixture.namespace),
        "event labels: {:?}",
        start_event.labels
    );
    assert_eq!(
        start_event.labels.get(CHECK_LABEL).map(String::as_str),
        Some("events"),
        "event labels: {:?}",
        start_event.labels
    );
    assert!(
        seen.iter().all(|e| e.container_id != decoy),
        "events of a container outside the filter were delivered: {seen:?}"
    );
    engine
        .stop_instance(&decoy, GRACE)
        .await
        .expect("stop_instance failed");
}

/// Receives events until `action` for `id` arrives, keeping all in `seen`.
async fn wait_for_event(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<crate::EngineResult<EngineEvent>>,
    id: &str,
    action: &str,
    seen: &mut Vec<EngineEvent>,
) {
    let found = tokio::time::timeout(PATIENCE, async {
        while let Some(event) = rx.recv().await {
            let event = event.expect("event stream failed");
            let hit = event.container_id == id && event.action == action;
            seen.push(event);
            if hit {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(
        found,
        Ok(true),
        "no {action:?} event for container {id}; saw {seen:?}"
    );
}

/// A missing image fails with `ImageNotFound`, fast, and leaves no container behind.
pub async fn check_missing_image(engine: &dyn Engine, fixture: &ConformanceFixture) {
    match engine.ensure_image(MISSING_IMAGE, None).await {
        Err(EngineError::ImageNotFound { image, reason }) => {
            assert_eq!(image, MISSING_IMAGE);
            assert!(!reason.is_empty(), "ImageNotFound without a reason");
        }
        other => panic!("ensure_image({MISSING_IMAGE}) gave {other:?}, want ImageNotFound"),
    }
    let mut spec = instance_spec(fixture, "missing-image");
    spec.image = MISSING_IMAGE.to_owned();
    engine
        .ensure_network(&spec.network)
        .await
        .expect("ensure_network failed");
    match engine.start_instance(&spec).await {
        Err(EngineError::ImageNotFound { .. }) => {}
        other => panic!("start_instance with a missing image gave {other:?}, want ImageNotFound"),
    }
    let listed = engine
        .list_containers(&namespace_filter(fixture))
        .await
        .expect("list_containers failed");
    assert!(
        listed.iter().all(|c| c.name != spec.name),
        "a container was left behind by a failed start: {listed:?}"
    );
}

/// A container whose process exits is listed as exited, with its exit code and finish time.
pub async fn check_crashed_container(engine: &dyn Engine, fixture: &ConformanceFixture) {
    let mut spec = instance_spec(fixture, "crash");
    spec.env
        .insert("EXIT_IMMEDIATELY".to_owned(), "3".to_owned());
    let id = start(engine, &spec).await;
    let crashed = eventually("the crashed container to be listed as exited", || async {
        find_container(engine, fixture, &id)
            .await
            .filter(|c| c.state == ContainerState::Exited)
    })
    .await;
    assert_eq!(crashed.exit_code, Some(3), "exit code of {crashed:?}");
    let started = crashed
        .started_at_ms
        .expect("started_at_ms of a crashed container");
    let finished = crashed
        .finished_at_ms
        .expect("finished_at_ms of a crashed container");
    assert!(
        finished >= started,
        "finished {finished} before started {started}"
    );
    assert_eq!(
        crashed.ip_address, None,
        "an exited container has no address"
    );
    engine
        .stop_instance(&id, GRACE)
        .await
        .expect("stop_instance of an exited container failed");
    assert!(
        find_container(engine, fixture, &id).await.is_none(),
        "the exited container is still listed after stop_instance"
    );
}

/// A second container with a taken name is a `Conflict`, and the first one keeps running.
pub async fn check_name_conflict(engine: &dyn Engine, fixture: &ConformanceFixture) {
    let spec = instance_spec(fixture, "conflict");
    let id = start(engine, &spec).await;
    match engine.start_instance(&spec).await {
        Err(EngineError::Conflict(_)) => {}
        other => panic!(
            "starting a second {} gave {other:?}, want Conflict",
            spec.name
        ),
    }
    let first = wait_running(engine, fixture, &id).await;
    assert_eq!(first.name, spec.name);
    engine
        .stop_instance(&id, GRACE)
        .await
        .expect("stop_instance failed");
}

/// Stopping a container that never existed is not an error.
pub async fn check_stop_unknown(engine: &dyn Engine) {
    engine
        .stop_instance("berth-conformance-never-existed", GRACE)
        .await
        .expect("stop_instance of an unknown container must be Ok");
}

/// Lines an engine reported, collected for assertions.
#[derive(Debug, Default)]
pub struct CollectedOutput(Mutex<Vec<LogLine>>);

impl CollectedOutput {
    /// Records a line (use `&|l| collected.push(l)` as an [`crate::OutputSink`]).
    pub fn push(&self, line: LogLine) {
        self.0.lock().expect("output lock").push(line);
    }

    /// The texts so far.
    pub fn texts(&self) -> Vec<String> {
        self.0
            .lock()
            .expect("output lock")
            .iter()
            .map(|l| l.text.clone())
            .collect()
    }
}

/// A directory of files for a build context, removed when dropped.
#[derive(Debug)]
pub struct ContextDir(pub PathBuf);

impl ContextDir {
    /// Creates `<tmp>/<namespace>-<check>` holding `files` (relative path, content).
    pub fn new(fixture: &ConformanceFixture, check: &str, files: &[(&str, &str)]) -> Self {
        let dir = std::env::temp_dir().join(format!("{}-{check}", fixture.namespace));
        let _ = std::fs::remove_dir_all(&dir);
        for (path, content) in files {
            let path = dir.join(path);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("create context dir");
            std::fs::write(&path, content).expect("write context file");
        }
        std::fs::create_dir_all(&dir).expect("create context dir");
        Self(dir)
    }
}

impl Drop for ContextDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The labels images and throwaway containers of `check` carry.
pub fn check_labels(fixture: &ConformanceFixture, check: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (labels::NAMESPACE.to_owned(), fixture.namespace.clone()),
        (labels::BUILD.to_owned(), check.to_owned()),
        (CHECK_LABEL.to_owned(), check.to_owned()),
    ])
}

/// An image reference of `check` in the fixture's namespace.
pub fn image_ref(fixture: &ConformanceFixture, check: &str, tag: &str) -> String {
    format!("{}-{check}:{tag}", fixture.namespace)
}

/// A build of the files of `context` with the fixture's labels.
pub fn build_spec(
    fixture: &ConformanceFixture,
    check: &str,
    context: BuildContext,
    tags: Vec<String>,
) -> BuildSpec {
    BuildSpec {
        context,
        dockerfile: String::new(),
        tags,
        build_args: BTreeMap::new(),
        labels: check_labels(fixture, check),
        registry_auth: Vec::new(),
        cpu_millis: None,
        memory_bytes: None,
    }
}

/// A throwaway run of the fixture image for `check`.
pub fn run_spec(fixture: &ConformanceFixture, check: &str) -> RunSpec {
    RunSpec {
        name: format!("{}-{check}", fixture.namespace),
        image: fixture.image.clone(),
        command: Vec::new(),
        env: BTreeMap::new(),
        labels: check_labels(fixture, check),
        timeout: PATIENCE,
        cpu_millis: None,
        memory_bytes: None,
        network: None,
    }
}

/// Asserts that no container of `check` is left.
async fn assert_no_container_of(engine: &dyn Engine, fixture: &ConformanceFixture, check: &str) {
    let mut filter = namespace_filter(fixture);
    filter.insert(CHECK_LABEL.to_owned(), check.to_owned());
    let left = engine
        .list_containers(&filter)
        .await
        .expect("list_containers failed");
    assert!(left.is_empty(), "{check} left containers behind: {left:?}");
}

/// A build from a directory applies build args, labels and every tag, leaves out what
/// `.dockerignore` excludes, reports progress, and reuses the build cache.
pub async fn check_build_image(engine: &dyn Engine, fixture: &ConformanceFixture) {
    let dockerfile = format!(
        "FROM {}\nARG CODE=1\nENV EXIT_IMMEDIATELY=$CODE\nCOPY payload.txt /payload.txt\n",
        fixture.image
    );
    let dir = ContextDir::new(
        fixture,
        "build",
        &[
            ("build/Dockerfile", dockerfile.as_str()),
            ("payload.txt", "payload"),
            ("secret.txt", "never sent"),
            (".dockerignore", "secret.txt\n"),
        ],
    );
    let tags = vec![
        image_ref(fixture, "build", "one"),
        image_ref(fixture, "build", "two"),
    ];
    let build = || {
        let mut spec = build_spec(
            fixture,
            "build",
            BuildContext::Directory(dir.0.clone()),
            tags.clone(),
        );
        spec.dockerfile = "build/Dockerfile".to_owned();
        spec.build_args.insert("CODE".to_owned(), "7".to_owned());
        spec
    };
    let output = CollectedOutput::default();
    let id = engine
        .build_image(build(), &|l| output.push(l))
        .await
        .unwrap_or_else(|e| panic!("build_image failed: {e}"));
    assert!(id.starts_with("sha256:"), "image id {id:?}");
    let texts = output.texts();
    assert!(!texts.is_empty(), "a build reported no progress");
    assert!(
        texts
            .iter()
            .all(|t| !t.ends_with('\n') && !t.trim().is_empty()),
        "progress lines not trimmed: {texts:?}"
    );
    for tag in &tags {
        assert_eq!(
            engine.image_id(tag).await.expect("image_id failed"),
            Some(id.clone()),
            "tag {tag}"
        );
    }

    // The build args reached the image: it exits with CODE.
    let run = RunSpec {
        image: tags[0].clone(),
        ..run_spec(fixture, "build-run")
    };
    let output = CollectedOutput::default();
    let outcome = engine
        .run_to_completion(&run, &|l| output.push(l), &CancellationToken::new())
        .await
        .expect("run_to_completion of the built image failed");
    assert_eq!(outcome, RunOutcome::Exited(7), "{:?}", output.texts());

    // .dockerignore: COPY of an excluded file fails.
    std::fs::write(
        dir.0.join("build/Dockerfile"),
        format!("FROM {}\nCOPY secret.txt /secret.txt\n", fixture.image),
    )
    .expect("write Dockerfile");
    match engine.build_image(build(), &|_| {}).await {
        Err(EngineError::BuildFailed(message)) => {
            assert!(message.contains("secret.txt"), "message {message:?}")
        }
        other => panic!("COPY of a .dockerignore'd file gave {other:?}, want BuildFailed"),
    }
    std::fs::write(dir.0.join("build/Dockerfile"), &dockerfile).expect("write Dockerfile");

    // The same inputs again: every step comes from the cache, so the image is the same.
    let again = engine
        .build_image(build(), &|_| {})
        .await
        .expect("second build failed");
    assert_eq!(
        again, id,
        "a rebuild of unchanged files did not reuse the build cache"
    );

    // The image is listed by its labels, with its tags.
    let labelled = BTreeMap::from([(CHECK_LABEL.to_owned(), "build".to_owned())]);
    let listed = engine
        .list_images(&labelled)
        .await
        .expect("list_images failed");
    let image = listed
        .iter()
        .find(|i| i.id == id)
        .unwrap_or_else(|| panic!("{id} not listed: {listed:?}"));
    let mut listed_tags = image.tags.clone();
    listed_tags.sort();
    assert_eq!(listed_tags, tags);
    assert_eq!(
        image.labels.get(CHECK_LABEL).map(String::as_str),
        Some("build")
    );
    assert!(image.created_ms > 0, "{image:?}");
    let other = BTreeMap::from([(CHECK_LABEL.to_owned(), "no-such-check".to_owned())]);
    assert!(
        engine
            .list_images(&other)
            .await
            .expect("list_images failed")
            .is_empty()
    );

    for tag in &tags {
        engine.remove_image(tag).await.expect("remove_image failed");
    }
}

/// A missing Dockerfile, a missing file and a failing instruction are `BuildFailed`.
pub async fn check_build_failures(engine: &dyn Engine, fixture: &ConformanceFixture) {
    let dir = ContextDir::new(
        fixture,
        "build-fail",
        &[
            (
                "Dockerfile",
                &format!("FROM {}\nCOPY missing.txt /missing.txt\n", fixture.image),
            ),
            (
                "failing.Dockerfile",
                &format!(
                    "FROM {}\nENV EXIT_IMMEDIATELY=5\nRUN [\"/berth-testapp\"]\n",
                    fixture.image
                ),
            ),
        ],
    );
    let tag = image_ref(fixture, "build-fail", "x");
    let cases = [
        ("Dockerfile", "a COPY of a missing file"),
        ("failing.Dockerfile", "a RUN that exits 5"),
        ("no/such/Dockerfile", "a missing Dockerfile"),
    ];
    for (dockerfile, what) in cases {
        let mut spec = build_spec(
            fixture,
            "build-fail",
            BuildContext::Directory(dir.0.clone()),
            vec![tag.clone()],
        );
        spec.dockerfile = dockerfile.to_owned();
        match engine.build_image(spec, &|_| {}).await {
            Err(EngineError::BuildFailed(message)) => {
                assert!(!message.is_empty(), "{what}: BuildFailed without a message")
            }
            other => panic!("{what} gave {other:?}, want BuildFailed"),
        }
    }
    assert_eq!(
        engine.image_id(&tag).await.expect("image_id failed"),
        None,
        "a failed build left its tag"
    );
    let missing = build_spec(
        fixture,
        "build-fail",
        BuildContext::Directory(dir.0.join("no-such-dir")),
        vec![tag],
    );
    match engine.build_image(missing, &|_| {}).await {
        Err(EngineError::BuildFailed(message)) => {
            assert!(message.contains("no-such-dir"), "message {message:?}")
        }
        other => panic!("a missing context directory gave {other:?}, want BuildFailed"),
    }
}

/// A ready tar archive builds like a directory.
pub async fn check_build_from_tar(engine: &dyn Engine, fixture: &ConformanceFixture) {
    let mut archive = tar::Builder::new(Vec::new());
    let files = [
        (
            "Dockerfile",
            format!("FROM {}\nCOPY hello.txt /hello.txt\n", fixture.image),
        ),
        ("hello.txt", "hello".to_owned()),
    ];
    for (name, content) in &files {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        archive
            .append_data(&mut header, name, content.as_bytes())
            .expect("append to tar");
    }
    let bytes = Bytes::from(archive.into_inner().expect("finish tar"));
    // In two chunks, as a stream would bring it.
    let (a, b) = (bytes.slice(..100), bytes.slice(100..));
    let stream = futures::stream::iter([Ok(a), Ok(b)]).boxed();
    let tag = image_ref(fixture, "build-tar", "x");
    let id = engine
        .build_image(
            build_spec(
                fixture,
                "build-tar",
                BuildContext::Tar(stream),
                vec![tag.clone()],
            ),
            &|_| {},
        )
        .await
        .unwrap_or_else(|e| panic!("build_image from a tar stream failed: {e}"));
    assert_eq!(engine.image_id(&tag).await.expect("image_id"), Some(id));
    engine
        .remove_image(&tag)
        .await
        .expect("remove_image failed");
}

/// A throwaway run returns the exit code and output, and removes its container; a command
/// replaces the image's program; a missing image is `ImageNotFound`.
pub async fn check_run_to_completion(engine: &dyn Engine, fixture: &ConformanceFixture) {
    let mut spec = run_spec(fixture, "run");
    spec.env
        .insert("EXIT_IMMEDIATELY".to_owned(), "3".to_owned());
    let output = CollectedOutput::default();
    let outcome = engine
        .run_to_completion(&spec, &|l| output.push(l), &CancellationToken::new())
        .await
        .expect("run_to_completion failed");
    assert_eq!(outcome, RunOutcome::Exited(3));
    let texts = output.texts();
    assert!(
        texts.iter().any(|t| t == "exiting immediately with code 3"),
        "output {texts:?}"
    );
    assert_no_container_of(engine, fixture, "run").await;

    let mut spec = run_spec(fixture, "run-cmd");
    spec.command = vec!["/berth-testapp".to_owned()];
    spec.env
        .insert("EXIT_IMMEDIATELY".to_owned(), "0".to_owned());
    let outcome = engine
        .run_to_completion(&spec, &|_| {}, &CancellationToken::new())
        .await
        .expect("run_to_completion with a command failed");
    assert_eq!(outcome, RunOutcome::Exited(0));
    assert_no_container_of(engine, fixture, "run-cmd").await;

    let mut spec = run_spec(fixture, "run-missing");
    spec.image = MISSING_IMAGE.to_owned();
    match engine
        .run_to_completion(&spec, &|_| {}, &CancellationToken::new())
        .await
    {
        Err(EngineError::ImageNotFound { .. }) => {}
        other => panic!("a run of a missing image gave {other:?}, want ImageNotFound"),
    }
    assert_no_container_of(engine, fixture, "run-missing").await;
}

/// A run longer than its timeout, and a cancelled run, are killed and removed.
pub async fn check_run_timeout_and_cancel(engine: &dyn Engine, fixture: &ConformanceFixture) {
    // The fixture serves forever unless stopped.
    let mut spec = run_spec(fixture, "run-timeout");
    spec.timeout = Duration::from_secs(2);
    let output = CollectedOutput::default();
    let outcome = engine
        .run_to_completion(&spec, &|l| output.push(l), &CancellationToken::new())
        .await
        .expect("run_to_completion failed");
    assert_eq!(outcome, RunOutcome::TimedOut, "output {:?}", output.texts());
    assert_no_container_of(engine, fixture, "run-timeout").await;

    let spec = run_spec(fixture, "run-cancel");
    let cancel = CancellationToken::new();
    let output = CollectedOutput::default();
    let sink = |l: LogLine| {
        // Cancel once it demonstrably runs.
        if l.text.contains(STARTUP_LINE) {
            cancel.cancel();
        }
        output.push(l)
    };
    let run = engine.run_to_completion(&spec, &sink, &cancel);
    let outcome = tokio::time::timeout(PATIENCE, run)
        .await
        .expect("a cancelled run did not end")
        .expect("run_to_completion failed");
    assert_eq!(
        outcome,
        RunOutcome::Cancelled,
        "output {:?}",
        output.texts()
    );
    assert_no_container_of(engine, fixture, "run-cancel").await;
}

/// Tags point at the same image; removing a tag leaves the image's other tags; removing a
/// missing reference is fine.
pub async fn check_tag_and_remove_image(engine: &dyn Engine, fixture: &ConformanceFixture) {
    let id = engine
        .image_id(&fixture.image)
        .await
        .expect("image_id failed")
        .expect("the fixture image exists");
    let tag = image_ref(fixture, "tag", "v1");
    engine
        .tag_image(&fixture.image, &tag)
        .await
        .expect("tag_image failed");
    assert_eq!(
        engine.image_id(&tag).await.expect("image_id"),
        Some(id.clone())
    );
    engine
        .remove_image(&tag)
        .await
        .expect("remove_image failed");
    assert_eq!(engine.image_id(&tag).await.expect("image_id"), None);
    assert_eq!(
        engine.image_id(&fixture.image).await.expect("image_id"),
        Some(id),
        "removing a tag removed the image's other tags"
    );
    engine
        .remove_image(&tag)
        .await
        .expect("removing a missing reference must be Ok");
    match engine.tag_image(MISSING_IMAGE, &tag).await {
        Err(EngineError::ImageNotFound { .. }) => {}
        other => panic!("tagging a missing image gave {other:?}, want ImageNotFound"),
    }
}

/// A push returns the registry's digest (the same when pushed again), reports progress, and
/// fails with `PushFailed` on bad credentials.
pub async fn check_push_image(
    engine: &dyn Engine,
    fixture: &ConformanceFixture,
    registry: &RegistryAuth,
) {
    let reference = format!("{}/{}/pushed:v1", registry.server, fixture.namespace);
    engine
        .tag_image(&fixture.image, &reference)
        .await
        .expect("tag_image failed");
    let output = CollectedOutput::default();
    let digest = engine
        .push_image(&reference, Some(registry), &|l| output.push(l))
        .await
        .unwrap_or_else(|e| panic!("push_image({reference}) failed: {e}"));
    let hex = digest.strip_prefix("sha256:").unwrap_or_default();
    assert!(
        hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()),
        "digest {digest:?}"
    );
    assert!(!output.texts().is_empty(), "a push reported no progress");
    let again = engine
        .push_image(&reference, Some(registry), &|_| {})
        .await
        .expect("second push failed");
    assert_eq!(
        again, digest,
        "pushing the same image twice gave two digests"
    );

    let wrong = RegistryAuth {
        password: format!("not-{}", registry.password),
        ..registry.clone()
    };
    let refused = format!("{}/{}/refused:v1", registry.server, fixture.namespace);
    engine
        .tag_image(&fixture.image, &refused)
        .await
        .expect("tag_image failed");
    match engine.push_image(&refused, Some(&wrong), &|_| {}).await {
        Err(EngineError::PushFailed { reference, reason }) => {
            assert_eq!(reference, refused);
            assert!(!reason.is_empty(), "PushFailed without a reason");
        }
        other => panic!("a push with a wrong password gave {other:?}, want PushFailed"),
    }
    let never_tagged = format!("{}/{}/never-tagged:v1", registry.server, fixture.namespace);
    match engine
        .push_image(&never_tagged, Some(registry), &|_| {})
        .await
    {
        Err(EngineError::ImageNotFound { .. } | EngineError::PushFailed { .. }) => {}
        other => panic!("a push of a missing image gave {other:?}"),
    }
    for r in [&reference, &refused] {
        engine.remove_image(r).await.expect("remove_image failed");
    }
}
