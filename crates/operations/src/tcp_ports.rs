//! Which host ports an app's TCP ports may take: a host port is one app's, is not held by
//! another process on this machine, and is at least 1024 unless an admin asks; a port the user
//! leaves to Berth is the first free one of the configured range.
//!
//! The check and the write that claims a port run under one lock per server ([`TcpSettings`]),
//! so two writes of this server cannot take the same port.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::ops::RangeInclusive;
use std::sync::Arc;

use berth_core::routes::{AppRoutes, TcpPort};
use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::Platform;
use crate::actor::Actor;
use crate::apps::list_apps;
use crate::error::{OpError, OpResult};

/// The code of a 409 for a host port that is another app's or another process's.
pub const PORT_TAKEN: &str = "port_taken";

/// Host ports below this are refused for non-admins.
pub const LOWEST_USER_PORT: u16 = 1024;

/// Where published TCP ports listen, and the range Berth picks host ports from.
#[derive(Debug, Clone)]
pub struct TcpSettings {
    pub listen: IpAddr,
    pub range: RangeInclusive<u16>,
    claims: Arc<Mutex<()>>,
}

impl Default for TcpSettings {
    fn default() -> Self {
        TcpSettings::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 30000..=32767)
    }
}

impl TcpSettings {
    pub fn new(listen: IpAddr, range: RangeInclusive<u16>) -> TcpSettings {
        TcpSettings {
            listen,
            range,
            claims: Arc::default(),
        }
    }

    /// Whether another process holds `port` on the listen address (a bind that fails).
    fn held_elsewhere(&self, port: u16) -> bool {
        std::net::TcpListener::bind((self.listen, port)).is_err()
    }
}

impl Platform {
    /// Checks the TCP ports of `routes` for app `app` (whose ports were `before`) and gives
    /// Berth's choice to those that have no host port. The guard it returns (when the app has
    /// ports) is to be held until the write that claims them.
    pub(crate) async fn settle_tcp_ports(
        &self,
        actor: &Actor,
        app: &str,
        routes: &mut AppRoutes,
        before: &[TcpPort],
    ) -> OpResult<Option<OwnedMutexGuard<()>>> {
        if routes.tcp_ports.is_empty() {
            return Ok(None);
        }
        if routes.internal {
            return Err(OpError::field(
                "tcp_ports",
                "an internal app publishes no port: remove its TCP ports or make it external",
            ));
        }
        for port in &routes.tcp_ports {
            if port.host_port != 0 && port.host_port < LOWEST_USER_PORT && !actor.is_admin() {
                return Err(OpError::field(
                    "tcp_ports",
                    format!(
                        "host port {} is below {LOWEST_USER_PORT}: only platform admins may \
                         publish on those",
                        port.host_port
                    ),
                ));
            }
        }
        let settings = &self.tcp;
        let guard = Arc::clone(&settings.claims).lock_owned().await;
        let (listed, _) = list_apps(self.store.as_ref(), None, None, None).await?;
        let holders: BTreeMap<u16, (String, String)> = listed
            .into_iter()
            .filter(|l| l.app.name != app)
            .flat_map(|l| {
                l.app
                    .routes
                    .tcp_ports
                    .iter()
                    .map(|p| (p.host_port, (l.app.name.clone(), l.app.team.clone())))
                    .collect::<Vec<_>>()
            })
            .collect();
        let held_before = |port: u16| before.iter().any(|p| p.host_port == port);
        for port in &routes.tcp_ports {
            if port.host_port == 0 {
                continue;
            }
            if let Some((owner, team)) = holders.get(&port.host_port) {
                let whose = if actor.can_read(team) {
                    format!("app {owner} of team {team}")
                } else {
                    "an app of another team".to_string()
                };
                return Err(OpError::conflict(
                    PORT_TAKEN,
                    format!("tcp_ports: host port {} belongs to {whose}", port.host_port),
                ));
            }
            // A port the app already has is held by this server's own listener.
            if !held_before(port.host_port) && settings.held_elsewhere(port.host_port) {
                return Err(OpError::conflict(
                    PORT_TAKEN,
                    format!(
                        "tcp_ports: host port {} is in use by another process on this machine \
                         ({}); choose another or leave it to Berth",
                        port.host_port, settings.listen
                    ),
                ));
            }
        }
        let mut chosen: Vec<u16> = routes.tcp_ports.iter().map(|p| p.host_port).collect();
        for port in routes.tcp_ports.iter_mut().filter(|p| p.host_port == 0) {
            let free = settings.range.clone().find(|candidate| {
                !holders.contains_key(candidate)
                    && !chosen.contains(candidate)
                    && !settings.held_elsewhere(*candidate)
            });
            let Some(free) = free else {
                return Err(OpError::conflict(
                    PORT_TAKEN,
                    format!(
                        "tcp_ports: no free host port left in {}-{} for container port {}",
                        settings.range.start(),
                        settings.range.end(),
                        port.container_port
                    ),
                ));
            };
            port.host_port = free;
            chosen.push(free);
        }
        Ok(Some(guard))
    }
}
