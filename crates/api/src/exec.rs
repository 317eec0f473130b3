//! A command inside an instance over a WebSocket (`GET /api/v1/apps/{name}/exec`), for
//! `berth exec` and the console's terminal; members and owners only.
//!
//! The protocol: the client's first text message starts the command —
//! `{"command": ["sh"], "tty": true, "cols": 80, "rows": 24}` —; then binary messages are its
//! input, text messages `{"resize": {"cols": 120, "rows": 40}}` resize its terminal and
//! `{"stdin_closed": true}` ends its input (a pipe's end). The
//! server answers `{"started": {"instance": "web-3"}}`, sends the output as binary messages,
//! and ends with `{"exit": {"code": 0}}` or `{"error": "…"}`. A session with no input and no
//! output for its idle timeout is closed. Every session is audited when it ends (`apps.exec`:
//! who, which instance, the program, how long, the exit code — never what was typed).

use std::time::{Duration, Instant};

use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, header};
use axum::response::Response;
use berth_core::accounts::TeamAction;
use berth_core::audit::{APPS_EXEC, AuditEntry, AuditOutcome};
use berth_core::planner::InstancePhase;
use berth_engine::ExecSpec;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use utoipa::IntoParams;

use crate::ApiState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiPath as Path, ApiQuery, ClientAddr};

/// A session's idle timeout when the client asks for none.
const DEFAULT_IDLE: Duration = Duration::from_secs(15 * 60);
/// The longest idle timeout a client may ask for.
const MAX_IDLE_SECONDS: u64 = 3600;
/// How long the client has to send its first message.
const START_PATIENCE: Duration = Duration::from_secs(30);

/// Where the command runs.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ExecParams {
    /// The instance (e.g. `web-3`); default: the app's first running instance.
    pub instance: Option<String>,
    /// Close the session after this many seconds without input or output (1 to 3600;
    /// default 900).
    pub idle_timeout_seconds: Option<u64>,
}

/// The client's first message.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StartMessage {
    /// The program and its arguments; default `["sh"]`.
    #[serde(default)]
    pub command: Vec<String>,
    #[serde(default)]
    pub tty: bool,
    pub cols: Option<u16>,
    pub rows: Option<u16>,
}

/// A control message from the client after the start.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ControlMessage {
    pub resize: Option<Size>,
    /// The client's input ended: the command's standard input closes.
    #[serde(default)]
    pub stdin_closed: bool,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
pub struct Size {
    pub cols: u16,
    pub rows: u16,
}

/// Run a command inside one of the app's running instances, over a WebSocket (members and
/// owners; viewers get 403). 409 `instance_not_running` when the instance asked for (or
/// every instance) is not running. See the module's protocol.
#[utoipa::path(get, path = "/api/v1/apps/{name}/exec", tag = "apps",
    params(("name" = String, Path), ExecParams),
    responses((status = 101, description = "the WebSocket session"), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn exec(
    State(state): State<ApiState>,
    principal: Principal,
    Path(name): Path<String>,
    ApiQuery(params): ApiQuery<ExecParams>,
    ClientAddr(source): ClientAddr,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    same_origin(&headers)?;
    let current = state
        .platform
        .app(&principal, &name, TeamAction::Exec)
        .await?;
    let idle = match params.idle_timeout_seconds {
        None => DEFAULT_IDLE,
        Some(seconds) if (1..=MAX_IDLE_SECONDS).contains(&seconds) => Duration::from_secs(seconds),
        Some(_) => {
            return Err(ApiError::field(
                "idle_timeout_seconds",
                format!("must be between 1 and {MAX_IDLE_SECONDS}"),
            ));
        }
    };
    let instances = state.controller.instances(&current.app).await?;
    let chosen = match &params.instance {
        Some(wanted) => instances
            .iter()
            .find(|i| &i.name == wanted)
            .ok_or_else(|| ApiError::not_found(format!("instance {wanted} of app {name}")))?,
        None => instances
            .iter()
            .find(|i| i.phase == InstancePhase::Running)
            .ok_or_else(|| not_running(&format!("app {name} has no running instance")))?,
    };
    if chosen.phase != InstancePhase::Running {
        return Err(not_running(&format!(
            "instance {} is not running: exec needs a running instance",
            chosen.name
        )));
    }
    let upgrade = upgrade.map_err(|e| {
        ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "websocket_required",
            format!("this endpoint speaks WebSocket (Connection: Upgrade): {e}"),
        )
    })?;
    let session = Session {
        state: state.clone(),
        actor: principal.username().to_string(),
        team: current.app.team.clone(),
        app: name,
        instance: chosen.name.clone(),
        container: chosen.container_id.clone(),
        source,
        idle,
    };
    Ok(upgrade.on_upgrade(move |socket| session.run(socket)))
}

fn not_running(message: &str) -> ApiError {
    ApiError::conflict("instance_not_running", message.to_string())
}

/// A browser's WebSocket carries the session cookie from any page: only the console's own
/// origin may open one (other clients send no `Origin`).
fn same_origin(headers: &HeaderMap) -> ApiResult<()> {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) else {
        return Ok(());
    };
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
    if origin_host.eq_ignore_ascii_case(host) {
        Ok(())
    } else {
        Err(ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            "cross_origin",
            format!("a terminal may only be opened from the console's own origin, not {origin}"),
        ))
    }
}

struct Session {
    state: ApiState,
    actor: String,
    team: String,
    app: String,
    instance: String,
    container: String,
    source: String,
    idle: Duration,
}

/// How a session ended.
enum Ending {
    Exited(Option<i64>),
    Failed(String),
}

impl Session {
    async fn run(self, mut socket: WebSocket) {
        let started = Instant::now();
        let start = match tokio::time::timeout(START_PATIENCE, socket.recv()).await {
            Ok(Some(Ok(Message::Text(text)))) => serde_json::from_str::<StartMessage>(&text)
                .map_err(|e| format!("the first message must start a command: {e}")),
            Ok(Some(Ok(_))) => Err("the first message must be a JSON text message".to_string()),
            Ok(Some(Err(error))) => {
                tracing::warn!(%error, "an exec session broke off before it started");
                return;
            }
            Ok(None) => return,
            Err(_) => Err("no command was sent".to_string()),
        };
        let start = match start {
            Ok(start) => start,
            Err(message) => {
                send_error(&mut socket, &message).await;
                return;
            }
        };
        let command = if start.command.is_empty() {
            vec!["sh".to_string()]
        } else {
            start.command
        };
        let program = command[0].clone();
        let ending = self
            .attach(&mut socket, &command, start.tty, start.cols.zip(start.rows))
            .await;
        let (outcome, detail) = match &ending {
            Ending::Exited(code) => {
                let code = code.map_or_else(|| "unknown".to_string(), |c| c.to_string());
                (AuditOutcome::Success, format!("exit {code}"))
            }
            Ending::Failed(why) => (AuditOutcome::Failed, why.clone()),
        };
        match ending {
            Ending::Exited(code) => {
                let hint = code
                    .filter(|c| *c == 126 || *c == 127)
                    .map(|_| no_program_hint(&program));
                if let Some(hint) = hint {
                    send_error(&mut socket, &hint).await;
                } else {
                    let exit = serde_json::json!({"exit": {"code": code}}).to_string();
                    let _ = socket.send(Message::Text(exit.into())).await;
                }
            }
            Ending::Failed(why) => send_error(&mut socket, &why).await,
        }
        let _ = socket.send(Message::Close(None)).await;
        self.audit(&program, started.elapsed(), outcome, &detail)
            .await;
    }

    async fn attach(
        &self,
        socket: &mut WebSocket,
        command: &[String],
        tty: bool,
        size: Option<(u16, u16)>,
    ) -> Ending {
        let runtime = &self.state.runtime;
        let spec = ExecSpec {
            command: command.to_vec(),
            tty,
            size,
            env: if tty {
                vec!["TERM=xterm-256color".to_string()]
            } else {
                Vec::new()
            },
        };
        let mut session = match runtime.exec(&self.container, &spec).await {
            Ok(session) => session,
            Err(e) => return Ending::Failed(format!("the command could not start: {e}")),
        };
        let started = serde_json::json!({"started": {"instance": self.instance}}).to_string();
        if socket.send(Message::Text(started.into())).await.is_err() {
            return Ending::Failed("the client went away".into());
        }
        loop {
            tokio::select! {
                chunk = session.output.next() => match chunk {
                    Some(Ok(bytes)) => {
                        if socket.send(Message::Binary(bytes)).await.is_err() {
                            return Ending::Failed("the client went away".into());
                        }
                    }
                    Some(Err(e)) => return Ending::Failed(format!("the output broke off: {e}")),
                    None => break,
                },
                message = socket.recv() => match message {
                    Some(Ok(Message::Binary(bytes))) => {
                        if session.input.write_all(&bytes).await.is_err() {
                            break;
                        }
                        let _ = session.input.flush().await;
                    }
                    Some(Ok(Message::Text(text))) => {
                        match serde_json::from_str::<ControlMessage>(&text) {
                            Ok(control) => {
                                if let Some(size) = control.resize {
                                    let _ = runtime.resize_exec(&session.id, size.cols, size.rows).await;
                                }
                                if control.stdin_closed {
                                    let _ = session.input.shutdown().await;
                                }
                            }
                            Err(_) => {
                                // Input sent as text (a client without binary messages).
                                if session.input.write_all(text.as_bytes()).await.is_err() {
                                    break;
                                }
                            }
                        }
                    }
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                        return Ending::Failed("the client closed the session".into());
                    }
                    Some(Ok(_)) => {}
                },
                () = tokio::time::sleep(self.idle) => {
                    return Ending::Failed(format!(
                        "closed after {} s without input or output",
                        self.idle.as_secs()
                    ));
                }
            }
        }
        // The output ended: the process is exiting.
        for _ in 0..20 {
            match runtime.exec_exit_code(&session.id).await {
                Ok(Some(code)) => return Ending::Exited(Some(code)),
                Ok(None) => tokio::time::sleep(Duration::from_millis(50)).await,
                Err(_) => break,
            }
        }
        Ending::Exited(None)
    }

    async fn audit(&self, program: &str, took: Duration, outcome: AuditOutcome, ending: &str) {
        let entry = AuditEntry {
            id: 0,
            at: (self.state.clock)(),
            actor: self.actor.clone(),
            action: APPS_EXEC.to_string(),
            team: Some(self.team.clone()),
            object: format!("apps/{}", self.app),
            source: self.source.clone(),
            outcome,
            status: 101,
            detail: format!(
                "instance {}, {program}, {} s, {ending}",
                self.instance,
                took.as_secs()
            ),
        };
        if let Err(error) = self.state.store.append_audit(&entry).await {
            tracing::warn!(%error, "could not record an exec session in the audit log");
        }
    }
}

/// What a user is told when the program cannot be run (exit 126 or 127).
fn no_program_hint(program: &str) -> String {
    format!(
        "the image has no {program:?} (or cannot run it): images built FROM scratch or distroless have no shell; run a program the image has, e.g. berth exec APP -- /path/to/program --help"
    )
}

async fn send_error(socket: &mut WebSocket, message: &str) {
    let error = serde_json::json!({ "error": message }).to_string();
    let _ = socket.send(Message::Text(error.into())).await;
}
