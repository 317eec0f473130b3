//! The traffic a canary is judged on: the router's per-instance counts, summed by revision
//! (the canary's against the rest) from a baseline taken when counting started. Baselines live
//! in memory: after a restart of the server counting starts again, and the planner extends the
//! window to match ([`CanaryTraffic::since`]).

use std::collections::HashMap;
use std::sync::Mutex;

use berth_core::canary::{CanaryTraffic, TrafficCount};
use berth_core::{App, Millis};

use crate::endpoints::Endpoint;

/// What the router counted per instance.
pub trait TrafficSource: Send + Sync + 'static {
    /// Requests sent to the instance at `address:port` and how many failed (5xx, or no
    /// answer), since it took traffic; `None` when the router does not know it.
    fn outcomes(&self, address: &str, port: u16) -> Option<TrafficCount>;
}

/// Counts per instance when counting started, for the app whose canary started at
/// `canary_started_at`.
#[derive(Debug)]
struct Baseline {
    canary_started_at: Millis,
    since: Millis,
    counts: HashMap<(String, u16), TrafficCount>,
}

/// The baselines of the canaries being judged, by app.
#[derive(Debug, Default)]
pub(crate) struct CanaryCounts {
    baselines: Mutex<HashMap<String, Baseline>>,
}

impl CanaryCounts {
    /// The traffic of `app`'s canary window so far, when its rollout judges a canary that
    /// started; `None` otherwise (and the app's baseline is forgotten).
    pub(crate) fn traffic(
        &self,
        source: &dyn TrafficSource,
        app: &App,
        endpoints: &[Endpoint],
        now: Millis,
    ) -> Option<CanaryTraffic> {
        let mut baselines = self
            .baselines
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let started_at = app
            .canary_being_judged()
            .and(app.rollout.canary)
            .map(|progress| progress.started_at);
        let Some(started_at) = started_at else {
            baselines.remove(&app.name);
            return None;
        };
        let counts: Vec<(&Endpoint, TrafficCount)> = endpoints
            .iter()
            .map(|endpoint| {
                let count = source
                    .outcomes(&endpoint.address, endpoint.port)
                    .unwrap_or_default();
                (endpoint, count)
            })
            .collect();
        let baseline = baselines
            .entry(app.name.clone())
            .and_modify(|baseline| {
                if baseline.canary_started_at != started_at {
                    baseline.canary_started_at = started_at;
                    baseline.since = now;
                    baseline.counts.clear();
                }
            })
            .or_insert_with(|| Baseline {
                canary_started_at: started_at,
                since: now,
                counts: HashMap::new(),
            });
        if baseline.since == now {
            for (endpoint, count) in &counts {
                baseline
                    .counts
                    .insert((endpoint.address.clone(), endpoint.port), *count);
            }
        }
        let mut traffic = CanaryTraffic {
            since: baseline.since,
            stable: TrafficCount::default(),
            canary: TrafficCount::default(),
        };
        for (endpoint, count) in counts {
            let base = baseline
                .counts
                .get(&(endpoint.address.clone(), endpoint.port))
                .copied()
                .unwrap_or_default();
            let counted = count.since(base);
            if endpoint.revision == app.current_revision {
                traffic.canary = traffic.canary + counted;
            } else {
                traffic.stable = traffic.stable + counted;
            }
        }
        Some(traffic)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_core::canary::{Canary, CanaryProgress};
    use berth_core::spec::AppSpec;

    struct Counted(Mutex<HashMap<u16, TrafficCount>>);

    impl TrafficSource for Counted {
        fn outcomes(&self, _address: &str, port: u16) -> Option<TrafficCount> {
            self.0.lock().unwrap().get(&port).copied()
        }
    }

    fn endpoint(port: u16, revision: u32) -> Endpoint {
        Endpoint {
            container_id: format!("c{port}"),
            instance: format!("web-{port}"),
            address: "10.0.0.2".into(),
            port,
            revision,
        }
    }

    fn count(requests: u64, errors: u64) -> TrafficCount {
        TrafficCount { requests, errors }
    }

    #[test]
    fn the_window_counts_from_a_baseline_by_revision() {
        let mut app = App::created("web", "t", &AppSpec::default(), 0);
        app.current_revision = 2;
        app.stable_revision = Some(1);
        app.strategy.canary = Some(Canary {
            weight_percent: 10,
            header: None,
            duration_ms: 60_000,
        });
        let source = Counted(Mutex::new(
            [(1, count(100, 5)), (2, count(50, 0)), (3, count(7, 7))].into(),
        ));
        let endpoints = [endpoint(1, 1), endpoint(2, 1), endpoint(3, 2)];
        let counts = CanaryCounts::default();
        // No canary started: nothing to count.
        assert_eq!(counts.traffic(&source, &app, &endpoints, 1_000), None);
        app.rollout.canary = Some(CanaryProgress {
            started_at: 900,
            passed: false,
        });
        let first = counts.traffic(&source, &app, &endpoints, 1_000).unwrap();
        assert_eq!(
            (first.since, first.stable, first.canary),
            (1_000, count(0, 0), count(0, 0))
        );
        source.0.lock().unwrap().extend([
            (1, count(150, 6)),
            (2, count(60, 0)),
            (3, count(17, 12)),
            (4, count(3, 1)), // a canary instance that joined later counts from 0
        ]);
        let endpoints = [
            endpoint(1, 1),
            endpoint(2, 1),
            endpoint(3, 2),
            endpoint(4, 2),
        ];
        let later = counts.traffic(&source, &app, &endpoints, 5_000).unwrap();
        assert_eq!(
            (later.since, later.stable, later.canary),
            (1_000, count(60, 1), count(13, 6))
        );
        // A new canary (another rollout) starts counting again.
        app.rollout.canary = Some(CanaryProgress {
            started_at: 6_000,
            passed: false,
        });
        let again = counts.traffic(&source, &app, &endpoints, 7_000).unwrap();
        assert_eq!((again.since, again.canary), (7_000, count(0, 0)));
        // Passed: forgotten.
        app.rollout.canary = Some(CanaryProgress {
            started_at: 6_000,
            passed: true,
        });
        assert_eq!(counts.traffic(&source, &app, &endpoints, 8_000), None);
        assert!(counts.baselines.lock().unwrap().is_empty());
    }
}
