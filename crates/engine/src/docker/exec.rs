//! Commands run inside a running container (`berth exec`, the console's terminal): the
//! engine's exec, attached — bytes in, bytes out, a terminal's size, the exit code.

use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bollard::query_parameters::ResizeExecOptionsBuilder;
use futures::StreamExt;

use super::{DockerEngine, map_err};
use crate::{EngineError, EngineResult, ExecSession, ExecSpec};

impl DockerEngine {
    pub(super) async fn start_exec(
        &self,
        container: &str,
        spec: &ExecSpec,
    ) -> EngineResult<ExecSession> {
        let docker = self.ready().await?;
        let options = CreateExecOptions {
            attach_stdin: Some(true),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(spec.tty),
            cmd: Some(spec.command.clone()),
            env: (!spec.env.is_empty()).then(|| spec.env.clone()),
            ..Default::default()
        };
        let created = docker
            .create_exec(container, options)
            .await
            .map_err(map_err)?;
        let started = docker
            .start_exec(
                &created.id,
                Some(StartExecOptions {
                    detach: false,
                    tty: spec.tty,
                    output_capacity: None,
                }),
            )
            .await
            .map_err(map_err)?;
        let StartExecResults::Attached { output, input } = started else {
            return Err(EngineError::Other("the engine detached the exec".into()));
        };
        if let (true, Some((cols, rows))) = (spec.tty, spec.size) {
            // The process may exit before the size is set: that is no error of the session.
            let _ = self.resize_exec(&created.id, cols, rows).await;
        }
        let output = output
            .map(|item| {
                item.map(|chunk| match chunk {
                    LogOutput::StdOut { message }
                    | LogOutput::StdErr { message }
                    | LogOutput::Console { message }
                    | LogOutput::StdIn { message } => message,
                })
                .map_err(map_err)
            })
            .boxed();
        Ok(ExecSession {
            id: created.id,
            output,
            input,
        })
    }

    pub(super) async fn resize_exec(&self, id: &str, cols: u16, rows: u16) -> EngineResult<()> {
        let docker = self.ready().await?;
        docker
            .resize_exec(
                id,
                ResizeExecOptionsBuilder::new()
                    .w(i32::from(cols))
                    .h(i32::from(rows))
                    .build(),
            )
            .await
            .map_err(map_err)
    }

    pub(super) async fn exec_exit(&self, id: &str) -> EngineResult<Option<i64>> {
        let docker = self.ready().await?;
        let inspected = docker.inspect_exec(id).await.map_err(map_err)?;
        Ok(if inspected.running == Some(true) {
            None
        } else {
            inspected.exit_code
        })
    }
}
