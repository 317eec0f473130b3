//! End-to-end: canary rollouts through the real binary, the real engine and the router. A
//! revision that passes its health checks but answers 500 takes its share of the traffic, is
//! judged worse than the old one and rolled back by itself; a good revision passes its canary
//! and rolls out; a header canary gets only the requests carrying the header; bad settings
//! are refused naming the field, by the API and the CLI.

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use support::{Server, assert_refused, wait_until};

const HOST: &str = "web.default.localhost";

/// What a client saw through the router: responses counted by (revision, status).
type Seen = Arc<Mutex<BTreeMap<(String, u16), usize>>>;

/// Clients sending `GET /` through the router (with `header` when given) until stopped.
struct Traffic {
    stop: Arc<AtomicBool>,
    seen: Seen,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Traffic {
    fn start(
        server: &Server,
        clients: usize,
        header: Option<(&'static str, &'static str)>,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let seen: Seen = Arc::default();
        let url = format!("http://127.0.0.1:{}/", server.router_port);
        let tasks = (0..clients)
            .map(|_| {
                let (stop, seen, url) = (stop.clone(), seen.clone(), url.clone());
                let client = reqwest::Client::builder().no_proxy().build().unwrap();
                tokio::spawn(async move {
                    while !stop.load(Ordering::SeqCst) {
                        let mut request = client.get(&url).header(reqwest::header::HOST, HOST);
                        if let Some((name, value)) = header {
                            request = request.header(name, value);
                        }
                        let key = match request.timeout(Duration::from_secs(10)).send().await {
                            Ok(response) => {
                                let status = response.status().as_u16();
                                let body: Value = response.json().await.unwrap_or(Value::Null);
                                let revision = body["revision"].as_str().unwrap_or("?");
                                (revision.to_string(), status)
                            }
                            Err(_) => ("error".to_string(), 0),
                        };
                        *seen.lock().unwrap().entry(key).or_default() += 1;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                })
            })
            .collect();
        Traffic { stop, seen, tasks }
    }

    /// What was seen so far (and clears it).
    fn take(&self) -> BTreeMap<(String, u16), usize> {
        std::mem::take(&mut *self.seen.lock().unwrap())
    }

    async fn finish(mut self) -> BTreeMap<(String, u16), usize> {
        self.stop.store(true, Ordering::SeqCst);
        for task in std::mem::take(&mut self.tasks) {
            task.await.unwrap();
        }
        self.take()
    }
}

fn count(seen: &BTreeMap<(String, u16), usize>, revision: &str, status: u16) -> usize {
    seen.get(&(revision.to_string(), status))
        .copied()
        .unwrap_or(0)
}

/// Waits until the rollout's canary takes traffic; returns the app.
async fn canary_taking_traffic(server: &Server) -> Value {
    server
        .wait_app(
            "web",
            "the canary taking traffic",
            Duration::from_secs(60),
            |app| app["rollout"]["canary"]["passed"] == false,
        )
        .await
}

async fn kinds(server: &Server) -> Vec<String> {
    server
        .events("web")
        .await
        .iter()
        .filter_map(|e| e["kind"].as_str().map(String::from))
        .collect()
}

async fn event(server: &Server, kind: &str) -> Value {
    let events = server.events("web").await;
    let found = events.iter().rev().find(|e| e["kind"] == kind).cloned();
    found.unwrap_or_else(|| panic!("no {kind} event in {events:#?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_canary_that_answers_errors_is_rolled_back_and_a_good_one_rolls_out() {
    let server = Server::start("canary").await;
    server.create_app("web", 2, json!({})).await;
    server.wait_rollout("web", Duration::from_secs(90)).await;

    // Bad settings are refused naming the field, and change nothing.
    for (strategy, field) in [
        (
            json!({"canary": {"weight_percent": 0, "duration_seconds": 60}}),
            "strategy.canary.weight_percent",
        ),
        (
            json!({"canary": {"weight_percent": 10, "duration_seconds": 1}}),
            "strategy.canary.duration",
        ),
        (
            json!({"canary": {"header": {"name": "x canary", "value": "1"},
                "duration_seconds": 60}}),
            "strategy.canary.header",
        ),
        (
            json!({"max_surge": 0, "max_unavailable": 1,
                "canary": {"weight_percent": 10, "duration_seconds": 60}}),
            "strategy.canary",
        ),
    ] {
        let (status, answer) = server
            .call(
                reqwest::Method::POST,
                "/api/v1/apps/web/deploy",
                Some(json!({ "strategy": strategy })),
            )
            .await;
        assert_refused(status, &answer, 400, "");
        assert_eq!(answer["error"]["field"], field, "{answer}");
    }
    let app = server.app("web").await;
    assert_eq!(app["current_revision"], 1, "{app:#}");
    assert_eq!(app["strategy"]["canary"], Value::Null, "{app:#}");
    let out = server.cli(&["deploy", "web", "--canary", "half"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--canary \"half\""),
        "{out:?}"
    );

    // A revision that passes its health checks but answers 500: its canary takes half of the
    // requests for 8 s, is judged worse than revision 1, and the rollout rolls back.
    let traffic = Traffic::start(&server, 4, None);
    let out = server.cli(&[
        "deploy",
        "web",
        "--env",
        "FAIL_REQUESTS=1",
        "--canary",
        "50%",
        "--canary-duration",
        "8s",
    ]);
    assert!(out.status.success(), "{out:?}");
    let app = server.wait_rollout("web", Duration::from_secs(120)).await;
    assert_eq!(app["rollout"]["phase"], "rolled_back", "{app:#}");
    assert_eq!(app["current_revision"], 1, "{app:#}");
    let seen = traffic.take();
    assert!(
        count(&seen, "2", 500) >= 20,
        "the canary took traffic: {seen:?}"
    );
    assert_eq!(count(&seen, "1", 500), 0, "{seen:?}");
    assert_eq!(count(&seen, "error", 0), 0, "{seen:?}");
    let started = event(&server, "canary_started").await;
    assert!(
        started["message"]
            .as_str()
            .unwrap()
            .contains("takes 50 % of requests for 8 s"),
        "{started}"
    );
    let failed = event(&server, "rollout_failed").await;
    assert!(
        failed["message"]
            .as_str()
            .unwrap()
            .contains("canary failed: revision 2 answered 100.0 % errors"),
        "{failed}"
    );
    assert!(kinds(&server).await.contains(&"rolled_back".to_string()));
    // Back on revision 1 only: no more errors.
    wait_until(
        "the canary's instance gone",
        Duration::from_secs(30),
        || async {
            server.app("web").await["instances"]
                .as_array()
                .is_some_and(|i| i.iter().all(|i| i["revision"] == 1))
        },
    )
    .await;
    traffic.take();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let seen = traffic.take();
    assert_eq!(
        seen.keys().collect::<Vec<_>>(),
        [&("1".to_string(), 200)],
        "{seen:?}"
    );

    // A good revision (the setting stays): its canary passes and the rollout completes.
    let out = server.cli(&[
        "deploy",
        "web",
        "--unset-env",
        "FAIL_REQUESTS",
        "--env",
        "ROUND=3",
    ]);
    assert!(out.status.success(), "{out:?}");
    let app = canary_taking_traffic(&server).await;
    let show = server.cli(&["apps", "show", "web"]);
    let show = String::from_utf8_lossy(&show.stdout);
    assert!(show.contains("canary taking traffic since"), "{show}");
    assert!(
        show.contains("canary:     each new revision first takes 50 % of requests for 8 s"),
        "{show}"
    );
    assert_eq!(app["current_revision"], 3, "{app:#}");
    let app = server.wait_rollout("web", Duration::from_secs(120)).await;
    assert_eq!(app["rollout"]["phase"], "complete", "{app:#}");
    let passed = event(&server, "canary_passed").await;
    assert!(
        passed["message"]
            .as_str()
            .unwrap()
            .starts_with("canary passed"),
        "{passed}"
    );
    let seen = traffic.finish().await;
    assert!(count(&seen, "3", 200) > 0, "{seen:?}");
    assert_eq!(
        seen.iter()
            .filter(|((_, status), _)| *status != 200)
            .count(),
        0,
        "a good canary fails no request: {seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_header_canary_takes_only_the_requests_that_carry_the_header() {
    let server = Server::start("canary-header").await;
    server
        .create_app(
            "web",
            2,
            json!({"strategy": {"canary": {
                "header": {"name": "X-Canary", "value": "yes"}, "duration_seconds": 6}}}),
        )
        .await;
    // The first rollout has no canary (nothing to compare with).
    let app = server.wait_rollout("web", Duration::from_secs(90)).await;
    assert_eq!(app["rollout"]["phase"], "complete", "{app:#}");
    assert_eq!(
        app["strategy"]["canary"]["header"],
        json!({"name": "x-canary", "value": "yes"})
    );

    server
        .post("/api/v1/apps/web/deploy", json!({"env": {"ROUND": "2"}}))
        .await;
    canary_taking_traffic(&server).await;
    let with_header = Traffic::start(&server, 2, Some(("x-canary", "yes")));
    let without = Traffic::start(&server, 2, None);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (canary, rest) = (with_header.finish().await, without.finish().await);
    assert!(count(&canary, "2", 200) > 0, "{canary:?}");
    assert_eq!(
        canary.keys().collect::<Vec<_>>(),
        [&("2".to_string(), 200)],
        "only the canary answers requests with the header: {canary:?}"
    );
    assert_eq!(
        rest.keys().collect::<Vec<_>>(),
        [&("1".to_string(), 200)],
        "the others stay on revision 1 while the canary is judged: {rest:?}"
    );
    let app = server.wait_rollout("web", Duration::from_secs(90)).await;
    assert_eq!(app["rollout"]["phase"], "complete", "{app:#}");
    assert_eq!(app["rollout"]["canary"]["passed"], true, "{app:#}");

    // Turned off with null: the next revision rolls out at once.
    server
        .post(
            "/api/v1/apps/web/deploy",
            json!({"env": {"ROUND": "3"}, "strategy": {"canary": null}}),
        )
        .await;
    let app = server.wait_rollout("web", Duration::from_secs(90)).await;
    assert_eq!(app["strategy"]["canary"], Value::Null, "{app:#}");
    assert_eq!(app["rollout"]["phase"], "complete", "{app:#}");
    assert!(app["rollout"]["canary"].is_null(), "{app:#}");
}
