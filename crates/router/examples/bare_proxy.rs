//! The floor under Berth's router, for benchmark 8 (`bench/08-router.py --bare`): the least an
//! HTTP/1.1 reverse proxy on hyper can do, on the router's own threads model (one accept loop
//! handing connections to single-threaded runtimes, keep-alive connections to the instances
//! pooled per thread) and nothing else: no routing table, no headers added, no metering, no
//! retries, no limits. What Berth's router costs per request beyond this is its own logic;
//! what this costs beyond nginx is hyper and tokio.
//!
//! `cargo run --release -p berth-router --example bare_proxy -- 127.0.0.1:8080 10.0.0.2:8080 10.0.0.3:8080`

use std::cell::{Cell, RefCell};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::rc::Rc;

use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// One thread's idle connections to each backend, and its round-robin position.
struct ThreadPool {
    backends: Vec<SocketAddr>,
    idle: Vec<RefCell<Vec<SendRequest<Incoming>>>>,
    next: Cell<usize>,
}

impl ThreadPool {
    async fn forward(&self, mut request: Request<Incoming>) -> Response<Incoming> {
        let index = self.next.get() % self.backends.len();
        self.next.set(index + 1);
        // A connection whose last response body is still on its way is not ready yet: it
        // stays in the list for later.
        let pooled = {
            let mut idle = self.idle[index].borrow_mut();
            idle.retain(|sender| !sender.is_closed());
            let ready = idle.iter().rposition(|sender| sender.is_ready());
            ready.map(|at| idle.swap_remove(at))
        };
        let mut sender = match pooled {
            Some(sender) => sender,
            None => connect(self.backends[index]).await,
        };
        *request.uri_mut() = request
            .uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
            .parse()
            .expect("a path is a URI");
        let response = sender
            .send_request(request)
            .await
            .expect("the backend answers");
        self.idle[index].borrow_mut().push(sender);
        response
    }
}

async fn connect(address: SocketAddr) -> SendRequest<Incoming> {
    let stream = TcpStream::connect(address)
        .await
        .expect("the backend accepts");
    stream.set_nodelay(true).expect("nodelay");
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::task::spawn_local(connection);
    sender
}

fn serve_thread(
    backends: Vec<SocketAddr>,
    mut connections: mpsc::UnboundedReceiver<std::net::TcpStream>,
) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async move {
        let pool = Rc::new(ThreadPool {
            idle: backends.iter().map(|_| RefCell::default()).collect(),
            backends,
            next: Cell::new(0),
        });
        while let Some(stream) = connections.recv().await {
            let pool = Rc::clone(&pool);
            // Registered with this thread's reactor (it was accepted on another).
            let stream = TcpStream::from_std(stream).expect("a socket");
            tokio::task::spawn_local(async move {
                let service = service_fn(move |request| {
                    let pool = Rc::clone(&pool);
                    async move {
                        let mut response = pool.forward(request).await;
                        if response.status() == StatusCode::SWITCHING_PROTOCOLS {
                            *response.status_mut() = StatusCode::BAD_GATEWAY;
                        }
                        Ok::<_, Infallible>(response)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}

fn main() {
    let mut args = std::env::args().skip(1);
    let listen: SocketAddr = args
        .next()
        .and_then(|a| a.parse().ok())
        .expect("usage: bare_proxy LISTEN BACKEND...");
    let backends: Vec<SocketAddr> = args
        .map(|a| a.parse().expect("a backend address"))
        .collect();
    assert!(!backends.is_empty(), "usage: bare_proxy LISTEN BACKEND...");
    let threads = std::env::var("ROUTER_THREADS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let senders: Vec<_> = (0..threads)
        .map(|_| {
            let (sender, receiver) = mpsc::unbounded_channel();
            let backends = backends.clone();
            std::thread::spawn(move || serve_thread(backends, receiver));
            sender
        })
        .collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async move {
        let listener = TcpListener::bind(listen).await.expect("bind");
        for n in 0usize.. {
            let (stream, _) = listener.accept().await.expect("accept");
            stream.set_nodelay(true).expect("nodelay");
            let _ = senders[n % senders.len()].send(stream.into_std().expect("a socket"));
        }
    });
}
