//! External registries: existing Distribution-compatible registries a team browses and cleans
//! up through Berth, with the credentials Berth uses there (the password sealed, never plain).

use serde::{Deserialize, Serialize};

use crate::Millis;
use crate::validate::{ValidationErrors, name_problem};

/// An external registry, configured by an admin and owned by a team: the team's members browse
/// it (any role) and delete from it (`member`) through Berth.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExternalRegistry {
    /// Unique, immutable: how API paths and the CLI name it (`--registry NAME`).
    pub name: String,
    /// The owning team.
    pub team: String,
    /// Base URL: `http(s)://host[:port]`, without a path (the API lives under `/v2/`).
    pub url: String,
    /// User name for Basic auth and Docker's token flow; `None`: anonymous.
    pub username: Option<String>,
    /// The password as sealed by the server's secret box (`berth_auth::SecretBox`), never
    /// the plaintext; `None` with `username` means an empty password.
    pub sealed_password: Option<String>,
    pub created_at: Millis,
    pub updated_at: Millis,
}

impl ExternalRegistry {
    /// What the secret box binds this registry's password to: a sealed password copied onto
    /// another registry's row does not open there.
    pub fn secret_context(name: &str) -> String {
        format!("external-registry/{name}")
    }

    /// The host (and port) of [`Self::url`], as it appears in image references.
    pub fn host(&self) -> &str {
        self.url
            .split_once("://")
            .map_or(self.url.as_str(), |(_, rest)| rest)
    }

    /// Checks names, the URL's shape and the credentials.
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::default();
        if let Some(problem) = name_problem(&self.name) {
            errors.push("name", problem);
        }
        if let Some(problem) = name_problem(&self.team) {
            errors.push("team", problem);
        }
        if let Some(problem) = url_problem(&self.url) {
            errors.push("url", problem);
        }
        match &self.username {
            Some(u) if u.is_empty() || u.len() > 255 => {
                errors.push("username", "must be 1 to 255 characters")
            }
            // Basic auth separates the user name from the password with the first ':'.
            Some(u) if u.contains(':') || u.chars().any(char::is_control) => {
                errors.push("username", "must not contain ':' or control characters")
            }
            None if self.sealed_password.is_some() => {
                errors.push("username", "a password needs a user name")
            }
            _ => {}
        }
        errors.into_result()
    }
}

/// Why `url` is not a registry base URL (`http(s)://host[:port]`), or `None`.
pub fn url_problem(url: &str) -> Option<String> {
    let Some((scheme, authority)) = url.split_once("://") else {
        return Some("must start with http:// or https://".into());
    };
    if scheme != "http" && scheme != "https" {
        return Some("must start with http:// or https://".into());
    }
    if url.len() > 255 {
        return Some("must be at most 255 characters".into());
    }
    if authority.is_empty() {
        return Some("names no host".into());
    }
    if authority.contains('@') {
        return Some("must not carry credentials: give username and password instead".into());
    }
    if authority.contains(['/', '?', '#']) {
        return Some(
            "must be the registry's base URL without a path (the API is under /v2/)".into(),
        );
    }
    if !authority
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
    {
        return Some(
            "the host may contain only letters, digits, '.', '-', ':' and brackets".into(),
        );
    }
    if let Some((host, port)) = authority.rsplit_once(':')
        && !host.ends_with(']')
        && !host.contains(':')
        && port.parse::<u16>().map_or(true, |p| p == 0)
    {
        return Some(format!("port {port:?} is not a port number"));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry(url: &str) -> ExternalRegistry {
        ExternalRegistry {
            name: "hub".into(),
            team: "web".into(),
            url: url.into(),
            username: Some("ci".into()),
            sealed_password: Some("v1.x".into()),
            created_at: 1,
            updated_at: 1,
        }
    }

    #[test]
    fn urls() {
        let cases = [
            ("http://127.0.0.1:5000", None),
            ("https://registry.example.com", None),
            ("http://[::1]:5000", None),
            ("http://localhost", None),
            ("ftp://x", Some("http")),
            ("registry.example.com", Some("http")),
            ("http://", Some("no host")),
            ("http://u:p@host", Some("credentials")),
            ("http://host/v2/", Some("without a path")),
            ("http://host?x=1", Some("without a path")),
            ("http://ho st", Some("host may contain")),
            ("http://host:99999", Some("not a port")),
            ("http://host:0", Some("not a port")),
            ("http://host:", Some("not a port")),
        ];
        for (url, want) in cases {
            let got = url_problem(url);
            match (want, &got) {
                (None, None) => {}
                (Some(part), Some(problem)) if problem.contains(part) => {}
                _ => panic!("{url}: want {want:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn validation_names_the_field() {
        let cases = [
            (registry("http://h:5000"), None),
            (
                ExternalRegistry {
                    username: None,
                    sealed_password: None,
                    ..registry("http://h")
                },
                None,
            ),
            (
                ExternalRegistry {
                    name: "Hub!".into(),
                    ..registry("http://h")
                },
                Some("name"),
            ),
            (
                ExternalRegistry {
                    team: String::new(),
                    ..registry("http://h")
                },
                Some("team"),
            ),
            (registry("h:5000"), Some("url")),
            (
                ExternalRegistry {
                    username: Some("a:b".into()),
                    ..registry("http://h")
                },
                Some("username"),
            ),
            (
                ExternalRegistry {
                    username: None,
                    ..registry("http://h")
                },
                Some("username"),
            ),
        ];
        for (registry, want) in cases {
            let got = registry
                .validate()
                .err()
                .map(|e| e.first().unwrap().field.clone());
            assert_eq!(got.as_deref(), want, "{registry:?}");
        }
    }

    #[test]
    fn hosts_and_contexts() {
        assert_eq!(registry("http://127.0.0.1:5000").host(), "127.0.0.1:5000");
        assert_eq!(
            ExternalRegistry::secret_context("hub"),
            "external-registry/hub"
        );
    }
}
