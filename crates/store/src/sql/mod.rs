//! The queries and row mapping the SQL backends share: every area trait implemented on
//! [`SqlStore`] once, in SQL both SQLite and PostgreSQL run.
//!
//! This directory is compiled once per backend: `sqlite.rs` and `postgres.rs` each include it
//! as their own `sql` module (`#[path = "sql/mod.rs"]`) after naming, in the parent module,
//! the sqlx database (`Db`, `DbRow`, `DbConnection`, `DbPool`), the store type (`SqlStore`,
//! holding a `read` and a `write` pool) and its `begin_write`. The code is written once and
//! type-checked against each database concretely, without generic bounds on every query.
//!
//! The SQL keeps to what both databases run: `$N` placeholders, `ON CONFLICT … DO UPDATE`,
//! `RETURNING`, `CASE` rather than two-argument `MAX`, sums cast to `BIGINT`, JSON parsed in
//! Rust rather than with a database's JSON functions. Unsigned domain numbers are stored as
//! `BIGINT` (`i64`) and range-checked when read back; flags are `BOOLEAN`. A statement that
//! would differ between the two lives in the backend's module instead.

use async_trait::async_trait;
use berth_core::accounts::{ApiToken, Membership, TeamRole, TokenScope, User};
use berth_core::audit::AuditEntry;
use berth_core::certificate::StoredCertificate;
use berth_core::deploy_template::DeploymentTemplate;
use berth_core::pipeline::{Build, BuildStatus, Pipeline};
use berth_core::quota::{Quota, QuotaRequest, QuotaRequestStatus, Usage};
use berth_core::routes::DomainReservation;
use berth_core::session::Session;
use berth_core::team::Team;
use berth_core::{
    App, Event, EventKind, ExternalRegistry, Millis, Resources, RetentionRule, Revision, Rollout,
    RolloutPhase,
};
use sqlx::Row;

mod leases;
mod nodes;
mod secrets;
mod volumes;

use super::{DATABASE_NOW_MS, Db, DbConnection, DbPool, DbRow, SqlStore};
use crate::enums::DbEnum;
use crate::{
    AccountStore, AppList, AppPage, AppStore, AuditQuery, BuildQuery, CertificateStore,
    DeliveryBuild, DomainOwner, EventQuery, ListedApp, PipelineStore, QuotaDecision,
    QuotaRequestQuery, RegistryStore, RevisionImage, StoreError, StoreResult, check_revision_app,
    reserved_usage,
};

impl SqlStore {
    /// Closes every connection (an SQLite file checkpoints its WAL). Calls made afterwards
    /// fail.
    pub async fn close(&self) {
        self.read.close().await;
        self.write.close().await;
    }

    /// Deletes a row and its dependent rows in one write transaction (see [`delete_rows`]).
    /// Returns whether the parent row existed.
    async fn delete_with_children<'k, K>(
        &self,
        children: &[&'static str],
        parent: &'static str,
        key: K,
    ) -> StoreResult<bool>
    where
        K: sqlx::Encode<'k, Db> + sqlx::Type<Db> + Clone + Send + 'k,
    {
        let mut tx = self.begin_write().await?;
        let deleted = delete_rows(&mut tx, children, parent, key).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(deleted)
    }

    /// The row `sql` finds with `$1` bound to `key`, converted by `from_row`; `None` when
    /// there is none.
    async fn read_optional<'k, T, K>(
        &self,
        sql: &'static str,
        key: K,
        from_row: fn(&DbRow) -> StoreResult<T>,
    ) -> StoreResult<Option<T>>
    where
        K: sqlx::Encode<'k, Db> + sqlx::Type<Db> + Send + 'k,
    {
        let row = sqlx::query(sql)
            .bind(key)
            .fetch_optional(&self.read)
            .await
            .map_err(db_err)?;
        row.as_ref().map(from_row).transpose()
    }

    /// Every row `sql` finds, converted by `from_row`.
    async fn read_all<T>(
        &self,
        sql: &'static str,
        from_row: fn(&DbRow) -> StoreResult<T>,
    ) -> StoreResult<Vec<T>> {
        let rows = sqlx::query(sql)
            .fetch_all(&self.read)
            .await
            .map_err(db_err)?;
        rows.iter().map(from_row).collect()
    }

    /// [`AppStore::team_usage`] when a sum is beyond `BIGINT`: the team's rows added up here,
    /// saturating like [`Usage::add`].
    async fn team_usage_saturating(
        &self,
        team: &str,
        except_app: Option<&str>,
    ) -> StoreResult<Usage> {
        let rows = sqlx::query(
            "SELECT reserved_cpu_millis, reserved_memory_bytes, reserved_instances FROM apps \
             WHERE team = $1 AND ($2 IS NULL OR name <> $2)",
        )
        .bind(team)
        .bind(except_app)
        .fetch_all(&self.read)
        .await
        .map_err(db_err)?;
        rows.iter().try_fold(Usage::default(), |sum, row| {
            Ok(sum.add(Usage {
                cpu_millis: get_uint(row, "reserved_cpu_millis")?,
                memory_bytes: get_uint(row, "reserved_memory_bytes")?,
                instances: get_uint(row, "reserved_instances")?,
                registry_bytes: 0,
                volume_bytes: 0,
            }))
        })
    }
}

/// Brings the schema of the database behind `pool` up to date.
pub(super) async fn run_migrations(
    pool: &DbPool,
    migrator: &sqlx::migrate::Migrator,
) -> StoreResult<()> {
    migrator.run(pool).await.map_err(|e| {
        StoreError::Database(format!(
            "migrating the {} schema: {e}",
            <Db as sqlx::Database>::NAME
        ))
    })
}

/// Whether a statement failed on a sum beyond `BIGINT` (SQLite's `integer overflow`,
/// PostgreSQL's `numeric_value_out_of_range`).
fn is_overflow(e: &dyn sqlx::error::DatabaseError) -> bool {
    e.message().contains("integer overflow") || e.code().as_deref() == Some("22003")
}

/// The rows as a map from column `key` to column `json` parsed; `what` names a key's value for
/// the error about bad JSON.
pub(super) fn keyed_json<T: serde::de::DeserializeOwned>(
    rows: &[DbRow],
    key: &str,
    json: &str,
    what: impl Fn(&str) -> String,
) -> StoreResult<std::collections::BTreeMap<String, T>> {
    rows.iter()
        .map(|row| {
            let name: String = get(row, key)?;
            let text: String = get(row, json)?;
            let value = serde_json::from_str(&text).map_err(json_err(what(&name)))?;
            Ok((name, value))
        })
        .collect()
}

/// `$first, $first+1, …`: `count` placeholders for an `IN (…)` list.
fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The one field of a template [`AppStore::revision_images`] reads.
#[derive(serde::Deserialize)]
struct TemplateImage {
    #[serde(default)]
    image: Option<String>,
}

/// Maps a sqlx error: unique-constraint violations are conflicts, the rest database failures.
pub(super) fn db_err(e: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(d) = &e
        && d.is_unique_violation()
    {
        return StoreError::Conflict(d.message().to_string());
    }
    StoreError::Database(e.to_string())
}

/// As [`db_err`], with a readable message for the expected conflict.
fn conflict_or_db(e: sqlx::Error, conflict: impl FnOnce() -> String) -> StoreError {
    match db_err(e) {
        StoreError::Conflict(_) => StoreError::Conflict(conflict()),
        other => other,
    }
}

/// As [`conflict_or_db`] for a write of `app`'s row: a domain it claims that another app holds
/// (`app_domains`' key, written by the row's triggers) is named as such.
fn app_write_err(e: sqlx::Error, app: &App, conflict: impl FnOnce() -> String) -> StoreError {
    let on_domains = matches!(&e, sqlx::Error::Database(d) if d.message().contains("app_domains"));
    conflict_or_db(e, || {
        if on_domains {
            format!("a domain of app {} belongs to another app", app.name)
        } else {
            conflict()
        }
    })
}

/// Maps a JSON (de)serialisation failure of `what` (e.g. "template of revision 3 of app web").
fn json_err(what: String) -> impl FnOnce(serde_json::Error) -> StoreError {
    move |e| StoreError::Database(format!("JSON of the {what}: {e}"))
}

fn u64_to_db(value: u64, what: &str) -> StoreResult<i64> {
    i64::try_from(value)
        .map_err(|_| StoreError::Database(format!("{what} {value} does not fit in BIGINT")))
}

pub(super) fn get<'r, T>(row: &'r DbRow, column: &str) -> StoreResult<T>
where
    T: sqlx::Decode<'r, Db> + sqlx::Type<Db>,
{
    row.try_get(column)
        .map_err(|e| StoreError::Database(format!("reading column {column}: {e}")))
}

/// An unsigned domain number stored as `BIGINT`, range-checked.
fn get_uint<T: TryFrom<i64>>(row: &DbRow, column: &str) -> StoreResult<T> {
    let value: i64 = get(row, column)?;
    uint_from_db(value, column)
}

fn get_opt_uint<T: TryFrom<i64>>(row: &DbRow, column: &str) -> StoreResult<Option<T>> {
    let value: Option<i64> = get(row, column)?;
    value.map(|v| uint_from_db(v, column)).transpose()
}

fn uint_from_db<T: TryFrom<i64>>(value: i64, column: &str) -> StoreResult<T> {
    T::try_from(value).map_err(|_| {
        StoreError::Database(format!(
            "column {column} holds {value}, not a {}",
            std::any::type_name::<T>()
        ))
    })
}

/// An enum-like column; `owner` names the row for the error about an unknown value.
fn get_enum<T: DbEnum>(
    row: &DbRow,
    column: &str,
    owner: impl FnOnce() -> String,
) -> StoreResult<T> {
    let value: String = get(row, column)?;
    T::parse(&value).ok_or_else(|| {
        StoreError::Database(format!(
            "{} has an unknown {column} {value:?} in the database",
            owner()
        ))
    })
}

type DbQuery<'q> = sqlx::query::Query<'q, Db, <Db as sqlx::Database>::Arguments>;

/// The `apps` columns, in the order [`bind_app`] binds them and [`app_from_row`] reads them.
macro_rules! app_columns {
    () => {
        "name, team, replicas, strategy_json, dependencies_json, current_revision, \
         stable_revision, latest_revision, rollout_revision, rollout_phase, \
         rollout_failed_revision, rollout_message, rollout_started_at, rollout_progress_at, \
         rollout_available, rollout_finished_at, next_ordinal, created_at, updated_at, version"
    };
}

/// [`app_columns!`] for the SQLite backend's own tests (unused in PostgreSQL's).
#[cfg(test)]
#[allow(dead_code)]
pub(super) const APP_COLUMNS: &str = app_columns!();

/// Every column of an app's row: [`app_columns!`] (bound by [`bind_app`]), `routes_json`
/// (migration 11, bound by [`bind_routes`]), `rollout_canary_json` (migration 13, `$25`,
/// bound by [`bind_canary`]), `idle_json` (migration 14, `$26`, bound by [`bind_idle`]) and
/// `autoscale_json` (migration 15, `$27`, bound by [`bind_autoscale`]).
macro_rules! app_row_columns {
    () => {
        concat!(
            app_columns!(),
            ", routes_json, rollout_canary_json, idle_json, autoscale_json"
        )
    };
}

/// Also writes what the app reserves (`$22..$24`, see [`bind_reserved`]).
const INSERT_APP: &str = concat!(
    "INSERT INTO apps (",
    app_columns!(),
    ", routes_json, reserved_cpu_millis, reserved_memory_bytes, reserved_instances, \
     rollout_canary_json, idle_json, autoscale_json) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, \
     $19, $20, $21, $22, $23, $24, $25, $26, $27)"
);

/// Writes every mutable column and what the app reserves (`$22..$24`); `name` and
/// `created_at` are left alone, and `next_ordinal` only ever grows (an ordinal handed out
/// stays taken even when a write carries an older one).
const UPDATE_APP: &str = concat!(
    "UPDATE apps SET team = $2, replicas = $3, strategy_json = $4, dependencies_json = $5, \
     current_revision = $6, stable_revision = $7, latest_revision = $8, rollout_revision = $9, \
     rollout_phase = $10, rollout_failed_revision = $11, rollout_message = $12, \
     rollout_started_at = $13, rollout_progress_at = $14, rollout_available = $15, \
     rollout_finished_at = $16, next_ordinal = CASE WHEN next_ordinal > $17 THEN next_ordinal ELSE $17 END, updated_at = $19, \
     version = version + 1, routes_json = $21, \
     reserved_cpu_millis = $22, reserved_memory_bytes = $23, reserved_instances = $24, \
     rollout_canary_json = $25, idle_json = $26, autoscale_json = $27 \
     WHERE name = $1 AND version = $20 RETURNING ",
    app_row_columns!()
);

const SELECT_APP: &str = concat!("SELECT ", app_row_columns!(), " FROM apps WHERE name = $1");
const SELECT_APPS: &str = concat!("SELECT ", app_row_columns!(), " FROM apps ORDER BY name");

/// Binds `$1..$20` in [`app_columns!`] order.
pub(super) fn bind_app<'q>(query: DbQuery<'q>, app: &App) -> StoreResult<DbQuery<'q>> {
    let what = |field: &str| format!("{field} of app {}", app.name);
    let strategy = serde_json::to_string(&app.strategy).map_err(json_err(what("strategy")))?;
    let dependencies =
        serde_json::to_string(&app.dependencies).map_err(json_err(what("dependencies")))?;
    let next_ordinal = u64_to_db(app.next_ordinal, &what("next_ordinal"))?;
    let rollout = &app.rollout;
    Ok(query
        .bind(app.name.clone())
        .bind(app.team.clone())
        .bind(i64::from(app.replicas))
        .bind(strategy)
        .bind(dependencies)
        .bind(i64::from(app.current_revision))
        .bind(app.stable_revision.map(i64::from))
        .bind(i64::from(app.latest_revision))
        .bind(i64::from(rollout.revision))
        .bind(rollout.phase.as_str())
        .bind(rollout.failed_revision.map(i64::from))
        .bind(rollout.message.clone())
        .bind(rollout.started_at)
        .bind(rollout.progress_at)
        .bind(i64::from(rollout.available))
        .bind(rollout.finished_at)
        .bind(next_ordinal)
        .bind(app.created_at)
        .bind(app.updated_at)
        .bind(app.version))
}

/// Binds `$21`: the app's routes.
fn bind_routes<'q>(query: DbQuery<'q>, app: &App) -> StoreResult<DbQuery<'q>> {
    let routes = serde_json::to_string(&app.routes)
        .map_err(json_err(format!("routes of app {}", app.name)))?;
    Ok(query.bind(routes))
}

/// Binds `$25`: the rollout's canary progress (NULL without one).
fn bind_canary<'q>(query: DbQuery<'q>, app: &App) -> StoreResult<DbQuery<'q>> {
    let canary = app
        .rollout
        .canary
        .map(|progress| serde_json::to_string(&progress))
        .transpose()
        .map_err(json_err(format!("rollout canary of app {}", app.name)))?;
    Ok(query.bind(canary))
}

/// The app's idle setting and state as `idle_json` holds them.
#[derive(serde::Serialize, serde::Deserialize, Default)]
struct IdleColumn {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    timeout_secs: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    idled: Option<berth_core::idle::Idled>,
}

/// Binds `$26`: the app's idle timeout and idle state.
fn bind_idle<'q>(query: DbQuery<'q>, app: &App) -> StoreResult<DbQuery<'q>> {
    let idle = serde_json::to_string(&IdleColumn {
        timeout_secs: app.idle_timeout_secs,
        idled: app.idled,
    })
    .map_err(json_err(format!("idle state of app {}", app.name)))?;
    Ok(query.bind(idle))
}

/// Binds `$27`: the app's autoscaling setting (NULL without one).
fn bind_autoscale<'q>(query: DbQuery<'q>, app: &App) -> StoreResult<DbQuery<'q>> {
    let autoscale = app
        .autoscale
        .map(|settings| serde_json::to_string(&settings))
        .transpose()
        .map_err(json_err(format!("autoscaling of app {}", app.name)))?;
    Ok(query.bind(autoscale))
}

/// Binds `$22..$24`: what an app at `replicas` with `resources` reserves (see the 0010
/// migration).
fn bind_reserved<'q>(
    query: DbQuery<'q>,
    replicas: u32,
    resources: &Resources,
) -> StoreResult<DbQuery<'q>> {
    let usage = reserved_usage(replicas, resources);
    Ok(query
        .bind(u64_to_db(usage.cpu_millis, "reserved CPU")?)
        .bind(u64_to_db(usage.memory_bytes, "reserved memory")?)
        .bind(u64_to_db(usage.instances, "reserved instances")?))
}

/// The resources of revision `number` of `app`, read in the caller's transaction; the default
/// (unlimited) when the revision does not exist, as admission has always counted it.
async fn revision_resources(
    conn: &mut DbConnection,
    app: &str,
    number: u32,
) -> StoreResult<Resources> {
    let json: Option<String> =
        sqlx::query_scalar("SELECT template_json FROM revisions WHERE app = $1 AND number = $2")
            .bind(app)
            .bind(i64::from(number))
            .fetch_optional(&mut *conn)
            .await
            .map_err(db_err)?;
    /// The one field of a template read here.
    #[derive(serde::Deserialize)]
    struct TemplateResources {
        #[serde(default)]
        resources: Option<Resources>,
    }
    match json {
        Some(json) => serde_json::from_str::<TemplateResources>(&json)
            .map(|template| template.resources.unwrap_or_default())
            .map_err(json_err(format!(
                "resources of revision {number} of app {app}"
            ))),
        None => Ok(Resources::default()),
    }
}

/// An event's parameters as the `params` column holds them; `owner` names whose event it is
/// for the error.
pub(crate) fn params_json(
    params: &std::collections::BTreeMap<String, String>,
    owner: impl FnOnce() -> String,
) -> StoreResult<String> {
    serde_json::to_string(params)
        .map_err(json_err(format!("parameters of an event of {}", owner())))
}

/// Keeps only the newest `keep` events of each of `keys` with `delete`, a statement that binds
/// the key as `$1` and `keep` as `$2` and removes everything at or below the (keep+1)-th newest
/// id (nothing when there are fewer).
pub(crate) async fn keep_newest(
    conn: &mut DbConnection,
    delete: &'static str,
    keys: std::collections::BTreeSet<&str>,
    keep: u32,
) -> StoreResult<()> {
    for key in keys {
        sqlx::query(delete)
            .bind(key)
            .bind(i64::from(keep))
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
    }
    Ok(())
}

fn app_from_row(row: &DbRow) -> StoreResult<App> {
    let name: String = get(row, "name")?;
    let phase: String = get(row, "rollout_phase")?;
    let phase = RolloutPhase::parse(&phase).ok_or_else(|| {
        StoreError::Database(format!(
            "app {name} has an unknown rollout phase {phase:?} in the database"
        ))
    })?;
    let strategy: String = get(row, "strategy_json")?;
    let dependencies: String = get(row, "dependencies_json")?;
    let routes: String = get(row, "routes_json")?;
    let canary: Option<String> = get(row, "rollout_canary_json")?;
    let canary = canary
        .map(|json| serde_json::from_str(&json))
        .transpose()
        .map_err(json_err(format!("rollout canary of app {name}")))?;
    let idle: String = get(row, "idle_json")?;
    let idle: IdleColumn =
        serde_json::from_str(&idle).map_err(json_err(format!("idle state of app {name}")))?;
    let autoscale: Option<String> = get(row, "autoscale_json")?;
    let autoscale = autoscale
        .map(|json| serde_json::from_str(&json))
        .transpose()
        .map_err(json_err(format!("autoscaling of app {name}")))?;
    let next_ordinal: i64 = get(row, "next_ordinal")?;
    Ok(App {
        team: get(row, "team")?,
        replicas: get_uint(row, "replicas")?,
        strategy: serde_json::from_str(&strategy)
            .map_err(json_err(format!("strategy of app {name}")))?,
        dependencies: serde_json::from_str(&dependencies)
            .map_err(json_err(format!("dependencies of app {name}")))?,
        routes: serde_json::from_str(&routes).map_err(json_err(format!("routes of app {name}")))?,
        current_revision: get_uint(row, "current_revision")?,
        stable_revision: get_opt_uint(row, "stable_revision")?,
        latest_revision: get_uint(row, "latest_revision")?,
        rollout: Rollout {
            revision: get_uint(row, "rollout_revision")?,
            phase,
            failed_revision: get_opt_uint(row, "rollout_failed_revision")?,
            message: get(row, "rollout_message")?,
            started_at: get(row, "rollout_started_at")?,
            progress_at: get(row, "rollout_progress_at")?,
            available: get_uint(row, "rollout_available")?,
            finished_at: get(row, "rollout_finished_at")?,
            canary,
        },
        next_ordinal: u64::try_from(next_ordinal).map_err(|_| {
            StoreError::Database(format!(
                "app {name} has a negative next_ordinal {next_ordinal}"
            ))
        })?,
        idle_timeout_secs: idle.timeout_secs,
        idled: idle.idled,
        autoscale,
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
        version: get(row, "version")?,
        name,
    })
}

macro_rules! revision_columns {
    () => {
        "app, number, template_json, created_at, created_by, reason"
    };
}

const SELECT_REVISION: &str = concat!(
    "SELECT ",
    revision_columns!(),
    " FROM revisions WHERE app = $1 AND number = $2"
);
const SELECT_REVISIONS: &str = concat!(
    "SELECT ",
    revision_columns!(),
    " FROM revisions WHERE app = $1 ORDER BY number DESC"
);

fn revision_from_row(row: &DbRow) -> StoreResult<Revision> {
    let app: String = get(row, "app")?;
    let number = get_uint(row, "number")?;
    let template: String = get(row, "template_json")?;
    Ok(Revision {
        template: serde_json::from_str(&template).map_err(json_err(format!(
            "template of revision {number} of app {app}"
        )))?,
        created_at: get(row, "created_at")?,
        created_by: get(row, "created_by")?,
        reason: get(row, "reason")?,
        app,
        number,
    })
}

fn event_from_row(row: &DbRow) -> StoreResult<Event> {
    let id: i64 = get(row, "id")?;
    let kind: String = get(row, "kind")?;
    let kind = EventKind::parse(&kind).ok_or_else(|| {
        StoreError::Database(format!(
            "event {id} has an unknown kind {kind:?} in the database"
        ))
    })?;
    Ok(Event {
        id,
        app: get(row, "app")?,
        at: get(row, "at")?,
        kind,
        instance: get(row, "instance")?,
        revision: get_opt_uint(row, "revision")?,
        message: get(row, "message")?,
        params: {
            let params: String = get(row, "params")?;
            serde_json::from_str(&params).map_err(json_err(format!("parameters of event {id}")))?
        },
    })
}

pub(super) async fn insert_revision(
    conn: &mut DbConnection,
    revision: &Revision,
) -> StoreResult<()> {
    let template = serde_json::to_string(&revision.template).map_err(json_err(format!(
        "template of revision {} of app {}",
        revision.number, revision.app
    )))?;
    sqlx::query(concat!(
        "INSERT INTO revisions (",
        revision_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6)"
    ))
    .bind(revision.app.as_str())
    .bind(i64::from(revision.number))
    .bind(template)
    .bind(revision.created_at)
    .bind(revision.created_by.as_str())
    .bind(revision.reason.as_str())
    .execute(conn)
    .await
    .map_err(|e| {
        conflict_or_db(e, || {
            format!(
                "revision {} of app {} already exists",
                revision.number, revision.app
            )
        })
    })?;
    Ok(())
}

/// The optimistic update shared by `update_app` and `add_revision`; run it in a transaction.
/// `current` is the template of `app.current_revision` when the caller holds it (a revision
/// being added); otherwise it is read here, so what the app reserves always follows its
/// replicas and current revision.
async fn update_app_in(
    conn: &mut DbConnection,
    app: &App,
    current: Option<&Resources>,
) -> StoreResult<App> {
    let resources = match current {
        Some(resources) => resources.clone(),
        None => revision_resources(conn, &app.name, app.current_revision).await?,
    };
    let query = bind_routes(bind_app(sqlx::query(UPDATE_APP), app)?, app)?;
    let row = bind_autoscale(
        bind_idle(
            bind_canary(bind_reserved(query, app.replicas, &resources)?, app)?,
            app,
        )?,
        app,
    )?
    .fetch_optional(&mut *conn)
    .await
    .map_err(|e| {
        app_write_err(e, app, || {
            format!("app {} was changed concurrently", app.name)
        })
    })?;
    if let Some(row) = row {
        return app_from_row(&row);
    }
    let exists = sqlx::query("SELECT version FROM apps WHERE name = $1")
        .bind(app.name.as_str())
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_err)?;
    Err(match exists {
        None => StoreError::NotFound(format!("app {}", app.name)),
        Some(_) => StoreError::Conflict(format!("app {} was changed concurrently", app.name)),
    })
}

const USER_COLUMNS: &str =
    "id, username, email, display_name, is_admin, disabled, created_at, updated_at";

fn user_from_row(row: &DbRow) -> StoreResult<User> {
    Ok(User {
        id: get(row, "id")?,
        username: get(row, "username")?,
        email: get(row, "email")?,
        display_name: get(row, "display_name")?,
        is_admin: get(row, "is_admin")?,
        disabled: get(row, "disabled")?,
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
    })
}

/// Names the taken field of a unique violation on `users`.
fn user_conflict(e: sqlx::Error, user: &User) -> StoreError {
    let on_username = matches!(&e, sqlx::Error::Database(d) if d.message().contains("username"));
    conflict_or_db(e, || {
        if on_username {
            format!("username {} is taken", user.username)
        } else {
            format!("email {} is taken", user.email)
        }
    })
}

fn membership_from_row(row: &DbRow) -> StoreResult<Membership> {
    let team: String = get(row, "team")?;
    let user_id: i64 = get(row, "user_id")?;
    let role: String = get(row, "role")?;
    let role = TeamRole::parse(&role).ok_or_else(|| {
        StoreError::Database(format!(
            "user {user_id} has an unknown role {role:?} in team {team} in the database"
        ))
    })?;
    Ok(Membership {
        team,
        user_id,
        role,
    })
}

const TOKEN_COLUMNS: &str =
    "id, user_id, name, prefix, expires_at, last_used_at, created_at, revoked, scope";

fn token_from_row(row: &DbRow) -> StoreResult<ApiToken> {
    Ok(ApiToken {
        id: get(row, "id")?,
        user_id: get(row, "user_id")?,
        name: get(row, "name")?,
        prefix: get(row, "prefix")?,
        expires_at: get(row, "expires_at")?,
        last_used_at: get(row, "last_used_at")?,
        created_at: get(row, "created_at")?,
        revoked: get(row, "revoked")?,
        scope: {
            let scope: String = get(row, "scope")?;
            TokenScope::parse(&scope).ok_or_else(|| {
                StoreError::Database(format!("api token with unknown scope {scope:?}"))
            })?
        },
    })
}

/// Binds the five limits of `quota` (NULL: unlimited) in the order cpu, memory, instances,
/// registry, volumes; `what` names the owner for the error about a limit beyond `BIGINT`.
fn bind_quota<'q>(query: DbQuery<'q>, quota: &Quota, what: &str) -> StoreResult<DbQuery<'q>> {
    let limit = |value: Option<u64>, field: &str| {
        value
            .map(|v| u64_to_db(v, &format!("{field} limit of {what}")))
            .transpose()
    };
    Ok(query
        .bind(limit(quota.cpu_millis, "CPU")?)
        .bind(limit(quota.memory_bytes, "memory")?)
        .bind(limit(quota.instances, "instances")?)
        .bind(limit(quota.registry_bytes, "registry storage")?)
        .bind(limit(quota.volume_bytes, "volume storage")?))
}

/// Reads the five limit columns named `<prefix>cpu_millis`, `<prefix>memory_bytes`, ….
fn quota_from_row(row: &DbRow, prefix: &str) -> StoreResult<Quota> {
    let limit = |field: &str| get_opt_uint(row, &format!("{prefix}{field}"));
    Ok(Quota {
        cpu_millis: limit("cpu_millis")?,
        memory_bytes: limit("memory_bytes")?,
        instances: limit("instances")?,
        registry_bytes: limit("registry_bytes")?,
        volume_bytes: limit("volume_bytes")?,
    })
}

macro_rules! session_columns {
    () => {
        "user_id, csrf_token, created_at, expires_at, last_seen_at, source"
    };
}

fn session_from_row(row: &DbRow) -> StoreResult<Session> {
    Ok(Session {
        user_id: get(row, "user_id")?,
        csrf_token: get(row, "csrf_token")?,
        created_at: get(row, "created_at")?,
        expires_at: get(row, "expires_at")?,
        last_seen_at: get(row, "last_seen_at")?,
        source: get(row, "source")?,
    })
}

macro_rules! team_columns {
    () => {
        "name, display_name, quota_cpu_millis, quota_memory_bytes, quota_instances, \
         quota_registry_bytes, quota_volume_bytes, created_at, updated_at"
    };
}

fn team_from_row(row: &DbRow) -> StoreResult<Team> {
    Ok(Team {
        name: get(row, "name")?,
        display_name: get(row, "display_name")?,
        quota: quota_from_row(row, "quota_")?,
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
    })
}

macro_rules! quota_request_columns {
    () => {
        "id, team, requested_by, requested_cpu_millis, requested_memory_bytes, \
         requested_instances, requested_registry_bytes, requested_volume_bytes, reason, status, \
         created_at, decided_by, decided_at, comment"
    };
}

const SELECT_QUOTA_REQUEST: &str = concat!(
    "SELECT ",
    quota_request_columns!(),
    " FROM quota_requests WHERE id = $1"
);

fn quota_request_from_row(row: &DbRow) -> StoreResult<QuotaRequest> {
    let id: i64 = get(row, "id")?;
    Ok(QuotaRequest {
        id,
        team: get(row, "team")?,
        requested_by: get(row, "requested_by")?,
        requested: quota_from_row(row, "requested_")?,
        reason: get(row, "reason")?,
        status: get_enum(row, "status", || format!("quota request {id}"))?,
        created_at: get(row, "created_at")?,
        decided_by: get(row, "decided_by")?,
        decided_at: get(row, "decided_at")?,
        comment: get(row, "comment")?,
    })
}

macro_rules! template_columns {
    () => {
        "team, name, description, params_json, body_json, created_by, created_at, updated_at"
    };
}

fn template_from_row(row: &DbRow) -> StoreResult<DeploymentTemplate> {
    let team: String = get(row, "team")?;
    let name: String = get(row, "name")?;
    let what = |field: &str| format!("{field} of template {name} of team {team}");
    let params: String = get(row, "params_json")?;
    let body: String = get(row, "body_json")?;
    Ok(DeploymentTemplate {
        params: serde_json::from_str(&params).map_err(json_err(what("parameters")))?,
        body: serde_json::from_str(&body).map_err(json_err(what("body")))?,
        description: get(row, "description")?,
        created_by: get(row, "created_by")?,
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
        team: Some(team),
        name,
    })
}

macro_rules! external_registry_columns {
    () => {
        "name, team, url, username, sealed_password, created_at, updated_at"
    };
}

fn external_registry_from_row(row: &DbRow) -> StoreResult<ExternalRegistry> {
    Ok(ExternalRegistry {
        name: get(row, "name")?,
        team: get(row, "team")?,
        url: get(row, "url")?,
        username: get(row, "username")?,
        sealed_password: get(row, "sealed_password")?,
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
    })
}

macro_rules! certificate_columns {
    () => {
        "host, team, app, source, chain_pem, sealed_key, names_json, not_before, not_after, \
         created_by, created_at, updated_at"
    };
}

fn certificate_from_row(row: &DbRow) -> StoreResult<StoredCertificate> {
    let host: String = get(row, "host")?;
    let names: String = get(row, "names_json")?;
    Ok(StoredCertificate {
        team: get(row, "team")?,
        app: get(row, "app")?,
        source: get_enum(row, "source", || format!("certificate of {host}"))?,
        chain_pem: get(row, "chain_pem")?,
        sealed_key: get(row, "sealed_key")?,
        names: serde_json::from_str(&names)
            .map_err(json_err(format!("names of the certificate of {host}")))?,
        not_before: get(row, "not_before")?,
        not_after: get(row, "not_after")?,
        created_by: get(row, "created_by")?,
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
        host,
    })
}

macro_rules! pipeline_columns {
    () => {
        "team, name, repository_url, branch_pattern, dockerfile, context, build_args_json, \
         test_command_json, target_repository, deploy_app, sealed_credentials, \
         sealed_webhook_secret, created_by, created_at, updated_at, credentials_origin"
    };
}

fn pipeline_from_row(row: &DbRow) -> StoreResult<Pipeline> {
    let team: String = get(row, "team")?;
    let name: String = get(row, "name")?;
    let what = |field: &str| format!("{field} of pipeline {name} of team {team}");
    let build_args: String = get(row, "build_args_json")?;
    let test_command: String = get(row, "test_command_json")?;
    Ok(Pipeline {
        build_args: serde_json::from_str(&build_args).map_err(json_err(what("build args")))?,
        test_command: serde_json::from_str(&test_command)
            .map_err(json_err(what("test command")))?,
        repository_url: get(row, "repository_url")?,
        branch_pattern: get(row, "branch_pattern")?,
        dockerfile: get(row, "dockerfile")?,
        context: get(row, "context")?,
        target_repository: get(row, "target_repository")?,
        deploy_app: get(row, "deploy_app")?,
        sealed_credentials: get(row, "sealed_credentials")?,
        credentials_origin: get(row, "credentials_origin")?,
        sealed_webhook_secret: get(row, "sealed_webhook_secret")?,
        created_by: get(row, "created_by")?,
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
        team,
        name,
    })
}

macro_rules! build_columns {
    () => {
        "id, team, pipeline, number, trigger_kind, triggered_by, commit_sha, branch, author, \
         author_email, message, status, steps_json, image_digest, rollout_outcome, reason, \
         created_at, started_at, finished_at"
    };
}

const SELECT_BUILD: &str = concat!("SELECT ", build_columns!(), " FROM builds WHERE id = $1");

/// Every [`BuildQuery`] filter, bound as `$1..$4` in field order (an absent filter is NULL).
const SELECT_BUILDS: &str = concat!(
    "SELECT ",
    build_columns!(),
    " FROM builds WHERE ($1 IS NULL OR team = $1) AND ($2 IS NULL OR pipeline = $2) \
     AND ($3 IS NULL OR id < $3) ORDER BY id DESC LIMIT $4"
);

/// The same, for a pipeline: a plain equality lets the planner walk `builds_pipeline`.
const SELECT_BUILDS_OF_PIPELINE: &str = concat!(
    "SELECT ",
    build_columns!(),
    " FROM builds WHERE team = $1 AND pipeline = $2 AND ($3 IS NULL OR id < $3) \
     ORDER BY id DESC LIMIT $4"
);

fn build_from_row(row: &DbRow) -> StoreResult<Build> {
    let id: i64 = get(row, "id")?;
    let owner = || format!("build {id}");
    let steps: String = get(row, "steps_json")?;
    Ok(Build {
        id,
        team: get(row, "team")?,
        pipeline: get(row, "pipeline")?,
        number: get_uint(row, "number")?,
        trigger: get_enum(row, "trigger_kind", owner)?,
        triggered_by: get(row, "triggered_by")?,
        commit: get(row, "commit_sha")?,
        branch: get(row, "branch")?,
        author: get(row, "author")?,
        author_email: get(row, "author_email")?,
        message: get(row, "message")?,
        status: get_enum(row, "status", owner)?,
        steps: serde_json::from_str(&steps).map_err(json_err(format!("steps of build {id}")))?,
        image_digest: get(row, "image_digest")?,
        rollout_outcome: get(row, "rollout_outcome")?,
        reason: get(row, "reason")?,
        created_at: get(row, "created_at")?,
        started_at: get(row, "started_at")?,
        finished_at: get(row, "finished_at")?,
    })
}

fn steps_json(build: &Build) -> StoreResult<String> {
    serde_json::to_string(&build.steps).map_err(json_err(format!("steps of build {}", build.id)))
}

/// `'queued', 'fetching', …`: the statuses of builds that have not ended, as SQL literals
/// (fixed words from the core, never user input).
fn unfinished_statuses_sql() -> String {
    BuildStatus::ALL
        .into_iter()
        .filter(|s| !s.is_terminal())
        .map(|s| format!("'{}'", DbEnum::as_str(s)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Numbers and inserts a new build of `(build.team, build.pipeline)` (see
/// [`PipelineStore::create_build`]); the caller's write transaction makes the two steps atomic.
/// `NotFound` when the pipeline does not exist.
async fn insert_build(conn: &mut DbConnection, build: &Build) -> StoreResult<Build> {
    let steps = steps_json(build)?;
    let number: Option<i64> = sqlx::query_scalar(
        "UPDATE pipelines SET next_build_number = next_build_number + 1 \
         WHERE team = $1 AND name = $2 RETURNING next_build_number - 1",
    )
    .bind(build.team.as_str())
    .bind(build.pipeline.as_str())
    .fetch_optional(&mut *conn)
    .await
    .map_err(db_err)?;
    let Some(number) = number else {
        return Err(StoreError::NotFound(format!(
            "pipeline {} of team {}",
            build.pipeline, build.team
        )));
    };
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO builds (team, pipeline, number, trigger_kind, triggered_by, commit_sha, \
         branch, author, author_email, message, status, steps_json, image_digest, \
         rollout_outcome, reason, created_at, started_at, finished_at) VALUES ($1, $2, $3, \
         $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18) RETURNING id",
    )
    .bind(build.team.as_str())
    .bind(build.pipeline.as_str())
    .bind(number)
    .bind(DbEnum::as_str(build.trigger))
    .bind(build.triggered_by.as_str())
    .bind(build.commit.as_deref())
    .bind(build.branch.as_deref())
    .bind(build.author.as_deref())
    .bind(build.author_email.as_deref())
    .bind(build.message.as_deref())
    .bind(DbEnum::as_str(build.status))
    .bind(steps)
    .bind(build.image_digest.as_deref())
    .bind(build.rollout_outcome.as_deref())
    .bind(build.reason.as_deref())
    .bind(build.created_at)
    .bind(build.started_at)
    .bind(build.finished_at)
    .fetch_one(&mut *conn)
    .await
    .map_err(db_err)?;
    Ok(Build {
        id,
        number: uint_from_db(number, "next_build_number")?,
        ..build.clone()
    })
}

/// Writes every mutable column of `build` (see [`PipelineStore::update_build`]).
async fn write_build(conn: &mut DbConnection, build: &Build) -> StoreResult<()> {
    sqlx::query(
        "UPDATE builds SET commit_sha = $2, branch = $3, author = $4, author_email = $5, \
         message = $6, status = $7, steps_json = $8, image_digest = $9, rollout_outcome = $10, \
         reason = $11, started_at = $12, finished_at = $13 WHERE id = $1",
    )
    .bind(build.id)
    .bind(build.commit.as_deref())
    .bind(build.branch.as_deref())
    .bind(build.author.as_deref())
    .bind(build.author_email.as_deref())
    .bind(build.message.as_deref())
    .bind(DbEnum::as_str(build.status))
    .bind(steps_json(build)?)
    .bind(build.image_digest.as_deref())
    .bind(build.rollout_outcome.as_deref())
    .bind(build.reason.as_deref())
    .bind(build.started_at)
    .bind(build.finished_at)
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

macro_rules! audit_columns {
    () => {
        "id, at, actor, action, team, object, source, outcome, status, detail"
    };
}

/// Every [`AuditQuery`] filter, bound as `$1..$9` in field order. An absent filter is bound as
/// NULL and matches everything, so the SQL stays fixed. The action prefix is compared with
/// `substr` rather than `LIKE`, whose `%` and `_` would act as wildcards.
macro_rules! audit_filters {
    () => {
        "($1 IS NULL OR team = $1) AND ($2 IS NULL OR actor = $2) \
         AND ($3 IS NULL OR substr(action, 1, length($3)) = $3) \
         AND ($4 IS NULL OR object = $4) AND ($5 IS NULL OR outcome = $5) \
         AND ($6 IS NULL OR at >= $6) AND ($7 IS NULL OR at < $7) \
         AND ($8 IS NULL OR id < $8) \
         ORDER BY id DESC LIMIT $9"
    };
}

// The planner cannot use an index for `($1 IS NULL OR team = $1)`, so the queries by team or
// by actor repeat that filter as a plain equality: it walks `audit_log_team` or
// `audit_log_actor` newest first instead of scanning the whole log.
const SELECT_AUDIT: &str = concat!(
    "SELECT ",
    audit_columns!(),
    " FROM audit_log WHERE ",
    audit_filters!()
);
const SELECT_AUDIT_OF_TEAM: &str = concat!(
    "SELECT ",
    audit_columns!(),
    " FROM audit_log WHERE team = $1 AND ",
    audit_filters!()
);
const SELECT_AUDIT_OF_ACTOR: &str = concat!(
    "SELECT ",
    audit_columns!(),
    " FROM audit_log WHERE actor = $2 AND ",
    audit_filters!()
);

fn audit_from_row(row: &DbRow) -> StoreResult<AuditEntry> {
    let id: i64 = get(row, "id")?;
    Ok(AuditEntry {
        id,
        at: get(row, "at")?,
        actor: get(row, "actor")?,
        action: get(row, "action")?,
        team: get(row, "team")?,
        object: get(row, "object")?,
        source: get(row, "source")?,
        outcome: get_enum(row, "outcome", || format!("audit record {id}"))?,
        status: get_uint(row, "status")?,
        detail: get(row, "detail")?,
    })
}

/// Whether `sql` (selecting by one key `$1`) finds a row.
async fn row_exists<'q, K>(conn: &mut DbConnection, sql: &'static str, key: K) -> StoreResult<bool>
where
    K: sqlx::Encode<'q, Db> + sqlx::Type<Db> + Send + 'q,
{
    let row = sqlx::query(sql)
        .bind(key)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_err)?;
    Ok(row.is_some())
}

/// Deletes `children` first, then `parent`, each bound to `key` as `$1`. Explicit rather than
/// relying on `ON DELETE CASCADE`, which SQLite only honours with the `foreign_keys` pragma on.
/// Returns whether the parent row existed.
async fn delete_rows<'k, K>(
    conn: &mut DbConnection,
    children: &[&'static str],
    parent: &'static str,
    key: K,
) -> StoreResult<bool>
where
    K: sqlx::Encode<'k, Db> + sqlx::Type<Db> + Clone + Send + 'k,
{
    for sql in children {
        sqlx::query(*sql)
            .bind(key.clone())
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
    }
    let deleted = sqlx::query(parent)
        .bind(key)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?
        .rows_affected();
    Ok(deleted > 0)
}

#[async_trait]
impl AppStore for SqlStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.read)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn create_app(&self, app: &App, first_revision: &Revision) -> StoreResult<()> {
        check_revision_app(app, first_revision)?;
        // A new app has no other revision: any other current revision is missing.
        let resources = if app.current_revision == first_revision.number {
            first_revision.template.resources.clone()
        } else {
            Resources::default()
        };
        let mut tx = self.begin_write().await?;
        bind_autoscale(
            bind_idle(
                bind_canary(
                    bind_reserved(
                        bind_routes(bind_app(sqlx::query(INSERT_APP), app)?, app)?,
                        app.replicas,
                        &resources,
                    )?,
                    app,
                )?,
                app,
            )?,
            app,
        )?
        .execute(&mut *tx)
        .await
        .map_err(|e| app_write_err(e, app, || format!("app {} already exists", app.name)))?;
        insert_revision(&mut tx, first_revision).await?;
        tx.commit().await.map_err(db_err)
    }

    async fn get_app(&self, name: &str) -> StoreResult<Option<App>> {
        let row = sqlx::query(SELECT_APP)
            .bind(name)
            .fetch_optional(&self.read)
            .await
            .map_err(db_err)?;
        row.as_ref().map(app_from_row).transpose()
    }

    async fn list_apps(&self) -> StoreResult<Vec<App>> {
        let rows = sqlx::query(SELECT_APPS)
            .fetch_all(&self.read)
            .await
            .map_err(db_err)?;
        rows.iter().map(app_from_row).collect()
    }

    async fn update_app(&self, app: &App) -> StoreResult<App> {
        let mut tx = self.begin_write().await?;
        let stored = update_app_in(&mut tx, app, None).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(stored)
    }

    async fn add_revision(&self, app: &App, revision: &Revision, keep: u32) -> StoreResult<App> {
        check_revision_app(app, revision)?;
        let mut tx = self.begin_write().await?;
        // Update first: a missing or stale app is reported as such, not as a foreign-key error.
        let current = (app.current_revision == revision.number).then_some(&revision.template);
        let stored = update_app_in(&mut tx, app, current.map(|t| &t.resources)).await?;
        insert_revision(&mut tx, revision).await?;
        sqlx::query(
            "DELETE FROM revisions WHERE app = $1 \
             AND number NOT IN \
                 (SELECT number FROM revisions WHERE app = $1 ORDER BY number DESC LIMIT $2) \
             AND number <> $3 \
             AND ($4 IS NULL OR number <> $4)",
        )
        .bind(stored.name.as_str())
        .bind(i64::from(keep))
        .bind(i64::from(stored.current_revision))
        .bind(stored.stable_revision.map(i64::from))
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(stored)
    }

    async fn get_revision(&self, app: &str, number: u32) -> StoreResult<Option<Revision>> {
        let row = sqlx::query(SELECT_REVISION)
            .bind(app)
            .bind(i64::from(number))
            .fetch_optional(&self.read)
            .await
            .map_err(db_err)?;
        row.as_ref().map(revision_from_row).transpose()
    }

    async fn revision_images(&self) -> StoreResult<Vec<RevisionImage>> {
        let rows =
            sqlx::query("SELECT app, number, template_json FROM revisions ORDER BY app, number")
                .fetch_all(&self.read)
                .await
                .map_err(db_err)?;
        rows.iter()
            .map(|row| {
                let app: String = get(row, "app")?;
                let number: i64 = get(row, "number")?;
                let template: String = get(row, "template_json")?;
                let image = serde_json::from_str::<TemplateImage>(&template)
                    .map_err(json_err(format!("image of revision {number} of app {app}")))?
                    .image;
                Ok(RevisionImage {
                    revision: u32::try_from(number).map_err(|_| {
                        StoreError::Database(format!(
                            "revision {number} of app {app} is out of range"
                        ))
                    })?,
                    image: image.unwrap_or_default(),
                    app,
                })
            })
            .collect()
    }

    async fn list_revisions(&self, app: &str) -> StoreResult<Vec<Revision>> {
        let rows = sqlx::query(SELECT_REVISIONS)
            .bind(app)
            .fetch_all(&self.read)
            .await
            .map_err(db_err)?;
        rows.iter().map(revision_from_row).collect()
    }

    async fn delete_app(&self, name: &str) -> StoreResult<bool> {
        self.delete_with_children(
            &[
                "DELETE FROM events WHERE app = $1",
                "DELETE FROM revisions WHERE app = $1",
                "DELETE FROM app_domains WHERE app = $1",
                "DELETE FROM certificates WHERE app = $1",
                "DELETE FROM instance_health WHERE app = $1",
            ],
            "DELETE FROM apps WHERE name = $1",
            name,
        )
        .await
    }

    async fn append_events(&self, events: &[Event], keep_per_app: u32) -> StoreResult<()> {
        if events.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        let mut apps = std::collections::BTreeSet::new();
        for event in events {
            sqlx::query(
                "INSERT INTO events (app, at, kind, instance, revision, message, params) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(event.app.as_str())
            .bind(event.at)
            .bind(event.kind.as_str())
            .bind(event.instance.as_deref())
            .bind(event.revision.map(i64::from))
            .bind(event.message.as_str())
            .bind(params_json(&event.params, || format!("app {}", event.app))?)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            apps.insert(event.app.as_str());
        }
        keep_newest(
            &mut tx,
            "DELETE FROM events WHERE app = $1 AND id <= \
             (SELECT id FROM events WHERE app = $1 ORDER BY id DESC LIMIT 1 OFFSET $2)",
            apps,
            keep_per_app,
        )
        .await?;
        tx.commit().await.map_err(db_err)
    }

    async fn list_events(&self, app: &str, query: EventQuery) -> StoreResult<Vec<Event>> {
        let limit = i64::from(query.limit);
        let rows = match query.after_id {
            Some(after_id) => {
                sqlx::query(
                    "SELECT id, app, at, kind, instance, revision, message, params FROM events \
                     WHERE app = $1 AND id > $2 ORDER BY id ASC LIMIT $3",
                )
                .bind(app)
                .bind(after_id)
                .bind(limit)
                .fetch_all(&self.read)
                .await
            }
            None => {
                sqlx::query(
                    "SELECT id, app, at, kind, instance, revision, message, params FROM \
                     (SELECT id, app, at, kind, instance, revision, message, params FROM events \
                      WHERE app = $1 ORDER BY id DESC LIMIT $2) AS latest \
                     ORDER BY id ASC",
                )
                .bind(app)
                .bind(limit)
                .fetch_all(&self.read)
                .await
            }
        }
        .map_err(db_err)?;
        rows.iter().map(event_from_row).collect()
    }
    async fn team_usage(&self, team: &str, except_app: Option<&str>) -> StoreResult<Usage> {
        let sums = sqlx::query(
            "SELECT CAST(SUM(reserved_cpu_millis) AS BIGINT) AS cpu, \
             CAST(SUM(reserved_memory_bytes) AS BIGINT) AS memory, \
             CAST(SUM(reserved_instances) AS BIGINT) AS instances FROM apps \
             WHERE team = $1 AND ($2 IS NULL OR name <> $2)",
        )
        .bind(team)
        .bind(except_app)
        .fetch_one(&self.read)
        .await;
        let row = match sums {
            Ok(row) => row,
            // SUM fails beyond BIGINT: add the team's rows up here instead, saturating.
            Err(sqlx::Error::Database(e)) if is_overflow(&*e) => {
                return self.team_usage_saturating(team, except_app).await;
            }
            Err(e) => return Err(db_err(e)),
        };
        let sum = |column| get_opt_uint::<u64>(&row, column).map(Option::unwrap_or_default);
        Ok(Usage {
            cpu_millis: sum("cpu")?,
            memory_bytes: sum("memory")?,
            instances: sum("instances")?,
            registry_bytes: 0,
            volume_bytes: 0,
        })
    }

    async fn domain_owners(&self, hosts: &[String]) -> StoreResult<Vec<DomainOwner>> {
        if hosts.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT d.host, d.path, d.app, apps.team FROM app_domains AS d \
             JOIN apps ON apps.name = d.app \
             WHERE d.host IN ({}) ORDER BY d.host, d.path",
            placeholders(1, hosts.len())
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for host in hosts {
            query = query.bind(host.as_str());
        }
        let rows = query.fetch_all(&self.read).await.map_err(db_err)?;
        rows.iter()
            .map(|row| {
                Ok(DomainOwner {
                    host: get(row, "host")?,
                    path: get(row, "path")?,
                    app: get(row, "app")?,
                    team: get(row, "team")?,
                })
            })
            .collect()
    }

    async fn list_domain_reservations(&self) -> StoreResult<Vec<DomainReservation>> {
        let rows = sqlx::query(
            "SELECT domain, team, created_by, created_at FROM domain_reservations \
             ORDER BY domain",
        )
        .fetch_all(&self.read)
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|row| {
                Ok(DomainReservation {
                    domain: get(row, "domain")?,
                    team: get(row, "team")?,
                    created_by: get(row, "created_by")?,
                    created_at: get(row, "created_at")?,
                })
            })
            .collect()
    }

    async fn put_domain_reservation(&self, reservation: &DomainReservation) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO domain_reservations (domain, team, created_by, created_at) \
             VALUES ($1, $2, $3, $4) \
             ON CONFLICT (domain) DO UPDATE SET team = excluded.team, \
             created_by = excluded.created_by, created_at = excluded.created_at",
        )
        .bind(&reservation.domain)
        .bind(&reservation.team)
        .bind(&reservation.created_by)
        .bind(reservation.created_at)
        .execute(&self.write)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn delete_domain_reservation(&self, domain: &str) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM domain_reservations WHERE domain = $1")
            .bind(domain)
            .execute(&self.write)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected() > 0)
    }

    async fn put_instance_health(
        &self,
        app: &str,
        container_id: &str,
        health: &berth_core::health::RecordedHealth,
        at: Millis,
    ) -> StoreResult<()> {
        let json = serde_json::to_string(health).map_err(json_err(format!(
            "health of container {container_id} of app {app}"
        )))?;
        sqlx::query(
            "INSERT INTO instance_health (container_id, app, health_json, updated_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (container_id) DO UPDATE SET \
             app = excluded.app, health_json = excluded.health_json, \
             updated_at = excluded.updated_at",
        )
        .bind(container_id)
        .bind(app)
        .bind(json)
        .bind(at)
        .execute(&self.write)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn instance_health(
        &self,
        app: &str,
    ) -> StoreResult<std::collections::BTreeMap<String, berth_core::health::RecordedHealth>> {
        let rows =
            sqlx::query("SELECT container_id, health_json FROM instance_health WHERE app = $1")
                .bind(app)
                .fetch_all(&self.read)
                .await
                .map_err(db_err)?;
        keyed_json(&rows, "container_id", "health_json", |id| {
            format!("health of container {id} of app {app}")
        })
    }

    async fn forget_instance_health(&self, container_ids: &[String]) -> StoreResult<()> {
        if container_ids.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "DELETE FROM instance_health WHERE container_id IN ({})",
            placeholders(1, container_ids.len())
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for id in container_ids {
            query = query.bind(id.as_str());
        }
        query.execute(&self.write).await.map_err(db_err)?;
        Ok(())
    }

    async fn list_apps_page(&self, page: &AppPage) -> StoreResult<AppList> {
        let teams = page.teams.as_deref();
        if teams.is_some_and(<[String]>::is_empty) || page.limit == 0 {
            return Ok(AppList::default());
        }
        // `$1` limit (one more than asked, to learn whether a next page exists), `$2` after
        // (when given), then the teams. Only the conditions in use are written, so SQLite
        // walks `apps_team_name` per team (or the primary key) from `after` on.
        let mut conditions = Vec::new();
        let mut next = 2;
        if page.after.is_some() {
            conditions.push(format!("apps.name > ${next}"));
            next += 1;
        }
        if let Some(teams) = teams {
            conditions.push(format!(
                "apps.team IN ({})",
                placeholders(next, teams.len())
            ));
        }
        let filter = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        let columns = app_row_columns!().replace(", ", ", apps.");
        let sql = format!(
            "SELECT apps.{columns}, revisions.template_json FROM apps \
             LEFT JOIN revisions \
                 ON revisions.app = apps.name AND revisions.number = apps.current_revision \
             {filter} ORDER BY apps.name LIMIT $1"
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(i64::from(page.limit) + 1);
        if let Some(after) = &page.after {
            query = query.bind(after.as_str());
        }
        for team in teams.unwrap_or_default() {
            query = query.bind(team.as_str());
        }
        let rows = query.fetch_all(&self.read).await.map_err(db_err)?;
        let mut apps = Vec::with_capacity(rows.len());
        for row in rows.iter().take(page.limit as usize) {
            let app = app_from_row(row)?;
            let template: Option<String> = get(row, "template_json")?;
            let template = template
                .map(|json| {
                    serde_json::from_str(&json).map_err(json_err(format!(
                        "template of revision {} of app {}",
                        app.current_revision, app.name
                    )))
                })
                .transpose()?;
            apps.push(ListedApp { app, template });
        }
        let next_after = (rows.len() > apps.len())
            .then(|| apps.last().map(|listed| listed.app.name.clone()))
            .flatten();
        Ok(AppList { apps, next_after })
    }
}

#[async_trait]
impl AccountStore for SqlStore {
    async fn ensure_team(&self, name: &str, now: Millis) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO teams (name, created_at, updated_at) VALUES ($1, $2, $2) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(now)
        .execute(&self.write)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn create_user(&self, user: &User, password_hash: &str) -> StoreResult<User> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO users (username, email, display_name, password_hash, is_admin, \
             disabled, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             RETURNING {USER_COLUMNS}"
        )))
        .bind(user.username.as_str())
        .bind(user.email.as_str())
        .bind(user.display_name.as_str())
        .bind(password_hash)
        .bind(user.is_admin)
        .bind(user.disabled)
        .bind(user.created_at)
        .bind(user.updated_at)
        .fetch_one(&self.write)
        .await
        .map_err(|e| user_conflict(e, user))?;
        user_from_row(&row)
    }

    async fn get_user(&self, id: i64) -> StoreResult<Option<User>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM users WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.read)
        .await
        .map_err(db_err)?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn get_user_by_username(&self, username: &str) -> StoreResult<Option<(User, String)>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS}, password_hash FROM users WHERE username = $1"
        )))
        .bind(username)
        .fetch_optional(&self.read)
        .await
        .map_err(db_err)?;
        row.as_ref()
            .map(|row| Ok((user_from_row(row)?, get(row, "password_hash")?)))
            .transpose()
    }

    async fn list_users(&self) -> StoreResult<Vec<User>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM users ORDER BY username"
        )))
        .fetch_all(&self.read)
        .await
        .map_err(db_err)?;
        rows.iter().map(user_from_row).collect()
    }

    async fn update_user(&self, user: &User) -> StoreResult<()> {
        let updated = sqlx::query(
            "UPDATE users SET email = $2, display_name = $3, is_admin = $4, disabled = $5, \
             updated_at = $6 WHERE id = $1",
        )
        .bind(user.id)
        .bind(user.email.as_str())
        .bind(user.display_name.as_str())
        .bind(user.is_admin)
        .bind(user.disabled)
        .bind(user.updated_at)
        .execute(&self.write)
        .await
        .map_err(|e| user_conflict(e, user))?
        .rows_affected();
        if updated == 0 {
            return Err(StoreError::NotFound(format!("user {}", user.id)));
        }
        Ok(())
    }

    async fn set_password_hash(
        &self,
        user_id: i64,
        password_hash: &str,
        now: Millis,
    ) -> StoreResult<()> {
        let updated =
            sqlx::query("UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1")
                .bind(user_id)
                .bind(password_hash)
                .bind(now)
                .execute(&self.write)
                .await
                .map_err(db_err)?
                .rows_affected();
        if updated == 0 {
            return Err(StoreError::NotFound(format!("user {user_id}")));
        }
        Ok(())
    }

    async fn delete_user(&self, id: i64) -> StoreResult<bool> {
        self.delete_with_children(
            &[
                "DELETE FROM sessions WHERE user_id = $1",
                "DELETE FROM api_tokens WHERE user_id = $1",
                "DELETE FROM memberships WHERE user_id = $1",
            ],
            "DELETE FROM users WHERE id = $1",
            id,
        )
        .await
    }

    async fn put_membership(&self, membership: &Membership) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        if !row_exists(
            &mut tx,
            "SELECT 1 FROM teams WHERE name = $1",
            membership.team.as_str(),
        )
        .await?
        {
            return Err(StoreError::NotFound(format!("team {}", membership.team)));
        }
        if !row_exists(
            &mut tx,
            "SELECT 1 FROM users WHERE id = $1",
            membership.user_id,
        )
        .await?
        {
            return Err(StoreError::NotFound(format!("user {}", membership.user_id)));
        }
        sqlx::query(
            "INSERT INTO memberships (team, user_id, role) VALUES ($1, $2, $3) \
             ON CONFLICT (team, user_id) DO UPDATE SET role = $3",
        )
        .bind(membership.team.as_str())
        .bind(membership.user_id)
        .bind(membership.role.as_str())
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)
    }

    async fn delete_membership(&self, team: &str, user_id: i64) -> StoreResult<bool> {
        let deleted = sqlx::query("DELETE FROM memberships WHERE team = $1 AND user_id = $2")
            .bind(team)
            .bind(user_id)
            .execute(&self.write)
            .await
            .map_err(db_err)?
            .rows_affected();
        Ok(deleted > 0)
    }

    async fn list_memberships_of_user(&self, user_id: i64) -> StoreResult<Vec<Membership>> {
        let rows = sqlx::query(
            "SELECT team, user_id, role FROM memberships WHERE user_id = $1 ORDER BY team",
        )
        .bind(user_id)
        .fetch_all(&self.read)
        .await
        .map_err(db_err)?;
        rows.iter().map(membership_from_row).collect()
    }

    async fn list_team_members(&self, team: &str) -> StoreResult<Vec<Membership>> {
        let rows = sqlx::query(
            "SELECT team, user_id, role FROM memberships WHERE team = $1 ORDER BY user_id",
        )
        .bind(team)
        .fetch_all(&self.read)
        .await
        .map_err(db_err)?;
        rows.iter().map(membership_from_row).collect()
    }

    async fn create_api_token(&self, token: &ApiToken, token_hash: &str) -> StoreResult<ApiToken> {
        let mut tx = self.begin_write().await?;
        if !row_exists(&mut tx, "SELECT 1 FROM users WHERE id = $1", token.user_id).await? {
            return Err(StoreError::NotFound(format!("user {}", token.user_id)));
        }
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO api_tokens (user_id, name, token_hash, prefix, expires_at, \
             last_used_at, created_at, revoked, scope) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, \
             $9) \
             RETURNING {TOKEN_COLUMNS}"
        )))
        .bind(token.user_id)
        .bind(token.name.as_str())
        .bind(token_hash)
        .bind(token.prefix.as_str())
        .bind(token.expires_at)
        .bind(token.last_used_at)
        .bind(token.created_at)
        .bind(token.revoked)
        .bind(token.scope.as_str())
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| conflict_or_db(e, || "an API token with this hash exists".to_string()))?;
        let stored = token_from_row(&row)?;
        tx.commit().await.map_err(db_err)?;
        Ok(stored)
    }

    async fn find_api_token(&self, token_hash: &str) -> StoreResult<Option<ApiToken>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE token_hash = $1"
        )))
        .bind(token_hash)
        .fetch_optional(&self.read)
        .await
        .map_err(db_err)?;
        row.as_ref().map(token_from_row).transpose()
    }

    async fn list_api_tokens(&self, user_id: i64) -> StoreResult<Vec<ApiToken>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE user_id = $1 ORDER BY id"
        )))
        .bind(user_id)
        .fetch_all(&self.read)
        .await
        .map_err(db_err)?;
        rows.iter().map(token_from_row).collect()
    }

    async fn revoke_api_token(&self, user_id: i64, token_id: i64) -> StoreResult<bool> {
        let updated =
            sqlx::query("UPDATE api_tokens SET revoked = TRUE WHERE id = $1 AND user_id = $2")
                .bind(token_id)
                .bind(user_id)
                .execute(&self.write)
                .await
                .map_err(db_err)?
                .rows_affected();
        Ok(updated > 0)
    }

    async fn revoke_all_api_tokens(&self, user_id: i64) -> StoreResult<u64> {
        let updated = sqlx::query(
            "UPDATE api_tokens SET revoked = TRUE WHERE user_id = $1 AND revoked = FALSE",
        )
        .bind(user_id)
        .execute(&self.write)
        .await
        .map_err(db_err)?
        .rows_affected();
        Ok(updated)
    }

    async fn touch_api_token(&self, token_id: i64, now: Millis) -> StoreResult<()> {
        sqlx::query(
            "UPDATE api_tokens SET last_used_at = $2 \
             WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $2)",
        )
        .bind(token_id)
        .bind(now)
        .execute(&self.write)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn create_session(&self, session_hash: &str, session: &Session) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        if !row_exists(
            &mut tx,
            "SELECT 1 FROM users WHERE id = $1",
            session.user_id,
        )
        .await?
        {
            return Err(StoreError::NotFound(format!("user {}", session.user_id)));
        }
        sqlx::query(concat!(
            "INSERT INTO sessions (session_hash, ",
            session_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7)"
        ))
        .bind(session_hash)
        .bind(session.user_id)
        .bind(session.csrf_token.as_str())
        .bind(session.created_at)
        .bind(session.expires_at)
        .bind(session.last_seen_at)
        .bind(session.source.as_str())
        .execute(&mut *tx)
        .await
        .map_err(|e| conflict_or_db(e, || "a session with this hash exists".to_string()))?;
        tx.commit().await.map_err(db_err)
    }

    async fn find_session(&self, session_hash: &str) -> StoreResult<Option<Session>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            session_columns!(),
            " FROM sessions WHERE session_hash = $1"
        ))
        .bind(session_hash)
        .fetch_optional(&self.read)
        .await
        .map_err(db_err)?;
        row.as_ref().map(session_from_row).transpose()
    }

    async fn touch_session(&self, session_hash: &str, now: Millis) -> StoreResult<()> {
        sqlx::query(
            "UPDATE sessions SET last_seen_at = $2 WHERE session_hash = $1 AND last_seen_at < $2",
        )
        .bind(session_hash)
        .bind(now)
        .execute(&self.write)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn delete_session(&self, session_hash: &str) -> StoreResult<bool> {
        let deleted = sqlx::query("DELETE FROM sessions WHERE session_hash = $1")
            .bind(session_hash)
            .execute(&self.write)
            .await
            .map_err(db_err)?
            .rows_affected();
        Ok(deleted > 0)
    }

    async fn delete_sessions_of_user(&self, user_id: i64) -> StoreResult<u64> {
        let deleted = sqlx::query("DELETE FROM sessions WHERE user_id = $1")
            .bind(user_id)
            .execute(&self.write)
            .await
            .map_err(db_err)?
            .rows_affected();
        Ok(deleted)
    }

    async fn delete_expired_sessions(&self, now: Millis) -> StoreResult<u64> {
        // `<=`: exactly what `Session::is_live` no longer admits at `now`.
        let deleted = sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.write)
            .await
            .map_err(db_err)?
            .rows_affected();
        Ok(deleted)
    }

    async fn create_team(&self, team: &Team) -> StoreResult<()> {
        let query = sqlx::query(concat!(
            "INSERT INTO teams (",
            team_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        ))
        .bind(team.name.as_str())
        .bind(team.display_name.as_str());
        bind_quota(query, &team.quota, &format!("team {}", team.name))?
            .bind(team.created_at)
            .bind(team.updated_at)
            .execute(&self.write)
            .await
            .map_err(|e| conflict_or_db(e, || format!("team {} already exists", team.name)))?;
        Ok(())
    }

    async fn get_team(&self, name: &str) -> StoreResult<Option<Team>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            team_columns!(),
            " FROM teams WHERE name = $1"
        ))
        .bind(name)
        .fetch_optional(&self.read)
        .await
        .map_err(db_err)?;
        row.as_ref().map(team_from_row).transpose()
    }

    async fn list_teams(&self) -> StoreResult<Vec<Team>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            team_columns!(),
            " FROM teams ORDER BY name"
        ))
        .fetch_all(&self.read)
        .await
        .map_err(db_err)?;
        rows.iter().map(team_from_row).collect()
    }

    async fn update_team(&self, team: &Team) -> StoreResult<()> {
        let query = sqlx::query(
            "UPDATE teams SET display_name = $2, quota_cpu_millis = $3, quota_memory_bytes = $4, \
             quota_instances = $5, quota_registry_bytes = $6, quota_volume_bytes = $7, \
             updated_at = $8 WHERE name = $1",
        )
        .bind(team.name.as_str())
        .bind(team.display_name.as_str());
        let updated = bind_quota(query, &team.quota, &format!("team {}", team.name))?
            .bind(team.updated_at)
            .execute(&self.write)
            .await
            .map_err(db_err)?
            .rows_affected();
        if updated == 0 {
            return Err(StoreError::NotFound(format!("team {}", team.name)));
        }
        Ok(())
    }

    async fn delete_team(&self, name: &str) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        if row_exists(&mut tx, "SELECT 1 FROM apps WHERE team = $1 LIMIT 1", name).await? {
            return Err(StoreError::Conflict(format!("team {name} still owns apps")));
        }
        let deleted = delete_rows(
            &mut tx,
            &[
                "DELETE FROM memberships WHERE team = $1",
                "DELETE FROM quota_requests WHERE team = $1",
                "DELETE FROM deployment_templates WHERE team = $1",
                "DELETE FROM external_registries WHERE team = $1",
                "DELETE FROM webhook_deliveries WHERE team = $1",
                "DELETE FROM webhook_built_commits WHERE team = $1",
                "DELETE FROM webhook_superseded_commits WHERE team = $1",
                "DELETE FROM builds WHERE team = $1",
                // Retention rules are keyed by repository: the team's namespace and below.
                "DELETE FROM retention_rules \
                 WHERE repository = $1 OR substr(repository, 1, length($1) + 1) = $1 || '/'",
                "DELETE FROM pipelines WHERE team = $1",
            ],
            "DELETE FROM teams WHERE name = $1",
            name,
        )
        .await?;
        tx.commit().await.map_err(db_err)?;
        Ok(deleted)
    }

    async fn create_quota_request(&self, request: &QuotaRequest) -> StoreResult<QuotaRequest> {
        let mut tx = self.begin_write().await?;
        let team = request.team.as_str();
        if !row_exists(&mut tx, "SELECT 1 FROM teams WHERE name = $1", team).await? {
            return Err(StoreError::NotFound(format!("team {team}")));
        }
        let query = sqlx::query(concat!(
            "INSERT INTO quota_requests (team, requested_by, requested_cpu_millis, \
             requested_memory_bytes, requested_instances, requested_registry_bytes, \
             requested_volume_bytes, reason, status, created_at, decided_by, decided_at, comment) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING ",
            quota_request_columns!()
        ))
        .bind(team)
        .bind(request.requested_by.as_str());
        let row = bind_quota(query, &request.requested, "a quota request")?
            .bind(request.reason.as_str())
            .bind(request.status.as_str())
            .bind(request.created_at)
            .bind(request.decided_by.as_deref())
            .bind(request.decided_at)
            .bind(request.comment.as_deref())
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
        let stored = quota_request_from_row(&row)?;
        tx.commit().await.map_err(db_err)?;
        Ok(stored)
    }

    async fn get_quota_request(&self, id: i64) -> StoreResult<Option<QuotaRequest>> {
        let row = sqlx::query(SELECT_QUOTA_REQUEST)
            .bind(id)
            .fetch_optional(&self.read)
            .await
            .map_err(db_err)?;
        row.as_ref().map(quota_request_from_row).transpose()
    }

    async fn list_quota_requests(
        &self,
        query: &QuotaRequestQuery,
    ) -> StoreResult<Vec<QuotaRequest>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            quota_request_columns!(),
            " FROM quota_requests WHERE ($1 IS NULL OR team = $1) \
             AND ($2 IS NULL OR status = $2) AND ($3 IS NULL OR requested_by = $3) \
             ORDER BY id DESC"
        ))
        .bind(query.team.as_deref())
        .bind(query.status.map(DbEnum::as_str))
        .bind(query.requested_by.as_deref())
        .fetch_all(&self.read)
        .await
        .map_err(db_err)?;
        rows.iter().map(quota_request_from_row).collect()
    }

    async fn decide_quota_request(&self, decision: &QuotaDecision) -> StoreResult<QuotaRequest> {
        let id = decision.id;
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(SELECT_QUOTA_REQUEST)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?
            .ok_or_else(|| StoreError::NotFound(format!("quota request {id}")))?;
        let request = quota_request_from_row(&row)?;
        if request.status != QuotaRequestStatus::Pending {
            return Err(StoreError::Conflict(format!(
                "quota request {id} is already {}",
                request.status.as_str()
            )));
        }
        let status = if decision.approve {
            QuotaRequestStatus::Approved
        } else {
            QuotaRequestStatus::Rejected
        };
        let row = sqlx::query(concat!(
            "UPDATE quota_requests SET status = $2, decided_by = $3, decided_at = $4, \
             comment = $5 WHERE id = $1 RETURNING ",
            quota_request_columns!()
        ))
        .bind(id)
        .bind(status.as_str())
        .bind(decision.decided_by.as_str())
        .bind(decision.now)
        .bind(decision.comment.as_deref())
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err)?;
        let decided = quota_request_from_row(&row)?;
        if decision.approve {
            // Only the limits asked for change (COALESCE keeps the others).
            let query = sqlx::query(
                "UPDATE teams SET quota_cpu_millis = COALESCE($2, quota_cpu_millis), \
                 quota_memory_bytes = COALESCE($3, quota_memory_bytes), \
                 quota_instances = COALESCE($4, quota_instances), \
                 quota_registry_bytes = COALESCE($5, quota_registry_bytes), \
                 quota_volume_bytes = COALESCE($6, quota_volume_bytes), updated_at = $7 \
                 WHERE name = $1",
            )
            .bind(decided.team.as_str());
            let updated = bind_quota(query, &decided.requested, &format!("quota request {id}"))?
                .bind(decision.now)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?
                .rows_affected();
            if updated == 0 {
                return Err(StoreError::NotFound(format!("team {}", decided.team)));
            }
        }
        tx.commit().await.map_err(db_err)?;
        Ok(decided)
    }

    async fn put_deployment_template(&self, template: &DeploymentTemplate) -> StoreResult<()> {
        let Some(team) = template.team.as_deref() else {
            return Err(StoreError::Conflict(format!(
                "template {} has no team: built-in templates are not stored",
                template.name
            )));
        };
        let what = |field: &str| format!("{field} of template {} of team {team}", template.name);
        let params =
            serde_json::to_string(&template.params).map_err(json_err(what("parameters")))?;
        let body = serde_json::to_string(&template.body).map_err(json_err(what("body")))?;
        let mut tx = self.begin_write().await?;
        if !row_exists(&mut tx, "SELECT 1 FROM teams WHERE name = $1", team).await? {
            return Err(StoreError::NotFound(format!("team {team}")));
        }
        sqlx::query(concat!(
            "INSERT INTO deployment_templates (",
            template_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (team, name) DO UPDATE SET description = $3, params_json = $4, \
             body_json = $5, created_by = $6, updated_at = $8"
        ))
        .bind(team)
        .bind(template.name.as_str())
        .bind(template.description.as_str())
        .bind(params)
        .bind(body)
        .bind(template.created_by.as_str())
        .bind(template.created_at)
        .bind(template.updated_at)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)
    }

    async fn get_deployment_template(
        &self,
        team: &str,
        name: &str,
    ) -> StoreResult<Option<DeploymentTemplate>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            template_columns!(),
            " FROM deployment_templates WHERE team = $1 AND name = $2"
        ))
        .bind(team)
        .bind(name)
        .fetch_optional(&self.read)
        .await
        .map_err(db_err)?;
        row.as_ref().map(template_from_row).transpose()
    }

    async fn list_deployment_templates(
        &self,
        team: Option<&str>,
    ) -> StoreResult<Vec<DeploymentTemplate>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            template_columns!(),
            " FROM deployment_templates WHERE ($1 IS NULL OR team = $1) ORDER BY team, name"
        ))
        .bind(team)
        .fetch_all(&self.read)
        .await
        .map_err(db_err)?;
        rows.iter().map(template_from_row).collect()
    }

    async fn delete_deployment_template(&self, team: &str, name: &str) -> StoreResult<bool> {
        let deleted = sqlx::query("DELETE FROM deployment_templates WHERE team = $1 AND name = $2")
            .bind(team)
            .bind(name)
            .execute(&self.write)
            .await
            .map_err(db_err)?
            .rows_affected();
        Ok(deleted > 0)
    }

    async fn append_audit(&self, entry: &AuditEntry) -> StoreResult<i64> {
        sqlx::query_scalar(
            "INSERT INTO audit_log (at, actor, action, team, object, source, outcome, status, \
             detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
        )
        .bind(entry.at)
        .bind(entry.actor.as_str())
        .bind(entry.action.as_str())
        .bind(entry.team.as_deref())
        .bind(entry.object.as_str())
        .bind(entry.source.as_str())
        .bind(entry.outcome.as_str())
        .bind(i64::from(entry.status))
        .bind(entry.detail.as_str())
        .fetch_one(&self.write)
        .await
        .map_err(db_err)
    }

    async fn list_audit(&self, query: &AuditQuery) -> StoreResult<Vec<AuditEntry>> {
        let sql = if query.team.is_some() {
            SELECT_AUDIT_OF_TEAM
        } else if query.actor.is_some() {
            SELECT_AUDIT_OF_ACTOR
        } else {
            SELECT_AUDIT
        };
        let rows = sqlx::query(sql)
            .bind(query.team.as_deref())
            .bind(query.actor.as_deref())
            .bind(query.action_prefix.as_deref())
            .bind(query.object.as_deref())
            .bind(query.outcome.map(DbEnum::as_str))
            .bind(query.since)
            .bind(query.until)
            .bind(query.before_id)
            .bind(i64::from(query.limit))
            .fetch_all(&self.read)
            .await
            .map_err(db_err)?;
        rows.iter().map(audit_from_row).collect()
    }

    async fn get_setting(&self, key: &str) -> StoreResult<Option<String>> {
        sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.read)
            .await
            .map_err(db_err)
    }

    async fn put_setting(&self, key: &str, value: &str, now: Millis) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (key) DO UPDATE SET value = $2, updated_at = $3",
        )
        .bind(key)
        .bind(value)
        .bind(now)
        .execute(&self.write)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn init_setting(&self, key: &str, value: &str, now: Millis) -> StoreResult<String> {
        sqlx::query(
            "INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (key) DO NOTHING",
        )
        .bind(key)
        .bind(value)
        .bind(now)
        .execute(&self.write)
        .await
        .map_err(db_err)?;
        // Read on the writer: a reader may not see the insert yet.
        sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
            .bind(key)
            .fetch_one(&self.write)
            .await
            .map_err(db_err)
    }

    async fn list_team_users(&self, team: &str) -> StoreResult<Vec<(User, Membership)>> {
        // USER_COLUMNS and the membership columns share no name, so they need no qualifier.
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS}, team, user_id, role FROM memberships \
             JOIN users ON users.id = memberships.user_id WHERE team = $1 ORDER BY username"
        )))
        .bind(team)
        .fetch_all(&self.read)
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|row| Ok((user_from_row(row)?, membership_from_row(row)?)))
            .collect()
    }
}

#[async_trait]
impl RegistryStore for SqlStore {
    async fn put_retention_rule(&self, rule: &RetentionRule) -> StoreResult<()> {
        let keep = rule.keep_newest_tags.map(i64::from);
        let older = rule
            .delete_untagged_older_than_ms
            .map(|ms| ms.min(i64::MAX as u64) as i64);
        sqlx::query(
            "INSERT INTO retention_rules (repository, keep_newest_tags, delete_untagged_older_than_ms, updated_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (repository) DO UPDATE SET \
             keep_newest_tags = $2, delete_untagged_older_than_ms = $3, updated_at = $4",
        )
        .bind(&rule.repository)
        .bind(keep)
        .bind(older)
        .bind(rule.updated_at)
        .execute(&self.write)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn list_retention_rules(&self) -> StoreResult<Vec<RetentionRule>> {
        let rows = sqlx::query(
            "SELECT repository, keep_newest_tags, delete_untagged_older_than_ms, updated_at \
             FROM retention_rules ORDER BY repository",
        )
        .fetch_all(&self.read)
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|row| {
                let keep: Option<i64> = row.try_get("keep_newest_tags").map_err(db_err)?;
                let older: Option<i64> = row
                    .try_get("delete_untagged_older_than_ms")
                    .map_err(db_err)?;
                Ok(RetentionRule {
                    repository: row.try_get("repository").map_err(db_err)?,
                    keep_newest_tags: keep.map(|k| k.clamp(0, u32::MAX as i64) as u32),
                    delete_untagged_older_than_ms: older.map(|ms| ms.max(0) as u64),
                    updated_at: row.try_get("updated_at").map_err(db_err)?,
                })
            })
            .collect()
    }

    async fn delete_retention_rule(&self, repository: &str) -> StoreResult<bool> {
        let deleted = sqlx::query("DELETE FROM retention_rules WHERE repository = $1")
            .bind(repository)
            .execute(&self.write)
            .await
            .map_err(db_err)?
            .rows_affected();
        Ok(deleted > 0)
    }

    async fn put_external_registry(&self, registry: &ExternalRegistry) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        let team = registry.team.as_str();
        if !row_exists(&mut tx, "SELECT 1 FROM teams WHERE name = $1", team).await? {
            return Err(StoreError::NotFound(format!("team {team}")));
        }
        sqlx::query(concat!(
            "INSERT INTO external_registries (",
            external_registry_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (name) DO UPDATE SET team = $2, url = $3, username = $4, \
             sealed_password = $5, updated_at = $7"
        ))
        .bind(registry.name.as_str())
        .bind(team)
        .bind(registry.url.as_str())
        .bind(registry.username.as_deref())
        .bind(registry.sealed_password.as_deref())
        .bind(registry.created_at)
        .bind(registry.updated_at)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)
    }

    async fn get_external_registry(&self, name: &str) -> StoreResult<Option<ExternalRegistry>> {
        let sql = concat!(
            "SELECT ",
            external_registry_columns!(),
            " FROM external_registries WHERE name = $1"
        );
        self.read_optional(sql, name, external_registry_from_row)
            .await
    }

    async fn list_external_registries(&self) -> StoreResult<Vec<ExternalRegistry>> {
        let sql = concat!(
            "SELECT ",
            external_registry_columns!(),
            " FROM external_registries ORDER BY name"
        );
        self.read_all(sql, external_registry_from_row).await
    }

    async fn delete_external_registry(&self, name: &str) -> StoreResult<bool> {
        let sql = "DELETE FROM external_registries WHERE name = $1";
        self.delete_with_children(&[], sql, name).await
    }

    async fn get_registry_metadata(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        let row = sqlx::query("SELECT value FROM registry_metadata WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.read)
            .await
            .map_err(db_err)?;
        row.as_ref().map(|row| get(row, "value")).transpose()
    }

    async fn put_registry_metadata(&self, key: &str, value: &[u8]) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO registry_metadata (key, value) VALUES ($1, $2) \
             ON CONFLICT (key) DO UPDATE SET value = $2",
        )
        .bind(key)
        .bind(value)
        .execute(&self.write)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn delete_registry_metadata(&self, key: &str) -> StoreResult<bool> {
        let sql = "DELETE FROM registry_metadata WHERE key = $1";
        self.delete_with_children(&[], sql, key).await
    }

    async fn registry_metadata_keys(&self, prefix: &str) -> StoreResult<Vec<String>> {
        // Keys compare by their bytes (SQLite's BINARY, PostgreSQL's "C"), so the keys with a
        // prefix are a range of the primary key.
        let rows = match crate::prefix_upper_bound(prefix) {
            Some(upper) => {
                sqlx::query(
                    "SELECT key FROM registry_metadata WHERE key >= $1 AND key < $2 \
                     ORDER BY key",
                )
                .bind(prefix)
                .bind(upper)
                .fetch_all(&self.read)
                .await
            }
            None => {
                sqlx::query("SELECT key FROM registry_metadata WHERE key >= $1 ORDER BY key")
                    .bind(prefix)
                    .fetch_all(&self.read)
                    .await
            }
        }
        .map_err(db_err)?;
        let mut keys = Vec::with_capacity(rows.len());
        for row in &rows {
            let key: String = get(row, "key")?;
            if key.starts_with(prefix) {
                keys.push(key);
            }
        }
        Ok(keys)
    }
}

#[async_trait]
impl CertificateStore for SqlStore {
    async fn put_certificate(&self, certificate: &StoredCertificate) -> StoreResult<()> {
        let names = serde_json::to_string(&certificate.names).map_err(json_err(format!(
            "names of the certificate of {}",
            certificate.host
        )))?;
        let mut tx = self.begin_write().await?;
        let app = certificate.app.as_str();
        if !row_exists(&mut tx, "SELECT 1 FROM apps WHERE name = $1", app).await? {
            return Err(StoreError::NotFound(format!("app {app}")));
        }
        sqlx::query(concat!(
            "INSERT INTO certificates (",
            certificate_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
             ON CONFLICT (host) DO UPDATE SET team = $2, app = $3, source = $4, chain_pem = $5, \
             sealed_key = $6, names_json = $7, not_before = $8, not_after = $9, \
             created_by = $10, created_at = $11, updated_at = $12"
        ))
        .bind(certificate.host.as_str())
        .bind(certificate.team.as_str())
        .bind(app)
        .bind(certificate.source.as_str())
        .bind(certificate.chain_pem.as_str())
        .bind(certificate.sealed_key.as_str())
        .bind(names)
        .bind(certificate.not_before)
        .bind(certificate.not_after)
        .bind(certificate.created_by.as_str())
        .bind(certificate.created_at)
        .bind(certificate.updated_at)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)
    }

    async fn get_certificate(&self, host: &str) -> StoreResult<Option<StoredCertificate>> {
        let sql = concat!(
            "SELECT ",
            certificate_columns!(),
            " FROM certificates WHERE host = $1"
        );
        self.read_optional(sql, host, certificate_from_row).await
    }

    async fn list_certificates(&self, app: Option<&str>) -> StoreResult<Vec<StoredCertificate>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            certificate_columns!(),
            " FROM certificates WHERE $1 IS NULL OR app = $1 ORDER BY host"
        ))
        .bind(app)
        .fetch_all(&self.read)
        .await
        .map_err(db_err)?;
        rows.iter().map(certificate_from_row).collect()
    }

    async fn delete_certificate(&self, host: &str) -> StoreResult<bool> {
        let sql = "DELETE FROM certificates WHERE host = $1";
        self.delete_with_children(&[], sql, host).await
    }
}

#[async_trait]
impl PipelineStore for SqlStore {
    async fn put_pipeline(&self, pipeline: &Pipeline) -> StoreResult<()> {
        let team = pipeline.team.as_str();
        let what = |field: &str| format!("{field} of pipeline {} of team {team}", pipeline.name);
        let build_args =
            serde_json::to_string(&pipeline.build_args).map_err(json_err(what("build args")))?;
        let test_command = serde_json::to_string(&pipeline.test_command)
            .map_err(json_err(what("test command")))?;
        let mut tx = self.begin_write().await?;
        if !row_exists(&mut tx, "SELECT 1 FROM teams WHERE name = $1", team).await? {
            return Err(StoreError::NotFound(format!("team {team}")));
        }
        // An upsert, never a delete and insert: the pipeline's builds and numbering stay.
        sqlx::query(concat!(
            "INSERT INTO pipelines (",
            pipeline_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) \
             ON CONFLICT (team, name) DO UPDATE SET repository_url = $3, branch_pattern = $4, \
             dockerfile = $5, context = $6, build_args_json = $7, test_command_json = $8, \
             target_repository = $9, deploy_app = $10, sealed_credentials = $11, \
             sealed_webhook_secret = $12, created_by = $13, updated_at = $15, \
             credentials_origin = $16"
        ))
        .bind(team)
        .bind(pipeline.name.as_str())
        .bind(pipeline.repository_url.as_str())
        .bind(pipeline.branch_pattern.as_str())
        .bind(pipeline.dockerfile.as_str())
        .bind(pipeline.context.as_str())
        .bind(build_args)
        .bind(test_command)
        .bind(pipeline.target_repository.as_str())
        .bind(pipeline.deploy_app.as_deref())
        .bind(pipeline.sealed_credentials.as_deref())
        .bind(pipeline.sealed_webhook_secret.as_deref())
        .bind(pipeline.created_by.as_str())
        .bind(pipeline.created_at)
        .bind(pipeline.updated_at)
        .bind(pipeline.credentials_origin.as_deref())
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)
    }

    async fn get_pipeline(&self, team: &str, name: &str) -> StoreResult<Option<Pipeline>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            pipeline_columns!(),
            " FROM pipelines WHERE team = $1 AND name = $2"
        ))
        .bind(team)
        .bind(name)
        .fetch_optional(&self.read)
        .await
        .map_err(db_err)?;
        row.as_ref().map(pipeline_from_row).transpose()
    }

    async fn list_pipelines(&self, team: Option<&str>) -> StoreResult<Vec<Pipeline>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            pipeline_columns!(),
            " FROM pipelines WHERE ($1 IS NULL OR team = $1) ORDER BY team, name"
        ))
        .bind(team)
        .fetch_all(&self.read)
        .await
        .map_err(db_err)?;
        rows.iter().map(pipeline_from_row).collect()
    }

    async fn delete_pipeline(&self, team: &str, name: &str) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        for sql in [
            "DELETE FROM webhook_deliveries WHERE team = $1 AND pipeline = $2",
            "DELETE FROM webhook_built_commits WHERE team = $1 AND pipeline = $2",
            "DELETE FROM webhook_superseded_commits WHERE team = $1 AND pipeline = $2",
            "DELETE FROM builds WHERE team = $1 AND pipeline = $2",
        ] {
            sqlx::query(sql)
                .bind(team)
                .bind(name)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        }
        let deleted = sqlx::query("DELETE FROM pipelines WHERE team = $1 AND name = $2")
            .bind(team)
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?
            .rows_affected();
        tx.commit().await.map_err(db_err)?;
        Ok(deleted > 0)
    }

    async fn create_build(&self, build: &Build) -> StoreResult<Build> {
        let mut tx = self.begin_write().await?;
        let build = insert_build(&mut tx, build).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(build)
    }

    async fn update_build(&self, build: &Build) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query("SELECT status FROM builds WHERE id = $1")
            .bind(build.id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?;
        let Some(row) = row else {
            return Err(StoreError::NotFound(format!("build {}", build.id)));
        };
        let stored: BuildStatus = get_enum(&row, "status", || format!("build {}", build.id))?;
        if stored.is_terminal() && stored != build.status {
            return Err(StoreError::Conflict(format!(
                "build {} has already ended ({})",
                build.id,
                stored.as_str()
            )));
        }
        write_build(&mut tx, build).await?;
        tx.commit().await.map_err(db_err)
    }

    async fn get_build(&self, id: i64) -> StoreResult<Option<Build>> {
        self.read_optional(SELECT_BUILD, id, build_from_row).await
    }

    async fn list_builds(&self, query: &BuildQuery) -> StoreResult<Vec<Build>> {
        let sql = if query.team.is_some() && query.pipeline.is_some() {
            SELECT_BUILDS_OF_PIPELINE
        } else {
            SELECT_BUILDS
        };
        let rows = sqlx::query(sql)
            .bind(query.team.as_deref())
            .bind(query.pipeline.as_deref())
            .bind(query.before_id)
            .bind(i64::from(query.limit))
            .fetch_all(&self.read)
            .await
            .map_err(db_err)?;
        rows.iter().map(build_from_row).collect()
    }

    async fn interrupt_started_builds(&self, now: Millis, reason: &str) -> StoreResult<Vec<i64>> {
        let mut tx = self.begin_write().await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM builds WHERE status IN ({}) AND status <> '{}' ORDER BY id",
            build_columns!(),
            unfinished_statuses_sql(),
            DbEnum::as_str(BuildStatus::Queued)
        )))
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err)?;
        let mut ended = Vec::new();
        for row in &rows {
            let mut build = build_from_row(row)?;
            if build.interrupt(reason, now) {
                write_build(&mut tx, &build).await?;
                ended.push(build.id);
            }
        }
        tx.commit().await.map_err(db_err)?;
        Ok(ended)
    }

    async fn queued_builds(&self) -> StoreResult<Vec<Build>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM builds WHERE status = '{}' ORDER BY id",
            build_columns!(),
            DbEnum::as_str(BuildStatus::Queued)
        )))
        .fetch_all(&self.read)
        .await
        .map_err(db_err)?;
        rows.iter().map(build_from_row).collect()
    }

    async fn prune_builds(&self, team: &str, pipeline: &str, keep: u32) -> StoreResult<Vec<i64>> {
        // Ended builds older than the `keep`-th newest; with fewer builds the subquery is NULL
        // and `id < NULL` matches nothing. `keep = 0` compares with an id no build reaches.
        let sql = format!(
            "DELETE FROM builds WHERE team = $1 AND pipeline = $2 AND status NOT IN ({}) \
             AND id < CASE WHEN $3 < 0 THEN {} ELSE (SELECT id FROM builds WHERE team = $1 \
             AND pipeline = $2 ORDER BY id DESC LIMIT 1 OFFSET $3) END RETURNING id",
            unfinished_statuses_sql(),
            i64::MAX
        );
        let mut tx = self.begin_write().await?;
        let mut ids: Vec<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(team)
            .bind(pipeline)
            .bind(i64::from(keep) - 1)
            .fetch_all(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        ids.sort_unstable();
        Ok(ids)
    }

    async fn create_build_for_delivery(
        &self,
        build: &Build,
        delivery_id: Option<&str>,
        before: Option<&str>,
        now: Millis,
    ) -> StoreResult<DeliveryBuild> {
        let (Some(commit), Some(branch)) = (build.commit.as_deref(), build.branch.as_deref())
        else {
            return Err(StoreError::Conflict(
                "a webhook build needs its pushed commit and branch".into(),
            ));
        };
        let (team, pipeline) = (build.team.as_str(), build.pipeline.as_str());
        // The write transaction holds the write lock from the lookups on (SQLite's `BEGIN
        // IMMEDIATE`, PostgreSQL's advisory lock), so no concurrent delivery of the same id or
        // commit slips in between the lookups and the inserts.
        let mut tx = self.begin_write().await?;
        if let Some(delivery_id) = delivery_id {
            let recorded: Option<Option<i64>> = sqlx::query_scalar(
                "SELECT b.id FROM webhook_deliveries d LEFT JOIN builds b ON b.id = d.build_id \
                 WHERE d.team = $1 AND d.pipeline = $2 AND d.delivery_id = $3",
            )
            .bind(team)
            .bind(pipeline)
            .bind(delivery_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?;
            if let Some(build_id) = recorded {
                tx.commit().await.map_err(db_err)?;
                return Ok(DeliveryBuild::Redelivered { build_id });
            }
        }
        let built: Option<Option<i64>> = sqlx::query_scalar(
            "SELECT b.id FROM webhook_built_commits c LEFT JOIN builds b ON b.id = c.build_id \
             WHERE c.team = $1 AND c.pipeline = $2 AND c.commit_sha = $3",
        )
        .bind(team)
        .bind(pipeline)
        .bind(commit)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?;
        if let Some(build_id) = built {
            tx.commit().await.map_err(db_err)?;
            return Ok(DeliveryBuild::AlreadyBuilt { build_id });
        }
        let superseded: Option<i64> = sqlx::query_scalar(
            "SELECT recorded_at FROM webhook_superseded_commits \
             WHERE team = $1 AND pipeline = $2 AND branch = $3 AND commit_sha = $4",
        )
        .bind(team)
        .bind(pipeline)
        .bind(branch)
        .bind(commit)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?;
        if superseded.is_some() {
            tx.commit().await.map_err(db_err)?;
            return Ok(DeliveryBuild::Superseded);
        }
        let build = insert_build(&mut tx, build).await?;
        if let Some(delivery_id) = delivery_id {
            sqlx::query(
                "INSERT INTO webhook_deliveries (team, pipeline, delivery_id, received_at, \
                 build_id) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(team)
            .bind(pipeline)
            .bind(delivery_id)
            .bind(now)
            .bind(build.id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        sqlx::query(
            "INSERT INTO webhook_built_commits (team, pipeline, commit_sha, branch, build_id, \
             built_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(team)
        .bind(pipeline)
        .bind(commit)
        .bind(branch)
        .bind(build.id)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        if let Some(before) =
            before.filter(|b| !b.is_empty() && *b != commit && !b.bytes().all(|c| c == b'0'))
        {
            sqlx::query(
                "INSERT INTO webhook_superseded_commits (team, pipeline, branch, commit_sha, \
                 recorded_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            )
            .bind(team)
            .bind(pipeline)
            .bind(branch)
            .bind(before)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        tx.commit().await.map_err(db_err)?;
        Ok(DeliveryBuild::Created(build))
    }

    async fn prune_webhook_deliveries(&self, cutoff: Millis) -> StoreResult<u64> {
        let deleted = sqlx::query("DELETE FROM webhook_deliveries WHERE received_at < $1")
            .bind(cutoff)
            .execute(&self.write)
            .await
            .map_err(db_err)?
            .rows_affected();
        Ok(deleted)
    }
}
