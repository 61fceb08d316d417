//! [`MetricsOptions`]: which series to sum and how long to wait.

use std::fmt::Write as _;
use std::time::Duration;

use super::matcher::Matcher;
use super::sum::SumOptions;
use crate::wait::WaitPolicy;

/// How metrics are selected, summed and waited for.
///
/// ```
/// use e2ekit::prelude::*;
///
/// let opts = MetricsOptions::new()
///     .label_matchers([Matcher::equal("handler", "/work"), Matcher::regex("code", "2..")])
///     .wait_missing_metrics()
///     .wait(WaitPolicy::timeout(Duration::from_secs(10)));
/// # let _ = opts;
/// ```
#[derive(Debug, Clone)]
pub struct MetricsOptions {
    pub(crate) sum: SumOptions,
    pub(crate) wait_missing: bool,
    pub(crate) wait: WaitPolicy,
}

impl Default for MetricsOptions {
    fn default() -> Self {
        Self {
            sum: SumOptions::default(),
            wait_missing: false,
            wait: default_metrics_wait(),
        }
    }
}

/// Thirty seconds, at the metric-wait intervals ([`METRIC_INTERVALS`]).
pub(crate) fn default_metrics_wait() -> WaitPolicy {
    WaitPolicy::timeout(Duration::from_secs(30))
}

/// How often a metric wait looks unless the caller set intervals: after 5 ms, then each pause
/// an eighth longer than the one before (plus 0.1 ms), up to every 250 ms.
///
/// Every look is a scrape of the target (a request, and on the target's side the rendering
/// of its whole exposition), and the target is usually the very thing a test measures. The
/// pause stays about an eighth of the time waited so far (5 ms + t/8), so a change in the
/// first second of a wait is seen about 20 ms after it happens (median; `benches/metrics_wait`
/// measured 19-24 ms), and the scrapes per second fall as the wait goes on: 27 in the first
/// second, 4 a second once the 250 ms cap is reached after about 2 s, so any wait of 5 s or
/// more averages at most 9 a second (issue 14: at most 10). Readiness intervals (1-4 ms) would
/// scrape over a hundred times a second.
pub(crate) const METRIC_INTERVALS: WaitPolicy =
    WaitPolicy::schedule(Duration::from_millis(5), Duration::from_millis(250), 8);

impl MetricsOptions {
    /// Defaults: no matchers, a missing metric is an error at once, sums of histograms and
    /// summaries, a 30 s wait at the metric-wait intervals (see [`MetricsOptions::wait`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// Only series matching all of these matchers count.
    pub fn label_matchers(mut self, matchers: impl IntoIterator<Item = Matcher>) -> Self {
        self.sum.matchers.extend(matchers);
        self
    }

    /// Waits for metrics that are not exposed yet instead of failing at once.
    pub fn wait_missing_metrics(mut self) -> Self {
        self.wait_missing = true;
        self
    }

    /// Counts metrics that are not exposed as 0.
    pub fn skip_missing_metrics(mut self) -> Self {
        self.sum.skip_missing = true;
        self
    }

    /// Uses the observation count of histograms and summaries instead of their sum.
    pub fn metric_count(mut self) -> Self {
        self.sum.use_count = true;
        self
    }

    /// How long to wait, and how often to look. Intervals not set on the policy are the
    /// metric-wait ones, so `WaitPolicy::timeout(d)` changes only the deadline: after 5 ms,
    /// each pause an eighth longer than the one before, up to every 250 ms (see
    /// [`WaitPolicy`]). Intervals set with [`WaitPolicy::min_interval`] /
    /// [`WaitPolicy::max_interval`] are used as given (a bound not set stays the metric
    /// wait's).
    pub fn wait(mut self, policy: WaitPolicy) -> Self {
        self.wait = policy;
        self
    }

    /// The policy a wait with these options follows: the deadline given, the intervals given
    /// and the metric-wait ones for the others.
    pub(crate) fn wait_policy(&self) -> WaitPolicy {
        self.wait.or_intervals_of(METRIC_INTERVALS)
    }

    /// The matchers in PromQL form (`{a="b",c=~"d"}`), empty without matchers.
    pub(crate) fn matchers_text(&self) -> String {
        if self.sum.matchers.is_empty() {
            return String::new();
        }
        let mut text = String::from("{");
        for (i, m) in self.sum.matchers.iter().enumerate() {
            if i > 0 {
                text.push(',');
            }
            let _ = write!(text, "{m}");
        }
        text.push('}');
        text
    }
}
