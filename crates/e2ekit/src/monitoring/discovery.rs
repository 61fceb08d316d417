//! Which runnables monitoring scrapes: the instrumented ones that run, as `file_sd` target
//! groups in a file in Prometheus' directory, rewritten on every start and stop.
//!
//! Prometheus notices file changes itself (and re-reads every second as a fallback), so
//! targets come and go without restarts, reloads, or a window in which a half-written file
//! could be read.

use std::collections::BTreeMap;

use crate::env::Runnable;
use crate::metrics::ScrapeTarget;
use crate::prometheus::config::StaticConfig;

/// The discovery file, in Prometheus' directory.
pub(crate) const TARGETS_FILE: &str = "targets.json";

/// The target groups of the running instrumented runnables, one per runnable, its job named
/// after it.
pub(crate) fn target_groups(running: &[Runnable]) -> Vec<StaticConfig> {
    running
        .iter()
        .filter_map(|r| {
            let target = r.marker::<ScrapeTarget>()?;
            let endpoint = r.internal_endpoint(&target.port).ok()?;
            Some(target_group(r.name(), &endpoint, &target))
        })
        .collect()
}

/// One group. A query in the path (`?format=prometheus`) becomes `__param_*` labels, since
/// Prometheus would escape it as part of the path.
fn target_group(job: &str, endpoint: &str, target: &ScrapeTarget) -> StaticConfig {
    let (path, query) = target.path.split_once('?').unwrap_or((&target.path, ""));
    let scheme = if target.https { "https" } else { "http" };
    let mut labels = BTreeMap::from([
        ("job".to_string(), job.to_string()),
        ("__metrics_path__".to_string(), path.to_string()),
        ("__scheme__".to_string(), scheme.to_string()),
    ]);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        labels.insert(format!("__param_{k}"), v.to_string());
    }
    StaticConfig {
        targets: vec![endpoint.to_string()],
        labels,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(path: &str, https: bool) -> ScrapeTarget {
        ScrapeTarget {
            port: "http".to_string(),
            path: path.to_string(),
            https,
        }
    }

    #[test]
    fn query_in_metrics_path_becomes_params() {
        let g = target_group(
            "consul",
            "e-consul:8500",
            &target("/v1/agent/metrics?format=prometheus", false),
        );
        assert_eq!(g.targets, ["e-consul:8500"]);
        assert_eq!(g.labels["__metrics_path__"], "/v1/agent/metrics");
        assert_eq!(g.labels["__param_format"], "prometheus");
        assert_eq!(g.labels["job"], "consul");
        assert_eq!(g.labels["__scheme__"], "http");
        let plain = target_group("app", "e-app:80", &target("/metrics", true));
        assert_eq!(plain.labels.len(), 3);
        assert_eq!(plain.labels["__scheme__"], "https");
        assert!(target_groups(&[]).is_empty());
    }

    #[tokio::test]
    async fn instrumented_runnables_are_found_by_their_marker_not_by_user_metadata() {
        use crate::engine::fake::FakeEngine;
        use crate::metrics::Instrumented;
        use crate::spec::StartOptions;

        let fake = FakeEngine::new();
        let env = crate::env::tests::fake_env(&fake, "fk-discovery").await;
        let define = |name: &str| {
            env.runnable(name)
                .with_ports([("http", 8080), ("admin", 9000)])
                .init(StartOptions::new("img"))
                .expect("defined")
        };
        let app = Instrumented::new(define("app"), "admin")
            .expect("instrumented")
            .metrics_path("/m?format=prometheus")
            .https();
        let plain = define("plain");
        // What used to break discovery: the old string keys, set by a user.
        plain.set_metadata("e2ekit.metrics.port", "http");
        app.set_metadata("e2ekit.metrics.port", "http");

        let groups = target_groups(&[app.runnable().clone(), plain]);
        assert_eq!(groups.len(), 1, "{groups:?}");
        assert_eq!(groups[0].targets, [format!("{}-app:9000", env.name())]);
        assert_eq!(groups[0].labels["job"], "app");
        assert_eq!(groups[0].labels["__metrics_path__"], "/m");
        assert_eq!(groups[0].labels["__param_format"], "prometheus");
        assert_eq!(groups[0].labels["__scheme__"], "https");
        env.close().await;
    }
}
