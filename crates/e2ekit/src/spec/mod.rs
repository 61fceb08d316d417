//! What to run, as plain values: commands, start options, probes, mounts and flags.
//!
//! Nothing here does I/O or knows an engine; the environment turns these values into
//! containers.
//!
//! ```
//! use e2ekit::prelude::*;
//!
//! let opts = StartOptions::new("e2ekit/demo-app:latest")
//!     .command(Command::new("/bin/demo-app").args(["--listen", ":8080"]))
//!     .readiness(HttpProbe::new("http", "/ready"));
//! assert_eq!(opts.image(), "e2ekit/demo-app:latest");
//! ```

pub(crate) mod command;
pub(crate) mod files;
pub(crate) mod flags;
pub(crate) mod image;
pub(crate) mod mount;
pub(crate) mod output;
pub(crate) mod probe;
pub(crate) mod reference;
pub(crate) mod start;

pub use command::Command;
pub use files::CopyFile;
pub(crate) use files::{CopySource, EntryKind, FileEntry};
pub use flags::Flags;
pub(crate) use image::ImageConfig;
pub(crate) use mount::Mount;
pub(crate) use output::OutputConsumer;
pub use output::{Output, OutputLine};
pub use probe::{AllProbe, CmdProbe, HttpProbe, LogProbe, Probe, TcpProbe};
pub use probe::{CustomProbe, HealthCheck, HealthProbe, ProbeContext};
pub use start::StartOptions;
pub(crate) use start::Ulimit;
