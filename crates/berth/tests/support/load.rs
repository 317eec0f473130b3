//! A load through the router for end-to-end tests: keep-alive clients sending requests until
//! stopped, counting them and every failure.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use super::Server;

/// Requests running through the router until stopped: how many, and each failure.
pub struct Load {
    stop: Arc<AtomicBool>,
    done: Arc<AtomicUsize>,
    failures: Arc<std::sync::Mutex<Vec<String>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// What a [`Load`] sends.
#[derive(Clone, Copy, PartialEq)]
pub enum Mix {
    /// `GET /` and `POST /slow?ms=150`, alternately.
    GetAndPost,
    /// `GET /` only: every request is one the router may retry on another instance.
    GetOnly,
}

impl Load {
    /// `clients` loops on `host`, each with its own keep-alive connection, alternating
    /// `GET /` (which the router may retry on another instance) and `POST /slow?ms=150` (which
    /// it never retries, and which is in flight much of the time: only draining keeps it from
    /// failing when its instance is stopped) — or, with [`Mix::GetOnly`], `GET /` only.
    pub fn start(server: &Server, host: &str, clients: usize, mix: Mix) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicUsize::new(0));
        let failures = Arc::new(std::sync::Mutex::new(Vec::new()));
        let base = format!("http://127.0.0.1:{}", server.router_port);
        let tasks = (0..clients)
            .map(|_| {
                let (stop, done, failures) = (stop.clone(), done.clone(), failures.clone());
                let (base, host) = (base.clone(), host.to_string());
                let client = reqwest::Client::builder().no_proxy().build().unwrap();
                tokio::spawn(async move {
                    let mut post = false;
                    while !stop.load(Ordering::SeqCst) {
                        post = mix == Mix::GetAndPost && !post;
                        let request = if post {
                            client.post(format!("{base}/slow?ms=150"))
                        } else {
                            client.get(format!("{base}/"))
                        };
                        let outcome = request
                            .header(reqwest::header::HOST, &host)
                            .timeout(Duration::from_secs(30))
                            .send()
                            .await;
                        match outcome {
                            Ok(response) if response.status() == 200 => {
                                let _ = response.bytes().await;
                            }
                            Ok(response) => {
                                let status = response.status();
                                let body = response.text().await.unwrap_or_default();
                                failures.lock().unwrap().push(format!("{status}: {body}"));
                            }
                            Err(error) => failures.lock().unwrap().push(error.to_string()),
                        }
                        done.fetch_add(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        Load {
            stop,
            done,
            failures,
            tasks,
        }
    }

    /// Stops the load and checks that at least `at_least` requests ran and none failed
    /// (naming `what` and showing `logs` otherwise).
    pub async fn finish_without_failures(self, what: &str, at_least: usize, logs: &str) {
        let (done, failures) = self.finish().await;
        assert!(done >= at_least, "{what}: only {done} requests ran");
        assert!(
            failures.is_empty(),
            "{what}: {} of {done} requests failed: {:?}\n{logs}",
            failures.len(),
            &failures[..failures.len().min(10)],
        );
    }

    /// Stops the load; returns the requests made and the failures.
    pub async fn finish(self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        for task in self.tasks {
            task.await.unwrap();
        }
        let failures = self.failures.lock().unwrap().clone();
        (self.done.load(Ordering::SeqCst), failures)
    }
}
