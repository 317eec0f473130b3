//! How the host reaches an instance's HTTP port on the runtime's network: the seam of the
//! controller's health probes.
//!
//! The controller probes instances over HTTP at the address the [`crate::Runtime`] lists for
//! them. Where that address leads depends on the runtime (a Docker bridge network, a Swarm
//! overlay, or nowhere at all for the in-memory fake), so the prober sends its requests through
//! this trait: the controller's plain HTTP client implements it for real runtimes, and
//! `fake::FakeRuntime` answers for its instances as a test tells it to.

use std::time::Duration;

use async_trait::async_trait;

/// Sends one health probe to an instance.
#[async_trait]
pub trait HttpProbe: Send + Sync + 'static {
    /// `GET http://{address}:{port}{path}`: `Ok` when a 2xx or 3xx status answers within
    /// `timeout`; otherwise why not, in words shown to users (`HTTP 503`, `connection refused`,
    /// `no answer within 1000 ms`).
    async fn get(
        &self,
        address: &str,
        port: u16,
        path: &str,
        timeout: Duration,
    ) -> Result<(), String>;
}
