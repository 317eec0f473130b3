//! Berth's domain model and its pure decisions.
//!
//! Everything here is a plain function of its inputs and an injected `now` (unix milliseconds):
//! spec validation, the reconcile planner, the health state machine and crash-loop backoff.
//! No async, no Docker, no SQL — that is what makes it cheap to test exhaustively.

pub mod accounts;
pub mod app;
pub mod audit;
pub mod autoscale;
pub mod backoff;
pub mod canary;
pub mod certificate;
pub mod change;
pub mod clock;
pub mod compose;
pub mod deploy_template;
pub mod external_registry;
pub mod flows;
pub mod health;
pub mod idle;
pub mod image_ref;
pub mod installation;
pub mod leadership;
pub mod metrics_history;
pub mod node;
pub mod pipeline;
pub mod placement;
pub mod planner;
pub mod quota;
pub mod retention;
pub mod routes;
pub mod secret;
pub mod session;
pub mod spec;
pub mod team;
pub mod team_secret;
pub mod topology;
pub mod validate;
pub mod volume;

pub use app::{App, Event, EventKind, Revision, Rollout, RolloutPhase};
pub use external_registry::ExternalRegistry;
pub use retention::RetentionRule;
pub use spec::{AppSpec, Probe, ProbeKind, Resources, RolloutKind, RolloutStrategy, Template};
pub use validate::{FieldError, ValidationErrors};

/// Unix time in milliseconds. Passed in, never read from a clock, inside the core.
pub type Millis = i64;

/// The team that owns apps until accounts and departments exist.
pub const DEFAULT_TEAM: &str = "default";
