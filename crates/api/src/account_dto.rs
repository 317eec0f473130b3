//! Wire types of accounts: users, tokens, sessions, settings (see docs/ACCOUNTS-API.md).

use berth_core::accounts::{ApiToken, Membership, TokenScope, User};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A user as the API shows it (never the password hash).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UserDto {
    pub id: i64,
    pub username: String,
    pub email: String,
    pub display_name: String,
    pub is_admin: bool,
    pub disabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
    /// The user's teams and roles (only where the reader may see them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub teams: Vec<TeamRoleDto>,
}

impl From<&User> for UserDto {
    fn from(user: &User) -> Self {
        UserDto {
            id: user.id,
            username: user.username.clone(),
            email: user.email.clone(),
            display_name: user.display_name.clone(),
            is_admin: user.is_admin,
            disabled: user.disabled,
            created_at: user.created_at,
            updated_at: user.updated_at,
            teams: Vec::new(),
        }
    }
}

/// One team a user belongs to.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TeamRoleDto {
    pub team: String,
    /// `owner`, `member` or `viewer`.
    pub role: String,
}

impl From<&Membership> for TeamRoleDto {
    fn from(membership: &Membership) -> Self {
        TeamRoleDto {
            team: membership.team.clone(),
            role: membership.role.as_str().into(),
        }
    }
}

/// Self-registration, or an admin creating a user.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    pub username: String,
    pub email: String,
    pub password: String,
    #[serde(default)]
    pub display_name: Option<String>,
    /// Registration: a new team to create, with the registering user as its owner.
    #[serde(default)]
    pub team: Option<String>,
    /// Admins creating a user: make them a platform admin.
    #[serde(default)]
    pub is_admin: Option<bool>,
}

/// Username and password.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

/// A browser login's answer (the session itself travels in the `berth_session` cookie).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LoginResponse {
    pub user: UserDto,
    /// Send as `X-CSRF-Token` with every state-changing request.
    pub csrf_token: String,
    pub expires_at: i64,
}

/// Exchange a password for an API token (what `berth login` does).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenLoginRequest {
    pub username: String,
    pub password: String,
    /// What to call the token, e.g. the machine's name.
    pub name: String,
    /// Days until it expires; default: never.
    #[serde(default)]
    pub expires_in_days: Option<u32>,
}

/// A new API token of the caller.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTokenRequest {
    pub name: String,
    /// Days until it expires; default: never.
    #[serde(default)]
    pub expires_in_days: Option<u32>,
    /// What the token may do: `full` (the default: everything the caller may) or `metrics`
    /// (only `GET /metrics`; admins only). Read as a string so that an unknown scope is a 400
    /// naming `scope`.
    #[serde(default)]
    #[schema(value_type = Option<TokenScopeDto>)]
    pub scope: Option<String>,
}

/// What an API token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TokenScopeDto {
    /// Everything its user may do.
    Full,
    /// Only `GET /metrics`.
    Metrics,
}

impl From<TokenScope> for TokenScopeDto {
    fn from(scope: TokenScope) -> Self {
        match scope {
            TokenScope::Full => TokenScopeDto::Full,
            TokenScope::Metrics => TokenScopeDto::Metrics,
        }
    }
}

/// An API token as listed (the secret is never shown again).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TokenDto {
    pub id: i64,
    pub name: String,
    /// The token's first characters, to tell tokens apart.
    pub prefix: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub revoked: bool,
    pub scope: TokenScopeDto,
}

impl From<&ApiToken> for TokenDto {
    fn from(token: &ApiToken) -> Self {
        TokenDto {
            id: token.id,
            name: token.name.clone(),
            prefix: token.prefix.clone(),
            created_at: token.created_at,
            expires_at: token.expires_at,
            last_used_at: token.last_used_at,
            revoked: token.revoked,
            scope: token.scope.into(),
        }
    }
}

/// A token just made: the only time its secret is shown.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NewTokenDto {
    pub token: String,
    pub info: TokenDto,
}

/// Who the caller is.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MeDto {
    pub user: UserDto,
    pub teams: Vec<TeamRoleDto>,
    /// `token` or `session`.
    pub auth: String,
    /// The session's CSRF token (session auth only).
    pub csrf_token: Option<String>,
    /// The id of the API token in use (token auth only), e.g. to revoke it at logout.
    #[serde(default)]
    pub token_id: Option<i64>,
}

/// Profile changes; absent fields stay as they are.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserChanges {
    pub email: Option<String>,
    pub display_name: Option<String>,
    /// Admins only.
    pub is_admin: Option<bool>,
}

/// A password change.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    pub current_password: String,
    pub new_password: String,
    /// Also revoke every API token of the caller (the one in use too).
    #[serde(default)]
    pub revoke_tokens: bool,
}

/// Closing one's own account needs the password again.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CloseAccount {
    pub password: String,
}

/// Server settings changed at run time.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsDto {
    /// Whether anyone may register; when false only admins create users.
    pub registration_open: bool,
}
