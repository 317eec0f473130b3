//! Pipeline and build commands: configure a team's pipelines, start builds, list and inspect
//! them, cancel one, and read a build's log or follow it live to its end (through the build's
//! event stream, `GET /builds/{id}/events`).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use berth_api::pipeline_dto::{
    BuildDto, BuildRequest, BuildStepDto, GitCredentialsDto, PipelineDto, PipelineRequest,
};
use clap::{ArgGroup, Args, Subcommand};
use futures::StreamExt;

use super::{TeamObject, or_dash, query, time, time_or_dash, yes_no};
use crate::client::Client;
use crate::output::{self, Format};
use crate::terminal::{self, Secrets};

/// The pipeline commands, at the top level of `berth`.
// Parsed once per process: boxing the large variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum PipelineCommand {
    /// Code pipelines: from a git push to a tested image in the registry, rolled out
    #[command(subcommand)]
    Pipelines(PipelinesCommand),
    /// Builds of pipelines: list, show, cancel, and read or follow their logs
    #[command(subcommand)]
    Builds(BuildsCommand),
}

// Parsed once per process: boxing the large variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum PipelinesCommand {
    /// List the pipelines of the teams you can read
    List {
        /// Only this team's
        #[arg(long)]
        team: Option<String>,
        #[arg(short, long, value_enum, default_value = "table")]
        output: Format,
    },
    /// Show a pipeline, where to push to it, and its latest builds
    Show {
        /// The pipeline
        #[arg(value_name = "TEAM/NAME")]
        pipeline: TeamObject,
        #[arg(short, long, value_enum, default_value = "table")]
        output: Format,
    },
    /// Create or replace a pipeline. Every setting is replaced; the stored git credentials and
    /// webhook secret are kept unless new ones are given
    #[command(visible_alias = "create")]
    Set {
        /// The pipeline
        #[arg(value_name = "TEAM/NAME")]
        pipeline: TeamObject,
        #[command(flatten)]
        settings: PipelineSettings,
    },
    /// Delete a pipeline with its builds and their logs (running builds are cancelled)
    Delete {
        /// The pipeline
        #[arg(value_name = "TEAM/NAME")]
        pipeline: TeamObject,
        /// Do not ask for confirmation
        #[arg(long, short)]
        yes: bool,
    },
    /// Build now: the head of a branch, or an exact commit
    Build {
        /// The pipeline
        #[arg(value_name = "TEAM/NAME")]
        pipeline: TeamObject,
        /// The branch [default: the pipeline's, when its pattern names one branch]
        #[arg(long)]
        branch: Option<String>,
        /// A full commit id on that branch
        #[arg(long)]
        commit: Option<String>,
        /// Follow the build's log until it ends (exit non-zero unless it succeeds)
        #[arg(short, long)]
        follow: bool,
    },
}

/// The settings of `pipelines set`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("webhook_secret").args(["webhook_secret_stdin", "webhook_secret_file", "no_webhook_secret"])))]
pub struct PipelineSettings {
    /// The git remote builds fetch from (https://…, ssh://…, user@host:path, a local path)
    /// [default: the repository Berth hosts for the pipeline, filled by `git push`]
    #[arg(long, value_name = "URL")]
    repo: Option<String>,
    /// Which branches build: a name or a pattern such as release/* [default: main]
    #[arg(long, value_name = "PATTERN")]
    branch: Option<String>,
    /// The Dockerfile, relative to the context [default: Dockerfile]
    #[arg(long, value_name = "PATH")]
    dockerfile: Option<String>,
    /// The build context inside the repository [default: its root]
    #[arg(long, value_name = "PATH")]
    context: Option<String>,
    /// A build argument KEY=VALUE (repeatable)
    #[arg(long = "build-arg", value_name = "KEY=VALUE")]
    build_args: Vec<String>,
    /// The test command run inside the built image, as one string ("sh /app/test.sh --fast";
    /// quote words with spaces); without it (or --test-arg) no tests run
    #[arg(long, value_name = "COMMAND", conflicts_with = "test_args")]
    test: Option<String>,
    /// One word of the test command (repeat for each, program first)
    #[arg(long = "test-arg", value_name = "WORD")]
    test_args: Vec<String>,
    /// The image repository in Berth's registry, TEAM/REPO of the pipeline's team
    #[arg(long, value_name = "TEAM/REPO")]
    target: String,
    /// The app (of the same team) to roll the image out to when everything passed
    #[arg(long, value_name = "APP")]
    deploy_app: Option<String>,
    /// User name for an https remote (the password is asked, or read with
    /// --git-password-stdin)
    #[arg(long, value_name = "USER", conflicts_with = "ssh_key_file")]
    git_username: Option<String>,
    /// Read the git password (or access token) from standard input (one line)
    #[arg(
        long,
        requires = "git_username",
        conflicts_with = "webhook_secret_stdin"
    )]
    git_password_stdin: bool,
    /// An OpenSSH private key (a deploy key) for an ssh remote
    #[arg(long, value_name = "FILE")]
    ssh_key_file: Option<PathBuf>,
    /// known_hosts lines pinning the ssh host's key [default: trust on first use]
    #[arg(long, value_name = "FILE", requires = "ssh_key_file")]
    known_hosts_file: Option<PathBuf>,
    /// Read the webhook secret (that forges sign push webhooks with) from standard input
    #[arg(long)]
    webhook_secret_stdin: bool,
    /// Read the webhook secret from a file
    #[arg(long, value_name = "FILE")]
    webhook_secret_file: Option<PathBuf>,
    /// Remove the stored webhook secret (webhooks are then refused)
    #[arg(long)]
    no_webhook_secret: bool,
}

#[derive(Debug, Subcommand)]
pub enum BuildsCommand {
    /// List builds, newest first
    List {
        /// Only this team's
        #[arg(long, conflicts_with = "pipeline")]
        team: Option<String>,
        /// Only this pipeline's
        #[arg(long, value_name = "TEAM/NAME")]
        pipeline: Option<TeamObject>,
        /// At most this many
        #[arg(long, default_value_t = 20)]
        limit: u32,
        #[arg(short, long, value_enum, default_value = "table")]
        output: Format,
    },
    /// Show a build: commit, steps with their durations, image, rollout
    Show {
        /// The build's id
        id: i64,
        #[arg(short, long, value_enum, default_value = "table")]
        output: Format,
    },
    /// Cancel a queued or running build
    Cancel {
        /// The build's id
        id: i64,
    },
    /// A build's log; with -f, followed until the build ends (exit non-zero unless it
    /// succeeds)
    Logs {
        /// The build's id
        id: i64,
        /// Follow the log until the build ends
        #[arg(short, long)]
        follow: bool,
    },
}

/// `server` is the server's URL: git and webhook paths are shown as full URLs under it.
pub async fn run(
    client: &Client,
    server: &str,
    command: PipelineCommand,
) -> Result<ExitCode, String> {
    match command {
        PipelineCommand::Pipelines(command) => pipelines(client, server, command).await,
        PipelineCommand::Builds(command) => builds(client, command).await,
    }
}

async fn pipelines(
    client: &Client,
    server: &str,
    command: PipelinesCommand,
) -> Result<ExitCode, String> {
    match command {
        PipelinesCommand::List { team, output } => {
            let pipelines: Vec<PipelineDto> =
                client.get(&query("/pipelines", &[("team", team)])).await?;
            output::list(
                output,
                &pipelines,
                &[
                    "PIPELINE",
                    "LAST BUILD",
                    "BRANCHES",
                    "SOURCE",
                    "TARGET",
                    "DEPLOYS",
                ],
                |p| {
                    vec![
                        reference(p),
                        p.last_build.as_ref().map_or_else(
                            || "-".to_string(),
                            |b| format!("#{} {}", b.number, b.status),
                        ),
                        p.branch_pattern.clone(),
                        p.repository_url
                            .clone()
                            .unwrap_or_else(|| "hosted by Berth".to_string()),
                        p.target_repository.clone(),
                        p.deploy_app.clone().unwrap_or_else(|| "-".to_string()),
                    ]
                },
            );
        }
        PipelinesCommand::Show { pipeline, output } => {
            let found: PipelineDto = client.get(&pipeline.path("pipelines")).await?;
            if output == Format::Json {
                output::json(&found);
            } else {
                let recent: Vec<BuildDto> = client
                    .get(&builds_path(BuildsOf::Pipeline(&pipeline), 5))
                    .await?;
                print_pipeline(&found, server, &recent);
            }
        }
        PipelinesCommand::Set { pipeline, settings } => {
            let request = settings.into_request()?;
            let saved: PipelineDto = client.put(&pipeline.path("pipelines"), &request).await?;
            println!(
                "pipeline {} saved: builds {} to {}{}",
                reference(&saved),
                saved.branch_pattern,
                saved.target_repository,
                saved
                    .deploy_app
                    .as_ref()
                    .map_or(String::new(), |app| format!(", rolled out to app {app}"))
            );
            if saved.repository_url.is_none() {
                println!("{}", push_hint(&saved, server));
            }
            if saved.has_webhook_secret {
                println!("webhooks: {}", url(server, &saved.webhook_path));
            }
        }
        PipelinesCommand::Delete { pipeline, yes } => {
            if !yes {
                if !terminal::interactive() {
                    return Err(format!(
                        "pass --yes to delete pipeline {pipeline} with its builds and their logs"
                    ));
                }
                if !terminal::confirm(&format!(
                    "delete pipeline {pipeline} with its builds and their logs?"
                ))? {
                    return Err("not deleted".to_string());
                }
            }
            client.delete(&pipeline.path("pipelines")).await?;
            println!("pipeline {pipeline} deleted");
        }
        PipelinesCommand::Build {
            pipeline,
            branch,
            commit,
            follow,
        } => {
            let build: BuildDto = client
                .post(
                    &format!("{}/builds", pipeline.path("pipelines")),
                    &BuildRequest { branch, commit },
                )
                .await?;
            println!(
                "build {} ({pipeline} #{}) of branch {} queued",
                build.id,
                build.number,
                build.branch.as_deref().unwrap_or("?"),
            );
            if follow {
                return follow_build(client, build.id).await;
            }
            println!("follow it with: berth builds logs {} -f", build.id);
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn builds(client: &Client, command: BuildsCommand) -> Result<ExitCode, String> {
    match command {
        BuildsCommand::List {
            team,
            pipeline,
            limit,
            output,
        } => {
            let of = match (&pipeline, &team) {
                (Some(pipeline), _) => BuildsOf::Pipeline(pipeline),
                (None, Some(team)) => BuildsOf::Team(team),
                (None, None) => BuildsOf::Readable,
            };
            let builds: Vec<BuildDto> = client.get(&builds_path(of, limit)).await?;
            output::list(
                output,
                &builds,
                &[
                    "ID", "BUILD", "STATUS", "BRANCH", "COMMIT", "TRIGGER", "CREATED", "TOOK",
                ],
                |b| {
                    vec![
                        b.id.to_string(),
                        format!("{}/{} #{}", b.team, b.pipeline, b.number),
                        b.status.clone(),
                        b.branch.clone().unwrap_or_else(|| "-".to_string()),
                        b.commit
                            .as_deref()
                            .map_or("-".to_string(), |c| short_commit(c).to_string()),
                        format!("{} by {}", b.trigger, b.triggered_by),
                        time(b.created_at),
                        build_took(b),
                    ]
                },
            );
        }
        BuildsCommand::Show { id, output } => {
            let build: BuildDto = client.get(&format!("/builds/{id}")).await?;
            output::one(output, &build, print_build);
        }
        BuildsCommand::Cancel { id } => {
            let _: BuildDto = client.post_empty(&format!("/builds/{id}/cancel")).await?;
            println!("build {id}: cancelling (it ends as cancelled)");
        }
        BuildsCommand::Logs { id, follow: true } => return follow_build(client, id).await,
        BuildsCommand::Logs { id, follow: false } => {
            let response = client.stream(&format!("/builds/{id}/logs")).await?;
            let mut body = response.bytes_stream();
            let mut stdout = std::io::stdout();
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| format!("the log of build {id} broke off: {e}"))?;
                stdout.write_all(&chunk).map_err(|e| e.to_string())?;
            }
            stdout.flush().map_err(|e| e.to_string())?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

impl PipelineSettings {
    /// The request body; asks for or reads the secrets given by the flags.
    fn into_request(self) -> Result<PipelineRequest, String> {
        let test_command = match &self.test {
            Some(command) => {
                split_words(command).map_err(|e| format!("--test {command:?}: {e}"))?
            }
            None => self.test_args.clone(),
        };
        let credentials = self.credentials()?;
        let webhook_secret = self.webhook_secret()?;
        Ok(PipelineRequest {
            repository_url: self.repo,
            branch_pattern: self.branch,
            dockerfile: self.dockerfile,
            context: self.context,
            build_args: Some(build_args(&self.build_args)?),
            test_command: Some(test_command),
            target_repository: self.target,
            deploy_app: self.deploy_app,
            credentials,
            webhook_secret,
        })
    }

    fn credentials(&self) -> Result<Option<GitCredentialsDto>, String> {
        if let Some(username) = &self.git_username {
            let secrets = if self.git_password_stdin {
                Secrets::Stdin
            } else if terminal::interactive() {
                Secrets::Terminal
            } else {
                return Err(
                    "standard input is not a terminal: pass --git-password-stdin and \
                            write the git password on standard input"
                        .to_string(),
                );
            };
            let password = secrets.password(&format!("Git password of {username}: "))?;
            return Ok(Some(GitCredentialsDto {
                username: Some(username.clone()),
                password: Some(password),
                ..GitCredentialsDto::default()
            }));
        }
        let Some(key_file) = &self.ssh_key_file else {
            return Ok(None);
        };
        Ok(Some(GitCredentialsDto {
            ssh_key: Some(read_file("--ssh-key-file", key_file)?),
            known_hosts: self
                .known_hosts_file
                .as_deref()
                .map(|file| read_file("--known-hosts-file", file))
                .transpose()?,
            ..GitCredentialsDto::default()
        }))
    }

    /// The new webhook secret: `None` keeps the stored one, empty removes it.
    fn webhook_secret(&self) -> Result<Option<String>, String> {
        let secret = if self.no_webhook_secret {
            return Ok(Some(String::new()));
        } else if self.webhook_secret_stdin {
            terminal::read_line()?.unwrap_or_default()
        } else if let Some(file) = &self.webhook_secret_file {
            read_file("--webhook-secret-file", file)?
                .trim_end_matches(['\n', '\r'])
                .to_string()
        } else {
            return Ok(None);
        };
        if secret.is_empty() {
            return Err(
                "the webhook secret is empty (--no-webhook-secret removes the stored one)"
                    .to_string(),
            );
        }
        Ok(Some(secret))
    }
}

fn read_file(flag: &str, file: &Path) -> Result<String, String> {
    std::fs::read_to_string(file)
        .map_err(|e| format!("{flag}: cannot read {}: {e}", file.display()))
}

/// `--build-arg KEY=VALUE` items as a map (a later KEY wins).
fn build_args(items: &[String]) -> Result<BTreeMap<String, String>, String> {
    items
        .iter()
        .map(|item| match item.split_once('=') {
            Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
            _ => Err(format!("--build-arg {item:?}: expected KEY=VALUE")),
        })
        .collect()
}

/// Splits a command line into words the way a POSIX shell does, without expansions: blanks
/// separate words, '…' keeps everything literally, "…" keeps all but `\"` and `\\`, and a
/// backslash outside quotes keeps the next character.
fn split_words(line: &str) -> Result<Vec<String>, String> {
    #[derive(PartialEq)]
    enum Quote {
        None,
        Single,
        Double,
    }
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote = Quote::None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match (&quote, c) {
            (Quote::None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (Quote::None, '\'') => (quote, in_word) = (Quote::Single, true),
            (Quote::None, '"') => (quote, in_word) = (Quote::Double, true),
            (Quote::None, '\\') => {
                word.push(chars.next().ok_or("ends in a lone backslash")?);
                in_word = true;
            }
            (Quote::Single, '\'') | (Quote::Double, '"') => quote = Quote::None,
            (Quote::Double, '\\') => match chars.next() {
                Some(escaped @ ('"' | '\\')) => word.push(escaped),
                Some(other) => word.extend(['\\', other]),
                None => return Err("a double quote is not closed".to_string()),
            },
            (_, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    match quote {
        Quote::Single => return Err("a single quote is not closed".to_string()),
        Quote::Double => return Err("a double quote is not closed".to_string()),
        Quote::None => {}
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// Words as one command line that [`split_words`] reads back into the same words.
fn join_words(words: &[String]) -> String {
    words
        .iter()
        .map(|word| {
            let plain = !word.is_empty()
                && word
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:@,+%".contains(c));
            if plain {
                word.clone()
            } else {
                format!("'{}'", word.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `/builds?…` for a team or a pipeline.
fn builds_path(of: BuildsOf, limit: u32) -> String {
    let (team, pipeline) = match of {
        BuildsOf::Readable => (None, None),
        BuildsOf::Team(team) => (Some(team.to_string()), None),
        BuildsOf::Pipeline(pipeline) => (Some(pipeline.team.clone()), Some(pipeline.name.clone())),
    };
    query(
        "/builds",
        &[
            ("team", team),
            ("pipeline", pipeline),
            ("limit", Some(limit.to_string())),
        ],
    )
}

/// Whose builds to list.
enum BuildsOf<'a> {
    /// Of every team the caller can read.
    Readable,
    Team(&'a str),
    Pipeline(&'a TeamObject),
}

/// The text, or what an empty one stands for.
fn or_default(text: &str, default: &str) -> String {
    if text.is_empty() { default } else { text }.to_string()
}

/// `team/name` of a pipeline.
fn reference(pipeline: &PipelineDto) -> String {
    format!("{}/{}", pipeline.team, pipeline.name)
}

/// A path of the server as a full URL.
fn url(server: &str, path: &str) -> String {
    format!("{}{path}", server.trim_end_matches('/'))
}

/// How to push to a pipeline whose repository Berth hosts.
fn push_hint(pipeline: &PipelineDto, server: &str) -> String {
    let branch = if pipeline.branch_pattern.contains('*') {
        "<branch>"
    } else {
        &pipeline.branch_pattern
    };
    format!(
        "push with: git remote add berth {} && git push berth {branch}",
        url(server, &pipeline.git_path)
    )
}

/// The first 12 characters of a commit id.
fn short_commit(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}

/// Milliseconds as a short duration: `850ms`, `12.3s`, `3m04s`, `1h02m`.
fn duration(millis: i64) -> String {
    let millis = millis.max(0);
    let seconds = millis / 1000;
    match millis {
        0..1_000 => format!("{millis}ms"),
        1_000..60_000 => format!("{}.{}s", seconds, (millis % 1000) / 100),
        60_000..3_600_000 => format!("{}m{:02}s", seconds / 60, seconds % 60),
        _ => format!("{}h{:02}m", seconds / 3600, (seconds % 3600) / 60),
    }
}

/// How long a build took, `-` while it has not ended.
fn build_took(build: &BuildDto) -> String {
    match (build.started_at, build.finished_at) {
        (Some(start), Some(end)) => duration(end - start),
        _ => "-".to_string(),
    }
}

fn print_pipeline(pipeline: &PipelineDto, server: &str, recent: &[BuildDto]) {
    let build_args: Vec<String> = pipeline
        .build_args
        .iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect();
    let source = match &pipeline.repository_url {
        Some(url) => url.clone(),
        None => format!("hosted by Berth: {}", url(server, &pipeline.git_path)),
    };
    let webhook = if pipeline.has_webhook_secret {
        url(server, &pipeline.webhook_path)
    } else {
        "- (no secret: webhooks are refused)".to_string()
    };
    let fields = [
        ("pipeline", reference(pipeline)),
        ("repository", source),
        ("branches", pipeline.branch_pattern.clone()),
        ("dockerfile", or_default(&pipeline.dockerfile, "Dockerfile")),
        (
            "context",
            or_default(&pipeline.context, ". (the repository's root)"),
        ),
        ("build args", or_dash(&build_args.join(" "))),
        ("tests", or_dash(&join_words(&pipeline.test_command))),
        ("image", pipeline.target_repository.clone()),
        (
            "deploys to",
            pipeline
                .deploy_app
                .clone()
                .unwrap_or_else(|| "-".to_string()),
        ),
        ("git credentials", yes_no(pipeline.has_credentials)),
        ("webhook", webhook),
        (
            "created",
            format!("{} by {}", time(pipeline.created_at), pipeline.created_by),
        ),
        ("updated", time(pipeline.updated_at)),
    ];
    println!("{}", output::fields(&fields));
    if pipeline.repository_url.is_none() {
        println!("\n{}", push_hint(pipeline, server));
    }
    if !recent.is_empty() {
        println!();
        output::list(
            Format::Table,
            recent,
            &["ID", "#", "STATUS", "BRANCH", "COMMIT", "CREATED", "TOOK"],
            |b| {
                vec![
                    b.id.to_string(),
                    b.number.to_string(),
                    b.status.clone(),
                    b.branch.clone().unwrap_or_else(|| "-".to_string()),
                    b.commit
                        .as_deref()
                        .map_or("-".to_string(), |c| short_commit(c).to_string()),
                    time(b.created_at),
                    build_took(b),
                ]
            },
        );
    }
}

fn print_build(build: &BuildDto) {
    let author = match (&build.author, &build.author_email) {
        (Some(name), Some(email)) => format!("{name} <{email}>"),
        (Some(name), None) => name.clone(),
        _ => "-".to_string(),
    };
    let message = build
        .message
        .as_deref()
        .and_then(|m| m.lines().next())
        .unwrap_or("-");
    let fields = [
        (
            "build",
            format!(
                "{} ({}/{} #{})",
                build.id, build.team, build.pipeline, build.number
            ),
        ),
        ("status", build.status.clone()),
        (
            "trigger",
            format!("{} by {}", build.trigger, build.triggered_by),
        ),
        (
            "branch",
            build.branch.clone().unwrap_or_else(|| "-".to_string()),
        ),
        (
            "commit",
            build.commit.clone().unwrap_or_else(|| "-".to_string()),
        ),
        ("author", author),
        ("message", message.to_string()),
        (
            "image",
            build
                .image_digest
                .clone()
                .unwrap_or_else(|| "-".to_string()),
        ),
        (
            "rollout",
            build
                .rollout_outcome
                .clone()
                .unwrap_or_else(|| "-".to_string()),
        ),
        (
            "reason",
            build.reason.clone().unwrap_or_else(|| "-".to_string()),
        ),
        ("created", time(build.created_at)),
        ("started", time_or_dash(build.started_at)),
        ("finished", time_or_dash(build.finished_at)),
        ("took", build_took(build)),
    ];
    println!("{}\n", output::fields(&fields));
    output::list(
        Format::Table,
        &build.steps,
        &["STEP", "STATUS", "STARTED", "TOOK"],
        |s: &BuildStepDto| {
            vec![
                s.name.clone(),
                s.status.clone(),
                time_or_dash(s.started_at),
                s.duration_ms.map_or("-".to_string(), duration),
            ]
        },
    );
}

/// The line that ends a followed build.
fn outcome_line(build: &BuildDto) -> String {
    let mut line = format!(
        "build {} ({}/{} #{}) {} in {}",
        build.id,
        build.team,
        build.pipeline,
        build.number,
        build.status,
        build_took(build)
    );
    if let Some(reason) = &build.reason {
        line.push_str(&format!(": {reason}"));
    }
    if let Some(digest) = &build.image_digest {
        line.push_str(&format!("; image {digest}"));
    }
    if let Some(rollout) = &build.rollout_outcome {
        line.push_str(&format!("; {rollout}"));
    }
    line
}

/// How many times in a row a broken event stream is reopened.
const STREAM_RETRIES: u32 = 5;

/// Prints build `id`'s log as it comes until the build ends, then its outcome; exits 0 only
/// when it succeeded. A stream that breaks off is reopened where the log stopped.
async fn follow_build(client: &Client, id: i64) -> Result<ExitCode, String> {
    let mut offset = 0u64;
    let mut failures = 0;
    loop {
        let before = offset;
        let problem = match follow_events(client, id, &mut offset).await? {
            Ok(build) => {
                println!("{}", outcome_line(&build));
                return Ok(if build.status == "succeeded" {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(2)
                });
            }
            Err(problem) => problem,
        };
        failures = if offset > before { 1 } else { failures + 1 };
        if failures > STREAM_RETRIES {
            return Err(format!("following build {id}: {problem}"));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Reads the event stream of build `id` from log `offset` on, printing the log and moving
/// `offset` along: the terminal build at `end`, or (inner error) why the stream stopped
/// short. The outer error is an answer of the server (the build is not there…).
async fn follow_events(
    client: &Client,
    id: i64,
    offset: &mut u64,
) -> Result<Result<BuildDto, String>, String> {
    let after = (*offset > 0).then(|| offset.to_string());
    let response = client
        .stream(&query(&format!("/builds/{id}/events"), &[("after", after)]))
        .await?;
    let mut body = response.bytes_stream();
    let mut reader = SseReader::default();
    let mut stdout = std::io::stdout();
    while let Some(chunk) = body.next().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(e) => return Ok(Err(format!("the event stream broke off: {e}"))),
        };
        for event in reader.feed(&chunk) {
            match event.name.as_str() {
                "log" => {
                    stdout
                        .write_all(event.data.as_bytes())
                        .and_then(|()| stdout.flush())
                        .map_err(|e| e.to_string())?;
                    if let Some(end) = event.id.and_then(|id| id.parse().ok()) {
                        *offset = end;
                    }
                }
                "end" => {
                    return serde_json::from_str(&event.data)
                        .map(Ok)
                        .map_err(|e| format!("unexpected end event from the server: {e}"));
                }
                // `build` (progress) and events of later servers: the log tells the story.
                _ => {}
            }
        }
    }
    Ok(Err(
        "the event stream closed before the build ended".to_string()
    ))
}

/// One Server-Sent Event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct SseEvent {
    name: String,
    id: Option<String>,
    data: String,
}

/// Reads Server-Sent Events from a byte stream, whatever its chunks (the parts of the format
/// Berth sends: `event`, `id`, `data`, comments).
#[derive(Debug, Default)]
struct SseReader {
    line: Vec<u8>,
    name: String,
    id: Option<String>,
    data: Option<String>,
}

impl SseReader {
    /// The events completed by `bytes`.
    fn feed(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        let mut events = Vec::new();
        for &byte in bytes {
            if byte != b'\n' {
                self.line.push(byte);
                continue;
            }
            let line = std::mem::take(&mut self.line);
            let line = String::from_utf8_lossy(&line);
            let line = line.strip_suffix('\r').unwrap_or(&line);
            if line.is_empty() {
                let name = std::mem::take(&mut self.name);
                if let Some(data) = self.data.take() {
                    events.push(SseEvent {
                        name: if name.is_empty() {
                            "message".to_string()
                        } else {
                            name
                        },
                        id: self.id.take(),
                        data,
                    });
                }
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "event" => self.name = value.to_string(),
                "id" => self.id = Some(value.to_string()),
                "data" => match &mut self.data {
                    Some(data) => {
                        data.push('\n');
                        data.push_str(value);
                    }
                    None => self.data = Some(value.to_string()),
                },
                // Comments (keep-alives) and fields Berth does not send.
                _ => {}
            }
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_arguments() {
        let cases: [(&[&str], Option<&[(&str, &str)]>); 6] = [
            (&[], Some(&[])),
            (&["A=1", "B=x=y"], Some(&[("A", "1"), ("B", "x=y")])),
            (&["EMPTY="], Some(&[("EMPTY", "")])),
            (&["A=1", "A=2"], Some(&[("A", "2")])),
            (&["=1"], None),
            (&["NOEQUALS"], None),
        ];
        for (items, want) in cases {
            let items: Vec<String> = items.iter().map(|s| s.to_string()).collect();
            let want = want.map(|pairs| {
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<BTreeMap<_, _>>()
            });
            assert_eq!(build_args(&items).ok(), want, "{items:?}");
        }
        let error = build_args(&["oops".to_string()]).unwrap_err();
        assert!(error.contains("--build-arg \"oops\""), "{error}");
    }

    #[test]
    fn test_commands_split_into_words() {
        let cases: [(&str, Result<&[&str], &str>); 12] = [
            ("", Ok(&[])),
            ("   ", Ok(&[])),
            ("/bin/sh /app/test.sh", Ok(&["/bin/sh", "/app/test.sh"])),
            ("  cargo   test  ", Ok(&["cargo", "test"])),
            ("sh -c 'echo a  b'", Ok(&["sh", "-c", "echo a  b"])),
            (r#"echo "say \"hi\" \n""#, Ok(&["echo", r#"say "hi" \n"#])),
            (r"echo a\ b", Ok(&["echo", "a b"])),
            ("echo '' x", Ok(&["echo", "", "x"])),
            ("a'b'\"c\"", Ok(&["abc"])),
            ("echo 'open", Err("a single quote is not closed")),
            ("echo \"open", Err("a double quote is not closed")),
            (r"echo \", Err("ends in a lone backslash")),
        ];
        for (line, want) in cases {
            let want = want
                .map(|words| words.iter().map(|w| w.to_string()).collect::<Vec<_>>())
                .map_err(str::to_string);
            assert_eq!(split_words(line), want, "{line}");
        }
    }

    #[test]
    fn joined_words_read_back() {
        let cases: [(&[&str], &str); 5] = [
            (&["/bin/sh", "/app/test.sh"], "/bin/sh /app/test.sh"),
            (&["sh", "-c", "echo a b"], "sh -c 'echo a b'"),
            (&["echo", "it's"], r"echo 'it'\''s'"),
            (&["echo", ""], "echo ''"),
            (&[], ""),
        ];
        for (words, want) in cases {
            let words: Vec<String> = words.iter().map(|w| w.to_string()).collect();
            let line = join_words(&words);
            assert_eq!(line, want);
            assert_eq!(split_words(&line).unwrap(), words, "{line}");
        }
    }

    #[test]
    fn build_list_paths() {
        let pipeline: TeamObject = "web/api".parse().unwrap();
        let cases = [
            (BuildsOf::Readable, "/builds?limit=20"),
            (BuildsOf::Team("web"), "/builds?team=web&limit=20"),
            (
                BuildsOf::Pipeline(&pipeline),
                "/builds?team=web&pipeline=api&limit=20",
            ),
        ];
        for (of, want) in cases {
            assert_eq!(builds_path(of, 20), want);
        }
    }

    #[test]
    fn durations() {
        let cases = [
            (-5, "0ms"),
            (0, "0ms"),
            (850, "850ms"),
            (1_000, "1.0s"),
            (12_345, "12.3s"),
            (59_999, "59.9s"),
            (60_000, "1m00s"),
            (184_000, "3m04s"),
            (3_720_000, "1h02m"),
        ];
        for (millis, want) in cases {
            assert_eq!(duration(millis), want, "{millis}");
        }
    }

    #[test]
    fn server_sent_events_whatever_the_chunks() {
        let stream = b": keep-alive\n\nevent: build\ndata: {\"id\":1}\n\n\
                       event: log\nid: 12\ndata: line one\ndata: \n\n\
                       event: log\r\nid: 20\r\ndata:two\r\ndata: \r\n\r\n\
                       data: plain\n\nevent: end\ndata: {}\n\n";
        let want = vec![
            SseEvent {
                name: "build".into(),
                id: None,
                data: "{\"id\":1}".into(),
            },
            SseEvent {
                name: "log".into(),
                id: Some("12".into()),
                data: "line one\n".into(),
            },
            SseEvent {
                name: "log".into(),
                id: Some("20".into()),
                data: "two\n".into(),
            },
            SseEvent {
                name: "message".into(),
                id: None,
                data: "plain".into(),
            },
            SseEvent {
                name: "end".into(),
                id: None,
                data: "{}".into(),
            },
        ];
        for chunk_size in [1, 2, 7, stream.len()] {
            let mut reader = SseReader::default();
            let events: Vec<SseEvent> = stream
                .chunks(chunk_size)
                .flat_map(|chunk| reader.feed(chunk))
                .collect();
            assert_eq!(events, want, "chunks of {chunk_size}");
        }
    }

    #[test]
    fn push_hints() {
        let mut pipeline = PipelineDto {
            team: "web".into(),
            name: "api".into(),
            repository_url: None,
            git_path: "/git/web/api.git".into(),
            webhook_path: "/api/v1/pipelines/web/api/webhook".into(),
            has_webhook_secret: false,
            branch_pattern: "main".into(),
            dockerfile: String::new(),
            context: String::new(),
            build_args: BTreeMap::new(),
            test_command: Vec::new(),
            target_repository: "web/api".into(),
            deploy_app: None,
            has_credentials: false,
            created_by: "ada".into(),
            created_at: 0,
            updated_at: 0,
            last_build: None,
        };
        assert_eq!(
            push_hint(&pipeline, "http://host:7700/"),
            "push with: git remote add berth http://host:7700/git/web/api.git && git push berth main"
        );
        pipeline.branch_pattern = "release/*".into();
        assert!(push_hint(&pipeline, "http://host:7700").ends_with("git push berth <branch>"));
    }
}
