//! How an app is reached: its custom domains (a host name with an optional path prefix), its
//! TCP ports published on host ports, or no external route at all when it is internal. Parsing, normalising and the rules that decide
//! which domains an app of a team may claim are pure functions here; uniqueness across apps is
//! the store's.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The most domains one app may have.
pub const MAX_DOMAINS: usize = 32;
/// The longest host name DNS allows (without the trailing dot).
pub const MAX_HOST_LEN: usize = 253;
/// The longest path prefix a domain may have.
pub const MAX_PATH_LEN: usize = 256;

/// An app's external routes. The default host (`<app>.<team>.<apps-domain>`) is not stored: it
/// follows from the app's name and team, and an internal app has none.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AppRoutes {
    /// No external route: only apps of the same team reach it, by name on the team network.
    pub internal: bool,
    /// Custom domains, in the order the user gave them; each (host, path) once.
    pub domains: Vec<Domain>,
    /// Plain-HTTP requests to a host that has a certificate are redirected (308) to HTTPS
    /// (only while the router's HTTPS listener is on).
    pub https_redirect: bool,
    /// Container ports reachable from outside on a host port, bypassing the HTTP router; each
    /// container port and each host port once.
    pub tcp_ports: Vec<TcpPort>,
}

/// The most TCP ports one app may publish.
pub const MAX_TCP_PORTS: usize = 16;

/// A container port published on a host port of the Berth server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TcpPort {
    pub container_port: u16,
    /// `0` only in a change, before Berth assigned one; a stored app's ports all have one.
    pub host_port: u16,
}

impl TcpPort {
    /// Parses `5432` (the host port is Berth's to assign: `host_port` 0) or `15432:5432`
    /// (host port 15432 for container port 5432).
    pub fn parse(spec: &str) -> Result<TcpPort, String> {
        let port = |text: &str| -> Result<u16, String> {
            match text.trim().parse::<u16>() {
                Ok(0) => Err(format!("{spec:?}: port 0 is not a port")),
                Ok(port) => Ok(port),
                Err(_) => Err(format!(
                    "{spec:?} is not a port (1-65535) or host-port:container-port, like 5432 or \
                     15432:5432"
                )),
            }
        };
        match spec.split_once(':') {
            None => Ok(TcpPort {
                container_port: port(spec)?,
                host_port: 0,
            }),
            Some((host, container)) => Ok(TcpPort {
                container_port: port(container)?,
                host_port: port(host)?,
            }),
        }
    }
}

impl fmt::Display for TcpPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host_port == 0 {
            write!(f, "{}", self.container_port)
        } else {
            write!(f, "{}:{}", self.host_port, self.container_port)
        }
    }
}

/// Parses a list of TCP port specs: each valid, no container port and no host port twice, at
/// most [`MAX_TCP_PORTS`].
pub fn parse_tcp_ports<S: AsRef<str>>(specs: &[S]) -> Result<Vec<TcpPort>, String> {
    if specs.len() > MAX_TCP_PORTS {
        return Err(format!(
            "{} ports are too many: an app may publish at most {MAX_TCP_PORTS}",
            specs.len()
        ));
    }
    let mut ports: Vec<TcpPort> = Vec::with_capacity(specs.len());
    for spec in specs {
        let port = TcpPort::parse(spec.as_ref())?;
        if ports
            .iter()
            .any(|p| p.container_port == port.container_port)
        {
            return Err(format!(
                "container port {} is listed twice",
                port.container_port
            ));
        }
        if port.host_port != 0 && ports.iter().any(|p| p.host_port == port.host_port) {
            return Err(format!("host port {} is listed twice", port.host_port));
        }
        ports.push(port);
    }
    Ok(ports)
}

/// The ports a change asks for, keeping the host port an app already has for a container port
/// when the change lets Berth choose (`5432` again does not move a published port).
pub fn keep_assigned(requested: &[TcpPort], current: &[TcpPort]) -> Vec<TcpPort> {
    requested
        .iter()
        .map(|port| match port.host_port {
            0 => current
                .iter()
                .find(|c| c.container_port == port.container_port)
                .filter(|c| !requested.iter().any(|r| r.host_port == c.host_port))
                .copied()
                .unwrap_or(*port),
            _ => *port,
        })
        .collect()
}

/// A host name and the path prefix under it that reach one app.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Domain {
    /// Lowercase, no trailing dot, no port.
    pub host: String,
    /// `/` for the whole host, else a prefix like `/api` (no trailing slash): it matches `/api`
    /// and everything under `/api/`, not `/apix`.
    pub path: String,
}

impl Domain {
    /// Parses `shop.example.com` or `shop.example.com/api` (case and a trailing dot or slash
    /// do not matter).
    pub fn parse(spec: &str) -> Result<Domain, DomainError> {
        let spec = spec.trim();
        let (host, path) = match spec.find('/') {
            Some(slash) => (&spec[..slash], &spec[slash..]),
            None => (spec, "/"),
        };
        let host = host.strip_suffix('.').unwrap_or(host);
        if host.is_empty() {
            return Err(DomainError::new(spec, "has no host name"));
        }
        if host.starts_with('[') {
            return Err(DomainError::new(spec, "is an IP address, not a host name"));
        }
        if host.contains(':') {
            return Err(DomainError::new(
                spec,
                "has a port: the router listens on its own ports, name the host only",
            ));
        }
        // A wildcard `*.shop.example.com` stands for every one-label name under its base.
        let (wildcard, host) = match host.strip_prefix("*.") {
            Some(base) => (true, base),
            None => (false, host),
        };
        if host.contains('*') {
            return Err(DomainError::new(
                spec,
                "has a '*' elsewhere than as its whole first label (a wildcard is written \
                 *.shop.example.com)",
            ));
        }
        if !is_host_name(host) {
            return Err(DomainError::new(
                spec,
                "is not a valid host name (letters, digits and '-' in dot-separated labels of \
                 at most 63 characters, 253 in all)",
            ));
        }
        if !host.contains('.') {
            return Err(DomainError::new(
                spec,
                if wildcard {
                    "is a wildcard of a top-level domain: a wildcard needs two labels under it, \
                     like *.shop.example.com"
                } else {
                    "needs at least two labels, like shop.example.com"
                },
            ));
        }
        if host.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            return Err(DomainError::new(spec, "is an IP address, not a host name"));
        }
        let host = host.to_ascii_lowercase();
        Ok(Domain {
            host: if wildcard { format!("*.{host}") } else { host },
            path: normalize_path(path).map_err(|why| DomainError::new(spec, why))?,
        })
    }

    /// Whether this is a wildcard domain (`*.shop.example.com`).
    pub fn is_wildcard(&self) -> bool {
        self.host.starts_with("*.")
    }

    /// Whether a request path falls under this domain's prefix.
    pub fn covers_path(&self, path: &str) -> bool {
        path_has_prefix(path, &self.path)
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path == "/" {
            f.write_str(&self.host)
        } else {
            write!(f, "{}{}", self.host, self.path)
        }
    }
}

/// Whether `path` is `prefix` or lies under it (`/api` covers `/api`, `/api/` and `/api/x`,
/// not `/apix`); `/` covers everything.
pub fn path_has_prefix(path: &str, prefix: &str) -> bool {
    if prefix == "/" {
        return true;
    }
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/') || rest.starts_with('?'),
        None => false,
    }
}

/// A domain that cannot be used, with the text the user gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainError {
    pub domain: String,
    pub message: String,
}

impl DomainError {
    fn new(domain: &str, message: impl Into<String>) -> DomainError {
        DomainError {
            domain: domain.to_string(),
            message: message.into(),
        }
    }
}

impl fmt::Display for DomainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "domain {:?} {}", self.domain, self.message)
    }
}

/// Whether `host` is a DNS host name: LDH labels of 1 to 63 characters, at most 253 in all,
/// no label starting or ending with `-`. Case is not checked.
pub fn is_host_name(host: &str) -> bool {
    if host.is_empty() || host.len() > MAX_HOST_LEN {
        return false;
    }
    host.split('.').all(|label| {
        let bytes = label.as_bytes();
        match (bytes.first(), bytes.last()) {
            (Some(&first), Some(&last)) => {
                bytes.len() <= 63
                    && first != b'-'
                    && last != b'-'
                    && bytes
                        .iter()
                        .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
            }
            _ => false,
        }
    })
}

/// A path prefix as stored: starts with `/`, no trailing slash (except `/` itself), only
/// unreserved characters in its segments, no empty, `.` or `..` segment.
fn normalize_path(path: &str) -> Result<String, &'static str> {
    if path.len() > MAX_PATH_LEN {
        return Err("has a path prefix longer than 256 characters");
    }
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        return Ok("/".to_string());
    }
    for segment in trimmed[1..].split('/') {
        if segment.is_empty() || segment == "." || segment == ".." {
            return Err("has an empty, '.' or '..' segment in its path prefix");
        }
        if !segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
        {
            return Err(
                "has a path prefix with characters other than letters, digits, '-', '.', '_', \
                 '~' and '/'",
            );
        }
    }
    Ok(trimmed.to_string())
}

/// Parses a list of domain specs: each valid, none twice, at most [`MAX_DOMAINS`].
pub fn parse_domains<S: AsRef<str>>(specs: &[S]) -> Result<Vec<Domain>, DomainError> {
    if specs.len() > MAX_DOMAINS {
        return Err(DomainError::new(
            &format!("{} domains", specs.len()),
            format!("are too many: an app may have at most {MAX_DOMAINS}"),
        ));
    }
    let mut domains: Vec<Domain> = Vec::with_capacity(specs.len());
    for spec in specs {
        let domain = Domain::parse(spec.as_ref())?;
        if domains.contains(&domain) {
            return Err(DomainError::new(spec.as_ref(), "is listed twice"));
        }
        domains.push(domain);
    }
    Ok(domains)
}

/// The host every external app gets: `<app>.<team>.<apps-domain>`.
pub fn default_host(app: &str, team: &str, apps_domain: &str) -> String {
    format!("{app}.{team}.{}", normalize_base(apps_domain))
}

/// A base domain as compared: lowercase, without leading or trailing dots.
pub fn normalize_base(domain: &str) -> String {
    domain.trim_matches('.').to_ascii_lowercase()
}

/// Whether `host` is `base` or a name under it (a wildcard `*.base` is under `base`).
pub fn is_under(host: &str, base: &str) -> bool {
    host == base
        || (host.len() > base.len()
            && host.ends_with(base)
            && host.as_bytes()[host.len() - base.len() - 1] == b'.')
}

/// The wildcard that covers `host` (`a.shop.example.com` → `*.shop.example.com`): `None` for a
/// wildcard or a name of fewer than three labels (no wildcard of a top-level domain exists).
pub fn covering_wildcard(host: &str) -> Option<String> {
    if host.starts_with("*.") {
        return None;
    }
    let (_, base) = host.split_once('.')?;
    base.contains('.').then(|| format!("*.{base}"))
}

/// The platform's rules on which hosts a team's app may claim.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DomainPolicy {
    /// The apps domain (default hosts live under it), normalised.
    pub apps_domain: String,
    /// Base domains custom domains must be under (besides the apps domain); empty allows any.
    pub allowed: Vec<String>,
}

/// Why a team may not claim a host, before looking at other apps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostRefusal {
    /// The host is the apps domain itself.
    AppsDomain,
    /// The host lies in another team's part of the apps domain (`*.<team>.<apps-domain>`).
    OtherTeamsNamespace { team: String },
    /// The host is not under any allowed base domain.
    NotAllowed { allowed: Vec<String> },
}

impl fmt::Display for HostRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostRefusal::AppsDomain => f.write_str("is the apps domain itself"),
            HostRefusal::OtherTeamsNamespace { team } => write!(
                f,
                "is in team {team}'s part of the apps domain: a team's domains there end in \
                 .<team>.<apps-domain>"
            ),
            HostRefusal::NotAllowed { allowed } => write!(
                f,
                "is not under a base domain teams may use ({})",
                allowed.join(", ")
            ),
        }
    }
}

impl DomainPolicy {
    pub fn new(apps_domain: &str, allowed: &[String]) -> DomainPolicy {
        DomainPolicy {
            apps_domain: normalize_base(apps_domain),
            allowed: allowed.iter().map(|d| normalize_base(d)).collect(),
        }
    }

    /// Whether an app of `team` may claim `host`. Under the apps domain, a one-label name
    /// (`shop.<apps-domain>`) is anyone's to claim first; a longer one must be in the team's own
    /// part (`….<team>.<apps-domain>`). Outside it, the host must be under an allowed base
    /// domain when the platform names any.
    /// A wildcard (`*.base`) is checked like the names it stands for: no wildcard of the apps
    /// domain itself, and under it only in the team's own part.
    pub fn check(&self, host: &str, team: &str) -> Result<(), HostRefusal> {
        let apps = &self.apps_domain;
        if host == apps || host.strip_prefix("*.") == Some(apps.as_str()) {
            return Err(HostRefusal::AppsDomain);
        }
        if is_under(host, apps) {
            let rest = &host[..host.len() - apps.len() - 1];
            return match rest.rsplit_once('.') {
                None => Ok(()),
                Some((_, owner)) if owner == team => Ok(()),
                Some((_, owner)) => Err(HostRefusal::OtherTeamsNamespace {
                    team: owner.to_string(),
                }),
            };
        }
        if self.allowed.is_empty() || self.allowed.iter().any(|base| is_under(host, base)) {
            Ok(())
        } else {
            Err(HostRefusal::NotAllowed {
                allowed: self.allowed.clone(),
            })
        }
    }

    /// The app whose default host `host` is (`<app>.<team>.<apps-domain>` → (app, team)).
    pub fn default_host_owner<'h>(&self, host: &'h str) -> Option<(&'h str, &'h str)> {
        let apps = &self.apps_domain;
        if !is_under(host, apps) || host == apps || host.starts_with("*.") {
            return None;
        }
        let rest = &host[..host.len() - apps.len() - 1];
        let (app, team) = rest.split_once('.')?;
        (!team.contains('.')).then_some((app, team))
    }
}

/// A domain reserved by an admin for one team: it and every name under it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainReservation {
    pub domain: String,
    pub team: String,
    pub created_by: String,
    pub created_at: crate::Millis,
}

/// The reservation that keeps `host` from `team`, if any: one of another team that covers it.
/// A wildcard (`*.base`) is kept from the team by the reservation that decides `base`'s names,
/// and by any reservation of another team for one of the names it stands for.
pub fn reserved_for_other<'r>(
    host: &str,
    team: &str,
    reservations: &'r [DomainReservation],
) -> Option<&'r DomainReservation> {
    let covered = reservations
        .iter()
        .filter(|r| is_under(host, &r.domain))
        // The most specific reservation decides.
        .max_by_key(|r| r.domain.len())
        .filter(|r| r.team != team);
    let Some(base) = host.strip_prefix("*.") else {
        return covered;
    };
    covered.or_else(|| {
        reservations.iter().find(|r| {
            r.team != team
                && r.domain
                    .split_once('.')
                    .is_some_and(|(_, parent)| parent == base)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_parse_and_normalise() {
        // (input, host, path)
        let cases = [
            ("shop.example.com", "shop.example.com", "/"),
            ("Shop.Example.COM.", "shop.example.com", "/"),
            ("shop.localhost", "shop.localhost", "/"),
            ("shop.example.com/", "shop.example.com", "/"),
            ("shop.example.com/api", "shop.example.com", "/api"),
            ("shop.example.com/api/", "shop.example.com", "/api"),
            (
                "shop.example.com/api/v1.2_x~y",
                "shop.example.com",
                "/api/v1.2_x~y",
            ),
            (" a-b.c.d ", "a-b.c.d", "/"),
            ("*.Shop.Example.com", "*.shop.example.com", "/"),
            ("*.shop.example.com./api", "*.shop.example.com", "/api"),
            ("*.example.com", "*.example.com", "/"),
        ];
        for (input, host, path) in cases {
            let domain = Domain::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(domain.host, host, "{input}");
            assert_eq!(domain.path, path, "{input}");
        }
    }

    #[test]
    fn hostile_domains_are_refused_with_a_reason() {
        // (input, the reason contains)
        let cases = [
            ("", "no host"),
            ("/api", "no host"),
            ("localhost", "two labels"),
            ("shop.example.com:8080", "port"),
            ("*.com", "wildcard of a top-level domain"),
            ("*.localhost", "wildcard of a top-level domain"),
            ("*", "'*' elsewhere"),
            ("*.", "'*' elsewhere"),
            ("**.example.com", "'*' elsewhere"),
            ("*.*.example.com", "'*' elsewhere"),
            ("a.*.example.com", "'*' elsewhere"),
            ("shop*.example.com", "'*' elsewhere"),
            ("*shop.example.com", "'*' elsewhere"),
            ("*.10.0.0.1", "IP address"),
            ("*.example.com:443", "port"),
            ("-shop.example.com", "valid host"),
            ("shop-.example.com", "valid host"),
            ("shop..example.com", "valid host"),
            ("shop_x.example.com", "valid host"),
            ("shöp.example.com", "valid host"),
            ("shop example.com", "valid host"),
            ("user@shop.example.com", "valid host"),
            ("[::1]", "IP address"),
            ("[::1]:80", "IP address"),
            ("10.0.0.1", "IP address"),
            ("shop.example.com/../admin", "segment"),
            ("shop.example.com//x", "segment"),
            ("shop.example.com/./x", "segment"),
            ("shop.example.com/a%2e", "characters"),
            ("shop.example.com/a?b", "characters"),
            ("shop.example.com/a b", "characters"),
        ];
        for (input, want) in cases {
            let err = Domain::parse(input).expect_err(input);
            assert!(err.message.contains(want), "{input}: {}", err.message);
        }
        let long_label = format!("{}.example.com", "a".repeat(64));
        assert!(Domain::parse(&long_label).is_err());
        let long_host = format!("{}example.com", "abcdefghi.".repeat(25));
        assert!(Domain::parse(&long_host).is_err());
        let long_path = format!("a.b/{}", "x".repeat(300));
        assert!(Domain::parse(&long_path).is_err());
    }

    #[test]
    fn lists_refuse_twins_and_too_many() {
        assert!(parse_domains(&["a.example.com", "A.example.com."]).is_err());
        assert_eq!(
            parse_domains(&["a.example.com", "a.example.com/api"])
                .unwrap()
                .len(),
            2
        );
        let many: Vec<String> = (0..=MAX_DOMAINS)
            .map(|i| format!("d{i}.example.com"))
            .collect();
        assert!(
            parse_domains(&many)
                .unwrap_err()
                .message
                .contains("at most")
        );
    }

    #[test]
    fn path_prefixes_match_whole_segments() {
        // (prefix, path, covered)
        let cases = [
            ("/", "/anything", true),
            ("/api", "/api", true),
            ("/api", "/api/", true),
            ("/api", "/api/users", true),
            ("/api", "/api?x=1", true),
            ("/api", "/apix", false),
            ("/api", "/", false),
            ("/api/v1", "/api/v2", false),
        ];
        for (prefix, path, want) in cases {
            assert_eq!(path_has_prefix(path, prefix), want, "{prefix} {path}");
        }
    }

    #[test]
    fn teams_claim_only_their_part_of_the_apps_domain_and_allowed_bases() {
        let open = DomainPolicy::new("Apps.Example.com.", &[]);
        let closed = DomainPolicy::new("localhost", &["shop.com".into(), ".corp.net".into()]);
        // (policy, host, team, allowed)
        let cases = [
            (&open, "apps.example.com", "a", false),
            (&open, "shop.apps.example.com", "a", true),
            (&open, "web.a.apps.example.com", "a", true),
            (&open, "x.web.a.apps.example.com", "a", true),
            (&open, "web.b.apps.example.com", "a", false),
            (&open, "anything.example.org", "a", true),
            (&closed, "shop.com", "a", true),
            (&closed, "www.shop.com", "a", true),
            (&closed, "evilshop.com", "a", false),
            (&closed, "x.corp.net", "a", true),
            (&closed, "shop.localhost", "a", true),
            (&closed, "other.org", "a", false),
            // Wildcards: like the names they stand for; never the apps domain's own.
            (&open, "*.apps.example.com", "a", false),
            (&open, "*.a.apps.example.com", "a", true),
            (&open, "*.web.a.apps.example.com", "a", true),
            (&open, "*.b.apps.example.com", "a", false),
            (&open, "*.web.b.apps.example.com", "a", false),
            (&open, "*.example.org", "a", true),
            (&closed, "*.shop.com", "a", true),
            (&closed, "*.www.shop.com", "a", true),
            (&closed, "*.corp.net", "a", true),
            (&closed, "*.evilshop.com", "a", false),
            (&closed, "*.localhost", "a", false),
            (&closed, "*.x.localhost", "x", true),
            (&closed, "*.x.localhost", "a", false),
        ];
        for (policy, host, team, want) in cases {
            assert_eq!(policy.check(host, team).is_ok(), want, "{host} for {team}");
        }
        assert_eq!(
            open.check("web.b.apps.example.com", "a"),
            Err(HostRefusal::OtherTeamsNamespace { team: "b".into() })
        );
        assert_eq!(
            open.check("*.apps.example.com", "a"),
            Err(HostRefusal::AppsDomain)
        );
        assert_eq!(
            open.check("*.b.apps.example.com", "a"),
            Err(HostRefusal::OtherTeamsNamespace { team: "b".into() })
        );
        // (host, the app and team whose default host it is)
        let cases = [
            ("web.a.apps.example.com", Some(("web", "a"))),
            ("shop.apps.example.com", None),
            ("x.web.a.apps.example.com", None),
            ("web.a.example.org", None),
            ("*.a.apps.example.com", None),
        ];
        for (host, want) in cases {
            assert_eq!(open.default_host_owner(host), want, "{host}");
        }
    }

    #[test]
    fn a_name_of_three_labels_or_more_has_a_covering_wildcard() {
        // (host, the wildcard that covers it)
        let cases = [
            ("a.shop.example.com", Some("*.shop.example.com")),
            ("shop.example.com", Some("*.example.com")),
            ("example.com", None),
            ("localhost", None),
            ("*.shop.example.com", None),
        ];
        for (host, want) in cases {
            assert_eq!(covering_wildcard(host).as_deref(), want, "{host}");
        }
    }

    #[test]
    fn tcp_ports_parse_or_are_refused_with_a_reason() {
        // (input, the ports or the reason contains)
        let cases: [(&[&str], Result<&[(u16, u16)], &str>); 14] = [
            (&["5432"], Ok(&[(5432, 0)])),
            (&["15432:5432"], Ok(&[(5432, 15432)])),
            (&[" 80 ", "1:2"], Ok(&[(80, 0), (2, 1)])),
            (&[], Ok(&[])),
            (&["0"], Err("port 0")),
            (&["0:5432"], Err("port 0")),
            (&["15432:0"], Err("port 0")),
            (&["65536"], Err("is not a port")),
            (&["-1"], Err("is not a port")),
            (&["a:b"], Err("is not a port")),
            (&["1:2:3"], Err("is not a port")),
            (&[""], Err("is not a port")),
            (
                &["5432", "1000:5432"],
                Err("container port 5432 is listed twice"),
            ),
            (&["1000:1", "1000:2"], Err("host port 1000 is listed twice")),
        ];
        for (input, want) in cases {
            let got = parse_tcp_ports(input);
            match want {
                Ok(ports) => {
                    let got: Vec<(u16, u16)> = got
                        .unwrap_or_else(|e| panic!("{input:?}: {e}"))
                        .iter()
                        .map(|p| (p.container_port, p.host_port))
                        .collect();
                    assert_eq!(got, ports, "{input:?}");
                }
                Err(reason) => {
                    let error = got.expect_err(&format!("{input:?}"));
                    assert!(error.contains(reason), "{input:?}: {error}");
                }
            }
        }
        let many: Vec<String> = (1..=MAX_TCP_PORTS as u16 + 1)
            .map(|p| p.to_string())
            .collect();
        assert!(parse_tcp_ports(&many).unwrap_err().contains("at most"));
    }

    #[test]
    fn a_port_berth_chose_stays_where_it_is() {
        let port = |container_port, host_port| TcpPort {
            container_port,
            host_port,
        };
        let current = [port(5432, 30000), port(6379, 30001)];
        // (requested, want)
        let cases = [
            (vec![port(5432, 0)], vec![port(5432, 30000)]),
            (vec![port(5432, 15432)], vec![port(5432, 15432)]),
            (vec![port(9000, 0)], vec![port(9000, 0)]),
            // 30000 is asked for another container port: 5432 gets a new one.
            (
                vec![port(5432, 0), port(6379, 30000)],
                vec![port(5432, 0), port(6379, 30000)],
            ),
        ];
        for (requested, want) in cases {
            assert_eq!(keep_assigned(&requested, &current), want, "{requested:?}");
        }
    }

    #[test]
    fn the_most_specific_reservation_decides() {
        let reservation = |domain: &str, team: &str| DomainReservation {
            domain: domain.into(),
            team: team.into(),
            created_by: "admin".into(),
            created_at: 0,
        };
        let reservations = [
            reservation("shop.com", "sales"),
            reservation("eng.shop.com", "eng"),
        ];
        // (host, team, the reservation's domain that refuses it)
        let cases = [
            ("shop.com", "sales", None),
            ("www.shop.com", "eng", Some("shop.com")),
            ("api.eng.shop.com", "eng", None),
            ("api.eng.shop.com", "sales", Some("eng.shop.com")),
            ("notshop.com", "eng", None),
            // A wildcard: the reservation of its base decides, and it may not stand for a
            // name reserved for another team.
            ("*.shop.com", "eng", Some("shop.com")),
            ("*.shop.com", "sales", Some("eng.shop.com")),
            ("*.eng.shop.com", "eng", None),
            ("*.eng.shop.com", "sales", Some("eng.shop.com")),
            ("*.x.eng.shop.com", "eng", None),
            ("*.other.com", "eng", None),
        ];
        for (host, team, want) in cases {
            let got = reserved_for_other(host, team, &reservations).map(|r| r.domain.as_str());
            assert_eq!(got, want, "{host} for {team}");
        }
    }
}
