//! Test harness: a real registry served on a random 127.0.0.1 port, storage in a temp dir,
//! and helpers speaking the protocol with reqwest.
#![allow(dead_code)] // each test binary uses a different part of the harness

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use berth_registry::{Authorizer, Clock, Digest, Registry, RegistryConfig, StaticAuthorizer};
use reqwest::{Client, Response, StatusCode};

pub const USER: &str = "admin";
pub const PASSWORD: &str = "secret";

/// A registry served over HTTP for one test.
pub struct TestRegistry {
    pub addr: SocketAddr,
    pub registry: Arc<Registry>,
    pub dir: tempfile::TempDir,
    pub client: Client,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// A clock the test moves by hand.
#[derive(Debug)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    pub fn new(at: SystemTime) -> Arc<Self> {
        Arc::new(Self(AtomicU64::new(
            at.duration_since(UNIX_EPOCH).unwrap().as_millis() as u64,
        )))
    }
    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(by.as_millis() as u64, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.0.load(Ordering::SeqCst))
    }
}

pub async fn start() -> TestRegistry {
    start_with(
        Arc::new(StaticAuthorizer::new(USER, PASSWORD)),
        RegistryConfig::default(),
        None,
    )
    .await
}

pub async fn start_with(
    authorizer: Arc<dyn Authorizer>,
    config: RegistryConfig,
    clock: Option<Arc<dyn Clock>>,
) -> TestRegistry {
    let dir = tempfile::tempdir().unwrap();
    let mut registry = Registry::open(dir.path().join("registry"), authorizer, config).unwrap();
    if let Some(clock) = clock {
        registry = registry.with_clock(clock);
    }
    serve(Arc::new(registry), dir).await
}

/// Serves an existing registry (e.g. one reopened on the same directory).
pub async fn serve(registry: Arc<Registry>, dir: tempfile::TempDir) -> TestRegistry {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = berth_registry::router(registry.clone());
    // As the berth server must: without TCP_NODELAY a response's headers and body wait for
    // the client's delayed ACK (40 ms per request).
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let server = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    TestRegistry {
        addr,
        registry,
        dir,
        client: Client::new(),
        server,
    }
}

impl TestRegistry {
    /// `127.0.0.1:<port>`, the registry host as docker and skopeo see it.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A request with the admin's basic credentials.
    pub fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            self.url(path)
        };
        self.client
            .request(method, url)
            .basic_auth(USER, Some(PASSWORD))
    }

    /// Blob directory on disk.
    /// Starts an upload in `repo` (`POST …/blobs/uploads/`); returns its location.
    pub async fn start_upload(&self, repo: &str) -> String {
        let r = self
            .req(reqwest::Method::POST, &format!("/v2/{repo}/blobs/uploads/"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), reqwest::StatusCode::ACCEPTED);
        r.headers()["location"].to_str().unwrap().to_owned()
    }

    /// Sends a chunk of an upload (`PATCH`), without a range.
    pub async fn patch_upload(&self, location: &str, chunk: &[u8]) -> Response {
        self.req(reqwest::Method::PATCH, location)
            .body(chunk.to_vec())
            .send()
            .await
            .unwrap()
    }

    pub fn blob_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("registry/blobs")
    }

    pub fn upload_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("registry/uploads")
    }

    /// Monolithic push (`POST ?digest=`); returns the digest.
    pub async fn push_blob(&self, repo: &str, data: &[u8]) -> Digest {
        let digest = Digest::of(data);
        let r = self
            .req(
                reqwest::Method::POST,
                &format!("/v2/{repo}/blobs/uploads/?digest={digest}"),
            )
            .body(data.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            StatusCode::CREATED,
            "{}",
            r.text().await.unwrap()
        );
        digest
    }

    /// Pushes an OCI image manifest with the given config and layers (already pushed).
    pub async fn push_manifest(
        &self,
        repo: &str,
        reference: &str,
        manifest: &[u8],
        media_type: &str,
    ) -> Response {
        self.req(
            reqwest::Method::PUT,
            &format!("/v2/{repo}/manifests/{reference}"),
        )
        .header("content-type", media_type)
        .body(manifest.to_vec())
        .send()
        .await
        .unwrap()
    }

    /// Pushes a small random image (config + `layers` random layers) and tags it.
    pub async fn push_image(
        &self,
        repo: &str,
        tag: &str,
        layers: usize,
        layer_size: usize,
    ) -> TestImage {
        let mut layer_descs = Vec::new();
        let mut layer_digests = Vec::new();
        for _ in 0..layers {
            let data = random_bytes(layer_size);
            let d = self.push_blob(repo, &data).await;
            layer_descs.push(descriptor(
                "application/vnd.oci.image.layer.v1.tar",
                &d,
                data.len(),
            ));
            layer_digests.push(d);
        }
        let config = format!(
            r#"{{"created":"2024-05-06T07:08:09Z","architecture":"amd64","os":"linux","config":{{"Cmd":["/app"],"Env":["N={}"]}},"rootfs":{{"type":"layers","diff_ids":[]}}}}"#,
            random_hex(8)
        );
        let config_digest = self.push_blob(repo, config.as_bytes()).await;
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor("application/vnd.oci.image.config.v1+json", &config_digest, config.len()),
            "layers": layer_descs,
        });
        let body = serde_json::to_vec(&manifest).unwrap();
        let r = self.push_manifest(repo, tag, &body, OCI_MANIFEST).await;
        assert_eq!(
            r.status(),
            StatusCode::CREATED,
            "{}",
            r.text().await.unwrap()
        );
        TestImage {
            digest: Digest::of(&body),
            config: config_digest,
            layers: layer_digests,
            manifest: body,
        }
    }
}

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

#[derive(Debug, Clone)]
pub struct TestImage {
    pub digest: Digest,
    pub config: Digest,
    pub layers: Vec<Digest>,
    pub manifest: Vec<u8>,
}

pub fn descriptor(media_type: &str, digest: &Digest, size: usize) -> serde_json::Value {
    serde_json::json!({ "mediaType": media_type, "digest": digest.as_str(), "size": size })
}

pub fn random_bytes(n: usize) -> Vec<u8> {
    (0..n).map(|_| rand_byte()).collect()
}

fn rand_byte() -> u8 {
    // Cheap xorshift seeded per thread from the clock; tests only need distinct content.
    use std::cell::Cell;
    thread_local!(static STATE: Cell<u64> = Cell::new(
        SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64 | 1
    ));
    STATE.with(|s| {
        let mut x = s.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        (x >> 24) as u8
    })
}

pub fn random_hex(n: usize) -> String {
    random_bytes(n).iter().map(|b| format!("{b:02x}")).collect()
}

/// Sizes of all files under a directory, recursively.
pub fn dir_usage(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let meta = e.metadata().unwrap();
            total += if meta.is_dir() {
                dir_usage(&e.path())
            } else {
                meta.len()
            };
        }
    }
    total
}

/// Number of files under a directory, recursively.
pub fn file_count(dir: &std::path::Path) -> usize {
    let mut n = 0;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            n += if e.metadata().unwrap().is_dir() {
                file_count(&e.path())
            } else {
                1
            };
        }
    }
    n
}

/// The OCI error codes of an error response body.
pub async fn error_codes(r: Response) -> Vec<String> {
    let v: serde_json::Value = r.json().await.unwrap();
    v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["code"].as_str().unwrap().to_owned())
        .collect()
}
