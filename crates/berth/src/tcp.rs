//! The TCP forwarder: apps' published TCP ports (`--tcp-port`) as listeners of the server
//! that pass each connection, bytes as they are, to one ready instance of the app, round robin.
//!
//! It bypasses the HTTP router: no host routing, no TLS termination, no retries. It reads the
//! controller's endpoint table, so a connection is only ever opened to a ready instance; with
//! none ready, the client's connection is closed at once. A stop's drain does not cut
//! connections already forwarded, but new ones go to the other instances.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use berth_controller::Endpoints;
use berth_store::Store;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How long the forwarder waits for an instance to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// What a host port leads to: the app and the port its instances listen on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpTarget {
    pub app: String,
    pub container_port: u16,
}

/// The published ports of every app, by host port.
pub type TcpTable = BTreeMap<u16, TcpTarget>;

/// The table the apps in the store ask for (internal apps publish nothing).
pub async fn tcp_table(store: &dyn Store) -> berth_store::StoreResult<TcpTable> {
    let (listed, _) = berth_operations::apps::list_apps(store, None, None, None).await?;
    Ok(listed
        .iter()
        .filter(|l| !l.app.routes.internal)
        .flat_map(|l| {
            l.app.routes.tcp_ports.iter().map(|p| {
                (
                    p.host_port,
                    TcpTarget {
                        app: l.app.name.clone(),
                        container_port: p.container_port,
                    },
                )
            })
        })
        .collect())
}

/// One open listener.
struct Listener {
    target: watch::Sender<TcpTarget>,
    task: JoinHandle<()>,
}

/// Keeps one listener per published host port on `listen`, every `refresh`: opens new ones,
/// closes removed ones (connections already forwarded go on), points moved ones at their new
/// app. A port that cannot be bound is reported and tried again at the next refresh.
pub async fn keep_tcp_listeners(
    store: Arc<dyn Store>,
    endpoints: Endpoints,
    listen: IpAddr,
    refresh: Duration,
) {
    let mut open: BTreeMap<u16, Listener> = BTreeMap::new();
    let mut reported: BTreeMap<u16, String> = BTreeMap::new();
    loop {
        match tcp_table(store.as_ref()).await {
            Ok(table) => {
                open.retain(|port, listener| {
                    let keep = table.contains_key(port) && !listener.task.is_finished();
                    if !keep {
                        listener.task.abort();
                        tracing::info!(port, "TCP port closed");
                    }
                    keep
                });
                reported.retain(|port, _| table.contains_key(port));
                for (&port, target) in &table {
                    if let Some(listener) = open.get(&port) {
                        listener.target.send_if_modified(|current| {
                            let changed = current != target;
                            *current = target.clone();
                            changed
                        });
                        continue;
                    }
                    match TcpListener::bind((listen, port)).await {
                        Ok(socket) => {
                            reported.remove(&port);
                            let (sender, receiver) = watch::channel(target.clone());
                            tracing::info!(port, app = %target.app, container_port = target.container_port, "TCP port open");
                            open.insert(
                                port,
                                Listener {
                                    target: sender,
                                    task: tokio::spawn(forward(
                                        socket,
                                        receiver,
                                        endpoints.clone(),
                                    )),
                                },
                            );
                        }
                        Err(error) => {
                            let error = error.to_string();
                            if reported.get(&port) != Some(&error) {
                                tracing::warn!(port, app = %target.app, %error, "cannot open TCP port {port} on {listen}; trying again");
                                reported.insert(port, error);
                            }
                        }
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "cannot read apps' TCP ports"),
        }
        tokio::time::sleep(refresh).await;
    }
}

/// Accepts connections on `socket` and passes each to a ready instance of the target app.
async fn forward(socket: TcpListener, target: watch::Receiver<TcpTarget>, endpoints: Endpoints) {
    let next = Arc::new(AtomicUsize::new(0));
    loop {
        let (client, peer) = match socket.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::debug!(%error, "TCP accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let target = target.borrow().clone();
        let table = endpoints.current();
        let instances: Vec<SocketAddr> = table
            .get(&target.app)
            .into_iter()
            .flatten()
            .filter_map(|e| e.address.parse::<IpAddr>().ok())
            .map(|ip| SocketAddr::new(ip, target.container_port))
            .collect();
        if instances.is_empty() {
            // Dropping the client closes it at once.
            tracing::debug!(app = %target.app, %peer, "TCP connection refused: no ready instance");
            continue;
        }
        let first = next.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            let mut client = client;
            // Each ready instance once, starting with this connection's turn.
            for offset in 0..instances.len() {
                let address = instances[(first + offset) % instances.len()];
                let connected =
                    tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(address)).await;
                match connected {
                    Ok(Ok(mut instance)) => {
                        if let Err(error) =
                            tokio::io::copy_bidirectional(&mut client, &mut instance).await
                        {
                            tracing::debug!(app = %target.app, %address, %error, "TCP connection ended");
                        }
                        return;
                    }
                    Ok(Err(error)) => {
                        tracing::debug!(app = %target.app, %address, %error, "cannot connect to instance")
                    }
                    Err(_) => {
                        tracing::debug!(app = %target.app, %address, "instance did not accept in time")
                    }
                }
            }
        });
    }
}
