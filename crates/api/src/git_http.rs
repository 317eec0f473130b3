//! Berth's smart-HTTP git endpoint: every pipeline has a repository Berth hosts at
//! `/git/<team>/<pipeline>.git`, so `git push berth main` (Heroku-style) stores the commits and
//! starts a build of each pushed branch the pipeline's pattern matches, and the push's output
//! follows the build (`remote: …` lines) until it ends.
//!
//! Git's own `upload-pack` and `receive-pack` (`--stateless-rpc`) speak the protocol; this
//! module authenticates (Basic with a Berth username and an API token or password), checks the
//! team role (`viewer` fetches, `member` pushes), pipes bodies, and appends the build's
//! progress to `receive-pack`'s side-band output before its final flush. The hosted
//! repositories live under `<data-dir>/git/<team>/<pipeline>.git`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Path as UrlPath, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use berth_core::accounts::TeamAction;
use berth_core::audit::{AuditEntry, AuditOutcome};
use berth_core::pipeline::{Build, BuildTrigger, Pipeline};
use berth_pipeline::BranchPattern;
use berth_pipeline::branch::branch_from_ref;
use berth_pipeline::pktline::{self, PushCommands};
use futures::StreamExt;
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot};

use crate::ApiState;
use crate::audit::AuditSlot;
use crate::auth::{LoginError, Principal};
use crate::build_events::{BuildFollower, WholeLines, pause};

/// How long a push's output follows a build before leaving it running.
const FOLLOW_LIMIT: Duration = Duration::from_secs(60 * 60);
/// The largest fetch request taken, once decompressed (a fetch's request lists refs).
const FETCH_REQUEST_LIMIT: u64 = 16 << 20;
/// The largest push taken, once decompressed (its pack holds the pushed objects).
const PUSH_REQUEST_LIMIT: u64 = 1 << 30;
/// The most of a push request's start kept while looking for its command list.
const COMMANDS_LIMIT: usize = 1 << 20;

/// The routes, merged at the server's root.
pub fn router() -> Router<ApiState> {
    Router::new()
        .route("/git/{team}/{repository}/info/refs", get(info_refs))
        .route(
            "/git/{team}/{repository}/git-upload-pack",
            post(upload_pack),
        )
        .route(
            "/git/{team}/{repository}/git-receive-pack",
            post(receive_pack),
        )
}

pub use berth_pipeline::hosted::{hosted_bytes, hosted_repository};

/// The two git services.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Service {
    UploadPack,
    ReceivePack,
}

impl Service {
    fn parse(name: &str) -> Option<Self> {
        match name {
            "git-upload-pack" => Some(Service::UploadPack),
            "git-receive-pack" => Some(Service::ReceivePack),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Service::UploadPack => "git-upload-pack",
            Service::ReceivePack => "git-receive-pack",
        }
    }

    /// What the caller needs in the pipeline's team.
    fn action(self) -> TeamAction {
        match self {
            Service::UploadPack => TeamAction::Read,
            Service::ReceivePack => TeamAction::Deploy,
        }
    }

    fn command(self, repository: &Path) -> Command {
        let subcommand = self.name().trim_start_matches("git-");
        let mut command = Command::new("git");
        command
            .arg(subcommand)
            .arg("--stateless-rpc")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        command.arg(repository);
        command
    }
}

/// A refusal git shows its user: git prints a `text/plain` body as `remote: …` lines.
fn refuse(status: StatusCode, message: impl Into<String>) -> Response {
    let mut text = message.into();
    text.push('\n');
    let mut response = (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        text,
    )
        .into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"Berth git\", charset=\"UTF-8\""),
        );
    }
    response
}

fn source_of(request: &Request) -> String {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "unknown".to_owned(), |info| info.0.ip().to_string())
}

/// The caller, from `Authorization: Basic` (username with an API token or the password) or
/// `Bearer` (an API token).
async fn authenticate(
    state: &ApiState,
    headers: &HeaderMap,
    source: &str,
) -> Result<Principal, Response> {
    let credentials = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(berth_registry::Credentials::from_header);
    let now = (state.clock)();
    let found = match credentials {
        None => {
            return Err(refuse(
                StatusCode::UNAUTHORIZED,
                "Berth: log in with your Berth username and an API token (berth tokens create) or your password",
            ));
        }
        Some(berth_registry::Credentials::Basic { username, password }) => state
            .auth
            .by_password_or_token(&username, &password, source, now, AuditSlot::default())
            .await
            .map(Some),
        Some(berth_registry::Credentials::Bearer(token)) => state
            .auth
            .by_token(&token, now, AuditSlot::default())
            .await
            .map_err(LoginError::Store),
    };
    match found {
        Ok(Some(principal)) => Ok(principal),
        Ok(None) | Err(LoginError::Invalid) => Err(refuse(
            StatusCode::UNAUTHORIZED,
            "Berth: wrong username, password or token",
        )),
        Err(LoginError::Locked(wait)) => Err(refuse(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "Berth: too many failed logins; try again in {} s",
                wait.as_secs().max(1)
            ),
        )),
        Err(LoginError::Store(e)) => Err(refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("Berth: cannot check the credentials now: {e}"),
        )),
    }
}

/// The pipeline behind `/git/<team>/<repository>` and its hosted repository (created on first
/// use), when the caller may use `service` on it.
async fn open_repository(
    state: &ApiState,
    principal: &Principal,
    team: &str,
    repository: &str,
    service: Service,
) -> Result<(Pipeline, PathBuf), Response> {
    let name = repository.strip_suffix(".git").unwrap_or(repository);
    let missing = || {
        refuse(
            StatusCode::NOT_FOUND,
            format!(
                "Berth: no pipeline {team}/{name} (create it first: berth pipelines create {team}/{name} …)"
            ),
        )
    };
    if !principal.can_read(team) {
        return Err(missing());
    }
    let pipeline = match state.store.get_pipeline(team, name).await {
        Ok(Some(pipeline)) => pipeline,
        Ok(None) => return Err(missing()),
        Err(e) => {
            return Err(refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("Berth: cannot read the pipeline now: {e}"),
            ));
        }
    };
    if !principal.can(team, service.action()) {
        return Err(refuse(
            StatusCode::FORBIDDEN,
            format!(
                "Berth: pushing to {team}/{name} needs the member or owner role in team {team}"
            ),
        ));
    }
    // The stored team and name are validated names: no path tricks.
    let path = hosted_repository(&state.git_dir, &pipeline.team, &pipeline.name);
    ensure_repository(&path).await.map_err(|e| {
        refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("Berth: cannot create the repository: {e}"),
        )
    })?;
    Ok((pipeline, path))
}

/// Creates the bare repository at `path` unless it exists.
async fn ensure_repository(path: &Path) -> std::io::Result<()> {
    if path.join("HEAD").exists() {
        return Ok(());
    }
    if let Some(parent) = path.parent() {
        tokio::fs::create_dir_all(parent).await?;
    }
    let output = Command::new("git")
        .args(["init", "--quiet", "--bare", "--initial-branch=main"])
        .arg(path)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .await?;
    if output.status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(
            String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        ))
    }
}

#[derive(Debug, Deserialize)]
struct InfoRefsParams {
    service: Option<String>,
}

/// `GET …/info/refs?service=git-upload-pack|git-receive-pack`: the ref advertisement.
async fn info_refs(
    State(state): State<ApiState>,
    UrlPath((team, repository)): UrlPath<(String, String)>,
    Query(params): Query<InfoRefsParams>,
    request: Request,
) -> Response {
    let Some(service) = params.service.as_deref().and_then(Service::parse) else {
        return refuse(
            StatusCode::FORBIDDEN,
            "Berth serves git's smart HTTP protocol only (git 1.6.6 or newer)",
        );
    };
    let (headers, source) = (request.headers().clone(), source_of(&request));
    let principal = match authenticate(&state, &headers, &source).await {
        Ok(principal) => principal,
        Err(refusal) => return refusal,
    };
    let path = match open_repository(&state, &principal, &team, &repository, service).await {
        Ok((_, path)) => path,
        Err(refusal) => return refusal,
    };
    // A team out of storage hears it before git packs anything (git shows this answer's
    // text; a refusal of the push request itself only shows as an HTTP status).
    if service == Service::ReceivePack
        && let Err(refusal) = push_allowance(&state, &team).await
    {
        return refusal;
    }
    let output = service
        .command(&path)
        .arg("--advertise-refs")
        .stdin(Stdio::null())
        .output()
        .await;
    let output = match output {
        Ok(output) if output.status.success() => output.stdout,
        Ok(output) => {
            return refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!(
                    "Berth: git {} failed: {}",
                    service.name(),
                    String::from_utf8_lossy(&output.stderr).trim()
                ),
            );
        }
        Err(e) => {
            return refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("Berth: cannot run git: {e}"),
            );
        }
    };
    let mut body = pktline::encode(format!("# service={}\n", service.name()).as_bytes());
    body.extend_from_slice(pktline::FLUSH);
    body.extend(output);
    (
        [
            (
                header::CONTENT_TYPE,
                format!("application/x-{}-advertisement", service.name()),
            ),
            (header::CACHE_CONTROL, "no-cache".to_owned()),
        ],
        body,
    )
        .into_response()
}

/// The response of a service call.
fn result_response(service: Service, body: Body) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                format!("application/x-{}-result", service.name()),
            ),
            (header::CACHE_CONTROL, "no-cache".to_owned()),
        ],
        body,
    )
        .into_response()
}

/// A git service running for one request, with the caller it runs for.
struct Started {
    principal: Principal,
    pipeline: Pipeline,
    path: PathBuf,
    child: Child,
    stdin: tokio::process::ChildStdin,
    stdout: tokio::process::ChildStdout,
    /// Everything git writes to stderr, once it exits.
    stderr: tokio::task::JoinHandle<String>,
}

/// Checks the caller and starts `service` on the pipeline's repository.
async fn start_service(
    state: &ApiState,
    team: &str,
    repository: &str,
    service: Service,
    headers: &HeaderMap,
    source: &str,
) -> Result<Started, Response> {
    let principal = authenticate(state, headers, source).await?;
    let (pipeline, path) = open_repository(state, &principal, team, repository, service).await?;
    let mut child = service.command(&path).spawn().map_err(|e| {
        refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("Berth: cannot run git: {e}"),
        )
    })?;
    let (Some(stdin), Some(stdout), Some(mut stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Berth: git has no pipes",
        ));
    };
    let stderr = tokio::spawn(async move {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text).await;
        text
    });
    Ok(Started {
        principal,
        pipeline,
        path,
        child,
        stdin,
        stdout,
        stderr,
    })
}

/// Whether the request body is gzip-compressed (git compresses large fetch requests).
fn is_gzip(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("gzip") || v.trim() == "x-gzip")
}

/// Why a request body was not read to its end.
#[derive(Debug, Clone, PartialEq, Eq)]
enum BodyError {
    /// More than the limit, counted after decompression.
    TooLarge(u64),
    /// A gzip body that does not inflate.
    Corrupt(String),
    /// The connection failed mid-body.
    Read(String),
}

impl BodyError {
    fn refusal(&self) -> Response {
        match self {
            BodyError::TooLarge(limit) => refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the request is larger than {} MiB once decompressed",
                    limit >> 20
                ),
            ),
            BodyError::Corrupt(why) => refuse(
                StatusCode::BAD_REQUEST,
                format!("the gzip-encoded request does not inflate: {why}"),
            ),
            BodyError::Read(why) => refuse(
                StatusCode::BAD_REQUEST,
                format!("the request could not be read: {why}"),
            ),
        }
    }
}

/// Compressed bytes inflated per step: at most about a thousand times as many come out, so
/// a tiny body of zeros never becomes a large buffer at once.
const INFLATE_STEP: usize = 1024;

/// A request body as plain bytes, a piece at a time: inflated when gzip-encoded, and cut off
/// once more than `limit` plain bytes came out.
struct PlainBody {
    chunks: axum::body::BodyDataStream,
    inflater: Option<flate2::write::GzDecoder<Vec<u8>>>,
    /// Compressed bytes received but not inflated yet.
    compressed: Bytes,
    limit: u64,
    total: u64,
    ended: bool,
}

impl PlainBody {
    fn new(request: Request, limit: u64) -> Self {
        let gzip = is_gzip(request.headers());
        PlainBody {
            chunks: request.into_body().into_data_stream(),
            inflater: gzip.then(|| flate2::write::GzDecoder::new(Vec::new())),
            compressed: Bytes::new(),
            limit,
            total: 0,
            ended: false,
        }
    }

    /// The next plain bytes; `None` at the end.
    async fn next(&mut self) -> Option<Result<Bytes, BodyError>> {
        use std::io::Write as _;
        loop {
            if let Some(inflater) = &mut self.inflater {
                if !self.compressed.is_empty() {
                    let step = self.compressed.len().min(INFLATE_STEP);
                    let piece = self.compressed.split_to(step);
                    if let Err(e) = inflater.write_all(&piece) {
                        return Some(Err(BodyError::Corrupt(e.to_string())));
                    }
                    let plain = std::mem::take(inflater.get_mut());
                    if !plain.is_empty() {
                        return Some(self.count(Bytes::from(plain)));
                    }
                    continue;
                }
                if self.ended {
                    let mut inflater = self.inflater.take()?;
                    if let Err(e) = inflater.try_finish() {
                        return Some(Err(BodyError::Corrupt(e.to_string())));
                    }
                    let plain = std::mem::take(inflater.get_mut());
                    return (!plain.is_empty()).then(|| self.count(Bytes::from(plain)));
                }
            } else if self.ended {
                return None;
            }
            match self.chunks.next().await {
                None => self.ended = true,
                Some(Err(e)) => return Some(Err(BodyError::Read(e.to_string()))),
                Some(Ok(chunk)) if self.inflater.is_some() => self.compressed = chunk,
                Some(Ok(chunk)) => return Some(self.count(chunk)),
            }
        }
    }

    fn count(&mut self, plain: Bytes) -> Result<Bytes, BodyError> {
        self.total = self.total.saturating_add(plain.len() as u64);
        if self.total > self.limit {
            return Err(BodyError::TooLarge(self.limit));
        }
        Ok(plain)
    }

    /// The whole body, or why not.
    async fn read_all(mut self) -> Result<Vec<u8>, BodyError> {
        let mut all = Vec::new();
        while let Some(chunk) = self.next().await {
            all.extend_from_slice(&chunk?);
        }
        Ok(all)
    }
}

/// Copies the request body into git's stdin (decompressed, at most `limit` bytes), handing
/// the first bytes to `head` until it says it has seen enough. A body past the limit is cut
/// off, which git reports to the pusher as a broken request.
async fn feed_stdin(
    body: PlainBody,
    mut stdin: tokio::process::ChildStdin,
    mut head: impl FnMut(&[u8]) -> bool,
) {
    let mut body = body;
    let mut looking = true;
    while let Some(chunk) = body.next().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(error) => {
                tracing::warn!(?error, "git request body cut off");
                return;
            }
        };
        if looking {
            looking = head(&chunk);
        }
        if stdin.write_all(&chunk).await.is_err() {
            return;
        }
    }
}

/// `POST …/git-upload-pack`: a fetch or clone.
async fn upload_pack(
    State(state): State<ApiState>,
    UrlPath((team, repository)): UrlPath<(String, String)>,
    request: Request,
) -> Response {
    let service = Service::UploadPack;
    let (headers, source) = (request.headers().clone(), source_of(&request));
    let started = match start_service(&state, &team, &repository, service, &headers, &source).await
    {
        Ok(started) => started,
        Err(refusal) => return refusal,
    };
    let Started {
        mut child,
        stdin,
        stdout,
        stderr,
        ..
    } = started;
    // A fetch request is small (the refs wanted and had): read it whole, bounded, so a body
    // that inflates past the limit gets a clear refusal rather than a cut-off git.
    let body = match PlainBody::new(request, FETCH_REQUEST_LIMIT)
        .read_all()
        .await
    {
        Ok(body) => body,
        Err(error) => {
            let _ = child.start_kill();
            return error.refusal();
        }
    };
    tokio::spawn(async move {
        let mut stdin = stdin;
        let _ = stdin.write_all(&body).await;
    });
    tokio::spawn(async move {
        if let Ok(status) = child.wait().await
            && !status.success()
        {
            let text = stderr.await.unwrap_or_default();
            tracing::debug!(%status, stderr = %text.trim(), "git upload-pack failed");
        }
    });
    result_response(
        service,
        Body::from_stream(tokio_util::io::ReaderStream::new(stdout)),
    )
}

/// `POST …/git-receive-pack`: a push. The commits are stored by git; then every pushed branch
/// the pipeline builds gets a build, followed in the push's output.
async fn receive_pack(
    State(state): State<ApiState>,
    UrlPath((team, repository)): UrlPath<(String, String)>,
    request: Request,
) -> Response {
    let service = Service::ReceivePack;
    let (headers, source) = (request.headers().clone(), source_of(&request));
    let started = match start_service(&state, &team, &repository, service, &headers, &source).await
    {
        Ok(started) => started,
        Err(refusal) => return refusal,
    };
    let Started {
        principal,
        pipeline,
        path,
        mut child,
        stdin,
        stdout,
        stderr,
    } = started;
    // A push counts against the team's storage quota, with its registry repositories.
    let allowance = match push_allowance(&state, &team).await {
        Ok(allowance) => allowance,
        Err(refusal) => {
            let _ = child.start_kill();
            return refusal;
        }
    };
    let (commands_found, commands) = oneshot::channel::<PushCommands>();
    tokio::spawn(feed_stdin(PlainBody::new(request, allowance), stdin, {
        let mut start = Vec::new();
        let mut found = Some(commands_found);
        move |chunk| {
            start.extend_from_slice(chunk);
            match pktline::parse_push_commands(&start) {
                Ok(Some(parsed)) => {
                    if let Some(found) = found.take() {
                        let _ = found.send(parsed);
                    }
                    false
                }
                Ok(None) => start.len() < COMMANDS_LIMIT,
                Err(_) => false,
            }
        }
    }));
    let (output, received) = mpsc::channel::<Result<Bytes, std::io::Error>>(32);
    let push = Push {
        state,
        principal,
        pipeline,
        path,
        source,
    };
    tokio::spawn(async move {
        let held_flush = forward_packets(stdout, &output).await;
        let status = child.wait().await;
        let errors = stderr.await.unwrap_or_default();
        if !status.as_ref().is_ok_and(|s| s.success()) {
            tracing::warn!(?status, stderr = %errors.trim(), "git receive-pack failed");
        }
        if let Ok(commands) = commands.await {
            push.after_receive(&commands, &output).await;
        }
        if held_flush {
            let _ = output.send(Ok(Bytes::from_static(pktline::FLUSH))).await;
        }
    });
    result_response(
        service,
        Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(received)),
    )
}

/// How many bytes a push to `team` may bring: what its storage quota (registry bytes, shared
/// by its registry repositories and its hosted git repositories) has left, at most
/// [`PUSH_REQUEST_LIMIT`]; a refusal when nothing is left.
async fn push_allowance(state: &ApiState, team: &str) -> Result<u64, Response> {
    let unavailable = |e: String| refuse(StatusCode::SERVICE_UNAVAILABLE, e);
    let quota = match state.store.get_team(team).await {
        Ok(Some(team)) => team.quota,
        Ok(None) => return Err(refuse(StatusCode::NOT_FOUND, format!("no team {team}"))),
        Err(e) => return Err(unavailable(format!("cannot read the team's quota: {e}"))),
    };
    let Some(limit) = quota.registry_bytes else {
        return Ok(PUSH_REQUEST_LIMIT);
    };
    let in_use = crate::quotas::storage_usage(state, team)
        .await
        .map_err(|e| unavailable(e.message))?;
    if in_use >= limit {
        let exceeded = berth_core::quota::QuotaExceeded {
            resource: berth_core::quota::QuotaResource::RegistryStorage,
            asked: 1,
            in_use,
            limit,
        };
        let error = crate::error::quota_refusal(team, &[exceeded]);
        return Err(refuse(StatusCode::FORBIDDEN, error.message));
    }
    Ok((limit - in_use).min(PUSH_REQUEST_LIMIT))
}

/// Passes `receive-pack`'s output through packet by packet, holding back a final flush (the
/// end of the side-band stream) so progress can still be written before it. Returns whether a
/// flush is being held.
async fn forward_packets(
    mut stdout: tokio::process::ChildStdout,
    output: &mpsc::Sender<Result<Bytes, std::io::Error>>,
) -> bool {
    let mut pending = Vec::new();
    let mut held_flush = false;
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let read = match stdout.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        pending.extend_from_slice(&chunk[..read]);
        let mut ready = Vec::new();
        let mut at = 0;
        while let Ok(Some((packet, used))) = pktline::decode(&pending[at..]) {
            if held_flush {
                ready.extend_from_slice(pktline::FLUSH);
                held_flush = false;
            }
            if packet == pktline::Packet::Flush {
                held_flush = true;
            } else {
                ready.extend_from_slice(&pending[at..at + used]);
            }
            at += used;
        }
        if pktline::decode(&pending[at..]).is_err() {
            // Not pkt-lines after all: pass everything through untouched.
            ready.extend_from_slice(&pending[at..]);
            at = pending.len();
        }
        pending.drain(..at);
        if !ready.is_empty() && output.send(Ok(Bytes::from(ready))).await.is_err() {
            return false;
        }
    }
    if !pending.is_empty() {
        let _ = output.send(Ok(Bytes::from(pending))).await;
    }
    held_flush
}

/// One push, once git has stored it.
struct Push {
    state: ApiState,
    principal: Principal,
    pipeline: Pipeline,
    path: PathBuf,
    source: String,
}

impl Push {
    /// Starts the builds the push asks for and, when the client reads progress, follows them.
    async fn after_receive(
        &self,
        commands: &PushCommands,
        output: &mpsc::Sender<Result<Bytes, std::io::Error>>,
    ) {
        let band = commands.progress_band();
        let say = |text: String| async move {
            if let Some(max) = band {
                let _ = output
                    .send(Ok(Bytes::from(pktline::progress(&text, max))))
                    .await;
            }
        };
        let pattern = BranchPattern::new(&self.pipeline.branch_pattern).ok();
        let mut builds = Vec::new();
        for update in &commands.updates {
            if update.is_delete() || !self.ref_points_at(&update.name, &update.new).await {
                continue;
            }
            self.audit(&format!("{} {}", update.name, update.new)).await;
            let Some(branch) = branch_from_ref(&update.name) else {
                continue;
            };
            if !pattern.as_ref().is_some_and(|p| p.matches(branch)) {
                say(format!(
                    "Berth: branch {branch} does not match the pipeline's branches ({}): no build\n",
                    self.pipeline.branch_pattern
                ))
                .await;
                continue;
            }
            match self.start_build(branch, &update.new).await {
                Ok(build) => {
                    say(format!(
                        "Berth: build #{} of {}/{} queued for {branch} at {} (build id {})\n",
                        build.number,
                        self.pipeline.team,
                        self.pipeline.name,
                        short(&update.new),
                        build.id
                    ))
                    .await;
                    builds.push(build);
                }
                Err(e) => say(format!("Berth: cannot start a build: {e}\n")).await,
            }
        }
        if band.is_none() {
            return;
        }
        for build in builds {
            let Some(ended) = self.follow(&build, output, band.unwrap_or(995)).await else {
                say(format!(
                    "Berth: build {} continues; follow it with: berth builds logs {} -f\n",
                    build.id, build.id
                ))
                .await;
                continue;
            };
            say(summary(&ended)).await;
        }
    }

    /// Whether git stored `sha` as `git_ref` (the update was not refused).
    async fn ref_points_at(&self, git_ref: &str, sha: &str) -> bool {
        let output = Command::new("git")
            .args(["rev-parse", "--verify", "--quiet"])
            .arg(git_ref)
            .current_dir(&self.path)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .output()
            .await;
        output.is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == sha)
    }

    async fn start_build(&self, branch: &str, sha: &str) -> Result<Build, berth_store::StoreError> {
        self.state
            .builds
            .queue(
                self.pipeline.clone(),
                BuildTrigger::GitPush,
                self.principal.username(),
                branch.to_owned(),
                Some(sha.to_owned()),
            )
            .await
    }

    /// Records the push in the audit log.
    async fn audit(&self, detail: &str) {
        let state = &self.state;
        let entry = AuditEntry {
            id: 0,
            at: (state.clock)(),
            actor: self.principal.username().to_owned(),
            action: berth_core::audit::GIT_PUSH.to_owned(),
            team: Some(self.pipeline.team.clone()),
            object: format!("pipelines/{}/{}", self.pipeline.team, self.pipeline.name),
            source: self.source.clone(),
            outcome: AuditOutcome::Success,
            status: 200,
            detail: detail.to_owned(),
        };
        if let Err(error) = state.store.append_audit(&entry).await {
            tracing::warn!(%error, "could not record the git push in the audit log");
        }
    }

    /// Writes the build's log to the client as it grows; the ended build, or `None` when the
    /// client went away or the build outlasted [`FOLLOW_LIMIT`].
    async fn follow(
        &self,
        build: &Build,
        output: &mpsc::Sender<Result<Bytes, std::io::Error>>,
        band: usize,
    ) -> Option<Build> {
        let mut follower = BuildFollower::new(&self.state, build.id, 0);
        let mut lines = WholeLines::starting_at(0);
        let started = tokio::time::Instant::now();
        loop {
            let look = follower.look().await;
            let complete = look.complete();
            let mut batches = lines.push(&look.appended);
            if complete {
                batches.extend(lines.finish());
            }
            for batch in batches {
                let framed = pktline::progress(&batch.text, band);
                if output.send(Ok(Bytes::from(framed))).await.is_err() {
                    return None;
                }
            }
            if complete {
                return look.build;
            }
            if started.elapsed() > FOLLOW_LIMIT || !pause(look.more_to_read(), output).await {
                return None;
            }
        }
    }
}

fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

/// The closing line of a followed build.
fn summary(build: &Build) -> String {
    let mut text = format!("Berth: build #{} {}", build.number, build.status);
    if let Some(digest) = &build.image_digest {
        text.push_str(&format!("; image {digest}"));
    }
    if let Some(rollout) = &build.rollout_outcome {
        text.push_str(&format!("; {rollout}"));
    }
    if let Some(reason) = build.reason.as_deref().filter(|r| !r.is_empty()) {
        text.push_str(&format!(": {reason}"));
    }
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(body: Vec<u8>, gzip: bool) -> Request {
        let mut builder = Request::builder().uri("/");
        if gzip {
            builder = builder.header(header::CONTENT_ENCODING, "gzip");
        }
        builder.body(Body::from(body)).unwrap()
    }

    fn gzip(plain: &[u8]) -> Vec<u8> {
        use std::io::Write as _;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        encoder.write_all(plain).unwrap();
        encoder.finish().unwrap()
    }

    #[tokio::test]
    async fn bodies_are_bounded_after_decompression() {
        // 64 MiB of zeros travel as about 64 KiB: the limit counts what comes out.
        let bomb = gzip(&vec![0u8; 64 << 20]);
        assert!(bomb.len() < 128 << 10, "{}", bomb.len());
        let limit = 1 << 20;
        assert_eq!(
            PlainBody::new(request(bomb.clone(), true), limit)
                .read_all()
                .await,
            Err(BodyError::TooLarge(limit))
        );
        let text = b"0032want 0123456789abcdef0123456789abcdef01234567\n0000".repeat(100);
        assert_eq!(
            PlainBody::new(request(gzip(&text), true), limit)
                .read_all()
                .await
                .unwrap(),
            text
        );
        assert_eq!(
            PlainBody::new(request(text.clone(), false), limit)
                .read_all()
                .await
                .unwrap(),
            text
        );
        assert_eq!(
            PlainBody::new(request(vec![1u8; (limit + 1) as usize], false), limit)
                .read_all()
                .await,
            Err(BodyError::TooLarge(limit))
        );
        assert!(matches!(
            PlainBody::new(request(b"not gzip at all".to_vec(), true), limit)
                .read_all()
                .await,
            Err(BodyError::Corrupt(_))
        ));
        assert_eq!(
            BodyError::TooLarge(16 << 20).refusal().status(),
            StatusCode::PAYLOAD_TOO_LARGE
        );
    }

    #[test]
    fn services_and_the_roles_they_need() {
        let cases = [
            (
                "git-upload-pack",
                Some((Service::UploadPack, TeamAction::Read)),
            ),
            (
                "git-receive-pack",
                Some((Service::ReceivePack, TeamAction::Deploy)),
            ),
            ("git-upload-archive", None),
            ("", None),
        ];
        for (name, want) in cases {
            let got = Service::parse(name).map(|s| (s, s.action()));
            assert_eq!(got, want, "{name}");
            if let Some((service, _)) = got {
                assert_eq!(service.name(), name);
            }
        }
    }

    #[test]
    fn gzip_bodies_are_recognised() {
        let cases = [
            (Some("gzip"), true),
            (Some("x-gzip"), true),
            (Some("GZIP"), true),
            (Some("identity"), false),
            (None, false),
        ];
        for (encoding, want) in cases {
            let mut headers = HeaderMap::new();
            if let Some(value) = encoding {
                headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static(value));
            }
            assert_eq!(is_gzip(&headers), want, "{encoding:?}");
        }
    }
}
