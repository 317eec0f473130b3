//! What a user asks for: the app spec, split into the revisioned template and the rest.
//!
//! A [`Template`] is everything that determines what runs inside an instance; changing it
//! creates a new revision. Replicas, rollout strategy and dependencies live beside it in
//! [`AppSpec`] and change without a new revision.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::routes::AppRoutes;
use crate::volume::VolumeMount;

/// How a probe checks an instance.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProbeKind {
    /// `GET path`: a 2xx or 3xx status within the timeout passes.
    #[default]
    Http,
    /// A TCP connection to the port, opened within the timeout, passes (for services that do
    /// not speak HTTP).
    Tcp,
}

/// A probe Berth runs from the host against an instance's address: over HTTP, or a plain TCP
/// connect. Revisions stored before probes had a kind read as HTTP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Probe {
    pub kind: ProbeKind,
    /// Request path of an HTTP probe, e.g. `/healthz`; a TCP probe ignores it.
    pub path: String,
    /// Port to probe; defaults to the template's port.
    pub port: Option<u16>,
    /// Time between two probes.
    pub period_ms: u64,
    /// A probe that takes longer fails.
    pub timeout_ms: u64,
    /// Consecutive failures that flip the state to failing.
    pub failure_threshold: u32,
    /// Consecutive successes that flip the state to passing.
    pub success_threshold: u32,
    /// Probing starts this long after the container started.
    pub initial_delay_ms: u64,
}

impl Default for Probe {
    fn default() -> Self {
        Probe {
            kind: ProbeKind::Http,
            path: "/healthz".into(),
            port: None,
            period_ms: 1_000,
            timeout_ms: 1_000,
            failure_threshold: 3,
            success_threshold: 1,
            initial_delay_ms: 0,
        }
    }
}

impl Probe {
    /// A probe on `path` with the defaults for everything else.
    pub fn http(path: impl Into<String>) -> Self {
        Probe {
            path: path.into(),
            ..Probe::default()
        }
    }

    /// A TCP probe on the template's port with the defaults for everything else.
    pub fn tcp() -> Self {
        Probe {
            kind: ProbeKind::Tcp,
            ..Probe::default()
        }
    }
}

/// Resource limits of one instance.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Resources {
    /// CPU limit in millicores (1000 = one core). `None`: unlimited.
    pub cpu_millis: Option<u64>,
    /// Memory limit in bytes. `None`: unlimited.
    pub memory_bytes: Option<u64>,
}

/// How instances of a new revision replace the old ones.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RolloutKind {
    /// New instances start beside the old ones within the surge and unavailability budget;
    /// no downtime.
    #[default]
    Rolling,
    /// Every old instance stops first, and the new revision starts only once none is left
    /// (for apps whose data cannot have two writers): the app is down in between.
    Recreate,
}

impl RolloutKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RolloutKind::Rolling => "rolling",
            RolloutKind::Recreate => "recreate",
        }
    }
}

/// How a new revision replaces the old one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RolloutStrategy {
    /// Rolling (the default) or recreate.
    pub kind: RolloutKind,
    /// Instances allowed above `replicas` during a rollout.
    pub max_surge: u32,
    /// Instances allowed below `replicas` (counting only available ones) during a rollout.
    pub max_unavailable: u32,
    /// A ready instance counts as available only after staying ready this long.
    pub min_ready_ms: u64,
    /// A rollout that makes no progress for this long fails and is rolled back.
    pub progress_deadline_ms: u64,
    /// Try a new revision on one extra instance with part of the traffic first; `None`: plain
    /// rolling upgrades.
    pub canary: Option<crate::canary::Canary>,
}

impl Default for RolloutStrategy {
    fn default() -> Self {
        RolloutStrategy {
            kind: RolloutKind::Rolling,
            max_surge: 1,
            max_unavailable: 0,
            min_ready_ms: 0,
            progress_deadline_ms: 60_000,
            canary: None,
        }
    }
}

/// The revisioned part of an app: everything that determines what runs in an instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Template {
    pub image: String,
    /// Replaces the image's entrypoint when not empty.
    pub command: Vec<String>,
    /// Replaces the image's cmd when not empty.
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
    /// The port the app listens on inside the container.
    pub port: u16,
    pub resources: Resources,
    /// Decides whether an instance receives traffic and counts as ready.
    pub readiness: Option<Probe>,
    /// Decides whether an instance is alive; failing instances are replaced.
    pub liveness: Option<Probe>,
    /// Time between SIGTERM and SIGKILL when an instance is stopped.
    pub stop_grace_ms: u64,
    /// Labels put on every instance container (beside Berth's own).
    pub labels: BTreeMap<String, String>,
    /// Volumes of the app's team mounted in every instance (see [`crate::volume`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<VolumeMount>,
    /// Secrets of the app's team given to every instance, with the versions this revision
    /// uses (see [`crate::team_secret`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<crate::team_secret::SecretRef>,
    /// Keys of `env` whose values readers who cannot deploy (viewers) see as [`REDACTED`].
    #[serde(skip_serializing_if = "std::collections::BTreeSet::is_empty")]
    pub sensitive_env: std::collections::BTreeSet<String>,
    /// The node labels an instance's node must have (see [`crate::placement`]); empty: any
    /// node.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub node_constraints: Vec<crate::placement::NodeConstraint>,
}

/// What readers who cannot deploy see instead of a sensitive variable's value.
pub const REDACTED: &str = "<redacted>";

impl Default for Template {
    fn default() -> Self {
        Template {
            image: String::new(),
            command: Vec::new(),
            args: Vec::new(),
            env: BTreeMap::new(),
            port: 8080,
            resources: Resources::default(),
            readiness: None,
            liveness: None,
            stop_grace_ms: 10_000,
            labels: BTreeMap::new(),
            volumes: Vec::new(),
            secrets: Vec::new(),
            sensitive_env: Default::default(),
            node_constraints: Vec::new(),
        }
    }
}

impl Template {
    /// The template as readers who cannot deploy see it: sensitive variables' values
    /// replaced by [`REDACTED`].
    pub fn redacted(&self) -> Template {
        self.redacted_also(&Default::default())
    }

    /// [`Self::redacted`], also redacting the variables in `also` (those the app marks
    /// sensitive now, for an older revision that did not).
    pub fn redacted_also(&self, also: &std::collections::BTreeSet<String>) -> Template {
        let mut shown = self.clone();
        for key in self.sensitive_env.iter().chain(also) {
            if let Some(value) = shown.env.get_mut(key) {
                *value = REDACTED.to_string();
            }
        }
        shown
    }

    /// The port a probe talks to.
    pub fn probe_port(&self, probe: &Probe) -> u16 {
        probe.port.unwrap_or(self.port)
    }
}

/// Everything a user specifies about an app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AppSpec {
    pub template: Template,
    pub replicas: u32,
    pub strategy: RolloutStrategy,
    /// Names of the apps this one talks to (shown in the topology, reachable by name).
    pub dependencies: Vec<String>,
    /// Custom domains, or internal (no external route). Not revisioned: changing them moves
    /// traffic, it starts no instance.
    pub routes: AppRoutes,
    /// Scale to 0 after this many seconds without a request (see [`crate::idle`]); not
    /// revisioned.
    pub idle_timeout_secs: Option<u32>,
}

impl Default for AppSpec {
    fn default() -> Self {
        AppSpec {
            template: Template::default(),
            replicas: 1,
            strategy: RolloutStrategy::default(),
            dependencies: Vec::new(),
            routes: AppRoutes::default(),
            idle_timeout_secs: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_stored_before_probe_kinds_still_load() {
        // A revision's template as the store kept it before probes had a kind.
        let old = r#"{"image":"web:1","command":[],"args":[],"env":{},"port":8080,
            "resources":{"cpu_millis":null,"memory_bytes":null},
            "readiness":{"path":"/ready","port":9091,"period_ms":2000,"timeout_ms":500,
                "failure_threshold":5,"success_threshold":2,"initial_delay_ms":3000},
            "liveness":{"path":"/healthz"},
            "stop_grace_ms":10000,"labels":{}}"#;
        let template: Template = serde_json::from_str(old).unwrap();
        assert_eq!(
            template.readiness,
            Some(Probe {
                kind: ProbeKind::Http,
                path: "/ready".into(),
                port: Some(9091),
                period_ms: 2_000,
                timeout_ms: 500,
                failure_threshold: 5,
                success_threshold: 2,
                initial_delay_ms: 3_000,
            })
        );
        assert_eq!(template.liveness, Some(Probe::http("/healthz")));
    }

    #[test]
    fn probe_kinds_round_trip() {
        for probe in [Probe::http("/up"), Probe::tcp()] {
            let json = serde_json::to_value(&probe).unwrap();
            assert_eq!(
                json["kind"],
                if probe.kind == ProbeKind::Tcp {
                    "tcp"
                } else {
                    "http"
                }
            );
            assert_eq!(serde_json::from_value::<Probe>(json).unwrap(), probe);
        }
        assert!(serde_json::from_str::<Probe>(r#"{"kind":"udp"}"#).is_err());
    }
}
