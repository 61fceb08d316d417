//! The Prometheus ecosystem around a Prometheus server: Alertmanager, Pushgateway, the node
//! exporter, and any other exporter.
//!
//! ```no_run
//! use e2ekit::prelude::*;
//!
//! # async fn demo() -> e2ekit::Result<()> {
//! let env = Environment::new().await?;
//! let am = db::alertmanager(&env, "am", db::Options::new())?;
//! let pgw = db::pushgateway(&env, "pgw", db::Options::new())?;
//! let node = db::node_exporter(&env, "node", db::Options::new())?;
//! start_and_wait_ready(&[&am, &pgw, &node]).await?;
//! // Prometheus sends its alerts to `am.internal_endpoint(db::ACCESS_PORT)?`; see
//! // `PrometheusConfig::alertmanager`.
//! # Ok(()) }
//! ```

use super::{images, Options, Site, Spec, ACCESS_PORT};
use crate::env::Environment;
use crate::error::Result;
use crate::metrics::Instrumented;
use crate::spec::{Command, Flags, HttpProbe};

/// An Alertmanager on [`ACCESS_PORT`] (9093), instrumented there, alone (clustering off),
/// with its data in the runnable's directory and a configuration that accepts every alert
/// and sends it nowhere (`alertmanager.yml` in the runnable's directory; replace it with
/// [`Options::flag`]`("--config.file", ..)`). Ready on `/-/ready`. A custom image must have
/// `/bin/alertmanager`, as the official one does.
pub fn alertmanager(env: &Environment, name: &str, options: Options) -> Result<Instrumented> {
    let runnable = super::deploy(env, name, |site| alertmanager_spec(site, &options))?;
    Instrumented::new(runnable, ACCESS_PORT)
}

/// The configuration [`alertmanager`] starts with: one route to a receiver that sends
/// nothing, grouping every alert at once.
pub const ALERTMANAGER_CONFIG: &str = "route:\n  receiver: blackhole\n  group_wait: 0s\n  group_interval: 1s\nreceivers:\n  - name: blackhole\n";

pub(crate) fn alertmanager_spec(site: &Site, options: &Options) -> Result<Spec> {
    let flags = options.merged_flags(
        Flags::new()
            .with("--config.file", site.path("alertmanager.yml"))
            .with("--storage.path", site.path("data"))
            .with("--web.listen-address", ":9093")
            .with("--log.level", "warn"),
    );
    let mut args = flags.to_args();
    if !flags.contains_key("--cluster.listen-address") {
        // An empty address turns the gossip cluster off: one Alertmanager per runnable.
        // (Flags renders an empty value as a bare switch, so it is written out here.)
        args.push("--cluster.listen-address=".to_string());
    }
    let start = options
        .start_options(images::ALERTMANAGER)
        .command(
            Command::new("/bin/alertmanager")
                .args(args)
                .disable_entrypoint(),
        )
        .readiness(HttpProbe::new(ACCESS_PORT, "/-/ready"))
        .host_user();
    Ok(Spec::new(start)
        .port(ACCESS_PORT, 9093)
        .file("alertmanager.yml", ALERTMANAGER_CONFIG)
        .dir("data"))
}

/// A Pushgateway on [`ACCESS_PORT`] (9091), instrumented there: what is pushed to
/// `/metrics/job/<job>` is exposed on `/metrics` for a Prometheus to scrape (with
/// `honor_labels`). Ready on `/-/ready`. A custom image must have `/bin/pushgateway`.
pub fn pushgateway(env: &Environment, name: &str, options: Options) -> Result<Instrumented> {
    let runnable = super::deploy(env, name, |_site| {
        let flags = options.merged_flags(
            Flags::new()
                .with("--web.listen-address", ":9091")
                .with("--log.level", "warn"),
        );
        let start = options
            .start_options(images::PUSHGATEWAY)
            .command(
                Command::new("/bin/pushgateway")
                    .args(flags.to_args())
                    .disable_entrypoint(),
            )
            .readiness(HttpProbe::new(ACCESS_PORT, "/-/ready"));
        Ok(Spec::new(start).port(ACCESS_PORT, 9091))
    })?;
    Instrumented::new(runnable, ACCESS_PORT)
}

/// The node exporter on [`ACCESS_PORT`] (9100), instrumented there. In a container it
/// describes the container's view of the machine. A custom image must have
/// `/bin/node_exporter`.
pub fn node_exporter(env: &Environment, name: &str, options: Options) -> Result<Instrumented> {
    let flags = options.merged_flags(
        Flags::new()
            .with("--web.listen-address", ":9100")
            .with("--log.level", "warn"),
    );
    exporter(
        env,
        name,
        options.clone().image(
            options
                .image
                .clone()
                .unwrap_or(images::NODE_EXPORTER.into()),
        ),
        Command::new("/bin/node_exporter").args(flags.to_args()),
        9100,
    )
}

/// Any Prometheus exporter: `command` in `options`' image (it must be given, with
/// [`Options::image`]), serving metrics on `/metrics` at container port `port`, exposed as
/// [`ACCESS_PORT`] and instrumented there. Ready when `/metrics` answers 200.
///
/// ```no_run
/// use e2ekit::prelude::*;
///
/// # async fn demo(env: &Environment) -> e2ekit::Result<()> {
/// let redis = db::exporter(
///     env,
///     "redis-exporter",
///     db::Options::new().image("oliver006/redis_exporter:v1.62.0"),
///     Command::new("/redis_exporter").args(["--redis.addr", "redis://cache:6379"]),
///     9121,
/// )?;
/// # Ok(()) }
/// ```
pub fn exporter(
    env: &Environment,
    name: &str,
    options: Options,
    command: Command,
    port: u16,
) -> Result<Instrumented> {
    let image = options.image.clone().ok_or_else(|| {
        crate::error::Error::InvalidArgument(format!(
            "exporter {name:?} needs an image: db::Options::new().image(..)"
        ))
    })?;
    let runnable = super::deploy(env, name, |_site| {
        let start = options
            .start_options(&image)
            .command(command.disable_entrypoint())
            .readiness(HttpProbe::new(ACCESS_PORT, "/metrics"));
        Ok(Spec::new(start).port(ACCESS_PORT, port))
    })?;
    Instrumented::new(runnable, ACCESS_PORT)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn site() -> Site {
        Site {
            env: "e".into(),
            name: "am".into(),
            dir: PathBuf::from("/tmp/e2e/data/am"),
        }
    }

    #[test]
    fn alertmanager_runs_alone_with_its_files_in_its_directory() {
        let spec = alertmanager_spec(&site(), &Options::new()).expect("spec");
        let args = spec.options.command.as_ref().expect("command").to_vec();
        assert_eq!(args[0], "/bin/alertmanager");
        assert!(args.contains(&"--config.file=/tmp/e2e/data/am/alertmanager.yml".to_string()));
        assert!(args.contains(&"--cluster.listen-address=".to_string()));
        assert_eq!(spec.options.image(), images::ALERTMANAGER);
        assert!(spec
            .file_text("alertmanager.yml")
            .is_some_and(|t| t.contains("receiver: blackhole")));
        let custom = alertmanager_spec(
            &site(),
            &Options::new()
                .flag("--log.level", "debug")
                .image("local/am:1"),
        )
        .expect("spec");
        let args = custom.options.command.as_ref().expect("command").to_vec();
        assert!(args.contains(&"--log.level=debug".to_string()));
        assert!(!args.contains(&"--log.level=warn".to_string()));
        assert_eq!(custom.options.image(), "local/am:1");
    }
}
