//! Access control seam: what a request wants to do ([`Access`]), who it says it is
//! ([`Credentials`]), and the [`Authorizer`] the embedding server supplies to decide.
//!
//! The registry speaks Docker's basic-auth challenge (`WWW-Authenticate: Basic realm=...`), so
//! `docker login` sends a user name and password (or an API token as the password); bearer
//! tokens are passed through too. Team namespaces (`team/app`, only members may push) are a
//! policy of the authorizer: the registry only reports the repository, the action and the
//! client's address, and filters the catalog through [`Authorizer::readable`].
//!
//! An authorizer can hide a repository from a caller ([`AuthDecision::Hidden`]): pulls are then
//! answered exactly as for a repository that does not exist, so names cannot be probed.

use berth_core::secret::constant_time_eq;
use std::net::IpAddr;

use async_trait::async_trait;
use base64::Engine as _;

/// What the client presented in its `Authorization` header.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// `Authorization: Basic base64(username:password)`.
    Basic {
        /// User name.
        username: String,
        /// Password or API token.
        password: String,
    },
    /// `Authorization: Bearer <token>`.
    Bearer(String),
}

impl std::fmt::Debug for Credentials {
    // Secrets never reach logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
            Self::Bearer(_) => f.write_str("Bearer(<redacted>)"),
        }
    }
}

impl Credentials {
    /// Parses an `Authorization` header value; `None` when it is neither well-formed Basic nor
    /// Bearer (the request is then treated as anonymous).
    pub fn from_header(value: &str) -> Option<Self> {
        let (scheme, rest) = value.trim().split_once(' ')?;
        let rest = rest.trim();
        if scheme.eq_ignore_ascii_case("basic") {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(rest)
                .ok()?;
            let decoded = String::from_utf8(decoded).ok()?;
            let (username, password) = decoded.split_once(':')?;
            Some(Self::Basic {
                username: username.to_owned(),
                password: password.to_owned(),
            })
        } else if scheme.eq_ignore_ascii_case("bearer") && !rest.is_empty() {
            Some(Self::Bearer(rest.to_owned()))
        } else {
            None
        }
    }

    /// The user name, for basic credentials.
    pub fn username(&self) -> Option<&str> {
        match self {
            Self::Basic { username, .. } => Some(username),
            Self::Bearer(_) => None,
        }
    }
}

/// The kind of access a request needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// `GET /v2/`: "are these credentials valid?" (what `docker login` checks). No repository.
    Login,
    /// Read manifests, blobs, tags, referrers of a repository.
    Pull,
    /// Upload blobs and manifests to a repository (also needed to mount a blob into it).
    Push,
    /// Delete manifests, tags or blobs of a repository.
    Delete,
    /// List every repository (`/v2/_catalog`). No repository; the catalog is then filtered to
    /// the repositories the caller may pull.
    Catalog,
}

/// One access check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    /// The repository (`team/app`), absent for [`Action::Login`] and [`Action::Catalog`].
    pub repository: Option<String>,
    /// What the request wants to do.
    pub action: Action,
    /// The client's address, when the server knows it (served with axum's `ConnectInfo`):
    /// for rate-limiting password guesses per address.
    pub client: Option<IpAddr>,
}

impl Access {
    /// Access to one repository.
    pub fn repo(repository: impl Into<String>, action: Action) -> Self {
        Self {
            repository: Some(repository.into()),
            action,
            client: None,
        }
    }

    /// Registry-wide access (login, catalog).
    pub fn global(action: Action) -> Self {
        Self {
            repository: None,
            action,
            client: None,
        }
    }

    /// The same access, asked by `client`.
    pub fn by_client(mut self, client: Option<IpAddr>) -> Self {
        self.client = client;
        self
    }
}

/// The authorizer's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthDecision {
    /// Go ahead.
    Allow,
    /// No or wrong credentials: 401 with a basic-auth challenge, so clients ask for a login.
    Unauthenticated,
    /// Known caller, not allowed: 403 `DENIED` with this reason.
    Denied(String),
    /// Known caller who may not even learn that the repository exists. A pull is answered
    /// exactly as the same request for a missing repository (404 `NAME_UNKNOWN` or
    /// `BLOB_UNKNOWN`, an empty referrers list); any other action gets a 403 `DENIED` that
    /// names nothing but the repository asked for.
    Hidden,
}

/// Decides whether a request may proceed. Implemented by the embedding server (Berth users,
/// API tokens, team membership); [`StaticAuthorizer`] is the single-user version.
#[async_trait]
pub trait Authorizer: Send + Sync + 'static {
    /// Decides one access. Called once per request (twice for a cross-repository mount: push to
    /// the target, pull from the source).
    async fn authorize(&self, credentials: Option<&Credentials>, access: &Access) -> AuthDecision;

    /// The repositories of `repositories` the caller may see in the catalog (`catalog` is the
    /// [`Action::Catalog`] access the request was allowed, with its client). The default asks
    /// [`Self::authorize`] for [`Action::Pull`] on each one; override it when authenticating
    /// is costly, to resolve the caller once for the whole list.
    async fn readable(
        &self,
        credentials: Option<&Credentials>,
        catalog: &Access,
        repositories: Vec<String>,
    ) -> Vec<String> {
        let mut visible = Vec::with_capacity(repositories.len());
        for repository in repositories {
            let access = Access::repo(repository.as_str(), Action::Pull).by_client(catalog.client);
            if self.authorize(credentials, &access).await == AuthDecision::Allow {
                visible.push(repository);
            }
        }
        visible
    }
}

/// One user name and password allowed everything; anyone else is unauthenticated. A bearer
/// token equal to the password is accepted as well.
#[derive(Clone)]
pub struct StaticAuthorizer {
    username: String,
    password: String,
}

impl std::fmt::Debug for StaticAuthorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticAuthorizer")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl StaticAuthorizer {
    /// Allows `username`/`password`.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            username: username.into(),
            password: password.into(),
        }
    }

    fn matches(&self, credentials: &Credentials) -> bool {
        match credentials {
            Credentials::Basic { username, password } => {
                constant_time_eq(username.as_bytes(), self.username.as_bytes())
                    & constant_time_eq(password.as_bytes(), self.password.as_bytes())
            }
            Credentials::Bearer(token) => {
                constant_time_eq(token.as_bytes(), self.password.as_bytes())
            }
        }
    }
}

#[async_trait]
impl Authorizer for StaticAuthorizer {
    async fn authorize(&self, credentials: Option<&Credentials>, _access: &Access) -> AuthDecision {
        match credentials {
            Some(c) if self.matches(c) => AuthDecision::Allow,
            _ => AuthDecision::Unauthenticated,
        }
    }
}

/// Allows every request, authenticated or not. For tests and for registries that sit behind
/// another gate; never the default.
#[derive(Debug, Clone, Copy, Default)]
pub struct AllowAll;

#[async_trait]
impl Authorizer for AllowAll {
    async fn authorize(&self, _: Option<&Credentials>, _: &Access) -> AuthDecision {
        AuthDecision::Allow
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_authorization_headers() {
        let basic = |u: &str, p: &str| {
            Some(Credentials::Basic {
                username: u.into(),
                password: p.into(),
            })
        };
        let cases: &[(&str, Option<Credentials>)] = &[
            ("Basic YWRtaW46c2VjcmV0", basic("admin", "secret")),
            ("basic YWRtaW46c2VjcmV0", basic("admin", "secret")),
            // password containing ':'
            ("Basic YWRtaW46YTpi", basic("admin", "a:b")),
            ("Bearer tok123", Some(Credentials::Bearer("tok123".into()))),
            ("Bearer ", None),
            ("Basic !!!", None),
            ("Basic YWRtaW4=", None), // no colon
            ("Digest abc", None),
            ("", None),
        ];
        for (header, want) in cases {
            assert_eq!(&Credentials::from_header(header), want, "{header:?}");
        }
    }

    #[tokio::test]
    async fn static_authorizer() {
        let auth = StaticAuthorizer::new("admin", "secret");
        let access = Access::repo("team/app", Action::Push);
        let ok = Credentials::from_header("Basic YWRtaW46c2VjcmV0").unwrap();
        let bad = Credentials::Basic {
            username: "admin".into(),
            password: "nope".into(),
        };
        assert_eq!(
            auth.authorize(Some(&ok), &access).await,
            AuthDecision::Allow
        );
        assert_eq!(
            auth.authorize(Some(&Credentials::Bearer("secret".into())), &access)
                .await,
            AuthDecision::Allow
        );
        assert_eq!(
            auth.authorize(Some(&bad), &access).await,
            AuthDecision::Unauthenticated
        );
        assert_eq!(
            auth.authorize(None, &access).await,
            AuthDecision::Unauthenticated
        );
        assert!(!format!("{ok:?}").contains("secret"));
    }
}
