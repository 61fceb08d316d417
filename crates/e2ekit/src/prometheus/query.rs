//! [`PromQl`]: a typed PromQL client for any endpoint speaking the Prometheus HTTP API.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;

use crate::env::ready::truncate;
use crate::env::{AsRunnable, Runnable};
use crate::error::{Error, MetricsWaitFailure, Result};
use crate::metrics::METRIC_INTERVALS;
use crate::wait::{Poll, WaitPolicy};

/// Longest single query, so a hung server cannot eat a whole wait.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// [`PromQl::wait`] queries at most this often: an evaluation is not free, and Prometheus
/// learns new values only at scrape intervals anyway. Above this floor the wait follows the
/// metric-wait intervals unless the caller set some.
const MIN_WAIT_INTERVAL: Duration = Duration::from_millis(50);
/// How much of an unreadable answer errors quote.
const QUOTED_ANSWER: usize = 200;
/// How many samples a failed wait shows.
const SHOWN_SAMPLES: usize = 10;

/// One series' value at one instant.
///
/// Its `Display` is PromQL's: `up{instance="a:9090", job="myself"} => 1`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The series labels, `__name__` included when the query keeps it.
    pub labels: BTreeMap<String, String>,
    /// The value.
    pub value: f64,
}

impl Sample {
    /// The value of a label, if the series has it.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels.get(name).map(String::as_str)
    }
}

impl fmt::Display for Sample {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_series(f, &self.labels)?;
        write!(f, " => ")?;
        write_value(f, self.value)
    }
}

/// One series over a time range.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The series labels.
    pub labels: BTreeMap<String, String>,
    /// `(unix seconds, value)` points in time order.
    pub points: Vec<(f64, f64)>,
}

impl Series {
    /// A short legend for the series: its labels without `__name__`, or the metric name.
    pub fn legend(&self) -> String {
        let parts: Vec<String> = self
            .labels
            .iter()
            .filter(|(k, _)| k.as_str() != "__name__")
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        if parts.is_empty() {
            self.labels.get("__name__").cloned().unwrap_or_default()
        } else {
            parts.join(",")
        }
    }
}

/// `name{a="x", b="y"}` as PromQL prints a series.
fn write_series(f: &mut impl fmt::Write, labels: &BTreeMap<String, String>) -> fmt::Result {
    let name = labels.get("__name__");
    if let Some(name) = name {
        f.write_str(name)?;
    }
    let mut rest = labels.iter().filter(|(k, _)| k.as_str() != "__name__");
    match rest.next() {
        None if name.is_some() => Ok(()),
        None => f.write_str("{}"),
        Some(first) => {
            f.write_char('{')?;
            for (i, (k, v)) in std::iter::once(first).chain(rest).enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{k}=\"")?;
                for c in v.chars() {
                    match c {
                        '\\' => f.write_str("\\\\")?,
                        '"' => f.write_str("\\\"")?,
                        '\n' => f.write_str("\\n")?,
                        c => f.write_char(c)?,
                    }
                }
                f.write_char('"')?;
            }
            f.write_char('}')
        }
    }
}

/// A value as Prometheus prints it: `+Inf`, `-Inf`, `NaN`, else the shortest decimal.
fn write_value(f: &mut impl fmt::Write, v: f64) -> fmt::Result {
    match v {
        v if v.is_nan() => f.write_str("NaN"),
        v if v == f64::INFINITY => f.write_str("+Inf"),
        v if v == f64::NEG_INFINITY => f.write_str("-Inf"),
        v => write!(f, "{v}"),
    }
}

/// A typed PromQL client for any endpoint speaking the Prometheus HTTP API: a Prometheus of
/// the catalog or of monitoring, a Thanos querier, or any server reachable from the test
/// process. Cheap to clone.
///
/// A query fails with [`Error::Query`] (naming the URL, the query and, when made with
/// [`PromQl::of`], the runnable; the HTTP or JSON error is its `source()`) when the server
/// cannot be reached, refuses the query, answers another result type than asked for, or
/// answers with warnings: a Thanos querier that could not reach every store says so in
/// warnings, and a partial answer should not pass a test silently (see
/// [`PromQl::allow_warnings`]).
///
/// ```no_run
/// use e2ekit::prelude::*;
///
/// # async fn demo(querier: Observable) -> e2ekit::Result<()> {
/// let q = PromQl::of(&querier, "http")?;   // resolved at each query, so made before start too
/// let up = q.instant("up").await?;
/// for sample in &up {
///     println!("{sample}");                // up{instance="...", job="..."} => 1
/// }
/// let two = q.wait("up == 1", |up| up.len() == 2, WaitPolicy::default()).await?;
/// let other = PromQl::new("127.0.0.1:9090"); // "host:port" or "http(s)://host:port/prefix"
/// # let _ = (two, other);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct PromQl {
    target: Target,
    timeout: Duration,
    allow_warnings: bool,
}

#[derive(Clone)]
enum Target {
    /// A fixed base URL, with its own HTTP client (or why it could not be built).
    Url {
        base: String,
        http: std::result::Result<reqwest::Client, Arc<reqwest::Error>>,
    },
    /// A port of a runnable, resolved at each query (it changes when the runnable restarts).
    Runnable { runnable: Runnable, port: String },
}

impl fmt::Debug for PromQl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("PromQl");
        match &self.target {
            Target::Url { base, .. } => d.field("url", base),
            Target::Runnable { runnable, port } => {
                d.field("runnable", &runnable.name()).field("port", port)
            }
        };
        d.field("timeout", &self.timeout)
            .field("allow_warnings", &self.allow_warnings)
            .finish()
    }
}

/// A failed query, and whether asking again can help.
struct Failure {
    error: Error,
    permanent: bool,
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Failure {
            error,
            permanent: false,
        }
    }
}

/// The JSON envelope of every Prometheus API answer.
#[derive(Deserialize)]
struct ApiResponse {
    status: String,
    #[serde(default)]
    data: Option<ApiData>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    warnings: Vec<String>,
}

#[derive(Deserialize)]
struct ApiData {
    #[serde(rename = "resultType")]
    result_type: String,
    result: serde_json::Value,
}

#[derive(Deserialize)]
struct VectorItem {
    metric: BTreeMap<String, String>,
    value: (f64, String),
}

#[derive(Deserialize)]
struct MatrixItem {
    metric: BTreeMap<String, String>,
    values: Vec<(f64, String)>,
}

fn number(text: &str) -> f64 {
    match text {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        other => other.parse().unwrap_or(f64::NAN),
    }
}

fn unix(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

/// `host:port` becomes `http://host:port`; a URL is kept, without a trailing `/`.
fn base_url(endpoint: &str) -> String {
    let endpoint = endpoint.trim().trim_end_matches('/');
    if endpoint.contains("://") {
        endpoint.to_string()
    } else {
        format!("http://{endpoint}")
    }
}

impl PromQl {
    /// A client for the Prometheus API at `endpoint`: `"host:port"` (HTTP) or a URL
    /// (`"https://host:port/prefix"`). Certificates are not verified.
    pub fn new(endpoint: impl AsRef<str>) -> Self {
        let http = reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .build()
            .map_err(Arc::new);
        Self::with_target(Target::Url {
            base: base_url(endpoint.as_ref()),
            http,
        })
    }

    /// A client for the Prometheus API a runnable (or any wrapper: `db::Prometheus`, a Thanos
    /// querier, ...) serves on the named port, over HTTP at its host endpoint. The endpoint is
    /// looked up at each query, so the client can be made before the runnable starts and
    /// keeps working across restarts. Errors if the runnable has no such port.
    pub fn of(runnable: &(impl AsRunnable + ?Sized), port: &str) -> Result<Self> {
        let runnable = runnable.as_runnable();
        if !runnable.ports().iter().any(|(name, _)| name == port) {
            return Err(Error::UnknownPort {
                runnable: runnable.name().to_string(),
                port: port.to_string(),
                known: runnable.ports().iter().map(|(n, _)| n.clone()).collect(),
            });
        }
        Ok(Self::for_runnable(runnable.clone(), port))
    }

    /// [`PromQl::of`] for a port known to exist.
    pub(crate) fn for_runnable(runnable: Runnable, port: &str) -> Self {
        Self::with_target(Target::Runnable {
            runnable,
            port: port.to_string(),
        })
    }

    fn with_target(target: Target) -> Self {
        Self {
            target,
            timeout: REQUEST_TIMEOUT,
            allow_warnings: false,
        }
    }

    /// Accepts answers that carry warnings (partial answers) instead of failing on them.
    pub fn allow_warnings(mut self) -> Self {
        self.allow_warnings = true;
        self
    }

    /// The longest a single query may take (default 30 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The API's base URL (`http://127.0.0.1:32768`); for a runnable, where it is reached now
    /// (errors when it is not running).
    pub fn url(&self) -> Result<String> {
        match &self.target {
            Target::Url { base, .. } => Ok(base.clone()),
            Target::Runnable { runnable, port } => {
                Ok(format!("http://{}", runnable.endpoint(port)?))
            }
        }
    }

    /// Evaluates `query` now. An instant vector comes back one sample per series; a scalar as
    /// one sample without labels. Other result types are an error (use [`PromQl::range`] for
    /// range vectors).
    pub async fn instant(&self, query: &str) -> Result<Vec<Sample>> {
        self.try_instant(query).await.map_err(|f| f.error)
    }

    /// Evaluates `query` over `[start, end]` every `step`: one series per matching series.
    pub async fn range(
        &self,
        query: &str,
        start: SystemTime,
        end: SystemTime,
        step: Duration,
    ) -> Result<Vec<Series>> {
        let params = [
            ("query", query.to_string()),
            ("start", format!("{:.3}", unix(start))),
            ("end", format!("{:.3}", unix(end))),
            ("step", format!("{:.3}", step.as_secs_f64().max(0.001))),
        ];
        let (url, data) = self
            .call("/api/v1/query_range", query, &params)
            .await
            .map_err(|f| f.error)?;
        if data.result_type != "matrix" {
            return Err(self.unexpected(&url, query, &data.result_type, None).error);
        }
        let items: Vec<MatrixItem> = serde_json::from_value(data.result)
            .map_err(|e| self.unexpected(&url, query, "matrix", Some(e)).error)?;
        Ok(items
            .into_iter()
            .map(|i| Series {
                labels: i.metric,
                points: i.values.into_iter().map(|(t, v)| (t, number(&v))).collect(),
            })
            .collect())
    }

    /// Evaluates `query` until `check` holds for the samples it returns, as `policy` says (at
    /// most every 50 ms); returns those samples. Errors that asking again cannot fix (an
    /// invalid query) end the wait at once; otherwise a timeout is [`Error::MetricsWait`],
    /// showing the last answer or error.
    ///
    /// Like other metric waits, intervals not set on the policy are the metric-wait ones
    /// (after 5 ms, each pause an eighth longer than the one before, up to every 250 ms; see
    /// [`WaitPolicy`]), so `WaitPolicy::timeout(d)` changes only the deadline.
    pub async fn wait(
        &self,
        query: &str,
        check: impl Fn(&[Sample]) -> bool,
        policy: WaitPolicy,
    ) -> Result<Vec<Sample>> {
        let mut poll = Poll::new(policy.or_intervals_of(METRIC_INTERVALS));
        let mut last;
        loop {
            poll.attempt();
            match self.try_instant(query).await {
                Ok(samples) if check(&samples) => return Ok(samples),
                Ok(samples) => last = format!("last answer: {}", shown(&samples)),
                Err(failure) if failure.permanent => return Err(failure.error),
                Err(failure) => last = failure.error.to_string(),
            }
            match poll.next_pause() {
                Some(pause) => {
                    let pause = pause.max(MIN_WAIT_INTERVAL).min(poll.remaining());
                    tokio::time::sleep(pause).await;
                }
                None => {
                    return Err(Error::MetricsWait(Box::new(MetricsWaitFailure {
                        runnable: self.describe(),
                        metrics: vec![query.to_string()],
                        matchers: String::new(),
                        expected: "to pass the check".to_string(),
                        last_values: None,
                        last_error: Some(last),
                        after: poll.elapsed(),
                        checks: poll.attempts(),
                    })))
                }
            }
        }
    }

    /// Who is asked, for wait failures.
    fn describe(&self) -> String {
        match &self.target {
            Target::Url { base, .. } => format!("the Prometheus API at {base}"),
            Target::Runnable { runnable, .. } => format!("runnable {:?}", runnable.name()),
        }
    }

    fn runnable_name(&self) -> Option<String> {
        match &self.target {
            Target::Url { .. } => None,
            Target::Runnable { runnable, .. } => Some(runnable.name().to_string()),
        }
    }

    fn fail(
        &self,
        url: &str,
        query: &str,
        reason: String,
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Error {
        Error::Query {
            runnable: self.runnable_name(),
            url: url.to_string(),
            query: query.to_string(),
            reason,
            source,
        }
    }

    fn unexpected(
        &self,
        url: &str,
        query: &str,
        result_type: &str,
        source: Option<serde_json::Error>,
    ) -> Failure {
        let reason = match &source {
            Some(_) => format!("unreadable {result_type} result"),
            None if result_type == "matrix" => {
                "it returned a range vector (matrix); use PromQl::range".to_string()
            }
            None => format!("unexpected result type {result_type:?}"),
        };
        Failure {
            error: self.fail(url, query, reason, source.map(Into::into)),
            permanent: true,
        }
    }

    async fn try_instant(&self, query: &str) -> std::result::Result<Vec<Sample>, Failure> {
        let (url, data) = self
            .call("/api/v1/query", query, &[("query", query.to_string())])
            .await?;
        let bad = |e| self.unexpected(&url, query, &data.result_type, Some(e));
        match data.result_type.as_str() {
            "vector" => {
                let items: Vec<VectorItem> =
                    serde_json::from_value(data.result.clone()).map_err(bad)?;
                Ok(items
                    .into_iter()
                    .map(|i| Sample {
                        labels: i.metric,
                        value: number(&i.value.1),
                    })
                    .collect())
            }
            "scalar" => {
                let (_, v): (f64, String) =
                    serde_json::from_value(data.result.clone()).map_err(bad)?;
                Ok(vec![Sample {
                    labels: BTreeMap::new(),
                    value: number(&v),
                }])
            }
            other => Err(self.unexpected(&url, query, other, None)),
        }
    }

    /// `GET <base><path>?<params>`; the URL asked (without parameters) and the answer's data.
    async fn call(
        &self,
        path: &str,
        query: &str,
        params: &[(&str, String)],
    ) -> std::result::Result<(String, ApiData), Failure> {
        let (base, http) = match &self.target {
            Target::Url { base, http } => {
                let http = http.as_ref().map_err(|e| {
                    let url = format!("{base}{path}");
                    self.fail(
                        &url,
                        query,
                        "no HTTP client".to_string(),
                        Some(Box::new(e.clone())),
                    )
                })?;
                (base.clone(), http)
            }
            Target::Runnable { runnable, port } => (
                format!("http://{}", runnable.endpoint(port)?),
                runnable.http(),
            ),
        };
        let url = format!("{base}{path}");
        let response = http
            .get(&url)
            .query(params)
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| self.fail(&url, query, "no answer".to_string(), Some(e.into())))?;
        let status = response.status();
        let text = response.text().await.map_err(|e| {
            self.fail(
                &url,
                query,
                "reading the answer".to_string(),
                Some(e.into()),
            )
        })?;
        let body: ApiResponse = serde_json::from_str(&text).map_err(|e| {
            self.fail(
                &url,
                query,
                format!(
                    "HTTP {status} with no API answer: {:?}",
                    truncate(&text, QUOTED_ANSWER)
                ),
                Some(e.into()),
            )
        })?;
        if body.status != "success" {
            let kind = body.error_type.unwrap_or_else(|| body.status.clone());
            let reason = format!(
                "{kind}: {}",
                body.error.as_deref().unwrap_or("(no error text)")
            );
            return Err(Failure {
                error: self.fail(&url, query, reason, None),
                // An invalid query stays invalid; anything else may pass later.
                permanent: kind == "bad_data",
            });
        }
        if !body.warnings.is_empty() && !self.allow_warnings {
            let reason = format!(
                "it answered with warnings (a partial answer): {}",
                body.warnings.join("; ")
            );
            return Err(self.fail(&url, query, reason, None).into());
        }
        let data = body
            .data
            .ok_or_else(|| self.fail(&url, query, "the answer has no data".to_string(), None))?;
        Ok((url, data))
    }
}

/// The first samples of an answer, in PromQL form.
fn shown(samples: &[Sample]) -> String {
    let mut text: Vec<String> = samples
        .iter()
        .take(SHOWN_SAMPLES)
        .map(Sample::to_string)
        .collect();
    if samples.len() > SHOWN_SAMPLES {
        text.push(format!("... ({} samples)", samples.len()));
    }
    format!("[{}]", text.join(", "))
}

#[cfg(test)]
mod tests;
