//! Filesystem storage under one root directory:
//!
//! ```text
//! <root>/blobs/sha256/<first 2 hex>/<hex>   content-addressed blobs
//! <root>/uploads/<upload id>                uploads in progress (never visible as blobs)
//! <root>/meta/<key>                         metadata documents
//! <root>/tmp/                               staging for atomic writes (same filesystem)
//! ```
//!
//! Blobs appear by `rename(2)` of a complete, fsynced file, so a crash leaves either no blob or
//! the whole blob. A blob file's mtime is set to the registry clock's time of its (last)
//! commit, which garbage collection reads as "recently uploaded".

use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind, Write};
use std::path::{Component, Path, PathBuf};
use std::time::SystemTime;

use async_trait::async_trait;
use tokio::io::{AsyncReadExt, AsyncSeekExt, BufWriter};

use super::{BlobEntry, BlobReader, BlobStore, MetadataStore, UploadEntry, UploadWriter};
use crate::ranges::ByteRange;
use crate::reference::Digest;

/// Size of the write buffer in front of an upload file.
const UPLOAD_BUFFER: usize = 1 << 20;

/// [`BlobStore`] and [`MetadataStore`] on a local directory.
#[derive(Debug, Clone)]
pub struct FsStorage {
    root: PathBuf,
    fsync: bool,
}

impl FsStorage {
    /// Opens (creating if needed) storage rooted at `root`.
    pub fn open(root: impl Into<PathBuf>) -> io::Result<Self> {
        let root = root.into();
        for dir in ["blobs/sha256", "uploads", "meta", "tmp"] {
            fs::create_dir_all(root.join(dir))?;
        }
        // Staging files of writes interrupted by a crash are garbage.
        if let Ok(entries) = fs::read_dir(root.join("tmp")) {
            for entry in entries.flatten() {
                let _ = fs::remove_file(entry.path());
            }
        }
        Ok(Self { root, fsync: true })
    }

    /// Whether data is fsynced before it becomes visible (default true). Turning it off trades
    /// durability across power loss for speed; atomicity is kept either way.
    pub fn with_fsync(mut self, fsync: bool) -> Self {
        self.fsync = fsync;
        self
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where a blob lives.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        let hex = digest.hex();
        self.root
            .join("blobs")
            .join(digest.algorithm())
            .join(&hex[..2])
            .join(hex)
    }

    /// Where an upload is staged.
    pub fn upload_path(&self, id: &str) -> io::Result<PathBuf> {
        if !super::is_upload_id(id) {
            return Err(io::Error::new(ErrorKind::InvalidInput, "invalid upload id"));
        }
        Ok(self.root.join("uploads").join(id))
    }

    fn meta_path(&self, key: &str) -> io::Result<PathBuf> {
        let rel = Path::new(key.trim_end_matches('/'));
        let safe = !key.starts_with('/')
            && !key.contains("//")
            && rel.components().all(|c| matches!(c, Component::Normal(_)));
        if !safe {
            return Err(io::Error::new(
                ErrorKind::InvalidInput,
                format!("invalid metadata key {key:?}"),
            ));
        }
        Ok(self.root.join("meta").join(rel))
    }

    fn temp_path(&self) -> PathBuf {
        self.root
            .join("tmp")
            .join(format!("{:032x}.tmp", rand::random::<u128>()))
    }

    /// Writes `data` to a staging file and renames it to `target`.
    fn write_atomic(
        &self,
        target: &Path,
        data: &[u8],
        mtime: Option<SystemTime>,
    ) -> io::Result<()> {
        let tmp = self.temp_path();
        let result = (|| {
            let mut f = File::create(&tmp)?;
            f.write_all(data)?;
            if let Some(t) = mtime {
                f.set_modified(t)?;
            }
            if self.fsync {
                f.sync_all()?;
            }
            drop(f);
            rename_creating_parent(&tmp, target)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }
}

/// `rename`, creating the target's directory; retried once in case a concurrent cleanup removed
/// the directory between the two steps. The directory is fsynced afterwards so the rename itself
/// survives a power loss (otherwise a later record could point at a blob whose rename was lost).
fn rename_creating_parent(from: &Path, to: &Path) -> io::Result<()> {
    let parent = to.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(parent)?;
    match fs::rename(from, to) {
        Err(e) if e.kind() == ErrorKind::NotFound && from.exists() => {
            fs::create_dir_all(parent)?;
            fs::rename(from, to)?;
        }
        other => other?,
    }
    fs::File::open(parent)?.sync_all()
}

fn touch(path: &Path, now: SystemTime) -> io::Result<bool> {
    match OpenOptions::new().write(true).open(path) {
        Ok(f) => f.set_modified(now).map(|()| true),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| io::Error::other(format!("storage task failed: {e}")))?
}

#[async_trait]
impl BlobStore for FsStorage {
    async fn stat_blob(&self, digest: &Digest) -> io::Result<Option<BlobEntry>> {
        match tokio::fs::metadata(self.blob_path(digest)).await {
            Ok(m) => Ok(Some(BlobEntry {
                digest: digest.clone(),
                size: m.len(),
                modified: m.modified()?,
            })),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn read_blob(&self, digest: &Digest, range: Option<ByteRange>) -> io::Result<BlobReader> {
        let mut file = tokio::fs::File::open(self.blob_path(digest)).await?;
        match range {
            None => Ok(Box::pin(file)),
            Some(r) => {
                file.seek(io::SeekFrom::Start(r.start)).await?;
                Ok(Box::pin(file.take(r.len())))
            }
        }
    }

    async fn put_blob(&self, digest: &Digest, data: &[u8], now: SystemTime) -> io::Result<()> {
        let this = self.clone();
        let path = self.blob_path(digest);
        let data = data.to_vec();
        blocking(move || {
            if touch(&path, now)? {
                return Ok(());
            }
            this.write_atomic(&path, &data, Some(now))
        })
        .await
    }

    async fn delete_blob(&self, digest: &Digest) -> io::Result<Option<u64>> {
        let path = self.blob_path(digest);
        blocking(move || {
            let size = match fs::metadata(&path) {
                Ok(m) => m.len(),
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e),
            };
            match fs::remove_file(&path) {
                Ok(()) => Ok(Some(size)),
                Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e),
            }
        })
        .await
    }

    async fn list_blobs(&self) -> io::Result<Vec<BlobEntry>> {
        let dir = self.root.join("blobs").join("sha256");
        blocking(move || {
            let mut out = Vec::new();
            for shard in read_dir_or_empty(&dir)? {
                let shard = shard?;
                if !shard.file_type()?.is_dir() {
                    continue;
                }
                for entry in read_dir_or_empty(&shard.path())? {
                    let entry = entry?;
                    let name = entry.file_name();
                    let Some(name) = name.to_str() else { continue };
                    let Ok(digest) = Digest::parse(&format!("sha256:{name}")) else {
                        continue;
                    };
                    let meta = match entry.metadata() {
                        Ok(m) => m,
                        // Deleted while we were listing.
                        Err(e) if e.kind() == ErrorKind::NotFound => continue,
                        Err(e) => return Err(e),
                    };
                    out.push(BlobEntry {
                        digest,
                        size: meta.len(),
                        modified: meta.modified()?,
                    });
                }
            }
            Ok(out)
        })
        .await
    }

    async fn create_upload(&self, id: &str) -> io::Result<()> {
        let path = self.upload_path(id)?;
        tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .await
            .map(drop)
    }

    async fn upload_writer(&self, id: &str, offset: u64) -> io::Result<UploadWriter> {
        let path = self.upload_path(id)?;
        let mut file = tokio::fs::OpenOptions::new().write(true).open(path).await?;
        file.set_len(offset).await?;
        file.seek(io::SeekFrom::Start(offset)).await?;
        Ok(Box::pin(BufWriter::with_capacity(UPLOAD_BUFFER, file)))
    }

    async fn commit_upload(
        &self,
        id: &str,
        size: u64,
        digest: &Digest,
        now: SystemTime,
    ) -> io::Result<()> {
        let upload = self.upload_path(id)?;
        let target = self.blob_path(digest);
        let fsync = self.fsync;
        blocking(move || {
            {
                let f = OpenOptions::new().write(true).open(&upload)?;
                let len = f.metadata()?.len();
                if len < size {
                    return Err(io::Error::other(format!(
                        "upload {} holds {len} bytes, expected {size}",
                        upload.display()
                    )));
                }
                // Drop bytes of a chunk that failed after the last good one.
                f.set_len(size)?;
                f.set_modified(now)?;
                if fsync {
                    f.sync_all()?;
                }
            }
            if touch(&target, now)? {
                // Same content is there already (digests are verified).
                return fs::remove_file(&upload);
            }
            rename_creating_parent(&upload, &target)
        })
        .await
    }

    async fn read_upload(&self, id: &str) -> io::Result<BlobReader> {
        let file = tokio::fs::File::open(self.upload_path(id)?).await?;
        Ok(Box::pin(file))
    }

    async fn delete_upload(&self, id: &str) -> io::Result<()> {
        match tokio::fs::remove_file(self.upload_path(id)?).await {
            Err(e) if e.kind() != ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    async fn list_uploads(&self) -> io::Result<Vec<UploadEntry>> {
        let dir = self.root.join("uploads");
        blocking(move || {
            let mut out = Vec::new();
            for entry in read_dir_or_empty(&dir)? {
                let entry = entry?;
                let Some(id) = entry.file_name().to_str().map(str::to_owned) else {
                    continue;
                };
                let meta = match entry.metadata() {
                    Ok(m) => m,
                    Err(e) if e.kind() == ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                };
                out.push(UploadEntry {
                    id,
                    size: meta.len(),
                    modified: meta.modified()?,
                });
            }
            Ok(out)
        })
        .await
    }
}

fn read_dir_or_empty(dir: &Path) -> io::Result<Box<dyn Iterator<Item = io::Result<fs::DirEntry>>>> {
    match fs::read_dir(dir) {
        Ok(rd) => Ok(Box::new(rd)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(Box::new(std::iter::empty())),
        Err(e) => Err(e),
    }
}

#[async_trait]
impl MetadataStore for FsStorage {
    async fn get(&self, key: &str) -> io::Result<Option<Vec<u8>>> {
        let path = self.meta_path(key)?;
        match tokio::fs::read(path).await {
            Ok(v) => Ok(Some(v)),
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
                Ok(None)
            }
            // A key that is a "directory" (has children) has no value.
            Err(e) if e.kind() == ErrorKind::IsADirectory => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn put(&self, key: &str, value: &[u8]) -> io::Result<()> {
        let path = self.meta_path(key)?;
        let this = self.clone();
        let value = value.to_vec();
        blocking(move || this.write_atomic(&path, &value, None)).await
    }

    async fn delete(&self, key: &str) -> io::Result<bool> {
        let path = self.meta_path(key)?;
        match tokio::fs::remove_file(path).await {
            Ok(()) => Ok(true),
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    async fn list(&self, prefix: &str) -> io::Result<Vec<String>> {
        let dir = if prefix.trim_end_matches('/').is_empty() {
            self.root.join("meta")
        } else {
            self.meta_path(prefix)?
        };
        blocking(move || {
            let mut names = Vec::new();
            for entry in read_dir_or_empty(&dir)? {
                if let Some(name) = entry?.file_name().to_str() {
                    names.push(name.to_owned());
                }
            }
            names.sort();
            Ok(names)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn upload_commit_and_metadata() {
        let dir = tempfile::tempdir().unwrap();
        let s = FsStorage::open(dir.path()).unwrap();
        let now = SystemTime::now();
        s.create_upload("0123-abcd").await.unwrap();
        let mut w = s.upload_writer("0123-abcd", 0).await.unwrap();
        w.write_all(b"hello world, junk").await.unwrap();
        w.shutdown().await.unwrap();
        // A rolled-back tail is cut at commit.
        let digest = Digest::of(b"hello world");
        s.commit_upload("0123-abcd", 11, &digest, now)
            .await
            .unwrap();
        let mut content = String::new();
        s.read_blob(&digest, None)
            .await
            .unwrap()
            .read_to_string(&mut content)
            .await
            .unwrap();
        assert_eq!(content, "hello world");
        let mut part = String::new();
        s.read_blob(&digest, Some(ByteRange { start: 6, end: 10 }))
            .await
            .unwrap()
            .read_to_string(&mut part)
            .await
            .unwrap();
        assert_eq!(part, "world");
        assert!(s.list_uploads().await.unwrap().is_empty());
        assert_eq!(s.list_blobs().await.unwrap().len(), 1);

        assert!(s.upload_path("../x").is_err());
        assert!(s.meta_path("a/../b").is_err());
        assert!(s.meta_path("/etc").is_err());
        s.put_meta_roundtrip().await;
    }

    impl FsStorage {
        async fn put_meta_roundtrip(&self) {
            MetadataStore::put(self, "repositories/a/b/_tags/v1", b"x")
                .await
                .unwrap();
            assert_eq!(
                MetadataStore::get(self, "repositories/a/b/_tags/v1")
                    .await
                    .unwrap(),
                Some(b"x".to_vec())
            );
            assert_eq!(
                MetadataStore::list(self, "repositories/a/").await.unwrap(),
                vec!["b".to_string()]
            );
            assert_eq!(
                MetadataStore::get(self, "repositories/a/b").await.unwrap(),
                None
            );
            assert!(
                MetadataStore::delete(self, "repositories/a/b/_tags/v1")
                    .await
                    .unwrap()
            );
            assert!(
                !MetadataStore::delete(self, "repositories/a/b/_tags/v1")
                    .await
                    .unwrap()
            );
        }
    }
}
