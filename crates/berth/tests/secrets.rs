//! End-to-end: team secrets on the real engine — set from stdin or a file through the CLI,
//! given to an instance as a variable and as a file; the value appears in the container and
//! nowhere in the API's answers, the audit log, the events, the CLI's output or the server's
//! log; a change rolls the app out with the new version and a rollback brings the old one
//! back; a missing secret, a secret in use and another team's reader are refused.

mod support;

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use support::{Server, assert_refused, ready_instances, wait_until};

const ROLLOUT: Duration = Duration::from_secs(90);
const FIRST: &str = "s3cr3t-first-b2f9c1";
const SECOND: &str = "s3cr3t-second-7d04aa";
const CERT: &str = "-----BEGIN CERT-----\nc3e5-9a1f-cert-body\n-----END CERT-----\n";

/// `path` on the ready instance of `app` (the test app's `/env` or `/files`).
async fn instance_get(server: &Server, app: &str, path: &str) -> (u16, String) {
    wait_until("one ready instance", ROLLOUT, || async {
        ready_instances(&server.app(app).await).len() == 1
    })
    .await;
    let instance = ready_instances(&server.app(app).await)[0].clone();
    let address = instance["address"].as_str().expect("address");
    let answer = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("http://{address}{path}"))
        .send()
        .await
        .expect("the test app answers");
    let status = answer.status().as_u16();
    (status, answer.text().await.unwrap_or_default())
}

/// Every answer a reader of the team gets about the app and its secrets, joined.
async fn everything_shown(server: &Server, app: &str) -> String {
    let mut shown = Vec::new();
    for path in [
        format!("/api/v1/apps/{app}"),
        "/api/v1/apps".to_string(),
        format!("/api/v1/apps/{app}/revisions"),
        format!("/api/v1/apps/{app}/revisions/1"),
        format!("/api/v1/apps/{app}/events?limit=1000"),
        format!("/api/v1/apps/{app}/rollout"),
        "/api/v1/audit?limit=500".to_string(),
        "/api/v1/secrets".to_string(),
        "/api/v1/teams/default/secrets".to_string(),
        "/api/v1/topology".to_string(),
    ] {
        let (status, body) = server.call(Method::GET, &path, None).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        shown.push(body.to_string());
    }
    for args in [&["apps", "show", app][..], &["secrets", "list"][..]] {
        let out = server.cli(args);
        shown.push(String::from_utf8_lossy(&out.stdout).to_string());
    }
    shown.push(server.log());
    shown.join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_secret_reaches_the_instance_and_nothing_else() {
    let server = Server::start("secrets").await;
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first");
    std::fs::write(&first, FIRST).unwrap();
    let cert = dir.path().join("cert.pem");
    std::fs::write(&cert, CERT).unwrap();

    let out = server.cli_with_stdin(&["secrets", "create", "default/db-password"], &first);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("version 1"));
    let from_file = cert.to_str().unwrap();
    let out = server.cli(&[
        "secrets",
        "create",
        "default/tls-cert",
        "--from-file",
        from_file,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Never on the command line: a value argument is refused.
    let out = server.cli(&["secrets", "create", "default/inline", "hunter2"]);
    assert!(!out.status.success());

    let out = server.cli(&[
        "apps",
        "create",
        "vault",
        "--image",
        berth_testkit::TESTAPP_IMAGE,
        "--health-path",
        "/healthz",
        "--secret",
        "DB_PASSWORD=db-password",
        "--secret-file",
        "/run/secrets/tls=tls-cert",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    server.wait_rollout("vault", ROLLOUT).await;
    let (_, env) = instance_get(&server, "vault", "/env").await;
    let env: Value = serde_json::from_str(&env).unwrap();
    assert_eq!(env["DB_PASSWORD"], FIRST);
    assert_eq!(
        instance_get(&server, "vault", "/files?path=/run/secrets/tls").await,
        (200, CERT.to_string())
    );
    let app = server.app("vault").await;
    assert_eq!(
        app["template"]["secrets"],
        json!([{"name": "db-password", "env": "DB_PASSWORD", "version": 1},
               {"name": "tls-cert", "path": "/run/secrets/tls", "version": 1}])
    );
    let shown = everything_shown(&server, "vault").await;
    assert!(shown.contains("db-password"), "names are shown");
    for value in [FIRST, "c3e5-9a1f-cert-body"] {
        assert!(!shown.contains(value), "{value} was shown");
    }

    // A change rolls the app out with version 2; a rollback brings version 1 back.
    let second = dir.path().join("second");
    std::fs::write(&second, SECOND).unwrap();
    let out = server.cli_with_stdin(&["secrets", "create", "default/db-password"], &second);
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        said.contains("version 2") && said.contains("rolling out with it: vault"),
        "{said}"
    );
    wait_until("revision 2 rolled out", ROLLOUT, || async {
        let app = server.app("vault").await;
        app["current_revision"] == 2 && app["rollout"]["done"] == true
    })
    .await;
    let (_, env) = instance_get(&server, "vault", "/env").await;
    let env: Value = serde_json::from_str(&env).unwrap();
    assert_eq!(env["DB_PASSWORD"], SECOND);
    let revision = server.get("/api/v1/apps/vault/revisions/2").await;
    assert_eq!(
        revision["template"]["secrets"][0]["version"], 2,
        "{revision}"
    );
    assert!(
        revision
            .to_string()
            .contains("secret db-password changed (version 2)")
    );
    let shown = everything_shown(&server, "vault").await;
    assert!(!shown.contains(SECOND) && !shown.contains(FIRST));
    let out = server.cli(&["rollback", "vault", "--to", "1", "--wait"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_until("the old instance is gone", ROLLOUT, || async {
        let app = server.app("vault").await;
        let instances = app["instances"].as_array().cloned().unwrap_or_default();
        instances.len() == 1 && instances[0]["revision"] == 1 && instances[0]["ready"] == true
    })
    .await;
    let (_, env) = instance_get(&server, "vault", "/env").await;
    let env: Value = serde_json::from_str(&env).unwrap();
    assert_eq!(
        env["DB_PASSWORD"], FIRST,
        "the rollback uses version 1 again"
    );

    // Refusals: a secret the team does not have, one in use, another team's reader.
    let (status, answer) = server
        .call(
            Method::POST,
            "/api/v1/apps",
            Some(
                json!({"name": "nosecret", "image": berth_testkit::TESTAPP_IMAGE,
                "secrets": [{"name": "missing", "env": "X"}]}),
            ),
        )
        .await;
    assert_refused(status, &answer, 400, "has no secret missing");
    assert_eq!(answer["error"]["field"], "template.secrets[0].name");
    let (status, _) = server
        .call(Method::GET, "/api/v1/apps/nosecret", None)
        .await;
    assert_eq!(status, 404, "nothing half-created");
    let (status, answer) = server
        .call(
            Method::DELETE,
            "/api/v1/teams/default/secrets/db-password",
            None,
        )
        .await;
    assert_refused(status, &answer, 409, "used by app vault");
    let stranger = server.register("stranger", Some("elsewhere")).await;
    let (status, _) = server
        .call_as(
            &stranger,
            Method::GET,
            "/api/v1/teams/default/secrets",
            None,
        )
        .await;
    assert!(status == 403 || status == 404, "{status}");
    let (_, theirs) = server
        .call_as(&stranger, Method::GET, "/api/v1/secrets", None)
        .await;
    assert_eq!(theirs["secrets"], json!([]), "{theirs}");
    let (status, _) = server
        .call_as(
            &stranger,
            Method::PUT,
            "/api/v1/teams/default/secrets/db-password",
            None,
        )
        .await;
    assert!(status == 403 || status == 404, "{status}");

    // A plain variable marked sensitive: members see it, a viewer of the team sees it
    // redacted in the app and its revisions.
    // Marked after it was set: the revision from before is redacted for viewers too.
    let out = server.cli(&["deploy", "vault", "--env", "API_KEY=plain-c0ffee-91"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = server.cli(&["deploy", "vault", "--sensitive-env", "API_KEY"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let viewer = server.register("watcher", None).await;
    let (status, answer) = server
        .call(
            Method::PUT,
            "/api/v1/teams/default/members/watcher",
            Some(json!({"role": "viewer"})),
        )
        .await;
    assert!((200..300).contains(&status), "{answer}");
    let app = server.app("vault").await;
    assert_eq!(app["template"]["env"]["API_KEY"], "plain-c0ffee-91");
    assert_eq!(app["template"]["sensitive_env"], json!(["API_KEY"]));
    for path in [
        "/api/v1/apps/vault",
        "/api/v1/apps",
        "/api/v1/apps/vault/revisions",
        &format!("/api/v1/apps/vault/revisions/{}", app["current_revision"]),
        &format!(
            "/api/v1/apps/vault/revisions/{}",
            app["current_revision"].as_u64().unwrap() - 1
        ),
    ] {
        let (status, seen) = server.call_as(&viewer, Method::GET, path, None).await;
        assert_eq!(status, 200, "{path}: {seen}");
        let seen = seen.to_string();
        assert!(!seen.contains("plain-c0ffee-91"), "{path}: {seen}");
        assert!(seen.contains("<redacted>"), "{path}: {seen}");
    }
    let (status, answer) = server
        .call(
            Method::POST,
            "/api/v1/apps/vault/deploy",
            Some(json!({"sensitive_env": ["NOT_THERE"]})),
        )
        .await;
    assert_refused(
        status,
        &answer,
        400,
        "NOT_THERE is not an environment variable",
    );
    assert_eq!(answer["error"]["field"], "template.sensitive_env");

    // Once no app uses it, it can go.
    let out = server.cli(&["deploy", "vault", "--no-secrets"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = server.cli(&["secrets", "delete", "default/db-password"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed = server.get("/api/v1/teams/default/secrets").await;
    let names: Vec<&str> = listed["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["tls-cert"]);
}
