//! Accounts: users, team roles and what each role may do, API token records, and the
//! validation of account input (usernames, emails, display names, password policy).
//!
//! Pure like the rest of the core: hashing and token generation live in `berth-auth`, storage
//! in `berth-store`. Every time is an injected [`Millis`].

use serde::{Deserialize, Serialize};

use crate::Millis;
use crate::validate::ValidationErrors;

/// Shortest username.
pub const MIN_USERNAME_LEN: usize = 3;
/// Longest username.
pub const MAX_USERNAME_LEN: usize = 32;
/// Longest email address (RFC 5321 path limit).
pub const MAX_EMAIL_LEN: usize = 254;
/// Longest display name, in characters.
pub const MAX_DISPLAY_NAME_LEN: usize = 100;
/// Shortest password, in characters.
pub const MIN_PASSWORD_LEN: usize = 10;
/// Longest password, in characters: bounds the work one login attempt can cause.
pub const MAX_PASSWORD_LEN: usize = 1024;
/// Longest API token name, in characters.
pub const MAX_TOKEN_NAME_LEN: usize = 64;

/// A person (or robot) who can log in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Assigned by the store; never reused after a deletion.
    pub id: i64,
    /// Login name: immutable once created (audit records and tokens refer to it).
    pub username: String,
    pub email: String,
    /// Free text shown in the console; may be empty (then the username is shown).
    pub display_name: String,
    /// Platform administrator: may do everything in every team.
    pub is_admin: bool,
    /// A disabled user can neither log in nor use any token.
    pub disabled: bool,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// A user's role in one team.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TeamRole {
    /// Everything a member can do, plus managing members and the team itself.
    Owner,
    /// Deploys and operates the team's apps, pushes images, files quota requests.
    Member,
    /// Reads everything of the team, changes nothing.
    Viewer,
}

/// Every role, most powerful first.
pub const ALL_TEAM_ROLES: [TeamRole; 3] = [TeamRole::Owner, TeamRole::Member, TeamRole::Viewer];

/// Something a user may try to do within a team.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TeamAction {
    /// List and read apps, revisions, events, logs, metrics, images, templates, quotas.
    Read,
    /// Create, deploy, scale, roll back and delete apps.
    Deploy,
    /// Run a command inside an instance.
    Exec,
    /// Push to (and delete from) the team's registry repositories and git remotes.
    PushImage,
    /// Create, change and delete the team's deployment templates.
    ManageTemplates,
    /// Ask the platform admins for more quota.
    RequestQuota,
    /// Add, remove and change the roles of the team's members.
    ManageMembers,
    /// Rename or delete the team, see its audit log.
    ManageTeam,
}

/// Every action, for table-driven checks.
pub const ALL_TEAM_ACTIONS: [TeamAction; 8] = [
    TeamAction::Read,
    TeamAction::Deploy,
    TeamAction::Exec,
    TeamAction::PushImage,
    TeamAction::ManageTemplates,
    TeamAction::RequestQuota,
    TeamAction::ManageMembers,
    TeamAction::ManageTeam,
];

impl TeamRole {
    pub fn as_str(self) -> &'static str {
        match self {
            TeamRole::Owner => "owner",
            TeamRole::Member => "member",
            TeamRole::Viewer => "viewer",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        ALL_TEAM_ROLES.iter().copied().find(|r| r.as_str() == s)
    }

    /// Whether this role may do `action` in its team. Exhaustive on purpose: a new action must
    /// be placed for every role, it is never allowed by default.
    pub fn allows(self, action: TeamAction) -> bool {
        use TeamAction::*;
        match self {
            TeamRole::Owner => true,
            TeamRole::Member => match action {
                Read | Deploy | Exec | PushImage | ManageTemplates | RequestQuota => true,
                ManageMembers | ManageTeam => false,
            },
            TeamRole::Viewer => match action {
                Read => true,
                Deploy | Exec | PushImage | ManageTemplates | RequestQuota | ManageMembers
                | ManageTeam => false,
            },
        }
    }
}

/// The whole decision for one request: a disabled user may do nothing, an admin everything,
/// anyone else what their role in the team (`None`: not a member) allows.
pub fn authorize(user: &User, role: Option<TeamRole>, action: TeamAction) -> bool {
    if user.disabled {
        return false;
    }
    if user.is_admin {
        return true;
    }
    role.is_some_and(|r| r.allows(action))
}

/// One user's role in one team.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    pub team: String,
    pub user_id: i64,
    pub role: TeamRole,
}

/// An API token as stored and listed. The secret itself is never stored, only its hash (kept
/// by the store, not in this type).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiToken {
    /// Assigned by the store.
    pub id: i64,
    pub user_id: i64,
    /// What the user called it, e.g. "laptop" or "ci".
    pub name: String,
    /// The token's visible beginning (`berth_` and its first 8 random characters), shown in
    /// listings so a user can tell tokens apart; far too short to guess the rest from.
    pub prefix: String,
    /// `None`: never expires.
    pub expires_at: Option<Millis>,
    pub last_used_at: Option<Millis>,
    pub created_at: Millis,
    pub revoked: bool,
    /// What the token may do: everything its user may, or only read `/metrics`.
    pub scope: TokenScope,
}

/// What an API token may be used for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenScope {
    /// Everything its user may do (every token made before scopes existed).
    #[default]
    Full,
    /// Only `GET /metrics`: what a Prometheus server holds, so a leaked scrape credential
    /// reads numbers and changes nothing. Only admins make them (the metrics show every
    /// team's apps).
    Metrics,
}

impl TokenScope {
    /// Every scope, in the order listings and error messages give them.
    pub const ALL: [TokenScope; 2] = [TokenScope::Full, TokenScope::Metrics];

    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenScope::Full => "full",
            TokenScope::Metrics => "metrics",
        }
    }

    /// The scope called `name`, or `None`.
    pub fn parse(name: &str) -> Option<TokenScope> {
        TokenScope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == name)
    }
}

impl ApiToken {
    /// Whether the token itself still admits its holder at `now` (not revoked, not expired).
    /// The caller must also check that the owning user is not disabled.
    pub fn is_usable(&self, now: Millis) -> bool {
        !self.revoked && self.expires_at.is_none_or(|at| now < at)
    }
}

/// Names no account may take: the registry's own pull credential, and the actor the audit log
/// records for unauthenticated attempts.
pub const RESERVED_USERNAMES: [&str; 4] = ["anonymous", "berth", "berth-system", "berth-builder"];

/// Why `username` is not acceptable, or `None` when it is.
pub fn username_problem(username: &str) -> Option<String> {
    if RESERVED_USERNAMES.contains(&username) {
        return Some("is reserved".into());
    }
    let len = username.chars().count();
    if len < MIN_USERNAME_LEN {
        return Some(format!("must be at least {MIN_USERNAME_LEN} characters"));
    }
    if len > MAX_USERNAME_LEN {
        return Some(format!("must be at most {MAX_USERNAME_LEN} characters"));
    }
    let allowed = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if !username
        .bytes()
        .all(|b| allowed(b) || matches!(b, b'.' | b'_' | b'-'))
    {
        return Some("may contain only lowercase letters, digits, '.', '_' and '-'".into());
    }
    if !allowed(username.as_bytes()[0]) {
        return Some("must start with a lowercase letter or a digit".into());
    }
    None
}

/// The form emails are stored and compared in: trimmed, lowercased. (Strictly the local part
/// is case-sensitive, but no mail system a company runs treats it so, and two accounts that
/// differ only in case are a phishing aid.)
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// Why `email` does not look like an address, or `None` when it does. A practical check, not
/// RFC 5322: the only proof of an address is a mail that arrives.
pub fn email_problem(email: &str) -> Option<String> {
    if email.is_empty() {
        return Some("must not be empty".into());
    }
    if email.len() > MAX_EMAIL_LEN {
        return Some(format!("must be at most {MAX_EMAIL_LEN} characters"));
    }
    if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Some("must not contain spaces or control characters".into());
    }
    let Some((local, domain)) = email.split_once('@') else {
        return Some("must contain '@'".into());
    };
    if domain.contains('@') {
        return Some("must contain exactly one '@'".into());
    }
    if local.is_empty() {
        return Some("needs a name before '@'".into());
    }
    if domain.is_empty() {
        return Some("needs a domain after '@'".into());
    }
    if !domain.contains('.')
        || domain.starts_with('.')
        || domain.ends_with('.')
        || domain.contains("..")
    {
        return Some("needs a domain such as example.com after '@'".into());
    }
    None
}

/// Why `display_name` is not acceptable, or `None` when it is. Empty is fine.
pub fn display_name_problem(display_name: &str) -> Option<String> {
    if display_name.chars().count() > MAX_DISPLAY_NAME_LEN {
        return Some(format!("must be at most {MAX_DISPLAY_NAME_LEN} characters"));
    }
    if display_name.chars().any(char::is_control) {
        return Some("must not contain control characters".into());
    }
    None
}

/// Why `password` breaks the password policy for the account `username`/`email`, or `None`.
pub fn password_problem(password: &str, username: &str, email: &str) -> Option<String> {
    let len = password.chars().count();
    if len < MIN_PASSWORD_LEN {
        return Some(format!("must be at least {MIN_PASSWORD_LEN} characters"));
    }
    if len > MAX_PASSWORD_LEN {
        return Some(format!("must be at most {MAX_PASSWORD_LEN} characters"));
    }
    let lower = password.to_lowercase();
    if lower == username.to_lowercase() || lower == email.trim().to_lowercase() {
        return Some("must differ from the username and the email".into());
    }
    let mut chars = password.chars();
    if let Some(first) = chars.next()
        && chars.all(|c| c == first)
    {
        return Some("must not repeat a single character".into());
    }
    None
}

/// Why `name` is not acceptable as an API token name, or `None` when it is.
pub fn token_name_problem(name: &str) -> Option<String> {
    if name.trim().is_empty() {
        return Some("must not be empty".into());
    }
    if name.chars().count() > MAX_TOKEN_NAME_LEN {
        return Some(format!("must be at most {MAX_TOKEN_NAME_LEN} characters"));
    }
    if name.chars().any(char::is_control) {
        return Some("must not contain control characters".into());
    }
    None
}

fn check(errors: &mut ValidationErrors, field: &str, problem: Option<String>) {
    if let Some(message) = problem {
        errors.push(field, message);
    }
}

/// Validates the profile fields of `user` (`username`, `email`, `display_name`), naming each
/// bad field. Expects the email already normalized ([`normalize_email`]).
pub fn validate_user(user: &User) -> Result<(), ValidationErrors> {
    let mut errors = ValidationErrors::default();
    check(&mut errors, "username", username_problem(&user.username));
    check(&mut errors, "email", email_problem(&user.email));
    check(
        &mut errors,
        "display_name",
        display_name_problem(&user.display_name),
    );
    errors.into_result()
}

/// Validates a new account: the profile as [`validate_user`] plus the password policy
/// (field `password`).
pub fn validate_registration(user: &User, password: &str) -> Result<(), ValidationErrors> {
    let mut errors = match validate_user(user) {
        Ok(()) => ValidationErrors::default(),
        Err(errors) => errors,
    };
    check(
        &mut errors,
        "password",
        password_problem(password, &user.username, &user.email),
    );
    errors.into_result()
}

/// Validates a password change for `user` (field `password`).
pub fn validate_password(user: &User, password: &str) -> Result<(), ValidationErrors> {
    let mut errors = ValidationErrors::default();
    check(
        &mut errors,
        "password",
        password_problem(password, &user.username, &user.email),
    );
    errors.into_result()
}

/// Validates a new API token: its name and, when given, an expiry after `now`.
/// Checks a new token's name and expiry. Who may make which scope is the caller's rule
/// ([`may_create_scope`]).
pub fn validate_new_token(
    name: &str,
    expires_at: Option<Millis>,
    now: Millis,
) -> Result<(), ValidationErrors> {
    let mut errors = ValidationErrors::default();
    check(&mut errors, "name", token_name_problem(name));
    if expires_at.is_some_and(|at| at <= now) {
        errors.push("expires_at", "must be in the future");
    }
    errors.into_result()
}

/// Whether `user` may make a token of `scope`: anyone a full one, only admins a metrics one
/// (a metrics token reads the apps of every team).
pub fn may_create_scope(user: &User, scope: TokenScope) -> bool {
    match scope {
        TokenScope::Full => true,
        TokenScope::Metrics => user.is_admin,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_scopes_round_trip_and_only_admins_make_metrics_tokens() {
        for scope in TokenScope::ALL {
            assert_eq!(TokenScope::parse(scope.as_str()), Some(scope));
        }
        assert_eq!(TokenScope::parse("Metrics"), None);
        assert_eq!(TokenScope::parse(""), None);
        assert_eq!(TokenScope::default(), TokenScope::Full);
        let mut member = user("ada", "ada@example.com");
        assert!(may_create_scope(&member, TokenScope::Full));
        assert!(!may_create_scope(&member, TokenScope::Metrics));
        member.is_admin = true;
        assert!(may_create_scope(&member, TokenScope::Metrics));
    }

    fn user(username: &str, email: &str) -> User {
        User {
            id: 0,
            username: username.into(),
            email: email.into(),
            display_name: "Ada Lovelace".into(),
            is_admin: false,
            disabled: false,
            created_at: 1,
            updated_at: 1,
        }
    }

    #[test]
    fn roles_round_trip() {
        for role in ALL_TEAM_ROLES {
            assert_eq!(TeamRole::parse(role.as_str()), Some(role));
        }
        assert_eq!(TeamRole::parse("Owner"), None);
        assert_eq!(TeamRole::parse("admin"), None);
        assert_eq!(TeamRole::parse(""), None);
    }

    #[test]
    fn role_permissions_table() {
        use TeamAction::*;
        // (action, owner, member, viewer)
        let table = [
            (Read, true, true, true),
            (Deploy, true, true, false),
            (Exec, true, true, false),
            (PushImage, true, true, false),
            (ManageTemplates, true, true, false),
            (RequestQuota, true, true, false),
            (ManageMembers, true, false, false),
            (ManageTeam, true, false, false),
        ];
        assert_eq!(
            table.len(),
            ALL_TEAM_ACTIONS.len(),
            "every action is listed"
        );
        for (action, owner, member, viewer) in table {
            assert_eq!(TeamRole::Owner.allows(action), owner, "owner {action:?}");
            assert_eq!(TeamRole::Member.allows(action), member, "member {action:?}");
            assert_eq!(TeamRole::Viewer.allows(action), viewer, "viewer {action:?}");
        }
    }

    #[test]
    fn authorize_table() {
        let plain = user("ada", "ada@example.com");
        let admin = User {
            is_admin: true,
            ..plain.clone()
        };
        let disabled_admin = User {
            disabled: true,
            ..admin.clone()
        };
        let disabled = User {
            disabled: true,
            ..plain.clone()
        };
        let deploy = TeamAction::Deploy;
        let cases = [
            (&plain, None, TeamAction::Read, false),
            (&plain, Some(TeamRole::Viewer), TeamAction::Read, true),
            (&plain, Some(TeamRole::Viewer), deploy, false),
            (&plain, Some(TeamRole::Member), deploy, true),
            (&admin, None, TeamAction::ManageTeam, true),
            (&disabled_admin, None, TeamAction::Read, false),
            (&disabled, Some(TeamRole::Owner), TeamAction::Read, false),
        ];
        for (i, (u, role, action, want)) in cases.into_iter().enumerate() {
            assert_eq!(authorize(u, role, action), want, "case {i}");
        }
    }

    #[test]
    fn token_usability() {
        let token = ApiToken {
            id: 1,
            user_id: 1,
            name: "ci".into(),
            prefix: "berth_abcdefgh".into(),
            expires_at: Some(100),
            last_used_at: None,
            created_at: 0,
            revoked: false,
            scope: TokenScope::Full,
        };
        let cases = [
            (false, Some(100), 99, true),
            (false, Some(100), 100, false),
            (false, None, i64::MAX, true),
            (true, None, 0, false),
            (true, Some(100), 50, false),
        ];
        for (revoked, expires_at, now, want) in cases {
            let t = ApiToken {
                revoked,
                expires_at,
                ..token.clone()
            };
            assert_eq!(t.is_usable(now), want, "{revoked} {expires_at:?} {now}");
        }
    }

    #[test]
    fn usernames() {
        let long = "a".repeat(MAX_USERNAME_LEN);
        let too_long = "a".repeat(MAX_USERNAME_LEN + 1);
        let cases: &[(&str, bool)] = &[
            ("ada", true),
            ("a.b", true),
            ("0day", true),
            ("ada_lovelace-1.2", true),
            (&long, true),
            (&too_long, false),
            ("ab", false),
            ("", false),
            ("Ada", false),
            ("_ada", false),
            (".ada", false),
            ("-ada", false),
            ("ada lovelace", false),
            ("ada@x", false),
            ("adé", false),
            ("ad\n", false),
            ("berth-system", false),
            ("anonymous", false),
            ("berth", false),
            ("berths", true),
        ];
        for (name, ok) in cases {
            assert_eq!(username_problem(name).is_none(), *ok, "{name:?}");
        }
    }

    #[test]
    fn emails() {
        let long = format!("{}@example.com", "a".repeat(MAX_EMAIL_LEN - 12));
        let too_long = format!("{}@example.com", "a".repeat(MAX_EMAIL_LEN - 11));
        let cases: &[(&str, bool)] = &[
            ("ada@example.com", true),
            ("ada+berth@mail.example.co.uk", true),
            ("a@b.c", true),
            (&long, true),
            (&too_long, false),
            ("", false),
            ("ada", false),
            ("ada@", false),
            ("@example.com", false),
            ("ada@localhost", false),
            ("ada@@example.com", false),
            ("a@b@example.com", false),
            ("ada @example.com", false),
            ("ada@exa mple.com", false),
            ("ada@.example.com", false),
            ("ada@example.com.", false),
            ("ada@example..com", false),
            ("ada@example.com\n", false),
        ];
        for (email, ok) in cases {
            assert_eq!(email_problem(email).is_none(), *ok, "{email:?}");
        }
        assert_eq!(normalize_email("  Ada@Example.COM "), "ada@example.com");
    }

    #[test]
    fn display_names() {
        let long = "é".repeat(MAX_DISPLAY_NAME_LEN);
        let too_long = "é".repeat(MAX_DISPLAY_NAME_LEN + 1);
        let cases: &[(&str, bool)] = &[
            ("", true),
            ("Ada Lovelace", true),
            ("Zoë 李", true),
            (&long, true),
            (&too_long, false),
            ("Ada\u{0}", false),
            ("Ada\nLovelace", false),
            ("\u{7f}", false),
        ];
        for (name, ok) in cases {
            assert_eq!(display_name_problem(name).is_none(), *ok, "{name:?}");
        }
    }

    #[test]
    fn password_policy() {
        let max = "ab".repeat(MAX_PASSWORD_LEN / 2);
        let too_long = format!("{max}c");
        let cases: &[(&str, bool)] = &[
            ("correct horse battery", true),
            ("0123456789", true),
            ("ééééééééé1", true),
            (&max, true),
            (&too_long, false),
            ("", false),
            ("short1234", false),
            ("aaaaaaaaaaaa", false),
            ("éééééééééééé", false),
            ("ada.lovelace", false),
            ("ADA.LOVELACE", false),
            ("ada@example.com", false),
            ("Ada@Example.com", false),
        ];
        for (password, ok) in cases {
            assert_eq!(
                password_problem(password, "ada.lovelace", "ada@example.com").is_none(),
                *ok,
                "{password:?}"
            );
        }
    }

    #[test]
    fn token_names_and_expiry() {
        let cases: &[(&str, Option<Millis>, Option<&str>)] = &[
            ("ci", None, None),
            ("laptop", Some(101), None),
            ("", None, Some("name")),
            ("   ", None, Some("name")),
            ("a\tb", None, Some("name")),
            ("ci", Some(100), Some("expires_at")),
            ("ci", Some(-5), Some("expires_at")),
        ];
        for (name, expires_at, field) in cases {
            let got = validate_new_token(name, *expires_at, 100)
                .err()
                .map(|e| e.first().unwrap().field.clone());
            assert_eq!(got.as_deref(), *field, "{name:?} {expires_at:?}");
        }
        let long = "x".repeat(MAX_TOKEN_NAME_LEN + 1);
        assert!(token_name_problem(&long).is_some());
    }

    #[test]
    fn registration_names_every_bad_field() {
        let cases: &[(&str, &str, &str, &str, &[&str])] = &[
            ("ada", "ada@example.com", "Ada", "a long passphrase", &[]),
            (
                "A",
                "ada@example.com",
                "Ada",
                "a long passphrase",
                &["username"],
            ),
            ("ada", "nope", "Ada", "a long passphrase", &["email"]),
            (
                "ada",
                "ada@example.com",
                "A\u{1b}",
                "a long passphrase",
                &["display_name"],
            ),
            ("ada", "ada@example.com", "Ada", "short", &["password"]),
            (
                "x",
                "y",
                "\n",
                "z",
                &["username", "email", "display_name", "password"],
            ),
        ];
        for (username, email, display_name, password, fields) in cases {
            let u = User {
                display_name: display_name.to_string(),
                ..user(username, email)
            };
            let got: Vec<String> = match validate_registration(&u, password) {
                Ok(()) => vec![],
                Err(e) => e.0.into_iter().map(|f| f.field).collect(),
            };
            assert_eq!(got, *fields, "{username:?}");
            let profile_ok = !fields.iter().any(|f| *f != "password");
            assert_eq!(validate_user(&u).is_ok(), profile_ok, "{username:?}");
        }
        let u = user("ada", "ada@example.com");
        assert!(validate_password(&u, "a long passphrase").is_ok());
        let err = validate_password(&u, "ada").unwrap_err();
        assert_eq!(err.first().unwrap().field, "password");
    }
}
