//! End-to-end: the metrics history on the real engine — instances' and apps' CPU and memory,
//! the router's request rate, 5xx share and p95 latency, nodes and team totals come back from
//! the range queries; bad ranges are refused naming the field; a user outside the team sees
//! nothing of its apps.

mod support;

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use support::{Server, assert_refused, wait_until};

const ROLLOUT: Duration = Duration::from_secs(90);
const RECORDED: Duration = Duration::from_secs(40);

/// The series of `metric` (and `name`, when given) in a metrics answer.
fn series<'a>(answer: &'a Value, metric: &str, name: Option<&str>) -> Option<&'a Value> {
    answer["series"]
        .as_array()?
        .iter()
        .find(|s| s["metric"] == metric && name.is_none_or(|n| s["name"] == n))
}

/// The largest mean of a series' points.
fn peak(series: Option<&Value>) -> Option<f64> {
    series?["points"]
        .as_array()?
        .iter()
        .filter_map(|p| p["mean"].as_f64())
        .reduce(f64::max)
}

async fn through_router(server: &Server, app: &str, requests: usize) -> Vec<u16> {
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut statuses = Vec::new();
    for _ in 0..requests {
        let answer = client
            .get(format!("http://127.0.0.1:{}/", server.router_port))
            .header("Host", format!("{app}.default.localhost"))
            .send()
            .await
            .expect("through the router");
        statuses.push(answer.status().as_u16());
    }
    statuses
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_metrics_history_answers_range_queries_for_apps_nodes_and_teams() {
    let server = Server::start_with(
        "metrics-history",
        &["--metrics-interval", "1s", "--usage-interval", "1s"],
    )
    .await;
    server
        .create_app("web", 2, json!({"env": {"BURN_CPU_MILLICORES": "100"}}))
        .await;
    server
        .create_app("oops", 1, json!({"env": {"FAIL_REQUESTS": "1"}}))
        .await;
    server.wait_rollout("web", ROLLOUT).await;
    server.wait_rollout("oops", ROLLOUT).await;
    let instances: Vec<String> = server.app("web").await["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(instances.len(), 2);

    // Traffic through the router for a few rounds: web answers 200, oops 500.
    let deadline = tokio::time::Instant::now() + RECORDED;
    let (web, oops) = loop {
        assert!(
            through_router(&server, "web", 20)
                .await
                .iter()
                .all(|s| *s == 200)
        );
        assert!(
            through_router(&server, "oops", 5)
                .await
                .iter()
                .all(|s| *s == 500)
        );
        let web = server.get("/api/v1/apps/web/metrics").await;
        let oops = server.get("/api/v1/apps/oops/metrics").await;
        let done = instances.iter().all(|i| {
            peak(series(&web, "cpu_millis", Some(i))).is_some()
                && peak(series(&web, "memory_bytes", Some(i))).is_some_and(|m| m > 0.0)
        }) && peak(series(&web, "requests_per_second", None)).is_some_and(|r| r > 0.0)
            && peak(series(&oops, "error_percent", None)).is_some_and(|e| e > 0.0);
        if done {
            break (web, oops);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not recorded after {RECORDED:?}: {web:#}\n{oops:#}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    // The default range: the last hour at the finest tier's 5 s.
    assert_eq!(web["step_ms"], 5_000, "{web}");
    assert_eq!(web["tier_step_ms"], 5_000);
    let to = web["to"].as_i64().unwrap();
    let hour_ago = to - 3_600_000;
    assert_eq!(
        web["from"].as_i64().unwrap(),
        hour_ago - hour_ago.rem_euclid(5_000)
    );
    let app_series = series(&web, "cpu_millis", None).filter(|s| s["scope"] == "app");
    let app_cpu = app_series.expect("the app's CPU series");
    assert_eq!(app_cpu["team"], "default");
    assert_eq!(app_cpu["app"], "web");
    assert!(
        peak(Some(app_cpu)).unwrap() > 20.0,
        "web burns 100 millicores per instance: {app_cpu}"
    );
    assert!(peak(series(&web, "ready_instances", None)).unwrap() >= 1.0);
    assert!(series(&web, "restarts", None).is_some());
    assert!(peak(series(&web, "latency_p95_ms", None)).unwrap() > 0.0);
    assert_eq!(
        peak(series(&web, "error_percent", None)),
        Some(0.0),
        "web never failed"
    );
    let errors = peak(series(&oops, "error_percent", None)).unwrap();
    assert!(errors > 99.0, "every oops answer is a 500: {errors}");
    // Nothing of another app.
    assert!(
        web["series"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["app"] == "web")
    );

    // A coarser step rolls the 5 s points up: one point per minute at most. Recording may
    // have begun just before a minute's end, so wait until some minute holds two samples.
    let deadline = tokio::time::Instant::now() + RECORDED;
    loop {
        let to = server.get("/api/v1/apps/web/metrics?from=-1m").await["to"]
            .as_i64()
            .unwrap();
        let minute = server
            .get(&format!(
                "/api/v1/apps/web/metrics?from={}&to={to}&step=1m",
                to - 120_000
            ))
            .await;
        assert_eq!(minute["step_ms"], 60_000);
        let points = series(&minute, "memory_bytes", Some(&instances[0])).unwrap()["points"]
            .as_array()
            .unwrap()
            .clone();
        assert!((1..=3).contains(&points.len()), "{points:?}");
        assert!(
            points
                .iter()
                .all(|p| p["at"].as_i64().unwrap() % 60_000 == 0)
        );
        if points.iter().any(|p| p["samples"].as_u64().unwrap() > 1) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no minute rolled up two samples: {points:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // A span before now instead of a time: the server's clock decides.
    let recent = server.get("/api/v1/apps/web/metrics?from=-10m").await;
    let (from, to) = (
        recent["from"].as_i64().unwrap(),
        recent["to"].as_i64().unwrap(),
    );
    assert_eq!(
        from,
        (to - 600_000) - (to - 600_000).rem_euclid(5_000),
        "{recent}"
    );
    assert!(series(&recent, "memory_bytes", Some(&instances[0])).is_some());

    // The CLI: one line per series, the app's and each instance's.
    let out = server.cli(&["metrics", "web", "--since", "10m", "--step", "30s"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in ["requests_per_second", "latency_p95_ms", "ready_instances"] {
        assert!(
            text.lines().any(|l| l.starts_with(line)),
            "{line} in:\n{text}"
        );
    }
    for instance in &instances {
        assert!(text.contains(&format!("memory_bytes {instance}")), "{text}");
    }
    assert!(text.contains("points of 30 s"), "{text}");

    // The node the instances run on.
    let nodes = server.get("/api/v1/nodes").await;
    let node = nodes["nodes"][0]["name"].as_str().unwrap().to_string();
    wait_until("node metrics", RECORDED, || async {
        let answer = server.get(&format!("/api/v1/nodes/{node}/metrics")).await;
        peak(series(&answer, "cpu_percent", Some(&node))).is_some()
            && peak(series(&answer, "memory_bytes", Some(&node))).is_some_and(|m| m > 0.0)
            && peak(series(&answer, "disk_used_percent", Some(&node))).is_some()
    })
    .await;

    // The team's totals, with its quota.
    let team = server.get("/api/v1/teams/default/metrics").await;
    assert!(
        peak(series(&team, "memory_bytes", None)).unwrap() > 0.0,
        "{team}"
    );
    assert!(
        peak(series(&team, "ready_instances", None)).unwrap() >= 2.0,
        "{team}"
    );
    assert!(team["quota"].is_object(), "{team}");

    // Bad ranges name their field.
    let now = to;
    for (query, field, says) in [
        (format!("from={now}&to={}", now - 1000), "from", "before to"),
        ("from=yesterday".to_string(), "from", "unix milliseconds"),
        ("to=-".to_string(), "to", "unix milliseconds"),
        ("step=7x".to_string(), "step", "unknown step"),
        ("from=-7x".to_string(), "from", "not a span"),
        ("step=7s".to_string(), "step", "multiple of 5s"),
        (
            format!("from={}", now - 40 * 86_400_000),
            "from",
            "range too large",
        ),
    ] {
        let (status, answer) = server
            .call(
                Method::GET,
                &format!("/api/v1/apps/web/metrics?{query}"),
                None,
            )
            .await;
        assert_refused(status, &answer, 400, says);
        assert_eq!(answer["error"]["field"], field, "{query}: {answer}");
    }

    // Outside the team: no app, no team; nodes are for every logged-in user.
    let bob = server.register("bob", Some("elsewhere")).await;
    for path in ["/api/v1/apps/web/metrics", "/api/v1/teams/default/metrics"] {
        let (status, answer) = server.call_as(&bob, Method::GET, path, None).await;
        assert_eq!(status, 404, "{path}: {answer}");
    }
    let (status, answer) = server
        .call_as(
            &bob,
            Method::GET,
            &format!("/api/v1/nodes/{node}/metrics"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let (status, _) = server
        .call_as(&bob, Method::GET, "/api/v1/teams/elsewhere/metrics", None)
        .await;
    assert_eq!(status, 200, "his own team");
    let (status, _) = server
        .call_as(
            "",
            Method::GET,
            &format!("/api/v1/nodes/{node}/metrics"),
            None,
        )
        .await;
    assert_eq!(status, 401, "not logged in");

    // The history lives in its own database beside berth.db.
    assert!(server.data_dir.join("metrics.db").exists());
}
