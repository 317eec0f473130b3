//! App commands: create, list, show, delete, deploy, scale, roll back, follow rollouts, and read
//! history, events and logs.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use berth_api::dto::{
    AppChanges, AppDto, CanaryDto, CanaryHeaderDto, EventDto, ProbeDto, RevisionDto,
    RollbackRequest, RolloutDto, RolloutKindDto, ScaleRequest, SecretRefDto, StrategyDto,
    TemplateDto, VolumeMountDto,
};
use berth_core::team_secret::SecretRef;
use berth_core::volume::VolumeMount;
use clap::{Args, Subcommand, ValueEnum};
use futures::StreamExt;

use super::probes::{self, LiveArgs, ReadyArgs, Role};
use crate::client::Client;
use crate::output::{self, Format};
use crate::units::{self, millis};

/// The app commands, at the top level of `berth`.
// Parsed once per process: boxing the large variants would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum AppCommand {
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
pub enum AppsCommand {
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
    /// Delete an app and its instances (its volumes stay unless --delete-volumes)
    Delete {
        name: String,
        /// Also delete the volumes it mounts, with their data (refused while another app
        /// mounts one)
        #[arg(long)]
        delete_volumes: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum RolloutCommand {
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
/// How a new revision replaces the old one (`--strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum StrategyKind {
    Rolling,
    Recreate,
}

#[derive(Debug, Args, Default)]
pub struct SpecArgs {
    /// Image reference
    #[arg(long)]
    image: Option<String>,
    /// Number of instances
    #[arg(long)]
    replicas: Option<u32>,
    /// Port the app listens on in the container (default 8080)
    #[arg(long)]
    port: Option<u16>,
    /// HTTP path probed for readiness and liveness, e.g. /healthz (the --ready-… and --live-…
    /// flags change either probe from there)
    #[arg(long)]
    health_path: Option<String>,
    /// Remove the health checks
    #[arg(long)]
    no_health_check: bool,
    #[command(flatten)]
    readiness: ReadyArgs,
    #[command(flatten)]
    liveness: LiveArgs,
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
    /// A volume of the app's team to mount, NAME:PATH[:OPTIONS] with OPTIONS from ro,
    /// per-instance (a store per instance instead of one shared by all), e.g.
    /// data:/var/lib/app (repeatable; replaces the app's mounts; made when first mounted)
    #[arg(long = "volume", value_name = "NAME:PATH[:OPTIONS]")]
    volumes: Vec<String>,
    /// Unmount every volume (the volumes and their data stay)
    #[arg(long, conflicts_with = "volumes")]
    no_volumes: bool,
    /// A secret of the app's team as an environment variable, VAR=SECRET, e.g.
    /// DB_PASSWORD=db-password (repeatable; with --secret-file, replaces the app's secrets)
    #[arg(long = "secret", value_name = "VAR=SECRET")]
    secret_env: Vec<String>,
    /// A secret of the app's team as a read-only file, /PATH=SECRET, e.g.
    /// /run/secrets/tls=tls-cert (repeatable; with --secret, replaces the app's secrets)
    #[arg(long = "secret-file", value_name = "/PATH=SECRET")]
    secret_files: Vec<String>,
    /// Stop giving the app any secret
    #[arg(long, conflicts_with_all = ["secret_env", "secret_files"])]
    no_secrets: bool,
    /// An environment variable whose value viewers see as <redacted> (repeatable; replaces
    /// the set; --no-sensitive-env clears it)
    #[arg(long = "sensitive-env", value_name = "KEY")]
    sensitive_env: Vec<String>,
    /// No variable is redacted for viewers any more
    #[arg(long, conflicts_with = "sensitive_env")]
    no_sensitive_env: bool,
    /// A condition on the labels of the nodes instances run on, LABEL==VALUE or LABEL!=VALUE,
    /// e.g. disk==ssd (repeatable; replaces the app's; every one must hold)
    #[arg(long = "node-constraint", value_name = "LABEL==VALUE")]
    node_constraints: Vec<String>,
    /// Let instances run on any node again
    #[arg(long, conflicts_with = "node_constraints")]
    no_node_constraints: bool,
    /// Rollout: `rolling` (new instances beside the old ones, no downtime) or `recreate` (every old instance stops first: downtime, but never two revisions at once, e.g. for a volume with one writer)
    #[arg(long, value_enum, value_name = "KIND")]
    strategy: Option<StrategyKind>,
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
    /// Rollout: try each new revision as a canary first: one extra instance takes this share
    /// of requests (e.g. 10%) for --canary-duration, and the rollout goes on only when its
    /// error rate is no worse than the old revision's (else it rolls back)
    #[arg(long, value_name = "PERCENT", conflicts_with_all = ["no_canary", "canary_header"])]
    canary: Option<String>,
    /// Rollout: a canary that takes only the requests carrying this header, e.g.
    /// 'x-canary: 1' (instead of a share)
    #[arg(long, value_name = "NAME: VALUE", conflicts_with = "no_canary")]
    canary_header: Option<String>,
    /// Rollout: how long the canary takes traffic before its verdict, 5s to 24h [default: 5m]
    #[arg(long, value_name = "DURATION", conflicts_with = "no_canary")]
    canary_duration: Option<String>,
    /// Rollout: no canary (new revisions roll out at once)
    #[arg(long)]
    no_canary: bool,
    /// Grace period between SIGTERM and SIGKILL, e.g. 10s
    #[arg(long)]
    stop_grace: Option<String>,
    /// A custom domain, with an optional path prefix: shop.example.com,
    /// shop.example.com/api or a wildcard '*.shop.example.com' (repeatable; replaces the app's
    /// domains)
    #[arg(long = "domain", value_name = "DOMAIN")]
    domains: Vec<String>,
    /// Remove every custom domain (the default host stays)
    #[arg(long, conflicts_with = "domains")]
    no_domains: bool,
    /// No external route: only apps of the same team reach it, by name
    #[arg(long, conflicts_with_all = ["external", "domains"])]
    internal: bool,
    /// Reachable from outside again, at its default host and domains
    #[arg(long)]
    external: bool,
    /// Redirect plain HTTP to HTTPS (308) on the app's hosts that have a certificate
    #[arg(long, conflicts_with = "no_https_redirect")]
    https_redirect: bool,
    /// Serve plain HTTP again on every host (no redirect to HTTPS)
    #[arg(long)]
    no_https_redirect: bool,
    /// Publish a container port on a host port of the Berth server, as plain TCP bypassing the
    /// HTTP router: 5432 (Berth chooses the host port) or 15432:5432 (repeatable; replaces the
    /// app's TCP ports)
    #[arg(long = "tcp-port", value_name = "[HOST:]PORT")]
    tcp_ports: Vec<String>,
    /// Remove every published TCP port
    #[arg(long, conflicts_with = "tcp_ports")]
    no_tcp_ports: bool,
    /// Scale to 0 instances after this long without a request through the router (e.g. 15m;
    /// at least 10s); the next request starts the app again and waits for it. `off` removes it
    #[arg(long, value_name = "DURATION|off")]
    idle_timeout: Option<String>,
    /// Why (recorded on the revision)
    #[arg(long)]
    reason: Option<String>,
}

/// How long a canary takes traffic when `--canary-duration` is not given.
const DEFAULT_CANARY_SECONDS: u64 = 300;

/// The canary setting the flags ask for: `None` keeps the app's, `Some(None)` turns it off.
fn canary_change(
    share: Option<&str>,
    header: Option<&str>,
    duration: &Option<String>,
    off: bool,
) -> Result<Option<Option<CanaryDto>>, String> {
    if off {
        return Ok(Some(None));
    }
    if share.is_none() && header.is_none() {
        if duration.is_some() {
            return Err("--canary-duration: give --canary PERCENT or --canary-header too".into());
        }
        return Ok(None);
    }
    let weight_percent = share
        .map(|text| {
            units::parse_percent(text)
                .ok()
                .and_then(|n| u8::try_from(n).ok())
                .ok_or_else(|| {
                    format!("--canary {text:?}: expected a share of requests such as 10%")
                })
        })
        .transpose()?;
    let header = header
        .map(|text| match text.split_once(':') {
            Some((name, value)) if !name.trim().is_empty() && !value.trim().is_empty() => {
                Ok(CanaryHeaderDto {
                    name: name.trim().to_string(),
                    value: value.trim().to_string(),
                })
            }
            _ => Err(format!(
                "--canary-header {text:?}: expected NAME: VALUE such as 'x-canary: 1'"
            )),
        })
        .transpose()?;
    let duration_ms = millis("canary-duration", duration)?.unwrap_or(DEFAULT_CANARY_SECONDS * 1000);
    Ok(Some(Some(CanaryDto {
        weight_percent,
        header,
        duration_seconds: duration_ms.div_ceil(1000),
    })))
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

impl SpecArgs {
    /// The request these flags make; `current` is the template of the app a deploy changes
    /// (probe flags change its probes' settings, the rest of each probe stays).
    fn into_changes(
        self,
        unset_env: &[String],
        current: Option<&TemplateDto>,
    ) -> Result<AppChanges, String> {
        // The base the probe flags change: what --health-path or --no-health-check set in this
        // same request, else the app's current probe.
        let base = |probe: Option<&Option<ProbeDto>>| -> Option<ProbeDto> {
            if let Some(path) = &self.health_path {
                Some(ProbeDto {
                    path: Some(path.clone()),
                    ..ProbeDto::default()
                })
            } else if self.no_health_check {
                None
            } else {
                probe.cloned().flatten()
            }
        };
        let readiness = self.readiness.change(base(current.map(|t| &t.readiness)))?;
        let liveness = self.liveness.change(base(current.map(|t| &t.liveness)))?;
        let mut env = key_values("env", &self.env)?;
        for key in unset_env {
            env.insert(key.clone(), None);
        }
        let labels = key_values("label", &self.labels)?;
        let strategy = StrategyDto {
            kind: self.strategy.map(|kind| match kind {
                StrategyKind::Rolling => RolloutKindDto::Rolling,
                StrategyKind::Recreate => RolloutKindDto::Recreate,
            }),
            max_surge: self.max_surge,
            max_unavailable: self.max_unavailable,
            min_ready_ms: millis("min-ready", &self.min_ready)?,
            progress_deadline_ms: millis("progress-deadline", &self.progress_deadline)?,
            canary: canary_change(
                self.canary.as_deref(),
                self.canary_header.as_deref(),
                &self.canary_duration,
                self.no_canary,
            )?,
        };
        let has_strategy = strategy != StrategyDto::default();
        Ok(AppChanges {
            image: self.image,
            replicas: self.replicas,
            port: self.port,
            health_path: self.health_path,
            no_health_check: self.no_health_check.then_some(true),
            readiness,
            liveness,
            env: (!env.is_empty()).then_some(env),
            labels: (!labels.is_empty()).then_some(labels),
            cpu_millis: self
                .cpu
                .as_deref()
                .map(|v| units::flag("cpu", v, units::parse_cpu))
                .transpose()?,
            memory_bytes: self
                .memory
                .as_deref()
                .map(|v| units::flag("memory", v, units::parse_size))
                .transpose()?,
            command: (!self.command.is_empty()).then_some(self.command),
            args: (!self.args.is_empty()).then_some(self.args),
            dependencies: (!self.dependencies.is_empty()).then_some(self.dependencies),
            strategy: has_strategy.then_some(strategy),
            stop_grace_ms: millis("stop-grace", &self.stop_grace)?,
            reason: self.reason,
            domains: if self.no_domains {
                Some(Vec::new())
            } else {
                (!self.domains.is_empty()).then_some(self.domains)
            },
            internal: if self.internal {
                Some(true)
            } else {
                self.external.then_some(false)
            },
            https_redirect: if self.https_redirect {
                Some(true)
            } else {
                self.no_https_redirect.then_some(false)
            },
            tcp_ports: if self.no_tcp_ports {
                Some(Vec::new())
            } else {
                (!self.tcp_ports.is_empty()).then_some(self.tcp_ports)
            },
            idle_timeout_seconds: self
                .idle_timeout
                .as_deref()
                .map(|v| units::flag("idle-timeout", v, units::parse_idle_timeout))
                .transpose()?,
            volumes: if self.no_volumes {
                Some(Vec::new())
            } else if self.volumes.is_empty() {
                None
            } else {
                Some(
                    self.volumes
                        .iter()
                        .map(|text| {
                            VolumeMount::parse(text)
                                .map(|m| VolumeMountDto::from(&m))
                                .map_err(|e| format!("--volume: {e}"))
                        })
                        .collect::<Result<_, _>>()?,
                )
            },
            secrets: if self.no_secrets {
                Some(Vec::new())
            } else if self.secret_env.is_empty() && self.secret_files.is_empty() {
                None
            } else {
                let env = self
                    .secret_env
                    .iter()
                    .map(|t| SecretRef::parse_env(t).map_err(|e| format!("--secret: {e}")));
                let files = self
                    .secret_files
                    .iter()
                    .map(|t| SecretRef::parse_file(t).map_err(|e| format!("--secret-file: {e}")));
                Some(
                    env.chain(files)
                        .map(|r| r.map(|r| SecretRefDto::from(&r)))
                        .collect::<Result<_, _>>()?,
                )
            },
            sensitive_env: if self.no_sensitive_env {
                Some(Vec::new())
            } else {
                (!self.sensitive_env.is_empty()).then_some(self.sensitive_env)
            },
            node_constraints: if self.no_node_constraints {
                Some(Vec::new())
            } else {
                (!self.node_constraints.is_empty()).then_some(self.node_constraints)
            },
            ..AppChanges::default()
        })
    }
}

pub async fn run(client: &Client, command: AppCommand) -> Result<ExitCode, String> {
    match command {
        AppCommand::Apps(command) => return apps(client, command).await,
        AppCommand::Deploy {
            name,
            spec,
            unset_env,
            wait,
        } => {
            let before: AppDto = client.get(&format!("/apps/{name}")).await?;
            let changes = spec.into_changes(&unset_env, Some(&before.template))?;
            let app: AppDto = client
                .post(&format!("/apps/{name}/deploy"), &changes)
                .await?;
            if app.current_revision != before.current_revision {
                println!(
                    "app {name}: revision {} rolling out ({})",
                    app.current_revision, app.rollout.message
                );
            } else if app.replicas != before.replicas
                || app.strategy != before.strategy
                || app.internal != before.internal
                || app.https_redirect != before.https_redirect
                || domain_names(&app) != domain_names(&before)
                || tcp_addresses(&app) != tcp_addresses(&before)
            {
                println!("app {name}: settings updated (no new revision)");
                print_addresses(&app);
            } else {
                println!("app {name}: nothing changed");
            }
            if wait {
                return wait_for_rollout(client, &name, Duration::from_secs(600)).await;
            }
        }
        AppCommand::Scale { name, replicas } => {
            let app: AppDto = client
                .post(&format!("/apps/{name}/scale"), &ScaleRequest { replicas })
                .await?;
            println!(
                "app {name} scaled to {} instances ({} ready now)",
                app.replicas, app.ready_instances
            );
        }
        AppCommand::Rollback { name, to, wait } => {
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
                return wait_for_rollout(client, &name, Duration::from_secs(600)).await;
            }
        }
        AppCommand::Rollout(RolloutCommand::Status {
            name,
            timeout,
            no_wait,
            output,
        }) => {
            if no_wait || output == Format::Json {
                let rollout: RolloutDto = client.get(&format!("/apps/{name}/rollout")).await?;
                output::one(output, &rollout, |r| println!("{}", describe_rollout(r)));
                return Ok(rollout_exit(&rollout));
            }
            let timeout = humantime::parse_duration(&timeout)
                .map_err(|e| format!("--timeout {timeout:?}: {e}"))?;
            return wait_for_rollout(client, &name, timeout).await;
        }
        AppCommand::History { name, output } => {
            let revisions: Vec<RevisionDto> =
                client.get(&format!("/apps/{name}/revisions")).await?;
            output::list(
                output,
                &revisions,
                &["REVISION", "CREATED", "BY", "IMAGE", "REASON"],
                |r| {
                    vec![
                        format!("{}{}", r.number, if r.current { " *" } else { "" }),
                        r.created_at.clone(),
                        r.created_by.clone(),
                        r.template.image.clone(),
                        r.reason.clone(),
                    ]
                },
            );
        }
        AppCommand::Events {
            name,
            follow,
            limit,
            output,
        } => events(client, &name, follow, limit, output).await?,
        AppCommand::Logs {
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

async fn apps(client: &Client, command: AppsCommand) -> Result<ExitCode, String> {
    match command {
        AppsCommand::Create {
            name,
            spec,
            team,
            wait,
        } => {
            let mut changes = spec.into_changes(&[], None)?;
            changes.name = Some(name.clone());
            changes.team = team;
            let app: AppDto = client.post("/apps", &changes).await?;
            println!(
                "app {} created: revision {} rolling out to {} instances",
                app.name, app.current_revision, app.replicas
            );
            print_addresses(&app);
            if wait {
                return wait_for_rollout(client, &name, Duration::from_secs(600)).await;
            }
        }
        AppsCommand::List { output } => {
            let apps: Vec<AppDto> = client.get("/apps").await?;
            output::list(
                output,
                &apps,
                &["NAME", "TEAM", "READY", "REVISION", "ROLLOUT", "IMAGE"],
                |a| {
                    vec![
                        a.name.clone(),
                        a.team.clone(),
                        format!("{}/{}", a.ready_instances, a.replicas),
                        a.current_revision.to_string(),
                        if a.idle.is_some() {
                            "idle (scaled to 0)".to_string()
                        } else {
                            a.rollout.phase.clone()
                        },
                        a.template.image.clone(),
                    ]
                },
            );
        }
        AppsCommand::Show { name, output } => {
            let app: AppDto = client.get(&format!("/apps/{name}")).await?;
            output::one(output, &app, print_app);
        }
        AppsCommand::Delete {
            name,
            delete_volumes,
        } => {
            let app: AppDto = client.get(&format!("/apps/{name}")).await?;
            let query = if delete_volumes {
                "?delete_volumes=true"
            } else {
                ""
            };
            client.delete(&format!("/apps/{name}{query}")).await?;
            println!("app {name} deleted");
            let volumes: Vec<String> = app
                .template
                .volumes
                .iter()
                .map(|m| format!("{}/{}", app.team, m.name))
                .collect();
            if !volumes.is_empty() {
                if delete_volumes {
                    println!("volumes deleted with their data: {}", volumes.join(", "));
                } else {
                    println!(
                        "volumes kept: {} (berth volumes delete TEAM/NAME removes one)",
                        volumes.join(", ")
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints the app's recent events; with `follow`, keeps printing new ones.
async fn events(
    client: &Client,
    name: &str,
    follow: bool,
    limit: u32,
    output: Format,
) -> Result<(), String> {
    let mut events: Vec<EventDto> = client
        .get(&format!("/apps/{name}/events?limit={limit}"))
        .await?;
    if output == Format::Json && !follow {
        output::json(&events);
        return Ok(());
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
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        events = client
            .get(&format!("/apps/{name}/events?after={last}&limit=1000"))
            .await?;
    }
}

fn domain_names(app: &AppDto) -> Vec<&str> {
    app.domains.iter().map(|d| d.domain.as_str()).collect()
}

/// `container-port -> listen-address:host-port`, one per published TCP port.
fn tcp_addresses(app: &AppDto) -> Vec<String> {
    app.tcp_ports
        .iter()
        .map(|p| format!("{} -> {}", p.container_port, p.address))
        .collect()
}

/// Where the app answers, one line each (or that it is internal).
fn print_addresses(app: &AppDto) {
    if app.internal {
        println!(
            "  internal: no external route; its team's apps reach it as {}",
            app.name
        );
    }
    for domain in &app.domains {
        match &domain.url {
            Some(url) => println!("  answers at {url}"),
            None => println!("  answers at {} (the router is off)", domain.domain),
        }
    }
    for port in tcp_addresses(app) {
        println!("  TCP port {port}");
    }
}

/// An instance's CPU and memory limits as `apps show` says them (`None` without either).
fn describe_limits(cpu_millis: Option<u64>, memory_bytes: Option<u64>) -> Option<String> {
    let parts: Vec<String> = [
        cpu_millis.map(|m| format!("CPU {} per instance", units::format_cpu(m))),
        memory_bytes.map(|b| format!("memory {} per instance", units::format_size(b))),
    ]
    .into_iter()
    .flatten()
    .collect();
    (!parts.is_empty()).then(|| parts.join(", "))
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
    if let Some(idle) = &app.idle {
        println!(
            "state:      idle: scaled to 0 when idle since {}; the next request starts {} \
             instances",
            idle.since, idle.replicas
        );
    }
    if let Some(secs) = app.idle_timeout_seconds {
        println!(
            "idle:       scaled to 0 after {} without a request",
            berth_core::idle::describe_timeout(secs)
        );
    }
    if let Some(limits) = describe_limits(app.template.cpu_millis, app.template.memory_bytes) {
        println!("limits:     {limits}");
    }
    if !app.dependencies.is_empty() {
        println!("depends on: {}", app.dependencies.join(", "));
    }
    if !app.template.node_constraints.is_empty() {
        println!(
            "placement:  nodes with {}",
            app.template.node_constraints.join(" and ")
        );
    }
    let port = app.template.port;
    println!(
        "readiness:  {}",
        probes::describe(app.template.readiness.as_ref(), port, Role::Readiness)
    );
    println!(
        "liveness:   {}",
        probes::describe(app.template.liveness.as_ref(), port, Role::Liveness)
    );
    for secret in &app.template.secrets {
        println!(
            "secret:     {} ← {} (version {})",
            secret.to_ref().target(),
            secret.name,
            secret.version
        );
    }
    for mount in &app.template.volumes {
        println!("volume:     {}", mount.to_mount());
    }
    println!("rollout:    {}", describe_rollout(&app.rollout));
    if app.strategy.kind == Some(RolloutKindDto::Recreate) {
        println!(
            "strategy:   recreate (every instance stops before a new revision starts: downtime)"
        );
    }
    if let Some(Some(canary)) = &app.strategy.canary {
        let share = match &canary.header {
            Some(header) => format!("requests with {}: {}", header.name, header.value),
            None => format!("{} % of requests", canary.weight_percent.unwrap_or(0)),
        };
        println!(
            "canary:     each new revision first takes {share} for {} s",
            canary.duration_seconds
        );
    }
    if app.internal {
        println!(
            "routes:     internal (reached by its team's apps as {})",
            app.name
        );
    }
    for domain in &app.domains {
        let kind = if domain.default { "default" } else { "domain" };
        let url = domain.url.as_deref().unwrap_or("(router off)");
        println!("{:<12}{url}", format!("{kind}:"));
    }
    for port in tcp_addresses(app) {
        println!("tcp:        {port} (plain TCP, bypasses the router)");
    }
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
    let canary = match &r.canary {
        Some(canary) if !canary.passed && !r.done => {
            format!(" (canary taking traffic since {})", canary.started_at)
        }
        _ => String::new(),
    };
    format!(
        "revision {} {}{canary}: {}/{} updated, {} ready, {} old — {}",
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
pub async fn wait_for_rollout(
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
    fn limits_are_said_only_when_set() {
        let table = [
            (None, None, None),
            (Some(500), None, Some("CPU 500m per instance")),
            (None, Some(128 << 20), Some("memory 128Mi per instance")),
            (
                Some(1500),
                Some(1 << 30),
                Some("CPU 1.5 per instance, memory 1Gi per instance"),
            ),
        ];
        for (cpu, memory, said) in table {
            assert_eq!(
                describe_limits(cpu, memory).as_deref(),
                said,
                "{cpu:?} {memory:?}"
            );
        }
    }
}
