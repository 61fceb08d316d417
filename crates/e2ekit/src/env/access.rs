//! Reaching into a runnable's container: files in and out, its output so far, its identity
//! and exit code, and endpoints as socket addresses.
//!
//! ```no_run
//! use e2ekit::prelude::*;
//!
//! # async fn demo(app: &Runnable) -> e2ekit::Result<()> {
//! app.copy_to(CopyFile::bytes(b"level: debug\n".to_vec(), "/etc/app/log.yml")).await?;
//! let written = app.read_file("/var/lib/app/state.json").await?;
//! app.copy_from("/var/lib/app", "/tmp/app-state").await?;
//! let out = app.output().await?;
//! println!("{} bytes of stderr, id {:?}", out.stderr.len(), app.container_id());
//! let addr: std::net::SocketAddr = app.endpoint_addr("http")?;
//! # let _ = (written, addr);
//! # Ok(()) }
//! ```
//!
//! On an engine that cannot see this host's files (a remote one), the shared directory is
//! copied into each container when it starts instead of being mounted; see
//! [`Runnable::dir`].

use std::net::SocketAddr;
use std::path::Path;

use super::runnable::{Ended, Runnable};
use crate::engine::{EntryKind, FileEntry};
use crate::error::{Error, Result};
use crate::host::copy;
use crate::host::fs::lock;
use crate::spec::{CopyFile, Output};

impl Runnable {
    /// Copies a file or directory into the running container (see [`CopyFile`] for mode and
    /// owner). A runnable that is not running is an [`Error::NotRunning`]; a missing host
    /// source or a refused write an [`Error::Copy`] naming the path.
    pub async fn copy_to(&self, file: CopyFile) -> Result<()> {
        file.check_definition()
            .map_err(|e| Error::InvalidArgument(format!("runnable {:?}: {e}", self.name())))?;
        let id = self.running_id(&format!("copy {} into", file.target()))?;
        let entries = self.read_copy(&file)?;
        self.backend().copy_in(&id, self.name(), &entries).await
    }

    /// Copies the file or directory at `path` in the container (running, or exited on its
    /// own) to `host_dest` on this host (a directory with everything below it).
    pub async fn copy_from(&self, path: &str, host_dest: impl AsRef<Path>) -> Result<()> {
        let host_dest = host_dest.as_ref();
        let entries = self.copy_out(path).await?;
        copy::write_entries(&entries, host_dest).map_err(|reason| Error::Copy {
            runnable: self.name().to_string(),
            what: format!("{path} to {}", host_dest.display()),
            reason,
            source: None,
        })
    }

    /// The content of the file at `path` in the container (running, or exited on its own).
    pub async fn read_file(&self, path: &str) -> Result<Vec<u8>> {
        let entries = self.copy_out(path).await?;
        match entries.into_iter().next() {
            Some(FileEntry {
                kind: EntryKind::File(data),
                ..
            }) => Ok(data),
            _ => Err(Error::Copy {
                runnable: self.name().to_string(),
                what: format!("{path} out of the container"),
                reason: format!("{path} is not a regular file (use copy_from for directories)"),
                source: None,
            }),
        }
    }

    /// Everything the container printed so far, stdout and stderr apart (also after it
    /// exited on its own, until the next start; a stop or kill removes the container).
    pub async fn output(&self) -> Result<Output> {
        let id = self
            .container_id()
            .ok_or_else(|| self.not_running("read the output of"))?;
        self.backend().output(&id, self.name()).await
    }

    /// The exit code of the container's main process once it exited (137 after a kill);
    /// `None` while it runs, before it started, or when the engine was lost.
    pub fn exit_code(&self) -> Option<i64> {
        let state = lock(self.inner_state());
        let running = state.as_ref()?;
        let ended = running.exit.borrow().clone();
        match ended {
            Some(Ended::Exited(status)) => Some(status.code),
            _ => None,
        }
    }

    /// Like [`Runnable::endpoint`], as a socket address a client library can take directly.
    pub fn endpoint_addr(&self, port: &str) -> Result<SocketAddr> {
        let endpoint = self.endpoint(port)?;
        endpoint.parse().map_err(|e| {
            Error::Unexpected(format!(
                "the endpoint {endpoint} of port {port:?} of runnable {:?} is not a socket address: {e}",
                self.name()
            ))
        })
    }

    /// Whether the engine mounts this host's files (else the shared directory is a copy).
    pub(crate) fn engine_sees_host_files(&self) -> bool {
        self.backend().sees_host_files()
    }

    /// After e2ekit rewrote `host_path` (in the shared directory) for a running service: on
    /// an engine that cannot see this host's files, copies it into the container, where the
    /// service reads it. Nothing to do on a local engine, where the directory is mounted.
    pub(crate) async fn push_host_file(&self, host_path: &Path) -> Result<()> {
        if self.backend().sees_host_files() || !self.is_running() {
            return Ok(());
        }
        let target = host_path.display().to_string();
        self.copy_to(CopyFile::host_path(host_path, target)).await
    }

    /// What is copied in before the container starts, read from the host now: the shared
    /// directory (its path and content) on an engine that cannot mount it, and the options'
    /// copies.
    #[allow(clippy::type_complexity)]
    pub(super) fn files_at_start(
        &self,
    ) -> Result<(Option<(String, Vec<FileEntry>)>, Vec<FileEntry>)> {
        let mut shared_dir = None;
        if !self.backend().sees_host_files() {
            let shared = &self.inner_core().shared_dir;
            let path = shared.display().to_string();
            let mut whole = CopyFile::host_path(shared, path.clone());
            if let Some(uid) = crate::host::fs::current_uid() {
                whole = whole.owner(uid, uid);
            }
            shared_dir = Some((path, self.read_copy(&whole)?));
        }
        let mut files = Vec::new();
        for file in &self.options().container.copies {
            files.extend(self.read_copy(file)?);
        }
        Ok((shared_dir, files))
    }

    /// Maps the engine's "port taken" (which names the container port by number) to the
    /// declared port's name.
    pub(super) fn name_taken_port(&self, e: Error) -> Error {
        match e {
            Error::PortTaken {
                runnable,
                port,
                host_port,
                reason,
            } => {
                let name = self
                    .ports()
                    .iter()
                    .find(|(_, p)| p.to_string() == port)
                    .map_or(port, |(n, _)| n.clone());
                Error::PortTaken {
                    runnable,
                    port: name,
                    host_port,
                    reason,
                }
            }
            other => other,
        }
    }

    fn read_copy(&self, file: &CopyFile) -> Result<Vec<FileEntry>> {
        copy::entries_of(file).map_err(|reason| Error::Copy {
            runnable: self.name().to_string(),
            what: format!("into {}", file.target()),
            reason,
            source: None,
        })
    }

    async fn copy_out(&self, path: &str) -> Result<Vec<FileEntry>> {
        crate::spec::files::check_container_path(path, "path")
            .map_err(|e| Error::InvalidArgument(format!("runnable {:?}: {e}", self.name())))?;
        let id = self
            .container_id()
            .ok_or_else(|| self.not_running(&format!("copy {path} out of")))?;
        self.backend().copy_out(&id, self.name(), path).await
    }
}
