//! The router's own threads: one single-threaded tokio runtime per thread, each accepting on
//! its own handle of the same listening sockets and serving the connections it accepted to the
//! end, with its own backend connections ([`crate::pool`]).
//!
//! A proxied request crosses two tasks (the client connection's and the backend connection's).
//! On a work-stealing runtime shared with the control plane, every crossing may wake another
//! thread (a futex call and a context switch); on a thread of its own both tasks run where the
//! request arrived, the way nginx's worker processes serve theirs.

use std::cell::Cell;
use std::future::Future;
use std::io;

use tokio::sync::oneshot;
use tracing::warn;

thread_local! {
    /// This thread's index among the router's threads; 0 on every other thread.
    static INDEX: Cell<usize> = const { Cell::new(0) };
}

/// The calling thread's index among the router's threads (1, 2, …), or 0 off them.
pub(crate) fn current_index() -> usize {
    INDEX.with(Cell::get)
}

/// Runs `count` threads named `name-1`, `name-2`…, each blocking on `serve(index)` (0-based)
/// in a single-threaded runtime of its own (timers and I/O on). Returns once they are all
/// started; the future it returns resolves when every one of them has ended.
///
/// `serve` is called on the new thread, inside its runtime, so it may open tokio sockets there
/// (e.g. `TcpListener::from_std` of a cloned listener).
pub fn spawn<F, Fut>(
    name: &str,
    count: usize,
    serve: F,
) -> io::Result<impl Future<Output = ()> + Send + 'static>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let serve = std::sync::Arc::new(serve);
    let mut ended = Vec::with_capacity(count);
    for index in 0..count.max(1) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (done, finished) = oneshot::channel::<()>();
        let serve = std::sync::Arc::clone(&serve);
        std::thread::Builder::new()
            .name(format!("{name}-{}", index + 1))
            .spawn(move || {
                INDEX.with(|slot| slot.set(index + 1));
                let serving = {
                    let _inside = runtime.enter();
                    serve(index)
                };
                runtime.block_on(serving);
                // Connections still open here (past the shutdown grace) are dropped with the
                // runtime.
                drop(runtime);
                let _ = done.send(());
            })?;
        ended.push(finished);
    }
    Ok(async move {
        for finished in ended {
            if finished.await.is_err() {
                warn!("router: a router thread ended with a panic");
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[tokio::test]
    async fn each_thread_serves_with_its_own_index_and_the_future_waits_for_all() {
        let seen = std::sync::Arc::new(Mutex::new(Vec::new()));
        let record = std::sync::Arc::clone(&seen);
        let all_ended = spawn("test-router", 3, move |index| {
            let record = std::sync::Arc::clone(&record);
            // Called inside the thread's runtime: tokio sockets can be made here.
            let made_inside = tokio::runtime::Handle::try_current().is_ok();
            async move {
                assert!(made_inside);
                // A timer works: the runtime has one.
                tokio::time::sleep(std::time::Duration::from_millis(10 * index as u64)).await;
                record.lock().unwrap().push((
                    index,
                    current_index(),
                    std::thread::current().name().map(String::from),
                ));
            }
        })
        .expect("threads start");
        all_ended.await;
        let mut seen = seen.lock().unwrap().clone();
        seen.sort();
        assert_eq!(
            seen,
            vec![
                (0, 1, Some("test-router-1".to_string())),
                (1, 2, Some("test-router-2".to_string())),
                (2, 3, Some("test-router-3".to_string())),
            ]
        );
        assert_eq!(
            current_index(),
            0,
            "the calling thread is not a router thread"
        );
    }
}
