//! The nodes-area suite ([`NodeStore`]): node labels and platform events, which never mix with
//! app events.

use berth_core::node::{
    CLUSTER_SUBJECT, NodeLabels, PlatformEvent, PlatformEventKind, node_subject,
};

use super::*;
use crate::NodeStore;

/// Runs every nodes-area check against `store`.
pub async fn run<S: AppStore + NodeStore + ?Sized>(store: Arc<S>) {
    let s = &*store;
    node_labels_round_trip(s).await;
    platform_events_are_kept_per_subject(s).await;
    platform_events_never_reach_app_timelines(s).await;
}

fn labels(pairs: &[(&str, &str)]) -> NodeLabels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Labels are set, replaced whole (a key left out is gone), kept per node, and an empty set
/// forgets the node.
pub async fn node_labels_round_trip<S: NodeStore + ?Sized>(store: &S) {
    let a = unique_name("node-a");
    let b = unique_name("node-b");
    let first = labels(&[("datacenter", "dc1"), ("zone", "a"), ("note", "«ünïcode»")]);
    store.set_node_labels(&a, &first, T0).await.expect("set a");
    store
        .set_node_labels(&b, &labels(&[("zone", "b")]), T0)
        .await
        .expect("set b");
    let all = store.node_labels().await.expect("node_labels");
    assert_eq!(all.get(&a), Some(&first));
    assert_eq!(all.get(&b), Some(&labels(&[("zone", "b")])));

    let second = labels(&[("datacenter", "dc2"), ("rack", "")]);
    store
        .set_node_labels(&a, &second, T0 + 1)
        .await
        .expect("replace a");
    let all = store.node_labels().await.expect("node_labels");
    assert_eq!(all.get(&a), Some(&second), "replaced whole, zone gone");
    assert_eq!(all.get(&b), Some(&labels(&[("zone", "b")])), "b untouched");

    store
        .set_node_labels(&a, &NodeLabels::new(), T0 + 2)
        .await
        .expect("clear a");
    let all = store.node_labels().await.expect("node_labels");
    assert_eq!(all.get(&a), None, "no labels: forgotten");
    assert!(all.contains_key(&b));
}

/// Events are listed per subject in ascending order, paged like app events, and only the
/// newest `keep` of each subject survive an append.
pub async fn platform_events_are_kept_per_subject<S: NodeStore + ?Sized>(store: &S) {
    let node = unique_name("node-ev");
    let subject = node_subject(&node);
    let other = node_subject(&unique_name("node-other"));
    let event = |subject: &str, i: i64, kind| {
        PlatformEvent::new(subject, T0 + i, kind, format!("event {i} — «ünïcode»"))
            .param("node", &node)
            .param("reasons", "disk /x 4 % free (threshold 10 %)")
    };
    let batch: Vec<PlatformEvent> = (0..5)
        .map(|i| event(&subject, i, PlatformEventKind::NodeLow))
        .chain([event(&other, 9, PlatformEventKind::NodeRecovered)])
        .collect();
    store
        .append_platform_events(&batch, 3)
        .await
        .expect("append");
    let latest = store
        .list_platform_events(
            &subject,
            EventQuery {
                after_id: None,
                limit: 10,
            },
        )
        .await
        .expect("list");
    assert_eq!(
        latest.iter().map(|e| e.at).collect::<Vec<_>>(),
        [T0 + 2, T0 + 3, T0 + 4],
        "the newest 3, oldest first"
    );
    assert!(latest.windows(2).all(|w| w[0].id < w[1].id));
    let mut want = batch[4].clone();
    want.id = latest[2].id;
    assert_eq!(latest[2], want, "round trip");

    let after = store
        .list_platform_events(
            &subject,
            EventQuery {
                after_id: Some(latest[0].id),
                limit: 1,
            },
        )
        .await
        .expect("after");
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].id, latest[1].id);

    let others = store
        .list_platform_events(
            &other,
            EventQuery {
                after_id: None,
                limit: 10,
            },
        )
        .await
        .expect("other");
    assert_eq!(others.len(), 1);
    assert_eq!(others[0].kind, PlatformEventKind::NodeRecovered);
}

/// An app named like a subject never sees platform events, and platform events never appear
/// in any app's timeline.
pub async fn platform_events_never_reach_app_timelines<S: AppStore + NodeStore + ?Sized>(
    store: &S,
) {
    let app = unique_name("cluster");
    create(store, &app).await;
    store
        .append_platform_events(
            &[
                PlatformEvent::new(
                    CLUSTER_SUBJECT,
                    T0,
                    PlatformEventKind::ClusterNeedsNode,
                    "full",
                ),
                PlatformEvent::new(
                    app.as_str(),
                    T0,
                    PlatformEventKind::NodeLow,
                    "subject named like the app",
                ),
            ],
            100,
        )
        .await
        .expect("append");
    let query = EventQuery {
        after_id: None,
        limit: 100,
    };
    let events = store.list_events(&app, query).await.expect("app events");
    assert!(
        events.is_empty(),
        "no platform event in an app timeline: {events:?}"
    );
    let cluster = store
        .list_platform_events(CLUSTER_SUBJECT, query)
        .await
        .expect("cluster");
    assert!(
        cluster
            .iter()
            .any(|e| e.kind == PlatformEventKind::ClusterNeedsNode)
    );
    store.delete_app(&app).await.expect("delete app");
}
