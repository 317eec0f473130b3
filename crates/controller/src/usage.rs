//! The usage sampler: live CPU and memory use of every running instance Berth manages.
//!
//! Every `usage_interval` (5 s by default) the loop lists this installation's running instance
//! containers and takes one [`ResourceSample`] of each (a few at a time). Per instance it keeps
//! the samples of the last minute ([`WINDOW`]) and derives an [`InstanceUsage`]: CPU in
//! millicores between the last two samples and averaged over the minute, memory in use and the
//! memory limit. Instances that are no longer listed as running are dropped. The result is
//! published as a whole into the [`UsageBook`] the API reads (and the autoscaler will).
//!
//! CPU rates come from two cumulative CPU-time readings and the engine's read times
//! (`ΔCPU time / Δtime`), not from Docker's `precpu` pair, so one sample costs one short
//! request. The arithmetic ([`cpu_millis`], [`History`], [`UsageTracker`]) is pure and takes
//! its times from the samples; the loop ([`run`]) only lists, samples and publishes.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use berth_core::Millis;
use berth_engine::{ContainerState, EngineError, ObservedContainer, ResourceSample, labels};
use futures::StreamExt;

use crate::Shared;

/// How far back the reported average reaches ("the last minute").
pub const WINDOW: Duration = Duration::from_secs(60);
/// How far back samples are kept: the longest autoscaling window.
pub const HISTORY: Duration = Duration::from_secs(berth_core::autoscale::MAX_WINDOW_SECS as u64);
/// Samples taken at once.
const SAMPLE_CONCURRENCY: usize = 8;
/// A sample the engine does not answer within this long is skipped for this round.
const SAMPLE_TIMEOUT: Duration = Duration::from_secs(10);

/// What an instance uses, from its recent samples.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceUsage {
    pub app: String,
    /// `<app>-<ordinal>`.
    pub instance: String,
    /// CPU between the last two samples, in millicores (1000 = one core busy); `None` until
    /// there are two.
    pub cpu_millis: Option<u64>,
    /// CPU averaged over the samples of the last minute, in millicores; `None` until there are
    /// two.
    pub cpu_millis_avg: Option<u64>,
    /// The time the average covers, ms (up to [`WINDOW`]; less while the instance is young).
    pub avg_span_ms: u64,
    /// Memory in use at the latest sample, bytes (page cache excluded).
    pub memory_bytes: u64,
    /// The container's memory limit, or the node's memory when it has none.
    pub memory_limit_bytes: Option<u64>,
    /// When the latest sample was read, unix ms (the engine's clock).
    pub sampled_at: Millis,
    /// The samples kept ([`HISTORY`]), for averages over other windows.
    pub history: History,
}

impl InstanceUsage {
    /// CPU averaged over the samples of the last `window` (see
    /// [`History::cpu_millis_avg_within`]).
    pub fn cpu_millis_avg_within(&self, window: Duration) -> Option<(u64, u64)> {
        self.history.cpu_millis_avg_within(window)
    }
}

/// CPU use between two samples, in millicores, rounded to the nearest; `None` when `later` is
/// not later or the CPU counter went backwards (the container started over).
pub fn cpu_millis(earlier: &ResourceSample, later: &ResourceSample) -> Option<u64> {
    let elapsed_ms = later.sampled_at_ms.checked_sub(earlier.sampled_at_ms)?;
    let cpu_ns = later.cpu_time_ns.checked_sub(earlier.cpu_time_ns)?;
    if elapsed_ms <= 0 {
        return None;
    }
    // millicores = cpu_ns / (elapsed_ms × 10⁶ ns/ms) × 1000 = cpu_ns / (elapsed_ms × 1000)
    let divisor = u128::from(elapsed_ms.unsigned_abs()) * 1000;
    let rounded = (u128::from(cpu_ns) + divisor / 2) / divisor;
    Some(u64::try_from(rounded).unwrap_or(u64::MAX))
}

/// The samples of one instance within the window, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    samples: VecDeque<ResourceSample>,
}

impl History {
    /// Adds a sample and forgets those more than `window` older than it. A sample not newer
    /// than the latest is ignored; one whose CPU counter went backwards (the container was
    /// restarted in place) starts the history over.
    pub fn push(&mut self, sample: ResourceSample, window: Duration) {
        if let Some(latest) = self.samples.back() {
            if sample.sampled_at_ms <= latest.sampled_at_ms {
                return;
            }
            if sample.cpu_time_ns < latest.cpu_time_ns {
                self.samples.clear();
            }
        }
        let window_ms = Millis::try_from(window.as_millis()).unwrap_or(Millis::MAX);
        let oldest_kept = sample.sampled_at_ms.saturating_sub(window_ms);
        self.samples.push_back(sample);
        while self
            .samples
            .front()
            .is_some_and(|s| s.sampled_at_ms < oldest_kept)
        {
            self.samples.pop_front();
        }
    }

    /// How many samples are kept.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// Whether no sample is kept.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// The newest sample.
    pub fn latest(&self) -> Option<&ResourceSample> {
        self.samples.back()
    }

    /// CPU between the last two samples, in millicores.
    pub fn cpu_millis(&self) -> Option<u64> {
        let n = self.samples.len();
        (n >= 2).then(|| cpu_millis(&self.samples[n - 2], &self.samples[n - 1]))?
    }

    /// CPU averaged over the last [`WINDOW`], in millicores, with the time it covers in ms.
    pub fn cpu_millis_avg(&self) -> Option<(u64, u64)> {
        self.cpu_millis_avg_within(WINDOW)
    }

    /// CPU averaged over the samples of the last `window` before the newest one (oldest to
    /// newest, so weighted by time), in millicores, with the time it covers in ms.
    pub fn cpu_millis_avg_within(&self, window: Duration) -> Option<(u64, u64)> {
        let newest = self.samples.back()?;
        let window_ms = Millis::try_from(window.as_millis()).unwrap_or(Millis::MAX);
        let since = newest.sampled_at_ms.saturating_sub(window_ms);
        let oldest = self.samples.iter().find(|s| s.sampled_at_ms >= since)?;
        let avg = cpu_millis(oldest, newest)?;
        Some((
            avg,
            (newest.sampled_at_ms - oldest.sampled_at_ms).unsigned_abs(),
        ))
    }
}

/// A running instance container to sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub container_id: String,
    pub app: String,
    pub instance: String,
}

/// The instances to sample: running containers that belong to an app (build and test
/// containers carry no app label).
pub fn targets(containers: &[ObservedContainer]) -> Vec<Target> {
    containers
        .iter()
        .filter(|c| c.state == ContainerState::Running)
        .filter_map(|c| {
            let app = c.labels.get(labels::APP)?;
            Some(Target {
                container_id: c.id.clone(),
                app: app.clone(),
                instance: c
                    .labels
                    .get(labels::INSTANCE)
                    .cloned()
                    .unwrap_or_else(|| c.name.clone()),
            })
        })
        .collect()
}

#[derive(Debug, Clone)]
struct Tracked {
    app: String,
    instance: String,
    history: History,
}

/// The histories of every sampled instance, keyed by container id.
#[derive(Debug, Clone)]
pub struct UsageTracker {
    window: Duration,
    instances: HashMap<String, Tracked>,
}

impl UsageTracker {
    pub fn new(window: Duration) -> Self {
        UsageTracker {
            window,
            instances: HashMap::new(),
        }
    }

    /// Adds a sample of `target`.
    pub fn record(&mut self, target: &Target, sample: ResourceSample) {
        let tracked = self
            .instances
            .entry(target.container_id.clone())
            .or_insert_with(|| Tracked {
                app: target.app.clone(),
                instance: target.instance.clone(),
                history: History::default(),
            });
        tracked.history.push(sample, self.window);
    }

    /// Forgets every instance not in `running` (container ids): it stopped or vanished.
    pub fn retain_running(&mut self, running: &HashSet<&str>) {
        self.instances.retain(|id, _| running.contains(id.as_str()));
    }

    /// Forgets everything (the engine has not been answering for a window).
    pub fn clear(&mut self) {
        self.instances.clear();
    }

    /// The usage of every instance with at least one sample, by container id.
    pub fn usage(&self) -> HashMap<String, InstanceUsage> {
        self.instances
            .iter()
            .filter_map(|(id, tracked)| {
                let latest = tracked.history.latest()?;
                let avg = tracked.history.cpu_millis_avg();
                Some((
                    id.clone(),
                    InstanceUsage {
                        app: tracked.app.clone(),
                        instance: tracked.instance.clone(),
                        cpu_millis: tracked.history.cpu_millis(),
                        cpu_millis_avg: avg.map(|(millis, _)| millis),
                        avg_span_ms: avg.map_or(0, |(_, span)| span),
                        memory_bytes: latest.memory_bytes,
                        memory_limit_bytes: latest.memory_limit_bytes,
                        sampled_at: latest.sampled_at_ms,
                        history: tracked.history.clone(),
                    },
                ))
            })
            .collect()
    }
}

/// The latest usage of every sampled instance; cheap to clone, shared with the API.
#[derive(Debug, Clone, Default)]
pub struct UsageBook {
    inner: Arc<RwLock<Arc<HashMap<String, InstanceUsage>>>>,
}

impl UsageBook {
    /// The usage of the instance container `container_id`, once it has been sampled.
    pub fn instance(&self, container_id: &str) -> Option<InstanceUsage> {
        self.snapshot().get(container_id).cloned()
    }

    /// Every sampled instance, by container id, as of the last round.
    pub fn snapshot(&self) -> Arc<HashMap<String, InstanceUsage>> {
        Arc::clone(
            &self
                .inner
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        )
    }

    /// Replaces the contents with the result of a round.
    pub(crate) fn publish(&self, usage: HashMap<String, InstanceUsage>) {
        *self
            .inner
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(usage);
    }
}

/// Samples every `usage_interval` until the runtime stops; an interval of zero disables it.
pub(crate) async fn run(shared: Arc<Shared>) {
    let period = shared.config.usage_interval;
    if period.is_zero() {
        return;
    }
    let mut tracker = UsageTracker::new(HISTORY);
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failed_rounds = 0u32;
    let report = shared.config.usage_report.as_ref();
    loop {
        ticker.tick().await;
        if let Some(report) = report {
            report.busy();
        }
        match sample_round(&shared, &mut tracker).await {
            Ok(outcome) => {
                failed_rounds = 0;
                if let Some(report) = report {
                    report.succeeded(outcome);
                }
            }
            Err(error) => {
                if let Some(report) = report {
                    report.failed(format!("cannot list instances: {error}"));
                }
                failed_rounds = failed_rounds.saturating_add(1);
                if failed_rounds == 1 {
                    tracing::warn!(%error, "usage: cannot list instances");
                }
                // Numbers older than the window would pass for live ones: drop them.
                if period * failed_rounds >= WINDOW {
                    tracker.clear();
                }
            }
        }
        shared.usage.publish(tracker.usage());
    }
}

/// Lists the running instances, samples each, and records the samples; says how many.
async fn sample_round(shared: &Shared, tracker: &mut UsageTracker) -> Result<String, EngineError> {
    let containers = shared.list_instances(None).await?;
    let targets = targets(&containers);
    let instances = targets.len();
    // Owned values all the way: a stream borrowing from this frame trips the spawned task's
    // higher-ranked lifetime check.
    let results: Vec<(Target, Result<ResourceSample, String>)> = futures::stream::iter(targets)
        .map(|target| {
            let runtime = Arc::clone(&shared.runtime);
            async move {
                let sample = tokio::time::timeout(
                    SAMPLE_TIMEOUT,
                    runtime.resource_sample(&target.container_id),
                )
                .await
                .unwrap_or_else(|_| {
                    Err(EngineError::Other(format!(
                        "no answer within {} s",
                        SAMPLE_TIMEOUT.as_secs()
                    )))
                });
                match sample {
                    Ok(sample) => Some((target, Ok(sample))),
                    // Stopped or removed since the listing, or an engine without samples.
                    Err(
                        EngineError::NotFound(_)
                        | EngineError::Conflict(_)
                        | EngineError::Unsupported(_),
                    ) => None,
                    Err(error) => Some((target, Err(error.to_string()))),
                }
            }
        })
        .buffer_unordered(SAMPLE_CONCURRENCY)
        .filter_map(std::future::ready)
        .collect()
        .await;
    let running: HashSet<&str> = results
        .iter()
        .map(|(target, _)| target.container_id.as_str())
        .collect();
    tracker.retain_running(&running);
    let mut failures = 0usize;
    for (target, sample) in results {
        match sample {
            Ok(sample) => tracker.record(&target, sample),
            Err(error) => {
                failures += 1;
                tracing::debug!(instance = %target.instance, %error, "usage: sample failed");
            }
        }
    }
    if failures > 0 {
        tracing::warn!(
            failures,
            instances,
            "usage: some instances could not be sampled"
        );
    }
    Ok(format!(
        "{} of {instances} instances sampled",
        instances - failures
    ))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    const SEC: Millis = 1000;
    const MS: u64 = 1_000_000;

    fn sample(at: Millis, cpu_ns: u64) -> ResourceSample {
        ResourceSample {
            sampled_at_ms: at,
            cpu_time_ns: cpu_ns,
            memory_bytes: 1000 + at.unsigned_abs(),
            memory_limit_bytes: Some(1 << 30),
        }
    }

    #[test]
    fn cpu_rate_between_two_samples() {
        // (name, earlier (at, cpu ns), later (at, cpu ns), millicores)
        let cases: &[(&str, (Millis, u64), (Millis, u64), Option<u64>)] = &[
            ("idle", (0, 7), (5 * SEC, 7), Some(0)),
            ("one core", (0, 0), (5 * SEC, 5_000 * MS), Some(1000)),
            (
                "a fifth of a core",
                (10 * SEC, 1),
                (15 * SEC, 1 + 1_000 * MS),
                Some(200),
            ),
            ("two cores", (0, 0), (SEC, 2_000 * MS), Some(2000)),
            ("rounds down", (0, 0), (SEC, 1_499_999), Some(1)),
            ("rounds half up", (0, 0), (SEC, 1_500_000), Some(2)),
            ("under half a millicore", (0, 0), (SEC, 499_999), Some(0)),
            ("same time", (SEC, 0), (SEC, 5 * MS), None),
            ("time backwards", (2 * SEC, 0), (SEC, 5 * MS), None),
            ("counter backwards", (0, 10 * MS), (SEC, 5 * MS), None),
            (
                "no overflow",
                (0, 0),
                (SEC, u64::MAX),
                Some(18_446_744_073_710),
            ),
        ];
        for (name, (t0, c0), (t1, c1), want) in cases {
            assert_eq!(
                cpu_millis(&sample(*t0, *c0), &sample(*t1, *c1)),
                *want,
                "{name}"
            );
        }
    }

    #[test]
    fn history_rates_window_and_average() {
        struct Case {
            name: &'static str,
            /// (at ms, cumulative cpu ns), pushed in order.
            samples: Vec<(Millis, u64)>,
            latest: Option<u64>,
            avg: Option<(u64, u64)>,
            kept: usize,
        }
        // A steady 200 m: 1 s of CPU every 5 s.
        let steady: Vec<(Millis, u64)> = (0..=14)
            .map(|i| (i * 5 * SEC, i.unsigned_abs() * 1_000 * MS))
            .collect();
        let cases = vec![
            Case {
                name: "nothing yet",
                samples: vec![],
                latest: None,
                avg: None,
                kept: 0,
            },
            Case {
                name: "one sample has no rate",
                samples: vec![(0, 5 * MS)],
                latest: None,
                avg: None,
                kept: 1,
            },
            Case {
                name: "two samples",
                samples: vec![(0, 0), (5 * SEC, 1_000 * MS)],
                latest: Some(200),
                avg: Some((200, 5_000)),
                kept: 2,
            },
            Case {
                name: "latest is the last step, average the whole span",
                samples: vec![(0, 0), (5 * SEC, 1_000 * MS), (10 * SEC, 5_000 * MS)],
                latest: Some(800),
                avg: Some((500, 10_000)),
                kept: 3,
            },
            Case {
                name: "steady load over 70 s keeps one minute",
                samples: steady,
                latest: Some(200),
                avg: Some((200, 60_000)),
                kept: 13,
            },
            Case {
                name: "a burst older than the window no longer counts",
                samples: vec![
                    (0, 0),
                    (5 * SEC, 5_000 * MS),
                    (30 * SEC, 5_000 * MS),
                    (66 * SEC, 5_000 * MS),
                ],
                latest: Some(0),
                avg: Some((0, 36_000)),
                kept: 2,
            },
            Case {
                name: "a sample exactly a window old is kept",
                samples: vec![(0, 0), (60 * SEC, 6_000 * MS)],
                latest: Some(100),
                avg: Some((100, 60_000)),
                kept: 2,
            },
            Case {
                name: "repeated and older samples are ignored",
                samples: vec![
                    (0, 0),
                    (5 * SEC, 1_000 * MS),
                    (5 * SEC, 9_000 * MS),
                    (4 * SEC, 9_000 * MS),
                ],
                latest: Some(200),
                avg: Some((200, 5_000)),
                kept: 2,
            },
            Case {
                name: "a counter that went backwards starts over",
                samples: vec![(0, 0), (5 * SEC, 10_000 * MS), (10 * SEC, 1_000 * MS)],
                latest: None,
                avg: None,
                kept: 1,
            },
            Case {
                name: "after a restart in place rates resume",
                samples: vec![
                    (0, 0),
                    (5 * SEC, 10_000 * MS),
                    (10 * SEC, 1_000 * MS),
                    (15 * SEC, 3_500 * MS),
                ],
                latest: Some(500),
                avg: Some((500, 5_000)),
                kept: 2,
            },
        ];
        for case in cases {
            let mut history = History::default();
            for (at, cpu) in &case.samples {
                history.push(sample(*at, *cpu), WINDOW);
            }
            assert_eq!(history.cpu_millis(), case.latest, "{}: latest", case.name);
            assert_eq!(history.cpu_millis_avg(), case.avg, "{}: average", case.name);
            assert_eq!(history.len(), case.kept, "{}: kept", case.name);
        }
    }

    #[test]
    fn averages_over_a_shorter_window_use_its_samples_only() {
        // 100 m for a minute, then 1000 m for 15 s: samples every 5 s.
        let mut history = History::default();
        let mut cpu = 0;
        for i in 0..=15 {
            let at = i * 5 * SEC;
            history.push(sample(at, cpu), HISTORY);
            cpu += if i < 12 { 500 * MS } else { 5_000 * MS };
        }
        // (window, average, span)
        let cases = [
            (Duration::from_secs(15), Some((1000, 15_000))),
            (Duration::from_secs(60), Some((325, 60_000))),
            (HISTORY, Some((280, 75_000))),
            (Duration::from_secs(4), None),
        ];
        for (window, want) in cases {
            assert_eq!(history.cpu_millis_avg_within(window), want, "{window:?}");
        }
        assert_eq!(history.cpu_millis_avg(), Some((325, 60_000)));
    }

    fn target(id: &str, app: &str, instance: &str) -> Target {
        Target {
            container_id: id.into(),
            app: app.into(),
            instance: instance.into(),
        }
    }

    #[test]
    fn tracker_reports_each_instance_and_drops_vanished_ones() {
        let mut tracker = UsageTracker::new(WINDOW);
        let web = target("c1", "web", "web-0");
        let api = target("c2", "api", "api-3");
        tracker.record(&web, sample(0, 0));
        tracker.record(&api, sample(0, 0));
        tracker.record(&web, sample(5 * SEC, 500 * MS));
        let usage = tracker.usage();
        let web_usage = usage.get("c1").expect("web sampled");
        assert_eq!(
            InstanceUsage {
                history: History::default(),
                ..web_usage.clone()
            },
            InstanceUsage {
                app: "web".into(),
                instance: "web-0".into(),
                cpu_millis: Some(100),
                cpu_millis_avg: Some(100),
                avg_span_ms: 5_000,
                memory_bytes: 1000 + 5_000,
                memory_limit_bytes: Some(1 << 30),
                sampled_at: 5 * SEC,
                history: History::default(),
            }
        );
        assert_eq!(web_usage.history.len(), 2);
        assert_eq!(
            usage
                .get("c2")
                .map(|u| (u.cpu_millis, u.cpu_millis_avg, u.memory_bytes)),
            Some((None, None, 1000)),
            "one sample: memory, no CPU rate yet"
        );

        tracker.retain_running(&HashSet::from(["c2", "c9"]));
        let usage = tracker.usage();
        assert_eq!(
            usage.keys().map(String::as_str).collect::<Vec<_>>(),
            vec!["c2"],
            "c1 vanished"
        );

        // A container seen again after it vanished starts a new history.
        tracker.record(&web, sample(10 * SEC, 2_000 * MS));
        assert_eq!(tracker.usage()["c1"].cpu_millis, None);

        tracker.clear();
        assert!(tracker.usage().is_empty());
    }

    fn container(id: &str, state: ContainerState, labels: &[(&str, &str)]) -> ObservedContainer {
        ObservedContainer {
            id: id.into(),
            name: format!("berth-{id}"),
            image: "img".into(),
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>(),
            state,
            ip_address: None,
            created_at_ms: 0,
            started_at_ms: None,
            finished_at_ms: None,
            exit_code: None,
            error: None,
            node: "n".into(),
            node_draining: false,
            published_ports: Default::default(),
        }
    }

    #[test]
    fn only_running_app_instances_are_sampled() {
        let containers = [
            container(
                "a",
                ContainerState::Running,
                &[(labels::APP, "web"), (labels::INSTANCE, "web-0")],
            ),
            container("b", ContainerState::Exited, &[(labels::APP, "web")]),
            container("c", ContainerState::Running, &[(labels::BUILD, "17")]),
            container("d", ContainerState::Created, &[(labels::APP, "web")]),
            container("e", ContainerState::Running, &[(labels::APP, "api")]),
        ];
        assert_eq!(
            targets(&containers),
            vec![target("a", "web", "web-0"), target("e", "api", "berth-e")]
        );
    }

    #[test]
    fn book_serves_the_last_published_round() {
        let book = UsageBook::default();
        assert_eq!(book.instance("c1"), None);
        let mut tracker = UsageTracker::new(WINDOW);
        tracker.record(&target("c1", "web", "web-0"), sample(0, 0));
        book.publish(tracker.usage());
        let reader = book.clone();
        assert_eq!(reader.instance("c1").map(|u| u.memory_bytes), Some(1000));
        book.publish(HashMap::new());
        assert_eq!(reader.instance("c1"), None);
    }
}
