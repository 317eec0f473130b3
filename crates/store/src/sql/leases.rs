//! [`LeaseStore`] in SQL: leases (`leases`, SQLite migration 0020, PostgreSQL 0002) and what
//! their holder publishes (`published`, SQLite 0022, PostgreSQL 0004).

use async_trait::async_trait;
use berth_core::Millis;
use berth_core::leadership::{Lease, Published};

use super::{DbRow, SqlStore, db_err, get};
use crate::{LeaseStore, StoreResult};

const LEASE_COLUMNS: &str = "name, holder, epoch, acquired_at, renewed_at, expires_at";

fn lease_from_row(row: &DbRow) -> StoreResult<Lease> {
    Ok(Lease {
        name: get(row, "name")?,
        holder: get(row, "holder")?,
        epoch: get(row, "epoch")?,
        acquired_at: get(row, "acquired_at")?,
        renewed_at: get(row, "renewed_at")?,
        expires_at: get(row, "expires_at")?,
    })
}

#[async_trait]
impl LeaseStore for SqlStore {
    async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        now: Millis,
        ttl_ms: i64,
    ) -> StoreResult<Lease> {
        // One statement decides: the row is written only when it is free, expired or the
        // holder's own running term (`WHERE` of the upsert); the `SET` expressions see the row
        // as it was, so a renewal keeps the epoch and the start of the term.
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO leases (name, holder, epoch, acquired_at, renewed_at, expires_at) \
             VALUES ($1, $2, 1, $3, $3, $4) \
             ON CONFLICT (name) DO UPDATE SET \
             epoch = CASE WHEN leases.holder = excluded.holder \
                 AND leases.expires_at > excluded.renewed_at \
                 THEN leases.epoch ELSE leases.epoch + 1 END, \
             acquired_at = CASE WHEN leases.holder = excluded.holder \
                 AND leases.expires_at > excluded.renewed_at \
                 THEN leases.acquired_at ELSE excluded.acquired_at END, \
             holder = excluded.holder, renewed_at = excluded.renewed_at, \
             expires_at = excluded.expires_at \
             WHERE leases.holder = excluded.holder OR leases.expires_at <= excluded.renewed_at",
        )
        .bind(name)
        .bind(holder)
        .bind(now)
        .bind(now.saturating_add(ttl_ms))
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {LEASE_COLUMNS} FROM leases WHERE name = $1"
        )))
        .bind(name)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        lease_from_row(&row)
    }

    async fn release_lease(&self, name: &str, holder: &str, epoch: i64) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE leases SET expires_at = 0 WHERE name = $1 AND holder = $2 AND epoch = $3",
        )
        .bind(name)
        .bind(holder)
        .bind(epoch)
        .execute(&self.write)
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected() > 0)
    }

    async fn get_lease(&self, name: &str) -> StoreResult<Option<Lease>> {
        // On the writer: a follower deciding whether to take over must see the latest renewal.
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {LEASE_COLUMNS} FROM leases WHERE name = $1"
        )))
        .bind(name)
        .fetch_optional(&self.write)
        .await
        .map_err(db_err)?;
        row.as_ref().map(lease_from_row).transpose()
    }

    async fn publish_as_leader(
        &self,
        lease: &str,
        holder: &str,
        epoch: i64,
        key: &str,
        body: &str,
        now: Millis,
    ) -> StoreResult<bool> {
        // The term check and the write are one statement: no window in which the lease could
        // pass to another server between them.
        let done = sqlx::query(
            "INSERT INTO published (key, epoch, body, published_at) \
             SELECT $4, $3, $5, $6 WHERE EXISTS \
             (SELECT 1 FROM leases WHERE name = $1 AND holder = $2 AND epoch = $3) \
             ON CONFLICT (key) DO UPDATE SET epoch = excluded.epoch, body = excluded.body, \
             published_at = excluded.published_at",
        )
        .bind(lease)
        .bind(holder)
        .bind(epoch)
        .bind(key)
        .bind(body)
        .bind(now)
        .execute(&self.write)
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected() > 0)
    }

    async fn database_time(&self) -> StoreResult<Millis> {
        sqlx::query_scalar(super::DATABASE_NOW_MS)
            .fetch_one(&self.write)
            .await
            .map_err(db_err)
    }

    async fn published(&self, key: &str) -> StoreResult<Option<Published>> {
        let row = sqlx::query("SELECT epoch, body, published_at FROM published WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.read)
            .await
            .map_err(db_err)?;
        row.map(|row| {
            Ok(Published {
                epoch: get(&row, "epoch")?,
                body: get(&row, "body")?,
                published_at: get(&row, "published_at")?,
            })
        })
        .transpose()
    }
}
