//! The node agent on one Docker Engine (see [`crate::node_agent`]): its image imported when the
//! engine lacks it, its container kept running, and a reading taken by an exec.

use std::collections::HashMap;

use bollard::body_try_stream;
use bollard::models::{
    ContainerCreateBody, HostConfig, Mount, MountBindOptions, MountType, RestartPolicy,
    RestartPolicyNameEnum,
};
use bollard::query_parameters::{CreateContainerOptionsBuilder, CreateImageOptionsBuilder};
use futures::StreamExt;
use tokio_util::io::ReaderStream;

use super::{DockerEngine, force_remove, map_err, status_of};
use crate::node_agent::{
    AGENT_LABEL, CONTAINER_NAME, DATA_ROOT_MOUNT, MAX_OUTPUT_BYTES, NodeAgent, PROC_MOUNT,
};
use crate::{EngineError, EngineResult, ExecSpec};

/// The agent's memory limit: one idle process and a short reading.
const MEMORY_LIMIT: i64 = 64 * 1024 * 1024;

impl DockerEngine {
    /// One reading of this engine's host by the node agent (the JSON it prints), which is
    /// made and started first when it does not run.
    pub async fn read_host_with_agent(&self, agent: &NodeAgent) -> EngineResult<Vec<u8>> {
        let container = self.ensure_node_agent(agent).await?;
        self.read_with_node_agent(agent, &container).await
    }

    /// The agent's container when it runs here with `agent`'s image.
    pub(crate) async fn running_node_agent(
        &self,
        agent: &NodeAgent,
    ) -> EngineResult<Option<String>> {
        let docker = self.ready().await?;
        match docker.inspect_container(CONTAINER_NAME, None).await {
            Ok(found) => {
                let image = found
                    .config
                    .and_then(|c| c.labels)
                    .and_then(|labels| labels.get(AGENT_LABEL).cloned());
                let running = found.state.and_then(|s| s.running) == Some(true);
                Ok(found
                    .id
                    .filter(|_| running && image.as_deref() == Some(agent.image())))
            }
            Err(e) if status_of(&e) == Some(404) => Ok(None),
            Err(e) => Err(map_err(e)),
        }
    }

    /// Makes sure the agent runs on this engine, and answers its container's id: the image
    /// is imported when missing, and the container is started when stopped and made anew
    /// when missing or of another image.
    pub(crate) async fn ensure_node_agent(&self, agent: &NodeAgent) -> EngineResult<String> {
        let docker = self.ready().await?;
        match docker.inspect_container(CONTAINER_NAME, None).await {
            Ok(found) => {
                let id = found.id.unwrap_or_default();
                let image = found
                    .config
                    .and_then(|c| c.labels)
                    .and_then(|labels| labels.get(AGENT_LABEL).cloned());
                let running = found.state.and_then(|s| s.running) == Some(true);
                if image.as_deref() == Some(agent.image()) {
                    if !running {
                        docker.start_container(&id, None).await.map_err(map_err)?;
                    }
                    return Ok(id);
                }
                tracing::info!(old = ?image, new = agent.image(), "replacing the node agent");
                match docker.remove_container(&id, Some(force_remove())).await {
                    Err(e) if status_of(&e) != Some(404) => return Err(map_err(e)),
                    _ => {}
                }
            }
            Err(e) if status_of(&e) == Some(404) => {}
            Err(e) => return Err(map_err(e)),
        }
        self.import_node_agent(agent).await?;
        let data_root = docker
            .info()
            .await
            .map_err(map_err)?
            .docker_root_dir
            .filter(|dir| dir.starts_with('/'))
            .ok_or_else(|| EngineError::Other("the engine names no data root".into()))?;
        let read_only_bind = |source: &str, target: &str| Mount {
            typ: Some(MountType::BIND),
            source: Some(source.to_owned()),
            target: Some(target.to_owned()),
            read_only: Some(true),
            // Only the directory itself: the containers' file systems mounted below the data
            // root stay out, so none of them is held busy by the agent.
            bind_options: Some(MountBindOptions {
                non_recursive: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        };
        let body = ContainerCreateBody {
            image: Some(agent.image().to_owned()),
            entrypoint: Some(agent.entrypoint()),
            cmd: Some(Vec::new()),
            env: Some(agent.environment(&data_root)),
            labels: Some(HashMap::from([(
                AGENT_LABEL.to_owned(),
                agent.image().to_owned(),
            )])),
            network_disabled: Some(true),
            host_config: Some(HostConfig {
                mounts: Some(vec![
                    read_only_bind("/proc", PROC_MOUNT),
                    read_only_bind(&data_root, DATA_ROOT_MOUNT),
                ]),
                network_mode: Some("none".into()),
                readonly_rootfs: Some(true),
                cap_drop: Some(vec!["ALL".into()]),
                security_opt: Some(vec!["no-new-privileges".into()]),
                memory: Some(MEMORY_LIMIT),
                pids_limit: Some(32),
                restart_policy: Some(RestartPolicy {
                    name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
                    maximum_retry_count: None,
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let created = docker
            .create_container(
                Some(
                    CreateContainerOptionsBuilder::new()
                        .name(CONTAINER_NAME)
                        .build(),
                ),
                body,
            )
            .await;
        let id = match created {
            Ok(created) => created.id,
            // Made meanwhile by another server of this installation: that one is used.
            Err(e) if status_of(&e) == Some(409) => docker
                .inspect_container(CONTAINER_NAME, None)
                .await
                .map_err(map_err)?
                .id
                .unwrap_or_default(),
            Err(e) => return Err(map_err(e)),
        };
        match docker.start_container(&id, None).await {
            Err(e) if status_of(&e) != Some(304) => Err(map_err(e)),
            _ => Ok(id),
        }
    }

    /// Imports the agent's image from its archive unless the engine has it.
    async fn import_node_agent(&self, agent: &NodeAgent) -> EngineResult<()> {
        let docker = self.ready().await?;
        match docker.inspect_image(agent.image()).await {
            Ok(_) => return Ok(()),
            Err(e) if status_of(&e) == Some(404) => {}
            Err(e) => return Err(map_err(e)),
        }
        let archive = agent
            .rootfs()
            .await
            .map_err(|e| EngineError::Other(format!("cannot write the node agent's image: {e}")))?;
        let file = tokio::fs::File::open(&archive)
            .await
            .map_err(|e| EngineError::Other(format!("cannot read {}: {e}", archive.display())))?;
        let (repo, tag) = super::split_image_reference(agent.image());
        let options = CreateImageOptionsBuilder::new()
            .from_src("-")
            .repo(repo)
            .tag(tag)
            .build();
        let mut progress = std::pin::pin!(docker.create_image(
            Some(options),
            Some(body_try_stream(ReaderStream::new(file))),
            None
        ));
        while let Some(step) = progress.next().await {
            step.map_err(map_err)?;
        }
        tracing::info!(image = agent.image(), "imported the node agent's image");
        Ok(())
    }

    /// One reading: the agent's read command run in its container, what it printed (at most
    /// [`MAX_OUTPUT_BYTES`]). A command that fails is an error with what it printed.
    pub(crate) async fn read_with_node_agent(
        &self,
        agent: &NodeAgent,
        container: &str,
    ) -> EngineResult<Vec<u8>> {
        let spec = ExecSpec {
            command: agent.read_command(),
            tty: false,
            size: None,
            env: Vec::new(),
        };
        let mut session = self.start_exec(container, &spec).await?;
        drop(session.input);
        let mut printed = Vec::new();
        while let Some(chunk) = session.output.next().await {
            let chunk = chunk?;
            if printed.len() + chunk.len() > MAX_OUTPUT_BYTES {
                return Err(EngineError::Other(format!(
                    "the node agent printed more than {MAX_OUTPUT_BYTES} bytes"
                )));
            }
            printed.extend_from_slice(&chunk);
        }
        match self.exec_exit(&session.id).await? {
            Some(0) => Ok(printed),
            exit => Err(EngineError::Other(format!(
                "the node agent's reading failed (exit code {}): {}",
                exit.map_or_else(|| "unknown".into(), |c| c.to_string()),
                String::from_utf8_lossy(&printed).trim()
            ))),
        }
    }
}
