//! Code pipelines and their builds as stored records: what a team's pipeline is configured to
//! do, and what each build did (trigger, commit, per-step status, image, rollout, reason).
//!
//! The build lifecycle itself lives in `berth-pipeline` (`state.rs`), which moves builds
//! through [`BuildStatus`] and [`StepStatus`] defined here. Step names (`fetch`, `build`, …)
//! are kept as text: the step enum is the pipeline's.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Millis;

/// A team's pipeline: a git repository and branch pattern wired to a Dockerfile, tests, a
/// registry repository and optionally an app to roll out. Keyed by `(team, name)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pipeline {
    pub team: String,
    /// Unique within the team, immutable.
    pub name: String,
    /// Any remote `git` can fetch: `https://…`, `ssh://…`, `user@host:path`, a local path;
    /// empty: the repository Berth hosts for the pipeline (filled by `git push` to Berth).
    pub repository_url: String,
    /// Which pushed branches build (`main`, `release/*`).
    pub branch_pattern: String,
    /// The Dockerfile, relative to the context (empty for `Dockerfile`).
    pub dockerfile: String,
    /// The build context inside the repository (`/`-separated; empty for its root).
    pub context: String,
    pub build_args: BTreeMap<String, String>,
    /// The test program and arguments run inside the built image; empty runs no tests.
    pub test_command: Vec<String>,
    /// The repository in Berth's registry the image is pushed to (`team/app`, no host).
    pub target_repository: String,
    /// The app to roll the image out to when everything passed (continuous deployment).
    pub deploy_app: Option<String>,
    /// The git credentials as sealed by the server's secret box (`berth_auth::SecretBox`,
    /// bound to [`Pipeline::credentials_context`]), never the plaintext; `None`: anonymous.
    pub sealed_credentials: Option<String>,
    /// Where the credentials were given for: the [`remote_origin`] (scheme, host and port) of
    /// the repository address they came with. They are presented to that origin only; `None`
    /// for credentials stored before origins were recorded (bound to the address stored with
    /// them).
    pub credentials_origin: Option<String>,
    /// The webhook secret, sealed likewise (bound to [`Pipeline::webhook_secret_context`]);
    /// `None`: webhooks are refused.
    pub sealed_webhook_secret: Option<String>,
    /// Username of whoever created the pipeline.
    pub created_by: String,
    pub created_at: Millis,
    pub updated_at: Millis,
}

impl Pipeline {
    /// What the secret box binds this pipeline's git credentials to, so a sealed value copied
    /// onto another pipeline's row does not open there.
    pub fn credentials_context(team: &str, name: &str) -> String {
        format!("pipeline/{team}/{name}/credentials")
    }

    /// The origin the stored credentials belong to (see [`Pipeline::credentials_origin`]).
    pub fn credentials_bound_origin(&self) -> Option<String> {
        self.credentials_origin
            .clone()
            .or_else(|| remote_origin(&self.repository_url))
    }

    /// Whether the stored credentials may be presented to the pipeline's repository: there are
    /// some, and the repository is at the origin they were given for.
    pub fn credentials_fit_repository(&self) -> bool {
        self.sealed_credentials.is_some()
            && remote_origin(&self.repository_url).is_some_and(|origin| {
                self.credentials_bound_origin().as_deref() == Some(origin.as_str())
            })
    }

    /// What the secret box binds this pipeline's webhook secret to.
    pub fn webhook_secret_context(team: &str, name: &str) -> String {
        format!("pipeline/{team}/{name}/webhook-secret")
    }
}

/// The origin of a git remote address: `scheme://host:port` with the host in lower case and
/// the scheme's default port filled in (`https` 443, `http` 80, `ssh` 22; scp-like
/// `user@host:path` is `ssh://host:22`). `None` for local paths, `file://` and anything
/// without a host. Credentials are bound to an origin: the user name in the address is not
/// part of it, the port is.
pub fn remote_origin(url: &str) -> Option<String> {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (scheme.to_ascii_lowercase(), rest),
        None => {
            // scp-like `[user@]host:path`: a ':' before any '/'.
            let colon = url.find(':')?;
            if url.find('/').is_some_and(|slash| slash < colon) || colon == 0 {
                return None;
            }
            let host = &url[..colon];
            let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
            if host.is_empty() {
                return None;
            }
            return Some(format!("ssh://{}:22", host.to_ascii_lowercase()));
        }
    };
    let default_port = match scheme.as_str() {
        "https" => 443,
        "http" => 80,
        "ssh" => 22,
        _ => return None,
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = if let Some(bracketed) = host_port.strip_prefix('[') {
        // An IPv6 literal: `[::1]:8443`.
        let (host, after) = bracketed.split_once(']')?;
        (format!("[{host}]"), after.strip_prefix(':'))
    } else {
        match host_port.rsplit_once(':') {
            Some((host, port)) => (host.to_owned(), Some(port)),
            None => (host_port.to_owned(), None),
        }
    };
    if host.is_empty() {
        return None;
    }
    let port = match port {
        None | Some("") => default_port,
        Some(port) => port.parse::<u16>().ok()?,
    };
    Some(format!("{scheme}://{}:{port}", host.to_ascii_lowercase()))
}

/// What started a build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BuildTrigger {
    /// "Build now" through the API or CLI.
    Manual,
    /// A verified push webhook from a forge.
    Webhook,
    /// `git push` to Berth's git endpoint.
    GitPush,
}

impl BuildTrigger {
    pub const ALL: [BuildTrigger; 3] = [
        BuildTrigger::Manual,
        BuildTrigger::Webhook,
        BuildTrigger::GitPush,
    ];

    /// The stable lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            BuildTrigger::Manual => "manual",
            BuildTrigger::Webhook => "webhook",
            BuildTrigger::GitPush => "git_push",
        }
    }

    /// Parses [`BuildTrigger::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// Where a build stands (`berth_pipeline`'s state machine moves it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BuildStatus {
    Queued,
    Fetching,
    Building,
    Testing,
    Pushing,
    Deploying,
    Succeeded,
    Failed,
    Cancelled,
    /// Berth stopped while the build ran.
    Interrupted,
    TimedOut,
}

impl BuildStatus {
    pub const ALL: [BuildStatus; 11] = [
        BuildStatus::Queued,
        BuildStatus::Fetching,
        BuildStatus::Building,
        BuildStatus::Testing,
        BuildStatus::Pushing,
        BuildStatus::Deploying,
        BuildStatus::Succeeded,
        BuildStatus::Failed,
        BuildStatus::Cancelled,
        BuildStatus::Interrupted,
        BuildStatus::TimedOut,
    ];

    /// Whether the build has ended (its status never changes again).
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            BuildStatus::Succeeded
                | BuildStatus::Failed
                | BuildStatus::Cancelled
                | BuildStatus::Interrupted
                | BuildStatus::TimedOut
        )
    }

    /// The stable lowercase name (`queued`, …, `timed_out`).
    pub fn as_str(self) -> &'static str {
        match self {
            BuildStatus::Queued => "queued",
            BuildStatus::Fetching => "fetching",
            BuildStatus::Building => "building",
            BuildStatus::Testing => "testing",
            BuildStatus::Pushing => "pushing",
            BuildStatus::Deploying => "deploying",
            BuildStatus::Succeeded => "succeeded",
            BuildStatus::Failed => "failed",
            BuildStatus::Cancelled => "cancelled",
            BuildStatus::Interrupted => "interrupted",
            BuildStatus::TimedOut => "timed_out",
        }
    }

    /// Parses [`BuildStatus::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

impl std::fmt::Display for BuildStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Display for StepStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where one step stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Pending,
    Running,
    Succeeded,
    /// Not run: not configured, or the build ended before it.
    Skipped,
    Failed,
    Cancelled,
    TimedOut,
    Interrupted,
}

impl StepStatus {
    pub const ALL: [StepStatus; 8] = [
        StepStatus::Pending,
        StepStatus::Running,
        StepStatus::Succeeded,
        StepStatus::Skipped,
        StepStatus::Failed,
        StepStatus::Cancelled,
        StepStatus::TimedOut,
        StepStatus::Interrupted,
    ];

    /// The stable lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Pending => "pending",
            StepStatus::Running => "running",
            StepStatus::Succeeded => "succeeded",
            StepStatus::Skipped => "skipped",
            StepStatus::Failed => "failed",
            StepStatus::Cancelled => "cancelled",
            StepStatus::TimedOut => "timed_out",
            StepStatus::Interrupted => "interrupted",
        }
    }

    /// Parses [`StepStatus::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// The steps of a build, in the order they run (`berth_pipeline::Step` names).
pub const BUILD_STEPS: [&str; 5] = ["fetch", "build", "test", "push", "deploy"];

/// One step's status and times.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildStep {
    /// The step's stable name (see [`BUILD_STEPS`]).
    pub name: String,
    pub status: StepStatus,
    pub started_at: Option<Millis>,
    pub finished_at: Option<Millis>,
}

/// One run of a pipeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Build {
    /// Assigned by the store, increasing across all pipelines, never reused.
    pub id: i64,
    pub team: String,
    pub pipeline: String,
    /// Assigned by the store: 1, 2, … per pipeline, never reused while the pipeline exists.
    pub number: u64,
    pub trigger: BuildTrigger,
    /// Username of whoever asked (manual, git push), or the forge (`github`) of a webhook.
    pub triggered_by: String,
    /// The commit built; `None` until fetched when a branch head was asked for.
    pub commit: Option<String>,
    pub branch: Option<String>,
    pub author: Option<String>,
    pub author_email: Option<String>,
    /// The commit message.
    pub message: Option<String>,
    pub status: BuildStatus,
    /// One record per step, in order.
    pub steps: Vec<BuildStep>,
    /// The pushed image's manifest digest (`sha256:…`).
    pub image_digest: Option<String>,
    /// The deployer's account of the rollout the build caused.
    pub rollout_outcome: Option<String>,
    /// Why the build did not succeed: a sentence naming the cause.
    pub reason: Option<String>,
    /// When the build was queued.
    pub created_at: Millis,
    /// When its first step started.
    pub started_at: Option<Millis>,
    pub finished_at: Option<Millis>,
}

impl Build {
    /// A queued build with every step of [`BUILD_STEPS`] pending; `id` and `number` are
    /// assigned when the store creates it.
    pub fn queued(
        team: &str,
        pipeline: &str,
        trigger: BuildTrigger,
        triggered_by: &str,
        now: Millis,
    ) -> Self {
        Build {
            id: 0,
            team: team.to_owned(),
            pipeline: pipeline.to_owned(),
            number: 0,
            trigger,
            triggered_by: triggered_by.to_owned(),
            commit: None,
            branch: None,
            author: None,
            author_email: None,
            message: None,
            status: BuildStatus::Queued,
            steps: BUILD_STEPS
                .iter()
                .map(|name| BuildStep {
                    name: (*name).to_owned(),
                    status: StepStatus::Pending,
                    started_at: None,
                    finished_at: None,
                })
                .collect(),
            image_digest: None,
            rollout_outcome: None,
            reason: None,
            created_at: now,
            started_at: None,
            finished_at: None,
        }
    }

    /// Ends an unfinished build as interrupted (Berth stopped under it), the way the pipeline's
    /// state machine ends a build: the running step is interrupted, steps not run are skipped.
    /// Returns whether anything changed (an ended build is left alone).
    pub fn interrupt(&mut self, reason: &str, now: Millis) -> bool {
        if self.status.is_terminal() {
            return false;
        }
        for step in &mut self.steps {
            match step.status {
                StepStatus::Running => {
                    step.status = StepStatus::Interrupted;
                    step.finished_at = Some(now);
                }
                StepStatus::Pending => step.status = StepStatus::Skipped,
                _ => {}
            }
        }
        self.status = BuildStatus::Interrupted;
        self.finished_at = Some(now);
        self.reason = Some(reason.to_owned());
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_match_serde() {
        for v in BuildStatus::ALL {
            assert_eq!(BuildStatus::parse(v.as_str()), Some(v));
            assert_eq!(serde_json::to_value(v).unwrap(), v.as_str());
        }
        for v in StepStatus::ALL {
            assert_eq!(StepStatus::parse(v.as_str()), Some(v));
            assert_eq!(serde_json::to_value(v).unwrap(), v.as_str());
        }
        for v in BuildTrigger::ALL {
            assert_eq!(BuildTrigger::parse(v.as_str()), Some(v));
            assert_eq!(serde_json::to_value(v).unwrap(), v.as_str());
        }
        assert_eq!(BuildStatus::parse("running"), None);
        let terminal: Vec<_> = BuildStatus::ALL
            .into_iter()
            .filter(|s| s.is_terminal())
            .map(BuildStatus::as_str)
            .collect();
        assert_eq!(
            terminal,
            [
                "succeeded",
                "failed",
                "cancelled",
                "interrupted",
                "timed_out"
            ]
        );
    }

    #[test]
    fn interrupt_ends_only_unfinished_builds() {
        let mut build = Build::queued("web", "api", BuildTrigger::Manual, "alice", 10);
        build.status = BuildStatus::Building;
        build.started_at = Some(11);
        build.steps[0].status = StepStatus::Succeeded;
        build.steps[0].started_at = Some(11);
        build.steps[0].finished_at = Some(12);
        build.steps[1].status = StepStatus::Running;
        build.steps[1].started_at = Some(12);

        assert!(build.interrupt("Berth restarted", 20));
        assert_eq!(build.status, BuildStatus::Interrupted);
        assert_eq!(build.finished_at, Some(20));
        assert_eq!(build.reason.as_deref(), Some("Berth restarted"));
        let statuses: Vec<_> = build.steps.iter().map(|s| s.status).collect();
        assert_eq!(
            statuses,
            [
                StepStatus::Succeeded,
                StepStatus::Interrupted,
                StepStatus::Skipped,
                StepStatus::Skipped,
                StepStatus::Skipped
            ]
        );
        assert_eq!(build.steps[1].finished_at, Some(20));
        assert_eq!(
            build.steps[0].finished_at,
            Some(12),
            "finished steps keep times"
        );

        let before = build.clone();
        assert!(
            !build.interrupt("again", 30),
            "an ended build stays as it is"
        );
        assert_eq!(build, before);
    }

    #[test]
    fn remote_origins() {
        let cases = [
            (
                "https://git.example.com/acme/shop.git",
                Some("https://git.example.com:443"),
            ),
            (
                "https://Git.Example.com:443/acme",
                Some("https://git.example.com:443"),
            ),
            (
                "https://git.example.com:8443/acme",
                Some("https://git.example.com:8443"),
            ),
            (
                "http://git.example.com/acme",
                Some("http://git.example.com:80"),
            ),
            (
                "ssh://git@git.example.com/acme.git",
                Some("ssh://git.example.com:22"),
            ),
            (
                "ssh://git@git.example.com:2222/acme.git",
                Some("ssh://git.example.com:2222"),
            ),
            ("git@github.com:acme/shop.git", Some("ssh://github.com:22")),
            ("github.com:acme/shop.git", Some("ssh://github.com:22")),
            ("https://[::1]:7700/git/a.git", Some("https://[::1]:7700")),
            (
                "https://evil.example.com/git.example.com",
                Some("https://evil.example.com:443"),
            ),
            ("/srv/git/shop.git", None),
            ("file:///srv/git/shop.git", None),
            ("./shop:x", None),
            ("https:///nohost", None),
            ("https://host:notaport/x", None),
        ];
        for (url, want) in cases {
            assert_eq!(remote_origin(url).as_deref(), want, "{url}");
        }
    }

    #[test]
    fn credentials_fit_only_their_origin() {
        let mut pipeline = Pipeline {
            team: "web".into(),
            name: "api".into(),
            repository_url: "https://git.example.com/a.git".into(),
            branch_pattern: "main".into(),
            dockerfile: String::new(),
            context: String::new(),
            build_args: BTreeMap::new(),
            test_command: Vec::new(),
            target_repository: "web/api".into(),
            deploy_app: None,
            sealed_credentials: Some("sealed".into()),
            credentials_origin: Some("https://git.example.com:443".into()),
            sealed_webhook_secret: None,
            created_by: "ada".into(),
            created_at: 0,
            updated_at: 0,
        };
        assert!(pipeline.credentials_fit_repository());
        pipeline.repository_url = "https://evil.example.com/a.git".into();
        assert!(!pipeline.credentials_fit_repository());
        pipeline.repository_url = "/srv/git/a.git".into();
        assert!(!pipeline.credentials_fit_repository());
        // Legacy credentials: bound to the address stored with them.
        pipeline.credentials_origin = None;
        pipeline.repository_url = "https://evil.example.com/a.git".into();
        assert!(pipeline.credentials_fit_repository());
        pipeline.sealed_credentials = None;
        assert!(!pipeline.credentials_fit_repository());
    }

    #[test]
    fn secret_contexts_name_the_pipeline() {
        assert_eq!(
            Pipeline::credentials_context("web", "api"),
            "pipeline/web/api/credentials"
        );
        assert_ne!(
            Pipeline::webhook_secret_context("web", "api"),
            Pipeline::credentials_context("web", "api")
        );
    }
}
