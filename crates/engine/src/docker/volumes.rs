//! Named volumes on Docker: create, list (measured through `/system/df`), remove, and their
//! files as a tar stream in and out through a never-started helper container that mounts the
//! volume — the engine's archive endpoint, which keeps every path inside the container.

use std::collections::{BTreeMap, HashMap};

use bollard::Docker;
use bollard::models::{HostConfig, Mount, MountType, VolumeCreateRequest};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, DownloadFromContainerOptionsBuilder,
    ListVolumesOptionsBuilder, RemoveVolumeOptionsBuilder, UploadToContainerOptionsBuilder,
};
use bollard::{body_full, body_try_stream};
use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt};

use super::{DockerEngine, force_remove, label_filters, map_err, status_of};
use crate::{EngineError, EngineResult, ObservedVolume, VolumeMount};

/// The empty image the helper containers are made from (imported from an empty tar, so no
/// registry is needed); they are never started.
const HELPER_IMAGE: &str = "berth-volume-io:1";
/// Where a helper container mounts the volume.
const HELPER_MOUNT: &str = "/volume";

/// The mounts of an instance container.
pub(super) fn docker_mounts(mounts: &[VolumeMount]) -> Option<Vec<Mount>> {
    (!mounts.is_empty()).then(|| {
        mounts
            .iter()
            .map(|m| Mount {
                typ: Some(MountType::VOLUME),
                source: Some(m.volume.clone()),
                target: Some(m.target.clone()),
                read_only: Some(m.read_only),
                ..Default::default()
            })
            .collect()
    })
}

impl DockerEngine {
    /// Whether the engine runs on this host (a unix socket), so its volumes' directories are
    /// this host's.
    fn is_local(&self) -> bool {
        matches!(
            super::parse_docker_host(self.host()),
            Ok(super::DockerHost::Unix(_))
        )
    }

    pub(super) async fn create_volume(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> EngineResult<()> {
        let docker = self.ready().await?;
        match docker.inspect_volume(name).await {
            Ok(_) => return Ok(()),
            Err(e) if status_of(&e) == Some(404) => {}
            Err(e) => return Err(map_err(e)),
        }
        let request = VolumeCreateRequest {
            name: Some(name.to_owned()),
            labels: Some(labels.clone().into_iter().collect::<HashMap<_, _>>()),
            ..Default::default()
        };
        // Creating an existing volume answers it unchanged: a concurrent creation is fine.
        docker.create_volume(request).await.map_err(map_err)?;
        Ok(())
    }

    pub(super) async fn volumes(
        &self,
        label_filter: &BTreeMap<String, String>,
        measure: bool,
    ) -> EngineResult<Vec<ObservedVolume>> {
        let docker = self.ready().await?;
        let wanted = |labels: &HashMap<String, String>| {
            label_filter.iter().all(|(k, v)| labels.get(k) == Some(v))
        };
        let filters = HashMap::from([("label".to_owned(), label_filters(label_filter))]);
        let listed = docker
            .list_volumes(Some(
                ListVolumesOptionsBuilder::new().filters(&filters).build(),
            ))
            .await
            .map_err(map_err)?;
        let volumes: Vec<(ObservedVolume, String)> = listed
            .volumes
            .unwrap_or_default()
            .into_iter()
            .filter(|v| wanted(&v.labels))
            .map(|v| {
                (
                    ObservedVolume {
                        size_bytes: None,
                        name: v.name,
                        labels: v.labels.into_iter().collect(),
                    },
                    v.mountpoint,
                )
            })
            .collect();
        if !measure {
            return Ok(volumes.into_iter().map(|(v, _)| v).collect());
        }
        // Docker's own measurement (`/system/df`) changed shape across API versions; a local
        // engine's volume is a directory on this host, measured here instead. A remote
        // engine's volumes stay unmeasured.
        if !self.is_local() {
            return Ok(volumes.into_iter().map(|(v, _)| v).collect());
        }
        let measured = tokio::task::spawn_blocking(move || {
            volumes
                .into_iter()
                .map(|(mut volume, mountpoint)| {
                    volume.size_bytes = directory_size(std::path::Path::new(&mountpoint));
                    volume
                })
                .collect()
        })
        .await
        .map_err(|e| EngineError::Other(format!("measuring volumes failed: {e}")))?;
        Ok(measured)
    }

    pub(super) async fn delete_volume(&self, name: &str) -> EngineResult<()> {
        let docker = self.ready().await?;
        match docker
            .remove_volume(name, Some(RemoveVolumeOptionsBuilder::new().build()))
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if status_of(&e) == Some(404) => Ok(()),
            Err(e) => Err(map_err(e)),
        }
    }

    /// A created (never started) container of the helper image mounting `volume`; the helper
    /// image is imported first when missing.
    async fn helper_container(&self, volume: &str) -> EngineResult<String> {
        let docker = self.ready().await?;
        match docker.inspect_volume(volume).await {
            Ok(_) => {}
            Err(e) if status_of(&e) == Some(404) => {
                return Err(EngineError::NotFound(format!("volume {volume}")));
            }
            Err(e) => return Err(map_err(e)),
        }
        if let Err(e) = docker.inspect_image(HELPER_IMAGE).await {
            if status_of(&e) != Some(404) {
                return Err(map_err(e));
            }
            import_helper_image(docker).await?;
        }
        let body = bollard::models::ContainerCreateBody {
            image: Some(HELPER_IMAGE.to_owned()),
            cmd: Some(vec!["/never-started".to_owned()]),
            network_disabled: Some(true),
            host_config: Some(HostConfig {
                mounts: Some(vec![Mount {
                    typ: Some(MountType::VOLUME),
                    source: Some(volume.to_owned()),
                    target: Some(HELPER_MOUNT.to_owned()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let name = format!(
            "berth-volume-io-{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        );
        let created = docker
            .create_container(
                Some(CreateContainerOptionsBuilder::new().name(&name).build()),
                body,
            )
            .await
            .map_err(map_err)?;
        Ok(created.id)
    }

    pub(super) fn volume_archive(&self, volume: &str) -> BoxStream<'static, EngineResult<Bytes>> {
        let engine = self.clone();
        let volume = volume.to_owned();
        let opened = async move {
            let id = engine.helper_container(&volume).await?;
            let options = DownloadFromContainerOptionsBuilder::new()
                .path(&format!("{HELPER_MOUNT}/."))
                .build();
            let docker = engine.ready().await?.clone();
            let chunks = docker
                .download_from_container(&id, Some(options))
                .map(|chunk| chunk.map_err(map_err));
            // The helper goes before the stream ends (so the volume is free once it has), or
            // in the background when the stream is dropped midway.
            let guard = HelperGuard {
                docker: Some(docker),
                id,
            };
            let removed = stream::once(guard.remove()).filter_map(|()| async { None });
            Ok::<_, EngineError>(chunks.chain(removed))
        };
        stream::once(opened)
            .flat_map(|opened| match opened {
                Ok(chunks) => chunks.boxed(),
                Err(e) => stream::once(async { Err(e) }).boxed(),
            })
            .boxed()
    }

    pub(super) async fn fill_volume(
        &self,
        volume: &str,
        archive: BoxStream<'static, std::io::Result<Bytes>>,
    ) -> EngineResult<()> {
        let id = self.helper_container(volume).await?;
        let docker = self.ready().await?.clone();
        let guard = HelperGuard {
            docker: Some(docker.clone()),
            id: id.clone(),
        };
        let options = UploadToContainerOptionsBuilder::new()
            .path(HELPER_MOUNT)
            .build();
        let filled = docker
            .upload_to_container(&id, Some(options), body_try_stream(archive))
            .await
            .map_err(|e| match e {
                bollard::errors::Error::DockerResponseServerError { message, .. } => {
                    EngineError::Other(format!("the engine refused the archive: {message}"))
                }
                e => map_err(e),
            });
        // Gone before the fill returns: the volume is then free for whatever comes next.
        guard.remove().await;
        filled
    }
}

/// The bytes of the regular files under `root` (each hard-linked file once), never following
/// a symbolic link: what a container wrote there cannot send the walk elsewhere on the host.
/// `None` when `root` cannot be read.
pub(crate) fn directory_size(root: &std::path::Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    let top = std::fs::symlink_metadata(root).ok()?;
    if !top.is_dir() {
        return None;
    }
    let mut seen = std::collections::HashSet::new();
    let mut total = 0u64;
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.path().symlink_metadata() else {
                continue;
            };
            if meta.is_dir() {
                pending.push(entry.path());
            } else if meta.is_file() && seen.insert((meta.dev(), meta.ino())) {
                total = total.saturating_add(meta.len());
            }
        }
    }
    Some(total)
}

impl DockerEngine {
    /// Writes `files` into a created container (read-only for everyone, parents made as
    /// needed), through the engine's archive endpoint.
    pub(super) async fn put_files(
        &self,
        id: &str,
        files: &[crate::InstanceFile],
    ) -> EngineResult<()> {
        if files.is_empty() {
            return Ok(());
        }
        let mut archive = tar::Builder::new(Vec::new());
        for file in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(file.contents.0.len() as u64);
            header.set_mode(0o444);
            header.set_cksum();
            archive
                .append_data(
                    &mut header,
                    file.path.trim_start_matches('/'),
                    &file.contents.0[..],
                )
                .map_err(|e| EngineError::Other(format!("packing {} failed: {e}", file.path)))?;
        }
        let archive = archive
            .into_inner()
            .map_err(|e| EngineError::Other(format!("packing files failed: {e}")))?;
        let docker = self.ready().await?;
        let options = UploadToContainerOptionsBuilder::new().path("/").build();
        docker
            .upload_to_container(id, Some(options), body_full(Bytes::from(archive)))
            .await
            .map_err(map_err)
    }
}

/// Imports [`HELPER_IMAGE`] from an empty tar archive.
async fn import_helper_image(docker: &Docker) -> EngineResult<()> {
    let (repo, tag) = HELPER_IMAGE
        .split_once(':')
        .unwrap_or((HELPER_IMAGE, "latest"));
    let options = CreateImageOptionsBuilder::new()
        .from_src("-")
        .repo(repo)
        .tag(tag)
        .build();
    // Two zero blocks: an archive with no entries.
    let empty = Bytes::from(vec![0u8; 1024]);
    let mut progress =
        std::pin::pin!(docker.create_image(Some(options), Some(body_full(empty)), None));
    while let Some(step) = progress.next().await {
        step.map_err(map_err)?;
    }
    Ok(())
}

/// Removes a helper container: [`HelperGuard::remove`] now, or in the background when dropped.
struct HelperGuard {
    docker: Option<Docker>,
    id: String,
}

impl HelperGuard {
    /// Removes the helper now (a failure is logged).
    async fn remove(mut self) {
        let Some(docker) = self.docker.take() else {
            return;
        };
        if let Err(e) = docker
            .remove_container(&self.id, Some(force_remove()))
            .await
            && status_of(&e) != Some(404)
        {
            tracing::warn!(container = %self.id, error = %e, "could not remove a volume helper container");
        }
    }
}

impl Drop for HelperGuard {
    fn drop(&mut self) {
        let (Some(docker), Ok(runtime)) =
            (self.docker.take(), tokio::runtime::Handle::try_current())
        else {
            return;
        };
        let id = std::mem::take(&mut self.id);
        runtime.spawn(async move {
            if let Err(e) = docker.remove_container(&id, Some(force_remove())).await {
                tracing::warn!(container = %id, error = %e, "could not remove a volume helper container");
            }
        });
    }
}
