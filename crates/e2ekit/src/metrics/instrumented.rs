//! Runnables that expose Prometheus metrics, and waits on those metrics.

use std::fmt;
use std::ops::Deref;
use std::time::Duration;

use super::expectation::Expectation;
use super::options::{default_metrics_wait, MetricsOptions};
use super::parse::parse;
use super::sum::{sum_metrics, SumError};
use crate::env::{AsRunnable, Runnable};
use crate::error::{Error, MetricsWaitFailure, Result};
use crate::wait::{Poll, WaitPolicy};

/// The marker of an instrumented runnable: where its metrics are, for monitoring to scrape.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ScrapeTarget {
    /// The port name.
    pub port: String,
    /// The metrics path (with a query, if any).
    pub path: String,
    /// Served over HTTPS.
    pub https: bool,
}

/// Longest single metrics fetch, so a hung endpoint cannot eat a whole wait. Inside a wait,
/// a fetch is also bounded by the time left.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// The shortest fetch a wait still allows near its deadline.
const MIN_FETCH: Duration = Duration::from_millis(50);

/// A runnable whose Prometheus metrics can be read and waited on. It stays a runnable:
/// it dereferences to [`Runnable`] and works with [`crate::start_and_wait_ready`].
///
/// ```no_run
/// use e2ekit::prelude::*;
///
/// # async fn demo(app: Runnable) -> e2ekit::Result<()> {
/// let app = Instrumented::new(app, "http")?; // metrics at /metrics on port "http"
/// start_and_wait_ready(&[&app]).await?;
/// app.wait_sum_metrics(greater_or_equal(1.0), ["demo_requests_total"]).await?;
/// let sums = app
///     .sum_metrics(["demo_requests_total"], MetricsOptions::new()
///         .label_matchers([Matcher::regex("code", "5..")])
///         .skip_missing_metrics())
///     .await?;
/// # let _ = sums;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Instrumented {
    runnable: Runnable,
    port: String,
    path: String,
    https: bool,
    wait: WaitPolicy,
}

impl fmt::Debug for Instrumented {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Instrumented")
            .field("runnable", &self.runnable)
            .field("port", &self.port)
            .field("path", &self.path)
            .field("https", &self.https)
            .finish()
    }
}

impl Instrumented {
    /// Metrics served at `/metrics` over HTTP on the named port. Errors if the runnable has no
    /// such port.
    pub fn new(runnable: Runnable, metrics_port: &str) -> Result<Self> {
        runnable.port(metrics_port)?;
        let this = Self {
            runnable,
            port: metrics_port.to_string(),
            path: "/metrics".to_string(),
            https: false,
            wait: default_metrics_wait(),
        };
        this.mark();
        Ok(this)
    }

    /// Records the metrics endpoint on the runnable, where monitoring finds it.
    fn mark(&self) {
        self.runnable.set_marker(ScrapeTarget {
            port: self.port.clone(),
            path: self.path.clone(),
            https: self.https,
        });
    }

    /// Another metrics path.
    pub fn metrics_path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self.mark();
        self
    }

    /// Reads metrics over HTTPS (certificates are not verified).
    pub fn https(mut self) -> Self {
        self.https = true;
        self.mark();
        self
    }

    /// The wait policy of [`Instrumented::wait_sum_metrics`] (options given to the `_with`
    /// variants override it). Default: 30 s. As with [`MetricsOptions::wait`], intervals not
    /// set on the policy are the metric-wait ones (after 5 ms, each pause an eighth longer,
    /// up to every 250 ms), so `WaitPolicy::timeout(d)` changes only the deadline.
    pub fn wait_policy(mut self, policy: WaitPolicy) -> Self {
        self.wait = policy;
        self
    }

    /// The wrapped runnable.
    pub fn runnable(&self) -> &Runnable {
        &self.runnable
    }

    /// The name of the metrics port.
    pub fn metrics_port(&self) -> &str {
        &self.port
    }

    /// The metrics URL as reachable from the host.
    pub fn metrics_url(&self) -> Result<String> {
        let scheme = if self.https { "https" } else { "http" };
        Ok(format!(
            "{scheme}://{}{}",
            self.runnable.endpoint(&self.port)?,
            self.path
        ))
    }

    /// The raw exposition text.
    pub async fn metrics(&self) -> Result<String> {
        self.fetch(FETCH_TIMEOUT).await
    }

    /// The exposition text, giving up after `limit`. Reads at most 64 MiB: a larger page is
    /// refused (and not read further) rather than held in memory.
    async fn fetch(&self, limit: Duration) -> Result<String> {
        /// Most bytes one read of a metrics page takes. Real pages are kilobytes to a few
        /// megabytes; a runaway exporter must not take the test process's memory with it.
        const MAX_BYTES: usize = 64 << 20;
        let url = self.metrics_url()?;
        let fail = |reason: &str, source: Option<reqwest::Error>| Error::MetricsFetch {
            runnable: self.runnable.name().to_string(),
            url: url.clone(),
            reason: reason.to_string(),
            source: source.map(|e| e.into()),
        };
        let too_big = |what: String| {
            fail(
                &format!(
                    "{what}, over the {} MiB e2ekit reads of a metrics page",
                    MAX_BYTES >> 20
                ),
                None,
            )
        };
        let mut response = self
            .runnable
            .http()
            .get(&url)
            .timeout(limit)
            .send()
            .await
            .map_err(|e| fail("the request failed", Some(e)))?;
        let status = response.status();
        if !status.is_success() {
            return Err(fail(&format!("it answered {status}"), None));
        }
        let declared = response.content_length();
        if let Some(n) = declared.filter(|n| *n > MAX_BYTES as u64) {
            return Err(too_big(format!("it announced {n} bytes")));
        }
        // Streamed, so reading stops at the limit whatever the server sends.
        let mut body = Vec::with_capacity(declared.map_or(0, |n| n as usize));
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| fail("reading the answer failed", Some(e)))?
        {
            if body.len() + chunk.len() > MAX_BYTES {
                return Err(too_big(format!("it sent more than {MAX_BYTES} bytes")));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(match String::from_utf8(body) {
            Ok(text) => text,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        })
    }

    /// The sum of each named metric's matching series (see [`MetricsOptions`]).
    pub async fn sum_metrics<I, S>(&self, names: I, options: MetricsOptions) -> Result<Vec<f64>>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let names = to_names(names);
        sums_of(std::slice::from_ref(self), &names, &options, FETCH_TIMEOUT).await
    }

    /// Waits until the sums of the named metrics meet the expectation, with default options.
    pub async fn wait_sum_metrics<I, S>(&self, expectation: Expectation, names: I) -> Result<()>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let options = MetricsOptions::new().wait(default_wait(std::slice::from_ref(self)));
        self.wait_sum_metrics_with(expectation, names, options)
            .await
    }

    /// Waits until the sums of the named metrics meet the expectation.
    pub async fn wait_sum_metrics_with<I, S>(
        &self,
        expectation: Expectation,
        names: I,
        options: MetricsOptions,
    ) -> Result<()>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        wait_for(
            std::slice::from_ref(self),
            &expectation,
            &to_names(names),
            &options,
        )
        .await
    }

    /// Waits until no series of the metric (matching the options' matchers) is exposed.
    pub async fn wait_removed_metric(&self, name: &str, options: MetricsOptions) -> Result<()> {
        wait_removed(std::slice::from_ref(self), name, options).await
    }
}

impl Deref for Instrumented {
    type Target = Runnable;
    fn deref(&self) -> &Runnable {
        &self.runnable
    }
}

impl AsRunnable for Instrumented {
    fn as_runnable(&self) -> &Runnable {
        &self.runnable
    }
}

/// Several instances of one service, measured as one: sums are taken across all instances.
///
/// ```no_run
/// use e2ekit::prelude::*;
///
/// # async fn demo(a: Instrumented, b: Instrumented) -> e2ekit::Result<()> {
/// let replicas = CompositeInstrumented::new([a, b]);
/// replicas.wait_sum_metrics(greater_or_equal(10.0), ["demo_requests_total"]).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct CompositeInstrumented {
    instances: Vec<Instrumented>,
}

impl CompositeInstrumented {
    /// Groups instances.
    pub fn new(instances: impl IntoIterator<Item = Instrumented>) -> Self {
        Self {
            instances: instances.into_iter().collect(),
        }
    }

    /// The instances.
    pub fn instances(&self) -> &[Instrumented] {
        &self.instances
    }

    /// Sums across all instances.
    pub async fn sum_metrics<I, S>(&self, names: I, options: MetricsOptions) -> Result<Vec<f64>>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        sums_of(&self.instances, &to_names(names), &options, FETCH_TIMEOUT).await
    }

    /// Waits until the sums across all instances meet the expectation, with default options
    /// and the instances' wait policies (the most patient one decides).
    pub async fn wait_sum_metrics<I, S>(&self, expectation: Expectation, names: I) -> Result<()>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let options = MetricsOptions::new().wait(default_wait(&self.instances));
        self.wait_sum_metrics_with(expectation, names, options)
            .await
    }

    /// Waits until the sums across all instances meet the expectation.
    pub async fn wait_sum_metrics_with<I, S>(
        &self,
        expectation: Expectation,
        names: I,
        options: MetricsOptions,
    ) -> Result<()>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        wait_for(&self.instances, &expectation, &to_names(names), &options).await
    }

    /// Waits until no instance exposes the metric.
    pub async fn wait_removed_metric(&self, name: &str, options: MetricsOptions) -> Result<()> {
        wait_removed(&self.instances, name, options).await
    }
}

/// The wait policy of a default wait over `instances`: that of the instance with the longest
/// deadline (for one instance, its own policy).
fn default_wait(instances: &[Instrumented]) -> WaitPolicy {
    instances
        .iter()
        .map(|i| i.wait)
        .max_by_key(WaitPolicy::deadline)
        .unwrap_or_else(default_metrics_wait)
}

fn to_names<I, S>(names: I) -> Vec<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    names.into_iter().map(|n| n.as_ref().to_string()).collect()
}

fn describe(instances: &[Instrumented]) -> String {
    match instances {
        [one] => format!("runnable {:?}", one.runnable.name()),
        many => format!(
            "runnables {:?}",
            many.iter().map(|i| i.runnable.name()).collect::<Vec<_>>()
        ),
    }
}

/// One look: fetch every instance concurrently, sum element-wise across instances.
async fn sums_of(
    instances: &[Instrumented],
    names: &[String],
    options: &MetricsOptions,
    fetch_limit: Duration,
) -> Result<Vec<f64>> {
    if instances.is_empty() {
        return Err(no_instances());
    }
    let names_ref: Vec<&str> = names.iter().map(String::as_str).collect();
    let fetches = instances.iter().map(|i| i.fetch(fetch_limit));
    let texts = futures_util::future::join_all(fetches).await;
    let mut total = vec![0.0; names.len()];
    for (instance, text) in instances.iter().zip(texts) {
        let text = text?;
        let runnable = instance.runnable.name();
        let families = parse(&text).map_err(|e| Error::MetricsFetch {
            runnable: runnable.to_string(),
            url: instance
                .metrics_url()
                .unwrap_or_else(|_| instance.path.clone()),
            reason: "the exposition is invalid".to_string(),
            source: Some(Box::new(e)),
        })?;
        let sums = sum_metrics(&families, &names_ref, &options.sum).map_err(|e| match e {
            SumError::Missing { name } => Error::MetricMissing {
                runnable: runnable.to_string(),
                metric: name,
                matchers: options.matchers_text(),
            },
            SumError::Matcher(m) => Error::InvalidMatcher {
                source: Box::new(m),
            },
        })?;
        for (t, s) in total.iter_mut().zip(sums) {
            *t += s;
        }
    }
    Ok(total)
}

fn validate(options: &MetricsOptions) -> Result<()> {
    for m in &options.sum.matchers {
        m.validate().map_err(|e| Error::InvalidMatcher {
            source: Box::new(e),
        })?;
    }
    Ok(())
}

/// How a wait looks at several instances.
#[derive(Clone, Copy)]
enum Looking {
    /// One sum across all instances.
    Sums,
    /// Each instance on its own: "missing" only when missing on every instance.
    Everywhere,
}

/// The sums of the instances that expose the metrics; `MetricMissing` only when no instance
/// exposes them (a removal is complete only once every instance dropped the metric).
async fn everywhere(
    instances: &[Instrumented],
    names: &[String],
    options: &MetricsOptions,
    fetch_limit: Duration,
) -> Result<Vec<f64>> {
    let looks = instances
        .iter()
        .map(|i| sums_of(std::slice::from_ref(i), names, options, fetch_limit));
    let mut missing = None;
    let mut total: Option<Vec<f64>> = None;
    for result in futures_util::future::join_all(looks).await {
        match result {
            Ok(sums) => {
                let t = total.get_or_insert_with(|| vec![0.0; sums.len()]);
                for (t, s) in t.iter_mut().zip(sums) {
                    *t += s;
                }
            }
            Err(e @ Error::MetricMissing { .. }) => missing = Some(e),
            Err(e) => return Err(e),
        }
    }
    match (total, missing) {
        (Some(total), _) => Ok(total),
        (None, Some(missing)) => Err(missing),
        (None, None) => Err(no_instances()),
    }
}

fn no_instances() -> Error {
    Error::InvalidArgument(
        "a composite instrumented runnable needs at least one instance".to_string(),
    )
}

/// One look at the replicas of a composite.
enum Replicas {
    /// Every replica answered alike: their sums, or the error they share.
    Seen(Result<Vec<f64>>),
    /// Some replicas expose the metrics and others do not (yet): one restarting or starting.
    NotAllReady(Error),
}

/// Looks at each replica on its own. A replica that does not expose the metrics, is not
/// running or does not answer while others do is taken as starting, not as a failure of the
/// whole wait; the wait fails on it only if the deadline passes. Errors no wait can fix
/// (a bad matcher) end it at once.
async fn replica_sums(
    instances: &[Instrumented],
    names: &[String],
    options: &MetricsOptions,
    fetch_limit: Duration,
) -> Replicas {
    let looks = instances
        .iter()
        .map(|i| sums_of(std::slice::from_ref(i), names, options, fetch_limit));
    let mut total = vec![0.0; names.len()];
    let mut answered = 0;
    let mut first_error = None;
    for result in futures_util::future::join_all(looks).await {
        match result {
            Ok(sums) => {
                answered += 1;
                for (t, s) in total.iter_mut().zip(sums) {
                    *t += s;
                }
            }
            Err(e @ (Error::InvalidMatcher { .. } | Error::InvalidArgument(_))) => {
                return Replicas::Seen(Err(e))
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        None => Replicas::Seen(Ok(total)),
        Some(e) if answered == 0 => Replicas::Seen(Err(e)),
        Some(e) => Replicas::NotAllReady(e),
    }
}

/// What one look at the metrics means for a wait.
enum Look {
    Done,
    Again {
        values: Option<Vec<f64>>,
        error: Option<String>,
    },
    Fail(Error),
}

/// Looks at the metrics until `judge` says done or failed, or the policy's deadline passes.
/// Each look is bounded by the time left, so a hung or paused endpoint cannot push the wait
/// past its deadline.
async fn poll(
    instances: &[Instrumented],
    names: &[String],
    options: &MetricsOptions,
    expected: String,
    look: Looking,
    judge: impl Fn(Result<Vec<f64>>) -> Look,
) -> Result<()> {
    // The metric-wait intervals unless the caller set some: every look is a scrape.
    let mut poll = Poll::new(options.wait_policy());
    let (mut last_values, mut last_error) = (None, None);
    loop {
        poll.attempt();
        let limit = poll.remaining().clamp(MIN_FETCH, FETCH_TIMEOUT);
        let seen = match look {
            Looking::Sums if instances.len() > 1 => {
                match replica_sums(instances, names, options, limit).await {
                    Replicas::Seen(seen) => Some(seen),
                    // A replica that is (re)starting: not a verdict on the whole yet.
                    Replicas::NotAllReady(e) => {
                        last_error = Some(e.report());
                        None
                    }
                }
            }
            Looking::Sums => Some(sums_of(instances, names, options, limit).await),
            Looking::Everywhere => Some(everywhere(instances, names, options, limit).await),
        };
        if let Some(seen) = seen {
            match judge(seen) {
                Look::Done => return Ok(()),
                Look::Fail(e) => return Err(e),
                Look::Again { values, error } => {
                    last_values = values.or(last_values);
                    last_error = error.or(last_error);
                }
            }
        }
        let Some(pause) = poll.next_pause() else {
            return Err(Error::MetricsWait(Box::new(MetricsWaitFailure {
                runnable: describe(instances),
                metrics: names.to_vec(),
                matchers: options.matchers_text(),
                expected,
                last_values,
                last_error,
                after: poll.elapsed(),
                checks: poll.attempts(),
            })));
        };
        tokio::time::sleep(pause).await;
    }
}

async fn wait_for(
    instances: &[Instrumented],
    expectation: &Expectation,
    names: &[String],
    options: &MetricsOptions,
) -> Result<()> {
    validate(options)?;
    if let Some(n) = expectation.expected_len() {
        if n != names.len() {
            return Err(Error::InvalidArgument(format!(
                "expectation {expectation} compares {n} metrics, but {} were given: {names:?}",
                names.len()
            )));
        }
    }
    poll(
        instances,
        names,
        options,
        expectation.to_string(),
        Looking::Sums,
        |look| match look {
            Ok(sums) if expectation.check(&sums) => Look::Done,
            Ok(sums) => Look::Again {
                values: Some(sums),
                error: None,
            },
            Err(e @ Error::MetricMissing { .. }) if options.wait_missing => Look::Again {
                values: None,
                error: Some(e.report()),
            },
            // Not exposed, not running, bad arguments: waiting cannot help.
            Err(
                e @ (Error::MetricMissing { .. }
                | Error::NotRunning { .. }
                | Error::InvalidMatcher { .. }
                | Error::InvalidArgument(_)),
            ) => Look::Fail(e),
            // A fetch can fail while a service restarts or is paused; keep looking.
            Err(e) => Look::Again {
                values: None,
                error: Some(e.report()),
            },
        },
    )
    .await
}

async fn wait_removed(
    instances: &[Instrumented],
    name: &str,
    options: MetricsOptions,
) -> Result<()> {
    let mut options = options;
    // Counting a missing metric as 0 would hide the removal we are waiting for.
    options.sum.skip_missing = false;
    options.wait_missing = false;
    validate(&options)?;
    let names = [name.to_string()];
    poll(
        instances,
        &names,
        &options,
        "removed".to_string(),
        Looking::Everywhere,
        |look| match look {
            Err(Error::MetricMissing { .. }) => Look::Done,
            Err(
                e @ (Error::NotRunning { .. }
                | Error::InvalidMatcher { .. }
                | Error::InvalidArgument(_)),
            ) => Look::Fail(e),
            Err(e) => Look::Again {
                values: None,
                error: Some(e.report()),
            },
            Ok(v) => Look::Again {
                values: Some(v),
                error: None,
            },
        },
    )
    .await
}
