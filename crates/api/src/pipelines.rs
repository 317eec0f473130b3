//! Pipelines and their builds: configure a team's pipeline (git credentials sealed, never
//! answered), start a build by hand, list and inspect builds, cancel one, and read its log
//! (kept in `<data-dir>/builds/<id>.log`, followed live while the build runs).

use std::path::Component;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use berth_core::accounts::TeamAction;
use berth_core::pipeline::{Build, BuildTrigger, Pipeline, remote_origin};
use berth_pipeline::BranchPattern;
use berth_pipeline::branch::{is_commit_id, is_valid_branch};
use berth_store::BuildQuery;

use crate::ApiState;
use crate::auth::Principal;
use crate::build_events::{BuildFollower, StreamAccess, pause};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath as Path, ApiQuery};
use crate::pipeline_dto::{
    BuildDto, BuildLogParams, BuildRequest, BuildsParams, GitCredentialsDto, PipelineDto,
    PipelineRequest, PipelinesParams,
};
use berth_operations::builds::StoredCredentials;

/// The pipeline when the caller may do `action` in its team (404 when they cannot read it).
async fn pipeline_for(
    state: &ApiState,
    principal: &Principal,
    team: &str,
    name: &str,
    action: TeamAction,
) -> ApiResult<Pipeline> {
    let what = format!("pipeline {team}/{name}");
    principal.require(team, action, &what)?;
    principal
        .audit
        .set_object(format!("pipelines/{team}/{name}"));
    state
        .store
        .get_pipeline(team, name)
        .await?
        .ok_or_else(|| ApiError::not_found(&what))
}

/// The build when the caller may do `action` in its team (404 when they cannot read it).
pub(crate) async fn build_for(
    state: &ApiState,
    principal: &Principal,
    id: i64,
    action: TeamAction,
) -> ApiResult<Build> {
    let what = format!("build {id}");
    let build = state
        .store
        .get_build(id)
        .await?
        .filter(|b| principal.can_read(&b.team))
        .ok_or_else(|| ApiError::not_found(&what))?;
    principal.require(&build.team, action, &what)?;
    principal.audit.set_object(format!("builds/{id}"));
    Ok(build)
}

/// A path inside the repository: relative, no `..`.
fn check_inner_path(field: &str, path: &str) -> ApiResult<()> {
    let parsed = std::path::Path::new(path);
    if parsed.is_absolute()
        || parsed
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(ApiError::field(
            field,
            "must be a relative path inside the repository, without '..'",
        ));
    }
    Ok(())
}

/// The stored credentials a replace without credentials keeps, with the origin they are bound
/// to. Credentials go only to the origin (scheme, host, port) they were given for: when the new
/// address is elsewhere, the request must give them again (400 naming `credentials`). A
/// pipeline moved to its hosted repository (no address) keeps them, still bound to their origin.
fn kept_credentials(
    existing: Option<&Pipeline>,
    repository_url: &str,
) -> ApiResult<(Option<String>, Option<String>)> {
    let Some(existing) = existing.filter(|p| p.sealed_credentials.is_some()) else {
        return Ok((None, None));
    };
    let bound = existing.credentials_bound_origin();
    if !repository_url.is_empty() && remote_origin(repository_url) != bound {
        return Err(ApiError::field(
            "credentials",
            format!(
                "the stored credentials were given for {}; give the credentials again for the new host {}",
                bound.as_deref().unwrap_or("a local repository"),
                remote_origin(repository_url)
                    .as_deref()
                    .unwrap_or("(a local repository)")
            ),
        ));
    }
    Ok((existing.sealed_credentials.clone(), bound))
}

/// Seals the credentials given, or says what is wrong with them.
fn seal_credentials(
    state: &ApiState,
    team: &str,
    name: &str,
    credentials: &GitCredentialsDto,
) -> ApiResult<String> {
    let stored = match credentials {
        GitCredentialsDto {
            username: Some(username),
            password: Some(password),
            ssh_key: None,
            known_hosts: None,
        } if !username.is_empty() => StoredCredentials::Basic {
            username: username.clone(),
            password: password.clone(),
        },
        GitCredentialsDto {
            username: None,
            password: None,
            ssh_key: Some(key),
            known_hosts,
        } if !key.trim().is_empty() => StoredCredentials::SshKey {
            private_key: key.clone(),
            known_hosts: known_hosts.clone(),
        },
        _ => {
            return Err(ApiError::field(
                "credentials",
                "give either {username, password} or {ssh_key} (with optional known_hosts)",
            ));
        }
    };
    let plain = serde_json::to_string(&stored).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("cannot encode the credentials: {e}"),
        )
    })?;
    Ok(state
        .secrets
        .seal(&plain, &Pipeline::credentials_context(team, name)))
}

/// The pipelines of the teams the caller can read (one team's with `team`), each with its
/// newest build.
#[utoipa::path(operation_id = "list_pipelines", get, path = "/api/v1/pipelines", tag = "pipelines", params(PipelinesParams),
    responses((status = 200, body = [PipelineDto])))]
pub async fn list(
    State(state): State<ApiState>,
    principal: Principal,
    ApiQuery(params): ApiQuery<PipelinesParams>,
) -> ApiResult<Json<Vec<PipelineDto>>> {
    let pipelines = state.store.list_pipelines(params.team.as_deref()).await?;
    let mut answered = Vec::new();
    for pipeline in pipelines.iter().filter(|p| principal.can_read(&p.team)) {
        answered.push(with_last_build(&state, pipeline).await?);
    }
    Ok(Json(answered))
}

/// The pipeline as answered by `GET`, with its newest build.
async fn with_last_build(state: &ApiState, pipeline: &Pipeline) -> ApiResult<PipelineDto> {
    let newest = state
        .store
        .list_builds(&BuildQuery {
            team: Some(pipeline.team.clone()),
            pipeline: Some(pipeline.name.clone()),
            before_id: None,
            limit: 1,
        })
        .await?;
    let mut dto = PipelineDto::from(pipeline);
    dto.last_build = newest.first().map(BuildDto::from);
    Ok(dto)
}

/// One pipeline (never its credentials).
#[utoipa::path(operation_id = "get_pipeline", get, path = "/api/v1/pipelines/{team}/{name}", tag = "pipelines",
    params(("team" = String, Path), ("name" = String, Path)),
    responses((status = 200, body = PipelineDto), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<ApiState>,
    principal: Principal,
    Path((team, name)): Path<(String, String)>,
) -> ApiResult<Json<PipelineDto>> {
    let pipeline = pipeline_for(&state, &principal, &team, &name, TeamAction::Read).await?;
    Ok(Json(with_last_build(&state, &pipeline).await?))
}

/// Create or replace a pipeline (role allowed to deploy). Git credentials and the webhook
/// secret are sealed with the server's key and never shown again; a replace without them keeps
/// the stored ones, and an empty `webhook_secret` removes it (webhooks are then refused).
#[utoipa::path(operation_id = "put_pipeline", put, path = "/api/v1/pipelines/{team}/{name}", tag = "pipelines",
    params(("team" = String, Path), ("name" = String, Path)), request_body = PipelineRequest,
    responses((status = 200, body = PipelineDto), (status = 201, body = PipelineDto),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn put(
    State(state): State<ApiState>,
    principal: Principal,
    Path((team, name)): Path<(String, String)>,
    ApiJson(request): ApiJson<PipelineRequest>,
) -> ApiResult<Response> {
    principal.require(
        &team,
        TeamAction::Deploy,
        &format!("pipeline {team}/{name}"),
    )?;
    principal
        .audit
        .set_object(format!("pipelines/{team}/{name}"));
    if state.store.get_team(&team).await?.is_none() {
        return Err(ApiError::not_found(format!("team {team}")));
    }
    if let Some(problem) = berth_core::validate::name_problem(&name) {
        return Err(ApiError::field("name", problem));
    }
    let repository_url = request.repository_url.clone().unwrap_or_default();
    if !repository_url.is_empty() {
        berth_pipeline::git::validate_remote_url(&repository_url)
            .map_err(|e| ApiError::field("repository_url", e.to_string()))?;
        // A local path or file:// reads the server's own disk, where every team's hosted
        // repositories live: only admins may build from there.
        if remote_origin(&repository_url).is_none() && !principal.is_admin() {
            return Err(ApiError::field(
                "repository_url",
                "must be a network address (https://, http://, ssh:// or user@host:path); \
                 local paths and file:// are for admins (push to the pipeline's own git \
                 endpoint instead)",
            ));
        }
    }
    let branch_pattern = BranchPattern::new(request.branch_pattern.as_deref().unwrap_or("main"))
        .map_err(|e| ApiError::field("branch_pattern", e.to_string()))?;
    let dockerfile = request.dockerfile.clone().unwrap_or_default();
    check_inner_path("dockerfile", &dockerfile)?;
    let context = request.context.clone().unwrap_or_default();
    check_inner_path("context", &context)?;
    let target = &request.target_repository;
    if !target.starts_with(&format!("{team}/")) {
        return Err(ApiError::field(
            "target_repository",
            format!("must be a repository of team {team}: {team}/<name>"),
        ));
    }
    berth_registry::RepoName::parse(target)
        .map_err(|e| ApiError::field("target_repository", e.to_string()))?;
    let test_command = request.test_command.clone().unwrap_or_default();
    if test_command
        .first()
        .is_some_and(|program| program.is_empty())
    {
        return Err(ApiError::field("test_command", "the program is empty"));
    }
    if let Some(app) = &request.deploy_app {
        match state.store.get_app(app).await? {
            Some(found) if found.team == team => {}
            _ => {
                return Err(ApiError::field(
                    "deploy_app",
                    format!("no app {app} in team {team}"),
                ));
            }
        }
    }
    if let Some(secret) = request.webhook_secret.as_deref().filter(|s| !s.is_empty())
        && let Some(problem) = crate::webhooks::secret_problem(secret)
    {
        return Err(ApiError::field("webhook_secret", problem));
    }
    let existing = state.store.get_pipeline(&team, &name).await?;
    let (sealed_credentials, credentials_origin) = match &request.credentials {
        Some(credentials) => (
            Some(seal_credentials(&state, &team, &name, credentials)?),
            remote_origin(&repository_url),
        ),
        None => kept_credentials(existing.as_ref(), &repository_url)?,
    };
    let sealed_webhook_secret = match request.webhook_secret.as_deref() {
        Some("") => None,
        Some(secret) => Some(
            state
                .secrets
                .seal(secret, &Pipeline::webhook_secret_context(&team, &name)),
        ),
        None => existing
            .as_ref()
            .and_then(|p| p.sealed_webhook_secret.clone()),
    };
    let now = (state.clock)();
    let pipeline = Pipeline {
        team: team.clone(),
        name: name.clone(),
        repository_url,
        branch_pattern: branch_pattern.as_str().to_owned(),
        dockerfile,
        context,
        build_args: request.build_args.clone().unwrap_or_default(),
        test_command,
        target_repository: target.clone(),
        deploy_app: request.deploy_app.clone(),
        sealed_credentials,
        credentials_origin,
        sealed_webhook_secret,
        created_by: existing
            .as_ref()
            .map_or_else(|| principal.username().to_owned(), |p| p.created_by.clone()),
        created_at: existing.as_ref().map_or(now, |p| p.created_at),
        updated_at: now,
    };
    state.store.put_pipeline(&pipeline).await?;
    let status = crate::put_status(existing.is_some());
    Ok((status, Json(PipelineDto::from(&pipeline))).into_response())
}

/// Delete a pipeline with its builds, their logs and the git repository Berth hosts for it;
/// running builds are cancelled.
#[utoipa::path(operation_id = "delete_pipeline", delete, path = "/api/v1/pipelines/{team}/{name}", tag = "pipelines",
    params(("team" = String, Path), ("name" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(state): State<ApiState>,
    principal: Principal,
    Path((team, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    pipeline_for(&state, &principal, &team, &name, TeamAction::Deploy).await?;
    let builds = state
        .store
        .list_builds(&BuildQuery {
            team: Some(team.clone()),
            pipeline: Some(name.clone()),
            before_id: None,
            limit: u32::MAX,
        })
        .await?;
    for build in &builds {
        state.builds.cancel(build.id);
    }
    if !state.store.delete_pipeline(&team, &name).await? {
        return Err(ApiError::not_found(format!("pipeline {team}/{name}")));
    }
    for build in &builds {
        let _ = std::fs::remove_file(state.build_logs_dir.join(format!("{}.log", build.id)));
    }
    let hosted = crate::git_http::hosted_repository(&state.git_dir, &team, &name);
    if let Err(e) = std::fs::remove_dir_all(&hosted)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(error = %e, path = %hosted.display(), "cannot remove the pipeline's git repository");
    }
    Ok(StatusCode::NO_CONTENT)
}

/// "Build now": queue a build of a branch (default: the pipeline's pattern when it names one
/// branch), optionally at an exact commit.
#[utoipa::path(post, path = "/api/v1/pipelines/{team}/{name}/builds", tag = "pipelines",
    params(("team" = String, Path), ("name" = String, Path)), request_body = BuildRequest,
    responses((status = 202, body = BuildDto), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn start_build(
    State(state): State<ApiState>,
    principal: Principal,
    Path((team, name)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let pipeline = pipeline_for(&state, &principal, &team, &name, TeamAction::Deploy).await?;
    // The body is optional: none builds the default branch's head.
    let request: BuildRequest = if body.iter().all(u8::is_ascii_whitespace) {
        BuildRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", e.to_string()))?
    };
    let branch = match request.branch {
        Some(branch) if is_valid_branch(&branch) => branch,
        Some(_) => return Err(ApiError::field("branch", "not a valid branch name")),
        None if is_valid_branch(&pipeline.branch_pattern) => pipeline.branch_pattern.clone(),
        None => {
            return Err(ApiError::field(
                "branch",
                format!(
                    "the pipeline builds {}; name the branch to build",
                    pipeline.branch_pattern
                ),
            ));
        }
    };
    if let Some(commit) = &request.commit
        && !is_commit_id(commit)
    {
        return Err(ApiError::field("commit", "must be a full commit id"));
    }
    let build = state
        .builds
        .queue(
            pipeline,
            BuildTrigger::Manual,
            principal.username(),
            branch,
            request.commit,
        )
        .await?;
    Ok((StatusCode::ACCEPTED, Json(BuildDto::from(&build))).into_response())
}

/// Builds of the pipelines the caller can read, newest first.
#[utoipa::path(get, path = "/api/v1/builds", tag = "pipelines", params(BuildsParams),
    responses((status = 200, body = [BuildDto])))]
pub async fn list_builds(
    State(state): State<ApiState>,
    principal: Principal,
    ApiQuery(params): ApiQuery<BuildsParams>,
) -> ApiResult<Json<Vec<BuildDto>>> {
    if params.pipeline.is_some() && params.team.is_none() {
        return Err(ApiError::field("team", "give the team of the pipeline"));
    }
    let builds = state
        .store
        .list_builds(&BuildQuery {
            team: params.team.clone(),
            pipeline: params.pipeline.clone(),
            before_id: params.before,
            limit: params.limit.unwrap_or(50).clamp(1, 500),
        })
        .await?;
    Ok(Json(
        builds
            .iter()
            .filter(|b| principal.can_read(&b.team))
            .map(BuildDto::from)
            .collect(),
    ))
}

/// One build with its steps.
#[utoipa::path(get, path = "/api/v1/builds/{id}", tag = "pipelines", params(("id" = i64, Path)),
    responses((status = 200, body = BuildDto), (status = 404, body = ErrorBody)))]
pub async fn get_build(
    State(state): State<ApiState>,
    principal: Principal,
    Path(id): Path<i64>,
) -> ApiResult<Json<BuildDto>> {
    let build = build_for(&state, &principal, id, TeamAction::Read).await?;
    Ok(Json(BuildDto::from(&build)))
}

/// Cancel a queued or running build (it ends `cancelled`; nothing after the running step
/// happens).
#[utoipa::path(post, path = "/api/v1/builds/{id}/cancel", tag = "pipelines", params(("id" = i64, Path)),
    responses((status = 202, body = BuildDto), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn cancel_build(
    State(state): State<ApiState>,
    principal: Principal,
    Path(id): Path<i64>,
) -> ApiResult<Response> {
    let build = build_for(&state, &principal, id, TeamAction::Deploy).await?;
    if build.status.is_terminal() || !state.builds.cancel(id) {
        return Err(ApiError::conflict(
            "build_ended",
            format!("build {id} has ended ({})", build.status.as_str()),
        ));
    }
    Ok((StatusCode::ACCEPTED, Json(BuildDto::from(&build))).into_response())
}

/// The build's log as text; with `follow=true` the stream stays open until the build ends.
#[utoipa::path(get, path = "/api/v1/builds/{id}/logs", tag = "pipelines",
    params(("id" = i64, Path), BuildLogParams),
    responses((status = 200, content_type = "text/plain", body = String), (status = 404, body = ErrorBody)))]
pub async fn build_logs(
    State(state): State<ApiState>,
    principal: Principal,
    Path(id): Path<i64>,
    ApiQuery(params): ApiQuery<BuildLogParams>,
) -> ApiResult<Response> {
    let build = build_for(&state, &principal, id, TeamAction::Read).await?;
    let follow = params.follow.unwrap_or(false);
    let (chunks, receiver) = tokio::sync::mpsc::channel::<Vec<u8>>(64);
    let access = StreamAccess::of(&state, &principal);
    tokio::spawn(forward_log(state, build.team, access, id, follow, chunks));
    let stream = tokio_stream::StreamExt::map(
        tokio_stream::wrappers::ReceiverStream::new(receiver),
        Ok::<_, std::io::Error>,
    );
    Ok((
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::HeaderName::from_static("x-accel-buffering"), "no"),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

/// Copies the log file into `chunks`; when following, waits for more until the build ends,
/// and ends early once the caller may no longer read the build's `team`.
async fn forward_log(
    state: ApiState,
    team: String,
    mut access: StreamAccess,
    id: i64,
    follow: bool,
    chunks: tokio::sync::mpsc::Sender<Vec<u8>>,
) {
    let mut follower = BuildFollower::new(&state, id, 0);
    loop {
        if access.due() && !access.may_read(&team).await {
            return;
        }
        let look = follower.look().await;
        let more_to_read = look.more_to_read();
        // Without following: the log as it is now, read to its end.
        let done = if follow {
            look.complete()
        } else {
            !more_to_read
        };
        if !look.appended.is_empty() && chunks.send(look.appended).await.is_err() {
            return;
        }
        if done || !pause(more_to_read, &chunks).await {
            return;
        }
    }
}
