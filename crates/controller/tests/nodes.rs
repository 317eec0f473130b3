//! The node monitor on the fake runtime with an injected clock: a node past a threshold is low
//! with its reason, the crossing, the cluster's "needs another node" and a node falling silent
//! are recorded as platform events — and never in an app's timeline.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use berth_controller::nodes::{NodeMonitor, NodeSettings};
use berth_core::node::{CLUSTER_SUBJECT, NodeStatus, PlatformEventKind, Thresholds, node_subject};
use berth_engine::fake::{FakeRuntime, NODE};
use berth_store::{EventQuery, NodeStore, SqliteStore};

const T0: i64 = 1_700_000_000_000;

#[tokio::test]
async fn a_low_node_is_marked_recorded_and_turns_unknown_when_silent() {
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
            // Any real file system has less than 100 % free: the data dir's disk is low.
            thresholds: Thresholds {
                disk_free_min_percent: 100.0,
                ..Thresholds::default()
            },
            data_dir: dir.path().to_path_buf(),
            event_history: 100,
        },
    );
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
