//! `berth server`: opens the store, connects the engine, starts the controller and serves HTTP.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use berth_api::ApiState;
use berth_api::accounts::bootstrap_first_admin;
use berth_api::auth::Authenticator;
use berth_api::registry_auth::{
    AccountsAuthorizer, BuilderGrants, SYSTEM_USER, TeamRegistryLimits, new_system_secret,
};
use berth_api::registry_metadata::{StoreGcFence, StoreMetadata, move_file_metadata_into};
use berth_controller::claim::{ClaimError, Claimed, claim_namespace};
use berth_controller::flows::{CONNTRACK_TABLE, ConnectionObserver, ConnectionObserverJob};
use berth_controller::leadership::Leadership;
use berth_controller::nodes::{NodeMonitor, NodeSampler, NodeSettings};
use berth_controller::sharing;
use berth_controller::workers::{Schedule, Workers};
use berth_controller::{Controller, ControllerConfig, system_clock};
use berth_core::backoff::Backoff;
use berth_core::image_ref::{REGISTRY_HOSTS_SETTING, RecordedHost, RegistryHosts};
use berth_core::installation::{self, Installation};
use berth_core::leadership::{LeaseTiming, Signal};
use berth_core::routes::DomainPolicy;
use berth_engine::node_agent::NodeAgent;
use berth_engine::{DockerEngine, ImageBuilder, Runtime, SwarmEngine};
use berth_operations::Platform;
use berth_operations::builds::worker::BuildSignal;
use berth_operations::builds::{BuildEnv, BuildWorker, BuildWorkerConfig};
use berth_operations::certificates::{CertificateIssuer, CertificateSettings};
use berth_operations::idle::Wakes;
use berth_operations::metrics_history::MetricsRecorder;
use berth_operations::routes::{RouteSources, RouterDrain, RouterTls, keep_routes};
use berth_registry::{FsStorage, Registry, RegistryConfig};
use berth_router::{AcmeChallenges, CertificateSet, RouterConfig, RouterStats, RoutingTable};
use berth_store::{PostgresStore, Store, StoreUrl};
use tracing_subscriber::EnvFilter;

use crate::config::{EngineKind, ServerConfig};
use crate::jobs;

/// Reads the admin token, or makes one on first start (printed once, stored with mode 0600).
fn admin_token(data_dir: &Path) -> Result<String, String> {
    let path = data_dir.join("admin-token");
    match std::fs::read_to_string(&path) {
        Ok(token) if !token.trim().is_empty() => return Ok(token.trim().to_string()),
        Ok(_) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(format!("cannot read {}: {error}", path.display())),
    }
    let token = berth_auth::new_token().plaintext;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(&path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    file.write_all(token.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    println!(
        "Berth first-start secret (shown once; also stored in {}):\n\n    {token}\n",
        path.display()
    );
    println!(
        "It is the API token and the password of the first admin, user `admin`:\n    export BERTH_TOKEN={token}\n    or log in to the console as admin with it, then set your own password: that retires this secret.\n"
    );
    Ok(token)
}

/// Creates the data directory when missing, closes it to other users (mode 0700: it holds the
/// database, the server's key and the first-start secret) and answers its absolute path.
///
/// Resolved once here, so every path derived from it — the hosted git repositories that builds
/// fetch from, build logs, the registry — stays valid whatever directory a later step runs in.
pub fn prepare_data_dir(data_dir: &Path) -> Result<std::path::PathBuf, String> {
    std::fs::create_dir_all(data_dir)
        .map_err(|e| format!("cannot create data directory {}: {e}", data_dir.display()))?;
    let absolute = std::fs::canonicalize(data_dir)
        .map_err(|e| format!("cannot resolve data directory {}: {e}", data_dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&absolute, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| format!("cannot restrict data directory {}: {e}", absolute.display()))?;
    }
    Ok(absolute)
}

pub async fn run(mut config: ServerConfig) -> Result<(), String> {
    let filter = EnvFilter::try_new(&config.log).map_err(|e| format!("log: {e}"))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .init();

    config.data_dir = prepare_data_dir(&config.data_dir)?;
    // What every server of the installation shares: the registry, hosted git, build logs and
    // the sealing key (the data directory itself unless --shared-dir names another).
    let shared_dir = match &config.shared_dir {
        Some(dir) => prepare_data_dir(dir)?,
        None => config.data_dir.clone(),
    };
    // Sockets and ready instances a predecessor handed over (`kill -USR2`), if any; every
    // socket this server listens on is kept for its own successor.
    let mut inherited = crate::handover::inherited();
    let mut handoff = crate::handover::Handoff::default();
    // Seals stored credentials (external registries' passwords); made on first start.
    let secrets = Arc::new(
        berth_auth::SecretBox::load_or_create(&shared_dir.join("secret-key"))
            .map_err(|e| e.to_string())?,
    );
    let store_url = match config.store.take() {
        None => StoreUrl::SqliteFile(config.data_dir.join("berth.db")),
        // Resolved once, absolutely: a relative path means the directory Berth started in.
        Some(StoreUrl::SqliteFile(path)) if path.is_relative() => StoreUrl::SqliteFile(
            std::env::current_dir()
                .map_err(|e| format!("store: cannot read the working directory: {e}"))?
                .join(path),
        ),
        Some(url) => url,
    };
    let cannot_open =
        |e: berth_store::StoreError| format!("cannot open the store ({store_url}): {e}");
    // On PostgreSQL the servers also signal each other through the database.
    let (store, postgres): (Arc<dyn Store>, Option<PostgresStore>) = match &store_url {
        StoreUrl::Postgres(url) => {
            let postgres = PostgresStore::connect(url).await.map_err(cannot_open)?;
            (Arc::new(postgres.clone()), Some(postgres))
        }
        _ => (store_url.open().await.map_err(cannot_open)?, None),
    };
    // The metrics history has a database of its own, so its writes never queue behind (or
    // hold up) the control plane's single writer; an in-memory store keeps it in memory too.
    // Beside PostgreSQL it is this server's own file: each server records what it sees.
    let metrics_store: Arc<dyn berth_store::MetricsStore> = match &store_url {
        StoreUrl::SqliteMemory => Arc::new(
            berth_store::SqliteMetricsStore::open_in_memory()
                .await
                .map_err(|e| format!("cannot open the metrics history: {e}"))?,
        ),
        StoreUrl::SqliteFile(_) | StoreUrl::Postgres(_) => {
            let path = config.data_dir.join("metrics.db");
            Arc::new(
                berth_store::SqliteMetricsStore::open(&path)
                    .await
                    .map_err(|e| format!("cannot open {}: {e}", path.display()))?,
            )
        }
    };
    // Docker both runs the instances and builds the images.
    let docker = Arc::new(connect_docker(config.docker_host.as_deref()).await);
    let runtime: Arc<dyn Runtime> = match config.engine {
        EngineKind::Docker => docker.clone(),
        // Instances through the Swarm; images are still built on the manager's engine.
        EngineKind::Swarm => Arc::new(swarm_engine(&config, (*docker).clone())?),
    };
    let builder: Arc<dyn ImageBuilder> = docker;
    // Several servers share a PostgreSQL store: the one holding the controllers' lease runs
    // them, and its runtime starts and stops instances only within its term (the fence).
    let leadership = match &postgres {
        Some(_) => {
            let fence = berth_engine::Fence::new();
            let leadership = Leadership::new(
                Arc::clone(&store) as Arc<dyn berth_store::LeaseStore>,
                berth_controller::leadership::holder_id(),
                LeaseTiming::default(),
                Arc::clone(&fence),
                system_clock(),
            );
            tracing::info!(holder = %leadership.holder(), "the store is shared: servers elect who runs the controllers");
            Some((leadership, fence))
        }
        None => None,
    };
    let runtime: Arc<dyn Runtime> = match &leadership {
        Some((_, fence)) => Arc::new(berth_engine::FencedRuntime::new(runtime, Arc::clone(fence))),
        None => runtime,
    };
    let leadership = leadership.map(|(leadership, _)| leadership);
    // A slow engine does not hold the API back: what it has not answered within the patience
    // is asked again before the controllers start.
    let engine_deadline = tokio::time::Instant::now() + ENGINE_START_PATIENCE;
    match tokio::time::timeout_at(engine_deadline, runtime.info()).await {
        Ok(Ok(info)) => {
            tracing::info!(version = %info.version, node = %info.node_name, "connected to {}", info.name)
        }
        Ok(Err(error)) => {
            tracing::warn!(%error, "the Docker Engine does not answer yet; Berth keeps retrying (run scripts/ensure-docker.sh to start one)")
        }
        Err(_) => tracing::warn!(
            patience = ?ENGINE_START_PATIENCE,
            "the Docker Engine is slow to answer; the API starts now and the controllers once it answers"
        ),
    }
    let clock = system_clock();
    store
        .ensure_team(berth_core::DEFAULT_TEAM, clock())
        .await
        .map_err(|e| e.to_string())?;
    // No control loop acts on the namespace before it is this installation's. An engine that
    // does not answer yet is asked again before the controllers start.
    let installation = installation(
        &*store,
        &config.data_dir,
        matches!(store_url, StoreUrl::SqliteMemory),
        clock(),
    )
    .await?;
    let claim = NamespaceClaim {
        runtime: Arc::clone(&runtime),
        namespace: config.namespace.clone(),
        installation,
        take_over: config.take_over_namespace,
    };
    let pending_claim = match tokio::time::timeout_at(engine_deadline, claim.attempt()).await {
        Ok(Ok(())) => None,
        Ok(Err(ClaimError::Held(holder))) => {
            return Err(installation::refusal_message(
                &config.namespace,
                holder.as_ref(),
            ));
        }
        Ok(Err(ClaimError::Engine(error))) => {
            tracing::warn!(%error, namespace = %config.namespace, "cannot claim the engine namespace yet: the controllers start once the engine answers");
            Some(claim)
        }
        Err(_elapsed) => {
            tracing::warn!(namespace = %config.namespace, patience = ?ENGINE_START_PATIENCE, "the engine did not answer the namespace claim in time: the controllers start once it does");
            Some(claim)
        }
    };
    let auth = Arc::new(Authenticator::new(
        Arc::clone(&store),
        berth_auth::HashParams::RECOMMENDED,
    ));
    // The first-start secret exists only until the first admin sets their own password: a
    // server with users makes no new one.
    let has_users = !store
        .list_users()
        .await
        .map_err(|e| e.to_string())?
        .is_empty();
    if !has_users {
        let secret = admin_token(&config.data_dir)?;
        if bootstrap_first_admin(&*store, &auth, &secret, clock())
            .await
            .map_err(|e| format!("cannot create the first admin: {e}"))?
        {
            tracing::info!(
                "created the first admin, user `admin` (password and token: the first-start secret)"
            );
        } else {
            // Another server of the installation made the first admin at the same moment.
            let _ = std::fs::remove_file(config.data_dir.join("admin-token"));
            tracing::warn!(
                "another server created the first admin at the same moment: the secret printed \
                 above is void; use the one that server printed"
            );
        }
    }

    // The engines pull from the built-in registry with the system credential, at any of the
    // hosts it is reached under (every server's, when servers share the store).
    let system_secret = system_pull_secret(&*store, &secrets, postgres.is_some(), clock()).await?;
    let own_registry_hosts = registry_hosts(config.listen);
    let known_registry_hosts = RegistryHosts::new(own_registry_hosts.clone(), &machine_name());
    if let Some(postgres) = &postgres {
        share_registry_hosts(
            postgres,
            &own_registry_hosts,
            &known_registry_hosts,
            clock(),
        )
        .await
        .map_err(|e| format!("cannot record this server's registry address: {e}"))?;
        tokio::spawn(keep_registry_hosts(
            postgres.clone(),
            known_registry_hosts.clone(),
        ));
    }
    // Each running build gets its own registry credential, scoped to its pipeline's team.
    let builder_grants = BuilderGrants::default();
    // Blobs are files on the shared directory; tags, manifest records and links are rows in
    // the database (an earlier version's metadata files are moved there once).
    let registry_root = shared_dir.join("registry");
    let registry_blobs = Arc::new(
        FsStorage::open(&registry_root)
            .map_err(|e| format!("cannot open the registry storage: {e}"))?,
    );
    let moved = move_file_metadata_into(&registry_root, store.as_ref())
        .await
        .map_err(|e| {
            format!(
                "cannot move the registry's metadata from {} into the database: {e}",
                registry_root.join("meta").display()
            )
        })?;
    if moved > 0 {
        tracing::info!(
            entries = moved,
            "moved the registry's metadata from files into the database"
        );
    }
    let registry = Registry::new(
        registry_blobs,
        Arc::new(StoreMetadata::new(Arc::clone(&store))),
        Arc::new(
            AccountsAuthorizer::new(Arc::clone(&auth), Arc::clone(&clock), system_secret.clone())
                .with_builder(builder_grants.clone()),
        ),
        RegistryConfig {
            gc_grace_period: config.registry_gc_grace,
            ..RegistryConfig::default()
        },
    )
    .with_clock(Arc::new(Arc::clone(&clock)))
    .with_limits(Arc::new(TeamRegistryLimits::new(Arc::clone(&store))));
    // Servers sharing the database push to one registry: a sweep on one waits for the others'
    // pushes, and sees what they touched.
    let registry = Arc::new(match &postgres {
        Some(postgres) => {
            registry.with_gc_fence(Arc::new(StoreGcFence::new(Arc::new(postgres.clone()))))
        }
        None => registry,
    });
    let workers = Workers::new(Arc::clone(&clock));

    let controller_config = ControllerConfig {
        namespace: config.namespace.clone(),
        resync_interval: config.resync_interval,
        revision_history: config.revision_history,
        event_history: config.event_history,
        backoff: Backoff {
            base_ms: config.crash_backoff.as_millis() as u64,
            cap_ms: config.crash_backoff_max.as_millis() as u64,
            ..Backoff::default()
        },
        pull_credential: Some((SYSTEM_USER.into(), system_secret.clone())),
        registry_hosts: known_registry_hosts.clone(),
        usage_interval: config.usage_interval,
        usage_report: (!config.usage_interval.is_zero()).then(|| {
            workers.register(
                "usage-sampler",
                "samples the CPU and memory of every running instance",
            )
        }),
        drain_patience: config.drain_timeout,
        ..ControllerConfig::default()
    };
    let controller = Controller::new(
        store.clone(),
        Arc::clone(&runtime),
        controller_config,
        Arc::clone(&clock),
    );
    // The router (and its drain) is in place before the first reconcile stops anything. Its
    // plain listener answers ACME's HTTP-01 challenges, which the issuer publishes.
    let challenges = AcmeChallenges::new();
    if let Some(seed) = inherited.seed() {
        let instances: usize = seed.values().map(Vec::len).sum();
        tracing::info!(
            instances,
            "serving the ready instances the previous server handed over"
        );
        controller.seed_ready_endpoints(seed);
    }
    let (router_stop, router_stopping) = tokio::sync::watch::channel(false);
    let on_demand = berth_operations::on_demand::PlatformOnDemand::new();
    let router = start_router(
        &config,
        &store,
        &controller,
        &workers,
        &secrets,
        &challenges,
        &clock,
        &on_demand,
        RouterSockets {
            inherited: &mut inherited,
            handoff: &mut handoff,
            stopping: router_stopping,
        },
    )
    .await;
    // Every server's router routes when several share the database: the leader publishes its
    // endpoint table, and its stops wait until a table without the instance is out.
    let shared_endpoints = leadership.as_ref().map(|_| sharing::written_channel());
    let local_drain = router.as_ref().map(|r| Arc::clone(&r.drain));
    match (&shared_endpoints, local_drain) {
        (Some((_, written)), local) => controller.set_drain(Arc::new(sharing::SharedDrain {
            local,
            written: written.clone(),
            grace: sharing::FOLLOWER_GRACE,
        })),
        (None, Some(local)) => controller.set_drain(local),
        (None, None) => {}
    }
    let wakes = router.as_ref().map(|r| Arc::clone(&r.wakes));
    let issuer = config.acme.as_ref().map(|acme| {
        tracing::info!(directory = %acme.directory_url, "certificates can be ordered over ACME");
        Arc::new(crate::acme::AcmeIssuer::new(
            acme,
            challenges.clone(),
            Arc::clone(&store),
            Arc::clone(&secrets),
            Arc::clone(&clock),
        )) as Arc<dyn CertificateIssuer>
    });
    let registry_hosts: Arc<[String]> = own_registry_hosts.into();
    let nodes = NodeMonitor::new(
        store.clone(),
        Arc::clone(&runtime),
        Arc::clone(&clock),
        NodeSettings {
            interval: config.node_sample_interval,
            thresholds: config.node_thresholds,
            data_dir: config.data_dir.clone(),
            event_history: config.event_history,
        },
    );
    controller.set_secrets(Arc::new(berth_operations::secrets::PlatformSecrets {
        store: Arc::clone(&store),
        key: Arc::clone(&secrets),
    }));
    let platform = Platform {
        store: Arc::clone(&store),
        controller: controller.clone(),
        clock: Arc::clone(&clock),
        registry_hosts: known_registry_hosts,
        revision_history: config.revision_history,
        team_locks: match &postgres {
            Some(postgres) => {
                berth_operations::quota::TeamLocks::shared(Arc::new(postgres.clone()))
            }
            None => Default::default(),
        },
        domains: DomainPolicy::new(&config.apps_domain, &config.allowed_domains),
        http_port: router.as_ref().map(|r| r.port),
        router: router.as_ref().map(|r| r.stats.clone()),
        certificates: CertificateSettings {
            secrets: Arc::clone(&secrets),
            issuer,
        },
        tcp: berth_operations::tcp_ports::TcpSettings::new(
            config.tcp_listen_address,
            config.tcp_port_range.clone(),
        ),
        autoscaler: Default::default(),
        traffic_rates: Default::default(),
        metrics: berth_operations::metrics_history::MetricsHistory {
            store: metrics_store,
            tiers: config.metrics_tiers.clone(),
        },
        nodes,
        connections: (!config.connections_interval.is_zero()).then(|| {
            Arc::new(ConnectionObserver::new(
                CONNTRACK_TABLE.into(),
                controller.endpoints(),
                Arc::clone(&clock),
                config.connections_interval,
            ))
        }),
    };
    on_demand.attach(platform.clone());
    let build_env = BuildEnv {
        platform: platform.clone(),
        builder: Arc::clone(&builder),
        secrets: Arc::clone(&secrets),
        git_dir: shared_dir.join("git"),
        build_logs_dir: shared_dir.join("builds"),
    };
    let builds = BuildWorker::new(
        build_env,
        BuildWorkerConfig {
            concurrency: config.build_concurrency,
            work_dir: config.data_dir.join("build-work"),
            registry_host: registry_hosts[0].clone(),
            grants: builder_grants,
            report: Some(workers.register(
                "builds",
                "runs queued builds: fetch, build, test, push, roll out",
            )),
            namespace: config.namespace.clone(),
            timeout: config.build_timeout,
            retention: config.build_retention,
            test_cpu_millis: config.build_test_cpu_millis,
            test_memory_bytes: config.build_test_memory_bytes,
        },
    );

    if let (Some(leadership), Some(postgres)) = (&leadership, &postgres) {
        relay_to_the_leader(leadership, postgres, &platform.controller, &builds);
    }
    let node_gauges = berth_api::metrics::NodeGauges(Arc::clone(&platform.nodes));
    let state = ApiState {
        platform,
        store,
        runtime,
        builder,
        controller,
        clock,
        auth,
        cookie_secure: config.secure_cookies,
        session_ttl_ms: config.session_ttl.as_millis() as i64,
        default_quota: berth_core::quota::DEFAULT_TEAM_QUOTA,
        registry_hosts,
        registry,
        secrets,
        remote_registries: Default::default(),
        build_logs_dir: shared_dir.join("builds"),
        trusted_proxies: Arc::new(config.trusted_proxies.clone()),
        first_start_secret: Some(config.data_dir.join("admin-token")),
        git_dir: shared_dir.join("git"),
        builds,
        workers: workers.clone(),
        metrics: berth_api::metrics::ApiMetrics::default().with_source(Arc::new(node_gauges)),
        data_dir: config.data_dir.clone(),
        leadership: leadership.clone(),
    };
    let listener = crate::handover::bind(&mut inherited, &mut handoff, "api", config.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    write_pid_file(&config.data_dir);
    tracing::info!(
        listen = %config.listen,
        data_dir = %config.data_dir.display(),
        namespace = %config.namespace,
        pid = std::process::id(),
        "berth server is up"
    );
    // Streamed responses (registry blobs, logs) must not wait on the client's delayed ACK.
    let listener = axum::serve::ListenerExt::tap_io(listener, |stream| {
        let _ = stream.set_nodelay(true);
    });
    let background = Background {
        config: config.clone(),
        store: Arc::clone(&state.store),
        registry: Arc::clone(&state.registry),
        builder: Arc::clone(&state.builder),
        clock: Arc::clone(&state.clock),
        workers: workers.clone(),
        platform: state.platform.clone(),
        builds: state.builds.clone(),
        wakes,
    };
    let (refuse, mut refused) = tokio::sync::mpsc::channel::<String>(1);
    if let (Some(leadership), Some(postgres)) = (leadership.clone(), postgres.clone()) {
        // A follower serves the API at once and starts the controllers when it leads; losing
        // the lead stops the server (a supervisor restarts it as a follower).
        let endpoints = background.platform.controller.endpoints();
        let lease_store = Arc::clone(&background.store) as Arc<dyn berth_store::LeaseStore>;
        mirror_while_following(&leadership, &postgres, &endpoints, &lease_store);
        let followers = Followers {
            postgres: postgres.clone(),
            controller: background.platform.controller.clone(),
            builds: background.builds.clone(),
        };
        if inherited.is_successor() {
            inherited.announce_serving(&config.data_dir);
        }
        let (written, _) = shared_endpoints.expect("sharing starts with the leadership");
        let clock = Arc::clone(&background.clock);
        tokio::spawn(async move {
            let term = leadership.lead().await;
            let nudge: Arc<dyn Fn() + Send + Sync> = Arc::new(move || {
                let postgres = postgres.clone();
                tokio::spawn(async move {
                    let payload = Signal::EndpointsPublished.to_payload();
                    if let Err(error) = postgres.publish(&payload).await {
                        tracing::warn!(%error, "cannot tell the followers of the new endpoint table: they read it within {:?}", sharing::MIRROR_POLL);
                    }
                });
            });
            tokio::spawn(sharing::publish_endpoints(
                endpoints,
                lease_store,
                leadership.holder().to_string(),
                term.epoch,
                clock,
                nudge,
                written,
            ));
            followers.listen().await;
            if let Some(claim) = pending_claim
                && let Err(refusal) = claim.settle().await
            {
                let _ = refuse.send(refusal).await;
                return;
            }
            background.start().await;
            if let Ok(reason) = term.lost.await {
                let _ = refuse
                    .send(format!(
                        "{reason}: this server stopped so that only the new leader acts; \
                         start it again to follow"
                    ))
                    .await;
            }
        });
    } else if inherited.is_successor() {
        // The predecessor's controllers and jobs run until it exits: ours start then.
        inherited.announce_serving(&config.data_dir);
        tokio::spawn(async move {
            inherited.predecessor_gone().await;
            tracing::info!("the previous server has exited: starting the controllers");
            if let Some(claim) = pending_claim
                && let Err(refusal) = claim.settle().await
            {
                let _ = refuse.send(refusal).await;
                return;
            }
            background.start().await;
        });
    } else if let Some(claim) = pending_claim {
        tokio::spawn(async move {
            match claim.settle().await {
                Ok(()) => background.start().await,
                Err(refusal) => {
                    let _ = refuse.send(refusal).await;
                }
            }
        });
    } else {
        background.start().await;
    }
    let builds = state.builds.clone();
    let reconciler = state.controller.clone();
    let data_dir = config.data_dir.clone();
    let (stopped, stop) = tokio::sync::oneshot::channel();
    let (stopping_api, mut api_stopping) = tokio::sync::watch::channel(false);
    let app =
        berth_api::router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
        let why = tokio::select! {
            why = stop_signal(&reconciler, &handoff, &data_dir) => why,
            Some(refusal) = refused.recv() => Stop::Refused(refusal),
        };
        stopping_api.send_replace(true);
        // The router stops accepting; its connections finish their requests.
        router_stop.send_replace(true);
        // Running builds end `interrupted` now, so streams following them end too.
        builds.shut_down(BUILD_SHUTDOWN_PATIENCE).await;
        workers.stop(JOB_SHUTDOWN_PATIENCE).await;
        // No reconcile is cut off halfway: a container create in flight lands before
        // the process exits, so nothing is left half made.
        reconciler.shut_down(RECONCILE_SHUTDOWN_PATIENCE).await;
        // Nothing acts any more: a follower may lead at once.
        if let Some(leadership) = &leadership {
            leadership.step_down().await;
        }
        let _ = stopped.send(why);
    });
    tokio::select! {
        served = serve.into_future() => served.map_err(|e| format!("server: {e}"))?,
        () = async {
            let _ = api_stopping.wait_for(|stopping| *stopping).await;
            tokio::time::sleep(API_SHUTDOWN_PATIENCE).await;
        } => tracing::warn!("API connections still open at shutdown (streams): closing them"),
    }
    let router_tasks = router.map(|r| r.tasks).unwrap_or_default();
    for task in router_tasks {
        let _ = task.await;
    }
    match stop.await {
        Ok(Stop::Refused(refusal)) => return Err(refusal),
        Ok(Stop::HandedOver(successor, _paused)) => {
            tracing::info!(
                successor = successor.pid,
                "berth server handed over to its successor and stopped"
            );
        }
        _ => tracing::info!(
            "berth server stopped; app instances keep running and are adopted on the next start"
        ),
    }
    Ok(())
}

/// Hands what this server's API asks of the controllers and the build worker to the leader
/// while this server follows (a database notification; see `berth_core::leadership::Signal`).
fn relay_to_the_leader(
    leadership: &Leadership,
    postgres: &PostgresStore,
    controller: &berth_controller::Controller,
    builds: &BuildWorker,
) {
    let (signals, mut outbox) = tokio::sync::mpsc::unbounded_channel::<Signal>();
    let publisher = postgres.clone();
    tokio::spawn(async move {
        while let Some(signal) = outbox.recv().await {
            if let Err(error) = publisher.publish(&signal.to_payload()).await {
                tracing::warn!(%error, ?signal, "cannot tell the leader: it finds the change at its next resync");
            }
        }
    });
    let (following, wakes) = (leadership.clone(), signals.clone());
    controller.set_wake_relay(Arc::new(move |app: &str| {
        if !following.leads() {
            let _ = wakes.send(Signal::Wake(app.to_string()));
        }
    }));
    builds.follow(Arc::new(move |signal| {
        let _ = signals.send(match signal {
            BuildSignal::Queued => Signal::BuildsQueued,
            BuildSignal::Cancel(id) => Signal::CancelBuild(id),
        });
    }));
}

/// While this server follows, its router routes by the leader's published endpoint table
/// (`berth_controller::sharing`): read at once, on each of the leader's notifications, and
/// every few seconds.
fn mirror_while_following(
    leadership: &Leadership,
    postgres: &PostgresStore,
    endpoints: &berth_controller::endpoints::Endpoints,
    store: &Arc<dyn berth_store::LeaseStore>,
) {
    use futures::StreamExt;
    let nudged = Arc::new(tokio::sync::Notify::new());
    let following = leadership.clone();
    tokio::spawn(sharing::mirror_endpoints(
        endpoints.clone(),
        Arc::clone(store),
        Arc::clone(&nudged),
        move || following.leads(),
    ));
    let (postgres, following) = (postgres.clone(), leadership.clone());
    tokio::spawn(async move {
        let mut heard = match postgres.subscribe().await {
            Ok(heard) => heard,
            Err(error) => {
                tracing::warn!(%error, "cannot listen to the leader: the endpoint table is read every {:?}", sharing::MIRROR_POLL);
                return;
            }
        };
        while let Some(payload) = heard.next().await {
            if following.leads() {
                return;
            }
            if let Ok(payload) = payload
                && Signal::parse(&payload) == Some(Signal::EndpointsPublished)
            {
                nudged.notify_one();
            }
        }
    });
}

/// What the leader does on its followers' signals.
struct Followers {
    postgres: PostgresStore,
    controller: berth_controller::Controller,
    builds: BuildWorker,
}

impl Followers {
    /// Listens (from now on: before the controllers and the build worker start, so nothing
    /// queued meanwhile is missed) and acts on every signal until the process ends.
    async fn listen(self) {
        use futures::StreamExt;
        let Followers {
            postgres,
            controller,
            builds,
        } = self;
        builds.lead();
        let mut heard = match postgres.subscribe().await {
            Ok(heard) => heard,
            Err(error) => {
                tracing::warn!(%error, "cannot listen to the followers: their changes wait for the resync");
                return;
            }
        };
        tokio::spawn(async move {
            while let Some(payload) = heard.next().await {
                let signal = match payload {
                    Ok(payload) => Signal::parse(&payload),
                    Err(error) => {
                        tracing::warn!(%error, "listening to the followers");
                        continue;
                    }
                };
                match signal {
                    Some(Signal::Wake(app)) => controller.wake_here(&app),
                    Some(Signal::BuildsQueued) => builds.resume_queued().await,
                    Some(Signal::CancelBuild(id)) => {
                        builds.cancel(id);
                    }
                    // Its own.
                    Some(Signal::EndpointsPublished) | None => {}
                }
            }
        });
    }
}

/// How long a stopping server waits for API connections (log and event streams) to close.
const API_SHUTDOWN_PATIENCE: Duration = Duration::from_secs(10);

/// Writes the server's process id to `<data dir>/server.pid` (where `kill -USR2` finds it).
fn write_pid_file(data_dir: &Path) {
    let path = data_dir.join("server.pid");
    if let Err(error) = std::fs::write(&path, format!("{}\n", std::process::id())) {
        tracing::warn!(path = %path.display(), %error, "cannot write the pid file");
    }
}

/// What the server starts once it is the only one running: the controllers, the periodic
/// jobs, the TCP forwarders, the renewal of certificates, queued builds. A successor starts
/// them only after its predecessor has exited.
struct Background {
    config: ServerConfig,
    store: Arc<dyn Store>,
    registry: Arc<Registry>,
    builder: Arc<dyn ImageBuilder>,
    clock: berth_core::clock::Clock,
    workers: Workers,
    platform: Platform,
    builds: BuildWorker,
    /// The apps the router asks to wake, when it runs.
    wakes: Option<Arc<Wakes>>,
}

impl Background {
    async fn start(self) {
        let Background {
            config,
            store,
            registry,
            builder,
            clock,
            workers,
            platform,
            builds,
            wakes,
        } = self;
        start_jobs(&workers, &config, &store, &registry, &builder, &clock);
        let nodes = NodeSampler(Arc::clone(&platform.nodes));
        let schedule = nodes.schedule();
        workers.spawn_periodic(nodes, schedule);
        if let Some(observer) = &platform.connections {
            let observer = ConnectionObserverJob(Arc::clone(observer));
            let schedule = observer.schedule();
            workers.spawn_periodic(observer, schedule);
        }
        workers.spawn_periodic(
            berth_operations::volumes::VolumeKeeper::new(platform.clone()),
            Schedule {
                first_run_after: Duration::from_secs(5),
                ..Schedule::every(VOLUME_KEEPER_PERIOD)
            },
        );
        platform.controller.start();
        // Builds that were running when the server stopped (or when the leader that ran them
        // was lost) never finish: say so, and remove what they left running on the engine (a
        // test run). Queued ones run once the worker is up.
        match store
            .interrupt_started_builds(clock(), "the Berth server stopped during the build")
            .await
        {
            Ok(ended) if ended.is_empty() => {}
            Ok(ended) => {
                tracing::info!(
                    count = ended.len(),
                    "marked builds interrupted by the last stop"
                );
                tokio::spawn(remove_build_leftovers(
                    Arc::clone(&builder),
                    config.namespace.clone(),
                    ended,
                ));
            }
            Err(error) => tracing::warn!(%error, "cannot mark interrupted builds"),
        }
        if !config.metrics_interval.is_zero() {
            workers.spawn_periodic(
                MetricsRecorder::new(platform.clone()),
                MetricsRecorder::schedule(config.metrics_interval),
            );
        }
        // Request rates for the topology's edges (returns at once without the router).
        let rates = platform.clone();
        tokio::spawn(async move { rates.keep_traffic_rates(TRAFFIC_RATE_PERIOD).await });
        if let Some(wakes) = wakes {
            // Scale to zero when idle needs the router: it sees the traffic and wakes the app.
            let waker = platform.clone();
            tokio::spawn(async move { waker.keep_waking(wakes).await });
            let idler = platform.clone();
            tokio::spawn(async move { idler.keep_idling(IDLE_CHECK_PERIOD).await });
        }
        if !config.usage_interval.is_zero() {
            // The autoscaler decides on the sampler's numbers, as often as they change.
            let autoscaler = platform.clone();
            let period = config.usage_interval;
            tokio::spawn(async move { autoscaler.keep_autoscaling(period).await });
        }
        tokio::spawn(crate::tcp::keep_tcp_listeners(
            Arc::clone(&store),
            platform.controller.endpoints(),
            config.tcp_listen_address,
            ROUTES_REFRESH,
        ));
        if let Some(acme) = &config.acme {
            // At start, then every --acme-renew-interval (1 h): certificates due while the
            // server was down renew at once.
            let every = acme.renew_interval;
            workers.spawn_periodic(
                jobs::CertificateRenewal {
                    platform: platform.clone(),
                },
                Schedule {
                    first_run_after: every.min(Duration::from_secs(10)),
                    // CAs limit failed validations (Let's Encrypt: 5 per host and hour).
                    retry_after: every.min(Duration::from_secs(15 * 60)),
                    ..Schedule::every(every)
                },
            );
        }
        builds.resume_queued().await;
    }
}

/// Removes the containers the interrupted builds `ids` left on the engine (labelled
/// by the build worker's `build_label`).
async fn remove_build_leftovers(builder: Arc<dyn ImageBuilder>, namespace: String, ids: Vec<i64>) {
    for id in ids {
        let filter = std::collections::BTreeMap::from([(
            berth_engine::labels::BUILD.to_string(),
            berth_operations::builds::build_label(&namespace, id),
        )]);
        let left = match builder.list_runs(&filter).await {
            Ok(left) => left,
            Err(error) => {
                tracing::warn!(%error, build = id, "cannot list what the build left running");
                continue;
            }
        };
        for container in left {
            match builder.remove_run(&container.id).await {
                Ok(()) => tracing::info!(
                    build = id,
                    container = %container.name,
                    "removed what an interrupted build left running"
                ),
                Err(error) => tracing::warn!(%error, build = id, container = %container.name,
                    "cannot remove what an interrupted build left running"),
            }
        }
    }
}

/// Why the server stops.
enum Stop {
    /// SIGTERM or Ctrl-C.
    Terminate,
    /// SIGUSR2: a successor serves; it must live on (its standard input is held until exit),
    /// and the controllers stay paused.
    HandedOver(crate::handover::Successor, berth_controller::Paused),
    /// Another installation holds the engine namespace (found once the engine answered): the
    /// controllers never started.
    Refused(String),
}

/// This installation's identity (made on its first start, kept in its store: every server on
/// one store is one installation) as its claim on the namespace describes it. A store in
/// memory forgets it on every stop: its identity is kept in the data directory instead, so
/// restarting it is not taken for another installation.
async fn installation(
    store: &dyn Store,
    data_dir: &Path,
    store_in_memory: bool,
    now: berth_core::Millis,
) -> Result<Installation, String> {
    let fresh = format!("{:032x}", rand::random::<u128>());
    let proposed = if store_in_memory {
        let path = data_dir.join("installation-id");
        match std::fs::read_to_string(&path) {
            Ok(id) if !id.trim().is_empty() => id.trim().to_string(),
            _ => {
                std::fs::write(&path, format!("{fresh}\n"))
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                fresh
            }
        }
    } else {
        fresh
    };
    let id = store
        .init_setting(installation::INSTALLATION_SETTING, &proposed, now)
        .await
        .map_err(|e| format!("cannot read the installation's identity: {e}"))?;
    let host = machine_name();
    Ok(Installation {
        id,
        data_dir: data_dir.display().to_string(),
        host,
        claimed_at: now,
    })
}

/// The claim on the engine namespace this server makes before its controllers start.
struct NamespaceClaim {
    runtime: Arc<dyn Runtime>,
    namespace: String,
    installation: Installation,
    take_over: bool,
}

impl NamespaceClaim {
    /// One attempt; says what happened.
    async fn attempt(&self) -> Result<(), ClaimError> {
        let claimed = claim_namespace(
            &*self.runtime,
            &self.namespace,
            &self.installation,
            self.take_over,
        )
        .await?;
        match claimed {
            Claimed::Ours => tracing::info!(
                namespace = %self.namespace,
                installation = %self.installation.id,
                "the engine namespace is this installation's"
            ),
            Claimed::TookOver(previous) => tracing::warn!(
                namespace = %self.namespace,
                previous = previous.map(|p| format!("{} ({} on {})", p.id, p.data_dir, p.host)).unwrap_or_else(|| "unknown".into()),
                "took the engine namespace over from another installation (--take-over-namespace)"
            ),
        }
        Ok(())
    }

    /// Attempts until the engine answers; the refusal when another installation holds the
    /// namespace.
    async fn settle(self) -> Result<(), String> {
        loop {
            match self.attempt().await {
                Ok(()) => return Ok(()),
                Err(ClaimError::Held(holder)) => {
                    let refusal = installation::refusal_message(&self.namespace, holder.as_ref());
                    tracing::error!("{refusal}");
                    return Err(refusal);
                }
                Err(ClaimError::Engine(error)) => {
                    tracing::debug!(%error, "the engine does not answer yet");
                    tokio::time::sleep(CLAIM_RETRY).await;
                }
            }
        }
    }
}

/// The store setting holding the installation's pull secret (sealed), on a shared store.
const SYSTEM_PULL_SETTING: &str = "registry-system-pull-secret";
/// How often a server reads the other servers' registry hosts again.
const REGISTRY_HOSTS_REFRESH: Duration = Duration::from_secs(10);

/// The password engines pull from the built-in registry with ([`SYSTEM_USER`]): on a store
/// only this server uses, one made for this run; on a shared store, one for the whole
/// installation (made by the first server, kept sealed in the store), so that an image named
/// at any server's address is pulled by whichever server leads.
async fn system_pull_secret(
    store: &dyn Store,
    secrets: &berth_auth::SecretBox,
    shared: bool,
    now: berth_core::Millis,
) -> Result<String, String> {
    let fresh = new_system_secret();
    if !shared {
        return Ok(fresh);
    }
    let sealed = store
        .init_setting(
            SYSTEM_PULL_SETTING,
            &secrets.seal(&fresh, SYSTEM_PULL_SETTING),
            now,
        )
        .await
        .map_err(|e| format!("cannot read the registry's pull secret: {e}"))?;
    secrets.open(&sealed, SYSTEM_PULL_SETTING).map_err(|e| {
        format!(
            "cannot open the registry's pull secret (is --shared-dir the same on every server?): {e}"
        )
    })
}

/// Adds this server's registry hosts to the installation's list in the store (under the
/// store's lock, so servers starting together lose none) and learns the others'.
async fn share_registry_hosts(
    store: &PostgresStore,
    own: &[String],
    known: &RegistryHosts,
    now: berth_core::Millis,
) -> Result<(), berth_store::StoreError> {
    use berth_store::{AccountStore, SharedLocks};
    let _held = store.lock(REGISTRY_HOSTS_SETTING).await?;
    let listed = store.get_setting(REGISTRY_HOSTS_SETTING).await?;
    let mut all: Vec<RecordedHost> = listed
        .as_deref()
        .and_then(|listed| serde_json::from_str(listed).ok())
        .unwrap_or_default();
    let before = all.len();
    for host in known.recorded(own) {
        if !all.contains(&host) {
            all.push(host);
        }
    }
    let listed = serde_json::to_string(&all).unwrap_or_default();
    if all.len() > before {
        store
            .put_setting(REGISTRY_HOSTS_SETTING, &listed, now)
            .await?;
    }
    known.learn(&listed);
    Ok(())
}

/// Reads the other servers' registry hosts again every [`REGISTRY_HOSTS_REFRESH`] (a server
/// started later is known within that time; a permission check reads them at once).
async fn keep_registry_hosts(store: PostgresStore, known: RegistryHosts) {
    use berth_store::AccountStore;
    loop {
        tokio::time::sleep(REGISTRY_HOSTS_REFRESH).await;
        match store.get_setting(REGISTRY_HOSTS_SETTING).await {
            Ok(Some(listed)) => {
                known.learn(&listed);
            }
            Ok(None) => {}
            Err(error) => tracing::debug!(%error, "cannot read the servers' registry hosts"),
        }
    }
}

/// The name of the machine this server runs on (its kernel host name).
fn machine_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_string())
        .unwrap_or_default()
}

/// How often the namespace claim is tried again while the engine does not answer.
const CLAIM_RETRY: Duration = Duration::from_secs(2);

/// How long the start waits for the engine before the API serves without it.
const ENGINE_START_PATIENCE: Duration = Duration::from_secs(10);

/// Waits for SIGTERM or Ctrl-C (stop), or SIGUSR2 (hand over to a new server process: the
/// controllers pause, the successor starts with the sockets and the ready instances, and this
/// server stops once it serves; if it does not, the handover is called off and this server
/// carries on).
async fn stop_signal(
    controller: &berth_controller::Controller,
    handoff: &crate::handover::Handoff,
    data_dir: &Path,
) -> Stop {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut terminate), Ok(mut hand_over)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::user_defined2()),
    ) else {
        let _ = tokio::signal::ctrl_c().await;
        return Stop::Terminate;
    };
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Stop::Terminate,
            _ = terminate.recv() => return Stop::Terminate,
            _ = hand_over.recv() => {
                tracing::info!("SIGUSR2: handing over to a new server process");
                let paused = controller.pause().await;
                let endpoints = controller.endpoints().current();
                match handoff.start_successor(data_dir, &endpoints).await {
                    Ok(successor) => {
                        tracing::info!(
                            successor = successor.pid,
                            "the new server serves; this one stops accepting and exits once \
                             its requests are done"
                        );
                        // Paused until it has stopped: no change after the snapshot.
                        return Stop::HandedOver(successor, paused);
                    }
                    Err(error) => {
                        tracing::warn!(%error, "handover called off; this server carries on");
                        drop(paused);
                    }
                }
            }
        }
    }
}

/// How often the router's table is rebuilt besides every change of the endpoint table (apps
/// created or changed since).
const ROUTES_REFRESH: Duration = Duration::from_secs(1);

/// How often the router's counters are read for request rates and request-metric autoscaling
/// (a panic window is a few seconds).
const TRAFFIC_RATE_PERIOD: Duration = Duration::from_secs(1);
/// How often apps with an idle timeout are checked for idling (timeouts are 10 s or more).
const IDLE_CHECK_PERIOD: Duration = Duration::from_secs(2);

/// Starts the router for apps' traffic on `--http-listen`, unless it is off. A router that
/// cannot bind its address is reported and left off; the API serves all the same.
/// The router once it serves: its HTTP port and its counters.
struct RunningRouter {
    port: u16,
    stats: RouterStats,
    /// The listeners' accept loops: they end once `stopping` turned and their connections
    /// finished.
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// The apps its requests ask to wake (scaled to 0 when idle).
    wakes: Arc<Wakes>,
    /// What a stop waits for: the requests this router has in flight to the instance.
    drain: Arc<dyn berth_controller::endpoints::Drain>,
}

/// Where the router's listeners come from and when they stop.
struct RouterSockets<'s> {
    inherited: &'s mut crate::handover::Inherited,
    handoff: &'s mut crate::handover::Handoff,
    /// Turns `true` when the server stops.
    stopping: tokio::sync::watch::Receiver<bool>,
}

impl RouterSockets<'_> {
    /// The router's listener `name` on `address`: handed over, or bound (reported and `None`
    /// when it cannot be: saying what stays off and how to choose another address for `flag`).
    async fn listen(
        &mut self,
        name: &'static str,
        address: std::net::SocketAddr,
        flag: &str,
        consequence: &str,
        example_port: u16,
    ) -> Option<tokio::net::TcpListener> {
        match crate::handover::bind(self.inherited, self.handoff, name, address).await {
            Ok(listener) => Some(listener),
            Err(error) => {
                tracing::warn!(
                    %address,
                    %error,
                    "cannot serve apps' traffic on {address} ({error}): {consequence}; give {flag} \
                     a free address (e.g. 127.0.0.1:{example_port}), or off"
                );
                None
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn start_router(
    config: &ServerConfig,
    store: &Arc<dyn Store>,
    controller: &Controller,
    workers: &Workers,
    secrets: &Arc<berth_auth::SecretBox>,
    challenges: &AcmeChallenges,
    clock: &berth_core::clock::Clock,
    on_demand: &Arc<berth_operations::on_demand::PlatformOnDemand>,
    mut sockets: RouterSockets<'_>,
) -> Option<RunningRouter> {
    let Some(address) = config.http_listen else {
        tracing::info!(
            "router off (--http-listen off): apps answer only on their instances' addresses"
        );
        return None;
    };
    let listener = sockets
        .listen("http", address, "--http-listen", "the router is off", 8080)
        .await?;
    let bound = listener.local_addr().unwrap_or(address);
    let stats = access_logged_stats(config);
    let router_view = Arc::new(RouterDrain {
        stats: stats.clone(),
    });
    controller.set_traffic_source(router_view.clone());
    let (table, routes) = tokio::sync::watch::channel(Arc::new(RoutingTable::default()));
    let wakes = Arc::new(Wakes::default());
    let mut router_config = RouterConfig {
        request_timeout: config.router_timeout,
        hold_timeout: config.router_hold_timeout,
        acme_challenges: challenges.clone(),
        wake: Some(Arc::clone(&wakes) as Arc<dyn berth_router::Wake>),
        ..RouterConfig::default()
    };
    let mut tls = None;
    let mut https_listener = None;
    if let Some(https) = config.https_listen {
        router_config.https_port = https.port();
        let certificates = CertificateSet::new();
        if let Some(opened) =
            open_https_listener(https, Arc::clone(&certificates), &mut sockets).await
        {
            https_listener = Some((https, opened));
            // Certificates at the handshake for the catch-all app's hosts need ACME (HTTP-01
            // on the plain listener, which is on here).
            if config.acme.is_some() {
                router_config.on_demand = Some(berth_router::OnDemand::new(
                    config.on_demand.clone(),
                    on_demand.clone(),
                    Arc::clone(&certificates),
                ));
            }
            tls = Some(RouterTls {
                certificates,
                secrets: Arc::clone(secrets),
            });
        }
    }
    tokio::spawn(keep_routes(
        RouteSources {
            store: Arc::clone(store),
            endpoints: controller.endpoints(),
            apps_domain: config.apps_domain.clone(),
            wakes: Arc::clone(&wakes),
            clock: Arc::clone(clock),
        },
        table,
        ROUTES_REFRESH,
        Some(workers.register(
            "router-table",
            "keeps the router's table of host names and ready instances, and its HTTPS \
             certificates, current",
        )),
        tls,
    ));
    // Connections wait in the listener's queue until the first table is built (a handed-over
    // server answers from its first request as its predecessor did, not 404).
    let mut first_table = routes.clone();
    let _ = tokio::time::timeout(Duration::from_secs(10), first_table.changed()).await;
    let https_address = https_listener.as_ref().map(|(address, _)| *address);
    let mut listeners = vec![berth_router::Listener {
        socket: listener,
        tls: None,
    }];
    if let Some((_, (socket, tls))) = https_listener {
        listeners.push(berth_router::Listener {
            socket,
            tls: Some(tls),
        });
    }
    // The router's threads serve the connections both listeners accept.
    let served = berth_router::serve_on_threads(
        config.router_threads,
        listeners,
        routes,
        router_config,
        stats.clone(),
        sockets.stopping.clone(),
    );
    let served = match served {
        Ok(served) => served,
        Err(error) => {
            tracing::error!(%error, "router off: its threads cannot be started");
            return None;
        }
    };
    if let Some(https) = https_address {
        tracing::info!(
            address = %https,
            "router serving apps' HTTPS traffic for the hosts with a certificate (berth certs)"
        );
    }
    let tasks = vec![tokio::spawn(served)];
    tracing::info!(
        %address,
        "router serving apps' traffic: every app answers at <app>.<team>.{}",
        config.apps_domain
    );
    Some(RunningRouter {
        port: bound.port(),
        stats,
        tasks,
        wakes,
        drain: router_view,
    })
}

/// Access log lines waiting for the file; beyond this, lines are dropped (and counted), never
/// waited for.
const ACCESS_LOG_BACKLOG: usize = 8192;

/// The router's counters with its access log: lines go to `--access-log` (appended) through a
/// task of their own, so no request waits on the disk. Off unless `--access-log-sample`; admins
/// switch it at run time.
fn access_logged_stats(config: &ServerConfig) -> RouterStats {
    let path = config
        .access_log
        .clone()
        .unwrap_or_else(|| config.data_dir.join("router-access.log"));
    let (lines, received) = tokio::sync::mpsc::channel(ACCESS_LOG_BACKLOG);
    let stats = RouterStats::with_access_log(lines);
    if let Some(sample_one_in) = config.access_log_sample {
        stats.set_access_log(Some(berth_router::AccessLog { sample_one_in }));
    }
    tokio::spawn(async move {
        let file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .await;
        let outcome = match file {
            Ok(file) => berth_router::write_access_log(received, file).await,
            Err(error) => Err(error),
        };
        if let Err(error) = outcome {
            tracing::warn!(path = %path.display(), %error, "the router's access log stopped");
        }
    });
    stats
}

/// Opens the router's HTTPS listener on `--https-listen` with the certificate set (filled
/// from the store by the router-table loop; a host without a certificate is refused at the
/// handshake). A listener that cannot open is reported and left off (`None`); plain HTTP
/// serves all the same.
async fn open_https_listener(
    address: std::net::SocketAddr,
    certificates: Arc<CertificateSet>,
    sockets: &mut RouterSockets<'_>,
) -> Option<(tokio::net::TcpListener, Arc<rustls::ServerConfig>)> {
    let tls = match berth_router::server_config(certificates) {
        Ok(tls) => tls,
        Err(error) => {
            tracing::warn!(%error, "router: HTTPS is off: the TLS settings cannot be built");
            return None;
        }
    };
    let listener = sockets
        .listen("https", address, "--https-listen", "HTTPS is off", 8443)
        .await?;
    Some((listener, tls))
}

/// How long a stopping server waits for the reconciles in progress to finish.
const RECONCILE_SHUTDOWN_PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);
/// How long a stopping server waits for a periodic job's run in progress.
const JOB_SHUTDOWN_PATIENCE: Duration = Duration::from_secs(10);
/// How long a stopping server waits for its builds to record that they were interrupted.
const BUILD_SHUTDOWN_PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);

/// The host names under which the engine reaches Berth's registry (docker trusts loopback
/// registries without TLS).
fn registry_hosts(listen: std::net::SocketAddr) -> Vec<String> {
    let port = listen.port();
    let mut hosts = vec![format!("127.0.0.1:{port}"), format!("localhost:{port}")];
    if !listen.ip().is_unspecified() && !listen.ip().is_loopback() {
        // The address Berth listens on comes first: builds push there (a server bound to
        // one address does not answer on 127.0.0.1), and other machines (Swarm nodes) pull
        // from there.
        hosts.insert(0, listen.to_string());
    }
    hosts
}

/// How often abandoned registry uploads are looked for.
const UPLOAD_EXPIRY_PERIOD: Duration = Duration::from_secs(600);
/// How often the hourly jobs run.
const HOUR: Duration = Duration::from_secs(3600);

/// Starts the periodic background jobs under the server's workers.
fn start_jobs(
    workers: &Workers,
    config: &ServerConfig,
    store: &Arc<dyn Store>,
    registry: &Arc<Registry>,
    builder: &Arc<dyn ImageBuilder>,
    clock: &berth_core::clock::Clock,
) {
    workers.spawn_periodic(
        jobs::RegistryUploadExpiry {
            registry: Arc::clone(registry),
        },
        Schedule::every(UPLOAD_EXPIRY_PERIOD),
    );
    if let Some(interval) = config.registry_gc_interval {
        workers.spawn_periodic(
            jobs::RegistryGc {
                store: Arc::clone(store),
                registry: Arc::clone(registry),
            },
            Schedule::every(interval),
        );
    }
    workers.spawn_periodic(
        jobs::Cleanup {
            store: Arc::clone(store),
            clock: Arc::clone(clock),
        },
        Schedule::every(HOUR),
    );
    workers.spawn_periodic(
        jobs::BuildImagePrune {
            builder: Arc::clone(builder),
            namespace: config.namespace.clone(),
        },
        Schedule::every(HOUR),
    );
}

/// How often every volume is measured and deleted volumes' data removed.
const VOLUME_KEEPER_PERIOD: Duration = Duration::from_secs(60);

/// The Swarm through `manager`: the nodes' own engines `--node-engines` gives, and on those
/// nodes the node agent, made of this executable, to read their hosts.
fn swarm_engine(config: &ServerConfig, manager: DockerEngine) -> Result<SwarmEngine, String> {
    let node_engines = node_engines(config)?;
    let reads_nodes = !node_engines.is_empty();
    let swarm = SwarmEngine::new(manager).with_node_engines(node_engines);
    if !reads_nodes {
        return Ok(swarm);
    }
    let (keep_running, read) = crate::commands::node_agent::agent_arguments();
    let work_dir = std::path::absolute(config.data_dir.join("node-agent"))
        .map_err(|e| format!("data-dir: {e}"))?;
    Ok(
        match NodeAgent::of_this_executable(work_dir, keep_running, read) {
            Ok(agent) => {
                tracing::info!(
                    image = agent.image(),
                    "the nodes' hosts are read by the node agent"
                );
                swarm.with_node_agent(agent)
            }
            Err(error) => {
                tracing::warn!(%error, "cannot make the node agent's image: other nodes show no CPU, memory or disk readings");
                swarm
            }
        },
    )
}

/// The Swarm nodes' own engines `--node-engines` gives, by node name.
fn node_engines(
    config: &ServerConfig,
) -> Result<std::collections::HashMap<String, DockerEngine>, String> {
    config
        .node_engines
        .iter()
        .map(|(node, url)| {
            DockerEngine::connect_with(Some(url))
                .map(|engine| (node.clone(), engine))
                .map_err(|e| format!("node-engines: the engine of {node}: {e}"))
        })
        .collect()
}

/// Connects to Docker, waiting (and saying so) while its socket does not exist yet, so a
/// server started before the engine comes up on its own once the engine is there.
async fn connect_docker(host: Option<&str>) -> DockerEngine {
    let mut attempt = 0u32;
    loop {
        match DockerEngine::connect_with(host) {
            Ok(engine) => return engine,
            Err(error) => {
                if attempt.is_multiple_of(12) {
                    tracing::warn!(
                        %error,
                        "waiting for the Docker Engine (start one with scripts/ensure-docker.sh, or pass --docker-host)"
                    );
                }
                attempt = attempt.wrapping_add(1);
                tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            }
        }
    }
}
