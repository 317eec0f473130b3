//! Canary rollouts: a new revision first takes a share of the app's traffic (or only the
//! requests carrying a header) on one extra instance for a set time, and the rest of the
//! rollout goes on only when its error rate is no worse than the old revision's. The settings,
//! the stored progress and the verdict — pure, no clock, no IO.

use serde::{Deserialize, Serialize};

/// The shortest canary window.
pub const MIN_DURATION_MS: u64 = 5_000;
/// The longest canary window (a day).
pub const MAX_DURATION_MS: u64 = 24 * 3600 * 1000;
/// Fewer canary requests than this in the window: there is too little traffic to compare,
/// and the canary passes on its health checks alone (the verdict says so).
pub const MIN_REQUESTS: u64 = 20;
/// How much worse than the old revision's the canary's error rate may be (in percentage
/// points) before it fails: a floor against noise on small counts.
pub const TOLERANCE_POINTS: f64 = 1.0;

/// How a new revision is tried before the rest of the rollout (part of the app's strategy).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Canary {
    /// Share of the app's requests the canary takes, 1–99 percent. Ignored when `header` is
    /// set: then only the requests carrying it go to the canary.
    #[serde(default)]
    pub weight_percent: u8,
    /// Only requests with this header (and value) reach the canary.
    #[serde(default)]
    pub header: Option<CanaryHeader>,
    /// How long the canary takes traffic before the verdict.
    pub duration_ms: u64,
}

/// A request header that sends a request to the canary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CanaryHeader {
    /// Lowercase header name.
    pub name: String,
    pub value: String,
}

impl Canary {
    /// Checks the settings; the error names the field.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        match &self.header {
            Some(header) => {
                let name_ok = !header.name.is_empty()
                    && header.name.len() <= 64
                    && header
                        .name
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
                if !name_ok {
                    return Err((
                        "strategy.canary.header",
                        format!(
                            "{:?} is not a header name (lowercase letters, digits and '-', up \
                             to 64)",
                            header.name
                        ),
                    ));
                }
                let value_ok = !header.value.is_empty()
                    && header.value.len() <= 256
                    && header.value.bytes().all(|b| (b' '..=b'~').contains(&b));
                if !value_ok {
                    return Err((
                        "strategy.canary.header",
                        format!(
                            "the value of header {} must be 1 to 256 printable ASCII characters",
                            header.name
                        ),
                    ));
                }
            }
            None if !(1..=99).contains(&self.weight_percent) => {
                return Err((
                    "strategy.canary.weight_percent",
                    format!(
                        "{} % is not a share of traffic from 1 to 99 %",
                        self.weight_percent
                    ),
                ));
            }
            None => {}
        }
        if !(MIN_DURATION_MS..=MAX_DURATION_MS).contains(&self.duration_ms) {
            return Err((
                "strategy.canary.duration",
                format!(
                    "{} s is not between {} s and {} h",
                    self.duration_ms.div_ceil(1000),
                    MIN_DURATION_MS / 1000,
                    MAX_DURATION_MS / 3_600_000
                ),
            ));
        }
        Ok(())
    }

    /// What the canary takes, in words: "10 % of requests" or "requests with x-canary: 1".
    pub fn share(&self) -> String {
        match &self.header {
            Some(header) => format!("requests with {}: {}", header.name, header.value),
            None => format!("{} % of requests", self.weight_percent),
        }
    }
}

/// How far the canary of the rollout in progress got (stored with the rollout).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CanaryProgress {
    /// When the canary instance became available and started taking traffic.
    pub started_at: crate::Millis,
    /// The verdict was good: the rest of the rollout goes on.
    pub passed: bool,
}

/// Requests answered and how many of them failed (5xx, or the instance did not answer).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrafficCount {
    pub requests: u64,
    pub errors: u64,
}

impl TrafficCount {
    /// Error rate in percent (0 without requests).
    pub fn error_percent(self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.errors as f64 * 100.0 / self.requests as f64
        }
    }

    /// What was counted after `base` (counters that went backwards, as after a restart of
    /// the server, count from zero).
    pub fn since(self, base: TrafficCount) -> TrafficCount {
        if self.requests < base.requests || self.errors < base.errors {
            return self;
        }
        TrafficCount {
            requests: self.requests - base.requests,
            errors: self.errors - base.errors,
        }
    }
}

impl std::ops::Add for TrafficCount {
    type Output = TrafficCount;

    fn add(self, other: TrafficCount) -> TrafficCount {
        TrafficCount {
            requests: self.requests.saturating_add(other.requests),
            errors: self.errors.saturating_add(other.errors),
        }
    }
}

/// The traffic of the canary window, as the router counted it since `since`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CanaryTraffic {
    /// When counting started (the canary's start, or later after a restart of the server).
    pub since: crate::Millis,
    /// The old revision's instances.
    pub stable: TrafficCount,
    /// The new revision's instances.
    pub canary: TrafficCount,
}

/// The canary's verdict and the sentence that explains it.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Pass(String),
    Fail(String),
}

/// Judges the canary revision `canary_revision` against `stable_revision` on the window's
/// traffic: it fails when its error rate is more than [`TOLERANCE_POINTS`] above the old
/// revision's; with fewer than [`MIN_REQUESTS`] requests it passes on its health checks alone.
pub fn judge(traffic: &CanaryTraffic, canary_revision: u32, stable_revision: u32) -> Verdict {
    let (canary, stable) = (traffic.canary, traffic.stable);
    let rates = format!(
        "revision {canary_revision} answered {:.1} % errors ({} of {} requests), revision \
         {stable_revision} {:.1} % ({} of {})",
        canary.error_percent(),
        canary.errors,
        canary.requests,
        stable.error_percent(),
        stable.errors,
        stable.requests
    );
    if canary.requests < MIN_REQUESTS {
        return Verdict::Pass(format!(
            "canary passed on its health checks: only {} requests reached it (a verdict on \
             errors needs {MIN_REQUESTS}); {rates}",
            canary.requests
        ));
    }
    if canary.error_percent() > stable.error_percent() + TOLERANCE_POINTS {
        return Verdict::Fail(format!("canary failed: {rates}"));
    }
    Verdict::Pass(format!("canary passed: {rates}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(requests: u64, errors: u64) -> TrafficCount {
        TrafficCount { requests, errors }
    }

    #[test]
    fn the_verdict_compares_error_rates_with_a_noise_floor() {
        // (stable, canary, passes)
        let cases = [
            (count(1000, 0), count(100, 0), true),
            (count(1000, 0), count(100, 1), true), // 1 % vs 0 %: within the floor
            (count(1000, 0), count(100, 2), false), // 2 % vs 0 %
            (count(1000, 100), count(100, 10), true), // 10 % vs 10 %
            (count(1000, 100), count(100, 11), true),
            (count(1000, 100), count(100, 12), false),
            (count(0, 0), count(100, 50), false), // no old traffic: judged against 0 %
            (count(1000, 0), count(19, 19), true), // too little traffic to judge
            (count(1000, 0), count(20, 20), false),
            (count(1000, 1000), count(50, 50), true), // no worse than the old revision
        ];
        for (stable, canary, passes) in cases {
            let traffic = CanaryTraffic {
                since: 0,
                stable,
                canary,
            };
            let verdict = judge(&traffic, 2, 1);
            assert_eq!(
                matches!(verdict, Verdict::Pass(_)),
                passes,
                "{stable:?} vs {canary:?}: {verdict:?}"
            );
        }
        let Verdict::Fail(message) = judge(
            &CanaryTraffic {
                since: 0,
                stable: count(200, 2),
                canary: count(40, 10),
            },
            7,
            6,
        ) else {
            panic!("fails")
        };
        assert_eq!(
            message,
            "canary failed: revision 7 answered 25.0 % errors (10 of 40 requests), revision 6 \
             1.0 % (2 of 200)"
        );
    }

    #[test]
    fn counts_since_a_base_restart_from_zero_when_they_went_back() {
        assert_eq!(count(10, 3).since(count(4, 1)), count(6, 2));
        assert_eq!(count(10, 3).since(count(10, 3)), count(0, 0));
        assert_eq!(count(5, 0).since(count(10, 3)), count(5, 0));
        assert_eq!(count(5, 1) + count(2, 2), count(7, 3));
        assert_eq!(count(0, 0).error_percent(), 0.0);
    }

    #[test]
    fn settings_are_checked_field_by_field() {
        let header = |name: &str, value: &str| {
            Some(CanaryHeader {
                name: name.into(),
                value: value.into(),
            })
        };
        // (weight, header, duration, the field refused)
        let cases = [
            (10, None, 60_000, None),
            (1, None, MIN_DURATION_MS, None),
            (99, None, MAX_DURATION_MS, None),
            (0, header("x-canary", "1"), 60_000, None),
            (0, None, 60_000, Some("strategy.canary.weight_percent")),
            (100, None, 60_000, Some("strategy.canary.weight_percent")),
            (10, None, 4_999, Some("strategy.canary.duration")),
            (
                10,
                None,
                MAX_DURATION_MS + 1,
                Some("strategy.canary.duration"),
            ),
            (
                0,
                header("X-Canary", "1"),
                60_000,
                Some("strategy.canary.header"),
            ),
            (
                0,
                header("x canary", "1"),
                60_000,
                Some("strategy.canary.header"),
            ),
            (0, header("", "1"), 60_000, Some("strategy.canary.header")),
            (
                0,
                header("x-canary", ""),
                60_000,
                Some("strategy.canary.header"),
            ),
            (
                0,
                header("x-canary", "a\nb"),
                60_000,
                Some("strategy.canary.header"),
            ),
        ];
        for (weight_percent, header, duration_ms, refused) in cases {
            let canary = Canary {
                weight_percent,
                header: header.clone(),
                duration_ms,
            };
            assert_eq!(
                canary.validate().err().map(|(field, _)| field),
                refused,
                "{canary:?}"
            );
        }
    }
}
