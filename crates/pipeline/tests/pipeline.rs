//! Whole builds with real components: git repositories made by the tests, the real Docker
//! Engine, and Berth's registry served in-process.
//!
//! Repositories build `FROM berth-testapp-shell` (the test app plus busybox, so test
//! scripts have a shell). Everything a build makes carries the test's `berth.namespace`
//! label and is removed by the namespace guard, images with all their tags included.

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use berth_engine::{DockerEngine, ImageBuilder, InstanceSpec, RegistryAuth, Runtime, labels};
use berth_pipeline::{
    BuildPlan, BuildReport, BuildStatus, Cancel, CancelReason, DeployRequest, Deployer, GitAuth,
    GitRemote, Runner, Step, StepStatus,
};
use berth_testkit::{NamespaceGuard, TestRegistry, shell_image};
use support::{RecordingSink, Repo};

const TEAM: &str = "team";

/// One test's world: a namespace, a registry, a work directory and a runner.
struct World {
    guard: NamespaceGuard,
    registry: TestRegistry,
    engine: Arc<DockerEngine>,
    work: tempfile::TempDir,
    deployer: Arc<RecordingDeployer>,
    runner: Runner,
}

impl World {
    async fn new(prefix: &str) -> Self {
        let image = tokio::task::spawn_blocking(shell_image)
            .await
            .expect("building the shell image panicked");
        assert_eq!(image, "berth-testapp-shell:latest");
        let guard = NamespaceGuard::new(prefix);
        let registry = TestRegistry::start("builder", "build-secret").await;
        let engine = Arc::new(DockerEngine::connect().expect("connect to Docker"));
        let work = tempfile::tempdir().unwrap();
        let deployer = Arc::new(RecordingDeployer::default());
        let runner =
            Runner::new(engine.clone(), work.path().join("builds")).with_deployer(deployer.clone());
        Self {
            guard,
            registry,
            engine,
            work,
            deployer,
            runner,
        }
    }

    /// The repository images are pushed to, without the registry host.
    fn repository(&self) -> String {
        format!("{TEAM}/{}", self.guard.namespace())
    }

    fn plan(&self, repo_url: String, branch: &str, commit: Option<String>) -> BuildPlan {
        BuildPlan {
            build_id: format!("{}-build", self.guard.namespace()),
            queued_at_ms: 1,
            remote: GitRemote {
                url: repo_url,
                auth: GitAuth::None,
            },
            branch: Some(branch.to_owned()),
            commit,
            context_dir: String::new(),
            dockerfile: String::new(),
            build_args: BTreeMap::new(),
            test_command: vec!["/bin/sh".into(), "/app/test.sh".into()],
            test_env: BTreeMap::from([("EXPECTED".to_owned(), "ok".to_owned())]),
            test_cpu_millis: Some(500),
            test_memory_bytes: Some(256 << 20),
            image_repository: format!("{}/{}", self.registry.host(), self.repository()),
            registry_auth: Some(RegistryAuth {
                username: self.registry.username().to_owned(),
                password: self.registry.password().to_owned(),
                server: self.registry.host(),
            }),
            timeout: Duration::from_secs(300),
            labels: BTreeMap::from([(
                labels::NAMESPACE.to_owned(),
                self.guard.namespace().to_owned(),
            )]),
            deploy_app: None,
            image_scope: None,
        }
    }

    async fn run(&self, plan: &BuildPlan, sink: &RecordingSink, cancel: &Cancel) -> BuildReport {
        tokio::time::timeout(
            Duration::from_secs(300),
            self.runner.run(plan, sink, cancel),
        )
        .await
        .expect("the build did not end")
    }

    /// Containers of this test still on the engine (name and state).
    async fn containers_left(&self) -> Vec<String> {
        let filter = BTreeMap::from([(
            labels::NAMESPACE.to_owned(),
            self.guard.namespace().to_owned(),
        )]);
        let left = self.engine.list_containers(&filter).await.unwrap();
        left.iter()
            .map(|c| format!("{} {:?} {:?}", c.name, c.state, c.error))
            .collect()
    }

    /// Files left under the work directory's builds.
    fn checkouts_left(&self) -> usize {
        std::fs::read_dir(self.work.path().join("builds"))
            .map(|d| d.count())
            .unwrap_or(0)
    }
}

/// Records roll-out requests and succeeds.
#[derive(Default)]
struct RecordingDeployer(Mutex<Vec<DeployRequest>>);

#[async_trait]
impl Deployer for RecordingDeployer {
    async fn deploy(
        &self,
        request: &DeployRequest,
        log: &(dyn Fn(&str) + Send + Sync),
    ) -> Result<String, String> {
        log("revision 2 is rolling out");
        self.0.lock().unwrap().push(request.clone());
        Ok(format!("{} runs {}", request.app, request.image))
    }
}

const DOCKERFILE: &str = "FROM berth-testapp-shell:latest\nCOPY app.txt test.sh /app/\n";
const TEST_SH: &str = "echo \"running tests on $(cat /app/app.txt)\"\n\
                       test \"$(cat /app/app.txt)\" = \"$EXPECTED\" || { echo 'app.txt is wrong' >&2; exit 3; }\n\
                       echo 'all tests passed'\n";

/// A repository whose tests pass when `app.txt` is `ok`. Its layers are the test's own (the
/// namespace is in `test.sh`): were they shared with tests running meanwhile, one test's
/// cleanup could remove a cached layer another test's build is using.
fn app_repo(world: &World, content: &str) -> (Repo, String) {
    let repo = Repo::new();
    let test_sh = format!("# {}\n{TEST_SH}", world.guard.namespace());
    let sha = repo.commit(
        &[
            ("Dockerfile", Some(DOCKERFILE)),
            ("test.sh", Some(&test_sh)),
            ("app.txt", Some(content)),
            (".dockerignore", Some("secret.txt\n")),
            ("secret.txt", Some("not for the image")),
        ],
        "Add the app",
    );
    (repo, sha)
}

fn statuses(report: &BuildReport) -> Vec<StepStatus> {
    report.state.steps.iter().map(|s| s.status).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_green_build_is_pushed_and_rolled_out() {
    let world = World::new("pipe-ok").await;
    let (repo, sha) = app_repo(&world, "ok");
    let mut plan = world.plan(repo.url(), "main", Some(sha.clone()));
    plan.deploy_app = Some("shop".into());
    let sink = RecordingSink::default();
    let report = world.run(&plan, &sink, &Cancel::new()).await;

    assert_eq!(
        report.state.status,
        BuildStatus::Succeeded,
        "{:?}\n{}",
        report.state.reason,
        sink.dump()
    );
    assert_eq!(
        statuses(&report),
        [StepStatus::Succeeded; 5],
        "{:?}",
        report.state.reason
    );
    assert_eq!(
        sink.statuses(),
        [
            BuildStatus::Fetching,
            BuildStatus::Building,
            BuildStatus::Testing,
            BuildStatus::Pushing,
            BuildStatus::Deploying,
            BuildStatus::Succeeded,
        ]
    );
    for record in &report.state.steps {
        assert!(record.duration_ms().is_some(), "{record:?}");
    }
    let commit = report.commit.as_ref().unwrap();
    assert_eq!(commit.sha, sha);
    assert_eq!(commit.author, "Ada Lovelace");
    assert_eq!(commit.message, "Add the app");

    // The tests ran inside the image, with the test environment.
    let test_lines = sink.lines(Step::Test);
    assert!(
        test_lines.iter().any(|l| l == "running tests on ok"),
        "{test_lines:?}"
    );
    assert!(
        test_lines.iter().any(|l| l == "all tests passed"),
        "{test_lines:?}"
    );
    assert!(!sink.lines(Step::Build).is_empty());
    assert!(!sink.lines(Step::Push).is_empty());

    // Both tags are in the registry, on the reported digest.
    let image = report.image.as_ref().unwrap();
    let digest = image.digest.clone().unwrap();
    let repository = world.repository();
    assert_eq!(
        world.registry.tags(&repository).await,
        [sha.clone(), "main".to_owned()]
    );
    assert_eq!(
        world.registry.digest_of(&repository, &sha).await,
        Some(digest.clone())
    );
    assert_eq!(
        world.registry.digest_of(&repository, "main").await,
        Some(digest.clone())
    );
    assert_eq!(
        image.references,
        [
            format!("{}:{sha}", plan.image_repository),
            format!("{}:main", plan.image_repository)
        ]
    );

    // The roll-out got the image by digest; its summary is on the build.
    let requests = world.deployer.0.lock().unwrap().clone();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].app, "shop");
    assert_eq!(
        requests[0].image,
        format!("{}@{digest}", plan.image_repository)
    );
    assert_eq!(requests[0].commit, sha);
    assert_eq!(
        report.deployment.as_deref(),
        Some(format!("shop runs {}@{digest}", plan.image_repository).as_str())
    );
    assert!(
        sink.lines(Step::Deploy)
            .iter()
            .any(|l| l == "revision 2 is rolling out")
    );

    // .dockerignore kept the secret out; the image carries the commit.
    let inspect = std::process::Command::new("docker")
        .args([
            "image",
            "inspect",
            "--format",
            "{{json .Config.Labels}}",
            &image.id,
        ])
        .output()
        .unwrap();
    let labels = String::from_utf8_lossy(&inspect.stdout);
    assert!(
        labels.contains(&format!("\"org.opencontainers.image.revision\":\"{sha}\"")),
        "{labels}"
    );
    // Nothing per build: the same commit on the same base is the same image, and a second
    // build of it pushes the same digest.
    assert!(!labels.contains("berth.build"), "{labels}");
    let mut again = plan.clone();
    again.build_id = format!("{}-again", plan.build_id);
    let second = world
        .run(&again, &RecordingSink::default(), &Cancel::new())
        .await;
    assert_eq!(second.state.status, BuildStatus::Succeeded, "{second:#?}");
    assert_eq!(
        second.image.as_ref().and_then(|i| i.digest.clone()),
        Some(digest.clone())
    );

    assert_eq!(
        world.containers_left().await,
        Vec::<String>::new(),
        "a container of the build was left"
    );
    assert_eq!(world.checkouts_left(), 0, "the checkout was left");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_red_test_pushes_nothing_and_deploys_nothing() {
    let world = World::new("pipe-red").await;
    let (repo, sha) = app_repo(&world, "broken");
    let mut plan = world.plan(repo.file_url(), "main", None);
    plan.deploy_app = Some("shop".into());
    let sink = RecordingSink::default();
    let report = world.run(&plan, &sink, &Cancel::new()).await;

    assert_eq!(report.state.status, BuildStatus::Failed, "{}", sink.dump());
    assert_eq!(
        statuses(&report),
        [
            StepStatus::Succeeded,
            StepStatus::Succeeded,
            StepStatus::Failed,
            StepStatus::Skipped,
            StepStatus::Skipped
        ],
        "{:?}",
        report.state.reason
    );
    let reason = report.state.reason.clone().unwrap();
    assert_eq!(
        reason,
        "the tests failed: `/bin/sh /app/test.sh` exited with code 3"
    );
    assert!(
        sink.lines(Step::Test)
            .iter()
            .any(|l| l == "app.txt is wrong")
    );
    assert_eq!(
        report.commit.as_ref().unwrap().sha,
        sha,
        "the branch head was built"
    );
    assert!(
        world.registry.tags(&world.repository()).await.is_empty(),
        "something was pushed"
    );
    // The red build's image is not left tagged in the engine.
    let image = report.image.as_ref().expect("the image was built");
    for reference in &image.references {
        assert_eq!(
            world.engine.image_id(reference).await.unwrap(),
            None,
            "{reference} is still there"
        );
    }
    assert!(
        world.deployer.0.lock().unwrap().is_empty(),
        "something was rolled out"
    );
    assert_eq!(report.image.as_ref().unwrap().digest, None);
    assert_eq!(world.containers_left().await, Vec::<String>::new());
    assert_eq!(world.checkouts_left(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_dockerfile_unknown_branch_and_failing_instruction_name_their_cause() {
    let world = World::new("pipe-bad").await;
    let (repo, _) = app_repo(&world, "ok");
    let failing = repo.commit(
        &[(
            "broken.Dockerfile",
            Some("FROM berth-testapp-shell:latest\nRUN echo 'about to fail' && exit 7\n"),
        )],
        "A Dockerfile that fails",
    );
    type Edit = Box<dyn Fn(&mut BuildPlan)>;
    let cases: Vec<(&str, Edit, Step, String)> = vec![
        (
            "missing Dockerfile",
            Box::new(|p| p.dockerfile = "docker/Dockerfile".into()),
            Step::Build,
            "Dockerfile not found: \"docker/Dockerfile\" in commit".into(),
        ),
        (
            "missing context",
            Box::new(|p| p.context_dir = "services/api".into()),
            Step::Build,
            "the build context \"services/api\" does not exist".into(),
        ),
        (
            "unknown branch",
            Box::new(|p| p.branch = Some("release/9".into())),
            Step::Fetch,
            format!(
                "fetch failed: branch \"release/9\" does not exist in {}",
                repo.url()
            ),
        ),
        (
            "failing instruction",
            {
                let failing = failing.clone();
                Box::new(move |p| {
                    p.dockerfile = "broken.Dockerfile".into();
                    p.commit = Some(failing.clone());
                })
            },
            Step::Build,
            // The rest is the builder's own message, which names the command.
            "the image build failed: ".into(),
        ),
    ];
    for (name, edit, step, reason) in cases {
        let mut plan = world.plan(repo.url(), "main", None);
        edit(&mut plan);
        let sink = RecordingSink::default();
        let report = world.run(&plan, &sink, &Cancel::new()).await;
        assert_eq!(
            report.state.status,
            BuildStatus::Failed,
            "{name}\n{}",
            sink.dump()
        );
        assert_eq!(
            report.state.step(step).status,
            StepStatus::Failed,
            "{name}: {:?}",
            report.state.reason
        );
        let got = report.state.reason.clone().unwrap();
        assert!(got.starts_with(&reason), "{name}: {got}");
        if name == "failing instruction" {
            assert!(got.contains("exit 7"), "{got}");
            let output = sink.lines(Step::Build);
            assert!(output.iter().any(|l| l == "about to fail"), "{output:?}");
        }
        assert!(
            world.registry.tags(&world.repository()).await.is_empty(),
            "{name}"
        );
    }
    assert_eq!(world.containers_left().await, Vec::<String>::new());
    assert_eq!(world.checkouts_left(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_a_build_midway() {
    let world = World::new("pipe-cancel").await;
    let repo = Repo::new();
    // A nonce keeps the slow step out of the build cache of earlier runs.
    let nonce = world.guard.namespace().to_owned();
    repo.commit(
        &[(
            "Dockerfile",
            Some(&format!(
                "FROM berth-testapp-shell:latest\nRUN echo 'building {nonce}' && sleep 120\n"
            )),
        )],
        "A slow build",
    );
    let plan = world.plan(repo.url(), "main", None);
    // Stands for what an abandoned build leaves for the engine to remove: a container
    // labelled with the build. The build's end sweeps it.
    let stray = InstanceSpec {
        name: format!("{}-stray", world.guard.namespace()),
        image: "berth-testapp-shell:latest".into(),
        command: vec!["/bin/sleep".into(), "300".into()],
        args: vec![],
        env: BTreeMap::new(),
        labels: BTreeMap::from([
            (
                labels::NAMESPACE.to_owned(),
                world.guard.namespace().to_owned(),
            ),
            (labels::BUILD.to_owned(), plan.build_id.clone()),
        ]),
        network: world.guard.namespace().to_owned(),
        network_aliases: vec![],
        cpu_millis: None,
        memory_bytes: None,
        stop_grace: Duration::ZERO,
        registry_auth: None,
        mounts: Vec::new(),
        secret_env: BTreeMap::new(),
        files: Vec::new(),
        ports: Vec::new(),
        node_constraints: Vec::new(),
    };
    world.engine.ensure_network(&stray.network).await.unwrap();
    world.engine.start_instance(&stray).await.unwrap();
    assert_eq!(world.containers_left().await.len(), 1);

    let cancel = Cancel::new();
    let trigger = cancel.clone();
    let sink = RecordingSink::with_hook(move |line| {
        if line.step == Step::Build && line.text.starts_with("building ") {
            trigger.cancel(CancelReason::User);
        }
    });
    let report = world.run(&plan, &sink, &cancel).await;

    assert_eq!(
        report.state.status,
        BuildStatus::Cancelled,
        "{}",
        sink.dump()
    );
    assert_eq!(
        statuses(&report),
        [
            StepStatus::Succeeded,
            StepStatus::Cancelled,
            StepStatus::Skipped,
            StepStatus::Skipped,
            StepStatus::Skipped
        ],
        "{:?}",
        report.state.reason
    );
    assert_eq!(
        report.state.reason.as_deref(),
        Some("cancelled during build")
    );
    assert_eq!(world.containers_left().await, Vec::<String>::new());
    assert!(world.registry.tags(&world.repository()).await.is_empty());
    assert_eq!(world.checkouts_left(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_interrupts_the_tests_and_removes_their_container() {
    let world = World::new("pipe-stop").await;
    let (repo, _) = app_repo(&world, "ok");
    let mut plan = world.plan(repo.url(), "main", None);
    plan.test_command = vec![
        "/bin/sh".into(),
        "-c".into(),
        "echo 'tests started'; sleep 120".into(),
    ];
    let cancel = Cancel::new();
    let trigger = cancel.clone();
    let sink = RecordingSink::with_hook(move |line| {
        if line.step == Step::Test && line.text == "tests started" {
            trigger.cancel(CancelReason::Shutdown);
        }
    });
    let report = world.run(&plan, &sink, &cancel).await;

    assert_eq!(
        report.state.status,
        BuildStatus::Interrupted,
        "{}",
        sink.dump()
    );
    assert_eq!(
        report.state.step(Step::Test).status,
        StepStatus::Interrupted
    );
    assert_eq!(
        report.state.reason.as_deref(),
        Some("Berth stopped during test")
    );
    assert_eq!(
        world.containers_left().await,
        Vec::<String>::new(),
        "a container of the build was left"
    );
    assert!(world.registry.tags(&world.repository()).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_build_that_runs_too_long_times_out() {
    let world = World::new("pipe-slow").await;
    let (repo, _) = app_repo(&world, "ok");
    let mut plan = world.plan(repo.url(), "main", None);
    plan.test_command = vec!["/bin/sh".into(), "-c".into(), "sleep 120".into()];
    plan.timeout = Duration::from_secs(8);
    let sink = RecordingSink::default();
    let report = world.run(&plan, &sink, &Cancel::new()).await;

    assert_eq!(
        report.state.status,
        BuildStatus::TimedOut,
        "{}",
        sink.dump()
    );
    let reason = report.state.reason.clone().unwrap();
    assert!(
        reason.starts_with("the build ran longer than its timeout of 8 s and was stopped during"),
        "{reason}"
    );
    let timed_out: Vec<Step> = report
        .state
        .steps
        .iter()
        .filter(|s| s.status == StepStatus::TimedOut)
        .map(|s| s.step)
        .collect();
    assert_eq!(timed_out.len(), 1, "{:?}", report.state.steps);
    assert_eq!(report.state.step(Step::Push).status, StepStatus::Skipped);
    assert_eq!(
        world.containers_left().await,
        Vec::<String>::new(),
        "a container of the build was left"
    );
    assert!(world.registry.tags(&world.repository()).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_registry_password_fails_the_push() {
    let world = World::new("pipe-auth").await;
    let (repo, _) = app_repo(&world, "ok");
    let mut plan = world.plan(repo.url(), "main", None);
    plan.test_command.clear();
    if let Some(auth) = &mut plan.registry_auth {
        auth.password = "wrong".into();
    }
    let sink = RecordingSink::default();
    let report = world.run(&plan, &sink, &Cancel::new()).await;

    assert_eq!(report.state.status, BuildStatus::Failed, "{}", sink.dump());
    let reason = report.state.reason.clone().unwrap();
    assert_eq!(
        report.state.step(Step::Test).status,
        StepStatus::Skipped,
        "{reason}"
    );
    assert_eq!(
        report.state.step(Step::Push).status,
        StepStatus::Failed,
        "{reason}"
    );
    assert!(reason.starts_with("the push failed: push of "), "{reason}");
    assert!(
        reason.contains("unauthorized") || reason.contains("authentication"),
        "{reason}"
    );
    assert!(world.registry.tags(&world.repository()).await.is_empty());
}

/// Fails every roll-out.
struct FailingDeployer;

#[async_trait]
impl Deployer for FailingDeployer {
    async fn deploy(
        &self,
        _: &DeployRequest,
        _: &(dyn Fn(&str) + Send + Sync),
    ) -> Result<String, String> {
        Err("the new revision never became ready".into())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_roll_out_fails_the_build_after_the_push() {
    let world = World::new("pipe-deploy").await;
    let (repo, sha) = app_repo(&world, "ok");
    let mut plan = world.plan(repo.url(), "main", None);
    plan.deploy_app = Some("shop".into());
    let builds = world.work.path().join("builds");
    let runners = [
        (
            Runner::new(world.engine.clone(), &builds).with_deployer(Arc::new(FailingDeployer)),
            "rolling out shop failed: the new revision never became ready",
        ),
        (
            Runner::new(world.engine.clone(), &builds),
            "cannot roll out shop: this server has no deployer",
        ),
    ];
    for (runner, reason) in runners {
        let sink = RecordingSink::default();
        let report = runner.run(&plan, &sink, &Cancel::new()).await;
        assert_eq!(report.state.status, BuildStatus::Failed, "{}", sink.dump());
        let why = format!("{:?}\n{}", report.state.reason, sink.dump());
        assert_eq!(
            report.state.step(Step::Push).status,
            StepStatus::Succeeded,
            "{why}"
        );
        assert_eq!(
            report.state.step(Step::Deploy).status,
            StepStatus::Failed,
            "{why}"
        );
        assert_eq!(report.state.reason.as_deref(), Some(reason));
        assert_eq!(report.deployment, None);
    }
    // The image was pushed all the same: a roll-out can be retried from the registry.
    assert!(
        world
            .registry
            .tags(&world.repository())
            .await
            .contains(&sha)
    );
}
