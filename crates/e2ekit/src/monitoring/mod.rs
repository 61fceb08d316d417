//! Monitoring: a Prometheus that scrapes every instrumented runnable (started before or after
//! it), the test process itself, and every container's resource usage.
//!
//! ```no_run
//! use e2ekit::prelude::*;
//!
//! # async fn demo(env: &Environment) -> e2ekit::Result<()> {
//! let mon = monitoring::start_with(env, MonitoringOptions::new()
//!     .scrape_interval(Duration::from_secs(1))).await?;
//! println!("Prometheus UI: {}", mon.ui_url()?);
//! let up: Vec<Sample> = mon.instant_query("up").await?;
//! let memory = mon.instant_query("container_memory_working_set_bytes").await?;
//! # let _ = (up, memory);
//! # Ok(()) }
//! ```

#[cfg(feature = "chart")]
pub mod chart;
mod discovery;
mod local;
mod usage;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

pub use crate::prometheus::{Sample, Series};
#[cfg(feature = "chart")]
pub use chart::{Chart, Panel};

use crate::env::Runnable;
use crate::env::{Environment, EnvironmentListener};
use crate::error::{Error, Result};
use crate::metrics::Instrumented;
use crate::prometheus::config::{self, PrometheusConfig, ScrapeConfig};
use crate::prometheus::server::{self, Prometheus};
use crate::prometheus::{image, PromQl};
use crate::spec::HttpProbe;
use crate::spec::{Command, Flags, StartOptions};
use crate::wait::WaitPolicy;

/// Options of [`start_with`].
#[derive(Clone)]
pub struct MonitoringOptions {
    image: Option<String>,
    scrape_interval: Duration,
    local_metrics: local::LocalMetrics,
    container_metrics: bool,
    cadvisor: Option<String>,
    name: String,
}

/// cAdvisor's official image, for [`MonitoringOptions::cadvisor`].
pub const CADVISOR_IMAGE: &str = "gcr.io/cadvisor/cadvisor:v0.49.1";

/// How cAdvisor must run to see the engine's containers: privileged, with the host's root,
/// /sys, /var/run and the engine's data directory mounted read-only.
fn cadvisor_options(image: &str) -> StartOptions {
    let mut opts = StartOptions::new(image)
        .privileged(true)
        .command(Command::new("--docker_only=true").arg("--housekeeping_interval=1s"))
        .readiness(HttpProbe::new("http", "/healthz"));
    for (host, volume) in [
        ("/", "/:/rootfs:ro"),
        ("/var/run", "/var/run:/var/run:ro"),
        ("/sys", "/sys:/sys:ro"),
        ("/var/lib/docker/", "/var/lib/docker/:/var/lib/docker:ro"),
        ("/dev/disk/", "/dev/disk/:/dev/disk:ro"),
    ] {
        // Machines without some of these (a container has no /dev/disk) still run cAdvisor;
        // a bind mount of a missing host path is refused rather than created by the engine.
        if std::path::Path::new(host).exists() {
            opts = opts.volume(volume);
        }
    }
    opts
}

impl std::fmt::Debug for MonitoringOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MonitoringOptions")
            .field("image", &self.image)
            .field("scrape_interval", &self.scrape_interval)
            .field("container_metrics", &self.container_metrics)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Default for MonitoringOptions {
    fn default() -> Self {
        Self {
            image: None,
            scrape_interval: Duration::from_secs(5),
            local_metrics: Arc::new(local::process_metrics),
            container_metrics: true,
            cadvisor: None,
            name: "prometheus".to_string(),
        }
    }
}

impl MonitoringOptions {
    /// Defaults: the official Prometheus image (or one built from the host's Prometheus when
    /// it cannot be pulled), a 5 s scrape interval, process metrics of this process, and
    /// container metrics on.
    pub fn new() -> Self {
        Self::default()
    }

    /// The Prometheus image (default: the official one, `db::images::PROMETHEUS`, or
    /// [`host_image`](crate::prometheus::host_image) when it cannot be pulled); it must have
    /// `prometheus` on its `PATH`, as the official image does.
    pub fn prometheus_image(mut self, image: impl Into<String>) -> Self {
        self.image = Some(image.into());
        self
    }

    /// How often Prometheus scrapes.
    pub fn scrape_interval(mut self, interval: Duration) -> Self {
        self.scrape_interval = interval;
        self
    }

    /// What this process exposes as its own metrics, rendered on every scrape (e.g. from your
    /// own registry). Default: its memory, CPU, threads and file descriptors.
    pub fn local_metrics(mut self, render: impl Fn() -> String + Send + Sync + 'static) -> Self {
        self.local_metrics = Arc::new(render);
        self
    }

    /// Exports every runnable's CPU, memory and network usage (default on).
    pub fn container_metrics(mut self, on: bool) -> Self {
        self.container_metrics = on;
        self
    }

    /// Also runs cAdvisor (privileged, as upstream e2e does) from `image` (e.g.
    /// [`CADVISOR_IMAGE`]), scraped like any instrumented runnable under job `cadvisor`. The
    /// built-in container metrics need neither privileges nor an extra image; this is for
    /// cAdvisor's fuller set.
    pub fn cadvisor(mut self, image: impl Into<String>) -> Self {
        self.cadvisor = Some(image.into());
        self
    }

    /// The Prometheus runnable's name (default `prometheus`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }
}

/// A running monitoring setup; see [`start`].
#[derive(Debug, Clone)]
pub struct Monitoring {
    prometheus: Prometheus,
    promql: PromQl,
    local_endpoint: String,
}

/// Starts monitoring with default options.
pub async fn start(env: &Environment) -> Result<Monitoring> {
    start_with(env, MonitoringOptions::new()).await
}

/// Keeps the discovery file and the usage streams current.
struct Watcher {
    targets: std::path::PathBuf,
    /// The Prometheus reading `targets`: on an engine that cannot see this host's files, the
    /// file is copied into it after each change. Weak: the environment holds this watcher.
    prometheus: std::sync::Weak<crate::env::runnable::RunnableInner>,
    usage: Option<(usage::UsageTable, tokio::runtime::Handle)>,
    backend: Arc<dyn crate::engine::Backend>,
}

impl EnvironmentListener for Watcher {
    fn on_change(&self, running: &[Runnable]) -> Result<()> {
        let groups = discovery::target_groups(running);
        crate::host::fs::write_atomically(&self.targets, config::target_groups(&groups))?;
        if !self.backend.sees_host_files() {
            if let Some(prom) = self.prometheus.upgrade().map(Runnable::from_inner) {
                let targets = self.targets.clone();
                crate::runtime::spawn(async move {
                    if let Err(e) = prom.push_host_file(&targets).await {
                        tracing::warn!(error = %e.report(), "could not update the scrape targets in Prometheus");
                    }
                });
            }
        }
        if let Some((table, runtime)) = &self.usage {
            usage::track(table, &self.backend, runtime, running);
        }
        Ok(())
    }
}

/// Monitoring's additions to the one Prometheus definition: quiet logs (they would fill every
/// test's output) and the lifecycle API (`/-/reload`, `/-/quit`) for users poking at it.
fn server_flags() -> Flags {
    Flags::new()
        .with("--log.level", "warn")
        .with("--web.enable-lifecycle", "")
}

/// Monitoring's configuration: the instrumented runnables through the discovery file
/// `targets`, this process's own metrics and the container metrics, both at `local`.
fn monitoring_config(targets: &Path, scrape_interval: Duration, local: &str) -> PrometheusConfig {
    let interval = config::duration(scrape_interval);
    PrometheusConfig::new()
        .scrape_interval(interval.clone())
        .evaluation_interval(interval)
        .scrape(
            ScrapeConfig::new("instrumented")
                .file_sd(targets, "1s")
                .extra(
                    "tls_config",
                    serde_json::json!({"insecure_skip_verify": true}),
                ),
        )
        .scrape(
            ScrapeConfig::new("local")
                .target(local)
                .metrics_path(local::LOCAL_PATH),
        )
        .scrape(
            ScrapeConfig::new("containers")
                .target(local)
                .metrics_path(local::CONTAINERS_PATH)
                .extra("honor_labels", serde_json::json!(true)),
        )
}

/// Starts Prometheus, the local metrics endpoint and container metrics; returns once
/// Prometheus is ready and has scraped this process once.
pub async fn start_with(env: &Environment, options: MonitoringOptions) -> Result<Monitoring> {
    let image = image::resolve(env, &options.name, options.image.as_deref()).await?;
    let table: usage::UsageTable = Arc::default();
    let server = local::start(options.local_metrics.clone(), table.clone()).await?;
    let abort = server.task.abort_handle();
    env.add_closer(move || abort.abort());
    let local_endpoint = format!("{}:{}", env.host_addr(), server.addr.port());

    let prom = server::define(
        env,
        &options.name,
        StartOptions::new(image),
        &server_flags(),
        |future| {
            let targets = future.dir().join(discovery::TARGETS_FILE);
            Ok(monitoring_config(
                &targets,
                options.scrape_interval,
                &local_endpoint,
            ))
        },
    )?;
    let targets = prom.runnable().dir().join(discovery::TARGETS_FILE);
    crate::host::fs::write_atomically(&targets, config::target_groups(&[]))?;

    let watcher = Watcher {
        targets,
        prometheus: prom.runnable().downgrade(),
        usage: options
            .container_metrics
            .then(|| (table.clone(), crate::runtime::handle())),
        backend: env.core().background.clone(),
    };
    env.add_listener(Arc::new(watcher));
    if let Some(image) = &options.cadvisor {
        let cadvisor = env
            .runnable("cadvisor")
            .with_ports([("http", 8080)])
            .init(cadvisor_options(image))?;
        let cadvisor = Instrumented::new(cadvisor, "http")?;
        cadvisor.runnable().start().await?;
        cadvisor.runnable().wait_ready().await?;
    }
    prom.runnable().start().await?;
    prom.runnable().wait_ready().await?;

    // Returning before the first scrape would make early queries see nothing.
    let mut scrapes = server.scrapes.clone();
    let limit = options.scrape_interval * 3 + Duration::from_secs(30);
    let scraped = tokio::time::timeout(limit, scrapes.wait_for(|n| *n > 0)).await;
    if !matches!(scraped, Ok(Ok(_))) {
        return Err(Error::NotReady {
            runnable: options.name,
            after: limit,
            attempts: 0,
            last_error: format!(
                "Prometheus never scraped this process at {local_endpoint} (can containers reach the host there? a host firewall?)"
            ),
            logs: crate::error::LogTail::default(),
        });
    }
    Ok(Monitoring {
        // Monitoring's queries always tolerated warnings; they still do.
        promql: prom.promql().allow_warnings(),
        prometheus: prom,
        local_endpoint,
    })
}

impl Monitoring {
    /// The Prometheus runnable.
    pub fn prometheus(&self) -> &Instrumented {
        self.prometheus.instrumented()
    }

    /// The PromQL client behind [`Monitoring::instant_query`] and friends (it accepts answers
    /// with warnings).
    pub fn promql(&self) -> &PromQl {
        &self.promql
    }

    /// Where Prometheus scrapes this process (`<host address>:<port>`).
    pub fn local_endpoint(&self) -> &str {
        &self.local_endpoint
    }

    /// The Prometheus web UI, as reachable from the host.
    pub fn ui_url(&self) -> Result<String> {
        Ok(format!("http://{}", self.prometheus.endpoint("http")?))
    }

    /// Opens the Prometheus web UI in the default browser.
    pub fn open_user_interface_in_browser(&self) -> Result<()> {
        crate::host::browser::open_in_browser(&self.ui_url()?)
    }

    /// Evaluates a PromQL expression now; see [`PromQl::instant`].
    pub async fn instant_query(&self, promql: &str) -> Result<Vec<Sample>> {
        self.promql.instant(promql).await
    }

    /// Evaluates a PromQL expression over a time range; see [`PromQl::range`].
    pub async fn range_query(
        &self,
        promql: &str,
        start: SystemTime,
        end: SystemTime,
        step: Duration,
    ) -> Result<Vec<Series>> {
        self.promql.range(promql, start, end, step).await
    }

    /// Waits until an instant query returns samples for which `check` holds; see
    /// [`PromQl::wait`].
    pub async fn wait_query(
        &self,
        promql: &str,
        check: impl Fn(&[Sample]) -> bool,
        policy: WaitPolicy,
    ) -> Result<Vec<Sample>> {
        self.promql.wait(promql, check, policy).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cadvisor_runs_privileged_with_the_engine_state_mounted() {
        let opts = cadvisor_options(CADVISOR_IMAGE);
        assert!(opts.privileged);
        assert!(opts
            .volumes
            .iter()
            .any(|v| v == "/var/lib/docker/:/var/lib/docker:ro"));
        assert!(opts.volumes.iter().any(|v| v == "/sys:/sys:ro"));
        assert!(matches!(opts.readiness, Some(crate::spec::Probe::Http(_))));
        let with = MonitoringOptions::new().cadvisor(CADVISOR_IMAGE);
        assert_eq!(with.cadvisor.as_deref(), Some(CADVISOR_IMAGE));
        assert!(MonitoringOptions::new().cadvisor.is_none());
    }

    #[test]
    fn config_has_three_jobs_and_discovers_instrumented_runnables_from_a_file() {
        let targets = Path::new("/tmp/x/targets.json");
        let text = monitoring_config(targets, Duration::from_secs(5), "10.0.0.1:1234").to_yaml();
        let v: serde_json::Value = serde_json::from_str(&text).expect("json");
        assert_eq!(v["global"]["scrape_interval"], "5s");
        assert_eq!(v["global"]["evaluation_interval"], "5s");
        let jobs: Vec<&str> = v["scrape_configs"]
            .as_array()
            .expect("jobs")
            .iter()
            .filter_map(|j| j["job_name"].as_str())
            .collect();
        assert_eq!(jobs, ["instrumented", "local", "containers"]);
        let instrumented = &v["scrape_configs"][0];
        assert_eq!(
            instrumented["file_sd_configs"],
            serde_json::json!([{"files": ["/tmp/x/targets.json"], "refresh_interval": "1s"}])
        );
        assert_eq!(instrumented["tls_config"]["insecure_skip_verify"], true);
        assert_eq!(v["scrape_configs"][1]["metrics_path"], local::LOCAL_PATH);
        assert_eq!(v["scrape_configs"][2]["honor_labels"], true);
        assert_eq!(
            v["scrape_configs"][2]["static_configs"][0]["targets"][0],
            "10.0.0.1:1234"
        );
    }

    #[test]
    fn monitorings_prometheus_is_the_one_definition_with_quiet_logs() {
        let options = server::start_options(
            Path::new("/d/prometheus"),
            StartOptions::new("img"),
            &server_flags(),
        );
        let args = options.command.as_ref().expect("command").to_vec();
        assert_eq!(args[0], "prometheus");
        assert!(args.contains(&"--log.level=warn".to_string()), "{args:?}");
        assert!(args.contains(&"--storage.tsdb.path=/d/prometheus/".to_string()));
        assert!(options.user.is_some());
    }
}
