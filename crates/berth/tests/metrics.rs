//! End-to-end: `GET /metrics` of the real binary. Who may scrape (a metrics-scope token or an
//! admin; anonymous 401, a member's token 403; a metrics token nowhere else), and what a scrape
//! says after the test app was deployed and answered requests through the router — checked by
//! Prometheus's own parser and linter (`promtool check metrics`, Debian's `prometheus`
//! package) and by reading the samples back.

mod support;

use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use support::{Server, wait_until};

/// Samples of a text exposition: `name{labels}` exactly as written → value.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            Some((series.to_string(), value.parse().ok()?))
        })
        .collect()
}

/// Runs `promtool check metrics` on `text`; panics with its findings unless it is clean.
fn promtool_check(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run promtool ({e}): install Debian's `prometheus` package \
                 (apt-get install --no-install-recommends prometheus; .ci/run does)"
            )
        });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool check metrics: {}\n{}{}\n--- scraped:\n{text}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

async fn scrape(server: &Server, token: &str) -> (u16, String) {
    let (status, body) = server.call_as(token, Method::GET, "/metrics", None).await;
    match body {
        serde_json::Value::String(text) => (status, text),
        other => (status, other.to_string()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_are_scraped_with_a_metrics_token_and_parse_as_prometheus_text() {
    let server = Server::start("metrics").await;

    // Scopes: an unknown one names the field; only admins make metrics tokens.
    let (status, answer) = server
        .call(
            Method::POST,
            "/api/v1/me/tokens",
            Some(json!({"name": "prom", "scope": "everything"})),
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"]["field"], "scope", "{answer}");
    let (status, answer) = server
        .call(
            Method::POST,
            "/api/v1/me/tokens",
            Some(json!({"name": "prom", "scope": "metrics"})),
        )
        .await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["info"]["scope"], "metrics", "{answer}");
    let metrics_token = answer["token"].as_str().unwrap().to_string();
    let tokens = server.get("/api/v1/me/tokens").await;
    let scopes: Vec<_> = tokens
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["name"].as_str().unwrap(), t["scope"].as_str().unwrap()))
        .collect();
    assert!(scopes.contains(&("prom", "metrics")), "{tokens}");
    assert!(scopes.contains(&("first-start secret", "full")), "{tokens}");

    // The CLI makes one the same way and lists the scope.
    let made = server.cli(&["tokens", "create", "prom-cli", "--scope", "metrics"]);
    assert!(made.status.success(), "{made:?}");
    let cli_token = String::from_utf8(made.stdout).unwrap().trim().to_string();
    assert_eq!(scrape(&server, &cli_token).await.0, 200);
    let listed = server.cli(&["tokens", "list"]);
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed
            .lines()
            .any(|line| line.contains("prom-cli") && line.trim_end().ends_with("metrics")),
        "{listed}"
    );
    let refused = server.cli(&["tokens", "create", "x", "--scope", "root"]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("scope"),
        "{refused:?}"
    );

    let member = server.register("mia", Some("mias")).await;
    let (status, answer) = server
        .call_as(
            &member,
            Method::POST,
            "/api/v1/me/tokens",
            Some(json!({"name": "prom", "scope": "metrics"})),
        )
        .await;
    assert_eq!(status, 403, "{answer}");

    // Who may scrape.
    assert_eq!(scrape(&server, "").await.0, 401);
    assert_eq!(scrape(&server, "berth_not-a-token").await.0, 401);
    assert_eq!(scrape(&server, &member).await.0, 403);
    assert_eq!(scrape(&server, &server.token).await.0, 200, "an admin may");
    // A metrics token reads nothing else: the API says so, the registry does not know it.
    let (status, answer) = server
        .call_as(&metrics_token, Method::GET, "/api/v1/apps", None)
        .await;
    assert_eq!(status, 403, "{answer}");
    assert_eq!(answer["error"]["code"], "token_scope", "{answer}");
    let (status, _) = server
        .call_as(&metrics_token, Method::GET, "/v2/_catalog", None)
        .await;
    assert_eq!(status, 401, "the registry refuses a metrics token");

    // An app answering through the router.
    server.create_app("web", 1, json!({})).await;
    server.wait_rollout("web", Duration::from_secs(60)).await;
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let sent = 12;
    for _ in 0..sent {
        let response = client
            .get(format!("http://127.0.0.1:{}/", server.router_port))
            .header(reqwest::header::HOST, "web.default.localhost")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.bytes().await.unwrap();
    }
    // A build that fails at once (its repository does not exist) is timed too.
    let missing = tempfile::tempdir().unwrap();
    let (status, answer) = server
        .call(
            Method::PUT,
            "/api/v1/pipelines/default/gone",
            Some(json!({
                "repository_url": missing.path().join("nothing-here").display().to_string(),
                "target_repository": "default/gone",
            })),
        )
        .await;
    assert_eq!(status, 201, "{answer}");
    let (status, queued) = server
        .call(Method::POST, "/api/v1/pipelines/default/gone/builds", None)
        .await;
    assert_eq!(status, 202, "{queued}");
    let build = format!("/api/v1/builds/{}", queued["id"]);
    wait_until("the build to fail", Duration::from_secs(60), || async {
        server.get(&build).await["status"] == "failed"
    })
    .await;

    // The usage sampler needs two rounds (5 s apart) for a CPU figure.
    wait_until(
        "the instance has a CPU sample",
        Duration::from_secs(30),
        || async {
            let app = server.app("web").await;
            app["instances"][0]["usage"]["cpu_millis"].is_u64()
        },
    )
    .await;

    let (status, text) = scrape(&server, &metrics_token).await;
    assert_eq!(status, 200, "{text}");
    promtool_check(&text);
    let samples = samples(&text);
    let value = |series: &str| {
        *samples
            .get(series)
            .unwrap_or_else(|| panic!("{series} missing from\n{text}"))
    };
    let web = r#"team="default",app="web""#;
    assert!(
        value(&format!(
            r#"berth_router_requests_total{{{web},code="2xx"}}"#
        )) >= f64::from(sent)
    );
    assert!(
        value(&format!(
            r#"berth_router_request_duration_seconds_count{{{web}}}"#
        )) >= f64::from(sent)
    );
    assert_eq!(value(&format!("berth_app_desired_instances{{{web}}}")), 1.0);
    assert_eq!(value(&format!("berth_app_ready_instances{{{web}}}")), 1.0);
    assert_eq!(value(r#"berth_apps{team="default"}"#), 1.0);
    // The node monitor's gauges: this machine, with its memory and disks.
    assert!(
        samples.iter().any(
            |(series, v)| series.starts_with("berth_node_memory_total_bytes{node=") && *v > 0.0
        ),
        "node memory:\n{text}"
    );
    assert!(
        samples.keys().any(
            |series| series.starts_with("berth_node_disk_free_bytes{node=")
                && series.contains(r#"disk="berth_data_dir""#)
        ),
        "the data dir's disk:\n{text}"
    );
    assert!(value(r#"berth_reconcile_duration_seconds_count{outcome="ok"}"#) > 0.0);
    assert!(
        samples.keys().any(|series| series.starts_with(
            r#"berth_api_request_duration_seconds_count{method="GET",route="/api/v1/apps/{name}",status="2xx"}"#
        )),
        "the app route's template is a label:\n{text}"
    );
    assert!(
        !samples
            .keys()
            .any(|series| series.contains("/api/v1/apps/web")),
        "raw paths never become labels"
    );
    assert!(
        samples
            .keys()
            .any(|series| series.starts_with(&format!("berth_instance_memory_bytes{{{web},"))),
        "{text}"
    );
    assert!(
        samples
            .keys()
            .any(|series| series.starts_with(&format!("berth_instance_cpu_millicores{{{web},"))),
        "{text}"
    );
    assert!(samples.contains_key("berth_work_queue_depth"), "{text}");
    assert!(
        samples.contains_key("berth_registry_storage_bytes"),
        "{text}"
    );
    assert_eq!(value("berth_builds_queued"), 0.0);
    assert_eq!(value("berth_builds_running"), 0.0);
    assert!(value(r#"berth_build_duration_seconds_count{status="failed"}"#) >= 1.0);

    // Every family is documented.
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/METRICS.md"),
    )
    .unwrap();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let name = rest.split(' ').next().unwrap();
            assert!(
                doc.contains(&format!("`{name}`")),
                "{name} is not in docs/METRICS.md"
            );
        }
    }
}
