//! The apps-area suite ([`AppStore`]): apps, revisions, ordinals, events, team usage, paging.

use berth_core::EventKind;
use berth_core::quota::{Usage, app_usage};
use berth_core::routes::{AppRoutes, Domain, DomainReservation, TcpPort};

use super::*;

/// Runs every apps-area check against `store`.
pub async fn run<S: AppStore + ?Sized>(store: Arc<S>) {
    let s = &*store;
    ping(s).await;
    create_get_list_round_trip(s).await;
    create_duplicate_is_conflict(s).await;
    create_with_foreign_revision_is_refused(s).await;
    update_app_checks_version(s).await;
    update_app_never_lowers_next_ordinal(s).await;
    add_revision_prunes_but_keeps_current_and_stable(s).await;
    add_revision_duplicate_is_conflict(s).await;
    add_revision_stale_or_unknown_app(s).await;
    list_revisions_newest_first(s).await;
    revision_images_name_every_kept_revision(s).await;
    events_round_trip_ascending(s).await;
    events_paging_after_id(s).await;
    events_latest_n(s).await;
    events_retention_per_app(s).await;
    delete_app_removes_everything(s).await;
    team_usage_follows_every_write(s).await;
    team_usage_counts_unlimited_as_zero(s).await;
    list_apps_page_orders_filters_and_pages(s).await;
    list_apps_page_returns_current_templates(s).await;
    domains_belong_to_one_app(s).await;
    domain_reservations_round_trip(s).await;
    instance_health_is_recorded_per_app_and_forgotten(s).await;
}

/// The recorded health of instances: kept per app and container, replaced by a later record,
/// forgotten by container, and gone with its app.
pub async fn instance_health_is_recorded_per_app_and_forgotten<S: AppStore + ?Sized>(store: &S) {
    use berth_core::health::{Liveness, Readiness, RecordedHealth};
    let (web, api) = (unique_name("health-web"), unique_name("health-api"));
    for name in [&web, &api] {
        store
            .create_app(&new_app(name), &revision(name, 1))
            .await
            .expect("create");
    }
    let ready = RecordedHealth {
        readiness: Readiness::Ready { since: T0 },
        liveness: Liveness::Healthy,
        ever_ready: true,
        last_failure: None,
    };
    let failing = RecordedHealth {
        readiness: Readiness::NotReady { since: T0 + 5 },
        liveness: Liveness::Failing { since: T0 + 6 },
        ever_ready: true,
        last_failure: Some("GET /healthz: 503 «Service Unavailable»".into()),
    };
    let (c1, c2, c3) = (unique_name("c1"), unique_name("c2"), unique_name("c3"));
    store
        .put_instance_health(&web, &c1, &ready, T0)
        .await
        .unwrap();
    store
        .put_instance_health(&web, &c2, &ready, T0)
        .await
        .unwrap();
    store
        .put_instance_health(&api, &c3, &ready, T0)
        .await
        .unwrap();
    store
        .put_instance_health(&web, &c2, &failing, T0 + 6)
        .await
        .unwrap();
    let recorded = store.instance_health(&web).await.unwrap();
    assert_eq!(
        recorded,
        BTreeMap::from([(c1.clone(), ready.clone()), (c2.clone(), failing.clone())])
    );
    store
        .forget_instance_health(&[c1.clone(), unique_name("never-recorded")])
        .await
        .unwrap();
    store.forget_instance_health(&[]).await.unwrap();
    assert_eq!(
        store.instance_health(&web).await.unwrap(),
        BTreeMap::from([(c2, failing)])
    );
    assert!(store.delete_app(&web).await.unwrap());
    assert!(store.instance_health(&web).await.unwrap().is_empty());
    assert_eq!(
        store.instance_health(&api).await.unwrap(),
        BTreeMap::from([(c3, ready)]),
        "another app's records stay"
    );
}

/// The store answers.
pub async fn ping<S: AppStore + ?Sized>(store: &S) {
    store.ping().await.expect("ping");
}

/// Every field of apps and revisions survives create → get and create → list, for every
/// rollout phase and with optional fields both set and unset.
pub async fn create_get_list_round_trip<S: AppStore + ?Sized>(store: &S) {
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
                kind: if i == 1 {
                    berth_core::RolloutKind::Recreate
                } else {
                    berth_core::RolloutKind::Rolling
                },
                max_surge: 2 + i,
                max_unavailable: 1,
                min_ready_ms: 2_500,
                progress_deadline_ms: 120_000 + u64::from(i),
                canary: (i == 0).then(|| berth_core::canary::Canary {
                    weight_percent: 15,
                    header: Some(berth_core::canary::CanaryHeader {
                        name: "x-canary".into(),
                        value: "yes".into(),
                    }),
                    duration_ms: 90_000,
                }),
            },
            dependencies: if i.is_multiple_of(2) {
                vec!["db".into(), format!("cache-{i}")]
            } else {
                Vec::new()
            },
            routes: AppRoutes {
                internal: i == 1,
                domains: if i.is_multiple_of(2) {
                    vec![
                        domain(&format!("{name}.example.com"), "/"),
                        domain(&format!("{name}.example.com"), "/api/v1"),
                    ]
                } else {
                    Vec::new()
                },
                https_redirect: i.is_multiple_of(2),
                tcp_ports: if i.is_multiple_of(2) {
                    vec![TcpPort {
                        container_port: 5432,
                        host_port: 30000 + i as u16,
                    }]
                } else {
                    Vec::new()
                },
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
                canary: (i == 0).then_some(berth_core::canary::CanaryProgress {
                    started_at: T0 + 15,
                    passed: false,
                }),
            },
            next_ordinal: (1 << 40) + u64::from(i),
            idle_timeout_secs: (i != 1).then_some(600 + i),
            idled: i.is_multiple_of(2).then_some(berth_core::idle::Idled {
                replicas: 2 + i,
                since: T0 + 50,
            }),
            autoscale: (i != 2).then_some(berth_core::autoscale::Autoscale {
                cpu_percent: 60 + i,
                ..berth_core::autoscale::Autoscale::new(1 + i, 10 + i)
            }),
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
pub async fn create_duplicate_is_conflict<S: AppStore + ?Sized>(store: &S) {
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
pub async fn create_with_foreign_revision_is_refused<S: AppStore + ?Sized>(store: &S) {
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
pub async fn update_app_checks_version<S: AppStore + ?Sized>(store: &S) {
    let name = unique_name("update");
    let original = create(store, &name).await;

    let mut changed = original.clone();
    changed.replicas = 5;
    changed.team = "other-team".into();
    changed.strategy.max_surge = 3;
    changed.dependencies = vec!["redis".into()];
    changed.idle_timeout_secs = Some(900);
    changed.autoscale = Some(berth_core::autoscale::Autoscale::new(2, 7));
    changed.idled = Some(berth_core::idle::Idled {
        replicas: 5,
        since: T0 + 90,
    });
    changed.stable_revision = Some(1);
    changed.rollout.phase = RolloutPhase::Complete;
    changed.rollout.available = 5;
    changed.rollout.finished_at = Some(T0 + 100);
    changed.rollout.canary = Some(berth_core::canary::CanaryProgress {
        started_at: T0 + 50,
        passed: true,
    });
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
pub async fn update_app_never_lowers_next_ordinal<S: AppStore + ?Sized>(store: &S) {
    let name = unique_name("update-ordinal");
    let mut app = create(store, &name).await;
    app.next_ordinal = 3;
    let app = store.update_app(&app).await.unwrap();

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
    assert_eq!(store.get_app(&name).await.unwrap().unwrap().next_ordinal, 7);
}

/// `add_revision` keeps the newest `keep` revisions plus the current and stable ones.
pub async fn add_revision_prunes_but_keeps_current_and_stable<S: AppStore + ?Sized>(store: &S) {
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
pub async fn add_revision_duplicate_is_conflict<S: AppStore + ?Sized>(store: &S) {
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
pub async fn add_revision_stale_or_unknown_app<S: AppStore + ?Sized>(store: &S) {
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
pub async fn list_revisions_newest_first<S: AppStore + ?Sized>(store: &S) {
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

/// `revision_images` answers the image of every kept revision, pruned ones gone, deleted
/// apps gone.
pub async fn revision_images_name_every_kept_revision<S: AppStore + ?Sized>(store: &S) {
    let kept = unique_name("images-kept");
    let gone = unique_name("images-gone");
    let mut app = create(store, &kept).await;
    for number in [2, 3] {
        app.latest_revision = number;
        app.current_revision = number;
        app = store
            .add_revision(&app, &revision(&kept, number), 2)
            .await
            .unwrap();
    }
    create(store, &gone).await;
    assert!(store.delete_app(&gone).await.unwrap());
    let images: Vec<RevisionImage> = store
        .revision_images()
        .await
        .unwrap()
        .into_iter()
        .filter(|i| i.app == kept || i.app == gone)
        .collect();
    let want: Vec<RevisionImage> = [2, 3]
        .into_iter()
        .map(|number| RevisionImage {
            app: kept.clone(),
            revision: number,
            image: revision(&kept, number).template.image,
        })
        .collect();
    assert_eq!(
        images, want,
        "revision 1 pruned (keep 2), the deleted app gone"
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
pub async fn events_round_trip_ascending<S: AppStore + ?Sized>(store: &S) {
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
pub async fn events_paging_after_id<S: AppStore + ?Sized>(store: &S) {
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
pub async fn events_latest_n<S: AppStore + ?Sized>(store: &S) {
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
pub async fn events_retention_per_app<S: AppStore + ?Sized>(store: &S) {
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
pub async fn delete_app_removes_everything<S: AppStore + ?Sized>(store: &S) {
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

const MIB: u64 = 1 << 20;

fn usage(cpu_millis: u64, memory_bytes: u64, instances: u64) -> Usage {
    Usage {
        cpu_millis,
        memory_bytes,
        instances,
        registry_bytes: 0,
        volume_bytes: 0,
    }
}

/// Creates `name` in `team` with `replicas` and a first revision limited to `resources`.
async fn create_in_team<S: AppStore + ?Sized>(
    store: &S,
    name: &str,
    team: &str,
    replicas: u32,
    resources: Resources,
) -> App {
    let mut app = new_app(name);
    app.team = team.to_string();
    app.replicas = replicas;
    let mut first = revision(name, 1);
    first.template.resources = resources;
    store.create_app(&app, &first).await.expect("create_app");
    app
}

fn limits(cpu_millis: Option<u64>, memory_bytes: Option<u64>) -> Resources {
    Resources {
        cpu_millis,
        memory_bytes,
    }
}

/// `team_usage` is what the team's apps reserve at their replicas and current revision, and
/// follows every write that changes them: create, scale, a new revision, a rollback, a move to
/// another team, delete. Other teams and `except_app` are left out; a refused write changes
/// nothing.
pub async fn team_usage_follows_every_write<S: AppStore + ?Sized>(store: &S) {
    let team = unique_name("usage-team");
    let other_team = unique_name("usage-other-team");
    let used = async |team: &str, except: Option<&str>| {
        store.team_usage(team, except).await.expect("team_usage")
    };
    assert_eq!(used(&team, None).await, Usage::default(), "no apps yet");

    let a = unique_name("usage-a");
    let b = unique_name("usage-b");
    let c = unique_name("usage-c");
    let app_a = create_in_team(store, &a, &team, 2, limits(Some(500), Some(256 * MIB))).await;
    assert_eq!(
        used(&team, None).await,
        usage(1_000, 512 * MIB, 2),
        "create"
    );
    let app_b = create_in_team(store, &b, &team, 3, limits(None, Some(64 * MIB))).await;
    assert_eq!(
        used(&team, None).await,
        usage(1_000, 704 * MIB, 5),
        "second app"
    );
    create_in_team(store, &c, &other_team, 4, limits(Some(100), None)).await;
    assert_eq!(
        used(&team, None).await,
        usage(1_000, 704 * MIB, 5),
        "other teams are not counted"
    );
    assert_eq!(used(&other_team, None).await, usage(400, 0, 4));

    // except_app leaves out the app a change is admitted for; an unknown name leaves none out.
    assert_eq!(used(&team, Some(&a)).await, usage(0, 192 * MIB, 3));
    assert_eq!(used(&team, Some(&b)).await, usage(1_000, 512 * MIB, 2));
    assert_eq!(used(&team, Some(&c)).await, usage(1_000, 704 * MIB, 5));

    // Scale (update_app with other replicas).
    let mut scaled = app_a.clone();
    scaled.replicas = 5;
    let app_a = store.update_app(&scaled).await.expect("scale");
    assert_eq!(
        used(&team, None).await,
        usage(2_500, 1_472 * MIB, 8),
        "scale"
    );

    // A refused (stale) write changes nothing.
    let mut stale = scaled.clone();
    stale.replicas = 50;
    assert_conflict(store.update_app(&stale).await, "stale scale");
    assert_eq!(used(&team, None).await, usage(2_500, 1_472 * MIB, 8));

    // A new current revision with other limits, scaled down in the same write.
    let mut deployed = app_a.clone();
    deployed.replicas = 4;
    deployed.current_revision = 2;
    deployed.latest_revision = 2;
    let mut second = revision(&a, 2);
    second.template.resources = limits(Some(1_000), Some(MIB));
    let app_a = store
        .add_revision(&deployed, &second, 10)
        .await
        .expect("deploy");
    assert_eq!(
        used(&team, None).await,
        usage(4_000, 196 * MIB, 7),
        "deploy"
    );

    // A revision that does not become current (e.g. refused rollout) reserves nothing.
    let mut pending = app_a.clone();
    pending.latest_revision = 3;
    let mut third = revision(&a, 3);
    third.template.resources = limits(Some(10_000), Some(1 << 30));
    let app_a = store
        .add_revision(&pending, &third, 10)
        .await
        .expect("add a revision that is not current");
    assert_eq!(used(&team, None).await, usage(4_000, 196 * MIB, 7));
    assert_conflict(
        store.add_revision(&pending, &revision(&a, 4), 10).await,
        "stale add_revision",
    );
    assert_eq!(used(&team, None).await, usage(4_000, 196 * MIB, 7));

    // A rollback (another current revision, written by update_app).
    let mut rolled_back = app_a.clone();
    rolled_back.current_revision = 1;
    let app_a = store.update_app(&rolled_back).await.expect("rollback");
    assert_eq!(
        used(&team, None).await,
        usage(2_000, 1_216 * MIB, 7),
        "rollback"
    );
    // Then forward to the revision added without becoming current.
    let mut forward = app_a.clone();
    forward.current_revision = 3;
    store.update_app(&forward).await.expect("roll forward");
    assert_eq!(
        used(&team, None).await,
        usage(40_000, 4_288 * MIB, 7),
        "a revision added earlier becomes current"
    );

    // Moving an app to another team moves what it reserves.
    let mut moved = app_b.clone();
    moved.team = other_team.clone();
    let app_b = store.update_app(&moved).await.expect("move team");
    assert_eq!(used(&team, None).await, usage(40_000, 4_096 * MIB, 4));
    assert_eq!(used(&other_team, None).await, usage(400, 192 * MIB, 7));

    // Scaling to zero reserves nothing, and deleting frees the rest.
    let mut zero = app_b.clone();
    zero.replicas = 0;
    store.update_app(&zero).await.expect("scale to zero");
    assert_eq!(used(&other_team, None).await, usage(400, 0, 4));
    assert!(store.delete_app(&a).await.expect("delete_app"));
    assert_eq!(used(&team, None).await, Usage::default(), "delete");
    assert!(store.delete_app(&c).await.expect("delete_app"));
    assert!(store.delete_app(&b).await.expect("delete_app"));
    assert_eq!(used(&other_team, None).await, Usage::default());
}

/// Each app counts exactly what [`berth_core::quota::app_usage`] says: an unlimited resource
/// (`None`) as 0, instances always; a current revision that does not exist counts as
/// unlimited.
pub async fn team_usage_counts_unlimited_as_zero<S: AppStore + ?Sized>(store: &S) {
    let team = unique_name("usage-unlimited");
    let cases = [
        (3, limits(None, None)),
        (2, limits(Some(250), None)),
        (4, limits(None, Some(32 * MIB))),
        (1, limits(Some(256_000), Some(1 << 40))),
        (0, limits(Some(500), Some(MIB))),
    ];
    let mut want = Usage::default();
    for (replicas, resources) in cases {
        let name = unique_name("usage-unlimited-app");
        create_in_team(store, &name, &team, replicas, resources.clone()).await;
        want = want + app_usage(replicas, &resources);
        assert_eq!(
            store.team_usage(&team, None).await.unwrap(),
            want,
            "after {replicas} × {resources:?}"
        );
    }
    // Pointing at a revision that does not exist: instances only, as for unlimited resources.
    let name = unique_name("usage-unlimited-missing");
    let app = create_in_team(store, &name, &team, 2, limits(Some(700), Some(MIB))).await;
    let mut missing = app.clone();
    missing.current_revision = 99;
    store.update_app(&missing).await.unwrap();
    assert_eq!(
        store.team_usage(&team, None).await.unwrap(),
        want + usage(0, 0, 2)
    );
}

/// `list_apps_page` lists by name after `after`, only the given teams, at most `limit`, and
/// says where the next page starts.
pub async fn list_apps_page_orders_filters_and_pages<S: AppStore + ?Sized>(store: &S) {
    let prefix = unique_name("page");
    let t1 = unique_name("page-t1");
    let t2 = unique_name("page-t2");
    let t3 = unique_name("page-t3");
    let name = |suffix: &str| format!("{prefix}-{suffix}");
    // Created out of order: the listing orders by name, not by creation.
    for (suffix, team) in [("d", &t1), ("b", &t2), ("e", &t2), ("a", &t1), ("c", &t3)] {
        create_in_team(store, &name(suffix), team, 1, Resources::default()).await;
    }
    let list = async |teams: Option<Vec<&String>>, after: Option<String>, limit: u32| {
        let page = AppPage {
            teams: teams.map(|teams| teams.into_iter().cloned().collect()),
            after,
            limit,
        };
        let listed = store.list_apps_page(&page).await.expect("list_apps_page");
        let names: Vec<String> = listed.apps.iter().map(|l| l.app.name.clone()).collect();
        (names, listed.next_after)
    };
    let names = |suffixes: &[&str]| -> Vec<String> { suffixes.iter().map(|s| name(s)).collect() };

    // (teams, after, limit) → (names, next_after)
    let cases = [
        (
            Some(vec![&t1, &t2]),
            None,
            2,
            names(&["a", "b"]),
            Some(name("b")),
        ),
        (
            Some(vec![&t1, &t2]),
            Some(name("b")),
            2,
            names(&["d", "e"]),
            None,
        ),
        (
            Some(vec![&t2, &t1]),
            None,
            10,
            names(&["a", "b", "d", "e"]),
            None,
        ),
        (
            Some(vec![&t1, &t2]),
            None,
            4,
            names(&["a", "b", "d", "e"]),
            None,
        ),
        (
            Some(vec![&t1, &t2]),
            None,
            3,
            names(&["a", "b", "d"]),
            Some(name("d")),
        ),
        (Some(vec![&t1]), None, 10, names(&["a", "d"]), None),
        (Some(vec![&t1]), Some(name("a")), 10, names(&["d"]), None),
        (Some(vec![&t3]), Some(name("c")), 10, vec![], None),
        (Some(vec![&t1, &t2]), Some(name("e")), 10, vec![], None),
        (Some(vec![]), None, 10, vec![], None),
        (Some(vec![&t1, &t2, &t3]), None, 0, vec![], None),
        (Some(vec![&t3, &t3]), None, 10, names(&["c"]), None),
        // Every team: the names after the prefix are ours (unique to this run); apps of other
        // checks may follow, so `next_after` is only checked when it must be set.
        (
            None,
            Some(prefix.clone()),
            5,
            names(&["a", "b", "c", "d", "e"]),
            None,
        ),
        (
            None,
            Some(prefix.clone()),
            2,
            names(&["a", "b"]),
            Some(name("b")),
        ),
        (None, Some(name("c")), 2, names(&["d", "e"]), None),
    ];
    for (teams, after, limit, want, want_next) in cases {
        let what = format!("teams {teams:?} after {after:?} limit {limit}");
        let every_team = teams.is_none();
        let (got, next) = list(teams, after, limit).await;
        assert_eq!(got, want, "{what}");
        if !every_team || want_next.is_some() {
            assert_eq!(next, want_next, "{what}: next_after");
        }
    }

    // Paging through every app: pages concatenate in strict name order and include ours.
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let (page, next) = list(None, after, 3).await;
        assert!(page.len() <= 3);
        all.extend(page);
        match next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert!(all.windows(2).all(|w| w[0] < w[1]), "strictly by name");
    for suffix in ["a", "b", "c", "d", "e"] {
        assert!(all.contains(&name(suffix)), "{suffix} is listed");
    }
}

/// Each listed app comes with its current revision's template (not the latest one), or `None`
/// when that revision does not exist; every app field is intact.
pub async fn list_apps_page_returns_current_templates<S: AppStore + ?Sized>(store: &S) {
    let team = unique_name("page-templates");
    let prefix = unique_name("page-templates");
    let first = create(store, &format!("{prefix}-1")).await;
    let mut first = first;
    first.team = team.clone();
    let first = store.update_app(&first).await.unwrap();

    // Current revision 2 of 3 (3 added but not current).
    let mut second = create(store, &format!("{prefix}-2")).await;
    second.team = team.clone();
    second.current_revision = 2;
    second.latest_revision = 2;
    let mut rev2 = revision(&second.name, 2);
    rev2.template.image = "registry.local/current:v2".into();
    let second = store.add_revision(&second, &rev2, 10).await.unwrap();
    let mut pending = second.clone();
    pending.latest_revision = 3;
    let second = store
        .add_revision(&pending, &revision(&second.name, 3), 10)
        .await
        .unwrap();

    // Current revision missing.
    let mut third = create(store, &format!("{prefix}-3")).await;
    third.team = team.clone();
    third.current_revision = 42;
    let third = store.update_app(&third).await.unwrap();

    let listed = store
        .list_apps_page(&AppPage {
            teams: Some(vec![team.clone()]),
            after: None,
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(
        listed,
        AppList {
            apps: vec![
                ListedApp {
                    template: Some(revision(&first.name, 1).template),
                    app: first,
                },
                ListedApp {
                    app: second,
                    template: Some(rev2.template),
                },
                ListedApp {
                    app: third,
                    template: None,
                },
            ],
            next_after: None,
        }
    );
}

fn domain(host: &str, path: &str) -> Domain {
    Domain {
        host: host.to_string(),
        path: path.to_string(),
    }
}

/// A (host, path) is one app's: creating or updating another app that claims it fails with
/// `Conflict` and changes nothing; the same host with another path is free; dropping a domain
/// or deleting the app frees it; `domain_owners` names the holder with its team.
pub async fn domains_belong_to_one_app<S: AppStore + ?Sized>(store: &S) {
    let host = format!("{}.example.com", unique_name("shop"));
    async fn owners_of<S: AppStore + ?Sized>(
        store: &S,
        host: &str,
    ) -> Vec<(String, String, String)> {
        store
            .domain_owners(&[host.to_string()])
            .await
            .expect("domain_owners")
            .into_iter()
            .map(|o| (o.path, o.app, o.team))
            .collect()
    }
    let owners = |store| owners_of(store, &host);
    let web_name = unique_name("domains-web");
    let mut web = new_app(&web_name);
    web.team = "sales".into();
    web.routes.domains = vec![domain(&host, "/")];
    store
        .create_app(&web, &revision(&web_name, 1))
        .await
        .expect("create web");
    assert_eq!(
        owners(store).await,
        [("/".to_string(), web_name.clone(), "sales".to_string())]
    );

    // Another app claiming it at create: refused, and not created.
    let api_name = unique_name("domains-api");
    let mut api = new_app(&api_name);
    api.routes.domains = vec![domain(&host, "/api"), domain(&host, "/")];
    let refused = store.create_app(&api, &revision(&api_name, 1)).await;
    assert!(
        matches!(refused, Err(StoreError::Conflict(_))),
        "{refused:?}"
    );
    assert!(store.get_app(&api_name).await.unwrap().is_none());

    // The same host under another path is free.
    api.routes.domains = vec![domain(&host, "/api")];
    store
        .create_app(&api, &revision(&api_name, 1))
        .await
        .expect("create api on a path");
    let api = store.get_app(&api_name).await.unwrap().unwrap();

    // Claiming it at update: refused, the stored app keeps its routes and version.
    let mut grab = api.clone();
    grab.routes.domains.push(domain(&host, "/"));
    let refused = store.update_app(&grab).await;
    assert!(
        matches!(refused, Err(StoreError::Conflict(_))),
        "{refused:?}"
    );
    assert_eq!(store.get_app(&api_name).await.unwrap().unwrap(), api);
    let refused = store.add_revision(&grab, &revision(&api_name, 2), 10).await;
    assert!(
        matches!(refused, Err(StoreError::Conflict(_))),
        "{refused:?}"
    );
    assert!(store.get_revision(&api_name, 2).await.unwrap().is_none());

    // Writes that leave the routes alone keep the claim (the controller's writes).
    let mut web = store.get_app(&web_name).await.unwrap().unwrap();
    web.replicas += 1;
    let web = store.update_app(&web).await.expect("update web");
    assert_eq!(owners(store).await.len(), 2);

    // Dropping the domain frees it for the other app.
    let mut dropped = web.clone();
    dropped.routes.domains.clear();
    store.update_app(&dropped).await.expect("drop the domain");
    let api = store
        .update_app(&grab)
        .await
        .expect("claim the freed domain");
    assert_eq!(
        owners(store).await,
        [
            ("/".to_string(), api_name.clone(), "default".to_string()),
            ("/api".to_string(), api_name.clone(), "default".to_string()),
        ]
    );

    // Deleting the app frees its domains.
    assert_eq!(api.routes.domains.len(), 2);
    assert!(store.delete_app(&api_name).await.unwrap());
    assert!(owners(store).await.is_empty());
    assert!(store.domain_owners(&[]).await.unwrap().is_empty());
    store.delete_app(&web_name).await.unwrap();
}

/// Reservations are put (replacing the domain's), listed by domain and deleted.
pub async fn domain_reservations_round_trip<S: AppStore + ?Sized>(store: &S) {
    let base = unique_name("reserved");
    let reservation = |domain: &str, team: &str| DomainReservation {
        domain: format!("{domain}.{base}.com"),
        team: team.to_string(),
        created_by: "admin".to_string(),
        created_at: 1_700_000_000_000,
    };
    async fn under<S: AppStore + ?Sized>(store: &S, base: &str) -> Vec<DomainReservation> {
        let suffix = format!("{base}.com");
        store
            .list_domain_reservations()
            .await
            .expect("list")
            .into_iter()
            .filter(|r| r.domain.ends_with(&suffix))
            .collect()
    }
    let ours = |store| under(store, &base);
    store
        .put_domain_reservation(&reservation("b", "eng"))
        .await
        .unwrap();
    store
        .put_domain_reservation(&reservation("a", "sales"))
        .await
        .unwrap();
    store
        .put_domain_reservation(&reservation("b", "ops"))
        .await
        .unwrap();
    assert_eq!(
        ours(store).await,
        [reservation("a", "sales"), reservation("b", "ops")]
    );
    assert!(
        store
            .delete_domain_reservation(&reservation("a", "x").domain)
            .await
            .unwrap()
    );
    assert!(
        !store
            .delete_domain_reservation(&reservation("a", "x").domain)
            .await
            .unwrap()
    );
    assert_eq!(ours(store).await, [reservation("b", "ops")]);
    store
        .delete_domain_reservation(&reservation("b", "x").domain)
        .await
        .unwrap();
}

/// Two stores on one database — two servers, or two handles on one SQLite file — each
/// updating one app optimistically (retrying on a conflict) and creating apps at once: no
/// update is lost, every app is there, and no write fails for being concurrent (no busy
/// errors, no serialisation failures).
pub async fn two_stores_on_one_database_lose_no_write(one: Arc<dyn Store>, two: Arc<dyn Store>) {
    let shared = unique_name("shared");
    let prefix = unique_name("crowd");
    one.create_app(&new_app(&shared), &revision(&shared, 1))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..40u32 {
        let store = if i.is_multiple_of(2) {
            one.clone()
        } else {
            two.clone()
        };
        let (shared, name) = (shared.clone(), format!("{prefix}-{i}"));
        tasks.push(tokio::spawn(async move {
            // An optimistic update of the shared app, retried on a concurrent write.
            loop {
                let mut app = store.get_app(&shared).await.unwrap().expect("shared");
                app.replicas += 1;
                match store.update_app(&app).await {
                    Ok(_) => break,
                    Err(StoreError::Conflict(_)) => continue,
                    Err(error) => panic!("update: {error}"),
                }
            }
            store
                .create_app(&new_app(&name), &revision(&name, 1))
                .await
                .expect("create");
            let events = [Event::new(&name, 1, EventKind::AppCreated, "created")];
            store.append_events(&events, 5).await.expect("append");
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let app = one.get_app(&shared).await.unwrap().expect("shared");
    assert_eq!(
        app.replicas,
        new_app(&shared).replicas + 40,
        "no update is lost"
    );
    let created = two
        .list_apps()
        .await
        .unwrap()
        .iter()
        .filter(|app| app.name.starts_with(&format!("{prefix}-")))
        .count();
    assert_eq!(created, 40);
}

/// Rows a newer (or broken) Berth wrote: an unknown rollout phase and an unknown event kind
/// come back as database errors naming the value, never as a default. `corrupt` runs SQL on
/// the database behind the store's back (as an operator's client would).
pub async fn unknown_phase_or_kind_is_an_error<S: AppStore + ?Sized>(
    store: &S,
    corrupt: impl AsyncFnOnce(&[&'static str]),
) {
    let (app, revision_one) = (new_app("web"), revision("web", 1));
    store.create_app(&app, &revision_one).await.unwrap();
    store
        .append_events(&[Event::new("web", 1, EventKind::Scaled, "x")], 10)
        .await
        .unwrap();
    corrupt(&[
        "UPDATE apps SET rollout_phase = 'paused' WHERE name = 'web'",
        "UPDATE events SET kind = 'teleported' WHERE app = 'web'",
    ])
    .await;
    match store.get_app("web").await {
        Err(StoreError::Database(message)) => assert!(message.contains("paused"), "{message}"),
        other => panic!("expected a database error, got {other:?}"),
    }
    assert!(matches!(
        store.list_apps().await,
        Err(StoreError::Database(_))
    ));
    let events = store
        .list_events(
            "web",
            EventQuery {
                after_id: None,
                limit: 10,
            },
        )
        .await;
    match events {
        Err(StoreError::Database(message)) => assert!(message.contains("teleported"), "{message}"),
        other => panic!("expected a database error, got {other:?}"),
    }
}
