//! Who asks for an operation: a user with their role in each team, and the note their
//! request's audit record collects. Every operation takes an explicit [`Actor`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use berth_core::accounts::{ALL_TEAM_ROLES, TeamAction, TeamRole, User, authorize};
use berth_store::{Store, StoreResult};

use crate::error::{OpError, OpResult};

/// What an operation adds to its request's audit record (the door writes the record, with
/// the outcome it knows).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AuditNote {
    pub actor: Option<String>,
    pub team: Option<String>,
    pub object: Option<String>,
    pub detail: Option<String>,
}

/// Shared between a door's audit record and the operations one request runs.
#[derive(Debug, Clone, Default)]
pub struct AuditSlot(Arc<Mutex<AuditNote>>);

impl AuditSlot {
    fn with<R>(&self, f: impl FnOnce(&mut AuditNote) -> R) -> R {
        f(&mut self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// A copy of the note as it is now.
    pub fn note(&self) -> AuditNote {
        self.with(|note| note.clone())
    }

    pub fn set_actor(&self, actor: &str) {
        self.with(|note| note.actor = Some(actor.to_string()));
    }

    pub fn set_team(&self, team: &str) {
        self.with(|note| note.team = Some(team.to_string()));
    }

    pub fn set_object(&self, object: impl Into<String>) {
        let object = object.into();
        self.with(|note| note.object = Some(object));
    }

    pub fn set_detail(&self, detail: impl Into<String>) {
        let detail = detail.into();
        self.with(|note| note.detail = Some(detail));
    }
}

/// A user acting on the platform: the user as stored now and their role in each team.
#[derive(Debug, Clone)]
pub struct Actor {
    pub user: User,
    pub roles: BTreeMap<String, TeamRole>,
    /// Where this action's audit record collects its team, object and detail.
    pub audit: AuditSlot,
}

impl Actor {
    /// The user with their memberships as stored now.
    pub async fn load(store: &dyn Store, user: User, audit: AuditSlot) -> StoreResult<Actor> {
        let roles = store
            .list_memberships_of_user(user.id)
            .await?
            .into_iter()
            .map(|m| (m.team, m.role))
            .collect();
        audit.set_actor(&user.username);
        Ok(Actor { user, roles, audit })
    }

    pub fn username(&self) -> &str {
        &self.user.username
    }

    pub fn is_admin(&self) -> bool {
        self.user.is_admin && !self.user.disabled
    }

    /// The actor's role in `team`, if a member.
    pub fn role(&self, team: &str) -> Option<TeamRole> {
        self.roles.get(team).copied()
    }

    /// Whether the actor may do `action` in `team`.
    pub fn can(&self, team: &str, action: TeamAction) -> bool {
        authorize(&self.user, self.role(team), action)
    }

    /// Whether the actor may see anything of `team`.
    pub fn can_read(&self, team: &str) -> bool {
        self.can(team, TeamAction::Read)
    }

    /// Checks that the actor may do `action` on `what`, an object of `team`, and notes the
    /// team on the audit record. Actors who cannot even read the team get the same "not
    /// found" as for a missing object (names cannot be probed); readers lacking the role are
    /// refused with the role needed.
    pub fn require(&self, team: &str, action: TeamAction, what: &str) -> OpResult<()> {
        self.audit.set_team(team);
        if self.can(team, action) {
            return Ok(());
        }
        if !self.can_read(team) {
            return Err(OpError::not_found(what));
        }
        Err(OpError::Forbidden(format!(
            "your role in team {team} is {}; {} needs {}",
            self.role(team).map_or("none", TeamRole::as_str),
            action_name(action),
            least_role_for(action).map_or("a platform admin", TeamRole::as_str),
        )))
    }

    /// Checks that the actor is a platform admin.
    pub fn require_admin(&self) -> OpResult<()> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(OpError::Forbidden(
                "only platform admins may do this".to_string(),
            ))
        }
    }

    /// The teams whose objects the actor may read: `None` means every team (admins).
    pub fn readable_teams(&self) -> Option<Vec<String>> {
        if self.is_admin() {
            return None;
        }
        Some(
            self.roles
                .iter()
                .filter(|(_, role)| role.allows(TeamAction::Read))
                .map(|(team, _)| team.clone())
                .collect(),
        )
    }

    /// The team a new object goes to: the one named, or the actor's only team where they may
    /// do `action` (for an admin without teams, the `default` team).
    pub fn team_for_new(&self, named: Option<&str>, action: TeamAction) -> OpResult<String> {
        if let Some(team) = named {
            return Ok(team.to_string());
        }
        let allowed: Vec<&String> = self
            .roles
            .keys()
            .filter(|team| self.can(team, action))
            .collect();
        match allowed.as_slice() {
            [only] => Ok((*only).clone()),
            [] if self.is_admin() => Ok(berth_core::DEFAULT_TEAM.to_string()),
            _ => Err(OpError::field(
                "team",
                "is required: name the team that owns the app",
            )),
        }
    }
}

/// The least powerful role allowed `action`, for refusal messages.
fn least_role_for(action: TeamAction) -> Option<TeamRole> {
    ALL_TEAM_ROLES
        .iter()
        .rev()
        .copied()
        .find(|role| role.allows(action))
}

fn action_name(action: TeamAction) -> &'static str {
    match action {
        TeamAction::Read => "reading",
        TeamAction::Deploy => "deploying",
        TeamAction::Exec => "exec",
        TeamAction::PushImage => "pushing images",
        TeamAction::ManageTemplates => "changing templates",
        TeamAction::RequestQuota => "requesting quota",
        TeamAction::ManageMembers => "managing members",
        TeamAction::ManageTeam => "managing the team",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn least_role_names_the_weakest_role_allowed() {
        let cases = [
            (TeamAction::Read, Some(TeamRole::Viewer)),
            (TeamAction::Deploy, Some(TeamRole::Member)),
            (TeamAction::PushImage, Some(TeamRole::Member)),
            (TeamAction::ManageMembers, Some(TeamRole::Owner)),
        ];
        for (action, want) in cases {
            assert_eq!(least_role_for(action), want, "{action:?}");
        }
    }
}
