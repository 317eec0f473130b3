//! End-to-end: `berth exec` on the real engine — a command's output and exit code, input
//! piped through, a terminal when asked, a clear message when the image has no shell, the
//! idle timeout; a viewer, a missing instance and an app with no running instance are
//! refused; every session is audited without what was typed.

mod support;

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;
use support::{Server, ready_instances, wait_until};

const ROLLOUT: Duration = Duration::from_secs(90);

/// The CLI as the holder of `token`.
fn cli_as(server: &Server, token: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(args)
        .env("BERTH_SERVER", &server.url)
        .env("BERTH_TOKEN", token)
        .stdin(Stdio::null())
        .output()
        .expect("run berth")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn commands_run_inside_an_instance_and_every_session_is_audited() {
    let server = Server::start("exec").await;
    server.create_app("box", 1, json!({})).await;
    server.wait_rollout("box", ROLLOUT).await;
    wait_until("a ready instance", ROLLOUT, || async {
        ready_instances(&server.app("box").await).len() == 1
    })
    .await;
    let instance = ready_instances(&server.app("box").await)[0]["name"]
        .as_str()
        .unwrap()
        .to_string();

    // Output and exit codes.
    let out = server.cli(&[
        "exec",
        "box",
        "--",
        "/berth-testapp",
        "run",
        "echo",
        "hello",
        "world",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "hello world\n");
    let out = server.cli(&[
        "exec",
        "box",
        "--instance",
        &instance,
        "--",
        "/berth-testapp",
        "run",
        "exit",
        "3",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));

    // Input reaches the command; its end closes the command's stdin.
    let dir = tempfile::tempdir().unwrap();
    let typed = dir.path().join("typed");
    std::fs::write(&typed, "line one\nline two\n").unwrap();
    let out = server.cli_with_stdin(
        &["exec", "box", "--", "/berth-testapp", "run", "cat"],
        &typed,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "line one\nline two\n");

    // A terminal when asked.
    let out = server.cli(&["exec", "-t", "box", "--", "/berth-testapp", "run", "tty"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("tty"),
        "{}",
        text(&out.stdout)
    );
    let out = server.cli(&["exec", "box", "--", "/berth-testapp", "run", "tty"]);
    assert_eq!(text(&out.stdout), "no tty\n");

    // The image has no shell: said plainly.
    let out = server.cli(&["exec", "box"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("the image has no \"sh\""),
        "{}",
        text(&out.stderr)
    );

    // The idle timeout closes a session nobody uses.
    let mut idle = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args([
            "exec",
            "box",
            "--idle-timeout",
            "1s",
            "--",
            "/berth-testapp",
            "run",
            "cat",
        ])
        .env("BERTH_SERVER", &server.url)
        .env("BERTH_TOKEN", &server.token)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut held = idle.stdin.take().unwrap();
    let began = Instant::now();
    let out = tokio::task::spawn_blocking(move || idle.wait_with_output().unwrap())
        .await
        .unwrap();
    let _ = held.write_all(b"");
    assert!(began.elapsed() < Duration::from_secs(30));
    assert!(
        text(&out.stderr).contains("without input or output"),
        "{}",
        text(&out.stderr)
    );

    // Refusals: a viewer, a missing instance, no running instance.
    let viewer = server.register("watcher", None).await;
    let (status, answer) = server
        .call(
            Method::PUT,
            "/api/v1/teams/default/members/watcher",
            Some(json!({"role": "viewer"})),
        )
        .await;
    assert!((200..300).contains(&status), "{answer}");
    let out = cli_as(
        &server,
        &viewer,
        &["exec", "box", "--", "/berth-testapp", "run", "echo", "x"],
    );
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("403"), "{}", text(&out.stderr));
    let out = server.cli(&[
        "exec",
        "box",
        "--instance",
        "box-999",
        "--",
        "/berth-testapp",
    ]);
    assert!(
        text(&out.stderr).contains("instance box-999"),
        "{}",
        text(&out.stderr)
    );
    assert!(server.cli(&["scale", "box", "0"]).status.success());
    wait_until("no instance", ROLLOUT, || async {
        server.app("box").await["instances"]
            .as_array()
            .is_some_and(Vec::is_empty)
    })
    .await;
    let out = server.cli(&["exec", "box", "--", "/berth-testapp"]);
    assert!(
        text(&out.stderr).contains("409") && text(&out.stderr).contains("no running instance"),
        "{}",
        text(&out.stderr)
    );

    // Every session is in the audit log: who, where, what program, how it ended — never the
    // input.
    let audit = server.get("/api/v1/audit?action=apps.exec&limit=50").await;
    let entries = audit["entries"]
        .as_array()
        .or_else(|| audit.as_array())
        .cloned()
        .unwrap_or_default();
    assert!(entries.len() >= 6, "{audit}");
    assert!(
        entries.iter().any(|e| e["detail"]
            .as_str()
            .unwrap_or("")
            .contains(&format!("instance {instance}, /berth-testapp"))
            && e["detail"].as_str().unwrap_or("").contains("exit 3")),
        "{audit}"
    );
    assert!(!audit.to_string().contains("line one"), "{audit}");
}
