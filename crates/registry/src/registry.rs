//! The registry core: repositories, blob links, upload sessions, manifests, tags and
//! referrers on top of the storage seam. The HTTP layer (`http.rs`) is a thin translation of
//! the protocol onto these methods.
//!
//! Metadata layout (keys of the [`MetadataStore`]):
//!
//! ```text
//! repositories/<name>/_layers/sha256/<hex>                      blob linked into the repo
//! repositories/<name>/_manifests/sha256/<hex>                   manifest record (JSON)
//! repositories/<name>/_tags/<tag>                               tag -> digest (JSON)
//! repositories/<name>/_referrers/sha256/<subject hex>/<hex>     referrers index
//! ```
//!
//! Manifest bytes are stored as blobs (content-addressed, exact bytes); the record beside them
//! caches what validation found (references, sizes, subject) so listing, referrers and garbage
//! collection never re-parse manifests.
//!
//! Concurrency with garbage collection: every operation that makes a blob referenced (commit,
//! mount, manifest put) holds `gc_lock` for reading while it checks and writes, and records
//! the digests it touched; the sweep holds it for writing and spares anything touched since
//! the mark began or within the grace period. With [`NamespaceLimits`], those operations first
//! take their namespace's quota lock (always before `gc_lock`), check the limit and only then
//! make the blob visible.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::json;
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::auth::{Access, Action, AuthDecision, Authorizer, Credentials};
use crate::error::{RegistryError, Result};
use crate::manifest::{self, ManifestKind, ParsedManifest};
use crate::quota::NamespaceLimits;
use crate::ranges::{ByteRange, parse_content_range};
use crate::reference::{Digest, Reference, RepoName, Tag};
use crate::storage::{BlobEntry, BlobReader, BlobStore, FsStorage, MetadataStore};

/// A request body as the registry consumes it.
pub type BodyStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

/// Tunables.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// An upload session untouched for this long is abandoned; `expire_uploads` removes it.
    pub upload_expiry: Duration,
    /// Blobs and manifests younger than this are never collected (pushes in flight).
    pub gc_grace_period: Duration,
    /// Largest manifest accepted (413 beyond).
    pub max_manifest_bytes: usize,
    /// Realm of the basic-auth challenge.
    pub realm: String,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            upload_expiry: Duration::from_secs(3600),
            gc_grace_period: Duration::from_secs(600),
            max_manifest_bytes: 4 << 20,
            realm: "Berth Registry".to_owned(),
        }
    }
}

/// Where the registry gets the time for timestamps it records (pushes, links, uploads).
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> SystemTime;
}

/// The platform's clock (`berth_core::clock`), read as file times. The registry keeps
/// no clock of its own: the server hands it the one every part of Berth reads.
impl Clock for berth_core::clock::Clock {
    fn now(&self) -> SystemTime {
        berth_core::clock::to_system_time(self())
    }
}

pub(crate) struct UploadSession {
    repo: RepoName,
    hasher: Sha256,
    size: u64,
    pub(crate) last_activity: SystemTime,
    pub(crate) closed: bool,
}

/// An upload session as storage keeps it, written when it starts and after every chunk: the
/// bytes it holds so far (the file may hold more, of a chunk that failed). Any server reaching
/// the storage takes the session up from it — the session may have begun on another server
/// of the installation, or before a restart — by hashing those bytes again.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct UploadRecord {
    repo: String,
    size: u64,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Touch {
    pub(crate) at: SystemTime,
    pub(crate) seq: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct LinkRecord {
    pub(crate) linked_at_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TagRecord {
    pub(crate) digest: String,
    pub(crate) updated_at_ms: u64,
}

/// What the registry remembers about a stored manifest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ManifestRecord {
    pub(crate) media_type: String,
    pub(crate) size: u64,
    pub(crate) pushed_at_ms: u64,
    #[serde(default)]
    pub(crate) config: Option<String>,
    #[serde(default)]
    pub(crate) layers: Vec<String>,
    #[serde(default)]
    pub(crate) manifests: Vec<String>,
    #[serde(default)]
    pub(crate) subject: Option<String>,
    #[serde(default)]
    pub(crate) artifact_type: Option<String>,
    #[serde(default)]
    pub(crate) annotations: BTreeMap<String, String>,
    /// Config + layers for images; the sum over children for indexes.
    #[serde(default)]
    pub(crate) content_size: u64,
    /// The image config's `created` (for indexes: the newest child's).
    #[serde(default)]
    pub(crate) created: Option<String>,
}

impl ManifestRecord {
    /// Every digest this manifest keeps alive (not counting itself).
    pub(crate) fn references(&self) -> impl Iterator<Item = &str> {
        self.config
            .iter()
            .chain(&self.layers)
            .chain(&self.manifests)
            .chain(&self.subject)
            .map(String::as_str)
    }
}

/// A manifest as served.
#[derive(Debug, Clone)]
pub(crate) struct StoredManifest {
    pub(crate) digest: Digest,
    pub(crate) media_type: String,
    pub(crate) body: Bytes,
}

/// The result of a manifest push.
#[derive(Debug, Clone)]
pub(crate) struct PushedManifest {
    pub(crate) digest: Digest,
    pub(crate) subject: Option<Digest>,
}

/// One entry of a referrers list.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ReferrerDescriptor {
    pub(crate) media_type: String,
    pub(crate) size: u64,
    pub(crate) digest: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) artifact_type: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) annotations: BTreeMap<String, String>,
}

pub(crate) mod keys {
    use crate::reference::{Digest, RepoName};

    pub(crate) fn layers_dir(repo: &RepoName) -> String {
        format!("repositories/{repo}/_layers/sha256/")
    }
    pub(crate) fn layer(repo: &RepoName, d: &Digest) -> String {
        format!("{}{}", layers_dir(repo), d.hex())
    }
    pub(crate) fn manifests_dir(repo: &RepoName) -> String {
        format!("repositories/{repo}/_manifests/sha256/")
    }
    pub(crate) fn manifest(repo: &RepoName, d: &Digest) -> String {
        format!("{}{}", manifests_dir(repo), d.hex())
    }
    pub(crate) fn tags_dir(repo: &RepoName) -> String {
        format!("repositories/{repo}/_tags/")
    }
    pub(crate) fn tag(repo: &RepoName, tag: &str) -> String {
        format!("{}{tag}", tags_dir(repo))
    }
    pub(crate) fn referrers_dir(repo: &RepoName, subject: &Digest) -> String {
        format!("repositories/{repo}/_referrers/sha256/{}/", subject.hex())
    }
    pub(crate) fn referrer(repo: &RepoName, subject: &Digest, d: &Digest) -> String {
        format!("{}{}", referrers_dir(repo, subject), d.hex())
    }
    /// When a blob was last touched on any server (unix ms), kept while servers share the
    /// registry.
    pub(crate) fn touches_dir() -> &'static str {
        "touches/sha256/"
    }
    pub(crate) fn touch(d: &Digest) -> String {
        format!("{}{}", touches_dir(), d.hex())
    }
    /// An upload session's record (see `UploadRecord`).
    pub(crate) fn upload(id: &str) -> String {
        format!("uploads/{id}")
    }
}

pub(crate) fn to_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

pub(crate) fn from_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

/// The relative URL of an upload session.
pub(crate) fn upload_location(repo: &RepoName, id: &str) -> String {
    format!("/v2/{repo}/blobs/uploads/{id}")
}

/// An OCI registry: storage, sessions and policy. Share it as `Arc<Registry>`; mount
/// [`crate::router`] for the protocol and call the methods for image management.
pub struct Registry {
    pub(crate) blobs: Arc<dyn BlobStore>,
    pub(crate) meta: Arc<dyn MetadataStore>,
    authorizer: Arc<dyn Authorizer>,
    pub(crate) limits: Option<Arc<dyn NamespaceLimits>>,
    /// One lock per namespace pushed to while limits are set (a handful of teams).
    pub(crate) quota_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    pub(crate) config: RegistryConfig,
    clock: Arc<dyn Clock>,
    pub(crate) uploads: Mutex<HashMap<String, Arc<tokio::sync::Mutex<UploadSession>>>>,
    pub(crate) gc_lock: Arc<tokio::sync::RwLock<()>>,
    /// The same across servers, when several write this registry; their touches are then
    /// also kept in the metadata (`touches/sha256/<hex>`), where every server's sweep reads
    /// them.
    pub(crate) fence: Option<Arc<dyn crate::GcFence>>,
    pub(crate) touches: Mutex<HashMap<Digest, Touch>>,
    pub(crate) touch_seq: AtomicU64,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Registry {
    /// A registry on any storage.
    pub fn new(
        blobs: Arc<dyn BlobStore>,
        meta: Arc<dyn MetadataStore>,
        authorizer: Arc<dyn Authorizer>,
        config: RegistryConfig,
    ) -> Self {
        Self {
            blobs,
            meta,
            authorizer,
            limits: None,
            quota_locks: Mutex::new(HashMap::new()),
            config,
            clock: Arc::new(berth_core::clock::system_clock()),
            uploads: Mutex::new(HashMap::new()),
            gc_lock: Arc::new(tokio::sync::RwLock::new(())),
            fence: None,
            touches: Mutex::new(HashMap::new()),
            touch_seq: AtomicU64::new(0),
        }
    }

    /// A registry on the local filesystem under `root` (e.g. `<data-dir>/registry`).
    pub fn open(
        root: impl Into<PathBuf>,
        authorizer: Arc<dyn Authorizer>,
        config: RegistryConfig,
    ) -> io::Result<Self> {
        let storage = Arc::new(FsStorage::open(root)?);
        Ok(Self::new(storage.clone(), storage, authorizer, config))
    }

    /// Keeps garbage collection from removing any blob while the guard lives (a backup
    /// copying the storage): pushes go on, a collection waits.
    pub async fn hold_blobs(&self) -> tokio::sync::OwnedRwLockReadGuard<()> {
        Arc::clone(&self.gc_lock).read_owned().await
    }

    /// Shares garbage collection's lock and the record of recent touches with the other
    /// servers writing this registry.
    pub fn with_gc_fence(mut self, fence: Arc<dyn crate::GcFence>) -> Self {
        self.fence = Some(fence);
        self
    }

    /// The hold that keeps sweeps (this server's and the others') away while a blob is checked
    /// and made referenced.
    pub(crate) async fn hold_off_sweeps(
        &self,
    ) -> Result<(
        tokio::sync::RwLockReadGuard<'_, ()>,
        Option<crate::FenceHold>,
    )> {
        let local = self.gc_lock.read().await;
        let fence = match &self.fence {
            Some(fence) => Some(fence.shared().await?),
            None => None,
        };
        Ok((local, fence))
    }

    /// Replaces the clock (the server's, or a test's).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Limits the bytes each namespace may store (none: unlimited).
    pub fn with_limits(mut self, limits: Arc<dyn NamespaceLimits>) -> Self {
        self.limits = Some(limits);
        self
    }

    /// The configuration.
    pub fn config(&self) -> &RegistryConfig {
        &self.config
    }

    /// The registry clock's time.
    pub fn now(&self) -> SystemTime {
        self.clock.now()
    }

    // ---- access control ----------------------------------------------------------------

    pub(crate) async fn decide(
        &self,
        credentials: Option<&Credentials>,
        access: &Access,
    ) -> AuthDecision {
        self.authorizer.authorize(credentials, access).await
    }

    /// The catalog entries the caller may see.
    pub(crate) async fn readable(
        &self,
        credentials: Option<&Credentials>,
        catalog: &Access,
        repositories: Vec<String>,
    ) -> Vec<String> {
        self.authorizer
            .readable(credentials, catalog, repositories)
            .await
    }

    /// A decision as the request's outcome (a hidden repository is refused plainly here; the
    /// HTTP layer answers hidden pulls as missing repositories before this).
    pub(crate) fn enforce(&self, decision: AuthDecision, access: &Access) -> Result<()> {
        match decision {
            AuthDecision::Allow => Ok(()),
            AuthDecision::Unauthenticated => Err(RegistryError::Unauthorized {
                realm: self.config.realm.clone(),
            }),
            AuthDecision::Denied(reason) => Err(RegistryError::Denied(reason)),
            AuthDecision::Hidden => {
                let what = match access.action {
                    Action::Push => "push to",
                    Action::Delete => "delete from",
                    Action::Pull => "pull from",
                    Action::Login | Action::Catalog => "use",
                };
                let repository = access.repository.as_deref().unwrap_or("this registry");
                Err(RegistryError::Denied(format!(
                    "not allowed to {what} {repository}"
                )))
            }
        }
    }

    // ---- metadata helpers --------------------------------------------------------------

    pub(crate) async fn read_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        match self.meta.get(key).await? {
            None => Ok(None),
            Some(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| RegistryError::Corrupt {
                        key: key.to_owned(),
                        message: e.to_string(),
                    })
            }
        }
    }

    pub(crate) async fn write_json<T: Serialize>(&self, key: &str, value: &T) -> Result<()> {
        let bytes = serde_json::to_vec(value).map_err(io::Error::other)?;
        Ok(self.meta.put(key, &bytes).await?)
    }

    /// Digests listed under a `.../sha256/` directory.
    pub(crate) async fn list_digests(&self, dir: &str) -> Result<Vec<Digest>> {
        Ok(self
            .meta
            .list(dir)
            .await?
            .into_iter()
            .filter_map(|hex| Digest::parse(&format!("sha256:{hex}")).ok())
            .collect())
    }

    /// Records that `digest` was just checked or made referenced (a sweep spares it); with a
    /// fence, in the metadata too, for the other servers' sweeps.
    pub(crate) async fn touch(&self, digest: &Digest, at: SystemTime) -> Result<()> {
        let seq = self.touch_seq.fetch_add(1, Ordering::SeqCst) + 1;
        {
            let mut touches = self.touches.lock().unwrap_or_else(|p| p.into_inner());
            let entry = touches.entry(digest.clone()).or_insert(Touch { at, seq });
            entry.at = entry.at.max(at);
            entry.seq = seq;
        }
        if self.fence.is_some() {
            self.meta
                .put(&keys::touch(digest), to_ms(at).to_string().as_bytes())
                .await?;
        }
        Ok(())
    }

    // ---- repositories ------------------------------------------------------------------

    /// Whether the repository holds anything (a linked blob, a manifest or a tag).
    pub(crate) async fn repo_exists(&self, repo: &RepoName) -> Result<bool> {
        for dir in [
            keys::manifests_dir(repo),
            keys::tags_dir(repo),
            keys::layers_dir(repo),
        ] {
            if !self.meta.list(&dir).await?.is_empty() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Every repository, sorted.
    pub(crate) async fn all_repositories(&self) -> Result<Vec<RepoName>> {
        self.repositories_below(String::new()).await
    }

    /// The repositories of a namespace (`namespace` itself and `namespace/...`), sorted,
    /// without looking at other namespaces.
    pub(crate) async fn namespace_repositories(&self, namespace: &str) -> Result<Vec<RepoName>> {
        let root = match RepoName::parse(namespace) {
            Ok(root) if !namespace.contains('/') => root,
            _ => return Ok(Vec::new()),
        };
        let mut out = self.repositories_below(format!("{root}/")).await?;
        if self.repo_exists(&root).await? {
            out.push(root);
        }
        out.sort();
        Ok(out)
    }

    /// The repositories whose names start with `prefix` (empty, or a name and a slash), sorted.
    async fn repositories_below(&self, prefix: String) -> Result<Vec<RepoName>> {
        let mut out = Vec::new();
        let mut stack = vec![prefix];
        while let Some(prefix) = stack.pop() {
            for child in self.meta.list(&format!("repositories/{prefix}")).await? {
                if child.starts_with('_') {
                    continue;
                }
                let name = format!("{prefix}{child}");
                let Ok(repo) = RepoName::parse(&name) else {
                    continue;
                };
                if self.repo_exists(&repo).await? {
                    out.push(repo);
                }
                stack.push(format!("{name}/"));
            }
        }
        out.sort();
        Ok(out)
    }

    /// Tags of a repository in lexical order; `NAME_UNKNOWN` when the repository is unknown.
    pub(crate) async fn tag_names(&self, repo: &RepoName) -> Result<Vec<String>> {
        let tags = self.meta.list(&keys::tags_dir(repo)).await?;
        if tags.is_empty() && !self.repo_exists(repo).await? {
            return Err(RegistryError::NameUnknown(repo.to_string()));
        }
        Ok(tags)
    }

    // ---- blobs -------------------------------------------------------------------------

    /// Whether the repository may serve this blob: linked as a layer/config, or a manifest.
    pub(crate) async fn blob_linked(&self, repo: &RepoName, digest: &Digest) -> Result<bool> {
        Ok(self.meta.get(&keys::layer(repo, digest)).await?.is_some()
            || self
                .meta
                .get(&keys::manifest(repo, digest))
                .await?
                .is_some())
    }

    async fn link_blob(&self, repo: &RepoName, digest: &Digest, now: SystemTime) -> Result<()> {
        self.write_json(
            &keys::layer(repo, digest),
            &LinkRecord {
                linked_at_ms: to_ms(now),
            },
        )
        .await
    }

    /// Size of a blob of the repository; `BLOB_UNKNOWN` otherwise.
    pub(crate) async fn stat_blob(&self, repo: &RepoName, digest: &Digest) -> Result<BlobEntry> {
        let unknown = || RegistryError::BlobUnknown(digest.to_string());
        if !self.blob_linked(repo, digest).await? {
            return Err(unknown());
        }
        let entry = self.blobs.stat_blob(digest).await?.ok_or_else(unknown)?;
        self.touch(digest, self.now()).await?;
        Ok(entry)
    }

    /// [`Self::stat_blob`] for an existence check (`HEAD`), which clients do right before
    /// referencing the blob from a manifest instead of uploading it: done under the GC lock so
    /// that a sweep either sees the touch and spares the blob, or ran before and the client
    /// is told to upload it.
    pub(crate) async fn check_blob(&self, repo: &RepoName, digest: &Digest) -> Result<BlobEntry> {
        let _gc = self.hold_off_sweeps().await?;
        self.stat_blob(repo, digest).await
    }

    /// Opens a blob (all of it, or a range).
    pub(crate) async fn open_blob(
        &self,
        digest: &Digest,
        range: Option<ByteRange>,
    ) -> Result<BlobReader> {
        match self.blobs.read_blob(digest, range).await {
            Ok(r) => Ok(r),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(RegistryError::BlobUnknown(digest.to_string()))
            }
            Err(e) => Err(e.into()),
        }
    }

    pub(crate) async fn read_blob_bytes(
        &self,
        digest: &Digest,
        limit: u64,
    ) -> Result<Option<Vec<u8>>> {
        let Some(entry) = self.blobs.stat_blob(digest).await? else {
            return Ok(None);
        };
        if entry.size > limit {
            return Ok(None);
        }
        let mut reader = match self.blobs.read_blob(digest, None).await {
            Ok(r) => r,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let mut buf = Vec::with_capacity(usize::try_from(entry.size).unwrap_or(0));
        reader.read_to_end(&mut buf).await?;
        Ok(Some(buf))
    }

    /// Unlinks a blob from a repository (`DELETE /v2/<name>/blobs/<digest>`); the content goes
    /// at the next garbage collection if nothing else references it.
    pub(crate) async fn unlink_blob(&self, repo: &RepoName, digest: &Digest) -> Result<()> {
        if self.meta.delete(&keys::layer(repo, digest)).await? {
            Ok(())
        } else {
            Err(RegistryError::BlobUnknown(digest.to_string()))
        }
    }

    /// Links a blob of `from` into `repo` without copying. `None` when `from` does not have it.
    pub(crate) async fn mount_blob(
        &self,
        repo: &RepoName,
        digest: &Digest,
        from: &RepoName,
    ) -> Result<Option<u64>> {
        let quota = self.quota_guard(repo).await;
        let _gc = self.hold_off_sweeps().await?;
        if !self.blob_linked(from, digest).await? {
            return Ok(None);
        }
        let Some(entry) = self.blobs.stat_blob(digest).await? else {
            return Ok(None);
        };
        self.ensure_fits(&quota, repo, digest, entry.size).await?;
        let now = self.now();
        self.link_blob(repo, digest, now).await?;
        self.touch(digest, now).await?;
        Ok(Some(entry.size))
    }

    // ---- uploads -----------------------------------------------------------------------

    /// Starts an upload session; returns its id.
    pub(crate) async fn start_upload(&self, repo: &RepoName) -> Result<String> {
        let id = new_upload_id();
        let session = UploadSession {
            repo: repo.clone(),
            hasher: Sha256::new(),
            size: 0,
            last_activity: self.now(),
            closed: false,
        };
        self.lock_uploads()
            .insert(id.clone(), Arc::new(tokio::sync::Mutex::new(session)));
        let created = async {
            self.blobs.create_upload(&id).await?;
            self.record_upload(repo, &id, 0).await
        }
        .await;
        if let Err(e) = created {
            self.lock_uploads().remove(&id);
            let _ = self.blobs.delete_upload(&id).await;
            return Err(e);
        }
        Ok(id)
    }

    async fn record_upload(&self, repo: &RepoName, id: &str, size: u64) -> Result<()> {
        let record = UploadRecord {
            repo: repo.to_string(),
            size,
        };
        self.write_json(&keys::upload(id), &record).await
    }

    fn lock_uploads(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, Arc<tokio::sync::Mutex<UploadSession>>>> {
        self.uploads.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn session(
        &self,
        repo: &RepoName,
        id: &str,
    ) -> Result<tokio::sync::OwnedMutexGuard<UploadSession>> {
        let unknown = || RegistryError::BlobUploadUnknown(id.to_owned());
        if !crate::storage::is_upload_id(id) {
            return Err(unknown());
        }
        let known = self.lock_uploads().get(id).cloned();
        let session = match known {
            Some(session) => session,
            // Not seen here: taken up only when storage holds it, for this repository.
            None => match self.upload_record(id).await? {
                Some(record) if record.repo == repo.as_str() => {
                    let mut uploads = self.lock_uploads();
                    let session = uploads.entry(id.to_owned()).or_insert_with(|| {
                        Arc::new(tokio::sync::Mutex::new(UploadSession {
                            repo: repo.clone(),
                            hasher: Sha256::new(),
                            size: 0,
                            last_activity: self.now(),
                            closed: false,
                        }))
                    });
                    Arc::clone(session)
                }
                _ => return Err(unknown()),
            },
        };
        let mut guard = session.lock_owned().await;
        // A request naming another repository changes nothing of the session.
        if guard.closed || guard.repo != *repo {
            return Err(unknown());
        }
        // Storage's record is the word (read under the session's lock, after this server's
        // last chunk): another server may have written chunks since, or finished it.
        let Some(record) = self.upload_record(id).await? else {
            guard.closed = true;
            self.lock_uploads().remove(id);
            return Err(unknown());
        };
        if guard.size != record.size {
            self.take_up(id, &mut guard, record.size)
                .await
                .map_err(|_| unknown())?;
        }
        Ok(guard)
    }

    /// The record of upload `id` on storage; `None` when there is none (or it cannot be read).
    async fn upload_record(&self, id: &str) -> Result<Option<UploadRecord>> {
        match self.read_json(&keys::upload(id)).await {
            Err(RegistryError::Corrupt { .. }) => Ok(None),
            read => read,
        }
    }

    /// Brings `session` to the `size` bytes storage holds (written through another server, or
    /// before a restart): hashes them again.
    async fn take_up(&self, id: &str, session: &mut UploadSession, size: u64) -> Result<()> {
        let mut reader = self.blobs.read_upload(id).await?.take(size);
        let mut hasher = Sha256::new();
        let mut buffer = vec![0u8; 256 * 1024];
        let mut read = 0u64;
        loop {
            let n = reader.read(&mut buffer).await?;
            if n == 0 {
                break;
            }
            hasher.update(&buffer[..n]);
            read += n as u64;
        }
        if read != size {
            return Err(RegistryError::BlobUploadInvalid(format!(
                "upload {id} holds {read} bytes, its record {size}"
            )));
        }
        session.hasher = hasher;
        session.size = size;
        Ok(())
    }

    async fn close_session(&self, id: &str, session: &mut UploadSession) {
        session.closed = true;
        self.lock_uploads().remove(id);
        let _ = self.meta.delete(&keys::upload(id)).await;
    }

    /// Bytes received so far by an upload.
    pub(crate) async fn upload_size(&self, repo: &RepoName, id: &str) -> Result<u64> {
        Ok(self.session(repo, id).await?.size)
    }

    /// Appends a chunk (`PATCH`); returns the new size.
    pub(crate) async fn append_upload(
        &self,
        repo: &RepoName,
        id: &str,
        body: BodyStream,
        content_range: Option<&str>,
    ) -> Result<u64> {
        let mut session = self.session(repo, id).await?;
        self.write_chunk(repo, id, &mut session, body, content_range)
            .await?;
        Ok(session.size)
    }

    /// Writes a chunk at the end of the upload. The session only advances once the whole chunk
    /// is on storage; a failed or cancelled chunk leaves it where it was (the next write or
    /// the commit cuts off whatever part of the chunk reached the file).
    async fn write_chunk(
        &self,
        repo: &RepoName,
        id: &str,
        session: &mut UploadSession,
        mut body: BodyStream,
        content_range: Option<&str>,
    ) -> Result<()> {
        let range_error = |message: String, size: u64| RegistryError::UploadRangeInvalid {
            size,
            message,
            location: upload_location(repo, id),
            upload_id: id.to_owned(),
        };
        let range = match content_range {
            None => None,
            Some(raw) => Some(parse_content_range(raw).ok_or_else(|| {
                range_error(
                    format!("invalid Content-Range {raw:?}: expected <start>-<end>"),
                    session.size,
                )
            })?),
        };
        if let Some(r) = range
            && r.start != session.size
        {
            return Err(range_error(
                format!(
                    "chunk starts at byte {} but the upload holds {} bytes: chunks must be sent in order",
                    r.start, session.size
                ),
                session.size,
            ));
        }
        let mut writer = None;
        let mut hasher = session.hasher.clone();
        let mut written = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| {
                RegistryError::BlobUploadInvalid(format!("reading the chunk failed: {e}"))
            })?;
            if chunk.is_empty() {
                continue;
            }
            if writer.is_none() {
                writer = Some(self.blobs.upload_writer(id, session.size).await?);
            }
            if let Some(w) = writer.as_mut() {
                w.write_all(&chunk).await?;
            }
            hasher.update(&chunk);
            written += chunk.len() as u64;
        }
        if let Some(mut w) = writer {
            w.shutdown().await?;
        }
        if let Some(r) = range
            && r.len() != written
        {
            return Err(RegistryError::SizeInvalid(format!(
                "Content-Range {}-{} announces {} bytes but the chunk had {written}",
                r.start,
                r.end,
                r.len()
            )));
        }
        self.record_upload(repo, id, session.size + written).await?;
        session.size += written;
        session.hasher = hasher;
        session.last_activity = self.now();
        Ok(())
    }

    /// Finishes an upload (`PUT ?digest=`): writes the optional last chunk, verifies the digest,
    /// checks the namespace's storage limit and makes the blob visible. On a digest mismatch or
    /// a refusal the upload is discarded.
    pub(crate) async fn finish_upload(
        &self,
        repo: &RepoName,
        id: &str,
        digest: &Digest,
        body: BodyStream,
        content_range: Option<&str>,
    ) -> Result<u64> {
        let mut session = self.session(repo, id).await?;
        self.write_chunk(repo, id, &mut session, body, content_range)
            .await?;
        let computed = Digest::from_sha256(&session.hasher.clone().finalize());
        if computed != *digest {
            self.close_session(id, &mut session).await;
            self.blobs.delete_upload(id).await?;
            return Err(RegistryError::DigestInvalid {
                message: format!(
                    "the uploaded content has digest {computed}, not {digest}; the upload was discarded"
                ),
                detail: Some(json!({ "expected": digest.as_str(), "computed": computed.as_str() })),
            });
        }
        let size = session.size;
        let committed = async {
            let quota = self.quota_guard(repo).await;
            let _gc = self.hold_off_sweeps().await?;
            self.ensure_fits(&quota, repo, digest, size).await?;
            let now = self.now();
            self.blobs.commit_upload(id, size, digest, now).await?;
            self.link_blob(repo, digest, now).await?;
            self.touch(digest, now).await?;
            Ok::<_, RegistryError>(())
        }
        .await;
        self.close_session(id, &mut session).await;
        if committed.is_err() {
            let _ = self.blobs.delete_upload(id).await;
        }
        committed.map(|()| size)
    }

    /// Cancels an upload (`DELETE`).
    pub(crate) async fn cancel_upload(&self, repo: &RepoName, id: &str) -> Result<()> {
        let mut session = self.session(repo, id).await?;
        self.close_session(id, &mut session).await;
        Ok(self.blobs.delete_upload(id).await?)
    }

    /// A whole blob in one request (`POST ?digest=` with a body).
    pub(crate) async fn upload_monolithic(
        &self,
        repo: &RepoName,
        digest: &Digest,
        body: BodyStream,
    ) -> Result<u64> {
        let id = self.start_upload(repo).await?;
        let result = self.finish_upload(repo, &id, digest, body, None).await;
        if result.is_err() {
            let _ = self.cancel_upload(repo, &id).await;
        }
        result
    }

    // ---- manifests ---------------------------------------------------------------------

    /// Stores a manifest under a tag or its digest after checking that everything it
    /// references is in the repository.
    pub(crate) async fn put_manifest(
        &self,
        repo: &RepoName,
        reference: &Reference,
        content_type: Option<&str>,
        body: Bytes,
    ) -> Result<PushedManifest> {
        if body.len() > self.config.max_manifest_bytes {
            return Err(RegistryError::ManifestTooLarge(
                self.config.max_manifest_bytes,
            ));
        }
        let digest = Digest::of(&body);
        if let Reference::Digest(expected) = reference
            && *expected != digest
        {
            return Err(RegistryError::DigestInvalid {
                message: format!("the manifest has digest {digest}, not {expected}"),
                detail: Some(json!({ "expected": expected.as_str(), "computed": digest.as_str() })),
            });
        }
        let parsed = manifest::parse_manifest(&body, content_type)?;

        let quota = self.quota_guard(repo).await;
        let _gc = self.hold_off_sweeps().await?;
        let now = self.now();
        let mut children = Vec::new();
        for d in parsed.config.iter().chain(&parsed.layers) {
            if d.external {
                continue;
            }
            if !self.blob_linked(repo, &d.digest).await?
                || self.blobs.stat_blob(&d.digest).await?.is_none()
            {
                return Err(RegistryError::ManifestBlobUnknown(d.digest.to_string()));
            }
        }
        for d in &parsed.manifests {
            let record: Option<ManifestRecord> =
                self.read_json(&keys::manifest(repo, &d.digest)).await?;
            match record {
                Some(r) if self.blobs.stat_blob(&d.digest).await?.is_some() => children.push(r),
                _ => return Err(RegistryError::ManifestBlobUnknown(d.digest.to_string())),
            }
        }
        let (content_size, created) = self.summarize(&parsed, &children).await?;
        self.ensure_fits(&quota, repo, &digest, body.len() as u64)
            .await?;

        let key = keys::manifest(repo, &digest);
        let existing: Option<ManifestRecord> = self.read_json(&key).await?;
        let record = ManifestRecord {
            media_type: parsed.media_type.clone(),
            size: body.len() as u64,
            pushed_at_ms: existing.as_ref().map_or(to_ms(now), |r| r.pushed_at_ms),
            config: parsed.config.as_ref().map(|c| c.digest.to_string()),
            layers: parsed.layers.iter().map(|l| l.digest.to_string()).collect(),
            manifests: parsed
                .manifests
                .iter()
                .map(|m| m.digest.to_string())
                .collect(),
            subject: parsed.subject.as_ref().map(|s| s.digest.to_string()),
            artifact_type: parsed.artifact_type.clone(),
            annotations: parsed.annotations.clone(),
            content_size,
            created,
        };
        self.blobs.put_blob(&digest, &body, now).await?;
        self.write_json(&key, &record).await?;
        if let Some(subject) = &parsed.subject {
            self.meta
                .put(&keys::referrer(repo, &subject.digest, &digest), b"")
                .await?;
        }
        if let Reference::Tag(tag) = reference {
            self.write_json(
                &keys::tag(repo, tag.as_str()),
                &TagRecord {
                    digest: digest.to_string(),
                    updated_at_ms: to_ms(now),
                },
            )
            .await?;
        }
        self.touch(&digest, now).await?;
        for r in record.references() {
            if let Ok(d) = Digest::parse(r) {
                self.touch(&d, now).await?;
            }
        }
        Ok(PushedManifest {
            digest,
            subject: parsed.subject.map(|s| s.digest),
        })
    }

    /// Total content size and creation time of a manifest being pushed.
    async fn summarize(
        &self,
        parsed: &ParsedManifest,
        children: &[ManifestRecord],
    ) -> Result<(u64, Option<String>)> {
        match parsed.kind {
            ManifestKind::Image => {
                let mut created = None;
                if let Some(config) = parsed.image_config()
                    && let Some(bytes) = self.read_blob_bytes(&config.digest, 4 << 20).await?
                {
                    created = manifest::parse_image_config(&bytes).and_then(|c| c.created);
                }
                Ok((parsed.image_size(), created))
            }
            ManifestKind::Index => Ok((
                children.iter().map(|c| c.content_size).sum(),
                children.iter().filter_map(|c| c.created.clone()).max(),
            )),
        }
    }

    /// Resolves a tag or digest to a manifest of the repository.
    pub(crate) async fn resolve(
        &self,
        repo: &RepoName,
        reference: &Reference,
    ) -> Result<(Digest, ManifestRecord)> {
        let unknown = || async {
            if self.repo_exists(repo).await? {
                Err(RegistryError::ManifestUnknown(reference.to_string()))
            } else {
                Err(RegistryError::NameUnknown(repo.to_string()))
            }
        };
        let digest = match reference {
            Reference::Digest(d) => d.clone(),
            Reference::Tag(tag) => {
                let record: Option<TagRecord> =
                    self.read_json(&keys::tag(repo, tag.as_str())).await?;
                match record.and_then(|r| Digest::parse(&r.digest).ok()) {
                    Some(d) => d,
                    None => return unknown().await,
                }
            }
        };
        match self.read_json(&keys::manifest(repo, &digest)).await? {
            Some(record) => Ok((digest, record)),
            None => unknown().await,
        }
    }

    /// A manifest's exact bytes.
    pub(crate) async fn get_manifest(
        &self,
        repo: &RepoName,
        reference: &Reference,
    ) -> Result<StoredManifest> {
        let (digest, record) = self.resolve(repo, reference).await?;
        let body = self
            .read_blob_bytes(&digest, u64::MAX)
            .await?
            .ok_or_else(|| RegistryError::ManifestUnknown(reference.to_string()))?;
        Ok(StoredManifest {
            digest,
            media_type: record.media_type,
            body: Bytes::from(body),
        })
    }

    /// Removes a tag (`DELETE /v2/<name>/manifests/<tag>`); the manifest stays.
    pub(crate) async fn remove_tag(&self, repo: &RepoName, tag: &Tag) -> Result<()> {
        if self.meta.delete(&keys::tag(repo, tag.as_str())).await? {
            return Ok(());
        }
        if self.repo_exists(repo).await? {
            Err(RegistryError::ManifestUnknown(tag.to_string()))
        } else {
            Err(RegistryError::NameUnknown(repo.to_string()))
        }
    }

    /// Removes a manifest and every tag pointing at it; returns those tags.
    pub(crate) async fn remove_manifest(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<Vec<String>> {
        let record: Option<ManifestRecord> = self.read_json(&keys::manifest(repo, digest)).await?;
        let Some(record) = record else {
            return if self.repo_exists(repo).await? {
                Err(RegistryError::ManifestUnknown(digest.to_string()))
            } else {
                Err(RegistryError::NameUnknown(repo.to_string()))
            };
        };
        let mut removed = Vec::new();
        for tag in self.meta.list(&keys::tags_dir(repo)).await? {
            let key = keys::tag(repo, &tag);
            let t: Option<TagRecord> = self.read_json(&key).await?;
            if t.is_some_and(|t| t.digest == digest.as_str()) && self.meta.delete(&key).await? {
                removed.push(tag);
            }
        }
        self.drop_manifest_record(repo, digest, &record).await?;
        Ok(removed)
    }

    /// Deletes a manifest record and its referrers-index entry.
    pub(crate) async fn drop_manifest_record(
        &self,
        repo: &RepoName,
        digest: &Digest,
        record: &ManifestRecord,
    ) -> Result<()> {
        if let Some(subject) = record
            .subject
            .as_deref()
            .and_then(|s| Digest::parse(s).ok())
        {
            self.meta
                .delete(&keys::referrer(repo, &subject, digest))
                .await?;
        }
        self.meta.delete(&keys::manifest(repo, digest)).await?;
        Ok(())
    }

    /// Manifests of the repository whose `subject` is `digest`, optionally only those of one
    /// artifact type.
    pub(crate) async fn referrers(
        &self,
        repo: &RepoName,
        digest: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<ReferrerDescriptor>> {
        let mut out = Vec::new();
        for d in self
            .list_digests(&keys::referrers_dir(repo, digest))
            .await?
        {
            let record: Option<ManifestRecord> = self.read_json(&keys::manifest(repo, &d)).await?;
            let Some(record) = record else { continue };
            if artifact_type.is_some_and(|want| record.artifact_type.as_deref() != Some(want)) {
                continue;
            }
            out.push(ReferrerDescriptor {
                media_type: record.media_type,
                size: record.size,
                digest: d.to_string(),
                artifact_type: record.artifact_type,
                annotations: record.annotations,
            });
        }
        Ok(out)
    }
}

/// A random UUID (version 4 layout) naming an upload session.
fn new_upload_id() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_ids_are_uuids() {
        let id = new_upload_id();
        assert_eq!(id.len(), 36);
        assert_eq!(id.matches('-').count(), 4);
        assert_eq!(&id[14..15], "4");
        assert_ne!(id, new_upload_id());
    }
}
