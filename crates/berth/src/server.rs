//! `berth server`: opens the store, connects the engine, starts the controller and serves HTTP.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use berth_api::ApiState;
use berth_controller::{Controller, ControllerConfig, system_clock};
use berth_core::backoff::Backoff;
use berth_engine::{DockerEngine, Engine};
use berth_store::{SqliteStore, Store};
use rand::RngCore;
use tracing_subscriber::EnvFilter;

use crate::config::ServerConfig;

/// Reads the admin token, or makes one on first start (printed once, stored with mode 0600).
fn admin_token(data_dir: &Path) -> Result<String, String> {
    let path = data_dir.join("admin-token");
    match std::fs::read_to_string(&path) {
        Ok(token) if !token.trim().is_empty() => return Ok(token.trim().to_string()),
        Ok(_) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(format!("cannot read {}: {error}", path.display())),
    }
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
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
        "Berth admin token (shown once; also stored in {}):\n\n    {token}\n",
        path.display()
    );
    println!("Use it with:  export BERTH_TOKEN={token}\n");
    Ok(token)
}

pub async fn run(config: ServerConfig) -> Result<(), String> {
    let filter = EnvFilter::try_new(&config.log).map_err(|e| format!("log: {e}"))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .init();

    std::fs::create_dir_all(&config.data_dir).map_err(|e| {
        format!(
            "cannot create data directory {}: {e}",
            config.data_dir.display()
        )
    })?;
    let token = admin_token(&config.data_dir)?;
    let database = config.data_dir.join("berth.db");
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(&database)
            .await
            .map_err(|e| format!("cannot open database {}: {e}", database.display()))?,
    );
    let engine: Arc<dyn Engine> = Arc::new(connect_docker(config.docker_host.as_deref()).await);
    match engine.info().await {
        Ok(info) => {
            tracing::info!(version = %info.version, node = %info.node_name, "connected to {}", info.name)
        }
        Err(error) => {
            tracing::warn!(%error, "the Docker Engine does not answer yet; Berth keeps retrying (run scripts/ensure-docker.sh to start one)")
        }
    }
    let clock = system_clock();
    store
        .ensure_team(berth_core::DEFAULT_TEAM, clock())
        .await
        .map_err(|e| e.to_string())?;

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
        ..ControllerConfig::default()
    };
    let controller = Controller::new(
        Arc::clone(&store),
        Arc::clone(&engine),
        controller_config,
        Arc::clone(&clock),
    );
    controller.start();

    let state = ApiState {
        store,
        engine,
        controller,
        clock,
        admin_token: token.into(),
        revision_history: config.revision_history,
        event_history: config.event_history,
    };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    tracing::info!(
        listen = %config.listen,
        data_dir = %config.data_dir.display(),
        namespace = %config.namespace,
        "berth server is up"
    );
    axum::serve(listener, berth_api::router(state))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|e| format!("server: {e}"))?;
    tracing::info!(
        "berth server stopped; app instances keep running and are adopted on the next start"
    );
    Ok(())
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

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
