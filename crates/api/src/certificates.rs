//! HTTPS certificates of an app's hosts: list, upload (PEM chain and key; the key is sealed
//! and never returned), order over ACME, delete.

use axum::Json;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use berth_operations::certificates::CertificateInfo;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ApiState;
use crate::auth::Principal;
use crate::dto::timestamp;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath as Path};

/// The largest upload body: a chain and a key at their limit, JSON-escaped, and some slack.
pub const MAX_UPLOAD_BODY: usize = 4 * berth_operations::certificates::MAX_PEM_BYTES;

/// The body limit of the upload route (larger bodies are refused as `invalid_json`).
pub fn upload_limit() -> DefaultBodyLimit {
    DefaultBodyLimit::max(MAX_UPLOAD_BODY)
}

/// A certificate the router serves for one host of the app (its private key is never shown).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CertificateDto {
    pub host: String,
    pub app: String,
    /// `uploaded` or `acme` (renewed by Berth).
    pub source: String,
    /// The DNS names the certificate covers.
    pub names: Vec<String>,
    pub not_before: String,
    pub not_after: String,
    /// Whole days until `not_after` (negative once expired).
    pub days_left: i64,
    pub created_by: String,
    pub updated_at: String,
}

impl From<CertificateInfo> for CertificateDto {
    fn from(c: CertificateInfo) -> Self {
        CertificateDto {
            host: c.host,
            app: c.app,
            source: c.source.as_str().to_string(),
            names: c.names,
            not_before: timestamp(c.not_before),
            not_after: timestamp(c.not_after),
            days_left: c.days_left,
            created_by: c.created_by,
            updated_at: timestamp(c.updated_at),
        }
    }
}

/// A certificate and its key, PEM (at most 64 KiB each).
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UploadRequest {
    /// The chain, leaf first, then intermediates (`-----BEGIN CERTIFICATE-----`).
    pub certificate: String,
    /// The unencrypted private key of the leaf (PKCS#8, PKCS#1 or SEC1).
    pub private_key: String,
}

impl std::fmt::Debug for UploadRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UploadRequest").finish_non_exhaustive()
    }
}

/// The app's certificates, by host.
#[utoipa::path(get, path = "/api/v1/apps/{name}/certificates", tag = "apps",
    params(("name" = String, Path, description = "App name")),
    responses((status = 200, body = [CertificateDto]), (status = 404, body = ErrorBody)))]
pub async fn list(
    State(state): State<ApiState>,
    principal: Principal,
    Path(name): Path<String>,
) -> ApiResult<Json<Vec<CertificateDto>>> {
    let certificates = state.platform.list_certificates(&principal, &name).await?;
    Ok(Json(certificates.into_iter().map(Into::into).collect()))
}

/// Upload the certificate of one of the app's hosts (its default host or a custom domain),
/// replacing the host's certificate: the key must belong to the certificate, the certificate
/// must name the host and be valid now (400 naming `certificate`, `private_key` or `domain`).
/// The router serves it within a second. A body over 256 KiB is refused (400 `invalid_json`).
#[utoipa::path(put, path = "/api/v1/apps/{name}/certificates/{host}", tag = "apps",
    params(("name" = String, Path, description = "App name"),
        ("host" = String, Path, description = "One of the app's hosts, like shop.example.com")),
    request_body = UploadRequest,
    responses((status = 200, body = CertificateDto), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn put(
    State(state): State<ApiState>,
    principal: Principal,
    Path((name, host)): Path<(String, String)>,
    ApiJson(request): ApiJson<UploadRequest>,
) -> ApiResult<Json<CertificateDto>> {
    let stored = state
        .platform
        .upload_certificate(
            &principal,
            &name,
            &host,
            &request.certificate,
            &request.private_key,
        )
        .await?;
    Ok(Json(stored.into()))
}

/// Order a certificate for one of the app's hosts from the server's ACME directory (HTTP-01
/// through the router: the host must reach this server's router on port 80; a wildcard host
/// such as `*.shop.example.com` over DNS-01 through the server's DNS hook). Waits until it is
/// issued; Berth renews it. 409 `acme_not_configured` when the server has no ACME settings,
/// 409 `acme_dns_not_configured` for a wildcard on a server without `--acme-dns-hook`, 502
/// `upstream_failed` when the order fails (a failing DNS hook: its exit status and stderr).
#[utoipa::path(post, path = "/api/v1/apps/{name}/certificates/{host}/acme", tag = "apps",
    params(("name" = String, Path, description = "App name"),
        ("host" = String, Path, description = "One of the app's hosts (or wildcard domains)")),
    responses((status = 200, body = CertificateDto), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 502, body = ErrorBody)))]
pub async fn request_acme(
    State(state): State<ApiState>,
    principal: Principal,
    Path((name, host)): Path<(String, String)>,
) -> ApiResult<Json<CertificateDto>> {
    let issued = state
        .platform
        .request_certificate(&principal, &name, &host)
        .await?;
    Ok(Json(issued.into()))
}

/// Delete the certificate of one of the app's hosts; HTTPS to it is refused from then on.
#[utoipa::path(delete, path = "/api/v1/apps/{name}/certificates/{host}", tag = "apps",
    params(("name" = String, Path, description = "App name"),
        ("host" = String, Path, description = "The host")),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(state): State<ApiState>,
    principal: Principal,
    Path((name, host)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    state
        .platform
        .delete_certificate(&principal, &name, &host)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
