//! End-to-end: a Berth server claims its engine namespace, and a second installation (another
//! data directory) on the same Docker Engine and namespace refuses to start instead of removing
//! the first one's containers — unless told to take the namespace over.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use support::{Server, containers_of, free_port, ready_instances};

const ROLLOUT: Duration = Duration::from_secs(60);

/// Runs a second installation's `berth server` on `namespace` until it exits (or `patience`
/// passes: then it is stopped and `None` answered); its exit status and output.
fn second_installation(
    data_dir: &std::path::Path,
    namespace: &str,
    extra: &[&str],
    patience: Duration,
) -> (
    Option<std::process::ExitStatus>,
    String,
    std::process::Child,
) {
    let log = data_dir.with_extension("log");
    let file = std::fs::File::create(&log).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_berth"))
        .arg("server")
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--namespace", namespace])
        .args(["--listen", &format!("127.0.0.1:{}", free_port())])
        .args(["--http-listen", &format!("127.0.0.1:{}", free_port())])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .expect("start the second berth server");
    let deadline = Instant::now() + patience;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    (status, std::fs::read_to_string(&log).unwrap(), child)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_installation_on_the_namespace_is_refused_and_can_take_it_over() {
    let mut server = Server::start("claim").await;
    let namespace = server.namespace.namespace().to_string();
    server.create_app("web", 1, json!({})).await;
    let app = server.wait_rollout("web", ROLLOUT).await;
    assert_eq!(ready_instances(&app).len(), 1, "{app:#}");
    let before = containers_of(&namespace, "web");
    assert_eq!(before.len(), 1);

    // Another data directory, so another store: another installation.
    let other = tempfile::tempdir().unwrap();
    let other_data = other.path().join("data");
    let (status, log, _child) =
        second_installation(&other_data, &namespace, &[], Duration::from_secs(30));
    let status = status.unwrap_or_else(|| panic!("the second installation kept running:\n{log}"));
    assert!(!status.success(), "{log}");
    for part in [
        format!("the engine namespace `{namespace}` is managed by another Berth installation"),
        format!("data directory {}", server.data_dir.display()),
        "--take-over-namespace".to_string(),
    ] {
        assert!(log.contains(&part), "{part:?} in\n{log}");
    }
    assert!(
        !log.contains("first-start secret"),
        "a refused server makes no admin:\n{log}"
    );
    // The first installation's instance was left alone, and it still serves.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(containers_of(&namespace, "web"), before);
    let app = server.app("web").await;
    assert_eq!(ready_instances(&app).len(), 1, "{app:#}");

    // The same installation starts again on its namespace, and adopts its instance.
    server.restart().await;
    let app = server
        .wait_app("web", "the instance adopted", ROLLOUT, |a| {
            ready_instances(a).len() == 1
        })
        .await;
    assert_eq!(containers_of(&namespace, "web"), before, "{app:#}");
    assert!(
        server
            .log()
            .contains("the engine namespace is this installation's"),
        "{}",
        server.log()
    );

    // Once the first installation is gone for good, the second may take the namespace over:
    // it manages it from then on (the first one's app is not in its store, so it goes).
    server.stop();
    let (status, log, mut child) = second_installation(
        &other_data,
        &namespace,
        &["--take-over-namespace"],
        Duration::from_secs(5),
    );
    assert_eq!(status, None, "the taking-over server keeps running:\n{log}");
    let deadline = Instant::now() + ROLLOUT;
    while !containers_of(&namespace, "web").is_empty() {
        assert!(
            Instant::now() < deadline,
            "the new owner removes the strays"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = std::fs::read_to_string(other_data.with_extension("log")).unwrap();
    assert!(
        log.contains("took the engine namespace over from another installation"),
        "{log}"
    );
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let _ = child.wait();

    // Now the first installation is the other one.
    let (status, log, _child) =
        second_installation(&server.data_dir, &namespace, &[], Duration::from_secs(30));
    assert!(status.is_some_and(|s| !s.success()), "{log}");
    assert!(
        log.contains(&format!("data directory {}", other_data.display())),
        "{log}"
    );
}
