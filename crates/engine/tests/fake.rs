//! Runs the runtime conformance suite against the in-memory [`FakeRuntime`], and checks the
//! controls tests steer it with. No Docker needed.

use std::collections::BTreeMap;
use std::time::Duration;

use berth_engine::conformance::{self, ConformanceFixture};
use berth_engine::fake::{FakeRuntime, HttpAnswer};
use berth_engine::probe::InstanceProbe;
use berth_engine::{ContainerState, EngineError, Runtime};
use futures::StreamExt;

const IMAGE: &str = "berth-testapp:fake";

fn fixture() -> ConformanceFixture {
    ConformanceFixture {
        image: IMAGE.to_owned(),
        namespace: "fake-conformance".to_owned(),
        registry: None,
    }
}

#[tokio::test]
async fn fake_runtime_passes_conformance() {
    let fake = FakeRuntime::new().with_image(IMAGE);
    conformance::runtime::run_all(&fake, &fixture()).await;
    assert!(fake.containers().is_empty(), "the suite cleans up");
}

/// Starts one instance of `check` and returns its id.
async fn started(fake: &FakeRuntime, check: &str) -> String {
    conformance::start(fake, &conformance::instance_spec(&fixture(), check)).await
}

#[tokio::test(start_paused = true)]
async fn ids_addresses_and_times_are_deterministic() {
    let fake = FakeRuntime::new().with_image(IMAGE);
    let first = started(&fake, "one").await;
    tokio::time::advance(Duration::from_secs(3)).await;
    let second = started(&fake, "two").await;
    let listed = fake.containers();
    assert_eq!(
        [first.as_str(), second.as_str()],
        ["fake-000001", "fake-000002"]
    );
    assert_eq!(listed[0].ip_address.as_deref(), Some("10.88.0.3"));
    assert_eq!(listed[1].ip_address.as_deref(), Some("10.88.0.4"));
    assert_eq!(listed[1].created_at_ms - listed[0].created_at_ms, 3_000);
    assert_eq!(listed[0].created_at_ms, berth_engine::fake::EPOCH_MS);
}

#[tokio::test(start_paused = true)]
async fn tests_steer_the_instances() {
    // (what the test does, the state after it, the exit code after it, the event it causes)
    type Steer = fn(&FakeRuntime, &str) -> bool;
    let cases: [(&str, Steer, Option<ContainerState>, Option<i64>, &str); 3] = [
        (
            "kill",
            |f, n| f.kill(n),
            Some(ContainerState::Exited),
            Some(137),
            "die",
        ),
        (
            "exit 3",
            |f, n| f.exit(n, 3),
            Some(ContainerState::Exited),
            Some(3),
            "die",
        ),
        ("remove", |f, n| f.remove(n), None, None, "destroy"),
    ];
    for (what, steer, state, code, action) in cases {
        let fake = FakeRuntime::new().with_image(IMAGE);
        let mut events = fake.events(&BTreeMap::new());
        let id = started(&fake, "steered").await;
        let name = fake.containers()[0].name.clone();
        assert!(steer(&fake, &name), "{what}");
        let listed = fake.containers().into_iter().find(|c| c.id == id);
        assert_eq!(listed.as_ref().map(|c| c.state), state, "{what}");
        assert_eq!(listed.and_then(|c| c.exit_code), code, "{what}");
        let mut actions = Vec::new();
        while actions.last().map(String::as_str) != Some(action) {
            let event = events.next().await.expect("event").expect("event ok");
            actions.push(event.action);
        }
        assert!(
            actions.starts_with(&["create".into(), "start".into()]),
            "{what}: {actions:?}"
        );
        assert!(!steer(&fake, "no-such-container"), "{what} of nothing");
        let history = fake.history();
        assert_eq!(history.len(), 1, "{what}: history keeps every container");
        assert_eq!(history[0].id, id, "{what}");
    }
}

#[tokio::test(start_paused = true)]
async fn failing_starts_and_missing_images() {
    let fake = FakeRuntime::new().with_image(IMAGE);
    fake.fail_starts(IMAGE, Some("exec format error"));
    let spec = conformance::instance_spec(&fixture(), "fails");
    fake.ensure_network(&spec.network).await.unwrap();
    match fake.start_instance(&spec).await {
        Err(EngineError::Other(reason)) => assert_eq!(reason, "exec format error"),
        other => panic!("a failing start gave {other:?}"),
    }
    assert!(
        fake.containers().is_empty(),
        "a failed start leaves nothing"
    );
    fake.fail_starts(IMAGE, None);
    fake.start_instance(&spec).await.expect("starts again");

    let mut missing = conformance::instance_spec(&fixture(), "missing");
    missing.image = "nowhere:1".to_owned();
    assert!(matches!(
        fake.start_instance(&missing).await,
        Err(EngineError::ImageNotFound { .. })
    ));
    fake.add_image("nowhere:1");
    fake.start_instance(&missing).await.expect("present now");
}

#[tokio::test(start_paused = true)]
async fn probes_answer_as_told() {
    let fake = FakeRuntime::new().with_image(IMAGE);
    let id = started(&fake, "probed").await;
    let address = fake.containers()[0].ip_address.clone().expect("address");
    let timeout = Duration::from_secs(1);
    let probe = |port| {
        let fake = fake.clone();
        let address = address.clone();
        async move { fake.http(&address, port, "/healthz", timeout).await }
    };
    assert_eq!(probe(8080).await, Ok(()), "a running instance answers 200");
    assert_eq!(
        probe(9999).await,
        Err("connection refused".into()),
        "wrong port"
    );
    let tcp = || fake.tcp(&address, 8080, timeout);
    assert_eq!(
        tcp().await,
        Ok(()),
        "a running instance accepts connections"
    );
    assert_eq!(
        fake.tcp(&address, 9999, timeout).await,
        Err("connection refused".into()),
        "nothing listens on another port"
    );
    let hang = || Err("no answer within 1000 ms".to_owned());
    let refused = || Err("connection refused".to_owned());
    // (how the image answers, the HTTP probe's outcome, the TCP probe's outcome)
    let cases = [
        (HttpAnswer::Status(503), Err("HTTP 503".to_owned()), Ok(())),
        (HttpAnswer::Status(302), Ok(()), Ok(())),
        (HttpAnswer::Refused, refused(), refused()),
        (HttpAnswer::Hang, hang(), hang()),
    ];
    for (answer, http, tcp_outcome) in cases {
        fake.set_image_http(IMAGE, answer);
        assert_eq!(probe(8080).await, http, "image answers {answer:?}");
        assert_eq!(tcp().await, tcp_outcome, "TCP, image answers {answer:?}");
    }
    assert!(fake.set_http(&id, HttpAnswer::Status(200)));
    assert_eq!(probe(8080).await, Ok(()), "the container's answer wins");
    fake.exit(&id, 1);
    assert_eq!(
        probe(8080).await,
        Err("connection refused".into()),
        "exited"
    );
}

#[tokio::test(start_paused = true)]
async fn an_unreachable_runtime_fails_every_call_and_ends_event_streams() {
    let fake = FakeRuntime::new().with_image(IMAGE);
    let mut events = fake.events(&BTreeMap::new());
    fake.set_unreachable(Some("daemon down"));
    assert!(events.next().await.is_none(), "the stream ends");
    assert!(matches!(
        fake.info().await,
        Err(EngineError::Unreachable(_))
    ));
    assert!(matches!(
        fake.list_containers(&BTreeMap::new()).await,
        Err(EngineError::Unreachable(_))
    ));
    let mut events = fake.events(&BTreeMap::new());
    assert!(matches!(
        events.next().await,
        Some(Err(EngineError::Unreachable(_)))
    ));
    fake.set_unreachable(None);
    fake.info().await.expect("reachable again");
}
