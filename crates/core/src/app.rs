//! Stored desired state: apps, their immutable revisions, the rollout in progress, events.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Millis;
use crate::autoscale::Autoscale;
use crate::idle::Idled;
use crate::routes::AppRoutes;
use crate::spec::{AppSpec, RolloutStrategy, Template};

/// Where the app's latest rollout stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RolloutPhase {
    /// Moving instances to `Rollout::revision`.
    Progressing,
    /// Every instance runs `Rollout::revision` and is available.
    Complete,
    /// `Rollout::failed_revision` failed; moving back to `Rollout::revision`.
    RollingBack,
    /// `Rollout::failed_revision` failed; the app is back on `Rollout::revision`.
    RolledBack,
    /// The rollout failed and there was nothing to roll back to (or the rollback failed too).
    Failed,
}

impl RolloutPhase {
    /// Whether instances are still being moved.
    pub fn in_progress(self) -> bool {
        matches!(self, RolloutPhase::Progressing | RolloutPhase::RollingBack)
    }

    /// Whether the rollout ended badly (rolled back, or the rollback failed too).
    pub fn is_failure(self) -> bool {
        matches!(self, RolloutPhase::RolledBack | RolloutPhase::Failed)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RolloutPhase::Progressing => "progressing",
            RolloutPhase::Complete => "complete",
            RolloutPhase::RollingBack => "rolling_back",
            RolloutPhase::RolledBack => "rolled_back",
            RolloutPhase::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "progressing" => RolloutPhase::Progressing,
            "complete" => RolloutPhase::Complete,
            "rolling_back" => RolloutPhase::RollingBack,
            "rolled_back" => RolloutPhase::RolledBack,
            "failed" => RolloutPhase::Failed,
            _ => return None,
        })
    }
}

/// The app's latest rollout: what it moves to, how far it got, and why it ended as it did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rollout {
    /// The revision instances are moved to (after a failure: the one rolled back to).
    pub revision: u32,
    pub phase: RolloutPhase,
    /// The revision that failed, when the rollout failed.
    pub failed_revision: Option<u32>,
    /// Human-readable reason for the phase.
    pub message: String,
    pub started_at: Millis,
    /// Last time an instance of `revision` became available (or the start).
    pub progress_at: Millis,
    /// How many instances of `revision` were available at `progress_at`.
    pub available: u32,
    pub finished_at: Option<Millis>,
    /// The canary of this rollout, once it started taking traffic.
    pub canary: Option<crate::canary::CanaryProgress>,
}

impl Rollout {
    /// A fresh rollout towards `revision`.
    pub fn start(revision: u32, message: impl Into<String>, now: Millis) -> Self {
        Rollout {
            revision,
            phase: RolloutPhase::Progressing,
            failed_revision: None,
            message: message.into(),
            started_at: now,
            progress_at: now,
            available: 0,
            finished_at: None,
            canary: None,
        }
    }
}

/// An app as stored: its settings, which revision it should run, and its rollout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct App {
    pub name: String,
    pub team: String,
    pub replicas: u32,
    pub strategy: RolloutStrategy,
    pub dependencies: Vec<String>,
    /// How the app is reached from outside (custom domains), or that it is internal.
    pub routes: AppRoutes,
    /// The revision the app should run now.
    pub current_revision: u32,
    /// The last revision whose rollout completed; automatic rollbacks go there.
    pub stable_revision: Option<u32>,
    /// The highest revision number ever made (numbers are never reused).
    pub latest_revision: u32,
    pub rollout: Rollout,
    /// Next instance ordinal to hand out (instance names are `<app>-<ordinal>`).
    pub next_ordinal: u64,
    /// Scale to 0 after this many seconds without a request through the router (opt-in).
    pub idle_timeout_secs: Option<u32>,
    /// Set while Berth keeps the app at 0 instances because it idled; the next request wakes it.
    pub idled: Option<Idled>,
    /// CPU autoscaling between a minimum and a maximum (opt-in): Berth sets `replicas`.
    pub autoscale: Option<Autoscale>,
    pub created_at: Millis,
    pub updated_at: Millis,
    /// Optimistic-concurrency version; the store refuses an update made from a stale copy.
    pub version: i64,
}

impl App {
    /// A new app of `team` with `spec`'s settings, on revision 1, whose first rollout starts
    /// `now` (its template is revision 1's).
    pub fn created(name: &str, team: &str, spec: &AppSpec, now: Millis) -> App {
        App {
            name: name.to_string(),
            team: team.to_string(),
            replicas: spec.replicas,
            strategy: spec.strategy.clone(),
            dependencies: spec.dependencies.clone(),
            routes: spec.routes.clone(),
            current_revision: 1,
            stable_revision: None,
            latest_revision: 1,
            rollout: Rollout::start(1, "first rollout", now),
            next_ordinal: 1,
            idle_timeout_secs: spec.idle_timeout_secs,
            idled: None,
            autoscale: None,
            created_at: now,
            updated_at: now,
            version: 1,
        }
    }

    /// The canary settings of the rollout in progress while its canary is owed or judged: the
    /// app has canary settings, rolls forward from its stable revision to a new one, and no
    /// verdict passed yet. A first rollout and a rollback have none.
    pub fn canary_being_judged(&self) -> Option<&crate::canary::Canary> {
        let canary = self.strategy.canary.as_ref()?;
        let rollout = &self.rollout;
        let judged = rollout.phase == RolloutPhase::Progressing
            && !rollout.canary.is_some_and(|progress| progress.passed)
            && self
                .stable_revision
                .is_some_and(|stable| stable != self.current_revision);
        judged.then_some(canary)
    }

    /// The spec of this app given the template of its current revision.
    pub fn spec(&self, template: &Template) -> AppSpec {
        AppSpec {
            template: template.clone(),
            replicas: self.replicas,
            strategy: self.strategy.clone(),
            dependencies: self.dependencies.clone(),
            routes: self.routes.clone(),
            idle_timeout_secs: self.idle_timeout_secs,
        }
    }
}

/// An immutable numbered snapshot of what runs, with who made it, when and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revision {
    pub app: String,
    pub number: u32,
    pub template: Template,
    pub created_at: Millis,
    pub created_by: String,
    /// Why it was made ("create", "deploy: image …", a user's message).
    pub reason: String,
}

/// The kind of thing that happened; a stable code clients can filter on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    AppCreated,
    AppDeleted,
    RevisionCreated,
    Scaled,
    RolloutStarted,
    RolloutProgress,
    RolloutComplete,
    RolloutFailed,
    RollbackStarted,
    RolledBack,
    InstanceStarted,
    InstanceStopped,
    InstanceReady,
    InstanceNotReady,
    InstanceUnhealthy,
    InstanceCrashed,
    InstanceReplaced,
    CrashLoopBackOff,
    StartFailed,
    EngineError,
    RoutesChanged,
    /// An ACME certificate of one of the app's hosts was renewed.
    CertificateRenewed,
    /// Renewing an ACME certificate failed; the old one is still served.
    CertificateRenewalFailed,
    /// A certificate was issued on demand for a host of the catch-all app.
    CertificateIssued,
    /// A host of the catch-all app was refused a certificate on demand (not approved, the
    /// limit on orders, a failed order).
    CertificateRefused,
    /// A canary instance of the new revision started taking part of the traffic.
    CanaryStarted,
    /// The canary's error rate was no worse than the old revision's: the rollout goes on.
    CanaryPassed,
    /// No request for the app's idle timeout: scaled to 0 until the next request.
    IdledOut,
    /// A request arrived for an app scaled to 0 when idle: scaled back.
    Woken,
    /// Waking an idle app was refused (quota): its requests get a 503 saying why.
    WakeRefused,
    /// Autoscaling was turned on, changed or turned off.
    AutoscaleChanged,
    /// The autoscaler changed the instance count; the params hold every input of the decision.
    Autoscaled,
    /// The autoscaler's formula wanted another count but a guard held it (tolerance,
    /// stabilisation, the growth cap, the range or the quota); the params say which.
    AutoscaleHeld,
    /// The team's quota refused (some of) the instances the autoscaler wanted to add.
    AutoscaleRefused,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::AppCreated => "app_created",
            EventKind::AppDeleted => "app_deleted",
            EventKind::RevisionCreated => "revision_created",
            EventKind::Scaled => "scaled",
            EventKind::RolloutStarted => "rollout_started",
            EventKind::RolloutProgress => "rollout_progress",
            EventKind::RolloutComplete => "rollout_complete",
            EventKind::RolloutFailed => "rollout_failed",
            EventKind::RollbackStarted => "rollback_started",
            EventKind::RolledBack => "rolled_back",
            EventKind::InstanceStarted => "instance_started",
            EventKind::InstanceStopped => "instance_stopped",
            EventKind::InstanceReady => "instance_ready",
            EventKind::InstanceNotReady => "instance_not_ready",
            EventKind::InstanceUnhealthy => "instance_unhealthy",
            EventKind::InstanceCrashed => "instance_crashed",
            EventKind::InstanceReplaced => "instance_replaced",
            EventKind::CrashLoopBackOff => "crash_loop_back_off",
            EventKind::StartFailed => "start_failed",
            EventKind::EngineError => "engine_error",
            EventKind::RoutesChanged => "routes_changed",
            EventKind::CertificateRenewed => "certificate_renewed",
            EventKind::CertificateRenewalFailed => "certificate_renewal_failed",
            EventKind::CertificateIssued => "certificate_issued",
            EventKind::CertificateRefused => "certificate_refused",
            EventKind::CanaryStarted => "canary_started",
            EventKind::CanaryPassed => "canary_passed",
            EventKind::IdledOut => "idled_out",
            EventKind::Woken => "woken",
            EventKind::WakeRefused => "wake_refused",
            EventKind::AutoscaleChanged => "autoscale_changed",
            EventKind::Autoscaled => "autoscaled",
            EventKind::AutoscaleHeld => "autoscale_held",
            EventKind::AutoscaleRefused => "autoscale_refused",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        ALL_EVENT_KINDS.iter().copied().find(|k| k.as_str() == s)
    }

    /// Whether the event reports something going wrong (shown as a warning).
    pub fn is_warning(self) -> bool {
        matches!(
            self,
            EventKind::RolloutFailed
                | EventKind::InstanceNotReady
                | EventKind::InstanceUnhealthy
                | EventKind::InstanceCrashed
                | EventKind::CrashLoopBackOff
                | EventKind::StartFailed
                | EventKind::EngineError
                | EventKind::CertificateRenewalFailed
                | EventKind::WakeRefused
                | EventKind::CertificateRefused
                | EventKind::AutoscaleRefused
        )
    }
}

/// Every event kind, in declaration order.
pub const ALL_EVENT_KINDS: [EventKind; 34] = [
    EventKind::AppCreated,
    EventKind::AppDeleted,
    EventKind::RevisionCreated,
    EventKind::Scaled,
    EventKind::RolloutStarted,
    EventKind::RolloutProgress,
    EventKind::RolloutComplete,
    EventKind::RolloutFailed,
    EventKind::RollbackStarted,
    EventKind::RolledBack,
    EventKind::InstanceStarted,
    EventKind::InstanceStopped,
    EventKind::InstanceReady,
    EventKind::InstanceNotReady,
    EventKind::InstanceUnhealthy,
    EventKind::InstanceCrashed,
    EventKind::InstanceReplaced,
    EventKind::CrashLoopBackOff,
    EventKind::StartFailed,
    EventKind::EngineError,
    EventKind::RoutesChanged,
    EventKind::CertificateRenewed,
    EventKind::CertificateRenewalFailed,
    EventKind::CertificateIssued,
    EventKind::CertificateRefused,
    EventKind::CanaryStarted,
    EventKind::CanaryPassed,
    EventKind::IdledOut,
    EventKind::Woken,
    EventKind::WakeRefused,
    EventKind::AutoscaleChanged,
    EventKind::Autoscaled,
    EventKind::AutoscaleHeld,
    EventKind::AutoscaleRefused,
];

/// One entry of an app's timeline: what Berth did or saw, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Assigned by the store (increasing); 0 before it is stored.
    pub id: i64,
    pub app: String,
    pub at: Millis,
    pub kind: EventKind,
    pub instance: Option<String>,
    pub revision: Option<u32>,
    /// The English sentence (logs, the CLI).
    pub message: String,
    /// What the message says, as values (`from`, `to`, `replicas`, `reason`, `code`, `target`,
    /// `failed`…), so a client renders the event in its own language from `kind` and these.
    /// Empty for events recorded without them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, String>,
}

impl Event {
    pub fn new(app: &str, at: Millis, kind: EventKind, message: impl Into<String>) -> Self {
        Event {
            id: 0,
            app: app.into(),
            at,
            kind,
            instance: None,
            revision: None,
            message: message.into(),
            params: BTreeMap::new(),
        }
    }

    /// Adds a parameter of the message (see [`Event::params`]).
    pub fn param(mut self, key: &str, value: impl ToString) -> Self {
        self.params.insert(key.into(), value.to_string());
        self
    }

    pub fn instance(mut self, instance: impl Into<String>) -> Self {
        self.instance = Some(instance.into());
        self
    }

    pub fn revision(mut self, revision: u32) -> Self {
        self.revision = Some(revision);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_kinds_round_trip() {
        for kind in ALL_EVENT_KINDS {
            assert_eq!(EventKind::parse(kind.as_str()), Some(kind));
            assert_eq!(
                serde_json::to_value(kind).unwrap(),
                serde_json::Value::String(kind.as_str().into())
            );
        }
        assert_eq!(EventKind::parse("nope"), None);
    }

    #[test]
    fn phases_round_trip() {
        for phase in [
            RolloutPhase::Progressing,
            RolloutPhase::Complete,
            RolloutPhase::RollingBack,
            RolloutPhase::RolledBack,
            RolloutPhase::Failed,
        ] {
            assert_eq!(RolloutPhase::parse(phase.as_str()), Some(phase));
        }
    }
}
