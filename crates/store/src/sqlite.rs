//! The embedded SQLite [`Store`](crate::Store): one database file in WAL mode, one writer
//! connection, a few readers.
//!
//! SQLite allows one writer at a time. Instead of letting writers race for the lock (and
//! surface `SQLITE_BUSY`), every write goes through a pool holding exactly one connection, and
//! multi-statement writes run in `BEGIN IMMEDIATE` transactions so the write lock is taken up
//! front (this also keeps a second process on the same file safe: it waits up to the busy
//! timeout instead of failing on a lock upgrade). Reads use a separate pool whose connections
//! are `query_only`; in WAL mode they never block the writer nor wait for it.
//!
//! The queries themselves are shared with PostgreSQL (module `sql`); this module holds what
//! only SQLite does: the connection model, its migrations and `VACUUM INTO` snapshots. Queries
//! are checked at run time (no `query!` macros, so no database at build time).

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

pub mod metrics;
// Compiled once per backend on purpose (see `sql`'s docs).
#[allow(clippy::duplicate_mod)]
#[path = "sql/mod.rs"]
mod sql;

use crate::migrations::migrator_of;
use crate::{StoreError, StoreResult};
use sql::db_err;

/// The database the shared queries ([`sql`]) run on here.
type Db = sqlx::Sqlite;
type DbRow = sqlx::sqlite::SqliteRow;
type DbConnection = sqlx::sqlite::SqliteConnection;
type DbPool = sqlx::SqlitePool;
/// The store type the shared queries are implemented on.
type SqlStore = SqliteStore;
/// The database's clock in unix milliseconds (`LeaseStore::database_time`).
const DATABASE_NOW_MS: &str =
    "SELECT CAST(ROUND((julianday('now') - 2440587.5) * 86400000.0) AS INTEGER)";

/// Schema migrations, in order. Files follow sqlx's `<VERSION>_<DESCRIPTION>.sql` naming and are
/// checksummed the way `sqlx::migrate!` does (bookkeeping in `_sqlx_migrations`), so the
/// database stays compatible with `sqlx-cli`. They are listed by hand because `migrate!` needs
/// sqlx's `macros` feature (a proc-macro stack we do not otherwise build); a unit test checks
/// this list against the directory.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "init",
        include_str!("../migrations/sqlite/0001_init.sql"),
    ),
    (
        2,
        "retention rules",
        include_str!("../migrations/sqlite/0002_retention_rules.sql"),
    ),
    (
        3,
        "accounts",
        include_str!("../migrations/sqlite/0003_accounts.sql"),
    ),
    (
        4,
        "teams quotas audit",
        include_str!("../migrations/sqlite/0004_teams_quotas_audit.sql"),
    ),
    (
        5,
        "external registries",
        include_str!("../migrations/sqlite/0005_external_registries.sql"),
    ),
    (
        6,
        "pipelines",
        include_str!("../migrations/sqlite/0006_pipelines.sql"),
    ),
    (
        7,
        "webhook delivery builds",
        include_str!("../migrations/sqlite/0007_webhook_delivery_builds.sql"),
    ),
    (
        8,
        "event params",
        include_str!("../migrations/sqlite/0008_event_params.sql"),
    ),
    (
        9,
        "team boundary",
        include_str!("../migrations/sqlite/0009_team_boundary.sql"),
    ),
    (
        10,
        "team usage",
        include_str!("../migrations/sqlite/0010_team_usage.sql"),
    ),
    (
        11,
        "app routes",
        include_str!("../migrations/sqlite/0011_app_routes.sql"),
    ),
    (
        12,
        "certificates",
        include_str!("../migrations/sqlite/0012_certificates.sql"),
    ),
    (
        13,
        "rollout canary",
        include_str!("../migrations/sqlite/0013_rollout_canary.sql"),
    ),
    (
        14,
        "app idle",
        include_str!("../migrations/sqlite/0014_app_idle.sql"),
    ),
    (
        15,
        "app autoscale",
        include_str!("../migrations/sqlite/0015_app_autoscale.sql"),
    ),
    (
        16,
        "nodes",
        include_str!("../migrations/sqlite/0016_nodes.sql"),
    ),
    (
        17,
        "token scope",
        include_str!("../migrations/sqlite/0017_token_scope.sql"),
    ),
    (
        18,
        "volumes",
        include_str!("../migrations/sqlite/0018_volumes.sql"),
    ),
    (
        19,
        "secrets",
        include_str!("../migrations/sqlite/0019_secrets.sql"),
    ),
    (
        20,
        "leases",
        include_str!("../migrations/sqlite/0020_leases.sql"),
    ),
    (
        21,
        "instance health",
        include_str!("../migrations/sqlite/0021_instance_health.sql"),
    ),
    (
        22,
        "published state",
        include_str!("../migrations/sqlite/0022_published.sql"),
    ),
    (
        23,
        "registry metadata",
        include_str!("../migrations/sqlite/0023_registry_metadata.sql"),
    ),
];

/// Waiting this long for a lock held by another process before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Reader connections of a file-backed store.
const READERS: u32 = 4;
/// Waiting this long for the writer (or a reader) connection before failing.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);

/// [`Store`](crate::Store) on an SQLite database (see the module docs for the connection model).
///
/// Cloning is cheap and shares the connections.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    /// Serves reads; `query_only` connections.
    read: DbPool,
    /// Serves every write; exactly one connection.
    write: DbPool,
}

impl SqliteStore {
    /// Opens (creating it when missing) the database file at `path` and brings its schema up
    /// to date.
    pub async fn open(path: &Path) -> StoreResult<Self> {
        let (read, write) = open_file_pools(
            path,
            file_options(path).foreign_keys(true),
            &migrator(),
            "SQLite database",
        )
        .await?;
        tracing::info!(path = %path.display(), "opened SQLite store");
        Ok(SqliteStore { read, write })
    }

    /// A private, empty in-memory database (for tests). It lives as long as this store.
    ///
    /// An in-memory database belongs to the connection that created it, so reads and writes
    /// share one connection that is never recycled.
    pub async fn open_in_memory() -> StoreResult<Self> {
        let pool =
            open_memory_pool(SqliteConnectOptions::new().foreign_keys(true), &migrator()).await?;
        Ok(SqliteStore {
            read: pool.clone(),
            write: pool,
        })
    }

    /// Starts a write transaction that holds SQLite's write lock from its first statement.
    async fn begin_write(&self) -> StoreResult<sqlx::Transaction<'static, Db>> {
        self.write
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(db_err)
    }
}

fn migrator() -> Migrator {
    migrations_up_to(i64::MAX)
}

/// The migrations up to `last` (a database as an older Berth left it, for tests).
fn migrations_up_to(last: i64) -> Migrator {
    migrator_of(MIGRATIONS, last)
}

/// How a database file is opened: created when missing, WAL, a busy timeout, `NORMAL` sync.
fn file_options(path: &Path) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(BUSY_TIMEOUT)
        .synchronous(SqliteSynchronous::Normal)
}

/// The pools of a database file (`what` names it in errors): read-only readers and exactly
/// one writer, which migrates the schema before any reader connects (by then it has switched
/// the file to WAL).
async fn open_file_pools(
    path: &Path,
    options: SqliteConnectOptions,
    migrator: &Migrator,
    what: &str,
) -> StoreResult<(DbPool, DbPool)> {
    let context =
        |e: sqlx::Error| StoreError::Database(format!("opening {what} {}: {e}", path.display()));
    let write = SqlitePoolOptions::new()
        .max_connections(1)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options.clone())
        .await
        .map_err(context)?;
    sql::run_migrations(&write, migrator).await?;
    let read = SqlitePoolOptions::new()
        .max_connections(READERS)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options.pragma("query_only", "ON"))
        .await
        .map_err(context)?;
    Ok((read, write))
}

/// One connection, never recycled, to a private in-memory database, migrated (an in-memory
/// database belongs to the connection that created it).
async fn open_memory_pool(
    options: SqliteConnectOptions,
    migrator: &Migrator,
) -> StoreResult<DbPool> {
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .min_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options.filename(":memory:"))
        .await
        .map_err(|e| StoreError::Database(format!("opening in-memory SQLite: {e}")))?;
    sql::run_migrations(&pool, migrator).await?;
    Ok(pool)
}

/// `VACUUM INTO path` on `pool`: a consistent copy of the database, compacted.
pub(crate) async fn vacuum_into(pool: &DbPool, path: &Path) -> StoreResult<()> {
    let path = path.to_str().ok_or_else(|| {
        StoreError::Database(format!("snapshot path {} is not UTF-8", path.display()))
    })?;
    let mut connection = pool.acquire().await.map_err(db_err)?;
    // A reader is `query_only`, which refuses writing even another file: lifted for this
    // statement, then put back as it was (a store in memory reads on its writer).
    let query_only: i64 = sqlx::query_scalar("PRAGMA query_only")
        .fetch_one(&mut *connection)
        .await
        .map_err(db_err)?;
    sqlx::query("PRAGMA query_only = OFF")
        .execute(&mut *connection)
        .await
        .map_err(db_err)?;
    let copied = sqlx::query("VACUUM INTO $1")
        .bind(path)
        .execute(&mut *connection)
        .await;
    let restored = sqlx::query(if query_only == 0 {
        "PRAGMA query_only = OFF"
    } else {
        "PRAGMA query_only = ON"
    })
    .execute(&mut *connection)
    .await;
    if restored.is_err() {
        // Never hand a reader that can write back to the pool.
        drop(connection.detach());
    }
    copied.map_err(db_err)?;
    Ok(())
}

#[async_trait]
impl crate::SnapshotStore for SqliteStore {
    async fn snapshot_into(&self, path: &Path) -> StoreResult<()> {
        // On a reader: one read transaction, so the writer carries on meanwhile.
        vacuum_into(&self.read, path).await
    }
}

#[cfg(test)]
mod tests {
    use berth_core::quota::Usage;
    use berth_core::{App, Resources};
    use sqlx::Row;

    use super::sql::{APP_COLUMNS, bind_app, insert_revision};
    use super::*;
    use crate::AppStore;

    async fn pragma(pool: &DbPool, name: &str) -> String {
        let sql = format!("SELECT * FROM pragma_{name}()");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_one(pool)
            .await
            .unwrap();
        match row.try_get::<String, _>(0) {
            Ok(text) => text,
            Err(_) => row.try_get::<i64, _>(0).unwrap().to_string(),
        }
    }

    #[tokio::test]
    async fn connections_carry_the_pragmas() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("berth.db"))
            .await
            .unwrap();
        for pool in [&store.write, &store.read] {
            assert_eq!(pragma(pool, "journal_mode").await, "wal");
            assert_eq!(pragma(pool, "foreign_keys").await, "1");
            assert_eq!(pragma(pool, "synchronous").await, "1", "NORMAL");
            assert_eq!(pragma(pool, "busy_timeout").await, "5000");
        }
        assert_eq!(pragma(&store.write, "query_only").await, "0");
        assert_eq!(pragma(&store.read, "query_only").await, "1");
        let write = sqlx::query("DELETE FROM apps").execute(&store.read).await;
        assert!(write.is_err(), "readers cannot write");
        store.close().await;
    }

    #[tokio::test]
    async fn a_snapshot_is_a_database_with_the_state_and_leaves_the_writer_free() {
        use crate::{AccountStore, SnapshotStore};
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("berth.db"))
            .await
            .unwrap();
        store.put_setting("kept", "yes", 1).await.unwrap();
        let copy = dir.path().join("copy.db");
        store.snapshot_into(&copy).await.unwrap();
        // Existing files are never overwritten.
        assert!(store.snapshot_into(&copy).await.is_err());
        store.put_setting("later", "no", 2).await.unwrap();
        let snapshot = SqliteStore::open(&copy).await.unwrap();
        assert_eq!(
            snapshot.get_setting("kept").await.unwrap().as_deref(),
            Some("yes")
        );
        assert_eq!(snapshot.get_setting("later").await.unwrap(), None);
        snapshot.close().await;
        // The readers are read-only again.
        for _ in 0..4 {
            assert_eq!(pragma(&store.read, "query_only").await, "1");
        }
        store.close().await;
    }

    #[tokio::test]
    async fn embedded_migrations_match_the_directory() {
        crate::migrations::assert_matches_directory(&migrator(), "migrations/sqlite").await;
    }

    /// Apps written before migration 10 get what they reserve from their current revision,
    /// exactly as the store computes it on writes (clamped to BIGINT, missing revision and
    /// unlimited resources counting 0), and a sum beyond BIGINT saturates.
    #[tokio::test]
    async fn migration_10_fills_reserved_usage_like_writes_do() {
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(SqliteConnectOptions::new().filename(":memory:"))
            .await
            .unwrap();
        let store = SqliteStore {
            read: pool.clone(),
            write: pool.clone(),
        };
        migrations_up_to(9).run(&pool).await.unwrap();

        let resources = |cpu, memory| Resources {
            cpu_millis: cpu,
            memory_bytes: memory,
        };
        // (app, team, replicas, current revision, resources per revision number)
        let apps = [
            (
                "a",
                "t",
                3,
                2,
                vec![
                    (1, resources(Some(9), None)),
                    (2, resources(Some(500), Some(64))),
                ],
            ),
            ("b", "t", 2, 1, vec![(1, resources(None, None))]),
            ("c", "t", 4, 7, vec![(1, resources(Some(100), Some(100)))]),
            ("d", "other", 5, 1, vec![(1, resources(Some(10), Some(10)))]),
            (
                "e",
                "huge",
                3,
                1,
                vec![(1, resources(None, Some(u64::MAX / 2)))],
            ),
            (
                "f",
                "huge",
                2,
                1,
                vec![(1, resources(Some(1), Some(u64::MAX)))],
            ),
        ];
        let mut conn = pool.acquire().await.unwrap();
        for (name, team, replicas, current, revisions) in &apps {
            let app = App {
                name: (*name).into(),
                team: (*team).into(),
                replicas: *replicas,
                current_revision: *current,
                latest_revision: 9,
                ..crate::conformance::new_app(name)
            };
            let insert = format!(
                "INSERT INTO apps ({APP_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, \
                 $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)"
            );
            bind_app(sqlx::query(sqlx::AssertSqlSafe(insert)), &app)
                .unwrap()
                .execute(&mut *conn)
                .await
                .unwrap();
            for (number, resources) in revisions {
                let mut revision = crate::conformance::revision(name, *number);
                revision.template.resources = resources.clone();
                insert_revision(&mut conn, &revision).await.unwrap();
            }
        }
        drop(conn);
        migrator().run(&pool).await.unwrap();

        let usage = |cpu, memory, instances| Usage {
            cpu_millis: cpu,
            memory_bytes: memory,
            instances,
            registry_bytes: 0,
            volume_bytes: 0,
        };
        let big = i64::MAX as u64;
        let want = [
            ("t", usage(1_500, 192, 9)),
            ("other", usage(50, 50, 5)),
            ("huge", usage(2, 2 * big, 5)),
            ("nobody", usage(0, 0, 0)),
        ];
        for (team, expected) in &want {
            assert_eq!(
                store.team_usage(team, None).await.unwrap(),
                *expected,
                "{team}"
            );
        }
        // Rewriting every app unchanged computes the same in Rust.
        for (name, ..) in &apps {
            let app = store.get_app(name).await.unwrap().unwrap();
            store.update_app(&app).await.unwrap();
        }
        for (team, expected) in &want {
            assert_eq!(
                store.team_usage(team, None).await.unwrap(),
                *expected,
                "{team}"
            );
        }
    }

    /// Usage sums and app pages are answered from `apps_team_name`, never by a full scan.
    #[tokio::test]
    async fn usage_and_pages_use_the_team_index() {
        let store = SqliteStore::open_in_memory().await.unwrap();
        let plan = async |sql: &str| -> String {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")))
                .fetch_all(&store.read)
                .await
                .unwrap();
            rows.iter()
                .map(|r| r.try_get::<String, _>("detail").unwrap())
                .collect::<Vec<_>>()
                .join("; ")
        };
        // (query, text the plan must contain)
        let cases = [
            (
                "SELECT SUM(reserved_cpu_millis) FROM apps WHERE team = 't' AND \
                 ('x' IS NULL OR name <> 'x')",
                "INDEX apps_team_name (team=?)",
            ),
            (
                "SELECT name FROM apps WHERE apps.name > 'm' AND apps.team IN ('a', 'b') \
                 ORDER BY apps.name LIMIT 10",
                "INDEX apps_team_name (team=? AND name>?)",
            ),
            (
                "SELECT name FROM apps WHERE apps.name > 'm' ORDER BY apps.name LIMIT 10",
                "INDEX sqlite_autoindex_apps_1 (name>?)",
            ),
        ];
        for (sql, want) in cases {
            let plan = plan(sql).await;
            assert!(plan.contains(want), "{sql}: {plan}");
        }
    }
}
