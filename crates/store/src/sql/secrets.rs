//! [`SecretStore`] in SQL: team secrets (`secrets`) and their sealed versions
//! (`secret_versions`), migration 0019.

use super::DbRow;
use async_trait::async_trait;
use berth_core::team_secret::TeamSecret;

use super::{SqlStore, db_err, get};
use crate::{SecretStore, StoreError, StoreResult};

fn secret_from_row(row: &DbRow) -> StoreResult<TeamSecret> {
    let version: i64 = get(row, "version")?;
    Ok(TeamSecret {
        team: get(row, "team")?,
        name: get(row, "name")?,
        version: u32::try_from(version)
            .map_err(|_| StoreError::Database(format!("secret version {version} out of range")))?,
        created_at: get(row, "created_at")?,
        created_by: get(row, "created_by")?,
        updated_at: get(row, "updated_at")?,
        updated_by: get(row, "updated_by")?,
    })
}

#[async_trait]
impl SecretStore for SqlStore {
    async fn get_secret(&self, team: &str, name: &str) -> StoreResult<Option<TeamSecret>> {
        sqlx::query(
            "SELECT team, name, version, created_at, created_by, updated_at, updated_by \
             FROM secrets WHERE team = $1 AND name = $2",
        )
        .bind(team)
        .bind(name)
        .fetch_optional(&self.read)
        .await
        .map_err(db_err)?
        .as_ref()
        .map(secret_from_row)
        .transpose()
    }

    async fn list_secrets(&self, team: Option<&str>) -> StoreResult<Vec<TeamSecret>> {
        let rows = match team {
            Some(team) => {
                sqlx::query(
                    "SELECT team, name, version, created_at, created_by, updated_at, \
                     updated_by FROM secrets WHERE team = $1 ORDER BY name",
                )
                .bind(team)
                .fetch_all(&self.read)
                .await
            }
            None => {
                sqlx::query(
                    "SELECT team, name, version, created_at, created_by, updated_at, \
                     updated_by FROM secrets ORDER BY team, name",
                )
                .fetch_all(&self.read)
                .await
            }
        }
        .map_err(db_err)?;
        rows.iter().map(secret_from_row).collect()
    }

    async fn add_secret_version(
        &self,
        secret: &TeamSecret,
        sealed: &str,
        keep: u32,
    ) -> StoreResult<()> {
        let mut tx = self.write.begin().await.map_err(db_err)?;
        let version = i64::from(secret.version);
        let stored = if secret.version == 1 {
            sqlx::query(
                "INSERT INTO secrets (team, name, version, created_at, created_by, updated_at, \
                 updated_by) VALUES ($1, $2, 1, $3, $4, $5, $6) ON CONFLICT (team, name) DO NOTHING",
            )
            .bind(&secret.team)
            .bind(&secret.name)
            .bind(secret.created_at)
            .bind(&secret.created_by)
            .bind(secret.updated_at)
            .bind(&secret.updated_by)
            .execute(&mut *tx)
            .await
        } else {
            sqlx::query(
                "UPDATE secrets SET version = $3, updated_at = $4, updated_by = $5 \
                 WHERE team = $1 AND name = $2 AND version = $3 - 1",
            )
            .bind(&secret.team)
            .bind(&secret.name)
            .bind(version)
            .bind(secret.updated_at)
            .bind(&secret.updated_by)
            .execute(&mut *tx)
            .await
        }
        .map_err(db_err)?;
        if stored.rows_affected() != 1 {
            return Err(StoreError::Conflict(format!(
                "secret {}/{} changed meanwhile",
                secret.team, secret.name
            )));
        }
        sqlx::query(
            "INSERT INTO secret_versions (team, name, version, sealed, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&secret.team)
        .bind(&secret.name)
        .bind(version)
        .bind(sealed)
        .bind(secret.updated_at)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        sqlx::query("DELETE FROM secret_versions WHERE team = $1 AND name = $2 AND version <= $3")
            .bind(&secret.team)
            .bind(&secret.name)
            .bind(version - i64::from(keep))
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)
    }

    async fn sealed_secret(
        &self,
        team: &str,
        name: &str,
        version: u32,
    ) -> StoreResult<Option<String>> {
        sqlx::query_scalar(
            "SELECT sealed FROM secret_versions WHERE team = $1 AND name = $2 AND version = $3",
        )
        .bind(team)
        .bind(name)
        .bind(i64::from(version))
        .fetch_optional(&self.read)
        .await
        .map_err(db_err)
    }

    async fn delete_secret(&self, team: &str, name: &str) -> StoreResult<bool> {
        let mut tx = self.write.begin().await.map_err(db_err)?;
        let done = sqlx::query("DELETE FROM secrets WHERE team = $1 AND name = $2")
            .bind(team)
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        sqlx::query("DELETE FROM secret_versions WHERE team = $1 AND name = $2")
            .bind(team)
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }
}
