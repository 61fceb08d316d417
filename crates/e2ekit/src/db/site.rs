//! How a catalog entry becomes a runnable: a pure definition ([`Spec`]) computed from where the
//! runnable will live ([`Site`]), then registered, its files written, and initialised.
//!
//! Keeping the definition pure is what lets unit tests pin every entry's command, ports,
//! environment, probe and files without an engine.

use std::path::{Path, PathBuf};

use crate::env::core::{container_name, runnable_dir};
use crate::env::Environment;
use crate::env::Runnable;
use crate::error::{Error, Result};
use crate::host::fs::set_mode;
use crate::spec::StartOptions;

/// Where a runnable will live, known before it is registered.
#[derive(Debug, Clone)]
pub(crate) struct Site {
    /// The environment's name.
    pub env: String,
    /// The runnable's name.
    pub name: String,
    /// Its directory: the same absolute path on the host and in every container.
    pub dir: PathBuf,
}

impl Site {
    pub(crate) fn of(env: &Environment, name: &str) -> Self {
        Self {
            env: env.name().to_string(),
            name: name.to_string(),
            dir: runnable_dir(env.shared_dir(), name),
        }
    }

    /// The container's name, which is also its DNS name on the environment's network.
    pub(crate) fn host(&self) -> String {
        container_name(&self.env, &self.name)
    }

    /// `<host>:<port>` as other runnables reach it.
    pub(crate) fn internal(&self, port: u16) -> String {
        format!("{}:{port}", self.host())
    }

    /// A path inside the runnable's directory, as text for flags.
    pub(crate) fn path(&self, rel: &str) -> String {
        self.dir.join(rel).display().to_string()
    }
}

/// Everything a catalog entry decides: ports, start options and files to write first.
#[derive(Debug, Clone)]
pub(crate) struct Spec {
    pub ports: Vec<(String, u16)>,
    pub options: StartOptions,
    /// Files written (relative to the runnable's directory) before the runnable is defined.
    pub files: Vec<(String, Vec<u8>)>,
    /// Empty directories created in the runnable's directory.
    pub dirs: Vec<String>,
    /// Files among `files` that only the test user may read (private keys): mode 0600. The
    /// services that read them run as the test user.
    pub secrets: Vec<String>,
}

impl Spec {
    pub(crate) fn new(options: StartOptions) -> Self {
        Self {
            ports: Vec::new(),
            options,
            files: Vec::new(),
            dirs: Vec::new(),
            secrets: Vec::new(),
        }
    }

    pub(crate) fn port(mut self, name: &str, port: u16) -> Self {
        self.ports.push((name.to_string(), port));
        self
    }

    pub(crate) fn file(mut self, rel: impl Into<String>, data: impl Into<Vec<u8>>) -> Self {
        self.files.push((rel.into(), data.into()));
        self
    }

    /// A file only the test user may read (a private key).
    pub(crate) fn secret_file(mut self, rel: impl Into<String>, data: impl Into<Vec<u8>>) -> Self {
        let rel = rel.into();
        self.secrets.push(rel.clone());
        self.file(rel, data)
    }

    pub(crate) fn dir(mut self, rel: impl Into<String>) -> Self {
        self.dirs.push(rel.into());
        self
    }

    /// The environment variables of the spec, for tests.
    #[cfg(test)]
    pub(crate) fn env_vars(&self) -> Vec<(&str, &str)> {
        self.options
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    /// The content of a file of the spec, for tests.
    #[cfg(test)]
    pub(crate) fn file_text(&self, rel: &str) -> Option<String> {
        self.files
            .iter()
            .find(|(p, _)| p == rel)
            .map(|(_, d)| String::from_utf8_lossy(d).into_owned())
    }
}

/// Registers `name`, writes the spec's files into its directory and defines the runnable.
pub(crate) fn deploy(
    env: &Environment,
    name: &str,
    build: impl FnOnce(&Site) -> Result<Spec>,
) -> Result<Runnable> {
    let site = Site::of(env, name);
    let spec = build(&site)?;
    let future = env.runnable(name).with_ports(spec.ports).future()?;
    debug_assert_eq!(future.dir(), site.dir.as_path());
    for rel in &spec.dirs {
        create_dir(name, &future.dir().join(rel))?;
    }
    for (rel, data) in &spec.files {
        let mode = if spec.secrets.contains(rel) {
            0o600
        } else {
            0o644
        };
        write_file(name, &future.dir().join(rel), data, mode)?;
    }
    future.init(spec.options)
}

fn create_dir(runnable: &str, path: &Path) -> Result<()> {
    std::fs::create_dir_all(path).map_err(|e| {
        Error::io(
            format!("creating {} for runnable {runnable:?}", path.display()),
            e,
        )
    })?;
    crate::host::fs::open_permissions(path);
    Ok(())
}

/// Writes a file with `mode` (0644: readable by whatever user the container runs as; 0600:
/// a secret only the test user, and services running as it, may read). The file is created
/// with that mode, so a secret is never readable by others, not even for a moment.
pub(crate) fn write_file(runnable: &str, path: &Path, data: &[u8], mode: u32) -> Result<()> {
    if let Some(parent) = path.parent() {
        create_dir(runnable, parent)?;
    }
    let mut open = std::fs::OpenOptions::new();
    open.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut open, mode);
    open.open(path)
        .and_then(|mut f| std::io::Write::write_all(&mut f, data))
        .map_err(|e| {
            Error::io(
                format!("writing {} for runnable {runnable:?}", path.display()),
                e,
            )
        })?;
    set_mode(path, mode);
    Ok(())
}

#[cfg(all(test, unix, feature = "tls"))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use crate::engine::fake::FakeEngine;

    #[tokio::test]
    async fn private_keys_are_written_owner_only_and_the_rest_readable() {
        let env = crate::env::tests::fake_env(&FakeEngine::new(), "fk-keys").await;
        let minio = crate::db::minio(&env, "minio-1", "bucket", crate::db::Options::new().tls())
            .expect("defined");
        let mode = |rel: &str| {
            std::fs::metadata(minio.dir().join(rel))
                .expect("written")
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode("certs/private.key"), 0o600);
        assert_eq!(mode("certs/public.crt"), 0o644);
        assert_eq!(mode("certs/CAs/ca.crt"), 0o644);
        env.close().await;
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! A fixed site for pinning definitions.
    use super::Site;

    pub(crate) fn site(name: &str) -> Site {
        Site {
            env: "e2e-test".to_string(),
            name: name.to_string(),
            dir: format!("/tmp/e2e-test/data/{name}").into(),
        }
    }
}
