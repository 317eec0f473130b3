//! `berth node-agent` (hidden): what runs inside the node agent's container on a Swarm node
//! (see `berth_engine::node_agent`). `wait` idles until stopped (the container's process);
//! `read` prints one reading of the host as JSON (each reading is an exec of it).

use std::path::Path;
use std::process::ExitCode;

use berth_controller::host::{self, WatchedDisk};
use berth_core::node::DiskRole;
use berth_engine::node_agent::{DATA_ROOT_ENV, DATA_ROOT_MOUNT, PROC_MOUNT};
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum NodeAgentCommand {
    /// Idle until stopped (SIGTERM or SIGINT): the agent container's process
    Wait,
    /// Print one reading of the host (its /proc at /host/proc, the engine's data root at
    /// /host/data-root) as JSON
    Read,
}

/// The arguments of the container's idle process and of a reading, after the executable.
pub fn agent_arguments() -> (Vec<String>, Vec<String>) {
    let args = |sub: &str| vec!["node-agent".to_owned(), sub.to_owned()];
    (args("wait"), args("read"))
}

pub async fn run(command: NodeAgentCommand) -> Result<ExitCode, String> {
    match command {
        NodeAgentCommand::Wait => {
            use tokio::signal::unix::{SignalKind, signal};
            let mut terminate = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
            let mut interrupt = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
            tokio::select! {
                _ = terminate.recv() => {}
                _ = interrupt.recv() => {}
            }
            Ok(ExitCode::SUCCESS)
        }
        NodeAgentCommand::Read => {
            let named = std::env::var(DATA_ROOT_ENV).unwrap_or_else(|_| DATA_ROOT_MOUNT.into());
            let disks = [WatchedDisk {
                role: DiskRole::EngineDataRoot,
                named: &named,
                seen_at: Path::new(DATA_ROOT_MOUNT),
            }];
            let reading = host::read_host(Path::new(PROC_MOUNT), &disks);
            let printed = serde_json::to_string(&reading).map_err(|e| e.to_string())?;
            println!("{printed}");
            Ok(ExitCode::SUCCESS)
        }
    }
}
