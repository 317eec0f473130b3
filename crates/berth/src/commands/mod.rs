//! The command line: `berth server` and the client commands; the global options, how a command
//! finds its server and token, and the helpers the command modules share.

mod accounts;
mod apps;
mod audit;
mod autoscale;
mod backup;
mod certs;
mod compose;
mod domains;
mod exec;
mod images;
mod metrics;
pub mod node_agent;
mod nodes;
mod pipelines;
mod probes;
mod registries;
mod secrets;
mod teams;
mod templates;
mod volumes;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::client::Client;
use crate::config::{self, ServerOptions};
use crate::credentials::{self, Target};

/// Berth: deploy, roll out, roll back, scale and heal apps on Docker.
///
/// Start the control plane with `berth server`; every other command talks to it over its
/// REST API. `berth login` saves the server and an API token in a credentials file; without
/// it, commands use `--server` (default http://127.0.0.1:7700) and `--token` (BERTH_TOKEN),
/// or the admin token that the server prints on first start, read from
/// ./berth-data/admin-token when it is readable.
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
    /// URL of the Berth server [default: the one `berth login` saved, else
    /// http://127.0.0.1:7700]
    #[arg(long, global = true, env = "BERTH_SERVER")]
    server: Option<String>,
    /// API token [default: the one `berth login` saved for this server, else the contents of
    /// ./berth-data/admin-token, if readable]
    #[arg(long, global = true, env = "BERTH_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

impl Global {
    /// The server and token to use.
    fn target(&self) -> Result<Target, String> {
        credentials::resolve(self.server.as_deref(), self.token.as_deref())
    }

    /// A client with the chosen server and token.
    fn client(&self) -> Result<Client, String> {
        let target = self.target()?;
        Client::new(&target.server, target.token)
    }
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
        /// Manage the engine namespace even though another Berth installation claimed it
        /// (only when that installation is gone for good: two would remove each other's
        /// containers). A flag for one start, never a config-file key
        #[arg(long)]
        take_over_namespace: bool,
    },
    #[command(flatten)]
    App(apps::AppCommand),
    /// The built-in registry: search, inspect, delete, storage use, garbage collection
    #[command(subcommand)]
    Images(images::ImagesCommand),
    /// HTTPS certificates of apps' hosts: list, upload, order over ACME, delete
    #[command(subcommand)]
    Certs(certs::CertsCommand),
    /// Domain reservations (admins): keep a domain for one team's apps
    #[command(subcommand)]
    Domains(domains::DomainsCommand),
    /// The metrics history of an app (and its instances), a node (--node) or a team (--team): one line per series over --since
    Metrics(metrics::MetricsArgs),
    /// Nodes: status (low ones flagged), CPU, memory and disks, labels; whether the cluster needs another node
    Nodes {
        #[command(subcommand)]
        command: Option<nodes::NodesCommand>,
        #[arg(short, long, value_enum, default_value = "table")]
        output: crate::output::Format,
    },
    /// External registries a team browses through Berth: list, add, remove
    #[command(subcommand)]
    Registries(registries::RegistriesCommand),
    /// Persistent volumes of teams: list, show, delete, backup and restore as tar
    #[command(subcommand)]
    Volumes(volumes::VolumesCommand),
    /// Team secrets: create or change (from stdin or a file), list names and versions, delete
    #[command(subcommand)]
    Secrets(secrets::SecretsCommand),
    /// Compose files: import a docker-compose.yml as a team's apps (plan first with --dry-run)
    #[command(subcommand)]
    Compose(compose::ComposeCommand),
    /// Run a command inside a running instance: berth exec APP [--instance NAME] -- COMMAND…
    /// (a terminal when stdin is one; exits with the command's code)
    Exec(exec::ExecArgs),
    #[command(flatten)]
    Account(accounts::AccountCommand),
    #[command(flatten)]
    Team(teams::TeamCommand),
    /// Deployment templates: list, show, save, delete, and create apps from them
    #[command(subcommand)]
    Templates(templates::TemplatesCommand),
    /// The audit log: who changed what, when, and how it ended
    Audit(audit::AuditArgs),
    /// Back up the whole installation from the running server (admins): database, registry,
    /// hosted git, build logs and keys, as one tar file
    Backup(backup::BackupArgs),
    /// Restore a backup into a new or empty data directory (no server running on it); then
    /// start `berth server` on it
    Restore(backup::RestoreArgs),
    /// CPU autoscaling of an app: range and target, off, or explain its decisions
    Autoscale(autoscale::AutoscaleArgs),
    #[command(flatten)]
    Pipeline(pipelines::PipelineCommand),
    /// What runs in the node agent's container on other nodes of a Swarm
    #[command(subcommand, hide = true)]
    NodeAgent(node_agent::NodeAgentCommand),
}

impl Cli {
    /// Whether this is `berth server` (a long-running daemon rather than a client command).
    pub fn is_server(&self) -> bool {
        matches!(self.command, Command::Server { .. })
    }
}

pub async fn run(cli: Cli) -> Result<ExitCode, String> {
    let Cli { command, global } = cli;
    match command {
        Command::Server {
            config,
            options,
            take_over_namespace,
        } => {
            let mut config = config::resolve(options, config.as_deref())?;
            config.take_over_namespace = take_over_namespace;
            crate::server::run(config).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::App(command) => apps::run(&global.client()?, command).await,
        Command::Images(command) => images::run(&global.client()?, command).await,
        Command::Registries(command) => registries::run(&global.client()?, command).await,
        Command::Volumes(command) => volumes::run(&global.client()?, command).await,
        Command::Secrets(command) => secrets::run(&global.client()?, command).await,
        Command::Compose(command) => compose::run(&global.client()?, command).await,
        Command::Exec(args) => exec::run(&global.client()?, args).await,
        Command::Backup(args) => backup::backup(&global.client()?, args).await,
        Command::Restore(args) => backup::restore(args),
        Command::Domains(command) => domains::run(&global.client()?, command).await,
        Command::Metrics(args) => metrics::run(&global.client()?, args).await,
        Command::Nodes { command, output } => nodes::run(&global.client()?, command, output).await,
        Command::Certs(command) => certs::run(&global.client()?, command).await,
        Command::Account(command) => accounts::run(&global, command).await,
        Command::Team(command) => teams::run(&global.client()?, command).await,
        Command::Templates(command) => templates::run(&global.client()?, command).await,
        Command::Audit(args) => audit::run(&global.client()?, args).await,
        Command::Autoscale(args) => autoscale::run(&global.client()?, args).await,
        Command::NodeAgent(command) => node_agent::run(command).await,
        Command::Pipeline(command) => {
            let target = global.target()?;
            let client = Client::new(&target.server, target.token)?;
            pipelines::run(&client, &target.server, command).await
        }
    }
}

/// `path` with a query string of the parameters that have a value.
fn query(path: &str, params: &[(&str, Option<String>)]) -> String {
    let pairs: Vec<String> = params
        .iter()
        .filter_map(|(key, value)| value.as_ref().map(|v| format!("{key}={}", encode(v, b"/"))))
        .collect();
    if pairs.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", pairs.join("&"))
    }
}

/// A value as one segment of a URL path.
/// An object of a team named `TEAM/NAME` on the command line (a pipeline, a template).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeamObject {
    team: String,
    name: String,
}

impl std::str::FromStr for TeamObject {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.split_once('/') {
            Some((team, name)) if !team.is_empty() && !name.is_empty() && !name.contains('/') => {
                Ok(TeamObject {
                    team: team.to_string(),
                    name: name.to_string(),
                })
            }
            _ => Err(format!("{text:?}: expected TEAM/NAME, e.g. web/api")),
        }
    }
}

impl std::fmt::Display for TeamObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.team, self.name)
    }
}

impl TeamObject {
    /// The object's API path under `collection` (`/pipelines/web/api`).
    fn path(&self, collection: &str) -> String {
        format!(
            "/{collection}/{}/{}",
            segment(&self.team),
            segment(&self.name)
        )
    }
}

fn segment(value: &str) -> String {
    encode(value, b"")
}

/// Percent-encodes all but letters, digits, `-_.` and the bytes in `keep`.
fn encode(value: &str, keep: &[u8]) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            b if keep.contains(&b) => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Unix milliseconds as RFC 3339 to the second, in UTC.
fn time(millis: i64) -> String {
    u64::try_from(millis)
        .ok()
        .and_then(|ms| UNIX_EPOCH.checked_add(Duration::from_millis(ms)))
        .map_or(millis.to_string(), |t| {
            humantime::format_rfc3339_seconds(t).to_string()
        })
}

/// An optional time, `-` when absent.
fn time_or_dash(millis: Option<i64>) -> String {
    millis.map_or("-".to_string(), time)
}

/// Unix milliseconds of `ago` before now.
fn millis_ago(ago: Duration) -> i64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    now.saturating_sub(ago).as_millis() as i64
}

/// The command-line name of a value of a clap enum (`pending`, `owner`, …).
fn value_name(value: &impl ValueEnum) -> String {
    value
        .to_possible_value()
        .map(|v| v.get_name().to_string())
        .unwrap_or_default()
}

/// `yes` or `no`.
fn yes_no(value: bool) -> String {
    if value { "yes" } else { "no" }.to_string()
}

/// The text, or `-` when empty.
fn or_dash(text: &str) -> String {
    if text.is_empty() { "-" } else { text }.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn team_objects_are_team_slash_name() {
        let cases = [
            ("web/api", Some(("web", "api"))),
            ("builtin/http-service", Some(("builtin", "http-service"))),
            ("web", None),
            ("/api", None),
            ("web/", None),
            ("a/b/c", None),
            ("", None),
        ];
        for (text, want) in cases {
            let got = text.parse::<TeamObject>().ok();
            let want = want.map(|(team, name)| TeamObject {
                team: team.into(),
                name: name.into(),
            });
            assert_eq!(got, want, "{text}");
        }
        let object: TeamObject = "web/my api".parse().unwrap();
        assert_eq!(object.path("pipelines"), "/pipelines/web/my%20api");
        assert_eq!(object.to_string(), "web/my api");
    }

    #[test]
    fn cli_parses() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn queries() {
        let cases = [
            (vec![], "/audit"),
            (vec![("team", None)], "/audit"),
            (
                vec![
                    ("team", Some("web")),
                    ("actor", None),
                    ("action", Some("apps.create")),
                ],
                "/audit?team=web&action=apps.create",
            ),
            (
                vec![("search", Some("a b&c/d"))],
                "/audit?search=a%20b%26c/d",
            ),
        ];
        for (params, want) in cases {
            let params: Vec<(&str, Option<String>)> = params
                .into_iter()
                .map(|(k, v)| (k, v.map(str::to_string)))
                .collect();
            assert_eq!(query("/audit", &params), want);
        }
        assert_eq!(segment("a/b c"), "a%2Fb%20c");
    }

    #[test]
    fn times() {
        let cases = [
            (0, "1970-01-01T00:00:00Z"),
            (1_700_000_000_999, "2023-11-14T22:13:20Z"),
            (-5, "-5"),
        ];
        for (millis, want) in cases {
            assert_eq!(time(millis), want);
        }
        assert_eq!(time_or_dash(None), "-");
    }

    #[test]
    fn existing_commands_still_parse() {
        let cases: [&[&str]; 16] = [
            &[
                "berth", "apps", "create", "web", "--image", "x", "--cpu", "500m", "--wait",
            ],
            &["berth", "apps", "list", "-o", "json"],
            &[
                "berth",
                "deploy",
                "web",
                "--env",
                "B=2",
                "--unset-env",
                "A",
                "--wait",
            ],
            &["berth", "scale", "web", "1"],
            &["berth", "rollback", "web", "--to", "1", "--wait"],
            &["berth", "rollout", "status", "web", "--no-wait"],
            &[
                "berth",
                "images",
                "retention",
                "team/app",
                "--keep",
                "3",
                "--save",
            ],
            &["berth", "--server", "http://x:1", "events", "web", "-f"],
            &[
                "berth",
                "images",
                "list",
                "--registry",
                "hub",
                "--search",
                "web",
            ],
            &["berth", "images", "delete", "web:v1", "--registry", "hub"],
            &[
                "berth",
                "registries",
                "add",
                "hub",
                "--team",
                "web",
                "--url",
                "http://127.0.0.1:5000",
                "--username",
                "ci",
                "--password-stdin",
            ],
            &[
                "berth",
                "pipelines",
                "create",
                "web/api",
                "--repo",
                "https://git.example.com/web/api.git",
                "--build-arg",
                "A=1",
                "--test",
                "sh /app/test.sh",
                "--target",
                "web/api",
                "--git-username",
                "ci",
                "--git-password-stdin",
                "--webhook-secret-file",
                "/run/secret",
            ],
            &[
                "berth",
                "pipelines",
                "build",
                "web/api",
                "--branch",
                "main",
                "-f",
            ],
            &[
                "berth",
                "builds",
                "list",
                "--pipeline",
                "web/api",
                "-o",
                "json",
            ],
            &["berth", "builds", "logs", "7", "-f"],
            &["berth", "pipelines", "delete", "web/api", "--yes"],
        ];
        for args in cases {
            assert!(Cli::try_parse_from(args).is_ok(), "{args:?}");
        }
    }
}
