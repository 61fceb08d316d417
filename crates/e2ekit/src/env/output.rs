//! A container's output on its way to the test: printed with a `name: ` prefix, fed to log
//! probes, and its last lines kept for errors.
//!
//! ```text
//! app: listening on :8080      <- stdout, printed with println! (cargo test captures it)
//! app: warning: no config      <- stderr, printed with eprintln!
//! ```

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use tokio::sync::Notify;

use crate::engine::Backend;
use crate::error::LogTail;
use crate::host::fs::lock;
use crate::spec::{LogProbe, OutputConsumer, OutputLine};

/// The last lines a container printed, as the log pump saw them, each already cut to what an
/// error keeps. Errors normally ask the engine for the tail; this copy answers when the engine
/// failed and cannot be asked.
#[derive(Debug)]
pub(crate) struct RecentLines {
    capacity: usize,
    lines: Mutex<VecDeque<(String, usize)>>,
}

impl RecentLines {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            lines: Mutex::new(VecDeque::with_capacity(capacity)),
        }
    }

    /// Keeps `text` (its start only, when long) as the newest line.
    pub(crate) fn push(&self, text: &str, already_cut: usize) {
        let mut keep = text.len().min(LogTail::LINE_BYTES);
        while !text.is_char_boundary(keep) {
            keep -= 1;
        }
        let cut = already_cut + (text.len() - keep);
        let mut lines = lock(&self.lines);
        if lines.len() == self.capacity {
            lines.pop_front();
        }
        lines.push_back((text[..keep].to_string(), cut));
    }

    /// The kept lines, bounded like every error's tail.
    pub(crate) fn tail(&self) -> LogTail {
        LogTail::bounded(lock(&self.lines).iter().cloned())
    }
}

/// Where a container's output lines go.
pub(crate) struct OutputSinks {
    /// Print them with a `name: ` prefix.
    pub print: bool,
    /// The user's consumers, called with every line.
    pub consumers: Vec<OutputConsumer>,
    pub log_probes: Vec<LogProbe>,
    /// Notified after log probes saw a line.
    pub log_lines: Arc<Notify>,
    /// Keeps the last lines for errors.
    pub recent: Arc<RecentLines>,
}

/// Prints the container's output with a `name: ` prefix (unless told not to), hands it to
/// the user's consumers, feeds log probes and keeps the last lines for errors.
pub(crate) fn spawn_log_pump(
    backend: Arc<dyn Backend>,
    id: &str,
    name: String,
    sinks: OutputSinks,
) {
    let OutputSinks {
        print,
        consumers,
        log_probes,
        log_lines,
        recent,
    } = sinks;
    let mut stream = backend.follow_logs(id);
    // On e2ekit's runtime: output keeps flowing after the starting runtime is gone.
    crate::runtime::spawn(async move {
        while let Some(item) = stream.next().await {
            let line = match item {
                Ok(line) => line,
                Err(e) => {
                    tracing::debug!(runnable = %name, error = %e, "log stream ended");
                    break;
                }
            };
            // print!-style output is what `cargo test` captures and shows for failing tests.
            if print {
                if line.stderr {
                    eprintln!("{name}: {}", line.text);
                } else {
                    println!("{name}: {}", line.text);
                }
            }
            if !consumers.is_empty() {
                let seen = OutputLine {
                    runnable: name.clone(),
                    stderr: line.stderr,
                    text: line.text.clone(),
                };
                for consumer in &consumers {
                    // A panicking consumer must not end the pump (and with it the log probes).
                    let call = std::panic::AssertUnwindSafe(|| (consumer.0)(&seen));
                    if std::panic::catch_unwind(call).is_err() {
                        tracing::warn!(runnable = %name, "an output consumer panicked");
                    }
                }
            }
            recent.push(&line.text, line.cut);
            if !log_probes.is_empty() {
                for p in &log_probes {
                    p.observe(&line.text);
                }
                log_lines.notify_one();
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_lines_keep_the_newest_lines_each_cut_like_an_error_tail() {
        let recent = RecentLines::new(2);
        recent.push("one", 0);
        recent.push("two", 0);
        recent.push(&"é".repeat(1000), 0);
        let tail = recent.tail();
        assert_eq!(tail.0.len(), 2, "{tail:?}");
        assert_eq!(tail.0[0], "two");
        assert!(
            tail.0[1].ends_with("… (976 bytes cut)"),
            "a 2000-byte line keeps its first 1 KiB: {:?}",
            &tail.0[1][1000..]
        );
    }
}
