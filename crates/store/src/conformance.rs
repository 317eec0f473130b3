//! The conformance suite every [`Store`] implementation must pass.
//!
//! Run it from an implementation's tests with [`run_all`] on a multi-threaded tokio runtime
//! (`#[tokio::test(flavor = "multi_thread")]`). Each check creates its own uniquely named apps,
//! so the checks can share one store — even one database shared by several test runs — and
//! each check can also be called alone. Checks panic on failure, like tests do.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use berth_core::accounts::{ApiToken, Membership, TeamRole, User};
use berth_core::audit::{AuditEntry, AuditOutcome};
use berth_core::deploy_template::{DeploymentTemplate, ParamKind, TemplateParam};
use berth_core::pipeline::{Build, BuildStatus, BuildTrigger, Pipeline, StepStatus};
use berth_core::quota::{Quota, QuotaRequest, QuotaRequestStatus};
use berth_core::session::Session;
use berth_core::team::Team;
use berth_core::{
    App, Event, ExternalRegistry, Millis, Probe, Resources, Revision, Rollout, RolloutPhase,
    RolloutStrategy, Template,
};

use crate::{
    AuditQuery, BuildQuery, DeliveryBuild, EventQuery, QuotaDecision, QuotaRequestQuery, Store,
    StoreError,
};

/// A fixed point in time the fixtures are built around (the store never reads a clock).
const T0: Millis = 1_700_000_000_000;

/// Runs every check against `store`.
pub async fn run_all(store: Arc<dyn Store>) {
    let s = &*store;
    ping(s).await;
    ensure_team_is_idempotent(s).await;
    create_get_list_round_trip(s).await;
    create_duplicate_is_conflict(s).await;
    create_with_foreign_revision_is_refused(s).await;
    update_app_checks_version(s).await;
    update_app_never_lowers_next_ordinal(s).await;
    add_revision_prunes_but_keeps_current_and_stable(s).await;
    add_revision_duplicate_is_conflict(s).await;
    add_revision_stale_or_unknown_app(s).await;
    list_revisions_newest_first(s).await;
    allocate_ordinals_sequential(s).await;
    allocate_ordinals_concurrent(store.clone()).await;
    events_round_trip_ascending(s).await;
    events_paging_after_id(s).await;
    events_latest_n(s).await;
    events_retention_per_app(s).await;
    delete_app_removes_everything(s).await;
    retention_rules_round_trip(s).await;
    users_round_trip(s).await;
    users_duplicate_username_or_email_is_conflict(s).await;
    users_update_and_password(s).await;
    memberships_round_trip(s).await;
    api_tokens_round_trip(s).await;
    api_tokens_revoke(s).await;
    delete_user_removes_memberships_and_tokens(s).await;
    sessions_round_trip(s).await;
    sessions_expire(s).await;
    delete_user_ends_sessions(s).await;
    teams_round_trip(s).await;
    delete_team_checks_apps_and_cascades(s).await;
    quota_requests_round_trip_and_filters(s).await;
    decide_quota_request_sets_limits_once(s).await;
    deployment_templates_round_trip(s).await;
    audit_round_trip_and_filters(s).await;
    settings_round_trip(s).await;
    list_team_users_by_username(s).await;
    external_registries_round_trip(s).await;
    delete_team_removes_its_external_registries(s).await;
    pipelines_round_trip(s).await;
    builds_are_numbered_per_pipeline(s).await;
    create_build_numbers_concurrently(store.clone()).await;
    update_build_round_trip_and_final_status(s).await;
    list_builds_filters_and_pages(s).await;
    interrupt_started_builds_leaves_queued_and_ended_ones(s).await;
    prune_builds_keeps_newest_and_unfinished(s).await;
    webhook_deliveries_build_once(store.clone()).await;
    webhook_commits_build_once(store.clone()).await;
    delete_pipeline_removes_builds_and_deliveries(s).await;
    delete_team_removes_its_pipelines(s).await;
}

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
        current_revision: 1,
        stable_revision: None,
        latest_revision: 1,
        rollout: Rollout::start(1, "created", T0),
        next_ordinal: 0,
        created_at: T0,
        updated_at: T0,
        version: 1,
    }
}

/// Creates `name` with revision 1 and returns it as stored.
async fn create(store: &dyn Store, name: &str) -> App {
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

/// The store answers.
pub async fn ping(store: &dyn Store) {
    store.ping().await.expect("ping");
}

/// `ensure_team` succeeds again for an existing team.
pub async fn ensure_team_is_idempotent(store: &dyn Store) {
    let team = unique_name("team");
    store
        .ensure_team(&team, T0)
        .await
        .expect("ensure_team (new)");
    store
        .ensure_team(&team, T0 + 1)
        .await
        .expect("ensure_team (existing)");
    store
        .ensure_team(berth_core::DEFAULT_TEAM, T0)
        .await
        .expect("ensure_team (default)");
    store
        .ensure_team(berth_core::DEFAULT_TEAM, T0)
        .await
        .expect("ensure_team (default again)");
}

/// Every field of apps and revisions survives create → get and create → list, for every
/// rollout phase and with optional fields both set and unset.
pub async fn create_get_list_round_trip(store: &dyn Store) {
    let phases = [
        RolloutPhase::Progressing,
        RolloutPhase::Complete,
        RolloutPhase::RollingBack,
        RolloutPhase::RolledBack,
        RolloutPhase::Failed,
    ];
    let mut created = Vec::new();
    for (i, phase) in phases.into_iter().enumerate() {
        let i = i as u32;
        let name = unique_name(&format!("roundtrip-{}", phase.as_str()));
        let settled = !phase.in_progress();
        let app = App {
            name: name.clone(),
            team: format!("team-{i}"),
            replicas: 3 + i,
            strategy: RolloutStrategy {
                max_surge: 2 + i,
                max_unavailable: 1,
                min_ready_ms: 2_500,
                progress_deadline_ms: 120_000 + u64::from(i),
            },
            dependencies: if i.is_multiple_of(2) {
                vec!["db".into(), format!("cache-{i}")]
            } else {
                Vec::new()
            },
            current_revision: 7 + i,
            stable_revision: if i.is_multiple_of(2) {
                Some(6 + i)
            } else {
                None
            },
            latest_revision: 9 + i,
            rollout: Rollout {
                revision: 7 + i,
                phase,
                failed_revision: if matches!(
                    phase,
                    RolloutPhase::RollingBack | RolloutPhase::RolledBack | RolloutPhase::Failed
                ) {
                    Some(8 + i)
                } else {
                    None
                },
                message: format!("phase {} — «quoted» 'text' \"here\"", phase.as_str()),
                started_at: T0 + 10,
                progress_at: T0 + 20 + i64::from(i),
                available: 2 + i,
                finished_at: settled.then_some(T0 + 30),
            },
            next_ordinal: (1 << 40) + u64::from(i),
            created_at: T0 - 5,
            updated_at: T0 + 40,
            version: 3 + i64::from(i),
        };
        let mut rev = revision(&name, 7 + i);
        if !i.is_multiple_of(2) {
            // A minimal template too: defaults and empty collections round-trip as well.
            rev.template = Template {
                image: "img".into(),
                ..Template::default()
            };
        }
        store.create_app(&app, &rev).await.expect("create_app");
        assert_eq!(
            store.get_app(&name).await.expect("get_app"),
            Some(app.clone())
        );
        assert_eq!(
            store
                .get_revision(&name, rev.number)
                .await
                .expect("get_revision"),
            Some(rev.clone())
        );
        assert_eq!(
            store.list_revisions(&name).await.expect("list_revisions"),
            vec![rev]
        );
        created.push(app);
    }

    let listed = store.list_apps().await.expect("list_apps");
    let names: Vec<&str> = listed.iter().map(|a| a.name.as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(names, sorted, "list_apps is ordered by name");
    for app in &created {
        let found = listed.iter().find(|a| a.name == app.name);
        assert_eq!(found, Some(app), "list_apps returns {} intact", app.name);
    }

    assert_eq!(
        store
            .get_app(&unique_name("missing"))
            .await
            .expect("get_app"),
        None
    );
    assert_eq!(
        store
            .get_revision(&created[0].name, 99)
            .await
            .expect("get_revision"),
        None
    );
    assert_eq!(
        store
            .get_revision(&unique_name("missing"), 1)
            .await
            .expect("get_revision"),
        None
    );
}

/// Creating an app whose name is taken is a conflict and changes nothing.
pub async fn create_duplicate_is_conflict(store: &dyn Store) {
    let name = unique_name("duplicate");
    let app = create(store, &name).await;
    let mut other = new_app(&name);
    other.replicas = 9;
    assert_conflict(
        store.create_app(&other, &revision(&name, 2)).await,
        "duplicate create_app",
    );
    assert_eq!(store.get_app(&name).await.unwrap(), Some(app));
    assert_eq!(
        numbers(&store.list_revisions(&name).await.unwrap()),
        vec![1]
    );
}

/// A first revision filed under another app is refused and nothing is created.
pub async fn create_with_foreign_revision_is_refused(store: &dyn Store) {
    let name = unique_name("foreign");
    let other = unique_name("foreign-other");
    let result = store
        .create_app(&new_app(&name), &revision(&other, 1))
        .await;
    assert!(
        result.is_err(),
        "create_app with another app's revision: {result:?}"
    );
    assert_eq!(store.get_app(&name).await.unwrap(), None);
    assert!(store.list_revisions(&other).await.unwrap().is_empty());
}

/// `update_app` bumps the version, refuses stale copies and unknown apps.
pub async fn update_app_checks_version(store: &dyn Store) {
    let name = unique_name("update");
    let original = create(store, &name).await;

    let mut changed = original.clone();
    changed.replicas = 5;
    changed.team = "other-team".into();
    changed.strategy.max_surge = 3;
    changed.dependencies = vec!["redis".into()];
    changed.stable_revision = Some(1);
    changed.rollout.phase = RolloutPhase::Complete;
    changed.rollout.available = 5;
    changed.rollout.finished_at = Some(T0 + 100);
    changed.updated_at = T0 + 100;
    let stored = store.update_app(&changed).await.expect("update_app");
    assert_eq!(
        stored.version,
        original.version + 1,
        "update_app increments the version"
    );
    assert_eq!(
        stored,
        App {
            version: original.version + 1,
            ..changed.clone()
        }
    );
    assert_eq!(store.get_app(&name).await.unwrap(), Some(stored.clone()));

    // A second update from the returned copy works; one from the old copy does not.
    let mut again = stored.clone();
    again.stable_revision = None;
    let stored2 = store
        .update_app(&again)
        .await
        .expect("update_app from the returned copy");
    assert_eq!(stored2.version, stored.version + 1);
    assert_eq!(stored2.stable_revision, None);

    let mut stale = changed.clone();
    stale.replicas = 42;
    assert_conflict(
        store.update_app(&stale).await,
        "update_app with a stale version",
    );
    assert_eq!(store.get_app(&name).await.unwrap(), Some(stored2.clone()));

    assert_not_found(
        store
            .update_app(&new_app(&unique_name("update-missing")))
            .await,
        "update_app of an unknown app",
    );
}

/// `update_app` raises `next_ordinal` but never lowers it: ordinals handed out stay reserved.
pub async fn update_app_never_lowers_next_ordinal(store: &dyn Store) {
    let name = unique_name("update-ordinal");
    let app = create(store, &name).await;
    assert_eq!(store.allocate_ordinals(&name, 3).await.unwrap(), 0);

    let mut changed = app.clone();
    changed.replicas = 4;
    changed.next_ordinal = 0; // stale on purpose
    let stored = store.update_app(&changed).await.unwrap();
    assert_eq!(
        stored.next_ordinal, 3,
        "update_app returns the stored next_ordinal"
    );

    let mut reserved = stored.clone();
    reserved.next_ordinal = 7;
    let stored = store.update_app(&reserved).await.unwrap();
    assert_eq!(stored.next_ordinal, 7, "update_app raises next_ordinal");
    assert_eq!(store.get_app(&name).await.unwrap().unwrap().next_ordinal, 7);

    let mut stale = stored.clone();
    stale.next_ordinal = 5;
    let stored = store.update_app(&stale).await.unwrap();
    assert_eq!(
        stored.next_ordinal, 7,
        "update_app never lowers next_ordinal"
    );
    assert_eq!(store.allocate_ordinals(&name, 1).await.unwrap(), 7);
}

/// `add_revision` keeps the newest `keep` revisions plus the current and stable ones.
pub async fn add_revision_prunes_but_keeps_current_and_stable(store: &dyn Store) {
    let name = unique_name("prune");
    let mut app = create(store, &name).await;
    app.stable_revision = Some(1);

    for number in 2..=6 {
        app.current_revision = number;
        app.latest_revision = number;
        app.rollout = Rollout::start(number, "deploy", T0 + i64::from(number));
        let stored = store
            .add_revision(&app, &revision(&name, number), 3)
            .await
            .unwrap();
        assert_eq!(
            stored,
            App {
                version: app.version + 1,
                ..app.clone()
            }
        );
        assert_eq!(store.get_app(&name).await.unwrap(), Some(stored.clone()));
        app = stored;
    }
    let kept = store.list_revisions(&name).await.unwrap();
    assert_eq!(
        numbers(&kept),
        vec![6, 5, 4, 1],
        "newest 3 plus the stable revision"
    );
    assert_eq!(kept[0], revision(&name, 6), "kept revisions are intact");
    assert_eq!(store.get_revision(&name, 2).await.unwrap(), None);

    // Roll back to 4 and keep only 2: revision 4 (current) and 1 (stable) are older but stay.
    app.current_revision = 4;
    app.latest_revision = 7;
    let app = store
        .add_revision(&app, &revision(&name, 7), 2)
        .await
        .unwrap();
    assert_eq!(
        numbers(&store.list_revisions(&name).await.unwrap()),
        vec![7, 6, 4, 1]
    );

    // Without a stable revision, only the newest and the current one remain.
    let mut app = app;
    app.stable_revision = None;
    app.latest_revision = 8;
    store
        .add_revision(&app, &revision(&name, 8), 1)
        .await
        .unwrap();
    assert_eq!(
        numbers(&store.list_revisions(&name).await.unwrap()),
        vec![8, 4]
    );
    assert!(store.get_revision(&name, 4).await.unwrap().is_some());
}

/// Adding an existing revision number is a conflict, and the app is not updated either.
pub async fn add_revision_duplicate_is_conflict(store: &dyn Store) {
    let name = unique_name("dup-revision");
    let app = create(store, &name).await;
    let mut changed = app.clone();
    changed.replicas = 7;
    let mut dup = revision(&name, 1);
    dup.reason = "again".into();
    assert_conflict(
        store.add_revision(&changed, &dup, 10).await,
        "duplicate revision number",
    );
    assert_eq!(
        store.get_app(&name).await.unwrap(),
        Some(app),
        "the app update is rolled back"
    );
    assert_eq!(
        store.get_revision(&name, 1).await.unwrap(),
        Some(revision(&name, 1))
    );
}

/// `add_revision` from a stale copy is a conflict, on an unknown app `NotFound`; neither adds
/// the revision.
pub async fn add_revision_stale_or_unknown_app(store: &dyn Store) {
    let name = unique_name("stale-revision");
    let app = create(store, &name).await;
    let updated = store.update_app(&app).await.unwrap();
    assert_conflict(
        store.add_revision(&app, &revision(&name, 2), 10).await,
        "add_revision from a stale copy",
    );
    assert_eq!(store.get_revision(&name, 2).await.unwrap(), None);
    assert_eq!(store.get_app(&name).await.unwrap(), Some(updated));

    let missing = unique_name("stale-revision-missing");
    assert_not_found(
        store
            .add_revision(&new_app(&missing), &revision(&missing, 2), 10)
            .await,
        "add_revision on an unknown app",
    );
    assert!(store.list_revisions(&missing).await.unwrap().is_empty());
}

/// `list_revisions` is newest first, and empty for an unknown app.
pub async fn list_revisions_newest_first(store: &dyn Store) {
    let name = unique_name("list-revisions");
    let mut app = create(store, &name).await;
    for number in [2, 3, 10, 11] {
        app.latest_revision = number;
        app = store
            .add_revision(&app, &revision(&name, number), 100)
            .await
            .unwrap();
    }
    let listed = store.list_revisions(&name).await.unwrap();
    assert_eq!(numbers(&listed), vec![11, 10, 3, 2, 1]);
    assert!(listed.iter().all(|r| *r == revision(&name, r.number)));
    assert!(
        store
            .list_revisions(&unique_name("missing"))
            .await
            .unwrap()
            .is_empty()
    );
}

/// Ordinals are handed out consecutively; an unknown app is `NotFound`.
pub async fn allocate_ordinals_sequential(store: &dyn Store) {
    let name = unique_name("ordinals");
    let mut app = new_app(&name);
    app.next_ordinal = 10;
    store.create_app(&app, &revision(&name, 1)).await.unwrap();
    assert_eq!(store.allocate_ordinals(&name, 1).await.unwrap(), 10);
    assert_eq!(store.allocate_ordinals(&name, 3).await.unwrap(), 11);
    assert_eq!(store.allocate_ordinals(&name, 2).await.unwrap(), 14);
    let stored = store.get_app(&name).await.unwrap().unwrap();
    assert_eq!(stored.next_ordinal, 16);
    assert_eq!(
        stored.version, app.version,
        "allocating ordinals is not an app update"
    );
    assert_not_found(
        store
            .allocate_ordinals(&unique_name("ordinals-missing"), 1)
            .await,
        "allocate_ordinals on an unknown app",
    );
}

/// 20 concurrent callers never get overlapping ordinals, and none is lost.
pub async fn allocate_ordinals_concurrent(store: Arc<dyn Store>) {
    let name = unique_name("ordinals-concurrent");
    create(&*store, &name).await;
    let tasks: Vec<_> = (1..=20u64)
        .map(|i| {
            let store = store.clone();
            let name = name.clone();
            let count = i % 3 + 1;
            tokio::spawn(async move {
                let first = store
                    .allocate_ordinals(&name, count)
                    .await
                    .expect("allocate_ordinals");
                (first, count)
            })
        })
        .collect();
    let mut ranges = Vec::new();
    for task in tasks {
        ranges.push(task.await.expect("allocating task panicked"));
    }
    ranges.sort_unstable();
    let mut expected_next = 0;
    for (first, count) in &ranges {
        assert_eq!(
            *first, expected_next,
            "ordinal ranges are disjoint and gapless: {ranges:?}"
        );
        expected_next += count;
    }
    assert_eq!(
        store.get_app(&name).await.unwrap().unwrap().next_ordinal,
        expected_next
    );
}

/// `n` events of `app` whose message tells their position.
fn events(app: &str, n: usize, tag: &str) -> Vec<Event> {
    (0..n)
        .map(|i| {
            Event::new(
                app,
                T0 + i as i64,
                berth_core::app::ALL_EVENT_KINDS[i % berth_core::app::ALL_EVENT_KINDS.len()],
                format!("{tag} {i}"),
            )
        })
        .collect()
}

fn messages(events: &[Event]) -> Vec<String> {
    events.iter().map(|e| e.message.clone()).collect()
}

const ALL: EventQuery = EventQuery {
    after_id: None,
    limit: 1_000,
};

/// Events come back in insertion (ascending id) order with every field intact; the caller's
/// `id` is ignored; ids increase across apps and calls.
pub async fn events_round_trip_ascending(store: &dyn Store) {
    let a = unique_name("events-a");
    let b = unique_name("events-b");
    let mut batch = Vec::new();
    for (i, kind) in berth_core::app::ALL_EVENT_KINDS.into_iter().enumerate() {
        let app = if i.is_multiple_of(3) { &b } else { &a };
        let mut event = Event::new(app, T0 + i as i64, kind, format!("{} «{i}»", kind.as_str()));
        event.id = 999_999; // ignored
        if i.is_multiple_of(2) {
            event = event.instance(format!("{app}-{i}")).revision(i as u32 + 1);
        }
        if i.is_multiple_of(4) {
            // Parameters, with text that needs escaping, come back as they went in.
            event = event
                .param("from", i)
                .param("reason", "«bad» \"quote\" '\n'");
        }
        batch.push(event);
    }
    store
        .append_events(&batch, 100)
        .await
        .expect("append_events");

    for app in [&a, &b] {
        let stored = store.list_events(app, ALL).await.unwrap();
        let expected: Vec<&Event> = batch.iter().filter(|e| e.app == *app).collect();
        assert_eq!(stored.len(), expected.len());
        for (got, want) in stored.iter().zip(expected) {
            assert_eq!(
                *got,
                Event {
                    id: got.id,
                    ..want.clone()
                },
                "event fields round-trip"
            );
        }
        assert!(
            stored.windows(2).all(|w| w[0].id < w[1].id),
            "ascending ids"
        );
    }

    let before = store.list_events(&a, ALL).await.unwrap();
    store
        .append_events(&events(&b, 1, "later"), 100)
        .await
        .unwrap();
    store
        .append_events(&events(&a, 1, "later"), 100)
        .await
        .unwrap();
    let after = store.list_events(&a, ALL).await.unwrap();
    assert_eq!(after.len(), before.len() + 1);
    let last_b = store.list_events(&b, ALL).await.unwrap().last().unwrap().id;
    assert!(
        after.last().unwrap().id > last_b,
        "ids increase across apps and calls"
    );
    assert!(last_b > before.last().unwrap().id);

    store
        .append_events(&[], 100)
        .await
        .expect("appending nothing");
    assert!(
        store
            .list_events(&unique_name("missing"), ALL)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Paging with `after_id` returns the next `limit` events, ascending, until none are left.
pub async fn events_paging_after_id(store: &dyn Store) {
    let app = unique_name("events-paging");
    let other = unique_name("events-paging-other");
    // Interleave another app so ids of `app` are not contiguous.
    let batch: Vec<Event> = events(&app, 7, "e")
        .into_iter()
        .zip(events(&other, 7, "o"))
        .flat_map(|(x, y)| [x, y])
        .collect();
    store.append_events(&batch, 100).await.unwrap();
    let all = store.list_events(&app, ALL).await.unwrap();
    assert_eq!(messages(&all), messages(&events(&app, 7, "e")));

    let mut paged = Vec::new();
    let mut cursor = EventQuery {
        after_id: Some(0),
        limit: 3,
    };
    loop {
        let page = store.list_events(&app, cursor).await.unwrap();
        assert!(page.len() <= 3);
        let Some(last) = page.last() else { break };
        cursor.after_id = Some(last.id);
        paged.extend(page);
    }
    assert_eq!(paged, all, "pages concatenate to the full list");

    let tail = store
        .list_events(
            &app,
            EventQuery {
                after_id: Some(all[4].id),
                limit: 100,
            },
        )
        .await
        .unwrap();
    assert_eq!(tail, all[5..].to_vec());
    let none = store
        .list_events(
            &app,
            EventQuery {
                after_id: Some(all[6].id),
                limit: 100,
            },
        )
        .await
        .unwrap();
    assert!(none.is_empty());
}

/// Without `after_id`, the latest `limit` events come back, still ascending.
pub async fn events_latest_n(store: &dyn Store) {
    let app = unique_name("events-latest");
    store
        .append_events(&events(&app, 6, "e"), 100)
        .await
        .unwrap();
    let all = store.list_events(&app, ALL).await.unwrap();
    assert_eq!(all.len(), 6);
    let latest = store
        .list_events(
            &app,
            EventQuery {
                after_id: None,
                limit: 2,
            },
        )
        .await
        .unwrap();
    assert_eq!(latest, all[4..].to_vec());
    let zero = store
        .list_events(
            &app,
            EventQuery {
                after_id: None,
                limit: 0,
            },
        )
        .await
        .unwrap();
    assert!(zero.is_empty());
    let more = store
        .list_events(
            &app,
            EventQuery {
                after_id: None,
                limit: 50,
            },
        )
        .await
        .unwrap();
    assert_eq!(more, all);
}

/// Only the newest `keep_per_app` events of each app touched are kept; other apps keep theirs.
pub async fn events_retention_per_app(store: &dyn Store) {
    let a = unique_name("events-keep-a");
    let b = unique_name("events-keep-b");
    let untouched = unique_name("events-keep-untouched");
    store
        .append_events(&events(&untouched, 6, "u"), 100)
        .await
        .unwrap();

    let mut batch = events(&a, 10, "a");
    batch.extend(events(&b, 2, "b"));
    store.append_events(&batch, 4).await.unwrap();
    assert_eq!(
        messages(&store.list_events(&a, ALL).await.unwrap()),
        ["a 6", "a 7", "a 8", "a 9"]
    );
    assert_eq!(
        messages(&store.list_events(&b, ALL).await.unwrap()),
        ["b 0", "b 1"]
    );
    assert_eq!(store.list_events(&untouched, ALL).await.unwrap().len(), 6);

    // Across calls: older events are dropped as newer ones arrive.
    store
        .append_events(&events(&a, 3, "next"), 4)
        .await
        .unwrap();
    assert_eq!(
        messages(&store.list_events(&a, ALL).await.unwrap()),
        ["a 9", "next 0", "next 1", "next 2"]
    );
    store
        .append_events(&events(&b, 1, "more"), 2)
        .await
        .unwrap();
    assert_eq!(
        messages(&store.list_events(&b, ALL).await.unwrap()),
        ["b 1", "more 0"]
    );
}

/// `delete_app` removes the app with its revisions and events, and reports whether it existed.
pub async fn delete_app_removes_everything(store: &dyn Store) {
    let name = unique_name("delete");
    let other = unique_name("delete-other");
    let app = create(store, &name).await;
    create(store, &other).await;
    store
        .add_revision(&app, &revision(&name, 2), 10)
        .await
        .unwrap();
    store
        .append_events(&events(&name, 3, "e"), 100)
        .await
        .unwrap();
    store
        .append_events(&events(&other, 2, "o"), 100)
        .await
        .unwrap();

    assert!(store.delete_app(&name).await.expect("delete_app"));
    assert_eq!(store.get_app(&name).await.unwrap(), None);
    assert!(store.list_revisions(&name).await.unwrap().is_empty());
    assert_eq!(store.get_revision(&name, 1).await.unwrap(), None);
    assert!(store.list_events(&name, ALL).await.unwrap().is_empty());
    assert!(
        !store
            .list_apps()
            .await
            .unwrap()
            .iter()
            .any(|a| a.name == name)
    );
    assert!(
        !store.delete_app(&name).await.expect("delete_app again"),
        "second delete: false"
    );

    // Other apps are untouched, and the name can be reused from a clean slate.
    assert!(store.get_app(&other).await.unwrap().is_some());
    assert_eq!(store.list_revisions(&other).await.unwrap().len(), 1);
    assert_eq!(store.list_events(&other, ALL).await.unwrap().len(), 2);
    create(store, &name).await;
    assert_eq!(
        numbers(&store.list_revisions(&name).await.unwrap()),
        vec![1]
    );
    assert!(store.list_events(&name, ALL).await.unwrap().is_empty());
}

/// Retention rules: put creates then replaces, list is ordered, delete reports existence.
pub async fn retention_rules_round_trip(store: &dyn Store) {
    let repository = format!("{}/app", unique_name("retention"));
    let other = format!("{repository}-b");
    let rule = berth_core::RetentionRule {
        repository: repository.clone(),
        keep_newest_tags: Some(5),
        delete_untagged_older_than_ms: None,
        updated_at: 1,
    };
    store.put_retention_rule(&rule).await.unwrap();
    let replaced = berth_core::RetentionRule {
        keep_newest_tags: None,
        delete_untagged_older_than_ms: Some(86_400_000),
        updated_at: 2,
        ..rule.clone()
    };
    store.put_retention_rule(&replaced).await.unwrap();
    store
        .put_retention_rule(&berth_core::RetentionRule {
            repository: other.clone(),
            ..rule.clone()
        })
        .await
        .unwrap();
    let mine: Vec<_> = store
        .list_retention_rules()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.repository == repository || r.repository == other)
        .collect();
    assert_eq!(mine.len(), 2, "{mine:?}");
    assert_eq!(mine[0], replaced, "put replaces, list orders by repository");
    assert_eq!(mine[1].repository, other);
    assert!(store.delete_retention_rule(&repository).await.unwrap());
    assert!(!store.delete_retention_rule(&repository).await.unwrap());
    assert!(store.delete_retention_rule(&other).await.unwrap());
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
    }
}

pub async fn users_round_trip(store: &dyn Store) {
    let ada = new_user("users");
    let stored = store.create_user(&ada, "hash-ada").await.unwrap();
    assert!(stored.id > 0, "the store assigns an id");
    assert_eq!(
        stored,
        User {
            id: stored.id,
            ..ada.clone()
        }
    );
    let admin = User {
        is_admin: true,
        disabled: true,
        ..new_user("users")
    };
    let admin = store.create_user(&admin, "hash-admin").await.unwrap();
    assert_ne!(admin.id, stored.id);

    assert_eq!(
        store.get_user(stored.id).await.unwrap(),
        Some(stored.clone())
    );
    assert_eq!(store.get_user(admin.id).await.unwrap(), Some(admin.clone()));
    assert_eq!(
        store.get_user_by_username(&ada.username).await.unwrap(),
        Some((stored.clone(), "hash-ada".to_string()))
    );
    assert_eq!(
        store
            .get_user_by_username(&ada.username.to_uppercase())
            .await
            .unwrap(),
        None,
        "usernames match exactly"
    );
    assert_eq!(store.get_user(i64::MAX).await.unwrap(), None);
    assert_eq!(
        store.get_user_by_username("nobody-at-all").await.unwrap(),
        None
    );

    let ids = [stored.id, admin.id];
    let mine: Vec<User> = store
        .list_users()
        .await
        .unwrap()
        .into_iter()
        .filter(|u| ids.contains(&u.id))
        .collect();
    let mut want = vec![stored, admin];
    want.sort_by(|a, b| a.username.cmp(&b.username));
    assert_eq!(mine, want, "listed by username");
}

pub async fn users_duplicate_username_or_email_is_conflict(store: &dyn Store) {
    let ada = new_user("user-dup");
    store.create_user(&ada, "h").await.unwrap();
    let same_username = User {
        email: format!("other-{}", ada.email),
        ..ada.clone()
    };
    match store.create_user(&same_username, "h").await {
        Err(StoreError::Conflict(message)) => assert!(message.contains("username"), "{message}"),
        other => panic!("same username: expected a conflict, got {other:?}"),
    }
    let same_email = User {
        username: format!("{}-2", ada.username),
        email: ada.email.to_uppercase(),
        ..ada.clone()
    };
    match store.create_user(&same_email, "h").await {
        Err(StoreError::Conflict(message)) => assert!(message.contains("email"), "{message}"),
        other => panic!("same email in another case: expected a conflict, got {other:?}"),
    }
    let bob = store.create_user(&new_user("user-dup"), "h").await.unwrap();
    assert_conflict(
        store
            .update_user(&User {
                email: ada.email.clone(),
                ..bob.clone()
            })
            .await,
        "update to a taken email",
    );
    assert_eq!(store.get_user(bob.id).await.unwrap(), Some(bob));
}

pub async fn users_update_and_password(store: &dyn Store) {
    let ada = store
        .create_user(&new_user("user-update"), "old-hash")
        .await
        .unwrap();
    let changed = User {
        username: format!("{}-renamed", ada.username),
        email: format!("new-{}", ada.email),
        display_name: "Ada L.".into(),
        is_admin: true,
        disabled: true,
        updated_at: T0 + 5,
        ..ada.clone()
    };
    store.update_user(&changed).await.unwrap();
    let want = User {
        username: ada.username.clone(),
        ..changed.clone()
    };
    assert_eq!(
        store.get_user(ada.id).await.unwrap(),
        Some(want.clone()),
        "everything but the username changes"
    );
    assert_not_found(
        store
            .update_user(&User {
                id: i64::MAX,
                ..changed.clone()
            })
            .await,
        "update of an unknown user",
    );

    store
        .set_password_hash(ada.id, "new-hash", T0 + 9)
        .await
        .unwrap();
    let (user, hash) = store
        .get_user_by_username(&ada.username)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(hash, "new-hash");
    assert_eq!(user.updated_at, T0 + 9);
    assert_not_found(
        store.set_password_hash(i64::MAX, "x", T0).await,
        "password of an unknown user",
    );
}

pub async fn memberships_round_trip(store: &dyn Store) {
    let team_a = unique_name("members-a");
    let team_b = unique_name("members-b");
    store.ensure_team(&team_a, T0).await.unwrap();
    store.ensure_team(&team_b, T0).await.unwrap();
    let ada = store.create_user(&new_user("members"), "h").await.unwrap();
    let bob = store.create_user(&new_user("members"), "h").await.unwrap();
    let member = |team: &str, user_id, role| Membership {
        team: team.to_string(),
        user_id,
        role,
    };

    store
        .put_membership(&member(&team_a, ada.id, TeamRole::Viewer))
        .await
        .unwrap();
    // Put replaces the role.
    store
        .put_membership(&member(&team_a, ada.id, TeamRole::Owner))
        .await
        .unwrap();
    store
        .put_membership(&member(&team_b, ada.id, TeamRole::Member))
        .await
        .unwrap();
    store
        .put_membership(&member(&team_a, bob.id, TeamRole::Viewer))
        .await
        .unwrap();

    assert_eq!(
        store.list_memberships_of_user(ada.id).await.unwrap(),
        vec![
            member(&team_a, ada.id, TeamRole::Owner),
            member(&team_b, ada.id, TeamRole::Member),
        ],
        "ordered by team"
    );
    assert_eq!(
        store.list_team_members(&team_a).await.unwrap(),
        vec![
            member(&team_a, ada.id, TeamRole::Owner),
            member(&team_a, bob.id, TeamRole::Viewer),
        ],
        "ordered by user id"
    );

    assert_not_found(
        store
            .put_membership(&member(&unique_name("no-team"), ada.id, TeamRole::Owner))
            .await,
        "membership of an unknown team",
    );
    assert_not_found(
        store
            .put_membership(&member(&team_a, i64::MAX, TeamRole::Owner))
            .await,
        "membership of an unknown user",
    );

    assert!(store.delete_membership(&team_a, ada.id).await.unwrap());
    assert!(!store.delete_membership(&team_a, ada.id).await.unwrap());
    assert_eq!(
        store.list_team_members(&team_a).await.unwrap(),
        vec![member(&team_a, bob.id, TeamRole::Viewer)]
    );
    assert_eq!(
        store.list_memberships_of_user(ada.id).await.unwrap(),
        vec![member(&team_b, ada.id, TeamRole::Member)]
    );
}

pub async fn api_tokens_round_trip(store: &dyn Store) {
    let ada = store.create_user(&new_user("tokens"), "h").await.unwrap();
    let hash = format!("hash-{}", unique_name("tokens"));
    let laptop = new_api_token(ada.id, "laptop");
    let stored = store.create_api_token(&laptop, &hash).await.unwrap();
    assert!(stored.id > 0, "the store assigns an id");
    assert_eq!(
        stored,
        ApiToken {
            id: stored.id,
            ..laptop.clone()
        }
    );
    assert_eq!(
        store.find_api_token(&hash).await.unwrap(),
        Some(stored.clone())
    );
    assert_eq!(
        store
            .find_api_token(&format!("{hash}-unknown"))
            .await
            .unwrap(),
        None
    );

    assert_conflict(
        store
            .create_api_token(&new_api_token(ada.id, "again"), &hash)
            .await,
        "a second token with the same hash",
    );
    assert_not_found(
        store
            .create_api_token(&new_api_token(i64::MAX, "ghost"), &format!("{hash}-ghost"))
            .await,
        "a token of an unknown user",
    );

    let never_expires = ApiToken {
        expires_at: None,
        ..new_api_token(ada.id, "ci")
    };
    let ci = store
        .create_api_token(&never_expires, &format!("{hash}-ci"))
        .await
        .unwrap();
    assert_eq!(
        store.list_api_tokens(ada.id).await.unwrap(),
        vec![stored.clone(), ci.clone()],
        "oldest first"
    );

    // last_used_at only moves forward; touching a missing token is fine.
    store.touch_api_token(stored.id, T0 + 10).await.unwrap();
    store.touch_api_token(stored.id, T0 + 5).await.unwrap();
    store.touch_api_token(i64::MAX, T0).await.unwrap();
    let found = store.find_api_token(&hash).await.unwrap().unwrap();
    assert_eq!(found.last_used_at, Some(T0 + 10));
    assert_eq!(
        store.find_api_token(&format!("{hash}-ci")).await.unwrap(),
        Some(ci),
        "touching one token leaves the others"
    );
}

pub async fn api_tokens_revoke(store: &dyn Store) {
    let ada = store.create_user(&new_user("revoke"), "h").await.unwrap();
    let eve = store.create_user(&new_user("revoke"), "h").await.unwrap();
    let hash = format!("hash-{}", unique_name("revoke"));
    let one = store
        .create_api_token(&new_api_token(ada.id, "one"), &format!("{hash}-1"))
        .await
        .unwrap();
    let two = store
        .create_api_token(&new_api_token(ada.id, "two"), &format!("{hash}-2"))
        .await
        .unwrap();
    let eves = store
        .create_api_token(&new_api_token(eve.id, "eve"), &format!("{hash}-3"))
        .await
        .unwrap();

    assert!(
        !store.revoke_api_token(eve.id, one.id).await.unwrap(),
        "nobody revokes another user's token"
    );
    assert!(store.revoke_api_token(ada.id, one.id).await.unwrap());
    assert!(
        store.revoke_api_token(ada.id, one.id).await.unwrap(),
        "revoking twice is fine"
    );
    assert!(!store.revoke_api_token(ada.id, i64::MAX).await.unwrap());

    // Revoked tokens are still found (callers check `is_usable`), and listed as revoked.
    let found = store
        .find_api_token(&format!("{hash}-1"))
        .await
        .unwrap()
        .unwrap();
    assert!(found.revoked);
    assert!(!found.is_usable(T0));
    let listed: Vec<(i64, bool)> = store
        .list_api_tokens(ada.id)
        .await
        .unwrap()
        .iter()
        .map(|t| (t.id, t.revoked))
        .collect();
    assert_eq!(listed, vec![(one.id, true), (two.id, false)]);

    assert_eq!(store.revoke_all_api_tokens(ada.id).await.unwrap(), 1);
    assert_eq!(store.revoke_all_api_tokens(ada.id).await.unwrap(), 0);
    assert!(
        store
            .list_api_tokens(ada.id)
            .await
            .unwrap()
            .iter()
            .all(|t| t.revoked)
    );
    assert_eq!(
        store.find_api_token(&format!("{hash}-3")).await.unwrap(),
        Some(eves),
        "another user's tokens stay valid"
    );
}

pub async fn delete_user_removes_memberships_and_tokens(store: &dyn Store) {
    let team = unique_name("delete-user");
    store.ensure_team(&team, T0).await.unwrap();
    let ada = store
        .create_user(&new_user("delete-user"), "h")
        .await
        .unwrap();
    let bob = store
        .create_user(&new_user("delete-user"), "h")
        .await
        .unwrap();
    for user in [&ada, &bob] {
        store
            .put_membership(&Membership {
                team: team.clone(),
                user_id: user.id,
                role: TeamRole::Member,
            })
            .await
            .unwrap();
    }
    let hash = format!("hash-{}", unique_name("delete-user"));
    store
        .create_api_token(&new_api_token(ada.id, "laptop"), &hash)
        .await
        .unwrap();

    assert!(store.delete_user(ada.id).await.unwrap());
    assert!(!store.delete_user(ada.id).await.unwrap());
    assert_eq!(store.get_user(ada.id).await.unwrap(), None);
    assert_eq!(
        store.get_user_by_username(&ada.username).await.unwrap(),
        None
    );
    assert_eq!(
        store.find_api_token(&hash).await.unwrap(),
        None,
        "tokens go"
    );
    assert!(store.list_api_tokens(ada.id).await.unwrap().is_empty());
    assert!(
        store
            .list_memberships_of_user(ada.id)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.list_team_members(&team).await.unwrap(),
        vec![Membership {
            team: team.clone(),
            user_id: bob.id,
            role: TeamRole::Member,
        }],
        "other members stay"
    );

    // The username and email are free again, but the id is never reused.
    let again = store.create_user(&ada, "h").await.unwrap();
    assert_ne!(again.id, ada.id);
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

pub async fn sessions_round_trip(store: &dyn Store) {
    let ada = store.create_user(&new_user("sessions"), "h").await.unwrap();
    let bob = store.create_user(&new_user("sessions"), "h").await.unwrap();
    let hash = format!("hash-{}", unique_name("sessions"));
    let day = T0 + 86_400_000;
    let session = new_session(ada.id, day);
    store.create_session(&hash, &session).await.unwrap();
    assert_eq!(
        store.find_session(&hash).await.unwrap(),
        Some(session.clone())
    );
    assert_eq!(
        store
            .find_session(&format!("{hash}-unknown"))
            .await
            .unwrap(),
        None
    );
    assert_conflict(
        store.create_session(&hash, &new_session(bob.id, day)).await,
        "a second session with the same hash",
    );
    assert_not_found(
        store
            .create_session(&format!("{hash}-ghost"), &new_session(i64::MAX, day))
            .await,
        "a session of an unknown user",
    );

    // last_seen_at only moves forward; touching a missing session is fine.
    store.touch_session(&hash, T0 + 10).await.unwrap();
    store.touch_session(&hash, T0 + 5).await.unwrap();
    store
        .touch_session(&format!("{hash}-unknown"), T0)
        .await
        .unwrap();
    assert_eq!(
        store.find_session(&hash).await.unwrap(),
        Some(Session {
            last_seen_at: T0 + 10,
            ..session.clone()
        })
    );

    let second = format!("{hash}-2");
    let bobs = format!("{hash}-bob");
    store
        .create_session(&second, &new_session(ada.id, day))
        .await
        .unwrap();
    store
        .create_session(&bobs, &new_session(bob.id, day))
        .await
        .unwrap();
    assert!(store.delete_session(&second).await.unwrap());
    assert!(!store.delete_session(&second).await.unwrap());
    store
        .create_session(&second, &new_session(ada.id, day))
        .await
        .unwrap();
    assert_eq!(store.delete_sessions_of_user(ada.id).await.unwrap(), 2);
    assert_eq!(store.delete_sessions_of_user(ada.id).await.unwrap(), 0);
    assert_eq!(store.find_session(&hash).await.unwrap(), None);
    assert!(
        store.find_session(&bobs).await.unwrap().is_some(),
        "another user's sessions stay"
    );
}

/// `delete_expired_sessions` removes exactly the sessions `Session::is_live` refuses at `now`.
pub async fn sessions_expire(store: &dyn Store) {
    let ada = store
        .create_user(&new_user("sessions-expire"), "h")
        .await
        .unwrap();
    let hash = format!("hash-{}", unique_name("sessions-expire"));
    // Far before the other checks' sessions, which this one must not touch.
    let now = T0 - 1_000_000;
    let sessions = [
        (format!("{hash}-old"), now - 1),
        (format!("{hash}-ending"), now),
        (format!("{hash}-live"), now + 1),
    ];
    for (hash, expires_at) in &sessions {
        let session = Session {
            created_at: now - 100,
            last_seen_at: now - 100,
            ..new_session(ada.id, *expires_at)
        };
        store.create_session(hash, &session).await.unwrap();
    }
    let deleted = store.delete_expired_sessions(now).await.unwrap();
    assert!(deleted >= 2, "deleted {deleted}");
    for (hash, expires_at) in &sessions {
        let found = store.find_session(hash).await.unwrap();
        assert_eq!(
            found.is_some(),
            *expires_at > now,
            "session expiring at {expires_at}, now {now}"
        );
    }
    let live = &sessions[2].0;
    let found = store.find_session(live).await.unwrap().unwrap();
    assert!(found.is_live(now));
    assert!(!found.is_live(now + 1));
}

pub async fn delete_user_ends_sessions(store: &dyn Store) {
    let ada = store
        .create_user(&new_user("delete-user-sessions"), "h")
        .await
        .unwrap();
    let bob = store
        .create_user(&new_user("delete-user-sessions"), "h")
        .await
        .unwrap();
    let hash = format!("hash-{}", unique_name("delete-user-sessions"));
    let day = T0 + 86_400_000;
    store
        .create_session(&hash, &new_session(ada.id, day))
        .await
        .unwrap();
    store
        .create_session(&format!("{hash}-bob"), &new_session(bob.id, day))
        .await
        .unwrap();
    assert!(store.delete_user(ada.id).await.unwrap());
    assert_eq!(store.find_session(&hash).await.unwrap(), None);
    assert!(
        store
            .find_session(&format!("{hash}-bob"))
            .await
            .unwrap()
            .is_some()
    );
}

pub async fn teams_round_trip(store: &dyn Store) {
    let team = new_team("teams");
    store.create_team(&team).await.unwrap();
    assert_eq!(
        store.get_team(&team.name).await.unwrap(),
        Some(team.clone())
    );
    assert_conflict(
        store
            .create_team(&Team {
                display_name: "other".into(),
                ..team.clone()
            })
            .await,
        "a second team with the same name",
    );
    store
        .ensure_team(&team.name, T0 + 50)
        .await
        .expect("ensure_team of a created team");
    assert_eq!(
        store.get_team(&team.name).await.unwrap(),
        Some(team.clone()),
        "ensure_team leaves an existing team alone"
    );
    assert_eq!(store.get_team(&unique_name("no-team")).await.unwrap(), None);

    let unlimited = Team {
        name: format!("{}-b", team.name),
        display_name: String::new(),
        quota: Quota::default(),
        ..team.clone()
    };
    store.create_team(&unlimited).await.unwrap();
    let mine: Vec<Team> = store
        .list_teams()
        .await
        .unwrap()
        .into_iter()
        .filter(|t| [&team.name, &unlimited.name].contains(&&t.name))
        .collect();
    assert_eq!(mine, vec![team.clone(), unlimited], "ordered by name");

    let changed = Team {
        display_name: "Renamed".into(),
        quota: Quota {
            cpu_millis: None,
            memory_bytes: Some(1 << 30),
            instances: Some(0),
            registry_bytes: None,
        },
        created_at: T0 + 99,
        updated_at: T0 + 100,
        ..team.clone()
    };
    store.update_team(&changed).await.unwrap();
    assert_eq!(
        store.get_team(&team.name).await.unwrap(),
        Some(Team {
            created_at: team.created_at,
            ..changed.clone()
        }),
        "update writes display name, quota and updated_at, not created_at"
    );
    assert_not_found(
        store
            .update_team(&Team {
                name: unique_name("no-team"),
                ..changed.clone()
            })
            .await,
        "update of an unknown team",
    );

    let too_large = Team {
        name: unique_name("teams-too-large"),
        quota: Quota {
            memory_bytes: Some(u64::MAX),
            ..Quota::default()
        },
        ..team.clone()
    };
    assert!(
        store.create_team(&too_large).await.is_err(),
        "a limit beyond i64 is refused, not wrapped"
    );
    assert_eq!(store.get_team(&too_large.name).await.unwrap(), None);
}

/// `delete_team` refuses while apps are left, then takes memberships, requests and templates.
pub async fn delete_team_checks_apps_and_cascades(store: &dyn Store) {
    let team = new_team("delete-team");
    let other = new_team("delete-team-other");
    store.create_team(&team).await.unwrap();
    store.create_team(&other).await.unwrap();
    let ada = store
        .create_user(&new_user("delete-team"), "h")
        .await
        .unwrap();
    for t in [&team, &other] {
        store
            .put_membership(&Membership {
                team: t.name.clone(),
                user_id: ada.id,
                role: TeamRole::Owner,
            })
            .await
            .unwrap();
        store
            .put_deployment_template(&new_template(&t.name, "web"))
            .await
            .unwrap();
    }
    let request = store
        .create_quota_request(&new_quota_request(&team.name, &ada.username, T0))
        .await
        .unwrap();
    let others = store
        .create_quota_request(&new_quota_request(&other.name, &ada.username, T0))
        .await
        .unwrap();
    let app_name = unique_name("delete-team-app");
    let app = App {
        team: team.name.clone(),
        ..new_app(&app_name)
    };
    store
        .create_app(&app, &revision(&app_name, 1))
        .await
        .unwrap();

    assert_conflict(store.delete_team(&team.name).await, "team with an app");
    assert_eq!(
        store.get_team(&team.name).await.unwrap(),
        Some(team.clone()),
        "a refused delete changes nothing"
    );
    assert_eq!(store.list_team_members(&team.name).await.unwrap().len(), 1);

    assert!(store.delete_app(&app_name).await.unwrap());
    assert!(store.delete_team(&team.name).await.unwrap());
    assert!(!store.delete_team(&team.name).await.unwrap());
    assert_eq!(store.get_team(&team.name).await.unwrap(), None);
    assert!(
        store
            .list_team_members(&team.name)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.get_quota_request(request.id).await.unwrap(), None);
    assert_eq!(
        store
            .get_deployment_template(&team.name, "web")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.list_memberships_of_user(ada.id).await.unwrap(),
        vec![Membership {
            team: other.name.clone(),
            user_id: ada.id,
            role: TeamRole::Owner,
        }],
        "other teams keep their members"
    );
    assert_eq!(
        store.get_quota_request(others.id).await.unwrap(),
        Some(others)
    );
    assert!(
        store
            .get_deployment_template(&other.name, "web")
            .await
            .unwrap()
            .is_some()
    );
}

pub async fn quota_requests_round_trip_and_filters(store: &dyn Store) {
    let team = new_team("quota-requests");
    let other = new_team("quota-requests-other");
    store.create_team(&team).await.unwrap();
    store.create_team(&other).await.unwrap();
    let ada = unique_name("quota-ada");
    let bob = unique_name("quota-bob");

    let first = new_quota_request(&team.name, &ada, T0);
    let stored = store.create_quota_request(&first).await.unwrap();
    assert!(stored.id > 0, "the store assigns an id");
    assert_eq!(
        stored,
        QuotaRequest {
            id: stored.id,
            ..first.clone()
        }
    );
    assert_eq!(
        store.get_quota_request(stored.id).await.unwrap(),
        Some(stored.clone())
    );
    assert_eq!(store.get_quota_request(i64::MAX).await.unwrap(), None);
    assert_not_found(
        store
            .create_quota_request(&new_quota_request(&unique_name("no-team"), &ada, T0))
            .await,
        "a request of an unknown team",
    );

    let unlimited_ask = QuotaRequest {
        requested: Quota {
            cpu_millis: None,
            memory_bytes: Some(16 << 30),
            instances: None,
            registry_bytes: Some(1 << 40),
        },
        ..new_quota_request(&team.name, &bob, T0 + 1)
    };
    let second = store.create_quota_request(&unlimited_ask).await.unwrap();
    let third = store
        .create_quota_request(&new_quota_request(&other.name, &ada, T0 + 2))
        .await
        .unwrap();
    assert!(
        stored.id < second.id && second.id < third.id,
        "ids increase"
    );
    let rejected = store
        .decide_quota_request(&QuotaDecision {
            id: second.id,
            approve: false,
            decided_by: "root".into(),
            comment: Some("not now".into()),
            now: T0 + 3,
        })
        .await
        .unwrap();

    let ids = |requests: Vec<QuotaRequest>| -> Vec<i64> {
        let mine = [stored.id, second.id, third.id];
        requests
            .into_iter()
            .map(|r| r.id)
            .filter(|id| mine.contains(id))
            .collect()
    };
    let list = |team: Option<&str>, status, requested_by: Option<&str>| {
        let query = QuotaRequestQuery {
            team: team.map(str::to_string),
            status,
            requested_by: requested_by.map(str::to_string),
        };
        async move { store.list_quota_requests(&query).await.unwrap() }
    };
    assert_eq!(
        list(Some(&team.name), None, None).await,
        vec![rejected.clone(), stored.clone()],
        "a team's requests, newest first"
    );
    assert_eq!(
        ids(list(None, None, None).await),
        vec![third.id, second.id, stored.id]
    );
    assert_eq!(
        list(None, None, Some(&ada)).await,
        vec![third.clone(), stored.clone()]
    );
    assert_eq!(
        list(Some(&team.name), Some(QuotaRequestStatus::Pending), None).await,
        vec![stored.clone()]
    );
    assert_eq!(
        list(Some(&team.name), None, Some(&bob)).await,
        vec![rejected.clone()]
    );
    assert!(
        list(Some(&other.name), None, Some(&bob)).await.is_empty(),
        "every filter must match"
    );
    let pending = list(None, Some(QuotaRequestStatus::Pending), None).await;
    assert!(
        pending
            .iter()
            .all(|r| r.status == QuotaRequestStatus::Pending)
    );
    assert_eq!(ids(pending), vec![third.id, stored.id]);
    assert_eq!(
        ids(list(None, Some(QuotaRequestStatus::Rejected), None).await),
        vec![second.id]
    );
    assert!(ids(list(None, Some(QuotaRequestStatus::Approved), None).await).is_empty());
}

pub async fn decide_quota_request_sets_limits_once(store: &dyn Store) {
    let team = new_team("decide");
    store.create_team(&team).await.unwrap();
    let request = store
        .create_quota_request(&new_quota_request(&team.name, "ada", T0))
        .await
        .unwrap();
    let decision = QuotaDecision {
        id: request.id,
        approve: true,
        decided_by: "root".into(),
        comment: None,
        now: T0 + 500,
    };
    let approved = store.decide_quota_request(&decision).await.unwrap();
    let want = QuotaRequest {
        status: QuotaRequestStatus::Approved,
        decided_by: Some("root".into()),
        decided_at: Some(T0 + 500),
        ..request.clone()
    };
    assert_eq!(approved, want);
    assert_eq!(
        store.get_quota_request(request.id).await.unwrap(),
        Some(want.clone())
    );
    let raised = Team {
        quota: Quota {
            cpu_millis: Some(8_000),
            instances: Some(12),
            ..team.quota
        },
        updated_at: T0 + 500,
        ..team.clone()
    };
    assert_eq!(
        store.get_team(&team.name).await.unwrap(),
        Some(raised.clone()),
        "the requested limits are set, the others kept"
    );

    // A decided request cannot be decided again, either way.
    for approve in [true, false] {
        assert_conflict(
            store
                .decide_quota_request(&QuotaDecision {
                    approve,
                    now: T0 + 600,
                    ..decision.clone()
                })
                .await,
            "deciding a decided request",
        );
    }
    assert_eq!(
        store.get_quota_request(request.id).await.unwrap(),
        Some(want)
    );

    let asked_again = store
        .create_quota_request(&QuotaRequest {
            requested: Quota {
                cpu_millis: Some(64_000),
                memory_bytes: Some(64 << 30),
                instances: Some(100),
                registry_bytes: Some(1 << 40),
            },
            ..new_quota_request(&team.name, "ada", T0 + 700)
        })
        .await
        .unwrap();
    let rejected = store
        .decide_quota_request(&QuotaDecision {
            id: asked_again.id,
            approve: false,
            decided_by: "root".into(),
            comment: Some("too much".into()),
            now: T0 + 800,
        })
        .await
        .unwrap();
    assert_eq!(
        rejected,
        QuotaRequest {
            status: QuotaRequestStatus::Rejected,
            decided_by: Some("root".into()),
            decided_at: Some(T0 + 800),
            comment: Some("too much".into()),
            ..asked_again
        }
    );
    assert_eq!(
        store.get_team(&team.name).await.unwrap(),
        Some(raised),
        "a rejection leaves the team alone"
    );
    assert_not_found(
        store
            .decide_quota_request(&QuotaDecision {
                id: i64::MAX,
                ..decision
            })
            .await,
        "deciding an unknown request",
    );
}

pub async fn deployment_templates_round_trip(store: &dyn Store) {
    let team = new_team("templates");
    let other = new_team("templates-other");
    store.create_team(&team).await.unwrap();
    store.create_team(&other).await.unwrap();

    let web = new_template(&team.name, "web");
    store.put_deployment_template(&web).await.unwrap();
    assert_eq!(
        store
            .get_deployment_template(&team.name, "web")
            .await
            .unwrap(),
        Some(web.clone())
    );
    assert_eq!(
        store
            .get_deployment_template(&other.name, "web")
            .await
            .unwrap(),
        None
    );

    let replaced = DeploymentTemplate {
        description: "A worker".into(),
        params: vec![web.params[0].clone()],
        body: serde_json::json!({ "replicas": "${replicas}" }),
        created_by: "bob".into(),
        created_at: T0 + 40,
        updated_at: T0 + 50,
        ..web.clone()
    };
    store.put_deployment_template(&replaced).await.unwrap();
    assert_eq!(
        store
            .get_deployment_template(&team.name, "web")
            .await
            .unwrap(),
        Some(DeploymentTemplate {
            created_at: web.created_at,
            ..replaced.clone()
        }),
        "put replaces the template but keeps its creation time"
    );
    let replaced = DeploymentTemplate {
        created_at: web.created_at,
        ..replaced
    };

    let api = new_template(&team.name, "api");
    let others = new_template(&other.name, "a-first");
    store.put_deployment_template(&api).await.unwrap();
    store.put_deployment_template(&others).await.unwrap();
    assert_eq!(
        store
            .list_deployment_templates(Some(&team.name))
            .await
            .unwrap(),
        vec![api.clone(), replaced.clone()],
        "a team's templates, by name"
    );
    let mine: Vec<DeploymentTemplate> = store
        .list_deployment_templates(None)
        .await
        .unwrap()
        .into_iter()
        .filter(|t| [&team.name, &other.name].contains(&t.team.as_ref().unwrap()))
        .collect();
    assert_eq!(
        mine,
        vec![api.clone(), replaced.clone(), others.clone()],
        "by team, then name"
    );

    assert_not_found(
        store
            .put_deployment_template(&new_template(&unique_name("no-team"), "web"))
            .await,
        "a template of an unknown team",
    );
    assert_conflict(
        store
            .put_deployment_template(&DeploymentTemplate {
                team: None,
                ..new_template(&team.name, "builtin")
            })
            .await,
        "a template without a team",
    );

    assert!(
        store
            .delete_deployment_template(&team.name, "web")
            .await
            .unwrap()
    );
    assert!(
        !store
            .delete_deployment_template(&team.name, "web")
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .list_deployment_templates(Some(&team.name))
            .await
            .unwrap(),
        vec![api]
    );
}

pub async fn audit_round_trip_and_filters(store: &dyn Store) {
    let team = unique_name("audit-team");
    let ada = unique_name("audit-ada");
    let bob = unique_name("audit-bob");
    let entries = [
        new_audit(&ada, "app.create", Some(&team), T0),
        AuditEntry {
            object: "app/api".into(),
            outcome: AuditOutcome::Denied,
            status: 403,
            ..new_audit(&bob, "app.delete", Some(&team), T0 + 10)
        },
        AuditEntry {
            team: None,
            object: format!("user/{ada}"),
            outcome: AuditOutcome::Failed,
            status: 422,
            detail: String::new(),
            ..new_audit(&ada, "user.disable", None, T0 + 20)
        },
        new_audit(&ada, "apps.list", Some(&team), T0 + 30),
        AuditEntry {
            status: u16::MAX,
            ..new_audit(&bob, "app_x.run", Some(&team), T0 + 40)
        },
    ];
    let mut stored = Vec::new();
    for entry in &entries {
        let id = store.append_audit(entry).await.unwrap();
        stored.push(AuditEntry {
            id,
            ..entry.clone()
        });
    }
    assert!(stored.windows(2).all(|w| w[0].id < w[1].id), "ids increase");
    let newest_first = |picks: &[usize]| -> Vec<AuditEntry> {
        let mut want: Vec<AuditEntry> = picks.iter().map(|&i| stored[i].clone()).collect();
        want.sort_by_key(|e| std::cmp::Reverse(e.id));
        want
    };

    let of_team = AuditQuery {
        team: Some(team.clone()),
        limit: 100,
        ..AuditQuery::default()
    };
    let of_ada = AuditQuery {
        actor: Some(ada.clone()),
        limit: 100,
        ..AuditQuery::default()
    };
    let list = |query: AuditQuery| async move { store.list_audit(&query).await.unwrap() };
    assert_eq!(list(of_team.clone()).await, newest_first(&[0, 1, 3, 4]));
    assert_eq!(list(of_ada.clone()).await, newest_first(&[0, 2, 3]));
    let cases: Vec<(&str, AuditQuery, Vec<usize>)> = vec![
        (
            "team and actor",
            AuditQuery {
                actor: Some(bob.clone()),
                ..of_team.clone()
            },
            vec![1, 4],
        ),
        (
            "action prefix",
            AuditQuery {
                action_prefix: Some("app.".into()),
                ..of_team.clone()
            },
            vec![0, 1],
        ),
        (
            "action prefix with LIKE wildcards is literal",
            AuditQuery {
                action_prefix: Some("app_".into()),
                ..of_team.clone()
            },
            vec![4],
        ),
        (
            "action prefix %",
            AuditQuery {
                action_prefix: Some("%".into()),
                ..of_team.clone()
            },
            vec![],
        ),
        (
            "whole action as prefix",
            AuditQuery {
                action_prefix: Some("user.disable".into()),
                ..of_ada.clone()
            },
            vec![2],
        ),
        (
            "object",
            AuditQuery {
                object: Some("app/api".into()),
                ..of_team.clone()
            },
            vec![1],
        ),
        (
            "outcome",
            AuditQuery {
                outcome: Some(AuditOutcome::Success),
                ..of_team.clone()
            },
            vec![0, 3, 4],
        ),
        (
            "since is inclusive",
            AuditQuery {
                since: Some(T0 + 20),
                ..of_ada.clone()
            },
            vec![2, 3],
        ),
        (
            "until is exclusive",
            AuditQuery {
                until: Some(T0 + 20),
                ..of_ada.clone()
            },
            vec![0],
        ),
        (
            "before id",
            AuditQuery {
                before_id: Some(stored[3].id),
                ..of_team.clone()
            },
            vec![0, 1],
        ),
        (
            "limit keeps the newest",
            AuditQuery {
                limit: 2,
                ..of_team.clone()
            },
            vec![3, 4],
        ),
        (
            "limit 0",
            AuditQuery {
                limit: 0,
                ..of_team.clone()
            },
            vec![],
        ),
        (
            "no match",
            AuditQuery {
                team: Some(unique_name("audit-none")),
                ..AuditQuery::default()
            },
            vec![],
        ),
    ];
    for (what, query, picks) in cases {
        assert_eq!(list(query).await, newest_first(&picks), "{what}");
    }

    // Paging backwards through a team's records, two at a time.
    let mut paged = Vec::new();
    let mut before_id = None;
    loop {
        let page = list(AuditQuery {
            before_id,
            limit: 2,
            ..of_team.clone()
        })
        .await;
        let Some(last) = page.last() else { break };
        before_id = Some(last.id);
        paged.extend(page);
    }
    assert_eq!(paged, newest_first(&[0, 1, 3, 4]));

    let unfiltered = list(AuditQuery {
        limit: 1_000_000,
        ..AuditQuery::default()
    })
    .await;
    assert!(
        unfiltered.windows(2).all(|w| w[0].id > w[1].id),
        "newest first"
    );
    for entry in &stored {
        assert!(unfiltered.contains(entry), "unfiltered lists {entry:?}");
    }
}

pub async fn settings_round_trip(store: &dyn Store) {
    let key = unique_name("setting");
    assert_eq!(store.get_setting(&key).await.unwrap(), None);
    store.put_setting(&key, "true", T0).await.unwrap();
    assert_eq!(
        store.get_setting(&key).await.unwrap().as_deref(),
        Some("true")
    );
    store.put_setting(&key, "", T0 + 1).await.unwrap();
    assert_eq!(store.get_setting(&key).await.unwrap().as_deref(), Some(""));
    assert_eq!(
        store.get_setting(&format!("{key}-other")).await.unwrap(),
        None
    );
}

pub async fn list_team_users_by_username(store: &dyn Store) {
    let team = new_team("team-users");
    store.create_team(&team).await.unwrap();
    let base = unique_name("team-users");
    let user = |suffix: &str| User {
        username: format!("{base}-{suffix}"),
        email: format!("{base}-{suffix}@example.test"),
        ..new_user("team-users")
    };
    // Created in reverse order, so user ids and usernames sort differently.
    let zed = store.create_user(&user("zed"), "h").await.unwrap();
    let amy = store.create_user(&user("amy"), "h").await.unwrap();
    let outsider = store.create_user(&user("bob"), "h").await.unwrap();
    let member = |user: &User, role| Membership {
        team: team.name.clone(),
        user_id: user.id,
        role,
    };
    for (user, role) in [(&zed, TeamRole::Viewer), (&amy, TeamRole::Owner)] {
        store.put_membership(&member(user, role)).await.unwrap();
    }
    let other = new_team("team-users-other");
    store.create_team(&other).await.unwrap();
    store
        .put_membership(&Membership {
            team: other.name.clone(),
            ..member(&outsider, TeamRole::Member)
        })
        .await
        .unwrap();

    assert_eq!(
        store.list_team_users(&team.name).await.unwrap(),
        vec![
            (amy.clone(), member(&amy, TeamRole::Owner)),
            (zed.clone(), member(&zed, TeamRole::Viewer)),
        ]
    );
    assert!(
        store
            .list_team_users(&unique_name("no-team"))
            .await
            .unwrap()
            .is_empty()
    );
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

pub async fn external_registries_round_trip(store: &dyn Store) {
    let team = new_team("ext-registries");
    let other = new_team("ext-registries-other");
    store.create_team(&team).await.unwrap();
    store.create_team(&other).await.unwrap();

    let hub = new_external_registry(&team.name, "ext-hub");
    store.put_external_registry(&hub).await.unwrap();
    assert_eq!(
        store.get_external_registry(&hub.name).await.unwrap(),
        Some(hub.clone())
    );
    assert_eq!(
        store
            .get_external_registry(&unique_name("ext-missing"))
            .await
            .unwrap(),
        None
    );

    // Replacing keeps the creation time; everything else (even the team) changes.
    let replaced = ExternalRegistry {
        team: other.name.clone(),
        url: "https://registry.example.com".into(),
        username: None,
        sealed_password: None,
        created_at: T0 + 40,
        updated_at: T0 + 50,
        ..hub.clone()
    };
    store.put_external_registry(&replaced).await.unwrap();
    let replaced = ExternalRegistry {
        created_at: hub.created_at,
        ..replaced
    };
    assert_eq!(
        store.get_external_registry(&hub.name).await.unwrap(),
        Some(replaced.clone()),
        "put replaces the registry but keeps its creation time"
    );

    assert_not_found(
        store
            .put_external_registry(&new_external_registry(
                &unique_name("no-team"),
                "ext-orphan",
            ))
            .await,
        "a registry of a missing team",
    );

    let second = new_external_registry(&team.name, "ext-a");
    store.put_external_registry(&second).await.unwrap();
    let mine: Vec<ExternalRegistry> = store
        .list_external_registries()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.name == hub.name || r.name == second.name)
        .collect();
    let mut want = vec![replaced.clone(), second.clone()];
    want.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(mine, want, "listed by name");
    let names: Vec<String> = store
        .list_external_registries()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert!(names.windows(2).all(|w| w[0] < w[1]), "{names:?}");

    assert!(store.delete_external_registry(&hub.name).await.unwrap());
    assert!(!store.delete_external_registry(&hub.name).await.unwrap());
    assert_eq!(store.get_external_registry(&hub.name).await.unwrap(), None);
    assert_eq!(
        store.get_external_registry(&second.name).await.unwrap(),
        Some(second)
    );
}

pub async fn delete_team_removes_its_external_registries(store: &dyn Store) {
    let team = new_team("ext-delete-team");
    let other = new_team("ext-delete-team-other");
    store.create_team(&team).await.unwrap();
    store.create_team(&other).await.unwrap();
    let gone = new_external_registry(&team.name, "ext-gone");
    let kept = new_external_registry(&other.name, "ext-kept");
    store.put_external_registry(&gone).await.unwrap();
    store.put_external_registry(&kept).await.unwrap();
    assert!(store.delete_team(&team.name).await.unwrap());
    assert_eq!(store.get_external_registry(&gone.name).await.unwrap(), None);
    assert_eq!(
        store.get_external_registry(&kept.name).await.unwrap(),
        Some(kept)
    );
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

/// Creates a team with one pipeline per check name in `pipelines`.
async fn team_with_pipelines(store: &dyn Store, check: &str, pipelines: &[&str]) -> Vec<Pipeline> {
    let team = new_team(check);
    store.create_team(&team).await.unwrap();
    let mut made = Vec::new();
    for name in pipelines {
        let pipeline = new_pipeline(&team.name, name);
        store.put_pipeline(&pipeline).await.unwrap();
        made.push(pipeline);
    }
    made
}

/// `build` as it stands after `steps` have run (succeeded) and the next one started.
fn running(mut build: Build, steps: usize, at: Millis) -> Build {
    build.status = BuildStatus::Building;
    build.started_at = Some(at);
    for (i, step) in build.steps.iter_mut().enumerate().take(steps + 1) {
        step.started_at = Some(at + i as i64);
        if i < steps {
            step.status = StepStatus::Succeeded;
            step.finished_at = Some(at + i as i64 + 1);
        } else {
            step.status = StepStatus::Running;
        }
    }
    build
}

/// `build` ended with `status` at `at`.
fn ended(mut build: Build, status: BuildStatus, at: Millis) -> Build {
    build.status = status;
    build.started_at.get_or_insert(at);
    build.finished_at = Some(at);
    for step in &mut build.steps {
        step.status = if status == BuildStatus::Succeeded {
            StepStatus::Succeeded
        } else {
            StepStatus::Skipped
        };
    }
    if status != BuildStatus::Succeeded {
        build.reason = Some(format!("it {}", status.as_str()));
    }
    build
}

fn build_ids(builds: &[Build]) -> Vec<i64> {
    builds.iter().map(|b| b.id).collect()
}

pub async fn pipelines_round_trip(store: &dyn Store) {
    let team = new_team("pipelines");
    let other = new_team("pipelines-other");
    store.create_team(&team).await.unwrap();
    store.create_team(&other).await.unwrap();

    let api = new_pipeline(&team.name, "pl-api");
    store.put_pipeline(&api).await.unwrap();
    assert_eq!(
        store.get_pipeline(&team.name, &api.name).await.unwrap(),
        Some(api.clone())
    );
    assert_eq!(
        store.get_pipeline(&other.name, &api.name).await.unwrap(),
        None,
        "pipelines are keyed by team and name"
    );
    assert_eq!(
        store
            .get_pipeline(&team.name, &unique_name("pl-missing"))
            .await
            .unwrap(),
        None
    );

    // Replacing keeps the creation time; every other field changes, empty values included.
    let replaced = Pipeline {
        repository_url: "/srv/git/api.git".into(),
        branch_pattern: "main".into(),
        dockerfile: String::new(),
        context: String::new(),
        build_args: BTreeMap::new(),
        test_command: Vec::new(),
        target_repository: format!("{}/api2", team.name),
        deploy_app: None,
        sealed_credentials: None,
        credentials_origin: None,
        sealed_webhook_secret: None,
        created_by: "bob".into(),
        created_at: T0 + 40,
        updated_at: T0 + 50,
        ..api.clone()
    };
    store.put_pipeline(&replaced).await.unwrap();
    let replaced = Pipeline {
        created_at: api.created_at,
        ..replaced
    };
    assert_eq!(
        store.get_pipeline(&team.name, &api.name).await.unwrap(),
        Some(replaced.clone()),
        "put replaces the pipeline but keeps its creation time"
    );

    assert_not_found(
        store
            .put_pipeline(&new_pipeline(&unique_name("no-team"), "pl-orphan"))
            .await,
        "a pipeline of a missing team",
    );

    // Same name in another team: a different pipeline.
    let same_name = Pipeline {
        team: other.name.clone(),
        ..api.clone()
    };
    let second = new_pipeline(&team.name, "pl-a");
    store.put_pipeline(&same_name).await.unwrap();
    store.put_pipeline(&second).await.unwrap();
    let mut want = vec![replaced.clone(), second.clone()];
    want.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(
        store.list_pipelines(Some(&team.name)).await.unwrap(),
        want,
        "a team's pipelines, by name"
    );
    let all = store.list_pipelines(None).await.unwrap();
    let keys: Vec<(String, String)> = all
        .iter()
        .map(|p| (p.team.clone(), p.name.clone()))
        .collect();
    assert!(keys.windows(2).all(|w| w[0] < w[1]), "{keys:?}");
    let mine: Vec<&Pipeline> = all
        .iter()
        .filter(|p| p.team == team.name || p.team == other.name)
        .collect();
    assert_eq!(mine.len(), 3, "every team's pipelines: {mine:?}");

    assert!(store.delete_pipeline(&team.name, &api.name).await.unwrap());
    assert!(!store.delete_pipeline(&team.name, &api.name).await.unwrap());
    assert_eq!(
        store.get_pipeline(&team.name, &api.name).await.unwrap(),
        None
    );
    assert_eq!(
        store.get_pipeline(&other.name, &api.name).await.unwrap(),
        Some(same_name),
        "deleting one team's pipeline leaves the other team's namesake"
    );
}

pub async fn builds_are_numbered_per_pipeline(store: &dyn Store) {
    let pipelines = team_with_pipelines(store, "build-numbers", &["bn-a", "bn-b"]).await;
    let (a, b) = (&pipelines[0], &pipelines[1]);
    // The same pipeline name in another team counts on its own.
    let other_team = new_team("build-numbers-other");
    store.create_team(&other_team).await.unwrap();
    let namesake = Pipeline {
        team: other_team.name.clone(),
        ..a.clone()
    };
    store.put_pipeline(&namesake).await.unwrap();

    let mut made = Vec::new();
    for (i, pipeline) in [a, b, a, &namesake, a, b].into_iter().enumerate() {
        let mut build = new_build(pipeline, i as i64);
        build.id = 999_999; // ignored
        build.number = 77; // ignored
        let stored = store.create_build(&build).await.unwrap();
        assert_eq!(
            stored,
            Build {
                id: stored.id,
                number: stored.number,
                ..build.clone()
            },
            "create_build returns the build as given, with id and number"
        );
        assert_eq!(
            store.get_build(stored.id).await.unwrap(),
            Some(stored.clone())
        );
        made.push(stored);
    }
    let numbers: Vec<u64> = made.iter().map(|b| b.number).collect();
    assert_eq!(numbers, [1, 1, 2, 1, 3, 2]);
    assert!(
        made.windows(2).all(|w| w[0].id < w[1].id),
        "ids increase across pipelines: {:?}",
        build_ids(&made)
    );

    // Replacing the pipeline keeps its numbering.
    store
        .put_pipeline(&Pipeline {
            updated_at: T0 + 99,
            ..a.clone()
        })
        .await
        .unwrap();
    assert_eq!(
        store.create_build(&new_build(a, 10)).await.unwrap().number,
        4
    );

    assert_not_found(
        store
            .create_build(&new_build(&new_pipeline(&a.team, "bn-missing"), 0))
            .await,
        "a build of a missing pipeline",
    );
    assert_eq!(store.get_build(i64::MAX).await.unwrap(), None);
}

pub async fn create_build_numbers_concurrently(store: Arc<dyn Store>) {
    let pipeline = team_with_pipelines(&*store, "build-concurrent", &["bc"])
        .await
        .remove(0);
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let store = store.clone();
            let build = new_build(&pipeline, i);
            tokio::spawn(async move { store.create_build(&build).await.unwrap() })
        })
        .collect();
    let mut numbers = Vec::new();
    for task in tasks {
        numbers.push(task.await.unwrap().number);
    }
    numbers.sort_unstable();
    assert_eq!(numbers, (1..=16).collect::<Vec<u64>>(), "no number twice");
}

pub async fn update_build_round_trip_and_final_status(store: &dyn Store) {
    let pipeline = team_with_pipelines(store, "build-update", &["bu"])
        .await
        .remove(0);
    let queued = Build {
        trigger: BuildTrigger::Manual,
        triggered_by: "alice".into(),
        commit: None,
        branch: None,
        author: None,
        author_email: None,
        message: None,
        ..new_build(&pipeline, 0)
    };
    let queued = store.create_build(&queued).await.unwrap();

    // What a build learns as it runs; the immutable fields given are ignored.
    let mut fetched = running(queued.clone(), 1, T0 + 10);
    fetched.commit = Some("89abcdef0123456789abcdef0123456789abcdef".into());
    fetched.branch = Some("main".into());
    fetched.author = Some("Bob".into());
    fetched.author_email = Some("bob@example.com".into());
    fetched.message = Some("Add «tests»".into());
    let mut attempt = fetched.clone();
    attempt.team = "elsewhere".into();
    attempt.pipeline = "other".into();
    attempt.number = 42;
    attempt.trigger = BuildTrigger::GitPush;
    attempt.triggered_by = "mallory".into();
    attempt.created_at = 1;
    store.update_build(&attempt).await.unwrap();
    assert_eq!(
        store.get_build(queued.id).await.unwrap(),
        Some(fetched.clone())
    );

    let mut succeeded = ended(fetched, BuildStatus::Succeeded, T0 + 20);
    succeeded.image_digest = Some(format!("sha256:{}", "ab".repeat(32)));
    store.update_build(&succeeded).await.unwrap();
    // An ended build may still be written with its own status (the rollout outcome comes last).
    succeeded.rollout_outcome = Some("rolled out revision 7 of api".into());
    store.update_build(&succeeded).await.unwrap();
    assert_eq!(
        store.get_build(queued.id).await.unwrap(),
        Some(succeeded.clone())
    );

    // But its status is final.
    for status in [
        BuildStatus::Interrupted,
        BuildStatus::Deploying,
        BuildStatus::Failed,
    ] {
        assert_conflict(
            store
                .update_build(&Build {
                    status,
                    ..succeeded.clone()
                })
                .await,
            &format!("{} after succeeded", status.as_str()),
        );
    }
    assert_eq!(
        store.get_build(queued.id).await.unwrap(),
        Some(succeeded.clone())
    );

    assert_not_found(
        store
            .update_build(&Build {
                id: i64::MAX,
                ..succeeded
            })
            .await,
        "updating a missing build",
    );
}

pub async fn list_builds_filters_and_pages(store: &dyn Store) {
    let pipelines = team_with_pipelines(store, "build-list", &["bl-a", "bl-b"]).await;
    let (a, b) = (&pipelines[0], &pipelines[1]);
    let mut of_a = Vec::new();
    let mut of_b = Vec::new();
    for i in 0..5 {
        of_a.push(store.create_build(&new_build(a, i)).await.unwrap());
        of_b.push(store.create_build(&new_build(b, i)).await.unwrap());
    }
    of_a.reverse();
    of_b.reverse();
    let team = Some(a.team.clone());
    let query = |pipeline: Option<&Pipeline>, before_id, limit| BuildQuery {
        team: team.clone(),
        pipeline: pipeline.map(|p| p.name.clone()),
        before_id,
        limit,
    };

    assert_eq!(
        store.list_builds(&query(Some(a), None, 100)).await.unwrap(),
        of_a,
        "a pipeline's builds, newest first"
    );
    let team_builds = store.list_builds(&query(None, None, 100)).await.unwrap();
    assert_eq!(team_builds.len(), 10);
    assert!(team_builds.windows(2).all(|w| w[0].id > w[1].id));
    assert!(team_builds.iter().all(|b| b.team == a.team));

    // Paging backwards.
    let page = store.list_builds(&query(Some(b), None, 2)).await.unwrap();
    assert_eq!(build_ids(&page), build_ids(&of_b[..2]));
    let next = store
        .list_builds(&query(Some(b), Some(page[1].id), 2))
        .await
        .unwrap();
    assert_eq!(build_ids(&next), build_ids(&of_b[2..4]));
    let last = store
        .list_builds(&query(Some(b), Some(next[1].id), 2))
        .await
        .unwrap();
    assert_eq!(build_ids(&last), build_ids(&of_b[4..]));
    assert!(
        store
            .list_builds(&query(Some(b), Some(of_b[4].id), 2))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .list_builds(&query(Some(a), None, 0))
            .await
            .unwrap()
            .is_empty()
    );

    // A pipeline name without a team, and every build: newest first, ours among them.
    let by_name = store
        .list_builds(&BuildQuery {
            pipeline: Some(a.name.clone()),
            limit: 100,
            ..BuildQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(by_name, of_a);
    let newest = store
        .list_builds(&BuildQuery {
            limit: 3,
            ..BuildQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(newest.len(), 3);
    assert!(newest.windows(2).all(|w| w[0].id > w[1].id));
    assert!(newest[0].id >= of_b[0].id);
    assert!(
        store
            .list_builds(&BuildQuery {
                team: Some(unique_name("no-team")),
                limit: 10,
                ..BuildQuery::default()
            })
            .await
            .unwrap()
            .is_empty()
    );
}

/// Note: this check ends every started build in the store, so it must not share a database
/// with another run's checks at the same moment.
pub async fn interrupt_started_builds_leaves_queued_and_ended_ones(store: &dyn Store) {
    let pipeline = team_with_pipelines(store, "build-interrupt", &["bi"])
        .await
        .remove(0);
    let mut builds = Vec::new();
    for i in 0..5 {
        builds.push(store.create_build(&new_build(&pipeline, i)).await.unwrap());
    }
    let queued = builds[0].clone();
    let building = running(builds[1].clone(), 1, T0 + 10);
    let succeeded = ended(builds[2].clone(), BuildStatus::Succeeded, T0 + 11);
    let failed = ended(builds[3].clone(), BuildStatus::Failed, T0 + 12);
    let cancelled = ended(builds[4].clone(), BuildStatus::Cancelled, T0 + 13);
    for build in [&building, &succeeded, &failed, &cancelled] {
        store.update_build(build).await.unwrap();
    }

    let now = T0 + 1_000;
    let reason = "Berth restarted during the build";
    let count = store.interrupt_started_builds(now, reason).await.unwrap();
    assert!(count >= 1, "the building build: {count}");

    let mut want_building = building.clone();
    assert!(want_building.interrupt(reason, now));
    assert_eq!(want_building.steps[1].status, StepStatus::Interrupted);
    assert_eq!(
        store.get_build(queued.id).await.unwrap().as_ref(),
        Some(&queued),
        "a queued build waits to run"
    );
    assert!(
        store
            .queued_builds()
            .await
            .unwrap()
            .iter()
            .any(|b| b == &queued),
        "the queued build is listed for the next start"
    );
    assert_eq!(
        store.get_build(building.id).await.unwrap(),
        Some(want_building.clone())
    );
    for build in [&succeeded, &failed, &cancelled] {
        assert_eq!(
            store.get_build(build.id).await.unwrap().as_ref(),
            Some(build),
            "ended builds are untouched"
        );
    }
    let queued_ids: Vec<i64> = store
        .queued_builds()
        .await
        .unwrap()
        .iter()
        .map(|b| b.id)
        .collect();
    let mut sorted = queued_ids.clone();
    sorted.sort_unstable();
    assert_eq!(queued_ids, sorted, "oldest first");

    // Once is enough: an interrupted build stays so.
    store
        .interrupt_started_builds(now + 1, "again")
        .await
        .unwrap();
    assert_conflict(
        store
            .update_build(&ended(building, BuildStatus::Succeeded, now + 2))
            .await,
        "finishing an interrupted build",
    );
    assert_eq!(
        store.get_build(want_building.id).await.unwrap(),
        Some(want_building)
    );
}

pub async fn prune_builds_keeps_newest_and_unfinished(store: &dyn Store) {
    let pipelines = team_with_pipelines(store, "build-prune", &["bp", "bp-other"]).await;
    let (pipeline, other) = (&pipelines[0], &pipelines[1]);
    let mut builds = Vec::new();
    for i in 0..6 {
        let build = store.create_build(&new_build(pipeline, i)).await.unwrap();
        // The second oldest is still queued; the rest have ended.
        let build = if i == 1 {
            build
        } else {
            ended(build, BuildStatus::Failed, T0 + 100 + i)
        };
        store.update_build(&build).await.unwrap();
        builds.push(build);
    }
    let other_build = store.create_build(&new_build(other, 0)).await.unwrap();
    let other_build = ended(other_build, BuildStatus::Succeeded, T0 + 200);
    store.update_build(&other_build).await.unwrap();

    let ids = build_ids(&builds);
    assert!(
        store
            .prune_builds(&pipeline.team, &pipeline.name, 10)
            .await
            .unwrap()
            .is_empty(),
        "fewer builds than kept"
    );
    assert_eq!(
        store
            .prune_builds(&pipeline.team, &pipeline.name, 3)
            .await
            .unwrap(),
        vec![ids[0], ids[2]],
        "the ended builds older than the newest three, ascending"
    );
    let left = store
        .list_builds(&BuildQuery {
            team: Some(pipeline.team.clone()),
            pipeline: Some(pipeline.name.clone()),
            before_id: None,
            limit: 100,
        })
        .await
        .unwrap();
    assert_eq!(build_ids(&left), vec![ids[5], ids[4], ids[3], ids[1]]);
    assert!(
        store
            .prune_builds(&pipeline.team, &pipeline.name, 3)
            .await
            .unwrap()
            .is_empty()
    );

    assert_eq!(
        store
            .prune_builds(&pipeline.team, &pipeline.name, 0)
            .await
            .unwrap(),
        vec![ids[3], ids[4], ids[5]],
        "keep 0 removes every ended build"
    );
    assert_eq!(
        store.get_build(ids[1]).await.unwrap(),
        Some(builds[1].clone())
    );
    assert_eq!(
        store.get_build(other_build.id).await.unwrap(),
        Some(other_build),
        "another pipeline's builds are untouched"
    );
    assert!(
        store
            .prune_builds(&pipeline.team, &unique_name("bp-missing"), 0)
            .await
            .unwrap()
            .is_empty()
    );
    // Numbers are never reused after pruning.
    assert_eq!(
        store
            .create_build(&new_build(pipeline, 9))
            .await
            .unwrap()
            .number,
        7
    );
}

/// The builds of `pipeline`, newest first.
async fn builds_of(store: &dyn Store, pipeline: &Pipeline) -> Vec<Build> {
    store
        .list_builds(&BuildQuery {
            team: Some(pipeline.team.clone()),
            pipeline: Some(pipeline.name.clone()),
            before_id: None,
            limit: 100,
        })
        .await
        .unwrap()
}

/// `build` pushing the commit numbered `n` (a distinct full commit id per number).
fn with_commit(mut build: Build, n: Millis) -> Build {
    build.commit = Some(format!("{n:040x}"));
    build
}

/// The build `create_build_for_delivery` created; panics on a redelivery.
fn created(outcome: DeliveryBuild, what: &str) -> Build {
    match outcome {
        DeliveryBuild::Created(build) => build,
        other => panic!("{what}: expected a new build, got {other:?}"),
    }
}

pub async fn webhook_deliveries_build_once(store: Arc<dyn Store>) {
    let s = &*store;
    let pipelines = team_with_pipelines(s, "webhooks", &["wh-a", "wh-b", "wh-c"]).await;
    let (a, b, c) = (&pipelines[0], &pipelines[1], &pipelines[2]);
    let old = unique_name("delivery-old");
    let recent = unique_name("delivery-recent");
    let deliver = |pipeline: &Pipeline, delivery: &str, at: Millis| {
        let build = new_build(pipeline, at);
        let delivery = delivery.to_owned();
        async move {
            let build = with_commit(build, at);
            s.create_build_for_delivery(&build, Some(&delivery), None, T0 + at)
                .await
        }
    };

    let mut given = new_build(a, 0);
    given.id = 999_999; // ignored
    given.number = 77; // ignored
    let first = created(
        s.create_build_for_delivery(&given, Some(&old), None, T0)
            .await
            .unwrap(),
        "a first delivery",
    );
    assert_eq!(
        first,
        Build {
            id: first.id,
            number: 1,
            ..given
        },
        "the build as given, with its id and the pipeline's next number"
    );
    assert_eq!(s.get_build(first.id).await.unwrap(), Some(first.clone()));
    assert_eq!(
        deliver(a, &old, 5).await.unwrap(),
        DeliveryBuild::Redelivered {
            build_id: Some(first.id)
        },
        "a redelivery answers the first delivery's build"
    );
    assert_eq!(
        build_ids(&builds_of(s, a).await),
        vec![first.id],
        "a redelivery builds nothing"
    );
    let on_b = created(
        deliver(b, &old, 0).await.unwrap(),
        "delivery ids are per pipeline",
    );
    assert_eq!(on_b.number, 1);
    assert_ne!(on_b.id, first.id);
    let second = created(deliver(a, &recent, 100).await.unwrap(), "another delivery");
    assert_eq!(second.number, 2);
    assert_not_found(
        deliver(&new_pipeline(&a.team, "wh-missing"), &old, 0).await,
        "a delivery to a missing pipeline",
    );

    // The first build is pruned; its delivery is still remembered.
    s.update_build(&ended(first.clone(), BuildStatus::Succeeded, T0 + 10))
        .await
        .unwrap();
    assert_eq!(
        s.prune_builds(&a.team, &a.name, 1).await.unwrap(),
        vec![first.id]
    );
    assert_eq!(
        deliver(a, &old, 150).await.unwrap(),
        DeliveryBuild::Redelivered { build_id: None },
        "the first delivery's build is gone"
    );
    assert_eq!(build_ids(&builds_of(s, a).await), vec![second.id]);

    let pruned = s.prune_webhook_deliveries(T0 + 50).await.unwrap();
    assert!(pruned >= 2, "both old deliveries: {pruned}");
    let again = created(
        deliver(a, &old, 200).await.unwrap(),
        "a forgotten id builds again",
    );
    assert_eq!(again.number, 3);
    assert_eq!(
        deliver(a, &recent, 200).await.unwrap(),
        DeliveryBuild::Redelivered {
            build_id: Some(second.id)
        },
        "recent ids are still remembered"
    );

    // Deliveries of one id arriving at once create one build.
    let burst = unique_name("delivery-burst");
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            let build = with_commit(new_build(c, i), 1000 + i);
            let burst = burst.clone();
            tokio::spawn(async move {
                store
                    .create_build_for_delivery(&build, Some(&burst), None, T0 + i)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }
    let made: Vec<&Build> = outcomes
        .iter()
        .filter_map(|o| match o {
            DeliveryBuild::Created(build) => Some(build),
            _ => None,
        })
        .collect();
    assert_eq!(made.len(), 1, "exactly one build: {outcomes:?}");
    let only = made[0];
    assert_eq!(only.number, 1);
    let answer = DeliveryBuild::Redelivered {
        build_id: Some(only.id),
    };
    assert_eq!(
        outcomes.iter().filter(|o| **o == answer).count(),
        outcomes.len() - 1,
        "the others answer with it: {outcomes:?}"
    );
    assert_eq!(build_ids(&builds_of(s, c).await), vec![only.id]);
}

/// A webhook builds a pushed commit at most once per pipeline, whatever the delivery id, and
/// never a commit older than a push it built on that branch; both survive build pruning and go
/// with the pipeline.
pub async fn webhook_commits_build_once(store: Arc<dyn Store>) {
    let s = &*store;
    let pipelines = team_with_pipelines(s, "webhook-commits", &["wc-a", "wc-b"]).await;
    let (a, b) = (&pipelines[0], &pipelines[1]);
    let push = |pipeline: &Pipeline, n: Millis, branch: &str| {
        let mut build = with_commit(new_build(pipeline, n), n);
        build.branch = Some(branch.to_owned());
        build
    };
    let commit = |n: Millis| format!("{n:040x}");
    let zero = "0".repeat(40);

    let first = created(
        s.create_build_for_delivery(&push(a, 1, "main"), Some("d-1"), Some(&zero), T0)
            .await
            .unwrap(),
        "a first push",
    );
    // The same commit under a new delivery id, without an id, or on another branch.
    for (delivery, branch) in [(Some("d-replayed"), "main"), (None, "main"), (None, "dev")] {
        assert_eq!(
            s.create_build_for_delivery(&push(a, 1, branch), delivery, None, T0 + 1)
                .await
                .unwrap(),
            DeliveryBuild::AlreadyBuilt {
                build_id: Some(first.id)
            },
            "{delivery:?} {branch}"
        );
    }
    assert_eq!(
        s.create_build_for_delivery(&push(a, 1, "main"), Some("d-1"), None, T0 + 1)
            .await
            .unwrap(),
        DeliveryBuild::Redelivered {
            build_id: Some(first.id)
        },
        "a delivery id already seen is answered first"
    );
    // Commits are per pipeline.
    created(
        s.create_build_for_delivery(&push(b, 1, "main"), Some("d-1"), None, T0)
            .await
            .unwrap(),
        "the same commit on another pipeline",
    );

    // 1 -> 2 -> 3 on main, delivered out of order: 2->3 first, then 1->2 (older) is refused.
    let third = created(
        s.create_build_for_delivery(&push(a, 3, "main"), None, Some(&commit(2)), T0 + 2)
            .await
            .unwrap(),
        "a newer push",
    );
    assert_eq!(
        s.create_build_for_delivery(&push(a, 2, "main"), None, Some(&commit(1)), T0 + 3)
            .await
            .unwrap(),
        DeliveryBuild::Superseded,
        "a push older than one built on its branch"
    );
    created(
        s.create_build_for_delivery(&push(a, 2, "dev"), None, Some(&zero), T0 + 3)
            .await
            .unwrap(),
        "superseded is per branch",
    );
    assert_conflict(
        s.create_build_for_delivery(
            &Build {
                commit: None,
                ..new_build(a, 9)
            },
            None,
            None,
            T0,
        )
        .await,
        "a webhook build without its commit",
    );

    // Pruning builds forgets no commit.
    for build in [&first, &third] {
        s.update_build(&ended(build.clone(), BuildStatus::Succeeded, T0 + 10))
            .await
            .unwrap();
    }
    s.prune_builds(&a.team, &a.name, 0).await.unwrap();
    assert_eq!(s.get_build(first.id).await.unwrap(), None);
    assert_eq!(
        s.create_build_for_delivery(&push(a, 1, "main"), Some("d-9"), None, T0 + 20)
            .await
            .unwrap(),
        DeliveryBuild::AlreadyBuilt { build_id: None },
        "a pruned build's commit stays built"
    );

    // Concurrent deliveries of one commit under different ids create one build.
    let tasks: Vec<_> = (0..6)
        .map(|i| {
            let store = store.clone();
            let build = push(a, 77, "main");
            tokio::spawn(async move {
                store
                    .create_build_for_delivery(&build, Some(&format!("burst-{i}")), None, T0 + 30)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut made = 0;
    for task in tasks {
        if matches!(task.await.unwrap(), DeliveryBuild::Created(_)) {
            made += 1;
        }
    }
    assert_eq!(made, 1, "one build of one commit");

    // Deleting the pipeline forgets its commits.
    assert!(s.delete_pipeline(&a.team, &a.name).await.unwrap());
    s.put_pipeline(a).await.unwrap();
    created(
        s.create_build_for_delivery(&push(a, 2, "main"), None, None, T0 + 40)
            .await
            .unwrap(),
        "a pipeline made again starts with nothing built",
    );
}

pub async fn delete_pipeline_removes_builds_and_deliveries(store: &dyn Store) {
    let pipelines = team_with_pipelines(store, "pl-delete", &["pd", "pd-kept"]).await;
    let (pipeline, kept) = (&pipelines[0], &pipelines[1]);
    let running_build = store.create_build(&new_build(pipeline, 0)).await.unwrap();
    let running_build = running(running_build, 2, T0 + 5);
    store.update_build(&running_build).await.unwrap();
    let kept_build = store.create_build(&new_build(kept, 0)).await.unwrap();
    let delivery = unique_name("delivery");
    let delivered = created(
        store
            .create_build_for_delivery(&new_build(pipeline, 1), Some(&delivery), None, T0)
            .await
            .unwrap(),
        "a first delivery",
    );

    assert!(
        store
            .delete_pipeline(&pipeline.team, &pipeline.name)
            .await
            .unwrap(),
        "a pipeline with a running build is deleted all the same"
    );
    assert_eq!(store.get_build(running_build.id).await.unwrap(), None);
    assert_eq!(store.get_build(delivered.id).await.unwrap(), None);
    assert_eq!(
        store.get_build(kept_build.id).await.unwrap(),
        Some(kept_build)
    );
    assert_not_found(
        store.create_build(&new_build(pipeline, 1)).await,
        "a build of a deleted pipeline",
    );

    // Created again, it starts afresh.
    store.put_pipeline(pipeline).await.unwrap();
    assert_eq!(
        store
            .create_build(&new_build(pipeline, 2))
            .await
            .unwrap()
            .number,
        1
    );
    assert_eq!(
        created(
            store
                .create_build_for_delivery(&new_build(pipeline, 3), Some(&delivery), None, T0 + 1)
                .await
                .unwrap(),
            "the deleted pipeline's deliveries went with it",
        )
        .number,
        2
    );
}

pub async fn delete_team_removes_its_pipelines(store: &dyn Store) {
    let pipelines = team_with_pipelines(store, "pl-delete-team", &["pdt"]).await;
    let pipeline = &pipelines[0];
    let build = store.create_build(&new_build(pipeline, 0)).await.unwrap();
    let delivered = created(
        store
            .create_build_for_delivery(&new_build(pipeline, 1), Some("d-1"), None, T0)
            .await
            .unwrap(),
        "a first delivery",
    );
    assert!(store.delete_team(&pipeline.team).await.unwrap());
    assert_eq!(
        store
            .get_pipeline(&pipeline.team, &pipeline.name)
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.get_build(build.id).await.unwrap(), None);
    assert_eq!(store.get_build(delivered.id).await.unwrap(), None);
    assert!(
        store
            .list_pipelines(Some(&pipeline.team))
            .await
            .unwrap()
            .is_empty()
    );
}
