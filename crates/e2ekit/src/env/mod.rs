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

mod access;
#[cfg(test)]
mod access_tests;
#[cfg(test)]
mod close_tests;
pub(crate) mod core;
pub(crate) mod image;
mod output;
pub(crate) mod ready;
pub(crate) mod reaper;
pub(crate) mod runnable;
mod shared;
pub(crate) mod signals;
pub(crate) mod sweep;
#[cfg(test)]
pub(crate) mod tests;

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use self::core::{env_labels, keep_on_failure, remove_dir, EnvCore};
use crate::engine::{Backend, Engine};
use crate::error::{Error, Result};
use crate::host::fs::{lock, open_permissions};
use crate::host::{labels, naming};
use crate::spec::start::check_cpus;
use crate::spec::Mount;

/// Most environments one process may hold open under one derived name.
const MAX_ORDINAL: usize = 1000;

/// How long an explicit [`Environment::close`] waits for starts in flight: longer than one
/// engine call may take, so their containers exist when the environment is removed.
const CLOSE_WAITS_FOR_WORK: std::time::Duration = std::time::Duration::from_secs(90);
/// How long the drop guard waits for them. Shorter, because a start spawned on the
/// current-thread runtime this drop blocks cannot finish until the drop returns; such starts
/// remove their own container when they resume.
const DROP_WAITS_FOR_WORK: std::time::Duration = std::time::Duration::from_secs(2);

pub use image::{cargo_bin, containerize, Containerized};
pub use runnable::{
    start_and_wait_ready, AsRunnable, ExecOptions, FutureRunnable, Runnable, RunnableBuilder,
};
pub use shared::Shared;

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

/// Closes on drop (also during a panic) when `close` was not awaited.
struct DropGuard {
    core: Arc<EnvCore>,
}

impl Drop for DropGuard {
    fn drop(&mut self) {
        if self.core.is_removed() || self.core.is_kept() {
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
                        Ok(backend) => core.close_with(backend.as_ref(), DROP_WAITS_FOR_WORK).await,
                        Err(e) => {
                            eprintln!(
                                "e2ekit: cannot clean up environment {:?}: {}",
                                core.name,
                                e.report()
                            )
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

    /// The address containers use to reach the host, as the engine says (with Docker: the
    /// network gateway on Linux, `host.docker.internal` on macOS and Windows).
    pub fn host_addr(&self) -> String {
        self.core.backend.host_addr(&self.core.network)
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
    ///
    /// New starts fail with [`Error::EnvironmentClosed`] from the moment close begins; starts
    /// already talking to the engine are waited for (up to 90 s) and then fail the same way,
    /// their containers removed with the rest.
    pub async fn close(&self) {
        self.core
            .close_with(self.core.backend.as_ref(), CLOSE_WAITS_FOR_WORK)
            .await;
    }

    pub(crate) fn core(&self) -> &Arc<EnvCore> {
        &self.core
    }
}

/// Options for [`Environment`]: engine, name, verbosity, volumes and CPU limit for all
/// runnables.
#[derive(Debug, Default, Clone)]
pub struct EnvironmentBuilder {
    name: Option<String>,
    verbose: bool,
    volumes: Vec<String>,
    cpus: Option<f64>,
    engine: Engine,
    print_output: Option<bool>,
}

impl EnvironmentBuilder {
    /// The engine to run on (default: [`Engine::docker`], which reads `DOCKER_HOST`).
    pub fn engine(mut self, engine: Engine) -> Self {
        self.engine = engine;
        self
    }

    /// The Docker engine at `host` (`unix:///path`, `tcp://host:port`), instead of
    /// `DOCKER_HOST` or the default local socket. Podman's Docker-compatible socket works
    /// too. Sugar for `.engine(Engine::docker_host(host))`.
    pub fn docker_host(self, host: impl Into<String>) -> Self {
        self.engine(Engine::docker_host(host))
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

    /// Adds a bind mount (`host:container[:ro]`) to every runnable. Both paths must be
    /// absolute and the host path must exist; [`EnvironmentBuilder::build`] checks before it
    /// contacts the engine.
    pub fn volume(mut self, spec: impl Into<String>) -> Self {
        self.volumes.push(spec.into());
        self
    }

    /// CPU limit for every runnable, in cores (finite, at least 1e-9). Wins over the
    /// `E2E_DOCKER_CPUS` variable.
    pub fn cpus(mut self, cpus: f64) -> Self {
        self.cpus = Some(cpus);
        self
    }

    /// Whether runnables print their output to the test's output with a `name: ` prefix
    /// (default: yes). A runnable's [`StartOptions::print_output`](crate::StartOptions::print_output)
    /// wins over this.
    pub fn print_output(mut self, print: bool) -> Self {
        self.print_output = Some(print);
        self
    }

    /// Connects to the engine, removes leftovers of an earlier run of the same name, and
    /// creates the network and the shared directory.
    pub async fn build(self) -> Result<Environment> {
        let explicit = self.name.is_some();
        let name = match self.name {
            Some(n) => {
                naming::validate_env_name(&n)?;
                n
            }
            None => naming::derive_from_current_test(),
        };
        let volumes = self
            .volumes
            .iter()
            .map(|v| runnable::bind_mount(v).map_err(Error::InvalidArgument))
            .collect::<Result<Vec<_>>>()?;
        let cpus = match self.cpus {
            Some(c) => Some(c),
            None => cpus_from_env()?,
        };
        if let Some(c) = cpus {
            check_cpus(c).map_err(Error::InvalidArgument)?;
        }
        let backend: Arc<dyn Backend> = self.engine.connect().await?;
        if !backend.sees_host_files() {
            if let Some(v) = volumes.first() {
                return Err(Error::InvalidArgument(format!(
                    "volume {}:{}: the engine at {} runs on another machine and cannot see this host's files; copy them in with StartOptions::copy instead",
                    v.host.display(),
                    v.container,
                    self.engine.endpoint()
                )));
            }
        }
        // Before anything is created: from here on, a kill of this process cannot leave
        // anything behind (see env/reaper.rs and env/signals.rs).
        reaper::ensure_for(&self.engine);
        signals::install_once();
        let env = Self::build_on(backend, name, explicit, volumes, cpus, self.verbose).await?;
        env.core
            .print_output
            .store(self.print_output.unwrap_or(true), Ordering::Relaxed);
        let endpoint = self.engine.endpoint();
        reaper::opened(&endpoint);
        *lock(&env.core.on_removed) = Some(Box::new(move || reaper::removed(&endpoint)));
        signals::register(&env.core);
        Ok(env)
    }

    /// The rest of [`EnvironmentBuilder::build`], on a connected engine (the unit tests give
    /// it the fake engine).
    pub(crate) async fn build_on(
        backend: Arc<dyn Backend>,
        name: String,
        explicit: bool,
        volumes: Vec<Mount>,
        cpus: Option<f64>,
        verbose: bool,
    ) -> Result<Environment> {
        let name = naming::avoid_reserved(name, explicit, backend.reserved_names())?;
        // Held before the sweep, so this process's sweeps never take our resources for an
        // orphan's; released when the environment closes (or this build fails). An explicit
        // name open here is an error; a derived one (a helper called twice in one test, tests
        // in tokio::spawn) takes the next free ordinal: `name`, `name-2`, ...
        let (name, open_name) = if explicit {
            let held = sweep::OpenName::hold(&name);
            match held {
                Some(held) => (name, held),
                None => {
                    return Err(Error::EnvironmentInUse {
                        owner: format!("this process ({})", labels::owner()),
                        env: name,
                    })
                }
            }
        } else {
            (1..=MAX_ORDINAL)
                .map(|n| naming::nth(&name, n))
                .find_map(|candidate| {
                    let held = sweep::OpenName::hold(&candidate)?;
                    Some((candidate, held))
                })
                .ok_or_else(|| Error::EnvironmentInUse {
                    env: name.clone(),
                    owner: format!(
                        "this process ({}), which holds {MAX_ORDINAL} environments derived from this name",
                        labels::owner()
                    ),
                })?
        };
        let background = backend.reconnect().await?;
        let shared_dir = sweep::shared_dir_for(&name)?;
        if let Err(e) = sweep::remove_orphans_with(backend.as_ref()).await {
            tracing::warn!(error = %e.report(), "could not remove orphaned environments");
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
        // Only the last component: the private parent was checked by shared_dir_for, and must
        // never be recreated with default permissions.
        std::fs::create_dir(&shared_dir)
            .map_err(|e| Error::io(format!("creating shared dir {}", shared_dir.display()), e))?;
        // Containers may run as any user; they must be able to write here (other users of
        // this machine cannot: the parent is private, see sweep::private_root).
        open_permissions(&shared_dir);
        std::fs::write(shared_dir.join(sweep::OWNER_MARKER), labels::owner())
            .map_err(|e| Error::io(format!("writing the owner of {}", shared_dir.display()), e))?;

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
            .map_err(|e| Error::Unexpected(format!("building the HTTP client failed: {e}")))?;
        let core = Arc::new(EnvCore {
            name,
            background,
            backend,
            network,
            shared_dir,
            volumes,
            cpus,
            verbose,
            print_output: AtomicBool::new(true),
            http,
            open_name,
            closed: AtomicBool::new(false),
            removed: AtomicBool::new(false),
            on_removed: Mutex::new(None),
            kept: AtomicBool::new(false),
            closing: tokio::sync::Mutex::new(()),
            in_flight: tokio::sync::RwLock::new(()),
            close_gave_up: AtomicBool::new(false),
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
