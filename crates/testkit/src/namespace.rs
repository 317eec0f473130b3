//! Per-test namespaces: unique names that label what a test creates, and their cleanup.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The label that ties a container (or volume) to a test namespace.
pub const NAMESPACE_LABEL: &str = "berth.namespace";

/// Longest namespace [`unique_namespace`] returns.
const MAX_LEN: usize = 40;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Returns a short name unique across processes and calls, safe as a Docker container or network
/// name and as a label value: `bt-<prefix>-<pid hex>-<counter>-<random>`, lowercase
/// `[a-z0-9-]`, at most 40 characters (the prefix is sanitized and shortened to fit).
pub fn unique_namespace(prefix: &str) -> String {
    let pid = std::process::id();
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    // RandomState is seeded from the OS once per process: random enough without a dependency.
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u128(nanos);
    hasher.write_u32(count);
    let random = base36(hasher.finish() % 36u64.pow(5), 5);

    let tail = format!("{pid:x}-{count:x}-{random}");
    let room = MAX_LEN.saturating_sub("bt-".len() + 1 + tail.len());
    let prefix = sanitize(prefix, room);
    if prefix.is_empty() {
        format!("bt-{tail}")
    } else {
        format!("bt-{prefix}-{tail}")
    }
}

/// Lowercases, maps anything outside `[a-z0-9]` to `-`, squeezes and trims dashes, shortens.
fn sanitize(prefix: &str, max: usize) -> String {
    let mut out = String::new();
    for c in prefix.chars().map(|c| c.to_ascii_lowercase()) {
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() {
            c
        } else {
            '-'
        };
        if c == '-' && (out.is_empty() || out.ends_with('-')) {
            continue;
        }
        out.push(c);
    }
    out.truncate(max);
    out.trim_end_matches('-').to_string()
}

fn base36(mut n: u64, width: usize) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = vec![b'0'; width];
    for slot in out.iter_mut().rev() {
        *slot = DIGITS[(n % 36) as usize];
        n /= 36;
    }
    String::from_utf8(out).unwrap_or_default()
}

/// Runs `docker ARGS`, returning stdout on success and `None` on any failure.
fn docker(args: &[&str]) -> Option<String> {
    let output = Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Whether `namespace` is a plausible name: never let an empty or odd value widen the filters.
fn is_safe_namespace(namespace: &str) -> bool {
    !namespace.is_empty()
        && namespace.len() <= 128
        && namespace
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Force-removes every container, image and volume labelled `berth.namespace=<namespace>` and
/// the Docker networks named `<namespace>` and `<namespace>-team-<team>`, if any. Errors are ignored: this is best-effort
/// cleanup. An image goes with all its tags (e.g. ones pushed to a test registry).
pub fn cleanup_namespace(namespace: &str) {
    if !is_safe_namespace(namespace) {
        return;
    }
    let filter = format!("label={NAMESPACE_LABEL}={namespace}");
    // A server stopped mid-request leaves Docker finishing a create it no longer waits for:
    // sweep again until a pass finds nothing (a few passes at most).
    for _ in 0..SWEEP_PASSES {
        if remove_containers(&filter) == 0 {
            break;
        }
        std::thread::sleep(SWEEP_PAUSE);
    }
    if let Some(ids) = docker(&["images", "-q", "--no-trunc", "--filter", &filter]) {
        let mut ids: Vec<&str> = ids.split_whitespace().collect();
        ids.sort_unstable();
        ids.dedup();
        if !ids.is_empty() {
            let mut args = vec!["rmi", "-f"];
            args.extend(ids);
            docker(&args);
        }
    }
    // The namespace's network and its teams' (`<namespace>-team-<team>`); names are matched
    // exactly (`network inspect` also matches ID prefixes, `--filter name=` substrings).
    // Docker 20.10 sometimes still counts a just-removed container's endpoint: try again.
    let team_prefix = format!("{namespace}-team-");
    for _ in 0..SWEEP_PASSES {
        let Some(names) = docker(&["network", "ls", "--format", "{{.Name}}"]) else {
            break;
        };
        let left: Vec<&str> = names
            .split_whitespace()
            .filter(|name| *name == namespace || name.starts_with(&team_prefix))
            .collect();
        if left.is_empty() {
            break;
        }
        for name in left {
            docker(&["network", "rm", name]);
        }
        std::thread::sleep(SWEEP_PAUSE);
    }
    if let Some(volumes) = docker(&["volume", "ls", "-q", "--filter", &filter]) {
        let volumes: Vec<&str> = volumes.split_whitespace().collect();
        if !volumes.is_empty() {
            let mut args = vec!["volume", "rm", "-f"];
            args.extend(volumes);
            docker(&args);
        }
    }
}

/// How many times the containers of a namespace are swept, at most.
const SWEEP_PASSES: usize = 4;
/// The pause between two sweeps.
const SWEEP_PAUSE: std::time::Duration = std::time::Duration::from_millis(300);

/// Removes the containers matching `filter`; returns how many there were.
fn remove_containers(filter: &str) -> usize {
    let Some(ids) = docker(&["ps", "-aq", "--filter", filter]) else {
        return 0;
    };
    let ids: Vec<&str> = ids.split_whitespace().collect();
    if !ids.is_empty() {
        let mut args = vec!["rm", "-f", "-v"];
        args.extend(&ids);
        docker(&args);
    }
    ids.len()
}

/// Owns a namespace and cleans it up (see [`cleanup_namespace`]) when dropped, even when the
/// test panics.
#[derive(Debug)]
pub struct NamespaceGuard(pub String);

impl NamespaceGuard {
    /// Guards a fresh [`unique_namespace`] built from `prefix`.
    pub fn new(prefix: &str) -> Self {
        NamespaceGuard(unique_namespace(prefix))
    }

    /// The guarded namespace.
    pub fn namespace(&self) -> &str {
        &self.0
    }

    /// The `berth.namespace=<namespace>` label, ready for `docker run --label`.
    pub fn label(&self) -> String {
        format!("{NAMESPACE_LABEL}={}", self.0)
    }
}

impl std::ops::Deref for NamespaceGuard {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl Drop for NamespaceGuard {
    fn drop(&mut self) {
        cleanup_namespace(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn valid(ns: &str) -> bool {
        ns.len() <= MAX_LEN
            && ns.starts_with("bt-")
            && !ns.ends_with('-')
            && !ns.contains("--")
            && ns
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    }

    #[test]
    fn namespaces_are_short_safe_and_unique() {
        let prefixes = [
            "",
            "engine",
            "Engine Tests",
            "a_b.c/d",
            "---",
            "ÜberLongPrefixThatGoesOnAndOnAndOnForeverAndEver",
            "x",
            "rollout-42",
        ];
        let mut seen = HashSet::new();
        for prefix in prefixes {
            for _ in 0..50 {
                let ns = unique_namespace(prefix);
                assert!(valid(&ns), "prefix {prefix:?} gave {ns:?}");
                assert!(seen.insert(ns.clone()), "duplicate {ns}");
            }
        }
        assert!(unique_namespace("engine").starts_with("bt-engine-"));
        assert!(unique_namespace("Engine Tests").starts_with("bt-engine-tests-"));
    }

    #[test]
    fn sanitizes_prefixes() {
        let cases = [
            ("abc", 10, "abc"),
            ("A B", 10, "a-b"),
            ("--a--b--", 10, "a-b"),
            ("abcdefghijkl", 5, "abcde"),
            ("abcd-efgh", 5, "abcd"),
            ("", 5, ""),
            ("é", 5, ""),
        ];
        for (input, max, want) in cases {
            assert_eq!(sanitize(input, max), want, "input {input:?}");
        }
    }

    #[test]
    fn refuses_unsafe_namespaces() {
        for ns in ["", "a b", "a=b", "x,label=y", "../x"] {
            assert!(!is_safe_namespace(ns), "{ns:?}");
        }
        assert!(is_safe_namespace("bt-engine-1f-0-abcde"));
    }

    #[test]
    fn base36_pads() {
        assert_eq!(base36(0, 3), "000");
        assert_eq!(base36(35, 2), "0z");
        assert_eq!(base36(36, 2), "10");
    }
}
