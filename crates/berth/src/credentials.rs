//! The credentials file that `berth login` writes and every command reads: which server, which
//! user, which API token; and how the server and token of a command are chosen.
//!
//! The file is `$BERTH_CONFIG_DIR/credentials.toml`, else `$XDG_CONFIG_HOME/berth/…`, else
//! `~/.config/berth/…`; it is written with mode 0600 in a directory of mode 0700.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The server when neither a flag, the environment nor the credentials file names one.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:7700";

/// The token of the first admin, as `berth server` stores it in its default data directory.
const ADMIN_TOKEN_FILE: &str = "berth-data/admin-token";

/// What `berth login` saved.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Credentials {
    pub server: String,
    pub username: String,
    pub token: String,
    /// The token's id on the server, for `berth logout` to revoke it.
    #[serde(default)]
    pub token_id: Option<i64>,
}

/// Where the credentials file is: `None` when no directory can be found.
pub fn path() -> Option<PathBuf> {
    let var = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(dir) = var("BERTH_CONFIG_DIR") {
        return Some(dir.join("credentials.toml"));
    }
    let config = var("XDG_CONFIG_HOME")
        .filter(|dir| dir.is_absolute())
        .or_else(|| var("HOME").map(|home| home.join(".config")))?;
    Some(config.join("berth").join("credentials.toml"))
}

fn required_path() -> Result<PathBuf, String> {
    path().ok_or_else(|| {
        "cannot tell where to keep credentials: set BERTH_CONFIG_DIR or HOME".to_string()
    })
}

/// Reads the credentials file; `None` when there is none.
pub fn load() -> Result<Option<(PathBuf, Credentials)>, String> {
    let Some(path) = path() else {
        return Ok(None);
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let credentials = toml::from_str(&text).map_err(|e| {
        format!(
            "{} is not a credentials file ({e}); run `berth login` again or remove it",
            path.display()
        )
    })?;
    Ok(Some((path, credentials)))
}

/// Writes the credentials file (mode 0600, replacing any old one at once); returns its path.
pub fn save(credentials: &Credentials) -> Result<PathBuf, String> {
    let path = required_path()?;
    let dir = path.parent().unwrap_or(Path::new("."));
    create_private_dir(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let temporary = path.with_extension("toml.tmp");
    let written = write_private(&temporary, to_toml(credentials).as_bytes())
        .and_then(|()| std::fs::rename(&temporary, &path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temporary);
        return Err(format!("cannot write {}: {e}", path.display()));
    }
    Ok(path)
}

/// Removes the credentials file; whether there was one.
pub fn remove(path: &Path) -> Result<bool, String> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(format!("cannot remove {}: {e}", path.display())),
    }
}

fn to_toml(credentials: &Credentials) -> String {
    let mut text = format!(
        "# Written by `berth login`; `berth logout` revokes the token and removes this file.\n\
         server = {}\nusername = {}\ntoken = {}\n",
        toml_string(&credentials.server),
        toml_string(&credentials.username),
        toml_string(&credentials.token),
    );
    if let Some(id) = credentials.token_id {
        text.push_str(&format!("token_id = {id}\n"));
    }
    text
}

/// A TOML basic string.
fn toml_string(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    // A file that was there already keeps its mode when opened: set it again.
    #[cfg(unix)]
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Where a command's token came from (shown by `berth whoami`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// `--token` or BERTH_TOKEN.
    Given,
    /// The credentials file at this path.
    Credentials(PathBuf),
    /// `./berth-data/admin-token`.
    AdminTokenFile,
    None,
}

/// The server and token a command uses.
#[derive(Debug, Clone)]
pub struct Target {
    pub server: String,
    pub token: Option<String>,
    pub source: TokenSource,
}

/// Chooses the server and token: the server from `--server`/BERTH_SERVER, else the credentials
/// file's, else the default; the token from `--token`/BERTH_TOKEN, else the credentials file's
/// (when it is for that server), else `./berth-data/admin-token`.
pub fn resolve(server: Option<&str>, token: Option<&str>) -> Result<Target, String> {
    let saved = if token.is_some() { None } else { load()? };
    Ok(choose(
        server,
        token,
        saved,
        read_admin_token(Path::new(ADMIN_TOKEN_FILE)),
    ))
}

fn read_admin_token(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
}

/// The choice of [`resolve`], without reading files.
fn choose(
    server: Option<&str>,
    token: Option<&str>,
    saved: Option<(PathBuf, Credentials)>,
    admin_token: Option<String>,
) -> Target {
    let server = server.map(str::to_string);
    if let Some(token) = token {
        return Target {
            server: server.unwrap_or_else(|| DEFAULT_SERVER.to_string()),
            token: Some(token.to_string()),
            source: TokenSource::Given,
        };
    }
    if let Some((path, credentials)) = saved
        && server
            .as_deref()
            .is_none_or(|s| same_server(s, &credentials.server))
    {
        return Target {
            server: server.unwrap_or_else(|| credentials.server.clone()),
            token: Some(credentials.token.clone()),
            source: TokenSource::Credentials(path),
        };
    }
    let source = if admin_token.is_some() {
        TokenSource::AdminTokenFile
    } else {
        TokenSource::None
    };
    Target {
        server: server.unwrap_or_else(|| DEFAULT_SERVER.to_string()),
        token: admin_token,
        source,
    }
}

/// Whether two server URLs name the same server (ignoring a trailing '/' and the case).
pub fn same_server(a: &str, b: &str) -> bool {
    a.trim_end_matches('/')
        .eq_ignore_ascii_case(b.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn saved(server: &str) -> Option<(PathBuf, Credentials)> {
        Some((
            PathBuf::from("/c/credentials.toml"),
            Credentials {
                server: server.into(),
                username: "alice".into(),
                token: "berth_saved".into(),
                token_id: Some(7),
            },
        ))
    }

    #[test]
    fn resolution_order() {
        let admin = || Some("admin-secret".to_string());
        let saved_source = TokenSource::Credentials(PathBuf::from("/c/credentials.toml"));
        // (server flag, token flag, saved server, admin token) -> (server, token, source)
        let cases = [
            (
                Some("http://x:1"),
                Some("flag"),
                saved("http://x:1"),
                admin(),
                ("http://x:1", Some("flag"), TokenSource::Given),
            ),
            (
                None,
                Some("flag"),
                saved("http://x:1"),
                admin(),
                (DEFAULT_SERVER, Some("flag"), TokenSource::Given),
            ),
            (
                None,
                None,
                saved("http://x:1"),
                admin(),
                ("http://x:1", Some("berth_saved"), saved_source.clone()),
            ),
            (
                Some("http://x:1/"),
                None,
                saved("http://X:1"),
                admin(),
                ("http://x:1/", Some("berth_saved"), saved_source.clone()),
            ),
            (
                Some("http://y:2"),
                None,
                saved("http://x:1"),
                admin(),
                (
                    "http://y:2",
                    Some("admin-secret"),
                    TokenSource::AdminTokenFile,
                ),
            ),
            (
                None,
                None,
                None,
                admin(),
                (
                    DEFAULT_SERVER,
                    Some("admin-secret"),
                    TokenSource::AdminTokenFile,
                ),
            ),
            (
                None,
                None,
                None,
                None,
                (DEFAULT_SERVER, None, TokenSource::None),
            ),
        ];
        for (server, token, saved, admin, (want_server, want_token, want_source)) in cases {
            let target = choose(server, token, saved, admin);
            assert_eq!(target.server, want_server, "{server:?} {token:?}");
            assert_eq!(target.token.as_deref(), want_token, "{server:?} {token:?}");
            assert_eq!(target.source, want_source, "{server:?} {token:?}");
        }
    }

    #[test]
    fn toml_round_trip() {
        let credentials = Credentials {
            server: "http://127.0.0.1:7700".into(),
            username: "o\"dd\\name\u{7f}\n".into(),
            token: "berth_abc".into(),
            token_id: Some(12),
        };
        let text = to_toml(&credentials);
        assert_eq!(toml::from_str::<Credentials>(&text).unwrap(), credentials);
        let without_id = Credentials {
            token_id: None,
            ..credentials
        };
        assert_eq!(
            toml::from_str::<Credentials>(&to_toml(&without_id)).unwrap(),
            without_id
        );
    }

    #[cfg(unix)]
    #[test]
    fn saved_privately() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sub").join("credentials.toml");
        write_private(&file, b"x").unwrap_err(); // no directory yet
        create_private_dir(file.parent().unwrap()).unwrap();
        write_private(&file, b"token = \"t\"").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&file), 0o600);
        assert_eq!(mode(file.parent().unwrap()), 0o700);
        assert!(remove(&file).unwrap());
        assert!(!remove(&file).unwrap());
    }
}
