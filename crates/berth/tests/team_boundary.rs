//! Teams as a hard boundary, attacked on the real binary: replayed webhook deliveries, a
//! pipeline reading another team's hosted repository from the server's disk, stored git
//! credentials sent to a new host, a deleted team's leftovers inherited by a namesake, and live
//! streams that outlive the app or the access they were opened with. Each attempt fails with a
//! clear 4xx (stable code, the field named) or ends, and shows nothing of the other team.

mod support;

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use support::git_repo::git;
use support::{Server, hmac_hex, wait_until};

const MIB: u64 = 1024 * 1024;
const SECRET: &str = "a-webhook-secret-for-tests";
const ZERO: &str = "0000000000000000000000000000000000000000";

fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// A GitHub push of `branch` from `before` to `after`.
fn push_payload(branch: &str, before: &str, after: &str) -> Vec<u8> {
    json!({
        "ref": format!("refs/heads/{branch}"),
        "before": before,
        "after": after,
        "deleted": false,
        "head_commit": {"id": after, "message": "ship it", "author": {"name": "Ada"}},
    })
    .to_string()
    .into_bytes()
}

/// Delivers `body` to the pipeline's webhook as GitHub would, under `delivery`.
async fn deliver(server: &Server, pipeline: &str, delivery: &str, body: &[u8]) -> (u16, Value) {
    let response = http()
        .post(format!(
            "{}/api/v1/pipelines/default/{pipeline}/webhook",
            server.url
        ))
        .header("Content-Type", "application/json")
        .header("X-GitHub-Event", "push")
        .header("X-GitHub-Delivery", delivery)
        .header(
            "X-Hub-Signature-256",
            format!("sha256={}", hmac_hex(SECRET, body)),
        )
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn commit_id(n: u8) -> String {
    format!("{n:02x}").repeat(20)
}

fn assert_field_error(status: u16, answer: &Value, field: &str, what: &str) {
    assert_eq!(status, 400, "{what}: {answer}");
    assert_eq!(answer["error"]["code"], "invalid_field", "{what}: {answer}");
    assert_eq!(answer["error"]["field"], field, "{what}: {answer}");
}

/// A captured, correctly signed delivery sent again under a new delivery id builds nothing;
/// nor does a delayed delivery of a push older than one already built (which would roll the
/// app back).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_webhook_deliveries_build_nothing() {
    let server = Server::start("boundary-replay").await;
    // Builds fail at once (nothing listens there): what counts is what gets queued.
    let (status, answer) = server
        .call(
            reqwest::Method::PUT,
            "/api/v1/pipelines/default/replay",
            Some(json!({
                "repository_url": "http://127.0.0.1:9/acme/shop.git",
                "branch_pattern": "main",
                "target_repository": "default/replay",
                "webhook_secret": SECRET,
            })),
        )
        .await;
    assert_eq!(status, 201, "{answer}");

    let first = push_payload("main", ZERO, &commit_id(1));
    let (status, built) = deliver(&server, "replay", "d-1", &first).await;
    assert_eq!(status, 202, "{built}");
    let first_build = built["id"].as_i64().unwrap();

    // The same signed body under fresh delivery ids: answered, never built.
    for delivery in ["d-replay-1", "d-replay-2"] {
        let (status, answer) = deliver(&server, "replay", delivery, &first).await;
        assert_eq!(status, 200, "{answer}");
        let why = answer["ignored"].as_str().unwrap_or_default();
        assert!(why.contains("already built"), "{answer}");
        assert!(why.contains(&commit_id(1)), "{answer}");
        assert_eq!(answer["build_id"], first_build, "{answer}");
    }

    // 1 -> 2 -> 3, the second push's delivery delayed past the third: it is older than what
    // was built and would roll the app back.
    let third = push_payload("main", &commit_id(2), &commit_id(3));
    let (status, answer) = deliver(&server, "replay", "d-3", &third).await;
    assert_eq!(status, 202, "{answer}");
    let second = push_payload("main", &commit_id(1), &commit_id(2));
    let (status, answer) = deliver(&server, "replay", "d-2", &second).await;
    assert_eq!(status, 200, "{answer}");
    assert!(
        answer["ignored"]
            .as_str()
            .is_some_and(|why| why.contains("older than a push")),
        "{answer}"
    );

    // Only the two first deliveries built; a build by hand still builds any commit.
    let builds = server
        .get("/api/v1/builds?team=default&pipeline=replay")
        .await;
    let commits: Vec<&str> = builds
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["commit"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(commits.len(), 2, "{builds:#}");
    assert!(commits.contains(&commit_id(1).as_str()) && commits.contains(&commit_id(3).as_str()));
    let (status, answer) = server
        .call(
            reqwest::Method::POST,
            "/api/v1/pipelines/default/replay/builds",
            Some(json!({"branch": "main", "commit": commit_id(1)})),
        )
        .await;
    assert_eq!(status, 202, "{answer}");
}

/// A member of one team can neither point a pipeline at the server's disk (where the other
/// team's hosted repositories live) nor carry stored git credentials to another host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelines_read_no_disk_and_credentials_stay_with_their_host() {
    let server = Server::start("boundary-remote").await;
    let red = server.register("rhea", Some("red")).await;
    let blue = server.register("bruno", Some("blue")).await;
    let put = |token: &str, path: &str, body: Value| {
        let token = token.to_owned();
        let path = format!("/api/v1/pipelines/{path}");
        let server = &server;
        async move {
            server
                .call_as(&token, reqwest::Method::PUT, &path, Some(body))
                .await
        }
    };
    // Blue's pipeline, fed by `git push` to Berth: its repository lives on the server's disk.
    let (status, answer) = put(
        &blue,
        "blue/shop",
        json!({"target_repository": "blue/shop"}),
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    let hosted = server.data_dir.join("git/blue/shop.git");
    for url in [
        hosted.display().to_string(),
        format!("file://{}", hosted.display()),
        "/etc".to_owned(),
    ] {
        let (status, answer) = put(
            &red,
            "red/steal",
            json!({"repository_url": url, "target_repository": "red/steal"}),
        )
        .await;
        assert_field_error(status, &answer, "repository_url", &url);
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains("network address"), "{answer}");
        assert!(!message.contains("blue"), "leaks nothing: {answer}");
    }
    let (status, _) = server
        .call_as(
            &red,
            reqwest::Method::GET,
            "/api/v1/pipelines/red/steal",
            None,
        )
        .await;
    assert_eq!(status, 404, "nothing was stored");
    // Admins may still build from a local path.
    let (status, answer) = server
        .call(
            reqwest::Method::PUT,
            "/api/v1/pipelines/red/local",
            Some(json!({"repository_url": "/srv/git/local.git", "target_repository": "red/local"})),
        )
        .await;
    assert_eq!(status, 201, "{answer}");

    // Credentials given for one host are not carried to another.
    let with_credentials = json!({
        "repository_url": "https://git.example.com/red/app.git",
        "target_repository": "red/app",
        "credentials": {"username": "deploy", "password": "s3cret-pass"},
    });
    let (status, answer) = put(&red, "red/app", with_credentials.clone()).await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["has_credentials"], true);
    for url in [
        "https://collector.example.net/red/app.git",
        "http://git.example.com/red/app.git",
        "https://git.example.com:8443/red/app.git",
        "git@git.example.com:red/app.git",
    ] {
        let (status, answer) = put(
            &red,
            "red/app",
            json!({"repository_url": url, "target_repository": "red/app"}),
        )
        .await;
        assert_field_error(status, &answer, "credentials", url);
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains("give the credentials again"), "{answer}");
        assert!(!message.contains("s3cret"), "{answer}");
    }
    // Same host: kept. Another host with new credentials: fine.
    let (status, answer) = put(
        &red,
        "red/app",
        json!({"repository_url": "https://GIT.example.com:443/red/other.git", "target_repository": "red/app"}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["has_credentials"], true);
    let (status, answer) = put(
        &red,
        "red/app",
        json!({
            "repository_url": "https://collector.example.net/red/app.git",
            "target_repository": "red/app",
            "credentials": {"username": "other", "password": "another-pass"},
        }),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["has_credentials"], true);
    // And back: the new credentials belong to the new host.
    let (status, answer) = put(
        &red,
        "red/app",
        json!({"repository_url": "https://git.example.com/red/app.git", "target_repository": "red/app"}),
    )
    .await;
    assert_field_error(status, &answer, "credentials", "back to the first host");
}

/// Runs docker with a private client config.
fn docker_with(config: &std::path::Path, args: &[&str]) -> Output {
    Command::new("docker")
        .env("DOCKER_CONFIG", config)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run docker")
}

/// A team deleted and made again by someone else inherits nothing: no images, no pipelines,
/// no hosted repositories, no retention rules.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_team_leaves_nothing_to_inherit() {
    let server = Server::start("boundary-inherit").await;
    let namespace = server.namespace.namespace().to_owned();
    let team = "fold";
    let carol = server.register("carol", Some(team)).await;
    let host = format!("127.0.0.1:{}", server.port);

    // An image in the team's namespace.
    let config = tempfile::tempdir().unwrap();
    let image = format!("{host}/{team}/app:{namespace}");
    let run = |args: &[&str]| {
        let out = docker_with(config.path(), args);
        assert!(
            out.status.success(),
            "docker {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&["login", &host, "-u", "carol", "--password", &carol]);
    run(&["tag", &berth_testkit::testapp_image(), &image]);
    run(&["push", &image]);
    let _ = docker_with(config.path(), &["rmi", &image]);
    let pushed = server
        .get(&format!("/api/v1/images/{team}/app:{namespace}"))
        .await;
    let digest = pushed["digest"].as_str().unwrap().to_owned();
    let layer = pushed["layers"][0]["digest"]
        .as_str()
        .unwrap_or_default()
        .to_owned();

    // A pipeline with a hosted repository, filled by a push; a retention rule.
    let (status, answer) = server
        .call_as(
            &carol,
            reqwest::Method::PUT,
            &format!("/api/v1/pipelines/{team}/pipe"),
            Some(json!({"target_repository": format!("{team}/app"), "branch_pattern": "never"})),
        )
        .await;
    assert_eq!(status, 201, "{answer}");
    let repo = tempfile::tempdir().unwrap();
    git(repo.path(), &["init", "--quiet", "--initial-branch=main"]);
    std::fs::write(repo.path().join("secret.txt"), "fold's code").unwrap();
    git(repo.path(), &["add", "--all"]);
    git(repo.path(), &["commit", "--quiet", "-m", "code"]);
    let remote = format!("http://carol:{carol}@{host}/git/{team}/pipe.git");
    git(repo.path(), &["push", "--quiet", &remote, "main"]);
    assert!(
        server
            .data_dir
            .join(format!("git/{team}/pipe.git"))
            .exists()
    );
    let (status, answer) = server
        .call(
            reqwest::Method::PUT,
            &format!("/api/v1/registry/retention-rules/{team}/app"),
            Some(json!({"keep_newest_tags": 1})),
        )
        .await;
    assert!(status < 300, "{answer}");

    // Deleted (by an admin), made again by someone else.
    let (status, answer) = server
        .call(
            reqwest::Method::DELETE,
            &format!("/api/v1/teams/{team}"),
            None,
        )
        .await;
    assert_eq!(status, 204, "{answer}");
    assert!(!server.data_dir.join(format!("git/{team}")).exists());
    let dave = server.register("dave", Some(team)).await;

    let (status, pipelines) = server
        .call_as(&dave, reqwest::Method::GET, "/api/v1/pipelines", None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(pipelines, json!([]), "no pipelines");
    let (status, images) = server
        .call_as(&dave, reqwest::Method::GET, "/api/v1/images", None)
        .await;
    assert_eq!(status, 200);
    assert!(
        !images.to_string().contains(&format!("{team}/app")),
        "{images}"
    );
    let (status, answer) = server
        .call_as(
            &dave,
            reqwest::Method::GET,
            &format!("/api/v1/images/{team}/app"),
            None,
        )
        .await;
    assert_eq!(status, 404, "{answer}");
    let rules = server.get("/api/v1/registry/retention-rules").await;
    assert!(!rules.to_string().contains(&format!("{team}/")), "{rules}");
    // Through the registry protocol: no manifest, no layer reachable by digest.
    let manifest = http()
        .get(format!("{}/v2/{team}/app/manifests/{digest}", server.url))
        .basic_auth("dave", Some(&dave))
        .header(
            "Accept",
            "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(manifest.status().as_u16(), 404);
    if !layer.is_empty() {
        let blob = http()
            .head(format!("{}/v2/{team}/app/blobs/{layer}", server.url))
            .basic_auth("dave", Some(&dave))
            .send()
            .await
            .unwrap();
        assert_eq!(
            blob.status().as_u16(),
            404,
            "a layer of the old team's image"
        );
    }
    let (status, catalog) = {
        let r = http()
            .get(format!("{}/v2/_catalog", server.url))
            .basic_auth("dave", Some(&dave))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    };
    assert_eq!(status, 200);
    assert!(!catalog.contains(&format!("{team}/")), "{catalog}");
    // The hosted repository is gone with its pipeline; a pipeline made again starts empty.
    let (status, answer) = server
        .call_as(
            &dave,
            reqwest::Method::PUT,
            &format!("/api/v1/pipelines/{team}/pipe"),
            Some(json!({"target_repository": format!("{team}/app"), "branch_pattern": "never"})),
        )
        .await;
    assert_eq!(status, 201, "{answer}");
    let clone = tempfile::tempdir().unwrap();
    let remote = format!("http://dave:{dave}@{host}/git/{team}/pipe.git");
    let out = support::git_repo::git_output(clone.path(), &["ls-remote", &remote]);
    assert!(
        String::from_utf8_lossy(&out.stdout).trim().is_empty(),
        "no refs inherited: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// Reads a streamed response until it ends; panics when it is still open after `timeout`.
async fn wait_for_end(mut response: reqwest::Response, what: &str, timeout: Duration) -> String {
    let mut seen = Vec::new();
    let read = async {
        while let Ok(Some(chunk)) = response.chunk().await {
            seen.extend_from_slice(&chunk);
        }
    };
    tokio::time::timeout(timeout, read)
        .await
        .unwrap_or_else(|_| panic!("{what}: the stream is still open after {timeout:?}"));
    String::from_utf8_lossy(&seen).into_owned()
}

async fn open(server: &Server, token: &str, path: &str) -> reqwest::Response {
    let response = http()
        .get(format!("{}{path}", server.url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200, "{path}");
    response
}

/// Live streams follow the app they were opened on and the access they were opened with: they
/// end when the app is deleted (a namesake of another team shows nothing in them) and when the
/// caller leaves the team.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_streams_end_with_the_app_or_the_access() {
    let server = Server::start("boundary-streams").await;
    let erin = server.register("erin", Some("east")).await;
    let gil = server.register("gil", None).await;
    let wes = server.register("wes", Some("west")).await;
    let (status, answer) = server
        .call_as(
            &erin,
            reqwest::Method::PUT,
            "/api/v1/teams/east/members/gil",
            Some(json!({"role": "viewer"})),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let app = |name: &str, team: &str| {
        json!({
            "name": name, "team": team, "image": berth_testkit::TESTAPP_IMAGE, "replicas": 1,
            "health_path": "/healthz", "cpu_millis": 100, "memory_bytes": 64 * MIB,
        })
    };
    let (status, answer) = server
        .call_as(
            &erin,
            reqwest::Method::POST,
            "/api/v1/apps",
            Some(app("shared", "east")),
        )
        .await;
    assert_eq!(status, 201, "{answer}");

    // A viewer removed from the team: their event and log streams end.
    let events = open(&server, &gil, "/api/v1/apps/shared/events/stream?after=0").await;
    let logs = open(&server, &gil, "/api/v1/apps/shared/logs?follow=true").await;
    let (status, answer) = server
        .call_as(
            &erin,
            reqwest::Method::DELETE,
            "/api/v1/teams/east/members/gil",
            None,
        )
        .await;
    assert!(status < 300, "{answer}");
    wait_for_end(
        events,
        "events of a removed member",
        Duration::from_secs(20),
    )
    .await;
    wait_for_end(logs, "logs of a removed member", Duration::from_secs(20)).await;

    // The app deleted and its name taken by another team: the owner's streams end, and show
    // nothing of the namesake.
    let events = open(&server, &erin, "/api/v1/apps/shared/events/stream").await;
    let logs = open(&server, &erin, "/api/v1/apps/shared/logs?follow=true").await;
    let (status, answer) = server
        .call_as(&erin, reqwest::Method::DELETE, "/api/v1/apps/shared", None)
        .await;
    assert!(status < 300, "{answer}");
    wait_until("the app is gone", Duration::from_secs(30), || async {
        server
            .call_as(&erin, reqwest::Method::GET, "/api/v1/apps/shared", None)
            .await
            .0
            == 404
    })
    .await;
    let (status, answer) = server
        .call_as(
            &wes,
            reqwest::Method::POST,
            "/api/v1/apps",
            Some(app("shared", "west")),
        )
        .await;
    assert_eq!(status, 201, "{answer}");
    let seen = wait_for_end(events, "events of a deleted app", Duration::from_secs(20)).await;
    assert!(!seen.contains("west"), "{seen}");
    let seen = wait_for_end(logs, "logs of a deleted app", Duration::from_secs(20)).await;
    assert!(!seen.contains("west"), "{seen}");
    // The namesake's own stream is theirs alone.
    let (status, _) = server
        .call_as(
            &erin,
            reqwest::Method::GET,
            "/api/v1/apps/shared/events/stream",
            None,
        )
        .await;
    assert_eq!(status, 404);
    let (status, answer) = server
        .call_as(&wes, reqwest::Method::DELETE, "/api/v1/apps/shared", None)
        .await;
    assert!(status < 300, "{answer}");
}
