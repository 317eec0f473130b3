//! Nodes — the machines apps run on: their labels, capacity and use, and the pure judgement of
//! when one runs low (thresholds, "for a minute", crossing and recovering, unknown when silent).
//!
//! One node today (the local engine); a multi-node engine lists several, each judged alone, and
//! the cluster needs another node when every node is low. Events about nodes and the cluster
//! are [`PlatformEvent`]s: they belong to no app, so app timelines never show them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Millis;
use crate::validate::ValidationErrors;

/// A node's labels: `datacenter`, `zone` and free-form keys (set by admins).
pub type NodeLabels = BTreeMap<String, String>;

/// The label that names a node's datacenter (the topology groups nodes by it).
pub const DATACENTER_LABEL: &str = "datacenter";
/// The label that names a node's zone within its datacenter.
pub const ZONE_LABEL: &str = "zone";
/// Most labels one node may carry.
pub const MAX_LABELS: usize = 32;
/// Longest label key or value.
pub const MAX_LABEL_LEN: usize = 63;

/// Checks label keys (lowercase letters, digits, `.`, `_`, `-`, starting and ending with a
/// letter or digit) and values (letters, digits, `.`, `_`, `-`; may be empty); each error
/// names the field as `labels.<key>`.
pub fn validate_labels(labels: &NodeLabels) -> Result<(), ValidationErrors> {
    let mut errors = ValidationErrors::default();
    if labels.len() > MAX_LABELS {
        errors.push("labels", format!("at most {MAX_LABELS} labels"));
    }
    for (key, value) in labels {
        let field = format!("labels.{key}");
        if let Some(problem) = label_key_problem(key) {
            errors.push(field.clone(), problem);
        }
        if let Some(problem) = label_value_problem(value) {
            errors.push(field, problem);
        }
    }
    errors.into_result()
}

pub(crate) fn label_key_problem(key: &str) -> Option<String> {
    let edge = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    if key.is_empty() {
        return Some("a label key cannot be empty".into());
    }
    if key.len() > MAX_LABEL_LEN {
        return Some(format!(
            "a label key has at most {MAX_LABEL_LEN} characters"
        ));
    }
    let inner_ok = key.chars().all(|c| edge(c) || matches!(c, '.' | '_' | '-'));
    let edges_ok = key.starts_with(edge) && key.ends_with(edge);
    if !inner_ok || !edges_ok {
        return Some(
            "a label key is lowercase letters, digits, '.', '_' and '-', starting and ending \
             with a letter or digit"
                .into(),
        );
    }
    // Berth marks nodes with labels of its own (a drain on a Swarm): nobody else sets them.
    key.starts_with("berth.")
        .then(|| "label keys starting with 'berth.' are Berth's own".into())
}

pub(crate) fn label_value_problem(value: &str) -> Option<String> {
    if value.len() > MAX_LABEL_LEN {
        return Some(format!(
            "a label value has at most {MAX_LABEL_LEN} characters"
        ));
    }
    let ok = value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    (!ok).then(|| "a label value is letters, digits, '.', '_' and '-'".into())
}

/// One change of `berth nodes label`: `key=value` sets a label, `key-` removes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelChange {
    Set(String, String),
    Remove(String),
}

impl LabelChange {
    /// Reads `key=value` or `key-`.
    pub fn parse(text: &str) -> Result<LabelChange, String> {
        if let Some((key, value)) = text.split_once('=') {
            return Ok(LabelChange::Set(key.into(), value.into()));
        }
        match text.strip_suffix('-') {
            Some(key) if !key.is_empty() => Ok(LabelChange::Remove(key.into())),
            _ => Err(format!(
                "'{text}': give key=value to set a label or key- to remove it"
            )),
        }
    }

    /// Applies the change to `labels`.
    pub fn apply(self, labels: &mut NodeLabels) {
        match self {
            LabelChange::Set(key, value) => {
                labels.insert(key, value);
            }
            LabelChange::Remove(key) => {
                labels.remove(&key);
            }
        }
    }
}

/// When a node counts as low, and when as silent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// CPU busier than this share (percent of all cores)…
    pub cpu_busy_percent: f64,
    /// …for at least this long makes the node low.
    pub cpu_busy_for_ms: i64,
    /// Less free memory than this share makes the node low.
    pub memory_free_min_percent: f64,
    /// Less free space than this share on any watched disk makes the node low.
    pub disk_free_min_percent: f64,
    /// A node without a sample for this long is `unknown` (3 sampling intervals).
    pub silent_after_ms: i64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            cpu_busy_percent: 90.0,
            cpu_busy_for_ms: 60_000,
            memory_free_min_percent: 10.0,
            disk_free_min_percent: 10.0,
            silent_after_ms: 15_000,
        }
    }
}

/// Total and free bytes of memory or of a file system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Space {
    pub total_bytes: u64,
    /// What a new allocation or file can still use (available memory; blocks free to users).
    pub free_bytes: u64,
}

impl Space {
    /// The free share in percent (0 for an empty total).
    pub fn free_percent(&self) -> f64 {
        if self.total_bytes == 0 {
            0.0
        } else {
            self.free_bytes as f64 * 100.0 / self.total_bytes as f64
        }
    }

    /// The used share in percent.
    pub fn used_percent(&self) -> f64 {
        if self.total_bytes == 0 {
            0.0
        } else {
            100.0 - self.free_percent()
        }
    }
}

/// Which of Berth's disks a [`DiskSample`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiskRole {
    /// The engine's data root (images, containers, volumes: Docker's `DockerRootDir`).
    EngineDataRoot,
    /// Berth's data directory (`--data-dir`: database, registry blobs, build logs).
    BerthDataDir,
}

impl DiskRole {
    pub fn as_str(self) -> &'static str {
        match self {
            DiskRole::EngineDataRoot => "engine_data_root",
            DiskRole::BerthDataDir => "berth_data_dir",
        }
    }
}

/// One watched disk in a sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiskSample {
    pub role: DiskRole,
    /// The directory as the engine or the server names it.
    pub path: String,
    /// `None`: not measurable from where Berth runs (say, the engine's data root is in another
    /// mount namespace); the disk is then unknown, which never makes the node low.
    pub space: Option<Space>,
}

/// What one sampling round saw of a node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeSample {
    pub at: Millis,
    /// Cores the engine reports.
    pub cpus: u32,
    /// Busy share of all cores since the previous reading, in percent; `None` on the first
    /// reading (a rate needs two) or when the host cannot be read.
    pub cpu_percent: Option<f64>,
    pub memory: Option<Space>,
    pub disks: Vec<DiskSample>,
}

/// How a node is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeStatus {
    /// Reporting, every resource within its threshold.
    Ok,
    /// At least one resource past its threshold (red).
    Low,
    /// Not reporting: no sample, or none for [`Thresholds::silent_after_ms`].
    #[default]
    Unknown,
}

impl NodeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeStatus::Ok => "ok",
            NodeStatus::Low => "low",
            NodeStatus::Unknown => "unknown",
        }
    }
}

/// Why a node is low or unknown: one code and the values of its sentence (numbers as they are
/// written in it), so clients can say it in their own language; [`std::fmt::Display`] gives
/// the English sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeReason {
    /// It never reported.
    NoSampleYet,
    /// Its last sample is this many seconds old.
    Silent { seconds: i64 },
    /// CPU above `max_percent` for `seconds` (the threshold's time: `for_seconds`).
    CpuBusy {
        percent: String,
        seconds: i64,
        max_percent: String,
        for_seconds: i64,
    },
    /// Less free memory than `min_percent`.
    MemoryLow {
        free_percent: String,
        min_percent: String,
    },
    /// Less free space than `min_percent` on the disk holding `path`.
    DiskLow {
        path: String,
        free_percent: String,
        min_percent: String,
    },
}

impl NodeReason {
    /// The reason's code and its values by name.
    pub fn parts(&self) -> (&'static str, Vec<(&'static str, String)>) {
        match self {
            NodeReason::NoSampleYet => ("no_sample_yet", Vec::new()),
            NodeReason::Silent { seconds } => ("silent", vec![("seconds", seconds.to_string())]),
            NodeReason::CpuBusy {
                percent,
                seconds,
                max_percent,
                for_seconds,
            } => (
                "cpu_busy",
                vec![
                    ("percent", percent.clone()),
                    ("seconds", seconds.to_string()),
                    ("max_percent", max_percent.clone()),
                    ("for_seconds", for_seconds.to_string()),
                ],
            ),
            NodeReason::MemoryLow {
                free_percent,
                min_percent,
            } => (
                "memory_low",
                vec![
                    ("free_percent", free_percent.clone()),
                    ("min_percent", min_percent.clone()),
                ],
            ),
            NodeReason::DiskLow {
                path,
                free_percent,
                min_percent,
            } => (
                "disk_low",
                vec![
                    ("path", path.clone()),
                    ("free_percent", free_percent.clone()),
                    ("min_percent", min_percent.clone()),
                ],
            ),
        }
    }
}

impl std::fmt::Display for NodeReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NodeReason::NoSampleYet => f.write_str("no sample yet"),
            NodeReason::Silent { seconds } => {
                write!(f, "no sample for {seconds} s (expected every few seconds)")
            }
            NodeReason::CpuBusy {
                percent,
                seconds,
                max_percent,
                for_seconds,
            } => write!(
                f,
                "CPU {percent} % busy for {seconds} s (threshold {max_percent} % for \
                 {for_seconds} s)"
            ),
            NodeReason::MemoryLow {
                free_percent,
                min_percent,
            } => write!(
                f,
                "memory {free_percent} % free (threshold {min_percent} %)"
            ),
            NodeReason::DiskLow {
                path,
                free_percent,
                min_percent,
            } => write!(
                f,
                "disk {path} {free_percent} % free (threshold {min_percent} %)"
            ),
        }
    }
}

/// Reasons as a JSON list of objects, each its `code` and its values (an event parameter:
/// clients say them in their own language).
pub fn reason_details(reasons: &[NodeReason]) -> String {
    let list: Vec<serde_json::Value> = reasons
        .iter()
        .map(|reason| {
            let (code, values) = reason.parts();
            let mut object = serde_json::Map::new();
            object.insert("code".into(), code.into());
            for (name, value) in values {
                object.insert(name.into(), value.into());
            }
            serde_json::Value::Object(object)
        })
        .collect();
    serde_json::Value::Array(list).to_string()
}

/// A node's judgement, carried from one assessment to the next.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NodeWatch {
    pub status: NodeStatus,
    /// Why the node is low or unknown.
    pub reasons: Vec<NodeReason>,
    /// Since when the CPU has been above its threshold (the sample time), if it is.
    pub cpu_busy_since: Option<Millis>,
    /// Whether the node ever reported (coming back after silence is then a recovery).
    pub reported: bool,
}

impl NodeWatch {
    /// The judgement a restarted monitor resumes from, given the node's last recorded event:
    /// a node last recorded low stays low without a second `node_low`, and one that recovered
    /// while Berth was away is recorded as recovered.
    pub fn resumed(last: Option<PlatformEventKind>) -> NodeWatch {
        let status = match last {
            Some(PlatformEventKind::NodeLow) => NodeStatus::Low,
            Some(PlatformEventKind::NodeRecovered) => NodeStatus::Ok,
            _ => NodeStatus::Unknown,
        };
        NodeWatch {
            status,
            reported: last.is_some(),
            ..NodeWatch::default()
        }
    }
}

/// Judges a node from its latest sample (`None`: it never reported) at `now`, given how it
/// was judged before.
pub fn assess(
    previous: &NodeWatch,
    latest: Option<&NodeSample>,
    thresholds: &Thresholds,
    now: Millis,
) -> NodeWatch {
    let Some(sample) = latest.filter(|s| now - s.at <= thresholds.silent_after_ms) else {
        let reason = match latest {
            Some(sample) => NodeReason::Silent {
                seconds: (now - sample.at) / 1_000,
            },
            None => NodeReason::NoSampleYet,
        };
        return NodeWatch {
            status: NodeStatus::Unknown,
            reasons: vec![reason],
            cpu_busy_since: None,
            reported: previous.reported,
        };
    };
    let mut reasons = Vec::new();
    let busy = sample
        .cpu_percent
        .filter(|&cpu| cpu > thresholds.cpu_busy_percent);
    let cpu_busy_since = busy.map(|_| previous.cpu_busy_since.unwrap_or(sample.at));
    if let (Some(cpu), Some(since)) = (busy, cpu_busy_since)
        && cpu_busy_too_long(cpu_busy_since, sample.at, thresholds)
    {
        reasons.push(NodeReason::CpuBusy {
            percent: format!("{cpu:.0}"),
            seconds: (sample.at - since) / 1_000,
            max_percent: percent(thresholds.cpu_busy_percent),
            for_seconds: thresholds.cpu_busy_for_ms / 1_000,
        });
    }
    if let Some(memory) = sample.memory
        && memory.free_percent() < thresholds.memory_free_min_percent
    {
        reasons.push(NodeReason::MemoryLow {
            free_percent: floor_percent(memory.free_percent()).to_string(),
            min_percent: percent(thresholds.memory_free_min_percent),
        });
    }
    for disk in &sample.disks {
        if let Some(space) = disk.space
            && space.free_percent() < thresholds.disk_free_min_percent
        {
            reasons.push(NodeReason::DiskLow {
                path: disk.path.clone(),
                free_percent: floor_percent(space.free_percent()).to_string(),
                min_percent: percent(thresholds.disk_free_min_percent),
            });
        }
    }
    NodeWatch {
        status: if reasons.is_empty() {
            NodeStatus::Ok
        } else {
            NodeStatus::Low
        },
        reasons,
        cpu_busy_since,
        reported: true,
    }
}

/// Whether a CPU busy since `since` (see [`NodeWatch::cpu_busy_since`]) has been busy for the
/// threshold's time at `at`: the CPU part of being low.
pub fn cpu_busy_too_long(since: Option<Millis>, at: Millis, thresholds: &Thresholds) -> bool {
    since.is_some_and(|since| at - since >= thresholds.cpu_busy_for_ms)
}

/// A threshold as people write it: `90`, `12.5`.
fn percent(value: f64) -> String {
    let text = format!("{value:.1}");
    text.trim_end_matches(".0").to_string()
}

/// A free share, rounded down so it never reads as the threshold it is below.
fn floor_percent(value: f64) -> String {
    if value < 1.0 && value > 0.0 {
        format!("{:.1}", (value * 10.0).floor() / 10.0)
    } else {
        format!("{}", value.floor() as i64)
    }
}

/// The event a change of judgement records, if any: crossing into low, recovering from low
/// (or from silence), falling silent. A first report that is fine records nothing.
pub fn transition(previous: &NodeWatch, next: &NodeWatch) -> Option<PlatformEventKind> {
    use NodeStatus::{Low, Ok, Unknown};
    match (previous.status, next.status) {
        (a, b) if a == b => None,
        (_, Low) => Some(PlatformEventKind::NodeLow),
        (Low, Ok) => Some(PlatformEventKind::NodeRecovered),
        (Unknown, Ok) => previous
            .reported
            .then_some(PlatformEventKind::NodeRecovered),
        (_, Unknown) => Some(PlatformEventKind::NodeUnknown),
        _ => None,
    }
}

/// Whether the cluster needs another node: it has nodes and every one is low. Unknown nodes
/// are not low (nothing says they are full), so they keep this false.
pub fn needs_another_node<'a>(statuses: impl IntoIterator<Item = &'a NodeStatus>) -> bool {
    let mut any = false;
    for status in statuses {
        if *status != NodeStatus::Low {
            return false;
        }
        any = true;
    }
    any
}

/// The sentence Berth says when every node is low.
pub const NEEDS_ANOTHER_NODE: &str =
    "every node is low on CPU, memory or disk: the cluster needs another node";

/// What happened to a node or to the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlatformEventKind {
    /// A node crossed a threshold (the reasons say which).
    NodeLow,
    /// A node is within every threshold again, or reports again after silence.
    NodeRecovered,
    /// A node stopped reporting.
    NodeUnknown,
    /// Every node is low: the cluster needs another node.
    ClusterNeedsNode,
    /// Not every node is low any more.
    ClusterHasRoom,
}

/// Every platform event kind, in declaration order.
pub const ALL_PLATFORM_EVENT_KINDS: [PlatformEventKind; 5] = [
    PlatformEventKind::NodeLow,
    PlatformEventKind::NodeRecovered,
    PlatformEventKind::NodeUnknown,
    PlatformEventKind::ClusterNeedsNode,
    PlatformEventKind::ClusterHasRoom,
];

impl PlatformEventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PlatformEventKind::NodeLow => "node_low",
            PlatformEventKind::NodeRecovered => "node_recovered",
            PlatformEventKind::NodeUnknown => "node_unknown",
            PlatformEventKind::ClusterNeedsNode => "cluster_needs_node",
            PlatformEventKind::ClusterHasRoom => "cluster_has_room",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        ALL_PLATFORM_EVENT_KINDS
            .iter()
            .copied()
            .find(|k| k.as_str() == s)
    }

    /// Whether the event reports something going wrong.
    pub fn is_warning(self) -> bool {
        matches!(
            self,
            PlatformEventKind::NodeLow
                | PlatformEventKind::NodeUnknown
                | PlatformEventKind::ClusterNeedsNode
        )
    }
}

/// The subject of the cluster's own events.
pub const CLUSTER_SUBJECT: &str = "cluster";

/// The subject of a node's events: `node/<name>`.
pub fn node_subject(node: &str) -> String {
    format!("node/{node}")
}

/// An event about the platform itself rather than an app: a node's or the cluster's. Stored
/// apart from app events, so no app timeline (and no team) ever sees it; admins read them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlatformEvent {
    /// Assigned by the store (increasing); 0 before it is stored.
    pub id: i64,
    /// `node/<name>` or `cluster` (see [`node_subject`], [`CLUSTER_SUBJECT`]).
    pub subject: String,
    pub at: Millis,
    pub kind: PlatformEventKind,
    /// The English sentence (logs, the CLI).
    pub message: String,
    /// What the message says, as values (`node`, `reasons`), for clients in other languages.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, String>,
}

impl PlatformEvent {
    pub fn new(
        subject: impl Into<String>,
        at: Millis,
        kind: PlatformEventKind,
        message: impl Into<String>,
    ) -> Self {
        PlatformEvent {
            id: 0,
            subject: subject.into(),
            at,
            kind,
            message: message.into(),
            params: BTreeMap::new(),
        }
    }

    /// Adds a parameter of the message.
    pub fn param(mut self, key: &str, value: impl ToString) -> Self {
        self.params.insert(key.into(), value.to_string());
        self
    }

    /// The event recording `kind` for `node`, judged `watch`.
    pub fn for_node(node: &str, at: Millis, kind: PlatformEventKind, watch: &NodeWatch) -> Self {
        let reasons = watch
            .reasons
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        let message = match kind {
            PlatformEventKind::NodeLow => format!("node {node} is low: {reasons}"),
            PlatformEventKind::NodeRecovered => {
                format!("node {node} is within its thresholds again")
            }
            PlatformEventKind::NodeUnknown => format!("node {node} stopped reporting: {reasons}"),
            PlatformEventKind::ClusterNeedsNode | PlatformEventKind::ClusterHasRoom => {
                format!("node {node}: {}", kind.as_str())
            }
        };
        PlatformEvent::new(node_subject(node), at, kind, message)
            .param("node", node)
            .param("reasons", reasons)
            .param("reason_details", reason_details(&watch.reasons))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;
    const T: Millis = 1_700_000_000_000;

    fn sample(
        at: Millis,
        cpu: Option<f64>,
        memory_free: u64,
        disk_free: Option<u64>,
    ) -> NodeSample {
        NodeSample {
            at,
            cpus: 4,
            cpu_percent: cpu,
            memory: Some(Space {
                total_bytes: 100 * GIB,
                free_bytes: memory_free * GIB,
            }),
            disks: vec![
                DiskSample {
                    role: DiskRole::EngineDataRoot,
                    path: "/var/lib/docker".into(),
                    space: disk_free.map(|free| Space {
                        total_bytes: 100 * GIB,
                        free_bytes: free * GIB,
                    }),
                },
                DiskSample {
                    role: DiskRole::BerthDataDir,
                    path: "/srv/berth-data".into(),
                    space: Some(Space {
                        total_bytes: 100 * GIB,
                        free_bytes: 50 * GIB,
                    }),
                },
            ],
        }
    }

    fn watch(status: NodeStatus, cpu_busy_since: Option<Millis>) -> NodeWatch {
        NodeWatch {
            status,
            reasons: Vec::new(),
            cpu_busy_since,
            reported: status != NodeStatus::Unknown,
        }
    }

    #[test]
    fn thresholds_make_a_node_low_and_say_why() {
        let th = Thresholds::default();
        let ok = watch(NodeStatus::Ok, None);
        // (name, previous, sample, now, want status, want reasons, want busy since)
        let cases: Vec<(
            &str,
            NodeWatch,
            Option<NodeSample>,
            Millis,
            NodeStatus,
            Vec<&str>,
            Option<Millis>,
        )> = vec![
            (
                "all fine",
                ok.clone(),
                Some(sample(T, Some(20.0), 50, Some(50))),
                T,
                NodeStatus::Ok,
                vec![],
                None,
            ),
            (
                "never reported",
                NodeWatch::default(),
                None,
                T,
                NodeStatus::Unknown,
                vec!["no sample yet"],
                None,
            ),
            (
                "silent for 3 intervals",
                ok.clone(),
                Some(sample(T, Some(20.0), 50, Some(50))),
                T + 16_000,
                NodeStatus::Unknown,
                vec!["no sample for 16 s (expected every few seconds)"],
                None,
            ),
            (
                "just within the silence limit",
                ok.clone(),
                Some(sample(T, Some(20.0), 50, Some(50))),
                T + 15_000,
                NodeStatus::Ok,
                vec![],
                None,
            ),
            (
                "disk below 10 % free",
                ok.clone(),
                Some(sample(T, Some(20.0), 50, Some(4))),
                T,
                NodeStatus::Low,
                vec!["disk /var/lib/docker 4 % free (threshold 10 %)"],
                None,
            ),
            (
                "disk at exactly 10 % is fine",
                ok.clone(),
                Some(sample(T, None, 50, Some(10))),
                T,
                NodeStatus::Ok,
                vec![],
                None,
            ),
            (
                "unmeasurable disk is not low",
                ok.clone(),
                Some(sample(T, None, 50, None)),
                T,
                NodeStatus::Ok,
                vec![],
                None,
            ),
            (
                "memory below 10 % free",
                ok.clone(),
                Some(sample(T, Some(20.0), 9, Some(50))),
                T,
                NodeStatus::Low,
                vec!["memory 9 % free (threshold 10 %)"],
                None,
            ),
            (
                "busy CPU starts the clock, not low yet",
                ok.clone(),
                Some(sample(T, Some(95.0), 50, Some(50))),
                T,
                NodeStatus::Ok,
                vec![],
                Some(T),
            ),
            (
                "busy CPU for 59 s is still fine",
                watch(NodeStatus::Ok, Some(T)),
                Some(sample(T + 59_000, Some(95.0), 50, Some(50))),
                T + 59_000,
                NodeStatus::Ok,
                vec![],
                Some(T),
            ),
            (
                "busy CPU for a minute is low",
                watch(NodeStatus::Ok, Some(T)),
                Some(sample(T + 60_000, Some(95.0), 50, Some(50))),
                T + 60_000,
                NodeStatus::Low,
                vec!["CPU 95 % busy for 60 s (threshold 90 % for 60 s)"],
                Some(T),
            ),
            (
                "a calm sample resets the CPU clock",
                watch(NodeStatus::Low, Some(T)),
                Some(sample(T + 65_000, Some(50.0), 50, Some(50))),
                T + 65_000,
                NodeStatus::Ok,
                vec![],
                None,
            ),
            (
                "exactly 90 % is not above",
                ok.clone(),
                Some(sample(T, Some(90.0), 50, Some(50))),
                T,
                NodeStatus::Ok,
                vec![],
                None,
            ),
            (
                "several reasons, in order",
                watch(NodeStatus::Ok, Some(T)),
                Some(sample(T + 60_000, Some(99.0), 1, Some(0))),
                T + 60_000,
                NodeStatus::Low,
                vec![
                    "CPU 99 % busy for 60 s (threshold 90 % for 60 s)",
                    "memory 1 % free (threshold 10 %)",
                    "disk /var/lib/docker 0 % free (threshold 10 %)",
                ],
                Some(T),
            ),
            (
                "silence forgets the CPU clock",
                watch(NodeStatus::Low, Some(T)),
                Some(sample(T, Some(99.0), 50, Some(50))),
                T + 60_000,
                NodeStatus::Unknown,
                vec!["no sample for 60 s (expected every few seconds)"],
                None,
            ),
        ];
        for (name, previous, latest, now, status, reasons, since) in cases {
            let got = assess(&previous, latest.as_ref(), &th, now);
            assert_eq!(got.status, status, "{name}");
            let sentences: Vec<String> = got.reasons.iter().map(ToString::to_string).collect();
            assert_eq!(sentences, reasons, "{name}");
            assert_eq!(got.cpu_busy_since, since, "{name}");
        }
    }

    #[test]
    fn transitions_record_crossing_recovering_and_silence() {
        use NodeStatus::{Low, Ok, Unknown};
        let w = |status, reported| NodeWatch {
            status,
            reasons: Vec::new(),
            cpu_busy_since: None,
            reported,
        };
        // (previous, next, want)
        let cases = [
            (w(Unknown, false), w(Ok, true), None),
            (
                w(Unknown, false),
                w(Low, true),
                Some(PlatformEventKind::NodeLow),
            ),
            (w(Ok, true), w(Low, true), Some(PlatformEventKind::NodeLow)),
            (w(Low, true), w(Low, true), None),
            (
                w(Low, true),
                w(Ok, true),
                Some(PlatformEventKind::NodeRecovered),
            ),
            (
                w(Ok, true),
                w(Unknown, true),
                Some(PlatformEventKind::NodeUnknown),
            ),
            (
                w(Low, true),
                w(Unknown, true),
                Some(PlatformEventKind::NodeUnknown),
            ),
            (
                w(Unknown, true),
                w(Ok, true),
                Some(PlatformEventKind::NodeRecovered),
            ),
            (
                w(Unknown, true),
                w(Low, true),
                Some(PlatformEventKind::NodeLow),
            ),
            (w(Ok, true), w(Ok, true), None),
        ];
        for (previous, next, want) in cases {
            assert_eq!(
                transition(&previous, &next),
                want,
                "{:?} → {:?}",
                previous.status,
                next.status
            );
        }
    }

    #[test]
    fn a_resumed_watch_records_only_what_changed_since_the_last_event() {
        use PlatformEventKind::*;
        let th = Thresholds::default();
        let fine = sample(T, None, 50, Some(50));
        let full = sample(T, None, 50, Some(1));
        // (last recorded event, sample, want the event recorded now)
        let cases = [
            (None, &fine, None),
            (None, &full, Some(NodeLow)),
            (Some(NodeLow), &full, None),
            (Some(NodeLow), &fine, Some(NodeRecovered)),
            (Some(NodeRecovered), &fine, None),
            (Some(NodeRecovered), &full, Some(NodeLow)),
            (Some(NodeUnknown), &fine, Some(NodeRecovered)),
            (Some(NodeUnknown), &full, Some(NodeLow)),
        ];
        for (last, latest, want) in cases {
            let previous = NodeWatch::resumed(last);
            let next = assess(&previous, Some(latest), &th, T);
            assert_eq!(transition(&previous, &next), want, "{last:?}");
        }
    }

    #[test]
    fn the_cluster_needs_a_node_only_when_every_node_is_low() {
        use NodeStatus::{Low, Ok, Unknown};
        let cases: [(&[NodeStatus], bool); 6] = [
            (&[], false),
            (&[Low], true),
            (&[Low, Low], true),
            (&[Low, Ok], false),
            (&[Low, Unknown], false),
            (&[Unknown], false),
        ];
        for (statuses, want) in cases {
            assert_eq!(needs_another_node(statuses), want, "{statuses:?}");
        }
    }

    #[test]
    fn labels_are_checked_and_changed() {
        let labels = |pairs: &[(&str, &str)]| -> NodeLabels {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        // (labels, want the first bad field)
        let long = "a".repeat(64);
        let long_field = format!("labels.{long}");
        let cases: Vec<(NodeLabels, Option<&str>)> = vec![
            (labels(&[("datacenter", "dc1"), ("zone", "a")]), None),
            (labels(&[("rack", ""), ("gpu.kind", "A100_80GB-x")]), None),
            (labels(&[("Zone", "a")]), Some("labels.Zone")),
            (labels(&[("-zone", "a")]), Some("labels.-zone")),
            (labels(&[("zone.", "a")]), Some("labels.zone.")),
            (labels(&[("", "a")]), Some("labels.")),
            (labels(&[("zone", "a b")]), Some("labels.zone")),
            (labels(&[("zone", "a=b")]), Some("labels.zone")),
            (labels(&[(&long, "a")]), Some(long_field.as_str())),
            (labels(&[("zone", &long)]), Some("labels.zone")),
            (
                labels(&[("berth.drain", "true")]),
                Some("labels.berth.drain"),
            ),
            (labels(&[("berthold", "x")]), None),
        ];
        for (input, want) in cases {
            let got = validate_labels(&input)
                .err()
                .and_then(|e| e.first().map(|f| f.field.clone()));
            assert_eq!(got.as_deref(), want, "{input:?}");
        }
        let many: NodeLabels = (0..33).map(|i| (format!("k{i}"), String::new())).collect();
        assert_eq!(
            validate_labels(&many).unwrap_err().first().unwrap().field,
            "labels"
        );

        // (input, want)
        let changes = [
            ("zone=a", Ok(LabelChange::Set("zone".into(), "a".into()))),
            ("zone=", Ok(LabelChange::Set("zone".into(), String::new()))),
            ("a=b=c", Ok(LabelChange::Set("a".into(), "b=c".into()))),
            ("zone-", Ok(LabelChange::Remove("zone".into()))),
            ("zone", Err(())),
            ("-", Err(())),
        ];
        for (input, want) in changes {
            assert_eq!(LabelChange::parse(input).map_err(|_| ()), want, "{input}");
        }
        let mut current = labels(&[("zone", "a"), ("datacenter", "dc1")]);
        LabelChange::parse("zone-").unwrap().apply(&mut current);
        LabelChange::parse("rack=r7").unwrap().apply(&mut current);
        assert_eq!(current, labels(&[("datacenter", "dc1"), ("rack", "r7")]));
    }

    #[test]
    fn platform_event_kinds_round_trip() {
        for kind in ALL_PLATFORM_EVENT_KINDS {
            assert_eq!(PlatformEventKind::parse(kind.as_str()), Some(kind));
            assert_eq!(
                serde_json::to_value(kind).unwrap(),
                serde_json::Value::String(kind.as_str().into())
            );
        }
        assert_eq!(PlatformEventKind::parse("nope"), None);
    }

    #[test]
    fn reasons_carry_their_code_and_values_for_other_languages() {
        let reasons = vec![
            NodeReason::DiskLow {
                path: "/var/lib/docker".into(),
                free_percent: "3".into(),
                min_percent: "10".into(),
            },
            NodeReason::Silent { seconds: 20 },
        ];
        assert_eq!(
            reasons[0].to_string(),
            "disk /var/lib/docker 3 % free (threshold 10 %)"
        );
        let details: serde_json::Value =
            serde_json::from_str(&reason_details(&reasons)).expect("JSON");
        assert_eq!(
            details,
            serde_json::json!([
                {"code": "disk_low", "path": "/var/lib/docker", "free_percent": "3", "min_percent": "10"},
                {"code": "silent", "seconds": "20"},
            ])
        );
        let event = PlatformEvent::for_node(
            "n1",
            T,
            PlatformEventKind::NodeLow,
            &NodeWatch {
                status: NodeStatus::Low,
                reasons,
                ..NodeWatch::default()
            },
        );
        assert_eq!(
            event.message,
            "node n1 is low: disk /var/lib/docker 3 % free (threshold 10 %); no sample for 20 s \
             (expected every few seconds)"
        );
        assert!(event.params["reason_details"].contains("\"disk_low\""));
    }
}
