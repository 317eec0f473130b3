//! The metrics-history suite ([`MetricsStore`]): every tier gets every sample, buckets hold
//! exact aggregates, queries filter by subject and range, and pruning keeps each tier within
//! its retention.

use berth_core::metrics_history::{
    Aggregate, Metric, Point, Sample, Scope, SeriesFilter, SeriesKey, Tier, Tiers, roll_up,
};

use super::*;
use crate::MetricsStore;

/// Runs every metrics check against `store`.
pub async fn run<S: MetricsStore + ?Sized>(store: Arc<S>) {
    let s = &*store;
    every_tier_holds_exact_aggregates(s).await;
    queries_filter_by_subject_and_range(s).await;
    pruning_keeps_each_tier_within_its_retention(s).await;
    one_round_may_hold_several_samples_of_a_series(s).await;
}

/// Two samples of one series in one round (one bucket) both count.
pub async fn one_round_may_hold_several_samples_of_a_series<S: MetricsStore + ?Sized>(store: &S) {
    let tiers = Tiers::parse("5s:1h,1m:1d").unwrap();
    let team = unique_name("metrics-twice");
    let key = SeriesKey::node(&team, Metric::CpuPercent);
    let round = [sample(&key, T0, 10.0), sample(&key, T0 + 1, 30.0)];
    store.record(&tiers, &round).await.expect("record");
    let f = SeriesFilter {
        scope: Scope::Node,
        team: None,
        app: None,
        name: Some(team.clone()),
    };
    for tier in tiers.all() {
        let got = store
            .points(&f, *tier, T0 - 60_000, T0 + 60_000)
            .await
            .unwrap();
        let want = Aggregate {
            count: 2,
            sum: 40.0,
            min: 10.0,
            max: 30.0,
        };
        assert_eq!(got[0].points[0].aggregate, want, "step {}", tier.step_ms);
    }
}

fn sample(key: &SeriesKey, at: Millis, value: f64) -> Sample {
    Sample {
        key: key.clone(),
        at,
        value,
    }
}

/// How many points the (first) series `filter` matches has in `tier`, at any time.
async fn points_of<S: MetricsStore + ?Sized>(
    store: &S,
    filter: &SeriesFilter,
    tier: Tier,
) -> usize {
    let series = store
        .points(filter, tier, Millis::MIN / 2, Millis::MAX / 2)
        .await
        .expect("points");
    series.first().map_or(0, |s| s.points.len())
}

fn filter(scope: Scope, team: &str, app: Option<&str>) -> SeriesFilter {
    SeriesFilter {
        scope,
        team: Some(team.to_string()),
        app: app.map(Into::into),
        name: None,
    }
}

/// Samples every 5 s for two minutes: the 5 s tier holds each, the 1 min tier their exact
/// roll-up (count, sum, min, max); a value that is not finite is skipped.
pub async fn every_tier_holds_exact_aggregates<S: MetricsStore + ?Sized>(store: &S) {
    let tiers = Tiers::parse("5s:1h,1m:1d").unwrap();
    let team = unique_name("metrics-team");
    let key = SeriesKey::app(&team, "web", Metric::CpuMillis);
    let start = 1_700_000_040_000; // a whole minute
    for round in 0..24 {
        let at = start + round * 5_000;
        let mut samples = vec![sample(&key, at + 7, (round % 5) as f64 * 100.0)];
        if round == 3 {
            samples.push(sample(&key, at + 8, f64::NAN));
        }
        store.record(&tiers, &samples).await.expect("record");
    }
    let fine = store
        .points(
            &filter(Scope::App, &team, Some("web")),
            tiers.all()[0],
            start,
            start + 120_000,
        )
        .await
        .expect("fine points");
    assert_eq!(fine.len(), 1);
    assert_eq!(fine[0].key, key);
    assert_eq!(fine[0].points.len(), 24, "one bucket per 5 s");
    assert_eq!(fine[0].points[1].at, start + 5_000, "aligned buckets");
    assert_eq!(fine[0].points[1].aggregate, Aggregate::of(100.0));
    let coarse = store
        .points(
            &filter(Scope::App, &team, None),
            tiers.all()[1],
            start,
            start + 120_000,
        )
        .await
        .expect("coarse points");
    assert_eq!(coarse[0].points, roll_up(&fine[0].points, 60_000));
    assert_eq!(
        coarse[0].points[0],
        Point {
            at: start,
            aggregate: Aggregate {
                count: 12,
                sum: 2_100.0,
                min: 0.0,
                max: 400.0
            }
        }
    );
}

/// A query returns only the series of its scope and subject, and only buckets in
/// `[from, to)`.
pub async fn queries_filter_by_subject_and_range<S: MetricsStore + ?Sized>(store: &S) {
    let tiers = Tiers::parse("5s:1h").unwrap();
    let team = unique_name("metrics-filter");
    let web = SeriesKey::app(&team, "web", Metric::MemoryBytes);
    let web_rps = SeriesKey::app(&team, "web", Metric::RequestsPerSecond);
    let api = SeriesKey::app(&team, "api", Metric::MemoryBytes);
    let web_1 = SeriesKey::instance(&team, "web", "web-1", Metric::MemoryBytes);
    let node = SeriesKey::node(&team, Metric::CpuPercent);
    for at in [T0, T0 + 5_000, T0 + 10_000] {
        let samples: Vec<Sample> = [&web, &web_rps, &api, &web_1, &node]
            .into_iter()
            .map(|k| sample(k, at, 1.0))
            .collect();
        store.record(&tiers, &samples).await.expect("record");
    }
    let tier = tiers.finest();
    let keys = |series: Vec<berth_core::metrics_history::SeriesPoints>| -> Vec<(SeriesKey, usize)> {
        series
            .into_iter()
            .map(|s| (s.key, s.points.len()))
            .collect()
    };
    let got = store
        .points(
            &filter(Scope::App, &team, Some("web")),
            tier,
            T0,
            T0 + 15_000,
        )
        .await
        .unwrap();
    assert_eq!(keys(got), vec![(web.clone(), 3), (web_rps.clone(), 3)]);
    let got = store
        .points(
            &filter(Scope::Instance, &team, Some("web")),
            tier,
            T0 + 5_000,
            T0 + 10_000,
        )
        .await
        .unwrap();
    assert_eq!(keys(got), vec![(web_1.clone(), 1)], "to is exclusive");
    let node_filter = SeriesFilter {
        scope: Scope::Node,
        team: None,
        app: None,
        name: Some(team.clone()),
    };
    let got = store
        .points(&node_filter, tier, T0, T0 + 15_000)
        .await
        .unwrap();
    assert_eq!(keys(got), vec![(node, 3)]);
    let got = store
        .points(
            &filter(Scope::App, &team, Some("web")),
            tier,
            T0 + 60_000,
            T0 + 120_000,
        )
        .await
        .unwrap();
    assert!(got.is_empty(), "no points in range: no series");
}

/// Pruning at `now` drops each tier's buckets older than its retention (and those of steps no
/// tier has any more), keeps the rest, and a series with nothing left is gone — and can come
/// back.
pub async fn pruning_keeps_each_tier_within_its_retention<S: MetricsStore + ?Sized>(store: &S) {
    let old_tiers = Tiers::parse("5s:1m,1m:10m,10m:1h").unwrap();
    let team = unique_name("metrics-prune");
    let key = SeriesKey::team(&team, Metric::ReadyInstances);
    let start = 1_700_000_400_000; // a whole 10 minutes
    // One sample a minute for 20 minutes.
    for minute in 0..20 {
        store
            .record(&old_tiers, &[sample(&key, start + minute * 60_000, 1.0)])
            .await
            .expect("record");
    }
    let now = start + 20 * 60_000;
    let f = filter(Scope::Team, &team, None);
    // The 10 min tier goes out of the settings: its points go too.
    let tiers = Tiers::parse("5s:1m,1m:10m").unwrap();
    let dropped = store.prune(&tiers, now).await.expect("prune");
    // 5 s tier (kept from now - 1 min): the newest of 20 stays. 1 min tier (kept from
    // now - 10 min): 10 of 20 stay. 10 min tier: both buckets go with the tier.
    // Other checks' older points may go too (the store is shared).
    assert!(dropped >= 19 + 10 + 2, "dropped {dropped}");
    assert_eq!(points_of(store, &f, tiers.all()[0]).await, 1);
    assert_eq!(points_of(store, &f, tiers.all()[1]).await, 10);
    assert_eq!(points_of(store, &f, old_tiers.all()[2]).await, 0);
    // An hour later nothing is left; the series comes back with its next sample.
    store
        .prune(&tiers, now + 3_600_000)
        .await
        .expect("prune all");
    assert_eq!(points_of(store, &f, tiers.all()[1]).await, 0);
    store
        .record(&tiers, &[sample(&key, now + 3_600_000, 2.0)])
        .await
        .expect("record again");
    let back = store
        .points(&f, tiers.all()[1], Millis::MIN / 2, Millis::MAX / 2)
        .await
        .unwrap();
    assert_eq!(
        back[0].points,
        vec![Point {
            at: now + 3_600_000,
            aggregate: Aggregate::of(2.0)
        }]
    );
}
