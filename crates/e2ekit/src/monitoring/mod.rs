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
mod local;
pub mod prometheus;
mod query;
mod usage;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

#[cfg(feature = "chart")]
pub use chart::{Chart, Panel};
pub use query::{Sample, Series};

use crate::env::Runnable;
use crate::env::{Environment, EnvironmentListener};
use crate::error::{Error, MetricsWaitFailure, Result};
use crate::metrics::Instrumented;
use crate::spec::HttpProbe;
use crate::spec::{Command, StartOptions};
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
    for volume in [
        "/:/rootfs:ro",
        "/var/run:/var/run:ro",
        "/sys:/sys:ro",
        "/var/lib/docker/:/var/lib/docker:ro",
        "/dev/disk/:/dev/disk:ro",
    ] {
        opts = opts.volume(volume);
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

    /// The Prometheus image (default [`prometheus::DEFAULT_IMAGE`]); it must have
    /// `/bin/prometheus`, as the official image does.
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
    prometheus: Instrumented,
    local_endpoint: String,
}

/// Starts monitoring with default options.
pub async fn start(env: &Environment) -> Result<Monitoring> {
    start_with(env, MonitoringOptions::new()).await
}

/// Keeps the discovery file and the usage streams current.
struct Watcher {
    targets: std::path::PathBuf,
    usage: Option<(usage::UsageTable, tokio::runtime::Handle)>,
    backend: Arc<dyn crate::engine::Backend>,
}

impl EnvironmentListener for Watcher {
    fn on_change(&self, running: &[Runnable]) -> Result<()> {
        crate::host::fs::write_atomically(&self.targets, prometheus::targets(running))?;
        if let Some((table, runtime)) = &self.usage {
            usage::track(table, &self.backend, runtime, running);
        }
        Ok(())
    }
}

/// Starts Prometheus, the local metrics endpoint and container metrics; returns once
/// Prometheus is ready and has scraped this process once.
pub async fn start_with(env: &Environment, options: MonitoringOptions) -> Result<Monitoring> {
    let image = prometheus::resolve_image(env, options.image.as_deref()).await?;
    let table: usage::UsageTable = Arc::default();
    let server = local::start(options.local_metrics.clone(), table.clone()).await?;
    let abort = server.task.abort_handle();
    env.add_closer(move || abort.abort());
    let local_endpoint = format!("{}:{}", env.host_addr(), server.addr.port());

    let future = env
        .runnable(options.name.clone())
        .with_ports([("http", 9090)])
        .future()?;
    let files = prometheus::ConfigFiles::in_dir(future.dir());
    crate::host::fs::write_atomically(
        &files.config,
        prometheus::config(&files, options.scrape_interval, &local_endpoint),
    )?;
    crate::host::fs::write_atomically(&files.targets, "[]")?;
    let runnable = future.init(
        StartOptions::new(image)
            .entrypoint(["/bin/prometheus"])
            .command(
                Command::new(format!("--config.file={}", files.config.display())).args([
                    "--storage.tsdb.path=/prometheus",
                    "--web.listen-address=:9090",
                    "--web.enable-lifecycle",
                    "--log.level=warn",
                ]),
            )
            .readiness(HttpProbe::new("http", "/-/ready")),
    )?;
    let prom = Instrumented::new(runnable, "http")?;

    let watcher = Watcher {
        targets: files.targets.clone(),
        usage: options
            .container_metrics
            .then(|| (table.clone(), tokio::runtime::Handle::current())),
        backend: env.core().backend.clone(),
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
        prometheus: prom,
        local_endpoint,
    })
}

impl Monitoring {
    /// The Prometheus runnable.
    pub fn prometheus(&self) -> &Instrumented {
        &self.prometheus
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
        crate::interactive::open_in_browser(&self.ui_url()?)
    }

    /// Evaluates a PromQL expression now.
    pub async fn instant_query(&self, promql: &str) -> Result<Vec<Sample>> {
        query::instant(self.prometheus.http(), &self.ui_url()?, promql).await
    }

    /// Evaluates a PromQL expression over a time range.
    pub async fn range_query(
        &self,
        promql: &str,
        start: SystemTime,
        end: SystemTime,
        step: Duration,
    ) -> Result<Vec<Series>> {
        query::range(
            self.prometheus.http(),
            &self.ui_url()?,
            promql,
            start,
            end,
            step,
        )
        .await
    }

    /// Waits until an instant query returns at least one sample for which `check` holds.
    pub async fn wait_query(
        &self,
        promql: &str,
        check: impl Fn(&[Sample]) -> bool,
        policy: WaitPolicy,
    ) -> Result<Vec<Sample>> {
        let started = std::time::Instant::now();
        let mut last;
        let mut intervals = policy.intervals().map(|d| d.max(Duration::from_millis(50)));
        let mut checks = 0;
        loop {
            checks += 1;
            match self.instant_query(promql).await {
                Ok(samples) if check(&samples) => return Ok(samples),
                Ok(samples) => last = format!("{samples:?}"),
                Err(e) => last = e.to_string(),
            }
            if started.elapsed() >= policy.deadline() {
                return Err(Error::MetricsWait(Box::new(MetricsWaitFailure {
                    runnable: format!("runnable {:?}", self.prometheus.name()),
                    metrics: vec![promql.to_string()],
                    matchers: String::new(),
                    expected: "to pass the check".to_string(),
                    last_values: None,
                    last_error: Some(format!("last answer: {last}")),
                    after: started.elapsed(),
                    checks,
                })));
            }
            tokio::time::sleep(intervals.next().unwrap_or(Duration::from_millis(100))).await;
        }
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
}
