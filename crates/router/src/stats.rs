//! The data path's shared state: per backend (address, port) the requests in flight, so the
//! control plane can wait for an instance's requests to finish before it stops it, and the
//! backend's keep-alive connections; per app its counters; the access log's setting.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{Notify, mpsc};

use crate::access_log::{AccessLog, AccessLogState};
use crate::meters::{AppCounters, AppMeters};
use crate::pool::Pool;
use crate::table::{Route, RoutingTable};

/// A shared handle on the router's counters; clones see the same counts.
///
/// Backends are keyed by address and port, not by route, so their counts survive routing-table
/// swaps: an instance taken out of the table keeps its count until its last response ends. The
/// registry is only locked when a table is bound to it (once per table) and by `in_flight` and
/// `wait_idle`; requests count on atomics the table's routes hold.
#[derive(Debug, Clone, Default)]
pub struct RouterStats {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Every backend of the tables bound lately. Held strongly, so a backend's idle connections
    /// survive table swaps (a table is rebuilt every second); one that neither a table nor a
    /// request holds any more leaves when the next table is bound.
    backends: Mutex<HashMap<(String, u16), Arc<BackendState>>>,
    /// Every app of the tables bound lately, by (team, app). Held strongly, so counters survive
    /// table swaps; an app no table holds any more leaves when the next table is bound.
    apps: Mutex<HashMap<(String, String), Arc<AppMeters>>>,
    access_log: AccessLogState,
}

/// One backend as the data path sees it, shared by every table that routes to it.
#[derive(Debug)]
pub(crate) struct BackendState {
    /// `None` when the table's address is not an IP address (it is never connected to).
    pub(crate) address: Option<SocketAddr>,
    in_flight: AtomicUsize,
    /// Woken when `in_flight` drops to zero.
    idle: Notify,
    pub(crate) pool: Pool,
    /// Requests sent to this backend that got an answer or failed.
    answered: AtomicU64,
    /// Of those, the ones answered 5xx or not at all (connection failure, timeout).
    failed: AtomicU64,
}

/// A route's backends bound to their shared state, in the route's order.
#[derive(Debug)]
pub(crate) struct BoundRoute {
    pub(crate) backends: Vec<Arc<BackendState>>,
    pub(crate) app: Arc<AppMeters>,
}

impl RouterStats {
    /// Counters without an access log ([`RouterStats::set_access_log`] does nothing).
    pub fn new() -> RouterStats {
        RouterStats::default()
    }

    /// Counters with an access log that writes its lines to `sink` (see
    /// [`crate::write_access_log`]); the log is off until [`RouterStats::set_access_log`].
    /// A line that does not fit in the channel is dropped, never waited for.
    pub fn with_access_log(sink: mpsc::Sender<String>) -> RouterStats {
        RouterStats {
            inner: Arc::new(Inner {
                access_log: AccessLogState::new(Some(sink)),
                ..Inner::default()
            }),
        }
    }

    /// Turns the access log on (with a sample rate) or off; applies to the next requests.
    pub fn set_access_log(&self, log: Option<AccessLog>) {
        self.inner.access_log.set(log);
    }

    /// The access log's current setting.
    pub fn access_log(&self) -> Option<AccessLog> {
        self.inner.access_log.get()
    }

    /// Access log lines dropped because the sink was full or closed.
    pub fn access_log_dropped(&self) -> u64 {
        self.inner.access_log.dropped()
    }

    pub(crate) fn access_log_state(&self) -> &AccessLogState {
        &self.inner.access_log
    }

    /// The counters of every app routed to lately, in (team, app) order.
    pub fn app_counters(&self) -> Vec<AppCounters> {
        let mut counters: Vec<AppCounters> = self
            .apps()
            .values()
            .map(|meters| meters.snapshot())
            .collect();
        counters.sort_by(|a, b| (&a.team, &a.app).cmp(&(&b.team, &b.app)));
        counters
    }

    /// The counters of one app, when a request was routed to it lately.
    pub fn app_counters_of(&self, team: &str, app: &str) -> Option<AppCounters> {
        self.apps()
            .get(&(team.to_string(), app.to_string()))
            .map(|meters| meters.snapshot())
    }

    /// Requests sent to this backend whose response has not ended (or been dropped) yet.
    /// An upgraded connection (WebSocket) counts as one until it closes.
    pub fn in_flight(&self, address: &str, port: u16) -> usize {
        self.backend(address, port)
            .map_or(0, |backend| backend.in_flight.load(Ordering::Acquire))
    }

    /// (requests, failures) sent to this backend since it entered a table, when it is in one
    /// (failures: answered 5xx or not at all). A canary's verdict compares them by revision.
    pub fn outcomes(&self, address: &str, port: u16) -> Option<(u64, u64)> {
        self.backend(address, port).map(|backend| {
            (
                backend.answered.load(Ordering::Relaxed),
                backend.failed.load(Ordering::Relaxed),
            )
        })
    }

    /// Resolves once no request to this backend is in flight (at once if none is). Pair it with a
    /// timeout: a long-lived stream or WebSocket keeps it waiting.
    pub async fn wait_idle(&self, address: &str, port: u16) {
        // No state means no table and no request holds the backend: nothing is in flight.
        let Some(backend) = self.backend(address, port) else {
            return;
        };
        loop {
            let notified = backend.idle.notified();
            let mut notified = std::pin::pin!(notified);
            // Registered before the check, so a drop to zero in between is not missed.
            notified.as_mut().enable();
            if backend.in_flight.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }

    /// The state of every route of `table`, bound once per table; backends no table or request
    /// holds any more and apps neither this table nor another one holds leave the registry.
    pub(crate) fn bind_table(&self, table: &RoutingTable) {
        let mut backends = self.backends();
        let mut apps = self.apps();
        for route in table.routes() {
            if route.bound.get().is_none() {
                // Bound outside the cell, so no lock is taken while another thread waits on it.
                let _ = route.bound.set(bind_route(&mut backends, &mut apps, route));
            }
        }
        backends.retain(|_, state| Arc::strong_count(state) > 1);
        apps.retain(|_, meters| Arc::strong_count(meters) > 1);
    }

    /// The state of one route (bound with its table unless a request got there first).
    pub(crate) fn bound<'r>(&self, route: &'r Route) -> &'r BoundRoute {
        if let Some(bound) = route.bound.get() {
            return bound;
        }
        let fresh = bind_route(&mut self.backends(), &mut self.apps(), route);
        // Another thread may have won: both bound to the same registry entries.
        let _ = route.bound.set(fresh);
        route.bound.get().expect("set just above")
    }

    fn backend(&self, address: &str, port: u16) -> Option<Arc<BackendState>> {
        self.backends().get(&(address.to_string(), port)).cloned()
    }

    fn apps(&self) -> MutexGuard<'_, HashMap<(String, String), Arc<AppMeters>>> {
        // The map holds plain handles: a panic elsewhere cannot leave it inconsistent.
        self.inner
            .apps
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn backends(&self) -> MutexGuard<'_, HashMap<(String, u16), Arc<BackendState>>> {
        // The map holds plain handles: a panic elsewhere cannot leave it inconsistent.
        self.inner
            .backends
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn bind_route(
    registry: &mut HashMap<(String, u16), Arc<BackendState>>,
    apps: &mut HashMap<(String, String), Arc<AppMeters>>,
    route: &Route,
) -> BoundRoute {
    let app = Arc::clone(
        apps.entry((route.team.clone(), route.app.clone()))
            .or_insert_with(|| Arc::new(AppMeters::new(&route.team, &route.app))),
    );
    let backends = route
        .backends
        .iter()
        .map(|backend| {
            let key = (backend.address.clone(), backend.port);
            if let Some(state) = registry.get(&key) {
                return Arc::clone(state);
            }
            let state = Arc::new(BackendState {
                address: backend
                    .address
                    .parse::<IpAddr>()
                    .ok()
                    .map(|ip| SocketAddr::new(ip, backend.port)),
                in_flight: AtomicUsize::new(0),
                idle: Notify::new(),
                pool: Pool::default(),
                answered: AtomicU64::new(0),
                failed: AtomicU64::new(0),
            });
            registry.insert(key, Arc::clone(&state));
            state
        })
        .collect();
    BoundRoute { backends, app }
}

impl BackendState {
    /// Requests to this backend now in flight (from any route).
    pub(crate) fn outstanding(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Counts one request's outcome: answered, and whether that was a failure (a 5xx, or no
    /// answer at all).
    pub(crate) fn count_outcome(&self, failed: bool) {
        self.answered.fetch_add(1, Ordering::Relaxed);
        if failed {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts one request to this backend until the returned guard is dropped.
    pub(crate) fn start(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight {
            backend: Arc::clone(self),
        }
    }
}

/// One request in flight to a backend; dropping it ends the count.
#[derive(Debug)]
pub(crate) struct InFlight {
    backend: Arc<BackendState>,
}

impl InFlight {
    pub(crate) fn backend(&self) -> &Arc<BackendState> {
        &self.backend
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.backend.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.backend.idle.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::{Backend, RoutedApp};
    use std::time::Duration;

    fn table(ports: &[u16]) -> RoutingTable {
        RoutingTable::build(vec![RoutedApp {
            app: "web".into(),
            team: "shop".into(),
            domains: vec![crate::RouteDomain::host("web.example")],
            https_redirect: false,
            canary: None,
            hold: false,
            wake: false,
            backends: ports
                .iter()
                .map(|&port| Backend {
                    revision: 1,
                    instance: format!("web-{port}"),
                    address: "10.0.0.1".into(),
                    port,
                })
                .collect(),
            unavailable: String::new(),
        }])
    }

    fn start(stats: &RouterStats, table: &RoutingTable, index: usize) -> InFlight {
        stats.bound(&table.routes()[0]).backends[index].start()
    }

    #[test]
    fn counts_follow_the_guards_per_backend() {
        let stats = RouterStats::new();
        let table = table(&[80, 81]);
        stats.bind_table(&table);
        let a1 = start(&stats, &table, 0);
        let a2 = start(&stats.clone(), &table, 0);
        let b = start(&stats, &table, 1);
        // (address, port, in flight)
        let cases = [
            ("10.0.0.1", 80, 2),
            ("10.0.0.1", 81, 1),
            ("10.0.0.2", 80, 0),
        ];
        for (address, port, want) in cases {
            assert_eq!(stats.in_flight(address, port), want, "{address}:{port}");
        }
        drop(a1);
        assert_eq!(stats.in_flight("10.0.0.1", 80), 1);
        drop(a2);
        drop(b);
        assert_eq!(stats.in_flight("10.0.0.1", 80), 0);
        assert_eq!(stats.in_flight("10.0.0.1", 81), 0);
    }

    #[test]
    fn counts_survive_table_swaps_and_gone_backends_leave_the_registry() {
        let stats = RouterStats::new();
        let old = table(&[80, 81]);
        stats.bind_table(&old);
        let request = start(&stats, &old, 1);
        // The new table no longer routes to :81; the request in flight still counts.
        let new = table(&[80]);
        stats.bind_table(&new);
        drop(old);
        assert_eq!(stats.in_flight("10.0.0.1", 81), 1);
        assert!(Arc::ptr_eq(
            &stats.bound(&new.routes()[0]).backends[0],
            &stats.backend("10.0.0.1", 80).unwrap()
        ));
        drop(request);
        assert_eq!(stats.in_flight("10.0.0.1", 81), 0);
        stats.bind_table(&new);
        assert_eq!(stats.backends().len(), 1, "only :80 is left");
    }

    #[tokio::test(start_paused = true)]
    async fn wait_idle_resolves_when_the_last_request_ends() {
        let stats = RouterStats::new();
        let table = table(&[80, 81]);
        stats.wait_idle("10.0.0.1", 80).await;
        stats.bind_table(&table);
        stats.wait_idle("10.0.0.1", 80).await;
        let guard = start(&stats, &table, 0);
        let other = start(&stats, &table, 1);
        let waiter = tokio::spawn({
            let stats = stats.clone();
            async move { stats.wait_idle("10.0.0.1", 80).await }
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!waiter.is_finished());
        drop(guard);
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woken")
            .expect("no panic");
        assert_eq!(stats.in_flight("10.0.0.1", 81), 1);
        drop(other);
    }
}
