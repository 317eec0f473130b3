//! Runs both conformance suites (runtime and builder) against [`DockerEngine`] on the real
//! Docker Engine, plus the Docker-specific promises (limits applied, init, restart policy,
//! network reachability).
//!
//! Each test works in its own namespace, removed by a [`NamespaceGuard`] even on failure, so
//! the tests pass while other containers run on the same engine.

use std::collections::BTreeMap;
use std::time::Duration;

use berth_engine::conformance::{self, ConformanceFixture};
use berth_engine::{DockerEngine, EngineError, RegistryAuth, Runtime};
use berth_testkit::{
    NamespaceGuard, TestRegistry, http_get, require_docker, testapp_image, unique_namespace,
};
use bollard::Docker;
use bollard::models::ContainerInspectResponse;

/// Builds (once) the test app image and a fixture in a fresh, guarded namespace.
async fn setup(prefix: &str) -> (DockerEngine, ConformanceFixture, NamespaceGuard) {
    require_docker();
    let image = tokio::task::spawn_blocking(testapp_image)
        .await
        .expect("building the test app image panicked");
    let namespace = unique_namespace(prefix);
    let guard = NamespaceGuard(namespace.clone());
    let engine = DockerEngine::connect().expect("connect to Docker");
    let fixture = ConformanceFixture {
        image,
        namespace,
        registry: None,
    };
    (engine, fixture, guard)
}

/// A plain bollard client for looking behind the engine's back.
async fn raw_docker() -> Docker {
    Docker::connect_with_defaults()
        .expect("bollard connect")
        .negotiate_version()
        .await
        .expect("negotiate API version")
}

async fn inspect(id: &str) -> ContainerInspectResponse {
    raw_docker()
        .await
        .inspect_container(id, None)
        .await
        .expect("inspect container")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_runtime_passes_conformance() {
    let (engine, fixture, _guard) = setup("engine-conf").await;
    conformance::runtime::run_all(&engine, &fixture).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_builder_passes_conformance() {
    let (engine, mut fixture, _guard) = setup("engine-build").await;
    let registry = TestRegistry::start("pusher", "push-secret").await;
    fixture.registry = Some(RegistryAuth {
        username: registry.username().to_owned(),
        password: registry.password().to_owned(),
        server: registry.host(),
    });
    conformance::builder::run_all(&engine, &fixture).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_init_and_stop_timeout_are_applied() {
    let (engine, fixture, _guard) = setup("engine-limits").await;
    let mut spec = conformance::instance_spec(&fixture, "limits");
    spec.cpu_millis = Some(500);
    spec.memory_bytes = Some(64 * 1024 * 1024);
    spec.stop_grace = Duration::from_millis(7_300);
    let id = conformance::start(&engine, &spec).await;

    let inspected = inspect(&id).await;
    let host = inspected.host_config.expect("HostConfig");
    assert_eq!(host.nano_cpus, Some(500_000_000), "NanoCpus");
    assert_eq!(host.memory, Some(64 * 1024 * 1024), "Memory");
    assert_eq!(host.init, Some(true), "Init");
    assert_eq!(
        host.restart_policy
            .and_then(|p| p.name)
            .map(|n| n.to_string())
            .as_deref(),
        Some("no"),
        "RestartPolicy"
    );
    assert_eq!(
        host.network_mode.as_deref(),
        Some(fixture.namespace.as_str())
    );
    let config = inspected.config.expect("Config");
    assert_eq!(
        config.stop_timeout,
        Some(8),
        "StopTimeout is the grace rounded up"
    );
    let env = config.env.unwrap_or_default();
    assert!(
        env.contains(&"BERTH_CONFORMANCE=limits".to_owned()),
        "Env {env:?}"
    );
    let aliases = inspected
        .network_settings
        .and_then(|n| n.networks)
        .and_then(|mut n| n.remove(&fixture.namespace))
        .and_then(|e| e.aliases)
        .unwrap_or_default();
    assert!(
        aliases.contains(&"conformance-limits".to_owned()),
        "aliases {aliases:?}"
    );

    engine
        .stop_instance(&id, spec.stop_grace)
        .await
        .expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_and_args_override_the_image() {
    let (engine, fixture, _guard) = setup("engine-cmd").await;
    let image = raw_docker()
        .await
        .inspect_image(&fixture.image)
        .await
        .expect("inspect image");
    let image_config = image.config.expect("image config");
    // Re-state the image's own program as an explicit command, so it still serves.
    let mut program = image_config.entrypoint.unwrap_or_default();
    program.extend(image_config.cmd.unwrap_or_default());
    assert!(
        !program.is_empty(),
        "the test image has neither entrypoint nor cmd"
    );
    let mut spec = conformance::instance_spec(&fixture, "cmd");
    spec.command = vec![program[0].clone()];
    spec.args = program[1..].to_vec();
    let id = conformance::start(&engine, &spec).await;
    let observed = conformance::wait_running(&engine, &fixture, &id).await;
    assert_eq!(observed.state, berth_engine::ContainerState::Running);

    let config = inspect(&id).await.config.expect("Config");
    assert_eq!(config.entrypoint, Some(spec.command.clone()), "Entrypoint");
    let want_cmd = (!spec.args.is_empty()).then(|| spec.args.clone());
    assert_eq!(config.cmd, want_cmd, "Cmd");
    engine
        .stop_instance(&id, spec.stop_grace)
        .await
        .expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instance_ip_is_reachable_from_the_host() {
    let (engine, fixture, _guard) = setup("engine-ip").await;
    let spec = conformance::instance_spec(&fixture, "ip");
    let id = conformance::start(&engine, &spec).await;
    let observed = conformance::wait_running(&engine, &fixture, &id).await;
    let ip = observed.ip_address.expect("ip");
    let url = format!("http://{ip}:8080/healthz");
    let (status, body) = conformance::eventually("GET /healthz to answer", || {
        let url = url.clone();
        async move {
            tokio::task::spawn_blocking(move || http_get(&url, Duration::from_secs(2)))
                .await
                .expect("http_get panicked")
                .ok()
        }
    })
    .await;
    assert_eq!(status, 200, "GET {url}: {body}");
    engine
        .stop_instance(&id, spec.stop_grace)
        .await
        .expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_network_creation_leaves_one_network() {
    require_docker();
    let namespace = unique_namespace("engine-net");
    let _guard = NamespaceGuard(namespace.clone());
    // Separate engines do not share the in-process lock: this is the cross-process race.
    let engines: Vec<DockerEngine> = (0..4)
        .map(|_| DockerEngine::connect().expect("connect"))
        .collect();
    let results =
        futures::future::join_all(engines.iter().map(|e| e.ensure_network(&namespace))).await;
    for r in results {
        r.expect("ensure_network");
    }

    let docker = raw_docker().await;
    let networks = docker
        .list_networks(None::<bollard::query_parameters::ListNetworksOptions>)
        .await
        .expect("list networks");
    let same: Vec<_> = networks
        .iter()
        .filter(|n| n.name.as_deref() == Some(namespace.as_str()))
        .collect();
    assert_eq!(same.len(), 1, "networks named {namespace}: {same:?}");
    let labels = same[0].labels.clone().unwrap_or_default();
    assert_eq!(
        labels.get("berth.managed").map(String::as_str),
        Some("true"),
        "labels {labels:?}"
    );
    assert_eq!(same[0].driver.as_deref(), Some("bridge"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_version_is_negotiated_and_info_reports_docker() {
    require_docker();
    let engine = DockerEngine::connect().expect("connect");
    let info = engine
        .info()
        .await
        .expect("info against the daemon's API version");
    assert_eq!(info.name, "docker");
    assert!(info.cpus >= 1);
    // A second engine instance works too (negotiation is per connection).
    let listed = DockerEngine::connect()
        .expect("connect")
        .list_containers(&BTreeMap::from([(
            "berth.namespace".to_owned(),
            "bt-no-such-namespace".to_owned(),
        )]))
        .await
        .expect("list");
    assert!(listed.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_daemon_is_reported_as_such() {
    match DockerEngine::connect_with(Some("unix:///nonexistent/docker.sock")) {
        Err(EngineError::Unreachable(_)) => {}
        Ok(engine) => match engine.info().await {
            Err(EngineError::Unreachable(_)) => {}
            other => panic!("info on a missing socket gave {other:?}"),
        },
        Err(other) => panic!("connect to a missing socket gave {other:?}"),
    }
    // Nothing listens on this port: a TCP connect is refused at once.
    let engine = DockerEngine::connect_with(Some("tcp://127.0.0.1:1")).expect("connect is lazy");
    match engine.info().await {
        Err(EngineError::Unreachable(_)) => {}
        other => panic!("info on a closed TCP port gave {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_that_never_answers_fails_the_pull() {
    require_docker();
    // Accepts connections and never says a word.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let engine = DockerEngine::connect()
        .expect("connect")
        .with_pull_idle_timeout(Duration::from_secs(2));
    let image = format!("127.0.0.1:{port}/berth-silent:never");
    match engine.ensure_image(&image, None).await {
        Err(EngineError::ImageNotFound { reason, .. }) => {
            // A daemon in another network namespace cannot reach the listener at all.
            assert!(
                reason.contains("no progress") || reason.contains("connection refused"),
                "reason {reason:?}"
            );
        }
        other => panic!("pull from a silent registry gave {other:?}"),
    }
    silent.abort();
}
