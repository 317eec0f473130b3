//! The command line: `berth server` and the client commands, with their output.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use berth_api::dto::{
    AppChanges, AppDto, EventDto, RevisionDto, RollbackRequest, RolloutDto, ScaleRequest,
    StrategyDto,
};
use clap::{Args, Parser, Subcommand};
use futures::StreamExt;
use std::io::Write;

use berth_api::image_dto::{
    GcReportDto, GcRequest, ImageDto, RepositoryDetailDto, RepositoryDto, RetentionReportDto,
    RetentionRequest, RetentionRuleDto, RetentionRuleRequest, StorageUsageDto,
};

use crate::client::Client;
use crate::config::{self, ServerOptions};
use crate::output::{self, Format};

/// Berth: deploy, roll out, roll back, scale and heal apps on Docker.
///
/// Start the control plane with `berth server`; every other command talks to it over its
/// REST API (`--server`, default http://127.0.0.1:7700) with the admin token that the
/// server prints on first start (`--token` or BERTH_TOKEN; by default read from
/// ./berth-data/admin-token when it is readable).
#[derive(Debug, Parser)]
#[command(name = "berth", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    global: Global,
}

#[derive(Debug, Args)]
struct Global {
    /// URL of the Berth server
    #[arg(
        long,
        global = true,
        env = "BERTH_SERVER",
        default_value = "http://127.0.0.1:7700"
    )]
    server: String,
    /// API token (default: contents of ./berth-data/admin-token, if readable)
    #[arg(long, global = true, env = "BERTH_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

// Parsed once per process: boxing the large variants would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Command {
    /// Run the Berth control plane (API, reconciler, health prober)
    Server {
        /// TOML config file; keys are the option names with '_' (e.g. data_dir = "/var/lib/berth")
        #[arg(long, env = "BERTH_CONFIG")]
        config: Option<PathBuf>,
        #[command(flatten)]
        options: ServerOptions,
    },
    /// Create, list, show and delete apps
    #[command(subcommand)]
    Apps(AppsCommand),
    /// Deploy changes to an app: a new revision, rolled out
    Deploy {
        name: String,
        #[command(flatten)]
        spec: SpecArgs,
        /// Remove an environment variable (repeatable)
        #[arg(long = "unset-env", value_name = "KEY")]
        unset_env: Vec<String>,
        /// Wait for the rollout to finish (exit non-zero if it fails)
        #[arg(long)]
        wait: bool,
    },
    /// Set the number of instances
    Scale { name: String, replicas: u32 },
    /// Roll back to the previous revision, or to --to REVISION
    Rollback {
        name: String,
        #[arg(long = "to", value_name = "REVISION")]
        to: Option<u32>,
        /// Wait for the rollback to finish
        #[arg(long)]
        wait: bool,
    },
    /// Follow a rollout
    #[command(subcommand)]
    Rollout(RolloutCommand),
    /// The built-in registry: search, inspect, delete, storage use, garbage collection
    #[command(subcommand)]
    Images(ImagesCommand),
    /// The app's revisions
    History {
        name: String,
        #[arg(short, long, value_enum, default_value = "table")]
        output: Format,
    },
    /// The app's timeline: what Berth did and why
    Events {
        name: String,
        /// Keep printing new events
        #[arg(short, long)]
        follow: bool,
        /// How many recent events
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[arg(short, long, value_enum, default_value = "table")]
        output: Format,
    },
    /// The output of the app's instances
    Logs {
        name: String,
        /// Keep streaming new lines
        #[arg(short, long)]
        follow: bool,
        /// Lines of history per instance
        #[arg(long, default_value_t = 100)]
        tail: u64,
        /// Only this instance
        #[arg(long)]
        instance: Option<String>,
    },
}

// Parsed once per process: boxing the large variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum AppsCommand {
    /// Create an app and roll out its first revision
    Create {
        name: String,
        #[command(flatten)]
        spec: SpecArgs,
        /// Owning team
        #[arg(long)]
        team: Option<String>,
        /// Wait until the first rollout finishes
        #[arg(long)]
        wait: bool,
    },
    /// List apps
    List {
        #[arg(short, long, value_enum, default_value = "table")]
        output: Format,
    },
    /// Show an app: revision, rollout and instances
    Show {
        name: String,
        #[arg(short, long, value_enum, default_value = "table")]
        output: Format,
    },
    /// Delete an app and its instances
    Delete { name: String },
}

#[derive(Debug, Subcommand)]
enum ImagesCommand {
    /// List (or search) repositories
    List {
        /// Only repositories whose name contains this
        #[arg(long)]
        search: Option<String>,
        #[arg(short, long, value_enum, default_value = "table")]
        output: Format,
    },
    /// Show a repository's tags (team/app) or an image (team/app:tag, team/app@sha256:…)
    Show {
        reference: String,
        #[arg(short, long, value_enum, default_value = "table")]
        output: Format,
    },
    /// Delete a tag (team/app:tag) or an image with all its tags (team/app@sha256:…)
    Delete { reference: String },
    /// Storage used per team and repository
    Usage {
        #[arg(short, long, value_enum, default_value = "table")]
        output: Format,
    },
    /// Garbage-collect: free the disk of blobs no image references
    Gc {
        /// Also delete manifests that no tag reaches
        #[arg(long)]
        untagged: bool,
    },
    /// Apply a retention policy to a repository now
    Retention {
        repository: String,
        /// Keep only the N most recently pushed tags
        #[arg(long)]
        keep: Option<usize>,
        /// Delete untagged manifests older than this, e.g. 7d
        #[arg(long)]
        untagged_older_than: Option<String>,
        /// Store the rule: it is applied before every garbage collection (instead of once now)
        #[arg(long, conflicts_with = "remove")]
        save: bool,
        /// Remove the repository's stored rule
        #[arg(long)]
        remove: bool,
    },
    /// List the stored retention rules
    Rules {
        #[arg(short, long, value_enum, default_value = "table")]
        output: Format,
    },
}

#[derive(Debug, Subcommand)]
enum RolloutCommand {
    /// Wait for the rollout, showing progress; exits non-zero when it failed
    Status {
        name: String,
        /// Give up waiting after this long
        #[arg(long, default_value = "10m")]
        timeout: String,
        /// Print the status once without waiting
        #[arg(long)]
        no_wait: bool,
        #[arg(short, long, value_enum, default_value = "table")]
        output: Format,
    },
}

/// Spec options shared by `apps create` and `deploy`.
#[derive(Debug, Args, Default)]
struct SpecArgs {
    /// Image reference
    #[arg(long)]
    image: Option<String>,
    /// Number of instances
    #[arg(long)]
    replicas: Option<u32>,
    /// Port the app listens on in the container (default 8080)
    #[arg(long)]
    port: Option<u16>,
    /// HTTP path probed for readiness and liveness, e.g. /healthz
    #[arg(long)]
    health_path: Option<String>,
    /// Remove the health checks
    #[arg(long)]
    no_health_check: bool,
    /// Environment variable KEY=VALUE (repeatable)
    #[arg(long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// Container label KEY=VALUE (repeatable)
    #[arg(long = "label", value_name = "KEY=VALUE")]
    labels: Vec<String>,
    /// CPU limit: cores (0.5) or millicores (500m); 0 removes it
    #[arg(long)]
    cpu: Option<String>,
    /// Memory limit: bytes or with a unit (256Mi, 1G); 0 removes it
    #[arg(long)]
    memory: Option<String>,
    /// Entrypoint override (repeat for each word)
    #[arg(long = "command", value_name = "WORD")]
    command: Vec<String>,
    /// Argument (cmd) override (repeat for each word)
    #[arg(long = "arg", value_name = "WORD")]
    args: Vec<String>,
    /// Another app this one depends on (repeatable)
    #[arg(long = "depends-on", value_name = "APP")]
    dependencies: Vec<String>,
    /// Rollout: instances above replicas
    #[arg(long)]
    max_surge: Option<u32>,
    /// Rollout: available instances below replicas
    #[arg(long)]
    max_unavailable: Option<u32>,
    /// Rollout: how long a new instance must stay ready to count, e.g. 5s
    #[arg(long)]
    min_ready: Option<String>,
    /// Rollout: fail and roll back when no progress for this long, e.g. 60s
    #[arg(long)]
    progress_deadline: Option<String>,
    /// Grace period between SIGTERM and SIGKILL, e.g. 10s
    #[arg(long)]
    stop_grace: Option<String>,
    /// Why (recorded on the revision)
    #[arg(long)]
    reason: Option<String>,
}

fn key_values(flag: &str, items: &[String]) -> Result<BTreeMap<String, Option<String>>, String> {
    items
        .iter()
        .map(|item| match item.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), Some(v.to_string()))),
            _ => Err(format!("--{flag} {item:?}: expected KEY=VALUE")),
        })
        .collect()
}

fn millis(flag: &str, value: &Option<String>) -> Result<Option<u64>, String> {
    value
        .as_ref()
        .map(|v| {
            humantime::parse_duration(v)
                .map(|d| d.as_millis() as u64)
                .map_err(|e| format!("--{flag} {v:?}: not a duration such as 500ms or 30s ({e})"))
        })
        .transpose()
}

/// Parses a CPU amount: `0.5` cores or `500m` millicores.
pub fn parse_cpu(text: &str) -> Result<u64, String> {
    let text = text.trim();
    if let Some(millis) = text.strip_suffix('m') {
        return millis
            .parse()
            .map_err(|_| format!("--cpu {text:?}: expected cores (0.5) or millicores (500m)"));
    }
    match text.parse::<f64>() {
        Ok(cores) if cores >= 0.0 && cores.is_finite() => Ok((cores * 1000.0).round() as u64),
        _ => Err(format!(
            "--cpu {text:?}: expected cores (0.5) or millicores (500m)"
        )),
    }
}

/// Parses a memory amount: bytes, or with a unit (k, M, G, Ki, Mi, Gi).
pub fn parse_memory(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let multiplier: u64 = match unit.trim() {
        "" | "b" | "B" => 1,
        "k" | "K" | "kB" | "KB" => 1_000,
        "M" | "MB" => 1_000_000,
        "G" | "GB" => 1_000_000_000,
        "Ki" | "KiB" => 1 << 10,
        "Mi" | "MiB" => 1 << 20,
        "Gi" | "GiB" => 1 << 30,
        _ => {
            return Err(format!(
                "--memory {text:?}: unknown unit (use bytes, k, M, G, Ki, Mi or Gi)"
            ));
        }
    };
    match number.parse::<f64>() {
        Ok(n) if n >= 0.0 && n.is_finite() => Ok((n * multiplier as f64).round() as u64),
        _ => Err(format!(
            "--memory {text:?}: expected a number with an optional unit, e.g. 256Mi"
        )),
    }
}

impl SpecArgs {
    fn into_changes(self, unset_env: &[String]) -> Result<AppChanges, String> {
        let mut env = key_values("env", &self.env)?;
        for key in unset_env {
            env.insert(key.clone(), None);
        }
        let labels = key_values("label", &self.labels)?;
        let strategy = StrategyDto {
            max_surge: self.max_surge,
            max_unavailable: self.max_unavailable,
            min_ready_ms: millis("min-ready", &self.min_ready)?,
            progress_deadline_ms: millis("progress-deadline", &self.progress_deadline)?,
        };
        let has_strategy = strategy.max_surge.is_some()
            || strategy.max_unavailable.is_some()
            || strategy.min_ready_ms.is_some()
            || strategy.progress_deadline_ms.is_some();
        Ok(AppChanges {
            image: self.image,
            replicas: self.replicas,
            port: self.port,
            health_path: self.health_path,
            no_health_check: self.no_health_check.then_some(true),
            env: (!env.is_empty()).then_some(env),
            labels: (!labels.is_empty()).then_some(labels),
            cpu_millis: self.cpu.as_deref().map(parse_cpu).transpose()?,
            memory_bytes: self.memory.as_deref().map(parse_memory).transpose()?,
            command: (!self.command.is_empty()).then_some(self.command),
            args: (!self.args.is_empty()).then_some(self.args),
            dependencies: (!self.dependencies.is_empty()).then_some(self.dependencies),
            strategy: has_strategy.then_some(strategy),
            stop_grace_ms: millis("stop-grace", &self.stop_grace)?,
            reason: self.reason,
            ..AppChanges::default()
        })
    }
}

fn client(global: &Global) -> Result<Client, String> {
    let token = global.token.clone().or_else(|| {
        std::fs::read_to_string("berth-data/admin-token")
            .ok()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
    });
    Client::new(&global.server, token)
}

pub async fn run(cli: Cli) -> Result<ExitCode, String> {
    let Cli { command, global } = cli;
    if let Command::Server { config, options } = command {
        let config = config::resolve(options, config.as_deref())?;
        crate::server::run(config).await?;
        return Ok(ExitCode::SUCCESS);
    }
    let client = client(&global)?;
    match command {
        Command::Server { .. } => unreachable!("handled above"),
        Command::Apps(AppsCommand::Create {
            name,
            spec,
            team,
            wait,
        }) => {
            let mut changes = spec.into_changes(&[])?;
            changes.name = Some(name.clone());
            changes.team = team;
            let app: AppDto = client.post("/apps", &changes).await?;
            println!(
                "app {} created: revision {} rolling out to {} instances",
                app.name, app.current_revision, app.replicas
            );
            if wait {
                return wait_for_rollout(&client, &name, Duration::from_secs(600)).await;
            }
        }
        Command::Apps(AppsCommand::List { output }) => {
            let apps: Vec<AppDto> = client.get("/apps").await?;
            match output {
                Format::Json => output::json(&apps),
                Format::Table => {
                    let rows: Vec<Vec<String>> = apps
                        .iter()
                        .map(|a| {
                            vec![
                                a.name.clone(),
                                a.team.clone(),
                                format!("{}/{}", a.ready_instances, a.replicas),
                                a.current_revision.to_string(),
                                a.rollout.phase.clone(),
                                a.template.image.clone(),
                            ]
                        })
                        .collect();
                    println!(
                        "{}",
                        output::table(
                            &["NAME", "TEAM", "READY", "REVISION", "ROLLOUT", "IMAGE"],
                            &rows
                        )
                    );
                }
            }
        }
        Command::Apps(AppsCommand::Show { name, output }) => {
            let app: AppDto = client.get(&format!("/apps/{name}")).await?;
            match output {
                Format::Json => output::json(&app),
                Format::Table => print_app(&app),
            }
        }
        Command::Apps(AppsCommand::Delete { name }) => {
            client.delete(&format!("/apps/{name}")).await?;
            println!("app {name} deleted");
        }
        Command::Deploy {
            name,
            spec,
            unset_env,
            wait,
        } => {
            let changes = spec.into_changes(&unset_env)?;
            let before: AppDto = client.get(&format!("/apps/{name}")).await?;
            let app: AppDto = client
                .post(&format!("/apps/{name}/deploy"), &changes)
                .await?;
            if app.current_revision != before.current_revision {
                println!(
                    "app {name}: revision {} rolling out ({})",
                    app.current_revision, app.rollout.message
                );
            } else if app.replicas != before.replicas
                || app.strategy.max_surge != before.strategy.max_surge
            {
                println!("app {name}: settings updated (no new revision)");
            } else {
                println!("app {name}: nothing changed");
            }
            if wait {
                return wait_for_rollout(&client, &name, Duration::from_secs(600)).await;
            }
        }
        Command::Scale { name, replicas } => {
            let app: AppDto = client
                .post(&format!("/apps/{name}/scale"), &ScaleRequest { replicas })
                .await?;
            println!(
                "app {name} scaled to {} instances ({} ready now)",
                app.replicas, app.ready_instances
            );
        }
        Command::Rollback { name, to, wait } => {
            let app: AppDto = client
                .post(
                    &format!("/apps/{name}/rollback"),
                    &RollbackRequest {
                        revision: to,
                        reason: None,
                    },
                )
                .await?;
            println!(
                "app {name}: rolling back to revision {}",
                app.current_revision
            );
            if wait {
                return wait_for_rollout(&client, &name, Duration::from_secs(600)).await;
            }
        }
        Command::Rollout(RolloutCommand::Status {
            name,
            timeout,
            no_wait,
            output,
        }) => {
            if no_wait || output == Format::Json {
                let rollout: RolloutDto = client.get(&format!("/apps/{name}/rollout")).await?;
                match output {
                    Format::Json => output::json(&rollout),
                    Format::Table => println!("{}", describe_rollout(&rollout)),
                }
                return Ok(rollout_exit(&rollout));
            }
            let timeout = humantime::parse_duration(&timeout)
                .map_err(|e| format!("--timeout {timeout:?}: {e}"))?;
            return wait_for_rollout(&client, &name, timeout).await;
        }
        Command::Images(command) => return images(&client, command).await,
        Command::History { name, output } => {
            let revisions: Vec<RevisionDto> =
                client.get(&format!("/apps/{name}/revisions")).await?;
            match output {
                Format::Json => output::json(&revisions),
                Format::Table => {
                    let rows: Vec<Vec<String>> = revisions
                        .iter()
                        .map(|r| {
                            vec![
                                format!("{}{}", r.number, if r.current { " *" } else { "" }),
                                r.created_at.clone(),
                                r.created_by.clone(),
                                r.template.image.clone(),
                                r.reason.clone(),
                            ]
                        })
                        .collect();
                    println!(
                        "{}",
                        output::table(&["REVISION", "CREATED", "BY", "IMAGE", "REASON"], &rows)
                    );
                }
            }
        }
        Command::Events {
            name,
            follow,
            limit,
            output,
        } => {
            let mut events: Vec<EventDto> = client
                .get(&format!("/apps/{name}/events?limit={limit}"))
                .await?;
            if output == Format::Json && !follow {
                output::json(&events);
                return Ok(ExitCode::SUCCESS);
            }
            let mut last = 0;
            loop {
                for event in &events {
                    match output {
                        Format::Json => {
                            println!("{}", serde_json::to_string(event).unwrap_or_default())
                        }
                        Format::Table => {
                            println!("{}  {:<20} {}", event.at, event.kind, event.message)
                        }
                    }
                    last = event.id;
                }
                if !follow {
                    break;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
                events = client
                    .get(&format!("/apps/{name}/events?after={last}&limit=1000"))
                    .await?;
            }
        }
        Command::Logs {
            name,
            follow,
            tail,
            instance,
        } => {
            let mut path = format!("/apps/{name}/logs?follow={follow}&tail={tail}");
            if let Some(instance) = instance {
                path.push_str(&format!("&instance={instance}"));
            }
            let response = client.stream(&path).await?;
            let mut body = response.bytes_stream();
            let mut stdout = std::io::stdout();
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| format!("log stream broke: {e}"))?;
                stdout.write_all(&chunk).map_err(|e| e.to_string())?;
                stdout.flush().map_err(|e| e.to_string())?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1_000_000.0)
}

async fn images(client: &Client, command: ImagesCommand) -> Result<ExitCode, String> {
    match command {
        ImagesCommand::List { search, output } => {
            let path = match &search {
                Some(term) => format!("/images?search={}", encode_query(term)),
                None => "/images".to_string(),
            };
            let repositories: Vec<RepositoryDto> = client.get(&path).await?;
            match output {
                Format::Json => output::json(&repositories),
                Format::Table => {
                    let rows: Vec<Vec<String>> = repositories
                        .iter()
                        .map(|r| {
                            vec![
                                r.name.clone(),
                                r.tag_count.to_string(),
                                megabytes(r.size_bytes),
                                r.last_pushed.clone().unwrap_or_default(),
                            ]
                        })
                        .collect();
                    println!(
                        "{}",
                        output::table(&["REPOSITORY", "TAGS", "SIZE", "LAST PUSHED"], &rows)
                    );
                }
            }
        }
        ImagesCommand::Show { reference, output } => {
            let value: serde_json::Value = client.get(&format!("/images/{reference}")).await?;
            if output == Format::Json {
                output::json(&value);
            } else if value.get("tags").is_some_and(|t| t.is_array())
                && value.get("digest").is_none()
            {
                let repository: RepositoryDetailDto =
                    serde_json::from_value(value).map_err(|e| format!("unexpected answer: {e}"))?;
                println!(
                    "repository: {} ({})\n",
                    repository.name,
                    megabytes(repository.size_bytes)
                );
                let rows: Vec<Vec<String>> = repository
                    .tags
                    .iter()
                    .map(|t| {
                        vec![
                            t.tag.clone(),
                            t.digest.clone(),
                            megabytes(t.size_bytes),
                            t.created.clone().unwrap_or_default(),
                        ]
                    })
                    .collect();
                println!(
                    "{}",
                    output::table(&["TAG", "DIGEST", "SIZE", "CREATED"], &rows)
                );
            } else {
                let image: ImageDto =
                    serde_json::from_value(value).map_err(|e| format!("unexpected answer: {e}"))?;
                print_image(&image);
            }
        }
        ImagesCommand::Delete { reference } => {
            client.delete(&format!("/images/{reference}")).await?;
            println!("deleted {reference}; run `berth images gc` to free the disk now");
        }
        ImagesCommand::Usage { output } => {
            let usage: StorageUsageDto = client.get("/registry/usage").await?;
            match output {
                Format::Json => output::json(&usage),
                Format::Table => {
                    println!(
                        "referenced: {}   on disk: {}\n",
                        megabytes(usage.total_bytes),
                        megabytes(usage.stored_bytes)
                    );
                    let rows: Vec<Vec<String>> =
                        usage
                            .teams
                            .iter()
                            .map(|t| vec!["team".into(), t.name.clone(), megabytes(t.bytes)])
                            .chain(usage.repositories.iter().map(|r| {
                                vec!["repository".into(), r.name.clone(), megabytes(r.bytes)]
                            }))
                            .collect();
                    println!("{}", output::table(&["KIND", "NAME", "SIZE"], &rows));
                }
            }
        }
        ImagesCommand::Gc { untagged } => {
            let report: GcReportDto = client
                .post(
                    "/registry/gc",
                    &GcRequest {
                        delete_untagged_manifests: Some(untagged),
                    },
                )
                .await?;
            println!(
                "freed {} in {} blobs ({} untagged manifests deleted, {} recent blobs spared) in {} ms",
                megabytes(report.bytes_freed),
                report.blobs_deleted,
                report.manifests_deleted,
                report.blobs_spared,
                report.duration_ms
            );
        }
        ImagesCommand::Retention {
            repository,
            keep,
            untagged_older_than,
            save,
            remove,
        } => {
            let older = millis("untagged-older-than", &untagged_older_than)?;
            if remove {
                client
                    .delete(&format!("/registry/retention-rules/{repository}"))
                    .await?;
                println!("retention rule of {repository} removed");
            } else if save {
                let request = RetentionRuleRequest {
                    keep_newest_tags: keep.map(|k| k.min(u32::MAX as usize) as u32),
                    delete_untagged_older_than_ms: older,
                };
                let rule: RetentionRuleDto = client
                    .put(&format!("/registry/retention-rules/{repository}"), &request)
                    .await?;
                println!(
                    "retention rule of {} saved; it runs before every garbage collection",
                    rule.repository
                );
            } else {
                let request = RetentionRequest {
                    repository,
                    keep_newest_tags: keep,
                    delete_untagged_older_than_ms: older,
                };
                let report: RetentionReportDto =
                    client.post("/registry/retention", &request).await?;
                println!(
                    "deleted {} tags ({}) and {} untagged manifests",
                    report.tags_deleted.len(),
                    report.tags_deleted.join(", "),
                    report.manifests_deleted.len()
                );
            }
        }
        ImagesCommand::Rules { output } => {
            let rules: Vec<RetentionRuleDto> = client.get("/registry/retention-rules").await?;
            match output {
                Format::Json => output::json(&rules),
                Format::Table => {
                    let rows: Vec<Vec<String>> = rules
                        .iter()
                        .map(|r| {
                            vec![
                                r.repository.clone(),
                                r.keep_newest_tags.map_or("-".into(), |k| k.to_string()),
                                r.delete_untagged_older_than_ms.map_or("-".into(), |ms| {
                                    humantime::format_duration(std::time::Duration::from_millis(ms))
                                        .to_string()
                                }),
                            ]
                        })
                        .collect();
                    println!(
                        "{}",
                        output::table(&["REPOSITORY", "KEEP TAGS", "UNTAGGED OLDER THAN"], &rows)
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Percent-encodes a query value (only what can break a URL query).
fn encode_query(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn print_image(image: &ImageDto) {
    println!("image:      {}@{}", image.repository, image.digest);
    println!("tags:       {}", image.tags.join(", "));
    println!("media type: {}", image.media_type);
    println!("size:       {}", megabytes(image.size_bytes));
    println!("pushed:     {}", image.pushed_at);
    for platform in &image.platforms {
        println!(
            "platform:   {}/{} {}",
            platform.os, platform.architecture, platform.digest
        );
    }
    if let Some(config) = &image.config {
        println!("created:    {}", config.created.clone().unwrap_or_default());
        println!(
            "platform:   {}/{}",
            config.os.clone().unwrap_or_default(),
            config.architecture.clone().unwrap_or_default()
        );
        println!(
            "entrypoint: {:?}",
            config.entrypoint.clone().unwrap_or_default()
        );
        println!("cmd:        {:?}", config.cmd.clone().unwrap_or_default());
        println!("ports:      {}", config.exposed_ports.join(", "));
        for env in &config.env {
            println!("env:        {env}");
        }
        for (key, value) in &config.labels {
            println!("label:      {key}={value}");
        }
    }
    println!();
    let rows: Vec<Vec<String>> = image
        .layers
        .iter()
        .map(|l| vec![l.digest.clone(), megabytes(l.size), l.media_type.clone()])
        .collect();
    println!("{}", output::table(&["LAYER", "SIZE", "MEDIA TYPE"], &rows));
    if let Some(config) = &image.config
        && !config.history.is_empty()
    {
        println!();
        let rows: Vec<Vec<String>> = config
            .history
            .iter()
            .map(|h| {
                vec![
                    h.created.clone().unwrap_or_default(),
                    h.created_by.clone().unwrap_or_default(),
                ]
            })
            .collect();
        println!("{}", output::table(&["CREATED", "CREATED BY"], &rows));
    }
}

fn print_app(app: &AppDto) {
    println!("name:       {}", app.name);
    println!("team:       {}", app.team);
    println!("image:      {}", app.template.image);
    println!(
        "revision:   {} (stable: {})",
        app.current_revision,
        app.stable_revision.map_or("none".into(), |r| r.to_string())
    );
    println!("instances:  {}/{} ready", app.ready_instances, app.replicas);
    println!("rollout:    {}", describe_rollout(&app.rollout));
    if let Some(error) = &app.engine_error {
        println!("engine:     {error}");
    }
    println!();
    let rows: Vec<Vec<String>> = app
        .instances
        .iter()
        .map(|i| {
            let mut state = i.phase.clone();
            if let Some(code) = i.exit_code {
                state = format!("exited ({code})");
            }
            if let Some(until) = &i.backoff_until {
                state = format!("{state}, crash-loop backoff until {until}");
            }
            vec![
                i.name.clone(),
                i.revision.to_string(),
                state,
                i.readiness.clone(),
                i.liveness.clone(),
                i.restarts.to_string(),
                i.address.clone().unwrap_or_default(),
                i.node.clone(),
            ]
        })
        .collect();
    println!(
        "{}",
        output::table(
            &[
                "INSTANCE",
                "REV",
                "STATE",
                "READINESS",
                "LIVENESS",
                "RESTARTS",
                "ADDRESS",
                "NODE"
            ],
            &rows
        )
    );
}

fn describe_rollout(r: &RolloutDto) -> String {
    format!(
        "revision {} {}: {}/{} updated, {} ready, {} old — {}",
        r.revision, r.phase, r.updated, r.desired, r.ready, r.old, r.message
    )
}

fn rollout_exit(r: &RolloutDto) -> ExitCode {
    if r.failed {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}

/// Prints progress until the rollout is done; non-zero exit when it failed or timed out.
async fn wait_for_rollout(
    client: &Client,
    name: &str,
    timeout: Duration,
) -> Result<ExitCode, String> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last = String::new();
    loop {
        let rollout: RolloutDto = client.get(&format!("/apps/{name}/rollout")).await?;
        let line = describe_rollout(&rollout);
        if line != last {
            println!("{line}");
            last = line;
        }
        if rollout.done {
            return Ok(rollout_exit(&rollout));
        }
        if tokio::time::Instant::now() >= deadline {
            eprintln!(
                "error: rollout of {name} still in progress after {}",
                humantime::format_duration(timeout)
            );
            return Ok(ExitCode::from(3));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_amounts() {
        let cases = [
            ("500m", Ok(500)),
            ("0.5", Ok(500)),
            ("2", Ok(2000)),
            ("0", Ok(0)),
            ("abc", Err(())),
            ("-1", Err(())),
            ("1.5m", Err(())),
        ];
        for (text, want) in cases {
            assert_eq!(parse_cpu(text).map_err(|_| ()), want, "{text}");
        }
    }

    #[test]
    fn memory_amounts() {
        let cases = [
            ("256Mi", Ok(256 << 20)),
            ("1G", Ok(1_000_000_000)),
            ("1024", Ok(1024)),
            ("1.5Gi", Ok(3 << 29)),
            ("12x", Err(())),
            ("Mi", Err(())),
        ];
        for (text, want) in cases {
            assert_eq!(parse_memory(text).map_err(|_| ()), want, "{text}");
        }
    }

    #[test]
    fn env_pairs() {
        assert_eq!(
            key_values("env", &["A=1".into(), "B=x=y".into(), "C=".into()])
                .unwrap()
                .len(),
            3
        );
        assert!(key_values("env", &["=1".into()]).is_err());
        assert!(key_values("env", &["NOEQ".into()]).is_err());
    }

    #[test]
    fn cli_parses() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
