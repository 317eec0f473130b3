//! The health state machine of one instance: readiness and liveness from probe outcomes.
//!
//! Readiness decides whether an instance counts (and later receives traffic); liveness decides
//! whether it must be replaced. Liveness failures only count once the instance has been ready
//! at least once or its probe's initial delay has passed, so a slow start is judged by the
//! rollout's progress deadline rather than killed.

use serde::{Deserialize, Serialize};

use crate::Millis;
use crate::spec::Probe;

/// Whether an instance may serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Readiness {
    /// Not probed enough yet (just started, or Berth just restarted).
    Unknown,
    Ready {
        since: Millis,
    },
    NotReady {
        since: Millis,
    },
}

impl Readiness {
    pub fn is_ready(self) -> bool {
        matches!(self, Readiness::Ready { .. })
    }
}

/// Whether an instance is alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Liveness {
    Healthy,
    Failing { since: Millis },
}

/// A change worth an event and a reconcile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthChange {
    BecameReady,
    BecameNotReady { reason: String, failures: u32 },
    BecameUnhealthy { reason: String, failures: u32 },
    Recovered,
}

/// Probe-derived state of one instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceHealth {
    pub readiness: Readiness,
    pub liveness: Liveness,
    pub ever_ready: bool,
    /// The reason of the last failed probe, for status output.
    pub last_failure: Option<String>,
    ready_successes: u32,
    ready_failures: u32,
    live_failures: u32,
}

impl Default for InstanceHealth {
    fn default() -> Self {
        InstanceHealth {
            readiness: Readiness::Unknown,
            liveness: Liveness::Healthy,
            ever_ready: false,
            last_failure: None,
            ready_successes: 0,
            ready_failures: 0,
            live_failures: 0,
        }
    }
}

impl InstanceHealth {
    /// Health of an instance without a readiness probe: ready as soon as it runs.
    pub fn ready_without_probe(started_at: Millis) -> Self {
        InstanceHealth {
            readiness: Readiness::Ready { since: started_at },
            ever_ready: true,
            ..InstanceHealth::default()
        }
    }

    /// Health of an instance that the server this one took over from saw ready: ready from
    /// `since` until its own probes say otherwise.
    pub fn handed_over_ready(since: Millis) -> Self {
        InstanceHealth::ready_without_probe(since)
    }

    /// Records one readiness probe outcome (`Err` carries the failure reason).
    pub fn record_readiness(
        &mut self,
        probe: &Probe,
        outcome: Result<(), String>,
        now: Millis,
    ) -> Option<HealthChange> {
        match outcome {
            Ok(()) => {
                self.ready_failures = 0;
                self.ready_successes = self.ready_successes.saturating_add(1);
                if !self.readiness.is_ready() && self.ready_successes >= probe.success_threshold {
                    self.readiness = Readiness::Ready { since: now };
                    self.ever_ready = true;
                    self.last_failure = None;
                    return Some(HealthChange::BecameReady);
                }
                None
            }
            Err(reason) => {
                self.ready_successes = 0;
                self.ready_failures = self.ready_failures.saturating_add(1);
                self.last_failure = Some(reason.clone());
                let was_ready = self.readiness.is_ready();
                if self.ready_failures >= probe.failure_threshold
                    && !matches!(self.readiness, Readiness::NotReady { .. })
                {
                    self.readiness = Readiness::NotReady { since: now };
                    if was_ready {
                        return Some(HealthChange::BecameNotReady {
                            reason,
                            failures: self.ready_failures,
                        });
                    }
                }
                None
            }
        }
    }

    /// Whether liveness failures count yet for an instance that started at `started_at`.
    pub fn liveness_armed(&self, probe: &Probe, started_at: Millis, now: Millis) -> bool {
        self.ever_ready
            || (probe.initial_delay_ms > 0 && now - started_at >= probe.initial_delay_ms as i64)
    }

    /// Records one liveness probe outcome.
    pub fn record_liveness(
        &mut self,
        probe: &Probe,
        started_at: Millis,
        outcome: Result<(), String>,
        now: Millis,
    ) -> Option<HealthChange> {
        match outcome {
            Ok(()) => {
                self.live_failures = 0;
                if matches!(self.liveness, Liveness::Failing { .. }) {
                    self.liveness = Liveness::Healthy;
                    return Some(HealthChange::Recovered);
                }
                None
            }
            Err(reason) => {
                self.last_failure = Some(reason.clone());
                if !self.liveness_armed(probe, started_at, now) {
                    return None;
                }
                self.live_failures = self.live_failures.saturating_add(1);
                if self.live_failures >= probe.failure_threshold
                    && self.liveness == Liveness::Healthy
                {
                    self.liveness = Liveness::Failing { since: now };
                    return Some(HealthChange::BecameUnhealthy {
                        reason,
                        failures: self.live_failures,
                    });
                }
                None
            }
        }
    }
}

/// An instance's health as the prober of the server running the controllers last saw it,
/// recorded in the store at every change so that every server of an installation shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedHealth {
    pub readiness: Readiness,
    pub liveness: Liveness,
    pub ever_ready: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<String>,
}

impl From<&InstanceHealth> for RecordedHealth {
    fn from(health: &InstanceHealth) -> Self {
        RecordedHealth {
            readiness: health.readiness,
            liveness: health.liveness,
            ever_ready: health.ever_ready,
            last_failure: health.last_failure.clone(),
        }
    }
}

impl RecordedHealth {
    /// The health to show (the probe counters start afresh).
    pub fn into_health(self) -> InstanceHealth {
        InstanceHealth {
            readiness: self.readiness,
            liveness: self.liveness,
            ever_ready: self.ever_ready,
            last_failure: self.last_failure,
            ..InstanceHealth::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(success: u32, failure: u32) -> Probe {
        Probe {
            success_threshold: success,
            failure_threshold: failure,
            ..Probe::default()
        }
    }

    /// Feeds readiness outcomes (true = pass) one per second; returns the changes and final state.
    fn run_readiness(p: &Probe, outcomes: &[bool]) -> (Vec<Option<HealthChange>>, Readiness) {
        let mut h = InstanceHealth::default();
        let changes = outcomes
            .iter()
            .enumerate()
            .map(|(i, ok)| {
                let outcome = if *ok {
                    Ok(())
                } else {
                    Err("HTTP 500".to_string())
                };
                h.record_readiness(p, outcome, i as Millis * 1000)
            })
            .collect();
        (changes, h.readiness)
    }

    #[test]
    fn readiness_thresholds() {
        let ready = Some(HealthChange::BecameReady);
        let not_ready = |n| {
            Some(HealthChange::BecameNotReady {
                reason: "HTTP 500".into(),
                failures: n,
            })
        };
        let cases: Vec<(Probe, Vec<bool>, Vec<Option<HealthChange>>, Readiness)> = vec![
            (
                probe(1, 3),
                vec![true],
                vec![ready.clone()],
                Readiness::Ready { since: 0 },
            ),
            (
                probe(2, 3),
                vec![true, true],
                vec![None, ready.clone()],
                Readiness::Ready { since: 1000 },
            ),
            (
                probe(2, 3),
                vec![true, false, true],
                vec![None, None, None],
                Readiness::Unknown,
            ),
            // Never ready: failures before the first success make it not ready without an event.
            (
                probe(1, 2),
                vec![false, false],
                vec![None, None],
                Readiness::NotReady { since: 1000 },
            ),
            (
                probe(1, 2),
                vec![true, false, false],
                vec![ready.clone(), None, not_ready(2)],
                Readiness::NotReady { since: 2000 },
            ),
            // A single failure below the threshold keeps it ready.
            (
                probe(1, 3),
                vec![true, false, true, false],
                vec![ready.clone(), None, None, None],
                Readiness::Ready { since: 0 },
            ),
            (
                probe(1, 1),
                vec![true, false, true],
                vec![ready.clone(), not_ready(1), ready.clone()],
                Readiness::Ready { since: 2000 },
            ),
        ];
        for (p, outcomes, want_changes, want_state) in cases {
            let (changes, state) = run_readiness(&p, &outcomes);
            assert_eq!(changes, want_changes, "outcomes {outcomes:?}");
            assert_eq!(state, want_state, "outcomes {outcomes:?}");
        }
    }

    #[test]
    fn liveness_counts_only_once_armed() {
        let p = probe(1, 2);
        let fail = || Err("connection refused".to_string());
        // Not ready yet and no initial delay: failures are not counted.
        let mut h = InstanceHealth::default();
        assert_eq!(h.record_liveness(&p, 0, fail(), 1000), None);
        assert_eq!(h.record_liveness(&p, 0, fail(), 2000), None);
        assert_eq!(h.liveness, Liveness::Healthy);

        // With an initial delay, failures count after it.
        let delayed = Probe {
            initial_delay_ms: 5000,
            ..p.clone()
        };
        let mut h = InstanceHealth::default();
        assert_eq!(h.record_liveness(&delayed, 0, fail(), 4000), None);
        assert_eq!(h.record_liveness(&delayed, 0, fail(), 5000), None);
        assert_eq!(
            h.record_liveness(&delayed, 0, fail(), 6000),
            Some(HealthChange::BecameUnhealthy {
                reason: "connection refused".into(),
                failures: 2
            })
        );
        assert_eq!(h.liveness, Liveness::Failing { since: 6000 });
        // Further failures do not repeat the change; a pass recovers.
        assert_eq!(h.record_liveness(&delayed, 0, fail(), 7000), None);
        assert_eq!(
            h.record_liveness(&delayed, 0, Ok(()), 8000),
            Some(HealthChange::Recovered)
        );

        // Once ready, failures count.
        let mut h = InstanceHealth::default();
        h.record_readiness(&p, Ok(()), 0);
        assert_eq!(h.record_liveness(&p, 0, fail(), 1000), None);
        assert!(matches!(
            h.record_liveness(&p, 0, fail(), 2000),
            Some(HealthChange::BecameUnhealthy { .. })
        ));
    }
}
