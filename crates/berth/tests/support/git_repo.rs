//! Git repositories and builds for pipeline tests: commits whose Dockerfile builds
//! `FROM berth-testapp-shell` with a test script that passes only when `app.txt` is `ok`, and
//! waiting for a build's end and reading its log.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::Server;

pub const DOCKERFILE: &str = "FROM berth-testapp-shell:latest\nCOPY app.txt test.sh /app/\n";
pub const TEST_SH: &str = "echo \"testing $(cat /app/app.txt)\"\n\
                           test \"$(cat /app/app.txt)\" = ok || { echo 'app.txt is wrong' >&2; exit 3; }\n\
                           echo 'all tests passed'\n";

/// Runs git in `dir` with a fixed identity and no user configuration; returns its stdout.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = git_output(dir, args);
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Runs git in `dir` like [`git`], whatever its outcome.
pub fn git_output(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new("git")
        .args(["-c", "user.name=Ada", "-c", "user.email=ada@example.com"])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .expect("run git")
}

/// A new repository with branch `main` and no commits.
pub fn init(dir: &Path) {
    git(dir, &["init", "--quiet", "--initial-branch=main"]);
}

/// Commits `app.txt` with `content` (plus the Dockerfile and test script); returns the commit.
/// The namespace keeps this test's layers its own (another test's cleanup cannot take them).
pub fn commit(dir: &Path, namespace: &str, content: &str) -> String {
    std::fs::write(dir.join("Dockerfile"), DOCKERFILE).unwrap();
    std::fs::write(dir.join("test.sh"), format!("# {namespace}\n{TEST_SH}")).unwrap();
    std::fs::write(dir.join("app.txt"), content).unwrap();
    git(dir, &["add", "--all"]);
    git(
        dir,
        &["commit", "--quiet", "-m", &format!("app.txt = {content}")],
    );
    git(dir, &["rev-parse", "HEAD"])
}

/// The build once it has ended (panics after five minutes).
pub async fn wait_build(server: &Server, id: i64) -> Value {
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

/// The build's whole log (waits for its end).
pub async fn build_log(server: &Server, id: i64) -> String {
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

/// How many tags a repository of the built-in registry has.
pub async fn tag_count(server: &Server, repository: &str) -> u64 {
    let repositories = server.get("/api/v1/images").await;
    repositories
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == repository)
        .map_or(0, |r| r["tag_count"].as_u64().unwrap())
}

/// Creates pipeline `name` of team `default` on `repo` with `test_command`, pushing to
/// `default/<namespace>-<name>`.
pub async fn put_pipeline(
    server: &Server,
    name: &str,
    repo: &std::path::Path,
    test_command: Value,
) {
    let namespace = server.namespace.namespace();
    let (status, body) = server
        .call(
            reqwest::Method::PUT,
            &format!("/api/v1/pipelines/default/{name}"),
            Some(json!({
                "repository_url": repo.display().to_string(),
                "test_command": test_command,
                "target_repository": format!("default/{namespace}-{name}"),
            })),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}

/// Queues a build of `pipeline` now; returns its id.
pub async fn build_now(server: &Server, pipeline: &str) -> i64 {
    let (status, queued) = server
        .call(
            reqwest::Method::POST,
            &format!("/api/v1/pipelines/default/{pipeline}/builds"),
            None,
        )
        .await;
    assert_eq!(status, 202, "{queued}");
    queued["id"].as_i64().unwrap()
}

/// Waits until the build runs its tests (its test command printed `sleeping`).
pub async fn wait_testing(server: &Server, id: i64) {
    super::wait_until(
        "the build to run its tests",
        Duration::from_secs(120),
        || async {
            let build = server.get(&format!("/api/v1/builds/{id}")).await;
            build["status"] == "testing"
        },
    )
    .await;
}
