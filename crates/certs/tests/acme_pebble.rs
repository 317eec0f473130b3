//! Issuance against the real ACME test server (Debian's `pebble`): pebble resolves the test
//! domain through `pebble-challtestsrv`'s DNS to 127.0.0.1 and fetches the HTTP-01 challenge
//! from Berth's router; the issued certificate is then served by the router's HTTPS listener to
//! a client that trusts only pebble's root, in front of a real local backend. A second order
//! renews it. Skipped (with a message) only when pebble is not installed.

use std::net::{SocketAddr, TcpListener as StdTcpListener, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use berth_certs::{AcmeClient, AcmeSettings, PollPolicy, needs_renewal};
use berth_router::{
    AcmeChallenges, Backend, CertificateSet, RoutedApp, RouterConfig, RouterStats, RoutingTable,
    serve, serve_tls, server_config,
};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::CertificateDer;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

const DOMAIN: &str = "web.team.berth.test";
/// Generous: only there so a broken setup fails the test instead of hanging it.
const PATIENCE: Duration = Duration::from_secs(60);

/// Child processes killed when the test ends, however it ends.
struct Processes(Vec<Child>);

impl Drop for Processes {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn installed(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// A loopback port free for TCP and UDP at the time of asking.
fn free_port() -> u16 {
    loop {
        let tcp = StdTcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A CA and a certificate for `localhost` it signed: pebble's own HTTPS (the Debian package
/// ships no test certificate). Returns the CA's PEM.
fn pebble_https_certificate(dir: &Path) -> String {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name
        .push(DnType::CommonName, "berth test: pebble HTTPS CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
    ca_pem
}

async fn wait_for_port(port: u16, what: &str) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} did not listen on {port}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

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
    if !installed("pebble") {
        eprintln!(
            "SKIPPED: pebble is not installed (apt-get install pebble); the ACME issuance test \
             needs Debian's ACME test server"
        );
        return;
    }
    assert!(
        installed("pebble-challtestsrv"),
        "pebble is installed without pebble-challtestsrv, which the test's DNS needs"
    );
    let dir = tempfile::tempdir().unwrap();
    let pebble_ca = pebble_https_certificate(dir.path());

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
        }],
        unavailable: "app web has no instance".into(),
        https_redirect: true,
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
    let (acme_port, management_port, dns_port, challtest_management) =
        (free_port(), free_port(), free_port(), free_port());
    let mut processes = Processes(Vec::new());
    processes.0.push(
        Command::new("pebble-challtestsrv")
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .args(["-dns01", &format!("127.0.0.1:{dns_port}")])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-management", &format!("127.0.0.1:{challtest_management}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pebble-challtestsrv starts"),
    );
    let pebble_config = pebble_config(dir.path(), acme_port, management_port, plain_port);
    std::fs::write(dir.path().join("pebble.json"), pebble_config).unwrap();
    processes.0.push(
        Command::new("pebble")
            .arg("-config")
            .arg(dir.path().join("pebble.json"))
            .args(["-dnsserver", &format!("127.0.0.1:{dns_port}")])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_VA_ALWAYS_VALID", "0")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .env("PEBBLE_AUTHZREUSE", "0")
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pebble starts"),
    );
    wait_for_port(challtest_management, "pebble-challtestsrv").await;
    wait_for_port(acme_port, "pebble").await;
    wait_for_port(management_port, "pebble's management interface").await;

    let mut settings = AcmeSettings::new(format!("https://localhost:{acme_port}/dir"));
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
    let management: SocketAddr = ([127, 0, 0, 1], management_port).into();
    let (status, pebble_root, _) = https_get(management, "localhost", &pebble_ca, "/roots/0")
        .await
        .expect("pebble's root");
    assert_eq!(status, StatusCode::OK);

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
    assert!(!needs_renewal(not_before, not_after, SystemTime::now()));
    let late = not_before + lifetime * 2 / 3 + Duration::from_secs(1);
    assert!(needs_renewal(not_before, not_after, late));
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
    drop(processes);
}

/// pebble's configuration: its ports, its HTTPS certificate, and the router's plain port as
/// the port HTTP-01 challenges are fetched from.
fn pebble_config(dir: &Path, acme: u16, management: u16, http: u16) -> String {
    let tls_port = free_port();
    format!(
        r#"{{"pebble": {{
  "listenAddress": "127.0.0.1:{acme}",
  "managementListenAddress": "127.0.0.1:{management}",
  "certificate": "{cert}",
  "privateKey": "{key}",
  "httpPort": {http},
  "tlsPort": {tls_port},
  "ocspResponderURL": "",
  "externalAccountBindingRequired": false
}}}}"#,
        cert = dir.join("cert.pem").display(),
        key = dir.join("key.pem").display(),
    )
}
