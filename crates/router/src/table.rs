//! The routing table: which app answers to which host name, and which ready instances serve it.
//! A pure data structure built from plain inputs (no sockets), swapped whole when state changes.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use berth_core::routes::{MAX_HOST_LEN, is_host_name, path_has_prefix};

use crate::stats::BoundRoute;

/// A ready, not-draining instance of an app, as the engine reports its address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    /// The instance's name (for logs and in-flight bookkeeping).
    pub instance: String,
    /// An IP address (v4 or v6, without brackets).
    pub address: String,
    pub port: u16,
    /// The app revision the instance runs (a canary's share goes by revision).
    pub revision: u32,
}

/// A host name and the path prefix under it (`/` for the whole host) that reach an app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteDomain {
    /// Without port; normalised (lowercase, no trailing dot) when the table is built.
    pub host: String,
    /// `/`, or a prefix without trailing slash (`/api` matches `/api` and `/api/…`).
    pub path: String,
}

impl RouteDomain {
    /// The whole of `host`.
    pub fn host(host: impl Into<String>) -> RouteDomain {
        RouteDomain {
            host: host.into(),
            path: "/".to_string(),
        }
    }
}

/// One app as the router needs to know it: the domains it answers to and where it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutedApp {
    pub app: String,
    pub team: String,
    pub domains: Vec<RouteDomain>,
    /// Only ready, not-draining instances.
    pub backends: Vec<Backend>,
    /// The sentence of the 503 page when `backends` is empty,
    /// e.g. "app web is rolling out: no instance is ready yet".
    pub unavailable: String,
    /// Plain-HTTP requests are answered with a redirect to HTTPS.
    pub https_redirect: bool,
    /// While a canary is judged: the part of the traffic its revision takes.
    pub canary: Option<CanarySplit>,
    /// When `backends` is empty, requests wait (up to the router's hold timeout) for an
    /// instance to become ready instead of getting the 503 page at once: the app is bringing
    /// one up.
    pub hold: bool,
    /// The app was scaled to 0 when idle: a request for it signals a wake
    /// ([`crate::Wake`]) before it is held.
    pub wake: bool,
}

/// The part of an app's traffic a canary revision takes while it is judged; the rest goes to
/// the other revisions' instances.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanarySplit {
    pub revision: u32,
    /// Share of requests in percent (1–99), when no header is set.
    pub weight_percent: u8,
    /// Only requests carrying this header (lowercase name) with this value go to the canary.
    pub header: Option<(String, String)>,
}

impl CanarySplit {
    /// Whether a request goes to the canary: by its header when one is set, else by `roll`
    /// (uniform in 0..100) against the share. `header_value` looks a request header up.
    pub fn takes<'h>(&self, header_value: impl FnOnce(&str) -> Option<&'h [u8]>, roll: u8) -> bool {
        match &self.header {
            Some((name, value)) => header_value(name) == Some(value.as_bytes()),
            None => roll < self.weight_percent,
        }
    }
}

/// Which instances a request may go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    Any,
    /// The instances of this revision (a canary's share).
    Revision(u32),
    /// The instances of every other revision (the rest of the traffic).
    OtherThan(u32),
}

impl Lane {
    fn admits(self, backend: &Backend) -> bool {
        match self {
            Lane::Any => true,
            Lane::Revision(revision) => backend.revision == revision,
            Lane::OtherThan(revision) => backend.revision != revision,
        }
    }
}

/// What a domain routes to: one app and its ready instances, balanced by least outstanding
/// requests (round robin among equals).
#[derive(Debug)]
pub struct Route {
    pub app: String,
    pub team: String,
    pub backends: Vec<Backend>,
    pub unavailable: String,
    /// Plain-HTTP requests are answered with a redirect to HTTPS.
    pub https_redirect: bool,
    pub canary: Option<CanarySplit>,
    /// Requests wait for a ready instance when there is none (see [`RoutedApp::hold`]).
    pub hold: bool,
    /// Requests without a ready instance signal a wake (see [`RoutedApp::wake`]).
    pub wake: bool,
    next: AtomicUsize,
    /// The data path's per-backend state for this route, bound on first use
    /// ([`crate::RouterStats`]), so requests need no lookup by address.
    pub(crate) bound: OnceLock<BoundRoute>,
}

impl Route {
    /// The backend with the fewest requests outstanding (`outstanding(index)`) among those of
    /// `lane` (any backend when the lane has none left), leaving out the indices in `skip` (the
    /// backends a retry already tried); ties go round robin, so equally loaded backends take
    /// turns. Returns the backend's index (to add to `skip`) with it; `None` when every backend
    /// is skipped or there is none.
    pub fn pick(
        &self,
        skip: &[usize],
        lane: Lane,
        outstanding: impl Fn(usize) -> usize,
    ) -> Option<(usize, &Backend)> {
        let n = self.backends.len();
        if n == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let least_busy = |lane: Lane| {
            (0..n)
                .map(|offset| (start + offset) % n)
                .filter(|index| !skip.contains(index) && lane.admits(&self.backends[*index]))
                .min_by_key(|&index| outstanding(index))
        };
        least_busy(lane)
            .or_else(|| least_busy(Lane::Any))
            .map(|index| (index, &self.backends[index]))
    }

    /// The lane of a request: the canary's or the rest while a canary is judged and both have
    /// instances, else any instance. `takes_canary` decides for one request.
    pub fn lane(&self, takes_canary: impl FnOnce(&CanarySplit) -> bool) -> Lane {
        let Some(split) = &self.canary else {
            return Lane::Any;
        };
        if takes_canary(split) {
            Lane::Revision(split.revision)
        } else {
            Lane::OtherThan(split.revision)
        }
    }
}

/// A domain claimed by two apps: `owner` keeps it (first by (team, app) order), `other` does
/// not get it. Kept so the control plane can show it; the table never panics over it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostConflict {
    pub host: String,
    pub path: String,
    /// (team, app) that routes the domain.
    pub owner: (String, String),
    /// (team, app) that also claimed it and does not get it.
    pub other: (String, String),
}

/// A host name in the input that is not a valid host name; it routes nowhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidHost {
    pub host: String,
    /// (team, app) that listed it.
    pub app: (String, String),
}

/// The app that receives the hosts no other app routes (customers' own domains, with
/// certificates issued on demand), and the domains that never reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatchAll {
    pub team: String,
    pub app: String,
    /// Names that never reach the catch-all, nor any name under them: the apps domain and the
    /// reserved domains (normalised when the table is built; invalid ones are dropped).
    pub excluded: Vec<String>,
    /// The path on the app that approves a host before a certificate is ordered for it
    /// (`GET <path>?domain=<host>`, 2xx approves), when it has one.
    pub ask_path: Option<String>,
}

/// Host name → path prefixes → route, built once from the routed apps and read by every
/// request. A wildcard domain `*.shop.example.com` answers every one-label name under
/// `shop.example.com` that no app claims exactly (an exact host, whatever its paths, beats a
/// wildcard, as in nginx's `server_name`). With a catch-all app, every other name that could be
/// a customer's domain goes to it (see [`RoutingTable::catch_all`]).
#[derive(Debug, Default)]
pub struct RoutingTable {
    routes: Vec<Route>,
    /// Per host, its (path prefix, route index), longest prefix first.
    hosts: HashMap<String, Vec<(String, usize)>>,
    /// The same for wildcard domains, keyed by the name under the `*.`.
    wildcards: HashMap<String, Vec<(String, usize)>>,
    conflicts: Vec<HostConflict>,
    invalid: Vec<InvalidHost>,
    /// The catch-all app's route, when it is among the routed apps.
    catch_all: Option<usize>,
    /// Normalised names that never reach the catch-all, nor names under them.
    excluded: Vec<String>,
    catch_all_ask_path: Option<String>,
}

impl RoutingTable {
    /// Builds the table. Apps are considered in (team, app) order so that the winner of a
    /// conflict does not depend on the order of the input.
    pub fn build(apps: Vec<RoutedApp>) -> RoutingTable {
        RoutingTable::build_with_catch_all(apps, None)
    }

    /// Builds the table with `catch_all` receiving the hosts no app routes; it is ignored when
    /// its app is not among `apps` (an internal or deleted app routes nothing).
    pub fn build_with_catch_all(apps: Vec<RoutedApp>, catch_all: Option<CatchAll>) -> RoutingTable {
        let mut table = RoutingTable::build_routes(apps);
        if let Some(catch_all) = catch_all {
            table.catch_all = table
                .routes
                .iter()
                .position(|route| route.team == catch_all.team && route.app == catch_all.app);
            table.excluded = catch_all
                .excluded
                .iter()
                .filter_map(|domain| normalize_host(domain).map(Cow::into_owned))
                .collect();
            table.catch_all_ask_path = catch_all.ask_path;
        }
        table
    }

    fn build_routes(apps: Vec<RoutedApp>) -> RoutingTable {
        let mut apps = apps;
        apps.sort_by(|a, b| (&a.team, &a.app).cmp(&(&b.team, &b.app)));
        let mut table = RoutingTable::default();
        for app in apps {
            let index = table.routes.len();
            let key = (app.team.clone(), app.app.clone());
            for domain in &app.domains {
                let (map, host) = match domain.host.strip_prefix("*.") {
                    Some(base) => (&mut table.wildcards, normalize_host(base)),
                    None => (&mut table.hosts, normalize_host(&domain.host)),
                };
                // A wildcard's base has two labels at least (`*.com` routes nothing).
                let host = host.filter(|h| map_key_ok(domain, h));
                let Some(host) = host else {
                    table.invalid.push(InvalidHost {
                        host: domain.host.clone(),
                        app: key.clone(),
                    });
                    continue;
                };
                let shown = match domain.host.starts_with("*.") {
                    true => format!("*.{host}"),
                    false => host.to_string(),
                };
                let prefixes = map.entry(host.into_owned()).or_default();
                match prefixes.iter().find(|(path, _)| *path == domain.path) {
                    Some(&(_, owner)) if owner == index => {}
                    Some(&(_, owner)) => {
                        let owner = &table.routes[owner];
                        table.conflicts.push(HostConflict {
                            host: shown,
                            path: domain.path.clone(),
                            owner: (owner.team.clone(), owner.app.clone()),
                            other: key.clone(),
                        });
                    }
                    None => prefixes.push((domain.path.clone(), index)),
                }
            }
            table.routes.push(Route {
                app: app.app,
                team: app.team,
                backends: app.backends,
                unavailable: app.unavailable,
                https_redirect: app.https_redirect,
                canary: app.canary,
                hold: app.hold,
                wake: app.wake,
                next: AtomicUsize::new(0),
                bound: OnceLock::new(),
            });
        }
        for prefixes in table.hosts.values_mut().chain(table.wildcards.values_mut()) {
            prefixes.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
        }
        table
    }

    /// The route for a `Host` header value (or a URI authority) and a request path: the
    /// host's longest path prefix that covers the path; for a host no app claims exactly, the
    /// same among the wildcard domain one label up. The host is matched without case, a
    /// `:port` and a trailing dot ignored; `None` for an unknown host, a path no prefix
    /// covers, and anything that is not a host name (IPv6 literals, userinfo, spaces…).
    ///
    /// A host that no app claims, exactly or by wildcard, goes to the catch-all app when
    /// [`RoutingTable::catch_all`] admits it.
    pub fn route(&self, host_header: &str, path: &str) -> Option<&Route> {
        let host = normalize_host(host_header)?;
        match self.claimed(&host) {
            Some(prefixes) => prefixes
                .iter()
                .find(|(prefix, _)| path_has_prefix(path, prefix))
                .map(|&(_, i)| &self.routes[i]),
            None => self.catch_all_index(&host).map(|i| &self.routes[i]),
        }
    }

    /// The path prefixes of a normalised host some app claims, exactly or by wildcard.
    fn claimed(&self, host: &str) -> Option<&Vec<(String, usize)>> {
        self.hosts.get(host).or_else(|| {
            let (_, parent) = host.split_once('.')?;
            self.wildcards.get(parent)
        })
    }

    /// The catch-all app's route for a host (a `Host` header value or a TLS server name) that
    /// no app claims: only a DNS name of two labels at least whose last label is not numeric
    /// (never an IP literal), and neither an excluded domain nor a name under one. `None` for
    /// every other host and when there is no catch-all app.
    pub fn catch_all(&self, host: &str) -> Option<&Route> {
        let host = normalize_host(host)?;
        if self.claimed(&host).is_some() {
            return None;
        }
        self.catch_all_index(&host).map(|i| &self.routes[i])
    }

    /// The catch-all app's approval path, when it has one.
    pub fn catch_all_ask_path(&self) -> Option<&str> {
        self.catch_all_ask_path.as_deref()
    }

    fn catch_all_index(&self, host: &str) -> Option<usize> {
        let index = self.catch_all?;
        let (_, last) = host.rsplit_once('.')?;
        if last.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let excluded = self.excluded.iter().any(|domain| {
            host == domain
                || host
                    .strip_suffix(domain.as_str())
                    .is_some_and(|rest| rest.ends_with('.'))
        });
        (!excluded).then_some(index)
    }

    /// Every route, in (team, app) order.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// Domains claimed by more than one app.
    pub fn conflicts(&self) -> &[HostConflict] {
        &self.conflicts
    }

    /// Host names in the input that are not valid host names.
    pub fn invalid_hosts(&self) -> &[InvalidHost] {
        &self.invalid
    }
}

/// Whether a normalised host may key the table: any host name, and for a wildcard a base of
/// two labels at least.
fn map_key_ok(domain: &RouteDomain, host: &str) -> bool {
    !domain.host.starts_with("*.") || host.contains('.')
}

/// Normalises a `Host` header value or URI authority to the host name the table is keyed by:
/// lowercase, without `:port` and without a trailing dot. `None` when it is not a DNS host name
/// (LDH labels of 1 to 63 characters, at most 253 in all) with an optional numeric port;
/// IPv6 literals (`[::1]`) are refused too, so they never match an app.
pub fn normalize_host(value: &str) -> Option<Cow<'_, str>> {
    // Cheap refusal of oversized input before looking at it byte by byte.
    if value.len() > MAX_HOST_LEN + 1 + 6 {
        return None;
    }
    let host = match value.rsplit_once(':') {
        Some((host, port)) => {
            if port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            if !port.is_empty() && port.parse::<u16>().is_err() {
                return None;
            }
            host
        }
        None => value,
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    if !is_host_name(host) {
        return None;
    }
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Some(Cow::Owned(host.to_ascii_lowercase()))
    } else {
        Some(Cow::Borrowed(host))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(instance: &str, port: u16) -> Backend {
        Backend {
            instance: instance.to_string(),
            address: "10.0.0.1".to_string(),
            port,
            revision: 1,
        }
    }

    fn app(team: &str, name: &str, hosts: &[&str], backends: Vec<Backend>) -> RoutedApp {
        RoutedApp {
            app: name.to_string(),
            team: team.to_string(),
            domains: hosts.iter().map(|h| RouteDomain::host(*h)).collect(),
            backends,
            unavailable: format!("app {name} is scaled to 0"),
            https_redirect: false,
            canary: None,
            hold: false,
            wake: false,
        }
    }

    #[test]
    fn normalize_host_accepts_host_names_and_refuses_the_rest() {
        let cases: &[(&str, Option<&str>)] = &[
            ("shop.example.com", Some("shop.example.com")),
            ("Shop.Example.COM", Some("shop.example.com")),
            ("shop.example.com:8080", Some("shop.example.com")),
            ("shop.example.com.", Some("shop.example.com")),
            ("shop.example.com.:80", Some("shop.example.com")),
            ("shop.example.com:", Some("shop.example.com")),
            ("localhost", Some("localhost")),
            ("web.localhost:3000", Some("web.localhost")),
            ("a-b.c1", Some("a-b.c1")),
            ("127.0.0.1:80", Some("127.0.0.1")),
            ("", None),
            (":80", None),
            (".", None),
            ("shop..example.com", None),
            (".shop.example.com", None),
            ("shop.example.com..", None),
            ("-shop.example.com", None),
            ("shop-.example.com", None),
            ("shop.example.com:port", None),
            ("shop.example.com:65536", None),
            ("shop.example.com:123456", None),
            ("shop.example.com:-1", None),
            ("shop.example.com:+80", None),
            ("shop.example.com:80:80", None),
            ("shop.example.com/path", None),
            ("shop.example.com/", None),
            ("shop example.com", None),
            (" shop.example.com", None),
            ("shop.example.com ", None),
            ("user@shop.example.com", None),
            ("user:pass@shop.example.com", None),
            ("[::1]", None),
            ("[::1]:80", None),
            ("::1", None),
            ("shop_1.example.com", None),
            ("shop.example.com\0", None),
            ("shop.example.com\r\nx: y", None),
            ("shöp.example.com", None),
            ("xn--shp-sna.example.com", Some("xn--shp-sna.example.com")),
            ("shop.example.com?x", None),
            ("shop.example.com#x", None),
            ("shop%2eexample.com", None),
        ];
        for (input, want) in cases {
            assert_eq!(
                normalize_host(input).as_deref(),
                *want,
                "normalize_host({input:?})"
            );
        }
    }

    #[test]
    fn normalize_host_length_limits() {
        let label63 = "a".repeat(63);
        let label64 = "a".repeat(64);
        assert!(normalize_host(&format!("{label63}.com")).is_some());
        assert!(normalize_host(&format!("{label64}.com")).is_none());
        // 4 × 63 + 3 dots = 255 > 253.
        let long = [label63.as_str(); 4].join(".");
        assert!(normalize_host(&long).is_none());
        let ok = format!("{}.{}", [label63.as_str(); 3].join("."), "a".repeat(61));
        assert_eq!(ok.len(), 253);
        assert!(normalize_host(&ok).is_some());
        assert!(normalize_host(&format!("{ok}.")).is_some());
        assert!(normalize_host(&format!("{ok}.:65535")).is_some());
        assert!(normalize_host(&"a.".repeat(10_000)).is_none());
    }

    #[test]
    fn route_finds_the_app_by_host() {
        let table = RoutingTable::build(vec![
            app(
                "t1",
                "web",
                &["web.example.com", "WWW.Example.com."],
                vec![],
            ),
            app(
                "t2",
                "api",
                &["api.example.com"],
                vec![backend("api-1", 80)],
            ),
        ]);
        let cases: &[(&str, Option<&str>)] = &[
            ("web.example.com", Some("web")),
            ("WEB.example.com:80", Some("web")),
            ("www.example.com", Some("web")),
            ("www.example.com.", Some("web")),
            ("api.example.com:8443", Some("api")),
            ("other.example.com", None),
            ("example.com", None),
            ("web.example.com/x", None),
            ("[::1]:80", None),
            ("", None),
        ];
        for (host, want) in cases {
            assert_eq!(
                table.route(host, "/").map(|r| r.app.as_str()),
                *want,
                "route({host:?})"
            );
        }
        assert!(table.conflicts().is_empty());
        assert!(table.invalid_hosts().is_empty());
    }

    #[test]
    fn a_host_claimed_twice_goes_to_the_first_by_team_then_app() {
        // Given in the "wrong" order: the winner must not depend on input order.
        let table = RoutingTable::build(vec![
            app("b-team", "shop", &["shop.example.com"], vec![]),
            app(
                "a-team",
                "zeta",
                &["shop.example.com", "zeta.example.com"],
                vec![],
            ),
            app("a-team", "alpha", &["shop.example.com"], vec![]),
        ]);
        let route = table.route("shop.example.com", "/").expect("routed");
        assert_eq!(
            (route.team.as_str(), route.app.as_str()),
            ("a-team", "alpha")
        );
        assert_eq!(
            table.route("zeta.example.com", "/").map(|r| r.app.as_str()),
            Some("zeta")
        );
        let owner = ("a-team".to_string(), "alpha".to_string());
        assert_eq!(
            table.conflicts(),
            &[
                HostConflict {
                    host: "shop.example.com".into(),
                    path: "/".into(),
                    owner: owner.clone(),
                    other: ("a-team".into(), "zeta".into()),
                },
                HostConflict {
                    host: "shop.example.com".into(),
                    path: "/".into(),
                    owner,
                    other: ("b-team".into(), "shop".into()),
                },
            ]
        );
        let order: Vec<_> = table.routes().iter().map(|r| r.app.as_str()).collect();
        assert_eq!(order, ["alpha", "zeta", "shop"]);
    }

    #[test]
    fn a_host_listed_twice_by_one_app_is_no_conflict_and_invalid_hosts_are_kept_aside() {
        let table = RoutingTable::build(vec![app(
            "t",
            "web",
            &["web.example.com", "Web.Example.com.", "bad host", "[::1]"],
            vec![],
        )]);
        assert!(table.conflicts().is_empty());
        let invalid: Vec<_> = table
            .invalid_hosts()
            .iter()
            .map(|h| h.host.as_str())
            .collect();
        assert_eq!(invalid, ["bad host", "[::1]"]);
        assert_eq!(
            table.route("web.example.com", "/").map(|r| r.app.as_str()),
            Some("web")
        );
    }

    #[test]
    fn a_wildcard_answers_one_label_names_no_app_claims_exactly() {
        let mut api = app("t", "api", &[], vec![]);
        api.domains = vec![RouteDomain {
            host: "a.shop.example.com".into(),
            path: "/api".into(),
        }];
        let table = RoutingTable::build(vec![
            app("t", "shop", &["*.Shop.example.com."], vec![]),
            app("t", "exact", &["b.shop.example.com"], vec![]),
            api,
            app("u", "deep", &["*.x.shop.example.com"], vec![]),
            app("u", "tld", &["*.com", "*.", "*.bad host"], vec![]),
        ]);
        // (host, path, app)
        let cases: &[(&str, &str, Option<&str>)] = &[
            ("c.shop.example.com", "/", Some("shop")),
            ("C.Shop.Example.com.:443", "/x", Some("shop")),
            // An exact host beats the wildcard, whatever its path prefixes.
            ("b.shop.example.com", "/", Some("exact")),
            ("a.shop.example.com", "/api/x", Some("api")),
            ("a.shop.example.com", "/", None),
            // One label only: deeper names and the base itself are not covered.
            ("shop.example.com", "/", None),
            ("a.b.shop.example.com", "/", None),
            ("y.x.shop.example.com", "/", Some("deep")),
            ("x.shop.example.com", "/", Some("shop")),
            // A literal `*` in a Host header is not a host name.
            ("*.shop.example.com", "/", None),
            ("example.com", "/", None),
            ("a.com", "/", None),
        ];
        for (host, path, want) in cases {
            assert_eq!(
                table.route(host, path).map(|r| r.app.as_str()),
                *want,
                "route({host:?}, {path:?})"
            );
        }
        let invalid: Vec<_> = table
            .invalid_hosts()
            .iter()
            .map(|h| h.host.as_str())
            .collect();
        assert_eq!(invalid, ["*.com", "*.", "*.bad host"]);
        // Two apps claiming one wildcard: the first by (team, app) keeps it.
        let table = RoutingTable::build(vec![
            app("b", "two", &["*.shop.example.com"], vec![]),
            app("a", "one", &["*.shop.example.com"], vec![]),
        ]);
        assert_eq!(
            table
                .route("x.shop.example.com", "/")
                .map(|r| r.app.as_str()),
            Some("one")
        );
        assert_eq!(table.conflicts()[0].host, "*.shop.example.com");
        assert_eq!(table.conflicts()[0].other, ("b".into(), "two".into()));
    }

    #[test]
    fn the_longest_path_prefix_of_the_host_wins() {
        let mut shop = app("t", "shop", &["shop.example.com"], vec![]);
        let mut api = app("t", "api", &[], vec![]);
        api.domains = vec![
            RouteDomain {
                host: "shop.example.com".into(),
                path: "/api".into(),
            },
            RouteDomain {
                host: "Other.example.com".into(),
                path: "/api".into(),
            },
        ];
        let mut v2 = app("u", "api-v2", &[], vec![]);
        v2.domains = vec![RouteDomain {
            host: "shop.example.com".into(),
            path: "/api/v2".into(),
        }];
        shop.domains.push(RouteDomain::host("www.example.com"));
        let table = RoutingTable::build(vec![v2, shop, api]);
        // (host, path, app)
        let cases = [
            ("shop.example.com", "/", Some("shop")),
            ("shop.example.com", "/apix", Some("shop")),
            ("shop.example.com", "/api", Some("api")),
            ("shop.example.com", "/api/", Some("api")),
            ("shop.example.com", "/api?x=1", Some("api")),
            ("shop.example.com", "/api/v1/users", Some("api")),
            ("shop.example.com", "/api/v2", Some("api-v2")),
            ("shop.example.com", "/api/v2/x", Some("api-v2")),
            ("shop.example.com", "/api/v20", Some("api")),
            ("other.example.com", "/api/x", Some("api")),
            ("other.example.com", "/", None),
            ("other.example.com", "/ap", None),
            ("www.example.com:8080", "/api", Some("shop")),
        ];
        for (host, path, want) in cases {
            assert_eq!(
                table.route(host, path).map(|r| r.app.as_str()),
                want,
                "{host}{path}"
            );
        }
        assert!(table.conflicts().is_empty());
    }

    #[test]
    fn pick_goes_round_robin_among_equals_and_skips_what_a_retry_tried() {
        let table = RoutingTable::build(vec![app(
            "t",
            "web",
            &["web.example.com"],
            vec![backend("a", 1), backend("b", 2), backend("c", 3)],
        )]);
        let route = table.route("web.example.com", "/").expect("routed");
        let idle = |_| 0;
        let picked: Vec<_> = (0..6)
            .map(|_| {
                route
                    .pick(&[], Lane::Any, idle)
                    .map(|(_, b)| b.instance.as_str())
            })
            .collect();
        assert_eq!(
            picked,
            [
                Some("a"),
                Some("b"),
                Some("c"),
                Some("a"),
                Some("b"),
                Some("c")
            ]
        );
        // Skipping: whatever the counter says, the skipped indices never come back.
        for _ in 0..6 {
            let (i, b) = route.pick(&[1], Lane::Any, idle).expect("one left");
            assert_ne!(i, 1);
            assert_ne!(b.instance, "b");
        }
        for _ in 0..3 {
            assert_eq!(
                route.pick(&[0, 2], Lane::Any, idle).map(|(i, _)| i),
                Some(1)
            );
        }
        assert_eq!(
            route.pick(&[0, 1, 2], Lane::Any, idle).map(|(i, _)| i),
            None
        );
    }

    #[test]
    fn pick_prefers_the_backend_with_the_fewest_outstanding_requests() {
        let table = RoutingTable::build(vec![app(
            "t",
            "web",
            &["web.example.com"],
            vec![backend("a", 1), backend("b", 2), backend("c", 3)],
        )]);
        let route = table.route("web.example.com", "/").expect("routed");
        // (outstanding per backend, skipped, what every pick must be: one index, or any of
        // several that tie)
        let cases: &[(&[usize], &[usize], &[usize])] = &[
            (&[5, 0, 5], &[], &[1]),
            (&[0, 9, 9], &[], &[0]),
            (&[3, 3, 1], &[], &[2]),
            (&[3, 3, 1], &[2], &[0, 1]),
            (&[0, 1, 0], &[], &[0, 2]),
            (&[7, 7, 7], &[], &[0, 1, 2]),
            (&[0, 0, 0], &[0, 1], &[2]),
        ];
        for &(load, skip, want) in cases {
            let mut seen = std::collections::BTreeSet::new();
            for _ in 0..6 {
                let (index, _) = route.pick(skip, Lane::Any, |i| load[i]).expect("a backend");
                assert!(
                    want.contains(&index),
                    "{load:?} skip {skip:?}: picked {index}"
                );
                seen.insert(index);
            }
            // Ties take turns: every tied backend gets picked.
            assert_eq!(seen.len(), want.len(), "{load:?} skip {skip:?}: {seen:?}");
        }
    }

    #[test]
    fn a_canary_lane_picks_its_revision_and_falls_back_when_it_has_none_left() {
        let revision = |instance: &str, port, revision| Backend {
            revision,
            ..backend(instance, port)
        };
        let mut routed = app(
            "t",
            "web",
            &["web.example.com"],
            vec![
                revision("old-1", 1, 1),
                revision("old-2", 2, 1),
                revision("new", 3, 2),
            ],
        );
        routed.canary = Some(CanarySplit {
            revision: 2,
            weight_percent: 25,
            header: None,
        });
        let table = RoutingTable::build(vec![routed]);
        let route = table.route("web.example.com", "/").expect("routed");
        let instance = |skip: &[usize], lane| {
            route
                .pick(skip, lane, |_| 0)
                .map(|(_, b)| b.instance.clone())
        };
        // (skip, lane, the instances a pick may return)
        let cases: &[(&[usize], Lane, &[&str])] = &[
            (&[], Lane::Revision(2), &["new"]),
            (&[], Lane::OtherThan(2), &["old-1", "old-2"]),
            (&[], Lane::Any, &["old-1", "old-2", "new"]),
            (&[2], Lane::Revision(2), &["old-1", "old-2"]), // retried: any other
            (&[0, 1], Lane::OtherThan(2), &["new"]),
            (&[], Lane::Revision(9), &["old-1", "old-2", "new"]), // no such instance
        ];
        for &(skip, lane, allowed) in cases {
            for _ in 0..4 {
                let picked = instance(skip, lane).expect("a backend");
                assert!(
                    allowed.contains(&picked.as_str()),
                    "{skip:?} {lane:?}: {picked}"
                );
            }
        }
        // The share: by roll against the weight, or by header when one is set.
        let by_roll = |roll| route.lane(|split| split.takes(|_| None, roll));
        assert_eq!(by_roll(0), Lane::Revision(2));
        assert_eq!(by_roll(24), Lane::Revision(2));
        assert_eq!(by_roll(25), Lane::OtherThan(2));
        assert_eq!(by_roll(99), Lane::OtherThan(2));
        let split = CanarySplit {
            revision: 2,
            weight_percent: 0,
            header: Some(("x-canary".into(), "yes".into())),
        };
        assert!(split.takes(|name| (name == "x-canary").then_some(&b"yes"[..]), 99));
        assert!(!split.takes(|name| (name == "x-canary").then_some(&b"no"[..]), 0));
        assert!(!split.takes(|_| None, 0));
        // No canary: any instance.
        let plain = RoutingTable::build(vec![app("t", "a", &["a.example.com"], vec![])]);
        let route = plain.route("a.example.com", "/").expect("routed");
        assert_eq!(route.lane(|_| panic!("never asked")), Lane::Any);
    }

    #[test]
    fn pick_on_a_route_without_backends_is_none() {
        let table = RoutingTable::build(vec![app("t", "web", &["web.example.com"], vec![])]);
        let route = table.route("web.example.com", "/").expect("routed");
        assert!(route.pick(&[], Lane::Any, |_| 0).is_none());
        assert_eq!(route.unavailable, "app web is scaled to 0");
    }

    #[test]
    fn an_empty_table_routes_nothing() {
        let table = RoutingTable::build(vec![]);
        assert!(table.route("anything.example.com", "/").is_none());
        assert!(RoutingTable::default().route("localhost", "/").is_none());
    }

    #[test]
    fn hosts_no_app_claims_go_to_the_catch_all_app_unless_excluded() {
        let apps = vec![
            app(
                "t",
                "shop",
                &["shop.example.com", "*.tenants.example.com"],
                vec![],
            ),
            app("t", "sites", &["sites.t.apps.test"], vec![]),
            app("u", "other", &["other.example.org"], vec![]),
        ];
        let catch_all = CatchAll {
            team: "t".into(),
            app: "sites".into(),
            excluded: vec![
                "apps.test".into(),
                "Reserved.Example.NET.".into(),
                "bad host".into(),
            ],
            ask_path: Some("/ask".into()),
        };
        let table = RoutingTable::build_with_catch_all(apps.clone(), Some(catch_all.clone()));
        assert_eq!(table.catch_all_ask_path(), Some("/ask"));
        let cases: &[(&str, Option<&str>, bool)] = &[
            // (host, the app the route goes to, whether it is the catch-all's)
            ("shop.example.com", Some("shop"), false),
            ("a.tenants.example.com", Some("shop"), false),
            ("other.example.org:443", Some("other"), false),
            ("sites.t.apps.test", Some("sites"), false),
            ("good.customer.test", Some("sites"), true),
            ("Good.Customer.Test.:8443", Some("sites"), true),
            ("www.shop.example.com", Some("sites"), true),
            ("a.b.tenants.example.com", Some("sites"), true),
            ("example.com", Some("sites"), true),
            // Never the apps domain, a reserved domain or names under them.
            ("apps.test", None, false),
            ("x.t.apps.test", None, false),
            ("reserved.example.net", None, false),
            ("a.reserved.example.net", None, false),
            ("notreserved.example.net", Some("sites"), true),
            // Never IP literals, single labels or malformed names.
            ("127.0.0.1", None, false),
            ("10.0.0.1:443", None, false),
            ("[::1]", None, false),
            ("localhost", None, false),
            ("bad_name.example.com", None, false),
            ("", None, false),
        ];
        for (host, want, caught) in cases {
            let got = table
                .route(host, "/any/path")
                .map(|route| route.app.as_str());
            assert_eq!(got, *want, "route({host:?})");
            assert_eq!(
                table.catch_all(host).is_some(),
                *caught,
                "catch_all({host:?})"
            );
        }
        // A catch-all that is not routed (internal, deleted) catches nothing.
        let missing = CatchAll {
            app: "gone".into(),
            ..catch_all
        };
        let table = RoutingTable::build_with_catch_all(apps.clone(), Some(missing));
        assert!(table.route("good.customer.test", "/").is_none());
        assert!(table.catch_all("good.customer.test").is_none());
        // No catch-all: unknown hosts route nowhere.
        assert!(
            RoutingTable::build(apps)
                .route("good.customer.test", "/")
                .is_none()
        );
    }

    #[test]
    fn a_claimed_host_whose_paths_do_not_match_never_falls_to_the_catch_all() {
        let mut api = app("t", "api", &[], vec![]);
        api.domains = vec![RouteDomain {
            host: "api.example.com".into(),
            path: "/v1".into(),
        }];
        let table = RoutingTable::build_with_catch_all(
            vec![api, app("t", "sites", &[], vec![])],
            Some(CatchAll {
                team: "t".into(),
                app: "sites".into(),
                excluded: vec![],
                ask_path: None,
            }),
        );
        assert_eq!(table.route("api.example.com", "/v1/x").unwrap().app, "api");
        assert!(table.route("api.example.com", "/other").is_none());
        assert!(table.catch_all("api.example.com").is_none());
    }
}
