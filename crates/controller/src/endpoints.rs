//! The endpoint table: the instances of every app that may receive traffic now — running,
//! ready, and not about to stop. The controller changes it the moment it learns or decides
//! something (a readiness transition, a stop, a deletion, every reconcile), and a router
//! subscribes to it; it never reads the store or the engine for a request.
//!
//! Before the controller stops an instance it takes it out of the table, then waits for the
//! [`Drain`] (the router's in-flight requests to it) before the engine sends SIGTERM.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;

/// One instance that may receive an app's traffic.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct Endpoint {
    pub container_id: String,
    /// `<app>-<ordinal>`.
    pub instance: String,
    /// Address on the runtime's network.
    pub address: String,
    /// The port the app listens on.
    pub port: u16,
    /// The app revision the instance runs.
    pub revision: u32,
}

/// The ready endpoints of every app that has any, by app name (ordered by instance).
pub type EndpointMap = BTreeMap<String, Vec<Endpoint>>;

/// The live endpoint table (clones share it).
#[derive(Debug, Clone)]
pub struct Endpoints {
    table: Arc<watch::Sender<Arc<EndpointMap>>>,
    /// Apps whose crashed instances wait out a crash-loop back-off before their restart.
    backing_off: Arc<Mutex<BTreeSet<String>>>,
}

impl Default for Endpoints {
    fn default() -> Self {
        Endpoints {
            table: Arc::new(watch::channel(Arc::default()).0),
            backing_off: Arc::default(),
        }
    }
}

impl Endpoints {
    /// The table now and every change after: a receiver never misses the latest state.
    pub fn subscribe(&self) -> watch::Receiver<Arc<EndpointMap>> {
        self.table.subscribe()
    }

    /// The table now.
    pub fn current(&self) -> Arc<EndpointMap> {
        Arc::clone(&self.table.borrow())
    }

    /// Whether the app's crashed instances wait out a crash-loop back-off now (as of its last
    /// reconcile): the router then answers its 503 page at once rather than holding requests.
    pub fn backing_off(&self, app: &str) -> bool {
        self.crash_loops().contains(app)
    }

    /// The apps waiting out a crash-loop back-off now.
    pub fn backing_off_apps(&self) -> BTreeSet<String> {
        self.crash_loops().clone()
    }

    /// The whole table and back-offs become `apps` and `backing_off` (what the leader
    /// published, on a server that follows: `crate::sharing`); subscribers hear of it only when
    /// the table changed.
    pub fn mirror(&self, apps: EndpointMap, backing_off: BTreeSet<String>) {
        *self.crash_loops() = backing_off;
        let mut apps = apps;
        for endpoints in apps.values_mut() {
            endpoints.sort();
        }
        apps.retain(|_, endpoints| !endpoints.is_empty());
        self.table.send_if_modified(|table| {
            if **table == apps {
                return false;
            }
            *table = Arc::new(apps);
            true
        });
    }

    /// The app's crash-loop back-off began or ended.
    pub(crate) fn set_backing_off(&self, app: &str, backing_off: bool) {
        let mut apps = self.crash_loops();
        if backing_off {
            apps.insert(app.to_string());
        } else {
            apps.remove(app);
        }
    }

    fn crash_loops(&self) -> std::sync::MutexGuard<'_, BTreeSet<String>> {
        // A set of names: a panic elsewhere cannot leave it inconsistent.
        self.backing_off
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn change(&self, app: &str, change: impl FnOnce(&mut Vec<Endpoint>) -> bool) {
        self.table.send_if_modified(|table| {
            let mut endpoints = table.get(app).cloned().unwrap_or_default();
            if !change(&mut endpoints) {
                return false;
            }
            endpoints.sort();
            let map = Arc::make_mut(table);
            if endpoints.is_empty() {
                map.remove(app);
            } else {
                map.insert(app.to_string(), endpoints);
            }
            true
        });
    }

    /// The app's endpoints are exactly `endpoints` (what a reconcile observed, or what a
    /// predecessor server handed over).
    pub(crate) fn set_app(&self, app: &str, mut endpoints: Vec<Endpoint>) {
        endpoints.sort();
        self.change(app, |current| {
            if *current == endpoints {
                return false;
            }
            *current = endpoints;
            true
        });
    }

    /// An instance became ready.
    pub(crate) fn add(&self, app: &str, endpoint: Endpoint) {
        self.change(app, |current| {
            if current.contains(&endpoint) {
                return false;
            }
            current.retain(|e| e.container_id != endpoint.container_id);
            current.push(endpoint);
            true
        });
    }

    /// An instance stops taking traffic (not ready, or about to stop); returns it when it
    /// was in the table.
    pub(crate) fn remove(&self, app: &str, container_id: &str) -> Option<Endpoint> {
        let mut removed = None;
        self.change(app, |current| {
            let Some(index) = current.iter().position(|e| e.container_id == container_id) else {
                return false;
            };
            removed = Some(current.remove(index));
            true
        });
        removed
    }

    /// The app is gone.
    pub(crate) fn remove_app(&self, app: &str) {
        self.set_backing_off(app, false);
        self.change(app, |current| {
            let had = !current.is_empty();
            current.clear();
            had
        });
    }
}

/// What a stop waits for after the instance left the table: the requests already sent to it.
#[async_trait]
pub trait Drain: Send + Sync + 'static {
    /// Returns when no request to `address:port` is in flight any more, or after `patience`.
    async fn drained(&self, address: &str, port: u16, patience: Duration);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(id: &str) -> Endpoint {
        Endpoint {
            container_id: id.to_string(),
            instance: format!("web-{id}"),
            address: format!("10.0.0.{}", id.len()),
            port: 8080,
            revision: 1,
        }
    }

    #[test]
    fn crash_loop_back_offs_are_kept_per_app_until_the_app_goes() {
        let endpoints = Endpoints::default();
        // (app, backing off or not (None: the app is deleted), web's state, api's state after)
        let steps = [
            ("web", Some(true), true, false),
            ("api", Some(true), true, true),
            ("web", Some(false), false, true),
            ("web", Some(true), true, true),
            ("web", None, false, true),
            ("api", None, false, false),
        ];
        for (app, step, web, api) in steps {
            match step {
                Some(backing_off) => endpoints.set_backing_off(app, backing_off),
                None => endpoints.remove_app(app),
            }
            assert_eq!(endpoints.backing_off("web"), web, "{app} {step:?}");
            assert_eq!(endpoints.backing_off("api"), api, "{app} {step:?}");
        }
    }

    #[test]
    fn changes_publish_only_when_something_changed() {
        let endpoints = Endpoints::default();
        let mut seen = endpoints.subscribe();
        // (step, app's endpoints after, whether subscribers were told)
        type Step = Box<dyn Fn(&Endpoints)>;
        let steps: Vec<(Step, Vec<&str>, bool)> = vec![
            (Box::new(|e| e.add("web", endpoint("b"))), vec!["b"], true),
            (
                Box::new(|e| e.add("web", endpoint("a"))),
                vec!["a", "b"],
                true,
            ),
            (
                Box::new(|e| e.add("web", endpoint("a"))),
                vec!["a", "b"],
                false,
            ),
            (
                Box::new(|e| e.set_app("web", vec![endpoint("b"), endpoint("a")])),
                vec!["a", "b"],
                false,
            ),
            (
                Box::new(|e| {
                    assert!(e.remove("web", "a").is_some());
                }),
                vec!["b"],
                true,
            ),
            (
                Box::new(|e| {
                    assert!(e.remove("web", "a").is_none());
                }),
                vec!["b"],
                false,
            ),
            (Box::new(|e| e.remove_app("web")), vec![], true),
            (Box::new(|e| e.remove_app("web")), vec![], false),
            (
                Box::new(|e| e.set_app("web", vec![endpoint("c")])),
                vec!["c"],
                true,
            ),
            // A follower mirroring the leader's table: sorted, empty lists dropped, told only
            // of a change.
            (
                Box::new(|e| {
                    e.mirror(
                        EndpointMap::from([
                            ("web".into(), vec![endpoint("e"), endpoint("d")]),
                            ("api".into(), vec![]),
                        ]),
                        BTreeSet::from(["api".to_string()]),
                    )
                }),
                vec!["d", "e"],
                true,
            ),
            (
                Box::new(|e| {
                    e.mirror(
                        EndpointMap::from([("web".into(), vec![endpoint("d"), endpoint("e")])]),
                        BTreeSet::new(),
                    )
                }),
                vec!["d", "e"],
                false,
            ),
            (
                Box::new(|e| e.mirror(EndpointMap::new(), BTreeSet::new())),
                vec![],
                true,
            ),
        ];
        for (i, (step, want, told)) in steps.into_iter().enumerate() {
            step(&endpoints);
            assert_eq!(seen.has_changed().unwrap(), told, "step {i}");
            let table = seen.borrow_and_update().clone();
            let ids: Vec<&str> = table
                .get("web")
                .map(|list| list.iter().map(|e| e.container_id.as_str()).collect())
                .unwrap_or_default();
            assert_eq!(ids, want, "step {i}");
            assert_eq!(table.contains_key("web"), !want.is_empty(), "step {i}");
        }
    }
}
