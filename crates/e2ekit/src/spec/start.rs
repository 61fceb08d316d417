//! What to run and how: [`StartOptions`] and [`Command`].
//!
//! ```
//! use e2ekit::prelude::*;
//! use std::time::Duration;
//!
//! let opts = StartOptions::new("e2ekit/demo-app:latest")
//!     .command(Command::new("/bin/demo-app").args(["--listen", ":8080"]))
//!     .env("RUST_LOG", "info")
//!     .user("1000:1000")
//!     .memory_bytes(256 << 20)
//!     .cpus(0.5)
//!     .readiness(HttpProbe::new("http", "/ready"))
//!     .wait_policy(WaitPolicy::timeout(Duration::from_secs(20)));
//! # let _ = opts;
//! ```

use super::command::Command;
use super::probe::{HealthCheck, Probe};
use super::reference::check_image_reference;
use crate::wait::WaitPolicy;

/// How to start a runnable's container.
#[derive(Debug, Clone)]
pub struct StartOptions {
    pub(crate) image: String,
    pub(crate) command: Option<Command>,
    pub(crate) entrypoint: Option<Vec<String>>,
    pub(crate) env: Vec<(String, String)>,
    pub(crate) user: Option<String>,
    pub(crate) readiness: Option<Probe>,
    pub(crate) wait_policy: WaitPolicy,
    pub(crate) volumes: Vec<String>,
    pub(crate) userns: Option<String>,
    pub(crate) privileged: bool,
    pub(crate) capabilities: Vec<String>,
    pub(crate) memory_bytes: Option<i64>,
    pub(crate) cpus: Option<f64>,
    pub(crate) health_check: Option<HealthCheck>,
}

impl StartOptions {
    /// Options for running `image` (pulled first when absent locally).
    pub fn new(image: impl Into<String>) -> Self {
        Self {
            image: image.into(),
            command: None,
            entrypoint: None,
            env: Vec::new(),
            user: None,
            readiness: None,
            wait_policy: WaitPolicy::default(),
            volumes: Vec::new(),
            userns: None,
            privileged: false,
            capabilities: Vec::new(),
            memory_bytes: None,
            cpus: None,
            health_check: None,
        }
    }

    /// The image reference.
    pub fn image(&self) -> &str {
        &self.image
    }

    /// The command to run (arguments to the image's entrypoint unless disabled on the command).
    pub fn command(mut self, command: impl Into<Command>) -> Self {
        self.command = Some(command.into());
        self
    }

    /// Replaces the image's entrypoint.
    pub fn entrypoint<I, S>(mut self, entrypoint: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.entrypoint = Some(entrypoint.into_iter().map(Into::into).collect());
        self
    }

    /// Adds an environment variable. The name must be non-empty and hold neither `=` nor
    /// NUL (the value may hold `=`); a bad one is refused when the runnable is defined.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Runs as this user (`uid`, `uid:gid` or a name known to the image).
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self
    }

    /// Runs as the user running the test, so files written to the shared dir stay removable.
    pub fn host_user(self) -> Self {
        match host_uid_gid() {
            Some((uid, gid)) => self.user(format!("{uid}:{gid}")),
            None => self,
        }
    }

    /// The probe that decides when the runnable is ready. Without one, ready means running.
    pub fn readiness(mut self, probe: impl Into<Probe>) -> Self {
        self.readiness = Some(probe.into());
        self
    }

    /// How long and how often to probe readiness.
    pub fn wait_policy(mut self, policy: WaitPolicy) -> Self {
        self.wait_policy = policy;
        self
    }

    /// Adds a bind mount `host:container[:ro]`. Both paths must be absolute and the host path
    /// must exist when the runnable is defined (an engine would create a missing one as an
    /// empty root-owned directory and leave it behind).
    pub fn volume(mut self, spec: impl Into<String>) -> Self {
        self.volumes.push(spec.into());
        self
    }

    /// User namespace mode (e.g. `host`).
    pub fn userns(mut self, mode: impl Into<String>) -> Self {
        self.userns = Some(mode.into());
        self
    }

    /// Runs the container privileged.
    pub fn privileged(mut self, privileged: bool) -> Self {
        self.privileged = privileged;
        self
    }

    /// Adds a Linux capability (e.g. `NET_ADMIN`).
    pub fn capability(mut self, cap: impl Into<String>) -> Self {
        self.capabilities.push(cap.into());
        self
    }

    /// Memory limit in bytes; must be positive (checked when the runnable is defined).
    pub fn memory_bytes(mut self, bytes: i64) -> Self {
        self.memory_bytes = Some(bytes);
        self
    }

    /// CPU limit in cores (overrides the environment's limit); must be finite and at least
    /// one billionth of a core (checked when the runnable is defined).
    pub fn cpus(mut self, cpus: f64) -> Self {
        self.cpus = Some(cpus);
        self
    }

    /// What is wrong with these options whatever the engine, if anything: the image
    /// reference's syntax, the limits, environment variable names and the readiness probe.
    /// (Volumes are parsed and their host paths checked by the environment.)
    pub(crate) fn check_definition(&self) -> Result<(), String> {
        check_image_reference(&self.image)?;
        if let Some(cpus) = self.cpus {
            check_cpus(cpus)?;
        }
        if let Some(bytes) = self.memory_bytes {
            if bytes <= 0 {
                return Err(format!(
                    "the memory limit must be a positive number of bytes (e.g. 256 << 20 for 256 MiB), got {bytes}"
                ));
            }
        }
        // Values are left out of messages: they may be secrets.
        for (key, value) in &self.env {
            if key.is_empty() || key.contains(['=', '\0']) {
                return Err(format!(
                    "environment variable name {key:?} is not valid: a name must be non-empty and hold neither '=' nor NUL (a value may hold '=')"
                ));
            }
            if value.contains('\0') {
                return Err(format!(
                    "the value of environment variable {key:?} holds a NUL character, which no process environment can carry"
                ));
            }
        }
        if let Some(probe) = &self.readiness {
            probe.check_definition()?;
        }
        if let Some(check) = &self.health_check {
            check.check_definition()?;
        }
        Ok(())
    }
}

impl StartOptions {
    /// The health check the engine runs in the container, replacing the image's
    /// `HEALTHCHECK` (or giving one to an image without), for [`crate::HealthProbe`].
    pub fn health_check(mut self, check: HealthCheck) -> Self {
        self.health_check = Some(check);
        self
    }
}

/// Whether `cores` is a usable CPU limit: finite and at least one billionth of a core (the
/// engine counts nano-CPUs; less would round to zero, which means no limit at all).
pub(crate) fn check_cpus(cores: f64) -> Result<(), String> {
    if cores.is_finite() && cores * 1e9 >= 1.0 {
        Ok(())
    } else {
        Err(format!(
            "CPU limit must be a positive number of cores, finite and at least 0.000000001 (less rounds to no limit at all), e.g. 0.5 or 2; got {cores}"
        ))
    }
}

fn host_uid_gid() -> Option<(u32, u32)> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        // The owner of our own process directory is our effective user; no libc call needed.
        let meta = std::fs::metadata("/proc/self").ok()?;
        Some((meta.uid(), meta.gid()))
    }
    #[cfg(not(unix))]
    {
        None
    }
}
