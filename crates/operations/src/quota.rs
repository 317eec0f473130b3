//! Quota admission: what a team's apps reserve, and the refusal of any change that would take
//! the team beyond its limits (the arithmetic is `berth_core::quota`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use berth_core::quota::{self, Quota, Usage};
use berth_core::{App, Resources};
use berth_store::{SharedLock, SharedLocks, Store};

use crate::error::{OpError, OpResult};

/// One lock per team, held from a quota check until its change is stored, so concurrent
/// requests cannot each see the same free room and together overshoot the limit: this
/// server's own lock, and with a store several servers share, the database's lock of the team
/// as well.
#[derive(Clone, Default)]
pub struct TeamLocks {
    local: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
    shared: Option<Arc<dyn SharedLocks>>,
}

impl std::fmt::Debug for TeamLocks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TeamLocks")
            .field("shared", &self.shared.is_some())
            .finish_non_exhaustive()
    }
}

/// A team's held lock (see [`TeamLocks`]).
#[derive(Debug)]
pub struct TeamLock {
    _local: tokio::sync::OwnedMutexGuard<()>,
    _shared: Option<SharedLock>,
}

impl TeamLocks {
    /// Team locks that also take `shared`'s lock of the team (a store several servers share).
    pub fn shared(shared: Arc<dyn SharedLocks>) -> TeamLocks {
        TeamLocks {
            shared: Some(shared),
            ..TeamLocks::default()
        }
    }

    /// Waits for the team's lock.
    pub async fn lock(&self, team: &str) -> OpResult<TeamLock> {
        let lock = {
            let mut locks = self.local.lock().unwrap_or_else(|e| e.into_inner());
            // Unused locks are dropped so the map does not grow with deleted teams.
            locks.retain(|_, lock| Arc::strong_count(lock) > 1);
            Arc::clone(locks.entry(team.to_string()).or_default())
        };
        // This server's lock first: its own requests queue here, not on database connections.
        let local = lock.lock_owned().await;
        let shared = match &self.shared {
            Some(shared) => Some(shared.lock(&format!("team/{team}")).await?),
            None => None,
        };
        Ok(TeamLock {
            _local: local,
            _shared: shared,
        })
    }
}

/// What a team may still use, seen from one app: the team's limits and what everything else
/// of the team uses.
#[derive(Debug, Clone)]
pub struct Budget {
    pub team: String,
    pub quota: Quota,
    /// The team's usage without the app being changed.
    pub others: Usage,
}

impl Budget {
    /// The budget of `team` for changing `app` (`None`: a new app). What the team's other
    /// apps reserve is kept in the store with every change of an app (`AppStore::team_usage`,
    /// one indexed sum, flat in the number of apps on the platform).
    pub async fn of(store: &dyn Store, team: &str, app: Option<&str>) -> OpResult<Budget> {
        let quota = store
            .get_team(team)
            .await?
            .map(|t| t.quota)
            .ok_or_else(|| OpError::not_found(format!("team {team}")))?;
        Ok(Budget {
            team: team.to_string(),
            quota,
            others: store.team_usage(team, app).await?,
        })
    }

    /// Admits an app going from using `current` to `wanted` (a peak, e.g. during a rollout),
    /// or refuses naming each resource that would not fit.
    pub fn admit(&self, current: Usage, wanted: Usage) -> OpResult<()> {
        let extra = wanted.saturating_sub(current);
        quota::check(&self.quota, &self.others.add(current), &extra).map_err(|exceeded| {
            OpError::QuotaExceeded {
                team: self.team.clone(),
                exceeded,
            }
        })
    }

    /// Refuses limits an app must declare because the team's quota limits them.
    pub fn require_limits(&self, resources: &Resources) -> OpResult<()> {
        match quota::required_limits_problem(&self.quota, resources) {
            Some((field, message)) => Err(OpError::field(field, message)),
            None => Ok(()),
        }
    }
}

/// What an app at `replicas` with `resources` uses while it rolls out with `surge` extra
/// instances (the peak of a rolling update).
pub fn rollout_peak(replicas: u32, surge: u32, resources: &Resources) -> Usage {
    quota::app_usage(replicas.saturating_add(surge), resources)
}

/// What an app uses in steady state.
pub fn steady(app: &App, resources: &Resources) -> Usage {
    quota::app_usage(app.replicas, resources)
}

/// The larger limit of two per resource (during a rollout old and new instances coexist).
pub fn larger(a: &Resources, b: &Resources) -> Resources {
    let max = |x: Option<u64>, y: Option<u64>| match (x, y) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, None) => x,
        (None, y) => y,
    };
    Resources {
        cpu_millis: max(a.cpu_millis, b.cpu_millis),
        memory_bytes: max(a.memory_bytes, b.memory_bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn larger_takes_the_bigger_limit_of_each_resource() {
        let r = |cpu, mem| Resources {
            cpu_millis: cpu,
            memory_bytes: mem,
        };
        let cases = [
            (
                r(Some(100), Some(5)),
                r(Some(200), Some(1)),
                r(Some(200), Some(5)),
            ),
            (r(None, Some(5)), r(Some(200), None), r(Some(200), Some(5))),
            (r(None, None), r(None, None), r(None, None)),
        ];
        for (a, b, want) in cases {
            assert_eq!(larger(&a, &b), want, "{a:?} {b:?}");
        }
    }
}
