//! End-to-end: the API's contract — auth, errors naming fields, 404s, OpenAPI, deletion,
//! behaviour without a Docker Engine, and the CLI's output forms.

mod support;

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use support::{Server, containers_of, wait_until};

/// One bad request: method, path, body, expected status, error code and named field.
type BadRequest = (
    Method,
    &'static str,
    Value,
    u16,
    &'static str,
    Option<&'static str>,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_clear_error_and_changes_nothing() {
    let server = Server::start("badinput").await;
    server.create_app("web", 1, json!({})).await;
    let before = server.app("web").await;

    let cases: Vec<BadRequest> = vec![
        (
            Method::POST,
            "/api/v1/apps",
            json!({"name": "Bad_Name", "image": "x"}),
            400,
            "invalid_spec",
            Some("name"),
        ),
        (
            Method::POST,
            "/api/v1/apps",
            json!({"name": "ok"}),
            400,
            "invalid_field",
            Some("image"),
        ),
        (
            Method::POST,
            "/api/v1/apps",
            json!({"name": "ok", "image": "x", "port": 0}),
            400,
            "invalid_spec",
            Some("template.port"),
        ),
        (
            Method::POST,
            "/api/v1/apps",
            json!({"name": "ok", "image": "x", "replicas": 100000}),
            400,
            "invalid_spec",
            Some("replicas"),
        ),
        (
            Method::POST,
            "/api/v1/apps",
            json!({"name": "ok", "image": "x", "imgae": "y"}),
            400,
            "invalid_json",
            Some("imgae"),
        ),
        (
            Method::POST,
            "/api/v1/apps",
            json!({"name": "ok", "image": "x", "replicas": "three"}),
            400,
            "invalid_json",
            None,
        ),
        (
            Method::POST,
            "/api/v1/apps",
            json!({"name": "web", "image": "x"}),
            409,
            "already_exists",
            None,
        ),
        (
            Method::POST,
            "/api/v1/apps/web/deploy",
            json!({"health_path": "nope"}),
            400,
            "invalid_spec",
            Some("template.readiness.path"),
        ),
        (
            Method::POST,
            "/api/v1/apps/web/deploy",
            json!({"env": {"BERTH_APP": "x"}}),
            400,
            "invalid_spec",
            Some("template.env.BERTH_APP"),
        ),
        (
            Method::POST,
            "/api/v1/apps/web/deploy",
            json!({"image": "has space"}),
            400,
            "invalid_spec",
            Some("template.image"),
        ),
        (
            Method::POST,
            "/api/v1/apps/web/deploy",
            json!({"strategy": {"max_surge": 0, "max_unavailable": 0}}),
            400,
            "invalid_spec",
            Some("strategy.max_surge"),
        ),
        (
            Method::POST,
            "/api/v1/apps/web/scale",
            json!({"replicas": -1}),
            400,
            "invalid_json",
            None,
        ),
        (
            Method::POST,
            "/api/v1/apps/web/rollback",
            json!({"revision": 7}),
            400,
            "invalid_field",
            Some("revision"),
        ),
        (
            Method::POST,
            "/api/v1/apps/web/rollback",
            json!({"revision": 1}),
            400,
            "invalid_field",
            Some("revision"),
        ),
        (
            Method::GET,
            "/api/v1/apps/nope",
            Value::Null,
            404,
            "not_found",
            None,
        ),
        (
            Method::POST,
            "/api/v1/apps/nope/scale",
            json!({"replicas": 1}),
            404,
            "not_found",
            None,
        ),
        (
            Method::DELETE,
            "/api/v1/apps/nope",
            Value::Null,
            404,
            "not_found",
            None,
        ),
        (
            Method::GET,
            "/api/v1/apps/web/revisions/9",
            Value::Null,
            404,
            "not_found",
            None,
        ),
        (
            Method::GET,
            "/api/v1/apps/web/events?limit=0",
            Value::Null,
            400,
            "invalid_field",
            Some("limit"),
        ),
        (
            Method::GET,
            "/api/v1/nothing-here",
            Value::Null,
            404,
            "no_route",
            None,
        ),
    ];
    for (method, path, body, status, code, field) in cases {
        let body = (!body.is_null()).then_some(body);
        let (got_status, answer) = server.call(method.clone(), path, body.clone()).await;
        assert_eq!(got_status, status, "{method} {path} {body:?}: {answer}");
        assert_eq!(
            answer["error"]["code"], code,
            "{method} {path} {body:?}: {answer}"
        );
        assert!(
            answer["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
        if let Some(field) = field {
            assert_eq!(
                answer["error"]["field"], field,
                "{method} {path} {body:?}: {answer}"
            );
            assert!(
                answer["error"]["message"].as_str().unwrap().contains(field),
                "{answer}"
            );
        }
    }
    let after = server.app("web").await;
    assert_eq!(after["current_revision"], before["current_revision"]);
    assert_eq!(after["latest_revision"], 1);
    assert_eq!(after["replicas"], 1);
    assert_eq!(after["template"], before["template"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_needs_the_admin_token() {
    let server = Server::start("auth").await;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let url = format!("{}/api/v1/apps", server.url);
    let missing = http.get(&url).send().await.unwrap();
    assert_eq!(missing.status(), 401);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");
    let wrong = http
        .get(&url)
        .bearer_auth("not-the-token")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    // The token file is private to its owner.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(server.data_dir.join("admin-token"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    // Health, readiness and the OpenAPI document are public.
    for path in ["/healthz", "/readyz"] {
        assert_eq!(
            http.get(format!("{}{path}", server.url))
                .send()
                .await
                .unwrap()
                .status(),
            200,
            "{path}"
        );
    }
    let doc: Value = http
        .get(format!("{}/api/v1/openapi.json", server.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with('3'));
    for path in [
        "/api/v1/apps",
        "/api/v1/apps/{name}",
        "/api/v1/apps/{name}/deploy",
        "/api/v1/apps/{name}/scale",
        "/api/v1/apps/{name}/rollback",
        "/api/v1/apps/{name}/events",
        "/api/v1/apps/{name}/logs",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "OpenAPI document lacks {path}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_an_app_removes_its_containers_and_nothing_else() {
    let server = Server::start("delete").await;
    server.create_app("keep", 1, json!({})).await;
    server.create_app("gone", 2, json!({})).await;
    server.wait_rollout("keep", Duration::from_secs(60)).await;
    server.wait_rollout("gone", Duration::from_secs(60)).await;
    let namespace = server.namespace.namespace().to_string();
    let kept = containers_of(&namespace, "keep");
    assert_eq!(containers_of(&namespace, "gone").len(), 2);
    let (status, _) = server.call(Method::DELETE, "/api/v1/apps/gone", None).await;
    assert_eq!(status, 204);
    // A reconcile that was already running may start one more instance; it goes at once too.
    wait_until(
        "the deleted app's containers are gone",
        Duration::from_secs(15),
        || {
            let namespace = namespace.clone();
            async move { containers_of(&namespace, "gone").is_empty() }
        },
    )
    .await;
    assert_eq!(containers_of(&namespace, "keep"), kept);
    let (status, _) = server.call(Method::GET, "/api/v1/apps/gone", None).await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_commands_and_json_output() {
    let server = Server::start("cli").await;
    let image = berth_testkit::TESTAPP_IMAGE;
    let output = server.cli(&[
        "apps",
        "create",
        "web",
        "--image",
        image,
        "--replicas",
        "2",
        "--port",
        "8080",
        "--health-path",
        "/healthz",
        "--env",
        "A=1",
        "--wait",
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let output = server.cli(&["apps", "show", "web", "-o", "json"]);
    assert!(output.status.success());
    let app: Value = serde_json::from_slice(&output.stdout).expect("apps show -o json is JSON");
    assert_eq!(app["current_revision"], 1);
    assert_eq!(app["rollout"]["phase"], "complete");
    assert_eq!(app["template"]["env"]["A"], "1");
    assert_eq!(app["instances"].as_array().unwrap().len(), 2);
    assert!(
        app["instances"][0]["address"]
            .as_str()
            .unwrap()
            .ends_with(":8080")
    );
    assert_eq!(app["instances"][0]["ready"], true);

    let list: Value =
        serde_json::from_slice(&server.cli(&["apps", "list", "-o", "json"]).stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    let table = String::from_utf8_lossy(&server.cli(&["apps", "list"]).stdout).to_string();
    assert!(
        table.starts_with("NAME") && table.contains("web") && table.contains("2/2"),
        "{table}"
    );

    let output = server.cli(&[
        "deploy",
        "web",
        "--env",
        "B=2",
        "--unset-env",
        "A",
        "--wait",
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let history: Value =
        serde_json::from_slice(&server.cli(&["history", "web", "-o", "json"]).stdout).unwrap();
    assert_eq!(history.as_array().unwrap().len(), 2);
    assert_eq!(history[0]["number"], 2);
    assert_eq!(history[0]["template"]["env"], json!({"B": "2"}));

    let output = server.cli(&["scale", "web", "1"]);
    assert!(output.status.success());
    let events: Value =
        serde_json::from_slice(&server.cli(&["events", "web", "-o", "json"]).stdout).unwrap();
    assert!(
        events
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "scaled")
    );
    let logs = String::from_utf8_lossy(&server.cli(&["logs", "web"]).stdout).to_string();
    assert!(logs.contains("listening on"), "{logs}");

    let output = server.cli(&["apps", "create", "Bad", "--image", image]);
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("name"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let output = server.cli(&["apps", "show", "nope"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("not_found"));
    let help = server.cli(&["--help"]);
    assert!(String::from_utf8_lossy(&help.stdout).contains("rollback"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_docker_engine_the_state_is_kept_and_the_error_is_clear() {
    let server = Server::start_with("nodocker", &["--docker-host", "tcp://127.0.0.1:9"]).await;
    let (status, ready) = server.call(Method::GET, "/readyz", None).await;
    assert_eq!(status, 503);
    assert_eq!(ready["ready"], false);
    assert_eq!(ready["store"], "ok");
    if std::env::var(support::STORE_VARIABLE).is_err() {
        assert_eq!(
            ready["role"], "single",
            "the only server of its SQLite store"
        );
    }
    server.create_app("web", 1, json!({})).await;
    let app = server.app("web").await;
    assert!(
        app["engine_error"].as_str().is_some_and(|e| !e.is_empty()),
        "{app:#}"
    );
    assert_eq!(app["current_revision"], 1);
    // No controller acts before the namespace is claimed, which needs the engine: the server
    // says so, and keeps asking.
    support::wait_until(
        "the server says it waits to claim the namespace",
        Duration::from_secs(20),
        || async {
            server
                .log()
                .contains("cannot claim the engine namespace yet")
        },
    )
    .await;
    let app = server.app("web").await;
    assert!(
        app["engine_error"].as_str().is_some_and(|e| !e.is_empty()),
        "the app still shows why: {app:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_that_never_answers_holds_neither_the_start_nor_readiness_back() {
    // An "engine" that takes every connection and never says a word.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = silent.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let mut connections = Vec::new();
        while let Ok((connection, _)) = silent.accept().await {
            connections.push(connection);
        }
    });
    let started = std::time::Instant::now();
    let server = Server::start_with(
        "silentengine",
        &["--docker-host", &format!("tcp://{address}")],
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "the API served after {:?}",
        started.elapsed()
    );
    assert!(
        server.log().contains("the Docker Engine is slow to answer"),
        "the start says why the controllers wait: {}",
        server.log()
    );
    let asked = std::time::Instant::now();
    let (status, ready) = server.call(Method::GET, "/readyz", None).await;
    assert_eq!(status, 503, "{ready:#}");
    assert_eq!(ready["store"], "ok");
    assert_eq!(ready["engine"], "the engine did not answer within 3 s");
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "readiness took {:?}",
        asked.elapsed()
    );
    held.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followed_logs_include_instances_started_later() {
    let server = Server::start("logsfollow").await;
    server.create_app("web", 1, json!({})).await;
    server.wait_rollout("web", Duration::from_secs(60)).await;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let response = http
        .get(format!("{}/api/v1/apps/web/logs?follow=true", server.url))
        .bearer_auth(&server.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; charset=utf-8"
    );
    let body = response.bytes_stream();
    server
        .post("/api/v1/apps/web/scale", json!({"replicas": 2}))
        .await;
    let (found, seen) = read_until(body, &["web-1 | listening on", "web-2 | listening on"]).await;
    assert!(found, "log stream so far:\n{seen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_stream_live_over_sse() {
    let server = Server::start("sse").await;
    server.create_app("web", 1, json!({})).await;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let response = http
        .get(format!("{}/api/v1/apps/web/events/stream", server.url))
        .bearer_auth(&server.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let body = response.bytes_stream();
    server
        .post("/api/v1/apps/web/scale", json!({"replicas": 2}))
        .await;
    let (found, seen) = read_until(body, &["event: scaled", "scaled from 1 to 2 instances"]).await;
    assert!(found, "stream so far:\n{seen}");
    // Only new events: the stream started after app_created.
    assert!(!seen.contains("event: app_created"), "{seen}");
    let (status, _) = server
        .call(Method::GET, "/api/v1/apps/nope/events/stream", None)
        .await;
    assert_eq!(status, 404);
}

/// Reads a streamed response until every needle has appeared (or 30 s pass); returns whether
/// they all did and what was read.
async fn read_until<B: AsRef<[u8]>>(
    mut body: impl futures::Stream<Item = reqwest::Result<B>> + Unpin,
    needles: &[&str],
) -> (bool, String) {
    use futures::StreamExt;
    let mut seen = String::new();
    let found = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(chunk) = body.next().await {
            seen.push_str(&String::from_utf8_lossy(chunk.unwrap().as_ref()));
            if needles.iter().all(|n| seen.contains(n)) {
                return true;
            }
        }
        false
    })
    .await;
    (found == Ok(true), seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apps_list_in_pages_and_only_admins_see_the_workers() {
    let server = Server::start("pages").await;
    let names = ["e-app", "a-app", "d-app", "b-app", "c-app"];
    for name in names {
        server.create_app(name, 0, json!({})).await;
    }
    let pat = server.register("pat", Some("pats")).await;
    let (status, body) = server
        .call_as(
            &pat,
            Method::POST,
            "/api/v1/apps",
            Some(json!({"name": "p-app", "image": berth_testkit::TESTAPP_IMAGE, "replicas": 0, "cpu_millis": 100, "memory_bytes": 67108864})),
        )
        .await;
    assert_eq!(status, 201, "{body}");

    // Following the `Link` header page by page lists every app once, in name order.
    let http = reqwest::Client::new();
    let mut next = Some("/api/v1/apps?limit=2".to_string());
    let mut pages = Vec::new();
    while let Some(path) = next.take() {
        let response = http
            .get(format!("{}{path}", server.url))
            .bearer_auth(&server.token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        next = response
            .headers()
            .get("link")
            .map(|link| link.to_str().unwrap().to_string())
            .map(|link| {
                let (target, rel) = link.split_once("; ").expect("link with rel");
                assert_eq!(rel, "rel=\"next\"");
                target.trim_matches(['<', '>']).to_string()
            });
        let page: Vec<String> = response
            .json::<Vec<Value>>()
            .await
            .unwrap()
            .iter()
            .map(|app| app["name"].as_str().unwrap().to_string())
            .collect();
        assert!(page.len() <= 2, "{path}: {page:?}");
        pages.push(page);
    }
    let listed: Vec<String> = pages.concat();
    assert_eq!(
        listed,
        ["a-app", "b-app", "c-app", "d-app", "e-app", "p-app"],
        "{pages:?}"
    );
    // Without a limit: everything the caller may read, and nothing else.
    let all = server.get("/api/v1/apps").await;
    assert_eq!(all.as_array().unwrap().len(), 6, "{all}");
    let (status, theirs) = server
        .call_as(&pat, Method::GET, "/api/v1/apps", None)
        .await;
    assert_eq!(status, 200);
    let theirs: Vec<&str> = theirs
        .as_array()
        .unwrap()
        .iter()
        .map(|app| app["name"].as_str().unwrap())
        .collect();
    assert_eq!(theirs, ["p-app"]);
    for bad in ["limit=0", "limit=1001", "limit=x", "page=2"] {
        let (status, body) = server
            .call(Method::GET, &format!("/api/v1/apps?{bad}"), None)
            .await;
        assert_eq!(status, 400, "{bad}: {body}");
    }

    // The server's background workers, for admins only.
    let workers = server.get("/api/v1/system/workers").await;
    let mut seen: Vec<&str> = workers
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["name"].as_str().unwrap())
        .collect();
    seen.sort_unstable();
    assert_eq!(
        seen,
        [
            "build-image-prune",
            "builds",
            "cleanup",
            "connection-observer",
            "metrics-recorder",
            "node-sampler",
            "registry-gc",
            "registry-upload-expiry",
            "router-table",
            "usage-sampler",
            "volume-keeper"
        ],
        "{workers}"
    );
    let periodic = [
        "build-image-prune",
        "cleanup",
        "metrics-recorder",
        "registry-gc",
        "registry-upload-expiry",
        "volume-keeper",
    ];
    for worker in workers.as_array().unwrap() {
        let name = worker["name"].as_str().unwrap();
        assert_eq!(worker["failures"], 0, "{worker}");
        if [
            "usage-sampler",
            "router-table",
            "node-sampler",
            "metrics-recorder",
            "connection-observer",
            "volume-keeper",
        ]
        .contains(&name)
        {
            // Rounds every few seconds: idle between rounds, busy during one.
            let state = worker["state"].as_str().unwrap();
            assert!(["idle", "busy"].contains(&state), "{worker}");
        } else {
            assert_eq!(worker["state"], "idle", "{worker}");
        }
        if periodic.contains(&name) {
            assert!(worker["next_run_at"].as_i64().is_some(), "{worker}");
        }
    }
    let (status, body) = server
        .call_as(&pat, Method::GET, "/api/v1/system/workers", None)
        .await;
    assert_eq!(status, 403, "{body}");
}
