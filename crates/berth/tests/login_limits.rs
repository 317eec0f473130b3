//! Login and registration limits seen from outside: one user's failed logins lock out only
//! that user from that address, a forged `X-Forwarded-For` changes nothing unless the peer is a
//! trusted proxy, and registration is limited per address.

mod support;

use reqwest::Method;
use serde_json::{Value, json};
use support::Server;

/// Logs in with a password, optionally as forwarded by a proxy; the status, body and
/// Retry-After.
async fn login(
    server: &Server,
    username: &str,
    password: &str,
    forwarded_for: Option<&str>,
) -> (u16, Value, String) {
    let mut request = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .request(Method::POST, format!("{}/api/v1/auth/login", server.url))
        .json(&json!({"username": username, "password": password}));
    if let Some(client) = forwarded_for {
        request = request.header("x-forwarded-for", client);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body, retry_after)
}

fn password(username: &str) -> String {
    format!("{username}-password-1")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_lock_one_user_on_one_address_and_forged_headers_are_ignored() {
    let server = Server::start("limits-direct").await;
    server.register("alice", None).await;
    server.register("bob", None).await;
    for attempt in 1..=5 {
        let (status, body, _) = login(&server, "alice", "wrong-guess-1", None).await;
        assert_eq!(status, 401, "attempt {attempt}: {body}");
    }
    let (status, body, retry) = login(&server, "alice", &password("alice"), None).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "too_many_attempts", "{body}");
    assert!(retry.parse::<u64>().is_ok_and(|s| s >= 1), "{retry}");
    // A forged X-Forwarded-For from a peer that is not a trusted proxy is ignored.
    let (status, body, _) = login(&server, "alice", &password("alice"), Some("198.51.100.7")).await;
    assert_eq!(
        status, 429,
        "a forged X-Forwarded-For escaped the lockout: {body}"
    );
    // Another user on the same address is not locked out.
    let (status, body, _) = login(&server, "bob", &password("bob"), None).await;
    assert_eq!(
        status, 200,
        "bob was locked out by alice's failures: {body}"
    );

    // Registration: 10 accounts per address per hour (alice and bob were two).
    for i in 0..8 {
        server.register(&format!("user{i}"), None).await;
    }
    let (status, body) = server
        .call_as(
            "",
            Method::POST,
            "/api/v1/auth/register",
            Some(json!({"username": "one-too-many", "email": "x@example.com", "password": password("x")})),
        )
        .await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "too_many_attempts", "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_the_forwarded_client_counts() {
    let server =
        Server::start_with("limits-proxy", &["--trusted-proxies", "127.0.0.1/32,::1"]).await;
    server.register("carol", None).await;
    for attempt in 1..=5 {
        let (status, body, _) =
            login(&server, "carol", "wrong-guess-1", Some("198.51.100.1")).await;
        assert_eq!(status, 401, "attempt {attempt}: {body}");
    }
    let (status, body, _) = login(&server, "carol", &password("carol"), Some("198.51.100.1")).await;
    assert_eq!(status, 429, "{body}");
    // A forged hop left of the proxy's own does not help: the rightmost untrusted one counts.
    let (status, body, _) = login(
        &server,
        "carol",
        &password("carol"),
        Some("203.0.113.5, 198.51.100.1"),
    )
    .await;
    assert_eq!(status, 429, "{body}");
    let (status, body, _) = login(&server, "carol", &password("carol"), Some("198.51.100.2")).await;
    assert_eq!(status, 200, "{body}");
    let audit = server.get("/api/v1/audit?action=auth.login&limit=1").await;
    assert_eq!(audit[0]["source"], "198.51.100.2", "{audit}");
    assert_eq!(audit[0]["outcome"], "success", "{audit}");
}
