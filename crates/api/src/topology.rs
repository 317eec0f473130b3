//! The live topology: datacenters → nodes → instances, the apps as a graph (health, counts,
//! limits and use, internal or external, rollout state, autoscaling) with edges from declared
//! dependencies, from connections seen between instances and from the router's traffic, and
//! each team's quota and usage — once
//! (`GET /api/v1/topology`) or live (`GET /api/v1/topology/stream`). A caller sees only the
//! teams they may read.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::response::Response;
use berth_controller::InstanceStatus;
use berth_core::flows::ObservedEdge;
use berth_core::node::{DATACENTER_LABEL, ZONE_LABEL};
use berth_core::topology::{self, AppLinks, EdgeKind, Placed};
use berth_store::ListedApp;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::ApiState;
use crate::apps::{Listing, list_with_instances};
use crate::auth::Principal;
use crate::autoscale::AutoscaleDto;
use crate::build_events::StreamAccess;
use crate::dto::{TrafficDto, app_health, timestamp};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::ApiQuery;
use crate::team_dto::TeamDto;

/// How often the live topology is assembled again (sent only when it changed).
const STREAM_INTERVAL: Duration = Duration::from_secs(2);

/// Which part of the topology.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TopologyParams {
    /// Only this team's apps (one the caller may read).
    pub team: Option<String>,
}

/// One instance where it runs.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PlacedInstanceDto {
    pub app: String,
    pub instance: String,
    pub ready: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TopologyNodeDto {
    pub name: String,
    /// Its `zone` label.
    pub zone: Option<String>,
    /// `ok`, `low` (a resource runs low) or `unknown` (not reporting, or not monitored).
    pub status: String,
    pub instances: Vec<PlacedInstanceDto>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DatacenterDto {
    /// The nodes' `datacenter` label (`default` without one).
    pub name: String,
    pub nodes: Vec<TopologyNodeDto>,
}

/// One instance of an app in the graph.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TopologyInstanceDto {
    pub name: String,
    pub node: String,
    pub revision: u32,
    pub ready: bool,
    /// Being stopped: out of the router's table, finishing the requests it was sent.
    pub draining: bool,
    /// CPU now, millicores (`null` until sampled).
    pub cpu_millis: Option<u64>,
    /// Memory in use, bytes (`null` until sampled).
    pub memory_bytes: Option<u64>,
}

/// The rollout's state as the graph shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TopologyRolloutDto {
    /// `progressing`, `complete`, `rolling_back`, `rolled_back` or `failed`.
    pub phase: String,
    pub revision: u32,
    /// A canary of the new revision is being judged.
    pub canary: bool,
}

/// One app in the graph.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TopologyAppDto {
    pub name: String,
    pub team: String,
    /// As `AppDto::health`.
    pub health: String,
    pub replicas: u32,
    pub ready_instances: u32,
    /// Instances being stopped (scaled down or replaced) that finish their requests first.
    pub draining_instances: u32,
    /// Its column in a left-to-right drawing: apps nobody depends on are 0, dependencies to
    /// the right of their dependents.
    pub layer: usize,
    /// Whether it has a public route (else it is internal: its team's apps reach it by name).
    pub external: bool,
    /// Its hosts (default and custom), for an external app.
    pub hosts: Vec<String>,
    pub dependencies: Vec<String>,
    /// CPU limit per instance, millicores (`null`: none).
    pub cpu_limit_millis: Option<u64>,
    /// Memory limit per instance, bytes (`null`: none).
    pub memory_limit_bytes: Option<u64>,
    /// CPU now over its sampled instances, millicores.
    pub cpu_millis: u64,
    /// Memory in use over its sampled instances, bytes.
    pub memory_bytes: u64,
    pub rollout: TopologyRolloutDto,
    /// Scaled to 0 while idle.
    pub idle: bool,
    pub autoscale: Option<AutoscaleDto>,
    pub instances: Vec<TopologyInstanceDto>,
}

/// An edge of the apps graph.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EdgeDto {
    /// The calling app; `null`: the outside world, through the router.
    pub from: Option<String>,
    pub to: String,
    /// `declared` (a dependency), `observed` (connections seen from the calling app's
    /// instances to the other's, e.g. over the team network) or `traffic` (requests the
    /// router routed).
    pub kind: String,
    /// A dependency on an app that is not shown (missing, or of a team the caller cannot read).
    pub dangling: bool,
    /// For `traffic`: requests since the server started.
    pub requests: Option<u64>,
    /// For `traffic`: requests per second over the last minute (`null` until the router's
    /// counters were read twice, 5 s apart).
    pub requests_per_second: Option<f64>,
    /// For `traffic`: the share of 5xx answers (the router's 502/504 for requests no instance
    /// answered included), percent, over the last minute — since the server started until a
    /// rate exists.
    pub error_percent: Option<f64>,
    /// For `traffic`: the latency bucket bound holding the 99th percentile, ms.
    pub latency_p99_ms: Option<u64>,
    /// 95th percentile of the requests' durations over the last minute, ms (`null` without
    /// requests in it).
    pub latency_p95_ms: Option<f64>,
    /// For `observed`: new connections per minute over the last minute (connections open
    /// when Berth started are not counted as new).
    pub connections_per_minute: Option<f64>,
    /// For `observed`: connections open at the last reading.
    pub open_connections: Option<u32>,
    /// For `observed`: the ports called, e.g. `tcp/8080`.
    pub ports: Option<Vec<String>>,
}

/// The whole picture.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TopologyDto {
    pub generated_at: String,
    /// Set when the engine did not answer (instances unknown).
    pub engine_error: Option<String>,
    pub datacenters: Vec<DatacenterDto>,
    pub apps: Vec<TopologyAppDto>,
    pub edges: Vec<EdgeDto>,
    /// Why no `observed` edges can be drawn (connections between apps are not observed:
    /// turned off, or the host's connection tracking table cannot be read); `null` when they
    /// are.
    pub observed_edges_unavailable: Option<String>,
    /// The teams shown, with their quota and usage.
    pub teams: Vec<TeamDto>,
}

/// The teams `principal` may read now, narrowed to `only`.
async fn visible_teams(
    state: &ApiState,
    principal: &Principal,
    only: Option<&str>,
) -> ApiResult<Vec<berth_core::team::Team>> {
    let mut teams = state.store.list_teams().await?;
    teams.retain(|team| principal.can_read(&team.name));
    if let Some(only) = only {
        teams.retain(|team| team.name == only);
        if teams.is_empty() {
            return Err(ApiError::not_found(format!("team {only}")));
        }
    }
    Ok(teams)
}

fn instance_dto(status: &InstanceStatus) -> TopologyInstanceDto {
    TopologyInstanceDto {
        name: status.name.clone(),
        node: status.node.clone(),
        revision: status.revision,
        ready: status.readiness.is_ready()
            && status.phase == berth_core::planner::InstancePhase::Running,
        draining: status.phase == berth_core::planner::InstancePhase::Terminating,
        cpu_millis: status.usage.as_ref().and_then(|u| u.cpu_millis),
        memory_bytes: status.usage.as_ref().map(|u| u.memory_bytes),
    }
}

/// Assembles the topology of `teams`.
async fn assemble(
    state: &ApiState,
    principal: &Principal,
    teams: &[berth_core::team::Team],
) -> ApiResult<TopologyDto> {
    let names: Vec<String> = teams.iter().map(|t| t.name.clone()).collect();
    let Listing {
        listed,
        instances: mut statuses,
        engine_error,
        ..
    } = list_with_instances(state, Some(names), None, None).await?;
    let now = state.platform.now();
    let observed: HashMap<(String, String), ObservedEdge> = state
        .platform
        .connections
        .as_ref()
        .map(|c| c.edges())
        .unwrap_or_default()
        .into_iter()
        .map(|e| ((e.from.clone(), e.to.clone()), e))
        .collect();
    let links: Vec<AppLinks> = listed
        .iter()
        .map(|l| AppLinks {
            name: l.app.name.clone(),
            dependencies: l.app.dependencies.clone(),
            external: !l.app.routes.internal,
            requests: state.platform.traffic(&l.app).map_or(0, |t| t.requests()),
            observed_calls: observed
                .keys()
                .filter(|(from, _)| *from == l.app.name)
                .map(|(_, to)| to.clone())
                .collect(),
        })
        .collect();
    let layers = topology::layers(&links);
    let mut placed = Vec::new();
    let mut datacenters = BTreeMap::new();
    let mut views = Vec::with_capacity(listed.len());
    let mut traffic = HashMap::new();
    for ListedApp { app, template } in &listed {
        let app_statuses = statuses.remove(&app.name).unwrap_or_default();
        let instances: Vec<TopologyInstanceDto> = app_statuses.iter().map(instance_dto).collect();
        placed.extend(instances.iter().map(|i| Placed {
            node: i.node.clone(),
            app: app.name.clone(),
            instance: i.name.clone(),
        }));
        if let Some(counters) = state.platform.traffic(app) {
            traffic.insert(
                app.name.clone(),
                (app.team.clone(), TrafficDto::from(&counters)),
            );
        }
        let resources = template
            .as_ref()
            .map(|t| t.resources.clone())
            .unwrap_or_default();
        views.push(TopologyAppDto {
            name: app.name.clone(),
            team: app.team.clone(),
            health: app_health(app, &app_statuses, engine_error.is_some(), now)
                .as_str()
                .to_string(),
            replicas: app.replicas,
            ready_instances: instances.iter().filter(|i| i.ready).count() as u32,
            draining_instances: instances.iter().filter(|i| i.draining).count() as u32,
            layer: layers.get(&app.name).copied().unwrap_or(0),
            external: !app.routes.internal,
            hosts: if app.routes.internal {
                Vec::new()
            } else {
                state
                    .platform
                    .addresses(app)
                    .into_iter()
                    .map(|a| format!("{}{}", a.host, a.path.trim_end_matches('/')))
                    .collect()
            },
            dependencies: app.dependencies.clone(),
            cpu_limit_millis: resources.cpu_millis,
            memory_limit_bytes: resources.memory_bytes,
            cpu_millis: instances.iter().filter_map(|i| i.cpu_millis).sum(),
            memory_bytes: instances.iter().filter_map(|i| i.memory_bytes).sum(),
            rollout: TopologyRolloutDto {
                phase: app.rollout.phase.as_str().to_string(),
                revision: app.rollout.revision,
                canary: app.canary_being_judged().is_some(),
            },
            idle: app.idled.is_some(),
            autoscale: app.autoscale.as_ref().map(AutoscaleDto::from),
            instances,
        });
    }
    // Every node the monitor knows (with or without instances), in its `datacenter`.
    let mut labels = state.store.node_labels().await?;
    let monitored = state.platform.nodes.view().nodes;
    let mut node_facts: BTreeMap<String, (Option<String>, String)> = BTreeMap::new();
    for view in &monitored {
        let mut node_labels = berth_controller::nodes::labels_with(
            &view.info,
            labels.remove(&view.info.name).unwrap_or_default(),
        );
        node_facts.insert(
            view.info.name.clone(),
            (
                node_labels.remove(ZONE_LABEL),
                view.watch.status.as_str().to_string(),
            ),
        );
        if let Some(datacenter) = node_labels.remove(DATACENTER_LABEL) {
            datacenters.insert(view.info.name.clone(), datacenter);
        }
    }
    let tree = topology::place(&datacenters, &placed);
    let ready: HashMap<(&str, &str), bool> = views
        .iter()
        .flat_map(|a| {
            a.instances
                .iter()
                .map(move |i| ((a.name.as_str(), i.name.as_str()), i.ready))
        })
        .collect();
    let datacenters = tree
        .into_iter()
        .map(|(name, nodes)| DatacenterDto {
            name,
            nodes: nodes
                .into_iter()
                .map(|(node, list)| TopologyNodeDto {
                    zone: node_facts.get(&node).and_then(|(zone, _)| zone.clone()),
                    status: node_facts
                        .get(&node)
                        .map_or_else(|| "unknown".to_string(), |(_, status)| status.clone()),
                    name: node,
                    instances: list
                        .into_iter()
                        .map(|p| PlacedInstanceDto {
                            ready: ready
                                .get(&(p.app.as_str(), p.instance.as_str()))
                                .copied()
                                .unwrap_or(false),
                            app: p.app,
                            instance: p.instance,
                        })
                        .collect(),
                })
                .collect(),
        })
        .collect();
    let edges = topology::edges(&links)
        .into_iter()
        .map(|edge| {
            let counted = (edge.kind == EdgeKind::Traffic)
                .then(|| traffic.get(&edge.to))
                .flatten();
            let rate =
                counted.and_then(|(team, _)| state.platform.traffic_rates.rate(team, &edge.to));
            let seen = (edge.kind == EdgeKind::Observed)
                .then(|| {
                    let from = edge.from.clone().unwrap_or_default();
                    observed.get(&(from, edge.to.clone()))
                })
                .flatten();
            EdgeDto {
                kind: match edge.kind {
                    EdgeKind::Declared => "declared",
                    EdgeKind::Observed => "observed",
                    EdgeKind::Traffic => "traffic",
                }
                .to_string(),
                connections_per_minute: seen.map(|e| e.connections_per_minute),
                open_connections: seen.map(|e| e.open_connections),
                ports: seen.map(|e| e.ports.clone()),
                requests: counted.map(|(_, t)| t.requests),
                requests_per_second: rate.map(|r| r.requests_per_second),
                error_percent: match rate {
                    Some(rate) => rate.error_percent.or(Some(0.0)),
                    None => counted.map(|(_, t)| {
                        if t.requests == 0 {
                            0.0
                        } else {
                            t.responses.server_error as f64 * 100.0 / t.requests as f64
                        }
                    }),
                },
                latency_p99_ms: counted.and_then(|(_, t)| t.latency_p99_ms),
                latency_p95_ms: rate.and_then(|r| r.latency_p95_ms),
                from: edge.from,
                to: edge.to,
                dangling: edge.dangling,
            }
        })
        .collect();
    let mut team_views = Vec::with_capacity(teams.len());
    for team in teams {
        let usage = crate::quotas::team_usage(state, &team.name).await?;
        team_views.push(TeamDto::new(team, principal.role(&team.name), usage));
    }
    Ok(TopologyDto {
        generated_at: timestamp(now),
        engine_error,
        datacenters,
        apps: views,
        edges,
        observed_edges_unavailable: match &state.platform.connections {
            None => {
                Some("connections between apps are not observed (--connections-interval 0)".into())
            }
            Some(observer) => observer.unavailable(),
        },
        teams: team_views,
    })
}

/// The topology now: datacenters → nodes → instances, the apps graph and the teams' quotas.
#[utoipa::path(get, path = "/api/v1/topology", tag = "apps", params(TopologyParams),
    responses((status = 200, body = TopologyDto), (status = 404, body = ErrorBody)))]
pub async fn get_topology(
    State(state): State<ApiState>,
    principal: Principal,
    ApiQuery(params): ApiQuery<TopologyParams>,
) -> ApiResult<Json<TopologyDto>> {
    let teams = visible_teams(&state, &principal, params.team.as_deref()).await?;
    Ok(Json(assemble(&state, &principal, &teams).await?))
}

/// The topology, live: Server-Sent Events, a `topology` message (a `TopologyDto`) at once and
/// whenever it changes (checked every 2 s). The caller's access is checked again each time;
/// the stream ends when they may no longer read any team shown.
#[utoipa::path(get, path = "/api/v1/topology/stream", tag = "apps", params(TopologyParams),
    responses((status = 200, content_type = "text/event-stream", body = TopologyDto), (status = 404, body = ErrorBody)))]
pub async fn stream_topology(
    State(state): State<ApiState>,
    principal: Principal,
    ApiQuery(params): ApiQuery<TopologyParams>,
) -> ApiResult<Response> {
    let teams = visible_teams(&state, &principal, params.team.as_deref()).await?;
    let access = StreamAccess::of(&state, &principal);
    let stream = futures::stream::unfold(
        (state, principal, teams, access, None::<String>, true),
        |(state, principal, mut teams, mut access, mut last, first)| async move {
            let mut wait = !first;
            loop {
                if wait {
                    tokio::time::sleep(STREAM_INTERVAL).await;
                }
                wait = true;
                let mut kept = Vec::with_capacity(teams.len());
                for team in teams {
                    if access.may_read(&team.name).await {
                        kept.push(team);
                    }
                }
                teams = kept;
                if teams.is_empty() {
                    return None;
                }
                let Ok(topology) = assemble(&state, &principal, &teams).await else {
                    // The store failed: end the stream; the client reconnects.
                    return None;
                };
                // `generated_at` changes every time: compare what it describes.
                let body = serde_json::to_string(&TopologyDto {
                    generated_at: String::new(),
                    ..topology.clone()
                })
                .unwrap_or_default();
                if last.as_deref() != Some(body.as_str()) {
                    last = Some(body);
                    let event = axum::response::sse::Event::default()
                        .event("topology")
                        .json_data(&topology)
                        .unwrap_or_default();
                    return Some((
                        Ok::<_, std::convert::Infallible>(event),
                        (state, principal, teams, access, last, false),
                    ));
                }
            }
        },
    );
    Ok(crate::build_events::sse_response(stream))
}
