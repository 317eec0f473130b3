//! `berth volumes`: a team's persistent volumes — list, show, delete, and back up or restore
//! one as an uncompressed tar stream (stdout, stdin).

use std::process::ExitCode;

use berth_api::dto::VolumeScopeDto;
use berth_api::volumes::{VolumeDto, VolumeListDto};
use clap::Subcommand;
use futures::StreamExt;
use std::io::{Read, Write};

use super::segment;
use crate::client::Client;
use crate::output::{self, Format};
use crate::units::format_size;

#[derive(Debug, Subcommand)]
pub enum VolumesCommand {
    /// The volumes of every team you can read (or of --team)
    List {
        #[arg(long)]
        team: Option<String>,
        #[arg(short, long, value_enum, default_value = "table")]
        output: Format,
    },
    /// One volume: scope, size, the apps mounting it, its slots
    Show {
        /// TEAM/NAME
        volume: String,
        #[arg(short, long, value_enum, default_value = "table")]
        output: Format,
    },
    /// Delete a volume and its data (refused while an app mounts it)
    Delete {
        /// TEAM/NAME
        volume: String,
    },
    /// Write the volume's files to stdout as a tar archive: berth volumes backup TEAM/NAME > data.tar
    Backup {
        /// TEAM/NAME
        volume: String,
        /// The slot of a per-instance volume
        #[arg(long)]
        slot: Option<u32>,
    },
    /// Replace the volume's files with a tar archive read from stdin (scale the apps
    /// mounting it to 0 first): berth volumes restore TEAM/NAME < data.tar
    Restore {
        /// TEAM/NAME
        volume: String,
        /// The slot of a per-instance volume
        #[arg(long)]
        slot: Option<u32>,
    },
}

/// `TEAM/NAME` as the API path of the volume.
fn volume_path(volume: &str) -> Result<String, String> {
    match volume.split_once('/') {
        Some((team, name)) if !team.is_empty() && !name.is_empty() && !name.contains('/') => Ok(
            format!("/teams/{}/volumes/{}", segment(team), segment(name)),
        ),
        _ => Err(format!(
            "volume {volume:?}: name it TEAM/NAME, e.g. default/data"
        )),
    }
}

fn slot_query(slot: Option<u32>) -> String {
    slot.map_or_else(String::new, |s| format!("?slot={s}"))
}

fn scope(volume: &VolumeDto) -> &'static str {
    match volume.scope {
        VolumeScopeDto::Shared => "shared",
        VolumeScopeDto::PerInstance => "per-instance",
    }
}

fn size(volume: &VolumeDto) -> String {
    volume
        .size_bytes
        .map_or_else(|| "-".to_string(), format_size)
}

pub async fn run(client: &Client, command: VolumesCommand) -> Result<ExitCode, String> {
    match command {
        VolumesCommand::List { team, output } => {
            let path = match &team {
                Some(team) => format!("/teams/{}/volumes", segment(team)),
                None => "/volumes".to_string(),
            };
            let list: VolumeListDto = client.get(&path).await?;
            output::one(output, &list, |list| {
                let rows: Vec<Vec<String>> = list
                    .volumes
                    .iter()
                    .map(|v| {
                        vec![
                            format!("{}/{}", v.team, v.name),
                            scope(v).to_string(),
                            size(v),
                            if v.used_by.is_empty() {
                                "-".to_string()
                            } else {
                                v.used_by.join(",")
                            },
                        ]
                    })
                    .collect();
                println!(
                    "{}",
                    output::table(&["VOLUME", "SCOPE", "SIZE", "USED BY"], &rows)
                );
            });
        }
        VolumesCommand::Show { volume, output } => {
            let shown: VolumeDto = client.get(&volume_path(&volume)?).await?;
            output::one(output, &shown, |v| {
                println!("volume:     {}/{}", v.team, v.name);
                println!("scope:      {}", scope(v));
                println!(
                    "size:       {}{}",
                    size(v),
                    v.measured_at
                        .as_ref()
                        .map_or_else(String::new, |at| format!(" (measured {at})"))
                );
                println!(
                    "used by:    {}",
                    if v.used_by.is_empty() {
                        "no app".to_string()
                    } else {
                        v.used_by.join(", ")
                    }
                );
                if !v.slots.is_empty() {
                    let slots: Vec<String> = v.slots.iter().map(u32::to_string).collect();
                    println!("slots:      {}", slots.join(", "));
                }
                println!("created:    {} by {}", v.created_at, v.created_by);
            });
        }
        VolumesCommand::Delete { volume } => {
            client.delete(&volume_path(&volume)?).await?;
            println!("volume {volume} deleted with its data");
        }
        VolumesCommand::Backup { volume, slot } => {
            let path = format!("{}/archive{}", volume_path(&volume)?, slot_query(slot));
            let response = client.stream(&path).await?;
            let mut chunks = response.bytes_stream();
            let mut stdout = std::io::stdout().lock();
            let mut total = 0u64;
            while let Some(chunk) = chunks.next().await {
                let chunk = chunk.map_err(|e| format!("the backup broke off: {e}"))?;
                total += chunk.len() as u64;
                stdout
                    .write_all(&chunk)
                    .map_err(|e| format!("writing the backup failed: {e}"))?;
            }
            stdout
                .flush()
                .map_err(|e| format!("writing the backup failed: {e}"))?;
            eprintln!("backed up {volume}: {} of tar archive", format_size(total));
        }
        VolumesCommand::Restore { volume, slot } => {
            let path = format!("{}/archive{}", volume_path(&volume)?, slot_query(slot));
            client
                .put_stream(
                    &path,
                    "application/x-tar",
                    reqwest::Body::wrap_stream(stdin_chunks()),
                )
                .await?;
            println!("volume {volume} restored");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Stdin in chunks, read on a thread of its own.
fn stdin_chunks() -> impl futures::Stream<Item = std::io::Result<Vec<u8>>> + Send + 'static {
    let (sender, receiver) = tokio::sync::mpsc::channel(4);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buffer = vec![0u8; 256 * 1024];
        loop {
            let chunk = match stdin.read(&mut buffer) {
                Ok(0) => return,
                Ok(n) => Ok(buffer[..n].to_vec()),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => Err(e),
            };
            let failed = chunk.is_err();
            if sender.blocking_send(chunk).is_err() || failed {
                return;
            }
        }
    });
    futures::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|chunk| (chunk, receiver))
    })
}
