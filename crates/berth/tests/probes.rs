//! End-to-end on the real engine: readiness and liveness probes set with the CLI's flags, HTTP
//! and TCP, each doing its own job (readiness takes an instance out of service, liveness gets
//! it replaced), and bad probe settings refused naming the field.

mod support;

use std::process::Output;
use std::time::Duration;

use serde_json::{Value, json};
use support::{Server, assert_refused, ready_instances};

const WAIT: Duration = Duration::from_secs(60);
const IMAGE: &str = berth_testkit::TESTAPP_IMAGE;

fn ok(output: &Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

fn refused(output: &Output) -> String {
    assert!(!output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stderr).to_string()
}

/// Switches the test app's `/healthz` of `instance` to failing (`fail-health`) or passing.
fn health(instance: &Value, switch: &str) {
    let address = instance["address"].as_str().expect("address");
    let (status, _) = berth_testkit::http_get(
        &format!("http://{address}/admin/{switch}"),
        Duration::from_secs(2),
    )
    .unwrap();
    assert_eq!(status, 200);
}

fn only_instance(app: &Value) -> Value {
    let instances = app["instances"].as_array().unwrap();
    assert_eq!(instances.len(), 1, "{app:#}");
    instances[0].clone()
}

fn events_of_kind(events: &[Value], kind: &str) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["kind"] == kind)
        .map(|e| e["message"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_and_http_probes_from_the_cli_each_do_their_job() {
    let server = Server::start("probes").await;

    // A TCP readiness probe: the app's /healthz answers 500 from the start, so only a TCP
    // probe lets it become ready.
    ok(&server.cli(&[
        "apps",
        "create",
        "tcp",
        "--image",
        IMAGE,
        "--env",
        "FAIL_HEALTH=1",
        "--ready-tcp",
        "--ready-period",
        "300ms",
        "--no-live",
        "--wait",
    ]));
    let app = server.app("tcp").await;
    assert_eq!(ready_instances(&app).len(), 1, "{app:#}");
    assert_eq!(app["template"]["readiness"]["kind"], "tcp");
    assert_eq!(app["template"]["readiness"]["period_ms"], 300);
    assert_eq!(app["template"]["readiness"]["timeout_ms"], 300);
    assert_eq!(app["template"]["liveness"], Value::Null);
    let show = ok(&server.cli(&["apps", "show", "tcp"]));
    assert!(
        show.contains(
            "readiness:  tcp :8080 every 300ms timeout 300ms failures 3 successes 1 delay 0ms"
        ),
        "{show}"
    );
    assert!(show.contains("liveness:   none"), "{show}");

    // HTTP readiness, TCP liveness: a failing /healthz takes the instance out of service, and
    // only that: it still accepts connections, so it is not replaced.
    ok(&server.cli(&[
        "apps",
        "create",
        "web",
        "--image",
        IMAGE,
        "--ready-path",
        "/healthz",
        "--ready-period",
        "300ms",
        "--ready-failures",
        "2",
        "--live-tcp",
        "--live-period",
        "300ms",
        "--live-failures",
        "2",
        "--wait",
    ]));
    let app = server.app("web").await;
    let instance = only_instance(&app);
    let name = instance["name"].as_str().unwrap().to_string();
    health(&instance, "fail-health");
    server
        .wait_app("web", "the instance out of service", WAIT, |a| {
            ready_instances(a).is_empty()
        })
        .await;
    // Many liveness periods later, the same instance runs on.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let app = server.app("web").await;
    let still = only_instance(&app);
    assert_eq!(still["name"], name.as_str(), "{app:#}");
    assert_eq!(still["readiness"], "not_ready", "{app:#}");
    assert_eq!(still["liveness"], "healthy", "{app:#}");
    let events = server.events("web").await;
    let not_ready = events_of_kind(&events, "instance_not_ready");
    assert!(
        not_ready.iter().any(|m| m.contains(&format!(
            "instance {name} failed readiness 2 times (HTTP 500)"
        ))),
        "{not_ready:?}"
    );
    assert_eq!(
        events_of_kind(&events, "instance_unhealthy"),
        Vec::<String>::new()
    );
    health(&still, "pass-health");
    server
        .wait_app("web", "the instance back in service", WAIT, |a| {
            ready_instances(a).len() == 1
        })
        .await;

    // Liveness over HTTP now; the flag changes only the kind and path, the period and
    // threshold stay.
    ok(&server.cli(&["deploy", "web", "--live-path", "/healthz", "--wait"]));
    let app = server.app("web").await;
    assert_eq!(app["current_revision"], 2);
    let liveness = &app["template"]["liveness"];
    assert_eq!(
        (
            &liveness["kind"],
            &liveness["path"],
            &liveness["period_ms"],
            &liveness["failure_threshold"]
        ),
        (&json!("http"), &json!("/healthz"), &json!(300), &json!(2)),
        "{app:#}"
    );
    assert_eq!(app["template"]["readiness"]["kind"], "http");
    let instance = ready_instances(&app)[0].clone();
    let name = instance["name"].as_str().unwrap().to_string();
    health(&instance, "fail-health");
    server
        .wait_app("web", "the failing instance replaced", WAIT, |a| {
            let ready = ready_instances(a);
            ready.len() == 1 && ready[0]["name"] != name.as_str()
        })
        .await;
    let events = server.events("web").await;
    let unhealthy = events_of_kind(&events, "instance_unhealthy");
    assert!(
        unhealthy.iter().any(|m| m.contains(&format!(
            "instance {name} failed liveness 2 times (HTTP 500) → replacing it"
        ))),
        "{unhealthy:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_probe_settings_are_refused_naming_the_field() {
    let server = Server::start("probe-errors").await;
    let create = |extra: Value| {
        let mut body = json!({"name": "bad", "image": IMAGE});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    // (request fields, the field the 400 names)
    let cases = [
        (
            json!({"readiness": {"period_ms": 1000, "timeout_ms": 2000}}),
            "template.readiness.timeout_ms",
        ),
        (
            json!({"readiness": {"path": "healthz"}}),
            "template.readiness.path",
        ),
        (
            json!({"liveness": {"failure_threshold": 0}}),
            "template.liveness.failure_threshold",
        ),
        (
            json!({"liveness": {"period_ms": 50}}),
            "template.liveness.period_ms",
        ),
        (json!({"liveness": {"port": 0}}), "template.liveness.port"),
        (json!({"liveness": {"kind": "udp"}}), "liveness.kind"),
        (json!({"readiness": {"port": 70000}}), "readiness.port"),
    ];
    for (extra, field) in cases {
        let (status, answer) = server
            .call(
                reqwest::Method::POST,
                "/api/v1/apps",
                Some(create(extra.clone())),
            )
            .await;
        assert_refused(status, &answer, 400, field);
        assert_eq!(answer["error"]["field"], field, "{extra}: {answer}");
    }
    let (status, _) = server
        .call(reqwest::Method::GET, "/api/v1/apps/bad", None)
        .await;
    assert_eq!(status, 404, "a refused create left an app behind");

    // The CLI says the same, and creates nothing either.
    let cli_cases: [(&[&str], &str); 3] = [
        (
            &["--live-period", "1s", "--live-timeout", "2s"],
            "template.liveness.timeout_ms",
        ),
        (&["--ready-port", "0"], "template.readiness.port"),
        (&["--ready-period", "often"], "--ready-period \"often\""),
    ];
    for (flags, said) in cli_cases {
        let mut args = vec!["apps", "create", "bad", "--image", IMAGE];
        args.extend_from_slice(flags);
        let error = refused(&server.cli(&args));
        assert!(error.contains(said), "{flags:?}: {error}");
    }
    let (status, _) = server
        .call(reqwest::Method::GET, "/api/v1/apps/bad", None)
        .await;
    assert_eq!(status, 404);

    // A bad deploy leaves the app as it was.
    ok(&server.cli(&[
        "apps",
        "create",
        "good",
        "--image",
        IMAGE,
        "--no-ready",
        "--no-live",
    ]));
    let error = refused(&server.cli(&["deploy", "good", "--ready-path", "up"]));
    assert!(error.contains("template.readiness.path"), "{error}");
    let app = server.app("good").await;
    assert_eq!(app["current_revision"], 1);
    assert_eq!(app["template"]["readiness"], Value::Null);
}
