//! Who may use the built-in registry and how much each team may store there: Berth accounts
//! (password or API token, through the API's [`Authenticator`]), team roles on the repository
//! namespace (`team/name`), a system credential for the engine's pulls, and team registry
//! quotas ([`TeamRegistryLimits`]).
//!
//! The rules are the API's: pull needs `Read` on the team, push and delete `PushImage`, login
//! and the catalog only valid credentials (the catalog then lists readable repositories).
//! A repository of a team the caller cannot read is hidden: pulls answer exactly as for a
//! missing repository (`NAME_UNKNOWN`, `BLOB_UNKNOWN`, an empty referrers list); pushes and
//! deletes get a `DENIED` naming only the repository, so neither tells whether the team exists.
//! Readers lacking the role get `DENIED` with the role they lack.

use std::io;
use std::net::IpAddr;
use std::sync::Arc;

use async_trait::async_trait;
use berth_controller::Clock;
use berth_core::accounts::TeamAction;
use berth_core::image_ref::team_of_repository as team_of;
use berth_core::quota::{QuotaExceeded, QuotaResource};
use berth_operations::OpError;
use berth_registry::{
    Access, Action, AuthDecision, Authorizer, Credentials, NamespaceLimits, StorageQuotaExceeded,
};
use berth_store::Store;

use crate::audit::AuditSlot;
use crate::auth::{Authenticator, LoginError, Principal};
use crate::tokens_match;

/// The user name of the credential the server gives its engine for pulls (reserved: no user
/// of that name can use the registry).
pub const SYSTEM_USER: &str = "berth-system";

pub use berth_operations::builds::grants::{BUILDER_USER, BuildScope, BuilderGrant, BuilderGrants};

/// A fresh random secret for the system credential; make one at each server start and give it
/// to both [`AccountsAuthorizer::new`] and the controller's pull credentials.
pub fn new_system_secret() -> String {
    berth_auth::new_token().plaintext
}

/// Who a registry request comes from.
enum Caller {
    /// The server's own engine ([`SYSTEM_USER`]): may pull anything, nothing else.
    System,
    /// A running build ([`BUILDER_USER`] with its own secret): may pull its team's
    /// repositories and push to its target repository.
    Builder(BuildScope),
    User(Box<Principal>),
}

/// The registry's [`Authorizer`] on Berth accounts.
pub struct AccountsAuthorizer {
    auth: Arc<Authenticator>,
    clock: Clock,
    system_secret: String,
    builder: Option<BuilderGrants>,
}

impl std::fmt::Debug for AccountsAuthorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountsAuthorizer").finish_non_exhaustive()
    }
}

impl AccountsAuthorizer {
    /// Authenticates with `auth` at `clock`'s time; `system_secret` is the password of
    /// [`SYSTEM_USER`] (an empty one admits no system caller).
    pub fn new(auth: Arc<Authenticator>, clock: Clock, system_secret: impl Into<String>) -> Self {
        AccountsAuthorizer {
            auth,
            clock,
            system_secret: system_secret.into(),
            builder: None,
        }
    }

    /// Admits [`BUILDER_USER`] with the secret of a running build's grant.
    pub fn with_builder(mut self, grants: BuilderGrants) -> Self {
        self.builder = Some(grants);
        self
    }

    /// Resolves the credentials; the decision to return when they do not resolve.
    async fn caller(
        &self,
        credentials: Option<&Credentials>,
        client: Option<IpAddr>,
    ) -> Result<Caller, AuthDecision> {
        let now = (self.clock)();
        // The registry's requests are not audited one by one: a detached slot.
        let audit = AuditSlot::default();
        let resolved = match credentials {
            None => return Err(AuthDecision::Unauthenticated),
            Some(Credentials::Basic { username, password }) if username == SYSTEM_USER => {
                let valid = !self.system_secret.is_empty()
                    && tokens_match(password.as_bytes(), self.system_secret.as_bytes());
                return if valid {
                    Ok(Caller::System)
                } else {
                    Err(AuthDecision::Unauthenticated)
                };
            }
            Some(Credentials::Basic { username, password }) if username == BUILDER_USER => {
                return self
                    .builder
                    .as_ref()
                    .filter(|_| !password.is_empty())
                    .and_then(|grants| grants.scope(password))
                    .map(Caller::Builder)
                    .ok_or(AuthDecision::Unauthenticated);
            }
            Some(Credentials::Basic { username, password }) => {
                // Same address key as the API's logins, so one limiter covers both doors.
                let source = client.map_or_else(|| "unknown".to_string(), |ip| ip.to_string());
                self.auth
                    .by_password_or_token(username, password, &source, now, audit)
                    .await
            }
            Some(Credentials::Bearer(token)) => match self.auth.by_token(token, now, audit).await {
                Ok(principal) => principal.ok_or(LoginError::Invalid),
                Err(error) => Err(LoginError::Store(error)),
            },
        };
        match resolved {
            Ok(principal) => Ok(Caller::User(Box::new(principal))),
            Err(LoginError::Invalid) => Err(AuthDecision::Unauthenticated),
            Err(LoginError::Locked(wait)) => Err(AuthDecision::Denied(format!(
                "too many failed logins; try again in {} s",
                wait.as_secs().max(1)
            ))),
            Err(LoginError::Store(error)) => {
                tracing::error!(%error, "registry authentication failed");
                Err(AuthDecision::Denied(
                    "credentials cannot be checked right now; try again".into(),
                ))
            }
        }
    }
}

/// What a user may do, by the API's rule ([`Principal::require`]): not even a reader of the
/// team → hidden; a reader lacking the role → denied with the role needed.
fn decide(principal: &Principal, access: &Access) -> AuthDecision {
    let needed = match access.action {
        Action::Login | Action::Catalog => return AuthDecision::Allow,
        Action::Pull => TeamAction::Read,
        Action::Push | Action::Delete => TeamAction::PushImage,
    };
    let Some(repository) = access.repository.as_deref() else {
        return AuthDecision::Denied("no repository given".into());
    };
    match principal.require(team_of(repository), needed, repository) {
        Ok(()) => AuthDecision::Allow,
        Err(OpError::NotFound { .. }) => AuthDecision::Hidden,
        Err(error) => AuthDecision::Denied(error.to_string()),
    }
}

#[async_trait]
impl Authorizer for AccountsAuthorizer {
    async fn authorize(&self, credentials: Option<&Credentials>, access: &Access) -> AuthDecision {
        match self.caller(credentials, access.client).await {
            Err(decision) => decision,
            Ok(Caller::System) => match access.action {
                // Login only confirms the credential; pulls are what it is for.
                Action::Login | Action::Pull => AuthDecision::Allow,
                Action::Push | Action::Delete | Action::Catalog => {
                    AuthDecision::Denied(format!("the {SYSTEM_USER} credential may only pull"))
                }
            },
            Ok(Caller::Builder(scope)) => {
                let repository = access.repository.as_deref();
                match access.action {
                    Action::Login => AuthDecision::Allow,
                    Action::Pull if repository.is_some_and(|r| team_of(r) == scope.team) => {
                        AuthDecision::Allow
                    }
                    // Answered like a missing repository, as for a user of another team.
                    Action::Pull => AuthDecision::Hidden,
                    Action::Push if repository == Some(scope.repository.as_str()) => {
                        AuthDecision::Allow
                    }
                    Action::Push | Action::Delete | Action::Catalog => {
                        AuthDecision::Denied(format!(
                            "a build's credential may only push to its pipeline's repository ({})",
                            scope.repository
                        ))
                    }
                }
            }
            Ok(Caller::User(principal)) => decide(&principal, access),
        }
    }

    async fn readable(
        &self,
        credentials: Option<&Credentials>,
        catalog: &Access,
        repositories: Vec<String>,
    ) -> Vec<String> {
        match self.caller(credentials, catalog.client).await {
            Ok(Caller::User(principal)) => repositories
                .into_iter()
                .filter(|r| principal.can_read(team_of(r)))
                .collect(),
            Ok(Caller::System | Caller::Builder(_)) | Err(_) => Vec::new(),
        }
    }
}

/// Registry storage limits from the teams' quotas (`registry_bytes`; a namespace without a
/// team is unlimited, and only admins can push there). Refusals carry the API's
/// `quota_exceeded` message.
pub struct TeamRegistryLimits {
    store: Arc<dyn Store>,
}

impl std::fmt::Debug for TeamRegistryLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TeamRegistryLimits").finish_non_exhaustive()
    }
}

impl TeamRegistryLimits {
    pub fn new(store: Arc<dyn Store>) -> Self {
        TeamRegistryLimits { store }
    }
}

#[async_trait]
impl NamespaceLimits for TeamRegistryLimits {
    async fn byte_limit(&self, namespace: &str) -> io::Result<Option<u64>> {
        let team = self
            .store
            .get_team(namespace)
            .await
            .map_err(io::Error::other)?;
        Ok(team.and_then(|team| team.quota.registry_bytes))
    }

    fn exceeded_message(&self, refused: &StorageQuotaExceeded) -> String {
        let exceeded = QuotaExceeded {
            resource: QuotaResource::RegistryStorage,
            asked: refused.asked,
            in_use: refused.in_use,
            limit: refused.limit,
        };
        crate::error::quota_refusal(&refused.namespace, &[exceeded]).message
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicU32, Ordering};

    use berth_auth::HashParams;
    use berth_core::Millis;
    use berth_core::accounts::{ApiToken, Membership, TeamRole, User};
    use berth_core::quota::Quota;
    use berth_core::team::Team;
    use berth_store::SqliteStore;
    use berth_store::prelude::*;

    use super::*;

    const NOW: Millis = 1_700_000_000_000;
    const SYSTEM_SECRET: &str = "system-secret-0123456789";
    const GIB: u64 = 1 << 30;
    const MIB: u64 = 1 << 20;

    /// A directory under the system temp dir, removed when dropped.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> Self {
            static NEXT: AtomicU32 = AtomicU32::new(0);
            let path = std::env::temp_dir().join(format!(
                "berth-registry-auth-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::SeqCst)
            ));
            std::fs::create_dir_all(&path).unwrap();
            TempDir(path)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// Teams `web` (10 GiB of registry storage) and `ops` (unlimited); users `admin`
    /// (platform admin), `mia` (member of web), `val` (viewer of web), `oli` (owner of ops),
    /// `dis` (member of web, disabled); each one's password is `<name>-password`.
    struct Fixture {
        store: SqliteStore,
        authorizer: AccountsAuthorizer,
        /// A live API token of mia, an expired one of mia, a live one of dis.
        mia_token: String,
        mia_expired: String,
        dis_token: String,
        _dir: TempDir,
    }

    fn password(user: &str) -> String {
        format!("{user}-password")
    }

    async fn fixture() -> Fixture {
        let dir = TempDir::new();
        let store = SqliteStore::open(&dir.0.join("berth.db")).await.unwrap();
        for (name, registry_bytes) in [("web", Some(10 * GIB)), ("ops", None)] {
            let team = Team {
                name: name.into(),
                display_name: String::new(),
                quota: Quota {
                    registry_bytes,
                    ..Quota::unlimited()
                },
                created_at: NOW,
                updated_at: NOW,
            };
            store.create_team(&team).await.unwrap();
        }
        let mut ids = std::collections::HashMap::new();
        let users = [
            ("admin", true, false, None),
            ("mia", false, false, Some(("web", TeamRole::Member))),
            ("val", false, false, Some(("web", TeamRole::Viewer))),
            ("oli", false, false, Some(("ops", TeamRole::Owner))),
            ("dis", false, true, Some(("web", TeamRole::Member))),
        ];
        for (username, is_admin, disabled, membership) in users {
            let user = User {
                id: 0,
                username: username.into(),
                email: format!("{username}@example.com"),
                display_name: String::new(),
                is_admin,
                disabled,
                created_at: NOW,
                updated_at: NOW,
            };
            let hash =
                berth_auth::hash_password_with(&password(username), HashParams::INSECURE_FAST);
            let user = store.create_user(&user, &hash).await.unwrap();
            if let Some((team, role)) = membership {
                let membership = Membership {
                    team: team.into(),
                    user_id: user.id,
                    role,
                };
                store.put_membership(&membership).await.unwrap();
            }
            ids.insert(username, user.id);
        }
        let token = |user: &str, expires_at: Option<Millis>| {
            let (store, user_id) = (store.clone(), ids[user]);
            async move {
                let new = berth_auth::new_token();
                let record = ApiToken {
                    id: 0,
                    user_id,
                    name: "test".into(),
                    prefix: new.prefix.clone(),
                    expires_at,
                    last_used_at: None,
                    created_at: NOW,
                    revoked: false,
                    scope: berth_core::accounts::TokenScope::Full,
                };
                store.create_api_token(&record, &new.hash).await.unwrap();
                new.plaintext
            }
        };
        let mia_token = token("mia", None).await;
        let mia_expired = token("mia", Some(NOW - 1)).await;
        let dis_token = token("dis", None).await;
        let shared: Arc<dyn Store> = Arc::new(store.clone());
        let auth = Arc::new(Authenticator::new(shared, HashParams::INSECURE_FAST));
        let clock: Clock = Arc::new(|| NOW);
        Fixture {
            authorizer: AccountsAuthorizer::new(auth, clock, SYSTEM_SECRET),
            store,
            mia_token,
            mia_expired,
            dis_token,
            _dir: dir,
        }
    }

    fn basic(username: &str, password: &str) -> Option<Credentials> {
        Some(Credentials::Basic {
            username: username.into(),
            password: password.into(),
        })
    }

    fn user(name: &str) -> Option<Credentials> {
        basic(name, &password(name))
    }

    fn bearer(token: &str) -> Option<Credentials> {
        Some(Credentials::Bearer(token.into()))
    }

    /// What a decision must be; `Denied` with a part of its reason.
    #[derive(Debug, Clone)]
    enum Want {
        Allow,
        Unauthenticated,
        Hidden,
        Denied(&'static str),
    }

    fn matches(decision: &AuthDecision, want: &Want) -> bool {
        match (decision, want) {
            (AuthDecision::Allow, Want::Allow)
            | (AuthDecision::Unauthenticated, Want::Unauthenticated)
            | (AuthDecision::Hidden, Want::Hidden) => true,
            (AuthDecision::Denied(reason), Want::Denied(part)) => reason.contains(part),
            _ => false,
        }
    }

    /// An access written `login`, `catalog` or `<pull|push|delete> <repository>`.
    fn access(spec: &str) -> Access {
        match spec.split_once(' ') {
            None if spec == "login" => Access::global(Action::Login),
            None if spec == "catalog" => Access::global(Action::Catalog),
            Some(("pull", r)) => Access::repo(r, Action::Pull),
            Some(("push", r)) => Access::repo(r, Action::Push),
            Some(("delete", r)) => Access::repo(r, Action::Delete),
            _ => panic!("bad access {spec:?}"),
        }
    }

    /// Credentials written `anonymous`, `<user>` (their password), `<user>:wrong`,
    /// `<user>:<token holder>` (Basic with mia's live or expired token or dis's token as
    /// password), `bearer:<token holder>`, `bearer:garbage`, `system`, `system:wrong`,
    /// `bearer:system`.
    fn credentials(f: &Fixture, spec: &str) -> Option<Credentials> {
        let token = |holder: &str| match holder {
            "mia-token" => f.mia_token.clone(),
            "mia-expired" => f.mia_expired.clone(),
            "dis-token" => f.dis_token.clone(),
            "system" => SYSTEM_SECRET.into(),
            _ => "berth_garbage".into(),
        };
        match spec.split_once(':') {
            None if spec == "anonymous" => None,
            None if spec == "system" => basic(SYSTEM_USER, SYSTEM_SECRET),
            None => user(spec),
            Some(("bearer", holder)) => bearer(&token(holder)),
            Some(("system", "wrong")) => basic(SYSTEM_USER, "guess"),
            Some((name, "wrong")) => basic(name, "wrong-password"),
            Some((name, holder)) => basic(name, &token(holder)),
        }
    }

    #[tokio::test]
    async fn a_build_pulls_its_teams_images_and_pushes_to_its_repository_only() {
        let f = fixture().await;
        let shared: Arc<dyn Store> = Arc::new(f.store.clone());
        let auth = Arc::new(Authenticator::new(shared, HashParams::INSECURE_FAST));
        let grants = BuilderGrants::default();
        let authorizer = AccountsAuthorizer::new(auth, Arc::new(|| NOW), SYSTEM_SECRET)
            .with_builder(grants.clone());
        let decide = |spec: &'static str, credentials: Option<Credentials>| {
            let authorizer = &authorizer;
            async move {
                authorizer
                    .authorize(credentials.as_ref(), &access(spec))
                    .await
            }
        };
        let allowed = |d: &AuthDecision| matches!(d, AuthDecision::Allow);
        let web = grants.grant("web", "web/api");
        let ops = grants.grant("ops", "ops/tool");
        assert_ne!(web.secret(), ops.secret());
        let as_web = basic(BUILDER_USER, web.secret());
        let as_ops = basic(BUILDER_USER, ops.secret());
        assert!(allowed(&decide("login", as_web.clone()).await));
        assert!(allowed(&decide("pull web/base", as_web.clone()).await));
        assert!(allowed(&decide("push web/api", as_web.clone()).await));
        // Another team's image is not there for this build, even while that team builds.
        assert!(matches!(
            decide("pull ops/base", as_web.clone()).await,
            AuthDecision::Hidden
        ));
        assert!(allowed(&decide("pull ops/base", as_ops.clone()).await));
        assert!(!allowed(&decide("push ops/tool", as_web.clone()).await));
        assert!(!allowed(&decide("push web/other", as_web.clone()).await));
        assert!(!allowed(&decide("delete web/api", as_web.clone()).await));
        assert!(!allowed(&decide("catalog", as_web.clone()).await));
        // A build's credential ends with the build.
        drop(web);
        assert!(matches!(
            decide("pull web/base", as_web.clone()).await,
            AuthDecision::Unauthenticated
        ));
        assert!(allowed(&decide("pull ops/base", as_ops.clone()).await));
        for guess in ["guess", ""] {
            assert!(matches!(
                decide("login", basic(BUILDER_USER, guess)).await,
                AuthDecision::Unauthenticated
            ));
        }
        // Without `with_builder` the name admits nobody.
        assert!(matches!(
            f.authorizer
                .authorize(as_ops.as_ref(), &access("login"))
                .await,
            AuthDecision::Unauthenticated
        ));
    }

    #[tokio::test]
    async fn decisions_follow_accounts_and_team_roles() {
        use Want::{Allow, Denied, Hidden, Unauthenticated};
        let f = fixture().await;
        let cases = [
            // Credentials: passwords and tokens of enabled users only.
            ("anonymous", "login", Unauthenticated),
            ("anonymous", "pull web/api", Unauthenticated),
            ("mia", "login", Allow),
            ("mia:wrong", "login", Unauthenticated),
            ("nobody", "login", Unauthenticated),
            ("mia:mia-token", "push web/api", Allow),
            ("val:mia-token", "login", Unauthenticated),
            ("mia:mia-expired", "login", Unauthenticated),
            ("bearer:mia-token", "push web/api", Allow),
            ("bearer:garbage", "login", Unauthenticated),
            ("bearer:mia-expired", "login", Unauthenticated),
            ("dis", "pull web/api", Unauthenticated),
            ("bearer:dis-token", "pull web/api", Unauthenticated),
            // mia is a member of web.
            ("mia", "pull web/api", Allow),
            ("mia", "push web/api", Allow),
            ("mia", "delete web/a/b", Allow),
            ("mia", "push web", Allow),
            ("mia", "catalog", Allow),
            ("mia", "pull ops/db", Hidden),
            ("mia", "push ops/db", Hidden),
            ("mia", "delete ops/db", Hidden),
            ("mia", "pull nosuch/x", Hidden),
            // val is a viewer of web.
            ("val", "pull web/api", Allow),
            (
                "val",
                "push web/api",
                Denied("your role in team web is viewer"),
            ),
            ("val", "delete web/api", Denied("needs member")),
            ("val", "pull ops/db", Hidden),
            // oli owns ops; admin is a platform admin.
            ("oli", "push ops/db", Allow),
            ("oli", "pull web/api", Hidden),
            ("admin", "pull ops/db", Allow),
            ("admin", "push nosuch/x", Allow),
            ("admin", "catalog", Allow),
            // The system credential pulls and does nothing else.
            ("system", "login", Allow),
            ("system", "pull ops/db", Allow),
            ("system", "pull nosuch/x", Allow),
            ("system", "push ops/db", Denied("may only pull")),
            ("system", "delete web/api", Denied("may only pull")),
            ("system", "catalog", Denied("may only pull")),
            ("system:wrong", "pull ops/db", Unauthenticated),
            ("bearer:system", "pull ops/db", Unauthenticated),
        ];
        for (who, spec, want) in cases {
            let decision = f
                .authorizer
                .authorize(credentials(&f, who).as_ref(), &access(spec))
                .await;
            assert!(
                matches(&decision, &want),
                "{who}, {spec}: {decision:?}, want {want:?}"
            );
        }
        f.store.close().await;
    }

    #[tokio::test]
    async fn password_guessing_is_locked_out_per_user_and_address() {
        let f = fixture().await;
        let from =
            |last: u8| Access::global(Action::Login).by_client(Some([10, 0, 0, last].into()));
        let wrong = credentials(&f, "val:wrong");
        for _ in 0..5 {
            let decision = f.authorizer.authorize(wrong.as_ref(), &from(7)).await;
            assert_eq!(decision, AuthDecision::Unauthenticated);
        }
        let locked = Want::Denied("too many failed logins");
        // (credentials, last byte of the client address, decision): only val from .7 is
        // locked; another user on that address and val elsewhere are not.
        let cases = [
            ("val", 7, locked),
            ("val", 8, Want::Allow),
            ("mia", 7, Want::Allow),
            ("bearer:mia-token", 7, Want::Allow),
        ];
        for (who, address, want) in cases {
            let decision = f
                .authorizer
                .authorize(credentials(&f, who).as_ref(), &from(address))
                .await;
            assert!(
                matches(&decision, &want),
                "{who} from .{address}: {decision:?}"
            );
        }
        f.store.close().await;
    }

    #[tokio::test]
    async fn the_catalog_lists_readable_repositories() {
        let f = fixture().await;
        let everything = ["nosuch/x", "ops/db", "web", "web/api", "web/a/b"];
        let cases: [(&str, &[&str]); 6] = [
            ("mia", &["web", "web/api", "web/a/b"]),
            ("val", &["web", "web/api", "web/a/b"]),
            ("oli", &["ops/db"]),
            ("admin", &everything),
            ("system", &[]),
            ("anonymous", &[]),
        ];
        let catalog = Access::global(Action::Catalog);
        let all: Vec<String> = everything.map(String::from).into();
        for (who, want) in cases {
            let got = f
                .authorizer
                .readable(credentials(&f, who).as_ref(), &catalog, all.clone())
                .await;
            assert_eq!(got, want, "{who}");
        }
        f.store.close().await;
    }

    #[tokio::test]
    async fn team_quotas_limit_registry_storage() {
        let f = fixture().await;
        let limits = TeamRegistryLimits::new(Arc::new(f.store.clone()));
        let cases = [("web", Some(10 * GIB)), ("ops", None), ("nosuch", None)];
        for (team, want) in cases {
            assert_eq!(limits.byte_limit(team).await.unwrap(), want, "{team}");
        }
        let refused = StorageQuotaExceeded {
            namespace: "web".into(),
            asked: 120 * MIB,
            in_use: 10_630_044_058,
            limit: 10 * GIB,
        };
        assert_eq!(
            limits.exceeded_message(&refused),
            "team web quota exceeded: registry storage: asked for 120 MiB, 9.9 GiB in use, \
             limit 10 GiB; ask for more with a quota request"
        );
        f.store.close().await;
    }
}
