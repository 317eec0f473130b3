//! The engine seams: the container operations Berth needs, independent of any runtime.
//!
//! Two traits, so a backend implements only what it runs:
//! * [`Runtime`] runs app instances ([`InstanceSpec`], [`ObservedContainer`], [`EngineEvent`],
//!   [`ResourceSample`]); the controller depends on it alone;
//! * [`ImageBuilder`] builds images and runs, tags, pushes and removes them ([`BuildSpec`],
//!   [`RunSpec`]); the code pipeline depends on it alone.
//!
//! Only this crate knows bollard: [`docker::DockerEngine`] implements both. A Swarm (and later
//! Kubernetes) runtime implements [`Runtime`] only. Every implementation passes the matching
//! half of the conformance suite (`conformance`, behind the feature of that name); the
//! in-memory `fake::FakeRuntime` (feature `fake`) passes the runtime half and stands in for
//! Docker in the controller's tests. [`probe::InstanceProbe`] is how the host reaches an
//! instance's port on the runtime's network (the seam of the prober's HTTP and TCP checks).

#[cfg(feature = "conformance")]
pub mod conformance;
pub mod context;
pub mod docker;
#[cfg(feature = "fake")]
pub mod fake;
pub mod fenced;
pub mod node_agent;
pub mod probe;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use tokio_util::sync::CancellationToken;

pub use docker::DockerEngine;
pub use docker::swarm::SwarmEngine;
pub use fenced::{Fence, FencedRuntime};

/// Labels every Berth-managed container carries; observed state is rebuilt from them.
pub mod labels {
    /// The engine namespace (one per Berth installation) that owns the container.
    pub const NAMESPACE: &str = "berth.namespace";
    /// The app the container belongs to.
    pub const APP: &str = "berth.app";
    /// The revision number the container runs.
    pub const REVISION: &str = "berth.revision";
    /// The instance name (`<app>-<ordinal>`).
    pub const INSTANCE: &str = "berth.instance";
    /// The ordinal of the instance within its app.
    pub const ORDINAL: &str = "berth.ordinal";
    /// How many times in a row this instance's predecessors crashed (crash-loop backoff).
    pub const RESTARTS: &str = "berth.restarts";
    /// The pipeline build that runs a throwaway container (its tests). Such containers never
    /// carry [`APP`], so the reconciler never counts or removes them.
    pub const BUILD: &str = "berth.build";
    /// The pipeline (`team/name`) whose build runs a throwaway container.
    pub const PIPELINE: &str = "berth.pipeline";
    /// The per-instance volume slot an instance holds (see `berth_core::volume`).
    pub const VOLUME_SLOT: &str = "berth.volume-slot";
    /// On a volume: the team that owns it.
    pub const TEAM: &str = "berth.team";
    /// On a volume: its name within the team.
    pub const VOLUME: &str = "berth.volume";

    /// Every label Berth decides things by. A container Berth makes carries each of them,
    /// empty when Berth gives it no value: a container's labels override its image's, so an
    /// image (whose labels anyone who writes a Dockerfile chooses) can never make a container
    /// pass for an instance, a build's or another installation's.
    pub const RESERVED: [&str; 9] = [
        NAMESPACE,
        APP,
        REVISION,
        INSTANCE,
        ORDINAL,
        RESTARTS,
        BUILD,
        PIPELINE,
        VOLUME_SLOT,
    ];

    /// `set` with every [`RESERVED`] label it lacks added, empty.
    pub fn with_reserved_blank(
        set: &std::collections::BTreeMap<String, String>,
    ) -> std::collections::BTreeMap<String, String> {
        let mut all = set.clone();
        for key in RESERVED {
            all.entry(key.to_owned()).or_default();
        }
        all
    }
}

/// Errors from the engine layer.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The engine could not be reached at all (socket missing, daemon down).
    #[error("container engine unreachable: {0}")]
    Unreachable(String),
    /// The image does not exist locally and could not be pulled.
    #[error("image {image} not found: {reason}")]
    ImageNotFound { image: String, reason: String },
    /// The container (or other object) does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// A name is already taken by another object.
    #[error("conflict: {0}")]
    Conflict(String),
    /// An image build failed: a Dockerfile instruction failed or the Dockerfile or a file it
    /// needs is missing. The message is the builder's.
    #[error("image build failed: {0}")]
    BuildFailed(String),
    /// A registry refused or failed a push (bad credentials, no permission, quota, network).
    #[error("push of {reference} failed: {reason}")]
    PushFailed { reference: String, reason: String },
    /// This engine cannot do that (yet): the message says what.
    #[error("{0}")]
    Unsupported(String),
    /// Any other engine failure, with the engine's message.
    #[error("engine error: {0}")]
    Other(String),
}

pub type EngineResult<T> = Result<T, EngineError>;

/// What the engine is: shown by `/readyz` and used in events; the node it runs on (name,
/// capacity, where it keeps its data) for the node monitor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineInfo {
    pub name: String,
    pub version: String,
    pub node_name: String,
    pub cpus: u32,
    pub memory_bytes: u64,
    /// Where the engine keeps images, containers and volumes (Docker's `DockerRootDir`), as
    /// the engine names it; `None` when it does not say.
    pub data_root: Option<String>,
}

/// A machine the engine runs instances on: a Swarm node, or the one machine of a single
/// engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineNode {
    /// Its host name (what instances name as their node).
    pub name: String,
    /// The engine on it and its version (`docker 20.10.24`).
    pub engine: String,
    pub cpus: u32,
    pub memory_bytes: u64,
    /// Where its engine keeps its data, when known.
    pub data_root: Option<String>,
    /// The address other machines reach it at, when the engine says.
    pub address: Option<String>,
    /// `manager`, `worker`, or `standalone` (a single engine).
    pub role: String,
    /// `ready`, `down`, `disconnected` or `unknown`, as the engine sees it.
    pub state: String,
    /// Whether it takes instances.
    pub availability: NodeAvailability,
    /// The engine's labels of the node (a Swarm node's `datacenter`).
    pub labels: BTreeMap<String, String>,
    /// Whether it is the machine Berth runs on (its CPU, memory and disks are read there).
    pub local: bool,
}

impl EngineNode {
    /// The one node of a single engine: the machine Berth runs on.
    pub fn standalone(info: EngineInfo) -> EngineNode {
        EngineNode {
            name: info.node_name,
            engine: format!("{} {}", info.name, info.version),
            cpus: info.cpus,
            memory_bytes: info.memory_bytes,
            data_root: info.data_root,
            address: None,
            role: "standalone".into(),
            state: "ready".into(),
            availability: NodeAvailability::Active,
            labels: BTreeMap::new(),
            local: true,
        }
    }
}

/// Whether a node takes instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeAvailability {
    /// Takes new instances.
    Active,
    /// Keeps its instances, takes no new ones.
    Pause,
    /// Its instances move to other nodes; takes none.
    Drain,
}

impl NodeAvailability {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeAvailability::Active => "active",
            NodeAvailability::Pause => "pause",
            NodeAvailability::Drain => "drain",
        }
    }

    pub fn parse(value: &str) -> Option<NodeAvailability> {
        match value {
            "active" => Some(NodeAvailability::Active),
            "pause" => Some(NodeAvailability::Pause),
            "drain" => Some(NodeAvailability::Drain),
            _ => None,
        }
    }
}

/// Credentials for a private registry (pulls, pushes, base images of builds).
#[derive(Clone, PartialEq, Eq)]
pub struct RegistryAuth {
    pub username: String,
    pub password: String,
    pub server: String,
}

// The password never shows in logs or panics.
impl std::fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryAuth")
            .field("username", &self.username)
            .field("password", &"***")
            .field("server", &self.server)
            .finish()
    }
}

/// Everything needed to create and start one instance container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceSpec {
    /// Container name, unique on the engine.
    pub name: String,
    pub image: String,
    /// Overrides the image entrypoint when non-empty.
    pub command: Vec<String>,
    /// Overrides the image cmd when non-empty.
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
    /// All labels, including the `berth.*` ones from [`labels`].
    pub labels: BTreeMap<String, String>,
    /// The Berth-managed network the container joins (its address is probed there).
    pub network: String,
    /// Hostname aliases on that network (the app name, so dependencies resolve).
    pub network_aliases: Vec<String>,
    /// CPU limit in millicores (1000 = one core); `None` means unlimited.
    pub cpu_millis: Option<u64>,
    /// Memory limit in bytes; `None` means unlimited.
    pub memory_bytes: Option<u64>,
    /// Grace period between SIGTERM and SIGKILL when the container is stopped.
    pub stop_grace: Duration,
    /// Credentials to pull the image with, when it is not present locally.
    pub registry_auth: Option<RegistryAuth>,
    /// Named volumes mounted into the container (each made beforehand with
    /// [`Runtime::ensure_volume`]).
    pub mounts: Vec<VolumeMount>,
    /// Environment variables whose values are secrets (beside `env`; never printed).
    pub secret_env: BTreeMap<String, Sensitive>,
    /// Files written into the container before it starts (secrets; read-only for all).
    pub files: Vec<InstanceFile>,
    /// The ports the instance serves on (the app's and its probes'): an engine that reaches
    /// instances through their node publishes these.
    pub ports: Vec<u16>,
    /// Conditions on the labels of the node it runs on (kept by an engine of several nodes;
    /// one engine's single node was checked when the app was deployed).
    pub node_constraints: Vec<NodeLabelConstraint>,
}

/// A condition on the labels of the node an instance runs on: `label==value` (`equal`) or
/// `label!=value` (which a node without the label meets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeLabelConstraint {
    pub label: String,
    pub equal: bool,
    pub value: String,
}

impl std::fmt::Display for NodeLabelConstraint {
    /// As written: `label==value` or `label!=value`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let op = if self.equal { "==" } else { "!=" };
        write!(f, "{}{op}{}", self.label, self.value)
    }
}

impl NodeLabelConstraint {
    /// Whether a node with `labels` meets it.
    pub fn met_by(&self, labels: &BTreeMap<String, String>) -> bool {
        (labels.get(&self.label) == Some(&self.value)) == self.equal
    }
}

/// Bytes that never show in logs or panics: a secret's value.
#[derive(Clone, PartialEq, Eq)]
pub struct Sensitive(pub Vec<u8>);

impl std::fmt::Debug for Sensitive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<{} secret bytes>", self.0.len())
    }
}

/// A file put into an instance's container before it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceFile {
    /// Absolute path inside the container.
    pub path: String,
    pub contents: Sensitive,
}

/// A command to run inside a running container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecSpec {
    /// The program and its arguments.
    pub command: Vec<String>,
    /// Give it a terminal (stdout and stderr merged, a size, Ctrl-C as a byte).
    pub tty: bool,
    /// The terminal's columns and rows.
    pub size: Option<(u16, u16)>,
    /// Extra environment, `KEY=VALUE`.
    pub env: Vec<String>,
}

/// A command running inside a container: its output and its input, until it exits.
pub struct ExecSession {
    /// The engine's id of the exec (to resize it and read its exit code).
    pub id: String,
    /// Its output (stdout and stderr, or the terminal's).
    pub output: BoxStream<'static, EngineResult<Bytes>>,
    /// Its standard input.
    pub input: std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>,
}

impl std::fmt::Debug for ExecSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecSession")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// A named volume mounted into an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeMount {
    /// The engine's name of the volume.
    pub volume: String,
    /// Absolute path inside the container.
    pub target: String,
    pub read_only: bool,
}

/// A named volume as the engine lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedVolume {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// Bytes it holds, when the listing measured it.
    pub size_bytes: Option<u64>,
}

/// The lifecycle state of a container as the engine reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContainerState {
    Created,
    Running,
    Restarting,
    Paused,
    Removing,
    Exited,
    Dead,
}

/// One Berth-managed container as observed on the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedContainer {
    pub id: String,
    pub name: String,
    pub image: String,
    pub labels: BTreeMap<String, String>,
    pub state: ContainerState,
    /// Address on the Berth network, when running.
    pub ip_address: Option<String>,
    /// Unix milliseconds.
    pub created_at_ms: i64,
    /// Unix milliseconds of the last start, when it started at least once.
    pub started_at_ms: Option<i64>,
    /// Unix milliseconds of the last exit, when it exited.
    pub finished_at_ms: Option<i64>,
    pub exit_code: Option<i64>,
    /// The engine's error message for a failed start, if any.
    pub error: Option<String>,
    /// The node the container runs on.
    pub node: String,
    /// Its node is being drained: Berth moves the instance away (a replacement first).
    pub node_draining: bool,
    /// Ports the instance is reached on at `ip_address` that differ from the ones it serves
    /// on (container port → reachable port): an engine whose instances are reached through
    /// their node's address publishes each port on a port of the node. Empty when the
    /// instance is reached at its own address.
    pub published_ports: BTreeMap<u16, u16>,
}

impl ObservedContainer {
    /// The port at [`ObservedContainer::ip_address`] that reaches the instance's `port`.
    pub fn reachable_port(&self, port: u16) -> u16 {
        self.published_ports.get(&port).copied().unwrap_or(port)
    }
}

/// A change on the engine worth waking the reconciler for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineEvent {
    pub container_id: String,
    /// The Docker action (`start`, `die`, `destroy`, …).
    pub action: String,
    pub labels: BTreeMap<String, String>,
}

/// Which output stream a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStream {
    Stdout,
    Stderr,
}

/// One line (or chunk) of a container's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub stream: LogStream,
    /// Unix milliseconds, from the engine's timestamps.
    pub timestamp_ms: Option<i64>,
    pub text: String,
}

/// Options for reading logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogOptions {
    pub follow: bool,
    /// Only the last N lines of the history (`None` = all).
    pub tail: Option<u64>,
}

/// Receives output lines of a build, a throwaway run or a push as they happen.
pub type OutputSink<'a> = &'a (dyn Fn(LogLine) + Send + Sync);

/// The files an image is built from.
pub enum BuildContext {
    /// A directory on this host, sent as a tar archive. Paths its `.dockerignore` excludes are
    /// left out (see [`context::DockerIgnore`]); the Dockerfile and `.dockerignore` always go,
    /// and the image's labels go as one `LABEL` line of a copy of the Dockerfile added to the
    /// archive (see [`context::labelled_dockerfile`]).
    Directory(PathBuf),
    /// A ready tar archive (plain or compressed as the engine accepts), streamed as it is.
    Tar(BoxStream<'static, std::io::Result<Bytes>>),
}

impl std::fmt::Debug for BuildContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Directory(dir) => f.debug_tuple("Directory").field(dir).finish(),
            Self::Tar(_) => f.write_str("Tar(..)"),
        }
    }
}

/// An image to build.
#[derive(Debug)]
pub struct BuildSpec {
    pub context: BuildContext,
    /// Path of the Dockerfile inside the context, `/`-separated; empty means `Dockerfile`.
    pub dockerfile: String,
    /// References (`repo:tag`) the built image gets; may be empty.
    pub tags: Vec<String>,
    /// `ARG` values.
    pub build_args: BTreeMap<String, String>,
    /// Labels added to the image on top of the Dockerfile's (e.g. [`labels::BUILD`]).
    pub labels: BTreeMap<String, String>,
    /// Credentials for base images (`FROM`) in private registries.
    pub registry_auth: Vec<RegistryAuth>,
    /// CPU (millicores) and memory (bytes, no swap beyond it) each `RUN` step's container may
    /// use; `None`: unlimited.
    pub cpu_millis: Option<u64>,
    pub memory_bytes: Option<u64>,
}

/// A throwaway container that runs a command to its end (a pipeline's tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSpec {
    /// Container name, unique on the engine.
    pub name: String,
    pub image: String,
    /// The program and its arguments; replaces the image's entrypoint and cmd when non-empty.
    pub command: Vec<String>,
    pub env: BTreeMap<String, String>,
    /// Labels of the container (e.g. `berth.namespace`, [`labels::BUILD`]).
    pub labels: BTreeMap<String, String>,
    /// The container is killed once it has run this long.
    pub timeout: Duration,
    /// CPU limit in millicores; `None` means unlimited.
    pub cpu_millis: Option<u64>,
    /// Memory limit in bytes; `None` means unlimited.
    pub memory_bytes: Option<u64>,
    /// A network to join instead of the engine's default one.
    pub network: Option<String>,
}

/// How a throwaway run ended. The container is gone in every case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    /// The command ran to its end with this exit code.
    Exited(i64),
    /// It ran longer than [`RunSpec::timeout`] and was killed.
    TimedOut,
    /// The cancel token fired and it was killed.
    Cancelled,
}

/// One reading of a container's resource use. CPU is cumulative, so a rate needs two samples:
/// (`cpu_time_ns` difference) / (`sampled_at_ms` difference).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceSample {
    /// When the engine read the numbers, unix milliseconds (the engine's clock).
    pub sampled_at_ms: i64,
    /// CPU time the container has used since it started, over all cores, in nanoseconds.
    pub cpu_time_ns: u64,
    /// Memory in use in bytes, without the page cache the kernel can drop (what `docker stats`
    /// shows: usage minus inactive file pages).
    pub memory_bytes: u64,
    /// The memory the container may use: its limit, or the node's memory when it has none.
    pub memory_limit_bytes: Option<u64>,
}

/// Runs app instances: everything the controller (reconciler, prober, usage sampler) needs
/// from a container runtime, and nothing about images beyond pulling them. A Docker Swarm (and
/// later Kubernetes) runtime implements this trait only, and must pass the runtime checks of
/// the conformance suite (`conformance::runtime`, behind the `conformance` feature).
#[async_trait]
pub trait Runtime: Send + Sync + 'static {
    /// Checks that the runtime answers and describes it.
    async fn info(&self) -> EngineResult<EngineInfo>;

    /// The machines instances run on. A single engine is one node, the local machine.
    async fn nodes(&self) -> EngineResult<Vec<EngineNode>> {
        Ok(vec![EngineNode::standalone(self.info().await?)])
    }

    /// Sets whether a node takes instances (`drain`: its instances move away). A
    /// [`EngineError::NotFound`] for an unknown node.
    async fn set_node_availability(
        &self,
        _node: &str,
        _availability: NodeAvailability,
    ) -> EngineResult<()> {
        Err(EngineError::Unsupported(
            "a single Docker Engine is one node: draining needs a multi-node engine (--engine swarm)"
                .into(),
        ))
    }

    /// Replaces a node's labels in the engine, for an engine that places instances by them
    /// (`true`); `false`: this engine keeps no labels of Berth's (Berth keeps them itself).
    async fn set_node_labels(
        &self,
        _node: &str,
        _labels: &BTreeMap<String, String>,
    ) -> EngineResult<bool> {
        Ok(false)
    }

    /// A reading of the host of `node`, a node Berth does not run on, by the node agent
    /// there: the JSON it prints (see `berth_engine::node_agent`). `None` when there is no
    /// reading to give: this engine keeps no agent on that node (a single engine's one node
    /// is the machine Berth runs on; a Swarm node whose engine Berth does not reach has
    /// none), or the agent is still being set up.
    async fn read_node(&self, _node: &str) -> EngineResult<Option<Vec<u8>>> {
        Ok(None)
    }

    /// Creates the named bridge network if it does not exist yet (idempotent).
    async fn ensure_network(&self, name: &str) -> EngineResult<()>;

    /// Makes sure the image is available, pulling it when it is not present locally.
    async fn ensure_image(&self, image: &str, auth: Option<&RegistryAuth>) -> EngineResult<()>;

    /// Creates and starts a container; returns its id. On a start failure the created
    /// container is removed again, so nothing half-made stays behind.
    async fn start_instance(&self, spec: &InstanceSpec) -> EngineResult<String>;

    /// Stops a container gracefully (SIGTERM, then SIGKILL after `grace`) and removes it.
    /// A container that is already gone is not an error.
    async fn stop_instance(&self, id: &str, grace: Duration) -> EngineResult<()>;

    /// Lists every container (running or not) whose labels contain all of `label_filter`.
    async fn list_containers(
        &self,
        label_filter: &BTreeMap<String, String>,
    ) -> EngineResult<Vec<ObservedContainer>>;

    /// A stream of container events for containers carrying all of `label_filter`.
    /// The stream ends when the engine connection breaks; callers re-subscribe.
    /// Events that happen after this call returns are delivered even when the stream is first
    /// polled later (so "subscribe, then list" misses nothing); a few earlier ones may repeat.
    fn events(
        &self,
        label_filter: &BTreeMap<String, String>,
    ) -> BoxStream<'static, EngineResult<EngineEvent>>;

    /// A container's output.
    fn logs(&self, id: &str, options: LogOptions) -> BoxStream<'static, EngineResult<LogLine>>;

    /// One resource sample of a running container, read at once (no waiting for a second
    /// reading). A container that does not exist is [`EngineError::NotFound`]; one that exists
    /// but is not running is [`EngineError::Conflict`].
    async fn resource_sample(&self, id: &str) -> EngineResult<ResourceSample>;

    /// Creates the named volume with these labels if it does not exist yet (idempotent; an
    /// existing volume keeps its labels and data).
    async fn ensure_volume(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> EngineResult<()>;

    /// Lists the volumes whose labels contain all of `label_filter`; `measure` also reads
    /// how many bytes each holds (slower: the engine walks them).
    async fn list_volumes(
        &self,
        label_filter: &BTreeMap<String, String>,
        measure: bool,
    ) -> EngineResult<Vec<ObservedVolume>>;

    /// Removes a volume and its data. A volume that does not exist is not an error; one a
    /// container still mounts is [`EngineError::Conflict`].
    async fn remove_volume(&self, name: &str) -> EngineResult<()>;

    /// Empties a volume where it is (a restore's fresh store): it is removed and made again
    /// with `labels`, on the same node for an engine of several. A volume a container still
    /// mounts is [`EngineError::Conflict`], and stays as it was.
    async fn empty_volume(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> EngineResult<()> {
        self.remove_volume(name).await?;
        self.ensure_volume(name, labels).await
    }

    /// The volume's files as an uncompressed tar stream, entries relative to its root (`./…`).
    /// A missing volume is [`EngineError::NotFound`].
    fn export_volume(&self, name: &str) -> BoxStream<'static, EngineResult<Bytes>>;

    /// Extracts an uncompressed tar archive (entries relative to the root) into the volume,
    /// over what it holds; the engine refuses entries that would land outside it. A missing
    /// volume is [`EngineError::NotFound`].
    async fn import_volume(
        &self,
        name: &str,
        archive: BoxStream<'static, std::io::Result<Bytes>>,
    ) -> EngineResult<()>;

    /// Starts `spec` inside the running container `id`, attached. A container that does not
    /// exist is [`EngineError::NotFound`]; one that is not running, [`EngineError::Conflict`].
    async fn exec(&self, id: &str, spec: &ExecSpec) -> EngineResult<ExecSession>;

    /// Sets the terminal size of a running exec.
    async fn resize_exec(&self, exec_id: &str, cols: u16, rows: u16) -> EngineResult<()>;

    /// An exec's exit code; `None` while it runs.
    async fn exec_exit_code(&self, exec_id: &str) -> EngineResult<Option<i64>>;
}

/// Builds images and runs, tags, pushes and removes them: everything the code pipeline needs.
/// Independent of where instances run: a Swarm installation can keep building on one local
/// Docker Engine. Implementations must pass the builder checks of the conformance suite
/// (`conformance::builder`).
#[async_trait]
pub trait ImageBuilder: Send + Sync + 'static {
    /// Builds an image, reusing the engine's build cache; returns the image id
    /// (`sha256:…`). Progress lines go to `output` as they come. A failing instruction, or a
    /// missing Dockerfile or file, is [`EngineError::BuildFailed`]. Dropping the future
    /// abandons the build (the engine stops it when the connection closes).
    async fn build_image(&self, spec: BuildSpec, output: OutputSink<'_>) -> EngineResult<String>;

    /// Runs `spec` in a new container until it exits, streaming its output, and removes the
    /// container afterwards. It is killed when `spec.timeout` passes or `cancel` fires; a
    /// container whose run is dropped midway is removed in the background.
    async fn run_to_completion(
        &self,
        spec: &RunSpec,
        output: OutputSink<'_>,
        cancel: &CancellationToken,
    ) -> EngineResult<RunOutcome>;

    /// The throwaway containers of [`ImageBuilder::run_to_completion`] still present (a run
    /// dropped midway is removed in the background) whose labels contain all of
    /// `label_filter`.
    async fn list_runs(
        &self,
        label_filter: &BTreeMap<String, String>,
    ) -> EngineResult<Vec<ObservedContainer>>;

    /// Kills and removes a throwaway container at once. One that is already gone is not an
    /// error.
    async fn remove_run(&self, id: &str) -> EngineResult<()>;

    /// The id of a local image (`repo:tag`, or an id), or `None` when it is not present.
    async fn image_id(&self, reference: &str) -> EngineResult<Option<String>>;

    /// Gives the local image `source` the additional reference `target` (`repo:tag`).
    async fn tag_image(&self, source: &str, target: &str) -> EngineResult<()>;

    /// Pushes a local image (`registry/repo:tag`) and returns the manifest digest the registry
    /// stored (`sha256:…`). Progress lines go to `output`. A refusal by the registry is
    /// [`EngineError::PushFailed`]; dropping the future abandons the push.
    async fn push_image(
        &self,
        reference: &str,
        auth: Option<&RegistryAuth>,
        output: OutputSink<'_>,
    ) -> EngineResult<String>;

    /// Removes a reference to a local image; the image goes with its last reference (by id:
    /// only an image with at most one tag). A reference that does not exist is not an error;
    /// one that a container uses is a [`EngineError::Conflict`].
    async fn remove_image(&self, reference: &str) -> EngineResult<()>;

    /// The local images carrying every label of `label_filter` (all of them when empty).
    async fn list_images(
        &self,
        label_filter: &BTreeMap<String, String>,
    ) -> EngineResult<Vec<LocalImage>>;
}

/// An image in the engine's local store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalImage {
    pub id: String,
    /// When it was made (unix ms).
    pub created_ms: i64,
    /// Its tags (`repo:tag`).
    pub tags: Vec<String>,
    pub labels: BTreeMap<String, String>,
}
