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
use berth_core::leadership::{CONTROLLER_LEASE, ClockCheck, LeaseTiming};
use berth_engine::Fence;
use berth_store::LeaseStore;
use std::sync::atomic::{AtomicI64, Ordering};
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
    /// The last comparison of this server's clock with the database's: when, and the verdict.
    clock_check: Mutex<Option<(Instant, Result<(), String>)>>,
    /// The skew it measured (ms this clock is ahead); `i64::MIN` before the first.
    skew_ms: AtomicI64,
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
                clock_check: Mutex::new(None),
                skew_ms: AtomicI64::new(i64::MIN),
            }),
        }
    }

    /// This server's id in the lease.
    pub fn holder(&self) -> &str {
        &self.shared.holder
    }

    /// How far this server's clock was ahead of the database's (ms; negative: behind) at the
    /// last comparison; `None` before the first.
    pub fn clock_skew_ms(&self) -> Option<i64> {
        Some(self.shared.skew_ms.load(Ordering::Relaxed)).filter(|&skew| skew != i64::MIN)
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
        let mut told_clock: Option<String> = None;
        loop {
            // A server whose clock disagrees with the database's could take a lease its
            // holder still acts under: it does not ask for the lease until the clocks agree.
            match shared.clock_verdict().await {
                Err(why) => {
                    if told_clock.as_ref() != Some(&why) {
                        tracing::error!("{why}: this server will not lead until it does");
                        told_clock = Some(why);
                    }
                    tokio::time::sleep(shared.timing.poll_every).await;
                    continue;
                }
                Ok(()) if told_clock.take().is_some() => {
                    tracing::info!("this server's clock agrees with the database's again");
                }
                Ok(()) => {}
            }
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
                if let Err(why) = shared.clock_verdict().await {
                    break format!("{why}: this server stops leading");
                }
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
    /// Compares this server's clock with the database's (at most every
    /// `clock_check_every`, else the last verdict): `Err` saying by how much when they
    /// disagree beyond the skew allowed. A reading that fails is no verdict.
    async fn clock_verdict(&self) -> Result<(), String> {
        if let Some((at, verdict)) = &*lock(&self.clock_check)
            && at.elapsed() < self.timing.clock_check_every
        {
            return verdict.clone();
        }
        let before = (self.clock)();
        let database = match self.store.database_time().await {
            Ok(database) => database,
            Err(error) => {
                tracing::warn!(%error, "cannot read the database's clock");
                return Ok(());
            }
        };
        let check = ClockCheck {
            before,
            database,
            after: (self.clock)(),
        };
        let skew = check.skew_ms();
        self.skew_ms.store(skew, Ordering::Relaxed);
        let max = self.timing.max_clock_skew();
        let verdict = if check.agrees(max) {
            Ok(())
        } else {
            Err(format!(
                "this server's clock is {} ms {} the database's (at most {} ms allowed; set \
                 the time with NTP)",
                skew.unsigned_abs(),
                if skew > 0 { "ahead of" } else { "behind" },
                max.as_millis()
            ))
        };
        *lock(&self.clock_check) = Some((Instant::now(), verdict.clone()));
        verdict
    }

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
            clock_check_every: Duration::from_millis(100),
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

    /// The system's clock with an offset that can change (ms).
    fn offset_clock(offset: &Arc<AtomicI64>) -> berth_core::clock::Clock {
        let offset = Arc::clone(offset);
        let system = berth_core::clock::system_clock();
        Arc::new(move || system() + offset.load(Ordering::Relaxed))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_server_whose_clock_disagrees_with_the_databases_does_not_lead_or_stops() {
        let store = Arc::new(SqliteStore::open_in_memory().await.unwrap());
        let offset = Arc::new(AtomicI64::new(5_000));
        let fence = Fence::new();
        let ahead = Leadership::new(
            store.clone(),
            "ahead".into(),
            fast(),
            Arc::clone(&fence),
            offset_clock(&offset),
        );
        // 5 s ahead (at most 150 ms allowed here): it never asks for the free lease.
        let waiting = tokio::spawn({
            let ahead = ahead.clone();
            async move { ahead.lead().await }
        });
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert!(!waiting.is_finished(), "a server 5 s ahead must not lead");
        assert_eq!(store.get_lease(CONTROLLER_LEASE).await.unwrap(), None);
        let skew = ahead.clock_skew_ms().expect("measured");
        assert!((4_900..=5_100).contains(&skew), "{skew}");
        // Set right, it leads.
        offset.store(0, Ordering::Relaxed);
        let term = tokio::time::timeout(Duration::from_secs(2), waiting)
            .await
            .expect("leads once its clock agrees")
            .unwrap();
        assert!(fence.check().is_ok());
        // Its clock falls 2 s behind while it leads: it stops at its next renewal.
        offset.store(-2_000, Ordering::Relaxed);
        let reason = tokio::time::timeout(Duration::from_secs(2), term.lost)
            .await
            .expect("it notices")
            .expect("a reason");
        assert!(reason.contains("ms behind the database's"), "{reason}");
        assert!(fence.check().is_err());
        assert!(!ahead.leads());
    }

    #[test]
    fn a_holder_id_names_the_host_and_process_and_differs_each_time() {
        let (one, two) = (holder_id(), holder_id());
        assert!(one.contains(&format!("/{}/", std::process::id())), "{one}");
        assert_ne!(one, two);
    }
}
