//! The node monitor: every interval it reads each node — the engine's name, capacity and data
//! root; the host's CPU, memory and disks — judges it with `berth_core::node::assess`, keeps
//! the view the API shows, and records a platform event when a node crosses a threshold,
//! recovers or falls silent, and when every node is low.
//!
//! The nodes are the engine's (`Runtime::nodes`): one for a single engine, every node of a
//! Swarm. The one Berth runs on is measured from the host (`/proc` and `statvfs`); the others
//! are known by what the engine says (capacity, state, availability, labels) and sampled
//! without readings while the engine says they are ready. Each node is judged alone. A node whose reading fails keeps its last
//! sample, so it turns `unknown` once that sample is older than the silence threshold — never
//! "ok" on stale numbers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_core::Millis;
use berth_core::clock::Clock;
use berth_core::node::{
    self, CLUSTER_SUBJECT, DiskRole, DiskSample, NEEDS_ANOTHER_NODE, NodeSample, NodeWatch,
    PlatformEvent, PlatformEventKind, Space, Thresholds,
};
use berth_engine::Runtime;
use berth_store::NodeStore;

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
    /// The host's previous CPU counters (a rate needs two readings).
    last_cpu: Option<CpuTimes>,
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
                    .filter(|_| info.local)
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

    /// Reads the engine's nodes, and the CPU, memory and disks of the one Berth runs on. A
    /// node Berth does not run on is sampled without readings while the engine says it is
    /// ready, and not at all otherwise.
    async fn sample(&self) -> Result<Vec<(NodeInfo, Option<NodeSample>)>, String> {
        let nodes = self
            .runtime
            .nodes()
            .await
            .map_err(|e| format!("the engine did not answer: {e}"))?;
        let mut sampled = Vec::with_capacity(nodes.len());
        for info in nodes {
            let sample = if info.local {
                Some(self.read_host(&info).await?)
            } else {
                (info.state == "ready").then(|| NodeSample {
                    at: (self.clock)(),
                    cpus: info.cpus,
                    cpu_percent: None,
                    memory: None,
                    disks: Vec::new(),
                })
            };
            sampled.push((info, sample));
        }
        Ok(sampled)
    }

    /// The CPU, memory and disks (the engine's data root, Berth's data directory) of the
    /// machine Berth runs on.
    async fn read_host(&self, info: &NodeInfo) -> Result<NodeSample, String> {
        let data_root = info.data_root.clone();
        let data_dir = self.settings.data_dir.clone();
        let host = tokio::task::spawn_blocking(move || read_host(data_root.as_deref(), &data_dir))
            .await
            .map_err(|e| format!("reading the host failed: {e}"))?;
        let at = (self.clock)();
        let cpu_percent = {
            let mut state = self.lock();
            let previous = std::mem::replace(&mut state.last_cpu, host.cpu);
            previous
                .zip(host.cpu)
                .and_then(|(a, b)| b.busy_percent_since(&a))
        };
        Ok(NodeSample {
            at,
            cpus: info.cpus,
            cpu_percent,
            memory: host.memory,
            disks: host.disks,
        })
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

/// Cumulative CPU time of the host, in clock ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CpuTimes {
    busy: u64,
    total: u64,
}

impl CpuTimes {
    /// The busy share between `earlier` and this reading; `None` without time between them
    /// or when the counters went backwards.
    fn busy_percent_since(&self, earlier: &CpuTimes) -> Option<f64> {
        let total = self.total.checked_sub(earlier.total)?;
        let busy = self.busy.checked_sub(earlier.busy)?;
        (total > 0).then(|| (busy as f64 * 100.0 / total as f64).min(100.0))
    }
}

/// `/proc/stat`'s `cpu` line: every field is time; idle and iowait are not busy.
fn parse_proc_stat(text: &str) -> Option<CpuTimes> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    // user nice system idle iowait irq softirq steal [guest guest_nice — already in user/nice]
    let total: u64 = fields.iter().take(8).sum();
    let idle = fields.get(3)? + fields.get(4).copied().unwrap_or(0);
    Some(CpuTimes {
        busy: total.checked_sub(idle)?,
        total,
    })
}

/// `/proc/meminfo`'s total and available memory.
fn parse_meminfo(text: &str) -> Option<Space> {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
            .map(|kib| kib * 1024)
    };
    Some(Space {
        total_bytes: field("MemTotal")?,
        free_bytes: field("MemAvailable")?,
    })
}

/// The space of the file system holding `path`, for unprivileged use; `None` when `path` is
/// not visible from here.
fn disk_space(path: &Path) -> Option<Space> {
    let stat = rustix::fs::statvfs(path).ok()?;
    let block = stat.f_frsize.max(1);
    Some(Space {
        total_bytes: stat.f_blocks.saturating_mul(block),
        free_bytes: stat.f_bavail.saturating_mul(block),
    })
}

struct HostReading {
    cpu: Option<CpuTimes>,
    memory: Option<Space>,
    disks: Vec<DiskSample>,
}

fn read_host(data_root: Option<&str>, data_dir: &Path) -> HostReading {
    let cpu = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|t| parse_proc_stat(&t));
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| parse_meminfo(&t));
    let mut disks = Vec::new();
    if let Some(root) = data_root {
        disks.push(DiskSample {
            role: DiskRole::EngineDataRoot,
            path: root.to_string(),
            space: disk_space(Path::new(root)),
        });
    }
    let data_dir = std::path::absolute(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
    disks.push(DiskSample {
        role: DiskRole::BerthDataDir,
        path: data_dir.display().to_string(),
        space: disk_space(&data_dir),
    });
    HostReading { cpu, memory, disks }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_reads_busy_and_total() {
        let text = "cpu  100 5 50 800 40 3 2 0 7 0\ncpu0 50 2 25 400 20 1 1 0 0 0\nintr 1\n";
        assert_eq!(
            parse_proc_stat(text),
            Some(CpuTimes {
                busy: 160,
                total: 1000
            })
        );
        assert_eq!(parse_proc_stat("cpu0 1 2 3 4\n"), None);
        assert_eq!(parse_proc_stat("cpu  a b\n"), None);
        // (earlier, later, want)
        let t = |busy, total| CpuTimes { busy, total };
        let cases = [
            (t(100, 1000), t(150, 1100), Some(50.0)),
            (t(100, 1000), t(100, 1000), None),
            (t(100, 1000), t(50, 900), None),
            (t(0, 0), t(400, 400), Some(100.0)),
        ];
        for (earlier, later, want) in cases {
            assert_eq!(
                later.busy_percent_since(&earlier),
                want,
                "{earlier:?} → {later:?}"
            );
        }
    }

    #[test]
    fn meminfo_reads_total_and_available() {
        let text = "MemTotal:       16000 kB\nMemFree:  100 kB\nMemAvailable:    4000 kB\n";
        assert_eq!(
            parse_meminfo(text),
            Some(Space {
                total_bytes: 16000 * 1024,
                free_bytes: 4000 * 1024
            })
        );
        assert_eq!(parse_meminfo("MemTotal: 1 kB\n"), None);
    }

    #[test]
    fn an_invisible_disk_is_unknown() {
        assert_eq!(disk_space(Path::new("/no/such/berth/dir")), None);
        assert!(disk_space(Path::new("/")).is_some_and(|s| s.total_bytes > 0));
    }
}
