//! Server settings: every one is a flag, a `BERTH_*` environment variable and a config-file key.
//!
//! Precedence: flag or environment variable (clap reads both) > config file > default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use serde::Deserialize;

use crate::units::{parse_cpu, parse_size};

/// `berth server` options. Each is optional here so the config file can fill the gaps.
#[derive(Debug, Clone, Default, Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerOptions {
    /// Address of the API, registry and web console [default: 127.0.0.1:7700]
    #[arg(long, env = "BERTH_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Directory for Berth's state: database, admin token [default: ./berth-data]
    #[arg(long, env = "BERTH_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Directory every server of one installation reaches (a shared file system), for several servers on one PostgreSQL store: the registry, hosted git, build logs and the key that seals secrets [default: the data directory]
    #[arg(long, env = "BERTH_SHARED_DIR")]
    pub shared_dir: Option<PathBuf>,
    /// Where Berth keeps its state: sqlite://PATH, sqlite::memory: or postgres://USER:PASSWORD@HOST:PORT/DATABASE [default: sqlite://<data-dir>/berth.db]
    #[arg(long, env = "BERTH_STORE")]
    pub store: Option<String>,
    /// Docker Engine to use (unix:///path or tcp://host:port) [default: DOCKER_HOST, else /var/run/docker.sock]
    #[arg(long, env = "BERTH_DOCKER_HOST")]
    pub docker_host: Option<String>,
    /// Where app instances run: docker (the engine --docker-host names) or swarm (the Docker Swarm whose manager --docker-host names) [default: docker]
    #[arg(long, env = "BERTH_ENGINE")]
    pub engine: Option<String>,
    /// With --engine swarm: the Docker Engines of other nodes than the manager, for exec and CPU/memory samples of the instances on them, as NODE=URL,NODE=URL (unix:///path or tcp://host:port; NODE as `berth nodes` names it) [default: none: only the manager's own instances]
    #[arg(long, env = "BERTH_NODE_ENGINES")]
    pub node_engines: Option<String>,
    /// Engine namespace: prefix of container names, label value and network name [default: berth]
    #[arg(long, env = "BERTH_NAMESPACE")]
    pub namespace: Option<String>,
    /// Reconcile every app at least this often, e.g. 30s [default: 30s]
    #[arg(long, env = "BERTH_RESYNC_INTERVAL")]
    pub resync_interval: Option<String>,
    /// Revisions kept per app [default: 10]
    #[arg(long, env = "BERTH_REVISION_HISTORY")]
    pub revision_history: Option<u32>,
    /// Events kept per app [default: 1000]
    #[arg(long, env = "BERTH_EVENT_HISTORY")]
    pub event_history: Option<u32>,
    /// First delay of the crash-loop backoff, e.g. 1s [default: 1s]
    #[arg(long, env = "BERTH_CRASH_BACKOFF")]
    pub crash_backoff: Option<String>,
    /// Longest crash-loop backoff delay [default: 2m]
    #[arg(long, env = "BERTH_CRASH_BACKOFF_MAX")]
    pub crash_backoff_max: Option<String>,
    /// How often the registry garbage-collects unreferenced blobs, e.g. 24h; 0 turns it off [default: 24h]
    #[arg(long, env = "BERTH_REGISTRY_GC_INTERVAL")]
    pub registry_gc_interval: Option<String>,
    /// Blobs and manifests younger than this survive garbage collection (pushes in flight) [default: 10m]
    #[arg(long, env = "BERTH_REGISTRY_GC_GRACE")]
    pub registry_gc_grace: Option<String>,
    /// How long a browser session lasts [default: 12h]
    #[arg(long, env = "BERTH_SESSION_TTL")]
    pub session_ttl: Option<String>,
    /// Mark session cookies Secure (HTTPS only) [default: true unless listening on loopback]
    #[arg(long, env = "BERTH_SECURE_COOKIES")]
    pub secure_cookies: Option<bool>,
    /// Builds run at once by this server; the rest wait in a queue [default: 1]
    #[arg(long, env = "BERTH_BUILD_CONCURRENCY")]
    pub build_concurrency: Option<usize>,
    /// A build running longer than this is stopped as timed out [default: 30m]
    #[arg(long, env = "BERTH_BUILD_TIMEOUT")]
    pub build_timeout: Option<String>,
    /// Builds kept per pipeline with their logs; older ended ones are deleted [default: 50]
    #[arg(long, env = "BERTH_BUILD_RETENTION")]
    pub build_retention: Option<u32>,
    /// CPU a build's test container may use, in cores or millicores (0 for no limit) [default: 1]
    #[arg(long, env = "BERTH_BUILD_TEST_CPU")]
    pub build_test_cpu: Option<String>,
    /// Memory a build's test container may use (0 for no limit) [default: 1Gi]
    #[arg(long, env = "BERTH_BUILD_TEST_MEMORY")]
    pub build_test_memory: Option<String>,
    /// How often every instance's CPU and memory use is sampled (0 turns it off) [default: 5s]
    #[arg(long, env = "BERTH_USAGE_INTERVAL")]
    pub usage_interval: Option<String>,
    /// How often each node's CPU, memory and disks are sampled; a node without a sample for three intervals is shown as unknown [default: 5s]
    #[arg(long, env = "BERTH_NODE_SAMPLE_INTERVAL")]
    pub node_sample_interval: Option<String>,
    /// How often the metrics history records a round of samples (instances, apps, teams, nodes, router traffic; 0 turns it off) [default: 5s]
    #[arg(long, env = "BERTH_METRICS_INTERVAL")]
    pub metrics_interval: Option<String>,
    /// How often the host's connection tracking table is read to find the connections between apps' instances (the topology's observed edges; 0 turns it off) [default: 5s]
    #[arg(long, env = "BERTH_CONNECTIONS_INTERVAL")]
    pub connections_interval: Option<String>,
    /// The metrics history's resolutions, finest first, as STEP:RETENTION pairs; each step a multiple of the one before [default: 5s:1h,1m:1d,10m:30d]
    #[arg(long, env = "BERTH_METRICS_TIERS")]
    pub metrics_tiers: Option<String>,
    /// A node whose CPU is busier than this share of all cores for --node-cpu-busy-for is low (red), e.g. 90% [default: 90%]
    #[arg(long, env = "BERTH_NODE_CPU_BUSY_MAX")]
    pub node_cpu_busy_max: Option<String>,
    /// How long the CPU must stay above --node-cpu-busy-max before the node is low [default: 1m]
    #[arg(long, env = "BERTH_NODE_CPU_BUSY_FOR")]
    pub node_cpu_busy_for: Option<String>,
    /// A node with less free memory than this share is low (red), e.g. 10% [default: 10%]
    #[arg(long, env = "BERTH_NODE_MEMORY_FREE_MIN")]
    pub node_memory_free_min: Option<String>,
    /// A node with less free space than this share on the engine's data root or Berth's data directory is low (red), e.g. 10% [default: 10%]
    #[arg(long, env = "BERTH_NODE_DISK_FREE_MIN")]
    pub node_disk_free_min: Option<String>,
    /// Where apps' HTTP traffic is served (the router), or `off` [default: 0.0.0.0:80, with a warning when it cannot be bound]
    #[arg(long, env = "BERTH_HTTP_LISTEN")]
    pub http_listen: Option<String>,
    /// Where apps' HTTPS traffic is served (the router, certificates chosen by SNI from those uploaded or ordered with `berth certs`), or `off` [default: off]
    #[arg(long, env = "BERTH_HTTPS_LISTEN")]
    pub https_listen: Option<String>,
    /// ACME directory certificates are ordered from (`berth certs request`; renewed by Berth), e.g. https://acme-v02.api.letsencrypt.org/directory [default: none: ACME off]
    #[arg(long, env = "BERTH_ACME_DIRECTORY")]
    pub acme_directory: Option<String>,
    /// Contact address of the ACME account (the CA writes about expiring certificates) [default: none]
    #[arg(long, env = "BERTH_ACME_EMAIL")]
    pub acme_email: Option<String>,
    /// PEM file of the root certificate(s) to trust for the ACME directory's own HTTPS instead of the system's (a private CA such as pebble) [default: the system's roots]
    #[arg(long, env = "BERTH_ACME_CA_FILE")]
    pub acme_ca_file: Option<PathBuf>,
    /// Renew an ACME certificate once less than this is left, e.g. 30d [default: a third of its lifetime]
    #[arg(long, env = "BERTH_ACME_RENEW_BEFORE")]
    pub acme_renew_before: Option<String>,
    /// Executable that publishes ACME DNS-01 TXT records (run as `HOOK present|cleanup RECORD VALUE`), needed for wildcard certificates [default: none]
    #[arg(long, env = "BERTH_ACME_DNS_HOOK")]
    pub acme_dns_hook: Option<PathBuf>,
    /// How often ACME certificates are checked for renewal, e.g. 1h [default: 1h]
    #[arg(long, env = "BERTH_ACME_RENEW_INTERVAL")]
    pub acme_renew_interval: Option<String>,
    /// Host patterns certificates may be ordered for at the handshake for the app that receives on-demand domains (`berth system on-demand-domains set`), comma-separated: shop.example.com or *.example.com (any name under it); with none, that app's ask path alone decides [default: none]
    #[arg(long, env = "BERTH_ON_DEMAND_ALLOW", value_delimiter = ',')]
    pub on_demand_allow: Option<Vec<String>>,
    /// How long a host refused an on-demand certificate stays refused before it is asked about again, e.g. 1h [default: 1h]
    #[arg(long, env = "BERTH_ON_DEMAND_DENIAL_TTL")]
    pub on_demand_denial_ttl: Option<String>,
    /// The most on-demand certificate orders per hour, whatever the hosts (a flood of new names cannot exhaust the CA's limits) [default: 10]
    #[arg(long, env = "BERTH_ON_DEMAND_MAX_ORDERS")]
    pub on_demand_max_orders: Option<u32>,
    /// Every app answers at <app>.<team>.<apps-domain> on the router [default: localhost]
    #[arg(long, env = "BERTH_APPS_DOMAIN")]
    pub apps_domain: Option<String>,
    /// Base domains teams' custom domains must be under (besides the apps domain), comma-separated; none means any domain [default: none]
    #[arg(long, env = "BERTH_ALLOWED_DOMAINS", value_delimiter = ',')]
    pub allowed_domains: Option<Vec<String>>,
    /// Where the router's access log (JSON lines) goes when it is on [default: <data-dir>/router-access.log]
    #[arg(long, env = "BERTH_ACCESS_LOG")]
    pub access_log: Option<PathBuf>,
    /// Write one router request in N to the access log from the start (0: off; admins turn it on and off at run time) [default: 0]
    #[arg(long, env = "BERTH_ACCESS_LOG_SAMPLE")]
    pub access_log_sample: Option<u32>,
    /// How long a stopping instance may finish the requests the router sent it [default: 30s]
    #[arg(long, env = "BERTH_DRAIN_TIMEOUT")]
    pub drain_timeout: Option<String>,
    /// The router's limit on how long an instance may take to answer a request [default: 60s]
    #[arg(long, env = "BERTH_ROUTER_TIMEOUT")]
    pub router_timeout: Option<String>,
    /// How long the router holds a request for an app that is bringing up its first ready instance before answering 503 [default: 30s]
    #[arg(long, env = "BERTH_ROUTER_HOLD_TIMEOUT")]
    pub router_hold_timeout: Option<String>,
    /// Threads that serve the router's connections, each with its own event loop and backend connections [default: the number of CPU cores]
    #[arg(long, env = "BERTH_ROUTER_THREADS")]
    pub router_threads: Option<usize>,
    /// Reverse proxies whose X-Forwarded-For names the client: IPs or CIDR blocks, comma-separated (e.g. 10.0.0.0/8,::1) [default: none]
    #[arg(long, env = "BERTH_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Option<Vec<String>>,
    /// The address apps' published TCP ports (`--tcp-port`) listen on [default: 0.0.0.0]
    #[arg(long, env = "BERTH_TCP_LISTEN_ADDRESS")]
    pub tcp_listen_address: Option<String>,
    /// The host ports Berth chooses from for a `--tcp-port` without one, as first-last [default: 30000-32767]
    #[arg(long, env = "BERTH_TCP_PORT_RANGE")]
    pub tcp_port_range: Option<String>,
    /// Log filter (tracing syntax), e.g. info or berth_controller=debug [default: info]
    #[arg(long, env = "BERTH_LOG")]
    pub log: Option<String>,
}

/// Where app instances run (`--engine`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineKind {
    /// One Docker Engine.
    Docker,
    /// A Docker Swarm, through one of its managers.
    Swarm,
}

impl EngineKind {
    fn parse(value: Option<&str>) -> Result<EngineKind, String> {
        match value.map(str::trim) {
            None | Some("docker") => Ok(EngineKind::Docker),
            Some("swarm") => Ok(EngineKind::Swarm),
            Some(other) => Err(format!("engine: {other:?} is not docker or swarm")),
        }
    }
}

/// `--node-engines`: `NODE=URL` pairs, separated by commas, only for a Swarm.
fn node_engines(value: Option<&str>, engine: EngineKind) -> Result<Vec<(String, String)>, String> {
    let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(Vec::new());
    };
    if engine != EngineKind::Swarm {
        return Err("node-engines: only with --engine swarm (one engine has one node)".into());
    }
    let mut pairs: Vec<(String, String)> = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let Some((node, url)) = entry.split_once('=').map(|(n, u)| (n.trim(), u.trim())) else {
            return Err(format!("node-engines: {entry:?} is not NODE=URL"));
        };
        if node.is_empty() || node.chars().any(char::is_whitespace) {
            return Err(format!("node-engines: {entry:?} names no node"));
        }
        if !(url.starts_with("unix:///") || url.starts_with("tcp://")) {
            return Err(format!(
                "node-engines: the engine of {node} ({url:?}) is not unix:///path or tcp://host:port"
            ));
        }
        if pairs.iter().any(|(seen, _)| seen == node) {
            return Err(format!("node-engines: node {node} is given twice"));
        }
        pairs.push((node.to_string(), url.to_string()));
    }
    Ok(pairs)
}

/// Settings after merging flags, environment, config file and defaults.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// Where the registry, hosted git, build logs and the sealing key live; `None`: the data
    /// directory.
    pub shared_dir: Option<PathBuf>,
    /// The store backend; `None`: SQLite in `<data-dir>/berth.db`.
    pub store: Option<berth_store::StoreUrl>,
    pub docker_host: Option<String>,
    /// Where app instances run.
    pub engine: EngineKind,
    /// Swarm nodes' own engines: (node name, engine URL).
    pub node_engines: Vec<(String, String)>,
    pub namespace: String,
    pub resync_interval: Duration,
    pub revision_history: u32,
    pub event_history: u32,
    pub crash_backoff: Duration,
    pub crash_backoff_max: Duration,
    /// `None`: scheduled garbage collection is off.
    pub registry_gc_interval: Option<Duration>,
    pub registry_gc_grace: Duration,
    pub session_ttl: Duration,
    pub secure_cookies: bool,
    pub build_concurrency: usize,
    pub build_timeout: Duration,
    pub build_retention: u32,
    pub build_test_cpu_millis: Option<u64>,
    pub build_test_memory_bytes: Option<u64>,
    pub usage_interval: Duration,
    /// How often nodes are sampled.
    pub node_sample_interval: Duration,
    /// When a node counts as low.
    pub node_thresholds: berth_core::node::Thresholds,
    /// How often the metrics history records (zero: never).
    pub metrics_interval: Duration,
    /// How often connections between apps are observed (zero: never).
    pub connections_interval: Duration,
    /// The metrics history's resolutions.
    pub metrics_tiers: berth_core::metrics_history::Tiers,
    /// Where the router listens; `None`: no router.
    pub http_listen: Option<SocketAddr>,
    /// Where the router's HTTPS listener listens; `None`: no HTTPS.
    pub https_listen: Option<SocketAddr>,
    /// Where certificates are ordered; `None`: ACME is off.
    pub acme: Option<AcmeConfig>,
    /// The approval rule of on-demand certificates (with ACME and HTTPS on).
    pub on_demand: berth_router::OnDemandSettings,
    pub apps_domain: String,
    /// Base domains custom domains must be under; empty: any.
    pub allowed_domains: Vec<String>,
    /// The router's access log file; `None`: `<data-dir>/router-access.log`.
    pub access_log: Option<PathBuf>,
    /// One request in this many is logged from the start; `None`: off.
    pub access_log_sample: Option<u32>,
    pub drain_timeout: Duration,
    pub router_timeout: Duration,
    pub router_hold_timeout: Duration,
    pub router_threads: usize,
    /// Proxies whose `X-Forwarded-For` is believed (none by default).
    pub trusted_proxies: berth_api::proxies::TrustedProxies,
    /// Where published TCP ports listen.
    pub tcp_listen_address: std::net::IpAddr,
    /// Host ports Berth chooses from.
    pub tcp_port_range: std::ops::RangeInclusive<u16>,
    pub log: String,
    /// Replace another installation's claim on the namespace (`--take-over-namespace`, a
    /// flag for one start only: never read from the config file).
    pub take_over_namespace: bool,
}

impl ServerOptions {
    /// Fills every unset option from `file`.
    fn or(self, file: ServerOptions) -> ServerOptions {
        ServerOptions {
            listen: self.listen.or(file.listen),
            data_dir: self.data_dir.or(file.data_dir),
            shared_dir: self.shared_dir.or(file.shared_dir),
            store: self.store.or(file.store),
            docker_host: self.docker_host.or(file.docker_host),
            engine: self.engine.or(file.engine),
            node_engines: self.node_engines.or(file.node_engines),
            namespace: self.namespace.or(file.namespace),
            resync_interval: self.resync_interval.or(file.resync_interval),
            revision_history: self.revision_history.or(file.revision_history),
            event_history: self.event_history.or(file.event_history),
            crash_backoff: self.crash_backoff.or(file.crash_backoff),
            crash_backoff_max: self.crash_backoff_max.or(file.crash_backoff_max),
            registry_gc_interval: self.registry_gc_interval.or(file.registry_gc_interval),
            registry_gc_grace: self.registry_gc_grace.or(file.registry_gc_grace),
            session_ttl: self.session_ttl.or(file.session_ttl),
            secure_cookies: self.secure_cookies.or(file.secure_cookies),
            build_concurrency: self.build_concurrency.or(file.build_concurrency),
            build_timeout: self.build_timeout.or(file.build_timeout),
            build_retention: self.build_retention.or(file.build_retention),
            build_test_cpu: self.build_test_cpu.or(file.build_test_cpu),
            build_test_memory: self.build_test_memory.or(file.build_test_memory),
            usage_interval: self.usage_interval.or(file.usage_interval),
            node_sample_interval: self.node_sample_interval.or(file.node_sample_interval),
            metrics_interval: self.metrics_interval.or(file.metrics_interval),
            metrics_tiers: self.metrics_tiers.or(file.metrics_tiers),
            connections_interval: self.connections_interval.or(file.connections_interval),
            node_cpu_busy_max: self.node_cpu_busy_max.or(file.node_cpu_busy_max),
            node_cpu_busy_for: self.node_cpu_busy_for.or(file.node_cpu_busy_for),
            node_memory_free_min: self.node_memory_free_min.or(file.node_memory_free_min),
            node_disk_free_min: self.node_disk_free_min.or(file.node_disk_free_min),
            http_listen: self.http_listen.or(file.http_listen),
            https_listen: self.https_listen.or(file.https_listen),
            acme_directory: self.acme_directory.or(file.acme_directory),
            acme_email: self.acme_email.or(file.acme_email),
            acme_ca_file: self.acme_ca_file.or(file.acme_ca_file),
            acme_renew_before: self.acme_renew_before.or(file.acme_renew_before),
            acme_dns_hook: self.acme_dns_hook.or(file.acme_dns_hook),
            acme_renew_interval: self.acme_renew_interval.or(file.acme_renew_interval),
            on_demand_allow: self.on_demand_allow.or(file.on_demand_allow),
            on_demand_denial_ttl: self.on_demand_denial_ttl.or(file.on_demand_denial_ttl),
            on_demand_max_orders: self.on_demand_max_orders.or(file.on_demand_max_orders),
            apps_domain: self.apps_domain.or(file.apps_domain),
            allowed_domains: self.allowed_domains.or(file.allowed_domains),
            access_log: self.access_log.or(file.access_log),
            access_log_sample: self.access_log_sample.or(file.access_log_sample),
            drain_timeout: self.drain_timeout.or(file.drain_timeout),
            router_timeout: self.router_timeout.or(file.router_timeout),
            router_hold_timeout: self.router_hold_timeout.or(file.router_hold_timeout),
            router_threads: self.router_threads.or(file.router_threads),
            trusted_proxies: self.trusted_proxies.or(file.trusted_proxies),
            tcp_listen_address: self.tcp_listen_address.or(file.tcp_listen_address),
            tcp_port_range: self.tcp_port_range.or(file.tcp_port_range),
            log: self.log.or(file.log),
        }
    }
}

/// A share such as `90%` or `12.5` (percent), between 0 and 100.
fn percent(key: &str, value: Option<String>, default: &str) -> Result<f64, String> {
    let text = value.unwrap_or_else(|| default.to_string());
    let number = text.trim().trim_end_matches('%').trim();
    match number.parse::<f64>() {
        Ok(p) if (0.0..=100.0).contains(&p) => Ok(p),
        _ => Err(format!(
            "{key}: '{text}' is not a share between 0% and 100% such as 10%"
        )),
    }
}

/// The node thresholds and sampling interval; a node is unknown after three silent intervals.
fn node_settings(o: &ServerOptions) -> Result<(Duration, berth_core::node::Thresholds), String> {
    let interval = duration("node-sample-interval", o.node_sample_interval.clone(), "5s")?;
    if interval.is_zero() {
        return Err("node-sample-interval: must be more than 0".into());
    }
    let busy_for = duration("node-cpu-busy-for", o.node_cpu_busy_for.clone(), "1m")?;
    let millis = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    Ok((
        interval,
        berth_core::node::Thresholds {
            cpu_busy_percent: percent("node-cpu-busy-max", o.node_cpu_busy_max.clone(), "90%")?,
            cpu_busy_for_ms: millis(busy_for),
            memory_free_min_percent: percent(
                "node-memory-free-min",
                o.node_memory_free_min.clone(),
                "10%",
            )?,
            disk_free_min_percent: percent(
                "node-disk-free-min",
                o.node_disk_free_min.clone(),
                "10%",
            )?,
            silent_after_ms: millis(interval).saturating_mul(3),
        },
    ))
}

fn duration(key: &str, value: Option<String>, default: &str) -> Result<Duration, String> {
    let text = value.unwrap_or_else(|| default.to_string());
    humantime::parse_duration(&text)
        .map_err(|e| format!("{key}: '{text}' is not a duration such as 500ms, 30s or 2m ({e})"))
}

/// A resource limit setting: `None` for `0` (no limit).
fn limit(
    key: &str,
    value: Option<String>,
    default: &str,
    parse: fn(&str) -> Result<u64, String>,
) -> Result<Option<u64>, String> {
    let text = value.unwrap_or_else(|| default.to_string());
    let parsed = parse(&text).map_err(|e| format!("{key}: {e}"))?;
    Ok(Some(parsed).filter(|v| *v > 0))
}

/// The router's address: `off` (or empty) for none.
fn http_listen(value: Option<&str>) -> Result<Option<SocketAddr>, String> {
    match value.map(str::trim) {
        None => Ok(Some(SocketAddr::from(([0, 0, 0, 0], 80)))),
        Some("" | "off") => Ok(None),
        Some(text) => text.parse().map(Some).map_err(|_| {
            format!("http-listen: {text:?} is not an address like 0.0.0.0:80 (or off)")
        }),
    }
}

/// The host ports Berth chooses from: `first-last`, 1024 or above, first <= last.
fn tcp_port_range(value: &str) -> Result<std::ops::RangeInclusive<u16>, String> {
    let bad = || format!("tcp-port-range: {value:?} is not a range of ports like 30000-32767");
    let (first, last) = value.trim().split_once('-').ok_or_else(bad)?;
    let first: u16 = first.trim().parse().map_err(|_| bad())?;
    let last: u16 = last.trim().parse().map_err(|_| bad())?;
    if first < 1024 || first > last {
        return Err(format!(
            "tcp-port-range: {value:?} must start at 1024 or above and not end before it starts"
        ));
    }
    Ok(first..=last)
}

/// Base domains for custom domains: host names of at least two labels.
/// The on-demand settings: valid allow-list patterns, a denial time, at least one order an
/// hour.
fn on_demand(
    allow: Vec<String>,
    denial_ttl: Option<String>,
    max_orders: Option<u32>,
) -> Result<berth_router::OnDemandSettings, String> {
    let allow = allow
        .iter()
        .map(|pattern| pattern.trim())
        .filter(|pattern| !pattern.is_empty())
        .map(|pattern| {
            berth_router::on_demand::normalize_pattern(pattern).ok_or_else(|| {
                format!(
                    "on-demand-allow: {pattern:?} is not a host name like shop.example.com or a \
                     pattern like *.example.com"
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let max_orders = max_orders.unwrap_or(10);
    if max_orders == 0 {
        return Err("on-demand-max-orders: must be at least 1".into());
    }
    Ok(berth_router::OnDemandSettings {
        allow,
        denial_ttl: duration("on-demand-denial-ttl", denial_ttl, "1h")?,
        max_orders,
        order_window: Duration::from_secs(3600),
        ..berth_router::OnDemandSettings::default()
    })
}

fn allowed_domains(values: Vec<String>) -> Result<Vec<String>, String> {
    values
        .iter()
        .map(|value| value.trim().trim_matches('.').to_ascii_lowercase())
        .filter(|domain| !domain.is_empty())
        .map(|domain| {
            if berth_core::routes::is_host_name(&domain) && domain.contains('.') {
                Ok(domain)
            } else {
                Err(format!(
                    "allowed-domains: {domain:?} is not a domain name like example.com"
                ))
            }
        })
        .collect()
}

/// Where and as whom certificates are ordered over ACME.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcmeConfig {
    /// An `https://` URL.
    pub directory_url: String,
    pub email: Option<String>,
    /// The PEM roots trusted for the directory's HTTPS (read from `--acme-ca-file`).
    pub ca_pem: Option<String>,
    /// Renew once less than this is left; `None`: a third of the lifetime.
    pub renew_before: Option<Duration>,
    /// How often certificates are checked for renewal.
    pub renew_interval: Duration,
    /// Publishes DNS-01 answers (`--acme-dns-hook`); `None`: no wildcard certificates.
    pub dns_hook: Option<berth_certs::DnsHook>,
}

/// How long one run of the DNS hook may take (DNS providers' APIs can be slow to publish).
const DNS_HOOK_TIMEOUT: Duration = Duration::from_secs(180);

/// The ACME settings: none without a directory; any other ACME setting without one is a
/// mistake.
fn acme(o: &ServerOptions) -> Result<Option<AcmeConfig>, String> {
    let directory = o
        .acme_directory
        .as_ref()
        .map(|d| d.trim().to_string())
        .filter(|d| !d.is_empty());
    let Some(directory_url) = directory else {
        let given = [
            ("acme-email", o.acme_email.is_some()),
            ("acme-ca-file", o.acme_ca_file.is_some()),
            ("acme-renew-before", o.acme_renew_before.is_some()),
            ("acme-renew-interval", o.acme_renew_interval.is_some()),
            ("acme-dns-hook", o.acme_dns_hook.is_some()),
        ];
        let given: Vec<&str> = given.iter().filter(|(_, g)| *g).map(|(k, _)| *k).collect();
        if !given.is_empty() {
            return Err(format!(
                "{}: need --acme-directory (the ACME server's URL)",
                given.join(", ")
            ));
        }
        return Ok(None);
    };
    let (email, ca_file) = (o.acme_email.clone(), o.acme_ca_file.clone());
    let host = directory_url.strip_prefix("https://").unwrap_or_default();
    if host.is_empty() || host.starts_with('/') || directory_url.chars().any(char::is_whitespace) {
        return Err(format!(
            "acme-directory: {directory_url:?} is not an https:// URL like \
             https://acme-v02.api.letsencrypt.org/directory"
        ));
    }
    let email = email.map(|e| e.trim().to_string());
    if let Some(email) = &email {
        let valid = email.split_once('@').is_some_and(|(user, domain)| {
            !user.is_empty() && domain.contains('.') && !domain.contains('@')
        }) && !email.chars().any(|c| c.is_whitespace() || c.is_control());
        if !valid {
            return Err(format!("acme-email: {email:?} is not an email address"));
        }
    }
    let ca_pem = match ca_file {
        None => None,
        Some(path) => {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("acme-ca-file: cannot read {}: {e}", path.display()))?;
            if !text.contains("-----BEGIN CERTIFICATE-----") {
                return Err(format!(
                    "acme-ca-file: {} holds no PEM certificate",
                    path.display()
                ));
            }
            Some(text)
        }
    };
    let renew_before = o
        .acme_renew_before
        .clone()
        .map(|text| duration("acme-renew-before", Some(text), ""))
        .transpose()?;
    let renew_interval = duration("acme-renew-interval", o.acme_renew_interval.clone(), "1h")?;
    if renew_interval < Duration::from_secs(1) {
        return Err("acme-renew-interval: must be at least 1s".into());
    }
    let dns_hook = o
        .acme_dns_hook
        .as_ref()
        .map(|path| berth_certs::DnsHook::new(path, DNS_HOOK_TIMEOUT))
        .transpose()
        .map_err(|e| format!("acme-dns-hook: {e}"))?;
    Ok(Some(AcmeConfig {
        directory_url,
        email,
        ca_pem,
        renew_before,
        renew_interval,
        dns_hook,
    }))
}

/// The router's HTTPS address: `off` (the default, or empty) for none.
fn https_listen(value: Option<&str>) -> Result<Option<SocketAddr>, String> {
    match value.map(str::trim) {
        None | Some("" | "off") => Ok(None),
        Some(text) => text.parse().map(Some).map_err(|_| {
            format!("https-listen: {text:?} is not an address like 0.0.0.0:443 (or off)")
        }),
    }
}

/// The base domain of apps' default host names: DNS labels of lowercase letters, digits
/// and '-', not starting or ending with '-'.
fn apps_domain(value: Option<&str>) -> Result<String, String> {
    let domain = value
        .unwrap_or("localhost")
        .trim()
        .trim_matches('.')
        .to_ascii_lowercase();
    let label_ok = |label: &str| {
        (1..=63).contains(&label.len())
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    if domain.is_empty() || domain.len() > 200 || !domain.split('.').all(label_ok) {
        return Err(format!(
            "apps-domain: {domain:?} is not a domain name like apps.example.com"
        ));
    }
    Ok(domain)
}

/// Merges the options with the config file (if any) and the defaults, and checks them.
pub fn resolve(options: ServerOptions, config_file: Option<&Path>) -> Result<ServerConfig, String> {
    let file = match config_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("config file {}: {e}", path.display()))?;
            toml::from_str::<ServerOptions>(&text)
                .map_err(|e| format!("config file {}: {e}", path.display()))?
        }
        None => ServerOptions::default(),
    };
    let o = options.or(file);
    let acme = acme(&o)?;
    let (node_sample_interval, node_thresholds) = node_settings(&o)?;
    let namespace = o.namespace.unwrap_or_else(|| "berth".into());
    if let Some(problem) = berth_core::validate::name_problem(&namespace) {
        return Err(format!("namespace: {problem}"));
    }
    let revision_history = o.revision_history.unwrap_or(10);
    if revision_history < 2 {
        return Err(
            "revision-history: must be at least 2 (the current and one to roll back to)".into(),
        );
    }
    let build_concurrency = o.build_concurrency.unwrap_or(1);
    if build_concurrency == 0 {
        return Err("build-concurrency: must be at least 1".into());
    }
    let router_threads = match o.router_threads {
        Some(0) => return Err("router-threads: must be at least 1".into()),
        Some(threads) => threads,
        None => std::thread::available_parallelism().map_or(1, usize::from),
    };
    let build_retention = o.build_retention.unwrap_or(50);
    if build_retention == 0 {
        return Err("build-retention: must be at least 1 (the newest build is always kept)".into());
    }
    let listen = o
        .listen
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 7700)));
    Ok(ServerConfig {
        listen,
        data_dir: o.data_dir.unwrap_or_else(|| PathBuf::from("berth-data")),
        shared_dir: o.shared_dir,
        store: o
            .store
            .as_deref()
            .map(berth_store::StoreUrl::parse)
            .transpose()
            .map_err(|e| e.to_string())?,
        docker_host: o.docker_host,
        engine: EngineKind::parse(o.engine.as_deref())?,
        node_engines: node_engines(
            o.node_engines.as_deref(),
            EngineKind::parse(o.engine.as_deref())?,
        )?,
        namespace,
        resync_interval: duration("resync-interval", o.resync_interval, "30s")?,
        revision_history,
        event_history: o.event_history.unwrap_or(1_000).max(10),
        crash_backoff: duration("crash-backoff", o.crash_backoff, "1s")?,
        crash_backoff_max: duration("crash-backoff-max", o.crash_backoff_max, "2m")?,
        registry_gc_interval: Some(duration(
            "registry-gc-interval",
            o.registry_gc_interval,
            "24h",
        )?)
        .filter(|d| !d.is_zero()),
        registry_gc_grace: duration("registry-gc-grace", o.registry_gc_grace, "10m")?,
        session_ttl: duration("session-ttl", o.session_ttl, "12h")?,
        secure_cookies: o.secure_cookies.unwrap_or(!listen.ip().is_loopback()),
        build_concurrency,
        build_timeout: duration("build-timeout", o.build_timeout, "30m")?,
        build_retention,
        build_test_cpu_millis: limit("build-test-cpu", o.build_test_cpu, "1", parse_cpu)?,
        build_test_memory_bytes: limit(
            "build-test-memory",
            o.build_test_memory,
            "1Gi",
            parse_size,
        )?,
        usage_interval: duration("usage-interval", o.usage_interval, "5s")?,
        node_sample_interval,
        node_thresholds,
        metrics_interval: duration("metrics-interval", o.metrics_interval, "5s")?,
        connections_interval: duration("connections-interval", o.connections_interval, "5s")?,
        metrics_tiers: berth_core::metrics_history::Tiers::parse(
            o.metrics_tiers
                .as_deref()
                .unwrap_or(berth_core::metrics_history::DEFAULT_TIERS),
        )
        .map_err(|e| format!("metrics-tiers: {e}"))?,
        http_listen: http_listen(o.http_listen.as_deref())?,
        https_listen: https_listen(o.https_listen.as_deref())?,
        acme,
        on_demand: on_demand(
            o.on_demand_allow.unwrap_or_default(),
            o.on_demand_denial_ttl,
            o.on_demand_max_orders,
        )?,
        apps_domain: apps_domain(o.apps_domain.as_deref())?,
        allowed_domains: allowed_domains(o.allowed_domains.unwrap_or_default())?,
        access_log: o.access_log,
        access_log_sample: o.access_log_sample.filter(|n| *n > 0),
        drain_timeout: duration("drain-timeout", o.drain_timeout, "30s")?,
        router_timeout: duration("router-timeout", o.router_timeout, "60s")?,
        router_hold_timeout: duration("router-hold-timeout", o.router_hold_timeout, "30s")?,
        router_threads,
        trusted_proxies: berth_api::proxies::TrustedProxies::parse(
            o.trusted_proxies.as_deref().unwrap_or_default(),
        )
        .map_err(|e| format!("trusted-proxies: {e}"))?,
        tcp_listen_address: o
            .tcp_listen_address
            .as_deref()
            .unwrap_or("0.0.0.0")
            .trim()
            .parse()
            .map_err(|_| "tcp-listen-address: not an IP address like 0.0.0.0 or 127.0.0.1")?,
        tcp_port_range: tcp_port_range(o.tcp_port_range.as_deref().unwrap_or("30000-32767"))?,
        log: o.log.unwrap_or_else(|| "info".into()),
        take_over_namespace: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_port_ranges_parse_or_are_refused() {
        // (input, want)
        let cases = [
            ("30000-32767", Some(30000..=32767)),
            (" 2000 - 2000 ", Some(2000..=2000)),
            ("80-90", None),
            ("0-10", None),
            ("5000-4000", None),
            ("5000", None),
            ("a-b", None),
            ("1000-70000", None),
        ];
        for (input, want) in cases {
            assert_eq!(tcp_port_range(input).ok(), want, "{input}");
        }
    }

    #[test]
    fn node_engines_are_node_url_pairs_for_a_swarm_only() {
        use EngineKind::{Docker, Swarm};
        let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
            list.iter()
                .map(|(n, u)| (n.to_string(), u.to_string()))
                .collect()
        };
        // (value, engine, want: the pairs, or the start of the error)
        let cases: [(
            Option<&str>,
            EngineKind,
            Result<Vec<(String, String)>, &str>,
        ); 9] = [
            (None, Docker, Ok(vec![])),
            (Some("  "), Swarm, Ok(vec![])),
            (
                Some("rig-node-2=unix:///run/n2/docker.sock, rig-node-3 = tcp://10.0.0.3:2375,"),
                Swarm,
                Ok(pairs(&[
                    ("rig-node-2", "unix:///run/n2/docker.sock"),
                    ("rig-node-3", "tcp://10.0.0.3:2375"),
                ])),
            ),
            (
                Some("n2=unix:///s"),
                Docker,
                Err("node-engines: only with --engine swarm"),
            ),
            (
                Some("n2"),
                Swarm,
                Err("node-engines: \"n2\" is not NODE=URL"),
            ),
            (
                Some("=unix:///s"),
                Swarm,
                Err("node-engines: \"=unix:///s\" names no node"),
            ),
            (
                Some("my node=unix:///s"),
                Swarm,
                Err("node-engines: \"my node=unix:///s\" names no node"),
            ),
            (
                Some("n2=http://10.0.0.2"),
                Swarm,
                Err("node-engines: the engine of n2"),
            ),
            (
                Some("n2=unix:///a,n2=unix:///b"),
                Swarm,
                Err("node-engines: node n2 is given twice"),
            ),
        ];
        for (value, engine, want) in cases {
            match (node_engines(value, engine), want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{value:?}"),
                (Err(error), Err(start)) => assert!(error.starts_with(start), "{value:?}: {error}"),
                (got, want) => panic!("{value:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn node_thresholds_read_as_shares() {
        let config = resolve(ServerOptions::default(), None).unwrap();
        assert_eq!(
            config.node_thresholds,
            berth_core::node::Thresholds::default()
        );
        assert_eq!(config.node_sample_interval, Duration::from_secs(5));
        let flags = ServerOptions {
            node_sample_interval: Some("1s".into()),
            node_disk_free_min: Some("99.5%".into()),
            node_memory_free_min: Some(" 20 ".into()),
            node_cpu_busy_for: Some("30s".into()),
            ..ServerOptions::default()
        };
        let config = resolve(flags, None).unwrap();
        assert_eq!(config.node_thresholds.disk_free_min_percent, 99.5);
        assert_eq!(config.node_thresholds.memory_free_min_percent, 20.0);
        assert_eq!(config.node_thresholds.cpu_busy_for_ms, 30_000);
        assert_eq!(config.node_thresholds.silent_after_ms, 3_000);
        for (flags, key) in [
            (
                ServerOptions {
                    node_disk_free_min: Some("150%".into()),
                    ..ServerOptions::default()
                },
                "node-disk-free-min:",
            ),
            (
                ServerOptions {
                    node_cpu_busy_max: Some("lots".into()),
                    ..ServerOptions::default()
                },
                "node-cpu-busy-max:",
            ),
            (
                ServerOptions {
                    node_sample_interval: Some("0s".into()),
                    ..ServerOptions::default()
                },
                "node-sample-interval:",
            ),
            (
                ServerOptions {
                    metrics_tiers: Some("5s:1h,7s:1d".into()),
                    ..ServerOptions::default()
                },
                "metrics-tiers: tier 7s: the step must be a larger multiple of 5s",
            ),
        ] {
            let error = resolve(flags, None).unwrap_err();
            assert!(error.starts_with(key), "{error}");
        }
    }

    #[test]
    fn flags_beat_file_beats_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("berth.toml");
        std::fs::write(
            &path,
            "namespace = \"fromfile\"\nrevision_history = 5\nresync_interval = \"10s\"\n",
        )
        .unwrap();
        let flags = ServerOptions {
            namespace: Some("fromflag".into()),
            ..ServerOptions::default()
        };
        let config = resolve(flags, Some(&path)).unwrap();
        assert_eq!(config.namespace, "fromflag");
        assert_eq!(config.revision_history, 5);
        assert_eq!(config.resync_interval, Duration::from_secs(10));
        assert_eq!(config.listen.to_string(), "127.0.0.1:7700");
        assert_eq!(config.data_dir, PathBuf::from("berth-data"));
    }

    #[test]
    fn the_router_settings_read_as_meant() {
        // (http_listen, apps_domain, want listen, want domain)
        let cases = [
            (None, None, Some("0.0.0.0:80"), "localhost"),
            (
                Some("off"),
                Some("Apps.Example.com."),
                None,
                "apps.example.com",
            ),
            (Some(""), Some("x"), None, "x"),
            (
                Some("127.0.0.1:8080"),
                None,
                Some("127.0.0.1:8080"),
                "localhost",
            ),
            (Some("[::1]:80"), Some("a-b.c"), Some("[::1]:80"), "a-b.c"),
        ];
        for (listen, domain, want_listen, want_domain) in cases {
            let flags = ServerOptions {
                http_listen: listen.map(String::from),
                apps_domain: domain.map(String::from),
                ..ServerOptions::default()
            };
            let config = resolve(flags, None).unwrap();
            assert_eq!(
                config.http_listen.map(|a| a.to_string()).as_deref(),
                want_listen,
                "{listen:?}"
            );
            assert_eq!(config.apps_domain, want_domain, "{domain:?}");
        }
    }

    #[test]
    fn on_demand_settings_refuse_bad_patterns_and_no_orders() {
        let ok = on_demand(
            vec!["*.Customer.test".into(), " shop.example.com ".into()],
            None,
            None,
        )
        .unwrap();
        assert_eq!(ok.allow, ["*.customer.test", "shop.example.com"]);
        assert_eq!(ok.max_orders, 10);
        assert_eq!(ok.denial_ttl, Duration::from_secs(3600));
        for bad in ["*.com", "a b.test", "*", "shop.test:443"] {
            let error = on_demand(vec![bad.into()], None, None).unwrap_err();
            assert!(error.starts_with("on-demand-allow:"), "{error}");
        }
        let error = on_demand(vec![], None, Some(0)).unwrap_err();
        assert!(error.starts_with("on-demand-max-orders:"), "{error}");
        let error = on_demand(vec![], Some("soon".into()), None).unwrap_err();
        assert!(error.starts_with("on-demand-denial-ttl:"), "{error}");
    }

    #[test]
    fn acme_settings_need_an_https_directory_and_a_real_email() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(
            &ca,
            "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let not_pem = dir.path().join("not.pem");
        std::fs::write(&not_pem, "hello").unwrap();
        let missing = dir.path().join("missing.pem");
        let url = "https://acme.example.com/dir";
        // (directory, email, ca file, ok?)
        let cases: Vec<(Option<&str>, Option<&str>, Option<&PathBuf>, bool)> = vec![
            (None, None, None, true),
            (Some(""), None, None, true),
            (None, Some("ops@example.com"), None, false),
            (None, None, Some(&ca), false),
            (Some(url), None, None, true),
            (Some(url), Some("ops@example.com"), Some(&ca), true),
            (Some("http://acme.example.com/dir"), None, None, false),
            (Some("https://"), None, None, false),
            (Some("https:///dir"), None, None, false),
            (Some("https://acme example.com/dir"), None, None, false),
            (Some("acme.example.com"), None, None, false),
            (Some(url), Some("ops"), None, false),
            (Some(url), Some("@example.com"), None, false),
            (Some(url), Some("ops@localhost"), None, false),
            (Some(url), Some("ops@a@b.com"), None, false),
            (Some(url), Some("ops@exa mple.com"), None, false),
            (Some(url), Some("ops@example.com\r\nX: y"), None, false),
            (Some(url), None, Some(&not_pem), false),
            (Some(url), None, Some(&missing), false),
        ];
        for (directory, email, ca_file, ok) in cases {
            let flags = ServerOptions {
                acme_directory: directory.map(String::from),
                acme_email: email.map(String::from),
                acme_ca_file: ca_file.cloned(),
                ..ServerOptions::default()
            };
            let result = resolve(flags, None);
            assert_eq!(result.is_ok(), ok, "{directory:?} {email:?} {ca_file:?}");
            if let Err(error) = result {
                assert!(error.starts_with("acme-"), "{error}");
            }
        }
        let flags = ServerOptions {
            acme_directory: Some(url.into()),
            acme_ca_file: Some(ca),
            ..ServerOptions::default()
        };
        let acme = resolve(flags, None).unwrap().acme.unwrap();
        assert_eq!(acme.directory_url, url);
        assert!(acme.ca_pem.unwrap().contains("BEGIN CERTIFICATE"));
        assert_eq!(
            acme.renew_before, None,
            "a third of the lifetime by default"
        );
        assert_eq!(acme.renew_interval, Duration::from_secs(3600));
        assert_eq!(acme.dns_hook, None);

        // The DNS hook: an executable file, checked at start.
        use std::os::unix::fs::PermissionsExt;
        let hook = dir.path().join("hook");
        std::fs::write(&hook, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
        let plain = dir.path().join("plain-hook");
        std::fs::write(&plain, "#!/bin/sh\n").unwrap();
        // (directory, hook, the error's start)
        let cases: [(Option<&str>, &PathBuf, Option<&str>); 5] = [
            (Some(url), &hook, None),
            (None, &hook, Some("acme-dns-hook: need --acme-directory")),
            (Some(url), &plain, Some("acme-dns-hook: ")),
            (Some(url), &missing, Some("acme-dns-hook: cannot use")),
            (
                Some(url),
                &dir.path().to_path_buf(),
                Some("acme-dns-hook: "),
            ),
        ];
        for (directory, path, want) in cases {
            let flags = ServerOptions {
                acme_directory: directory.map(String::from),
                acme_dns_hook: Some(path.clone()),
                ..ServerOptions::default()
            };
            match (resolve(flags, None), want) {
                (Ok(config), None) => assert_eq!(
                    config.acme.unwrap().dns_hook.unwrap().path(),
                    path.as_path()
                ),
                (Err(error), Some(start)) => {
                    assert!(error.starts_with(start), "{error}");
                    assert!(
                        error.contains("executable") || !path.is_file() || directory.is_none(),
                        "{error}"
                    );
                }
                (got, want) => panic!("{path:?}: {got:?}, want {want:?}"),
            }
        }

        // (directory, renew before, renew interval, the error's start or the settings)
        let cases: &[(
            Option<&str>,
            Option<&str>,
            Option<&str>,
            Result<(u64, u64), &str>,
        )] = &[
            (Some(url), Some("30d"), None, Ok((30 * 86_400, 3600))),
            (Some(url), Some("2h"), Some("2s"), Ok((7200, 2))),
            (Some(url), Some("0s"), None, Ok((0, 3600))),
            (
                None,
                Some("30d"),
                None,
                Err("acme-renew-before: need --acme-directory"),
            ),
            (
                None,
                None,
                Some("1h"),
                Err("acme-renew-interval: need --acme-directory"),
            ),
            (
                Some(url),
                Some("soon"),
                None,
                Err("acme-renew-before: 'soon'"),
            ),
            (
                Some(url),
                None,
                Some("0s"),
                Err("acme-renew-interval: must be"),
            ),
            (
                Some(url),
                None,
                Some("often"),
                Err("acme-renew-interval: 'often'"),
            ),
        ];
        for (directory, before, interval, want) in cases {
            let flags = ServerOptions {
                acme_directory: directory.map(String::from),
                acme_renew_before: before.map(String::from),
                acme_renew_interval: interval.map(String::from),
                ..ServerOptions::default()
            };
            match (resolve(flags, None), want) {
                (Ok(config), Ok((before, interval))) => {
                    let acme = config.acme.unwrap();
                    assert_eq!(acme.renew_before, Some(Duration::from_secs(*before)));
                    assert_eq!(acme.renew_interval, Duration::from_secs(*interval));
                }
                (Err(error), Err(start)) => assert!(error.starts_with(start), "{error}"),
                (got, want) => panic!("{before:?} {interval:?}: {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn the_https_listener_is_off_unless_given_an_address() {
        let cases: &[(Option<&str>, Option<&str>)] = &[
            (None, None),
            (Some("off"), None),
            (Some(""), None),
            (Some(" off "), None),
            (Some("0.0.0.0:443"), Some("0.0.0.0:443")),
            (Some("127.0.0.1:8443"), Some("127.0.0.1:8443")),
            (Some("[::]:443"), Some("[::]:443")),
        ];
        for (value, want) in cases {
            let flags = ServerOptions {
                https_listen: value.map(String::from),
                ..ServerOptions::default()
            };
            let config = resolve(flags, None).unwrap();
            assert_eq!(
                config.https_listen.map(|a| a.to_string()).as_deref(),
                *want,
                "{value:?}"
            );
        }
        for bad in ["443", "localhost:443", "0.0.0.0:99999", "on"] {
            let flags = ServerOptions {
                https_listen: Some(bad.to_string()),
                ..ServerOptions::default()
            };
            let error = resolve(flags, None).unwrap_err();
            assert!(error.starts_with("https-listen:"), "{bad}: {error}");
        }
    }

    #[test]
    fn bad_settings_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("berth.toml");
        let cases = [
            ("namespace = \"Bad_NS\"", "namespace:"),
            ("engine = \"kubernetes\"", "engine:"),
            ("resync_interval = \"soon\"", "resync-interval:"),
            ("revision_history = 1", "revision-history:"),
            ("build_concurrency = 0", "build-concurrency:"),
            ("router_threads = 0", "router-threads:"),
            ("build_timeout = \"forever\"", "build-timeout:"),
            ("build_retention = 0", "build-retention:"),
            ("build_test_memory = \"lots\"", "build-test-memory:"),
            ("build_test_cpu = \"fast\"", "build-test-cpu:"),
            ("trusted_proxies = [\"10.0.0.0/99\"]", "trusted-proxies:"),
            ("store = \"postgres://db\"", "name the database"),
            ("http_listen = \"port 80\"", "http-listen:"),
            ("https_listen = \"port 443\"", "https-listen:"),
            ("https_listen = \"0.0.0.0\"", "https-listen:"),
            ("apps_domain = \"apps_example.com\"", "apps-domain:"),
            ("apps_domain = \"-x.com\"", "apps-domain:"),
            ("drain_timeout = \"a while\"", "drain-timeout:"),
            ("store = \"mysql://db\"", "(--store)"),
            ("store = \"berth.db\"", "(--store)"),
            ("no_such_key = 1", "unknown field `no_such_key`"),
        ];
        for (text, want) in cases {
            std::fs::write(&path, text).unwrap();
            let error = resolve(ServerOptions::default(), Some(&path)).unwrap_err();
            assert!(error.contains(want), "{text}: {error}");
        }
    }
}
