//! Berth's HTTP router for app traffic: a pure routing table (host name → an app's ready
//! instances) and the data path that proxies requests to them. It reads only the table it is
//! given; the controller builds and swaps it.

mod accept;
pub mod access_log;
pub mod acme_challenge;
mod conn_timer;
mod hold;
pub mod meters;
pub mod on_demand;
mod pool;
pub mod proxy;
pub mod stats;
pub mod table;
pub mod threads;
pub mod tls;

use std::time::Duration;

pub use access_log::{AccessLog, write_access_log};
pub use acme_challenge::{ACME_CHALLENGE_PREFIX, AcmeChallenges, InvalidChallenge};
pub use meters::{AppCounters, LATENCY_BUCKETS, LATENCY_BUCKETS_MS};
pub use on_demand::{OnDemand, OnDemandIssuer, OnDemandSettings};
pub use proxy::{Listener, Scheme, serve, serve_on_threads};
pub use stats::RouterStats;
pub use table::{
    Backend, CanarySplit, CatchAll, HostConflict, InvalidHost, Lane, Route, RouteDomain, RoutedApp,
    RoutingTable, normalize_host,
};
pub use tls::{
    CertificateError, CertificateField, CertificateSet, ValidatedCertificate, serve_tls,
    server_config, validate_certificate,
};

/// Where the router signals that a request arrived for an app scaled to 0 when idle
/// ([`RoutedApp::wake`]): called for every such request, so it must be cheap and coalesce.
pub trait Wake: Send + Sync + std::fmt::Debug {
    fn wake(&self, team: &str, app: &str);
}

/// The router's settings.
#[derive(Debug, Clone)]
pub struct RouterConfig {
    /// Largest request body passed on: a larger `Content-Length` is answered 413 at once, a
    /// streamed body is cut (and answered 413) when it goes past.
    pub max_body_bytes: u64,
    /// How long a backend may take to answer a request's headers (504 after). Streamed response
    /// bodies are not limited by it.
    pub request_timeout: Duration,
    /// How long connecting to a backend may take before it counts as a connection failure.
    pub connect_timeout: Duration,
    /// How long an idle keep-alive connection to a backend stays in the pool.
    pub pool_idle_timeout: Duration,
    /// Idle keep-alive connections kept per backend.
    pub pool_max_idle_per_backend: usize,
    /// How long a client may take to send a request's headers.
    pub header_read_timeout: Duration,
    /// After shutdown, how long open client connections get to finish their requests.
    pub shutdown_grace: Duration,
    /// How long a client may take to complete the TLS handshake on the HTTPS listener.
    pub tls_handshake_timeout: Duration,
    /// The HTTPS listener's public port, for redirects to HTTPS (left out of URLs when 443).
    pub https_port: u16,
    /// ACME HTTP-01 challenges the plain-HTTP listener answers, shared with the issuer.
    pub acme_challenges: AcmeChallenges,
    /// How long a request for an app that is bringing up its first ready instance
    /// ([`RoutedApp::hold`]) waits for it before it gets the app's 503 page.
    pub hold_timeout: Duration,
    /// Requests held at once per app; more are answered 503 at once.
    pub max_held_per_app: usize,
    /// Told of requests for apps to wake (`None`: nothing wakes apps).
    pub wake: Option<std::sync::Arc<dyn Wake>>,
    /// Certificates obtained at the handshake for the catch-all app's hosts, when on.
    pub on_demand: Option<std::sync::Arc<OnDemand>>,
}

impl Default for RouterConfig {
    fn default() -> RouterConfig {
        RouterConfig {
            max_body_bytes: 10 * 1024 * 1024,
            request_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(5),
            pool_idle_timeout: Duration::from_secs(90),
            pool_max_idle_per_backend: 256,
            header_read_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(30),
            tls_handshake_timeout: Duration::from_secs(10),
            https_port: 443,
            acme_challenges: AcmeChallenges::new(),
            hold_timeout: Duration::from_secs(30),
            max_held_per_app: 1000,
            wake: None,
            on_demand: None,
        }
    }
}
