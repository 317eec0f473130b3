//! The audit trail of the API: a middleware records every state-changing request (who, what,
//! which object, when, from where, outcome), and `GET /audit` reads it back, filtered.
//!
//! The action and object come from the matched route (`POST /apps/{name}/scale` on `web` is
//! `apps.scale` on `apps/web`); handlers add what only they know (the object's team, a
//! better object name, the actor of a login) through the request's [`AuditSlot`].

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use berth_core::accounts::TeamAction;
use berth_core::audit::{AuditEntry, AuditOutcome};
use berth_store::AuditQuery;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::ApiState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorMessage};
use crate::extract::ApiQuery;

/// Most records one page returns.
const MAX_PAGE: u32 = 500;
/// Records returned when no limit is given.
const DEFAULT_PAGE: u32 = 100;

pub use berth_operations::{AuditNote, AuditSlot};

/// The request's [`AuditSlot`] as an extractor (a detached one when the request is not
/// audited).
#[derive(Debug, Clone, Default)]
pub struct RequestAudit(pub AuditSlot);

impl RequestAudit {
    /// The slot of `request`.
    pub fn of(request: &Request) -> AuditSlot {
        request
            .extensions()
            .get::<AuditSlot>()
            .cloned()
            .unwrap_or_default()
    }
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for RequestAudit {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(RequestAudit(
            parts
                .extensions
                .get::<AuditSlot>()
                .cloned()
                .unwrap_or_default(),
        ))
    }
}

/// Literals that end a `POST` route and name an action rather than a collection.
const ACTION_LITERALS: &[&str] = &[
    "acme",
    "approve",
    "cancel",
    "deploy",
    "disable",
    "enable",
    "gc",
    "login",
    "logout",
    "password",
    "register",
    "reject",
    "retention",
    "rollback",
    "scale",
    "token",
    "webhook",
];

/// `apps.scale` for `POST /apps/{name}/scale`, `apps.create` for `POST /apps`: the route's
/// literal segments, then a verb for the method unless the last literal is an action.
pub fn action_name(method: &Method, route: &str) -> String {
    let segments: Vec<&str> = route.split('/').filter(|s| !s.is_empty()).collect();
    let literals: Vec<&str> = segments
        .iter()
        .copied()
        .filter(|s| !s.starts_with('{'))
        .collect();
    let last_literal = segments.last().filter(|s| !s.starts_with('{'));
    let verb = match *method {
        Method::POST => match last_literal {
            Some(last) if ACTION_LITERALS.contains(last) => None,
            Some(_) => Some("create"),
            None => None,
        },
        Method::PUT => Some("put"),
        Method::PATCH => Some("update"),
        Method::DELETE => Some("delete"),
        _ => Some("read"),
    };
    let mut name = literals.join(".");
    if let Some(verb) = verb {
        name.push('.');
        name.push_str(verb);
    }
    name
}

/// `apps/web` for `/apps/{name}/scale` matched by `/apps/web/scale`: the last parameter with
/// the literal before it.
pub fn object_name(route: &str, path: &str) -> String {
    let route: Vec<&str> = route.split('/').filter(|s| !s.is_empty()).collect();
    let path: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let mut object = String::new();
    for (i, segment) in route.iter().enumerate() {
        if segment.starts_with("{*") {
            object = format!(
                "{}/{}",
                route[..i].last().copied().unwrap_or(""),
                path.get(i..).map(|rest| rest.join("/")).unwrap_or_default()
            );
            break;
        }
        if segment.starts_with('{') {
            object = format!(
                "{}/{}",
                route[..i].last().copied().unwrap_or(""),
                path.get(i).copied().unwrap_or("")
            );
        }
    }
    object
}

fn outcome_of(status: u16) -> AuditOutcome {
    match status {
        200..=399 => AuditOutcome::Success,
        401 | 403 | 429 => AuditOutcome::Denied,
        _ => AuditOutcome::Failed,
    }
}

/// Middleware (a route layer, so the matched route is known): records every request that is
/// not a read, whatever its outcome.
pub async fn record(State(state): State<ApiState>, mut request: Request, next: Next) -> Response {
    if matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    ) {
        return next.run(request).await;
    }
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| path.clone());
    let route = route.strip_prefix("/api/v1").unwrap_or(&route).to_string();
    let source = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "unknown".to_string(), |info| info.0.ip().to_string());
    let slot = AuditSlot::default();
    request.extensions_mut().insert(slot.clone());
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let error = response
        .extensions()
        .get::<ErrorMessage>()
        .map(|m| m.0.clone());
    let note = slot.note();
    let path = path.strip_prefix("/api/v1").unwrap_or(&path);
    let entry = AuditEntry {
        id: 0,
        at: (state.clock)(),
        actor: note.actor.unwrap_or_else(|| "anonymous".into()),
        action: action_name(&method, &route),
        team: note.team,
        object: note.object.unwrap_or_else(|| object_name(&route, path)),
        source,
        outcome: outcome_of(status),
        status,
        detail: error.or(note.detail).unwrap_or_default(),
    };
    if let Err(error) = state.store.append_audit(&entry).await {
        tracing::warn!(%error, action = %entry.action, "could not record the audit entry");
    }
    response
}

/// What a registry request changes, as (action, repository, reference): a manifest pushed
/// (`registry.push`) or anything deleted (`registry.delete`); `None` for reads and for blob
/// uploads (a push is recorded once, by its manifest).
pub fn registry_change(method: &Method, path: &str) -> Option<(&'static str, String, String)> {
    let rest = path.strip_prefix("/v2/")?;
    let action = match *method {
        Method::PUT => berth_core::audit::REGISTRY_PUSH,
        Method::DELETE => berth_core::audit::REGISTRY_DELETE,
        _ => return None,
    };
    for kind in ["/manifests/", "/blobs/"] {
        if let Some(at) = rest.rfind(kind) {
            if kind == "/blobs/" && action == "registry.push" {
                return None;
            }
            return Some((
                action,
                rest[..at].to_string(),
                rest[at + kind.len()..].to_string(),
            ));
        }
    }
    None
}

/// Middleware on the registry: records image pushes and deletions with who made them (the
/// authorizer already decided; this only writes the trail).
pub async fn record_registry(
    State(state): State<ApiState>,
    request: Request,
    next: Next,
) -> Response {
    let Some((action, repository, reference)) =
        registry_change(request.method(), request.uri().path())
    else {
        return next.run(request).await;
    };
    let credentials = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(berth_registry::Credentials::from_header);
    let source = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "unknown".to_string(), |info| info.0.ip().to_string());
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let actor = match (&credentials, status) {
        (_, 401) | (None, _) => "anonymous".to_string(),
        (Some(berth_registry::Credentials::Basic { username, .. }), _) => username.clone(),
        (Some(berth_registry::Credentials::Bearer(token)), _) => {
            let now = (state.clock)();
            match state.auth.by_token(token, now, AuditSlot::default()).await {
                Ok(Some(principal)) => principal.actor.user.username,
                _ => "anonymous".to_string(),
            }
        }
    };
    let separator = if reference.starts_with("sha256:") {
        '@'
    } else {
        ':'
    };
    let entry = AuditEntry {
        id: 0,
        at: (state.clock)(),
        actor,
        action: action.to_string(),
        team: Some(berth_core::image_ref::team_of_repository(&repository).to_string()),
        object: format!("images/{repository}{separator}{reference}"),
        source,
        outcome: outcome_of(status),
        status,
        detail: String::new(),
    };
    if let Err(error) = state.store.append_audit(&entry).await {
        tracing::warn!(%error, action = %entry.action, "could not record the audit entry");
    }
    response
}

/// Filters of the audit log.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    /// Only this team's records (team owners must name a team they own, unless they own one).
    pub team: Option<String>,
    /// Only this user's actions.
    pub actor: Option<String>,
    /// Only actions starting with this (e.g. `apps.` or `users.disable`).
    pub action: Option<String>,
    /// Only this object, e.g. `apps/web`.
    pub object: Option<String>,
    /// `success`, `denied` or `failed`.
    pub outcome: Option<String>,
    /// Only records at or after this time (unix ms).
    pub since: Option<i64>,
    /// Only records before this time (unix ms).
    pub until: Option<i64>,
    /// Page backwards: only records with a smaller id.
    pub before_id: Option<i64>,
    /// At most this many records (default 100, at most 500).
    pub limit: Option<u32>,
}

/// One audit record.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditDto {
    pub id: i64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub team: Option<String>,
    pub object: String,
    pub source: String,
    /// `success`, `denied` or `failed`.
    pub outcome: String,
    /// The HTTP status of the attempt; 0 when no HTTP request carried it (a pipeline's
    /// deploy, whose `source` is `pipeline <team>/<name>`).
    pub status: u16,
    pub detail: String,
}

fn outcome_str(outcome: AuditOutcome) -> &'static str {
    match outcome {
        AuditOutcome::Success => "success",
        AuditOutcome::Denied => "denied",
        AuditOutcome::Failed => "failed",
    }
}

impl From<AuditEntry> for AuditDto {
    fn from(entry: AuditEntry) -> Self {
        AuditDto {
            id: entry.id,
            at: entry.at,
            actor: entry.actor,
            action: entry.action,
            team: entry.team,
            object: entry.object,
            source: entry.source,
            outcome: outcome_str(entry.outcome).into(),
            status: entry.status,
            detail: entry.detail,
        }
    }
}

/// Read the audit log, newest first: admins see every record, team owners their team's.
#[utoipa::path(operation_id = "list_audit", get, path = "/api/v1/audit", tag = "accounts", params(AuditParams),
    responses((status = 200, body = [AuditDto]), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list(
    State(state): State<ApiState>,
    principal: Principal,
    ApiQuery(params): ApiQuery<AuditParams>,
) -> ApiResult<Json<Vec<AuditDto>>> {
    let team = match params.team {
        Some(team) => {
            principal.require(&team, TeamAction::ManageTeam, &format!("team {team}"))?;
            Some(team)
        }
        None if principal.is_admin() => None,
        None => {
            let owned: Vec<&String> = principal
                .roles
                .keys()
                .filter(|team| principal.can(team, TeamAction::ManageTeam))
                .collect();
            match owned.as_slice() {
                [only] => Some((*only).clone()),
                [] => {
                    return Err(ApiError::forbidden(
                        "only admins and team owners may read the audit log",
                    ));
                }
                _ => {
                    return Err(ApiError::field(
                        "team",
                        "is required: you own several teams; name one",
                    ));
                }
            }
        }
    };
    let outcome = match params.outcome.as_deref() {
        None => None,
        Some("success") => Some(AuditOutcome::Success),
        Some("denied") => Some(AuditOutcome::Denied),
        Some("failed") => Some(AuditOutcome::Failed),
        Some(_) => {
            return Err(ApiError::field(
                "outcome",
                "must be success, denied or failed",
            ));
        }
    };
    let limit = params.limit.unwrap_or(DEFAULT_PAGE);
    if limit == 0 || limit > MAX_PAGE {
        return Err(ApiError::field(
            "limit",
            format!("must be between 1 and {MAX_PAGE}"),
        ));
    }
    let query = AuditQuery {
        team,
        actor: params.actor,
        action_prefix: params.action,
        object: params.object,
        outcome,
        since: params.since,
        until: params.until,
        before_id: params.before_id,
        limit,
    };
    let entries = state.store.list_audit(&query).await?;
    Ok(Json(entries.into_iter().map(AuditDto::from).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_are_named_after_the_route() {
        let cases = [
            (Method::POST, "/apps", "apps.create"),
            (Method::DELETE, "/apps/{name}", "apps.delete"),
            (Method::POST, "/apps/{name}/scale", "apps.scale"),
            (Method::POST, "/apps/{name}/deploy", "apps.deploy"),
            (Method::POST, "/users/{username}/disable", "users.disable"),
            (Method::PATCH, "/users/{username}", "users.update"),
            (Method::POST, "/auth/login", "auth.login"),
            (Method::POST, "/me/tokens", "me.tokens.create"),
            (Method::DELETE, "/me/tokens/{id}", "me.tokens.delete"),
            (
                Method::PUT,
                "/teams/{team}/members/{username}",
                "teams.members.put",
            ),
            (
                Method::POST,
                "/teams/{team}/quota-requests",
                "teams.quota-requests.create",
            ),
            (
                Method::POST,
                "/quota-requests/{id}/approve",
                "quota-requests.approve",
            ),
            (Method::POST, "/registry/gc", "registry.gc"),
            (Method::DELETE, "/images/{*reference}", "images.delete"),
            (Method::PUT, "/settings", "settings.put"),
            (Method::POST, "/builds/{id}/cancel", "builds.cancel"),
            (
                Method::POST,
                "/pipelines/{team}/{name}/webhook",
                "pipelines.webhook",
            ),
            (
                Method::POST,
                "/pipelines/{team}/{name}/builds",
                "pipelines.builds.create",
            ),
        ];
        for (method, route, want) in cases {
            assert_eq!(action_name(&method, route), want, "{method} {route}");
        }
    }

    /// Every name the middleware can give a change (each non-read operation of the API) is in
    /// the published list the CLI's help shows.
    #[test]
    fn every_audited_route_is_in_the_action_list() {
        use utoipa::OpenApi;
        let doc: serde_json::Value =
            serde_json::from_str(&crate::ApiDoc::openapi().to_json().unwrap()).unwrap();
        let mut missing = Vec::new();
        let mut produced = std::collections::BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            let Some(route) = path.strip_prefix("/api/v1") else {
                continue;
            };
            for method in item.as_object().unwrap().keys() {
                let method: Method = method.to_uppercase().parse().unwrap();
                if matches!(method, Method::GET | Method::HEAD | Method::OPTIONS) {
                    continue;
                }
                let action = action_name(&method, route);
                if !berth_core::audit::ACTIONS.contains(&action.as_str()) {
                    missing.push(format!("{method} {route}: {action}"));
                }
                produced.insert(action);
            }
        }
        assert!(
            missing.is_empty(),
            "not in ACTIONS:\n{}",
            missing.join("\n")
        );
        for action in berth_core::audit::ACTIONS {
            let other = [
                berth_core::audit::REGISTRY_PUSH,
                berth_core::audit::REGISTRY_DELETE,
                berth_core::audit::GIT_PUSH,
                berth_core::audit::APPS_EXEC,
            ];
            assert!(
                produced.contains(*action) || other.contains(action),
                "{action} is listed but no route produces it"
            );
        }
    }

    /// docs/ACCOUNTS-API.md lists every action and quotes the quota refusal as it is sent.
    #[test]
    fn the_accounts_doc_matches_what_the_server_says() {
        let doc = include_str!("../../../docs/ACCOUNTS-API.md").replace('\n', " ");
        for action in berth_core::audit::ACTIONS {
            assert!(
                doc.contains(&format!("`{action}`")),
                "{action} missing from the doc"
            );
        }
        let refusal = crate::error::quota_refusal(
            "web",
            &[berth_core::quota::QuotaExceeded {
                resource: berth_core::quota::QuotaResource::Instances,
                asked: 3,
                in_use: 8,
                limit: 10,
            }],
        );
        assert!(
            doc.contains(&format!("`\"{}\"`", refusal.message)),
            "the doc does not quote: {}",
            refusal.message
        );
    }

    #[test]
    fn objects_are_the_last_parameter_with_its_kind() {
        let cases = [
            ("/apps/{name}/scale", "/apps/web/scale", "apps/web"),
            ("/apps", "/apps", ""),
            ("/me/tokens/{id}", "/me/tokens/7", "tokens/7"),
            (
                "/teams/{team}/members/{username}",
                "/teams/a/members/bob",
                "members/bob",
            ),
            (
                "/images/{*reference}",
                "/images/team/app:1",
                "images/team/app:1",
            ),
        ];
        for (route, path, want) in cases {
            assert_eq!(object_name(route, path), want, "{path}");
        }
    }

    #[test]
    fn registry_changes_are_manifest_pushes_and_deletions() {
        let change = |a: &'static str, r: &str, f: &str| Some((a, r.to_string(), f.to_string()));
        let cases = [
            (
                Method::PUT,
                "/v2/red/app/manifests/1",
                change("registry.push", "red/app", "1"),
            ),
            (
                Method::DELETE,
                "/v2/red/app/manifests/sha256:ab",
                change("registry.delete", "red/app", "sha256:ab"),
            ),
            (
                Method::DELETE,
                "/v2/red/app/blobs/sha256:ab",
                change("registry.delete", "red/app", "sha256:ab"),
            ),
            (Method::PUT, "/v2/red/app/blobs/uploads/abc", None),
            (Method::GET, "/v2/red/app/manifests/1", None),
            (Method::HEAD, "/v2/red/app/manifests/1", None),
            (Method::PUT, "/api/v1/apps", None),
        ];
        for (method, path, want) in cases {
            assert_eq!(registry_change(&method, path), want, "{method} {path}");
        }
    }

    #[test]
    fn outcomes_follow_the_status() {
        let cases = [
            (200, AuditOutcome::Success),
            (204, AuditOutcome::Success),
            (401, AuditOutcome::Denied),
            (403, AuditOutcome::Denied),
            (429, AuditOutcome::Denied),
            (400, AuditOutcome::Failed),
            (404, AuditOutcome::Failed),
            (409, AuditOutcome::Failed),
            (503, AuditOutcome::Failed),
        ];
        for (status, want) in cases {
            assert_eq!(outcome_of(status), want, "{status}");
        }
    }
}
