//! The runtime half of the conformance suite: what every [`Runtime`] must do with instances.

use futures::StreamExt;

use super::{
    CHECK_LABEL, ConformanceFixture, GRACE, MISSING_IMAGE, PATIENCE, STARTUP_LINE, eventually,
    find_container, instance_spec, namespace_filter, start, wait_running,
};
use crate::{ContainerState, EngineError, EngineEvent, LogOptions, Runtime, labels};

/// Runs every runtime check in turn.
pub async fn run_all(engine: &dyn Runtime, fixture: &ConformanceFixture) {
    check_info(engine).await;
    check_ensure_network_idempotent(engine, fixture).await;
    check_ensure_image(engine, fixture).await;
    check_instance_lifecycle(engine, fixture).await;
    check_resource_sample(engine, fixture).await;
    check_logs(engine, fixture).await;
    check_events(engine, fixture).await;
    check_missing_image(engine, fixture).await;
    check_crashed_container(engine, fixture).await;
    check_name_conflict(engine, fixture).await;
    check_stop_unknown(engine).await;
    check_volumes(engine, fixture).await;
}

/// `info` answers and describes the engine.
pub async fn check_info(engine: &dyn Runtime) {
    let info = engine.info().await.expect("info failed");
    assert!(!info.name.is_empty(), "info.name is empty");
    assert!(!info.version.is_empty(), "info.version is empty");
    assert!(!info.node_name.is_empty(), "info.node_name is empty");
    assert!(info.cpus > 0, "info.cpus is 0");
    assert!(info.memory_bytes > 0, "info.memory_bytes is 0");
}

/// `ensure_network` may be called again, and concurrently, without error.
pub async fn check_ensure_network_idempotent(engine: &dyn Runtime, fixture: &ConformanceFixture) {
    let name = fixture.namespace.as_str();
    engine
        .ensure_network(name)
        .await
        .expect("first ensure_network failed");
    engine
        .ensure_network(name)
        .await
        .expect("second ensure_network failed");
    let (a, b) = futures::join!(engine.ensure_network(name), engine.ensure_network(name));
    a.expect("concurrent ensure_network failed");
    b.expect("concurrent ensure_network failed");
}

/// `ensure_image` of a present image succeeds without a registry.
pub async fn check_ensure_image(engine: &dyn Runtime, fixture: &ConformanceFixture) {
    engine
        .ensure_image(&fixture.image, None)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "ensure_image({}) of a local image failed: {e}",
                fixture.image
            )
        });
}

/// Start → listed running with an IP and intact labels → stop removes it → stop again is fine.
pub async fn check_instance_lifecycle(engine: &dyn Runtime, fixture: &ConformanceFixture) {
    let mut spec = instance_spec(fixture, "lifecycle");
    spec.labels
        .insert("example.com/custom".to_owned(), "kept as is".to_owned());
    spec.env.insert("GREETING".to_owned(), "hello".to_owned());
    let info = engine.info().await.expect("info failed");
    let id = start(engine, &spec).await;
    assert!(!id.is_empty(), "start_instance returned an empty id");

    let observed = wait_running(engine, fixture, &id).await;
    assert_eq!(observed.name, spec.name, "listed name");
    assert_eq!(observed.image, spec.image, "listed image");
    for (k, v) in &spec.labels {
        assert_eq!(
            observed.labels.get(k),
            Some(v),
            "label {k} not intact in {:?}",
            observed.labels
        );
    }
    assert!(observed.created_at_ms > 0, "created_at_ms not set");
    let started = observed.started_at_ms.expect("started_at_ms not set");
    assert!(
        started >= observed.created_at_ms - 1000,
        "started before created"
    );
    assert_eq!(
        observed.finished_at_ms, None,
        "finished_at_ms set on a running container"
    );
    assert_eq!(
        observed.exit_code, None,
        "exit_code set on a running container"
    );
    assert_eq!(observed.error, None, "error set on a running container");
    assert_eq!(observed.node, info.node_name, "node");

    // The filter is an AND over labels.
    let mut other = namespace_filter(fixture);
    other.insert(labels::APP.to_owned(), "some-other-app".to_owned());
    let listed = engine
        .list_containers(&other)
        .await
        .expect("list_containers failed");
    assert!(
        listed.iter().all(|c| c.id != id),
        "a container was listed for a label filter it does not match"
    );
    let mut exact = namespace_filter(fixture);
    exact.insert(CHECK_LABEL.to_owned(), "lifecycle".to_owned());
    let listed = engine
        .list_containers(&exact)
        .await
        .expect("list_containers failed");
    assert_eq!(
        listed.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
        vec![id.as_str()],
        "listing by two labels"
    );

    engine
        .stop_instance(&id, GRACE)
        .await
        .expect("stop_instance failed");
    assert!(
        find_container(engine, fixture, &id).await.is_none(),
        "the container is still listed after stop_instance"
    );
    engine
        .stop_instance(&id, GRACE)
        .await
        .expect("a second stop_instance must be Ok");
}

/// A running container's sample shows memory in use, its memory limit, and CPU time that
/// grows while it burns CPU; an exited container is a `Conflict`, a missing one `NotFound`.
pub async fn check_resource_sample(engine: &dyn Runtime, fixture: &ConformanceFixture) {
    const LIMIT: u64 = 256 * 1024 * 1024;
    // 50 ms of CPU: a quarter of a second of the burn below.
    const GROWTH_NS: u64 = 50_000_000;
    let mut spec = instance_spec(fixture, "usage");
    spec.env
        .insert("BURN_CPU_MILLICORES".to_owned(), "200".to_owned());
    spec.memory_bytes = Some(LIMIT);
    let id = start(engine, &spec).await;
    wait_running(engine, fixture, &id).await;

    let first = engine
        .resource_sample(&id)
        .await
        .expect("resource_sample of a running container failed");
    assert!(first.memory_bytes > 0, "no memory in use: {first:?}");
    assert!(first.sampled_at_ms > 0, "no sample time: {first:?}");
    assert_eq!(
        first.memory_limit_bytes,
        Some(LIMIT),
        "memory limit of {first:?}"
    );
    let later = eventually("CPU time to grow while the app burns CPU", || async {
        let sample = engine
            .resource_sample(&id)
            .await
            .expect("resource_sample of a running container failed");
        (sample.cpu_time_ns >= first.cpu_time_ns + GROWTH_NS).then_some(sample)
    })
    .await;
    assert!(
        later.sampled_at_ms >= first.sampled_at_ms,
        "a later sample is older: {first:?} then {later:?}"
    );
    engine
        .stop_instance(&id, GRACE)
        .await
        .expect("stop_instance failed");
    match engine.resource_sample(&id).await {
        Err(EngineError::NotFound(_)) => {}
        other => panic!("resource_sample of a removed container gave {other:?}, want NotFound"),
    }
    match engine
        .resource_sample("berth-conformance-no-such-container")
        .await
    {
        Err(EngineError::NotFound(_)) => {}
        other => panic!("resource_sample of an unknown container gave {other:?}, want NotFound"),
    }

    let mut spec = instance_spec(fixture, "usage-exited");
    spec.env
        .insert("EXIT_IMMEDIATELY".to_owned(), "0".to_owned());
    let id = start(engine, &spec).await;
    eventually("the container to be listed as exited", || async {
        find_container(engine, fixture, &id)
            .await
            .filter(|c| c.state == ContainerState::Exited)
    })
    .await;
    match engine.resource_sample(&id).await {
        Err(EngineError::Conflict(_)) => {}
        other => panic!("resource_sample of an exited container gave {other:?}, want Conflict"),
    }
    engine
        .stop_instance(&id, GRACE)
        .await
        .expect("stop_instance of an exited container failed");
}

/// Logs return the startup line with a timestamp, with and without follow; tail limits lines.
pub async fn check_logs(engine: &dyn Runtime, fixture: &ConformanceFixture) {
    let spec = instance_spec(fixture, "logs");
    let id = start(engine, &spec).await;

    let history = eventually("the startup line in the logs", || async {
        let lines: Vec<_> = engine
            .logs(
                &id,
                LogOptions {
                    follow: false,
                    tail: None,
                },
            )
            .collect()
            .await;
        let lines: Vec<_> = lines
            .into_iter()
            .collect::<Result<Vec<_>, _>>()
            .expect("logs failed");
        lines
            .iter()
            .any(|l| l.text.contains(STARTUP_LINE))
            .then_some(lines)
    })
    .await;
    let line = history
        .iter()
        .find(|l| l.text.contains(STARTUP_LINE))
        .expect("startup line");
    assert!(
        line.timestamp_ms.is_some(),
        "log line without timestamp: {line:?}"
    );
    assert!(
        !line.text.ends_with('\n') && !line.text.starts_with(' '),
        "log text not trimmed: {:?}",
        line.text
    );

    let tail: Vec<_> = engine
        .logs(
            &id,
            LogOptions {
                follow: false,
                tail: Some(1),
            },
        )
        .collect()
        .await;
    assert!(tail.len() <= 1, "tail=1 returned {} lines", tail.len());

    let mut follow = engine.logs(
        &id,
        LogOptions {
            follow: true,
            tail: None,
        },
    );
    let found = tokio::time::timeout(PATIENCE, async {
        while let Some(line) = follow.next().await {
            let line = line.expect("follow logs failed");
            if line.text.contains(STARTUP_LINE) {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(found, Ok(true), "follow did not yield the startup line");
    drop(follow);

    let missing: Vec<_> = engine
        .logs(
            "berth-conformance-no-such-container",
            LogOptions {
                follow: false,
                tail: None,
            },
        )
        .collect()
        .await;
    assert!(
        missing.iter().any(Result::is_err),
        "logs of an unknown container must yield an error"
    );

    engine
        .stop_instance(&id, GRACE)
        .await
        .expect("stop_instance failed");
}

/// Events yield `start` and `die` for a matching container, and nothing for others.
pub async fn check_events(engine: &dyn Runtime, fixture: &ConformanceFixture) {
    let mut filter = namespace_filter(fixture);
    filter.insert(CHECK_LABEL.to_owned(), "events".to_owned());
    let mut events = engine.events(&filter);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let pump = tokio::spawn(async move {
        while let Some(event) = events.next().await {
            if tx.send(event).is_err() {
                break;
            }
        }
    });

    let decoy = start(engine, &instance_spec(fixture, "events-decoy")).await;
    let spec = instance_spec(fixture, "events");
    let id = start(engine, &spec).await;

    let mut seen: Vec<EngineEvent> = Vec::new();
    wait_for_event(&mut rx, &id, "start", &mut seen).await;
    engine
        .stop_instance(&id, GRACE)
        .await
        .expect("stop_instance failed");
    wait_for_event(&mut rx, &id, "die", &mut seen).await;
    pump.abort();

    let start_event = seen
        .iter()
        .find(|e| e.container_id == id && e.action == "start")
        .expect("start event");
    assert_eq!(
        start_event.labels.get(labels::NAMESPACE),
        Some(&fixture.namespace),
        "event labels: {:?}",
        start_event.labels
    );
    assert_eq!(
        start_event.labels.get(CHECK_LABEL).map(String::as_str),
        Some("events"),
        "event labels: {:?}",
        start_event.labels
    );
    assert!(
        seen.iter().all(|e| e.container_id != decoy),
        "events of a container outside the filter were delivered: {seen:?}"
    );
    engine
        .stop_instance(&decoy, GRACE)
        .await
        .expect("stop_instance failed");
}

/// Receives events until `action` for `id` arrives, keeping all in `seen`.
async fn wait_for_event(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<crate::EngineResult<EngineEvent>>,
    id: &str,
    action: &str,
    seen: &mut Vec<EngineEvent>,
) {
    let found = tokio::time::timeout(PATIENCE, async {
        while let Some(event) = rx.recv().await {
            let event = event.expect("event stream failed");
            let hit = event.container_id == id && event.action == action;
            seen.push(event);
            if hit {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(
        found,
        Ok(true),
        "no {action:?} event for container {id}; saw {seen:?}"
    );
}

/// A missing image fails with `ImageNotFound`, fast, and leaves no container behind.
pub async fn check_missing_image(engine: &dyn Runtime, fixture: &ConformanceFixture) {
    match engine.ensure_image(MISSING_IMAGE, None).await {
        Err(EngineError::ImageNotFound { image, reason }) => {
            assert_eq!(image, MISSING_IMAGE);
            assert!(!reason.is_empty(), "ImageNotFound without a reason");
        }
        other => panic!("ensure_image({MISSING_IMAGE}) gave {other:?}, want ImageNotFound"),
    }
    let mut spec = instance_spec(fixture, "missing-image");
    spec.image = MISSING_IMAGE.to_owned();
    engine
        .ensure_network(&spec.network)
        .await
        .expect("ensure_network failed");
    match engine.start_instance(&spec).await {
        Err(EngineError::ImageNotFound { .. }) => {}
        other => panic!("start_instance with a missing image gave {other:?}, want ImageNotFound"),
    }
    let listed = engine
        .list_containers(&namespace_filter(fixture))
        .await
        .expect("list_containers failed");
    assert!(
        listed.iter().all(|c| c.name != spec.name),
        "a container was left behind by a failed start: {listed:?}"
    );
}

/// A container whose process exits is listed as exited, with its exit code and finish time.
pub async fn check_crashed_container(engine: &dyn Runtime, fixture: &ConformanceFixture) {
    let mut spec = instance_spec(fixture, "crash");
    spec.env
        .insert("EXIT_IMMEDIATELY".to_owned(), "3".to_owned());
    let id = start(engine, &spec).await;
    let crashed = eventually("the crashed container to be listed as exited", || async {
        find_container(engine, fixture, &id)
            .await
            .filter(|c| c.state == ContainerState::Exited)
    })
    .await;
    assert_eq!(crashed.exit_code, Some(3), "exit code of {crashed:?}");
    let started = crashed
        .started_at_ms
        .expect("started_at_ms of a crashed container");
    let finished = crashed
        .finished_at_ms
        .expect("finished_at_ms of a crashed container");
    assert!(
        finished >= started,
        "finished {finished} before started {started}"
    );
    assert_eq!(
        crashed.ip_address, None,
        "an exited container has no address"
    );
    engine
        .stop_instance(&id, GRACE)
        .await
        .expect("stop_instance of an exited container failed");
    assert!(
        find_container(engine, fixture, &id).await.is_none(),
        "the exited container is still listed after stop_instance"
    );
}

/// A second container with a taken name is a `Conflict`, and the first one keeps running.
pub async fn check_name_conflict(engine: &dyn Runtime, fixture: &ConformanceFixture) {
    let spec = instance_spec(fixture, "conflict");
    let id = start(engine, &spec).await;
    match engine.start_instance(&spec).await {
        Err(EngineError::Conflict(_)) => {}
        other => panic!(
            "starting a second {} gave {other:?}, want Conflict",
            spec.name
        ),
    }
    let first = wait_running(engine, fixture, &id).await;
    assert_eq!(first.name, spec.name);
    engine
        .stop_instance(&id, GRACE)
        .await
        .expect("stop_instance failed");
}

/// Stopping a container that never existed is not an error.
pub async fn check_stop_unknown(engine: &dyn Runtime) {
    engine
        .stop_instance("berth-conformance-never-existed", GRACE)
        .await
        .expect("stop_instance of an unknown container must be Ok");
}

/// The files (path without `./`, contents) of a tar archive.
fn files_of(archive: &[u8]) -> Vec<(String, String)> {
    let mut files = Vec::new();
    for entry in tar::Archive::new(archive).entries().expect("a tar archive") {
        let mut entry = entry.expect("a tar entry");
        if entry.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let path = entry.path().expect("an entry path").display().to_string();
        let mut contents = String::new();
        std::io::Read::read_to_string(&mut entry, &mut contents).expect("an entry's contents");
        files.push((path.trim_start_matches("./").to_owned(), contents));
    }
    files.sort();
    files
}

/// The volume's files as the engine exports them (a tar archive).
async fn volume_archive(engine: &dyn Runtime, name: &str) -> Vec<u8> {
    let mut archive = Vec::new();
    let mut chunks = engine.export_volume(name);
    while let Some(chunk) = chunks.next().await {
        archive.extend_from_slice(&chunk.expect("export_volume failed"));
    }
    archive
}

/// Volumes: made idempotently with their labels, listed (and measured) by label, filled from
/// and read back as a tar stream, mounted into an instance, refused removal and emptying while a
/// container mounts them, emptied (labels kept) and removed after, and removing a missing one
/// is fine.
pub async fn check_volumes(engine: &dyn Runtime, fixture: &ConformanceFixture) {
    let name = format!("{}_conformance_data", fixture.namespace);
    let labels = namespace_filter(fixture);
    engine
        .ensure_volume(&name, &labels)
        .await
        .expect("ensure_volume failed");
    engine
        .ensure_volume(&name, &labels)
        .await
        .expect("a second ensure_volume failed");
    let listed = engine
        .list_volumes(&labels, false)
        .await
        .expect("list_volumes failed");
    assert_eq!(
        listed.iter().map(|v| v.name.as_str()).collect::<Vec<_>>(),
        [name.as_str()],
        "the namespace's volumes"
    );
    assert_eq!(listed[0].labels, labels, "a volume's labels");

    let archive = super::archive_of(&[("notes.txt", "kept"), ("sub/deep.txt", "deeper")]);
    let body = futures::stream::iter([Ok(bytes::Bytes::from(archive))]).boxed();
    engine
        .import_volume(&name, body)
        .await
        .expect("import_volume failed");
    let exported = volume_archive(engine, &name).await;
    assert_eq!(
        files_of(&exported),
        [
            ("notes.txt".to_owned(), "kept".to_owned()),
            ("sub/deep.txt".to_owned(), "deeper".to_owned())
        ],
        "the volume's files read back"
    );
    let measured = engine
        .list_volumes(&labels, true)
        .await
        .expect("list_volumes measuring failed");
    assert!(
        measured[0].size_bytes.is_some_and(|size| size > 0),
        "a measured volume has a size: {measured:?}"
    );
    let missing = engine
        .export_volume(&format!("{}_conformance_missing", fixture.namespace))
        .next()
        .await;
    assert!(
        matches!(missing, Some(Err(EngineError::NotFound(_)))),
        "exporting a missing volume: {missing:?}"
    );

    let mut spec = instance_spec(fixture, "volume");
    spec.mounts = vec![crate::VolumeMount {
        volume: name.clone(),
        target: "/data".to_owned(),
        read_only: false,
    }];
    let id = start(engine, &spec).await;
    wait_running(engine, fixture, &id).await;
    let refused = engine.remove_volume(&name).await;
    assert!(
        matches!(refused, Err(EngineError::Conflict(_))),
        "removing a mounted volume: {refused:?}"
    );
    let refused = engine.empty_volume(&name, &labels).await;
    assert!(
        matches!(refused, Err(EngineError::Conflict(_))),
        "emptying a mounted volume: {refused:?}"
    );
    engine
        .stop_instance(&id, GRACE)
        .await
        .expect("stop_instance failed");
    engine
        .empty_volume(&name, &labels)
        .await
        .expect("empty_volume failed");
    let exported = volume_archive(engine, &name).await;
    assert!(
        files_of(&exported).is_empty(),
        "an emptied volume holds nothing"
    );
    let listed = engine
        .list_volumes(&labels, false)
        .await
        .expect("list_volumes failed");
    assert_eq!(listed.len(), 1, "the emptied volume is listed");
    assert_eq!(listed[0].labels, labels, "an emptied volume's labels");
    engine
        .remove_volume(&name)
        .await
        .expect("remove_volume failed");
    assert!(
        engine
            .list_volumes(&labels, false)
            .await
            .expect("list_volumes failed")
            .is_empty(),
        "the volume is gone"
    );
    engine
        .remove_volume(&name)
        .await
        .expect("removing a missing volume failed");
}
