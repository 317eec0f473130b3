//! The code pipeline end to end on the real binary: a local-path git repository whose
//! Dockerfile builds `FROM berth-testapp-shell`, a pipeline linked to an app, "build now",
//! the image in Berth's registry and the app rolled out; then a red test that pushes nothing
//! and leaves the app untouched.
//!
//! Images the builds make carry the server's `berth.namespace` label and are removed by the
//! namespace guard with the app's containers.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::Server;
use support::git_repo::{
    build_log, build_now, commit, git, put_pipeline, tag_count, wait_build, wait_testing,
};

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
    // The rollout went through the application layer, audited as the pipeline's creator.
    let audit = server
        .get(&format!(
            "/api/v1/audit?action=apps.deploy&object=apps/{app}"
        ))
        .await;
    let deploys: Vec<&Value> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["source"] == "pipeline default/web")
        .collect();
    assert_eq!(deploys.len(), 1, "{audit:#}");
    assert_eq!(deploys[0]["actor"], "admin", "{audit:#}");
    assert_eq!(deploys[0]["outcome"], "success", "{audit:#}");
    assert_eq!(deploys[0]["status"], 0, "{audit:#}");
    // The pipeline answers its newest build, alone and in the list.
    let shown = server.get("/api/v1/pipelines/default/web").await;
    assert_eq!(shown["last_build"]["id"], id, "{shown:#}");
    assert_eq!(shown["last_build"]["status"], "succeeded");
    let listed = server.get("/api/v1/pipelines?team=default").await;
    assert_eq!(listed[0]["last_build"]["id"], id, "{listed:#}");
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

/// Puts pipeline `default/<name>` building `repo` with `test_command`.
#[tokio::test(flavor = "multi_thread")]
async fn cancel_timeout_and_a_restart_mid_build_end_builds_and_the_queue_goes_on() {
    tokio::task::spawn_blocking(berth_testkit::shell_image)
        .await
        .unwrap();
    let mut server = Server::start_with(
        "pipeline-faults",
        &[
            "--build-timeout",
            "20s",
            "--build-retention",
            "2",
            "--build-test-memory",
            "300Mi",
        ],
    )
    .await;
    let namespace = server.namespace.namespace().to_owned();
    let repo = tempfile::tempdir().unwrap();
    git(repo.path(), &["init", "--quiet", "--initial-branch=main"]);
    commit(repo.path(), &namespace, "ok");
    put_pipeline(
        &server,
        "slow",
        repo.path(),
        json!(["/bin/sh", "-c", "echo sleeping; sleep 600"]),
    )
    .await;
    // The tests run with the server's limits (cgroup v1 or v2, whichever the host has).
    let limit = "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/memory.max \
                 2>/dev/null; /bin/sh /app/test.sh";
    put_pipeline(
        &server,
        "quick",
        repo.path(),
        json!(["/bin/sh", "-c", limit]),
    )
    .await;

    // Cancel during the tests: the build ends cancelled at once and pushes nothing.
    let cancelled = build_now(&server, "slow").await;
    wait_testing(&server, cancelled).await;
    // The commit is on the build while it runs, not only once it ends.
    let running = server.get(&format!("/api/v1/builds/{cancelled}")).await;
    assert_eq!(running["author"], "Ada", "{running:#}");
    assert_eq!(running["message"], "app.txt = ok", "{running:#}");
    let (status, body) = server
        .call(
            reqwest::Method::POST,
            &format!("/api/v1/builds/{cancelled}/cancel"),
            None,
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let build = wait_build(&server, cancelled).await;
    assert_eq!(build["status"], "cancelled", "{build:#}");
    assert_eq!(build["image_digest"], Value::Null);
    let (status, body) = server
        .call(
            reqwest::Method::POST,
            &format!("/api/v1/builds/{cancelled}/cancel"),
            None,
        )
        .await;
    assert_eq!(status, 409, "an ended build: {body}");

    // The timeout stops a build that runs too long.
    let timed_out = build_now(&server, "slow").await;
    let build = wait_build(&server, timed_out).await;
    assert_eq!(build["status"], "timed_out", "{build:#}");
    assert!(
        build["reason"]
            .as_str()
            .is_some_and(|r| r.contains("timeout of 20 s")),
        "{build:#}"
    );

    // A restart mid-build: the running build ends interrupted, the queued one runs after.
    let running = build_now(&server, "slow").await;
    let waiting = build_now(&server, "quick").await;
    wait_testing(&server, running).await;
    assert_eq!(
        server.get(&format!("/api/v1/builds/{waiting}")).await["status"],
        "queued"
    );
    server.restart().await;
    let build = server.get(&format!("/api/v1/builds/{running}")).await;
    assert_eq!(build["status"], "interrupted", "{build:#}");
    assert!(
        build["reason"]
            .as_str()
            .is_some_and(|r| r.contains("stopped")),
        "{build:#}"
    );
    let log = build_log(&server, running).await;
    assert!(log.contains("sleeping"), "{log}");
    let build = wait_build(&server, waiting).await;
    assert_eq!(build["status"], "succeeded", "{build:#}\n{}", server.log());
    let log = build_log(&server, waiting).await;
    assert!(log.contains(&(300u64 << 20).to_string()), "{log}");

    // Retention keeps each pipeline's newest two builds; older ones go with their logs.
    for _ in 0..2 {
        let id = build_now(&server, "quick").await;
        let build = wait_build(&server, id).await;
        assert_eq!(build["status"], "succeeded", "{build:#}");
    }
    let kept = server
        .get("/api/v1/builds?team=default&pipeline=quick")
        .await;
    assert_eq!(kept.as_array().unwrap().len(), 2, "{kept:#}");
    let (status, _) = server
        .call(
            reqwest::Method::GET,
            &format!("/api/v1/builds/{waiting}"),
            None,
        )
        .await;
    assert_eq!(status, 404);
    assert!(
        !server
            .data_dir
            .join(format!("builds/{waiting}.log"))
            .exists()
    );
}
