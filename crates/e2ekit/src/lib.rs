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
//   -> monitoring, profiling -> db -> interactive, sweep, bin
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

pub mod interactive;
pub mod sweep;

pub use engine::{Engine, ExecOutput};
pub use env::{
    cargo_bin, containerize, start_and_wait_ready, AsRunnable, Containerized, Environment,
    EnvironmentBuilder, EnvironmentListener, ExecOptions, FutureRunnable, Runnable,
    RunnableBuilder, Shared,
};
pub use error::{Error, LogTail, MetricsWaitFailure, Result};
pub use host::{labels, HostImage};
pub use metrics::{
    between, equals, equals_among_two, greater, greater_among_two, greater_or_equal, less,
    less_among_two, less_or_equal, CompositeInstrumented, Expectation, Instrumented, Matcher,
    MetricsOptions, StaticMetricsServer,
};
pub use spec::{
    AllProbe, CmdProbe, Command, Flags, HttpProbe, LogProbe, Probe, StartOptions, TcpProbe,
};
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
    pub use crate::wait::WaitPolicy;
    pub use std::time::Duration;
}
