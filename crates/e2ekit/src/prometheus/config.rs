//! Prometheus' configuration file, typed: global settings, scrape jobs with static targets or
//! `file_sd` discovery, and the target groups a `file_sd` file holds.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

/// A Prometheus configuration: global settings, scrape jobs, rule files, the Alertmanagers
/// alerts go to and remote-write targets. Anything else Prometheus accepts goes through
/// [`PrometheusConfig::extra`].
///
/// It is written as JSON, which YAML parsers (Prometheus' included) read as YAML.
///
/// ```
/// use e2ekit::db::{PrometheusConfig, ScrapeConfig};
///
/// let config = PrometheusConfig::new()
///     .scrape_interval("1s")
///     .external_label("cluster", "a")
///     .scrape(ScrapeConfig::new("app").target("e2e-app:8080"))
///     .scrape(ScrapeConfig::new("discovered").file_sd("/shared/targets.json", "1s"));
/// assert!(config.to_yaml().contains("\"file_sd_configs\""));
/// ```
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct PrometheusConfig {
    /// Settings shared by all jobs.
    pub global: GlobalConfig,
    /// The scrape jobs.
    pub scrape_configs: Vec<ScrapeConfig>,
    /// Files of recording and alerting rules (paths as the server sees them).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rule_files: Vec<String>,
    /// Where alerts go.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alerting: Option<AlertingConfig>,
    /// Remote-write targets.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub remote_write: Vec<RemoteWriteConfig>,
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

/// The `alerting` section: the Alertmanagers that receive alerts.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct AlertingConfig {
    /// The Alertmanagers.
    pub alertmanagers: Vec<AlertmanagersConfig>,
}

/// A group of Alertmanagers (one entry of `alerting.alertmanagers`).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct AlertmanagersConfig {
    /// Their `host:port` addresses.
    pub static_configs: Vec<StaticConfig>,
    /// Other settings (`timeout`, `path_prefix`...), as JSON values.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// One remote-write target.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct RemoteWriteConfig {
    /// The receiver's URL (`http://vm:8428/api/v1/write`).
    pub url: String,
    /// Other settings (`queue_config`, `write_relabel_configs`...), as JSON values.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
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
    /// Keep the labels of scraped series over the target's (a Pushgateway's `job`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub honor_labels: Option<bool>,
    /// Static targets.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub static_configs: Vec<StaticConfig>,
    /// Targets discovered from files of target groups ([`target_groups`]), re-read when
    /// they change.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub file_sd_configs: Vec<FileSdConfig>,
    /// Other job settings (`relabel_configs`, `tls_config`...), as JSON values.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// A group of targets sharing labels: a static group of a job, or one entry of a `file_sd`
/// file (see [`target_groups`]).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct StaticConfig {
    /// `host:port` addresses.
    pub targets: Vec<String>,
    /// Labels added to the targets' series (`__metrics_path__`, `__scheme__` and
    /// `__param_<name>` set how they are scraped).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// Target discovery from files of target groups (Prometheus' `file_sd_configs`).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct FileSdConfig {
    /// The files (JSON or YAML lists of target groups, see [`target_groups`]).
    pub files: Vec<String>,
    /// How often the files are re-read besides on change (`"1s"`; Prometheus' default 5m).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_interval: Option<String>,
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

    /// Sets the global rule evaluation interval (`"1s"`).
    pub fn evaluation_interval(mut self, interval: impl Into<String>) -> Self {
        self.global.evaluation_interval = Some(interval.into());
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

    /// Adds a rule file (a path the server can read, e.g. in its runnable's directory).
    pub fn rule_file(mut self, path: impl Into<String>) -> Self {
        self.rule_files.push(path.into());
        self
    }

    /// Sends alerts to the Alertmanager at `target` (`host:port`, e.g. the
    /// `internal_endpoint` of [`db::alertmanager`](crate::db::alertmanager)).
    pub fn alertmanager(mut self, target: impl Into<String>) -> Self {
        let alerting = self.alerting.get_or_insert_with(AlertingConfig::default);
        alerting.alertmanagers.push(AlertmanagersConfig {
            static_configs: vec![StaticConfig {
                targets: vec![target.into()],
                labels: BTreeMap::new(),
            }],
            extra: BTreeMap::new(),
        });
        self
    }

    /// Also writes every sample to `url` (Prometheus' remote-write protocol).
    pub fn remote_write(mut self, url: impl Into<String>) -> Self {
        self.remote_write.push(RemoteWriteConfig {
            url: url.into(),
            extra: BTreeMap::new(),
        });
        self
    }

    /// Sets another top-level section (`"storage"`, `json!({...})`).
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

    /// Keeps the scraped series' own labels (`job`, `instance`) over the target's: what a
    /// job scraping a Pushgateway needs.
    pub fn honor_labels(mut self) -> Self {
        self.honor_labels = Some(true);
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

    /// Discovers targets from a file of target groups (see [`target_groups`]), re-read when
    /// it changes and every `refresh_interval` (`"1s"`).
    pub fn file_sd(mut self, file: impl AsRef<Path>, refresh_interval: impl Into<String>) -> Self {
        self.file_sd_configs.push(FileSdConfig {
            files: vec![file.as_ref().display().to_string()],
            refresh_interval: Some(refresh_interval.into()),
        });
        self
    }

    /// Sets another job setting (`"honor_labels"`, `json!(true)`).
    pub fn extra(mut self, key: impl Into<String>, value: serde_json::Value) -> Self {
        self.extra.insert(key.into(), value);
        self
    }
}

/// The text of a `file_sd` file: its target groups (JSON, a list of [`StaticConfig`]).
///
/// ```
/// use e2ekit::db::{target_groups, StaticConfig};
///
/// let group = StaticConfig { targets: vec!["e2e-app:8080".into()], ..Default::default() };
/// assert_eq!(target_groups(&[]), "[]");
/// assert!(target_groups(&[group]).contains("e2e-app:8080"));
/// ```
pub fn target_groups(groups: &[StaticConfig]) -> String {
    serde_json::to_string_pretty(groups).unwrap_or_else(|_| "[]".to_string())
}

/// A duration in Prometheus' (and Parca's) format: `5s`, `1500ms`; at least `1ms`.
pub(crate) fn duration(d: Duration) -> String {
    let ms = d.as_millis().max(1);
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn rules_alerting_and_remote_write_are_typed() {
        let config = super::PrometheusConfig::new()
            .evaluation_interval("1s")
            .rule_file("/d/rules.yml")
            .alertmanager("env-am:9093")
            .remote_write("http://vm:8428/api/v1/write")
            .scrape(
                super::ScrapeConfig::new("pgw")
                    .honor_labels()
                    .target("pgw:9091"),
            );
        let v: serde_json::Value = serde_json::from_str(&config.to_yaml()).expect("json");
        assert_eq!(v["global"]["evaluation_interval"], "1s");
        assert_eq!(v["rule_files"][0], "/d/rules.yml");
        assert_eq!(
            v["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"][0],
            "env-am:9093"
        );
        assert_eq!(v["remote_write"][0]["url"], "http://vm:8428/api/v1/write");
        assert_eq!(v["scrape_configs"][0]["honor_labels"], true);
        let empty: serde_json::Value =
            serde_json::from_str(&super::PrometheusConfig::new().to_yaml()).expect("json");
        assert!(empty.get("alerting").is_none() && empty.get("rule_files").is_none());
    }

    use super::*;

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
        assert!(v["scrape_configs"][0].get("file_sd_configs").is_none());
        assert_eq!(v["rule_files"][0], "/r.yml");
        assert!(v["global"].get("external_labels").is_none());
    }

    #[test]
    fn self_scraping_is_the_catalog_default() {
        let v: serde_json::Value = serde_json::from_str(
            &PrometheusConfig::self_scraping("prom-1", "e2e-test-prom-1:9090").to_yaml(),
        )
        .expect("json");
        assert_eq!(v["global"]["external_labels"]["prometheus"], "prom-1");
        assert_eq!(v["scrape_configs"][0]["job_name"], "myself");
        assert_eq!(v["scrape_configs"][0]["scrape_interval"], "1s");
        assert_eq!(v["scrape_configs"][0]["scrape_timeout"], "1s");
        assert_eq!(
            v["scrape_configs"][0]["static_configs"][0]["targets"][0],
            "e2e-test-prom-1:9090"
        );
    }

    #[test]
    fn file_sd_jobs_and_target_groups() {
        let cfg = PrometheusConfig::new()
            .evaluation_interval("2s")
            .scrape(ScrapeConfig::new("found").file_sd("/d/targets.json", "1s"));
        let v: serde_json::Value = serde_json::from_str(&cfg.to_yaml()).expect("json");
        assert_eq!(v["global"]["evaluation_interval"], "2s");
        assert_eq!(
            v["scrape_configs"][0]["file_sd_configs"],
            serde_json::json!([{"files": ["/d/targets.json"], "refresh_interval": "1s"}])
        );
        assert!(v["scrape_configs"][0].get("static_configs").is_none());

        let group = StaticConfig {
            targets: vec!["e:1".into()],
            labels: BTreeMap::from([("job".into(), "e".into())]),
        };
        let groups: serde_json::Value =
            serde_json::from_str(&target_groups(&[group])).expect("json");
        assert_eq!(
            groups,
            serde_json::json!([{"targets": ["e:1"], "labels": {"job": "e"}}])
        );
        assert_eq!(target_groups(&[]), "[]");
    }

    #[test]
    fn durations_use_prometheus_units() {
        assert_eq!(duration(Duration::from_secs(5)), "5s");
        assert_eq!(duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(duration(Duration::ZERO), "1ms");
    }
}
