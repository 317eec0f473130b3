//! Builds: the queue and worker that run pipelines' builds, their fair slots, and the
//! registry credentials each running build holds.

pub mod grants;
pub mod metrics;
pub mod slots;
pub mod worker;

pub use worker::{BuildEnv, BuildWorker, BuildWorkerConfig, StoredCredentials, build_label};
