//! The server's own state for admins: its background workers.

use axum::Json;
use axum::extract::State;
use berth_controller::workers::WorkerStatus;
use serde::Serialize;
use utoipa::ToSchema;

use crate::ApiState;
use crate::auth::Principal;
use crate::error::{ApiResult, ErrorBody};

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
