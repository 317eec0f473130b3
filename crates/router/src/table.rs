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
    /// When `backends` is empty, requests wait (up to the router's hold timeout) for an
    /// instance to become ready instead of getting the 503 page at once: the app is bringing
    /// one up.
    pub hold: bool,
    /// The app was scaled to 0 when idle: a request for it signals a wake
    /// ([`crate::Wake`]) before it is held.
    pub wake: bool,
}

/// What a domain routes to: one app and its ready instances, balanced round robin.
#[derive(Debug)]
pub struct Route {
    pub app: String,
    pub team: String,
    pub backends: Vec<Backend>,
    pub unavailable: String,
    /// Plain-HTTP requests are answered with a redirect to HTTPS.
    pub https_redirect: bool,
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
    /// The next backend in round-robin order, leaving out the indices in `skip` (the backends a
    /// retry already tried). Returns the backend's index (to add to `skip`) with it; `None` when
    /// every backend is skipped or there is none.
    pub fn pick(&self, skip: &[usize]) -> Option<(usize, &Backend)> {
        let n = self.backends.len();
        if n == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        (0..n)
            .map(|offset| (start + offset) % n)
            .find(|index| !skip.contains(index))
            .map(|index| (index, &self.backends[index]))
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

/// Host name → path prefixes → route, built once from the routed apps and read by every
/// request.
#[derive(Debug, Default)]
pub struct RoutingTable {
    routes: Vec<Route>,
    /// Per host, its (path prefix, route index), longest prefix first.
    hosts: HashMap<String, Vec<(String, usize)>>,
    conflicts: Vec<HostConflict>,
    invalid: Vec<InvalidHost>,
}

impl RoutingTable {
    /// Builds the table. Apps are considered in (team, app) order so that the winner of a
    /// conflict does not depend on the order of the input.
    pub fn build(apps: Vec<RoutedApp>) -> RoutingTable {
        let mut apps = apps;
        apps.sort_by(|a, b| (&a.team, &a.app).cmp(&(&b.team, &b.app)));
        let mut table = RoutingTable::default();
        for app in apps {
            let index = table.routes.len();
            let key = (app.team.clone(), app.app.clone());
            for domain in &app.domains {
                let Some(host) = normalize_host(&domain.host) else {
                    table.invalid.push(InvalidHost {
                        host: domain.host.clone(),
                        app: key.clone(),
                    });
                    continue;
                };
                let prefixes = table.hosts.entry(host.clone().into_owned()).or_default();
                match prefixes.iter().find(|(path, _)| *path == domain.path) {
                    Some(&(_, owner)) if owner == index => {}
                    Some(&(_, owner)) => {
                        let owner = &table.routes[owner];
                        table.conflicts.push(HostConflict {
                            host: host.into_owned(),
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
                hold: app.hold,
                wake: app.wake,
                next: AtomicUsize::new(0),
                bound: OnceLock::new(),
            });
        }
        for prefixes in table.hosts.values_mut() {
            prefixes.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
        }
        table
    }

    /// The route for a `Host` header value (or a URI authority) and a request path: the
    /// host's longest path prefix that covers the path. The host is matched without case, a
    /// `:port` and a trailing dot ignored; `None` for an unknown host, a path no prefix
    /// covers, and anything that is not a host name (IPv6 literals, userinfo, spaces…).
    pub fn route(&self, host_header: &str, path: &str) -> Option<&Route> {
        let host = normalize_host(host_header)?;
        self.hosts
            .get(host.as_ref())?
            .iter()
            .find(|(prefix, _)| path_has_prefix(path, prefix))
            .map(|&(_, i)| &self.routes[i])
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
    fn pick_goes_round_robin_and_skips_what_a_retry_tried() {
        let table = RoutingTable::build(vec![app(
            "t",
            "web",
            &["web.example.com"],
            vec![backend("a", 1), backend("b", 2), backend("c", 3)],
        )]);
        let route = table.route("web.example.com", "/").expect("routed");
        let picked: Vec<_> = (0..6)
            .map(|_| route.pick(&[]).map(|(_, b)| b.instance.as_str()))
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
            let (i, b) = route.pick(&[1]).expect("one left");
            assert_ne!(i, 1);
            assert_ne!(b.instance, "b");
        }
        for _ in 0..3 {
            assert_eq!(route.pick(&[0, 2]).map(|(i, _)| i), Some(1));
        }
        assert_eq!(route.pick(&[0, 1, 2]).map(|(i, _)| i), None);
    }

    #[test]
    fn pick_on_a_route_without_backends_is_none() {
        let table = RoutingTable::build(vec![app("t", "web", &["web.example.com"], vec![])]);
        let route = table.route("web.example.com", "/").expect("routed");
        assert!(route.pick(&[]).is_none());
        assert_eq!(route.unavailable, "app web is scaled to 0");
    }

    #[test]
    fn an_empty_table_routes_nothing() {
        let table = RoutingTable::build(vec![]);
        assert!(table.route("anything.example.com", "/").is_none());
        assert!(RoutingTable::default().route("localhost", "/").is_none());
    }
}
