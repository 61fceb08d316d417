//! Prometheus as a catalog entry: a server that scrapes itself, whose configuration can be
//! replaced (typed or raw YAML) and reloaded while it runs.

use std::collections::BTreeMap;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::{Options, Site, Spec, ACCESS_PORT};
use crate::env::Environment;
use crate::env::{AsRunnable, Runnable};
use crate::error::{Error, Result};
use crate::metrics::{Expectation, Instrumented, MetricsOptions};
use crate::spec::Command;
use crate::spec::Flags;
use crate::spec::HttpProbe;
use crate::wait::WaitPolicy;

/// The official image.
pub const DEFAULT_IMAGE: &str = crate::monitoring::prometheus::DEFAULT_IMAGE;
const PORT: u16 = 9090;
const CONFIG_FILE: &str = "prometheus.yml";
const RELOAD_OK: &str = "prometheus_config_last_reload_successful";
const RELOAD_AT: &str = "prometheus_config_last_reload_success_timestamp_seconds";
/// How long a reload may take before `set_config` gives up.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(30);

/// A Prometheus server of the catalog. It scrapes itself every second (job `myself`, external
/// label `prometheus=<name>`), and dereferences to [`Instrumented`].
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
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Prometheus {
    instrumented: Instrumented,
    config_file: PathBuf,
}

/// A Prometheus server scraping itself, on port [`ACCESS_PORT`] (9090); run as the host user
/// with its storage in the runnable's directory. Flags in `options` override the defaults
/// (`--config.file`, `--storage.tsdb.path`, `--storage.tsdb.max-block-duration=2h`,
/// `--log.level=info`, `--web.listen-address=:9090`). A custom image must have `prometheus`
/// on its `PATH`, as the official one does.
pub fn prometheus(env: &Environment, name: &str, options: Options) -> Result<Prometheus> {
    let runnable = super::deploy(env, name, |site| spec(site, &options))?;
    let config_file = runnable.dir().join(CONFIG_FILE);
    Ok(Prometheus {
        instrumented: Instrumented::new(runnable, ACCESS_PORT)?,
        config_file,
    })
}

pub(crate) fn spec(site: &Site, options: &Options) -> Result<Spec> {
    let config = PrometheusConfig::self_scraping(&site.name, &site.internal(PORT));
    let flags = options.merged_flags(
        Flags::new()
            .with("--config.file", site.path(CONFIG_FILE))
            .with("--storage.tsdb.path", site.path(""))
            // No compaction: test runs are short.
            .with("--storage.tsdb.max-block-duration", "2h")
            .with("--log.level", "info")
            .with("--web.listen-address", format!(":{PORT}")),
    );
    let start = options
        .start_options(DEFAULT_IMAGE)
        .command(
            Command::new("prometheus")
                .args(flags.to_args())
                .disable_entrypoint(),
        )
        .readiness(HttpProbe::new(ACCESS_PORT, "/-/ready"))
        .host_user();
    Ok(Spec::new(start)
        .port(ACCESS_PORT, PORT)
        .file(CONFIG_FILE, config.to_yaml()))
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

/// A Prometheus configuration: global settings and scrape jobs. Anything else Prometheus
/// accepts (rule files, remote write...) goes through [`PrometheusConfig::extra`].
///
/// It is written as JSON, which YAML parsers (Prometheus' included) read as YAML.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct PrometheusConfig {
    /// Settings shared by all jobs.
    pub global: GlobalConfig,
    /// The scrape jobs.
    pub scrape_configs: Vec<ScrapeConfig>,
    /// Other top-level sections, as JSON values.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// The `global` section of a [`PrometheusConfig`].
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct GlobalConfig {
    /// Default scrape interval (`"15s"`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scrape_interval: Option<String>,
    /// Default scrape timeout.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scrape_timeout: Option<String>,
    /// Rule evaluation interval.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evaluation_interval: Option<String>,
    /// Labels added to every series sent elsewhere (Thanos reads them).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub external_labels: BTreeMap<String, String>,
}

/// One scrape job.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ScrapeConfig {
    /// The job name (the `job` label).
    pub job_name: String,
    /// Scrape interval of this job.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scrape_interval: Option<String>,
    /// Scrape timeout of this job.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scrape_timeout: Option<String>,
    /// The metrics path (default `/metrics`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_path: Option<String>,
    /// `http` or `https`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    /// Static targets.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub static_configs: Vec<StaticConfig>,
    /// Other job settings (`relabel_configs`, `tls_config`...), as JSON values.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// A group of static targets sharing labels.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct StaticConfig {
    /// `host:port` addresses.
    pub targets: Vec<String>,
    /// Labels added to the targets' series.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

impl PrometheusConfig {
    /// An empty configuration (Prometheus' defaults).
    pub fn new() -> Self {
        Self::default()
    }

    /// The catalog's default: scrape `self_endpoint` every second as job `myself`, with the
    /// external label `prometheus=<name>`.
    pub fn self_scraping(name: &str, self_endpoint: &str) -> Self {
        Self::new().external_label("prometheus", name).scrape(
            ScrapeConfig::new("myself")
                .interval("1s")
                .timeout("1s")
                .target(self_endpoint),
        )
    }

    /// Sets the global scrape interval (`"1s"`).
    pub fn scrape_interval(mut self, interval: impl Into<String>) -> Self {
        self.global.scrape_interval = Some(interval.into());
        self
    }

    /// Adds an external label.
    pub fn external_label(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.global
            .external_labels
            .insert(name.into(), value.into());
        self
    }

    /// Adds a scrape job.
    pub fn scrape(mut self, job: ScrapeConfig) -> Self {
        self.scrape_configs.push(job);
        self
    }

    /// Sets another top-level section (`"rule_files"`, `json!(["/rules.yml"])`).
    pub fn extra(mut self, key: impl Into<String>, value: serde_json::Value) -> Self {
        self.extra.insert(key.into(), value);
        self
    }

    /// The configuration file's text.
    pub fn to_yaml(&self) -> String {
        // Serialising plain strings, maps and JSON values cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

impl ScrapeConfig {
    /// A job named `job_name` with no targets yet.
    pub fn new(job_name: impl Into<String>) -> Self {
        Self {
            job_name: job_name.into(),
            ..Self::default()
        }
    }

    /// Sets the scrape interval (`"1s"`).
    pub fn interval(mut self, interval: impl Into<String>) -> Self {
        self.scrape_interval = Some(interval.into());
        self
    }

    /// Sets the scrape timeout.
    pub fn timeout(mut self, timeout: impl Into<String>) -> Self {
        self.scrape_timeout = Some(timeout.into());
        self
    }

    /// Sets the metrics path.
    pub fn metrics_path(mut self, path: impl Into<String>) -> Self {
        self.metrics_path = Some(path.into());
        self
    }

    /// Adds a static target (`host:port`) to the first static group.
    pub fn target(mut self, target: impl Into<String>) -> Self {
        match self.static_configs.first_mut() {
            Some(group) => group.targets.push(target.into()),
            None => self.static_configs.push(StaticConfig {
                targets: vec![target.into()],
                labels: BTreeMap::new(),
            }),
        }
        self
    }

    /// Sets another job setting (`"honor_labels"`, `json!(true)`).
    pub fn extra(mut self, key: impl Into<String>, value: serde_json::Value) -> Self {
        self.extra.insert(key.into(), value);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::super::site::testing::site;
    use super::*;
    use crate::spec::Probe;

    #[test]
    fn default_spec_matches_upstream_layout() {
        let spec = spec(&site("prom-1"), &Options::new()).expect("spec");
        assert_eq!(spec.ports, [("http".to_string(), 9090)]);
        assert_eq!(spec.options.image(), DEFAULT_IMAGE);
        let command = spec.options.command.as_ref().expect("command");
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
            ]
        );
        assert!(spec.options.user.is_some(), "runs as the host user");
        match &spec.options.readiness {
            Some(Probe::Http(p)) => assert_eq!(p.path, "/-/ready"),
            other => panic!("unexpected probe {other:?}"),
        }
        let config: serde_json::Value =
            serde_json::from_str(&spec.file_text(CONFIG_FILE).expect("config")).expect("json");
        assert_eq!(config["global"]["external_labels"]["prometheus"], "prom-1");
        assert_eq!(config["scrape_configs"][0]["job_name"], "myself");
        assert_eq!(config["scrape_configs"][0]["scrape_interval"], "1s");
        assert_eq!(
            config["scrape_configs"][0]["static_configs"][0]["targets"][0],
            "e2e-test-prom-1:9090"
        );
    }

    #[test]
    fn image_and_flags_are_overridable() {
        let options = Options::new()
            .image("local/prometheus:dev")
            .flag("--log.level", "debug")
            .flag("--web.enable-lifecycle", "");
        let spec = spec(&site("p"), &options).expect("spec");
        assert_eq!(spec.options.image(), "local/prometheus:dev");
        let args = spec.options.command.as_ref().expect("command").to_vec();
        assert!(args.contains(&"--log.level=debug".to_string()));
        assert!(!args.contains(&"--log.level=info".to_string()));
        assert_eq!(
            args.last().map(String::as_str),
            Some("--web.enable-lifecycle")
        );
    }

    #[test]
    fn typed_config_renders_extra_sections() {
        let cfg = PrometheusConfig::new()
            .scrape_interval("5s")
            .scrape(
                ScrapeConfig::new("app")
                    .target("a:1")
                    .target("b:2")
                    .metrics_path("/m")
                    .extra("honor_labels", serde_json::json!(true)),
            )
            .extra("rule_files", serde_json::json!(["/r.yml"]));
        let v: serde_json::Value = serde_json::from_str(&cfg.to_yaml()).expect("json");
        assert_eq!(v["global"]["scrape_interval"], "5s");
        assert_eq!(
            v["scrape_configs"][0]["static_configs"][0]["targets"],
            serde_json::json!(["a:1", "b:2"])
        );
        assert_eq!(v["scrape_configs"][0]["honor_labels"], true);
        assert_eq!(v["scrape_configs"][0]["metrics_path"], "/m");
        assert_eq!(v["rule_files"][0], "/r.yml");
        assert!(v["global"].get("external_labels").is_none());
    }
}
