//! A client of another registry's OCI distribution API (Distribution, Harbor, GitLab, the
//! built-in registry of another Berth…), so image management can browse and clean up an
//! external registry with the same shapes as the built-in one ([`ImageSource`]).
//!
//! What it speaks: the catalog and tag lists with `n`/`last` pagination (following the `Link`
//! header), manifests by tag or digest (Docker schema 2 and OCI manifests and indexes, parsed by
//! [`crate::manifest`]; every body is checked against its digest), config blobs, and manifest
//! deletion. Authentication: anonymous, Basic, and Docker's token flow (a 401 with
//! `WWW-Authenticate: Bearer realm=…,service=…,scope=…` → `GET realm` with the Basic
//! credentials → a bearer token, cached per scope until shortly before it expires).
//!
//! Plain `http://` only: the workspace builds reqwest without a TLS stack (rustls would bring
//! aws-lc or ring, native-tls OpenSSL); [`RemoteRegistry::new`] refuses `https://` URLs with a
//! message saying so, and the rest of this module is scheme-agnostic.
//!
//! What the distribution API cannot tell, this client does not invent: push times are unknown
//! (`None`), and a repository's size and manifest count cover what its tags reach (untagged
//! manifests cannot be listed). Manifests and configs are content-addressed, so their summaries
//! are cached by digest; tags are resolved anew on every call.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::StreamExt as _;
use reqwest::header;
use reqwest::{Method, Response, StatusCode};
use sha2::Digest as _;

use crate::error::{RegistryError, Result};
use crate::introspect::{ImageDetail, ImageSource, RepositorySummary, TagSummary};
use crate::manifest::{self, ImageConfig, ManifestKind, ParsedManifest};
use crate::reference::{Digest, Reference, RepoName, Tag};

/// Every manifest type this client understands, as its `Accept` header (without it,
/// Distribution answers an index with one platform's manifest, under another digest).
const ACCEPT_MANIFESTS: &str = "application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json";
/// Largest manifest read (the built-in registry's limit too).
const MAX_MANIFEST_BYTES: usize = 4 << 20;
/// Largest image config read.
const MAX_CONFIG_BYTES: usize = 16 << 20;
/// Entries asked per page of the catalog and tag lists.
const PAGE_SIZE: usize = 100;
/// Pages followed at most per listing (a registry whose `Link` never ends cannot hang us).
const MAX_PAGES: usize = 1000;
/// Requests in flight at once against one registry while summarising tags.
const CONCURRENCY: usize = 8;
/// Cached manifest summaries kept at most (the cache is dropped whole when full).
const MAX_CACHED: usize = 4096;

/// The user name and password Berth presents to an external registry.
#[derive(Clone, PartialEq, Eq)]
pub struct RemoteCredentials {
    /// User name.
    pub username: String,
    /// Password or access token.
    pub password: String,
}

impl std::fmt::Debug for RemoteCredentials {
    // Secrets never reach logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteCredentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// A client of one external registry. Keep it for as long as its configuration holds: it
/// caches bearer tokens and manifest summaries.
pub struct RemoteRegistry {
    base: String,
    credentials: Option<RemoteCredentials>,
    http: reqwest::Client,
    page_size: usize,
    auth: Mutex<AuthState>,
    summaries: Mutex<HashMap<Digest, Arc<Summary>>>,
}

impl std::fmt::Debug for RemoteRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteRegistry")
            .field("base", &self.base)
            .field("credentials", &self.credentials)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct AuthState {
    /// The registry challenged with Basic: send the credentials up front from now on.
    basic: bool,
    /// Bearer tokens by the scope they were asked for.
    tokens: HashMap<String, (String, Instant)>,
}

/// What one manifest (and, for an index, its children) amounts to.
#[derive(Debug)]
struct Summary {
    media_type: String,
    body: bytes::Bytes,
    parsed: ParsedManifest,
    /// Config + layers; for an index the sum over the children it could read.
    content_size: u64,
    /// The config's `created`; for an index the newest child's.
    created: Option<String>,
    config: Option<ImageConfig>,
    /// Every manifest digest this one reaches, itself included.
    manifests: HashSet<Digest>,
    /// Every blob it keeps alive with its size: itself, config, layers, children's.
    blobs: HashMap<Digest, u64>,
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Challenge {
    scheme: String,
    params: BTreeMap<String, String>,
}

impl RemoteRegistry {
    /// A client of the registry at `url` (`http://host[:port]`).
    pub fn new(url: &str, credentials: Option<RemoteCredentials>) -> Result<Self> {
        let base = url.trim_end_matches('/').to_owned();
        if base.starts_with("https://") {
            return Err(RegistryError::Unsupported(format!(
                "{base}: this build of Berth reaches external registries over plain http only (no TLS stack is built in)"
            )));
        }
        if !base.starts_with("http://") || base.len() == "http://".len() {
            return Err(RegistryError::Unsupported(format!(
                "{base}: an external registry's URL is http://host[:port]"
            )));
        }
        let http = reqwest::Client::builder()
            .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| RegistryError::Upstream(format!("HTTP client: {e}")))?;
        Ok(Self {
            base,
            credentials,
            http,
            page_size: PAGE_SIZE,
            auth: Mutex::default(),
            summaries: Mutex::default(),
        })
    }

    /// The same client asking for `n` entries per page (tests use small pages).
    pub fn with_page_size(mut self, n: usize) -> Self {
        self.page_size = n.max(1);
        self
    }

    /// The registry's base URL.
    pub fn url(&self) -> &str {
        &self.base
    }

    /// Every repository of the catalog, in the registry's order (lexical for Distribution).
    pub async fn catalog(&self) -> Result<Vec<String>> {
        #[derive(serde::Deserialize)]
        struct Catalog {
            #[serde(default)]
            repositories: Option<Vec<String>>,
        }
        let first = format!("/v2/_catalog?n={}", self.page_size);
        self.paginate(first, None, "registry:catalog:*", "the catalog", |body| {
            let page: Catalog = serde_json::from_slice(body).ok()?;
            Some(page.repositories.unwrap_or_default())
        })
        .await
        .map_err(|e| {
            not_found_as(e, || {
                RegistryError::Upstream(format!("{} offers no catalog (/v2/_catalog)", self.base))
            })
        })
    }

    /// Every tag of a repository, sorted.
    pub async fn tags(&self, repo: &str) -> Result<Vec<String>> {
        #[derive(serde::Deserialize)]
        struct Tags {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        let repo = RepoName::parse(repo)?;
        let first = format!("/v2/{repo}/tags/list?n={}", self.page_size);
        let mut tags = self
            .paginate(
                first,
                Some(&repo),
                &pull_scope(&repo),
                &format!("the tags of {repo}"),
                |body| {
                    let page: Tags = serde_json::from_slice(body).ok()?;
                    Some(page.tags.unwrap_or_default())
                },
            )
            .await
            .map_err(|e| not_found_as(e, || RegistryError::NameUnknown(repo.to_string())))?;
        tags.sort();
        tags.dedup();
        Ok(tags)
    }

    /// The digest a tag (or digest) points at, by `HEAD` and `Docker-Content-Digest` (or, when
    /// the registry does not send it, by fetching and hashing the manifest).
    pub async fn resolve(&self, repo: &str, reference: &str) -> Result<String> {
        let repo = RepoName::parse(repo)?;
        let reference = Reference::parse(reference)?;
        Ok(self.resolve_parsed(&repo, &reference).await?.to_string())
    }

    /// The manifest a tag or digest points at: its digest, media type and body (checked
    /// against the digest).
    pub async fn manifest(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<(String, String, bytes::Bytes)> {
        let repo = RepoName::parse(repo)?;
        let reference = Reference::parse(reference)?;
        let (digest, media_type, body) = self.fetch_manifest(&repo, &reference).await?;
        Ok((digest.to_string(), media_type, body))
    }

    async fn delete_reference(&self, repo: &RepoName, reference: &str, what: &str) -> Result<()> {
        let path = format!("/v2/{repo}/manifests/{reference}");
        let response = self
            .send(Method::DELETE, &path, &delete_scope(repo), None)
            .await?;
        match response.status() {
            StatusCode::ACCEPTED | StatusCode::OK | StatusCode::NO_CONTENT => Ok(()),
            _ => Err(self
                .failure(
                    response,
                    &format!("deleting {repo}:{what}"),
                    Some(repo),
                    || RegistryError::ManifestUnknown(what.to_owned()),
                )
                .await),
        }
    }

    /// Follows a paginated list from `first`; `items` decodes one page (`None`: not a page).
    async fn paginate(
        &self,
        first: String,
        repo: Option<&RepoName>,
        scope: &str,
        what: &str,
        items: impl Fn(&[u8]) -> Option<Vec<String>>,
    ) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let mut next = Some(first);
        let mut seen = HashSet::new();
        while let Some(path) = next.take() {
            if !seen.insert(path.clone()) || seen.len() > MAX_PAGES {
                return Err(RegistryError::Upstream(format!(
                    "{}: the pages of {what} do not end",
                    self.base
                )));
            }
            let response = self.send(Method::GET, &path, scope, None).await?;
            if !response.status().is_success() {
                return Err(self
                    .failure(response, what, repo, || {
                        RegistryError::NotFound(what.to_owned())
                    })
                    .await);
            }
            next = response
                .headers()
                .get_all(header::LINK)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find_map(next_link);
            let body = self.read_body(response, MAX_MANIFEST_BYTES, what).await?;
            let page = items(&body).ok_or_else(|| {
                RegistryError::Upstream(format!("{}: {what} is not a valid answer", self.base))
            })?;
            out.extend(page);
        }
        Ok(out)
    }

    async fn resolve_parsed(&self, repo: &RepoName, reference: &Reference) -> Result<Digest> {
        if let Reference::Digest(digest) = reference {
            return Ok(digest.clone());
        }
        let response = self.manifest_request(Method::HEAD, repo, reference).await?;
        let header = response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| Digest::parse(v.trim()).ok());
        match header {
            Some(digest) => Ok(digest),
            None => Ok(self.fetch_manifest(repo, reference).await?.0),
        }
    }

    async fn fetch_manifest(
        &self,
        repo: &RepoName,
        reference: &Reference,
    ) -> Result<(Digest, String, bytes::Bytes)> {
        let response = self.manifest_request(Method::GET, repo, reference).await?;
        let what = format!("{repo}:{reference}");
        let media_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = self.read_body(response, MAX_MANIFEST_BYTES, &what).await?;
        let digest = sha256(&body);
        if let Reference::Digest(wanted) = reference
            && *wanted != digest
        {
            return Err(RegistryError::Upstream(format!(
                "{}: the manifest served for {what} hashes to {digest}",
                self.base
            )));
        }
        let parsed = manifest::parse_manifest(&body, media_type.as_deref())?;
        Ok((digest, parsed.media_type, body))
    }

    /// `GET` or `HEAD` of a manifest, accepting every type; a failure becomes the error.
    async fn manifest_request(
        &self,
        method: Method,
        repo: &RepoName,
        reference: &Reference,
    ) -> Result<Response> {
        let path = format!("/v2/{repo}/manifests/{reference}");
        let response = self
            .send(method, &path, &pull_scope(repo), Some(ACCEPT_MANIFESTS))
            .await?;
        if response.status().is_success() {
            return Ok(response);
        }
        Err(self
            .failure(response, &format!("{repo}:{reference}"), Some(repo), || {
                RegistryError::ManifestUnknown(reference.to_string())
            })
            .await)
    }

    /// A config blob, checked against its digest; `None` when the registry does not have it.
    async fn config_blob(&self, repo: &RepoName, digest: &Digest) -> Result<Option<bytes::Bytes>> {
        let path = format!("/v2/{repo}/blobs/{digest}");
        let response = self
            .send(Method::GET, &path, &pull_scope(repo), None)
            .await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let what = format!("blob {digest} of {repo}");
        if !response.status().is_success() {
            return Err(self
                .failure(response, &what, Some(repo), || {
                    RegistryError::BlobUnknown(digest.to_string())
                })
                .await);
        }
        let body = self.read_body(response, MAX_CONFIG_BYTES, &what).await?;
        if sha256(&body) != *digest {
            return Err(RegistryError::Upstream(format!(
                "{}: {what} does not match its digest",
                self.base
            )));
        }
        Ok(Some(body))
    }

    /// What a manifest amounts to, from the cache or the registry (children of an index it
    /// cannot read are left out of the sums).
    async fn summary(&self, repo: &RepoName, digest: &Digest) -> Result<Arc<Summary>> {
        if let Some(hit) = self.cached(digest) {
            return Ok(hit);
        }
        let reference = Reference::Digest(digest.clone());
        let (_, media_type, body) = self.fetch_manifest(repo, &reference).await?;
        let parsed = manifest::parse_manifest(&body, Some(&media_type))?;
        let mut manifests = HashSet::from([digest.clone()]);
        let mut blobs = HashMap::from([(digest.clone(), body.len() as u64)]);
        let (content_size, created, config) = match parsed.kind {
            ManifestKind::Image => {
                let mut config = None;
                if let Some(c) = parsed.image_config()
                    && let Some(bytes) = self.config_blob(repo, &c.digest).await?
                {
                    config = manifest::parse_image_config(&bytes);
                }
                let linked = parsed.config.iter().chain(&parsed.layers);
                blobs.extend(
                    linked
                        .filter(|d| !d.external)
                        .map(|d| (d.digest.clone(), d.size)),
                );
                let created = config.as_ref().and_then(|c| c.created.clone());
                (parsed.image_size(), created, config)
            }
            ManifestKind::Index => {
                let (mut size, mut created) = (0, None::<String>);
                for child in &parsed.manifests {
                    let child = match Box::pin(self.summary(repo, &child.digest)).await {
                        Ok(child) => child,
                        Err(RegistryError::ManifestUnknown(_)) => continue,
                        Err(error) => return Err(error),
                    };
                    size += child.content_size;
                    created = created.max(child.created.clone());
                    manifests.extend(child.manifests.iter().cloned());
                    blobs.extend(child.blobs.iter().map(|(d, s)| (d.clone(), *s)));
                }
                (size, created, None)
            }
        };
        let summary = Arc::new(Summary {
            media_type,
            body,
            parsed,
            content_size,
            created,
            config,
            manifests,
            blobs,
        });
        let mut cache = self.summaries.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= MAX_CACHED {
            cache.clear();
        }
        cache.insert(digest.clone(), Arc::clone(&summary));
        Ok(summary)
    }

    fn cached(&self, digest: &Digest) -> Option<Arc<Summary>> {
        let cache = self.summaries.lock().unwrap_or_else(|p| p.into_inner());
        cache.get(digest).cloned()
    }

    /// Every tag of a repository with the digest it points at and that manifest's summary
    /// (tags deleted while listing are skipped).
    async fn tagged(&self, repo: &RepoName) -> Result<Vec<(String, Digest, Arc<Summary>)>> {
        let tags = self.tags(repo.as_str()).await?;
        let results: Vec<Result<Option<(String, Digest, Arc<Summary>)>>> =
            futures::stream::iter(tags)
                .map(|tag| async move {
                    let reference = Reference::Tag(Tag::parse(&tag)?);
                    let digest = match self.resolve_parsed(repo, &reference).await {
                        Ok(digest) => digest,
                        Err(RegistryError::ManifestUnknown(_)) => return Ok(None),
                        Err(error) => return Err(error),
                    };
                    match self.summary(repo, &digest).await {
                        Ok(summary) => Ok(Some((tag, digest, summary))),
                        Err(RegistryError::ManifestUnknown(_)) => Ok(None),
                        Err(error) => Err(error),
                    }
                })
                .buffered(CONCURRENCY)
                .collect()
                .await;
        results.into_iter().filter_map(Result::transpose).collect()
    }

    /// The tags of a repository that point at `digest`.
    async fn tags_of(&self, repo: &RepoName, digest: &Digest) -> Result<Vec<String>> {
        let tagged = self.tagged(repo).await?;
        Ok(tagged
            .into_iter()
            .filter(|(_, d, _)| d == digest)
            .map(|(tag, _, _)| tag)
            .collect())
    }

    /// Sends one request, answering the registry's challenges: Basic credentials, or Docker's
    /// token flow for `scope`. Statuses other than 401 are the caller's.
    async fn send(
        &self,
        method: Method,
        path: &str,
        scope: &str,
        accept: Option<&str>,
    ) -> Result<Response> {
        let mut retried_basic = false;
        let mut retried_token = false;
        loop {
            let mut request = self
                .http
                .request(method.clone(), format!("{}{path}", self.base));
            if let Some(accept) = accept {
                request = request.header(header::ACCEPT, accept);
            }
            let (token, basic) = {
                let auth = self.auth.lock().unwrap_or_else(|p| p.into_inner());
                let token = auth
                    .tokens
                    .get(scope)
                    .filter(|(_, expires)| Instant::now() < *expires)
                    .map(|(token, _)| token.clone());
                (token, auth.basic)
            };
            let sent_basic = token.is_none() && basic && self.credentials.is_some();
            if let Some(token) = token {
                request = request.bearer_auth(token);
            } else if let (true, Some(c)) = (basic, &self.credentials) {
                request = request.basic_auth(&c.username, Some(&c.password));
            }
            let response = request.send().await.map_err(|e| self.unreachable(e))?;
            if response.status() != StatusCode::UNAUTHORIZED {
                return Ok(response);
            }
            let challenge = response
                .headers()
                .get_all(header::WWW_AUTHENTICATE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .filter_map(parse_challenge)
                .find(|c| c.scheme == "bearer" || c.scheme == "basic");
            match challenge {
                Some(c) if c.scheme == "bearer" && !retried_token => {
                    retried_token = true;
                    let token = self.fetch_token(&c, scope).await?;
                    let mut auth = self.auth.lock().unwrap_or_else(|p| p.into_inner());
                    if auth.tokens.len() >= MAX_CACHED {
                        auth.tokens.clear();
                    }
                    auth.tokens.insert(scope.to_owned(), token);
                }
                Some(c) if c.scheme == "basic" && !sent_basic && !retried_basic => {
                    if self.credentials.is_none() {
                        return Err(self.refused(response, "asks for credentials").await);
                    }
                    retried_basic = true;
                    let mut auth = self.auth.lock().unwrap_or_else(|p| p.into_inner());
                    auth.basic = true;
                    auth.tokens.remove(scope);
                }
                _ => {
                    let why = if self.credentials.is_some() {
                        "refused the credentials"
                    } else {
                        "asks for credentials"
                    };
                    return Err(self.refused(response, why).await);
                }
            }
        }
    }

    /// Asks the challenge's realm for a bearer token (with the Basic credentials, when
    /// configured); returns it with the instant it should no longer be used.
    async fn fetch_token(&self, challenge: &Challenge, scope: &str) -> Result<(String, Instant)> {
        #[derive(serde::Deserialize)]
        struct TokenAnswer {
            #[serde(default)]
            token: Option<String>,
            #[serde(default)]
            access_token: Option<String>,
            #[serde(default)]
            expires_in: Option<u64>,
        }
        let realm = challenge.params.get("realm").ok_or_else(|| {
            RegistryError::Upstream(format!("{}: a Bearer challenge without a realm", self.base))
        })?;
        if !realm.starts_with("http://") && !realm.starts_with("https://") {
            return Err(RegistryError::Upstream(format!(
                "{}: the token realm {realm:?} is not an http(s) URL",
                self.base
            )));
        }
        let mut query: Vec<(&str, &str)> = Vec::new();
        if let Some(service) = challenge.params.get("service") {
            query.push(("service", service));
        }
        let scopes = challenge.params.get("scope").map_or(scope, String::as_str);
        query.extend(
            scopes
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(|s| ("scope", s)),
        );
        let url = format!(
            "{realm}{}{}",
            if realm.contains('?') { '&' } else { '?' },
            encode_query(&query)
        );
        let mut request = self.http.get(url);
        if let Some(c) = &self.credentials {
            request = request.basic_auth(&c.username, Some(&c.password));
        }
        let response = request.send().await.map_err(|e| self.unreachable(e))?;
        if !response.status().is_success() {
            let status = response.status();
            return Err(RegistryError::Upstream(format!(
                "{}: its token service {realm} answered {status}{}",
                self.base,
                if status == StatusCode::UNAUTHORIZED {
                    " (wrong user name or password?)"
                } else {
                    ""
                }
            )));
        }
        let body = self.read_body(response, 1 << 20, "a token").await?;
        let answer: TokenAnswer = serde_json::from_slice(&body).map_err(|e| {
            RegistryError::Upstream(format!("{}: its token service answered {e}", self.base))
        })?;
        let token = answer
            .token
            .or(answer.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                RegistryError::Upstream(format!("{}: its token service gave no token", self.base))
            })?;
        Ok((token, Instant::now() + token_lifetime(answer.expires_in)))
    }

    async fn read_body(
        &self,
        response: Response,
        limit: usize,
        what: &str,
    ) -> Result<bytes::Bytes> {
        if response.content_length().is_some_and(|n| n > limit as u64) {
            return Err(RegistryError::Upstream(format!(
                "{}: {what} is larger than {limit} bytes",
                self.base
            )));
        }
        let mut body = Vec::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| self.unreachable(e))?;
            if body.len() + chunk.len() > limit {
                return Err(RegistryError::Upstream(format!(
                    "{}: {what} is larger than {limit} bytes",
                    self.base
                )));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body.into())
    }

    fn unreachable(&self, error: reqwest::Error) -> RegistryError {
        // reqwest's message names the URL; the credentials never are part of it.
        RegistryError::Upstream(format!("cannot reach {}: {error}", self.base))
    }

    async fn refused(&self, response: Response, why: &str) -> RegistryError {
        let message = oci_error(response).await.1;
        RegistryError::Upstream(format!(
            "{} {why}{}",
            self.base,
            message.map(|m| format!(": {m}")).unwrap_or_default()
        ))
    }

    /// The error for a non-success answer about `what` (in `repo`, when about one);
    /// `missing` makes the 404 one.
    async fn failure(
        &self,
        response: Response,
        what: &str,
        repo: Option<&RepoName>,
        missing: impl FnOnce() -> RegistryError,
    ) -> RegistryError {
        let status = response.status();
        let (code, message) = oci_error(response).await;
        let detail = message.map(|m| format!(": {m}")).unwrap_or_default();
        match (status, code.as_deref(), repo) {
            (StatusCode::NOT_FOUND, Some("NAME_UNKNOWN"), Some(repo)) => {
                RegistryError::NameUnknown(repo.to_string())
            }
            (StatusCode::NOT_FOUND, _, _) => missing(),
            (StatusCode::BAD_REQUEST, Some("NAME_INVALID"), Some(repo)) => {
                RegistryError::NameInvalid(repo.to_string())
            }
            (StatusCode::FORBIDDEN, _, _) => RegistryError::Upstream(format!(
                "{} denied {what} to Berth's credentials{detail}",
                self.base
            )),
            (StatusCode::METHOD_NOT_ALLOWED, _, _) | (_, Some("UNSUPPORTED"), _) => {
                let hint = if what.starts_with("deleting") {
                    "; Distribution deletes only with `storage: delete: enabled: true`"
                } else {
                    ""
                };
                RegistryError::Upstream(format!(
                    "{} does not allow {what} ({status}{detail}){hint}",
                    self.base
                ))
            }
            _ => RegistryError::Upstream(format!(
                "{} answered {status} to {what}{detail}",
                self.base
            )),
        }
    }
}

/// Deleting a tag: the image with it when no other tag shares it, else the tag alone where the
/// registry can (OCI 1.1 tag deletion).
impl RemoteRegistry {
    async fn delete_tag_only(&self, repo: &RepoName, tag: &Tag) -> Result<()> {
        let digest = self
            .resolve_parsed(repo, &Reference::Tag(tag.clone()))
            .await?;
        let mut others = self.tags_of(repo, &digest).await?;
        others.retain(|t| t != tag.as_str());
        if others.is_empty() {
            // The image goes with its last tag: what the built-in registry's next collection
            // of untagged manifests would do, and all that Distribution 2.8 can delete.
            return self
                .delete_reference(repo, &digest.to_string(), &digest.to_string())
                .await;
        }
        // Other tags share the image: only deleting the tag itself (OCI 1.1) keeps them.
        match self
            .delete_reference(repo, tag.as_str(), tag.as_str())
            .await
        {
            Err(RegistryError::Upstream(_) | RegistryError::ManifestUnknown(_)) => {
                Err(RegistryError::Unsupported(format!(
                    "{} cannot delete a tag alone, and {repo}:{tag} shares its image with {}: delete {repo}@{digest} to remove the image with all its tags",
                    self.base,
                    others.join(", ")
                )))
            }
            other => other,
        }
    }
}

#[async_trait]
impl ImageSource for RemoteRegistry {
    async fn list_repositories(&self, search: Option<&str>) -> Result<Vec<RepositorySummary>> {
        let mut names: Vec<String> = self
            .catalog()
            .await?
            .into_iter()
            .filter(|r| search.is_none_or(|s| r.contains(s)))
            .collect();
        names.sort();
        names.dedup();
        let results: Vec<Result<Option<RepositorySummary>>> = futures::stream::iter(names)
            .map(|name| async move {
                let Ok(repo) = RepoName::parse(&name) else {
                    return Ok(None);
                };
                let tagged = match self.tagged(&repo).await {
                    Ok(tagged) => tagged,
                    // Listed in the catalog, deleted since (or never tagged).
                    Err(RegistryError::NameUnknown(_)) => return Ok(None),
                    Err(error) => return Err(error),
                };
                let (manifests, blobs) = reach(&tagged);
                Ok(Some(RepositorySummary {
                    name,
                    tag_count: tagged.len(),
                    manifest_count: manifests.len(),
                    size_bytes: blobs.values().sum(),
                    last_pushed: None,
                }))
            })
            .buffered(CONCURRENCY / 2)
            .collect()
            .await;
        results.into_iter().filter_map(Result::transpose).collect()
    }

    async fn list_tags(&self, repo: &str) -> Result<Vec<TagSummary>> {
        let repo = RepoName::parse(repo)?;
        Ok(self
            .tagged(&repo)
            .await?
            .into_iter()
            .map(|(tag, digest, summary)| TagSummary {
                tag,
                digest: digest.to_string(),
                media_type: summary.media_type.clone(),
                size_bytes: summary.content_size,
                created: summary.created.clone(),
                pushed_at: None,
            })
            .collect())
    }

    async fn repository_usage(&self, repo: &str) -> Result<u64> {
        let repo = RepoName::parse(repo)?;
        Ok(reach(&self.tagged(&repo).await?).1.values().sum())
    }

    async fn image_detail(&self, repo: &str, reference: &str) -> Result<ImageDetail> {
        let repo = RepoName::parse(repo)?;
        let reference = Reference::parse(reference)?;
        let digest = self.resolve_parsed(&repo, &reference).await?;
        let summary = self.summary(&repo, &digest).await?;
        let manifest: serde_json::Value = serde_json::from_slice(&summary.body)
            .map_err(|e| RegistryError::ManifestInvalid(e.to_string()))?;
        let tags = self.tags_of(&repo, &digest).await?;
        let parsed = &summary.parsed;
        Ok(ImageDetail {
            repository: repo.to_string(),
            digest: digest.to_string(),
            media_type: summary.media_type.clone(),
            manifest,
            tags,
            size_bytes: summary.content_size,
            pushed_at: None,
            platforms: crate::introspect::platforms(parsed),
            layers: crate::introspect::layers(parsed),
            config_digest: parsed.config.as_ref().map(|c| c.digest.to_string()),
            config: summary.config.clone(),
            subject: parsed.subject.as_ref().map(|s| s.digest.to_string()),
            artifact_type: parsed.artifact_type.clone(),
        })
    }

    async fn delete_tag(&self, repo: &str, tag: &str) -> Result<()> {
        let repo = RepoName::parse(repo)?;
        let tag = Tag::parse(tag)?;
        self.delete_tag_only(&repo, &tag).await
    }

    async fn delete_manifest(&self, repo: &str, digest: &str) -> Result<Vec<String>> {
        let repo = RepoName::parse(repo)?;
        let digest = Digest::parse(digest)?;
        let tags = self.tags_of(&repo, &digest).await?;
        self.delete_reference(&repo, &digest.to_string(), &digest.to_string())
            .await?;
        Ok(tags)
    }
}

/// The distinct manifests and blobs (with sizes) that tags reach.
fn reach(tagged: &[(String, Digest, Arc<Summary>)]) -> (HashSet<Digest>, HashMap<Digest, u64>) {
    let mut manifests = HashSet::new();
    let mut blobs = HashMap::new();
    for (_, _, summary) in tagged {
        manifests.extend(summary.manifests.iter().cloned());
        blobs.extend(summary.blobs.iter().map(|(d, s)| (d.clone(), *s)));
    }
    (manifests, blobs)
}

fn pull_scope(repo: &RepoName) -> String {
    format!("repository:{repo}:pull")
}

fn delete_scope(repo: &RepoName) -> String {
    format!("repository:{repo}:delete")
}

fn sha256(bytes: &[u8]) -> Digest {
    let hash = sha2::Sha256::digest(bytes);
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    Digest::parse(&format!("sha256:{hex}")).expect("a sha256 digest is valid")
}

/// A 404 reported as `NotFound` (an unknown list) becomes `replacement`.
fn not_found_as(
    error: RegistryError,
    replacement: impl FnOnce() -> RegistryError,
) -> RegistryError {
    match error {
        RegistryError::NotFound(_) => replacement(),
        other => other,
    }
}

/// The first OCI error code and message of an error answer, when it has the OCI shape.
async fn oci_error(response: Response) -> (Option<String>, Option<String>) {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<OciError>,
    }
    #[derive(serde::Deserialize)]
    struct OciError {
        #[serde(default)]
        code: Option<String>,
        #[serde(default)]
        message: Option<String>,
    }
    let body = response.bytes().await.unwrap_or_default();
    let body = &body[..body.len().min(64 << 10)];
    match serde_json::from_slice::<Errors>(body) {
        Ok(e) => e
            .errors
            .into_iter()
            .next()
            .map_or((None, None), |e| (e.code, e.message)),
        Err(_) => (None, None),
    }
}

/// How long a token is used: its `expires_in` (60 s when absent, as the spec says) less a
/// margin, so a token never expires on its way to the registry.
fn token_lifetime(expires_in: Option<u64>) -> Duration {
    let seconds = expires_in.unwrap_or(60).max(1);
    let margin = (seconds / 10).clamp(1, 30);
    Duration::from_secs(seconds.saturating_sub(margin).max(1))
}

/// Parses one challenge of a `WWW-Authenticate` header (`Bearer realm="…",service="…"`).
fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    if scheme.is_empty() {
        return None;
    }
    let mut params = BTreeMap::new();
    let mut rest = rest.trim_start();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let key = key.trim().to_ascii_lowercase();
        let after = after.trim_start();
        let (value, remaining) = if let Some(quoted) = after.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next().map(|(_, c)| c)),
                    '"' => {
                        end = Some(i + 1);
                        break;
                    }
                    c => value.push(c),
                }
            }
            (value, &quoted[end?..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_owned(), &after[end..])
        };
        params.insert(key, value);
        rest = remaining.trim_start().trim_start_matches(',').trim_start();
    }
    Some(Challenge {
        scheme: scheme.to_ascii_lowercase(),
        params,
    })
}

/// The path and query of a `Link: <…>; rel="next"` header value, when it points under `/v2/`
/// (an absolute link is followed on this registry only: credentials never go elsewhere).
fn next_link(value: &str) -> Option<String> {
    for link in value.split(',') {
        let (target, params) = link.trim().split_once('>')?;
        let target = target.trim().strip_prefix('<')?;
        let is_next = params.split(';').any(|p| {
            let p = p.trim().to_ascii_lowercase();
            p == "rel=\"next\"" || p == "rel=next"
        });
        if !is_next {
            continue;
        }
        let path = match target.split_once("://") {
            Some((_, rest)) => &rest[rest.find('/')?..],
            None => target,
        };
        return path.starts_with("/v2/").then(|| path.to_owned());
    }
    None
}

/// `key=value&…` with the values percent-encoded.
fn encode_query(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            let v: String = v
                .bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                        char::from(b).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect();
            format!("{k}={v}")
        })
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        let bearer = parse_challenge(
            r#"Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:team/app:pull,push""#,
        )
        .unwrap();
        assert_eq!(bearer.scheme, "bearer");
        assert_eq!(bearer.params["realm"], "https://auth.example.com/token");
        assert_eq!(bearer.params["service"], "registry.example.com");
        assert_eq!(bearer.params["scope"], "repository:team/app:pull,push");
        let basic = parse_challenge(r#"Basic realm="Registry Realm""#).unwrap();
        assert_eq!(basic.scheme, "basic");
        assert_eq!(basic.params["realm"], "Registry Realm");
        let odd =
            parse_challenge(r#"Bearer realm=http://h/token, error="insufficient_scope", x="a\"b""#)
                .unwrap();
        assert_eq!(odd.params["realm"], "http://h/token");
        assert_eq!(odd.params["error"], "insufficient_scope");
        assert_eq!(odd.params["x"], "a\"b");
        assert_eq!(parse_challenge("Basic").unwrap().params.len(), 0);
        assert!(parse_challenge("").is_none());
        assert!(parse_challenge(r#"Bearer realm="unterminated"#).is_none());
    }

    #[test]
    fn links() {
        let cases = [
            (
                r#"</v2/_catalog?last=b&n=2>; rel="next""#,
                Some("/v2/_catalog?last=b&n=2"),
            ),
            (
                r#"<http://127.0.0.1:5000/v2/a/tags/list?n=1&last=v1>; rel="next""#,
                Some("/v2/a/tags/list?n=1&last=v1"),
            ),
            (
                r#"</v2/_catalog?n=2&last=b>; rel=next"#,
                Some("/v2/_catalog?n=2&last=b"),
            ),
            (r#"</v2/x>; rel="prev", </v2/y>; rel="next""#, Some("/v2/y")),
            (r#"</v2/_catalog?n=2>; rel="prev""#, None),
            (r#"<https://evil.example.com/steal>; rel="next""#, None),
            ("garbage", None),
        ];
        for (header, want) in cases {
            assert_eq!(next_link(header).as_deref(), want, "{header}");
        }
    }

    #[test]
    fn token_lifetimes() {
        let cases = [
            (None, 54),
            (Some(60), 54),
            (Some(300), 270),
            (Some(3600), 3570),
            (Some(5), 4),
            (Some(1), 1),
            (Some(0), 1),
        ];
        for (expires_in, want) in cases {
            assert_eq!(
                token_lifetime(expires_in),
                Duration::from_secs(want),
                "{expires_in:?}"
            );
        }
    }

    #[test]
    fn urls_and_queries() {
        assert!(matches!(
            RemoteRegistry::new("https://registry.example.com", None),
            Err(RegistryError::Unsupported(m)) if m.contains("plain http")
        ));
        assert!(RemoteRegistry::new("ftp://x", None).is_err());
        assert!(RemoteRegistry::new("http://", None).is_err());
        let client = RemoteRegistry::new("http://127.0.0.1:5000/", None).unwrap();
        assert_eq!(client.url(), "http://127.0.0.1:5000");
        assert_eq!(
            encode_query(&[("service", "reg x"), ("scope", "repository:a/b:pull,push")]),
            "service=reg%20x&scope=repository%3Aa%2Fb%3Apull%2Cpush"
        );
        let credentials = RemoteCredentials {
            username: "ci".into(),
            password: "hunter2".into(),
        };
        let client = RemoteRegistry::new("http://h:1", Some(credentials)).unwrap();
        assert!(!format!("{client:?}").contains("hunter2"));
    }
}
