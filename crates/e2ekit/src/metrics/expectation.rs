//! Expectations on the sums of metrics: `equals(5.0)`, `greater(50.0)`, `less_among_two()`...

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

type Check = dyn Fn(&[f64]) -> bool + Send + Sync;

/// A condition on the sums of one or more metrics, with a human description used in errors.
///
/// Build one with the free functions ([`equals`], [`greater`], [`between`],
/// [`equals_among_two`]...), with [`Expectation::custom`], or from any closure over the sums
/// (described as `custom expectation`). Cloning is cheap.
///
/// ```
/// use e2ekit::metrics::{between, equals, less_among_two, Expectation};
///
/// assert!(equals(5.0).check(&[5.0]));
/// assert_eq!(between(1.0, 3.0).to_string(), "between 1 and 3 (exclusive)");
/// assert!(less_among_two().check(&[1.0, 2.0]));
/// let e: Expectation = (|sums: &[f64]| sums.iter().sum::<f64>() > 10.0).into();
/// assert!(e.check(&[6.0, 7.0]));
/// ```
#[derive(Clone)]
pub struct Expectation {
    description: Cow<'static, str>,
    expected_len: Option<usize>,
    check: Arc<Check>,
}

impl Expectation {
    /// An expectation from any condition on the sums, described by `description`.
    pub fn custom(
        description: impl Into<Cow<'static, str>>,
        check: impl Fn(&[f64]) -> bool + Send + Sync + 'static,
    ) -> Self {
        Expectation {
            description: description.into(),
            expected_len: None,
            check: Arc::new(check),
        }
    }

    fn single(description: String, check: impl Fn(f64) -> bool + Send + Sync + 'static) -> Self {
        Expectation {
            description: description.into(),
            expected_len: Some(1),
            check: Arc::new(move |sums| check(sums[0])),
        }
    }

    fn pair(description: &'static str, check: fn(f64, f64) -> bool) -> Self {
        Expectation {
            description: description.into(),
            expected_len: Some(2),
            check: Arc::new(move |sums| check(sums[0], sums[1])),
        }
    }

    /// Whether the sums satisfy the expectation. Built-in expectations are false when given
    /// a number of sums other than [`Expectation::expected_len`].
    pub fn check(&self, sums: &[f64]) -> bool {
        match self.expected_len {
            Some(len) if sums.len() != len => false,
            _ => (self.check)(sums),
        }
    }

    /// How many sums (metric names) the expectation needs: `Some(1)` for [`equals`] and the
    /// other single-value expectations, `Some(2)` for the `*_among_two` ones, `None` for custom
    /// ones.
    pub fn expected_len(&self) -> Option<usize> {
        self.expected_len
    }

    /// The human description, e.g. `>= 5` or `first == second`.
    pub fn description(&self) -> &str {
        &self.description
    }
}

impl<F> From<F> for Expectation
where
    F: Fn(&[f64]) -> bool + Send + Sync + 'static,
{
    fn from(check: F) -> Self {
        Expectation::custom("custom expectation", check)
    }
}

impl fmt::Display for Expectation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.description)
    }
}

impl fmt::Debug for Expectation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Expectation")
            .field("description", &self.description)
            .field("expected_len", &self.expected_len)
            .finish_non_exhaustive()
    }
}

/// Formats a value as Prometheus does: `+Inf`, `-Inf`, `NaN`, else the shortest decimal.
struct Value(f64);

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            v if v.is_nan() => f.write_str("NaN"),
            v if v == f64::INFINITY => f.write_str("+Inf"),
            v if v == f64::NEG_INFINITY => f.write_str("-Inf"),
            v => write!(f, "{v}"),
        }
    }
}

fn same(a: f64, b: f64) -> bool {
    a == b || (a.is_nan() && b.is_nan())
}

/// The single sum equals `value` (`NaN` equals `NaN`). Described as `== value`.
pub fn equals(value: f64) -> Expectation {
    Expectation::single(format!("== {}", Value(value)), move |v| same(v, value))
}

/// The single sum is greater than `value`. Described as `> value`.
pub fn greater(value: f64) -> Expectation {
    Expectation::single(format!("> {}", Value(value)), move |v| v > value)
}

/// The single sum is greater than or equal to `value`. Described as `>= value`.
pub fn greater_or_equal(value: f64) -> Expectation {
    Expectation::single(format!(">= {}", Value(value)), move |v| v >= value)
}

/// The single sum is less than `value`. Described as `< value`.
pub fn less(value: f64) -> Expectation {
    Expectation::single(format!("< {}", Value(value)), move |v| v < value)
}

/// The single sum is less than or equal to `value`. Described as `<= value`.
pub fn less_or_equal(value: f64) -> Expectation {
    Expectation::single(format!("<= {}", Value(value)), move |v| v <= value)
}

/// The single sum lies strictly between `low` and `high`. Described as
/// `between low and high (exclusive)`.
pub fn between(low: f64, high: f64) -> Expectation {
    Expectation::single(
        format!("between {} and {} (exclusive)", Value(low), Value(high)),
        move |v| low < v && v < high,
    )
}

/// Of two sums, the first equals the second (`NaN` equals `NaN`). Described as
/// `first == second`.
///
/// Two metrics are rarely updated atomically: a scrape may see one updated and not the other.
pub fn equals_among_two() -> Expectation {
    Expectation::pair("first == second", same)
}

/// Of two sums, the first is greater than the second. Described as `first > second`.
pub fn greater_among_two() -> Expectation {
    Expectation::pair("first > second", |a, b| a > b)
}

/// Of two sums, the first is less than the second. Described as `first < second`.
pub fn less_among_two() -> Expectation {
    Expectation::pair("first < second", |a, b| a < b)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAN: f64 = f64::NAN;
    const INF: f64 = f64::INFINITY;

    #[test]
    fn equals_including_nan() {
        let e = equals(5.0);
        assert!(e.check(&[5.0]));
        assert!(!e.check(&[5.000001]));
        assert!(!e.check(&[NAN]));
        assert_eq!(e.to_string(), "== 5");
        assert_eq!(e.expected_len(), Some(1));
        let e = equals(NAN);
        assert!(e.check(&[NAN]));
        assert!(!e.check(&[0.0]));
        assert_eq!(e.to_string(), "== NaN");
        assert!(equals(INF).check(&[INF]));
        assert_eq!(equals(INF).to_string(), "== +Inf");
        assert_eq!(equals(-INF).to_string(), "== -Inf");
        assert_eq!(equals(0.25).to_string(), "== 0.25");
        assert!(equals(0.0).check(&[-0.0]));
    }

    #[test]
    fn greater_and_greater_or_equal() {
        let e = greater(50.0);
        assert!(e.check(&[50.5]));
        assert!(!e.check(&[50.0]));
        assert!(!e.check(&[NAN]));
        assert_eq!(e.to_string(), "> 50");
        let e = greater_or_equal(5.0);
        assert!(e.check(&[5.0]));
        assert!(e.check(&[6.0]));
        assert!(!e.check(&[4.9]));
        assert!(!e.check(&[NAN]));
        assert_eq!(e.to_string(), ">= 5");
    }

    #[test]
    fn less_and_less_or_equal() {
        let e = less(3.0);
        assert!(e.check(&[2.0]));
        assert!(!e.check(&[3.0]));
        assert!(!e.check(&[NAN]));
        assert_eq!(e.to_string(), "< 3");
        let e = less_or_equal(3.0);
        assert!(e.check(&[3.0]));
        assert!(!e.check(&[3.5]));
        assert!(!e.check(&[NAN]));
        assert_eq!(e.to_string(), "<= 3");
    }

    #[test]
    fn between_is_exclusive() {
        let e = between(1.0, 3.0);
        assert!(e.check(&[2.0]));
        assert!(!e.check(&[1.0]));
        assert!(!e.check(&[3.0]));
        assert!(!e.check(&[0.0]));
        assert!(!e.check(&[NAN]));
        assert_eq!(e.to_string(), "between 1 and 3 (exclusive)");
        assert!(between(-INF, INF).check(&[1e300]));
    }

    #[test]
    fn single_value_expectations_reject_other_lengths() {
        for e in [
            equals(1.0),
            greater(0.0),
            greater_or_equal(0.0),
            less(2.0),
            less_or_equal(2.0),
            between(0.0, 2.0),
        ] {
            assert!(e.check(&[1.0]), "{e}");
            assert!(!e.check(&[]), "{e}");
            assert!(!e.check(&[1.0, 1.0]), "{e}");
            assert_eq!(e.expected_len(), Some(1));
        }
    }

    #[test]
    fn among_two() {
        let e = equals_among_two();
        assert!(e.check(&[2.0, 2.0]));
        assert!(!e.check(&[2.0, 3.0]));
        assert!(e.check(&[NAN, NAN]));
        assert!(!e.check(&[NAN, 1.0]));
        assert_eq!(e.to_string(), "first == second");
        let e = greater_among_two();
        assert!(e.check(&[3.0, 2.0]));
        assert!(!e.check(&[2.0, 2.0]));
        assert!(!e.check(&[NAN, 1.0]));
        assert_eq!(e.to_string(), "first > second");
        let e = less_among_two();
        assert!(e.check(&[1.0, 2.0]));
        assert!(!e.check(&[2.0, 2.0]));
        assert_eq!(e.to_string(), "first < second");
        for e in [equals_among_two(), greater_among_two(), less_among_two()] {
            assert_eq!(e.expected_len(), Some(2));
            assert!(!e.check(&[]), "{e}");
            assert!(!e.check(&[1.0]), "{e}");
            assert!(!e.check(&[1.0, 1.0, 1.0]), "{e}");
        }
    }

    #[test]
    fn custom_and_from_closure() {
        let e = Expectation::custom("sum of all > 10", |sums| sums.iter().sum::<f64>() > 10.0);
        assert!(e.check(&[5.0, 6.0]));
        assert!(!e.check(&[5.0]));
        assert!(!e.check(&[]));
        assert_eq!(e.to_string(), "sum of all > 10");
        assert_eq!(e.description(), "sum of all > 10");
        assert_eq!(e.expected_len(), None);
        let e = Expectation::custom(String::from("owned"), |_| true);
        assert_eq!(e.description(), "owned");

        let threshold = 3.0;
        let e: Expectation = (move |sums: &[f64]| sums.len() == 3 && sums[2] > threshold).into();
        assert!(e.check(&[0.0, 0.0, 4.0]));
        assert!(!e.check(&[0.0]));
        assert_eq!(e.to_string(), "custom expectation");
        assert_eq!(e.expected_len(), None);
    }

    #[test]
    fn clone_debug_and_thread_safety() {
        fn assert_send_sync<T: Send + Sync + 'static>(_: &T) {}
        let e = greater(1.0);
        assert_send_sync(&e);
        let clone = e.clone();
        assert!(clone.check(&[2.0]));
        assert_eq!(
            format!("{e:?}"),
            r#"Expectation { description: "> 1", expected_len: Some(1), .. }"#
        );
    }
}
