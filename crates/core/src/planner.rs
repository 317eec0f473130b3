//! The reconcile planner: from (desired app, observed instances, now) to a list of actions.
//!
//! Like Nomad's reconciler it is a pure function with an injected `now`; it never calls the
//! engine. The controller executes the returned [`Action`]s and applies the
//! [`RolloutUpdate`] with [`advance_rollout`], which is pure as well.
//!
//! Counting rules, with `R` = replicas, `S` = max surge and `U` = max unavailable:
//! * an instance is *available* when it runs, passes liveness, has been ready for
//!   `min_ready_ms`; instances failing liveness count for nothing (their replacement starts
//!   first, and they are removed once the app is whole again);
//! * an exited instance of the current revision keeps its slot as a *tombstone* until its
//!   crash-loop backoff has passed, then it is replaced by an instance carrying the next
//!   restart count (the count survives a Berth restart because it is a container label);
//! * new instances start while fewer than `R` run the current revision and at most `R + S`
//!   instances exist; old instances stop while more than `R - U` would stay available;
//! * a *recreate* rollout stops every instance of other revisions at once and starts the
//!   target only when none of them runs or is still stopping (no two revisions ever run side
//!   by side: the app is down in between).
//!
//! Instance slots: every start carries its ordinal (the container is `<namespace>-<app>-<ordinal>`),
//! handed out from `app.next_ordinal` — or past the highest ordinal observed, if that is higher
//! (a store restored from an older backup) — and [`Plan::next_ordinal`] is what the app's
//! `next_ordinal` becomes. The executor stores it with the app (optimistic `version` check)
//! before it starts anything, so an ordinal is never handed out twice: a conflicting write
//! means the app changed, and the reconcile plans again from the stored app.

use std::cmp::Reverse;

use serde::{Deserialize, Serialize};

use crate::Millis;
use crate::app::{App, Event, EventKind, RolloutPhase};
use crate::backoff::Backoff;
use crate::canary::{Canary, CanaryProgress, CanaryTraffic, Verdict};
use crate::health::{Liveness, Readiness};

/// Where an instance container is in its life, as Berth sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum InstancePhase {
    /// Created or restarting, not running yet.
    Starting,
    Running,
    Exited {
        finished_at: Millis,
        exit_code: Option<i64>,
    },
    /// Berth has asked it to stop; it no longer counts.
    Terminating,
}

/// One instance as observed on the engine, joined with its probe state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedInstance {
    pub container_id: String,
    /// `<app>-<ordinal>`.
    pub name: String,
    pub ordinal: u64,
    pub revision: u32,
    /// Consecutive quick crashes of this instance's predecessors.
    pub restarts: u32,
    pub phase: InstancePhase,
    pub created_at: Millis,
    pub started_at: Option<Millis>,
    pub readiness: Readiness,
    pub liveness: Liveness,
    /// Reason of the last failed probe, if any.
    pub last_failure: Option<String>,
    /// Its node is being drained: it is replaced like an instance of an old revision (a new
    /// one ready first, within the surge and unavailability budget), then stopped.
    pub evicted: bool,
}

impl ObservedInstance {
    fn is_live(&self) -> bool {
        matches!(self.phase, InstancePhase::Starting | InstancePhase::Running)
    }

    fn is_unhealthy(&self) -> bool {
        matches!(self.liveness, Liveness::Failing { .. })
    }

    /// When this instance becomes (or became) available, if it is ready at all.
    fn available_at(&self, min_ready_ms: u64) -> Option<Millis> {
        match (self.phase, self.readiness, self.liveness) {
            (InstancePhase::Running, Readiness::Ready { since }, Liveness::Healthy) => {
                Some(since.saturating_add(min_ready_ms as i64))
            }
            _ => None,
        }
    }

    fn is_available(&self, min_ready_ms: u64, now: Millis) -> bool {
        self.available_at(min_ready_ms).is_some_and(|at| at <= now)
    }
}

/// The latest failure to start an instance of some revision (e.g. its image is missing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartFailure {
    pub revision: u32,
    pub reason: String,
    pub at: Millis,
    /// Consecutive failed attempts.
    pub attempts: u32,
    /// Retrying cannot help (the image does not exist): a rollout fails at once.
    pub permanent: bool,
}

/// Everything the planner looks at.
#[derive(Debug, Clone)]
pub struct PlanInput<'a> {
    pub app: &'a App,
    pub instances: &'a [ObservedInstance],
    pub start_failure: Option<&'a StartFailure>,
    pub backoff: Backoff,
    pub now: Millis,
    /// What the router counted for the canary of the rollout in progress (`None`: the router
    /// is off, or there is no canary): the verdict is judged on it.
    pub canary_traffic: Option<&'a CanaryTraffic>,
}

/// Why an instance is started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cause", rename_all = "snake_case")]
pub enum StartCause {
    /// Fewer instances of the current revision run than asked for.
    ScaleUp,
    /// Part of a rolling upgrade (or rollback) to the current revision.
    Rollout,
    /// Replaces an instance that exited.
    ReplaceCrashed {
        instance: String,
        exit_code: Option<i64>,
    },
    /// Replaces instances on a node being drained.
    NodeDrain,
}

/// Why an instance is stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cause", rename_all = "snake_case")]
pub enum StopCause {
    /// More instances run than asked for.
    ScaleDown,
    /// It runs a revision the app is moving away from.
    Superseded,
    /// It failed liveness and the app is whole without it.
    Unhealthy,
    /// It exited; its container is cleaned up (and replaced when still needed).
    Exited,
    /// Its node is being drained and its replacement is ready.
    NodeDrained,
}

/// One step for the executor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Start {
        /// The new instance's slot, never used before by this app.
        ordinal: u64,
        revision: u32,
        restarts: u32,
        cause: StartCause,
    },
    Stop {
        container_id: String,
        instance: String,
        cause: StopCause,
    },
}

/// A replacement held back by crash-loop backoff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackOff {
    pub instance: String,
    pub restarts: u32,
    pub exit_code: Option<i64>,
    /// When the replacement may start.
    pub until: Millis,
}

/// What the rollout learned from this observation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RolloutUpdate {
    /// More instances of the target became available.
    Progress { available: u32 },
    /// Every instance runs the target and is available.
    Complete,
    /// The target cannot be reached.
    Failed { reason: String },
    /// The canary instance became available: it takes its share of traffic from now on.
    CanaryStarted,
    /// The canary's verdict was good: the rest of the rollout goes on.
    CanaryPassed { message: String },
}

/// The planner's answer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    pub actions: Vec<Action>,
    pub rollout: Option<RolloutUpdate>,
    /// Replacements waiting for their backoff to pass.
    pub backing_off: Vec<BackOff>,
    /// Plan again after this long even if nothing else happens (a timer is due then).
    pub requeue_after_ms: Option<u64>,
    /// The app's `next_ordinal` once this plan's starts have taken their ordinals: stored
    /// with the app before any of them starts.
    pub next_ordinal: u64,
}

impl Plan {
    fn wake_at(&mut self, at: Millis, now: Millis) {
        let after = (at - now).max(0) as u64;
        self.requeue_after_ms = Some(
            self.requeue_after_ms
                .map_or(after, |current| current.min(after)),
        );
    }

    /// Adds a start in the next free slot.
    fn start(&mut self, revision: u32, restarts: u32, cause: StartCause) {
        self.actions.push(Action::Start {
            ordinal: self.next_ordinal,
            revision,
            restarts,
            cause,
        });
        self.next_ordinal += 1;
    }

    fn stop(&mut self, instance: &ObservedInstance, cause: StopCause) {
        self.actions.push(Action::Stop {
            container_id: instance.container_id.clone(),
            instance: instance.name.clone(),
            cause,
        });
    }
}

/// Orders instances so that the ones to give up first come first: not available, then newest.
fn removal_order(instances: &mut [&ObservedInstance], min_ready_ms: u64, now: Millis) {
    instances.sort_by_key(|i| {
        (
            i.is_available(min_ready_ms, now),
            !matches!(i.readiness, Readiness::NotReady { .. }),
            Reverse(i.ordinal),
        )
    });
}

/// Plans one reconcile step.
/// How soon a recreate rollout looks again whether the old revision is gone.
const RECREATE_RECHECK_MS: i64 = 500;

pub fn plan(input: &PlanInput<'_>) -> Plan {
    let PlanInput {
        app,
        instances,
        start_failure,
        backoff,
        now,
        ..
    } = *input;
    let now_ms = now;
    let target = app.current_revision;
    let replicas = app.replicas as usize;
    let surge = app.strategy.max_surge as usize;
    let min_ready = app.strategy.min_ready_ms;
    let min_available = replicas.saturating_sub(app.strategy.max_unavailable as usize);
    // A slot is never reused: not one the store handed out, nor one a container still has.
    let first_free = instances
        .iter()
        .map(|i| i.ordinal.saturating_add(1))
        .fold(app.next_ordinal, u64::max);
    let mut plan = Plan {
        next_ordinal: first_free,
        ..Plan::default()
    };

    let live: Vec<&ObservedInstance> = instances.iter().filter(|i| i.is_live()).collect();
    // An instance on a node being drained is replaced as if it ran an old revision.
    let healthy_new: Vec<&ObservedInstance> = live
        .iter()
        .copied()
        .filter(|i| i.revision == target && !i.evicted && !i.is_unhealthy())
        .collect();
    let healthy_old: Vec<&ObservedInstance> = live
        .iter()
        .copied()
        .filter(|i| (i.revision != target || i.evicted) && !i.is_unhealthy())
        .collect();
    let unhealthy: Vec<&ObservedInstance> =
        live.iter().copied().filter(|i| i.is_unhealthy()).collect();
    // Recreate: while any instance of another revision runs or is still stopping, every one
    // is stopped and nothing of the target starts.
    let recreating = app.strategy.kind == crate::spec::RolloutKind::Recreate
        && instances.iter().any(|i| {
            i.revision != target
                && matches!(
                    i.phase,
                    InstancePhase::Starting | InstancePhase::Running | InstancePhase::Terminating
                )
        });
    if recreating {
        for instance in live.iter().filter(|i| i.revision != target) {
            plan.stop(instance, StopCause::Superseded);
        }
        // Stops end with an engine event; look again soon in case one is missed.
        plan.wake_at(now_ms.saturating_add(RECREATE_RECHECK_MS), now_ms);
    }
    // A canary first runs one instance of the target beside every old one.
    let canary = pending_canary(app, &healthy_old).filter(|_| !recreating);
    let target_count = if canary.is_some() {
        replicas.min(1)
    } else {
        replicas
    };

    // Starts of the target revision are held back while its last start failure backs off,
    // and while a recreate waits for the old revision to be gone.
    let start_blocked_until = start_failure
        .filter(|f| f.revision == target)
        .map(|f| f.at.saturating_add(backoff.delay_ms(f.attempts) as i64))
        .filter(|until| *until > now_ms)
        .or(recreating.then(|| now_ms.saturating_add(RECREATE_RECHECK_MS)));
    if let Some(until) = start_blocked_until {
        plan.wake_at(until, now_ms);
    }

    // Exited instances: old revisions are just cleaned up; the current revision's keep their
    // slot until their backoff has passed, then they are replaced.
    let mut tombstones: Vec<&ObservedInstance> = Vec::new();
    for instance in instances {
        if let InstancePhase::Exited { .. } = instance.phase {
            if instance.revision == target {
                tombstones.push(instance);
            } else {
                plan.stop(instance, StopCause::Exited);
            }
        }
    }
    tombstones.sort_by_key(|i| (exited_at(i), i.ordinal));
    let slots_for_tombstones = replicas.saturating_sub(healthy_new.len());
    for (index, tombstone) in tombstones.iter().enumerate() {
        if index >= slots_for_tombstones {
            plan.stop(tombstone, StopCause::Exited);
            continue;
        }
        let finished_at = exited_at(tombstone);
        let ran_for = finished_at - tombstone.started_at.unwrap_or(finished_at);
        let restarts = backoff.next_restarts(tombstone.restarts, ran_for);
        let due = finished_at.saturating_add(backoff.delay_ms(restarts) as i64);
        let exit_code = match tombstone.phase {
            InstancePhase::Exited { exit_code, .. } => exit_code,
            _ => None,
        };
        let due = start_blocked_until.map_or(due, |blocked| due.max(blocked));
        if due <= now_ms {
            plan.stop(tombstone, StopCause::Exited);
            plan.start(
                target,
                restarts,
                StartCause::ReplaceCrashed {
                    instance: tombstone.name.clone(),
                    exit_code,
                },
            );
        } else {
            plan.backing_off.push(BackOff {
                instance: tombstone.name.clone(),
                restarts,
                exit_code,
                until: due,
            });
            plan.wake_at(due, now_ms);
        }
    }
    let reserved = tombstones.len().min(slots_for_tombstones);

    // Scale up, within the surge budget.
    let total = healthy_new.len() + healthy_old.len() + reserved;
    let wanted = target_count.saturating_sub(healthy_new.len() + reserved);
    let budget = (replicas + surge).saturating_sub(total);
    let fresh = if start_blocked_until.is_some() {
        0
    } else {
        wanted.min(budget)
    };
    let cause = if app.rollout.phase.in_progress() {
        StartCause::Rollout
    } else if healthy_old.is_empty() {
        StartCause::ScaleUp
    } else if healthy_old
        .iter()
        .all(|i| i.evicted && i.revision == target)
    {
        StartCause::NodeDrain
    } else {
        StartCause::Rollout
    };
    for _ in 0..fresh {
        plan.start(target, 0, cause.clone());
    }

    // Scale down surplus instances of the current revision.
    if healthy_new.len() > replicas {
        let mut candidates = healthy_new.clone();
        removal_order(&mut candidates, min_ready, now_ms);
        for instance in candidates.iter().take(healthy_new.len() - replicas) {
            plan.stop(instance, StopCause::ScaleDown);
        }
    }

    // Retire old instances: the ones that do not serve at once, the others while enough stay
    // available.
    let new_available = healthy_new
        .iter()
        .filter(|i| i.is_available(min_ready, now_ms))
        .count();
    let mut old_available: Vec<&ObservedInstance> = Vec::new();
    // (A recreate stopped them all above.)
    for instance in healthy_old.iter().filter(|_| !recreating) {
        if instance.is_available(min_ready, now_ms) {
            old_available.push(instance);
        } else if matches!(instance.readiness, Readiness::NotReady { .. }) && canary.is_none() {
            plan.stop(instance, retire_cause(instance));
        }
    }
    // While the canary is judged, every old instance stays.
    let removable = if canary.is_some() {
        0
    } else {
        (new_available + old_available.len()).saturating_sub(min_available)
    };
    removal_order(&mut old_available, min_ready, now_ms);
    old_available.sort_by_key(|i| i.revision);
    for instance in old_available.iter().take(removable) {
        plan.stop(instance, retire_cause(instance));
    }

    // Instances failing liveness go once the app is whole without them, or when their
    // replacement has had a whole progress deadline to become ready.
    let available_total = new_available + old_available.len().saturating_sub(removable);
    for instance in unhealthy
        .iter()
        .filter(|i| !(recreating && i.revision != target))
    {
        let since = match instance.liveness {
            Liveness::Failing { since } => since,
            Liveness::Healthy => now_ms,
        };
        let give_up_at = since.saturating_add(app.strategy.progress_deadline_ms as i64);
        if available_total >= replicas || give_up_at <= now_ms {
            plan.stop(instance, StopCause::Unhealthy);
        } else {
            plan.wake_at(give_up_at, now_ms);
        }
    }

    // Instances that will become available once min-ready has passed.
    for instance in &live {
        if let Some(at) = instance.available_at(min_ready)
            && at > now_ms
        {
            plan.wake_at(at, now_ms);
        }
    }

    plan.rollout = match canary.map(|canary| canary_update(input, canary, new_available, &mut plan))
    {
        Some(CanaryStep::Decided(update)) => update,
        Some(CanaryStep::AsRollout) | None => {
            rollout_update(input, new_available, &live, &mut plan)
        }
    };
    plan
}

/// Why an instance replaced like an old revision's is stopped.
fn retire_cause(instance: &ObservedInstance) -> StopCause {
    if instance.evicted {
        StopCause::NodeDrained
    } else {
        StopCause::Superseded
    }
}

/// What the canary decides about the rollout.
enum CanaryStep {
    /// This, and nothing else (while the canary is judged, no progress deadline runs).
    Decided(Option<RolloutUpdate>),
    /// The canary instance is not available: the rollout's usual rules decide.
    AsRollout,
}

/// The canary the rollout in progress still owes: the app has canary settings and moves from
/// its stable revision, which still runs, to a new one, and no verdict passed yet. A first
/// rollout, a rollback and an app without running instances have none.
fn pending_canary<'a>(app: &'a App, healthy_old: &[&ObservedInstance]) -> Option<&'a Canary> {
    app.canary_being_judged()
        .filter(|_| !healthy_old.is_empty())
}

/// The canary's part of the rollout: started once its instance is available, judged when its
/// window has passed. Until its instance is available (or when it stops being available), the
/// progress deadline and start failures decide as in any rollout ([`rollout_update`]).
fn canary_update(
    input: &PlanInput<'_>,
    canary: &Canary,
    new_available: usize,
    plan: &mut Plan,
) -> CanaryStep {
    let PlanInput {
        app,
        now,
        canary_traffic,
        ..
    } = *input;
    if new_available == 0 {
        return CanaryStep::AsRollout;
    }
    let Some(CanaryProgress { started_at, .. }) = app.rollout.canary else {
        return CanaryStep::Decided(Some(RolloutUpdate::CanaryStarted));
    };
    let counted_from = canary_traffic.map_or(started_at, |traffic| traffic.since.max(started_at));
    let verdict_at = counted_from.saturating_add(canary.duration_ms as i64);
    if verdict_at > now {
        plan.wake_at(verdict_at, now);
        return CanaryStep::Decided(None);
    }
    let stable = app.stable_revision.unwrap_or_default();
    let target = app.current_revision;
    CanaryStep::Decided(Some(match canary_traffic {
        Some(traffic) => match crate::canary::judge(traffic, target, stable) {
            Verdict::Pass(message) => RolloutUpdate::CanaryPassed { message },
            Verdict::Fail(reason) => RolloutUpdate::Failed { reason },
        },
        None => RolloutUpdate::CanaryPassed {
            message: "canary passed on its health checks (the router is off: no traffic to                       compare)"
                .to_string(),
        },
    }))
}

fn exited_at(instance: &ObservedInstance) -> Millis {
    match instance.phase {
        InstancePhase::Exited { finished_at, .. } => finished_at,
        _ => instance.created_at,
    }
}

fn rollout_update(
    input: &PlanInput<'_>,
    new_available: usize,
    live: &[&ObservedInstance],
    plan: &mut Plan,
) -> Option<RolloutUpdate> {
    let PlanInput {
        app,
        start_failure,
        now,
        ..
    } = *input;
    let rollout = &app.rollout;
    if !rollout.phase.in_progress() {
        return None;
    }
    let target = app.current_revision;
    let old_left = live.iter().any(|i| i.revision != target);
    if new_available >= app.replicas as usize && !old_left {
        return Some(RolloutUpdate::Complete);
    }
    if let Some(failure) = start_failure.filter(|f| f.revision == target && f.permanent) {
        return Some(RolloutUpdate::Failed {
            reason: failure.reason.clone(),
        });
    }
    if new_available as u32 > rollout.available {
        return Some(RolloutUpdate::Progress {
            available: new_available as u32,
        });
    }
    let deadline = rollout
        .progress_at
        .saturating_add(app.strategy.progress_deadline_ms as i64);
    if deadline <= now {
        let seconds = app.strategy.progress_deadline_ms.div_ceil(1000);
        let mut reason = format!(
            "revision {target} not ready within {seconds} s ({new_available} of {} instances available)",
            app.replicas
        );
        if let Some(failure) = start_failure.filter(|f| f.revision == target) {
            reason.push_str(&format!("; last start failure: {}", failure.reason));
        } else if let Some(probe_failure) = live
            .iter()
            .filter(|i| i.revision == target)
            .find_map(|i| i.last_failure.clone())
        {
            reason.push_str(&format!("; last probe: {probe_failure}"));
        }
        return Some(RolloutUpdate::Failed { reason });
    }
    plan.wake_at(deadline, now);
    None
}

/// Applies a rollout update to the app; returns the events that tell what happened.
///
/// A failed rollout moves the app back to its last stable revision (an automatic rollback)
/// when there is one; a failed rollback, or a failure with nothing to go back to, ends as
/// [`RolloutPhase::Failed`].
pub fn advance_rollout(app: &mut App, update: &RolloutUpdate, now: Millis) -> Vec<Event> {
    let name = app.name.clone();
    let target = app.current_revision;
    let rollout = &mut app.rollout;
    match update {
        RolloutUpdate::Progress { available } => {
            rollout.available = *available;
            rollout.progress_at = now;
            Vec::new()
        }
        RolloutUpdate::CanaryStarted => {
            rollout.available = rollout.available.max(1);
            rollout.progress_at = now;
            rollout.canary = Some(CanaryProgress {
                started_at: now,
                passed: false,
            });
            let Some(canary) = &app.strategy.canary else {
                return Vec::new();
            };
            let from = app
                .stable_revision
                .map_or_else(|| "?".to_string(), |r| r.to_string());
            let share = canary.share();
            let seconds = canary.duration_ms.div_ceil(1000);
            vec![
                Event::new(
                    &name,
                    now,
                    EventKind::CanaryStarted,
                    format!(
                        "canary of revision {target} takes {share} for {seconds} s; the rest \
                         stays on revision {from}"
                    ),
                )
                .revision(target)
                .param("share", share)
                .param("seconds", seconds),
            ]
        }
        RolloutUpdate::CanaryPassed { message } => {
            rollout.progress_at = now;
            if let Some(progress) = &mut rollout.canary {
                progress.passed = true;
            }
            vec![
                Event::new(&name, now, EventKind::CanaryPassed, message.clone())
                    .revision(target)
                    .param("verdict", message),
            ]
        }
        RolloutUpdate::Complete => {
            rollout.finished_at = Some(now);
            let event = if rollout.phase == RolloutPhase::RollingBack {
                rollout.phase = RolloutPhase::RolledBack;
                let failed = rollout
                    .failed_revision
                    .map_or_else(|| "?".to_string(), |r| r.to_string());
                let reason = rollout.message.clone();
                rollout.message = format!(
                    "rolled back to revision {target} after revision {failed} failed: {reason}"
                );
                Event::new(&name, now, EventKind::RolledBack, rollout.message.clone())
                    .param("failed", failed)
                    .param("reason", reason)
            } else {
                rollout.phase = RolloutPhase::Complete;
                rollout.message =
                    format!("revision {target} is running on {} instances", app.replicas);
                Event::new(
                    &name,
                    now,
                    EventKind::RolloutComplete,
                    rollout.message.clone(),
                )
                .param("replicas", app.replicas)
            };
            rollout.available = app.replicas;
            app.stable_revision = Some(target);
            vec![event.revision(target)]
        }
        RolloutUpdate::Failed { reason } => {
            let mut events = vec![
                Event::new(
                    &name,
                    now,
                    EventKind::RolloutFailed,
                    format!("revision {target} failed: {reason}"),
                )
                .revision(target)
                .param("reason", reason),
            ];
            match app.stable_revision {
                Some(stable) if stable != target && rollout.phase == RolloutPhase::Progressing => {
                    rollout.phase = RolloutPhase::RollingBack;
                    rollout.failed_revision = Some(target);
                    rollout.revision = stable;
                    rollout.message = reason.clone();
                    rollout.started_at = now;
                    rollout.progress_at = now;
                    rollout.available = 0;
                    app.current_revision = stable;
                    events.push(
                        Event::new(
                            &name,
                            now,
                            EventKind::RollbackStarted,
                            format!("{reason} → rolling back to revision {stable}"),
                        )
                        .revision(stable)
                        .param("failed", target)
                        .param("reason", reason),
                    );
                }
                _ => {
                    let rolling_back = rollout.phase == RolloutPhase::RollingBack;
                    rollout.phase = RolloutPhase::Failed;
                    rollout.finished_at = Some(now);
                    rollout.message = if rolling_back {
                        format!("rollback to revision {target} failed too: {reason}")
                    } else {
                        reason.clone()
                    };
                    if rollout.failed_revision.is_none() {
                        rollout.failed_revision = Some(target);
                    }
                }
            }
            events
        }
    }
}

#[cfg(test)]
mod tests;
