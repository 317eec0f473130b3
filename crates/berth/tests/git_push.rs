//! `git push` to Berth end to end on the real binary, with the real `git` client: a pipeline
//! without a remote, Berth added as a git remote over smart HTTP, a push whose output follows
//! the build (`remote: …`) to an image in the registry and a rolled-out app; a push whose test
//! fails and changes nothing; a branch the pipeline does not build; clone back; and who may
//! push (no credentials, a wrong token, a viewer, another team).

mod support;

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use support::Server;
use support::git_repo::{commit, git, git_output, init, tag_count, wait_build};

/// `http://<username>:<secret>@host:port/git/<team>/<name>.git`.
fn remote_url(server: &Server, username: &str, secret: &str, team: &str, name: &str) -> String {
    let host = server.url.trim_start_matches("http://");
    format!("http://{username}:{secret}@{host}/git/{team}/{name}.git")
}

/// `git push` of `refspec` to `url`: (succeeded, everything git printed).
fn push(dir: &Path, url: &str, refspec: &str) -> (bool, String) {
    let out = git_output(dir, &["push", url, refspec]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

async fn builds(server: &Server) -> Vec<Value> {
    server
        .get("/api/v1/builds?team=default&pipeline=web")
        .await
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn git_push_builds_tests_pushes_and_rolls_out_and_shows_the_build() {
    tokio::task::spawn_blocking(berth_testkit::shell_image)
        .await
        .unwrap();
    // As the README runs it: the default, relative data directory.
    let server = Server::start_with_default_data_dir("git-push").await;
    let namespace = server.namespace.namespace().to_owned();
    let app = "web";
    server.create_app(app, 1, json!({})).await;
    server.wait_rollout(app, Duration::from_secs(120)).await;
    let repository = format!("default/{namespace}");
    let (status, pipeline) = server
        .call(
            reqwest::Method::PUT,
            "/api/v1/pipelines/default/web",
            Some(json!({
                "branch_pattern": "main",
                "test_command": ["/bin/sh", "/app/test.sh"],
                "target_repository": repository,
                "deploy_app": app,
            })),
        )
        .await;
    assert_eq!(status, 201, "{pipeline}");
    assert_eq!(pipeline["repository_url"], Value::Null);
    assert_eq!(pipeline["git_path"], "/git/default/web.git");

    let work = tempfile::tempdir().unwrap();
    init(work.path());
    let green = commit(work.path(), &namespace, "ok");
    let berth = remote_url(&server, "admin", &server.token, "default", "web");

    // Green: the push's output follows the build to its end.
    let (pushed, output) = push(work.path(), &berth, "main");
    assert!(pushed, "{output}\n{}", server.log());
    assert!(output.contains("remote: Berth: build #1"), "{output}");
    assert!(
        output.contains("remote: [test] | all tests passed"),
        "{output}"
    );
    assert!(
        output.contains("remote: Berth: build #1 succeeded"),
        "{output}"
    );
    let all = builds(&server).await;
    assert_eq!(all.len(), 1, "{all:#?}");
    let build = wait_build(&server, all[0]["id"].as_i64().unwrap()).await;
    assert_eq!(build["status"], "succeeded", "{build:#}");
    assert_eq!(build["trigger"], "git_push");
    assert_eq!(build["triggered_by"], "admin");
    assert_eq!(build["branch"], "main");
    assert_eq!(build["commit"], green.as_str());
    assert_eq!(build["author"], "Ada");
    assert_eq!(build["message"], "app.txt = ok");
    let digest = build["image_digest"].as_str().unwrap().to_owned();
    assert!(output.contains(&digest), "{output}");
    let image = format!("127.0.0.1:{}/{repository}@{digest}", server.port);
    let rolled = server.wait_rollout(app, Duration::from_secs(120)).await;
    assert_eq!(rolled["template"]["image"], image.as_str(), "{rolled:#}");
    let revision = rolled["current_revision"].clone();
    // The rolled-out instances keep running: nothing the build cleans up is theirs (the
    // clean-up used to match instances by a label their image carried and kill them).
    tokio::time::sleep(Duration::from_secs(12)).await;
    let events = server.get(&format!("/api/v1/apps/{app}/events")).await;
    let warnings: Vec<&Value> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["warning"] == true)
        .collect();
    assert!(warnings.is_empty(), "{warnings:#?}\n{}", server.log());
    let instances = server.app(app).await["instances"].clone();
    assert!(
        instances
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["restarts"] == 0 || i["restarts"].is_null()),
        "{instances:#}"
    );

    // Red: the push is stored, the build fails at its tests, nothing reaches the app.
    let tags_before = tag_count(&server, &repository).await;
    commit(work.path(), &namespace, "broken");
    let (pushed, output) = push(work.path(), &berth, "main");
    assert!(pushed, "{output}");
    assert!(
        output.contains("remote: [test] | app.txt is wrong"),
        "{output}"
    );
    assert!(
        output.contains("remote: Berth: build #2 failed"),
        "{output}"
    );
    assert!(output.contains("tests failed"), "{output}");
    assert_eq!(tag_count(&server, &repository).await, tags_before);
    let after = server.app(app).await;
    assert_eq!(after["current_revision"], revision);
    assert_eq!(after["template"]["image"], image.as_str());

    // A branch the pipeline does not build is stored without a build.
    let (pushed, output) = push(work.path(), &berth, "main:feature/x");
    assert!(pushed, "{output}");
    assert!(
        output.contains("branch feature/x does not match the pipeline's branches (main): no build"),
        "{output}"
    );
    assert_eq!(builds(&server).await.len(), 2);

    // What was pushed can be cloned back.
    let clone = tempfile::tempdir().unwrap();
    let out = git_output(clone.path(), &["clone", "--quiet", &berth, "copy"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let copied = git(
        &clone.path().join("copy"),
        &["log", "--format=%s", "-n", "2"],
    );
    assert_eq!(copied, "app.txt = broken\napp.txt = ok");

    // The pushes are in the audit log.
    let audit = server
        .get("/api/v1/audit?action=git.push&object=pipelines/default/web")
        .await;
    let entries = audit.as_array().unwrap();
    assert_eq!(entries.len(), 3, "{audit:#}");
    assert!(entries.iter().all(|e| e["actor"] == "admin"), "{audit:#}");

    // Deleting the pipeline deletes the repository Berth kept for it.
    let hosted = server.data_dir.join("git/default/web.git");
    assert!(hosted.join("HEAD").exists());
    let (status, body) = server
        .call(
            reqwest::Method::DELETE,
            "/api/v1/pipelines/default/web",
            None,
        )
        .await;
    assert_eq!(status, 204, "{body}");
    assert!(!hosted.exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn only_team_members_may_push_and_only_readers_see_the_repository() {
    let server = Server::start("git-push-roles").await;
    let (status, body) = server
        .call(
            reqwest::Method::PUT,
            "/api/v1/pipelines/default/site",
            Some(json!({"target_repository": "default/site"})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let viewer = server.register("vera", None).await;
    let (status, body) = server
        .call(
            reqwest::Method::PUT,
            "/api/v1/teams/default/members/vera",
            Some(json!({"role": "viewer"})),
        )
        .await;
    assert!(status == 200 || status == 201, "{body}");
    let outsider = server.register("otto", Some("others")).await;

    let work = tempfile::tempdir().unwrap();
    init(work.path());
    commit(work.path(), "roles", "ok");
    let host = server.url.trim_start_matches("http://");
    let cases = [
        (
            format!("http://{host}/git/default/site.git"),
            "could not read Username",
        ),
        (
            remote_url(&server, "admin", "berth_wrong-token", "default", "site"),
            "Authentication failed",
        ),
        (
            remote_url(&server, "vera", &viewer, "default", "site"),
            "needs the member or owner role in team default",
        ),
        (
            remote_url(&server, "otto", &outsider, "default", "site"),
            "no pipeline default/site",
        ),
        (
            remote_url(&server, "admin", &server.token, "default", "missing"),
            "no pipeline default/missing",
        ),
    ];
    for (url, expected) in &cases {
        let (pushed, output) = push(work.path(), url, "main");
        assert!(!pushed, "{url}: {output}");
        assert!(output.contains(expected), "{url}: {output}");
    }
    assert_eq!(
        server
            .get("/api/v1/builds?team=default&pipeline=site")
            .await
            .as_array()
            .unwrap()
            .len(),
        0
    );
    // A viewer may fetch; an outsider may not even see it.
    let clone = tempfile::tempdir().unwrap();
    let viewer_url = remote_url(&server, "vera", &viewer, "default", "site");
    let out = git_output(clone.path(), &["ls-remote", &viewer_url]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let outsider_url = remote_url(&server, "otto", &outsider, "default", "site");
    let out = git_output(clone.path(), &["ls-remote", &outsider_url]);
    assert!(!out.status.success());
}
