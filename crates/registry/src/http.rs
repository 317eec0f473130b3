//! The OCI Distribution protocol over HTTP: one axum catch-all under `/v2/` that parses the
//! path itself (repository names contain slashes), checks access with the [`Authorizer`],
//! and translates each endpoint onto [`Registry`] methods. A pull of a repository the
//! authorizer hides is answered here exactly as the same pull of a missing repository.
//!
//! [`Authorizer`]: crate::auth::Authorizer

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Query, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use futures::{StreamExt, TryStreamExt};
use serde_json::json;
use tokio_util::io::ReaderStream;

use crate::auth::{Access, Action, AuthDecision, Credentials};
use crate::error::{RegistryError, Result, upload_range};
use crate::manifest::OCI_INDEX;
use crate::pagination::{next_link, paginate};
use crate::ranges::{RangeRequest, parse_range};
use crate::reference::{Digest, Reference, RepoName};
use crate::registry::{BodyStream, ReferrerDescriptor, Registry, upload_location};

const API_VERSION: HeaderName = HeaderName::from_static("docker-distribution-api-version");
const CONTENT_DIGEST: HeaderName = HeaderName::from_static("docker-content-digest");
const UPLOAD_UUID: HeaderName = HeaderName::from_static("docker-upload-uuid");
const OCI_SUBJECT: HeaderName = HeaderName::from_static("oci-subject");
const OCI_FILTERS_APPLIED: HeaderName = HeaderName::from_static("oci-filters-applied");

/// Read buffer for blob downloads.
const DOWNLOAD_CHUNK: usize = 256 * 1024;
/// Blobs up to this size are answered from memory in one write with their headers (configs,
/// small layers), which also spares clients a delayed-ACK stall on connections without
/// `TCP_NODELAY`.
const SMALL_BLOB: u64 = 64 * 1024;

/// The registry's routes: `/v2/` and everything below it. Merge it into the server's router
/// (`app.merge(berth_registry::router(registry))`); it has no fallback of its own.
///
/// Serve it with `TCP_NODELAY` on accepted connections
/// (`axum::serve(listener.tap_io(|t| { let _ = t.set_nodelay(true); }), app)`): streamed
/// responses otherwise stall on the client's delayed ACK.
pub fn router(registry: Arc<Registry>) -> Router {
    Router::new()
        .route("/v2", any(dispatch))
        .route("/v2/", any(dispatch))
        .route("/v2/{*rest}", any(dispatch))
        .with_state(registry)
}

async fn dispatch(State(registry): State<Arc<Registry>>, request: Request) -> Response {
    let mut response = match handle(&registry, request).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    response
        .headers_mut()
        .insert(API_VERSION, HeaderValue::from_static("registry/2.0"));
    response
}

/// An endpoint of the protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    Base,
    Catalog,
    Tags(RepoName),
    Manifest(RepoName, String),
    Blob(RepoName, String),
    UploadStart(RepoName),
    Upload(RepoName, String),
    Referrers(RepoName, String),
}

/// Splits `/v2/<name>/<endpoint>`; the name is everything before the endpoint's fixed words.
fn parse_route(path: &str) -> Result<Route> {
    let not_found = || RegistryError::NotFound(path.to_owned());
    let rest = path.strip_prefix("/v2").ok_or_else(not_found)?;
    if rest.is_empty() || rest == "/" {
        return Ok(Route::Base);
    }
    let rest = rest.strip_prefix('/').ok_or_else(not_found)?;
    if rest == "_catalog" {
        return Ok(Route::Catalog);
    }
    let segs: Vec<&str> = rest.split('/').collect();
    let n = segs.len();
    let name =
        |suffix: usize| -> Result<RepoName> { Ok(RepoName::parse(&segs[..n - suffix].join("/"))?) };
    let last = || percent_decode(segs[n - 1]);
    if n >= 3 && segs[n - 2] == "tags" && segs[n - 1] == "list" {
        Ok(Route::Tags(name(2)?))
    } else if n >= 4 && segs[n - 3] == "blobs" && segs[n - 2] == "uploads" {
        if segs[n - 1].is_empty() {
            Ok(Route::UploadStart(name(3)?))
        } else {
            Ok(Route::Upload(name(3)?, last()))
        }
    } else if n >= 3 && segs[n - 2] == "blobs" && segs[n - 1] == "uploads" {
        Ok(Route::UploadStart(name(2)?))
    } else if n >= 3 && segs[n - 2] == "blobs" {
        Ok(Route::Blob(name(2)?, last()))
    } else if n >= 3 && segs[n - 2] == "manifests" {
        Ok(Route::Manifest(name(2)?, last()))
    } else if n >= 3 && segs[n - 2] == "referrers" {
        Ok(Route::Referrers(name(2)?, last()))
    } else {
        Err(not_found())
    }
}

/// `%XX` decoding of one path segment (clients may escape the `:` of a digest).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex_val(b[i + 1]), hex_val(b[i + 2]))
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// The access an endpoint needs, or 405.
fn access_for(route: &Route, method: &Method) -> Result<Access> {
    let repo = |r: &RepoName, a| Ok(Access::repo(r.as_str(), a));
    let m = method.clone();
    match route {
        Route::Base if m == Method::GET || m == Method::HEAD => Ok(Access::global(Action::Login)),
        Route::Catalog if m == Method::GET => Ok(Access::global(Action::Catalog)),
        Route::Tags(r) | Route::Referrers(r, _) if m == Method::GET => repo(r, Action::Pull),
        Route::Manifest(r, _) | Route::Blob(r, _) if m == Method::GET || m == Method::HEAD => {
            repo(r, Action::Pull)
        }
        Route::Manifest(r, _) if m == Method::PUT => repo(r, Action::Push),
        Route::Manifest(r, _) | Route::Blob(r, _) if m == Method::DELETE => repo(r, Action::Delete),
        Route::UploadStart(r) if m == Method::POST => repo(r, Action::Push),
        Route::Upload(r, _)
            if [Method::GET, Method::PATCH, Method::PUT, Method::DELETE].contains(&m) =>
        {
            repo(r, Action::Push)
        }
        _ => Err(RegistryError::MethodNotAllowed(m.to_string())),
    }
}

struct Ctx {
    method: Method,
    headers: HeaderMap,
    query: HashMap<String, String>,
    credentials: Option<Credentials>,
    client: Option<IpAddr>,
}

impl Ctx {
    fn header(&self, name: HeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// `action` on `repo` by this request's caller.
    fn access(&self, repo: &RepoName, action: Action) -> Access {
        Access::repo(repo.as_str(), action).by_client(self.client)
    }
}

async fn handle(registry: &Registry, request: Request) -> Result<Response> {
    let (parts, body) = request.into_parts();
    let route = parse_route(parts.uri.path())?;
    let client = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip());
    let access = access_for(&route, &parts.method)?.by_client(client);
    let query = match parts.uri.query() {
        None => HashMap::new(),
        Some(_) => {
            Query::<HashMap<String, String>>::try_from_uri(&parts.uri)
                .map_err(|e| RegistryError::Unsupported(format!("bad query string: {e}")))?
                .0
        }
    };
    let credentials = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(Credentials::from_header);
    let decision = registry.decide(credentials.as_ref(), &access).await;
    let ctx = Ctx {
        method: parts.method,
        headers: parts.headers,
        query,
        credentials,
        client,
    };
    if decision == AuthDecision::Hidden && access.action == Action::Pull {
        return as_if_missing(&ctx, &route);
    }
    registry.enforce(decision, &access)?;
    match route {
        Route::Base => Ok(json_response(StatusCode::OK, &json!({}), &ctx.method)),
        Route::Catalog => catalog(registry, &ctx, &access).await,
        Route::Tags(repo) => tags_list(registry, &ctx, &repo).await,
        Route::Blob(repo, digest) => blob(registry, &ctx, &repo, &digest).await,
        Route::UploadStart(repo) => start_upload(registry, &ctx, &repo, body).await,
        Route::Upload(repo, id) => upload(registry, &ctx, &repo, &id, body).await,
        Route::Manifest(repo, reference) => manifest(registry, &ctx, &repo, &reference, body).await,
        Route::Referrers(repo, digest) => referrers(registry, &ctx, &repo, &digest).await,
    }
}

/// The answer to a pull of a repository that does not exist, for a repository the caller may
/// not know about: the same validation errors first, then what the endpoint says when the
/// repository is missing.
fn as_if_missing(ctx: &Ctx, route: &Route) -> Result<Response> {
    match route {
        Route::Tags(repo) => Err(RegistryError::NameUnknown(repo.to_string())),
        Route::Manifest(repo, reference) => {
            Reference::parse(reference)?;
            Err(RegistryError::NameUnknown(repo.to_string()))
        }
        Route::Blob(_, digest) => Err(RegistryError::BlobUnknown(
            Digest::parse(digest)?.to_string(),
        )),
        Route::Referrers(_, digest) => {
            Digest::parse(digest)?;
            Ok(referrers_response(ctx, Vec::new()))
        }
        Route::Base | Route::Catalog | Route::UploadStart(_) | Route::Upload(..) => Err(
            RegistryError::Unsupported("this endpoint is not a pull".to_owned()),
        ),
    }
}

// ---- responses ---------------------------------------------------------------------------

fn builder(status: StatusCode, headers: &[(HeaderName, String)]) -> axum::http::response::Builder {
    let mut b = Response::builder().status(status);
    for (name, value) in headers {
        b = b.header(name, value);
    }
    b
}

fn empty(status: StatusCode, headers: &[(HeaderName, String)]) -> Response {
    builder(status, headers)
        .header(header::CONTENT_LENGTH, "0")
        .body(Body::empty())
        .unwrap_or_else(|_| status.into_response())
}

fn json_response(status: StatusCode, value: &serde_json::Value, method: &Method) -> Response {
    with_body(
        status,
        &[(header::CONTENT_TYPE, "application/json".to_owned())],
        serde_json::to_vec(value).unwrap_or_default(),
        method,
    )
}

/// A response with a body, or only its headers for HEAD.
fn with_body(
    status: StatusCode,
    headers: &[(HeaderName, String)],
    body: Vec<u8>,
    method: &Method,
) -> Response {
    let len = body.len().to_string();
    let body = if *method == Method::HEAD {
        Body::empty()
    } else {
        Body::from(body)
    };
    builder(status, headers)
        .header(header::CONTENT_LENGTH, len)
        .body(body)
        .unwrap_or_else(|_| status.into_response())
}

fn body_stream(body: Body) -> BodyStream {
    Box::pin(body.into_data_stream().map_err(io::Error::other))
}

fn parse_n(ctx: &Ctx) -> Result<Option<usize>> {
    ctx.query
        .get("n")
        .map(|n| {
            n.parse::<usize>().map_err(|_| {
                RegistryError::Unsupported(format!("pagination parameter n={n:?} is not a number"))
            })
        })
        .transpose()
}

// ---- endpoints ---------------------------------------------------------------------------

async fn catalog(registry: &Registry, ctx: &Ctx, access: &Access) -> Result<Response> {
    let all = registry
        .all_repositories()
        .await?
        .into_iter()
        .map(|repo| repo.to_string())
        .collect();
    let visible = registry
        .readable(ctx.credentials.as_ref(), access, all)
        .await;
    let n = parse_n(ctx)?;
    let page = paginate(&visible, n, ctx.query.get("last").map(String::as_str));
    let mut headers = vec![(header::CONTENT_TYPE, "application/json".to_owned())];
    if let (Some(n), Some(last)) = (n, &page.next_last) {
        headers.push((header::LINK, next_link("/v2/_catalog", n, last)));
    }
    let body = serde_json::to_vec(&json!({ "repositories": page.items })).unwrap_or_default();
    Ok(with_body(StatusCode::OK, &headers, body, &ctx.method))
}

async fn tags_list(registry: &Registry, ctx: &Ctx, repo: &RepoName) -> Result<Response> {
    let tags = registry.tag_names(repo).await?;
    let n = parse_n(ctx)?;
    let page = paginate(&tags, n, ctx.query.get("last").map(String::as_str));
    let mut headers = vec![(header::CONTENT_TYPE, "application/json".to_owned())];
    if let (Some(n), Some(last)) = (n, &page.next_last) {
        headers.push((
            header::LINK,
            next_link(&format!("/v2/{repo}/tags/list"), n, last),
        ));
    }
    let body = serde_json::to_vec(&json!({ "name": repo.as_str(), "tags": page.items }))
        .unwrap_or_default();
    Ok(with_body(StatusCode::OK, &headers, body, &ctx.method))
}

async fn blob(registry: &Registry, ctx: &Ctx, repo: &RepoName, digest: &str) -> Result<Response> {
    let digest = Digest::parse(digest)?;
    if ctx.method == Method::DELETE {
        registry.unlink_blob(repo, &digest).await?;
        return Ok(empty(
            StatusCode::ACCEPTED,
            &[(CONTENT_DIGEST, digest.to_string())],
        ));
    }
    let entry = if ctx.method == Method::HEAD {
        registry.check_blob(repo, &digest).await?
    } else {
        registry.stat_blob(repo, &digest).await?
    };
    let size = entry.size;
    let mut headers = vec![
        (CONTENT_DIGEST, digest.to_string()),
        (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
        (header::ACCEPT_RANGES, "bytes".to_owned()),
        (header::ETAG, format!("\"{digest}\"")),
        (header::CACHE_CONTROL, "max-age=31536000".to_owned()),
    ];
    let (status, range, length) = match parse_range(ctx.header(header::RANGE), size) {
        RangeRequest::Full => (StatusCode::OK, None, size),
        RangeRequest::Partial(r) => {
            headers.push((
                header::CONTENT_RANGE,
                format!("bytes {}-{}/{size}", r.start, r.end),
            ));
            (StatusCode::PARTIAL_CONTENT, Some(r), r.len())
        }
        RangeRequest::Unsatisfiable => return Err(RegistryError::RangeNotSatisfiable { size }),
    };
    headers.push((header::CONTENT_LENGTH, length.to_string()));
    let body = if ctx.method == Method::HEAD || length == 0 {
        Body::empty()
    } else if length <= SMALL_BLOB {
        let mut reader = registry.open_blob(&digest, range).await?;
        let mut buf = Vec::with_capacity(usize::try_from(length).unwrap_or(0));
        tokio::io::AsyncReadExt::read_to_end(&mut reader, &mut buf).await?;
        Body::from(buf)
    } else {
        let reader = registry.open_blob(&digest, range).await?;
        Body::from_stream(ReaderStream::with_capacity(reader, DOWNLOAD_CHUNK))
    };
    Ok(builder(status, &headers)
        .body(body)
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response()))
}

fn blob_created(repo: &RepoName, digest: &Digest) -> Response {
    empty(
        StatusCode::CREATED,
        &[
            (header::LOCATION, format!("/v2/{repo}/blobs/{digest}")),
            (CONTENT_DIGEST, digest.to_string()),
        ],
    )
}

fn upload_accepted(status: StatusCode, repo: &RepoName, id: &str, size: u64) -> Response {
    empty(
        status,
        &[
            (header::LOCATION, upload_location(repo, id)),
            (header::RANGE, upload_range(size)),
            (UPLOAD_UUID, id.to_owned()),
        ],
    )
}

async fn start_upload(
    registry: &Registry,
    ctx: &Ctx,
    repo: &RepoName,
    body: Body,
) -> Result<Response> {
    if let Some(mount) = ctx.query.get("mount") {
        let digest = Digest::parse(mount)?;
        // Mounting needs pull access to the source; without it (or without the blob there)
        // the client gets an ordinary upload session, as the spec says.
        if let Some(from) = ctx.query.get("from").and_then(|f| RepoName::parse(f).ok()) {
            let access = ctx.access(&from, Action::Pull);
            if registry.decide(ctx.credentials.as_ref(), &access).await == AuthDecision::Allow
                && registry.mount_blob(repo, &digest, &from).await?.is_some()
            {
                return Ok(blob_created(repo, &digest));
            }
        }
    } else if let Some(digest) = ctx.query.get("digest") {
        let digest = Digest::parse(digest)?;
        registry
            .upload_monolithic(repo, &digest, body_stream(body))
            .await?;
        return Ok(blob_created(repo, &digest));
    }
    let id = registry.start_upload(repo).await?;
    Ok(upload_accepted(StatusCode::ACCEPTED, repo, &id, 0))
}

async fn upload(
    registry: &Registry,
    ctx: &Ctx,
    repo: &RepoName,
    id: &str,
    body: Body,
) -> Result<Response> {
    let content_range = ctx.header(header::CONTENT_RANGE);
    match ctx.method {
        Method::GET => {
            let size = registry.upload_size(repo, id).await?;
            Ok(upload_accepted(StatusCode::NO_CONTENT, repo, id, size))
        }
        Method::PATCH => {
            let size = registry
                .append_upload(repo, id, body_stream(body), content_range)
                .await?;
            Ok(upload_accepted(StatusCode::ACCEPTED, repo, id, size))
        }
        Method::PUT => {
            let digest = ctx.query.get("digest").ok_or_else(|| {
                RegistryError::digest_invalid(
                    "the digest query parameter is required to finish an upload",
                )
            })?;
            let digest = Digest::parse(digest)?;
            registry
                .finish_upload(repo, id, &digest, body_stream(body), content_range)
                .await?;
            Ok(blob_created(repo, &digest))
        }
        _ => {
            registry.cancel_upload(repo, id).await?;
            Ok(empty(StatusCode::NO_CONTENT, &[]))
        }
    }
}

async fn read_limited(body: Body, limit: usize) -> Result<bytes::Bytes> {
    let mut stream = body.into_data_stream();
    let mut buf = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            RegistryError::ManifestInvalid(format!("reading the manifest failed: {e}"))
        })?;
        if buf.len() + chunk.len() > limit {
            return Err(RegistryError::ManifestTooLarge(limit));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.into())
}

async fn manifest(
    registry: &Registry,
    ctx: &Ctx,
    repo: &RepoName,
    reference: &str,
    body: Body,
) -> Result<Response> {
    let reference = Reference::parse(reference)?;
    match ctx.method {
        Method::PUT => {
            let body = read_limited(body, registry.config().max_manifest_bytes).await?;
            let pushed = registry
                .put_manifest(repo, &reference, ctx.header(header::CONTENT_TYPE), body)
                .await?;
            let mut headers = vec![
                (
                    header::LOCATION,
                    format!("/v2/{repo}/manifests/{}", pushed.digest),
                ),
                (CONTENT_DIGEST, pushed.digest.to_string()),
            ];
            if let Some(subject) = pushed.subject {
                headers.push((OCI_SUBJECT, subject.to_string()));
            }
            Ok(empty(StatusCode::CREATED, &headers))
        }
        Method::DELETE => {
            match &reference {
                Reference::Tag(tag) => registry.remove_tag(repo, tag).await?,
                Reference::Digest(d) => {
                    registry.remove_manifest(repo, d).await?;
                }
            }
            Ok(empty(StatusCode::ACCEPTED, &[]))
        }
        _ => {
            let m = registry.get_manifest(repo, &reference).await?;
            let headers = [
                (header::CONTENT_TYPE, m.media_type.clone()),
                (CONTENT_DIGEST, m.digest.to_string()),
                (header::ETAG, format!("\"{}\"", m.digest)),
            ];
            Ok(with_body(
                StatusCode::OK,
                &headers,
                m.body.to_vec(),
                &ctx.method,
            ))
        }
    }
}

async fn referrers(
    registry: &Registry,
    ctx: &Ctx,
    repo: &RepoName,
    digest: &str,
) -> Result<Response> {
    let digest = Digest::parse(digest)?;
    let manifests = registry
        .referrers(repo, &digest, artifact_type_filter(ctx))
        .await?;
    Ok(referrers_response(ctx, manifests))
}

/// The `artifactType` filter of a referrers request.
fn artifact_type_filter(ctx: &Ctx) -> Option<&str> {
    ctx.query
        .get("artifactType")
        .map(String::as_str)
        .filter(|a| !a.is_empty())
}

/// The image index listing referrers.
fn referrers_response(ctx: &Ctx, manifests: Vec<ReferrerDescriptor>) -> Response {
    let mut headers = vec![(header::CONTENT_TYPE, OCI_INDEX.to_owned())];
    if artifact_type_filter(ctx).is_some() {
        headers.push((OCI_FILTERS_APPLIED, "artifactType".to_owned()));
    }
    let body = json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": manifests,
    });
    with_body(
        StatusCode::OK,
        &headers,
        serde_json::to_vec(&body).unwrap_or_default(),
        &ctx.method,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn name(s: &str) -> RepoName {
        RepoName::parse(s).unwrap()
    }

    #[test]
    fn routes() {
        let ok: Vec<(String, Route)> = vec![
            ("/v2".into(), Route::Base),
            ("/v2/".into(), Route::Base),
            ("/v2/_catalog".into(), Route::Catalog),
            (
                "/v2/team/app/tags/list".into(),
                Route::Tags(name("team/app")),
            ),
            (
                format!("/v2/a/b/c/manifests/{D}"),
                Route::Manifest(name("a/b/c"), D.into()),
            ),
            (
                "/v2/app/manifests/v1".into(),
                Route::Manifest(name("app"), "v1".into()),
            ),
            (
                format!("/v2/app/blobs/{D}"),
                Route::Blob(name("app"), D.into()),
            ),
            (
                format!("/v2/app/blobs/sha256%3A{}", &D[7..]),
                Route::Blob(name("app"), D.into()),
            ),
            (
                "/v2/team/app/blobs/uploads/".into(),
                Route::UploadStart(name("team/app")),
            ),
            (
                "/v2/team/app/blobs/uploads".into(),
                Route::UploadStart(name("team/app")),
            ),
            (
                "/v2/app/blobs/uploads/abc-1".into(),
                Route::Upload(name("app"), "abc-1".into()),
            ),
            (
                format!("/v2/app/referrers/{D}"),
                Route::Referrers(name("app"), D.into()),
            ),
            // A repository may be called like an endpoint word.
            (
                "/v2/blobs/manifests/v1".into(),
                Route::Manifest(name("blobs"), "v1".into()),
            ),
            ("/v2/x/tags/tags/list".into(), Route::Tags(name("x/tags"))),
        ];
        for (path, want) in ok {
            assert_eq!(parse_route(&path).unwrap(), want, "{path}");
        }
        let bad: &[(&str, &str)] = &[
            ("/v2/../etc/tags/list", "NAME_INVALID"),
            ("/v2/Team/app/tags/list", "NAME_INVALID"),
            ("/v2/team//app/tags/list", "NAME_INVALID"),
            ("/v2/tags/list", "UNSUPPORTED"),
            ("/v2/app", "UNSUPPORTED"),
            ("/v2/app/unknown/x", "UNSUPPORTED"),
            ("/v3/app/tags/list", "UNSUPPORTED"),
            ("/v2x", "UNSUPPORTED"),
        ];
        for (path, code) in bad {
            let err = parse_route(path).unwrap_err();
            assert_eq!(err.code().as_str(), *code, "{path}");
        }
    }

    #[test]
    fn method_access() {
        let r = name("team/app");
        let cases: Vec<(Route, Method, Option<Action>)> = vec![
            (Route::Base, Method::GET, Some(Action::Login)),
            (Route::Base, Method::POST, None),
            (Route::Catalog, Method::GET, Some(Action::Catalog)),
            (Route::Tags(r.clone()), Method::GET, Some(Action::Pull)),
            (Route::Tags(r.clone()), Method::DELETE, None),
            (
                Route::Manifest(r.clone(), "v1".into()),
                Method::HEAD,
                Some(Action::Pull),
            ),
            (
                Route::Manifest(r.clone(), "v1".into()),
                Method::PUT,
                Some(Action::Push),
            ),
            (
                Route::Manifest(r.clone(), "v1".into()),
                Method::DELETE,
                Some(Action::Delete),
            ),
            (Route::Manifest(r.clone(), "v1".into()), Method::POST, None),
            (
                Route::Blob(r.clone(), D.into()),
                Method::GET,
                Some(Action::Pull),
            ),
            (
                Route::Blob(r.clone(), D.into()),
                Method::DELETE,
                Some(Action::Delete),
            ),
            (Route::Blob(r.clone(), D.into()), Method::PUT, None),
            (
                Route::UploadStart(r.clone()),
                Method::POST,
                Some(Action::Push),
            ),
            (Route::UploadStart(r.clone()), Method::GET, None),
            (
                Route::Upload(r.clone(), "x".into()),
                Method::PATCH,
                Some(Action::Push),
            ),
            (
                Route::Upload(r.clone(), "x".into()),
                Method::GET,
                Some(Action::Push),
            ),
            (Route::Upload(r.clone(), "x".into()), Method::POST, None),
            (
                Route::Referrers(r.clone(), D.into()),
                Method::GET,
                Some(Action::Pull),
            ),
        ];
        for (route, method, want) in cases {
            let got = access_for(&route, &method).ok().map(|a| a.action);
            assert_eq!(got, want, "{route:?} {method}");
        }
    }

    #[test]
    fn decodes_percent_escapes() {
        assert_eq!(percent_decode("sha256%3Aab"), "sha256:ab");
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
