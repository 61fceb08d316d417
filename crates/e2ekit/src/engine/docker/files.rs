//! Files in and out of containers (Docker's archive endpoint speaks tar both ways), and a
//! container's whole output so far.

use std::collections::HashMap;
use std::io::Read;

use bollard::container::LogOutput;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, DownloadFromContainerOptionsBuilder, LogsOptionsBuilder,
    UploadToContainerOptionsBuilder,
};
use futures_util::StreamExt;

use super::calls::{engine_message, is_not_found, status_code, within, CALL_TIMEOUT};
use super::DockerBackend;
use crate::engine::{EntryKind, FileEntry, Output};
use crate::error::{Error, Result};

/// Containers' output so far is read whole; beyond this it is an error, not an OOM.
const MAX_OUTPUT_BYTES: usize = 256 << 20;

impl DockerBackend {
    pub(super) async fn copy_in(
        &self,
        id: &str,
        for_whom: &str,
        entries: &[FileEntry],
    ) -> Result<()> {
        let what = || describe(entries);
        let failed = |reason: String, source: Option<Box<dyn std::error::Error + Send + Sync>>| {
            Error::Copy {
                runnable: for_whom.to_string(),
                what: what(),
                reason,
                source,
            }
        };
        let archive =
            tar_of(entries).map_err(|e| failed("packing the files".into(), Some(e.into())))?;
        // Extracted at `/`: entries carry their absolute paths (without the leading `/`), and
        // the engine creates missing parent directories.
        let opts = UploadToContainerOptionsBuilder::default().path("/").build();
        match within(
            || format!("copying {} into runnable {for_whom}", what()),
            CALL_TIMEOUT,
            self.docker
                .upload_to_container(id, Some(opts), bollard::body_full(archive.into())),
        )
        .await
        {
            Ok(()) => Ok(()),
            Err(e) => {
                let reason = engine_message(&e).to_string();
                let reason = if reason.is_empty() {
                    "the engine refused it".to_string()
                } else {
                    reason
                };
                Err(failed(reason, Some(Box::new(e))))
            }
        }
    }

    pub(super) async fn copy_out(
        &self,
        id: &str,
        for_whom: &str,
        path: &str,
    ) -> Result<Vec<FileEntry>> {
        let failed = |reason: String, source: Option<Box<dyn std::error::Error + Send + Sync>>| {
            Error::Copy {
                runnable: for_whom.to_string(),
                what: format!("{path} out of the container"),
                reason,
                source,
            }
        };
        let opts = DownloadFromContainerOptionsBuilder::default()
            .path(path)
            .build();
        let mut stream = self.docker.download_from_container(id, Some(opts));
        let mut archive = Vec::new();
        loop {
            match tokio::time::timeout(CALL_TIMEOUT, stream.next()).await {
                Ok(None) => break,
                Ok(Some(Ok(chunk))) => archive.extend_from_slice(&chunk),
                Ok(Some(Err(e))) => {
                    let e = Error::engine(format!("reading {path} of runnable {for_whom}"), e);
                    let reason = if is_not_found(&e) {
                        format!("{path} does not exist in the container")
                    } else {
                        engine_message(&e).to_string()
                    };
                    return Err(failed(reason, Some(Box::new(e))));
                }
                Err(_) => {
                    return Err(failed(
                        format!("the engine sent nothing for {CALL_TIMEOUT:?}"),
                        None,
                    ))
                }
            }
        }
        entries_of(&archive)
            .map_err(|e| failed("unpacking the engine's archive".into(), Some(e.into())))
    }

    pub(super) async fn output(&self, id: &str, for_whom: &str) -> Result<Output> {
        let opts = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .build();
        let mut stream = self.docker.logs(id, Some(opts));
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        loop {
            match tokio::time::timeout(CALL_TIMEOUT, stream.next()).await {
                Ok(None) => break,
                Ok(Some(Ok(LogOutput::StdErr { message }))) => stderr.extend_from_slice(&message),
                Ok(Some(Ok(
                    LogOutput::StdOut { message }
                    | LogOutput::Console { message }
                    | LogOutput::StdIn { message },
                ))) => stdout.extend_from_slice(&message),
                Ok(Some(Err(e))) => {
                    return Err(Error::engine(
                        format!("reading the output of runnable {for_whom}"),
                        e,
                    ))
                }
                Err(_) => {
                    return Err(Error::EngineTimeout {
                        action: format!("reading the output of runnable {for_whom}"),
                        after: CALL_TIMEOUT,
                    })
                }
            }
            if stdout.len() + stderr.len() > MAX_OUTPUT_BYTES {
                return Err(Error::Unexpected(format!(
                    "runnable {for_whom:?} printed more than {} MiB; read it with on_output instead",
                    MAX_OUTPUT_BYTES >> 20
                )));
            }
        }
        Ok(Output {
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        })
    }
}

impl DockerBackend {
    pub(in crate::engine::docker) async fn create_labelled_volume(
        &self,
        name: &str,
        labels: &HashMap<String, String>,
        for_whom: &str,
    ) -> Result<()> {
        within(
            || {
                format!(
                    "creating volume {name} on {} for runnable {for_whom}",
                    self.endpoint
                )
            },
            CALL_TIMEOUT,
            self.docker
                .create_volume(bollard::models::VolumeCreateRequest {
                    name: Some(name.to_string()),
                    labels: Some(labels.clone()),
                    ..Default::default()
                }),
        )
        .await
        .map(drop)
    }

    /// Writes `entries` into `volume` through a container that is created, never started,
    /// with the volume mounted at `path` (an archive upload lands in the volume). The
    /// container carries `labels` (the environment's), so a sweep finds it should this
    /// process die before it removes it.
    pub(in crate::engine::docker) async fn fill_volume(
        &self,
        image: &str,
        volume: &str,
        path: &str,
        entries: &[FileEntry],
        labels: &HashMap<String, String>,
        for_whom: &str,
    ) -> Result<()> {
        let name = format!("{volume}-fill");
        let body = ContainerCreateBody {
            image: Some(image.to_string()),
            // Never started; a command only makes images without one acceptable.
            entrypoint: Some(vec!["/e2ekit-never-started".to_string()]),
            labels: Some(labels.clone()),
            host_config: Some(HostConfig {
                binds: Some(vec![format!("{volume}:{path}")]),
                network_mode: Some("none".to_string()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let created = within(
            || {
                format!(
                    "preparing the shared directory of runnable {for_whom} on {}",
                    self.endpoint
                )
            },
            CALL_TIMEOUT,
            self.docker.create_container(
                Some(CreateContainerOptionsBuilder::default().name(&name).build()),
                body,
            ),
        )
        .await;
        let id = match created {
            Ok(c) => c.id,
            Err(e) if status_code(&e) == Some(409) => {
                let _ = self.remove(&name).await;
                return Err(Error::Unexpected(format!(
                    "a container {name} was in the way on {}; it was removed, start again ({})",
                    self.endpoint,
                    engine_message(&e)
                )));
            }
            Err(e) => return Err(e),
        };
        let copied = self.copy_in(&id, for_whom, entries).await;
        let removed = self.remove(&id).await;
        copied.and(removed)
    }
}

/// `/etc/a.yml` or `/etc/a.yml and 3 more`, for messages.
fn describe(entries: &[FileEntry]) -> String {
    match entries {
        [] => "nothing".to_string(),
        [one] => one.path.clone(),
        [first, rest @ ..] => format!("{} and {} more", first.path, rest.len()),
    }
}

/// A tar archive of `entries`, their absolute paths made relative to `/`.
fn tar_of(entries: &[FileEntry]) -> std::io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries {
        let path = entry.path.trim_start_matches('/');
        let mut header = tar::Header::new_gnu();
        header.set_mode(entry.mode);
        header.set_uid(u64::from(entry.uid));
        header.set_gid(u64::from(entry.gid));
        header.set_mtime(crate::host::labels::now_secs());
        match &entry.kind {
            EntryKind::File(data) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(data.len() as u64);
                builder.append_data(&mut header, path, data.as_slice())?;
            }
            EntryKind::Dir => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_size(0);
                builder.append_data(&mut header, path, std::io::empty())?;
            }
            EntryKind::Symlink(target) => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_size(0);
                builder.append_link(&mut header, path, target)?;
            }
        }
    }
    builder.into_inner()
}

/// The entries of a tar archive from the engine (paths as in the archive).
fn entries_of(archive: &[u8]) -> std::io::Result<Vec<FileEntry>> {
    let mut out = Vec::new();
    let mut reader = tar::Archive::new(archive);
    for entry in reader.entries()? {
        let mut entry = entry?;
        let header = entry.header().clone();
        let path = entry
            .path()?
            .to_string_lossy()
            .trim_end_matches('/')
            .to_string();
        let kind = match header.entry_type() {
            tar::EntryType::Directory => EntryKind::Dir,
            tar::EntryType::Symlink => EntryKind::Symlink(
                entry
                    .link_name()?
                    .map(|l| l.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            ),
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let mut data = Vec::new();
                entry.read_to_end(&mut data)?;
                EntryKind::File(data)
            }
            // Devices, fifos and hard links have no place in a test's copy.
            _ => continue,
        };
        out.push(FileEntry {
            path,
            kind,
            mode: header.mode()? & 0o7777,
            uid: header.uid()? as u32,
            gid: header.gid()? as u32,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_survive_a_round_trip_through_tar() {
        let entries = vec![
            FileEntry {
                path: "/etc/app".into(),
                kind: EntryKind::Dir,
                mode: 0o750,
                uid: 1000,
                gid: 1000,
            },
            FileEntry {
                path: "/etc/app/config.yml".into(),
                kind: EntryKind::File(b"port: 1\n".to_vec()),
                mode: 0o640,
                uid: 1000,
                gid: 100,
            },
            FileEntry {
                path: "/etc/app/link".into(),
                kind: EntryKind::Symlink("config.yml".into()),
                mode: 0o777,
                uid: 0,
                gid: 0,
            },
        ];
        let back = entries_of(&tar_of(&entries).expect("tar")).expect("untar");
        let relative: Vec<FileEntry> = entries
            .into_iter()
            .map(|mut e| {
                e.path = e.path.trim_start_matches('/').to_string();
                e
            })
            .collect();
        assert_eq!(back, relative);
    }
}
