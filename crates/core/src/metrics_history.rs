//! Metrics history: which series Berth keeps, at which resolutions, and the arithmetic of
//! buckets, roll-ups, range queries and router counter deltas — pure, for the store, the
//! recorder and the API.
//!
//! A series ([`SeriesKey`]) is one [`Metric`] of one subject: a node, a team, an app or an
//! instance. Samples land in every [`Tier`] at once: a tier keeps, per bucket of `step_ms`
//! aligned to the epoch, an [`Aggregate`] (count, sum, min, max) of the samples in it, for
//! `retention_ms`. Because aggregates merge exactly, a bucket of a coarse tier equals the
//! [`roll_up`] of the finer buckets it spans, and averages stay exact at every resolution.
//! A series holds at most `retention / step` points per tier, so the store is bounded.

use serde::{Deserialize, Serialize};

use crate::Millis;
use crate::validate::FieldError;

/// What a series describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    Node,
    Team,
    App,
    Instance,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Node => "node",
            Scope::Team => "team",
            Scope::App => "app",
            Scope::Instance => "instance",
        }
    }

    pub fn parse(text: &str) -> Option<Scope> {
        [Scope::Node, Scope::Team, Scope::App, Scope::Instance]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// One measured quantity. Each has one unit, named in its identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// CPU in millicores (1000 = one core busy): instances, apps, teams.
    CpuMillis,
    /// Memory in use, bytes: instances, apps, teams, nodes.
    MemoryBytes,
    /// Ready instances: apps, teams.
    ReadyInstances,
    /// Restarts so far (the sum over the app's instances).
    Restarts,
    /// Busy share of all cores, percent: nodes.
    CpuPercent,
    /// Used space on the fullest watched disk, percent: nodes.
    DiskUsedPercent,
    /// Requests per second through the router: apps.
    RequestsPerSecond,
    /// Share of those requests answered 5xx, percent: apps.
    ErrorPercent,
    /// 95th percentile request latency, ms (from the router's histogram): apps.
    LatencyP95Ms,
}

impl Metric {
    pub const ALL: [Metric; 9] = [
        Metric::CpuMillis,
        Metric::MemoryBytes,
        Metric::ReadyInstances,
        Metric::Restarts,
        Metric::CpuPercent,
        Metric::DiskUsedPercent,
        Metric::RequestsPerSecond,
        Metric::ErrorPercent,
        Metric::LatencyP95Ms,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Metric::CpuMillis => "cpu_millis",
            Metric::MemoryBytes => "memory_bytes",
            Metric::ReadyInstances => "ready_instances",
            Metric::Restarts => "restarts",
            Metric::CpuPercent => "cpu_percent",
            Metric::DiskUsedPercent => "disk_used_percent",
            Metric::RequestsPerSecond => "requests_per_second",
            Metric::ErrorPercent => "error_percent",
            Metric::LatencyP95Ms => "latency_p95_ms",
        }
    }

    pub fn parse(text: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.as_str() == text)
    }
}

/// The identity of a series. Unused parts are empty: a node has only `name`; a team only
/// `team`; an app `team` and `app`; an instance all three (`name` = `<app>-<ordinal>`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeriesKey {
    pub scope: Scope,
    pub team: String,
    pub app: String,
    pub name: String,
    pub metric: Metric,
}

impl SeriesKey {
    pub fn node(node: &str, metric: Metric) -> Self {
        Self::new(Scope::Node, "", "", node, metric)
    }

    pub fn team(team: &str, metric: Metric) -> Self {
        Self::new(Scope::Team, team, "", "", metric)
    }

    pub fn app(team: &str, app: &str, metric: Metric) -> Self {
        Self::new(Scope::App, team, app, "", metric)
    }

    pub fn instance(team: &str, app: &str, instance: &str, metric: Metric) -> Self {
        Self::new(Scope::Instance, team, app, instance, metric)
    }

    fn new(scope: Scope, team: &str, app: &str, name: &str, metric: Metric) -> Self {
        SeriesKey {
            scope,
            team: team.into(),
            app: app.into(),
            name: name.into(),
            metric,
        }
    }
}

/// Which series a query reads: every part given must match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesFilter {
    pub scope: Scope,
    pub team: Option<String>,
    pub app: Option<String>,
    pub name: Option<String>,
}

impl SeriesFilter {
    pub fn matches(&self, key: &SeriesKey) -> bool {
        key.scope == self.scope
            && self.team.as_ref().is_none_or(|t| *t == key.team)
            && self.app.as_ref().is_none_or(|a| *a == key.app)
            && self.name.as_ref().is_none_or(|n| *n == key.name)
    }
}

/// One measured value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub key: SeriesKey,
    pub at: Millis,
    pub value: f64,
}

/// The samples of one bucket, summarised so that buckets merge exactly.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Aggregate {
    pub count: u64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
}

impl Aggregate {
    pub fn of(value: f64) -> Self {
        Aggregate {
            count: 1,
            sum: value,
            min: value,
            max: value,
        }
    }

    pub fn merge(&mut self, other: &Aggregate) {
        self.count += other.count;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    pub fn mean(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum / self.count as f64
        }
    }
}

/// One bucket of a series: its start and its aggregate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub at: Millis,
    pub aggregate: Aggregate,
}

/// The points of one series, oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesPoints {
    pub key: SeriesKey,
    pub points: Vec<Point>,
}

/// One resolution: buckets of `step_ms`, kept for `retention_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tier {
    pub step_ms: Millis,
    pub retention_ms: Millis,
}

impl Tier {
    /// The most points a series holds in this tier (the bucket being filled included).
    pub fn max_points(&self) -> i64 {
        self.retention_ms / self.step_ms + 1
    }

    /// The start of the oldest bucket still kept at `now`.
    pub fn oldest_kept(&self, now: Millis) -> Millis {
        align(now - self.retention_ms, self.step_ms)
    }
}

/// The tiers, finest first: each step a multiple of the one before, retentions increasing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tiers(Vec<Tier>);

/// The default tiers: 5 s for an hour, 1 min for a day, 10 min for 30 days.
pub const DEFAULT_TIERS: &str = "5s:1h,1m:1d,10m:30d";

impl Default for Tiers {
    fn default() -> Self {
        Tiers::parse(DEFAULT_TIERS).expect("the default tiers are valid")
    }
}

impl Tiers {
    /// Parses `STEP:RETENTION,…` (units `s`, `m`, `h`, `d`), finest first, and checks it.
    pub fn parse(text: &str) -> Result<Tiers, String> {
        let mut tiers = Vec::new();
        for part in text.split(',').map(str::trim) {
            let (step, retention) = part
                .split_once(':')
                .ok_or_else(|| format!("{part:?}: expected STEP:RETENTION, e.g. 5s:1h"))?;
            tiers.push(Tier {
                step_ms: parse_span(step)?,
                retention_ms: parse_span(retention)?,
            });
        }
        Tiers::new(tiers)
    }

    /// Checks the tiers: at least one; every step positive, at most its retention and a
    /// multiple of the step before; steps and retentions increasing.
    pub fn new(tiers: Vec<Tier>) -> Result<Tiers, String> {
        if tiers.is_empty() {
            return Err("at least one tier is needed".into());
        }
        for (i, tier) in tiers.iter().enumerate() {
            let name = describe_span(tier.step_ms);
            if tier.step_ms <= 0 {
                return Err("a step must be more than 0".into());
            }
            if tier.retention_ms < tier.step_ms {
                return Err(format!(
                    "tier {name}: the retention is shorter than the step"
                ));
            }
            if let Some(previous) = i.checked_sub(1).map(|p| tiers[p]) {
                if tier.step_ms <= previous.step_ms || tier.step_ms % previous.step_ms != 0 {
                    return Err(format!(
                        "tier {name}: the step must be a larger multiple of {}",
                        describe_span(previous.step_ms)
                    ));
                }
                if tier.retention_ms <= previous.retention_ms {
                    return Err(format!(
                        "tier {name}: the retention must be longer than {}'s",
                        describe_span(previous.step_ms)
                    ));
                }
            }
        }
        Ok(Tiers(tiers))
    }

    pub fn all(&self) -> &[Tier] {
        &self.0
    }

    pub fn finest(&self) -> Tier {
        self.0[0]
    }

    pub fn coarsest(&self) -> Tier {
        *self.0.last().expect("at least one tier")
    }

    /// The most points one series holds over every tier: the bound on the store's size.
    pub fn max_points_per_series(&self) -> i64 {
        self.0.iter().map(Tier::max_points).sum()
    }

    /// The finest tier that still holds `from` at `now`.
    pub fn covering(&self, now: Millis, from: Millis) -> Option<Tier> {
        self.0.iter().copied().find(|t| from >= t.oldest_kept(now))
    }
}

impl std::fmt::Display for Tiers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|t| {
                format!(
                    "{}:{}",
                    describe_span(t.step_ms),
                    describe_span(t.retention_ms)
                )
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

/// Parses `5s`, `1m`, `2h`, `30d` (a whole number and one unit) to milliseconds.
pub fn parse_span(text: &str) -> Result<Millis, String> {
    let text = text.trim();
    let unit_at = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{text:?}: a unit is needed (s, m, h, d)"))?;
    let (number, unit) = text.split_at(unit_at);
    let number: Millis = number
        .parse()
        .map_err(|_| format!("{text:?}: expected a whole number and a unit, e.g. 5s"))?;
    let unit_ms = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(format!("{text:?}: unknown unit {unit:?} (s, m, h, d)")),
    };
    number
        .checked_mul(unit_ms)
        .ok_or_else(|| format!("{text:?}: too long"))
}

/// The shortest exact way to write `ms` in the units [`parse_span`] reads (`90s`, `1h`).
pub fn describe_span(ms: Millis) -> String {
    for (unit, unit_ms) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
    ] {
        if ms != 0 && ms % unit_ms == 0 {
            return format!("{}{unit}", ms / unit_ms);
        }
    }
    format!("{ms}ms")
}

/// The start of the bucket of `step` that holds `at` (buckets aligned to the unix epoch).
pub fn align(at: Millis, step: Millis) -> Millis {
    at - at.rem_euclid(step)
}

/// Merges points (ordered by time) into buckets of `step`, a multiple of theirs.
pub fn roll_up(points: &[Point], step: Millis) -> Vec<Point> {
    let mut merged: Vec<Point> = Vec::new();
    for point in points {
        let at = align(point.at, step);
        match merged.last_mut() {
            Some(last) if last.at == at => last.aggregate.merge(&point.aggregate),
            _ => merged.push(Point {
                at,
                aggregate: point.aggregate,
            }),
        }
    }
    merged
}

/// A range query as asked: times in unix ms, the step optional.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RangeRequest {
    pub from: Option<Millis>,
    /// Instead of `from`: this long before `to` (so a client's clock does not matter).
    pub since: Option<Millis>,
    pub to: Option<Millis>,
    pub step: Option<Millis>,
}

/// A range query checked against the tiers: read `tier` over `[from, to)`, then roll the
/// points up to `step`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RangePlan {
    pub from: Millis,
    pub to: Millis,
    pub step: Millis,
    pub tier: Tier,
}

/// The range a query without `from` covers.
pub const DEFAULT_RANGE_MS: Millis = 3_600_000;
/// The most points one series may return.
pub const MAX_POINTS_PER_SERIES: i64 = 5_000;

/// Checks a range query at `now`: `from` before `to`, `from` still kept by some tier, a step
/// that is a multiple of the finest tier holding `from`, and at most
/// [`MAX_POINTS_PER_SERIES`] points. Without a step, the tier's own.
pub fn plan_range(
    request: RangeRequest,
    tiers: &Tiers,
    now: Millis,
) -> Result<RangePlan, FieldError> {
    let to = request.to.unwrap_or(now);
    let from = request
        .from
        .unwrap_or(to - request.since.unwrap_or(DEFAULT_RANGE_MS));
    if from >= to {
        return Err(field_error("from", "must be before to"));
    }
    let Some(tier) = tiers.covering(now, from) else {
        return Err(field_error(
            "from",
            format!(
                "range too large: metrics are kept for {}",
                describe_span(tiers.coarsest().retention_ms)
            ),
        ));
    };
    let step = request.step.unwrap_or(tier.step_ms);
    if step <= 0 || step % tier.step_ms != 0 {
        return Err(field_error(
            "step",
            format!(
                "unknown step {}: for this range use a multiple of {}",
                describe_span(step.max(0)),
                describe_span(tier.step_ms)
            ),
        ));
    }
    let points = (to - align(from, step)) / step + 1;
    if points > MAX_POINTS_PER_SERIES {
        return Err(field_error(
            "step",
            format!(
                "range too large for step {}: {points} points, at most {MAX_POINTS_PER_SERIES}",
                describe_span(step)
            ),
        ));
    }
    Ok(RangePlan {
        from: align(from, step),
        to,
        step,
        tier,
    })
}

fn field_error(field: &str, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.into(),
        message: message.into(),
    }
}

/// One reading of the router's cumulative counters for an app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterReading {
    pub at: Millis,
    pub requests: u64,
    /// 5xx answers.
    pub failed: u64,
    /// Requests per latency bucket (not cumulative); the last bucket holds what is above the
    /// last bound.
    pub latency_buckets: Vec<u64>,
}

/// An app's traffic between two readings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrafficDelta {
    pub requests_per_second: f64,
    /// `None` without requests.
    pub error_percent: Option<f64>,
    /// `None` without requests.
    pub latency_p95_ms: Option<f64>,
}

/// The traffic between `earlier` and `later`, with `bounds_ms` the latency buckets' upper
/// bounds; `None` when `later` is not later or the counters started over.
pub fn traffic_between(
    earlier: &CounterReading,
    later: &CounterReading,
    bounds_ms: &[u64],
) -> Option<TrafficDelta> {
    let span_ms = later.at - earlier.at;
    if span_ms <= 0 {
        return None;
    }
    let requests = later.requests.checked_sub(earlier.requests)?;
    let failed = later.failed.checked_sub(earlier.failed)?;
    let mut buckets = Vec::with_capacity(later.latency_buckets.len());
    for (l, e) in later.latency_buckets.iter().zip(&earlier.latency_buckets) {
        buckets.push(l.checked_sub(*e)?);
    }
    Some(TrafficDelta {
        requests_per_second: requests as f64 * 1000.0 / span_ms as f64,
        error_percent: (requests > 0).then(|| failed as f64 * 100.0 / requests as f64),
        latency_p95_ms: quantile_ms(&buckets, bounds_ms, 0.95),
    })
}

/// The `q` quantile of a histogram (counts per bucket, not cumulative), interpolated linearly
/// within its bucket as Prometheus' `histogram_quantile` does; the overflow bucket answers
/// its lower bound. `None` for an empty histogram.
pub fn quantile_ms(buckets: &[u64], bounds_ms: &[u64], q: f64) -> Option<f64> {
    let total: u64 = buckets.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = q * total as f64;
    let mut below = 0u64;
    for (i, count) in buckets.iter().enumerate() {
        let lower = if i == 0 { 0 } else { bounds_ms[i - 1] } as f64;
        let Some(upper) = bounds_ms.get(i) else {
            return Some(lower);
        };
        if (below + count) as f64 >= rank && *count > 0 {
            let within = (rank - below as f64) / *count as f64;
            return Some(lower + (*upper as f64 - lower) * within);
        }
        below += count;
    }
    bounds_ms.last().map(|b| *b as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Millis = 60_000;
    const HOUR: Millis = 3_600_000;
    const DAY: Millis = 86_400_000;

    #[test]
    fn tiers_parse_and_refuse_what_cannot_nest() {
        let cases: [(&str, Result<Vec<(Millis, Millis)>, &str>); 9] = [
            (
                "5s:1h,1m:1d,10m:30d",
                Ok(vec![(5_000, HOUR), (MIN, DAY), (10 * MIN, 30 * DAY)]),
            ),
            (" 10s:2h ", Ok(vec![(10_000, 2 * HOUR)])),
            ("", Err("expected STEP:RETENTION")),
            ("5s", Err("expected STEP:RETENTION")),
            ("5x:1h", Err("unknown unit")),
            ("1h:5s", Err("retention is shorter than the step")),
            ("5s:1h,7s:2h", Err("larger multiple of 5s")),
            ("5s:1h,1m:1h", Err("retention must be longer")),
            ("0s:1h", Err("more than 0")),
        ];
        for (text, want) in cases {
            let got = Tiers::parse(text).map(|t| {
                t.all()
                    .iter()
                    .map(|t| (t.step_ms, t.retention_ms))
                    .collect::<Vec<_>>()
            });
            match (got, want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{text}"),
                (Err(got), Err(want)) => assert!(got.contains(want), "{text}: {got}"),
                (got, want) => panic!("{text}: got {got:?}, want {want:?}"),
            }
        }
        assert_eq!(Tiers::default().to_string(), DEFAULT_TIERS);
        // 721 + 1441 + 4321: what bounds one series.
        assert_eq!(Tiers::default().max_points_per_series(), 6_483);
    }

    #[test]
    fn buckets_align_to_the_epoch() {
        for (at, step, want) in [
            (0, 5_000, 0),
            (4_999, 5_000, 0),
            (5_000, 5_000, 5_000),
            (-1, 5_000, -5_000),
            (1_700_000_123_456, MIN, 1_700_000_100_000),
        ] {
            assert_eq!(align(at, step), want, "{at} / {step}");
        }
    }

    #[test]
    fn rolling_up_keeps_counts_sums_and_extremes_exact() {
        let fine: Vec<Point> = [(0, 1.0), (5_000, 3.0), (55_000, 8.0), (60_000, 2.0)]
            .into_iter()
            .map(|(at, v)| Point {
                at,
                aggregate: Aggregate::of(v),
            })
            .collect();
        let coarse = roll_up(&fine, MIN);
        assert_eq!(coarse.len(), 2);
        assert_eq!(coarse[0].at, 0);
        assert_eq!(
            coarse[0].aggregate,
            Aggregate {
                count: 3,
                sum: 12.0,
                min: 1.0,
                max: 8.0
            }
        );
        assert_eq!(coarse[0].aggregate.mean(), 4.0);
        assert_eq!(coarse[1].at, MIN);
        assert_eq!(coarse[1].aggregate, Aggregate::of(2.0));
        // Rolling up twice is rolling up once.
        assert_eq!(
            roll_up(&roll_up(&fine, MIN), 10 * MIN),
            roll_up(&fine, 10 * MIN)
        );
    }

    #[test]
    fn range_queries_pick_the_finest_tier_that_holds_from() {
        let tiers = Tiers::default();
        let now = 100 * DAY;
        let req = |from: Option<Millis>, to: Option<Millis>, step: Option<Millis>| RangeRequest {
            from,
            since: None,
            to,
            step,
        };
        let since = |span: Millis| RangeRequest {
            since: Some(span),
            ..Default::default()
        };
        // (request, Ok((from, to, step, tier step)) or Err(field, message part))
        let cases: Vec<(
            RangeRequest,
            Result<(Millis, Millis, Millis, Millis), (&str, &str)>,
        )> = vec![
            (req(None, None, None), Ok((now - HOUR, now, 5_000, 5_000))),
            (since(HOUR), Ok((now - HOUR, now, 5_000, 5_000))),
            (
                since(30 * DAY),
                Ok((now - 30 * DAY, now, 10 * MIN, 10 * MIN)),
            ),
            (
                req(Some(now - 2 * HOUR), None, None),
                Ok((now - 2 * HOUR, now, MIN, MIN)),
            ),
            (
                req(Some(now - 2 * DAY), None, None),
                Ok((now - 2 * DAY, now, 10 * MIN, 10 * MIN)),
            ),
            (
                req(Some(now - HOUR + 2_000), None, Some(30_000)),
                Ok((now - HOUR, now, 30_000, 5_000)),
            ),
            (
                req(Some(now), Some(now - 1), None),
                Err(("from", "before to")),
            ),
            (
                req(Some(now - 31 * DAY), None, None),
                Err(("from", "kept for 30d")),
            ),
            (
                req(Some(now - 2 * HOUR), None, Some(5_000)),
                Err(("step", "multiple of 1m")),
            ),
            (req(None, None, Some(0)), Err(("step", "unknown step"))),
            (
                req(Some(now - 30 * DAY), None, Some(10 * MIN)),
                Ok((now - 30 * DAY, now, 10 * MIN, 10 * MIN)),
            ),
        ];
        for (request, want) in cases {
            let got = plan_range(request, &tiers, now)
                .map(|p| (p.from, p.to, p.step, p.tier.step_ms))
                .map_err(|e| (e.field.clone(), e.message.clone()));
            match (got, want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{request:?}"),
                (Err((field, message)), Err((want_field, part))) => {
                    assert_eq!(field, want_field, "{request:?}");
                    assert!(message.contains(part), "{request:?}: {message}");
                }
                (got, want) => panic!("{request:?}: got {got:?}, want {want:?}"),
            }
        }
        // Too many points for a fine step over a day.
        let tiers = Tiers::parse("1s:2d").unwrap();
        let err = plan_range(req(Some(now - DAY), None, None), &tiers, now).unwrap_err();
        assert_eq!(err.field, "step");
        assert!(err.message.contains("at most"), "{}", err.message);
    }

    #[test]
    fn traffic_deltas_give_rates_error_shares_and_p95() {
        let bounds = [10, 100, 1000];
        let reading = |at: Millis, requests: u64, failed: u64, buckets: [u64; 4]| CounterReading {
            at,
            requests,
            failed,
            latency_buckets: buckets.to_vec(),
        };
        let start = reading(0, 100, 10, [50, 50, 0, 0]);
        // (later, want (rps, error %, p95))
        let cases: Vec<(CounterReading, Option<(f64, Option<f64>, Option<f64>)>)> = vec![
            // 100 requests in 5 s, 5 failed; all within 10 ms: p95 = 9.5 ms.
            (
                reading(5_000, 200, 15, [150, 50, 0, 0]),
                Some((20.0, Some(5.0), Some(9.5))),
            ),
            // No requests: no error share, no latency.
            (
                reading(5_000, 100, 10, [50, 50, 0, 0]),
                Some((0.0, None, None)),
            ),
            // 20 requests: 10 in (10,100], 10 in (100,1000]: rank 19 is the 9th of the
            // upper bucket: 100 + 900 × 0.9 = 910.
            (
                reading(10_000, 120, 10, [50, 60, 10, 0]),
                Some((2.0, Some(0.0), Some(910.0))),
            ),
            // Everything above the last bound: its lower bound.
            (
                reading(1_000, 104, 10, [50, 50, 0, 4]),
                Some((4.0, Some(0.0), Some(1000.0))),
            ),
            // Counters went backwards (the router started over): nothing.
            (reading(5_000, 3, 0, [3, 0, 0, 0]), None),
            // Not later: nothing.
            (reading(0, 200, 10, [150, 50, 0, 0]), None),
        ];
        for (later, want) in cases {
            let got = traffic_between(&start, &later, &bounds)
                .map(|d| (d.requests_per_second, d.error_percent, d.latency_p95_ms));
            assert_eq!(got, want, "{later:?}");
        }
    }

    #[test]
    fn filters_match_every_given_part() {
        let key = SeriesKey::instance("shop", "web", "web-1", Metric::CpuMillis);
        let filter = |scope, team: Option<&str>, app: Option<&str>| SeriesFilter {
            scope,
            team: team.map(Into::into),
            app: app.map(Into::into),
            name: None,
        };
        assert!(filter(Scope::Instance, Some("shop"), Some("web")).matches(&key));
        assert!(filter(Scope::Instance, None, None).matches(&key));
        assert!(!filter(Scope::App, Some("shop"), Some("web")).matches(&key));
        assert!(!filter(Scope::Instance, Some("shop"), Some("api")).matches(&key));
        for metric in Metric::ALL {
            assert_eq!(Metric::parse(metric.as_str()), Some(metric));
        }
        assert_eq!(Scope::parse("node"), Some(Scope::Node));
    }
}
