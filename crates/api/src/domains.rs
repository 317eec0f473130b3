//! Domain reservations (admins): a domain and every name under it kept for one team's apps.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use berth_core::routes::DomainReservation;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ApiState;
use crate::auth::Principal;
use crate::dto::timestamp;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath as Path};

/// A domain kept for one team: only its apps may use it or names under it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReservationDto {
    pub domain: String,
    pub team: String,
    pub created_by: String,
    pub created_at: String,
}

impl From<DomainReservation> for ReservationDto {
    fn from(r: DomainReservation) -> Self {
        ReservationDto {
            domain: r.domain,
            team: r.team,
            created_by: r.created_by,
            created_at: timestamp(r.created_at),
        }
    }
}

/// Which team a reservation is for.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReserveRequest {
    pub team: String,
}

/// Every domain reservation (platform admins only).
#[utoipa::path(get, path = "/api/v1/domain-reservations", tag = "apps",
    responses((status = 200, body = [ReservationDto]), (status = 403, body = ErrorBody)))]
pub async fn list(
    State(state): State<ApiState>,
    principal: Principal,
) -> ApiResult<Json<Vec<ReservationDto>>> {
    let reservations = state.platform.domain_reservations(&principal).await?;
    Ok(Json(reservations.into_iter().map(Into::into).collect()))
}

/// Reserve a domain and every name under it for a team (platform admins only); replaces the
/// domain's reservation. Apps that already hold such domains keep them.
#[utoipa::path(put, path = "/api/v1/domain-reservations/{domain}", tag = "apps",
    params(("domain" = String, Path, description = "A host name, like example.com")),
    request_body = ReserveRequest,
    responses((status = 200, body = ReservationDto), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
pub async fn put(
    State(state): State<ApiState>,
    principal: Principal,
    Path(domain): Path<String>,
    ApiJson(request): ApiJson<ReserveRequest>,
) -> ApiResult<Json<ReservationDto>> {
    let reservation = state
        .platform
        .reserve_domain(&principal, &domain, &request.team)
        .await?;
    Ok(Json(reservation.into()))
}

/// Remove a domain's reservation (platform admins only).
#[utoipa::path(delete, path = "/api/v1/domain-reservations/{domain}", tag = "apps",
    params(("domain" = String, Path, description = "The reserved domain")),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(state): State<ApiState>,
    principal: Principal,
    Path(domain): Path<String>,
) -> ApiResult<StatusCode> {
    state.platform.unreserve_domain(&principal, &domain).await?;
    Ok(StatusCode::NO_CONTENT)
}
