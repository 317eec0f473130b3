//! Issuance against the real ACME test server (Debian's `pebble`): pebble resolves the test
//! domain through `pebble-challtestsrv`'s DNS to 127.0.0.1 and fetches the HTTP-01 challenge
//! from Berth's router; the issued certificate is then served by the router's HTTPS listener to
//! a client that trusts only pebble's root, in front of a real local backend. A second order
//! renews it. Skipped (with a message) only when pebble is not installed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use berth_certs::{AcmeClient, AcmeSettings, PollPolicy, needs_renewal};
use berth_router::{
    AcmeChallenges, Backend, CertificateSet, RoutedApp, RouterConfig, RouterStats, RoutingTable,
    serve, serve_tls, server_config,
};
use berth_testkit::Pebble;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rustls::pki_types::CertificateDer;
use tokio::net::TcpListener;
use tokio::sync::watch;

const DOMAIN: &str = "web.team.berth.test";
/// Generous: only there so a broken setup fails the test instead of hanging it.
const PATIENCE: Duration = Duration::from_secs(60);

/// A backend that answers with the `X-Forwarded-Proto` it got.
async fn start_backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let service = service_fn(|request: Request<Incoming>| async move {
                    let proto = request
                        .headers()
                        .get("x-forwarded-proto")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("none")
                        .to_string();
                    Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(
                        format!("backend via {proto}"),
                    ))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// GETs `path` over HTTPS from `addr`, with SNI `server_name`, trusting only `root_pem`.
/// Returns the status, the body and the leaf certificate the server presented.
async fn https_get(
    addr: SocketAddr,
    server_name: &str,
    root_pem: &str,
    path: &str,
) -> Result<(StatusCode, String, CertificateDer<'static>), String> {
    let answer = berth_testkit::https_get(addr, server_name, root_pem, path).await?;
    let status = StatusCode::from_u16(answer.status).map_err(|e| e.to_string())?;
    Ok((status, answer.body, answer.leaf))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pebble_issues_through_the_router_and_the_router_serves_it() {
    if !Pebble::installed() {
        eprintln!(
            "SKIPPED: pebble is not installed (apt-get install pebble); the ACME issuance test \
             needs Debian's ACME test server"
        );
        return;
    }

    // The router: plain HTTP (ACME challenges) and HTTPS, in front of one backend.
    let backend = start_backend().await;
    let plain = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let plain_port = plain.local_addr().unwrap().port();
    let secure = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let secure_addr = secure.local_addr().unwrap();
    let challenges = AcmeChallenges::new();
    let config = RouterConfig {
        acme_challenges: challenges.clone(),
        https_port: secure_addr.port(),
        ..RouterConfig::default()
    };
    let (_table, routes) = watch::channel(Arc::new(RoutingTable::build(vec![RoutedApp {
        app: "web".into(),
        team: "team".into(),
        domains: vec![berth_router::RouteDomain::host(DOMAIN)],
        backends: vec![Backend {
            instance: "web-1".into(),
            address: backend.ip().to_string(),
            port: backend.port(),
            revision: 1,
        }],
        unavailable: "app web has no instance".into(),
        https_redirect: true,
        canary: None,
        hold: false,
        wake: false,
    }])));
    let certificates = CertificateSet::new();
    let stats = RouterStats::new();
    tokio::spawn(serve(
        plain,
        routes.clone(),
        config.clone(),
        stats.clone(),
        std::future::pending(),
    ));
    tokio::spawn(serve_tls(
        secure,
        server_config(certificates.clone()).unwrap(),
        routes,
        config,
        stats,
        std::future::pending(),
    ));

    // pebble, and its DNS answering 127.0.0.1 (and no IPv6) for every name.
    let pebble = Pebble::start(plain_port);
    let pebble_ca = pebble.https_ca_pem.clone();

    let mut settings = AcmeSettings::new(pebble.directory_url.clone());
    settings.contact = vec!["mailto:ops@berth.test".into()];
    settings.server_root_pem = Some(pebble_ca.clone());
    settings.poll = PollPolicy {
        initial_delay: Duration::from_millis(100),
        timeout: Duration::from_secs(30),
        total_timeout: PATIENCE,
    };
    let (client, _credentials) = AcmeClient::create_account(settings, challenges.clone())
        .await
        .expect("account created on pebble");
    let issued = client
        .issue(&[DOMAIN.to_string()])
        .await
        .expect("pebble issues a certificate after fetching the challenge from the router");
    assert!(
        challenges.is_empty(),
        "tokens are withdrawn after the order"
    );
    assert_eq!(issued.certificate.names, [DOMAIN]);
    assert!(
        issued.chain_pem.matches("BEGIN CERTIFICATE").count() >= 2,
        "pebble sends leaf and intermediate"
    );
    certificates.insert(issued.certificate.clone());

    // Pebble's issuing root, from its management interface.
    let pebble_root = pebble.issuing_root().await;

    let (status, body, leaf) = https_get(secure_addr, DOMAIN, &pebble_root, "/hello")
        .await
        .expect("an HTTPS request through the router");
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "backend via https")
    );
    assert_eq!(leaf, issued.certificate.key.cert[0]);
    // Unknown names are refused at the handshake: no other certificate is ever shown.
    let refused = https_get(secure_addr, "other.berth.test", &pebble_root, "/").await;
    assert!(refused.is_err(), "{refused:?}");

    // Renewal: once less than a third of its lifetime is left, a second order replaces it.
    let (not_before, not_after) = (issued.certificate.not_before, issued.certificate.not_after);
    let lifetime = not_after.duration_since(not_before).unwrap();
    assert!(!needs_renewal(
        not_before,
        not_after,
        SystemTime::now(),
        None
    ));
    let late = not_before + lifetime * 2 / 3 + Duration::from_secs(1);
    assert!(needs_renewal(not_before, not_after, late, None));
    let renewed = client
        .issue(&[DOMAIN.to_string()])
        .await
        .expect("a second order");
    assert_ne!(renewed.certificate.serial, issued.certificate.serial);
    assert_ne!(renewed.key_pem, issued.key_pem);
    certificates.insert(renewed.certificate.clone());
    let (status, _, leaf) = https_get(secure_addr, DOMAIN, &pebble_root, "/")
        .await
        .expect("an HTTPS request after renewal");
    assert_eq!(status, StatusCode::OK);
    assert_eq!(leaf, renewed.certificate.key.cert[0]);
    drop(pebble);
}
