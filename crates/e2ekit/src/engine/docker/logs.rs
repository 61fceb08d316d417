//! Container output: followed line by line, or its last lines for error messages.

use std::collections::VecDeque;
use std::time::Duration;

use bollard::container::LogOutput;
use bollard::query_parameters::LogsOptionsBuilder;
use futures_util::{StreamExt, TryStreamExt};

use super::{DockerBackend, LogStream};
use crate::engine::LogLine;
use crate::error::{Error, Result};

impl DockerBackend {
    pub(super) fn follow_logs(&self, id: &str) -> LogStream {
        let opts = LogsOptionsBuilder::default()
            .follow(true)
            .stdout(true)
            .stderr(true)
            .build();
        let id_owned = id.to_string();
        let chunks = self.docker.logs(id, Some(opts));
        Box::pin(split_lines(chunks.map_err(move |e| {
            Error::engine(format!("following the output of container {id_owned}"), e)
        })))
    }

    pub(super) async fn log_tail(&self, id: &str, lines: usize) -> Vec<String> {
        // Podman 4 garbles lines written in several pieces when it reads a log backwards for
        // `tail=N`; there, read everything and keep the last lines instead.
        let mut opts = LogsOptionsBuilder::default().stdout(true).stderr(true);
        if !self.podman {
            opts = opts.tail(&lines.to_string());
        }
        let opts = opts.build();
        let collect = split_lines(
            self.docker
                .logs(id, Some(opts))
                .map_err(|e| Error::engine("reading container output", e)),
        )
        .filter_map(|l| async move { l.ok().map(|l| l.text) })
        .fold(VecDeque::new(), move |mut tail, line| async move {
            tail.push_back(line);
            if tail.len() > lines {
                tail.pop_front();
            }
            tail
        });
        tokio::time::timeout(Duration::from_secs(5), collect)
            .await
            .map(Vec::from)
            .unwrap_or_default()
    }
}

/// Turns the engine's output chunks into whole lines, per stream.
fn split_lines(
    chunks: impl futures_util::Stream<Item = Result<LogOutput>> + Send + 'static,
) -> impl futures_util::Stream<Item = Result<LogLine>> + Send + 'static {
    let mut pending: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
    let chunks = chunks
        .map(Some)
        .chain(futures_util::stream::once(async { None }));
    chunks.flat_map(move |chunk| {
        let mut lines = Vec::new();
        match chunk {
            Some(Ok(out)) => {
                let (stderr, bytes) = match out {
                    LogOutput::StdErr { message } => (true, message),
                    LogOutput::StdOut { message } | LogOutput::Console { message } => {
                        (false, message)
                    }
                    LogOutput::StdIn { message } => (false, message),
                };
                let buf = &mut pending[usize::from(stderr)];
                buf.extend_from_slice(&bytes);
                while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=pos).collect();
                    lines.push(Ok(LogLine {
                        stderr,
                        text: String::from_utf8_lossy(&line[..line.len() - 1])
                            .trim_end_matches('\r')
                            .to_string(),
                    }));
                }
            }
            Some(Err(e)) => lines.push(Err(e)),
            None => {
                for (i, buf) in pending.iter_mut().enumerate() {
                    if !buf.is_empty() {
                        lines.push(Ok(LogLine {
                            stderr: i == 1,
                            text: String::from_utf8_lossy(buf).to_string(),
                        }));
                        buf.clear();
                    }
                }
            }
        }
        futures_util::stream::iter(lines)
    })
}
