//! Checks that a Docker Engine answers, with an error that says how to get one.

use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// Set once `docker version` has succeeded, so later checks in this process are free.
static REACHABLE: OnceLock<()> = OnceLock::new();

/// Returns `Ok(())` when the `docker` CLI reaches a Docker Engine, or an error telling how to
/// start one (`scripts/ensure-docker.sh`).
pub fn docker_available() -> Result<(), String> {
    if REACHABLE.get().is_some() {
        return Ok(());
    }
    check("docker")?;
    let _ = REACHABLE.set(());
    Ok(())
}

/// Panics with the message of [`docker_available`] when no Docker Engine is reachable.
pub fn require_docker() {
    if let Err(e) = docker_available() {
        panic!("{e}");
    }
}

fn check(cli: &str) -> Result<(), String> {
    const HINT: &str = "run scripts/ensure-docker.sh (from the workspace root) to install and \
                        start the Docker Engine, then rerun the tests";
    let output = Command::new(cli)
        .args(["version", "--format", "{{.Server.Version}}"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            format!("Docker is not available: cannot run `{cli} version` ({e}); {HINT}")
        })?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    Err(format!(
        "Docker is not available: `{cli} version` failed ({}): {}; {HINT}",
        output.status,
        stderr.trim()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_cli_points_to_ensure_docker() {
        let err = check("berth-testkit-no-such-docker-cli").unwrap_err();
        assert!(err.contains("Docker is not available"), "{err}");
        assert!(err.contains("scripts/ensure-docker.sh"), "{err}");
    }

    #[test]
    fn failing_cli_points_to_ensure_docker() {
        // `false` accepts any arguments and exits 1, like a CLI that cannot reach the engine.
        let err = check("false").unwrap_err();
        assert!(err.contains("failed"), "{err}");
        assert!(err.contains("scripts/ensure-docker.sh"), "{err}");
    }
}
