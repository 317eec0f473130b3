//! Nodes: the machines apps run on, their labels, capacity, use and status, and their events
//! (`/api/v1/nodes`, `/api/v1/cluster/events`).
//!
//! Any logged-in user may list nodes (names, labels, capacity, use, status: no team's data);
//! setting labels and reading events is for platform admins.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use berth_core::node::{
    self, DATACENTER_LABEL, NEEDS_ANOTHER_NODE, NodeLabels, PlatformEvent, Space, ZONE_LABEL,
};
use berth_operations::nodes::{NodeOverview, NodesOverview};
use berth_store::EventQuery;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ApiState;
use crate::apps::EventsParams;
use crate::auth::Principal;
use crate::dto::timestamp;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath as Path, ApiQuery};

/// Every node, and whether the cluster needs another one.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NodeListDto {
    pub nodes: Vec<NodeDto>,
    /// Every node is low: the cluster needs another node.
    pub needs_another_node: bool,
    /// The sentence saying so, when it does.
    pub message: Option<String>,
    pub thresholds: ThresholdsDto,
}

/// When a node counts as low (server settings).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ThresholdsDto {
    /// CPU busier than this (percent of all cores)…
    pub cpu_busy_percent: f64,
    /// …for this long (seconds).
    pub cpu_busy_for_secs: i64,
    /// Less free memory than this (percent).
    pub memory_free_min_percent: f64,
    /// Less free space than this on a watched disk (percent).
    pub disk_free_min_percent: f64,
    /// How often nodes are sampled (milliseconds).
    pub sample_interval_ms: u64,
}

/// Why a node is low or unknown, as a code and the values of its sentence.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NodeReasonDto {
    /// `no_sample_yet`, `silent` (`seconds`), `cpu_busy` (`percent`, `seconds`, `max_percent`,
    /// `for_seconds`), `memory_low` (`free_percent`, `min_percent`) or `disk_low` (`path`,
    /// `free_percent`, `min_percent`).
    pub code: String,
    pub values: BTreeMap<String, String>,
}

impl From<&berth_core::node::NodeReason> for NodeReasonDto {
    fn from(reason: &berth_core::node::NodeReason) -> Self {
        let (code, values) = reason.parts();
        NodeReasonDto {
            code: code.to_string(),
            values: values
                .into_iter()
                .map(|(name, value)| (name.to_string(), value))
                .collect(),
        }
    }
}

/// One node.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NodeDto {
    /// The engine's host name.
    pub name: String,
    /// `ok`, `low` (a resource is past its threshold: red) or `unknown` (not reporting).
    pub status: String,
    /// Why it is low or unknown, one sentence each (English).
    pub reasons: Vec<String>,
    /// The same reasons as codes and values, for clients in other languages.
    pub reason_details: Vec<NodeReasonDto>,
    /// Every label, `datacenter` and `zone` among them.
    pub labels: BTreeMap<String, String>,
    /// The `datacenter` label.
    pub datacenter: Option<String>,
    /// The `zone` label.
    pub zone: Option<String>,
    /// The engine and its version.
    pub engine: String,
    /// `manager`, `worker` (Swarm nodes) or `standalone` (a single engine).
    pub role: String,
    /// The engine's view of it: `ready`, `down`, `disconnected` or `unknown`.
    pub state: String,
    /// `active`, `pause` (keeps its instances, takes no new ones) or `drain` (its instances
    /// move to other nodes).
    pub availability: String,
    /// The address other machines reach it at, when the engine says.
    pub address: Option<String>,
    /// Whether Berth reads its CPU, memory and disks: the machine it runs on, and a Swarm
    /// node whose engine it reaches (`--node-engines`), through the node agent there; the
    /// other nodes show capacity and state only.
    pub measured: bool,
    pub capacity: NodeCapacityDto,
    /// The latest sample; `null` before the first.
    pub usage: Option<NodeUsageDto>,
}

/// What the node has.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NodeCapacityDto {
    pub cpus: u32,
    pub memory_bytes: u64,
}

/// What the node used at its latest sample.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NodeUsageDto {
    pub sampled_at: String,
    /// Busy share of all cores since the sample before (percent); `null` on the first sample.
    pub cpu_percent: Option<f64>,
    /// The CPU has been above its threshold for the threshold's time.
    pub cpu_low: bool,
    /// Memory; `null` when it cannot be read.
    pub memory: Option<SpaceDto>,
    /// The engine's data root and Berth's data directory.
    pub disks: Vec<DiskDto>,
}

/// Total and free bytes.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SpaceDto {
    pub total_bytes: u64,
    /// Free for new use (available memory; blocks free to users).
    pub free_bytes: u64,
    pub free_percent: f64,
    /// Below its threshold.
    pub low: bool,
}

/// One watched disk.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DiskDto {
    /// `engine_data_root` (Docker's data root) or `berth_data_dir` (`--data-dir`).
    pub role: String,
    pub path: String,
    /// `null`: not measurable from where Berth runs (another mount namespace): unknown.
    pub space: Option<SpaceDto>,
}

/// A node's labels, replaced whole.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NodeLabelsDto {
    /// Keys: lowercase letters, digits, `.`, `_`, `-`; values: letters, digits, `.`, `_`,
    /// `-`; at most 63 characters each, 32 labels.
    pub labels: BTreeMap<String, String>,
}

/// An event of a node or of the cluster.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PlatformEventDto {
    pub id: i64,
    pub at: String,
    /// `node/<name>` or `cluster`.
    pub subject: String,
    /// `node_low`, `node_recovered`, `node_unknown`, `cluster_needs_node`, `cluster_has_room`.
    pub kind: String,
    pub warning: bool,
    /// The English sentence.
    pub message: String,
    /// The values of the message (`node`, `reasons`, and `reason_details`: the reasons as a JSON
    /// list of objects, each a `code` and its values as in `NodeDto::reason_details`).
    pub params: BTreeMap<String, String>,
}

impl From<&PlatformEvent> for PlatformEventDto {
    fn from(e: &PlatformEvent) -> Self {
        PlatformEventDto {
            id: e.id,
            at: timestamp(e.at),
            subject: e.subject.clone(),
            kind: e.kind.as_str().into(),
            warning: e.kind.is_warning(),
            message: e.message.clone(),
            params: e.params.clone(),
        }
    }
}

fn space(space: Space, min_free_percent: f64) -> SpaceDto {
    SpaceDto {
        total_bytes: space.total_bytes,
        free_bytes: space.free_bytes,
        free_percent: (space.free_percent() * 10.0).round() / 10.0,
        low: space.free_percent() < min_free_percent,
    }
}

fn node_dto(state: &ApiState, node: NodeOverview) -> NodeDto {
    let thresholds = state.platform.nodes.settings().thresholds;
    let NodeOverview { view, labels } = node;
    let label = |key: &str| labels.get(key).cloned();
    NodeDto {
        name: view.info.name,
        status: view.watch.status.as_str().into(),
        reasons: view.watch.reasons.iter().map(ToString::to_string).collect(),
        reason_details: view.watch.reasons.iter().map(NodeReasonDto::from).collect(),
        datacenter: label(DATACENTER_LABEL),
        zone: label(ZONE_LABEL),
        labels,
        engine: view.info.engine,
        role: view.info.role,
        state: view.info.state,
        availability: view.info.availability.as_str().to_string(),
        address: view.info.address,
        measured: view.info.local
            || view
                .sample
                .as_ref()
                .is_some_and(|s| s.memory.is_some() || s.cpu_percent.is_some()),
        capacity: NodeCapacityDto {
            cpus: view.info.cpus,
            memory_bytes: view.info.memory_bytes,
        },
        usage: view.sample.map(|sample| NodeUsageDto {
            sampled_at: timestamp(sample.at),
            cpu_percent: sample.cpu_percent.map(|c| (c * 10.0).round() / 10.0),
            cpu_low: node::cpu_busy_too_long(view.watch.cpu_busy_since, sample.at, &thresholds),
            memory: sample
                .memory
                .map(|m| space(m, thresholds.memory_free_min_percent)),
            disks: sample
                .disks
                .into_iter()
                .map(|disk| DiskDto {
                    role: disk.role.as_str().into(),
                    path: disk.path,
                    space: disk
                        .space
                        .map(|s| space(s, thresholds.disk_free_min_percent)),
                })
                .collect(),
        }),
    }
}

fn list_dto(state: &ApiState, overview: NodesOverview) -> NodeListDto {
    let settings = state.platform.nodes.settings();
    let t = settings.thresholds;
    NodeListDto {
        nodes: overview
            .nodes
            .into_iter()
            .map(|n| node_dto(state, n))
            .collect(),
        needs_another_node: overview.needs_another_node,
        message: overview
            .needs_another_node
            .then(|| NEEDS_ANOTHER_NODE.to_string()),
        thresholds: ThresholdsDto {
            cpu_busy_percent: t.cpu_busy_percent,
            cpu_busy_for_secs: t.cpu_busy_for_ms / 1_000,
            memory_free_min_percent: t.memory_free_min_percent,
            disk_free_min_percent: t.disk_free_min_percent,
            sample_interval_ms: u64::try_from(settings.interval.as_millis()).unwrap_or(u64::MAX),
        },
    }
}

fn event_query(params: &EventsParams) -> ApiResult<EventQuery> {
    let limit = params.limit.unwrap_or(100);
    if limit == 0 || limit > 1000 {
        return Err(ApiError::field("limit", "must be between 1 and 1000"));
    }
    Ok(EventQuery {
        after_id: params.after,
        limit,
    })
}

/// Every node with its status (`ok`, `low` — red —, `unknown`), why, labels, capacity and
/// latest use, and whether the cluster needs another node (any logged-in user).
#[utoipa::path(get, path = "/api/v1/nodes", tag = "nodes",
    responses((status = 200, body = NodeListDto)))]
pub async fn list(
    State(state): State<ApiState>,
    principal: Principal,
) -> ApiResult<Json<NodeListDto>> {
    let overview = state.platform.list_nodes(&principal).await?;
    Ok(Json(list_dto(&state, overview)))
}

/// One node (any logged-in user).
#[utoipa::path(get, path = "/api/v1/nodes/{name}", tag = "nodes", params(("name" = String, Path)),
    responses((status = 200, body = NodeDto), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<ApiState>,
    principal: Principal,
    Path(name): Path<String>,
) -> ApiResult<Json<NodeDto>> {
    let node = state.platform.node(&principal, &name).await?;
    Ok(Json(node_dto(&state, node)))
}

/// Replace a node's labels, e.g. `{"labels": {"datacenter": "dc1", "zone": "a"}}` (platform
/// admins). 400 names the bad label as `labels.<key>`.
#[utoipa::path(put, path = "/api/v1/nodes/{name}/labels", tag = "nodes",
    params(("name" = String, Path)), request_body = NodeLabelsDto,
    responses((status = 200, body = NodeDto), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn put_labels(
    State(state): State<ApiState>,
    principal: Principal,
    Path(name): Path<String>,
    ApiJson(request): ApiJson<NodeLabelsDto>,
) -> ApiResult<Json<NodeDto>> {
    let labels: NodeLabels = request.labels;
    let node = state
        .platform
        .set_node_labels(&principal, &name, labels)
        .await?;
    Ok(Json(node_dto(&state, node)))
}

/// Whether a node takes instances.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeAvailabilityDto {
    /// `active`, `pause` or `drain`.
    pub availability: String,
}

/// Set whether a node takes instances (platform admins): `drain` moves its instances to other
/// nodes, `pause` keeps them and takes no new ones, `active` takes instances again. A single
/// Docker Engine is one node: 409 `engine_unsupported`.
#[utoipa::path(put, path = "/api/v1/nodes/{name}/availability", tag = "nodes",
    params(("name" = String, Path)), request_body = NodeAvailabilityDto,
    responses((status = 200, body = NodeDto), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub async fn put_availability(
    State(state): State<ApiState>,
    principal: Principal,
    Path(name): Path<String>,
    ApiJson(request): ApiJson<NodeAvailabilityDto>,
) -> ApiResult<Json<NodeDto>> {
    let node = state
        .platform
        .set_node_availability(&principal, &name, &request.availability)
        .await?;
    Ok(Json(node_dto(&state, node)))
}

/// A node's events, oldest first: crossing a threshold, recovering, falling silent (platform
/// admins).
#[utoipa::path(get, path = "/api/v1/nodes/{name}/events", tag = "nodes",
    params(("name" = String, Path), EventsParams),
    responses((status = 200, body = [PlatformEventDto]), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn events(
    State(state): State<ApiState>,
    principal: Principal,
    Path(name): Path<String>,
    ApiQuery(params): ApiQuery<EventsParams>,
) -> ApiResult<Json<Vec<PlatformEventDto>>> {
    let events = state
        .platform
        .node_events(&principal, &name, event_query(&params)?)
        .await?;
    Ok(Json(events.iter().map(PlatformEventDto::from).collect()))
}

/// The cluster's events, oldest first: every node low (it needs another node), and not any
/// more (platform admins).
#[utoipa::path(get, path = "/api/v1/cluster/events", tag = "nodes", params(EventsParams),
    responses((status = 200, body = [PlatformEventDto]), (status = 403, body = ErrorBody)))]
pub async fn cluster_events(
    State(state): State<ApiState>,
    principal: Principal,
    ApiQuery(params): ApiQuery<EventsParams>,
) -> ApiResult<Json<Vec<PlatformEventDto>>> {
    let events = state
        .platform
        .cluster_events(&principal, event_query(&params)?)
        .await?;
    Ok(Json(events.iter().map(PlatformEventDto::from).collect()))
}
