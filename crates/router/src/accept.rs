//! Accepting client connections and handing each to a worker: one accept loop per listening
//! socket gives every new connection to the worker with the fewest open connections, and the
//! worker serves it to its end on its own event loop (a router thread of its own, see
//! [`crate::threads`], or the caller's runtime for [`crate::serve`]).
//!
//! Workers sharing one listening socket do not share its connections fairly: the thread that
//! wakes first accepts all that are waiting, so a burst of clients (a load test's 64
//! connections) lands on one thread while the others idle. Handing connections out from one
//! place keeps the workers evenly loaded, and the listening sockets stay single, as a handover
//! passes them on.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, warn};

use crate::proxy::{Proxy, Scheme, handshake, serve_connection};

/// A connection accepted for a worker, with the TLS settings of the listener it came in on.
struct Accepted {
    stream: std::net::TcpStream,
    peer: SocketAddr,
    tls: Option<Arc<ServerConfig>>,
}

/// An accept loop's way to a worker.
#[derive(Clone)]
pub(crate) struct WorkerHandle {
    queue: mpsc::UnboundedSender<Accepted>,
    /// Connections handed to the worker and not yet closed.
    open: Arc<AtomicUsize>,
}

/// A worker's side: the connections handed to it.
pub(crate) struct WorkerQueue {
    queue: mpsc::UnboundedReceiver<Accepted>,
    open: Arc<AtomicUsize>,
}

/// A new worker's two ends.
pub(crate) fn worker() -> (WorkerHandle, WorkerQueue) {
    let (sender, receiver) = mpsc::unbounded_channel();
    let open = Arc::new(AtomicUsize::new(0));
    (
        WorkerHandle {
            queue: sender,
            open: Arc::clone(&open),
        },
        WorkerQueue {
            queue: receiver,
            open,
        },
    )
}

/// Counts a connection as open on its worker until dropped.
struct OpenConnection(Arc<AtomicUsize>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The worker to hand the next connection to: the one with the fewest open connections; among
/// equals, the first after `turn` (so a burst on idle workers is spread round-robin).
fn least_busy(open: &[usize], turn: usize) -> usize {
    let count = open.len();
    (0..count)
        .map(|step| (turn + step) % count)
        .min_by_key(|&index| open[index])
        .unwrap_or(0)
}

/// Accepts on `listener` until `shutdown` resolves (then the socket is closed here; handles of
/// it held elsewhere, for a handover, stay open) and hands every connection to a worker.
pub(crate) async fn accept(
    listener: TcpListener,
    tls: Option<Arc<ServerConfig>>,
    workers: Arc<[WorkerHandle]>,
    shutdown: impl Future<Output = ()>,
) {
    let mut shutdown = std::pin::pin!(shutdown);
    let mut turn = 0;
    let mut open = vec![0; workers.len()];
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
        // Off this runtime's event loop, onto the worker's.
        let stream = match stream.into_std() {
            Ok(stream) => stream,
            Err(err) => {
                debug!(error = %err, %peer, "router: cannot hand a connection over");
                continue;
            }
        };
        for (count, worker) in open.iter_mut().zip(workers.iter()) {
            *count = worker.open.load(Ordering::Relaxed);
        }
        let chosen = least_busy(&open, turn);
        turn = (chosen + 1) % workers.len().max(1);
        let Some(worker) = workers.get(chosen) else {
            return;
        };
        worker.open.fetch_add(1, Ordering::Relaxed);
        let accepted = Accepted {
            stream,
            peer,
            tls: tls.clone(),
        };
        if worker.queue.send(accepted).is_err() {
            // The worker has stopped: the router is stopping.
            worker.open.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Serves the connections handed to `queue` until `shutdown` turns `true` (or every accept
/// loop has ended), then lets open connections finish their requests (at most
/// `config.shutdown_grace`).
pub(crate) async fn work(
    mut queue: WorkerQueue,
    proxy: Arc<Proxy>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut stops = ConnectionStops::new();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => break,
            accepted = queue.queue.recv() => match accepted {
                Some(accepted) => accepted,
                None => break,
            },
        };
        let open = OpenConnection(Arc::clone(&queue.open));
        let Accepted { stream, peer, tls } = accepted;
        let stream = match TcpStream::from_std(stream) {
            Ok(stream) => stream,
            Err(err) => {
                warn!(error = %err, %peer, "router: cannot serve a connection");
                continue;
            }
        };
        let proxy = Arc::clone(&proxy);
        let mut stopping = stops.listen();
        match tls {
            None => {
                tokio::spawn(async move {
                    serve_connection(proxy, stream, peer, Scheme::Http, stopping).await;
                    drop(open);
                });
            }
            Some(tls) => {
                tokio::spawn(async move {
                    let stream = tokio::select! {
                        done = handshake(&proxy, stream, tls) => done,
                        () = stopping.requested() => return,
                    };
                    match stream {
                        Ok(stream) => {
                            serve_connection(proxy, stream, peer, Scheme::Https, stopping).await;
                        }
                        Err(why) => debug!(error = %why, %peer, "router: TLS handshake failed"),
                    }
                    drop(open);
                });
            }
        }
    }
    proxy.closing.store(true, Ordering::Relaxed);
    // Connections handed over and not yet taken are closed unanswered, as a closed listening
    // socket's backlog would be.
    drop(queue);
    if tokio::time::timeout(proxy.config.shutdown_grace, stops.stop_all())
        .await
        .is_err()
    {
        warn!("router: connections still open after the shutdown grace period");
    }
}

/// Asks a worker's connections to finish, and sees them go.
///
/// Each connection has a signal of its own: a connection's task looks at it every time it
/// wakes up, twice or more per request, and a lone `oneshot` is one atomic load there, where a
/// `watch` shared by all the worker's connections takes the channel's lock on every look.
struct ConnectionStops {
    signals: Vec<oneshot::Sender<()>>,
    /// How many signals there may be before those of closed connections are dropped.
    tidy_at: usize,
    /// Held by every connection: the sender sees `closed()` once the last one is gone.
    open: watch::Sender<()>,
}

/// A connection's end of [`ConnectionStops`].
pub(crate) struct StopRequest {
    signal: oneshot::Receiver<()>,
    _open: watch::Receiver<()>,
}

impl StopRequest {
    /// Resolves once the worker asks its connections to finish (or is gone).
    pub(crate) async fn requested(&mut self) {
        // A sent signal and a dropped sender both mean stop.
        let _ = (&mut self.signal).await;
    }
}

impl ConnectionStops {
    const FIRST_TIDY: usize = 64;

    fn new() -> ConnectionStops {
        ConnectionStops {
            signals: Vec::new(),
            tidy_at: Self::FIRST_TIDY,
            open: watch::Sender::new(()),
        }
    }

    /// A new connection's end.
    fn listen(&mut self) -> StopRequest {
        if self.signals.len() >= self.tidy_at {
            self.signals.retain(|signal| !signal.is_closed());
            // Doubling keeps the tidying at a constant cost per connection.
            self.tidy_at = (self.signals.len() * 2).max(Self::FIRST_TIDY);
        }
        let (signal, requested) = oneshot::channel();
        self.signals.push(signal);
        StopRequest {
            signal: requested,
            _open: self.open.subscribe(),
        }
    }

    /// Asks every connection to finish and waits until none is left.
    async fn stop_all(&mut self) {
        for signal in self.signals.drain(..) {
            let _ = signal.send(());
        }
        self.open.closed().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_busy_worker_gets_the_connection_and_equals_take_turns() {
        let cases: &[(&[usize], usize, usize)] = &[
            // (open connections per worker, turn, chosen)
            (&[0], 0, 0),
            (&[0, 0], 0, 0),
            (&[0, 0], 1, 1),
            (&[0, 0, 0], 2, 2),
            (&[3, 1, 2], 0, 1),
            (&[3, 1, 2], 2, 1),
            (&[1, 1, 0], 0, 2),
            (&[2, 1, 1], 0, 1),
            (&[2, 1, 1], 2, 2),
            (&[5, 5], 1, 1),
        ];
        for &(open, turn, chosen) in cases {
            assert_eq!(least_busy(open, turn), chosen, "{open:?} turn {turn}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn every_connection_hears_the_stop_and_the_worker_waits_for_the_last_one() {
        let mut stops = ConnectionStops::new();
        // Connections that ended on their own are forgotten as more come.
        for _ in 0..200 {
            drop(stops.listen());
        }
        assert!(stops.signals.len() <= 2 * ConnectionStops::FIRST_TIDY);
        let finished = Arc::new(AtomicUsize::new(0));
        for delay_ms in [10, 500, 2_000] {
            let mut request = stops.listen();
            let finished = Arc::clone(&finished);
            tokio::spawn(async move {
                request.requested().await;
                // Its last request takes a while yet.
                tokio::time::sleep(std::time::Duration::from_millis(delay_ms)).await;
                finished.fetch_add(1, Ordering::Relaxed);
                drop(request);
            });
        }
        let started = tokio::time::Instant::now();
        stops.stop_all().await;
        assert_eq!(finished.load(Ordering::Relaxed), 3);
        assert!(started.elapsed() >= std::time::Duration::from_millis(2_000));
    }

    #[tokio::test]
    async fn a_burst_of_connections_is_spread_over_the_workers() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (handles, mut queues): (Vec<_>, Vec<_>) = (0..3).map(|_| worker()).unzip();
        let (stop, stopped) = watch::channel(false);
        let accepting = tokio::spawn(accept(listener, None, handles.into(), async move {
            let mut stopped = stopped;
            let _ = stopped.wait_for(|stop| *stop).await;
        }));
        let mut clients = Vec::new();
        for _ in 0..9 {
            clients.push(TcpStream::connect(address).await.unwrap());
        }
        let mut taken = vec![0; queues.len()];
        for _ in 0..9 {
            // Every worker keeps the connections it was given open (none is served here).
            let (index, _accepted) =
                tokio::time::timeout(std::time::Duration::from_secs(5), async {
                    loop {
                        for (index, queue) in queues.iter_mut().enumerate() {
                            if let Ok(accepted) = queue.queue.try_recv() {
                                return (index, accepted);
                            }
                        }
                        tokio::task::yield_now().await;
                    }
                })
                .await
                .expect("every connection is handed over");
            taken[index] += 1;
        }
        assert_eq!(taken, vec![3, 3, 3]);
        stop.send_replace(true);
        accepting.await.unwrap();
    }
}
