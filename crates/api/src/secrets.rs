//! Team secrets (`/api/v1/secrets`, `/api/v1/teams/{team}/secrets`): names, versions and
//! who changed them — a value goes in (the body of a `PUT`) and never comes back out.
//!
//! Listing is for the team's readers; setting and deleting for members and owners.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use berth_core::team_secret::MAX_SECRET_BYTES;
use berth_operations::secrets::SecretView;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ApiState;
use crate::auth::Principal;
use crate::dto::timestamp;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::ApiPath as Path;

/// A team's secret: never its value.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SecretDto {
    pub team: String,
    pub name: String,
    /// 1 when created, one more on every change.
    pub version: u32,
    pub created_at: String,
    pub created_by: String,
    pub updated_at: String,
    pub updated_by: String,
    /// The apps whose current revision uses it.
    pub used_by: Vec<String>,
    /// The apps rolled out with this version (only in the answer to a change).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rolled_out: Vec<String>,
}

impl From<SecretView> for SecretDto {
    fn from(view: SecretView) -> Self {
        let s = view.secret;
        SecretDto {
            team: s.team,
            name: s.name,
            version: s.version,
            created_at: timestamp(s.created_at),
            created_by: s.created_by,
            updated_at: timestamp(s.updated_at),
            updated_by: s.updated_by,
            used_by: view.used_by,
            rolled_out: Vec::new(),
        }
    }
}

/// Secrets.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SecretListDto {
    pub secrets: Vec<SecretDto>,
}

/// The largest body a secret's value may come in.
pub fn value_limit() -> DefaultBodyLimit {
    DefaultBodyLimit::max(MAX_SECRET_BYTES + 1)
}

/// Every secret of the teams the caller can read.
#[utoipa::path(get, path = "/api/v1/secrets", tag = "secrets",
    responses((status = 200, body = SecretListDto)))]
pub async fn list_all(
    State(state): State<ApiState>,
    principal: Principal,
) -> ApiResult<Json<SecretListDto>> {
    list(&state, &principal, None).await
}

/// A team's secrets.
#[utoipa::path(get, path = "/api/v1/teams/{team}/secrets", tag = "secrets",
    params(("team" = String, Path)),
    responses((status = 200, body = SecretListDto), (status = 404, body = ErrorBody)))]
pub async fn list_team(
    State(state): State<ApiState>,
    principal: Principal,
    Path(team): Path<String>,
) -> ApiResult<Json<SecretListDto>> {
    list(&state, &principal, Some(&team)).await
}

async fn list(
    state: &ApiState,
    principal: &Principal,
    team: Option<&str>,
) -> ApiResult<Json<SecretListDto>> {
    let views = state.platform.list_secrets(principal, team).await?;
    Ok(Json(SecretListDto {
        secrets: views.into_iter().map(SecretDto::from).collect(),
    }))
}

/// Set a secret (members and owners): the body is the value, raw bytes (at most 256 KiB).
/// Creates it (201, version 1) or stores the next version (200), and rolls out every app
/// using it with that version. The value is sealed with the server's key and never returned.
#[utoipa::path(put, path = "/api/v1/teams/{team}/secrets/{name}", tag = "secrets",
    params(("team" = String, Path), ("name" = String, Path)),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 200, body = SecretDto), (status = 201, body = SecretDto),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 413, body = ErrorBody)))]
pub async fn put(
    State(state): State<ApiState>,
    principal: Principal,
    Path((team, name)): Path<(String, String)>,
    value: Bytes,
) -> ApiResult<(StatusCode, Json<SecretDto>)> {
    let set = state
        .platform
        .put_secret(&principal, &team, &name, &value)
        .await?;
    let status = crate::put_status(!set.created);
    let mut dto = SecretDto::from(SecretView {
        used_by: set.rolled_out.clone(),
        secret: set.secret,
    });
    dto.rolled_out = set.rolled_out;
    Ok((status, Json(dto)))
}

/// Delete a secret and every version of it (members and owners); refused (409
/// `secret_in_use`) while an app uses it.
#[utoipa::path(delete, path = "/api/v1/teams/{team}/secrets/{name}", tag = "secrets",
    params(("team" = String, Path), ("name" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub async fn delete(
    State(state): State<ApiState>,
    principal: Principal,
    Path((team, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    state
        .platform
        .delete_secret(&principal, &team, &name)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
