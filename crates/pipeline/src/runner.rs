//! Running one build: fetch the commit → build its image → run the tests inside it → tag it
//! with the commit and branch and push it → roll it out, streaming every line to a
//! [`BuildSink`] and honouring cancel and the build's timeout.
//!
//! A failing step ends the build at once: a red test pushes nothing and deploys nothing.
//! Whatever a build made on the host goes with it — the checkout, the test container (which
//! Berth labels `berth.build=<id>`; the end of a build sweeps what still carries it), and the
//! tags of an image whose build failed after it was built. The image builder removes its own
//! intermediate containers, even on failure. Images of successful builds stay in the engine:
//! they are its build cache. Images carry no per-build label (only the commit, the pipeline
//! and the namespace), so the same commit on the same base builds the same image, and the
//! same digest. The sink sees the [`BuildState`] after every transition (that is what the API
//! stores), and the final state is returned in the [`BuildReport`].

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use berth_engine::context::{clean_path, resolve_inside};
use berth_engine::{
    BuildContext, BuildSpec, EngineError, ImageBuilder, LogLine, LogStream, RegistryAuth,
    RunOutcome, RunSpec, labels,
};
use tokio::time::Instant;

use crate::base_images::ImageScope;
use crate::branch::{branch_tag, docker_name};
use crate::cancel::{Cancel, CancelReason};
use crate::git::{self, CommitInfo, GitError, GitRemote, Revision};
use crate::state::{BuildState, Ending, Step};

/// Label with the commit an image was built from (OCI's annotation name).
pub const REVISION_LABEL: &str = "org.opencontainers.image.revision";
/// How long the end of a build waits for the engine to remove containers the build left.
const SWEEP_PATIENCE: Duration = Duration::from_secs(10);

/// Everything one build needs; the API assembles it from a pipeline and a trigger.
#[derive(Debug, Clone)]
pub struct BuildPlan {
    /// Unique id of the build; names its test container and labels what it makes.
    pub build_id: String,
    /// When the build was queued (unix ms).
    pub queued_at_ms: i64,
    pub remote: GitRemote,
    /// The branch pushed or asked for; the image is tagged with it too.
    pub branch: Option<String>,
    /// The exact commit; when absent, the branch's head is built.
    pub commit: Option<String>,
    /// The build context inside the repository (`/`-separated; empty for its root).
    pub context_dir: String,
    /// The Dockerfile, relative to the context (empty for `Dockerfile`).
    pub dockerfile: String,
    pub build_args: BTreeMap<String, String>,
    /// The test program and arguments, run inside the built image; empty runs no tests.
    pub test_command: Vec<String>,
    pub test_env: BTreeMap<String, String>,
    /// CPU (millicores) and memory (bytes) the test container may use; `None`: unlimited.
    pub test_cpu_millis: Option<u64>,
    pub test_memory_bytes: Option<u64>,
    /// The repository to push to, with the registry host: `registry:7700/team/app`.
    pub image_repository: String,
    /// Credentials for the registry (pushing, and base images in it).
    pub registry_auth: Option<RegistryAuth>,
    /// The whole build is stopped after this long.
    pub timeout: Duration,
    /// Extra labels for the images and containers the build makes.
    pub labels: BTreeMap<String, String>,
    /// The app to roll the image out to when everything passed.
    pub deploy_app: Option<String>,
    /// Which images the Dockerfile may build on; `None`: any.
    pub image_scope: Option<ImageScope>,
}

/// What a successful build asks the [`Deployer`] to roll out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployRequest {
    pub build_id: String,
    pub app: String,
    /// The pushed image by digest (`registry/team/app@sha256:…`).
    pub image: String,
    /// The same image by its commit tag (`registry/team/app:<sha>`).
    pub tagged_image: String,
    pub commit: String,
    pub branch: Option<String>,
}

/// Rolls a built image out to an app (the API implements it on the store and controller).
#[async_trait]
pub trait Deployer: Send + Sync {
    /// Starts the rollout and waits for its outcome; returns a sentence describing it (the
    /// build records it) or why it failed. `log` adds lines to the build's log.
    async fn deploy(
        &self,
        request: &DeployRequest,
        log: &(dyn Fn(&str) + Send + Sync),
    ) -> Result<String, String>;
}

/// Where a build's output line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LogSource {
    /// Berth's own account of what it does.
    Berth,
    Stdout,
    Stderr,
}

/// One line of a build's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildLog {
    pub step: Step,
    pub source: LogSource,
    pub text: String,
    /// Unix ms, from the runner's clock.
    pub at_ms: i64,
}

/// Receives a build's progress as it happens: to store it, stream it to followers, or both.
/// Calls come from the build's task and must not block for long.
pub trait BuildSink: Send + Sync {
    /// The build's state after a transition.
    fn state(&self, state: &BuildState);
    /// A line of output.
    fn log(&self, line: &BuildLog);
    /// The commit being built, once fetched (before the image is built).
    fn commit(&self, _commit: &CommitInfo) {}
}

/// The image a build made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltImage {
    /// The engine's image id.
    pub id: String,
    /// `repository:<commit>` and, for a branch, `repository:<branch tag>`.
    pub references: Vec<String>,
    /// The manifest digest in the registry, once pushed.
    pub digest: Option<String>,
}

/// How a build ended and what it made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildReport {
    pub state: BuildState,
    pub commit: Option<CommitInfo>,
    pub image: Option<BuiltImage>,
    /// The deployer's account of the rollout.
    pub deployment: Option<String>,
}

pub use berth_core::clock::Clock;

/// Runs builds on an engine; checkouts go under `work_root`.
#[derive(Clone)]
pub struct Runner {
    engine: Arc<dyn ImageBuilder>,
    work_root: PathBuf,
    deployer: Option<Arc<dyn Deployer>>,
    clock: Clock,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("work_root", &self.work_root)
            .field("deployer", &self.deployer.is_some())
            .finish_non_exhaustive()
    }
}

/// Why a build stops before its end.
enum Halt {
    /// A step failed; the sentence names the cause.
    Failed(String),
    /// The cancel token fired or the time is up.
    Stopped,
}

impl Runner {
    pub fn new(engine: Arc<dyn ImageBuilder>, work_root: impl Into<PathBuf>) -> Self {
        Self {
            engine,
            work_root: work_root.into(),
            deployer: None,
            clock: berth_core::clock::system_clock(),
        }
    }

    /// Rolls successful builds out through `deployer` (builds with a `deploy_app` fail
    /// without one).
    pub fn with_deployer(mut self, deployer: Arc<dyn Deployer>) -> Self {
        self.deployer = Some(deployer);
        self
    }

    /// Replaces the wall clock that stamps transitions and log lines.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Runs `plan` to its end. Never fails: how it went is in the report.
    pub async fn run(
        &self,
        plan: &BuildPlan,
        sink: &dyn BuildSink,
        cancel: &Cancel,
    ) -> BuildReport {
        let run = Run {
            runner: self,
            plan,
            sink,
            cancel,
            deadline: Instant::now() + plan.timeout,
            state: Mutex::new(BuildState::queued(plan.queued_at_ms)),
            report: Mutex::new(Outputs::default()),
        };
        let span = tracing::info_span!("build", id = %plan.build_id);
        tracing::Instrument::instrument(run.execute(), span).await;
        let outputs = run.report.into_inner().unwrap_or_else(|e| e.into_inner());
        BuildReport {
            state: run.state.into_inner().unwrap_or_else(|e| e.into_inner()),
            commit: outputs.commit,
            image: outputs.image,
            deployment: outputs.deployment,
        }
    }
}

#[derive(Default)]
struct Outputs {
    commit: Option<CommitInfo>,
    image: Option<BuiltImage>,
    deployment: Option<String>,
}

/// One build in progress.
struct Run<'a> {
    runner: &'a Runner,
    plan: &'a BuildPlan,
    sink: &'a dyn BuildSink,
    cancel: &'a Cancel,
    deadline: Instant,
    state: Mutex<BuildState>,
    report: Mutex<Outputs>,
}

impl Run<'_> {
    fn now(&self) -> i64 {
        (self.runner.clock)()
    }

    /// Applies a transition and shows the new state to the sink.
    fn transition(
        &self,
        change: impl FnOnce(&mut BuildState, i64) -> Result<(), crate::state::TransitionError>,
    ) {
        let now = self.now();
        let snapshot = {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            if let Err(e) = change(&mut state, now) {
                // The runner drives the steps in order: this is a bug, not a build failure.
                tracing::error!(error = %e, "refused build transition");
                return;
            }
            state.clone()
        };
        self.sink.state(&snapshot);
    }

    fn log(&self, step: Step, source: LogSource, text: &str) {
        self.sink.log(&BuildLog {
            step,
            source,
            text: text.to_owned(),
            at_ms: self.now(),
        });
    }

    fn engine_line(&self, step: Step, line: LogLine) {
        let source = match line.stream {
            LogStream::Stdout => LogSource::Stdout,
            LogStream::Stderr => LogSource::Stderr,
        };
        self.log(step, source, &line.text);
    }

    async fn execute(&self) {
        let result = match validate(self.plan) {
            Err(reason) => Err(Halt::Failed(reason)),
            Ok(()) if self.cancel.is_cancelled() => Err(Halt::Stopped),
            Ok(()) => self.steps().await,
        };
        self.sweep().await;
        if result.is_err() {
            self.untag_failed_image().await;
        }
        match result {
            Ok(()) => self.transition(|s, now| s.succeed(now)),
            Err(Halt::Failed(reason)) => {
                tracing::info!(%reason, "build failed");
                self.transition(|s, now| s.end(Ending::Failed, reason, now));
            }
            Err(Halt::Stopped) => {
                let (ending, reason) = self.stop_reason();
                tracing::info!(%reason, "build stopped");
                self.transition(|s, now| s.end(ending, reason, now));
            }
        }
    }

    /// Removes the tags a failed build gave its image (`…:<commit>`, `…:<branch>`), so red
    /// builds do not pile up in the engine; the engine deletes the image with its last tag.
    /// A tag that now names another build's image (the same commit built again) is kept.
    async fn untag_failed_image(&self) {
        let Some(image) = self.outputs().image.clone() else {
            return;
        };
        let engine = &self.runner.engine;
        for reference in &image.references {
            match engine.image_id(reference).await {
                Ok(Some(id)) if id == image.id => {}
                Ok(_) => continue,
                Err(e) => {
                    tracing::warn!(reference, error = %e, "cannot check a failed build's image");
                    continue;
                }
            }
            if let Err(e) = engine.remove_image(reference).await {
                tracing::warn!(reference, error = %e, "cannot remove a failed build's image");
            }
        }
    }

    /// Removes the containers Berth labelled with this build that are still there (a test
    /// run abandoned midway is removed in the background). Afterwards the build owns nothing
    /// on the engine but its images.
    async fn sweep(&self) {
        let engine = &self.runner.engine;
        let filter = BTreeMap::from([(labels::BUILD.to_owned(), self.plan.build_id.clone())]);
        let give_up = Instant::now() + SWEEP_PATIENCE;
        loop {
            let left = match engine.list_runs(&filter).await {
                Ok(left) if left.is_empty() => return,
                Ok(left) => left,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot list the build's containers");
                    return;
                }
            };
            if Instant::now() >= give_up {
                tracing::warn!(count = left.len(), "containers of the build left behind");
                return;
            }
            for container in left {
                if let Err(e) = engine.remove_run(&container.id).await {
                    tracing::debug!(container = %container.name, error = %e, "not removed yet");
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// How a stopped build ends: the cancel's reason, else the deadline.
    fn stop_reason(&self) -> (Ending, String) {
        let during = self
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .running_step()
            .map_or_else(|| "before it started".to_owned(), |s| format!("during {s}"));
        match self.cancel.reason() {
            Some(CancelReason::User) => (Ending::Cancelled, format!("cancelled {during}")),
            Some(CancelReason::Shutdown) => {
                (Ending::Interrupted, format!("Berth stopped {during}"))
            }
            None => (
                Ending::TimedOut,
                format!(
                    "the build ran longer than its timeout of {} and was stopped {during}",
                    describe(self.plan.timeout)
                ),
            ),
        }
    }

    /// Runs `work` as `step`. With `drop_on_stop`, cancel and the deadline abandon the work
    /// (it must be safe to drop); otherwise the work watches them itself and cleans up first.
    async fn step<T>(
        &self,
        step: Step,
        drop_on_stop: bool,
        work: impl Future<Output = Result<T, Halt>>,
    ) -> Result<T, Halt> {
        self.transition(|s, now| s.start_step(step, now));
        let result = if drop_on_stop {
            tokio::select! {
                r = work => r,
                () = self.cancel.token().cancelled() => Err(Halt::Stopped),
                () = tokio::time::sleep_until(self.deadline) => Err(Halt::Stopped),
            }
        } else {
            work.await
        };
        if result.is_ok() {
            self.transition(|s, now| s.finish_step(step, now));
        }
        result
    }

    fn skip(&self, step: Step, why: &str) {
        self.log(step, LogSource::Berth, &format!("skipped: {why}"));
        self.transition(|s, _| s.skip_step(step));
    }

    async fn steps(&self) -> Result<(), Halt> {
        let plan = self.plan;
        let engine = &self.runner.engine;

        let checkout = self
            .step(Step::Fetch, true, async {
                let revision = Revision {
                    branch: plan.branch.clone(),
                    commit: plan.commit.clone(),
                };
                let log = |line: &str| self.log(Step::Fetch, LogSource::Stdout, line);
                git::fetch(
                    &plan.remote,
                    &revision,
                    &self.runner.work_root,
                    &log,
                    self.cancel.token(),
                )
                .await
                .map_err(|e| match e {
                    GitError::Cancelled => Halt::Stopped,
                    e => Halt::Failed(format!("fetch failed: {e}")),
                })
            })
            .await?;
        let commit = checkout.commit.clone();
        self.log(
            Step::Fetch,
            LogSource::Berth,
            &format!(
                "commit {} by {}: {}",
                short(&commit.sha),
                commit.author,
                commit.message.lines().next().unwrap_or_default()
            ),
        );
        self.sink.commit(&commit);
        self.outputs().commit = Some(commit.clone());

        let commit_ref = format!("{}:{}", plan.image_repository, commit.sha);
        let branch_ref = plan
            .branch
            .as_deref()
            .map(|b| format!("{}:{}", plan.image_repository, branch_tag(b)));
        let image_id = self
            .step(Step::Build, true, async {
                let (context, dockerfile) =
                    locate_context(&checkout.path(), &plan.context_dir, &plan.dockerfile).map_err(
                        |e| Halt::Failed(format!("{e} in commit {}", short(&commit.sha))),
                    )?;
                if let Some(scope) = &plan.image_scope {
                    let text = read_dockerfile(&context.join(&dockerfile))?;
                    scope.check(&text, &plan.build_args).map_err(Halt::Failed)?;
                }
                self.log(
                    Step::Build,
                    LogSource::Berth,
                    &format!("building {commit_ref} from {dockerfile}"),
                );
                // Nothing per build: the same commit must give the same image.
                let mut labels = plan.labels.clone();
                labels.insert(REVISION_LABEL.to_owned(), commit.sha.clone());
                let spec = BuildSpec {
                    context: BuildContext::Directory(context),
                    dockerfile,
                    tags: vec![commit_ref.clone()],
                    build_args: plan.build_args.clone(),
                    labels,
                    registry_auth: plan.registry_auth.iter().cloned().collect(),
                    // The build's RUN steps are held to the same limits as its tests.
                    cpu_millis: plan.test_cpu_millis,
                    memory_bytes: plan.test_memory_bytes,
                };
                engine
                    .build_image(spec, &|l| self.engine_line(Step::Build, l))
                    .await
                    .map_err(|e| match e {
                        EngineError::BuildFailed(m) => {
                            Halt::Failed(format!("the image build failed: {m}"))
                        }
                        e => Halt::Failed(format!("the image build could not run: {e}")),
                    })
            })
            .await?;
        drop(checkout);
        self.outputs().image = Some(BuiltImage {
            id: image_id.clone(),
            references: std::iter::once(commit_ref.clone())
                .chain(branch_ref.clone())
                .collect(),
            digest: None,
        });

        if plan.test_command.is_empty() {
            self.skip(Step::Test, "no test command");
        } else {
            self.step(Step::Test, false, self.test(&image_id)).await?;
        }

        let digest = self
            .step(Step::Push, true, async {
                if let Some(branch_ref) = &branch_ref {
                    engine
                        .tag_image(&image_id, branch_ref)
                        .await
                        .map_err(|e| Halt::Failed(format!("tagging {branch_ref} failed: {e}")))?;
                }
                let mut digest = String::new();
                for reference in std::iter::once(&commit_ref).chain(branch_ref.as_ref()) {
                    self.log(
                        Step::Push,
                        LogSource::Berth,
                        &format!("pushing {reference}"),
                    );
                    digest = engine
                        .push_image(reference, plan.registry_auth.as_ref(), &|l| {
                            self.engine_line(Step::Push, l)
                        })
                        .await
                        .map_err(|e| Halt::Failed(format!("the push failed: {e}")))?;
                }
                self.log(Step::Push, LogSource::Berth, &format!("pushed {digest}"));
                Ok(digest)
            })
            .await?;
        if let Some(image) = &mut self.outputs().image {
            image.digest = Some(digest.clone());
        }

        match (&plan.deploy_app, &self.runner.deployer) {
            (None, _) => self.skip(Step::Deploy, "no app to roll out"),
            (Some(app), deployer) => {
                let request = DeployRequest {
                    build_id: plan.build_id.clone(),
                    app: app.clone(),
                    image: format!("{}@{digest}", plan.image_repository),
                    tagged_image: commit_ref.clone(),
                    commit: commit.sha.clone(),
                    branch: plan.branch.clone(),
                };
                let summary = self
                    .step(Step::Deploy, true, async {
                        let deployer = deployer.as_ref().ok_or_else(|| {
                            Halt::Failed(format!(
                                "cannot roll out {app}: this server has no deployer"
                            ))
                        })?;
                        self.log(
                            Step::Deploy,
                            LogSource::Berth,
                            &format!("rolling out {} to {app}", request.image),
                        );
                        let log = |line: &str| self.log(Step::Deploy, LogSource::Berth, line);
                        deployer
                            .deploy(&request, &log)
                            .await
                            .map_err(|e| Halt::Failed(format!("rolling out {app} failed: {e}")))
                    })
                    .await?;
                self.log(Step::Deploy, LogSource::Berth, &summary);
                self.outputs().deployment = Some(summary);
            }
        }
        Ok(())
    }

    fn outputs(&self) -> std::sync::MutexGuard<'_, Outputs> {
        self.report.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs the test command in the built image; a non-zero exit fails the build.
    async fn test(&self, image_id: &str) -> Result<(), Halt> {
        let plan = self.plan;
        let remaining = self.deadline.saturating_duration_since(Instant::now());
        let mut labels = plan.labels.clone();
        labels.insert(labels::BUILD.to_owned(), plan.build_id.clone());
        let spec = RunSpec {
            name: container_name(&plan.build_id),
            image: image_id.to_owned(),
            command: plan.test_command.clone(),
            env: plan.test_env.clone(),
            labels,
            timeout: remaining,
            cpu_millis: plan.test_cpu_millis,
            memory_bytes: plan.test_memory_bytes,
            network: None,
        };
        let shown = plan.test_command.join(" ");
        self.log(Step::Test, LogSource::Berth, &format!("running {shown}"));
        let outcome = self
            .runner
            .engine
            .run_to_completion(
                &spec,
                &|l| self.engine_line(Step::Test, l),
                self.cancel.token(),
            )
            .await
            .map_err(|e| Halt::Failed(format!("the tests could not run: {e}")))?;
        match outcome {
            RunOutcome::Exited(0) => {
                self.log(Step::Test, LogSource::Berth, "tests passed");
                Ok(())
            }
            RunOutcome::Exited(code) => Err(Halt::Failed(format!(
                "the tests failed: `{shown}` exited with code {code}"
            ))),
            RunOutcome::TimedOut | RunOutcome::Cancelled => Err(Halt::Stopped),
        }
    }
}

/// Checks a plan before anything runs.
fn validate(plan: &BuildPlan) -> Result<(), String> {
    if plan.image_repository.is_empty() || plan.image_repository.contains(['@', ' ']) {
        return Err(format!(
            "invalid image repository {:?}: expected registry/team/name",
            plan.image_repository
        ));
    }
    let (_, after_slash) = plan
        .image_repository
        .rsplit_once('/')
        .unwrap_or(("", &plan.image_repository));
    if after_slash.contains(':') {
        return Err(format!(
            "invalid image repository {:?}: it must not carry a tag",
            plan.image_repository
        ));
    }
    for (what, path) in [
        ("build context", &plan.context_dir),
        ("Dockerfile", &plan.dockerfile),
    ] {
        relative_inside(path).map_err(|why| format!("invalid {what} path {path:?}: {why}"))?;
    }
    if plan.timeout.is_zero() {
        return Err("the build timeout is zero".into());
    }
    Ok(())
}

/// Accepts a relative path that stays inside its root.
fn relative_inside(path: &str) -> Result<(), &'static str> {
    if path.starts_with('/') {
        return Err("it must be relative to the repository");
    }
    if path.split('/').any(|part| part == "..") {
        return Err("it must not leave the repository ('..')");
    }
    Ok(())
}

/// The context directory and the Dockerfile path inside it, checked to exist. Both are
/// resolved without ever following a symbolic link out of the checkout (the context) or out
/// of the context (the Dockerfile, as the engine reads it from the packed context): a
/// repository cannot make the server's own files its build context.
fn locate_context(
    checkout: &Path,
    context_dir: &str,
    dockerfile: &str,
) -> Result<(PathBuf, String), String> {
    let shown = |rel: &str| {
        if rel.is_empty() {
            ".".to_owned()
        } else {
            rel.to_owned()
        }
    };
    let context_rel =
        resolve_inside(checkout, context_dir).map_err(|e| format!("invalid build context: {e}"))?;
    let context = checkout.join(&context_rel);
    if !std::fs::symlink_metadata(&context).is_ok_and(|m| m.is_dir()) {
        return Err(format!(
            "the build context {:?} does not exist",
            shown(&clean_path(context_dir))
        ));
    }
    let asked = match clean_path(dockerfile) {
        d if d.is_empty() => berth_engine::context::DEFAULT_DOCKERFILE.to_owned(),
        d => d,
    };
    let dockerfile_rel =
        resolve_inside(&context, &asked).map_err(|e| format!("invalid Dockerfile path: {e}"))?;
    if !std::fs::symlink_metadata(context.join(&dockerfile_rel)).is_ok_and(|m| m.is_file()) {
        let shown = if context_rel.is_empty() {
            asked
        } else {
            format!("{context_rel}/{asked}")
        };
        return Err(format!("Dockerfile not found: {shown:?}"));
    }
    Ok((context, dockerfile_rel))
}

/// The largest Dockerfile read (Docker's own limit is far above any real one).
const MAX_DOCKERFILE: u64 = 1 << 20;

/// The text of a Dockerfile that [`locate_context`] found.
fn read_dockerfile(path: &Path) -> Result<String, Halt> {
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    if size > MAX_DOCKERFILE {
        return Err(Halt::Failed(format!(
            "the Dockerfile is larger than {} KiB",
            MAX_DOCKERFILE >> 10
        )));
    }
    std::fs::read(path)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .map_err(|e| Halt::Failed(format!("the Dockerfile cannot be read: {e}")))
}

/// A container name for a build's tests (Docker allows `[a-zA-Z0-9][a-zA-Z0-9_.-]*`).
fn container_name(build_id: &str) -> String {
    let id: String = docker_name(build_id).chars().take(64).collect();
    format!("berth-build-{id}-test")
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}

/// `90 s`, `10 min`, `1 h 30 min`.
fn describe(d: Duration) -> String {
    let secs = d.as_secs();
    match (secs / 3600, (secs % 3600) / 60, secs % 60) {
        (0, 0, s) => format!("{s} s"),
        (0, m, 0) => format!("{m} min"),
        (0, m, s) => format!("{m} min {s} s"),
        (h, 0, _) => format!("{h} h"),
        (h, m, _) => format!("{h} h {m} min"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> BuildPlan {
        BuildPlan {
            build_id: "42".into(),
            queued_at_ms: 0,
            remote: GitRemote {
                url: "/srv/git/app.git".into(),
                auth: git::GitAuth::None,
            },
            branch: Some("main".into()),
            commit: None,
            context_dir: String::new(),
            dockerfile: String::new(),
            build_args: BTreeMap::new(),
            test_command: vec![],
            test_env: BTreeMap::new(),
            test_cpu_millis: None,
            test_memory_bytes: None,
            image_repository: "127.0.0.1:7700/team/app".into(),
            registry_auth: None,
            timeout: Duration::from_secs(600),
            labels: BTreeMap::new(),
            deploy_app: None,
            image_scope: None,
        }
    }

    #[test]
    fn validates_plans() {
        assert_eq!(validate(&plan()), Ok(()));
        type Edit = fn(&mut BuildPlan);
        let cases: &[(&str, Edit, &str)] = &[
            (
                "empty repository",
                |p| p.image_repository.clear(),
                "invalid image repository",
            ),
            (
                "tagged repository",
                |p| p.image_repository.push_str(":v1"),
                "must not carry a tag",
            ),
            (
                "digest",
                |p| p.image_repository.push_str("@sha256:x"),
                "invalid image repository",
            ),
            (
                "escaping context",
                |p| p.context_dir = "../other".into(),
                "build context",
            ),
            (
                "absolute context",
                |p| p.context_dir = "/etc".into(),
                "relative",
            ),
            (
                "escaping Dockerfile",
                |p| p.dockerfile = "a/../../Dockerfile".into(),
                "'..'",
            ),
            (
                "zero timeout",
                |p| p.timeout = Duration::ZERO,
                "timeout is zero",
            ),
        ];
        for (name, edit, want) in cases {
            let mut p = plan();
            edit(&mut p);
            let err = validate(&p).expect_err(name);
            assert!(err.contains(want), "{name}: {err}");
        }
        // A registry port is not a tag.
        let mut p = plan();
        p.image_repository = "localhost:5000/app".into();
        assert_eq!(validate(&p), Ok(()));
    }

    #[test]
    fn locates_the_context_and_dockerfile() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("svc/docker")).unwrap();
        std::fs::write(root.join("Dockerfile"), "FROM x").unwrap();
        std::fs::write(root.join("svc/docker/app.Dockerfile"), "FROM x").unwrap();
        let ok = locate_context(root, "", "").unwrap();
        assert_eq!(ok, (root.join(""), "Dockerfile".to_owned()));
        let ok = locate_context(root, "./svc/", "docker/app.Dockerfile").unwrap();
        assert_eq!(ok, (root.join("svc"), "docker/app.Dockerfile".to_owned()));
        assert_eq!(
            locate_context(root, "svc", ""),
            Err("Dockerfile not found: \"svc/Dockerfile\"".to_owned())
        );
        assert_eq!(
            locate_context(root, "", "nope/Dockerfile"),
            Err("Dockerfile not found: \"nope/Dockerfile\"".to_owned())
        );
        assert_eq!(
            locate_context(root, "missing", ""),
            Err("the build context \"missing\" does not exist".to_owned())
        );
    }

    #[test]
    fn a_context_or_dockerfile_never_leads_out_of_the_checkout() {
        use std::os::unix::fs::symlink;
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("Dockerfile"), "FROM scratch").unwrap();
        std::fs::write(outside.path().join("admin-token"), "secret").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("app/real")).unwrap();
        std::fs::write(root.join("app/real/Dockerfile"), "FROM x").unwrap();
        symlink(outside.path(), root.join("abs")).unwrap();
        symlink("../../../../../../../../..", root.join("up")).unwrap();
        symlink("real", root.join("app/inner")).unwrap();
        symlink(
            outside.path().join("Dockerfile"),
            root.join("app/real/Evil"),
        )
        .unwrap();
        symlink("../../abs", root.join("app/real/hop")).unwrap();
        symlink("loop", root.join("loop")).unwrap();
        let escapes = |context: &str, dockerfile: &str| {
            let answer = locate_context(root, context, dockerfile);
            assert!(
                answer.as_ref().is_err_and(
                    |e| e.contains("leads out of") || e.contains("too many symbolic links")
                ),
                "{context:?} {dockerfile:?}: {answer:?}"
            );
        };
        escapes("abs", "");
        escapes("up", "");
        escapes("up/tmp", "");
        escapes("app/real/hop", "");
        escapes("app/inner/hop/x", "");
        escapes("app/real", "Evil");
        escapes("app/real", "hop/Dockerfile");
        escapes("loop", "");
        // A link that stays inside is followed, and the answer has no link left in it.
        let ok = locate_context(root, "app/inner", "").unwrap();
        assert_eq!(ok, (root.join("app/real"), "Dockerfile".to_owned()));
        let ok = locate_context(root, "app", "inner/Dockerfile").unwrap();
        assert_eq!(ok, (root.join("app"), "real/Dockerfile".to_owned()));
    }

    #[test]
    fn names_and_durations() {
        assert_eq!(container_name("42"), "berth-build-42-test");
        assert_eq!(container_name("a/b c"), "berth-build-a-b-c-test");
        let cases = [
            (Duration::from_secs(5), "5 s"),
            (Duration::from_secs(600), "10 min"),
            (Duration::from_secs(90), "1 min 30 s"),
            (Duration::from_secs(7200), "2 h"),
            (Duration::from_secs(5400), "1 h 30 min"),
        ];
        for (d, want) in cases {
            assert_eq!(describe(d), want);
        }
    }
}
