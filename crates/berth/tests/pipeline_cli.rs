//! The pipeline and build commands on the real binary, and a build's live event stream
//! (`GET /api/v1/builds/{id}/events`): one real build of a local-path repository (Dockerfile
//! `FROM berth-testapp-shell`, a test script inside the image), followed at once by the CLI and
//! by a raw SSE reader; then the same stream resumed mid-log, the read commands, and a build
//! whose fetch fails, followed to its non-zero exit.
//!
//! Images the build makes carry the server's `berth.namespace` label and are removed by the
//! namespace guard.

mod support;

use std::process::Output;
use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;
use support::Server;
use support::git_repo::{commit, init};

/// One Server-Sent Event as read off the wire.
#[derive(Debug, Clone)]
struct SseEvent {
    name: String,
    id: Option<String>,
    data: String,
}

/// Reads the build's event stream until the server closes it; `last_event_id` resumes it.
async fn read_events(server: &Server, id: i64, last_event_id: Option<&str>) -> Vec<SseEvent> {
    let mut request = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("{}/api/v1/builds/{id}/events", server.url))
        .bearer_auth(&server.token);
    if let Some(offset) = last_event_id {
        request = request.header("Last-Event-ID", offset);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/event-stream",
        "{:?}",
        response.headers()
    );
    let mut body = response.bytes_stream();
    let mut text = String::new();
    let mut events = Vec::new();
    let read = async {
        while let Some(chunk) = body.next().await {
            text.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
            // Berth's frames end in a blank line and carry no carriage returns.
            while let Some(end) = text.find("\n\n") {
                let frame: String = text.drain(..end + 2).collect();
                let mut event = SseEvent {
                    name: "message".into(),
                    id: None,
                    data: String::new(),
                };
                let mut data = Vec::new();
                for line in frame.lines() {
                    match line.split_once(": ").unwrap_or((line, "")) {
                        ("event", name) => event.name = name.to_owned(),
                        ("id", value) => event.id = Some(value.to_owned()),
                        ("data", value) => data.push(value),
                        _ => {} // keep-alive comments
                    }
                }
                if !data.is_empty() {
                    event.data = data.join("\n");
                    events.push(event);
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(300), read)
        .await
        .unwrap_or_else(|_| panic!("build {id}: no end of the event stream\n{}", server.log()));
    assert!(text.trim().is_empty(), "an unfinished frame: {text:?}");
    events
}

/// The concatenated data of the `log` events.
fn log_text(events: &[SseEvent]) -> String {
    events
        .iter()
        .filter(|e| e.name == "log")
        .map(|e| e.data.as_str())
        .collect()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Asserts the CLI run succeeded; returns its standard output.
fn succeeded(args: &[&str], output: &Output) -> String {
    assert!(
        output.status.success(),
        "berth {args:?}: {:?}\n{}\n{}",
        output.status,
        stdout(output),
        String::from_utf8_lossy(&output.stderr)
    );
    stdout(output)
}

fn cli_ok(server: &Server, args: &[&str]) -> String {
    succeeded(args, &server.cli(args))
}

/// Asserts the CLI run failed with `message` on standard error.
fn cli_fails(server: &Server, args: &[&str], message: &str) {
    let output = server.cli(args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success() && stderr.contains(message),
        "berth {args:?}: {:?}\n{stderr}",
        output.status
    );
}

/// Runs the CLI against `server` as a child process, for commands that follow a build.
async fn cli_async(server: &Server, args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(args)
        .env("BERTH_SERVER", &server.url)
        .env("BERTH_TOKEN", &server.token)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .expect("run berth")
}

#[tokio::test(flavor = "multi_thread")]
async fn pipelines_and_builds_from_the_cli_and_the_live_event_stream() {
    tokio::task::spawn_blocking(berth_testkit::shell_image)
        .await
        .unwrap();
    let server = Server::start("pipeline-cli").await;
    let namespace = server.namespace.namespace().to_owned();
    let repo = tempfile::tempdir().unwrap();
    init(repo.path());
    let head = commit(repo.path(), &namespace, "ok");
    let repo_path = repo.path().display().to_string();
    let target = format!("default/{namespace}");

    // Create (and read back) a pipeline.
    let saved = cli_ok(
        &server,
        &[
            "pipelines",
            "create",
            "default/cli",
            "--repo",
            &repo_path,
            "--branch",
            "main",
            "--test",
            "/bin/sh '/app/test.sh'",
            "--build-arg",
            "GREETING=hi there",
            "--target",
            &target,
        ],
    );
    assert!(saved.contains("pipeline default/cli saved"), "{saved}");
    let shown: Value = serde_json::from_str(&cli_ok(
        &server,
        &["pipelines", "show", "default/cli", "-o", "json"],
    ))
    .unwrap();
    assert_eq!(
        shown["test_command"],
        serde_json::json!(["/bin/sh", "/app/test.sh"])
    );
    assert_eq!(shown["build_args"]["GREETING"], "hi there");
    let listed = cli_ok(&server, &["pipelines", "list", "--team", "default"]);
    assert!(
        listed.contains("default/cli") && listed.contains(&repo_path),
        "{listed}"
    );
    // Without --repo, the pipeline builds what is pushed to Berth.
    let hosted = cli_ok(
        &server,
        &[
            "pipelines",
            "set",
            "default/hosted",
            "--target",
            &format!("{target}-hosted"),
        ],
    );
    let remote = format!("git remote add berth {}/git/default/hosted.git", server.url);
    assert!(hosted.contains(&remote), "{hosted}");
    cli_fails(
        &server,
        &[
            "pipelines",
            "create",
            "default/bad",
            "--build-arg",
            "NOEQUALS",
            "--target",
            &target,
        ],
        "--build-arg \"NOEQUALS\": expected KEY=VALUE",
    );

    // One build, followed live by the CLI and by a raw SSE reader at once.
    let queued = server
        .post(
            "/api/v1/pipelines/default/cli/builds",
            serde_json::json!({}),
        )
        .await;
    let id = queued["id"].as_i64().unwrap();
    let id_text = id.to_string();
    let follow = ["builds", "logs", &id_text, "-f"];
    let (events, followed) =
        tokio::join!(read_events(&server, id, None), cli_async(&server, &follow));
    let followed = succeeded(&follow, &followed);

    // The stream: build first, log lines, build changes, end last.
    let names: Vec<&str> = events.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names.first(), Some(&"build"), "{names:?}");
    assert_eq!(names.last(), Some(&"end"), "{names:?}");
    assert!(names.contains(&"log"), "{names:?}");
    assert!(
        names[1..names.len() - 1]
            .iter()
            .all(|n| ["build", "log"].contains(n)),
        "{names:?}"
    );
    let builds: Vec<Value> = events
        .iter()
        .filter(|e| e.name != "log")
        .map(|e| serde_json::from_str(&e.data).unwrap())
        .collect();
    assert!(builds.iter().all(|b| b["id"] == id), "{builds:#?}");
    let statuses: Vec<&str> = builds
        .iter()
        .map(|b| b["status"].as_str().unwrap())
        .collect();
    let (last, running) = statuses.split_last().unwrap();
    assert_eq!(*last, "succeeded", "{statuses:?}\n{}", log_text(&events));
    assert!(running.len() >= 2, "status changes were sent: {statuses:?}");
    assert!(!running.contains(&"succeeded"), "{statuses:?}");
    // The log events hold the whole log, in order, their ids its byte offsets.
    let log = support::git_repo::build_log(&server, id).await;
    let streamed = log_text(&events);
    assert_eq!(streamed, log.replace("\r\n", "\n").replace('\r', "\n"));
    assert!(streamed.contains("all tests passed"), "{streamed}");
    let offsets: Vec<u64> = events
        .iter()
        .filter_map(|e| e.id.as_ref().map(|id| id.parse().unwrap()))
        .collect();
    assert!(offsets.windows(2).all(|w| w[0] < w[1]), "{offsets:?}");
    assert_eq!(offsets.last().copied(), Some(log.len() as u64));

    // The CLI printed the same log, then the outcome.
    assert!(followed.starts_with(&streamed), "{followed}");
    let outcome = followed.lines().last().unwrap_or_default();
    assert!(
        outcome.starts_with(&format!("build {id} (default/cli #1) succeeded in ")),
        "{followed}"
    );

    // An ended build's stream, resumed mid-log: the rest of the log, then end.
    let middle = events
        .iter()
        .filter(|e| e.name == "log")
        .nth(1)
        .and_then(|e| e.id.clone())
        .expect("at least two log events");
    let resumed = read_events(&server, id, Some(&middle)).await;
    let names: Vec<&str> = resumed.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names.first(), Some(&"build"), "{names:?}");
    assert_eq!(names.last(), Some(&"end"), "{names:?}");
    let skipped: usize = middle.parse().unwrap();
    assert_eq!(log_text(&resumed), &log[skipped..]);

    // The read commands.
    let show = cli_ok(&server, &["builds", "show", &id_text]);
    for part in [
        "succeeded",
        head.as_str(),
        "Ada <ada@example.com>",
        "app.txt = ok",
        "sha256:",
    ] {
        assert!(show.contains(part), "{part} missing from:\n{show}");
    }
    for step in ["fetch", "build", "test", "push"] {
        assert!(
            show.lines()
                .any(|l| l.starts_with(step) && l.contains("succeeded")),
            "step {step} in:\n{show}"
        );
    }
    let listed: Value = serde_json::from_str(&cli_ok(
        &server,
        &["builds", "list", "--pipeline", "default/cli", "-o", "json"],
    ))
    .unwrap();
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed:#}");
    let listed = cli_ok(&server, &["builds", "list"]);
    assert!(listed.contains("default/cli #1"), "{listed}");
    let shown = cli_ok(&server, &["pipelines", "show", "default/cli"]);
    assert!(
        shown.contains("/bin/sh /app/test.sh") && shown.contains("succeeded"),
        "{shown}"
    );
    let plain = cli_ok(&server, &["builds", "logs", &id_text]);
    assert_eq!(plain, log);
    cli_fails(
        &server,
        &["builds", "cancel", &id_text],
        "has ended (succeeded)",
    );

    // A build that fails (nothing to fetch): followed to its end, the exit code says so.
    let missing = repo.path().join("missing").display().to_string();
    cli_ok(
        &server,
        &[
            "pipelines",
            "set",
            "default/broken",
            "--repo",
            &missing,
            "--target",
            &target,
        ],
    );
    let args = ["pipelines", "build", "default/broken", "--follow"];
    let failed = cli_async(&server, &args).await;
    let out = stdout(&failed);
    assert_eq!(failed.status.code(), Some(2), "{out}\n{:?}", failed.stderr);
    let outcome = out.lines().last().unwrap_or_default();
    assert!(outcome.contains("(default/broken #1) failed in "), "{out}");

    // Deleting asks first; without a terminal, --yes is needed.
    cli_fails(
        &server,
        &["pipelines", "delete", "default/cli"],
        "pass --yes",
    );
    cli_ok(&server, &["pipelines", "delete", "default/cli", "--yes"]);
    cli_fails(&server, &["pipelines", "show", "default/cli"], "not_found");
    cli_fails(&server, &["builds", "logs", &id_text, "-f"], "not_found");
}
