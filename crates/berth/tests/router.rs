//! End-to-end: apps' traffic through the built-in router of the real binary — an app answers
//! at `<app>.<team>.<apps-domain>`, only ready instances get requests, unknown hosts and apps
//! without a ready instance get a clear page, a load running through the router sees no
//! failed request while Berth rolls out, rolls back (by hand, and by itself after a failing
//! revision) and scales the app down, and no GET fails when an instance is `docker kill`ed;
//! requests for an app bringing up its only instance wait for it (at most the hold timeout),
//! while a crash-looping app answers 503 at once.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use support::load::{Load, Mix};
use support::{Server, containers_of, docker, ready_instances, wait_until};

const HOST: &str = "web.default.localhost";

/// One request through the router: status and body.
async fn through_router(client: &reqwest::Client, server: &Server, host: &str) -> (u16, String) {
    let response = client
        .get(format!("http://127.0.0.1:{}/", server.router_port))
        .header(reqwest::header::HOST, host)
        .send()
        .await
        .unwrap_or_else(|e| panic!("router request: {e}\n{}", server.log()));
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

/// Runs `change` with a load through the router and checks that no request failed.
async fn no_request_fails<F, Fut>(server: &Server, what: &str, change: F)
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let load = Load::start(server, HOST, 4, Mix::GetAndPost);
    // Let the load run against the settled app first.
    tokio::time::sleep(Duration::from_millis(300)).await;
    change().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    load.finish_without_failures(what, 21, &server.log()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn apps_answer_through_the_router_and_no_request_fails_while_berth_changes_them() {
    let server = Server::start("router").await;
    let client = reqwest::Client::builder().no_proxy().build().unwrap();

    // Unknown hosts get a clear 404; an app without a ready instance a 503 saying why.
    let (status, body) = through_router(&client, &server, "nobody.default.localhost").await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("nobody.default.localhost"), "{body}");
    server.create_app("idle", 0, json!({})).await;
    wait_until("the idle app's route", Duration::from_secs(15), || async {
        through_router(&client, &server, "idle.default.localhost")
            .await
            .0
            == 503
    })
    .await;
    let (_, body) = through_router(&client, &server, "idle.default.localhost").await;
    assert!(body.contains("scaled to 0"), "{body}");

    // A ready app answers from its instances, in turn.
    server.create_app("web", 3, json!({})).await;
    server.wait_rollout("web", Duration::from_secs(90)).await;
    let mut instances = BTreeSet::new();
    for _ in 0..300 {
        let (status, body) = through_router(&client, &server, HOST).await;
        if status == 200 {
            let answer: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(answer["app"], "web", "{answer}");
            instances.insert(answer["instance"].as_str().unwrap().to_string());
        }
        if instances.len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        instances.len(),
        3,
        "every instance answers in turn: {instances:?}"
    );
    let (status, _) = through_router(&client, &server, "WEB.Default.LOCALHOST:80").await;
    assert_eq!(status, 200, "host names are matched without case and port");

    // Rolling upgrade, rollback, scale down: every old instance leaves the pool before it is
    // stopped, every new one joins only once ready.
    no_request_fails(&server, "a rolling upgrade", || async {
        server
            .post("/api/v1/apps/web/deploy", json!({"env": {"ROUND": "two"}}))
            .await;
        server.wait_rollout("web", Duration::from_secs(90)).await;
    })
    .await;
    no_request_fails(
        &server,
        "an automatic rollback of a failing revision",
        || async {
            // FAIL_HEALTH: the new revision's instances never pass their readiness check, so
            // they never join the pool; the rollout fails and rolls back by itself.
            server
                .post(
                    "/api/v1/apps/web/deploy",
                    json!({"env": {"FAIL_HEALTH": "1"},
                        "strategy": {"progress_deadline_ms": 6000}}),
                )
                .await;
            let app = server.wait_rollout("web", Duration::from_secs(90)).await;
            assert_eq!(app["rollout"]["phase"], "rolled_back", "{app:#}");
        },
    )
    .await;
    no_request_fails(&server, "a rollback", || async {
        server.post("/api/v1/apps/web/rollback", json!({})).await;
        server.wait_rollout("web", Duration::from_secs(90)).await;
    })
    .await;
    no_request_fails(&server, "a scale-down", || async {
        server
            .post("/api/v1/apps/web/scale", json!({"replicas": 1}))
            .await;
        wait_until("one instance left", Duration::from_secs(60), || async {
            server.app("web").await["instances"]
                .as_array()
                .is_some_and(|i| i.len() == 1)
        })
        .await;
    })
    .await;

    // Deleting the app takes its route away.
    let (status, _) = server.call(Method::DELETE, "/api/v1/apps/web", None).await;
    assert_eq!(status, 204);
    wait_until(
        "the deleted app's route to go",
        Duration::from_secs(15),
        || async { through_router(&client, &server, HOST).await.0 == 404 },
    )
    .await;
}

/// A `docker kill`ed instance (no stop, no draining: its process and sockets just die) under a
/// GET load through the router.
///
/// What is guaranteed, and what this test checks: a safe request (GET, HEAD, OPTIONS without a
/// body) to an app with more than one instance in its route, which fails on the killed
/// instance *before any byte of a response came back* — connection refused (the usual case
/// right after the kill: the container's network namespace still answers with a RST),
/// connection reset, or the connection closed before the response head (a request in flight
/// at the kill) — is sent once more, to another instance, and succeeds there. The controller
/// takes the dead instance out of the routing table when Docker reports its death (before
/// that, new requests may still pick it and are retried), then replaces it.
///
/// Not covered: a response whose head was already passed on when the instance died (its body
/// is cut short; the test app writes head and body in one `write`, so that window is empty
/// here, but a streaming app has one); requests that are not safe or carry a body (never
/// retried: 502); a retry whose second instance fails too (two instances dying at once: 502);
/// an app with one instance (nothing to retry on until it is replaced). If the dead
/// instance's address stops answering at all (no RST) before it leaves the table, a request
/// waits for the connect timeout (5 s) before its retry: slower, not failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_get_fails_when_an_instance_is_killed() {
    let server = Server::start("router-kill").await;
    server.create_app("web", 3, json!({})).await;
    let app = server.wait_rollout("web", Duration::from_secs(90)).await;
    assert_eq!(ready_instances(&app).len(), 3, "{app:#}");
    let victim = ready_instances(&app)[1].clone();
    let (victim_name, container) = (
        victim["name"].as_str().unwrap().to_string(),
        victim["container_id"].as_str().unwrap().to_string(),
    );
    let namespace = server.namespace.namespace().to_string();
    assert!(
        containers_of(&namespace, "web")
            .iter()
            .any(|id| id.starts_with(&container) || container.starts_with(id.as_str())),
        "{container} is one of the app's containers"
    );

    let load = Load::start(&server, HOST, 8, Mix::GetOnly);
    tokio::time::sleep(Duration::from_millis(500)).await;
    docker(&["kill", &container]);
    server
        .wait_app("web", "3 ready again", Duration::from_secs(60), |a| {
            let ready = ready_instances(a);
            ready.len() == 3 && ready.iter().all(|i| i["name"] != victim_name.as_str())
        })
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (done, failures) = load.finish().await;
    assert!(done > 100, "only {done} requests ran");
    // The kill happened under load: requests met the dead instance and were retried.
    let log = server.log();
    assert!(
        log.contains("backend request failed"),
        "no request met the killed instance (was it under load?)\n{log}"
    );
    assert!(
        failures.is_empty(),
        "{} of {done} GETs failed: {:?}\n{}",
        failures.len(),
        &failures[..failures.len().min(10)],
        server.log()
    );
    let events = server.events("web").await;
    assert!(
        events.iter().any(|e| e["kind"] == "instance_crashed"),
        "the death was noticed: {events:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn requests_wait_while_an_app_brings_up_its_only_instance() {
    let server = Server::start("router-hold").await;
    let client = reqwest::Client::builder().no_proxy().build().unwrap();

    // A starting app: its route exists before its instance is ready, and the first request
    // waits for the instance instead of getting a 503.
    server
        .create_app("slow", 1, json!({"env": {"STARTUP_DELAY_MS": "3000"}}))
        .await;
    let host = "slow.default.localhost";
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let (status, body) = loop {
        let app = server.app("slow").await;
        assert!(ready_instances(&app).is_empty(), "not ready yet: {app:#}");
        let (status, body) = through_router(&client, &server, host).await;
        // 404 until the router's table has the new app (within a second).
        if status != 404 || std::time::Instant::now() > deadline {
            break (status, body);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status, 200, "the request was held, not failed: {body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["app"], "slow", "{answer}");
    let app = server.app("slow").await;
    assert_eq!(app["traffic"]["held_total"], 1, "{:#}", app["traffic"]);
    assert_eq!(app["traffic"]["held"], 0, "{:#}", app["traffic"]);

    // A single-instance app replaced in place (no surge): for a moment no instance is ready,
    // and a load through the router sees no failed request.
    server
        .create_app(
            "web",
            1,
            json!({"strategy": {"max_surge": 0, "max_unavailable": 1}}),
        )
        .await;
    server.wait_rollout("web", Duration::from_secs(90)).await;
    no_request_fails(
        &server,
        "a recreate rollout of a single instance",
        || async {
            server
                .post(
                    "/api/v1/apps/web/deploy",
                    json!({"env": {"STARTUP_DELAY_MS": "1500"}}),
                )
                .await;
            server.wait_rollout("web", Duration::from_secs(90)).await;
        },
    )
    .await;
    let app = server.app("web").await;
    assert!(
        app["traffic"]["held_total"].as_u64() > Some(0),
        "requests met the moment without a ready instance and were held: {:#}",
        app["traffic"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_held_request_gets_503_naming_the_app_state_after_the_hold_timeout() {
    let server = Server::start_with("router-hold-timeout", &["--router-hold-timeout", "2s"]).await;
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    server
        .create_app("stuck", 1, json!({"env": {"STARTUP_DELAY_MS": "120000"}}))
        .await;
    let host = "stuck.default.localhost";
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = through_router(&client, &server, host).await;
        if status == 503 {
            assert!(
                body.contains(
                    "app stuck is rolling out revision 1: no instance is ready yet \
                     (no instance became ready within 2 s)"
                ),
                "{body}"
            );
            break;
        }
        assert_eq!(status, 404, "{body}");
        assert!(std::time::Instant::now() < deadline, "never routed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_crash_looping_app_answers_503_at_once_instead_of_holding() {
    // A hold timeout far beyond the test's patience: a request that was held to its end
    // would fail the test by its duration, not by a flaky clock.
    let server = Server::start_with("router-crash-loop", &["--router-hold-timeout", "10m"]).await;
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    // It crashes 200 ms after each start, long before it would listen.
    server
        .create_app(
            "crashy",
            1,
            json!({"env": {"STARTUP_DELAY_MS": "60000", "CRASH_AFTER_MS": "200"}}),
        )
        .await;
    wait_until("a crash-loop back-off", Duration::from_secs(60), || async {
        server
            .events("crashy")
            .await
            .iter()
            .any(|e| e["kind"] == "crash_loop_back_off")
    })
    .await;
    for _ in 0..3 {
        let (status, body) = through_router(&client, &server, "crashy.default.localhost").await;
        assert_eq!(status, 503, "{body}");
        assert!(!body.contains("no instance became ready"), "{body}");
    }
}
