//! Request rates per app: the router's counters only ever grow, so a rate needs two readings
//! apart in time. [`TrafficRates`] keeps a reading of every app's counters each period for the
//! last minute, and says how many requests per second (and which share failed) an app had over
//! that span — the topology's edges show it.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use berth_core::Millis;
use berth_router::AppCounters;

use crate::Platform;

/// How far back a rate reaches.
pub const RATE_WINDOW_MS: Millis = 60_000;

/// One reading of an app's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Reading {
    at: Millis,
    requests: u64,
    /// 5xx answers (the router's own 502/504 pages for requests no instance answered
    /// included).
    failed: u64,
}

/// An app's traffic over the last minute (or since its first reading, when younger).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub requests_per_second: f64,
    /// The share of those requests that failed, percent (`None` without requests).
    pub error_percent: Option<f64>,
    /// The span the rate covers, ms.
    pub span_ms: Millis,
}

/// Readings of every app's counters, by `team/app`.
#[derive(Debug, Default)]
pub struct TrafficRates {
    apps: Mutex<HashMap<(String, String), VecDeque<Reading>>>,
}

/// 5xx answers, the router's own 502/504 pages included.
pub fn failed(counters: &AppCounters) -> u64 {
    counters.responses[4]
}

impl TrafficRates {
    fn lock(&self) -> MutexGuard<'_, HashMap<(String, String), VecDeque<Reading>>> {
        // Plain readings: a panic elsewhere cannot leave them inconsistent.
        self.apps.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a reading of every app the router counts, taken at `now`; apps it no longer
    /// counts are forgotten, and readings older than the window dropped.
    pub fn record(&self, now: Millis, counters: &[AppCounters]) {
        let mut apps = self.lock();
        let mut seen = HashMap::with_capacity(counters.len());
        for c in counters {
            let key = (c.team.clone(), c.app.clone());
            let readings = apps.entry(key.clone()).or_default();
            if readings
                .back()
                .is_some_and(|last| c.requests() < last.requests)
            {
                // The counters started over (the router stopped routing to the app).
                readings.clear();
            }
            readings.push_back(Reading {
                at: now,
                requests: c.requests(),
                failed: failed(c),
            });
            while readings
                .front()
                .is_some_and(|r| now.saturating_sub(r.at) > RATE_WINDOW_MS)
            {
                readings.pop_front();
            }
            seen.insert(key, ());
        }
        apps.retain(|key, _| seen.contains_key(key));
    }

    /// The app's rate between its oldest and newest reading; `None` with fewer than two.
    pub fn rate(&self, team: &str, app: &str) -> Option<Rate> {
        let apps = self.lock();
        let readings = apps.get(&(team.to_string(), app.to_string()))?;
        let (oldest, newest) = (readings.front()?, readings.back()?);
        let span_ms = newest.at - oldest.at;
        if span_ms <= 0 {
            return None;
        }
        let requests = newest.requests - oldest.requests;
        let failed = newest.failed.saturating_sub(oldest.failed);
        Some(Rate {
            requests_per_second: requests as f64 * 1000.0 / span_ms as f64,
            error_percent: (requests > 0).then(|| failed as f64 * 100.0 / requests as f64),
            span_ms,
        })
    }
}

impl Platform {
    /// Every `period`, records a reading of the router's counters into
    /// [`Platform::traffic_rates`]. Returns at once when the router is off.
    pub async fn keep_traffic_rates(&self, period: Duration) {
        let Some(stats) = self.router.clone() else {
            return;
        };
        loop {
            self.traffic_rates.record(self.now(), &stats.app_counters());
            tokio::time::sleep(period).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counters(app: &str, ok: u64, server_errors: u64) -> AppCounters {
        let mut c = AppCounters {
            team: "shop".into(),
            app: app.into(),
            ..Default::default()
        };
        c.responses[1] = ok;
        c.responses[4] = server_errors;
        c
    }

    #[test]
    fn rates_span_the_last_minute_and_start_over_with_the_counters() {
        let rates = TrafficRates::default();
        // (at, counters of web, rate of web)
        let steps: [(Millis, Vec<AppCounters>, Option<(f64, Option<f64>, Millis)>); 6] = [
            (0, vec![counters("web", 0, 0)], None),
            (
                5_000,
                vec![counters("web", 40, 10)],
                Some((10.0, Some(20.0), 5_000)),
            ),
            (
                10_000,
                vec![counters("web", 40, 10)],
                Some((5.0, Some(20.0), 10_000)),
            ),
            // Only the last minute counts: the reading at 0 is gone.
            (
                65_000,
                vec![counters("web", 100, 10)],
                Some((1.0, Some(0.0), 60_000)),
            ),
            // The router started over: one reading, no rate yet.
            (70_000, vec![counters("web", 3, 0)], None),
            // An app the router no longer counts is forgotten.
            (75_000, vec![counters("api", 1, 0)], None),
        ];
        for (at, list, want) in steps {
            rates.record(at, &list);
            let got = rates
                .rate("shop", "web")
                .map(|r| (r.requests_per_second, r.error_percent, r.span_ms));
            assert_eq!(got, want, "at {at}");
        }
        assert_eq!(rates.rate("shop", "api"), None);
    }
}
