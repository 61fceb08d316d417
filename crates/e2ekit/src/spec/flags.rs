//! Command-line flag helpers: an ordered flag map and the ways to turn it into arguments.
//!
//! Services in a scenario are usually configured through long flags such as
//! `--log.level=debug`. [`Flags`] keeps them as an ordered map (insertion order is the order
//! of the produced arguments, so commands are deterministic and diffable), lets defaults be
//! overridden with [`Flags::merge`] / [`Flags::merge_dropping_empty`], and renders them with
//! [`Flags::to_args`] or, for programs using kingpin-style repeated flags,
//! [`Flags::to_kingpin_args`].
//!
//! Keys are given with their dashes (`"--log.level"`, `"-v"`); an empty value renders as a bare
//! flag (`"--web.enable-lifecycle"`).
//!
//! ```
//! use e2ekit::Flags;
//!
//! let defaults = Flags::from([
//!     ("--log.level", "info"),
//!     ("--web.enable-lifecycle", ""),
//!     ("--storage.path", "/data"),
//! ]);
//! let flags = defaults.merge_dropping_empty(&Flags::from([
//!     ("--log.level", "debug"),   // replaces the default, in place
//!     ("--storage.path", ""),     // removes the default
//!     ("--query.replica", "a,b"), // new keys go last
//! ]));
//!
//! assert_eq!(
//!     flags.to_args(),
//!     ["--log.level=debug", "--web.enable-lifecycle", "--query.replica=a,b"],
//! );
//! assert_eq!(
//!     flags.to_kingpin_args(),
//!     [
//!         "--log.level=debug",
//!         "--web.enable-lifecycle",
//!         "--query.replica=a",
//!         "--query.replica=b",
//!     ],
//! );
//! ```

use std::fmt;

/// An ordered map of flag name → value.
///
/// Insertion order is preserved; inserting an existing key replaces its value in place (the key
/// keeps its position). Equality compares entries in order, since order is what the rendered
/// arguments depend on.
///
/// Lookups are linear scans: flag sets are small, and a `Vec` keeps order handling trivial.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Flags {
    entries: Vec<(String, String)>,
}

impl Flags {
    /// Creates an empty flag set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `key` to `value`. An existing key keeps its position and gets the new value; a new
    /// key is appended. Returns `self` for chaining.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>) -> &mut Self {
        let key = key.into();
        let value = value.into();
        match self.position(&key) {
            Some(i) => self.entries[i].1 = value,
            None => self.entries.push((key, value)),
        }
        self
    }

    /// Builder form of [`insert`](Self::insert): sets `key` to `value` and returns the set.
    #[must_use]
    pub fn with(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.insert(key, value);
        self
    }

    /// Returns the value of `key`, if set (`Some("")` for a bare flag).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.position(key).map(|i| self.entries[i].1.as_str())
    }

    /// Returns whether `key` is set.
    pub fn contains_key(&self, key: &str) -> bool {
        self.position(key).is_some()
    }

    /// Removes `key`, returning its value if it was set. The order of the other keys is kept.
    pub fn remove(&mut self, key: &str) -> Option<String> {
        self.position(key).map(|i| self.entries.remove(i).1)
    }

    /// Iterates over `(key, value)` pairs in insertion order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &str)> + '_ {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Number of flags.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no flag is set.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Renders one argument per flag, in order: `key=value`, or just `key` when the value is
    /// empty. Keys carry their own dashes, so `("--log.level", "debug")` gives
    /// `"--log.level=debug"`.
    ///
    /// Mirrors `BuildArgs` of `efficientgo/e2e`, with a deterministic order.
    pub fn to_args(&self) -> Vec<String> {
        self.iter().map(|(k, v)| render(k, v)).collect()
    }

    /// Like [`to_args`](Self::to_args), but a value containing commas is split into repeated
    /// flags, as kingpin's repeatable flags expect: `("--k", "a,b")` gives `"--k=a"`, `"--k=b"`.
    ///
    /// The split is plain (no quoting), so a value that legitimately contains a comma must not
    /// go through this function. Empty pieces are kept (`"a,"` gives `"--k=a"`, `"--k="`),
    /// as in `BuildKingpinArgs` of `efficientgo/e2e`.
    pub fn to_kingpin_args(&self) -> Vec<String> {
        let mut args = Vec::with_capacity(self.len());
        for (k, v) in self.iter() {
            if v.is_empty() {
                args.push(k.to_owned());
            } else {
                args.extend(v.split(',').map(|piece| format!("{k}={piece}")));
            }
        }
        args
    }

    /// Returns `self` with `overrides` applied: a key in both takes the override's value at the
    /// base's position; keys only in `overrides` follow, in their order. Empty values are kept
    /// (they render as bare flags).
    ///
    /// Mirrors `MergeFlagsWithoutRemovingEmpty` of `efficientgo/e2e`.
    #[must_use]
    pub fn merge(&self, overrides: &Flags) -> Flags {
        let mut out = self.clone();
        for (k, v) in overrides.iter() {
            out.insert(k, v);
        }
        out
    }

    /// Like [`merge`](Self::merge), but an override with an empty value removes the key, which
    /// is how a default flag is switched off.
    ///
    /// Unlike upstream `MergeFlags` (which drops every empty-valued key of the result), bare
    /// flags of the base that are not overridden are kept, so defaults such as
    /// `--web.enable-lifecycle` survive a merge. To set a bare flag through overrides, use
    /// [`merge`](Self::merge).
    #[must_use]
    pub fn merge_dropping_empty(&self, overrides: &Flags) -> Flags {
        let mut out = self.clone();
        for (k, v) in overrides.iter() {
            if v.is_empty() {
                out.remove(k);
            } else {
                out.insert(k, v);
            }
        }
        out
    }

    fn position(&self, key: &str) -> Option<usize> {
        self.entries.iter().position(|(k, _)| k == key)
    }
}

/// Renders flags as arguments; the same as [`Flags::to_args`] (upstream `BuildArgs`).
pub fn build_args(flags: &Flags) -> Vec<String> {
    flags.to_args()
}

fn render(key: &str, value: &str) -> String {
    if value.is_empty() {
        key.to_owned()
    } else {
        format!("{key}={value}")
    }
}

impl fmt::Debug for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<K: Into<String>, V: Into<String>, const N: usize> From<[(K, V); N]> for Flags {
    fn from(pairs: [(K, V); N]) -> Self {
        pairs.into_iter().collect()
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Flags {
    /// Collects pairs in order; a repeated key keeps its first position and its last value.
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut flags = Flags::new();
        flags.extend(iter);
        flags
    }
}

impl<K: Into<String>, V: Into<String>> Extend<(K, V)> for Flags {
    /// Inserts each pair in order, with [`Flags::insert`] semantics.
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        for (k, v) in iter {
            self.insert(k, v);
        }
    }
}

impl IntoIterator for Flags {
    type Item = (String, String);
    type IntoIter = std::vec::IntoIter<(String, String)>;

    /// Consumes the set, yielding owned `(key, value)` pairs in order.
    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Flags {
        Flags::from([("--b", "2"), ("--a", "1"), ("--bare", ""), ("--c", "3")])
    }

    #[test]
    fn new_and_default_are_empty() {
        assert!(Flags::new().is_empty());
        assert_eq!(Flags::new().len(), 0);
        assert_eq!(Flags::new(), Flags::default());
        assert!(Flags::new().to_args().is_empty());
        assert!(build_args(&Flags::new()).is_empty());
    }

    #[test]
    fn from_array_preserves_order() {
        let f = sample();
        assert_eq!(f.len(), 4);
        let keys: Vec<&str> = f.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["--b", "--a", "--bare", "--c"]);
    }

    #[test]
    fn from_iter_accepts_owned_and_borrowed() {
        let owned: Flags = vec![("--x".to_string(), "1".to_string())]
            .into_iter()
            .collect();
        let borrowed: Flags = [("--x", "1")].into_iter().collect();
        assert_eq!(owned, borrowed);
    }

    #[test]
    fn repeated_key_keeps_first_position_last_value() {
        let f: Flags = [("--a", "1"), ("--b", "2"), ("--a", "3")]
            .into_iter()
            .collect();
        assert_eq!(f.to_args(), ["--a=3", "--b=2"]);
    }

    #[test]
    fn insert_replaces_in_place_and_chains() {
        let mut f = sample();
        f.insert("--a", "10").insert("--d", "4");
        assert_eq!(f.to_args(), ["--b=2", "--a=10", "--bare", "--c=3", "--d=4"]);
    }

    #[test]
    fn with_builder() {
        let f = Flags::new()
            .with("--x", "1")
            .with("--y", "")
            .with("--x", "2");
        assert_eq!(f.to_args(), ["--x=2", "--y"]);
    }

    #[test]
    fn get_contains_remove() {
        let mut f = sample();
        assert_eq!(f.get("--a"), Some("1"));
        assert_eq!(f.get("--bare"), Some(""));
        assert_eq!(f.get("--missing"), None);
        assert!(f.contains_key("--c"));
        assert_eq!(f.remove("--a"), Some("1".to_string()));
        assert_eq!(f.remove("--a"), None);
        assert!(!f.contains_key("--a"));
        assert_eq!(f.to_args(), ["--b=2", "--bare", "--c=3"]);
    }

    #[test]
    fn iter_and_into_iter() {
        let f = Flags::from([("--a", "1"), ("--b", "")]);
        assert_eq!(f.iter().len(), 2);
        assert_eq!(f.iter().collect::<Vec<_>>(), [("--a", "1"), ("--b", "")]);
        let owned: Vec<(String, String)> = f.into_iter().collect();
        assert_eq!(
            owned,
            [
                ("--a".to_string(), "1".to_string()),
                ("--b".to_string(), String::new())
            ]
        );
    }

    #[test]
    fn extend_uses_insert_semantics() {
        let mut f = Flags::from([("--a", "1")]);
        f.extend([("--b", "2"), ("--a", "3")]);
        assert_eq!(f.to_args(), ["--a=3", "--b=2"]);
    }

    #[test]
    fn to_args_and_build_args() {
        let f = sample();
        let want = ["--b=2", "--a=1", "--bare", "--c=3"];
        assert_eq!(f.to_args(), want);
        assert_eq!(build_args(&f), want);
        // Values are not split or escaped.
        let f = Flags::from([("--k", "a,b=c d")]);
        assert_eq!(f.to_args(), ["--k=a,b=c d"]);
    }

    #[test]
    fn equality_is_order_sensitive() {
        let a = Flags::from([("--a", "1"), ("--b", "2")]);
        let b = Flags::from([("--b", "2"), ("--a", "1")]);
        assert_ne!(a, b);
        assert_eq!(a.clone(), a);
    }

    #[test]
    fn debug_is_a_map() {
        let f = Flags::from([("--a", "1"), ("--b", "")]);
        assert_eq!(format!("{f:?}"), r#"{"--a": "1", "--b": ""}"#);
    }

    #[test]
    fn merge_overrides_win_and_order_is_kept() {
        let base = sample();
        let over = Flags::from([("--new", "n"), ("--a", "x"), ("--c", "")]);
        let m = base.merge(&over);
        assert_eq!(m.to_args(), ["--b=2", "--a=x", "--bare", "--c", "--new=n"]);
        // Inputs untouched.
        assert_eq!(base, sample());
    }

    #[test]
    fn merge_the_other_way() {
        let base = sample();
        let over = Flags::from([("--new", "n"), ("--a", "x")]);
        let m = over.merge(&base);
        assert_eq!(
            m.to_args(),
            ["--new=n", "--a=1", "--b=2", "--bare", "--c=3"]
        );
    }

    #[test]
    fn merge_with_empty_sides() {
        let base = sample();
        assert_eq!(base.merge(&Flags::new()), base);
        assert_eq!(Flags::new().merge(&base), base);
        assert_eq!(base.merge_dropping_empty(&Flags::new()), base);
        // As overrides, the bare flag of `base` means "remove", so it is not added.
        assert_eq!(
            Flags::new().merge_dropping_empty(&base).to_args(),
            ["--b=2", "--a=1", "--c=3"]
        );
    }

    #[test]
    fn merge_dropping_empty_removes_overridden_keys() {
        let base = sample();
        let over = Flags::from([("--a", ""), ("--c", "30"), ("--new", "n"), ("--gone", "")]);
        let m = base.merge_dropping_empty(&over);
        // --a removed, --bare (base, not overridden) kept, --gone never added.
        assert_eq!(m.to_args(), ["--b=2", "--bare", "--c=30", "--new=n"]);
        assert!(!m.contains_key("--gone"));
    }

    #[test]
    fn merge_dropping_empty_the_other_way() {
        let base = sample();
        let over = Flags::from([("--a", "x"), ("--new", "")]);
        // `base` as overrides: its bare flag is not added; the bare flag of `over` (the base
        // here) is kept since nothing overrides it.
        let m = over.merge_dropping_empty(&base);
        assert_eq!(m.to_args(), ["--a=1", "--new", "--b=2", "--c=3"]);
    }

    #[test]
    fn kingpin_splits_commas_into_repeated_flags() {
        let f = Flags::from([
            ("--single", "x"),
            ("--multi", "a,b,c"),
            ("--bare", ""),
            ("--trailing", "a,"),
        ]);
        assert_eq!(
            f.to_kingpin_args(),
            [
                "--single=x",
                "--multi=a",
                "--multi=b",
                "--multi=c",
                "--bare",
                "--trailing=a",
                "--trailing=",
            ]
        );
        // to_args does not split.
        assert_eq!(f.to_args()[1], "--multi=a,b,c");
    }
}
