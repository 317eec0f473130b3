//! Handlers for CPU autoscaling: read an app's setting with its latest decisions, turn it on
//! or change it, turn it off.

use axum::Json;
use axum::extract::State;
use berth_core::EventKind;
use berth_core::accounts::TeamAction;
use berth_core::autoscale::{
    Autoscale, DEFAULT_SCALE_DOWN_STABILIZATION_SECS, DEFAULT_TOLERANCE_PERCENT,
    DEFAULT_WINDOW_SECS,
};
use berth_operations::autoscale::Evaluation;
use berth_store::EventQuery;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ApiState;
use crate::auth::Principal;
use crate::dto::{EventDto, timestamp};
use crate::error::{ApiResult, ErrorBody};
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
    /// Target CPU use per instance, in percent of its CPU limit (100: the limit itself).
    pub cpu_percent: u32,
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
            cpu_percent: settings.cpu_percent,
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
    /// Default 100: the CPU limit itself is the target (the founding brief's rule).
    pub cpu_percent: Option<u32>,
    /// Default 60.
    pub window_seconds: Option<u32>,
    /// Default 10.
    pub tolerance_percent: Option<u32>,
    /// Default 300.
    pub scale_down_stabilization_seconds: Option<u32>,
}

impl AutoscaleRequest {
    fn settings(&self) -> Autoscale {
        Autoscale {
            min: self.min_instances,
            max: self.max_instances,
            cpu_percent: self.cpu_percent.unwrap_or(100),
            window_secs: self.window_seconds.unwrap_or(DEFAULT_WINDOW_SECS),
            tolerance_percent: self.tolerance_percent.unwrap_or(DEFAULT_TOLERANCE_PERCENT),
            scale_down_stabilization_secs: self
                .scale_down_stabilization_seconds
                .unwrap_or(DEFAULT_SCALE_DOWN_STABILIZATION_SECS),
        }
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
    /// Summed CPU use, percent of one instance's limit (guesses included).
    pub sum_percent: f64,
    /// Target CPU use per instance, percent of the limit.
    pub target_percent: f64,
    /// ceil(sum / target), before any guard; `null` without samples.
    pub raw: Option<u32>,
    /// The formula with the tolerance band, clamped to the range.
    pub recommended: u32,
    /// The count decided (after stabilisation and the growth cap, before the quota).
    pub desired: u32,
    /// `scale`, `within_tolerance`, `stabilized`, `step_capped`, `at_bound` or `no_samples`.
    pub verdict: String,
    /// The count the app was given, when it changed.
    pub applied: Option<u32>,
    /// Why the team's quota refused instances, when it did.
    pub quota: Option<String>,
}

impl From<&Evaluation> for EvaluationDto {
    fn from(evaluation: &Evaluation) -> Self {
        let decision = &evaluation.decision;
        // Loads are basis points of the limit.
        let percent = |load: u64| load as f64 / 100.0;
        EvaluationDto {
            at: timestamp(evaluation.at),
            current: decision.current,
            sampled: decision.sampled,
            missing: decision.missing,
            not_ready: decision.not_ready,
            sum_percent: percent(decision.sum),
            target_percent: percent(decision.target),
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
    /// The CPU limit per instance, millicores (`null`: none, so no CPU autoscaling).
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

/// Turn CPU autoscaling on or change it. The app needs a CPU limit; its count moves into the
/// range at once (admitted by the team's quota), and from then on Berth sets it: a manual
/// scale is refused with 409 `autoscaled` until autoscaling is turned off.
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
        .set_autoscale(&principal, &name, Some(request.settings()))
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
