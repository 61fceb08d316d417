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

/// Thirty seconds, polling from 2 ms up to every 20 ms: a changed value is seen within
/// milliseconds, and a large exposition is not re-parsed needlessly often.
pub(crate) fn default_metrics_wait() -> WaitPolicy {
    WaitPolicy::timeout(Duration::from_secs(30))
        .max_interval(Duration::from_millis(20))
        .min_interval(Duration::from_millis(2))
}

impl MetricsOptions {
    /// Defaults: no matchers, a missing metric is an error at once, sums of histograms and
    /// summaries, a 30 s wait.
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

    /// How long to wait, and how often to look.
    pub fn wait(mut self, policy: WaitPolicy) -> Self {
        self.wait = policy;
        self
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
