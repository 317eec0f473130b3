//! Stopping a build from outside, saying why: a user's cancel ends it `cancelled`, a server
//! shutdown ends it `interrupted`.

use std::sync::{Arc, OnceLock};

use tokio_util::sync::CancellationToken;

/// Why a build was stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CancelReason {
    /// Someone cancelled it.
    User,
    /// Berth is shutting down.
    Shutdown,
}

/// A cancel token shared by whoever may stop a build and the build itself. Clones share it;
/// the first reason given wins.
#[derive(Debug, Clone, Default)]
pub struct Cancel {
    token: CancellationToken,
    reason: Arc<OnceLock<CancelReason>>,
}

impl Cancel {
    pub fn new() -> Self {
        Self::default()
    }

    /// Stops the build (idempotent; a later reason does not replace the first).
    pub fn cancel(&self, reason: CancelReason) {
        let _ = self.reason.set(reason);
        self.token.cancel();
    }

    /// Why it was stopped, once it was.
    pub fn reason(&self) -> Option<CancelReason> {
        self.reason.get().copied()
    }

    pub fn is_cancelled(&self) -> bool {
        self.token.is_cancelled()
    }

    /// The underlying token, for the engine and git.
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_reason_wins_and_clones_share_it() {
        let cancel = Cancel::new();
        let other = cancel.clone();
        assert!(!other.is_cancelled());
        assert_eq!(other.reason(), None);
        cancel.cancel(CancelReason::Shutdown);
        cancel.cancel(CancelReason::User);
        assert!(other.is_cancelled());
        assert!(other.token().is_cancelled());
        assert_eq!(other.reason(), Some(CancelReason::Shutdown));
    }
}
