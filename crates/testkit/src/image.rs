//! Builds the test images once per process and once across processes: the test app's
//! `FROM scratch` image, and the same with a shell (Debian's `busybox-static`) for tests that
//! run commands inside images.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use crate::docker::require_docker;

/// The image reference that [`testapp_image`] builds and returns.
pub const TESTAPP_IMAGE: &str = "berth-testapp:latest";

/// The image reference that [`shell_image`] builds and returns.
pub const SHELL_IMAGE: &str = "berth-testapp-shell:latest";

static BUILT: OnceLock<String> = OnceLock::new();
static SHELL_BUILT: OnceLock<String> = OnceLock::new();

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

/// Runs `work` while holding an exclusive lock on `target/berth-testapp-image.lock`.
fn locked<T>(work: impl FnOnce(&Path) -> Result<T, String>) -> Result<T, String> {
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
    let result = work(&root);
    // Released before callers format errors, so waiting test processes can go on.
    drop(lock);
    result
}

fn build(image: &str) -> Result<(), String> {
    locked(|root| {
        let script = root.join("scripts/build-testapp-image.sh");
        let mut command = Command::new("bash");
        command.arg(&script).arg(image).current_dir(root);
        run(command, &format!("{} {image}", script.display()))
    })
}

/// Makes sure [`SHELL_IMAGE`] exists and returns its reference: the test app image plus
/// Debian's static busybox installed in `/bin` (`/bin/sh`, `sleep`, `cat`, `test`, …).
///
/// # Panics
/// When Docker is unreachable, busybox is not installed or the build fails.
pub fn shell_image() -> String {
    SHELL_BUILT
        .get_or_init(|| {
            let base = testapp_image();
            if let Err(e) = build_shell(&base, SHELL_IMAGE) {
                panic!("cannot build the shell test image {SHELL_IMAGE}: {e}");
            }
            SHELL_IMAGE.to_string()
        })
        .clone()
}

fn build_shell(base: &str, image: &str) -> Result<(), String> {
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.is_file())
        .ok_or("busybox is not installed: install Debian's busybox-static")?;
    locked(|root| {
        let context = root.join("target/berth-shell-image-context");
        std::fs::create_dir_all(&context)
            .map_err(|e| format!("create {}: {e}", context.display()))?;
        std::fs::copy(busybox, context.join("busybox"))
            .map_err(|e| format!("copy {}: {e}", busybox.display()))?;
        let dockerfile = format!(
            "FROM {base}\nCOPY busybox /bin/busybox\n\
             RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\nLABEL berth.test=\"true\"\n"
        );
        std::fs::write(context.join("Dockerfile"), dockerfile)
            .map_err(|e| format!("write the Dockerfile: {e}"))?;
        let mut command = Command::new("docker");
        command
            .args(["build", "--quiet", "--tag", image])
            .arg(&context)
            .env("DOCKER_BUILDKIT", "0");
        run(
            command,
            &format!("docker build {image} (is busybox static? install busybox-static)"),
        )
    })
}

/// Runs `command`; an error shows its output.
fn run(mut command: Command, what: &str) -> Result<(), String> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("run {what}: {e}"))?;
    if output.status.success() {
        return Ok(());
    }
    Err(format!(
        "{what} exited with {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
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
