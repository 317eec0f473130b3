//! The router's data path over real sockets on 127.0.0.1: small hyper backends that answer with
//! their own name, the router in front of them, and a hyper client (or a raw socket) in front.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use berth_router::{
    AccessLog, AppCounters, Backend, RouteDomain, RoutedApp, RouterConfig, RouterStats,
    RoutingTable, serve,
};
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc, oneshot, watch};

/// Generous: only there so a broken router fails the test instead of hanging it.
const PATIENCE: Duration = Duration::from_secs(10);

type TestBody = BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

fn full(text: impl Into<Bytes>) -> TestBody {
    Full::new(text.into())
        .map_err(|never| match never {})
        .boxed()
}

/// A backend answering with its name; a few paths do more (see `answer`).
struct TestBackend {
    name: &'static str,
    addr: SocketAddr,
    /// TCP connections accepted.
    connections: Arc<AtomicUsize>,
    /// Requests received.
    requests: Arc<AtomicUsize>,
    /// `/stream` sends its second chunk when this is notified.
    release: Arc<Notify>,
}

impl TestBackend {
    async fn start(name: &'static str) -> TestBackend {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let backend = TestBackend {
            name,
            addr: listener.local_addr().unwrap(),
            connections: Arc::default(),
            requests: Arc::default(),
            release: Arc::default(),
        };
        let (connections, requests, release) = (
            backend.connections.clone(),
            backend.requests.clone(),
            backend.release.clone(),
        );
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                connections.fetch_add(1, Ordering::SeqCst);
                let (requests, release) = (requests.clone(), release.clone());
                let service = service_fn(move |req| {
                    requests.fetch_add(1, Ordering::SeqCst);
                    answer(name, req, release.clone())
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .with_upgrades(),
                );
            }
        });
        backend
    }

    fn backend(&self) -> Backend {
        Backend {
            instance: self.name.to_string(),
            address: self.addr.ip().to_string(),
            port: self.addr.port(),
            revision: 1,
        }
    }
}

async fn answer(
    name: &'static str,
    mut req: Request<Incoming>,
    release: Arc<Notify>,
) -> Result<Response<TestBody>, Infallible> {
    let response = match req.uri().path() {
        // The request's headers, one "name: value" a line.
        "/headers" => {
            let mut text = String::new();
            for (header, value) in req.headers() {
                text.push_str(&format!(
                    "{header}: {}\n",
                    String::from_utf8_lossy(value.as_bytes())
                ));
            }
            Response::new(full(text))
        }
        // Hop-by-hop headers in the response.
        "/hop" => Response::builder()
            .header("connection", "x-hop")
            .header("x-hop", "1")
            .header("keep-alive", "timeout=5")
            .header("proxy-authenticate", "Basic")
            .header("x-end-to-end", "1")
            .body(full(name))
            .unwrap(),
        // Two chunks; the second only when the test says so.
        "/stream" => {
            let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, Infallible>>(2);
            tokio::spawn(async move {
                let _ = tx
                    .send(Ok(Frame::data(Bytes::from(format!("{name}: first\n")))))
                    .await;
                release.notified().await;
                let _ = tx
                    .send(Ok(Frame::data(Bytes::from(format!("{name}: second\n")))))
                    .await;
            });
            let stream = futures::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|frame| (frame, rx))
            });
            Response::builder()
                .header("content-type", "text/event-stream")
                .body(
                    StreamBody::new(stream)
                        .map_err(|never| match never {})
                        .boxed(),
                )
                .unwrap()
        }
        // Never answers in time.
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Response::new(full(name))
        }
        // The request body's length.
        "/echo" => {
            let length = match req.into_body().collect().await {
                Ok(body) => body.to_bytes().len().to_string(),
                Err(err) => format!("body error: {err}"),
            };
            Response::new(full(format!("{name} {length}")))
        }
        // A WebSocket-like upgrade: after 101, echoes bytes back prefixed with the name.
        "/ws" => {
            let upgrade = hyper::upgrade::on(&mut req);
            tokio::spawn(async move {
                let Ok(upgraded) = upgrade.await else { return };
                let mut io = TokioIo::new(upgraded);
                let mut buf = [0u8; 1024];
                while let Ok(n) = io.read(&mut buf).await {
                    if n == 0 {
                        return;
                    }
                    let mut reply = format!("{name}:").into_bytes();
                    reply.extend_from_slice(&buf[..n]);
                    if io.write_all(&reply).await.is_err() {
                        return;
                    }
                }
            });
            Response::builder()
                .status(StatusCode::SWITCHING_PROTOCOLS)
                .header("connection", "upgrade")
                .header("upgrade", "websocket")
                .body(full(""))
                .unwrap()
        }
        _ => Response::new(full(name)),
    };
    Ok(response)
}

fn app(name: &str, hosts: &[&str], backends: &[&TestBackend]) -> RoutedApp {
    RoutedApp {
        app: name.to_string(),
        team: "team".to_string(),
        domains: hosts.iter().map(|h| RouteDomain::host(*h)).collect(),
        backends: backends.iter().map(|b| b.backend()).collect(),
        unavailable: format!("app {name} is rolling out: no instance is ready yet"),
        https_redirect: false,
        canary: None,
        hold: false,
        wake: false,
    }
}

struct TestRouter {
    addr: SocketAddr,
    table: watch::Sender<Arc<RoutingTable>>,
    stats: RouterStats,
    client: Client<HttpConnector, TestBody>,
    /// Dropping it shuts the router down.
    shutdown: oneshot::Sender<()>,
}

impl TestRouter {
    async fn start(apps: Vec<RoutedApp>, config: RouterConfig) -> TestRouter {
        TestRouter::start_with(apps, config, RouterStats::new()).await
    }

    async fn start_with(
        apps: Vec<RoutedApp>,
        config: RouterConfig,
        stats: RouterStats,
    ) -> TestRouter {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (table, rx) = watch::channel(Arc::new(RoutingTable::build(apps)));
        let (shutdown, stop) = oneshot::channel::<()>();
        tokio::spawn(serve(listener, rx, config, stats.clone(), async move {
            let _ = stop.await;
        }));
        TestRouter {
            addr,
            table,
            stats,
            client: Client::builder(TokioExecutor::new()).build_http(),
            shutdown,
        }
    }

    fn swap(&self, apps: Vec<RoutedApp>) {
        self.table.send_replace(Arc::new(RoutingTable::build(apps)));
    }

    async fn send(
        &self,
        method: Method,
        host: &str,
        path: &str,
        body: TestBody,
    ) -> Response<Incoming> {
        let request = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr))
            .header("host", host)
            .body(body)
            .unwrap();
        self.send_request(request).await
    }

    async fn send_request(&self, request: Request<TestBody>) -> Response<Incoming> {
        tokio::time::timeout(PATIENCE, self.client.request(request))
            .await
            .expect("the router answers")
            .expect("the request goes through")
    }

    async fn get(&self, host: &str, path: &str) -> (StatusCode, String) {
        let response = self.send(Method::GET, host, path, full("")).await;
        let status = response.status();
        (status, text(response).await)
    }
}

async fn text(response: Response<Incoming>) -> String {
    let body = tokio::time::timeout(PATIENCE, response.into_body().collect())
        .await
        .expect("the body ends")
        .expect("the body arrives");
    String::from_utf8(body.to_bytes().to_vec()).unwrap()
}

async fn next_chunk(body: &mut Incoming) -> String {
    let frame = tokio::time::timeout(PATIENCE, body.frame())
        .await
        .expect("a chunk arrives")
        .expect("the body goes on")
        .expect("no body error");
    String::from_utf8(frame.into_data().expect("data").to_vec()).unwrap()
}

/// A port nothing listens on.
async fn closed_port() -> TestBackend {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    TestBackend {
        name: "closed",
        addr,
        connections: Arc::default(),
        requests: Arc::default(),
        release: Arc::default(),
    }
}

/// A port that accepts connections and closes them without answering.
async fn hang_up_port() -> TestBackend {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend = TestBackend {
        name: "hang-up",
        addr: listener.local_addr().unwrap(),
        connections: Arc::default(),
        requests: Arc::default(),
        release: Arc::default(),
    };
    let connections = backend.connections.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            connections.fetch_add(1, Ordering::SeqCst);
            // Read the request, then close: the router sees the connection end with no answer.
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf).await;
            drop(stream);
        }
    });
    backend
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn routes_by_host_and_takes_turns_across_idle_instances() {
    let (web1, web2, api) = (
        TestBackend::start("web-1").await,
        TestBackend::start("web-2").await,
        TestBackend::start("api-1").await,
    );
    let router = TestRouter::start(
        vec![
            app("web", &["web.example.com"], &[&web1, &web2]),
            app("api", &["api.example.com", "api.localhost"], &[&api]),
        ],
        RouterConfig::default(),
    )
    .await;
    let mut web = Vec::new();
    for _ in 0..4 {
        let (status, body) = router.get("web.example.com", "/").await;
        assert_eq!(status, StatusCode::OK);
        web.push(body);
    }
    assert_eq!(web, ["web-1", "web-2", "web-1", "web-2"]);
    for host in [
        "api.example.com",
        "API.Example.com:8080",
        "api.localhost.",
        "api.localhost:1",
    ] {
        assert_eq!(
            router.get(host, "/").await,
            (StatusCode::OK, "api-1".to_string()),
            "{host}"
        );
    }
}

#[tokio::test]
async fn unknown_and_invalid_hosts_get_a_page_not_a_backend() {
    let web = TestBackend::start("web-1").await;
    let router = TestRouter::start(
        vec![app("web", &["web.example.com"], &[&web])],
        RouterConfig::default(),
    )
    .await;
    let (status, body) = router.get("Other.Example.com:80", "/").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        body.contains("no app answers to other.example.com at this path"),
        "{body}"
    );
    for host in [
        "<script>.example.com",
        "web.example.com/x",
        "user@web.example.com",
        "[::1]:80",
        "",
    ] {
        let (status, body) = router.get(host, "/").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{host:?}");
        assert!(!body.contains("<script>"), "{body}");
    }
    assert_eq!(web.requests.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn an_app_without_ready_instance_gets_503_with_its_state() {
    let router = TestRouter::start(
        vec![app("web", &["web.example.com"], &[])],
        RouterConfig::default(),
    )
    .await;
    let response = router
        .send(Method::GET, "web.example.com", "/", full(""))
        .await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "1");
    let body = text(response).await;
    assert!(
        body.contains("app web is rolling out: no instance is ready yet"),
        "{body}"
    );
}

fn holding(app: RoutedApp) -> RoutedApp {
    RoutedApp { hold: true, ..app }
}

#[tokio::test]
async fn requests_for_an_app_bringing_up_an_instance_wait_for_it() {
    let web = TestBackend::start("web-1").await;
    let router = Arc::new(
        TestRouter::start(
            vec![holding(app("web", &["web.example.com"], &[]))],
            RouterConfig::default(),
        )
        .await,
    );
    let held: Vec<_> = (0..5)
        .map(|_| {
            let router = Arc::clone(&router);
            tokio::spawn(async move { router.get("web.example.com", "/").await })
        })
        .collect();
    // Every request is in progress (held), none answered yet.
    eventually("the requests are held", || {
        router
            .stats
            .app_counters()
            .iter()
            .any(|c| c.app == "web" && c.in_flight == 5 && c.held == 5)
    })
    .await;
    assert!(held.iter().all(|task| !task.is_finished()));
    router.swap(vec![holding(app("web", &["web.example.com"], &[&web]))]);
    for task in held {
        assert_eq!(task.await.unwrap(), (StatusCode::OK, "web-1".to_string()));
    }
    assert_eq!(web.requests.load(Ordering::SeqCst), 5);
    let counters = settled(&router.stats).await;
    let web = counters_of(&counters, "web").unwrap();
    assert_eq!((web.held, web.held_total, web.responses[1]), (0, 5, 5));
}

/// Records the apps the router asks to wake.
#[derive(Debug, Default)]
struct Wakes(std::sync::Mutex<Vec<(String, String)>>);

impl berth_router::Wake for Wakes {
    fn wake(&self, team: &str, app: &str) {
        self.0.lock().unwrap().push((team.into(), app.into()));
    }
}

#[tokio::test]
async fn requests_for_an_app_scaled_to_0_when_idle_wake_it_and_wait() {
    let wakes = Arc::new(Wakes::default());
    let config = RouterConfig {
        wake: Some(Arc::clone(&wakes) as Arc<dyn berth_router::Wake>),
        ..RouterConfig::default()
    };
    let idle = |backends: &[&TestBackend]| RoutedApp {
        wake: true,
        ..holding(app("web", &["web.example.com"], backends))
    };
    let web = TestBackend::start("web-1").await;
    let router = Arc::new(TestRouter::start(vec![idle(&[])], config).await);
    let held: Vec<_> = (0..3)
        .map(|_| {
            let router = Arc::clone(&router);
            tokio::spawn(async move { router.get("web.example.com", "/").await })
        })
        .collect();
    eventually("the requests are held", || {
        router.stats.app_counters().iter().any(|c| c.held == 3)
    })
    .await;
    let asked = wakes.0.lock().unwrap().clone();
    assert_eq!(asked.len(), 3, "every request asks (the waker coalesces)");
    assert!(
        asked
            .iter()
            .all(|a| *a == ("team".to_string(), "web".to_string()))
    );
    router.swap(vec![idle(&[&web])]);
    for task in held {
        assert_eq!(task.await.unwrap().0, StatusCode::OK);
    }
    // With a ready instance nothing asks for a wake.
    assert_eq!(router.get("web.example.com", "/").await.0, StatusCode::OK);
    assert_eq!(wakes.0.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn a_held_request_gets_503_after_the_hold_timeout_or_when_the_app_stops_holding() {
    let config = RouterConfig {
        hold_timeout: Duration::from_millis(200),
        ..RouterConfig::default()
    };
    let router = Arc::new(
        TestRouter::start(vec![holding(app("web", &["web.example.com"], &[]))], config).await,
    );
    let (status, body) = router.get("web.example.com", "/").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        body.contains(
            "app web is rolling out: no instance is ready yet \
             (no instance became ready within 0.2 s)"
        ),
        "{body}"
    );

    let config = RouterConfig {
        hold_timeout: PATIENCE * 2,
        ..RouterConfig::default()
    };
    let router = Arc::new(
        TestRouter::start(vec![holding(app("web", &["web.example.com"], &[]))], config).await,
    );
    let waiting = {
        let router = Arc::clone(&router);
        tokio::spawn(async move { router.get("web.example.com", "/").await })
    };
    eventually("the request is held", || {
        router.stats.app_counters().iter().any(|c| c.held == 1)
    })
    .await;
    let mut refused = app("web", &["web.example.com"], &[]);
    refused.unavailable = "app web is crash-looping".to_string();
    router.swap(vec![refused]);
    let (status, body) = waiting.await.unwrap();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("app web is crash-looping"), "{body}");
}

#[tokio::test]
async fn an_app_holds_a_bounded_number_of_requests() {
    let config = RouterConfig {
        hold_timeout: PATIENCE * 2,
        max_held_per_app: 2,
        ..RouterConfig::default()
    };
    let web = TestBackend::start("web-1").await;
    let router = Arc::new(
        TestRouter::start(vec![holding(app("web", &["web.example.com"], &[]))], config).await,
    );
    let held: Vec<_> = (0..2)
        .map(|_| {
            let router = Arc::clone(&router);
            tokio::spawn(async move { router.get("web.example.com", "/").await })
        })
        .collect();
    eventually("two requests are held", || {
        router.stats.app_counters().iter().any(|c| c.held == 2)
    })
    .await;
    let (status, body) = router.get("web.example.com", "/").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        body.contains("(2 requests are already waiting for it)"),
        "{body}"
    );
    router.swap(vec![holding(app("web", &["web.example.com"], &[&web]))]);
    for task in held {
        assert_eq!(task.await.unwrap().0, StatusCode::OK);
    }
}

#[tokio::test]
async fn the_backend_sees_forwarded_headers_and_no_hop_by_hop_headers() {
    let web = TestBackend::start("web-1").await;
    let router = TestRouter::start(
        vec![app("web", &["web.example.com"], &[&web])],
        RouterConfig::default(),
    )
    .await;
    let request = Request::builder()
        .uri(format!("http://{}/headers", router.addr))
        .header("host", "Web.Example.com:8080")
        .header("x-forwarded-for", "203.0.113.9")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "evil.example.com")
        .header("connection", "keep-alive, x-secret")
        .header("x-secret", "1")
        .header("keep-alive", "timeout=5")
        .header("proxy-authorization", "Basic eDp5")
        .header("te", "trailers")
        .header("upgrade", "h2c")
        .header("x-end-to-end", "kept")
        .body(full(""))
        .unwrap();
    let seen = text(router.send_request(request).await).await;
    let lines: Vec<&str> = seen.lines().collect();
    for want in [
        "host: Web.Example.com:8080",
        "x-forwarded-for: 203.0.113.9, 127.0.0.1",
        "x-forwarded-proto: http",
        "x-forwarded-host: Web.Example.com:8080",
        "x-end-to-end: kept",
    ] {
        assert!(lines.contains(&want), "{want:?} not in:\n{seen}");
    }
    for gone in [
        "x-secret",
        "keep-alive:",
        "proxy-authorization",
        "te:",
        "upgrade",
        "evil",
    ] {
        assert!(!seen.contains(gone), "{gone:?} in:\n{seen}");
    }

    let response = router
        .send(Method::GET, "web.example.com", "/hop", full(""))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers();
    assert_eq!(headers["x-end-to-end"], "1");
    for gone in ["x-hop", "keep-alive", "proxy-authenticate"] {
        assert!(!headers.contains_key(gone), "{gone} in {headers:?}");
    }
}

#[tokio::test]
async fn requests_go_to_the_instance_with_fewer_requests_outstanding() {
    let (web1, web2) = (
        TestBackend::start("web-1").await,
        TestBackend::start("web-2").await,
    );
    let router = TestRouter::start(
        vec![app("web", &["web.example.com"], &[&web1, &web2])],
        RouterConfig::default(),
    )
    .await;
    // A long response keeps one instance busy...
    let response = router
        .send(Method::GET, "web.example.com", "/stream", full(""))
        .await;
    let mut stream = response.into_body();
    let busy = next_chunk(&mut stream).await;
    let (busy, idle, holder) = if busy.starts_with("web-1") {
        ("web-1", "web-2", &web1)
    } else {
        ("web-2", "web-1", &web2)
    };
    // ...so every request meanwhile goes to the other one (round robin would alternate).
    for _ in 0..4 {
        assert_eq!(
            router.get("web.example.com", "/").await,
            (StatusCode::OK, idle.to_string()),
            "while {busy} streams"
        );
    }
    holder.release.notify_one();
    assert!(next_chunk(&mut stream).await.starts_with(busy));
    drop(stream);
    let (ip, port) = (holder.addr.ip().to_string(), holder.addr.port());
    eventually("the stream ends", || router.stats.in_flight(&ip, port) == 0).await;
    // Both idle again: they take turns.
    let mut seen = Vec::new();
    for _ in 0..2 {
        seen.push(router.get("web.example.com", "/").await.1);
    }
    seen.sort();
    assert_eq!(seen, ["web-1", "web-2"]);
}

#[tokio::test]
async fn a_streamed_response_arrives_in_pieces_and_counts_as_in_flight_until_it_ends() {
    let web = TestBackend::start("web-1").await;
    let router = TestRouter::start(
        vec![app("web", &["web.example.com"], &[&web])],
        RouterConfig::default(),
    )
    .await;
    let response = router
        .send(Method::GET, "web.example.com", "/stream", full(""))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut body = response.into_body();
    // The first chunk arrives while the backend still holds the second one back.
    assert_eq!(next_chunk(&mut body).await, "web-1: first\n");
    let (ip, port) = (web.addr.ip().to_string(), web.addr.port());
    assert_eq!(router.stats.in_flight(&ip, port), 1);
    web.release.notify_one();
    assert_eq!(next_chunk(&mut body).await, "web-1: second\n");
    assert!(
        tokio::time::timeout(PATIENCE, body.frame())
            .await
            .expect("ends")
            .is_none()
    );
    tokio::time::timeout(PATIENCE, router.stats.wait_idle(&ip, port))
        .await
        .expect("the in-flight count goes back to 0");
    assert_eq!(router.stats.in_flight(&ip, port), 0);
}

#[tokio::test]
async fn a_dropped_response_leaves_no_request_in_flight() {
    let web = TestBackend::start("web-1").await;
    let router = TestRouter::start(
        vec![app("web", &["web.example.com"], &[&web])],
        RouterConfig::default(),
    )
    .await;
    let (ip, port) = (web.addr.ip().to_string(), web.addr.port());
    let response = router
        .send(Method::GET, "web.example.com", "/stream", full(""))
        .await;
    let mut body = response.into_body();
    next_chunk(&mut body).await;
    assert_eq!(router.stats.in_flight(&ip, port), 1);
    drop(body);
    eventually("the in-flight count goes back to 0", || {
        router.stats.in_flight(&ip, port) == 0
    })
    .await;
    for _ in 0..5 {
        assert_eq!(router.get("web.example.com", "/").await.0, StatusCode::OK);
    }
    eventually("the in-flight count goes back to 0", || {
        router.stats.in_flight(&ip, port) == 0
    })
    .await;
}

#[tokio::test]
async fn a_get_is_retried_on_another_instance_when_one_refuses_connections() {
    let (closed, web) = (closed_port().await, TestBackend::start("web-1").await);
    let router = TestRouter::start(
        vec![
            app("web", &["web.example.com"], &[&closed, &web]),
            app("down", &["down.example.com"], &[&closed]),
        ],
        RouterConfig::default(),
    )
    .await;
    for _ in 0..4 {
        assert_eq!(
            router.get("web.example.com", "/").await,
            (StatusCode::OK, "web-1".to_string())
        );
    }
    // Nowhere else to go.
    let (status, body) = router.get("down.example.com", "/").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert!(body.contains("app down"), "{body}");
}

#[tokio::test]
async fn a_get_is_retried_when_an_instance_hangs_up_without_answering() {
    let (hang_up, web) = (hang_up_port().await, TestBackend::start("web-1").await);
    let router = TestRouter::start(
        vec![app("web", &["web.example.com"], &[&hang_up, &web])],
        RouterConfig::default(),
    )
    .await;
    for _ in 0..4 {
        assert_eq!(
            router.get("web.example.com", "/").await,
            (StatusCode::OK, "web-1".to_string())
        );
    }
    assert!(hang_up.connections.load(Ordering::SeqCst) > 0);
    // A POST that hangs up is not retried: it may have been acted on.
    let mut statuses = Vec::new();
    for _ in 0..2 {
        let response = router
            .send(Method::POST, "web.example.com", "/echo", full("x"))
            .await;
        statuses.push(response.status());
    }
    statuses.sort();
    assert_eq!(statuses, [StatusCode::OK, StatusCode::BAD_GATEWAY]);
}

#[tokio::test]
async fn a_post_is_never_retried() {
    let (closed, web) = (closed_port().await, TestBackend::start("web-1").await);
    let router = TestRouter::start(
        vec![app("web", &["web.example.com"], &[&closed, &web])],
        RouterConfig::default(),
    )
    .await;
    // Round robin: one of two POSTs goes to the closed port and fails; the other is answered.
    let mut statuses = Vec::new();
    for _ in 0..2 {
        let response = router
            .send(Method::POST, "web.example.com", "/echo", full("hello"))
            .await;
        let status = response.status();
        let body = text(response).await;
        if status == StatusCode::OK {
            assert_eq!(body, "web-1 5");
        }
        statuses.push(status);
    }
    statuses.sort();
    assert_eq!(statuses, [StatusCode::OK, StatusCode::BAD_GATEWAY]);
    assert_eq!(web.requests.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_backend_that_does_not_answer_in_time_gets_504() {
    let web = TestBackend::start("web-1").await;
    let config = RouterConfig {
        request_timeout: Duration::from_millis(200),
        ..RouterConfig::default()
    };
    let router = TestRouter::start(vec![app("web", &["web.example.com"], &[&web])], config).await;
    let (status, body) = router.get("web.example.com", "/slow").await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert!(body.contains("app web did not answer"), "{body}");
    let (ip, port) = (web.addr.ip().to_string(), web.addr.port());
    assert_eq!(router.stats.in_flight(&ip, port), 0);
    // The next request is served as usual.
    assert_eq!(router.get("web.example.com", "/").await.0, StatusCode::OK);
}

#[tokio::test]
async fn request_bodies_over_the_limit_get_413() {
    let web = TestBackend::start("web-1").await;
    let config = RouterConfig {
        max_body_bytes: 1024,
        ..RouterConfig::default()
    };
    let router = TestRouter::start(vec![app("web", &["web.example.com"], &[&web])], config).await;

    let response = router
        .send(
            Method::POST,
            "web.example.com",
            "/echo",
            full(vec![b'x'; 1024]),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(text(response).await, "web-1 1024");

    // Content-Length says too much: refused before the backend sees it.
    let response = router
        .send(
            Method::POST,
            "web.example.com",
            "/echo",
            full(vec![b'x'; 1025]),
        )
        .await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(web.requests.load(Ordering::SeqCst), 1);

    // A streamed (chunked) body is cut when it goes past the limit.
    let chunks: Vec<Result<Frame<Bytes>, Infallible>> = (0..4)
        .map(|_| Ok(Frame::data(Bytes::from(vec![b'y'; 512]))))
        .collect();
    let body = StreamBody::new(futures::stream::iter(chunks))
        .map_err(|never| match never {})
        .boxed();
    let response = router
        .send(Method::POST, "web.example.com", "/echo", body)
        .await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn a_new_table_applies_to_new_requests_while_requests_in_flight_finish() {
    let (old, new) = (
        TestBackend::start("old-1").await,
        TestBackend::start("new-1").await,
    );
    let router = TestRouter::start(
        vec![app("web", &["web.example.com"], &[&old])],
        RouterConfig::default(),
    )
    .await;
    assert_eq!(router.get("web.example.com", "/").await.1, "old-1");
    let streaming = router
        .send(Method::GET, "web.example.com", "/stream", full(""))
        .await;
    let mut body = streaming.into_body();
    assert_eq!(next_chunk(&mut body).await, "old-1: first\n");

    router.swap(vec![
        app("web", &["web.example.com"], &[&new]),
        app("api", &["api.example.com"], &[&old]),
    ]);
    assert_eq!(router.get("web.example.com", "/").await.1, "new-1");
    assert_eq!(router.get("api.example.com", "/").await.1, "old-1");
    let (ip, port) = (old.addr.ip().to_string(), old.addr.port());
    assert_eq!(router.stats.in_flight(&ip, port), 1);
    old.release.notify_one();
    assert_eq!(next_chunk(&mut body).await, "old-1: second\n");
    drop(body);

    router.swap(vec![]);
    assert_eq!(
        router.get("web.example.com", "/").await.0,
        StatusCode::NOT_FOUND
    );
    eventually("the old instance is idle", || {
        router.stats.in_flight(&ip, port) == 0
    })
    .await;
}

#[tokio::test]
async fn connections_to_backends_are_kept_alive() {
    let web = TestBackend::start("web-1").await;
    let router = TestRouter::start(
        vec![app("web", &["web.example.com"], &[&web])],
        RouterConfig::default(),
    )
    .await;
    let requests = 20;
    for _ in 0..requests {
        assert_eq!(router.get("web.example.com", "/").await.0, StatusCode::OK);
    }
    assert_eq!(web.requests.load(Ordering::SeqCst), requests);
    let connections = web.connections.load(Ordering::SeqCst);
    assert!(
        connections < requests / 2,
        "{connections} connections for {requests} requests"
    );
}

#[tokio::test]
async fn websocket_upgrades_pass_through() {
    let web = TestBackend::start("web-1").await;
    let router = TestRouter::start(
        vec![app("web", &["web.example.com"], &[&web])],
        RouterConfig::default(),
    )
    .await;
    let mut socket = TcpStream::connect(router.addr).await.unwrap();
    socket
        .write_all(
            b"GET /ws HTTP/1.1\r\nHost: web.example.com\r\nConnection: Upgrade\r\n\
              Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        )
        .await
        .unwrap();
    let head = read_until(&mut socket, b"\r\n\r\n").await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let lower = head.to_ascii_lowercase();
    assert!(lower.contains("upgrade: websocket"), "{head}");
    assert!(lower.contains("connection: upgrade"), "{head}");
    let (ip, port) = (web.addr.ip().to_string(), web.addr.port());
    assert_eq!(router.stats.in_flight(&ip, port), 1);
    for message in ["ping", "pong"] {
        socket.write_all(message.as_bytes()).await.unwrap();
        let echoed = read_until(&mut socket, message.as_bytes()).await;
        assert_eq!(echoed, format!("web-1:{message}"));
    }
    drop(socket);
    eventually("the tunnel closes", || {
        router.stats.in_flight(&ip, port) == 0
    })
    .await;
}

async fn read_until(socket: &mut TcpStream, end: &[u8]) -> String {
    let mut read = Vec::new();
    let mut buf = [0u8; 1024];
    while !read.ends_with(end) {
        let n = tokio::time::timeout(PATIENCE, socket.read(&mut buf))
            .await
            .expect("bytes arrive")
            .unwrap();
        assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(&read));
        read.extend_from_slice(&buf[..n]);
    }
    String::from_utf8(read).unwrap()
}

#[tokio::test]
async fn shutdown_stops_accepting_and_lets_requests_in_flight_finish() {
    let web = TestBackend::start("web-1").await;
    let router = TestRouter::start(
        vec![app("web", &["web.example.com"], &[&web])],
        RouterConfig::default(),
    )
    .await;
    let response = router
        .send(Method::GET, "web.example.com", "/stream", full(""))
        .await;
    let mut body = response.into_body();
    assert_eq!(next_chunk(&mut body).await, "web-1: first\n");
    let TestRouter { addr, shutdown, .. } = router;
    drop(shutdown);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while TcpStream::connect(addr).await.is_ok() {
        assert!(tokio::time::Instant::now() < deadline, "still accepting");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    web.release.notify_one();
    assert_eq!(next_chunk(&mut body).await, "web-1: second\n");
    assert!(
        tokio::time::timeout(PATIENCE, body.frame())
            .await
            .expect("ends")
            .is_none()
    );
}

#[tokio::test]
async fn at_shutdown_a_busy_keep_alive_client_is_told_to_close_and_loses_no_request() {
    let web = TestBackend::start("web-1").await;
    let router = TestRouter::start(
        vec![app("web", &["web.example.com"], &[&web])],
        RouterConfig::default(),
    )
    .await;
    // One HTTP/1.1 connection, used request after request.
    let stream = TcpStream::connect(router.addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let get = || {
        Request::builder()
            .uri("/")
            .header("host", "web.example.com")
            .body(full(""))
            .unwrap()
    };
    let response = sender.send_request(get()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().get("connection").is_none());
    text(response).await;
    let TestRouter { addr, shutdown, .. } = router;
    drop(shutdown);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while TcpStream::connect(addr).await.is_ok() {
        assert!(tokio::time::Instant::now() < deadline, "still accepting");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The connection still serves its next request, and says it closes after it.
    let response = sender.send_request(get()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["connection"], "close");
    assert_eq!(text(response).await, "web-1");
    eventually("the connection closed", || sender.is_closed()).await;
}

/// An HTTP/2 connection to the router with prior knowledge (h2c), as `curl --http2-prior-knowledge`
/// opens one.
async fn h2_client(router: &TestRouter) -> hyper::client::conn::http2::SendRequest<TestBody> {
    let stream = TcpStream::connect(router.addr).await.unwrap();
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("the router speaks HTTP/2");
    tokio::spawn(conn);
    sender
}

async fn h2_send(
    sender: &mut hyper::client::conn::http2::SendRequest<TestBody>,
    method: Method,
    uri: &str,
    body: TestBody,
) -> Response<Incoming> {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .version(http::Version::HTTP_2)
        .body(body)
        .unwrap();
    tokio::time::timeout(PATIENCE, sender.send_request(request))
        .await
        .expect("the router answers")
        .expect("the request goes through")
}

#[tokio::test]
async fn http2_clients_with_prior_knowledge_reach_http1_backends() {
    let web = TestBackend::start("web-1").await;
    let router = TestRouter::start(
        vec![app("web", &["web.example.com"], &[&web])],
        RouterConfig::default(),
    )
    .await;
    let mut h2 = h2_client(&router).await;

    // Routed by the :authority; the backend gets HTTP/1.1 with the host and forwarded headers.
    let response = h2_send(
        &mut h2,
        Method::GET,
        "http://web.example.com/headers",
        full(""),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.version(), http::Version::HTTP_2);
    let seen = text(response).await;
    for want in [
        "host: web.example.com\n",
        "x-forwarded-host: web.example.com\n",
        "x-forwarded-proto: http\n",
        "x-forwarded-for: 127.0.0.1\n",
    ] {
        assert!(seen.contains(want), "{want:?} not in:\n{seen}");
    }
    let response = h2_send(&mut h2, Method::GET, "http://nobody.example.com/", full("")).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);

    // A request body streamed in pieces arrives whole.
    let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, Infallible>>(1);
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|frame| (frame, rx))
    });
    let body = StreamBody::new(stream)
        .map_err(|never| match never {})
        .boxed();
    let mut sender = h2.clone();
    let echo = tokio::spawn(async move {
        let response = h2_send(
            &mut sender,
            Method::POST,
            "http://web.example.com/echo",
            body,
        )
        .await;
        text(response).await
    });
    for piece in ["abc", "defg", "h"] {
        tx.send(Ok(Frame::data(Bytes::from(piece)))).await.unwrap();
    }
    drop(tx);
    let echoed = tokio::time::timeout(PATIENCE, echo).await.unwrap().unwrap();
    assert_eq!(echoed, "web-1 8");

    // A streamed response arrives in pieces on the same connection.
    let response = h2_send(
        &mut h2,
        Method::GET,
        "http://web.example.com/stream",
        full(""),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    assert_eq!(next_chunk(&mut body).await, "web-1: first\n");
    web.release.notify_one();
    assert_eq!(next_chunk(&mut body).await, "web-1: second\n");
    // HTTP/2 may close the stream with an empty DATA frame.
    let rest = tokio::time::timeout(PATIENCE, body.collect())
        .await
        .expect("ends")
        .expect("no body error");
    assert!(rest.to_bytes().is_empty());
    let (ip, port) = (web.addr.ip().to_string(), web.addr.port());
    tokio::time::timeout(PATIENCE, router.stats.wait_idle(&ip, port))
        .await
        .expect("no request left in flight");

    // HTTP/1.1 clients keep working on the same port.
    assert_eq!(
        router.get("web.example.com", "/").await,
        (StatusCode::OK, "web-1".to_string())
    );
}

fn counters_of<'c>(counters: &'c [AppCounters], app: &str) -> Option<&'c AppCounters> {
    counters.iter().find(|c| c.app == app)
}

/// Waits until no request of any app is in progress (a response's end is counted when the router
/// has sent its last byte, which may be a moment after the client read it).
async fn settled(stats: &RouterStats) -> Vec<AppCounters> {
    eventually("every request is counted", || {
        stats.app_counters().iter().all(|c| c.in_flight == 0)
    })
    .await;
    stats.app_counters()
}

#[tokio::test]
async fn apps_count_their_requests_bytes_latencies_and_upstream_failures() {
    let web = TestBackend::start("web-1").await;
    let slow = TestBackend::start("slow-1").await;
    let closed = closed_port().await;
    let apps = vec![
        app("web", &["web.example.com"], &[&web]),
        app("down", &["down.example.com"], &[]),
        app("broken", &["broken.example.com"], &[&closed]),
        app("slow", &["slow.example.com"], &[&slow]),
    ];
    let config = RouterConfig {
        request_timeout: Duration::from_millis(300),
        ..RouterConfig::default()
    };
    let router = TestRouter::start(apps.clone(), config).await;
    for _ in 0..3 {
        assert_eq!(router.get("web.example.com", "/").await.0, StatusCode::OK);
    }
    let response = router
        .send(Method::POST, "web.example.com", "/echo", full("hello"))
        .await;
    assert_eq!(text(response).await, "web-1 5");
    // (host, path, status)
    let cases = [
        ("down.example.com", "/", StatusCode::SERVICE_UNAVAILABLE),
        ("broken.example.com", "/", StatusCode::BAD_GATEWAY),
        ("slow.example.com", "/slow", StatusCode::GATEWAY_TIMEOUT),
        ("nobody.example.com", "/", StatusCode::NOT_FOUND),
    ];
    for (host, path, want) in cases {
        assert_eq!(router.get(host, path).await.0, want, "{host}");
    }

    let counters = settled(&router.stats).await;
    let names: Vec<&str> = counters.iter().map(|c| c.app.as_str()).collect();
    assert_eq!(
        names,
        ["broken", "down", "slow", "web"],
        "unrouted hosts count nowhere"
    );
    let web_counters = counters_of(&counters, "web").unwrap();
    assert_eq!(web_counters.team, "team");
    assert_eq!(web_counters.responses, [0, 4, 0, 0, 0]);
    assert_eq!(web_counters.latency_buckets.iter().sum::<u64>(), 4);
    assert_eq!(web_counters.request_bytes, 5);
    assert_eq!(web_counters.response_bytes, 3 * 5 + 7);
    assert_eq!(
        (
            web_counters.connect_failures,
            web_counters.timeouts,
            web_counters.broken_responses
        ),
        (0, 0, 0)
    );
    // (app, responses by class, connect failures, timeouts)
    let failing = [
        ("down", [0, 0, 0, 0, 1], 0, 0),
        ("broken", [0, 0, 0, 0, 1], 1, 0),
        ("slow", [0, 0, 0, 0, 1], 0, 1),
    ];
    for (name, responses, connect_failures, timeouts) in failing {
        let c = counters_of(&counters, name).unwrap();
        assert_eq!(c.responses, responses, "{name}");
        assert_eq!(
            (c.connect_failures, c.timeouts),
            (connect_failures, timeouts),
            "{name}"
        );
        assert!(c.response_bytes > 0, "{name}: the router's page counts");
    }

    // A streamed response counts as in progress until it ends.
    let response = router
        .send(Method::GET, "web.example.com", "/stream", full(""))
        .await;
    let mut body = response.into_body();
    next_chunk(&mut body).await;
    assert_eq!(
        counters_of(&router.stats.app_counters(), "web")
            .unwrap()
            .in_flight,
        1
    );
    web.release.notify_one();
    drop(body);

    // A new table keeps the counts of the apps it still routes and drops the others'.
    router.swap(vec![apps[0].clone()]);
    assert_eq!(router.get("web.example.com", "/").await.0, StatusCode::OK);
    let counters = settled(&router.stats).await;
    let names: Vec<&str> = counters.iter().map(|c| c.app.as_str()).collect();
    assert_eq!(names, ["web"]);
    assert_eq!(counters[0].requests(), 6);
    let one = router.stats.app_counters_of(&counters[0].team, "web");
    assert_eq!(one.map(|c| c.requests()), Some(6));
    assert!(router.stats.app_counters_of("nobody", "web").is_none());
}

/// The access log lines written so far, parsed.
async fn log_lines(lines: &mut mpsc::Receiver<String>, want: usize) -> Vec<serde_json::Value> {
    let mut parsed = Vec::new();
    for _ in 0..want {
        let line = tokio::time::timeout(PATIENCE, lines.recv())
            .await
            .expect("a line comes")
            .expect("the sink is open");
        assert!(!line.contains('\n'), "one line: {line}");
        parsed.push(serde_json::from_str(&line).expect("a line is JSON"));
    }
    parsed
}

#[tokio::test]
async fn the_access_log_writes_sampled_requests_as_json_lines() {
    let web = TestBackend::start("web-1").await;
    let closed = closed_port().await;
    let (sink, mut lines) = mpsc::channel(64);
    let stats = RouterStats::with_access_log(sink);
    let router = TestRouter::start_with(
        vec![
            app("web", &["web.example.com"], &[&web]),
            app("broken", &["broken.example.com"], &[&closed]),
        ],
        RouterConfig::default(),
        stats,
    )
    .await;
    // Off by default.
    assert_eq!(router.stats.access_log(), None);
    router.get("web.example.com", "/").await;

    router
        .stats
        .set_access_log(Some(AccessLog { sample_one_in: 1 }));
    let (status, _) = router.get("web.example.com", "/a%20b?q=%22x%22").await;
    assert_eq!(status, StatusCode::OK);
    let line = &log_lines(&mut lines, 1).await[0];
    assert_eq!(line["method"], "GET");
    assert_eq!(line["host"], "web.example.com");
    assert_eq!(line["path"], "/a%20b?q=%22x%22");
    assert_eq!(line["status"], 200);
    assert_eq!(line["bytes_out"], 5);
    assert_eq!(
        (&line["team"], &line["app"]),
        (&"team".into(), &"web".into())
    );
    assert_eq!(line["instance"], "web-1");
    assert!(line["upstream_error"].is_null());
    assert!(line["duration_ms"].as_f64().unwrap() >= 0.0);
    assert!(line["client"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert!(line["time"].as_str().unwrap().ends_with('Z'));

    // (host, status, app, an upstream error)
    let cases = [
        ("broken.example.com", 502, Some("broken"), true),
        ("nobody.example.com", 404, None, false),
    ];
    for (host, status, app, upstream_error) in cases {
        router.get(host, "/").await;
        let line = &log_lines(&mut lines, 1).await[0];
        assert_eq!(line["status"], status, "{host}");
        assert_eq!(line["app"].as_str(), app, "{host}");
        assert_eq!(
            !line["upstream_error"].is_null(),
            upstream_error,
            "{host}: {line}"
        );
    }

    // One in three of 6 requests; then off again.
    router
        .stats
        .set_access_log(Some(AccessLog { sample_one_in: 3 }));
    for _ in 0..6 {
        router.get("web.example.com", "/").await;
    }
    assert_eq!(log_lines(&mut lines, 2).await.len(), 2);
    router.stats.set_access_log(None);
    for _ in 0..3 {
        router.get("web.example.com", "/").await;
    }
    settled(&router.stats).await;
    assert!(lines.try_recv().is_err(), "no line while off");
    assert_eq!(router.stats.access_log_dropped(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_clients_reuse_backend_connections() {
    let web = TestBackend::start("web-1").await;
    let router = Arc::new(
        TestRouter::start(
            vec![app("web", &["web.example.com"], &[&web])],
            RouterConfig::default(),
        )
        .await,
    );
    let clients = 16;
    let rounds = 50;
    // The server swaps in a new table every second and on every change; requests must keep
    // their backend's connections across swaps.
    let swapper = tokio::spawn({
        let router = Arc::clone(&router);
        let apps = vec![app("web", &["web.example.com"], &[&web])];
        async move {
            loop {
                router.swap(apps.clone());
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    });
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let router = Arc::clone(&router);
        tasks.push(tokio::spawn(async move {
            for _ in 0..rounds {
                assert_eq!(router.get("web.example.com", "/").await.0, StatusCode::OK);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    swapper.abort();
    assert_eq!(web.requests.load(Ordering::SeqCst), clients * rounds);
    let connections = web.connections.load(Ordering::SeqCst);
    assert!(
        connections <= clients,
        "{connections} backend connections for {clients} concurrent clients"
    );
}
