//! Teams are a hard boundary: each test attempts one way across it as a member of one team —
//! against another team or against the platform itself — on the real binary, and checks that
//! it fails with a clear error and shows nothing of the other side.
//!
//! Classes: a build context or Dockerfile that leads out of the checkout (to the server's data
//! directory and its secrets); a Dockerfile building on another team's image, by name, by
//! another of the registry's host names or by image ID; an app image given as an image ID; one
//! team's instances reaching another's by name or address; a gzip body that inflates beyond
//! bounds; and image labels posing as Berth's own.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use support::Server;
use support::git_repo::{build_log, git, git_output, init, wait_build};

/// `http://<user>:<token>@host/git/<team>/<name>.git`.
fn remote(server: &Server, user: &str, token: &str, team: &str, name: &str) -> String {
    let host = server.url.trim_start_matches("http://");
    format!("http://{user}:{token}@{host}/git/{team}/{name}.git")
}

/// Commits the files given (path → content; a content starting with `->` makes a symbolic
/// link to the rest) and pushes `main` to `url`; returns the build id the push started.
async fn push_files(server: &Server, dir: &Path, url: &str, files: &[(&str, &str)]) -> i64 {
    commit_files(dir, files);
    let out = git_output(dir, &["push", "--force", url, "main"]);
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{text}\n{}", server.log());
    text.split("(build id ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .and_then(|id| id.trim().parse().ok())
        .unwrap_or_else(|| panic!("no build started: {text}"))
}

/// Commits the files given (see [`push_files`]).
fn commit_files(dir: &Path, files: &[(&str, &str)]) {
    for (path, content) in files {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let _ = std::fs::remove_file(&path);
        match content.strip_prefix("->") {
            Some(target) => std::os::unix::fs::symlink(target, &path).unwrap(),
            None => std::fs::write(&path, content).unwrap(),
        }
    }
    git(dir, &["add", "--all"]);
    git(
        dir,
        &["commit", "--quiet", "--allow-empty", "-m", "attempt"],
    );
}

/// Creates the hosted pipeline `team/name` as `token` (no remote: it builds what is pushed).
async fn hosted_pipeline(server: &Server, token: &str, team: &str, name: &str, extra: Value) {
    let mut body = json!({"branch_pattern": "main", "target_repository": format!("{team}/{name}")});
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    let (status, answer) = server
        .call_as(
            token,
            reqwest::Method::PUT,
            &format!("/api/v1/pipelines/{team}/{name}"),
            Some(body),
        )
        .await;
    assert_eq!(status, 201, "{answer}");
}

fn docker(args: &[&str]) -> (bool, String) {
    let out = Command::new("docker").args(args).output().expect("docker");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_build_never_reads_outside_its_checkout_nor_another_teams_images() {
    tokio::task::spawn_blocking(berth_testkit::shell_image)
        .await
        .unwrap();
    let server = Server::start("iso-build").await;
    let namespace = server.namespace.namespace().to_owned();
    let alice = server.register("alice", Some("web")).await;
    let bob = server.register("bob", Some("ops")).await;

    // Bob's team builds an image of its own: it is now in the engine's cache by name.
    hosted_pipeline(&server, &bob, "ops", "base", json!({})).await;
    let ops_work = tempfile::tempdir().unwrap();
    init(ops_work.path());
    let secret_line = format!("ops-private-{namespace}");
    let id = push_files(
        &server,
        ops_work.path(),
        &remote(&server, "bob", &bob, "ops", "base"),
        &[
            (
                "Dockerfile",
                "FROM berth-testapp-shell:latest\nCOPY secret.txt /secret.txt\n",
            ),
            ("secret.txt", &secret_line),
        ],
    )
    .await;
    let built = wait_build(&server, id).await;
    assert_eq!(
        built["status"],
        "succeeded",
        "{built:#}\n{}",
        build_log(&server, id).await
    );
    let ops_image = format!(
        "127.0.0.1:{}/ops/base@{}",
        server.port,
        built["image_digest"].as_str().unwrap()
    );
    let (_, ops_id) = docker(&["image", "inspect", "--format", "{{.Id}}", &ops_image]);
    let ops_id = ops_id.trim().to_owned();
    assert!(ops_id.starts_with("sha256:"), "{ops_id}");

    hosted_pipeline(&server, &alice, "web", "site", json!({})).await;
    let work = tempfile::tempdir().unwrap();
    init(work.path());
    let url = remote(&server, "alice", &alice, "web", "site");
    let data_dir = server.data_dir.display().to_string();
    let short_id = ops_id.trim_start_matches("sha256:")[..12].to_owned();
    let host_alias = format!("localhost:{}", server.port);
    let steal = "FROM scratch\nCOPY admin-token /\n".to_owned();
    // (what the repository holds, the pipeline's context and Dockerfile, what the refusal says)
    let attempts: Vec<(Vec<(&str, String)>, &str, &str, &str)> = vec![
        (
            vec![("ctx", format!("->{data_dir}"))],
            "ctx",
            "",
            "leads out of the repository",
        ),
        (
            vec![("ctx", "->../../../../../../../../../../..".into())],
            "ctx/tmp",
            "",
            "leads out of the repository",
        ),
        (
            vec![("a/b", format!("->{data_dir}")), ("a/c", "x".into())],
            "a/b",
            "",
            "leads out of the repository",
        ),
        (
            vec![("Dockerfile.evil", format!("->{data_dir}/admin-token"))],
            "",
            "Dockerfile.evil",
            "leads out of the repository",
        ),
        (
            vec![
                ("Dockerfile", steal.clone()),
                ("admin-token", format!("->{data_dir}/admin-token")),
            ],
            "",
            "",
            "COPY failed",
        ),
        (
            vec![("Dockerfile", format!("FROM {ops_image}\n"))],
            "",
            "",
            "not team web's",
        ),
        (
            vec![(
                "Dockerfile",
                format!(
                    "FROM {}\n",
                    ops_image.replace(&format!("127.0.0.1:{}", server.port), &host_alias)
                ),
            )],
            "",
            "",
            "not team web's",
        ),
        (
            vec![(
                "Dockerfile",
                format!("FROM scratch\nCOPY --from={ops_image} /secret.txt /\n"),
            )],
            "",
            "",
            "not team web's",
        ),
        (
            vec![("Dockerfile", format!("FROM {ops_id}\n"))],
            "",
            "",
            "reads as an image ID",
        ),
        (
            vec![("Dockerfile", format!("FROM {short_id}\n"))],
            "",
            "",
            "reads as an image ID",
        ),
    ];
    for (files, context, dockerfile, refusal) in attempts {
        let (status, answer) = server
            .call_as(
                &alice,
                reqwest::Method::PUT,
                "/api/v1/pipelines/web/site",
                Some(json!({
                    "branch_pattern": "main",
                    "target_repository": "web/site",
                    "context": context,
                    "dockerfile": dockerfile,
                })),
            )
            .await;
        assert!(status == 200 || status == 201, "{answer}");
        let files: Vec<(&str, &str)> = files.iter().map(|(p, c)| (*p, c.as_str())).collect();
        let id = push_files(&server, work.path(), &url, &files).await;
        let build = wait_build(&server, id).await;
        let log = build_log(&server, id).await;
        assert_eq!(build["status"], "failed", "{files:?}: {build:#}\n{log}");
        let reason = format!("{}\n{log}", build["reason"]);
        assert!(reason.contains(refusal), "{files:?}: {reason}");
        assert!(
            !reason.contains(&server.token),
            "{files:?} leaked the admin token"
        );
        assert!(!reason.contains(&secret_line), "{files:?} leaked ops' file");
        // Nothing was pushed for the attempt.
        assert_eq!(build["image_digest"], Value::Null, "{build:#}");
    }
    let images = server.get("/api/v1/images").await;
    assert!(
        !images.to_string().contains("web/site"),
        "nothing of the attempts reached the registry: {images:#}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_app_image_is_never_an_image_id() {
    let server = Server::start("iso-image-id").await;
    let alice = server.register("alice", Some("web")).await;
    let (_, id) = docker(&[
        "image",
        "inspect",
        "--format",
        "{{.Id}}",
        berth_testkit::TESTAPP_IMAGE,
    ]);
    let id = id.trim().to_owned();
    let hex = id.trim_start_matches("sha256:").to_owned();
    for image in [
        id.clone(),
        hex.clone(),
        hex[..12].to_owned(),
        format!("sha256:{}", &hex[..8]),
    ] {
        let (status, error) = server
            .call_as(
                &alice,
                reqwest::Method::POST,
                "/api/v1/apps",
                Some(json!({"name": "web1", "team": "web", "image": image, "replicas": 1})),
            )
            .await;
        assert_eq!(status, 400, "{image}: {error}");
        assert_eq!(error["error"]["field"], "template.image", "{error}");
        assert!(
            error["error"]["message"]
                .as_str()
                .unwrap()
                .contains("image ID"),
            "{error}"
        );
    }
    let (status, _) = server
        .call_as(&alice, reqwest::Method::GET, "/api/v1/apps/web1", None)
        .await;
    assert_eq!(status, 404, "nothing was created");
}

/// Whether `name` resolves inside the container (busybox's own DNS client: the static
/// image has no NSS for `getaddrinfo`).
fn resolves_in(container: &str, name: &str) -> (bool, String) {
    docker(&["exec", container, "nslookup", name])
}

/// Sends `GET /healthz` to `address:8080` from inside the container; whether it answered 200.
fn health_from(container: &str, address: &str) -> (bool, String) {
    let script = format!("printf 'GET /healthz HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {address} 8080");
    let (_, text) = docker(&["exec", container, "sh", "-c", &script]);
    (text.starts_with("HTTP/1.1 200"), text)
}

#[tokio::test(flavor = "multi_thread")]
async fn one_teams_instances_cannot_reach_another_teams() {
    let shell = tokio::task::spawn_blocking(berth_testkit::shell_image)
        .await
        .unwrap();
    let server = Server::start("iso-network").await;
    let alice = server.register("alice", Some("web")).await;
    let bob = server.register("bob", Some("ops")).await;
    for (token, team, name) in [
        (&alice, "web", "front"),
        (&alice, "web", "back"),
        (&bob, "ops", "vault"),
    ] {
        let (status, answer) = server
            .call_as(
                token,
                reqwest::Method::POST,
                "/api/v1/apps",
                Some(
                    // `back` is internal: no external route, its team's apps reach it by name.
                    json!({"name": name, "team": team, "image": shell, "replicas": 1,
                    "health_path": "/healthz", "cpu_millis": 100, "memory_bytes": 64 << 20,
                    "internal": name == "back"}),
                ),
            )
            .await;
        assert_eq!(status, 201, "{answer}");
    }
    let mut containers = std::collections::HashMap::new();
    let mut addresses = std::collections::HashMap::new();
    for name in ["front", "back", "vault"] {
        let app = server.wait_rollout(name, Duration::from_secs(120)).await;
        let instance = &app["instances"][0];
        containers.insert(name, instance["container_id"].as_str().unwrap().to_owned());
        addresses.insert(
            name,
            instance["address"].as_str().unwrap_or_default().to_owned(),
        );
    }
    let front = &containers["front"];
    let ip = |name: &str| {
        let address = &addresses[name];
        address.split(':').next().unwrap_or(address).to_owned()
    };
    // Its own team's app: by name and by address.
    let (ok, text) = resolves_in(front, "back");
    assert!(ok, "front cannot resolve back: {text}");
    let (ok, text) = health_from(front, &ip("back"));
    assert!(ok, "front cannot reach back: {text}");
    // Another team's app: no such name, and no route to its address.
    let (ok, text) = resolves_in(front, "vault");
    assert!(!ok, "front resolved ops' vault: {text}");
    let (ok, text) = health_from(front, &ip("vault"));
    assert!(!ok, "front reached ops' vault at {}: {text}", ip("vault"));
    // The other way round too.
    let (ok, text) = health_from(&containers["vault"], &ip("front"));
    assert!(!ok, "vault reached web's front: {text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_compressed_git_request_is_bounded_once_inflated() {
    let server = Server::start("iso-gzip").await;
    let alice = server.register("alice", Some("web")).await;
    hosted_pipeline(&server, &alice, "web", "site", json!({})).await;
    // 64 MiB of zeros, about 64 KiB on the wire.
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut encoder, &vec![0u8; 64 << 20]).unwrap();
    let bomb = encoder.finish().unwrap();
    let response = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .post(format!("{}/git/web/site.git/git-upload-pack", server.url))
        .basic_auth("alice", Some(&alice))
        .header("Content-Type", "application/x-git-upload-pack-request")
        .header("Content-Encoding", "gzip")
        .body(bomb)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let text = response.text().await.unwrap();
    assert!(text.contains("once decompressed"), "{text}");
    // The server is still there.
    let (status, _) = server
        .call_as("", reqwest::Method::GET, "/healthz", None)
        .await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn image_labels_never_pose_as_berths() {
    tokio::task::spawn_blocking(berth_testkit::shell_image)
        .await
        .unwrap();
    let server = Server::start("iso-labels").await;
    let namespace = server.namespace.namespace().to_owned();
    let alice = server.register("alice", Some("web")).await;
    let bob = server.register("bob", Some("ops")).await;
    let (status, answer) = server
        .call_as(
            &bob,
            reqwest::Method::POST,
            "/api/v1/apps",
            Some(
                json!({"name": "vault", "team": "ops", "image": berth_testkit::TESTAPP_IMAGE,
                "replicas": 1, "cpu_millis": 100, "memory_bytes": 64 << 20}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{answer}");
    let before = server.wait_rollout("vault", Duration::from_secs(120)).await;
    let vault_container = before["instances"][0]["container_id"].clone();

    // Alice's image claims to be an instance of bob's app (and a build of every build): its
    // test container runs a while, then the build ends.
    hosted_pipeline(
        &server,
        &alice,
        "web",
        "site",
        json!({"test_command": ["/bin/sh", "-c", "sleep 6"]}),
    )
    .await;
    let work = tempfile::tempdir().unwrap();
    init(work.path());
    let dockerfile = format!(
        "FROM berth-testapp-shell:latest\nLABEL berth.namespace={namespace} berth.app=vault \
         berth.instance=vault-9 berth.ordinal=9 berth.revision=1 berth.build=x\n"
    );
    commit_files(work.path(), &[("Dockerfile", &dockerfile)]);
    // The push follows its build to the end: push in the background, watch meanwhile.
    let dir = work.path().to_owned();
    let url = remote(&server, "alice", &alice, "web", "site");
    let pushing =
        tokio::task::spawn_blocking(move || git_output(&dir, &["push", "--force", &url, "main"]));
    let mut id = None;
    for _ in 0..300 {
        let builds = server.get("/api/v1/builds?team=web&pipeline=site").await;
        if let Some(found) = builds[0]["id"].as_i64() {
            id = Some(found);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let id = id.expect("the push started a build");
    // While the test container runs, bob's app still has exactly its own instance.
    let mut seen_running = false;
    for _ in 0..200 {
        let build = server.get(&format!("/api/v1/builds/{id}")).await;
        let app = server.app("vault").await;
        let instances = app["instances"].as_array().unwrap().clone();
        assert_eq!(instances.len(), 1, "{app:#}");
        assert_eq!(instances[0]["container_id"], vault_container, "{app:#}");
        if build["status"] == "testing" {
            seen_running = true;
        }
        if ["succeeded", "failed"].contains(&build["status"].as_str().unwrap_or_default()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let build = wait_build(&server, id).await;
    assert_eq!(
        build["status"],
        "succeeded",
        "{build:#}\n{}",
        build_log(&server, id).await
    );
    assert!(seen_running, "the test container was seen running");
    assert!(pushing.await.unwrap().status.success());
    // Bob's instance was never touched.
    let events = server.events("vault").await;
    assert!(
        !events
            .iter()
            .any(|e| e["kind"] == "instance_stopped" || e["warning"] == true),
        "{events:#?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_git_push_counts_against_the_teams_storage_quota() {
    let server = Server::start("iso-git-quota").await;
    let alice = server.register("alice", Some("web")).await;
    hosted_pipeline(&server, &alice, "web", "site", json!({})).await;
    let work = tempfile::tempdir().unwrap();
    init(work.path());
    // Incompressible content, far more than what is left of the quota.
    let noise: String = (0..200_000u32)
        .map(|i| format!("{:08x}", i.wrapping_mul(2_654_435_761)))
        .collect();
    commit_files(work.path(), &[("noise.txt", &noise)]);
    let used = server.get("/api/v1/teams/web").await["usage"]["registry_bytes"]
        .as_u64()
        .unwrap();
    let quota = json!({"quota": {"registry_bytes": used + 64 * 1024}});
    let (status, team) = server
        .call(reqwest::Method::PATCH, "/api/v1/teams/web", Some(quota))
        .await;
    assert_eq!(status, 200, "{team}");
    let url = remote(&server, "alice", &alice, "web", "site");
    let out = git_output(work.path(), &["push", &url, "main"]);
    assert!(!out.status.success(), "a push past the quota was stored");
    let refs = git_output(work.path(), &["ls-remote", &url]);
    assert!(
        String::from_utf8_lossy(&refs.stdout).trim().is_empty(),
        "the push left a branch"
    );
    // With nothing left, a push is refused up front, saying why.
    let quota = json!({"quota": {"registry_bytes": used}});
    let (status, team) = server
        .call(reqwest::Method::PATCH, "/api/v1/teams/web", Some(quota))
        .await;
    assert_eq!(status, 200, "{team}");
    let out = git_output(work.path(), &["push", &url, "main"]);
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("quota exceeded"), "{text}");
}
