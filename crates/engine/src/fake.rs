//! An in-memory [`Runtime`] for tests (feature `fake`): deterministic, no Docker, controllable.
//!
//! [`FakeRuntime`] keeps containers, networks and known images in memory and passes the runtime
//! half of the conformance suite. Its containers follow the fixture image's contract
//! (`conformance` module docs): one prints `listening on 0.0.0.0:<PORT>` and runs until
//! stopped, or, with `EXIT_IMMEDIATELY=<code>` in its environment, prints `exiting immediately
//! with code <code>` and exits at once; `BURN_CPU_MILLICORES` makes its CPU time grow.
//!
//! Everything is deterministic: ids (`fake-000001`, …) and addresses (`10.88.0.2`, …) are
//! handed out in order, and times come from tokio's clock (so a paused clock in a test
//! controls them too): [`FakeRuntime::now_ms`] is the runtime's "unix milliseconds", and a
//! controller under test should read the same clock ([`FakeRuntime::clock`]).
//!
//! Tests steer it: make an image unknown or fail to start ([`FakeRuntime::fail_starts`]),
//! make an instance exit or be killed ([`FakeRuntime::exit`], [`FakeRuntime::kill`]) or vanish
//! ([`FakeRuntime::remove`]), make the runtime unreachable, and break event streams. Health
//! probes reach its instances through [`InstanceProbe`], which the fake implements: every running
//! instance answers `200` on its port unless a test sets another [`HttpAnswer`] for it or for
//! its image; a TCP probe passes wherever an HTTP answer (any status) would come.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::{self, BoxStream};
use tokio::sync::broadcast;
use tokio::time::Instant;

use crate::probe::InstanceProbe;
use crate::{
    ContainerState, EngineError, EngineEvent, EngineInfo, EngineNode, EngineResult, InstanceSpec,
    LogLine, LogOptions, LogStream, ObservedContainer, ObservedVolume, RegistryAuth,
    ResourceSample, Runtime, labels,
};

/// What an empty volume exports: a tar archive with no entries.
const EMPTY_ARCHIVE: [u8; 1024] = [0; 1024];

/// The fake's idea of "unix time" when it is made; it advances with tokio's clock.
pub const EPOCH_MS: i64 = 1_700_000_000_000;
/// The node every fake container runs on.
pub const NODE: &str = "fake-node";
/// Memory every running fake container uses.
pub const MEMORY_IN_USE: u64 = 16 * 1024 * 1024;
/// The fake node's memory (a container's limit when it has none).
pub const NODE_MEMORY: u64 = 8 * 1024 * 1024 * 1024;

/// How an instance answers a health probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpAnswer {
    /// This HTTP status (2xx and 3xx pass).
    Status(u16),
    /// Nothing listens on the port.
    Refused,
    /// The request gets no answer before its timeout.
    Hang,
}

/// A container and what the fake knows about its process.
struct Container {
    observed: ObservedContainer,
    spec: InstanceSpec,
    port: u16,
    burn_millicores: u64,
    /// When the process started, on tokio's clock (its CPU time grows from there).
    started: Instant,
    logs: Vec<LogLine>,
    /// Followers of the logs; dropped (ending their streams) when the process exits.
    followers: Option<broadcast::Sender<LogLine>>,
    http: Option<HttpAnswer>,
}

#[derive(Default)]
struct State {
    images: BTreeSet<String>,
    start_failures: BTreeMap<String, String>,
    image_http: BTreeMap<String, HttpAnswer>,
    networks: BTreeSet<String>,
    /// By id; ids sort in creation order.
    containers: BTreeMap<String, Container>,
    /// Removed containers as they were last seen, in removal order.
    removed: Vec<ObservedContainer>,
    created: u64,
    unreachable: Option<String>,
    /// Named volumes: their labels and the last archive imported into them.
    volumes: BTreeMap<String, (BTreeMap<String, String>, Vec<u8>)>,
    /// Nodes besides the machine Berth runs on, and what their agent answers (`None`: no
    /// agent; an error: the reading fails with it).
    remote_nodes: BTreeMap<String, (EngineNode, Option<Result<Vec<u8>, String>>)>,
}

impl State {
    fn check_reachable(&self) -> EngineResult<()> {
        match &self.unreachable {
            Some(reason) => Err(EngineError::Unreachable(reason.clone())),
            None => Ok(()),
        }
    }

    /// The id of the container with this id or name.
    fn resolve(&self, id_or_name: &str) -> Option<String> {
        if self.containers.contains_key(id_or_name) {
            return Some(id_or_name.to_owned());
        }
        self.containers
            .iter()
            .find(|(_, c)| c.observed.name == id_or_name)
            .map(|(id, _)| id.clone())
    }
}

/// What travels on the event channel.
#[derive(Clone)]
enum Signal {
    Event(EngineEvent),
    /// Every event stream ends (a broken connection).
    Disconnect,
}

/// The in-memory runtime. Clones share the same containers.
#[derive(Clone)]
pub struct FakeRuntime {
    state: Arc<Mutex<State>>,
    events: broadcast::Sender<Signal>,
    started: Instant,
}

impl Default for FakeRuntime {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for FakeRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.lock();
        f.debug_struct("FakeRuntime")
            .field("images", &state.images)
            .field("containers", &state.containers.len())
            .finish()
    }
}

impl FakeRuntime {
    /// An empty runtime: no images, no networks, no containers.
    pub fn new() -> Self {
        FakeRuntime {
            state: Arc::default(),
            events: broadcast::channel(4096).0,
            started: Instant::now(),
        }
    }

    /// The runtime with `image` present locally.
    pub fn with_image(self, image: &str) -> Self {
        self.add_image(image);
        self
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The fake's unix milliseconds: [`EPOCH_MS`] plus the time passed on tokio's clock.
    pub fn now_ms(&self) -> i64 {
        let passed = Instant::now().duration_since(self.started).as_millis();
        EPOCH_MS + i64::try_from(passed).unwrap_or(i64::MAX - EPOCH_MS)
    }

    /// [`FakeRuntime::now_ms`] as a clock to hand to the code under test.
    pub fn clock(&self) -> Arc<dyn Fn() -> i64 + Send + Sync> {
        let fake = self.clone();
        Arc::new(move || fake.now_ms())
    }

    /// Makes `image` present locally (as a pull or a build would).
    pub fn add_image(&self, image: &str) {
        self.lock().images.insert(image.to_owned());
    }

    /// Makes every start of `image` fail with `reason` (an engine error other than a missing
    /// image, such as a bad entrypoint); `None` lets it start again.
    pub fn fail_starts(&self, image: &str, reason: Option<&str>) {
        let mut state = self.lock();
        match reason {
            Some(reason) => state
                .start_failures
                .insert(image.to_owned(), reason.to_owned()),
            None => state.start_failures.remove(image),
        };
    }

    /// How instances of `image` answer probes unless set per container (default: `200`).
    pub fn set_image_http(&self, image: &str, answer: HttpAnswer) {
        self.lock().image_http.insert(image.to_owned(), answer);
    }

    /// How one container (by id or name) answers probes from now on; `false` when it does not
    /// exist.
    pub fn set_http(&self, container: &str, answer: HttpAnswer) -> bool {
        let mut state = self.lock();
        let Some(id) = state.resolve(container) else {
            return false;
        };
        if let Some(c) = state.containers.get_mut(&id) {
            c.http = Some(answer);
        }
        true
    }

    /// Makes the container's process exit with `code` (a crash when not 0); `false` when it
    /// does not exist or is not running.
    pub fn exit(&self, container: &str, code: i64) -> bool {
        let now = self.now_ms();
        let mut state = self.lock();
        let Some(id) = state.resolve(container) else {
            return false;
        };
        let Some(c) = state.containers.get_mut(&id) else {
            return false;
        };
        if c.observed.state != ContainerState::Running {
            return false;
        }
        let event = exit_process(c, code, now);
        drop(state);
        self.emit(event);
        true
    }

    /// Kills the container's process (exit code 137, as SIGKILL or the OOM killer would).
    pub fn kill(&self, container: &str) -> bool {
        self.exit(container, 137)
    }

    /// Removes the container behind Berth's back (as `docker rm -f` would); `false` when it
    /// does not exist.
    pub fn remove(&self, container: &str) -> bool {
        let now = self.now_ms();
        let mut state = self.lock();
        let Some(id) = state.resolve(container) else {
            return false;
        };
        let events = remove_container(&mut state, &id, now);
        drop(state);
        events.into_iter().for_each(|e| self.emit(e));
        true
    }

    /// Makes every call fail with [`EngineError::Unreachable`] (`Some(reason)`), or work again.
    pub fn set_unreachable(&self, reason: Option<&str>) {
        self.lock().unreachable = reason.map(str::to_owned);
        if reason.is_some() {
            self.disconnect_events();
        }
    }

    /// Adds (or replaces) a node Berth does not run on, with what its agent answers to a
    /// reading (see [`Runtime::read_node`]).
    pub fn set_remote_node(&self, node: EngineNode, agent: Option<Result<Vec<u8>, String>>) {
        self.lock()
            .remote_nodes
            .insert(node.name.clone(), (node, agent));
    }

    /// Ends every event stream, as a broken connection to the engine would.
    pub fn disconnect_events(&self) {
        let _ = self.events.send(Signal::Disconnect);
    }

    /// Every container, in creation order (regardless of reachability).
    pub fn containers(&self) -> Vec<ObservedContainer> {
        self.lock()
            .containers
            .values()
            .map(|c| c.observed.clone())
            .collect()
    }

    /// Every container ever started, removed ones included (as they were last seen), in
    /// creation order: what a test checks a whole story against.
    pub fn history(&self) -> Vec<ObservedContainer> {
        let state = self.lock();
        let mut all: Vec<ObservedContainer> = state
            .removed
            .iter()
            .cloned()
            .chain(state.containers.values().map(|c| c.observed.clone()))
            .collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all
    }

    /// The spec a container (by id or name) was started with.
    pub fn spec(&self, container: &str) -> Option<InstanceSpec> {
        let state = self.lock();
        let id = state.resolve(container)?;
        state.containers.get(&id).map(|c| c.spec.clone())
    }

    /// The networks made so far.
    pub fn networks(&self) -> Vec<String> {
        self.lock().networks.iter().cloned().collect()
    }

    fn emit(&self, event: EngineEvent) {
        // Nobody listening is fine.
        let _ = self.events.send(Signal::Event(event));
    }
}

fn event(c: &Container, action: &str) -> EngineEvent {
    EngineEvent {
        container_id: c.observed.id.clone(),
        action: action.to_owned(),
        labels: c.observed.labels.clone(),
    }
}

fn log(c: &mut Container, text: String, at: i64) {
    let line = LogLine {
        stream: LogStream::Stdout,
        timestamp_ms: Some(at),
        text,
    };
    if let Some(followers) = &c.followers {
        let _ = followers.send(line.clone());
    }
    c.logs.push(line);
}

/// Marks the process exited; returns the `die` event.
fn exit_process(c: &mut Container, code: i64, now: i64) -> EngineEvent {
    c.observed.state = ContainerState::Exited;
    c.observed.exit_code = Some(code);
    c.observed.finished_at_ms = Some(now);
    c.observed.ip_address = None;
    c.followers = None;
    event(c, "die")
}

/// Removes a container, stopping its process first; returns the events that tells.
fn remove_container(state: &mut State, id: &str, now: i64) -> Vec<EngineEvent> {
    let Some(mut c) = state.containers.remove(id) else {
        return Vec::new();
    };
    let mut events = Vec::new();
    if c.observed.state == ContainerState::Running {
        // The fixture contract: SIGTERM ends the process cleanly.
        events.push(exit_process(&mut c, 0, now));
    }
    events.push(event(&c, "destroy"));
    state.removed.push(c.observed);
    events
}

fn matches(labels: &BTreeMap<String, String>, filter: &BTreeMap<String, String>) -> bool {
    filter.iter().all(|(k, v)| labels.get(k) == Some(v))
}

fn not_found(id: &str) -> EngineError {
    EngineError::NotFound(format!("no such container: {id}"))
}

#[async_trait]
impl Runtime for FakeRuntime {
    async fn info(&self) -> EngineResult<EngineInfo> {
        self.lock().check_reachable()?;
        Ok(EngineInfo {
            name: "Fake runtime".to_owned(),
            version: "1".to_owned(),
            node_name: NODE.to_owned(),
            cpus: 2,
            memory_bytes: NODE_MEMORY,
            data_root: None,
        })
    }

    async fn nodes(&self) -> EngineResult<Vec<EngineNode>> {
        let mut nodes = vec![EngineNode::standalone(self.info().await?)];
        nodes.extend(self.lock().remote_nodes.values().map(|(n, _)| n.clone()));
        Ok(nodes)
    }

    async fn read_node(&self, node: &str) -> EngineResult<Option<Vec<u8>>> {
        let state = self.lock();
        state.check_reachable()?;
        match state.remote_nodes.get(node).map(|(_, agent)| agent) {
            Some(Some(Ok(output))) => Ok(Some(output.clone())),
            Some(Some(Err(reason))) => Err(EngineError::Other(reason.clone())),
            Some(None) | None => Ok(None),
        }
    }

    async fn ensure_network(&self, name: &str) -> EngineResult<()> {
        let mut state = self.lock();
        state.check_reachable()?;
        state.networks.insert(name.to_owned());
        Ok(())
    }

    async fn ensure_image(&self, image: &str, _auth: Option<&RegistryAuth>) -> EngineResult<()> {
        let state = self.lock();
        state.check_reachable()?;
        if state.images.contains(image) {
            Ok(())
        } else {
            Err(EngineError::ImageNotFound {
                image: image.to_owned(),
                reason: "the fake runtime has no such image and cannot pull".to_owned(),
            })
        }
    }

    async fn start_instance(&self, spec: &InstanceSpec) -> EngineResult<String> {
        let now = self.now_ms();
        let mut state = self.lock();
        state.check_reachable()?;
        if !state.images.contains(&spec.image) {
            return Err(EngineError::ImageNotFound {
                image: spec.image.clone(),
                reason: "the fake runtime has no such image and cannot pull".to_owned(),
            });
        }
        if let Some(reason) = state.start_failures.get(&spec.image) {
            return Err(EngineError::Other(reason.clone()));
        }
        if !state.networks.contains(&spec.network) {
            return Err(EngineError::NotFound(format!("network {}", spec.network)));
        }
        if state.resolve(&spec.name).is_some() {
            return Err(EngineError::Conflict(format!(
                "the container name {} is already in use",
                spec.name
            )));
        }
        state.created += 1;
        let n = state.created;
        let id = format!("fake-{n:06}");
        // Labels set empty read back as absent, as on Docker.
        let container_labels = spec
            .labels
            .iter()
            .filter(|(k, v)| !(v.is_empty() && labels::RESERVED.contains(&k.as_str())))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let env = |key: &str| spec.env.get(key).map(String::as_str);
        let port = env("PORT").and_then(|p| p.parse().ok()).unwrap_or(8080);
        let mut container = Container {
            observed: ObservedContainer {
                id: id.clone(),
                name: spec.name.clone(),
                image: spec.image.clone(),
                labels: container_labels,
                state: ContainerState::Running,
                ip_address: Some(format!("10.88.{}.{}", n / 250, n % 250 + 2)),
                created_at_ms: now,
                started_at_ms: Some(now),
                finished_at_ms: None,
                exit_code: None,
                error: None,
                node: NODE.to_owned(),
                node_draining: false,
                published_ports: BTreeMap::new(),
            },
            spec: spec.clone(),
            port,
            burn_millicores: env("BURN_CPU_MILLICORES")
                .and_then(|m| m.parse().ok())
                .unwrap_or(0),
            started: Instant::now(),
            logs: Vec::new(),
            followers: Some(broadcast::channel(256).0),
            http: None,
        };
        let mut events = vec![event(&container, "create"), event(&container, "start")];
        match env("EXIT_IMMEDIATELY").map(|code| code.parse::<i64>().unwrap_or(1)) {
            Some(code) => {
                log(
                    &mut container,
                    format!("exiting immediately with code {code}"),
                    now,
                );
                events.push(exit_process(&mut container, code, now));
            }
            None => log(&mut container, format!("listening on 0.0.0.0:{port}"), now),
        }
        state.containers.insert(id.clone(), container);
        drop(state);
        events.into_iter().for_each(|e| self.emit(e));
        Ok(id)
    }

    async fn stop_instance(&self, id: &str, _grace: Duration) -> EngineResult<()> {
        let now = self.now_ms();
        let mut state = self.lock();
        state.check_reachable()?;
        let Some(id) = state.resolve(id) else {
            return Ok(());
        };
        let events = remove_container(&mut state, &id, now);
        drop(state);
        events.into_iter().for_each(|e| self.emit(e));
        Ok(())
    }

    async fn list_containers(
        &self,
        label_filter: &BTreeMap<String, String>,
    ) -> EngineResult<Vec<ObservedContainer>> {
        let state = self.lock();
        state.check_reachable()?;
        Ok(state
            .containers
            .values()
            .filter(|c| matches(&c.observed.labels, label_filter))
            .map(|c| c.observed.clone())
            .collect())
    }

    fn events(
        &self,
        label_filter: &BTreeMap<String, String>,
    ) -> BoxStream<'static, EngineResult<EngineEvent>> {
        if let Err(error) = self.lock().check_reachable() {
            return stream::iter([Err(error)]).boxed();
        }
        // Subscribed now: what happens from here on is delivered, however late it is polled.
        let receiver = self.events.subscribe();
        let filter = label_filter.clone();
        stream::unfold(Some(receiver), move |receiver| {
            let filter = filter.clone();
            async move {
                let mut receiver = receiver?;
                loop {
                    match receiver.recv().await {
                        Ok(Signal::Event(event)) if matches(&event.labels, &filter) => {
                            return Some((Ok(event), Some(receiver)));
                        }
                        Ok(Signal::Event(_)) => {}
                        Ok(Signal::Disconnect) | Err(broadcast::error::RecvError::Closed) => {
                            return None;
                        }
                        Err(broadcast::error::RecvError::Lagged(missed)) => {
                            let error =
                                EngineError::Other(format!("{missed} events missed; resubscribe"));
                            return Some((Err(error), None));
                        }
                    }
                }
            }
        })
        .boxed()
    }

    fn logs(&self, id: &str, options: LogOptions) -> BoxStream<'static, EngineResult<LogLine>> {
        let state = self.lock();
        if let Err(error) = state.check_reachable() {
            return stream::iter([Err(error)]).boxed();
        }
        let Some(c) = state.resolve(id).and_then(|id| state.containers.get(&id)) else {
            return stream::iter([Err(not_found(id))]).boxed();
        };
        let skip = options
            .tail
            .map_or(0, |tail| c.logs.len().saturating_sub(tail as usize));
        let history: Vec<EngineResult<LogLine>> = c.logs[skip..].iter().cloned().map(Ok).collect();
        let follow = options
            .follow
            .then(|| c.followers.as_ref().map(broadcast::Sender::subscribe))
            .flatten();
        drop(state);
        let history = stream::iter(history);
        match follow {
            None => history.boxed(),
            Some(receiver) => history
                .chain(stream::unfold(receiver, |mut receiver| async move {
                    loop {
                        match receiver.recv().await {
                            Ok(line) => return Some((Ok(line), receiver)),
                            Err(broadcast::error::RecvError::Lagged(_)) => {}
                            Err(broadcast::error::RecvError::Closed) => return None,
                        }
                    }
                }))
                .boxed(),
        }
    }

    async fn resource_sample(&self, id: &str) -> EngineResult<ResourceSample> {
        let now = self.now_ms();
        let state = self.lock();
        state.check_reachable()?;
        let c = state
            .resolve(id)
            .and_then(|id| state.containers.get(&id))
            .ok_or_else(|| not_found(id))?;
        if c.observed.state != ContainerState::Running {
            return Err(EngineError::Conflict(format!(
                "container {id} is not running"
            )));
        }
        let ran = Instant::now().duration_since(c.started).as_nanos();
        let cpu = ran * u128::from(c.burn_millicores) / 1000;
        Ok(ResourceSample {
            sampled_at_ms: now,
            cpu_time_ns: u64::try_from(cpu).unwrap_or(u64::MAX),
            memory_bytes: MEMORY_IN_USE,
            memory_limit_bytes: Some(c.spec.memory_bytes.unwrap_or(NODE_MEMORY)),
        })
    }

    async fn ensure_volume(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> EngineResult<()> {
        let mut state = self.lock();
        state.check_reachable()?;
        state
            .volumes
            .entry(name.to_owned())
            .or_insert_with(|| (labels.clone(), EMPTY_ARCHIVE.to_vec()));
        Ok(())
    }

    async fn list_volumes(
        &self,
        label_filter: &BTreeMap<String, String>,
        measure: bool,
    ) -> EngineResult<Vec<ObservedVolume>> {
        let state = self.lock();
        state.check_reachable()?;
        Ok(state
            .volumes
            .iter()
            .filter(|(_, (labels, _))| matches(labels, label_filter))
            .map(|(name, (labels, archive))| ObservedVolume {
                name: name.clone(),
                labels: labels.clone(),
                size_bytes: measure.then_some(archive.len() as u64),
            })
            .collect())
    }

    async fn remove_volume(&self, name: &str) -> EngineResult<()> {
        let mut state = self.lock();
        state.check_reachable()?;
        if let Some(user) = state
            .containers
            .values()
            .find(|c| c.spec.mounts.iter().any(|m| m.volume == name))
        {
            return Err(EngineError::Conflict(format!(
                "volume {name} is in use by container {}",
                user.observed.id
            )));
        }
        state.volumes.remove(name);
        Ok(())
    }

    fn export_volume(&self, name: &str) -> BoxStream<'static, EngineResult<bytes::Bytes>> {
        let state = self.lock();
        let answer = match state.check_reachable() {
            Err(e) => Err(e),
            Ok(()) => state
                .volumes
                .get(name)
                .map(|(_, archive)| bytes::Bytes::from(archive.clone()))
                .ok_or_else(|| EngineError::NotFound(format!("volume {name}"))),
        };
        stream::once(async move { answer }).boxed()
    }

    async fn import_volume(
        &self,
        name: &str,
        archive: BoxStream<'static, std::io::Result<bytes::Bytes>>,
    ) -> EngineResult<()> {
        if !self.lock().volumes.contains_key(name) {
            return Err(EngineError::NotFound(format!("volume {name}")));
        }
        let chunks: Vec<std::io::Result<bytes::Bytes>> = archive.collect().await;
        let mut all = Vec::new();
        for chunk in chunks {
            all.extend_from_slice(&chunk.map_err(|e| EngineError::Other(e.to_string()))?);
        }
        let mut state = self.lock();
        state.check_reachable()?;
        match state.volumes.get_mut(name) {
            Some((_, archive)) => {
                *archive = all;
                Ok(())
            }
            None => Err(EngineError::NotFound(format!("volume {name}"))),
        }
    }

    async fn exec(&self, id: &str, _spec: &crate::ExecSpec) -> EngineResult<crate::ExecSession> {
        let state = self.lock();
        state.check_reachable()?;
        state.resolve(id).ok_or_else(|| not_found(id))?;
        Err(EngineError::Other(
            "the fake runtime runs no processes to exec into".to_owned(),
        ))
    }

    async fn resize_exec(&self, exec_id: &str, _cols: u16, _rows: u16) -> EngineResult<()> {
        Err(not_found(exec_id))
    }

    async fn exec_exit_code(&self, exec_id: &str) -> EngineResult<Option<i64>> {
        Err(not_found(exec_id))
    }
}

impl FakeRuntime {
    /// How whatever listens at `address:port` answers (`Refused` when nothing does).
    fn answer_at(&self, address: &str, port: u16) -> HttpAnswer {
        let state = self.lock();
        state
            .containers
            .values()
            .find(|c| {
                c.observed.state == ContainerState::Running
                    && c.observed.ip_address.as_deref() == Some(address)
                    && c.port == port
            })
            .map(|c| {
                c.http
                    .or_else(|| state.image_http.get(&c.spec.image).copied())
                    .unwrap_or(HttpAnswer::Status(200))
            })
            .unwrap_or(HttpAnswer::Refused)
    }
}

async fn no_answer(timeout: Duration) -> Result<(), String> {
    tokio::time::sleep(timeout).await;
    Err(format!("no answer within {} ms", timeout.as_millis()))
}

/// Probes reach the fake's running instances by their listed address and port.
#[async_trait]
impl InstanceProbe for FakeRuntime {
    async fn http(
        &self,
        address: &str,
        port: u16,
        _path: &str,
        timeout: Duration,
    ) -> Result<(), String> {
        match self.answer_at(address, port) {
            HttpAnswer::Status(code) if (200..400).contains(&code) => Ok(()),
            HttpAnswer::Status(code) => Err(format!("HTTP {code}")),
            HttpAnswer::Refused => Err("connection refused".to_owned()),
            HttpAnswer::Hang => no_answer(timeout).await,
        }
    }

    /// Any HTTP status means something accepted the connection; `Hang` stands for a port
    /// whose connects are dropped.
    async fn tcp(&self, address: &str, port: u16, timeout: Duration) -> Result<(), String> {
        match self.answer_at(address, port) {
            HttpAnswer::Status(_) => Ok(()),
            HttpAnswer::Refused => Err("connection refused".to_owned()),
            HttpAnswer::Hang => no_answer(timeout).await,
        }
    }
}
