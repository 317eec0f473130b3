//! Builds the test app image and checks a container of it answers, reports and fails on demand.

use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use berth_testkit::{NamespaceGuard, http_get, require_docker, testapp_image};

const TIMEOUT: Duration = Duration::from_secs(2);

/// Runs `docker ARGS` and returns its trimmed stdout, panicking with stderr on failure.
fn docker(args: &[&str]) -> String {
    let output = Command::new("docker")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run docker {args:?}: {e}"));
    assert!(
        output.status.success(),
        "docker {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// Polls `url` until it answers `want`, or panics after `patience`.
fn wait_for_status(url: &str, want: u16, patience: Duration) -> String {
    let deadline = Instant::now() + patience;
    let mut last = String::new();
    while Instant::now() < deadline {
        match http_get(url, TIMEOUT) {
            Ok((status, body)) if status == want => return body,
            Ok((status, body)) => last = format!("status {status}: {body}"),
            Err(e) => last = e,
        }
        thread::sleep(Duration::from_millis(50));
    }
    panic!("{url} did not answer {want} within {patience:?}; last: {last}");
}

#[test]
fn testapp_container_serves_health_info_and_fails_on_demand() {
    require_docker();
    let image = testapp_image();
    let ns = NamespaceGuard::new("testkit-img");
    let label = ns.label();

    let id = docker(&[
        "run",
        "-d",
        "--init",
        "--label",
        &label,
        "-e",
        "BERTH_APP=demo",
        "-e",
        "BERTH_INSTANCE=demo-1",
        "-e",
        "BERTH_REVISION=7",
        "-e",
        "VERSION=v1.2.3",
        &image,
    ]);
    let ip = docker(&["inspect", "--format", "{{.NetworkSettings.IPAddress}}", &id]);
    assert!(
        !ip.is_empty(),
        "container {id} has no IP on the default bridge"
    );
    let base = format!("http://{ip}:8080");

    assert_eq!(
        wait_for_status(&format!("{base}/healthz"), 200, Duration::from_secs(30)),
        "ok"
    );

    let (status, body) = http_get(&format!("{base}/"), TIMEOUT).unwrap();
    assert_eq!(status, 200, "{body}");
    let info: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(info["app"], "demo", "{body}");
    assert_eq!(info["instance"], "demo-1", "{body}");
    assert_eq!(info["revision"], "7", "{body}");
    assert_eq!(info["version"], "v1.2.3", "{body}");
    assert_eq!(info["hostname"], id[..12], "{body}");

    let (status, body) = http_get(&format!("{base}/env"), TIMEOUT).unwrap();
    assert_eq!(status, 200, "{body}");
    let env: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(env["BERTH_APP"], "demo", "{body}");

    assert_eq!(http_get(&format!("{base}/nope"), TIMEOUT).unwrap().0, 404);

    // GET is accepted for the health toggles, which is all http_get can send.
    assert_eq!(
        http_get(&format!("{base}/admin/fail-health"), TIMEOUT)
            .unwrap()
            .0,
        200
    );
    assert_eq!(
        http_get(&format!("{base}/healthz"), TIMEOUT).unwrap(),
        (500, "failing".to_string())
    );
    assert_eq!(
        http_get(&format!("{base}/admin/pass-health"), TIMEOUT)
            .unwrap()
            .0,
        200
    );
    assert_eq!(
        http_get(&format!("{base}/healthz"), TIMEOUT).unwrap(),
        (200, "ok".to_string())
    );

    let logs = docker(&["logs", &id]);
    assert!(logs.contains("listening on 0.0.0.0:8080"), "{logs}");
    assert!(logs.contains("GET /healthz 500"), "{logs}");

    let filter = format!("label={label}");
    drop(ns);
    assert_eq!(
        docker(&["ps", "-aq", "--filter", &filter]),
        "",
        "the guard left containers behind"
    );
}
