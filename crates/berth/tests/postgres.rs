//! End-to-end: `berth server --store postgres://…` keeps its whole state in PostgreSQL — apps,
//! revisions, events, accounts — and nothing in an SQLite file; a restarted server finds it
//! all there and adopts the running instances; `berth backup` says how to back PostgreSQL up
//! instead. Skipped without `BERTH_TEST_POSTGRES` outside CI (`scripts/test.sh` sets it).

mod support;

use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use sqlx::Connection;
use support::{Server, assert_refused, containers_of, ready_instances};

const ROLLOUT: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_on_postgres_keeps_its_state_there_and_finds_it_after_a_restart() {
    let Some(url) = berth_store::conformance::postgres_database("e2e postgres").await else {
        return;
    };
    let mut server = Server::start_with("postgres", &["--store", &url]).await;
    let namespace = server.namespace.namespace().to_string();
    server.create_app("web", 2, json!({})).await;
    server.wait_rollout("web", ROLLOUT).await;
    let (status, _) = server
        .call(
            Method::POST,
            "/api/v1/apps/web/deploy",
            Some(json!({"env": {"COLOR": "blue"}, "reason": "on postgres"})),
        )
        .await;
    assert_eq!(status, 200);
    let app = server.wait_rollout("web", ROLLOUT).await;
    assert_eq!(app["current_revision"], 2, "{app:#}");
    let user = server.register("pg-ada", Some("pg-team")).await;
    assert!(!user.is_empty());

    // The rows are in PostgreSQL, and no SQLite control-plane database was made.
    let mut raw = sqlx::PgConnection::connect(&url).await.unwrap();
    let revisions: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM revisions WHERE app = 'web'")
        .fetch_one(&mut raw)
        .await
        .unwrap();
    assert_eq!(revisions, 2);
    let team: Option<String> = sqlx::query_scalar("SELECT name FROM teams WHERE name = 'pg-team'")
        .fetch_optional(&mut raw)
        .await
        .unwrap();
    assert_eq!(team.as_deref(), Some("pg-team"));
    raw.close().await.unwrap();
    assert!(!server.data_dir.join("berth.db").exists());
    // The only server on its database leads.
    let (_, ready) = server.call(Method::GET, "/readyz", None).await;
    assert_eq!(ready["role"], "leader", "{ready}");

    // A restart adopts the two instances of revision 2 rather than replacing them. (The
    // rollout is complete once the last old instance is out of rotation; on a shared store
    // its stop waits a second more for the other servers' routers, so wait for it to go.)
    support::wait_until("the old instances are gone", ROLLOUT, || async {
        containers_of(&namespace, "web").len() == 2
    })
    .await;
    let before = containers_of(&namespace, "web");
    server.restart().await;
    let app = server.app("web").await;
    assert_eq!(app["current_revision"], 2, "{app:#}");
    support::wait_until("both instances ready again", ROLLOUT, || async {
        ready_instances(&server.app("web").await).len() == 2
    })
    .await;
    assert_eq!(
        containers_of(&namespace, "web"),
        before,
        "the same containers"
    );
    let events = server.events("web").await;
    assert!(
        events.iter().any(|e| e["message"]
            .as_str()
            .is_some_and(|m| m.contains("revision 2 is running on 2 instances"))),
        "{events:#?}"
    );

    // Berth does not copy a PostgreSQL database: the backup is refused, and says what to use.
    let (status, answer) = server
        .call(Method::POST, "/api/v1/system/backups", None)
        .await;
    let message = assert_refused(status, &answer, 409, "pg_dump");
    assert_eq!(answer["error"]["code"], "backup_unsupported", "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_postgres_url_or_an_unreachable_database_stops_the_server_with_a_clear_message() {
    for (store, says) in [
        (
            "postgres://127.0.0.1:1/berth",
            "connecting to PostgreSQL at",
        ),
        ("postgres://db", "name the database"),
    ] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
            .args(["server", "--store", store, "--data-dir"])
            .arg(tempfile::tempdir().unwrap().path())
            .args(["--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"])
            .output()
            .expect("run berth server");
        assert!(!output.status.success(), "{store}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(says), "{store}: {stderr}");
    }
}
