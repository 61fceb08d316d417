//! Prometheus metrics of services: parsing expositions, label matchers and expectations on
//! metric sums.
//!
//! - [`parse`] / [`parse_bytes`] read the Prometheus text format (0.0.4) and OpenMetrics text
//!   into [`MetricFamily`] values that borrow from the input;
//! - [`Matcher`] selects series by label, as in a PromQL selector (`=`, `!=`, `=~`, `!~`);
//! - [`Expectation`] is a condition on the sums of one or more metrics ([`equals`],
//!   [`greater`], [`between`], [`less_among_two`]... or any closure), with a description for
//!   error messages.
//!
//! ```
//! use e2ekit::metrics::{greater_or_equal, parse, Matcher, MetricKind};
//!
//! let exposition = r#"
//! ## HELP http_requests_total Requests served.
//! ## TYPE http_requests_total counter
//! http_requests_total{code="200"} 7
//! http_requests_total{code="500"} 1
//! "#;
//! let families = parse(exposition)?;
//! let requests = &families[0];
//! assert_eq!(requests.kind, MetricKind::Counter);
//!
//! let ok = Matcher::regex("code", "2..");
//! let mut sum = 0.0;
//! for sample in &requests.samples {
//!     if ok.matches_sample(sample)? {
//!         sum += sample.value;
//!     }
//! }
//! assert!(greater_or_equal(5.0).check(&[sum]));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod expectation;
mod instrumented;
mod matcher;
mod options;
mod parse;
mod static_server;
mod sum;
#[cfg(test)]
mod tests;

pub use expectation::{
    between, equals, equals_among_two, greater, greater_among_two, greater_or_equal, less,
    less_among_two, less_or_equal, Expectation,
};
pub(crate) use instrumented::ScrapeTarget;
pub use instrumented::{CompositeInstrumented, Instrumented};
pub use matcher::{MatchOp, Matcher, MatcherError};
pub use options::MetricsOptions;
pub(crate) use options::METRIC_INTERVALS;
pub use parse::{parse, parse_bytes, MetricFamily, MetricKind, ParseError, ParsedSample};
pub use static_server::StaticMetricsServer;
