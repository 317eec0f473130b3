//! Embedded schema migrations: each database's list of `(version, description, SQL)`, turned
//! into a sqlx [`Migrator`] that checksums them the way `sqlx::migrate!` does (bookkeeping in
//! `_sqlx_migrations`, so a database stays compatible with `sqlx-cli`). The lists are written
//! by hand because `migrate!` needs sqlx's `macros` feature (a proc-macro stack we do not
//! otherwise build); each backend's tests check its list against its directory.

use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};

/// A migrator of the `migrations` of one database up to `last`.
pub(crate) fn migrator_of(migrations: &[(i64, &'static str, &'static str)], last: i64) -> Migrator {
    Migrator::with_migrations(
        migrations
            .iter()
            .filter(|&&(version, _, _)| version <= last)
            .map(|&(version, description, sql)| {
                Migration::new(
                    version,
                    description.into(),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect(),
    )
}

/// Panics unless `embedded` holds exactly the migrations of the directory `dir` (relative to
/// this crate), unchanged.
#[cfg(test)]
pub(crate) async fn assert_matches_directory(embedded: &Migrator, dir: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let on_disk = Migrator::new(path).await.unwrap();
    let key = |m: &Migration| (m.version, m.checksum.to_vec());
    assert_eq!(
        embedded.iter().map(key).collect::<Vec<_>>(),
        on_disk.iter().map(key).collect::<Vec<_>>(),
        "every file under {dir} is listed, unchanged"
    );
}
