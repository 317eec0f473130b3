//! End-to-end: the registry built into `berth server` — docker login/push, search and inspect
//! through the API and CLI, deploying an app from it, deleting a tag and getting the disk back.

mod support;

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use support::{LocalImages, Server, docker_as as docker, ready_instances};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_inspect_deploy_delete_and_collect() {
    // No grace period: blobs pushed a moment ago may be collected once unreferenced.
    let server = Server::start_with("registry", &["--registry-gc-grace", "0s"]).await;
    let host = format!("127.0.0.1:{}", server.port);
    let config = tempfile::tempdir().unwrap();
    let base = berth_testkit::testapp_image();
    let v1 = format!("{host}/default/web:v1");
    let v2 = format!("{host}/default/web:v2");
    let _cleanup = LocalImages(vec![v1.clone(), v2.clone()]);

    // Anonymous pushes are refused; the admin token logs in.
    let anonymous = reqwest::Client::builder().no_proxy().build().unwrap();
    let refused = anonymous
        .get(format!("http://{host}/v2/"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    assert!(
        refused.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic")
    );
    docker(
        config.path(),
        &["login", &host, "-u", "admin", "--password", &server.token],
    );

    // v1: the test app; v2: the test app plus a 2 MB layer of random bytes.
    docker(config.path(), &["tag", &base, &v1]);
    docker(config.path(), &["push", &v1]);
    let context = tempfile::tempdir().unwrap();
    let mut noise = vec![0u8; 2_000_000];
    std::io::Read::read_exact(
        &mut std::fs::File::open("/dev/urandom").unwrap(),
        &mut noise,
    )
    .unwrap();
    std::fs::write(context.path().join("noise.bin"), noise).unwrap();
    std::fs::write(
        context.path().join("Dockerfile"),
        format!("FROM {base}\nCOPY noise.bin /noise.bin\nLABEL berth.test=e2e-registry\n"),
    )
    .unwrap();
    docker(
        config.path(),
        &["build", "-q", "-t", &v2, context.path().to_str().unwrap()],
    );
    docker(config.path(), &["push", &v2]);

    // Search and inspect through the API.
    let repositories = server.get("/api/v1/images?search=web").await;
    assert_eq!(repositories[0]["name"], "default/web", "{repositories}");
    assert_eq!(repositories[0]["tag_count"], 2);
    let repository = server.get("/api/v1/images/default/web").await;
    let tags: Vec<&str> = repository["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["tag"].as_str().unwrap())
        .collect();
    assert_eq!(tags.len(), 2, "{repository}");
    let image = server.get("/api/v1/images/default/web:v2").await;
    assert_eq!(image["layers"].as_array().unwrap().len(), 2, "{image}");
    assert!(image["layers"][1]["size"].as_u64().unwrap() > 1_000_000);
    assert_eq!(image["config"]["entrypoint"][0], "/berth-testapp");
    assert_eq!(image["config"]["labels"]["berth.test"], "e2e-registry");
    assert!(
        image["config"]["exposed_ports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == "8080/tcp")
    );
    let output = server.cli(&["images", "show", "default/web:v2"]);
    assert!(String::from_utf8_lossy(&output.stdout).contains("/berth-testapp"));

    // Deploy from the registry: the engine pulls with Berth's own credential.
    docker(config.path(), &["rmi", &v2]);
    server.create_app("web", 1, json!({"image": v2})).await;
    let app = server.wait_rollout("web", Duration::from_secs(60)).await;
    assert_eq!(app["rollout"]["phase"], "complete", "{app:#}");
    assert_eq!(ready_instances(&app).len(), 1);

    // An image a kept revision uses cannot be deleted.
    let (status, body) = server
        .call(Method::DELETE, "/api/v1/images/default/web:v2", None)
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "image_in_use");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("app web revision 1"),
        "{body}"
    );

    // Once no revision uses v2 (the app is deleted), delete it, collect garbage, and the disk
    // use drops.
    let (status, _) = server.call(Method::DELETE, "/api/v1/apps/web", None).await;
    assert_eq!(status, 204);
    let before = server.get("/api/v1/registry/usage").await;
    let (status, _) = server
        .call(Method::DELETE, "/api/v1/images/default/web:v2", None)
        .await;
    assert_eq!(status, 204);
    let report = server
        .post(
            "/api/v1/registry/gc",
            json!({"delete_untagged_manifests": true}),
        )
        .await;
    assert_eq!(report["manifests_deleted"], 1, "{report}");
    assert!(
        report["bytes_freed"].as_u64().unwrap() > 1_000_000,
        "{report}"
    );
    let after = server.get("/api/v1/registry/usage").await;
    let on_disk = |usage: &Value| usage["stored_bytes"].as_u64().unwrap();
    assert!(
        on_disk(&after) + 1_000_000 < on_disk(&before),
        "{before} -> {after}"
    );
    let output = server.cli(&["images", "gc"]);
    assert!(
        String::from_utf8_lossy(&output.stdout).starts_with("freed 0.0 MB"),
        "{output:?}"
    );
    let (status, body) = server
        .call(Method::GET, "/api/v1/images/default/web:v2", None)
        .await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = server
        .call(Method::GET, "/api/v1/images/Bad..Name:v1", None)
        .await;
    assert_eq!(status, 400, "{body}");
    let _: Value = server.get("/api/v1/images/default/web:v1").await;

    // A stored retention rule runs before garbage collection: keep only the newest tag.
    let v3 = format!("{host}/default/web:v3");
    let _cleanup_v3 = LocalImages(vec![v3.clone()]);
    docker(config.path(), &["tag", &base, &v3]);
    docker(config.path(), &["push", &v3]);
    let output = server.cli(&[
        "images",
        "retention",
        "default/web",
        "--keep",
        "1",
        "--save",
    ]);
    assert!(output.status.success(), "{output:?}");
    let rules: Value =
        serde_json::from_slice(&server.cli(&["images", "rules", "-o", "json"]).stdout).unwrap();
    assert_eq!(rules[0]["repository"], "default/web");
    assert_eq!(rules[0]["keep_newest_tags"], 1);
    let (status, body) = server
        .call(
            Method::PUT,
            "/api/v1/registry/retention-rules/default/web",
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["field"], "keep_newest_tags");
    // While a kept revision uses v1, retention leaves it alone.
    server.create_app("pinned", 0, json!({"image": v1})).await;
    let report = server.post("/api/v1/registry/gc", json!({})).await;
    assert_eq!(
        report["retention"][0]["report"]["tags_deleted"],
        json!([]),
        "{report}"
    );
    let (status, _) = server
        .call(Method::DELETE, "/api/v1/apps/pinned", None)
        .await;
    assert_eq!(status, 204);
    let report = server.post("/api/v1/registry/gc", json!({})).await;
    assert_eq!(
        report["retention"][0]["repository"], "default/web",
        "{report}"
    );
    assert_eq!(
        report["retention"][0]["report"]["tags_deleted"],
        json!(["v1"]),
        "{report}"
    );
    let repository = server.get("/api/v1/images/default/web").await;
    let tags: Vec<&str> = repository["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["tag"].as_str().unwrap())
        .collect();
    assert_eq!(tags, vec!["v3"]);
}
