//! On-demand certificates for the catch-all app's hosts: the approval rule (an allow-list of
//! patterns and the app's own `ask` endpoint), the denial cache, one order per host at a time and
//! a global limit on orders, and the step the HTTPS listener runs while it holds a handshake
//! whose server name has no certificate yet.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::BoxFuture;
use http::{Request, StatusCode, header};
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tracing::{debug, info, warn};

use crate::table::{Lane, Route};
use crate::tls::{CertificateSet, ValidatedCertificate};

/// The most denials remembered at once, so a flood of random names cannot grow the cache
/// without bound (past it, a denial is not remembered and the host is asked again).
pub const MAX_REMEMBERED_DENIALS: usize = 10_000;
/// The most refusals reported (event and warning) per minute; the others are counted and
/// logged at debug level.
pub const MAX_REPORTS_PER_MINUTE: usize = 30;
/// The most hosts asked about or ordered at once: past it, a new host is refused (not
/// remembered), so a flood of names cannot flood the app's `ask` endpoint either.
pub const MAX_TURNS_AT_ONCE: usize = 16;

/// How the router decides on hosts it has no certificate for.
#[derive(Debug, Clone)]
pub struct OnDemandSettings {
    /// Host patterns a certificate may be ordered for: a host name, or `*.example.com` for every
    /// name under `example.com`. Empty: the catch-all app's `ask` endpoint alone decides (and
    /// without one, nothing is approved).
    pub allow: Vec<String>,
    /// How long a refused host stays refused without asking again.
    pub denial_ttl: Duration,
    /// The most orders started within `order_window`, whatever the hosts.
    pub max_orders: u32,
    pub order_window: Duration,
    /// How long the `ask` endpoint may take to answer (no answer denies).
    pub ask_timeout: Duration,
    /// How long asking and ordering may hold a handshake in all.
    pub issue_timeout: Duration,
}

impl Default for OnDemandSettings {
    fn default() -> OnDemandSettings {
        OnDemandSettings {
            allow: Vec::new(),
            denial_ttl: Duration::from_secs(3600),
            max_orders: 10,
            order_window: Duration::from_secs(3600),
            ask_timeout: Duration::from_secs(5),
            issue_timeout: Duration::from_secs(60),
        }
    }
}

/// Whether a host pattern of the allow-list is valid, normalised (`None` when it is not): a
/// host name, or `*.` and a base of at least two labels — the same rule as a certificate's
/// domain ([`crate::tls::normalize_domain`]).
pub fn normalize_pattern(pattern: &str) -> Option<String> {
    crate::tls::normalize_domain(pattern)
}

/// Whether a normalised `pattern` allows a normalised `host`: the same name, or any name under a
/// `*.` pattern's base (at any depth).
pub fn pattern_allows(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(base) => host
            .strip_suffix(base)
            .is_some_and(|rest| rest.len() > 1 && rest.ends_with('.')),
        None => pattern == host,
    }
}

/// Whether the `ask` endpoint's answer approves the host: any 2xx.
pub fn ask_approves(status: StatusCode) -> bool {
    status.is_success()
}

/// What the gate says about a host that has no certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Refused now, for this reason.
    Refused(String),
    /// Another handshake is getting this host's certificate: wait for it.
    InFlight,
    /// Ask (when the app has an `ask` path) and order; the caller then reports with
    /// [`OnDemandGate::finish`].
    Proceed,
}

/// The approval rule's memory, a pure state machine of its inputs and `now`: denials cached
/// for a while, the hosts being ordered, and when the recent orders started.
#[derive(Debug)]
pub struct OnDemandGate {
    allow: Vec<String>,
    denial_ttl: Duration,
    max_orders: u32,
    order_window: Duration,
    denied: HashMap<String, (Instant, String)>,
    in_flight: HashSet<String>,
    orders: VecDeque<Instant>,
    /// When the refusals reported in the last minute were reported.
    reports: VecDeque<Instant>,
    /// Refusals not reported since the last one that was.
    unreported: u64,
}

impl OnDemandGate {
    /// A gate for `settings`; allow-list patterns that are not valid are left out (the
    /// settings are checked where they are set).
    pub fn new(settings: &OnDemandSettings) -> OnDemandGate {
        OnDemandGate {
            allow: settings
                .allow
                .iter()
                .filter_map(|p| normalize_pattern(p))
                .collect(),
            denial_ttl: settings.denial_ttl,
            max_orders: settings.max_orders,
            order_window: settings.order_window,
            denied: HashMap::new(),
            in_flight: HashSet::new(),
            orders: VecDeque::new(),
            reports: VecDeque::new(),
            unreported: 0,
        }
    }

    /// Whether a refusal at `now` is reported (an event on the app, a warning in the log): at
    /// most [`MAX_REPORTS_PER_MINUTE`], so a flood of names cannot turn into a flood of writes.
    /// `Some(n)`: report it, with the `n` refusals left unreported since the last report.
    pub fn report(&mut self, now: Instant) -> Option<u64> {
        while let Some(&at) = self.reports.front() {
            if now.saturating_duration_since(at) >= Duration::from_secs(60) {
                self.reports.pop_front();
            } else {
                break;
            }
        }
        if self.reports.len() >= MAX_REPORTS_PER_MINUTE {
            self.unreported += 1;
            return None;
        }
        self.reports.push_back(now);
        Some(std::mem::take(&mut self.unreported))
    }

    /// Whether `host` (normalised) may go on to be asked and ordered at `now`. A host outside
    /// the allow-list is refused and remembered; while the limit on orders is reached every
    /// host is refused (not remembered: it may come back once orders are free again).
    pub fn admit(&mut self, host: &str, now: Instant) -> Admission {
        if let Some((until, reason)) = self.denied.get(host) {
            if now < *until {
                return Admission::Refused(format!("{reason} (remembered)"));
            }
            self.denied.remove(host);
        }
        if self.in_flight.contains(host) {
            return Admission::InFlight;
        }
        if !self.allow.is_empty() && !self.allow.iter().any(|p| pattern_allows(p, host)) {
            let reason = "not in the allow-list of on-demand domains".to_string();
            self.deny(host, reason.clone(), now);
            return Admission::Refused(reason);
        }
        if self.in_flight.len() >= MAX_TURNS_AT_ONCE {
            return Admission::Refused(format!(
                "{MAX_TURNS_AT_ONCE} other hosts are being decided on; try again"
            ));
        }
        if !self.order_available(now) {
            return Admission::Refused(format!(
                "the limit of {} certificate orders per {} is reached",
                self.max_orders,
                humantime::format_duration(self.order_window)
            ));
        }
        self.in_flight.insert(host.to_string());
        Admission::Proceed
    }

    fn order_available(&mut self, now: Instant) -> bool {
        while let Some(&started) = self.orders.front() {
            if now.saturating_duration_since(started) >= self.order_window {
                self.orders.pop_front();
            } else {
                break;
            }
        }
        self.orders.len() < self.max_orders as usize
    }

    /// Takes one order from the limit at `now` (after approval, before ordering); `false` when
    /// none is left.
    pub fn take_order(&mut self, now: Instant) -> bool {
        if !self.order_available(now) {
            return false;
        }
        self.orders.push_back(now);
        true
    }

    /// Ends `host`'s turn: a refusal or failure is remembered for the denial time.
    pub fn finish(&mut self, host: &str, outcome: Result<(), String>, now: Instant) {
        self.in_flight.remove(host);
        if let Err(reason) = outcome {
            self.deny(host, reason, now);
        }
    }

    fn deny(&mut self, host: &str, reason: String, now: Instant) {
        if self.denied.len() >= MAX_REMEMBERED_DENIALS {
            self.denied.retain(|_, (until, _)| now < *until);
            if self.denied.len() >= MAX_REMEMBERED_DENIALS {
                return;
            }
        }
        self.denied
            .insert(host.to_string(), (now + self.denial_ttl, reason));
    }
}

/// What orders and keeps on-demand certificates: the application layer (ACME, sealed storage,
/// the app's events).
pub trait OnDemandIssuer: Send + Sync {
    /// Orders, stores and returns a certificate for `host`, owned by the catch-all app.
    fn issue<'a>(
        &'a self,
        host: &'a str,
        team: &'a str,
        app: &'a str,
    ) -> BoxFuture<'a, Result<ValidatedCertificate, String>>;

    /// Records that `host` was refused a certificate, and why (an event on the app).
    fn refused(&self, host: &str, team: &str, app: &str, reason: &str);
}

/// The HTTPS listener's on-demand step: the gate, the issuer, and the set the new certificates
/// go into.
pub struct OnDemand {
    settings: OnDemandSettings,
    gate: Mutex<OnDemandGate>,
    issuer: Arc<dyn OnDemandIssuer>,
    certificates: Arc<CertificateSet>,
}

impl std::fmt::Debug for OnDemand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnDemand")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// A host's turn to be asked about and ordered: ended as a failure when it is dropped before it
/// ended (the handshake timed out or the server stopped), so the host is not left in flight.
struct Turn<'a> {
    on_demand: &'a OnDemand,
    host: &'a str,
    ended: bool,
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        if !self.ended {
            self.on_demand.gate().finish(
                self.host,
                Err("the order was abandoned (timed out)".into()),
                Instant::now(),
            );
        }
    }
}

/// How often a handshake waiting for another one's order looks for the certificate.
const IN_FLIGHT_POLL: Duration = Duration::from_millis(200);

impl OnDemand {
    pub fn new(
        settings: OnDemandSettings,
        issuer: Arc<dyn OnDemandIssuer>,
        certificates: Arc<CertificateSet>,
    ) -> Arc<OnDemand> {
        Arc::new(OnDemand {
            gate: Mutex::new(OnDemandGate::new(&settings)),
            settings,
            issuer,
            certificates,
        })
    }

    /// The set on-demand certificates go into (the listener's).
    pub fn certificates(&self) -> &Arc<CertificateSet> {
        &self.certificates
    }

    fn gate(&self) -> std::sync::MutexGuard<'_, OnDemandGate> {
        self.gate.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Gets `host` (normalised, routed to the catch-all `route`) a certificate within the
    /// issue timeout, when the approval rule allows it; `Err` names why not. A refusal is
    /// logged and recorded on the app.
    pub async fn obtain(
        &self,
        host: &str,
        route: &Route,
        ask_path: Option<&str>,
    ) -> Result<(), String> {
        let outcome = tokio::time::timeout(
            self.settings.issue_timeout,
            self.approve_and_issue(host, route, ask_path),
        )
        .await
        .unwrap_or_else(|_| {
            // The turn's guard, dropped with the future, has ended the turn.
            Err(format!(
                "no certificate within {}",
                humantime::format_duration(self.settings.issue_timeout)
            ))
        });
        if let Err(reason) = &outcome {
            let report = self.gate().report(Instant::now());
            match report {
                Some(0) => {
                    warn!(%host, app = %route.app, %reason, "router: no on-demand certificate");
                    self.issuer.refused(host, &route.team, &route.app, reason);
                }
                Some(unreported) => {
                    let reason = format!("{reason} ({unreported} more refusals not reported)");
                    warn!(%host, app = %route.app, %reason, "router: no on-demand certificate");
                    self.issuer.refused(host, &route.team, &route.app, &reason);
                }
                None => {
                    debug!(%host, app = %route.app, %reason, "router: no on-demand certificate")
                }
            }
        }
        outcome
    }

    async fn approve_and_issue(
        &self,
        host: &str,
        route: &Route,
        ask_path: Option<&str>,
    ) -> Result<(), String> {
        loop {
            let admission = self.gate().admit(host, Instant::now());
            match admission {
                Admission::Refused(reason) => return Err(reason),
                Admission::Proceed => break,
                Admission::InFlight => {
                    tokio::time::sleep(IN_FLIGHT_POLL).await;
                    if self.certificates.find(host).is_some() {
                        return Ok(());
                    }
                }
            }
        }
        let mut turn = Turn {
            on_demand: self,
            host,
            ended: false,
        };
        let outcome = self.ask_then_issue(host, route, ask_path).await;
        turn.ended = true;
        self.gate().finish(host, outcome.clone(), Instant::now());
        outcome
    }

    async fn ask_then_issue(
        &self,
        host: &str,
        route: &Route,
        ask_path: Option<&str>,
    ) -> Result<(), String> {
        match (ask_path, self.settings.allow.is_empty()) {
            (Some(path), _) => self.ask(host, route, path).await?,
            (None, false) => {}
            (None, true) => {
                return Err("neither an allow-list nor an ask path approves hosts".into());
            }
        }
        if !self.gate().take_order(Instant::now()) {
            return Err(format!(
                "the limit of {} certificate orders per {} is reached",
                self.settings.max_orders,
                humantime::format_duration(self.settings.order_window)
            ));
        }
        info!(%host, app = %route.app, "router: ordering an on-demand certificate");
        let certificate = self.issuer.issue(host, &route.team, &route.app).await?;
        self.certificates.insert(certificate);
        Ok(())
    }

    /// Asks one of the app's ready instances whether `host` is one of its domains.
    async fn ask(&self, host: &str, route: &Route, path: &str) -> Result<(), String> {
        let Some((_, backend)) = route.pick(&[], Lane::Any, |_| 0) else {
            return Err(format!("app {} has no ready instance to ask", route.app));
        };
        let separator = if path.contains('?') { '&' } else { '?' };
        let uri = format!("{path}{separator}domain={host}");
        let address = match backend.address.contains(':') {
            true => format!("[{}]:{}", backend.address, backend.port),
            false => format!("{}:{}", backend.address, backend.port),
        };
        let asked = async {
            let stream = TcpStream::connect(&address)
                .await
                .map_err(|e| format!("cannot reach the ask endpoint: {e}"))?;
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .map_err(|e| format!("cannot reach the ask endpoint: {e}"))?;
            tokio::spawn(connection);
            let request = Request::get(uri.as_str())
                .header(header::HOST, host)
                .body(Empty::<Bytes>::new())
                .map_err(|e| format!("the ask path gives no valid request: {e}"))?;
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| format!("the ask endpoint did not answer: {e}"))?;
            Ok::<_, String>(response.status())
        };
        match tokio::time::timeout(self.settings.ask_timeout, asked).await {
            Ok(Ok(status)) if ask_approves(status) => Ok(()),
            Ok(Ok(status)) => Err(format!("the app's ask endpoint answered {status}")),
            Ok(Err(reason)) => Err(reason),
            Err(_) => Err("the app's ask endpoint did not answer in time".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(allow: &[&str], max_orders: u32) -> OnDemandSettings {
        OnDemandSettings {
            allow: allow.iter().map(|p| p.to_string()).collect(),
            denial_ttl: Duration::from_secs(60),
            max_orders,
            order_window: Duration::from_secs(3600),
            ..OnDemandSettings::default()
        }
    }

    #[test]
    fn allow_list_patterns_cover_names_and_names_under_wildcards() {
        let cases: &[(&str, &str, bool)] = &[
            ("shop.customer.test", "shop.customer.test", true),
            ("shop.customer.test", "www.shop.customer.test", false),
            ("*.customer.test", "shop.customer.test", true),
            ("*.customer.test", "a.b.customer.test", true),
            ("*.customer.test", "customer.test", false),
            ("*.customer.test", "evilcustomer.test", false),
            ("*.customer.test", "customer.test.evil", false),
        ];
        for (pattern, host, want) in cases {
            assert_eq!(
                pattern_allows(pattern, host),
                *want,
                "{pattern} allows {host}"
            );
        }
        let patterns: &[(&str, Option<&str>)] = &[
            ("Shop.Customer.Test.", Some("shop.customer.test")),
            ("*.Customer.test", Some("*.customer.test")),
            ("*.test", None),
            ("*", None),
            ("a.*.test", None),
            ("shop.test:443", None),
            ("", None),
        ];
        for (pattern, want) in patterns {
            assert_eq!(normalize_pattern(pattern).as_deref(), *want, "{pattern:?}");
        }
        assert!(ask_approves(StatusCode::OK));
        assert!(ask_approves(StatusCode::NO_CONTENT));
        for status in [301, 404, 403, 500, 503] {
            assert!(!ask_approves(StatusCode::from_u16(status).unwrap()));
        }
    }

    #[test]
    fn the_gate_remembers_denials_serialises_hosts_and_limits_orders() {
        let start = Instant::now();
        let mut gate = OnDemandGate::new(&settings(&["*.customer.test"], 2));
        // Outside the allow-list: refused and remembered.
        assert!(matches!(
            gate.admit("shop.other.test", start),
            Admission::Refused(_)
        ));
        let Admission::Refused(again) = gate.admit("shop.other.test", start) else {
            panic!("remembered");
        };
        assert!(again.contains("remembered"), "{again}");
        // One turn per host at a time.
        assert_eq!(gate.admit("a.customer.test", start), Admission::Proceed);
        assert_eq!(gate.admit("a.customer.test", start), Admission::InFlight);
        assert!(gate.take_order(start));
        gate.finish("a.customer.test", Ok(()), start);
        // A refusal by the ask endpoint is remembered for the denial time, then forgotten.
        assert_eq!(gate.admit("bad.customer.test", start), Admission::Proceed);
        gate.finish("bad.customer.test", Err("ask said 403".into()), start);
        let later = start + Duration::from_secs(59);
        assert!(
            matches!(gate.admit("bad.customer.test", later), Admission::Refused(r) if r.contains("403"))
        );
        let expired = start + Duration::from_secs(60);
        assert_eq!(gate.admit("bad.customer.test", expired), Admission::Proceed);
        gate.finish("bad.customer.test", Ok(()), expired);
        // Two orders per hour: the third host is refused (not remembered) until the window moves.
        assert_eq!(gate.admit("b.customer.test", start), Admission::Proceed);
        assert!(gate.take_order(start + Duration::from_secs(1)));
        gate.finish("b.customer.test", Ok(()), start);
        assert!(
            matches!(gate.admit("c.customer.test", start), Admission::Refused(r) if r.contains("limit"))
        );
        assert!(!gate.take_order(start + Duration::from_secs(2)));
        assert_eq!(
            gate.admit("c.customer.test", start + Duration::from_secs(3600)),
            Admission::Proceed
        );
        assert!(gate.take_order(start + Duration::from_secs(3600)));
    }

    /// An issuer that never answers.
    struct Stuck;

    impl OnDemandIssuer for Stuck {
        fn issue<'a>(
            &'a self,
            _host: &'a str,
            _team: &'a str,
            _app: &'a str,
        ) -> BoxFuture<'a, Result<ValidatedCertificate, String>> {
            Box::pin(std::future::pending())
        }

        fn refused(&self, _host: &str, _team: &str, _app: &str, _reason: &str) {}
    }

    #[tokio::test(start_paused = true)]
    async fn an_order_that_times_out_ends_its_turn_and_is_remembered() {
        let table = crate::RoutingTable::build(vec![crate::RoutedApp {
            app: "sites".into(),
            team: "t".into(),
            domains: vec![],
            backends: vec![],
            unavailable: String::new(),
            https_redirect: false,
            canary: None,
            hold: false,
            wake: false,
        }]);
        let route = &table.routes()[0];
        let settings = OnDemandSettings {
            issue_timeout: Duration::from_secs(5),
            ..settings(&["*.customer.test"], 10)
        };
        let on_demand = OnDemand::new(settings, Arc::new(Stuck), CertificateSet::new());
        let (first, waiter) =
            tokio::join!(on_demand.obtain("slow.customer.test", route, None), async {
                // Arrives while the first one holds the turn, and waits for it.
                tokio::time::sleep(Duration::from_secs(1)).await;
                on_demand.obtain("slow.customer.test", route, None).await
            });
        assert!(first.unwrap_err().contains("no certificate within 5s"));
        assert!(waiter.is_err());
        let mut gate = on_demand.gate();
        assert!(gate.in_flight.is_empty(), "the turn ended");
        assert!(matches!(
            gate.admit("slow.customer.test", Instant::now()),
            Admission::Refused(reason) if reason.contains("abandoned")
        ));
    }

    #[test]
    fn refusals_are_reported_at_most_so_often() {
        let start = Instant::now();
        let mut gate = OnDemandGate::new(&settings(&[], 10));
        for _ in 0..MAX_REPORTS_PER_MINUTE {
            assert_eq!(gate.report(start), Some(0));
        }
        assert_eq!(gate.report(start), None);
        assert_eq!(gate.report(start + Duration::from_secs(59)), None);
        // A minute later, the next report says how many were left out.
        assert_eq!(gate.report(start + Duration::from_secs(60)), Some(2));
        assert_eq!(gate.report(start + Duration::from_secs(61)), Some(0));
    }

    #[test]
    fn only_so_many_hosts_are_decided_on_at_once() {
        let start = Instant::now();
        let mut gate = OnDemandGate::new(&settings(&[], 100));
        for n in 0..MAX_TURNS_AT_ONCE {
            assert_eq!(gate.admit(&format!("h{n}.test"), start), Admission::Proceed);
        }
        let refused = gate.admit("one-more.test", start);
        assert!(matches!(refused, Admission::Refused(ref r) if r.contains("try again")));
        // Not remembered: once a turn ends, the host gets its own.
        gate.finish("h0.test", Ok(()), start);
        assert_eq!(gate.admit("one-more.test", start), Admission::Proceed);
    }

    #[test]
    fn the_denial_cache_is_bounded() {
        let start = Instant::now();
        let mut gate = OnDemandGate::new(&settings(&["only.customer.test"], 10));
        for n in 0..MAX_REMEMBERED_DENIALS + 5 {
            let _ = gate.admit(&format!("h{n}.flood.test"), start);
        }
        assert_eq!(gate.denied.len(), MAX_REMEMBERED_DENIALS);
        // Once the first ones expire, new denials are remembered again.
        let later = start + Duration::from_secs(61);
        let _ = gate.admit("late.flood.test", later);
        assert_eq!(gate.denied.len(), 1);
    }
}
