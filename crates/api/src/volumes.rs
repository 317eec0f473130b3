//! Volumes: a team's persistent volumes (`/api/v1/volumes`, `/api/v1/teams/{team}/volumes`),
//! deleted when no app mounts them, backed up and restored as uncompressed tar streams.
//!
//! Reading a volume's record is for the team's readers; its data (backup, restore) and
//! deleting it are for members and owners.

use axum::Json;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use berth_operations::volumes::{MAX_RESTORE_BYTES, VolumeView};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::ApiState;
use crate::auth::Principal;
use crate::dto::timestamp;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiPath as Path, ApiQuery};

/// A team's volume.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct VolumeDto {
    pub team: String,
    pub name: String,
    /// `shared` (one store every instance mounts) or `per_instance` (a store per instance
    /// slot, of one app).
    pub scope: crate::dto::VolumeScopeDto,
    /// The apps whose current revision mounts it.
    pub used_by: Vec<String>,
    /// The slots a per-instance volume has stores for.
    pub slots: Vec<u32>,
    /// Bytes it holds (all slots together), as last measured; `null` until measured.
    pub size_bytes: Option<u64>,
    pub measured_at: Option<String>,
    pub created_at: String,
    /// Who deployed the app that first mounted it.
    pub created_by: String,
}

impl From<VolumeView> for VolumeDto {
    fn from(view: VolumeView) -> Self {
        let volume = view.volume;
        VolumeDto {
            scope: volume.scope.into(),
            used_by: view.used_by,
            slots: view.slots,
            size_bytes: volume.size_bytes,
            measured_at: volume.measured_at.map(timestamp),
            created_at: timestamp(volume.created_at),
            created_by: volume.created_by,
            team: volume.team,
            name: volume.name,
        }
    }
}

/// Volumes.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct VolumeListDto {
    pub volumes: Vec<VolumeDto>,
}

/// Which store of a per-instance volume a backup or restore is about.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SlotParams {
    /// The slot of a per-instance volume (required for one, refused for a shared one).
    pub slot: Option<u32>,
}

/// Every volume of the teams the caller can read.
#[utoipa::path(get, path = "/api/v1/volumes", tag = "volumes",
    responses((status = 200, body = VolumeListDto)))]
pub async fn list_all(
    State(state): State<ApiState>,
    principal: Principal,
) -> ApiResult<Json<VolumeListDto>> {
    list(&state, &principal, None).await
}

/// A team's volumes.
#[utoipa::path(get, path = "/api/v1/teams/{team}/volumes", tag = "volumes",
    params(("team" = String, Path)),
    responses((status = 200, body = VolumeListDto), (status = 404, body = ErrorBody)))]
pub async fn list_team(
    State(state): State<ApiState>,
    principal: Principal,
    Path(team): Path<String>,
) -> ApiResult<Json<VolumeListDto>> {
    list(&state, &principal, Some(&team)).await
}

async fn list(
    state: &ApiState,
    principal: &Principal,
    team: Option<&str>,
) -> ApiResult<Json<VolumeListDto>> {
    let views = state.platform.list_volumes(principal, team).await?;
    Ok(Json(VolumeListDto {
        volumes: views.into_iter().map(VolumeDto::from).collect(),
    }))
}

/// One volume.
#[utoipa::path(get, path = "/api/v1/teams/{team}/volumes/{name}", tag = "volumes",
    params(("team" = String, Path), ("name" = String, Path)),
    responses((status = 200, body = VolumeDto), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<ApiState>,
    principal: Principal,
    Path((team, name)): Path<(String, String)>,
) -> ApiResult<Json<VolumeDto>> {
    let view = state.platform.volume(&principal, &team, &name).await?;
    Ok(Json(view.into()))
}

/// Delete a volume and its data (members and owners); refused (409 `volume_in_use`) while an
/// app mounts it.
#[utoipa::path(delete, path = "/api/v1/teams/{team}/volumes/{name}", tag = "volumes",
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
        .delete_volume(&principal, &team, &name)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A backup: the volume's files as an uncompressed tar stream, entries relative to its root
/// (members and owners).
#[utoipa::path(get, path = "/api/v1/teams/{team}/volumes/{name}/archive", tag = "volumes",
    params(("team" = String, Path), ("name" = String, Path), SlotParams),
    responses((status = 200, content_type = "application/x-tar", body = Vec<u8>),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn backup(
    State(state): State<ApiState>,
    principal: Principal,
    Path((team, name)): Path<(String, String)>,
    ApiQuery(params): ApiQuery<SlotParams>,
) -> ApiResult<Response> {
    let archive = state
        .platform
        .export_volume(&principal, &team, &name, params.slot)
        .await?;
    let body = archive.map(|chunk| chunk.map_err(std::io::Error::other));
    let file = match params.slot {
        Some(slot) => format!("{team}-{name}-{slot}.tar"),
        None => format!("{team}-{name}.tar"),
    };
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-tar".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{file}\""),
            ),
        ],
        Body::from_stream(body),
    )
        .into_response())
}

/// A restore: replaces the volume's files with those of an uncompressed tar archive
/// (members and owners). Every entry is checked first — relative, inside the volume, no
/// device files — and nothing changes when one is refused (400 naming `archive`). Refused
/// (409 `volume_in_use`) while an instance of an app mounting it runs.
#[utoipa::path(put, path = "/api/v1/teams/{team}/volumes/{name}/archive", tag = "volumes",
    params(("team" = String, Path), ("name" = String, Path), SlotParams),
    request_body(content = Vec<u8>, content_type = "application/octet-stream",
        description = "An uncompressed tar archive (any Content-Type is accepted; `application/x-tar` is usual)."),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 415, body = ErrorBody)))]
pub async fn restore(
    State(state): State<ApiState>,
    principal: Principal,
    Path((team, name)): Path<(String, String)>,
    ApiQuery(params): ApiQuery<SlotParams>,
    request: Request,
) -> ApiResult<StatusCode> {
    if let Some(encoding) = request.headers().get(header::CONTENT_ENCODING)
        && encoding.as_bytes() != b"identity"
    {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_encoding",
            "archive: send the tar archive uncompressed, without a Content-Encoding",
        ));
    }
    let file = spool(request.into_body()).await?;
    state
        .platform
        .restore_volume(&principal, &team, &name, params.slot, file)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The body written to an unnamed temporary file, at most [`MAX_RESTORE_BYTES`].
async fn spool(body: Body) -> ApiResult<std::fs::File> {
    use tokio::io::AsyncWriteExt;
    let failed = |e: std::io::Error| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("the archive could not be stored for checking: {e}"),
        )
    };
    let file = tokio::task::spawn_blocking(tempfile::tempfile)
        .await
        .map_err(|e| failed(std::io::Error::other(e)))?
        .map_err(failed)?;
    let mut file = tokio::fs::File::from_std(file);
    let mut chunks = body.into_data_stream();
    let mut total = 0u64;
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk
            .map_err(|e| ApiError::field("archive", format!("the body could not be read: {e}")))?;
        total = total.saturating_add(chunk.len() as u64);
        if total > MAX_RESTORE_BYTES {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!("archive: larger than {MAX_RESTORE_BYTES} bytes"),
            ));
        }
        file.write_all(&chunk).await.map_err(failed)?;
    }
    file.flush().await.map_err(failed)?;
    Ok(file.into_std().await)
}
