//! Password hashing with argon2id, stored as self-describing PHC strings
//! (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`), so parameters can be raised later
//! without breaking existing hashes ([`needs_rehash`] tells when to re-hash at login).

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use std::sync::OnceLock;

use rand::RngCore;

/// Bytes of random salt per hash (the PHC recommendation).
const SALT_LEN: usize = 16;

/// Cost parameters of argon2id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashParams {
    /// Memory, in KiB.
    pub memory_kib: u32,
    /// Passes over the memory.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl HashParams {
    /// OWASP's first argon2id recommendation (19 MiB, 2 passes, 1 lane), which is also the
    /// argon2 crate's default: tens of milliseconds per hash on a server core, which bounds
    /// how fast a stolen database can be guessed against while keeping logins cheap.
    pub const RECOMMENDED: HashParams = HashParams {
        memory_kib: Params::DEFAULT_M_COST,
        iterations: Params::DEFAULT_T_COST,
        parallelism: Params::DEFAULT_P_COST,
    };

    /// The cheapest parameters argon2 accepts: for tests only, never for real passwords.
    pub const INSECURE_FAST: HashParams = HashParams {
        memory_kib: Params::MIN_M_COST,
        iterations: Params::MIN_T_COST,
        parallelism: Params::MIN_P_COST,
    };

    fn argon2(self) -> Argon2<'static> {
        let params = Params::new(self.memory_kib, self.iterations, self.parallelism, None)
            .unwrap_or_else(|e| panic!("invalid argon2 parameters {self:?}: {e}"));
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
    }
}

/// Hashes `password` with [`HashParams::RECOMMENDED`] and a fresh random salt.
pub fn hash_password(password: &str) -> String {
    hash_password_with(password, HashParams::RECOMMENDED)
}

/// Hashes `password` with `params` and a fresh random salt. Panics only on parameters argon2
/// refuses (a programming error; the two constants are valid).
pub fn hash_password_with(password: &str, params: HashParams) -> String {
    let mut salt = [0u8; SALT_LEN];
    // The thread RNG is a CSPRNG seeded (and periodically reseeded) from the OS.
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).expect("16 bytes is a valid salt length");
    params
        .argon2()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 accepts any password up to 4 GiB")
        .to_string()
}

/// Whether `password` matches the PHC string `hash`. False for a malformed hash or one made
/// with another algorithm than argon2. The comparison is constant-time (argon2's verify).
pub fn verify_password(password: &str, hash: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    if parsed.algorithm != Algorithm::Argon2id.ident() {
        return false;
    }
    // Parameters come from the hash itself, so older hashes keep verifying after a change.
    Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

/// Spends the same work as [`verify_password`] against a [`HashParams::RECOMMENDED`] hash,
/// and returns false. Call it when the username is unknown, so that the response time does
/// not tell which usernames exist.
pub fn verify_dummy(password: &str) -> bool {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let hash = DUMMY.get_or_init(|| hash_password("berth dummy password, never a real one"));
    // Compute the full verification, then discard its outcome.
    let _ = verify_password(password, hash);
    false
}

/// Whether `hash` was made with other (or unreadable) parameters than `params`: after a
/// successful login, re-hash the password and store the new hash.
pub fn needs_rehash(hash: &str, params: HashParams) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else {
        return true;
    };
    if parsed.algorithm != Algorithm::Argon2id.ident() {
        return true;
    }
    match Params::try_from(&parsed) {
        Ok(p) => {
            p.m_cost() != params.memory_kib
                || p.t_cost() != params.iterations
                || p.p_cost() != params.parallelism
        }
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAST: HashParams = HashParams::INSECURE_FAST;

    #[test]
    fn hash_then_verify() {
        let hash = hash_password_with("correct horse battery", FAST);
        assert!(hash.starts_with("$argon2id$v=19$"), "{hash}");
        let cases = [
            ("correct horse battery", true),
            ("correct horse batter", false),
            ("Correct horse battery", false),
            ("", false),
        ];
        for (password, want) in cases {
            assert_eq!(verify_password(password, &hash), want, "{password:?}");
        }
    }

    #[test]
    fn salts_differ() {
        let one = hash_password_with("same password", FAST);
        let two = hash_password_with("same password", FAST);
        assert_ne!(one, two);
        assert!(verify_password("same password", &one));
        assert!(verify_password("same password", &two));
    }

    #[test]
    fn malformed_or_foreign_hashes_never_verify() {
        let argon2i = {
            let params = Params::new(8, 1, 1, None).unwrap();
            let salt = SaltString::encode_b64(&[7u8; 16]).unwrap();
            Argon2::new(Algorithm::Argon2i, Version::V0x13, params)
                .hash_password(b"pw", &salt)
                .unwrap()
                .to_string()
        };
        for hash in [
            "",
            "plain",
            "$argon2id$",
            "$argon2id$v=19$m=8,t=1,p=1$",
            &argon2i,
        ] {
            assert!(!verify_password("pw", hash), "{hash:?}");
            assert!(needs_rehash(hash, FAST), "{hash:?}");
        }
    }

    #[test]
    fn rehash_when_params_change() {
        let hash = hash_password_with("pw", FAST);
        assert!(!needs_rehash(&hash, FAST));
        assert!(needs_rehash(&hash, HashParams::RECOMMENDED));
    }

    #[test]
    fn dummy_never_verifies() {
        // One real-cost hash (and one verify), made once per process.
        assert!(!verify_dummy("berth dummy password, never a real one"));
        assert!(!verify_dummy(""));
    }

    #[test]
    fn recommended_params_are_valid() {
        // Builds the hasher without hashing (hashing at 19 MiB is what tests avoid).
        let _ = HashParams::RECOMMENDED.argon2();
        assert_eq!(HashParams::RECOMMENDED.memory_kib, 19 * 1024);
    }
}
