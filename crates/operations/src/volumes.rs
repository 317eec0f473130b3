//! Volumes: admitting an app's mounts (volumes of its own team, one scope each, a
//! per-instance volume in one app) and recording the new ones; a team's volumes listed, shown
//! and deleted; backups and restores as tar streams (a restore checked entry by entry before
//! the engine sees it); and the volume keeper, which measures every volume for the team's
//! quota and removes the engine's volumes Berth no longer records.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Seek};
use std::path::{Component, Path};
use std::time::Duration;

use async_trait::async_trait;
use berth_core::accounts::TeamAction;
use berth_core::quota::{QuotaExceeded, QuotaResource};
use berth_core::volume::{Volume, VolumeMount, VolumeScope, engine_volume_name, mount_conflicts};
use berth_engine::{EngineError, labels};
use berth_store::{StoreError, VolumeSize};
use bytes::Bytes;
use futures::stream::BoxStream;

use crate::Platform;
use crate::actor::Actor;
use crate::apps::list_apps;
use crate::error::{OpError, OpResult};

/// Largest archive a restore accepts.
pub const MAX_RESTORE_BYTES: u64 = 64 * 1024 * 1024 * 1024;

/// How long a restore waits for an instance that has just stopped to let go of the volume.
const STOPPING_INSTANCE_PATIENCE: Duration = Duration::from_secs(10);

/// A volume with the apps that mount it and the engine stores it has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeView {
    pub volume: Volume,
    /// The apps of the team whose current revision mounts it, by name.
    pub used_by: Vec<String>,
    /// The slots a per-instance volume has stores for (empty for a shared one).
    pub slots: Vec<u32>,
}

impl Platform {
    /// The engine namespace this installation manages.
    pub fn namespace(&self) -> &str {
        &self.controller.shared().config.namespace
    }

    /// The current mounts of every app of `team` but `except`, by app name.
    async fn team_mounts(
        &self,
        team: &str,
        except: Option<&str>,
    ) -> OpResult<BTreeMap<String, Vec<VolumeMount>>> {
        let (apps, _) = list_apps(
            self.store.as_ref(),
            Some(vec![team.to_string()]),
            None,
            None,
        )
        .await?;
        Ok(apps
            .into_iter()
            .filter(|listed| Some(listed.app.name.as_str()) != except)
            .filter_map(|listed| Some((listed.app.name, listed.template?.volumes)))
            .filter(|(_, mounts)| !mounts.is_empty())
            .collect())
    }

    /// Checks `mounts` of app `app` in `team` against the team's volumes and its other apps
    /// (errors name fields under `prefix`), then records the volumes it mounts first. Called
    /// under the team's lock, before the app is written.
    pub(crate) async fn admit_mounts(
        &self,
        actor: &Actor,
        team: &str,
        app: &str,
        prefix: &str,
        mounts: &[VolumeMount],
    ) -> OpResult<()> {
        if mounts.is_empty() {
            return Ok(());
        }
        let recorded = self.store.list_volumes(Some(team)).await?;
        let others = self.team_mounts(team, Some(app)).await?;
        let conflicts = mount_conflicts(
            prefix,
            mounts,
            &recorded,
            others.iter().map(|(name, m)| (name.as_str(), m.as_slice())),
        );
        if conflicts.first().is_some() {
            return Err(conflicts.into());
        }
        let new = mounts
            .iter()
            .filter(|m| !recorded.iter().any(|v| v.name == m.name));
        if new.clone().next().is_some() {
            self.admit_volume_bytes(team, 0).await?;
        }
        let now = self.now();
        for mount in new {
            let volume = Volume {
                team: team.to_string(),
                name: mount.name.clone(),
                scope: mount.scope,
                created_at: now,
                created_by: actor.username().to_string(),
                size_bytes: None,
                measured_at: None,
            };
            if self.store.create_volume(&volume).await? {
                tracing::info!(team, volume = %mount.name, scope = %mount.scope, app, "volume created");
            }
        }
        Ok(())
    }

    /// Refuses `asked` more bytes of volume storage for `team` beyond its quota; with
    /// `asked` 0 (a new volume, empty), refuses while the team is at or over its limit.
    /// `except` bytes (what a restore replaces) do not count as in use.
    async fn admit_volume_bytes(&self, team: &str, asked: u64) -> OpResult<()> {
        self.admit_volume_bytes_replacing(team, asked, 0).await
    }

    async fn admit_volume_bytes_replacing(
        &self,
        team: &str,
        asked: u64,
        replaced: u64,
    ) -> OpResult<()> {
        let Some(limit) = self
            .store
            .get_team(team)
            .await?
            .and_then(|t| t.quota.volume_bytes)
        else {
            return Ok(());
        };
        let in_use = self
            .store
            .team_volume_bytes(team)
            .await?
            .saturating_sub(replaced);
        let fits = if asked == 0 {
            in_use < limit
        } else {
            in_use
                .checked_add(asked)
                .is_some_and(|total| total <= limit)
        };
        if fits {
            return Ok(());
        }
        Err(OpError::QuotaExceeded {
            team: team.to_string(),
            exceeded: vec![QuotaExceeded {
                resource: QuotaResource::VolumeStorage,
                asked,
                in_use,
                limit,
            }],
        })
    }

    /// The volumes of `team` (every team the actor may read when `None`).
    pub async fn list_volumes(
        &self,
        actor: &Actor,
        team: Option<&str>,
    ) -> OpResult<Vec<VolumeView>> {
        let teams: Vec<String> = match team {
            Some(team) => {
                actor.require(team, TeamAction::Read, &format!("team {team}"))?;
                vec![team.to_string()]
            }
            None => match actor.readable_teams() {
                Some(teams) => teams,
                None => self
                    .store
                    .list_volumes(None)
                    .await?
                    .into_iter()
                    .map(|v| v.team)
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect(),
            },
        };
        let engine = self.engine_volumes().await;
        let mut views = Vec::new();
        for team in teams {
            let mounts = self.team_mounts(&team, None).await?;
            for volume in self.store.list_volumes(Some(&team)).await? {
                views.push(view(volume, &mounts, engine.as_deref()));
            }
        }
        Ok(views)
    }

    /// One volume of `team`.
    pub async fn volume(&self, actor: &Actor, team: &str, name: &str) -> OpResult<VolumeView> {
        actor.require(team, TeamAction::Read, &format!("team {team}"))?;
        let volume = self.recorded_volume(team, name).await?;
        let mounts = self.team_mounts(team, None).await?;
        let engine = self.engine_volumes().await;
        Ok(view(volume, &mounts, engine.as_deref()))
    }

    async fn recorded_volume(&self, team: &str, name: &str) -> OpResult<Volume> {
        self.store
            .get_volume(team, name)
            .await?
            .ok_or_else(|| OpError::not_found(format!("volume {team}/{name}")))
    }

    /// The namespace's engine volumes, or `None` when the engine does not answer.
    async fn engine_volumes(&self) -> Option<Vec<berth_engine::ObservedVolume>> {
        let filter =
            BTreeMap::from([(labels::NAMESPACE.to_string(), self.namespace().to_string())]);
        self.controller
            .shared()
            .runtime
            .list_volumes(&filter, false)
            .await
            .map_err(|error| tracing::warn!(%error, "could not list the engine's volumes"))
            .ok()
    }

    /// Deletes a volume and its data; refused while an app mounts it.
    pub async fn delete_volume(&self, actor: &Actor, team: &str, name: &str) -> OpResult<()> {
        actor.require(team, TeamAction::Deploy, &format!("team {team}"))?;
        actor.audit.set_object(format!("volumes/{team}/{name}"));
        let _lock = self.team_locks.lock(team).await?;
        self.recorded_volume(team, name).await?;
        let mounts = self.team_mounts(team, None).await?;
        let users = users_of(name, &mounts);
        if !users.is_empty() {
            return Err(OpError::conflict(
                "volume_in_use",
                format!(
                    "volume {team}/{name} is mounted by app {}: remove it from the app (deploy without it) or delete the app first",
                    users.join(", app ")
                ),
            ));
        }
        self.store.delete_volume(team, name).await?;
        self.remove_engine_volumes(team, name).await;
        tracing::info!(team, volume = name, "volume deleted");
        Ok(())
    }

    /// Deletes the volumes app `app` mounted (its last template's `mounts`), after the app
    /// itself is gone; the engine removes their data once the app's containers are.
    pub(crate) async fn delete_app_volumes(&self, team: &str, mounts: &[VolumeMount]) {
        for mount in mounts {
            if let Err(error) = self.store.delete_volume(team, &mount.name).await {
                tracing::warn!(%error, team, volume = %mount.name, "could not forget a deleted app's volume");
            }
            self.remove_engine_volumes(team, &mount.name).await;
        }
    }

    /// The other apps of `team` sharing a volume `mounts` holds, as a refusal to delete
    /// those volumes with `app`.
    pub(crate) async fn refuse_shared_volume_deletion(
        &self,
        team: &str,
        app: &str,
        mounts: &[VolumeMount],
    ) -> OpResult<()> {
        let others = self.team_mounts(team, Some(app)).await?;
        for mount in mounts {
            let users = users_of(&mount.name, &others);
            if !users.is_empty() {
                return Err(OpError::conflict(
                    "volume_in_use",
                    format!(
                        "delete_volumes: volume {team}/{} is also mounted by app {}; delete {app} without deleting its volumes",
                        mount.name,
                        users.join(", app ")
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Removes the engine's stores of a volume now, when nothing mounts them; the volume
    /// keeper removes the rest later.
    async fn remove_engine_volumes(&self, team: &str, name: &str) {
        let filter = BTreeMap::from([
            (labels::NAMESPACE.to_string(), self.namespace().to_string()),
            (labels::TEAM.to_string(), team.to_string()),
            (labels::VOLUME.to_string(), name.to_string()),
        ]);
        let runtime = &self.controller.shared().runtime;
        let Ok(stores) = runtime.list_volumes(&filter, false).await else {
            return;
        };
        for store in stores {
            if let Err(error) = runtime.remove_volume(&store.name).await {
                tracing::debug!(%error, volume = %store.name, "volume not removed yet");
            }
        }
    }

    /// The engine's name of the store a backup or restore of `team/name` touches: the volume,
    /// or the given slot of a per-instance one.
    async fn store_of(&self, team: &str, name: &str, slot: Option<u32>) -> OpResult<String> {
        let volume = self.recorded_volume(team, name).await?;
        let slot = match (volume.scope, slot) {
            (VolumeScope::Shared, None) => None,
            (VolumeScope::Shared, Some(_)) => {
                return Err(OpError::field(
                    "slot",
                    format!("volume {team}/{name} is shared: it has no slots"),
                ));
            }
            (VolumeScope::PerInstance, None) => {
                return Err(OpError::field(
                    "slot",
                    format!("volume {team}/{name} is per-instance: say which slot (0, 1, …)"),
                ));
            }
            (VolumeScope::PerInstance, Some(slot)) => Some(slot),
        };
        Ok(engine_volume_name(self.namespace(), team, name, slot))
    }

    /// The volume's files as an uncompressed tar stream (a backup).
    pub async fn export_volume(
        &self,
        actor: &Actor,
        team: &str,
        name: &str,
        slot: Option<u32>,
    ) -> OpResult<BoxStream<'static, Result<Bytes, EngineError>>> {
        actor.require(team, TeamAction::Deploy, &format!("team {team}"))?;
        actor.audit.set_object(format!("volumes/{team}/{name}"));
        let store = self.store_of(team, name, slot).await?;
        let runtime = &self.controller.shared().runtime;
        let filter =
            BTreeMap::from([(labels::NAMESPACE.to_string(), self.namespace().to_string())]);
        if !runtime
            .list_volumes(&filter, false)
            .await?
            .iter()
            .any(|v| v.name == store)
        {
            return Err(OpError::not_found(format!(
                "data of volume {team}/{name}{} (no instance has mounted it yet)",
                slot.map_or_else(String::new, |s| format!(" slot {s}"))
            )));
        }
        Ok(runtime.export_volume(&store))
    }

    /// Replaces the volume's files with those of `archive` (an uncompressed tar, already
    /// written to a file), checked entry by entry first; refused while an instance of an app
    /// mounting it runs, so no instance sees half a restore.
    pub async fn restore_volume(
        &self,
        actor: &Actor,
        team: &str,
        name: &str,
        slot: Option<u32>,
        archive: std::fs::File,
    ) -> OpResult<()> {
        actor.require(team, TeamAction::Deploy, &format!("team {team}"))?;
        actor.audit.set_object(format!("volumes/{team}/{name}"));
        let _lock = self.team_locks.lock(team).await?;
        let store = self.store_of(team, name, slot).await?;
        let archive = tokio::task::spawn_blocking(move || check_archive(archive))
            .await
            .map_err(|e| OpError::Upstream(format!("checking the archive failed: {e}")))??;
        let volume = self.recorded_volume(team, name).await?;
        let replaced = match volume.scope {
            // The whole store is replaced; a slot's own size is not recorded apart.
            VolumeScope::Shared => volume.size_bytes.unwrap_or(0),
            VolumeScope::PerInstance => 0,
        };
        let size = archive.metadata().map_or(0, |m| m.len());
        self.admit_volume_bytes_replacing(team, size, replaced)
            .await?;
        let mounts = self.team_mounts(team, None).await?;
        let users = users_of(name, &mounts);
        let running = self.running_instances_of(&users).await?;
        if !running.is_empty() {
            return Err(OpError::conflict(
                "volume_in_use",
                format!(
                    "volume {team}/{name} is mounted by running instances of app {}: scale them to 0 first (berth scale APP 0), restore, then scale back",
                    running.join(", app ")
                ),
            ));
        }
        let runtime = &self.controller.shared().runtime;
        let mut store_labels = BTreeMap::from([
            (labels::NAMESPACE.to_string(), self.namespace().to_string()),
            (labels::TEAM.to_string(), team.to_string()),
            (labels::VOLUME.to_string(), name.to_string()),
        ]);
        if let Some(slot) = slot {
            store_labels.insert(labels::VOLUME_SLOT.to_string(), slot.to_string());
        }
        // A fresh, empty store where the volume is: a restore leaves nothing of what was
        // there before. An instance stopped a moment ago may still be leaving (a Swarm node
        // removes its container shortly after its task ends): it is waited for, a little.
        let patience = tokio::time::Instant::now() + STOPPING_INSTANCE_PATIENCE;
        let emptied = loop {
            match runtime.empty_volume(&store, &store_labels).await {
                Err(EngineError::Conflict(_)) if tokio::time::Instant::now() < patience => {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                other => break other,
            }
        };
        if let Err(EngineError::Conflict(reason)) = emptied {
            return Err(OpError::conflict(
                "volume_in_use",
                format!(
                    "volume {team}/{name} is still mounted by a stopping instance ({reason}); try again in a moment"
                ),
            ));
        }
        emptied?;
        runtime.import_volume(&store, file_stream(archive)).await?;
        actor.audit.set_detail(format!(
            "restored{}",
            slot.map_or_else(String::new, |s| format!(" slot {s}"))
        ));
        tracing::info!(team, volume = name, ?slot, "volume restored");
        Ok(())
    }

    /// The apps among `apps` that have an instance running (or starting).
    async fn running_instances_of(&self, apps: &[String]) -> OpResult<Vec<String>> {
        let mut running = Vec::new();
        for name in apps {
            let Some(app) = self.store.get_app(name).await? else {
                continue;
            };
            let statuses = self.controller.instances(&app).await?;
            if !statuses.is_empty() {
                running.push(name.clone());
            }
        }
        Ok(running)
    }
}

/// The apps in `mounts` that mount volume `name`.
fn users_of(name: &str, mounts: &BTreeMap<String, Vec<VolumeMount>>) -> Vec<String> {
    mounts
        .iter()
        .filter(|(_, m)| m.iter().any(|m| m.name == name))
        .map(|(app, _)| app.clone())
        .collect()
}

fn view(
    volume: Volume,
    mounts: &BTreeMap<String, Vec<VolumeMount>>,
    engine: Option<&[berth_engine::ObservedVolume]>,
) -> VolumeView {
    let slots = engine
        .unwrap_or_default()
        .iter()
        .filter(|v| {
            v.labels.get(labels::TEAM) == Some(&volume.team)
                && v.labels.get(labels::VOLUME) == Some(&volume.name)
        })
        .filter_map(|v| v.labels.get(labels::VOLUME_SLOT)?.parse().ok())
        .collect::<BTreeSet<u32>>()
        .into_iter()
        .collect();
    VolumeView {
        used_by: users_of(&volume.name, mounts),
        volume,
        slots,
    }
}

/// Checks every entry of an uncompressed tar archive before the engine extracts it: a
/// relative path with no `..` part, a regular file, directory or link — a link's target
/// relative too and never leaving the volume — and no entry under a symbolic link the archive
/// made earlier. Returns the file, rewound.
pub fn check_archive(mut file: std::fs::File) -> OpResult<std::fs::File> {
    let refuse = |message: String| OpError::field("archive", message);
    let mut magic = [0u8; 6];
    let read = file
        .read(&mut magic)
        .map_err(|e| refuse(format!("cannot be read: {e}")))?;
    if read >= 2
        && (magic.starts_with(&[0x1f, 0x8b])
            || magic.starts_with(b"BZh")
            || magic.starts_with(&[0xfd, b'7', b'z', b'X', b'Z'])
            || magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]))
    {
        return Err(refuse(
            "is compressed: send an uncompressed tar archive (what `berth volumes backup` writes)"
                .into(),
        ));
    }
    file.rewind()
        .map_err(|e| refuse(format!("cannot be read: {e}")))?;
    let mut symlinks: Vec<std::path::PathBuf> = Vec::new();
    {
        let mut archive = tar::Archive::new(&mut file);
        let entries = archive
            .entries()
            .map_err(|e| refuse(format!("is not a tar archive: {e}")))?;
        for entry in entries {
            let entry = entry.map_err(|e| refuse(format!("is not a valid tar archive: {e}")))?;
            let path = entry
                .path()
                .map_err(|e| refuse(format!("has an unreadable entry name: {e}")))?
                .into_owned();
            let shown = path.display().to_string();
            if !is_inside(&path) {
                return Err(refuse(format!(
                    "entry {shown:?} would land outside the volume: entries must be relative paths without '..'"
                )));
            }
            if symlinks
                .iter()
                .any(|link| path.starts_with(link) && path != *link)
            {
                return Err(refuse(format!(
                    "entry {shown:?} lies under a symbolic link the archive made"
                )));
            }
            let kind = entry.header().entry_type();
            match kind {
                tar::EntryType::Regular
                | tar::EntryType::Continuous
                | tar::EntryType::Directory
                | tar::EntryType::GNULongName
                | tar::EntryType::GNULongLink
                | tar::EntryType::XHeader
                | tar::EntryType::XGlobalHeader => {}
                tar::EntryType::Symlink | tar::EntryType::Link => {
                    let target = entry
                        .link_name()
                        .map_err(|e| refuse(format!("entry {shown:?}: unreadable link: {e}")))?
                        .unwrap_or_default()
                        .into_owned();
                    let resolved = if kind == tar::EntryType::Symlink {
                        path.parent().unwrap_or(Path::new("")).join(&target)
                    } else {
                        target.clone()
                    };
                    if target.is_absolute() || !is_inside(&resolved) {
                        return Err(refuse(format!(
                            "entry {shown:?} links to {:?}, outside the volume",
                            target.display().to_string()
                        )));
                    }
                    if kind == tar::EntryType::Symlink {
                        symlinks.push(normal(&path));
                    }
                }
                other => {
                    return Err(refuse(format!(
                        "entry {shown:?} is a {other:?}: only files, directories and links are restored"
                    )));
                }
            }
        }
    }
    file.rewind()
        .map_err(|e| refuse(format!("cannot be read: {e}")))?;
    Ok(file)
}

/// Whether `path`, taken relative to the volume's root, stays inside it (`..` may only
/// climb back out of directories it entered).
fn is_inside(path: &Path) -> bool {
    let mut depth = 0usize;
    for component in path.components() {
        match component {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => {
                if depth == 0 {
                    return false;
                }
                depth -= 1;
            }
            Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    true
}

/// `path` without `.` parts.
fn normal(path: &Path) -> std::path::PathBuf {
    path.components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect()
}

/// The file's bytes as a stream, read in blocking chunks.
fn file_stream(file: std::fs::File) -> BoxStream<'static, std::io::Result<Bytes>> {
    use futures::StreamExt;
    let file = tokio::fs::File::from_std(file);
    tokio_util::io::ReaderStream::new(file).boxed()
}

/// Measures every volume for the teams' quotas and removes the engine's volumes that no
/// record holds any more (an app deleted with its volumes, a volume deleted while mounted):
/// the `volume-keeper` job.
pub struct VolumeKeeper {
    platform: Platform,
}

impl VolumeKeeper {
    pub fn new(platform: Platform) -> Self {
        VolumeKeeper { platform }
    }

    /// One round: measure, record, reap. Returns how many engine volumes were removed.
    pub async fn round(&self) -> OpResult<usize> {
        let platform = &self.platform;
        let runtime = &platform.controller.shared().runtime;
        let filter = BTreeMap::from([(
            labels::NAMESPACE.to_string(),
            platform.namespace().to_string(),
        )]);
        // The engine first, the records second: a store made after a record exists is never
        // mistaken for an orphan.
        let observed = runtime.list_volumes(&filter, true).await?;
        let recorded: BTreeSet<(String, String)> = platform
            .store
            .list_volumes(None)
            .await?
            .into_iter()
            .map(|v| (v.team, v.name))
            .collect();
        let mut sizes: BTreeMap<(String, String), u64> = BTreeMap::new();
        let mut removed = 0;
        for volume in observed {
            let (Some(team), Some(name)) = (
                volume.labels.get(labels::TEAM),
                volume.labels.get(labels::VOLUME),
            ) else {
                continue;
            };
            let key = (team.clone(), name.clone());
            if recorded.contains(&key) {
                *sizes.entry(key).or_default() += volume.size_bytes.unwrap_or(0);
                continue;
            }
            match runtime.remove_volume(&volume.name).await {
                Ok(()) => {
                    removed += 1;
                    tracing::info!(volume = %volume.name, "removed the data of a deleted volume");
                }
                Err(EngineError::Conflict(_)) => {}
                Err(error) => {
                    tracing::warn!(%error, volume = %volume.name, "could not remove the data of a deleted volume")
                }
            }
        }
        let sizes: Vec<VolumeSize> = sizes
            .into_iter()
            .map(|((team, name), bytes)| VolumeSize { team, name, bytes })
            .collect();
        platform
            .store
            .record_volume_sizes(&sizes, platform.now())
            .await
            .map_err(|e: StoreError| OpError::from(e))?;
        Ok(removed)
    }
}

#[async_trait]
impl berth_controller::workers::Job for VolumeKeeper {
    fn name(&self) -> &'static str {
        "volume-keeper"
    }

    fn description(&self) -> &'static str {
        "measures every volume for its team's quota and removes the data of deleted volumes"
    }

    async fn run(&self) -> Result<String, String> {
        match self.round().await {
            Ok(0) => Ok("volumes measured".to_string()),
            Ok(removed) => Ok(format!(
                "volumes measured; removed the data of {removed} deleted volumes"
            )),
            Err(e) => Err(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An archive of (path, kind, link target) entries, in a temporary file.
    fn archive(entries: &[(&str, tar::EntryType, &str)]) -> std::fs::File {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, kind, target) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(*kind);
            header.set_mode(0o644);
            header.set_size(if *kind == tar::EntryType::Regular {
                2
            } else {
                0
            });
            // Set by bytes: the builder's own setters refuse the hostile names under test.
            let name = &mut header.as_old_mut().name;
            name[..path.len()].copy_from_slice(path.as_bytes());
            if !target.is_empty() {
                let link = &mut header.as_old_mut().linkname;
                link[..target.len()].copy_from_slice(target.as_bytes());
            }
            header.set_cksum();
            let data: &[u8] = if *kind == tar::EntryType::Regular {
                b"hi"
            } else {
                b""
            };
            builder.append(&header, data).unwrap();
        }
        let bytes = builder.into_inner().unwrap();
        let mut file = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut file, &bytes).unwrap();
        file.rewind().unwrap();
        file
    }

    #[test]
    fn a_restore_archive_is_checked_entry_by_entry() {
        use tar::EntryType::{Block, Directory, Link, Regular, Symlink};
        let cases: [(&[(&str, tar::EntryType, &str)], Option<&str>); 12] = [
            (
                &[
                    ("./", Directory, ""),
                    ("./a.txt", Regular, ""),
                    ("sub/b", Regular, ""),
                ],
                None,
            ),
            (&[("a/../b", Regular, "")], None),
            (
                &[("link", Symlink, "sub/x"), ("up", Symlink, "../x")],
                Some("outside the volume"),
            ),
            (&[("sub/link", Symlink, "../a.txt")], None),
            (&[("../escape", Regular, "")], Some("outside the volume")),
            (
                &[("a/../../escape", Regular, "")],
                Some("outside the volume"),
            ),
            (&[("/etc/passwd", Regular, "")], Some("outside the volume")),
            (&[("abs", Symlink, "/etc")], Some("outside the volume")),
            (
                &[("hard", Link, "../../etc/shadow")],
                Some("outside the volume"),
            ),
            (
                &[("esc", Symlink, "sub"), ("esc/x", Regular, "")],
                Some("under a symbolic link"),
            ),
            (
                &[("./esc", Symlink, "sub"), ("esc/x", Regular, "")],
                Some("under a symbolic link"),
            ),
            (
                &[("dev", Block, "")],
                Some("only files, directories and links"),
            ),
        ];
        for (entries, want) in cases {
            match (check_archive(archive(entries)), want) {
                (Ok(_), None) => {}
                (Err(error), Some(want)) => {
                    let text = error.to_string();
                    assert!(text.starts_with("archive: "), "{entries:?}: {text}");
                    assert!(text.contains(want), "{entries:?}: {text}");
                }
                (got, want) => panic!("{entries:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn compressed_and_garbage_archives_are_refused() {
        let file = |bytes: &[u8]| {
            let mut file = tempfile::tempfile().unwrap();
            std::io::Write::write_all(&mut file, bytes).unwrap();
            file.rewind().unwrap();
            file
        };
        let cases: [(&[u8], &str); 3] = [
            (&[0x1f, 0x8b, 8, 0, 0, 0], "compressed"),
            (b"BZh91AY", "compressed"),
            (&[7u8; 700], "tar archive"),
        ];
        for (bytes, want) in cases {
            let error = check_archive(file(bytes)).unwrap_err().to_string();
            assert!(error.contains(want), "{error}");
        }
        // An empty archive restores an empty volume.
        assert!(check_archive(file(&[0u8; 1024])).is_ok());
    }
}
