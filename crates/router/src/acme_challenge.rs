//! ACME HTTP-01 challenge answers: the key authorizations an issuance in progress publishes, by
//! token, answered by the plain-HTTP listener at `/.well-known/acme-challenge/<token>` for any
//! host, before routing.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};

/// The path prefix ACME servers fetch HTTP-01 challenges from (RFC 8555 §8.3).
pub const ACME_CHALLENGE_PREFIX: &str = "/.well-known/acme-challenge/";

/// The longest token accepted. RFC 8555 tokens carry at least 128 bits (22 base64url
/// characters); real ones are about 43.
pub const MAX_TOKEN_LEN: usize = 128;

/// The challenges currently published; cheap to clone (shared).
#[derive(Clone, Default)]
pub struct AcmeChallenges {
    by_token: Arc<RwLock<HashMap<String, String>>>,
}

impl fmt::Debug for AcmeChallenges {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Key authorizations are not secrets, but they are noise in logs.
        f.debug_struct("AcmeChallenges")
            .field("published", &self.len())
            .finish()
    }
}

/// A token or key authorization that is not what an ACME server sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidChallenge(pub &'static str);

impl fmt::Display for InvalidChallenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for InvalidChallenge {}

/// Whether `token` is 1 to [`MAX_TOKEN_LEN`] base64url characters (no padding): the only tokens
/// ever looked up or published, so a path can never smuggle anything else in.
pub fn is_valid_token(token: &str) -> bool {
    !token.is_empty()
        && token.len() <= MAX_TOKEN_LEN
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl AcmeChallenges {
    pub fn new() -> AcmeChallenges {
        AcmeChallenges::default()
    }

    /// Answers `token` with `key_authorization` (`<token>.<account key thumbprint>`) until
    /// withdrawn.
    pub fn publish(&self, token: &str, key_authorization: &str) -> Result<(), InvalidChallenge> {
        if !is_valid_token(token) {
            return Err(InvalidChallenge(
                "an ACME token is 1 to 128 base64url characters",
            ));
        }
        let valid_authorization = key_authorization
            .split_once('.')
            .is_some_and(|(prefix, thumbprint)| prefix == token && is_valid_token(thumbprint));
        if !valid_authorization {
            return Err(InvalidChallenge(
                "a key authorization is the token, a dot and a base64url thumbprint",
            ));
        }
        self.by_token
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(token.to_string(), key_authorization.to_string());
        Ok(())
    }

    /// Stops answering `token`.
    pub fn withdraw(&self, token: &str) {
        self.by_token
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(token);
    }

    /// The key authorization published for `token`; `None` for unknown and invalid tokens.
    pub fn key_authorization(&self, token: &str) -> Option<String> {
        if !is_valid_token(token) {
            return None;
        }
        self.by_token
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(token)
            .cloned()
    }

    /// How many tokens are published.
    pub fn len(&self) -> usize {
        self.by_token
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA";

    #[test]
    fn tokens_are_base64url_and_bounded() {
        let long = "a".repeat(MAX_TOKEN_LEN);
        let too_long = "a".repeat(MAX_TOKEN_LEN + 1);
        let cases: &[(&str, bool)] = &[
            (TOKEN, true),
            ("a", true),
            ("A-_z09", true),
            (&long, true),
            (&too_long, false),
            ("", false),
            ("abc=", false),
            ("abc+def", false),
            ("abc/def", false),
            ("../etc/passwd", false),
            ("..", false),
            ("abc%2F", false),
            ("abc def", false),
            ("abc\0", false),
            ("abc\r\nx: y", false),
            ("tökén", false),
            ("abc?x=1", false),
        ];
        for (token, want) in cases {
            assert_eq!(is_valid_token(token), *want, "{token:?}");
        }
    }

    #[test]
    fn publish_refuses_what_an_acme_server_never_sends() {
        let challenges = AcmeChallenges::new();
        let cases: &[(&str, &str, bool)] = &[
            (TOKEN, &format!("{TOKEN}.thumbprint_-1"), true),
            ("", ".thumbprint", false),
            ("a/b", "a/b.thumbprint", false),
            (TOKEN, TOKEN, false),
            (TOKEN, &format!("{TOKEN}."), false),
            (TOKEN, "other.thumbprint", false),
            (TOKEN, &format!("{TOKEN}.thumb.print"), false),
            (TOKEN, &format!("{TOKEN}.thumb<script>"), false),
        ];
        for (token, authorization, want) in cases {
            assert_eq!(
                challenges.publish(token, authorization).is_ok(),
                *want,
                "{token:?} {authorization:?}"
            );
        }
        assert_eq!(challenges.len(), 1);
    }

    #[test]
    fn published_tokens_are_answered_until_withdrawn() {
        let challenges = AcmeChallenges::new();
        let shared = challenges.clone();
        let authorization = format!("{TOKEN}.thumbprint");
        challenges.publish(TOKEN, &authorization).unwrap();
        assert_eq!(shared.key_authorization(TOKEN), Some(authorization));
        assert_eq!(shared.key_authorization("other"), None);
        assert_eq!(shared.key_authorization(""), None);
        assert_eq!(shared.key_authorization(&format!("{TOKEN}/")), None);
        challenges.withdraw(TOKEN);
        assert_eq!(shared.key_authorization(TOKEN), None);
        assert!(shared.is_empty());
    }
}
