//! Berth's credential primitives: argon2id password hashes, API tokens (shown once, stored as
//! a SHA-256 hash), a pure, clock-injected login rate limiter, and the [`SecretBox`] that
//! seals credentials Berth must use again (external registries' passwords) under a server key.
//!
//! No storage here, and no IO but the secret box's key file: the API layer combines these
//! with `berth-store`. Policy checks on the inputs (password length, username format) live in
//! `berth_core::accounts`.

pub mod limiter;
pub mod password;
pub mod secret;
pub mod token;

pub use limiter::{LimiterConfig, LoginLimiter};
pub use password::{
    HashParams, hash_password, hash_password_with, needs_rehash, verify_dummy, verify_password,
};
pub use secret::{SecretBox, SecretError};
pub use token::{NewToken, TOKEN_PREFIX, looks_like_token, new_token, token_hash, token_prefix};
