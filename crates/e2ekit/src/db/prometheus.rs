//! Prometheus as a catalog entry: the one Prometheus definition (`crate::prometheus`),
//! scraping itself, with the catalog's options.

use super::{images, Options};
use crate::env::Environment;
use crate::error::Result;
use crate::prometheus::config::PrometheusConfig;
use crate::prometheus::server::{self, Prometheus, PORT_NAME};

/// A Prometheus server scraping itself every second (job `myself`, external label
/// `prometheus=<name>`), on port [`ACCESS_PORT`](super::ACCESS_PORT) (9090); run as the host
/// user with its storage in the runnable's directory. Flags in `options` override the
/// defaults (`--config.file`, `--storage.tsdb.path`, `--storage.tsdb.max-block-duration=2h`,
/// `--log.level=info`, `--web.listen-address=:9090`). A custom image must have `prometheus`
/// on its `PATH`, as the official one does (and so does
/// [`prometheus::host_image`](crate::prometheus::host_image), for machines without registry
/// access).
///
/// It dereferences to [`Instrumented`](crate::Instrumented); [`Prometheus::set_config`]
/// replaces its configuration while it runs, and [`Prometheus::promql`] queries it.
pub fn prometheus(env: &Environment, name: &str, options: Options) -> Result<Prometheus> {
    server::define(
        env,
        name,
        options.start_options(images::PROMETHEUS),
        &options.flags,
        |future| {
            Ok(PrometheusConfig::self_scraping(
                name,
                &future.internal_endpoint(PORT_NAME)?,
            ))
        },
    )
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn the_catalog_serves_on_the_access_port_with_the_official_image() {
        assert_eq!(PORT_NAME, super::super::ACCESS_PORT);
        let dir = Path::new("/tmp/e2e-test/data/prom-1");
        let options = Options::new();
        let start = server::start_options(
            dir,
            options.start_options(images::PROMETHEUS),
            &options.flags,
        );
        assert_eq!(start.image(), images::PROMETHEUS);
        assert!(images::PROMETHEUS.starts_with("quay.io/prometheus/prometheus:"));
        assert_eq!(
            start.command.as_ref().expect("command").to_vec()[1],
            "--config.file=/tmp/e2e-test/data/prom-1/prometheus.yml"
        );
    }

    #[test]
    fn image_and_flags_are_overridable() {
        let options = Options::new()
            .image("local/prometheus:dev")
            .flag("--log.level", "debug")
            .flag("--web.enable-lifecycle", "");
        let start = server::start_options(
            Path::new("/tmp/e2e-test/data/p"),
            options.start_options(images::PROMETHEUS),
            &options.flags,
        );
        assert_eq!(start.image(), "local/prometheus:dev");
        let args = start.command.as_ref().expect("command").to_vec();
        assert!(args.contains(&"--log.level=debug".to_string()));
        assert!(!args.contains(&"--log.level=info".to_string()));
        assert_eq!(
            args.last().map(String::as_str),
            Some("--web.enable-lifecycle")
        );
    }
}
