//! End-to-end: health probing, self-healing, crash-loop backoff and adoption after a restart.

mod support;

use std::time::Duration;

use serde_json::json;
use support::{Server, containers_of, docker, ready_instances};

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_instance_is_replaced_and_a_restarted_server_adopts_instances() {
    let mut server = Server::start("heal").await;
    server.create_app("web", 3, json!({})).await;
    server.wait_rollout("web", WAIT).await;
    let namespace = server.namespace.namespace().to_string();

    docker(&["kill", &format!("{namespace}-web-2")]);
    let app = server
        .wait_app("web", "a replacement for web-2", WAIT, |a| {
            let ready = ready_instances(a);
            ready.len() == 3 && ready.iter().all(|i| i["name"] != "web-2")
        })
        .await;
    assert!(
        app["instances"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["name"] != "web-2"),
        "{app:#}"
    );
    let events = server.events("web").await;
    assert!(events.iter().any(
        |e| e["kind"] == "instance_crashed" && e["message"].as_str().unwrap().contains("web-2")
    ));
    assert!(events.iter().any(|e| e["kind"] == "instance_replaced"
        && e["message"].as_str().unwrap().contains("replacing web-2")));

    // Restart the server: the running containers are adopted, none restarted or duplicated.
    let before = containers_of(&namespace, "web");
    assert_eq!(before.len(), 3);
    server.restart().await;
    server
        .wait_app("web", "3 ready after restart", WAIT, |a| {
            ready_instances(a).len() == 3
        })
        .await;
    // Let a few resyncs pass (every 2 s here).
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        containers_of(&namespace, "web"),
        before,
        "containers changed across a server restart"
    );
    let app = server.app("web").await;
    assert_eq!(ready_instances(&app).len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_liveness_gets_the_instance_replaced() {
    let server = Server::start("liveness").await;
    let probe = json!({"path": "/healthz", "period_ms": 300, "failure_threshold": 2});
    server
        .create_app(
            "web",
            2,
            json!({"health_path": null, "readiness": probe, "liveness": probe}),
        )
        .await;
    let app = server.wait_rollout("web", WAIT).await;
    let victim = ready_instances(&app)[0].clone();
    let name = victim["name"].as_str().unwrap().to_string();
    let address = victim["address"].as_str().unwrap();
    let (status, _) = berth_testkit::http_get(
        &format!("http://{address}/admin/fail-health"),
        Duration::from_secs(2),
    )
    .unwrap();
    assert_eq!(status, 200);

    let app = server
        .wait_app("web", "the failing instance replaced", WAIT, |a| {
            let ready = ready_instances(a);
            ready.len() == 2
                && a["instances"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|i| i["name"] != name.as_str())
        })
        .await;
    assert_eq!(app["current_revision"], 1);
    let events = server.events("web").await;
    let unhealthy = events
        .iter()
        .find(|e| e["kind"] == "instance_unhealthy")
        .expect("an instance_unhealthy event");
    assert!(
        unhealthy["message"]
            .as_str()
            .unwrap()
            .contains(&format!("instance {name} failed liveness 2 times")),
        "{unhealthy}"
    );
    assert!(
        events
            .iter()
            .any(|e| e["kind"] == "instance_stopped" && e["instance"] == name.as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_loops_back_off_and_show_it() {
    let server = Server::start("crashloop").await;
    server
        .create_app(
            "crashy",
            1,
            json!({"health_path": null, "no_health_check": true, "env": {"EXIT_IMMEDIATELY": "3"}}),
        )
        .await;
    let app = server
        .wait_app("crashy", "a crash-loop backoff", WAIT, |a| {
            a["instances"].as_array().is_some_and(|i| {
                i.iter()
                    .any(|i| i["backoff_until"].is_string() && i["restarts"].as_u64() >= Some(2))
            })
        })
        .await;
    let instance = &app["instances"][0];
    assert_eq!(instance["phase"], "exited");
    assert_eq!(instance["exit_code"], 3);
    let events = server.events("crashy").await;
    let backoff = events
        .iter()
        .find(|e| e["kind"] == "crash_loop_back_off")
        .expect("a crash_loop_back_off event");
    assert!(
        backoff["message"].as_str().unwrap().contains("crashed"),
        "{backoff}"
    );
    // Each backoff is reported once, not at every reconcile.
    let backoffs: Vec<&str> = events
        .iter()
        .filter(|e| e["kind"] == "crash_loop_back_off")
        .map(|e| e["instance"].as_str().unwrap())
        .collect();
    let mut unique = backoffs.clone();
    unique.dedup();
    assert_eq!(backoffs, unique, "a backoff was reported twice");
    // The instance is never left for dead: attempts keep coming, further and further apart.
    let crashes = events
        .iter()
        .filter(|e| e["kind"] == "instance_crashed")
        .count();
    assert!(crashes >= 2, "{crashes} crashes recorded");
}

/// A start cut off between create and start (the server died, or lost the lead) leaves a
/// container that was made but never started: the next server counts it as exited, replaces
/// it and removes it, instead of waiting for it to start forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_made_but_never_started_by_a_previous_server_is_replaced() {
    let mut server = Server::start("cutoff").await;
    server.create_app("web", 3, json!({})).await;
    server.wait_rollout("web", WAIT).await;
    let namespace = server.namespace.namespace().to_string();
    server.stop();
    // What a server killed while replacing web-2 leaves: web-2 gone, and its replacement
    // web-9 made but not started.
    docker(&["rm", "-f", &format!("{namespace}-web-2")]);
    let leftover = format!("{namespace}-web-9");
    docker(&[
        "create",
        "--name",
        &leftover,
        "--label",
        &format!("berth.namespace={namespace}"),
        "--label",
        "berth.app=web",
        "--label",
        "berth.revision=1",
        "--label",
        "berth.instance=web-9",
        "--label",
        "berth.ordinal=9",
        &berth_testkit::testapp_image(),
    ]);
    server.restart().await;
    server
        .wait_app("web", "the leftover gone, 3 ready", WAIT, |a| {
            let instances = a["instances"].as_array().cloned().unwrap_or_default();
            ready_instances(a).len() == 3 && instances.iter().all(|i| i["name"] != "web-9")
        })
        .await;
    support::wait_until("the leftover container removed", WAIT, || async {
        containers_of(&namespace, "web").len() == 3
    })
    .await;
}
