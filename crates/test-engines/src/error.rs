//! The crate's one error type.

use std::time::Duration;

/// Everything that can go wrong while starting, controlling or tearing down a private engine.
///
/// Every message names the node (`e2ekit-eng-N`) it is about, and, where a command failed,
/// the command line and its stderr, so that a failed test says what to look at.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Private engines create network namespaces, veths and mounts: only root can.
    #[error("private Docker engines need root, but this process runs with euid {euid}")]
    NotRoot {
        /// The effective user id of this process.
        euid: u32,
    },
    /// A program the engines are built from is not installed.
    #[error("`{tool}` was not found in PATH nor in /usr/local/sbin, /usr/sbin, /sbin: private engines need it ({why})")]
    MissingTool {
        /// The program's name.
        tool: &'static str,
        /// What it is needed for.
        why: &'static str,
    },
    /// A command exited unsuccessfully (or could not be run at all).
    #[error("{node}: `{command}` failed ({status}): {stderr}")]
    Command {
        /// The node the command was run for.
        node: String,
        /// The command line.
        command: String,
        /// Exit status, or why it could not be run.
        status: String,
        /// Its trimmed stderr.
        stderr: String,
    },
    /// A file system or process operation failed.
    #[error("{node}: {what}: {source}")]
    Io {
        /// The node the operation was for (or the crate's directory).
        node: String,
        /// What was being done, with the path.
        what: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// All node indexes 1..=250 are held by live engines.
    #[error("no free node index: all of 1..=250 are held by running engines (see `e2ekit-test-engines ls`)")]
    NoFreeIndex,
    /// dockerd exited or did not answer `/_ping` in time while starting or restarting.
    #[error("{node}: dockerd did not come up after {waited:?}: {reason}\n--- tail of {log} ---\n{log_tail}")]
    Start {
        /// The node.
        node: String,
        /// How long was waited.
        waited: Duration,
        /// Why it is considered failed (exit status or last ping error).
        reason: String,
        /// Path of dockerd's log file (gone after a failed start's teardown).
        log: String,
        /// The last lines of dockerd's log.
        log_tail: String,
    },
    /// A `/_ping` failed (connection refused, timeout, or a non-OK answer).
    #[error("{node}: GET /_ping on {socket}: {reason}")]
    Ping {
        /// The node.
        node: String,
        /// The unix socket pinged.
        socket: String,
        /// What went wrong.
        reason: String,
        /// Whether the failure was a timeout (the engine accepted but did not answer).
        timed_out: bool,
    },
    /// A fault control was used in a state where it makes no sense (e.g. `freeze` after `kill`).
    #[error("{node}: {what}")]
    State {
        /// The node.
        node: String,
        /// What was wrong.
        what: String,
    },
    /// Teardown left something behind; each entry says what.
    #[error("{node}: teardown incomplete: {}", problems.join("; "))]
    Teardown {
        /// The node.
        node: String,
        /// What could not be removed, and why.
        problems: Vec<String>,
    },
}

impl Error {
    /// Whether this is a ping that timed out: the socket accepted the connection but the engine
    /// did not answer (what a frozen engine does).
    pub fn is_timeout(&self) -> bool {
        matches!(
            self,
            Error::Ping {
                timed_out: true,
                ..
            }
        )
    }

    pub(crate) fn io(
        node: impl Into<String>,
        what: impl Into<String>,
        source: std::io::Error,
    ) -> Self {
        Error::Io {
            node: node.into(),
            what: what.into(),
            source,
        }
    }
}
