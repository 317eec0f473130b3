//! `berth secrets`: a team's secrets — set from stdin or a file (never the command line),
//! list names and versions, delete. Values are never shown.

use std::io::Read;
use std::process::ExitCode;

use berth_api::secrets::{SecretDto, SecretListDto};
use clap::Subcommand;

use super::segment;
use crate::client::Client;
use crate::output::{self, Format};

#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// Create a secret, or store a new version of it (every app using it rolls out with the
    /// new version); the value comes from stdin or --from-file, never from the command line:
    /// berth secrets create TEAM/NAME < value.txt
    #[command(alias = "set")]
    Create {
        /// TEAM/NAME
        secret: String,
        /// Read the value from this file instead of stdin
        #[arg(long, value_name = "PATH")]
        from_file: Option<std::path::PathBuf>,
    },
    /// The secrets of every team you can read (or of --team): names, versions, who changed
    /// them, the apps using them — never values
    List {
        #[arg(long)]
        team: Option<String>,
        #[arg(short, long, value_enum, default_value = "table")]
        output: Format,
    },
    /// Delete a secret and all its versions (refused while an app uses it)
    Delete {
        /// TEAM/NAME
        secret: String,
    },
}

fn secret_path(secret: &str) -> Result<String, String> {
    match secret.split_once('/') {
        Some((team, name)) if !team.is_empty() && !name.is_empty() && !name.contains('/') => Ok(
            format!("/teams/{}/secrets/{}", segment(team), segment(name)),
        ),
        _ => Err(format!(
            "secret {secret:?}: name it TEAM/NAME, e.g. default/db-password"
        )),
    }
}

pub async fn run(client: &Client, command: SecretsCommand) -> Result<ExitCode, String> {
    match command {
        SecretsCommand::Create { secret, from_file } => {
            let path = secret_path(&secret)?;
            let value = match &from_file {
                Some(file) => std::fs::read(file)
                    .map_err(|e| format!("--from-file {}: {e}", file.display()))?,
                None => {
                    let mut value = Vec::new();
                    std::io::stdin()
                        .read_to_end(&mut value)
                        .map_err(|e| format!("reading the value from stdin failed: {e}"))?;
                    value
                }
            };
            let set: SecretDto = client
                .put_bytes(&path, "application/octet-stream", value)
                .await?;
            println!(
                "secret {}/{} is at version {}",
                set.team, set.name, set.version
            );
            if !set.rolled_out.is_empty() {
                println!("rolling out with it: {}", set.rolled_out.join(", "));
            }
        }
        SecretsCommand::List { team, output } => {
            let path = match &team {
                Some(team) => format!("/teams/{}/secrets", segment(team)),
                None => "/secrets".to_string(),
            };
            let list: SecretListDto = client.get(&path).await?;
            output::one(output, &list, |list| {
                let rows: Vec<Vec<String>> = list
                    .secrets
                    .iter()
                    .map(|s| {
                        vec![
                            format!("{}/{}", s.team, s.name),
                            s.version.to_string(),
                            format!("{} by {}", s.updated_at, s.updated_by),
                            if s.used_by.is_empty() {
                                "-".to_string()
                            } else {
                                s.used_by.join(",")
                            },
                        ]
                    })
                    .collect();
                println!(
                    "{}",
                    output::table(&["SECRET", "VERSION", "CHANGED", "USED BY"], &rows)
                );
            });
        }
        SecretsCommand::Delete { secret } => {
            client.delete(&secret_path(&secret)?).await?;
            println!("secret {secret} deleted");
        }
    }
    Ok(ExitCode::SUCCESS)
}
