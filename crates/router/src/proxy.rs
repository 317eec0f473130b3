//! The data path: accepts client connections, finds each request's route by host and proxies it
//! to one of the route's ready instances through a shared keep-alive pool, streaming both bodies.

use std::convert::Infallible;
use std::error::Error as StdError;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{Authority, PathAndQuery};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full, LengthLimitError, Limited};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, warn};

use crate::RouterConfig;
use crate::acme_challenge::{ACME_CHALLENGE_PREFIX, AcmeChallenges};
use crate::stats::{InFlight, RouterStats};
use crate::table::{Backend, Route, RoutingTable, normalize_host};

type BoxError = Box<dyn StdError + Send + Sync>;
type ProxyBody = BoxBody<Bytes, BoxError>;

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

/// Which listener a request came in on: it decides `X-Forwarded-Proto`, and only plain HTTP
/// answers ACME challenges and redirects to HTTPS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scheme {
    Http,
    Https,
}

impl Scheme {
    fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// The accept loop of [`serve`] and [`serve_tls`](crate::tls::serve_tls): with `tls`, each
/// connection first completes a TLS handshake (within `config.tls_handshake_timeout`).
pub(crate) async fn serve_listener(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    table: watch::Receiver<Arc<RoutingTable>>,
    config: RouterConfig,
    stats: RouterStats,
    shutdown: impl Future<Output = ()>,
) {
    let proxy = Arc::new(Proxy::new(table, config, stats));
    // Every connection task holds a receiver: `true` asks it to finish gracefully, and the
    // sender sees `closed()` once the last one is gone.
    let (stop, stopping) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: do not spin.
                    warn!(error = %err, "router: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        if let Err(err) = stream.set_nodelay(true) {
            debug!(error = %err, "router: set_nodelay failed");
        }
        let proxy = proxy.clone();
        let mut stopping = stopping.clone();
        match tls.clone() {
            None => {
                tokio::spawn(serve_connection(
                    proxy,
                    TokioIo::new(stream),
                    peer,
                    Scheme::Http,
                    stopping,
                ));
            }
            Some(acceptor) => {
                tokio::spawn(async move {
                    let handshake = tokio::time::timeout(
                        proxy.config.tls_handshake_timeout,
                        acceptor.accept(stream),
                    );
                    let stream = tokio::select! {
                        done = handshake => done,
                        _ = stopping.changed() => return,
                    };
                    match stream {
                        Ok(Ok(stream)) => {
                            serve_connection(
                                proxy,
                                TokioIo::new(stream),
                                peer,
                                Scheme::Https,
                                stopping,
                            )
                            .await;
                        }
                        Ok(Err(err)) => {
                            debug!(error = %err, %peer, "router: TLS handshake failed");
                        }
                        Err(_elapsed) => debug!(%peer, "router: TLS handshake timed out"),
                    }
                });
            }
        }
    }
    drop(listener);
    drop(stopping);
    // No receiver left means no connection left: nothing to wait for.
    let _ = stop.send(true);
    if tokio::time::timeout(proxy.config.shutdown_grace, stop.closed())
        .await
        .is_err()
    {
        warn!("router: connections still open after the shutdown grace period");
    }
}

/// Serves one client connection (plain or decrypted TLS) until it ends, or gracefully once
/// `stopping` changes.
async fn serve_connection<I>(
    proxy: Arc<Proxy>,
    io: I,
    peer: SocketAddr,
    scheme: Scheme,
    mut stopping: watch::Receiver<bool>,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = {
        let proxy = proxy.clone();
        service_fn(move |req| {
            let proxy = proxy.clone();
            async move { Ok::<_, Infallible>(proxy.handle(req, peer, scheme).await) }
        })
    };
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(proxy.config.header_read_timeout)
        .serve_connection(io, service)
        .with_upgrades();
    let mut conn = std::pin::pin!(conn);
    let ended = tokio::select! {
        ended = conn.as_mut() => ended,
        _ = stopping.changed() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(err) = ended {
        debug!(error = %err, %peer, "router: client connection ended with an error");
    }
    drop(stopping);
}

struct Proxy {
    table: watch::Receiver<Arc<RoutingTable>>,
    client: Client<HttpConnector, ProxyBody>,
    config: RouterConfig,
    stats: RouterStats,
}

impl Proxy {
    fn new(
        table: watch::Receiver<Arc<RoutingTable>>,
        config: RouterConfig,
        stats: RouterStats,
    ) -> Proxy {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(config.connect_timeout));
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(config.pool_idle_timeout)
            .pool_max_idle_per_host(config.pool_max_idle_per_backend)
            // The Host header is the client's, set in `forward_headers`.
            .set_host(false)
            .build(connector);
        Proxy {
            table,
            client,
            config,
            stats,
        }
    }

    async fn handle(
        &self,
        mut req: Request<Incoming>,
        peer: SocketAddr,
        scheme: Scheme,
    ) -> Response<ProxyBody> {
        if scheme == Scheme::Http
            && let Some(token) = req.uri().path().strip_prefix(ACME_CHALLENGE_PREFIX)
        {
            return acme_challenge_answer(&self.config.acme_challenges, req.method(), token);
        }
        let table = self.table.borrow().clone();
        let host = match request_host(&req) {
            Ok(host) => host,
            Err(message) => return page(StatusCode::BAD_REQUEST, message),
        };
        let Some(name) = normalize_host(&host) else {
            return page(StatusCode::BAD_REQUEST, "the host is not a valid host name");
        };
        let Some(route) = table.route(&name, req.uri().path()) else {
            return page(
                StatusCode::NOT_FOUND,
                &format!("no app answers to {name} at this path"),
            );
        };
        if scheme == Scheme::Http && route.https_redirect {
            return https_redirect(&name, req.uri(), self.config.https_port);
        }
        if route.backends.is_empty() {
            return unavailable(route);
        }
        if req.body().size_hint().lower() > self.config.max_body_bytes {
            return page(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!(
                    "the request body is larger than {} bytes",
                    self.config.max_body_bytes
                ),
            );
        }
        let upgrade = websocket_upgrade(req.headers());
        let client_upgrade = upgrade.is_some().then(|| hyper::upgrade::on(&mut req));
        let (parts, body) = req.into_parts();
        let Some(path) = parts.uri.path_and_query().cloned().or_else(|| {
            // An authority-form request (CONNECT) has no path; it is not ours to serve.
            (parts.method != Method::CONNECT).then(|| PathAndQuery::from_static("/"))
        }) else {
            return page(StatusCode::METHOD_NOT_ALLOWED, "CONNECT is not supported");
        };
        let mut headers = parts.headers;
        if let Err(message) = forward_headers(&mut headers, peer.ip(), &host, scheme, upgrade) {
            return page(StatusCode::BAD_REQUEST, message);
        }
        let retry_safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS)
            && body.is_end_stream();
        let mut body = Some(body);
        let deadline = tokio::time::Instant::now() + self.config.request_timeout;
        let mut tried: Vec<usize> = Vec::with_capacity(2);
        loop {
            let Some((index, backend)) = route.pick(&tried) else {
                return bad_gateway(route);
            };
            tried.push(index);
            let Some(uri) = backend_uri(backend, &path) else {
                warn!(app = %route.app, instance = %backend.instance, address = %backend.address,
                    "router: backend address is not an IP address");
                return bad_gateway(route);
            };
            let out_body = match body.take() {
                Some(body) if !body.is_end_stream() => {
                    Limited::new(body, clamp_usize(self.config.max_body_bytes)).boxed()
                }
                _ => Empty::new().map_err(|never| match never {}).boxed(),
            };
            let mut out = Request::new(out_body);
            *out.method_mut() = parts.method.clone();
            *out.uri_mut() = uri;
            *out.version_mut() = Version::HTTP_11;
            *out.headers_mut() = if retry_safe {
                headers.clone()
            } else {
                std::mem::take(&mut headers)
            };
            let in_flight = self.stats.start(&backend.address, backend.port);
            match tokio::time::timeout_at(deadline, self.client.request(out)).await {
                Err(_elapsed) => {
                    debug!(app = %route.app, instance = %backend.instance, "router: request timed out");
                    return page(
                        StatusCode::GATEWAY_TIMEOUT,
                        &format!(
                            "app {} did not answer within {} s",
                            route.app,
                            self.config.request_timeout.as_secs_f64()
                        ),
                    );
                }
                Ok(Ok(response)) => return respond(response, in_flight, client_upgrade),
                Ok(Err(err)) => {
                    drop(in_flight);
                    if caused_by::<LengthLimitError>(&err) {
                        return page(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            &format!(
                                "the request body is larger than {} bytes",
                                self.config.max_body_bytes
                            ),
                        );
                    }
                    warn!(app = %route.app, instance = %backend.instance, error = %error_chain(&err),
                        retry = retry_safe && tried.len() < 2, "router: backend request failed");
                    if !(retry_safe && tried.len() < 2) {
                        return bad_gateway(route);
                    }
                }
            }
        }
    }
}

/// The host a request is for: the URI's authority (absolute-form and HTTP/2 requests), else the
/// one `Host` header. Returned as the client wrote it, for routing and `X-Forwarded-Host`.
fn request_host(req: &Request<Incoming>) -> Result<String, &'static str> {
    if let Some(authority) = req.uri().authority() {
        return Ok(authority.as_str().to_string());
    }
    let mut values = req.headers().get_all(header::HOST).iter();
    match (values.next(), values.next()) {
        (Some(value), None) => value
            .to_str()
            .map(str::to_string)
            .map_err(|_| "the Host header is not a valid host name"),
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
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
    let proxy: Vec<HeaderName> = headers
        .keys()
        .filter(|name| name.as_str().starts_with("proxy-"))
        .cloned()
        .collect();
    for name in proxy {
        headers.remove(name);
    }
}

/// Prepares a client's headers for the backend: hop-by-hop headers out (but a WebSocket
/// upgrade's), `X-Forwarded-*` in, `Host` set to the host the request was routed by.
fn forward_headers(
    headers: &mut HeaderMap,
    peer: IpAddr,
    host: &str,
    scheme: Scheme,
    upgrade: Option<HeaderValue>,
) -> Result<(), &'static str> {
    strip_hop_by_hop(headers);
    if let Some(protocol) = upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, protocol);
    }
    let host = HeaderValue::from_str(host).map_err(|_| "the host is not a valid host name")?;
    let peer = peer.to_canonical().to_string();
    let mut forwarded_for: Vec<u8> = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        forwarded_for.extend_from_slice(value.as_bytes());
        forwarded_for.extend_from_slice(b", ");
    }
    forwarded_for.extend_from_slice(peer.as_bytes());
    let forwarded_for = HeaderValue::from_bytes(&forwarded_for)
        .or_else(|_| HeaderValue::from_str(&peer))
        .map_err(|_| "the X-Forwarded-For header is not valid")?;
    headers.insert("x-forwarded-for", forwarded_for);
    headers.insert(
        "x-forwarded-proto",
        HeaderValue::from_static(scheme.as_str()),
    );
    headers.insert("x-forwarded-host", host.clone());
    headers.insert(header::HOST, host);
    Ok(())
}

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

/// `http://address:port/path?query` for a backend; `None` when the address is not an IP.
fn backend_uri(backend: &Backend, path: &PathAndQuery) -> Option<Uri> {
    let authority = match backend.address.parse::<IpAddr>().ok()? {
        IpAddr::V4(ip) => format!("{ip}:{}", backend.port),
        IpAddr::V6(ip) => format!("[{ip}]:{}", backend.port),
    };
    Uri::builder()
        .scheme("http")
        .authority(Authority::try_from(authority).ok()?)
        .path_and_query(path.clone())
        .build()
        .ok()
}

/// The backend's response on its way to the client: hop-by-hop headers out, the body streamed
/// and counted as in flight until it ends. A `101 Switching Protocols` answer to a WebSocket
/// upgrade becomes a tunnel between the two upgraded connections.
fn respond(
    mut response: Response<Incoming>,
    in_flight: InFlight,
    client_upgrade: Option<hyper::upgrade::OnUpgrade>,
) -> Response<ProxyBody> {
    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        let Some(client_upgrade) = client_upgrade else {
            warn!("router: a backend switched protocols unasked");
            return page(
                StatusCode::BAD_GATEWAY,
                "the app switched protocols unasked",
            );
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
        return Response::from_parts(parts, Empty::new().map_err(|never| match never {}).boxed());
    }
    let (mut parts, body) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    parts.version = Version::HTTP_11;
    let body = Tracked {
        inner: body,
        in_flight: Some(in_flight),
    };
    Response::from_parts(parts, body.map_err(BoxError::from).boxed())
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

/// A backend's response body, counted as in flight until it ends or is dropped.
struct Tracked {
    inner: Incoming,
    in_flight: Option<InFlight>,
}

impl Body for Tracked {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None | Some(Err(_)))) {
            self.in_flight = None;
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
    let mut response = page(StatusCode::SERVICE_UNAVAILABLE, &route.unavailable);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
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
            // Garbage in Connection names nothing and removes nothing else.
            (&[("connection", "\"bad header\", ,"), ("a", "1")], &["a"]),
        ];
        for (input, want) in cases {
            let mut map = headers(input);
            strip_hop_by_hop(&mut map);
            assert_eq!(names(&map), *want, "{input:?}");
        }
    }

    #[test]
    fn forwarded_headers_are_set() {
        let peer: IpAddr = "192.0.2.7".parse().unwrap();
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[], "192.0.2.7"),
            (
                &[("x-forwarded-for", "203.0.113.1")],
                "203.0.113.1, 192.0.2.7",
            ),
            (
                &[
                    ("x-forwarded-for", "1.1.1.1"),
                    ("x-forwarded-for", "2.2.2.2"),
                ],
                "1.1.1.1, 2.2.2.2, 192.0.2.7",
            ),
        ];
        for (input, want) in cases {
            let mut map = headers(input);
            map.insert("x-forwarded-proto", HeaderValue::from_static("https"));
            map.insert("x-forwarded-host", HeaderValue::from_static("evil.example"));
            forward_headers(&mut map, peer, "Web.example.com:8080", Scheme::Http, None).unwrap();
            assert_eq!(map["x-forwarded-for"], *want);
            assert_eq!(map.get_all("x-forwarded-for").iter().count(), 1);
            assert_eq!(map["x-forwarded-proto"], "http");
            assert_eq!(map["x-forwarded-host"], "Web.example.com:8080");
            assert_eq!(map["host"], "Web.example.com:8080");
        }
        let mut map = HeaderMap::new();
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        forward_headers(&mut map, mapped, "web", Scheme::Http, None).unwrap();
        assert_eq!(map["x-forwarded-for"], "192.0.2.7");
        // A client's own X-Forwarded-Proto never survives: the listener decides it.
        for (scheme, client_says, want) in [
            (Scheme::Https, "http", "https"),
            (Scheme::Http, "https", "http"),
        ] {
            let mut map = headers(&[("x-forwarded-proto", client_says)]);
            forward_headers(&mut map, peer, "web", scheme, None).unwrap();
            assert_eq!(map["x-forwarded-proto"], want);
            assert_eq!(map.get_all("x-forwarded-proto").iter().count(), 1);
        }
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
                "127.0.0.1".parse().unwrap(),
                "web",
                Scheme::Http,
                websocket_upgrade(&map),
            )
            .unwrap();
            assert_eq!(forwarded.contains_key("upgrade"), *want, "{input:?}");
        }
    }

    #[test]
    fn backend_uris() {
        let path = PathAndQuery::from_static("/a/b?c=d");
        let cases: &[(&str, Option<&str>)] = &[
            ("10.0.0.1", Some("http://10.0.0.1:8080/a/b?c=d")),
            ("fd00::1", Some("http://[fd00::1]:8080/a/b?c=d")),
            ("web.internal", None),
            ("10.0.0.1:80", None),
            ("", None),
        ];
        for (address, want) in cases {
            let backend = Backend {
                instance: "i".into(),
                address: address.to_string(),
                port: 8080,
            };
            assert_eq!(
                backend_uri(&backend, &path)
                    .map(|u| u.to_string())
                    .as_deref(),
                *want,
                "{address:?}"
            );
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
