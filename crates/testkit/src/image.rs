//! Builds the test app's `FROM scratch` image once per process and once across processes.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use crate::docker::require_docker;

/// The image reference that [`testapp_image`] builds and returns.
pub const TESTAPP_IMAGE: &str = "berth-testapp:latest";

static BUILT: OnceLock<String> = OnceLock::new();

/// The workspace root (the directory holding the root `Cargo.toml` and `scripts/`).
pub fn workspace_root() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root)
}

/// Makes sure [`TESTAPP_IMAGE`] exists and returns its reference.
///
/// Runs `scripts/build-testapp-image.sh` at most once per process; an exclusive lock on
/// `target/berth-testapp-image.lock` keeps concurrently running test binaries from building
/// it at the same time (the later ones find it up to date and return quickly).
///
/// # Panics
/// When Docker is unreachable or the build fails, with the script's output.
pub fn testapp_image() -> String {
    BUILT
        .get_or_init(|| {
            require_docker();
            if let Err(e) = build(TESTAPP_IMAGE) {
                panic!("cannot build the test app image {TESTAPP_IMAGE}: {e}");
            }
            TESTAPP_IMAGE.to_string()
        })
        .clone()
}

fn build(image: &str) -> Result<(), String> {
    let root = workspace_root();
    let target = root.join("target");
    std::fs::create_dir_all(&target).map_err(|e| format!("create {}: {e}", target.display()))?;
    let lock_path = target.join("berth-testapp-image.lock");
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| format!("open {}: {e}", lock_path.display()))?;
    lock.lock()
        .map_err(|e| format!("lock {}: {e}", lock_path.display()))?;

    let script = root.join("scripts/build-testapp-image.sh");
    let output = Command::new("bash")
        .arg(&script)
        .arg(image)
        .current_dir(&root)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("run {}: {e}", script.display()));
    // Release before formatting errors so waiting test processes can go on.
    drop(lock);
    let output = output?;
    if output.status.success() {
        return Ok(());
    }
    Err(format!(
        "{} {image} exited with {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        script.display(),
        output.status,
        String::from_utf8_lossy(&output.stdout).trim_end(),
        String::from_utf8_lossy(&output.stderr).trim_end(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_workspace_root() {
        let root = workspace_root();
        assert!(root.join("Cargo.toml").is_file(), "{}", root.display());
        assert!(
            root.join("scripts/build-testapp-image.sh").is_file(),
            "{}",
            root.display()
        );
    }
}
