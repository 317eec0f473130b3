//! Compose import (`POST /api/v1/teams/{team}/compose`): a compose file's services become the
//! team's apps, after a plan that names every key that does not map.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{DefaultBodyLimit, State};
use berth_operations::compose::ComposeImport;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ApiState;
use crate::auth::Principal;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath as Path};

/// A compose file to import.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ComposeRequest {
    /// The compose file's text (YAML, version 2 or 3 or none).
    pub compose: String,
    /// Put before every app's name (`shop-` makes service `web` the app `shop-web`).
    #[serde(default)]
    pub prefix: String,
    /// The contents of the env files the services name, by the path written in the file.
    #[serde(default)]
    pub env_files: BTreeMap<String, String>,
    /// Only say what would happen.
    #[serde(default)]
    pub dry_run: bool,
}

/// One service's app.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct ImportedAppDto {
    pub service: String,
    pub app: String,
    /// `create`, `update` (a new revision where something changed) or `unchanged`.
    pub action: String,
    /// The app's current revision after the import (`null` in a dry run of a new app).
    pub revision: Option<u32>,
}

/// What the import did, or would do.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct ComposeImportDto {
    pub dry_run: bool,
    /// In dependency order.
    pub apps: Vec<ImportedAppDto>,
    /// Every key of the file that does not map, and why.
    pub notes: Vec<String>,
}

impl From<ComposeImport> for ComposeImportDto {
    fn from(import: ComposeImport) -> Self {
        ComposeImportDto {
            dry_run: import.dry_run,
            apps: import
                .apps
                .into_iter()
                .map(|a| ImportedAppDto {
                    service: a.service,
                    app: a.app,
                    action: a.action.as_str().to_string(),
                    revision: a.revision,
                })
                .collect(),
            notes: import.notes,
        }
    }
}

/// The largest import request.
pub fn body_limit() -> DefaultBodyLimit {
    DefaultBodyLimit::max(2 * 1024 * 1024)
}

/// Import a compose file (members and owners): every service becomes an app of the team
/// (created, or deployed when it exists), in dependency order; with `dry_run`, only the plan.
/// The whole file is checked first: any bad field (400 naming it, e.g.
/// `services.web.ports[0]`, `version`, `services.api.build` for a build-only service) and
/// nothing is made.
#[utoipa::path(post, path = "/api/v1/teams/{team}/compose", tag = "apps",
    params(("team" = String, Path)), request_body = ComposeRequest,
    responses((status = 200, body = ComposeImportDto), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn import(
    State(state): State<ApiState>,
    principal: Principal,
    Path(team): Path<String>,
    ApiJson(request): ApiJson<ComposeRequest>,
) -> ApiResult<Json<ComposeImportDto>> {
    let import = state
        .platform
        .import_compose(
            &principal,
            &team,
            &request.compose,
            &request.prefix,
            &request.env_files,
            request.dry_run,
        )
        .await?;
    Ok(Json(import.into()))
}
