//! Berth's application layer: every operation on the platform, done once, for every door.
//!
//! The doors — the HTTP API, the git endpoint, webhooks, the build worker, deployment
//! templates and the autoscaler — turn what they receive into domain values and call
//! a function here with an explicit [`Actor`]. Each operation does the whole job: authorise,
//! validate, admit against the team's quota, write the revision and the app, record the
//! events, note the audit record, and wake the controller. Nothing here knows HTTP or JSON
//! wire types; the machinery (store, controller, registry, engine) is reached through its
//! traits.

pub mod actor;
pub mod apps;
pub mod autoscale;
pub mod backup;
pub mod builds;
pub mod certificates;
pub mod compose;
pub mod domains;
pub mod error;
pub mod idle;
pub mod images;
pub mod metrics_history;
pub mod nodes;
pub mod on_demand;
pub mod quota;
pub mod routes;
pub mod secrets;
pub mod tcp_ports;
pub mod traffic;
pub mod volumes;

use std::sync::Arc;

use berth_controller::Controller;
use berth_core::clock::Clock;
use berth_core::routes::DomainPolicy;
use berth_store::Store;

pub use actor::{Actor, AuditNote, AuditSlot};
pub use apps::{CurrentApp, NewApp};
pub use error::{OpError, OpResult};

/// The handle every door holds: the machinery the operations drive and their settings.
#[derive(Clone)]
pub struct Platform {
    pub store: Arc<dyn Store>,
    pub controller: Controller,
    pub clock: Clock,
    /// The host names (`host:port`) under which images of the built-in registry are pulled.
    pub registry_hosts: berth_core::image_ref::RegistryHosts,
    /// Revisions kept per app.
    pub revision_history: u32,
    /// Serialises quota checks with the writes they admit, per team.
    pub team_locks: quota::TeamLocks,
    /// Where apps' default hosts live and which base domains teams' domains may use.
    pub domains: DomainPolicy,
    /// The router's HTTP port, for apps' links (`None`: the router is off).
    pub http_port: Option<u16>,
    /// The router's counters and access log switch (`None`: the router is off).
    pub router: Option<berth_router::RouterStats>,
    /// Sealing certificate keys, and the ACME issuer when configured.
    pub certificates: certificates::CertificateSettings,
    /// Where published TCP ports listen and which host ports Berth chooses from.
    pub tcp: tcp_ports::TcpSettings,
    /// The autoscaler's memory: stabilisation windows and the latest evaluations.
    pub autoscaler: Arc<autoscale::AutoscaleBook>,
    /// Request rates per app over the last minute, from the router's counters.
    pub traffic_rates: Arc<traffic::TrafficRates>,
    /// The metrics history: its store and tiers.
    pub metrics: metrics_history::MetricsHistory,
    /// The nodes, as the node monitor sees them.
    pub nodes: std::sync::Arc<berth_controller::nodes::NodeMonitor>,
    /// Connections seen between apps' instances (`None`: not observed, by setting).
    pub connections: Option<Arc<berth_controller::flows::ConnectionObserver>>,
}

impl std::fmt::Debug for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Platform").finish_non_exhaustive()
    }
}

impl Platform {
    /// Every address of `app`, as users see it (see [`routes::app_addresses`]).
    pub fn addresses(&self, app: &berth_core::App) -> Vec<routes::AppAddress> {
        routes::app_addresses(app, &self.domains.apps_domain, self.http_port)
    }

    /// What the router counted for `app` since the server started (`None`: the router is off
    /// or has not routed a request to the app yet).
    pub fn traffic(&self, app: &berth_core::App) -> Option<berth_router::AppCounters> {
        self.router.as_ref()?.app_counters_of(&app.team, &app.name)
    }

    /// The current time from the platform's clock.
    pub fn now(&self) -> berth_core::Millis {
        (self.clock)()
    }
}
