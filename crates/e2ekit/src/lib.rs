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
//! watching the whole scenario in [`monitoring`]; Parca and pprof in [`profiling`].
//!
//! Every container and network carries the label `e2ekit.env=<environment name>`.

#![warn(missing_docs)]

mod backend;
pub mod db;
mod docker;
pub mod env;
pub mod error;
mod files;
pub mod flags;
pub mod image;
pub mod interactive;
pub mod labels;
pub mod metrics;
pub mod monitoring;
mod naming;
pub mod options;
pub mod probe;
pub mod profiling;
mod root_cleanup;
pub mod runnable;
pub mod sweep;

pub use env::{Environment, EnvironmentBuilder, EnvironmentListener};
pub use error::{Error, LogTail, MetricsWaitFailure, Result};
pub use flags::Flags;
pub use image::{cargo_bin, containerize, Containerized, HostImage};
pub use metrics::{
    between, equals, equals_among_two, greater, greater_among_two, greater_or_equal, less,
    less_among_two, less_or_equal, CompositeInstrumented, Expectation, Instrumented, Matcher,
    MetricsOptions, StaticMetricsServer,
};
pub use options::{Command, StartOptions};
pub use probe::{AllProbe, CmdProbe, HttpProbe, LogProbe, Probe, TcpProbe, WaitPolicy};
pub use runnable::{
    start_and_wait_ready, AsRunnable, ExecOptions, ExecOutput, FutureRunnable, Runnable,
    RunnableBuilder,
};

/// Everything a scenario needs, in one import.
pub mod prelude {
    pub use crate::db;
    pub use crate::env::{Environment, EnvironmentBuilder, EnvironmentListener};
    pub use crate::error::{Error, Result};
    pub use crate::flags::Flags;
    pub use crate::image::{cargo_bin, containerize, HostImage};
    pub use crate::interactive;
    pub use crate::metrics::{
        between, equals, equals_among_two, greater, greater_among_two, greater_or_equal, less,
        less_among_two, less_or_equal, CompositeInstrumented, Expectation, Instrumented, Matcher,
        MetricsOptions, StaticMetricsServer,
    };
    pub use crate::monitoring::{self, Monitoring, MonitoringOptions, Sample, Series};
    pub use crate::options::{Command, StartOptions};
    pub use crate::probe::{AllProbe, CmdProbe, HttpProbe, LogProbe, Probe, TcpProbe, WaitPolicy};
    pub use crate::profiling::{self, Observable};
    pub use crate::runnable::{
        start_and_wait_ready, AsRunnable, ExecOptions, ExecOutput, FutureRunnable, Runnable,
        RunnableBuilder,
    };
    pub use std::time::Duration;
}
