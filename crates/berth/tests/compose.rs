//! End-to-end: a compose file of a small web + worker + cache system imported with the CLI —
//! the plan first (nothing made, every unmapped key named), then three running apps with
//! their dependencies in the topology; a re-import changes nothing, an edit makes one new
//! revision; an env file outside the file's directory is never read; an unsupported version
//! and a build-only service are refused naming the field, with nothing made.

mod support;

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use support::{Server, assert_refused, ready_instances, wait_until};

const ROLLOUT: Duration = Duration::from_secs(90);

fn compose_file(image: &str, color: &str) -> String {
    format!(
        r#"version: "3.8"
services:
  web:
    image: {image}
    ports: ["80:8080"]
    environment:
      COLOR: {color}
    env_file: [web.env, ../outside.env]
    depends_on: [worker, cache]
    healthcheck:
      test: ["CMD", "wget", "-q", "-O-", "http://localhost:8080/healthz"]
      interval: 1s
      timeout: 1s
      retries: 3
    deploy:
      replicas: 2
      resources:
        limits: {{cpus: "0.25", memory: 64M}}
    restart: unless-stopped
  worker:
    image: {image}
    depends_on:
      cache: {{condition: service_started}}
    environment: ["ROLE=worker"]
  cache:
    image: {image}
    expose: ["8080"]
    volumes: ["cache-data:/data", "./local:/local"]
volumes:
  cache-data: {{}}
"#
    )
}

fn names_and_actions(answer: &str) -> Vec<String> {
    answer
        .lines()
        .filter(|l| l.starts_with("  ") && l.contains("← service"))
        .map(|l| l.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_compose_file_imports_into_running_apps_with_their_dependencies() {
    let server = Server::start("compose").await;
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("shop");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("web.env"), "GREETING=\"hello\"\n").unwrap();
    std::fs::write(root.path().join("outside.env"), "LEAKED=c4fe-outside\n").unwrap();
    let file = dir.join("docker-compose.yml");
    std::fs::write(&file, compose_file(berth_testkit::TESTAPP_IMAGE, "blue")).unwrap();
    let file = file.to_str().unwrap();

    // The plan: three apps in dependency order, every unmapped key named, nothing made.
    let out = server.cli(&[
        "compose",
        "import",
        file,
        "--team",
        "default",
        "--prefix",
        "shop-",
        "--dry-run",
    ]);
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.starts_with("plan (nothing changed):"), "{said}");
    assert_eq!(
        names_and_actions(&said),
        ["create shop-cache", "create shop-worker", "create shop-web"]
    );
    for noted in [
        "services.cache.volumes[1]: a bind mount",
        "services.web.restart:",
        "services.worker.depends_on: conditions",
    ] {
        assert!(said.contains(noted), "{noted} missing from:\n{said}");
    }
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("env_file ../outside.env: not read"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (status, _) = server
        .call(Method::GET, "/api/v1/apps/shop-web", None)
        .await;
    assert_eq!(status, 404, "a dry run makes nothing");

    // The import: three running apps.
    let out = server.cli(&[
        "compose", "import", file, "--team", "default", "--prefix", "shop-",
    ]);
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        names_and_actions(&said),
        ["create shop-cache", "create shop-worker", "create shop-web"]
    );
    for app in ["shop-cache", "shop-worker", "shop-web"] {
        server.wait_rollout(app, ROLLOUT).await;
    }
    wait_until("web has two ready instances", ROLLOUT, || async {
        ready_instances(&server.app("shop-web").await).len() == 2
    })
    .await;
    let web = server.app("shop-web").await;
    assert_eq!(web["dependencies"], json!(["shop-worker", "shop-cache"]));
    assert_eq!(web["template"]["env"]["COLOR"], "blue");
    assert_eq!(web["template"]["env"]["GREETING"], "hello");
    assert!(web["template"]["env"].get("LEAKED").is_none(), "{web}");
    assert_eq!(web["template"]["cpu_millis"], 250);
    assert_eq!(web["template"]["memory_bytes"], 64 << 20);
    assert_eq!(web["template"]["readiness"]["path"], "/healthz");
    assert_eq!(web["template"]["readiness"]["period_ms"], 1000);
    let out = server.cli(&["apps", "show", "shop-web"]);
    let shown = String::from_utf8_lossy(&out.stdout);
    for line in [
        "depends on: shop-worker, shop-cache",
        "limits:     CPU 250m per instance, memory 64Mi per instance",
    ] {
        assert!(
            shown.contains(line),
            "{line:?} missing from apps show:\n{shown}"
        );
    }
    let cache = server.app("shop-cache").await;
    assert_eq!(
        cache["template"]["volumes"],
        json!([{"name": "cache-data", "path": "/data", "read_only": false, "scope": "shared"}])
    );
    let topology = server.get("/api/v1/topology").await;
    let declared: Vec<(String, String)> = topology["edges"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "declared")
        .map(|e| {
            (
                e["from"].as_str().unwrap_or("").to_string(),
                e["to"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for edge in [
        ("shop-web", "shop-worker"),
        ("shop-web", "shop-cache"),
        ("shop-worker", "shop-cache"),
    ] {
        assert!(
            declared.contains(&(edge.0.to_string(), edge.1.to_string())),
            "{edge:?} not in {declared:?}"
        );
    }

    // A re-import changes nothing; an edit makes one new revision of the app it touches.
    let out = server.cli(&[
        "compose", "import", file, "--team", "default", "--prefix", "shop-",
    ]);
    assert_eq!(
        names_and_actions(&String::from_utf8_lossy(&out.stdout)),
        [
            "unchanged shop-cache",
            "unchanged shop-worker",
            "unchanged shop-web"
        ]
    );
    std::fs::write(file, compose_file(berth_testkit::TESTAPP_IMAGE, "green")).unwrap();
    let out = server.cli(&[
        "compose", "import", file, "--team", "default", "--prefix", "shop-",
    ]);
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        said.contains("update    shop-web ← service web (revision 2)"),
        "{said}"
    );
    assert_eq!(server.app("shop-cache").await["current_revision"], 1);

    // Refusals name the field and make nothing.
    let bad_version = json!({"compose": "version: '1'\nservices:\n  a: {image: x}\n"});
    let build_only = json!({"compose": "services:\n  ok: {image: x}\n  api: {build: .}\n"});
    for (body, field) in [(bad_version, "version"), (build_only, "services.api.build")] {
        let (status, answer) = server
            .call(Method::POST, "/api/v1/teams/default/compose", Some(body))
            .await;
        assert_refused(status, &answer, 400, "");
        assert_eq!(answer["error"]["field"], field, "{answer}");
    }
    let (status, _) = server.call(Method::GET, "/api/v1/apps/ok", None).await;
    assert_eq!(status, 404, "nothing half-made");
    let bad_secret =
        json!({"compose": "services:\n  one: {image: x}\n  two: {image: x, secrets: [nope]}\n"});
    let (status, answer) = server
        .call(
            Method::POST,
            "/api/v1/teams/default/compose",
            Some(bad_secret),
        )
        .await;
    assert_refused(status, &answer, 400, "has no secret nope");
    assert_eq!(
        answer["error"]["field"],
        "services.two.template.secrets[0].name"
    );
    let (status, _): (u16, Value) = server.call(Method::GET, "/api/v1/apps/one", None).await;
    assert_eq!(status, 404, "the first service was not made either");
}
