//! End-to-end: accounts, teams, quotas, quota requests, templates and the audit log tried as
//! an attacker would — isolation between teams, roles, sessions and CSRF, tokens, disabled
//! and deleted users, weak input, password guessing, and the registry with accounts.

mod support;

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use support::{LocalImages, Server, docker_as as docker_ok, docker_with, ready_instances};

const MIB: u64 = 1024 * 1024;
const GIB: u64 = 1024 * MIB;

/// How a request proves who sends it.
#[derive(Clone, Copy)]
enum As<'a> {
    Nobody,
    /// `Authorization: Bearer`.
    Token(&'a str),
    /// The session cookie, with an `X-CSRF-Token` header when given.
    Session(&'a str, Option<&'a str>),
    /// `Authorization: Basic` (the registry's way).
    Basic(&'a str, &'a str),
}

/// An answer: status, headers, and the body as JSON (text as a JSON string otherwise).
struct Reply {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Reply {
    fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    fn message(&self) -> &str {
        self.body["error"]["message"].as_str().unwrap_or("")
    }

    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

impl std::fmt::Display for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.body)
    }
}

/// Sends one request to the server (a path under its URL: `/api/v1/...` or `/v2/...`). A
/// body that does not arrive in time (a stream answered 200) is reported, not awaited.
async fn send(
    server: &Server,
    who: As<'_>,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Reply {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let mut request = client.request(method.clone(), format!("{}{path}", server.url));
    match who {
        As::Nobody => {}
        As::Token(token) => request = request.bearer_auth(token),
        As::Session(cookie, csrf) => {
            request = request.header("cookie", format!("berth_session={cookie}"));
            if let Some(csrf) = csrf {
                request = request.header("x-csrf-token", csrf);
            }
        }
        As::Basic(user, secret) => request = request.basic_auth(user, Some(secret)),
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = match response.text().await {
        Ok(text) => serde_json::from_str(&text).unwrap_or(Value::String(text)),
        Err(e) => Value::String(format!("<body not read: {e}>")),
    };
    Reply {
        status,
        headers,
        body,
    }
}

/// An API call with a bearer token.
async fn api(
    server: &Server,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Reply {
    send(server, As::Token(token), method, path, body).await
}

/// The password `Server::register` gives `username`.
fn password(username: &str) -> String {
    format!("{username}-password-1")
}

/// An app of the test image that fits a team with the default quota (which limits CPU and
/// memory, so both must be set).
fn app_body(name: &str, replicas: u32) -> Value {
    json!({
        "name": name,
        "image": berth_testkit::TESTAPP_IMAGE,
        "replicas": replicas,
        "health_path": "/healthz",
        "cpu_millis": 100,
        "memory_bytes": 64 * MIB,
    })
}

/// Logs in with a password; returns the answer and the session cookie's value (empty when
/// none was set).
async fn login(server: &Server, username: &str, password: &str) -> (Reply, String) {
    let reply = send(
        server,
        As::Nobody,
        Method::POST,
        "/api/v1/auth/login",
        Some(json!({"username": username, "password": password})),
    )
    .await;
    let cookie = reply
        .header("set-cookie")
        .split(';')
        .next()
        .and_then(|pair| pair.trim().strip_prefix("berth_session="))
        .unwrap_or("")
        .to_string();
    (reply, cookie)
}

/// A new API token of `username`, by password.
async fn token_of(server: &Server, username: &str, password: &str) -> Reply {
    send(
        server,
        As::Nobody,
        Method::POST,
        "/api/v1/auth/token",
        Some(json!({"username": username, "password": password, "name": "e2e"})),
    )
    .await
}

/// The audit log as the first admin sees it, newest first.
async fn audit_log(server: &Server) -> Vec<Value> {
    server
        .get("/api/v1/audit?limit=500")
        .await
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The id of the newest audit record with this action, actor and outcome.
fn audit_id(log: &[Value], action: &str, actor: &str, outcome: &str) -> i64 {
    log.iter()
        .find(|e| e["action"] == action && e["actor"] == actor && e["outcome"] == outcome)
        .and_then(|e| e["id"].as_i64())
        .unwrap_or_else(|| {
            panic!(
                "no audit record {action} by {actor} ({outcome}) in:\n{}",
                serde_json::to_string_pretty(log).unwrap()
            )
        })
}

/// The names in a JSON array of objects.
fn names(list: &Value, key: &str) -> Vec<String> {
    list.as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|i| i[key].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Logs `user` in to the server's registry with its own docker config and pushes the test
/// image as `repo_tag` (e.g. `red/app:1`); returns the full image name.
fn push_testapp(
    server: &Server,
    config: &std::path::Path,
    user: &str,
    secret: &str,
    repo_tag: &str,
) -> String {
    let host = format!("127.0.0.1:{}", server.port);
    let image = format!("{host}/{repo_tag}");
    docker_ok(config, &["login", &host, "-u", user, "--password", secret]);
    docker_ok(config, &["tag", &berth_testkit::testapp_image(), &image]);
    docker_ok(config, &["push", &image]);
    image
}

/// The "how it will be tried": quota refused, requested, approved, then granted; the
/// other team sees nothing of it; the audit log tells the story with names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_story_with_isolation_and_audit() {
    let server = Server::start("acct-story").await;

    // The first admin's token works and is an admin.
    let me = server.get("/api/v1/me").await;
    assert_eq!(me["user"]["username"], "admin", "{me}");
    assert_eq!(me["user"]["is_admin"], true, "{me}");
    assert_eq!(me["auth"], "token", "{me}");

    let alice = server.register("alice", Some("red")).await;
    let bob = server.register("bob", Some("blue")).await;
    let me = api(&server, &alice, Method::GET, "/api/v1/me", None).await;
    assert_eq!(
        me.body["teams"],
        json!([{"team": "red", "role": "owner"}]),
        "{me}"
    );
    assert_eq!(me.body["user"]["is_admin"], false, "{me}");

    // An owner cannot raise their own quota; the admin lowers red's to 2 instances.
    let quota = json!({"cpu_millis": 4000, "memory_bytes": 8 * GIB, "instances": 2, "registry_bytes": 10 * GIB});
    let raised = api(
        &server,
        &alice,
        Method::PATCH,
        "/api/v1/teams/red",
        Some(json!({"quota": {"instances": 100}})),
    )
    .await;
    assert_eq!(raised.status, 403, "{raised}");
    assert_eq!(raised.code(), "forbidden", "{raised}");
    let (status, team) = server
        .call(
            Method::PATCH,
            "/api/v1/teams/red",
            Some(json!({"quota": quota})),
        )
        .await;
    assert_eq!(status, 200, "{team}");
    assert_eq!(team["quota"]["instances"], 2, "{team}");

    // Within quota: two instances run.
    let created = api(
        &server,
        &alice,
        Method::POST,
        "/api/v1/apps",
        Some(app_body("shop", 2)),
    )
    .await;
    assert_eq!(created.status, 201, "{created}");
    assert_eq!(created.body["team"], "red", "{created}");
    let app = server.wait_rollout("shop", Duration::from_secs(90)).await;
    assert_eq!(ready_instances(&app).len(), 2, "{app:#}");
    let team = api(&server, &alice, Method::GET, "/api/v1/teams/red", None).await;
    assert_eq!(team.body["usage"]["instances"], 2, "{team}");

    // A third instance is refused with the numbers.
    let refused = api(
        &server,
        &alice,
        Method::POST,
        "/api/v1/apps/shop/scale",
        Some(json!({"replicas": 3})),
    )
    .await;
    assert_eq!(refused.status, 403, "{refused}");
    assert_eq!(refused.code(), "quota_exceeded", "{refused}");
    assert!(
        refused
            .message()
            .contains("instances: asked for 1, 2 in use, limit 2"),
        "{refused}"
    );
    assert!(refused.message().contains("team red"), "{refused}");
    assert_eq!(
        refused.body["error"]["details"][0]["field"], "instances",
        "{refused}"
    );
    assert_eq!(server.app("shop").await["replicas"], 2);

    // Alice asks for more; bob cannot see the request, nor approve it; alice cannot approve
    // her own.
    let request = api(
        &server,
        &alice,
        Method::POST,
        "/api/v1/teams/red/quota-requests",
        Some(json!({"instances": 4, "reason": "launch week"})),
    )
    .await;
    assert_eq!(request.status, 201, "{request}");
    assert_eq!(request.body["status"], "pending", "{request}");
    assert_eq!(request.body["requested_by"], "alice", "{request}");
    assert_eq!(request.body["requested"]["instances"], 4, "{request}");
    assert_eq!(request.body["current"]["instances"], 2, "{request}");
    let id = request.body["id"].as_i64().expect("request id");
    let listed = api(&server, &bob, Method::GET, "/api/v1/quota-requests", None).await;
    assert_eq!(listed.status, 200, "{listed}");
    assert_eq!(listed.body, json!([]), "bob sees red's request: {listed}");
    for (method, path) in [
        (Method::GET, format!("/api/v1/quota-requests/{id}")),
        (Method::GET, "/api/v1/quota-requests?team=red".to_string()),
        (Method::POST, format!("/api/v1/quota-requests/{id}/approve")),
    ] {
        let reply = api(&server, &bob, method.clone(), &path, None).await;
        assert_eq!(reply.status, 404, "bob {method} {path}: {reply}");
    }
    let own = api(
        &server,
        &alice,
        Method::POST,
        &format!("/api/v1/quota-requests/{id}/approve"),
        None,
    )
    .await;
    assert_eq!(own.status, 403, "{own}");
    let listed = api(&server, &alice, Method::GET, "/api/v1/quota-requests", None).await;
    assert_eq!(names(&listed.body, "team"), ["red"], "{listed}");
    let admin_list = server.get("/api/v1/quota-requests?status=pending").await;
    assert_eq!(admin_list[0]["id"], id, "{admin_list}");

    // The admin approves: the quota rises at once and the same scale succeeds.
    let approved = server
        .post(
            &format!("/api/v1/quota-requests/{id}/approve"),
            json!({"comment": "ok for launch"}),
        )
        .await;
    assert_eq!(approved["status"], "approved", "{approved}");
    assert_eq!(approved["decided_by"], "admin", "{approved}");
    let team = server.get("/api/v1/teams/red").await;
    assert_eq!(team["quota"]["instances"], 4, "{team}");
    assert_eq!(
        team["quota"]["cpu_millis"], 4000,
        "other limits kept: {team}"
    );
    let again = server
        .call(
            Method::POST,
            &format!("/api/v1/quota-requests/{id}/approve"),
            None,
        )
        .await;
    assert_eq!(again.0, 409, "{}", again.1);
    let scaled = api(
        &server,
        &alice,
        Method::POST,
        "/api/v1/apps/shop/scale",
        Some(json!({"replicas": 3})),
    )
    .await;
    assert_eq!(scaled.status, 200, "{scaled}");
    server
        .wait_app(
            "shop",
            "3 ready instances",
            Duration::from_secs(90),
            |app| ready_instances(app).len() == 3,
        )
        .await;

    // Bob sees none of red's apps; every door to red's app answers as for a missing one.
    let listed = api(&server, &bob, Method::GET, "/api/v1/apps", None).await;
    assert_eq!(listed.body, json!([]), "{listed}");
    let probes: Vec<(Method, &str, Option<Value>)> = vec![
        (Method::GET, "/api/v1/apps/shop", None),
        (
            Method::POST,
            "/api/v1/apps/shop/scale",
            Some(json!({"replicas": 0})),
        ),
        (
            Method::POST,
            "/api/v1/apps/shop/deploy",
            Some(json!({"env": {"PWNED": "1"}})),
        ),
        (Method::POST, "/api/v1/apps/shop/rollback", Some(json!({}))),
        (Method::DELETE, "/api/v1/apps/shop", None),
        (Method::GET, "/api/v1/apps/shop/events", None),
        (Method::GET, "/api/v1/apps/shop/logs", None),
        (Method::GET, "/api/v1/apps/shop/revisions", None),
    ];
    for (method, path, body) in probes {
        let reply = api(&server, &bob, method.clone(), path, body).await;
        assert_eq!(reply.status, 404, "bob {method} {path}: {reply}");
        assert_eq!(reply.code(), "not_found", "bob {method} {path}: {reply}");
    }
    let missing = api(&server, &bob, Method::GET, "/api/v1/apps/nosuch", None).await;
    let hidden = api(&server, &bob, Method::GET, "/api/v1/apps/shop", None).await;
    assert_eq!(
        hidden.message().replace("shop", "X"),
        missing.message().replace("nosuch", "X"),
        "a hidden app must answer exactly like a missing one"
    );
    let app = server.app("shop").await;
    assert_eq!(app["replicas"], 3, "{app:#}");
    assert_eq!(app["current_revision"], 1, "{app:#}");

    // The audit log shows each step, in order, with the actors' names.
    let log = audit_log(&server).await;
    let create = audit_id(&log, "apps.create", "alice", "success");
    let denied = audit_id(&log, "apps.scale", "alice", "denied");
    let filed = audit_id(&log, "teams.quota-requests.create", "alice", "success");
    let approve = audit_id(&log, "quota-requests.approve", "admin", "success");
    let scale = audit_id(&log, "apps.scale", "alice", "success");
    assert!(
        create < denied && denied < filed && filed < approve && approve < scale,
        "audit order: create {create}, denied {denied}, filed {filed}, approve {approve}, scale {scale}"
    );
    let record = |id: i64| log.iter().find(|e| e["id"] == id).unwrap().clone();
    assert_eq!(record(create)["team"], "red");
    assert_eq!(record(create)["object"], "apps/shop");
    assert_eq!(record(denied)["status"], 403);
    assert!(
        record(denied)["detail"]
            .as_str()
            .unwrap_or("")
            .contains("asked for 1"),
        "{}",
        record(denied)
    );
    assert_eq!(record(filed)["object"], format!("quota-requests/{id}"));
    assert_eq!(record(approve)["team"], "red");
    // Bob's tries are on record too, refused.
    assert!(
        log.iter().any(|e| e["actor"] == "bob"
            && e["action"] == "apps.scale"
            && e["outcome"] != "success"),
        "bob's refused scale is not in the audit log"
    );

    // Alice (owner) reads red's audit; bob can neither read red's nor find red in his own.
    let alices = api(&server, &alice, Method::GET, "/api/v1/audit", None).await;
    assert_eq!(alices.status, 200, "{alices}");
    let entries = alices.body.as_array().cloned().unwrap_or_default();
    assert!(entries.iter().all(|e| e["team"] == "red"), "{alices}");
    audit_id(&entries, "apps.create", "alice", "success");
    audit_id(&entries, "quota-requests.approve", "admin", "success");
    let reds = api(&server, &bob, Method::GET, "/api/v1/audit?team=red", None).await;
    assert!(matches!(reds.status, 403 | 404), "{reds}");
    let bobs = api(&server, &bob, Method::GET, "/api/v1/audit?limit=500", None).await;
    assert_eq!(bobs.status, 200, "{bobs}");
    assert!(
        bobs.body
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["team"] != "red" && e["object"] != "apps/shop"),
        "bob reads red's audit records: {bobs}"
    );
}

/// Requests sent at once cannot overshoot a quota together: the check and the change must be
/// one step, not a read then a write that parallel requests interleave. Interleaving is up to
/// the scheduler, so the burst is tried a few times; the apps' image cannot be pulled, so no
/// container starts however many are admitted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_requests_cannot_overshoot_the_quota() {
    let server = Server::start("acct-race").await;
    let alice = server.register("alice", Some("red")).await;
    let mut overshoots = Vec::new();
    for round in 0..8 {
        let team = server.get("/api/v1/teams/red").await;
        let in_use = team["usage"]["instances"].as_u64().unwrap();
        let limit = in_use + 2;
        let quota = json!({"quota": {"instances": limit}});
        let (status, team) = server
            .call(Method::PATCH, "/api/v1/teams/red", Some(quota))
            .await;
        assert_eq!(status, 200, "{team}");
        // Twenty one-instance apps at once, two instances left.
        let burst = (0..20).map(|i| {
            let (server, alice) = (&server, &alice);
            async move {
                let mut body = app_body(&format!("burst-{round}-{i}"), 1);
                body["image"] = json!("127.0.0.1:9/berth-test/absent:1");
                api(server, alice, Method::POST, "/api/v1/apps", Some(body)).await
            }
        });
        let replies = futures::future::join_all(burst).await;
        for reply in replies.iter().filter(|r| r.status != 201) {
            assert_eq!(reply.code(), "quota_exceeded", "{reply}");
        }
        let admitted = replies.iter().filter(|r| r.status == 201).count();
        assert!(admitted >= 1, "round {round}: none of 20 admitted");
        let team = server.get("/api/v1/teams/red").await;
        let now = team["usage"]["instances"].as_u64().unwrap();
        if admitted > 2 || now > limit {
            overshoots.push(format!(
                "round {round}: {admitted} of 20 admitted with 2 instances left; red uses {now} of {limit}"
            ));
        }
    }
    assert!(
        overshoots.is_empty(),
        "quota overshot:\n{}",
        overshoots.join("\n")
    );
}

/// Every route naming one of red's objects, tried by bob of team blue: none answers 2xx, each
/// answers 404 (403 for admin-only routes), and red's state is as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_team_cannot_touch_any_red_object() {
    let server = Server::start("acct-isolation").await;
    let alice = server.register("alice", Some("red")).await;
    let bob = server.register("bob", Some("blue")).await;

    // Red's objects: an app with two revisions, an image with a retention rule, a template,
    // a pending quota request.
    let created = api(
        &server,
        &alice,
        Method::POST,
        "/api/v1/apps",
        Some(app_body("shop", 1)),
    )
    .await;
    assert_eq!(created.status, 201, "{created}");
    let deployed = api(
        &server,
        &alice,
        Method::POST,
        "/api/v1/apps/shop/deploy",
        Some(json!({"env": {"COLOR": "red"}})),
    )
    .await;
    assert_eq!(deployed.status, 200, "{deployed}");
    let config = tempfile::tempdir().unwrap();
    let image = push_testapp(
        &server,
        config.path(),
        "alice",
        &password("alice"),
        "red/app:1",
    );
    let _cleanup = LocalImages(vec![image.clone()]);
    let rule = api(
        &server,
        &alice,
        Method::PUT,
        "/api/v1/registry/retention-rules/red/app",
        Some(json!({"keep_newest_tags": 5})),
    )
    .await;
    assert_eq!(rule.status, 200, "{rule}");
    let template = json!({
        "description": "red's web shape",
        "params": [{"name": "name", "kind": "name"}],
        "body": {"name": "${name}", "image": berth_testkit::TESTAPP_IMAGE, "cpu_millis": 100, "memory_bytes": 64 * MIB, "health_path": "/healthz"},
    });
    let saved = api(
        &server,
        &alice,
        Method::PUT,
        "/api/v1/templates/red/web",
        Some(template),
    )
    .await;
    assert_eq!(saved.status, 201, "{saved}");
    let request = api(
        &server,
        &alice,
        Method::POST,
        "/api/v1/teams/red/quota-requests",
        Some(json!({"instances": 30, "reason": "growth"})),
    )
    .await;
    assert_eq!(request.status, 201, "{request}");
    let id = request.body["id"].as_i64().unwrap();
    let before_app = server.app("shop").await;
    let before_team = server.get("/api/v1/teams/red").await;

    let image_body = json!({"name": "intruder", "image": berth_testkit::TESTAPP_IMAGE, "cpu_millis": 100, "memory_bytes": 64 * MIB});
    let qr = |tail: &str| format!("/api/v1/quota-requests/{id}{tail}");
    // (method, path, body, expected status)
    let table: Vec<(Method, String, Option<Value>, u16)> = vec![
        // Apps.
        (Method::GET, "/api/v1/apps/shop".into(), None, 404),
        (Method::DELETE, "/api/v1/apps/shop".into(), None, 404),
        (
            Method::POST,
            "/api/v1/apps/shop/deploy".into(),
            Some(json!({"image": "evil/miner:1"})),
            404,
        ),
        (
            Method::POST,
            "/api/v1/apps/shop/scale".into(),
            Some(json!({"replicas": 0})),
            404,
        ),
        (
            Method::POST,
            "/api/v1/apps/shop/rollback".into(),
            Some(json!({"revision": 1})),
            404,
        ),
        (Method::POST, "/api/v1/apps/shop/rollback".into(), None, 404),
        (Method::GET, "/api/v1/apps/shop/rollout".into(), None, 404),
        (Method::GET, "/api/v1/apps/shop/revisions".into(), None, 404),
        (
            Method::GET,
            "/api/v1/apps/shop/revisions/1".into(),
            None,
            404,
        ),
        (Method::GET, "/api/v1/apps/shop/events".into(), None, 404),
        (
            Method::GET,
            "/api/v1/apps/shop/events/stream".into(),
            None,
            404,
        ),
        (Method::GET, "/api/v1/apps/shop/logs".into(), None, 404),
        (
            Method::POST,
            "/api/v1/apps".into(),
            Some({
                let mut body = image_body.clone();
                body["team"] = json!("red");
                body
            }),
            404,
        ),
        // Images and the registry's management routes.
        (Method::GET, "/api/v1/images/red/app".into(), None, 404),
        (Method::GET, "/api/v1/images/red/app:1".into(), None, 404),
        (Method::DELETE, "/api/v1/images/red/app:1".into(), None, 404),
        (
            Method::POST,
            "/api/v1/registry/retention".into(),
            Some(json!({"repository": "red/app", "keep_newest_tags": 0})),
            404,
        ),
        (
            Method::PUT,
            "/api/v1/registry/retention-rules/red/app".into(),
            Some(json!({"keep_newest_tags": 1})),
            404,
        ),
        (
            Method::DELETE,
            "/api/v1/registry/retention-rules/red/app".into(),
            None,
            404,
        ),
        // The team and its members.
        (Method::GET, "/api/v1/teams/red".into(), None, 404),
        (
            Method::PATCH,
            "/api/v1/teams/red".into(),
            Some(json!({"display_name": "pwned"})),
            404,
        ),
        (
            Method::PATCH,
            "/api/v1/teams/red".into(),
            Some(json!({"quota": {}})),
            404,
        ),
        (Method::DELETE, "/api/v1/teams/red".into(), None, 404),
        (Method::GET, "/api/v1/teams/red/members".into(), None, 404),
        (
            Method::PUT,
            "/api/v1/teams/red/members/bob".into(),
            Some(json!({"role": "owner"})),
            404,
        ),
        (
            Method::PUT,
            "/api/v1/teams/red/members/alice".into(),
            Some(json!({"role": "viewer"})),
            404,
        ),
        (
            Method::DELETE,
            "/api/v1/teams/red/members/alice".into(),
            None,
            404,
        ),
        // Quota requests.
        (
            Method::POST,
            "/api/v1/teams/red/quota-requests".into(),
            Some(json!({"instances": 1000, "reason": "mine now"})),
            404,
        ),
        (
            Method::GET,
            "/api/v1/quota-requests?team=red".into(),
            None,
            404,
        ),
        (Method::GET, qr(""), None, 404),
        (Method::POST, qr("/approve"), Some(json!({})), 404),
        (
            Method::POST,
            qr("/reject"),
            Some(json!({"comment": "no"})),
            404,
        ),
        // Templates.
        (Method::GET, "/api/v1/templates?team=red".into(), None, 404),
        (Method::GET, "/api/v1/templates/red/web".into(), None, 404),
        (
            Method::PUT,
            "/api/v1/templates/red/web".into(),
            Some(
                json!({"params": [{"name": "name", "kind": "name"}], "body": {"name": "${name}", "image": "evil/miner:1"}}),
            ),
            404,
        ),
        (
            Method::DELETE,
            "/api/v1/templates/red/web".into(),
            None,
            404,
        ),
        (
            Method::POST,
            "/api/v1/templates/red/web/apps".into(),
            Some(json!({"team": "blue", "values": {"name": "stolen"}})),
            404,
        ),
        (
            Method::POST,
            "/api/v1/templates/builtin/worker/apps".into(),
            Some(
                json!({"team": "red", "values": {"name": "planted", "image": berth_testkit::TESTAPP_IMAGE}}),
            ),
            404,
        ),
        // The audit log.
        (Method::GET, "/api/v1/audit?team=red".into(), None, 404),
        // Users and settings are the admins' (403 by contract).
        (Method::GET, "/api/v1/users".into(), None, 403),
        (Method::GET, "/api/v1/users/alice".into(), None, 403),
        (
            Method::PATCH,
            "/api/v1/users/alice".into(),
            Some(json!({"email": "bob@evil.example"})),
            403,
        ),
        (
            Method::PATCH,
            "/api/v1/users/bob".into(),
            Some(json!({"is_admin": true})),
            403,
        ),
        (
            Method::POST,
            "/api/v1/users/alice/disable".into(),
            None,
            403,
        ),
        (Method::DELETE, "/api/v1/users/alice".into(), None, 403),
        (
            Method::PUT,
            "/api/v1/settings".into(),
            Some(json!({"registration_open": false})),
            403,
        ),
    ];
    let mut wrong = Vec::new();
    for (method, path, body, want) in &table {
        let reply = api(&server, &bob, method.clone(), path, body.clone()).await;
        if reply.status != *want {
            wrong.push(format!("{method} {path}: want {want}, got {reply}"));
        }
    }
    // Lists show nothing of red's.
    let lists: [(&str, &str); 6] = [
        ("/api/v1/apps", "name"),
        ("/api/v1/images", "name"),
        ("/api/v1/teams", "name"),
        ("/api/v1/quota-requests", "team"),
        ("/api/v1/templates", "team"),
        ("/api/v1/registry/retention-rules", "repository"),
    ];
    for (path, key) in lists {
        let reply = api(&server, &bob, Method::GET, path, None).await;
        let found = names(&reply.body, key);
        if reply.status != 200 || found.iter().any(|n| n == "shop" || n.starts_with("red")) {
            wrong.push(format!("GET {path} shows red's objects: {reply}"));
        }
    }
    let usage = api(&server, &bob, Method::GET, "/api/v1/registry/usage", None).await;
    if names(&usage.body["teams"], "name")
        .iter()
        .any(|t| t == "red")
        || names(&usage.body["repositories"], "name")
            .iter()
            .any(|r| r.starts_with("red/"))
    {
        wrong.push(format!("GET /api/v1/registry/usage shows red: {usage}"));
    }
    // The registry itself: bob's token finds no red repository and can push nothing there.
    let catalog = send(
        &server,
        As::Basic("bob", &bob),
        Method::GET,
        "/v2/_catalog",
        None,
    )
    .await;
    if catalog.status != 200 || catalog.body.to_string().contains("red/") {
        wrong.push(format!("registry catalog for bob: {catalog}"));
    }
    for (method, path) in [
        (Method::GET, "/v2/red/app/tags/list"),
        (Method::GET, "/v2/red/app/manifests/1"),
    ] {
        let reply = send(&server, As::Basic("bob", &bob), method.clone(), path, None).await;
        if reply.status != 404 || !reply.body.to_string().contains("NAME_UNKNOWN") {
            wrong.push(format!("registry {method} {path} for bob: {reply}"));
        }
    }
    for (method, path) in [
        (Method::POST, "/v2/red/app/blobs/uploads/"),
        (Method::DELETE, "/v2/red/app/manifests/1"),
    ] {
        let reply = send(&server, As::Basic("bob", &bob), method.clone(), path, None).await;
        if (200..300).contains(&reply.status) || !reply.body.to_string().contains("DENIED") {
            wrong.push(format!("registry {method} {path} for bob: {reply}"));
        }
    }
    assert!(wrong.is_empty(), "bob reached red:\n{}", wrong.join("\n"));

    // Red is exactly as before.
    let after_app = server.app("shop").await;
    for key in [
        "team",
        "replicas",
        "current_revision",
        "latest_revision",
        "template",
    ] {
        assert_eq!(after_app[key], before_app[key], "app shop {key} changed");
    }
    let after_team = server.get("/api/v1/teams/red").await;
    assert_eq!(after_team["quota"], before_team["quota"]);
    assert_eq!(after_team["display_name"], before_team["display_name"]);
    let members = server.get("/api/v1/teams/red/members").await;
    assert_eq!(names(&members, "username"), ["alice"], "{members}");
    assert_eq!(members[0]["role"], "owner");
    assert_eq!(server.get(&qr("")).await["status"], "pending");
    server.get("/api/v1/templates/red/web").await;
    server.get("/api/v1/images/red/app:1").await;
    let rules = server.get("/api/v1/registry/retention-rules").await;
    assert_eq!(names(&rules, "repository"), ["red/app"], "{rules}");
    assert_eq!(rules[0]["keep_newest_tags"], 5, "{rules}");
    let apps = server.get("/api/v1/apps").await;
    assert_eq!(names(&apps, "name"), ["shop"], "{apps}");
}

/// A viewer reads the team's app and nothing more; role changes and removal act at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_reads_but_changes_nothing() {
    let server = Server::start("acct-viewer").await;
    let alice = server.register("alice", Some("red")).await;
    let carol = server.register("carol", None).await;
    let created = api(
        &server,
        &alice,
        Method::POST,
        "/api/v1/apps",
        Some(app_body("shop", 1)),
    )
    .await;
    assert_eq!(created.status, 201, "{created}");
    let deployed = api(
        &server,
        &alice,
        Method::POST,
        "/api/v1/apps/shop/deploy",
        Some(json!({"env": {"COLOR": "red"}})),
    )
    .await;
    assert_eq!(deployed.status, 200, "{deployed}");
    let template = json!({
        "params": [{"name": "name", "kind": "name"}],
        "body": {"name": "${name}", "image": berth_testkit::TESTAPP_IMAGE, "cpu_millis": 100, "memory_bytes": 64 * MIB},
    });
    let saved = api(
        &server,
        &alice,
        Method::PUT,
        "/api/v1/templates/red/web",
        Some(template.clone()),
    )
    .await;
    assert_eq!(saved.status, 201, "{saved}");

    // Before being added, carol sees nothing.
    let hidden = api(&server, &carol, Method::GET, "/api/v1/apps/shop", None).await;
    assert_eq!(hidden.status, 404, "{hidden}");
    // Carol cannot add herself.
    let herself = api(
        &server,
        &carol,
        Method::PUT,
        "/api/v1/teams/red/members/carol",
        Some(json!({"role": "owner"})),
    )
    .await;
    assert_eq!(herself.status, 404, "{herself}");
    let added = api(
        &server,
        &alice,
        Method::PUT,
        "/api/v1/teams/red/members/carol",
        Some(json!({"role": "viewer"})),
    )
    .await;
    assert_eq!(added.status, 200, "{added}");
    assert_eq!(added.body["role"], "viewer", "{added}");

    // Reads work.
    for path in [
        "/api/v1/apps/shop",
        "/api/v1/apps/shop/revisions",
        "/api/v1/apps/shop/events",
        "/api/v1/teams/red",
        "/api/v1/teams/red/members",
        "/api/v1/templates/red/web",
    ] {
        let reply = api(&server, &carol, Method::GET, path, None).await;
        assert_eq!(reply.status, 200, "carol GET {path}: {reply}");
    }
    let team = api(&server, &carol, Method::GET, "/api/v1/teams/red", None).await;
    assert_eq!(team.body["role"], "viewer", "{team}");
    let apps = api(&server, &carol, Method::GET, "/api/v1/apps", None).await;
    assert_eq!(names(&apps.body, "name"), ["shop"], "{apps}");

    // Every change is 403 forbidden, naming her role.
    let before = server.app("shop").await;
    let changes: Vec<(Method, &str, Option<Value>)> = vec![
        (
            Method::POST,
            "/api/v1/apps/shop/deploy",
            Some(json!({"env": {"COLOR": "blue"}})),
        ),
        (
            Method::POST,
            "/api/v1/apps/shop/scale",
            Some(json!({"replicas": 2})),
        ),
        (Method::POST, "/api/v1/apps/shop/rollback", Some(json!({}))),
        (Method::DELETE, "/api/v1/apps/shop", None),
        (
            Method::POST,
            "/api/v1/apps",
            Some({
                let mut body = app_body("sneaky", 1);
                body["team"] = json!("red");
                body
            }),
        ),
        (
            Method::PUT,
            "/api/v1/templates/red/web",
            Some(template.clone()),
        ),
        (
            Method::PUT,
            "/api/v1/templates/red/other",
            Some(template.clone()),
        ),
        (Method::DELETE, "/api/v1/templates/red/web", None),
        (
            Method::POST,
            "/api/v1/templates/red/web/apps",
            Some(json!({"team": "red", "values": {"name": "sneaky"}})),
        ),
        (
            Method::POST,
            "/api/v1/teams/red/quota-requests",
            Some(json!({"instances": 40, "reason": "more"})),
        ),
        (
            Method::PUT,
            "/api/v1/teams/red/members/carol",
            Some(json!({"role": "owner"})),
        ),
        (Method::DELETE, "/api/v1/teams/red/members/alice", None),
        (
            Method::PATCH,
            "/api/v1/teams/red",
            Some(json!({"display_name": "carol's"})),
        ),
        (Method::DELETE, "/api/v1/images/red/app:1", None),
        (
            Method::PUT,
            "/api/v1/registry/retention-rules/red/app",
            Some(json!({"keep_newest_tags": 1})),
        ),
    ];
    let mut wrong = Vec::new();
    for (method, path, body) in changes {
        let reply = api(&server, &carol, method.clone(), path, body).await;
        if reply.status != 403 || reply.code() != "forbidden" || !reply.message().contains("viewer")
        {
            wrong.push(format!("carol {method} {path}: {reply}"));
        }
    }
    // The audit log is for owners.
    let audit = api(&server, &carol, Method::GET, "/api/v1/audit?team=red", None).await;
    if audit.status != 403 {
        wrong.push(format!("carol GET /audit?team=red: {audit}"));
    }
    assert!(
        wrong.is_empty(),
        "a viewer changed things:\n{}",
        wrong.join("\n")
    );
    let after = server.app("shop").await;
    for key in [
        "replicas",
        "current_revision",
        "latest_revision",
        "template",
    ] {
        assert_eq!(after[key], before[key], "app shop {key} changed");
    }
    let templates = server.get("/api/v1/templates?team=red").await;
    assert_eq!(names(&templates, "name"), ["web"], "{templates}");
    let members = server.get("/api/v1/teams/red/members").await;
    let roles: Vec<(String, String)> = members
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["username"].as_str().unwrap().into(),
                m["role"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        roles,
        [
            ("alice".to_string(), "owner".to_string()),
            ("carol".into(), "viewer".into())
        ]
    );
    assert_eq!(
        server.get("/api/v1/apps").await.as_array().unwrap().len(),
        1
    );

    // Promoted to member, she may scale at once; removed, she sees nothing at once.
    let promoted = api(
        &server,
        &alice,
        Method::PUT,
        "/api/v1/teams/red/members/carol",
        Some(json!({"role": "member"})),
    )
    .await;
    assert_eq!(promoted.status, 200, "{promoted}");
    let scaled = api(
        &server,
        &carol,
        Method::POST,
        "/api/v1/apps/shop/scale",
        Some(json!({"replicas": 0})),
    )
    .await;
    assert_eq!(scaled.status, 200, "{scaled}");
    let removed = api(
        &server,
        &alice,
        Method::DELETE,
        "/api/v1/teams/red/members/carol",
        None,
    )
    .await;
    assert_eq!(removed.status, 204, "{removed}");
    let gone = api(&server, &carol, Method::GET, "/api/v1/apps/shop", None).await;
    assert_eq!(gone.status, 404, "{gone}");
    // The last owner cannot be removed or demoted.
    let last = api(
        &server,
        &alice,
        Method::PUT,
        "/api/v1/teams/red/members/alice",
        Some(json!({"role": "viewer"})),
    )
    .await;
    assert_eq!(last.status, 409, "{last}");
    assert_eq!(last.code(), "last_owner", "{last}");
    // Deleting a team is the admins' business, even for its owner.
    let deleted = api(&server, &alice, Method::DELETE, "/api/v1/teams/red", None).await;
    assert_eq!(deleted.status, 403, "{deleted}");
    assert_eq!(deleted.code(), "forbidden", "{deleted}");
}

/// Browser sessions: an HttpOnly, SameSite=Strict cookie; changes need the CSRF token; logout
/// and password changes end sessions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_need_csrf_and_end_on_logout() {
    let server = Server::start("acct-session").await;
    server.register("alice", Some("red")).await;

    // Wrong password and unknown user answer alike.
    let (wrong, cookie) = login(&server, "alice", "not-her-password").await;
    assert_eq!(wrong.status, 401, "{wrong}");
    assert_eq!(wrong.code(), "invalid_credentials");
    assert!(cookie.is_empty(), "a failed login set a cookie");
    let (unknown, _) = login(&server, "nobody-here", "not-her-password").await;
    assert_eq!(unknown.status, 401, "{unknown}");
    assert_eq!(
        unknown.body, wrong.body,
        "unknown users must look like wrong passwords"
    );

    let (reply, session) = login(&server, "alice", &password("alice")).await;
    assert_eq!(reply.status, 200, "{reply}");
    assert!(
        !session.is_empty(),
        "no berth_session cookie: {:?}",
        reply.headers
    );
    let set_cookie = reply.header("set-cookie").to_string();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(
            set_cookie.split(';').any(|a| a.trim() == attribute),
            "cookie lacks {attribute}: {set_cookie}"
        );
    }
    assert!(
        !set_cookie.contains("Secure"),
        "plain http on loopback: {set_cookie}"
    );
    assert_eq!(reply.body["user"]["username"], "alice");
    let csrf = reply.body["csrf_token"]
        .as_str()
        .expect("csrf_token")
        .to_string();
    assert!(!csrf.is_empty());
    assert!(reply.body["expires_at"].as_i64().is_some(), "{reply}");

    // The cookie alone reads.
    let me = send(
        &server,
        As::Session(&session, None),
        Method::GET,
        "/api/v1/me",
        None,
    )
    .await;
    assert_eq!(me.status, 200, "{me}");
    assert_eq!(me.body["user"]["username"], "alice");
    assert_eq!(me.body["auth"], "session");
    assert_eq!(me.body["csrf_token"], csrf.as_str());
    let apps = send(
        &server,
        As::Session(&session, None),
        Method::GET,
        "/api/v1/apps",
        None,
    )
    .await;
    assert_eq!(apps.status, 200, "{apps}");

    // A change with the cookie but without (or with a wrong) CSRF token is refused.
    let new_token = json!({"name": "from-browser"});
    for header in [None, Some("wrong-token"), Some("")] {
        let reply = send(
            &server,
            As::Session(&session, header),
            Method::POST,
            "/api/v1/me/tokens",
            Some(new_token.clone()),
        )
        .await;
        assert_eq!(reply.status, 403, "csrf {header:?}: {reply}");
        assert_eq!(reply.code(), "csrf_failed", "{reply}");
    }
    let create = send(
        &server,
        As::Session(&session, None),
        Method::POST,
        "/api/v1/apps",
        Some(app_body("forged", 1)),
    )
    .await;
    assert_eq!(create.status, 403, "{create}");
    assert_eq!(create.code(), "csrf_failed", "{create}");
    let tokens = send(
        &server,
        As::Session(&session, None),
        Method::GET,
        "/api/v1/me/tokens",
        None,
    )
    .await;
    assert!(
        !names(&tokens.body, "name").contains(&"from-browser".to_string()),
        "a forged request made a token: {tokens}"
    );
    assert_eq!(server.get("/api/v1/apps").await, json!([]));
    // With it, the change goes through.
    let made = send(
        &server,
        As::Session(&session, Some(&csrf)),
        Method::POST,
        "/api/v1/me/tokens",
        Some(new_token.clone()),
    )
    .await;
    assert_eq!(made.status, 201, "{made}");
    // Another session's CSRF token does not fit this session.
    let (_, other_session) = login(&server, "alice", &password("alice")).await;
    let other = send(
        &server,
        As::Session(&other_session, None),
        Method::GET,
        "/api/v1/me",
        None,
    )
    .await;
    let other_csrf = other.body["csrf_token"].as_str().unwrap().to_string();
    assert_ne!(other_csrf, csrf);
    let crossed = send(
        &server,
        As::Session(&session, Some(&other_csrf)),
        Method::PATCH,
        "/api/v1/me",
        Some(json!({"display_name": "Crossed"})),
    )
    .await;
    assert_eq!(crossed.status, 403, "{crossed}");
    assert_eq!(crossed.code(), "csrf_failed", "{crossed}");

    // A password change ends every other session, not this one.
    let changed = send(
        &server,
        As::Session(&session, Some(&csrf)),
        Method::POST,
        "/api/v1/me/password",
        Some(json!({"current_password": password("alice"), "new_password": "alice-password-2"})),
    )
    .await;
    assert_eq!(changed.status, 204, "{changed}");
    let other = send(
        &server,
        As::Session(&other_session, None),
        Method::GET,
        "/api/v1/me",
        None,
    )
    .await;
    assert_eq!(other.status, 401, "{other}");
    let still = send(
        &server,
        As::Session(&session, None),
        Method::GET,
        "/api/v1/me",
        None,
    )
    .await;
    assert_eq!(still.status, 200, "{still}");
    let (old, _) = login(&server, "alice", &password("alice")).await;
    assert_eq!(old.status, 401, "the old password still works: {old}");

    // Logout needs the CSRF token too, then ends the session and clears the cookie.
    let forged = send(
        &server,
        As::Session(&session, None),
        Method::POST,
        "/api/v1/auth/logout",
        None,
    )
    .await;
    assert_eq!(forged.status, 403, "{forged}");
    let out = send(
        &server,
        As::Session(&session, Some(&csrf)),
        Method::POST,
        "/api/v1/auth/logout",
        None,
    )
    .await;
    assert_eq!(out.status, 204, "{out}");
    let cleared = out.header("set-cookie");
    assert!(
        cleared.starts_with("berth_session=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
    let after = send(
        &server,
        As::Session(&session, None),
        Method::GET,
        "/api/v1/me",
        None,
    )
    .await;
    assert_eq!(after.status, 401, "{after}");
    assert_eq!(after.code(), "unauthorized", "{after}");
    let after = send(
        &server,
        As::Session(&session, Some(&csrf)),
        Method::POST,
        "/api/v1/me/tokens",
        Some(new_token),
    )
    .await;
    assert_eq!(after.status, 401, "{after}");
    // No cookie at all, or a made-up one: 401.
    let none = send(&server, As::Nobody, Method::GET, "/api/v1/me", None).await;
    assert_eq!(none.status, 401, "{none}");
    let fake = send(
        &server,
        As::Session("berth_madeup", None),
        Method::GET,
        "/api/v1/me",
        None,
    )
    .await;
    assert_eq!(fake.status, 401, "{fake}");
    let (again, _) = login(&server, "alice", "alice-password-2").await;
    assert_eq!(again.status, 200, "{again}");
}

/// API tokens (listing with last use, revocation), disabling, enabling and deleting users,
/// closing one's own account, and the last admin who cannot go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_disable_delete_and_the_last_admin() {
    let server = Server::start("acct-tokens").await;
    let alice = server.register("alice", None).await;
    let bob = server.register("bob", None).await;

    // The token used is listed with its last use; a new one is not used yet.
    let me = api(&server, &alice, Method::GET, "/api/v1/me", None).await;
    assert_eq!(me.status, 200, "{me}");
    let made = api(
        &server,
        &alice,
        Method::POST,
        "/api/v1/me/tokens",
        Some(json!({"name": "ci"})),
    )
    .await;
    assert_eq!(made.status, 201, "{made}");
    let ci = made.body["token"].as_str().unwrap().to_string();
    let ci_id = made.body["info"]["id"].as_i64().unwrap();
    assert!(ci.starts_with("berth_"), "{made}");
    assert!(
        ci.starts_with(made.body["info"]["prefix"].as_str().unwrap()),
        "{made}"
    );
    let listed = api(&server, &alice, Method::GET, "/api/v1/me/tokens", None).await;
    let tokens = listed.body.as_array().cloned().unwrap_or_default();
    assert_eq!(tokens.len(), 2, "{listed}");
    let by_name = |tokens: &[Value], name: &str| {
        tokens
            .iter()
            .find(|t| t["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no token {name}"))
    };
    assert!(
        by_name(&tokens, "tests")["last_used_at"].as_i64().is_some(),
        "{listed}"
    );
    assert!(by_name(&tokens, "ci")["last_used_at"].is_null(), "{listed}");
    assert!(
        !listed.body.to_string().contains(&ci),
        "a listing shows a secret"
    );
    let used = api(&server, &ci, Method::GET, "/api/v1/me", None).await;
    assert_eq!(used.body["user"]["username"], "alice", "{used}");
    let listed = api(&server, &alice, Method::GET, "/api/v1/me/tokens", None).await;
    let ci_info = by_name(listed.body.as_array().unwrap(), "ci");
    assert!(ci_info["last_used_at"].as_i64().is_some(), "{listed}");
    assert_eq!(ci_info["revoked"], false);

    // Bob cannot revoke alice's token (it is not his), alice can: it stops at once.
    let foreign = api(
        &server,
        &bob,
        Method::DELETE,
        &format!("/api/v1/me/tokens/{ci_id}"),
        None,
    )
    .await;
    assert_eq!(foreign.status, 404, "{foreign}");
    assert_eq!(
        api(&server, &ci, Method::GET, "/api/v1/me", None)
            .await
            .status,
        200
    );
    let revoked = api(
        &server,
        &alice,
        Method::DELETE,
        &format!("/api/v1/me/tokens/{ci_id}"),
        None,
    )
    .await;
    assert_eq!(revoked.status, 204, "{revoked}");
    let dead = api(&server, &ci, Method::GET, "/api/v1/me", None).await;
    assert_eq!(dead.status, 401, "{dead}");
    assert_eq!(dead.code(), "unauthorized");
    let listed = api(&server, &alice, Method::GET, "/api/v1/me/tokens", None).await;
    assert_eq!(
        by_name(listed.body.as_array().unwrap(), "ci")["revoked"],
        true,
        "{listed}"
    );
    let missing = api(
        &server,
        &alice,
        Method::DELETE,
        "/api/v1/me/tokens/999999",
        None,
    )
    .await;
    assert_eq!(missing.status, 404, "{missing}");

    // A non-admin cannot disable anyone.
    let refused = api(
        &server,
        &bob,
        Method::POST,
        "/api/v1/users/alice/disable",
        None,
    )
    .await;
    assert_eq!(refused.status, 403, "{refused}");

    // Disabled: token and session stop at once, password logins fail.
    let (_, session) = login(&server, "alice", &password("alice")).await;
    assert_eq!(
        send(
            &server,
            As::Session(&session, None),
            Method::GET,
            "/api/v1/me",
            None
        )
        .await
        .status,
        200
    );
    let disabled = server.post("/api/v1/users/alice/disable", json!({})).await;
    assert_eq!(disabled["disabled"], true, "{disabled}");
    let token_after = api(&server, &alice, Method::GET, "/api/v1/me", None).await;
    assert_eq!(token_after.status, 401, "{token_after}");
    let session_after = send(
        &server,
        As::Session(&session, None),
        Method::GET,
        "/api/v1/me",
        None,
    )
    .await;
    assert_eq!(session_after.status, 401, "{session_after}");
    let (blocked, _) = login(&server, "alice", &password("alice")).await; // password failure 1
    assert_eq!(blocked.status, 401, "{blocked}");
    let registry = send(
        &server,
        As::Basic("alice", &password("alice")),
        Method::GET,
        "/v2/",
        None,
    )
    .await;
    assert_eq!(
        registry.status, 401,
        "registry login of a disabled user: {registry}"
    ); // failure 2

    // Enabled: she logs in anew; the old tokens stay revoked.
    let enabled = server.post("/api/v1/users/alice/enable", json!({})).await;
    assert_eq!(enabled["disabled"], false, "{enabled}");
    assert_eq!(
        api(&server, &alice, Method::GET, "/api/v1/me", None)
            .await
            .status,
        401
    );
    let fresh = token_of(&server, "alice", &password("alice")).await;
    assert_eq!(fresh.status, 201, "{fresh}");
    let fresh = fresh.body["token"].as_str().unwrap().to_string();
    assert_eq!(
        api(&server, &fresh, Method::GET, "/api/v1/me", None)
            .await
            .status,
        200
    );
    let (relogged, _) = login(&server, "alice", &password("alice")).await;
    assert_eq!(relogged.status, 200, "{relogged}");
    let listed = api(&server, &fresh, Method::GET, "/api/v1/me/tokens", None).await;
    let old = by_name(listed.body.as_array().unwrap(), "tests");
    assert_eq!(old["revoked"], true, "{listed}");

    // Deleting a user revokes everything at once.
    let (_, bob_session) = login(&server, "bob", &password("bob")).await;
    let deleted = server.call(Method::DELETE, "/api/v1/users/bob", None).await;
    assert_eq!(deleted.0, 204, "{}", deleted.1);
    assert_eq!(
        api(&server, &bob, Method::GET, "/api/v1/me", None)
            .await
            .status,
        401
    );
    assert_eq!(
        send(
            &server,
            As::Session(&bob_session, None),
            Method::GET,
            "/api/v1/me",
            None
        )
        .await
        .status,
        401
    );
    let (status, body) = server.call(Method::GET, "/api/v1/users/bob", None).await;
    assert_eq!(status, 404, "{body}");

    // Closing one's own account needs the password.
    let wrong = api(
        &server,
        &fresh,
        Method::DELETE,
        "/api/v1/me",
        Some(json!({"password": "not-my-password"})),
    )
    .await; // failure 3
    assert_eq!(wrong.status, 401, "{wrong}");
    assert_eq!(wrong.body["error"]["field"], "password", "{wrong}");
    let without = api(&server, &fresh, Method::DELETE, "/api/v1/me", None).await;
    assert!(matches!(without.status, 400 | 415), "{without}");
    assert_eq!(
        api(&server, &fresh, Method::GET, "/api/v1/me", None)
            .await
            .status,
        200
    );
    let closed = api(
        &server,
        &fresh,
        Method::DELETE,
        "/api/v1/me",
        Some(json!({"password": password("alice")})),
    )
    .await;
    assert_eq!(closed.status, 204, "{closed}");
    assert_eq!(
        api(&server, &fresh, Method::GET, "/api/v1/me", None)
            .await
            .status,
        401
    );
    let users = server.get("/api/v1/users").await;
    assert_eq!(names(&users, "username"), ["admin"], "{users}");

    // The last admin can be neither disabled, deleted, demoted nor closed.
    let last: Vec<(Method, &str, Option<Value>)> = vec![
        (Method::POST, "/api/v1/users/admin/disable", None),
        (Method::DELETE, "/api/v1/users/admin", None),
        (
            Method::PATCH,
            "/api/v1/users/admin",
            Some(json!({"is_admin": false})),
        ),
        (
            Method::DELETE,
            "/api/v1/me",
            Some(json!({"password": server.token})),
        ),
    ];
    for (method, path, body) in last {
        let (status, answer) = server.call(method.clone(), path, body).await;
        assert_eq!(status, 409, "{method} {path}: {answer}");
        assert_eq!(answer["error"]["code"], "last_admin", "{answer}");
    }
    assert_eq!(server.get("/api/v1/me").await["user"]["disabled"], false);
    // With a second admin, the first can be disabled: the first-start token stops too.
    let root = server
        .post(
            "/api/v1/users",
            json!({"username": "root", "email": "root@example.com", "password": "root-password-1", "is_admin": true}),
        )
        .await;
    assert_eq!(root["is_admin"], true, "{root}");
    let root = token_of(&server, "root", "root-password-1").await;
    let root = root.body["token"].as_str().unwrap().to_string();
    let off = api(
        &server,
        &root,
        Method::POST,
        "/api/v1/users/admin/disable",
        None,
    )
    .await;
    assert_eq!(off.status, 200, "{off}");
    let (status, _) = server.call(Method::GET, "/api/v1/me", None).await;
    assert_eq!(status, 401);
    let self_off = api(
        &server,
        &root,
        Method::POST,
        "/api/v1/users/root/disable",
        None,
    )
    .await;
    assert_eq!(self_off.status, 409, "{self_off}");
    assert_eq!(self_off.code(), "last_admin");
}

/// Weak and hostile input at registration, closed registration, and password guessing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weak_input_closed_registration_and_password_guessing() {
    let server = Server::start("acct-input").await;
    server.register("alice", Some("red")).await;

    let register = |body: Value| {
        let server = &server;
        async move {
            send(
                server,
                As::Nobody,
                Method::POST,
                "/api/v1/auth/register",
                Some(body),
            )
            .await
        }
    };
    let good = |username: &str| json!({"username": username, "email": format!("{username}@example.com"), "password": password(username)});
    let with = |username: &str, key: &str, value: Value| {
        let mut body = good(username);
        body[key] = value;
        body
    };
    // (body, status, code, field)
    let cases: Vec<(Value, u16, &str, Option<&str>)> = vec![
        (good("alice"), 409, "conflict", None),
        (
            with("alice2", "email", json!("ALICE@Example.com ")),
            409,
            "conflict",
            None,
        ),
        (
            with("x", "username", json!("")),
            400,
            "invalid_field",
            Some("username"),
        ),
        (
            with("x", "username", json!("ab")),
            400,
            "invalid_field",
            Some("username"),
        ),
        (
            with("x", "username", json!("a".repeat(33))),
            400,
            "invalid_field",
            Some("username"),
        ),
        (
            with("x", "username", json!("Alice")),
            400,
            "invalid_field",
            Some("username"),
        ),
        (
            with("x", "username", json!("al ice")),
            400,
            "invalid_field",
            Some("username"),
        ),
        (
            with("x", "username", json!("-alice")),
            400,
            "invalid_field",
            Some("username"),
        ),
        (
            with("eve", "email", json!("a@b")),
            400,
            "invalid_field",
            Some("email"),
        ),
        (
            with("eve", "email", json!("no-at")),
            400,
            "invalid_field",
            Some("email"),
        ),
        (
            with("eve", "email", json!("")),
            400,
            "invalid_field",
            Some("email"),
        ),
        (
            with("eve", "email", json!("a@b@example.com")),
            400,
            "invalid_field",
            Some("email"),
        ),
        (
            with("eve", "password", json!("short")),
            400,
            "invalid_field",
            Some("password"),
        ),
        (
            with("eve", "password", json!("")),
            400,
            "invalid_field",
            Some("password"),
        ),
        (
            with("eve", "password", json!("eve")),
            400,
            "invalid_field",
            Some("password"),
        ),
        (
            with("evelyn1234", "password", json!("evelyn1234")),
            400,
            "invalid_field",
            Some("password"),
        ),
        (
            with("eve", "password", json!("aaaaaaaaaaaa")),
            400,
            "invalid_field",
            Some("password"),
        ),
        (
            with("eve", "display_name", json!("x".repeat(101))),
            400,
            "invalid_field",
            Some("display_name"),
        ),
        // Privilege grabs.
        (
            with("eve", "is_admin", json!(true)),
            400,
            "invalid_field",
            Some("is_admin"),
        ),
        (with("eve", "team", json!("red")), 409, "conflict", None),
        (with("eve", "team", json!("default")), 409, "conflict", None),
        (
            with("eve", "role", json!("owner")),
            400,
            "invalid_json",
            Some("role"),
        ),
    ];
    let mut wrong = Vec::new();
    for (body, status, code, field) in &cases {
        let reply = register(body.clone()).await;
        let field_ok = field.is_none_or(|f| reply.body["error"]["field"] == f);
        if reply.status != *status || reply.code() != *code || !field_ok {
            wrong.push(format!(
                "{body}: want {status} {code} {field:?}, got {reply}"
            ));
        }
    }
    // `builtin` is reserved for the built-in templates (the admin route refuses it too).
    let reserved = server
        .call(
            Method::POST,
            "/api/v1/teams",
            Some(json!({"name": "builtin"})),
        )
        .await;
    if reserved.0 != 400 {
        wrong.push(format!(
            "admin POST /teams builtin: {} {}",
            reserved.0, reserved.1
        ));
    }
    // A new team may not be called that either (refused as taken or as invalid).
    let builtin = register(with("eve", "team", json!("builtin"))).await;
    if !matches!(builtin.status, 400 | 409) {
        wrong.push(format!(
            "register with team builtin: want 400 or 409, got {builtin}"
        ));
    }
    // Nothing half-made: no stray users or teams.
    let users = server.get("/api/v1/users").await;
    let expected_users = vec!["admin".to_string(), "alice".to_string()];
    let mut got_users = names(&users, "username");
    got_users.sort();
    if got_users != expected_users {
        wrong.push(format!("users after bad registrations: {got_users:?}"));
    }
    let members = server.get("/api/v1/teams/default/members").await;
    if members != json!([]) {
        wrong.push(format!("default team gained members: {members}"));
    }
    assert!(
        wrong.is_empty(),
        "weak input accepted or misreported:\n{}",
        wrong.join("\n")
    );

    // Closed registration: only an admin can close it, then make users.
    let alice = token_of(&server, "alice", &password("alice")).await;
    let alice = alice.body["token"].as_str().unwrap().to_string();
    let by_alice = api(
        &server,
        &alice,
        Method::PUT,
        "/api/v1/settings",
        Some(json!({"registration_open": false})),
    )
    .await;
    assert_eq!(by_alice.status, 403, "{by_alice}");
    let closed = server
        .call(
            Method::PUT,
            "/api/v1/settings",
            Some(json!({"registration_open": false})),
        )
        .await;
    assert_eq!(closed.0, 200, "{}", closed.1);
    let settings = api(&server, &alice, Method::GET, "/api/v1/settings", None).await;
    assert_eq!(
        settings.body,
        json!({"registration_open": false}),
        "{settings}"
    );
    let refused = register(good("carol")).await;
    assert_eq!(refused.status, 403, "{refused}");
    assert_eq!(refused.code(), "registration_closed", "{refused}");
    let by_alice = api(
        &server,
        &alice,
        Method::POST,
        "/api/v1/users",
        Some(good("carol")),
    )
    .await;
    assert_eq!(by_alice.status, 403, "{by_alice}");
    let (status, carol) = server
        .call(Method::POST, "/api/v1/users", Some(good("carol")))
        .await;
    assert_eq!(status, 201, "{carol}");
    assert_eq!(carol["is_admin"], false, "{carol}");
    let token = token_of(&server, "carol", &password("carol")).await;
    assert_eq!(token.status, 201, "{token}");

    // Password guessing: five wrong passwords, then even the right one is refused for a
    // while, with Retry-After, on every door that takes a password.
    for attempt in 1..=5 {
        let (reply, _) = login(&server, "carol", &format!("guess-number-{attempt}")).await;
        assert_eq!(reply.status, 401, "attempt {attempt}: {reply}");
        assert_eq!(
            reply.code(),
            "invalid_credentials",
            "attempt {attempt}: {reply}"
        );
    }
    let (locked, cookie) = login(&server, "carol", &password("carol")).await;
    assert_eq!(locked.status, 429, "{locked}");
    assert_eq!(locked.code(), "too_many_attempts", "{locked}");
    assert!(cookie.is_empty(), "a locked login set a cookie");
    let retry: u64 = locked
        .header("retry-after")
        .parse()
        .unwrap_or_else(|_| panic!("Retry-After missing or not seconds: {:?}", locked.headers));
    assert!(retry >= 1, "{retry}");
    let token = token_of(&server, "carol", &password("carol")).await;
    assert_eq!(token.status, 429, "{token}");
    assert!(
        !token.header("retry-after").is_empty(),
        "{:?}",
        token.headers
    );
    let registry = send(
        &server,
        As::Basic("carol", &password("carol")),
        Method::GET,
        "/v2/",
        None,
    )
    .await;
    assert!(
        !(200..300).contains(&registry.status),
        "the registry let a locked user in: {registry}"
    );
    // Tokens already issued keep working: the lock is on password guessing only.
    let me = api(&server, &alice, Method::GET, "/api/v1/me", None).await;
    assert_eq!(me.status, 200, "{me}");
}

/// The registry with accounts: push to one's own team only, no pulls across teams, and an
/// app deployed from a team repository (the engine pulls with the server's own credential).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_push_and_pull_follow_teams() {
    let server = Server::start("acct-registry").await;
    let host = format!("127.0.0.1:{}", server.port);
    let alice = server.register("alice", Some("red")).await;
    let bob = server.register("bob", Some("blue")).await;
    let alice_config = tempfile::tempdir().unwrap();
    let bob_config = tempfile::tempdir().unwrap();
    let red = format!("{host}/red/app:1");
    let blue = format!("{host}/blue/app:1");
    let _cleanup = LocalImages(vec![red.clone(), blue.clone()]);

    // Alice logs in with her password and pushes to red.
    push_testapp(
        &server,
        alice_config.path(),
        "alice",
        &password("alice"),
        "red/app:1",
    );
    // She is denied pushing to blue.
    docker_ok(
        alice_config.path(),
        &["tag", &berth_testkit::testapp_image(), &blue],
    );
    let denied = docker_with(alice_config.path(), &["push", &blue]);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&denied.stdout),
        String::from_utf8_lossy(&denied.stderr)
    );
    assert!(!denied.status.success(), "alice pushed to blue: {said}");
    assert!(said.to_lowercase().contains("denied"), "{said}");
    let images = api(&server, &bob, Method::GET, "/api/v1/images", None).await;
    assert_eq!(images.body, json!([]), "{images}");
    // The push is on red's audit trail, with who made it.
    let (status, trail) = server
        .call(Method::GET, "/api/v1/audit?action=registry.push", None)
        .await;
    assert_eq!(status, 200, "{trail}");
    let pushes: Vec<&Value> = trail.as_array().unwrap().iter().collect();
    assert!(
        pushes.iter().any(|e| e["actor"] == "alice"
            && e["object"] == "images/red/app:1"
            && e["team"] == "red"
            && e["outcome"] == "success"),
        "{trail:#}"
    );

    // Bob logs in with an API token; he cannot pull red's image.
    docker_ok(
        bob_config.path(),
        &["login", &host, "-u", "bob", "--password", &bob],
    );
    let pulled = docker_with(bob_config.path(), &["pull", &red]);
    assert!(
        !pulled.status.success(),
        "bob pulled red's image: {}",
        String::from_utf8_lossy(&pulled.stdout)
    );
    let manifest = send(
        &server,
        As::Basic("bob", &bob),
        Method::GET,
        "/v2/red/app/manifests/1",
        None,
    )
    .await;
    assert_eq!(manifest.status, 404, "{manifest}");
    let catalog = send(
        &server,
        As::Basic("bob", &bob),
        Method::GET,
        "/v2/_catalog",
        None,
    )
    .await;
    assert_eq!(catalog.status, 200, "{catalog}");
    assert_eq!(catalog.body["repositories"], json!([]), "{catalog}");
    let catalog = send(
        &server,
        As::Basic("alice", &password("alice")),
        Method::GET,
        "/v2/_catalog",
        None,
    )
    .await;
    assert_eq!(
        catalog.body["repositories"],
        json!(["red/app"]),
        "{catalog}"
    );
    let anonymous = send(
        &server,
        As::Nobody,
        Method::GET,
        "/v2/red/app/manifests/1",
        None,
    )
    .await;
    assert_eq!(anonymous.status, 401, "{anonymous}");
    // Someone else's token under alice's name is no credential.
    let borrowed = send(
        &server,
        As::Basic("alice", &bob),
        Method::GET,
        "/v2/red/app/manifests/1",
        None,
    )
    .await;
    assert_eq!(borrowed.status, 401, "{borrowed}");

    // The admin API lists the image; the team's usage counts it; bob sees none of it.
    let images = server.get("/api/v1/images").await;
    assert_eq!(names(&images, "name"), ["red/app"], "{images}");
    let image = server.get("/api/v1/images/red/app:1").await;
    assert_eq!(
        image["config"]["entrypoint"][0], "/berth-testapp",
        "{image}"
    );
    let team = server.get("/api/v1/teams/red").await;
    assert!(
        team["usage"]["registry_bytes"].as_u64().unwrap() > 0,
        "{team}"
    );
    let images = api(&server, &alice, Method::GET, "/api/v1/images", None).await;
    assert_eq!(names(&images.body, "name"), ["red/app"], "{images}");
    let hidden = api(&server, &bob, Method::GET, "/api/v1/images/red/app:1", None).await;
    assert_eq!(hidden.status, 404, "{hidden}");

    // Alice deploys from her repository; the engine pulls it with the server's credential.
    docker_ok(alice_config.path(), &["rmi", &red]);
    let mut body = app_body("pulled", 1);
    body["image"] = json!(red);
    let created = api(&server, &alice, Method::POST, "/api/v1/apps", Some(body)).await;
    assert_eq!(created.status, 201, "{created}");
    let app = server.wait_rollout("pulled", Duration::from_secs(90)).await;
    assert_eq!(app["rollout"]["phase"], "complete", "{app:#}");
    assert_eq!(ready_instances(&app).len(), 1, "{app:#}");
    // Bob cannot run red's image in blue either: the engine pulls with a credential that may
    // pull anything, so the API must refuse an image of a repository the caller cannot read.
    // The tag is removed first so that the engine has to pull it (not reuse its cache).
    docker_ok(alice_config.path(), &["rmi", &red]);
    let mut body = app_body("thief", 1);
    body["image"] = json!(red);
    let stolen = api(&server, &bob, Method::POST, "/api/v1/apps", Some(body)).await;
    if stolen.status == 201 {
        let app = server
            .wait_app(
                "thief",
                "a ready instance or a failed rollout",
                Duration::from_secs(60),
                |app| app["rollout"]["phase"] == "failed" || !ready_instances(app).is_empty(),
            )
            .await;
        panic!(
            "bob (team blue) deployed red's private image {red}: 201, and {} instance(s) run it: {app:#}",
            ready_instances(&app).len()
        );
    }
    assert!(matches!(stolen.status, 403 | 404), "{stolen}");
}

/// Every change that grows usage is checked: creating, a deploy's rollout surge, a deploy that
/// raises the instance limits, scaling, and a registry push; the refusal names the resource,
/// and nothing changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_guards_every_path_that_grows_usage() {
    let server = Server::start("acct-quota-paths").await;
    let alice = server.register("alice", Some("red")).await;
    let quota = json!({"cpu_millis": 1000, "memory_bytes": 512 * MIB, "instances": 3, "registry_bytes": 1024});
    let set = api(
        &server,
        &server.token,
        Method::PATCH,
        "/api/v1/teams/red",
        Some(json!({ "quota": quota })),
    )
    .await;
    assert_eq!(set.status, 200, "{set}");

    // A team that limits CPU and memory needs apps that declare them.
    let mut unlimited = app_body("shop", 2);
    unlimited.as_object_mut().unwrap().remove("cpu_millis");
    let refused = api(
        &server,
        &alice,
        Method::POST,
        "/api/v1/apps",
        Some(unlimited),
    )
    .await;
    assert_eq!(refused.status, 400, "{refused}");
    assert_eq!(refused.body["error"]["field"], "cpu_millis", "{refused}");

    let mut body = app_body("shop", 2);
    body["cpu_millis"] = json!(200);
    body["strategy"] = json!({"max_surge": 1});
    let created = api(&server, &alice, Method::POST, "/api/v1/apps", Some(body)).await;
    assert_eq!(created.status, 201, "{created}");

    // (change, the resource the refusal names)
    let growing = [
        // Two surge instances on top of two replicas: four instances at the rollout's peak.
        (
            json!({"env": {"V": "2"}, "strategy": {"max_surge": 2}}),
            "instances",
        ),
        // Three instances (two plus one surge) at 600 millicores each.
        (json!({"cpu_millis": 600}), "cpu_millis"),
        (json!({"memory_bytes": 256 * MIB}), "memory_bytes"),
    ];
    for (change, field) in growing {
        let deploy = api(
            &server,
            &alice,
            Method::POST,
            "/api/v1/apps/shop/deploy",
            Some(change.clone()),
        )
        .await;
        assert_eq!(deploy.status, 403, "{change}: {deploy}");
        assert_eq!(deploy.code(), "quota_exceeded", "{change}: {deploy}");
        assert_eq!(deploy.body["error"]["field"], field, "{change}: {deploy}");
        assert!(deploy.message().contains("limit"), "{deploy}");
    }
    let scale = api(
        &server,
        &alice,
        Method::POST,
        "/api/v1/apps/shop/scale",
        Some(json!({"replicas": 4})),
    )
    .await;
    assert_eq!(scale.status, 403, "{scale}");
    assert_eq!(scale.body["error"]["field"], "instances", "{scale}");
    let app = server.app("shop").await;
    assert_eq!(app["replicas"], 2, "{app:#}");
    assert_eq!(
        app["current_revision"], 1,
        "refused deploys made a revision: {app:#}"
    );

    // A deploy whose peak fits (two replicas plus one surge, 600 millicores in all) goes through.
    let fits = api(
        &server,
        &alice,
        Method::POST,
        "/api/v1/apps/shop/deploy",
        Some(json!({"env": {"V": "2"}})),
    )
    .await;
    assert_eq!(fits.status, 200, "{fits}");
    assert_eq!(fits.body["current_revision"], 2, "{fits}");

    // The registry keeps 1 KiB for red: pushing the test image is refused with the quota.
    let config = tempfile::tempdir().unwrap();
    let host = format!("127.0.0.1:{}", server.port);
    let image = format!("{host}/red/big:1");
    let _cleanup = LocalImages(vec![image.clone()]);
    docker_ok(
        config.path(),
        &["login", &host, "-u", "alice", "--password", &alice],
    );
    docker_ok(
        config.path(),
        &["tag", &berth_testkit::testapp_image(), &image],
    );
    let pushed = docker_with(config.path(), &["push", &image]);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&pushed.stdout),
        String::from_utf8_lossy(&pushed.stderr)
    );
    assert!(
        !pushed.status.success(),
        "a push beyond the quota went through: {said}"
    );
    assert!(said.contains("quota"), "{said}");
    let images = api(&server, &alice, Method::GET, "/api/v1/images", None).await;
    assert_eq!(images.body, json!([]), "{images}");
}
