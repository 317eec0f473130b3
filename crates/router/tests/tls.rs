//! The router's HTTPS listener and its plain-HTTP TLS helpers over real sockets on 127.0.0.1:
//! SNI picks the certificate (unknown names and no SNI are refused at the handshake), a silent
//! client is dropped after the handshake timeout, `X-Forwarded-Proto` is the listener's, plain
//! HTTP redirects apps that ask for it and answers ACME challenges for any host.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use berth_router::{
    AcmeChallenges, Backend, CatchAll, CertificateSet, OnDemand, OnDemandIssuer, OnDemandSettings,
    RoutedApp, RouterConfig, RouterStats, RoutingTable, ValidatedCertificate, serve, serve_tls,
    server_config, validate_certificate,
};
use bytes::Bytes;
use futures::future::BoxFuture;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, RootCertStore};
use std::sync::Mutex;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsConnector;

/// Generous: only there so a broken router fails the test instead of hanging it.
const PATIENCE: Duration = Duration::from_secs(10);

/// A backend answering `<path> via <X-Forwarded-Proto>`.
async fn start_backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = service_fn(|request: Request<Incoming>| async move {
                    let proto = request
                        .headers()
                        .get("x-forwarded-proto")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("none")
                        .to_string();
                    let text = format!("{} via {proto}", request.uri().path());
                    Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(text))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

struct Router {
    plain: SocketAddr,
    secure: SocketAddr,
    roots: RootCertStore,
    challenges: AcmeChallenges,
}

/// The router with both listeners for `web.example.com` (redirecting) and `api.example.com`
/// (not), serving one certificate for `*.example.com` from a test CA.
/// A test CA: its certificate (to trust) and the issuer it makes.
fn test_ca() -> (
    rustls::pki_types::CertificateDer<'static>,
    Issuer<'static, KeyPair>,
) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name.push(DnType::CommonName, "test CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_der = ca.self_signed(&ca_key).unwrap().der().clone();
    (ca_der, Issuer::new(ca, ca_key))
}

/// A certificate for `domain` signed by `issuer`, validated.
fn signed_certificate(domain: &str, issuer: &Issuer<'_, KeyPair>) -> ValidatedCertificate {
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec![domain.to_string()])
        .unwrap()
        .signed_by(&key, issuer)
        .unwrap();
    validate_certificate(&leaf.pem(), &key.serialize_pem(), domain, SystemTime::now()).unwrap()
}

async fn start_router(handshake_timeout: Duration) -> Router {
    start_router_with(handshake_timeout, None).await
}

/// The router of [`start_router`]; with `on_demand`, `sites` is the catch-all app (its
/// instance at the given address, asked at `/ask`) and the HTTPS listener obtains certificates
/// for its hosts from the issuer made from the test CA.
async fn start_router_with(
    handshake_timeout: Duration,
    on_demand: Option<(SocketAddr, OnDemandSettings, Arc<TestIssuer>)>,
) -> Router {
    let (ca_der, issuer) = test_ca();
    let certificates = CertificateSet::new();
    certificates.insert(signed_certificate("*.example.com", &issuer));
    let mut roots = RootCertStore::empty();
    roots.add(ca_der).unwrap();

    let backend = start_backend().await;
    let app = |name: &str, redirect: bool| RoutedApp {
        app: name.into(),
        team: "team".into(),
        domains: vec![berth_router::RouteDomain::host(format!(
            "{name}.example.com"
        ))],
        backends: vec![Backend {
            instance: format!("{name}-1"),
            address: backend.ip().to_string(),
            port: backend.port(),
            revision: 1,
        }],
        unavailable: "no instance".into(),
        https_redirect: redirect,
        canary: None,
        hold: false,
        wake: false,
    };
    let mut apps = vec![app("web", true), app("api", false)];
    let mut catch_all = None;
    let mut on_demand_step = None;
    if let Some((ask_backend, settings, test_issuer)) = on_demand {
        let mut sites = app("sites", false);
        sites.backends[0].address = ask_backend.ip().to_string();
        sites.backends[0].port = ask_backend.port();
        apps.push(sites);
        catch_all = Some(CatchAll {
            team: "team".into(),
            app: "sites".into(),
            excluded: vec!["apps.test".into()],
            ask_path: Some("/ask".into()),
        });
        *test_issuer.ca.lock().unwrap() = Some(issuer);
        on_demand_step = Some(OnDemand::new(
            settings,
            test_issuer,
            Arc::clone(&certificates),
        ));
    }
    let (table, routes) = watch::channel(Arc::new(RoutingTable::build_with_catch_all(
        apps, catch_all,
    )));
    // The sender must outlive the test: keep it in a task that never ends.
    tokio::spawn(async move {
        table.closed().await;
    });
    let plain = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let secure = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let router = Router {
        plain: plain.local_addr().unwrap(),
        secure: secure.local_addr().unwrap(),
        roots,
        challenges: AcmeChallenges::new(),
    };
    let config = RouterConfig {
        https_port: 8443,
        tls_handshake_timeout: handshake_timeout,
        acme_challenges: router.challenges.clone(),
        on_demand: on_demand_step,
        ..RouterConfig::default()
    };
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
        server_config(certificates).unwrap(),
        routes,
        config,
        stats,
        std::future::pending(),
    ));
    router
}

async fn get<S>(stream: S, host: &str, path: &str) -> Response<String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let request = Request::builder()
        .uri(path)
        .header("host", host)
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = tokio::time::timeout(PATIENCE, sender.send_request(request))
        .await
        .expect("the router answers")
        .unwrap();
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    Response::from_parts(parts, String::from_utf8_lossy(&body).into_owned())
}

impl Router {
    async fn tls(
        &self,
        server_name: ServerName<'static>,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, std::io::Error> {
        let config = ClientConfig::builder_with_provider(berth_router::tls::ring_provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(self.roots.clone())
            .with_no_client_auth();
        let tcp = TcpStream::connect(self.secure).await.unwrap();
        tokio::time::timeout(
            PATIENCE,
            TlsConnector::from(Arc::new(config)).connect(server_name, tcp),
        )
        .await
        .expect("the handshake ends")
    }

    async fn https_get(&self, host: &str, path: &str) -> Response<String> {
        let name = ServerName::try_from(host.to_string()).unwrap();
        let stream = self.tls(name).await.expect("the handshake succeeds");
        get(stream, host, path).await
    }

    async fn http_get(&self, host: &str, path: &str) -> Response<String> {
        get(TcpStream::connect(self.plain).await.unwrap(), host, path).await
    }
}

#[tokio::test]
async fn https_requests_reach_the_app_with_the_certificate_for_their_name() {
    let router = start_router(Duration::from_secs(10)).await;
    for host in ["web.example.com", "api.example.com"] {
        let response = router.https_get(host, "/hello").await;
        assert_eq!(response.status(), StatusCode::OK, "{host}");
        // The HTTPS listener never redirects, and the backend hears https.
        assert_eq!(response.body(), "/hello via https", "{host}");
    }
    // The ACME path is an app path on HTTPS.
    let response = router
        .https_get("api.example.com", "/.well-known/acme-challenge/abc")
        .await;
    assert_eq!(response.body(), "/.well-known/acme-challenge/abc via https");
}

#[tokio::test]
async fn handshakes_without_a_known_name_are_refused() {
    let router = start_router(Duration::from_secs(10)).await;
    let cases: Vec<(&str, ServerName<'static>)> = vec![
        (
            "no SNI (an IP address)",
            ServerName::IpAddress("127.0.0.1".parse::<std::net::IpAddr>().unwrap().into()),
        ),
        (
            "unknown name",
            ServerName::try_from("shop.other.org").unwrap(),
        ),
        (
            "apex of the wildcard",
            ServerName::try_from("example.com").unwrap(),
        ),
        (
            "two labels below the wildcard",
            ServerName::try_from("a.b.example.com").unwrap(),
        ),
    ];
    for (case, name) in cases {
        let error = router.tls(name).await.expect_err(case);
        let text = error.to_string();
        assert!(
            text.contains("alert"),
            "{case}: the server refuses with an alert: {text}"
        );
    }
    // The listener is still serving.
    let response = router.https_get("web.example.com", "/").await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_client_that_never_completes_the_handshake_is_dropped() {
    let router = start_router(Duration::from_millis(200)).await;
    let mut silent = TcpStream::connect(router.secure).await.unwrap();
    let mut buffer = [0u8; 16];
    let read = tokio::time::timeout(PATIENCE, silent.read(&mut buffer))
        .await
        .expect("the router closes the connection");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
}

#[tokio::test]
async fn plain_http_redirects_apps_that_ask_and_answers_acme_challenges_for_any_host() {
    let router = start_router(Duration::from_secs(10)).await;
    let response = router.http_get("WEB.example.com:80", "/a/b?c=d").await;
    assert_eq!(response.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(
        response.headers()["location"],
        "https://web.example.com:8443/a/b?c=d"
    );
    let response = router.http_get("api.example.com", "/a").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.body(), "/a via http");

    router
        .challenges
        .publish("tok-en_1", "tok-en_1.thumbprint")
        .unwrap();
    // (host, path, status, body): any host, even one no app has; a redirecting app too.
    let cases: &[(&str, &str, StatusCode, Option<&str>)] = &[
        (
            "web.example.com",
            "/.well-known/acme-challenge/tok-en_1",
            StatusCode::OK,
            Some("tok-en_1.thumbprint"),
        ),
        (
            "nobody.example.org",
            "/.well-known/acme-challenge/tok-en_1",
            StatusCode::OK,
            Some("tok-en_1.thumbprint"),
        ),
        (
            "api.example.com",
            "/.well-known/acme-challenge/other",
            StatusCode::NOT_FOUND,
            None,
        ),
        (
            "api.example.com",
            "/.well-known/acme-challenge/",
            StatusCode::NOT_FOUND,
            None,
        ),
        (
            "api.example.com",
            "/.well-known/acme-challenge/tok-en_1/x",
            StatusCode::NOT_FOUND,
            None,
        ),
        (
            "api.example.com",
            "/.well-known/acme-challenge/..%2ftok-en_1",
            StatusCode::NOT_FOUND,
            None,
        ),
        (
            "api.example.com",
            "/.well-known/acme-challenge/tok-en_1?x=1",
            StatusCode::OK,
            Some("tok-en_1.thumbprint"),
        ),
    ];
    for (host, path, status, body) in cases {
        let response = router.http_get(host, path).await;
        assert_eq!(response.status(), *status, "{host}{path}");
        if let Some(body) = body {
            assert_eq!(response.body(), body, "{host}{path}");
        }
    }
    router.challenges.withdraw("tok-en_1");
    let response = router
        .http_get("web.example.com", "/.well-known/acme-challenge/tok-en_1")
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

/// An issuer signing with the test CA, counting what it issues and what it is told was refused.
#[derive(Default)]
struct TestIssuer {
    ca: Mutex<Option<Issuer<'static, KeyPair>>>,
    issued: Mutex<Vec<String>>,
    refused: Mutex<Vec<(String, String)>>,
}

impl OnDemandIssuer for TestIssuer {
    fn issue<'a>(
        &'a self,
        host: &'a str,
        _team: &'a str,
        app: &'a str,
    ) -> BoxFuture<'a, Result<ValidatedCertificate, String>> {
        Box::pin(async move {
            assert_eq!(app, "sites");
            self.issued.lock().unwrap().push(host.to_string());
            let ca = self.ca.lock().unwrap();
            Ok(signed_certificate(host, ca.as_ref().expect("a CA")))
        })
    }

    fn refused(&self, host: &str, _team: &str, _app: &str, reason: &str) {
        self.refused
            .lock()
            .unwrap()
            .push((host.to_string(), reason.to_string()));
    }
}

/// The catch-all app's instance: `/ask?domain=good…` answers 200, any other domain 403 (every question is noted); other paths answer `sites: <host>`.
async fn start_ask_backend(asked: Arc<Mutex<Vec<String>>>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let asked = Arc::clone(&asked);
            tokio::spawn(async move {
                let service = service_fn(move |request: Request<Incoming>| {
                    let asked = Arc::clone(&asked);
                    async move {
                        let mut response = Response::new(Full::new(Bytes::new()));
                        if request.uri().path() == "/ask" {
                            let query = request.uri().query().unwrap_or("").to_string();
                            if !query.starts_with("domain=good") {
                                *response.status_mut() = StatusCode::FORBIDDEN;
                            }
                            asked.lock().unwrap().push(query);
                        } else {
                            let host = request.headers()["host"].to_str().unwrap().to_string();
                            *response.body_mut() = Full::new(Bytes::from(format!("sites: {host}")));
                        }
                        Ok::<_, std::convert::Infallible>(response)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn the_catch_all_app_gets_certificates_at_the_handshake_for_hosts_it_approves() {
    let asked = Arc::new(Mutex::new(Vec::new()));
    let ask_backend = start_ask_backend(Arc::clone(&asked)).await;
    let issuer = Arc::new(TestIssuer::default());
    let settings = OnDemandSettings {
        max_orders: 2,
        ..OnDemandSettings::default()
    };
    let router =
        start_router_with(PATIENCE, Some((ask_backend, settings, Arc::clone(&issuer)))).await;

    // The first handshake for an approved host gets its certificate, issued on the spot.
    let response = router.https_get("good.customer.test", "/").await;
    assert_eq!(response.body(), "sites: good.customer.test");
    let response = router.https_get("good.customer.test", "/again").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(*issuer.issued.lock().unwrap(), ["good.customer.test"]);

    // A host the app denies is refused at the handshake, and not asked about again for a while.
    for _ in 0..2 {
        let name = ServerName::try_from("bad.customer.test").unwrap();
        let error = router.tls(name).await.expect_err("refused");
        assert!(error.to_string().contains("alert"), "{error}");
    }
    assert_eq!(
        *asked.lock().unwrap(),
        ["domain=good.customer.test", "domain=bad.customer.test"]
    );
    let refused = issuer.refused.lock().unwrap().clone();
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert!(refused.iter().all(|(host, _)| host == "bad.customer.test"));
    assert!(refused[0].1.contains("403"), "{refused:?}");

    // Names under the apps domain never reach the catch-all: refused without asking.
    let name = ServerName::try_from("x.team.apps.test").unwrap();
    router.tls(name).await.expect_err("refused");
    assert_eq!(asked.lock().unwrap().len(), 2);

    // Other apps' certificates are untouched, and the limit on orders holds (2 per hour here):
    // past it, an approved host is refused without an order.
    assert_eq!(
        router.https_get("web.example.com", "/").await.status(),
        StatusCode::OK
    );
    let response = router.https_get("good2.customer.test", "/").await;
    assert_eq!(response.body(), "sites: good2.customer.test");
    let name = ServerName::try_from("good3.customer.test").unwrap();
    router.tls(name).await.expect_err("over the limit");
    assert_eq!(issuer.issued.lock().unwrap().len(), 2);
    let last = issuer.refused.lock().unwrap().last().cloned().unwrap();
    assert_eq!(last.0, "good3.customer.test");
    assert!(last.1.contains("limit"), "{last:?}");
}
