//! Handlers for accounts: registration, login and logout (sessions), API tokens, one's own
//! profile and password, closing an account; admins managing users and settings; and the
//! first admin made from the first-start secret.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use berth_core::Millis;
use berth_core::accounts::{
    ApiToken, Membership, TeamRole, TokenScope, User, may_create_scope, normalize_email,
    validate_new_token, validate_password, validate_registration, validate_user,
};
use berth_core::session::Session;
use berth_core::team::Team;
use berth_core::validate::validate_name;
use berth_store::{Store, StoreError, StoreResult};

use crate::ApiState;
use crate::account_dto::{
    CloseAccount, LoginRequest, LoginResponse, MeDto, NewTokenDto, NewTokenRequest, PasswordChange,
    RegisterRequest, SettingsDto, TeamRoleDto, TokenDto, TokenLoginRequest, UserChanges, UserDto,
};
use crate::audit::RequestAudit;
use crate::auth::{AuthMethod, Authenticator, Principal, SESSION_COOKIE};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath as Path, ClientAddr};

/// The settings key of self-registration.
const REGISTRATION_OPEN: &str = "registration_open";
/// The first admin's username.
pub const FIRST_ADMIN: &str = "admin";
const DAY_MS: Millis = 24 * 60 * 60 * 1000;

/// Makes the first admin on a server without users: user `admin`, whose password and first
/// API token are both `secret` (the first-start secret in `<data-dir>/admin-token`). Returns
/// whether it was made.
pub async fn bootstrap_first_admin(
    store: &dyn Store,
    auth: &Authenticator,
    secret: &str,
    now: Millis,
) -> StoreResult<bool> {
    if !store.list_users().await?.is_empty() {
        return Ok(false);
    }
    let user = User {
        id: 0,
        username: FIRST_ADMIN.into(),
        email: "admin@berth.local".into(),
        display_name: "Administrator".into(),
        is_admin: true,
        disabled: false,
        created_at: now,
        updated_at: now,
    };
    let user = match store
        .create_user(&user, &auth.hash_password(secret).await)
        .await
    {
        Ok(user) => user,
        // Another server of the installation made the first admin at the same moment.
        Err(StoreError::Conflict(_)) => return Ok(false),
        Err(error) => return Err(error),
    };
    let token = ApiToken {
        id: 0,
        user_id: user.id,
        name: "first-start secret".into(),
        prefix: berth_auth::token_prefix(secret).chars().take(10).collect(),
        expires_at: None,
        last_used_at: None,
        created_at: now,
        revoked: false,
        scope: TokenScope::Full,
    };
    store
        .create_api_token(&token, &berth_auth::token_hash(secret))
        .await?;
    Ok(true)
}

/// Validation problems of account input are about fields, not specs.
fn invalid(errors: berth_core::ValidationErrors) -> ApiError {
    let mut error = ApiError::from(errors);
    error.code = "invalid_field";
    error
}

/// Whether self-registration is open (it is until an admin closes it).
async fn registration_open(store: &dyn Store) -> StoreResult<bool> {
    Ok(store.get_setting(REGISTRATION_OPEN).await?.as_deref() != Some("false"))
}

fn new_user(request: &RegisterRequest, now: Millis) -> User {
    User {
        id: 0,
        username: request.username.trim().to_string(),
        email: normalize_email(&request.email),
        display_name: request
            .display_name
            .clone()
            .unwrap_or_default()
            .trim()
            .to_string(),
        is_admin: request.is_admin.unwrap_or(false),
        disabled: false,
        created_at: now,
        updated_at: now,
    }
}

fn taken(error: StoreError, what: &str) -> ApiError {
    match error {
        StoreError::Conflict(_) => ApiError::conflict("conflict", format!("{what} is taken")),
        other => other.into(),
    }
}

/// Validates and stores a new user (and the new team they own, when given).
async fn create_account(state: &ApiState, request: &RegisterRequest) -> ApiResult<User> {
    let now = (state.clock)();
    let user = new_user(request, now);
    validate_registration(&user, &request.password).map_err(invalid)?;
    if let Some(team) = &request.team {
        validate_name("team", team).map_err(invalid)?;
        if team == crate::team_dto::BUILTIN_TEAM || state.store.get_team(team).await?.is_some() {
            return Err(ApiError::conflict(
                "conflict",
                format!("team {team} exists; ask one of its owners to add you"),
            ));
        }
    }
    let hash = state.auth.hash_password(&request.password).await;
    let user = state
        .store
        .create_user(&user, &hash)
        .await
        .map_err(|e| taken(e, "the username or the email"))?;
    if let Some(team) = &request.team {
        let created = state
            .store
            .create_team(&Team {
                name: team.clone(),
                display_name: String::new(),
                quota: state.default_quota,
                created_at: now,
                updated_at: now,
            })
            .await;
        if let Err(error) = created {
            let _ = state.store.delete_user(user.id).await;
            return Err(taken(error, &format!("team {team}")));
        }
        state
            .store
            .put_membership(&Membership {
                team: team.clone(),
                user_id: user.id,
                role: TeamRole::Owner,
            })
            .await?;
    }
    Ok(user)
}

/// Register an account (when self-registration is open).
#[utoipa::path(post, path = "/api/v1/auth/register", tag = "accounts", security(()),
    request_body = RegisterRequest,
    responses((status = 201, body = UserDto), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn register(
    State(state): State<ApiState>,
    RequestAudit(audit): RequestAudit,
    ClientAddr(source): ClientAddr,
    ApiJson(request): ApiJson<RegisterRequest>,
) -> ApiResult<Response> {
    audit.set_object(format!("users/{}", request.username.trim()));
    if !registration_open(&*state.store).await? {
        return Err(ApiError::forbidden(
            "self-registration is closed; ask an admin for an account",
        )
        .with_code("registration_closed"));
    }
    if let Err(wait) = state.auth.check_registration(&source) {
        let seconds = wait.as_secs().max(1);
        let mut error = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_attempts",
            format!(
                "too many accounts registered from this address ({} per hour); try again in {seconds} s",
                crate::auth::REGISTRATIONS_PER_HOUR
            ),
        );
        error.retry_after = Some(seconds);
        return Err(error);
    }
    if request.is_admin.is_some() {
        return Err(ApiError::field(
            "is_admin",
            "cannot be set when registering",
        ));
    }
    if let Some(team) = &request.team {
        audit.set_team(team);
    }
    let user = create_account(&state, &request).await?;
    state.auth.record_registration(&source);
    audit.set_actor(&user.username);
    Ok((StatusCode::CREATED, Json(UserDto::from(&user))).into_response())
}

fn session_cookie_header(state: &ApiState, value: &str, max_age_s: i64) -> String {
    let secure = if state.cookie_secure { "; Secure" } else { "" };
    format!(
        "{SESSION_COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age_s}{secure}"
    )
}

/// Checks a login's password (rate-limited); the audit record names the account tried, and
/// its actor only once the password proves it (a failed attempt stays anonymous).
async fn password_login(
    state: &ApiState,
    audit: crate::audit::AuditSlot,
    source: &str,
    username: &str,
    password: &str,
) -> ApiResult<Principal> {
    audit.set_object(format!("users/{username}"));
    Ok(state
        .auth
        .by_password(username, password, source, audit)
        .await?)
}

/// Log in with a password; the session travels in an HttpOnly cookie.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "accounts", security(()),
    request_body = LoginRequest,
    responses((status = 200, body = LoginResponse), (status = 401, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn login(
    State(state): State<ApiState>,
    RequestAudit(audit): RequestAudit,
    ClientAddr(source): ClientAddr,
    ApiJson(request): ApiJson<LoginRequest>,
) -> ApiResult<Response> {
    let principal =
        password_login(&state, audit, &source, &request.username, &request.password).await?;
    let now = (state.clock)();
    let secret = berth_auth::new_token().plaintext;
    let session = Session {
        user_id: principal.user.id,
        csrf_token: berth_auth::new_token().plaintext,
        created_at: now,
        expires_at: now + state.session_ttl_ms,
        last_seen_at: now,
        source,
    };
    state
        .store
        .create_session(&berth_auth::token_hash(&secret), &session)
        .await?;
    let cookie = session_cookie_header(&state, &secret, state.session_ttl_ms / 1000);
    let body = LoginResponse {
        user: UserDto::from(&principal.user),
        csrf_token: session.csrf_token,
        expires_at: session.expires_at,
    };
    Ok(([(header::SET_COOKIE, cookie)], Json(body)).into_response())
}

/// End the current session (a no-op for token callers) and clear the cookie.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "accounts",
    responses((status = 204), (status = 401, body = ErrorBody)))]
pub async fn logout(State(state): State<ApiState>, principal: Principal) -> ApiResult<Response> {
    if let AuthMethod::Session { session_hash, .. } = &principal.method {
        state.store.delete_session(session_hash).await?;
    }
    let cookie = session_cookie_header(&state, "", 0);
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, cookie)]).into_response())
}

fn expiry(now: Millis, days: Option<u32>) -> ApiResult<Option<Millis>> {
    match days {
        None => Ok(None),
        Some(0) => Err(ApiError::field("expires_in_days", "must be at least 1")),
        Some(days) if days > 3650 => {
            Err(ApiError::field("expires_in_days", "must be at most 3650"))
        }
        Some(days) => Ok(Some(now + Millis::from(days) * DAY_MS)),
    }
}

async fn issue_token(
    state: &ApiState,
    user: &User,
    name: &str,
    days: Option<u32>,
    scope: TokenScope,
) -> ApiResult<NewTokenDto> {
    let now = (state.clock)();
    let expires_at = expiry(now, days)?;
    validate_new_token(name, expires_at, now).map_err(invalid)?;
    let new = berth_auth::new_token();
    let token = ApiToken {
        id: 0,
        user_id: user.id,
        name: name.trim().to_string(),
        prefix: new.prefix.clone(),
        expires_at,
        last_used_at: None,
        created_at: now,
        revoked: false,
        scope,
    };
    let token = state.store.create_api_token(&token, &new.hash).await?;
    Ok(NewTokenDto {
        token: new.plaintext,
        info: TokenDto::from(&token),
    })
}

/// Exchange a username and password for a new API token (`berth login`).
#[utoipa::path(post, path = "/api/v1/auth/token", tag = "accounts", security(()),
    request_body = TokenLoginRequest,
    responses((status = 201, body = NewTokenDto), (status = 401, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn token_login(
    State(state): State<ApiState>,
    RequestAudit(audit): RequestAudit,
    ClientAddr(source): ClientAddr,
    ApiJson(request): ApiJson<TokenLoginRequest>,
) -> ApiResult<Response> {
    let principal =
        password_login(&state, audit, &source, &request.username, &request.password).await?;
    let token = issue_token(
        &state,
        &principal.user,
        &request.name,
        request.expires_in_days,
        TokenScope::Full,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(token)).into_response())
}

async fn teams_of(store: &dyn Store, user_id: i64) -> ApiResult<Vec<TeamRoleDto>> {
    Ok(store
        .list_memberships_of_user(user_id)
        .await?
        .iter()
        .map(TeamRoleDto::from)
        .collect())
}

/// Who the caller is, their teams, and (for sessions) the CSRF token.
#[utoipa::path(get, path = "/api/v1/me", tag = "accounts",
    responses((status = 200, body = MeDto), (status = 401, body = ErrorBody)))]
pub async fn me(State(state): State<ApiState>, principal: Principal) -> ApiResult<Json<MeDto>> {
    let (auth, csrf_token, token_id) = match &principal.method {
        AuthMethod::Session { csrf_token, .. } => ("session", Some(csrf_token.clone()), None),
        AuthMethod::Token { id } => ("token", None, Some(*id)),
        AuthMethod::Password => ("password", None, None),
    };
    Ok(Json(MeDto {
        user: UserDto::from(&principal.user),
        teams: teams_of(&*state.store, principal.user.id).await?,
        auth: auth.into(),
        csrf_token,
        token_id,
    }))
}

/// Applies profile changes to `user` and stores them.
async fn apply_changes(state: &ApiState, mut user: User, changes: &UserChanges) -> ApiResult<User> {
    if let Some(email) = &changes.email {
        user.email = normalize_email(email);
    }
    if let Some(display_name) = &changes.display_name {
        user.display_name = display_name.trim().to_string();
    }
    if let Some(is_admin) = changes.is_admin {
        user.is_admin = is_admin;
    }
    validate_user(&user).map_err(invalid)?;
    user.updated_at = (state.clock)();
    state
        .store
        .update_user(&user)
        .await
        .map_err(|e| taken(e, "the email"))?;
    Ok(user)
}

/// Change one's own email or display name.
#[utoipa::path(patch, path = "/api/v1/me", tag = "accounts", request_body = UserChanges,
    responses((status = 200, body = UserDto), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn update_me(
    State(state): State<ApiState>,
    principal: Principal,
    ApiJson(changes): ApiJson<UserChanges>,
) -> ApiResult<Json<UserDto>> {
    if changes.is_admin.is_some() {
        return Err(ApiError::field(
            "is_admin",
            "only another admin can change it",
        ));
    }
    principal
        .audit
        .set_object(format!("users/{}", principal.username()));
    let user = apply_changes(&state, principal.user.clone(), &changes).await?;
    Ok(Json(UserDto::from(&user)))
}

/// Change one's password (the current one is required); every other session ends, with
/// `revoke_tokens` every API token too. The first admin's first change retires the
/// first-start secret (its token is revoked and `<data-dir>/admin-token` removed).
#[utoipa::path(post, path = "/api/v1/me/password", tag = "accounts", request_body = PasswordChange,
    responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn change_password(
    State(state): State<ApiState>,
    principal: Principal,
    ClientAddr(source): ClientAddr,
    ApiJson(change): ApiJson<PasswordChange>,
) -> ApiResult<StatusCode> {
    principal
        .audit
        .set_object(format!("users/{}", principal.username()));
    recheck_password(
        &state,
        &principal,
        &change.current_password,
        &source,
        "current_password",
    )
    .await?;
    validate_password(&principal.user, &change.new_password).map_err(|errors| {
        let mut error = invalid(errors);
        error.field = Some("new_password".into());
        error.message = error.message.replacen("password", "new_password", 1);
        error
    })?;
    let hash = state.auth.hash_password(&change.new_password).await;
    let now = (state.clock)();
    state
        .store
        .set_password_hash(principal.user.id, &hash, now)
        .await?;
    state.auth.forget_user(principal.user.id);
    let current = match &principal.method {
        AuthMethod::Session { session_hash, .. } => state
            .store
            .find_session(session_hash)
            .await?
            .map(|s| (session_hash.clone(), s)),
        _ => None,
    };
    state
        .store
        .delete_sessions_of_user(principal.user.id)
        .await?;
    if let Some((hash, session)) = current {
        state.store.create_session(&hash, &session).await?;
    }
    if change.revoke_tokens {
        let revoked = state.store.revoke_all_api_tokens(principal.user.id).await?;
        principal
            .audit
            .set_detail(format!("{revoked} API tokens revoked"));
    }
    retire_first_start_secret(&state, principal.user.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// After `user_id` set their own password: when the first-start secret is theirs (the first
/// admin), its token is revoked and its file removed, so the secret opens nothing any more.
async fn retire_first_start_secret(state: &ApiState, user_id: i64) -> ApiResult<()> {
    let Some(path) = &state.first_start_secret else {
        return Ok(());
    };
    let Ok(secret) = std::fs::read_to_string(path) else {
        return Ok(());
    };
    let secret = secret.trim();
    if secret.is_empty() {
        return Ok(());
    }
    let Some(token) = state
        .store
        .find_api_token(&berth_auth::token_hash(secret))
        .await?
    else {
        return Ok(());
    };
    if token.user_id != user_id {
        return Ok(());
    }
    state.store.revoke_api_token(user_id, token.id).await?;
    match std::fs::remove_file(path) {
        Ok(()) => tracing::info!(
            "the first admin set their own password: the first-start secret is retired and {} removed",
            path.display()
        ),
        Err(error) => {
            tracing::warn!(%error, "the first-start secret is retired (its token revoked) but {} could not be removed", path.display())
        }
    }
    Ok(())
}

/// Checks the caller's password again before a sensitive change.
async fn recheck_password(
    state: &ApiState,
    principal: &Principal,
    password: &str,
    source: &str,
    field: &str,
) -> ApiResult<()> {
    match state
        .auth
        .by_password(
            principal.username(),
            password,
            source,
            crate::audit::AuditSlot::default(),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(crate::auth::LoginError::Invalid) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            format!("{field}: wrong password"),
        )
        .with_field(field)),
        Err(other) => Err(other.into()),
    }
}

/// Refuses to leave the platform without an enabled admin.
async fn ensure_other_admin(state: &ApiState, leaving: &User) -> ApiResult<()> {
    if !leaving.is_admin || leaving.disabled {
        return Ok(());
    }
    let others = state
        .store
        .list_users()
        .await?
        .into_iter()
        .filter(|u| u.is_admin && !u.disabled && u.id != leaving.id)
        .count();
    if others == 0 {
        return Err(ApiError::conflict(
            "last_admin",
            format!(
                "{} is the last admin; make another admin first",
                leaving.username
            ),
        ));
    }
    Ok(())
}

/// Ends everything that lets `user` in, at once.
async fn cut_off(state: &ApiState, user_id: i64) -> ApiResult<()> {
    state.store.revoke_all_api_tokens(user_id).await?;
    state.store.delete_sessions_of_user(user_id).await?;
    state.auth.forget_user(user_id);
    Ok(())
}

/// Close one's own account (the password is required): sessions and tokens end at once; what
/// the user made stays with their teams.
#[utoipa::path(delete, path = "/api/v1/me", tag = "accounts", request_body = CloseAccount,
    responses((status = 204), (status = 401, body = ErrorBody), (status = 409, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn close_account(
    State(state): State<ApiState>,
    principal: Principal,
    ClientAddr(source): ClientAddr,
    ApiJson(request): ApiJson<CloseAccount>,
) -> ApiResult<StatusCode> {
    principal
        .audit
        .set_object(format!("users/{}", principal.username()));
    recheck_password(&state, &principal, &request.password, &source, "password").await?;
    ensure_other_admin(&state, &principal.user).await?;
    cut_off(&state, principal.user.id).await?;
    state.store.delete_user(principal.user.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller's API tokens, revoked ones included, with their last use.
#[utoipa::path(get, path = "/api/v1/me/tokens", tag = "accounts",
    responses((status = 200, body = [TokenDto])))]
pub async fn list_tokens(
    State(state): State<ApiState>,
    principal: Principal,
) -> ApiResult<Json<Vec<TokenDto>>> {
    let tokens = state.store.list_api_tokens(principal.user.id).await?;
    Ok(Json(tokens.iter().map(TokenDto::from).collect()))
}

/// The scope a token request asks for: `full` unless it names another; 400 naming `scope`
/// for an unknown one, 403 for a metrics token asked by a non-admin.
fn requested_scope(user: &User, scope: Option<&str>) -> ApiResult<TokenScope> {
    let scope = match scope {
        None => TokenScope::Full,
        Some(name) => TokenScope::parse(name).ok_or_else(|| {
            let names: Vec<&str> = TokenScope::ALL.iter().map(|s| s.as_str()).collect();
            ApiError::field("scope", format!("must be one of: {}", names.join(", ")))
        })?,
    };
    if !may_create_scope(user, scope) {
        return Err(ApiError::forbidden(format!(
            "only admins may make a token of scope '{}'",
            scope.as_str()
        )));
    }
    Ok(scope)
}

/// Make an API token; its secret is shown this once. `scope: metrics` makes a token that
/// may only read `GET /metrics` (admins only).
#[utoipa::path(post, path = "/api/v1/me/tokens", tag = "accounts", request_body = NewTokenRequest,
    responses((status = 201, body = NewTokenDto), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
pub async fn create_token(
    State(state): State<ApiState>,
    principal: Principal,
    ApiJson(request): ApiJson<NewTokenRequest>,
) -> ApiResult<Response> {
    let scope = requested_scope(&principal.user, request.scope.as_deref())?;
    let token = issue_token(
        &state,
        &principal.user,
        &request.name,
        request.expires_in_days,
        scope,
    )
    .await?;
    principal
        .audit
        .set_object(format!("tokens/{}", token.info.id));
    principal
        .audit
        .set_detail(format!("scope {}", scope.as_str()));
    Ok((StatusCode::CREATED, Json(token)).into_response())
}

/// Revoke one of the caller's tokens; it stops working at once.
#[utoipa::path(delete, path = "/api/v1/me/tokens/{id}", tag = "accounts",
    params(("id" = i64, Path, description = "Token id")),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn revoke_token(
    State(state): State<ApiState>,
    principal: Principal,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    if state.store.revoke_api_token(principal.user.id, id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("token {id}")))
    }
}

async fn user_named(state: &ApiState, username: &str) -> ApiResult<User> {
    state
        .store
        .get_user_by_username(username)
        .await?
        .map(|(user, _)| user)
        .ok_or_else(|| ApiError::not_found(format!("user {username}")))
}

async fn user_view(state: &ApiState, user: &User) -> ApiResult<UserDto> {
    let mut dto = UserDto::from(user);
    dto.teams = teams_of(&*state.store, user.id).await?;
    Ok(dto)
}

/// Every user (admins).
#[utoipa::path(get, path = "/api/v1/users", tag = "accounts",
    responses((status = 200, body = [UserDto]), (status = 403, body = ErrorBody)))]
pub async fn list_users(
    State(state): State<ApiState>,
    principal: Principal,
) -> ApiResult<Json<Vec<UserDto>>> {
    principal.require_admin()?;
    let users = state.store.list_users().await?;
    Ok(Json(users.iter().map(UserDto::from).collect()))
}

/// Create a user (admins; works while self-registration is closed).
#[utoipa::path(post, path = "/api/v1/users", tag = "accounts", request_body = RegisterRequest,
    responses((status = 201, body = UserDto), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create_user(
    State(state): State<ApiState>,
    principal: Principal,
    ApiJson(request): ApiJson<RegisterRequest>,
) -> ApiResult<Response> {
    principal.require_admin()?;
    principal
        .audit
        .set_object(format!("users/{}", request.username.trim()));
    let user = create_account(&state, &request).await?;
    Ok((StatusCode::CREATED, Json(user_view(&state, &user).await?)).into_response())
}

/// One user with their teams (admins, or the user themself).
#[utoipa::path(get, path = "/api/v1/users/{username}", tag = "accounts",
    params(("username" = String, Path)),
    responses((status = 200, body = UserDto), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_user(
    State(state): State<ApiState>,
    principal: Principal,
    Path(username): Path<String>,
) -> ApiResult<Json<UserDto>> {
    if username != principal.username() {
        principal.require_admin()?;
    }
    let user = user_named(&state, &username).await?;
    Ok(Json(user_view(&state, &user).await?))
}

/// Change a user's email, display name or admin flag (admins).
#[utoipa::path(patch, path = "/api/v1/users/{username}", tag = "accounts",
    params(("username" = String, Path)), request_body = UserChanges,
    responses((status = 200, body = UserDto), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn update_user(
    State(state): State<ApiState>,
    principal: Principal,
    Path(username): Path<String>,
    ApiJson(changes): ApiJson<UserChanges>,
) -> ApiResult<Json<UserDto>> {
    principal.require_admin()?;
    let user = user_named(&state, &username).await?;
    if changes.is_admin == Some(false) {
        ensure_other_admin(&state, &user).await?;
    }
    let user = apply_changes(&state, user, &changes).await?;
    Ok(Json(user_view(&state, &user).await?))
}

async fn set_disabled(
    state: &ApiState,
    principal: &Principal,
    username: &str,
    disabled: bool,
) -> ApiResult<Json<UserDto>> {
    principal.require_admin()?;
    let mut user = user_named(state, username).await?;
    if disabled {
        ensure_other_admin(state, &user).await?;
        cut_off(state, user.id).await?;
    }
    user.disabled = disabled;
    user.updated_at = (state.clock)();
    state.store.update_user(&user).await?;
    Ok(Json(user_view(state, &user).await?))
}

/// Disable a user: their sessions and tokens stop working at once (admins).
#[utoipa::path(post, path = "/api/v1/users/{username}/disable", tag = "accounts",
    params(("username" = String, Path)),
    responses((status = 200, body = UserDto), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn disable_user(
    State(state): State<ApiState>,
    principal: Principal,
    Path(username): Path<String>,
) -> ApiResult<Json<UserDto>> {
    set_disabled(&state, &principal, &username, true).await
}

/// Enable a disabled user again (they log in anew; old tokens stay revoked) (admins).
#[utoipa::path(post, path = "/api/v1/users/{username}/enable", tag = "accounts",
    params(("username" = String, Path)),
    responses((status = 200, body = UserDto), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn enable_user(
    State(state): State<ApiState>,
    principal: Principal,
    Path(username): Path<String>,
) -> ApiResult<Json<UserDto>> {
    set_disabled(&state, &principal, &username, false).await
}

/// Delete a user; what they made stays with their teams (admins).
#[utoipa::path(delete, path = "/api/v1/users/{username}", tag = "accounts",
    params(("username" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete_user(
    State(state): State<ApiState>,
    principal: Principal,
    Path(username): Path<String>,
) -> ApiResult<StatusCode> {
    principal.require_admin()?;
    let user = user_named(&state, &username).await?;
    ensure_other_admin(&state, &user).await?;
    cut_off(&state, user.id).await?;
    state.store.delete_user(user.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The server's run-time settings.
#[utoipa::path(get, path = "/api/v1/settings", tag = "accounts",
    responses((status = 200, body = SettingsDto)))]
pub async fn get_settings(
    State(state): State<ApiState>,
    _principal: Principal,
) -> ApiResult<Json<SettingsDto>> {
    Ok(Json(SettingsDto {
        registration_open: registration_open(&*state.store).await?,
    }))
}

/// Change the run-time settings (admins).
#[utoipa::path(put, path = "/api/v1/settings", tag = "accounts", request_body = SettingsDto,
    responses((status = 200, body = SettingsDto), (status = 403, body = ErrorBody)))]
pub async fn put_settings(
    State(state): State<ApiState>,
    principal: Principal,
    ApiJson(settings): ApiJson<SettingsDto>,
) -> ApiResult<Json<SettingsDto>> {
    principal.require_admin()?;
    principal.audit.set_object("settings");
    principal
        .audit
        .set_detail(format!("registration_open={}", settings.registration_open));
    state
        .store
        .put_setting(
            REGISTRATION_OPEN,
            if settings.registration_open {
                "true"
            } else {
                "false"
            },
            (state.clock)(),
        )
        .await?;
    Ok(Json(settings))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use berth_store::prelude::*;

    use super::*;

    /// Two servers starting at the same moment on one empty store: one makes the first admin,
    /// the other is told so instead of failing.
    #[tokio::test]
    async fn two_first_starts_at_once_make_one_admin() {
        let store = Arc::new(berth_store::SqliteStore::open_in_memory().await.unwrap());
        let auth = Authenticator::new(store.clone(), berth_auth::HashParams::INSECURE_FAST);
        let (one, two) = tokio::join!(
            bootstrap_first_admin(&*store, &auth, "berth_first-secret-one", 1),
            bootstrap_first_admin(&*store, &auth, "berth_first-secret-two", 1),
        );
        let made = [one.unwrap(), two.unwrap()];
        assert_eq!(made.iter().filter(|made| **made).count(), 1, "{made:?}");
        assert_eq!(store.list_users().await.unwrap().len(), 1);
        // Later starts make none.
        assert!(
            !bootstrap_first_admin(&*store, &auth, "berth_later", 2)
                .await
                .unwrap()
        );
    }
}
