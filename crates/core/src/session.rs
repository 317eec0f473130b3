//! Browser sessions: what a session cookie stands for.

use serde::{Deserialize, Serialize};

use crate::Millis;

/// A logged-in browser. The cookie's secret itself is never stored, only its hash (kept by
/// the store as the session's key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub user_id: i64,
    /// Must accompany every state-changing request made with the session cookie
    /// (`X-CSRF-Token` header): a page on another site cannot read it.
    pub csrf_token: String,
    pub created_at: Millis,
    /// The session ends here, or earlier at logout.
    pub expires_at: Millis,
    pub last_seen_at: Millis,
    /// The client's address at login.
    pub source: String,
}

impl Session {
    /// Whether the session still admits its holder at `now`.
    pub fn is_live(&self, now: Millis) -> bool {
        now < self.expires_at
    }
}
