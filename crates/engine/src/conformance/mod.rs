//! The conformance suites every engine implementation must pass (feature `conformance`).
//!
//! [`runtime`] checks a [`Runtime`] (instances: start, stop, list, events, logs, samples) and
//! [`builder`] an [`ImageBuilder`] (build, run to completion, tag, push, remove). Docker runs
//! both; the in-memory fake runtime runs [`runtime`]; a Swarm runtime would run [`runtime`].
//!
//! Each check creates what it needs in `fixture.namespace` (containers labelled
//! `berth.namespace=<namespace>`, on a network named after the namespace), removes it again on
//! success, and panics with a message naming the broken promise on failure. Callers wrap the run
//! in a guard that removes whatever a failed check left behind.
//!
//! The fixture image must serve HTTP on port 8080 (`GET /healthz`), print
//! `listening on 0.0.0.0:8080` at start, exit at once with `CODE` when `EXIT_IMMEDIATELY=CODE`
//! is set (printing `exiting immediately with code CODE`), burn that much CPU while
//! `BURN_CPU_MILLICORES` is set, and stop quickly on SIGTERM; its program is `/berth-testapp`.
//! Images the checks build carry the `berth.namespace` label and are removed again.

pub mod builder;
pub mod runtime;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

#[allow(unused_imports)] // linked from the module docs
use crate::ImageBuilder;
use crate::{
    BuildContext, BuildSpec, ContainerState, InstanceSpec, LogLine, ObservedContainer,
    RegistryAuth, RunSpec, Runtime, labels,
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
        mounts: Vec::new(),
        secret_env: BTreeMap::new(),
        files: Vec::new(),
        ports: Vec::new(),
        node_constraints: Vec::new(),
    }
}

/// A tar archive of `files` (path, contents), entries relative to the root.
pub fn archive_of(files: &[(&str, &str)]) -> Vec<u8> {
    let mut archive = tar::Builder::new(Vec::new());
    for (path, contents) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(contents.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        archive
            .append_data(&mut header, path, contents.as_bytes())
            .expect("append to an in-memory archive");
    }
    archive.into_inner().expect("finish an in-memory archive")
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
    engine: &dyn Runtime,
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
pub async fn start(engine: &dyn Runtime, spec: &InstanceSpec) -> String {
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
    engine: &dyn Runtime,
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
