//! # e2ekit
//!
//! Run complex workload scenarios in isolation on a container engine: many services, each in
//! its own container on a private network, started, probed, measured through their
//! Prometheus metrics, broken on purpose, and torn down without a trace. For integration and
//! end-to-end tests under `cargo test`, interactive setups and benchmarks.
//!
//! ```no_run
//! use e2ekit::prelude::*;
//!
//! # async fn scenario() -> e2ekit::Result<()> {
//! let env = Environment::new().await?; // named after the calling test
//! let image = HostImage::new("e2ekit/demo-app").binary("target/debug/demo-app").build(&env).await?;
//!
//! let app = env.runnable("app")
//!     .with_ports([("http", 8080)])
//!     .init(StartOptions::new(image.clone())
//!         .command(Command::new("/bin/demo-app").args(["--listen", ":8080"]))
//!         .readiness(HttpProbe::new("http", "/ready")))?;
//! let peer = env.runnable("peer")
//!     .with_ports([("http", 9090)])
//!     .init(StartOptions::new(image)
//!         .command(Command::new("/bin/demo-app").args(["--listen", ":9090"]))
//!         .readiness(TcpProbe::new("http")))?;
//!
//! start_and_wait_ready(&[&app, &peer]).await?;
//! println!("app answers on http://{}", app.endpoint("http")?);
//! peer.disconnect().await?; // partition
//! peer.connect().await?;    // heal
//! env.close().await;        // also on drop, even while a test panics
//! # Ok(()) }
//! ```
//!
//! Ready-made services (Prometheus, etcd, MinIO, Thanos, ...) are in [`db`]; a Prometheus
//! watching the whole scenario in [`monitoring`]; PromQL queries against any Prometheus API
//! with [`prometheus::PromQl`]; Parca and pprof in [`profiling`].
//!
//! Every container and network carries the label `e2ekit.env=<environment name>`.
//!
//! ## Cargo features
//!
//! Both on by default; `default-features = false` compiles a lean core.
//! - `chart`: [`monitoring::chart`], PNG charts of range queries (plotters, png).
//! - `tls`: `db::Certificates` and the catalog's TLS and server-side-encryption options
//!   (rcgen, ring, base64). Without it those options fail with a clear error.

#![warn(missing_docs)]

// Layers, bottom to top; a module imports only from layers below it (checked by
// `.ci/check-layers`, explained in ARCHITECTURE.md):
//   error, wait -> spec -> host -> engine -> env -> metrics -> prometheus
//   -> monitoring, profiling -> db -> interactive, sweep, blocking, testing, bin
pub mod error;
mod runtime;
mod wait;

mod spec;

mod host;

mod engine;

#[doc(hidden)]
pub mod env;

pub mod metrics;

pub mod prometheus;

pub mod monitoring;
pub mod profiling;

pub mod db;

pub mod blocking;
pub mod interactive;
pub mod sweep;
mod testing;

/// Support for what `#[e2ekit::test]` expands to; not an API.
#[doc(hidden)]
pub mod __private {
    pub use crate::testing::{check_outcome, run_test, Flavor, TestFailure, TestOutcome, TestSpec};
}

/// Runs an async test on its own environment: `#[e2ekit::test]`.
///
/// The test takes the environment as its one argument and returns `e2ekit::Result<()>` or
/// nothing. The attribute builds a Tokio runtime (current-thread; options below), an
/// environment named after the test's full path, runs the test, and then:
///
/// - the test returns `Ok` (or nothing): the environment is closed; nothing is left.
/// - the test returns `Err`: the error's full report is printed and the test fails; the
///   environment is closed, or with `E2EKIT_KEEP_ON_FAILURE=1` kept, with each runnable's
///   address and the command that removes it printed.
/// - the test panics: the same, through the environment's drop guard.
///
/// ```no_run
/// use e2ekit::prelude::*;
///
/// #[e2ekit::test]
/// async fn backend_answers(env: Environment) -> e2ekit::Result<()> {
///     // env.name() == "mycrate-tests-backend-answers" for mycrate::tests::backend_answers
///     let app = env.runnable("app").with_ports([("http", 8080)]).init(
///         StartOptions::new("e2ekit/demo-app")
///             .command(Command::new("/bin/demo-app").args(["--listen", ":8080"]))
///             .readiness(HttpProbe::new("http", "/ready")),
///     )?;
///     app.start().await?;
///     app.wait_ready().await?;
///     Ok(()) // closed after the test
/// }
///
/// #[e2ekit::test(flavor = "multi_thread", worker_threads = 2, name = "my-scenario")]
/// async fn on_two_workers(env: Environment) {
///     assert_eq!(env.name(), "my-scenario");
/// }
/// # fn main() {}
/// ```
///
/// **Options** (all optional): `flavor = "current_thread"` (default) or `"multi_thread"`,
/// `worker_threads = N` (multi-thread only; default one per core), as for `#[tokio::test]`;
/// `name = "..."`, an explicit environment name; `crate = "path"`, where e2ekit is when it was
/// renamed in `Cargo.toml`.
///
/// **The environment's name** is the test's full path (`module_path!()` and the function:
/// `mycrate::tests::backend_answers`), lowercased, each run of other characters made one `-`:
/// `mycrate-tests-backend-answers`. Longer than 40 characters, it keeps the function name and
/// as much of the module path as fits, and ends in six hex digits of a stable hash of the full
/// path: `my_crate::integration::storage::replication::survives_partition` becomes
/// `my-crate-integ-survives-partition-` and the hash. The name is the same on every run, so
/// leftovers of a killed run are found and removed.
///
/// **Wrong signatures** are compile errors that point at the offending part and say what is
/// expected. A test with no environment is refused: use `#[tokio::test]` there. Plain
/// `#[tokio::test]` with `Environment::new()` keeps working, but it cannot keep the
/// environment when the test fails by returning `Err` (only on panic); this attribute can.
///
/// Import the attribute by path (`#[e2ekit::test]`). `use e2ekit::*` would bring `test` into
/// scope beside the built-in `#[test]`, which the compiler then calls ambiguous; import
/// `e2ekit::prelude::*` instead, which does not contain it.
#[doc(inline)]
pub use e2ekit_macros::test;

pub use engine::{Engine, ExecOutput};
pub use env::{
    cargo_bin, containerize, start_and_wait_ready, AsRunnable, Containerized, Environment,
    EnvironmentBuilder, EnvironmentListener, ExecOptions, FutureRunnable, Runnable,
    RunnableBuilder, Shared,
};
pub use error::DockerfileBuildFailure;
pub use error::{Error, LogTail, MetricsWaitFailure, Result};
pub use host::DockerfileImage;
pub use host::{labels, HostImage};
pub use metrics::{
    between, equals, equals_among_two, greater, greater_among_two, greater_or_equal, less,
    less_among_two, less_or_equal, CompositeInstrumented, Expectation, Instrumented, Matcher,
    MetricsOptions, StaticMetricsServer,
};
pub use spec::{
    AllProbe, CmdProbe, Command, Flags, HttpProbe, LogProbe, Probe, StartOptions, TcpProbe,
};
pub use spec::{CopyFile, Output, OutputLine};
pub use spec::{CustomProbe, HealthCheck, HealthProbe, ProbeContext};
pub use wait::WaitPolicy;

/// Old module paths, kept so code written against them still compiles. Use the root
/// re-exports (`e2ekit::Runnable`, ...) instead.
#[doc(hidden)]
pub mod runnable {
    pub use crate::engine::ExecOutput;
    pub use crate::env::{
        start_and_wait_ready, AsRunnable, ExecOptions, FutureRunnable, Runnable, RunnableBuilder,
    };
}
#[doc(hidden)]
pub mod options {
    pub use crate::spec::{Command, StartOptions};
}
#[doc(hidden)]
pub mod probe {
    pub use crate::spec::{AllProbe, CmdProbe, HttpProbe, LogProbe, Probe, TcpProbe};
    pub use crate::wait::WaitPolicy;
}
#[doc(hidden)]
pub mod image {
    pub use crate::env::{cargo_bin, containerize, Containerized};
    pub use crate::host::HostImage;
}
#[doc(hidden)]
pub mod flags {
    pub use crate::spec::flags::build_args;
    pub use crate::spec::Flags;
}

/// Everything a scenario needs, in one import.
pub mod prelude {
    pub use crate::db;
    pub use crate::engine::{Engine, ExecOutput};
    pub use crate::env::{
        cargo_bin, containerize, start_and_wait_ready, AsRunnable, Environment, EnvironmentBuilder,
        EnvironmentListener, ExecOptions, FutureRunnable, Runnable, RunnableBuilder, Shared,
    };
    pub use crate::error::{Error, Result};
    pub use crate::host::HostImage;
    pub use crate::interactive;
    pub use crate::metrics::{
        between, equals, equals_among_two, greater, greater_among_two, greater_or_equal, less,
        less_among_two, less_or_equal, CompositeInstrumented, Expectation, Instrumented, Matcher,
        MetricsOptions, StaticMetricsServer,
    };
    pub use crate::monitoring::{self, Monitoring, MonitoringOptions, Sample, Series};
    pub use crate::profiling::{self, Observable};
    pub use crate::prometheus::PromQl;
    pub use crate::spec::{
        AllProbe, CmdProbe, Command, Flags, HttpProbe, LogProbe, Probe, StartOptions, TcpProbe,
    };
    pub use crate::spec::{CopyFile, Output, OutputLine};
    pub use crate::wait::WaitPolicy;
    pub use std::time::Duration;
    // Readiness by health check or a custom probe; images from a Dockerfile (issue 13).
    pub use crate::host::DockerfileImage;
    pub use crate::spec::{CustomProbe, HealthCheck, HealthProbe, ProbeContext};
}
