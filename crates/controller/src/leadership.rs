//! Leadership of several Berth servers on one database: the loop that wins, keeps and gives up
//! the controllers' lease (`berth_core::leadership`), and the [`Fence`] it keeps in step.
//!
//! Every server serves the API; only the one holding the lease runs the controllers and
//! workers. [`Leadership::lead`] waits until this server holds the lease (asking every
//! `poll_every`), opens the fence for the term, and keeps renewing it in the background: each
//! successful renewal moves the fence's deadline to `ttl - margin` after the renewal *began*.
//! When renewals fail until that deadline, or the store answers that another server holds the
//! lease, the term is over: the fence is already shut (the runtime changes nothing from the
//! deadline on) and [`Term::lost`] resolves, so the server stops and a supervisor restarts it as
//! a follower. [`Leadership::step_down`] gives the lease up on a planned stop, after the
//! controllers have stopped, so a follower takes over within one poll.

use berth_core::clock::Clock;
use berth_core::leadership::{CONTROLLER_LEASE, LeaseTiming};
use berth_engine::Fence;
use berth_store::LeaseStore;
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;
use tokio::time::Instant;

/// This server's part in the election of the controllers' lease.
#[derive(Clone)]
pub struct Leadership {
    shared: Arc<Shared>,
}

struct Shared {
    store: Arc<dyn LeaseStore>,
    /// This server's id in the lease: host, process id and a random part.
    holder: String,
    timing: LeaseTiming,
    fence: Arc<Fence>,
    clock: Clock,
    /// The term this server holds, if any.
    term: Mutex<Option<i64>>,
}

/// A term this server won.
pub struct Term {
    /// The lease's epoch in this term.
    pub epoch: i64,
    /// Resolves with the reason when the term ends without [`Leadership::step_down`].
    pub lost: oneshot::Receiver<String>,
}

impl Leadership {
    pub fn new(
        store: Arc<dyn LeaseStore>,
        holder: String,
        timing: LeaseTiming,
        fence: Arc<Fence>,
        clock: Clock,
    ) -> Leadership {
        Leadership {
            shared: Arc::new(Shared {
                store,
                holder,
                timing,
                fence,
                clock,
                term: Mutex::new(None),
            }),
        }
    }

    /// This server's id in the lease.
    pub fn holder(&self) -> &str {
        &self.shared.holder
    }

    /// Whether this server holds a term now.
    pub fn leads(&self) -> bool {
        lock(&self.shared.term).is_some()
    }

    /// Waits until this server holds the lease, opens the fence and keeps the lease renewed
    /// (see the module docs). Logs who leads while it waits.
    pub async fn lead(&self) -> Term {
        let shared = &self.shared;
        let mut told: Option<(String, i64)> = None;
        loop {
            let started = Instant::now();
            match shared.ask().await {
                Ok(lease) if lease.holder == shared.holder => {
                    if let Some(left) = shared.timing.time_left(started.elapsed()) {
                        shared.fence.grant(lease.epoch, left);
                        *lock(&shared.term) = Some(lease.epoch);
                        tracing::info!(
                            epoch = lease.epoch,
                            holder = %shared.holder,
                            "this server leads: it runs the controllers and workers"
                        );
                        let (lost_sender, lost) = oneshot::channel();
                        tokio::spawn(keep(Arc::clone(shared), lease.epoch, started, lost_sender));
                        return Term {
                            epoch: lease.epoch,
                            lost,
                        };
                    }
                }
                Ok(lease) => {
                    let now = (lease.holder.clone(), lease.epoch);
                    if told.as_ref() != Some(&now) {
                        tracing::info!(
                            leader = %lease.holder,
                            epoch = lease.epoch,
                            "another server leads: this one serves the API and follows"
                        );
                        told = Some(now);
                    }
                }
                Err(error) => tracing::warn!(%error, "cannot read the controllers' lease"),
            }
            tokio::time::sleep(shared.timing.poll_every).await;
        }
    }

    /// Gives the lease up (after the controllers have stopped), so a follower takes over at
    /// once; the fence shuts first.
    pub async fn step_down(&self) {
        let shared = &self.shared;
        shared.fence.revoke();
        let Some(epoch) = lock(&shared.term).take() else {
            return;
        };
        match shared
            .store
            .release_lease(CONTROLLER_LEASE, &shared.holder, epoch)
            .await
        {
            Ok(true) => tracing::info!(epoch, "gave up the lead: a follower takes over"),
            Ok(false) => {}
            Err(error) => {
                tracing::warn!(%error, epoch, "cannot give up the lead: it lapses by itself")
            }
        }
    }
}

/// Renews the lease of term `epoch` every `renew_every` until the term ends; `first` is when
/// the renewal that won it began.
async fn keep(shared: Arc<Shared>, epoch: i64, first: Instant, lost: oneshot::Sender<String>) {
    let mut last_start = first;
    let reason = loop {
        tokio::time::sleep(shared.timing.renew_every).await;
        if lock(&shared.term).as_ref() != Some(&epoch) {
            // Stepped down.
            return;
        }
        let started = Instant::now();
        match shared.ask().await {
            Ok(lease) if lease.holder == shared.holder && lease.epoch == epoch => {
                last_start = started;
                if let Some(left) = shared.timing.time_left(started.elapsed()) {
                    shared.fence.grant(epoch, left);
                }
            }
            Ok(lease) => {
                break format!(
                    "the controllers' lease passed to {} (term {}) while this server held term \
                     {epoch}",
                    lease.holder, lease.epoch
                );
            }
            Err(error) => {
                tracing::warn!(%error, epoch, "cannot renew the controllers' lease");
            }
        }
        if shared.timing.time_left(last_start.elapsed()).is_none() {
            break format!(
                "the controllers' lease (term {epoch}) could not be renewed for {:?}",
                shared.timing.ttl.saturating_sub(shared.timing.margin)
            );
        }
    };
    shared.fence.revoke();
    *lock(&shared.term) = None;
    tracing::error!(%reason, "this server lost the lead: it stops acting");
    let _ = lost.send(reason);
}

impl Shared {
    /// Takes or renews the lease for this server now.
    async fn ask(&self) -> berth_store::StoreResult<berth_core::leadership::Lease> {
        self.store
            .acquire_lease(
                CONTROLLER_LEASE,
                &self.holder,
                (self.clock)(),
                self.timing.ttl_ms(),
            )
            .await
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// A holder id for this process: `host/pid/random`.
pub fn holder_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "host".into());
    let random: u32 = rand_u32();
    format!("{host}/{}/{random:08x}", std::process::id())
}

/// A few random bits from the standard library's randomly keyed hasher.
fn rand_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or_default(),
    );
    hasher.finish() as u32
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use berth_store::SqliteStore;

    fn fast() -> LeaseTiming {
        LeaseTiming {
            ttl: Duration::from_millis(900),
            renew_every: Duration::from_millis(150),
            poll_every: Duration::from_millis(50),
            margin: Duration::from_millis(300),
        }
    }

    fn server(store: &Arc<SqliteStore>, name: &str) -> (Leadership, Arc<Fence>) {
        let fence = Fence::new();
        let leadership = Leadership::new(
            store.clone(),
            name.into(),
            fast(),
            Arc::clone(&fence),
            berth_core::clock::system_clock(),
        );
        (leadership, fence)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_leads_a_step_down_hands_over_at_once_and_the_fence_follows() {
        let store = Arc::new(SqliteStore::open_in_memory().await.unwrap());
        let (a, fence_a) = server(&store, "a");
        let (b, fence_b) = server(&store, "b");
        let term_a = a.lead().await;
        assert_eq!(term_a.epoch, 1);
        assert_eq!(fence_a.check().unwrap(), 1);
        // b waits while a renews, well past a lease's length.
        let waiting = tokio::spawn(async move {
            let term = b.lead().await;
            (b, term)
        });
        tokio::time::sleep(Duration::from_millis(2_000)).await;
        assert!(!waiting.is_finished(), "b must not lead while a renews");
        assert!(fence_b.check().is_err());
        assert!(fence_a.check().is_ok(), "renewals keep a's fence open");
        // a steps down: its fence shuts at once, b leads within a poll or two.
        let stepped = Instant::now();
        a.step_down().await;
        assert!(fence_a.check().is_err());
        let (_b, term_b) = waiting.await.unwrap();
        assert!(
            stepped.elapsed() < Duration::from_millis(500),
            "{:?}",
            stepped.elapsed()
        );
        assert_eq!(term_b.epoch, 2);
        assert_eq!(fence_b.check().unwrap(), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_holder_told_another_leads_shuts_its_fence_and_stops() {
        let store = Arc::new(SqliteStore::open_in_memory().await.unwrap());
        let (a, fence_a) = server(&store, "a");
        let term = a.lead().await;
        // Another server takes the lease as if a's had lapsed (a stands for a server cut off
        // from the database): a learns at its next renewal and stops.
        store
            .acquire_lease(CONTROLLER_LEASE, "b", i64::MAX / 2, 1_000)
            .await
            .unwrap();
        let reason = tokio::time::timeout(Duration::from_secs(2), term.lost)
            .await
            .expect("a notices")
            .expect("a reason");
        assert!(reason.contains("passed to b"), "{reason}");
        assert!(fence_a.check().is_err());
    }

    #[test]
    fn a_holder_id_names_the_host_and_process_and_differs_each_time() {
        let (one, two) = (holder_id(), holder_id());
        assert!(one.contains(&format!("/{}/", std::process::id())), "{one}");
        assert_ne!(one, two);
    }
}
