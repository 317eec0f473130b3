//! Push webhooks end to end on the real binary: a pipeline with a webhook secret, deliveries
//! signed like GitHub, GitLab and Gitea sign them (HMAC by `openssl`, not Berth's own code),
//! the pushed commit of a local-path repository built from `FROM berth-testapp-shell`; forged
//! signatures, wrong tokens, other branches, tags, deleted branches and redeliveries build
//! nothing.
//!
//! Images the builds make carry the server's `berth.namespace` label and are removed by the
//! namespace guard.

mod support;

use serde_json::{Value, json};
use support::git_repo::{git, wait_build};
use support::{Server, hmac_hex};

const SECRET: &str = "a-webhook-secret-for-tests";
const ZERO: &str = "0000000000000000000000000000000000000000";

/// A GitHub/Gitea-style push payload.
fn push_payload(git_ref: &str, after: &str) -> Vec<u8> {
    json!({
        "ref": git_ref,
        "before": ZERO,
        "after": after,
        "deleted": after == ZERO,
        "repository": {"full_name": "acme/shop"},
        "pusher": {"name": "ada", "email": "ada@example.com"},
        "head_commit": if after == ZERO { Value::Null } else {
            json!({"id": after, "message": "ship it", "author": {"name": "Ada", "email": "ada@example.com"}})
        },
    })
    .to_string()
    .into_bytes()
}

/// A GitLab push payload.
fn gitlab_payload(branch: &str, after: &str) -> Vec<u8> {
    json!({
        "object_kind": "push",
        "ref": format!("refs/heads/{branch}"),
        "before": ZERO,
        "after": after,
        "checkout_sha": after,
        "user_name": "Ada",
        "project": {"path_with_namespace": "acme/shop"},
        "commits": [{"id": after, "message": "ship it", "author": {"name": "Ada", "email": "ada@example.com"}}],
    })
    .to_string()
    .into_bytes()
}

/// GitHub's headers for `event`, signed with `secret`.
fn github(event: &str, delivery: &str, secret: &str, body: &[u8]) -> Vec<(String, String)> {
    vec![
        ("X-GitHub-Event".into(), event.into()),
        ("X-GitHub-Delivery".into(), delivery.into()),
        (
            "X-Hub-Signature-256".into(),
            format!("sha256={}", hmac_hex(secret, body)),
        ),
    ]
}

/// POSTs a delivery to the pipeline's webhook, without Berth credentials.
async fn deliver(
    server: &Server,
    pipeline: &str,
    headers: &[(String, String)],
    body: Vec<u8>,
) -> (u16, Value) {
    let mut request = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .post(format!(
            "{}/api/v1/pipelines/default/{pipeline}/webhook",
            server.url
        ))
        .header("Content-Type", "application/json")
        .body(body);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn put_pipeline(server: &Server, name: &str, body: Value) -> (u16, Value) {
    server
        .call(
            reqwest::Method::PUT,
            &format!("/api/v1/pipelines/default/{name}"),
            Some(body),
        )
        .await
}

async fn builds(server: &Server, pipeline: &str) -> Vec<Value> {
    server
        .get(&format!("/api/v1/builds?team=default&pipeline={pipeline}"))
        .await
        .as_array()
        .cloned()
        .unwrap()
}

fn assert_unauthorized(status: u16, answer: &Value, what: &str) {
    assert_eq!(status, 401, "{what}: {answer}");
    assert_eq!(answer["error"]["code"], "webhook_unauthorized", "{what}");
}

fn assert_ignored(status: u16, answer: &Value, why: &str) {
    assert_eq!(status, 200, "{answer}");
    assert!(
        answer["ignored"].as_str().is_some_and(|r| r.contains(why)),
        "expected ignored because {why:?}: {answer}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn push_webhooks_build_the_pushed_commit_and_nothing_else() {
    tokio::task::spawn_blocking(berth_testkit::shell_image)
        .await
        .unwrap();
    let server = Server::start("webhooks").await;
    let namespace = server.namespace.namespace().to_owned();
    let repo = tempfile::tempdir().unwrap();
    git(repo.path(), &["init", "--quiet", "--initial-branch=main"]);
    std::fs::write(
        repo.path().join("Dockerfile"),
        "FROM berth-testapp-shell:latest\nCOPY app.txt /app/\n",
    )
    .unwrap();
    // The namespace keeps this test's layers its own.
    std::fs::write(repo.path().join("app.txt"), &namespace).unwrap();
    git(repo.path(), &["add", "--all"]);
    git(repo.path(), &["commit", "--quiet", "-m", "first"]);
    let first = git(repo.path(), &["rev-parse", "HEAD"]);
    git(
        repo.path(),
        &["commit", "--quiet", "--allow-empty", "-m", "second"],
    );
    let pushed = git(repo.path(), &["rev-parse", "HEAD"]);

    let pipeline = json!({
        "repository_url": repo.path().display().to_string(),
        "branch_pattern": "main",
        "target_repository": format!("default/{namespace}"),
    });
    // A short secret is refused, naming the field; nothing is stored.
    let mut short = pipeline.clone();
    short["webhook_secret"] = json!("too-short");
    let (status, error) = put_pipeline(&server, "hooks", short).await;
    assert_eq!(status, 400, "{error}");
    assert_eq!(error["error"]["field"], "webhook_secret", "{error}");
    let (status, _) = server
        .call(
            reqwest::Method::GET,
            "/api/v1/pipelines/default/hooks",
            None,
        )
        .await;
    assert_eq!(status, 404);

    // Without a secret the webhook is answered like a missing pipeline.
    let (status, created) = put_pipeline(&server, "hooks", pipeline.clone()).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["has_webhook_secret"], false);
    assert_eq!(
        created["webhook_path"],
        "/api/v1/pipelines/default/hooks/webhook"
    );
    let body = push_payload("refs/heads/main", &pushed);
    let (status, no_secret) = deliver(
        &server,
        "hooks",
        &github("push", "d-0", SECRET, &body),
        body.clone(),
    )
    .await;
    assert_eq!(status, 404, "{no_secret}");
    let (status, missing) = deliver(
        &server,
        "nothing-here",
        &github("push", "d-0", SECRET, &body),
        body.clone(),
    )
    .await;
    assert_eq!(status, 404, "{missing}");
    assert_eq!(no_secret["error"]["code"], missing["error"]["code"]);

    // With the secret set, a replace without it keeps it.
    let mut with_secret = pipeline.clone();
    with_secret["webhook_secret"] = json!(SECRET);
    let (status, set) = put_pipeline(&server, "hooks", with_secret).await;
    assert_eq!(status, 200, "{set}");
    assert_eq!(set["has_webhook_secret"], true);
    assert!(!set.to_string().contains(SECRET));
    let (status, kept) = put_pipeline(&server, "hooks", pipeline.clone()).await;
    assert_eq!(status, 200, "{kept}");
    assert_eq!(kept["has_webhook_secret"], true);

    // Forged, missing and wrong-secret signatures: 401, nothing built.
    let mut forged = github("push", "d-forged", SECRET, &body);
    forged[2].1 = format!("sha256={}", "ab".repeat(32));
    let (status, answer) = deliver(&server, "hooks", &forged, body.clone()).await;
    assert_unauthorized(status, &answer, "forged signature");
    let (status, answer) = deliver(
        &server,
        "hooks",
        &github("push", "d-other", "another-secret-entirely", &body),
        body.clone(),
    )
    .await;
    assert_unauthorized(status, &answer, "signed with another secret");
    let unsigned = github("push", "d-unsigned", SECRET, &body)[..2].to_vec();
    let (status, answer) = deliver(&server, "hooks", &unsigned, body.clone()).await;
    assert_unauthorized(status, &answer, "no signature");
    let tampered = push_payload("refs/heads/main", &first);
    let (status, answer) = deliver(
        &server,
        "hooks",
        &github("push", "d-tampered", SECRET, &body),
        tampered,
    )
    .await;
    assert_unauthorized(status, &answer, "body changed after signing");
    // Not a forge's webhook at all.
    let (status, answer) = deliver(&server, "hooks", &[], body.clone()).await;
    assert_eq!(status, 400, "{answer}");
    assert!(builds(&server, "hooks").await.is_empty());

    // Verified deliveries that build nothing.
    let ping = br#"{"zen":"Keep it logically awesome.","hook_id":1}"#.to_vec();
    let (status, answer) = deliver(
        &server,
        "hooks",
        &github("ping", "d-ping", SECRET, &ping),
        ping,
    )
    .await;
    assert_ignored(status, &answer, "ping");
    let other_branch = push_payload("refs/heads/feature/x", &pushed);
    let (status, answer) = deliver(
        &server,
        "hooks",
        &github("push", "d-feature", SECRET, &other_branch),
        other_branch,
    )
    .await;
    assert_ignored(status, &answer, "does not match");
    let tag = push_payload("refs/tags/v1.0", &pushed);
    let (status, answer) = deliver(
        &server,
        "hooks",
        &github("push", "d-tag", SECRET, &tag),
        tag,
    )
    .await;
    assert_ignored(status, &answer, "not a branch");
    let deleted = push_payload("refs/heads/main", ZERO);
    let (status, answer) = deliver(
        &server,
        "hooks",
        &github("push", "d-deleted", SECRET, &deleted),
        deleted,
    )
    .await;
    assert_ignored(status, &answer, "deleted");
    let issue = br#"{"action":"opened"}"#.to_vec();
    let (status, answer) = deliver(
        &server,
        "hooks",
        &github("issues", "d-issue", SECRET, &issue),
        issue,
    )
    .await;
    assert_ignored(status, &answer, "not a push");
    let huge = vec![b' '; 6 * 1024 * 1024];
    let (status, answer) = deliver(
        &server,
        "hooks",
        &github("push", "d-huge", SECRET, &huge),
        huge,
    )
    .await;
    assert_eq!(status, 413, "{answer}");
    assert!(builds(&server, "hooks").await.is_empty());

    // GitHub: the pushed commit (not the branch's head at build time) is built.
    git(
        repo.path(),
        &["commit", "--quiet", "--allow-empty", "-m", "later"],
    );
    let headers = github("push", "d-1", SECRET, &body);
    let (status, queued) = deliver(&server, "hooks", &headers, body.clone()).await;
    assert_eq!(status, 202, "{queued}");
    let id = queued["id"].as_i64().unwrap();
    assert_eq!(queued["trigger"], "webhook");
    assert_eq!(queued["triggered_by"], "github");
    // The same delivery again: answered with the first build, nothing new.
    let (status, again) = deliver(&server, "hooks", &headers, body.clone()).await;
    assert_ignored(status, &again, "already received");
    assert_eq!(again["build_id"], id, "{again}");
    let build = wait_build(&server, id).await;
    assert_eq!(build["status"], "succeeded", "{build:#}\n{}", server.log());
    assert_eq!(build["commit"], pushed.as_str());
    assert_eq!(build["branch"], "main");
    assert_eq!(build["trigger"], "webhook");
    assert_eq!(build["triggered_by"], "github");
    assert!(
        build["image_digest"]
            .as_str()
            .is_some_and(|d| d.starts_with("sha256:"))
    );
    assert_eq!(builds(&server, "hooks").await.len(), 1);

    // GitLab: the token itself. A wrong one is refused; the right one builds.
    let body = gitlab_payload("main", &first);
    let gitlab = |token: &str, uuid: &str| {
        vec![
            ("X-Gitlab-Event".to_owned(), "Push Hook".to_owned()),
            ("X-Gitlab-Event-UUID".to_owned(), uuid.to_owned()),
            ("X-Gitlab-Token".to_owned(), token.to_owned()),
        ]
    };
    let (status, answer) = deliver(
        &server,
        "hooks",
        &gitlab("a-webhook-secret-for-test", "u-1"),
        body.clone(),
    )
    .await;
    assert_unauthorized(status, &answer, "wrong GitLab token");
    let (status, queued) = deliver(&server, "hooks", &gitlab(SECRET, "u-1"), body).await;
    assert_eq!(status, 202, "{queued}");
    assert_eq!(queued["triggered_by"], "gitlab");
    let build = wait_build(&server, queued["id"].as_i64().unwrap()).await;
    assert_eq!(build["status"], "succeeded", "{build:#}");
    assert_eq!(build["commit"], first.as_str());

    // Gitea: its own signature header. Verified (a push elsewhere, so nothing builds), forged.
    let body = push_payload("refs/heads/develop", &pushed);
    let gitea = |signature: String| {
        vec![
            ("X-Gitea-Event".to_owned(), "push".to_owned()),
            ("X-Gitea-Delivery".to_owned(), "g-1".to_owned()),
            ("X-Gitea-Signature".to_owned(), signature),
        ]
    };
    let (status, answer) = deliver(
        &server,
        "hooks",
        &gitea(hmac_hex(SECRET, &body)),
        body.clone(),
    )
    .await;
    assert_ignored(status, &answer, "does not match");
    let (status, answer) = deliver(
        &server,
        "hooks",
        &gitea(hmac_hex("not-the-webhook-secret", &body)),
        body,
    )
    .await;
    assert_unauthorized(status, &answer, "forged Gitea signature");
    assert_eq!(builds(&server, "hooks").await.len(), 2);

    // The audit log names the forge once verified, and anonymous before.
    let audit = server
        .get("/api/v1/audit?object=pipelines/default/hooks&limit=500")
        .await;
    let actors: Vec<(&str, &str)> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"].as_str().is_some_and(|a| a.contains("webhook")))
        .map(|e| (e["actor"].as_str().unwrap(), e["outcome"].as_str().unwrap()))
        .collect();
    for expected in [
        ("webhook:github", "success"),
        ("webhook:gitlab", "success"),
        ("webhook:gitea", "success"),
        ("anonymous", "denied"),
    ] {
        assert!(actors.contains(&expected), "{expected:?} in {audit:#}");
    }

    // An empty secret removes it: webhooks are refused again.
    let mut removed = pipeline.clone();
    removed["webhook_secret"] = json!("");
    let (status, answer) = put_pipeline(&server, "hooks", removed).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["has_webhook_secret"], false);
    let body = push_payload("refs/heads/main", &pushed);
    let (status, answer) = deliver(
        &server,
        "hooks",
        &github("push", "d-after", SECRET, &body),
        body,
    )
    .await;
    assert_eq!(status, 404, "{answer}");
    assert_eq!(builds(&server, "hooks").await.len(), 2);
}
