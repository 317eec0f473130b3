//! End-to-end: published TCP ports on the real binary. An app with `--tcp-port HOST:8080` and
//! two instances answers raw TCP on the host port (both instances get connections); a host port
//! is one app's (409 `port_taken`), a port another process holds is refused (409), hostile
//! specs are refused with a 400 naming `tcp_ports`, a port left to Berth comes from the range,
//! removing the ports closes the listener, and with no instance ready a connection is closed
//! at once.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use support::{Server, assert_refused, wait_until};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A port nobody holds now on 127.0.0.1.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET / HTTP/1.0` over plain TCP to 127.0.0.1:`port`: the whole reply, or what went wrong
/// (refused, closed without a reply).
async fn raw_get(port: u16) -> Result<String, String> {
    let exchange = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| format!("connect: {e}"))?;
        stream
            .write_all(b"GET / HTTP/1.0\r\n\r\n")
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut reply = Vec::new();
        stream
            .read_to_end(&mut reply)
            .await
            .map_err(|e| format!("read: {e}"))?;
        if reply.is_empty() {
            return Err("closed without a reply".to_string());
        }
        Ok(String::from_utf8_lossy(&reply).into_owned())
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .unwrap_or_else(|_| panic!("port {port}: no answer and not closed within 10 s (a hang)"))
}

/// The instance that answered a raw reply of the test app.
fn instance_of(reply: &str) -> String {
    let body = reply.split("\r\n\r\n").nth(1).unwrap_or_default();
    let answer: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    answer["instance"].as_str().unwrap_or_default().to_string()
}

async fn deploy(server: &Server, app: &str, body: Value) -> (u16, Value) {
    server
        .call(
            Method::POST,
            &format!("/api/v1/apps/{app}/deploy"),
            Some(body),
        )
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn tcp_ports_forward_to_ready_instances_and_belong_to_one_app() {
    let server = Server::start_with(
        "tcp-ports",
        &[
            "--tcp-listen-address",
            "127.0.0.1",
            "--tcp-port-range",
            "39100-39199",
        ],
    )
    .await;
    let port = free_port();

    // As the README: `berth apps create … --tcp-port HOST:8080`.
    let out = server.cli(&[
        "apps",
        "create",
        "db",
        "--image",
        berth_testkit::TESTAPP_IMAGE,
        "--health-path",
        "/healthz",
        "--replicas",
        "2",
        "--tcp-port",
        &format!("{port}:8080"),
    ]);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let app = server.wait_rollout("db", Duration::from_secs(60)).await;
    assert_eq!(
        app["tcp_ports"],
        json!([{"container_port": 8080, "host_port": port, "address": format!("127.0.0.1:{port}")}])
    );
    let shown = server.cli(&["apps", "show", "db"]);
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(
        shown.contains(&format!("8080 -> 127.0.0.1:{port}")),
        "{shown}"
    );

    // Both instances get connections, round robin.
    let mut seen = BTreeSet::new();
    let start = std::time::Instant::now();
    while seen.len() < 2 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "not both instances answered on the TCP port: {seen:?}\n{}",
            server.log()
        );
        if let Ok(reply) = raw_get(port).await {
            assert!(reply.starts_with("HTTP/1."), "{reply}");
            seen.insert(instance_of(&reply));
        }
    }

    // A second app cannot claim the same host port.
    let (status, answer) = server
        .call(
            Method::POST,
            "/api/v1/apps",
            Some(
                json!({"name": "other", "image": berth_testkit::TESTAPP_IMAGE,
                "tcp_ports": [format!("{port}:8080")]}),
            ),
        )
        .await;
    assert_eq!(status, 409, "{answer}");
    assert_eq!(answer["error"]["code"], json!("port_taken"), "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("app db of team"),
        "{answer}"
    );

    // A port another process holds is refused.
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let held_port = held.local_addr().unwrap().port();
    let (status, answer) = server
        .call(
            Method::POST,
            "/api/v1/apps",
            Some(
                json!({"name": "other", "image": berth_testkit::TESTAPP_IMAGE,
                "tcp_ports": [format!("{held_port}:8080")]}),
            ),
        )
        .await;
    assert_refused(status, &answer, 409, "another process");
    drop(held);

    // Hostile specs: 400 naming the field, and the app keeps its port.
    for bad in [
        json!(["0"]),
        json!(["65536"]),
        json!(["a:b"]),
        json!(["1:2:3"]),
        json!(["8080", "8080"]),
        json!([5432]),
    ] {
        let (status, answer) = deploy(&server, "db", json!({"tcp_ports": bad})).await;
        assert_eq!(status, 400, "{bad}: {answer}");
        let text = answer.to_string();
        assert!(text.contains("tcp_ports"), "{bad}: {answer}");
    }
    // Below 1024 is for admins only.
    let alice = server.register("alice", Some("web")).await;
    let (status, answer) = server
        .call_as(
            &alice,
            Method::POST,
            "/api/v1/apps",
            Some(
                json!({"name": "low", "team": "web", "image": berth_testkit::TESTAPP_IMAGE,
                "cpu_millis": 100, "memory_bytes": 64 << 20, "tcp_ports": ["80:8080"]}),
            ),
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"]["field"], json!("tcp_ports"), "{answer}");
    // Another team's holder is not named to alice.
    let (status, answer) = server
        .call_as(
            &alice,
            Method::POST,
            "/api/v1/apps",
            Some(
                json!({"name": "low", "team": "web", "image": berth_testkit::TESTAPP_IMAGE,
                "cpu_millis": 100, "memory_bytes": 64 << 20,
                "tcp_ports": [format!("{port}:8080")]}),
            ),
        )
        .await;
    assert_refused(status, &answer, 409, "an app of another team");
    let (status, answer) = deploy(&server, "db", json!({"internal": true})).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"]["field"], json!("tcp_ports"), "{answer}");
    assert_eq!(
        server.app("db").await["tcp_ports"][0]["host_port"],
        json!(port)
    );

    // A port left to Berth comes from the range and stays on a repeat.
    let other = server
        .create_app("other", 1, json!({"tcp_ports": ["8080"]}))
        .await;
    let chosen = other["tcp_ports"][0]["host_port"].as_u64().unwrap();
    assert!((39100..=39199).contains(&chosen), "{other}");
    let (status, again) = deploy(&server, "other", json!({"tcp_ports": ["8080"]})).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["tcp_ports"][0]["host_port"], json!(chosen));

    // Scaled to 0: a connection is closed at once, without a reply.
    server
        .post("/api/v1/apps/db/scale", json!({"replicas": 0}))
        .await;
    server
        .wait_app("db", "no instance", Duration::from_secs(60), |app| {
            app["instances"].as_array().is_some_and(|i| i.is_empty())
        })
        .await;
    // Closed or reset, never answered nor left hanging (`raw_get` fails on a hang).
    let closed = raw_get(port).await;
    assert!(closed.is_err(), "{closed:?}");

    // Removing the port closes the listener.
    let out = server.cli(&["deploy", "db", "--no-tcp-ports"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_until("the listener closed", Duration::from_secs(10), || async {
        TcpStream::connect(("127.0.0.1", port)).await.is_err()
    })
    .await;
    assert_eq!(server.app("db").await["tcp_ports"], json!([]));
}
