//! Serves a registry for manual tries and benchmarks:
//! `cargo run --release -p berth-registry --example serve -- 127.0.0.1:7700 ./registry-data admin secret`

use std::sync::Arc;

use berth_registry::{Registry, RegistryConfig, StaticAuthorizer};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:7700".into());
    let dir = args.next().unwrap_or_else(|| "./registry-data".into());
    let user = args.next().unwrap_or_else(|| "admin".into());
    let password = args.next().unwrap_or_else(|| "secret".into());
    let registry = Registry::open(
        dir,
        Arc::new(StaticAuthorizer::new(user, password)),
        RegistryConfig::default(),
    )?;
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    eprintln!("registry listening on {addr}");
    axum::serve(listener, berth_registry::router(Arc::new(registry))).await?;
    Ok(())
}
