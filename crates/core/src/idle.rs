//! Scale to zero when idle (opt-in per app): the setting's bounds, what an app scaled to 0 for
//! idling remembers, and the pure decision of when it has idled long enough.

use serde::{Deserialize, Serialize};

use crate::{App, Millis};

/// The shortest idle timeout: an app is never scaled to 0 under a burst of quiet seconds.
pub const MIN_IDLE_TIMEOUT_SECS: u32 = 10;
/// The longest idle timeout (30 days).
pub const MAX_IDLE_TIMEOUT_SECS: u32 = 30 * 24 * 3600;

/// An app Berth scaled to 0 because it received no request for its idle timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Idled {
    /// The instance count it comes back to on the next request.
    pub replicas: u32,
    pub since: Millis,
}

/// What the router saw of an app's traffic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Activity {
    /// When the last request for the app arrived, if any since `watching_since`.
    pub last_request: Option<Millis>,
    /// Requests in progress now (a long download or a WebSocket keeps the app awake).
    pub in_progress: u64,
    /// Since when requests are counted (the router's start): no request seen means none
    /// since then, not none ever.
    pub watching_since: Millis,
}

/// Whether `app` should be scaled to 0 now: it has an idle timeout, runs instances and is not
/// rolling out, nothing is in progress, and neither a request nor a change of the app (its
/// creation, a deploy, a scale, a wake) happened within the timeout.
pub fn idle_due(app: &App, activity: Activity, now: Millis) -> bool {
    let Some(timeout) = app.idle_timeout_secs else {
        return false;
    };
    if app.idled.is_some()
        || app.replicas == 0
        || app.rollout.phase.in_progress()
        || activity.in_progress > 0
    {
        return false;
    }
    let last = activity
        .last_request
        .unwrap_or(Millis::MIN)
        .max(activity.watching_since)
        .max(app.updated_at);
    now.saturating_sub(last) >= i64::from(timeout) * 1000
}

/// An idle timeout as people write it: `15m`, `1h30m`, `45s`.
pub fn describe_timeout(secs: u32) -> String {
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut out = String::new();
    for (value, unit) in [(h, 'h'), (m, 'm'), (s, 's')] {
        if value > 0 {
            out.push_str(&format!("{value}{unit}"));
        }
    }
    if out.is_empty() {
        out.push_str("0s");
    }
    out
}

/// Checks an idle timeout against its bounds; the problem, for the field's error.
pub fn timeout_problem(secs: u32) -> Option<String> {
    (!(MIN_IDLE_TIMEOUT_SECS..=MAX_IDLE_TIMEOUT_SECS).contains(&secs)).then(|| {
        format!(
            "must be between {MIN_IDLE_TIMEOUT_SECS} and {MAX_IDLE_TIMEOUT_SECS} seconds \
             (10s to 30 days), or null for no idle timeout"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::AppSpec;
    use crate::{Rollout, RolloutPhase};

    fn app(timeout: Option<u32>, replicas: u32, phase: RolloutPhase, idled: bool) -> App {
        let spec = AppSpec {
            replicas,
            ..AppSpec::default()
        };
        let mut app = App::created("web", "shop", &spec, 1_000);
        app.idle_timeout_secs = timeout;
        app.rollout = Rollout {
            phase,
            ..app.rollout
        };
        app.idled = idled.then_some(Idled {
            replicas: 2,
            since: 1_000,
        });
        app
    }

    #[test]
    fn an_app_idles_out_only_after_its_timeout_without_traffic() {
        use RolloutPhase::{Complete, Progressing};
        let quiet = Activity {
            last_request: None,
            in_progress: 0,
            watching_since: 0,
        };
        let requested = |at| Activity {
            last_request: Some(at),
            ..quiet
        };
        // (timeout s, replicas, phase, idled already, activity, now, due)
        let cases = [
            (None, 1, Complete, false, quiet, 1_000_000, false),
            (Some(10), 1, Complete, false, quiet, 10_999, false),
            (Some(10), 1, Complete, false, quiet, 11_000, true),
            (Some(10), 0, Complete, false, quiet, 99_000, false),
            (Some(10), 1, Complete, true, quiet, 99_000, false),
            (Some(10), 1, Progressing, false, quiet, 99_000, false),
            (
                Some(10),
                1,
                Complete,
                false,
                requested(50_000),
                59_999,
                false,
            ),
            (
                Some(10),
                1,
                Complete,
                false,
                requested(50_000),
                60_000,
                true,
            ),
            (
                Some(10),
                1,
                Complete,
                false,
                Activity {
                    in_progress: 1,
                    ..requested(0)
                },
                99_000,
                false,
            ),
            (
                Some(10),
                1,
                Complete,
                false,
                Activity {
                    watching_since: 90_000,
                    ..quiet
                },
                99_000,
                false,
            ),
        ];
        for (timeout, replicas, phase, idled, activity, now, due) in cases {
            let app = app(timeout, replicas, phase, idled);
            assert_eq!(
                idle_due(&app, activity, now),
                due,
                "{timeout:?} {replicas} {phase:?} {idled} {activity:?} {now}"
            );
        }
    }

    #[test]
    fn timeouts_are_bounded_and_described_as_written() {
        let cases = [
            (9, false, "9s"),
            (10, true, "10s"),
            (900, true, "15m"),
            (5400, true, "1h30m"),
            (MAX_IDLE_TIMEOUT_SECS, true, "720h"),
            (MAX_IDLE_TIMEOUT_SECS + 1, false, "720h1s"),
        ];
        for (secs, valid, described) in cases {
            assert_eq!(timeout_problem(secs).is_none(), valid, "{secs}");
            assert_eq!(describe_timeout(secs), described);
        }
    }
}
