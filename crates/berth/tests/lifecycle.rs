//! End-to-end: the real `berth` binary deploys, upgrades, rolls back and scales apps on the
//! real Docker Engine, and every instance really answers.

mod support;

use std::time::Duration;

use serde_json::json;
use support::{Server, hit, ready_instances};

const ROLLOUT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_serve_scale_up_and_down() {
    let server = Server::start("scale").await;
    let created = server
        .create_app("web", 3, json!({"env": {"GREETING": "hello"}}))
        .await;
    assert_eq!(created["current_revision"], 1);
    let app = server.wait_rollout("web", ROLLOUT).await;
    assert_eq!(app["rollout"]["phase"], "complete");
    let ready = ready_instances(&app);
    assert_eq!(ready.len(), 3, "{app:#}");
    for instance in &ready {
        let answer = hit(instance);
        assert_eq!(answer["revision"], "1");
        assert_eq!(answer["app"], "web");
        assert_eq!(answer["instance"], instance["name"]);
        assert_eq!(instance["node"].as_str().map(|n| !n.is_empty()), Some(true));
    }

    server
        .post("/api/v1/apps/web/scale", json!({"replicas": 5}))
        .await;
    let app = server
        .wait_app("web", "5 ready", ROLLOUT, |a| ready_instances(a).len() == 5)
        .await;
    assert_eq!(app["current_revision"], 1, "scaling makes no revision");
    let revisions = server.get("/api/v1/apps/web/revisions").await;
    assert_eq!(revisions.as_array().unwrap().len(), 1);

    // Scale down removes the newest instances first.
    server
        .post("/api/v1/apps/web/scale", json!({"replicas": 2}))
        .await;
    let app = server
        .wait_app("web", "2 instances", ROLLOUT, |a| {
            a["instances"].as_array().is_some_and(|i| i.len() == 2)
        })
        .await;
    let mut names: Vec<String> = app["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    assert_eq!(names, vec!["web-1", "web-2"]);
    let kinds: Vec<String> = server
        .events("web")
        .await
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect();
    for kind in [
        "app_created",
        "revision_created",
        "rollout_started",
        "instance_started",
        "instance_ready",
        "rollout_complete",
        "scaled",
        "instance_stopped",
    ] {
        assert!(
            kinds.iter().any(|k| k == kind),
            "no {kind} event in {kinds:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_upgrade_never_drops_below_replicas_and_failed_revision_rolls_back() {
    let server = Server::start("rolling").await;
    server
        .create_app(
            "web",
            3,
            json!({"strategy": {"progress_deadline_ms": 8000}}),
        )
        .await;
    server.wait_rollout("web", ROLLOUT).await;

    // Revision 2: an env change. Watch availability the whole way through.
    server
        .post("/api/v1/apps/web/deploy", json!({"env": {"COLOR": "blue"}}))
        .await;
    let (app, lowest) = server.watch_rollout("web", Duration::from_millis(50)).await;
    assert_eq!(app["rollout"]["phase"], "complete", "{app:#}");
    assert!(
        lowest >= 3,
        "only {lowest} ready instances during the rolling upgrade"
    );
    assert_eq!(app["current_revision"], 2);
    let ready = ready_instances(&app);
    assert_eq!(ready.len(), 3);
    for instance in &ready {
        assert_eq!(instance["revision"], 2);
        assert_eq!(hit(instance)["revision"], "2");
    }

    // Revision 3 fails its health check: the rollout fails and rolls back to 2 by itself,
    // while revision 2 keeps serving on 3 instances.
    server
        .post(
            "/api/v1/apps/web/deploy",
            json!({"env": {"FAIL_HEALTH": "1"}}),
        )
        .await;
    let mut lowest = usize::MAX;
    let app = loop {
        let app = server.app("web").await;
        let ready = ready_instances(&app);
        lowest = lowest.min(ready.iter().filter(|i| i["revision"] == 2).count());
        if app["rollout"]["done"] == json!(true) {
            break app;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        lowest >= 3,
        "revision 2 dropped to {lowest} ready instances during the failed rollout"
    );
    assert_eq!(app["rollout"]["phase"], "rolled_back", "{app:#}");
    assert_eq!(app["rollout"]["failed_revision"], 3);
    assert_eq!(app["current_revision"], 2);
    let message = app["rollout"]["message"].as_str().unwrap();
    assert!(
        message.contains("revision 3 not ready within 8 s"),
        "{message}"
    );
    assert!(message.contains("HTTP 500"), "{message}");
    let events = server.events("web").await;
    assert!(events.iter().any(|e| e["kind"] == "rollout_failed"));
    assert!(events.iter().any(|e| e["kind"] == "rolled_back"));

    // The CLI reports the failed rollout with a non-zero exit.
    let output = server.cli(&["rollout", "status", "web"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).contains("rolled_back"));

    // Manual rollback to revision 1, performed as a rollout.
    let output = server.cli(&["rollback", "web", "--to", "1", "--wait"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let app = server.app("web").await;
    assert_eq!(app["current_revision"], 1);
    assert_eq!(app["rollout"]["phase"], "complete");
    for instance in ready_instances(&app) {
        assert_eq!(hit(&instance)["revision"], "1");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_image_fails_the_rollout_and_keeps_the_previous_revision() {
    let server = Server::start("noimage").await;
    server.create_app("web", 2, json!({})).await;
    server.wait_rollout("web", ROLLOUT).await;
    server
        .post(
            "/api/v1/apps/web/deploy",
            json!({"image": "berth-no-such-image:nope"}),
        )
        .await;
    let app = server.wait_rollout("web", ROLLOUT).await;
    assert_eq!(app["rollout"]["phase"], "rolled_back", "{app:#}");
    assert!(
        app["rollout"]["message"]
            .as_str()
            .unwrap()
            .contains("berth-no-such-image:nope"),
        "{app:#}"
    );
    assert_eq!(app["current_revision"], 1);
    let ready = ready_instances(&app);
    assert_eq!(ready.len(), 2);
    for instance in &ready {
        assert_eq!(hit(instance)["revision"], "1");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recreate_rollout_never_runs_two_revisions_at_once() {
    let server = Server::start("recreate").await;
    let created = server.cli(&[
        "apps",
        "create",
        "db",
        "--image",
        berth_testkit::TESTAPP_IMAGE,
        "--replicas",
        "2",
        "--strategy",
        "recreate",
    ]);
    assert!(created.status.success(), "{created:?}");
    server.wait_rollout("db", ROLLOUT).await;
    let shown = server.cli(&["apps", "show", "db"]);
    let shown = String::from_utf8_lossy(&shown.stdout).to_string();
    assert!(shown.contains("strategy:   recreate"), "{shown}");
    assert_eq!(server.app("db").await["strategy"]["kind"], "recreate");

    // Revision 2: watch every instance of both revisions the whole way through.
    server
        .post("/api/v1/apps/db/deploy", json!({"env": {"COLOR": "blue"}}))
        .await;
    let mut saw_old_stopping = false;
    let app = loop {
        let app = server.app("db").await;
        let instances = app["instances"].as_array().cloned().unwrap_or_default();
        let present = |revision: u64| {
            instances
                .iter()
                .any(|i| i["revision"] == revision && i["phase"] != "exited")
        };
        assert!(
            !(present(1) && present(2)),
            "revisions 1 and 2 run at once: {app:#}"
        );
        saw_old_stopping |= present(1) && app["current_revision"] == 2;
        if app["rollout"]["done"] == json!(true) {
            break app;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(saw_old_stopping, "the old revision was never seen stopping");
    assert_eq!(app["rollout"]["phase"], "complete", "{app:#}");
    let ready = ready_instances(&app);
    assert_eq!(ready.len(), 2, "{app:#}");
    for instance in &ready {
        assert_eq!(hit(instance)["revision"], "2");
    }
    // The rollout's event says what it costs.
    let events = server.get("/api/v1/apps/db/events").await;
    assert!(
        events
            .to_string()
            .contains("the app is unavailable until revision 2 is ready"),
        "{events:#}"
    );
    // A canary cannot go with it: 400 naming the field, and nothing changes.
    let (status, answer) = server
        .call(
            reqwest::Method::POST,
            "/api/v1/apps/db/deploy",
            Some(json!({"env": {"COLOR": "red"}, "strategy": {"canary": {"weight_percent": 10, "duration_seconds": 60}}})),
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"]["field"], "strategy.canary", "{answer}");
    assert_eq!(server.app("db").await["current_revision"], 2);
}
