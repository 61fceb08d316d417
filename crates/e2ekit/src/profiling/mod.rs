//! Profiling: a Parca that continuously collects pprof profiles from every profiled runnable
//! (started before or after it), and the wrappers that mark runnables as profiled.
//!
//! A runnable is profiled when wrapped in [`Profiled`] (pprof handlers on a named port) or
//! [`Observable`] (Prometheus metrics and pprof on the same port, as Go services usually
//! serve them). [`start`] runs Parca and keeps one scrape job per running profiled runnable:
//! it rewrites Parca's configuration file whenever a runnable starts or stops, and Parca
//! reloads it by itself.
//!
//! ```no_run
//! use e2ekit::prelude::*;
//!
//! # async fn demo(env: &Environment, app: Runnable) -> e2ekit::Result<()> {
//! let prof = profiling::start(env).await?;
//! let app = Observable::new(app, "http")?; // /metrics and /debug/pprof/ on port "http"
//! start_and_wait_ready(&[&app]).await?;
//! println!("profiles of {}: {}", app.name(), prof.ui_url()?);
//! # Ok(()) }
//! ```
//!
//! Unlike upstream e2e, the test process itself is not profiled: Rust has no built-in pprof
//! endpoint to serve. A process that wants it can serve one (e.g. with a pprof crate) and
//! scrape it with [`Parca::set_scrape_configs`] on a Parca of its own.

pub(crate) mod parca;
mod profiled;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

pub use parca::{Parca, PARCA_IMAGE};
pub use profiled::Profiled;

use crate::env::{AsRunnable, Runnable};
use crate::env::{Environment, EnvironmentListener};
use crate::error::Result;
use crate::metrics::Instrumented;
use crate::spec::{Flags, StartOptions};
use crate::wait::WaitPolicy;

/// A runnable that is both instrumented (Prometheus metrics) and profiled (pprof handlers), on
/// the same port. It dereferences to [`Instrumented`], so metric waits work on it directly,
/// and it stays a runnable for [`crate::start_and_wait_ready`].
///
/// ```no_run
/// use e2ekit::prelude::*;
///
/// # async fn demo(app: Runnable) -> e2ekit::Result<()> {
/// let app = Observable::new(app, "http")?;
/// start_and_wait_ready(&[&app]).await?;
/// app.wait_sum_metrics(greater(0.0), ["demo_requests_total"]).await?;
/// println!("pprof: {}", app.profiled().pprof_url()?);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Observable {
    instrumented: Instrumented,
    profiled: Profiled,
}

impl fmt::Debug for Observable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Observable")
            .field("runnable", self.instrumented.runnable())
            .field("port", &self.instrumented.metrics_port())
            .field("scheme", &self.profiled.scheme())
            .field("profiling_config", &self.profiled.profiling_config())
            .finish()
    }
}

impl Observable {
    /// Metrics at `/metrics` and pprof handlers at `/debug/pprof/`, over HTTP on the named
    /// port. Errors if the runnable has no such port.
    pub fn new(runnable: Runnable, port: &str) -> Result<Self> {
        let instrumented = Instrumented::new(runnable.clone(), port)?;
        let profiled = Profiled::new(runnable, port)?;
        Ok(Self {
            instrumented,
            profiled,
        })
    }

    /// Both metrics and profiles are fetched over HTTPS (certificates are not verified).
    pub fn https(self) -> Self {
        Self {
            instrumented: self.instrumented.https(),
            profiled: self.profiled.https(),
        }
    }

    /// Another metrics path (pprof stays at `/debug/pprof/`, or see
    /// [`Observable::profiling_config`]'s `path_prefix`).
    pub fn metrics_path(self, path: impl Into<String>) -> Self {
        Self {
            instrumented: self.instrumented.metrics_path(path),
            ..self
        }
    }

    /// Parca's `profiling_config` for this runnable; see [`Profiled::config`].
    pub fn profiling_config(self, config: serde_json::Value) -> Self {
        Self {
            profiled: self.profiled.config(config),
            ..self
        }
    }

    /// The wait policy of metric waits; see [`Instrumented::wait_policy`].
    pub fn wait_policy(self, policy: WaitPolicy) -> Self {
        Self {
            instrumented: self.instrumented.wait_policy(policy),
            ..self
        }
    }

    /// The instrumented side (also reachable through `Deref`).
    pub fn instrumented(&self) -> &Instrumented {
        &self.instrumented
    }

    /// The profiled side.
    pub fn profiled(&self) -> &Profiled {
        &self.profiled
    }
}

impl std::ops::Deref for Observable {
    type Target = Instrumented;
    fn deref(&self) -> &Instrumented {
        &self.instrumented
    }
}

impl AsRunnable for Observable {
    fn as_runnable(&self) -> &Runnable {
        self.instrumented.runnable()
    }
}

/// Options of [`start_with`].
#[derive(Debug, Clone)]
pub struct ProfilingOptions {
    scrape_interval: Duration,
    image: Option<String>,
    name: String,
}

impl Default for ProfilingOptions {
    fn default() -> Self {
        Self {
            scrape_interval: Duration::from_secs(5),
            image: None,
            name: "profiling".to_string(),
        }
    }
}

impl ProfilingOptions {
    /// Defaults: profiles collected every 5 s by [`PARCA_IMAGE`], in a runnable named
    /// `profiling`.
    pub fn new() -> Self {
        Self::default()
    }

    /// How often Parca collects profiles (Parca gives each collection this long plus 3 s).
    pub fn scrape_interval(mut self, interval: Duration) -> Self {
        self.scrape_interval = interval;
        self
    }

    /// The Parca image (it must keep the official layout: `/parca`).
    pub fn parca_image(mut self, image: impl Into<String>) -> Self {
        self.image = Some(image.into());
        self
    }

    /// The Parca runnable's name (default `profiling`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }
}

/// A running profiling setup; see [`start`].
#[derive(Debug, Clone)]
pub struct Profiling {
    parca: Parca,
}

/// Starts profiling with default options.
pub async fn start(env: &Environment) -> Result<Profiling> {
    start_with(env, ProfilingOptions::new()).await
}

/// Keeps Parca's scrape jobs equal to the running profiled runnables.
struct Watcher {
    config: parca::ConfigFile,
    scrape_interval: Duration,
}

impl EnvironmentListener for Watcher {
    fn on_change(&self, running: &[Runnable]) -> Result<()> {
        let targets = profiled::targets(running);
        self.config
            .set_scrape_configs(&parca::scrape_configs(&targets, self.scrape_interval))
    }
}

/// Starts Parca and has it follow every profiled runnable of the environment; returns once
/// Parca is ready.
pub async fn start_with(env: &Environment, options: ProfilingOptions) -> Result<Profiling> {
    let image = options.image.as_deref().unwrap_or(PARCA_IMAGE);
    let parca = parca::define(env, &options.name, StartOptions::new(image), &Flags::new())?;
    // The listener is told about every start and stop from now on, Parca's own start
    // included, which picks up the profiled runnables already running.
    env.add_listener(Arc::new(Watcher {
        config: parca.config_file().clone(),
        scrape_interval: options.scrape_interval,
    }));
    crate::env::start_and_wait_ready(&[&parca]).await?;
    Ok(Profiling { parca })
}

impl Profiling {
    /// The Parca runnable.
    pub fn parca(&self) -> &Parca {
        &self.parca
    }

    /// The Parca web UI, as reachable from the host.
    pub fn ui_url(&self) -> Result<String> {
        Ok(format!("http://{}", self.parca.endpoint(parca::PORT_NAME)?))
    }

    /// Opens the Parca web UI in the default browser.
    pub fn open_user_interface_in_browser(&self) -> Result<()> {
        crate::host::browser::open_in_browser(&self.ui_url()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_default_to_five_seconds_and_the_official_image() {
        let o = ProfilingOptions::new();
        assert_eq!(o.scrape_interval, Duration::from_secs(5));
        assert_eq!(o.image, None);
        assert_eq!(o.name, "profiling");
        let o = o
            .scrape_interval(Duration::from_secs(1))
            .parca_image("parca:dev")
            .name("prof");
        assert_eq!(o.scrape_interval, Duration::from_secs(1));
        assert_eq!(o.image.as_deref(), Some("parca:dev"));
        assert_eq!(o.name, "prof");
    }
}
