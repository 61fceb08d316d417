//! Bind mounts as typed values: which host path appears where in a container.
//!
//! Users write mounts the way they know them (`"/host/path:/in/container:ro"`); they are
//! parsed once, here, so no engine-specific string syntax travels further.
//!
//! ```
//! use e2ekit::prelude::*;
//!
//! let opts = StartOptions::new("busybox").volume("/etc/ssl/certs:/etc/ssl/certs:ro");
//! # let _ = opts;
//! ```

use std::fmt;
use std::path::{Path, PathBuf};

/// A host directory or file made visible inside a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mount {
    /// Absolute path on the machine that runs the engine.
    pub host: PathBuf,
    /// Absolute path inside the container.
    pub container: String,
    /// Whether the container may only read it.
    pub read_only: bool,
}

impl Mount {
    /// The same path on the host and in the container, writable.
    pub(crate) fn same_path(path: &Path) -> Self {
        Self {
            host: path.to_path_buf(),
            container: path.display().to_string(),
            read_only: false,
        }
    }

    /// Parses `host:container[:ro|rw]`. Both paths must be absolute: a relative "host path"
    /// would silently become an engine-managed named volume that nothing removes.
    pub(crate) fn parse(spec: &str) -> Result<Self, String> {
        let mut parts = spec.splitn(3, ':');
        let host = parts.next().unwrap_or_default();
        let Some(container) = parts.next() else {
            return Err(format!(
                "volume {spec:?} must be \"/host/path:/container/path\" with an optional \":ro\""
            ));
        };
        let read_only = match parts.next() {
            None | Some("rw") => false,
            Some("ro") => true,
            Some(other) => {
                return Err(format!(
                    "volume {spec:?}: unknown mode {other:?} (use \"ro\" or \"rw\")"
                ))
            }
        };
        if !host.starts_with('/') {
            return Err(format!(
                "volume {spec:?}: the host path {host:?} must be absolute (named volumes are not supported: nothing would remove them)"
            ));
        }
        if !container.starts_with('/') {
            return Err(format!(
                "volume {spec:?}: the container path {container:?} must be absolute"
            ));
        }
        Ok(Self {
            host: PathBuf::from(host),
            container: container.to_string(),
            read_only,
        })
    }
}

impl fmt::Display for Mount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} -> {}", self.host.display(), self.container)?;
        if self.read_only {
            f.write_str(" (read-only)")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_host_container_and_mode() {
        let m = Mount::parse("/a:/b:ro").expect("valid");
        assert_eq!(m.host, PathBuf::from("/a"));
        assert_eq!(m.container, "/b");
        assert!(m.read_only);
        assert!(!Mount::parse("/a:/b").expect("valid").read_only);
        assert!(!Mount::parse("/a:/b:rw").expect("valid").read_only);
    }

    #[test]
    fn rejects_named_volumes_relative_paths_and_unknown_modes() {
        for bad in ["data:/data", "/a", "/a:b", "/a:/b:z", ""] {
            assert!(Mount::parse(bad).is_err(), "{bad:?} was accepted");
        }
        let err = Mount::parse("data:/data").unwrap_err();
        assert!(err.contains("named volumes"), "{err}");
    }
}
