//! End-to-end: custom domains on the real binary. An app created with `--domain` answers there
//! through the router (curl, as the README does), path prefixes route to the app that claims
//! them, a domain belongs to one app (409, naming the owner only to those who may see it),
//! hostile domains are refused with a 400 naming the field, a team cannot claim another team's
//! part of the apps domain nor a domain reserved for another team, a change of domains moves
//! traffic without a new revision, and an internal app has no external route.

mod support;

use std::process::Command;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use support::{Server, assert_refused, wait_until};

/// `GET path` through the router with `Host: host`: status and body.
async fn through_router(server: &Server, host: &str, path: &str) -> (u16, String) {
    let response = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("http://127.0.0.1:{}{path}", server.router_port))
        .header(reqwest::header::HOST, host)
        .send()
        .await
        .unwrap_or_else(|e| panic!("router request: {e}\n{}", server.log()));
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

/// Which app answered `GET path` on `host` (the test app's `app` field), or the status.
async fn who_answers(server: &Server, host: &str, path: &str) -> Result<String, u16> {
    let (status, body) = through_router(server, host, path).await;
    if status != 200 {
        return Err(status);
    }
    let answer: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    Ok(answer["app"].as_str().unwrap_or_default().to_string())
}

/// Waits until `GET path` on `host` is answered by `app` (the table follows the apps within
/// about a second).
async fn wait_answer(server: &Server, host: &str, path: &str, app: &str) {
    wait_until(
        &format!("{host}{path} answered by {app}"),
        Duration::from_secs(30),
        || async { who_answers(server, host, path).await.as_deref() == Ok(app) },
    )
    .await;
}

/// Limits every registered team's quota asks for.
fn limits(extra: Value) -> Value {
    let mut body = json!({"image": berth_testkit::TESTAPP_IMAGE, "replicas": 1,
        "health_path": "/healthz", "cpu_millis": 100, "memory_bytes": 64 << 20});
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    body
}

async fn create_as(server: &Server, token: &str, body: Value) -> (u16, Value) {
    server
        .call_as(token, Method::POST, "/api/v1/apps", Some(limits(body)))
        .await
}

async fn deploy_as(server: &Server, token: &str, app: &str, body: Value) -> (u16, Value) {
    server
        .call_as(
            token,
            Method::POST,
            &format!("/api/v1/apps/{app}/deploy"),
            Some(body),
        )
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn custom_domains_route_to_their_app_and_belong_to_one() {
    let server = Server::start("domains").await;
    let alice = server.register("alice", Some("web")).await;
    let bob = server.register("bob", Some("ops")).await;

    // As the README: `berth apps create … --domain shop.localhost`, then curl it.
    let out = server.cli(&[
        "apps",
        "create",
        "shop",
        "--team",
        "web",
        "--image",
        berth_testkit::TESTAPP_IMAGE,
        "--health-path",
        "/healthz",
        "--cpu",
        "100m",
        "--memory",
        "64Mi",
        "--domain",
        "Shop.localhost",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let url = format!("http://shop.localhost:{}/", server.router_port);
    assert!(stdout.contains(&format!("answers at {url}")), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "answers at http://shop.web.localhost:{}/",
            server.router_port
        )),
        "{stdout}"
    );
    server.wait_rollout("shop", Duration::from_secs(120)).await;
    wait_answer(&server, "shop.localhost", "/", "shop").await;
    let curl = Command::new("curl")
        .args(["-sS", "--noproxy", "*", "--max-time", "10", &url])
        .output()
        .expect("curl");
    let body = String::from_utf8_lossy(&curl.stdout);
    assert!(body.contains(r#""app":"shop""#), "curl {url}: {body}");

    // The API shows the domains, each as a link.
    let app = server.app("shop").await;
    let domains: Vec<(String, bool, String)> = app["domains"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["domain"].as_str().unwrap().to_string(),
                d["default"].as_bool().unwrap(),
                d["url"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let port = server.router_port;
    assert_eq!(
        domains,
        [
            (
                "shop.web.localhost".to_string(),
                true,
                format!("http://shop.web.localhost:{port}/")
            ),
            (
                "shop.localhost".to_string(),
                false,
                format!("http://shop.localhost:{port}/")
            ),
        ]
    );
    assert_eq!(app["internal"], json!(false));

    // A path prefix on the same host goes to the app that claims it; the rest stays.
    let (status, answer) = create_as(
        &server,
        &alice,
        json!({"name": "api", "team": "web", "domains": ["shop.localhost/api"]}),
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    server.wait_rollout("api", Duration::from_secs(120)).await;
    wait_answer(&server, "shop.localhost", "/api/whoami", "api").await;
    for (path, app) in [
        ("/api/v1/whoami", "api"),
        ("/whoami", "shop"),
        ("/apix/whoami", "shop"),
    ] {
        assert_eq!(
            who_answers(&server, "shop.localhost", path)
                .await
                .as_deref(),
            Ok(app),
            "{path}"
        );
    }

    // A domain belongs to one app: another team is told it is taken, not by whom; the admin
    // (who may see every team) is told which app holds it.
    let (status, answer) = create_as(
        &server,
        &bob,
        json!({"name": "grab", "team": "ops", "domains": ["shop.localhost"]}),
    )
    .await;
    assert_eq!(status, 409, "{answer}");
    assert_eq!(answer["error"]["code"], json!("domain_taken"), "{answer}");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(message.contains("another team"), "{message}");
    assert!(
        !message.contains("web") && !message.contains("shop "),
        "{message}"
    );
    let (status, _) = server
        .call_as(&bob, Method::GET, "/api/v1/apps/grab", None)
        .await;
    assert_eq!(status, 404, "a refused create creates nothing");
    let (status, answer) = server
        .call(
            Method::POST,
            "/api/v1/apps",
            Some(limits(
                json!({"name": "mine", "domains": ["shop.localhost/api"]}),
            )),
        )
        .await;
    assert_eq!(status, 409, "{answer}");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(message.contains("app api of team web"), "{message}");

    // Another team's part of the apps domain, and another app's default host.
    let (status, answer) = create_as(
        &server,
        &bob,
        json!({"name": "spoof", "team": "ops", "domains": ["login.web.localhost"]}),
    )
    .await;
    assert_refused(status, &answer, 409, "team web's part");
    let (status, answer) = deploy_as(
        &server,
        &alice,
        "api",
        json!({"domains": ["shop.web.localhost"]}),
    )
    .await;
    assert_refused(status, &answer, 409, "app shop of team web");

    // Hostile domains: 400 naming the field; the app keeps what it had.
    for bad in [
        "shop.localhost:8080",
        "*.com",
        "*.localhost",
        "a.*.example.com",
        "exa mple.com",
        "example.com/../admin",
        "user@example.com",
        "[::1]",
        "10.0.0.1",
        "localhost",
        "localhost.",
    ] {
        let (status, answer) = deploy_as(&server, &alice, "api", json!({"domains": [bad]})).await;
        assert_eq!(status, 400, "{bad}: {answer}");
        assert_eq!(
            answer["error"]["field"],
            json!("domains"),
            "{bad}: {answer}"
        );
    }
    let too_many: Vec<String> = (0..33).map(|i| format!("d{i}.example.com")).collect();
    let (status, answer) = deploy_as(&server, &alice, "api", json!({ "domains": too_many })).await;
    assert_eq!(status, 400, "{answer}");
    let app = server.app("api").await;
    assert_eq!(app["domains"][1]["domain"], json!("shop.localhost/api"));
    assert_eq!(app["current_revision"], json!(1));

    // Reservations (admins only): a domain and the names under it kept for one team.
    let (status, _) = server
        .call_as(
            &alice,
            Method::PUT,
            "/api/v1/domain-reservations/corp.test",
            Some(json!({"team": "web"})),
        )
        .await;
    assert_eq!(status, 403);
    let out = server.cli(&["domains", "reserve", "corp.test", "--team", "ops"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = server.cli(&["domains", "reservations"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("corp.test"));
    let (status, answer) = deploy_as(
        &server,
        &alice,
        "api",
        json!({"domains": ["www.corp.test"]}),
    )
    .await;
    assert_refused(status, &answer, 409, "reserved for another team");
    let (status, answer) = create_as(
        &server,
        &bob,
        json!({"name": "portal", "team": "ops", "domains": ["www.corp.test"]}),
    )
    .await;
    assert_eq!(status, 201, "{answer}");

    // Changing domains moves traffic at once and makes no revision; the old domain is free.
    let out = server.cli(&["deploy", "shop", "--domain", "store.localhost"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("no new revision"), "{stdout}");
    wait_answer(&server, "store.localhost", "/", "shop").await;
    wait_until("shop.localhost/ freed", Duration::from_secs(10), || async {
        who_answers(&server, "shop.localhost", "/whoami").await == Err(404)
    })
    .await;
    assert_eq!(
        who_answers(&server, "shop.localhost", "/api/whoami")
            .await
            .as_deref(),
        Ok("api")
    );
    let app = server.app("shop").await;
    assert_eq!(app["current_revision"], json!(1));
    let events = server.events("shop").await;
    assert!(
        events.iter().any(|e| e["kind"] == json!("routes_changed")
            && e["message"].as_str().unwrap().contains("store.localhost")),
        "{events:?}"
    );
    let (status, answer) = create_as(
        &server,
        &bob,
        json!({"name": "newshop", "team": "ops", "domains": ["shop.localhost"]}),
    )
    .await;
    assert_eq!(status, 201, "the freed domain is anyone's: {answer}");

    // Deleting an app frees its domains.
    server.call(Method::DELETE, "/api/v1/apps/api", None).await;
    let (status, answer) = deploy_as(
        &server,
        &alice,
        "shop",
        json!({"domains": ["store.localhost", "shop.localhost/api"]}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_internal_app_has_no_external_route() {
    let server = Server::start("domains-internal").await;
    let alice = server.register("alice", Some("web")).await;
    let (status, answer) = create_as(
        &server,
        &alice,
        json!({"name": "db", "team": "web", "internal": true}),
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["internal"], json!(true));
    assert_eq!(answer["domains"], json!([]));
    server.wait_rollout("db", Duration::from_secs(120)).await;
    // Give the router's table time to have seen the app: its default host stays unknown.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        who_answers(&server, "db.web.localhost", "/").await,
        Err(404)
    );
    // An internal app takes no domains.
    let (status, answer) = deploy_as(
        &server,
        &alice,
        "db",
        json!({"domains": ["db.example.com"]}),
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"]["field"], json!("domains"));
    // Made external, it answers at its default host; made internal again, it stops.
    let out = server.cli(&["deploy", "db", "--external"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_answer(&server, "db.web.localhost", "/", "db").await;
    let out = server.cli(&["deploy", "db", "--internal"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_until("db unrouted", Duration::from_secs(10), || async {
        who_answers(&server, "db.web.localhost", "/").await == Err(404)
    })
    .await;
    let out = server.cli(&["apps", "show", "db"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("internal"), "{stdout}");
    assert_eq!(server.app("db").await["current_revision"], json!(1));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_router_counts_each_apps_traffic_and_logs_it_on_demand() {
    let server = Server::start("domains-traffic").await;
    let alice = server.register("alice", Some("web")).await;
    let (status, answer) = create_as(
        &server,
        &alice,
        json!({"name": "site", "team": "web", "domains": ["site.localhost"]}),
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    server.wait_rollout("site", Duration::from_secs(120)).await;
    wait_answer(&server, "site.localhost", "/", "site").await;

    // The access log is off until an admin turns it on; members may not.
    let (status, answer) = server
        .call(Method::GET, "/api/v1/system/access-log", None)
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["sample_one_in"], Value::Null);
    let (status, _) = server
        .call_as(
            &alice,
            Method::PUT,
            "/api/v1/system/access-log",
            Some(json!({"sample_one_in": 1})),
        )
        .await;
    assert_eq!(status, 403);
    let (status, answer) = server
        .call(
            Method::PUT,
            "/api/v1/system/access-log",
            Some(json!({"sample_one_in": 1})),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["sample_one_in"], json!(1));

    for _ in 0..5 {
        assert_eq!(
            who_answers(&server, "site.localhost", "/").await.as_deref(),
            Ok("site")
        );
    }
    assert_eq!(
        through_router(&server, "site.localhost", "/nothing-here")
            .await
            .0,
        404
    );

    // The app's counters: the requests by class and their latency.
    let app = server.app("site").await;
    let traffic = &app["traffic"];
    assert!(traffic["requests"].as_u64().unwrap() >= 6, "{traffic}");
    assert!(
        traffic["responses"]["2xx"].as_u64().unwrap() >= 5,
        "{traffic}"
    );
    assert_eq!(traffic["responses"]["4xx"], json!(1), "{traffic}");
    assert!(traffic["latency_p99_ms"].as_u64().is_some(), "{traffic}");
    assert!(traffic["response_bytes"].as_u64().unwrap() > 0, "{traffic}");
    assert_eq!(traffic["connect_failures"], json!(0));

    // Each request is a JSON line naming its app; nothing after the log is turned off.
    let log = server.data_dir.join("router-access.log");
    let lines = || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .map(|line| serde_json::from_str::<Value>(line).expect("a JSON line"))
            .collect::<Vec<_>>()
    };
    wait_until("six access log lines", Duration::from_secs(10), || async {
        lines().len() >= 6
    })
    .await;
    let logged = lines();
    assert!(
        logged
            .iter()
            .any(|l| l["path"] == json!("/nothing-here") && l["status"] == json!(404)),
        "{logged:?}"
    );
    assert!(
        logged.iter().all(|l| l["host"] == json!("site.localhost")),
        "{logged:?}"
    );
    server
        .call(
            Method::PUT,
            "/api/v1/system/access-log",
            Some(json!({"sample_one_in": null})),
        )
        .await;
    who_answers(&server, "site.localhost", "/").await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(lines().len(), logged.len(), "the log is off");
}
