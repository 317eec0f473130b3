//! Keep-alive HTTP/1.1 connections to one backend: checked out for a request, given back when
//! the response body has been read to its end, closed when idle for too long.
//!
//! One pool per backend address, owned by the backend's [`crate::stats::BackendState`]: a
//! checkout is a short lock on that backend's list only (no key to hash, no task spawned per
//! request), which is what made the generic hyper-util pool the router's largest cost.
//!
//! Each pool keeps one list per router thread ([`crate::threads`]): a connection's task runs on
//! the thread that opened it, so a request handed a connection of its own thread never wakes
//! another thread on its way to the backend and back.

use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tracing::debug;

use crate::proxy::ProxyBody;

/// A connection's request side, ready for one request.
pub(crate) type Sender = SendRequest<ProxyBody>;

/// The pool's settings (from [`crate::RouterConfig`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct PoolConfig {
    pub connect_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_idle: usize,
}

/// Why no connection could be had.
#[derive(Debug)]
pub(crate) enum ConnectError {
    Timeout,
    Io(std::io::Error),
    Handshake(hyper::Error),
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectError::Timeout => f.write_str("connecting timed out"),
            ConnectError::Io(err) => write!(f, "cannot connect: {err}"),
            ConnectError::Handshake(err) => write!(f, "connection handshake failed: {err}"),
        }
    }
}

impl std::error::Error for ConnectError {}

struct Idle {
    sender: Sender,
    since: Instant,
}

/// Lists per pool: router threads beyond this share lists (correct, a little slower).
const SHARDS: usize = 16;

/// The idle connections to one backend, one list per router thread, most recently used last.
pub(crate) struct Pool {
    shards: [Mutex<Vec<Idle>>; SHARDS],
}

impl Default for Pool {
    fn default() -> Pool {
        Pool {
            shards: std::array::from_fn(|_| Mutex::default()),
        }
    }
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let idle: usize = self.shards.iter().map(|shard| lock(shard).len()).sum();
        f.debug_struct("Pool").field("idle", &idle).finish()
    }
}

impl Pool {
    /// A connection ready for a request, and whether it was reused (a reused connection may have
    /// been closed by the backend in the meantime: a request it refuses unsent may be tried again
    /// on a new one). Idle connections older than the idle timeout at `now` are closed on the
    /// way.
    pub(crate) async fn checkout(
        &self,
        address: SocketAddr,
        config: PoolConfig,
        now: Instant,
    ) -> Result<(Sender, bool), ConnectError> {
        loop {
            let reusable = {
                let mut idle = self.lock();
                // Oldest first: once one is fresh enough, so are the ones after it.
                let expired = idle
                    .iter()
                    .take_while(|c| now.duration_since(c.since) > config.idle_timeout)
                    .count();
                idle.drain(..expired);
                // The most recent one that is ready now. The one given back last is often not
                // yet: its connection task has not seen the end of the response go by, and
                // waiting for it would cost this request a trip through the scheduler.
                match idle.iter().rposition(|c| c.sender.is_ready()) {
                    Some(ready) => Some(idle.remove(ready)),
                    None => idle.pop(),
                }
            };
            let Some(Idle { mut sender, .. }) = reusable else {
                break;
            };
            if sender.is_closed() {
                continue;
            }
            // Given back as soon as its response body ended; the connection task may not have
            // polled for the next request yet.
            if sender.ready().await.is_ok() {
                return Ok((sender, true));
            }
        }
        Ok((connect(address, config.connect_timeout).await?, false))
    }

    /// Gives a connection whose response has been read to its end back for the next request
    /// (to the calling thread's list: the thread that checked it out; `max_idle` applies per
    /// thread).
    pub(crate) fn checkin(&self, sender: Sender, config: PoolConfig) {
        if sender.is_closed() || config.max_idle == 0 {
            return;
        }
        let mut idle = self.lock();
        if idle.len() >= config.max_idle {
            // The oldest goes: the most recently used are the likeliest to still be open.
            idle.remove(0);
        }
        idle.push(Idle {
            sender,
            since: Instant::now(),
        });
    }

    /// The calling thread's list.
    fn lock(&self) -> MutexGuard<'_, Vec<Idle>> {
        lock(&self.shards[crate::threads::current_index() % SHARDS])
    }
}

fn lock(shard: &Mutex<Vec<Idle>>) -> MutexGuard<'_, Vec<Idle>> {
    // A list of connections: a panic elsewhere cannot leave it inconsistent.
    shard
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A new HTTP/1.1 connection, served by its own task (with upgrades, for WebSockets).
async fn connect(address: SocketAddr, timeout: Duration) -> Result<Sender, ConnectError> {
    let stream = match tokio::time::timeout(timeout, TcpStream::connect(address)).await {
        Err(_elapsed) => return Err(ConnectError::Timeout),
        Ok(Err(err)) => return Err(ConnectError::Io(err)),
        Ok(Ok(stream)) => stream,
    };
    if let Err(err) = stream.set_nodelay(true) {
        debug!(error = %err, "router: set_nodelay failed");
    }
    let (sender, conn) = http1::Builder::new()
        .handshake(TokioIo::new(stream))
        .await
        .map_err(ConnectError::Handshake)?;
    tokio::spawn(async move {
        if let Err(err) = conn.with_upgrades().await {
            debug!(error = %err, %address, "router: backend connection ended with an error");
        }
    });
    Ok(sender)
}
