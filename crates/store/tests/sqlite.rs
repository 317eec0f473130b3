//! The SQLite store against the conformance suite, plus what only SQLite has: the file, WAL
//! mode, migrations on reopen, two handles on one file, and corrupt rows.

use std::path::Path;
use std::sync::Arc;

use berth_core::{Event, EventKind};
use berth_store::conformance::{self, new_app, revision};
use berth_store::prelude::*;
use berth_store::{AuditQuery, EventQuery, SqliteStore, StoreError};
use sqlx::{ConnectOptions, Connection, SqliteConnection};

/// A plain connection to the file, bypassing the store (as an operator's `sqlite3` would).
async fn raw(path: &Path) -> SqliteConnection {
    sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .connect()
        .await
        .expect("raw connection")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("berth.db"))
        .await
        .unwrap();
    conformance::run_all(Arc::new(store.clone())).await;
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_in_memory() {
    let store = SqliteStore::open_in_memory().await.unwrap();
    conformance::run_all(Arc::new(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_memory_stores_are_separate() {
    let one = SqliteStore::open_in_memory().await.unwrap();
    let two = SqliteStore::open_in_memory().await.unwrap();
    one.create_app(&new_app("web"), &revision("web", 1))
        .await
        .unwrap();
    assert!(two.get_app("web").await.unwrap().is_none());
    two.create_app(&new_app("web"), &revision("web", 1))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopen_keeps_data_in_wal_mode_and_migrates_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state").with_extension("db");
    assert!(!path.exists());

    let store = SqliteStore::open(&path).await.unwrap();
    assert!(path.exists(), "open creates the file");
    let app = new_app("web");
    store.create_app(&app, &revision("web", 1)).await.unwrap();
    store
        .append_events(
            &[Event::new("web", 1, EventKind::AppCreated, "created")],
            10,
        )
        .await
        .unwrap();
    let reserved = berth_core::App {
        next_ordinal: 2,
        ..app.clone()
    };
    store.update_app(&reserved).await.unwrap();
    store.close().await;

    for _ in 0..2 {
        let store = SqliteStore::open(&path).await.expect("reopen");
        let stored = store
            .get_app("web")
            .await
            .unwrap()
            .expect("app survives a reopen");
        assert_eq!(
            stored,
            berth_core::App {
                next_ordinal: 2,
                version: app.version + 1,
                ..app.clone()
            }
        );
        assert_eq!(
            store.get_revision("web", 1).await.unwrap(),
            Some(revision("web", 1))
        );
        let events = store
            .list_events(
                "web",
                EventQuery {
                    after_id: None,
                    limit: 10,
                },
            )
            .await;
        assert_eq!(events.unwrap().len(), 1);
        store.close().await;
    }

    let mut conn = raw(&path).await;
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    let applied: Vec<(i64, bool)> =
        sqlx::query_as("SELECT version, success FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    // The versions of the files (`<VERSION>_<DESCRIPTION>.sql`), not 1..=count: branches
    // reserve numbers, so a gap may exist until they merge.
    let mut migrations: Vec<i64> =
        std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite"))
            .unwrap()
            .filter_map(|entry| {
                let path = entry.ok()?.path();
                if path.extension()? != "sql" {
                    return None;
                }
                path.file_name()?.to_str()?.split('_').next()?.parse().ok()
            })
            .collect();
    migrations.sort_unstable();
    assert_eq!(
        applied,
        migrations.iter().map(|v| (*v, true)).collect::<Vec<_>>(),
        "each migration is applied exactly once"
    );
    conn.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_handles_on_one_file_never_see_busy() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("berth.db");
    let one: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).await.unwrap());
    let two: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).await.unwrap());
    conformance::apps::two_stores_on_one_database_lose_no_write(one, two).await;
}

#[tokio::test]
async fn unknown_phase_or_kind_in_the_database_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("berth.db");
    let store = SqliteStore::open(&path).await.unwrap();
    conformance::apps::unknown_phase_or_kind_is_an_error(&store, async |statements| {
        let mut conn = raw(&path).await;
        for sql in statements {
            sqlx::query(*sql).execute(&mut conn).await.unwrap();
        }
        conn.close().await.unwrap();
    })
    .await;
    store.close().await;
}

#[tokio::test]
async fn unknown_status_or_outcome_in_the_database_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("berth.db");
    let store = SqliteStore::open(&path).await.unwrap();
    store.ensure_team("payments", 1).await.unwrap();
    let request = store
        .create_quota_request(&conformance::new_quota_request("payments", "ada", 1))
        .await
        .unwrap();
    let id = store
        .append_audit(&conformance::new_audit("ada", "app.create", None, 1))
        .await
        .unwrap();

    let mut conn = raw(&path).await;
    sqlx::query("UPDATE quota_requests SET status = 'withdrawn'")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("UPDATE audit_log SET outcome = 'maybe'")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();

    match store.get_quota_request(request.id).await {
        Err(StoreError::Database(message)) => assert!(message.contains("withdrawn"), "{message}"),
        other => panic!("expected a database error, got {other:?}"),
    }
    match store
        .list_audit(&AuditQuery {
            before_id: Some(id + 1),
            limit: 1,
            ..AuditQuery::default()
        })
        .await
    {
        Err(StoreError::Database(message)) => assert!(message.contains("maybe"), "{message}"),
        other => panic!("expected a database error, got {other:?}"),
    }
    store.close().await;
}

#[tokio::test]
async fn open_fails_cleanly_on_a_missing_directory() {
    let dir = tempfile::tempdir().unwrap();
    let result = SqliteStore::open(&dir.path().join("no/such/dir/berth.db")).await;
    match result {
        Err(StoreError::Database(message)) => assert!(message.contains("berth.db"), "{message}"),
        Err(other) => panic!("expected a database error, got {other:?}"),
        Ok(_) => panic!("opening under a missing directory succeeded"),
    }
}

/// Each area's suite on its own, as a backend implementing only that area runs it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_per_area() {
    let store = Arc::new(SqliteStore::open_in_memory().await.unwrap());
    conformance::apps::run(store.clone()).await;
    conformance::accounts::run(store.clone()).await;
    conformance::registry::run(store.clone()).await;
    conformance::pipelines::run(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_store_passes_the_metrics_suite_in_a_file_and_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let file = berth_store::SqliteMetricsStore::open(&dir.path().join("metrics.db"))
        .await
        .unwrap();
    conformance::metrics::run(Arc::new(file.clone())).await;
    // Reopened, the series are still there (and the id cache starts empty).
    file.close().await;
    let again = berth_store::SqliteMetricsStore::open(&dir.path().join("metrics.db"))
        .await
        .unwrap();
    conformance::metrics::run(Arc::new(again)).await;
    conformance::metrics::run(Arc::new(
        berth_store::SqliteMetricsStore::open_in_memory()
            .await
            .unwrap(),
    ))
    .await;
}
