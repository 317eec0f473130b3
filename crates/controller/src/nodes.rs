//! The node monitor: every interval it reads each node — the engine's name, capacity and data
//! root; the host's CPU, memory and disks — judges it with `berth_core::node::assess`, keeps
//! the view the API shows, and records a platform event when a node crosses a threshold,
//! recovers or falls silent, and when every node is low.
//!
//! The nodes are the engine's (`Runtime::nodes`): one for a single engine, every node of a
//! Swarm. The one Berth runs on is measured from the host (`/proc` and `statvfs`, see
//! [`crate::host`]); another is read by the node agent the engine keeps there
//! (`Runtime::read_node`), and without one it is known by what the engine says (capacity,
//! state, availability, labels) and sampled without readings while the engine says it is
//! ready. Each node is judged alone, all are read at once. A node whose reading fails keeps
//! its last sample, so it turns `unknown` once that sample is older than the silence
//! threshold — never "ok" on stale numbers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_core::Millis;
use berth_core::clock::Clock;
use berth_core::node::{
    self, CLUSTER_SUBJECT, DiskRole, NEEDS_ANOTHER_NODE, NodeSample, NodeWatch, PlatformEvent,
    PlatformEventKind, Thresholds,
};
use berth_engine::Runtime;
use berth_store::NodeStore;

use crate::host::{self, CpuTimes, HostReading, WatchedDisk};
use crate::workers::{Job, Schedule};

/// Settings of the node monitor.
#[derive(Debug, Clone)]
pub struct NodeSettings {
    /// Time between samples (5 s by default).
    pub interval: Duration,
    pub thresholds: Thresholds,
    /// Berth's data directory (`--data-dir`), one of the watched disks.
    pub data_dir: PathBuf,
    /// Events kept per node (and for the cluster).
    pub event_history: u32,
}

/// What the engine says about a node (its labels under the ones Berth's admins set: see
/// [`labels_with`]).
pub use berth_engine::EngineNode as NodeInfo;

/// A node's labels: the engine's, with the ones Berth's admins set (`stored`) over them.
pub fn labels_with(info: &NodeInfo, stored: node::NodeLabels) -> node::NodeLabels {
    let mut labels = info.labels.clone();
    labels.extend(stored);
    labels
}

/// One node as the monitor sees it now.
#[derive(Debug, Clone)]
pub struct NodeView {
    pub info: NodeInfo,
    /// The latest sample (`None`: never sampled).
    pub sample: Option<NodeSample>,
    /// The judgement at the time of the view (silence counts up to now).
    pub watch: NodeWatch,
}

/// Every node, and whether the cluster needs another one.
#[derive(Debug, Clone)]
pub struct NodesView {
    pub nodes: Vec<NodeView>,
    pub needs_another_node: bool,
}

struct Tracked {
    info: NodeInfo,
    sample: Option<NodeSample>,
    watch: NodeWatch,
}

#[derive(Default)]
struct State {
    /// Each node's previous CPU counters (a rate needs two readings).
    last_cpu: BTreeMap<String, CpuTimes>,
    /// Why each node's agent last failed to read it (said once, until it reads again).
    agent_failures: BTreeMap<String, String>,
    nodes: BTreeMap<String, Tracked>,
    needs_another_node: bool,
    /// Whether the cluster's state was resumed from its last recorded event.
    resumed: bool,
}

/// Samples nodes and keeps their judgement (see the module docs).
pub struct NodeMonitor {
    store: Arc<dyn NodeStore>,
    runtime: Arc<dyn Runtime>,
    clock: Clock,
    settings: NodeSettings,
    state: Mutex<State>,
}

impl std::fmt::Debug for NodeMonitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeMonitor")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl NodeMonitor {
    pub fn new(
        store: Arc<dyn NodeStore>,
        runtime: Arc<dyn Runtime>,
        clock: Clock,
        settings: NodeSettings,
    ) -> Arc<Self> {
        Arc::new(NodeMonitor {
            store,
            runtime,
            clock,
            settings,
            state: Mutex::new(State::default()),
        })
    }

    pub fn settings(&self) -> &NodeSettings {
        &self.settings
    }

    /// Every node judged at this moment: a node whose last sample is too old shows `unknown`
    /// even before the monitor's next round notices.
    pub fn view(&self) -> NodesView {
        let now = (self.clock)();
        let state = self.lock();
        let nodes: Vec<NodeView> = state
            .nodes
            .values()
            .map(|tracked| NodeView {
                info: tracked.info.clone(),
                sample: tracked.sample.clone(),
                watch: node::assess(
                    &tracked.watch,
                    tracked.sample.as_ref(),
                    &self.settings.thresholds,
                    now,
                ),
            })
            .collect();
        let needs_another_node = node::needs_another_node(nodes.iter().map(|n| &n.watch.status));
        NodesView {
            nodes,
            needs_another_node,
        }
    }

    /// One round: sample, judge every node, record the transitions. Fails (after judging)
    /// when the nodes could not be read.
    pub async fn run_once(&self) -> Result<String, String> {
        let sampled = self.sample().await;
        // A node (and the cluster) seen for the first time since start resumes from its last
        // recorded event, so a restart neither repeats nor misses a transition.
        let resume_cluster = !self.lock().resumed;
        let cluster = if resume_cluster {
            Some(self.last_event(CLUSTER_SUBJECT).await?)
        } else {
            None
        };
        let mut resumed_nodes = BTreeMap::new();
        if let Ok(nodes) = &sampled {
            for (info, _) in nodes {
                if !self.lock().nodes.contains_key(&info.name) {
                    let last = self.last_event(&node::node_subject(&info.name)).await?;
                    resumed_nodes.insert(info.name.clone(), last);
                }
            }
        }
        let now = (self.clock)();
        let events = {
            let mut state = self.lock();
            if let Some(last) = cluster {
                state.needs_another_node = last == Some(PlatformEventKind::ClusterNeedsNode);
                state.resumed = true;
            }
            if let Ok(nodes) = &sampled {
                for (info, sample) in nodes {
                    let tracked = state
                        .nodes
                        .entry(info.name.clone())
                        .or_insert_with(|| Tracked {
                            info: info.clone(),
                            sample: None,
                            watch: NodeWatch::resumed(
                                resumed_nodes.get(&info.name).copied().flatten(),
                            ),
                        });
                    tracked.info = info.clone();
                    // A node the engine cannot reach keeps its last sample: it falls silent.
                    if let Some(sample) = sample {
                        tracked.sample = Some(sample.clone());
                    }
                }
            }
            self.judge(&mut state, now)
        };
        for event in &events {
            if event.kind.is_warning() {
                tracing::warn!(subject = %event.subject, kind = event.kind.as_str(), "{}", event.message);
            } else {
                tracing::info!(subject = %event.subject, kind = event.kind.as_str(), "{}", event.message);
            }
        }
        if let Err(error) = self
            .store
            .append_platform_events(&events, self.settings.event_history)
            .await
        {
            tracing::warn!(%error, "cannot record node events");
        }
        let nodes = sampled?;
        let state = self.lock();
        let summaries: Vec<String> = nodes
            .iter()
            .map(|(info, sample)| {
                let status = state
                    .nodes
                    .get(&info.name)
                    .map(|t| t.watch.status.as_str())
                    .unwrap_or("unknown");
                let reading = sample
                    .as_ref()
                    .filter(|s| s.cpu_percent.is_some() || s.memory.is_some())
                    .map(|sample| {
                        format!(
                            ": CPU {}, memory {}",
                            sample
                                .cpu_percent
                                .map(|c| format!("{c:.0} %"))
                                .unwrap_or_else(|| "unknown".into()),
                            sample
                                .memory
                                .map(|m| format!("{:.0} % used", m.used_percent()))
                                .unwrap_or_else(|| "unknown".into()),
                        )
                    })
                    .unwrap_or_default();
                format!("node {} {status}{reading}", info.name)
            })
            .collect();
        Ok(summaries.join("; "))
    }

    /// The kind of the last event recorded for `subject`.
    async fn last_event(&self, subject: &str) -> Result<Option<PlatformEventKind>, String> {
        let query = berth_store::EventQuery {
            after_id: None,
            limit: 1,
        };
        self.store
            .list_platform_events(subject, query)
            .await
            .map(|events| events.last().map(|e| e.kind))
            .map_err(|e| format!("reading the last events: {e}"))
    }

    /// Judges every node at `now` and returns the events of what changed.
    fn judge(&self, state: &mut State, now: Millis) -> Vec<PlatformEvent> {
        let mut events = Vec::new();
        for (name, tracked) in &mut state.nodes {
            let next = node::assess(
                &tracked.watch,
                tracked.sample.as_ref(),
                &self.settings.thresholds,
                now,
            );
            if let Some(kind) = node::transition(&tracked.watch, &next) {
                events.push(PlatformEvent::for_node(name, now, kind, &next));
            }
            tracked.watch = next;
        }
        let needs = node::needs_another_node(state.nodes.values().map(|t| &t.watch.status));
        if needs != state.needs_another_node {
            events.push(if needs {
                PlatformEvent::new(
                    CLUSTER_SUBJECT,
                    now,
                    PlatformEventKind::ClusterNeedsNode,
                    NEEDS_ANOTHER_NODE,
                )
            } else {
                PlatformEvent::new(
                    CLUSTER_SUBJECT,
                    now,
                    PlatformEventKind::ClusterHasRoom,
                    "not every node is low any more",
                )
            });
            state.needs_another_node = needs;
        }
        events
    }

    /// Reads the engine's nodes and, at once, each node's host: the one Berth runs on
    /// directly, the others through their agents. A node Berth has no agent on is sampled
    /// without readings while the engine says it is ready, and not at all otherwise.
    async fn sample(&self) -> Result<Vec<(NodeInfo, Option<NodeSample>)>, String> {
        let nodes = self
            .runtime
            .nodes()
            .await
            .map_err(|e| format!("the engine did not answer: {e}"))?;
        let readings = nodes.iter().map(|info| async move {
            if info.local {
                self.read_local(info).await.map(Some)
            } else if info.state == "ready" {
                Ok(self.read_remote(info).await)
            } else {
                Ok(None)
            }
        });
        let samples = futures::future::join_all(readings).await;
        nodes
            .into_iter()
            .zip(samples)
            .map(|(info, sample)| sample.map(|s| (info, s)))
            .collect()
    }

    /// The CPU, memory and disks (the engine's data root, Berth's data directory) of the
    /// machine Berth runs on.
    async fn read_local(&self, info: &NodeInfo) -> Result<NodeSample, String> {
        let data_root = info.data_root.clone();
        let data_dir = std::path::absolute(&self.settings.data_dir)
            .unwrap_or_else(|_| self.settings.data_dir.clone());
        let reading = tokio::task::spawn_blocking(move || {
            let data_dir_named = data_dir.display().to_string();
            let mut disks = Vec::with_capacity(2);
            if let Some(root) = &data_root {
                disks.push(WatchedDisk {
                    role: DiskRole::EngineDataRoot,
                    named: root,
                    seen_at: Path::new(root),
                });
            }
            disks.push(WatchedDisk {
                role: DiskRole::BerthDataDir,
                named: &data_dir_named,
                seen_at: &data_dir,
            });
            host::read_host(Path::new("/proc"), &disks)
        })
        .await
        .map_err(|e| format!("reading the host failed: {e}"))?;
        Ok(self.sample_of(info, reading))
    }

    /// A node Berth does not run on, read by its agent when it has one. A reading that
    /// fails is no sample (the node keeps its last one), and is said once.
    async fn read_remote(&self, info: &NodeInfo) -> Option<NodeSample> {
        let report = self
            .runtime
            .read_node(&info.name)
            .await
            .map_err(|e| e.to_string())
            .and_then(|output| output.map(|o| host::parse_report(&o)).transpose());
        match report {
            Ok(Some(reading)) => {
                if self.lock().agent_failures.remove(&info.name).is_some() {
                    tracing::info!(node = %info.name, "the node agent reads the node again");
                }
                Some(self.sample_of(info, reading))
            }
            Ok(None) => Some(NodeSample {
                at: (self.clock)(),
                cpus: info.cpus,
                cpu_percent: None,
                memory: None,
                disks: Vec::new(),
            }),
            Err(error) => {
                let mut state = self.lock();
                if state.agent_failures.get(&info.name) != Some(&error) {
                    tracing::warn!(node = %info.name, %error, "the node agent cannot read the node");
                    state.agent_failures.insert(info.name.clone(), error);
                }
                None
            }
        }
    }

    /// A node's sample from a reading of its host (its CPU share against its previous one).
    fn sample_of(&self, info: &NodeInfo, reading: HostReading) -> NodeSample {
        let cpu_percent = {
            let mut state = self.lock();
            let previous = match reading.cpu {
                Some(cpu) => state.last_cpu.insert(info.name.clone(), cpu),
                None => state.last_cpu.remove(&info.name),
            };
            previous
                .zip(reading.cpu)
                .and_then(|(earlier, now)| now.busy_percent_since(&earlier))
        };
        NodeSample {
            at: (self.clock)(),
            cpus: info.cpus,
            cpu_percent,
            memory: reading.memory,
            disks: reading.disks,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The monitor as a periodic job (`node-sampler` in `GET /api/v1/system/workers`).
pub struct NodeSampler(pub Arc<NodeMonitor>);

impl NodeSampler {
    /// Every interval, the first at once.
    pub fn schedule(&self) -> Schedule {
        let period = self.0.settings.interval;
        Schedule {
            period,
            first_run_after: Duration::ZERO,
            retry_after: period,
        }
    }
}

#[async_trait::async_trait]
impl Job for NodeSampler {
    fn name(&self) -> &'static str {
        "node-sampler"
    }

    fn description(&self) -> &'static str {
        "samples each node's CPU, memory and disks and marks nodes that run low"
    }

    async fn run(&self) -> Result<String, String> {
        self.0.run_once().await
    }
}
