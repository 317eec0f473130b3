//! The PostgreSQL store against the conformance suite, plus what several servers on one
//! database need: migrations started at once, writes from two stores that lose nothing, and
//! corrupt rows reported. Each test runs on a database of its own
//! (`conformance::postgres_database`); without `BERTH_TEST_POSTGRES` outside CI they skip.

use std::sync::Arc;

use berth_store::conformance;
use berth_store::prelude::*;
use berth_store::{PostgresStore, SnapshotStore, StoreError};
use sqlx::Connection;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance() {
    let Some(url) = conformance::postgres_database("conformance").await else {
        return;
    };
    let store = PostgresStore::connect(&url).await.unwrap();
    conformance::run_all(Arc::new(store.clone())).await;
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn servers_starting_at_once_migrate_once_and_share_every_write() {
    let Some(url) = conformance::postgres_database("two servers").await else {
        return;
    };
    // Two servers start on a fresh database at the same moment: one migrates, the other waits.
    let (one, two) = tokio::join!(PostgresStore::connect(&url), PostgresStore::connect(&url));
    let one: Arc<dyn Store> = Arc::new(one.unwrap());
    let two: Arc<dyn Store> = Arc::new(two.unwrap());
    let mut raw = sqlx::PgConnection::connect(&url).await.unwrap();
    let applied: Vec<(i64, bool)> =
        sqlx::query_as("SELECT version, success FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&mut raw)
            .await
            .unwrap();
    assert_eq!(
        applied,
        vec![(1, true), (2, true), (3, true), (4, true), (5, true)],
        "each migration is applied exactly once"
    );

    conformance::apps::two_stores_on_one_database_lose_no_write(one, two).await;
    raw.close().await.unwrap();
}

#[tokio::test]
async fn unknown_phase_or_kind_in_the_database_is_an_error() {
    let Some(url) = conformance::postgres_database("corrupt rows").await else {
        return;
    };
    let store = PostgresStore::connect(&url).await.unwrap();
    conformance::apps::unknown_phase_or_kind_is_an_error(&store, async |statements| {
        let mut raw = sqlx::PgConnection::connect(&url).await.unwrap();
        for sql in statements {
            sqlx::query(*sql).execute(&mut raw).await.unwrap();
        }
        raw.close().await.unwrap();
    })
    .await;
    // Berth does not copy a PostgreSQL database itself, and says how to back it up.
    let refusal = store.snapshot_refusal().expect("a refusal");
    assert!(refusal.contains("pg_dump"), "{refusal}");
    store.close().await;
}

#[tokio::test]
async fn a_server_that_does_not_answer_is_a_clear_error() {
    // A port nothing listens on (the discard port, refused on loopback).
    let result = PostgresStore::connect("postgres://berth:secret@127.0.0.1:9/berth").await;
    match result {
        Err(StoreError::Database(message)) => {
            assert!(message.contains("127.0.0.1:9/berth"), "{message}");
            assert!(
                !message.contains("secret"),
                "the password is never shown: {message}"
            );
        }
        Err(other) => panic!("expected a database error, got {other:?}"),
        Ok(_) => panic!("connected to nothing"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_one_server_publishes_every_listening_server_receives() {
    use futures::StreamExt;
    let Some(url) = conformance::postgres_database("signals").await else {
        return;
    };
    let one = PostgresStore::connect(&url).await.unwrap();
    let two = PostgresStore::connect(&url).await.unwrap();
    let mut heard_by_one = one.subscribe().await.unwrap();
    let mut heard_by_two = two.subscribe().await.unwrap();
    two.publish("wake web").await.unwrap();
    one.publish("builds").await.unwrap();
    for heard in [&mut heard_by_one, &mut heard_by_two] {
        let mut got = Vec::new();
        for _ in 0..2 {
            let payload = tokio::time::timeout(std::time::Duration::from_secs(5), heard.next())
                .await
                .expect("a notification in time")
                .expect("the stream goes on")
                .expect("no error");
            got.push(payload);
        }
        assert_eq!(got, ["wake web", "builds"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_lock_holds_across_servers_until_dropped() {
    use berth_store::SharedLocks;
    let Some(url) = conformance::postgres_database("shared locks").await else {
        return;
    };
    let one = PostgresStore::connect(&url).await.unwrap();
    let two = PostgresStore::connect(&url).await.unwrap();
    let held = one.lock("team/payments").await.unwrap();
    // Another name is free; the same name waits on the other server.
    let other = two.lock("team/shipping").await.unwrap();
    drop(other);
    let waiting = tokio::spawn(async move {
        let lock = two.lock("team/payments").await.unwrap();
        (two, lock)
    });
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(!waiting.is_finished(), "the second server must wait");
    drop(held);
    let (two, second) = tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
        .await
        .expect("granted once released")
        .unwrap();
    drop(second);
    // Released again: the first server takes it at once.
    let again = tokio::time::timeout(std::time::Duration::from_secs(5), one.lock("team/payments"))
        .await
        .expect("free again")
        .unwrap();
    drop(again);
    drop(two);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_holds_go_together_and_keep_the_exclusive_one_waiting() {
    use berth_store::SharedLocks;
    let Some(url) = conformance::postgres_database("shared holds").await else {
        return;
    };
    let one = PostgresStore::connect(&url).await.unwrap();
    let two = PostgresStore::connect(&url).await.unwrap();
    let name = "registry/garbage-collection";
    // Two servers hold it shared at once.
    let first = one.lock_shared(name).await.unwrap();
    let second = tokio::time::timeout(std::time::Duration::from_secs(5), two.lock_shared(name))
        .await
        .expect("shared holds do not wait for each other")
        .unwrap();
    // The exclusive hold waits for both.
    let exclusive = tokio::spawn(async move {
        let held = one.lock(name).await.unwrap();
        (one, held)
    });
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    assert!(
        !exclusive.is_finished(),
        "waits while two shared holds remain"
    );
    drop(first);
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    assert!(
        !exclusive.is_finished(),
        "waits while one shared hold remains"
    );
    drop(second);
    let (one, held) = tokio::time::timeout(std::time::Duration::from_secs(5), exclusive)
        .await
        .expect("granted once both are released")
        .unwrap();
    // While it is held, a shared hold waits.
    let shared = tokio::spawn(async move { two.lock_shared(name).await.unwrap() });
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    assert!(
        !shared.is_finished(),
        "a shared hold waits for the exclusive one"
    );
    drop(held);
    let again = tokio::time::timeout(std::time::Duration::from_secs(5), shared)
        .await
        .expect("granted once the exclusive hold is released")
        .unwrap();
    drop(again);
    drop(one);
}

#[tokio::test]
async fn tls_to_the_database_is_used_when_asked_and_verified_when_asked() {
    let Some(url) = conformance::postgres_database("tls").await else {
        return;
    };
    // Debian's cluster serves TLS with its self-signed "snakeoil" certificate.
    let encrypted = PostgresStore::connect(&format!("{url}?sslmode=require"))
        .await
        .expect("sslmode=require connects over TLS");
    encrypted.close().await;
    let mut raw = sqlx::PgConnection::connect(&format!("{url}?sslmode=require"))
        .await
        .unwrap();
    let on: bool = sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(&mut raw)
        .await
        .unwrap();
    assert!(on, "the connection is encrypted");
    raw.close().await.unwrap();
    // Verifying the server's certificate against the system's roots refuses a self-signed one.
    match PostgresStore::connect(&format!("{url}?sslmode=verify-full")).await {
        Err(StoreError::Database(message)) => {
            assert!(message.contains("connecting to PostgreSQL"), "{message}")
        }
        Err(other) => panic!("expected a database error, got {other:?}"),
        Ok(_) => panic!("a self-signed certificate passed verification"),
    }
}

/// Many operations each holding a lock of its own and querying meanwhile (what quota admission
/// does for many teams at once) never starve each other of connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn operations_holding_locks_still_get_connections_for_their_queries() {
    use berth_store::SharedLocks;
    let Some(url) = conformance::postgres_database("locks and queries").await else {
        return;
    };
    let store = Arc::new(PostgresStore::connect(&url).await.unwrap());
    let mut tasks = Vec::new();
    for i in 0..16 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let held = store.lock(&format!("team/t{i}")).await.unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            store.list_apps().await.unwrap();
            drop(held);
        }));
    }
    tokio::time::timeout(
        std::time::Duration::from_secs(15),
        futures::future::join_all(tasks),
    )
    .await
    .expect("every operation finished: no connection starvation");
}
