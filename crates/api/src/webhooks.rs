//! Push webhooks from GitHub, GitLab and Gitea: `POST /api/v1/pipelines/{team}/{name}/webhook`
//! checks a delivery against the pipeline's sealed secret and queues a build of the pushed commit.
//!
//! The route is public (forges hold no Berth credentials): the shared secret is the
//! authentication. An unknown pipeline and a pipeline without a secret answer the same 404; a
//! delivery that fails verification answers 401 `webhook_unauthorized` and builds nothing.
//! A verified delivery that asks for no build (a ping, another event, a tag, a deleted branch,
//! a branch the pipeline does not build, a redelivery) answers 200 saying why; a push to a
//! branch the pipeline builds answers 202 with the queued build. Once verified, the audit
//! record's actor is `webhook:<forge>` (not a valid username, so never mistaken for one).

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, post};
use berth_core::pipeline::{Build, BuildTrigger, Pipeline};
use berth_pipeline::BranchPattern;
use berth_pipeline::webhook::{self, Headers, Provider, PushEvent, WebhookError, WebhookEvent};
use berth_store::DeliveryBuild;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ApiState;
use crate::audit::RequestAudit;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::ApiPath as Path;
use crate::pipeline_dto::BuildDto;

/// The largest payload accepted (GitHub caps its own at 25 MB, but a push that large lists
/// thousands of commits, of which a build needs one).
pub const MAX_BODY: usize = 5 * 1024 * 1024;

/// The shortest webhook secret accepted.
pub const MIN_SECRET_LEN: usize = 16;
/// The longest webhook secret accepted.
pub const MAX_SECRET_LEN: usize = 256;

/// The webhook route with its body limit.
pub fn route() -> MethodRouter<crate::ApiState> {
    post(receive).layer(DefaultBodyLimit::max(MAX_BODY))
}

/// What is wrong with a webhook secret about to be stored, if anything. It must be printable
/// ASCII without surrounding spaces because GitLab sends it back as a header value, and headers
/// are trimmed.
pub fn secret_problem(secret: &str) -> Option<String> {
    let len = secret.chars().count();
    if len < MIN_SECRET_LEN {
        return Some(format!(
            "must be at least {MIN_SECRET_LEN} characters (or empty to remove it)"
        ));
    }
    if len > MAX_SECRET_LEN {
        return Some(format!("must be at most {MAX_SECRET_LEN} characters"));
    }
    if !secret.bytes().all(|b| (b' '..=b'~').contains(&b)) {
        return Some("must be printable ASCII (GitLab sends it as a header)".into());
    }
    if secret.starts_with(' ') || secret.ends_with(' ') {
        return Some("must not start or end with a space".into());
    }
    None
}

/// A verified delivery that started no build.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WebhookIgnoredDto {
    /// Why nothing was built: a ping, another event, a tag, a deleted branch, a branch the
    /// pipeline does not build, or a delivery already received.
    pub ignored: String,
    /// For a delivery already received: the build the first delivery started (absent when
    /// that build has since been pruned or deleted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_id: Option<i64>,
}

/// What a verified delivery asks of a pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Decision {
    /// Nothing to build, and why.
    Ignore(String),
    Build(PushEvent),
}

/// Whether a pipeline building `branch_pattern` builds for `event`.
fn decide(event: WebhookEvent, branch_pattern: &str) -> Decision {
    match event {
        WebhookEvent::Ping => Decision::Ignore("ping: the webhook works".into()),
        WebhookEvent::Ignored(reason) => Decision::Ignore(reason),
        WebhookEvent::Push(push) => {
            if BranchPattern::new(branch_pattern).is_ok_and(|p| p.matches(&push.branch)) {
                Decision::Build(push)
            } else {
                Decision::Ignore(format!(
                    "branch {} does not match the pipeline's branch pattern {branch_pattern}",
                    push.branch
                ))
            }
        }
    }
}

fn ignored(reason: String, build_id: Option<i64>) -> Response {
    (
        StatusCode::OK,
        Json(WebhookIgnoredDto {
            ignored: reason,
            build_id,
        }),
    )
        .into_response()
}

/// The error of a body that could not be read (413 beyond [`MAX_BODY`]).
fn body_error(rejection: BytesRejection) -> ApiError {
    let status = rejection.status();
    let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
        "payload_too_large"
    } else {
        "invalid_body"
    };
    ApiError::new(status, code, rejection.body_text())
}

/// The pipeline and its webhook secret in the clear; the same 404 whether the pipeline is
/// missing or has no secret, so a caller without the secret learns nothing more.
async fn pipeline_with_secret(
    state: &ApiState,
    team: &str,
    name: &str,
) -> ApiResult<(Pipeline, String)> {
    let pipeline = state.store.get_pipeline(team, name).await?;
    let Some((pipeline, sealed)) = pipeline.and_then(|p| {
        let sealed = p.sealed_webhook_secret.clone()?;
        Some((p, sealed))
    }) else {
        return Err(ApiError::not_found(format!(
            "webhook of pipeline {team}/{name}"
        )));
    };
    let secret = state
        .secrets
        .open(&sealed, &Pipeline::webhook_secret_context(team, name))
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "secret_unreadable",
                format!(
                    "the webhook secret of pipeline {team}/{name}: {e}; set it again (webhook_secret)"
                ),
            )
        })?;
    Ok((pipeline, secret))
}

/// Receive a push webhook from GitHub, GitLab or Gitea (public: its secret authenticates it).
///
/// GitHub and Gitea sign the body with the pipeline's webhook secret
/// (`X-Hub-Signature-256: sha256=<hex>`, `X-Gitea-Signature: <hex>`), GitLab sends the secret
/// itself (`X-Gitlab-Token`). A push to a branch the pipeline builds queues a build of the
/// pushed commit (202); anything else verified answers 200 saying why nothing was built,
/// including a delivery id already received (`X-GitHub-Delivery`, `X-Gitea-Delivery`,
/// GitLab's `Idempotency-Key` or `X-Gitlab-Event-UUID`).
#[utoipa::path(operation_id = "receive_webhook", post, path = "/api/v1/pipelines/{team}/{name}/webhook", tag = "pipelines",
    security(()),
    params(("team" = String, Path), ("name" = String, Path),
        ("X-GitHub-Event" = Option<String>, Header, description = "GitHub's event (`push`, `ping`, …)"),
        ("X-GitHub-Delivery" = Option<String>, Header, description = "GitHub's delivery id"),
        ("X-Hub-Signature-256" = Option<String>, Header, description = "`sha256=<hex HMAC-SHA256 of the body>` (GitHub; Gitea too)"),
        ("X-Gitlab-Event" = Option<String>, Header, description = "GitLab's event (`Push Hook`, …)"),
        ("X-Gitlab-Token" = Option<String>, Header, description = "GitLab: the secret itself"),
        ("X-Gitlab-Event-UUID" = Option<String>, Header, description = "GitLab's delivery id (`Idempotency-Key` preferred when sent)"),
        ("X-Gitea-Event" = Option<String>, Header, description = "Gitea's event (`push`, …)"),
        ("X-Gitea-Delivery" = Option<String>, Header, description = "Gitea's delivery id"),
        ("X-Gitea-Signature" = Option<String>, Header, description = "Gitea: hex HMAC-SHA256 of the body")),
    request_body(content = Object, content_type = "application/json", description = "The forge's own event payload"),
    responses(
        (status = 200, body = WebhookIgnoredDto, description = "Verified; nothing built, and why"),
        (status = 202, body = BuildDto, description = "A build of the pushed commit is queued"),
        (status = 400, body = ErrorBody, description = "Not a GitHub, GitLab or Gitea webhook, or an unreadable push payload"),
        (status = 401, body = ErrorBody, description = "Missing or wrong signature or token (`webhook_unauthorized`)"),
        (status = 404, body = ErrorBody, description = "No such pipeline, or it has no webhook secret"),
        (status = 413, body = ErrorBody, description = "The payload is larger than 5 MiB")))]
pub async fn receive(
    State(state): State<ApiState>,
    RequestAudit(audit): RequestAudit,
    Path((team, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    audit.set_object(format!("pipelines/{team}/{name}"));
    let body = body.map_err(body_error)?;
    let (pipeline, secret) = pipeline_with_secret(&state, &team, &name).await?;
    audit.set_team(&team);
    let pairs: Vec<(&str, &str)> = headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?)))
        .collect();
    let headers = Headers(&pairs);
    let provider = Provider::detect(&headers).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "webhook_unknown_provider",
            WebhookError::UnknownProvider.to_string(),
        )
    })?;
    webhook::verify(provider, &headers, &body, &secret).map_err(|e| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "webhook_unauthorized",
            format!("{} webhook refused: {e}", provider.as_str()),
        )
    })?;
    audit.set_actor(&format!("webhook:{}", provider.as_str()));
    let event = webhook::parse(provider, &headers, &body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "webhook_bad_payload",
            e.to_string(),
        )
    })?;
    let push = match decide(event, &pipeline.branch_pattern) {
        Decision::Ignore(reason) => {
            audit.set_detail(format!("ignored: {reason}"));
            return Ok(ignored(reason, None));
        }
        Decision::Build(push) => push,
    };
    let now = (state.clock)();
    let mut build = Build::queued(&team, &name, BuildTrigger::Webhook, provider.as_str(), now);
    let non_empty = |s: String| Some(s).filter(|s| !s.is_empty());
    build.branch = Some(push.branch.clone());
    build.commit = Some(push.commit.clone());
    build.author = non_empty(push.author.clone());
    build.author_email = push.author_email.clone().and_then(non_empty);
    build.message = non_empty(push.message.clone());
    // The delivery is recorded with its build in one transaction: a delivery whose build could
    // not be created is not remembered, so the forge's redelivery builds.
    // A signed delivery can be captured and sent again under a new delivery id: what it
    // builds is bound to its content. A webhook builds a pushed commit at most once per
    // pipeline, and never one that a push it built on that branch started from.
    let delivery = provider.delivery_id(&headers);
    let commit = push.commit.clone();
    let build = match state
        .store
        .create_build_for_delivery(&build, delivery, push.before.as_deref(), now)
        .await?
    {
        DeliveryBuild::Created(build) => build,
        DeliveryBuild::Redelivered { build_id } => {
            let delivery = delivery.unwrap_or_default();
            let reason = match build_id {
                Some(id) => {
                    format!("delivery {delivery} was already received; it started build {id}")
                }
                None => format!("delivery {delivery} was already received"),
            };
            audit.set_detail(format!("ignored: {reason}"));
            return Ok(ignored(reason, build_id));
        }
        DeliveryBuild::AlreadyBuilt { build_id } => {
            let reason = match build_id {
                Some(id) => format!(
                    "commit {commit} was already built by a webhook of this pipeline (build {id}); \
                     build it again by hand or roll back instead"
                ),
                None => format!(
                    "commit {commit} was already built by a webhook of this pipeline; build it \
                     again by hand or roll back instead"
                ),
            };
            audit.set_detail(format!("ignored: {reason}"));
            return Ok(ignored(reason, build_id));
        }
        DeliveryBuild::Superseded => {
            let reason = format!(
                "commit {commit} is older than a push of branch {} already built by a webhook \
                 of this pipeline",
                push.branch
            );
            audit.set_detail(format!("ignored: {reason}"));
            return Ok(ignored(reason, None));
        }
    };
    audit.set_detail(format!(
        "build {} of {} at {}",
        build.id,
        build.branch.as_deref().unwrap_or_default(),
        build.commit.as_deref().unwrap_or_default()
    ));
    state.builds.enqueue(pipeline, build.clone());
    Ok((StatusCode::ACCEPTED, Json(BuildDto::from(&build))).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c";

    fn push(branch: &str) -> PushEvent {
        PushEvent {
            branch: branch.into(),
            commit: SHA.into(),
            author: "Ada".into(),
            author_email: None,
            message: "Fix".into(),
            repository: None,
            before: None,
        }
    }

    #[test]
    fn decisions() {
        let cases = [
            (
                WebhookEvent::Push(push("main")),
                "main",
                Decision::Build(push("main")),
            ),
            (
                WebhookEvent::Push(push("release/1.2")),
                "release/*",
                Decision::Build(push("release/1.2")),
            ),
            (
                WebhookEvent::Push(push("feature/x")),
                "main",
                Decision::Ignore(
                    "branch feature/x does not match the pipeline's branch pattern main".into(),
                ),
            ),
            (
                WebhookEvent::Push(push("release/1.2/hotfix")),
                "release/*",
                Decision::Ignore(
                    "branch release/1.2/hotfix does not match the pipeline's branch pattern release/*"
                        .into(),
                ),
            ),
            (
                WebhookEvent::Ping,
                "main",
                Decision::Ignore("ping: the webhook works".into()),
            ),
            (
                WebhookEvent::Ignored("refs/tags/v1 is not a branch".into()),
                "*",
                Decision::Ignore("refs/tags/v1 is not a branch".into()),
            ),
        ];
        for (event, pattern, want) in cases {
            assert_eq!(decide(event.clone(), pattern), want, "{event:?} {pattern}");
        }
    }

    #[test]
    fn secret_problems() {
        let long = "x".repeat(MAX_SECRET_LEN);
        let too_long = "x".repeat(MAX_SECRET_LEN + 1);
        let cases: [(&str, Option<&str>); 8] = [
            ("0123456789abcdef", None),
            ("It's a Secret to Everybody", None),
            (&long, None),
            (
                "0123456789abcde",
                Some("must be at least 16 characters (or empty to remove it)"),
            ),
            (&too_long, Some("must be at most 256 characters")),
            (
                "0123456789abcdef\n",
                Some("must be printable ASCII (GitLab sends it as a header)"),
            ),
            (
                "geheimnisvolles-wörtchen",
                Some("must be printable ASCII (GitLab sends it as a header)"),
            ),
            (
                " 0123456789abcdef",
                Some("must not start or end with a space"),
            ),
        ];
        for (secret, want) in cases {
            assert_eq!(secret_problem(secret).as_deref(), want, "{secret:?}");
        }
    }
}
