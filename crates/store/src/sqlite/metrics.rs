//! [`MetricsStore`] on SQLite: the metrics history in its own database file (`metrics.db`),
//! so that a round of metric writes never waits on, or holds up, the control plane's single
//! writer in `berth.db`.
//!
//! `series` names each series once; `points` (a `WITHOUT ROWID` table keyed by series, step
//! and bucket) holds one aggregate per bucket of each tier. A round is one `BEGIN IMMEDIATE`
//! transaction of multi-row upserts (count + 1, sum + value, min, max) into every tier, so the coarse
//! tiers are always the exact roll-up of the samples and no roll-up job can fall behind.
//! Pruning deletes by series through the primary key, never scanning the table.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use berth_core::Millis;
use berth_core::metrics_history::{
    Aggregate, Metric, Point, Sample, Scope, SeriesFilter, SeriesKey, SeriesPoints, Tier, Tiers,
    align,
};
use sqlx::SqliteConnection;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqliteRow};

use super::sql::get;
use super::{db_err, file_options, open_file_pools, open_memory_pool};
use crate::migrations::migrator_of;
use crate::{MetricsStore, StoreError, StoreResult};

/// Points per upsert statement (4 parameters each, far below SQLite's limit).
const ROWS_PER_STATEMENT: usize = 250;

/// The metrics database's schema, in order.
const METRICS_MIGRATIONS: &[(i64, &str, &str)] = &[(
    1,
    "metrics",
    include_str!("../../migrations/sqlite-metrics/0001_metrics.sql"),
)];

/// [`MetricsStore`] on an SQLite database of its own. Cloning shares the connections.
#[derive(Debug, Clone)]
pub struct SqliteMetricsStore {
    read: SqlitePool,
    /// Exactly one connection: every write.
    write: SqlitePool,
    /// Series ids by key, so a round does not look each series up again.
    ids: std::sync::Arc<Mutex<HashMap<SeriesKey, i64>>>,
}

impl SqliteMetricsStore {
    /// Opens (creating it when missing) the metrics database at `path`, in WAL mode.
    pub async fn open(path: &Path) -> StoreResult<Self> {
        let (read, write) = open_file_pools(
            path,
            file_options(path),
            &metrics_migrator(),
            "metrics database",
        )
        .await?;
        Ok(Self::with_pools(read, write))
    }

    /// A private, empty in-memory metrics database (for `--store sqlite::memory:` and tests).
    pub async fn open_in_memory() -> StoreResult<Self> {
        let pool = open_memory_pool(SqliteConnectOptions::new(), &metrics_migrator()).await?;
        Ok(Self::with_pools(pool.clone(), pool))
    }

    fn with_pools(read: SqlitePool, write: SqlitePool) -> Self {
        SqliteMetricsStore {
            read,
            write,
            ids: Default::default(),
        }
    }

    /// Closes every connection (checkpointing the WAL).
    pub async fn close(&self) {
        self.read.close().await;
        self.write.close().await;
    }

    fn ids(&self) -> MutexGuard<'_, HashMap<SeriesKey, i64>> {
        // A plain cache: a panic elsewhere cannot leave it inconsistent.
        self.ids.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The id of `key`'s series, created when new. Called inside the write transaction, so
    /// no prune can drop the series between the lookup and its use.
    async fn series_id(&self, tx: &mut SqliteConnection, key: &SeriesKey) -> StoreResult<i64> {
        if let Some(id) = self.ids().get(key) {
            return Ok(*id);
        }
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO series (scope, team, app, name, metric) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (scope, team, app, name, metric) DO UPDATE SET metric = excluded.metric
             RETURNING id",
        )
        .bind(key.scope.as_str())
        .bind(&key.team)
        .bind(&key.app)
        .bind(&key.name)
        .bind(key.metric.as_str())
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err)?;
        self.ids().insert(key.clone(), id);
        Ok(id)
    }
}

fn metrics_migrator() -> sqlx::migrate::Migrator {
    migrator_of(METRICS_MIGRATIONS, i64::MAX)
}

fn series_key(row: &SqliteRow) -> StoreResult<SeriesKey> {
    let scope: String = get(row, "scope")?;
    let metric: String = get(row, "metric")?;
    Ok(SeriesKey {
        scope: Scope::parse(&scope)
            .ok_or_else(|| StoreError::Database(format!("unknown series scope {scope:?}")))?,
        team: get(row, "team")?,
        app: get(row, "app")?,
        name: get(row, "name")?,
        metric: Metric::parse(&metric)
            .ok_or_else(|| StoreError::Database(format!("unknown metric {metric:?}")))?,
    })
}

fn point(row: &SqliteRow) -> StoreResult<Point> {
    let count: i64 = get(row, "count")?;
    Ok(Point {
        at: get(row, "bucket")?,
        aggregate: Aggregate {
            count: count.max(0).unsigned_abs(),
            sum: get(row, "sum")?,
            min: get(row, "min")?,
            max: get(row, "max")?,
        },
    })
}

#[async_trait]
impl MetricsStore for SqliteMetricsStore {
    async fn snapshot_into(&self, path: &Path) -> StoreResult<bool> {
        super::vacuum_into(&self.read, path).await?;
        Ok(true)
    }

    async fn record(&self, tiers: &Tiers, samples: &[Sample]) -> StoreResult<()> {
        if samples.is_empty() {
            return Ok(());
        }
        let recorded = self.record_round(tiers, samples).await;
        if recorded.is_err() {
            // Ids of series created in the rolled-back transaction are not in the database.
            self.ids().clear();
        }
        recorded
    }

    async fn points(
        &self,
        filter: &SeriesFilter,
        tier: Tier,
        from: Millis,
        to: Millis,
    ) -> StoreResult<Vec<SeriesPoints>> {
        let rows = sqlx::query(
            "SELECT s.id, s.scope, s.team, s.app, s.name, s.metric,
                    p.bucket, p.count, p.sum, p.min, p.max
             FROM series s JOIN points p ON p.series = s.id
             WHERE s.scope = $1 AND ($2 IS NULL OR s.team = $2) AND ($3 IS NULL OR s.app = $3)
               AND ($4 IS NULL OR s.name = $4)
               AND p.step_ms = $5 AND p.bucket >= $6 AND p.bucket < $7
             ORDER BY s.scope, s.team, s.app, s.name, s.metric, p.bucket",
        )
        .bind(filter.scope.as_str())
        .bind(filter.team.as_deref())
        .bind(filter.app.as_deref())
        .bind(filter.name.as_deref())
        .bind(tier.step_ms)
        .bind(from)
        .bind(to)
        .fetch_all(&self.read)
        .await
        .map_err(db_err)?;
        let mut series: Vec<SeriesPoints> = Vec::new();
        let mut last_id = None;
        for row in &rows {
            let id: i64 = get(row, "id")?;
            if last_id != Some(id) {
                last_id = Some(id);
                series.push(SeriesPoints {
                    key: series_key(row)?,
                    points: Vec::new(),
                });
            }
            if let Some(current) = series.last_mut() {
                current.points.push(point(row)?);
            }
        }
        // SQL orders the metric by its name; the key orders by the enum.
        series.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(series)
    }

    async fn prune(&self, tiers: &Tiers, now: Millis) -> StoreResult<u64> {
        let mut tx = self
            .write
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(db_err)?;
        let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM series")
            .fetch_all(&mut *tx)
            .await
            .map_err(db_err)?;
        let steps: Vec<String> = tiers.all().iter().map(|t| t.step_ms.to_string()).collect();
        // Steps are integers formatted here, not input: safe to inline.
        let other_steps = format!(
            "DELETE FROM points WHERE series = $1 AND step_ms NOT IN ({})",
            steps.join(",")
        );
        let mut dropped = 0;
        for id in ids {
            for tier in tiers.all() {
                dropped += sqlx::query(
                    "DELETE FROM points WHERE series = $1 AND step_ms = $2 AND bucket < $3",
                )
                .bind(id)
                .bind(tier.step_ms)
                .bind(tier.oldest_kept(now))
                .execute(&mut *tx)
                .await
                .map_err(db_err)?
                .rows_affected();
            }
            dropped += sqlx::query(sqlx::AssertSqlSafe(other_steps.clone()))
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?
                .rows_affected();
        }
        let emptied = sqlx::query(
            "DELETE FROM series WHERE NOT EXISTS (SELECT 1 FROM points WHERE points.series = series.id)",
        )
        .execute(&mut *tx)
        .await
        .map_err(db_err)?
        .rows_affected();
        if emptied > 0 {
            // Dropped series get new ids when they come back.
            self.ids().clear();
        }
        tx.commit().await.map_err(db_err)?;
        Ok(dropped)
    }
}

impl SqliteMetricsStore {
    /// One round in one transaction.
    async fn record_round(&self, tiers: &Tiers, samples: &[Sample]) -> StoreResult<()> {
        let mut tx = self
            .write
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(db_err)?;
        // (series, step, bucket, value) of every tier of every sample, written in batches of
        // multi-row upserts: one statement per batch instead of one per point.
        let mut rows = Vec::with_capacity(samples.len() * tiers.all().len());
        for sample in samples.iter().filter(|s| s.value.is_finite()) {
            let id = self.series_id(&mut tx, &sample.key).await?;
            for tier in tiers.all() {
                rows.push((
                    id,
                    tier.step_ms,
                    align(sample.at, tier.step_ms),
                    sample.value,
                ));
            }
        }
        for batch in rows.chunks(ROWS_PER_STATEMENT) {
            let values: Vec<String> = (0..batch.len())
                .map(|i| {
                    let n = i * 4;
                    format!(
                        "(?{}, ?{}, ?{}, 1, ?{v}, ?{v}, ?{v})",
                        n + 1,
                        n + 2,
                        n + 3,
                        v = n + 4
                    )
                })
                .collect();
            // Only numbered placeholders are formatted in: safe to build.
            let sql = format!(
                "INSERT INTO points (series, step_ms, bucket, count, sum, min, max) VALUES {}
                 ON CONFLICT (series, step_ms, bucket) DO UPDATE SET
                     count = count + 1, sum = sum + excluded.sum,
                     min = min(min, excluded.min), max = max(max, excluded.max)",
                values.join(", ")
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for &(id, step, bucket, value) in batch {
                query = query.bind(id).bind(step).bind(bucket).bind(value);
            }
            query.execute(&mut *tx).await.map_err(db_err)?;
        }
        tx.commit().await.map_err(db_err)
    }

    /// Runs `PRAGMA wal_checkpoint(TRUNCATE)` so the file alone holds the data (benchmarks
    /// measure its size).
    pub async fn checkpoint(&self) -> StoreResult<()> {
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&self.write)
            .await
            .map_err(db_err)?;
        Ok(())
    }
}
