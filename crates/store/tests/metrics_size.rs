//! The metrics store's size per instance per day (benchmark 13, `bench/13-metrics-store.py`;
//! ignored in normal runs): feeds simulated rounds every 5 s through the real
//! `SqliteMetricsStore` with the default tiers — per instance CPU and memory, per app its seven
//! series, per team three, per node three, as the recorder writes them — prunes every minute
//! as the recorder does, then measures the database file.
//!
//! Settings from the environment: `BERTH_BENCH_INSTANCES` (100), `BERTH_BENCH_APPS` (20),
//! `BERTH_BENCH_HOURS` (24), `BERTH_BENCH_OUT` (a JSON file for the results).

use std::time::{Duration, Instant};

use berth_core::metrics_history::{Metric, Sample, SeriesKey, Tiers};
use berth_store::{MetricsStore, SqliteMetricsStore};
use sqlx::Connection;

const ROUND_MS: i64 = 5_000;
const START: i64 = 1_700_000_000_000;

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A cheap deterministic wobble, so values are not all equal (SQLite stores small integers
/// in fewer bytes than reals).
fn wobble(seed: u64) -> f64 {
    let x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    ((x >> 33) % 10_000) as f64 / 10_000.0
}

/// Every series the recorder writes for `instances` instances spread over `apps` apps of one
/// team on one node.
fn series(instances: u64, apps: u64) -> Vec<SeriesKey> {
    let mut keys = Vec::new();
    for i in 0..instances {
        let app = format!("app{}", i % apps);
        let instance = format!("{app}-{i}");
        for metric in [Metric::CpuMillis, Metric::MemoryBytes] {
            keys.push(SeriesKey::instance("team", &app, &instance, metric));
        }
    }
    for a in 0..apps {
        let app = format!("app{a}");
        for metric in [
            Metric::CpuMillis,
            Metric::MemoryBytes,
            Metric::ReadyInstances,
            Metric::Restarts,
            Metric::RequestsPerSecond,
            Metric::ErrorPercent,
            Metric::LatencyP95Ms,
        ] {
            keys.push(SeriesKey::app("team", &app, metric));
        }
    }
    for metric in [
        Metric::CpuMillis,
        Metric::MemoryBytes,
        Metric::ReadyInstances,
    ] {
        keys.push(SeriesKey::team("team", metric));
    }
    for metric in [
        Metric::CpuPercent,
        Metric::MemoryBytes,
        Metric::DiskUsedPercent,
    ] {
        keys.push(SeriesKey::node("node", metric));
    }
    keys
}

fn value(metric: Metric, seed: u64) -> f64 {
    let w = wobble(seed);
    match metric {
        Metric::CpuMillis => (w * 500.0).round(),
        Metric::MemoryBytes => (50_000_000.0 + w * 10_000_000.0).round(),
        Metric::ReadyInstances => 5.0,
        Metric::Restarts => 0.0,
        _ => w * 100.0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: bench/13-metrics-store.py runs it"]
async fn metrics_store_size_per_instance_per_day() {
    let instances = setting("BERTH_BENCH_INSTANCES", 100);
    let apps = setting("BERTH_BENCH_APPS", 20).clamp(1, instances.max(1));
    let hours = setting("BERTH_BENCH_HOURS", 24);
    let tiers = Tiers::default();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("metrics.db");
    let store = SqliteMetricsStore::open(&path).await.unwrap();
    let keys = series(instances, apps);
    let rounds = hours * 3_600_000 / ROUND_MS as u64;
    let mut writing = Duration::ZERO;
    let mut pruning = Duration::ZERO;
    let mut now = START;
    for round in 0..rounds {
        now = START + round as i64 * ROUND_MS;
        let samples: Vec<Sample> = keys
            .iter()
            .enumerate()
            .map(|(i, key)| Sample {
                key: key.clone(),
                at: now,
                value: value(key.metric, round * 7919 + i as u64),
            })
            .collect();
        let t = Instant::now();
        store.record(&tiers, &samples).await.unwrap();
        writing += t.elapsed();
        if round % 12 == 0 {
            let t = Instant::now();
            store.prune(&tiers, now).await.unwrap();
            pruning += t.elapsed();
        }
    }
    store.prune(&tiers, now).await.unwrap();
    store.checkpoint().await.unwrap();
    store.close().await;
    let file_bytes = std::fs::metadata(&path).unwrap().len();
    let mut raw = sqlx::sqlite::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let mut points_by_step = serde_json::Map::new();
    let mut points = 0i64;
    for tier in tiers.all() {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM points WHERE step_ms = $1")
            .bind(tier.step_ms)
            .fetch_one(&mut raw)
            .await
            .unwrap();
        points += n;
        points_by_step.insert(tier.step_ms.to_string(), n.into());
    }
    raw.close().await.unwrap();
    let bytes_per_point = file_bytes as f64 / points as f64;
    // Once every tier is full (30 days): each series holds `max_points_per_series` points.
    let steady_bytes = bytes_per_point * (keys.len() as i64 * tiers.max_points_per_series()) as f64;
    // After the first day only tiers kept longer than a day still grow, a day's worth each.
    let day_ms = 86_400_000;
    let growing_points_per_day: i64 = tiers
        .all()
        .iter()
        .filter(|t| t.retention_ms > day_ms)
        .map(|t| day_ms / t.step_ms)
        .sum();
    let growth_per_day = bytes_per_point * (keys.len() as i64 * growing_points_per_day) as f64;
    let result = serde_json::json!({
        "instances": instances,
        "apps": apps,
        "series": keys.len(),
        "simulated_hours": hours,
        "rounds": rounds,
        "samples_per_round": keys.len(),
        "tiers": tiers.to_string(),
        "file_bytes": file_bytes,
        "points": points,
        "points_by_step_ms": points_by_step,
        "bytes_per_point": bytes_per_point,
        "bytes_per_instance_after_simulation": file_bytes as f64 / instances as f64,
        "growth_bytes_per_instance_per_later_day": growth_per_day / instances as f64,
        "steady_state_bytes": steady_bytes,
        "steady_state_bytes_per_instance": steady_bytes / instances as f64,
        "record_ms_per_round": writing.as_secs_f64() * 1000.0 / rounds as f64,
        "prune_ms_per_prune": pruning.as_secs_f64() * 1000.0 / (rounds / 12).max(1) as f64,
    });
    println!("{result:#}");
    if let Ok(out) = std::env::var("BERTH_BENCH_OUT") {
        std::fs::write(out, format!("{result:#}\n")).unwrap();
    }
    assert!(file_bytes > 0);
}
