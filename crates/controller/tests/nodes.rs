//! The node monitor on the fake runtime with an injected clock: a node past a threshold is low
//! with its reason, the crossing, the cluster's "needs another node" and a node falling silent
//! are recorded as platform events — and never in an app's timeline.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use berth_controller::nodes::{NodeMonitor, NodeSettings};
use berth_core::node::{CLUSTER_SUBJECT, NodeStatus, PlatformEventKind, Thresholds, node_subject};
use berth_engine::fake::{FakeRuntime, NODE};
use berth_engine::{EngineNode, NodeAvailability};
use berth_store::{EventQuery, NodeStore, SqliteStore};

const T0: i64 = 1_700_000_000_000;

/// A node monitor on the fake runtime and an in-memory store, with a clock the test moves
/// (`now`) and a temporary data directory.
struct Monitored {
    store: Arc<SqliteStore>,
    runtime: Arc<FakeRuntime>,
    now: Arc<AtomicI64>,
    dir: tempfile::TempDir,
    monitor: Arc<NodeMonitor>,
}

async fn monitored(thresholds: Thresholds) -> Monitored {
    let store = Arc::new(SqliteStore::open_in_memory().await.unwrap());
    let runtime = Arc::new(FakeRuntime::new());
    let now = Arc::new(AtomicI64::new(T0));
    let clock = {
        let now = Arc::clone(&now);
        Arc::new(move || now.load(Ordering::SeqCst)) as berth_core::clock::Clock
    };
    let dir = tempfile::tempdir().unwrap();
    let monitor = NodeMonitor::new(
        store.clone(),
        runtime.clone(),
        clock,
        NodeSettings {
            interval: Duration::from_secs(5),
            thresholds,
            data_dir: dir.path().to_path_buf(),
            event_history: 100,
        },
    );
    Monitored {
        store,
        runtime,
        now,
        dir,
        monitor,
    }
}

#[tokio::test]
async fn a_low_node_is_marked_recorded_and_turns_unknown_when_silent() {
    // Any real file system has less than 100 % free: the data dir's disk is low.
    let Monitored {
        store,
        runtime,
        now,
        dir,
        monitor,
    } = monitored(Thresholds {
        disk_free_min_percent: 100.0,
        ..Thresholds::default()
    })
    .await;
    assert!(monitor.view().nodes.is_empty(), "no node before a sample");

    monitor.run_once().await.unwrap();
    let view = monitor.view();
    assert_eq!(view.nodes.len(), 1);
    let node = &view.nodes[0];
    assert_eq!(node.info.name, NODE);
    assert_eq!(node.watch.status, NodeStatus::Low);
    let reason = node.watch.reasons[0].to_string();
    assert!(
        reason.starts_with(&format!("disk {}", dir.path().display()))
            && reason.ends_with("% free (threshold 100 %)"),
        "{:?}",
        node.watch.reasons
    );
    assert!(view.needs_another_node);

    let query = EventQuery {
        after_id: None,
        limit: 100,
    };
    let kinds = |events: Vec<berth_core::node::PlatformEvent>| {
        events.into_iter().map(|e| e.kind).collect::<Vec<_>>()
    };
    let node_events = store
        .list_platform_events(&node_subject(NODE), query)
        .await
        .unwrap();
    assert!(
        node_events[0].message.contains("is low: disk "),
        "{node_events:?}"
    );
    assert_eq!(kinds(node_events), [PlatformEventKind::NodeLow]);
    assert_eq!(
        kinds(
            store
                .list_platform_events(CLUSTER_SUBJECT, query)
                .await
                .unwrap()
        ),
        [PlatformEventKind::ClusterNeedsNode]
    );

    // The engine stops answering: the last sample ages; past three intervals the node is
    // unknown (the view says so at once, the next round records it).
    runtime.set_unreachable(Some("down"));
    now.store(T0 + 16_000, Ordering::SeqCst);
    assert_eq!(monitor.view().nodes[0].watch.status, NodeStatus::Unknown);
    assert!(!monitor.view().needs_another_node, "unknown is not low");
    assert!(monitor.run_once().await.is_err());
    assert_eq!(
        kinds(
            store
                .list_platform_events(&node_subject(NODE), query)
                .await
                .unwrap()
        ),
        [PlatformEventKind::NodeLow, PlatformEventKind::NodeUnknown]
    );
    assert_eq!(
        kinds(
            store
                .list_platform_events(CLUSTER_SUBJECT, query)
                .await
                .unwrap()
        ),
        [
            PlatformEventKind::ClusterNeedsNode,
            PlatformEventKind::ClusterHasRoom
        ]
    );

    // It answers again: low again (the disk did not change).
    runtime.set_unreachable(None);
    now.store(T0 + 20_000, Ordering::SeqCst);
    monitor.run_once().await.unwrap();
    assert_eq!(monitor.view().nodes[0].watch.status, NodeStatus::Low);
    let recorded = kinds(
        store
            .list_platform_events(&node_subject(NODE), query)
            .await
            .unwrap(),
    );
    assert_eq!(recorded.last(), Some(&PlatformEventKind::NodeLow));

    // A restarted server (a new monitor on the same store) resumes: still low, nothing new.
    let restarted = NodeMonitor::new(
        store.clone(),
        runtime.clone(),
        Arc::new(move || T0 + 30_000) as berth_core::clock::Clock,
        monitor.settings().clone(),
    );
    restarted.run_once().await.unwrap();
    assert_eq!(restarted.view().nodes[0].watch.status, NodeStatus::Low);
    assert_eq!(
        kinds(
            store
                .list_platform_events(&node_subject(NODE), query)
                .await
                .unwrap()
        ),
        recorded,
        "no second node_low after a restart"
    );
    assert_eq!(
        kinds(
            store
                .list_platform_events(CLUSTER_SUBJECT, query)
                .await
                .unwrap()
        )
        .last(),
        Some(&PlatformEventKind::ClusterNeedsNode),
        "and no second cluster_needs_node"
    );
    let cluster_events = store
        .list_platform_events(CLUSTER_SUBJECT, query)
        .await
        .unwrap()
        .len();
    assert_eq!(cluster_events, 3, "needs, has room, needs again");
}

/// What a node agent prints: CPU ticks, memory and the data root's space.
fn agent_report(busy: u64, total: u64, memory_free: u64) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "cpu": {"busy": busy, "total": total},
        "memory": {"total_bytes": 1000, "free_bytes": memory_free},
        "disks": [{
            "role": "engine_data_root",
            "path": "/var/lib/docker",
            "space": {"total_bytes": 100, "free_bytes": 60},
        }],
    }))
    .unwrap()
}

fn remote_node(name: &str) -> EngineNode {
    EngineNode {
        name: name.into(),
        engine: "docker 20.10.24".into(),
        cpus: 4,
        memory_bytes: 1000,
        data_root: None,
        address: Some("10.0.0.2".into()),
        role: "worker".into(),
        state: "ready".into(),
        availability: NodeAvailability::Active,
        labels: Default::default(),
        local: false,
    }
}

#[tokio::test]
async fn other_nodes_are_read_by_their_agents_and_fall_silent_when_it_fails() {
    let Monitored {
        store,
        runtime,
        now,
        monitor,
        ..
    } = monitored(Thresholds {
        disk_free_min_percent: 0.0,
        memory_free_min_percent: 10.0,
        ..Thresholds::default()
    })
    .await;
    runtime.set_remote_node(remote_node("agent"), Some(Ok(agent_report(100, 1000, 500))));
    runtime.set_remote_node(remote_node("no-agent"), None);
    runtime.set_remote_node(
        remote_node("garbled"),
        Some(Ok(
            br#"{"cpu": null, "memory": {"total_bytes": 1, "free_bytes": 2}, "disks": []}"#
                .to_vec(),
        )),
    );
    let mut down = remote_node("down");
    down.state = "down".into();
    runtime.set_remote_node(down, Some(Ok(agent_report(0, 0, 0))));
    monitor.run_once().await.unwrap();

    let view = |name: &str| {
        monitor
            .view()
            .nodes
            .into_iter()
            .find(|n| n.info.name == name)
            .unwrap()
    };
    // The first reading has memory and disk; a CPU share needs a second one.
    let sample = view("agent").sample.unwrap();
    assert_eq!(sample.cpu_percent, None);
    assert_eq!(sample.memory.unwrap().free_bytes, 500);
    assert_eq!(sample.disks[0].path, "/var/lib/docker");
    assert_eq!(sample.disks[0].space.unwrap().free_bytes, 60);
    assert_eq!(view("agent").watch.status, NodeStatus::Ok);
    // Without an agent: a sample without readings; a report that cannot be true is no
    // sample; a node that is down is not read.
    let bare = view("no-agent").sample.unwrap();
    assert_eq!((bare.memory, bare.cpu_percent), (None, None));
    assert!(view("garbled").sample.is_none());
    assert!(view("down").sample.is_none());

    // 150 busy ticks of 500 since: 30 %. Memory falls to 5 % free: the node is low.
    runtime.set_remote_node(remote_node("agent"), Some(Ok(agent_report(250, 1500, 50))));
    now.store(T0 + 5_000, Ordering::SeqCst);
    monitor.run_once().await.unwrap();
    let sample = view("agent").sample.unwrap();
    assert_eq!(sample.cpu_percent, Some(30.0));
    assert_eq!(view("agent").watch.status, NodeStatus::Low);

    // The agent fails: the node keeps its last sample and turns unknown once it is too old,
    // never "ok" on stale numbers.
    runtime.set_remote_node(
        remote_node("agent"),
        Some(Err("the agent's container is gone".into())),
    );
    now.store(T0 + 30_000, Ordering::SeqCst);
    monitor.run_once().await.unwrap();
    assert_eq!(view("agent").sample.unwrap().at, T0 + 5_000);
    assert_eq!(view("agent").watch.status, NodeStatus::Unknown);
    let recorded: Vec<_> = store
        .list_platform_events(
            &node_subject("agent"),
            EventQuery {
                after_id: None,
                limit: 10,
            },
        )
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        recorded,
        [PlatformEventKind::NodeLow, PlatformEventKind::NodeUnknown]
    );
}
