//! The controller's own Prometheus metrics: how long reconciles take and how they fail, and
//! failed health probes per app. The handles live in [`Shared`](crate::Shared) (no global
//! registry: every controller, test ones included, counts on its own); the server's `/metrics`
//! door registers them with [`ControllerMetrics::register`] at scrape time. Updates are atomic
//! adds on handles looked up by small label sets, once per reconcile or probe — never on the
//! router's data path.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Upper bounds (seconds) of the reconcile duration histogram: a reconcile with nothing to do
/// takes milliseconds, one that starts or stops containers up to seconds.
const RECONCILE_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// How a reconcile ended: `ok`, or why it failed.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: &'static str,
}

/// A failed probe: the app and which probe (`readiness`, `liveness`).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProbeLabels {
    pub app: String,
    pub probe: &'static str,
}

/// The controller's metric handles; clones share them.
#[derive(Debug, Clone)]
pub struct ControllerMetrics {
    reconcile_duration: Family<OutcomeLabels, Histogram>,
    reconcile_errors: Family<OutcomeLabels, Counter>,
    probe_failures: Family<ProbeLabels, Counter>,
}

impl Default for ControllerMetrics {
    fn default() -> Self {
        ControllerMetrics {
            reconcile_duration: Family::new_with_constructor(|| Histogram::new(RECONCILE_BUCKETS)),
            reconcile_errors: Family::default(),
            probe_failures: Family::default(),
        }
    }
}

impl ControllerMetrics {
    /// Counts one reconcile of `seconds` that ended with `outcome` (`ok`, `engine`, `store`,
    /// `panic`); anything but `ok` also counts as an error.
    pub(crate) fn reconciled(&self, outcome: &'static str, seconds: f64) {
        let labels = OutcomeLabels { outcome };
        self.reconcile_duration
            .get_or_create(&labels)
            .observe(seconds);
        if outcome != "ok" {
            self.reconcile_errors.get_or_create(&labels).inc();
        }
    }

    /// Counts one failed probe of `app`.
    pub(crate) fn probe_failed(&self, app: &str, probe: &'static str) {
        self.probe_failures
            .get_or_create(&ProbeLabels {
                app: app.to_string(),
                probe,
            })
            .inc();
    }

    /// Forgets a deleted app's probe failures, so its series go with it.
    pub(crate) fn forget_app(&self, app: &str) {
        for probe in ["readiness", "liveness"] {
            self.probe_failures.remove(&ProbeLabels {
                app: app.to_string(),
                probe,
            });
        }
    }

    /// Failed probes of `app` counted so far (`probe`: `readiness` or `liveness`).
    pub fn probe_failures(&self, app: &str, probe: &'static str) -> u64 {
        self.probe_failures
            .get(&ProbeLabels {
                app: app.to_string(),
                probe,
            })
            .map_or(0, |counter| counter.get())
    }

    /// Registers the handles (names as in `docs/METRICS.md`).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "berth_reconcile_duration_seconds",
            "Time one reconcile of one app took, by outcome (ok, engine, store, panic)",
            self.reconcile_duration.clone(),
        );
        registry.register(
            "berth_reconcile_errors",
            "Reconciles that failed, by cause (engine, store, panic)",
            self.reconcile_errors.clone(),
        );
        registry.register(
            "berth_probe_failures",
            "Health probes of an app's instances that failed, by app and probe (readiness, liveness)",
            self.probe_failures.clone(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconciles_and_probe_failures_are_counted_and_forgotten() {
        let metrics = ControllerMetrics::default();
        metrics.reconciled("ok", 0.002);
        metrics.reconciled("engine", 0.5);
        metrics.probe_failed("web", "readiness");
        metrics.probe_failed("web", "readiness");
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &registry).unwrap();
        for line in [
            "berth_reconcile_duration_seconds_count{outcome=\"ok\"} 1",
            "berth_reconcile_duration_seconds_bucket{outcome=\"ok\",le=\"0.0025\"} 1",
            "berth_reconcile_errors_total{outcome=\"engine\"} 1",
            "berth_probe_failures_total{app=\"web\",probe=\"readiness\"} 2",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
        assert!(!text.contains("berth_reconcile_errors_total{outcome=\"ok\"}"));
        metrics.forget_app("web");
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &registry).unwrap();
        assert!(!text.contains("app=\"web\""), "{text}");
    }
}
