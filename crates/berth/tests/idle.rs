//! End-to-end: scale to zero when idle, on the real engine — an app with an idle timeout goes to
//! 0 instances after receiving no request for that long (with the event saying why), the next
//! requests through the router wake it and are held until it answers, an explicit scale ends
//! the idle state, and a bad idle timeout is refused naming the field.

mod support;

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use support::{Server, assert_refused, containers_of};

const HOST: &str = "web.default.localhost";

async fn get(client: &reqwest::Client, server: &Server) -> (u16, String) {
    let response = client
        .get(format!("http://127.0.0.1:{}/", server.router_port))
        .header(reqwest::header::HOST, HOST)
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .unwrap_or_else(|e| panic!("router request: {e}\n{}", server.log()));
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

async fn wait_idle(server: &Server) -> Value {
    server
        .wait_app(
            "web",
            "scaled to 0 when idle",
            Duration::from_secs(60),
            |a| a["replicas"] == 0 && a["idle"]["replicas"] == 2,
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_idle_app_scales_to_zero_and_the_next_request_wakes_it() {
    let server = Server::start("idle").await;
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let namespace = server.namespace.namespace().to_string();

    // A bad idle timeout is refused, naming the field; nothing is created.
    for bad in [5, 31 * 24 * 3600] {
        let (status, answer) = server
            .call(
                Method::POST,
                "/api/v1/apps",
                Some(json!({"name": "web", "image": berth_testkit::TESTAPP_IMAGE,
                    "idle_timeout_seconds": bad})),
            )
            .await;
        assert_refused(status, &answer, 400, "idle_timeout_seconds");
    }
    assert_eq!(
        server.call(Method::GET, "/api/v1/apps/web", None).await.0,
        404
    );

    server
        .create_app("web", 2, json!({"idle_timeout_seconds": 10}))
        .await;
    let app = server.wait_rollout("web", Duration::from_secs(90)).await;
    assert_eq!(app["idle_timeout_seconds"], 10, "{app:#}");
    assert_eq!(get(&client, &server).await.0, 200);

    // No request for 10 s: scaled to 0, its instances stopped, the event says why.
    let app = wait_idle(&server).await;
    assert!(app["idle"]["since"].is_string(), "{app:#}");
    server
        .wait_app("web", "no instance left", Duration::from_secs(60), |a| {
            a["instances"].as_array().is_some_and(Vec::is_empty)
        })
        .await;
    assert!(containers_of(&namespace, "web").is_empty());
    let events = server.events("web").await;
    assert!(
        events.iter().any(|e| e["kind"] == "idled_out"
            && e["message"] == "idle for 10s: scaled to 0; the next request starts it"),
        "{events:#?}"
    );
    let shown = server.cli(&["apps", "show", "web"]);
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.contains("idle: scaled to 0 when idle"), "{shown}");

    // Requests at once: the first wakes the app, all are held until it answers.
    let port = server.router_port;
    let requests: Vec<_> = (0..6)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                let response = client
                    .get(format!("http://127.0.0.1:{port}/"))
                    .header(reqwest::header::HOST, HOST)
                    .timeout(Duration::from_secs(60))
                    .send()
                    .await
                    .expect("an answer");
                let status = response.status().as_u16();
                (status, response.text().await.unwrap_or_default())
            })
        })
        .collect();
    for request in requests {
        let (status, body) = request.await.unwrap();
        assert_eq!(status, 200, "held, not failed: {body}\n{}", server.log());
    }
    assert!(!containers_of(&namespace, "web").is_empty(), "0 → running");
    let app = server.app("web").await;
    assert_eq!(app["replicas"], 2, "{app:#}");
    assert!(app["idle"].is_null(), "{app:#}");
    assert!(
        app["traffic"]["held_total"].as_u64() >= Some(6),
        "the requests were held: {:#}",
        app["traffic"]
    );
    let events = server.events("web").await;
    assert!(events.iter().any(|e| e["kind"] == "woken"), "{events:#?}");

    // Idle again; an explicit scale ends the idle state and sets the count.
    wait_idle(&server).await;
    let (status, answer) = server
        .call(
            Method::POST,
            "/api/v1/apps/web/scale",
            Some(json!({"replicas": 1})),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let app = server.app("web").await;
    assert_eq!(
        (app["replicas"].as_u64(), app["idle"].is_null()),
        (Some(1), true),
        "{app:#}"
    );
    server.wait_rollout("web", Duration::from_secs(90)).await;
    assert_eq!(get(&client, &server).await.0, 200);

    // `--idle-timeout off` removes the timeout.
    let output = server.cli(&["deploy", "web", "--idle-timeout", "off"]);
    assert!(output.status.success(), "{output:?}");
    assert!(server.app("web").await["idle_timeout_seconds"].is_null());
    let output = server.cli(&["deploy", "web", "--idle-timeout", "5s"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("idle_timeout_seconds"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_idle_app_counts_nothing_against_the_quota_and_a_refused_wake_says_why() {
    let server = Server::start("idle-quota").await;
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let (status, team) = server
        .call(
            Method::PATCH,
            "/api/v1/teams/default",
            Some(json!({"quota": {"instances": 2}})),
        )
        .await;
    assert_eq!(status, 200, "{team}");
    assert_eq!(team["quota"]["instances"], 2, "{team}");

    server
        .create_app("web", 2, json!({"idle_timeout_seconds": 10}))
        .await;
    server.wait_rollout("web", Duration::from_secs(90)).await;
    wait_idle(&server).await;
    // While idle its instances do not count: another app takes the team's two.
    let other = server.create_app("other", 2, json!({})).await;
    assert_eq!(other["replicas"], 2, "{other}");

    // The next request cannot wake it: a 503 naming the reason, not a hang.
    let (status, body) = get(&client, &server).await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("app web is scaled to 0 when idle and starting it was refused")
            && body.contains("quota"),
        "{body}"
    );
    let app = server.app("web").await;
    assert_eq!(app["replicas"], 0, "{app:#}");
    let events = server.events("web").await;
    assert!(
        events.iter().any(|e| e["kind"] == "wake_refused"
            && e["message"].as_str().is_some_and(|m| m.contains("quota"))),
        "{events:#?}"
    );
}
