//! Berth's HTTP API: routes, authentication, the OpenAPI document, and the health endpoints.
//!
//! Only this crate knows JSON. Handlers translate between wire types ([`dto`]) and domain
//! types, call the store and wake the controller; every error leaves through [`error::ApiError`].

pub mod account_dto;
pub mod accounts;
pub mod apps;
pub mod audit;
pub mod auth;
pub mod autoscale;
pub mod build_events;
pub mod certificates;
pub mod changes;
pub mod compose;
pub mod console;
pub mod domains;
pub mod dto;
pub mod error;
pub mod exec;
pub mod extract;
pub mod git_http;
pub mod image_dto;
pub mod images;
pub mod metrics;
pub mod metrics_history;
pub mod nodes;
mod openapi;
pub mod pipeline_dto;
pub mod pipelines;
pub mod proxies;
pub mod quota_requests;
pub mod quotas;
pub mod registries;
pub mod registry_auth;
pub mod registry_metadata;
pub mod secrets;
pub mod system;
pub mod team_dto;
pub mod teams;
pub mod templates;
pub mod topology;
pub mod volumes;
pub mod webhooks;

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use berth_controller::{Clock, Controller};
use berth_engine::{ImageBuilder, Runtime};
use berth_store::Store;
use utoipa::OpenApi;

use crate::dto::ReadyDto;
use crate::error::ApiError;
use crate::openapi::CommonResponses;

/// What every handler can reach.
#[derive(Clone)]
pub struct ApiState {
    /// The application layer: every change to the platform goes through it.
    pub platform: berth_operations::Platform,
    pub store: Arc<dyn Store>,
    /// Runs app instances (logs, `/readyz`).
    pub runtime: Arc<dyn Runtime>,
    /// Builds images (the build worker).
    pub builder: Arc<dyn ImageBuilder>,
    pub controller: Controller,
    pub clock: Clock,
    /// Resolves tokens, sessions and passwords to principals (shared with the registry).
    pub auth: Arc<auth::Authenticator>,
    /// Whether session cookies carry `Secure` (not when served over plain http on loopback).
    pub cookie_secure: bool,
    /// How long a browser session lasts.
    pub session_ttl_ms: berth_core::Millis,
    /// The quota of a team made at registration.
    pub default_quota: berth_core::quota::Quota,
    /// The host names (`host:port`) under which images of the built-in registry are pulled.
    pub registry_hosts: Arc<[String]>,
    /// The built-in OCI registry (served under `/v2/`, managed under `/api/v1/images`).
    pub registry: Arc<berth_registry::Registry>,
    /// Seals stored credentials (external registries' passwords) with the server's key
    /// (`<data-dir>/secret-key`).
    pub secrets: Arc<berth_auth::SecretBox>,
    /// Clients of the external registries (`/api/v1/registries`), kept for their caches.
    pub remote_registries: registries::RemoteClients,
    /// Where build logs are kept (`<data-dir>/builds/<id>.log`).
    pub build_logs_dir: std::path::PathBuf,
    /// The server's background workers (their statuses, for admins).
    pub workers: berth_controller::workers::Workers,
    /// The queue of builds and the builds running on this server.
    pub builds: berth_operations::builds::BuildWorker,
    /// Where pipelines' hosted git repositories are kept (`<data-dir>/git`).
    pub git_dir: std::path::PathBuf,
    /// The first-start secret's file (`<data-dir>/admin-token`): removed, and its token
    /// revoked, when the first admin sets a password of their own.
    pub first_start_secret: Option<std::path::PathBuf>,
    /// Proxies whose `X-Forwarded-For` names the client (`--trusted-proxies`).
    pub trusted_proxies: Arc<proxies::TrustedProxies>,
    /// The API's and the registry's request metrics and the extra sources of `/metrics`.
    pub metrics: metrics::ApiMetrics,
    /// The server's data directory (absolute): what a backup copies besides the databases.
    pub data_dir: std::path::PathBuf,
    /// This server's part in the election of the controllers' lease, when servers share the
    /// store.
    pub leadership: Option<berth_controller::leadership::Leadership>,
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Berth API", description = "Deploy, roll out, roll back, scale and heal apps on Docker."),
    paths(
        apps::list_apps, apps::create_app, apps::get_app, apps::delete_app, apps::deploy, apps::scale,
        autoscale::get_autoscale, autoscale::put_autoscale, autoscale::delete_autoscale,
        topology::get_topology, topology::stream_topology,
        apps::rollback, apps::rollout_status, apps::list_revisions, apps::get_revision, apps::list_events, apps::stream_events,
        apps::logs, accounts::register, accounts::login, accounts::logout, accounts::token_login,
        accounts::me, accounts::update_me, accounts::change_password, accounts::close_account,
        accounts::list_tokens, accounts::create_token, accounts::revoke_token, accounts::list_users,
        accounts::create_user, accounts::get_user, accounts::update_user, accounts::disable_user,
        accounts::enable_user, accounts::delete_user, accounts::get_settings, accounts::put_settings,
        audit::list, images::list_repositories, images::show, images::delete, images::usage,
        images::garbage_collect, images::retention, images::list_retention_rules,
        images::put_retention_rule, images::delete_retention_rule, registries::list,
        registries::get, registries::put, registries::delete, registries::list_images,
        registries::show_image, registries::delete_image, teams::list_teams,
        teams::create_team, teams::get_team, teams::update_team, teams::delete_team,
        teams::list_members, teams::put_member, teams::delete_member, quota_requests::create,
        quota_requests::list, quota_requests::get, quota_requests::approve,
        quota_requests::reject, templates::list, templates::get, templates::put,
        templates::delete, templates::create_app, pipelines::list, pipelines::get,
        pipelines::put, pipelines::delete, pipelines::start_build, pipelines::list_builds,
        pipelines::get_build, pipelines::cancel_build, pipelines::build_logs,
        build_events::build_events, webhooks::receive,
        domains::list, domains::put, domains::delete,
        certificates::list, certificates::put, certificates::request_acme, certificates::delete,
        system::list_workers, system::create_backup, system::get_access_log, system::put_access_log,
        system::get_on_demand_domains, system::put_on_demand_domains,
        system::delete_on_demand_domains, nodes::list, nodes::get, nodes::put_labels, nodes::put_availability,
        nodes::events, nodes::cluster_events, healthz, readyz, leaderz, metrics::metrics,
        metrics_history::app_metrics, metrics_history::node_metrics, metrics_history::team_metrics,
        volumes::list_all, volumes::list_team, volumes::get, volumes::delete, volumes::backup,
        volumes::restore, compose::import, exec::exec, secrets::list_all, secrets::list_team, secrets::put, secrets::delete,
    ),
    modifiers(&BearerAuth, &CommonResponses),
    security(("bearer" = [])),
    tags((name = "accounts", description = "Users, sessions, API tokens, settings and the audit log"), (name = "apps", description = "Apps, revisions, rollouts and their timeline"), (name = "images", description = "The built-in registry: search, inspect, delete, storage, garbage collection; and external registries browsed the same way"), (name = "nodes", description = "Nodes: the machines apps run on, their labels, capacity, use and status, and their events"), (name = "pipelines", description = "Code pipelines: from a commit to a tested image in the registry, rolled out to an app"), (name = "system", description = "Health of the server itself"), (name = "teams", description = "Teams, their members and quotas, and quota requests"), (name = "templates", description = "Deployment templates: built-in and team app shapes with typed parameters, and apps made from them"), (name = "volumes", description = "Persistent volumes of teams: listed, shown, deleted, backed up and restored as tar streams"), (name = "secrets", description = "Team secrets: set (sealed, never returned), listed by name and version, deleted"))
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The server's own liveness: it answers.
#[utoipa::path(get, path = "/healthz", tag = "system", security(()), responses((status = 200, body = String)))]
pub async fn healthz() -> &'static str {
    "ok"
}

/// Whether this server runs the controllers: 200 `leader` on the leader or the only server of
/// its store, 503 `follower` elsewhere (every server serves the API and apps' traffic).
#[utoipa::path(get, path = "/leaderz", tag = "system", security(()),
    responses((status = 200, body = String), (status = 503, body = String)))]
pub async fn leaderz(State(state): State<ApiState>) -> Response {
    match &state.leadership {
        Some(leadership) if !leadership.leads() => {
            (StatusCode::SERVICE_UNAVAILABLE, "follower").into_response()
        }
        _ => (StatusCode::OK, "leader").into_response(),
    }
}

/// How long readiness waits for the engine's answer.
const READY_ENGINE_PATIENCE: std::time::Duration = std::time::Duration::from_secs(3);

/// Readiness: the store and the engine both answer.
#[utoipa::path(get, path = "/readyz", tag = "system", security(()),
    responses((status = 200, body = ReadyDto), (status = 503, body = ReadyDto)))]
pub async fn readyz(State(state): State<ApiState>) -> Response {
    let store = match state.store.ping().await {
        Ok(()) => "ok".to_string(),
        Err(error) => error.to_string(),
    };
    // A probe answers in its own time even when the engine hangs.
    let engine = match tokio::time::timeout(READY_ENGINE_PATIENCE, state.runtime.info()).await {
        Ok(Ok(info)) => format!("ok ({} {} on {})", info.name, info.version, info.node_name),
        Ok(Err(error)) => error.to_string(),
        Err(_elapsed) => format!(
            "the engine did not answer within {} s",
            READY_ENGINE_PATIENCE.as_secs()
        ),
    };
    let ready = store == "ok" && engine.starts_with("ok");
    let role = match &state.leadership {
        None => "single",
        Some(leadership) if leadership.leads() => "leader",
        Some(_) => "follower",
    };
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(ReadyDto {
            ready,
            store,
            engine,
            role: role.to_string(),
            clock_skew_ms: state
                .leadership
                .as_ref()
                .and_then(|leadership| leadership.clock_skew_ms()),
        }),
    )
        .into_response()
}

async fn openapi_json() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        ApiDoc::openapi().to_pretty_json().unwrap_or_default(),
    )
        .into_response()
}

/// The status of a create-or-replace (`PUT`): 200 when it replaced something, 201 when it made it.
pub(crate) fn put_status(replaced: bool) -> axum::http::StatusCode {
    if replaced {
        axum::http::StatusCode::OK
    } else {
        axum::http::StatusCode::CREATED
    }
}

pub(crate) use berth_core::secret::constant_time_eq as tokens_match;

async fn unknown_route() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no_route", "no such API route")
}

/// The whole HTTP surface of the control plane.
pub fn router(state: ApiState) -> axum::Router {
    let api = axum::Router::new()
        .route("/system/workers", get(system::list_workers))
        .route("/system/backups", post(system::create_backup))
        .route("/nodes", get(nodes::list))
        .route("/nodes/{name}", get(nodes::get))
        .route("/nodes/{name}/metrics", get(metrics_history::node_metrics))
        .route("/nodes/{name}/labels", put(nodes::put_labels))
        .route("/nodes/{name}/availability", put(nodes::put_availability))
        .route("/nodes/{name}/events", get(nodes::events))
        .route("/cluster/events", get(nodes::cluster_events))
        .route(
            "/system/access-log",
            get(system::get_access_log).put(system::put_access_log),
        )
        .route(
            "/system/on-demand-domains",
            get(system::get_on_demand_domains)
                .put(system::put_on_demand_domains)
                .delete(system::delete_on_demand_domains),
        )
        .route(
            "/teams/{team}/compose",
            post(compose::import).layer(compose::body_limit()),
        )
        .route("/secrets", get(secrets::list_all))
        .route("/teams/{team}/secrets", get(secrets::list_team))
        .route(
            "/teams/{team}/secrets/{name}",
            axum::routing::put(secrets::put)
                .delete(secrets::delete)
                .layer(secrets::value_limit()),
        )
        .route("/volumes", get(volumes::list_all))
        .route("/teams/{team}/volumes", get(volumes::list_team))
        .route(
            "/teams/{team}/volumes/{name}",
            get(volumes::get).delete(volumes::delete),
        )
        .route(
            "/teams/{team}/volumes/{name}/archive",
            get(volumes::backup).put(volumes::restore),
        )
        .route("/domain-reservations", get(domains::list))
        .route(
            "/domain-reservations/{domain}",
            axum::routing::put(domains::put).delete(domains::delete),
        )
        .route("/apps", get(apps::list_apps).post(apps::create_app))
        .route("/apps/{name}", get(apps::get_app).delete(apps::delete_app))
        .route("/apps/{name}/deploy", post(apps::deploy))
        .route("/apps/{name}/scale", post(apps::scale))
        .route("/topology", get(topology::get_topology))
        .route("/topology/stream", get(topology::stream_topology))
        .route(
            "/apps/{name}/autoscale",
            get(autoscale::get_autoscale)
                .put(autoscale::put_autoscale)
                .delete(autoscale::delete_autoscale),
        )
        .route("/apps/{name}/rollback", post(apps::rollback))
        .route("/apps/{name}/exec", get(exec::exec))
        .route("/apps/{name}/rollout", get(apps::rollout_status))
        .route("/apps/{name}/revisions", get(apps::list_revisions))
        .route("/apps/{name}/revisions/{number}", get(apps::get_revision))
        .route("/apps/{name}/events", get(apps::list_events))
        .route("/apps/{name}/metrics", get(metrics_history::app_metrics))
        .route("/apps/{name}/events/stream", get(apps::stream_events))
        .route("/apps/{name}/logs", get(apps::logs))
        .route("/apps/{name}/certificates", get(certificates::list))
        .route(
            "/apps/{name}/certificates/{host}",
            axum::routing::put(certificates::put)
                .delete(certificates::delete)
                .layer(certificates::upload_limit()),
        )
        .route(
            "/apps/{name}/certificates/{host}/acme",
            post(certificates::request_acme),
        )
        .route("/images", get(images::list_repositories))
        .route(
            "/images/{*reference}",
            get(images::show).delete(images::delete),
        )
        .route("/registry/usage", get(images::usage))
        .route("/registry/gc", post(images::garbage_collect))
        .route("/registry/retention", post(images::retention))
        .route(
            "/registry/retention-rules",
            get(images::list_retention_rules),
        )
        .route(
            "/registry/retention-rules/{*repository}",
            axum::routing::put(images::put_retention_rule).delete(images::delete_retention_rule),
        )
        .route("/registries", get(registries::list))
        .route(
            "/registries/{name}",
            get(registries::get)
                .put(registries::put)
                .delete(registries::delete),
        )
        .route("/registries/{name}/images", get(registries::list_images))
        .route(
            "/registries/{name}/images/{*reference}",
            get(registries::show_image).delete(registries::delete_image),
        )
        .route("/auth/logout", post(accounts::logout))
        .route(
            "/me",
            get(accounts::me)
                .patch(accounts::update_me)
                .delete(accounts::close_account),
        )
        .route("/me/password", post(accounts::change_password))
        .route(
            "/me/tokens",
            get(accounts::list_tokens).post(accounts::create_token),
        )
        .route("/me/tokens/{id}", delete(accounts::revoke_token))
        .route(
            "/users",
            get(accounts::list_users).post(accounts::create_user),
        )
        .route(
            "/users/{username}",
            get(accounts::get_user)
                .patch(accounts::update_user)
                .delete(accounts::delete_user),
        )
        .route("/users/{username}/disable", post(accounts::disable_user))
        .route("/users/{username}/enable", post(accounts::enable_user))
        .route(
            "/settings",
            get(accounts::get_settings).put(accounts::put_settings),
        )
        .route("/audit", get(audit::list))
        .route("/teams", get(teams::list_teams).post(teams::create_team))
        .route(
            "/teams/{team}",
            get(teams::get_team)
                .patch(teams::update_team)
                .delete(teams::delete_team),
        )
        .route("/teams/{team}/members", get(teams::list_members))
        .route("/teams/{team}/metrics", get(metrics_history::team_metrics))
        .route(
            "/teams/{team}/members/{username}",
            axum::routing::put(teams::put_member).delete(teams::delete_member),
        )
        .route("/teams/{team}/quota-requests", post(quota_requests::create))
        .route("/quota-requests", get(quota_requests::list))
        .route("/quota-requests/{id}", get(quota_requests::get))
        .route(
            "/quota-requests/{id}/approve",
            post(quota_requests::approve),
        )
        .route("/quota-requests/{id}/reject", post(quota_requests::reject))
        .route("/templates", get(templates::list))
        .route(
            "/templates/{team}/{name}",
            get(templates::get)
                .put(templates::put)
                .delete(templates::delete),
        )
        .route("/templates/{team}/{name}/apps", post(templates::create_app))
        .route("/pipelines", get(pipelines::list))
        .route(
            "/pipelines/{team}/{name}",
            get(pipelines::get)
                .put(pipelines::put)
                .delete(pipelines::delete),
        )
        .route(
            "/pipelines/{team}/{name}/builds",
            post(pipelines::start_build),
        )
        .route("/builds", get(pipelines::list_builds))
        .route("/builds/{id}", get(pipelines::get_build))
        .route("/builds/{id}/cancel", post(pipelines::cancel_build))
        .route("/builds/{id}/logs", get(pipelines::build_logs))
        .route("/builds/{id}/events", get(build_events::build_events))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ))
        .route("/auth/register", post(accounts::register))
        .route("/auth/login", post(accounts::login))
        .route("/auth/token", post(accounts::token_login))
        .route("/pipelines/{team}/{name}/webhook", webhooks::route())
        .route_layer(middleware::from_fn_with_state(state.clone(), audit::record))
        .fallback(unknown_route)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            metrics::observe_api,
        ));
    let registry = berth_registry::router(Arc::clone(&state.registry))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            audit::record_registry,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            metrics::observe_registry,
        ));
    axum::Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/leaderz", get(leaderz))
        .route("/metrics", get(metrics::metrics))
        .route("/api/v1/openapi.json", get(openapi_json))
        .nest("/api/v1", api)
        .merge(git_http::router())
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state.clone())
        .merge(registry)
        .fallback(console::serve)
        .layer(middleware::from_fn_with_state(
            Arc::clone(&state.trusted_proxies),
            proxies::resolve_client,
        ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_comparison() {
        let cases = [
            ("abc", "abc", true),
            ("abd", "abc", false),
            ("ab", "abc", false),
            ("", "abc", false),
            ("abcd", "abc", false),
        ];
        for (given, expected, want) in cases {
            assert_eq!(
                tokens_match(given.as_bytes(), expected.as_bytes()),
                want,
                "{given} vs {expected}"
            );
        }
    }

    /// Every `in: path` parameter names a `{segment}` of its path template, and every segment
    /// is declared as a path parameter (utoipa's `IntoParams` defaults to `in: path`, so a
    /// query struct without `parameter_in = Query` would turn into required path parameters).
    #[test]
    fn openapi_path_parameters_match_the_templates() {
        let doc: serde_json::Value =
            serde_json::from_str(&ApiDoc::openapi().to_json().unwrap()).unwrap();
        let mut problems = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            let segments: std::collections::BTreeSet<&str> = path
                .split('/')
                .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
                .map(|s| s.trim_start_matches('*'))
                .collect();
            for (method, operation) in item.as_object().unwrap() {
                let mut declared = std::collections::BTreeSet::new();
                for parameter in operation["parameters"].as_array().into_iter().flatten() {
                    let name = parameter["name"].as_str().unwrap_or_default();
                    if parameter["in"] != "path" {
                        continue;
                    }
                    declared.insert(name);
                    if !segments.contains(name) {
                        problems.push(format!(
                            "{method} {path}: path parameter {name} is not in the template"
                        ));
                    }
                }
                for segment in &segments {
                    if !declared.contains(segment) {
                        problems.push(format!("{method} {path}: {{{segment}}} is not declared"));
                    }
                }
            }
        }
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }

    #[test]
    fn openapi_document_lists_the_routes() {
        let doc = ApiDoc::openapi().to_json().unwrap();
        for path in [
            "/api/v1/apps",
            "/api/v1/apps/{name}/deploy",
            "/api/v1/system/workers",
            "/api/v1/apps/{name}/rollback",
            "/api/v1/apps/{name}/logs",
            "/api/v1/teams/{team}/members/{username}",
            "/api/v1/quota-requests/{id}/reject",
            "/api/v1/templates/{team}/{name}/apps",
            "/api/v1/registries/{name}/images/{reference}",
            "/api/v1/pipelines/{team}/{name}/builds",
            "/api/v1/builds/{id}/logs",
            "/api/v1/builds/{id}/events",
            "/api/v1/pipelines/{team}/{name}/webhook",
        ] {
            assert!(
                doc.contains(path),
                "{path} missing from the OpenAPI document"
            );
        }
    }
}
