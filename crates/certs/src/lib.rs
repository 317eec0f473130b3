//! Berth's certificate issuance: an ACME client that proves control of a domain over HTTP-01
//! through the router's plain-HTTP listener or over DNS-01 through the operator's DNS hook,
//! and the pure rule that says when to renew.
//!
//! A crate of its own so that the ACME client's dependencies (instant-acme, rcgen, the system's
//! root certificates) are compiled once, beside the application layer rather than inside it.

pub mod acme;
mod acme_https;
pub mod dns_hook;
pub mod renewal;

pub use acme::{AcmeClient, AcmeError, AcmeSettings, IssuedCertificate, PollPolicy};
pub use dns_hook::DnsHook;
pub use instant_acme::AccountCredentials;
pub use renewal::needs_renewal;
