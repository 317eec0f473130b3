//! `GET /metrics`: Berth in the Prometheus text format (0.0.4), for a metrics-scope token or
//! an admin.
//!
//! How numbers reach the exporter: no global recorder. Each part that *counts* owns its
//! `prometheus-client` handles — the controller (`berth_controller::metrics`: reconciles,
//! probe failures), the build worker (`berth_operations::builds::metrics`) and this crate
//! ([`ApiMetrics`]: API requests by route template, registry requests) — and everything that
//! is *state* is read at scrape time from where it already lives: apps from the store, ready
//! instances from the endpoint table, instances (restarts, CPU, memory) from the controller's
//! listing and usage sampler, the router's per-app counters and latency histogram from
//! `RouterStats`, the registry's storage (cached, [`STORAGE_TTL`]). A scrape builds a fresh
//! `Registry`, registers the handles and the snapshot families, and encodes it: deleted apps'
//! series disappear with them, and the router's data path gains nothing. More families plug in
//! through [`MetricsSource`] (the seam the node sampler's gauges use).
//!
//! Every family is listed in `docs/METRICS.md`; a test keeps the two in step.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use berth_core::accounts::TokenScope;
use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::ApiState;
use crate::audit::AuditSlot;
use crate::auth::{bearer_token, invalid_bearer, session_cookie};
use crate::error::{ApiError, ApiResult};

/// The registry's storage is walked at most this often (a walk stats every blob).
pub const STORAGE_TTL: Duration = Duration::from_secs(60);

/// Upper bounds (seconds) of the API request duration histogram.
const API_BUCKETS: [f64; 11] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// Families a part of the server adds to every scrape: implement it and hand it to
/// [`ApiMetrics::with_source`] in the server's wiring. `register` runs once per scrape and must
/// be quick (read in-memory state, such as the node sampler's latest round, never the engine
/// or the store).
pub trait MetricsSource: Send + Sync + 'static {
    fn register(&self, registry: &mut Registry);
}

/// An API request: method, the route template it matched (`/api/v1/apps/{name}`, never the
/// raw path: clients must not be able to mint series) and the status class (`2xx`).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: &'static str,
    route: String,
    status: &'static str,
}

/// A registry request: method and status class.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    method: &'static str,
    status: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TeamLabels {
    team: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AppLabels {
    team: String,
    app: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InstanceLabels {
    team: String,
    app: String,
    instance: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClassLabels {
    team: String,
    app: String,
    code: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailureLabels {
    team: String,
    app: String,
    kind: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NamespaceLabels {
    namespace: String,
}

/// The API's own metric handles, the registry storage cache and the extra sources; clones
/// share them.
#[derive(Clone)]
pub struct ApiMetrics {
    requests: Family<RouteLabels, Histogram>,
    registry_requests: Family<MethodLabels, Counter>,
    storage: Arc<Mutex<Option<(Instant, berth_registry::StorageUsage)>>>,
    sources: Vec<Arc<dyn MetricsSource>>,
}

impl std::fmt::Debug for ApiMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiMetrics").finish_non_exhaustive()
    }
}

impl Default for ApiMetrics {
    fn default() -> Self {
        ApiMetrics {
            requests: Family::new_with_constructor(|| Histogram::new(API_BUCKETS)),
            registry_requests: Family::default(),
            storage: Arc::default(),
            sources: Vec::new(),
        }
    }
}

impl ApiMetrics {
    /// Adds `source`'s families to every scrape.
    pub fn with_source(mut self, source: Arc<dyn MetricsSource>) -> Self {
        self.sources.push(source);
        self
    }
}

/// The few methods a label may name; anything else is `other` (methods are the client's
/// choice).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// `2xx` for 204 and so on.
fn status_class(status: StatusCode) -> &'static str {
    match status.as_u16() / 100 {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        _ => "5xx",
    }
}

/// Middleware of the REST API: times each request by the route template it matched (`other`
/// for requests no route matched). The time is to the response's head (streams such as
/// followed logs would otherwise count their whole life).
pub async fn observe_api(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "other".to_string(), |path| path.as_str().to_string());
    let response = next.run(request).await;
    state
        .metrics
        .requests
        .get_or_create(&RouteLabels {
            method,
            route,
            status: status_class(response.status()),
        })
        .observe(started.elapsed().as_secs_f64());
    response
}

/// Middleware of the registry (`/v2/`): counts requests by method and status class.
pub async fn observe_registry(
    State(state): State<ApiState>,
    request: Request,
    next: Next,
) -> Response {
    let method = method_label(request.method());
    let response = next.run(request).await;
    state
        .metrics
        .registry_requests
        .get_or_create(&MethodLabels {
            method,
            status: status_class(response.status()),
        })
        .inc();
    response
}

/// Who may scrape: a metrics-scope token, or an admin's full token or session. Anonymous →
/// 401, anyone else → 403.
async fn authorize_scrape(state: &ApiState, headers: &HeaderMap) -> ApiResult<()> {
    let now = (state.clock)();
    let principal = if let Some(token) = bearer_token(headers) {
        match state
            .auth
            .by_token_scoped(token, now, AuditSlot::default())
            .await?
        {
            Some((_, TokenScope::Metrics)) => return Ok(()),
            Some((principal, TokenScope::Full)) => principal,
            None => return Err(invalid_bearer()),
        }
    } else if let Some(secret) = session_cookie(headers) {
        state
            .auth
            .by_session(secret, now, AuditSlot::default())
            .await?
            .ok_or_else(|| ApiError::unauthorized("the session has ended; log in again"))?
    } else {
        return Err(ApiError::unauthorized(
            "send 'Authorization: Bearer <token>' with a metrics-scope token (berth tokens create NAME --scope metrics) or an admin's token",
        ));
    };
    if principal.user.is_admin {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "only a metrics-scope token or an admin may read /metrics",
        ))
    }
}

/// Berth's metrics in the Prometheus text format (0.0.4); the families are listed in
/// docs/METRICS.md.
#[utoipa::path(get, path = "/metrics", tag = "system",
    responses((status = 200, description = "Prometheus text format 0.0.4", content_type = "text/plain", body = String),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)))]
pub async fn metrics(State(state): State<ApiState>, headers: HeaderMap) -> ApiResult<Response> {
    authorize_scrape(&state, &headers).await?;
    let mut registry = Registry::default();
    state.controller.metrics().register(&mut registry);
    state.builds.metrics().register(&mut registry);
    register_api(&state.metrics, &mut registry);
    let queue: Gauge = Gauge::default();
    queue.set(state.controller.queue_depth() as i64);
    registry.register(
        "berth_work_queue_depth",
        "Apps waiting in the controller's work queue to be reconciled",
        queue,
    );
    register_apps(&state, &mut registry).await?;
    if let Some(router) = &state.platform.router {
        register_router(&router.app_counters(), &mut registry);
    }
    register_storage(&state, &mut registry).await;
    for source in &state.metrics.sources {
        source.register(&mut registry);
    }
    let mut text = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut text, &registry).map_err(|_| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "encoding the metrics failed",
        )
    })?;
    Ok((
        [(
            header::CONTENT_TYPE,
            prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        )],
        text,
    )
        .into_response())
}

fn register_api(metrics: &ApiMetrics, registry: &mut Registry) {
    registry.register(
        "berth_api_request_duration_seconds",
        "Time to answer an API request (to the response's head), by method, route template and status class",
        metrics.requests.clone(),
    );
    registry.register(
        "berth_registry_requests",
        "Requests to the built-in registry (/v2/), by method and status class",
        metrics.registry_requests.clone(),
    );
}

/// Apps, desired and ready instances per app, and per instance its restarts, CPU and memory.
async fn register_apps(state: &ApiState, registry: &mut Registry) -> ApiResult<()> {
    let apps = state.store.list_apps().await?;
    let endpoints = state.controller.endpoints().current();
    let per_team: Family<TeamLabels, Gauge> = Family::default();
    let desired: Family<AppLabels, Gauge> = Family::default();
    let ready: Family<AppLabels, Gauge> = Family::default();
    for app in &apps {
        per_team
            .get_or_create(&TeamLabels {
                team: app.team.clone(),
            })
            .inc();
        let labels = AppLabels {
            team: app.team.clone(),
            app: app.name.clone(),
        };
        desired.get_or_create(&labels).set(i64::from(app.replicas));
        let count = endpoints.get(&app.name).map_or(0, Vec::len);
        ready.get_or_create(&labels).set(count as i64);
    }
    registry.register("berth_apps", "Apps, by team", per_team);
    registry.register(
        "berth_app_desired_instances",
        "Instances an app asks for (its replicas)",
        desired,
    );
    registry.register(
        "berth_app_ready_instances",
        "Instances of an app that are ready and take traffic",
        ready,
    );

    let restarts: Family<InstanceLabels, Gauge> = Family::default();
    let cpu: Family<InstanceLabels, Gauge> = Family::default();
    let cpu_avg: Family<InstanceLabels, Gauge> = Family::default();
    let memory: Family<InstanceLabels, Gauge> = Family::default();
    let memory_limit: Family<InstanceLabels, Gauge> = Family::default();
    // One engine listing; when the engine does not answer, the instance families are empty
    // (the reconcile errors say why) rather than the scrape failing.
    match state.controller.instances_of_all(&apps).await {
        Ok(instances) => {
            for app in &apps {
                for instance in instances.get(&app.name).into_iter().flatten() {
                    let labels = InstanceLabels {
                        team: app.team.clone(),
                        app: app.name.clone(),
                        instance: instance.name.clone(),
                    };
                    restarts
                        .get_or_create(&labels)
                        .set(i64::from(instance.restarts));
                    let Some(usage) = &instance.usage else {
                        continue;
                    };
                    if let Some(millis) = usage.cpu_millis {
                        cpu.get_or_create(&labels).set(saturating(millis));
                    }
                    if let Some(millis) = usage.cpu_millis_avg {
                        cpu_avg.get_or_create(&labels).set(saturating(millis));
                    }
                    memory
                        .get_or_create(&labels)
                        .set(saturating(usage.memory_bytes));
                    if let Some(limit) = usage.memory_limit_bytes {
                        memory_limit.get_or_create(&labels).set(saturating(limit));
                    }
                }
            }
        }
        Err(error) => tracing::debug!(%error, "metrics: the engine did not list instances"),
    }
    registry.register(
        "berth_instance_restarts",
        "Times an instance's container was restarted after exiting",
        restarts,
    );
    registry.register(
        "berth_instance_cpu_millicores",
        "CPU an instance used between its last two samples (1000 = one core)",
        cpu,
    );
    registry.register(
        "berth_instance_cpu_millicores_avg_1m",
        "CPU an instance used, averaged over its samples of the last minute",
        cpu_avg,
    );
    registry.register(
        "berth_instance_memory_bytes",
        "Memory an instance uses (page cache excluded)",
        memory,
    );
    registry.register(
        "berth_instance_memory_limit_bytes",
        "An instance's memory limit (the node's memory when it has none)",
        memory_limit,
    );
    Ok(())
}

fn saturating(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Status classes of [`berth_router::AppCounters::responses`], in order.
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// The router's per-app counters: requests by status class, failures to get an answer from
/// an instance, bytes, requests in progress, and the latency histogram.
fn register_router(counters: &[berth_router::AppCounters], registry: &mut Registry) {
    let requests: Family<ClassLabels, Counter> = Family::default();
    let failures: Family<FailureLabels, Counter> = Family::default();
    let request_bytes: Family<AppLabels, Counter> = Family::default();
    let response_bytes: Family<AppLabels, Counter> = Family::default();
    let in_flight: Family<AppLabels, Gauge> = Family::default();
    for app in counters {
        let labels = AppLabels {
            team: app.team.clone(),
            app: app.app.clone(),
        };
        for (code, count) in CLASSES.iter().zip(app.responses) {
            requests
                .get_or_create(&ClassLabels {
                    team: app.team.clone(),
                    app: app.app.clone(),
                    code,
                })
                .inc_by(count);
        }
        for (kind, count) in [
            ("connect", app.connect_failures),
            ("timeout", app.timeouts),
            ("broken", app.broken_responses),
        ] {
            failures
                .get_or_create(&FailureLabels {
                    team: app.team.clone(),
                    app: app.app.clone(),
                    kind,
                })
                .inc_by(count);
        }
        request_bytes
            .get_or_create(&labels)
            .inc_by(app.request_bytes);
        response_bytes
            .get_or_create(&labels)
            .inc_by(app.response_bytes);
        in_flight
            .get_or_create(&labels)
            .set(saturating(app.in_flight));
    }
    registry.register(
        "berth_router_requests",
        "Requests the router answered for an app, by status class (its own 502/503/504 pages included)",
        requests,
    );
    registry.register(
        "berth_router_upstream_failures",
        "Requests an app's instance failed to answer: connect (no connection), timeout (504), broken (cut off or garbage)",
        failures,
    );
    registry.register(
        "berth_router_request_bytes",
        "Request body bytes the router passed to an app's instances",
        request_bytes,
    );
    registry.register(
        "berth_router_response_bytes",
        "Response body bytes the router passed from an app to clients",
        response_bytes,
    );
    registry.register(
        "berth_router_requests_in_flight",
        "Requests to an app in progress now (held ones included)",
        in_flight,
    );
    registry.register(
        "berth_router_request_duration_seconds",
        "Time from a request's arrival to the last byte of its response, per app",
        RouterLatency(counters.to_vec()),
    );
}

/// The router's fixed-bucket latency histograms, encoded as they are (the router keeps them
/// in atomics; nothing is re-bucketed).
#[derive(Debug)]
struct RouterLatency(Vec<berth_router::AppCounters>);

impl EncodeMetric for RouterLatency {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::MetricEncoder,
    ) -> Result<(), std::fmt::Error> {
        let bounds = berth_router::LATENCY_BUCKETS_MS
            .iter()
            .map(|ms| *ms as f64 / 1000.0)
            .chain([f64::INFINITY]);
        for app in &self.0 {
            let labels = AppLabels {
                team: app.team.clone(),
                app: app.app.clone(),
            };
            let buckets: Vec<(f64, u64)> = bounds
                .clone()
                .zip(app.latency_buckets.iter().copied())
                .collect();
            let count = app.latency_buckets.iter().sum();
            encoder
                .encode_family(&labels)?
                .encode_histogram::<AppLabels>(
                    app.latency_sum_micros as f64 / 1e6,
                    count,
                    &buckets,
                    None,
                )?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// The registry's storage: all blobs (garbage included) and per namespace (team).
async fn register_storage(state: &ApiState, registry: &mut Registry) {
    let cached = state
        .metrics
        .storage
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .as_ref()
        .filter(|(at, _)| at.elapsed() < STORAGE_TTL)
        .map(|(_, usage)| usage.clone());
    let usage = match cached {
        Some(usage) => usage,
        None => match state.registry.storage_usage().await {
            Ok(usage) => {
                *state
                    .metrics
                    .storage
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()) =
                    Some((Instant::now(), usage.clone()));
                usage
            }
            Err(error) => {
                tracing::warn!(%error, "metrics: cannot read the registry's storage");
                return;
            }
        },
    };
    let stored: Gauge = Gauge::default();
    stored.set(saturating(usage.stored_bytes));
    registry.register(
        "berth_registry_storage_bytes",
        "Bytes of every blob the built-in registry stores (garbage the next collection frees included)",
        stored,
    );
    let per_namespace: Family<NamespaceLabels, Gauge> = Family::default();
    for namespace in &usage.namespaces {
        per_namespace
            .get_or_create(&NamespaceLabels {
                namespace: namespace.namespace.clone(),
            })
            .set(saturating(namespace.bytes));
    }
    registry.register(
        "berth_registry_namespace_bytes",
        "Bytes of the distinct blobs a registry namespace (a team) links",
        per_namespace,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn router_latency_is_encoded_as_cumulative_buckets_in_seconds() {
        let mut counters = berth_router::AppCounters {
            team: "shop".into(),
            app: "we\"b".into(),
            responses: [0, 3, 0, 0, 1],
            latency_buckets: [0; berth_router::LATENCY_BUCKETS],
            latency_sum_micros: 1_500_000,
            request_bytes: 0,
            response_bytes: 10,
            connect_failures: 1,
            timeouts: 0,
            broken_responses: 0,
            in_flight: 0,
            held: 0,
            held_total: 0,
            last_request_at: None,
        };
        counters.latency_buckets[0] = 2;
        counters.latency_buckets[3] = 1;
        counters.latency_buckets[berth_router::LATENCY_BUCKETS - 1] = 1;
        let mut registry = Registry::default();
        register_router(&[counters], &mut registry);
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &registry).unwrap();
        for line in [
            r#"berth_router_request_duration_seconds_bucket{team="shop",app="we\"b",le="0.005"} 2"#,
            r#"berth_router_request_duration_seconds_bucket{team="shop",app="we\"b",le="0.05"} 3"#,
            r#"berth_router_request_duration_seconds_bucket{team="shop",app="we\"b",le="10"} 3"#,
            r#"berth_router_request_duration_seconds_bucket{team="shop",app="we\"b",le="+Inf"} 4"#,
            r#"berth_router_request_duration_seconds_sum{team="shop",app="we\"b"} 1.5"#,
            r#"berth_router_request_duration_seconds_count{team="shop",app="we\"b"} 4"#,
            r#"berth_router_requests_total{team="shop",app="we\"b",code="2xx"} 3"#,
            r#"berth_router_upstream_failures_total{team="shop",app="we\"b",kind="connect"} 1"#,
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
    }

    #[test]
    fn labels_are_bounded() {
        assert_eq!(method_label(&Method::from_bytes(b"BREW").unwrap()), "other");
        assert_eq!(status_class(StatusCode::NO_CONTENT), "2xx");
        assert_eq!(status_class(StatusCode::BAD_GATEWAY), "5xx");
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NodeLabels {
    node: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DiskLabels {
    node: String,
    /// `engine_data_root` or `berth_data_dir`.
    disk: &'static str,
}

/// The node monitor's latest round as gauges (its in-memory view: no engine call at scrape).
pub struct NodeGauges(pub Arc<berth_controller::nodes::NodeMonitor>);

impl MetricsSource for NodeGauges {
    fn register(&self, registry: &mut Registry) {
        type FloatGauge = Gauge<f64, std::sync::atomic::AtomicU64>;
        let view = self.0.view();
        let status: Family<NodeLabels, Gauge> = Family::default();
        let cpus: Family<NodeLabels, Gauge> = Family::default();
        let cpu_busy: Family<NodeLabels, FloatGauge> = Family::default();
        let memory_total: Family<NodeLabels, Gauge> = Family::default();
        let memory_free: Family<NodeLabels, Gauge> = Family::default();
        let disk_total: Family<DiskLabels, Gauge> = Family::default();
        let disk_free: Family<DiskLabels, Gauge> = Family::default();
        let gauge = |bytes: u64| i64::try_from(bytes).unwrap_or(i64::MAX);
        for node in &view.nodes {
            let labels = NodeLabels {
                node: node.info.name.clone(),
            };
            let code = match node.watch.status {
                berth_core::node::NodeStatus::Ok => 0,
                berth_core::node::NodeStatus::Low => 1,
                berth_core::node::NodeStatus::Unknown => 2,
            };
            status.get_or_create(&labels).set(code);
            cpus.get_or_create(&labels).set(i64::from(node.info.cpus));
            let Some(sample) = &node.sample else {
                continue;
            };
            if let Some(percent) = sample.cpu_percent {
                cpu_busy.get_or_create(&labels).set(percent / 100.0);
            }
            if let Some(memory) = &sample.memory {
                memory_total
                    .get_or_create(&labels)
                    .set(gauge(memory.total_bytes));
                memory_free
                    .get_or_create(&labels)
                    .set(gauge(memory.free_bytes));
            }
            for disk in &sample.disks {
                let Some(space) = &disk.space else { continue };
                let labels = DiskLabels {
                    node: node.info.name.clone(),
                    disk: disk.role.as_str(),
                };
                disk_total
                    .get_or_create(&labels)
                    .set(gauge(space.total_bytes));
                disk_free
                    .get_or_create(&labels)
                    .set(gauge(space.free_bytes));
            }
        }
        let cluster: Gauge = Gauge::default();
        cluster.set(i64::from(view.needs_another_node));
        registry.register(
            "berth_node_status",
            "A node's status: 0 ok, 1 low (a resource past its threshold), 2 unknown (silent)",
            status,
        );
        registry.register("berth_node_cpus", "Cores of a node", cpus);
        registry.register(
            "berth_node_cpu_busy_ratio",
            "Busy share of a node's cores over the last sampling interval (0-1)",
            cpu_busy,
        );
        registry.register(
            "berth_node_memory_total_bytes",
            "A node's memory",
            memory_total,
        );
        registry.register(
            "berth_node_memory_available_bytes",
            "Memory a node can still give without swapping",
            memory_free,
        );
        registry.register(
            "berth_node_disk_total_bytes",
            "Size of the file system holding the engine's data root or Berth's data directory",
            disk_total,
        );
        registry.register(
            "berth_node_disk_free_bytes",
            "Space free to users on that file system",
            disk_free,
        );
        registry.register(
            "berth_cluster_needs_node",
            "1 when every node is low: the cluster needs another node",
            cluster,
        );
    }
}
