//! API tokens: `berth_` followed by 40 random base62 characters (~238 bits). The plaintext is
//! shown once; the store keeps only its SHA-256, which is enough because the token is random
//! (no slow hash needed), and lets a lookup be one indexed equality query.

use rand::Rng;
use rand::distr::Alphanumeric;
use sha2::{Digest, Sha256};

/// What every Berth token starts with (also lets secret scanners recognize leaked ones).
pub const TOKEN_PREFIX: &str = "berth_";
/// Random characters after [`TOKEN_PREFIX`].
const RANDOM_LEN: usize = 40;
/// Random characters kept in the displayed prefix.
const SHOWN_LEN: usize = 8;

/// A freshly made token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewToken {
    /// The secret, to show to the user exactly once.
    pub plaintext: String,
    /// [`token_hash`] of the secret: what the store keeps.
    pub hash: String,
    /// [`token_prefix`] of the secret: what listings show.
    pub prefix: String,
}

/// Makes a new random token.
pub fn new_token() -> NewToken {
    // The thread RNG is a CSPRNG seeded from the OS; Alphanumeric samples 62 symbols uniformly.
    let random: String = rand::rng()
        .sample_iter(&Alphanumeric)
        .take(RANDOM_LEN)
        .map(char::from)
        .collect();
    let plaintext = format!("{TOKEN_PREFIX}{random}");
    NewToken {
        hash: token_hash(&plaintext),
        prefix: token_prefix(&plaintext).to_string(),
        plaintext,
    }
}

/// Lowercase hex SHA-256 of `token`, as stored.
pub fn token_hash(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    let mut hex = String::with_capacity(64);
    for byte in digest {
        hex.push(char::from_digit(u32::from(byte >> 4), 16).expect("nibble"));
        hex.push(char::from_digit(u32::from(byte & 0xf), 16).expect("nibble"));
    }
    hex
}

/// The part of a token listings show: [`TOKEN_PREFIX`] plus the first 8 random characters (or
/// less when `token` is shorter).
pub fn token_prefix(token: &str) -> &str {
    let end = token
        .char_indices()
        .nth(TOKEN_PREFIX.len() + SHOWN_LEN)
        .map_or(token.len(), |(i, _)| i);
    &token[..end]
}

/// Whether `s` has the shape of a Berth token; lets callers refuse garbage without a lookup.
pub fn looks_like_token(s: &str) -> bool {
    s.strip_prefix(TOKEN_PREFIX).is_some_and(|rest| {
        rest.len() == RANDOM_LEN && rest.bytes().all(|b| b.is_ascii_alphanumeric())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_tokens_are_well_formed_and_distinct() {
        let a = new_token();
        let b = new_token();
        assert_ne!(a.plaintext, b.plaintext);
        assert_ne!(a.hash, b.hash);
        for t in [&a, &b] {
            assert!(looks_like_token(&t.plaintext), "{}", t.plaintext);
            assert_eq!(t.plaintext.len(), TOKEN_PREFIX.len() + RANDOM_LEN);
            assert_eq!(t.hash, token_hash(&t.plaintext));
            assert_eq!(t.hash.len(), 64);
            assert_eq!(t.prefix.len(), TOKEN_PREFIX.len() + SHOWN_LEN);
            assert!(t.plaintext.starts_with(&t.prefix));
        }
    }

    #[test]
    fn hash_is_sha256_hex() {
        assert_eq!(
            token_hash(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn shapes() {
        let good = format!("berth_{}", "aZ0".repeat(13) + "x");
        let cases = [
            (good.as_str(), true),
            ("berth_", false),
            ("berth_short", false),
            (&good[1..], false),
            (&format!("{good}x"), false),
            (&good.replace('x', "-"), false),
            (&good.replace("berth_", "Berth_"), false),
        ];
        for (s, want) in cases {
            assert_eq!(looks_like_token(s), want, "{s:?}");
        }
        assert_eq!(token_prefix(&good), "berth_aZ0aZ0aZ");
        assert_eq!(token_prefix("berth"), "berth");
        assert_eq!(token_prefix("berth_éé"), "berth_éé");
    }
}
