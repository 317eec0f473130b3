//! Request rates per app: the router's counters only ever grow, so a rate needs two readings
//! apart in time. [`TrafficRates`] keeps a reading of every app's counters each period (every
//! second) for the longest autoscaling window, and says how many requests per second (and
//! which share failed) an app had over the last minute — the topology's edges show it — and
//! what load it had over any window: requests per second and average requests in flight, the
//! autoscaler's request metrics.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use berth_core::Millis;
use berth_core::metrics_history::quantile_ms;
use berth_router::{AppCounters, LATENCY_BUCKETS, LATENCY_BUCKETS_MS};

use crate::Platform;

/// How far back a rate reaches.
pub const RATE_WINDOW_MS: Millis = 60_000;
/// How far back readings are kept: the longest autoscaling window.
const HISTORY_MS: Millis = berth_core::autoscale::MAX_WINDOW_SECS as Millis * 1000;

/// One reading of an app's counters.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Reading {
    at: Millis,
    requests: u64,
    /// 5xx answers (the router's own 502/504 pages for requests no instance answered
    /// included).
    failed: u64,
    /// The summed durations of the answered requests, µs.
    busy_micros: u64,
    /// The latency histogram, kept for the readings of the last minute only (the rate's
    /// window: a p95 over it), dropped from older ones to keep the history small.
    /// Boxed: a reading without one is a pointer wide.
    latency: Option<Box<[u64; LATENCY_BUCKETS]>>,
}

/// An app's traffic over the last minute (or since its first reading, when younger).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub requests_per_second: f64,
    /// The share of those requests that failed, percent (`None` without requests).
    pub error_percent: Option<f64>,
    /// The span the rate covers, ms.
    pub span_ms: Millis,
    /// The 95th percentile of the requests' durations over the span, ms (interpolated within
    /// the router's histogram buckets; `None` without requests).
    pub latency_p95_ms: Option<f64>,
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
                busy_micros: c.latency_sum_micros,
                latency: Some(Box::new(c.latency_buckets)),
            });
            // Only the rate's window needs histograms: the readings that left it drop theirs
            // (back to the first that already has).
            for aged in readings
                .iter_mut()
                .rev()
                .skip_while(|r| now.saturating_sub(r.at) <= RATE_WINDOW_MS)
            {
                if aged.latency.take().is_none() {
                    break;
                }
            }
            while readings
                .front()
                .is_some_and(|r| now.saturating_sub(r.at) > HISTORY_MS)
            {
                readings.pop_front();
            }
            seen.insert(key, ());
        }
        apps.retain(|key, _| seen.contains_key(key));
    }

    /// The app's oldest reading within `window_ms` of its newest, and the newest; `None`
    /// without two readings apart in time.
    fn span(&self, team: &str, app: &str, window_ms: Millis) -> Option<(Reading, Reading)> {
        let apps = self.lock();
        let readings = apps.get(&(team.to_string(), app.to_string()))?;
        let newest = readings.back()?.clone();
        let oldest = readings
            .iter()
            .find(|r| newest.at.saturating_sub(r.at) <= window_ms)?
            .clone();
        (newest.at > oldest.at).then_some((oldest, newest))
    }

    /// The app's rate over the last minute of readings (less while it is younger); `None`
    /// with fewer than two.
    pub fn rate(&self, team: &str, app: &str) -> Option<Rate> {
        let (oldest, newest) = self.span(team, app, RATE_WINDOW_MS)?;
        let span_ms = newest.at - oldest.at;
        let requests = newest.requests - oldest.requests;
        let failed = newest.failed.saturating_sub(oldest.failed);
        let latency_p95_ms = match (&oldest.latency, &newest.latency) {
            (Some(before), Some(after)) => {
                let delta: Vec<u64> = after
                    .iter()
                    .zip(before.iter())
                    .map(|(a, b)| a.saturating_sub(*b))
                    .collect();
                quantile_ms(&delta, &LATENCY_BUCKETS_MS, 0.95)
            }
            _ => None,
        };
        Some(Rate {
            requests_per_second: requests as f64 * 1000.0 / span_ms as f64,
            error_percent: (requests > 0).then(|| failed as f64 * 100.0 / requests as f64),
            span_ms,
            latency_p95_ms,
        })
    }

    /// The app's request load over the last `window_ms` of readings (less while it is
    /// younger): `None` with fewer than two readings.
    pub fn load(&self, team: &str, app: &str, window_ms: Millis) -> Option<RequestLoad> {
        let (oldest, newest) = self.span(team, app, window_ms)?;
        let span_ms = u64::try_from(newest.at - oldest.at).ok()?;
        let requests = newest.requests.saturating_sub(oldest.requests);
        let busy_micros = newest.busy_micros.saturating_sub(oldest.busy_micros);
        Some(RequestLoad {
            // thousandths of a request per second = requests × 10⁶ / span in ms
            rps_milli: requests.saturating_mul(1_000_000) / span_ms,
            // thousandths of a request in flight = busy µs / span µs × 1000 = busy µs / span ms
            concurrency_milli: busy_micros / span_ms,
            span_ms,
        })
    }
}

/// An app's request load over a window, in thousandths of a request (the autoscaler's
/// units, [`berth_core::autoscale::ONE_REQUEST_LOAD`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLoad {
    /// Requests per second.
    pub rps_milli: u64,
    /// Requests in flight on average: the time the window's answered requests took, per
    /// unit of time (Little's law).
    pub concurrency_milli: u64,
    /// The time the readings cover, ms.
    pub span_ms: u64,
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

    #[test]
    fn the_p95_covers_the_last_minute_of_requests() {
        let rates = TrafficRates::default();
        let mut web = counters("web", 0, 0);
        // Before the window: slow requests (bucket 7: 500 ms to 1 s).
        web.latency_buckets[7] = 100;
        web.responses[1] = 100;
        rates.record(0, std::slice::from_ref(&web));
        // Within the last minute: 100 fast ones (bucket 0: up to 5 ms).
        web.latency_buckets[0] = 100;
        web.responses[1] = 200;
        rates.record(30_000, std::slice::from_ref(&web));
        rates.record(70_000, std::slice::from_ref(&web));
        let rate = rates.rate("shop", "web").expect("rate");
        assert_eq!(rate.span_ms, 40_000);
        assert_eq!(rate.latency_p95_ms, None, "no request within the minute");
        web.latency_buckets[0] = 200;
        web.responses[1] = 300;
        rates.record(80_000, std::slice::from_ref(&web));
        // 100 requests in [0, 5] ms: the 95th is at 4.75 ms; the slow ones are out of the window.
        let p95 = rates.rate("shop", "web").and_then(|r| r.latency_p95_ms);
        assert_eq!(p95, Some(4.75));
    }

    #[test]
    fn loads_are_requests_per_second_and_time_in_flight_per_second() {
        let rates = TrafficRates::default();
        let mut web = counters("web", 0, 0);
        rates.record(0, std::slice::from_ref(&web));
        assert_eq!(rates.load("shop", "web", 60_000), None, "one reading");
        // 30 requests of 200 ms each in 2 s: 15/s, 3 in flight on average.
        web.responses[1] = 30;
        web.latency_sum_micros = 30 * 200_000;
        rates.record(2_000, std::slice::from_ref(&web));
        assert_eq!(
            rates.load("shop", "web", 60_000),
            Some(RequestLoad {
                rps_milli: 15_000,
                concurrency_milli: 3_000,
                span_ms: 2_000
            })
        );
        // A burst in the next second: 20 more requests of 500 ms.
        web.responses[1] = 50;
        web.latency_sum_micros += 20 * 500_000;
        rates.record(3_000, std::slice::from_ref(&web));
        // The 1 s window sees the burst only; the long one averages it out.
        let burst = rates.load("shop", "web", 1_000).unwrap();
        assert_eq!((burst.rps_milli, burst.concurrency_milli), (20_000, 10_000));
        let long = rates.load("shop", "web", 60_000).unwrap();
        assert_eq!((long.rps_milli, long.concurrency_milli), (16_666, 5_333));
        // Readings older than the longest window are dropped.
        rates.record(HISTORY_MS + 2_500, std::slice::from_ref(&web));
        assert_eq!(
            rates.load("shop", "web", HISTORY_MS).unwrap().span_ms,
            HISTORY_MS as u64 - 500
        );
    }

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
