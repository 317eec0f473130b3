//! In-flight requests per backend (address, port), kept by the data path so the control plane can
//! wait for an instance's requests to finish before it stops the instance.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

/// A shared handle on the router's counters; clones see the same counts.
///
/// Counts are keyed by backend address and port, not by route, so they survive routing-table
/// swaps: an instance taken out of the table keeps its count until its last response ends.
#[derive(Debug, Clone, Default)]
pub struct RouterStats {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    in_flight: Mutex<HashMap<(String, u16), usize>>,
    /// Woken whenever a backend's count drops to zero.
    idle: Notify,
}

impl RouterStats {
    pub fn new() -> RouterStats {
        RouterStats::default()
    }

    /// Requests sent to this backend whose response has not ended (or been dropped) yet.
    /// An upgraded connection (WebSocket) counts as one until it closes.
    pub fn in_flight(&self, address: &str, port: u16) -> usize {
        self.counts()
            .get(&(address.to_string(), port))
            .copied()
            .unwrap_or(0)
    }

    /// Resolves once no request to this backend is in flight (at once if none is). Pair it with a
    /// timeout: a long-lived stream or WebSocket keeps it waiting.
    pub async fn wait_idle(&self, address: &str, port: u16) {
        loop {
            let notified = self.inner.idle.notified();
            let mut notified = std::pin::pin!(notified);
            // Registered before the check, so a drop to zero in between is not missed.
            notified.as_mut().enable();
            if self.in_flight(address, port) == 0 {
                return;
            }
            notified.await;
        }
    }

    /// Counts one request to a backend until the returned guard is dropped.
    pub(crate) fn start(&self, address: &str, port: u16) -> InFlight {
        let key = (address.to_string(), port);
        *self.counts().entry(key.clone()).or_insert(0) += 1;
        InFlight {
            stats: self.clone(),
            key,
        }
    }

    fn counts(&self) -> MutexGuard<'_, HashMap<(String, u16), usize>> {
        // The map holds plain counters: a panic elsewhere cannot leave it inconsistent.
        self.inner
            .in_flight
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// One request in flight to a backend; dropping it ends the count.
#[derive(Debug)]
pub(crate) struct InFlight {
    stats: RouterStats,
    key: (String, u16),
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let idle = {
            let mut counts = self.stats.counts();
            match counts.get_mut(&self.key) {
                Some(count) if *count > 1 => {
                    *count -= 1;
                    false
                }
                Some(_) => {
                    counts.remove(&self.key);
                    true
                }
                None => false,
            }
        };
        if idle {
            self.stats.inner.idle.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn counts_follow_the_guards_per_backend() {
        let stats = RouterStats::new();
        let a1 = stats.start("10.0.0.1", 80);
        let a2 = stats.clone().start("10.0.0.1", 80);
        let b = stats.start("10.0.0.1", 81);
        assert_eq!(stats.in_flight("10.0.0.1", 80), 2);
        assert_eq!(stats.in_flight("10.0.0.1", 81), 1);
        assert_eq!(stats.in_flight("10.0.0.2", 80), 0);
        drop(a1);
        assert_eq!(stats.in_flight("10.0.0.1", 80), 1);
        drop(a2);
        drop(b);
        assert_eq!(stats.in_flight("10.0.0.1", 80), 0);
        assert_eq!(stats.in_flight("10.0.0.1", 81), 0);
        assert!(stats.counts().is_empty(), "idle backends leave the map");
    }

    #[tokio::test(start_paused = true)]
    async fn wait_idle_resolves_when_the_last_request_ends() {
        let stats = RouterStats::new();
        stats.wait_idle("10.0.0.1", 80).await;
        let guard = stats.start("10.0.0.1", 80);
        let other = stats.start("10.0.0.1", 81);
        let waiter = tokio::spawn({
            let stats = stats.clone();
            async move { stats.wait_idle("10.0.0.1", 80).await }
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!waiter.is_finished());
        drop(guard);
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woken")
            .expect("no panic");
        assert_eq!(stats.in_flight("10.0.0.1", 81), 1);
        drop(other);
    }
}
