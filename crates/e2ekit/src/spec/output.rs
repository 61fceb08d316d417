//! What a test sees of a container's output: lines handed to a consumer as they come, and
//! the output so far, stdout and stderr apart.
//!
//! ```
//! use e2ekit::prelude::*;
//! use std::sync::{Arc, Mutex};
//!
//! let errors = Arc::new(Mutex::new(Vec::new()));
//! let seen = errors.clone();
//! let opts = StartOptions::new("busybox")
//!     .print_output(false) // no `name: ` lines in the test's output
//!     .on_output(move |line: &OutputLine| {
//!         if line.is_stderr() {
//!             seen.lock().unwrap().push(line.text().to_string());
//!         }
//!     });
//! # let _ = opts;
//! ```

use std::fmt;
use std::sync::Arc;

/// One line a container printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputLine {
    pub(crate) runnable: String,
    pub(crate) stderr: bool,
    pub(crate) text: String,
}

impl OutputLine {
    /// The runnable that printed it.
    pub fn runnable(&self) -> &str {
        &self.runnable
    }

    /// Whether it went to stderr (else stdout).
    pub fn is_stderr(&self) -> bool {
        self.stderr
    }

    /// The line without its newline; invalid UTF-8 is replaced, and a line of more than
    /// 1 MiB keeps its start only.
    pub fn text(&self) -> &str {
        &self.text
    }
}

/// Everything a container printed so far, each stream apart.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    /// What it wrote to stdout (invalid UTF-8 replaced).
    pub stdout: String,
    /// What it wrote to stderr (invalid UTF-8 replaced).
    pub stderr: String,
}

/// A callback receiving a runnable's output lines as they are printed.
#[derive(Clone)]
pub(crate) struct OutputConsumer(pub Arc<dyn Fn(&OutputLine) + Send + Sync>);

impl fmt::Debug for OutputConsumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OutputConsumer(..)")
    }
}
