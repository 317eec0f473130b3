//! End-to-end: CPU autoscaling on the real engine. The test app burns CPU on request; Berth
//! samples it, applies desired = ceil(sum of CPU utilisation / target), adds instances under
//! load and removes them when it ends, explains each decision, refuses a manual scale, holds
//! at the team's quota with an event naming it, and refuses bad settings naming the field.
//! On requests in flight (counted by the router), a burst of slow requests through the router
//! starts a panic that adds instances at once, and its end brings the count back down.

mod support;

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use support::{Server, assert_refused, ready_instances};

/// Sampling (and autoscaling) every second keeps the test short; the rules are the same.
const FAST: &[&str] = &["--usage-interval", "1s"];
const ROLLOUT: Duration = Duration::from_secs(90);
/// Samples over the window, a decision, a start and a readiness check, on a busy machine.
const REACTION: Duration = Duration::from_secs(120);
const CPU_LIMIT: u64 = 200;

fn autoscaled_events(events: &[Value], kind: &str) -> Vec<Value> {
    events
        .iter()
        .filter(|e| e["kind"] == kind)
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn load_adds_instances_its_end_removes_them_and_each_decision_is_explained() {
    let server = Server::start_with("autoscale", FAST).await;
    server
        .create_app("cpu", 1, json!({"cpu_millis": CPU_LIMIT}))
        .await;
    server.wait_rollout("cpu", ROLLOUT).await;

    // Target 60 % of the 200 m limit, averaged over 10 s; scale down after 5 s. A cgroup lets
    // an instance run a little over its limit within a window (104 % was seen): anything from
    // 67 % to 120 % of the limit gives ceil(use / 60 %) = 2.
    let (status, view) = server
        .call(
            Method::PUT,
            "/api/v1/apps/cpu/autoscale",
            Some(json!({
                "min_instances": 1, "max_instances": 3, "cpu_percent": 60,
                "window_seconds": 10, "scale_down_stabilization_seconds": 5
            })),
        )
        .await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["autoscale"]["cpu_percent"], 60, "{view}");
    assert_eq!(view["cpu_limit_millis"], CPU_LIMIT, "{view}");
    let app = server.app("cpu").await;
    assert_eq!(app["autoscale"]["max_instances"], 3, "{app:#}");

    // A manual scale is refused while Berth owns the count; the CLI says what to do.
    let (status, answer) = server
        .call(
            Method::POST,
            "/api/v1/apps/cpu/scale",
            Some(json!({"replicas": 3})),
        )
        .await;
    let message = assert_refused(status, &answer, 409, "autoscaled between 1 and 3");
    assert_eq!(answer["error"]["code"], "autoscaled", "{answer}");
    assert!(message.contains("berth autoscale cpu --off"), "{message}");
    let output = server.cli(&["scale", "cpu", "3"]);
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("is autoscaled"),
        "{output:?}"
    );
    assert_eq!(server.app("cpu").await["replicas"], 1);

    // Burn the whole limit in the one instance: 100 % / 60 % → 2 instances.
    let instance = ready_instances(&server.app("cpu").await)[0].clone();
    let address = instance["address"].as_str().expect("address").to_owned();
    let burn = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .post(format!(
            "http://{address}/admin/burn?millicores=400&seconds=25"
        ))
        .send()
        .await
        .expect("burn");
    assert!(burn.status().is_success(), "{burn:?}");
    let scaled_up = server
        .wait_app("cpu", "2 ready instances under load", REACTION, |app| {
            app["replicas"] == 2 && ready_instances(app).len() == 2
        })
        .await;
    assert_eq!(scaled_up["autoscale"]["min_instances"], 1);

    let events = server.events("cpu").await;
    let up = autoscaled_events(&events, "autoscaled");
    let first = up.first().unwrap_or_else(|| panic!("{events:#?}"));
    assert_eq!(first["params"]["from"], "1", "{first:#}");
    assert_eq!(first["params"]["to"], "2", "{first:#}");
    assert_eq!(first["params"]["raw"], "2", "{first:#}");
    assert_eq!(first["params"]["target_percent"], "60.0 %", "{first:#}");
    let message = first["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("ready instances sampled over 10s") && message.contains("÷ target 60.0 %"),
        "{message}"
    );

    // The load ends: back to the minimum once the window forgets it.
    server
        .wait_app("cpu", "back to 1 instance", REACTION, |app| {
            app["replicas"] == 1
        })
        .await;
    let events = server.events("cpu").await;
    assert!(
        autoscaled_events(&events, "autoscaled")
            .iter()
            .any(|e| e["params"]["from"] == "2" && e["params"]["to"] == "1"),
        "{events:#?}"
    );

    // `explain` shows the numbers of the latest evaluation and the decisions.
    let output = server.cli(&["autoscale", "explain", "cpu"]);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    for part in [
        "autoscaled between 1 and 3 instances",
        "target 60 % of the CPU limit (200m)",
        "latest evaluation",
        "decisions (newest first):",
        "autoscaled from 2 to 1 instances",
        "autoscaled from 1 to 2 instances",
    ] {
        assert!(text.contains(part), "{part:?} in:\n{text}");
    }

    // Off: the count stays, and a manual scale works again.
    let output = server.cli(&["autoscale", "cpu", "--off"]);
    assert!(output.status.success(), "{output:?}");
    let app = server.app("cpu").await;
    assert_eq!(app["autoscale"], Value::Null, "{app:#}");
    assert_eq!(app["replicas"], 1);
    server
        .post("/api/v1/apps/cpu/scale", json!({"replicas": 2}))
        .await;
    let events = server.events("cpu").await;
    assert_eq!(
        autoscaled_events(&events, "autoscale_changed").len(),
        2,
        "on and off: {events:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_quota_holds_the_scale_up_and_says_so() {
    let server = Server::start_with("autoscale-quota", FAST).await;
    let (status, team) = server
        .call(
            Method::PATCH,
            "/api/v1/teams/default",
            Some(json!({"quota": {"instances": 2}})),
        )
        .await;
    assert_eq!(status, 200, "{team}");
    // Every instance burns its whole limit: the formula always wants twice as many.
    server
        .create_app(
            "hot",
            1,
            json!({"cpu_millis": CPU_LIMIT, "env": {"BURN_CPU_MILLICORES": "400"}}),
        )
        .await;
    server.wait_rollout("hot", ROLLOUT).await;
    let output = server.cli(&[
        "autoscale",
        "hot",
        "--min",
        "1",
        "--max",
        "5",
        "--cpu",
        "50%",
        "--window",
        "10s",
    ]);
    assert!(output.status.success(), "{output:?}");
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("autoscaled between 1 and 5 instances"),
        "{output:?}"
    );

    let deadline = Instant::now() + REACTION;
    let refusal = loop {
        let app = server.app("hot").await;
        let replicas = app["replicas"].as_u64().unwrap_or(0);
        assert!(replicas <= 2, "beyond the quota: {app:#}");
        let events = server.events("hot").await;
        if let Some(refused) = autoscaled_events(&events, "autoscale_refused").pop() {
            break refused;
        }
        assert!(
            Instant::now() < deadline,
            "no refusal: {events:#?}\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(refusal["warning"], true, "{refusal:#}");
    let message = refusal["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("quota") && message.contains("instances"),
        "{message}"
    );
    assert!(refusal["params"]["quota"].as_str().is_some(), "{refusal:#}");
    // Held at the quota: the count never overshoots while the load goes on.
    for _ in 0..10 {
        let app = server.app("hot").await;
        assert_eq!(app["replicas"], 2, "{app:#}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let view = server.get("/api/v1/apps/hot/autoscale").await;
    let latest = &view["evaluations"][0];
    assert!(latest["desired"].as_u64().unwrap_or(0) > 2, "{view:#}");
    assert!(
        latest["sum_percent"].as_f64().unwrap_or(0.0) > 100.0,
        "{view:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_settings_are_refused_naming_the_field() {
    let server = Server::start("autoscale-input").await;
    server
        .create_app("limited", 1, json!({"cpu_millis": CPU_LIMIT}))
        .await;
    server.create_app("unlimited", 1, json!({})).await;
    let put = |app: &str, body: Value| {
        let path = format!("/api/v1/apps/{app}/autoscale");
        let server = &server;
        async move { server.call(Method::PUT, &path, Some(body)).await }
    };
    // (app, body, field)
    let cases = [
        (
            "limited",
            json!({"min_instances": 5, "max_instances": 2}),
            "min_instances",
        ),
        (
            "limited",
            json!({"min_instances": 0, "max_instances": 2}),
            "min_instances",
        ),
        (
            "limited",
            json!({"min_instances": 1, "max_instances": 2, "cpu_percent": 0}),
            "cpu_percent",
        ),
        (
            "limited",
            json!({"min_instances": 1, "max_instances": 2, "cpu_percent": 150}),
            "cpu_percent",
        ),
        (
            "limited",
            json!({"min_instances": 1, "max_instances": 2, "window_seconds": 1}),
            "window_seconds",
        ),
        (
            "limited",
            json!({"min_instances": 1, "max_instances": 501}),
            "max_instances",
        ),
        (
            "unlimited",
            json!({"min_instances": 1, "max_instances": 2}),
            "cpu_millis",
        ),
        (
            "unlimited",
            json!({"min_instances": 1, "max_instances": 2, "metric": "memory"}),
            "metric",
        ),
        (
            "unlimited",
            json!({"min_instances": 1, "max_instances": 2, "metric": "rps"}),
            "target",
        ),
        (
            "unlimited",
            json!({"min_instances": 1, "max_instances": 2, "metric": "rps", "target": 5,
                   "cpu_percent": 50}),
            "cpu_percent",
        ),
        (
            "unlimited",
            json!({"min_instances": 1, "max_instances": 2, "metric": "concurrency",
                   "target": 5, "panic_window_seconds": 1}),
            "panic_window_seconds",
        ),
        (
            "unlimited",
            json!({"min_instances": 1, "max_instances": 2, "metric": "concurrency",
                   "target": 5, "panic_threshold_percent": 100}),
            "panic_threshold_percent",
        ),
        (
            "limited",
            json!({"min_instances": 1, "max_instances": 2, "target": 5}),
            "target",
        ),
    ];
    for (app, body, field) in cases {
        let (status, answer) = put(app, body.clone()).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(answer["error"]["field"], field, "{body}: {answer}");
    }
    let (status, answer) = put("limited", json!({"min_instances": 1})).await;
    assert_eq!(status, 400, "{answer}");
    // Nothing was stored by the refusals.
    let app = server.app("limited").await;
    assert_eq!(app["autoscale"], Value::Null, "{app:#}");

    // Autoscaled, the app keeps its CPU limit: a deploy removing it is refused.
    let (status, _) = put("limited", json!({"min_instances": 2, "max_instances": 4})).await;
    assert_eq!(status, 200);
    let app = server.app("limited").await;
    assert_eq!(
        app["replicas"], 2,
        "turning on moves the count into the range: {app:#}"
    );
    let (status, answer) = server
        .call(
            Method::POST,
            "/api/v1/apps/limited/deploy",
            Some(json!({"cpu_millis": 0})),
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"]["field"], "cpu_millis", "{answer}");
    // The CLI refuses a first setting without a range before asking the server.
    let output = server.cli(&["autoscale", "unlimited", "--cpu", "60%"]);
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("give both --min and --max"),
        "{output:?}"
    );
    // Another team's member cannot see or change it.
    let token = server.register("mallory", Some("elsewhere")).await;
    let (status, _) = server
        .call_as(
            &token,
            Method::PUT,
            "/api/v1/apps/limited/autoscale",
            Some(json!({"min_instances": 1, "max_instances": 9})),
        )
        .await;
    assert_eq!(status, 404);
}

/// Slow requests through the router, `clients` at a time, until `stop` turns true.
fn slow_load(
    port: u16,
    host: &str,
    clients: usize,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Vec<tokio::task::JoinHandle<u32>> {
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    (0..clients)
        .map(|_| {
            let (client, stop, host) = (client.clone(), stop.clone(), host.to_string());
            tokio::spawn(async move {
                let mut answered = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let sent = client
                        .get(format!("http://127.0.0.1:{port}/slow?ms=400"))
                        .header("host", &host)
                        .send()
                        .await;
                    if sent.is_ok_and(|r| r.status().is_success()) {
                        answered += 1;
                    }
                }
                answered
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_requests_in_flight_panics_up_and_its_end_scales_down() {
    let server = Server::start_with("autoscale-requests", FAST).await;
    // No CPU limit: the request metrics need none.
    server.create_app("api", 1, json!({})).await;
    server.wait_rollout("api", ROLLOUT).await;
    let output = server.cli(&[
        "autoscale",
        "api",
        "--min",
        "1",
        "--max",
        "4",
        "--concurrency",
        "2",
        "--window",
        "10s",
        "--scale-down-delay",
        "0s",
    ]);
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("target 2 requests in flight per instance")
            && text.contains("panic when the last 6s asks for 200 %"),
        "{text}"
    );

    // 6 clients keep 6 requests of 400 ms in flight: 6 / 2 = 3 instances, asked for by the
    // panic window at once (3 ≥ 200 % of 1).
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients = slow_load(server.router_port, "api.default.localhost", 6, stop.clone());
    server
        .wait_app(
            "api",
            "3 or more instances under the burst",
            REACTION,
            |app| app["replicas"].as_u64().unwrap_or(0) >= 3,
        )
        .await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut answered = 0;
    for client in clients {
        answered += client.await.expect("client");
    }
    assert!(answered > 0, "requests went through the router");

    let events = server.events("api").await;
    let up = autoscaled_events(&events, "autoscaled");
    let first = up.first().unwrap_or_else(|| panic!("{events:#?}"));
    assert_eq!(first["params"]["metric"], "concurrency", "{first:#}");
    assert_eq!(first["params"]["from"], "1", "{first:#}");
    assert_eq!(first["params"]["panic"], "true", "{first:#}");
    assert_eq!(first["params"]["target"], "2.00 in flight", "{first:#}");
    let message = first["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("requests in flight") && message.contains("(panic: a burst)"),
        "{message}"
    );

    // The burst is over: once the panic (one window) and the window have passed, back to 1.
    server
        .wait_app("api", "back to 1 instance", REACTION, |app| {
            app["replicas"] == 1
        })
        .await;
    let (status, view) = server
        .call(Method::GET, "/api/v1/apps/api/autoscale", None)
        .await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["autoscale"]["metric"], "concurrency", "{view}");
    let latest = &view["evaluations"][0];
    assert_eq!(latest["metric"], "concurrency", "{latest}");
    assert_eq!(latest["sum_percent"], Value::Null, "{latest}");
    assert_eq!(latest["panic"], false, "{latest}");
    let output = server.cli(&["autoscale", "explain", "api"]);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    for part in [
        "metric",
        "concurrency",
        "in flight",
        "decisions (newest first):",
        "autoscaled from 1 to",
    ] {
        assert!(text.contains(part), "{part:?} in:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_metrics_are_refused_without_the_router() {
    let server = Server::start_with("autoscale-no-router", &["--http-listen", "off"]).await;
    server.create_app("api", 1, json!({})).await;
    let (status, answer) = server
        .call(
            Method::PUT,
            "/api/v1/apps/api/autoscale",
            Some(json!({"min_instances": 1, "max_instances": 2, "metric": "rps", "target": 5})),
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"]["field"], "metric", "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("--http-listen off")),
        "{answer}"
    );
    assert_eq!(server.app("api").await["autoscale"], Value::Null);
}
