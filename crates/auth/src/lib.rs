//! Berth's credential primitives: argon2id password hashes, API tokens (shown once, stored as
//! a SHA-256 hash) and a pure, clock-injected login rate limiter.
//!
//! No IO and no storage here: the API layer combines these with `berth-store`. Policy checks
//! on the inputs (password length, username format) live in `berth_core::accounts`.

pub mod limiter;
pub mod password;
pub mod token;

pub use limiter::{LimiterConfig, LoginLimiter};
pub use password::{
    HashParams, hash_password, hash_password_with, needs_rehash, verify_dummy, verify_password,
};
pub use token::{NewToken, TOKEN_PREFIX, looks_like_token, new_token, token_hash, token_prefix};
