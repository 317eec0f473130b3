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

/// The team owning a repository of the built-in registry: its first path segment
/// (`web/api` belongs to `web`).
pub fn team_of_repository(repository: &str) -> &str {
    repository.split('/').next().unwrap_or(repository)
}

#[cfg(test)]
mod tests {
    use super::*;

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
