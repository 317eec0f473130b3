//! The audit log: one record per change attempted through Berth (who, what, which object,
//! when, from where, outcome).

use serde::{Deserialize, Serialize};

use crate::Millis;

/// A manifest pushed to the built-in registry.
pub const REGISTRY_PUSH: &str = "registry.push";
/// A manifest or blob deleted through the registry's own API.
pub const REGISTRY_DELETE: &str = "registry.delete";
/// A `git push` to a pipeline's hosted repository.
pub const GIT_PUSH: &str = "git.push";
/// A command run inside an instance (`berth exec`, the console's terminal), recorded when it
/// ends: who, which instance, which command, how long — never what was typed.
pub const APPS_EXEC: &str = "apps.exec";

/// Every action the server records, sorted: the API's are named after the route (its literal
/// segments, then `create`/`put`/`update`/`delete` for the method unless the route ends in a
/// verb such as `scale`), plus the registry's and git's. The CLI's help lists them; a test of
/// the API checks that every audited route's name is here.
pub const ACTIONS: &[&str] = &[
    "apps.autoscale.delete",
    "apps.autoscale.put",
    "apps.certificates.acme",
    "apps.certificates.delete",
    "apps.certificates.put",
    "apps.create",
    "apps.delete",
    "apps.deploy",
    APPS_EXEC,
    "apps.rollback",
    "apps.scale",
    "auth.login",
    "auth.logout",
    "auth.register",
    "auth.token",
    "builds.cancel",
    "domain-reservations.delete",
    "domain-reservations.put",
    GIT_PUSH,
    "images.delete",
    "me.delete",
    "me.password",
    "me.tokens.create",
    "me.tokens.delete",
    "me.update",
    "nodes.availability.put",
    "nodes.labels.put",
    "pipelines.builds.create",
    "pipelines.delete",
    "pipelines.put",
    "pipelines.webhook",
    "quota-requests.approve",
    "quota-requests.reject",
    "registries.delete",
    "registries.images.delete",
    "registries.put",
    REGISTRY_DELETE,
    "registry.gc",
    REGISTRY_PUSH,
    "registry.retention",
    "registry.retention-rules.delete",
    "registry.retention-rules.put",
    "settings.put",
    "system.access-log.put",
    "system.backups.create",
    "system.on-demand-domains.delete",
    "system.on-demand-domains.put",
    "teams.compose.create",
    "teams.create",
    "teams.delete",
    "teams.members.delete",
    "teams.members.put",
    "teams.quota-requests.create",
    "teams.secrets.delete",
    "teams.secrets.put",
    "teams.update",
    "teams.volumes.archive.put",
    "teams.volumes.delete",
    "templates.apps.create",
    "templates.delete",
    "templates.put",
    "users.create",
    "users.delete",
    "users.disable",
    "users.enable",
    "users.update",
];

/// How an audited attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditOutcome {
    /// The change was made.
    Success,
    /// Refused by authentication, authorization or quota.
    Denied,
    /// Bad input or a failure; nothing (or not everything) changed.
    Failed,
}

/// One audited attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Assigned by the store, increasing.
    pub id: i64,
    pub at: Millis,
    /// Username, or `anonymous` for unauthenticated attempts.
    pub actor: String,
    /// Dotted name of what was done, one of [`ACTIONS`], e.g. `apps.create`, `users.disable`,
    /// `quota-requests.approve`.
    pub action: String,
    /// The team the object belongs to, when it belongs to one (team owners see these).
    pub team: Option<String>,
    /// The object acted on, e.g. `apps/web`, `users/alice`, `tokens/12`.
    pub object: String,
    /// The client's address.
    pub source: String,
    pub outcome: AuditOutcome,
    /// The HTTP status of the attempt; 0 when no HTTP request carried it (a pipeline's deploy).
    pub status: u16,
    /// Free text: the error message of a failure, or what changed.
    pub detail: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_are_sorted_and_unique() {
        for pair in ACTIONS.windows(2) {
            assert!(pair[0] < pair[1], "{} then {}", pair[0], pair[1]);
        }
    }
}
