//! [`VolumeStore`] in SQL: a team's volumes (`volumes`), migration 0018.

use super::DbRow;
use async_trait::async_trait;
use berth_core::Millis;
use berth_core::volume::{Volume, VolumeScope};

use super::{SqlStore, db_err, get};
use crate::{StoreError, StoreResult, VolumeSize, VolumeStore};

fn volume_from_row(row: &DbRow) -> StoreResult<Volume> {
    let scope: String = get(row, "scope")?;
    let scope = match scope.as_str() {
        "shared" => VolumeScope::Shared,
        "per_instance" => VolumeScope::PerInstance,
        other => {
            return Err(StoreError::Database(format!(
                "unknown volume scope {other:?}"
            )));
        }
    };
    let size: Option<i64> = get(row, "size_bytes")?;
    Ok(Volume {
        team: get(row, "team")?,
        name: get(row, "name")?,
        scope,
        created_at: get(row, "created_at")?,
        created_by: get(row, "created_by")?,
        size_bytes: size.and_then(|s| u64::try_from(s).ok()),
        measured_at: get(row, "measured_at")?,
    })
}

#[async_trait]
impl VolumeStore for SqlStore {
    async fn create_volume(&self, volume: &Volume) -> StoreResult<bool> {
        let done = sqlx::query(
            "INSERT INTO volumes (team, name, scope, created_at, created_by) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (team, name) DO NOTHING",
        )
        .bind(&volume.team)
        .bind(&volume.name)
        .bind(volume.scope.as_str())
        .bind(volume.created_at)
        .bind(&volume.created_by)
        .execute(&self.write)
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn get_volume(&self, team: &str, name: &str) -> StoreResult<Option<Volume>> {
        sqlx::query(
            "SELECT team, name, scope, created_at, created_by, size_bytes, measured_at FROM volumes WHERE team = $1 AND name = $2",
        )
        .bind(team)
        .bind(name)
        .fetch_optional(&self.read)
        .await
        .map_err(db_err)?
        .as_ref()
        .map(volume_from_row)
        .transpose()
    }

    async fn list_volumes(&self, team: Option<&str>) -> StoreResult<Vec<Volume>> {
        let rows = match team {
            Some(team) => {
                sqlx::query(
            "SELECT team, name, scope, created_at, created_by, size_bytes, measured_at FROM volumes WHERE team = $1 ORDER BY name",
        )
                .bind(team)
                .fetch_all(&self.read)
                .await
            }
            None => {
                sqlx::query(
            "SELECT team, name, scope, created_at, created_by, size_bytes, measured_at FROM volumes ORDER BY team, name",
        )
                .fetch_all(&self.read)
                .await
            }
        }
        .map_err(db_err)?;
        rows.iter().map(volume_from_row).collect()
    }

    async fn delete_volume(&self, team: &str, name: &str) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM volumes WHERE team = $1 AND name = $2")
            .bind(team)
            .bind(name)
            .execute(&self.write)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn record_volume_sizes(&self, sizes: &[VolumeSize], now: Millis) -> StoreResult<()> {
        let mut tx = self.write.begin().await.map_err(db_err)?;
        for size in sizes {
            sqlx::query(
                "UPDATE volumes SET size_bytes = $3, measured_at = $4 \
                 WHERE team = $1 AND name = $2",
            )
            .bind(&size.team)
            .bind(&size.name)
            .bind(i64::try_from(size.bytes).unwrap_or(i64::MAX))
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        tx.commit().await.map_err(db_err)
    }

    async fn team_volume_bytes(&self, team: &str) -> StoreResult<u64> {
        let total: i64 = sqlx::query_scalar(
            "SELECT CAST(COALESCE(SUM(size_bytes), 0) AS BIGINT) FROM volumes WHERE team = $1",
        )
        .bind(team)
        .fetch_one(&self.read)
        .await
        .map_err(db_err)?;
        Ok(u64::try_from(total).unwrap_or(0))
    }
}
