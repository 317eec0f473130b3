//! The store backend chosen by a URL (the server's `--store` setting): parsing and opening.

use std::path::PathBuf;
use std::sync::Arc;

use crate::{PostgresStore, SqliteStore, Store, StoreError, StoreResult};

/// The setting a bad URL is reported against.
const SETTING: &str = "store URL (--store)";

/// A parsed store URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// `sqlite://PATH`: an SQLite database file (created when missing). `sqlite:///var/x.db`
    /// is the absolute path `/var/x.db`, `sqlite://x.db` the relative path `x.db`.
    SqliteFile(PathBuf),
    /// `sqlite::memory:` (or `sqlite://:memory:`): a private in-memory SQLite database that
    /// lives as long as the store (for tests and demos).
    SqliteMemory,
    /// `postgres://USER:PASSWORD@HOST:PORT/DATABASE` (or `postgresql://…`, with sqlx's query
    /// parameters such as `?host=/run/postgresql` or `?sslmode=disable`): a PostgreSQL
    /// database several Berth servers can share. Kept as given; shown without its password.
    Postgres(String),
}

impl StoreUrl {
    /// Parses `url`, refusing with a message that names the setting and what it accepts.
    pub fn parse(url: &str) -> StoreResult<StoreUrl> {
        let invalid =
            |why: String| StoreError::Database(format!("invalid {SETTING} {url:?}: {why}"));
        let Some((scheme, rest)) = url.split_once(':') else {
            return Err(invalid(
                "expected sqlite://PATH, sqlite::memory: or postgres://…".to_string(),
            ));
        };
        match scheme.to_ascii_lowercase().as_str() {
            "sqlite" => {
                if rest == ":memory:" || rest == "//:memory:" {
                    return Ok(StoreUrl::SqliteMemory);
                }
                let Some(path) = rest.strip_prefix("//") else {
                    return Err(invalid(
                        "expected sqlite://PATH (e.g. sqlite:///var/lib/berth/berth.db) or \
                         sqlite::memory:"
                            .to_string(),
                    ));
                };
                if path.is_empty() {
                    return Err(invalid("the database file path is empty".to_string()));
                }
                if path.contains('?') || path.contains('#') {
                    return Err(invalid(
                        "query parameters and fragments are not supported; give only the \
                         database file path"
                            .to_string(),
                    ));
                }
                Ok(StoreUrl::SqliteFile(PathBuf::from(path)))
            }
            "postgres" | "postgresql" => {
                let options = url
                    .parse::<sqlx::postgres::PgConnectOptions>()
                    .map_err(|e| invalid(e.to_string()))?;
                if options.get_database().is_none_or(str::is_empty) {
                    return Err(invalid(
                        "name the database: postgres://USER:PASSWORD@HOST:PORT/DATABASE"
                            .to_string(),
                    ));
                }
                Ok(StoreUrl::Postgres(url.to_string()))
            }
            other => Err(invalid(format!(
                "unknown store scheme {other:?}; expected sqlite://PATH, sqlite::memory: or \
                 postgres://USER:PASSWORD@HOST:PORT/DATABASE"
            ))),
        }
    }

    /// Opens the store this URL names (creating and migrating an SQLite file when needed).
    pub async fn open(&self) -> StoreResult<Arc<dyn Store>> {
        Ok(match self {
            StoreUrl::SqliteFile(path) => Arc::new(SqliteStore::open(path).await?),
            StoreUrl::SqliteMemory => Arc::new(SqliteStore::open_in_memory().await?),
            StoreUrl::Postgres(url) => Arc::new(PostgresStore::connect(url).await?),
        })
    }
}

impl std::fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreUrl::SqliteFile(path) => write!(f, "sqlite://{}", path.display()),
            StoreUrl::SqliteMemory => f.write_str("sqlite::memory:"),
            StoreUrl::Postgres(url) => f.write_str(&without_password(url)),
        }
    }
}

/// `url` with the password of its user information replaced by `***`.
fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((user_info, host)) => match user_info.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

/// Opens the store backend `url` names: `sqlite://PATH`, `sqlite::memory:` or
/// `postgres://…`. Anything else is refused with an error naming the setting.
pub async fn open(url: &str) -> StoreResult<Arc<dyn Store>> {
    StoreUrl::parse(url)?.open().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_store_urls() {
        // (url, Ok(parsed) or Err(text the message contains))
        let cases: [(&str, Result<StoreUrl, &str>); 16] = [
            (
                "sqlite:///var/lib/berth/berth.db",
                Ok(StoreUrl::SqliteFile("/var/lib/berth/berth.db".into())),
            ),
            (
                "sqlite://data/berth.db",
                Ok(StoreUrl::SqliteFile("data/berth.db".into())),
            ),
            ("SQLite:///x.db", Ok(StoreUrl::SqliteFile("/x.db".into()))),
            ("sqlite::memory:", Ok(StoreUrl::SqliteMemory)),
            ("sqlite://:memory:", Ok(StoreUrl::SqliteMemory)),
            ("sqlite://", Err("path is empty")),
            ("sqlite:berth.db", Err("expected sqlite://PATH")),
            ("sqlite:///x.db?mode=ro", Err("query parameters")),
            (
                "postgres://berth@db/berth",
                Ok(StoreUrl::Postgres("postgres://berth@db/berth".into())),
            ),
            (
                "postgresql://u:p@db:6432/berth?sslmode=disable",
                Ok(StoreUrl::Postgres(
                    "postgresql://u:p@db:6432/berth?sslmode=disable".into(),
                )),
            ),
            ("postgres://db", Err("name the database")),
            ("postgres://db:notaport/berth", Err("invalid")),
            ("mysql://db/berth", Err("unknown store scheme \"mysql\"")),
            ("/var/lib/berth/berth.db", Err("expected sqlite://PATH")),
            ("", Err("expected sqlite://PATH")),
            ("memory:", Err("unknown store scheme \"memory\"")),
        ];
        for (url, want) in cases {
            match (StoreUrl::parse(url), want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{url}"),
                (Err(StoreError::Database(message)), Err(part)) => {
                    assert!(message.contains(part), "{url}: {message}");
                    assert!(
                        message.contains("--store"),
                        "{url}: names the setting: {message}"
                    );
                }
                (got, want) => panic!("{url}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[tokio::test]
    async fn opens_an_in_memory_store() {
        let store = open("sqlite::memory:").await.expect("in-memory store");
        store.ping().await.expect("ping");
    }

    #[test]
    fn a_postgres_url_is_shown_without_its_password() {
        let cases = [
            (
                "postgres://berth:s3cr:et@db:5432/berth?sslmode=disable",
                "postgres://berth:***@db:5432/berth?sslmode=disable",
            ),
            ("postgres://berth@db/berth", "postgres://berth@db/berth"),
            ("postgresql://db/berth", "postgresql://db/berth"),
            (
                "postgres://u:p@db/berth?host=/run/x@y",
                "postgres://u:***@db/berth?host=/run/x@y",
            ),
        ];
        for (url, shown) in cases {
            let parsed = StoreUrl::parse(url).unwrap();
            assert_eq!(parsed.to_string(), shown, "{url}");
        }
    }

    #[tokio::test]
    async fn opens_a_file_store() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("berth.db");
        let store = open(&format!("sqlite://{}", path.display()))
            .await
            .expect("file store");
        store.ping().await.expect("ping");
        assert!(path.exists());
    }
}
