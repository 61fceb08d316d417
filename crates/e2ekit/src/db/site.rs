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
}

impl Spec {
    pub(crate) fn new(options: StartOptions) -> Self {
        Self {
            ports: Vec::new(),
            options,
            files: Vec::new(),
            dirs: Vec::new(),
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
        write_file(name, &future.dir().join(rel), data)?;
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

/// Writes a file readable by whatever user the container runs as.
pub(crate) fn write_file(runnable: &str, path: &Path, data: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent() {
        create_dir(runnable, parent)?;
    }
    std::fs::write(path, data).map_err(|e| {
        Error::io(
            format!("writing {} for runnable {runnable:?}", path.display()),
            e,
        )
    })?;
    set_mode(path, 0o644);
    Ok(())
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
