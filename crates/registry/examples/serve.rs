//! Serves a standalone registry for manual tries and benchmarks:
//! `cargo run --release -p berth-registry --example serve -- [ADDR] [DIR] [USER]`
//! (defaults 127.0.0.1:7700, ./registry-data, admin); the password comes from
//! `BERTH_REGISTRY_PASSWORD` (default `secret`) so it does not show in `ps`.

use std::sync::Arc;

use berth_registry::{Registry, RegistryConfig, StaticAuthorizer};

const USAGE: &str = "usage: serve [ADDR] [DIR] [USER]   (password in BERTH_REGISTRY_PASSWORD)";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return Ok(());
    }
    let addr = args
        .first()
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:7700".into());
    let dir = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "./registry-data".into());
    let user = args.get(2).cloned().unwrap_or_else(|| "admin".into());
    let password = std::env::var("BERTH_REGISTRY_PASSWORD").unwrap_or_else(|_| "secret".into());
    // Bind first: a bad address must not leave a data directory behind.
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .map_err(|e| format!("{addr}: {e}\n{USAGE}"))?;
    let registry = Registry::open(
        dir,
        Arc::new(StaticAuthorizer::new(user, password)),
        RegistryConfig::default(),
    )?;
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    eprintln!("registry listening on {addr}");
    axum::serve(listener, berth_registry::router(Arc::new(registry))).await?;
    Ok(())
}
