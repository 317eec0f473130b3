//! The server's own state for admins: its background workers, backups of the whole
//! installation, the router's access log and the app that receives on-demand domains.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use berth_controller::workers::WorkerStatus;
use berth_operations::backup::BackupSources;
use berth_operations::on_demand::OnDemandDomains;
use berth_operations::routes::AccessLogSetting;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ApiState;
use crate::auth::Principal;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::ApiJson;

/// One background worker of the server.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkerDto {
    pub name: String,
    /// What it does.
    pub description: String,
    /// `idle`, `busy`, `backing_off` (its last run failed; it retries at `next_run_at`) or
    /// `stopped`.
    pub state: String,
    pub runs: u64,
    pub failures: u64,
    /// Failures in a row; each doubles the wait before the next try, up to the period.
    pub consecutive_failures: u32,
    /// Unix ms.
    pub last_started_at: Option<i64>,
    pub last_finished_at: Option<i64>,
    /// What the last successful run did.
    pub last_outcome: Option<String>,
    pub last_error: Option<String>,
    pub last_error_at: Option<i64>,
    /// When a periodic worker runs next (unix ms).
    pub next_run_at: Option<i64>,
}

impl From<WorkerStatus> for WorkerDto {
    fn from(s: WorkerStatus) -> Self {
        WorkerDto {
            name: s.name,
            description: s.description,
            state: s.state.as_str().to_string(),
            runs: s.runs,
            failures: s.failures,
            consecutive_failures: s.consecutive_failures,
            last_started_at: s.last_started_at,
            last_finished_at: s.last_finished_at,
            last_outcome: s.last_outcome,
            last_error: s.last_error,
            last_error_at: s.last_error_at,
            next_run_at: s.next_run_at,
        }
    }
}

/// The server's background workers with their state, last run, last error and backoff
/// (platform admins only).
#[utoipa::path(get, path = "/api/v1/system/workers", tag = "system",
    responses((status = 200, body = [WorkerDto]), (status = 403, body = ErrorBody)))]
pub async fn list_workers(
    State(state): State<ApiState>,
    principal: Principal,
) -> ApiResult<Json<Vec<WorkerDto>>> {
    principal.require_admin()?;
    Ok(Json(
        state
            .workers
            .list()
            .into_iter()
            .map(WorkerDto::from)
            .collect(),
    ))
}

/// A backup of the whole installation, written while Berth runs (platform admins only): an
/// uncompressed tar stream with the database (a consistent snapshot), the metrics history, the
/// registry's metadata and blobs, the hosted git repositories, build logs and the server's
/// keys. It holds every secret: keep it as safe as the server. `berth restore` brings it back
/// into an empty data directory. Its last entry is `BACKUP-END`: an archive without it was cut
/// short (a failure while streaming ends the response early). On a PostgreSQL store it is
/// refused (409 `backup_unsupported`): back the database up with `pg_dump`.
#[utoipa::path(post, path = "/api/v1/system/backups", tag = "system",
    responses((status = 200, content_type = "application/x-tar", body = Vec<u8>),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create_backup(
    State(state): State<ApiState>,
    principal: Principal,
) -> ApiResult<Response> {
    principal.require_admin()?;
    principal.audit.set_object("backup");
    let sources = BackupSources {
        store: Arc::clone(&state.store),
        metrics: Arc::clone(&state.platform.metrics.store),
        registry: Arc::clone(&state.registry),
        data_dir: state.data_dir.clone(),
        namespace: state.platform.namespace().to_string(),
    };
    let now = (state.clock)();
    let (manifest, archive) = sources.start(now).await?;
    principal
        .audit
        .set_detail(format!("installation {}", manifest.installation));
    let file = format!(
        "berth-backup-{}.tar",
        humantime::format_rfc3339_seconds(berth_core::clock::to_system_time(now))
            .to_string()
            .replace(':', "-")
    );
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-tar".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{file}\""),
            ),
        ],
        Body::from_stream(archive),
    )
        .into_response())
}

/// The router's access log.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AccessLogDto {
    /// One request in this many is written (JSON lines, `--access-log`); `null`: off.
    pub sample_one_in: Option<u32>,
    /// Lines dropped because the file could not keep up (read only).
    #[serde(default)]
    pub dropped: u64,
}

impl From<AccessLogSetting> for AccessLogDto {
    fn from(s: AccessLogSetting) -> Self {
        AccessLogDto {
            sample_one_in: s.sample_one_in,
            dropped: s.dropped,
        }
    }
}

/// Whether the router writes an access log, and how much of the traffic (platform admins).
#[utoipa::path(get, path = "/api/v1/system/access-log", tag = "system",
    responses((status = 200, body = AccessLogDto), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub async fn get_access_log(
    State(state): State<ApiState>,
    principal: Principal,
) -> ApiResult<Json<AccessLogDto>> {
    Ok(Json(state.platform.access_log(&principal)?.into()))
}

/// Turn the router's access log on (one request in `sample_one_in`) or off (`null` or 0), from
/// the next request on (platform admins).
#[utoipa::path(put, path = "/api/v1/system/access-log", tag = "system",
    request_body = AccessLogDto,
    responses((status = 200, body = AccessLogDto), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn put_access_log(
    State(state): State<ApiState>,
    principal: Principal,
    ApiJson(request): ApiJson<AccessLogDto>,
) -> ApiResult<Json<AccessLogDto>> {
    Ok(Json(
        state
            .platform
            .set_access_log(&principal, request.sample_one_in)?
            .into(),
    ))
}

/// The app that receives the hosts no other app routes (customers' own domains), with HTTPS
/// certificates ordered at the first handshake for the hosts it approves.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OnDemandDomainsDto {
    /// The catch-all app; `null`: none (unknown hosts route nowhere).
    pub app: Option<String>,
    /// Path on the app asked before a certificate is ordered: `GET <ask_path>?domain=<host>`,
    /// a 2xx answer approves. `null`: only the server's allow-list
    /// (`--on-demand-allow`) approves.
    #[serde(default)]
    pub ask_path: Option<String>,
}

impl From<Option<OnDemandDomains>> for OnDemandDomainsDto {
    fn from(setting: Option<OnDemandDomains>) -> Self {
        match setting {
            Some(setting) => OnDemandDomainsDto {
                app: Some(setting.app),
                ask_path: setting.ask_path,
            },
            None => OnDemandDomainsDto {
                app: None,
                ask_path: None,
            },
        }
    }
}

/// Which app receives on-demand domains (platform admins).
#[utoipa::path(get, path = "/api/v1/system/on-demand-domains", tag = "system",
    responses((status = 200, body = OnDemandDomainsDto), (status = 403, body = ErrorBody)))]
pub async fn get_on_demand_domains(
    State(state): State<ApiState>,
    principal: Principal,
) -> ApiResult<Json<OnDemandDomainsDto>> {
    Ok(Json(
        state.platform.on_demand_domains(&principal).await?.into(),
    ))
}

/// Make an app the receiver of on-demand domains (platform admins). 404: no such app; 400: an
/// internal app or a bad `ask_path`; 409 `catch_all_taken`: another app is it (clear it
/// first); 409 `acme_not_configured`: the server has no ACME settings.
#[utoipa::path(put, path = "/api/v1/system/on-demand-domains", tag = "system",
    request_body = OnDemandDomainsDto,
    responses((status = 200, body = OnDemandDomainsDto), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub async fn put_on_demand_domains(
    State(state): State<ApiState>,
    principal: Principal,
    ApiJson(request): ApiJson<OnDemandDomainsDto>,
) -> ApiResult<Json<OnDemandDomainsDto>> {
    let Some(app) = request.app.as_deref() else {
        return Err(berth_operations::error::OpError::field(
            "app",
            "missing: the name of the app that receives on-demand domains",
        )
        .into());
    };
    let setting = state
        .platform
        .set_on_demand_domains(&principal, app, request.ask_path.as_deref())
        .await?;
    Ok(Json(Some(setting).into()))
}

/// No app receives on-demand domains any more (platform admins).
#[utoipa::path(delete, path = "/api/v1/system/on-demand-domains", tag = "system",
    responses((status = 204), (status = 403, body = ErrorBody)))]
pub async fn delete_on_demand_domains(
    State(state): State<ApiState>,
    principal: Principal,
) -> ApiResult<axum::http::StatusCode> {
    state.platform.clear_on_demand_domains(&principal).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}
