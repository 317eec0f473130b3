//! The build worker's Prometheus metrics: how long builds take by how they end, and how many
//! wait for a slot or run now. Handles owned by the [`BuildWorker`](super::worker::BuildWorker)
//! (clones share them); the `/metrics` door registers them at scrape time.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Upper bounds (seconds) of the build duration histogram: from a cached rebuild to a long
/// compile.
const BUILD_BUCKETS: [f64; 10] = [
    5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0,
];

/// How a build ended (its final status: `succeeded`, `failed`, `cancelled`, `timed_out`,
/// `interrupted`).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    pub status: &'static str,
}

/// The build worker's metric handles.
#[derive(Debug, Clone)]
pub struct BuildMetrics {
    duration: Family<StatusLabels, Histogram>,
    /// Builds this server holds that have not got a slot yet.
    queued: Gauge,
    /// Builds running now.
    running: Gauge,
}

impl Default for BuildMetrics {
    fn default() -> Self {
        BuildMetrics {
            duration: Family::new_with_constructor(|| Histogram::new(BUILD_BUCKETS)),
            queued: Gauge::default(),
            running: Gauge::default(),
        }
    }
}

/// Where a held build is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Queued,
    Running,
    Ended,
}

/// A build the worker holds, from [`BuildMetrics::held`] until it ends or is dropped.
#[derive(Debug)]
pub(crate) struct Held {
    metrics: BuildMetrics,
    stage: Stage,
}

impl Held {
    /// The build got its slot and runs.
    pub(crate) fn started(&mut self) {
        if self.stage == Stage::Queued {
            self.stage = Stage::Running;
            self.metrics.queued.dec();
            self.metrics.running.inc();
        }
    }

    /// The build ran `seconds` and ended with `status`: counted before its end is stored,
    /// so whoever reads the end reads the count.
    pub(crate) fn ended(&mut self, status: &'static str, seconds: f64) {
        self.leave();
        self.metrics
            .duration
            .get_or_create(&StatusLabels { status })
            .observe(seconds);
    }

    fn leave(&mut self) {
        match self.stage {
            Stage::Queued => self.metrics.queued.dec(),
            Stage::Running => self.metrics.running.dec(),
            Stage::Ended => return,
        };
        self.stage = Stage::Ended;
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.leave();
    }
}

impl BuildMetrics {
    /// A build enters the worker's queue.
    pub(crate) fn held(&self) -> Held {
        self.queued.inc();
        Held {
            metrics: self.clone(),
            stage: Stage::Queued,
        }
    }

    /// Registers the handles (names as in `docs/METRICS.md`).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "berth_build_duration_seconds",
            "Time a build took from getting its slot to its end, by final status",
            self.duration.clone(),
        );
        registry.register(
            "berth_builds_queued",
            "Builds waiting for a build slot on this server",
            self.queued.clone(),
        );
        registry.register(
            "berth_builds_running",
            "Builds running now on this server",
            self.running.clone(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_move_from_queued_to_running_to_gone() {
        let metrics = BuildMetrics::default();
        let mut first = metrics.held();
        let second = metrics.held();
        assert_eq!((metrics.queued.get(), metrics.running.get()), (2, 0));
        first.started();
        first.started();
        assert_eq!((metrics.queued.get(), metrics.running.get()), (1, 1));
        first.ended("succeeded", 12.0);
        assert_eq!((metrics.queued.get(), metrics.running.get()), (1, 0));
        drop(first);
        drop(second);
        assert_eq!((metrics.queued.get(), metrics.running.get()), (0, 0));
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains("berth_build_duration_seconds_count{status=\"succeeded\"} 1"),
            "{text}"
        );
    }
}
