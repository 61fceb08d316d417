//! Building an image from a Dockerfile and its context with the engine's classic builder
//! (`POST /build`): it needs no registry when the base is `scratch` or a local image.
//!
//! The image is tagged only when every step passed, and intermediate containers are removed
//! even when a step fails (`forcerm`), so a failed build leaves no tagged image and no
//! container. The error names the failing step (`Step 2/3 : RUN make`) and carries the tail
//! of the build's output.

use std::collections::{HashMap, VecDeque};

use bollard::query_parameters::BuildImageOptionsBuilder;
use futures_util::StreamExt;

use super::calls::{bollard_error, within, CALL_TIMEOUT};
use super::DockerBackend;
use crate::engine::BuildRequest;
use crate::error::{DockerfileBuildFailure, Error, LogTail, Result};

/// How many lines of build output an error keeps.
const OUTPUT_LINES: usize = 30;

/// The build output as it streams in: the last lines, and the step under way.
#[derive(Default)]
struct Progress {
    lines: VecDeque<String>,
    partial: String,
    step: Option<String>,
}

impl Progress {
    /// Takes one chunk of the builder's text (lines may be cut anywhere).
    fn push(&mut self, text: &str) {
        self.partial.push_str(text);
        while let Some(end) = self.partial.find('\n') {
            let line: String = self.partial.drain(..=end).collect();
            self.line(line.trim_end().to_string());
        }
    }

    fn line(&mut self, line: String) {
        // The builder colours a step's stderr with terminal escapes; errors are plain text.
        let line = strip_escapes(&line);
        if line.trim().is_empty() {
            return;
        }
        // The classic builder announces each instruction as "Step N/M : INSTRUCTION".
        if line.starts_with("Step ") && line.contains(" : ") {
            self.step = Some(line.clone());
        }
        if self.lines.len() == OUTPUT_LINES {
            self.lines.pop_front();
        }
        self.lines.push_back(line);
    }

    fn finish(&mut self) -> LogTail {
        let rest = std::mem::take(&mut self.partial);
        self.line(rest.trim_end().to_string());
        LogTail::bounded(self.lines.iter().map(|l| (l.clone(), 0)))
    }
}

/// `text` without ANSI escape sequences (`ESC [ ... final byte`).
fn strip_escapes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            // Parameters and intermediates, up to the final byte (@ to ~).
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

impl DockerBackend {
    pub(super) async fn build_image(&self, request: &BuildRequest) -> Result<()> {
        let mut options = BuildImageOptionsBuilder::default()
            .dockerfile(&request.dockerfile)
            .t(&request.tag)
            .rm(true)
            .forcerm(true)
            .buildargs(
                &request
                    .build_args
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect::<HashMap<_, _>>(),
            )
            .labels(
                &request
                    .labels
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect::<HashMap<_, _>>(),
            );
        if let Some(stage) = &request.target {
            options = options.target(stage);
        }
        let options = options.build();
        let action = || {
            format!(
                "building image {} from {} in {}",
                request.tag,
                request.dockerfile,
                request.context_dir.display()
            )
        };
        let body = bollard::body_full(request.context_tar.clone().into());
        let mut progress = Progress::default();
        let failure = |progress: &mut Progress, reason: String| {
            Error::DockerfileBuild(Box::new(DockerfileBuildFailure {
                image: request.tag.clone(),
                context: request.context_dir.display().to_string(),
                dockerfile: request.dockerfile.clone(),
                step: progress.step.clone(),
                reason,
                output: progress.finish(),
            }))
        };
        // A build runs as long as its steps do: no deadline, but a dead engine ends it.
        let outcome: Result<Option<String>> = self
            .liveness
            .guard(action, async {
                let mut stream = self.docker.build_image(options, None, Some(body));
                while let Some(item) = stream.next().await {
                    match item {
                        Ok(info) => {
                            if let Some(text) = &info.stream {
                                progress.push(text);
                            }
                            if let Some(message) = info.error_detail.and_then(|d| d.message) {
                                return Ok(Some(message));
                            }
                        }
                        Err(bollard::errors::Error::DockerStreamError { error }) => {
                            return Ok(Some(error))
                        }
                        // The engine refused the build before running a step (a missing
                        // Dockerfile, a syntax error): its message says why.
                        Err(bollard::errors::Error::DockerResponseServerError {
                            message, ..
                        }) => return Ok(Some(message)),
                        Err(e) => return Err(Error::engine(action(), e)),
                    }
                }
                Ok(None)
            })
            .await;
        match outcome {
            Ok(None) => {}
            Ok(Some(reason)) => return Err(failure(&mut progress, reason.trim().to_string())),
            Err(e) => {
                let reason = bollard_error(&e).map_or_else(|| e.to_string(), |b| b.to_string());
                return Err(failure(&mut progress, reason));
            }
        }
        // The classic builder tags at the very end; make sure the tag is there.
        within(
            action,
            CALL_TIMEOUT,
            self.docker.inspect_image(&request.tag),
        )
        .await
        .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_keeps_the_step_under_way_and_the_last_lines() {
        let mut p = Progress::default();
        p.push("Step 1/2 : FROM scratch\n ---> \nStep 2/2 : RUN fa");
        p.push("il\n ---> Running in abc\n\u{1b}[91msh: fail: not found\n\u{1b}[0m");
        p.push("no newline at the end");
        assert_eq!(p.step.as_deref(), Some("Step 2/2 : RUN fail"));
        let tail = p.finish();
        assert_eq!(
            tail.0.last().map(String::as_str),
            Some("no newline at the end")
        );
        assert!(tail.0.contains(&"sh: fail: not found".to_string()));
        let mut many = Progress::default();
        for i in 0..100 {
            many.push(&format!("line {i}\n"));
        }
        let tail = many.finish();
        assert_eq!(tail.0.len(), OUTPUT_LINES);
        assert_eq!(tail.0[0], "line 70");
    }
}
