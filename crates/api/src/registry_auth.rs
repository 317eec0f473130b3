//! Who may use the built-in registry: until accounts exist, the admin (user `admin` with the
//! admin token as password, or the token as a bearer token); anonymous access is refused.

use async_trait::async_trait;
use berth_registry::{Access, AuthDecision, Authorizer, Credentials};

use crate::tokens_match;

/// The user name `docker login` takes for the admin.
pub const ADMIN_USER: &str = "admin";

/// Grants everything to the admin credential and nothing to anyone else.
pub struct AdminTokenAuthorizer {
    token: String,
}

impl AdminTokenAuthorizer {
    pub fn new(token: impl Into<String>) -> Self {
        AdminTokenAuthorizer {
            token: token.into(),
        }
    }
}

#[async_trait]
impl Authorizer for AdminTokenAuthorizer {
    async fn authorize(&self, credentials: Option<&Credentials>, _access: &Access) -> AuthDecision {
        let valid = match credentials {
            Some(Credentials::Basic { username, password }) => {
                username == ADMIN_USER && tokens_match(password.as_bytes(), self.token.as_bytes())
            }
            Some(Credentials::Bearer(token)) => {
                tokens_match(token.as_bytes(), self.token.as_bytes())
            }
            None => false,
        };
        if valid {
            AuthDecision::Allow
        } else {
            AuthDecision::Unauthenticated
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_registry::Action;

    #[tokio::test]
    async fn only_the_admin_credential_passes() {
        let auth = AdminTokenAuthorizer::new("s3cret");
        let access = Access {
            repository: Some("team/app".into()),
            action: Action::Push,
        };
        let basic = |u: &str, p: &str| Credentials::Basic {
            username: u.into(),
            password: p.into(),
        };
        let cases = [
            (Some(basic("admin", "s3cret")), true),
            (Some(basic("admin", "wrong")), false),
            (Some(basic("root", "s3cret")), false),
            (Some(Credentials::Bearer("s3cret".into())), true),
            (Some(Credentials::Bearer("nope".into())), false),
            (None, false),
        ];
        for (credentials, allowed) in cases {
            let decision = auth.authorize(credentials.as_ref(), &access).await;
            assert_eq!(
                matches!(decision, AuthDecision::Allow),
                allowed,
                "{credentials:?}"
            );
        }
    }
}
