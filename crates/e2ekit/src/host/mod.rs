//! Host-side helpers that need no engine: file helpers, names, labels and root filesystems
//! assembled from host files.
//!
//! ```
//! // Every resource e2ekit creates carries these labels.
//! assert_eq!(e2ekit::labels::ENV, "e2ekit.env");
//! println!("this process owns its resources as {}", e2ekit::labels::owner());
//! ```

pub(crate) mod browser;
pub(crate) mod copy;
mod debian;
pub(crate) mod fs;
pub(crate) mod http;
pub mod labels;
pub(crate) mod naming;
pub(crate) mod rootfs;
// Images built from a Dockerfile (issue 13).
pub(crate) mod dockerfile;

pub use dockerfile::DockerfileImage;
pub use rootfs::HostImage;
