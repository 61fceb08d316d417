//! Running commands inside a running container, with stdin, and collecting their output.

use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecResults};
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use super::calls::{within, CALL_TIMEOUT};
use super::{DockerBackend, ExecOutput, ExecRequest};
use crate::error::{Error, Result};

impl DockerBackend {
    pub(super) async fn exec(
        &self,
        id: &str,
        for_whom: &str,
        request: &ExecRequest,
    ) -> Result<ExecOutput> {
        let cmd = &request.argv;
        let stdin = request.stdin.clone();
        let user = request.user.as_deref();
        let command_line = cmd.join(" ");
        let action = || format!("running {command_line:?} in runnable {for_whom}");
        let created = within(
            action,
            CALL_TIMEOUT,
            self.docker.create_exec(
                id,
                CreateExecOptions {
                    attach_stdin: Some(stdin.is_some()),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    cmd: Some(cmd.to_vec()),
                    user: user.map(str::to_string),
                    ..Default::default()
                },
            ),
        )
        .await?;
        // The command may legitimately run for any time: no deadline on its output, but a
        // frozen or dead engine ends the wait.
        let (stdout, stderr) = self
            .liveness
            .guard(action, async {
                let started = within(
                    action,
                    CALL_TIMEOUT,
                    self.docker.start_exec(&created.id, None),
                )
                .await?;
                let mut stdout = Vec::new();
                let mut stderr = Vec::new();
                if let StartExecResults::Attached {
                    mut output,
                    mut input,
                } = started
                {
                    if let Some(data) = stdin {
                        input.write_all(&data).await.map_err(|e| {
                            Error::io(format!("writing stdin of {command_line:?}"), e)
                        })?;
                        input.shutdown().await.map_err(|e| {
                            Error::io(format!("closing stdin of {command_line:?}"), e)
                        })?;
                    }
                    while let Some(chunk) = output.next().await {
                        match chunk.map_err(|e| Error::engine(action(), e))? {
                            LogOutput::StdErr { message } => stderr.extend_from_slice(&message),
                            LogOutput::StdOut { message } | LogOutput::Console { message } => {
                                stdout.extend_from_slice(&message)
                            }
                            LogOutput::StdIn { .. } => {}
                        }
                    }
                }
                Ok((stdout, stderr))
            })
            .await?;
        let inspected = within(action, CALL_TIMEOUT, self.docker.inspect_exec(&created.id)).await?;
        Ok(ExecOutput {
            exit_code: inspected.exit_code.unwrap_or(-1),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        })
    }
}
