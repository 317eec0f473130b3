//! External registries: admins point Berth at an existing Distribution-compatible registry on
//! behalf of a team; the team's members browse it and delete from it with the same routes,
//! shapes and rules as the built-in registry (`/api/v1/images`).
//!
//! The password is sealed with the server's secret box before it is stored and is never
//! answered again. Clients are kept per registry (they cache bearer tokens and manifest
//! summaries) and made anew when the registry's configuration changes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use berth_core::ExternalRegistry;
use berth_core::accounts::TeamAction;
use berth_operations::images::images_in_use;
use berth_registry::{ImageSource, RemoteCredentials, RemoteRegistry};

use crate::ApiState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath as Path, ApiQuery};
use crate::image_dto::{
    ExternalRegistryDto, ExternalRegistryRequest, RepositoryDto, RepositoryOrImageDto,
};
use crate::images::{SearchParams, delete_in, parse_reference, show_in};

/// Clients of the external registries, by name, with the configuration each was made from.
#[derive(Clone, Default)]
pub struct RemoteClients(Arc<Mutex<HashMap<String, (ExternalRegistry, Arc<RemoteRegistry>)>>>);

impl std::fmt::Debug for RemoteClients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RemoteClients")
    }
}

impl RemoteClients {
    fn forget(&self, name: &str) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
    }
}

/// The client of `registry`, made (opening its password) when there is none for its current
/// configuration.
fn client(state: &ApiState, registry: &ExternalRegistry) -> ApiResult<Arc<RemoteRegistry>> {
    let mut clients = state
        .remote_registries
        .0
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some((config, client)) = clients.get(&registry.name)
        && config == registry
    {
        return Ok(Arc::clone(client));
    }
    let credentials = match &registry.username {
        None => None,
        Some(username) => {
            let password = match &registry.sealed_password {
                None => String::new(),
                Some(sealed) => state
                    .secrets
                    .open(sealed, &ExternalRegistry::secret_context(&registry.name))
                    .map_err(|e| {
                        ApiError::new(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "secret_unreadable",
                            format!(
                                "the stored password of registry {}: {e}; set it again (berth registries add)",
                                registry.name
                            ),
                        )
                    })?,
            };
            Some(RemoteCredentials {
                username: username.clone(),
                password,
            })
        }
    };
    let client = Arc::new(RemoteRegistry::new(&registry.url, credentials)?);
    clients.insert(
        registry.name.clone(),
        (registry.clone(), Arc::clone(&client)),
    );
    Ok(client)
}

/// The registry `name` when the caller may do `action` in its team (404 when they cannot even
/// read it, as for a missing one).
async fn registry_for(
    state: &ApiState,
    principal: &Principal,
    name: &str,
    action: TeamAction,
) -> ApiResult<ExternalRegistry> {
    let what = format!("registry {name}");
    let registry = state
        .store
        .get_external_registry(name)
        .await?
        .filter(|r| principal.can_read(&r.team))
        .ok_or_else(|| ApiError::not_found(&what))?;
    principal.require(&registry.team, action, &what)?;
    Ok(registry)
}

/// The external registries of the teams the caller can read (admins: all).
#[utoipa::path(operation_id = "list_external_registries", get, path = "/api/v1/registries", tag = "images",
    responses((status = 200, body = [ExternalRegistryDto])))]
pub async fn list(
    State(state): State<ApiState>,
    principal: Principal,
) -> ApiResult<Json<Vec<ExternalRegistryDto>>> {
    let registries = state.store.list_external_registries().await?;
    Ok(Json(
        registries
            .iter()
            .filter(|r| principal.can_read(&r.team))
            .map(ExternalRegistryDto::from)
            .collect(),
    ))
}

/// One external registry.
#[utoipa::path(operation_id = "get_external_registry", get, path = "/api/v1/registries/{name}", tag = "images",
    params(("name" = String, Path)),
    responses((status = 200, body = ExternalRegistryDto), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<ApiState>,
    principal: Principal,
    Path(name): Path<String>,
) -> ApiResult<Json<ExternalRegistryDto>> {
    let registry = registry_for(&state, &principal, &name, TeamAction::Read).await?;
    Ok(Json(ExternalRegistryDto::from(&registry)))
}

/// Create or replace an external registry (platform admins). The password is sealed with the
/// server's key and never shown again; replacing without a password keeps the stored one when
/// the username stays the same.
#[utoipa::path(operation_id = "put_external_registry", put, path = "/api/v1/registries/{name}", tag = "images",
    params(("name" = String, Path)), request_body = ExternalRegistryRequest,
    responses((status = 200, body = ExternalRegistryDto), (status = 201, body = ExternalRegistryDto),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn put(
    State(state): State<ApiState>,
    principal: Principal,
    Path(name): Path<String>,
    ApiJson(request): ApiJson<ExternalRegistryRequest>,
) -> ApiResult<Response> {
    principal.require_admin()?;
    principal.audit.set_team(&request.team);
    let existing = state.store.get_external_registry(&name).await?;
    let url = request.url.trim_end_matches('/').to_string();
    let username = request.username.clone();
    let sealed_password = match (&request.password, &existing) {
        (Some(password), _) => Some(
            state
                .secrets
                .seal(password, &ExternalRegistry::secret_context(&name)),
        ),
        (None, Some(old)) if username.is_some() && old.username == username => {
            old.sealed_password.clone()
        }
        (None, _) => None,
    };
    let now = (state.clock)();
    let registry = ExternalRegistry {
        name: name.clone(),
        team: request.team.clone(),
        url,
        username,
        sealed_password,
        created_at: existing.as_ref().map_or(now, |r| r.created_at),
        updated_at: now,
    };
    registry.validate()?;
    // The client decides which URLs it can reach (plain http in this build).
    RemoteRegistry::new(&registry.url, None).map_err(|e| ApiError::field("url", e.to_string()))?;
    if state.store.get_team(&registry.team).await?.is_none() {
        return Err(ApiError::field(
            "team",
            format!("no team {}", registry.team),
        ));
    }
    state.store.put_external_registry(&registry).await?;
    state.remote_registries.forget(&name);
    let status = crate::put_status(existing.is_some());
    Ok((status, Json(ExternalRegistryDto::from(&registry))).into_response())
}

/// Remove an external registry from Berth (platform admins); the registry itself is untouched.
#[utoipa::path(operation_id = "delete_external_registry", delete, path = "/api/v1/registries/{name}", tag = "images",
    params(("name" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(state): State<ApiState>,
    principal: Principal,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    principal.require_admin()?;
    if let Some(registry) = state.store.get_external_registry(&name).await? {
        principal.audit.set_team(&registry.team);
    }
    if !state.store.delete_external_registry(&name).await? {
        return Err(ApiError::not_found(format!("registry {name}")));
    }
    state.remote_registries.forget(&name);
    Ok(StatusCode::NO_CONTENT)
}

/// Search an external registry's repositories (as `GET /api/v1/images` does for the built-in
/// one; sizes and manifest counts cover what tags reach, push times are unknown).
#[utoipa::path(operation_id = "list_external_images", get, path = "/api/v1/registries/{name}/images", tag = "images",
    params(("name" = String, Path), SearchParams),
    responses((status = 200, body = [RepositoryDto]), (status = 404, body = ErrorBody),
        (status = 502, body = ErrorBody)))]
pub async fn list_images(
    State(state): State<ApiState>,
    principal: Principal,
    Path(name): Path<String>,
    ApiQuery(params): ApiQuery<SearchParams>,
) -> ApiResult<Json<Vec<RepositoryDto>>> {
    let registry = registry_for(&state, &principal, &name, TeamAction::Read).await?;
    let client = client(&state, &registry)?;
    let repositories = client.list_repositories(params.search.as_deref()).await?;
    Ok(Json(repositories.iter().map(RepositoryDto::from).collect()))
}

/// A repository of an external registry with its tags (`repo`), or one image (`repo:tag`,
/// `repo@sha256:…`), as `GET /api/v1/images/{reference}` answers for the built-in one.
#[utoipa::path(operation_id = "show_external_image", get, path = "/api/v1/registries/{name}/images/{reference}", tag = "images",
    params(("name" = String, Path),
        ("reference" = String, Path, description = "repo, repo:tag or repo@sha256:…")),
    responses((status = 200, body = RepositoryOrImageDto,
            description = "a repository with its tags (`repo`) or one image (`repo:tag`, `repo@sha256:…`)"),
        (status = 404, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub async fn show_image(
    State(state): State<ApiState>,
    principal: Principal,
    Path((name, reference)): Path<(String, String)>,
) -> ApiResult<Json<RepositoryOrImageDto>> {
    let registry = registry_for(&state, &principal, &name, TeamAction::Read).await?;
    principal.audit.set_object(format!("images/{reference}"));
    let client = client(&state, &registry)?;
    show_in(&*client, parse_reference(&reference)).await
}

/// Delete a tag (`repo:tag`) or an image with all its tags (`repo@sha256:…`) from an external
/// registry (role `member`), unless a kept revision uses it. Where the registry cannot delete
/// a tag alone (Distribution 2.8), the tag's image goes with it when no other tag shares it,
/// else the request is refused naming those tags.
#[utoipa::path(operation_id = "delete_external_image", delete, path = "/api/v1/registries/{name}/images/{reference}", tag = "images",
    params(("name" = String, Path),
        ("reference" = String, Path, description = "repo:tag or repo@sha256:…")),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub async fn delete_image(
    State(state): State<ApiState>,
    principal: Principal,
    Path((name, reference)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let registry = registry_for(&state, &principal, &name, TeamAction::PushImage).await?;
    principal.audit.set_object(format!("images/{reference}"));
    let client = client(&state, &registry)?;
    let in_use = images_in_use(&*state.store, Some(registry.host())).await?;
    delete_in(&*client, parse_reference(&reference), &in_use).await?;
    tracing::info!(registry = %name, %reference, "image deleted from an external registry");
    Ok(StatusCode::NO_CONTENT)
}
