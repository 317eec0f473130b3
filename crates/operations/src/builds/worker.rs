//! The build worker: runs queued builds with [`berth_pipeline::Runner`], at most
//! `concurrency` at a time per server (the rest wait in order), writing every state change
//! through the store and every output line to `<data-dir>/builds/<id>.log`.
//!
//! Images are pushed to Berth's own registry with the [`BUILDER_USER`] credential, which may
//! push only to the target repositories of running builds (each run holds a grant). A build
//! with an app to roll out deploys through the application layer's
//! [`Platform::deploy_app`](crate::Platform::deploy_app), as the pipeline's creator, and
//! waits for the rollout's outcome.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use berth_core::RolloutPhase;
use berth_core::audit::{AuditEntry, AuditOutcome};
use berth_core::change::AppChange;
use berth_core::pipeline::{Build, BuildStep, BuildTrigger, Pipeline};
use berth_engine::{RegistryAuth, labels};
use berth_pipeline::base_images::ImageScope;
use berth_pipeline::{
    BuildLog, BuildPlan, BuildSink, BuildState, Cancel, CancelReason, CommitInfo, DeployRequest,
    Deployer, Ending, GitAuth, GitRemote, LogSource, Runner,
};
use serde::{Deserialize, Serialize};

use crate::Platform;
use crate::actor::{Actor, AuditSlot};
use crate::builds::grants::{BUILDER_USER, BuilderGrants};
use crate::builds::metrics::{BuildMetrics, Held};
use crate::builds::slots::BuildSlots;
use crate::error::OpError;

/// How long a roll-out is awaited before the build says it is still going.
const ROLLOUT_PATIENCE: Duration = Duration::from_secs(10 * 60);

/// Git credentials as sealed in [`Pipeline::sealed_credentials`].
#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StoredCredentials {
    Basic {
        username: String,
        password: String,
    },
    SshKey {
        private_key: String,
        known_hosts: Option<String>,
    },
}

impl From<StoredCredentials> for GitAuth {
    fn from(c: StoredCredentials) -> Self {
        match c {
            StoredCredentials::Basic { username, password } => {
                GitAuth::Basic { username, password }
            }
            StoredCredentials::SshKey {
                private_key,
                known_hosts,
            } => GitAuth::SshKey {
                private_key,
                known_hosts,
            },
        }
    }
}

/// How the worker reaches the registry and labels what it makes.
#[derive(Debug, Clone)]
pub struct BuildWorkerConfig {
    /// Builds running at once.
    pub concurrency: usize,
    /// Where checkouts go (`<data-dir>/build-work`).
    pub work_dir: PathBuf,
    /// `host:port` of Berth's registry as the engine reaches it.
    pub registry_host: String,
    /// The password of [`BUILDER_USER`] for this run of the server.
    pub grants: BuilderGrants,
    /// Where the worker tells admins what it does (`GET /api/v1/system/workers`).
    pub report: Option<berth_controller::workers::WorkerReport>,
    /// The engine namespace (labels images and containers a build makes).
    pub namespace: String,
    /// How long a build may run in all before it is stopped as timed out.
    pub timeout: Duration,
    /// How many builds of each pipeline are kept (with their logs); older ended ones go.
    pub retention: u32,
    /// CPU (millicores) and memory (bytes) a build's test container may use.
    pub test_cpu_millis: Option<u64>,
    pub test_memory_bytes: Option<u64>,
}

/// What builds reach besides the platform: the engine that builds, the key that opens stored
/// git credentials, and where hosted repositories and build logs live.
#[derive(Clone)]
pub struct BuildEnv {
    pub platform: Platform,
    /// Builds, tests and pushes the images.
    pub builder: Arc<dyn berth_engine::ImageBuilder>,
    /// Opens [`Pipeline::sealed_credentials`].
    pub secrets: Arc<berth_auth::SecretBox>,
    /// Where pipelines' hosted git repositories are kept (`<data-dir>/git`).
    pub git_dir: PathBuf,
    /// Where build logs are kept (`<data-dir>/builds/<id>.log`).
    pub build_logs_dir: PathBuf,
}

/// The queue of builds: clones share it.
#[derive(Clone)]
pub struct BuildWorker {
    env: Arc<BuildEnv>,
    config: Arc<BuildWorkerConfig>,
    /// At most `concurrency` builds at once, handed out fairly between teams.
    slots: BuildSlots,
    cancels: Arc<Mutex<HashMap<i64, Cancel>>>,
    metrics: BuildMetrics,
    /// Set while another server runs the builds (see [`BuildWorker::follow`]).
    following: Arc<Mutex<Option<BuildRelay>>>,
}

/// What a follower's build worker hands to the server that runs the builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildSignal {
    /// A build was queued.
    Queued,
    /// Cancel this build.
    Cancel(i64),
}

/// Where a following build worker hands its [`BuildSignal`]s.
pub type BuildRelay = Arc<dyn Fn(BuildSignal) + Send + Sync>;

impl std::fmt::Debug for BuildWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuildWorker")
            .field("concurrency", &self.config.concurrency)
            .finish_non_exhaustive()
    }
}

impl BuildWorker {
    pub fn new(env: BuildEnv, config: BuildWorkerConfig) -> Self {
        BuildWorker {
            env: Arc::new(env),
            slots: BuildSlots::new(config.concurrency),
            config: Arc::new(config),
            cancels: Arc::default(),
            metrics: BuildMetrics::default(),
            following: Arc::default(),
        }
    }

    /// Runs no build here until [`lead`](Self::lead): queued builds and cancels go to
    /// `relay` instead (a server sharing its store, while another server leads).
    pub fn follow(&self, relay: BuildRelay) {
        *lock(&self.following) = Some(relay);
    }

    /// Runs builds here from now on (this server leads).
    pub fn lead(&self) {
        *lock(&self.following) = None;
    }

    fn follower_relay(&self) -> Option<BuildRelay> {
        lock(&self.following).clone()
    }

    /// The worker's metric handles (build durations, queued and running builds).
    pub fn metrics(&self) -> &BuildMetrics {
        &self.metrics
    }

    /// Stores a new build of `branch` (at `commit`, else its head) of `pipeline` and queues it.
    pub async fn queue(
        &self,
        pipeline: Pipeline,
        trigger: BuildTrigger,
        triggered_by: &str,
        branch: String,
        commit: Option<String>,
    ) -> Result<Build, berth_store::StoreError> {
        let mut build = Build::queued(
            &pipeline.team,
            &pipeline.name,
            trigger,
            triggered_by,
            self.env.platform.now(),
        );
        build.branch = Some(branch);
        build.commit = commit;
        let build = self.env.platform.store.create_build(&build).await?;
        self.enqueue(pipeline, build.clone());
        Ok(build)
    }

    /// Runs `build` (stored, queued) of `pipeline` once a slot is free. The pipeline's stored
    /// credentials go along only when its repository is at the origin they were given for, so
    /// a build never sends them anywhere else.
    pub fn enqueue(&self, mut pipeline: Pipeline, build: Build) {
        if let Some(relay) = self.follower_relay() {
            // Another server runs the builds: it picks the build up from the store.
            relay(BuildSignal::Queued);
            return;
        }
        if pipeline.sealed_credentials.is_some() && !pipeline.credentials_fit_repository() {
            pipeline.sealed_credentials = None;
        }
        let cancel = Cancel::new();
        {
            let mut cancels = lock(&self.cancels);
            if cancels.contains_key(&build.id) {
                // Queued here already: a relayed signal repeats what this server knows.
                return;
            }
            cancels.insert(build.id, cancel.clone());
        }
        let worker = self.clone();
        let mut held = self.metrics.held();
        tokio::spawn(async move {
            let id = build.id;
            let ended = worker.run(&pipeline, build, &cancel, &mut held).await;
            drop(held);
            let still_running = {
                let mut cancels = lock(&worker.cancels);
                cancels.remove(&id);
                !cancels.is_empty()
            };
            if let Some(report) = &worker.config.report {
                if let Some(outcome) = ended {
                    report.succeeded(outcome);
                }
                report.set_busy(still_running);
            }
        });
    }

    /// Queues again the builds a previous run of the server had queued but not started.
    pub async fn resume_queued(&self) {
        let store = &self.env.platform.store;
        let queued = match store.queued_builds().await {
            Ok(queued) => queued,
            Err(error) => {
                tracing::warn!(%error, "cannot read the queued builds");
                return;
            }
        };
        for build in queued {
            match store.get_pipeline(&build.team, &build.pipeline).await {
                Ok(Some(pipeline)) => self.enqueue(pipeline, build),
                Ok(None) => {}
                Err(error) => {
                    tracing::warn!(%error, build = build.id, "cannot queue the build again")
                }
            }
        }
    }

    /// Stops every build this server runs because the server stops: running builds end
    /// `interrupted`, queued ones stay queued for the next start. Waits (up to `patience`) for
    /// the builds to record their end.
    pub async fn shut_down(&self, patience: Duration) {
        for cancel in lock(&self.cancels).values() {
            cancel.cancel(CancelReason::Shutdown);
        }
        let deadline = tokio::time::Instant::now() + patience;
        while !lock(&self.cancels).is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the build if this server is running or queueing it; returns whether it was. A
    /// follower hands the cancel to the server that runs the builds, and answers `true`.
    pub fn cancel(&self, id: i64) -> bool {
        if let Some(relay) = self.follower_relay() {
            relay(BuildSignal::Cancel(id));
            return true;
        }
        match lock(&self.cancels).get(&id) {
            Some(cancel) => {
                cancel.cancel(CancelReason::User);
                true
            }
            None => false,
        }
    }

    /// Runs the build to its end; says how it ended (`None`: it never started).
    async fn run(
        &self,
        pipeline: &Pipeline,
        build: Build,
        cancel: &Cancel,
        held: &mut Held,
    ) -> Option<String> {
        let env = &self.env;
        let store = &env.platform.store;
        // A build cancelled while waiting for a slot ends at once without one.
        let permit = tokio::select! {
            slot = self.slots.acquire(&pipeline.team) => Some(slot),
            () = cancel.token().cancelled() => None,
        };
        if permit.is_none() && cancel.reason() == Some(CancelReason::Shutdown) {
            // Never started: it stays queued and runs after the next start.
            return None;
        }
        held.started();
        let started = std::time::Instant::now();
        let log_path = env.build_logs_dir.join(format!("{}.log", build.id));
        let file = std::fs::create_dir_all(&env.build_logs_dir)
            .and_then(|()| {
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&log_path)
            })
            .map_err(|e| tracing::warn!(error = %e, path = %log_path.display(), "cannot open the build log"))
            .ok();
        if let Some(report) = &self.config.report {
            report.busy();
        }
        // This build's own registry credential: its team's images, its target repository.
        let grant = self
            .config
            .grants
            .grant(&pipeline.team, &pipeline.target_repository);
        let plan = match self.plan(pipeline, &build, grant.secret()) {
            Ok(plan) => plan,
            Err(reason) => {
                let mut build = build;
                let mut ended = BuildState::queued(build.created_at);
                let _ = ended.end(Ending::Failed, reason, env.platform.now());
                apply_state(&mut build, &ended);
                held.ended(build.status.as_str(), started.elapsed().as_secs_f64());
                if let Err(e) = store.update_build(&build).await {
                    tracing::warn!(error = %e, "cannot record a failed build");
                }
                return Some(outcome(&build));
            }
        };

        let (updates, mut received) = tokio::sync::mpsc::unbounded_channel::<Progress>();
        let sink = FileSink {
            updates,
            file: Mutex::new(file),
        };
        let writer_store = Arc::clone(store);
        let mut stored = build;
        let writer = tokio::spawn(async move {
            while let Some(next) = received.recv().await {
                match next {
                    // The end is stored once, with what the build made (below).
                    Progress::State(next) if next.status.is_terminal() => continue,
                    Progress::State(next) => apply_state(&mut stored, &next),
                    Progress::Commit(commit) => apply_commit(&mut stored, commit),
                }
                if let Err(e) = writer_store.update_build(&stored).await {
                    tracing::warn!(error = %e, build = stored.id, "cannot record the build's state");
                }
            }
            stored
        });
        let deployer = Arc::new(PlatformDeployer {
            platform: env.platform.clone(),
            pipeline: pipeline.clone(),
        });
        let runner = Runner::new(Arc::clone(&env.builder), self.config.work_dir.clone())
            .with_deployer(deployer)
            .with_clock(Arc::clone(&env.platform.clock));
        let report = runner.run(&plan, &sink, cancel).await;
        drop(sink);
        let Ok(mut build) = writer.await else {
            return None;
        };
        apply_state(&mut build, &report.state);
        if let Some(commit) = report.commit {
            apply_commit(&mut build, commit);
        }
        build.image_digest = report.image.and_then(|i| i.digest);
        build.rollout_outcome = report.deployment;
        held.ended(build.status.as_str(), started.elapsed().as_secs_f64());
        if let Err(e) = store.update_build(&build).await {
            tracing::warn!(error = %e, build = build.id, "cannot record the build's end");
        }
        self.prune(pipeline).await;
        Some(outcome(&build))
    }

    /// Retention: drops the pipeline's builds beyond the newest [`BuildWorkerConfig::retention`]
    /// with their logs.
    async fn prune(&self, pipeline: &Pipeline) {
        match self
            .env
            .platform
            .store
            .prune_builds(&pipeline.team, &pipeline.name, self.config.retention)
            .await
        {
            Ok(pruned) => {
                for id in pruned {
                    let _ = std::fs::remove_file(self.env.build_logs_dir.join(format!("{id}.log")));
                }
            }
            Err(error) => tracing::warn!(%error, "cannot prune old builds"),
        }
    }

    /// The runner's plan for `build`, or why there is none.
    fn plan(
        &self,
        pipeline: &Pipeline,
        build: &Build,
        registry_secret: &str,
    ) -> Result<BuildPlan, String> {
        // Pushed commits, and every build of a pipeline without a remote, come from the
        // repository Berth hosts.
        let hosted = build.trigger == BuildTrigger::GitPush || pipeline.repository_url.is_empty();
        // Credentials go only to the origin they were given for (whatever queued the build).
        let auth = match pipeline
            .sealed_credentials
            .as_ref()
            .filter(|_| !hosted && pipeline.credentials_fit_repository())
        {
            None => GitAuth::None,
            Some(sealed) => {
                let context = Pipeline::credentials_context(&pipeline.team, &pipeline.name);
                let plain = self.env.secrets.open(sealed, &context).map_err(|e| {
                    format!("the stored git credentials cannot be opened ({e}); set them again")
                })?;
                serde_json::from_str::<StoredCredentials>(&plain)
                    .map_err(|e| {
                        format!("the stored git credentials are unreadable ({e}); set them again")
                    })?
                    .into()
            }
        };
        let host = &self.config.registry_host;
        Ok(BuildPlan {
            build_id: build_label(&self.config.namespace, build.id),
            queued_at_ms: build.created_at,
            remote: GitRemote {
                url: if hosted {
                    berth_pipeline::hosted::hosted_repository(
                        &self.env.git_dir,
                        &pipeline.team,
                        &pipeline.name,
                    )
                    .to_string_lossy()
                    .into_owned()
                } else {
                    pipeline.repository_url.clone()
                },
                auth,
            },
            branch: build.branch.clone(),
            commit: build.commit.clone(),
            context_dir: pipeline.context.clone(),
            dockerfile: pipeline.dockerfile.clone(),
            build_args: pipeline.build_args.clone(),
            test_command: pipeline.test_command.clone(),
            test_env: BTreeMap::new(),
            test_cpu_millis: self.config.test_cpu_millis,
            test_memory_bytes: self.config.test_memory_bytes,
            image_repository: format!("{host}/{}", pipeline.target_repository),
            registry_auth: Some(RegistryAuth {
                username: BUILDER_USER.to_owned(),
                password: registry_secret.to_owned(),
                server: host.clone(),
            }),
            timeout: self.config.timeout,
            labels: BTreeMap::from([
                (labels::NAMESPACE.to_owned(), self.config.namespace.clone()),
                (
                    "berth.pipeline".to_owned(),
                    format!("{}/{}", pipeline.team, pipeline.name),
                ),
            ]),
            deploy_app: pipeline.deploy_app.clone(),
            image_scope: Some(ImageScope {
                team: pipeline.team.clone(),
                registry_hosts: self.env.platform.registry_hosts.get().to_vec(),
            }),
        })
    }
}

/// How a build ended, for the worker's status.
fn outcome(build: &Build) -> String {
    format!(
        "build {} of {}/{} ended {}",
        build.id,
        build.team,
        build.pipeline,
        build.status.as_str()
    )
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// The `berth.build` label of what build `id` makes in `namespace` (its test containers).
pub fn build_label(namespace: &str, id: i64) -> String {
    format!("{namespace}-build-{id}")
}

/// Copies the runner's state onto the stored build.
fn apply_state(build: &mut Build, state: &BuildState) {
    build.status = state.status;
    build.steps = state
        .steps
        .iter()
        .map(|r| BuildStep {
            name: r.step.as_str().to_owned(),
            status: r.status,
            started_at: r.started_at_ms,
            finished_at: r.finished_at_ms,
        })
        .collect();
    build.started_at = state.started_at_ms;
    build.finished_at = state.finished_at_ms;
    build.reason = state.reason.clone();
}

/// Copies the fetched commit onto the stored build.
fn apply_commit(build: &mut Build, commit: CommitInfo) {
    build.commit = Some(commit.sha);
    build.author = Some(commit.author);
    build.author_email = Some(commit.author_email);
    build.message = Some(commit.message);
}

/// What the runner reports while a build runs, for the task that stores it.
enum Progress {
    State(BuildState),
    Commit(CommitInfo),
}

/// Sends progress to the writer task and appends lines to the log file.
struct FileSink {
    updates: tokio::sync::mpsc::UnboundedSender<Progress>,
    file: Mutex<Option<std::fs::File>>,
}

impl BuildSink for FileSink {
    fn state(&self, state: &BuildState) {
        let _ = self.updates.send(Progress::State(state.clone()));
    }

    fn commit(&self, commit: &CommitInfo) {
        let _ = self.updates.send(Progress::Commit(commit.clone()));
    }

    fn log(&self, line: &BuildLog) {
        let marker = match line.source {
            LogSource::Berth => "==>",
            LogSource::Stdout | LogSource::Stderr => "|",
        };
        let text = line.text.trim_end_matches('\n');
        if let Some(file) = lock(&self.file).as_mut()
            && let Err(e) = writeln!(file, "[{}] {marker} {text}", line.step)
        {
            tracing::debug!(error = %e, "cannot write the build log");
        }
    }
}

/// Rolls built images out through the application layer's deploy, as the pipeline's creator.
struct PlatformDeployer {
    platform: Platform,
    pipeline: Pipeline,
}

impl PlatformDeployer {
    /// Records the deploy in the audit log, as the pipeline's creator, from the pipeline (no
    /// HTTP request carries it: `status` is 0).
    async fn audit(&self, actor: &Actor, app: &str, reason: &str, refused: Option<&OpError>) {
        let entry = AuditEntry {
            id: 0,
            at: self.platform.now(),
            actor: actor.username().to_owned(),
            action: "apps.deploy".to_owned(),
            team: Some(self.pipeline.team.clone()),
            object: format!("apps/{app}"),
            source: format!("pipeline {}/{}", self.pipeline.team, self.pipeline.name),
            outcome: refused.map_or(AuditOutcome::Success, OpError::audit_outcome),
            status: 0,
            detail: match refused {
                None => reason.to_owned(),
                Some(error) => error.to_string(),
            },
        };
        if let Err(error) = self.platform.store.append_audit(&entry).await {
            tracing::warn!(%error, "could not record a pipeline's deploy in the audit log");
        }
    }
}

#[async_trait]
impl Deployer for PlatformDeployer {
    async fn deploy(
        &self,
        request: &DeployRequest,
        log: &(dyn Fn(&str) + Send + Sync),
    ) -> Result<String, String> {
        let platform = &self.platform;
        let store = platform.store.as_ref();
        let creator = &self.pipeline.created_by;
        let (user, _) = store
            .get_user_by_username(creator)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("the pipeline's creator {creator} no longer exists"))?;
        let actor = Actor::load(store, user, AuditSlot::default())
            .await
            .map_err(|e| e.to_string())?;
        let app = &request.app;
        match store.get_app(app).await.map_err(|e| e.to_string())? {
            Some(found) if found.team == self.pipeline.team => {}
            _ => return Err(format!("no app {app} in team {}", self.pipeline.team)),
        }
        let short = request.commit.get(..12).unwrap_or(&request.commit);
        let change = AppChange {
            image: Some(request.image.clone()),
            ..AppChange::default()
        };
        let reason = format!(
            "pipeline {}/{} built commit {short}",
            self.pipeline.team, self.pipeline.name
        );
        let deployed = platform
            .deploy_app(&actor, app, &change, Some(&reason))
            .await;
        self.audit(&actor, app, &reason, deployed.as_ref().err())
            .await;
        deployed.map_err(|e| format!("the deploy of app {app} was refused: {e}"))?;
        let started = tokio::time::Instant::now();
        let mut announced = false;
        loop {
            let current = store
                .get_app(app)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("app {app} was deleted during the rollout"))?;
            let rollout = &current.rollout;
            // (`log` takes lines borrowed for the whole call: fixed text only.)
            if !announced {
                announced = true;
                log("the new revision is rolling out");
            }
            match rollout.phase {
                RolloutPhase::Complete => {
                    return Ok(format!(
                        "app {app} rolled out revision {}",
                        rollout.revision
                    ));
                }
                RolloutPhase::RolledBack | RolloutPhase::Failed => {
                    return Err(format!(
                        "the rollout of app {app} failed: {}",
                        rollout.message
                    ));
                }
                RolloutPhase::Progressing | RolloutPhase::RollingBack => {}
            }
            if started.elapsed() > ROLLOUT_PATIENCE {
                return Ok(format!(
                    "app {app} is still rolling out revision {}",
                    rollout.revision
                ));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}
