//! The code pipeline end to end on the real binary: a local-path git repository whose
//! Dockerfile builds `FROM berth-testapp-shell`, a pipeline linked to an app, "build now",
//! the image in Berth's registry and the app rolled out; then a red test that pushes nothing
//! and leaves the app untouched.
//!
//! Images the builds make carry the server's `berth.namespace` label and are removed by the
//! namespace guard with the app's containers.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::Server;

const DOCKERFILE: &str = "FROM berth-testapp-shell:latest\nCOPY app.txt test.sh /app/\n";
const TEST_SH: &str = "echo \"testing $(cat /app/app.txt)\"\n\
                       test \"$(cat /app/app.txt)\" = ok || { echo 'app.txt is wrong' >&2; exit 3; }\n\
                       echo 'all tests passed'\n";

/// Runs git in `dir` with a fixed identity and no user configuration.
fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "user.name=Ada", "-c", "user.email=ada@example.com"])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Commits `app.txt` with `content` (plus the Dockerfile and test script); returns the commit.
fn commit(dir: &Path, namespace: &str, content: &str) -> String {
    std::fs::write(dir.join("Dockerfile"), DOCKERFILE).unwrap();
    // The namespace keeps this test's layers its own (another test's cleanup cannot take them).
    std::fs::write(dir.join("test.sh"), format!("# {namespace}\n{TEST_SH}")).unwrap();
    std::fs::write(dir.join("app.txt"), content).unwrap();
    git(dir, &["add", "--all"]);
    git(
        dir,
        &["commit", "--quiet", "-m", &format!("app.txt = {content}")],
    );
    git(dir, &["rev-parse", "HEAD"])
}

async fn wait_build(server: &Server, id: i64) -> Value {
    let start = Instant::now();
    loop {
        let build = server.get(&format!("/api/v1/builds/{id}")).await;
        let status = build["status"].as_str().unwrap_or_default().to_owned();
        if [
            "succeeded",
            "failed",
            "cancelled",
            "interrupted",
            "timed_out",
        ]
        .contains(&status.as_str())
        {
            return build;
        }
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "build {id} not finished: {build:#}\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

async fn build_log(server: &Server, id: i64) -> String {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!(
            "{}/api/v1/builds/{id}/logs?follow=true",
            server.url
        ))
        .bearer_auth(&server.token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn tag_count(server: &Server, repository: &str) -> u64 {
    let repositories = server.get("/api/v1/images").await;
    repositories
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == repository)
        .map_or(0, |r| r["tag_count"].as_u64().unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn build_test_push_and_roll_out_and_a_red_test_changes_nothing() {
    let shell = tokio::task::spawn_blocking(berth_testkit::shell_image)
        .await
        .unwrap();
    assert_eq!(shell, berth_testkit::SHELL_IMAGE);
    let server = Server::start("pipelines").await;
    let namespace = server.namespace.namespace().to_owned();
    let repo = tempfile::tempdir().unwrap();
    git(repo.path(), &["init", "--quiet", "--initial-branch=main"]);
    let green = commit(repo.path(), &namespace, "ok");

    let app = "web";
    server.create_app(app, 1, json!({})).await;
    server.wait_rollout(app, Duration::from_secs(120)).await;
    let repository = format!("default/{namespace}");
    let (status, pipeline) = server
        .call(
            reqwest::Method::PUT,
            "/api/v1/pipelines/default/web",
            Some(json!({
                "repository_url": repo.path().display().to_string(),
                "branch_pattern": "main",
                "test_command": ["/bin/sh", "/app/test.sh"],
                "target_repository": repository,
                "deploy_app": app,
                "credentials": {"username": "git", "password": "never-shown"},
            })),
        )
        .await;
    assert_eq!(status, 201, "{pipeline}");
    assert_eq!(pipeline["has_credentials"], true);
    assert!(!pipeline.to_string().contains("never-shown"));
    // Bad input names its field.
    let (status, error) = server
        .call(
            reqwest::Method::PUT,
            "/api/v1/pipelines/default/bad",
            Some(json!({"repository_url": "/tmp/x", "target_repository": "other/x"})),
        )
        .await;
    assert_eq!(status, 400, "{error}");
    assert!(error.to_string().contains("target_repository"), "{error}");

    // Green: built, tested, pushed, rolled out. (Local-path remotes carry no credentials; the
    // stored ones are only handed to git.)
    let (status, queued) = server
        .call(
            reqwest::Method::POST,
            "/api/v1/pipelines/default/web/builds",
            None,
        )
        .await;
    assert_eq!(status, 202, "{queued}");
    let id = queued["id"].as_i64().unwrap();
    let build = wait_build(&server, id).await;
    let log = build_log(&server, id).await;
    assert_eq!(
        build["status"],
        "succeeded",
        "{build:#}\n{log}\n{}",
        server.log()
    );
    assert_eq!(build["commit"], green.as_str());
    assert!(log.contains("all tests passed"), "{log}");
    let digest = build["image_digest"].as_str().unwrap().to_owned();
    assert!(digest.starts_with("sha256:"), "{build:#}");
    assert!(
        build["rollout_outcome"]
            .as_str()
            .is_some_and(|o| o.contains("rolled out")),
        "{build:#}"
    );
    assert!(tag_count(&server, &repository).await >= 1);
    let image = format!("127.0.0.1:{}/{repository}@{digest}", server.port);
    let rolled = server.wait_rollout(app, Duration::from_secs(120)).await;
    assert_eq!(rolled["template"]["image"], image.as_str(), "{rolled:#}");
    let revision = rolled["current_revision"].clone();
    assert_eq!(rolled["rollout"]["phase"], "complete", "{rolled:#}");

    // Red: the test fails; nothing is pushed, the app keeps its revision.
    let tags_before = tag_count(&server, &repository).await;
    commit(repo.path(), &namespace, "broken");
    let queued = server
        .post(
            "/api/v1/pipelines/default/web/builds",
            json!({"branch": "main"}),
        )
        .await;
    let id = queued["id"].as_i64().unwrap();
    let build = wait_build(&server, id).await;
    assert_eq!(build["status"], "failed", "{build:#}");
    assert!(
        build["reason"]
            .as_str()
            .is_some_and(|r| r.contains("tests failed")),
        "{build:#}"
    );
    assert_eq!(build["image_digest"], Value::Null);
    let log = build_log(&server, id).await;
    assert!(log.contains("app.txt is wrong"), "{log}");
    assert_eq!(tag_count(&server, &repository).await, tags_before);
    let after = server.app(app).await;
    assert_eq!(after["current_revision"], revision);
    assert_eq!(after["template"]["image"], image.as_str());
    let builds = server.get("/api/v1/builds?team=default&pipeline=web").await;
    assert_eq!(builds.as_array().unwrap().len(), 2);
}
