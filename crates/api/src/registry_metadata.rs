//! The built-in registry's metadata in Berth's database ([`StoreMetadata`]): tags, manifest
//! records, blob links and upload records are rows every server of an installation reads and
//! writes, each write atomic; blobs stay files on the (shared) registry directory.
//! [`StoreGcFence`]: garbage collection's fence on the database's shared locks, for servers
//! that share it. And [`move_file_metadata_into`], which moves the metadata an earlier version
//! kept as files under the registry directory into the database, once.

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use berth_registry::MetadataStore;
use berth_store::Store;

/// [`MetadataStore`] on the store's `registry_metadata` rows.
pub struct StoreMetadata {
    store: Arc<dyn Store>,
}

impl std::fmt::Debug for StoreMetadata {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreMetadata").finish_non_exhaustive()
    }
}

impl StoreMetadata {
    pub fn new(store: Arc<dyn Store>) -> Self {
        StoreMetadata { store }
    }
}

/// [`berth_registry::GcFence`] on the store's [`berth_store::SharedLocks`]: one lock name,
/// held shared by every server's pushes and exclusively by a sweep.
pub struct StoreGcFence {
    locks: Arc<dyn berth_store::SharedLocks>,
}

impl StoreGcFence {
    /// The lock's name among the store's shared locks.
    const LOCK: &'static str = "registry/garbage-collection";

    pub fn new(locks: Arc<dyn berth_store::SharedLocks>) -> Self {
        StoreGcFence { locks }
    }
}

#[async_trait]
impl berth_registry::GcFence for StoreGcFence {
    async fn shared(&self) -> io::Result<berth_registry::FenceHold> {
        let held = self.locks.lock_shared(Self::LOCK).await.map_err(io_error)?;
        Ok(berth_registry::FenceHold::new(held))
    }

    async fn exclusive(&self) -> io::Result<berth_registry::FenceHold> {
        let held = self.locks.lock(Self::LOCK).await.map_err(io_error)?;
        Ok(berth_registry::FenceHold::new(held))
    }
}

fn io_error(error: berth_store::StoreError) -> io::Error {
    io::Error::other(error)
}

#[async_trait]
impl MetadataStore for StoreMetadata {
    async fn get(&self, key: &str) -> io::Result<Option<Vec<u8>>> {
        self.store
            .get_registry_metadata(key)
            .await
            .map_err(io_error)
    }

    async fn put(&self, key: &str, value: &[u8]) -> io::Result<()> {
        self.store
            .put_registry_metadata(key, value)
            .await
            .map_err(io_error)
    }

    async fn delete(&self, key: &str) -> io::Result<bool> {
        self.store
            .delete_registry_metadata(key)
            .await
            .map_err(io_error)
    }

    async fn list(&self, prefix: &str) -> io::Result<Vec<String>> {
        let keys = self
            .store
            .registry_metadata_keys(prefix)
            .await
            .map_err(io_error)?;
        Ok(immediate_children(prefix, &keys))
    }
}

/// The distinct first segments after `prefix` of `keys` (which all start with it), sorted: the
/// "files and directories" directly under `prefix`.
fn immediate_children(prefix: &str, keys: &[String]) -> Vec<String> {
    let children: BTreeSet<&str> = keys
        .iter()
        .filter_map(|key| key.strip_prefix(prefix))
        .filter_map(|rest| rest.split('/').next())
        .filter(|child| !child.is_empty())
        .collect();
    children.into_iter().map(str::to_owned).collect()
}

/// Where an earlier version kept the registry's metadata, under the registry directory.
const FILE_METADATA_DIR: &str = "meta";

/// Moves the metadata files an earlier version kept under `registry_root/meta` (one file per
/// key, the key its path) into `store`, overwriting what the store holds under those keys,
/// then renames the directory `meta.moved-to-database` (or with a number after it) so it is
/// moved only once. Returns how many keys were moved (0 when there were no files). A move
/// cut short by a crash is done again in whole on the next start.
pub async fn move_file_metadata_into(registry_root: &Path, store: &dyn Store) -> io::Result<usize> {
    let dir = registry_root.join(FILE_METADATA_DIR);
    let entries = {
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || read_tree(&dir))
            .await
            .map_err(io::Error::other)??
    };
    if entries.is_empty() {
        return Ok(0);
    }
    for (key, value) in &entries {
        store
            .put_registry_metadata(key, value)
            .await
            .map_err(io_error)?;
    }
    let moved = (0..)
        .map(|n| match n {
            0 => registry_root.join("meta.moved-to-database"),
            n => registry_root.join(format!("meta.moved-to-database.{n}")),
        })
        .find(|path| !path.exists())
        .expect("a free name");
    match std::fs::rename(&dir, &moved) {
        Ok(()) => {}
        // Another server of the installation moved it at the same time.
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => return Err(error),
    }
    std::fs::create_dir_all(&dir)?;
    Ok(entries.len())
}

/// Every file under `dir` as (its path relative to `dir` with `/` separators, its bytes);
/// nothing when `dir` does not exist. Only plain files count: a link is skipped.
fn read_tree(dir: &Path) -> io::Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    let mut pending: Vec<(PathBuf, String)> = vec![(dir.to_path_buf(), String::new())];
    while let Some((path, key_prefix)) = pending.pop() {
        let listing = match std::fs::read_dir(&path) {
            Ok(listing) => listing,
            Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
            Err(error) => return Err(error),
        };
        for entry in listing {
            let entry = entry?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            let key = format!("{key_prefix}{name}");
            let kind = entry.file_type()?;
            if kind.is_dir() {
                pending.push((entry.path(), format!("{key}/")));
            } else if kind.is_file() {
                out.push((key, std::fs::read(entry.path())?));
            }
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_are_the_distinct_first_segments_in_order() {
        let keys = |list: &[&str]| list.iter().map(|k| k.to_string()).collect::<Vec<_>>();
        let table: &[(&str, &[&str], &[&str])] = &[
            ("repositories/", &[], &[]),
            (
                "repositories/",
                &[
                    "repositories/a-b/_tags/x",
                    "repositories/a/_layers/sha256/1",
                    "repositories/a/_tags/v1",
                    "repositories/a0/_tags/x",
                ],
                &["a", "a-b", "a0"],
            ),
            (
                "repositories/a/_tags/",
                &["repositories/a/_tags/v1", "repositories/a/_tags/v2"],
                &["v1", "v2"],
            ),
            // The key equal to the prefix itself has no child.
            ("uploads/", &["uploads/", "uploads/1-2"], &["1-2"]),
        ];
        for &(prefix, stored, children) in table {
            assert_eq!(
                immediate_children(prefix, &keys(stored)),
                keys(children),
                "{prefix}"
            );
        }
    }

    #[tokio::test]
    async fn file_metadata_moves_into_the_store_once() {
        let store = berth_store::open("sqlite::memory:").await.unwrap();
        let root = tempfile::tempdir().unwrap();
        let meta = root.path().join("meta");
        std::fs::create_dir_all(meta.join("repositories/team/app/_tags")).unwrap();
        std::fs::write(meta.join("repositories/team/app/_tags/v1"), b"new").unwrap();
        store
            .put_registry_metadata("repositories/team/app/_tags/v1", b"old")
            .await
            .unwrap();
        store
            .put_registry_metadata("repositories/team/other/_tags/v1", b"kept")
            .await
            .unwrap();

        assert_eq!(
            move_file_metadata_into(root.path(), &*store).await.unwrap(),
            1
        );
        let metadata = StoreMetadata::new(Arc::clone(&store));
        assert_eq!(
            metadata
                .get("repositories/team/app/_tags/v1")
                .await
                .unwrap(),
            Some(b"new".to_vec()),
            "the file's value wins over what the store held"
        );
        assert_eq!(
            metadata.list("repositories/team/").await.unwrap(),
            vec!["app", "other"]
        );
        assert!(
            root.path()
                .join("meta.moved-to-database/repositories/team/app/_tags/v1")
                .is_file(),
            "the files are kept aside, renamed"
        );
        assert_eq!(std::fs::read_dir(&meta).unwrap().count(), 0);

        // Nothing left to move: the next start moves nothing and changes nothing.
        metadata
            .put("repositories/team/app/_tags/v1", b"newer")
            .await
            .unwrap();
        assert_eq!(
            move_file_metadata_into(root.path(), &*store).await.unwrap(),
            0
        );
        assert_eq!(
            metadata
                .get("repositories/team/app/_tags/v1")
                .await
                .unwrap(),
            Some(b"newer".to_vec())
        );
    }

    #[test]
    fn the_tree_of_files_becomes_keys_and_links_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let meta = dir.path().join("meta");
        std::fs::create_dir_all(meta.join("repositories/team/app/_tags")).unwrap();
        std::fs::write(meta.join("repositories/team/app/_tags/v1"), b"tag").unwrap();
        std::fs::create_dir_all(meta.join("uploads")).unwrap();
        std::fs::write(meta.join("uploads/ab-12"), b"record").unwrap();
        std::fs::write(dir.path().join("outside"), b"secret").unwrap();
        std::os::unix::fs::symlink(dir.path().join("outside"), meta.join("uploads/link")).unwrap();
        assert_eq!(
            read_tree(&meta).unwrap(),
            vec![
                (
                    "repositories/team/app/_tags/v1".to_string(),
                    b"tag".to_vec()
                ),
                ("uploads/ab-12".to_string(), b"record".to_vec()),
            ]
        );
        assert!(read_tree(&dir.path().join("absent")).unwrap().is_empty());
    }
}
