//! Who is calling and what they may do: API tokens, browser sessions (cookie + CSRF token),
//! passwords (rate-limited), and the role checks every handler makes through [`Principal`].
//!
//! One [`Authenticator`] serves the REST API and the registry, so `docker login` accepts the
//! same passwords and tokens, and disabling a user stops every door at once: each request
//! reloads the user and their memberships (a few indexed reads), nothing is cached across
//! requests except successful password checks, which are keyed by the password itself and
//! dropped when the user changes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use berth_auth::{HashParams, LimiterConfig, LoginLimiter};
use berth_core::Millis;
use berth_core::accounts::{TokenScope, User};
use berth_operations::Actor;
use berth_store::{Store, StoreResult};

use crate::ApiState;
use crate::audit::AuditSlot;
use crate::error::{ApiError, ApiResult};

/// The browser session cookie.
pub const SESSION_COOKIE: &str = "berth_session";
/// The header that must repeat the session's CSRF token on state-changing requests.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Longest bearer token or session secret looked up (anything longer is garbage).
const MAX_SECRET_LEN: usize = 256;
/// Token and session uses are written back at most this often (a write per request is waste).
const TOUCH_EVERY_MS: Millis = 60_000;
/// A successful password check is trusted again for this long (docker sends Basic
/// credentials on every registry request; argon2 on each would cost more than the transfer).
const PASSWORD_CACHE_TTL: Duration = Duration::from_secs(300);
/// Password-cache entries kept at most.
const PASSWORD_CACHE_MAX: usize = 10_000;

/// How the caller proved who they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthMethod {
    /// An API token (`Authorization: Bearer`), with its id.
    Token { id: i64 },
    /// A browser session, with the hash it is stored under and its CSRF token.
    Session {
        session_hash: String,
        csrf_token: String,
    },
    /// A username and password (registry Basic auth).
    Password,
}

/// An authenticated caller: the [`Actor`] of the application layer (the user as stored now,
/// their role in each team, the request's audit note) and how they authenticated. Handlers
/// take it as an extractor and hand `&principal` (an `&Actor` by deref) to the operations.
#[derive(Debug, Clone)]
pub struct Principal {
    pub actor: Actor,
    pub method: AuthMethod,
}

impl std::ops::Deref for Principal {
    type Target = Actor;

    fn deref(&self) -> &Actor {
        &self.actor
    }
}

impl FromRequestParts<ApiState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &ApiState) -> ApiResult<Self> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .ok_or_else(|| ApiError::unauthorized("authentication required"))
    }
}

/// Why a password login failed.
#[derive(Debug)]
pub enum LoginError {
    /// Wrong username or password, or a disabled user (indistinguishable on purpose).
    Invalid,
    /// Too many failures for this username from this address, or from this address at all:
    /// try again after this long.
    Locked(Duration),
    Store(berth_store::StoreError),
}

impl From<LoginError> for ApiError {
    fn from(error: LoginError) -> Self {
        match error {
            LoginError::Invalid => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                "wrong username or password",
            ),
            LoginError::Locked(wait) => {
                let seconds = wait.as_secs().max(1);
                let mut error = ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too_many_attempts",
                    format!("too many failed logins; try again in {seconds} s"),
                );
                error.retry_after = Some(seconds);
                error
            }
            LoginError::Store(error) => error.into(),
        }
    }
}

/// Registrations allowed per client address per hour.
pub const REGISTRATIONS_PER_HOUR: u32 = 10;

/// The rate limiters of the doors anyone can knock on.
struct Limiters {
    /// Failed logins per (username, client address).
    account: LoginLimiter,
    /// Failed logins per client address, whatever the username.
    address: LoginLimiter,
    /// Registrations per client address.
    registrations: LoginLimiter,
}

impl Default for Limiters {
    fn default() -> Self {
        Limiters {
            account: LoginLimiter::new(LimiterConfig::default()),
            address: LoginLimiter::new(LimiterConfig::per_address()),
            registrations: LoginLimiter::new(LimiterConfig::per_window(
                REGISTRATIONS_PER_HOUR,
                Duration::from_secs(60 * 60),
            )),
        }
    }
}

impl Limiters {
    /// `Ok` when a login of `account_key` from `source` may be tried now.
    fn check(&self, account_key: &str, source: &str, now: Instant) -> Result<(), Duration> {
        let account = self.account.check(account_key, now);
        let address = self.address.check(source, now);
        match (account, address) {
            (Ok(()), Ok(())) => Ok(()),
            (a, b) => Err(a.err().unwrap_or_default().max(b.err().unwrap_or_default())),
        }
    }
}

/// Resolves credentials to [`Principal`]s; shared by the API and the registry.
pub struct Authenticator {
    store: Arc<dyn Store>,
    hash_params: HashParams,
    /// Failed logins per (username, client address), and per client address (looser).
    limiter: Mutex<Limiters>,
    /// `sha256(user id, password)` → when it was verified, for Basic-auth-per-request clients.
    verified_passwords: Mutex<HashMap<String, (i64, Instant)>>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator").finish_non_exhaustive()
    }
}

impl Authenticator {
    pub fn new(store: Arc<dyn Store>, hash_params: HashParams) -> Self {
        Authenticator {
            store,
            hash_params,
            limiter: Mutex::new(Limiters::default()),
            verified_passwords: Mutex::new(HashMap::new()),
        }
    }

    /// Hashes a password off the async threads (argon2 takes tens of milliseconds).
    pub async fn hash_password(&self, password: &str) -> String {
        let password = password.to_string();
        let params = self.hash_params;
        tokio::task::spawn_blocking(move || berth_auth::hash_password_with(&password, params))
            .await
            .expect("password hashing does not panic")
    }

    /// Loads the user's memberships into a principal.
    pub async fn principal(
        &self,
        user: User,
        method: AuthMethod,
        audit: AuditSlot,
    ) -> StoreResult<Principal> {
        let actor = Actor::load(self.store.as_ref(), user, audit).await?;
        Ok(Principal { actor, method })
    }

    /// The principal of a live full-scope API token held by an enabled user. A token of
    /// another scope (metrics) is no credential here: every door but `/metrics` and the REST
    /// API's middleware (which answers it 403) asks this.
    pub async fn by_token(
        &self,
        token: &str,
        now: Millis,
        audit: AuditSlot,
    ) -> StoreResult<Option<Principal>> {
        Ok(self
            .by_token_scoped(token, now, audit)
            .await?
            .and_then(|(principal, scope)| (scope == TokenScope::Full).then_some(principal)))
    }

    /// The principal of a live API token of any scope held by an enabled user, with the
    /// token's scope: the caller decides what that scope admits.
    pub async fn by_token_scoped(
        &self,
        token: &str,
        now: Millis,
        audit: AuditSlot,
    ) -> StoreResult<Option<(Principal, TokenScope)>> {
        if token.is_empty() || token.len() > MAX_SECRET_LEN {
            return Ok(None);
        }
        let Some(record) = self
            .store
            .find_api_token(&berth_auth::token_hash(token))
            .await?
        else {
            return Ok(None);
        };
        if !record.is_usable(now) {
            return Ok(None);
        }
        let Some(user) = self.enabled_user(record.user_id).await? else {
            return Ok(None);
        };
        if record
            .last_used_at
            .is_none_or(|at| now - at >= TOUCH_EVERY_MS)
        {
            self.store.touch_api_token(record.id, now).await?;
        }
        let principal = self
            .principal(user, AuthMethod::Token { id: record.id }, audit)
            .await?;
        Ok(Some((principal, record.scope)))
    }

    /// The principal of a live session held by an enabled user.
    pub async fn by_session(
        &self,
        secret: &str,
        now: Millis,
        audit: AuditSlot,
    ) -> StoreResult<Option<Principal>> {
        if secret.is_empty() || secret.len() > MAX_SECRET_LEN {
            return Ok(None);
        }
        let session_hash = berth_auth::token_hash(secret);
        let Some(session) = self.store.find_session(&session_hash).await? else {
            return Ok(None);
        };
        if !session.is_live(now) {
            return Ok(None);
        }
        let Some(user) = self.enabled_user(session.user_id).await? else {
            return Ok(None);
        };
        if now - session.last_seen_at >= TOUCH_EVERY_MS {
            self.store.touch_session(&session_hash, now).await?;
        }
        let method = AuthMethod::Session {
            session_hash,
            csrf_token: session.csrf_token,
        };
        self.principal(user, method, audit).await.map(Some)
    }

    async fn enabled_user(&self, id: i64) -> StoreResult<Option<User>> {
        Ok(self.store.get_user(id).await?.filter(|user| !user.disabled))
    }

    /// Checks a username and password, rate-limited per (username, client address) and per
    /// client address: a user's failures lock out only that user from that address, so nobody
    /// can lock an account out from elsewhere.
    pub async fn by_password(
        &self,
        username: &str,
        password: &str,
        source: &str,
        audit: AuditSlot,
    ) -> Result<Principal, LoginError> {
        let account_key = format!("{username}\0{source}");
        let started = Instant::now();
        self.lock_limiter()
            .check(&account_key, source, started)
            .map_err(LoginError::Locked)?;
        let found = self
            .store
            .get_user_by_username(username)
            .await
            .map_err(LoginError::Store)?;
        let verified = match &found {
            Some((user, hash)) => self.verify(user.id, password, hash).await,
            None => {
                // Same work as a real check, so timing does not tell which usernames exist.
                let password = password.to_string();
                let _ =
                    tokio::task::spawn_blocking(move || berth_auth::verify_dummy(&password)).await;
                false
            }
        };
        match found {
            Some((user, _)) if verified && !user.disabled => {
                self.lock_limiter().account.record_success(&account_key);
                self.principal(user, AuthMethod::Password, audit)
                    .await
                    .map_err(LoginError::Store)
            }
            _ => {
                let mut limiter = self.lock_limiter();
                let now = Instant::now();
                limiter.account.record_failure(&account_key, now);
                limiter.address.record_failure(source, now);
                Err(LoginError::Invalid)
            }
        }
    }

    /// A registry-style credential: the user's API token or their password.
    pub async fn by_password_or_token(
        &self,
        username: &str,
        secret: &str,
        source: &str,
        now: Millis,
        audit: AuditSlot,
    ) -> Result<Principal, LoginError> {
        if let Some(principal) = self
            .by_token(secret, now, audit.clone())
            .await
            .map_err(LoginError::Store)?
        {
            if principal.user.username == username {
                return Ok(principal);
            }
            return Err(LoginError::Invalid);
        }
        self.by_password(username, secret, source, audit).await
    }

    async fn verify(&self, user_id: i64, password: &str, hash: &str) -> bool {
        let key = berth_auth::token_hash(&format!("{user_id}\0{password}\0{hash}"));
        if let Some((_, at)) = self.lock_cache().get(&key)
            && at.elapsed() < PASSWORD_CACHE_TTL
        {
            return true;
        }
        let (password, stored) = (password.to_string(), hash.to_string());
        let ok =
            tokio::task::spawn_blocking(move || berth_auth::verify_password(&password, &stored))
                .await
                .unwrap_or(false);
        if ok {
            let mut cache = self.lock_cache();
            if cache.len() >= PASSWORD_CACHE_MAX {
                cache.retain(|_, (_, at)| at.elapsed() < PASSWORD_CACHE_TTL);
                if cache.len() >= PASSWORD_CACHE_MAX {
                    cache.clear();
                }
            }
            cache.insert(key, (user_id, Instant::now()));
        }
        ok
    }

    /// Forgets the user's verified passwords (after a password change, disable or delete).
    pub fn forget_user(&self, user_id: i64) {
        self.lock_cache().retain(|_, (id, _)| *id != user_id);
    }

    /// `Ok` when `source` may register an account now, else how long until it may
    /// ([`REGISTRATIONS_PER_HOUR`] accounts per address).
    pub fn check_registration(&self, source: &str) -> Result<(), Duration> {
        self.lock_limiter()
            .registrations
            .check(source, Instant::now())
    }

    /// Counts an account registered from `source`.
    pub fn record_registration(&self, source: &str) {
        self.lock_limiter()
            .registrations
            .record_failure(source, Instant::now());
    }

    fn lock_limiter(&self) -> std::sync::MutexGuard<'_, Limiters> {
        self.limiter.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, (i64, Instant)>> {
        self.verified_passwords
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }
}

/// The value of the session cookie in `headers`, if any.
pub fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.trim())
}

/// The bearer token of `headers`, if any.
pub(crate) fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

/// 401 for a bearer token that admits nobody.
pub(crate) fn invalid_bearer() -> ApiError {
    ApiError::unauthorized(
        "the bearer token is not valid (revoked, expired, or its user is disabled)",
    )
}

/// 403 for a metrics-scope token anywhere but `/metrics`.
pub(crate) fn metrics_only() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "token_scope",
        "this token's scope is 'metrics': it may only read GET /metrics",
    )
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Middleware: resolves the caller (bearer token first, then the session cookie), checks the
/// CSRF token of cookie-authenticated changes, and hands the [`Principal`] to the handler.
pub async fn authenticate(
    State(state): State<ApiState>,
    mut request: Request,
    next: Next,
) -> Response {
    let now = (state.clock)();
    let audit = crate::audit::RequestAudit::of(&request);
    let headers = request.headers();
    let resolved = if let Some(token) = bearer_token(headers) {
        state
            .auth
            .by_token_scoped(token, now, audit)
            .await
            .map(|found| match found {
                Some((principal, TokenScope::Full)) => Ok(principal),
                Some((_, TokenScope::Metrics)) => Err(metrics_only()),
                None => Err(invalid_bearer()),
            })
    } else if let Some(secret) = session_cookie(headers) {
        state
            .auth
            .by_session(secret, now, audit)
            .await
            .map(|p| p.ok_or_else(|| ApiError::unauthorized("the session has ended; log in again")))
    } else {
        Ok(Err(ApiError::unauthorized(
            "log in (berth login), or send 'Authorization: Bearer <token>' (on a new server, the first admin's token is in <data-dir>/admin-token until they set their own password)",
        )))
    };
    let principal = match resolved {
        Ok(Ok(principal)) => principal,
        Ok(Err(error)) => return error.into_response(),
        Err(error) => return ApiError::from(error).into_response(),
    };
    if let AuthMethod::Session { csrf_token, .. } = &principal.method
        && !is_safe(request.method())
    {
        let given = request
            .headers()
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !crate::tokens_match(given.as_bytes(), csrf_token.as_bytes()) {
            return ApiError::new(
                StatusCode::FORBIDDEN,
                "csrf_failed",
                format!("missing or wrong {CSRF_HEADER} header (read it from GET /api/v1/me)"),
            )
            .into_response();
        }
    }
    request.extensions_mut().insert(principal);
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use berth_store::prelude::*;

    async fn authenticator_with(users: &[&str]) -> Authenticator {
        let store = berth_store::SqliteStore::open_in_memory().await.unwrap();
        for username in users {
            let user = User {
                id: 0,
                username: (*username).into(),
                email: format!("{username}@example.com"),
                display_name: String::new(),
                is_admin: false,
                disabled: false,
                created_at: 0,
                updated_at: 0,
            };
            let hash = berth_auth::hash_password_with(
                &format!("{username}-password"),
                HashParams::INSECURE_FAST,
            );
            store.create_user(&user, &hash).await.unwrap();
        }
        Authenticator::new(Arc::new(store), HashParams::INSECURE_FAST)
    }

    async fn try_login(
        auth: &Authenticator,
        user: &str,
        password: &str,
        from: &str,
    ) -> &'static str {
        match auth
            .by_password(user, password, from, AuditSlot::default())
            .await
        {
            Ok(_) => "ok",
            Err(LoginError::Invalid) => "invalid",
            Err(LoginError::Locked(_)) => "locked",
            Err(LoginError::Store(error)) => panic!("{error}"),
        }
    }

    /// Five wrong passwords for ada from one address lock ada out from that address only:
    /// bob on the same address and ada elsewhere still log in.
    #[tokio::test]
    async fn one_users_failures_lock_only_that_user_from_that_address() {
        let auth = authenticator_with(&["ada", "bob"]).await;
        for _ in 0..5 {
            assert_eq!(
                try_login(&auth, "ada", "guess", "10.0.0.1").await,
                "invalid"
            );
        }
        assert_eq!(
            try_login(&auth, "ada", "ada-password", "10.0.0.1").await,
            "locked"
        );
        assert_eq!(
            try_login(&auth, "bob", "bob-password", "10.0.0.1").await,
            "ok"
        );
        assert_eq!(
            try_login(&auth, "ada", "ada-password", "10.0.0.2").await,
            "ok"
        );
    }

    /// Guessing across usernames from one address hits the address's own (higher) bound.
    #[tokio::test]
    async fn an_address_guessing_many_users_is_locked_out() {
        let auth = authenticator_with(&["bob"]).await;
        let per_address = LimiterConfig::per_address().max_failures;
        for i in 0..per_address {
            let outcome = try_login(&auth, &format!("user{i}"), "guess", "10.0.0.1").await;
            assert_eq!(outcome, "invalid", "attempt {i}");
        }
        assert_eq!(
            try_login(&auth, "bob", "bob-password", "10.0.0.1").await,
            "locked"
        );
        assert_eq!(
            try_login(&auth, "bob", "bob-password", "10.0.0.2").await,
            "ok"
        );
    }

    #[tokio::test]
    async fn registrations_are_limited_per_address() {
        let auth = authenticator_with(&[]).await;
        for i in 0..REGISTRATIONS_PER_HOUR {
            assert_eq!(
                auth.check_registration("10.0.0.1"),
                Ok(()),
                "registration {i}"
            );
            auth.record_registration("10.0.0.1");
        }
        let wait = auth.check_registration("10.0.0.1").unwrap_err();
        assert!(wait > Duration::from_secs(3500), "{wait:?}");
        assert_eq!(auth.check_registration("10.0.0.2"), Ok(()));
    }

    #[test]
    fn session_cookie_is_found_among_others() {
        let cases = [
            ("berth_session=abc", Some("abc")),
            ("theme=dark; berth_session=abc; lang=zh", Some("abc")),
            ("theme=dark;berth_session= abc ", Some("abc")),
            ("berth_session_x=abc", None),
            ("theme=dark", None),
            ("", None),
        ];
        for (cookie, want) in cases {
            let mut headers = HeaderMap::new();
            headers.insert(header::COOKIE, HeaderValue::from_str(cookie).unwrap());
            assert_eq!(session_cookie(&headers), want, "{cookie}");
        }
    }

    #[test]
    fn only_reads_skip_the_csrf_check() {
        let cases = [
            (Method::GET, true),
            (Method::HEAD, true),
            (Method::OPTIONS, true),
            (Method::POST, false),
            (Method::PUT, false),
            (Method::PATCH, false),
            (Method::DELETE, false),
        ];
        for (method, safe) in cases {
            assert_eq!(is_safe(&method), safe, "{method}");
        }
    }
}
