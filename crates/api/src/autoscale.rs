//! Handlers for autoscaling (on CPU, requests in flight or requests per second): read an
//! app's setting with its latest decisions, turn it on or change it, turn it off.

use axum::Json;
use axum::extract::State;
use berth_core::EventKind;
use berth_core::accounts::TeamAction;
use berth_core::autoscale::{
    Autoscale, DEFAULT_PANIC_THRESHOLD_PERCENT, DEFAULT_PANIC_WINDOW_SECS,
    DEFAULT_SCALE_DOWN_STABILIZATION_SECS, DEFAULT_TOLERANCE_PERCENT, DEFAULT_WINDOW_SECS,
    FULL_CPU_LOAD, Metric, ONE_REQUEST_LOAD,
};
use berth_operations::autoscale::Evaluation;
use berth_store::EventQuery;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ApiState;
use crate::auth::Principal;
use crate::dto::{EventDto, timestamp};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath as Path};

/// Recorded decisions shown by `explain`.
const DECISIONS_SHOWN: usize = 20;
/// How many of the app's latest events are searched for them.
const EVENTS_SEARCHED: u32 = 1000;

/// An app's autoscaling setting.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AutoscaleDto {
    pub min_instances: u32,
    pub max_instances: u32,
    /// What it scales on: `cpu` (use of the CPU limit), `concurrency` (requests in flight per
    /// instance) or `rps` (requests per second per instance).
    pub metric: String,
    /// Target CPU use per instance, in percent of its CPU limit (100: the limit itself);
    /// `cpu` only.
    pub cpu_percent: u32,
    /// Target requests in flight, or per second, per instance (`concurrency` and `rps`;
    /// 0 with `cpu`).
    pub target: u32,
    /// The short window whose burst starts a panic, seconds (`concurrency` and `rps`).
    pub panic_window_seconds: u32,
    /// A panic starts when the burst asks for this share of the ready instances, percent.
    pub panic_threshold_percent: u32,
    /// How far back CPU use is averaged, seconds.
    pub window_seconds: u32,
    /// Usage within this many percent of the target changes nothing.
    pub tolerance_percent: u32,
    /// A scale down goes no lower than the highest recommendation of this many seconds.
    pub scale_down_stabilization_seconds: u32,
}

impl From<&Autoscale> for AutoscaleDto {
    fn from(settings: &Autoscale) -> Self {
        AutoscaleDto {
            min_instances: settings.min,
            max_instances: settings.max,
            metric: settings.metric.as_str().to_string(),
            cpu_percent: settings.cpu_percent,
            target: settings.target_requests,
            panic_window_seconds: settings.panic_window_secs,
            panic_threshold_percent: settings.panic_threshold_percent,
            window_seconds: settings.window_secs,
            tolerance_percent: settings.tolerance_percent,
            scale_down_stabilization_seconds: settings.scale_down_stabilization_secs,
        }
    }
}

/// Turn autoscaling on or change it; fields left out take their defaults.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AutoscaleRequest {
    pub min_instances: u32,
    pub max_instances: u32,
    /// `cpu` (default), `concurrency` or `rps`.
    pub metric: Option<String>,
    /// `cpu` only. Default 100: the CPU limit itself is the target (the founding brief's
    /// rule).
    pub cpu_percent: Option<u32>,
    /// `concurrency` and `rps`: requests in flight, or per second, per instance (required).
    pub target: Option<u32>,
    /// `concurrency` and `rps`. Default 6.
    pub panic_window_seconds: Option<u32>,
    /// `concurrency` and `rps`. Default 200.
    pub panic_threshold_percent: Option<u32>,
    /// Default 60.
    pub window_seconds: Option<u32>,
    /// Default 10.
    pub tolerance_percent: Option<u32>,
    /// Default 300.
    pub scale_down_stabilization_seconds: Option<u32>,
}

impl AutoscaleRequest {
    fn settings(&self) -> ApiResult<Autoscale> {
        let metric = match self.metric.as_deref() {
            None => Metric::Cpu,
            Some(name) => Metric::parse(name).ok_or_else(|| {
                ApiError::field(
                    "metric",
                    format!("unknown metric {name:?}: cpu, concurrency or rps"),
                )
            })?,
        };
        if metric.counts_requests() && self.cpu_percent.is_some() {
            return Err(ApiError::field(
                "cpu_percent",
                format!(
                    "applies to the cpu metric; {} takes target",
                    metric.as_str()
                ),
            ));
        }
        Ok(Autoscale {
            min: self.min_instances,
            max: self.max_instances,
            metric,
            target_requests: self.target.unwrap_or(0),
            panic_window_secs: self
                .panic_window_seconds
                .unwrap_or(DEFAULT_PANIC_WINDOW_SECS),
            panic_threshold_percent: self
                .panic_threshold_percent
                .unwrap_or(DEFAULT_PANIC_THRESHOLD_PERCENT),
            cpu_percent: self.cpu_percent.unwrap_or(100),
            window_secs: self.window_seconds.unwrap_or(DEFAULT_WINDOW_SECS),
            tolerance_percent: self.tolerance_percent.unwrap_or(DEFAULT_TOLERANCE_PERCENT),
            scale_down_stabilization_secs: self
                .scale_down_stabilization_seconds
                .unwrap_or(DEFAULT_SCALE_DOWN_STABILIZATION_SECS),
        })
    }
}

/// One evaluation of the autoscaler, with every number it used.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EvaluationDto {
    pub at: String,
    /// The instance count before.
    pub current: u32,
    /// Ready instances whose samples were used.
    pub sampled: u32,
    /// Ready instances without samples (counted as fully loaded when scaling down, idle
    /// when scaling up).
    pub missing: u32,
    /// Instances not ready (counted as idle when scaling up, else left out).
    pub not_ready: u32,
    /// `cpu`, `concurrency` or `rps`.
    pub metric: String,
    /// The summed load (guesses included): CPU use in percent of one instance's limit, or
    /// requests in flight, or requests per second.
    pub sum: f64,
    /// The target load per instance, in the same unit.
    pub target: f64,
    /// Summed CPU use, percent of one instance's limit (`cpu` only: else `null`).
    pub sum_percent: Option<f64>,
    /// Target CPU use per instance, percent of the limit (`cpu` only: else `null`).
    pub target_percent: Option<f64>,
    /// The panic window's load, same unit as `sum` (`concurrency` and `rps`).
    pub burst: Option<f64>,
    /// ceil(burst / target).
    pub burst_raw: Option<u32>,
    /// The app panics (a burst): the count does not go down until the panic is over.
    pub panic: bool,
    /// ceil(sum / target), before any guard; `null` without samples.
    pub raw: Option<u32>,
    /// The formula with the tolerance band, clamped to the range.
    pub recommended: u32,
    /// The count decided (after stabilisation and the growth cap, before the quota).
    pub desired: u32,
    /// `scale`, `within_tolerance`, `stabilized`, `step_capped`, `at_bound`, `panic` or
    /// `no_samples`.
    pub verdict: String,
    /// The count the app was given, when it changed.
    pub applied: Option<u32>,
    /// Why the team's quota refused instances, when it did.
    pub quota: Option<String>,
}

impl From<&Evaluation> for EvaluationDto {
    fn from(evaluation: &Evaluation) -> Self {
        let decision = &evaluation.decision;
        let metric = evaluation.metric;
        // CPU loads are basis points of the limit; request loads thousandths of a request.
        let unit = match metric {
            Metric::Cpu => FULL_CPU_LOAD as f64 / 100.0,
            Metric::Concurrency | Metric::Rps => ONE_REQUEST_LOAD as f64,
        };
        let natural = |load: u64| load as f64 / unit;
        let cpu = |load: u64| (metric == Metric::Cpu).then(|| natural(load));
        EvaluationDto {
            at: timestamp(evaluation.at),
            current: decision.current,
            sampled: decision.sampled,
            missing: decision.missing,
            not_ready: decision.not_ready,
            metric: metric.as_str().to_string(),
            sum: natural(decision.sum),
            target: natural(decision.target),
            sum_percent: cpu(decision.sum),
            target_percent: cpu(decision.target),
            burst: decision.burst.map(natural),
            burst_raw: decision.burst_raw,
            panic: decision.panicking_until.is_some(),
            raw: decision.raw,
            recommended: decision.recommended,
            desired: decision.desired,
            verdict: decision.verdict.as_str().to_string(),
            applied: evaluation.applied,
            quota: evaluation.quota.clone(),
        }
    }
}

/// An app's autoscaling: the setting, the latest evaluations and the recorded decisions.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AutoscaleView {
    pub app: String,
    /// `null`: the app is not autoscaled.
    pub autoscale: Option<AutoscaleDto>,
    /// The instance count now.
    pub replicas: u32,
    /// The CPU limit per instance, millicores (`null`: none, so no CPU autoscaling; the
    /// request metrics need none).
    pub cpu_limit_millis: Option<u64>,
    /// The latest evaluations (every 5 s), newest first; kept in memory since the server
    /// started.
    pub evaluations: Vec<EvaluationDto>,
    /// The recorded decisions (`autoscaled`, `autoscale_held`, `autoscale_refused`,
    /// `autoscale_changed` events), newest first.
    pub decisions: Vec<EventDto>,
}

async fn view(
    state: &ApiState,
    app: &berth_core::App,
    template: &berth_core::Template,
) -> ApiResult<AutoscaleView> {
    let events = state
        .store
        .list_events(
            &app.name,
            EventQuery {
                after_id: None,
                limit: EVENTS_SEARCHED,
            },
        )
        .await?;
    let decisions = events
        .iter()
        .rev()
        .filter(|e| {
            matches!(
                e.kind,
                EventKind::Autoscaled
                    | EventKind::AutoscaleHeld
                    | EventKind::AutoscaleRefused
                    | EventKind::AutoscaleChanged
            )
        })
        .take(DECISIONS_SHOWN)
        .map(EventDto::from)
        .collect();
    Ok(AutoscaleView {
        app: app.name.clone(),
        autoscale: app.autoscale.as_ref().map(AutoscaleDto::from),
        replicas: app.replicas,
        cpu_limit_millis: template.resources.cpu_millis,
        evaluations: state
            .platform
            .autoscaler
            .evaluations(&app.name)
            .iter()
            .map(EvaluationDto::from)
            .collect(),
        decisions,
    })
}

/// An app's autoscaling setting with its latest decisions and their numbers.
#[utoipa::path(get, path = "/api/v1/apps/{name}/autoscale", tag = "apps", params(("name" = String, Path)),
    responses((status = 200, body = AutoscaleView), (status = 404, body = ErrorBody)))]
pub async fn get_autoscale(
    State(state): State<ApiState>,
    principal: Principal,
    Path(name): Path<String>,
) -> ApiResult<Json<AutoscaleView>> {
    let current = state
        .platform
        .app(&principal, &name, TeamAction::Read)
        .await?;
    Ok(Json(view(&state, &current.app, &current.template).await?))
}

/// Turn autoscaling on or change it: on CPU (the app needs a CPU limit), on requests in
/// flight or on requests per second per instance (counted by the router, with a short panic
/// window for bursts). Its count moves into the range at once (admitted by the team's quota),
/// and from then on Berth sets it: a manual scale is refused with 409 `autoscaled` until
/// autoscaling is turned off.
#[utoipa::path(put, path = "/api/v1/apps/{name}/autoscale", tag = "apps", params(("name" = String, Path)), request_body = AutoscaleRequest,
    responses((status = 200, body = AutoscaleView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn put_autoscale(
    State(state): State<ApiState>,
    principal: Principal,
    Path(name): Path<String>,
    ApiJson(request): ApiJson<AutoscaleRequest>,
) -> ApiResult<Json<AutoscaleView>> {
    let current = state
        .platform
        .set_autoscale(&principal, &name, Some(request.settings()?))
        .await?;
    Ok(Json(view(&state, &current.app, &current.template).await?))
}

/// Turn autoscaling off; the count stays where it is.
#[utoipa::path(delete, path = "/api/v1/apps/{name}/autoscale", tag = "apps", params(("name" = String, Path)),
    responses((status = 200, body = AutoscaleView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_autoscale(
    State(state): State<ApiState>,
    principal: Principal,
    Path(name): Path<String>,
) -> ApiResult<Json<AutoscaleView>> {
    let current = state
        .platform
        .set_autoscale(&principal, &name, None)
        .await?;
    Ok(Json(view(&state, &current.app, &current.template).await?))
}
