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
use super::files::{check_container_path, CopyFile};
use super::output::{OutputConsumer, OutputLine};
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
    pub(crate) container: ContainerOptions,
    pub(crate) health_check: Option<HealthCheck>,
}

/// The less common container settings, kept apart so the common ones stay readable.
#[derive(Debug, Clone, Default)]
pub(crate) struct ContainerOptions {
    pub copies: Vec<CopyFile>,
    pub named_volumes: Vec<NamedVolume>,
    /// Container path → size limit in bytes (none: the engine's default).
    pub tmpfs: Vec<(String, Option<u64>)>,
    pub working_dir: Option<String>,
    pub read_only_rootfs: bool,
    pub shm_size: Option<i64>,
    pub ulimits: Vec<Ulimit>,
    /// Hostname → address (or the engine's `host-gateway`).
    pub extra_hosts: Vec<(String, String)>,
    pub platform: Option<String>,
    /// Port name → the fixed host port it is published at.
    pub host_ports: Vec<(String, u16)>,
    pub consumers: Vec<OutputConsumer>,
    /// `None`: as the environment says.
    pub print_output: Option<bool>,
}

/// A volume the environment creates (named `<env>-<name>`) and removes with itself; runnables
/// of one environment naming the same volume share it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NamedVolume {
    pub name: String,
    pub target: String,
    pub read_only: bool,
}

/// A resource limit of the container's processes (`setrlimit`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ulimit {
    pub name: String,
    pub soft: i64,
    pub hard: i64,
}

/// The limits `setrlimit` knows, by the names engines use.
const ULIMITS: &[&str] = &[
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
];

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
            container: ContainerOptions::default(),
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

    /// Copies a file or directory into the container after it is created and before it
    /// starts, so the process finds it from its first instruction. A host path is read at
    /// start; a missing one fails the start, naming the path.
    pub fn copy(mut self, file: CopyFile) -> Self {
        self.container.copies.push(file);
        self
    }

    /// Mounts the environment's volume `name` at `target`. The environment creates it on
    /// first use (as `<env>-<name>` on the engine) and removes it when it closes; runnables
    /// naming the same volume share its files, and a restarted runnable finds them again.
    pub fn named_volume(mut self, name: impl Into<String>, target: impl Into<String>) -> Self {
        self.container.named_volumes.push(NamedVolume {
            name: name.into(),
            target: target.into(),
            read_only: false,
        });
        self
    }

    /// Like [`StartOptions::named_volume`], mounted read-only.
    pub fn named_volume_ro(mut self, name: impl Into<String>, target: impl Into<String>) -> Self {
        self.container.named_volumes.push(NamedVolume {
            name: name.into(),
            target: target.into(),
            read_only: true,
        });
        self
    }

    /// Mounts an empty in-memory filesystem at `target` (gone with the container).
    pub fn tmpfs(mut self, target: impl Into<String>) -> Self {
        self.container.tmpfs.push((target.into(), None));
        self
    }

    /// Like [`StartOptions::tmpfs`], holding at most `bytes`.
    pub fn tmpfs_sized(mut self, target: impl Into<String>, bytes: u64) -> Self {
        self.container.tmpfs.push((target.into(), Some(bytes)));
        self
    }

    /// The directory the command runs in (absolute; created by the engine if missing).
    pub fn working_dir(mut self, dir: impl Into<String>) -> Self {
        self.container.working_dir = Some(dir.into());
        self
    }

    /// Makes the container's root filesystem read-only (mounts, tmpfs and volumes stay
    /// writable as mounted).
    pub fn read_only_rootfs(mut self, read_only: bool) -> Self {
        self.container.read_only_rootfs = read_only;
        self
    }

    /// The size of `/dev/shm` in bytes (engines default to 64 MiB; databases often want
    /// more). Must be positive.
    pub fn shm_size(mut self, bytes: i64) -> Self {
        self.container.shm_size = Some(bytes);
        self
    }

    /// Sets a resource limit of the container's processes, e.g. `ulimit("nofile", 1024,
    /// 4096)`. The name is one `setrlimit` knows (`nofile`, `nproc`, `memlock`, `core`, ...);
    /// `soft` must not exceed `hard`.
    pub fn ulimit(mut self, name: impl Into<String>, soft: i64, hard: i64) -> Self {
        self.container.ulimits.push(Ulimit {
            name: name.into(),
            soft,
            hard,
        });
        self
    }

    /// Adds a line to the container's `/etc/hosts`: `hostname` resolves to `address` (an IP
    /// address, or `host-gateway` for the engine's host).
    pub fn extra_host(mut self, hostname: impl Into<String>, address: impl Into<String>) -> Self {
        self.container
            .extra_hosts
            .push((hostname.into(), address.into()));
        self
    }

    /// The platform to run the image for (`os/arch[/variant]`, e.g. `linux/arm64`): the pull
    /// asks for it and the container runs it (emulated if the engine can).
    pub fn platform(mut self, platform: impl Into<String>) -> Self {
        self.container.platform = Some(platform.into());
        self
    }

    /// Publishes the declared port `port` at this fixed host port instead of one the engine
    /// picks. Only when a test really needs a known port: two runs at once then collide, and
    /// a port already taken fails the start with [`crate::Error::PortTaken`].
    pub fn host_port(mut self, port: impl Into<String>, host_port: u16) -> Self {
        self.container.host_ports.push((port.into(), host_port));
        self
    }

    /// Calls `consumer` with every line the container prints, as it prints it (also after a
    /// restart). It runs on e2ekit's output task: keep it short and never block in it.
    pub fn on_output(mut self, consumer: impl Fn(&OutputLine) + Send + Sync + 'static) -> Self {
        self.container
            .consumers
            .push(OutputConsumer(std::sync::Arc::new(consumer)));
        self
    }

    /// Whether the container's lines are printed to the test's output with a `name: `
    /// prefix (default: as the environment says, which is yes unless
    /// `EnvironmentBuilder::print_output(false)`).
    pub fn print_output(mut self, print: bool) -> Self {
        self.container.print_output = Some(print);
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
        self.container.check_definition()
    }
}

impl ContainerOptions {
    fn check_definition(&self) -> Result<(), String> {
        for copy in &self.copies {
            copy.check_definition()?;
        }
        for v in &self.named_volumes {
            let valid = !v.name.is_empty()
                && v.name.len() <= 64
                && v.name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
            if !valid {
                return Err(format!(
                    "volume name {:?} is not valid: use 1-64 letters, digits, '_', '.' or '-'",
                    v.name
                ));
            }
            check_container_path(&v.target, "volume target")?;
        }
        for (target, size) in &self.tmpfs {
            check_container_path(target, "tmpfs target")?;
            if *size == Some(0) {
                return Err(format!(
                    "tmpfs {target:?}: a size of 0 bytes would hold nothing"
                ));
            }
        }
        if let Some(dir) = &self.working_dir {
            check_container_path(dir, "working directory")?;
        }
        if let Some(bytes) = self.shm_size {
            if bytes <= 0 {
                return Err(format!(
                    "the /dev/shm size must be a positive number of bytes, got {bytes}"
                ));
            }
        }
        for u in &self.ulimits {
            if !ULIMITS.contains(&u.name.as_str()) {
                return Err(format!(
                    "ulimit {:?} is not a known limit; use one of {}",
                    u.name,
                    ULIMITS.join(", ")
                ));
            }
            if u.soft > u.hard && u.hard >= 0 {
                return Err(format!(
                    "ulimit {:?}: the soft limit {} is above the hard limit {}",
                    u.name, u.soft, u.hard
                ));
            }
        }
        for (host, address) in &self.extra_hosts {
            if host.is_empty() || host.contains([':', ' ', '\t', '\n', '\0']) {
                return Err(format!(
                    "extra host {host:?} is not a hostname (no spaces or ':')"
                ));
            }
            if address != "host-gateway" && address.parse::<std::net::IpAddr>().is_err() {
                return Err(format!(
                    "extra host {host:?}: {address:?} is neither an IP address nor \"host-gateway\""
                ));
            }
        }
        if let Some(p) = &self.platform {
            let parts: Vec<&str> = p.split('/').collect();
            if !(2..=3).contains(&parts.len()) || parts.iter().any(|s| s.is_empty()) {
                return Err(format!(
                    "platform {p:?} must be \"os/arch\" or \"os/arch/variant\", e.g. \"linux/arm64\""
                ));
            }
        }
        for (port, host_port) in &self.host_ports {
            if *host_port == 0 {
                return Err(format!(
                    "port {port:?}: host port 0 is not a fixed port; leave host_port out to let the engine pick one"
                ));
            }
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
