//! The PostgreSQL [`Store`](crate::Store), for several Berth servers sharing one database
//! (`--store postgres://USER@HOST/DB`).
//!
//! The queries are the ones SQLite runs (module `sql`); this module holds what only
//! PostgreSQL does: a pool of connections that both reads and writes, its migrations, and how
//! a write transaction excludes the others. SQLite has one writer, so a multi-statement write
//! (admission against a team's quota, a build numbered and inserted, a webhook delivery
//! deduplicated) never interleaves with another. Here every such transaction first takes one
//! transaction-scoped advisory lock, so they run one at a time across every server on the
//! database, and the lock goes with the commit or the rollback — also when a server dies.
//! Single-statement writes need no lock: PostgreSQL makes each atomic.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection};

// Compiled once per backend on purpose (see `sql`'s docs).
#[allow(clippy::duplicate_mod)]
#[path = "sql/mod.rs"]
mod sql;

use crate::migrations::migrator_of;
use crate::{StoreError, StoreResult};
use sql::db_err;

/// The database the shared queries ([`sql`]) run on here.
type Db = sqlx::Postgres;
type DbRow = sqlx::postgres::PgRow;
type DbConnection = sqlx::postgres::PgConnection;
type DbPool = sqlx::PgPool;
/// The store type the shared queries are implemented on.
type SqlStore = PostgresStore;
/// The database's clock in unix milliseconds (`LeaseStore::database_time`).
const DATABASE_NOW_MS: &str = "SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)";

/// Schema migrations, in order (see [`crate::migrations`]).
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "init",
        include_str!("../migrations/postgres/0001_init.sql"),
    ),
    (
        2,
        "leases",
        include_str!("../migrations/postgres/0002_leases.sql"),
    ),
    (
        3,
        "instance health",
        include_str!("../migrations/postgres/0003_instance_health.sql"),
    ),
    (
        4,
        "published state",
        include_str!("../migrations/postgres/0004_published.sql"),
    ),
    (
        5,
        "registry metadata",
        include_str!("../migrations/postgres/0005_registry_metadata.sql"),
    ),
];

/// Connections one server keeps to the database.
const CONNECTIONS: u32 = 10;
/// Connections holding shared locks at most (one per locked team); more lockers wait.
const LOCK_CONNECTIONS: u32 = 4;
/// Waiting this long for a connection before failing.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);
/// The key of the advisory lock every write transaction holds ("berth" in ASCII).
const WRITE_LOCK: i64 = 0x0062_6572_7468;

/// What `berth backup` answers on this store.
const SNAPSHOT_REFUSAL: &str = "the store is PostgreSQL, which Berth does not copy itself: back \
     it up with pg_dump (or your provider's backups), and the data directory (registry, git, \
     keys) with your file backups; berth backup copies the embedded SQLite store";

/// [`Store`](crate::Store) on a PostgreSQL database (see the module docs).
///
/// Cloning is cheap and shares the connections.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    /// Serves reads: the same pool as `write` (the shared queries name both).
    read: DbPool,
    /// Serves every write.
    write: DbPool,
    /// Holds the session-level locks of [`crate::SharedLocks`], apart from `write`: an
    /// operation holding a lock runs its queries on `write`, so locks held by many operations
    /// at once can never take every connection those queries need.
    locks: DbPool,
}

impl PostgresStore {
    /// Connects to the database `url` names (`postgres://USER:PASSWORD@HOST:PORT/DB`, or a
    /// Unix socket directory as `?host=/run/postgresql`) and brings its schema up to date.
    /// Several servers may start at once: sqlx migrates under an advisory lock.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Database(format!("invalid PostgreSQL URL: {e}")))?
            .application_name("berth");
        let unreachable = |e: sqlx::Error| {
            StoreError::Database(format!(
                "connecting to PostgreSQL at {}: {e}",
                describe(&options)
            ))
        };
        // One connection first, so a server that refuses or a bad password is reported at
        // once rather than after the pool's acquire timeout.
        options
            .connect()
            .await
            .map_err(unreachable)?
            .close()
            .await
            .ok();
        let pool = PgPoolOptions::new()
            .max_connections(CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options.clone())
            .await
            .map_err(unreachable)?;
        sql::run_migrations(&pool, &migrator()).await?;
        let locks = PgPoolOptions::new()
            .max_connections(LOCK_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_lazy_with(options.clone());
        tracing::info!(database = %describe(&options), "opened PostgreSQL store");
        Ok(PostgresStore {
            read: pool.clone(),
            write: pool,
            locks,
        })
    }

    /// Starts a write transaction holding the write lock (see the module docs).
    async fn begin_write(&self) -> StoreResult<sqlx::Transaction<'static, Db>> {
        let mut tx = self.write.begin().await.map_err(db_err)?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(WRITE_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        Ok(tx)
    }
}

/// The notification channel of [`PostgresStore::publish`] and [`PostgresStore::subscribe`].
const SIGNAL_CHANNEL: &str = "berth_signals";

impl PostgresStore {
    /// Sends `payload` to every server listening on this database (`NOTIFY`), once the
    /// current transaction — none here — commits.
    pub async fn publish(&self, payload: &str) -> StoreResult<()> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(SIGNAL_CHANNEL)
            .bind(payload)
            .execute(&self.write)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    /// The payloads published from now on, on a connection of their own (re-established by
    /// sqlx when it drops; what is published meanwhile is lost).
    pub async fn subscribe(
        &self,
    ) -> StoreResult<futures::stream::BoxStream<'static, StoreResult<String>>> {
        use futures::StreamExt;
        let mut listener = sqlx::postgres::PgListener::connect_with(&self.write)
            .await
            .map_err(db_err)?;
        listener.listen(SIGNAL_CHANNEL).await.map_err(db_err)?;
        Ok(listener
            .into_stream()
            .map(|notification| {
                notification
                    .map(|n| n.payload().to_string())
                    .map_err(db_err)
            })
            .boxed())
    }
}

/// The first key of every [`crate::SharedLocks`] advisory lock ("be"), apart from
/// [`WRITE_LOCK`]'s single-key space.
const SHARED_LOCK_SPACE: i32 = 0x6265;

#[async_trait]
impl crate::SharedLocks for PostgresStore {
    async fn lock(&self, key: &str) -> StoreResult<crate::SharedLock> {
        self.advisory_lock(key, false).await
    }

    async fn lock_shared(&self, key: &str) -> StoreResult<crate::SharedLock> {
        self.advisory_lock(key, true).await
    }
}

impl PostgresStore {
    /// A session-level advisory lock on a connection of its own (`shared`: with others).
    async fn advisory_lock(&self, key: &str, shared: bool) -> StoreResult<crate::SharedLock> {
        let mut connection = self.locks.acquire().await.map_err(db_err)?;
        let id = lock_id(key);
        let take = if shared {
            "SELECT pg_advisory_lock_shared($1, $2)"
        } else {
            "SELECT pg_advisory_lock($1, $2)"
        };
        sqlx::query(take)
            .bind(SHARED_LOCK_SPACE)
            .bind(id)
            .execute(&mut *connection)
            .await
            .map_err(db_err)?;
        Ok(crate::SharedLock::new(HeldLock {
            connection: Some(connection),
            id,
            shared,
        }))
    }
}

/// A session-level advisory lock and the connection that holds it.
struct HeldLock {
    connection: Option<sqlx::pool::PoolConnection<Db>>,
    id: i32,
    shared: bool,
}

impl Drop for HeldLock {
    fn drop(&mut self) {
        let Some(mut connection) = self.connection.take() else {
            return;
        };
        let (id, shared) = (self.id, self.shared);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // Closing the connection releases its locks.
            drop(connection.detach());
            return;
        };
        runtime.spawn(async move {
            let release = if shared {
                "SELECT pg_advisory_unlock_shared($1, $2)"
            } else {
                "SELECT pg_advisory_unlock($1, $2)"
            };
            let unlocked = sqlx::query(release)
                .bind(SHARED_LOCK_SPACE)
                .bind(id)
                .execute(&mut *connection)
                .await;
            if unlocked.is_err() {
                // Never hand a connection that may still hold the lock back to the pool.
                drop(connection.detach());
            }
        });
    }
}

/// A lock name's key: 32 bits of its FNV-1a hash, the same on every server (names that share
/// a key only wait for each other).
fn lock_id(key: &str) -> i32 {
    let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    (hash ^ (hash >> 32)) as u32 as i32
}

/// `user@host:port/database`, never the password.
fn describe(options: &PgConnectOptions) -> String {
    format!(
        "{}@{}:{}/{}",
        options.get_username(),
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap_or_default()
    )
}

fn migrator() -> Migrator {
    migrator_of(MIGRATIONS, i64::MAX)
}

#[async_trait]
impl crate::SnapshotStore for PostgresStore {
    async fn snapshot_into(&self, _path: &std::path::Path) -> StoreResult<()> {
        Err(StoreError::Database(SNAPSHOT_REFUSAL.to_string()))
    }

    fn snapshot_refusal(&self) -> Option<&'static str> {
        Some(SNAPSHOT_REFUSAL)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_ids_are_stable_and_spread() {
        // Fixed values: every server must compute the same key for a name.
        assert_eq!(lock_id("team/payments"), lock_id("team/payments"));
        assert_ne!(lock_id("team/payments"), lock_id("team/payment"));
        assert_ne!(lock_id(""), lock_id("a"));
        let ids: std::collections::BTreeSet<i32> =
            (0..1000).map(|i| lock_id(&format!("team/t{i}"))).collect();
        assert_eq!(ids.len(), 1000);
    }

    #[tokio::test]
    async fn embedded_migrations_match_the_directory() {
        crate::migrations::assert_matches_directory(&migrator(), "migrations/postgres").await;
    }
}
