//! Runnables that serve Go-style pprof HTTP handlers, marked so profiling can find them.

use std::fmt;
use std::ops::Deref;

use crate::env::{AsRunnable, Runnable};
use crate::error::{Error, Result};

/// Metadata keys marking a profiled runnable's pprof endpoint.
pub(crate) const META_PPROF_PORT: &str = "e2ekit.pprof.port";
pub(crate) const META_PPROF_SCHEME: &str = "e2ekit.pprof.scheme";
/// The Parca `profiling_config` of the runnable, as compact JSON (absent: Parca's defaults).
pub(crate) const META_PPROF_CONFIG: &str = "e2ekit.pprof.config";

/// A runnable exposing pprof HTTP handlers (`/debug/pprof/...`) on a named port. Once it
/// runs, [`crate::profiling::start`] has Parca collect its profiles. It stays a runnable: it
/// dereferences to [`Runnable`] and works with [`crate::start_and_wait_ready`].
///
/// ```no_run
/// use e2ekit::prelude::*;
/// use e2ekit::profiling::Profiled;
///
/// # async fn demo(app: Runnable) -> e2ekit::Result<()> {
/// let app = Profiled::new(app, "http")?
///     // Parca's `profiling_config`: here, only CPU and heap profiles.
///     .config(serde_json::json!({"pprof_config": {
///         "block": {"enabled": false},
///         "mutex": {"enabled": false},
///         "goroutine": {"enabled": false},
///     }}));
/// start_and_wait_ready(&[&app]).await?;
/// println!("pprof index: {}", app.pprof_url()?);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Profiled {
    runnable: Runnable,
    port: String,
    https: bool,
    config: Option<serde_json::Value>,
}

impl fmt::Debug for Profiled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Profiled")
            .field("runnable", &self.runnable)
            .field("port", &self.port)
            .field("https", &self.https)
            .field("config", &self.config)
            .finish()
    }
}

impl Profiled {
    /// pprof handlers served over HTTP on the named port, profiled with Parca's default
    /// profiling configuration. Errors if the runnable has no such port.
    pub fn new(runnable: Runnable, pprof_port: &str) -> Result<Self> {
        if !runnable.ports().iter().any(|(n, _)| n == pprof_port) {
            return Err(Error::UnknownPort {
                runnable: runnable.name().to_string(),
                port: pprof_port.to_string(),
                known: runnable.ports().iter().map(|(n, _)| n.clone()).collect(),
            });
        }
        let this = Self {
            runnable,
            port: pprof_port.to_string(),
            https: false,
            config: None,
        };
        this.mark();
        Ok(this)
    }

    /// Records the pprof endpoint on the runnable, where profiling finds it.
    fn mark(&self) {
        let r = &self.runnable;
        r.set_metadata(META_PPROF_PORT, self.port.clone());
        r.set_metadata(META_PPROF_SCHEME, self.scheme());
        match &self.config {
            Some(config) => r.set_metadata(META_PPROF_CONFIG, config.to_string()),
            // Metadata cannot be removed; an empty value means "Parca's defaults".
            None => r.set_metadata(META_PPROF_CONFIG, ""),
        }
    }

    /// Profiles are fetched over HTTPS (certificates are not verified).
    pub fn https(mut self) -> Self {
        self.https = true;
        self.mark();
        self
    }

    /// Parca's `profiling_config` for this runnable, as Parca's configuration documents it
    /// (e.g. `{"path_prefix": "/prefix", "pprof_config": {"fgprof": {"enabled": true, "path":
    /// "/debug/fgprof"}}}`). Profiles it does not mention keep Parca's defaults.
    pub fn config(mut self, config: serde_json::Value) -> Self {
        self.config = Some(config);
        self.mark();
        self
    }

    /// The wrapped runnable.
    pub fn runnable(&self) -> &Runnable {
        &self.runnable
    }

    /// The name of the pprof port.
    pub fn pprof_port(&self) -> &str {
        &self.port
    }

    /// `http` or `https`.
    pub fn scheme(&self) -> &'static str {
        if self.https {
            "https"
        } else {
            "http"
        }
    }

    /// The Parca profiling configuration, if one was set.
    pub fn profiling_config(&self) -> Option<&serde_json::Value> {
        self.config.as_ref()
    }

    /// The pprof index (`<scheme>://<host endpoint>/debug/pprof/`), as reachable from the
    /// host. Errors when not running.
    pub fn pprof_url(&self) -> Result<String> {
        Ok(format!(
            "{}://{}/debug/pprof/",
            self.scheme(),
            self.runnable.endpoint(&self.port)?
        ))
    }
}

impl Deref for Profiled {
    type Target = Runnable;
    fn deref(&self) -> &Runnable {
        &self.runnable
    }
}

impl AsRunnable for Profiled {
    fn as_runnable(&self) -> &Runnable {
        &self.runnable
    }
}

/// What profiling needs to know of one running profiled runnable.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Target {
    /// The runnable's name, used as the scrape job's name.
    pub name: String,
    /// `<host>:<port>` on the environment network.
    pub endpoint: String,
    pub scheme: String,
    pub config: Option<serde_json::Value>,
}

/// The profiling targets among running runnables, sorted by name (so the generated
/// configuration does not depend on start order).
pub(crate) fn targets(running: &[Runnable]) -> Vec<Target> {
    let mut targets: Vec<Target> = running
        .iter()
        .filter_map(|r| {
            let port = r.metadata(META_PPROF_PORT)?;
            let endpoint = r.internal_endpoint(&port).ok()?;
            let config = r
                .metadata(META_PPROF_CONFIG)
                .filter(|c| !c.is_empty())
                .and_then(|c| serde_json::from_str(&c).ok());
            Some(Target {
                name: r.name().to_string(),
                endpoint,
                scheme: r
                    .metadata(META_PPROF_SCHEME)
                    .unwrap_or_else(|| "http".to_string()),
                config,
            })
        })
        .collect();
    targets.sort_by(|a, b| a.name.cmp(&b.name));
    targets
}
