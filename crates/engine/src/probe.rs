//! How the host reaches an instance's port on the runtime's network: the seam of the
//! controller's health probes (HTTP requests and TCP connects).
//!
//! The controller probes instances at the address the [`crate::Runtime`] lists for them. Where
//! that address leads depends on the runtime (a Docker bridge network, a Swarm overlay, or
//! nowhere at all for the in-memory fake), so the prober sends its probes through this trait:
//! the controller's host prober implements it for real runtimes, and `fake::FakeRuntime`
//! answers for its instances as a test tells it to.

use std::time::Duration;

use async_trait::async_trait;

/// Sends one health probe to an instance. Failures are said in words shown to users
/// (`HTTP 503`, `connection refused`, `no answer within 1000 ms`).
#[async_trait]
pub trait InstanceProbe: Send + Sync + 'static {
    /// `GET http://{address}:{port}{path}`: `Ok` when a 2xx or 3xx status answers within
    /// `timeout`.
    async fn http(
        &self,
        address: &str,
        port: u16,
        path: &str,
        timeout: Duration,
    ) -> Result<(), String>;

    /// A TCP connection to `{address}:{port}`: `Ok` when it is accepted within `timeout` (it is
    /// closed at once, nothing is sent).
    async fn tcp(&self, address: &str, port: u16, timeout: Duration) -> Result<(), String>;
}
