//! A build, live: `GET /api/v1/builds/{id}/events` as Server-Sent Events, and the log tail it
//! shares with the plain-text log (`GET /api/v1/builds/{id}/logs`).
//!
//! The stream sends, in order:
//! * `build`: the [`BuildDto`] (JSON), first, then again whenever the build changes (status,
//!   steps…) while it runs;
//! * `log`: whole lines of the build's log, each ending in a newline (several lines per event
//!   when they came together); the SSE id is the byte offset in the log after them, so a
//!   client that reconnects with `Last-Event-ID` (or `?after=`) resumes the log where it
//!   stopped;
//! * `end`: the terminal [`BuildDto`], after the last line; then the stream closes.
//!
//! A build that has already ended gets its first `build`, its whole log and `end` at once. A
//! stream that closes without `end` (the build was deleted, the store failed) is worth
//! reconnecting to.
//!
//! Both streams, and the output of a `git push` to Berth (`git_http.rs`), follow a build the
//! same way ([`BuildFollower`], [`WholeLines`]): they read its state, then what its log gained. The order matters: when the state read was terminal, the worker had written
//! every line before it, so the read after it holds the rest of the log.

use std::convert::Infallible;
use std::path::PathBuf;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use berth_core::accounts::{TeamAction, authorize};
use berth_core::pipeline::Build;
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::mpsc;
use utoipa::IntoParams;

use crate::ApiState;
use crate::auth::{AuthMethod, Principal};
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiPath as Path, ApiQuery};
use crate::pipeline_dto::BuildDto;
use crate::pipelines::build_for;

/// How often a live stream checks again that its caller may still read what it follows.
pub(crate) const REAUTHORIZE_INTERVAL: Duration = Duration::from_secs(2);

/// The caller of a live stream, checked again while the stream runs: a stream outlives the
/// request that authorised it, so it reloads the user (still enabled), their token or session
/// (still usable) and memberships, and ends once they may no longer read the team.
#[derive(Clone)]
pub(crate) struct StreamAccess {
    state: ApiState,
    user_id: i64,
    method: AuthMethod,
    /// When access was last confirmed.
    checked: tokio::time::Instant,
}

impl StreamAccess {
    /// The access `principal` had when the stream was opened (checked by the handler).
    pub fn of(state: &ApiState, principal: &Principal) -> Self {
        StreamAccess {
            state: state.clone(),
            user_id: principal.user.id,
            method: principal.method.clone(),
            checked: tokio::time::Instant::now(),
        }
    }

    /// Whether the caller, as stored now, may read `team`; a store failure counts as no.
    pub async fn may_read(&mut self, team: &str) -> bool {
        let allowed = self.check(team).await.unwrap_or_else(|error| {
            tracing::warn!(%error, "cannot check a stream's access again; ending it");
            false
        });
        if allowed {
            self.checked = tokio::time::Instant::now();
        }
        allowed
    }

    /// Whether [`REAUTHORIZE_INTERVAL`] has passed since access was last confirmed.
    pub fn due(&self) -> bool {
        self.checked.elapsed() >= REAUTHORIZE_INTERVAL
    }

    async fn check(&self, team: &str) -> Result<bool, berth_store::StoreError> {
        let store = &self.state.store;
        let now = (self.state.clock)();
        let Some(user) = store.get_user(self.user_id).await? else {
            return Ok(false);
        };
        let credential_live = match &self.method {
            AuthMethod::Token { id } => store
                .list_api_tokens(self.user_id)
                .await?
                .iter()
                .any(|token| token.id == *id && token.is_usable(now)),
            AuthMethod::Session { session_hash, .. } => store
                .find_session(session_hash)
                .await?
                .is_some_and(|session| session.user_id == self.user_id && session.is_live(now)),
            // Passwords authenticate registry requests, not streams; nothing to revoke.
            AuthMethod::Password => true,
        };
        if !credential_live {
            return Ok(false);
        }
        let role = store
            .list_memberships_of_user(self.user_id)
            .await?
            .into_iter()
            .find(|m| m.team == team)
            .map(|m| m.role);
        Ok(authorize(&user, role, TeamAction::Read))
    }
}

/// How often a followed build is looked at again.
const FOLLOW_INTERVAL: Duration = Duration::from_millis(300);

/// At most this much log text goes into one `log` event (unless one line is longer).
const MAX_LOG_EVENT_BYTES: usize = 16 * 1024;

/// At most this much of a log is read at once, so a long log streams in bounded memory.
const MAX_READ_BYTES: u64 = 1024 * 1024;

/// The log file of a build, read from an offset on as it grows.
struct LogTail {
    path: PathBuf,
    offset: u64,
}

impl LogTail {
    /// What was appended since the last read, up to [`MAX_READ_BYTES`]; empty when nothing
    /// was (or there is no log yet: a queued build has none).
    async fn read_new(&mut self) -> Vec<u8> {
        let mut appended = Vec::new();
        if let Ok(mut file) = tokio::fs::File::open(&self.path).await
            && file
                .seek(std::io::SeekFrom::Start(self.offset))
                .await
                .is_ok()
            && file
                .take(MAX_READ_BYTES)
                .read_to_end(&mut appended)
                .await
                .is_ok()
        {
            self.offset += appended.len() as u64;
            return appended;
        }
        Vec::new()
    }
}

/// One look at a followed build: its state, then what its log gained since the last look.
pub(crate) struct Look {
    /// `None` when the build is gone or the store did not answer.
    pub build: Option<Build>,
    pub appended: Vec<u8>,
}

impl Look {
    /// Whether the build had ended (or is gone) before the log was read.
    pub fn build_ended(&self) -> bool {
        self.build
            .as_ref()
            .is_none_or(|build| build.status.is_terminal())
    }

    /// Whether the read stopped at its limit: more of the log is there now, look again at once.
    pub fn more_to_read(&self) -> bool {
        self.appended.len() as u64 >= MAX_READ_BYTES
    }

    /// Whether nothing more will come: the build had ended before the read, and the read
    /// reached the end of the log.
    pub fn complete(&self) -> bool {
        self.build_ended() && !self.more_to_read()
    }
}

/// Follows one build: its state in the store and its log file.
pub(crate) struct BuildFollower {
    state: ApiState,
    id: i64,
    log: LogTail,
}

impl BuildFollower {
    /// Follows build `id`, its log from byte `offset` on.
    pub fn new(state: &ApiState, id: i64, offset: u64) -> Self {
        BuildFollower {
            state: state.clone(),
            id,
            log: LogTail {
                path: state.build_logs_dir.join(format!("{id}.log")),
                offset,
            },
        }
    }

    /// The build's state, then what its log gained (in that order: see the module doc).
    pub async fn look(&mut self) -> Look {
        let build = match self.state.store.get_build(self.id).await {
            Ok(build) => build,
            Err(error) => {
                tracing::warn!(%error, build = self.id, "cannot read a followed build");
                None
            }
        };
        let appended = self.log.read_new().await;
        Look { build, appended }
    }
}

/// Waits before the next look (not at all while the log has more to read); `false` when the
/// reader of `sender` went away meanwhile.
pub(crate) async fn pause<T>(more_to_read: bool, sender: &mpsc::Sender<T>) -> bool {
    if more_to_read {
        return !sender.is_closed();
    }
    tokio::select! {
        () = sender.closed() => false,
        () = tokio::time::sleep(FOLLOW_INTERVAL) => true,
    }
}

/// Log text for `log` events: whole lines, with the offset in the log after them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LogBatch {
    pub text: String,
    end_offset: u64,
}

/// Cuts what a log gains into batches of whole lines; a last line without its newline yet is
/// held until the rest comes (the worker writes whole lines, so it comes soon) or the log ends.
#[derive(Debug, Default)]
pub(crate) struct WholeLines {
    /// Bytes after the last newline, not yet sent.
    partial: Vec<u8>,
    /// The offset in the log where `partial` starts.
    partial_offset: u64,
}

impl WholeLines {
    pub fn starting_at(offset: u64) -> Self {
        WholeLines {
            partial: Vec::new(),
            partial_offset: offset,
        }
    }

    /// The whole lines among what was held and `appended`, in batches.
    pub fn push(&mut self, appended: &[u8]) -> Vec<LogBatch> {
        self.partial.extend_from_slice(appended);
        let Some(last_newline) = self.partial.iter().rposition(|&b| b == b'\n') else {
            return Vec::new();
        };
        let rest = self.partial.split_off(last_newline + 1);
        let whole = std::mem::replace(&mut self.partial, rest);
        let batches = batches(&whole, self.partial_offset);
        self.partial_offset += whole.len() as u64;
        batches
    }

    /// What is still held, as a last line (the log ended without a newline).
    pub fn finish(&mut self) -> Vec<LogBatch> {
        if self.partial.is_empty() {
            return Vec::new();
        }
        let mut last = std::mem::take(&mut self.partial);
        let end_offset = self.partial_offset + last.len() as u64;
        self.partial_offset = end_offset;
        last.push(b'\n');
        vec![LogBatch {
            text: event_text(&last),
            end_offset,
        }]
    }
}

/// Whole lines (`lines` ends in a newline) starting at `offset`, in batches of at most
/// [`MAX_LOG_EVENT_BYTES`] unless one line is longer.
fn batches(lines: &[u8], offset: u64) -> Vec<LogBatch> {
    let mut batches = Vec::new();
    let mut start = 0;
    while start < lines.len() {
        let window_end = (start + MAX_LOG_EVENT_BYTES).min(lines.len());
        let end = lines[start..window_end]
            .iter()
            .rposition(|&b| b == b'\n')
            .map(|i| start + i + 1)
            // One line longer than a batch: all of it.
            .or_else(|| {
                lines[start..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .map(|i| start + i + 1)
            })
            .unwrap_or(lines.len());
        batches.push(LogBatch {
            text: event_text(&lines[start..end]),
            end_offset: offset + end as u64,
        });
        start = end;
    }
    batches
}

/// Log bytes as SSE data: text (invalid UTF-8 replaced), carriage returns as line ends (SSE
/// treats a lone `\r` as one, so it could not pass through unchanged).
fn event_text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .replace("\r\n", "\n")
        .replace('\r', "\n")
}

/// Where a build's event stream resumes its log.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct BuildEventsParams {
    /// Resume the log at this byte offset (the id of the last `log` event received); the
    /// `Last-Event-ID` header does the same. Default: the log from its start.
    pub after: Option<u64>,
}

/// The log offset a reconnecting client asks for: `after`, else `Last-Event-ID`, else 0.
fn resume_offset(params: &BuildEventsParams, headers: &HeaderMap) -> u64 {
    params
        .after
        .or_else(|| {
            headers
                .get("last-event-id")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// The build, live, as Server-Sent Events: `build` (a BuildDto) first and on every change,
/// `log` (whole log lines; the SSE id is the log offset after them), and `end` (the terminal
/// BuildDto) before the stream closes. Reconnect with `Last-Event-ID` (or `after`) to resume
/// the log.
#[utoipa::path(get, path = "/api/v1/builds/{id}/events", tag = "pipelines",
    params(("id" = i64, Path), BuildEventsParams,
        ("Last-Event-ID" = Option<u64>, Header, description = "Like `after`: the id of the last `log` event received")),
    responses((status = 200, content_type = "text/event-stream", body = BuildDto,
        description = "events `build` and `end` carry a BuildDto; `log` carries log lines"),
        (status = 404, body = ErrorBody)))]
pub async fn build_events(
    State(state): State<ApiState>,
    principal: Principal,
    Path(id): Path<i64>,
    headers: HeaderMap,
    ApiQuery(params): ApiQuery<BuildEventsParams>,
) -> ApiResult<Response> {
    let build = build_for(&state, &principal, id, TeamAction::Read).await?;
    let offset = resume_offset(&params, &headers);
    let (events, receiver) = mpsc::channel::<Event>(64);
    let access = StreamAccess::of(&state, &principal);
    tokio::spawn(send_events(state, build.team, access, id, offset, events));
    let stream = tokio_stream::StreamExt::map(
        tokio_stream::wrappers::ReceiverStream::new(receiver),
        Ok::<_, Infallible>,
    );
    Ok(sse_response(stream))
}

/// A Server-Sent Events response of `stream`, with keep-alive comments, that no proxy buffers
/// (`X-Accel-Buffering: no`).
pub(crate) fn sse_response<S>(stream: S) -> Response
where
    S: futures::Stream<Item = Result<Event, Infallible>> + Send + 'static,
{
    (
        [(header::HeaderName::from_static("x-accel-buffering"), "no")],
        Sse::new(stream).keep_alive(KeepAlive::default()),
    )
        .into_response()
}

/// A `build` or `end` event.
fn build_event(name: &'static str, dto_json: &str) -> Event {
    Event::default().event(name).data(dto_json)
}

/// Sends the events of build `id` (of `team`), its log from `offset` on, until it ends, the
/// client goes, or the caller may no longer read the team (checked every
/// [`REAUTHORIZE_INTERVAL`]; the stream then ends without `end`).
async fn send_events(
    state: ApiState,
    team: String,
    mut access: StreamAccess,
    id: i64,
    offset: u64,
    events: mpsc::Sender<Event>,
) {
    let mut follower = BuildFollower::new(&state, id, offset);
    let mut lines = WholeLines::starting_at(offset);
    // The JSON of the last BuildDto sent.
    let mut shown: Option<String> = None;
    loop {
        if access.due() && !access.may_read(&team).await {
            return;
        }
        let look = follower.look().await;
        // Build ids are never reused, but the build must still be this team's.
        if look.build.as_ref().is_some_and(|b| b.team != team) {
            return;
        }
        let (build_ended, complete) = (look.build_ended(), look.complete());
        let dto_json = look
            .build
            .as_ref()
            .map(|build| serde_json::to_string(&BuildDto::from(build)).unwrap_or_default());
        let mut batch = Vec::new();
        if let Some(json) = &dto_json
            && (shown.is_none() || (!build_ended && shown.as_ref() != Some(json)))
        {
            batch.push(build_event("build", json));
            shown = Some(json.clone());
        }
        let mut logs = lines.push(&look.appended);
        if complete {
            logs.extend(lines.finish());
        }
        batch.extend(logs.into_iter().map(|log| {
            Event::default()
                .event("log")
                .id(log.end_offset.to_string())
                .data(log.text)
        }));
        if complete && let Some(json) = &dto_json {
            batch.push(build_event("end", json));
        }
        for event in batch {
            if events.send(event).await.is_err() {
                return;
            }
        }
        if complete || !pause(look.more_to_read(), &events).await {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(text: &str, end_offset: u64) -> LogBatch {
        LogBatch {
            text: text.to_owned(),
            end_offset,
        }
    }

    #[test]
    fn whole_lines_are_sent_and_partial_ones_held() {
        // (appended, batches sent) in order, from offset 10.
        let steps: &[(&[u8], Vec<LogBatch>)] = &[
            (b"", vec![]),
            (
                b"[fetch] ==> cloning\n",
                vec![batch("[fetch] ==> cloning\n", 30)],
            ),
            (b"[build] | step 1", vec![]),
            (b"/2\n[build] | st", vec![batch("[build] | step 1/2\n", 49)]),
            (b"ep 2/2\n\n", vec![batch("[build] | step 2/2\n\n", 69)]),
            (b"a\r\nb\rc\n", vec![batch("a\nb\nc\n", 76)]),
            (b"\xff\n", vec![batch("\u{fffd}\n", 78)]),
        ];
        let mut lines = WholeLines::starting_at(10);
        for (appended, want) in steps {
            assert_eq!(&lines.push(appended), want, "{appended:?}");
        }
        assert_eq!(lines.finish(), vec![]);
        assert_eq!(lines.push(b"no newline"), vec![]);
        assert_eq!(lines.finish(), vec![batch("no newline\n", 88)]);
        assert_eq!(lines.finish(), vec![]);
    }

    #[test]
    fn long_logs_come_in_batches_of_whole_lines() {
        let line = format!("{}\n", "x".repeat(999));
        let log = line.repeat(40);
        let sent = batches(log.as_bytes(), 5);
        assert_eq!(sent.len(), 3, "16 + 16 + 8 lines");
        assert!(sent.iter().all(|b| b.text.ends_with('\n')));
        assert_eq!(joined(&sent), log);
        assert_eq!(sent[0].end_offset, 5 + 16 * 1000);
        assert_eq!(sent[2].end_offset, 5 + 40 * 1000);

        let huge = format!("{}\nshort\n", "y".repeat(MAX_LOG_EVENT_BYTES * 2));
        let sent = batches(huge.as_bytes(), 0);
        assert_eq!(sent.len(), 2);
        assert_eq!(sent[0].text.len(), MAX_LOG_EVENT_BYTES * 2 + 1);
        assert_eq!(sent[1], batch("short\n", huge.len() as u64));
    }

    fn joined(batches: &[LogBatch]) -> String {
        batches.iter().map(|b| b.text.as_str()).collect()
    }

    #[test]
    fn resume_offsets() {
        // (after, Last-Event-ID, offset)
        let cases = [
            (None, None, 0),
            (None, Some("1234"), 1234),
            (None, Some(" 7 "), 7),
            (None, Some("-1"), 0),
            (None, Some("abc"), 0),
            (Some(99), None, 99),
            (Some(99), Some("7"), 99),
        ];
        for (after, header, want) in cases {
            let mut headers = HeaderMap::new();
            if let Some(value) = header {
                headers.insert("last-event-id", value.parse().unwrap());
            }
            let params = BuildEventsParams { after };
            assert_eq!(
                resume_offset(&params, &headers),
                want,
                "{after:?} {header:?}"
            );
        }
    }

    #[tokio::test]
    async fn the_tail_reads_what_was_appended() {
        let path = std::env::temp_dir().join(format!("berth-log-tail-{}.log", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let mut tail = LogTail {
            path: path.clone(),
            offset: 0,
        };
        assert_eq!(tail.read_new().await, b"", "no log yet");
        std::fs::write(&path, "one\n").unwrap();
        assert_eq!(tail.read_new().await, b"one\n");
        assert_eq!(tail.read_new().await, b"");
        std::fs::write(&path, "one\ntwo\n").unwrap();
        assert_eq!(tail.read_new().await, b"two\n");
        assert_eq!(tail.offset, 8);
        // A long log comes in reads of a bounded size.
        let long = vec![b'x'; MAX_READ_BYTES as usize + 10];
        std::fs::write(&path, [b"one\ntwo\n".as_slice(), &long].concat()).unwrap();
        let first = Look {
            build: None,
            appended: tail.read_new().await,
        };
        assert!(first.more_to_read() && !first.complete());
        let second = Look {
            build: None,
            appended: tail.read_new().await,
        };
        assert_eq!(second.appended.len(), 10);
        assert!(!second.more_to_read() && second.complete());
        std::fs::remove_file(&path).unwrap();
    }
}
