//! Handlers for quota requests: members ask for larger team limits, admins approve (the
//! team's quota rises at once) or reject them with a comment.
//!
//! Who sees a request: admins every one, team owners their teams', everyone else the ones
//! they filed; anyone else gets the 404 of a missing request.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use berth_core::accounts::TeamAction;
use berth_core::quota::{
    MAX_QUOTA_REASON_LEN, Quota, QuotaRequest, QuotaRequestStatus, quota_request_problems,
};
use berth_store::{QuotaDecision, QuotaRequestQuery, StoreError};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::ApiState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath as Path, ApiQuery, optional_json};
use crate::team_dto::{DecisionRequest, NewQuotaRequest, QuotaRequestDto};
use crate::teams::{invalid, load_team, require_readable};

/// Filters of the quota-request list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct QuotaRequestParams {
    /// Only this team's requests.
    pub team: Option<String>,
    /// `pending`, `approved` or `rejected`.
    pub status: Option<String>,
}

/// Whether the caller may see `request`: admins and the team's owners, and its requester.
fn may_see(principal: &Principal, request: &QuotaRequest) -> bool {
    request.requested_by == principal.username()
        || principal.can(&request.team, TeamAction::ManageTeam)
}

/// The request, when the caller may see it (404 otherwise, as for a missing one).
async fn visible_request(
    state: &ApiState,
    principal: &Principal,
    id: &str,
) -> ApiResult<QuotaRequest> {
    let what = format!("quota request {id}");
    principal.audit.set_object(format!("quota-requests/{id}"));
    let id: i64 = id.parse().map_err(|_| ApiError::not_found(&what))?;
    let request = state
        .store
        .get_quota_request(id)
        .await?
        .filter(|request| may_see(principal, request))
        .ok_or_else(|| ApiError::not_found(&what))?;
    principal.audit.set_team(&request.team);
    Ok(request)
}

/// The request with its team's quota now (unlimited when the team is gone).
async fn view(state: &ApiState, request: &QuotaRequest) -> ApiResult<QuotaRequestDto> {
    let current = state
        .store
        .get_team(&request.team)
        .await?
        .map(|team| team.quota)
        .unwrap_or_default();
    Ok(QuotaRequestDto::new(request, &current))
}

/// The comment to record: trimmed, empty as none; required when rejecting.
fn decision_comment(comment: Option<&str>, approve: bool) -> ApiResult<Option<String>> {
    let comment = comment.map(str::trim).filter(|c| !c.is_empty());
    match comment {
        None if !approve => Err(ApiError::field(
            "comment",
            "is required when rejecting: tell the team why",
        )),
        Some(c) if c.chars().count() > MAX_QUOTA_REASON_LEN => Err(ApiError::field(
            "comment",
            format!("must be at most {MAX_QUOTA_REASON_LEN} characters"),
        )),
        _ => Ok(comment.map(str::to_string)),
    }
}

/// Ask for larger limits for the team (members and owners). Each limit given is the new
/// limit wanted and must be larger than the current one; a reason is required.
#[utoipa::path(post, path = "/api/v1/teams/{team}/quota-requests", tag = "teams",
    params(("team" = String, Path)), request_body = NewQuotaRequest,
    responses((status = 201, body = QuotaRequestDto), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn create(
    State(state): State<ApiState>,
    principal: Principal,
    Path(team): Path<String>,
    ApiJson(body): ApiJson<NewQuotaRequest>,
) -> ApiResult<Response> {
    principal.require(&team, TeamAction::RequestQuota, &format!("team {team}"))?;
    let stored = load_team(&state, &team).await?;
    let requested = body.requested().to_quota("")?;
    quota_request_problems(&stored.quota, &requested, &body.reason).map_err(invalid)?;
    let request = QuotaRequest {
        id: 0,
        team: team.clone(),
        requested_by: principal.username().to_string(),
        requested,
        reason: body.reason.trim().to_string(),
        status: QuotaRequestStatus::Pending,
        created_at: (state.clock)(),
        decided_by: None,
        decided_at: None,
        comment: None,
    };
    let request = state.store.create_quota_request(&request).await?;
    principal
        .audit
        .set_object(format!("quota-requests/{}", request.id));
    let dto = QuotaRequestDto::new(&request, &stored.quota);
    Ok((StatusCode::CREATED, Json(dto)).into_response())
}

/// Quota requests, newest first: admins see every request, team owners their teams', others
/// the ones they filed.
#[utoipa::path(operation_id = "list_quota_requests", get, path = "/api/v1/quota-requests", tag = "teams", params(QuotaRequestParams),
    responses((status = 200, body = [QuotaRequestDto]), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn list(
    State(state): State<ApiState>,
    principal: Principal,
    ApiQuery(params): ApiQuery<QuotaRequestParams>,
) -> ApiResult<Json<Vec<QuotaRequestDto>>> {
    if let Some(team) = &params.team {
        require_readable(&principal, team)?;
    }
    let status =
        match params.status.as_deref() {
            None => None,
            Some(s) => Some(QuotaRequestStatus::parse(s).ok_or_else(|| {
                ApiError::field("status", "must be pending, approved or rejected")
            })?),
        };
    let owns_any = principal.is_admin()
        || principal
            .roles
            .keys()
            .any(|team| principal.can(team, TeamAction::ManageTeam));
    let query = QuotaRequestQuery {
        team: params.team,
        status,
        // Callers who own no team see only their own: let the store filter.
        requested_by: (!owns_any).then(|| principal.username().to_string()),
    };
    let mut requests = state.store.list_quota_requests(&query).await?;
    requests.retain(|request| may_see(&principal, request));
    let quotas: BTreeMap<String, Quota> = state
        .store
        .list_teams()
        .await?
        .into_iter()
        .map(|team| (team.name, team.quota))
        .collect();
    Ok(Json(
        requests
            .iter()
            .map(|r| QuotaRequestDto::new(r, &quotas.get(&r.team).copied().unwrap_or_default()))
            .collect(),
    ))
}

/// One quota request (admins, the team's owners, its requester).
#[utoipa::path(operation_id = "get_quota_request", get, path = "/api/v1/quota-requests/{id}", tag = "teams",
    params(("id" = i64, Path)),
    responses((status = 200, body = QuotaRequestDto), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<ApiState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<QuotaRequestDto>> {
    let request = visible_request(&state, &principal, &id).await?;
    Ok(Json(view(&state, &request).await?))
}

/// Decides a pending request (admins); 409 `already_decided` when it was decided before.
async fn decide(
    state: &ApiState,
    principal: &Principal,
    id: &str,
    approve: bool,
    body: &[u8],
) -> ApiResult<Json<QuotaRequestDto>> {
    let request = visible_request(state, principal, id).await?;
    if !principal.is_admin() {
        return Err(ApiError::forbidden(
            "only platform admins decide quota requests",
        ));
    }
    let decision: DecisionRequest = optional_json(body)?;
    let comment = decision_comment(decision.comment.as_deref(), approve)?;
    principal
        .audit
        .set_detail(if approve { "approved" } else { "rejected" });
    let decided = state
        .store
        .decide_quota_request(&QuotaDecision {
            id: request.id,
            approve,
            decided_by: principal.username().to_string(),
            comment,
            now: (state.clock)(),
        })
        .await
        .map_err(|e| match e {
            StoreError::Conflict(message) => ApiError::conflict("already_decided", message),
            other => other.into(),
        })?;
    Ok(Json(view(state, &decided).await?))
}

/// Approve a pending request (admins): the team's limits become the requested ones at once.
#[utoipa::path(post, path = "/api/v1/quota-requests/{id}/approve", tag = "teams",
    params(("id" = i64, Path)), request_body = DecisionRequest,
    responses((status = 200, body = QuotaRequestDto), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn approve(
    State(state): State<ApiState>,
    principal: Principal,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<QuotaRequestDto>> {
    decide(&state, &principal, &id, true, &body).await
}

/// Reject a pending request (admins); a comment saying why is required.
#[utoipa::path(post, path = "/api/v1/quota-requests/{id}/reject", tag = "teams",
    params(("id" = i64, Path)), request_body = DecisionRequest,
    responses((status = 200, body = QuotaRequestDto), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub async fn reject(
    State(state): State<ApiState>,
    principal: Principal,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<QuotaRequestDto>> {
    decide(&state, &principal, &id, false, &body).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decision_comments() {
        let long = "x".repeat(MAX_QUOTA_REASON_LEN + 1);
        // (comment, approve, Ok(recorded) or Err(field))
        let cases = [
            (None, true, Ok(None)),
            (Some("  "), true, Ok(None)),
            (Some(" fine "), true, Ok(Some("fine"))),
            (Some("no budget"), false, Ok(Some("no budget"))),
            (None, false, Err("comment")),
            (Some(""), false, Err("comment")),
            (Some(" \n"), false, Err("comment")),
            (Some(long.as_str()), true, Err("comment")),
        ];
        for (comment, approve, want) in cases {
            let got = decision_comment(comment, approve).map_err(|e| e.field.unwrap_or_default());
            let want = want.map(|c| c.map(String::from)).map_err(String::from);
            assert_eq!(got, want, "{comment:?} approve={approve}");
        }
    }
}
