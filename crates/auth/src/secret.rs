//! The secret box: seals credentials Berth must use again later (an external registry's
//! password, a pipeline's git credentials) so the database never holds them in plaintext.
//!
//! XChaCha20-Poly1305 (RustCrypto's `chacha20poly1305`) under a 256-bit server key kept in
//! `<data-dir>/secret-key` (mode 0600, made on first start; [`SecretBox::load_or_create`]).
//! Every seal draws a fresh random 192-bit nonce, so random nonces never collide in practice.
//! The caller names what a secret belongs to (`context`, e.g. `external-registry/hub`): it is
//! the associated data, so a sealed value copied onto another row does not open there.
//! Sealed text is `v1.` + base64(nonce ‖ ciphertext ‖ tag). Losing the key file loses every
//! sealed secret (they must be entered again); it is never derived from anything else.

use std::io::Write;
use std::path::Path;

use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use rand::Rng;

/// Bytes of the server key.
pub const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 24;
/// The version prefix of sealed text (a later format gets another prefix).
const PREFIX: &str = "v1.";

/// Why a sealed value does not open, or the key cannot be had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretError {
    /// Not sealed text of this format (truncated, not base64, unknown version).
    Malformed,
    /// Sealed under another key or context, or tampered with.
    WrongKeyOrContext,
    /// The key file is unreadable, malformed or cannot be created.
    KeyFile(String),
}

impl std::fmt::Display for SecretError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Malformed => f.write_str("not a sealed secret"),
            Self::WrongKeyOrContext => f.write_str(
                "the secret does not open with this server's key (was secret-key replaced?)",
            ),
            Self::KeyFile(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for SecretError {}

/// Seals and opens secrets under one server key. Cheap to share behind an `Arc`.
#[derive(Clone)]
pub struct SecretBox {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for SecretBox {
    // The key never reaches logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(<key>)")
    }
}

impl SecretBox {
    /// A box under `key`.
    pub fn new(key: &[u8; KEY_LEN]) -> Self {
        Self {
            cipher: XChaCha20Poly1305::new(&Key::from(*key)),
        }
    }

    /// A fresh random key (the thread RNG is a CSPRNG seeded from the OS).
    pub fn generate_key() -> [u8; KEY_LEN] {
        let mut key = [0u8; KEY_LEN];
        rand::rng().fill(&mut key);
        key
    }

    /// The box under the key stored in `path` (64 hex characters), making the file with a
    /// new random key, readable by its owner only, when it does not exist.
    pub fn load_or_create(path: &Path) -> Result<Self, SecretError> {
        let shown = path.display();
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let key = parse_hex_key(text.trim()).ok_or_else(|| {
                    SecretError::KeyFile(format!(
                        "{shown} does not hold a key (64 hex characters); restore it from a backup, or move it away to start with a new key (stored secrets must then be entered again)"
                    ))
                })?;
                return Ok(Self::new(&key));
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => {
                return Err(SecretError::KeyFile(format!(
                    "cannot read {shown}: {error}"
                )));
            }
        }
        let key = Self::generate_key();
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options
            .open(path)
            .map_err(|e| SecretError::KeyFile(format!("cannot create {shown}: {e}")))?;
        file.write_all(hex(&key).as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| SecretError::KeyFile(format!("cannot write {shown}: {e}")))?;
        Ok(Self::new(&key))
    }

    /// Seals `plaintext` for `context` (what it belongs to; the same context opens it).
    pub fn seal(&self, plaintext: &str, context: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill(&mut nonce);
        let payload = Payload {
            msg: plaintext.as_bytes(),
            aad: context.as_bytes(),
        };
        // Encryption fails only for messages beyond 256 GiB.
        let sealed = self
            .cipher
            .encrypt(&XNonce::from(nonce), payload)
            .expect("XChaCha20-Poly1305 seals any message that fits in memory");
        let mut bytes = Vec::with_capacity(NONCE_LEN + sealed.len());
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(&sealed);
        format!(
            "{PREFIX}{}",
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes)
        )
    }

    /// Opens what [`Self::seal`] made for the same `context`.
    pub fn open(&self, sealed: &str, context: &str) -> Result<String, SecretError> {
        let bytes = sealed
            .strip_prefix(PREFIX)
            .and_then(|b64| {
                base64::engine::general_purpose::STANDARD_NO_PAD
                    .decode(b64)
                    .ok()
            })
            .filter(|bytes| bytes.len() >= NONCE_LEN + 16)
            .ok_or(SecretError::Malformed)?;
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| SecretError::Malformed)?;
        let payload = Payload {
            msg: ciphertext,
            aad: context.as_bytes(),
        };
        let plaintext = self
            .cipher
            .decrypt(&XNonce::from(nonce), payload)
            .map_err(|_| SecretError::WrongKeyOrContext)?;
        String::from_utf8(plaintext).map_err(|_| SecretError::Malformed)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_hex_key(text: &str) -> Option<[u8; KEY_LEN]> {
    if text.len() != KEY_LEN * 2 || !text.is_ascii() {
        return None;
    }
    let mut key = [0u8; KEY_LEN];
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_and_opens() {
        let secrets = SecretBox::new(&SecretBox::generate_key());
        let sealed = secrets.seal("hunter2:pässwörd", "external-registry/hub");
        assert!(sealed.starts_with("v1."), "{sealed}");
        assert!(!sealed.contains("hunter2"));
        assert_eq!(
            secrets.open(&sealed, "external-registry/hub").unwrap(),
            "hunter2:pässwörd"
        );
        // A fresh nonce each time: the same secret never seals to the same text.
        assert_ne!(secrets.seal("x", "c"), secrets.seal("x", "c"));
        assert_eq!(secrets.open(&secrets.seal("", "c"), "c").unwrap(), "");
    }

    #[test]
    fn refuses_other_contexts_keys_and_tampering() {
        let secrets = SecretBox::new(&[7; KEY_LEN]);
        let sealed = secrets.seal("password", "external-registry/a");
        let other_key = SecretBox::new(&[8; KEY_LEN]);
        let mut flipped = sealed.clone().into_bytes();
        let last = flipped.len() - 3;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).unwrap();
        let cases: [(&SecretBox, &str, &str, SecretError); 6] = [
            (
                &secrets,
                &sealed,
                "external-registry/b",
                SecretError::WrongKeyOrContext,
            ),
            (
                &other_key,
                &sealed,
                "external-registry/a",
                SecretError::WrongKeyOrContext,
            ),
            (
                &secrets,
                &flipped,
                "external-registry/a",
                SecretError::WrongKeyOrContext,
            ),
            (
                &secrets,
                "password",
                "external-registry/a",
                SecretError::Malformed,
            ),
            (
                &secrets,
                "v1.!!!",
                "external-registry/a",
                SecretError::Malformed,
            ),
            (
                &secrets,
                "v1.AAAA",
                "external-registry/a",
                SecretError::Malformed,
            ),
        ];
        for (key, text, context, want) in cases {
            assert_eq!(key.open(text, context), Err(want), "{text} / {context}");
        }
        assert!(!format!("{secrets:?}").contains('7'));
    }

    #[test]
    fn key_file_is_made_once_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret-key");
        let first = SecretBox::load_or_create(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.len(), 64);
        assert!(text.bytes().all(|b| b.is_ascii_hexdigit()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let sealed = first.seal("s3cret", "ctx");
        let again = SecretBox::load_or_create(&path).unwrap();
        assert_eq!(again.open(&sealed, "ctx").unwrap(), "s3cret");
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            text,
            "not rewritten"
        );

        std::fs::write(&path, "not a key").unwrap();
        let error = SecretBox::load_or_create(&path).unwrap_err();
        assert!(
            matches!(&error, SecretError::KeyFile(m) if m.contains("64 hex")),
            "{error}"
        );
        let missing_dir = dir.path().join("nope").join("secret-key");
        assert!(matches!(
            SecretBox::load_or_create(&missing_dir),
            Err(SecretError::KeyFile(_))
        ));
    }

    #[test]
    fn hex_keys() {
        let key: [u8; KEY_LEN] = std::array::from_fn(|i| i as u8 * 7);
        assert_eq!(parse_hex_key(&hex(&key)), Some(key));
        assert_eq!(parse_hex_key(&hex(&key)[1..]), None);
        assert_eq!(parse_hex_key(&"zz".repeat(KEY_LEN)), None);
        assert_eq!(parse_hex_key(&"é".repeat(KEY_LEN)), None);
    }
}
