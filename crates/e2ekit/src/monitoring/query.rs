//! Typed results of PromQL queries against the monitoring Prometheus.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;

use crate::error::{Error, Result};

/// One series' value at one instant.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The series labels, `__name__` included when the query keeps it.
    pub labels: BTreeMap<String, String>,
    /// The value.
    pub value: f64,
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

#[derive(Deserialize)]
struct ApiResponse {
    status: String,
    #[serde(default)]
    data: Option<ApiData>,
    #[serde(default)]
    error: Option<String>,
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

fn truncate(text: &str) -> &str {
    match text.char_indices().nth(200) {
        Some((i, _)) => &text[..i],
        None => text,
    }
}

fn unix(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

async fn call(http: &reqwest::Client, url: &str, params: &[(&str, String)]) -> Result<ApiData> {
    let fail = |reason: String| Error::MetricsFetch {
        runnable: "prometheus".to_string(),
        url: url.to_string(),
        reason,
        source: None,
    };
    let response = http
        .get(url)
        .query(params)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .map_err(|e| fail(e.to_string()))?;
    let text = response
        .text()
        .await
        .map_err(|e| fail(format!("reading the answer: {e}")))?;
    let body: ApiResponse = serde_json::from_str(&text)
        .map_err(|e| fail(format!("unreadable answer {:?}: {e}", truncate(&text))))?;
    if body.status != "success" {
        return Err(fail(body.error.unwrap_or(body.status)));
    }
    body.data
        .ok_or_else(|| fail("the answer has no data".to_string()))
}

/// Evaluates `promql` now; scalars come back as one sample without labels.
pub(crate) async fn instant(
    http: &reqwest::Client,
    base: &str,
    promql: &str,
) -> Result<Vec<Sample>> {
    let url = format!("{base}/api/v1/query");
    let data = call(http, &url, &[("query", promql.to_string())]).await?;
    let bad = |e: serde_json::Error| Error::MetricsFetch {
        runnable: "prometheus".to_string(),
        url: url.clone(),
        reason: format!("unexpected {} result", data.result_type),
        source: Some(Box::new(e)),
    };
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
            let (_, v): (f64, String) = serde_json::from_value(data.result.clone()).map_err(bad)?;
            Ok(vec![Sample {
                labels: BTreeMap::new(),
                value: number(&v),
            }])
        }
        other => Err(Error::InvalidArgument(format!(
            "query {promql:?} returned a {other}; use range_query for range vectors"
        ))),
    }
}

/// Evaluates `promql` over `[start, end]` every `step`.
pub(crate) async fn range(
    http: &reqwest::Client,
    base: &str,
    promql: &str,
    start: SystemTime,
    end: SystemTime,
    step: Duration,
) -> Result<Vec<Series>> {
    let url = format!("{base}/api/v1/query_range");
    let params = [
        ("query", promql.to_string()),
        ("start", format!("{:.3}", unix(start))),
        ("end", format!("{:.3}", unix(end))),
        ("step", format!("{:.3}", step.as_secs_f64().max(0.001))),
    ];
    let data = call(http, &url, &params).await?;
    let items: Vec<MatrixItem> =
        serde_json::from_value(data.result).map_err(|e| Error::MetricsFetch {
            runnable: "prometheus".to_string(),
            url: url.clone(),
            reason: "unexpected range result".to_string(),
            source: Some(Box::new(e)),
        })?;
    Ok(items
        .into_iter()
        .map(|i| Series {
            labels: i.metric,
            points: i.values.into_iter().map(|(t, v)| (t, number(&v))).collect(),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_legends() {
        assert_eq!(number("+Inf"), f64::INFINITY);
        assert!(number("NaN").is_nan());
        assert_eq!(number("1.5"), 1.5);
        let s = Series {
            labels: BTreeMap::from([
                ("__name__".to_string(), "up".to_string()),
                ("job".to_string(), "app".to_string()),
            ]),
            points: vec![],
        };
        assert_eq!(s.legend(), "job=app");
    }
}
