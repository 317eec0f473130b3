//! Handlers for teams and their members: admins create, re-limit and delete teams; owners
//! name them and manage members; every reader sees the team's limits and usage.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use berth_core::ValidationErrors;
use berth_core::accounts::{Membership, TeamAction, TeamRole, User, display_name_problem};
use berth_core::team::Team;
use berth_core::validate::validate_name;
use berth_store::StoreError;

use crate::ApiState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath as Path};
use crate::quotas;
use crate::team_dto::{
    BUILTIN_TEAM, MemberDto, MemberRoleRequest, NewTeamRequest, TeamChanges, TeamDto,
};

/// Validation problems of team, quota and template input are about request fields.
pub(crate) fn invalid(errors: ValidationErrors) -> ApiError {
    let mut error = ApiError::from(errors);
    error.code = "invalid_field";
    error
}

/// Checks that the caller may read `team` at all (404 otherwise, as for a missing team).
pub(crate) fn require_readable(principal: &Principal, team: &str) -> ApiResult<()> {
    Ok(principal.require(team, TeamAction::Read, &format!("team {team}"))?)
}

/// The team, or 404.
pub(crate) async fn load_team(state: &ApiState, team: &str) -> ApiResult<Team> {
    state
        .store
        .get_team(team)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("team {team}")))
}

/// The team as the caller sees it: their role, its limits and its usage now.
async fn team_view(state: &ApiState, principal: &Principal, team: &Team) -> ApiResult<TeamDto> {
    let usage = quotas::team_usage(state, &team.name).await?;
    Ok(TeamDto::new(team, principal.role(&team.name), usage))
}

/// A display name as stored: trimmed, at most 100 characters, no control characters.
fn display_name(given: &str) -> ApiResult<String> {
    let name = given.trim();
    match display_name_problem(name) {
        Some(problem) => Err(ApiError::field("display_name", problem)),
        None => Ok(name.to_string()),
    }
}

fn parse_role(role: &str) -> ApiResult<TeamRole> {
    TeamRole::parse(role).ok_or_else(|| ApiError::field("role", "must be owner, member or viewer"))
}

/// Whether giving `user_id` the role `new_role` (`None`: removing them) leaves a team with
/// `members` without an owner, when it has one now.
fn loses_last_owner(members: &[Membership], user_id: i64, new_role: Option<TeamRole>) -> bool {
    let is_owner = |m: &&Membership| m.role == TeamRole::Owner;
    let was_owner = members
        .iter()
        .filter(is_owner)
        .any(|m| m.user_id == user_id);
    let other_owners = members
        .iter()
        .filter(is_owner)
        .any(|m| m.user_id != user_id);
    was_owner && new_role != Some(TeamRole::Owner) && !other_owners
}

/// The team, the user and the team's memberships, for a member change by an owner or admin.
async fn member_change(
    state: &ApiState,
    principal: &Principal,
    team: &str,
    username: &str,
) -> ApiResult<(User, Vec<Membership>)> {
    principal.require(team, TeamAction::ManageMembers, &format!("team {team}"))?;
    load_team(state, team).await?;
    let user = state
        .store
        .get_user_by_username(username)
        .await?
        .map(|(user, _)| user)
        .ok_or_else(|| ApiError::not_found(format!("user {username}")))?;
    let members = state.store.list_team_members(team).await?;
    Ok((user, members))
}

fn refuse_last_owner(
    members: &[Membership],
    user: &User,
    team: &str,
    new_role: Option<TeamRole>,
) -> ApiResult<()> {
    if loses_last_owner(members, user.id, new_role) {
        return Err(ApiError::conflict(
            "last_owner",
            format!(
                "{} is the last owner of team {team}; make another member owner first",
                user.username
            ),
        ));
    }
    Ok(())
}

/// The teams the caller can read (admins: every team), with the caller's role, each team's
/// quota and its usage.
#[utoipa::path(get, path = "/api/v1/teams", tag = "teams",
    responses((status = 200, body = [TeamDto]), (status = 401, body = ErrorBody)))]
pub async fn list_teams(
    State(state): State<ApiState>,
    principal: Principal,
) -> ApiResult<Json<Vec<TeamDto>>> {
    let mut teams = state.store.list_teams().await?;
    teams.retain(|team| principal.can_read(&team.name));
    let mut views = Vec::with_capacity(teams.len());
    for team in &teams {
        views.push(team_view(&state, &principal, team).await?);
    }
    Ok(Json(views))
}

/// Create a team (admins). The quota defaults to the server's default team quota (`{}`:
/// unlimited); the creator is not made a member: add owners with the members route.
#[utoipa::path(post, path = "/api/v1/teams", tag = "teams", request_body = NewTeamRequest,
    responses((status = 201, body = TeamDto), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create_team(
    State(state): State<ApiState>,
    principal: Principal,
    ApiJson(request): ApiJson<NewTeamRequest>,
) -> ApiResult<Response> {
    principal.audit.set_team(&request.name);
    principal
        .audit
        .set_object(format!("teams/{}", request.name));
    principal.require_admin()?;
    validate_name("name", &request.name).map_err(invalid)?;
    if request.name == BUILTIN_TEAM {
        return Err(ApiError::field(
            "name",
            format!("'{BUILTIN_TEAM}' is reserved for the built-in templates"),
        ));
    }
    let display_name = display_name(request.display_name.as_deref().unwrap_or(""))?;
    let quota = match &request.quota {
        Some(quota) => quota.to_quota("quota.")?,
        None => state.default_quota,
    };
    let now = (state.clock)();
    let team = Team {
        name: request.name.clone(),
        display_name,
        quota,
        created_at: now,
        updated_at: now,
    };
    state.store.create_team(&team).await.map_err(|e| match e {
        StoreError::Conflict(_) => {
            ApiError::conflict("conflict", format!("team {} exists", team.name))
        }
        other => other.into(),
    })?;
    let view = team_view(&state, &principal, &team).await?;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

/// One team with the caller's role, its quota and its usage.
#[utoipa::path(get, path = "/api/v1/teams/{team}", tag = "teams",
    params(("team" = String, Path)),
    responses((status = 200, body = TeamDto), (status = 404, body = ErrorBody)))]
pub async fn get_team(
    State(state): State<ApiState>,
    principal: Principal,
    Path(team): Path<String>,
) -> ApiResult<Json<TeamDto>> {
    require_readable(&principal, &team)?;
    let team = load_team(&state, &team).await?;
    Ok(Json(team_view(&state, &principal, &team).await?))
}

/// Rename a team for display (owners, admins) or replace its quota (admins; an absent limit
/// is unlimited). Usage above a lowered limit is not stopped; only growth is refused.
#[utoipa::path(patch, path = "/api/v1/teams/{team}", tag = "teams",
    params(("team" = String, Path)), request_body = TeamChanges,
    responses((status = 200, body = TeamDto), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn update_team(
    State(state): State<ApiState>,
    principal: Principal,
    Path(team): Path<String>,
    ApiJson(changes): ApiJson<TeamChanges>,
) -> ApiResult<Json<TeamDto>> {
    let what = format!("team {team}");
    principal.require(&team, TeamAction::ManageTeam, &what)?;
    if changes.quota.is_some() && !principal.is_admin() {
        return Err(ApiError::forbidden(
            "only platform admins change quotas; file a quota request instead",
        ));
    }
    let mut stored = load_team(&state, &team).await?;
    if let Some(name) = &changes.display_name {
        stored.display_name = display_name(name)?;
    }
    if let Some(quota) = &changes.quota {
        stored.quota = quota.to_quota("quota.")?;
        principal
            .audit
            .set_detail(format!("quota={}", serde_json::json!(quota)));
    }
    stored.updated_at = (state.clock)();
    state.store.update_team(&stored).await?;
    Ok(Json(team_view(&state, &principal, &stored).await?))
}

/// Delete a team (admins) with everything it owns, so a team made later under the same name
/// inherits nothing: members, quota requests, templates, external registries, pipelines with
/// their builds, build logs and hosted git repositories (`<data-dir>/git/<team>/`), the
/// retention rules and every repository of its registry namespace (the blobs go at the next
/// garbage collection). Refused with 409 while it owns apps (delete them first). The team row
/// goes last: when removing something fails, the team is still there to delete again.
#[utoipa::path(delete, path = "/api/v1/teams/{team}", tag = "teams",
    params(("team" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub async fn delete_team(
    State(state): State<ApiState>,
    principal: Principal,
    Path(team): Path<String>,
) -> ApiResult<StatusCode> {
    require_readable(&principal, &team)?;
    principal.require_admin()?;
    load_team(&state, &team).await?;
    let owned = state
        .store
        .list_apps_page(&berth_store::AppPage {
            teams: Some(vec![team.clone()]),
            after: None,
            limit: 20,
        })
        .await?;
    let mut apps: Vec<String> = owned.apps.into_iter().map(|l| l.app.name).collect();
    if owned.next_after.is_some() {
        apps.push("…".to_string());
    }
    if !apps.is_empty() {
        return Err(ApiError::conflict(
            "team_owns_apps",
            format!(
                "team {team} still owns apps ({}); delete them first",
                apps.join(", ")
            ),
        ));
    }
    let builds = state
        .store
        .list_builds(&berth_store::BuildQuery {
            team: Some(team.clone()),
            pipeline: None,
            before_id: None,
            limit: u32::MAX,
        })
        .await?;
    for build in &builds {
        state.builds.cancel(build.id);
    }
    let leftover = |what: &str, error: String| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "team_not_emptied",
            format!("team {team} is not deleted: cannot remove its {what}: {error}"),
        )
    };
    let repositories = state
        .registry
        .delete_namespace(&team)
        .await
        .map_err(|e| leftover("registry repositories", e.to_string()))?;
    // Team names are validated names, so this stays inside the git directory.
    let git = state.git_dir.join(&team);
    if let Err(e) = std::fs::remove_dir_all(&git)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        return Err(leftover("hosted git repositories", e.to_string()));
    }
    if !state.store.delete_team(&team).await? {
        return Err(ApiError::not_found(format!("team {team}")));
    }
    for build in &builds {
        let _ = std::fs::remove_file(state.build_logs_dir.join(format!("{}.log", build.id)));
    }
    principal.audit.set_detail(format!(
        "deleted {} registry repositories, {} builds",
        repositories.len(),
        builds.len()
    ));
    Ok(StatusCode::NO_CONTENT)
}

/// The team's members with their roles, ordered by username.
#[utoipa::path(get, path = "/api/v1/teams/{team}/members", tag = "teams",
    params(("team" = String, Path)),
    responses((status = 200, body = [MemberDto]), (status = 404, body = ErrorBody)))]
pub async fn list_members(
    State(state): State<ApiState>,
    principal: Principal,
    Path(team): Path<String>,
) -> ApiResult<Json<Vec<MemberDto>>> {
    require_readable(&principal, &team)?;
    load_team(&state, &team).await?;
    let members = state.store.list_team_users(&team).await?;
    Ok(Json(
        members
            .iter()
            .map(|(user, membership)| MemberDto::new(user, membership))
            .collect(),
    ))
}

/// Add an existing user to the team or change their role (owners, admins). The last owner
/// cannot be demoted (409 `last_owner`).
#[utoipa::path(put, path = "/api/v1/teams/{team}/members/{username}", tag = "teams",
    params(("team" = String, Path), ("username" = String, Path)), request_body = MemberRoleRequest,
    responses((status = 200, body = MemberDto), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub async fn put_member(
    State(state): State<ApiState>,
    principal: Principal,
    Path((team, username)): Path<(String, String)>,
    ApiJson(request): ApiJson<MemberRoleRequest>,
) -> ApiResult<Json<MemberDto>> {
    let (user, members) = member_change(&state, &principal, &team, &username).await?;
    let role = parse_role(&request.role)?;
    principal
        .audit
        .set_detail(format!("role={}", role.as_str()));
    refuse_last_owner(&members, &user, &team, Some(role))?;
    let membership = Membership {
        team: team.clone(),
        user_id: user.id,
        role,
    };
    state.store.put_membership(&membership).await?;
    Ok(Json(MemberDto::new(&user, &membership)))
}

/// Remove a member from the team (owners, admins). The last owner cannot be removed (409
/// `last_owner`).
#[utoipa::path(delete, path = "/api/v1/teams/{team}/members/{username}", tag = "teams",
    params(("team" = String, Path), ("username" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub async fn delete_member(
    State(state): State<ApiState>,
    principal: Principal,
    Path((team, username)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let (user, members) = member_change(&state, &principal, &team, &username).await?;
    if !members.iter().any(|m| m.user_id == user.id) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{username} is not a member of team {team}"),
        ));
    }
    refuse_last_owner(&members, &user, &team, None)?;
    state.store.delete_membership(&team, user.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_owner_is_kept() {
        let m = |user_id, role| Membership {
            team: "web".into(),
            user_id,
            role,
        };
        use TeamRole::{Member, Owner, Viewer};
        let one_owner = vec![m(1, Owner), m(2, Member), m(3, Viewer)];
        let two_owners = vec![m(1, Owner), m(2, Owner)];
        let no_owner = vec![m(2, Member)];
        // (members, user, new role (None: removed), loses the last owner)
        let cases = [
            (&one_owner, 1, None, true),
            (&one_owner, 1, Some(Member), true),
            (&one_owner, 1, Some(Viewer), true),
            (&one_owner, 1, Some(Owner), false),
            (&one_owner, 2, None, false),
            (&one_owner, 2, Some(Owner), false),
            (&one_owner, 4, Some(Viewer), false),
            (&two_owners, 1, None, false),
            (&two_owners, 2, Some(Member), false),
            // A team without owners (made by an admin) may stay so.
            (&no_owner, 2, None, false),
            (&no_owner, 5, Some(Member), false),
        ];
        for (members, user, role, want) in cases {
            assert_eq!(
                loses_last_owner(members, user, role),
                want,
                "user {user} -> {role:?} in {members:?}"
            );
        }
    }

    #[test]
    fn roles_and_display_names_are_checked() {
        let roles = [
            ("owner", Some(TeamRole::Owner)),
            ("member", Some(TeamRole::Member)),
            ("viewer", Some(TeamRole::Viewer)),
            ("admin", None),
            ("Owner", None),
            ("", None),
        ];
        for (role, want) in roles {
            assert_eq!(parse_role(role).ok(), want, "{role:?}");
        }
        let names = [
            ("  Web team ", Ok("Web team")),
            ("", Ok("")),
            ("bad\nname", Err("display_name")),
        ];
        for (given, want) in names {
            let got = display_name(given).map_err(|e| e.field.unwrap_or_default());
            assert_eq!(
                got,
                want.map(String::from).map_err(String::from),
                "{given:?}"
            );
        }
        let too_long = "x".repeat(berth_core::accounts::MAX_DISPLAY_NAME_LEN + 1);
        assert!(display_name(&too_long).is_err());
    }
}
