//! The same API without async: for plain `#[test]` functions and programs without a runtime.
//!
//! ```no_run
//! use e2ekit::prelude::*;
//! use e2ekit::blocking::{start_and_wait_ready, Environment};
//!
//! #[test]
//! fn two_services_talk() -> e2ekit::Result<()> {
//!     let env = Environment::new()?; // named after this test, as the async one
//!     let image = env.build_image(&HostImage::new("e2ekit/demo-app").binary(cargo_bin("demo-app")?))?;
//!     let backend = env.runnable("backend").with_ports([("http", 8080)]).init(
//!         StartOptions::new(image)
//!             .command(Command::new("/bin/demo-app").args(["--listen", ":8080"]))
//!             .readiness(HttpProbe::new("http", "/ready")),
//!     )?;
//!     start_and_wait_ready(&[&backend])?;
//!     println!("http://{}/", backend.endpoint("http")?);
//!     backend.kill()?;
//!     env.close()?; // also on drop, and when the test panics
//!     Ok(())
//! }
//! # fn main() {}
//! ```
//!
//! Every type here wraps its async counterpart ([`crate::Environment`], [`crate::Runnable`],
//! [`crate::Instrumented`], ...) and has the same methods under the same names, synchronous:
//! where the async API has `r.start().await?`, this one has `r.start()?`. Values that need no
//! engine (`StartOptions`, probes, `Command`, `MetricsOptions`, expectations, `HostImage`)
//! are the crate's own; `as_async()` gives the wrapped value for anything not mirrored here.
//!
//! # How it runs, and what it costs
//!
//! The calls run on a multi-thread Tokio runtime that e2ekit builds on first use and keeps for
//! the life of the process: **two worker threads** (`e2ekit-bg`, shared with e2ekit's background work; plus, as on any Tokio
//! runtime, blocking-pool threads for file work that exit after 10 s idle), idle unless a call is running or a runnable's background work (its exit watcher, its
//! log pump) has something to do. Each call blocks the calling thread in `block_on`: the call
//! runs on the caller's thread, while the workers drive network I/O and timers and wake it.
//!
//! Measured on 2 shared cores, debug build as tests run, medians of 300 calls against the same
//! call awaited on a current-thread runtime (`cargo test -p e2ekit --test engine
//! blocking::measure_overhead -- --ignored --nocapture`):
//!
//! | call | blocking | awaited | cost |
//! |---|---|---|---|
//! | no I/O (closing a closed environment) | 15–18 µs | 7–9 µs | **+8 µs** per call |
//! | a metrics fetch over loopback HTTP | 0.61–0.82 ms | 0.60–0.83 ms | within noise (≤ 1.01×) |
//! | an `exec` in a container (20 calls) | 62–81 ms | 59–72 ms | within its noise |
//!
//! Engine calls take milliseconds, so a scenario runs as fast as the async one; what it costs
//! is two idle threads and ~8 µs a call.
//!
//! # Inside an async runtime
//!
//! Blocking a runtime's thread would stall every task on it, and can deadlock. So a call made
//! from inside a Tokio runtime does not block: it fails at once with an error that says to use
//! the async API there.
//!
//! ```no_run
//! # async fn demo() {
//! let err = e2ekit::blocking::Environment::new().unwrap_err();
//! assert!(err.to_string().contains("use the async API"));
//! # }
//! ```

use std::fmt;
use std::future::Future;
use std::net::IpAddr;
use std::ops::Deref;
use std::path::Path;
use std::sync::Arc;

use crate::engine::{Engine, ExecOutput};
use crate::env::{AsRunnable, ExecOptions};
use crate::error::{Error, Result};
use crate::host::DockerfileImage;
use crate::host::HostImage;
use crate::metrics::{Expectation, MetricsOptions};
use crate::spec::{Command, StartOptions};
use crate::wait::WaitPolicy;

pub use crate::env::cargo_bin;

/// The runtime the blocking calls run on: e2ekit's own (`crate::runtime`), the one its
/// background work (exit watchers, output) runs on, built on first use and kept for the
/// process.
fn runtime() -> Result<&'static tokio::runtime::Runtime> {
    crate::runtime::owned().ok_or_else(|| {
        Error::Unexpected("e2ekit cannot build its runtime for blocking calls".to_string())
    })
}

/// Runs `future` to completion on e2ekit's runtime, from the caller's thread; refuses to block
/// a thread of an async runtime. `what` names the call for the error.
fn block_on<F: Future>(what: &str, future: F) -> Result<F::Output> {
    if tokio::runtime::Handle::try_current().is_ok() {
        return Err(Error::Unexpected(format!(
            "e2ekit::blocking::{what} was called inside an async runtime, where blocking would stall its tasks; use the async API there (e2ekit::{what}(..).await)"
        )));
    }
    Ok(runtime()?.block_on(future))
}

/// An isolated environment on the container engine; the blocking [`crate::Environment`].
///
/// Cheap to clone; all clones refer to the same environment, which is closed by
/// [`Environment::close`] or when the last clone is dropped (also while a test panics, and
/// kept then with `E2EKIT_KEEP_ON_FAILURE=1`).
///
/// ```no_run
/// # fn demo() -> e2ekit::Result<()> {
/// let env = e2ekit::blocking::Environment::new()?;
/// println!("{} shares {}", env.name(), env.shared_dir().display());
/// env.close()?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Environment {
    inner: crate::env::Environment,
}

impl fmt::Debug for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

impl From<crate::env::Environment> for Environment {
    fn from(inner: crate::env::Environment) -> Self {
        Environment { inner }
    }
}

impl Environment {
    /// An environment on the local Docker engine, named after the calling test.
    ///
    /// ```no_run
    /// let env = e2ekit::blocking::Environment::new()?;
    /// # Ok::<(), e2ekit::Error>(())
    /// ```
    pub fn new() -> Result<Self> {
        Self::builder().build()
    }

    /// Options for a new environment.
    ///
    /// ```no_run
    /// let env = e2ekit::blocking::Environment::builder().name("demo").cpus(1.0).build()?;
    /// # Ok::<(), e2ekit::Error>(())
    /// ```
    pub fn builder() -> EnvironmentBuilder {
        EnvironmentBuilder {
            inner: crate::env::Environment::builder(),
        }
    }

    /// The environment's name (also its network's name and the prefix of container names).
    ///
    /// ```no_run
    /// # let env = e2ekit::blocking::Environment::new()?;
    /// println!("{}", env.name());
    /// # Ok::<(), e2ekit::Error>(())
    /// ```
    pub fn name(&self) -> &str {
        self.inner.name()
    }

    /// A host directory mounted at the same absolute path in every runnable.
    ///
    /// ```no_run
    /// # let env = e2ekit::blocking::Environment::new()?;
    /// std::fs::write(env.shared_dir().join("config.yml"), "a: 1").expect("write");
    /// # Ok::<(), e2ekit::Error>(())
    /// ```
    pub fn shared_dir(&self) -> &Path {
        self.inner.shared_dir()
    }

    /// The address containers use to reach the host.
    ///
    /// ```no_run
    /// # let env = e2ekit::blocking::Environment::new()?;
    /// println!("the host is {} for containers", env.host_addr());
    /// # Ok::<(), e2ekit::Error>(())
    /// ```
    pub fn host_addr(&self) -> String {
        self.inner.host_addr()
    }

    /// Whether the environment was closed.
    ///
    /// ```no_run
    /// # let env = e2ekit::blocking::Environment::new()?;
    /// env.close()?;
    /// assert!(env.is_closed());
    /// # Ok::<(), e2ekit::Error>(())
    /// ```
    pub fn is_closed(&self) -> bool {
        self.inner.is_closed()
    }

    /// Registers a function run on close, before the runnables are removed.
    ///
    /// ```no_run
    /// # let env = e2ekit::blocking::Environment::new()?;
    /// env.add_closer(|| println!("closing"));
    /// # Ok::<(), e2ekit::Error>(())
    /// ```
    pub fn add_closer(&self, closer: impl FnOnce() + Send + 'static) {
        self.inner.add_closer(closer)
    }

    /// Starts defining a runnable named `name` (unique in this environment).
    ///
    /// ```no_run
    /// # use e2ekit::prelude::*;
    /// # let env = e2ekit::blocking::Environment::new()?;
    /// let app = env.runnable("app").init(StartOptions::new("e2ekit/demo-app"))?;
    /// # Ok::<(), e2ekit::Error>(())
    /// ```
    pub fn runnable(&self, name: impl Into<String>) -> RunnableBuilder {
        RunnableBuilder {
            inner: self.inner.runnable(name),
        }
    }

    /// Builds (or finds) an image from host files on this environment's engine; returns its
    /// reference. The blocking form of [`HostImage::build`].
    ///
    /// ```no_run
    /// # use e2ekit::prelude::*;
    /// # let env = e2ekit::blocking::Environment::new()?;
    /// let image = env.build_image(&HostImage::new("e2ekit/app").binary("target/debug/app"))?;
    /// # Ok::<(), e2ekit::Error>(())
    /// ```
    pub fn build_image(&self, image: &HostImage) -> Result<String> {
        block_on("HostImage::build", image.build(&self.inner))?
    }

    /// Removes every container, the network and the shared directory. Idempotent. Fails only
    /// when called inside an async runtime (use [`crate::Environment::close`] there).
    ///
    /// ```no_run
    /// # let env = e2ekit::blocking::Environment::new()?;
    /// env.close()?;
    /// # Ok::<(), e2ekit::Error>(())
    /// ```
    pub fn close(&self) -> Result<()> {
        block_on("Environment::close", self.inner.close())
    }

    /// The async environment this wraps, for what is not mirrored here.
    ///
    /// ```no_run
    /// # let env = e2ekit::blocking::Environment::new()?;
    /// let async_env: &e2ekit::Environment = env.as_async();
    /// # Ok::<(), e2ekit::Error>(())
    /// ```
    pub fn as_async(&self) -> &crate::env::Environment {
        &self.inner
    }
}

// Images built from a Dockerfile (issue 13).
impl Environment {
    /// Builds (or finds, when nothing changed) an image from a Dockerfile and its context on
    /// this environment's engine; returns its reference. The blocking form of
    /// [`DockerfileImage::build`].
    ///
    /// ```no_run
    /// # use e2ekit::prelude::*;
    /// # let env = e2ekit::blocking::Environment::new()?;
    /// let image = env.build_dockerfile_image(&DockerfileImage::new("tests/fixtures/app"))?;
    /// # Ok::<(), e2ekit::Error>(())
    /// ```
    pub fn build_dockerfile_image(&self, image: &DockerfileImage) -> Result<String> {
        block_on("DockerfileImage::build", image.build(&self.inner))?
    }
}

/// Options for a blocking [`Environment`]; see [`crate::EnvironmentBuilder`].
///
/// ```no_run
/// let env = e2ekit::blocking::Environment::builder().name("demo").verbose(true).build()?;
/// # Ok::<(), e2ekit::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct EnvironmentBuilder {
    inner: crate::env::EnvironmentBuilder,
}

impl EnvironmentBuilder {
    /// The engine to run on (default: [`Engine::docker`], which reads `DOCKER_HOST`).
    ///
    /// ```no_run
    /// # use e2ekit::Engine;
    /// let b = e2ekit::blocking::Environment::builder().engine(Engine::docker());
    /// ```
    pub fn engine(mut self, engine: Engine) -> Self {
        self.inner = self.inner.engine(engine);
        self
    }

    /// The Docker engine at `host` (`unix:///path`, `tcp://host:port`).
    ///
    /// ```no_run
    /// let b = e2ekit::blocking::Environment::builder().docker_host("unix:///tmp/podman.sock");
    /// ```
    pub fn docker_host(mut self, host: impl Into<String>) -> Self {
        self.inner = self.inner.docker_host(host);
        self
    }

    /// An explicit name instead of one derived from the calling test.
    ///
    /// ```no_run
    /// let b = e2ekit::blocking::Environment::builder().name("demo");
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.inner = self.inner.name(name);
        self
    }

    /// Prints every engine action of the environment.
    ///
    /// ```no_run
    /// let b = e2ekit::blocking::Environment::builder().verbose(true);
    /// ```
    pub fn verbose(mut self, verbose: bool) -> Self {
        self.inner = self.inner.verbose(verbose);
        self
    }

    /// Adds a bind mount (`host:container[:ro]`) to every runnable.
    ///
    /// ```no_run
    /// let b = e2ekit::blocking::Environment::builder().volume("/etc/ssl:/etc/ssl:ro");
    /// ```
    pub fn volume(mut self, spec: impl Into<String>) -> Self {
        self.inner = self.inner.volume(spec);
        self
    }

    /// CPU limit for every runnable, in cores.
    ///
    /// ```no_run
    /// let b = e2ekit::blocking::Environment::builder().cpus(0.5);
    /// ```
    pub fn cpus(mut self, cpus: f64) -> Self {
        self.inner = self.inner.cpus(cpus);
        self
    }

    /// Connects to the engine, removes leftovers of an earlier run of the same name, and
    /// creates the network and the shared directory.
    ///
    /// ```no_run
    /// let env = e2ekit::blocking::Environment::builder().name("demo").build()?;
    /// # Ok::<(), e2ekit::Error>(())
    /// ```
    pub fn build(self) -> Result<Environment> {
        // `block_on` polls on this thread, so a derived name is the running test's.
        block_on("EnvironmentBuilder::build", self.inner.build())?.map(Environment::from)
    }
}

/// Defines a runnable; the blocking [`crate::RunnableBuilder`].
///
/// ```no_run
/// # use e2ekit::prelude::*;
/// # let env = e2ekit::blocking::Environment::new()?;
/// let future = env.runnable("db").with_ports([("sql", 5432)]).future()?;
/// # Ok::<(), e2ekit::Error>(())
/// ```
#[derive(Debug)]
pub struct RunnableBuilder {
    inner: crate::env::RunnableBuilder,
}

impl RunnableBuilder {
    /// Declares named container ports.
    ///
    /// ```no_run
    /// # let env = e2ekit::blocking::Environment::new()?;
    /// let b = env.runnable("app").with_ports([("http", 8080), ("grpc", 9090)]);
    /// # Ok::<(), e2ekit::Error>(())
    /// ```
    pub fn with_ports<I, S>(mut self, ports: I) -> Self
    where
        I: IntoIterator<Item = (S, u16)>,
        S: Into<String>,
    {
        self.inner = self.inner.with_ports(ports);
        self
    }

    /// A runnable whose addresses are known before it is defined further.
    ///
    /// ```no_run
    /// # let env = e2ekit::blocking::Environment::new()?;
    /// let future = env.runnable("backend").with_ports([("http", 8080)]).future()?;
    /// println!("other containers reach it at {}", future.internal_endpoint("http")?);
    /// # Ok::<(), e2ekit::Error>(())
    /// ```
    pub fn future(self) -> Result<FutureRunnable> {
        Ok(FutureRunnable {
            inner: self.inner.future()?,
        })
    }

    /// Defines the runnable with its start options (nothing starts yet).
    ///
    /// ```no_run
    /// # use e2ekit::prelude::*;
    /// # let env = e2ekit::blocking::Environment::new()?;
    /// let r = env.runnable("sleeper")
    ///     .init(StartOptions::new("e2ekit-test/busybox").command(Command::new("sleep").arg("60")))?;
    /// # Ok::<(), e2ekit::Error>(())
    /// ```
    pub fn init(self, options: StartOptions) -> Result<Runnable> {
        Ok(Runnable::from(self.inner.init(options)?))
    }
}

/// A runnable whose name and addresses are fixed but whose start options are not yet given;
/// the blocking [`crate::FutureRunnable`].
///
/// ```no_run
/// # use e2ekit::prelude::*;
/// # let env = e2ekit::blocking::Environment::new()?;
/// let future = env.runnable("backend").with_ports([("http", 8080)]).future()?;
/// let addr = future.internal_endpoint("http")?;
/// let backend = future.init(StartOptions::new("e2ekit/demo-app").env("SELF", addr))?;
/// # Ok::<(), e2ekit::Error>(())
/// ```
#[derive(Debug)]
pub struct FutureRunnable {
    inner: crate::env::FutureRunnable,
}

impl FutureRunnable {
    /// The runnable's name.
    ///
    /// ```no_run
    /// # let env = e2ekit::blocking::Environment::new()?;
    /// # let future = env.runnable("backend").future()?;
    /// assert_eq!(future.name(), "backend");
    /// # Ok::<(), e2ekit::Error>(())
    /// ```
    pub fn name(&self) -> &str {
        self.inner.name()
    }

    /// The runnable's own directory inside the shared directory.
    ///
    /// ```no_run
    /// # let env = e2ekit::blocking::Environment::new()?;
    /// # let future = env.runnable("backend").future()?;
    /// println!("{}", future.dir().display());
    /// # Ok::<(), e2ekit::Error>(())
    /// ```
    pub fn dir(&self) -> &Path {
        self.inner.dir()
    }

    /// `name:port` on the environment's network, for other runnables.
    ///
    /// ```no_run
    /// # let env = e2ekit::blocking::Environment::new()?;
    /// # let future = env.runnable("backend").with_ports([("http", 8080)]).future()?;
    /// let addr = future.internal_endpoint("http")?;
    /// # Ok::<(), e2ekit::Error>(())
    /// ```
    pub fn internal_endpoint(&self, port: &str) -> Result<String> {
        self.inner.internal_endpoint(port)
    }

    /// Gives the start options; nothing starts yet.
    ///
    /// ```no_run
    /// # use e2ekit::prelude::*;
    /// # let env = e2ekit::blocking::Environment::new()?;
    /// # let future = env.runnable("backend").future()?;
    /// let backend = future.init(StartOptions::new("e2ekit/demo-app"))?;
    /// # Ok::<(), e2ekit::Error>(())
    /// ```
    pub fn init(self, options: StartOptions) -> Result<Runnable> {
        Ok(Runnable::from(self.inner.init(options)?))
    }
}

/// A defined service; the blocking [`crate::Runnable`]. Cheap to clone.
///
/// ```no_run
/// # use e2ekit::prelude::*;
/// # let env = e2ekit::blocking::Environment::new()?;
/// let app = env.runnable("app").with_ports([("http", 8080)]).init(
///     StartOptions::new("e2ekit/demo-app").readiness(HttpProbe::new("http", "/ready")))?;
/// app.start()?;
/// app.wait_ready()?;
/// app.pause()?;
/// app.unpause()?;
/// app.stop()?;
/// # Ok::<(), e2ekit::Error>(())
/// ```
#[derive(Clone)]
pub struct Runnable {
    inner: crate::env::Runnable,
}

impl fmt::Debug for Runnable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

impl From<crate::env::Runnable> for Runnable {
    fn from(inner: crate::env::Runnable) -> Self {
        Runnable { inner }
    }
}

impl AsRunnable for Runnable {
    fn as_runnable(&self) -> &crate::env::Runnable {
        &self.inner
    }
}

/// Mirrors a synchronous method of the async runnable.
macro_rules! same {
    ($(#[$doc:meta])* fn $name:ident(&self $(, $arg:ident: $ty:ty)*) -> $ret:ty) => {
        $(#[$doc])*
        pub fn $name(&self $(, $arg: $ty)*) -> $ret {
            self.inner.$name($($arg),*)
        }
    };
}

/// Mirrors an async method of the async runnable, blocking.
macro_rules! blocking {
    ($(#[$doc:meta])* fn $name:ident(&self $(, $arg:ident: $ty:ty)*) -> $ret:ty) => {
        $(#[$doc])*
        pub fn $name(&self $(, $arg: $ty)*) -> Result<$ret> {
            block_on(concat!("Runnable::", stringify!($name)), self.inner.$name($($arg),*))?
        }
    };
}

impl Runnable {
    same! {
        /// The runnable's name.
        ///
        /// ```no_run
        /// # fn demo(r: e2ekit::blocking::Runnable) { println!("{}", r.name()); }
        /// ```
        fn name(&self) -> &str
    }
    same! {
        /// The container's name on the engine (`<environment>-<runnable>`).
        ///
        /// ```no_run
        /// # fn demo(r: e2ekit::blocking::Runnable) { println!("{}", r.container_name()); }
        /// ```
        fn container_name(&self) -> &str
    }
    same! {
        /// The runnable's own directory inside the shared directory.
        ///
        /// ```no_run
        /// # fn demo(r: e2ekit::blocking::Runnable) { println!("{}", r.dir().display()); }
        /// ```
        fn dir(&self) -> &Path
    }
    same! {
        /// The declared ports, name and container port.
        ///
        /// ```no_run
        /// # fn demo(r: e2ekit::blocking::Runnable) { println!("{:?}", r.ports()); }
        /// ```
        fn ports(&self) -> &[(String, u16)]
    }
    same! {
        /// The container port declared as `name`.
        ///
        /// ```no_run
        /// # fn demo(r: e2ekit::blocking::Runnable) -> e2ekit::Result<()> {
        /// assert_eq!(r.port("http")?, 8080);
        /// # Ok(()) }
        /// ```
        fn port(&self, name: &str) -> Result<u16>
    }
    same! {
        /// The options the runnable starts with.
        ///
        /// ```no_run
        /// # fn demo(r: e2ekit::blocking::Runnable) { println!("{:?}", r.options()); }
        /// ```
        fn options(&self) -> &StartOptions
    }
    same! {
        /// Whether the container runs (as e2ekit last saw it).
        ///
        /// ```no_run
        /// # fn demo(r: e2ekit::blocking::Runnable) { assert!(r.is_running()); }
        /// ```
        fn is_running(&self) -> bool
    }
    same! {
        /// `name:port` on the environment's network, for other runnables.
        ///
        /// ```no_run
        /// # fn demo(r: e2ekit::blocking::Runnable) -> e2ekit::Result<()> {
        /// println!("{}", r.internal_endpoint("http")?);
        /// # Ok(()) }
        /// ```
        fn internal_endpoint(&self, port: &str) -> Result<String>
    }
    same! {
        /// `host:port` at which this process reaches the port (running runnables only).
        ///
        /// ```no_run
        /// # fn demo(r: e2ekit::blocking::Runnable) -> e2ekit::Result<()> {
        /// let url = format!("http://{}/", r.endpoint("http")?);
        /// # Ok(()) }
        /// ```
        fn endpoint(&self, port: &str) -> Result<String>
    }
    same! {
        /// The container's own address on the environment's network, while running.
        ///
        /// ```no_run
        /// # fn demo(r: e2ekit::blocking::Runnable) { println!("{:?}", r.container_ip()); }
        /// ```
        fn container_ip(&self) -> Option<IpAddr>
    }
    same! {
        /// A value stored with the runnable (for upper layers and users).
        ///
        /// ```no_run
        /// # fn demo(r: e2ekit::blocking::Runnable) { println!("{:?}", r.metadata("role")); }
        /// ```
        fn metadata(&self, key: &str) -> Option<String>
    }

    same! {
        /// Like `endpoint`, as a socket address.
        ///
        /// ```no_run
        /// # fn demo(r: e2ekit::blocking::Runnable) -> e2ekit::Result<()> {
        /// let addr: std::net::SocketAddr = r.endpoint_addr("http")?;
        /// # Ok(()) }
        /// ```
        fn endpoint_addr(&self, port: &str) -> Result<std::net::SocketAddr>
    }
    same! {
        /// The engine's id of the container, once started.
        ///
        /// ```no_run
        /// # fn demo(r: e2ekit::blocking::Runnable) { println!("{:?}", r.container_id()); }
        /// ```
        fn container_id(&self) -> Option<String>
    }
    same! {
        /// The exit code once the container exited on its own.
        ///
        /// ```no_run
        /// # fn demo(r: e2ekit::blocking::Runnable) { println!("{:?}", r.exit_code()); }
        /// ```
        fn exit_code(&self) -> Option<i64>
    }
    blocking! {
        /// Copies a file or directory into the running container.
        ///
        /// ```no_run
        /// # fn demo(r: e2ekit::blocking::Runnable) -> e2ekit::Result<()> {
        /// r.copy_to(e2ekit::CopyFile::bytes(b"x".to_vec(), "/etc/x"))?;
        /// # Ok(()) }
        /// ```
        fn copy_to(&self, file: crate::spec::CopyFile) -> ()
    }
    blocking! {
        /// The content of a file in the container.
        ///
        /// ```no_run
        /// # fn demo(r: e2ekit::blocking::Runnable) -> e2ekit::Result<()> {
        /// let data = r.read_file("/etc/hostname")?;
        /// # Ok(()) }
        /// ```
        fn read_file(&self, path: &str) -> Vec<u8>
    }
    blocking! {
        /// Everything the container printed so far, stdout and stderr apart.
        ///
        /// ```no_run
        /// # fn demo(r: e2ekit::blocking::Runnable) -> e2ekit::Result<()> {
        /// println!("{}", r.output()?.stderr);
        /// # Ok(()) }
        /// ```
        fn output(&self) -> crate::spec::Output
    }

    /// Copies a file or directory of the container to `host_dest`.
    ///
    /// ```no_run
    /// # fn demo(r: e2ekit::blocking::Runnable) -> e2ekit::Result<()> {
    /// r.copy_from("/var/lib/app", "/tmp/app-state")?;
    /// # Ok(()) }
    /// ```
    pub fn copy_from(&self, path: &str, host_dest: impl AsRef<Path>) -> Result<()> {
        block_on(
            "Runnable::copy_from",
            self.inner.copy_from(path, host_dest.as_ref()),
        )?
    }

    /// Stores a value with the runnable.
    ///
    /// ```no_run
    /// # fn demo(r: e2ekit::blocking::Runnable) { r.set_metadata("role", "primary"); }
    /// ```
    pub fn set_metadata(&self, key: impl Into<String>, value: impl Into<String>) {
        self.inner.set_metadata(key, value)
    }

    blocking! {
        /// Sends a signal (`"SIGHUP"`, ...) to the container's main process.
        ///
        /// ```no_run
        /// # fn demo(r: e2ekit::blocking::Runnable) -> e2ekit::Result<()> {
        /// r.signal("SIGHUP")?;
        /// # Ok(()) }
        /// ```
        fn signal(&self, signal: &str) -> ()
    }
    blocking! {
        /// Creates and starts the container (again, after a kill or stop).
        ///
        /// ```no_run
        /// # fn demo(r: e2ekit::blocking::Runnable) -> e2ekit::Result<()> {
        /// r.start()?;
        /// # Ok(()) }
        /// ```
        fn start(&self) -> ()
    }
    blocking! {
        /// Waits until the readiness probe passes; fails fast when the container exits.
        ///
        /// ```no_run
        /// # fn demo(r: e2ekit::blocking::Runnable) -> e2ekit::Result<()> {
        /// r.start()?;
        /// r.wait_ready()?;
        /// # Ok(()) }
        /// ```
        fn wait_ready(&self) -> ()
    }

    /// Starts the runnable and waits until it is ready.
    ///
    /// ```no_run
    /// # fn demo(r: e2ekit::blocking::Runnable) -> e2ekit::Result<()> {
    /// r.start_and_wait_ready()?;
    /// # Ok(()) }
    /// ```
    pub fn start_and_wait_ready(&self) -> Result<()> {
        start_and_wait_ready(&[self])
    }

    blocking! {
        /// Stops the container gracefully (SIGTERM, then SIGKILL) and removes it.
        ///
        /// ```no_run
        /// # fn demo(r: e2ekit::blocking::Runnable) -> e2ekit::Result<()> {
        /// r.stop()?;
        /// # Ok(()) }
        /// ```
        fn stop(&self) -> ()
    }
    blocking! {
        /// Kills the container (SIGKILL); `start` brings it back.
        ///
        /// ```no_run
        /// # fn demo(r: e2ekit::blocking::Runnable) -> e2ekit::Result<()> {
        /// r.kill()?;
        /// r.start()?;
        /// # Ok(()) }
        /// ```
        fn kill(&self) -> ()
    }
    blocking! {
        /// Runs a command in the running container; fails on a non-zero exit.
        ///
        /// ```no_run
        /// # use e2ekit::prelude::*;
        /// # fn demo(r: e2ekit::blocking::Runnable) -> e2ekit::Result<()> {
        /// let out = r.exec(Command::new("cat").arg("/etc/hostname"))?;
        /// println!("{}", out.stdout);
        /// # Ok(()) }
        /// ```
        fn exec(&self, command: Command) -> ExecOutput
    }
    blocking! {
        /// [`Runnable::exec`] with options (standard input, user).
        ///
        /// ```no_run
        /// # use e2ekit::prelude::*;
        /// # fn demo(r: e2ekit::blocking::Runnable) -> e2ekit::Result<()> {
        /// r.exec_with(Command::new("cat"), ExecOptions::new().stdin("hello"))?;
        /// # Ok(()) }
        /// ```
        fn exec_with(&self, command: Command, options: ExecOptions) -> ExecOutput
    }
    blocking! {
        /// Freezes every process of the container.
        ///
        /// ```no_run
        /// # fn demo(r: e2ekit::blocking::Runnable) -> e2ekit::Result<()> {
        /// r.pause()?;
        /// # Ok(()) }
        /// ```
        fn pause(&self) -> ()
    }
    blocking! {
        /// Thaws a paused container.
        ///
        /// ```no_run
        /// # fn demo(r: e2ekit::blocking::Runnable) -> e2ekit::Result<()> {
        /// r.unpause()?;
        /// # Ok(()) }
        /// ```
        fn unpause(&self) -> ()
    }
    blocking! {
        /// Takes the container off the environment's network (a partition).
        ///
        /// ```no_run
        /// # fn demo(r: e2ekit::blocking::Runnable) -> e2ekit::Result<()> {
        /// r.disconnect()?;
        /// # Ok(()) }
        /// ```
        fn disconnect(&self) -> ()
    }
    blocking! {
        /// Puts a disconnected container back on the network (heals the partition).
        ///
        /// ```no_run
        /// # fn demo(r: e2ekit::blocking::Runnable) -> e2ekit::Result<()> {
        /// r.connect()?;
        /// # Ok(()) }
        /// ```
        fn connect(&self) -> ()
    }

    /// The async runnable this wraps, for what is not mirrored here.
    ///
    /// ```no_run
    /// # fn demo(r: e2ekit::blocking::Runnable) { let _async: &e2ekit::Runnable = r.as_async(); }
    /// ```
    pub fn as_async(&self) -> &crate::env::Runnable {
        &self.inner
    }
}

/// Starts all runnables concurrently and waits for each to be ready; returns the first error.
/// The blocking [`crate::start_and_wait_ready`]; takes blocking and async runnables alike.
///
/// ```no_run
/// # fn demo(a: e2ekit::blocking::Runnable, b: e2ekit::blocking::Runnable) -> e2ekit::Result<()> {
/// e2ekit::blocking::start_and_wait_ready(&[&a, &b])?;
/// # Ok(()) }
/// ```
pub fn start_and_wait_ready(runnables: &[&dyn AsRunnable]) -> Result<()> {
    block_on(
        "start_and_wait_ready",
        crate::env::start_and_wait_ready(runnables),
    )?
}

/// A runnable that exposes Prometheus metrics; the blocking [`crate::Instrumented`]. Derefs to
/// its blocking [`Runnable`].
///
/// ```no_run
/// # use e2ekit::prelude::*;
/// # fn demo(app: e2ekit::blocking::Runnable) -> e2ekit::Result<()> {
/// let app = e2ekit::blocking::Instrumented::new(app, "http")?;
/// app.start_and_wait_ready()?;
/// app.wait_sum_metrics(greater(0.0), ["demo_requests_total"])?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Instrumented {
    runnable: Runnable,
    inner: Arc<crate::metrics::Instrumented>,
}

impl fmt::Debug for Instrumented {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

impl Instrumented {
    /// Marks `runnable` as serving metrics on its port `metrics_port` at `/metrics`.
    ///
    /// ```no_run
    /// # fn demo(app: e2ekit::blocking::Runnable) -> e2ekit::Result<()> {
    /// let app = e2ekit::blocking::Instrumented::new(app, "http")?;
    /// # Ok(()) }
    /// ```
    pub fn new(runnable: Runnable, metrics_port: &str) -> Result<Self> {
        let inner = crate::metrics::Instrumented::new(runnable.inner.clone(), metrics_port)?;
        Ok(Instrumented {
            runnable,
            inner: Arc::new(inner),
        })
    }

    /// Wraps an async instrumented runnable.
    fn with(inner: crate::metrics::Instrumented) -> Self {
        Instrumented {
            runnable: Runnable::from(inner.runnable().clone()),
            inner: Arc::new(inner),
        }
    }

    fn map(
        self,
        f: impl FnOnce(crate::metrics::Instrumented) -> crate::metrics::Instrumented,
    ) -> Self {
        let inner = Arc::try_unwrap(self.inner).unwrap_or_else(|shared| (*shared).clone());
        Self::with(f(inner))
    }

    /// The metrics path (default `/metrics`).
    ///
    /// ```no_run
    /// # fn demo(app: e2ekit::blocking::Instrumented) { let app = app.metrics_path("/stats"); }
    /// ```
    pub fn metrics_path(self, path: impl Into<String>) -> Self {
        self.map(|i| i.metrics_path(path))
    }

    /// Fetches the metrics over HTTPS.
    ///
    /// ```no_run
    /// # fn demo(app: e2ekit::blocking::Instrumented) { let app = app.https(); }
    /// ```
    pub fn https(self) -> Self {
        self.map(|i| i.https())
    }

    /// The default wait policy of this runnable's metric waits.
    ///
    /// ```no_run
    /// # use e2ekit::prelude::*;
    /// # fn demo(app: e2ekit::blocking::Instrumented) {
    /// let app = app.wait_policy(WaitPolicy::timeout(Duration::from_secs(30)));
    /// # }
    /// ```
    pub fn wait_policy(self, policy: WaitPolicy) -> Self {
        self.map(|i| i.wait_policy(policy))
    }

    /// The runnable.
    ///
    /// ```no_run
    /// # fn demo(app: e2ekit::blocking::Instrumented) { println!("{}", app.runnable().name()); }
    /// ```
    pub fn runnable(&self) -> &Runnable {
        &self.runnable
    }

    /// The name of the metrics port.
    ///
    /// ```no_run
    /// # fn demo(app: e2ekit::blocking::Instrumented) { assert_eq!(app.metrics_port(), "http"); }
    /// ```
    pub fn metrics_port(&self) -> &str {
        self.inner.metrics_port()
    }

    /// The URL this process fetches the metrics from.
    ///
    /// ```no_run
    /// # fn demo(app: e2ekit::blocking::Instrumented) -> e2ekit::Result<()> {
    /// println!("{}", app.metrics_url()?);
    /// # Ok(()) }
    /// ```
    pub fn metrics_url(&self) -> Result<String> {
        self.inner.metrics_url()
    }

    /// Fetches the metrics text.
    ///
    /// ```no_run
    /// # fn demo(app: e2ekit::blocking::Instrumented) -> e2ekit::Result<()> {
    /// let text = app.metrics()?;
    /// # Ok(()) }
    /// ```
    pub fn metrics(&self) -> Result<String> {
        block_on("Instrumented::metrics", self.inner.metrics())?
    }

    /// The sum of each named metric's matching series.
    ///
    /// ```no_run
    /// # use e2ekit::prelude::*;
    /// # fn demo(app: e2ekit::blocking::Instrumented) -> e2ekit::Result<()> {
    /// let sums = app.sum_metrics(["demo_requests_total"], MetricsOptions::new())?;
    /// # Ok(()) }
    /// ```
    pub fn sum_metrics<I, S>(&self, names: I, options: MetricsOptions) -> Result<Vec<f64>>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        block_on(
            "Instrumented::sum_metrics",
            self.inner.sum_metrics(names, options),
        )?
    }

    /// Waits until the sums of the named metrics meet the expectation, with default options.
    ///
    /// ```no_run
    /// # use e2ekit::prelude::*;
    /// # fn demo(app: e2ekit::blocking::Instrumented) -> e2ekit::Result<()> {
    /// app.wait_sum_metrics(greater_or_equal(10.0), ["demo_requests_total"])?;
    /// # Ok(()) }
    /// ```
    pub fn wait_sum_metrics<I, S>(&self, expectation: Expectation, names: I) -> Result<()>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        block_on(
            "Instrumented::wait_sum_metrics",
            self.inner.wait_sum_metrics(expectation, names),
        )?
    }

    /// Waits until the sums of the named metrics meet the expectation.
    ///
    /// ```no_run
    /// # use e2ekit::prelude::*;
    /// # fn demo(app: e2ekit::blocking::Instrumented) -> e2ekit::Result<()> {
    /// app.wait_sum_metrics_with(
    ///     equals(0.0),
    ///     ["demo_requests_total"],
    ///     MetricsOptions::new().skip_missing_metrics(),
    /// )?;
    /// # Ok(()) }
    /// ```
    pub fn wait_sum_metrics_with<I, S>(
        &self,
        expectation: Expectation,
        names: I,
        options: MetricsOptions,
    ) -> Result<()>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        block_on(
            "Instrumented::wait_sum_metrics_with",
            self.inner
                .wait_sum_metrics_with(expectation, names, options),
        )?
    }

    /// Waits until no series of the metric (matching the options' matchers) is exposed.
    ///
    /// ```no_run
    /// # use e2ekit::prelude::*;
    /// # fn demo(app: e2ekit::blocking::Instrumented) -> e2ekit::Result<()> {
    /// app.wait_removed_metric("demo_sessions", MetricsOptions::new())?;
    /// # Ok(()) }
    /// ```
    pub fn wait_removed_metric(&self, name: &str, options: MetricsOptions) -> Result<()> {
        block_on(
            "Instrumented::wait_removed_metric",
            self.inner.wait_removed_metric(name, options),
        )?
    }

    /// The async instrumented runnable this wraps.
    ///
    /// ```no_run
    /// # fn demo(app: e2ekit::blocking::Instrumented) { let _a: &e2ekit::Instrumented = app.as_async(); }
    /// ```
    pub fn as_async(&self) -> &crate::metrics::Instrumented {
        &self.inner
    }
}

impl Deref for Instrumented {
    type Target = Runnable;

    fn deref(&self) -> &Runnable {
        &self.runnable
    }
}

impl AsRunnable for Instrumented {
    fn as_runnable(&self) -> &crate::env::Runnable {
        &self.runnable.inner
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn inside_a_runtime_every_call_fails_and_says_to_use_the_async_api() {
        let err = Environment::builder()
            .name("never-built")
            .build()
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("inside an async runtime"), "{text}");
        assert!(
            text.contains("use the async API there (e2ekit::EnvironmentBuilder::build(..).await)"),
            "{text}"
        );
    }

    #[test]
    fn outside_a_runtime_futures_run_on_e2ekits_runtime() {
        let on_runtime = block_on("test", async {
            tokio::task::yield_now().await;
            tokio::runtime::Handle::try_current().is_ok()
        })
        .expect("not inside a runtime");
        assert!(on_runtime);
        // Background work spawned by a call runs on the runtime's workers after it returns.
        let (tx, rx) = std::sync::mpsc::channel();
        block_on("test", async move {
            tokio::spawn(async move {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                let _ = tx.send(std::thread::current().name().map(str::to_string));
            });
        })
        .expect("spawn");
        let worker = rx
            .recv_timeout(std::time::Duration::from_secs(5))
            .expect("the spawned task ran");
        assert_eq!(worker.as_deref(), Some("e2ekit-bg"));
    }
}
