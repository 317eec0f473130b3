//! [`NodeStore`] in SQL: node labels (`nodes`) and platform events (`platform_events`),
//! migration 0016.

use std::collections::BTreeMap;

use super::DbRow;
use async_trait::async_trait;
use berth_core::Millis;
use berth_core::node::{NodeLabels, PlatformEvent, PlatformEventKind};

use super::{SqlStore, db_err, get, json_err, keep_newest, keyed_json, params_json};
use crate::{EventQuery, NodeStore, StoreError, StoreResult};

#[async_trait]
impl NodeStore for SqlStore {
    async fn node_labels(&self) -> StoreResult<BTreeMap<String, NodeLabels>> {
        let rows = sqlx::query("SELECT name, labels_json FROM nodes ORDER BY name")
            .fetch_all(&self.read)
            .await
            .map_err(db_err)?;
        keyed_json(&rows, "name", "labels_json", |name| {
            format!("labels of node {name}")
        })
    }

    async fn set_node_labels(
        &self,
        node: &str,
        labels: &NodeLabels,
        now: Millis,
    ) -> StoreResult<()> {
        if labels.is_empty() {
            sqlx::query("DELETE FROM nodes WHERE name = $1")
                .bind(node)
                .execute(&self.write)
                .await
                .map_err(db_err)?;
            return Ok(());
        }
        let json =
            serde_json::to_string(labels).map_err(json_err(format!("labels of node {node}")))?;
        sqlx::query(
            "INSERT INTO nodes (name, labels_json, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET labels_json = $2, updated_at = $3",
        )
        .bind(node)
        .bind(json)
        .bind(now)
        .execute(&self.write)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn append_platform_events(
        &self,
        events: &[PlatformEvent],
        keep_per_subject: u32,
    ) -> StoreResult<()> {
        if events.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        let mut subjects = std::collections::BTreeSet::new();
        for event in events {
            sqlx::query(
                "INSERT INTO platform_events (subject, at, kind, message, params) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(event.subject.as_str())
            .bind(event.at)
            .bind(event.kind.as_str())
            .bind(event.message.as_str())
            .bind(params_json(&event.params, || event.subject.to_string())?)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            subjects.insert(event.subject.as_str());
        }
        keep_newest(
            &mut tx,
            "DELETE FROM platform_events WHERE subject = $1 AND id <= \
             (SELECT id FROM platform_events WHERE subject = $1 \
              ORDER BY id DESC LIMIT 1 OFFSET $2)",
            subjects,
            keep_per_subject,
        )
        .await?;
        tx.commit().await.map_err(db_err)
    }

    async fn list_platform_events(
        &self,
        subject: &str,
        query: EventQuery,
    ) -> StoreResult<Vec<PlatformEvent>> {
        let limit = i64::from(query.limit);
        let rows = match query.after_id {
            Some(after_id) => {
                sqlx::query(
                    "SELECT id, subject, at, kind, message, params FROM platform_events \
                     WHERE subject = $1 AND id > $2 ORDER BY id ASC LIMIT $3",
                )
                .bind(subject)
                .bind(after_id)
                .bind(limit)
                .fetch_all(&self.read)
                .await
            }
            None => {
                sqlx::query(
                    "SELECT id, subject, at, kind, message, params FROM \
                     (SELECT id, subject, at, kind, message, params FROM platform_events \
                      WHERE subject = $1 ORDER BY id DESC LIMIT $2) AS latest \
                     ORDER BY id ASC",
                )
                .bind(subject)
                .bind(limit)
                .fetch_all(&self.read)
                .await
            }
        }
        .map_err(db_err)?;
        rows.iter().map(platform_event_from_row).collect()
    }
}

fn platform_event_from_row(row: &DbRow) -> StoreResult<PlatformEvent> {
    let id: i64 = get(row, "id")?;
    let kind: String = get(row, "kind")?;
    let kind = PlatformEventKind::parse(&kind).ok_or_else(|| {
        StoreError::Database(format!(
            "platform event {id} has an unknown kind {kind:?} in the database"
        ))
    })?;
    let params: String = get(row, "params")?;
    Ok(PlatformEvent {
        id,
        subject: get(row, "subject")?,
        at: get(row, "at")?,
        kind,
        message: get(row, "message")?,
        params: serde_json::from_str(&params)
            .map_err(json_err(format!("parameters of platform event {id}")))?,
    })
}
