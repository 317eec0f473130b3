//! Berth's router alone, without the server, for measuring its data path against
//! `bare_proxy.rs` and nginx with the same backends: one app on one host name with the given
//! instances, Berth's default router settings, one router thread per core.
//!
//! `cargo run --release -p berth-router --example router_proxy -- 127.0.0.1:8080 web.example 10.0.0.2:8080 10.0.0.3:8080`
//! (then e.g. `wrk -t2 -c64 -d10s -H 'Host: web.example' http://127.0.0.1:8080/`).

use std::net::SocketAddr;
use std::sync::Arc;

use berth_router::{
    Backend, Listener, RouteDomain, RoutedApp, RouterConfig, RouterStats, RoutingTable,
    serve_on_threads,
};
use tokio::sync::watch;

fn main() {
    let mut args = std::env::args().skip(1);
    let usage = "usage: router_proxy LISTEN HOST BACKEND...";
    let listen: SocketAddr = args.next().and_then(|a| a.parse().ok()).expect(usage);
    let host = args.next().expect(usage);
    let backends: Vec<Backend> = args
        .enumerate()
        .map(|(index, address)| {
            let address: SocketAddr = address.parse().expect("a backend address");
            Backend {
                instance: format!("web-{}", index + 1),
                address: address.ip().to_string(),
                port: address.port(),
                revision: 1,
            }
        })
        .collect();
    assert!(!backends.is_empty(), "{usage}");
    let table = RoutingTable::build(vec![RoutedApp {
        app: "web".into(),
        team: "default".into(),
        domains: vec![RouteDomain::host(&host)],
        backends,
        unavailable: "app web has no ready instance".into(),
        https_redirect: false,
        canary: None,
        hold: false,
        wake: false,
    }]);
    let threads = std::env::var("ROUTER_THREADS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async move {
        let socket = tokio::net::TcpListener::bind(listen).await.expect("bind");
        let (_table_sender, table) = watch::channel(Arc::new(table));
        let (_stop, shutdown) = watch::channel(false);
        serve_on_threads(
            threads,
            vec![Listener { socket, tls: None }],
            table,
            RouterConfig::default(),
            RouterStats::new(),
            shutdown,
        )
        .expect("router threads")
        .await;
    });
}
