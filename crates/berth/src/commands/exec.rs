//! `berth exec APP [--instance NAME] -- COMMAND…`: a command inside a running instance, over
//! the API's WebSocket — with a real terminal when stdin is one (raw mode, the window's size
//! and its changes, Ctrl-C sent to the command), the command's exit code as the CLI's.

use std::io::{IsTerminal, Read, Write};
use std::process::{Command, ExitCode, Stdio};

use clap::Args;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::segment;
use crate::client::Client;

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// The app
    app: String,
    /// The instance, e.g. web-3 (default: the app's first running instance)
    #[arg(long)]
    instance: Option<String>,
    /// Give the command a terminal (default: when stdin is one)
    #[arg(short = 't', long, conflicts_with = "no_tty")]
    tty: bool,
    /// No terminal, even when stdin is one
    #[arg(short = 'T', long)]
    no_tty: bool,
    /// Close the session after this long without input or output (default 15m, at most 1h)
    #[arg(long, value_name = "DURATION")]
    idle_timeout: Option<String>,
    /// The command and its arguments (default: sh)
    #[arg(last = true)]
    command: Vec<String>,
}

/// The terminal put in raw mode while it lives, restored when dropped.
struct RawTerminal {
    saved: String,
}

impl RawTerminal {
    fn enter() -> Option<RawTerminal> {
        let saved = stty(&["-g"])?;
        stty(&["raw", "-echo"])?;
        Some(RawTerminal {
            saved: saved.trim().to_string(),
        })
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        let _ = stty(&[&self.saved]);
    }
}

/// Runs `stty` on the terminal; its output, or `None` when it failed.
fn stty(args: &[&str]) -> Option<String> {
    let tty = std::fs::File::open("/dev/tty").ok()?;
    let out = Command::new("stty")
        .args(args)
        .stdin(Stdio::from(tty))
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The terminal's columns and rows.
fn window_size() -> Option<(u16, u16)> {
    let size = stty(&["size"])?;
    let mut parts = size.split_whitespace().map(|p| p.parse::<u16>().ok());
    let rows = parts.next()??;
    let cols = parts.next()??;
    Some((cols, rows))
}

pub async fn run(client: &Client, args: ExecArgs) -> Result<ExitCode, String> {
    let tty = !args.no_tty && (args.tty || std::io::stdin().is_terminal());
    let mut query = Vec::new();
    if let Some(instance) = &args.instance {
        query.push(format!("instance={}", segment(instance)));
    }
    if let Some(idle) = &args.idle_timeout {
        let seconds =
            crate::units::flag("idle-timeout", idle, crate::units::parse_duration)?.as_secs();
        query.push(format!("idle_timeout_seconds={seconds}"));
    }
    let mut path = format!("/apps/{}/exec", segment(&args.app));
    if !query.is_empty() {
        path = format!("{path}?{}", query.join("&"));
    }
    let request = client.websocket(&path)?;
    let (socket, _) = match tokio_tungstenite::connect_async(request).await {
        Ok(connected) => connected,
        Err(WsError::Http(response)) => {
            let body = response
                .body()
                .as_deref()
                .map(String::from_utf8_lossy)
                .unwrap_or_default()
                .into_owned();
            let message = serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
                .unwrap_or(body);
            return Err(format!("{}: {message}", response.status()));
        }
        Err(e) => return Err(format!("cannot open the session: {e}")),
    };
    let (mut sender, mut receiver) = socket.split();
    let size = if tty { window_size() } else { None };
    let start = json!({
        "command": args.command,
        "tty": tty,
        "cols": size.map(|s| s.0),
        "rows": size.map(|s| s.1),
    });
    sender
        .send(Message::Text(start.to_string().into()))
        .await
        .map_err(|e| format!("the session broke off: {e}"))?;
    let _raw = if tty { RawTerminal::enter() } else { None };
    let mut input = stdin_chunks();
    let mut resized = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())
        .map_err(|e| format!("cannot watch the window's size: {e}"))?;
    let mut stdout = std::io::stdout();
    let mut input_open = true;
    loop {
        tokio::select! {
            message = receiver.next() => match message {
                Some(Ok(Message::Binary(bytes))) => {
                    let _ = stdout.write_all(&bytes);
                    let _ = stdout.flush();
                }
                Some(Ok(Message::Text(text))) => {
                    let value: Value = serde_json::from_str(&text).unwrap_or_default();
                    if let Some(code) = value.get("exit").map(|e| e["code"].as_i64()) {
                        drop(_raw);
                        let code = code.unwrap_or(1);
                        return Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)));
                    }
                    if let Some(error) = value["error"].as_str() {
                        drop(_raw);
                        return Err(error.to_string());
                    }
                }
                Some(Ok(Message::Close(_))) | None => {
                    drop(_raw);
                    return Err("the server closed the session".to_string());
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    drop(_raw);
                    return Err(format!("the session broke off: {e}"));
                }
            },
            chunk = input.recv(), if input_open => match chunk {
                Some(bytes) => {
                    if sender.send(Message::Binary(bytes.into())).await.is_err() {
                        input_open = false;
                    }
                }
                None => {
                    // End of input: the command's stdin closes (a terminal's stays open).
                    input_open = false;
                    if !tty {
                        let closed = json!({"stdin_closed": true});
                        let _ = sender.send(Message::Text(closed.to_string().into())).await;
                    }
                }
            },
            _ = resized.recv(), if tty => {
                if let Some((cols, rows)) = window_size() {
                    let resize = json!({"resize": {"cols": cols, "rows": rows}});
                    let _ = sender.send(Message::Text(resize.to_string().into())).await;
                }
            }
        }
    }
}

/// Stdin in chunks, read on a thread of its own (a byte at a time reaches the command as it
/// is typed).
fn stdin_chunks() -> tokio::sync::mpsc::Receiver<Vec<u8>> {
    let (sender, receiver) = tokio::sync::mpsc::channel(16);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin();
        let mut buffer = [0u8; 4096];
        loop {
            match stdin.read(&mut buffer) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if sender.blocking_send(buffer[..n].to_vec()).is_err() {
                        return;
                    }
                }
            }
        }
    });
    receiver
}
