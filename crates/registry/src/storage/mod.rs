//! The storage seam: [`BlobStore`] holds content (blobs and in-progress uploads),
//! [`MetadataStore`] holds small documents (repository links, manifests records, tags).
//! [`FsStorage`] implements both on a local directory; an object-store backend implements the
//! same two traits.
//!
//! Contracts every backend keeps:
//! * a blob becomes visible at its digest only once complete (`commit_upload`, `put_blob` are
//!   atomic); the digest has been verified by the caller before `commit_upload`;
//! * an upload is invisible as a blob whatever happens to it (crash, abandon);
//! * `MetadataStore::put` replaces a value atomically: readers see the old or the new value,
//!   never a torn one.

mod fs;

use std::io;
use std::pin::Pin;
use std::time::SystemTime;

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncWrite};

pub use fs::FsStorage;

use crate::ranges::ByteRange;
use crate::reference::Digest;

/// A stream of blob content.
pub type BlobReader = Pin<Box<dyn AsyncRead + Send>>;
/// A sink for upload content; the caller flushes and shuts it down when done.
pub type UploadWriter = Pin<Box<dyn AsyncWrite + Send>>;

/// A stored blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobEntry {
    /// Its digest.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
    /// When it was committed or last re-committed (the registry's clock).
    pub modified: SystemTime,
}

/// An upload in progress (or abandoned).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadEntry {
    /// The upload id.
    pub id: String,
    /// Bytes written so far.
    pub size: u64,
    /// Last write.
    pub modified: SystemTime,
}

/// Content storage: immutable blobs addressed by digest, plus upload staging.
#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Size and commit time of a blob, `None` when absent.
    async fn stat_blob(&self, digest: &Digest) -> io::Result<Option<BlobEntry>>;
    /// Reads a blob, or part of it.
    async fn read_blob(&self, digest: &Digest, range: Option<ByteRange>) -> io::Result<BlobReader>;
    /// Stores a small blob (a manifest) from memory; atomic. Re-storing an existing blob only
    /// refreshes its commit time.
    async fn put_blob(&self, digest: &Digest, data: &[u8], now: SystemTime) -> io::Result<()>;
    /// Deletes a blob; returns its size, `None` when it was not there.
    async fn delete_blob(&self, digest: &Digest) -> io::Result<Option<u64>>;
    /// Every stored blob.
    async fn list_blobs(&self) -> io::Result<Vec<BlobEntry>>;

    /// Creates an empty upload.
    async fn create_upload(&self, id: &str) -> io::Result<()>;
    /// Opens an upload for writing at `offset`, first discarding anything beyond it (so a
    /// chunk that failed half-way is rolled back by the next write).
    async fn upload_writer(&self, id: &str, offset: u64) -> io::Result<UploadWriter>;
    /// Makes the upload, holding exactly `size` bytes, the blob `digest`: durable and atomic.
    /// If the blob exists already the upload is discarded and the blob's time refreshed.
    async fn commit_upload(
        &self,
        id: &str,
        size: u64,
        digest: &Digest,
        now: SystemTime,
    ) -> io::Result<()>;
    /// Reads an upload from its start (to take up a session another server began).
    async fn read_upload(&self, id: &str) -> io::Result<BlobReader>;
    /// Discards an upload (no error when absent).
    async fn delete_upload(&self, id: &str) -> io::Result<()>;
    /// Every upload on storage, including those whose session was lost in a restart.
    async fn list_uploads(&self) -> io::Result<Vec<UploadEntry>>;
}

/// Whether `id` has the form of an upload id (hex digits and dashes, at most 64): the only
/// ids that name an upload's file or record.
pub(crate) fn is_upload_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|c| c.is_ascii_hexdigit() || c == b'-')
}

/// Small documents under `/`-separated keys.
#[async_trait]
pub trait MetadataStore: Send + Sync + 'static {
    /// The value at `key`.
    async fn get(&self, key: &str) -> io::Result<Option<Vec<u8>>>;
    /// Atomically replaces the value at `key`.
    async fn put(&self, key: &str, value: &[u8]) -> io::Result<()>;
    /// Removes `key`; true when it existed.
    async fn delete(&self, key: &str) -> io::Result<bool>;
    /// The names of the immediate children of `prefix` (which ends with `/`), keys and
    /// "directories" alike, sorted.
    async fn list(&self, prefix: &str) -> io::Result<Vec<String>>;
}
