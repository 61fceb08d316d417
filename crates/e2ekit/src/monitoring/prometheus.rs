//! The Prometheus server of the monitoring: its image, configuration and target discovery.
//!
//! Targets are discovered through a `file_sd` file in the shared directory, rewritten on every
//! start and stop. Prometheus notices file changes itself (and re-reads every second as a
//! fallback), so targets come and go without restarts, reloads, or a window in which a
//! half-written configuration could be loaded.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;

use crate::env::Environment;
use crate::env::Runnable;
use crate::error::{Error, Result};
use crate::host::HostImage;
use crate::metrics::{META_PATH, META_PORT, META_SCHEME};

/// The official image, used when it can be pulled.
pub const DEFAULT_IMAGE: &str = "quay.io/prometheus/prometheus:v2.53.0";
/// The Prometheus of Debian's `prometheus` package, packed when the official image is absent.
const HOST_BINARY: &str = "/usr/bin/prometheus";
const HOST_WEB_ASSETS: &str = "/usr/share/prometheus/web";

/// The official image if present or pullable; otherwise one built from the host's Prometheus.
pub(crate) async fn resolve_image(env: &Environment, requested: Option<&str>) -> Result<String> {
    let backend = &env.core().backend;
    if let Some(image) = requested {
        return Ok(image.to_string());
    }
    match backend.ensure_image(DEFAULT_IMAGE, "prometheus").await {
        Ok(()) => Ok(DEFAULT_IMAGE.to_string()),
        Err(pull_error) => {
            if !Path::new(HOST_BINARY).is_file() {
                return Err(Error::ImageNotFound {
                    runnable: "prometheus".to_string(),
                    image: DEFAULT_IMAGE.to_string(),
                    reason: format!(
                        "{pull_error}; and no host Prometheus at {HOST_BINARY} to build one from (apt-get install prometheus)"
                    ),
                });
            }
            eprintln!(
                "e2ekit: cannot pull {DEFAULT_IMAGE} ({pull_error}); building an equivalent image from the host's {HOST_BINARY} (Debian package prometheus)"
            );
            host_image().build(env).await
        }
    }
}

/// An image with the host's Prometheus in the official image's layout.
pub fn host_image() -> HostImage {
    let mut image = HostImage::new("e2ekit/prometheus")
        .binary_at(HOST_BINARY, "/bin/prometheus")
        .dir("/prometheus")
        .dir("/etc/prometheus");
    if Path::new(HOST_WEB_ASSETS).is_dir() {
        image = image.file(HOST_WEB_ASSETS, HOST_WEB_ASSETS);
    }
    image
}

/// Files the monitoring Prometheus reads.
pub(crate) struct ConfigFiles {
    pub config: PathBuf,
    pub targets: PathBuf,
}

impl ConfigFiles {
    pub(crate) fn in_dir(dir: &Path) -> Self {
        Self {
            config: dir.join("prometheus.yml"),
            targets: dir.join("targets.json"),
        }
    }
}

fn seconds(d: Duration) -> String {
    format!("{}ms", d.as_millis().max(1))
}

/// The configuration (JSON, which YAML parsers read as YAML).
pub(crate) fn config(files: &ConfigFiles, scrape_interval: Duration, local: &str) -> String {
    let interval = seconds(scrape_interval);
    let cfg = json!({
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "scrape_configs": [
            {
                "job_name": "instrumented",
                "file_sd_configs": [{"files": [files.targets.display().to_string()], "refresh_interval": "1s"}],
                "tls_config": {"insecure_skip_verify": true},
            },
            {
                "job_name": "local",
                "static_configs": [{"targets": [local]}],
                "metrics_path": super::local::LOCAL_PATH,
            },
            {
                "job_name": "containers",
                "honor_labels": true,
                "static_configs": [{"targets": [local]}],
                "metrics_path": super::local::CONTAINERS_PATH,
            },
        ],
    });
    serde_json::to_string_pretty(&cfg).unwrap_or_default()
}

/// The `file_sd` target groups of the running instrumented runnables.
pub(crate) fn targets(running: &[Runnable]) -> String {
    let groups: Vec<serde_json::Value> = running
        .iter()
        .filter_map(|r| {
            let port = r.metadata(META_PORT)?;
            let endpoint = r.internal_endpoint(&port).ok()?;
            let path = r
                .metadata(META_PATH)
                .unwrap_or_else(|| "/metrics".to_string());
            let scheme = r
                .metadata(META_SCHEME)
                .unwrap_or_else(|| "http".to_string());
            Some(target_group(r.name(), &endpoint, &path, &scheme))
        })
        .collect();
    serde_json::to_string_pretty(&groups).unwrap_or_else(|_| "[]".to_string())
}

/// One `file_sd` group. A query in the path (`?format=prometheus`) becomes `__param_*` labels,
/// since Prometheus would escape it as part of the path.
fn target_group(job: &str, endpoint: &str, path: &str, scheme: &str) -> serde_json::Value {
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    let mut labels = serde_json::Map::new();
    labels.insert("job".into(), json!(job));
    labels.insert("__metrics_path__".into(), json!(path));
    labels.insert("__scheme__".into(), json!(scheme));
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        labels.insert(format!("__param_{k}"), json!(v));
    }
    json!({"targets": [endpoint], "labels": labels})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_is_valid_json_with_three_jobs() {
        let files = ConfigFiles::in_dir(Path::new("/tmp/x"));
        let text = config(&files, Duration::from_secs(5), "10.0.0.1:1234");
        let v: serde_json::Value = serde_json::from_str(&text).expect("json");
        assert_eq!(v["global"]["scrape_interval"], "5000ms");
        let jobs: Vec<&str> = v["scrape_configs"]
            .as_array()
            .expect("jobs")
            .iter()
            .filter_map(|j| j["job_name"].as_str())
            .collect();
        assert_eq!(jobs, ["instrumented", "local", "containers"]);
        assert_eq!(targets(&[]), "[]");
    }

    #[test]
    fn query_in_metrics_path_becomes_params() {
        let g = target_group(
            "consul",
            "e-consul:8500",
            "/v1/agent/metrics?format=prometheus",
            "http",
        );
        assert_eq!(g["targets"][0], "e-consul:8500");
        assert_eq!(g["labels"]["__metrics_path__"], "/v1/agent/metrics");
        assert_eq!(g["labels"]["__param_format"], "prometheus");
        assert_eq!(g["labels"]["job"], "consul");
        let plain = target_group("app", "e-app:80", "/metrics", "https");
        assert_eq!(plain["labels"].as_object().map(|m| m.len()), Some(3));
        assert_eq!(plain["labels"]["__scheme__"], "https");
    }
}
