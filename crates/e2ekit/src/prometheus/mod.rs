//! Prometheus: the one server definition behind `db::prometheus` and `monitoring`, and
//! [`PromQl`], a typed PromQL client for anything that speaks the
//! Prometheus HTTP API (Prometheus itself, a Thanos querier, ...).
//!
//! ```no_run
//! use e2ekit::prelude::*;
//!
//! # async fn demo(env: &Environment) -> e2ekit::Result<()> {
//! let prom = db::prometheus(env, "prom-1", db::Options::new())?;
//! start_and_wait_ready(&[&prom]).await?;
//!
//! let q = PromQl::of(&prom, db::ACCESS_PORT)?; // or PromQl::new("127.0.0.1:9090")
//! let up: Vec<Sample> = q.wait("up", |up| !up.is_empty(), WaitPolicy::default()).await?;
//! assert_eq!(up[0].label("job"), Some("myself"));
//! println!("{}", up[0]); // up{instance="...", job="myself", prometheus="prom-1"} => 1
//! # Ok(()) }
//! ```
//!
//! Without registry access, [`host_image`] packs the host's Prometheus (Debian's `prometheus`
//! package) into an image with the official layout; `monitoring::start` falls back to it by
//! itself when the official image cannot be pulled.

pub(crate) mod config;
pub(crate) mod image;
mod query;
pub(crate) mod server;

pub use image::host_image;
pub use query::{PromQl, Sample, Series};
