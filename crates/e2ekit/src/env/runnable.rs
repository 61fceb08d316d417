//! Runnables: a service in its own container, from definition to teardown.
//!
//! A runnable goes builder → future (linkable: its internal endpoint and directory are known
//! before anything starts) → runnable (started, probed, stopped, broken on purpose).
//!
//! ```no_run
//! use e2ekit::prelude::*;
//!
//! # async fn demo(env: &Environment) -> e2ekit::Result<()> {
//! let future = env.runnable("peer").with_ports([("http", 9090)]).future()?;
//! let peer_addr = future.internal_endpoint("http")?; // "<env>-peer:9090", before start
//! let peer = future.init(StartOptions::new("e2ekit/demo-app:latest")
//!     .command(Command::new("/bin/demo-app").args(["--listen", ":9090"]))
//!     .readiness(HttpProbe::new("http", "/ready")))?;
//! peer.start().await?;
//! peer.wait_ready().await?;
//! println!("{peer_addr} is reachable from the host at {}", peer.endpoint("http")?);
//! let out = peer.exec(Command::new("cat").arg("/etc/hostname")).await?;
//! assert_eq!(out.stdout.trim(), "peer");
//! peer.stop().await?;
//! # Ok(()) }
//! ```

use std::any::{Any, TypeId};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::{watch, Notify};

use super::core::{container_name, runnable_dir, EnvCore};
use super::output::{spawn_log_pump, OutputSinks, RecentLines};
use super::ready::{check_health_defined, PortTarget, ProbeFailure, ProbeTarget};
use crate::engine::{
    Backend, ContainerSpec, ExecOutput, ExecRequest, ExitStatus, FileEntry, Mount, VolumeMount,
};
use crate::error::{Error, LogTail, Result};
use crate::host::fs::{lock, open_permissions};
use crate::spec::{Command, Probe, StartOptions};
use crate::wait::Poll;

/// How many lines of container output errors carry.
pub(crate) const LOG_TAIL_LINES: usize = 20;
/// Grace period of [`Runnable::stop`] before the engine kills the process.
const STOP_GRACE: Duration = Duration::from_secs(30);
/// How often a lost engine is asked whether it is back.
const ENGINE_RETRY: Duration = Duration::from_secs(1);
/// Longest single probe attempt.
const MAX_ATTEMPT: Duration = Duration::from_secs(2);

/// Extra settings for [`Runnable::exec_with`].
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    stdin: Option<Vec<u8>>,
    user: Option<String>,
}

impl ExecOptions {
    /// Default options: no stdin, the container's user.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes fed to the command's stdin (then closed).
    pub fn stdin(mut self, data: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(data.into());
        self
    }

    /// Runs the command as this user.
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self
    }
}

/// First step of defining a runnable; see [`crate::Environment::runnable`].
#[derive(Debug)]
pub struct RunnableBuilder {
    core: Arc<EnvCore>,
    name: String,
    ports: Vec<(String, u16)>,
}

impl RunnableBuilder {
    pub(crate) fn new(core: Arc<EnvCore>, name: String) -> Self {
        Self {
            core,
            name,
            ports: Vec::new(),
        }
    }

    /// Names the container ports the runnable listens on (`[("http", 8080)]`). Each is
    /// published on 127.0.0.1 at a free host port. Ports are 1-65535 (0 is refused when the
    /// runnable is defined). Giving a name again replaces its port; two names may share one
    /// container port (an alias, e.g. `http` and `metrics` served by one listener), and both
    /// resolve to the same addresses.
    pub fn with_ports<I, S>(mut self, ports: I) -> Self
    where
        I: IntoIterator<Item = (S, u16)>,
        S: Into<String>,
    {
        for (name, port) in ports {
            let name = name.into();
            self.ports.retain(|(n, _)| *n != name);
            self.ports.push((name, port));
        }
        self
    }

    /// Registers the name and returns a runnable that can be linked to before it is defined.
    /// A port 0 is refused first, so a refused definition takes no name and makes no directory.
    pub fn future(self) -> Result<FutureRunnable> {
        check_ports(&self.name, &self.ports)?;
        self.core.register(&self.name)?;
        let dir = runnable_dir(&self.core.shared_dir, &self.name);
        std::fs::create_dir_all(&dir).map_err(|e| {
            Error::io(
                format!("creating the directory of runnable {:?}", self.name),
                e,
            )
        })?;
        open_permissions(&dir);
        Ok(FutureRunnable {
            core: self.core,
            name: self.name,
            ports: self.ports,
            dir,
        })
    }

    /// Registers the name and defines the runnable in one step. The options are checked
    /// (see [`FutureRunnable::init`]) before the name is registered, so a refused definition
    /// leaves nothing behind and the name stays free.
    pub fn init(self, options: StartOptions) -> Result<Runnable> {
        check_ports(&self.name, &self.ports)?;
        let mounts = check_options(&self.name, &self.ports, &options)?;
        self.future()?.define(options, mounts)
    }
}

/// A registered runnable whose start options are not given yet.
#[derive(Debug)]
pub struct FutureRunnable {
    core: Arc<EnvCore>,
    name: String,
    ports: Vec<(String, u16)>,
    dir: PathBuf,
}

impl FutureRunnable {
    /// The runnable's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its directory: the same absolute path on the host and inside every container.
    ///
    /// On a local engine the environment's shared directory is mounted, so both sides see
    /// each other's writes at once. On an engine that cannot see this host's files (a remote
    /// one), nothing of this host is mounted: the shared directory as it is at start is
    /// copied into the container, what the container writes stays there until
    /// [`Runnable::copy_from`] brings it back, and later changes go in with
    /// [`Runnable::copy_to`] (the catalog's Prometheus does this for its configuration).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `<container-name>:<port>`, reachable from other runnables of the environment.
    pub fn internal_endpoint(&self, port: &str) -> Result<String> {
        internal_endpoint(&self.core, &self.name, &self.ports, port)
    }

    /// Gives the start options, checked before anything reaches the engine: the image
    /// reference's syntax; CPU (finite, at least 1e-9 cores) and memory (positive) limits;
    /// environment variable names (non-empty, no `=` or NUL); the readiness probe (declared
    /// ports, HTTP paths starting with `/`, a non-empty status range, a command to run); and
    /// volumes (`/host:/container[:ro]`, absolute paths, the host path existing). A refused
    /// definition is an [`Error::InvalidArgument`] (or [`Error::UnknownPort`]) naming the
    /// runnable; the future is consumed and its name stays registered.
    pub fn init(self, options: StartOptions) -> Result<Runnable> {
        let mounts = check_options(&self.name, &self.ports, &options)?;
        self.define(options, mounts)
    }

    /// The runnable, from options already checked by [`check_options`].
    fn define(self, options: StartOptions, mounts: Vec<Mount>) -> Result<Runnable> {
        Ok(Runnable {
            inner: Arc::new(RunnableInner {
                container_name: container_name(&self.core.name, &self.name),
                mounts,
                core: self.core,
                name: self.name,
                ports: self.ports,
                dir: self.dir,
                options,
                state: Mutex::new(None),
                metadata: Mutex::new(BTreeMap::new()),
                markers: Mutex::new(Markers::default()),
                op: tokio::sync::Mutex::new(()),
            }),
        })
    }
}

/// Refuses port 0: engines either reject it or publish something nobody listens on.
fn check_ports(runnable: &str, ports: &[(String, u16)]) -> Result<()> {
    match ports.iter().find(|(_, p)| *p == 0) {
        Some((name, _)) => Err(Error::InvalidArgument(format!(
            "runnable {runnable:?}: port {name:?} is 0; container ports are 1-65535 (the host port it is published at is picked by the engine)"
        ))),
        None => Ok(()),
    }
}

/// Checks start options at definition time (see [`FutureRunnable::init`]); returns the
/// parsed volumes.
fn check_options(
    runnable: &str,
    ports: &[(String, u16)],
    options: &StartOptions,
) -> Result<Vec<Mount>> {
    let invalid =
        |problem: String| Error::InvalidArgument(format!("runnable {runnable:?}: {problem}"));
    options.check_definition().map_err(invalid)?;
    if let Some(probe) = &options.readiness {
        for port in probe.port_names() {
            port_of(runnable, ports, port)?;
        }
    }
    for (port, _) in &options.container.host_ports {
        port_of(runnable, ports, port)?;
    }
    options
        .volumes
        .iter()
        .map(|v| bind_mount(v).map_err(invalid))
        .collect()
}

/// Parses a bind mount (`/host:/container[:ro]`) and checks that its host path exists: an
/// engine would create a missing one as an empty root-owned directory (even where a file was
/// meant) and leave it behind. A path that cannot be looked at from here (permissions) is left
/// to the engine.
pub(crate) fn bind_mount(spec: &str) -> std::result::Result<Mount, String> {
    let mount = Mount::parse(spec)?;
    match mount.host.try_exists() {
        Ok(false) => Err(format!(
            "volume {spec:?}: the host path {} does not exist; create it first (the engine would create it as an empty directory owned by root and leave it behind)",
            mount.host.display()
        )),
        Ok(true) | Err(_) => Ok(mount),
    }
}

fn port_of(runnable: &str, ports: &[(String, u16)], port: &str) -> Result<u16> {
    ports
        .iter()
        .find(|(n, _)| n == port)
        .map(|(_, p)| *p)
        .ok_or_else(|| Error::UnknownPort {
            runnable: runnable.to_string(),
            port: port.to_string(),
            known: ports.iter().map(|(n, _)| n.clone()).collect(),
        })
}

fn internal_endpoint(
    core: &EnvCore,
    name: &str,
    ports: &[(String, u16)],
    port: &str,
) -> Result<String> {
    let p = port_of(name, ports, port)?;
    Ok(format!("{}:{p}", container_name(&core.name, name)))
}

/// Typed markers by type.
#[derive(Default)]
struct Markers(HashMap<TypeId, Box<dyn Any + Send + Sync>>);

/// How watching a container ended.
#[derive(Debug, Clone)]
pub(crate) enum Ended {
    /// It exited (or was removed behind our back: code -1).
    Exited(ExitStatus),
    /// The engine failed while we waited for the exit: what became of the container is
    /// unknown.
    EngineLost(Arc<Error>),
}

/// A started (or startable) container; cloned out of the lock by waits.
#[derive(Clone)]
pub(super) struct Running {
    pub(super) id: String,
    direct_ip: Option<IpAddr>,
    published: BTreeMap<u16, SocketAddr>,
    pub(super) exit: watch::Receiver<Option<Ended>>,
    probe: Option<Probe>,
    log_lines: Arc<Notify>,
    /// The container's last lines as the log pump saw them, for errors when the engine
    /// cannot be asked any more.
    recent: Arc<RecentLines>,
    /// A stop or kill of this container is under way: its exit is expected, not a crash.
    halting: bool,
}

pub(crate) struct RunnableInner {
    pub(super) core: Arc<EnvCore>,
    pub(super) name: String,
    container_name: String,
    ports: Vec<(String, u16)>,
    dir: PathBuf,
    pub(super) options: StartOptions,
    mounts: Vec<Mount>,
    pub(super) state: Mutex<Option<Running>>,
    metadata: Mutex<BTreeMap<String, String>>,
    /// Typed values other layers attach (an instrumented runnable's scrape endpoint, ...),
    /// keyed by their type, which is private to the layer that defines it: users cannot
    /// overwrite them by accident the way a string key could be.
    markers: Mutex<Markers>,
    /// Serialises start/stop/kill of one runnable.
    op: tokio::sync::Mutex<()>,
}

/// A service in its own container. Cheap to clone; clones control the same container.
#[derive(Clone)]
pub struct Runnable {
    inner: Arc<RunnableInner>,
}

impl fmt::Debug for Runnable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runnable")
            .field("name", &self.inner.name)
            .field("env", &self.inner.core.name)
            .field("image", &self.inner.options.image)
            .field("ports", &self.inner.ports)
            .field("running", &self.is_running())
            .finish()
    }
}

impl Runnable {
    pub(crate) fn from_inner(inner: Arc<RunnableInner>) -> Self {
        Self { inner }
    }

    /// A handle that does not keep the runnable (and its environment) alive: for listeners
    /// the environment itself holds.
    pub(crate) fn downgrade(&self) -> Weak<RunnableInner> {
        Arc::downgrade(&self.inner)
    }

    pub(super) fn inner_state(&self) -> &Mutex<Option<Running>> {
        &self.inner.state
    }

    pub(super) fn inner_core(&self) -> &Arc<EnvCore> {
        &self.inner.core
    }

    /// The runnable's name (its hostname inside the container).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The container's name on the engine (`<env>-<name>`; on a Docker Swarm, the name of the
    /// runnable's service, whose task container the swarm names itself).
    pub fn container_name(&self) -> &str {
        &self.inner.container_name
    }

    /// Its directory: the same absolute path on the host and inside every container.
    ///
    /// On a local engine the environment's shared directory is mounted, so both sides see
    /// each other's writes at once. On an engine that cannot see this host's files (a remote
    /// one), nothing of this host is mounted: the shared directory as it is at start is
    /// copied into the container, what the container writes stays there until
    /// [`Runnable::copy_from`] brings it back, and later changes go in with
    /// [`Runnable::copy_to`] (the catalog's Prometheus does this for its configuration).
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The declared ports, by name.
    pub fn ports(&self) -> &[(String, u16)] {
        &self.inner.ports
    }

    /// The container port declared under `name`; [`Error::UnknownPort`] naming the declared
    /// ones otherwise.
    pub fn port(&self, name: &str) -> Result<u16> {
        port_of(&self.inner.name, &self.inner.ports, name)
    }

    /// The start options.
    pub fn options(&self) -> &StartOptions {
        &self.inner.options
    }

    /// Whether its container is running now (a crash is noticed as it happens).
    pub fn is_running(&self) -> bool {
        lock(&self.inner.state)
            .as_ref()
            .is_some_and(|r| r.exit.borrow().is_none())
    }

    /// `<container-name>:<port>`, reachable from other runnables of the environment.
    pub fn internal_endpoint(&self, port: &str) -> Result<String> {
        internal_endpoint(&self.inner.core, &self.inner.name, &self.inner.ports, port)
    }

    /// `<host>:<port>` where the test process reaches the named port: `127.0.0.1:<mapped>`
    /// on a local engine, the engine's host on a remote one. Errors when not running.
    pub fn endpoint(&self, port: &str) -> Result<String> {
        let container_port = port_of(&self.inner.name, &self.inner.ports, port)?;
        let state = lock(&self.inner.state);
        let running = state
            .as_ref()
            .filter(|r| r.exit.borrow().is_none())
            .ok_or_else(|| self.not_running(&format!("get the endpoint of port {port:?} of")))?;
        let published = running.published.get(&container_port).ok_or_else(|| {
            Error::Unexpected(format!(
                "the engine published no host port for port {port:?} ({container_port}) of runnable {:?}",
                self.inner.name
            ))
        })?;
        Ok(published.to_string())
    }

    /// The container's address on the environment network, when running and when the test
    /// process can route to it (a local Linux engine).
    pub fn container_ip(&self) -> Option<IpAddr> {
        lock(&self.inner.state).as_ref().and_then(|r| r.direct_ip)
    }

    /// Attaches a typed marker (shared by all clones), replacing one of the same type.
    pub(crate) fn set_marker<T: Any + Clone + Send + Sync>(&self, value: T) {
        lock(&self.inner.markers)
            .0
            .insert(TypeId::of::<T>(), Box::new(value));
    }

    /// The marker of type `T`, if one was attached.
    pub(crate) fn marker<T: Any + Clone + Send + Sync>(&self) -> Option<T> {
        lock(&self.inner.markers)
            .0
            .get(&TypeId::of::<T>())
            .and_then(|v| v.downcast_ref::<T>())
            .cloned()
    }

    /// Attaches a key/value to the runnable (shared by all clones), for your own bookkeeping;
    /// e2ekit itself does not read it.
    pub fn set_metadata(&self, key: impl Into<String>, value: impl Into<String>) {
        lock(&self.inner.metadata).insert(key.into(), value.into());
    }

    /// A metadata value.
    pub fn metadata(&self, key: &str) -> Option<String> {
        lock(&self.inner.metadata).get(key).cloned()
    }

    /// The engine's id of the current container, while there is one: from the start, and
    /// after an exit of its own until the next start (a stop or kill removes the container).
    pub fn container_id(&self) -> Option<String> {
        lock(&self.inner.state).as_ref().map(|r| r.id.clone())
    }

    /// Sends a signal (`HUP`, `USR1`, `TERM`, ...) to the container's main process.
    pub async fn signal(&self, signal: &str) -> Result<()> {
        let id = self.running_id(&format!("send {signal} to"))?;
        self.backend().signal(&id, signal).await
    }

    /// The container's last output lines (empty when there is no container).
    pub(crate) async fn log_tail(&self) -> LogTail {
        match self.container_id() {
            Some(id) => self.tail_of(&id).await,
            None => LogTail::default(),
        }
    }

    /// The last output lines of container `id`, bounded for an error: the engine keeps only
    /// the start of each line while reading, [`LogTail::bounded`] the newest lines.
    async fn tail_of(&self, id: &str) -> LogTail {
        let lines = self
            .backend()
            .log_tail(id, LOG_TAIL_LINES, LogTail::LINE_BYTES)
            .await;
        LogTail::bounded(lines.into_iter().map(|l| (l.text, l.cut)))
    }

    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.inner.core.http
    }

    pub(super) fn not_running(&self, action: &str) -> Error {
        Error::NotRunning {
            runnable: self.inner.name.clone(),
            action: action.to_string(),
        }
    }

    pub(super) fn backend(&self) -> &dyn Backend {
        self.inner.core.backend.as_ref()
    }

    /// The container to create, with `files` copied in before it starts.
    fn spec(&self, files: Vec<FileEntry>) -> Result<ContainerSpec> {
        let core = &self.inner.core;
        let opts = &self.inner.options;
        let (entrypoint, cmd) = match &opts.command {
            Some(c) if c.entrypoint_disabled => {
                (Some(vec![c.program.clone()]), Some(c.args.clone()))
            }
            Some(c) => (opts.entrypoint.clone(), Some(c.to_vec())),
            None => (opts.entrypoint.clone(), None),
        };
        let mut mounts = Vec::new();
        if self.backend().sees_host_files() {
            mounts.push(Mount::same_path(&core.shared_dir));
            mounts.extend(core.volumes.iter().cloned());
            mounts.extend(self.inner.mounts.iter().cloned());
        } else if let Some(m) = self.inner.mounts.first() {
            // Environment-wide volumes were refused when the environment was built.
            return Err(Error::InvalidArgument(format!(
                "runnable {:?}: volume {}:{} is a path on this host, which the engine runs elsewhere and cannot see; copy it in with StartOptions::copy instead",
                self.inner.name,
                m.host.display(),
                m.container
            )));
        }
        let container = &opts.container;
        let mut host_ports = BTreeMap::new();
        for (port, host_port) in &container.host_ports {
            host_ports.insert(self.port(port)?, *host_port);
        }
        Ok(ContainerSpec {
            name: self.inner.container_name.clone(),
            hostname: self.inner.name.clone(),
            aliases: vec![self.inner.name.clone()],
            image: opts.image.clone(),
            entrypoint,
            cmd,
            env: opts.env.clone(),
            user: opts.user.clone(),
            labels: core.container_labels(&self.inner.name),
            ports: self.inner.ports.iter().map(|(_, p)| *p).collect(),
            mounts,
            userns: opts.userns.clone(),
            privileged: opts.privileged,
            capabilities: opts.capabilities.clone(),
            memory_bytes: opts.memory_bytes,
            nano_cpus: opts.cpus.or(core.cpus).map(|c| (c * 1e9) as i64),
            network: Some(core.network.name.clone()),
            files,
            shared_dir: None,
            volumes: container
                .named_volumes
                .iter()
                .map(|v| VolumeMount {
                    name: format!("{}-{}", core.name, v.name),
                    target: v.target.clone(),
                    read_only: v.read_only,
                })
                .collect(),
            tmpfs: container.tmpfs.clone(),
            working_dir: container.working_dir.clone(),
            read_only_rootfs: container.read_only_rootfs,
            shm_size: container.shm_size,
            ulimits: container.ulimits.clone(),
            extra_hosts: container.extra_hosts.clone(),
            platform: container.platform.clone(),
            host_ports,
            health_check: opts.health_check.clone(),
        })
    }

    /// Creates and starts the container (pulling the image first if it is missing). Returns
    /// once the engine reports it running; fails at once, with its exit code and output, if
    /// it exits during start. Starting a running runnable does nothing.
    pub async fn start(&self) -> Result<()> {
        let _op = self.inner.op.lock().await;
        let core = &self.inner.core;
        core.ensure_open()?;
        if self.is_running() {
            return Ok(());
        }
        let old = lock(&self.inner.state).take();
        if let Some(old) = old {
            self.backend().remove(&old.id).await?;
        }
        let name = &self.inner.name;
        core.trace(|| format!("starting {name} from {}", self.inner.options.image));
        // The pull happens here, before any readiness deadline starts counting.
        self.backend()
            .ensure_image(&self.inner.options.image, name)
            .await?;
        check_health_defined(self.backend(), name, &self.inner.options).await?;
        // From here the engine creates resources: a close waits for this work to end.
        // Read before any engine work: a missing source fails the start with nothing made.
        let (shared_dir, files) = self.files_at_start()?;
        let mut spec = self.spec(files)?;
        spec.shared_dir = shared_dir;
        let _work = core.begin_work().await?;
        let started = self
            .backend()
            .create_and_start(&spec, name)
            .await
            .map_err(|e| self.name_taken_port(e))?;
        if core.is_closed() {
            // The environment closed while the engine created this container. Normally the
            // close waited and removes it with the rest; if it stopped waiting, undo the start
            // here rather than leak it.
            if core.undo_needed() {
                let _ = self.backend().remove(&started.id).await;
            }
            return Err(Error::EnvironmentClosed {
                env: core.name.clone(),
            });
        }

        let probe = self.inner.options.readiness.as_ref().map(Probe::fresh);
        let log_probes = probe.as_ref().map(Probe::log_probes).unwrap_or_default();
        let log_lines = Arc::new(Notify::new());
        let recent = Arc::new(RecentLines::new(LOG_TAIL_LINES));
        let (exit_tx, exit_rx) = watch::channel(started.exited.map(Ended::Exited));
        spawn_log_pump(
            core.background.clone(),
            &started.id,
            name.clone(),
            OutputSinks {
                print: self
                    .inner
                    .options
                    .container
                    .print_output
                    .unwrap_or_else(|| {
                        core.print_output.load(std::sync::atomic::Ordering::Relaxed)
                    }),
                consumers: self.inner.options.container.consumers.clone(),
                log_probes,
                log_lines: log_lines.clone(),
                recent: recent.clone(),
            },
        );
        if started.exited.is_none() {
            let backend = core.background.clone();
            let id = started.id.clone();
            let weak = Arc::downgrade(&self.inner);
            // On e2ekit's runtime: a crash is noticed even after the runtime that started
            // the runnable is gone (an environment shared between tests).
            crate::runtime::spawn(async move {
                loop {
                    let ended = match backend.wait_exit(&id).await {
                        Ok(status) => Ended::Exited(status),
                        Err(e) => Ended::EngineLost(Arc::new(e)),
                    };
                    let lost = matches!(ended, Ended::EngineLost(_));
                    let _ = exit_tx.send(Some(ended));
                    // Stops and kills notify listeners themselves; only an exit nobody asked
                    // for (a crash) is news here.
                    let Some(inner) = weak.upgrade() else { return };
                    let unexpected = lock(&inner.state)
                        .as_ref()
                        .is_some_and(|r| r.id == id && !r.halting);
                    if unexpected && !inner.core.is_closed() {
                        inner.core.notify();
                    }
                    drop(inner);
                    if !lost || !engine_came_back(backend.as_ref(), &weak, &id).await {
                        return;
                    }
                    // A frozen or restarted engine answers again: the container may still
                    // run, so it counts as running until the next wait says otherwise.
                    let _ = exit_tx.send(None);
                }
            });
        }
        *lock(&self.inner.state) = Some(Running {
            id: started.id.clone(),
            direct_ip: started.direct_ip,
            published: started.published.clone(),
            exit: exit_rx,
            probe,
            log_lines,
            recent,
            halting: false,
        });
        if let Some(status) = started.exited {
            return Err(self.exited(&started.id, status, "starting").await);
        }
        let mut how = format!("{name} (container {})", self.inner.container_name);
        for (port_name, port) in &self.inner.ports {
            if let Some(published) = started.published.get(port) {
                how.push_str(&format!(" {port_name}={published}"));
            }
        }
        core.set_reachable(name, Some(how));
        core.started(&self.inner);
        Ok(())
    }

    async fn exited(&self, id: &str, status: ExitStatus, during: &str) -> Error {
        if self.inner.core.is_closed() {
            // Not a crash: the environment closed under the wait and removed the container.
            return Error::EnvironmentClosed {
                env: self.inner.core.name.clone(),
            };
        }
        Error::ContainerExited {
            runnable: self.inner.name.clone(),
            exit_code: status.code,
            during: during.to_string(),
            logs: self.tail_of(id).await,
            oom_killed: status.oom_killed,
            memory_limit: self.inner.options.memory_bytes,
        }
    }

    /// The error for a watch of `snap`'s container that ended while e2ekit was `during`.
    async fn ended(&self, snap: &Running, ended: Ended, during: &str) -> Error {
        match ended {
            Ended::Exited(status) => self.exited(&snap.id, status, during).await,
            // Asking a failed engine for the output would only wait for another failure.
            Ended::EngineLost(cause) => Error::EngineLost {
                runnable: self.inner.name.clone(),
                during: during.to_string(),
                logs: snap.recent.tail(),
                source: Box::new(cause),
            },
        }
    }

    fn snapshot(&self, action: &str) -> Result<Running> {
        let state = lock(&self.inner.state);
        state.clone().ok_or_else(|| self.not_running(action))
    }

    /// Waits until the readiness probe passes (or, without a probe, until running). Fails at
    /// once if the container exits, and after the wait policy's deadline otherwise; both errors
    /// carry the container's last output.
    pub async fn wait_ready(&self) -> Result<()> {
        let mut snap = self.snapshot("wait for readiness of")?;
        let exit_now = snap.exit.borrow().clone();
        if let Some(ended) = exit_now {
            return Err(self.ended(&snap, ended, "waiting for readiness").await);
        }
        let Some(probe) = snap.probe.clone() else {
            return Ok(());
        };
        let policy = self.inner.options.wait_policy;
        let policy = policy.min_interval(policy.min_interval.max(probe.min_interval()));
        let ports: BTreeMap<String, PortTarget> = self
            .inner
            .ports
            .iter()
            .map(|(n, p)| {
                let target = PortTarget {
                    container_port: *p,
                    published: snap.published.get(p).copied(),
                };
                (n.clone(), target)
            })
            .collect();
        let mut poll = Poll::new(policy);
        loop {
            poll.attempt();
            let remaining = poll.remaining();
            let target = ProbeTarget {
                runnable: &self.inner.name,
                container_name: &self.inner.container_name,
                backend: self.backend(),
                http: &self.inner.core.http,
                container_id: &snap.id,
                direct_ip: snap.direct_ip,
                ports: &ports,
                user: self.inner.options.user.as_deref(),
                attempt_timeout: remaining.min(MAX_ATTEMPT).max(Duration::from_millis(50)),
            };
            let attempt = tokio::select! {
                r = tokio::time::timeout(remaining.max(Duration::from_millis(50)), probe.check(&target)) => {
                    r.unwrap_or_else(|_| Err("the probe attempt timed out".into()))
                }
                _ = snap.exit.changed() => Err(ProbeFailure::from("the container stopped")),
            };
            let last_error = match attempt {
                Ok(()) => {
                    tracing::debug!(runnable = %self.inner.name, attempts = poll.attempts(), elapsed = ?poll.elapsed(), "ready");
                    return Ok(());
                }
                Err(e) => e,
            };
            if let Some(ended) = self.ended_of(&snap) {
                return Err(self.ended(&snap, ended, "waiting for readiness").await);
            }
            if last_error.fatal {
                return Err(Error::ProbeFailed {
                    runnable: self.inner.name.clone(),
                    reason: last_error.reason,
                    logs: self.tail_or_recent(&snap).await,
                });
            }
            let last_error = last_error.reason;
            let Some(pause) = poll.next_pause() else {
                return Err(Error::NotReady {
                    runnable: self.inner.name.clone(),
                    after: poll.elapsed(),
                    attempts: poll.attempts(),
                    last_error,
                    logs: self.tail_or_recent(&snap).await,
                });
            };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = snap.exit.changed() => {}
                _ = snap.log_lines.notified() => {}
            }
        }
    }

    /// How the snapshot's container ended, if it exited, was stopped behind our back or the
    /// engine failed.
    fn ended_of(&self, snap: &Running) -> Option<Ended> {
        if let Some(ended) = snap.exit.borrow().clone() {
            return Some(ended);
        }
        // Stopped or replaced by another call while we waited.
        let current = lock(&self.inner.state).as_ref().map(|r| r.id.clone());
        (current.as_deref() != Some(snap.id.as_str()))
            .then_some(Ended::Exited(ExitStatus::code(-1)))
    }

    /// The output lines the log pump kept for errors.
    #[cfg(test)]
    pub(crate) fn recent_output(&self) -> Vec<String> {
        lock(&self.inner.state)
            .as_ref()
            .map(|r| r.recent.tail().0)
            .unwrap_or_default()
    }

    /// The container's last output from the engine, or as the log pump saw it when the
    /// engine does not answer.
    async fn tail_or_recent(&self, snap: &Running) -> LogTail {
        let tail = self.tail_of(&snap.id).await;
        if tail.0.is_empty() {
            snap.recent.tail()
        } else {
            tail
        }
    }

    /// Stops gracefully (SIGTERM, then SIGKILL after 30 s) and removes the container.
    /// Does nothing when not running; the runnable can be started again.
    pub async fn stop(&self) -> Result<()> {
        self.halt(false).await
    }

    /// Kills at once (SIGKILL), waits for the exit and removes the container. Does nothing
    /// when not running; the runnable can be started again.
    pub async fn kill(&self) -> Result<()> {
        self.halt(true).await
    }

    async fn halt(&self, kill: bool) -> Result<()> {
        let _op = self.inner.op.lock().await;
        // The container stays tracked until the engine confirmed its removal: if a call
        // fails, the runnable still knows its container, reports it running while it runs,
        // and a retried stop or kill reaches it again.
        let current = lock(&self.inner.state).as_mut().map(|r| {
            r.halting = true;
            r.clone()
        });
        let Some(running) = current else {
            return Ok(());
        };
        let core = &self.inner.core;
        core.trace(|| {
            format!(
                "{} {}",
                if kill { "killing" } else { "stopping" },
                self.inner.name
            )
        });
        let result = self.halt_container(&running, kill).await;
        let mut state = lock(&self.inner.state);
        match result {
            Ok(()) => {
                if state.as_ref().is_some_and(|r| r.id == running.id) {
                    state.take();
                }
                drop(state);
                core.set_reachable(&self.inner.name, None);
                core.notify();
                Ok(())
            }
            Err(e) => {
                if let Some(r) = state.as_mut().filter(|r| r.id == running.id) {
                    r.halting = false;
                }
                Err(e)
            }
        }
    }

    async fn halt_container(&self, running: &Running, kill: bool) -> Result<()> {
        if kill {
            self.backend().kill(&running.id).await?;
            let mut exit = running.exit.clone();
            let _ =
                tokio::time::timeout(Duration::from_secs(10), exit.wait_for(Option::is_some)).await;
        } else {
            self.backend().stop(&running.id, STOP_GRACE).await?;
        }
        self.backend().remove(&running.id).await
    }

    /// Drops track of the container without engine calls (the environment removes it).
    pub(crate) fn forget_container(&self) {
        lock(&self.inner.state).take();
    }

    /// Runs a command inside the running container. `Ok` on exit code 0; otherwise an
    /// [`Error::Exec`] carrying the code, stdout and stderr.
    pub async fn exec(&self, command: Command) -> Result<ExecOutput> {
        self.exec_with(command, ExecOptions::default()).await
    }

    /// [`Runnable::exec`] with stdin and user options.
    pub async fn exec_with(&self, command: Command, options: ExecOptions) -> Result<ExecOutput> {
        let action = format!("exec {:?} in", command.to_string());
        let snap = self.snapshot(&action)?;
        if snap.exit.borrow().is_some() {
            return Err(self.not_running(&action));
        }
        let request = ExecRequest {
            argv: command.to_vec(),
            stdin: options.stdin,
            user: options.user.or_else(|| self.inner.options.user.clone()),
        };
        let out = self
            .backend()
            .exec(&snap.id, &self.inner.name, &request)
            .await?;
        for line in out.stdout.lines().chain(out.stderr.lines()) {
            println!("{} (exec): {line}", self.inner.name);
        }
        if out.exit_code != 0 {
            return Err(Error::Exec {
                runnable: self.inner.name.clone(),
                command: command.to_string(),
                exit_code: out.exit_code,
                stdout: out.stdout,
                stderr: out.stderr,
            });
        }
        Ok(out)
    }

    pub(super) fn running_id(&self, action: &str) -> Result<String> {
        let snap = self.snapshot(action)?;
        if snap.exit.borrow().is_some() {
            return Err(self.not_running(action));
        }
        Ok(snap.id)
    }

    /// Freezes every process of the container (it stops answering, connections hang).
    pub async fn pause(&self) -> Result<()> {
        let id = self.running_id("pause")?;
        self.backend().pause(&id).await
    }

    /// Resumes a paused container.
    pub async fn unpause(&self) -> Result<()> {
        let id = self.running_id("unpause")?;
        self.backend().unpause(&id).await
    }

    /// Cuts the container off the environment network (a partition).
    pub async fn disconnect(&self) -> Result<()> {
        let id = self.running_id("disconnect")?;
        self.backend()
            .disconnect(&id, &self.inner.core.network.name)
            .await
    }

    /// Reconnects the container to the environment network, with its DNS names. The engine
    /// may publish the ports anew on rejoining, so what [`Runnable::endpoint`] returns is
    /// refreshed from the engine.
    pub async fn connect(&self) -> Result<()> {
        let id = self.running_id("connect")?;
        let network = &self.inner.core.network.name;
        self.backend()
            .connect(&id, network, std::slice::from_ref(&self.inner.name))
            .await?;
        let now = self
            .backend()
            .inspect(&id, Some(network), &self.inner.name)
            .await?;
        if let Some(running) = lock(&self.inner.state).as_mut().filter(|r| r.id == id) {
            running.published = now.published;
            running.direct_ip = now.direct_ip;
        }
        Ok(())
    }
}

/// After the engine failed under a watch of container `id`: waits (as long as the runnable
/// lives and its environment is open) until the engine answers again. Whether to watch on.
async fn engine_came_back(backend: &dyn Backend, runnable: &Weak<RunnableInner>, id: &str) -> bool {
    loop {
        tokio::time::sleep(ENGINE_RETRY).await;
        let watched = runnable.upgrade().is_some_and(|inner| {
            !inner.core.is_closed() && lock(&inner.state).as_ref().is_some_and(|r| r.id == id)
        });
        if !watched {
            return false;
        }
        if backend.ping().await.is_ok() {
            return true;
        }
    }
}

/// Anything that is or wraps a [`Runnable`] (instrumented runnables, catalog services).
pub trait AsRunnable: Send + Sync {
    /// The wrapped runnable.
    fn as_runnable(&self) -> &Runnable;
}

impl AsRunnable for Runnable {
    fn as_runnable(&self) -> &Runnable {
        self
    }
}

/// Starts all runnables concurrently and waits for each to be ready; returns the first error.
///
/// ```no_run
/// # use e2ekit::prelude::*;
/// # async fn demo(a: Runnable, b: Runnable) -> e2ekit::Result<()> {
/// start_and_wait_ready(&[&a, &b]).await?;
/// # Ok(()) }
/// ```
pub async fn start_and_wait_ready(runnables: &[&dyn AsRunnable]) -> Result<()> {
    futures_util::future::try_join_all(runnables.iter().map(|r| async move {
        let r = r.as_runnable();
        r.start().await?;
        r.wait_ready().await
    }))
    .await?;
    Ok(())
}
