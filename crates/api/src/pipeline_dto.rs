//! Wire types of the pipeline API: pipelines (without their credentials, which are write-only)
//! and builds with their steps.

use std::collections::BTreeMap;

use berth_core::pipeline::{Build, BuildStep, Pipeline};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Git credentials: `{username, password}` for https or `{ssh_key}` (a deploy key) for ssh.
/// Sealed with the server's key when stored and never answered.
#[derive(Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GitCredentialsDto {
    pub username: Option<String>,
    pub password: Option<String>,
    /// OpenSSH private key text.
    pub ssh_key: Option<String>,
    /// `known_hosts` lines pinning the ssh host key (trust on first use without them).
    pub known_hosts: Option<String>,
}

impl std::fmt::Debug for GitCredentialsDto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitCredentialsDto")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// Create or replace a pipeline.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PipelineRequest {
    /// Any remote git can fetch: `https://…`, `ssh://…`, `user@host:path`, a local path.
    /// Absent or empty: the pipeline builds from its repository hosted by Berth, which
    /// `git push` to [`PipelineDto::git_path`] fills.
    pub repository_url: Option<String>,
    /// Which branches build (`main`, `release/*`); default `main`.
    pub branch_pattern: Option<String>,
    /// The Dockerfile, relative to the context; default `Dockerfile`.
    pub dockerfile: Option<String>,
    /// The build context inside the repository; default its root.
    pub context: Option<String>,
    pub build_args: Option<BTreeMap<String, String>>,
    /// The test program and arguments run inside the built image; none runs no tests.
    pub test_command: Option<Vec<String>>,
    /// The repository in Berth's registry: `<team>/<name>` of the pipeline's team.
    pub target_repository: String,
    /// The app of the same team to roll the image out to when everything passed.
    pub deploy_app: Option<String>,
    /// Absent on a replace: the stored credentials are kept.
    pub credentials: Option<GitCredentialsDto>,
    /// The shared secret forges sign (GitHub, Gitea) or send (GitLab) push webhooks with.
    /// Sealed and never answered; absent on a replace keeps the stored one, empty removes it
    /// (webhooks are then refused).
    pub webhook_secret: Option<String>,
}

/// A pipeline as answered (its credentials never are).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PipelineDto {
    pub team: String,
    pub name: String,
    /// The remote builds fetch from; `null`: the repository Berth hosts at `git_path`.
    pub repository_url: Option<String>,
    /// Berth's smart-HTTP git endpoint of this pipeline, relative to the server's URL
    /// (`/git/<team>/<name>.git`): `git push` there starts a build.
    pub git_path: String,
    /// Where forges deliver push webhooks, relative to the server's URL.
    pub webhook_path: String,
    /// Whether a webhook secret is stored (webhooks are refused without one).
    pub has_webhook_secret: bool,
    pub branch_pattern: String,
    pub dockerfile: String,
    pub context: String,
    pub build_args: BTreeMap<String, String>,
    pub test_command: Vec<String>,
    pub target_repository: String,
    pub deploy_app: Option<String>,
    /// Whether git credentials are stored.
    pub has_credentials: bool,
    pub created_by: String,
    pub created_at: i64,
    pub updated_at: i64,
    /// The newest build, in `GET` answers (`null`: never built, or in a create/replace answer).
    pub last_build: Option<BuildDto>,
}

impl From<&Pipeline> for PipelineDto {
    fn from(p: &Pipeline) -> Self {
        PipelineDto {
            team: p.team.clone(),
            name: p.name.clone(),
            repository_url: Some(p.repository_url.clone()).filter(|url| !url.is_empty()),
            git_path: format!("/git/{}/{}.git", p.team, p.name),
            webhook_path: format!("/api/v1/pipelines/{}/{}/webhook", p.team, p.name),
            has_webhook_secret: p.sealed_webhook_secret.is_some(),
            branch_pattern: p.branch_pattern.clone(),
            dockerfile: p.dockerfile.clone(),
            context: p.context.clone(),
            build_args: p.build_args.clone(),
            test_command: p.test_command.clone(),
            target_repository: p.target_repository.clone(),
            deploy_app: p.deploy_app.clone(),
            has_credentials: p.sealed_credentials.is_some(),
            created_by: p.created_by.clone(),
            created_at: p.created_at,
            updated_at: p.updated_at,
            last_build: None,
        }
    }
}

/// "Build now": a branch (default: the pipeline's pattern when it names one branch) and
/// optionally an exact commit.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BuildRequest {
    pub branch: Option<String>,
    /// A full commit id.
    pub commit: Option<String>,
}

/// One step of a build.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BuildStepDto {
    /// `fetch`, `build`, `test`, `push` or `deploy`.
    pub name: String,
    /// `pending`, `running`, `succeeded`, `skipped`, `failed`, `cancelled`, `timed_out`,
    /// `interrupted`.
    pub status: String,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub duration_ms: Option<i64>,
}

impl From<&BuildStep> for BuildStepDto {
    fn from(s: &BuildStep) -> Self {
        BuildStepDto {
            name: s.name.clone(),
            status: s.status.as_str().to_owned(),
            started_at: s.started_at,
            finished_at: s.finished_at,
            duration_ms: s.started_at.zip(s.finished_at).map(|(a, b)| (b - a).max(0)),
        }
    }
}

/// One run of a pipeline.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BuildDto {
    pub id: i64,
    pub team: String,
    pub pipeline: String,
    pub number: u64,
    /// `manual`, `webhook` or `git_push`.
    pub trigger: String,
    pub triggered_by: String,
    pub commit: Option<String>,
    pub branch: Option<String>,
    pub author: Option<String>,
    pub author_email: Option<String>,
    pub message: Option<String>,
    /// `queued`, `fetching`, `building`, `testing`, `pushing`, `deploying`, `succeeded`,
    /// `failed`, `cancelled`, `interrupted`, `timed_out`.
    pub status: String,
    pub steps: Vec<BuildStepDto>,
    pub image_digest: Option<String>,
    pub rollout_outcome: Option<String>,
    pub reason: Option<String>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

impl From<&Build> for BuildDto {
    fn from(b: &Build) -> Self {
        BuildDto {
            id: b.id,
            team: b.team.clone(),
            pipeline: b.pipeline.clone(),
            number: b.number,
            trigger: b.trigger.as_str().to_owned(),
            triggered_by: b.triggered_by.clone(),
            commit: b.commit.clone(),
            branch: b.branch.clone(),
            author: b.author.clone(),
            author_email: b.author_email.clone(),
            message: b.message.clone(),
            status: b.status.as_str().to_owned(),
            steps: b.steps.iter().map(BuildStepDto::from).collect(),
            image_digest: b.image_digest.clone(),
            rollout_outcome: b.rollout_outcome.clone(),
            reason: b.reason.clone(),
            created_at: b.created_at,
            started_at: b.started_at,
            finished_at: b.finished_at,
        }
    }
}

/// Which pipelines to list.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PipelinesParams {
    /// Only this team's pipelines.
    pub team: Option<String>,
}

/// Which builds to list, newest first.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct BuildsParams {
    pub team: Option<String>,
    /// Only this pipeline's builds (with `team`).
    pub pipeline: Option<String>,
    /// Only builds with a smaller id (paging).
    pub before: Option<i64>,
    /// At most this many (default 50, at most 500).
    pub limit: Option<u32>,
}

/// How to read a build's log.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct BuildLogParams {
    /// Keep the stream open until the build ends.
    pub follow: Option<bool>,
}
