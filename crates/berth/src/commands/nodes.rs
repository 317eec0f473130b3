//! `berth nodes`: the machines apps run on — status (low nodes flagged), the engine's state and
//! availability, use, capacity and labels; the line that says the cluster needs another node;
//! labels, and draining, pausing and activating (Swarm), by admins.

use std::process::ExitCode;

use berth_api::nodes::{
    NodeAvailabilityDto, NodeDto, NodeLabelsDto, NodeListDto, PlatformEventDto, SpaceDto,
};
use berth_core::node::LabelChange;
use clap::Subcommand;

use super::segment;
use crate::client::Client;
use crate::output::{self, Format};
use crate::units::format_size;

#[derive(Debug, Subcommand)]
pub enum NodesCommand {
    /// One node: status and why, CPU, memory and disks, capacity, labels, recent events
    Show {
        name: String,
        #[arg(short, long, value_enum, default_value = "table")]
        output: Format,
    },
    /// Move a node's instances to other nodes; it takes no new ones (admins; Swarm)
    Drain { name: String },
    /// Keep a node's instances but give it no new ones (admins; Swarm)
    Pause { name: String },
    /// Let a drained or paused node take instances again (admins; Swarm)
    Activate { name: String },
    /// Set (key=value) or remove (key-) labels of a node, e.g. datacenter=dc1 zone=a (admins)
    Label {
        name: String,
        /// key=value sets a label, key- removes it
        #[arg(required = true, value_name = "KEY=VALUE|KEY-")]
        changes: Vec<String>,
    },
}

pub async fn run(
    client: &Client,
    command: Option<NodesCommand>,
    output: Format,
) -> Result<ExitCode, String> {
    match command {
        None => {
            let list: NodeListDto = client.get("/nodes").await?;
            output::one(output, &list, |list| {
                let rows: Vec<Vec<String>> = list.nodes.iter().map(row).collect();
                println!(
                    "{}",
                    output::table(
                        &["NAME", "STATUS", "NODE", "CPU", "MEMORY", "DISKS", "LABELS"],
                        &rows
                    )
                );
                for node in list.nodes.iter().filter(|n| n.status != "ok") {
                    for reason in &node.reasons {
                        println!("{}: {reason}", node.name);
                    }
                }
                if let Some(message) = &list.message {
                    println!("!! {message}");
                }
            });
        }
        Some(NodesCommand::Show { name, output }) => {
            let node: NodeDto = client.get(&format!("/nodes/{}", segment(&name))).await?;
            // Events are for admins: others see the node without them.
            let events: Vec<PlatformEventDto> = client
                .get(&format!("/nodes/{}/events?limit=10", segment(&name)))
                .await
                .unwrap_or_default();
            output::one(output, &node, |node| show(node, &events));
        }
        Some(NodesCommand::Drain { name }) => set_availability(client, &name, "drain").await?,
        Some(NodesCommand::Pause { name }) => set_availability(client, &name, "pause").await?,
        Some(NodesCommand::Activate { name }) => set_availability(client, &name, "active").await?,
        Some(NodesCommand::Label { name, changes }) => {
            let changes = changes
                .iter()
                .map(|c| LabelChange::parse(c))
                .collect::<Result<Vec<_>, _>>()?;
            let path = format!("/nodes/{}", segment(&name));
            let node: NodeDto = client.get(&path).await?;
            let mut labels = node.labels;
            for change in changes {
                change.apply(&mut labels);
            }
            let node: NodeDto = client
                .put(&format!("{path}/labels"), &NodeLabelsDto { labels })
                .await?;
            println!("node {} labels: {}", node.name, labels_text(&node));
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn set_availability(client: &Client, name: &str, availability: &str) -> Result<(), String> {
    let node: NodeDto = client
        .put(
            &format!("/nodes/{}/availability", segment(name)),
            &NodeAvailabilityDto {
                availability: availability.into(),
            },
        )
        .await?;
    let what = match node.availability.as_str() {
        "drain" => "drained: its instances move to other nodes",
        "pause" => "paused: it keeps its instances and takes no new ones",
        _ => "active: it takes instances",
    };
    println!("node {} {what}", node.name);
    Ok(())
}

/// The engine's view of a node: its state, and its availability unless active.
fn engine_state(node: &NodeDto) -> String {
    if node.availability == "active" {
        node.state.clone()
    } else {
        format!("{}, {}", node.state, node.availability)
    }
}

fn status(node: &NodeDto) -> String {
    match node.status.as_str() {
        "low" => "LOW !".into(),
        other => other.into(),
    }
}

fn cpu(node: &NodeDto) -> String {
    let percent = node
        .usage
        .as_ref()
        .and_then(|u| u.cpu_percent)
        .map(|c| format!("{c:.0}%"))
        .unwrap_or_else(|| "-".into());
    format!("{percent} of {}", node.capacity.cpus)
}

fn used(space: &SpaceDto) -> String {
    let flag = if space.low { " !" } else { "" };
    format!(
        "{:.0}% of {}{flag}",
        100.0 - space.free_percent,
        format_size(space.total_bytes)
    )
}

fn memory(node: &NodeDto) -> String {
    node.usage
        .as_ref()
        .and_then(|u| u.memory.as_ref())
        .map(used)
        .unwrap_or_else(|| "-".into())
}

fn disks(node: &NodeDto) -> String {
    let Some(usage) = &node.usage else {
        return "-".into();
    };
    usage
        .disks
        .iter()
        .map(|d| match &d.space {
            Some(space) => format!("{} {}", d.path, used(space)),
            None => format!("{} unknown", d.path),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn labels_text(node: &NodeDto) -> String {
    if node.labels.is_empty() {
        return "-".into();
    }
    node.labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn row(node: &NodeDto) -> Vec<String> {
    vec![
        node.name.clone(),
        status(node),
        engine_state(node),
        cpu(node),
        memory(node),
        disks(node),
        labels_text(node),
    ]
}

fn show(node: &NodeDto, events: &[PlatformEventDto]) {
    let mut fields = vec![
        ("Name", node.name.clone()),
        ("Status", status(node)),
        ("Node", format!("{} ({})", engine_state(node), node.role)),
        (
            "Address",
            node.address.clone().unwrap_or_else(|| "-".into()),
        ),
        ("Engine", node.engine.clone()),
        (
            "Datacenter",
            node.datacenter.clone().unwrap_or_else(|| "-".into()),
        ),
        ("Zone", node.zone.clone().unwrap_or_else(|| "-".into())),
        ("Labels", labels_text(node)),
        (
            "Capacity",
            format!(
                "{} CPUs, {} memory",
                node.capacity.cpus,
                format_size(node.capacity.memory_bytes)
            ),
        ),
        ("CPU", cpu(node)),
        ("Memory", memory(node)),
        (
            "Sampled",
            node.usage
                .as_ref()
                .map(|u| u.sampled_at.clone())
                .unwrap_or_else(|| "never".into()),
        ),
    ];
    if let Some(usage) = &node.usage {
        for disk in &usage.disks {
            let role = match disk.role.as_str() {
                "engine_data_root" => "Engine data",
                _ => "Berth data",
            };
            let value = match &disk.space {
                Some(space) => format!("{} {}", disk.path, used(space)),
                None => format!("{} unknown (not visible from the server)", disk.path),
            };
            fields.push((role, value));
        }
    }
    println!("{}", output::fields(&fields));
    for reason in &node.reasons {
        println!("  {reason}");
    }
    if !events.is_empty() {
        println!("\nEvents:");
        for event in events {
            println!("  {}  {}  {}", event.at, event.kind, event.message);
        }
    }
}
