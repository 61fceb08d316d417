//! The one definition of a Prometheus server, used by the catalog (`db::prometheus`) and by
//! monitoring: command and flags, port, readiness, user, storage, configuration file, and
//! replacing that configuration while it runs.
//!
//! - Command: `prometheus` from the image's `PATH` (the official image and [`host_image`]
//!   both have `/bin/prometheus`), entrypoint disabled.
//! - Flags: `--config.file=<dir>/prometheus.yml`, `--storage.tsdb.path=<dir>/`,
//!   `--storage.tsdb.max-block-duration=2h` (no compaction: runs are short), `--log.level=info`,
//!   `--web.listen-address=:9090`, `--rules.alert.resend-delay=1s` (an alert fired before
//!   the Alertmanager was discovered is sent again at once); callers override or add flags.
//! - Port `"http"` (9090); ready when `/-/ready` answers; runs as the host user, so the TSDB
//!   it writes into its directory stays removable by the test process.
//!
//! [`host_image`]: super::host_image

use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::config::PrometheusConfig;
use super::query::PromQl;
use crate::env::{AsRunnable, Environment, FutureRunnable, Runnable};
use crate::error::{Error, Result};
use crate::metrics::{Expectation, Instrumented, MetricsOptions};
use crate::spec::{Command, Flags, HttpProbe, StartOptions};
use crate::wait::WaitPolicy;

/// The port name Prometheus serves its API, UI and metrics on (the catalog's `ACCESS_PORT`).
pub(crate) const PORT_NAME: &str = "http";
/// Its container port.
pub(crate) const PORT: u16 = 9090;
/// The configuration file, in the runnable's directory.
pub(crate) const CONFIG_FILE: &str = "prometheus.yml";
const RELOAD_OK: &str = "prometheus_config_last_reload_successful";
const RELOAD_AT: &str = "prometheus_config_last_reload_success_timestamp_seconds";
/// How long a reload may take before `set_config` gives up.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(30);

/// The start options of a Prometheus whose files live in `dir`: `base` (the image and wait
/// policy) with the command, readiness and user of the definition; `overrides` replace or
/// add flags.
pub(crate) fn start_options(dir: &Path, base: StartOptions, overrides: &Flags) -> StartOptions {
    let flags = Flags::new()
        .with("--config.file", dir.join(CONFIG_FILE).display().to_string())
        .with("--storage.tsdb.path", dir.join("").display().to_string())
        // No compaction: test runs are short.
        .with("--storage.tsdb.max-block-duration", "2h")
        .with("--log.level", "info")
        .with("--web.listen-address", format!(":{PORT}"))
        // Alerts dropped before the Alertmanager was discovered are sent again within a
        // second, not after the default minute.
        .with("--rules.alert.resend-delay", "1s")
        .merge(overrides);
    base.command(
        Command::new("prometheus")
            .args(flags.to_args())
            .disable_entrypoint(),
    )
    .readiness(HttpProbe::new(PORT_NAME, "/-/ready"))
    .host_user()
}

/// Defines (does not start) the Prometheus runnable `name`, instrumented on `"http"`, with the
/// configuration `config` computes from the registered runnable (its directory and internal
/// endpoint are known).
pub(crate) fn define(
    env: &Environment,
    name: &str,
    base: StartOptions,
    overrides: &Flags,
    config: impl FnOnce(&FutureRunnable) -> Result<PrometheusConfig>,
) -> Result<Prometheus> {
    let future = env
        .runnable(name)
        .with_ports([(PORT_NAME, PORT)])
        .future()?;
    let config_file = future.dir().join(CONFIG_FILE);
    crate::host::fs::write_atomically(&config_file, config(&future)?.to_yaml())?;
    let options = start_options(future.dir(), base, overrides);
    let runnable = future.init(options)?;
    Ok(Prometheus {
        instrumented: Instrumented::new(runnable, PORT_NAME)?,
        config_file,
    })
}

/// A Prometheus server (see `db::prometheus`). It dereferences to [`Instrumented`]; its
/// configuration can be replaced, typed or as raw YAML, and is reloaded while it runs.
///
/// ```no_run
/// use e2ekit::prelude::*;
/// use e2ekit::db::{PrometheusConfig, ScrapeConfig};
///
/// # async fn demo(env: &Environment) -> e2ekit::Result<()> {
/// let prom = db::prometheus(env, "prom-1", db::Options::new())?;
/// start_and_wait_ready(&[&prom]).await?;
///
/// // Replace the configuration; it is reloaded (SIGHUP) and checked before this returns.
/// let target = prom.internal_endpoint(db::ACCESS_PORT)?;
/// prom.set_config(&PrometheusConfig::new()
///     .scrape_interval("1s")
///     .scrape(ScrapeConfig::new("myself").target(target)))
///     .await?;
/// prom.set_config_yaml("scrape_configs: []\n").await?;
/// let up = prom.promql().instant("up").await?;
/// # let _ = up;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Prometheus {
    instrumented: Instrumented,
    config_file: PathBuf,
}

impl Prometheus {
    /// The instrumented runnable.
    pub fn instrumented(&self) -> &Instrumented {
        &self.instrumented
    }

    /// Where the configuration lives (in the runnable's directory).
    pub fn config_file(&self) -> &Path {
        &self.config_file
    }

    /// A PromQL client for this server's API (port `"http"`, reached from the host).
    pub fn promql(&self) -> PromQl {
        PromQl::for_runnable(self.instrumented.runnable().clone(), PORT_NAME)
    }

    /// Replaces the configuration with a typed one; see [`Prometheus::set_config_yaml`].
    pub async fn set_config(&self, config: &PrometheusConfig) -> Result<()> {
        self.set_config_yaml(config.to_yaml()).await
    }

    /// Replaces the configuration with raw YAML. Before the start it is simply the file
    /// Prometheus starts with; while running, Prometheus is sent `SIGHUP` through the engine
    /// and this returns once it reports the new configuration applied, or
    /// [`Error::ConfigRejected`] with its log when it refused it (it keeps the old one then).
    pub async fn set_config_yaml(&self, yaml: impl AsRef<str>) -> Result<()> {
        let runnable = self.instrumented.runnable();
        // Replaced whole, so a concurrent reload never reads half a file.
        crate::host::fs::write_atomically(&self.config_file, yaml.as_ref())?;
        if !runnable.is_running() {
            return Ok(());
        }
        // A remote engine's Prometheus has its own copy of the shared directory.
        runnable.push_host_file(&self.config_file).await?;
        self.reload().await
    }

    /// Sends `SIGHUP` and waits for the reload's outcome in Prometheus' own metrics.
    async fn reload(&self) -> Result<()> {
        let before = self.last_reload().await?;
        // The success timestamp has one-second resolution: make sure this reload lands in a
        // later second than the previous one, so its effect is visible.
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        if before >= now.as_secs() as f64 {
            tokio::time::sleep(Duration::from_millis(1000 - u64::from(now.subsec_millis()))).await;
        }
        self.instrumented.signal("HUP").await?;
        let outcome = self
            .instrumented
            .wait_sum_metrics_with(
                Expectation::custom(
                    format!("a reload after {before} (or a failed one)"),
                    move |sums| sums[0] == 0.0 || sums[1] > before,
                ),
                [RELOAD_OK, RELOAD_AT],
                MetricsOptions::new().wait(WaitPolicy::timeout(RELOAD_TIMEOUT)),
            )
            .await;
        let rejected = |reason: String| async {
            Error::ConfigRejected {
                runnable: self.instrumented.name().to_string(),
                file: self.config_file.display().to_string(),
                reason,
                logs: self.instrumented.runnable().log_tail().await,
            }
        };
        if let Err(e) = outcome {
            return Err(rejected(format!("no reload observed: {e}")).await);
        }
        let ok = self
            .instrumented
            .sum_metrics([RELOAD_OK], MetricsOptions::new())
            .await?;
        if ok.first() != Some(&1.0) {
            return Err(rejected(format!(
                "{RELOAD_OK} is 0 (Prometheus kept its previous configuration)"
            ))
            .await);
        }
        Ok(())
    }

    async fn last_reload(&self) -> Result<f64> {
        let sums = self
            .instrumented
            .sum_metrics([RELOAD_AT], MetricsOptions::new().skip_missing_metrics())
            .await?;
        Ok(sums.first().copied().unwrap_or(0.0))
    }
}

impl Deref for Prometheus {
    type Target = Instrumented;

    fn deref(&self) -> &Instrumented {
        &self.instrumented
    }
}

impl AsRunnable for Prometheus {
    fn as_runnable(&self) -> &Runnable {
        self.instrumented.runnable()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Probe;

    #[test]
    fn the_definition_runs_prometheus_from_the_path_with_storage_in_its_dir() {
        let dir = Path::new("/tmp/e2e-test/data/prom-1");
        let options = start_options(dir, StartOptions::new("img:1"), &Flags::new());
        assert_eq!(options.image(), "img:1");
        let command = options.command.as_ref().expect("command");
        assert!(command.entrypoint_disabled);
        assert_eq!(
            command.to_vec(),
            [
                "prometheus",
                "--config.file=/tmp/e2e-test/data/prom-1/prometheus.yml",
                "--storage.tsdb.path=/tmp/e2e-test/data/prom-1/",
                "--storage.tsdb.max-block-duration=2h",
                "--log.level=info",
                "--web.listen-address=:9090",
                "--rules.alert.resend-delay=1s",
            ]
        );
        assert!(options.user.is_some(), "runs as the host user");
        match &options.readiness {
            Some(Probe::Http(p)) => {
                assert_eq!(p.path, "/-/ready");
                assert_eq!(p.port, PORT_NAME);
            }
            other => panic!("unexpected probe {other:?}"),
        }
    }

    #[test]
    fn overrides_replace_flags_in_place_and_add_new_ones_last() {
        let overrides = Flags::new()
            .with("--log.level", "warn")
            .with("--web.enable-lifecycle", "");
        let policy = WaitPolicy::timeout(Duration::from_secs(3));
        let options = start_options(
            Path::new("/d"),
            StartOptions::new("img").wait_policy(policy),
            &overrides,
        );
        let args = options.command.as_ref().expect("command").to_vec();
        assert_eq!(args[4], "--log.level=warn");
        assert_eq!(
            args.last().map(String::as_str),
            Some("--web.enable-lifecycle")
        );
        assert_eq!(options.wait_policy, policy);
    }
}
