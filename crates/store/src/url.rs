//! The store backend chosen by a URL (the server's `--store` setting): parsing and opening.

use std::path::PathBuf;
use std::sync::Arc;

use crate::{SqliteStore, Store, StoreError, StoreResult};

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
}

impl StoreUrl {
    /// Parses `url`, refusing with a message that names the setting and what it accepts.
    pub fn parse(url: &str) -> StoreResult<StoreUrl> {
        let invalid =
            |why: String| StoreError::Database(format!("invalid {SETTING} {url:?}: {why}"));
        let Some((scheme, rest)) = url.split_once(':') else {
            return Err(invalid(
                "expected sqlite://PATH or sqlite::memory:".to_string(),
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
            "postgres" | "postgresql" => Err(invalid(
                "PostgreSQL is not supported yet; use sqlite://PATH".to_string(),
            )),
            other => Err(invalid(format!(
                "unknown store scheme {other:?}; expected sqlite://PATH or sqlite::memory:"
            ))),
        }
    }

    /// Opens the store this URL names (creating and migrating an SQLite file when needed).
    pub async fn open(&self) -> StoreResult<Arc<dyn Store>> {
        Ok(match self {
            StoreUrl::SqliteFile(path) => Arc::new(SqliteStore::open(path).await?),
            StoreUrl::SqliteMemory => Arc::new(SqliteStore::open_in_memory().await?),
        })
    }
}

impl std::fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreUrl::SqliteFile(path) => write!(f, "sqlite://{}", path.display()),
            StoreUrl::SqliteMemory => f.write_str("sqlite::memory:"),
        }
    }
}

/// Opens the store backend `url` names: `sqlite://PATH` or `sqlite::memory:`. Anything else
/// is refused with an error naming the setting (`postgres://…` is not supported yet).
pub async fn open(url: &str) -> StoreResult<Arc<dyn Store>> {
    StoreUrl::parse(url)?.open().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_store_urls() {
        // (url, Ok(parsed) or Err(text the message contains))
        let cases: [(&str, Result<StoreUrl, &str>); 14] = [
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
                Err("PostgreSQL is not supported yet"),
            ),
            (
                "postgresql://db/berth",
                Err("PostgreSQL is not supported yet"),
            ),
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
    async fn opens_an_in_memory_store_and_refuses_postgres() {
        let store = open("sqlite::memory:").await.expect("in-memory store");
        store.ping().await.expect("ping");
        let error = open("postgres://db/berth").await.err().expect("refused");
        assert!(error.to_string().contains("not supported yet"), "{error}");
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
