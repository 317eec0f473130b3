//! Handlers for apps: create, read, deploy, scale, rollback, delete, history, events, logs.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use berth_core::accounts::TeamAction;
use berth_core::{App, Revision, Template};
use berth_engine::LogOptions;
use berth_operations::{CurrentApp, NewApp};
use berth_store::{EventQuery, ListedApp};
use futures::StreamExt;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::ApiState;
use crate::auth::Principal;
use crate::build_events::StreamAccess;
use crate::changes;
use crate::dto::{
    AppChanges, AppDto, EventDto, RevisionDto, RollbackRequest, RolloutDto, ScaleRequest,
};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath as Path, ApiQuery};

/// The app and its current template, when the caller may do `action` on it (404 for apps of
/// teams the caller cannot read, exactly as for missing ones).
async fn load(
    state: &ApiState,
    principal: &Principal,
    name: &str,
    action: TeamAction,
) -> ApiResult<(App, Template)> {
    let CurrentApp { app, template } = state.platform.app(principal, name, action).await?;
    let template = as_seen_by(principal, &app.team, template);
    Ok((app, template))
}

/// A template as `principal` may see it: sensitive variables redacted unless they can
/// deploy to `team`.
fn as_seen_by(principal: &Principal, team: &str, template: Template) -> Template {
    revision_as_seen_by(principal, team, template, &Default::default())
}

/// A revision's template as `principal` may see it: also redacting what the app marks
/// sensitive now (`current`), which an older revision may not have.
fn revision_as_seen_by(
    principal: &Principal,
    team: &str,
    template: Template,
    current: &std::collections::BTreeSet<String>,
) -> Template {
    if principal.can(team, TeamAction::Deploy) {
        template
    } else {
        template.redacted_also(current)
    }
}

async fn app_view(state: &ApiState, app: &App, template: &Template) -> AppDto {
    let addresses = state.platform.addresses(app);
    let traffic = state.platform.traffic(app);
    let (instances, engine_error) = match state.controller.instances(app).await {
        Ok(instances) => (instances, None),
        Err(error) => (Vec::new(), Some(error.to_string())),
    };
    AppDto::new(
        app,
        template,
        &instances,
        engine_error,
        addresses,
        traffic.as_ref(),
        state.platform.tcp.listen,
        state.platform.now(),
    )
}

/// A page of apps with their instances.
pub(crate) struct Listing {
    pub listed: Vec<ListedApp>,
    /// Where the next page starts.
    pub next: Option<String>,
    pub instances: std::collections::HashMap<String, Vec<berth_controller::InstanceStatus>>,
    /// Set when the engine did not answer (no instances then).
    pub engine_error: Option<String>,
}

/// The apps of `teams` (every team's when `None`), page by page from `after`, with their
/// instances from one engine listing.
pub(crate) async fn list_with_instances(
    state: &ApiState,
    teams: Option<Vec<String>>,
    after: Option<String>,
    limit: Option<u32>,
) -> ApiResult<Listing> {
    let (listed, next) =
        berth_operations::apps::list_apps(state.store.as_ref(), teams, after, limit).await?;
    let apps: Vec<App> = listed.iter().map(|l| l.app.clone()).collect();
    let (instances, engine_error) = match state.controller.instances_of_all(&apps).await {
        Ok(instances) => (instances, None),
        Err(error) => (Default::default(), Some(error.to_string())),
    };
    Ok(Listing {
        listed,
        next,
        instances,
        engine_error,
    })
}

/// Which apps to list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// At most this many apps (1 to 1000); without it, every app. When more remain, the
    /// response has a `Link: <…>; rel="next"` header.
    pub limit: Option<u32>,
    /// Only apps whose name sorts after this (the last name of the previous page).
    pub after: Option<String>,
}

/// List apps the caller can read, ordered by name.
#[utoipa::path(get, path = "/api/v1/apps", tag = "apps", params(ListParams),
    responses((status = 200, body = [AppDto]), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn list_apps(
    State(state): State<ApiState>,
    principal: Principal,
    ApiQuery(params): ApiQuery<ListParams>,
) -> ApiResult<Response> {
    if params.limit.is_some_and(|limit| limit == 0 || limit > 1000) {
        return Err(ApiError::field("limit", "must be between 1 and 1000"));
    }
    let Listing {
        listed,
        next,
        mut instances,
        engine_error,
    } = list_with_instances(
        &state,
        principal.readable_teams(),
        params.after.clone(),
        params.limit,
    )
    .await?;
    let now = state.platform.now();
    let views: Vec<AppDto> = listed
        .into_iter()
        .map(|ListedApp { app, template }| {
            let app_instances = instances.remove(&app.name).unwrap_or_default();
            AppDto::new(
                &app,
                &as_seen_by(&principal, &app.team, template.unwrap_or_default()),
                &app_instances,
                engine_error.clone(),
                state.platform.addresses(&app),
                state.platform.traffic(&app).as_ref(),
                state.platform.tcp.listen,
                now,
            )
        })
        .collect();
    let mut response = Json(views).into_response();
    if let (Some(after), Some(limit)) = (next, params.limit) {
        let link = format!("</api/v1/apps?limit={limit}&after={after}>; rel=\"next\"");
        if let Ok(value) = header::HeaderValue::from_str(&link) {
            response.headers_mut().insert(header::LINK, value);
        }
    }
    Ok(response)
}

/// Create an app; its first revision rolls out at once.
#[utoipa::path(post, path = "/api/v1/apps", tag = "apps", request_body = AppChanges,
    responses((status = 201, body = AppDto), (status = 400, body = ErrorBody),
        (status = 403, description = "the caller's role may not create apps, or the team's quota refuses", body = ErrorBody),
        (status = 404, description = "no team of that name the caller can read", body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub async fn create_app(
    State(state): State<ApiState>,
    principal: Principal,
    ApiJson(request): ApiJson<AppChanges>,
) -> ApiResult<Response> {
    let name = request
        .name
        .clone()
        .ok_or_else(|| ApiError::field("name", "is required"))?;
    let new = NewApp {
        name,
        team: request.team.clone(),
        reason: request.reason.clone(),
        spec: changes::to_change(&request)?,
    };
    created(&state, state.platform.create_app(&principal, new).await?).await
}

/// The 201 answer to an app creation (the API's, or from a deployment template).
pub(crate) async fn created(state: &ApiState, created: CurrentApp) -> ApiResult<Response> {
    let view = app_view(state, &created.app, &created.template).await;
    Ok((
        StatusCode::CREATED,
        [(
            header::LOCATION,
            format!("/api/v1/apps/{}", created.app.name),
        )],
        Json(view),
    )
        .into_response())
}

/// Show an app with its revision, rollout and instances.
#[utoipa::path(get, path = "/api/v1/apps/{name}", tag = "apps", params(("name" = String, Path)),
    responses((status = 200, body = AppDto), (status = 404, body = ErrorBody)))]
pub async fn get_app(
    State(state): State<ApiState>,
    principal: Principal,
    Path(name): Path<String>,
) -> ApiResult<Json<AppDto>> {
    let (app, template) = load(&state, &principal, &name, TeamAction::Read).await?;
    Ok(Json(app_view(&state, &app, &template).await))
}

/// How an app is deleted.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeleteAppParams {
    /// Also delete the volumes the app mounts, with their data (refused, 409
    /// `volume_in_use`, while another app mounts one of them). Default: they stay.
    #[serde(default)]
    pub delete_volumes: bool,
}

/// Delete an app: its containers are stopped and removed. Its volumes stay unless
/// `delete_volumes=true`.
#[utoipa::path(delete, path = "/api/v1/apps/{name}", tag = "apps", params(("name" = String, Path), DeleteAppParams),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete_app(
    State(state): State<ApiState>,
    principal: Principal,
    Path(name): Path<String>,
    ApiQuery(params): ApiQuery<DeleteAppParams>,
) -> ApiResult<StatusCode> {
    state
        .platform
        .delete_app(&principal, &name, params.delete_volumes)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deploy changes: a change to what runs creates a revision and rolls it out.
#[utoipa::path(post, path = "/api/v1/apps/{name}/deploy", tag = "apps", params(("name" = String, Path)), request_body = AppChanges,
    responses((status = 200, body = AppDto), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn deploy(
    State(state): State<ApiState>,
    principal: Principal,
    Path(name): Path<String>,
    ApiJson(request): ApiJson<AppChanges>,
) -> ApiResult<Json<AppDto>> {
    if request.name.as_ref().is_some_and(|n| *n != name) {
        return Err(ApiError::field("name", "cannot be changed"));
    }
    if request.team.is_some() {
        return Err(ApiError::field("team", "cannot be changed by a deploy"));
    }
    let deployed = state
        .platform
        .deploy_app(
            &principal,
            &name,
            &changes::to_change(&request)?,
            request.reason.as_deref(),
        )
        .await?;
    Ok(Json(
        app_view(&state, &deployed.app, &deployed.template).await,
    ))
}

/// Scale to a number of instances (no new revision).
#[utoipa::path(post, path = "/api/v1/apps/{name}/scale", tag = "apps", params(("name" = String, Path)), request_body = ScaleRequest,
    responses((status = 200, body = AppDto), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn scale(
    State(state): State<ApiState>,
    principal: Principal,
    Path(name): Path<String>,
    ApiJson(request): ApiJson<ScaleRequest>,
) -> ApiResult<Json<AppDto>> {
    let scaled = state
        .platform
        .scale_app(&principal, &name, request.replicas)
        .await?;
    Ok(Json(app_view(&state, &scaled.app, &scaled.template).await))
}

/// Roll back to the previous revision or to a given kept one (performed as a rollout).
#[utoipa::path(post, path = "/api/v1/apps/{name}/rollback", tag = "apps", params(("name" = String, Path)), request_body = RollbackRequest,
    responses((status = 200, body = AppDto), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn rollback(
    State(state): State<ApiState>,
    principal: Principal,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Json<AppDto>> {
    // The body is optional: an empty one means "the previous revision".
    let request: RollbackRequest = crate::extract::optional_json(&body)?;
    let rolled_back = state
        .platform
        .rollback_app(
            &principal,
            &name,
            request.revision,
            request.reason.as_deref(),
        )
        .await?;
    Ok(Json(
        app_view(&state, &rolled_back.app, &rolled_back.template).await,
    ))
}

/// The latest rollout's status.
#[utoipa::path(get, path = "/api/v1/apps/{name}/rollout", tag = "apps", params(("name" = String, Path)),
    responses((status = 200, body = RolloutDto), (status = 404, body = ErrorBody)))]
pub async fn rollout_status(
    State(state): State<ApiState>,
    principal: Principal,
    Path(name): Path<String>,
) -> ApiResult<Json<RolloutDto>> {
    let (app, template) = load(&state, &principal, &name, TeamAction::Read).await?;
    let view = app_view(&state, &app, &template).await;
    Ok(Json(view.rollout))
}

/// The kept revisions, newest first.
#[utoipa::path(get, path = "/api/v1/apps/{name}/revisions", tag = "apps", params(("name" = String, Path)),
    responses((status = 200, body = [RevisionDto]), (status = 404, body = ErrorBody)))]
pub async fn list_revisions(
    State(state): State<ApiState>,
    principal: Principal,
    Path(name): Path<String>,
) -> ApiResult<Json<Vec<RevisionDto>>> {
    let (app, current) = load(&state, &principal, &name, TeamAction::Read).await?;
    let revisions = state.store.list_revisions(&name).await?;
    Ok(Json(
        revisions
            .iter()
            .map(|r| {
                let shown = Revision {
                    template: revision_as_seen_by(
                        &principal,
                        &app.team,
                        r.template.clone(),
                        &current.sensitive_env,
                    ),
                    ..r.clone()
                };
                RevisionDto::new(&shown, app.current_revision)
            })
            .collect(),
    ))
}

/// One kept revision.
#[utoipa::path(get, path = "/api/v1/apps/{name}/revisions/{number}", tag = "apps",
    params(("name" = String, Path), ("number" = u32, Path)),
    responses((status = 200, body = RevisionDto), (status = 404, body = ErrorBody)))]
pub async fn get_revision(
    State(state): State<ApiState>,
    principal: Principal,
    Path((name, number)): Path<(String, u32)>,
) -> ApiResult<Json<RevisionDto>> {
    let (app, current) = load(&state, &principal, &name, TeamAction::Read).await?;
    let revision = state
        .store
        .get_revision(&name, number)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("revision {number} of app {name}")))?;
    let shown = Revision {
        template: revision_as_seen_by(
            &principal,
            &app.team,
            revision.template,
            &current.sensitive_env,
        ),
        ..revision
    };
    Ok(Json(RevisionDto::new(&shown, app.current_revision)))
}

/// Which events to list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventsParams {
    /// Only events after this id (for polling).
    pub after: Option<i64>,
    /// At most this many (default 100, at most 1000).
    pub limit: Option<u32>,
}

/// The app's timeline: what Berth did and why.
#[utoipa::path(get, path = "/api/v1/apps/{name}/events", tag = "apps", params(("name" = String, Path), EventsParams),
    responses((status = 200, body = [EventDto]), (status = 404, body = ErrorBody)))]
pub async fn list_events(
    State(state): State<ApiState>,
    principal: Principal,
    Path(name): Path<String>,
    ApiQuery(params): ApiQuery<EventsParams>,
) -> ApiResult<Json<Vec<EventDto>>> {
    load(&state, &principal, &name, TeamAction::Read).await?;
    let limit = params.limit.unwrap_or(100);
    if limit == 0 || limit > 1000 {
        return Err(ApiError::field("limit", "must be between 1 and 1000"));
    }
    let events = state
        .store
        .list_events(
            &name,
            EventQuery {
                after_id: params.after,
                limit,
            },
        )
        .await?;
    Ok(Json(events.iter().map(EventDto::from).collect()))
}

/// Where to start a live event stream.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StreamParams {
    /// Only events after this id; default: only new events.
    pub after: Option<i64>,
}

/// How often a live event stream looks for new events.
const EVENT_POLL_INTERVAL: std::time::Duration = std::time::Duration::from_millis(500);

/// The app a live stream follows: its name, team and creation time. Names are reused (an app
/// deleted, another made under its name, maybe by another team), so a stream checks that the
/// app under the name is still this one before it sends anything of it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AppIdentity {
    name: String,
    team: String,
    created_at: berth_core::Millis,
}

impl AppIdentity {
    fn of(app: &App) -> Self {
        AppIdentity {
            name: app.name.clone(),
            team: app.team.clone(),
            created_at: app.created_at,
        }
    }

    /// Whether the app under the name is still this one (a store failure counts as no).
    async fn still_there(&self, state: &ApiState) -> bool {
        match state.store.get_app(&self.name).await {
            Ok(Some(app)) => AppIdentity::of(&app) == *self,
            Ok(None) => false,
            Err(error) => {
                tracing::warn!(%error, app = %self.name, "cannot check a followed app; ending the stream");
                false
            }
        }
    }
}

/// Whether a live stream of `app` may go on: the app is still the one followed and the
/// caller may still read its team.
async fn stream_may_go_on(state: &ApiState, app: &AppIdentity, access: &mut StreamAccess) -> bool {
    app.still_there(state).await && access.may_read(&app.team).await
}

/// The app's timeline, live: Server-Sent Events, one `EventDto` (JSON) per message, with the
/// event id as SSE id and its kind as SSE event name. Reconnect with `after` (or the
/// `Last-Event-ID` header) to resume. The stream follows the app it was opened on, not its
/// name: it ends when that app is deleted, and when the caller may no longer read its team
/// (checked before every batch of events and every few seconds).
#[utoipa::path(get, path = "/api/v1/apps/{name}/events/stream", tag = "apps", params(("name" = String, Path), StreamParams),
    responses((status = 200, content_type = "text/event-stream", body = EventDto), (status = 404, body = ErrorBody)))]
pub async fn stream_events(
    State(state): State<ApiState>,
    principal: Principal,
    Path(name): Path<String>,
    headers: axum::http::HeaderMap,
    ApiQuery(params): ApiQuery<StreamParams>,
) -> ApiResult<Response> {
    let (app, _) = load(&state, &principal, &name, TeamAction::Read).await?;
    let followed = AppIdentity::of(&app);
    let access = StreamAccess::of(&state, &principal);
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let start = match params.after.or(resume) {
        Some(after) => after,
        None => {
            let latest = state
                .store
                .list_events(
                    &name,
                    EventQuery {
                        after_id: None,
                        limit: 1,
                    },
                )
                .await?;
            latest.last().map_or(0, |e| e.id)
        }
    };
    let stream = futures::stream::unfold(
        (state, name, start, followed, access),
        |(state, name, mut after, followed, mut access)| async move {
            loop {
                let listed = state
                    .store
                    .list_events(
                        &name,
                        EventQuery {
                            after_id: Some(after),
                            limit: 100,
                        },
                    )
                    .await;
                // Checked after reading: events read before the app was replaced are its own.
                let has_events = listed.as_ref().is_ok_and(|events| !events.is_empty());
                if (has_events || access.due())
                    && !stream_may_go_on(&state, &followed, &mut access).await
                {
                    return None;
                }
                match listed {
                    Ok(events) if !events.is_empty() => {
                        after = events.last().map_or(after, |e| e.id);
                        let messages: Vec<
                            Result<axum::response::sse::Event, std::convert::Infallible>,
                        > = events
                            .iter()
                            .map(|e| {
                                let dto = EventDto::from(e);
                                Ok(axum::response::sse::Event::default()
                                    .id(e.id.to_string())
                                    .event(dto.kind.clone())
                                    .json_data(&dto)
                                    .unwrap_or_default())
                            })
                            .collect();
                        return Some((
                            futures::stream::iter(messages),
                            (state, name, after, followed, access),
                        ));
                    }
                    Ok(_) => tokio::time::sleep(EVENT_POLL_INTERVAL).await,
                    // The app is gone or the store failed: end the stream; the client reconnects.
                    Err(_) => return None,
                }
            }
        },
    )
    .flatten();
    Ok(crate::build_events::sse_response(stream))
}

/// How to read logs.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct LogsParams {
    /// Keep the stream open and send new lines as they come.
    pub follow: Option<bool>,
    /// Only the last N lines of each instance (default 100).
    pub tail: Option<u64>,
    /// Only this instance.
    pub instance: Option<String>,
}

/// The output of the app's instances as text, one line each, prefixed with the instance.
#[utoipa::path(get, path = "/api/v1/apps/{name}/logs", tag = "apps", params(("name" = String, Path), LogsParams),
    responses((status = 200, content_type = "text/plain", body = String), (status = 404, body = ErrorBody)))]
pub async fn logs(
    State(state): State<ApiState>,
    principal: Principal,
    Path(name): Path<String>,
    ApiQuery(params): ApiQuery<LogsParams>,
) -> ApiResult<Response> {
    let (app, _) = load(&state, &principal, &name, TeamAction::Read).await?;
    let mut instances = state.controller.instances(&app).await?;
    if let Some(only) = &params.instance {
        instances.retain(|i| &i.name == only);
        if instances.is_empty() {
            return Err(ApiError::not_found(format!(
                "instance {only} of app {name}"
            )));
        }
    }
    let follow = params.follow.unwrap_or(false);
    let options = LogOptions {
        follow,
        tail: Some(params.tail.unwrap_or(100)),
    };
    let (lines, receiver) = tokio::sync::mpsc::channel::<String>(256);
    let access = StreamAccess::of(&state, &principal);
    tokio::spawn(forward_logs(
        state.clone(),
        app,
        access,
        instances,
        params.instance.clone(),
        options,
        lines,
    ));
    let merged = tokio_stream::wrappers::ReceiverStream::new(receiver).map(Ok::<_, std::io::Error>);
    Ok((
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::HeaderName::from_static("x-accel-buffering"), "no"),
        ],
        Body::from_stream(merged),
    )
        .into_response())
}

/// How often a followed log stream looks for new instances (started by a rollout or a
/// replacement) to attach to.
const LOG_ATTACH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

/// Copies the instances' output into `lines`, prefixed with the instance name. When following,
/// instances that appear later are attached too; it ends when the client goes away, when the
/// app is deleted (another app under its name is never attached) and when the caller may no
/// longer read its team (checked every [`LOG_ATTACH_INTERVAL`]).
async fn forward_logs(
    state: ApiState,
    app: App,
    mut access: StreamAccess,
    mut instances: Vec<berth_controller::InstanceStatus>,
    only: Option<String>,
    options: LogOptions,
    lines: tokio::sync::mpsc::Sender<String>,
) {
    let followed = AppIdentity::of(&app);
    let mut attached = std::collections::HashSet::new();
    // The per-instance copiers, stopped with the stream (each holds a sender of `lines`).
    let mut copiers = tokio::task::JoinSet::new();
    loop {
        for instance in instances
            .iter()
            .filter(|i| only.as_ref().is_none_or(|o| *o == i.name))
        {
            if !attached.insert(instance.container_id.clone()) {
                continue;
            }
            let prefix = instance.name.clone();
            let mut stream = state.runtime.logs(&instance.container_id, options);
            let lines = lines.clone();
            copiers.spawn(async move {
                while let Some(line) = stream.next().await {
                    let text = match line {
                        Ok(line) => format!("{prefix} | {}\n", line.text.trim_end_matches('\n')),
                        Err(error) => format!("{prefix} | [berth: log stream ended: {error}]\n"),
                    };
                    if lines.send(text).await.is_err() {
                        return;
                    }
                }
            });
        }
        if !options.follow {
            // Every copier ends with its instance's log as it is now.
            while copiers.join_next().await.is_some() {}
            return;
        }
        tokio::select! {
            _ = lines.closed() => return,
            _ = tokio::time::sleep(LOG_ATTACH_INTERVAL) => {}
        }
        while copiers.try_join_next().is_some() {}
        let current = state.controller.instances(&app).await;
        // Checked after listing: instances listed before the app was replaced are its own.
        if !stream_may_go_on(&state, &followed, &mut access).await {
            // Dropping the set aborts the copiers, so the response ends.
            return;
        }
        match current {
            Ok(current) => instances = current,
            Err(error) => tracing::debug!(%error, "log follow: cannot list instances"),
        }
    }
}
