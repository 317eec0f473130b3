//! The in-memory apps store against the apps-area conformance suite, shared and alone.

use std::sync::Arc;

use berth_store::conformance;
use berth_store::memory::MemoryStore;
use berth_store::prelude::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_store_passes_the_apps_suite() {
    conformance::apps::run(Arc::new(MemoryStore::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_stores_are_separate() {
    let one = MemoryStore::new();
    let two = MemoryStore::new();
    let (app, first) = (conformance::new_app("web"), conformance::revision("web", 1));
    one.create_app(&app, &first).await.unwrap();
    assert!(two.get_app("web").await.unwrap().is_none());
    two.create_app(&app, &first).await.unwrap();
}

/// An `Arc<dyn AppStore>` is what the controller takes: both backends fit it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_backends_are_app_stores() {
    let sqlite: Arc<dyn Store> =
        Arc::new(berth_store::SqliteStore::open_in_memory().await.unwrap());
    let stores: [Arc<dyn AppStore>; 2] = [Arc::new(MemoryStore::new()), sqlite];
    for store in stores {
        store.ping().await.unwrap();
        conformance::apps::team_usage_follows_every_write(&*store).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_metrics_store_passes_the_metrics_suite() {
    conformance::metrics::run(Arc::new(berth_store::memory::MemoryMetricsStore::default())).await;
}
