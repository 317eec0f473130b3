//! The live topology's pure parts: an app's health from its instances (one rule for the app
//! pages and the topology), where instances run (datacenter → node → instances), and the edges
//! between apps (declared dependencies, connections observed between instances, and the
//! outside world's traffic to external apps).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::Millis;

/// An app's health, as the console colours it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// Every wanted instance is ready.
    Healthy,
    /// A rollout is bringing instances up and none failed.
    Starting,
    /// More instances were asked for outside a rollout and none failed.
    Scaling,
    /// Some instances failed; some are ready.
    Degraded,
    /// Instances failed and none is ready.
    Down,
    /// No instance is wanted.
    Stopped,
    /// The engine does not answer: nothing is known.
    Unknown,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Healthy => "healthy",
            Health::Starting => "starting",
            Health::Scaling => "scaling",
            Health::Degraded => "degraded",
            Health::Down => "down",
            Health::Stopped => "stopped",
            Health::Unknown => "unknown",
        }
    }
}

/// What an instance's health depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstanceFacts {
    pub exited: bool,
    pub liveness_failing: bool,
    pub backing_off: bool,
    pub not_ready: bool,
    /// When it started (or was created, before it started).
    pub started_at: Millis,
}

/// Whether something went wrong with an instance rather than it being on its way up: it
/// exited, fails its liveness check, backs off after crashes, or is still not ready after the
/// rollout's progress deadline (a new instance may fail its first readiness checks).
pub fn instance_failing(instance: &InstanceFacts, deadline_ms: u64, now: Millis) -> bool {
    if instance.exited || instance.liveness_failing || instance.backing_off {
        return true;
    }
    let deadline = i64::try_from(deadline_ms).unwrap_or(i64::MAX);
    instance.not_ready && now.saturating_sub(instance.started_at) >= deadline
}

/// What an app's health depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthFacts {
    pub engine_error: bool,
    pub replicas: u32,
    pub ready: u32,
    pub rollout_done: bool,
    pub rollout_failed: bool,
    /// Whether any instance is [`instance_failing`].
    pub any_failing: bool,
}

/// The app's health: fewer ready instances than wanted is an expected transition while a
/// rollout starts them (`Starting`) or after a scale up (`Scaling`), as long as none failed;
/// `Down` and `Degraded` are for failures.
pub fn app_health(facts: &HealthFacts) -> Health {
    if facts.engine_error {
        return Health::Unknown;
    }
    if facts.replicas == 0 {
        return Health::Stopped;
    }
    if facts.ready >= facts.replicas {
        return Health::Healthy;
    }
    if !(facts.rollout_failed || facts.any_failing) {
        return if facts.rollout_done {
            Health::Scaling
        } else {
            Health::Starting
        };
    }
    if facts.ready == 0 {
        Health::Down
    } else {
        Health::Degraded
    }
}

/// The datacenter of a node without the label.
pub const DEFAULT_DATACENTER: &str = "default";

/// One instance placed on a node.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Placed {
    pub node: String,
    pub app: String,
    pub instance: String,
}

/// Instances grouped by datacenter, then node (names sorted; a node known from its labels
/// shows even without instances; a node not in `datacenters` is in [`DEFAULT_DATACENTER`]).
pub fn place(
    datacenters: &BTreeMap<String, String>,
    instances: &[Placed],
) -> BTreeMap<String, BTreeMap<String, Vec<Placed>>> {
    let mut tree: BTreeMap<String, BTreeMap<String, Vec<Placed>>> = BTreeMap::new();
    for (node, datacenter) in datacenters {
        tree.entry(datacenter.clone())
            .or_default()
            .entry(node.clone())
            .or_default();
    }
    for placed in instances {
        let datacenter = datacenters
            .get(&placed.node)
            .map_or(DEFAULT_DATACENTER, String::as_str);
        tree.entry(datacenter.to_string())
            .or_default()
            .entry(placed.node.clone())
            .or_default()
            .push(placed.clone());
    }
    for nodes in tree.values_mut() {
        for list in nodes.values_mut() {
            list.sort();
        }
    }
    tree
}

/// An edge of the apps graph.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Edge {
    /// The app that calls, or `None` for the outside world (requests through the router).
    pub from: Option<String>,
    pub to: String,
    /// `declared` (a dependency), `observed` (connections seen between the apps' instances)
    /// or `traffic` (requests the router saw).
    pub kind: EdgeKind,
    /// A declared dependency on an app that is not among those shown (missing, or of a team
    /// the viewer cannot read).
    pub dangling: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EdgeKind {
    Declared,
    Observed,
    Traffic,
}

/// What the edges are drawn from, per app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppLinks {
    pub name: String,
    pub dependencies: Vec<String>,
    /// Whether the app has a public route.
    pub external: bool,
    /// Requests the router routed to it.
    pub requests: u64,
    /// Apps its instances were seen connecting to (see [`crate::flows`]).
    pub observed_calls: Vec<String>,
}

/// The edges between the apps shown: each declared dependency (dangling when its target is
/// not shown), each observed call to another app shown (one not shown is left out: its name
/// is not the viewer's to see), and the outside world to every external app the router sent
/// requests to.
pub fn edges(apps: &[AppLinks]) -> Vec<Edge> {
    let shown: BTreeSet<&str> = apps.iter().map(|a| a.name.as_str()).collect();
    let mut edges = BTreeSet::new();
    for app in apps {
        for dependency in &app.dependencies {
            edges.insert(Edge {
                from: Some(app.name.clone()),
                to: dependency.clone(),
                kind: EdgeKind::Declared,
                dangling: !shown.contains(dependency.as_str()),
            });
        }
        for target in &app.observed_calls {
            if *target != app.name && shown.contains(target.as_str()) {
                edges.insert(Edge {
                    from: Some(app.name.clone()),
                    to: target.clone(),
                    kind: EdgeKind::Observed,
                    dangling: false,
                });
            }
        }
        if app.external && app.requests > 0 {
            edges.insert(Edge {
                from: None,
                to: app.name.clone(),
                kind: EdgeKind::Traffic,
                dangling: false,
            });
        }
    }
    edges.into_iter().collect()
}

/// Each app's layer in a left-to-right drawing: apps nobody shown depends on are layer 0, and
/// every dependency sits at least one layer right of its dependents (cycles are cut where they
/// close, so every app gets a layer).
pub fn layers(apps: &[AppLinks]) -> BTreeMap<String, usize> {
    let shown: BTreeSet<&str> = apps.iter().map(|a| a.name.as_str()).collect();
    let deps: BTreeMap<&str, Vec<&str>> = apps
        .iter()
        .map(|a| {
            let list = a
                .dependencies
                .iter()
                .map(String::as_str)
                .filter(|d| shown.contains(d) && *d != a.name)
                .collect();
            (a.name.as_str(), list)
        })
        .collect();
    // Longest path from any root, by repeated relaxation bounded by the app count (a cycle
    // stops growing there).
    let mut layer: BTreeMap<&str, usize> = shown.iter().map(|name| (*name, 0)).collect();
    let limit = shown.len();
    for _ in 0..limit {
        let mut changed = false;
        for (app, list) in &deps {
            let from = layer[app];
            for dependency in list {
                let wanted = (from + 1).min(limit);
                if layer[dependency] < wanted {
                    layer.insert(dependency, wanted);
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    layer
        .into_iter()
        .map(|(name, n)| (name.to_string(), n))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_app_is_healthy_starting_scaling_degraded_or_down() {
        let facts = |replicas, ready, done, failed, failing| HealthFacts {
            engine_error: false,
            replicas,
            ready,
            rollout_done: done,
            rollout_failed: failed,
            any_failing: failing,
        };
        let cases = [
            (facts(3, 3, true, false, false), Health::Healthy),
            (facts(3, 4, false, false, false), Health::Healthy),
            (facts(3, 1, false, false, false), Health::Starting),
            (facts(3, 1, true, false, false), Health::Scaling),
            (facts(3, 1, true, false, true), Health::Degraded),
            (facts(3, 1, false, true, false), Health::Degraded),
            (facts(3, 0, true, false, true), Health::Down),
            (facts(0, 0, true, false, true), Health::Stopped),
            (
                HealthFacts {
                    engine_error: true,
                    ..facts(3, 3, true, false, false)
                },
                Health::Unknown,
            ),
        ];
        for (facts, want) in cases {
            assert_eq!(app_health(&facts), want, "{facts:?}");
        }
    }

    #[test]
    fn an_instance_fails_when_it_exited_crashes_or_stays_unready_past_the_deadline() {
        let fine = InstanceFacts {
            exited: false,
            liveness_failing: false,
            backing_off: false,
            not_ready: false,
            started_at: 1_000,
        };
        // (instance, now, failing)
        let cases = [
            (fine, 100_000, false),
            (
                InstanceFacts {
                    exited: true,
                    ..fine
                },
                1_000,
                true,
            ),
            (
                InstanceFacts {
                    liveness_failing: true,
                    ..fine
                },
                1_000,
                true,
            ),
            (
                InstanceFacts {
                    backing_off: true,
                    ..fine
                },
                1_000,
                true,
            ),
            (
                InstanceFacts {
                    not_ready: true,
                    ..fine
                },
                60_999,
                false,
            ),
            (
                InstanceFacts {
                    not_ready: true,
                    ..fine
                },
                61_000,
                true,
            ),
        ];
        for (instance, now, want) in cases {
            assert_eq!(
                instance_failing(&instance, 60_000, now),
                want,
                "{instance:?} {now}"
            );
        }
    }

    fn placed(node: &str, app: &str, instance: &str) -> Placed {
        Placed {
            node: node.into(),
            app: app.into(),
            instance: instance.into(),
        }
    }

    #[test]
    fn instances_are_grouped_by_datacenter_and_node() {
        let datacenters = BTreeMap::from([
            ("vm1".to_string(), "eu".to_string()),
            ("vm2".to_string(), "eu".to_string()),
            ("spare".to_string(), "us".to_string()),
        ]);
        let tree = place(
            &datacenters,
            &[
                placed("vm2", "web", "web-2"),
                placed("vm1", "web", "web-1"),
                placed("vm1", "api", "api-1"),
                placed("lost", "db", "db-1"),
            ],
        );
        let shape: Vec<(String, Vec<(String, Vec<String>)>)> = tree
            .iter()
            .map(|(dc, nodes)| {
                (
                    dc.clone(),
                    nodes
                        .iter()
                        .map(|(node, list)| {
                            (
                                node.clone(),
                                list.iter().map(|p| p.instance.clone()).collect(),
                            )
                        })
                        .collect(),
                )
            })
            .collect();
        let s = |x: &str| x.to_string();
        assert_eq!(
            shape,
            vec![
                (s("default"), vec![(s("lost"), vec![s("db-1")])]),
                (
                    s("eu"),
                    vec![
                        (s("vm1"), vec![s("api-1"), s("web-1")]),
                        (s("vm2"), vec![s("web-2")]),
                    ]
                ),
                (s("us"), vec![(s("spare"), vec![])]),
            ]
        );
    }

    fn links(name: &str, deps: &[&str], external: bool, requests: u64) -> AppLinks {
        AppLinks {
            name: name.into(),
            dependencies: deps.iter().map(|d| d.to_string()).collect(),
            external,
            requests,
            observed_calls: Vec::new(),
        }
    }

    #[test]
    fn edges_come_from_dependencies_observed_calls_and_outside_traffic() {
        let apps = [
            links("web", &["api", "cache"], true, 10),
            AppLinks {
                // Seen calling db (declared by nobody), api (declared the other way), itself
                // and an app not shown.
                observed_calls: vec!["db".into(), "web".into(), "api".into(), "hidden".into()],
                ..links("api", &["db", "secret-app"], false, 0)
            },
            links("db", &[], false, 5),
            links("cache", &[], true, 0),
        ];
        let all = edges(&apps);
        let got: Vec<(Option<&str>, &str, EdgeKind, bool)> = all
            .iter()
            .map(|e| (e.from.as_deref(), e.to.as_str(), e.kind, e.dangling))
            .collect();
        assert_eq!(
            got,
            vec![
                (None, "web", EdgeKind::Traffic, false),
                (Some("api"), "db", EdgeKind::Declared, false),
                (Some("api"), "db", EdgeKind::Observed, false),
                (Some("api"), "secret-app", EdgeKind::Declared, true),
                (Some("api"), "web", EdgeKind::Observed, false),
                (Some("web"), "api", EdgeKind::Declared, false),
                (Some("web"), "cache", EdgeKind::Declared, false),
            ]
        );
    }

    #[test]
    fn layers_put_dependencies_right_of_their_dependents() {
        // (apps, expected layers)
        let cases = [
            (
                vec![
                    links("web", &["api", "db"], true, 0),
                    links("api", &["db"], false, 0),
                    links("db", &[], false, 0),
                    links("lone", &[], false, 0),
                ],
                vec![("api", 1), ("db", 2), ("lone", 0), ("web", 0)],
            ),
            (
                // A cycle still gets layers, bounded by the number of apps.
                vec![links("a", &["b"], false, 0), links("b", &["a"], false, 0)],
                vec![("a", 2), ("b", 2)],
            ),
            (
                // Dependencies on apps not shown, and on itself, are ignored.
                vec![links("x", &["x", "ghost"], false, 0)],
                vec![("x", 0)],
            ),
        ];
        for (apps, want) in cases {
            let got = layers(&apps);
            let want: BTreeMap<String, usize> =
                want.into_iter().map(|(n, l)| (n.to_string(), l)).collect();
            assert_eq!(got, want, "{apps:?}");
        }
    }
}
