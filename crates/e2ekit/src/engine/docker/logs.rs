//! Container output: followed line by line, or its last lines for error messages.

use std::collections::VecDeque;
use std::time::Duration;

use bollard::container::LogOutput;
use bollard::query_parameters::LogsOptionsBuilder;
use futures_util::{StreamExt, TryStreamExt};

use super::{DockerBackend, LogStream};
use crate::engine::{LineSplitter, LogLine};
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
        Box::pin(split_lines(
            chunks.map_err(move |e| {
                Error::engine(format!("following the output of container {id_owned}"), e)
            }),
            LineSplitter::new(),
        ))
    }

    pub(super) async fn log_tail(&self, id: &str, lines: usize, max_line: usize) -> Vec<LogLine> {
        // Podman 4 garbles lines written in several pieces when it reads a log backwards for
        // `tail=N`; there, read everything and keep the last lines instead. Docker counts
        // log entries, not lines: it stores a long line as 16 KiB pieces, so the first line
        // read may be the end of a longer one.
        let mut opts = LogsOptionsBuilder::default().stdout(true).stderr(true);
        if !self.podman {
            opts = opts.tail(&lines.to_string());
        }
        let opts = opts.build();
        let collect = split_lines(
            self.docker
                .logs(id, Some(opts))
                .map_err(|e| Error::engine("reading container output", e)),
            LineSplitter::bounded(max_line),
        )
        .filter_map(|l| async move { l.ok() })
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

/// Turns the engine's output chunks into lines, per stream, with `splitter`.
fn split_lines(
    chunks: impl futures_util::Stream<Item = Result<LogOutput>> + Send + 'static,
    mut splitter: LineSplitter,
) -> impl futures_util::Stream<Item = Result<LogLine>> + Send + 'static {
    let chunks = chunks
        .map(Some)
        .chain(futures_util::stream::once(async { None }));
    chunks.flat_map(move |chunk| {
        let mut lines = Vec::new();
        let mut failed = None;
        match chunk {
            Some(Ok(out)) => {
                let (stderr, bytes) = match out {
                    LogOutput::StdErr { message } => (true, message),
                    LogOutput::StdOut { message }
                    | LogOutput::Console { message }
                    | LogOutput::StdIn { message } => (false, message),
                };
                splitter.push(stderr, &bytes, &mut lines);
            }
            Some(Err(e)) => failed = Some(e),
            None => splitter.finish(&mut lines),
        }
        futures_util::stream::iter(lines.into_iter().map(Ok).chain(failed.map(Err)))
    })
}
