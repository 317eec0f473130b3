//! `berth-pipeline`: Berth's code pipeline — from a pushed commit to a tested image in the
//! registry, rolled out to an app.
//!
//! * [`state`] — a build's lifecycle as a pure state machine (queued → fetching → building →
//!   testing → pushing → deploying → succeeded / failed / cancelled / timed out /
//!   interrupted), with per-step status and times.
//! * [`base_images`] — the images a Dockerfile builds on, and the rule that a build uses
//!   Berth's registry only within its own team.
//! * [`branch`] — branch patterns (`main`, `release/*`), branch names, commit ids, image tags.
//! * [`webhook`] — GitHub, GitLab and Gitea push webhooks: verification and parsing.
//! * [`git`] — fetching one exact commit with the `git` binary, with credentials.
//! * [`pktline`] — git's pkt-line framing: the ref updates of a `git push` to Berth and the
//!   side-band progress written back to the pusher.
//! * [`prune`] — old build images leave the engine; each pipeline keeps its newest few.
//! * [`runner`] — running a [`BuildPlan`]: fetch, build, test inside the image, tag and push,
//!   roll out; progress to a [`BuildSink`], roll-outs through a [`Deployer`], stopped by a
//!   [`Cancel`] or the build's timeout.
//!
//! Storage of pipelines and builds, the HTTP API, webhook endpoints and the git endpoint live
//! in `berth-api` and `berth-store`, which plug in through [`BuildSink`], [`Deployer`] and
//! [`Cancel`]. Only [`webhook`] reads JSON: the forges' payloads, not Berth's wire format.

pub mod base_images;
pub mod branch;
pub mod cancel;
pub mod git;
pub mod hosted;
pub mod pktline;
pub mod prune;
pub mod runner;
pub mod state;
pub mod webhook;

pub use branch::BranchPattern;
pub use cancel::{Cancel, CancelReason};
pub use git::{CommitInfo, GitAuth, GitError, GitRemote, Revision};
pub use runner::{
    BuildLog, BuildPlan, BuildReport, BuildSink, BuiltImage, Clock, DeployRequest, Deployer,
    LogSource, Runner,
};
pub use state::{BuildState, BuildStatus, Ending, Step, StepRecord, StepStatus};
pub use webhook::{Headers, Provider, PushEvent, WebhookError, WebhookEvent};
