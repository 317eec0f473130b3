//! An in-process Berth registry on a random loopback port, for tests that push images to it.

use std::net::SocketAddr;
use std::sync::Arc;

use berth_registry::{Registry, RegistryConfig, StaticAuthorizer};

/// A registry served over HTTP on `127.0.0.1` with one user, stored in a temporary directory;
/// the server stops and the storage goes when it is dropped.
#[derive(Debug)]
pub struct TestRegistry {
    addr: SocketAddr,
    registry: Arc<Registry>,
    username: String,
    password: String,
    server: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl TestRegistry {
    /// Starts a registry that allows `username`/`password` everything.
    ///
    /// # Panics
    /// When no temporary directory or loopback port can be had.
    pub async fn start(username: &str, password: &str) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory for the registry");
        let registry = Registry::open(
            dir.path().join("registry"),
            Arc::new(StaticAuthorizer::new(username, password)),
            RegistryConfig::default(),
        )
        .expect("open the registry");
        let registry = Arc::new(registry);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port for the registry");
        let addr = listener.local_addr().expect("registry address");
        // As the berth server does: without TCP_NODELAY each response waits for a delayed ACK.
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let app = berth_registry::router(registry.clone());
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                eprintln!("test registry stopped: {e}");
            }
        });
        Self {
            addr,
            registry,
            username: username.to_owned(),
            password: password.to_owned(),
            server,
            _dir: dir,
        }
    }

    /// `127.0.0.1:<port>`: the registry host in image references (Docker treats loopback
    /// registries as insecure, so plain HTTP works).
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// The allowed user name.
    pub fn username(&self) -> &str {
        &self.username
    }

    /// The allowed user's password.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// The registry behind the server, for looking at what was pushed.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The manifest digest `repo:tag` points at, or `None` when there is no such tag.
    pub async fn digest_of(&self, repo: &str, tag: &str) -> Option<String> {
        self.registry
            .image_detail(repo, tag)
            .await
            .ok()
            .map(|detail| detail.digest)
    }

    /// The tags of `repo` (empty when it does not exist).
    pub async fn tags(&self, repo: &str) -> Vec<String> {
        let mut tags: Vec<String> = self
            .registry
            .list_tags(repo)
            .await
            .map(|tags| tags.into_iter().map(|t| t.tag).collect())
            .unwrap_or_default();
        tags.sort();
        tags
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        self.server.abort();
    }
}
