//! Sums of metric families, as used by `sum_metrics` and `wait_sum_metrics`.

use super::matcher::{Matcher, MatcherError};
use super::parse::{MetricFamily, MetricKind, ParsedSample};

/// How [`sum_metrics`] selects and sums series.
#[derive(Debug, Clone, Default)]
pub(crate) struct SumOptions {
    /// Only series matching every matcher are summed.
    pub(crate) matchers: Vec<Matcher>,
    /// Sum histogram and summary `_count` series instead of `_sum`.
    pub(crate) use_count: bool,
    /// A metric with no matching series sums to 0 instead of being an error.
    pub(crate) skip_missing: bool,
}

/// Why [`sum_metrics`] could not sum a metric.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SumError {
    /// No family of that name, or none of its series matched the label matchers.
    #[error("metric `{name}` not found")]
    Missing {
        /// The metric name as requested.
        name: String,
    },
    /// A label matcher cannot be used.
    #[error(transparent)]
    Matcher(#[from] MatcherError),
}

/// For each name, the sum of the values of the matching series of that metric family:
/// counter, gauge and untyped sample values; histogram and summary `_sum` (or `_count` with
/// `use_count`) series. A counter's OpenMetrics `_total` name finds its family too.
pub(crate) fn sum_metrics(
    families: &[MetricFamily<'_>],
    names: &[&str],
    opts: &SumOptions,
) -> Result<Vec<f64>, SumError> {
    for matcher in &opts.matchers {
        matcher.validate()?;
    }
    names
        .iter()
        .map(|name| sum_one(families, name, opts))
        .collect()
}

fn sum_one(families: &[MetricFamily<'_>], name: &str, opts: &SumOptions) -> Result<f64, SumError> {
    let exact = families.iter().any(|f| f.name == name);
    let counter_base = name.strip_suffix("_total").filter(|_| !exact);
    let mut found = false;
    let mut sum = 0.0;
    for family in families {
        let selected = if exact {
            family.name == name
        } else {
            family.kind == MetricKind::Counter && counter_base == Some(&*family.name)
        };
        if !selected {
            continue;
        }
        for sample in &family.samples {
            let Some(suffix) = family.series_suffix(&sample.name) else {
                continue;
            };
            if is_value_series(family.kind, suffix, opts.use_count)
                && matches_all(&opts.matchers, sample)?
            {
                found = true;
                sum += sample.value;
            }
        }
    }
    match (found, opts.skip_missing) {
        (true, _) => Ok(sum),
        (false, true) => Ok(0.0),
        (false, false) => Err(SumError::Missing {
            name: name.to_owned(),
        }),
    }
}

/// Whether the series `<family><suffix>` carries the value that is summed for `kind`.
fn is_value_series(kind: MetricKind, suffix: &str, use_count: bool) -> bool {
    match kind {
        MetricKind::Counter => matches!(suffix, "" | "_total"),
        MetricKind::Gauge | MetricKind::Untyped | MetricKind::StateSet => suffix.is_empty(),
        MetricKind::Info => matches!(suffix, "" | "_info"),
        MetricKind::Histogram | MetricKind::Summary => {
            suffix == if use_count { "_count" } else { "_sum" }
        }
        MetricKind::GaugeHistogram => suffix == if use_count { "_gcount" } else { "_gsum" },
    }
}

fn matches_all(matchers: &[Matcher], sample: &ParsedSample<'_>) -> Result<bool, MatcherError> {
    for matcher in matchers {
        if !matcher.matches_sample(sample)? {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::parse;

    const TEXT: &str = r#"# HELP http_requests_total Requests.
# TYPE http_requests_total counter
http_requests_total{code="200",handler="/a"} 10
http_requests_total{code="200",handler="/b"} 5
http_requests_total{code="500",handler="/a"} 2
# TYPE temperature gauge
temperature{room="a"} 20.5
temperature{room="b"} -0.5
plain 7
plain{x="y"} 1
# TYPE latency_seconds histogram
latency_seconds_bucket{handler="/a",le="0.1"} 3
latency_seconds_bucket{handler="/a",le="+Inf"} 4
latency_seconds_sum{handler="/a"} 1.5
latency_seconds_count{handler="/a"} 4
latency_seconds_bucket{handler="/b",le="0.1"} 1
latency_seconds_bucket{handler="/b",le="+Inf"} 1
latency_seconds_sum{handler="/b"} 0.05
latency_seconds_count{handler="/b"} 1
# TYPE rpc_seconds summary
rpc_seconds{quantile="0.5"} 0.2
rpc_seconds{quantile="0.9"} 0.7
rpc_seconds_sum 12
rpc_seconds_count 30
# TYPE nan_gauge gauge
nan_gauge NaN
# TYPE declared_only gauge
"#;

    const OPENMETRICS: &str = r#"# TYPE jobs counter
jobs_total{queue="a"} 3
jobs_created{queue="a"} 1700000000
jobs_total{queue="b"} 4
jobs_created{queue="b"} 1700000000
# TYPE build info
build_info{version="1"} 1
# TYPE h histogram
h_bucket{le="+Inf"} 2
h_sum 3.5
h_count 2
h_created 1700000000
# TYPE gh gaugehistogram
gh_bucket{le="+Inf"} 5
gh_gsum 8
gh_gcount 5
# TYPE st stateset
st{st="a"} 1
st{st="b"} 0
# EOF
"#;

    fn sums(text: &str, names: &[&str], opts: &SumOptions) -> Result<Vec<f64>, SumError> {
        sum_metrics(&parse(text).unwrap(), names, opts)
    }

    fn with(matchers: Vec<Matcher>) -> SumOptions {
        SumOptions {
            matchers,
            ..SumOptions::default()
        }
    }

    #[test]
    fn counters_gauges_and_untyped() {
        let got = sums(
            TEXT,
            &["http_requests_total", "temperature", "plain"],
            &SumOptions::default(),
        )
        .unwrap();
        assert_eq!(got, [17.0, 20.0, 8.0]);
    }

    #[test]
    fn histogram_and_summary_use_sum_or_count() {
        let names = ["latency_seconds", "rpc_seconds"];
        assert_eq!(
            sums(TEXT, &names, &SumOptions::default()).unwrap(),
            [1.55, 12.0]
        );
        let opts = SumOptions {
            use_count: true,
            ..SumOptions::default()
        };
        assert_eq!(sums(TEXT, &names, &opts).unwrap(), [5.0, 30.0]);
        // Counters and gauges keep their values with `use_count`.
        assert_eq!(sums(TEXT, &["temperature"], &opts).unwrap(), [20.0]);
    }

    #[test]
    fn matchers_filter_series() {
        let opts = with(vec![Matcher::equal("code", "200")]);
        assert_eq!(sums(TEXT, &["http_requests_total"], &opts).unwrap(), [15.0]);
        let opts = with(vec![
            Matcher::regex("code", "2.."),
            Matcher::not_equal("handler", "/b"),
        ]);
        assert_eq!(sums(TEXT, &["http_requests_total"], &opts).unwrap(), [10.0]);
        let opts = with(vec![Matcher::not_regex("code", "5.*")]);
        assert_eq!(sums(TEXT, &["http_requests_total"], &opts).unwrap(), [15.0]);
        let opts = with(vec![Matcher::equal("handler", "/b")]);
        assert_eq!(sums(TEXT, &["latency_seconds"], &opts).unwrap(), [0.05]);
        // An absent label matches as the empty string.
        let opts = with(vec![Matcher::equal("x", "")]);
        assert_eq!(sums(TEXT, &["plain"], &opts).unwrap(), [7.0]);
    }

    #[test]
    fn missing_and_filtered_out_metrics() {
        let err = sums(TEXT, &["temperature", "nope"], &SumOptions::default()).unwrap_err();
        assert_eq!(
            err,
            SumError::Missing {
                name: "nope".into()
            }
        );
        assert_eq!(err.to_string(), "metric `nope` not found");
        // Every series filtered out counts as missing.
        let opts = with(vec![Matcher::equal("room", "c")]);
        assert!(matches!(
            sums(TEXT, &["temperature"], &opts),
            Err(SumError::Missing { name }) if name == "temperature"
        ));
        // A family declared without samples is missing.
        assert!(sums(TEXT, &["declared_only"], &SumOptions::default()).is_err());
        // A series name of a histogram is not a family name.
        assert!(sums(TEXT, &["latency_seconds_sum"], &SumOptions::default()).is_err());
    }

    #[test]
    fn skip_missing_gives_zero() {
        let opts = SumOptions {
            skip_missing: true,
            matchers: vec![Matcher::equal("room", "a")],
            ..SumOptions::default()
        };
        assert_eq!(
            sums(TEXT, &["nope", "temperature", "plain"], &opts).unwrap(),
            [0.0, 20.5, 0.0]
        );
    }

    #[test]
    fn invalid_matcher_is_an_error_even_for_missing_metrics() {
        let opts = SumOptions {
            skip_missing: true,
            matchers: vec![Matcher::regex("code", "(")],
            ..SumOptions::default()
        };
        assert!(matches!(
            sums(TEXT, &["nope"], &opts),
            Err(SumError::Matcher(MatcherError::InvalidRegex { .. }))
        ));
    }

    #[test]
    fn nan_values_sum_to_nan() {
        let got = sums(TEXT, &["nan_gauge"], &SumOptions::default()).unwrap();
        assert!(got[0].is_nan());
    }

    #[test]
    fn openmetrics_families() {
        let got = sums(
            OPENMETRICS,
            &["jobs_total", "jobs", "build", "h", "gh", "st"],
            &SumOptions::default(),
        )
        .unwrap();
        // `_created` series are timestamps, never summed.
        assert_eq!(got, [7.0, 7.0, 1.0, 3.5, 8.0, 1.0]);
        let opts = SumOptions {
            use_count: true,
            matchers: vec![],
            skip_missing: false,
        };
        assert_eq!(sums(OPENMETRICS, &["h", "gh"], &opts).unwrap(), [2.0, 5.0]);
        let opts = with(vec![Matcher::equal("queue", "b")]);
        assert_eq!(sums(OPENMETRICS, &["jobs_total"], &opts).unwrap(), [4.0]);
        // `_total` only aliases counters.
        assert!(sums(OPENMETRICS, &["h_total"], &SumOptions::default()).is_err());
    }

    #[test]
    fn exact_family_name_wins_over_total_alias() {
        let text = "# TYPE a counter\na_total 1\n# TYPE a_total gauge\na_total 5\n";
        let families = parse(text).unwrap();
        assert_eq!(families.len(), 2);
        assert_eq!(
            sum_metrics(&families, &["a_total", "a"], &SumOptions::default()).unwrap(),
            [5.0, 1.0]
        );
    }

    #[test]
    fn empty_names_give_empty_sums() {
        assert!(sums(TEXT, &[], &SumOptions::default()).unwrap().is_empty());
    }
}
