//! berth-testapp: a small HTTP server whose failures can be switched on; Berth's test workload.

mod burn;
mod config;
mod http;
mod json;
mod routes;

use std::io::BufReader;
use std::net::{TcpListener, TcpStream};
use std::process::exit;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::config::Config;
use crate::http::{ParseError, Response};
use crate::routes::{Effect, Info};

/// How long an idle keep-alive connection is kept open.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Delay between answering `/admin/crash` and exiting, so the response gets out.
const CRASH_DELAY: Duration = Duration::from_millis(50);

/// Calls `GET /` at `address` on a new connection every `every`; says when calls start or
/// stop failing.
fn keep_calling(address: &str, every: Duration) {
    use std::io::{Read, Write};
    let mut failing = None::<bool>;
    loop {
        let outcome = TcpStream::connect(address).and_then(|mut stream| {
            stream.set_read_timeout(Some(Duration::from_secs(5)))?;
            write!(
                stream,
                "GET / HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
            )?;
            let mut answer = Vec::new();
            stream.read_to_end(&mut answer)?;
            Ok(answer.starts_with(b"HTTP/1.1 2") || answer.starts_with(b"HTTP/1.0 2"))
        });
        let now_failing = !matches!(outcome, Ok(true));
        if failing != Some(now_failing) {
            match &outcome {
                Ok(true) => println!("calls to {address} succeed"),
                Ok(false) => println!("calls to {address} get an error answer"),
                Err(e) => println!("calls to {address} fail: {e}"),
            }
            failing = Some(now_failing);
        }
        thread::sleep(every);
    }
}

/// State shared by all connection threads.
struct Shared {
    healthy: AtomicBool,
    info: Info,
    /// No log line per request.
    quiet: bool,
}

/// `berth-testapp run …`: small programs for tests of `berth exec` (the image has no shell):
/// `echo WORDS…`, `exit CODE`, `cat` (stdin to stdout until it closes), `tty` (whether
/// stdout is a terminal), `hostname` (the container's: which one the command ran in), `get
/// HOST:PORT PATH` (an HTTP/1.0 GET, the host resolved by the container's resolver: prints the
/// response's body, exits 1 when it is not a 200 or the host is not reached within 5 s).
fn run_tool(args: &[String]) -> ! {
    use std::io::{IsTerminal, Read, Write};
    let mut out = std::io::stdout();
    match args.first().map(String::as_str) {
        Some("echo") => {
            let _ = writeln!(out, "{}", args[1..].join(" "));
        }
        Some("exit") => exit(args.get(1).and_then(|c| c.parse().ok()).unwrap_or(1)),
        Some("cat") => {
            let mut buffer = [0u8; 4096];
            let mut stdin = std::io::stdin();
            while let Ok(n) = stdin.read(&mut buffer) {
                if n == 0
                    || out
                        .write_all(&buffer[..n])
                        .and_then(|()| out.flush())
                        .is_err()
                {
                    break;
                }
            }
        }
        Some("hostname") => {
            let _ = writeln!(out, "{}", hostname());
        }
        Some("tty") => {
            let _ = writeln!(out, "{}", if out.is_terminal() { "tty" } else { "no tty" });
        }
        Some("get") => match http_get(args.get(1), args.get(2)) {
            Ok(body) => {
                let _ = out.write_all(&body);
            }
            Err(why) => {
                eprintln!("berth-testapp run get: {why}");
                exit(1);
            }
        },
        other => {
            eprintln!(
                "berth-testapp run: unknown tool {other:?} (echo, exit, cat, tty, hostname, get)"
            );
            exit(2);
        }
    }
    let _ = out.flush();
    exit(0)
}

/// `run get`: one HTTP/1.0 GET of `path` from `address` (`host:port`); the body of a 200.
fn http_get(address: Option<&String>, path: Option<&String>) -> Result<Vec<u8>, String> {
    use std::io::{Read, Write};
    use std::net::{TcpStream, ToSocketAddrs};
    let (Some(address), Some(path)) = (address, path) else {
        return Err("usage: get HOST:PORT PATH".into());
    };
    let patience = Duration::from_secs(5);
    let resolved = address
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {address}: {e}"))?
        .next()
        .ok_or_else(|| format!("{address} resolves to nothing"))?;
    let mut stream = TcpStream::connect_timeout(&resolved, patience)
        .map_err(|e| format!("cannot reach {address} ({resolved}): {e}"))?;
    let _ = stream.set_read_timeout(Some(patience));
    let host = address
        .rsplit_once(':')
        .map_or(address.as_str(), |(h, _)| h);
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n")
        .map_err(|e| format!("cannot send to {address}: {e}"))?;
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .map_err(|e| format!("no answer from {address}: {e}"))?;
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("{address} answered no HTTP response"))?;
    let status_line = String::from_utf8_lossy(&answer[..split]);
    if status_line.split_whitespace().nth(1) != Some("200") {
        return Err(format!(
            "{address} answered {}",
            status_line.lines().next().unwrap_or_default()
        ));
    }
    Ok(answer[split + 4..].to_vec())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("run") {
        run_tool(&args[1..]);
    }
    let mut config = match Config::from_lookup(|name| std::env::var(name).ok()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("berth-testapp: {e}");
            exit(2);
        }
    };
    if let Some(code) = config.exit_immediately {
        println!("exiting immediately with code {code}");
        exit(code);
    }
    // Before anything slow, so a stop during the startup delay is still prompt.
    install_signal_handlers();
    if let Some(after) = config.crash_after {
        thread::spawn(move || {
            thread::sleep(after);
            println!("crashing after {} ms", after.as_millis());
            exit(3);
        });
    }
    if config.burn_millicores > 0 {
        println!("burning {} millicores", config.burn_millicores);
        burn::spawn(config.burn_millicores, None);
    }
    if let Some((address, every)) = config.call.clone() {
        println!("calling {address} every {} ms", every.as_millis());
        thread::spawn(move || keep_calling(&address, every));
    }
    if !config.startup_delay.is_zero() {
        println!("starting in {} ms", config.startup_delay.as_millis());
        thread::sleep(config.startup_delay);
    }

    config.info.hostname = hostname();
    let listener = match TcpListener::bind(("0.0.0.0", config.port)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "berth-testapp: cannot listen on 0.0.0.0:{}: {e}",
                config.port
            );
            exit(1);
        }
    };
    println!("listening on 0.0.0.0:{}", config.port);

    let shared = Arc::new(Shared {
        healthy: AtomicBool::new(!config.fail_health),
        info: config.info,
        quiet: config.quiet,
    });
    for conn in listener.incoming() {
        match conn {
            Ok(stream) => {
                let shared = Arc::clone(&shared);
                let spawned = thread::Builder::new()
                    .name("conn".into())
                    .spawn(move || serve(stream, &shared));
                if let Err(e) = spawned {
                    eprintln!("cannot start connection thread: {e}");
                }
            }
            Err(e) => {
                eprintln!("accept failed: {e}");
                // Out of file descriptors and similar: back off instead of spinning.
                thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// Exits 0 on SIGTERM or SIGINT; the listener and open connections die with the process.
fn install_signal_handlers() {
    let mut signals = match Signals::new([SIGTERM, SIGINT]) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("berth-testapp: cannot install signal handlers: {e}");
            exit(1);
        }
    };
    thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if let Some(signal) = signals.forever().next() {
                let name = if signal == SIGTERM {
                    "SIGTERM"
                } else {
                    "SIGINT"
                };
                println!("received {name}, exiting");
                exit(0);
            }
        })
        .unwrap_or_else(|e| {
            eprintln!("berth-testapp: cannot start signal thread: {e}");
            exit(1);
        });
}

/// The kernel's hostname for our UTS namespace (the container ID prefix under Docker).
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default()
}

/// Serves requests on one connection until it closes or asks to.
fn serve(stream: TcpStream, shared: &Shared) {
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(IDLE_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IDLE_TIMEOUT));
    let mut writer = match stream.try_clone() {
        Ok(w) => w,
        Err(_) => return,
    };
    let mut reader = BufReader::new(stream);
    loop {
        let request = match http::read_request(&mut reader) {
            Ok(Some(r)) => r,
            Ok(None) | Err(ParseError::Io(_)) => return,
            Err(e) => {
                let status = if matches!(e, ParseError::TooLarge(_)) {
                    413
                } else {
                    400
                };
                let _ = http::write_response(
                    &mut writer,
                    &Response::text(status, e.to_string()),
                    false,
                );
                println!("- - {status}");
                return;
            }
        };

        let outcome = routes::route(
            &request.method,
            &request.path,
            &request.query,
            shared.healthy.load(Ordering::SeqCst),
            &shared.info,
        );
        let mut outcome = outcome;
        match &outcome.effect {
            Effect::SetHealthy(h) => shared.healthy.store(*h, Ordering::SeqCst),
            Effect::Sleep(d) => thread::sleep(*d),
            Effect::Burn {
                millicores,
                duration,
            } => burn::spawn(*millicores, Some(*duration)),
            Effect::ReadFile(path) => {
                outcome.response = match std::fs::read_to_string(path) {
                    Ok(text) => Response::text(200, text),
                    Err(e) => Response::text(404, format!("{path}: {e}")),
                }
            }
            Effect::WriteFile { path, text } => {
                outcome.response = match std::fs::write(path, text) {
                    Ok(()) => Response::text(200, "written"),
                    Err(e) => Response::text(500, format!("{path}: {e}")),
                }
            }
            Effect::None | Effect::Crash => {}
        }
        let crash = outcome.effect == Effect::Crash;
        let keep_alive = request.keep_alive() && !crash;
        let written = http::write_response(&mut writer, &outcome.response, keep_alive);
        if !shared.quiet {
            println!(
                "{} {} {}",
                request.method, request.target, outcome.response.status
            );
        }
        if crash {
            thread::sleep(CRASH_DELAY);
            println!("crashing on request");
            exit(3);
        }
        if written.is_err() || !keep_alive {
            return;
        }
    }
}
