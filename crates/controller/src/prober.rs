//! The health prober: Berth itself probes every running instance, over HTTP or by a TCP
//! connect.
//!
//! Probes go to the instance's address as the runtime lists it, through
//! [`berth_engine::probe::InstanceProbe`]: on Docker plain HTTP requests and TCP connects from
//! the host to the container's address on the Berth network ([`HostProbe`]), so images need no
//! curl; a fake runtime answers them itself. One task per (instance, readiness or liveness)
//! feeds outcomes into the instance's [`InstanceHealth`] state machine; a state change records
//! an event and wakes the app's reconcile.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use berth_core::health::{HealthChange, InstanceHealth};
use berth_core::{Event, EventKind, Millis, Probe, ProbeKind};
use berth_engine::probe::InstanceProbe;
use tokio::task::JoinHandle;

use crate::Shared;
use crate::endpoints::Endpoint;

/// What to probe for one instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeTarget {
    pub container_id: String,
    pub instance: String,
    pub app: String,
    pub address: String,
    pub port: u16,
    /// Ports reached at `address` under another number (see
    /// `berth_engine::ObservedContainer::published_ports`).
    pub published_ports: std::collections::BTreeMap<u16, u16>,
    /// The app revision the instance runs.
    pub revision: u32,
    pub started_at: Millis,
    pub readiness: Option<Probe>,
    pub liveness: Option<Probe>,
}

/// Which of an instance's two probes a task runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Readiness,
    Liveness,
}

struct Running {
    target: ProbeTarget,
    tasks: Vec<JoinHandle<()>>,
}

/// Probe tasks and the health they observed, keyed by container id.
#[derive(Default)]
pub struct Prober {
    health: Mutex<HashMap<String, InstanceHealth>>,
    running: Mutex<HashMap<String, Running>>,
}

impl Prober {
    /// The probe-derived health of a container, if it has been probed.
    pub fn health(&self, container_id: &str) -> Option<InstanceHealth> {
        lock(&self.health).get(container_id).cloned()
    }

    /// Makes the probe tasks of `app` match `targets`: starts new ones, stops vanished ones.
    pub(crate) fn sync(shared: &Arc<Shared>, app: &str, targets: Vec<ProbeTarget>) {
        let prober = &shared.prober;
        let mut running = lock(&prober.running);
        let wanted: HashMap<&str, &ProbeTarget> = targets
            .iter()
            .map(|t| (t.container_id.as_str(), t))
            .collect();
        let stale: Vec<String> = running
            .iter()
            .filter(|(id, r)| {
                r.target.app == app && wanted.get(id.as_str()).is_none_or(|t| **t != r.target)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in stale {
            if let Some(r) = running.remove(&id) {
                r.tasks.iter().for_each(JoinHandle::abort);
            }
            if !wanted.contains_key(id.as_str()) {
                lock(&prober.health).remove(&id);
            }
        }
        for target in targets {
            if running.contains_key(&target.container_id) {
                continue;
            }
            let mut tasks = Vec::new();
            if target.readiness.is_some() {
                tasks.push(tokio::spawn(probe_loop(
                    Arc::clone(shared),
                    target.clone(),
                    Role::Readiness,
                )));
            }
            if target.liveness.is_some() {
                tasks.push(tokio::spawn(probe_loop(
                    Arc::clone(shared),
                    target.clone(),
                    Role::Liveness,
                )));
            }
            running.insert(target.container_id.clone(), Running { target, tasks });
        }
    }

    /// Takes a container for ready (a predecessor server saw it so) until its probes say
    /// otherwise.
    pub(crate) fn seed_ready(&self, container_id: &str, now: Millis) {
        lock(&self.health).insert(
            container_id.to_string(),
            berth_core::health::InstanceHealth::handed_over_ready(now),
        );
    }

    /// Forgets everything about a container (it is gone).
    pub(crate) fn forget(&self, container_id: &str) {
        if let Some(r) = lock(&self.running).remove(container_id) {
            r.tasks.iter().for_each(JoinHandle::abort);
        }
        lock(&self.health).remove(container_id);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

async fn probe_loop(shared: Arc<Shared>, target: ProbeTarget, role: Role) {
    let probe = match role {
        Role::Readiness => target.readiness.clone(),
        Role::Liveness => target.liveness.clone(),
    };
    let Some(probe) = probe else { return };
    let served = probe.port.unwrap_or(target.port);
    let port = target
        .published_ports
        .get(&served)
        .copied()
        .unwrap_or(served);
    // Readiness waits out the initial delay; liveness starts probing at once and the state
    // machine decides when failures count.
    if role == Role::Readiness && probe.initial_delay_ms > 0 {
        let elapsed = ((shared.clock)() - target.started_at).max(0) as u64;
        if elapsed < probe.initial_delay_ms {
            tokio::time::sleep(Duration::from_millis(probe.initial_delay_ms - elapsed)).await;
        }
    }
    let mut interval = tokio::time::interval(Duration::from_millis(probe.period_ms));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let timeout = Duration::from_millis(probe.timeout_ms);
        let outcome = match probe.kind {
            ProbeKind::Http => {
                shared
                    .probe
                    .http(&target.address, port, &probe.path, timeout)
                    .await
            }
            ProbeKind::Tcp => shared.probe.tcp(&target.address, port, timeout).await,
        };
        if outcome.is_err() {
            let probe = match role {
                Role::Readiness => "readiness",
                Role::Liveness => "liveness",
            };
            shared.metrics.probe_failed(&target.app, probe);
        }
        let now = (shared.clock)();
        let change = {
            let mut health = lock(&shared.prober.health);
            let state = health.entry(target.container_id.clone()).or_default();
            match role {
                Role::Readiness => state.record_readiness(&probe, outcome, now),
                Role::Liveness => state.record_liveness(&probe, target.started_at, outcome, now),
            }
        };
        if let Some(change) = change {
            record_health(&shared, &target, now).await;
            report(&shared, &target, role, change, now).await;
        }
    }
}

/// Records the instance's health in the store at a change, so that every server shows it.
async fn record_health(shared: &Arc<Shared>, target: &ProbeTarget, now: Millis) {
    let Some(health) = shared.prober.health(&target.container_id) else {
        return;
    };
    let recorded = berth_core::health::RecordedHealth::from(&health);
    if let Err(error) = shared
        .store
        .put_instance_health(&target.app, &target.container_id, &recorded, now)
        .await
    {
        tracing::warn!(%error, instance = %target.instance, "cannot record the instance's health");
    }
}

async fn report(
    shared: &Arc<Shared>,
    target: &ProbeTarget,
    role: Role,
    change: HealthChange,
    now: Millis,
) {
    // `params` carry what the message says, for clients that say it in another language.
    let (event_kind, message, params) = match (&change, role) {
        (HealthChange::BecameReady, _) => (
            EventKind::InstanceReady,
            format!("instance {} is ready", target.instance),
            vec![],
        ),
        (HealthChange::BecameNotReady { reason, failures }, _) => (
            EventKind::InstanceNotReady,
            format!(
                "instance {} failed readiness {failures} times ({reason}) → taken out of service",
                target.instance
            ),
            vec![
                ("failures", failures.to_string()),
                ("reason", reason.clone()),
            ],
        ),
        (HealthChange::BecameUnhealthy { reason, failures }, _) => (
            EventKind::InstanceUnhealthy,
            format!(
                "instance {} failed liveness {failures} times ({reason}) → replacing it",
                target.instance
            ),
            vec![
                ("failures", failures.to_string()),
                ("reason", reason.clone()),
            ],
        ),
        (HealthChange::Recovered, _) => (
            EventKind::InstanceReady,
            format!("instance {} passes liveness again", target.instance),
            vec![("cause", "recovered".to_string())],
        ),
    };
    tracing::info!(app = %target.app, instance = %target.instance, "{message}");
    let event = params.into_iter().fold(
        Event::new(&target.app, now, event_kind, message).instance(&target.instance),
        |event, (key, value)| event.param(key, value),
    );
    // The endpoint table follows at once; the reconcile woken below confirms it.
    match &change {
        HealthChange::BecameReady
            if role == Role::Readiness
                && !lock(&shared.terminating).contains_key(&target.container_id) =>
        {
            shared.endpoints.add(
                &target.app,
                Endpoint {
                    container_id: target.container_id.clone(),
                    instance: target.instance.clone(),
                    address: target.address.clone(),
                    port: target.port,
                    revision: target.revision,
                },
            );
        }
        HealthChange::BecameNotReady { .. } | HealthChange::BecameUnhealthy { .. } => {
            shared.endpoints.remove(&target.app, &target.container_id);
        }
        _ => {}
    }
    shared.record_events(vec![event]).await;
    shared.queue.add(&target.app);
}

/// Probes from this host to the instance's address (on Docker, the container's address on its
/// bridge network): plain HTTP requests and TCP connects.
#[derive(Debug, Clone)]
pub struct HostProbe {
    client: reqwest::Client,
}

impl HostProbe {
    pub fn new() -> Self {
        let client = reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(0)
            .build()
            .expect("building an HTTP client without TLS cannot fail");
        HostProbe { client }
    }
}

impl Default for HostProbe {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl InstanceProbe for HostProbe {
    async fn http(
        &self,
        address: &str,
        port: u16,
        path: &str,
        timeout: Duration,
    ) -> Result<(), String> {
        http_probe(
            &self.client,
            &format!("http://{address}:{port}{path}"),
            timeout,
        )
        .await
    }

    async fn tcp(&self, address: &str, port: u16, timeout: Duration) -> Result<(), String> {
        tcp_probe(address, port, timeout).await
    }
}

/// One TCP probe: a connection accepted within the timeout passes; it is dropped at once.
pub async fn tcp_probe(address: &str, port: u16, timeout: Duration) -> Result<(), String> {
    let ip: std::net::IpAddr = address
        .parse()
        .map_err(|_| format!("not an IP address: {address}"))?;
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect((ip, port))).await {
        Ok(Ok(_stream)) => Ok(()),
        Ok(Err(error)) if error.kind() == std::io::ErrorKind::ConnectionRefused => {
            Err("connection refused".to_string())
        }
        Ok(Err(error)) => Err(format!("connect failed: {error}")),
        Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
    }
}

/// One HTTP probe: any 2xx or 3xx status within the timeout passes.
pub async fn http_probe(
    client: &reqwest::Client,
    url: &str,
    timeout: Duration,
) -> Result<(), String> {
    match client.get(url).timeout(timeout).send().await {
        Ok(response) => {
            let status = response.status();
            if status.is_success() || status.is_redirection() {
                Ok(())
            } else {
                Err(format!("HTTP {}", status.as_u16()))
            }
        }
        Err(error) if error.is_timeout() => {
            Err(format!("no answer within {} ms", timeout.as_millis()))
        }
        Err(error) if error.is_connect() => Err("connection refused".to_string()),
        Err(error) => Err(format!("request failed: {error}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tcp_probes_pass_while_something_listens() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let timeout = Duration::from_secs(2);
        assert_eq!(tcp_probe("127.0.0.1", port, timeout).await, Ok(()));
        drop(listener);
        assert_eq!(
            tcp_probe("127.0.0.1", port, timeout).await,
            Err("connection refused".to_string())
        );
        assert!(tcp_probe("not-an-ip", port, timeout).await.is_err());
    }
}
