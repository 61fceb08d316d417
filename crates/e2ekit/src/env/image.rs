//! Images and runnables from host binaries: [`HostImage::build`], [`containerize`] and
//! [`cargo_bin`].
//!
//! ```no_run
//! use e2ekit::prelude::*;
//!
//! # async fn demo(env: &Environment) -> e2ekit::Result<()> {
//! // In an integration test, cargo hands over the path of a binary of the package:
//! // env!("CARGO_BIN_EXE_demo-app").
//! let image = HostImage::new("e2ekit/busybox")
//!     .binary_at("/bin/busybox", "/bin/busybox")
//!     .symlink("/bin/sh", "/bin/busybox")
//!     .build(env)
//!     .await?;
//! let shell = env.runnable("shell").init(StartOptions::new(image)
//!     .command(Command::new("/bin/sh").args(["-c", "sleep 3600"])))?;
//!
//! // Or run a cargo-built binary directly:
//! let app = containerize(env, "app", "target/debug/demo-app").await?
//!     .with_ports([("http", 8080)])
//!     .args(["--listen", ":8080"])
//!     .readiness(HttpProbe::new("http", "/ready"))
//!     .init()?;
//! # Ok(()) }
//! ```

use std::path::{Path, PathBuf};

use super::runnable::{FutureRunnable, Runnable};
use super::Environment;
use crate::engine::{build_dockerfile_image, build_host_image};
use crate::error::{Error, Result};
use crate::host::{DockerfileImage, HostImage};
use crate::spec::{Command, Probe, StartOptions};

impl HostImage {
    /// Builds (or finds) the image on the environment's engine; returns its reference.
    /// Content-addressed: building unchanged inputs again only asks the engine whether the
    /// image exists.
    pub async fn build(&self, env: &Environment) -> Result<String> {
        build_host_image(env.core().backend.as_ref(), self).await
    }
}

impl DockerfileImage {
    /// Builds the image on the environment's engine (or finds it, when the context, the
    /// Dockerfile and the build arguments are unchanged); returns its reference. A missing
    /// context or Dockerfile fails before the engine is asked; a failed step fails with
    /// [`Error::DockerfileBuild`] (the step and the build's last output) and tags nothing.
    pub async fn build(&self, env: &Environment) -> Result<String> {
        build_dockerfile_image(env.core().backend.as_ref(), self).await
    }
}

/// A cargo-built binary made into a runnable; see [`containerize`].
#[derive(Debug)]
pub struct Containerized {
    env: Environment,
    name: String,
    program: String,
    image: String,
    ports: Vec<(String, u16)>,
    args: Vec<String>,
    env_vars: Vec<(String, String)>,
    readiness: Option<Probe>,
}

/// Packs a host binary (for tests: `env!("CARGO_BIN_EXE_<name>")`) into an image and prepares
/// a runnable named `name` that runs it.
pub async fn containerize(
    env: &Environment,
    name: &str,
    binary: impl AsRef<Path>,
) -> Result<Containerized> {
    let binary = binary.as_ref();
    let file = binary
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .ok_or_else(|| {
            Error::InvalidArgument(format!("{} is not a file path", binary.display()))
        })?;
    let repo = format!("e2ekit/{}", sanitize_repo(&file));
    let image = HostImage::new(repo).binary(binary).build(env).await?;
    Ok(Containerized {
        env: env.clone(),
        name: name.to_string(),
        program: format!("/bin/{file}"),
        image,
        ports: Vec::new(),
        args: Vec::new(),
        env_vars: Vec::new(),
        readiness: None,
    })
}

fn sanitize_repo(file: &str) -> String {
    file.chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

impl Containerized {
    /// Declares ports, as [`crate::RunnableBuilder::with_ports`].
    pub fn with_ports<I, S>(mut self, ports: I) -> Self
    where
        I: IntoIterator<Item = (S, u16)>,
        S: Into<String>,
    {
        self.ports
            .extend(ports.into_iter().map(|(n, p)| (n.into(), p)));
        self
    }

    /// Arguments for the binary.
    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, args: I) -> Self {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// An environment variable for the binary.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env_vars.push((key.into(), value.into()));
        self
    }

    /// The readiness probe.
    pub fn readiness(mut self, probe: impl Into<Probe>) -> Self {
        self.readiness = Some(probe.into());
        self
    }

    /// The image reference that was built.
    pub fn image(&self) -> &str {
        &self.image
    }

    /// The start options this will use (to adjust before [`FutureRunnable::init`]).
    pub fn start_options(&self) -> StartOptions {
        let mut opts = StartOptions::new(self.image.clone())
            .command(Command::new(self.program.clone()).args(self.args.clone()));
        for (k, v) in &self.env_vars {
            opts = opts.env(k.clone(), v.clone());
        }
        if let Some(p) = &self.readiness {
            opts = opts.readiness(p.clone());
        }
        opts
    }

    /// Registers the runnable without defining it yet (to link to it first).
    pub fn future(&self) -> Result<FutureRunnable> {
        self.env
            .runnable(self.name.clone())
            .with_ports(self.ports.clone())
            .future()
    }

    /// Defines the runnable.
    pub fn init(self) -> Result<Runnable> {
        let opts = self.start_options();
        self.future()?.init(opts)
    }
}

/// Path of a binary built by cargo from this workspace (e.g. `demo-app`), for packing into a
/// [`HostImage`].
///
/// Integration tests of the package owning the binary should prefer
/// `env!("CARGO_BIN_EXE_<name>")`. This helper serves the other cases (tests of another
/// package, examples): it looks next to the running executable (`cargo test --workspace` and
/// `cargo build` put every binary there) and otherwise runs `cargo build -p <name>` into
/// `target/e2ekit-bins` (a separate directory, because the outer cargo may hold the lock on
/// the main one).
pub fn cargo_bin(name: &str) -> Result<PathBuf> {
    let exe =
        std::env::current_exe().map_err(|e| Error::io("finding the running executable", e))?;
    let dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    for candidate in [dir.join(name), dir.join("..").join(name)] {
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    // <target>/<profile>/{deps,examples}/<exe> or <target>/<profile>/<exe>
    let profile_dir = if dir.ends_with("deps") || dir.ends_with("examples") {
        dir.parent().unwrap_or(&dir)
    } else {
        &dir
    };
    let target = profile_dir
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("target"));
    let bins_dir = target.join("e2ekit-bins");
    let cargo = option_env!("CARGO").unwrap_or("cargo");
    let status = std::process::Command::new(cargo)
        .args(["build", "--quiet", "-p", name, "--bin", name])
        .env("CARGO_TARGET_DIR", &bins_dir)
        .status()
        .map_err(|e| Error::io(format!("running {cargo} build -p {name}"), e))?;
    let built = bins_dir.join("debug").join(name);
    if !status.success() || !built.is_file() {
        return Err(Error::HostTool {
            tool: cargo.to_string(),
            reason: format!(
                "could not build binary {name:?}: `cargo build -p {name}` ended with {status}; build it first"
            ),
        });
    }
    Ok(built)
}
