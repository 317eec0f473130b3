//! Handlers for image management: search, inspect, delete, storage use, GC and retention.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use berth_core::RetentionRule;
use berth_core::accounts::TeamAction;
use berth_operations::images::{images_in_use, protect, retention_then_gc};
use berth_registry::{GcOptions, ImageSource, RegistryError, RetentionPolicy};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::ApiState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath as Path, ApiQuery};
use crate::image_dto::{
    GcReportDto, GcRequest, ImageDto, RepositoryDetailDto, RepositoryDto, RepositoryOrImageDto,
    RetentionReportDto, RetentionRequest, RetentionRuleDto, RetentionRuleRequest, RetentionRunDto,
    StorageUsageDto, TagDto,
};

impl From<RegistryError> for ApiError {
    fn from(error: RegistryError) -> Self {
        let status = StatusCode::from_u16(error.status().as_u16())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let code = match status {
            StatusCode::NOT_FOUND => "not_found",
            StatusCode::BAD_REQUEST => "invalid_reference",
            // An external registry failed or refused; the message says which and why.
            StatusCode::BAD_GATEWAY => "upstream_error",
            _ => "registry_error",
        };
        ApiError::new(status, code, format!("{error} ({})", error.code().as_str()))
    }
}

/// A reference as users write it: `team/app` (a repository), `team/app:tag` or
/// `team/app@sha256:…` (an image).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ImageRef<'a> {
    Repository(&'a str),
    Tag(&'a str, &'a str),
    Digest(&'a str, &'a str),
}

pub(crate) fn parse_reference(text: &str) -> ImageRef<'_> {
    if let Some((repo, digest)) = text.split_once('@') {
        return ImageRef::Digest(repo, digest);
    }
    let last_segment = text.rfind('/').map_or(0, |i| i + 1);
    match text[last_segment..].find(':') {
        Some(colon) => ImageRef::Tag(
            &text[..last_segment + colon],
            &text[last_segment + colon + 1..],
        ),
        None => ImageRef::Repository(text),
    }
}

use berth_core::image_ref::team_of_repository as team_of;

/// Checks the caller's right to `action` on the image's repository (404 when they cannot read
/// its team, as for a missing repository).
fn authorize(principal: &Principal, image: &ImageRef<'_>, action: TeamAction) -> ApiResult<()> {
    let repo = match image {
        ImageRef::Repository(repo) | ImageRef::Tag(repo, _) | ImageRef::Digest(repo, _) => repo,
    };
    principal.audit.set_object(format!("images/{repo}"));
    Ok(principal.require(team_of(repo), action, &format!("repository {repo}"))?)
}

/// Which repositories to list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SearchParams {
    /// Only repositories whose name contains this.
    pub search: Option<String>,
}

/// Search the built-in registry's repositories.
#[utoipa::path(get, path = "/api/v1/images", tag = "images", params(SearchParams),
    responses((status = 200, body = [RepositoryDto])))]
pub async fn list_repositories(
    State(state): State<ApiState>,
    principal: Principal,
    ApiQuery(params): ApiQuery<SearchParams>,
) -> ApiResult<Json<Vec<RepositoryDto>>> {
    let repositories = state
        .registry
        .list_repositories(params.search.as_deref())
        .await?;
    Ok(Json(
        repositories
            .iter()
            .filter(|r| principal.can_read(team_of(&r.name)))
            .map(RepositoryDto::from)
            .collect(),
    ))
}

/// A repository with its tags (`team/app`), or one image (`team/app:tag`, `team/app@digest`).
#[utoipa::path(get, path = "/api/v1/images/{reference}", tag = "images",
    params(("reference" = String, Path, description = "team/app, team/app:tag or team/app@sha256:…")),
    responses((status = 200, body = RepositoryOrImageDto,
        description = "a repository with its tags (`team/app`) or one image (`team/app:tag`, `team/app@sha256:…`)"),
        (status = 404, body = ErrorBody)))]
pub async fn show(
    State(state): State<ApiState>,
    principal: Principal,
    Path(reference): Path<String>,
) -> ApiResult<Json<RepositoryOrImageDto>> {
    let image = parse_reference(&reference);
    authorize(&principal, &image, TeamAction::Read)?;
    show_in(&*state.registry, image).await
}

/// A repository with its tags, or one image, of any registry.
pub(crate) async fn show_in(
    source: &dyn ImageSource,
    image: ImageRef<'_>,
) -> ApiResult<Json<RepositoryOrImageDto>> {
    let answer = match image {
        ImageRef::Repository(repo) => {
            let tags = source.list_tags(repo).await?;
            let size_bytes = source.repository_usage(repo).await?;
            RepositoryOrImageDto::Repository(RepositoryDetailDto {
                name: repo.to_string(),
                size_bytes,
                tags: tags.iter().map(TagDto::from).collect(),
            })
        }
        ImageRef::Tag(repo, reference) | ImageRef::Digest(repo, reference) => {
            let detail = source.image_detail(repo, reference).await?;
            RepositoryOrImageDto::Image(Box::new(ImageDto::from(&detail)))
        }
    };
    Ok(Json(answer))
}

/// Delete a tag (`team/app:tag`) or an image and all its tags (`team/app@sha256:…`). The disk
/// space comes back at the next garbage collection.
#[utoipa::path(operation_id = "delete_image", delete, path = "/api/v1/images/{reference}", tag = "images",
    params(("reference" = String, Path, description = "team/app:tag or team/app@sha256:…")),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete(
    State(state): State<ApiState>,
    principal: Principal,
    Path(reference): Path<String>,
) -> ApiResult<StatusCode> {
    let image = parse_reference(&reference);
    authorize(&principal, &image, TeamAction::PushImage)?;
    let in_use = images_in_use(&*state.store, None).await?;
    delete_in(&*state.registry, image, &in_use).await?;
    tracing::info!(%reference, "image deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes a tag or an image (with all its tags) of any registry, unless a kept revision uses
/// it (`in_use`: from [`images_in_use`] for that registry).
pub(crate) async fn delete_in(
    source: &dyn ImageSource,
    image: ImageRef<'_>,
    in_use: &[(String, String)],
) -> ApiResult<()> {
    let refuse = |what: &str| -> ApiResult<()> {
        match in_use.iter().find(|(image, _)| image == what) {
            Some((_, user)) => Err(ApiError::new(
                StatusCode::CONFLICT,
                "image_in_use",
                format!(
                    "reference: {what} is used by {user}; deploy another image or let that revision expire first"
                ),
            )),
            None => Ok(()),
        }
    };
    match image {
        ImageRef::Repository(_) => {
            return Err(ApiError::field(
                "reference",
                "name a tag (team/app:tag) or a digest (team/app@sha256:…)",
            ));
        }
        ImageRef::Tag(repo, tag) => {
            refuse(&format!("{repo}:{tag}"))?;
            source.delete_tag(repo, tag).await?
        }
        ImageRef::Digest(repo, digest) => {
            // Deleting an image removes every tag pointing at it.
            let detail = source.image_detail(repo, digest).await?;
            refuse(&format!("{repo}@{digest}"))?;
            for tag in &detail.tags {
                refuse(&format!("{repo}:{tag}"))?;
            }
            source.delete_manifest(repo, digest).await?;
        }
    }
    Ok(())
}

/// Storage used per repository and per team.
#[utoipa::path(get, path = "/api/v1/registry/usage", tag = "images", responses((status = 200, body = StorageUsageDto)))]
pub async fn usage(
    State(state): State<ApiState>,
    principal: Principal,
) -> ApiResult<Json<StorageUsageDto>> {
    let mut usage = StorageUsageDto::from(&state.registry.storage_usage().await?);
    if !principal.is_admin() {
        // Totals over the whole registry are the admins' business.
        usage.total_bytes = 0;
        usage.stored_bytes = 0;
        usage
            .repositories
            .retain(|r| principal.can_read(team_of(&r.name)));
        usage.teams.retain(|t| principal.can_read(&t.name));
        usage.total_bytes = usage.teams.iter().map(|t| t.bytes).sum();
    }
    Ok(Json(usage))
}

/// Apply the stored retention rules, then garbage-collect: frees the disk of blobs no manifest
/// references.
#[utoipa::path(post, path = "/api/v1/registry/gc", tag = "images", request_body = GcRequest,
    responses((status = 200, body = GcReportDto), (status = 403, body = ErrorBody)))]
pub async fn garbage_collect(
    State(state): State<ApiState>,
    principal: Principal,
    body: axum::body::Bytes,
) -> ApiResult<Json<GcReportDto>> {
    principal.require_admin()?;
    let request: GcRequest = crate::extract::optional_json(&body)?;
    let options = GcOptions {
        delete_untagged_manifests: request.delete_untagged_manifests.unwrap_or(false),
    };
    let (retention, report) =
        retention_then_gc(state.store.as_ref(), &state.registry, options).await?;
    let mut dto = GcReportDto::from(&report);
    dto.retention = retention
        .iter()
        .map(|(repository, report)| RetentionRunDto {
            repository: repository.clone(),
            report: report.into(),
        })
        .collect();
    Ok(Json(dto))
}

/// Apply a retention policy to one repository now.
#[utoipa::path(post, path = "/api/v1/registry/retention", tag = "images", request_body = RetentionRequest,
    responses((status = 200, body = RetentionReportDto), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn retention(
    State(state): State<ApiState>,
    principal: Principal,
    ApiJson(request): ApiJson<RetentionRequest>,
) -> ApiResult<Json<RetentionReportDto>> {
    principal.require(
        team_of(&request.repository),
        TeamAction::PushImage,
        &format!("repository {}", request.repository),
    )?;
    if request.keep_newest_tags.is_none() && request.delete_untagged_older_than_ms.is_none() {
        return Err(ApiError::field(
            "keep_newest_tags",
            "give keep_newest_tags or delete_untagged_older_than_ms",
        ));
    }
    let policy = RetentionPolicy {
        keep_newest_tags: request.keep_newest_tags,
        delete_untagged_older_than: request
            .delete_untagged_older_than_ms
            .map(std::time::Duration::from_millis),
        ..RetentionPolicy::default()
    };
    let in_use = images_in_use(&*state.store, None).await?;
    let policy = protect(policy, &request.repository, &in_use);
    let report = state
        .registry
        .apply_retention(&request.repository, &policy, state.registry.now())
        .await?;
    Ok(Json(RetentionReportDto::from(&report)))
}

/// The stored retention rules.
#[utoipa::path(get, path = "/api/v1/registry/retention-rules", tag = "images",
    responses((status = 200, body = [RetentionRuleDto])))]
pub async fn list_retention_rules(
    State(state): State<ApiState>,
    principal: Principal,
) -> ApiResult<Json<Vec<RetentionRuleDto>>> {
    let rules = state.store.list_retention_rules().await?;
    Ok(Json(
        rules
            .iter()
            .filter(|r| principal.can_read(team_of(&r.repository)))
            .map(RetentionRuleDto::from)
            .collect(),
    ))
}

/// Create or replace a repository's retention rule (applied before every scheduled GC).
#[utoipa::path(put, path = "/api/v1/registry/retention-rules/{repository}", tag = "images",
    params(("repository" = String, Path, description = "team/app")), request_body = RetentionRuleRequest,
    responses((status = 200, body = RetentionRuleDto), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn put_retention_rule(
    State(state): State<ApiState>,
    principal: Principal,
    Path(repository): Path<String>,
    ApiJson(request): ApiJson<RetentionRuleRequest>,
) -> ApiResult<Json<RetentionRuleDto>> {
    berth_registry::RepoName::parse(&repository)
        .map_err(|e| ApiError::field("repository", e.to_string()))?;
    principal.require(
        team_of(&repository),
        TeamAction::PushImage,
        &format!("repository {repository}"),
    )?;
    let rule = RetentionRule {
        repository,
        keep_newest_tags: request.keep_newest_tags,
        delete_untagged_older_than_ms: request.delete_untagged_older_than_ms,
        updated_at: (state.clock)(),
    };
    rule.validate()?;
    state.store.put_retention_rule(&rule).await?;
    Ok(Json(RetentionRuleDto::from(&rule)))
}

/// Remove a repository's retention rule.
#[utoipa::path(delete, path = "/api/v1/registry/retention-rules/{repository}", tag = "images",
    params(("repository" = String, Path)), responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_retention_rule(
    State(state): State<ApiState>,
    principal: Principal,
    Path(repository): Path<String>,
) -> ApiResult<StatusCode> {
    principal.require(
        team_of(&repository),
        TeamAction::PushImage,
        &format!("retention rule of {repository}"),
    )?;
    if state.store.delete_retention_rule(&repository).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!(
            "retention rule of {repository}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        let cases = [
            ("team/app", ImageRef::Repository("team/app")),
            ("team/app:v1", ImageRef::Tag("team/app", "v1")),
            ("team/sub/app:1.2", ImageRef::Tag("team/sub/app", "1.2")),
            (
                "team/app@sha256:ab",
                ImageRef::Digest("team/app", "sha256:ab"),
            ),
        ];
        for (text, want) in cases {
            assert_eq!(parse_reference(text), want, "{text}");
        }
    }
}
