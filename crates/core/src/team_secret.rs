//! Team secrets: named values a team's apps use as environment variables or files, sealed
//! at rest, never shown after they are set. A template refers to a secret by name
//! ([`SecretRef`]) and records the version it uses — never the value — so a changed secret
//! rolls out as a new revision and a rollback brings the old version back.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::Millis;
use crate::validate::{ValidationErrors, name_problem, validate_env_key};
use crate::volume::{clean_path, path_problem};

/// Largest secret value, in bytes.
pub const MAX_SECRET_BYTES: usize = 256 * 1024;
/// Most secrets one app may use.
pub const MAX_SECRET_REFS: usize = 32;
/// Versions of a secret kept (for rollbacks to revisions that use older ones).
pub const KEPT_VERSIONS: u32 = 10;

/// A team's secret as Berth shows it: its name and history, never its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamSecret {
    pub team: String,
    pub name: String,
    /// 1 when created, one more on every change.
    pub version: u32,
    pub created_at: Millis,
    pub created_by: String,
    pub updated_at: Millis,
    pub updated_by: String,
}

/// Where an app receives a secret: an environment variable or a file.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SecretRef {
    /// The secret's name within the app's team.
    pub name: String,
    /// The environment variable that holds the value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    /// The absolute path of a read-only file holding the value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The version the revision uses (set by Berth when the revision is made).
    #[serde(default)]
    pub version: u32,
}

impl SecretRef {
    /// Reads the command line's `VAR=SECRET` (`--secret`).
    pub fn parse_env(text: &str) -> Result<SecretRef, String> {
        let (var, name) = split(text, "VAR=SECRET")?;
        Ok(SecretRef {
            name: name.into(),
            env: Some(var.into()),
            path: None,
            version: 0,
        })
    }

    /// Reads the command line's `/PATH=SECRET` (`--secret-file`).
    pub fn parse_file(text: &str) -> Result<SecretRef, String> {
        let (path, name) = split(text, "/PATH=SECRET")?;
        Ok(SecretRef {
            name: name.into(),
            env: None,
            path: Some(path.into()),
            version: 0,
        })
    }

    /// Where the value goes, for people: `env DB_PASSWORD` or `file /run/secrets/tls`.
    pub fn target(&self) -> String {
        match (&self.env, &self.path) {
            (Some(var), _) => format!("env {var}"),
            (None, Some(path)) => format!("file {path}"),
            (None, None) => "nowhere".to_string(),
        }
    }
}

fn split<'a>(text: &'a str, form: &str) -> Result<(&'a str, &'a str), String> {
    match text.rsplit_once('=') {
        Some((target, name)) if !target.is_empty() && !name.is_empty() => Ok((target, name)),
        _ => Err(format!("{text:?} is not {form}")),
    }
}

/// Why a secret's value cannot be stored, or `None`.
pub fn value_problem(value: &[u8]) -> Option<String> {
    if value.is_empty() {
        return Some("must not be empty".into());
    }
    if value.len() > MAX_SECRET_BYTES {
        return Some(format!("must be at most {MAX_SECRET_BYTES} bytes"));
    }
    None
}

/// Checks a template's secret references on their own (`env` holds the template's plain
/// environment, which a secret may not shadow); `prefix` is the JSON path of the list.
pub fn validate_refs(
    errors: &mut ValidationErrors,
    prefix: &str,
    refs: &[SecretRef],
    env: &std::collections::BTreeMap<String, String>,
) {
    if refs.len() > MAX_SECRET_REFS {
        errors.push(prefix, format!("at most {MAX_SECRET_REFS} secrets"));
        return;
    }
    let mut vars = BTreeSet::new();
    let mut paths = BTreeSet::new();
    for (i, secret) in refs.iter().enumerate() {
        let field = |name: &str| format!("{prefix}[{i}].{name}");
        if secret.name.contains('/') {
            errors.push(
                field("name"),
                format!(
                    "{:?}: an app uses secrets of its own team only, named without a team",
                    secret.name
                ),
            );
        } else if let Some(problem) = name_problem(&secret.name) {
            errors.push(field("name"), format!("{:?} {problem}", secret.name));
        }
        match (&secret.env, &secret.path) {
            (Some(var), None) => {
                if let Some(problem) = validate_env_key(var) {
                    errors.push(field("env"), problem);
                } else if env.contains_key(var) {
                    errors.push(
                        field("env"),
                        format!("{var} is also a plain environment variable: use one or the other"),
                    );
                } else if !vars.insert(var.as_str()) {
                    errors.push(field("env"), format!("{var} is set by two secrets"));
                }
            }
            (None, Some(path)) => {
                if let Some(problem) = path_problem(path) {
                    errors.push(field("path"), format!("{path:?} {problem}"));
                } else if !paths.insert(clean_path(path)) {
                    errors.push(field("path"), format!("{path} holds two secrets"));
                }
            }
            _ => errors.push(
                field("env"),
                "give exactly one of env (a variable) and path (a file)",
            ),
        }
    }
}

/// What a secret's sealed value is bound to: the same value sealed for another secret or
/// version does not open.
pub fn seal_context(team: &str, name: &str, version: u32) -> String {
    format!("secret:{team}/{name}:{version}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn env_ref(name: &str, var: &str) -> SecretRef {
        SecretRef::parse_env(&format!("{var}={name}")).unwrap()
    }

    fn file_ref(name: &str, path: &str) -> SecretRef {
        SecretRef::parse_file(&format!("{path}={name}")).unwrap()
    }

    #[test]
    fn references_parse_from_the_command_line_form() {
        let env = env_ref("db-password", "DB_PASSWORD");
        assert_eq!(
            (env.name.as_str(), env.env.as_deref(), env.path.clone()),
            ("db-password", Some("DB_PASSWORD"), None)
        );
        assert_eq!(env.target(), "env DB_PASSWORD");
        let file = file_ref("tls-cert", "/run/secrets/tls");
        assert_eq!(file.path.as_deref(), Some("/run/secrets/tls"));
        assert_eq!(file.target(), "file /run/secrets/tls");
        for bad in ["DB_PASSWORD", "=name", "VAR=", ""] {
            assert!(SecretRef::parse_env(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn references_are_checked_each_naming_its_field() {
        let plain = BTreeMap::from([("PLAIN".to_string(), "1".to_string())]);
        let both = SecretRef {
            path: Some("/x".into()),
            ..env_ref("a", "A")
        };
        let neither = SecretRef {
            env: None,
            ..env_ref("a", "A")
        };
        let cases: [(Vec<SecretRef>, &[&str]); 9] = [
            (vec![env_ref("db", "DB"), file_ref("tls", "/run/tls")], &[]),
            (vec![env_ref("other/db", "DB")], &["s[0].name"]),
            (vec![env_ref("Db", "DB")], &["s[0].name"]),
            (vec![env_ref("db", "BERTH_X")], &["s[0].env"]),
            (vec![env_ref("db", "PLAIN")], &["s[0].env"]),
            (vec![env_ref("a", "X"), env_ref("b", "X")], &["s[1].env"]),
            (vec![file_ref("a", "run/x")], &["s[0].path"]),
            (
                vec![file_ref("a", "/x"), file_ref("b", "/x/")],
                &["s[1].path"],
            ),
            (vec![both, neither], &["s[0].env", "s[1].env"]),
        ];
        for (refs, fields) in cases {
            let mut errors = ValidationErrors::default();
            validate_refs(&mut errors, "s", &refs, &plain);
            let got: Vec<&str> = errors.0.iter().map(|e| e.field.as_str()).collect();
            assert_eq!(got, fields, "{refs:?}");
        }
    }

    #[test]
    fn values_are_bounded_and_contexts_distinct() {
        assert!(value_problem(b"").is_some());
        assert!(value_problem(&vec![b'x'; MAX_SECRET_BYTES + 1]).is_some());
        assert!(value_problem(b"\x00binary\xff").is_none());
        assert_ne!(seal_context("t", "a", 1), seal_context("t", "a", 2));
        assert_ne!(seal_context("t", "a-1", 1), seal_context("t-a", "1", 1));
    }
}
