//! The pipelines-area suite ([`PipelineStore`]), with the accounts area for teams.

use super::*;

/// Runs every pipelines-area check against `store`.
pub async fn run<S: AccountStore + PipelineStore + ?Sized>(store: Arc<S>) {
    let s = &*store;
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

/// Creates a team with one pipeline per check name in `pipelines`.
async fn team_with_pipelines<S: AccountStore + PipelineStore + ?Sized>(
    store: &S,
    check: &str,
    pipelines: &[&str],
) -> Vec<Pipeline> {
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

pub async fn pipelines_round_trip<S: AccountStore + PipelineStore + ?Sized>(store: &S) {
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

pub async fn builds_are_numbered_per_pipeline<S: AccountStore + PipelineStore + ?Sized>(store: &S) {
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

pub async fn create_build_numbers_concurrently<S: AccountStore + PipelineStore + ?Sized>(
    store: Arc<S>,
) {
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

pub async fn update_build_round_trip_and_final_status<S: AccountStore + PipelineStore + ?Sized>(
    store: &S,
) {
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

pub async fn list_builds_filters_and_pages<S: AccountStore + PipelineStore + ?Sized>(store: &S) {
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
pub async fn interrupt_started_builds_leaves_queued_and_ended_ones<
    S: AccountStore + PipelineStore + ?Sized,
>(
    store: &S,
) {
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
    let interrupted = store.interrupt_started_builds(now, reason).await.unwrap();
    assert!(
        interrupted.contains(&building.id),
        "the building build: {interrupted:?}"
    );
    for other in [&queued, &succeeded, &failed, &cancelled] {
        assert!(!interrupted.contains(&other.id), "{interrupted:?}");
    }

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
    let again = store
        .interrupt_started_builds(now + 1, "again")
        .await
        .unwrap();
    assert!(!again.contains(&building.id), "{again:?}");
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

pub async fn prune_builds_keeps_newest_and_unfinished<S: AccountStore + PipelineStore + ?Sized>(
    store: &S,
) {
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
async fn builds_of<S: PipelineStore + ?Sized>(store: &S, pipeline: &Pipeline) -> Vec<Build> {
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

pub async fn webhook_deliveries_build_once<S: AccountStore + PipelineStore + ?Sized>(
    store: Arc<S>,
) {
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
pub async fn webhook_commits_build_once<S: AccountStore + PipelineStore + ?Sized>(store: Arc<S>) {
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

pub async fn delete_pipeline_removes_builds_and_deliveries<
    S: AccountStore + PipelineStore + ?Sized,
>(
    store: &S,
) {
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

pub async fn delete_team_removes_its_pipelines<S: AccountStore + PipelineStore + ?Sized>(
    store: &S,
) {
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
