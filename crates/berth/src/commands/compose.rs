//! `berth compose import`: a `docker-compose.yml` turned into a team's apps — the plan
//! first (what is created, updated or left, every key that does not map), then the import.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use berth_api::compose::{ComposeImportDto, ComposeRequest};
use clap::Subcommand;

use super::segment;
use crate::client::Client;

#[derive(Debug, Subcommand)]
pub enum ComposeCommand {
    /// Import a compose file: each service becomes an app of --team (named --prefix +
    /// service), created or deployed; the env files it names are read from beside it
    Import {
        file: PathBuf,
        #[arg(long)]
        team: String,
        /// Put before every app's name, e.g. shop-
        #[arg(long, default_value = "")]
        prefix: String,
        /// Only show the plan
        #[arg(long)]
        dry_run: bool,
    },
}

/// The env files `compose` names, read from `dir`: relative paths that stay inside it only —
/// a compose file never makes the CLI read (and upload) a file elsewhere.
fn read_env_files(compose: &str, dir: &Path) -> Result<BTreeMap<String, String>, String> {
    let root = dir
        .canonicalize()
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut files = BTreeMap::new();
    for path in berth_core::compose::env_file_paths(compose) {
        let relative = Path::new(&path);
        if relative.is_absolute()
            || relative
                .components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            eprintln!("env_file {path}: not read (only files beside the compose file are)");
            continue;
        }
        let Ok(full) = root.join(relative).canonicalize() else {
            eprintln!("env_file {path}: not found beside the compose file");
            continue;
        };
        if !full.starts_with(&root) {
            eprintln!("env_file {path}: not read (it leads outside the compose file's directory)");
            continue;
        }
        let text = std::fs::read_to_string(&full).map_err(|e| format!("env_file {path}: {e}"))?;
        files.insert(path, text);
    }
    Ok(files)
}

pub async fn run(client: &Client, command: ComposeCommand) -> Result<ExitCode, String> {
    let ComposeCommand::Import {
        file,
        team,
        prefix,
        dry_run,
    } = command;
    let compose = std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
    let dir = file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let env_files = read_env_files(&compose, dir)?;
    let request = ComposeRequest {
        compose,
        prefix,
        env_files,
        dry_run,
    };
    let path = format!("/teams/{}/compose", segment(&team));
    let answer: ComposeImportDto = client.post(&path, &request).await?;
    println!(
        "{}",
        if answer.dry_run {
            "plan (nothing changed):"
        } else {
            "imported:"
        }
    );
    for app in &answer.apps {
        let revision = app
            .revision
            .map_or_else(String::new, |r| format!(" (revision {r})"));
        println!(
            "  {:<9} {} ← service {}{revision}",
            app.action, app.app, app.service
        );
    }
    if !answer.notes.is_empty() {
        println!("not mapped:");
        for note in &answer.notes {
            println!("  {note}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
