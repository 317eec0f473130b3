//! The data path: accepts client connections (HTTP/1.1 and HTTP/2 with prior knowledge), finds
//! each request's route by host and proxies it over HTTP/1.1 to one of the route's ready
//! instances through the backend's keep-alive pool, streaming both bodies.

use std::convert::Infallible;
use std::error::Error as StdError;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::PathAndQuery;
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full, LengthLimitError, Limited};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use rustls::ServerConfig;
use rustls::server::Acceptor;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::LazyConfigAcceptor;
use tokio_rustls::server::TlsStream;
use tracing::{debug, warn};

use crate::RouterConfig;
use crate::accept::{self, StopRequest};
use crate::access_log::Entry;
use crate::acme_challenge::{ACME_CHALLENGE_PREFIX, AcmeChallenges};
use crate::conn_timer::{ConnTimer, TimerSlot};
use crate::hold::{Admission, HoldStep, hold_step};
use crate::meters::{AppMeters, UpstreamFailure};
use crate::pool::{ConnectError, PoolConfig, Sender};
use crate::stats::{BackendState, InFlight, RouterStats};
use crate::table::{Route, RoutingTable, normalize_host};

type BoxError = Box<dyn StdError + Send + Sync>;
pub(crate) type ProxyBody = BoxBody<Bytes, BoxError>;

/// The scheme clients reached the router with, passed on in `X-Forwarded-Proto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// Serves app traffic on `listener` until `shutdown` resolves, then stops accepting and lets open
/// connections finish their requests (at most `config.shutdown_grace`).
///
/// Every request reads the table that is current when it arrives: a table sent on the channel
/// applies to the next requests while requests in flight finish on their backend. `stats` is
/// where the in-flight counts go.
pub async fn serve(
    listener: TcpListener,
    table: watch::Receiver<Arc<RoutingTable>>,
    config: RouterConfig,
    stats: RouterStats,
    shutdown: impl Future<Output = ()>,
) {
    serve_listener(listener, None, table, config, stats, shutdown).await;
}

/// The accept loop of [`serve`] and [`serve_tls`](crate::tls::serve_tls), and one worker on
/// the caller's runtime: with `tls`, each connection first completes a TLS handshake (within
/// `config.tls_handshake_timeout`, plus the time an on-demand certificate takes).
pub(crate) async fn serve_listener(
    listener: TcpListener,
    tls: Option<Arc<ServerConfig>>,
    table: watch::Receiver<Arc<RoutingTable>>,
    config: RouterConfig,
    stats: RouterStats,
    shutdown: impl Future<Output = ()>,
) {
    let proxy = Arc::new(Proxy::new(table, config, stats));
    let (handle, queue) = accept::worker();
    let (stop, stopping) = watch::channel(false);
    let accepting = async move {
        accept::accept(listener, tls, Arc::new([handle]), shutdown).await;
        stop.send_replace(true);
    };
    tokio::join!(accepting, accept::work(queue, proxy, stopping));
}

/// A listening socket the router serves, with TLS settings for HTTPS.
#[derive(Debug)]
pub struct Listener {
    pub socket: TcpListener,
    pub tls: Option<Arc<ServerConfig>>,
}

/// Serves app traffic on `listeners` with `threads` router threads of their own
/// ([`crate::threads`]), each with its own event loop and backend connections; each listener's
/// accept loop runs where the returned future is polled and hands every connection to the
/// thread with the fewest open connections. When `shutdown` turns `true` the listeners are
/// closed and open connections finish their requests (at most `config.shutdown_grace`); the
/// future resolves when every thread is done.
pub fn serve_on_threads(
    threads: usize,
    listeners: Vec<Listener>,
    table: watch::Receiver<Arc<RoutingTable>>,
    config: RouterConfig,
    stats: RouterStats,
    shutdown: watch::Receiver<bool>,
) -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    let (handles, queues): (Vec<_>, Vec<_>) = (0..threads.max(1)).map(|_| accept::worker()).unzip();
    let queues: Vec<_> = queues
        .into_iter()
        .map(|q| std::sync::Mutex::new(Some(q)))
        .collect();
    let worker_shutdown = shutdown.clone();
    let threads_done = crate::threads::spawn("berth-router", threads.max(1), move |index| {
        let queue = queues[index].lock().ok().and_then(|mut queue| queue.take());
        let proxy = Arc::new(Proxy::new(table.clone(), config.clone(), stats.clone()));
        let shutdown = worker_shutdown.clone();
        async move {
            if let Some(queue) = queue {
                accept::work(queue, proxy, shutdown).await;
            }
        }
    })?;
    let workers: Arc<[accept::WorkerHandle]> = handles.into();
    Ok(async move {
        let accepting = listeners.into_iter().map(|listener| {
            let mut shutdown = shutdown.clone();
            accept::accept(
                listener.socket,
                listener.tls,
                Arc::clone(&workers),
                async move {
                    let _ = shutdown.wait_for(|stop| *stop).await;
                },
            )
        });
        futures::future::join_all(accepting).await;
        drop(workers);
        threads_done.await;
    })
}

/// The server side of a TLS handshake: reads the ClientHello, and when its server name has no
/// certificate but routes to the catch-all app, holds the handshake while the on-demand step
/// gets one (refused when it does not). Each part of the handshake is bounded by
/// `config.tls_handshake_timeout`, the on-demand step by its own timeout.
pub(crate) async fn handshake(
    proxy: &Proxy,
    stream: tokio::net::TcpStream,
    tls: Arc<ServerConfig>,
) -> Result<TlsStream<tokio::net::TcpStream>, String> {
    let patience = proxy.config.tls_handshake_timeout;
    let start = tokio::time::timeout(
        patience,
        LazyConfigAcceptor::new(Acceptor::default(), stream),
    )
    .await
    .map_err(|_| "timed out".to_string())?
    .map_err(|e| e.to_string())?;
    if let Some(on_demand) = &proxy.config.on_demand
        && let Some(host) = start
            .client_hello()
            .server_name()
            .and_then(|name| normalize_host(name).map(std::borrow::Cow::into_owned))
        && on_demand.certificates().find(&host).is_none()
    {
        let table = proxy.table.borrow().clone();
        if let Some(route) = table.catch_all(&host) {
            // Refused: the handshake goes on without a certificate for the name, so the
            // client gets the same alert as for any unknown name.
            let _ = on_demand
                .obtain(&host, route, table.catch_all_ask_path())
                .await;
        }
    }
    tokio::time::timeout(patience, start.into_stream(tls))
        .await
        .map_err(|_| "timed out".to_string())?
        .map_err(|e| e.to_string())
}

/// How long a connection open when the router stops may go on before it is shut down: long
/// enough for a busy HTTP/1.1 client to get a response that says `Connection: close`.
const CLOSE_LINGER: std::time::Duration = std::time::Duration::from_secs(1);

/// Serves one client connection until it closes, or until a stop is requested (then its
/// requests in progress finish and it closes). Any byte stream will do — a TCP stream, or a TLS
/// stream on top of one (`scheme` says which, for `X-Forwarded-Proto`).
pub(crate) async fn serve_connection<I>(
    proxy: Arc<Proxy>,
    io: I,
    peer: SocketAddr,
    scheme: Scheme,
    mut stopping: StopRequest,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let client = Arc::new(ClientConn::new(peer, scheme));
    let header_read_timeout = proxy.config.header_read_timeout;
    let service = service_fn(move |req| {
        let proxy = Arc::clone(&proxy);
        let client = Arc::clone(&client);
        async move { Ok::<_, Infallible>(proxy.handle(req, &client).await) }
    });
    // HTTP/1.1 (with upgrades, for WebSockets) and HTTP/2 with prior knowledge (h2c) on the
    // same connection, told apart by the first bytes.
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(ConnTimer::default())
        .header_read_timeout(header_read_timeout);
    builder.http2().timer(TokioTimer::new());
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    let mut conn = std::pin::pin!(conn);
    let ended = tokio::select! {
        biased;
        ended = conn.as_mut() => ended,
        () = stopping.requested() => {
            // HTTP/1.1 clients in the middle of their work get `Connection: close` on their
            // next response and close the connection themselves; closing it under them could
            // meet a request already on its way. What is left after the linger (idle
            // connections, HTTP/2) is shut down gracefully.
            match tokio::time::timeout(CLOSE_LINGER, conn.as_mut()).await {
                Ok(ended) => ended,
                Err(_lingered) => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            }
        }
    };
    if let Err(err) = ended {
        debug!(error = %err, %peer, "router: client connection ended with an error");
    }
}

/// What the data path knows of a client connection, computed once per connection.
#[derive(Debug)]
pub(crate) struct ClientConn {
    peer: SocketAddr,
    /// The peer's IP as `X-Forwarded-For` names it (an IPv4-mapped address as IPv4).
    forwarded_for: HeaderValue,
    scheme: Scheme,
    /// The request timeout's timer, reused by the connection's requests.
    request_timer: Arc<TimerSlot>,
}

impl ClientConn {
    fn new(peer: SocketAddr, scheme: Scheme) -> ClientConn {
        ClientConn {
            peer,
            forwarded_for: forwarded_for_value(peer.ip()),
            scheme,
            request_timer: Arc::default(),
        }
    }
}

fn forwarded_for_value(peer: IpAddr) -> HeaderValue {
    HeaderValue::from_str(&peer.to_canonical().to_string())
        .expect("an IP address is a valid header value")
}

pub(crate) struct Proxy {
    table: watch::Receiver<Arc<RoutingTable>>,
    /// The router stops: HTTP/1.1 responses say `Connection: close`.
    pub(crate) closing: AtomicBool,
    /// The address of the last table bound to `stats` (a new one is bound on its first request).
    bound_table: AtomicUsize,
    pool: PoolConfig,
    pub(crate) config: RouterConfig,
    stats: RouterStats,
}

/// Why a backend gave no response.
enum Upstream {
    Connect(ConnectError),
    Send(hyper::Error),
}

impl Proxy {
    fn new(
        table: watch::Receiver<Arc<RoutingTable>>,
        config: RouterConfig,
        stats: RouterStats,
    ) -> Proxy {
        Proxy {
            table,
            closing: AtomicBool::new(false),
            bound_table: AtomicUsize::new(0),
            pool: PoolConfig {
                connect_timeout: config.connect_timeout,
                idle_timeout: config.pool_idle_timeout,
                max_idle: config.pool_max_idle_per_backend,
            },
            config,
            stats,
        }
    }

    /// The current table, bound to the stats' backends the first time it is seen.
    fn current_table(&self) -> Arc<RoutingTable> {
        let table = self.table.borrow().clone();
        let address = Arc::as_ptr(&table) as usize;
        // A load first: a write on every request would bounce the line between cores.
        if self.bound_table.load(Ordering::Acquire) != address
            && self.bound_table.swap(address, Ordering::AcqRel) != address
        {
            self.stats.bind_table(&table);
        }
        table
    }

    /// Answers one request, counted in its app's counters (when its host routes to one) and
    /// written to the access log (when sampled) once its response has been sent to the end.
    async fn handle(&self, req: Request<Incoming>, client: &ClientConn) -> Response<ProxyBody> {
        let log = self.stats.access_log_state().sample().then(|| {
            let entry = Entry {
                time: SystemTime::now(),
                client: client.peer,
                method: req.method().clone(),
                host: request_host(&req)
                    .map(|host| String::from_utf8_lossy(host.as_bytes()).into_owned())
                    .unwrap_or_default(),
                path: req
                    .uri()
                    .path_and_query()
                    .map_or_else(String::new, |path| path.as_str().to_string()),
                status: 0,
                bytes_out: 0,
                app: None,
                instance: None,
                upstream_error: None,
            };
            (Box::new(entry), self.stats.clone())
        });
        let mut exchange = Exchange {
            started: Instant::now(),
            status: 0,
            bytes_out: 0,
            app: None,
            log,
        };
        let http1 = req.version() < Version::HTTP_2;
        let mut response = match self.route_request(req, client, &mut exchange).await {
            Answer::Proxied(response, lease) => metered(response, Some(lease), exchange),
            Answer::Own(response) if exchange.app.is_none() && exchange.log.is_none() => response,
            Answer::Own(response) => metered(response, None, exchange),
        };
        if http1
            && response.status() != StatusCode::SWITCHING_PROTOCOLS
            && self.closing.load(Ordering::Relaxed)
        {
            response
                .headers_mut()
                .insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }

    async fn route_request(
        &self,
        mut req: Request<Incoming>,
        client: &ClientConn,
        exchange: &mut Exchange,
    ) -> Answer {
        if client.scheme == Scheme::Http
            && let Some(token) = req.uri().path().strip_prefix(ACME_CHALLENGE_PREFIX)
        {
            return own(acme_challenge_answer(
                &self.config.acme_challenges,
                req.method(),
                token,
            ));
        }
        let table = self.current_table();
        let host = match request_host(&req) {
            Ok(host) => host,
            Err(message) => return own(page(StatusCode::BAD_REQUEST, message)),
        };
        let Some(name) = host.to_str().ok().and_then(normalize_host) else {
            return own(page(
                StatusCode::BAD_REQUEST,
                "the host is not a valid host name",
            ));
        };
        let Some(route) = table.route(&name, req.uri().path()) else {
            return own(not_found(&name));
        };
        if client.scheme == Scheme::Http && route.https_redirect {
            return own(https_redirect(&name, req.uri(), self.config.https_port));
        }
        let bound = self.stats.bound(route);
        bound.app.started();
        exchange.app = Some(Arc::clone(&bound.app));
        if let Some((entry, _)) = &mut exchange.log {
            entry.app = Some((route.team.clone(), route.app.clone()));
        }
        // A held request goes on with the table that gave its app a ready instance.
        let ready_table;
        let route = if route.backends.is_empty() {
            if route.wake
                && let Some(wake) = &self.config.wake
            {
                wake.wake(&route.team, &route.app);
            }
            if !route.hold {
                return own(unavailable(route));
            }
            match self.hold(&name, req.uri().path(), route, &bound.app).await {
                Ok(table) => {
                    ready_table = table;
                    match ready_table.route(&name, req.uri().path()) {
                        Some(route) => route,
                        None => return own(not_found(&name)),
                    }
                }
                Err(response) => return own(response),
            }
        } else {
            route
        };
        let bound = self.stats.bound(route);
        if req.body().size_hint().lower() > self.config.max_body_bytes {
            return own(too_large(self.config.max_body_bytes));
        }
        let upgrade = websocket_upgrade(req.headers());
        let client_upgrade = upgrade.is_some().then(|| hyper::upgrade::on(&mut req));
        let (parts, body) = req.into_parts();
        let lane = route.lane(|split| {
            split.takes(
                |name| parts.headers.get(name).map(|value| value.as_bytes()),
                percent_roll(),
            )
        });
        let Some(path) = parts.uri.path_and_query().cloned().or_else(|| {
            // An authority-form request (CONNECT) has no path; it is not ours to serve.
            (parts.method != Method::CONNECT).then(|| PathAndQuery::from_static("/"))
        }) else {
            return own(page(
                StatusCode::METHOD_NOT_ALLOWED,
                "CONNECT is not supported",
            ));
        };
        let mut headers = parts.headers;
        forward_headers(
            &mut headers,
            &client.forwarded_for,
            host,
            client.scheme,
            upgrade,
        );
        let retry_safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS)
            && body.is_end_stream()
            && route.backends.len() > 1;
        let mut body = Some(body);
        // One clock reading per request: the timeout and the pool go by the request's start.
        let started = tokio::time::Instant::from_std(exchange.started);
        let mut timeout = client
            .request_timer
            .lease(started + self.config.request_timeout);
        let mut tried = [0; 2];
        let mut attempts = 0;
        loop {
            let Some((index, backend)) = route.pick(&tried[..attempts], lane, |index| {
                bound.backends[index].outstanding()
            }) else {
                return own(bad_gateway(route));
            };
            tried[attempts] = index;
            attempts += 1;
            let retry_left = retry_safe && attempts < tried.len();
            let state = &bound.backends[index];
            let Some(address) = state.address else {
                warn!(app = %route.app, instance = %backend.instance, address = %backend.address,
                    "router: backend address is not an IP address");
                return own(bad_gateway(route));
            };
            let out_body = match body.take() {
                Some(body) if !body.is_end_stream() => RequestBytes {
                    inner: Limited::new(body, clamp_usize(self.config.max_body_bytes)),
                    app: Arc::clone(&bound.app),
                }
                .boxed(),
                _ => Empty::new().map_err(|never| match never {}).boxed(),
            };
            let mut out = Request::new(out_body);
            *out.method_mut() = parts.method.clone();
            *out.uri_mut() = Uri::from(path.clone());
            *out.version_mut() = Version::HTTP_11;
            *out.headers_mut() = if retry_left {
                headers.clone()
            } else {
                std::mem::take(&mut headers)
            };
            exchange.note_instance(&backend.instance);
            let in_flight = state.start();
            match timeout
                .bound(self.exchange(state, address, out, started))
                .await
            {
                None => {
                    debug!(app = %route.app, instance = %backend.instance, "router: request timed out");
                    state.count_outcome(true);
                    bound.app.upstream_failed(UpstreamFailure::Timeout);
                    exchange.note_error(|| {
                        format!(
                            "no answer within {} s",
                            self.config.request_timeout.as_secs_f64()
                        )
                    });
                    return own(page(
                        StatusCode::GATEWAY_TIMEOUT,
                        &format!(
                            "app {} did not answer within {} s",
                            route.app,
                            self.config.request_timeout.as_secs_f64()
                        ),
                    ));
                }
                Some(Ok((response, sender))) => {
                    state.count_outcome(response.status().is_server_error());
                    return respond(response, in_flight, sender, self.pool, client_upgrade);
                }
                Some(Err(upstream)) => {
                    drop(in_flight);
                    state.count_outcome(true);
                    let err: &(dyn StdError + 'static) = match &upstream {
                        Upstream::Connect(err) => err,
                        Upstream::Send(err) => err,
                    };
                    if caused_by::<LengthLimitError>(err) {
                        return own(too_large(self.config.max_body_bytes));
                    }
                    bound.app.upstream_failed(match upstream {
                        Upstream::Connect(_) => UpstreamFailure::Connect,
                        Upstream::Send(_) => UpstreamFailure::Broken,
                    });
                    exchange.note_error(|| error_chain(err));
                    warn!(app = %route.app, instance = %backend.instance, error = %error_chain(err),
                        retry = retry_left, "router: backend request failed");
                    if !retry_left {
                        return own(bad_gateway(route));
                    }
                }
            }
        }
    }

    /// Holds a request for `route`'s app, which has no ready instance but is bringing one up:
    /// waits for a table in which the host and path route to a ready instance (returned), at
    /// most the hold timeout. The app's 503 page at once when it already holds as many requests
    /// as allowed, or when a new table says it no longer holds; after the timeout, the 503 page
    /// saying how long the request waited.
    async fn hold(
        &self,
        host: &str,
        path: &str,
        route: &Route,
        app: &AppMeters,
    ) -> Result<Arc<RoutingTable>, Response<ProxyBody>> {
        let _held = match app.holds.enter(self.config.max_held_per_app) {
            Admission::Held(guard) => guard,
            Admission::Full => {
                return Err(unavailable_because(
                    route,
                    &format!(
                        "{} requests are already waiting for it",
                        self.config.max_held_per_app
                    ),
                ));
            }
        };
        let deadline = tokio::time::Instant::now() + self.config.hold_timeout;
        let mut changes = self.table.clone();
        loop {
            changes.borrow_and_update();
            let table = self.current_table();
            let current = table.route(host, path);
            match hold_step(current.map(|r| (!r.backends.is_empty(), r.hold))) {
                HoldStep::Release => return Ok(table),
                HoldStep::Wait => {}
                HoldStep::Refuse => {
                    return Err(unavailable(current.expect("the step saw a route")));
                }
                HoldStep::Gone => return Err(not_found(host)),
            }
            drop(table);
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => {}
                // The table's sender is gone (shutting down) or the wait is over.
                Ok(Err(_)) | Err(_) => {
                    return Err(unavailable_because(
                        route,
                        &format!(
                            "no instance became ready within {} s",
                            self.config.hold_timeout.as_secs_f64()
                        ),
                    ));
                }
            }
        }
    }

    /// Sends `request` on a pooled (or new) connection to the backend. A reused connection that
    /// turns out closed before the request left gets the request again on a new connection.
    async fn exchange(
        &self,
        backend: &BackendState,
        address: SocketAddr,
        mut request: Request<ProxyBody>,
        now: tokio::time::Instant,
    ) -> Result<(Response<Incoming>, Sender), Upstream> {
        loop {
            let (mut sender, reused) = backend
                .pool
                .checkout(address, self.pool, now)
                .await
                .map_err(Upstream::Connect)?;
            match sender.try_send_request(request).await {
                Ok(response) => return Ok((response, sender)),
                Err(mut err) => match err.take_message() {
                    Some(unsent) if reused => request = unsent,
                    _ => return Err(Upstream::Send(err.into_error())),
                },
            }
        }
    }
}

/// The host a request is for: the URI's authority (absolute-form and HTTP/2 requests), else the
/// one `Host` header. Returned as the client wrote it, for routing and `X-Forwarded-Host`.
fn request_host(req: &Request<Incoming>) -> Result<HeaderValue, &'static str> {
    if let Some(authority) = req.uri().authority() {
        return HeaderValue::from_str(authority.as_str())
            .map_err(|_| "the host is not a valid host name");
    }
    let mut values = req.headers().get_all(header::HOST).iter();
    match (values.next(), values.next()) {
        (Some(value), None) => Ok(value.clone()),
        (None, _) => Err("the request names no host"),
        (Some(_), Some(_)) => Err("the request has more than one Host header"),
    }
}

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1), plus `Expect`,
/// which this hop answers itself.
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::EXPECT,
];

/// Removes hop-by-hop headers: the fixed list, every `Proxy-*` header and the headers the
/// `Connection` header names.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // One pass over the few names present says which of the list are there (most messages
    // carry none, or only `Connection: keep-alive`): only those are removed, where removing
    // each of the list would hash every name of it.
    // Bit i: `HOP_BY_HOP[i]` is present.
    let mut present: u8 = 0;
    let mut proxy_headers = false;
    for name in headers.keys() {
        if let Some(index) = HOP_BY_HOP.iter().position(|hop| hop == name) {
            present |= 1 << index;
        } else if name.as_str().starts_with("proxy-") {
            proxy_headers = true;
        }
    }
    if present == 0 && !proxy_headers {
        return;
    }
    // The names `Connection` lists beyond the fixed list's (`keep-alive`, `close` and
    // `upgrade` name nothing else to remove).
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|value| value.as_bytes().split(|byte| *byte == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|token| {
            !token.is_empty()
                && !token.eq_ignore_ascii_case(b"keep-alive")
                && !token.eq_ignore_ascii_case(b"close")
                && !token.eq_ignore_ascii_case(b"upgrade")
        })
        .filter_map(|token| HeaderName::from_bytes(token).ok())
        .collect();
    for name in &listed {
        headers.remove(name);
    }
    for (index, hop) in HOP_BY_HOP.iter().enumerate() {
        if present & (1 << index) != 0 {
            headers.remove(hop);
        }
    }
    if proxy_headers {
        let proxy: Vec<HeaderName> = headers
            .keys()
            .filter(|name| name.as_str().starts_with("proxy-"))
            .cloned()
            .collect();
        for name in proxy {
            headers.remove(name);
        }
    }
}

/// Prepares a client's headers for the backend: hop-by-hop headers out (but a WebSocket
/// upgrade's), `X-Forwarded-*` in, `Host` set to the host the request was routed by.
/// `peer` is the client's address as [`forwarded_for_value`] writes it.
fn forward_headers(
    headers: &mut HeaderMap,
    peer: &HeaderValue,
    host: HeaderValue,
    scheme: Scheme,
    upgrade: Option<HeaderValue>,
) {
    strip_hop_by_hop(headers);
    // Room for the four headers set below at once, rather than growing the map twice.
    headers.reserve(4);
    if let Some(protocol) = upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, protocol);
    }
    let forwarded_for = match headers.entry(X_FORWARDED_FOR) {
        header::Entry::Vacant(_) => peer.clone(),
        header::Entry::Occupied(entry) => {
            let mut list: Vec<u8> = Vec::new();
            for value in entry.iter() {
                list.extend_from_slice(value.as_bytes());
                list.extend_from_slice(b", ");
            }
            list.extend_from_slice(peer.as_bytes());
            // The values were valid header values, and so is the peer's address.
            HeaderValue::from_maybe_shared(Bytes::from(list)).unwrap_or_else(|_| peer.clone())
        }
    };
    headers.insert(X_FORWARDED_FOR, forwarded_for);
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(scheme.as_str()));
    headers.insert(X_FORWARDED_HOST, host.clone());
    headers.insert(header::HOST, host);
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// The `Upgrade` value when the request asks for a WebSocket (`Connection: upgrade` and
/// `Upgrade: websocket`); other upgrades are not passed on.
fn websocket_upgrade(headers: &HeaderMap) -> Option<HeaderValue> {
    let connection_upgrade = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    let upgrade = headers.get(header::UPGRADE)?;
    let websocket = upgrade
        .to_str()
        .is_ok_and(|value| value.trim().eq_ignore_ascii_case("websocket"));
    (connection_upgrade && websocket).then(|| upgrade.clone())
}

/// The backend's response on its way to the client: hop-by-hop headers out, the body streamed
/// and counted as in flight until it ends, the backend connection given back to its pool when the
/// body has been read to its end. A `101 Switching Protocols` answer to a WebSocket upgrade
/// becomes a tunnel between the two upgraded connections.
fn respond(
    mut response: Response<Incoming>,
    in_flight: InFlight,
    sender: Sender,
    pool: PoolConfig,
    client_upgrade: Option<hyper::upgrade::OnUpgrade>,
) -> Answer {
    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        // The connection is the tunnel's now.
        drop(sender);
        let Some(client_upgrade) = client_upgrade else {
            warn!("router: a backend switched protocols unasked");
            return own(page(
                StatusCode::BAD_GATEWAY,
                "the app switched protocols unasked",
            ));
        };
        let upgrade = websocket_upgrade(response.headers());
        let backend_upgrade = hyper::upgrade::on(&mut response);
        tokio::spawn(tunnel(client_upgrade, backend_upgrade, in_flight));
        let (mut parts, _) = response.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        if let Some(protocol) = upgrade {
            parts
                .headers
                .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            parts.headers.insert(header::UPGRADE, protocol);
        }
        return own(Response::from_parts(
            parts,
            Empty::new().map_err(|never| match never {}).boxed(),
        ));
    }
    let (mut parts, body) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    parts.version = Version::HTTP_11;
    Answer::Proxied(
        Response::from_parts(parts, body),
        Lease {
            in_flight,
            sender,
            pool,
        },
    )
}

/// Copies bytes both ways between an upgraded client connection and backend connection.
async fn tunnel(
    client: hyper::upgrade::OnUpgrade,
    backend: hyper::upgrade::OnUpgrade,
    in_flight: InFlight,
) {
    let (client, backend) = tokio::join!(client, backend);
    match (client, backend) {
        (Ok(client), Ok(backend)) => {
            let mut client = TokioIo::new(client);
            let mut backend = TokioIo::new(backend);
            if let Err(err) = tokio::io::copy_bidirectional(&mut client, &mut backend).await {
                debug!(error = %err, "router: upgraded connection ended with an error");
            }
        }
        (Err(err), _) | (_, Err(err)) => debug!(error = %err, "router: upgrade failed"),
    }
    drop(in_flight);
}

/// What the router answers a request with.
enum Answer {
    /// An instance's response, its connection leased until the body has been read to its end.
    Proxied(Response<Incoming>, Lease),
    /// A response of the router's own (a page, or a `101` whose connection became a tunnel).
    Own(Response<ProxyBody>),
}

/// A number in 0..100 for a canary's share of requests: a per-thread xorshift generator seeded
/// once from the standard library's random hasher keys (no lock, no system call per request).
fn percent_roll() -> u8 {
    use std::hash::{BuildHasher, Hasher};
    thread_local! {
        static STATE: std::cell::Cell<u64> = std::cell::Cell::new(
            std::collections::hash_map::RandomState::new().build_hasher().finish() | 1,
        );
    }
    STATE.with(|state| {
        let mut x = state.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        state.set(x);
        (x % 100) as u8
    })
}

fn own(response: Response<ProxyBody>) -> Answer {
    Answer::Own(response)
}

/// A backend connection in use by one response: counted in flight until the response ends, given
/// back to the pool only when the body was read to its end (one dropped halfway is closed).
struct Lease {
    in_flight: InFlight,
    sender: Sender,
    pool: PoolConfig,
}

impl Lease {
    fn give_back(self) {
        self.in_flight
            .backend()
            .pool
            .checkin(self.sender, self.pool);
    }
}

/// One request from arrival to its response's last byte: counted in its app's counters and
/// written to the access log (when sampled) when dropped.
pub(crate) struct Exchange {
    started: Instant,
    status: u16,
    bytes_out: u64,
    app: Option<Arc<AppMeters>>,
    /// The access log line being gathered, when the request is sampled.
    log: Option<(Box<Entry>, RouterStats)>,
}

impl Exchange {
    fn note_instance(&mut self, instance: &str) {
        if let Some((entry, _)) = &mut self.log {
            entry.instance = Some(instance.to_string());
        }
    }

    /// The last upstream failure, for the access log (`error` is only called when sampled).
    fn note_error(&mut self, error: impl FnOnce() -> String) {
        if let Some((entry, _)) = &mut self.log {
            entry.upstream_error = Some(error());
        }
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        let duration = self.started.elapsed();
        if let Some(app) = &self.app {
            app.finished(self.status, duration);
        }
        if let Some((mut entry, stats)) = self.log.take() {
            entry.status = self.status;
            entry.bytes_out = self.bytes_out;
            stats.access_log_state().write(&entry, duration);
        }
    }
}

/// `response` with a body that counts its bytes and ends `exchange` (and `lease`) with it.
fn metered<B>(
    response: Response<B>,
    lease: Option<Lease>,
    mut exchange: Exchange,
) -> Response<ProxyBody>
where
    B: Body<Data = Bytes> + Send + Sync + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    exchange.status = response.status().as_u16();
    let (parts, inner) = response.into_parts();
    let body = Metered {
        inner,
        lease,
        exchange: Some(exchange),
    };
    Response::from_parts(parts, BoxBody::new(body))
}

/// A response body on its way to the client: its bytes counted, its exchange ended (and its
/// backend connection given back) when it ends, fails or is dropped.
struct Metered<B: Body> {
    inner: B,
    lease: Option<Lease>,
    exchange: Option<Exchange>,
}

impl<B: Body> Metered<B> {
    /// The body was read to its end: the connection can serve another request.
    fn complete(&mut self) {
        if let Some(lease) = self.lease.take() {
            lease.give_back();
        }
        self.exchange = None;
    }
}

impl<B> Body for Metered<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => {
                self.complete();
                Poll::Ready(None)
            }
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref()
                    && let Some(exchange) = &mut self.exchange
                {
                    exchange.bytes_out += data.len() as u64;
                    if let Some(app) = &exchange.app {
                        app.add_response_bytes(data.len());
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(err))) => {
                // The connection is in an unknown state: it is closed, not pooled.
                self.lease = None;
                self.exchange = None;
                Poll::Ready(Some(Err(err.into())))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B: Body> Drop for Metered<B> {
    fn drop(&mut self) {
        // An empty body (or one whose length is reached) may never be polled to its end.
        if self.inner.is_end_stream() {
            self.complete();
        }
    }
}

/// A request body on its way to the instance, its bytes counted for the app.
struct RequestBytes<B> {
    inner: B,
    app: Arc<AppMeters>,
}

impl<B> Body for RequestBytes<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            self.app.add_request_bytes(data.len());
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

fn too_large(limit: u64) -> Response<ProxyBody> {
    page(
        StatusCode::PAYLOAD_TOO_LARGE,
        &format!("the request body is larger than {limit} bytes"),
    )
}

/// The answer to `/.well-known/acme-challenge/<token>`: the published key authorization, else
/// 404 (invalid tokens included: they are never looked up).
fn acme_challenge_answer(
    challenges: &AcmeChallenges,
    method: &Method,
    token: &str,
) -> Response<ProxyBody> {
    if method != Method::GET && method != Method::HEAD {
        let mut response = page(
            StatusCode::METHOD_NOT_ALLOWED,
            "ACME challenges are fetched with GET",
        );
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    let Some(key_authorization) = challenges.key_authorization(token) else {
        return page(StatusCode::NOT_FOUND, "no such ACME challenge");
    };
    let mut response = Response::new(
        Full::new(Bytes::from(key_authorization))
            .map_err(|never| match never {})
            .boxed(),
    );
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `308 Permanent Redirect` to the same host, path and query over HTTPS. `host` is the
/// normalised host name the request was routed by (never the raw header), the port is the
/// HTTPS listener's (left out when 443).
fn https_redirect(host: &str, uri: &Uri, https_port: u16) -> Response<ProxyBody> {
    let path = uri.path_and_query().map_or("/", PathAndQuery::as_str);
    let location = if https_port == 443 {
        format!("https://{host}{path}")
    } else {
        format!("https://{host}:{https_port}{path}")
    };
    let Ok(value) = HeaderValue::from_str(&location) else {
        return page(StatusCode::BAD_REQUEST, "the request path is not valid");
    };
    let mut response = page(
        StatusCode::PERMANENT_REDIRECT,
        &format!("this app is served over HTTPS: {location}"),
    );
    response.headers_mut().insert(header::LOCATION, value);
    response
}

fn unavailable(route: &Route) -> Response<ProxyBody> {
    service_unavailable(&route.unavailable)
}

/// The 503 page of a held request that could not wait: the app's state, then why.
fn unavailable_because(route: &Route, why: &str) -> Response<ProxyBody> {
    service_unavailable(&format!("{} ({why})", route.unavailable))
}

fn service_unavailable(message: &str) -> Response<ProxyBody> {
    let mut response = page(StatusCode::SERVICE_UNAVAILABLE, message);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

fn not_found(host: &str) -> Response<ProxyBody> {
    page(
        StatusCode::NOT_FOUND,
        &format!("no app answers to {host} at this path"),
    )
}

fn bad_gateway(route: &Route) -> Response<ProxyBody> {
    page(
        StatusCode::BAD_GATEWAY,
        &format!("app {}: no instance could be reached", route.app),
    )
}

/// A small HTML page the router answers itself; `message` is escaped.
fn page(status: StatusCode, message: &str) -> Response<ProxyBody> {
    let title = format!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    let body = format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title></head>\
         <body><h1>{title}</h1><p>{}</p></body></html>\n",
        escape_html(message)
    );
    let mut response = Response::new(
        Full::new(Bytes::from(body))
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn escape_html(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

fn clamp_usize(value: u64) -> usize {
    usize::try_from(value).unwrap_or(usize::MAX)
}

/// Whether an error of type `E` is somewhere in `err`'s source chain.
fn caused_by<E: StdError + 'static>(err: &(dyn StdError + 'static)) -> bool {
    let mut current = Some(err);
    while let Some(err) = current {
        if err.is::<E>() {
            return true;
        }
        current = err.source();
    }
    false
}

fn error_chain(err: &(dyn StdError + 'static)) -> String {
    let mut text = err.to_string();
    let mut current = err.source();
    while let Some(err) = current {
        text.push_str(": ");
        text.push_str(&err.to_string());
        current = err.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn names(map: &HeaderMap) -> Vec<String> {
        let mut names: Vec<String> = map.keys().map(|n| n.as_str().to_string()).collect();
        names.sort();
        names
    }

    #[test]
    fn hop_by_hop_headers_are_stripped() {
        let cases: &[(&[(&str, &str)], &[&str])] = &[
            (&[("accept", "*/*")], &["accept"]),
            (
                &[
                    ("connection", "keep-alive, X-Secret"),
                    ("x-secret", "1"),
                    ("keep-alive", "timeout=5"),
                    ("accept", "*/*"),
                ],
                &["accept"],
            ),
            (
                &[
                    ("proxy-authorization", "Basic eA=="),
                    ("proxy-connection", "keep-alive"),
                    ("te", "trailers"),
                    ("trailer", "x-checksum"),
                    ("transfer-encoding", "chunked"),
                    ("upgrade", "h2c"),
                    ("expect", "100-continue"),
                    ("authorization", "Bearer t"),
                ],
                &["authorization"],
            ),
            // Each kind alone is found by the quick look over the names.
            (&[("keep-alive", "timeout=5"), ("a", "1")], &["a"]),
            (&[("a", "1"), ("proxy-x", "1")], &["a"]),
            (&[("Expect", "100-continue")], &[]),
            (&[], &[]),
            // Garbage in Connection names nothing and removes nothing else.
            (&[("connection", "\"bad header\", ,"), ("a", "1")], &["a"]),
            // What most backends send: the header alone goes.
            (
                &[("content-length", "2"), ("connection", "keep-alive")],
                &["content-length"],
            ),
            (&[("connection", "Close"), ("a", "1")], &["a"]),
            // Upgrade is in the list anyway; a listed name in any case is removed.
            (
                &[
                    ("connection", "Upgrade, X-Trace"),
                    ("upgrade", "websocket"),
                    ("x-trace", "1"),
                    ("b", "2"),
                ],
                &["b"],
            ),
            // A name listed but not present removes nothing else.
            (&[("connection", "x-absent"), ("a", "1")], &["a"]),
        ];
        for (input, want) in cases {
            let mut map = headers(input);
            strip_hop_by_hop(&mut map);
            assert_eq!(names(&map), *want, "{input:?}");
        }
    }

    #[test]
    fn forwarded_headers_are_set() {
        let peer = forwarded_for_value("192.0.2.7".parse().unwrap());
        // (headers the client sent, scheme, X-Forwarded-For the backend gets)
        let cases: &[(&[(&str, &str)], Scheme, &str)] = &[
            (&[], Scheme::Http, "192.0.2.7"),
            (
                &[("x-forwarded-for", "203.0.113.1")],
                Scheme::Https,
                "203.0.113.1, 192.0.2.7",
            ),
            (
                &[
                    ("x-forwarded-for", "1.1.1.1"),
                    ("x-forwarded-for", "2.2.2.2"),
                ],
                Scheme::Http,
                "1.1.1.1, 2.2.2.2, 192.0.2.7",
            ),
        ];
        for (input, scheme, want) in cases {
            let mut map = headers(input);
            map.insert("x-forwarded-proto", HeaderValue::from_static("gopher"));
            map.insert("x-forwarded-host", HeaderValue::from_static("evil.example"));
            let host = HeaderValue::from_static("Web.example.com:8080");
            forward_headers(&mut map, &peer, host, *scheme, None);
            assert_eq!(map["x-forwarded-for"], *want);
            assert_eq!(map.get_all("x-forwarded-for").iter().count(), 1);
            assert_eq!(map["x-forwarded-proto"], scheme.as_str());
            assert_eq!(map["x-forwarded-host"], "Web.example.com:8080");
            assert_eq!(map["host"], "Web.example.com:8080");
        }
        assert_eq!(
            forwarded_for_value("::ffff:192.0.2.7".parse().unwrap()),
            "192.0.2.7"
        );
    }

    #[test]
    fn only_websocket_upgrades_are_kept() {
        let cases: &[(&[(&str, &str)], bool)] = &[
            (&[("connection", "Upgrade"), ("upgrade", "websocket")], true),
            (
                &[
                    ("connection", "keep-alive, upgrade"),
                    ("upgrade", "WebSocket"),
                ],
                true,
            ),
            (&[("upgrade", "websocket")], false),
            (&[("connection", "upgrade"), ("upgrade", "h2c")], false),
            (&[("connection", "upgrade")], false),
        ];
        for (input, want) in cases {
            let map = headers(input);
            assert_eq!(websocket_upgrade(&map).is_some(), *want, "{input:?}");
            let mut forwarded = map.clone();
            forward_headers(
                &mut forwarded,
                &forwarded_for_value("127.0.0.1".parse().unwrap()),
                HeaderValue::from_static("web"),
                Scheme::Http,
                websocket_upgrade(&map),
            );
            assert_eq!(forwarded.contains_key("upgrade"), *want, "{input:?}");
        }
    }

    #[test]
    fn https_redirects_keep_path_and_query_and_name_the_port_unless_443() {
        let cases: &[(&str, u16, &str)] = &[
            ("/", 443, "https://web.example.com/"),
            ("/a/b?c=d&e", 443, "https://web.example.com/a/b?c=d&e"),
            ("/a/b?c=d", 8443, "https://web.example.com:8443/a/b?c=d"),
            (
                "http://evil.example/x?y",
                443,
                "https://web.example.com/x?y",
            ),
            (
                "//evil.example/x",
                443,
                "https://web.example.com//evil.example/x",
            ),
            (
                "/%0d%0aSet-Cookie:x",
                443,
                "https://web.example.com/%0d%0aSet-Cookie:x",
            ),
        ];
        for (uri, port, want) in cases {
            let uri: Uri = uri.parse().unwrap();
            let response = https_redirect("web.example.com", &uri, *port);
            assert_eq!(response.status(), StatusCode::PERMANENT_REDIRECT, "{uri}");
            assert_eq!(response.headers()[header::LOCATION], *want, "{uri}");
        }
    }

    #[tokio::test]
    async fn acme_challenge_answers_only_published_tokens_to_get_and_head() {
        let challenges = AcmeChallenges::new();
        challenges.publish("tok_en-1", "tok_en-1.thumb").unwrap();
        let cases: &[(Method, &str, StatusCode, &str)] = &[
            (Method::GET, "tok_en-1", StatusCode::OK, "tok_en-1.thumb"),
            (Method::HEAD, "tok_en-1", StatusCode::OK, "tok_en-1.thumb"),
            (Method::POST, "tok_en-1", StatusCode::METHOD_NOT_ALLOWED, ""),
            (Method::GET, "other", StatusCode::NOT_FOUND, ""),
            (Method::GET, "", StatusCode::NOT_FOUND, ""),
            (Method::GET, "tok_en-1/", StatusCode::NOT_FOUND, ""),
            (Method::GET, "../tok_en-1", StatusCode::NOT_FOUND, ""),
            (Method::GET, "tok_en-1%00", StatusCode::NOT_FOUND, ""),
        ];
        for (method, token, status, body) in cases {
            let response = acme_challenge_answer(&challenges, method, token);
            assert_eq!(response.status(), *status, "{method} {token:?}");
            if *status == StatusCode::OK {
                let bytes = response.into_body().collect().await.unwrap().to_bytes();
                assert_eq!(bytes, body.as_bytes(), "{token:?}");
            }
        }
    }

    #[test]
    fn pages_escape_their_message() {
        assert_eq!(
            escape_html("<script>alert('x') & \"y\"</script>"),
            "&lt;script&gt;alert(&#39;x&#39;) &amp; &quot;y&quot;&lt;/script&gt;"
        );
        let response = page(StatusCode::NOT_FOUND, "no app answers to <b>");
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(
            response.headers()["content-type"],
            "text/html; charset=utf-8"
        );
    }
}
