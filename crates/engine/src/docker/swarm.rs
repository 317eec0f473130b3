//! The Docker Swarm implementation of [`Runtime`]: Berth keeps deciding every instance (its
//! revision, its readiness, when it starts and stops), and Swarm decides where it runs.
//!
//! Each Berth instance is a Swarm service of one replica named like the container would be
//! (`<namespace>-<app>-<ordinal>`), restart policy `none` (Berth replaces instances itself),
//! reservations and limits from the app's resources, spread over the nodes' `datacenter`
//! label, attached to the team's network (an attachable overlay) under the app's name. Its
//! ports are published in `host` mode on ports Swarm picks, so the host reaches an instance at
//! its node's address ([`ObservedContainer::published_ports`]): the prober and the router
//! work unchanged on every node. Images are pulled by each node with the credential the
//! service carries. Observed state comes from services and their tasks on a manager; events
//! are the changes a poll every half second sees (Swarm has no task events; the nodes are
//! listed at most once a second). Secret files are Swarm secrets, one per file of one
//! instance (`<instance>-f<i>`, labelled with the instance), made before its service and
//! removed after it: Swarm hands them only to the node that runs the task, in memory. Exec
//! and CPU/memory samples go to the engine of the node the task runs on: the manager's own,
//! or one given for the node ([`SwarmEngine::with_node_engines`]).
//!
//! Volumes are the nodes' own (Docker's `local` driver): each lives on one node, chosen when
//! it is first needed among the nodes whose engine Berth reaches, and pinned there by a node
//! label (`berth.volume.<volume>`) that the instances mounting it are constrained to, so its
//! data and its instances stay together across rollouts, restarts and Berth servers. Its
//! listing, removal, backup and restore go to that node's engine. Like Swarm itself, Berth
//! does not move a volume: an instance mounting one is not moved off a drained node, and
//! waits for its node when the node is down.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use async_trait::async_trait;
use bollard::models::{
    EndpointPortConfig, EndpointPortConfigProtocolEnum, EndpointPortConfigPublishModeEnum,
    EndpointSpec, EndpointSpecModeEnum, Limit, NetworkAttachmentConfig, NetworkCreateRequest,
    NodeSpec, NodeSpecAvailabilityEnum, NodeState, ResourceObject, SecretSpec, Service,
    ServiceSpec, ServiceSpecMode, ServiceSpecModeReplicated, Task, TaskSpec, TaskSpecContainerSpec,
    TaskSpecContainerSpecFile, TaskSpecContainerSpecSecrets, TaskSpecPlacement,
    TaskSpecPlacementPreferences, TaskSpecPlacementSpread, TaskSpecResources,
    TaskSpecRestartPolicy, TaskSpecRestartPolicyConditionEnum, TaskState,
};
use bollard::query_parameters::{
    InspectServiceOptions, ListNetworksOptionsBuilder, ListSecretsOptionsBuilder,
    ListServicesOptionsBuilder, ListTasksOptionsBuilder, UpdateNodeOptionsBuilder,
};
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};

use super::{
    DockerEngine, MANAGED_NETWORK_LABEL, docker_credentials, env_list, label_filters, map_err,
    parse_rfc3339_ms, status_of,
};
use crate::node_agent::NodeAgent;
use crate::{
    ContainerState, EngineError, EngineEvent, EngineInfo, EngineNode, EngineResult, ExecSession,
    ExecSpec, InstanceSpec, LogLine, LogOptions, NodeAvailability, ObservedContainer,
    ObservedVolume, ResourceSample, Runtime, labels,
};

/// The node label instances are spread over.
pub const DATACENTER_LABEL: &str = "datacenter";
/// How often services and tasks are listed for [`Runtime::events`].
const EVENT_POLL: Duration = Duration::from_millis(500);
/// How long a listing of the nodes serves before the manager is asked again (Berth's own
/// changes to a node ask at once).
const NODES_FRESH_FOR: Duration = Duration::from_secs(1);
/// How long a reading by a node agent may take (an exec of a process that reads three files).
const AGENT_READ_PATIENCE: Duration = Duration::from_secs(10);
/// How long a stop waits beyond the grace period for the task to be gone.
const STOP_MARGIN: Duration = Duration::from_secs(15);
/// The Swarm node label saying Berth drains the node: Swarm only pauses it (no new task),
/// and Berth moves its instances away one replacement at a time.
const DRAIN_LABEL: &str = "berth.drain";
/// Node labels with this prefix are Berth's marks, not shown among a node's labels.
const BERTH_LABEL_PREFIX: &str = "berth.";
/// The node label pinning a volume to the node that holds it is this prefix and its name.
const VOLUME_LABEL_PREFIX: &str = "berth.volume.";
/// The label naming the instance a Swarm secret holds a file of.
const FILE_OF_LABEL: &str = "berth.file-of";
/// The longest name Swarm takes for a secret.
const SECRET_NAME_MAX: usize = 64;

/// [`Runtime`] on a Docker Swarm, through a manager's API.
#[derive(Debug, Clone)]
pub struct SwarmEngine {
    manager: DockerEngine,
    /// Datacenters are chosen one at a time, each knowing the ones before.
    starting: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// Instances whose datacenter is chosen and whose service is being created (so not yet
    /// listed by the manager): service name → the app's labels and the datacenter.
    placing: std::sync::Arc<std::sync::Mutex<HashMap<String, (AppKey, String)>>>,
    /// The last listing of the nodes and when it was made: the event poll, every sample and
    /// every placement read the nodes, which change rarely.
    nodes_seen: Recent<NodesById>,
    /// The last listing of running tasks, by service id: every instance's usage sample
    /// looks its task up, each round.
    tasks_seen: Recent<HashMap<String, Task>>,
    /// The engines of other nodes than the manager's, by node (host) name: what only the
    /// engine running a container does (exec, CPU and memory samples) goes there.
    node_engines: std::sync::Arc<HashMap<String, DockerEngine>>,
    /// The manager's own node name, once asked.
    manager_node: std::sync::Arc<tokio::sync::OnceCell<String>>,
    /// Volumes get their node one at a time, each knowing where the ones before went.
    placing_volumes: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// The labels of volumes asked for and not yet on a node: each is made on its node once
    /// the first instance mounting it says which nodes it may run on.
    unplaced_volumes: std::sync::Arc<std::sync::Mutex<HashMap<String, BTreeMap<String, String>>>>,
    /// The agent kept on each node with an engine of its own, to read its host.
    node_agent: Option<std::sync::Arc<NodeAgent>>,
    /// Nodes whose agent is being set up, and why the last setup on a node failed.
    agent_setups: std::sync::Arc<std::sync::Mutex<AgentSetups>>,
}

impl SwarmEngine {
    /// Runs instances through the Swarm that `manager` (a manager node's engine) belongs to.
    pub fn new(manager: DockerEngine) -> Self {
        SwarmEngine {
            manager,
            starting: Default::default(),
            node_engines: Default::default(),
            manager_node: Default::default(),
            placing_volumes: Default::default(),
            unplaced_volumes: Default::default(),
            placing: Default::default(),
            nodes_seen: Default::default(),
            tasks_seen: Default::default(),
            node_agent: None,
            agent_setups: Default::default(),
        }
    }

    /// Reads the hosts of the nodes given an engine ([`SwarmEngine::with_node_engines`]) with
    /// `agent`, kept running on each of them.
    pub fn with_node_agent(mut self, agent: NodeAgent) -> Self {
        self.node_agent = Some(std::sync::Arc::new(agent));
        self
    }

    /// Reaches the containers on other nodes through their own engines, by node name.
    pub fn with_node_engines(mut self, engines: HashMap<String, DockerEngine>) -> Self {
        self.node_engines = std::sync::Arc::new(engines);
        self
    }

    /// The engine of the node named `node`: its own when given, the manager's for the
    /// manager's node.
    async fn engine_of_node(&self, node: &str) -> EngineResult<DockerEngine> {
        if let Some(engine) = self.node_engines.get(node) {
            return Ok(engine.clone());
        }
        let manager_node = self
            .manager_node
            .get_or_try_init(|| async { self.manager.info().await.map(|info| info.node_name) })
            .await?;
        if manager_node == node {
            return Ok(self.manager.clone());
        }
        Err(EngineError::Unsupported(format!(
            "the instance runs on node {node}, whose engine Berth does not reach: start the \
             server with --node-engines {node}=URL (the node's Docker Engine)"
        )))
    }

    /// Changes a node's spec (found by host name or id) at the version read.
    async fn update_node(
        &self,
        node: &str,
        change: impl FnOnce(&mut NodeSpec),
    ) -> EngineResult<()> {
        let docker = self.manager.ready().await?;
        let nodes = docker.list_nodes(None).await.map_err(map_err)?;
        let found = nodes
            .into_iter()
            .find(|n| {
                n.description.as_ref().and_then(|d| d.hostname.as_deref()) == Some(node)
                    || n.id.as_deref() == Some(node)
            })
            .ok_or_else(|| EngineError::NotFound(format!("node {node}")))?;
        let id = found.id.unwrap_or_default();
        let version = found.version.and_then(|v| v.index).unwrap_or(0);
        let mut spec = found.spec.unwrap_or_default();
        change(&mut spec);
        let options = UpdateNodeOptionsBuilder::new()
            .version(i64::try_from(version).unwrap_or(i64::MAX))
            .build();
        let updated = docker
            .update_node(&id, spec, options)
            .await
            .map_err(map_err);
        self.nodes_seen.clear();
        updated
    }

    /// Where an instance's container runs: its node's name and engine, and its id there.
    async fn locate(&self, service: &str) -> EngineResult<(String, DockerEngine, String)> {
        let docker = self.manager.ready().await?;
        let filters = HashMap::from([("service", vec![service.to_string()])]);
        let tasks = docker
            .list_tasks(Some(
                ListTasksOptionsBuilder::new().filters(&filters).build(),
            ))
            .await
            .map_err(map_err)?;
        let tasks: Vec<&Task> = tasks.iter().collect();
        let task = current_task(&tasks)
            .ok_or_else(|| EngineError::NotFound(format!("instance {service} has no task")))?;
        self.place_of(service, task).await
    }

    /// Where an instance's container runs, from a recent listing of the running tasks (one
    /// call for all the instances sampled in a round); an instance that listing does not
    /// show is looked up alone.
    async fn locate_recent(&self, service: &str) -> EngineResult<(String, DockerEngine, String)> {
        match self.running_tasks().await?.remove(service) {
            Some(task) => self.place_of(service, task).await,
            None => self.locate(service).await,
        }
    }

    /// The node (name and engine) and container id of `task`, the current one of `service`.
    async fn place_of(
        &self,
        service: &str,
        task: Task,
    ) -> EngineResult<(String, DockerEngine, String)> {
        let status = task.status.unwrap_or_default();
        let container = status
            .container_status
            .and_then(|c| c.container_id)
            .filter(|_| status.state == Some(TaskState::RUNNING));
        let (Some(container), Some(node_id)) = (container, task.node_id) else {
            return Err(EngineError::Conflict(format!(
                "instance {service} is not running"
            )));
        };
        let node = self
            .nodes()
            .await?
            .remove(&node_id)
            .filter(|node| node.up)
            .ok_or_else(|| {
                EngineError::Conflict(format!(
                    "instance {service} is on node {node_id}, which is down"
                ))
            })?;
        let engine = self.engine_of_node(&node.name).await?;
        Ok((node.name, engine, container))
    }

    /// The node holding the volume `volume` (the one its label pins, as listed before any pin
    /// made now) and that node's engine.
    /// With `place` (the node constraints of the instance about to mount it), a volume without
    /// a node gets one now, is made there with the labels it was asked with, and is pinned
    /// there: a node that is up, takes new tasks, is not drained, meets the constraints and
    /// whose engine Berth reaches, holding the fewest volumes (then the first by name).
    async fn volume_home(
        &self,
        volume: &str,
        place: Option<&[crate::NodeLabelConstraint]>,
    ) -> EngineResult<Option<(SwarmNode, DockerEngine)>> {
        let key = volume_node_label(volume);
        let _one_at_a_time = self.placing_volumes.lock().await;
        let nodes = self.nodes().await?;
        if let Some(node) = nodes.values().find(|n| n.labels.contains_key(&key)) {
            let engine = self.engine_of_node(&node.name).await?;
            return Ok(Some((node.clone(), engine)));
        }
        let Some(constraints) = place else {
            return Ok(None);
        };
        let Some(labels) = self.unplaced().get(volume).cloned() else {
            return Err(EngineError::Conflict(format!(
                "volume {volume} is on no node and was not asked for: it is made before an \
                 instance mounts it"
            )));
        };
        let mut candidates = Vec::new();
        for node in nodes.into_values().filter(|n| {
            n.up && n.schedulable && !n.draining && constraints.iter().all(|c| c.met_by(&n.labels))
        }) {
            if let Ok(engine) = self.engine_of_node(&node.name).await {
                candidates.push((volumes_held(&node.labels), node, engine));
            }
        }
        candidates.sort_by(|a, b| (a.0, &a.1.name).cmp(&(b.0, &b.1.name)));
        let Some((_, node, engine)) = candidates.into_iter().next() else {
            return Err(EngineError::Conflict(format!(
                "no node can hold volume {volume}: it needs a node that is up, takes new \
                 instances, meets the app's node constraints and whose engine Berth reaches \
                 (--node-engines NODE=URL)"
            )));
        };
        engine.ensure_volume(volume, &labels).await?;
        self.update_node(&node.name, |spec| {
            spec.labels
                .get_or_insert_with(HashMap::new)
                .insert(key, "true".to_string());
        })
        .await?;
        self.unplaced().remove(volume);
        tracing::info!(%volume, node = %node.name, "volume placed on a Swarm node");
        Ok(Some((node, engine)))
    }

    fn unplaced(&self) -> std::sync::MutexGuard<'_, HashMap<String, BTreeMap<String, String>>> {
        // A map of labels: a panic elsewhere cannot leave it inconsistent.
        self.unplaced_volumes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The node every volume `spec` mounts is on (placing the ones without a node), checked
    /// against the app's node constraints; `None` when it mounts none.
    async fn volumes_node(&self, spec: &InstanceSpec) -> EngineResult<Option<String>> {
        let mut homes: BTreeMap<String, (SwarmNode, Vec<&str>)> = BTreeMap::new();
        for mount in &spec.mounts {
            let Some((node, _)) = self
                .volume_home(&mount.volume, Some(spec.node_constraints.as_slice()))
                .await?
            else {
                continue;
            };
            homes
                .entry(node.name.clone())
                .or_insert_with(|| (node, Vec::new()))
                .1
                .push(&mount.volume);
        }
        if homes.len() > 1 {
            let listed: Vec<String> = homes
                .iter()
                .map(|(name, (_, volumes))| format!("{} on {name}", volumes.join(", ")))
                .collect();
            return Err(EngineError::Conflict(format!(
                "instance {} mounts volumes held by different nodes ({}): an instance runs \
                 on one node",
                spec.name,
                listed.join("; ")
            )));
        }
        let Some((node, _)) = homes.into_values().next() else {
            return Ok(None);
        };
        if let Some(unmet) = spec
            .node_constraints
            .iter()
            .find(|c| !c.met_by(&node.labels))
        {
            return Err(EngineError::Conflict(format!(
                "instance {} mounts a volume held by node {}, which does not meet the app's \
                 node constraint {unmet}",
                spec.name, node.name
            )));
        }
        Ok(Some(node.name))
    }

    /// Creates the instance's service (with its secret files first), constrained to
    /// `datacenter` when given.
    async fn create_service(
        &self,
        spec: &InstanceSpec,
        datacenter: Option<&str>,
    ) -> EngineResult<String> {
        let docker = self.manager.ready().await?;
        let files = self.create_file_secrets(spec).await?;
        let created = match docker
            .create_service(
                service_spec(spec, datacenter, &files),
                spec.registry_auth.as_ref().map(docker_credentials),
            )
            .await
        {
            Ok(created) => created,
            Err(e) => {
                self.remove_file_secrets(&spec.name).await;
                return Err(map_err(e));
            }
        };
        let id = created.id.ok_or_else(|| {
            EngineError::Other(format!("Swarm created {} without an id", spec.name))
        })?;
        tracing::debug!(service = %spec.name, %id, "swarm service created");
        Ok(id)
    }

    fn setups(&self) -> std::sync::MutexGuard<'_, AgentSetups> {
        // Two sets of names: a panic elsewhere cannot leave them inconsistent.
        self.agent_setups
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn placing_now(&self) -> std::sync::MutexGuard<'_, HashMap<String, (AppKey, String)>> {
        // A map of names: a panic elsewhere cannot leave it inconsistent.
        self.placing
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Every node, by node id: the manager's listing at most [`NODES_FRESH_FOR`] old.
    async fn nodes(&self) -> EngineResult<NodesById> {
        if let Some(nodes) = self.nodes_seen.get(NODES_FRESH_FOR) {
            return Ok(nodes);
        }
        let nodes = self.list_nodes().await?;
        self.nodes_seen.set(nodes.clone());
        Ok(nodes)
    }

    /// The current task of every service that has one meant to run, by service id, listed
    /// at most once per [`NODES_FRESH_FOR`].
    async fn running_tasks(&self) -> EngineResult<HashMap<String, Task>> {
        if let Some(tasks) = self.tasks_seen.get(NODES_FRESH_FOR) {
            return Ok(tasks);
        }
        let docker = self.manager.ready().await?;
        let filters = HashMap::from([("desired-state", vec!["running"])]);
        let tasks = docker
            .list_tasks(Some(
                ListTasksOptionsBuilder::new().filters(&filters).build(),
            ))
            .await
            .map_err(map_err)?;
        let tasks = current_tasks_by_service(&tasks);
        self.tasks_seen.set(tasks.clone());
        Ok(tasks)
    }

    /// Every node, by node id, as the manager lists them now.
    async fn list_nodes(&self) -> EngineResult<NodesById> {
        let docker = self.manager.ready().await?;
        let nodes = docker.list_nodes(None).await.map_err(map_err)?;
        Ok(nodes
            .into_iter()
            .filter_map(|node| {
                let id = node.id?;
                let spec = node.spec.unwrap_or_default();
                let status = node.status.unwrap_or_default();
                Some((
                    id.clone(),
                    SwarmNode {
                        name: node.description.and_then(|d| d.hostname).unwrap_or(id),
                        address: status.addr.filter(|a| !a.is_empty()),
                        up: status.state == Some(NodeState::READY),
                        schedulable: matches!(
                            spec.availability,
                            None | Some(NodeSpecAvailabilityEnum::ACTIVE)
                        ),
                        datacenter: spec
                            .labels
                            .as_ref()
                            .and_then(|labels| labels.get(DATACENTER_LABEL))
                            .filter(|dc| !dc.is_empty())
                            .cloned(),
                        draining: spec
                            .labels
                            .as_ref()
                            .is_some_and(|labels| labels.contains_key(DRAIN_LABEL)),
                        labels: spec.labels.unwrap_or_default().into_iter().collect(),
                    },
                ))
            })
            .collect())
    }

    /// The services (with their current task) whose labels contain all of `label_filter`.
    async fn services(
        &self,
        label_filter: &BTreeMap<String, String>,
    ) -> EngineResult<Vec<(Service, Option<Task>)>> {
        let docker = self.manager.ready().await?;
        let mut options = ListServicesOptionsBuilder::new();
        let filters = HashMap::from([("label", label_filters(label_filter))]);
        if !label_filter.is_empty() {
            options = options.filters(&filters);
        }
        let services = docker
            .list_services(Some(options.build()))
            .await
            .map_err(map_err)?;
        if services.is_empty() {
            return Ok(Vec::new());
        }
        let tasks = docker.list_tasks(None).await.map_err(map_err)?;
        let mut by_service: HashMap<&str, Vec<&Task>> = HashMap::new();
        for task in &tasks {
            if let Some(service) = task.service_id.as_deref() {
                by_service.entry(service).or_default().push(task);
            }
        }
        Ok(services
            .into_iter()
            .map(|service| {
                let tasks = service
                    .id
                    .as_deref()
                    .and_then(|id| by_service.get(id))
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                let task = current_task(tasks);
                (service, task)
            })
            .collect())
    }

    /// Makes a Swarm secret for each of the instance's files (after removing any left by an
    /// earlier start of an instance of that name). A failure removes the ones made.
    async fn create_file_secrets(&self, spec: &InstanceSpec) -> EngineResult<Vec<FileSecret>> {
        use base64::Engine as _;
        if spec.files.is_empty() {
            return Ok(Vec::new());
        }
        self.remove_file_secrets(&spec.name).await;
        let docker = self.manager.ready().await?;
        let mut labels: HashMap<String, String> = labels::with_reserved_blank(&spec.labels)
            .into_iter()
            .collect();
        labels.insert(FILE_OF_LABEL.into(), spec.name.clone());
        let mut made = Vec::with_capacity(spec.files.len());
        for (index, file) in spec.files.iter().enumerate() {
            let name = file_secret_name(&spec.name, index);
            let created = docker
                .create_secret(SecretSpec {
                    name: Some(name.clone()),
                    labels: Some(labels.clone()),
                    data: Some(base64::engine::general_purpose::STANDARD.encode(&file.contents.0)),
                    ..Default::default()
                })
                .await;
            match created {
                Ok(created) => made.push(FileSecret {
                    id: created.id,
                    name,
                    path: file.path.clone(),
                }),
                Err(e) => {
                    self.remove_file_secrets(&spec.name).await;
                    return Err(map_err(e));
                }
            }
        }
        Ok(made)
    }

    /// Removes the Swarm secrets made for `instance`'s files. Best effort: one left behind
    /// (Swarm refuses while a service still uses it) is logged and removed by the instance's
    /// next start or stop.
    async fn remove_file_secrets(&self, instance: &str) {
        let Ok(docker) = self.manager.ready().await else {
            return;
        };
        let label = format!("{FILE_OF_LABEL}={instance}");
        let filters = HashMap::from([("label", vec![label.as_str()])]);
        let options = ListSecretsOptionsBuilder::new().filters(&filters).build();
        let secrets = match docker.list_secrets(Some(options)).await {
            Ok(secrets) => secrets,
            Err(e) => {
                tracing::warn!(%instance, error = %e, "cannot list the instance's Swarm secrets");
                return;
            }
        };
        for secret in secrets {
            let Some(id) = secret.id else { continue };
            match docker.delete_secret(&id).await {
                Ok(()) => {}
                Err(e) if status_of(&e) == Some(404) => {}
                Err(e) => {
                    tracing::warn!(%instance, secret = %id, error = %e, "cannot remove a Swarm secret of the instance")
                }
            }
        }
    }

    /// The datacenter a new instance of the app `spec` belongs to goes to: the one with the
    /// fewest of the app's instances among those with a node that can take it (up, active,
    /// meeting the app's node constraints); `None` when those nodes name fewer than two
    /// datacenters (Swarm places freely).
    async fn datacenter_for(&self, spec: &InstanceSpec) -> EngineResult<Option<String>> {
        let nodes = self.nodes().await?;
        let mut load: BTreeMap<String, usize> = nodes
            .values()
            .filter(|n| n.up && n.schedulable && !n.draining)
            .filter(|n| spec.node_constraints.iter().all(|c| c.met_by(&n.labels)))
            .filter_map(|n| n.datacenter.clone())
            .map(|dc| (dc, 0))
            .collect();
        if load.len() < 2 {
            return Ok(None);
        }
        let app = app_key(spec);
        // Those being created count where they were sent. Read before the listing: one that
        // is no longer being created by then is in the listing.
        let placing: Vec<(String, String)> = self
            .placing_now()
            .iter()
            .filter(|(_, (of_app, _))| *of_app == app)
            .map(|(name, (_, datacenter))| (name.clone(), datacenter.clone()))
            .collect();
        let services = self.services(&app).await?;
        let listed: std::collections::HashSet<&str> = services
            .iter()
            .filter_map(|(service, _)| service.spec.as_ref()?.name.as_deref())
            .collect();
        for (name, datacenter) in &placing {
            if !listed.contains(name.as_str())
                && let Some(count) = load.get_mut(datacenter)
            {
                *count += 1;
            }
        }
        for (service, task) in services {
            // The datacenter Berth chose (a task may not exist yet), else where it runs.
            let placed = datacenter_constraint(&service).or_else(|| {
                task.filter(|t| t.desired_state == Some(TaskState::RUNNING))
                    .and_then(|t| t.node_id)
                    .and_then(|id| nodes.get(&id))
                    .and_then(|n| n.datacenter.clone())
            });
            if let Some(count) = placed.and_then(|dc| load.get_mut(&dc)) {
                *count += 1;
            }
        }
        Ok(least_loaded(&load))
    }

    /// The names of the nodes the service's tasks were sent to.
    async fn task_nodes(&self, service_id: &str) -> EngineResult<Vec<String>> {
        let docker = self.manager.ready().await?;
        let filters = HashMap::from([("service", vec![service_id])]);
        let options = ListTasksOptionsBuilder::new().filters(&filters).build();
        let tasks = docker.list_tasks(Some(options)).await.map_err(map_err)?;
        let nodes = self.nodes().await?;
        let mut names: Vec<String> = tasks
            .iter()
            .filter_map(|task| nodes.get(task.node_id.as_ref()?))
            .filter(|node| node.up)
            .map(|node| node.name.clone())
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// Waits (until `deadline`) for the node's engine to have removed every container of the
    /// removed service; a node whose engine Berth does not reach is not waited for.
    async fn wait_containers_gone(
        &self,
        node: &str,
        service_id: &str,
        deadline: tokio::time::Instant,
    ) {
        let Ok(engine) = self.engine_of_node(node).await else {
            return;
        };
        let label = format!("com.docker.swarm.service.id={service_id}");
        loop {
            match engine.containers_labelled(&label).await {
                Ok(0) => return,
                Ok(_) if tokio::time::Instant::now() < deadline => {}
                Ok(left) => {
                    tracing::warn!(service = %service_id, node, left, "the node has not removed the stopped instance's containers yet");
                    return;
                }
                Err(error) => {
                    tracing::warn!(service = %service_id, node, %error, "cannot list the node's containers");
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Whether a service's tasks have all stopped, or run on a node that is down (it never
    /// reports back), or the service is unknown.
    async fn stopped(&self, service: &str) -> EngineResult<bool> {
        let docker = self.manager.ready().await?;
        let filters = HashMap::from([("service", vec![service])]);
        let options = ListTasksOptionsBuilder::new().filters(&filters).build();
        let tasks = match docker.list_tasks(Some(options)).await {
            Ok(tasks) => tasks,
            Err(e) if status_of(&e) == Some(404) => return Ok(true),
            Err(e) => return Err(map_err(e)),
        };
        let nodes = self.nodes().await?;
        Ok(tasks.iter().all(|task| {
            let on_a_live_node = task
                .node_id
                .as_ref()
                .and_then(|id| nodes.get(id))
                .is_some_and(|n| n.up);
            !on_a_live_node
                || !matches!(
                    task.status.as_ref().and_then(|s| s.state),
                    Some(
                        TaskState::RUNNING
                            | TaskState::STARTING
                            | TaskState::PREPARING
                            | TaskState::READY
                    )
                )
        }))
    }
}

/// A Swarm node as instances need it.
#[derive(Debug, Clone, Default)]
pub struct SwarmNode {
    /// Its host name (what Berth shows as an instance's node).
    pub name: String,
    /// The address other machines reach it at.
    pub address: Option<String>,
    /// Whether the manager hears from it.
    pub up: bool,
    /// Whether it takes new tasks (availability `active`).
    pub schedulable: bool,
    /// Its `datacenter` label.
    pub datacenter: Option<String>,
    /// All its labels.
    pub labels: BTreeMap<String, String>,
    /// Berth drains it.
    pub draining: bool,
}

/// Swarm's placement constraints for an instance: never a node Berth drains (even one made
/// `active` again by hand with the mark still on), the datacenter Berth chose for it, and the
/// app's node constraints (their labels and values are checked when the app is deployed:
/// nothing else can enter the expression).
fn placement_constraints(
    datacenter: Option<&str>,
    constraints: &[crate::NodeLabelConstraint],
    mounts: &[crate::VolumeMount],
) -> Vec<String> {
    std::iter::once(format!("node.labels.{DRAIN_LABEL}!=true"))
        .chain(datacenter.map(|dc| format!("node.labels.{DATACENTER_LABEL}=={dc}")))
        .chain(constraints.iter().map(|c| format!("node.labels.{c}")))
        .chain(
            mounts
                .iter()
                .map(|m| format!("node.labels.{}==true", volume_node_label(&m.volume))),
        )
        .collect()
}

/// Ends an instance's entry in [`SwarmEngine::placing`] when dropped.
struct PlacingGuard<'a> {
    engine: &'a SwarmEngine,
    name: &'a str,
}

impl Drop for PlacingGuard<'_> {
    fn drop(&mut self) {
        self.engine.placing_now().remove(self.name);
    }
}

/// Nodes by node id.
type NodesById = HashMap<String, SwarmNode>;

/// The labels naming an instance's app (its namespace and name).
type AppKey = BTreeMap<String, String>;

fn app_key(spec: &InstanceSpec) -> AppKey {
    [labels::NAMESPACE, labels::APP]
        .into_iter()
        .filter_map(|key| Some((key.to_string(), spec.labels.get(key)?.clone())))
        .collect()
}

/// The container part of a service's spec.
fn container_spec(spec: &ServiceSpec) -> Option<&TaskSpecContainerSpec> {
    spec.task_template.as_ref()?.container_spec.as_ref()
}

/// The node label pinning `volume` to its node.
fn volume_node_label(volume: &str) -> String {
    format!("{VOLUME_LABEL_PREFIX}{volume}")
}

/// How many volumes a node with `labels` holds.
fn volumes_held(labels: &BTreeMap<String, String>) -> usize {
    labels
        .keys()
        .filter(|key| key.starts_with(VOLUME_LABEL_PREFIX))
        .count()
}

/// A node's availability as Berth says it: `drain` while Berth drains it (Swarm pauses it).
fn availability_of(spec: &NodeSpec) -> NodeAvailability {
    let marked = spec
        .labels
        .as_ref()
        .is_some_and(|labels| labels.contains_key(DRAIN_LABEL));
    match spec.availability {
        _ if marked => NodeAvailability::Drain,
        Some(NodeSpecAvailabilityEnum::PAUSE) => NodeAvailability::Pause,
        Some(NodeSpecAvailabilityEnum::DRAIN) => NodeAvailability::Drain,
        _ => NodeAvailability::Active,
    }
}

/// Sets a node's availability: a drain is Swarm's `pause` (nothing new lands there, nothing
/// is stopped) with Berth's mark, so Berth replaces the node's instances health-gated
/// before it stops them; `active` and `pause` remove the mark.
fn set_availability(spec: &mut NodeSpec, availability: NodeAvailability) {
    let labels = spec.labels.get_or_insert_with(HashMap::new);
    if availability == NodeAvailability::Drain {
        labels.insert(DRAIN_LABEL.to_string(), "true".to_string());
    } else {
        labels.remove(DRAIN_LABEL);
    }
    spec.availability = Some(match availability {
        NodeAvailability::Active => NodeSpecAvailabilityEnum::ACTIVE,
        NodeAvailability::Pause | NodeAvailability::Drain => NodeSpecAvailabilityEnum::PAUSE,
    });
}

/// The datacenter a service is kept to by its placement constraint.
fn datacenter_constraint(service: &Service) -> Option<String> {
    let prefix = format!("node.labels.{DATACENTER_LABEL}==");
    service
        .spec
        .as_ref()?
        .task_template
        .as_ref()?
        .placement
        .as_ref()?
        .constraints
        .as_ref()?
        .iter()
        .find_map(|c| c.strip_prefix(&prefix).map(str::to_string))
}

/// The datacenter with the fewest instances (the first by name on a tie).
fn least_loaded(load: &BTreeMap<String, usize>) -> Option<String> {
    load.iter()
        .min_by_key(|(dc, count)| (**count, (*dc).clone()))
        .map(|(dc, _)| dc.clone())
}

/// The service Berth creates for one instance, kept to `datacenter` when one is given.
/// The Swarm service of one instance, placed in `datacenter` (when the nodes name several),
/// with the Swarm secrets `files` (made for the instance's files, in the same order).
pub fn service_spec(
    spec: &InstanceSpec,
    datacenter: Option<&str>,
    files: &[FileSecret],
) -> ServiceSpec {
    let non_empty = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
    let labels: HashMap<String, String> = labels::with_reserved_blank(&spec.labels)
        .into_iter()
        .collect();
    let nano_cpus = spec
        .cpu_millis
        .map(|m| i64::try_from(m.saturating_mul(1_000_000)).unwrap_or(i64::MAX));
    let memory_bytes = spec
        .memory_bytes
        .map(|b| i64::try_from(b).unwrap_or(i64::MAX));
    ServiceSpec {
        name: Some(spec.name.clone()),
        labels: Some(labels.clone()),
        mode: Some(ServiceSpecMode {
            replicated: Some(ServiceSpecModeReplicated { replicas: Some(1) }),
            ..Default::default()
        }),
        task_template: Some(TaskSpec {
            container_spec: Some(TaskSpecContainerSpec {
                image: Some(spec.image.clone()),
                labels: Some(labels),
                command: non_empty(&spec.command),
                args: non_empty(&spec.args),
                env: Some(env_list(spec)),
                stop_grace_period: Some(
                    i64::try_from(spec.stop_grace.as_nanos()).unwrap_or(i64::MAX),
                ),
                mounts: super::volumes::docker_mounts(&spec.mounts),
                secrets: (!files.is_empty()).then(|| {
                    files
                        .iter()
                        .map(|file| TaskSpecContainerSpecSecrets {
                            // Read-only for everyone, as on a single engine.
                            file: Some(TaskSpecContainerSpecFile {
                                name: Some(file.path.clone()),
                                uid: Some("0".into()),
                                gid: Some("0".into()),
                                mode: Some(0o444),
                            }),
                            secret_id: Some(file.id.clone()),
                            secret_name: Some(file.name.clone()),
                        })
                        .collect()
                }),
                ..Default::default()
            }),
            // Placement by the app's limits: a node must have room for them.
            resources: Some(TaskSpecResources {
                limits: Some(Limit {
                    nano_cpus,
                    memory_bytes,
                    ..Default::default()
                }),
                reservations: Some(ResourceObject {
                    nano_cpus,
                    memory_bytes,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            // Berth decides replacements (crash-loop backoff, health): Swarm restarts nothing.
            restart_policy: Some(TaskSpecRestartPolicy {
                condition: Some(TaskSpecRestartPolicyConditionEnum::NONE),
                ..Default::default()
            }),
            placement: Some(TaskSpecPlacement {
                constraints: Some(placement_constraints(
                    datacenter,
                    &spec.node_constraints,
                    &spec.mounts,
                )),
                preferences: Some(vec![TaskSpecPlacementPreferences {
                    spread: Some(TaskSpecPlacementSpread {
                        spread_descriptor: Some(format!("node.labels.{DATACENTER_LABEL}")),
                    }),
                }]),
                ..Default::default()
            }),
            networks: Some(vec![NetworkAttachmentConfig {
                target: Some(spec.network.clone()),
                aliases: non_empty(&spec.network_aliases),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        // DNS round robin over the tasks, no virtual IP: names resolve to instances (the
        // app's alias to all of its instances), and no IPVS is needed on the nodes.
        endpoint_spec: Some(EndpointSpec {
            mode: Some(EndpointSpecModeEnum::DNSRR),
            ports: Some(
                spec.ports
                    .iter()
                    .map(|port| EndpointPortConfig {
                        protocol: Some(EndpointPortConfigProtocolEnum::TCP),
                        target_port: Some(i64::from(*port)),
                        publish_mode: Some(EndpointPortConfigPublishModeEnum::HOST),
                        ..Default::default()
                    })
                    .collect(),
            ),
        }),
        ..Default::default()
    }
}

/// The current task ([`current_task`]) of each service among `tasks`, by service id.
fn current_tasks_by_service(tasks: &[Task]) -> HashMap<String, Task> {
    let mut by_service: HashMap<&str, Vec<&Task>> = HashMap::new();
    for task in tasks {
        if let Some(service) = task.service_id.as_deref() {
            by_service.entry(service).or_default().push(task);
        }
    }
    by_service
        .into_iter()
        .filter_map(|(service, tasks)| Some((service.to_owned(), current_task(&tasks)?)))
        .collect()
}

/// The node agents being set up, and why the last setup on a node failed.
#[derive(Debug, Default)]
struct AgentSetups {
    in_flight: std::collections::HashSet<String>,
    failures: HashMap<String, String>,
}

/// A value listed recently, and when: what several callers ask for within moments is listed
/// once.
#[derive(Debug)]
struct Recent<T>(std::sync::Arc<std::sync::Mutex<Option<(std::time::Instant, T)>>>);

impl<T> Default for Recent<T> {
    fn default() -> Self {
        Recent(Default::default())
    }
}

impl<T> Clone for Recent<T> {
    fn clone(&self) -> Self {
        Recent(std::sync::Arc::clone(&self.0))
    }
}

impl<T: Clone> Recent<T> {
    /// The value, when listed less than `fresh_for` ago.
    fn get(&self, fresh_for: Duration) -> Option<T> {
        self.lock()
            .as_ref()
            .filter(|(at, _)| at.elapsed() < fresh_for)
            .map(|(_, value)| value.clone())
    }

    fn set(&self, value: T) {
        *self.lock() = Some((std::time::Instant::now(), value));
    }

    /// Forgets the value (it changed).
    fn clear(&self) {
        *self.lock() = None;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(std::time::Instant, T)>> {
        // A cached listing: a panic elsewhere cannot leave it inconsistent.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The task that stands for a service now: the one Swarm wants running, else the newest.
fn current_task(tasks: &[&Task]) -> Option<Task> {
    let created = |task: &&&Task| {
        task.created_at
            .as_deref()
            .and_then(parse_rfc3339_ms)
            .unwrap_or(0)
    };
    tasks
        .iter()
        .filter(|t| t.desired_state == Some(TaskState::RUNNING))
        .max_by_key(created)
        .or_else(|| tasks.iter().max_by_key(created))
        .map(|task| (*task).clone())
}

/// A task state as a container state.
fn task_state(state: Option<TaskState>) -> ContainerState {
    match state {
        Some(TaskState::RUNNING) => ContainerState::Running,
        Some(
            TaskState::COMPLETE
            | TaskState::SHUTDOWN
            | TaskState::FAILED
            | TaskState::REJECTED
            | TaskState::ORPHANED
            | TaskState::REMOVE,
        ) => ContainerState::Exited,
        _ => ContainerState::Created,
    }
}

/// An instance as its service and current task show it.
pub fn observe_service(
    service: &Service,
    task: Option<&Task>,
    nodes: &HashMap<String, SwarmNode>,
) -> ObservedContainer {
    let spec = service.spec.clone().unwrap_or_default();
    // An instance mounting a volume stays with it: it is not moved off a drained node.
    let mounts_volume = container_spec(&spec)
        .and_then(|c| c.mounts.as_ref())
        .is_some_and(|mounts| !mounts.is_empty());
    let labels = spec
        .labels
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|(key, value)| !(value.is_empty() && labels::RESERVED.contains(&key.as_str())))
        .collect();
    let image = spec
        .task_template
        .and_then(|t| t.container_spec)
        .and_then(|c| c.image)
        .unwrap_or_default();
    let status = task.and_then(|t| t.status.clone()).unwrap_or_default();
    let node = task
        .and_then(|t| t.node_id.as_ref())
        .and_then(|id| nodes.get(id).cloned())
        .unwrap_or_default();
    let mut state = task_state(status.state);
    let mut error = status.err.filter(|e| !e.is_empty());
    // A task on a node the manager no longer hears from runs nowhere Berth can reach.
    if state != ContainerState::Exited && task.is_some_and(|t| t.node_id.is_some()) && !node.up {
        state = ContainerState::Exited;
        error = Some(format!("node {} is down", node.name));
    }
    let at = status.timestamp.as_deref().and_then(parse_rfc3339_ms);
    let SwarmNode {
        name: node,
        address,
        draining: node_draining,
        ..
    } = node;
    let published_ports: BTreeMap<u16, u16> = status
        .port_status
        .and_then(|p| p.ports)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|port| {
            Some((
                u16::try_from(port.target_port?).ok()?,
                u16::try_from(port.published_port?).ok()?,
            ))
        })
        .collect();
    let container = status.container_status.unwrap_or_default();
    ObservedContainer {
        id: service.id.clone().unwrap_or_default(),
        name: spec.name.unwrap_or_default(),
        image,
        labels,
        state,
        ip_address: (state == ContainerState::Running)
            .then_some(address)
            .flatten(),
        created_at_ms: service
            .created_at
            .as_deref()
            .and_then(parse_rfc3339_ms)
            .unwrap_or(0),
        started_at_ms: (state == ContainerState::Running).then_some(at).flatten(),
        finished_at_ms: (state == ContainerState::Exited).then_some(at).flatten(),
        exit_code: (state == ContainerState::Exited)
            .then_some(container.exit_code)
            .flatten(),
        error,
        node,
        node_draining: node_draining && !mounts_volume,
        published_ports,
    }
}

/// A Swarm secret made for one file of an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSecret {
    pub id: String,
    pub name: String,
    /// Where the file appears in the instance's container.
    pub path: String,
}

/// The name of the Swarm secret holding file `index` of `instance`: `<instance>-f<index>`, or
/// for a name too long for Swarm, the instance's first characters and a hash of the whole.
fn file_secret_name(instance: &str, index: usize) -> String {
    let name = format!("{instance}-f{index}");
    if name.len() <= SECRET_NAME_MAX {
        return name;
    }
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    instance.hash(&mut hasher);
    let head: String = instance.chars().take(40).collect();
    format!("{head}-{:016x}-f{index}", hasher.finish())
}

/// An exec's id with the node whose engine runs it: `<exec id>@<node>`.
fn node_exec_id(exec: &str, node: &str) -> String {
    format!("{exec}@{node}")
}

/// The engine's exec id and the node of a [`node_exec_id`] (the engine's ids are hex: the
/// first `@` ends it).
fn split_node_exec_id(id: &str) -> EngineResult<(&str, &str)> {
    id.split_once('@')
        .filter(|(exec, node)| !exec.is_empty() && !node.is_empty())
        .ok_or_else(|| EngineError::NotFound(format!("exec {id} is not one of this Swarm's")))
}

#[async_trait]
impl Runtime for SwarmEngine {
    async fn info(&self) -> EngineResult<EngineInfo> {
        let docker = self.manager.ready().await?;
        let info = docker.info().await.map_err(map_err)?;
        let swarm = info.swarm.clone().unwrap_or_default();
        if swarm.control_available != Some(true) {
            return Err(EngineError::Other(
                "the engine is not a Swarm manager: point --docker-host at a manager node (docker swarm init)"
                    .into(),
            ));
        }
        let mut described = self.manager.info().await?;
        described.name = format!("swarm ({} nodes)", swarm.nodes.unwrap_or(0));
        Ok(described)
    }

    async fn nodes(&self) -> EngineResult<Vec<EngineNode>> {
        let docker = self.manager.ready().await?;
        let local = self.manager.info().await?;
        let nodes = docker.list_nodes(None).await.map_err(map_err)?;
        let mut listed: Vec<EngineNode> = nodes
            .into_iter()
            .map(|node| {
                let spec = node.spec.unwrap_or_default();
                let status = node.status.unwrap_or_default();
                let description = node.description.unwrap_or_default();
                let resources = description.resources.unwrap_or_default();
                let name = description.hostname.unwrap_or_default();
                let is_local = name == local.node_name;
                EngineNode {
                    engine: format!(
                        "docker {}",
                        description
                            .engine
                            .and_then(|e| e.engine_version)
                            .unwrap_or_default()
                    ),
                    cpus: u32::try_from(resources.nano_cpus.unwrap_or(0) / 1_000_000_000)
                        .unwrap_or(0),
                    memory_bytes: u64::try_from(resources.memory_bytes.unwrap_or(0)).unwrap_or(0),
                    data_root: is_local.then(|| local.data_root.clone()).flatten(),
                    address: status.addr.filter(|a| !a.is_empty()),
                    role: spec
                        .role
                        .map(|r| r.to_string())
                        .filter(|r| !r.is_empty())
                        .unwrap_or_else(|| "worker".into()),
                    state: status
                        .state
                        .map(|s| s.to_string())
                        .unwrap_or_else(|| "unknown".into()),
                    availability: availability_of(&spec),
                    labels: spec
                        .labels
                        .unwrap_or_default()
                        .into_iter()
                        .filter(|(key, _)| !key.starts_with(BERTH_LABEL_PREFIX))
                        .collect(),
                    local: is_local,
                    name,
                }
            })
            .collect();
        listed.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(listed)
    }

    /// A reading by the agent when it runs. Otherwise its setup (importing its image can
    /// take a while) starts in the background, and the node is read without readings until
    /// it is done — or fails with the reason the last setup failed.
    async fn read_node(&self, node: &str) -> EngineResult<Option<Vec<u8>>> {
        let (Some(agent), Some(engine)) = (&self.node_agent, self.node_engines.get(node)) else {
            return Ok(None);
        };
        if self.setups().in_flight.contains(node) {
            return Ok(None);
        }
        if let Some(container) = engine.running_node_agent(agent).await? {
            let read = engine.read_with_node_agent(agent, &container);
            return match tokio::time::timeout(AGENT_READ_PATIENCE, read).await {
                Ok(output) => output.map(Some),
                Err(_) => Err(EngineError::Other(format!(
                    "the node agent did not answer within {} s",
                    AGENT_READ_PATIENCE.as_secs()
                ))),
            };
        }
        let last_failure = {
            let mut setups = self.setups();
            setups.in_flight.insert(node.to_owned());
            setups.failures.get(node).cloned()
        };
        let (engine, agent, setups, node) = (
            engine.clone(),
            std::sync::Arc::clone(agent),
            std::sync::Arc::clone(&self.agent_setups),
            node.to_owned(),
        );
        tokio::spawn(async move {
            let outcome = engine.ensure_node_agent(&agent).await;
            let mut setups = setups.lock().unwrap_or_else(|e| e.into_inner());
            setups.in_flight.remove(&node);
            match outcome {
                Ok(_) => {
                    tracing::info!(%node, "the node agent runs");
                    setups.failures.remove(&node);
                }
                Err(error) => {
                    setups
                        .failures
                        .insert(node, format!("the node agent cannot be set up: {error}"));
                }
            }
        });
        match last_failure {
            Some(reason) => Err(EngineError::Other(reason)),
            None => Ok(None),
        }
    }

    async fn set_node_availability(
        &self,
        node: &str,
        availability: NodeAvailability,
    ) -> EngineResult<()> {
        self.update_node(node, |spec| set_availability(spec, availability))
            .await
    }

    /// The node's Swarm labels become `labels` (placement constraints read them).
    async fn set_node_labels(
        &self,
        node: &str,
        labels: &BTreeMap<String, String>,
    ) -> EngineResult<bool> {
        let mut labels: HashMap<String, String> = labels.clone().into_iter().collect();
        self.update_node(node, |spec| {
            // Berth's own marks stay: they are not among the labels admins see.
            for (key, value) in spec.labels.iter().flatten() {
                if key.starts_with(BERTH_LABEL_PREFIX) {
                    labels.insert(key.clone(), value.clone());
                }
            }
            spec.labels = Some(labels);
        })
        .await?;
        Ok(true)
    }

    /// An attachable overlay network, so the team's apps reach each other on every node.
    async fn ensure_network(&self, name: &str) -> EngineResult<()> {
        let docker = self.manager.ready().await?;
        let filters = HashMap::from([("name", vec![name])]);
        let options = ListNetworksOptionsBuilder::new().filters(&filters).build();
        let networks = docker.list_networks(Some(options)).await.map_err(map_err)?;
        if networks.iter().any(|n| n.name.as_deref() == Some(name)) {
            return Ok(());
        }
        let request = NetworkCreateRequest {
            name: name.to_owned(),
            driver: Some("overlay".into()),
            attachable: Some(true),
            labels: Some(HashMap::from([(
                MANAGED_NETWORK_LABEL.to_owned(),
                "true".to_owned(),
            )])),
            ..Default::default()
        };
        match docker.create_network(request).await {
            Ok(_) => Ok(()),
            Err(e) if status_of(&e) == Some(409) => Ok(()),
            Err(e) => Err(map_err(e)),
        }
    }

    /// Each node pulls the image when its task starts, with the service's credential.
    async fn ensure_image(
        &self,
        _image: &str,
        _auth: Option<&crate::RegistryAuth>,
    ) -> EngineResult<()> {
        Ok(())
    }

    /// Where it goes is decided one instance at a time; the services are then created side by
    /// side.
    async fn start_instance(&self, spec: &InstanceSpec) -> EngineResult<String> {
        let datacenter = {
            let _one_at_a_time = self.starting.lock().await;
            // An instance mounting volumes goes to their node, wherever its datacenter.
            let datacenter = match self.volumes_node(spec).await? {
                Some(_) => None,
                None => self.datacenter_for(spec).await?,
            };
            if let Some(datacenter) = &datacenter {
                self.placing_now()
                    .insert(spec.name.clone(), (app_key(spec), datacenter.clone()));
            }
            datacenter
        };
        // Counted where it was sent until created, failed, or given up on.
        let _placed = PlacingGuard {
            engine: self,
            name: &spec.name,
        };
        self.create_service(spec, datacenter.as_deref()).await
    }

    /// Removes the service (Swarm stops its task: SIGTERM, then SIGKILL after the grace
    /// period set at creation) and waits until the task has stopped.
    async fn stop_instance(&self, id: &str, grace: Duration) -> EngineResult<()> {
        let docker = self.manager.ready().await?;
        let service = match docker
            .inspect_service(id, None::<InspectServiceOptions>)
            .await
        {
            Ok(service) => service,
            Err(e) if status_of(&e) == Some(404) => return Ok(()),
            Err(e) => return Err(map_err(e)),
        };
        let spec = service.spec.unwrap_or_default();
        // The instance whose secret files go with it (none for most: no lookup then).
        let with_files = spec.name.clone().filter(|_| {
            container_spec(&spec)
                .and_then(|container| container.secrets.as_ref())
                .is_some_and(|secrets| !secrets.is_empty())
        });
        // An instance mounting volumes is stopped once its containers are gone from its
        // node, not only its task: until then the node's engine counts the volume in use.
        let mounts_volumes = container_spec(&spec)
            .and_then(|container| container.mounts.as_ref())
            .is_some_and(|mounts| !mounts.is_empty());
        let task_nodes = match (&service.id, mounts_volumes) {
            (Some(service_id), true) => self.task_nodes(service_id).await?,
            _ => Vec::new(),
        };
        match docker.delete_service(id).await {
            Ok(()) => {}
            Err(e) if status_of(&e) == Some(404) => return Ok(()),
            Err(e) => return Err(map_err(e)),
        }
        let deadline = tokio::time::Instant::now() + grace + STOP_MARGIN;
        while !self.stopped(id).await? {
            if tokio::time::Instant::now() > deadline {
                tracing::warn!(service = %id, "the removed service's task has not stopped yet");
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        if let Some(service_id) = &service.id {
            for node in &task_nodes {
                self.wait_containers_gone(node, service_id, deadline).await;
            }
        }
        if let Some(name) = with_files {
            self.remove_file_secrets(&name).await;
        }
        Ok(())
    }

    async fn list_containers(
        &self,
        label_filter: &BTreeMap<String, String>,
    ) -> EngineResult<Vec<ObservedContainer>> {
        let services = self.services(label_filter).await?;
        if services.is_empty() {
            return Ok(Vec::new());
        }
        let nodes = self.nodes().await?;
        Ok(services
            .iter()
            .map(|(service, task)| observe_service(service, task.as_ref(), &nodes))
            .collect())
    }

    /// The changes a poll of the services sees, every half second: `create`, `start`, `die`
    /// (the task ended) and `destroy` (the service is gone).
    fn events(
        &self,
        label_filter: &BTreeMap<String, String>,
    ) -> BoxStream<'static, EngineResult<EngineEvent>> {
        type Seen = HashMap<String, (ContainerState, BTreeMap<String, String>)>;
        let engine = self.clone();
        let filter = label_filter.clone();
        let first = async move {
            let seen: EngineResult<Seen> = engine.list_containers(&filter).await.map(|all| {
                all.into_iter()
                    .map(|c| (c.id, (c.state, c.labels)))
                    .collect()
            });
            (engine, filter, seen)
        };
        stream::once(first)
            .flat_map(|(engine, filter, seen)| match seen {
                Err(e) => stream::once(async move { Err(e) }).boxed(),
                Ok(seen) => stream::unfold(
                    (engine, filter, seen, false),
                    |(engine, filter, mut seen, failed)| async move {
                        if failed {
                            return None;
                        }
                        tokio::time::sleep(EVENT_POLL).await;
                        let now = match engine.list_containers(&filter).await {
                            Ok(now) => now,
                            Err(e) => return Some((vec![Err(e)], (engine, filter, seen, true))),
                        };
                        let mut events = Vec::new();
                        let mut current: Seen = HashMap::new();
                        for c in now {
                            let action = match seen.get(&c.id) {
                                None => Some("create"),
                                Some((before, _)) if *before == c.state => None,
                                Some(_) => Some(match c.state {
                                    ContainerState::Running => "start",
                                    _ => "die",
                                }),
                            };
                            if let Some(action) = action {
                                events.push(Ok(EngineEvent {
                                    container_id: c.id.clone(),
                                    action: action.into(),
                                    labels: c.labels.clone(),
                                }));
                            }
                            current.insert(c.id, (c.state, c.labels));
                        }
                        for (id, (_, labels)) in seen.drain() {
                            if !current.contains_key(&id) {
                                events.push(Ok(EngineEvent {
                                    container_id: id,
                                    action: "destroy".into(),
                                    labels,
                                }));
                            }
                        }
                        Some((events, (engine, filter, current, false)))
                    },
                )
                .flat_map(stream::iter)
                .boxed(),
            })
            .boxed()
    }

    /// The service's output, which the manager gathers from the nodes.
    fn logs(&self, id: &str, options: LogOptions) -> BoxStream<'static, EngineResult<LogLine>> {
        self.manager.output(id, options, true)
    }

    /// From the engine of the node the instance runs on.
    async fn resource_sample(&self, id: &str) -> EngineResult<ResourceSample> {
        let (_, engine, container) = self.locate_recent(id).await?;
        match engine.resource_sample(&container).await {
            // The container of a task listed a moment ago may have been replaced since.
            Err(EngineError::NotFound(_) | EngineError::Conflict(_)) => {
                let (_, engine, container) = self.locate(id).await?;
                engine.resource_sample(&container).await
            }
            sampled => sampled,
        }
    }

    /// A team's volume on the node that holds it; one on no node yet is made there once the
    /// first instance mounting it is placed (it goes where that instance may run). Anything
    /// else (the namespace's claim) on the manager's own engine.
    async fn ensure_volume(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> EngineResult<()> {
        if !labels.contains_key(labels::TEAM) {
            return self.manager.ensure_volume(name, labels).await;
        }
        match self.volume_home(name, None).await? {
            Some((_, engine)) => engine.ensure_volume(name, labels).await,
            None => {
                self.unplaced().insert(name.to_string(), labels.clone());
                Ok(())
            }
        }
    }

    /// The volumes of the manager's engine and of every node engine Berth reaches (a node
    /// engine that does not answer is left out, with a warning).
    async fn list_volumes(
        &self,
        label_filter: &BTreeMap<String, String>,
        measure: bool,
    ) -> EngineResult<Vec<ObservedVolume>> {
        let mut found: BTreeMap<String, ObservedVolume> = BTreeMap::new();
        for volume in self.manager.list_volumes(label_filter, measure).await? {
            found.insert(volume.name.clone(), volume);
        }
        for (node, engine) in self.node_engines.iter() {
            match engine.list_volumes(label_filter, measure).await {
                Ok(volumes) => {
                    for volume in volumes {
                        found.entry(volume.name.clone()).or_insert(volume);
                    }
                }
                Err(error) => {
                    tracing::warn!(%node, %error, "the node's volumes cannot be listed")
                }
            }
        }
        Ok(found.into_values().collect())
    }

    /// On the node that holds it, whose pin goes with it. (A node keeps a removed service's
    /// container a while; until it is gone the engine refuses, and so does Berth, with 409.)
    async fn remove_volume(&self, name: &str) -> EngineResult<()> {
        let Some((node, engine)) = self.volume_home(name, None).await? else {
            self.unplaced().remove(name);
            return self.manager.remove_volume(name).await;
        };
        engine.remove_volume(name).await?;
        let key = volume_node_label(name);
        self.update_node(&node.name, |spec| {
            if let Some(labels) = spec.labels.as_mut() {
                labels.remove(&key);
            }
        })
        .await
    }

    /// On the node that holds it, which keeps its pin (removing and placing anew could move
    /// the data to a node the apps mounting it may not run on).
    async fn empty_volume(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> EngineResult<()> {
        match self.volume_home(name, None).await? {
            Some((_, engine)) => {
                engine.remove_volume(name).await?;
                engine.ensure_volume(name, labels).await
            }
            None => {
                self.remove_volume(name).await?;
                self.ensure_volume(name, labels).await
            }
        }
    }

    /// From the node that holds it.
    fn export_volume(&self, name: &str) -> BoxStream<'static, EngineResult<bytes::Bytes>> {
        let engine = self.clone();
        let name = name.to_string();
        stream::once(async move {
            let home = engine.volume_home(&name, None).await?;
            let source = home.map_or_else(|| engine.manager.clone(), |(_, engine)| engine);
            Ok::<_, EngineError>(source.export_volume(&name))
        })
        .try_flatten()
        .boxed()
    }

    /// Into the node that holds it (placed now on any node when it has none).
    async fn import_volume(
        &self,
        name: &str,
        archive: BoxStream<'static, std::io::Result<bytes::Bytes>>,
    ) -> EngineResult<()> {
        match self.volume_home(name, Some(&[][..])).await? {
            Some((_, engine)) => engine.import_volume(name, archive).await,
            None => self.manager.import_volume(name, archive).await,
        }
    }

    /// On the engine of the node the instance runs on; the session's id names the node
    /// (`<exec id>@<node>`) for its resizes and exit code.
    async fn exec(&self, id: &str, spec: &ExecSpec) -> EngineResult<ExecSession> {
        let (node, engine, container) = self.locate(id).await?;
        let mut session = engine.exec(&container, spec).await?;
        session.id = node_exec_id(&session.id, &node);
        Ok(session)
    }

    async fn resize_exec(&self, exec_id: &str, cols: u16, rows: u16) -> EngineResult<()> {
        let (exec, node) = split_node_exec_id(exec_id)?;
        self.engine_of_node(node)
            .await?
            .resize_exec(exec, cols, rows)
            .await
    }

    async fn exec_exit_code(&self, exec_id: &str) -> EngineResult<Option<i64>> {
        let (exec, node) = split_node_exec_id(exec_id)?;
        self.engine_of_node(node).await?.exec_exit_code(exec).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_service_carries_the_instance() {
        let spec = InstanceSpec {
            name: "berth-web-3".into(),
            ports: vec![8080, 9090],
            node_constraints: vec![
                crate::NodeLabelConstraint {
                    label: "disk".into(),
                    equal: true,
                    value: "ssd".into(),
                },
                crate::NodeLabelConstraint {
                    label: "zone".into(),
                    equal: false,
                    value: "b".into(),
                },
            ],
            ..super::super::tests::example_spec()
        };
        let service = service_spec(&spec, Some("dc2"), &[]);
        assert_eq!(service.name.as_deref(), Some("berth-web-3"));
        let labels = service.labels.unwrap();
        assert_eq!(labels["berth.app"], "web");
        assert_eq!(labels["berth.namespace"], "", "reserved labels are blanked");
        let task = service.task_template.unwrap();
        let container = task.container_spec.unwrap();
        assert_eq!(container.env.unwrap(), vec!["A=1".to_string()]);
        assert_eq!(container.command, None, "the image's entrypoint stays");
        assert_eq!(container.stop_grace_period, Some(2_500_000_000));
        assert_eq!(container.secrets, None, "no file, no secret");
        assert_eq!(
            task.placement.unwrap().constraints,
            Some(vec![
                "node.labels.berth.drain!=true".to_string(),
                "node.labels.datacenter==dc2".to_string(),
                "node.labels.disk==ssd".to_string(),
                "node.labels.zone!=b".to_string(),
            ])
        );
        let unplaced = service_spec(&super::super::tests::example_spec(), None, &[]);
        assert_eq!(
            unplaced
                .task_template
                .unwrap()
                .placement
                .unwrap()
                .constraints,
            Some(vec!["node.labels.berth.drain!=true".to_string()]),
            "no datacenter, no constraint: any node but one being drained"
        );
        let resources = task.resources.unwrap();
        assert_eq!(resources.limits.unwrap().nano_cpus, Some(250_000_000));
        assert_eq!(resources.reservations.unwrap().memory_bytes, Some(64 << 20));
        assert_eq!(
            task.restart_policy.unwrap().condition,
            Some(TaskSpecRestartPolicyConditionEnum::NONE)
        );
        let ports = service.endpoint_spec.unwrap().ports.unwrap();
        assert_eq!(ports.len(), 2);
        assert!(ports.iter().all(|p| p.publish_mode
            == Some(EndpointPortConfigPublishModeEnum::HOST)
            && p.published_port.is_none()));
        assert_eq!(
            task.networks.unwrap()[0].aliases,
            Some(vec!["web".to_string()])
        );
    }

    #[test]
    fn secret_files_are_mounted_read_only_at_their_paths() {
        let spec = super::super::tests::example_spec();
        let files = [FileSecret {
            id: "s1".into(),
            name: "berth-web-3-f0".into(),
            path: "/run/secrets/tls".into(),
        }];
        let service = service_spec(&spec, None, &files);
        let secrets = service
            .task_template
            .unwrap()
            .container_spec
            .unwrap()
            .secrets
            .unwrap();
        assert_eq!(secrets.len(), 1);
        assert_eq!(secrets[0].secret_id.as_deref(), Some("s1"));
        assert_eq!(secrets[0].secret_name.as_deref(), Some("berth-web-3-f0"));
        let file = secrets[0].file.clone().unwrap();
        assert_eq!(file.name.as_deref(), Some("/run/secrets/tls"));
        assert_eq!(file.mode, Some(0o444));
        assert_eq!(file.uid.as_deref(), Some("0"));
    }

    #[test]
    fn a_drain_pauses_the_node_with_berths_mark_and_the_others_remove_it() {
        let labelled = |pairs: &[(&str, &str)]| -> Option<HashMap<String, String>> {
            Some(
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            )
        };
        // (availability set, Swarm's availability after, Berth's mark after)
        let cases = [
            (
                NodeAvailability::Drain,
                NodeSpecAvailabilityEnum::PAUSE,
                true,
            ),
            (
                NodeAvailability::Pause,
                NodeSpecAvailabilityEnum::PAUSE,
                false,
            ),
            (
                NodeAvailability::Active,
                NodeSpecAvailabilityEnum::ACTIVE,
                false,
            ),
        ];
        for (availability, swarm, marked) in cases {
            for before in [
                labelled(&[("datacenter", "dc1")]),
                labelled(&[("datacenter", "dc1"), (DRAIN_LABEL, "true")]),
                None,
            ] {
                let mut spec = NodeSpec {
                    labels: before.clone(),
                    ..Default::default()
                };
                set_availability(&mut spec, availability);
                assert_eq!(
                    spec.availability,
                    Some(swarm),
                    "{availability:?} from {before:?}"
                );
                let labels = spec.labels.clone().unwrap();
                assert_eq!(
                    labels.contains_key(DRAIN_LABEL),
                    marked,
                    "{availability:?} from {before:?}"
                );
                assert_eq!(
                    labels.get("datacenter"),
                    before.as_ref().and_then(|b| b.get("datacenter")),
                    "the admins' labels stay"
                );
                assert_eq!(availability_of(&spec), availability, "read back as set");
            }
        }
        // Drained by hand with the docker CLI: a drain too.
        let by_hand = NodeSpec {
            availability: Some(NodeSpecAvailabilityEnum::DRAIN),
            ..Default::default()
        };
        assert_eq!(availability_of(&by_hand), NodeAvailability::Drain);
    }

    #[test]
    fn an_exec_id_names_its_node() {
        let id = node_exec_id("4f2a9c", "rig-node-2");
        assert_eq!(id, "4f2a9c@rig-node-2");
        assert_eq!(split_node_exec_id(&id).unwrap(), ("4f2a9c", "rig-node-2"));
        // A node name with an `@` keeps it: the engine's id ends at the first one.
        assert_eq!(
            split_node_exec_id("4f2a9c@node@dc1").unwrap(),
            ("4f2a9c", "node@dc1")
        );
        for foreign in ["4f2a9c", "@rig-node-2", "4f2a9c@", ""] {
            assert!(
                matches!(split_node_exec_id(foreign), Err(EngineError::NotFound(_))),
                "{foreign:?}"
            );
        }
    }

    #[test]
    fn secret_names_fit_swarm() {
        let long = "a".repeat(70);
        let table = [
            ("berth-web-3", 0, Some("berth-web-3-f0")),
            ("berth-web-3", 12, Some("berth-web-3-f12")),
            (long.as_str(), 1, None),
        ];
        for (instance, index, want) in table {
            let name = file_secret_name(instance, index);
            assert!(name.len() <= SECRET_NAME_MAX, "{name}");
            assert!(name.ends_with(&format!("-f{index}")), "{name}");
            if let Some(want) = want {
                assert_eq!(name, want);
            }
        }
        assert_ne!(
            file_secret_name(&format!("{long}x"), 0),
            file_secret_name(&format!("{long}y"), 0),
            "long names that differ late still differ"
        );
    }

    #[test]
    fn the_least_loaded_datacenter() {
        let load = |pairs: &[(&str, usize)]| -> BTreeMap<String, usize> {
            pairs.iter().map(|(dc, n)| (dc.to_string(), *n)).collect()
        };
        let cases = [
            (load(&[("dc1", 2), ("dc2", 1)]), Some("dc2")),
            (load(&[("dc1", 1), ("dc2", 1)]), Some("dc1")),
            (load(&[("dc1", 0), ("dc2", 3), ("dc3", 0)]), Some("dc1")),
            (load(&[]), None),
        ];
        for (load, want) in cases {
            assert_eq!(least_loaded(&load).as_deref(), want, "{load:?}");
        }
    }

    #[test]
    fn an_instance_mounting_volumes_is_pinned_to_their_node_and_not_moved_by_a_drain() {
        let spec = InstanceSpec {
            mounts: vec![
                crate::VolumeMount {
                    volume: "ns_default_data".into(),
                    target: "/data".into(),
                    read_only: false,
                },
                crate::VolumeMount {
                    volume: "ns_default_web-1".into(),
                    target: "/cache".into(),
                    read_only: true,
                },
            ],
            ..super::super::tests::example_spec()
        };
        let service = service_spec(&spec, None, &[]);
        let task = service.task_template.clone().unwrap();
        assert_eq!(
            task.placement.unwrap().constraints,
            Some(vec![
                "node.labels.berth.drain!=true".to_string(),
                "node.labels.berth.volume.ns_default_data==true".to_string(),
                "node.labels.berth.volume.ns_default_web-1==true".to_string(),
            ])
        );
        let mounts = task.container_spec.unwrap().mounts.unwrap();
        let mounted: Vec<_> = mounts
            .iter()
            .map(|m| (m.source.as_deref(), m.target.as_deref(), m.read_only))
            .collect();
        assert_eq!(
            mounted,
            vec![
                (Some("ns_default_data"), Some("/data"), Some(false)),
                (Some("ns_default_web-1"), Some("/cache"), Some(true)),
            ]
        );
        assert_eq!(
            volumes_held(&BTreeMap::from([
                ("berth.volume.a".to_string(), "true".to_string()),
                ("berth.volume.b".to_string(), "true".to_string()),
                ("berth.drain".to_string(), "true".to_string()),
                ("datacenter".to_string(), "dc1".to_string()),
            ])),
            2
        );

        // On a node Berth drains, the plain instance is to be moved, the mounting one not.
        let (nodes, task) = running_task_on(SwarmNode {
            name: "rig-node-2".into(),
            address: Some("10.77.0.12".into()),
            up: true,
            schedulable: false,
            datacenter: Some("dc1".into()),
            labels: BTreeMap::new(),
            draining: true,
        });
        let plain = Service {
            spec: Some(service_spec(
                &super::super::tests::example_spec(),
                None,
                &[],
            )),
            ..Default::default()
        };
        let mounting = Service {
            spec: Some(service),
            ..Default::default()
        };
        assert!(observe_service(&plain, Some(&task), &nodes).node_draining);
        assert!(!observe_service(&mounting, Some(&task), &nodes).node_draining);
    }

    /// `node` as the only node (id `n1`) and a task running there.
    fn running_task_on(node: SwarmNode) -> (NodesById, Task) {
        let task = Task {
            node_id: Some("n1".into()),
            desired_state: Some(TaskState::RUNNING),
            status: Some(bollard::models::TaskStatus {
                state: Some(TaskState::RUNNING),
                ..Default::default()
            }),
            ..Default::default()
        };
        (HashMap::from([("n1".to_string(), node)]), task)
    }

    #[test]
    fn one_listing_gives_each_services_current_task() {
        // (service, task id, desired state, created at)
        let listed = [
            (
                Some("s1"),
                "old",
                TaskState::SHUTDOWN,
                "2026-12-08T10:00:00Z",
            ),
            (
                Some("s1"),
                "new",
                TaskState::RUNNING,
                "2026-12-08T10:00:05Z",
            ),
            (
                Some("s2"),
                "only",
                TaskState::RUNNING,
                "2026-12-08T09:00:00Z",
            ),
            (Some("s3"), "b", TaskState::RUNNING, "2026-12-08T10:00:01Z"),
            (Some("s3"), "a", TaskState::RUNNING, "2026-12-08T10:00:00Z"),
            (None, "orphan", TaskState::RUNNING, "2026-12-08T10:00:00Z"),
        ]
        .map(|(service, id, desired, created)| Task {
            id: Some(id.into()),
            service_id: service.map(str::to_owned),
            desired_state: Some(desired),
            created_at: Some(created.into()),
            ..Default::default()
        });
        let current = current_tasks_by_service(&listed);
        let ids: BTreeMap<&str, &str> = current
            .iter()
            .map(|(service, task)| (service.as_str(), task.id.as_deref().unwrap()))
            .collect();
        assert_eq!(
            ids,
            BTreeMap::from([("s1", "new"), ("s2", "only"), ("s3", "b")])
        );
    }

    #[test]
    fn a_recent_value_serves_until_it_is_too_old_or_cleared() {
        let recent = Recent::default();
        assert_eq!(recent.get(Duration::from_secs(60)), None);
        recent.set(7);
        assert_eq!(recent.clone().get(Duration::from_secs(60)), Some(7));
        assert_eq!(recent.get(Duration::ZERO), None, "too old");
        recent.clear();
        assert_eq!(recent.get(Duration::from_secs(60)), None);
    }

    #[test]
    fn a_task_on_a_node_that_is_down_is_an_exited_instance() {
        let (nodes, task) = running_task_on(SwarmNode {
            name: "rig-node-3".into(),
            address: Some("10.77.0.13".into()),
            up: false,
            schedulable: true,
            datacenter: Some("dc2".into()),
            labels: BTreeMap::from([("datacenter".into(), "dc2".into())]),
            draining: false,
        });
        let observed = observe_service(&Service::default(), Some(&task), &nodes);
        assert_eq!(observed.state, ContainerState::Exited);
        assert_eq!(observed.ip_address, None);
        assert_eq!(observed.error.as_deref(), Some("node rig-node-3 is down"));
        assert_eq!(observed.node, "rig-node-3");
    }

    #[test]
    fn task_states() {
        let cases = [
            (Some(TaskState::NEW), ContainerState::Created),
            (Some(TaskState::PREPARING), ContainerState::Created),
            (Some(TaskState::RUNNING), ContainerState::Running),
            (Some(TaskState::FAILED), ContainerState::Exited),
            (Some(TaskState::SHUTDOWN), ContainerState::Exited),
            (Some(TaskState::ORPHANED), ContainerState::Exited),
            (None, ContainerState::Created),
        ];
        for (state, want) in cases {
            assert_eq!(task_state(state), want, "{state:?}");
        }
    }
}
