//! What a team uses, for the API's views and the storage doors (registry push, git push).
//! Admission of app changes is the application layer's (`berth_operations::quota`).

use berth_core::quota::Usage;

use crate::ApiState;
use crate::error::ApiResult;

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
    let mut usage = state.store.team_usage(team, None).await?;
    usage.registry_bytes = storage_usage(state, team).await?;
    usage.volume_bytes = state.store.team_volume_bytes(team).await?;
    Ok(usage)
}
