//! Label matchers with Prometheus semantics: `=`, `!=`, `=~` and `!~`.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::OnceLock;

use regex::Regex;

use super::parse::ParsedSample;

/// The comparison a [`Matcher`] applies to a label value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatchOp {
    /// `=`: the value equals the given string.
    Equal,
    /// `!=`: the value differs from the given string.
    NotEqual,
    /// `=~`: the whole value matches the given regular expression.
    Regex,
    /// `!~`: the whole value does not match the given regular expression.
    NotRegex,
}

impl MatchOp {
    /// The operator as written in PromQL: `=`, `!=`, `=~` or `!~`.
    pub fn as_str(self) -> &'static str {
        match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Regex => "=~",
            MatchOp::NotRegex => "!~",
        }
    }
}

impl fmt::Display for MatchOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A label matcher, as in a PromQL selector: `job="api"`, `code=~"5.."`.
///
/// Prometheus semantics apply: a series without the label is matched as if its value were the
/// empty string (so `Matcher::equal("x", "")` selects series without `x`), and regular
/// expressions must match the whole value, i.e. they are anchored as `^(?s:re)$` (`.` also
/// matches a newline, as in Prometheus 3). The name `__name__` refers to the series name.
///
/// Constructors never fail; a regular expression is compiled on first use, and an invalid one
/// is reported by [`Matcher::validate`] and by every match.
///
/// ```
/// use e2ekit::metrics::Matcher;
///
/// let m = Matcher::regex("code", "2..");
/// assert_eq!(m.to_string(), r#"code=~"2..""#);
/// assert!(m.matches("200").unwrap());
/// assert!(!m.matches("1200").unwrap()); // anchored
/// assert!(Matcher::regex("code", "(").validate().is_err());
/// ```
#[derive(Clone)]
pub struct Matcher {
    name: String,
    value: String,
    op: MatchOp,
    regex: OnceLock<Result<Regex, MatcherError>>,
}

/// Why a [`Matcher`] cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MatcherError {
    /// The regular expression of a `=~` or `!~` matcher does not compile.
    #[error("invalid regular expression in label matcher {matcher}: {message}")]
    InvalidRegex {
        /// The matcher as written, e.g. `code=~"("`.
        matcher: String,
        /// What the regular expression compiler said.
        message: String,
    },
}

impl Matcher {
    /// A matcher applying `op` to label `name` with `value`.
    pub fn new(op: MatchOp, name: impl Into<String>, value: impl Into<String>) -> Self {
        Matcher {
            name: name.into(),
            value: value.into(),
            op,
            regex: OnceLock::new(),
        }
    }

    /// `name="value"`: the label equals `value` (an absent label equals `""`).
    pub fn equal(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self::new(MatchOp::Equal, name, value)
    }

    /// `name!="value"`: the label differs from `value` (an absent label equals `""`).
    pub fn not_equal(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self::new(MatchOp::NotEqual, name, value)
    }

    /// `name=~"regex"`: the whole label value matches `regex`.
    pub fn regex(name: impl Into<String>, regex: impl Into<String>) -> Self {
        Self::new(MatchOp::Regex, name, regex)
    }

    /// `name!~"regex"`: the whole label value does not match `regex`.
    pub fn not_regex(name: impl Into<String>, regex: impl Into<String>) -> Self {
        Self::new(MatchOp::NotRegex, name, regex)
    }

    /// The label name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The value or regular expression as given.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// The comparison.
    pub fn op(&self) -> MatchOp {
        self.op
    }

    /// Checks that the matcher can be used: its regular expression, if any, compiles.
    pub fn validate(&self) -> Result<(), MatcherError> {
        match self.op {
            MatchOp::Equal | MatchOp::NotEqual => Ok(()),
            MatchOp::Regex | MatchOp::NotRegex => self.compiled().map(|_| ()),
        }
    }

    /// Whether a label value satisfies the matcher. Errors only for an invalid regex.
    pub fn matches(&self, value: &str) -> Result<bool, MatcherError> {
        Ok(match self.op {
            MatchOp::Equal => value == self.value,
            MatchOp::NotEqual => value != self.value,
            MatchOp::Regex => self.compiled()?.is_match(value),
            MatchOp::NotRegex => !self.compiled()?.is_match(value),
        })
    }

    /// Whether a sample satisfies the matcher: its label `name` (or its series name for
    /// `__name__`), or `""` when it has no such label.
    pub fn matches_sample(&self, sample: &ParsedSample<'_>) -> Result<bool, MatcherError> {
        let value = if self.name == "__name__" {
            &sample.name
        } else {
            sample.label(&self.name).unwrap_or("")
        };
        self.matches(value)
    }

    fn compiled(&self) -> Result<&Regex, MatcherError> {
        self.regex
            .get_or_init(|| {
                Regex::new(&format!("^(?s:{})$", self.value)).map_err(|err| {
                    MatcherError::InvalidRegex {
                        matcher: self.to_string(),
                        message: err.to_string(),
                    }
                })
            })
            .as_ref()
            .map_err(Clone::clone)
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}\"", self.name, self.op)?;
        for c in self.value.chars() {
            match c {
                '\\' => f.write_str("\\\\")?,
                '"' => f.write_str("\\\"")?,
                '\n' => f.write_str("\\n")?,
                c => write!(f, "{c}")?,
            }
        }
        f.write_str("\"")
    }
}

impl fmt::Debug for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Matcher")
            .field("name", &self.name)
            .field("op", &self.op)
            .field("value", &self.value)
            .finish()
    }
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        self.op == other.op && self.name == other.name && self.value == other.value
    }
}

impl Eq for Matcher {}

impl Hash for Matcher {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.op.hash(state);
        self.name.hash(state);
        self.value.hash(state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::parse;

    fn matches(m: &Matcher, value: &str) -> bool {
        m.matches(value).unwrap()
    }

    #[test]
    fn equal_and_not_equal() {
        let m = Matcher::equal("job", "api");
        assert!(matches(&m, "api"));
        assert!(!matches(&m, "api2"));
        assert!(!matches(&m, ""));
        let m = Matcher::not_equal("job", "api");
        assert!(!matches(&m, "api"));
        assert!(matches(&m, "web"));
        assert!(matches(&m, ""));
        // Regex metacharacters are literal for equality.
        assert!(matches(&Matcher::equal("a", "x.*"), "x.*"));
        assert!(!matches(&Matcher::equal("a", "x.*"), "xyz"));
    }

    #[test]
    fn regex_is_fully_anchored() {
        let m = Matcher::regex("code", "2..");
        assert!(matches(&m, "200"));
        assert!(matches(&m, "2xx"));
        assert!(!matches(&m, "1200"));
        assert!(!matches(&m, "2000"));
        assert!(!matches(&m, ""));
        // Alternation is anchored as a whole, not only its first and last branch.
        let m = Matcher::regex("code", "200|404");
        assert!(matches(&m, "404"));
        assert!(!matches(&m, "4040"));
        assert!(!matches(&m, "1200"));
        // Explicit anchors are harmless.
        assert!(matches(&Matcher::regex("a", "^b$"), "b"));
        // `.` matches newlines as in Prometheus 3.
        assert!(matches(&Matcher::regex("a", "x.y"), "x\ny"));
        assert!(matches(&Matcher::regex("a", ""), ""));
        assert!(!matches(&Matcher::regex("a", ""), "x"));
    }

    #[test]
    fn not_regex_is_fully_anchored() {
        let m = Matcher::not_regex("code", "2..");
        assert!(!matches(&m, "200"));
        assert!(matches(&m, "1200"));
        assert!(matches(&m, "500"));
        assert!(matches(&m, ""));
        let m = Matcher::not_regex("code", ".+");
        assert!(matches(&m, ""));
        assert!(!matches(&m, "x"));
    }

    #[test]
    fn invalid_regex_is_reported_on_validate_and_use() {
        for m in [Matcher::regex("a", "("), Matcher::not_regex("a", "[z-a]")] {
            let err = m.validate().unwrap_err();
            let MatcherError::InvalidRegex { matcher, message } = &err;
            assert_eq!(matcher, &m.to_string());
            assert!(!message.is_empty());
            assert!(err.to_string().contains("invalid regular expression"));
            assert_eq!(m.matches("x").unwrap_err(), err);
            assert_eq!(m.clone().matches("x").unwrap_err(), err);
        }
        assert!(Matcher::equal("a", "(").validate().is_ok());
        assert!(Matcher::not_equal("a", "(").validate().is_ok());
        assert!(Matcher::regex("a", "a|b").validate().is_ok());
    }

    #[test]
    fn display_and_debug() {
        assert_eq!(Matcher::equal("job", "x").to_string(), r#"job="x""#);
        assert_eq!(Matcher::not_equal("job", "x").to_string(), r#"job!="x""#);
        assert_eq!(Matcher::regex("job", "x.*").to_string(), r#"job=~"x.*""#);
        assert_eq!(Matcher::not_regex("job", "x").to_string(), r#"job!~"x""#);
        assert_eq!(
            Matcher::equal("p", "C:\\a \"b\"\n").to_string(),
            r#"p="C:\\a \"b\"\n""#
        );
        let debug = format!("{:?}", Matcher::regex("code", "2.."));
        assert_eq!(
            debug,
            r#"Matcher { name: "code", op: Regex, value: "2.." }"#
        );
    }

    #[test]
    fn accessors_equality_and_clone() {
        let m = Matcher::not_regex("n", "v");
        assert_eq!((m.name(), m.value(), m.op()), ("n", "v", MatchOp::NotRegex));
        assert_eq!(m.op().to_string(), "!~");
        m.validate().unwrap();
        assert_eq!(m.clone(), m);
        assert_ne!(m, Matcher::regex("n", "v"));
        assert_eq!(
            Matcher::new(MatchOp::Equal, "a", "b"),
            Matcher::equal("a", "b")
        );
    }

    #[test]
    fn samples_absent_labels_and_name() {
        let families = parse("x{job=\"api\"} 1\nx 2\n").unwrap();
        let with = &families[0].samples[0];
        let without = &families[0].samples[1];
        let m = Matcher::equal("job", "");
        assert!(!m.matches_sample(with).unwrap());
        assert!(m.matches_sample(without).unwrap());
        let m = Matcher::not_equal("job", "api");
        assert!(!m.matches_sample(with).unwrap());
        assert!(m.matches_sample(without).unwrap());
        let m = Matcher::regex("job", "a.*|");
        assert!(m.matches_sample(with).unwrap());
        assert!(m.matches_sample(without).unwrap());
        let m = Matcher::not_regex("job", ".+");
        assert!(!m.matches_sample(with).unwrap());
        assert!(m.matches_sample(without).unwrap());
        assert!(Matcher::equal("__name__", "x")
            .matches_sample(with)
            .unwrap());
        assert!(!Matcher::regex("__name__", "y")
            .matches_sample(with)
            .unwrap());
    }
}
