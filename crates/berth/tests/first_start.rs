//! The first-start secret (`<data-dir>/admin-token`) is retired once the first admin sets a
//! password of their own, and a password change can revoke all of one's API tokens.

mod support;

use std::io::Write;
use std::process::{Command, Stdio};

use reqwest::Method;
use serde_json::json;
use support::Server;

const NEW_PASSWORD: &str = "admin-own-password-1";

/// Runs the CLI with `token` (none: no BERTH_TOKEN) from `dir`, with an empty config home,
/// feeding `stdin`.
fn cli(
    server: &Server,
    dir: &std::path::Path,
    token: Option<&str>,
    args: &[&str],
    stdin: &str,
) -> (bool, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_berth"));
    command
        .args(args)
        .current_dir(dir)
        .env("BERTH_SERVER", &server.url)
        .env_remove("BERTH_TOKEN")
        .env("HOME", dir)
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(token) = token {
        command.env("BERTH_TOKEN", token);
    }
    let mut child = command.spawn().expect("run berth");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_password_change_retires_the_first_start_secret() {
    let mut server = Server::start("first-start").await;
    let secret = server.token.clone();
    let secret_file = server.data_dir.join("admin-token");
    assert!(secret_file.exists());
    // A token of the admin's own, made with the secret as the password.
    let (status, own) = server
        .call_as(
            "",
            Method::POST,
            "/api/v1/auth/token",
            Some(json!({"username": "admin", "password": secret, "name": "own"})),
        )
        .await;
    assert_eq!(status, 201, "{own}");
    let own = own["token"].as_str().unwrap().to_string();

    let dir = tempfile::tempdir().unwrap();
    let (ok, stdout, stderr) = cli(
        &server,
        dir.path(),
        Some(&secret),
        &["passwd", "--password-stdin"],
        &format!("{secret}\n{NEW_PASSWORD}\n"),
    );
    assert!(ok, "{stdout}\n{stderr}");
    assert!(stdout.contains("first-start secret is retired"), "{stdout}");
    assert!(!secret_file.exists(), "admin-token is still there");
    let (status, body) = server
        .call_as(&secret, Method::GET, "/api/v1/me", None)
        .await;
    assert_eq!(status, 401, "the first-start token still works: {body}");
    let (status, body) = server
        .call_as(
            "",
            Method::POST,
            "/api/v1/auth/token",
            Some(json!({"username": "admin", "password": secret, "name": "old"})),
        )
        .await;
    assert_eq!(status, 401, "the first-start password still works: {body}");
    let (status, body) = server.call_as(&own, Method::GET, "/api/v1/me", None).await;
    assert_eq!(status, 200, "{body}");

    // A restart makes no new secret (the server has users), and the CLI without a token says
    // to log in instead of failing oddly.
    server.restart().await;
    assert!(
        !secret_file.exists(),
        "a restart made a new first-start secret"
    );
    let (ok, stdout, stderr) = cli(&server, dir.path(), None, &["apps", "list"], "");
    assert!(!ok, "{stdout}");
    assert!(stderr.contains("berth login"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    // revoke_tokens: every token of the caller ends, the one in use too.
    let (ok, stdout, stderr) = cli(
        &server,
        dir.path(),
        Some(&own),
        &["passwd", "--password-stdin", "--revoke-tokens"],
        &format!("{NEW_PASSWORD}\nadmin-own-password-2\n"),
    );
    assert!(ok, "{stdout}\n{stderr}");
    assert!(stdout.contains("tokens are revoked"), "{stdout}");
    let (status, body) = server.call_as(&own, Method::GET, "/api/v1/me", None).await;
    assert_eq!(status, 401, "a token survived revoke_tokens: {body}");
    let (status, body) = server
        .call_as(
            "",
            Method::POST,
            "/api/v1/auth/token",
            Some(json!({"username": "admin", "password": "admin-own-password-2", "name": "new"})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}
