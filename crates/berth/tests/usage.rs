//! End-to-end: the real `berth` binary samples every instance's CPU and memory use and shows
//! them per instance and summed per app, in `GET /apps/{name}` and `GET /apps`.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{Server, ready_instances};

const ROLLOUT: Duration = Duration::from_secs(60);
/// Two sampling rounds (every 5 s) and some slack.
const SAMPLED: Duration = Duration::from_secs(15);
/// Long enough for a burst of CPU to show in a sample, on a busy machine too.
const BURNING: Duration = Duration::from_secs(30);
const MEMORY_LIMIT: u64 = 128 * 1024 * 1024;

fn instances(app: &Value) -> Vec<Value> {
    app["instances"].as_array().cloned().unwrap_or_default()
}

fn memory_of(instance: &Value) -> u64 {
    instance["usage"]["memory_bytes"].as_u64().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_report_cpu_and_memory() {
    let server = Server::start("usage").await;
    server
        .create_app("hot", 2, json!({"memory_bytes": MEMORY_LIMIT}))
        .await;
    let app = server.wait_rollout("hot", ROLLOUT).await;
    assert_eq!(ready_instances(&app).len(), 2, "{app:#}");

    let app = server
        .wait_app(
            "hot",
            "usage with memory for each instance",
            SAMPLED,
            |app| {
                let all = instances(app);
                all.len() == 2 && all.iter().all(|i| memory_of(i) > 0)
            },
        )
        .await;
    for instance in instances(&app) {
        let usage = &instance["usage"];
        assert_eq!(
            usage["memory_limit_bytes"],
            json!(MEMORY_LIMIT),
            "{instance:#}"
        );
        assert!(
            usage["sampled_at"]
                .as_str()
                .is_some_and(|s| s.ends_with('Z')),
            "{instance:#}"
        );
    }
    let total = &app["usage"];
    assert_eq!(total["instances"], 2, "{app:#}");
    assert_eq!(
        total["memory_bytes"].as_u64(),
        Some(instances(&app).iter().map(memory_of).sum::<u64>()),
        "the app's memory is the sum of its instances': {app:#}"
    );

    // Burn CPU in one instance; its rate rises above zero.
    let busy = instances(&app)[0].clone();
    let name = busy["name"].as_str().unwrap().to_owned();
    let address = busy["address"].as_str().expect("address").to_owned();
    let answer = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .post(format!(
            "http://{address}/admin/burn?millicores=500&seconds=40"
        ))
        .send()
        .await
        .expect("POST /admin/burn");
    assert_eq!(answer.status().as_u16(), 200);
    let app = server
        .wait_app("hot", "CPU use of the burning instance", BURNING, |app| {
            instances(app).iter().any(|i| {
                i["name"] == json!(name)
                    && i["usage"]["cpu_millis"].as_u64().is_some_and(|m| m > 0)
                    && i["usage"]["cpu_millis_avg_1m"]
                        .as_u64()
                        .is_some_and(|m| m > 0)
            })
        })
        .await;
    assert!(
        app["usage"]["cpu_millis"].as_u64().is_some_and(|m| m > 0),
        "the app's CPU includes the burning instance: {app:#}"
    );

    // The apps list carries the same totals.
    let list = server.get("/api/v1/apps").await;
    let listed = list
        .as_array()
        .and_then(|apps| apps.iter().find(|a| a["name"] == "hot"))
        .expect("hot in the list");
    assert!(
        listed["usage"]["memory_bytes"]
            .as_u64()
            .is_some_and(|m| m > 0),
        "{listed:#}"
    );
    assert!(
        instances(listed).iter().all(|i| memory_of(i) > 0),
        "{listed:#}"
    );
}
