//! End-to-end: two Berth servers of one installation on one PostgreSQL database and one shared
//! directory. Both serve the API; the one that holds the controllers' lease runs the
//! controllers. A change made through the follower is carried out by the leader; when the
//! leader is killed (`kill -9`) in the middle of a rollout, the follower takes over within
//! 10 s and finishes the rollout once; a leader stopped with SIGTERM hands over at once. Every
//! server's router routes apps' traffic: a load through the follower's router sees no failed
//! request while the leader rolls out and scales down. Builds queued through the follower run
//! once: a build the killed leader was running ends interrupted, the queued one runs on the
//! next leader. An image pushed through one server is seen through the other at once (the
//! registry's metadata is in the database; only blobs are files on the shared directory), and
//! an image named at the follower's address is the installation's: pulled by the leader's
//! engine with the one pull secret, refused to another team.
//! Requests through the follower's router are answered across the leader's death and the
//! follower's takeover, though instances are probed only every 10 s.
//! Skipped without `BERTH_TEST_POSTGRES` outside CI.

mod support;

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;
use support::git_repo::{build_log, build_now, put_pipeline, wait_build, wait_testing};
use support::load::{Load, Mix};
use support::{Server, containers_of, ready_instances, wait_until};

const ROLLOUT: Duration = Duration::from_secs(90);

/// How many times the server's log says it took the lead.
fn terms_led(server: &Server) -> usize {
    server.log().matches("this server leads").count()
}

/// The labels of a container.
fn labels(id: &str) -> serde_json::Value {
    let output = std::process::Command::new("docker")
        .args(["inspect", "--format", "{{json .Config.Labels}}", id])
        .output()
        .expect("docker inspect");
    serde_json::from_slice(&output.stdout).unwrap_or_default()
}

/// Two servers of one installation on a fresh database and shared directory (kept while the
/// returned directory lives): `a` leads, `b` follows. `None` without a database (outside CI).
async fn leader_and_follower(label: &str) -> Option<(Server, Server, tempfile::TempDir)> {
    let url = berth_store::conformance::postgres_database(label).await?;
    let shared = tempfile::tempdir().unwrap();
    let shared_dir = shared.path().display().to_string();
    let args = ["--store", &url, "--shared-dir", &shared_dir];
    let a = Server::start_with(label, &args).await;
    wait_until("a leads", Duration::from_secs(10), || async {
        terms_led(&a) == 1
    })
    .await;
    let mut b = Server::start_beside(label, &a, &args).await;
    // Any server's token works on every server of the installation.
    b.token = a.token.clone();
    wait_until("b follows", Duration::from_secs(10), || async {
        b.log().contains("another server leads")
    })
    .await;
    Some((a, b, shared))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_follower_takes_over_a_killed_leader_and_finishes_its_rollout_once() {
    let Some((mut a, mut b, _shared)) = leader_and_follower("leadership").await else {
        return;
    };
    assert_eq!(terms_led(&b), 0);
    // Each says its part (a load balancer in front of the API may send writes to the leader;
    // apps' traffic may go to any server's router).
    for (server, role, leaderz) in [(&a, "leader", 200), (&b, "follower", 503)] {
        let (status, ready) = server.call(Method::GET, "/readyz", None).await;
        assert_eq!(
            (status, ready["role"].as_str()),
            (200, Some(role)),
            "{ready}"
        );
        // Each compared its clock with the database's (one machine: they agree).
        let skew = ready["clock_skew_ms"].as_i64().expect("a skew measured");
        assert!(skew.abs() < 750, "{ready}");
        let (status, said) = server.call(Method::GET, "/leaderz", None).await;
        assert_eq!((status, said.as_str()), (leaderz, Some(role)));
    }
    let namespace = a.namespace.namespace().to_string();

    // Made through the follower, carried out by the leader.
    b.create_app("web", 2, json!({})).await;
    b.wait_rollout("web", ROLLOUT).await;
    // The leader probes the instances; the follower shows what it found.
    for server in [&a, &b] {
        let app = server.app("web").await;
        assert_eq!(ready_instances(&app).len(), 2, "{app:#}\n{}", a.log());
    }
    for id in containers_of(&namespace, "web") {
        assert_eq!(
            labels(&id)["berth.leader-epoch"],
            "1",
            "started in a's term"
        );
    }
    assert!(
        !b.log().contains("started instance"),
        "the follower starts nothing:\n{}",
        b.log()
    );

    // A rollout through the follower, and the leader killed while it runs.
    let (status, answer) = b
        .call(
            Method::POST,
            "/api/v1/apps/web/deploy",
            Some(json!({"env": {"COLOR": "green"}})),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    wait_until("the rollout begins", ROLLOUT, || async {
        a.log().contains("rolling out revision 2")
    })
    .await;
    // API load on the follower through the kill: every team whose creation got a 2xx must be
    // there afterwards.
    let writing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let writer = {
        let (url, token, writing) = (b.url.clone(), b.token.clone(), writing.clone());
        tokio::spawn(async move {
            let http = reqwest::Client::builder().no_proxy().build().unwrap();
            let mut created = Vec::new();
            let mut i = 0;
            while writing.load(std::sync::atomic::Ordering::Relaxed) {
                i += 1;
                let name = format!("load-{i}");
                let answer = http
                    .post(format!("{url}/api/v1/teams"))
                    .bearer_auth(&token)
                    .json(&json!({"name": name}))
                    .send()
                    .await;
                if answer.is_ok_and(|a| a.status().is_success()) {
                    created.push(name);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            created
        })
    };
    a.kill();
    let killed = Instant::now();
    wait_until("b leads", Duration::from_secs(15), || async {
        terms_led(&b) == 1
    })
    .await;
    let takeover = killed.elapsed();
    let (_, ready) = b.call(Method::GET, "/readyz", None).await;
    assert_eq!(ready["role"], "leader");
    assert_eq!(b.call(Method::GET, "/leaderz", None).await.0, 200);
    assert!(
        takeover < Duration::from_secs(10),
        "b led {takeover:?} after a was killed"
    );
    // The follower's API takes writes meanwhile.
    assert!(!b.register("ha-ada", Some("ha-team")).await.is_empty());
    tokio::time::sleep(Duration::from_secs(1)).await;
    writing.store(false, std::sync::atomic::Ordering::Relaxed);
    let created = writer.await.unwrap();
    assert!(
        created.len() > 20,
        "the follower took writes: {}",
        created.len()
    );
    let teams = b.get("/api/v1/teams").await;
    let kept: std::collections::BTreeSet<&str> = teams
        .as_array()
        .expect("teams")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    let lost: Vec<&String> = created
        .iter()
        .filter(|n| !kept.contains(n.as_str()))
        .collect();
    if let Some(first) = lost.first() {
        let (status, found) = b
            .call(Method::GET, &format!("/api/v1/teams/{first}"), None)
            .await;
        panic!(
            "acknowledged but lost: {lost:?}; {first} alone: {status} {found}\nb:\n{}",
            b.log()
        );
    }
    let app = b.wait_rollout("web", ROLLOUT).await;
    assert_eq!(app["current_revision"], 2, "{app:#}");
    wait_until("two ready instances of revision 2", ROLLOUT, || async {
        let app = b.app("web").await;
        let ready = ready_instances(&app);
        ready.len() == 2 && ready.iter().all(|i| i["revision"] == 2)
    })
    .await;
    // Done once: exactly two containers, both of revision 2 (the last old one goes after its
    // drain: the followers' grace), and one completion in the timeline.
    wait_until("the old instances are gone", ROLLOUT, || async {
        containers_of(&namespace, "web").len() <= 2
    })
    .await;
    let containers = containers_of(&namespace, "web");
    assert_eq!(containers.len(), 2, "{containers:?}");
    for id in &containers {
        assert_eq!(labels(id)["berth.revision"], "2");
    }
    let events = b.events("web").await;
    let completed = events
        .iter()
        .filter(|e| {
            e["kind"] == "rollout_complete"
                && e["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("revision 2"))
        })
        .count();
    assert_eq!(completed, 1, "{events:#?}");

    // a comes back as a follower; b steps down on SIGTERM and a leads at once.
    a.restart().await;
    wait_until("a follows", Duration::from_secs(10), || async {
        a.log().matches("another server leads").count() >= 1 && terms_led(&a) == 1
    })
    .await;
    b.stop();
    let stepped_down = Instant::now();
    wait_until("a leads again", Duration::from_secs(5), || async {
        terms_led(&a) == 2
    })
    .await;
    let handover = stepped_down.elapsed();
    assert!(
        handover < Duration::from_secs(2),
        "a led {handover:?} after b stopped"
    );
    assert!(
        b.log().contains("gave up the lead"),
        "b gave the lease up:\n{}",
        b.log()
    );
    // The instances stay, adopted by a.
    assert_eq!(containers_of(&namespace, "web"), containers);
    eprintln!("takeover after kill -9: {takeover:?}; hand-over after SIGTERM: {handover:?}");
}

/// The app's answer to `GET /` through `server`'s router: status and JSON body.
async fn through_router(server: &Server) -> (u16, serde_json::Value) {
    let answer = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("http://127.0.0.1:{}/", server.router_port))
        .header(reqwest::header::HOST, "web.default.localhost")
        .timeout(Duration::from_secs(10))
        .send()
        .await;
    match answer {
        Ok(answer) => (
            answer.status().as_u16(),
            answer.json().await.unwrap_or_default(),
        ),
        Err(_) => (0, serde_json::Value::Null),
    }
}

/// The leader `a` makes the app `web` of 2 instances (with `template`), and the follower
/// `b`'s router serves it.
async fn web_through_the_follower(a: &Server, b: &Server, template: serde_json::Value) {
    a.create_app("web", 2, template).await;
    a.wait_rollout("web", ROLLOUT).await;
    wait_until(
        "the follower's router serves the app",
        Duration::from_secs(10),
        || async { through_router(b).await.0 == 200 },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_followers_router_routes_and_fails_no_request_while_the_leader_changes_the_app() {
    let Some((a, b, _shared)) = leader_and_follower("sharing").await else {
        return;
    };

    // The follower runs no controller, yet its router sends the app's traffic to the
    // instances the leader found ready.
    web_through_the_follower(&a, &b, json!({})).await;
    let (_, answer) = through_router(&b).await;
    assert_eq!(answer["app"], "web", "{answer}");
    assert_eq!(terms_led(&b), 0);

    // A rolling upgrade and a scale-down by the leader, with a load through the follower's
    // router: each old instance leaves the follower's pool before it is stopped.
    let load = Load::start(&b, "web.default.localhost", 4, Mix::GetAndPost);
    tokio::time::sleep(Duration::from_millis(300)).await;
    a.post("/api/v1/apps/web/deploy", json!({"env": {"ROUND": "two"}}))
        .await;
    a.wait_rollout("web", ROLLOUT).await;
    a.post("/api/v1/apps/web/scale", json!({"replicas": 1}))
        .await;
    wait_until("one instance left", ROLLOUT, || async {
        containers_of(a.namespace.namespace(), "web").len() == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let logs = format!("leader:\n{}\nfollower:\n{}", a.log(), b.log());
    load.finish_without_failures("through the follower", 21, &logs)
        .await;
    let (status, answer) = through_router(&b).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["revision"], "2",
        "the new revision answers: {answer}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builds_queued_through_a_follower_run_once_across_a_killed_leader() {
    tokio::task::spawn_blocking(berth_testkit::shell_image)
        .await
        .unwrap();
    let Some((mut a, b, _shared)) = leader_and_follower("builds").await else {
        return;
    };
    let namespace = a.namespace.namespace().to_owned();
    let repo = tempfile::tempdir().unwrap();
    support::git_repo::init(repo.path());
    support::git_repo::commit(repo.path(), &namespace, "ok");
    let slow = json!(["/bin/sh", "-c", "echo sleeping; sleep 600"]);
    put_pipeline(&b, "slow", repo.path(), slow).await;
    put_pipeline(&b, "quick", repo.path(), json!(["/bin/sh", "/app/test.sh"])).await;

    // Queued through the follower, run by the leader one at a time.
    let running = build_now(&b, "slow").await;
    wait_testing(&b, running).await;
    let queued = build_now(&b, "quick").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        b.get(&format!("/api/v1/builds/{queued}")).await["status"],
        "queued"
    );
    a.kill();

    // The test run the dead leader started is still there, until the next leader ends the
    // build and removes it; then it runs the queued one once.
    let label = format!("label=berth.build={namespace}-build-{running}");
    let test_runs = || {
        let output = std::process::Command::new("docker")
            .args(["ps", "-aq", "--filter", &label])
            .output()
            .expect("docker ps");
        String::from_utf8_lossy(&output.stdout).lines().count()
    };
    let build = wait_build(&b, running).await;
    assert_eq!(build["status"], "interrupted", "{build:#}");
    wait_until(
        "the dead leader's test run is removed",
        Duration::from_secs(30),
        || async { test_runs() == 0 },
    )
    .await;
    assert!(
        b.log()
            .contains("removed what an interrupted build left running"),
        "{}",
        b.log()
    );
    let build = wait_build(&b, queued).await;
    assert_eq!(build["status"], "succeeded", "{build:#}\n{}", b.log());
    let log = build_log(&b, queued).await;
    assert_eq!(log.matches("all tests passed").count(), 1, "{log}");

    // The old leader comes back as a follower: nothing runs again.
    a.restart().await;
    wait_until("a follows", Duration::from_secs(10), || async {
        a.log().contains("another server leads")
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let builds = b.get("/api/v1/builds?team=default&pipeline=quick").await;
    let builds = builds.as_array().expect("builds");
    assert_eq!(builds.len(), 1, "{builds:#?}");
    assert_eq!(builds[0]["status"], "succeeded");
    let log = build_log(&b, queued).await;
    assert_eq!(log.matches("all tests passed").count(), 1, "{log}");
}

/// skopeo with `server`'s admin credential (after `args`) on `image`.
fn skopeo(server: &Server, args: &[&str], image: &str) -> std::process::Output {
    std::process::Command::new("skopeo")
        .args(args)
        .arg(format!("admin:{}", server.token))
        .arg(image)
        .output()
        .expect("run skopeo")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_named_at_the_follower_is_pulled_by_the_leaders_engine() {
    let Some((a, b, _shared)) = leader_and_follower("pull").await else {
        return;
    };
    // Pushed through the follower and named by its address: only the registry has it.
    let image = format!(
        "127.0.0.1:{}/default/{}-pulled:v1",
        b.port,
        a.namespace.namespace()
    );
    b.push_testapp(&image);
    // The leader knows the follower's address as its own registry's: another team may not
    // deploy the image (as through its own address) …
    let outsider = a.register("pull-outsider", Some("outsiders")).await;
    let (status, answer) = a
        .call_as(
            &outsider,
            Method::POST,
            "/api/v1/apps",
            Some(
                json!({"name": "stolen", "team": "outsiders", "image": image,
                        "cpu_millis": 100, "memory_bytes": 67108864}),
            ),
        )
        .await;
    // (as for an image at its own address: the repository is not one it may see)
    assert_eq!(status, 404, "{answer}");
    assert_eq!(answer["error"]["field"], "image", "{answer}");
    // … and its engine pulls it from the follower with the installation's pull secret.
    a.create_app("pulled", 1, json!({ "image": image })).await;
    let app = a
        .wait_app(
            "pulled",
            "a ready instance",
            Duration::from_secs(90),
            |app| ready_instances(app).len() == 1,
        )
        .await;
    assert_eq!(app["rollout"]["phase"], "complete", "{app:#}");
    let _ = std::process::Command::new("docker")
        .args(["rmi", "--force", &image])
        .output();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_pushed_through_one_server_is_seen_at_once_through_the_other() {
    let Some((a, b, shared)) = leader_and_follower("registry").await else {
        return;
    };
    let repository = format!("default/{}", a.namespace.namespace());
    let pushed = std::process::Command::new("skopeo")
        .args(["copy", "--quiet", "--dest-tls-verify=false", "--dest-creds"])
        .arg(format!("admin:{}", a.token))
        .arg(format!("docker-daemon:{}", berth_testkit::testapp_image()))
        .arg(format!("docker://127.0.0.1:{}/{repository}:v1", a.port))
        .output()
        .expect("run skopeo");
    assert!(pushed.status.success(), "{pushed:?}");

    // The follower's registry answers for the tag at once: the metadata is in the database.
    let tags = skopeo(
        &b,
        &["list-tags", "--tls-verify=false", "--creds"],
        &format!("docker://127.0.0.1:{}/{repository}", b.port),
    );
    assert!(tags.status.success(), "{tags:?}");
    let tags: serde_json::Value = serde_json::from_slice(&tags.stdout).unwrap();
    assert_eq!(tags["Tags"], json!(["v1"]), "{tags}");
    let inspected = skopeo(
        &b,
        &["inspect", "--tls-verify=false", "--creds"],
        &format!("docker://127.0.0.1:{}/{repository}:v1", b.port),
    );
    assert!(inspected.status.success(), "{inspected:?}");
    let listed = b.get("/api/v1/images").await;
    assert!(
        listed.to_string().contains(&repository),
        "the follower's API lists {repository}: {listed}"
    );
    // Nothing of it is a file on the shared directory but the blobs.
    let registry = shared.path().join("registry");
    let meta_files = walk(&registry.join("meta"));
    assert!(meta_files.is_empty(), "metadata files: {meta_files:?}");
    assert!(
        !walk(&registry.join("blobs")).is_empty(),
        "the blobs are shared files"
    );

    // A tag deleted through the follower is gone through the leader.
    let (status, answer) = b
        .call(
            Method::DELETE,
            &format!("/api/v1/images/{repository}:v1"),
            None,
        )
        .await;
    assert!(status < 300, "{status} {answer}");
    let tags = skopeo(
        &a,
        &["list-tags", "--tls-verify=false", "--creds"],
        &format!("docker://127.0.0.1:{}/{repository}", a.port),
    );
    let said =
        String::from_utf8_lossy(&tags.stdout).to_string() + &String::from_utf8_lossy(&tags.stderr);
    assert!(!said.contains("\"v1\""), "{said}");
}

/// Every file below `dir` (none when it does not exist).
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_leader_routes_to_the_running_instances_from_its_first_moment() {
    let Some((mut a, b, _shared)) = leader_and_follower("takeover-routes").await else {
        return;
    };
    // Readiness probed only every 10 s: a new leader that waited for its own probes would
    // route to nothing for seconds.
    web_through_the_follower(
        &a,
        &b,
        json!({"readiness": {"path": "/healthz", "period_ms": 10000}}),
    )
    .await;

    a.kill();
    let killed = Instant::now();
    let mut answers = Vec::new();
    let mut led_at = None;
    // Through the follower's router, from the kill until 3 s after it leads.
    while led_at.is_none_or(|at: Instant| at.elapsed() < Duration::from_secs(3)) {
        assert!(
            killed.elapsed() < Duration::from_secs(30),
            "b never led:\n{}",
            b.log()
        );
        if led_at.is_none() && terms_led(&b) == 1 {
            led_at = Some(Instant::now());
        }
        let (status, answer) = through_router(&b).await;
        answers.push((killed.elapsed(), status, answer["app"].clone()));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let failed: Vec<_> = answers
        .iter()
        .filter(|(_, status, _)| *status != 200)
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} requests through the new leader's router failed: {failed:?}\n{}",
        failed.len(),
        answers.len(),
        b.log()
    );
    let app = b.app("web").await;
    assert_eq!(ready_instances(&app).len(), 2, "{app:#}");
}
