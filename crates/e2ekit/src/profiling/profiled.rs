//! Runnables that serve Go-style pprof HTTP handlers, marked so profiling can find them.

use std::fmt;
use std::ops::Deref;

use crate::env::{AsRunnable, Runnable};
use crate::error::Result;

/// The marker of a profiled runnable: where its pprof handlers are, for profiling to find.
#[derive(Debug, Clone, PartialEq)]
struct PprofTarget {
    port: String,
    https: bool,
    /// Parca's `profiling_config` for it (none: Parca's defaults).
    config: Option<serde_json::Value>,
}

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
        runnable.port(pprof_port)?;
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
        self.runnable.set_marker(PprofTarget {
            port: self.port.clone(),
            https: self.https,
            config: self.config.clone(),
        });
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
            let marker = r.marker::<PprofTarget>()?;
            Some(Target {
                name: r.name().to_string(),
                endpoint: r.internal_endpoint(&marker.port).ok()?,
                scheme: if marker.https { "https" } else { "http" }.to_string(),
                config: marker.config,
            })
        })
        .collect();
    targets.sort_by(|a, b| a.name.cmp(&b.name));
    targets
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::fake::FakeEngine;
    use crate::spec::StartOptions;

    #[tokio::test]
    async fn profiled_runnables_are_found_by_their_marker_sorted_by_name() {
        let env = crate::env::tests::fake_env(&FakeEngine::new(), "fk-profiled").await;
        let define = |name: &str| {
            env.runnable(name)
                .with_ports([("http", 8080)])
                .init(StartOptions::new("img"))
                .expect("defined")
        };
        let config = serde_json::json!({"path_prefix": "/p"});
        let b = Profiled::new(define("b"), "http")
            .expect("profiled")
            .https()
            .config(config.clone());
        let a = Profiled::new(define("a"), "http").expect("profiled");
        let plain = define("plain");
        plain.set_metadata("e2ekit.pprof.port", "http");
        let found = targets(&[b.runnable().clone(), plain, a.runnable().clone()]);
        assert_eq!(
            found,
            [
                Target {
                    name: "a".to_string(),
                    endpoint: format!("{}-a:8080", env.name()),
                    scheme: "http".to_string(),
                    config: None,
                },
                Target {
                    name: "b".to_string(),
                    endpoint: format!("{}-b:8080", env.name()),
                    scheme: "https".to_string(),
                    config: Some(config),
                },
            ]
        );
        env.close().await;
    }
}
