//! The Store seams: where Berth keeps desired state (apps, revisions, rollouts, events, …).
//!
//! Only this crate knows SQL. The store is split by area — [`AppStore`], [`AccountStore`],
//! [`RegistryStore`], [`PipelineStore`], [`CertificateStore`], [`NodeStore`], [`VolumeStore`],
//! [`SecretStore`], [`LeaseStore`] — and [`Store`] is all nine (what the server passes around
//! as `Arc<dyn Store>`); [`SharedLocks`] are the locks of a store several servers share. Callers bring the area traits into scope with
//! `use berth_store::prelude::*;`. [`sqlite::SqliteStore`] is the embedded default and
//! [`postgres::PostgresStore`] the store several servers share, both chosen by URL with
//! [`open`] and both built from one set of queries (module `sql`, compiled once per backend). Every implementation
//! of an area must pass that area's conformance suite (module `conformance`, cargo feature
//! `conformance`); `memory::MemoryStore` (feature `memory`) implements the apps area for tests.
//! Timestamps and ids come in from the caller (deterministic writes); the store never reads a
//! clock. The metrics history is [`MetricsStore`], kept apart from [`Store`] in a database of
//! its own ([`SqliteMetricsStore`]), so its writes never wait on the control plane's.

#[cfg(feature = "conformance")]
pub mod conformance;
mod enums;
#[cfg(feature = "memory")]
pub mod memory;
mod migrations;
pub mod postgres;
pub mod sqlite;
mod url;

use async_trait::async_trait;
use berth_core::accounts::{ApiToken, Membership, User};
use berth_core::audit::{AuditEntry, AuditOutcome};
use berth_core::certificate::StoredCertificate;
use berth_core::deploy_template::DeploymentTemplate;
use berth_core::metrics_history::{Sample, SeriesFilter, SeriesPoints, Tier, Tiers};
use berth_core::node::{NodeLabels, PlatformEvent};
use berth_core::pipeline::{Build, Pipeline};
use berth_core::quota::{QuotaRequest, QuotaRequestStatus, Usage};
use berth_core::routes::DomainReservation;
use berth_core::session::Session;
use berth_core::team::Team;
use berth_core::{App, Event, ExternalRegistry, Millis, RetentionRule, Revision, Template};

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;
pub use sqlite::metrics::SqliteMetricsStore;
pub use url::{StoreUrl, open};

/// The area traits, for `use berth_store::prelude::*;` where a store's methods are called.
pub mod prelude {
    pub use crate::{
        AccountStore, AppStore, CertificateStore, LeaseStore, NodeStore, PipelineStore,
        RegistryStore, SecretStore, Store, VolumeStore,
    };
}

/// Errors from the store layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The object does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// A unique name is taken, or the object changed since it was read (stale version).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The database failed or is unreachable.
    #[error("database error: {0}")]
    Database(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Which events to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventQuery {
    /// Only events with an id greater than this; `None` means the latest `limit` events.
    pub after_id: Option<i64>,
    /// At most this many events are returned.
    pub limit: u32,
}

/// Which apps [`AppStore::list_apps_page`] lists: those of `teams` (every app when `None`)
/// whose name sorts after `after`, ordered by name, at most `limit` of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppPage {
    /// Only apps of these teams; `None`: every team (an empty list lists nothing).
    pub teams: Option<Vec<String>>,
    /// Only apps whose name is greater than this (the previous page's
    /// [`AppList::next_after`]); `None`: from the first.
    pub after: Option<String>,
    /// At most this many apps.
    pub limit: u32,
}

/// The image one kept revision runs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RevisionImage {
    pub app: String,
    pub revision: u32,
    pub image: String,
}

/// The app that holds a domain.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct DomainOwner {
    pub host: String,
    pub path: String,
    pub app: String,
    pub team: String,
}

/// An app with the template of its current revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedApp {
    pub app: App,
    /// `None` when the current revision is missing (never written, or pruned).
    pub template: Option<Template>,
}

/// One page of apps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppList {
    /// Ordered by name.
    pub apps: Vec<ListedApp>,
    /// The name to pass as [`AppPage::after`] for the next page; `None` on the last page.
    pub next_after: Option<String>,
}

/// Which audit records to read. Every `Some` filter must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Only records of this team.
    pub team: Option<String>,
    /// Only records whose actor is this username.
    pub actor: Option<String>,
    /// Only records whose action starts with this text (`app.` matches every app action).
    pub action_prefix: Option<String>,
    /// Only records whose object is exactly this.
    pub object: Option<String>,
    pub outcome: Option<AuditOutcome>,
    /// Only records at or after this time.
    pub since: Option<Millis>,
    /// Only records before this time.
    pub until: Option<Millis>,
    /// Only records with an id smaller than this (paging backwards).
    pub before_id: Option<i64>,
    /// At most this many records, newest first.
    pub limit: u32,
}

/// Which quota requests to read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QuotaRequestQuery {
    pub team: Option<String>,
    pub status: Option<QuotaRequestStatus>,
    /// Only requests filed by this username.
    pub requested_by: Option<String>,
}

/// Which builds to read, newest first. Every `Some` filter must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildQuery {
    pub team: Option<String>,
    /// Only builds of pipelines with this name (give `team` too: names are unique per team).
    pub pipeline: Option<String>,
    /// Only builds with an id smaller than this (paging backwards).
    pub before_id: Option<i64>,
    /// At most this many builds.
    pub limit: u32,
}

/// What [`PipelineStore::create_build_for_delivery`] did with a webhook delivery.
// One short-lived value per delivery, matched at once: boxing the build would only add an
// allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryBuild {
    /// A first delivery: its build, as stored.
    Created(Build),
    /// The delivery id was already recorded; nothing was written.
    Redelivered {
        /// The build the first delivery started; `None` when that build has since been pruned
        /// or deleted (or the delivery was recorded before deliveries remembered their build).
        build_id: Option<i64>,
    },
    /// A webhook of this pipeline already built the pushed commit; nothing was written.
    AlreadyBuilt {
        /// The build that built it; `None` when it has since been pruned.
        build_id: Option<i64>,
    },
    /// The pushed commit is the `before` of a push a webhook of this pipeline already built
    /// on the same branch: the delivery is older than what was built. Nothing was written.
    Superseded,
}

/// An admin's decision on a pending quota request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaDecision {
    pub id: i64,
    /// Approve (the team's quota takes the requested limits in the same transaction) or
    /// reject.
    pub approve: bool,
    /// Username of the deciding admin.
    pub decided_by: String,
    pub comment: Option<String>,
    pub now: Millis,
}

/// The apps area: apps, their revisions, instance ordinals, events and what each team's apps
/// reserve. All the controller needs; a backend for reconciler tests implements only this.
#[async_trait]
pub trait AppStore: Send + Sync + 'static {
    /// Checks that the database answers.
    async fn ping(&self) -> StoreResult<()>;

    /// Inserts a new app with its first revision, atomically. `Conflict` when the name is taken.
    /// `first_revision.app` must be `app.name` (refused otherwise).
    async fn create_app(&self, app: &App, first_revision: &Revision) -> StoreResult<()>;

    /// The app, or `None` when it does not exist.
    async fn get_app(&self, name: &str) -> StoreResult<Option<App>>;

    /// All apps, ordered by name.
    async fn list_apps(&self) -> StoreResult<Vec<App>>;

    /// One page of apps ordered by name (see [`AppPage`]), each with its current revision's
    /// template, in a constant number of queries whatever the page size.
    async fn list_apps_page(&self, page: &AppPage) -> StoreResult<AppList>;

    /// Records the health the controllers' prober found for container `container_id` of `app`
    /// at `at` (replacing what was recorded), so that every server shows it.
    async fn put_instance_health(
        &self,
        app: &str,
        container_id: &str,
        health: &berth_core::health::RecordedHealth,
        at: Millis,
    ) -> StoreResult<()>;

    /// The recorded health of `app`'s containers, by container id.
    async fn instance_health(
        &self,
        app: &str,
    ) -> StoreResult<std::collections::BTreeMap<String, berth_core::health::RecordedHealth>>;

    /// Forgets the recorded health of these containers (gone).
    async fn forget_instance_health(&self, container_ids: &[String]) -> StoreResult<()>;

    /// The image of every kept revision of every app, ordered by app and revision, in one
    /// query (what the registry must not delete: images apps run or may roll back to).
    async fn revision_images(&self) -> StoreResult<Vec<RevisionImage>>;

    /// Writes the app's mutable fields when the stored version equals `app.version`
    /// (optimistic concurrency: `Conflict` otherwise, `NotFound` when it is gone). Returns the
    /// app as stored, with `version` incremented. `next_ordinal` never decreases: the stored
    /// value becomes the larger of the two (the reconciler reserves instance slots this way,
    /// before it starts them).
    async fn update_app(&self, app: &App) -> StoreResult<App>;

    /// Atomically adds `revision`, updates `app` as [`AppStore::update_app`] does, and prunes the
    /// app's revisions to the newest `keep` — never removing `app.current_revision` nor
    /// `app.stable_revision`. `Conflict` when the revision number exists.
    async fn add_revision(&self, app: &App, revision: &Revision, keep: u32) -> StoreResult<App>;

    /// The revision, or `None` when it never existed or was pruned.
    async fn get_revision(&self, app: &str, number: u32) -> StoreResult<Option<Revision>>;

    /// The app's kept revisions, newest first.
    async fn list_revisions(&self, app: &str) -> StoreResult<Vec<Revision>>;

    /// Deletes the app with its revisions and events; returns whether it existed.
    async fn delete_app(&self, name: &str) -> StoreResult<bool>;

    /// Appends events (their `id` is ignored and assigned by the store, increasing). Keeps at
    /// most the newest `keep_per_app` events of each app.
    async fn append_events(&self, events: &[Event], keep_per_app: u32) -> StoreResult<()>;

    /// An app's events in ascending id order (see [`EventQuery`]); none for an unknown app.
    async fn list_events(&self, app: &str, query: EventQuery) -> StoreResult<Vec<Event>>;

    /// What the team's apps reserve, except `except_app` (the app a change is admitted for):
    /// the sum over the team's apps of [`berth_core::quota::app_usage`] of the app's replicas
    /// and its current revision's resources (a missing revision counts as unlimited
    /// resources, i.e. instances only). `registry_bytes` is 0: the caller adds storage.
    ///
    /// Kept with each app in the same write as every change of its `replicas`, `team` or
    /// `current_revision`, so the answer costs the same whatever the number of apps. Each
    /// app's share is counted at most `i64::MAX` per resource (the largest a `BIGINT` holds);
    /// the sum saturates at `u64::MAX` like [`berth_core::quota::Usage::add`].
    async fn team_usage(&self, team: &str, except_app: Option<&str>) -> StoreResult<Usage>;

    /// Which apps hold domains on these hosts (any path), ordered by host and path. A domain
    /// is an app's from the write that lists it in `app.routes` (`create_app`, `update_app`,
    /// `add_revision`) to the write that drops it or the app's deletion; a write that claims a
    /// domain another app holds fails with `Conflict` and changes nothing.
    async fn domain_owners(&self, hosts: &[String]) -> StoreResult<Vec<DomainOwner>>;

    /// Every domain reservation, ordered by domain.
    async fn list_domain_reservations(&self) -> StoreResult<Vec<DomainReservation>>;

    /// Adds or replaces the reservation of `reservation.domain`.
    async fn put_domain_reservation(&self, reservation: &DomainReservation) -> StoreResult<()>;

    /// Removes a reservation; returns whether it existed.
    async fn delete_domain_reservation(&self, domain: &str) -> StoreResult<bool>;
}

/// The accounts area: teams, users, memberships, API tokens, sessions, quota requests,
/// deployment templates, the audit log and server settings.
#[async_trait]
pub trait AccountStore: Send + Sync + 'static {
    /// Creates the team if it does not exist (idempotent).
    async fn ensure_team(&self, name: &str, now: Millis) -> StoreResult<()>;

    // Users. Usernames are unique; emails are unique regardless of case. User and token ids
    // are assigned by the store and never reused.

    /// Inserts a user (its `id` is ignored) with its password hash; returns it with the
    /// assigned id. `Conflict` when the username or the email is taken.
    async fn create_user(&self, user: &User, password_hash: &str) -> StoreResult<User>;

    /// The user, or `None`.
    async fn get_user(&self, id: i64) -> StoreResult<Option<User>>;

    /// The user with their password hash, or `None` (for logging in).
    async fn get_user_by_username(&self, username: &str) -> StoreResult<Option<(User, String)>>;

    /// All users, ordered by username.
    async fn list_users(&self) -> StoreResult<Vec<User>>;

    /// Writes `email`, `display_name`, `is_admin`, `disabled` and `updated_at` of the user
    /// `user.id` (the username is immutable). `NotFound` when the user does not exist,
    /// `Conflict` when the email is taken.
    async fn update_user(&self, user: &User) -> StoreResult<()>;

    /// Replaces the user's password hash and sets `updated_at` to `now`. `NotFound` when the
    /// user does not exist.
    async fn set_password_hash(
        &self,
        user_id: i64,
        password_hash: &str,
        now: Millis,
    ) -> StoreResult<()>;

    /// Deletes the user with their memberships and API tokens; returns whether they existed.
    async fn delete_user(&self, id: i64) -> StoreResult<bool>;

    /// Creates or replaces the user's role in the team. `NotFound` when the team or the user
    /// does not exist.
    async fn put_membership(&self, membership: &Membership) -> StoreResult<()>;

    /// Removes the user from the team; returns whether they were a member.
    async fn delete_membership(&self, team: &str, user_id: i64) -> StoreResult<bool>;

    /// The user's memberships, ordered by team.
    async fn list_memberships_of_user(&self, user_id: i64) -> StoreResult<Vec<Membership>>;

    /// The team's memberships, ordered by user id.
    async fn list_team_members(&self, team: &str) -> StoreResult<Vec<Membership>>;

    /// Stores a token (its `id` is ignored) under the hash of its secret; returns it with the
    /// assigned id. `NotFound` when the user does not exist, `Conflict` when the hash exists.
    async fn create_api_token(&self, token: &ApiToken, token_hash: &str) -> StoreResult<ApiToken>;

    /// The token stored under `token_hash`, or `None`. Revoked and expired tokens are returned
    /// too: the caller must check [`ApiToken::is_usable`] and that the user is not disabled.
    async fn find_api_token(&self, token_hash: &str) -> StoreResult<Option<ApiToken>>;

    /// The user's tokens, revoked ones included, ordered by id (oldest first).
    async fn list_api_tokens(&self, user_id: i64) -> StoreResult<Vec<ApiToken>>;

    /// Marks the user's token revoked; returns whether the user has a token with that id
    /// (revoking twice is fine; another user's token is never touched).
    async fn revoke_api_token(&self, user_id: i64, token_id: i64) -> StoreResult<bool>;

    /// Revokes every token of the user (when they are disabled); returns how many were live.
    async fn revoke_all_api_tokens(&self, user_id: i64) -> StoreResult<u64>;

    /// Records a use of the token at `now` (`last_used_at` never moves backwards). A missing
    /// token is not an error.
    async fn touch_api_token(&self, token_id: i64, now: Millis) -> StoreResult<()>;

    // Sessions, keyed by the hash of the cookie's secret.

    /// Stores a new session. `Conflict` when the hash exists, `NotFound` when the user does not.
    async fn create_session(&self, session_hash: &str, session: &Session) -> StoreResult<()>;

    /// The session stored under the hash, or `None`. Expired sessions are returned too (the
    /// caller checks [`Session::is_live`]).
    async fn find_session(&self, session_hash: &str) -> StoreResult<Option<Session>>;

    /// Records activity on the session at `now` (`last_seen_at` never moves backwards).
    async fn touch_session(&self, session_hash: &str, now: Millis) -> StoreResult<()>;

    /// Ends one session; returns whether it existed.
    async fn delete_session(&self, session_hash: &str) -> StoreResult<bool>;

    /// Ends every session of the user (logout everywhere, password change, disable); returns
    /// how many there were.
    async fn delete_sessions_of_user(&self, user_id: i64) -> StoreResult<u64>;

    /// Deletes sessions that expired before `now`; returns how many.
    async fn delete_expired_sessions(&self, now: Millis) -> StoreResult<u64>;

    // Teams. `ensure_team` (above) creates a team with an unlimited quota.

    /// Inserts a team. `Conflict` when the name is taken.
    async fn create_team(&self, team: &Team) -> StoreResult<()>;

    /// The team, or `None`.
    async fn get_team(&self, name: &str) -> StoreResult<Option<Team>>;

    /// All teams, ordered by name.
    async fn list_teams(&self) -> StoreResult<Vec<Team>>;

    /// Writes the team's `display_name`, `quota` and `updated_at`. `NotFound` when it does
    /// not exist.
    async fn update_team(&self, team: &Team) -> StoreResult<()>;

    /// Deletes the team with its memberships, quota requests, templates, external registries,
    /// pipelines (with their builds, deliveries and built commits) and the retention rules of
    /// its registry namespace (`<team>` and `<team>/...`), so a team made later under the same
    /// name inherits nothing; returns whether it existed. `Conflict` when it still owns apps.
    async fn delete_team(&self, name: &str) -> StoreResult<bool>;

    // Quota requests.

    /// Stores a request (its `id` is ignored); returns it with the assigned id. `NotFound` when
    /// the team does not exist.
    async fn create_quota_request(&self, request: &QuotaRequest) -> StoreResult<QuotaRequest>;

    /// The request, or `None`.
    async fn get_quota_request(&self, id: i64) -> StoreResult<Option<QuotaRequest>>;

    /// Matching requests, newest first.
    async fn list_quota_requests(
        &self,
        query: &QuotaRequestQuery,
    ) -> StoreResult<Vec<QuotaRequest>>;

    /// Decides a pending request atomically: records the decision and, when approved, sets
    /// each requested limit on the team. Returns the decided request. `NotFound` when there is
    /// no such request, `Conflict` when it was already decided.
    async fn decide_quota_request(&self, decision: &QuotaDecision) -> StoreResult<QuotaRequest>;

    // Deployment templates of teams (built-ins live in the code, not here).

    /// Creates or replaces the template `(template.team, template.name)`; `created_at` of a
    /// replaced template is kept. `NotFound` when the team does not exist; a template without
    /// a team is refused (`Conflict`).
    async fn put_deployment_template(&self, template: &DeploymentTemplate) -> StoreResult<()>;

    /// The team's template, or `None`.
    async fn get_deployment_template(
        &self,
        team: &str,
        name: &str,
    ) -> StoreResult<Option<DeploymentTemplate>>;

    /// Templates of the given team (all teams when `None`), ordered by team then name.
    async fn list_deployment_templates(
        &self,
        team: Option<&str>,
    ) -> StoreResult<Vec<DeploymentTemplate>>;

    /// Deletes the team's template; returns whether it existed.
    async fn delete_deployment_template(&self, team: &str, name: &str) -> StoreResult<bool>;

    // Audit log.

    /// Appends a record (its `id` is ignored and assigned, increasing); returns the id.
    async fn append_audit(&self, entry: &AuditEntry) -> StoreResult<i64>;

    /// Matching records, newest first.
    async fn list_audit(&self, query: &AuditQuery) -> StoreResult<Vec<AuditEntry>>;

    // Server settings changed at run time (e.g. whether self-registration is open).

    /// The setting's value, or `None` when never set.
    async fn get_setting(&self, key: &str) -> StoreResult<Option<String>>;

    /// Creates or replaces the setting.
    async fn put_setting(&self, key: &str, value: &str, now: Millis) -> StoreResult<()>;

    /// Sets the setting to `value` when it has none yet; answers the value it holds afterwards
    /// (of two callers racing, both get the first one's value).
    async fn init_setting(&self, key: &str, value: &str, now: Millis) -> StoreResult<String>;

    // Team members with their users.

    /// The team's memberships with the members' users, ordered by username.
    async fn list_team_users(&self, team: &str) -> StoreResult<Vec<(User, Membership)>>;
}

/// The registry area: retention rules of the built-in registry and external registries.
#[async_trait]
pub trait RegistryStore: Send + Sync + 'static {
    // Retention rules of the built-in registry.

    /// Creates or replaces the retention rule of `rule.repository`.
    async fn put_retention_rule(&self, rule: &RetentionRule) -> StoreResult<()>;

    /// Every retention rule, ordered by repository.
    async fn list_retention_rules(&self) -> StoreResult<Vec<RetentionRule>>;

    /// Deletes a repository's retention rule; returns whether it existed.
    async fn delete_retention_rule(&self, repository: &str) -> StoreResult<bool>;

    // External registries (the password arrives sealed; the store never sees the plaintext).

    /// Creates or replaces the external registry `registry.name`; `created_at` of a replaced
    /// one is kept. `NotFound` when its team does not exist.
    async fn put_external_registry(&self, registry: &ExternalRegistry) -> StoreResult<()>;

    /// The external registry, or `None`.
    async fn get_external_registry(&self, name: &str) -> StoreResult<Option<ExternalRegistry>>;

    /// Every external registry, ordered by name.
    async fn list_external_registries(&self) -> StoreResult<Vec<ExternalRegistry>>;

    /// Deletes an external registry; returns whether it existed.
    async fn delete_external_registry(&self, name: &str) -> StoreResult<bool>;

    // The built-in registry's metadata (tags, manifest records, blob links, upload records):
    // opaque values under `/`-separated keys, one copy for every server of the installation.

    /// The value at `key`, or `None`.
    async fn get_registry_metadata(&self, key: &str) -> StoreResult<Option<Vec<u8>>>;

    /// Creates or replaces the value at `key` (atomically: readers see the old or the new).
    async fn put_registry_metadata(&self, key: &str, value: &[u8]) -> StoreResult<()>;

    /// Deletes `key`; returns whether it existed.
    async fn delete_registry_metadata(&self, key: &str) -> StoreResult<bool>;

    /// Every key that starts with `prefix`, in byte order (empty: every key).
    async fn registry_metadata_keys(&self, prefix: &str) -> StoreResult<Vec<String>>;
}

/// The pipelines area: pipelines, their builds and the webhook deliveries that start them.
#[async_trait]
pub trait PipelineStore: Send + Sync + 'static {
    // Pipelines and builds (credentials and webhook secrets arrive sealed).

    /// Creates or replaces the pipeline `(pipeline.team, pipeline.name)`; `created_at` of a
    /// replaced pipeline is kept, and so are its builds and build numbering. `NotFound` when
    /// the team does not exist.
    async fn put_pipeline(&self, pipeline: &Pipeline) -> StoreResult<()>;

    /// The team's pipeline, or `None`.
    async fn get_pipeline(&self, team: &str, name: &str) -> StoreResult<Option<Pipeline>>;

    /// Pipelines of the given team (all teams when `None`), ordered by team then name.
    async fn list_pipelines(&self, team: Option<&str>) -> StoreResult<Vec<Pipeline>>;

    /// Deletes the pipeline with its builds and recorded webhook deliveries, whatever state
    /// they are in (never `Conflict`); returns whether it existed. Stopping running builds is
    /// the caller's business.
    async fn delete_pipeline(&self, team: &str, name: &str) -> StoreResult<bool>;

    /// Stores a new build of `(build.team, build.pipeline)`; its `id` and `number` are ignored
    /// and assigned atomically: ids increase across all builds and are never reused, numbers
    /// count 1, 2, … per pipeline and are never reused while the pipeline exists (pruning
    /// leaves gaps). Returns the build as stored. `NotFound` when the pipeline does not exist.
    async fn create_build(&self, build: &Build) -> StoreResult<Build>;

    /// Writes what a build learns as it runs: commit, branch, author, message, status, steps,
    /// image digest, rollout outcome, reason and times (`team`, `pipeline`, `number`,
    /// `trigger`, `triggered_by` and `created_at` are immutable). `NotFound` when the build
    /// does not exist; `Conflict` when it has ended with another status (an ended build's
    /// status is final, so a build marked interrupted is never finished twice — an ended build
    /// may still be written with the same status, e.g. to add its rollout outcome).
    async fn update_build(&self, build: &Build) -> StoreResult<()>;

    /// The build, or `None`.
    async fn get_build(&self, id: i64) -> StoreResult<Option<Build>>;

    /// Matching builds, newest first.
    async fn list_builds(&self, query: &BuildQuery) -> StoreResult<Vec<Build>>;

    /// Ends every build that started and has not ended as interrupted at `now` with `reason`
    /// (its running step interrupted, steps not run skipped; see [`Build::interrupt`]), for a
    /// server that starts after a crash or restart. Queued builds are left to run. Returns the
    /// ids of the builds it ended.
    async fn interrupt_started_builds(&self, now: Millis, reason: &str) -> StoreResult<Vec<i64>>;

    /// Every queued build, oldest first (a starting server queues them again).
    async fn queued_builds(&self) -> StoreResult<Vec<Build>>;

    /// Retention: keeps the pipeline's newest `keep` builds and deletes the older ones that
    /// have ended (an unfinished build is never pruned). Returns the deleted ids, ascending, so
    /// the caller can drop their logs. Nothing for an unknown pipeline.
    async fn prune_builds(&self, team: &str, pipeline: &str, keep: u32) -> StoreResult<Vec<i64>>;

    /// Creates the build a webhook delivery asks for, unless that delivery was received before
    /// or its pushed commit was built already.
    ///
    /// `build.commit` (the pushed commit) and `build.branch` must be set (`Conflict`
    /// otherwise); `before` is the branch's previous head as the payload tells it, if it does.
    /// In one write transaction, in this order: when `delivery_id` is already recorded for
    /// `(build.team, build.pipeline)` (a redelivery), the answer is
    /// [`DeliveryBuild::Redelivered`] with the build the first delivery started; when a webhook
    /// of the pipeline already built `build.commit` (on any branch), [`DeliveryBuild::AlreadyBuilt`];
    /// when `build.commit` is the `before` of a push a webhook of the pipeline built on the same
    /// branch, [`DeliveryBuild::Superseded`] — in those three cases nothing is written.
    /// Otherwise the build is stored exactly as [`PipelineStore::create_build`] stores it, the delivery
    /// (when it has an id) is recorded at `now` with that build's id, the commit is remembered
    /// as built by that build, and `before` (unless absent, all zeros or the commit itself) as
    /// superseded on the branch ([`DeliveryBuild::Created`]). So a delivery is never recorded
    /// without its build: when creating the build fails, a redelivery builds. Concurrent
    /// deliveries of one id or of one commit create one build. `NotFound` when the pipeline
    /// does not exist. Delivery ids are remembered until [`PipelineStore::prune_webhook_deliveries`]
    /// forgets them; built and superseded commits are never pruned (not with their builds
    /// either) and go only with the pipeline.
    async fn create_build_for_delivery(
        &self,
        build: &Build,
        delivery_id: Option<&str>,
        before: Option<&str>,
        now: Millis,
    ) -> StoreResult<DeliveryBuild>;

    /// Forgets webhook deliveries recorded before `cutoff`; returns how many.
    async fn prune_webhook_deliveries(&self, cutoff: Millis) -> StoreResult<u64>;
}

/// The certificates area: the TLS certificate of each app host (the private key arrives
/// sealed; the store never sees the plaintext).
#[async_trait]
pub trait CertificateStore: Send + Sync + 'static {
    /// Creates or replaces the certificate of `certificate.host` (whichever app held it: the
    /// caller checks that the host is its app's). `NotFound` when the app does not exist. A
    /// certificate is deleted with its app.
    async fn put_certificate(&self, certificate: &StoredCertificate) -> StoreResult<()>;

    /// The certificate of `host`, or `None`.
    async fn get_certificate(&self, host: &str) -> StoreResult<Option<StoredCertificate>>;

    /// The certificates of `app` (every app's when `None`), ordered by host.
    async fn list_certificates(&self, app: Option<&str>) -> StoreResult<Vec<StoredCertificate>>;

    /// Deletes the certificate of `host`; returns whether it existed.
    async fn delete_certificate(&self, host: &str) -> StoreResult<bool>;
}

/// The nodes area: what admins set on nodes (labels) and the platform's own events — a node's
/// or the cluster's, never an app's (apps' events are [`AppStore::list_events`]'s).
#[async_trait]
pub trait NodeStore: Send + Sync + 'static {
    /// The labels of every node that has any, by node name.
    async fn node_labels(&self) -> StoreResult<std::collections::BTreeMap<String, NodeLabels>>;

    /// Replaces the labels of `node` (none: it has no labels any more).
    async fn set_node_labels(
        &self,
        node: &str,
        labels: &NodeLabels,
        now: Millis,
    ) -> StoreResult<()>;

    /// Appends platform events (their `id` is ignored and assigned by the store, increasing).
    /// Keeps at most the newest `keep_per_subject` events of each subject.
    async fn append_platform_events(
        &self,
        events: &[PlatformEvent],
        keep_per_subject: u32,
    ) -> StoreResult<()>;

    /// The events of `subject` (`node/<name>`, `cluster`) in ascending id order (see
    /// [`EventQuery`]).
    async fn list_platform_events(
        &self,
        subject: &str,
        query: EventQuery,
    ) -> StoreResult<Vec<PlatformEvent>>;
}

/// A volume's measured size, as [`VolumeStore::record_volume_sizes`] takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeSize {
    pub team: String,
    pub name: String,
    pub bytes: u64,
}

/// A team's volumes (see [`berth_core::volume`]): the records of what the engine stores.
#[async_trait]
pub trait VolumeStore: Send + Sync + 'static {
    /// Records a new volume (its size unmeasured); `false` when the team already has one of
    /// that name (which is left as it is).
    async fn create_volume(&self, volume: &berth_core::volume::Volume) -> StoreResult<bool>;

    async fn get_volume(
        &self,
        team: &str,
        name: &str,
    ) -> StoreResult<Option<berth_core::volume::Volume>>;

    /// The volumes of `team` (every team's when `None`), by team and name.
    async fn list_volumes(
        &self,
        team: Option<&str>,
    ) -> StoreResult<Vec<berth_core::volume::Volume>>;

    /// Forgets a volume; `false` when there was none.
    async fn delete_volume(&self, team: &str, name: &str) -> StoreResult<bool>;

    /// Sets the sizes of recorded volumes measured at `now` (unknown volumes are skipped).
    async fn record_volume_sizes(&self, sizes: &[VolumeSize], now: Millis) -> StoreResult<()>;

    /// What a team's volumes hold, as last measured.
    async fn team_volume_bytes(&self, team: &str) -> StoreResult<u64>;
}

/// Team secrets (see [`berth_core::team_secret`]): their names and versions, and each
/// version's value sealed by the caller (the store never sees a value in the clear).
#[async_trait]
pub trait SecretStore: Send + Sync + 'static {
    async fn get_secret(
        &self,
        team: &str,
        name: &str,
    ) -> StoreResult<Option<berth_core::team_secret::TeamSecret>>;

    /// The secrets of `team` (every team's when `None`), by team and name.
    async fn list_secrets(
        &self,
        team: Option<&str>,
    ) -> StoreResult<Vec<berth_core::team_secret::TeamSecret>>;

    /// Stores `secret.version` with its sealed value: version 1 creates the secret, any
    /// other must follow the stored version by one ([`StoreError::Conflict`] otherwise, and
    /// when version 1 exists already). Versions older than the newest `keep` are dropped.
    async fn add_secret_version(
        &self,
        secret: &berth_core::team_secret::TeamSecret,
        sealed: &str,
        keep: u32,
    ) -> StoreResult<()>;

    /// The sealed value of one version, if kept.
    async fn sealed_secret(
        &self,
        team: &str,
        name: &str,
        version: u32,
    ) -> StoreResult<Option<String>>;

    /// Forgets a secret and every version of it; `false` when there was none.
    async fn delete_secret(&self, team: &str, name: &str) -> StoreResult<bool>;
}

/// Leases ([`berth_core::leadership`]): which of several servers on one database leads. The
/// caller's clock gives `now`; the servers' clocks must agree to well within the lease's
/// safety margin.
#[async_trait]
pub trait LeaseStore: Send + Sync {
    /// Takes or renews lease `name` for `holder` until `now + ttl_ms`, in one atomic step: it
    /// succeeds when the lease is new, has expired at `now`, or is `holder`'s and still
    /// running (a renewal keeps the epoch; any other take starts a new term, epoch + 1).
    /// Answers the lease as it stands afterwards: held by someone else when they hold it.
    async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        now: Millis,
        ttl_ms: i64,
    ) -> StoreResult<berth_core::leadership::Lease>;

    /// Gives lease `name` up (it expires at once) when `holder` holds it in term `epoch`, so a
    /// follower takes it without waiting; `false` when it did not.
    async fn release_lease(&self, name: &str, holder: &str, epoch: i64) -> StoreResult<bool>;

    /// The lease as it stands; `None` before anyone took it.
    async fn get_lease(&self, name: &str) -> StoreResult<Option<berth_core::leadership::Lease>>;

    /// Writes `body` under `key` for the other servers, in one statement that checks that
    /// `holder` holds lease `lease` in term `epoch`: a deposed leader's late write changes
    /// nothing. `false` when it does not hold that term (nothing written).
    #[allow(clippy::too_many_arguments)]
    async fn publish_as_leader(
        &self,
        lease: &str,
        holder: &str,
        epoch: i64,
        key: &str,
        body: &str,
        now: Millis,
    ) -> StoreResult<bool>;

    /// The database's clock now (unix ms): servers compare theirs with it before they lead.
    async fn database_time(&self) -> StoreResult<Millis>;

    /// What was last published under `key`; `None` before anything was.
    async fn published(&self, key: &str) -> StoreResult<Option<berth_core::leadership::Published>>;
}

/// Locks that hold across every server on one database: quota admission takes one per team,
/// so two servers cannot each see the same free room. A store only one server uses needs none
/// (the server's own lock suffices).
#[async_trait]
pub trait SharedLocks: Send + Sync {
    /// Waits for the lock named `key` and holds it until the returned guard is dropped.
    async fn lock(&self, key: &str) -> StoreResult<SharedLock>;
    /// Waits for a shared hold of the lock named `key` (any number of shared holds at once;
    /// none while [`SharedLocks::lock`] holds it), until the returned guard is dropped.
    async fn lock_shared(&self, key: &str) -> StoreResult<SharedLock>;
}

/// A held [`SharedLocks`] lock: released when dropped.
pub struct SharedLock(#[allow(dead_code)] Box<dyn Send + Sync>);

impl SharedLock {
    /// Wraps whatever releases the lock when it is dropped.
    pub fn new(guard: impl Send + Sync + 'static) -> SharedLock {
        SharedLock(Box::new(guard))
    }
}

impl std::fmt::Debug for SharedLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedLock")
    }
}

/// A consistent copy of the whole database, for backups.
#[async_trait]
pub trait SnapshotStore: Send + Sync {
    /// Writes a consistent copy of the whole database to `path`, a file that must not exist
    /// yet (SQLite: `VACUUM INTO`, one read transaction: writes go on meanwhile).
    async fn snapshot_into(&self, path: &std::path::Path) -> StoreResult<()>;

    /// Why Berth cannot copy this database itself and how to back it up instead (`None`: a
    /// [`snapshot_into`](Self::snapshot_into) copies it).
    fn snapshot_refusal(&self) -> Option<&'static str> {
        None
    }
}

/// Berth's desired state: every area. `Arc<dyn Store>` is what the server passes around;
/// code that needs one area takes that area's trait (e.g. `Arc<dyn AppStore>`), which an
/// `Arc<dyn Store>` coerces to. Implemented for every type that implements all nine areas and
/// [`SnapshotStore`].
pub trait Store:
    AppStore
    + AccountStore
    + RegistryStore
    + PipelineStore
    + CertificateStore
    + NodeStore
    + VolumeStore
    + SecretStore
    + LeaseStore
    + SnapshotStore
{
}

impl<
    T: AppStore
        + AccountStore
        + RegistryStore
        + PipelineStore
        + CertificateStore
        + NodeStore
        + VolumeStore
        + SecretStore
        + LeaseStore
        + SnapshotStore
        + ?Sized,
> Store for T
{
}

/// What one app reserves as the store keeps it: [`berth_core::quota::app_usage`] with each
/// resource clamped to `i64::MAX`, the largest a `BIGINT` column holds (quota limits never
/// exceed it either, so the clamp never changes an admission).
pub(crate) fn reserved_usage(replicas: u32, resources: &berth_core::Resources) -> Usage {
    let clamp = |value: u64| value.min(i64::MAX as u64);
    let usage = berth_core::quota::app_usage(replicas, resources);
    Usage {
        cpu_millis: clamp(usage.cpu_millis),
        memory_bytes: clamp(usage.memory_bytes),
        instances: clamp(usage.instances),
        registry_bytes: 0,
        volume_bytes: 0,
    }
}

/// The least string greater than every string that starts with `prefix`, when there is one
/// (`None` for an empty prefix or one made only of `char::MAX`): with it, the keys starting
/// with `prefix` are the range `prefix <= key < bound` in byte order, which is code point
/// order for UTF-8.
pub(crate) fn prefix_upper_bound(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = match last as u32 + 1 {
            0xD800 => Some('\u{E000}'),
            code => char::from_u32(code),
        };
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// Refuses a revision filed under another app than the one it is written with.
pub(crate) fn check_revision_app(app: &App, revision: &Revision) -> StoreResult<()> {
    if revision.app == app.name {
        Ok(())
    } else {
        Err(StoreError::Conflict(format!(
            "revision {} belongs to app {}, not to app {}",
            revision.number, revision.app, app.name
        )))
    }
}

/// The metrics history: series of samples kept per tier (`berth_core::metrics_history`). Not
/// part of [`Store`]: it lives in its own database so that metric writes never wait on, or
/// hold up, the control plane's writer.
#[async_trait]
pub trait MetricsStore: Send + Sync + 'static {
    /// Adds one round of samples to every tier (each sample to the bucket of each tier that
    /// holds its time), all or nothing.
    async fn record(&self, tiers: &Tiers, samples: &[Sample]) -> StoreResult<()>;

    /// Writes a consistent copy of the history to `path` (a file that must not exist yet) for a
    /// backup; `false` when this store keeps nothing on disk to copy.
    async fn snapshot_into(&self, _path: &std::path::Path) -> StoreResult<bool> {
        Ok(false)
    }

    /// The points of `tier` with buckets in `[from, to)` of every series `filter` matches,
    /// series in key order, points oldest first; series without such points are left out.
    async fn points(
        &self,
        filter: &SeriesFilter,
        tier: Tier,
        from: Millis,
        to: Millis,
    ) -> StoreResult<Vec<SeriesPoints>>;

    /// Drops the points each tier no longer keeps at `now`, the points of steps that are no
    /// tier's any more, and series left without points. Returns the points dropped.
    async fn prune(&self, tiers: &Tiers, now: Millis) -> StoreResult<u64>;
}

#[cfg(test)]
mod tests {
    use super::prefix_upper_bound;

    #[test]
    fn a_prefix_bounds_exactly_the_keys_that_start_with_it() {
        let table: &[(&str, Option<&str>)] = &[
            ("", None),
            ("repositories/", Some("repositories0")),
            ("a/b/_tags/", Some("a/b/_tags0")),
            ("z", Some("{")),
            ("é", Some("ê")),
            ("a\u{D7FF}", Some("a\u{E000}")),
            ("a\u{10FFFF}", Some("b")),
            ("\u{10FFFF}\u{10FFFF}", None),
        ];
        for &(prefix, bound) in table {
            assert_eq!(
                prefix_upper_bound(prefix).as_deref(),
                bound,
                "prefix {prefix:?}"
            );
            if let Some(bound) = bound {
                // Every key with the prefix sorts below the bound, byte-wise.
                for suffix in ["", "x", "\u{10FFFF}\u{10FFFF}", "/deep/key"] {
                    let key = format!("{prefix}{suffix}");
                    assert!(key.as_bytes() < bound.as_bytes(), "{key:?} < {bound:?}");
                    assert!(key.as_bytes() >= prefix.as_bytes());
                }
            }
        }
    }
}
