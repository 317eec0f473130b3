//! An in-memory [`AppStore`] for tests (cargo feature `memory`, off in the server build): the
//! apps area with SQLite's exact semantics, so reconciler tests run without a database.
//!
//! It passes the apps-area conformance suite (`conformance::apps`) as [`SqliteStore`] does:
//! optimistic concurrency on `version`, revision pruning (`keep`), per-app event trimming,
//! ordinals, per-team usage and paging. Everything lives behind one mutex; no call awaits
//! while holding it. The other areas are not implemented: a [`MemoryStore`] is an
//! `Arc<dyn AppStore>`, not an `Arc<dyn Store>`. [`MemoryMetricsStore`] is the metrics
//! history in memory.
//!
//! [`SqliteStore`]: crate::SqliteStore

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use berth_core::Millis;
use berth_core::metrics_history::{
    Aggregate, Point, Sample, SeriesFilter, SeriesKey, SeriesPoints, Tier, Tiers, align,
};
use berth_core::quota::Usage;
use berth_core::routes::DomainReservation;
use berth_core::{App, Event, Resources, Revision};

use crate::{
    AppList, AppPage, AppStore, DomainOwner, EventQuery, ListedApp, MetricsStore, RevisionImage,
    StoreError, StoreResult, check_revision_app, reserved_usage,
};

/// The apps area in memory. Each value is a separate store; cloning is not offered (share it
/// in an `Arc`).
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    apps: BTreeMap<String, StoredApp>,
    /// Events per app name; they outlive their app until `delete_app` (as in SQLite).
    events: BTreeMap<String, VecDeque<Event>>,
    /// The last event id handed out (ids start at 1 and are never reused).
    last_event_id: i64,
    reservations: BTreeMap<String, DomainReservation>,
    /// Recorded health by container id, with its app.
    health: BTreeMap<String, (String, berth_core::health::RecordedHealth)>,
}

#[derive(Debug)]
struct StoredApp {
    app: App,
    revisions: BTreeMap<u32, Revision>,
    /// What the app reserves, written with every change of replicas or current revision.
    reserved: Usage,
}

impl StoredApp {
    fn resources(&self, number: u32) -> Resources {
        self.revisions
            .get(&number)
            .map(|r| r.template.resources.clone())
            .unwrap_or_default()
    }
}

impl MemoryStore {
    pub fn new() -> Self {
        MemoryStore::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panicking test thread must not hide the store from the others.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// As the SQLite store refuses numbers beyond `BIGINT`.
fn fits_bigint(value: u64, what: &str) -> StoreResult<()> {
    if i64::try_from(value).is_ok() {
        Ok(())
    } else {
        Err(StoreError::Database(format!(
            "{what} {value} does not fit in BIGINT"
        )))
    }
}

/// As SQLite's `app_domains` key: no domain of `app` may be another app's.
fn domains_free(state: &State, app: &App) -> StoreResult<()> {
    let taken = state.apps.values().any(|other| {
        other.app.name != app.name
            && other
                .app
                .routes
                .domains
                .iter()
                .any(|d| app.routes.domains.contains(d))
    });
    if taken {
        return Err(StoreError::Conflict(format!(
            "a domain of app {} belongs to another app",
            app.name
        )));
    }
    Ok(())
}

/// The optimistic update shared by `update_app` and `add_revision`: checks, without writing,
/// that `app` may replace the stored copy, and returns the app as it will be stored.
fn updated(state: &State, app: &App) -> StoreResult<App> {
    let stored = state
        .apps
        .get(&app.name)
        .ok_or_else(|| StoreError::NotFound(format!("app {}", app.name)))?;
    if stored.app.version != app.version {
        return Err(StoreError::Conflict(format!(
            "app {} was changed concurrently",
            app.name
        )));
    }
    domains_free(state, app)?;
    Ok(App {
        // Ordinals handed out stay taken: the stored value only grows.
        next_ordinal: stored.app.next_ordinal.max(app.next_ordinal),
        created_at: stored.app.created_at,
        version: stored.app.version + 1,
        ..app.clone()
    })
}

#[async_trait]
impl AppStore for MemoryStore {
    async fn ping(&self) -> StoreResult<()> {
        Ok(())
    }

    async fn create_app(&self, app: &App, first_revision: &Revision) -> StoreResult<()> {
        check_revision_app(app, first_revision)?;
        fits_bigint(
            app.next_ordinal,
            &format!("next_ordinal of app {}", app.name),
        )?;
        let mut state = self.state();
        if state.apps.contains_key(&app.name) {
            return Err(StoreError::Conflict(format!(
                "app {} already exists",
                app.name
            )));
        }
        domains_free(&state, app)?;
        let revisions = BTreeMap::from([(first_revision.number, first_revision.clone())]);
        let mut stored = StoredApp {
            app: app.clone(),
            revisions,
            reserved: Usage::default(),
        };
        stored.reserved = reserved_usage(app.replicas, &stored.resources(app.current_revision));
        state.apps.insert(app.name.clone(), stored);
        Ok(())
    }

    async fn get_app(&self, name: &str) -> StoreResult<Option<App>> {
        Ok(self.state().apps.get(name).map(|s| s.app.clone()))
    }

    async fn list_apps(&self) -> StoreResult<Vec<App>> {
        Ok(self.state().apps.values().map(|s| s.app.clone()).collect())
    }

    async fn list_apps_page(&self, page: &AppPage) -> StoreResult<AppList> {
        let state = self.state();
        let after = page.after.as_deref();
        let mut matching = state
            .apps
            .values()
            .filter(|s| after.is_none_or(|after| s.app.name.as_str() > after))
            .filter(|s| {
                page.teams
                    .as_ref()
                    .is_none_or(|teams| teams.contains(&s.app.team))
            });
        let apps: Vec<ListedApp> = matching
            .by_ref()
            .take(page.limit as usize)
            .map(|s| ListedApp {
                app: s.app.clone(),
                template: s
                    .revisions
                    .get(&s.app.current_revision)
                    .map(|r| r.template.clone()),
            })
            .collect();
        let more = matching.next().is_some();
        let next_after = if more {
            apps.last().map(|listed| listed.app.name.clone())
        } else {
            None
        };
        Ok(AppList { apps, next_after })
    }

    async fn update_app(&self, app: &App) -> StoreResult<App> {
        let mut state = self.state();
        let new = updated(&state, app)?;
        let stored = state.apps.get_mut(&app.name).expect("checked by updated");
        stored.reserved = reserved_usage(new.replicas, &stored.resources(new.current_revision));
        stored.app = new.clone();
        Ok(new)
    }

    async fn add_revision(&self, app: &App, revision: &Revision, keep: u32) -> StoreResult<App> {
        check_revision_app(app, revision)?;
        let mut state = self.state();
        let new = updated(&state, app)?;
        let stored = state.apps.get_mut(&app.name).expect("checked by updated");
        if stored.revisions.contains_key(&revision.number) {
            return Err(StoreError::Conflict(format!(
                "revision {} of app {} already exists",
                revision.number, revision.app
            )));
        }
        stored.revisions.insert(revision.number, revision.clone());
        let newest: Vec<u32> = stored
            .revisions
            .keys()
            .rev()
            .take(keep as usize)
            .copied()
            .collect();
        stored.revisions.retain(|number, _| {
            newest.contains(number)
                || *number == new.current_revision
                || Some(*number) == new.stable_revision
        });
        stored.reserved = reserved_usage(new.replicas, &stored.resources(new.current_revision));
        stored.app = new.clone();
        Ok(new)
    }

    async fn get_revision(&self, app: &str, number: u32) -> StoreResult<Option<Revision>> {
        Ok(self
            .state()
            .apps
            .get(app)
            .and_then(|s| s.revisions.get(&number).cloned()))
    }

    async fn revision_images(&self) -> StoreResult<Vec<RevisionImage>> {
        let state = self.state();
        let mut images: Vec<RevisionImage> = state
            .apps
            .iter()
            .flat_map(|(name, stored)| {
                stored.revisions.values().map(move |r| RevisionImage {
                    app: name.clone(),
                    revision: r.number,
                    image: r.template.image.clone(),
                })
            })
            .collect();
        images.sort();
        Ok(images)
    }

    async fn list_revisions(&self, app: &str) -> StoreResult<Vec<Revision>> {
        Ok(self
            .state()
            .apps
            .get(app)
            .map(|s| s.revisions.values().rev().cloned().collect())
            .unwrap_or_default())
    }

    async fn delete_app(&self, name: &str) -> StoreResult<bool> {
        let mut state = self.state();
        state.events.remove(name);
        state.health.retain(|_, (app, _)| app != name);
        Ok(state.apps.remove(name).is_some())
    }

    async fn put_instance_health(
        &self,
        app: &str,
        container_id: &str,
        health: &berth_core::health::RecordedHealth,
        _at: Millis,
    ) -> StoreResult<()> {
        self.state()
            .health
            .insert(container_id.to_string(), (app.to_string(), health.clone()));
        Ok(())
    }

    async fn instance_health(
        &self,
        app: &str,
    ) -> StoreResult<BTreeMap<String, berth_core::health::RecordedHealth>> {
        Ok(self
            .state()
            .health
            .iter()
            .filter(|(_, (owner, _))| owner == app)
            .map(|(id, (_, health))| (id.clone(), health.clone()))
            .collect())
    }

    async fn forget_instance_health(&self, container_ids: &[String]) -> StoreResult<()> {
        let mut state = self.state();
        for id in container_ids {
            state.health.remove(id);
        }
        Ok(())
    }

    async fn append_events(&self, events: &[Event], keep_per_app: u32) -> StoreResult<()> {
        let mut state = self.state();
        let mut touched = Vec::new();
        for event in events {
            state.last_event_id += 1;
            let stored = Event {
                id: state.last_event_id,
                ..event.clone()
            };
            state
                .events
                .entry(event.app.clone())
                .or_default()
                .push_back(stored);
            touched.push(event.app.as_str());
        }
        for app in touched {
            if let Some(kept) = state.events.get_mut(app) {
                let excess = kept.len().saturating_sub(keep_per_app as usize);
                kept.drain(..excess);
            }
        }
        Ok(())
    }

    async fn list_events(&self, app: &str, query: EventQuery) -> StoreResult<Vec<Event>> {
        let state = self.state();
        let Some(events) = state.events.get(app) else {
            return Ok(Vec::new());
        };
        let limit = query.limit as usize;
        Ok(match query.after_id {
            Some(after_id) => events
                .iter()
                .filter(|e| e.id > after_id)
                .take(limit)
                .cloned()
                .collect(),
            None => events
                .iter()
                .skip(events.len().saturating_sub(limit))
                .cloned()
                .collect(),
        })
    }

    async fn team_usage(&self, team: &str, except_app: Option<&str>) -> StoreResult<Usage> {
        Ok(self
            .state()
            .apps
            .values()
            .filter(|s| s.app.team == team && Some(s.app.name.as_str()) != except_app)
            .map(|s| s.reserved)
            .sum())
    }

    async fn domain_owners(&self, hosts: &[String]) -> StoreResult<Vec<DomainOwner>> {
        let state = self.state();
        let mut owners: Vec<DomainOwner> = state
            .apps
            .values()
            .flat_map(|s| {
                s.app
                    .routes
                    .domains
                    .iter()
                    .filter(|d| hosts.contains(&d.host))
                    .map(|d| DomainOwner {
                        host: d.host.clone(),
                        path: d.path.clone(),
                        app: s.app.name.clone(),
                        team: s.app.team.clone(),
                    })
            })
            .collect();
        owners.sort();
        Ok(owners)
    }

    async fn list_domain_reservations(&self) -> StoreResult<Vec<DomainReservation>> {
        Ok(self.state().reservations.values().cloned().collect())
    }

    async fn put_domain_reservation(&self, reservation: &DomainReservation) -> StoreResult<()> {
        self.state()
            .reservations
            .insert(reservation.domain.clone(), reservation.clone());
        Ok(())
    }

    async fn delete_domain_reservation(&self, domain: &str) -> StoreResult<bool> {
        Ok(self.state().reservations.remove(domain).is_some())
    }
}

/// The metrics history in memory, with [`crate::SqliteMetricsStore`]'s semantics (it passes
/// `conformance::metrics`).
#[derive(Debug, Default)]
pub struct MemoryMetricsStore {
    /// Per series, the aggregate of each `(step, bucket)`.
    series: Mutex<BTreeMap<SeriesKey, BTreeMap<(Millis, Millis), Aggregate>>>,
}

impl MemoryMetricsStore {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<SeriesKey, BTreeMap<(Millis, Millis), Aggregate>>> {
        self.series.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl MetricsStore for MemoryMetricsStore {
    async fn record(&self, tiers: &Tiers, samples: &[Sample]) -> StoreResult<()> {
        let mut series = self.lock();
        for sample in samples.iter().filter(|s| s.value.is_finite()) {
            let buckets = series.entry(sample.key.clone()).or_default();
            for tier in tiers.all() {
                let bucket = (tier.step_ms, align(sample.at, tier.step_ms));
                let add = Aggregate::of(sample.value);
                buckets
                    .entry(bucket)
                    .and_modify(|a| a.merge(&add))
                    .or_insert(add);
            }
        }
        Ok(())
    }

    async fn points(
        &self,
        filter: &SeriesFilter,
        tier: Tier,
        from: Millis,
        to: Millis,
    ) -> StoreResult<Vec<SeriesPoints>> {
        let series = self.lock();
        Ok(series
            .iter()
            .filter(|(key, _)| filter.matches(key))
            .map(|(key, buckets)| SeriesPoints {
                key: key.clone(),
                points: buckets
                    .range((tier.step_ms, from)..(tier.step_ms, to))
                    .map(|(&(_, at), &aggregate)| Point { at, aggregate })
                    .collect(),
            })
            .filter(|s| !s.points.is_empty())
            .collect())
    }

    async fn prune(&self, tiers: &Tiers, now: Millis) -> StoreResult<u64> {
        let mut series = self.lock();
        let mut dropped = 0;
        for buckets in series.values_mut() {
            let before = buckets.len();
            buckets.retain(|&(step, at), _| {
                tiers
                    .all()
                    .iter()
                    .any(|t| t.step_ms == step && at >= t.oldest_kept(now))
            });
            dropped += (before - buckets.len()) as u64;
        }
        series.retain(|_, buckets| !buckets.is_empty());
        Ok(dropped)
    }
}
