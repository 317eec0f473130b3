//! Quota enforcement at the API: what a team's apps and images use, and the refusal of any
//! change that would grow usage beyond the team's limits (the rule itself is
//! `berth_core::quota::check`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use berth_core::quota::{self, Quota, QuotaExceeded, Usage};
use berth_core::{App, Resources};

use crate::ApiState;
use crate::error::{ApiError, ApiResult, FieldProblem};

/// One lock per team, held from a quota check until its change is stored, so concurrent
/// requests cannot each see the same free room and together overshoot the limit. (Within one
/// server; several servers on one database will need the check inside the store transaction.)
#[derive(Debug, Clone, Default)]
pub struct TeamLocks(Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>);

impl TeamLocks {
    /// Waits for the team's lock.
    pub async fn lock(&self, team: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.0.lock().unwrap_or_else(|e| e.into_inner());
            // Unused locks are dropped so the map does not grow with deleted teams.
            locks.retain(|_, lock| Arc::strong_count(lock) > 1);
            Arc::clone(locks.entry(team.to_string()).or_default())
        };
        lock.lock_owned().await
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

/// What the team's apps reserve: `replicas × (cpu, memory)` and `replicas` instances each,
/// at their current revision's limits.
pub async fn apps_usage(state: &ApiState, team: &str, except: Option<&str>) -> ApiResult<Usage> {
    let mut usage = Usage::default();
    for app in state.store.list_apps().await? {
        if app.team != team || except == Some(app.name.as_str()) {
            continue;
        }
        let resources = state
            .store
            .get_revision(&app.name, app.current_revision)
            .await?
            .map(|r| r.template.resources)
            .unwrap_or_default();
        usage = usage.add(quota::app_usage(app.replicas, &resources));
    }
    Ok(usage)
}

/// Bytes the team's repositories (`team/...`) hold in the built-in registry.
pub async fn registry_usage(state: &ApiState, team: &str) -> ApiResult<u64> {
    Ok(state.registry.namespace_usage(team).await?)
}

/// Storage the team uses: its registry repositories and the git repositories Berth hosts
/// for its pipelines (both count against its `registry_bytes` quota).
pub async fn storage_usage(state: &ApiState, team: &str) -> ApiResult<u64> {
    let registry = registry_usage(state, team).await?;
    let git_dir = state.git_dir.clone();
    let owner = team.to_owned();
    let git = tokio::task::spawn_blocking(move || crate::git_http::hosted_bytes(&git_dir, &owner))
        .await
        .unwrap_or(0);
    Ok(registry.saturating_add(git))
}

/// Everything the team uses.
pub async fn team_usage(state: &ApiState, team: &str) -> ApiResult<Usage> {
    let mut usage = apps_usage(state, team, None).await?;
    usage.registry_bytes = storage_usage(state, team).await?;
    Ok(usage)
}

/// The budget of `team` for changing `app` (`None`: a new app).
pub async fn budget(state: &ApiState, team: &str, app: Option<&str>) -> ApiResult<Budget> {
    let quota = state
        .store
        .get_team(team)
        .await?
        .map(|t| t.quota)
        .ok_or_else(|| ApiError::not_found(format!("team {team}")))?;
    Ok(Budget {
        team: team.to_string(),
        quota,
        others: apps_usage(state, team, app).await?,
    })
}

impl Budget {
    /// Admits an app going from using `current` to `wanted` (a peak, e.g. during a rollout),
    /// or refuses with 403 `quota_exceeded` naming each resource that would not fit.
    pub fn admit(&self, current: Usage, wanted: Usage) -> ApiResult<()> {
        let extra = wanted.saturating_sub(current);
        quota::check(&self.quota, &self.others.add(current), &extra)
            .map_err(|exceeded| refusal(&self.team, &exceeded))
    }

    /// Refuses limits an app must declare because the team's quota limits them.
    pub fn require_limits(&self, resources: &Resources) -> ApiResult<()> {
        match quota::required_limits_problem(&self.quota, resources) {
            Some((field, message)) => Err(ApiError::field(field, message)),
            None => Ok(()),
        }
    }
}

/// The 403 for a change beyond the quota.
pub fn refusal(team: &str, exceeded: &[QuotaExceeded]) -> ApiError {
    let problems: Vec<String> = exceeded.iter().map(ToString::to_string).collect();
    let mut error = ApiError::new(
        StatusCode::FORBIDDEN,
        "quota_exceeded",
        format!(
            "team {team} quota exceeded: {}; ask for more with a quota request",
            problems.join("; ")
        ),
    );
    error.field = exceeded.first().map(|e| e.resource.field().to_string());
    error.details = exceeded
        .iter()
        .zip(problems)
        .map(|(e, message)| FieldProblem {
            field: e.resource.field().to_string(),
            message,
        })
        .collect();
    error
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
