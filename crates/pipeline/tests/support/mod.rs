//! Test harness: real git repositories made with the `git` binary, and a sink that records
//! what a build reports.
#![allow(dead_code)] // each test binary uses a different part of the harness

use std::path::Path;
use std::process::Command;
use std::sync::Mutex;

use berth_pipeline::{BuildLog, BuildSink, BuildState, BuildStatus, Step};

/// A non-bare repository with branch `main`, removed when dropped.
pub struct Repo {
    dir: tempfile::TempDir,
}

impl Repo {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let repo = Self { dir };
        repo.git(&["init", "--quiet", "--initial-branch=main"]);
        repo
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The repository as a plain path remote.
    pub fn url(&self) -> String {
        self.path().display().to_string()
    }

    /// The repository as a `file://` remote.
    pub fn file_url(&self) -> String {
        format!("file://{}", self.path().display())
    }

    /// Runs git in the repository with a fixed identity and no user configuration.
    pub fn git(&self, args: &[&str]) -> String {
        let out = Command::new("git")
            .args([
                "-c",
                "user.name=Ada Lovelace",
                "-c",
                "user.email=ada@example.com",
            ])
            .args(args)
            .current_dir(self.path())
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .output()
            .expect("run git");
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Writes `files` (path, content; `None` deletes), commits them on the current branch and
    /// returns the commit id.
    pub fn commit(&self, files: &[(&str, Option<&str>)], message: &str) -> String {
        for (path, content) in files {
            let full = self.path().join(path);
            match content {
                Some(content) => {
                    std::fs::create_dir_all(full.parent().unwrap()).unwrap();
                    std::fs::write(&full, content).unwrap();
                }
                None => {
                    let _ = std::fs::remove_file(&full);
                }
            }
        }
        self.git(&["add", "--all"]);
        self.git(&["commit", "--quiet", "--allow-empty", "-m", message]);
        self.git(&["rev-parse", "HEAD"])
    }

    pub fn checkout_new_branch(&self, branch: &str) {
        self.git(&["checkout", "--quiet", "-b", branch]);
    }
}

/// Records every state and log line a build reports; optionally acts on lines.
#[derive(Default)]
pub struct RecordingSink {
    pub states: Mutex<Vec<BuildState>>,
    pub logs: Mutex<Vec<BuildLog>>,
    on_line: Option<Box<dyn Fn(&BuildLog) + Send + Sync>>,
}

impl RecordingSink {
    /// A sink that also calls `f` with every line.
    pub fn with_hook(f: impl Fn(&BuildLog) + Send + Sync + 'static) -> Self {
        Self {
            on_line: Some(Box::new(f)),
            ..Self::default()
        }
    }

    /// The statuses reported, without repeats.
    pub fn statuses(&self) -> Vec<BuildStatus> {
        let mut out: Vec<BuildStatus> = Vec::new();
        for s in self.states.lock().unwrap().iter() {
            if out.last() != Some(&s.status) {
                out.push(s.status);
            }
        }
        out
    }

    /// The texts logged during `step`.
    pub fn lines(&self, step: Step) -> Vec<String> {
        self.logs
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.step == step)
            .map(|l| l.text.clone())
            .collect()
    }

    /// Every line, for failure messages.
    pub fn dump(&self) -> String {
        self.logs
            .lock()
            .unwrap()
            .iter()
            .map(|l| format!("[{}] {}", l.step, l.text))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl BuildSink for RecordingSink {
    fn state(&self, state: &BuildState) {
        self.states.lock().unwrap().push(state.clone());
    }

    fn log(&self, line: &BuildLog) {
        if let Some(f) = &self.on_line {
            f(line);
        }
        self.logs.lock().unwrap().push(line.clone());
    }
}
