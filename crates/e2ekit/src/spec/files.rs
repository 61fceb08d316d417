//! Files copied into a container: from bytes or from a host path, with mode and owner.
//!
//! ```
//! use e2ekit::prelude::*;
//!
//! let opts = StartOptions::new("busybox")
//!     // Before the container starts: the process finds it at its first instruction.
//!     .copy(CopyFile::bytes(b"port: 8080\n".to_vec(), "/etc/app/config.yml").mode(0o640))
//!     .copy(CopyFile::host_path("/etc/ssl/certs", "/etc/ssl/certs"));
//! # let _ = opts;
//! ```
//!
//! The same value copies into a running container with `Runnable::copy_to`; files and
//! directories come back out with `Runnable::copy_from` and `Runnable::read_file`.

use std::path::PathBuf;

/// A file or directory to copy into a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyFile {
    pub(crate) source: CopySource,
    pub(crate) target: String,
    pub(crate) mode: Option<u32>,
    pub(crate) owner: Option<(u32, u32)>,
}

/// Where a [`CopyFile`]'s content comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CopySource {
    Bytes(Vec<u8>),
    /// A host file or directory (copied with everything below it), read at copy time.
    HostPath(PathBuf),
}

impl CopyFile {
    /// A file holding `data` at the absolute path `target` in the container (mode 0644,
    /// owned by root unless set).
    pub fn bytes(data: impl Into<Vec<u8>>, target: impl Into<String>) -> Self {
        Self {
            source: CopySource::Bytes(data.into()),
            target: target.into(),
            mode: None,
            owner: None,
        }
    }

    /// The host file or directory `source` (a directory with everything below it) at the
    /// absolute path `target` in the container. It is read when the copy happens (at start
    /// for [`crate::StartOptions::copy`]); files keep their mode unless [`CopyFile::mode`]
    /// sets one.
    pub fn host_path(source: impl Into<PathBuf>, target: impl Into<String>) -> Self {
        Self {
            source: CopySource::HostPath(source.into()),
            target: target.into(),
            mode: None,
            owner: None,
        }
    }

    /// The permission bits of the file (of every file, for a directory), e.g. `0o600`.
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = Some(mode);
        self
    }

    /// The numeric owner of everything copied (default: root, 0:0).
    pub fn owner(mut self, uid: u32, gid: u32) -> Self {
        self.owner = Some((uid, gid));
        self
    }

    /// The absolute path in the container.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// What is wrong with this copy whatever the engine: the target must be an absolute path
    /// without `..` (it would escape the intended directory) and the mode must fit in 12 bits.
    pub(crate) fn check_definition(&self) -> Result<(), String> {
        check_container_path(&self.target, "copy target")?;
        if let Some(mode) = self.mode {
            if mode > 0o7777 {
                return Err(format!(
                    "copy to {:?}: mode {mode:#o} is not a permission mode (at most 0o7777)",
                    self.target
                ));
            }
        }
        if let CopySource::HostPath(p) = &self.source {
            if p.as_os_str().is_empty() {
                return Err(format!("copy to {:?}: the host path is empty", self.target));
            }
        }
        Ok(())
    }
}

/// Checks that `path` is an absolute container path without `..` components.
pub(crate) fn check_container_path(path: &str, what: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err(format!("{what} {path:?} must be an absolute path"));
    }
    if path.split('/').any(|c| c == "..") {
        return Err(format!("{what} {path:?} must not contain \"..\""));
    }
    if path.contains('\0') {
        return Err(format!("{what} {path:?} holds a NUL character"));
    }
    Ok(())
}

/// One entry of a copy, ready for an engine: a path in the container and what is there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileEntry {
    /// Absolute path in the container (on the way in), or path relative to the copied root
    /// (on the way out; the root itself is its own name).
    pub path: String,
    pub kind: EntryKind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// What a [`FileEntry`] is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum EntryKind {
    File(Vec<u8>),
    Dir,
    Symlink(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_must_be_absolute_without_parent_components() {
        assert!(CopyFile::bytes(*b"x", "/etc/a").check_definition().is_ok());
        let relative = CopyFile::bytes(*b"x", "etc/a")
            .check_definition()
            .unwrap_err();
        assert!(relative.contains("absolute"), "{relative}");
        let escape = CopyFile::bytes(*b"x", "/data/../etc/passwd")
            .check_definition()
            .unwrap_err();
        assert!(escape.contains(".."), "{escape}");
        let mode = CopyFile::bytes(*b"x", "/a")
            .mode(0o17777)
            .check_definition()
            .unwrap_err();
        assert!(mode.contains("0o7777"), "{mode}");
    }
}
