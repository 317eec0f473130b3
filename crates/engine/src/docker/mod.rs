//! The Docker Engine implementation of [`Runtime`] and [`ImageBuilder`], on bollard (API negotiated down to the daemon's).
//!
//! Pitfalls this module handles, found against Docker 20.10 (API 1.41):
//! - bollard speaks API 1.53 by default; 20.10 rejects that, so the version is negotiated
//!   lazily before the first request (and retried until it succeeds).
//! - bollard's request timeout (120 s) covers the wait for response headers; pulls, stops with
//!   long grace periods, logs and events use a client with a longer one.
//! - a pull of a repository without a tag pulls *every* tag: references are split and default
//!   to `latest`, like the docker CLI does.
//! - 20.10 creates a second network with the same name unless `CheckDuplicate` is sent, which
//!   bollard's 1.53 model cannot express: [`DockerEngine::ensure_network`] serialises creations
//!   in-process and removes duplicates a concurrent creator left behind (keeping the oldest).
//! - `State.StartedAt`/`FinishedAt` use `0001-01-01T00:00:00Z` for "never", and a process that
//!   exits at once often gets a `FinishedAt` a few ms *before* its `StartedAt`.
//! - builds use the classic builder (20.10's BuildKit needs a session bollard only speaks with
//!   its `buildkit` feature); it names only one tag per request, so further tags are added
//!   afterwards. A build or push stops on the daemon when its connection closes.
//! - the push progress stream carries no `aux` digest in bollard's model: the digest is read
//!   from the final `<tag>: digest: sha256:… size: N` status line.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bollard::auth::DockerCredentials;
use bollard::container::LogOutput;
use bollard::errors::Error as BollardError;
use bollard::models::{
    BuildInfo, ContainerCreateBody, ContainerInspectResponse, ContainerSummary, EndpointSettings,
    EventMessage, HostConfig, NetworkCreateRequest, NetworkingConfig, PushImageInfo, RestartPolicy,
    RestartPolicyNameEnum,
};
use bollard::query_parameters::{
    BuildImageOptions, CreateContainerOptionsBuilder, CreateImageOptionsBuilder,
    EventsOptionsBuilder, ListContainersOptionsBuilder, ListImagesOptionsBuilder,
    ListNetworksOptionsBuilder, LogsOptionsBuilder, PushImageOptionsBuilder,
    RemoveContainerOptionsBuilder, RemoveImageOptionsBuilder, StopContainerOptionsBuilder,
    TagImageOptionsBuilder, WaitContainerOptionsBuilder,
};
use bollard::{API_DEFAULT_VERSION, Docker, body_try_stream};
use futures::stream::{self, BoxStream, StreamExt};
use tokio::sync::{Mutex, OnceCell};
use tokio_util::sync::CancellationToken;

mod exec;
mod node_agent;
pub mod swarm;
mod volumes;

use crate::context::{
    DEFAULT_DOCKERFILE, LABELLED_DOCKERFILE, labelled_dockerfile, pack_directory,
};
use crate::{
    BuildContext, BuildSpec, ContainerState, EngineError, EngineEvent, EngineInfo, EngineResult,
    ImageBuilder, InstanceSpec, LocalImage, LogLine, LogOptions, LogStream, ObservedContainer,
    OutputSink, RegistryAuth, RunOutcome, RunSpec, Runtime, labels,
};

/// Where the daemon listens when `DOCKER_HOST` is not set.
pub const DEFAULT_DOCKER_HOST: &str = "unix:///var/run/docker.sock";
/// Timeout for ordinary requests (until the response headers arrive).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// Timeout for requests that legitimately take long before answering: pulls, logs, events.
const STREAM_TIMEOUT: Duration = Duration::from_secs(600);
/// A pull that reports no progress for this long is abandoned.
const DEFAULT_PULL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How many containers are inspected at once while listing.
const INSPECT_CONCURRENCY: usize = 8;
/// Label put on the networks Berth creates.
pub const MANAGED_NETWORK_LABEL: &str = "berth.managed";
/// Event attributes Docker adds next to the container labels (not labels themselves).
const NON_LABEL_EVENT_ATTRIBUTES: &[&str] = &["image", "name", "exitCode", "signal", "execID"];

/// [`Runtime`] and [`ImageBuilder`] on a Docker Engine (one node), through its HTTP API.
#[derive(Debug, Clone)]
pub struct DockerEngine {
    /// Client for short requests.
    docker: Docker,
    /// The same connection with a long timeout (shares the negotiated version).
    streaming: Docker,
    host: Arc<str>,
    shared: Arc<Shared>,
    pull_idle_timeout: Duration,
}

#[derive(Debug, Default)]
struct Shared {
    negotiated: OnceCell<()>,
    node_name: OnceCell<String>,
    network_lock: Mutex<()>,
}

/// A parsed `DOCKER_HOST`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum DockerHost {
    Unix(String),
    Tcp(String),
}

impl DockerEngine {
    /// Connects to `DOCKER_HOST` (`unix://` or `tcp://`), else to `/var/run/docker.sock`.
    ///
    /// No request is made yet: the API version is negotiated on first use, so a daemon that
    /// starts later is picked up. Call [`Runtime::info`] to check the connection.
    pub fn connect() -> EngineResult<Self> {
        Self::connect_with(None)
    }

    /// Connects to an explicit host (`unix:///path`, `/path`, `tcp://host:port`); `None`
    /// behaves like [`DockerEngine::connect`].
    pub fn connect_with(host: Option<&str>) -> EngineResult<Self> {
        let from_env = std::env::var("DOCKER_HOST")
            .ok()
            .filter(|h| !h.trim().is_empty());
        let explicit = host.is_some();
        let host = host
            .map(str::to_owned)
            .or(from_env)
            .unwrap_or_else(|| DEFAULT_DOCKER_HOST.to_owned());
        let parsed = parse_docker_host(&host).map_err(EngineError::Unreachable)?;
        if !explicit
            && matches!(parsed, DockerHost::Tcp(_))
            && std::env::var("DOCKER_TLS_VERIFY").is_ok_and(|v| !v.is_empty())
        {
            return Err(EngineError::Unreachable(format!(
                "DOCKER_TLS_VERIFY is set for {host}, but Berth talks to Docker without TLS"
            )));
        }
        let timeout = REQUEST_TIMEOUT.as_secs();
        let docker = match &parsed {
            DockerHost::Unix(path) => Docker::connect_with_unix(path, timeout, API_DEFAULT_VERSION),
            DockerHost::Tcp(addr) => Docker::connect_with_http(addr, timeout, API_DEFAULT_VERSION),
        }
        .map_err(map_err)?;
        let streaming = docker.clone().with_timeout(STREAM_TIMEOUT);
        Ok(Self {
            docker,
            streaming,
            host: host.into(),
            shared: Arc::default(),
            pull_idle_timeout: DEFAULT_PULL_IDLE_TIMEOUT,
        })
    }

    /// Abandons a pull that reports no progress for `timeout` (default 60 s), so a registry
    /// that does not answer fails the pull instead of hanging it.
    pub fn with_pull_idle_timeout(mut self, timeout: Duration) -> Self {
        self.pull_idle_timeout = timeout;
        self
    }

    /// The host this engine talks to.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Negotiates the API version once (bollard defaults to a newer one than 20.10 accepts).
    async fn ready(&self) -> EngineResult<&Docker> {
        self.shared
            .negotiated
            .get_or_try_init(|| async {
                let docker = self.docker.clone().negotiate_version().await.map_err(map_err)?;
                let v = docker.client_version();
                tracing::debug!(host = %self.host, api = %format!("{}.{}", v.major_version, v.minor_version), "docker API version negotiated");
                Ok::<(), EngineError>(())
            })
            .await?;
        Ok(&self.docker)
    }

    async fn node_name(&self) -> EngineResult<String> {
        let docker = self.ready().await?;
        self.shared
            .node_name
            .get_or_try_init(|| async {
                let info = docker.info().await.map_err(map_err)?;
                Ok::<String, EngineError>(info.name.unwrap_or_default())
            })
            .await
            .cloned()
    }

    /// The networks named exactly `name` (Docker's name filter matches substrings).
    async fn networks_named(&self, name: &str) -> EngineResult<Vec<NetworkRef>> {
        let docker = self.ready().await?;
        let filters = HashMap::from([("name", vec![name])]);
        let options = ListNetworksOptionsBuilder::new().filters(&filters).build();
        let networks = docker.list_networks(Some(options)).await.map_err(map_err)?;
        Ok(networks
            .into_iter()
            .filter(|n| n.name.as_deref() == Some(name))
            .map(|n| NetworkRef {
                created_ms: n.created.as_deref().and_then(parse_rfc3339_ms),
                managed: n
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(MANAGED_NETWORK_LABEL))
                    .is_some_and(|v| v == "true"),
                id: n.id.unwrap_or_default(),
            })
            .collect())
    }

    /// Removes Berth-managed duplicates of a network name, keeping the oldest one; every
    /// racer picks the same survivor, so concurrent creators converge.
    async fn remove_duplicate_networks(&self, name: &str, mut found: Vec<NetworkRef>) {
        if found.len() < 2 {
            return;
        }
        found.sort_by(|a, b| {
            (a.created_ms.unwrap_or(i64::MAX), &a.id)
                .cmp(&(b.created_ms.unwrap_or(i64::MAX), &b.id))
        });
        for dup in found.iter().skip(1).filter(|n| n.managed) {
            tracing::info!(network = name, id = %dup.id, "removing duplicate network");
            if let Err(e) = self.docker.remove_network(&dup.id).await {
                tracing::debug!(network = name, id = %dup.id, error = %e, "duplicate network not removed");
            }
        }
    }

    async fn pull(&self, image: &str, auth: Option<&RegistryAuth>) -> EngineResult<()> {
        let (repo, tag) = split_image_reference(image);
        let options = CreateImageOptionsBuilder::new()
            .from_image(repo)
            .tag(tag)
            .build();
        let credentials = auth.map(docker_credentials);
        let not_found = |reason: String| EngineError::ImageNotFound {
            image: image.to_owned(),
            reason,
        };
        tracing::info!(image, "pulling image");
        let mut progress = self
            .streaming
            .create_image(Some(options), None, credentials);
        loop {
            match tokio::time::timeout(self.pull_idle_timeout, progress.next()).await {
                Err(_) => {
                    return Err(not_found(format!(
                        "pull made no progress for {} s",
                        self.pull_idle_timeout.as_secs()
                    )));
                }
                Ok(None) => break,
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(BollardError::DockerStreamError { error }))) => {
                    return Err(not_found(error));
                }
                Ok(Some(Err(BollardError::DockerResponseServerError { message, .. }))) => {
                    return Err(not_found(message));
                }
                Ok(Some(Err(e))) => return Err(map_err(e)),
            }
        }
        // A pull stream can end without an error yet without the image (e.g. a cut connection).
        match self.docker.inspect_image(image).await {
            Ok(_) => Ok(()),
            Err(e) if status_of(&e) == Some(404) => Err(not_found(
                "the pull finished but the image is not there".into(),
            )),
            Err(e) => Err(map_err(e)),
        }
    }
}

struct NetworkRef {
    id: String,
    created_ms: Option<i64>,
    managed: bool,
}

/// Removes a throwaway container in the background if its run is dropped midway.
struct RemoveOnDrop {
    docker: Docker,
    id: Option<String>,
}

impl RemoveOnDrop {
    /// Removes the container now (killing it if it still runs) and disarms the guard.
    async fn remove(mut self) -> EngineResult<()> {
        let Some(id) = self.id.take() else {
            return Ok(());
        };
        match self
            .docker
            .remove_container(&id, Some(force_remove()))
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if status_of(&e) == Some(404) || is_already_in_progress(&e) => Ok(()),
            Err(e) => Err(map_err(e)),
        }
    }
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let Some(id) = self.id.take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(container = %id, "throwaway container left behind: no runtime to remove it");
            return;
        };
        let docker = self.docker.clone();
        runtime.spawn(async move {
            if let Err(e) = docker.remove_container(&id, Some(force_remove())).await {
                tracing::warn!(container = %id, error = %e, "could not remove an abandoned throwaway container");
            }
        });
    }
}

fn force_remove() -> bollard::query_parameters::RemoveContainerOptions {
    RemoveContainerOptionsBuilder::new()
        .force(true)
        .v(true)
        .build()
}

impl DockerEngine {
    /// How many containers, running or not, carry `label` (`key=value`).
    pub(crate) async fn containers_labelled(&self, label: &str) -> EngineResult<usize> {
        let docker = self.ready().await?;
        let options = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&HashMap::from([("label", vec![label])]))
            .build();
        let listed = docker
            .list_containers(Some(options))
            .await
            .map_err(map_err)?;
        Ok(listed.len())
    }

    /// Follows a started throwaway container's output until it exits; returns its exit code.
    async fn follow_to_exit(&self, id: &str, output: OutputSink<'_>) -> EngineResult<i64> {
        let mut logs = self.logs(
            id,
            LogOptions {
                follow: true,
                tail: None,
            },
        );
        while let Some(line) = logs.next().await {
            match line {
                Ok(line) => output(line),
                Err(e) => {
                    // The exit code still tells how the run ended.
                    tracing::warn!(container = %id, error = %e, "lost the output of a throwaway container");
                    break;
                }
            }
        }
        let options = WaitContainerOptionsBuilder::new()
            .condition("not-running")
            .build();
        let mut wait = self.streaming.wait_container(id, Some(options));
        match wait.next().await {
            Some(Ok(response)) => Ok(response.status_code),
            Some(Err(BollardError::DockerContainerWaitError { code, .. })) => Ok(code),
            Some(Err(e)) => Err(map_err(e)),
            None => Err(EngineError::Other(format!(
                "waiting for container {id} ended without an exit code"
            ))),
        }
    }
}

impl DockerEngine {
    /// The output of a container, or with `of_service` of every task of a Swarm service (the
    /// manager gathers it from the nodes), as lines with their timestamps.
    pub(super) fn output(
        &self,
        id: &str,
        options: LogOptions,
        of_service: bool,
    ) -> BoxStream<'static, EngineResult<LogLine>> {
        let tail = options
            .tail
            .map_or_else(|| "all".to_owned(), |n| n.to_string());
        let query = LogsOptionsBuilder::new()
            .follow(options.follow)
            .stdout(true)
            .stderr(true)
            .timestamps(true)
            .tail(&tail)
            .build();
        let engine = self.clone();
        let id = id.to_owned();
        stream::once(async move {
            let ready = engine.ready().await.map(|_| ());
            ready.map(|()| engine)
        })
        .map(move |ready| match ready {
            Ok(engine) => {
                let raw = if of_service {
                    engine
                        .streaming
                        .service_logs(&id, Some(query.clone()))
                        .boxed()
                } else {
                    engine.streaming.logs(&id, Some(query.clone())).boxed()
                };
                raw.flat_map(|item| {
                    let lines: Vec<EngineResult<LogLine>> = match item {
                        Ok(output) => log_lines(output).into_iter().map(Ok).collect(),
                        Err(e) => vec![Err(map_err(e))],
                    };
                    stream::iter(lines)
                })
                .boxed()
            }
            Err(e) => stream::once(async move { Err(e) }).boxed(),
        })
        .flatten()
        .boxed()
    }
}

#[async_trait]
impl Runtime for DockerEngine {
    async fn info(&self) -> EngineResult<EngineInfo> {
        let docker = self.ready().await?;
        let info = docker.info().await.map_err(map_err)?;
        let node_name = info.name.unwrap_or_default();
        let _ = self.shared.node_name.set(node_name.clone());
        Ok(EngineInfo {
            name: "docker".into(),
            version: info.server_version.unwrap_or_default(),
            node_name,
            cpus: info.ncpu.unwrap_or(0).try_into().unwrap_or(0),
            memory_bytes: info.mem_total.unwrap_or(0).try_into().unwrap_or(0),
            data_root: info.docker_root_dir.filter(|dir| !dir.is_empty()),
        })
    }

    async fn ensure_network(&self, name: &str) -> EngineResult<()> {
        let _serialised = self.shared.network_lock.lock().await;
        let found = self.networks_named(name).await?;
        if !found.is_empty() {
            self.remove_duplicate_networks(name, found).await;
            return Ok(());
        }
        let request = NetworkCreateRequest {
            name: name.to_owned(),
            driver: Some("bridge".into()),
            labels: Some(HashMap::from([(
                MANAGED_NETWORK_LABEL.to_owned(),
                "true".to_owned(),
            )])),
            ..Default::default()
        };
        match self.docker.create_network(request).await {
            Ok(created) => {
                tracing::info!(network = name, id = %created.id, "network created");
                // Another process may have created the same name meanwhile (20.10 allows it,
                // with at most a warning): converge on the oldest network.
                let found = self.networks_named(name).await?;
                self.remove_duplicate_networks(name, found).await;
                Ok(())
            }
            // Newer daemons refuse duplicates: a concurrent creation is fine.
            Err(e) if status_of(&e) == Some(409) => Ok(()),
            Err(e) => Err(map_err(e)),
        }
    }

    async fn ensure_image(&self, image: &str, auth: Option<&RegistryAuth>) -> EngineResult<()> {
        let docker = self.ready().await?;
        match docker.inspect_image(image).await {
            Ok(_) => Ok(()),
            Err(e) if status_of(&e) == Some(404) => self.pull(image, auth).await,
            Err(e) => Err(map_err(e)),
        }
    }

    async fn start_instance(&self, spec: &InstanceSpec) -> EngineResult<String> {
        let docker = self.ready().await?;
        let options = CreateContainerOptionsBuilder::new()
            .name(&spec.name)
            .build();
        let body = container_body(spec);
        let created = match docker
            .create_container(Some(options.clone()), body.clone())
            .await
        {
            Ok(created) => created,
            Err(e) if is_no_such_image(&e) => {
                self.ensure_image(&spec.image, spec.registry_auth.as_ref())
                    .await?;
                docker
                    .create_container(Some(options), body)
                    .await
                    .map_err(|e| create_error(&spec.image, e))?
            }
            Err(e) => return Err(create_error(&spec.image, e)),
        };
        for warning in &created.warnings {
            tracing::warn!(container = %spec.name, %warning, "docker warning on create");
        }
        let started = match self.put_files(&created.id, &spec.files).await {
            Ok(()) => docker
                .start_container(&created.id, None)
                .await
                .map_err(map_err),
            Err(e) => Err(e),
        };
        if let Err(e) = started {
            let remove = RemoveContainerOptionsBuilder::new()
                .force(true)
                .v(true)
                .build();
            if let Err(re) = docker.remove_container(&created.id, Some(remove)).await {
                tracing::warn!(container = %spec.name, error = %re, "could not remove container after a failed start");
            }
            return Err(e);
        }
        tracing::debug!(container = %spec.name, id = %created.id, "container started");
        Ok(created.id)
    }

    async fn stop_instance(&self, id: &str, grace: Duration) -> EngineResult<()> {
        self.ready().await?;
        let secs = ceil_secs(grace);
        // The stop call blocks for up to the grace period: give it room.
        let client = self
            .docker
            .clone()
            .with_timeout(REQUEST_TIMEOUT + Duration::from_secs(secs));
        let stop = StopContainerOptionsBuilder::new()
            .t(i32::try_from(secs).unwrap_or(i32::MAX))
            .build();
        match client.stop_container(id, Some(stop)).await {
            Ok(()) => {}
            Err(e) if status_of(&e) == Some(404) => return Ok(()),
            Err(e) if is_already_in_progress(&e) => {}
            Err(e) => return Err(map_err(e)),
        }
        let remove = RemoveContainerOptionsBuilder::new()
            .force(true)
            .v(true)
            .build();
        match client.remove_container(id, Some(remove)).await {
            Ok(()) => Ok(()),
            Err(e) if status_of(&e) == Some(404) || is_already_in_progress(&e) => Ok(()),
            Err(e) => Err(map_err(e)),
        }
    }

    async fn list_containers(
        &self,
        label_filter: &BTreeMap<String, String>,
    ) -> EngineResult<Vec<ObservedContainer>> {
        let docker = self.ready().await?;
        let node = self.node_name().await?;
        let mut options = ListContainersOptionsBuilder::new().all(true);
        if !label_filter.is_empty() {
            options = options.filters(&HashMap::from([("label", label_filters(label_filter))]));
        }
        let summaries = docker
            .list_containers(Some(options.build()))
            .await
            .map_err(map_err)?;
        let inspected: Vec<EngineResult<Option<ObservedContainer>>> = stream::iter(summaries)
            .map(|summary| {
                let node = node.as_str();
                async move {
                    let Some(id) = summary.id.clone() else {
                        return Ok(None);
                    };
                    match docker.inspect_container(&id, None).await {
                        Ok(inspect) => Ok(Some(observe(&summary, inspect, node))),
                        // Removed between the list and the inspect.
                        Err(e) if status_of(&e) == Some(404) => Ok(None),
                        Err(e) => Err(map_err(e)),
                    }
                }
            })
            .buffered(INSPECT_CONCURRENCY)
            .collect()
            .await;
        inspected
            .into_iter()
            .filter_map(Result::transpose)
            .collect()
    }

    /// Docker events for the matching containers. Events from the moment of this call on are
    /// delivered even when the stream is first polled later (Docker replays from `since`);
    /// a second of earlier events may be replayed too (clock-skew margin).
    fn events(
        &self,
        label_filter: &BTreeMap<String, String>,
    ) -> BoxStream<'static, EngineResult<EngineEvent>> {
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .saturating_sub(Duration::from_secs(1));
        let since = format!("{}.{:09}", since.as_secs(), since.subsec_nanos());
        let mut filters = HashMap::from([("type", vec!["container".to_owned()])]);
        if !label_filter.is_empty() {
            filters.insert("label", label_filters(label_filter));
        }
        let options = EventsOptionsBuilder::new()
            .since(&since)
            .filters(&filters)
            .build();
        let engine = self.clone();
        stream::once(async move {
            let ready = engine.ready().await.map(|_| ());
            ready.map(|()| engine)
        })
        .map(move |ready| match ready {
            Ok(engine) => engine
                .streaming
                .events(Some(options.clone()))
                .filter_map(|item| async move {
                    match item {
                        Ok(message) => event_from_message(message).map(Ok),
                        Err(e) => Some(Err(map_err(e))),
                    }
                })
                .boxed(),
            Err(e) => stream::once(async move { Err(e) }).boxed(),
        })
        .flatten()
        .boxed()
    }

    fn logs(&self, id: &str, options: LogOptions) -> BoxStream<'static, EngineResult<LogLine>> {
        self.output(id, options, false)
    }

    /// Docker's stats endpoint with `stream=false` and `one-shot=true` (API 1.41+): one
    /// reading, answered at once instead of after a second one ~1 s later (the `precpu`
    /// pair `docker stats` uses). Rates are the caller's, from two samples.
    async fn resource_sample(&self, id: &str) -> EngineResult<crate::ResourceSample> {
        let docker = self.ready().await?;
        let options = bollard::query_parameters::StatsOptionsBuilder::new()
            .stream(false)
            .one_shot(true)
            .build();
        let mut answers = std::pin::pin!(docker.stats(id, Some(options)));
        let stats = match answers.next().await {
            Some(Ok(stats)) => stats,
            Some(Err(e)) => return Err(map_err(e)),
            None => {
                return Err(EngineError::Other(format!(
                    "docker answered no stats for container {id}"
                )));
            }
        };
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        sample_from_stats(&stats, now_ms)
            .ok_or_else(|| EngineError::Conflict(format!("container {id} is not running")))
    }

    async fn ensure_volume(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> EngineResult<()> {
        self.create_volume(name, labels).await
    }

    async fn list_volumes(
        &self,
        label_filter: &BTreeMap<String, String>,
        measure: bool,
    ) -> EngineResult<Vec<crate::ObservedVolume>> {
        self.volumes(label_filter, measure).await
    }

    async fn remove_volume(&self, name: &str) -> EngineResult<()> {
        self.delete_volume(name).await
    }

    fn export_volume(&self, name: &str) -> BoxStream<'static, EngineResult<bytes::Bytes>> {
        self.volume_archive(name)
    }

    async fn import_volume(
        &self,
        name: &str,
        archive: BoxStream<'static, std::io::Result<bytes::Bytes>>,
    ) -> EngineResult<()> {
        self.fill_volume(name, archive).await
    }

    async fn exec(&self, id: &str, spec: &crate::ExecSpec) -> EngineResult<crate::ExecSession> {
        self.start_exec(id, spec).await
    }

    async fn resize_exec(&self, exec_id: &str, cols: u16, rows: u16) -> EngineResult<()> {
        DockerEngine::resize_exec(self, exec_id, cols, rows).await
    }

    async fn exec_exit_code(&self, exec_id: &str) -> EngineResult<Option<i64>> {
        self.exec_exit(exec_id).await
    }
}

#[async_trait]
impl ImageBuilder for DockerEngine {
    async fn build_image(&self, spec: BuildSpec, output: OutputSink<'_>) -> EngineResult<String> {
        self.ready().await?;
        let dockerfile = match crate::context::clean_path(&spec.dockerfile) {
            p if p.is_empty() => DEFAULT_DOCKERFILE.to_owned(),
            p => p,
        };
        // The labels go as one LABEL line of the Dockerfile when they can: the classic builder
        // turns each label of the `labels` option into a step of its own (a container and a
        // commit each, ~0.2 s apiece on a busy host).
        let no_labels = BTreeMap::new();
        let (body, packing_failure, dockerfile, labels) = match spec.context {
            BuildContext::Directory(dir) => {
                if !dir.is_dir() {
                    return Err(EngineError::BuildFailed(format!(
                        "the build context {} is not a directory",
                        dir.display()
                    )));
                }
                let labelled = labelled_dockerfile(&dir, &dockerfile, &spec.labels);
                let (used, labels) = match &labelled {
                    Some(_) => (LABELLED_DOCKERFILE.to_owned(), &no_labels),
                    None => (dockerfile.clone(), &spec.labels),
                };
                let packed = pack_directory(dir, dockerfile, labelled);
                (packed.stream, Some(packed.failure), used, labels)
            }
            BuildContext::Tar(stream) => (stream, None, dockerfile, &spec.labels),
        };
        let mut options = build_options(&dockerfile, &spec.tags, &spec.build_args, labels);
        limit_build(&mut options, spec.cpu_millis, spec.memory_bytes);
        let credentials = (!spec.registry_auth.is_empty()).then(|| {
            spec.registry_auth
                .iter()
                .map(|a| (a.server.clone(), docker_credentials(a)))
                .collect::<HashMap<_, _>>()
        });
        let mut progress =
            self.streaming
                .build_image(options, credentials, Some(body_try_stream(body)));
        let mut lines = BuildLines::default();
        let mut failure = None;
        while let Some(item) = progress.next().await {
            match item {
                Ok(info) => lines.take(info, output),
                Err(BollardError::DockerStreamError { error }) => {
                    failure = Some(EngineError::BuildFailed(error));
                    break;
                }
                // 20.10 answers a missing Dockerfile, a bad option or a context it cannot
                // read with an error status before any progress.
                Err(BollardError::DockerResponseServerError {
                    status_code: 400 | 500,
                    message,
                }) => {
                    failure = Some(EngineError::BuildFailed(message));
                    break;
                }
                Err(e) => {
                    failure = Some(map_err(e));
                    break;
                }
            }
        }
        lines.flush(output);
        if let Some(slot) = packing_failure
            && let Some(message) = slot.lock().ok().and_then(|mut m| m.take())
        {
            return Err(EngineError::BuildFailed(message));
        }
        if let Some(e) = failure {
            return Err(e);
        }
        let reported = lines.image_id.take();
        let id = match (reported, spec.tags.first()) {
            (Some(id), _) => id,
            (None, Some(tag)) => self.image_id(tag).await?.ok_or_else(|| {
                EngineError::BuildFailed(format!("the build ended but {tag} does not exist"))
            })?,
            (None, None) => {
                return Err(EngineError::BuildFailed(
                    "the build ended without reporting an image".into(),
                ));
            }
        };
        for tag in spec.tags.iter().skip(1) {
            self.tag_image(&id, tag).await?;
        }
        Ok(id)
    }

    async fn run_to_completion(
        &self,
        spec: &RunSpec,
        output: OutputSink<'_>,
        cancel: &CancellationToken,
    ) -> EngineResult<RunOutcome> {
        let docker = self.ready().await?;
        let deadline = tokio::time::Instant::now() + spec.timeout;
        let options = CreateContainerOptionsBuilder::new()
            .name(&spec.name)
            .build();
        let created = docker
            .create_container(Some(options), run_body(spec))
            .await
            .map_err(|e| create_error(&spec.image, e))?;
        let guard = RemoveOnDrop {
            docker: docker.clone(),
            id: Some(created.id.clone()),
        };
        if let Err(e) = docker.start_container(&created.id, None).await {
            guard.remove().await?;
            return Err(map_err(e));
        }
        tracing::debug!(container = %spec.name, image = %spec.image, "throwaway container started");
        let outcome = tokio::select! {
            code = self.follow_to_exit(&created.id, output) => match code {
                Ok(code) => RunOutcome::Exited(code),
                Err(e) => {
                    guard.remove().await?;
                    return Err(e);
                }
            },
            () = tokio::time::sleep_until(deadline) => RunOutcome::TimedOut,
            () = cancel.cancelled() => RunOutcome::Cancelled,
        };
        // A forced remove kills what still runs.
        guard.remove().await?;
        Ok(outcome)
    }

    async fn image_id(&self, reference: &str) -> EngineResult<Option<String>> {
        let docker = self.ready().await?;
        match docker.inspect_image(reference).await {
            Ok(image) => Ok(image.id),
            Err(e) if status_of(&e) == Some(404) => Ok(None),
            Err(e) => Err(map_err(e)),
        }
    }

    async fn tag_image(&self, source: &str, target: &str) -> EngineResult<()> {
        let docker = self.ready().await?;
        let (repo, tag) = split_image_reference(target);
        if target.contains('@') {
            return Err(EngineError::Other(format!(
                "cannot tag {source} as {target}: a tag cannot be a digest"
            )));
        }
        let options = TagImageOptionsBuilder::new().repo(repo).tag(tag).build();
        match docker.tag_image(source, Some(options)).await {
            Ok(()) => Ok(()),
            Err(e) if status_of(&e) == Some(404) => Err(EngineError::ImageNotFound {
                image: source.to_owned(),
                reason: error_message(e),
            }),
            Err(e) => Err(map_err(e)),
        }
    }

    async fn push_image(
        &self,
        reference: &str,
        auth: Option<&RegistryAuth>,
        output: OutputSink<'_>,
    ) -> EngineResult<String> {
        self.ready().await?;
        let (repo, tag) = split_image_reference(reference);
        let options = PushImageOptionsBuilder::new().tag(tag).build();
        let failed = |reason: String| EngineError::PushFailed {
            reference: reference.to_owned(),
            reason,
        };
        let mut progress =
            self.streaming
                .push_image(repo, Some(options), auth.map(docker_credentials));
        let mut digest = None;
        let mut last_line = String::new();
        while let Some(item) = progress.next().await {
            match item {
                Ok(info) => {
                    if let Some(d) = info.status.as_deref().and_then(push_digest) {
                        digest = Some(d.to_owned());
                    }
                    if let Some(line) = push_line(&info)
                        && line != last_line
                    {
                        output(LogLine {
                            stream: LogStream::Stdout,
                            timestamp_ms: None,
                            text: line.clone(),
                        });
                        last_line = line;
                    }
                }
                Err(BollardError::DockerStreamError { error }) => return Err(failed(error)),
                Err(e) if status_of(&e) == Some(404) => {
                    return Err(EngineError::ImageNotFound {
                        image: reference.to_owned(),
                        reason: error_message(e),
                    });
                }
                Err(BollardError::DockerResponseServerError { message, .. }) => {
                    return Err(failed(message));
                }
                Err(e) => return Err(map_err(e)),
            }
        }
        digest.ok_or_else(|| failed("the push ended without the registry's digest".into()))
    }

    async fn remove_image(&self, reference: &str) -> EngineResult<()> {
        let docker = self.ready().await?;
        let options = RemoveImageOptionsBuilder::new().build();
        match docker.remove_image(reference, Some(options), None).await {
            Ok(_) => Ok(()),
            Err(e) if status_of(&e) == Some(404) => Ok(()),
            Err(e) => Err(map_err(e)),
        }
    }

    async fn list_images(
        &self,
        label_filter: &BTreeMap<String, String>,
    ) -> EngineResult<Vec<LocalImage>> {
        let docker = self.ready().await?;
        let mut options = ListImagesOptionsBuilder::new();
        if !label_filter.is_empty() {
            options = options.filters(&HashMap::from([("label", label_filters(label_filter))]));
        }
        let images = docker
            .list_images(Some(options.build()))
            .await
            .map_err(map_err)?;
        Ok(images
            .into_iter()
            .map(|image| LocalImage {
                id: image.id,
                created_ms: image.created.saturating_mul(1000),
                tags: image
                    .repo_tags
                    .into_iter()
                    .filter(|t| t != "<none>:<none>")
                    .collect(),
                labels: image.labels.into_iter().collect(),
            })
            .collect())
    }

    async fn list_runs(
        &self,
        label_filter: &BTreeMap<String, String>,
    ) -> EngineResult<Vec<ObservedContainer>> {
        Runtime::list_containers(self, label_filter).await
    }

    async fn remove_run(&self, id: &str) -> EngineResult<()> {
        Runtime::stop_instance(self, id, Duration::ZERO).await
    }
}

/// A resource sample from Docker's stats of a container; `None` when it is not running
/// (Docker then answers with the zero time and no memory figures). `now_ms` stands in for a
/// read time Docker did not send in a form we parse.
fn sample_from_stats(
    stats: &bollard::models::ContainerStatsResponse,
    now_ms: i64,
) -> Option<crate::ResourceSample> {
    let read = stats.read.as_deref().unwrap_or_default();
    if read.is_empty() || read.starts_with("0001-01-01") {
        return None;
    }
    let memory = stats.memory_stats.as_ref();
    let usage = memory.and_then(|m| m.usage).unwrap_or(0);
    Some(crate::ResourceSample {
        sampled_at_ms: parse_rfc3339_ms(read).unwrap_or(now_ms),
        cpu_time_ns: stats
            .cpu_stats
            .as_ref()
            .and_then(|c| c.cpu_usage.as_ref())
            .and_then(|u| u.total_usage)
            .unwrap_or(0),
        memory_bytes: memory_in_use(usage, memory.and_then(|m| m.stats.as_ref())),
        memory_limit_bytes: memory.and_then(|m| m.limit).filter(|&limit| limit > 0),
    })
}

/// Memory in use the way the docker CLI computes it: usage minus the inactive page cache
/// (`total_inactive_file` on cgroup v1, `inactive_file` on cgroup v2), each only when smaller.
fn memory_in_use(usage: u64, stats: Option<&HashMap<String, u64>>) -> u64 {
    let inactive = |key: &str| stats.and_then(|s| s.get(key)).copied();
    if let Some(v1) = inactive("total_inactive_file")
        && v1 < usage
    {
        return usage - v1;
    }
    if let Some(v2) = inactive("inactive_file")
        && v2 < usage
    {
        return usage - v2;
    }
    usage
}

#[cfg(test)]
mod stats_tests {
    use super::*;
    use bollard::models::{
        ContainerCpuStats, ContainerCpuUsage, ContainerMemoryStats, ContainerStatsResponse,
    };

    fn stats_map(entries: &[(&str, u64)]) -> HashMap<String, u64> {
        entries.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
    }

    #[test]
    fn memory_in_use_drops_the_inactive_page_cache() {
        let cases: &[(&str, u64, Option<&[(&str, u64)]>, u64)] = &[
            ("no stats", 1000, None, 1000),
            (
                "cgroup v1",
                1000,
                Some(&[("total_inactive_file", 300), ("inactive_file", 100)]),
                700,
            ),
            ("cgroup v2", 1000, Some(&[("inactive_file", 250)]), 750),
            (
                "v1 figure too big, v2 one used",
                1000,
                Some(&[("total_inactive_file", 1000), ("inactive_file", 100)]),
                900,
            ),
            (
                "both too big",
                1000,
                Some(&[("total_inactive_file", 2000), ("inactive_file", 1500)]),
                1000,
            ),
            (
                "cache alone is not subtracted",
                1000,
                Some(&[("cache", 400)]),
                1000,
            ),
            ("zero usage", 0, Some(&[("inactive_file", 0)]), 0),
        ];
        for (name, usage, stats, want) in cases {
            let map = stats.map(stats_map);
            assert_eq!(memory_in_use(*usage, map.as_ref()), *want, "{name}");
        }
    }

    fn running(read: &str) -> ContainerStatsResponse {
        ContainerStatsResponse {
            read: Some(read.to_owned()),
            cpu_stats: Some(ContainerCpuStats {
                cpu_usage: Some(ContainerCpuUsage {
                    total_usage: Some(35_916_992),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            memory_stats: Some(ContainerMemoryStats {
                usage: Some(925_696),
                limit: Some(8_000_000_000),
                stats: Some(stats_map(&[
                    ("total_inactive_file", 4096),
                    ("cache", 163_840),
                ])),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn samples_a_running_container() {
        let sample = sample_from_stats(&running("2026-01-02T03:04:05.678901234Z"), 1).unwrap();
        assert_eq!(
            sample,
            crate::ResourceSample {
                sampled_at_ms: parse_rfc3339_ms("2026-01-02T03:04:05.678Z").unwrap(),
                cpu_time_ns: 35_916_992,
                memory_bytes: 925_696 - 4096,
                memory_limit_bytes: Some(8_000_000_000),
            }
        );
    }

    #[test]
    fn an_unreadable_time_falls_back_to_now() {
        let sample = sample_from_stats(&running("yesterday"), 42).unwrap();
        assert_eq!(sample.sampled_at_ms, 42);
    }

    #[test]
    fn a_stopped_container_has_no_sample() {
        // What 20.10 answers for a container that is not running.
        let stopped = ContainerStatsResponse {
            read: Some("0001-01-01T00:00:00Z".to_owned()),
            memory_stats: Some(ContainerMemoryStats::default()),
            ..Default::default()
        };
        assert_eq!(sample_from_stats(&stopped, 1), None);
        assert_eq!(
            sample_from_stats(&ContainerStatsResponse::default(), 1),
            None
        );
    }
}

/// Credentials as bollard sends them.
fn docker_credentials(auth: &RegistryAuth) -> DockerCredentials {
    DockerCredentials {
        username: Some(auth.username.clone()),
        password: Some(auth.password.clone()),
        serveraddress: Some(auth.server.clone()),
        ..Default::default()
    }
}

/// The query of a classic-builder build: intermediate containers removed even on failure,
/// no pull of newer base images (they are local or in Berth's registry).
fn build_options(
    dockerfile: &str,
    tags: &[String],
    build_args: &BTreeMap<String, String>,
    labels: &BTreeMap<String, String>,
) -> BuildImageOptions {
    let map = |m: &BTreeMap<String, String>| {
        (!m.is_empty()).then(|| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
    };
    BuildImageOptions {
        dockerfile: dockerfile.to_owned(),
        t: tags.first().cloned(),
        rm: true,
        forcerm: true,
        buildargs: map(build_args),
        labels: map(labels),
        ..Default::default()
    }
}

/// CPU period of a limited build step, in µs (Docker's default).
const BUILD_CPU_PERIOD: i32 = 100_000;

/// Limits every `RUN` step's container of a build: `cpu_millis` of CPU time per period, and
/// `memory_bytes` with no swap beyond it (the build API takes 32-bit values: at most 2 GiB).
fn limit_build(
    options: &mut BuildImageOptions,
    cpu_millis: Option<u64>,
    memory_bytes: Option<u64>,
) {
    if let Some(millis) = cpu_millis.filter(|m| *m > 0) {
        let quota = millis.saturating_mul(u64::try_from(BUILD_CPU_PERIOD).unwrap_or(0)) / 1000;
        options.cpuperiod = Some(BUILD_CPU_PERIOD);
        options.cpuquota = Some(i32::try_from(quota.max(1000)).unwrap_or(i32::MAX));
    }
    if let Some(bytes) = memory_bytes.filter(|b| *b > 0) {
        let bytes = i32::try_from(bytes).unwrap_or(i32::MAX);
        options.memory = Some(bytes);
        options.memswap = Some(bytes);
    }
}

/// Turns build progress messages into output lines and picks up the image id.
#[derive(Default)]
struct BuildLines {
    /// Text of a `stream` message not yet ended by a newline.
    partial: String,
    image_id: Option<String>,
}

impl BuildLines {
    fn take(&mut self, info: BuildInfo, output: OutputSink<'_>) {
        if let Some(image) = &info.aux
            && let Some(id) = &image.id
        {
            self.image_id = Some(id.clone());
        }
        if let Some(text) = &info.stream {
            self.partial.push_str(text);
            while let Some(end) = self.partial.find('\n') {
                let line: String = self.partial.drain(..=end).collect();
                emit(output, LogStream::Stdout, &line);
            }
        }
        if let Some(status) = &info.status {
            let line = match &info.id {
                Some(id) if !id.is_empty() => format!("{id}: {status}"),
                _ => status.clone(),
            };
            emit(output, LogStream::Stdout, &line);
        }
    }

    fn flush(&mut self, output: OutputSink<'_>) {
        let rest = std::mem::take(&mut self.partial);
        emit(output, LogStream::Stdout, &rest);
    }
}

/// Sends one line without its line ending; blank lines are dropped.
fn emit(output: OutputSink<'_>, stream: LogStream, line: &str) {
    let text = line.trim_end_matches(['\r', '\n']);
    if !text.trim().is_empty() {
        output(LogLine {
            stream,
            timestamp_ms: None,
            text: text.to_owned(),
        });
    }
}

/// A push progress message as a line, or `None` for byte-count updates and empty messages.
fn push_line(info: &PushImageInfo) -> Option<String> {
    let status = info.status.as_deref()?.trim();
    let counting = info
        .progress_detail
        .as_ref()
        .is_some_and(|p| p.current.is_some() || p.total.is_some());
    (!status.is_empty() && !counting).then(|| status.to_owned())
}

/// The digest of a push's final status line, `<tag>: digest: sha256:<hex> size: <n>`.
pub fn push_digest(status: &str) -> Option<&str> {
    let rest = &status[status.find("digest: ")? + "digest: ".len()..];
    let digest = rest.split_whitespace().next()?;
    let (algorithm, hex) = digest.split_once(':')?;
    (!algorithm.is_empty() && !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .then_some(digest)
}

/// The create request of a throwaway run.
fn run_body(spec: &RunSpec) -> ContainerCreateBody {
    let (entrypoint, cmd) = match spec.command.split_first() {
        Some((program, args)) => (Some(vec![program.clone()]), Some(args.to_vec())),
        None => (None, None),
    };
    ContainerCreateBody {
        image: Some(spec.image.clone()),
        entrypoint,
        cmd,
        env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        labels: Some(
            labels::with_reserved_blank(&spec.labels)
                .into_iter()
                .collect(),
        ),
        host_config: Some(host_config(
            spec.cpu_millis,
            spec.memory_bytes,
            spec.network.clone(),
        )),
        ..Default::default()
    }
}

/// What every container Berth makes gets: Docker's init (so signals reach the program and
/// zombies are reaped), no restart policy (Berth replaces, not Docker), and the limits.
fn host_config(
    cpu_millis: Option<u64>,
    memory_bytes: Option<u64>,
    network_mode: Option<String>,
) -> HostConfig {
    HostConfig {
        init: Some(true),
        nano_cpus: cpu_millis
            .map(|m| i64::try_from(m.saturating_mul(1_000_000)).unwrap_or(i64::MAX)),
        memory: memory_bytes.map(|b| i64::try_from(b).unwrap_or(i64::MAX)),
        restart_policy: Some(RestartPolicy {
            name: Some(RestartPolicyNameEnum::NO),
            maximum_retry_count: None,
        }),
        network_mode,
        ..Default::default()
    }
}

/// The engine's message of an error response.
fn error_message(e: BollardError) -> String {
    match e {
        BollardError::DockerResponseServerError { message, .. } => message,
        e => e.to_string(),
    }
}

/// An instance's environment as `KEY=VALUE` entries: its variables, then its secrets.
fn env_list(spec: &InstanceSpec) -> Vec<String> {
    spec.env
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .chain(
            spec.secret_env
                .iter()
                .map(|(k, v)| format!("{k}={}", String::from_utf8_lossy(&v.0))),
        )
        .collect()
}

/// The create request for an instance.
fn container_body(spec: &InstanceSpec) -> ContainerCreateBody {
    let non_empty = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
    ContainerCreateBody {
        image: Some(spec.image.clone()),
        entrypoint: non_empty(&spec.command),
        cmd: non_empty(&spec.args),
        env: Some(env_list(spec)),
        labels: Some(
            labels::with_reserved_blank(&spec.labels)
                .into_iter()
                .collect(),
        ),
        stop_timeout: Some(i64::try_from(ceil_secs(spec.stop_grace)).unwrap_or(i64::MAX)),
        host_config: Some(HostConfig {
            mounts: volumes::docker_mounts(&spec.mounts),
            ..host_config(
                spec.cpu_millis,
                spec.memory_bytes,
                Some(spec.network.clone()),
            )
        }),
        networking_config: Some(NetworkingConfig {
            endpoints_config: Some(HashMap::from([(
                spec.network.clone(),
                EndpointSettings {
                    aliases: non_empty(&spec.network_aliases),
                    ..Default::default()
                },
            )])),
        }),
        ..Default::default()
    }
}

/// Builds an [`ObservedContainer`] from the list entry and the inspect answer.
fn observe(
    summary: &ContainerSummary,
    inspect: ContainerInspectResponse,
    node: &str,
) -> ObservedContainer {
    let state = inspect.state.unwrap_or_default();
    let status = state
        .status
        .map(|s| s.to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| summary.state.map(|s| s.to_string()))
        .unwrap_or_default();
    let container_state = state_from_status(&status);
    let config = inspect.config.unwrap_or_default();
    // A reserved label Berth left empty (see `labels::RESERVED`) is no label at all.
    let labels = config
        .labels
        .or_else(|| summary.labels.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|(key, value)| !(value.is_empty() && labels::RESERVED.contains(&key.as_str())))
        .collect();
    let network_mode = inspect.host_config.and_then(|h| h.network_mode);
    let ip_address = inspect
        .network_settings
        .and_then(|n| n.networks)
        .and_then(|networks| container_ip(&networks, network_mode.as_deref()));
    let error = state.error.filter(|e| !e.is_empty());
    let exit_code = match container_state {
        ContainerState::Exited | ContainerState::Dead | ContainerState::Restarting => {
            state.exit_code
        }
        _ if error.is_some() => state.exit_code,
        _ => None,
    };
    let (started_at_ms, finished_at_ms) = run_times(
        container_state,
        state.started_at.as_deref(),
        state.finished_at.as_deref(),
    );
    ObservedContainer {
        id: inspect
            .id
            .or_else(|| summary.id.clone())
            .unwrap_or_default(),
        name: inspect
            .name
            .or_else(|| summary.names.as_ref().and_then(|n| n.first().cloned()))
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_owned(),
        image: config
            .image
            .or_else(|| summary.image.clone())
            .unwrap_or_default(),
        labels,
        state: container_state,
        ip_address,
        created_at_ms: inspect
            .created
            .as_deref()
            .and_then(parse_docker_time_ms)
            .or_else(|| summary.created.map(|s| s.saturating_mul(1000)))
            .unwrap_or(0),
        started_at_ms,
        finished_at_ms,
        exit_code,
        error,
        node: node.to_owned(),
        node_draining: false,
        published_ports: BTreeMap::new(),
    }
}

/// The last run's start and finish, in unix ms.
///
/// Docker stamps `StartedAt` after the process is running and `FinishedAt` from containerd's
/// exit event, so a process that exits at once often "finishes" a few ms before it "started".
/// For a container that is not running, the finish is clamped to the start.
fn run_times(
    state: ContainerState,
    started_at: Option<&str>,
    finished_at: Option<&str>,
) -> (Option<i64>, Option<i64>) {
    let started = started_at.and_then(parse_docker_time_ms);
    let finished = finished_at.and_then(parse_docker_time_ms);
    let exited = matches!(
        state,
        ContainerState::Exited | ContainerState::Dead | ContainerState::Restarting
    );
    match (started, finished) {
        (Some(s), Some(f)) if exited && f < s => (Some(s), Some(s)),
        times => times,
    }
}

/// The address on the container's own network, else on any network (smallest name first).
fn container_ip(
    networks: &HashMap<String, EndpointSettings>,
    network_mode: Option<&str>,
) -> Option<String> {
    let ip = |e: &EndpointSettings| e.ip_address.clone().filter(|ip| !ip.is_empty());
    network_mode
        .and_then(|mode| networks.get(mode))
        .and_then(ip)
        .or_else(|| {
            let mut names: Vec<&String> = networks.keys().collect();
            names.sort();
            names.into_iter().find_map(|n| ip(&networks[n]))
        })
}

/// Maps Docker's `State.Status` (`running`, `exited`, …) to [`ContainerState`].
///
/// The status string is used rather than the `Running` flag, which stays `true` while a
/// container restarts.
pub fn state_from_status(status: &str) -> ContainerState {
    match status.to_ascii_lowercase().as_str() {
        "created" => ContainerState::Created,
        // "stopping" (newer daemons) still has a live process.
        "running" | "stopping" => ContainerState::Running,
        "restarting" => ContainerState::Restarting,
        "paused" => ContainerState::Paused,
        "removing" => ContainerState::Removing,
        "exited" => ContainerState::Exited,
        _ => ContainerState::Dead,
    }
}

/// `label=k=v` filter values.
fn label_filters(labels: &BTreeMap<String, String>) -> Vec<String> {
    labels.iter().map(|(k, v)| format!("{k}={v}")).collect()
}

fn event_from_message(message: EventMessage) -> Option<EngineEvent> {
    let actor = message.actor?;
    let container_id = actor.id.filter(|id| !id.is_empty())?;
    let labels = actor
        .attributes
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, _)| !NON_LABEL_EVENT_ATTRIBUTES.contains(&k.as_str()))
        .collect();
    Some(EngineEvent {
        container_id,
        action: message.action.unwrap_or_default(),
        labels,
    })
}

fn log_lines(output: LogOutput) -> Vec<LogLine> {
    let stream = match &output {
        LogOutput::StdOut { .. } | LogOutput::Console { .. } => LogStream::Stdout,
        LogOutput::StdErr { .. } => LogStream::Stderr,
        LogOutput::StdIn { .. } => return Vec::new(),
    };
    let text = String::from_utf8_lossy(output.as_ref());
    split_log_chunk(&text)
        .into_iter()
        .map(|(timestamp_ms, text)| LogLine {
            stream,
            timestamp_ms,
            text,
        })
        .collect()
}

/// Splits a chunk of `docker logs --timestamps` output into lines, each with its timestamp.
pub fn split_log_chunk(chunk: &str) -> Vec<(Option<i64>, String)> {
    chunk
        .split_terminator('\n')
        .map(|line| {
            let line = line.strip_suffix('\r').unwrap_or(line);
            let (ts, text) = split_log_timestamp(line);
            (ts, text.to_owned())
        })
        .collect()
}

/// Splits the RFC 3339 prefix Docker puts before each line when timestamps are on.
pub fn split_log_timestamp(line: &str) -> (Option<i64>, &str) {
    let (prefix, rest) = line.split_once(' ').unwrap_or((line, ""));
    match parse_rfc3339_ms(prefix) {
        Some(ms) => (Some(ms), rest),
        None => (None, line),
    }
}

/// Parses a Docker timestamp; Go's zero time (`0001-01-01T00:00:00Z`), which Docker uses for
/// "never", and empty strings give `None`.
pub fn parse_docker_time_ms(s: &str) -> Option<i64> {
    if s.is_empty() || s.starts_with("0001-01-01") {
        return None;
    }
    parse_rfc3339_ms(s)
}

/// Parses an RFC 3339 timestamp (`2024-05-01T12:00:00.123456789Z`, any fraction length,
/// `Z` or a `±hh:mm` offset) into unix milliseconds (fraction truncated).
pub fn parse_rfc3339_ms(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let digits = b.get(range)?;
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        Some(
            digits
                .iter()
                .fold(0i64, |n, d| n * 10 + i64::from(d - b'0')),
        )
    };
    let year = num(0..4)?;
    let month = num(5..7)?;
    let day = num(8..10)?;
    let hour = num(11..13)?;
    let minute = num(14..16)?;
    let second = num(17..19)?;
    if b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut i = 19;
    let mut millis = 0i64;
    if b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 3 {
                millis = millis * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        let digits = i - start;
        if digits == 0 {
            return None;
        }
        for _ in digits..3 {
            millis *= 10;
        }
    }
    let offset_secs = match &b[i..] {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let digits = [*h1, *h2, *m1, *m2];
            if !digits.iter().all(u8::is_ascii_digit) {
                return None;
            }
            let d = |x: u8| i64::from(x - b'0');
            let (oh, om) = (d(*h1) * 10 + d(*h2), d(*m1) * 10 + d(*m2));
            if oh > 23 || om > 59 {
                return None;
            }
            let secs = oh * 3600 + om * 60;
            if *sign == b'-' { -secs } else { secs }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_secs;
    Some(secs * 1000 + millis)
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Splits `repo[:tag]` / `repo@digest` into the `fromImage` and `tag` pull parameters;
/// a missing tag means `latest` (an empty tag would pull every tag of the repository).
pub fn split_image_reference(image: &str) -> (&str, &str) {
    if let Some((repo, digest)) = image.split_once('@') {
        return (repo, digest);
    }
    let name_start = image.rfind('/').map_or(0, |i| i + 1);
    match image[name_start..].rfind(':') {
        Some(i) => (&image[..name_start + i], &image[name_start + i + 1..]),
        None => (image, "latest"),
    }
}

/// Parses `DOCKER_HOST`.
fn parse_docker_host(host: &str) -> Result<DockerHost, String> {
    let host = host.trim();
    if let Some(path) = host.strip_prefix("unix://") {
        return Ok(DockerHost::Unix(path.to_owned()));
    }
    if host.starts_with('/') {
        return Ok(DockerHost::Unix(host.to_owned()));
    }
    if let Some(addr) = host
        .strip_prefix("tcp://")
        .or_else(|| host.strip_prefix("http://"))
    {
        let addr = addr.trim_end_matches('/');
        if addr.is_empty() {
            return Err(format!("DOCKER_HOST {host:?} has no address"));
        }
        // The docker CLI's default port for plain TCP.
        let has_port = addr.rsplit_once(':').is_some_and(|(h, p)| {
            !p.is_empty() && !h.ends_with('[') && p.chars().all(|c| c.is_ascii_digit())
        });
        let addr = if has_port {
            addr.to_owned()
        } else {
            format!("{addr}:2375")
        };
        return Ok(DockerHost::Tcp(format!("tcp://{addr}")));
    }
    Err(format!(
        "unsupported DOCKER_HOST {host:?}: use unix:///path or tcp://host:port (TLS and ssh are not supported)"
    ))
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

fn status_of(e: &BollardError) -> Option<u16> {
    match e {
        BollardError::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

fn is_no_such_image(e: &BollardError) -> bool {
    matches!(e, BollardError::DockerResponseServerError { status_code: 404, message }
        if message.to_ascii_lowercase().contains("no such image"))
}

fn is_already_in_progress(e: &BollardError) -> bool {
    matches!(e, BollardError::DockerResponseServerError { message, .. }
        if message.contains("already in progress"))
}

fn create_error(image: &str, e: BollardError) -> EngineError {
    match e {
        BollardError::DockerResponseServerError {
            status_code: 404,
            message,
        } if message.to_ascii_lowercase().contains("no such image") => EngineError::ImageNotFound {
            image: image.to_owned(),
            reason: message,
        },
        e => map_err(e),
    }
}

/// Maps a bollard error to the engine's error type.
fn map_err(e: BollardError) -> EngineError {
    match e {
        BollardError::DockerResponseServerError {
            status_code: 404,
            message,
        } => EngineError::NotFound(message),
        BollardError::DockerResponseServerError {
            status_code: 409,
            message,
        } => EngineError::Conflict(message),
        BollardError::DockerResponseServerError {
            status_code,
            message,
        } => EngineError::Other(format!("docker answered {status_code}: {message}")),
        e @ (BollardError::SocketNotFoundError(_)
        | BollardError::HyperLegacyError { .. }
        | BollardError::HyperResponseError { .. }
        | BollardError::IOError { .. }
        | BollardError::RequestTimeoutError) => EngineError::Unreachable(e.to_string()),
        e => EngineError::Other(e.to_string()),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn build_steps_are_limited() {
        let cases = [
            (None, None, None, None, None),
            (Some(1000), None, Some(100_000), None, None),
            (
                Some(250),
                Some(512 << 20),
                Some(25_000),
                Some(512 << 20),
                Some(512 << 20),
            ),
            // Below one hundredth of a core Docker refuses the quota: the floor is 1 ms.
            (Some(1), None, Some(1000), None, None),
            (Some(0), Some(0), None, None, None),
            (None, Some(8 << 30), None, Some(i32::MAX), Some(i32::MAX)),
        ];
        for (cpu, memory, quota, limit, swap) in cases {
            let mut options = BuildImageOptions::default();
            limit_build(&mut options, cpu, memory.map(|m: i64| m as u64));
            assert_eq!(options.cpuquota, quota, "{cpu:?}");
            assert_eq!(options.cpuperiod, quota.map(|_| 100_000), "{cpu:?}");
            assert_eq!(options.memory, limit, "{memory:?}");
            assert_eq!(options.memswap, swap, "{memory:?}");
        }
    }

    #[test]
    fn parses_rfc3339_timestamps() {
        let cases: &[(&str, Option<i64>)] = &[
            ("1970-01-01T00:00:00Z", Some(0)),
            ("1970-01-01T00:00:01.5Z", Some(1500)),
            ("2024-05-01T12:34:56.123456789Z", Some(1_714_566_896_123)),
            ("2024-05-01T12:34:56.1234Z", Some(1_714_566_896_123)),
            ("2024-05-01T12:34:56Z", Some(1_714_566_896_000)),
            ("2024-05-01T14:34:56.123+02:00", Some(1_714_566_896_123)),
            ("2024-05-01T10:04:56.123-02:30", Some(1_714_566_896_123)),
            ("2024-02-29T00:00:00Z", Some(1_709_164_800_000)),
            ("2000-03-01T00:00:00Z", Some(951_868_800_000)),
            ("1969-12-31T23:59:59Z", Some(-1000)),
            ("2024-02-30T00:00:00Z", None),
            ("2023-02-29T00:00:00Z", None),
            ("2024-13-01T00:00:00Z", None),
            ("2024-05-01T24:00:00Z", None),
            ("2024-05-01T12:34:56", None),
            ("2024-05-01T12:34:56.Z", None),
            ("2024-05-01T12:34:56+0200", None),
            ("2024-05-01 12:34:56Z", Some(1_714_566_896_000)),
            ("not a timestamp at all", None),
            ("", None),
        ];
        for (input, want) in cases {
            assert_eq!(parse_rfc3339_ms(input), *want, "input {input:?}");
        }
    }

    #[test]
    fn docker_zero_time_means_never() {
        let cases: &[(&str, Option<i64>)] = &[
            ("0001-01-01T00:00:00Z", None),
            ("", None),
            ("2024-05-01T12:34:56.123456789Z", Some(1_714_566_896_123)),
        ];
        for (input, want) in cases {
            assert_eq!(parse_docker_time_ms(input), *want, "input {input:?}");
        }
    }

    #[test]
    fn clamps_a_finish_before_the_start_of_an_exited_container() {
        const ZERO: &str = "0001-01-01T00:00:00Z";
        const T0: &str = "2026-11-25T20:32:34.869069458Z";
        const T1: &str = "2026-11-25T20:32:34.969580046Z";
        const T2: &str = "2026-11-25T20:32:35.1Z";
        let (t0, t1, t2) = (1_795_638_754_869, 1_795_638_754_969, 1_795_638_755_100);
        let cases = [
            (
                ContainerState::Created,
                Some(ZERO),
                Some(ZERO),
                (None, None),
            ),
            (
                ContainerState::Running,
                Some(T1),
                Some(ZERO),
                (Some(t1), None),
            ),
            (
                ContainerState::Exited,
                Some(T1),
                Some(T2),
                (Some(t1), Some(t2)),
            ),
            (
                ContainerState::Exited,
                Some(T2),
                Some(T0),
                (Some(t2), Some(t2)),
            ),
            (
                ContainerState::Dead,
                Some(T2),
                Some(T0),
                (Some(t2), Some(t2)),
            ),
            (
                ContainerState::Restarting,
                Some(T1),
                Some(T0),
                (Some(t1), Some(t1)),
            ),
            // A running container after a restart: the old finish predates the new start.
            (
                ContainerState::Running,
                Some(T2),
                Some(T0),
                (Some(t2), Some(t0)),
            ),
            (ContainerState::Exited, None, Some(T2), (None, Some(t2))),
        ];
        for (state, started, finished, want) in cases {
            assert_eq!(
                run_times(state, started, finished),
                want,
                "{state:?} {started:?} {finished:?}"
            );
        }
    }

    #[test]
    fn maps_status_strings() {
        let cases = [
            ("created", ContainerState::Created),
            ("running", ContainerState::Running),
            ("restarting", ContainerState::Restarting),
            ("paused", ContainerState::Paused),
            ("removing", ContainerState::Removing),
            ("exited", ContainerState::Exited),
            ("dead", ContainerState::Dead),
            ("stopping", ContainerState::Running),
            ("Running", ContainerState::Running),
            ("", ContainerState::Dead),
            ("something-new", ContainerState::Dead),
        ];
        for (input, want) in cases {
            assert_eq!(state_from_status(input), want, "status {input:?}");
        }
    }

    #[test]
    fn splits_log_timestamps() {
        type Lines = Vec<(Option<i64>, &'static str)>;
        let cases: &[(&str, Lines)] = &[
            (
                "2024-05-01T12:34:56.123456789Z listening on 0.0.0.0:8080\n",
                vec![(Some(1_714_566_896_123), "listening on 0.0.0.0:8080")],
            ),
            (
                "2024-05-01T12:34:56.123456789Z a\n2024-05-01T12:34:57.000000000Z b\n",
                vec![
                    (Some(1_714_566_896_123), "a"),
                    (Some(1_714_566_897_000), "b"),
                ],
            ),
            (
                "2024-05-01T12:34:56.000000000Z \n",
                vec![(Some(1_714_566_896_000), "")],
            ),
            (
                "2024-05-01T12:34:56.000000000Z  two spaces\r\n",
                vec![(Some(1_714_566_896_000), " two spaces")],
            ),
            ("no timestamp here\n", vec![(None, "no timestamp here")]),
            (
                "partial without newline",
                vec![(None, "partial without newline")],
            ),
            ("", vec![]),
        ];
        for (input, want) in cases {
            let got = split_log_chunk(input);
            let got: Vec<(Option<i64>, &str)> = got.iter().map(|(t, s)| (*t, s.as_str())).collect();
            assert_eq!(&got, want, "chunk {input:?}");
        }
    }

    #[test]
    fn splits_image_references() {
        let cases = [
            ("berth-testapp", ("berth-testapp", "latest")),
            ("berth-testapp:latest", ("berth-testapp", "latest")),
            ("library/busybox:1.36", ("library/busybox", "1.36")),
            (
                "localhost:5000/team/app",
                ("localhost:5000/team/app", "latest"),
            ),
            (
                "localhost:5000/team/app:v2",
                ("localhost:5000/team/app", "v2"),
            ),
            (
                "localhost:5000/app@sha256:abcd",
                ("localhost:5000/app", "sha256:abcd"),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(split_image_reference(input), want, "image {input:?}");
        }
    }

    #[test]
    fn parses_docker_host() {
        let cases = [
            (
                "unix:///var/run/docker.sock",
                Ok(DockerHost::Unix("/var/run/docker.sock".into())),
            ),
            ("/tmp/d.sock", Ok(DockerHost::Unix("/tmp/d.sock".into()))),
            (
                "tcp://127.0.0.1:2375",
                Ok(DockerHost::Tcp("tcp://127.0.0.1:2375".into())),
            ),
            (
                "tcp://docker",
                Ok(DockerHost::Tcp("tcp://docker:2375".into())),
            ),
            (
                "http://10.0.0.1:1234/",
                Ok(DockerHost::Tcp("tcp://10.0.0.1:1234".into())),
            ),
            (
                "tcp://[::1]:2375",
                Ok(DockerHost::Tcp("tcp://[::1]:2375".into())),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(parse_docker_host(input), want, "host {input:?}");
        }
        for bad in [
            "ssh://me@host",
            "https://host:2376",
            "npipe:////./pipe/docker",
            "tcp://",
        ] {
            assert!(
                parse_docker_host(bad).is_err(),
                "host {bad:?} should be refused"
            );
        }
    }

    #[test]
    fn rounds_grace_up_to_seconds() {
        let cases = [
            (Duration::ZERO, 0),
            (Duration::from_millis(1), 1),
            (Duration::from_secs(10), 10),
            (Duration::from_millis(10_500), 11),
        ];
        for (input, want) in cases {
            assert_eq!(ceil_secs(input), want, "grace {input:?}");
        }
    }

    /// An instance of app `web` as the unit tests of both engines build it.
    pub(crate) fn example_spec() -> InstanceSpec {
        InstanceSpec {
            name: "web-0".into(),
            image: "app:1".into(),
            command: vec![],
            args: vec!["--port".into(), "8080".into()],
            env: BTreeMap::from([("A".into(), "1".into())]),
            labels: BTreeMap::from([("berth.app".into(), "web".into())]),
            network: "berth".into(),
            network_aliases: vec!["web".into()],
            cpu_millis: Some(250),
            memory_bytes: Some(64 << 20),
            stop_grace: Duration::from_millis(2500),
            registry_auth: None,
            mounts: Vec::new(),
            secret_env: BTreeMap::new(),
            files: Vec::new(),
            ports: Vec::new(),
            node_constraints: Vec::new(),
        }
    }

    #[test]
    fn builds_the_create_request() {
        let spec = example_spec();
        let body = container_body(&spec);
        assert_eq!(body.entrypoint, None);
        assert_eq!(body.cmd, Some(vec!["--port".into(), "8080".into()]));
        assert_eq!(body.env, Some(vec!["A=1".into()]));
        assert_eq!(body.stop_timeout, Some(3));
        let host = body.host_config.unwrap();
        assert_eq!(host.nano_cpus, Some(250_000_000));
        assert_eq!(host.memory, Some(64 << 20));
        assert_eq!(host.init, Some(true));
        assert_eq!(host.network_mode.as_deref(), Some("berth"));
        let endpoints = body.networking_config.unwrap().endpoints_config.unwrap();
        assert_eq!(endpoints["berth"].aliases, Some(vec!["web".into()]));
    }

    #[test]
    fn event_labels_drop_docker_attributes() {
        let message = EventMessage {
            action: Some("die".into()),
            actor: Some(bollard::models::EventActor {
                id: Some("abc".into()),
                attributes: Some(HashMap::from([
                    ("berth.app".into(), "web".into()),
                    ("image".into(), "app:1".into()),
                    ("name".into(), "web-0".into()),
                    ("exitCode".into(), "3".into()),
                ])),
            }),
            ..Default::default()
        };
        let event = event_from_message(message).unwrap();
        assert_eq!(event.container_id, "abc");
        assert_eq!(event.action, "die");
        assert_eq!(
            event.labels,
            BTreeMap::from([("berth.app".to_owned(), "web".to_owned())])
        );
    }
}
