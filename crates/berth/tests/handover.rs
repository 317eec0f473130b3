//! End-to-end: `kill -USR2` hands the running server over to a new process of the binary — the
//! way Berth itself is upgraded — while a load runs through the router: no request fails, the
//! new process serves the same sockets at once, starts its controllers once the old one has
//! exited, and can hand over again.

mod support;

use std::process::Command;
use std::time::Duration;

use serde_json::json;
use support::load::{Load, Mix};
use support::{Server, process_alive, ready_instances, wait_until};

/// Sends SIGUSR2 to the server serving now and waits until its successor has taken over and
/// it has exited; returns the successor's pid.
async fn hand_over(server: &Server) -> u32 {
    let before = server.pid().expect("the server writes its pid file");
    let sent = Command::new("kill")
        .args(["-USR2", &before.to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    wait_until("a new server process", Duration::from_secs(60), || async {
        server.pid().is_some_and(|pid| pid != before)
    })
    .await;
    wait_until(
        "the previous server process to exit",
        Duration::from_secs(60),
        || async { !process_alive(before) },
    )
    .await;
    let after = server.pid().unwrap();
    assert!(process_alive(after), "{}", server.log());
    after
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_handover_to_a_new_server_process_fails_no_request() {
    let server = Server::start("handover").await;
    server.create_app("web", 2, json!({})).await;
    server.wait_rollout("web", Duration::from_secs(90)).await;

    let load = Load::start(&server, "web.default.localhost", 4, Mix::GetAndPost);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let second = hand_over(&server).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    load.finish_without_failures("across the handover", 51, &server.log())
        .await;
    let log = server.log();
    assert!(
        log.contains("serving the ready instances the previous server handed over"),
        "{log}"
    );
    assert!(
        log.contains("the previous server has exited: starting the controllers"),
        "{log}"
    );

    // The new process runs the controllers: a scale-up happens, the API answers.
    server
        .post("/api/v1/apps/web/scale", json!({"replicas": 3}))
        .await;
    server
        .wait_app("web", "3 ready instances", Duration::from_secs(60), |app| {
            ready_instances(app).len() == 3
        })
        .await;

    // And it hands over again, under load as well.
    let load = Load::start(&server, "web.default.localhost", 4, Mix::GetOnly);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let third = hand_over(&server).await;
    assert_ne!(third, second);
    load.finish_without_failures("across the second handover", 21, &server.log())
        .await;
    let app = server.app("web").await;
    assert_eq!(ready_instances(&app).len(), 3, "{app:#}");
}
