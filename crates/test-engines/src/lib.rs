//! Private Docker engines for tests: each a separate `dockerd` in its own Linux network
//! namespace, with its own data-root, API socket and address, torn down completely when
//! dropped.
//!
//! e2ekit's engine-fault tests use them to kill, freeze and restart an engine without
//! touching the machine's main engine; [`Cluster`] prepares several that can reach each other,
//! for Docker Swarm tests. Everything needs root and the tools `dockerd`, `nsenter`, `ip` and
//! `iptables`.
//!
//! ```no_run
//! use e2ekit_test_engines::PrivateEngine;
//! use std::process::Command;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut engine = PrivateEngine::builder().tcp(true).start()?;
//! let status = Command::new("docker")
//!     .args(["-H", &engine.docker_host(), "info"])
//!     .status()?;
//! assert!(status.success());
//!
//! engine.kill()?; // dockerd gone, containers keep running
//! assert!(engine.ping().is_err());
//! engine.restart()?; // same data, same socket
//! engine.ping()?;
//!
//! engine.stop()?; // or just drop it
//! # Ok(())
//! # }
//! ```
//!
//! # What a node consists of
//!
//! For index N (1..=250): network namespace `e2ekit-eng-N`; veth `e2k-hN` (host,
//! `10.250.N.1/24`) to `eth0` (node, `10.250.N.2/24`, default route via the host side);
//! `/run/e2ekit-test-engines/N.lock` (held with `flock` by the owner); state directory
//! `/run/e2ekit-test-engines/N/` (config, engine key, log, pid file, exec-root); data-root
//! `/var/lib/e2ekit-test-engines/N/`; socket `/run/e2ekit-eng-N.sock`; cgroup parent
//! `/e2ekit-eng-N`.
//!
//! # Stale engines
//!
//! A process killed with SIGKILL cannot drop its engines; they keep running. Their locks are
//! free, though, so the next [`PrivateEngine::start`] (in any process) or [`reap_all`], or
//! `e2ekit-test-engines reap`, tears them down.

mod cluster;
mod engine;
mod error;
mod node;
mod sys;

pub use cluster::Cluster;
pub use engine::{Builder, PrivateEngine};
pub use error::Error;
pub use node::{list, reap_all, NodeInfo, Reaped, MAX_INDEX};
pub use sys::IndexLock;

pub(crate) use node::node_name;
