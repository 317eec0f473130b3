//! The audit log: one record per change attempted through Berth (who, what, which object,
//! when, from where, outcome).

use serde::{Deserialize, Serialize};

use crate::Millis;

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
    /// Dotted name of what was done, e.g. `app.create`, `user.disable`, `quota_request.approve`.
    pub action: String,
    /// The team the object belongs to, when it belongs to one (team owners see these).
    pub team: Option<String>,
    /// The object acted on, e.g. `app/web`, `user/alice`, `token/12`.
    pub object: String,
    /// The client's address.
    pub source: String,
    pub outcome: AuditOutcome,
    /// The HTTP status of the attempt.
    pub status: u16,
    /// Free text: the error message of a failure, or what changed.
    pub detail: String,
}
