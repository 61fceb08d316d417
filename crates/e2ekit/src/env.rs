//! The isolated environment: a private network, a shared directory, and the runnables in it.
//!
//! ```no_run
//! use e2ekit::prelude::*;
//!
//! # async fn demo() -> e2ekit::Result<()> {
//! // Named after the calling test; leftovers of an earlier run of it are removed first.
//! let env = Environment::new().await?;
//! println!("containers reach the host at {}", env.host_addr());
//! println!("shared dir: {}", env.shared_dir().display());
//!
//! let explicit = Environment::builder().name("demo").cpus(1.5).build().await?;
//! explicit.close().await; // also happens on drop, even while panicking
//! # Ok(()) }
//! ```

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

use crate::backend::{Backend, NetworkInfo};
use crate::docker::DockerBackend;
use crate::error::{Error, Result};
use crate::labels;
use crate::naming;
use crate::runnable::{Runnable, RunnableBuilder, RunnableInner};
use crate::sweep;

/// Told about the running runnables whenever one starts or stops (monitoring uses this to
/// keep its scrape targets current).
pub trait EnvironmentListener: Send + Sync {
    /// Called with every runnable that is running now.
    fn on_change(&self, running: &[Runnable]) -> Result<()>;
}

impl<F> EnvironmentListener for F
where
    F: Fn(&[Runnable]) -> Result<()> + Send + Sync,
{
    fn on_change(&self, running: &[Runnable]) -> Result<()> {
        self(running)
    }
}

type Closer = Box<dyn FnOnce() + Send>;

/// State shared by the environment and its runnables.
pub(crate) struct EnvCore {
    pub name: String,
    pub backend: Arc<dyn Backend>,
    pub network: NetworkInfo,
    pub shared_dir: PathBuf,
    pub volumes: Vec<String>,
    pub cpus: Option<f64>,
    pub verbose: bool,
    pub http: reqwest::Client,
    closed: AtomicBool,
    names: Mutex<HashSet<String>>,
    started: Mutex<Vec<Weak<RunnableInner>>>,
    /// How to reach each running runnable, kept apart from the runnables themselves so it
    /// can be printed after they were dropped (keep-on-failure).
    reachable: Mutex<BTreeMap<String, String>>,
    listeners: Mutex<Vec<Arc<dyn EnvironmentListener>>>,
    closers: Mutex<Vec<Closer>>,
}

impl fmt::Debug for EnvCore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Environment")
            .field("name", &self.name)
            .field("network", &self.network.name)
            .field("shared_dir", &self.shared_dir)
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic elsewhere must not stop cleanup: the data under these locks stays consistent.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl EnvCore {
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    pub(crate) fn ensure_open(&self) -> Result<()> {
        if self.is_closed() {
            return Err(Error::EnvironmentClosed {
                env: self.name.clone(),
            });
        }
        Ok(())
    }

    pub(crate) fn register(&self, name: &str) -> Result<()> {
        self.ensure_open()?;
        naming::validate_runnable_name(&self.name, name)?;
        if !lock(&self.names).insert(name.to_string()) {
            return Err(Error::DuplicateRunnable {
                env: self.name.clone(),
                name: name.to_string(),
            });
        }
        Ok(())
    }

    pub(crate) fn trace(&self, what: impl FnOnce() -> String) {
        if self.verbose {
            println!("e2ekit[{}]: {}", self.name, what());
        }
    }

    pub(crate) fn container_labels(&self, runnable: &str) -> BTreeMap<String, String> {
        let mut l = self.labels();
        l.insert(labels::RUNNABLE.to_string(), runnable.to_string());
        l
    }

    fn labels(&self) -> BTreeMap<String, String> {
        env_labels(&self.name)
    }

    /// Records a start (keeping start order) and tells the listeners.
    pub(crate) fn started(&self, runnable: &Arc<RunnableInner>) {
        {
            let mut started = lock(&self.started);
            started.retain(|w| w.strong_count() > 0 && !Weak::ptr_eq(w, &Arc::downgrade(runnable)));
            started.push(Arc::downgrade(runnable));
        }
        self.notify();
    }

    /// Records (or with `None` forgets) how to reach a runnable.
    pub(crate) fn set_reachable(&self, runnable: &str, how: Option<String>) {
        let mut map = lock(&self.reachable);
        match how {
            Some(h) => map.insert(runnable.to_string(), h),
            None => map.remove(runnable),
        };
    }

    pub(crate) fn notify(&self) {
        let running: Vec<Runnable> = lock(&self.started)
            .iter()
            .filter_map(Weak::upgrade)
            .map(Runnable::from_inner)
            .filter(Runnable::is_running)
            .collect();
        let listeners = lock(&self.listeners).clone();
        for l in listeners {
            if let Err(e) = l.on_change(&running) {
                tracing::warn!(env = %self.name, error = %e, "environment listener failed");
            }
        }
    }

    /// Closes the environment with the given engine connection. Safe to call twice.
    pub(crate) async fn close_with(&self, backend: &dyn Backend) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        let closers: Vec<Closer> = std::mem::take(&mut *lock(&self.closers));
        for closer in closers.into_iter().rev() {
            closer();
        }
        // Start order is kept for listeners; removal is concurrent because a kill does not
        // care about order and sequential removal would be N times slower.
        let runnables: Vec<_> = lock(&self.started)
            .drain(..)
            .filter_map(|w| w.upgrade())
            .collect();
        for r in runnables.iter().rev() {
            Runnable::from_inner(r.clone()).forget_container();
        }
        self.trace(|| "removing containers and network".to_string());
        if let Err(e) = backend
            .remove_environment(&self.name, Some(&self.network.name))
            .await
        {
            eprintln!("e2ekit: closing environment {:?}: {e}", self.name);
        }
        match std::fs::remove_dir_all(&self.shared_dir) {
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                // Files a container wrote as another user (root, mostly): delete them as root
                // through the engine, then what is left is ours.
                self.trace(|| "removing files owned by another user through the engine".into());
                if let Err(e) = crate::root_cleanup::remove_contents_as_root(
                    backend,
                    &self.name,
                    &self.shared_dir,
                )
                .await
                {
                    eprintln!(
                        "e2ekit: could not remove files written by containers as another user in {}: {e}",
                        self.shared_dir.display()
                    );
                }
                remove_dir(&self.shared_dir);
            }
            Ok(()) => {}
            // Retried once more by remove_dir, which reports what is left.
            Err(_) => remove_dir(&self.shared_dir),
        }
    }
}

/// `E2EKIT_KEEP_ON_FAILURE=1`: leave the environment of a panicking test running.
fn keep_on_failure() -> bool {
    std::env::var("E2EKIT_KEEP_ON_FAILURE").is_ok_and(|v| !v.is_empty() && v != "0")
}

impl EnvCore {
    /// Marks the environment as kept (so sweeps spare it) and prints how to reach and remove it.
    fn keep_for_inspection(&self) {
        let _ = std::fs::write(self.shared_dir.join(sweep::KEPT_MARKER), labels::owner());
        let mut text = format!(
            "\ne2ekit: E2EKIT_KEEP_ON_FAILURE is set; environment {:?} is kept for inspection.\n",
            self.name
        );
        for line in lock(&self.reachable).values() {
            text.push_str(&format!("  {line}\n"));
        }
        text.push_str(&format!("  shared dir: {}\n", self.shared_dir.display()));
        text.push_str(&format!(
            "  remove it with: {}\n",
            removal_command(&self.name, &self.shared_dir)
        ));
        eprintln!("{text}");
    }
}

/// A shell command that removes everything of an environment.
pub(crate) fn removal_command(name: &str, dir: &Path) -> String {
    format!(
        "docker rm -f $(docker ps -aq --filter label={}={name}); docker network rm {name}; rm -rf {}",
        labels::ENV,
        dir.display()
    )
}

fn env_labels(name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (labels::ENV.to_string(), name.to_string()),
        (labels::OWNER.to_string(), labels::owner().to_string()),
    ])
}

fn remove_dir(dir: &Path) {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => eprintln!(
            "e2ekit: could not remove shared dir {}: {e} (files written by containers as another user? run them with StartOptions::host_user)",
            dir.display()
        ),
    }
}

/// Closes on drop (also during a panic) when `close` was not awaited.
struct DropGuard {
    core: Arc<EnvCore>,
}

impl Drop for DropGuard {
    fn drop(&mut self) {
        if self.core.is_closed() {
            return;
        }
        if std::thread::panicking() && keep_on_failure() {
            self.core.keep_for_inspection();
            return;
        }
        let core = self.core.clone();
        // The caller's runtime may be current-thread and is blocked inside this drop, so the
        // async cleanup runs on its own thread with its own runtime and its own connection.
        let worker = std::thread::Builder::new()
            .name(format!("e2ekit-close-{}", core.name))
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        eprintln!("e2ekit: cannot clean up environment {:?}: {e}", core.name);
                        return;
                    }
                };
                runtime.block_on(async {
                    match core.backend.reconnect().await {
                        Ok(backend) => core.close_with(backend.as_ref()).await,
                        Err(e) => {
                            eprintln!("e2ekit: cannot clean up environment {:?}: {e}", core.name)
                        }
                    }
                });
            });
        if let Ok(handle) = worker {
            let _ = handle.join();
        }
    }
}

/// An isolated environment on the container engine.
///
/// Cheap to clone; all clones refer to the same environment, which is closed by
/// [`Environment::close`] or when the last clone is dropped.
#[derive(Clone)]
pub struct Environment {
    core: Arc<EnvCore>,
    _guard: Arc<DropGuard>,
}

impl fmt::Debug for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.core.fmt(f)
    }
}

impl Environment {
    /// An environment on the local Docker engine, named after the calling test.
    pub async fn new() -> Result<Self> {
        Self::builder().build().await
    }

    /// Options for a new environment.
    pub fn builder() -> EnvironmentBuilder {
        EnvironmentBuilder::default()
    }

    /// The environment's name (also its network's name and the prefix of container names).
    pub fn name(&self) -> &str {
        &self.core.name
    }

    /// A host directory mounted at the same absolute path in every runnable.
    pub fn shared_dir(&self) -> &Path {
        &self.core.shared_dir
    }

    /// The address containers use to reach the host (the network gateway on Linux,
    /// `host.docker.internal` on macOS and Windows).
    pub fn host_addr(&self) -> String {
        if cfg!(any(target_os = "macos", target_os = "windows")) {
            return "host.docker.internal".to_string();
        }
        match self.core.network.gateway {
            Some(ip) => ip.to_string(),
            None => "host.docker.internal".to_string(),
        }
    }

    /// Whether the environment was closed.
    pub fn is_closed(&self) -> bool {
        self.core.is_closed()
    }

    /// Registers a listener told about running runnables on every start and stop.
    pub fn add_listener(&self, listener: Arc<dyn EnvironmentListener>) {
        lock(&self.core.listeners).push(listener);
    }

    /// Registers a function run on close, before the runnables are removed (last added runs
    /// first).
    pub fn add_closer(&self, closer: impl FnOnce() + Send + 'static) {
        lock(&self.core.closers).push(Box::new(closer));
    }

    /// Starts defining a runnable named `name` (unique in this environment).
    pub fn runnable(&self, name: impl Into<String>) -> RunnableBuilder {
        RunnableBuilder::new(self.core.clone(), name.into())
    }

    /// Removes every container, the network and the shared directory. Idempotent.
    pub async fn close(&self) {
        self.core.close_with(self.core.backend.as_ref()).await;
    }

    pub(crate) fn core(&self) -> &Arc<EnvCore> {
        &self.core
    }
}

/// Options for [`Environment`]: name, verbosity, volumes and CPU limit for all runnables.
#[derive(Debug, Default, Clone)]
pub struct EnvironmentBuilder {
    name: Option<String>,
    verbose: bool,
    volumes: Vec<String>,
    cpus: Option<f64>,
    docker_host: Option<String>,
}

impl EnvironmentBuilder {
    /// The engine to use (`unix:///path`, `tcp://host:port`), instead of `DOCKER_HOST` or the
    /// default local socket. Podman's Docker-compatible socket works too.
    pub fn docker_host(mut self, host: impl Into<String>) -> Self {
        self.docker_host = Some(host.into());
        self
    }

    /// An explicit name instead of one derived from the calling test.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Prints every engine action of the environment.
    pub fn verbose(mut self, verbose: bool) -> Self {
        self.verbose = verbose;
        self
    }

    /// Adds a bind mount (`host:container[:ro]`) to every runnable.
    pub fn volume(mut self, spec: impl Into<String>) -> Self {
        self.volumes.push(spec.into());
        self
    }

    /// CPU limit for every runnable, in cores. Wins over the `E2E_DOCKER_CPUS` variable.
    pub fn cpus(mut self, cpus: f64) -> Self {
        self.cpus = Some(cpus);
        self
    }

    /// Connects to the engine, removes leftovers of an earlier run of the same name, and
    /// creates the network and the shared directory.
    pub async fn build(self) -> Result<Environment> {
        let name = match self.name {
            Some(n) => {
                naming::validate_env_name(&n)?;
                n
            }
            None => naming::derive_from_current_test(),
        };
        let cpus = match self.cpus {
            Some(c) => Some(c),
            None => cpus_from_env()?,
        };
        if let Some(c) = cpus {
            if !(c > 0.0 && c.is_finite()) {
                return Err(Error::InvalidArgument(format!(
                    "CPU limit must be a positive number of cores, got {c}"
                )));
            }
        }
        let backend: Arc<dyn Backend> =
            Arc::new(DockerBackend::connect(self.docker_host.as_deref()).await?);
        let shared_dir = sweep::shared_dir_for(&name)?;
        if let Err(e) = sweep::remove_orphans_with(backend.as_ref()).await {
            tracing::warn!(error = %e, "could not remove orphaned environments");
        }

        let leftovers = backend.find_environment(&name).await?;
        if let Some(owner) = leftovers
            .owners
            .iter()
            .find(|o| labels::is_other_live_owner(o))
        {
            return Err(Error::EnvironmentInUse {
                env: name,
                owner: owner.clone(),
            });
        }
        if !leftovers.containers.is_empty() || !leftovers.networks.is_empty() {
            tracing::info!(env = %name, containers = leftovers.containers.len(), "removing leftovers of an earlier run");
            backend.remove_environment(&name, None).await?;
        }
        remove_dir(&shared_dir);
        std::fs::create_dir_all(&shared_dir)
            .map_err(|e| Error::io(format!("creating shared dir {}", shared_dir.display()), e))?;
        // Containers may run as any user; they must be able to write here.
        set_world_writable(&shared_dir);

        let network = match backend.create_network(&name, env_labels(&name)).await {
            Ok(n) => n,
            Err(e) => {
                remove_dir(&shared_dir);
                return Err(e);
            }
        };
        let http = reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .pool_max_idle_per_host(4)
            .build()
            .map_err(|e| Error::InvalidArgument(format!("building the HTTP client: {e}")))?;
        let core = Arc::new(EnvCore {
            name,
            backend,
            network,
            shared_dir,
            volumes: self.volumes,
            cpus,
            verbose: self.verbose,
            http,
            closed: AtomicBool::new(false),
            names: Mutex::new(HashSet::new()),
            started: Mutex::new(Vec::new()),
            reachable: Mutex::new(BTreeMap::new()),
            listeners: Mutex::new(Vec::new()),
            closers: Mutex::new(Vec::new()),
        });
        core.trace(|| format!("created network and {}", core.shared_dir.display()));
        Ok(Environment {
            _guard: Arc::new(DropGuard { core: core.clone() }),
            core,
        })
    }
}

fn cpus_from_env() -> Result<Option<f64>> {
    match std::env::var("E2E_DOCKER_CPUS") {
        Ok(v) if !v.trim().is_empty() => v.trim().parse::<f64>().map(Some).map_err(|_| {
            Error::InvalidArgument(format!("E2E_DOCKER_CPUS={v:?} is not a number of cores"))
        }),
        _ => Ok(None),
    }
}

fn set_world_writable(dir: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777));
    }
    #[cfg(not(unix))]
    let _ = dir;
}
