//! The connection observer: every interval it reads the host's connection tracking table
//! (`/proc/net/nf_conntrack`) and counts the connections between apps' instances with
//! `berth_core::flows` — calls over a team network that never pass the router, which the
//! topology draws as observed edges.
//!
//! Instances are known by the addresses of the endpoint table (ready instances: the ones that
//! serve and call). The table lists the flows crossing this host's bridges: on one machine
//! that is every instance; a multi-node engine needs one observer per node. Without the
//! table (a kernel without `nf_conntrack`'s procfs file, or no right to read it) the observer
//! says why, once in the log and in every topology, and observed edges are simply missing.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use berth_core::Millis;
use berth_core::clock::Clock;
use berth_core::flows::{FlowTracker, ObservedEdge, parse_conntrack_line};

use crate::endpoints::Endpoints;
use crate::workers::{Job, Schedule};

/// Where the kernel lists the tracked connections.
pub const CONNTRACK_TABLE: &str = "/proc/net/nf_conntrack";

/// Counts the connections between apps (see the module docs).
pub struct ConnectionObserver {
    table: PathBuf,
    endpoints: Endpoints,
    clock: Clock,
    period: Duration,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    tracker: FlowTracker,
    /// Why the table cannot be read (`None` once it was read).
    unavailable: Option<String>,
}

impl ConnectionObserver {
    /// An observer of `table` (normally [`CONNTRACK_TABLE`]) every `period`. Until its first
    /// reading it reports the table as not read yet.
    pub fn new(table: PathBuf, endpoints: Endpoints, clock: Clock, period: Duration) -> Self {
        ConnectionObserver {
            table,
            endpoints,
            clock,
            period,
            state: Mutex::new(State {
                unavailable: Some("connections have not been read yet".into()),
                ..State::default()
            }),
        }
    }

    /// The edges with a connection within the last minute.
    pub fn edges(&self) -> Vec<ObservedEdge> {
        let now = (self.clock)();
        self.lock().tracker.edges(now)
    }

    /// Why connections between apps cannot be observed (`None` when they are).
    pub fn unavailable(&self) -> Option<String> {
        self.lock().unavailable.clone()
    }

    /// Reads the table once and counts what it lists.
    pub async fn observe_once(&self) -> Result<String, String> {
        let text = match tokio::fs::read_to_string(&self.table).await {
            Ok(text) => text,
            Err(error) => {
                let reason = format!(
                    "connections between apps cannot be observed: cannot read {}: {error}",
                    self.table.display()
                );
                let mut state = self.lock();
                if state.unavailable.as_deref() != Some(reason.as_str()) {
                    tracing::warn!("{reason}");
                    state.unavailable = Some(reason.clone());
                }
                return Err(reason);
            }
        };
        let endpoints = self.endpoints.current();
        let owners: HashMap<IpAddr, &str> = endpoints
            .iter()
            .flat_map(|(app, list)| {
                list.iter()
                    .filter_map(move |e| Some((ip_of(&e.address)?, app.as_str())))
            })
            .collect();
        let now: Millis = (self.clock)();
        let mut lines = 0usize;
        let flows = text.lines().filter_map(|line| {
            lines += 1;
            parse_conntrack_line(line)
        });
        let mut state = self.lock();
        state
            .tracker
            .observe(now, flows, |address| owners.get(&address).copied());
        state.unavailable = None;
        let edges = state.tracker.edges(now).len();
        Ok(format!(
            "{lines} tracked connections read, {edges} edges between apps"
        ))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The IP address of an endpoint's address (`ip` or `ip:port`).
fn ip_of(address: &str) -> Option<IpAddr> {
    address
        .parse()
        .ok()
        .or_else(|| address.parse::<std::net::SocketAddr>().ok().map(|a| a.ip()))
}

/// The observer as a periodic job (`connection-observer` in `GET /api/v1/system/workers`).
pub struct ConnectionObserverJob(pub std::sync::Arc<ConnectionObserver>);

impl ConnectionObserverJob {
    /// Every period, the first at once.
    pub fn schedule(&self) -> Schedule {
        let period = self.0.period;
        Schedule {
            period,
            first_run_after: Duration::ZERO,
            retry_after: period,
        }
    }
}

#[async_trait::async_trait]
impl Job for ConnectionObserverJob {
    fn name(&self) -> &'static str {
        "connection-observer"
    }

    fn description(&self) -> &'static str {
        "reads the host's connection tracking table and counts connections between apps"
    }

    async fn run(&self) -> Result<String, String> {
        self.0.observe_once().await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::endpoints::Endpoint;

    fn endpoint(instance: &str, address: &str) -> Endpoint {
        Endpoint {
            container_id: format!("c-{instance}"),
            instance: instance.into(),
            address: address.into(),
            port: 8080,
            revision: 1,
        }
    }

    #[tokio::test]
    async fn a_table_file_gives_edges_between_the_endpoints_apps() {
        let dir = tempfile::tempdir().unwrap();
        let table = dir.path().join("nf_conntrack");
        let endpoints = Endpoints::default();
        endpoints.set_app("front", vec![endpoint("front-1", "10.1.0.2")]);
        endpoints.set_app("back", vec![endpoint("back-1", "10.1.0.3:8080")]);
        let now = Arc::new(std::sync::atomic::AtomicI64::new(1_000));
        let clock_now = Arc::clone(&now);
        let clock: Clock = Arc::new(move || clock_now.load(std::sync::atomic::Ordering::SeqCst));
        let observer =
            ConnectionObserver::new(table.clone(), endpoints, clock, Duration::from_secs(5));
        // No table: said plainly, no edges.
        let error = observer.observe_once().await.unwrap_err();
        assert!(error.contains("cannot read"), "{error}");
        assert_eq!(observer.unavailable(), Some(error));
        assert!(observer.edges().is_empty());
        let line = |port: u16, state: &str| {
            format!(
                "ipv4 2 tcp 6 100 {state} src=10.1.0.2 dst=10.1.0.3 sport={port} dport=8080 src=10.1.0.3 dst=10.1.0.2 sport=8080 dport={port} [ASSURED] mark=0 use=2\n"
            )
        };
        std::fs::write(&table, line(40000, "ESTABLISHED")).unwrap();
        observer.observe_once().await.unwrap();
        assert_eq!(observer.unavailable(), None);
        now.store(6_000, std::sync::atomic::Ordering::SeqCst);
        std::fs::write(
            &table,
            [
                line(40000, "TIME_WAIT"),
                line(40001, "ESTABLISHED"),
                "garbage\n".to_string(),
            ]
            .concat(),
        )
        .unwrap();
        observer.observe_once().await.unwrap();
        let edges = observer.edges();
        assert_eq!(edges.len(), 1);
        assert_eq!(
            (edges[0].from.as_str(), edges[0].to.as_str()),
            ("front", "back")
        );
        assert_eq!(edges[0].open_connections, 1);
        // One new connection in the 5 s observed.
        assert_eq!(edges[0].connections_per_minute, 12.0);
    }
}
