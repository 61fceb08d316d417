//! Key-value stores and databases of the catalog: Consul, etcd, Memcached, DynamoDB local, the
//! Bigtable emulator, Cassandra and Swift.
//!
//! Each listens on [`ACCESS_PORT`] for its main protocol. Flags in [`Options`] are appended to
//! (or replace, key by key) the entry's default arguments.

use std::time::Duration;

use super::{Options, Site, Spec, ACCESS_PORT};
use crate::env::Environment;
use crate::env::Runnable;
use crate::error::Result;
use crate::metrics::Instrumented;
use crate::spec::Command;
use crate::spec::Flags;
use crate::spec::{CmdProbe, HttpProbe, TcpProbe};
use crate::wait::WaitPolicy;

use super::images;

/// The metrics port of [`etcd`].
pub const ETCD_METRICS_PORT: &str = "metrics";

/// Flags as separate arguments (`-m 64`), for programs parsed with getopt or by hand.
fn separate_args(flags: &Flags) -> Vec<String> {
    let mut args = Vec::with_capacity(flags.len() * 2);
    for (k, v) in flags.iter() {
        args.push(k.to_string());
        if !v.is_empty() {
            args.push(v.to_string());
        }
    }
    args
}

/// For images whose own command is kept: flags replace it, as separate arguments.
fn image_command(options: &Options) -> Option<Command> {
    let mut args = separate_args(&options.flags).into_iter();
    let first = args.next()?;
    Some(Command::new(first).args(args))
}

/// Consul in dev mode (a single server that elects itself at once), HTTP API on
/// [`ACCESS_PORT`] (8500). Ready once it has a leader; instrumented through its agent metrics
/// endpoint in Prometheus format.
///
/// ```no_run
/// # use e2ekit::prelude::*;
/// # async fn demo(env: &Environment) -> e2ekit::Result<()> {
/// let consul = db::consul(env, "consul", db::Options::new())?;
/// start_and_wait_ready(&[&consul]).await?;
/// println!("http://{}/v1/kv/?recurse", consul.endpoint(db::ACCESS_PORT)?);
/// # Ok(()) }
/// ```
pub fn consul(env: &Environment, name: &str, options: Options) -> Result<Instrumented> {
    let runnable = super::deploy(env, name, |site| consul_spec(site, &options))?;
    Ok(Instrumented::new(runnable, ACCESS_PORT)?
        .metrics_path("/v1/agent/metrics?format=prometheus"))
}

pub(crate) fn consul_spec(_site: &Site, options: &Options) -> Result<Spec> {
    let flags = options.merged_flags(
        Flags::new()
            .with("-server", "")
            .with("-client", "0.0.0.0")
            // Dev mode: in memory, and the single server becomes leader immediately.
            .with("-dev", "")
            .with("-log-level", "err")
            // The agent serves Prometheus metrics only with a retention time set.
            .with("-hcl", "telemetry { prometheus_retention_time = \"1m\" }"),
    );
    let start = options
        .start_options(images::CONSUL)
        .command(Command::new("agent").args(flags.to_args()))
        // An elected leader answers with its address; before that the body is `""`.
        .readiness(HttpProbe::new(ACCESS_PORT, "/v1/status/leader").body_contains(":8300"));
    Ok(Spec::new(start).port(ACCESS_PORT, 8500))
}

/// etcd with its client API on [`ACCESS_PORT`] (2379) and metrics and health on
/// [`ETCD_METRICS_PORT`] (9000), where it is instrumented. Data lives in the runnable's
/// directory, written as the host user. A custom image must have `/usr/local/bin/etcd`.
pub fn etcd(env: &Environment, name: &str, options: Options) -> Result<Instrumented> {
    let runnable = super::deploy(env, name, |site| etcd_spec(site, &options))?;
    Instrumented::new(runnable, ETCD_METRICS_PORT)
}

pub(crate) fn etcd_spec(site: &Site, options: &Options) -> Result<Spec> {
    let flags = options.merged_flags(
        Flags::new()
            .with("--name", site.name.clone())
            .with("--data-dir", site.path("data"))
            .with("--listen-client-urls", "http://0.0.0.0:2379")
            // Advertise the name other runnables resolve, not 0.0.0.0.
            .with(
                "--advertise-client-urls",
                format!("http://{}", site.internal(2379)),
            )
            .with("--listen-metrics-urls", "http://0.0.0.0:9000")
            .with("--log-level", "error"),
    );
    let start = options
        .start_options(images::ETCD)
        .command(
            Command::new("/usr/local/bin/etcd")
                .args(flags.to_args())
                .disable_entrypoint(),
        )
        // /health answers 200 only once the member has a leader.
        .readiness(HttpProbe::new(ETCD_METRICS_PORT, "/health").body_contains("true"))
        .host_user();
    Ok(Spec::new(start)
        .port(ACCESS_PORT, 2379)
        .port(ETCD_METRICS_PORT, 9000))
}

/// Memcached on [`ACCESS_PORT`] (11211). It exposes no metrics. Ready when it accepts
/// connections on its container address (not the port proxy, which accepts early).
pub fn memcached(env: &Environment, name: &str, options: Options) -> Result<Runnable> {
    super::deploy(env, name, |site| memcached_spec(site, &options))
}

pub(crate) fn memcached_spec(_site: &Site, options: &Options) -> Result<Spec> {
    // Flags only: the official entrypoint prefixes arguments that start with `-` with
    // `memcached`, and the image runs as its unprivileged `memcache` user.
    let start = options
        .start_options(images::MEMCACHED)
        .command(Command::new("memcached").args(separate_args(&options.flags)))
        .readiness(TcpProbe::new(ACCESS_PORT));
    Ok(Spec::new(start).port(ACCESS_PORT, 11211))
}

/// DynamoDB local, in memory with one shared database, on [`ACCESS_PORT`] (8000). It exposes
/// no metrics and has no health endpoint: ready when its API answers at all (400 to a bare
/// GET).
pub fn dynamodb(env: &Environment, name: &str, options: Options) -> Result<Runnable> {
    super::deploy(env, name, |site| dynamodb_spec(site, &options))
}

pub(crate) fn dynamodb_spec(_site: &Site, options: &Options) -> Result<Spec> {
    let flags = options.merged_flags(Flags::new().with("-inMemory", "").with("-sharedDb", ""));
    let start = options
        .start_options(images::DYNAMODB)
        .command(
            Command::new("-jar")
                .arg("DynamoDBLocal.jar")
                .args(separate_args(&flags)),
        )
        .readiness(HttpProbe::new(ACCESS_PORT, "/").status(400..=400));
    Ok(Spec::new(start).port(ACCESS_PORT, 8000))
}

/// The Bigtable emulator, gRPC on [`ACCESS_PORT`] (9035). Ready when it accepts connections.
pub fn bigtable(env: &Environment, name: &str, options: Options) -> Result<Runnable> {
    super::deploy(env, name, |site| bigtable_spec(site, &options))
}

pub(crate) fn bigtable_spec(_site: &Site, options: &Options) -> Result<Spec> {
    let mut start = options
        .start_options(images::BIGTABLE)
        .readiness(TcpProbe::new(ACCESS_PORT));
    if let Some(command) = image_command(options) {
        start = start.command(command);
    }
    Ok(Spec::new(start).port(ACCESS_PORT, 9035))
}

/// Cassandra, CQL on [`ACCESS_PORT`] (9042). Ready when `nodetool` reports the node Up and
/// Normal; it starts slowly, so the default wait is 3 minutes.
pub fn cassandra(env: &Environment, name: &str, options: Options) -> Result<Runnable> {
    super::deploy(env, name, |site| cassandra_spec(site, &options))
}

pub(crate) fn cassandra_spec(_site: &Site, options: &Options) -> Result<Spec> {
    let mut start = options
        .start_options(images::CASSANDRA)
        .readiness(CmdProbe::new(
            Command::new("bash").args(["-c", "nodetool status | grep -q '^UN'"]),
        ));
    if let Some(command) = image_command(options) {
        start = start.command(command);
    }
    let slow = WaitPolicy::timeout(Duration::from_secs(180))
        .min_interval(Duration::from_millis(250))
        .max_interval(Duration::from_secs(1));
    if options.wait_policy.is_none() {
        start = start.wait_policy(slow);
    }
    Ok(Spec::new(start).port(ACCESS_PORT, 9042))
}

/// OpenStack Swift (all in one), proxy on [`ACCESS_PORT`] (8080), test account
/// `test:tester`/`testing` at `/auth/v1.0`. Ready when the proxy answers: 404 for `/`,
/// which has no account.
pub fn swift(env: &Environment, name: &str, options: Options) -> Result<Runnable> {
    super::deploy(env, name, |site| swift_spec(site, &options))
}

pub(crate) fn swift_spec(_site: &Site, options: &Options) -> Result<Spec> {
    let mut start = options
        .start_options(images::SWIFT)
        .readiness(HttpProbe::new(ACCESS_PORT, "/").status(404..=404));
    if let Some(command) = image_command(options) {
        start = start.command(command);
    }
    Ok(Spec::new(start).port(ACCESS_PORT, 8080))
}

#[cfg(test)]
mod tests {
    use super::super::site::testing::site;
    use super::*;
    use crate::spec::Probe;

    fn command(spec: &Spec) -> Vec<String> {
        spec.options
            .command
            .as_ref()
            .map(Command::to_vec)
            .unwrap_or_default()
    }

    fn http_probe(
        spec: &Spec,
    ) -> (
        String,
        String,
        std::ops::RangeInclusive<u16>,
        Option<String>,
    ) {
        match &spec.options.readiness {
            Some(Probe::Http(p)) => (
                p.port.clone(),
                p.path.clone(),
                p.status.clone(),
                p.body.clone(),
            ),
            other => panic!("expected an HTTP probe, got {other:?}"),
        }
    }

    #[test]
    fn consul_runs_dev_mode_and_waits_for_a_leader() {
        let spec = consul_spec(&site("consul"), &Options::new()).expect("spec");
        assert_eq!(spec.options.image(), images::CONSUL);
        assert_eq!(spec.ports, [("http".to_string(), 8500)]);
        assert_eq!(
            command(&spec),
            [
                "agent",
                "-server",
                "-client=0.0.0.0",
                "-dev",
                "-log-level=err",
                "-hcl=telemetry { prometheus_retention_time = \"1m\" }",
            ]
        );
        let (port, path, status, body) = http_probe(&spec);
        assert_eq!(
            (port.as_str(), path.as_str()),
            ("http", "/v1/status/leader")
        );
        assert_eq!(status, 200..=299);
        assert_eq!(body.as_deref(), Some(":8300"));
    }

    #[test]
    fn etcd_serves_clients_and_metrics_and_keeps_data_in_its_dir() {
        let spec = etcd_spec(&site("etcd-1"), &Options::new()).expect("spec");
        assert_eq!(spec.options.image(), images::ETCD);
        assert_eq!(
            spec.ports,
            [("http".to_string(), 2379), ("metrics".to_string(), 9000)]
        );
        assert_eq!(
            command(&spec),
            [
                "/usr/local/bin/etcd",
                "--name=etcd-1",
                "--data-dir=/tmp/e2e-test/data/etcd-1/data",
                "--listen-client-urls=http://0.0.0.0:2379",
                "--advertise-client-urls=http://e2e-test-etcd-1:2379",
                "--listen-metrics-urls=http://0.0.0.0:9000",
                "--log-level=error",
            ]
        );
        assert!(spec
            .options
            .command
            .as_ref()
            .is_some_and(|c| c.entrypoint_disabled));
        assert!(spec.options.user.is_some(), "data written as the host user");
        let (port, path, _, body) = http_probe(&spec);
        assert_eq!((port.as_str(), path.as_str()), ("metrics", "/health"));
        assert_eq!(body.as_deref(), Some("true"));
    }

    #[test]
    fn flag_overrides_replace_defaults_in_place() {
        let options = Options::new()
            .flag("--log-level", "debug")
            .flag("--snapshot-count", "10");
        let args = command(&etcd_spec(&site("e"), &options).expect("spec"));
        assert_eq!(args[6], "--log-level=debug");
        assert_eq!(args[7], "--snapshot-count=10");
        let mc = memcached_spec(&site("mc"), &Options::new().flag("-m", "128")).expect("spec");
        assert_eq!(command(&mc), ["memcached", "-m", "128"]);
    }

    #[test]
    fn memcached_is_probed_over_tcp() {
        let spec = memcached_spec(&site("mc"), &Options::new().image("local/mc")).expect("spec");
        assert_eq!(spec.options.image(), "local/mc");
        assert_eq!(spec.ports, [("http".to_string(), 11211)]);
        assert_eq!(command(&spec), ["memcached"]);
        assert!(matches!(&spec.options.readiness, Some(Probe::Tcp(p)) if p.port == "http"));
    }

    #[test]
    fn dynamodb_runs_in_memory_and_accepts_its_400() {
        let spec = dynamodb_spec(&site("ddb"), &Options::new()).expect("spec");
        assert_eq!(spec.options.image(), images::DYNAMODB);
        assert_eq!(spec.ports, [("http".to_string(), 8000)]);
        assert_eq!(
            command(&spec),
            ["-jar", "DynamoDBLocal.jar", "-inMemory", "-sharedDb"]
        );
        let (_, path, status, _) = http_probe(&spec);
        assert_eq!((path.as_str(), status), ("/", 400..=400));
    }

    #[test]
    fn bigtable_cassandra_and_swift_keep_the_image_command() {
        let bt = bigtable_spec(&site("bt"), &Options::new()).expect("spec");
        assert_eq!(bt.ports, [("http".to_string(), 9035)]);
        assert!(bt.options.command.is_none());
        assert!(matches!(&bt.options.readiness, Some(Probe::Tcp(_))));

        let cs = cassandra_spec(&site("cs"), &Options::new()).expect("spec");
        assert_eq!(cs.ports, [("http".to_string(), 9042)]);
        assert!(cs.options.command.is_none());
        match &cs.options.readiness {
            Some(Probe::Cmd(p)) => assert_eq!(
                p.command.to_vec(),
                ["bash", "-c", "nodetool status | grep -q '^UN'"]
            ),
            other => panic!("expected a command probe, got {other:?}"),
        }
        assert_eq!(cs.options.wait_policy.timeout, Duration::from_secs(180));

        let sw = swift_spec(&site("sw"), &Options::new()).expect("spec");
        assert_eq!(sw.ports, [("http".to_string(), 8080)]);
        let (_, path, status, _) = http_probe(&sw);
        assert_eq!((path.as_str(), status), ("/", 404..=404));
    }

    #[test]
    fn wait_policy_option_wins() {
        let policy = WaitPolicy::timeout(Duration::from_secs(5));
        let cs = cassandra_spec(&site("cs"), &Options::new().wait_policy(policy)).expect("spec");
        assert_eq!(cs.options.wait_policy, policy);
    }
}
