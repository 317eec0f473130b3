//! Metrics history range queries: `GET /api/v1/apps/{name}/metrics`,
//! `/api/v1/nodes/{name}/metrics` and `/api/v1/teams/{team}/metrics`.
//!
//! Times are unix milliseconds (`from`, `to`; default: the last hour up to now); `step` is a
//! span such as `5s`, `1m`, `10m` (default: the step of the finest tier that still holds
//! `from`). Bad input is a 400 naming `from`, `to` or `step`. Who may read follows the
//! subject: an app's readers, a team's readers, any logged-in user for a node.

use axum::Json;
use axum::extract::State;
use berth_core::Millis;
use berth_core::metrics_history::{RangeRequest, parse_span};
use berth_operations::metrics_history::{MetricsRange, MetricsSubject};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::ApiState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiPath as Path, ApiQuery};
use crate::team_dto::QuotaDto;

/// The range of a metrics query.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RangeParams {
    /// Start, unix milliseconds, or a span before `to` such as `-1h`, `-30d` (default: `-1h`).
    pub from: Option<String>,
    /// End (exclusive), unix milliseconds (default: now).
    pub to: Option<String>,
    /// Width of one point: `5s`, `30s`, `1m`, `10m`, … — a multiple of the step of the
    /// finest tier that holds `from` (default: that step).
    pub step: Option<String>,
}

impl RangeParams {
    fn request(&self) -> ApiResult<RangeRequest> {
        let millis = |field: &str, value: &Option<String>| -> ApiResult<Option<Millis>> {
            value
                .as_deref()
                .map(|text| {
                    text.trim().parse::<Millis>().map_err(|_| {
                        ApiError::field(
                            field,
                            format!("{text:?} is not a time in unix milliseconds"),
                        )
                    })
                })
                .transpose()
        };
        // `-1h`: a span before `to` (a unit at the end); anything else is unix milliseconds.
        let relative = self
            .from
            .as_deref()
            .map(str::trim)
            .filter(|text| text.ends_with(|c: char| c.is_ascii_alphabetic()))
            .and_then(|text| text.strip_prefix('-'));
        let (from, since) = match relative {
            Some(span) => {
                let span = parse_span(span)
                    .map_err(|e| ApiError::field("from", format!("not a span before to: {e}")))?;
                (None, Some(span))
            }
            None => (millis("from", &self.from)?, None),
        };
        let step = self
            .step
            .as_deref()
            .map(|text| {
                parse_span(text).map_err(|e| ApiError::field("step", format!("unknown step: {e}")))
            })
            .transpose()?;
        Ok(RangeRequest {
            from,
            since,
            to: millis("to", &self.to)?,
            step,
        })
    }
}

/// Series over a range, one point per step.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MetricsDto {
    /// The first point's start, unix ms (`from` aligned down to the step).
    pub from: Millis,
    /// The end of the range (exclusive), unix ms.
    pub to: Millis,
    /// One point covers this long, ms.
    pub step_ms: Millis,
    /// The resolution read (the finest tier that holds `from`), ms.
    pub tier_step_ms: Millis,
    /// Every series with points in the range; a series has no entry for steps without
    /// samples (draw a gap).
    pub series: Vec<SeriesDto>,
}

/// One series.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SeriesDto {
    /// `node`, `team`, `app` or `instance`.
    pub scope: String,
    /// `cpu_millis`, `memory_bytes`, `ready_instances`, `restarts`, `cpu_percent`,
    /// `disk_used_percent`, `requests_per_second`, `error_percent`, `latency_p95_ms`.
    pub metric: String,
    /// The team (apps, instances, teams).
    pub team: Option<String>,
    /// The app (apps, instances).
    pub app: Option<String>,
    /// The instance (`<app>-<ordinal>`) or the node.
    pub name: Option<String>,
    pub points: Vec<PointDto>,
}

/// One step of a series: the samples in it summarised.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PointDto {
    /// The step's start, unix ms.
    pub at: Millis,
    /// The mean of the samples (what a chart draws).
    pub mean: f64,
    pub min: f64,
    pub max: f64,
    /// How many samples (one per recorder round).
    pub samples: u64,
}

/// A team's totals over a range, and its quota to compare them with.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TeamMetricsDto {
    #[serde(flatten)]
    pub metrics: MetricsDto,
    pub quota: QuotaDto,
}

fn non_empty(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| text.to_string())
}

impl From<MetricsRange> for MetricsDto {
    fn from(range: MetricsRange) -> Self {
        MetricsDto {
            from: range.plan.from,
            to: range.plan.to,
            step_ms: range.plan.step,
            tier_step_ms: range.plan.tier.step_ms,
            series: range
                .series
                .into_iter()
                .map(|s| SeriesDto {
                    scope: s.key.scope.as_str().into(),
                    metric: s.key.metric.as_str().into(),
                    team: non_empty(&s.key.team),
                    app: non_empty(&s.key.app),
                    name: non_empty(&s.key.name),
                    points: s
                        .points
                        .iter()
                        .map(|p| PointDto {
                            at: p.at,
                            mean: p.aggregate.mean(),
                            min: p.aggregate.min,
                            max: p.aggregate.max,
                            samples: p.aggregate.count,
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}

/// The answer to a range query of `subject`.
async fn answer(
    state: &ApiState,
    principal: &Principal,
    subject: MetricsSubject,
    params: &RangeParams,
) -> ApiResult<MetricsDto> {
    let request = params.request()?;
    Ok(state
        .platform
        .metrics(principal, &subject, request)
        .await?
        .into())
}

/// An app's history: the app's own series (CPU, memory, ready instances, restarts, requests
/// per second, 5xx share, p95 latency) and each instance's CPU and memory.
#[utoipa::path(get, path = "/api/v1/apps/{name}/metrics", tag = "apps",
    params(("name" = String, Path), RangeParams),
    responses((status = 200, body = MetricsDto), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn app_metrics(
    State(state): State<ApiState>,
    principal: Principal,
    Path(name): Path<String>,
    ApiQuery(params): ApiQuery<RangeParams>,
) -> ApiResult<Json<MetricsDto>> {
    Ok(Json(
        answer(&state, &principal, MetricsSubject::App(name), &params).await?,
    ))
}

/// A node's history: CPU (percent of all cores), memory in use, the fullest watched disk's
/// used share (any logged-in user).
#[utoipa::path(get, path = "/api/v1/nodes/{name}/metrics", tag = "nodes",
    params(("name" = String, Path), RangeParams),
    responses((status = 200, body = MetricsDto), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn node_metrics(
    State(state): State<ApiState>,
    principal: Principal,
    Path(name): Path<String>,
    ApiQuery(params): ApiQuery<RangeParams>,
) -> ApiResult<Json<MetricsDto>> {
    Ok(Json(
        answer(&state, &principal, MetricsSubject::Node(name), &params).await?,
    ))
}

/// A team's totals over time (CPU, memory, ready instances of all its apps) and its quota.
#[utoipa::path(get, path = "/api/v1/teams/{team}/metrics", tag = "teams",
    params(("team" = String, Path), RangeParams),
    responses((status = 200, body = TeamMetricsDto), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn team_metrics(
    State(state): State<ApiState>,
    principal: Principal,
    Path(team): Path<String>,
    ApiQuery(params): ApiQuery<RangeParams>,
) -> ApiResult<Json<TeamMetricsDto>> {
    let metrics = answer(
        &state,
        &principal,
        MetricsSubject::Team(team.clone()),
        &params,
    )
    .await?;
    let stored = crate::teams::load_team(&state, &team).await?;
    Ok(Json(TeamMetricsDto {
        metrics,
        quota: QuotaDto::from(&stored.quota),
    }))
}
