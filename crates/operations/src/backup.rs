//! Backup and restore of a whole installation: one uncompressed tar stream with the database
//! (a consistent snapshot, the registry's metadata with it), the metrics history, the
//! registry's blobs, the hosted git repositories, build logs and the keys, written while Berth
//! runs; and its restore into an empty data directory, checked entry by entry before anything
//! lands. (An archive of an earlier version carries the registry's metadata as files under
//! `data/registry/meta/`: the server moves them into the database when it starts.)
//!
//! Archive layout (in this order):
//!
//! ```text
//! BACKUP.json                 BackupManifest: format, version, installation, namespace, time
//! data/berth.db               the store, `VACUUM INTO` (one read transaction), with the
//!                             registry's tags, manifest records and links …
//! data/metrics.db             the metrics history, the same way (when kept on disk)
//! data/secret-key …           the server's key, the first-start secret, the installation id
//! data/registry/blobs/…       … then the blobs they name (none is collected meanwhile)
//! data/git/…                  refs and everything else first, `objects/` last
//! data/builds/…               build logs
//! BACKUP-END                  BackupEnd: how many files and bytes came before
//! ```
//!
//! Whatever refers to something is copied before what it refers to, and what is referred to is
//! only ever added while the copy runs (blobs are held from garbage collection; git writes an
//! object before a ref names it): every reference in the backup resolves. Files are copied at
//! the size they had when their entry began (a build log that grows is cut there).

use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use berth_core::Millis;
use berth_core::installation::INSTALLATION_SETTING;
use berth_registry::Registry;
use berth_store::{MetricsStore, Store};
use bytes::Bytes;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

use crate::error::{OpError, OpResult};

/// The archive format this build writes and restores.
pub const FORMAT: u32 = 1;
/// The first entry: a [`BackupManifest`].
pub const MANIFEST_ENTRY: &str = "BACKUP.json";
/// The last entry: a [`BackupEnd`]; an archive without it was cut short.
pub const END_ENTRY: &str = "BACKUP-END";
/// Where the data directory's files sit in the archive.
const DATA: &str = "data";

/// Files of the data directory a backup carries as they are (keys and identity).
const KEY_FILES: [&str; 3] = ["secret-key", "admin-token", "installation-id"];
/// Directories of the data directory a backup carries, in this order (see the module doc).
const TREES: [&str; 3] = ["registry/blobs", "git", "builds"];

/// What a backup is.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BackupManifest {
    pub format: u32,
    /// The Berth version that wrote it.
    pub berth_version: String,
    /// Unix ms.
    pub created_at: Millis,
    /// The installation it is a backup of.
    pub installation: String,
    /// The engine namespace that installation manages.
    pub namespace: String,
}

/// The closing entry: what came before it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BackupEnd {
    pub files: u64,
    pub bytes: u64,
}

/// Where a backup reads from: the running server's state.
#[derive(Clone)]
pub struct BackupSources {
    pub store: Arc<dyn Store>,
    pub metrics: Arc<dyn MetricsStore>,
    pub registry: Arc<Registry>,
    /// The server's data directory (absolute).
    pub data_dir: PathBuf,
    pub namespace: String,
}

/// Chunks of the stream a backup is written into.
const CHUNK: usize = 256 * 1024;

impl BackupSources {
    /// Starts a backup: snapshots the databases now (blobs held from garbage collection until
    /// the stream ends) and answers the archive as a stream. A failure after the first bytes
    /// ends the stream with an error, so the archive lacks its closing entry.
    pub async fn start(
        &self,
        now: Millis,
    ) -> OpResult<(BackupManifest, BoxStream<'static, io::Result<Bytes>>)> {
        if let Some(refusal) = self.store.snapshot_refusal() {
            return Err(OpError::Conflict {
                code: "backup_unsupported",
                message: refusal.to_string(),
            });
        }
        let hold = self.registry.hold_blobs().await;
        let work = tempfile::Builder::new()
            .prefix(".backup-")
            .tempdir_in(&self.data_dir)
            .map_err(|e| OpError::Storage(format!("cannot make a backup work directory: {e}")))?;
        let database = work.path().join("berth.db");
        self.store.snapshot_into(&database).await?;
        let metrics = work.path().join("metrics.db");
        let metrics = self
            .metrics
            .snapshot_into(&metrics)
            .await?
            .then_some(metrics);
        let manifest = BackupManifest {
            format: FORMAT,
            berth_version: env!("CARGO_PKG_VERSION").to_string(),
            created_at: now,
            installation: self
                .store
                .get_setting(INSTALLATION_SETTING)
                .await?
                .unwrap_or_default(),
            namespace: self.namespace.clone(),
        };
        let (sender, receiver) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(4);
        let data_dir = self.data_dir.clone();
        let header = manifest.clone();
        tokio::task::spawn_blocking(move || {
            let sink = ChannelWriter {
                sender: sender.clone(),
            };
            let written = write_archive(
                io::BufWriter::with_capacity(CHUNK, sink),
                &header,
                &database,
                metrics.as_deref(),
                &data_dir,
            );
            if let Err(error) = written {
                tracing::warn!(%error, "the backup broke off");
                let _ = sender.blocking_send(Err(error));
            }
            drop(work);
            drop(hold);
        });
        let stream = futures::stream::unfold(receiver, |mut receiver| async move {
            receiver.recv().await.map(|chunk| (chunk, receiver))
        });
        Ok((manifest, Box::pin(stream)))
    }
}

/// Sends what is written, in chunks, to the stream's receiver.
struct ChannelWriter {
    sender: tokio::sync::mpsc::Sender<io::Result<Bytes>>,
}

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.sender
            .blocking_send(Ok(Bytes::copy_from_slice(buf)))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the backup's reader left"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Writes the whole archive (see the module doc for the order).
fn write_archive(
    sink: impl Write,
    manifest: &BackupManifest,
    database: &Path,
    metrics: Option<&Path>,
    data_dir: &Path,
) -> io::Result<()> {
    let mut archive = Archive {
        builder: tar::Builder::new(sink),
        files: 0,
        bytes: 0,
    };
    archive.bytes_entry(MANIFEST_ENTRY, &serde_json::to_vec_pretty(manifest)?)?;
    archive.file(&format!("{DATA}/berth.db"), database)?;
    if let Some(metrics) = metrics {
        archive.file(&format!("{DATA}/metrics.db"), metrics)?;
    }
    for name in KEY_FILES {
        let path = data_dir.join(name);
        if path.is_file() {
            archive.file(&format!("{DATA}/{name}"), &path)?;
        }
    }
    for tree in TREES {
        let root = data_dir.join(tree);
        if !root.is_dir() {
            continue;
        }
        let mut entries = Vec::new();
        walk(&root, Path::new(tree), &mut entries)?;
        // Git: everything else before the objects it names.
        entries
            .sort_by_key(|(relative, _)| relative.components().any(|c| c.as_os_str() == "objects"));
        for (relative, is_dir) in entries {
            let name = format!("{DATA}/{}", relative.display());
            if is_dir {
                archive.dir(&name, &data_dir.join(&relative))?;
            } else {
                archive.file(&name, &data_dir.join(&relative))?;
            }
        }
    }
    let end = BackupEnd {
        files: archive.files,
        bytes: archive.bytes,
    };
    archive.bytes_entry(END_ENTRY, &serde_json::to_vec(&end)?)?;
    archive.builder.into_inner()?.flush()
}

/// Lists `root`'s directories and regular files (depth first, sorted), as paths relative to
/// the data directory (`prefix` is `root`'s). Links and special files are left out: a backup
/// holds nothing a restore would refuse.
fn walk(root: &Path, prefix: &Path, into: &mut Vec<(PathBuf, bool)>) -> io::Result<()> {
    into.push((prefix.to_path_buf(), true));
    let mut children: Vec<_> = std::fs::read_dir(root)?.collect::<Result<_, _>>()?;
    children.sort_by_key(|entry| entry.file_name());
    for child in children {
        let kind = match child.file_type() {
            Ok(kind) => kind,
            // Gone meanwhile (an upload finished, a temporary file renamed).
            Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
            Err(error) => return Err(error),
        };
        let relative = prefix.join(child.file_name());
        if kind.is_dir() {
            walk(&child.path(), &relative, into)?;
        } else if kind.is_file() {
            into.push((relative, false));
        }
    }
    Ok(())
}

/// The tar being written, counting what it holds.
struct Archive<W: Write> {
    builder: tar::Builder<W>,
    files: u64,
    bytes: u64,
}

impl<W: Write> Archive<W> {
    fn bytes_entry(&mut self, name: &str, content: &[u8]) -> io::Result<()> {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(content.len() as u64);
        header.set_mode(0o600);
        self.builder.append_data(&mut header, name, content)
    }

    fn dir(&mut self, name: &str, path: &Path) -> io::Result<()> {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_size(0);
        header.set_mode(0o700);
        if let Ok(modified) = std::fs::metadata(path).and_then(|m| m.modified()) {
            header.set_mtime(unix_seconds(modified));
        }
        self.builder.append_data(&mut header, name, io::empty())
    }

    /// A regular file at the size it has now. A file removed meanwhile is left out.
    fn file(&mut self, name: &str, path: &Path) -> io::Result<()> {
        let file = match std::fs::File::open(path) {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(error) => return Err(error),
        };
        let metadata = file.metadata()?;
        let size = metadata.len();
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(size);
        {
            use std::os::unix::fs::PermissionsExt;
            header.set_mode(metadata.permissions().mode() & 0o777);
        }
        if let Ok(modified) = metadata.modified() {
            header.set_mtime(unix_seconds(modified));
        }
        self.builder
            .append_data(&mut header, name, Exactly::new(file, size))?;
        self.files += 1;
        self.bytes += size;
        Ok(())
    }
}

fn unix_seconds(time: std::time::SystemTime) -> u64 {
    time.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Reads exactly `size` bytes: the file's first ones, then zeros if it shrank meanwhile (the
/// tar header already promised that many).
struct Exactly<R> {
    inner: io::Take<R>,
    remaining: u64,
}

impl<R: Read> Exactly<R> {
    fn new(inner: R, size: u64) -> Self {
        Exactly {
            inner: inner.take(size),
            remaining: size,
        }
    }
}

impl<R: Read> Read for Exactly<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            return Ok(0);
        }
        let mut read = self.inner.read(buf)?;
        if read == 0 {
            read = buf.len().min(self.remaining as usize);
            buf[..read].fill(0);
        }
        self.remaining -= read as u64;
        Ok(read)
    }
}

/// What a restore brought back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    pub manifest: BackupManifest,
    pub files: u64,
    pub bytes: u64,
}

/// Files whose presence means a data directory holds an installation already.
const STATE_FILES: [&str; 5] = [
    "berth.db",
    "secret-key",
    "registry",
    "git",
    "installation-id",
];

/// Restores a backup into `data_dir` (made if missing; refused when it holds an installation
/// already). Every entry is checked and unpacked into a staging directory inside `data_dir`
/// first; only a complete, valid archive is moved into place, so a refused one leaves the
/// directory as it was.
pub fn restore(archive: impl Read, data_dir: &Path) -> Result<Restored, String> {
    std::fs::create_dir_all(data_dir)
        .map_err(|e| format!("cannot create {}: {e}", data_dir.display()))?;
    if let Some(found) = STATE_FILES.iter().find(|name| data_dir.join(name).exists()) {
        return Err(format!(
            "{} already holds an installation ({found} exists): restore into an empty or new \
             data directory",
            data_dir.display()
        ));
    }
    let staging = tempfile::Builder::new()
        .prefix(".restore-")
        .tempdir_in(data_dir)
        .map_err(|e| {
            format!(
                "cannot make a staging directory in {}: {e}",
                data_dir.display()
            )
        })?;
    let restored = unpack(archive, staging.path())?;
    let unpacked = staging.path().join(DATA);
    if unpacked.is_dir() {
        for entry in std::fs::read_dir(&unpacked).map_err(|e| e.to_string())? {
            let entry = entry.map_err(|e| e.to_string())?;
            let target = data_dir.join(entry.file_name());
            std::fs::rename(entry.path(), &target)
                .map_err(|e| format!("cannot move {} into place: {e}", target.display()))?;
        }
    }
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| format!("cannot restrict {}: {e}", data_dir.display()))?;
    }
    Ok(restored)
}

/// Checks and unpacks every entry under `staging`; the archive must open with its manifest
/// and close with its end entry, with only directories and regular files under `data/`.
fn unpack(archive: impl Read, staging: &Path) -> Result<Restored, String> {
    let mut archive = tar::Archive::new(archive);
    let mut entries = archive
        .entries()
        .map_err(|e| format!("not a tar archive: {e}"))?;
    let mut next = || -> Result<Option<tar::Entry<'_, _>>, String> {
        entries
            .next()
            .transpose()
            .map_err(|e| format!("not a valid tar archive (cut short?): {e}"))
    };
    let manifest: BackupManifest = match next()? {
        Some(mut entry) if entry_name(&entry)? == MANIFEST_ENTRY => {
            serde_json::from_slice(&read_small(&mut entry)?)
                .map_err(|e| format!("{MANIFEST_ENTRY} is not a Berth backup manifest: {e}"))?
        }
        _ => {
            return Err(format!(
                "not a Berth backup: it does not begin with {MANIFEST_ENTRY} (`berth backup` writes one)"
            ));
        }
    };
    if manifest.format != FORMAT {
        return Err(format!(
            "backup format {} is not the one this Berth restores ({FORMAT}); written by Berth {}",
            manifest.format, manifest.berth_version
        ));
    }
    let (mut files, mut bytes) = (0u64, 0u64);
    loop {
        let Some(mut entry) = next()? else {
            return Err(format!(
                "the archive ends before {END_ENTRY}: the backup was cut short"
            ));
        };
        let name = entry_name(&entry)?;
        if name == END_ENTRY {
            let end: BackupEnd = serde_json::from_slice(&read_small(&mut entry)?)
                .map_err(|e| format!("{END_ENTRY} cannot be read: {e}"))?;
            if end.files != files || end.bytes != bytes {
                return Err(format!(
                    "the archive holds {files} files ({bytes} bytes) but says it holds {} ({} bytes)",
                    end.files, end.bytes
                ));
            }
            if next()?.is_some() {
                return Err(format!(
                    "entries follow {END_ENTRY}: not an archive Berth wrote"
                ));
            }
            return Ok(Restored {
                manifest,
                files,
                bytes,
            });
        }
        let relative = data_path(&name)?;
        let target = staging.join(DATA).join(&relative);
        match entry.header().entry_type() {
            tar::EntryType::Directory => std::fs::create_dir_all(&target)
                .map_err(|e| format!("cannot make {}: {e}", target.display()))?,
            tar::EntryType::Regular => {
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent)
                        .map_err(|e| format!("cannot make {}: {e}", parent.display()))?;
                }
                let size = entry.header().size().map_err(|e| e.to_string())?;
                let mode = entry.header().mode().unwrap_or(0o600) & 0o777;
                let mut file = std::fs::File::create(&target)
                    .map_err(|e| format!("cannot write {}: {e}", target.display()))?;
                let copied = io::copy(&mut entry, &mut file)
                    .map_err(|e| format!("cannot read {name} from the archive: {e}"))?;
                if copied != size {
                    return Err(format!("{name} is cut short in the archive"));
                }
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode))
                    .map_err(|e| e.to_string())?;
                files += 1;
                bytes += size;
            }
            other => {
                return Err(format!(
                    "{name}: a {other:?} entry; a Berth backup holds only directories and files"
                ));
            }
        }
    }
}

/// An entry's name as the archive spells it.
fn entry_name<R: Read>(entry: &tar::Entry<'_, R>) -> Result<String, String> {
    let path = entry
        .path()
        .map_err(|e| format!("an entry name cannot be read: {e}"))?;
    path.to_str()
        .map(|s| s.trim_end_matches('/').to_string())
        .ok_or_else(|| format!("the entry name {} is not UTF-8", path.display()))
}

/// The path inside the data directory of an entry named `data/…`: plain names only (no root,
/// `..`, `.` or empty part), so nothing lands outside the staging directory.
fn data_path(name: &str) -> Result<PathBuf, String> {
    let relative = name
        .strip_prefix("data/")
        .ok_or_else(|| format!("{name}: outside data/; not an archive Berth wrote"))?;
    let path = Path::new(relative);
    if relative.is_empty()
        || !path
            .components()
            .all(|component| matches!(component, Component::Normal(_)))
        || relative
            .split('/')
            .any(|part| part.is_empty() || part == "." || part == "..")
    {
        return Err(format!("{name}: not a plain relative path"));
    }
    Ok(path.to_path_buf())
}

/// A small entry's content (manifest, end), at most 64 KiB.
fn read_small<R: Read>(entry: &mut tar::Entry<'_, R>) -> Result<Vec<u8>, String> {
    let mut content = Vec::new();
    entry
        .take(64 * 1024)
        .read_to_end(&mut content)
        .map_err(|e| e.to_string())?;
    Ok(content)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_paths() {
        let cases: [(&str, Result<&str, &str>); 9] = [
            ("data/berth.db", Ok("berth.db")),
            (
                "data/git/default/app.git/HEAD",
                Ok("git/default/app.git/HEAD"),
            ),
            ("data/../etc/passwd", Err("not a plain relative path")),
            ("data/git/../../x", Err("not a plain relative path")),
            ("data//x", Err("not a plain relative path")),
            ("data/./x", Err("not a plain relative path")),
            ("/data/x", Err("outside data/")),
            ("etc/passwd", Err("outside data/")),
            ("data", Err("outside data/")),
        ];
        for (name, want) in cases {
            let got = data_path(name);
            match want {
                Ok(path) => assert_eq!(got, Ok(PathBuf::from(path)), "{name}"),
                Err(says) => assert!(
                    got.as_ref().is_err_and(|e| e.contains(says)),
                    "{name}: {got:?}"
                ),
            }
        }
    }

    #[test]
    fn exactly_pads_a_file_that_shrank_and_cuts_one_that_grew() {
        let mut out = Vec::new();
        Exactly::new(&b"abc"[..], 5).read_to_end(&mut out).unwrap();
        assert_eq!(out, b"abc\0\0");
        out.clear();
        Exactly::new(&b"abcdef"[..], 4)
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, b"abcd");
    }

    /// A backup archive built by hand, for the restore's checks.
    fn archive(entries: &[(&str, tar::EntryType, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, kind, content) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(*kind);
            header.set_size(content.len() as u64);
            header.set_mode(0o600);
            if *kind == tar::EntryType::Symlink {
                header.set_size(0);
                builder
                    .append_link(&mut header, name, std::str::from_utf8(content).unwrap())
                    .unwrap();
            } else {
                // Names are set raw: `append_data` refuses `..` itself.
                header.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
                header.set_cksum();
                builder.append(&header, *content).unwrap();
            }
        }
        builder.into_inner().unwrap()
    }

    fn manifest() -> Vec<u8> {
        serde_json::to_vec(&BackupManifest {
            format: FORMAT,
            berth_version: "test".into(),
            created_at: 1,
            installation: "a1".into(),
            namespace: "berth".into(),
        })
        .unwrap()
    }

    #[test]
    fn a_restore_refuses_what_berth_never_writes_and_leaves_the_directory_as_it_was() {
        use tar::EntryType::{Directory, Regular, Symlink};
        let manifest = manifest();
        let end = |files: u64, bytes: u64| serde_json::to_vec(&BackupEnd { files, bytes }).unwrap();
        let one_file_end = end(1, 2);
        let two_files_end = end(2, 2);
        let cases: Vec<(&str, Vec<(&str, tar::EntryType, &[u8])>, &str)> = vec![
            (
                "no manifest",
                vec![("data/x", Regular, b"hi")],
                "does not begin with BACKUP.json",
            ),
            (
                "cut short",
                vec![
                    (MANIFEST_ENTRY, Regular, &manifest),
                    ("data/x", Regular, b"hi"),
                ],
                "cut short",
            ),
            (
                "climbs out",
                vec![
                    (MANIFEST_ENTRY, Regular, &manifest),
                    ("data/../../escaped", Regular, b"hi"),
                    (END_ENTRY, Regular, &one_file_end),
                ],
                "not a plain relative path",
            ),
            (
                "a link",
                vec![
                    (MANIFEST_ENTRY, Regular, &manifest),
                    ("data/git", Symlink, b"/etc"),
                    (END_ENTRY, Regular, &one_file_end),
                ],
                "only directories and files",
            ),
            (
                "counts that do not match",
                vec![
                    (MANIFEST_ENTRY, Regular, &manifest),
                    ("data/x", Regular, b"hi"),
                    (END_ENTRY, Regular, &two_files_end),
                ],
                "says it holds 2",
            ),
        ];
        for (case, entries, says) in cases {
            let dir = tempfile::tempdir().unwrap();
            let error = restore(&archive(&entries)[..], dir.path()).expect_err(case);
            assert!(error.contains(says), "{case}: {error}");
            let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
            assert!(left.is_empty(), "{case}: nothing stays: {left:?}");
            assert!(!dir.path().parent().unwrap().join("escaped").exists());
        }

        // A valid one lands, and a second restore into the same directory is refused.
        let dir = tempfile::tempdir().unwrap();
        let valid = archive(&[
            (MANIFEST_ENTRY, Regular, &manifest),
            ("data/git", Directory, b""),
            ("data/berth.db", Regular, b"hi"),
            (END_ENTRY, Regular, &one_file_end),
        ]);
        let restored = restore(&valid[..], dir.path()).unwrap();
        assert_eq!((restored.files, restored.bytes), (1, 2));
        assert_eq!(std::fs::read(dir.path().join("berth.db")).unwrap(), b"hi");
        assert!(dir.path().join("git").is_dir());
        let error = restore(&valid[..], dir.path()).unwrap_err();
        assert!(error.contains("already holds an installation"), "{error}");
    }
}
