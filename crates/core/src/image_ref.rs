//! Reading an image reference the way the engine will: whether it names an image ID, and
//! whether (and which team's) repository of the built-in registry it pulls. The one place
//! that decides which team an image belongs to.

/// Whether Docker would take `image` as an image ID or an ID prefix rather than a name.
pub fn names_an_image_id(image: &str) -> bool {
    let image = image.trim();
    image.to_ascii_lowercase().starts_with("sha256:")
        || (!image.is_empty() && image.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The repository (`team/name…`, without tag or digest) that `image` pulls from the built-in
/// registry, known under `registry_hosts` (`host:port`, compared without case as the engine
/// resolves them); `None` for images from anywhere else.
pub fn built_in_repository<'a>(image: &'a str, registry_hosts: &[String]) -> Option<&'a str> {
    let (host, path) = image.trim().split_once('/')?;
    if !registry_hosts.iter().any(|h| h.eq_ignore_ascii_case(host)) {
        return None;
    }
    Some(path.split(['@', ':']).next().unwrap_or(path))
}

/// The host names the built-in registry is reached under (`host:port`): this server's own,
/// and on a store several servers share, every server's of the installation (learnt as they
/// start). One value shared by whoever tells a built-in image from an external one; cheap to
/// clone.
#[derive(Debug, Clone, Default)]
pub struct RegistryHosts {
    /// The machine (host name) this server runs on.
    machine: std::sync::Arc<str>,
    hosts: std::sync::Arc<std::sync::RwLock<std::sync::Arc<[String]>>>,
}

impl RegistryHosts {
    /// This server's own `hosts`, on `machine`.
    pub fn new(hosts: Vec<String>, machine: &str) -> Self {
        RegistryHosts {
            machine: machine.into(),
            hosts: std::sync::Arc::new(std::sync::RwLock::new(hosts.into())),
        }
    }

    /// The hosts now.
    pub fn get(&self) -> std::sync::Arc<[String]> {
        std::sync::Arc::clone(&self.hosts.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// `hosts` as recorded from this server's machine.
    pub fn recorded(&self, hosts: &[String]) -> Vec<RecordedHost> {
        hosts
            .iter()
            .map(|host| RecordedHost {
                host: host.clone(),
                machine: self.machine.to_string(),
            })
            .collect()
    }

    /// Adds the hosts of `listed` (the [`REGISTRY_HOSTS_SETTING`]'s [`RecordedHost`]s) not
    /// known yet, as seen from this server's machine: a loopback host recorded on another
    /// machine names something else here and is left out (the pull credential never goes
    /// there). Never removes one (a check made with the list never sees fewer hosts than a
    /// later pull). Returns whether any was new.
    pub fn learn(&self, listed: &str) -> bool {
        let Ok(recorded) = serde_json::from_str::<Vec<RecordedHost>>(listed) else {
            return false;
        };
        let mut known = self.hosts.write().unwrap_or_else(|p| p.into_inner());
        let mut all = known.to_vec();
        for RecordedHost { host, machine } in recorded {
            if is_loopback_host(&host) && *machine != *self.machine {
                continue;
            }
            if !all.iter().any(|h| h.eq_ignore_ascii_case(&host)) {
                all.push(host);
            }
        }
        let grew = all.len() > known.len();
        if grew {
            *known = all.into();
        }
        grew
    }
}

/// The store setting listing the registry hosts of every server of an installation on a
/// shared store (a JSON array of [`RecordedHost`]).
pub const REGISTRY_HOSTS_SETTING: &str = "registry-hosts";

/// One server's registry host (`host:port`) and the machine (host name) it was recorded on.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RecordedHost {
    pub host: String,
    pub machine: String,
}

/// Whether `host` (`name:port`) names this machine itself: `localhost`, `127.x.x.x`, `[::1]`.
pub fn is_loopback_host(host: &str) -> bool {
    let name = host
        .rsplit_once(':')
        .map_or(host, |(name, _)| name)
        .trim_start_matches('[')
        .trim_end_matches(']');
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The team owning a repository of the built-in registry: its first path segment
/// (`web/api` belongs to `web`).
pub fn team_of_repository(repository: &str) -> &str {
    repository.split('/').next().unwrap_or(repository)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_hosts_are_learnt_and_never_forgotten() {
        let hosts = RegistryHosts::new(vec!["127.0.0.1:7700".into(), "localhost:7700".into()], "a");
        let listed = |entries: &[(&str, &str)]| {
            let recorded: Vec<RecordedHost> = entries
                .iter()
                .map(|(host, machine)| RecordedHost {
                    host: host.to_string(),
                    machine: machine.to_string(),
                })
                .collect();
            serde_json::to_string(&recorded).unwrap()
        };
        let learnt = [
            "127.0.0.1:7700",
            "localhost:7700",
            "10.0.0.2:7700",
            "127.0.0.1:7701",
        ];
        // (listed, grew, the hosts after) — as seen from machine "a"
        let cases: [(String, bool, &[&str]); 6] = [
            (
                listed(&[("127.0.0.1:7700", "a"), ("10.0.0.2:7700", "b")]),
                true,
                &learnt[..3],
            ),
            (listed(&[("10.0.0.2:7700", "b")]), false, &learnt[..3]),
            (listed(&[("LOCALHOST:7700", "a")]), false, &learnt[..3]),
            // Another machine's loopback names something else here: never learnt.
            (
                listed(&[
                    ("127.0.0.1:7799", "b"),
                    ("localhost:7799", "b"),
                    ("[::1]:7799", "b"),
                ]),
                false,
                &learnt[..3],
            ),
            // A second server on this machine is reached at its loopback port.
            (listed(&[("127.0.0.1:7701", "a")]), true, &learnt),
            ("not json".to_string(), false, &learnt),
        ];
        for (listed, grew, after) in cases {
            assert_eq!(hosts.learn(&listed), grew, "{listed}");
            assert_eq!(&*hosts.get(), after, "{listed}");
        }
    }

    #[test]
    fn loopback_hosts_are_told_from_others() {
        let cases = [
            ("127.0.0.1:7700", true),
            ("127.9.9.9:7700", true),
            ("localhost:7700", true),
            ("LocalHost", true),
            ("[::1]:7700", true),
            ("10.0.0.2:7700", false),
            ("registry.example.com:443", false),
            ("[2001:db8::1]:7700", false),
        ];
        for (host, loopback) in cases {
            assert_eq!(is_loopback_host(host), loopback, "{host}");
        }
    }

    #[test]
    fn image_ids_are_told_from_names() {
        let cases = [
            ("sha256:0123abcd", true),
            ("SHA256:0123", true),
            ("0123abcdef", true),
            ("  abc  ", true),
            ("busybox", false),
            ("registry:5000/web/api:1", false),
            ("web/api@sha256:0123", false),
            ("", false),
        ];
        for (image, want) in cases {
            assert_eq!(names_an_image_id(image), want, "{image}");
        }
    }

    #[test]
    fn built_in_repositories_and_their_teams() {
        let hosts = vec!["127.0.0.1:7700".to_string(), "berth.local:7700".to_string()];
        // (image, repository, team)
        let cases = [
            ("127.0.0.1:7700/web/api:v1", Some("web/api"), "web"),
            ("BERTH.LOCAL:7700/ops/db@sha256:00", Some("ops/db"), "ops"),
            ("berth.local:7700/ops", Some("ops"), "ops"),
            ("docker.io/web/api:v1", None, ""),
            ("busybox:latest", None, ""),
            ("127.0.0.1:7701/web/api", None, ""),
        ];
        for (image, repository, team) in cases {
            let got = built_in_repository(image, &hosts);
            assert_eq!(got, repository, "{image}");
            if let Some(repository) = got {
                assert_eq!(team_of_repository(repository), team, "{image}");
            }
        }
    }
}
