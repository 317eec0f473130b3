//! Validated identifiers of the distribution protocol: repository names, tags, digests and
//! manifest references, with the grammars of the OCI Distribution Specification.
//!
//! Everything that reaches storage has been through one of these types, which is what keeps
//! path traversal (`../etc`) and other surprises out of the filesystem layout.

use std::fmt;

use sha2::{Digest as _, Sha256};

/// Longest repository name accepted (the spec's limit, including slashes).
pub const MAX_NAME_LEN: usize = 255;
/// Longest tag accepted.
pub const MAX_TAG_LEN: usize = 128;

/// Why an identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidIdentifier {
    /// The repository name does not match the OCI name grammar.
    #[error("invalid repository name {0:?}")]
    Name(String),
    /// The tag does not match `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
    #[error("invalid tag {0:?}")]
    Tag(String),
    /// The digest is malformed (or has the wrong length for its algorithm).
    #[error("invalid digest {0:?}")]
    Digest(String),
    /// The digest is well formed, but its algorithm is not one this registry implements.
    #[error("unsupported digest algorithm in {0:?}: only sha256 is supported")]
    UnsupportedDigest(String),
}

/// A repository name such as `team/app`, checked against
/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RepoName(String);

impl RepoName {
    /// Validates `name`.
    pub fn parse(name: &str) -> Result<Self, InvalidIdentifier> {
        if name.is_empty() || name.len() > MAX_NAME_LEN || !name.split('/').all(valid_component) {
            return Err(InvalidIdentifier::Name(name.to_owned()));
        }
        Ok(Self(name.to_owned()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first path component (`team` in `team/app`): the namespace that owns the repository.
    pub fn namespace(&self) -> &str {
        self.0.split('/').next().unwrap_or(&self.0)
    }
}

impl fmt::Display for RepoName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One path component: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) {
        return false;
    }
    let mut i = 0;
    loop {
        while i < b.len() && alnum(b[i]) {
            i += 1;
        }
        if i == b.len() {
            return true;
        }
        match b[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if i < b.len() && b[i] == b'_' {
                    i += 1;
                }
            }
            b'-' => {
                while i < b.len() && b[i] == b'-' {
                    i += 1;
                }
            }
            _ => return false,
        }
        // A separator must be followed by at least one alphanumeric character.
        if i == b.len() || !alnum(b[i]) {
            return false;
        }
    }
}

/// A tag: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tag(String);

impl Tag {
    /// Validates `tag`.
    pub fn parse(tag: &str) -> Result<Self, InvalidIdentifier> {
        let b = tag.as_bytes();
        let first_ok = b
            .first()
            .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_');
        let rest_ok = b
            .iter()
            .skip(1)
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'));
        if !first_ok || !rest_ok || b.len() > MAX_TAG_LEN {
            return Err(InvalidIdentifier::Tag(tag.to_owned()));
        }
        Ok(Self(tag.to_owned()))
    }

    /// The tag as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A content digest. Only `sha256:<64 lowercase hex>` is supported; other algorithms that
/// match the OCI digest grammar are refused as unsupported rather than invalid.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest(String);

impl Digest {
    /// Validates `s`.
    pub fn parse(s: &str) -> Result<Self, InvalidIdentifier> {
        let invalid = || InvalidIdentifier::Digest(s.to_owned());
        let (algorithm, encoded) = s.split_once(':').ok_or_else(invalid)?;
        if !valid_algorithm(algorithm)
            || encoded.is_empty()
            || !encoded
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'=' | b'_' | b'-'))
        {
            return Err(invalid());
        }
        if algorithm != "sha256" {
            return Err(InvalidIdentifier::UnsupportedDigest(s.to_owned()));
        }
        if encoded.len() != 64
            || !encoded
                .bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
        {
            return Err(invalid());
        }
        Ok(Self(s.to_owned()))
    }

    /// The digest of `data`.
    pub fn of(data: &[u8]) -> Self {
        Self::from_sha256(&Sha256::digest(data)[..])
    }

    /// Builds a digest from a finished SHA-256 hash.
    pub fn from_sha256(hash: &[u8]) -> Self {
        let mut s = String::with_capacity(7 + 64);
        s.push_str("sha256:");
        for byte in hash {
            s.push(char::from(HEX[usize::from(byte >> 4)]));
            s.push(char::from(HEX[usize::from(byte & 0xf)]));
        }
        Self(s)
    }

    /// `sha256:<hex>`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The algorithm (`sha256`).
    pub fn algorithm(&self) -> &str {
        self.0.split_once(':').map_or("", |(a, _)| a)
    }

    /// The hex part.
    pub fn hex(&self) -> &str {
        self.0.split_once(':').map_or("", |(_, h)| h)
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `[a-z0-9]+([+._-][a-z0-9]+)*`
fn valid_algorithm(a: &str) -> bool {
    !a.is_empty()
        && a.split(['+', '.', '_', '-']).all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        })
}

/// What `/v2/<name>/manifests/<reference>` points at.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Reference {
    /// A tag.
    Tag(Tag),
    /// A manifest digest.
    Digest(Digest),
}

impl Reference {
    /// A reference containing `:` is a digest, anything else must be a tag.
    pub fn parse(s: &str) -> Result<Self, InvalidIdentifier> {
        if s.contains(':') {
            Digest::parse(s).map(Self::Digest)
        } else {
            Tag::parse(s).map(Self::Tag)
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tag(t) => t.fmt(f),
            Self::Digest(d) => d.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn repository_names() {
        let long = format!("{}/{}", "a".repeat(200), "b".repeat(60));
        let cases: &[(&str, bool)] = &[
            ("app", true),
            ("team/app", true),
            ("a/b/c/d", true),
            ("my-app", true),
            ("my--app", true),
            ("my.app", true),
            ("my_app", true),
            ("my__app", true),
            ("0abc/9", true),
            ("", false),
            ("../etc", false),
            ("team/../etc", false),
            ("./app", false),
            ("/app", false),
            ("app/", false),
            ("team//app", false),
            ("App", false),
            ("team/App", false),
            ("my___app", false),
            ("my_.app", false),
            ("-app", false),
            ("app-", false),
            ("app.", false),
            ("_app", false),
            ("a b", false),
            ("team%2fapp", false),
            ("team\\app", false),
            (long.as_str(), false),
        ];
        for (name, ok) in cases {
            assert_eq!(RepoName::parse(name).is_ok(), *ok, "{name:?}");
        }
        assert_eq!(RepoName::parse("team/app").unwrap().namespace(), "team");
    }

    #[test]
    fn tags() {
        let long = "a".repeat(129);
        let max = "a".repeat(128);
        let cases: &[(&str, bool)] = &[
            ("latest", true),
            ("v1.2.3", true),
            ("_private", true),
            ("V1-RC_2", true),
            (max.as_str(), true),
            ("", false),
            (".hidden", false),
            ("-dash", false),
            ("a/b", false),
            ("a:b", false),
            ("..", false),
            (long.as_str(), false),
        ];
        for (tag, ok) in cases {
            assert_eq!(Tag::parse(tag).is_ok(), *ok, "{tag:?}");
        }
    }

    #[test]
    fn digests() {
        use InvalidIdentifier as E;
        let upper = D.to_uppercase().replace("SHA256", "sha256");
        let sha512 = format!("sha512:{}", "a".repeat(128));
        let cases: Vec<(String, Result<(), fn(String) -> E>)> = vec![
            (D.into(), Ok(())),
            ("sha256:abc".into(), Err(E::Digest)),
            (upper, Err(E::Digest)),
            (format!("{D}0"), Err(E::Digest)),
            ("sha256".into(), Err(E::Digest)),
            ("sha256:".into(), Err(E::Digest)),
            (":abc".into(), Err(E::Digest)),
            ("SHA256:abc".into(), Err(E::Digest)),
            ("sha256:../../etc/passwd".into(), Err(E::Digest)),
            (sha512.clone(), Err(E::UnsupportedDigest)),
            ("md5:abc".into(), Err(E::UnsupportedDigest)),
            (
                "multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8".into(),
                Err(E::UnsupportedDigest),
            ),
        ];
        for (s, want) in cases {
            let got = Digest::parse(&s);
            match want {
                Ok(()) => assert!(got.is_ok(), "{s:?}: {got:?}"),
                Err(make) => assert_eq!(got, Err(make(s.clone())), "{s:?}"),
            }
        }
        assert_eq!(Digest::of(b"").as_str(), D);
        assert_eq!(Digest::parse(D).unwrap().hex().len(), 64);
        assert_eq!(Digest::parse(D).unwrap().algorithm(), "sha256");
    }

    #[test]
    fn references() {
        assert!(matches!(Reference::parse("v1"), Ok(Reference::Tag(_))));
        assert!(matches!(Reference::parse(D), Ok(Reference::Digest(_))));
        assert!(Reference::parse("sha256:zz").is_err());
        assert!(Reference::parse("../x").is_err());
    }
}
