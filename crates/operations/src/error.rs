//! The application layer's one error type: what went wrong, in domain terms. Doors map it to
//! their wire (the HTTP API in `berth_api::error`, the build worker into a build's log).

use berth_core::ValidationErrors;
use berth_core::quota::QuotaExceeded;
use berth_engine::EngineError;
use berth_store::StoreError;

/// Why an operation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    /// No such object, or one the actor may not know exists: `what` names it.
    #[error("{what} not found")]
    NotFound {
        what: String,
        /// The request field that named it, when there is one.
        field: Option<String>,
    },
    /// The actor may not do this (the message says which role it needs).
    #[error("{0}")]
    Forbidden(String),
    /// One field of the request is wrong.
    #[error("{field}: {message}")]
    Field { field: String, message: String },
    /// The spec does not validate (every bad field).
    #[error("{0}")]
    Invalid(ValidationErrors),
    /// The change would take the team beyond its quota.
    #[error("team {team} quota exceeded")]
    QuotaExceeded {
        team: String,
        exceeded: Vec<QuotaExceeded>,
    },
    /// The state changed under the request (`code` is stable, e.g. `already_exists`).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// A service Berth depends on (an ACME certificate authority) failed the request.
    #[error("{0}")]
    Upstream(String),
    /// The server's own files (its data directory) failed.
    #[error("{0}")]
    Storage(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Registry(#[from] berth_registry::RegistryError),
}

pub type OpResult<T> = Result<T, OpError>;

impl OpError {
    pub fn not_found(what: impl Into<String>) -> Self {
        OpError::NotFound {
            what: what.into(),
            field: None,
        }
    }

    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        OpError::Field {
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        OpError::Forbidden(message.into())
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        OpError::Conflict {
            code,
            message: message.into(),
        }
    }

    /// How the audit log calls an attempt that ended in this error: refused (who may do
    /// what, quota, objects the actor may not see) or failed (bad input, the machinery).
    pub fn audit_outcome(&self) -> berth_core::audit::AuditOutcome {
        use berth_core::audit::AuditOutcome;
        match self {
            OpError::NotFound { .. } | OpError::Forbidden(_) | OpError::QuotaExceeded { .. } => {
                AuditOutcome::Denied
            }
            OpError::Field { .. }
            | OpError::Invalid(_)
            | OpError::Conflict { .. }
            | OpError::Upstream(_)
            | OpError::Storage(_)
            | OpError::Store(_)
            | OpError::Engine(_)
            | OpError::Registry(_) => AuditOutcome::Failed,
        }
    }

    /// The refusal of a change beyond `team`'s quota, as one sentence naming every resource.
    pub fn quota_message(team: &str, exceeded: &[QuotaExceeded]) -> String {
        let problems: Vec<String> = exceeded.iter().map(ToString::to_string).collect();
        format!(
            "team {team} quota exceeded: {}; ask for more with a quota request",
            problems.join("; ")
        )
    }
}

impl From<ValidationErrors> for OpError {
    fn from(errors: ValidationErrors) -> Self {
        OpError::Invalid(errors)
    }
}
