//! Thanos: querier, sidecar and store gateway, configured for tests (one concurrent query,
//! info logs) and observable (metrics and pprof) on `"http"`.
//!
//! Every component listens on `"http"` (9090: API, UI, `/metrics`, `/debug/pprof/`) and
//! `"grpc"` (9091: the Store API other components link to), runs as the host user so files it
//! writes in the shared directory stay removable, and is ready when `/-/ready` answers 200.
//!
//! Flags are rendered kingpin style: a comma-separated value becomes a repeated flag
//! (`--endpoint=a,b` is `--endpoint=a --endpoint=b`), except for flags whose name ends in
//! `config` (`--objstore.config`, `--tracing.config`, ...), whose values are YAML documents
//! passed whole.

use super::{Options, Site, Spec};
use crate::env::AsRunnable;
use crate::env::Environment;
use crate::error::Result;
use crate::profiling::Observable;
use crate::spec::Command;
use crate::spec::Flags;
use crate::spec::HttpProbe;

/// The default image, pinned. The querier links stores with `--endpoint` (Thanos 0.24 and
/// later); upstream e2e used `--store`, deprecated since 0.24 and removed in 0.38, so querier
/// images older than 0.24 are not supported.
pub const THANOS_IMAGE: &str = "quay.io/thanos/thanos:v0.36.1";
const HTTP: (&str, u16) = ("http", 9090);
const GRPC: (&str, u16) = ("grpc", 9091);

/// A Thanos querier (not started) fanning out to the given Store API endpoints (`host:port`,
/// typically other components' `internal_endpoint("grpc")`), deduplicating on the `replica`
/// label.
///
/// ```no_run
/// use e2ekit::prelude::*;
///
/// # async fn demo(env: &Environment) -> e2ekit::Result<()> {
/// let prom = db::prometheus(env, "prom", db::Options::new())?;
/// let sidecar = db::thanos_sidecar(env, "sidecar", &prom, db::Options::new())?;
/// let query = db::thanos_querier(env, "query", [sidecar.internal_endpoint("grpc")?], db::Options::new())?;
/// start_and_wait_ready(&[&prom, &sidecar, &query]).await?;
/// query.wait_sum_metrics_with(equals(1.0), ["thanos_store_nodes_grpc_connections"],
///     MetricsOptions::new().wait_missing_metrics()).await?;
/// # Ok(()) }
/// ```
pub fn thanos_querier<I, S>(
    env: &Environment,
    name: &str,
    endpoints: I,
    options: Options,
) -> Result<Observable>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let endpoints: Vec<String> = endpoints.into_iter().map(Into::into).collect();
    let runnable = super::deploy(env, name, |site| querier_spec(site, &endpoints, &options))?;
    Observable::new(runnable, HTTP.0)
}

/// A Thanos sidecar (not started) serving the Store API for a Prometheus of this environment
/// (reached at its `"http"` port) and given that Prometheus' directory as `--tsdb.path`, so
/// uploads work when an `--objstore.config` is added through [`Options::flag`] (Prometheus
/// must then run with equal `--storage.tsdb.min-block-duration` and `max-block-duration`).
///
/// ```no_run
/// use e2ekit::prelude::*;
///
/// # async fn demo(env: &Environment) -> e2ekit::Result<()> {
/// let prom = db::prometheus(env, "prom", db::Options::new())?;
/// let sidecar = db::thanos_sidecar(env, "sidecar", &prom, db::Options::new()
///     .flag("--log.level", "debug"))?;
/// start_and_wait_ready(&[&prom, &sidecar]).await?;
/// # Ok(()) }
/// ```
pub fn thanos_sidecar(
    env: &Environment,
    name: &str,
    prometheus: &dyn AsRunnable,
    options: Options,
) -> Result<Observable> {
    let prom = prometheus.as_runnable();
    let url = format!("http://{}", prom.internal_endpoint(super::ACCESS_PORT)?);
    let tsdb = prom.dir().display().to_string();
    let runnable = super::deploy(env, name, |site| sidecar_spec(site, &url, &tsdb, &options))?;
    Observable::new(runnable, HTTP.0)
}

/// A Thanos store gateway (not started) serving the blocks of the bucket described by
/// `bucket_config_yaml` (Thanos' objstore configuration, e.g. `type: S3` with a MinIO
/// endpoint), caching in its own directory. Blocks are read once 30 minutes old
/// (`--consistency-delay=30m`); override it through [`Options::flag`] for fresher blocks.
///
/// ```no_run
/// use e2ekit::prelude::*;
///
/// # async fn demo(env: &Environment) -> e2ekit::Result<()> {
/// let bucket = "type: FILESYSTEM\nconfig:\n  directory: /tmp/blocks\n";
/// let store = db::thanos_store(env, "store", bucket, db::Options::new()
///     .flag("--consistency-delay", "0s"))?;
/// start_and_wait_ready(&[&store]).await?;
/// # Ok(()) }
/// ```
pub fn thanos_store(
    env: &Environment,
    name: &str,
    bucket_config_yaml: &str,
    options: Options,
) -> Result<Observable> {
    let runnable = super::deploy(env, name, |site| {
        store_spec(site, bucket_config_yaml, &options)
    })?;
    Observable::new(runnable, HTTP.0)
}

/// Flags every component starts with.
fn common_flags(site: &Site) -> Flags {
    Flags::new()
        .with("--debug.name", site.name.clone())
        .with("--grpc-address", format!(":{}", GRPC.1))
        .with("--http-address", format!(":{}", HTTP.1))
}

/// Kingpin arguments, keeping YAML-valued (`...config`) flags whole.
fn thanos_args(flags: &Flags) -> Vec<String> {
    flags
        .iter()
        .flat_map(|(k, v)| {
            if k.ends_with("config") && !v.is_empty() {
                vec![format!("{k}={v}")]
            } else {
                Flags::new().with(k, v).to_kingpin_args()
            }
        })
        .collect()
}

/// A component's definition: `thanos <subcommand>` with its flags over the user's.
fn component(subcommand: &str, defaults: Flags, options: &Options) -> Spec {
    let flags = options.merged_flags(defaults);
    let start = options
        .start_options(THANOS_IMAGE)
        .command(Command::new(subcommand).args(thanos_args(&flags)))
        .host_user()
        .readiness(HttpProbe::new(HTTP.0, "/-/ready").status(200..=200));
    Spec::new(start).port(HTTP.0, HTTP.1).port(GRPC.0, GRPC.1)
}

pub(crate) fn querier_spec(site: &Site, endpoints: &[String], options: &Options) -> Result<Spec> {
    let mut defaults = common_flags(site)
        .with("--query.replica-label", "replica")
        .with("--log.level", "info")
        .with("--query.max-concurrent", "1");
    if !endpoints.is_empty() {
        defaults.insert("--endpoint", endpoints.join(","));
    }
    Ok(component("query", defaults, options))
}

pub(crate) fn sidecar_spec(
    site: &Site,
    prometheus_url: &str,
    tsdb_path: &str,
    options: &Options,
) -> Result<Spec> {
    let defaults = common_flags(site)
        .with("--prometheus.url", prometheus_url)
        .with("--tsdb.path", tsdb_path)
        .with("--log.level", "info");
    Ok(component("sidecar", defaults, options))
}

pub(crate) fn store_spec(site: &Site, bucket_config_yaml: &str, options: &Options) -> Result<Spec> {
    let defaults = common_flags(site)
        .with("--log.level", "info")
        .with("--data-dir", site.dir.display().to_string())
        .with("--objstore.config", bucket_config_yaml)
        .with("--block-sync-concurrency", "1")
        .with("--store.grpc.series-max-concurrency", "1")
        .with("--consistency-delay", "30m");
    Ok(component("store", defaults, options))
}

#[cfg(test)]
mod tests {
    use super::super::site::testing::site;
    use super::*;
    use crate::spec::Probe;

    fn args(spec: &Spec) -> Vec<String> {
        spec.options.command.as_ref().expect("command").to_vec()
    }

    fn assert_common(spec: &Spec) {
        assert_eq!(
            spec.ports,
            [("http".to_string(), 9090), ("grpc".to_string(), 9091)]
        );
        assert_eq!(spec.options.image, THANOS_IMAGE);
        assert!(spec.options.user.is_some(), "runs as the host user");
        match &spec.options.readiness {
            Some(Probe::Http(p)) => {
                let text = format!("{p:?}");
                assert!(
                    text.contains("port: \"http\"") && text.contains("path: \"/-/ready\""),
                    "{text}"
                );
                assert!(text.contains("status: 200..=200"), "{text}");
            }
            other => panic!("expected an HTTP probe, got {other:?}"),
        }
        assert!(spec.files.is_empty());
    }

    #[test]
    fn querier_links_every_endpoint() {
        let endpoints = [
            "e2e-test-s1:9091".to_string(),
            "e2e-test-s2:9091".to_string(),
        ];
        let spec = querier_spec(&site("query-1"), &endpoints, &Options::new()).expect("spec");
        assert_common(&spec);
        assert_eq!(
            args(&spec),
            [
                "query",
                "--debug.name=query-1",
                "--grpc-address=:9091",
                "--http-address=:9090",
                "--query.replica-label=replica",
                "--log.level=info",
                "--query.max-concurrent=1",
                "--endpoint=e2e-test-s1:9091",
                "--endpoint=e2e-test-s2:9091",
            ]
        );
        let alone = querier_spec(&site("q"), &[], &Options::new()).expect("spec");
        assert!(!args(&alone).iter().any(|a| a.starts_with("--endpoint")));
    }

    #[test]
    fn sidecar_points_at_prometheus_and_its_tsdb() {
        let spec = sidecar_spec(
            &site("sidecar-1"),
            "http://e2e-test-prometheus-1:9090",
            "/tmp/e2e-test/data/prometheus-1",
            &Options::new(),
        )
        .expect("spec");
        assert_common(&spec);
        assert_eq!(
            args(&spec),
            [
                "sidecar",
                "--debug.name=sidecar-1",
                "--grpc-address=:9091",
                "--http-address=:9090",
                "--prometheus.url=http://e2e-test-prometheus-1:9090",
                "--tsdb.path=/tmp/e2e-test/data/prometheus-1",
                "--log.level=info",
            ]
        );
    }

    #[test]
    fn store_reads_the_bucket_and_caches_in_its_dir() {
        // A flow-style YAML with commas must reach Thanos whole.
        let bucket =
            "type: S3\nconfig: {bucket: thanos, endpoint: 'e2e-test-minio:8090', insecure: true}";
        let spec = store_spec(&site("store-1"), bucket, &Options::new()).expect("spec");
        assert_common(&spec);
        assert_eq!(
            args(&spec),
            [
                "store",
                "--debug.name=store-1",
                "--grpc-address=:9091",
                "--http-address=:9090",
                "--log.level=info",
                "--data-dir=/tmp/e2e-test/data/store-1",
                &format!("--objstore.config={bucket}"),
                "--block-sync-concurrency=1",
                "--store.grpc.series-max-concurrency=1",
                "--consistency-delay=30m",
            ]
        );
    }

    #[test]
    fn options_override_flags_in_place_and_replace_the_image() {
        let tracing = "type: OTLP\nconfig: {client_type: grpc, endpoint: 'jaeger:4317'}";
        let options = Options::new()
            .image("thanos:dev")
            .flag("--log.level", "debug")
            .flag("--tracing.config", tracing)
            .flag("--query.replica-label", "replica,rule_replica");
        let spec = querier_spec(&site("q"), &["a:1".to_string()], &options).expect("spec");
        assert_eq!(spec.options.image, "thanos:dev");
        assert_eq!(
            args(&spec),
            [
                "query",
                "--debug.name=q",
                "--grpc-address=:9091",
                "--http-address=:9090",
                "--query.replica-label=replica",
                "--query.replica-label=rule_replica",
                "--log.level=debug",
                "--query.max-concurrent=1",
                "--endpoint=a:1",
                &format!("--tracing.config={tracing}"),
            ]
        );
    }
}
