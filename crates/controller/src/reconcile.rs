//! One reconcile of one app: observe, plan (pure, in `berth_core`), execute, record.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use berth_core::backoff::Backoff;
use berth_core::health::{InstanceHealth, Liveness, Readiness};
use berth_core::planner::{
    self, Action, BackOff, InstancePhase, ObservedInstance, PlanInput, RolloutUpdate, StartCause,
    StartFailure, StopCause,
};
use berth_core::volume::{VolumeScope, engine_volume_name, free_slot};
use berth_core::{App, Event, EventKind, Millis, Template};
use berth_engine::{
    ContainerState, EngineError, InstanceFile, InstanceSpec, ObservedContainer, Sensitive, labels,
};
use berth_store::StoreError;
use futures::future::join_all;
use tracing::Instrument;

use crate::endpoints::Endpoint;
use crate::prober::ProbeTarget;
use crate::{Shared, lock};

/// An instance as shown to users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceStatus {
    pub name: String,
    pub container_id: String,
    pub revision: u32,
    pub phase: InstancePhase,
    /// Address on the Berth network.
    pub address: Option<String>,
    pub port: Option<u16>,
    pub readiness: Readiness,
    pub liveness: Liveness,
    pub restarts: u32,
    pub created_at: Millis,
    pub started_at: Option<Millis>,
    pub last_failure: Option<String>,
    pub node: String,
    /// Set while a crash loop holds the replacement back.
    pub backoff: Option<BackOff>,
    /// CPU and memory use, once the running instance has been sampled.
    pub usage: Option<crate::InstanceUsage>,
}

/// Why a reconcile could not finish.
#[derive(Debug)]
enum ReconcileError {
    Engine(EngineError),
    Store(StoreError),
}

impl std::fmt::Display for ReconcileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReconcileError::Engine(e) => e.fmt(f),
            ReconcileError::Store(e) => e.fmt(f),
        }
    }
}

impl From<EngineError> for ReconcileError {
    fn from(e: EngineError) -> Self {
        ReconcileError::Engine(e)
    }
}

impl From<StoreError> for ReconcileError {
    fn from(e: StoreError) -> Self {
        ReconcileError::Store(e)
    }
}

/// Reconciles `app` once; returns when to do it again regardless of events.
pub(crate) async fn reconcile(shared: &Arc<Shared>, app: &str) -> Option<Duration> {
    // `instrument`, not `span.enter()`: a guard held across `.await` corrupts the span stack of
    // whichever task runs next on this thread.
    let span = tracing::info_span!("reconcile", app);
    let started = std::time::Instant::now();
    let result = reconcile_inner(shared, app).instrument(span).await;
    let outcome = match &result {
        Ok(_) => "ok",
        Err(ReconcileError::Engine(_)) => "engine",
        Err(ReconcileError::Store(_)) => "store",
    };
    shared
        .metrics
        .reconciled(outcome, started.elapsed().as_secs_f64());
    match result {
        Ok(requeue) => {
            lock(&shared.failures).remove(app);
            if lock(&shared.engine_error).take().is_some() {
                tracing::info!("engine reachable again");
            }
            requeue
        }
        Err(error) => {
            let attempt = {
                let mut failures = lock(&shared.failures);
                let count = failures.entry(app.to_string()).or_insert(0);
                *count = count.saturating_add(1);
                *count
            };
            tracing::warn!(%error, attempt, "reconcile failed; retrying with backoff");
            if let ReconcileError::Engine(e) = &error {
                let message = e.to_string();
                let changed =
                    lock(&shared.engine_error).replace(message.clone()).as_ref() != Some(&message);
                if changed || attempt == 1 {
                    let now = (shared.clock)();
                    shared
                        .record_events(vec![
                            Event::new(app, now, EventKind::EngineError, message.clone())
                                .param("reason", message),
                        ])
                        .await;
                }
            }
            let delay = Backoff {
                base_ms: 500,
                cap_ms: 30_000,
                reset_after_ms: 0,
            }
            .delay_ms(attempt);
            Some(Duration::from_millis(delay))
        }
    }
}

async fn reconcile_inner(
    shared: &Arc<Shared>,
    name: &str,
) -> Result<Option<Duration>, ReconcileError> {
    let Some(mut app) = shared.store.get_app(name).await? else {
        remove_all(shared, name).await?;
        return Ok(None);
    };
    let containers = shared.list_instances(Some(name)).await?;
    let templates = load_templates(shared, &app, &containers).await?;
    let now = (shared.clock)();
    let instances = observe(shared, &containers, &templates);
    shared
        .endpoints
        .set_app(name, ready_endpoints(&containers, &instances, &templates));
    sync_probes(shared, &app, &containers, &templates);
    report_exits(shared, &app, &instances).await;

    let start_failure = lock(&shared.start_failures).get(name).cloned();
    let canary_traffic = shared.traffic.get().and_then(|source| {
        let endpoints = shared.endpoints.current();
        let endpoints = endpoints.get(name).map_or(&[][..], Vec::as_slice);
        shared
            .canary_counts
            .traffic(source.as_ref(), &app, endpoints, now)
    });
    let plan = planner::plan(&PlanInput {
        app: &app,
        instances: &instances,
        start_failure: start_failure.as_ref(),
        backoff: shared.config.backoff,
        now,
        canary_traffic: canary_traffic.as_ref(),
    });
    report_backoffs(shared, &app, &plan.backing_off).await;

    // The rollout's progress and the slots of the planned starts are stored in one write
    // before anything starts, so an ordinal is never handed out twice (not after a restart
    // either). The version check makes a concurrent change (an API write) win: plan again.
    if plan.rollout.is_some() || plan.next_ordinal != app.next_ordinal {
        let mut updated = app.clone();
        updated.next_ordinal = plan.next_ordinal;
        let events = match &plan.rollout {
            Some(update) => {
                updated.updated_at = now;
                planner::advance_rollout(&mut updated, update, now)
            }
            None => Vec::new(),
        };
        match shared.store.update_app(&updated).await {
            Ok(stored) => app = stored,
            // Someone changed the app meanwhile: plan again from the new state.
            Err(StoreError::Conflict(_)) => return Ok(Some(Duration::ZERO)),
            Err(e) => return Err(e.into()),
        }
        shared.record_events(events).await;
        if matches!(plan.rollout, Some(RolloutUpdate::Failed { .. })) {
            // The target changed (rolled back): the actions were planned for the old target.
            lock(&shared.start_failures).remove(name);
            return Ok(Some(Duration::ZERO));
        }
    }

    let target = templates
        .get(&app.current_revision)
        .cloned()
        .ok_or_else(|| {
            StoreError::NotFound(format!(
                "revision {} of app {}",
                app.current_revision, app.name
            ))
        })?;
    execute(shared, &app, &target, &containers, plan.actions).await?;
    // Only timers of the plan requeue; the periodic resync wakes every app anyway.
    Ok(plan.requeue_after_ms.map(Duration::from_millis))
}

/// The instances that may take traffic: running (not stopping), ready, with an address.
fn ready_endpoints(
    containers: &[ObservedContainer],
    instances: &[ObservedInstance],
    templates: &HashMap<u32, Template>,
) -> Vec<Endpoint> {
    instances
        .iter()
        .filter(|i| {
            i.phase == InstancePhase::Running && matches!(i.readiness, Readiness::Ready { .. })
        })
        .filter_map(|i| {
            let container = containers.iter().find(|c| c.id == i.container_id)?;
            Some(Endpoint {
                container_id: i.container_id.clone(),
                instance: i.name.clone(),
                address: container.ip_address.clone()?,
                port: container.reachable_port(templates.get(&i.revision)?.port),
                revision: i.revision,
            })
        })
        .collect()
}

/// The templates of the current revision and of every revision an instance runs.
async fn load_templates(
    shared: &Arc<Shared>,
    app: &App,
    containers: &[ObservedContainer],
) -> Result<HashMap<u32, Template>, StoreError> {
    let mut numbers: HashSet<u32> = containers.iter().filter_map(revision_of).collect();
    numbers.insert(app.current_revision);
    let mut templates = HashMap::new();
    for number in numbers {
        if let Some(revision) = shared.store.get_revision(&app.name, number).await? {
            templates.insert(number, revision.template);
        }
    }
    Ok(templates)
}

fn label<'a>(container: &'a ObservedContainer, key: &str) -> Option<&'a str> {
    container.labels.get(key).map(String::as_str)
}

fn revision_of(container: &ObservedContainer) -> Option<u32> {
    label(container, labels::REVISION)?.parse().ok()
}

/// Joins engine containers with probe state into the planner's view.
fn observe(
    shared: &Shared,
    containers: &[ObservedContainer],
    templates: &HashMap<u32, Template>,
) -> Vec<ObservedInstance> {
    let terminating = lock(&shared.terminating);
    containers
        .iter()
        .map(|c| {
            let revision = revision_of(c).unwrap_or(0);
            let phase = if terminating.contains_key(&c.id) {
                InstancePhase::Terminating
            } else {
                match c.state {
                    ContainerState::Running => InstancePhase::Running,
                    // Made but never started before these controllers started: a start cut
                    // off by a server that died (or lost the lead) between the two. Nobody
                    // will start it: it counts as exited, so it is replaced and removed.
                    ContainerState::Created
                        if shared
                            .started_at
                            .get()
                            .is_some_and(|started| c.created_at_ms < *started) =>
                    {
                        InstancePhase::Exited {
                            finished_at: c.created_at_ms,
                            exit_code: None,
                        }
                    }
                    ContainerState::Created
                    | ContainerState::Restarting
                    | ContainerState::Paused => InstancePhase::Starting,
                    ContainerState::Removing => InstancePhase::Terminating,
                    ContainerState::Exited | ContainerState::Dead => InstancePhase::Exited {
                        finished_at: c.finished_at_ms.unwrap_or(c.created_at_ms),
                        exit_code: c.exit_code,
                    },
                }
            };
            let has_readiness = templates
                .get(&revision)
                .is_some_and(|t| t.readiness.is_some());
            let health = match (phase, has_readiness) {
                (InstancePhase::Running, false) => {
                    let mut health = InstanceHealth::ready_without_probe(
                        c.started_at_ms.unwrap_or(c.created_at_ms),
                    );
                    if let Some(probed) = shared.prober.health(&c.id) {
                        health.liveness = probed.liveness;
                        health.last_failure = probed.last_failure;
                    }
                    health
                }
                _ => shared.prober.health(&c.id).unwrap_or_default(),
            };
            ObservedInstance {
                container_id: c.id.clone(),
                name: label(c, labels::INSTANCE).unwrap_or(&c.name).to_string(),
                ordinal: label(c, labels::ORDINAL)
                    .and_then(|o| o.parse().ok())
                    .unwrap_or(0),
                revision,
                restarts: label(c, labels::RESTARTS)
                    .and_then(|r| r.parse().ok())
                    .unwrap_or(0),
                phase,
                created_at: c.created_at_ms,
                started_at: c.started_at_ms,
                readiness: health.readiness,
                liveness: health.liveness,
                last_failure: health.last_failure,
                evicted: c.node_draining,
            }
        })
        .collect()
}

/// Points the prober at the app's running instances.
fn sync_probes(
    shared: &Arc<Shared>,
    app: &App,
    containers: &[ObservedContainer],
    templates: &HashMap<u32, Template>,
) {
    let terminating = lock(&shared.terminating).clone();
    let targets = containers
        .iter()
        .filter(|c| c.state == ContainerState::Running && !terminating.contains_key(&c.id))
        .filter_map(|c| {
            let revision = revision_of(c)?;
            let template = templates.get(&revision)?;
            if template.readiness.is_none() && template.liveness.is_none() {
                return None;
            }
            Some(ProbeTarget {
                container_id: c.id.clone(),
                instance: label(c, labels::INSTANCE).unwrap_or(&c.name).to_string(),
                app: app.name.clone(),
                address: c.ip_address.clone()?,
                port: template.port,
                published_ports: c.published_ports.clone(),
                revision,
                started_at: c.started_at_ms.unwrap_or(c.created_at_ms),
                readiness: template.readiness.clone(),
                liveness: template.liveness.clone(),
            })
        })
        .collect();
    crate::Prober::sync(shared, &app.name, targets);
}

/// Records once per container that it exited, and forgets reports of vanished containers.
async fn report_exits(shared: &Shared, app: &App, instances: &[ObservedInstance]) {
    let now = (shared.clock)();
    let mut events = Vec::new();
    {
        let mut reported = lock(&shared.reported);
        let seen = reported.entry(app.name.clone()).or_default();
        // Keys start with the container id (exits) or the instance name (backoffs); keep
        // those of instances that still exist.
        let present: HashSet<&str> = instances
            .iter()
            .flat_map(|i| [i.container_id.as_str(), i.name.as_str()])
            .collect();
        seen.retain(|key| key.split('/').next().is_some_and(|id| present.contains(id)));
        for instance in instances {
            if let InstancePhase::Exited { exit_code, .. } = instance.phase
                && seen.insert(format!("{}/exited", instance.container_id))
            {
                let code = exit_code.map_or_else(|| "unknown".to_string(), |c| c.to_string());
                events.push(
                    Event::new(
                        &app.name,
                        now,
                        EventKind::InstanceCrashed,
                        format!("instance {} exited with code {code}", instance.name),
                    )
                    .param("code", &code)
                    .instance(&instance.name)
                    .revision(instance.revision),
                );
            }
        }
    }
    shared.record_events(events).await;
}

/// Records once per crash count that a replacement is backing off, and keeps the current list
/// for status output.
async fn report_backoffs(shared: &Shared, app: &App, backoffs: &[BackOff]) {
    let now = (shared.clock)();
    let mut events = Vec::new();
    {
        let mut reported = lock(&shared.reported);
        let seen = reported.entry(app.name.clone()).or_default();
        for backoff in backoffs {
            if seen.insert(format!("{}/backoff/{}", backoff.instance, backoff.restarts)) {
                let seconds = ((backoff.until - now).max(0) as f64 / 1000.0).ceil();
                events.push(
                    Event::new(
                        &app.name,
                        now,
                        EventKind::CrashLoopBackOff,
                        format!(
                            "instance {} crashed {} times in a row → next restart in {seconds} s",
                            backoff.instance, backoff.restarts
                        ),
                    )
                    .param("restarts", backoff.restarts)
                    .param("seconds", seconds)
                    .instance(&backoff.instance),
                );
            }
        }
    }
    lock(&shared.backing_off).insert(app.name.clone(), backoffs.to_vec());
    shared
        .endpoints
        .set_backing_off(&app.name, !backoffs.is_empty());
    shared.record_events(events).await;
}

/// Applies the planned actions: starts in parallel, stops in the background.
async fn execute(
    shared: &Arc<Shared>,
    app: &App,
    target: &Template,
    containers: &[ObservedContainer],
    actions: Vec<Action>,
) -> Result<(), ReconcileError> {
    let starts: Vec<(u64, u32, u32, StartCause)> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Start {
                ordinal,
                revision,
                restarts,
                cause,
            } => Some((*ordinal, *revision, *restarts, cause.clone())),
            Action::Stop { .. } => None,
        })
        .collect();
    for action in &actions {
        if let Action::Stop {
            container_id,
            instance,
            cause,
        } = action
        {
            stop_in_background(
                shared,
                app,
                container_id,
                instance,
                cause,
                target.stop_grace_ms,
            );
        }
    }
    if starts.is_empty() {
        return Ok(());
    }
    // Instances join their team's network; make sure it exists (someone may have removed it).
    shared
        .runtime
        .ensure_network(&team_network(&shared.config.namespace, &app.team))
        .await?;
    let now = (shared.clock)();
    if let Err(error) = shared
        .runtime
        .ensure_image(&target.image, shared.pull_auth(&target.image).as_ref())
        .await
    {
        let permanent = matches!(error, EngineError::ImageNotFound { .. });
        if !permanent {
            return Err(error.into());
        }
        record_start_failure(shared, app, error.to_string(), true, now).await;
        return Ok(());
    }
    let (secret_env, files) = match open_secrets(shared, app, target).await {
        Ok(opened) => opened,
        Err(reason) => {
            record_start_failure(shared, app, reason, true, now).await;
            return Ok(());
        }
    };
    let mut slots = held_volume_slots(containers);
    let specs: Vec<(InstanceSpec, StartCause)> = starts
        .into_iter()
        .map(|(ordinal, revision, restarts, cause)| {
            let slot = target
                .volumes
                .iter()
                .any(|m| m.scope == VolumeScope::PerInstance)
                .then(|| {
                    let slot = free_slot(&slots);
                    slots.insert(slot);
                    slot
                });
            let start = InstanceStart {
                revision,
                ordinal,
                restarts,
                volume_slot: slot,
            };
            let mut spec = instance_spec(shared, app, target, &start);
            spec.secret_env = secret_env.clone();
            spec.files = files.clone();
            (spec, cause)
        })
        .collect();
    // The volumes exist, labelled, before any container mounts them (Docker would make a
    // missing one without labels).
    let mut made = BTreeSet::new();
    for (spec, _) in &specs {
        let slot = spec
            .labels
            .get(labels::VOLUME_SLOT)
            .and_then(|s| s.parse().ok());
        for (mount, volume_labels) in instance_volumes(&shared.config.namespace, app, target, slot)
        {
            if made.insert(mount.volume.clone()) {
                shared
                    .runtime
                    .ensure_volume(&mount.volume, &volume_labels)
                    .await?;
            }
        }
    }
    let launches = specs.into_iter().map(|(spec, cause)| async move {
        (
            spec.labels[labels::INSTANCE].clone(),
            cause,
            shared.runtime.start_instance(&spec).await,
        )
    });
    let results = join_all(launches).await;
    let now = (shared.clock)();
    let mut events = Vec::new();
    let mut failure = None;
    for (instance, cause, result) in results {
        match result {
            Ok(_) => {
                let why = match &cause {
                    StartCause::ScaleUp => "to reach the desired instance count".to_string(),
                    StartCause::Rollout => format!("rolling out revision {}", app.current_revision),
                    StartCause::NodeDrain => {
                        "to replace an instance on a node being drained".to_string()
                    }
                    StartCause::ReplaceCrashed {
                        instance: old,
                        exit_code,
                    } => {
                        // What the engine said about its end (e.g. its node went down).
                        let reason = containers
                            .iter()
                            .find(|c| label(c, labels::INSTANCE) == Some(old.as_str()))
                            .and_then(|c| c.error.as_deref())
                            .map(|error| format!(" ({error})"))
                            .unwrap_or_default();
                        format!(
                            "replacing {old}, which exited with code {}{reason}",
                            exit_code.map_or_else(|| "unknown".to_string(), |c| c.to_string())
                        )
                    }
                };
                let (kind, params) = match cause {
                    StartCause::ReplaceCrashed {
                        instance: old,
                        exit_code,
                    } => (
                        EventKind::InstanceReplaced,
                        vec![
                            ("cause", "replace_crashed".to_string()),
                            ("old", old),
                            (
                                "code",
                                exit_code.map_or_else(|| "unknown".to_string(), |c| c.to_string()),
                            ),
                        ],
                    ),
                    StartCause::ScaleUp => (
                        EventKind::InstanceStarted,
                        vec![("cause", "scale_up".to_string())],
                    ),
                    StartCause::Rollout => (
                        EventKind::InstanceStarted,
                        vec![("cause", "rollout".to_string())],
                    ),
                    StartCause::NodeDrain => (
                        EventKind::InstanceStarted,
                        vec![("cause", "node_drain".to_string())],
                    ),
                };
                let event = Event::new(
                    &app.name,
                    now,
                    kind,
                    format!(
                        "started instance {instance} (revision {}) {why}",
                        app.current_revision
                    ),
                )
                .instance(&instance)
                .revision(app.current_revision);
                events.push(
                    params
                        .into_iter()
                        .fold(event, |event, (key, value)| event.param(key, value)),
                );
            }
            Err(error) => failure = Some(error),
        }
    }
    shared.record_events(events).await;
    match failure {
        None => {
            lock(&shared.start_failures).remove(&app.name);
        }
        Some(EngineError::Unreachable(message)) => {
            return Err(EngineError::Unreachable(message).into());
        }
        Some(error) => {
            let permanent = matches!(error, EngineError::ImageNotFound { .. });
            record_start_failure(shared, app, error.to_string(), permanent, now).await;
        }
    }
    Ok(())
}

async fn record_start_failure(
    shared: &Arc<Shared>,
    app: &App,
    reason: String,
    permanent: bool,
    now: Millis,
) {
    let revision = app.current_revision;
    let attempts = {
        let mut failures = lock(&shared.start_failures);
        let attempts = failures
            .get(&app.name)
            .filter(|f| f.revision == revision)
            .map_or(0, |f| f.attempts)
            + 1;
        failures.insert(
            app.name.clone(),
            StartFailure {
                revision,
                reason: reason.clone(),
                at: now,
                attempts,
                permanent,
            },
        );
        attempts
    };
    let message =
        format!("cannot start an instance of revision {revision}: {reason} (attempt {attempts})");
    shared
        .record_events(vec![
            Event::new(&app.name, now, EventKind::StartFailed, message)
                .revision(revision)
                .param("reason", &reason)
                .param("attempts", attempts),
        ])
        .await;
    shared.queue.add(&app.name);
}

/// The Docker network of a team's instances: apps reach their own team's apps by name and
/// nothing of other teams (no route, no name) — one bridge network per team and namespace.
pub fn team_network(namespace: &str, team: &str) -> String {
    format!("{namespace}-team-{team}")
}

/// The values of the secrets `template` uses, opened through the server's secret source:
/// the variables they set and the files they become. `Err` says why the app cannot start.
async fn open_secrets(
    shared: &Shared,
    app: &App,
    template: &Template,
) -> Result<(BTreeMap<String, Sensitive>, Vec<InstanceFile>), String> {
    let mut env = BTreeMap::new();
    let mut files = Vec::new();
    if template.secrets.is_empty() {
        return Ok((env, files));
    }
    let Some(source) = shared.secrets.get() else {
        return Err("this server cannot open secrets".to_string());
    };
    for secret in &template.secrets {
        let value = source
            .secret_value(&app.team, &secret.name, secret.version)
            .await
            .map_err(|why| {
                format!(
                    "secret {} version {} cannot be opened: {why}",
                    secret.name, secret.version
                )
            })?;
        match (&secret.env, &secret.path) {
            (Some(var), _) => {
                if value.contains(&0) || std::str::from_utf8(&value).is_err() {
                    return Err(format!(
                        "secret {} is not text, so it cannot be the variable {var}: give it as a file",
                        secret.name
                    ));
                }
                env.insert(var.clone(), Sensitive(value));
            }
            (None, Some(path)) => files.push(InstanceFile {
                path: path.clone(),
                contents: Sensitive(value),
            }),
            (None, None) => {}
        }
    }
    Ok((env, files))
}

/// The per-instance volume slots held by the app's containers that can still write: a
/// container that exited frees its slot for its replacement.
fn held_volume_slots(containers: &[ObservedContainer]) -> BTreeSet<u32> {
    containers
        .iter()
        .filter(|c| !matches!(c.state, ContainerState::Exited | ContainerState::Dead))
        .filter_map(|c| c.labels.get(labels::VOLUME_SLOT)?.parse().ok())
        .collect()
}

/// The engine volumes an instance holding `slot` mounts (per-instance ones at that slot),
/// each with the labels it is made with: namespace, team, name, and slot.
fn instance_volumes(
    namespace: &str,
    app: &App,
    template: &Template,
    slot: Option<u32>,
) -> Vec<(berth_engine::VolumeMount, BTreeMap<String, String>)> {
    template
        .volumes
        .iter()
        .map(|mount| {
            let slot = slot.filter(|_| mount.scope == VolumeScope::PerInstance);
            let mut volume_labels = BTreeMap::from([
                (labels::NAMESPACE.to_string(), namespace.to_string()),
                (labels::TEAM.to_string(), app.team.clone()),
                (labels::VOLUME.to_string(), mount.name.clone()),
            ]);
            if let Some(slot) = slot {
                volume_labels.insert(labels::VOLUME_SLOT.to_string(), slot.to_string());
            }
            let engine_mount = berth_engine::VolumeMount {
                volume: engine_volume_name(namespace, &app.team, &mount.name, slot),
                target: mount.path.clone(),
                read_only: mount.read_only,
            };
            (engine_mount, volume_labels)
        })
        .collect()
}

/// What one start is: the revision, the instance's ordinal, its crash count and its volume slot.
struct InstanceStart {
    revision: u32,
    ordinal: u64,
    restarts: u32,
    volume_slot: Option<u32>,
}

fn instance_spec(
    shared: &Shared,
    app: &App,
    template: &Template,
    start: &InstanceStart,
) -> InstanceSpec {
    let InstanceStart {
        revision,
        ordinal,
        restarts,
        volume_slot,
    } = *start;
    let namespace = &shared.config.namespace;
    let instance = format!("{}-{ordinal}", app.name);
    let mut container_labels: BTreeMap<String, String> = template.labels.clone();
    container_labels.extend([
        (labels::NAMESPACE.to_string(), namespace.clone()),
        (labels::APP.to_string(), app.name.clone()),
        (labels::REVISION.to_string(), revision.to_string()),
        (labels::INSTANCE.to_string(), instance.clone()),
        (labels::ORDINAL.to_string(), ordinal.to_string()),
        (labels::RESTARTS.to_string(), restarts.to_string()),
    ]);
    if let Some(slot) = volume_slot {
        container_labels.insert(labels::VOLUME_SLOT.to_string(), slot.to_string());
    }
    let mut env = template.env.clone();
    env.entry("PORT".to_string())
        .or_insert_with(|| template.port.to_string());
    env.insert("BERTH_APP".into(), app.name.clone());
    env.insert("BERTH_INSTANCE".into(), instance.clone());
    env.insert("BERTH_REVISION".into(), revision.to_string());
    InstanceSpec {
        name: format!("{namespace}-{instance}"),
        image: template.image.clone(),
        command: template.command.clone(),
        args: template.args.clone(),
        env,
        labels: container_labels,
        network: team_network(namespace, &app.team),
        network_aliases: vec![app.name.clone()],
        cpu_millis: template.resources.cpu_millis,
        memory_bytes: template.resources.memory_bytes,
        stop_grace: Duration::from_millis(template.stop_grace_ms),
        registry_auth: shared.pull_auth(&template.image),
        mounts: instance_volumes(namespace, app, template, volume_slot)
            .into_iter()
            .map(|(mount, _)| mount)
            .collect(),
        secret_env: BTreeMap::new(),
        files: Vec::new(),
        ports: served_ports(template),
        node_constraints: template
            .node_constraints
            .iter()
            .map(|c| berth_engine::NodeLabelConstraint {
                label: c.label.clone(),
                equal: c.equal,
                value: c.value.clone(),
            })
            .collect(),
    }
}

/// The ports an instance of `template` serves on: the app's and its probes', once each.
fn served_ports(template: &Template) -> Vec<u16> {
    let mut ports = vec![template.port];
    for probe in [&template.readiness, &template.liveness]
        .into_iter()
        .flatten()
    {
        if let Some(port) = probe.port {
            ports.push(port);
        }
    }
    ports.sort_unstable();
    ports.dedup();
    ports
}

fn stop_in_background(
    shared: &Arc<Shared>,
    app: &App,
    container_id: &str,
    instance: &str,
    cause: &StopCause,
    grace_ms: u64,
) {
    let now = (shared.clock)();
    if lock(&shared.terminating)
        .insert(container_id.to_string(), now)
        .is_some()
    {
        return;
    }
    shared.prober.forget(container_id);
    shared.forget_recorded_health(vec![container_id.to_string()]);
    // Out of the endpoint table before anything else: no new request goes to it.
    let endpoint = shared.endpoints.remove(&app.name, container_id);
    let (why, code) = match cause {
        StopCause::ScaleDown => ("scaled down", "scale_down"),
        StopCause::Superseded => ("replaced by the new revision", "superseded"),
        StopCause::Unhealthy => ("failing liveness, replacement is ready", "unhealthy"),
        StopCause::Exited => ("exited; container removed", "exited"),
        StopCause::NodeDrained => (
            "its node is being drained, its replacement is ready",
            "node_drained",
        ),
    };
    let event = Event::new(
        &app.name,
        now,
        EventKind::InstanceStopped,
        format!("stopped instance {instance}: {why}"),
    )
    .param("cause", code)
    .instance(instance);
    let shared = Arc::clone(shared);
    let app = app.name.clone();
    let id = container_id.to_string();
    tokio::spawn(async move {
        shared.record_events(vec![event]).await;
        // The requests already sent to it finish before it is told to stop.
        if let (Some(endpoint), Some(drain)) = (endpoint, shared.drain.get()) {
            drain
                .drained(
                    &endpoint.address,
                    endpoint.port,
                    shared.config.drain_patience,
                )
                .await;
        }
        if let Err(error) = shared
            .runtime
            .stop_instance(&id, Duration::from_millis(grace_ms))
            .await
        {
            tracing::warn!(%error, container = %id, "stopping an instance failed");
        }
        lock(&shared.terminating).remove(&id);
        shared.queue.add(&app);
    });
}

/// Stops and removes every container of an app that no longer exists.
pub(crate) async fn remove_all(shared: &Arc<Shared>, app: &str) -> Result<usize, EngineError> {
    shared.endpoints.remove_app(app);
    let containers = shared.list_instances(Some(app)).await?;
    shared.forget_recorded_health(containers.iter().map(|c| c.id.clone()).collect());
    let stops = containers.iter().map(|c| {
        shared.prober.forget(&c.id);
        shared.runtime.stop_instance(&c.id, Duration::from_secs(10))
    });
    let results = join_all(stops).await;
    lock(&shared.start_failures).remove(app);
    lock(&shared.backing_off).remove(app);
    lock(&shared.reported).remove(app);
    for result in &results {
        if let Err(error) = result {
            tracing::warn!(%error, app, "removing a container failed");
        }
    }
    results
        .into_iter()
        .collect::<Result<Vec<()>, _>>()
        .map(|v| v.len())
}

/// The app's instances with their health, for the API.
pub(crate) async fn instance_statuses(
    shared: &Arc<Shared>,
    app: &App,
) -> Result<Vec<InstanceStatus>, EngineError> {
    let containers = shared.list_instances(Some(&app.name)).await?;
    Ok(statuses_of(shared, app, containers).await)
}

/// The instances of several apps with one engine listing.
pub(crate) async fn instance_statuses_of_all(
    shared: &Arc<Shared>,
    apps: &[App],
) -> Result<HashMap<String, Vec<InstanceStatus>>, EngineError> {
    let mut by_app: HashMap<String, Vec<ObservedContainer>> = HashMap::new();
    for container in shared.list_instances(None).await? {
        if let Some(app) = label(&container, labels::APP) {
            by_app.entry(app.to_string()).or_default().push(container);
        }
    }
    let mut statuses = HashMap::new();
    for app in apps {
        let containers = by_app.remove(&app.name).unwrap_or_default();
        statuses.insert(app.name.clone(), statuses_of(shared, app, containers).await);
    }
    Ok(statuses)
}

async fn statuses_of(
    shared: &Arc<Shared>,
    app: &App,
    containers: Vec<ObservedContainer>,
) -> Vec<InstanceStatus> {
    let templates = load_templates(shared, app, &containers)
        .await
        .unwrap_or_default();
    let mut instances = observe(shared, &containers, &templates);
    show_recorded_health(shared, app, &containers, &mut instances).await;
    let backoffs = lock(&shared.backing_off)
        .get(&app.name)
        .cloned()
        .unwrap_or_default();
    let mut statuses: Vec<InstanceStatus> = containers
        .iter()
        .zip(instances)
        .map(|(container, instance)| InstanceStatus {
            backoff: backoffs
                .iter()
                .find(|b| b.instance == instance.name)
                .cloned(),
            port: templates
                .get(&instance.revision)
                .map(|t| container.reachable_port(t.port)),
            name: instance.name,
            container_id: instance.container_id,
            revision: instance.revision,
            phase: instance.phase,
            address: container.ip_address.clone(),
            readiness: instance.readiness,
            liveness: instance.liveness,
            restarts: instance.restarts,
            created_at: instance.created_at,
            started_at: instance.started_at,
            last_failure: instance.last_failure,
            node: container.node.clone(),
            usage: shared.usage.instance(&container.id),
        })
        .collect();
    statuses.sort_by_key(|s| label_ordinal(&s.name));
    statuses
}

/// On a server whose controllers do not run (a follower), the health recorded by the server
/// that runs them, so every server shows what the prober found. Where the controllers run,
/// their own prober is the word (and the store is not asked on every status read).
async fn show_recorded_health(
    shared: &Arc<Shared>,
    app: &App,
    containers: &[ObservedContainer],
    instances: &mut [ObservedInstance],
) {
    if shared.started_at.get().is_some() {
        return;
    }
    let unprobed = |c: &ObservedContainer| {
        c.state == berth_engine::ContainerState::Running && shared.prober.health(&c.id).is_none()
    };
    if !containers.iter().any(unprobed) {
        return;
    }
    let recorded = match shared.store.instance_health(&app.name).await {
        Ok(recorded) => recorded,
        Err(error) => {
            tracing::debug!(%error, app = %app.name, "cannot read the recorded health");
            return;
        }
    };
    for (container, instance) in containers.iter().zip(instances.iter_mut()) {
        if !unprobed(container) {
            continue;
        }
        if let Some(health) = recorded.get(&container.id) {
            instance.readiness = health.readiness;
            instance.liveness = health.liveness;
            instance.last_failure = health.last_failure.clone();
        }
    }
}

fn label_ordinal(instance: &str) -> u64 {
    instance
        .rsplit('-')
        .next()
        .and_then(|o| o.parse().ok())
        .unwrap_or(0)
}
