//! Handlers for apps: create, read, deploy, scale, rollback, delete, history, events, logs.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use berth_core::accounts::TeamAction;
use berth_core::validate::{MAX_REPLICAS, validate_name, validate_spec};
use berth_core::{App, AppSpec, Event, EventKind, Revision, Rollout, Template};
use berth_engine::LogOptions;
use berth_store::{EventQuery, StoreError};
use futures::StreamExt;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::ApiState;
use crate::auth::Principal;
use crate::build_events::StreamAccess;
use crate::changes;
use crate::dto::{
    AppChanges, AppDto, EventDto, InstanceDto, RevisionDto, RollbackRequest, RolloutDto,
    ScaleRequest,
};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath as Path, ApiQuery};
use crate::images;
use crate::quotas;

/// Attempts at an optimistic update before giving up.
const UPDATE_ATTEMPTS: usize = 5;

/// The app and its current template, when the caller may do `action` on it (404 for apps of
/// teams the caller cannot read, exactly as for missing ones).
async fn load(
    state: &ApiState,
    principal: &Principal,
    name: &str,
    action: TeamAction,
) -> ApiResult<(App, Template)> {
    let what = format!("app {name}");
    let app = state
        .store
        .get_app(name)
        .await?
        .ok_or_else(|| ApiError::not_found(&what))?;
    principal.require(&app.team, action, &what)?;
    let revision = state
        .store
        .get_revision(name, app.current_revision)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!("revision {} of app {name}", app.current_revision))
        })?;
    Ok((app, revision.template))
}

async fn app_view(state: &ApiState, app: &App, template: &Template) -> AppDto {
    match state.controller.instances(app).await {
        Ok(instances) => AppDto::new(
            app,
            template,
            instances.iter().map(InstanceDto::from).collect(),
            None,
        ),
        Err(error) => AppDto::new(app, template, Vec::new(), Some(error.to_string())),
    }
}

/// List apps.
#[utoipa::path(get, path = "/api/v1/apps", tag = "apps",
    responses((status = 200, body = [AppDto]), (status = 401, body = ErrorBody)))]
pub async fn list_apps(
    State(state): State<ApiState>,
    principal: Principal,
) -> ApiResult<Json<Vec<AppDto>>> {
    let mut apps = state.store.list_apps().await?;
    apps.retain(|app| principal.can_read(&app.team));
    let (mut instances, engine_error) = match state.controller.instances_of_all(&apps).await {
        Ok(instances) => (instances, None),
        Err(error) => (Default::default(), Some(error.to_string())),
    };
    let mut views = Vec::with_capacity(apps.len());
    for app in &apps {
        let revision = state
            .store
            .get_revision(&app.name, app.current_revision)
            .await?;
        let template = revision.map(|r| r.template).unwrap_or_default();
        let app_instances = instances.remove(&app.name).unwrap_or_default();
        views.push(AppDto::new(
            app,
            &template,
            app_instances.iter().map(InstanceDto::from).collect(),
            engine_error.clone(),
        ));
    }
    Ok(Json(views))
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
    create(&state, &principal, request).await
}

/// Creates an app from a creation request (the API's, or a rendered deployment template),
/// checking the caller's role and the team's quota; answers 201 with the app.
pub(crate) async fn create(
    state: &ApiState,
    principal: &Principal,
    request: AppChanges,
) -> ApiResult<Response> {
    let name = request
        .name
        .clone()
        .ok_or_else(|| ApiError::field("name", "is required"))?;
    validate_name("name", &name)?;
    if request.image.is_none() {
        return Err(ApiError::field("image", "is required"));
    }
    let team = team_for_new_app(principal, request.team.as_deref())?;
    validate_name("team", &team)?;
    principal.require(&team, TeamAction::Deploy, &format!("team {team}"))?;
    principal.audit.set_object(format!("apps/{name}"));
    let mut spec = AppSpec::default();
    changes::apply(&request, &mut spec);
    validate_spec(&name, &spec)?;
    images::require_pull(state, principal, &spec.template.image)?;
    let _quota_lock = state.team_locks.lock(&team).await;
    let budget = quotas::budget(state, &team, None).await?;
    budget.require_limits(&spec.template.resources)?;
    budget.admit(
        Default::default(),
        berth_core::quota::app_usage(spec.replicas, &spec.template.resources),
    )?;
    let now = (state.clock)();
    let app = App {
        name: name.clone(),
        team,
        replicas: spec.replicas,
        strategy: spec.strategy.clone(),
        dependencies: spec.dependencies.clone(),
        current_revision: 1,
        stable_revision: None,
        latest_revision: 1,
        rollout: Rollout::start(1, "first rollout", now),
        next_ordinal: 1,
        created_at: now,
        updated_at: now,
        version: 1,
    };
    let reason = request
        .reason
        .clone()
        .unwrap_or_else(|| "create".to_string());
    let revision = Revision {
        app: name.clone(),
        number: 1,
        template: spec.template.clone(),
        created_at: now,
        created_by: principal.username().to_string(),
        reason,
    };
    state
        .store
        .create_app(&app, &revision)
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => ApiError::new(
                StatusCode::CONFLICT,
                "already_exists",
                format!("name: an app called {name} already exists"),
            ),
            other => other.into(),
        })?;
    state
        .record(vec![
            Event::new(
                &name,
                now,
                EventKind::AppCreated,
                format!("app {name} created with {} replicas", app.replicas),
            )
            .param("replicas", app.replicas),
            Event::new(
                &name,
                now,
                EventKind::RevisionCreated,
                format!("revision 1: image {}", spec.template.image),
            )
            .revision(1),
            Event::new(
                &name,
                now,
                EventKind::RolloutStarted,
                "rolling out revision 1",
            )
            .revision(1),
        ])
        .await;
    state.controller.wake(&name);
    let view = app_view(state, &app, &spec.template).await;
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, format!("/api/v1/apps/{name}"))],
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

/// Delete an app: its containers are stopped and removed, nothing else is touched.
#[utoipa::path(delete, path = "/api/v1/apps/{name}", tag = "apps", params(("name" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_app(
    State(state): State<ApiState>,
    principal: Principal,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    load(&state, &principal, &name, TeamAction::Deploy).await?;
    if !state.store.delete_app(&name).await? {
        return Err(ApiError::not_found(format!("app {name}")));
    }
    tracing::info!(app = %name, "app deleted");
    if let Err(error) = state.controller.remove_instances(&name).await {
        // The reconciler removes them once the engine answers again.
        tracing::warn!(%error, app = %name, "containers of a deleted app could not be removed yet");
        state.controller.wake(&name);
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Runs `change` on a fresh copy of the app until the optimistic update succeeds.
/// Checks the caller's right to change the app, and that the change fits the team's quota.
async fn modify<F>(
    state: &ApiState,
    principal: &Principal,
    name: &str,
    mut change: F,
) -> ApiResult<(App, Template)>
where
    F: FnMut(&mut App, &Template, i64) -> ApiResult<Modification>,
{
    for _ in 0..UPDATE_ATTEMPTS {
        let (mut app, template) = load(state, principal, name, TeamAction::Deploy).await?;
        let _quota_lock = state.team_locks.lock(&app.team).await;
        let budget = quotas::budget(state, &app.team, Some(name)).await?;
        let before = quotas::steady(&app, &template.resources);
        let previous_revision = app.current_revision;
        let now = (state.clock)();
        let modification = change(&mut app, &template, now)?;
        match &modification {
            Modification::Unchanged => {}
            Modification::NewRevision(revision, _) => {
                images::require_pull(state, principal, &revision.template.image)?;
                let resources = &revision.template.resources;
                budget.require_limits(resources)?;
                let peak = quotas::larger(&template.resources, resources);
                budget.admit(
                    before,
                    quotas::rollout_peak(app.replicas, app.strategy.max_surge, &peak),
                )?;
            }
            Modification::Settings(_) if app.current_revision != previous_revision => {
                // A rollback: the target revision's limits count from now on.
                let target = state
                    .store
                    .get_revision(name, app.current_revision)
                    .await?
                    .map(|r| r.template.resources)
                    .unwrap_or_default();
                budget.admit(before, quotas::steady(&app, &target))?;
            }
            Modification::Settings(_) => {
                budget.admit(before, quotas::steady(&app, &template.resources))?;
            }
        }
        app.updated_at = now;
        let (result, events, template) = match modification {
            Modification::Unchanged => return Ok((app, template)),
            Modification::Settings(events) => {
                (state.store.update_app(&app).await, events, template)
            }
            Modification::NewRevision(revision, events) => {
                let template = revision.template.clone();
                (
                    state
                        .store
                        .add_revision(&app, &revision, state.revision_history)
                        .await,
                    events,
                    template,
                )
            }
        };
        match result {
            Ok(stored) => {
                state.record(events).await;
                state.controller.wake(name);
                return Ok((stored, template));
            }
            Err(StoreError::Conflict(_)) => continue,
            Err(error) => return Err(error.into()),
        }
    }
    Err(ApiError::new(
        StatusCode::CONFLICT,
        "conflict",
        format!("app {name} is changing too fast; try again"),
    ))
}

/// What a modification did.
enum Modification {
    Unchanged,
    Settings(Vec<Event>),
    NewRevision(Box<Revision>, Vec<Event>),
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
    let (app, template) = modify(&state, &principal, &name, |app, template, now| {
        let mut spec = app.spec(template);
        changes::apply(&request, &mut spec);
        validate_spec(&name, &spec)?;
        let mut events = Vec::new();
        if spec.replicas != app.replicas {
            events.push(
                Event::new(
                    &name,
                    now,
                    EventKind::Scaled,
                    format!(
                        "scaled from {} to {} instances",
                        app.replicas, spec.replicas
                    ),
                )
                .param("from", app.replicas)
                .param("to", spec.replicas),
            );
        }
        let settings_changed = spec.replicas != app.replicas
            || spec.strategy != app.strategy
            || spec.dependencies != app.dependencies;
        app.replicas = spec.replicas;
        app.strategy = spec.strategy.clone();
        app.dependencies = spec.dependencies.clone();
        if spec.template == *template {
            return Ok(if settings_changed {
                Modification::Settings(events)
            } else {
                Modification::Unchanged
            });
        }
        let number = app.latest_revision + 1;
        let reason = request
            .reason
            .clone()
            .unwrap_or_else(|| changes::describe(&request));
        app.latest_revision = number;
        app.current_revision = number;
        app.rollout = Rollout::start(number, reason.clone(), now);
        principal
            .audit
            .set_detail(format!("revision {number}: {reason}"));
        events.push(
            Event::new(
                &name,
                now,
                EventKind::RevisionCreated,
                format!("revision {number}: {reason}"),
            )
            .revision(number),
        );
        events.push(
            Event::new(
                &name,
                now,
                EventKind::RolloutStarted,
                format!("rolling out revision {number}"),
            )
            .revision(number),
        );
        let revision = Revision {
            app: name.clone(),
            number,
            template: spec.template,
            created_at: now,
            created_by: principal.username().to_string(),
            reason,
        };
        Ok(Modification::NewRevision(Box::new(revision), events))
    })
    .await?;
    Ok(Json(app_view(&state, &app, &template).await))
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
    if request.replicas > MAX_REPLICAS {
        return Err(ApiError::field(
            "replicas",
            format!("must be at most {MAX_REPLICAS}"),
        ));
    }
    let (app, template) = modify(&state, &principal, &name, |app, _, now| {
        if app.replicas == request.replicas {
            return Ok(Modification::Unchanged);
        }
        let event = Event::new(
            &name,
            now,
            EventKind::Scaled,
            format!(
                "scaled from {} to {} instances",
                app.replicas, request.replicas
            ),
        )
        .param("from", app.replicas)
        .param("to", request.replicas);
        principal
            .audit
            .set_detail(format!("replicas {} to {}", app.replicas, request.replicas));
        app.replicas = request.replicas;
        Ok(Modification::Settings(vec![event]))
    })
    .await?;
    Ok(Json(app_view(&state, &app, &template).await))
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
    let kept: Vec<u32> = state
        .store
        .list_revisions(&name)
        .await?
        .iter()
        .map(|r| r.number)
        .collect();
    let (app, template) = modify(&state, &principal, &name, |app, _, now| {
        let target = match request.revision {
            Some(number) => number,
            None => previous_revision(app, &kept).ok_or_else(|| {
                ApiError::field("revision", "there is no earlier revision to roll back to")
            })?,
        };
        if !kept.contains(&target) {
            return Err(ApiError::field(
                "revision",
                format!("revision {target} does not exist or is no longer kept"),
            ));
        }
        if target == app.current_revision {
            return Err(ApiError::field(
                "revision",
                format!("revision {target} is already the current revision"),
            ));
        }
        let from = app.current_revision;
        app.current_revision = target;
        let reason = request
            .reason
            .clone()
            .unwrap_or_else(|| format!("rollback from revision {from} to {target}"));
        app.rollout = Rollout::start(target, reason.clone(), now);
        principal.audit.set_detail(format!(
            "rollback from revision {from} to revision {target}"
        ));
        Ok(Modification::Settings(vec![
            Event::new(&name, now, EventKind::RollbackStarted, reason)
                .revision(target)
                .param("from", from)
                .param("to", target),
        ]))
    })
    .await?;
    let template = state
        .store
        .get_revision(&name, app.current_revision)
        .await?
        .map_or(template, |r| r.template);
    Ok(Json(app_view(&state, &app, &template).await))
}

/// The revision "rollback" goes to by default: the last stable one when the app is not on
/// it, else the newest kept revision older than the current one.
fn previous_revision(app: &App, kept: &[u32]) -> Option<u32> {
    match app.stable_revision {
        Some(stable) if stable != app.current_revision && kept.contains(&stable) => Some(stable),
        _ => kept
            .iter()
            .copied()
            .filter(|n| *n < app.current_revision)
            .max(),
    }
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
    let (app, _) = load(&state, &principal, &name, TeamAction::Read).await?;
    let revisions = state.store.list_revisions(&name).await?;
    Ok(Json(
        revisions
            .iter()
            .map(|r| RevisionDto::new(r, app.current_revision))
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
    let (app, _) = load(&state, &principal, &name, TeamAction::Read).await?;
    let revision = state
        .store
        .get_revision(&name, number)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("revision {number} of app {name}")))?;
    Ok(Json(RevisionDto::new(&revision, app.current_revision)))
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
    let sse =
        axum::response::Sse::new(stream).keep_alive(axum::response::sse::KeepAlive::default());
    Ok((
        [(header::HeaderName::from_static("x-accel-buffering"), "no")],
        sse,
    )
        .into_response())
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

/// The team a new app goes to: the one named, or the caller's only team they may deploy to
/// (for an admin without teams, the `default` team).
fn team_for_new_app(principal: &Principal, named: Option<&str>) -> ApiResult<String> {
    if let Some(team) = named {
        return Ok(team.to_string());
    }
    let deployable: Vec<&String> = principal
        .roles
        .keys()
        .filter(|team| principal.can(team, TeamAction::Deploy))
        .collect();
    match deployable.as_slice() {
        [only] => Ok((*only).clone()),
        [] if principal.is_admin() => Ok(berth_core::DEFAULT_TEAM.to_string()),
        _ => Err(ApiError::field(
            "team",
            "is required: name the team that owns the app",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn previous_revision_prefers_stable() {
        let mut app = App {
            name: "web".into(),
            team: "default".into(),
            replicas: 1,
            strategy: Default::default(),
            dependencies: vec![],
            current_revision: 4,
            stable_revision: Some(4),
            latest_revision: 4,
            rollout: Rollout::start(4, "", 0),
            next_ordinal: 1,
            created_at: 0,
            updated_at: 0,
            version: 1,
        };
        let cases = [
            (Some(4), vec![1, 2, 3, 4], Some(3)),
            (Some(2), vec![1, 2, 3, 4], Some(2)),
            (None, vec![4], None),
            (Some(4), vec![2, 4], Some(2)),
            (Some(1), vec![3, 4], Some(3)),
        ];
        for (stable, kept, want) in cases {
            app.stable_revision = stable;
            assert_eq!(
                previous_revision(&app, &kept),
                want,
                "stable {stable:?} kept {kept:?}"
            );
        }
    }
}
