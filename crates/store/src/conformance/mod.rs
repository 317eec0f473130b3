//! The conformance suites every store implementation must pass, one per area (cargo feature
//! `conformance`; test support, never in the server build).
//!
//! A backend runs the suite of each area it implements — [`apps::run`], [`accounts::run`],
//! [`registry::run`], [`pipelines::run`], [`certificates::run`], [`nodes::run`], [`volumes::run`], [`secrets::run`], [`leases::run`], [`metrics::run`] (the metrics history, its own store) — or [`run_all`] for a whole [`Store`], on a
//! multi-threaded tokio runtime (`#[tokio::test(flavor = "multi_thread")]`). From another
//! crate: `berth-store = { workspace = true, features = ["conformance"] }` in its
//! `[dev-dependencies]`, then e.g. `berth_store::conformance::apps::run(Arc::new(store)).await`.
//! The accounts suite also needs the apps area (a team owning apps cannot be deleted), and the
//! registry and pipelines suites need the accounts area (their objects belong to teams).
//!
//! Each check creates its own uniquely named apps and teams, so the checks can share one store
//! — even one database shared by several test runs — and each check can also be called alone.
//! Checks panic on failure, like tests do.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use berth_core::accounts::{ApiToken, Membership, TeamRole, TokenScope, User};
use berth_core::audit::{AuditEntry, AuditOutcome};
use berth_core::certificate::StoredCertificate;
use berth_core::deploy_template::{DeploymentTemplate, ParamKind, TemplateParam};
use berth_core::pipeline::{Build, BuildStatus, BuildTrigger, Pipeline, StepStatus};
use berth_core::quota::{Quota, QuotaRequest, QuotaRequestStatus};
use berth_core::session::Session;
use berth_core::team::Team;
use berth_core::{
    App, Event, ExternalRegistry, Millis, Probe, ProbeKind, Resources, Revision, Rollout,
    RolloutPhase, RolloutStrategy, Template,
};

use crate::{
    AccountStore, AppList, AppPage, AppStore, AuditQuery, BuildQuery, CertificateStore,
    DeliveryBuild, EventQuery, ListedApp, PipelineStore, QuotaDecision, QuotaRequestQuery,
    RegistryStore, RevisionImage, Store, StoreError,
};

pub mod accounts;
pub mod apps;
pub mod certificates;
pub mod leases;
pub mod metrics;
pub mod nodes;
pub mod pipelines;
pub mod registry;
pub mod secrets;
pub mod volumes;

/// Runs every area's suite against `store`.
pub async fn run_all<S: Store + ?Sized + 'static>(store: Arc<S>) {
    apps::run(store.clone()).await;
    accounts::run(store.clone()).await;
    registry::run(store.clone()).await;
    certificates::run(store.clone()).await;
    nodes::run(store.clone()).await;
    volumes::run(store.clone()).await;
    secrets::run(store.clone()).await;
    leases::run(store.clone()).await;
    pipelines::run(store).await;
}

/// The variable naming the PostgreSQL server tests create their databases on.
pub const POSTGRES_VARIABLE: &str = "BERTH_TEST_POSTGRES";

/// A fresh, empty PostgreSQL database for one test (`label` goes into its name), as a URL for
/// `--store`, on the server [`POSTGRES_VARIABLE`] names — a URL such as
/// `postgres://berth:berth@127.0.0.1:5432/postgres`, which `scripts/ensure-postgres.sh`
/// prints and `scripts/test.sh` sets. Without the variable the test is skipped (`None`, and it
/// says so) — except in CI (`CI` set), where its absence fails the test, so the PostgreSQL
/// checks never silently stop running.
pub async fn postgres_database(label: &str) -> Option<String> {
    use sqlx::Connection;
    let Ok(server) = std::env::var(POSTGRES_VARIABLE) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "{POSTGRES_VARIABLE} is not set: CI runs every PostgreSQL test \
             (scripts/ensure-postgres.sh prints the URL)"
        );
        eprintln!("skipped: set {POSTGRES_VARIABLE} to run the PostgreSQL checks");
        return None;
    };
    let (base, query) = match server.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (server.as_str(), String::new()),
    };
    let prefix = base
        .rsplit_once('/')
        .filter(|(prefix, _)| prefix.contains("://") && !prefix.ends_with('/'))
        .map(|(prefix, _)| prefix)
        .unwrap_or_else(|| panic!("{POSTGRES_VARIABLE}={server} must end in /DATABASE"));
    let label: String = label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .take(20)
        .collect();
    let name = unique_name(&label).replace('-', "_");
    let mut admin = sqlx::PgConnection::connect(&server)
        .await
        .unwrap_or_else(|e| panic!("connecting to {POSTGRES_VARIABLE}={server}: {e}"));
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut admin)
        .await
        .unwrap_or_else(|e| panic!("creating database {name}: {e}"));
    admin.close().await.ok();
    Some(format!("{prefix}/{name}{query}"))
}

/// A fixed point in time the fixtures are built around (the store never reads a clock).
const T0: Millis = 1_700_000_000_000;

/// An app name no other check, run or concurrent test process uses.
pub fn unique_name(check: &str) -> String {
    static RUN: OnceLock<String> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let run = RUN.get_or_init(|| {
        // Only names depend on the clock; stored data stays deterministic.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos() ^ (d.as_secs() as u32))
            .unwrap_or_default();
        format!("{:x}{nanos:08x}", std::process::id())
    });
    format!(
        "conf-{check}-{run}-{}",
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A template using every field, so round-trips prove nothing is dropped.
pub fn full_template(image: &str) -> Template {
    Template {
        image: image.to_string(),
        command: vec!["/bin/server".into(), "--flag".into()],
        args: vec![
            "serve".into(),
            "--port=8080".into(),
            "quote\"d 'arg'".into(),
        ],
        env: BTreeMap::from([
            (
                "DATABASE_URL".to_string(),
                "postgres://db:5432/app".to_string(),
            ),
            ("EMPTY".to_string(), String::new()),
            ("UNICODE".to_string(), "héllo wörld ✓".to_string()),
        ]),
        port: 9090,
        resources: Resources {
            cpu_millis: Some(1500),
            memory_bytes: Some(256 << 20),
        },
        readiness: Some(Probe {
            kind: ProbeKind::Tcp,
            path: "/ready".into(),
            port: Some(9091),
            period_ms: 2_000,
            timeout_ms: 500,
            failure_threshold: 5,
            success_threshold: 2,
            initial_delay_ms: 3_000,
        }),
        liveness: Some(Probe::http("/healthz")),
        stop_grace_ms: 15_000,
        labels: BTreeMap::from([
            ("team".to_string(), "payments".to_string()),
            ("tier".to_string(), "backend".to_string()),
        ]),
        volumes: vec![
            berth_core::volume::VolumeMount::shared("uploads", "/srv/uploads"),
            berth_core::volume::VolumeMount {
                scope: berth_core::volume::VolumeScope::PerInstance,
                read_only: true,
                ..berth_core::volume::VolumeMount::shared("cache", "/var/cache/app")
            },
        ],
        secrets: vec![
            berth_core::team_secret::SecretRef {
                version: 3,
                ..berth_core::team_secret::SecretRef::parse_env("DB_PASSWORD=db-password").unwrap()
            },
            berth_core::team_secret::SecretRef {
                version: 1,
                ..berth_core::team_secret::SecretRef::parse_file("/run/secrets/tls=tls-cert")
                    .unwrap()
            },
        ],
        sensitive_env: ["DATABASE_URL".to_string()].into(),
        node_constraints: vec![
            berth_core::placement::NodeConstraint::parse("disk==ssd").unwrap(),
            berth_core::placement::NodeConstraint::parse("datacenter!=dc2").unwrap(),
        ],
    }
}

/// A revision of `app` with a full template.
pub fn revision(app: &str, number: u32) -> Revision {
    Revision {
        app: app.to_string(),
        number,
        template: full_template(&format!("registry.local/{app}:v{number}")),
        created_at: T0 + i64::from(number) * 1_000,
        created_by: "alice@example.com".into(),
        reason: format!("deploy: image v{number}"),
    }
}

/// A freshly created app on revision 1, version 1.
pub fn new_app(name: &str) -> App {
    App {
        name: name.to_string(),
        team: "default".into(),
        replicas: 2,
        strategy: RolloutStrategy::default(),
        dependencies: Vec::new(),
        routes: Default::default(),
        current_revision: 1,
        stable_revision: None,
        latest_revision: 1,
        rollout: Rollout::start(1, "created", T0),
        next_ordinal: 0,
        idle_timeout_secs: None,
        idled: None,
        autoscale: None,
        created_at: T0,
        updated_at: T0,
        version: 1,
    }
}

/// Creates `name` with revision 1 and returns it as stored.
async fn create<S: AppStore + ?Sized>(store: &S, name: &str) -> App {
    let app = new_app(name);
    store
        .create_app(&app, &revision(name, 1))
        .await
        .expect("create_app");
    app
}

fn assert_conflict<T: std::fmt::Debug>(result: Result<T, StoreError>, what: &str) {
    match result {
        Err(StoreError::Conflict(_)) => {}
        other => panic!("{what}: expected Conflict, got {other:?}"),
    }
}

fn assert_not_found<T: std::fmt::Debug>(result: Result<T, StoreError>, what: &str) {
    match result {
        Err(StoreError::NotFound(_)) => {}
        other => panic!("{what}: expected NotFound, got {other:?}"),
    }
}

fn numbers(revisions: &[Revision]) -> Vec<u32> {
    revisions.iter().map(|r| r.number).collect()
}

/// A user with a unique username and email (its id is assigned by the store).
pub fn new_user(check: &str) -> User {
    let username = unique_name(check);
    User {
        id: 0,
        email: format!("{username}@example.test"),
        display_name: format!("User of {check}"),
        username,
        is_admin: false,
        disabled: false,
        created_at: T0,
        updated_at: T0,
    }
}

/// An unrevoked token record of `user_id` named `name`, never used, expiring at `T0 + 1 day`.
pub fn new_api_token(user_id: i64, name: &str) -> ApiToken {
    ApiToken {
        id: 0,
        user_id,
        name: name.into(),
        prefix: "berth_abcdefgh".into(),
        expires_at: Some(T0 + 86_400_000),
        last_used_at: None,
        created_at: T0,
        revoked: false,
        scope: TokenScope::Full,
    }
}

/// A team with a unique name, a partly limited quota and distinct timestamps.
pub fn new_team(check: &str) -> Team {
    Team {
        name: unique_name(check),
        display_name: format!("Team of {check} — «ünïcode»"),
        quota: Quota {
            cpu_millis: Some(2_000),
            memory_bytes: Some(4 << 30),
            instances: None,
            registry_bytes: Some(i64::MAX as u64),
            volume_bytes: Some(5 << 30),
        },
        created_at: T0,
        updated_at: T0 + 1,
    }
}

/// A session of `user_id` created at `T0`, expiring at `expires_at`.
pub fn new_session(user_id: i64, expires_at: Millis) -> Session {
    Session {
        user_id,
        csrf_token: format!("csrf-{}", unique_name("csrf")),
        created_at: T0,
        expires_at,
        last_seen_at: T0,
        source: "192.0.2.7".into(),
    }
}

/// A pending request of `team` by `requested_by` for more CPU and instances.
pub fn new_quota_request(team: &str, requested_by: &str, created_at: Millis) -> QuotaRequest {
    QuotaRequest {
        id: 0,
        team: team.into(),
        requested_by: requested_by.into(),
        requested: Quota {
            cpu_millis: Some(8_000),
            memory_bytes: None,
            instances: Some(12),
            registry_bytes: None,
            volume_bytes: Some(50 << 30),
        },
        reason: "launch week — «peak» traffic".into(),
        status: QuotaRequestStatus::Pending,
        created_at,
        decided_by: None,
        decided_at: None,
        comment: None,
    }
}

/// A template of `team` using every kind of parameter and a nested body.
pub fn new_template(team: &str, name: &str) -> DeploymentTemplate {
    let param = |name: &str, kind| TemplateParam {
        name: name.into(),
        kind,
        description: String::new(),
        default: None,
        min: None,
        max: None,
    };
    DeploymentTemplate {
        team: Some(team.into()),
        name: name.into(),
        description: "A web service".into(),
        params: vec![
            TemplateParam {
                description: "How many instances".into(),
                default: Some(serde_json::json!(2)),
                min: Some(1),
                max: Some(10),
                ..param("replicas", ParamKind::Integer)
            },
            param("name", ParamKind::Name),
            param("image", ParamKind::Image),
            TemplateParam {
                default: Some(serde_json::json!("/healthz")),
                ..param("health", ParamKind::Path)
            },
            TemplateParam {
                default: Some(serde_json::json!(false)),
                ..param("debug", ParamKind::Boolean)
            },
            param("greeting", ParamKind::String),
        ],
        body: serde_json::json!({
            "name": "${name}",
            "replicas": "${replicas}",
            "template": {
                "image": "${image}",
                "env": { "GREETING": "say ${greeting} — ✓", "DEBUG": "${debug}" },
                "readiness": { "path": "${health}" },
                "args": ["--port", 8080, null, 1.5],
            },
        }),
        created_by: "alice".into(),
        created_at: T0,
        updated_at: T0,
    }
}

/// A successful audit record by `actor`.
pub fn new_audit(actor: &str, action: &str, team: Option<&str>, at: Millis) -> AuditEntry {
    AuditEntry {
        id: 0,
        at,
        actor: actor.into(),
        action: action.into(),
        team: team.map(str::to_string),
        object: "app/web".into(),
        source: "198.51.100.4".into(),
        outcome: AuditOutcome::Success,
        status: 200,
        detail: "replicas 2 → 3; \"quoted\"".into(),
    }
}

/// An external registry of `team` with credentials (the sealed text is opaque to the store).
pub fn new_external_registry(team: &str, check: &str) -> ExternalRegistry {
    ExternalRegistry {
        name: unique_name(check),
        team: team.to_string(),
        url: "http://127.0.0.1:5000".into(),
        username: Some("ci-«ünïcode»".into()),
        sealed_password: Some("v1.c2VhbGVk".into()),
        created_at: T0,
        updated_at: T0 + 1,
    }
}

/// A pipeline of `team` using every field (the sealed texts are opaque to the store).
pub fn new_pipeline(team: &str, check: &str) -> Pipeline {
    Pipeline {
        team: team.to_string(),
        name: unique_name(check),
        repository_url: "https://git.example.com/web/api.git".into(),
        branch_pattern: "release/*".into(),
        dockerfile: "docker/Dockerfile.prod".into(),
        context: "services/api".into(),
        build_args: BTreeMap::from([
            ("VERSION".to_string(), "1.2.3".to_string()),
            ("EMPTY".to_string(), String::new()),
            ("UNICODE".to_string(), "héllo «wörld»".to_string()),
        ]),
        test_command: vec!["sh".into(), "-c".into(), "make test 'quoted \"x\"'".into()],
        target_repository: format!("{team}/api"),
        deploy_app: Some("api".into()),
        sealed_credentials: Some("v1.Y3JlZGVudGlhbHM".into()),
        credentials_origin: Some("https://git.example.com:443".into()),
        sealed_webhook_secret: Some("v1.c2VjcmV0".into()),
        created_by: "alice".into(),
        created_at: T0,
        updated_at: T0 + 1,
    }
}

/// A queued build of `pipeline` at `T0 + at`, with its commit known.
pub fn new_build(pipeline: &Pipeline, at: Millis) -> Build {
    Build {
        commit: Some("0123456789abcdef0123456789abcdef01234567".into()),
        branch: Some("release/1.2".into()),
        author: Some("Zoë «Dev»".into()),
        author_email: Some("zoe@example.com".into()),
        message: Some("Fix the thing\n\nWith a body.".into()),
        ..Build::queued(
            &pipeline.team,
            &pipeline.name,
            BuildTrigger::Webhook,
            "github",
            T0 + at,
        )
    }
}
