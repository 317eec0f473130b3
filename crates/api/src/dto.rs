//! Wire types of the REST API (JSON), separate from domain types, with conversions.

use std::collections::BTreeMap;

use berth_controller::{InstanceStatus, InstanceUsage};
use berth_core::health::{Liveness, Readiness};
use berth_core::planner::InstancePhase;
use berth_core::team_secret::SecretRef;
use berth_core::volume::{VolumeMount, VolumeScope};
use berth_core::{
    App, Event, Millis, Probe, ProbeKind, Revision, Rollout, RolloutKind, RolloutStrategy, Template,
};
use berth_operations::routes::AppAddress;
use berth_router::{AppCounters, LATENCY_BUCKETS_MS};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Formats unix milliseconds as RFC 3339 (UTC, millisecond precision).
pub fn timestamp(ms: Millis) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(time).to_string()
}

/// How a probe checks an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProbeKindDto {
    /// `GET path` on the port: a 2xx or 3xx status within the timeout passes.
    Http,
    /// A TCP connection to the port, accepted within the timeout, passes (no request is sent).
    Tcp,
}

impl From<ProbeKind> for ProbeKindDto {
    fn from(kind: ProbeKind) -> Self {
        match kind {
            ProbeKind::Http => ProbeKindDto::Http,
            ProbeKind::Tcp => ProbeKindDto::Tcp,
        }
    }
}

impl From<ProbeKindDto> for ProbeKind {
    fn from(kind: ProbeKindDto) -> Self {
        match kind {
            ProbeKindDto::Http => ProbeKind::Http,
            ProbeKindDto::Tcp => ProbeKind::Tcp,
        }
    }
}

/// How a new revision replaces the old one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RolloutKindDto {
    /// New instances start beside the old ones within `max_surge`/`max_unavailable`: no
    /// downtime.
    Rolling,
    /// Every old instance stops first; the new revision starts once none is left. For apps
    /// whose data cannot have two writers; the app is unavailable in between.
    Recreate,
}

impl From<RolloutKind> for RolloutKindDto {
    fn from(kind: RolloutKind) -> Self {
        match kind {
            RolloutKind::Rolling => RolloutKindDto::Rolling,
            RolloutKind::Recreate => RolloutKindDto::Recreate,
        }
    }
}

impl From<RolloutKindDto> for RolloutKind {
    fn from(kind: RolloutKindDto) -> Self {
        match kind {
            RolloutKindDto::Rolling => RolloutKind::Rolling,
            RolloutKindDto::Recreate => RolloutKind::Recreate,
        }
    }
}

/// A readiness or liveness probe: an HTTP request or a TCP connect. Omitted fields take their
/// defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProbeDto {
    /// `http` (default) or `tcp`.
    pub kind: Option<ProbeKindDto>,
    /// Request path of an HTTP probe, starting with `/`; default `/healthz`. A TCP probe
    /// ignores it.
    pub path: Option<String>,
    /// Port (1 to 65535); default the app's port.
    pub port: Option<u16>,
    /// Time between two probes, 100 to 3600000; default 1000.
    pub period_ms: Option<u64>,
    /// A probe that takes longer fails; at least 50 and at most `period_ms`; default 1000, or
    /// `period_ms` when that is shorter.
    pub timeout_ms: Option<u64>,
    /// Consecutive failures that take the instance out of service (readiness) or get it
    /// replaced (liveness), 1 to 100; default 3.
    pub failure_threshold: Option<u32>,
    /// Consecutive successes that make the instance ready again, 1 to 100; default 1. A
    /// liveness probe ignores it: one success counts as alive again.
    pub success_threshold: Option<u32>,
    /// Probing starts (readiness) or failures count (liveness) this long after the instance
    /// started, at most 3600000; default 0.
    pub initial_delay_ms: Option<u64>,
}

impl ProbeDto {
    pub fn into_probe(self) -> Probe {
        let d = Probe::default();
        let period_ms = self.period_ms.unwrap_or(d.period_ms);
        Probe {
            kind: self.kind.map_or(d.kind, ProbeKind::from),
            path: self.path.unwrap_or(d.path),
            port: self.port.or(d.port),
            period_ms,
            // A probe must end before the next one starts.
            timeout_ms: self.timeout_ms.unwrap_or(d.timeout_ms.min(period_ms)),
            failure_threshold: self.failure_threshold.unwrap_or(d.failure_threshold),
            success_threshold: self.success_threshold.unwrap_or(d.success_threshold),
            initial_delay_ms: self.initial_delay_ms.unwrap_or(d.initial_delay_ms),
        }
    }

    pub fn from_probe(p: &Probe) -> Self {
        ProbeDto {
            kind: Some(p.kind.into()),
            path: Some(p.path.clone()),
            port: p.port,
            period_ms: Some(p.period_ms),
            timeout_ms: Some(p.timeout_ms),
            failure_threshold: Some(p.failure_threshold),
            success_threshold: Some(p.success_threshold),
            initial_delay_ms: Some(p.initial_delay_ms),
        }
    }

    /// The fields this probe sets, the others taken from `base` (a client changing a few
    /// settings of an app's current probe). A new period shorter than the base's timeout
    /// drops that timeout, so the default for the new period applies.
    pub fn or(self, base: ProbeDto) -> ProbeDto {
        let base_timeout = base
            .timeout_ms
            .filter(|timeout| self.period_ms.is_none_or(|period| *timeout <= period));
        ProbeDto {
            kind: self.kind.or(base.kind),
            path: self.path.or(base.path),
            port: self.port.or(base.port),
            period_ms: self.period_ms.or(base.period_ms),
            timeout_ms: self.timeout_ms.or(base_timeout),
            failure_threshold: self.failure_threshold.or(base.failure_threshold),
            success_threshold: self.success_threshold.or(base.success_threshold),
            initial_delay_ms: self.initial_delay_ms.or(base.initial_delay_ms),
        }
    }
}

/// Rollout strategy. Omitted fields keep their current (or default) values.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StrategyDto {
    /// `rolling` (default) or `recreate`.
    pub kind: Option<RolloutKindDto>,
    /// Instances allowed above `replicas` during a rollout; default 1.
    pub max_surge: Option<u32>,
    /// Available instances allowed below `replicas` during a rollout; default 0.
    pub max_unavailable: Option<u32>,
    /// How long a ready instance must stay ready before it counts; default 0.
    pub min_ready_ms: Option<u64>,
    /// A rollout without progress for this long fails and rolls back; default 60000.
    pub progress_deadline_ms: Option<u64>,
    /// Try each new revision as a canary first: one extra instance takes part of the traffic
    /// for a while, and the rollout goes on only when its error rate is no worse than the old
    /// revision's (else it rolls back). `null` turns canaries off; omitted keeps the setting.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<CanaryDto>, nullable)]
    pub canary: Option<Option<CanaryDto>>,
}

/// A field that is present (even `null`) is `Some`: `Some(None)` clears a setting, a missing
/// field (`None`, through `default`) keeps it.
fn present<'de, T, D>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// How a new revision is tried as a canary.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CanaryDto {
    /// Share of the app's requests the canary takes, 1–99 (%); ignored with `header`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight_percent: Option<u8>,
    /// Only requests carrying this header (and value) reach the canary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<CanaryHeaderDto>,
    /// How long the canary takes traffic before its verdict, 5 s to 24 h.
    pub duration_seconds: u64,
}

/// A request header that sends requests to the canary.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CanaryHeaderDto {
    /// Header name (compared without case).
    pub name: String,
    pub value: String,
}

impl CanaryDto {
    fn to_canary(&self) -> berth_core::canary::Canary {
        berth_core::canary::Canary {
            weight_percent: self.weight_percent.unwrap_or(0),
            header: self
                .header
                .as_ref()
                .map(|header| berth_core::canary::CanaryHeader {
                    name: header.name.to_ascii_lowercase(),
                    value: header.value.clone(),
                }),
            duration_ms: self.duration_seconds.saturating_mul(1000),
        }
    }

    fn from_canary(canary: &berth_core::canary::Canary) -> CanaryDto {
        CanaryDto {
            weight_percent: canary.header.is_none().then_some(canary.weight_percent),
            header: canary.header.as_ref().map(|header| CanaryHeaderDto {
                name: header.name.clone(),
                value: header.value.clone(),
            }),
            duration_seconds: canary.duration_ms / 1000,
        }
    }
}

impl StrategyDto {
    /// The strategy change this asks for (fields left out stay as they are).
    pub fn to_change(&self) -> berth_core::change::StrategyChange {
        berth_core::change::StrategyChange {
            kind: self.kind.map(RolloutKind::from),
            max_surge: self.max_surge,
            max_unavailable: self.max_unavailable,
            min_ready_ms: self.min_ready_ms,
            progress_deadline_ms: self.progress_deadline_ms,
            canary: self
                .canary
                .as_ref()
                .map(|canary| canary.as_ref().map(CanaryDto::to_canary)),
        }
    }

    pub fn from_strategy(s: &RolloutStrategy) -> Self {
        StrategyDto {
            kind: Some(s.kind.into()),
            max_surge: Some(s.max_surge),
            max_unavailable: Some(s.max_unavailable),
            min_ready_ms: Some(s.min_ready_ms),
            progress_deadline_ms: Some(s.progress_deadline_ms),
            canary: Some(s.canary.as_ref().map(CanaryDto::from_canary)),
        }
    }
}

/// Changes to an app. Used to create one (`name` and `image` required) and to deploy
/// (every field optional; what is omitted stays as it is). A change to anything that runs in
/// an instance creates a new revision and rolls it out; replicas, strategy and dependencies
/// change without one.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AppChanges {
    /// App name (create only): lowercase letters, digits and '-', at most 40 characters.
    pub name: Option<String>,
    /// Owning team (create only); default `default`.
    pub team: Option<String>,
    pub image: Option<String>,
    /// Entrypoint override.
    pub command: Option<Vec<String>>,
    /// Arguments (cmd) override.
    pub args: Option<Vec<String>>,
    /// Environment variables to set; a `null` value removes the variable.
    #[schema(value_type = Option<BTreeMap<String, Option<String>>>)]
    pub env: Option<BTreeMap<String, Option<String>>>,
    /// Port the app listens on inside the container; default 8080.
    pub port: Option<u16>,
    /// CPU limit in millicores; 0 removes the limit.
    pub cpu_millis: Option<u64>,
    /// Memory limit in bytes; 0 removes the limit.
    pub memory_bytes: Option<u64>,
    pub replicas: Option<u32>,
    /// Shortcut: readiness and liveness probes on this path with default settings.
    pub health_path: Option<String>,
    /// The readiness probe (an instance out of it gets no traffic and does not count as
    /// ready), replacing the app's; `null` removes it. Applied after `no_health_check` and
    /// `health_path`.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<ProbeDto>, nullable)]
    pub readiness: Option<Option<ProbeDto>>,
    /// The liveness probe (an instance failing it is replaced), replacing the app's; `null`
    /// removes it. Applied after `no_health_check` and `health_path`.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<ProbeDto>, nullable)]
    pub liveness: Option<Option<ProbeDto>>,
    /// Remove both probes.
    pub no_health_check: Option<bool>,
    pub strategy: Option<StrategyDto>,
    pub stop_grace_ms: Option<u64>,
    pub dependencies: Option<Vec<String>>,
    /// The app's custom domains, replacing the ones it has (`[]` removes them all): host
    /// names with an optional path prefix, like `shop.example.com` or `shop.example.com/api`,
    /// or wildcards such as `*.shop.example.com` (every one-label name under it that no app
    /// claims exactly).
    /// Changing them moves traffic and creates no revision.
    pub domains: Option<Vec<String>>,
    /// An internal app has no external route (no default host, no domains): only apps of its
    /// team reach it, by name on the team network.
    pub internal: Option<bool>,
    /// Answer plain HTTP to the app's hosts that have a certificate with a 308 redirect to
    /// HTTPS (while the server's HTTPS listener is on).
    pub https_redirect: Option<bool>,
    /// The app's published TCP ports, replacing the ones it has (`[]` removes them all):
    /// `5432` publishes container port 5432 on a host port Berth chooses, `15432:5432` on host
    /// port 15432. TCP traffic bypasses the HTTP router. Creates no revision.
    pub tcp_ports: Option<Vec<String>>,
    /// Scale to 0 instances after this many seconds without a request through the router
    /// (10 to 2592000); the next request starts the app again and waits for it. `0` removes
    /// the idle timeout. Creates no revision.
    pub idle_timeout_seconds: Option<u32>,
    /// Container labels to set; a `null` value removes the label.
    #[schema(value_type = Option<BTreeMap<String, Option<String>>>)]
    pub labels: Option<BTreeMap<String, Option<String>>>,
    /// Volumes of the app's team to mount, replacing the app's mounts (`[]` removes them
    /// all; the volumes and their data stay). A volume is made when first mounted.
    pub volumes: Option<Vec<VolumeMountDto>>,
    /// Secrets of the app's team to give every instance, replacing the app's (`[]` removes
    /// them all): each as an environment variable (`env`) or a read-only file (`path`). The
    /// revision records each secret's current version, never its value.
    pub secrets: Option<Vec<SecretRefDto>>,
    /// Environment variables whose values viewers (who cannot deploy) see as `<redacted>`,
    /// replacing the set (`[]`: none). Each must be one of the app's variables.
    pub sensitive_env: Option<Vec<String>>,
    /// Conditions on the labels of the nodes instances run on, replacing the app's (`[]`: any
    /// node): `LABEL==VALUE` or `LABEL!=VALUE` (a node without the label meets `!=`), e.g.
    /// `disk==ssd`. Every one must hold; a change that no node meets is refused.
    pub node_constraints: Option<Vec<String>>,
    /// Why (recorded on the revision).
    pub reason: Option<String>,
}

/// A secret of the app's team given to every instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretRefDto {
    /// The secret's name within the team.
    pub name: String,
    /// The environment variable holding the value (give this or `path`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    /// The absolute path of a read-only file holding the value (give this or `env`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The version the revision uses (in answers; ignored in requests).
    #[serde(default)]
    pub version: u32,
}

impl From<&SecretRef> for SecretRefDto {
    fn from(r: &SecretRef) -> Self {
        SecretRefDto {
            name: r.name.clone(),
            env: r.env.clone(),
            path: r.path.clone(),
            version: r.version,
        }
    }
}

impl SecretRefDto {
    /// The reference asked for: its version is Berth's to set.
    pub fn to_ref(&self) -> SecretRef {
        SecretRef {
            name: self.name.clone(),
            env: self.env.clone(),
            path: self.path.clone(),
            version: 0,
        }
    }
}

/// Whether an app's instances share a volume's store or each have their own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum VolumeScopeDto {
    #[default]
    Shared,
    PerInstance,
}

impl From<VolumeScope> for VolumeScopeDto {
    fn from(scope: VolumeScope) -> Self {
        match scope {
            VolumeScope::Shared => VolumeScopeDto::Shared,
            VolumeScope::PerInstance => VolumeScopeDto::PerInstance,
        }
    }
}

impl From<VolumeScopeDto> for VolumeScope {
    fn from(scope: VolumeScopeDto) -> Self {
        match scope {
            VolumeScopeDto::Shared => VolumeScope::Shared,
            VolumeScopeDto::PerInstance => VolumeScope::PerInstance,
        }
    }
}

/// A volume of the app's team mounted in every instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VolumeMountDto {
    /// The volume's name within the team (lowercase letters, digits and '-').
    pub name: String,
    /// Where it appears in the container: an absolute path.
    pub path: String,
    /// `shared` (default: one store all instances see) or `per_instance` (a store per
    /// instance slot). A volume keeps the scope it was made with.
    #[serde(default)]
    pub scope: VolumeScopeDto,
    /// Mounted read-only.
    #[serde(default)]
    pub read_only: bool,
}

impl From<&VolumeMount> for VolumeMountDto {
    fn from(m: &VolumeMount) -> Self {
        VolumeMountDto {
            name: m.name.clone(),
            path: m.path.clone(),
            scope: m.scope.into(),
            read_only: m.read_only,
        }
    }
}

impl VolumeMountDto {
    pub fn to_mount(&self) -> VolumeMount {
        VolumeMount {
            name: self.name.clone(),
            path: self.path.clone(),
            scope: self.scope.into(),
            read_only: self.read_only,
        }
    }
}

/// Scale request.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScaleRequest {
    pub replicas: u32,
}

/// Rollback request.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    /// Revision to go back to; default the previous one.
    pub revision: Option<u32>,
    pub reason: Option<String>,
}

/// What runs in every instance of a revision.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TemplateDto {
    pub image: String,
    pub command: Vec<String>,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub port: u16,
    pub cpu_millis: Option<u64>,
    pub memory_bytes: Option<u64>,
    pub readiness: Option<ProbeDto>,
    pub liveness: Option<ProbeDto>,
    pub stop_grace_ms: u64,
    pub labels: BTreeMap<String, String>,
    pub volumes: Vec<VolumeMountDto>,
    /// The secrets instances get, with the versions this revision uses (never values).
    pub secrets: Vec<SecretRefDto>,
    /// Variables whose values viewers see as `<redacted>`.
    pub sensitive_env: Vec<String>,
    /// Conditions on the labels of the nodes instances run on (`disk==ssd`, `zone!=b`).
    pub node_constraints: Vec<String>,
}

impl From<&Template> for TemplateDto {
    fn from(t: &Template) -> Self {
        TemplateDto {
            image: t.image.clone(),
            command: t.command.clone(),
            args: t.args.clone(),
            env: t.env.clone(),
            port: t.port,
            cpu_millis: t.resources.cpu_millis,
            memory_bytes: t.resources.memory_bytes,
            readiness: t.readiness.as_ref().map(ProbeDto::from_probe),
            liveness: t.liveness.as_ref().map(ProbeDto::from_probe),
            stop_grace_ms: t.stop_grace_ms,
            labels: t.labels.clone(),
            volumes: t.volumes.iter().map(VolumeMountDto::from).collect(),
            secrets: t.secrets.iter().map(SecretRefDto::from).collect(),
            sensitive_env: t.sensitive_env.iter().cloned().collect(),
            node_constraints: t.node_constraints.iter().map(ToString::to_string).collect(),
        }
    }
}

/// The state of the app's latest rollout.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RolloutDto {
    /// Revision the instances are moved to.
    pub revision: u32,
    /// `progressing`, `complete`, `rolling_back`, `rolled_back` or `failed`.
    pub phase: String,
    /// Whether the rollout is over (`complete`, `rolled_back`, `failed`).
    pub done: bool,
    /// Whether it ended badly (`rolled_back` or `failed`).
    pub failed: bool,
    pub failed_revision: Option<u32>,
    pub message: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub desired: u32,
    /// Instances of `revision` that run.
    pub updated: u32,
    /// Instances of `revision` that are ready.
    pub ready: u32,
    /// Instances of other revisions still running.
    pub old: u32,
    /// The canary of this rollout, once it took traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanaryStateDto>,
}

/// How far a rollout's canary got.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CanaryStateDto {
    /// When it started taking traffic.
    pub started_at: String,
    /// Its verdict passed and the rollout went on (`false` while it is judged).
    pub passed: bool,
}

impl RolloutDto {
    pub fn new(rollout: &Rollout, desired: u32, instances: &[InstanceDto]) -> Self {
        let running: Vec<&InstanceDto> = instances
            .iter()
            .filter(|i| i.phase == "running" || i.phase == "starting")
            .collect();
        RolloutDto {
            revision: rollout.revision,
            phase: rollout.phase.as_str().to_string(),
            done: !rollout.phase.in_progress(),
            failed: rollout.phase.is_failure(),
            failed_revision: rollout.failed_revision,
            message: rollout.message.clone(),
            started_at: timestamp(rollout.started_at),
            finished_at: rollout.finished_at.map(timestamp),
            desired,
            updated: running
                .iter()
                .filter(|i| i.revision == rollout.revision)
                .count() as u32,
            ready: running
                .iter()
                .filter(|i| i.revision == rollout.revision && i.ready)
                .count() as u32,
            old: running
                .iter()
                .filter(|i| i.revision != rollout.revision)
                .count() as u32,
            canary: rollout.canary.map(|canary| CanaryStateDto {
                started_at: timestamp(canary.started_at),
                passed: canary.passed,
            }),
        }
    }
}

/// One running (or exited) instance.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct InstanceDto {
    /// `<app>-<ordinal>`.
    pub name: String,
    pub container_id: String,
    pub revision: u32,
    /// `starting`, `running`, `exited` or `terminating`.
    pub phase: String,
    /// `ip:port` on the Berth network, when running.
    pub address: Option<String>,
    pub ready: bool,
    /// `unknown`, `ready` or `not_ready`.
    pub readiness: String,
    /// `healthy` or `failing`.
    pub liveness: String,
    pub restarts: u32,
    pub exit_code: Option<i64>,
    pub created_at: String,
    pub started_at: Option<String>,
    pub last_probe_failure: Option<String>,
    pub node: String,
    /// When a crash loop holds the replacement back: when it will start.
    pub backoff_until: Option<String>,
    /// CPU and memory use, once the running instance has been sampled (every 5 s).
    pub usage: Option<InstanceUsageDto>,
}

/// What one instance uses, from samples taken every few seconds.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct InstanceUsageDto {
    /// CPU between the last two samples, in millicores (1000 = one core); `null` until the
    /// instance has been sampled twice.
    pub cpu_millis: Option<u64>,
    /// CPU averaged over the last minute (or the instance's life, if shorter), in millicores;
    /// `null` until the instance has been sampled twice.
    pub cpu_millis_avg_1m: Option<u64>,
    /// Memory in use at the latest sample, in bytes (page cache excluded, as `docker stats`).
    pub memory_bytes: u64,
    /// The instance's memory limit, or the node's memory when it has none.
    pub memory_limit_bytes: Option<u64>,
    /// When the latest sample was taken.
    pub sampled_at: String,
}

impl From<&InstanceUsage> for InstanceUsageDto {
    fn from(u: &InstanceUsage) -> Self {
        InstanceUsageDto {
            cpu_millis: u.cpu_millis,
            cpu_millis_avg_1m: u.cpu_millis_avg,
            memory_bytes: u.memory_bytes,
            memory_limit_bytes: u.memory_limit_bytes,
            sampled_at: timestamp(u.sampled_at),
        }
    }
}

/// What an app's running instances use together.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AppUsageDto {
    /// Sum of the instances' latest CPU, in millicores; `null` while none has a rate yet.
    pub cpu_millis: Option<u64>,
    /// Sum of the instances' one-minute CPU averages, in millicores; `null` while none has one.
    pub cpu_millis_avg_1m: Option<u64>,
    /// Sum of the instances' memory in use, in bytes.
    pub memory_bytes: u64,
    /// How many running instances the sums cover.
    pub instances: u32,
}

impl AppUsageDto {
    /// Sums the usage of the running instances; `None` when none has been sampled.
    pub fn total(instances: &[InstanceDto]) -> Option<Self> {
        let sampled: Vec<&InstanceUsageDto> = instances
            .iter()
            .filter(|i| i.phase == "running")
            .filter_map(|i| i.usage.as_ref())
            .collect();
        if sampled.is_empty() {
            return None;
        }
        let sum = |field: fn(&InstanceUsageDto) -> Option<u64>| {
            sampled
                .iter()
                .filter_map(|u| field(u))
                .reduce(u64::saturating_add)
        };
        Some(AppUsageDto {
            cpu_millis: sum(|u| u.cpu_millis),
            cpu_millis_avg_1m: sum(|u| u.cpu_millis_avg_1m),
            memory_bytes: sum(|u| Some(u.memory_bytes)).unwrap_or(0),
            instances: sampled.len() as u32,
        })
    }
}

impl From<&InstanceStatus> for InstanceDto {
    fn from(s: &InstanceStatus) -> Self {
        let (phase, exit_code) = match s.phase {
            InstancePhase::Starting => ("starting", None),
            InstancePhase::Running => ("running", None),
            InstancePhase::Exited { exit_code, .. } => ("exited", exit_code),
            InstancePhase::Terminating => ("terminating", None),
        };
        InstanceDto {
            name: s.name.clone(),
            container_id: s.container_id.clone(),
            revision: s.revision,
            phase: phase.into(),
            address: s.address.as_ref().map(|ip| match s.port {
                Some(port) => format!("{ip}:{port}"),
                None => ip.clone(),
            }),
            ready: s.readiness.is_ready() && s.phase == InstancePhase::Running,
            readiness: match s.readiness {
                Readiness::Unknown => "unknown",
                Readiness::Ready { .. } => "ready",
                Readiness::NotReady { .. } => "not_ready",
            }
            .into(),
            liveness: match s.liveness {
                Liveness::Healthy => "healthy",
                Liveness::Failing { .. } => "failing",
            }
            .into(),
            restarts: s.restarts,
            exit_code,
            created_at: timestamp(s.created_at),
            started_at: s.started_at.map(timestamp),
            last_probe_failure: s.last_failure.clone(),
            node: s.node.clone(),
            backoff_until: s.backoff.as_ref().map(|b| timestamp(b.until)),
            usage: s.usage.as_ref().map(InstanceUsageDto::from),
        }
    }
}

/// An app with its current revision, rollout and instances.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AppDto {
    pub name: String,
    pub team: String,
    /// `healthy`, `starting` (a rollout brings instances up), `scaling` (a scale up does),
    /// `degraded` (some failed, some ready), `down` (failed, none ready), `stopped` (0 wanted)
    /// or `unknown` (the engine does not answer).
    pub health: String,
    pub replicas: u32,
    /// Instances that are running and ready.
    pub ready_instances: u32,
    pub current_revision: u32,
    pub stable_revision: Option<u32>,
    pub latest_revision: u32,
    pub template: TemplateDto,
    pub strategy: StrategyDto,
    pub dependencies: Vec<String>,
    /// No external route: reached only by its team's apps, by name.
    pub internal: bool,
    /// Plain HTTP to hosts with a certificate is redirected to HTTPS.
    pub https_redirect: bool,
    /// Where the app answers through the router: its default host first, then its custom
    /// domains; empty for an internal app.
    pub domains: Vec<DomainDto>,
    /// Container ports published on host ports of the Berth server (plain TCP, bypassing the
    /// router).
    pub tcp_ports: Vec<TcpPortDto>,
    /// Scale to 0 after this many seconds without a request; `null`: never.
    pub idle_timeout_seconds: Option<u32>,
    /// Set while the app is scaled to 0 because it was idle (`replicas` is then 0); the next
    /// request through the router starts it again.
    pub idle: Option<IdleDto>,
    /// CPU autoscaling (`null`: off); while on, Berth sets `replicas`.
    pub autoscale: Option<crate::autoscale::AutoscaleDto>,
    /// What the router counted for the app since the server started; `null` when the router
    /// is off or has not routed a request to it yet.
    pub traffic: Option<TrafficDto>,
    pub rollout: RolloutDto,
    pub instances: Vec<InstanceDto>,
    /// CPU and memory use of the running instances together; `null` until one is sampled.
    pub usage: Option<AppUsageDto>,
    /// Set when the engine could not be asked about the instances.
    pub engine_error: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// An app scaled to 0 when idle.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct IdleDto {
    /// The instance count the next request brings back.
    pub replicas: u32,
    pub since: String,
}

/// An app's traffic through the router since the server started.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TrafficDto {
    /// Requests answered.
    pub requests: u64,
    /// Responses by status class, the router's own pages (404 aside, 502, 503, 504, 413)
    /// included.
    pub responses: ResponsesDto,
    /// The latency bucket bound (ms) that holds the median and the 99th percentile
    /// (arrival to the response's last byte); `null` without requests or beyond 10 s.
    pub latency_p50_ms: Option<u64>,
    pub latency_p99_ms: Option<u64>,
    /// Mean latency in ms.
    pub latency_mean_ms: Option<f64>,
    /// Requests by latency: how many took at most `le_ms` (and more than the previous bound);
    /// the last bucket (`le_ms` null) holds the rest.
    pub latency_buckets: Vec<LatencyBucketDto>,
    pub request_bytes: u64,
    pub response_bytes: u64,
    /// Connections to an instance that could not be made.
    pub connect_failures: u64,
    /// Requests an instance did not answer in time (504).
    pub timeouts: u64,
    /// Requests an instance broke off (closed the connection, answered garbage).
    pub broken_responses: u64,
    /// Requests in progress now.
    pub in_flight: u64,
    /// Of those, requests held now: waiting (at most the router's hold timeout) for the app's
    /// first ready instance while it brings one up.
    pub held: u64,
    /// Requests held since the server started, however they ended.
    pub held_total: u64,
}

/// Responses by status class.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ResponsesDto {
    #[serde(rename = "1xx")]
    pub informational: u64,
    #[serde(rename = "2xx")]
    pub success: u64,
    #[serde(rename = "3xx")]
    pub redirection: u64,
    #[serde(rename = "4xx")]
    pub client_error: u64,
    #[serde(rename = "5xx")]
    pub server_error: u64,
}

/// One latency bucket.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LatencyBucketDto {
    /// Upper bound in ms; `null` for the last bucket.
    pub le_ms: Option<u64>,
    pub count: u64,
}

impl From<&AppCounters> for TrafficDto {
    fn from(c: &AppCounters) -> TrafficDto {
        let requests = c.requests();
        let measured: u64 = c.latency_buckets.iter().sum();
        TrafficDto {
            requests,
            responses: ResponsesDto {
                informational: c.responses[0],
                success: c.responses[1],
                redirection: c.responses[2],
                client_error: c.responses[3],
                server_error: c.responses[4],
            },
            latency_p50_ms: c.latency_quantile_ms(0.5),
            latency_p99_ms: c.latency_quantile_ms(0.99),
            latency_mean_ms: (measured > 0)
                .then(|| c.latency_sum_micros as f64 / measured as f64 / 1000.0),
            latency_buckets: c
                .latency_buckets
                .iter()
                .enumerate()
                .map(|(index, &count)| LatencyBucketDto {
                    le_ms: LATENCY_BUCKETS_MS.get(index).copied(),
                    count,
                })
                .collect(),
            request_bytes: c.request_bytes,
            response_bytes: c.response_bytes,
            connect_failures: c.connect_failures,
            timeouts: c.timeouts,
            broken_responses: c.broken_responses,
            in_flight: c.in_flight,
            held: c.held,
            held_total: c.held_total,
        }
    }
}

/// A container port published on a host port.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TcpPortDto {
    pub container_port: u16,
    pub host_port: u16,
    /// `listen-address:host-port` of the Berth server (`0.0.0.0`: every address of the
    /// machine).
    pub address: String,
}

/// One address of an app.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DomainDto {
    /// As users write it: `shop.example.com` or `shop.example.com/api`.
    pub domain: String,
    pub host: String,
    /// `/` or the path prefix, like `/api`.
    pub path: String,
    /// Whether this is the default host (`<app>.<team>.<apps-domain>`).
    pub default: bool,
    /// A link through the router's HTTP listener; `null` when the router is off and for a
    /// wildcard domain.
    pub url: Option<String>,
}

impl From<AppAddress> for DomainDto {
    fn from(address: AppAddress) -> DomainDto {
        let domain = if address.path == "/" {
            address.host.clone()
        } else {
            format!("{}{}", address.host, address.path)
        };
        DomainDto {
            domain,
            host: address.host,
            path: address.path,
            default: address.default,
            url: address.url,
        }
    }
}

/// The app's health (one rule, `berth_core::topology::app_health`, for every view).
pub fn app_health(
    app: &App,
    instances: &[InstanceStatus],
    engine_error: bool,
    now: berth_core::Millis,
) -> berth_core::topology::Health {
    use berth_core::topology::{HealthFacts, InstanceFacts, app_health, instance_failing};
    let any_failing = instances.iter().any(|i| {
        let facts = InstanceFacts {
            exited: matches!(i.phase, InstancePhase::Exited { .. }),
            liveness_failing: matches!(i.liveness, Liveness::Failing { .. }),
            backing_off: i.backoff.is_some(),
            not_ready: matches!(i.readiness, Readiness::NotReady { .. }),
            started_at: i.started_at.unwrap_or(i.created_at),
        };
        instance_failing(&facts, app.strategy.progress_deadline_ms, now)
    });
    let ready = instances
        .iter()
        .filter(|i| i.readiness.is_ready() && i.phase == InstancePhase::Running)
        .count();
    app_health(&HealthFacts {
        engine_error,
        replicas: app.replicas,
        ready: u32::try_from(ready).unwrap_or(u32::MAX),
        rollout_done: !app.rollout.phase.in_progress(),
        rollout_failed: app.rollout.phase.is_failure(),
        any_failing,
    })
}

impl AppDto {
    #[allow(clippy::too_many_arguments)] // one view of everything known about an app
    pub fn new(
        app: &App,
        template: &Template,
        statuses: &[InstanceStatus],
        engine_error: Option<String>,
        addresses: Vec<AppAddress>,
        traffic: Option<&AppCounters>,
        tcp_listen: std::net::IpAddr,
        now: berth_core::Millis,
    ) -> Self {
        let health = app_health(app, statuses, engine_error.is_some(), now)
            .as_str()
            .to_string();
        let instances: Vec<InstanceDto> = statuses.iter().map(InstanceDto::from).collect();
        AppDto {
            health,
            name: app.name.clone(),
            team: app.team.clone(),
            replicas: app.replicas,
            ready_instances: instances.iter().filter(|i| i.ready).count() as u32,
            current_revision: app.current_revision,
            stable_revision: app.stable_revision,
            latest_revision: app.latest_revision,
            template: template.into(),
            strategy: StrategyDto::from_strategy(&app.strategy),
            dependencies: app.dependencies.clone(),
            internal: app.routes.internal,
            https_redirect: app.routes.https_redirect,
            domains: addresses.into_iter().map(DomainDto::from).collect(),
            tcp_ports: app
                .routes
                .tcp_ports
                .iter()
                .map(|p| TcpPortDto {
                    container_port: p.container_port,
                    host_port: p.host_port,
                    address: std::net::SocketAddr::new(tcp_listen, p.host_port).to_string(),
                })
                .collect(),
            idle_timeout_seconds: app.idle_timeout_secs,
            idle: app.idled.map(|idled| IdleDto {
                replicas: idled.replicas,
                since: timestamp(idled.since),
            }),
            autoscale: app.autoscale.as_ref().map(Into::into),
            traffic: traffic.map(TrafficDto::from),
            rollout: RolloutDto::new(&app.rollout, app.replicas, &instances),
            usage: AppUsageDto::total(&instances),
            instances,
            engine_error,
            created_at: timestamp(app.created_at),
            updated_at: timestamp(app.updated_at),
        }
    }
}

/// One kept revision.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RevisionDto {
    pub number: u32,
    /// Whether the app runs this revision now.
    pub current: bool,
    pub template: TemplateDto,
    pub created_at: String,
    pub created_by: String,
    pub reason: String,
}

impl RevisionDto {
    pub fn new(revision: &Revision, current: u32) -> Self {
        RevisionDto {
            number: revision.number,
            current: revision.number == current,
            template: (&revision.template).into(),
            created_at: timestamp(revision.created_at),
            created_by: revision.created_by.clone(),
            reason: revision.reason.clone(),
        }
    }
}

/// One timeline entry.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EventDto {
    pub id: i64,
    pub at: String,
    /// Stable code, e.g. `rollout_failed`, `instance_replaced`.
    pub kind: String,
    /// Whether it reports something going wrong.
    pub warning: bool,
    pub instance: Option<String>,
    pub revision: Option<u32>,
    /// The English sentence (for logs and the CLI).
    pub message: String,
    /// The values the message is made of, by name (e.g. `from` and `to` of `scaled`, `reason`
    /// of `rollout_failed`, `code` of `instance_crashed`), for a client that says the event in
    /// another language. Empty for events recorded without them.
    pub params: BTreeMap<String, String>,
}

impl From<&Event> for EventDto {
    fn from(e: &Event) -> Self {
        EventDto {
            id: e.id,
            at: timestamp(e.at),
            kind: e.kind.as_str().into(),
            warning: e.kind.is_warning(),
            instance: e.instance.clone(),
            revision: e.revision,
            message: e.message.clone(),
            params: e.params.clone(),
        }
    }
}

/// Liveness/readiness of the server itself.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReadyDto {
    pub ready: bool,
    pub store: String,
    pub engine: String,
    /// This server's part: `single` (the only server of its store), or, when servers share a
    /// PostgreSQL store, `leader` (it runs the controllers) or `follower` (it serves the API
    /// and apps' traffic, and takes over when the leader goes).
    pub role: String,
    /// When servers share a store: how far this server's clock was ahead of the database's
    /// (ms; negative: behind) at its last comparison. Beyond half the lease margin (750 ms) it
    /// does not lead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_skew_ms: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339() {
        let cases = [
            (0, "1970-01-01T00:00:00.000Z"),
            (1_700_000_000_123, "2023-11-14T22:13:20.123Z"),
            (-5, "1970-01-01T00:00:00.000Z"),
        ];
        for (ms, want) in cases {
            assert_eq!(timestamp(ms), want);
        }
    }

    fn instance(phase: &str, usage: Option<(Option<u64>, Option<u64>, u64)>) -> InstanceDto {
        InstanceDto {
            name: "web-0".into(),
            container_id: "c".into(),
            revision: 1,
            phase: phase.into(),
            address: None,
            ready: phase == "running",
            readiness: "ready".into(),
            liveness: "healthy".into(),
            restarts: 0,
            exit_code: None,
            created_at: timestamp(0),
            started_at: None,
            last_probe_failure: None,
            node: "n".into(),
            backoff_until: None,
            usage: usage.map(|(cpu, avg, memory)| InstanceUsageDto {
                cpu_millis: cpu,
                cpu_millis_avg_1m: avg,
                memory_bytes: memory,
                memory_limit_bytes: None,
                sampled_at: timestamp(0),
            }),
        }
    }

    #[test]
    fn app_usage_sums_running_sampled_instances() {
        type Want = Option<(Option<u64>, Option<u64>, u64, u32)>;
        let cases: Vec<(&str, Vec<InstanceDto>, Want)> = vec![
            ("no instances", vec![], None),
            (
                "not sampled yet",
                vec![instance("running", None), instance("starting", None)],
                None,
            ),
            (
                "one sample: memory only",
                vec![instance("running", Some((None, None, 100)))],
                Some((None, None, 100, 1)),
            ),
            (
                "sums, skipping missing rates",
                vec![
                    instance("running", Some((Some(120), Some(100), 100))),
                    instance("running", Some((None, None, 50))),
                    instance("running", Some((Some(30), Some(40), 25))),
                ],
                Some((Some(150), Some(140), 175, 3)),
            ),
            (
                "terminating and exited instances do not count",
                vec![
                    instance("running", Some((Some(10), Some(10), 10))),
                    instance("terminating", Some((Some(500), Some(500), 500))),
                    instance("exited", Some((Some(500), Some(500), 500))),
                ],
                Some((Some(10), Some(10), 10, 1)),
            ),
        ];
        for (name, instances, want) in cases {
            let got = AppUsageDto::total(&instances).map(|u| {
                (
                    u.cpu_millis,
                    u.cpu_millis_avg_1m,
                    u.memory_bytes,
                    u.instances,
                )
            });
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn probe_defaults_fill_in() {
        let probe = ProbeDto {
            path: Some("/up".into()),
            period_ms: Some(500),
            ..ProbeDto::default()
        }
        .into_probe();
        assert_eq!(
            probe,
            Probe {
                path: "/up".into(),
                period_ms: 500,
                // Not the default 1000: a timeout never exceeds the period.
                timeout_ms: 500,
                ..Probe::default()
            }
        );
        let tcp = ProbeDto {
            kind: Some(ProbeKindDto::Tcp),
            port: Some(5432),
            ..ProbeDto::default()
        }
        .into_probe();
        assert_eq!(
            tcp,
            Probe {
                port: Some(5432),
                ..Probe::tcp()
            }
        );
        assert_eq!(ProbeDto::from_probe(&tcp).into_probe(), tcp);
    }

    #[test]
    fn a_null_probe_removes_it_and_an_omitted_one_keeps_it() {
        let changes: AppChanges = serde_json::from_str(
            r#"{"readiness": null, "liveness": {"kind": "tcp", "port": 6379}}"#,
        )
        .unwrap();
        assert_eq!(changes.readiness, Some(None));
        assert_eq!(
            changes.liveness,
            Some(Some(ProbeDto {
                kind: Some(ProbeKindDto::Tcp),
                port: Some(6379),
                ..ProbeDto::default()
            }))
        );
        let changes: AppChanges = serde_json::from_str(r#"{"image": "web:2"}"#).unwrap();
        assert_eq!((changes.readiness, changes.liveness), (None, None));
        assert!(serde_json::from_str::<AppChanges>(r#"{"liveness": {"kind": "udp"}}"#).is_err());
    }

    #[test]
    fn probe_settings_given_win_over_the_base() {
        let base = ProbeDto::from_probe(&Probe::http("/up"));
        let changed = ProbeDto {
            timeout_ms: Some(200),
            ..ProbeDto::default()
        }
        .or(base)
        .into_probe();
        assert_eq!(
            changed,
            Probe {
                timeout_ms: 200,
                ..Probe::http("/up")
            }
        );
        let faster = ProbeDto {
            period_ms: Some(300),
            ..ProbeDto::default()
        }
        .or(ProbeDto::from_probe(&Probe::http("/up")))
        .into_probe();
        assert_eq!(
            (faster.period_ms, faster.timeout_ms),
            (300, 300),
            "the base's 1000 ms timeout would outlast the new period"
        );
    }
}
