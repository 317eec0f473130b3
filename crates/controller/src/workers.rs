//! One shape for Berth's background work: every worker (the build worker, registry
//! maintenance, cleanups, the usage sampler…) is named, started and stopped by the server,
//! and shows its state, last run, last error and backoff to admins.
//!
//! Periodic jobs implement [`Job`] and run under [`Workers::spawn_periodic`]: one run per
//! period, a failed run retried with capped exponential backoff (never later than the next
//! period). Long-running workers that schedule themselves (the build worker) report through
//! a [`WorkerReport`] instead.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use berth_core::Millis;
use berth_core::backoff::Backoff;
use berth_core::clock::Clock;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What a worker is doing now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerState {
    /// Waiting for its next run (or for work).
    Idle,
    /// Running.
    Busy,
    /// Its last run failed; it retries at `next_run_at`.
    BackingOff,
    /// Stopped with the server.
    Stopped,
}

impl WorkerState {
    pub fn as_str(self) -> &'static str {
        match self {
            WorkerState::Idle => "idle",
            WorkerState::Busy => "busy",
            WorkerState::BackingOff => "backing_off",
            WorkerState::Stopped => "stopped",
        }
    }
}

/// A worker as admins see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerStatus {
    pub name: String,
    /// What it does, in a sentence.
    pub description: String,
    pub state: WorkerState,
    /// Runs finished, and how many of them failed.
    pub runs: u64,
    pub failures: u64,
    /// Failures in a row (0 after a run that succeeded); drives the backoff.
    pub consecutive_failures: u32,
    pub last_started_at: Option<Millis>,
    pub last_finished_at: Option<Millis>,
    /// What the last successful run did.
    pub last_outcome: Option<String>,
    pub last_error: Option<String>,
    pub last_error_at: Option<Millis>,
    /// When a periodic worker runs next.
    pub next_run_at: Option<Millis>,
}

impl WorkerStatus {
    fn new(name: &str, description: &str) -> Self {
        WorkerStatus {
            name: name.to_string(),
            description: description.to_string(),
            state: WorkerState::Idle,
            runs: 0,
            failures: 0,
            consecutive_failures: 0,
            last_started_at: None,
            last_finished_at: None,
            last_outcome: None,
            last_error: None,
            last_error_at: None,
            next_run_at: None,
        }
    }
}

/// A periodic piece of background work.
#[async_trait]
pub trait Job: Send + Sync + 'static {
    /// A stable name (`registry-gc`).
    fn name(&self) -> &'static str;
    /// What it does, in a sentence.
    fn description(&self) -> &'static str;
    /// Does one run; says what it did, or why it failed.
    async fn run(&self) -> Result<String, String>;
}

/// When a periodic job runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// Time between runs.
    pub period: Duration,
    /// Time before the first run.
    pub first_run_after: Duration,
    /// The first retry after a failure; each further failure doubles it, up to `period`.
    pub retry_after: Duration,
}

impl Schedule {
    /// Every `period`, first after one period, retries from 5 s.
    pub fn every(period: Duration) -> Self {
        Schedule {
            period,
            first_run_after: period,
            retry_after: Duration::from_secs(5),
        }
    }

    /// How long to wait after a run, given the failures in a row it ends.
    pub fn delay_after(&self, consecutive_failures: u32) -> Duration {
        if consecutive_failures == 0 {
            return self.period;
        }
        let backoff = Backoff {
            base_ms: millis(self.retry_after),
            cap_ms: millis(self.period),
            reset_after_ms: 0,
        };
        // `Backoff` waits nothing before its first retry; a failed job waits `retry_after`.
        Duration::from_millis(backoff.delay_ms(consecutive_failures.saturating_add(1)))
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// The server's workers: their statuses, and the periodic ones' tasks (stopped together).
#[derive(Clone)]
pub struct Workers {
    statuses: Arc<Mutex<BTreeMap<String, WorkerStatus>>>,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
    stop: watch::Sender<bool>,
    clock: Clock,
}

impl std::fmt::Debug for Workers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workers").finish_non_exhaustive()
    }
}

impl Workers {
    pub fn new(clock: Clock) -> Self {
        Workers {
            statuses: Arc::default(),
            tasks: Arc::default(),
            stop: watch::channel(false).0,
            clock,
        }
    }

    /// Every worker's status, by name.
    pub fn list(&self) -> Vec<WorkerStatus> {
        lock(&self.statuses).values().cloned().collect()
    }

    /// Registers a worker that schedules itself; it reports through the handle.
    pub fn register(&self, name: &str, description: &str) -> WorkerReport {
        lock(&self.statuses).insert(name.to_string(), WorkerStatus::new(name, description));
        WorkerReport {
            name: name.to_string(),
            workers: self.clone(),
        }
    }

    /// Starts `job` on `schedule` until [`Workers::stop`].
    pub fn spawn_periodic(&self, job: impl Job, schedule: Schedule) {
        let report = self.register(job.name(), job.description());
        let mut stop = self.stop.subscribe();
        let task = tokio::spawn(async move {
            let mut wait = schedule.first_run_after;
            loop {
                report.next_run_in(wait);
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    _ = stop.wait_for(|stopped| *stopped) => break,
                }
                report.busy();
                let failures = match job.run().await {
                    Ok(outcome) => report.succeeded(outcome),
                    Err(error) => {
                        tracing::warn!(worker = job.name(), %error, "background job failed");
                        report.failed(error)
                    }
                };
                wait = schedule.delay_after(failures);
            }
            report.stopped();
        });
        lock(&self.tasks).push(task);
    }

    /// Stops the periodic workers: a run in progress finishes first (up to `patience`).
    pub async fn stop(&self, patience: Duration) {
        let _ = self.stop.send(true);
        let tasks: Vec<JoinHandle<()>> = lock(&self.tasks).drain(..).collect();
        let all = futures::future::join_all(tasks);
        if tokio::time::timeout(patience, all).await.is_err() {
            tracing::warn!("background jobs still running at shutdown were left to end");
        }
    }

    fn update(&self, name: &str, change: impl FnOnce(&mut WorkerStatus, Millis)) {
        let now = (self.clock)();
        if let Some(status) = lock(&self.statuses).get_mut(name) {
            change(status, now);
        }
    }
}

/// How a worker tells what it does (cheap to clone, to keep in the worker).
#[derive(Clone)]
pub struct WorkerReport {
    name: String,
    workers: Workers,
}

impl std::fmt::Debug for WorkerReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerReport")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl WorkerReport {
    /// A run starts.
    pub fn busy(&self) {
        self.workers.update(&self.name, |s, now| {
            s.state = WorkerState::Busy;
            s.last_started_at = Some(now);
            s.next_run_at = None;
        });
    }

    /// Whether a self-scheduling worker has work in hand now (busy) or waits for some (idle).
    pub fn set_busy(&self, busy: bool) {
        let state = if busy {
            WorkerState::Busy
        } else {
            WorkerState::Idle
        };
        self.workers.update(&self.name, |s, _| s.state = state);
    }

    /// A run succeeded with `outcome`; returns the failures in a row (0).
    pub fn succeeded(&self, outcome: String) -> u32 {
        self.workers.update(&self.name, |s, now| {
            s.state = WorkerState::Idle;
            s.runs += 1;
            s.consecutive_failures = 0;
            s.last_finished_at = Some(now);
            s.last_outcome = Some(outcome);
        });
        0
    }

    /// A run failed with `error`; returns the failures in a row.
    pub fn failed(&self, error: String) -> u32 {
        let mut failures = 0;
        self.workers.update(&self.name, |s, now| {
            s.state = WorkerState::BackingOff;
            s.runs += 1;
            s.failures += 1;
            s.consecutive_failures = s.consecutive_failures.saturating_add(1);
            s.last_finished_at = Some(now);
            s.last_error = Some(error);
            s.last_error_at = Some(now);
            failures = s.consecutive_failures;
        });
        failures
    }

    fn next_run_in(&self, wait: Duration) {
        self.workers.update(&self.name, |s, now| {
            let wait = i64::try_from(wait.as_millis()).unwrap_or(i64::MAX);
            s.next_run_at = Some(now.saturating_add(wait));
        });
    }

    /// The worker stopped with the server.
    pub fn stopped(&self) {
        self.workers.update(&self.name, |s, _| {
            s.state = WorkerState::Stopped;
            s.next_run_at = None;
        });
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn failed_runs_back_off_up_to_the_period() {
        let schedule = Schedule {
            period: Duration::from_secs(60),
            first_run_after: Duration::ZERO,
            retry_after: Duration::from_secs(5),
        };
        // (failures in a row, wait)
        let cases = [
            (0, 60),
            (1, 5),
            (2, 10),
            (3, 20),
            (4, 40),
            (5, 60),
            (30, 60),
        ];
        for (failures, seconds) in cases {
            assert_eq!(
                schedule.delay_after(failures),
                Duration::from_secs(seconds),
                "{failures} failures"
            );
        }
    }

    /// Fails its first `failures` runs, then succeeds.
    struct Flaky {
        runs: Arc<AtomicU32>,
        failures: u32,
    }

    #[async_trait]
    impl Job for Flaky {
        fn name(&self) -> &'static str {
            "flaky"
        }

        fn description(&self) -> &'static str {
            "fails, then works"
        }

        async fn run(&self) -> Result<String, String> {
            let run = self.runs.fetch_add(1, Ordering::SeqCst) + 1;
            if run <= self.failures {
                Err(format!("run {run} failed"))
            } else {
                Ok(format!("run {run} worked"))
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn periodic_jobs_retry_report_and_stop() {
        let start = tokio::time::Instant::now();
        let clock: Clock = Arc::new(move || start.elapsed().as_millis() as Millis);
        let workers = Workers::new(clock);
        let runs = Arc::new(AtomicU32::new(0));
        workers.spawn_periodic(
            Flaky {
                runs: Arc::clone(&runs),
                failures: 2,
            },
            Schedule {
                period: Duration::from_secs(60),
                first_run_after: Duration::from_secs(1),
                retry_after: Duration::from_secs(5),
            },
        );
        let status = || workers.list().pop().expect("registered");
        assert_eq!(status().state, WorkerState::Idle);
        // Run 1 at 1 s fails; run 2 at 6 s fails; run 3 at 16 s works; run 4 at 76 s.
        // (state, runs, failures, next run at, last error)
        let checkpoints = [
            (
                3,
                WorkerState::BackingOff,
                1,
                1,
                Some(6_000),
                "run 1 failed",
            ),
            (
                10,
                WorkerState::BackingOff,
                2,
                2,
                Some(16_000),
                "run 2 failed",
            ),
            (20, WorkerState::Idle, 3, 2, Some(76_000), "run 2 failed"),
            (80, WorkerState::Idle, 4, 2, Some(136_000), "run 2 failed"),
        ];
        for (at, state, runs_done, failures, next, error) in checkpoints {
            tokio::time::sleep_until(start + Duration::from_secs(at)).await;
            let s = status();
            assert_eq!(
                (s.state, s.runs, s.failures, s.next_run_at),
                (state, runs_done, failures, next),
                "at {at} s"
            );
            assert_eq!(s.last_error.as_deref(), Some(error), "at {at} s");
        }
        assert_eq!(status().last_outcome.as_deref(), Some("run 4 worked"));
        assert_eq!(status().consecutive_failures, 0);
        workers.stop(Duration::from_secs(1)).await;
        assert_eq!(status().state, WorkerState::Stopped);
        assert_eq!(runs.load(Ordering::SeqCst), 4);
    }
}
