//! Where Berth keeps the git repositories it hosts for pipelines (`<data-dir>/git`), and
//! what they take on disk.

use std::path::{Path, PathBuf};

/// Where the repository of `team`'s pipeline `name` is kept.
pub fn hosted_repository(git_dir: &Path, team: &str, name: &str) -> PathBuf {
    git_dir.join(team).join(format!("{name}.git"))
}

/// Bytes the team's hosted repositories take on disk (links are not followed).
pub fn hosted_bytes(git_dir: &Path, team: &str) -> u64 {
    fn walk(dir: &Path) -> u64 {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return 0;
        };
        entries
            .flatten()
            .map(|entry| match entry.file_type() {
                Ok(kind) if kind.is_dir() => walk(&entry.path()),
                Ok(kind) if kind.is_file() => entry.metadata().map_or(0, |m| m.len()),
                _ => 0,
            })
            .sum()
    }
    walk(&git_dir.join(team))
}
