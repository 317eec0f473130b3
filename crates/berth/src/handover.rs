//! Restarting `berth server` without failing a request (`kill -USR2`): the running server
//! pauses its controllers, starts its successor — the binary at the path it was started from,
//! so an upgraded binary takes over — and hands it its listening sockets (the API's and the
//! router's, the way systemd's socket activation passes them: `LISTEN_FDS`, `LISTEN_FDNAMES`)
//! and its table of ready instances. The successor serves at once from that table; the
//! predecessor then stops accepting, lets its requests in progress finish and exits; only then
//! does the successor start its controllers and background work (it learns of the exit when
//! its standard input, a pipe the predecessor holds, ends).
//!
//! Connections queued on a listening socket are never lost: both processes hold the same
//! socket, and whichever accepts serves.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Read;
use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use berth_controller::{Endpoint, EndpointMap};
use command_fds::{CommandFdExt, FdMapping};
use listenfd::ListenFd;
use serde::{Deserialize, Serialize};

/// The file a successor's table of ready instances is handed over in (in the data directory).
const SEED_FILE: &str = "handover-endpoints.json";
/// The file a successor writes its process id to once it serves (in the data directory).
const READY_FILE: &str = "handover.ready";
/// Where the successor finds the seed; set only for a handover.
const SEED_ENV: &str = "BERTH_HANDOVER_SEED";
/// The names of the handed-over sockets, in order (systemd's variable).
const NAMES_ENV: &str = "LISTEN_FDNAMES";
/// The first handed-over descriptor (systemd's convention).
const FIRST_FD: i32 = 3;
/// How long a successor may take to serve before the handover is called off.
const SUCCESSOR_PATIENCE: Duration = Duration::from_secs(60);
/// How long a successor waits for its predecessor to exit before it starts its controllers
/// anyway.
const PREDECESSOR_PATIENCE: Duration = Duration::from_secs(120);

/// What this process was started with: its binary, its arguments and, when it succeeds a
/// server, the sockets and the table handed to it.
struct Start {
    exe: Option<PathBuf>,
    args: Vec<OsString>,
    inherited: Inherited,
}

static START: Mutex<Option<Start>> = Mutex::new(None);

/// Reads how this process was started. Called first thing in `main`, before any thread runs
/// (taking the sockets clears systemd's variables from the environment).
pub fn capture() {
    let start = Start {
        // Resolved once, absolutely: the path an upgraded binary replaces.
        exe: std::env::current_exe().ok(),
        args: std::env::args_os().skip(1).collect(),
        inherited: Inherited {
            sockets: ListenFd::from_env(),
            names: std::env::var(NAMES_ENV)
                .map(|names| names.split(':').map(String::from).collect())
                .unwrap_or_default(),
            seed: std::env::var_os(SEED_ENV).map(PathBuf::from),
        },
    };
    *START.lock().unwrap_or_else(|p| p.into_inner()) = Some(start);
}

/// What a predecessor handed to this process (nothing for a plain start).
pub struct Inherited {
    sockets: ListenFd,
    names: Vec<String>,
    seed: Option<PathBuf>,
}

impl Inherited {
    /// A plain start: nothing handed over.
    fn nothing() -> Inherited {
        Inherited {
            sockets: ListenFd::empty(),
            names: Vec::new(),
            seed: None,
        }
    }

    /// Whether this process takes over from a running server.
    pub fn is_successor(&self) -> bool {
        self.seed.is_some()
    }

    /// The socket handed over as `name`, when it listens on `address`; `None` when there is
    /// none (bind one), or it listens elsewhere (the setting changed: it is closed).
    pub fn listener(&mut self, name: &str, address: SocketAddr) -> Option<std::net::TcpListener> {
        let index = self.names.iter().position(|n| n == name)?;
        let listener = match self.sockets.take_tcp_listener(index) {
            Ok(Some(listener)) => listener,
            Ok(None) => return None,
            Err(error) => {
                tracing::warn!(name, %error, "a handed-over socket is not a TCP listener");
                return None;
            }
        };
        let bound = listener.local_addr().ok()?;
        if bound != address && !(address.port() == 0 && bound.ip() == address.ip()) {
            tracing::info!(name, %bound, %address, "the handed-over socket listens elsewhere: closed");
            return None;
        }
        listener.set_nonblocking(true).ok()?;
        Some(listener)
    }

    /// The ready instances the predecessor routed to (the seed is read once and removed).
    pub fn seed(&self) -> Option<EndpointMap> {
        let path = self.seed.as_ref()?;
        let text = std::fs::read(path);
        let _ = std::fs::remove_file(path);
        let seed: Seed = serde_json::from_slice(&text.ok()?)
            .inspect_err(|error| tracing::warn!(%error, "cannot read the handed-over instances"))
            .ok()?;
        Some(seed.into_endpoints())
    }

    /// Tells the predecessor this server serves.
    pub fn announce_serving(&self, data_dir: &Path) {
        let path = data_dir.join(READY_FILE);
        if let Err(error) = std::fs::write(&path, std::process::id().to_string()) {
            tracing::warn!(path = %path.display(), %error, "cannot tell the predecessor this server serves");
        }
    }

    /// Resolves when the predecessor has exited (its end of our standard input closed), or
    /// after [`PREDECESSOR_PATIENCE`].
    pub async fn predecessor_gone(&self) {
        let lifeline = tokio::task::spawn_blocking(|| {
            let mut stdin = std::io::stdin().lock();
            let mut buf = [0u8; 64];
            while matches!(stdin.read(&mut buf), Ok(n) if n > 0) {}
        });
        if tokio::time::timeout(PREDECESSOR_PATIENCE, lifeline)
            .await
            .is_err()
        {
            tracing::warn!(
                "the previous server is still running after {} s; starting the controllers anyway",
                PREDECESSOR_PATIENCE.as_secs()
            );
        }
    }
}

/// Takes what this process was started with (once; later calls get a plain start).
pub fn inherited() -> Inherited {
    let mut start = START.lock().unwrap_or_else(|p| p.into_inner());
    match start.as_mut() {
        Some(start) => std::mem::replace(&mut start.inherited, Inherited::nothing()),
        None => Inherited::nothing(),
    }
}

/// The listener `name` on `address`: the one handed over, or a new one; either way kept for
/// this server's own successor.
pub async fn bind(
    inherited: &mut Inherited,
    handoff: &mut Handoff,
    name: &'static str,
    address: SocketAddr,
) -> std::io::Result<tokio::net::TcpListener> {
    let listener = match inherited.listener(name, address) {
        Some(listener) => {
            tracing::info!(name, %address, "listening on the socket handed over");
            tokio::net::TcpListener::from_std(listener)?
        }
        None => tokio::net::TcpListener::bind(address).await?,
    };
    handoff.keep(name, &listener);
    Ok(listener)
}

/// The sockets a server hands to its successor, by name.
#[derive(Default)]
pub struct Handoff {
    sockets: Vec<(&'static str, OwnedFd)>,
}

/// A successor that serves: it stays this process's child until this process exits, and its
/// standard input (held here) tells it when that happens.
pub struct Successor {
    pub pid: u32,
    _lifeline: ChildStdin,
    _child: Child,
}

impl Handoff {
    /// Hands `socket` over as `name` (a duplicate of it is kept open until then).
    pub fn keep(&mut self, name: &'static str, socket: &impl AsFd) {
        match socket.as_fd().try_clone_to_owned() {
            Ok(fd) => self.sockets.push((name, fd)),
            Err(error) => tracing::warn!(name, %error, "cannot keep the socket for a handover"),
        }
    }

    /// Starts the successor with the sockets and `endpoints`, and waits until it serves;
    /// an error means it did not (it is stopped and this server carries on).
    pub async fn start_successor(
        &self,
        data_dir: &Path,
        endpoints: &EndpointMap,
    ) -> Result<Successor, String> {
        let (exe, args) = {
            let start = START.lock().unwrap_or_else(|p| p.into_inner());
            let start = start
                .as_ref()
                .ok_or("the server's start was not recorded")?;
            let exe = start
                .exe
                .clone()
                .ok_or("the path of the berth binary is unknown")?;
            (exe, start.args.clone())
        };
        let seed_path = data_dir.join(SEED_FILE);
        let ready_path = data_dir.join(READY_FILE);
        let _ = std::fs::remove_file(&ready_path);
        let seed = serde_json::to_vec(&Seed::from_endpoints(endpoints))
            .map_err(|e| format!("cannot write the instances to hand over: {e}"))?;
        std::fs::write(&seed_path, seed)
            .map_err(|e| format!("cannot write {}: {e}", seed_path.display()))?;
        let mut mappings = Vec::new();
        let mut names = Vec::new();
        for (offset, (name, fd)) in self.sockets.iter().enumerate() {
            let fd = fd
                .try_clone()
                .map_err(|e| format!("cannot pass the {name} socket: {e}"))?;
            mappings.push(FdMapping {
                parent_fd: fd,
                child_fd: FIRST_FD + offset as i32,
            });
            names.push(*name);
        }
        let mut command = Command::new(&exe);
        command
            .args(&args)
            .env("LISTEN_FDS", mappings.len().to_string())
            .env(NAMES_ENV, names.join(":"))
            .env_remove("LISTEN_PID")
            .env(SEED_ENV, &seed_path)
            .stdin(Stdio::piped());
        command
            .fd_mappings(mappings)
            .map_err(|e| format!("cannot pass the sockets: {e}"))?;
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", exe.display()))?;
        let lifeline = child
            .stdin
            .take()
            .ok_or("the successor has no standard input")?;
        let pid = child.id();
        let deadline = tokio::time::Instant::now() + SUCCESSOR_PATIENCE;
        loop {
            if std::fs::read_to_string(&ready_path).is_ok_and(|text| text.trim() == pid.to_string())
            {
                let _ = std::fs::remove_file(&ready_path);
                return Ok(Successor {
                    pid,
                    _lifeline: lifeline,
                    _child: child,
                });
            }
            let failed = match child.try_wait() {
                Ok(Some(status)) => Some(format!("the new server exited ({status})")),
                Ok(None) if tokio::time::Instant::now() >= deadline => Some(format!(
                    "the new server did not serve within {} s",
                    SUCCESSOR_PATIENCE.as_secs()
                )),
                Ok(None) => None,
                Err(error) => Some(format!("cannot watch the new server: {error}")),
            };
            if let Some(reason) = failed {
                let _ = child.kill();
                let _ = child.wait();
                let _ = std::fs::remove_file(&seed_path);
                return Err(reason);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The ready instances as handed over (a file only Berth reads: its own format).
#[derive(Serialize, Deserialize)]
struct Seed {
    apps: BTreeMap<String, Vec<SeedEndpoint>>,
}

#[derive(Serialize, Deserialize)]
struct SeedEndpoint {
    container_id: String,
    instance: String,
    address: String,
    port: u16,
    revision: u32,
}

impl Seed {
    fn from_endpoints(endpoints: &EndpointMap) -> Seed {
        let apps = endpoints
            .iter()
            .map(|(app, list)| {
                let list = list
                    .iter()
                    .map(|e| SeedEndpoint {
                        container_id: e.container_id.clone(),
                        instance: e.instance.clone(),
                        address: e.address.clone(),
                        port: e.port,
                        revision: e.revision,
                    })
                    .collect();
                (app.clone(), list)
            })
            .collect();
        Seed { apps }
    }

    fn into_endpoints(self) -> EndpointMap {
        self.apps
            .into_iter()
            .map(|(app, list)| {
                let list = list
                    .into_iter()
                    .map(|e| Endpoint {
                        container_id: e.container_id,
                        instance: e.instance,
                        address: e.address,
                        port: e.port,
                        revision: e.revision,
                    })
                    .collect();
                (app, list)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_round_trips_every_endpoint() {
        let endpoint = |id: &str, revision| Endpoint {
            container_id: id.into(),
            instance: format!("web-{id}"),
            address: "172.18.0.4".into(),
            port: 8080,
            revision,
        };
        let endpoints: EndpointMap = [
            ("web".to_string(), vec![endpoint("a", 1), endpoint("b", 2)]),
            ("api".to_string(), vec![endpoint("c", 7)]),
        ]
        .into();
        let json = serde_json::to_vec(&Seed::from_endpoints(&endpoints)).unwrap();
        let back: Seed = serde_json::from_slice(&json).unwrap();
        assert_eq!(back.into_endpoints(), endpoints);
    }
}
