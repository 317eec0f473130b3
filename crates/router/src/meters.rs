//! Per-app counters kept by the data path: responses by status class, a latency histogram,
//! bytes both ways, upstream failures and requests in progress. Plain atomics, updated without a
//! lock; a snapshot ([`AppCounters`]) is taken on demand.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::hold::HoldGate;

/// Upper bounds, in milliseconds, of the latency histogram's buckets; one more bucket counts the
/// requests slower than the last bound (+Inf).
pub const LATENCY_BUCKETS_MS: [u64; 11] = [5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000];

/// How many buckets a latency histogram has: one per bound, plus +Inf.
pub const LATENCY_BUCKETS: usize = LATENCY_BUCKETS_MS.len() + 1;

/// One app's counters at one moment, since the router started routing to the app (counters of an
/// app that leaves the routing table are dropped).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppCounters {
    pub team: String,
    pub app: String,
    /// Responses by status class: `[1xx, 2xx, 3xx, 4xx, 5xx]`, the router's own pages (502, 503,
    /// 504, 413) included.
    pub responses: [u64; 5],
    /// Requests by duration (arrival to the last byte of the response), one count per bucket
    /// (not cumulative): bucket `i` holds durations ≤ `LATENCY_BUCKETS_MS[i]` (and above the
    /// bound before it); the last holds the rest.
    pub latency_buckets: [u64; LATENCY_BUCKETS],
    /// The sum of those durations, in microseconds (with the count, a mean).
    pub latency_sum_micros: u64,
    /// Request body bytes passed on to instances.
    pub request_bytes: u64,
    /// Response body bytes passed on to clients.
    pub response_bytes: u64,
    /// Connections to an instance that could not be made (refused, unreachable, timed out).
    pub connect_failures: u64,
    /// Requests whose instance did not answer within the request timeout (504).
    pub timeouts: u64,
    /// Requests an instance broke off (closed the connection, answered garbage).
    pub broken_responses: u64,
    /// Requests in progress now: arrived and not yet answered to their last byte (a WebSocket
    /// counts until its `101` is sent).
    pub in_flight: u64,
    /// Of those, requests held now: waiting for the app's first ready instance.
    pub held: u64,
    /// Requests ever held (each counted once, however it ended).
    pub held_total: u64,
    /// When the last request arrived (unix milliseconds); `None` before the first.
    pub last_request_at: Option<i64>,
}

impl AppCounters {
    /// Requests answered (the sum of `responses`).
    pub fn requests(&self) -> u64 {
        self.responses.iter().sum()
    }

    /// The bound (ms) of the latency bucket that holds quantile `q` (0.5: the median), i.e. at
    /// least that share of requests took at most this long. `None` without requests, or when
    /// the quantile lies beyond the last bound (over 10 s).
    pub fn latency_quantile_ms(&self, q: f64) -> Option<u64> {
        let total: u64 = self.latency_buckets.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = ((total as f64) * q.clamp(0.0, 1.0)).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (index, count) in self.latency_buckets.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return LATENCY_BUCKETS_MS.get(index).copied();
            }
        }
        None
    }
}

/// The live counters of one app.
#[derive(Debug)]
pub(crate) struct AppMeters {
    team: String,
    app: String,
    responses: [AtomicU64; 5],
    latency_buckets: [AtomicU64; LATENCY_BUCKETS],
    latency_sum_micros: AtomicU64,
    request_bytes: AtomicU64,
    response_bytes: AtomicU64,
    connect_failures: AtomicU64,
    timeouts: AtomicU64,
    broken_responses: AtomicU64,
    in_flight: AtomicUsize,
    /// When the last request arrived, in unix milliseconds (0: none yet).
    last_request_ms: AtomicI64,
    /// The app's requests held while it has no ready instance.
    pub(crate) holds: Arc<HoldGate>,
}

/// An upstream failure as the counters tell them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UpstreamFailure {
    Connect,
    Timeout,
    Broken,
}

impl AppMeters {
    pub(crate) fn new(team: &str, app: &str) -> AppMeters {
        AppMeters {
            team: team.to_string(),
            app: app.to_string(),
            responses: Default::default(),
            latency_buckets: Default::default(),
            latency_sum_micros: AtomicU64::new(0),
            request_bytes: AtomicU64::new(0),
            response_bytes: AtomicU64::new(0),
            connect_failures: AtomicU64::new(0),
            timeouts: AtomicU64::new(0),
            broken_responses: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            last_request_ms: AtomicI64::new(0),
            holds: Arc::default(),
        }
    }

    pub(crate) fn started(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| {
                i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
            });
        self.last_request_ms.fetch_max(now, Ordering::Relaxed);
    }

    /// A request answered with `status` after `duration` (its in-progress count ends).
    pub(crate) fn finished(&self, status: u16, duration: Duration) {
        if let Some(class) = status_class(status) {
            self.responses[class].fetch_add(1, Ordering::Relaxed);
        }
        let micros = u64::try_from(duration.as_micros()).unwrap_or(u64::MAX);
        self.latency_buckets[latency_bucket(duration)].fetch_add(1, Ordering::Relaxed);
        self.latency_sum_micros.fetch_add(micros, Ordering::Relaxed);
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    pub(crate) fn add_request_bytes(&self, bytes: usize) {
        self.request_bytes
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub(crate) fn add_response_bytes(&self, bytes: usize) {
        self.response_bytes
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub(crate) fn upstream_failed(&self, failure: UpstreamFailure) {
        let counter = match failure {
            UpstreamFailure::Connect => &self.connect_failures,
            UpstreamFailure::Timeout => &self.timeouts,
            UpstreamFailure::Broken => &self.broken_responses,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> AppCounters {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        AppCounters {
            team: self.team.clone(),
            app: self.app.clone(),
            responses: self.responses.each_ref().map(load),
            latency_buckets: self.latency_buckets.each_ref().map(load),
            latency_sum_micros: load(&self.latency_sum_micros),
            request_bytes: load(&self.request_bytes),
            response_bytes: load(&self.response_bytes),
            connect_failures: load(&self.connect_failures),
            timeouts: load(&self.timeouts),
            broken_responses: load(&self.broken_responses),
            in_flight: self.in_flight.load(Ordering::Relaxed) as u64,
            held: self.holds.held() as u64,
            held_total: self.holds.held_total(),
            last_request_at: Some(self.last_request_ms.load(Ordering::Relaxed))
                .filter(|at| *at > 0),
        }
    }
}

/// `0` for 1xx … `4` for 5xx; `None` for a status outside 100–599.
fn status_class(status: u16) -> Option<usize> {
    matches!(status, 100..=599).then(|| usize::from(status / 100 - 1))
}

/// The histogram bucket of a duration.
fn latency_bucket(duration: Duration) -> usize {
    let millis = duration.as_millis();
    LATENCY_BUCKETS_MS
        .iter()
        .position(|&bound| millis <= u128::from(bound))
        .unwrap_or(LATENCY_BUCKETS_MS.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_name_the_bucket_that_holds_them() {
        let counters = |buckets: &[(usize, u64)]| {
            let mut c = AppCounters {
                team: "t".into(),
                app: "a".into(),
                responses: [0; 5],
                latency_buckets: [0; LATENCY_BUCKETS],
                latency_sum_micros: 0,
                request_bytes: 0,
                response_bytes: 0,
                connect_failures: 0,
                timeouts: 0,
                broken_responses: 0,
                in_flight: 0,
                held: 0,
                held_total: 0,
                last_request_at: None,
            };
            for &(index, count) in buckets {
                c.latency_buckets[index] = count;
            }
            c
        };
        // (buckets (index, count), q, bound)
        let cases: &[(&[(usize, u64)], f64, Option<u64>)] = &[
            (&[], 0.5, None),
            (&[(0, 10)], 0.5, Some(5)),
            (&[(0, 10)], 0.99, Some(5)),
            (&[(0, 50), (3, 50)], 0.5, Some(5)),
            (&[(0, 50), (3, 50)], 0.51, Some(50)),
            (&[(0, 98), (5, 2)], 0.99, Some(250)),
            (&[(0, 99), (5, 1)], 0.99, Some(5)),
            (&[(11, 3)], 0.5, None),
            (&[(10, 1)], 1.0, Some(10_000)),
            (&[(2, 1)], 0.0, Some(25)),
        ];
        for (buckets, q, want) in cases {
            assert_eq!(
                counters(buckets).latency_quantile_ms(*q),
                *want,
                "{buckets:?} {q}"
            );
        }
    }

    #[test]
    fn statuses_fall_in_their_class() {
        let cases = [
            (100, Some(0)),
            (101, Some(0)),
            (200, Some(1)),
            (304, Some(2)),
            (404, Some(3)),
            (503, Some(4)),
            (599, Some(4)),
            (99, None),
            (600, None),
        ];
        for (status, want) in cases {
            assert_eq!(status_class(status), want, "{status}");
        }
    }

    #[test]
    fn durations_fall_in_their_bucket() {
        let cases = [
            (Duration::ZERO, 0),
            (Duration::from_micros(5_999), 0),
            (Duration::from_millis(6), 1),
            (Duration::from_millis(10), 1),
            (Duration::from_millis(11), 2),
            (Duration::from_millis(999), 7),
            (Duration::from_millis(1000), 7),
            (Duration::from_millis(10_000), 10),
            (Duration::from_millis(10_001), 11),
            (Duration::from_secs(3600), 11),
        ];
        for (duration, want) in cases {
            assert_eq!(latency_bucket(duration), want, "{duration:?}");
        }
    }

    #[test]
    fn a_snapshot_adds_up_what_was_counted() {
        let meters = AppMeters::new("shop", "web");
        for (status, millis) in [(200, 3), (204, 30), (404, 3), (502, 20_000)] {
            meters.started();
            meters.finished(status, Duration::from_millis(millis));
        }
        meters.started();
        meters.add_request_bytes(10);
        meters.add_response_bytes(7);
        meters.add_response_bytes(5);
        meters.upstream_failed(UpstreamFailure::Connect);
        meters.upstream_failed(UpstreamFailure::Timeout);
        meters.upstream_failed(UpstreamFailure::Timeout);
        let counters = meters.snapshot();
        assert_eq!(counters.responses, [0, 2, 0, 1, 1]);
        assert_eq!(counters.requests(), 4);
        assert_eq!(
            counters.latency_buckets,
            [2, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1]
        );
        assert_eq!(counters.latency_sum_micros, 20_036_000);
        assert_eq!((counters.request_bytes, counters.response_bytes), (10, 12));
        assert_eq!(
            (
                counters.connect_failures,
                counters.timeouts,
                counters.broken_responses
            ),
            (1, 2, 0)
        );
        assert_eq!(counters.in_flight, 1);
    }
}
