//! Operations on apps: create, deploy, scale, roll back, delete, and reading one.
//!
//! Every change is an optimistic update of the app (retried on a concurrent write), admitted
//! against the team's quota under the team's lock, stored with its revision, recorded as
//! events, and followed by a wake-up of the controller, which does the rest.

use berth_core::accounts::TeamAction;
use berth_core::change::AppChange;
use berth_core::quota::app_usage;
use berth_core::routes::AppRoutes;
use berth_core::validate::{MAX_REPLICAS, validate_name, validate_spec};
use berth_core::{App, AppSpec, Event, EventKind, Revision, Rollout, Template};
use berth_store::{AppPage, ListedApp, Store, StoreError, StoreResult};

use crate::Platform;
use crate::actor::Actor;
use crate::autoscale::{refuse_manual_count, require_cpu_limit};
use crate::domains::{is_domain_conflict, lost_race};
use crate::error::{OpError, OpResult};
use crate::images::require_pull;
use crate::quota::{Budget, larger, rollout_peak, steady};

/// Attempts at an optimistic update before giving up.
const UPDATE_ATTEMPTS: usize = 5;

/// Apps read per store query when every app is wanted.
const LIST_CHUNK: u32 = 500;

/// The apps of `teams` (`None`: every team) ordered by name, after `after`, with their current
/// templates: at most `limit` and the name to continue after when more remain, or (`limit`
/// `None`) all of them, a page per store query. The one walk over apps that every reader
/// shares (the API's list, the router's table).
pub async fn list_apps(
    store: &dyn Store,
    teams: Option<Vec<String>>,
    after: Option<String>,
    limit: Option<u32>,
) -> StoreResult<(Vec<ListedApp>, Option<String>)> {
    let mut page = AppPage {
        teams,
        after,
        limit: limit.unwrap_or(LIST_CHUNK),
    };
    let mut listed = Vec::new();
    loop {
        let list = store.list_apps_page(&page).await?;
        listed.extend(list.apps);
        match list.next_after {
            Some(after) if limit.is_none() => page.after = Some(after),
            next => return Ok((listed, next)),
        }
    }
}

/// An app with the template of its current revision.
#[derive(Debug, Clone)]
pub struct CurrentApp {
    pub app: App,
    pub template: Template,
}

/// A new app: its name, its team (`None`: the actor's only team), and its spec as a change
/// of the default spec.
#[derive(Debug, Clone, Default)]
pub struct NewApp {
    pub name: String,
    pub team: Option<String>,
    pub spec: AppChange,
    /// Why (recorded on the first revision); default "create".
    pub reason: Option<String>,
}

/// What a modification did.
pub(crate) enum Modification {
    Unchanged,
    Settings(Vec<Event>),
    NewRevision(Box<Revision>, Vec<Event>),
}

impl Platform {
    /// The app and its current template, when the actor may do `action` on it (not found for
    /// apps of teams the actor cannot read, exactly as for missing ones).
    pub async fn app(&self, actor: &Actor, name: &str, action: TeamAction) -> OpResult<CurrentApp> {
        let what = format!("app {name}");
        let app = self
            .store
            .get_app(name)
            .await?
            .ok_or_else(|| OpError::not_found(&what))?;
        actor.require(&app.team, action, &what)?;
        self.with_template(app).await
    }

    /// The app and its current template, for Berth's own changes (no actor).
    pub(crate) async fn current_app(&self, name: &str) -> OpResult<CurrentApp> {
        let app = self
            .store
            .get_app(name)
            .await?
            .ok_or_else(|| OpError::not_found(format!("app {name}")))?;
        self.with_template(app).await
    }

    async fn with_template(&self, app: App) -> OpResult<CurrentApp> {
        let name = &app.name;
        let revision = self
            .store
            .get_revision(name, app.current_revision)
            .await?
            .ok_or_else(|| {
                OpError::not_found(format!("revision {} of app {name}", app.current_revision))
            })?;
        Ok(CurrentApp {
            app,
            template: revision.template,
        })
    }

    /// Creates an app; its first revision rolls out at once.
    pub async fn create_app(&self, actor: &Actor, new: NewApp) -> OpResult<CurrentApp> {
        let name = new.name;
        validate_name("name", &name)?;
        if new.spec.image.is_none() {
            return Err(OpError::field("image", "is required"));
        }
        let team = actor.team_for_new(new.team.as_deref(), TeamAction::Deploy)?;
        validate_name("team", &team)?;
        actor.require(&team, TeamAction::Deploy, &format!("team {team}"))?;
        actor.audit.set_object(format!("apps/{name}"));
        let mut spec = AppSpec::default();
        new.spec.apply(&mut spec);
        validate_spec(&name, &spec)?;
        self.require_placeable(actor, &spec.template.node_constraints)
            .await?;
        self.pin_secrets(&team, "template.secrets", &mut spec.template.secrets)
            .await?;
        require_pull(
            actor,
            &self.current_registry_hosts().await?,
            &spec.template.image,
        )?;
        let _quota_lock = self.team_locks.lock(&team).await?;
        // After the team's lock, as in every write (one lock order).
        let _tcp_claim = self
            .check_routes(actor, &name, &team, &mut spec.routes, None)
            .await?;
        let budget = Budget::of(self.store.as_ref(), &team, None).await?;
        budget.require_limits(&spec.template.resources)?;
        budget.admit(
            Default::default(),
            app_usage(spec.replicas, &spec.template.resources),
        )?;
        self.admit_mounts(
            actor,
            &team,
            &name,
            "template.volumes",
            &spec.template.volumes,
        )
        .await?;
        let now = self.now();
        let app = App::created(&name, &team, &spec, now);
        let revision = Revision {
            app: name.clone(),
            number: 1,
            template: spec.template.clone(),
            created_at: now,
            created_by: actor.username().to_string(),
            reason: new.reason.unwrap_or_else(|| "create".to_string()),
        };
        self.store
            .create_app(&app, &revision)
            .await
            .map_err(|e| match e {
                e if is_domain_conflict(&e) => lost_race(),
                StoreError::Conflict(_) => OpError::conflict(
                    "already_exists",
                    format!("name: an app called {name} already exists"),
                ),
                other => other.into(),
            })?;
        self.controller
            .record(vec![
                Event::new(
                    &name,
                    now,
                    EventKind::AppCreated,
                    format!("app {name} created with {} replicas", app.replicas),
                )
                .param("replicas", app.replicas),
                Event::new(
                    &name,
                    now,
                    EventKind::RevisionCreated,
                    format!("revision 1: image {}", spec.template.image),
                )
                .revision(1),
                Event::new(
                    &name,
                    now,
                    EventKind::RolloutStarted,
                    "rolling out revision 1",
                )
                .revision(1),
            ])
            .await;
        self.controller.wake(&name);
        Ok(CurrentApp {
            app,
            template: spec.template,
        })
    }

    /// Deploys a change: a change to what runs creates a revision and rolls it out; a change
    /// of replicas, strategy or dependencies alone is stored as it is.
    pub async fn deploy_app(
        &self,
        actor: &Actor,
        name: &str,
        change: &AppChange,
        reason: Option<&str>,
    ) -> OpResult<CurrentApp> {
        if let Some(constraints) = &change.node_constraints {
            // Who may not deploy the app learns nothing of its placement.
            self.app(actor, name, TeamAction::Deploy).await?;
            self.require_placeable(actor, constraints).await?;
        }
        let mut pinned;
        let change = match &change.secrets {
            Some(refs) => {
                let team = self.app(actor, name, TeamAction::Deploy).await?.app.team;
                pinned = change.clone();
                let mut refs = refs.clone();
                self.pin_secrets(&team, "template.secrets", &mut refs)
                    .await?;
                pinned.secrets = Some(refs);
                &pinned
            }
            None => change,
        };
        self.modify(Some(actor), name, |app, template, now| {
            let mut spec = app.spec(template);
            change.apply(&mut spec);
            validate_spec(name, &spec)?;
            if spec.replicas != app.replicas {
                refuse_manual_count(app)?;
            }
            require_cpu_limit(
                name,
                app.autoscale.as_ref(),
                spec.template.resources.cpu_millis,
            )?;
            let mut events = Vec::new();
            if spec.replicas != app.replicas {
                events.push(scaled_event(name, now, app.replicas, spec.replicas));
            }
            if spec.routes != app.routes {
                events.push(routes_event(name, now, &spec.routes));
            }
            let settings_changed = spec.replicas != app.replicas
                || spec.strategy != app.strategy
                || spec.dependencies != app.dependencies
                || spec.routes != app.routes
                || spec.idle_timeout_secs != app.idle_timeout_secs;
            if let Some(idled) = app.idled {
                if spec.replicas != app.replicas {
                    // An explicit count ends the idle state.
                    app.idled = None;
                } else if spec.idle_timeout_secs.is_none() {
                    // No idle timeout any more: back to the remembered count.
                    app.idled = None;
                    spec.replicas = idled.replicas;
                    events.push(scaled_event(name, now, app.replicas, spec.replicas));
                }
            }
            app.idle_timeout_secs = spec.idle_timeout_secs;
            app.replicas = spec.replicas;
            app.strategy = spec.strategy.clone();
            app.dependencies = spec.dependencies.clone();
            app.routes = spec.routes.clone();
            if spec.template == *template {
                return Ok(if settings_changed {
                    Modification::Settings(events)
                } else {
                    Modification::Unchanged
                });
            }
            let number = app.latest_revision + 1;
            let reason = reason.map_or_else(|| change.describe(), str::to_string);
            app.latest_revision = number;
            app.current_revision = number;
            app.rollout = Rollout::start(number, reason.clone(), now);
            actor
                .audit
                .set_detail(format!("revision {number}: {reason}"));
            events.push(
                Event::new(
                    name,
                    now,
                    EventKind::RevisionCreated,
                    format!("revision {number}: {reason}"),
                )
                .revision(number),
            );
            events.push(
                Event::new(
                    name,
                    now,
                    EventKind::RolloutStarted,
                    if spec.strategy.kind == berth_core::RolloutKind::Recreate {
                        format!(
                            "rolling out revision {number} by recreating: every running instance stops first, so the app is unavailable until revision {number} is ready"
                        )
                    } else {
                        format!("rolling out revision {number}")
                    },
                )
                .revision(number),
            );
            let revision = Revision {
                app: name.to_string(),
                number,
                template: spec.template,
                created_at: now,
                created_by: actor.username().to_string(),
                reason,
            };
            Ok(Modification::NewRevision(Box::new(revision), events))
        })
        .await
    }

    /// Scales to a number of instances (no new revision).
    pub async fn scale_app(
        &self,
        actor: &Actor,
        name: &str,
        replicas: u32,
    ) -> OpResult<CurrentApp> {
        if replicas > MAX_REPLICAS {
            return Err(OpError::field(
                "replicas",
                format!("must be at most {MAX_REPLICAS}"),
            ));
        }
        self.modify(Some(actor), name, |app, _, now| {
            if app.replicas == replicas && app.idled.is_none() {
                return Ok(Modification::Unchanged);
            }
            refuse_manual_count(app)?;
            // An explicit scale ends the idle state: the user's count holds from now on.
            app.idled = None;
            let event = scaled_event(name, now, app.replicas, replicas);
            actor
                .audit
                .set_detail(format!("replicas {} to {replicas}", app.replicas));
            app.replicas = replicas;
            Ok(Modification::Settings(vec![event]))
        })
        .await
    }

    /// Rolls back to `revision` (default: the previous one), performed as a rollout.
    pub async fn rollback_app(
        &self,
        actor: &Actor,
        name: &str,
        revision: Option<u32>,
        reason: Option<&str>,
    ) -> OpResult<CurrentApp> {
        let kept: Vec<u32> = self
            .store
            .list_revisions(name)
            .await?
            .iter()
            .map(|r| r.number)
            .collect();
        let changed = self
            .modify(Some(actor), name, |app, _, now| {
                let target = match revision {
                    Some(number) => number,
                    None => previous_revision(app, &kept).ok_or_else(|| {
                        OpError::field("revision", "there is no earlier revision to roll back to")
                    })?,
                };
                if !kept.contains(&target) {
                    return Err(OpError::field(
                        "revision",
                        format!("revision {target} does not exist or is no longer kept"),
                    ));
                }
                if target == app.current_revision {
                    return Err(OpError::field(
                        "revision",
                        format!("revision {target} is already the current revision"),
                    ));
                }
                let from = app.current_revision;
                app.current_revision = target;
                let reason = reason.map_or_else(
                    || format!("rollback from revision {from} to {target}"),
                    str::to_string,
                );
                app.rollout = Rollout::start(target, reason.clone(), now);
                actor.audit.set_detail(format!(
                    "rollback from revision {from} to revision {target}"
                ));
                Ok(Modification::Settings(vec![
                    Event::new(name, now, EventKind::RollbackStarted, reason)
                        .revision(target)
                        .param("from", from)
                        .param("to", target),
                ]))
            })
            .await?;
        let template = self
            .store
            .get_revision(name, changed.app.current_revision)
            .await?
            .map_or(changed.template, |r| r.template);
        Ok(CurrentApp {
            app: changed.app,
            template,
        })
    }

    /// Deletes an app: its containers are stopped and removed. Its volumes stay unless
    /// `delete_volumes` (refused while another app shares one of them).
    pub async fn delete_app(
        &self,
        actor: &Actor,
        name: &str,
        delete_volumes: bool,
    ) -> OpResult<()> {
        let CurrentApp { app, template } = self.app(actor, name, TeamAction::Deploy).await?;
        let team_lock = self.team_locks.lock(&app.team).await?;
        if delete_volumes {
            self.refuse_shared_volume_deletion(&app.team, name, &template.volumes)
                .await?;
        }
        if !self.store.delete_app(name).await? {
            return Err(OpError::not_found(format!("app {name}")));
        }
        drop(team_lock);
        tracing::info!(app = %name, "app deleted");
        if delete_volumes && !template.volumes.is_empty() {
            let names: Vec<&str> = template.volumes.iter().map(|m| m.name.as_str()).collect();
            actor
                .audit
                .set_detail(format!("with its volumes {}", names.join(", ")));
        }
        // A later app of the same name must not inherit the catch-all role.
        self.forget_on_demand_app(name).await?;
        if let Err(error) = self.controller.remove_instances(name).await {
            // The reconciler removes them once the engine answers again.
            tracing::warn!(%error, app = %name, "containers of a deleted app could not be removed yet");
            self.controller.wake(name);
        }
        if delete_volumes {
            self.delete_app_volumes(&app.team, &template.volumes).await;
        }
        Ok(())
    }

    /// Runs `change` on a fresh copy of the app until the optimistic update succeeds.
    /// Checks the actor's right to change the app, and that the change fits the team's quota.
    /// Changes an app as `actor` may (`None`: Berth itself, as when an idle app is scaled to 0
    /// or woken; such changes touch neither routes nor revisions), admitted against the
    /// team's quota, stored, recorded and handed to the controller.
    pub(crate) async fn modify<F>(
        &self,
        actor: Option<&Actor>,
        name: &str,
        mut change: F,
    ) -> OpResult<CurrentApp>
    where
        F: FnMut(&mut App, &Template, i64) -> OpResult<Modification>,
    {
        for _ in 0..UPDATE_ATTEMPTS {
            let CurrentApp { mut app, template } = match actor {
                Some(actor) => self.app(actor, name, TeamAction::Deploy).await?,
                None => self.current_app(name).await?,
            };
            let _quota_lock = self.team_locks.lock(&app.team).await?;
            let budget = Budget::of(self.store.as_ref(), &app.team, Some(name)).await?;
            let before = steady(&app, &template.resources);
            let previous_revision = app.current_revision;
            let now = self.now();
            let routes_before = app.routes.clone();
            let mut modification = change(&mut app, &template, now)?;
            let mut _tcp_claim = None;
            if app.routes != routes_before {
                let actor = actor.ok_or_else(|| system_change_refused(name))?;
                let team = app.team.clone();
                _tcp_claim = self
                    .check_routes(actor, name, &team, &mut app.routes, Some(&routes_before))
                    .await?;
                // The event names the host ports Berth just chose.
                if let Modification::Settings(events) | Modification::NewRevision(_, events) =
                    &mut modification
                {
                    for event in events.iter_mut() {
                        if event.kind == EventKind::RoutesChanged {
                            *event = routes_event(name, now, &app.routes);
                        }
                    }
                }
            }
            match &modification {
                Modification::Unchanged => {}
                Modification::NewRevision(revision, _) => {
                    let actor = actor.ok_or_else(|| system_change_refused(name))?;
                    require_pull(
                        actor,
                        &self.current_registry_hosts().await?,
                        &revision.template.image,
                    )?;
                    self.admit_mounts(
                        actor,
                        &app.team,
                        name,
                        "template.volumes",
                        &revision.template.volumes,
                    )
                    .await?;
                    let resources = &revision.template.resources;
                    budget.require_limits(resources)?;
                    let peak = larger(&template.resources, resources);
                    budget.admit(
                        before,
                        rollout_peak(app.replicas, app.strategy.max_surge, &peak),
                    )?;
                }
                Modification::Settings(_) if app.current_revision != previous_revision => {
                    // A rollback: the target revision's limits count from now on, and its
                    // volumes come back (made again, empty, if deleted meanwhile).
                    let target = self
                        .store
                        .get_revision(name, app.current_revision)
                        .await?
                        .map(|r| r.template)
                        .unwrap_or_default();
                    budget.admit(before, steady(&app, &target.resources))?;
                    if let Some(actor) = actor {
                        self.admit_mounts(actor, &app.team, name, "revision", &target.volumes)
                            .await?;
                    }
                }
                Modification::Settings(_) => {
                    budget.admit(before, steady(&app, &template.resources))?;
                }
            }
            app.updated_at = now;
            let (result, events, template) = match modification {
                Modification::Unchanged => return Ok(CurrentApp { app, template }),
                Modification::Settings(events) => {
                    (self.store.update_app(&app).await, events, template)
                }
                Modification::NewRevision(revision, events) => {
                    let template = revision.template.clone();
                    (
                        self.store
                            .add_revision(&app, &revision, self.revision_history)
                            .await,
                        events,
                        template,
                    )
                }
            };
            match result {
                Ok(stored) => {
                    self.controller.record(events).await;
                    self.controller.wake(name);
                    return Ok(CurrentApp {
                        app: stored,
                        template,
                    });
                }
                Err(error) if is_domain_conflict(&error) => return Err(lost_race()),
                Err(StoreError::Conflict(_)) => continue,
                Err(error) => return Err(error.into()),
            }
        }
        Err(OpError::conflict(
            "conflict",
            format!("app {name} is changing too fast; try again"),
        ))
    }
}

/// Berth's own changes (no actor) never move routes or start revisions.
fn system_change_refused(name: &str) -> OpError {
    OpError::conflict(
        "conflict",
        format!("app {name}: Berth does not change routes or revisions by itself"),
    )
}

/// The event of a change of an app's routes, saying what they are now.
fn routes_event(name: &str, now: i64, routes: &AppRoutes) -> Event {
    let domains: Vec<String> = routes.domains.iter().map(ToString::to_string).collect();
    let domains = domains.join(", ");
    let (cause, message) = if routes.internal {
        (
            "internal",
            "routes changed: internal, no external route".to_string(),
        )
    } else if routes.domains.is_empty() {
        (
            "default",
            "routes changed: the default host only".to_string(),
        )
    } else {
        ("domains", format!("routes changed: domains {domains}"))
    };
    let message = if routes.https_redirect && !routes.internal {
        format!("{message}; plain HTTP redirected to HTTPS on hosts with a certificate")
    } else {
        message
    };
    let ports: Vec<String> = routes.tcp_ports.iter().map(ToString::to_string).collect();
    let message = if ports.is_empty() || routes.internal {
        message
    } else {
        format!("{message}; TCP ports {}", ports.join(", "))
    };
    Event::new(name, now, EventKind::RoutesChanged, message)
        .param("cause", cause)
        .param("domains", domains)
        .param("tcp_ports", ports.join(","))
}

pub(crate) fn scaled_event(name: &str, now: i64, from: u32, to: u32) -> Event {
    Event::new(
        name,
        now,
        EventKind::Scaled,
        format!("scaled from {from} to {to} instances"),
    )
    .param("from", from)
    .param("to", to)
}

/// The revision "rollback" goes to by default: the last stable one when the app is not on
/// it, else the newest kept revision older than the current one.
fn previous_revision(app: &App, kept: &[u32]) -> Option<u32> {
    match app.stable_revision {
        Some(stable) if stable != app.current_revision && kept.contains(&stable) => Some(stable),
        _ => kept
            .iter()
            .copied()
            .filter(|n| *n < app.current_revision)
            .max(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn previous_revision_prefers_stable() {
        let mut app = App {
            name: "web".into(),
            team: "default".into(),
            replicas: 1,
            strategy: Default::default(),
            dependencies: vec![],
            routes: Default::default(),
            current_revision: 4,
            stable_revision: Some(4),
            latest_revision: 4,
            rollout: Rollout::start(4, "", 0),
            next_ordinal: 1,
            idle_timeout_secs: None,
            idled: None,
            autoscale: None,
            created_at: 0,
            updated_at: 0,
            version: 1,
        };
        let cases = [
            (Some(4), vec![1, 2, 3, 4], Some(3)),
            (Some(2), vec![1, 2, 3, 4], Some(2)),
            (None, vec![4], None),
            (Some(4), vec![2, 4], Some(2)),
            (Some(1), vec![3, 4], Some(3)),
        ];
        for (stable, kept, want) in cases {
            app.stable_revision = stable;
            assert_eq!(
                previous_revision(&app, &kept),
                want,
                "stable {stable:?} kept {kept:?}"
            );
        }
    }
}
