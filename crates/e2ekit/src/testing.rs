//! What `#[e2ekit::test]` expands to calls into here (through `e2ekit::__private`): build the
//! test's runtime and its environment, run the test, close or keep the environment, and turn
//! the outcome into the test's result.
//!
//! ```no_run
//! use e2ekit::prelude::*;
//!
//! // Expands to a `#[test]` that calls `e2ekit::__private::run_test` with this function.
//! #[e2ekit::test]
//! async fn passes(env: Environment) -> e2ekit::Result<()> {
//!     assert!(env.name().ends_with("passes"));
//!     Ok(())
//! }
//! # fn main() {}
//! ```

use std::fmt;
use std::future::Future;

use crate::env::core::keep_on_failure;
use crate::env::Environment;
use crate::error::{Error, Result};
use crate::host::naming::{sanitize, stable_hash, MAX_ENV_NAME};

/// The runtime a test runs on, as `#[tokio::test]` spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// One thread: the test's own (the default).
    CurrentThread,
    /// A multi-thread runtime with this many workers (default: one per core).
    MultiThread(Option<usize>),
}

/// Which test runs, and how; filled in by the macro.
#[derive(Debug, Clone, Copy)]
pub struct TestSpec {
    /// `module_path!()` where the test is defined (starts with the crate's name).
    pub module_path: &'static str,
    /// The test function's name.
    pub function: &'static str,
    /// An explicit environment name (`name = "..."`), instead of one derived from the path.
    pub name: Option<&'static str>,
    /// The runtime to build.
    pub flavor: Flavor,
}

impl TestSpec {
    /// The test's full path: `crate::module::function`.
    pub fn path(&self) -> String {
        format!("{}::{}", self.module_path, self.function)
    }

    /// The environment's name: explicit, or derived from the full path (see
    /// [`env_name_for_test`]).
    pub fn env_name(&self) -> String {
        match self.name {
            Some(n) => n.to_string(),
            None => env_name_for_test(self.module_path, self.function),
        }
    }
}

/// A failed `#[e2ekit::test]`: the error's full report. Its `Debug` is the report, which the
/// test harness prints after `Error: `.
pub struct TestFailure(String);

impl fmt::Debug for TestFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for TestFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What an `#[e2ekit::test]` function may return: nothing, or `e2ekit::Result<()>`.
#[diagnostic::on_unimplemented(
    message = "an #[e2ekit::test] function returns `e2ekit::Result<()>` or nothing, not `{Self}`",
    label = "the test returns this type"
)]
pub trait TestOutcome {
    /// The outcome as a result.
    fn into_result(self) -> Result<()>;
}

impl TestOutcome for () {
    fn into_result(self) -> Result<()> {
        Ok(())
    }
}

impl TestOutcome for Result<()> {
    fn into_result(self) -> Result<()> {
        self
    }
}

/// Fails to compile, on the test's return type, unless a test may return `T`.
pub fn check_outcome<T: TestOutcome>() {}

/// Runs one `#[e2ekit::test]`: builds its runtime and its environment, runs `test` with the
/// environment, and then:
/// - `Ok`: closes the environment; the test passes.
/// - `Err`: prints the error's report; keeps the environment (and prints how to reach and
///   remove it) when `E2EKIT_KEEP_ON_FAILURE` is set, closes it otherwise; the test fails.
/// - panic: the environment's drop guard keeps it when `E2EKIT_KEEP_ON_FAILURE` is set and
///   removes it otherwise; the panic fails the test.
pub fn run_test<F, Fut>(spec: TestSpec, test: F) -> std::result::Result<(), TestFailure>
where
    F: FnOnce(Environment) -> Fut,
    Fut: Future,
    Fut::Output: TestOutcome,
{
    let path = spec.path();
    let runtime = match spec.flavor {
        Flavor::CurrentThread => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        Flavor::MultiThread(workers) => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            if let Some(n) = workers {
                b.worker_threads(n);
            }
            b.enable_all().build()
        }
    }
    .map_err(|e| {
        TestFailure(format!(
            "e2ekit: cannot build the runtime for test {path}: {e}"
        ))
    })?;
    runtime.block_on(async {
        let env = Environment::builder()
            .name(spec.env_name())
            .build()
            .await
            .map_err(|e| {
                TestFailure(format!(
                    "building the environment of test {path}: {}",
                    e.report()
                ))
            })?;
        let outcome = test(env.clone()).await.into_result();
        finish(&path, &env, outcome).await
    })
}

/// Closes or keeps the environment after the test returned.
async fn finish(
    path: &str,
    env: &Environment,
    outcome: Result<()>,
) -> std::result::Result<(), TestFailure> {
    match outcome {
        Ok(()) => {
            env.close().await;
            Ok(())
        }
        Err(e) => {
            let report = report_of(&e);
            eprintln!("e2ekit: test {path} failed: {report}");
            if keep_on_failure() {
                env.core().keep_for_inspection();
            } else {
                env.close().await;
            }
            Err(TestFailure(report))
        }
    }
}

fn report_of(e: &Error) -> String {
    e.report()
}

/// Length of the hash a cut name ends with.
const HASH_LEN: usize = 6;

/// The environment name of the test `function` in `module_path`: the full path, lowercased,
/// with every run of other characters turned into one `-` (`engine::macro_test::passes` →
/// `engine-macro-test-passes`). A path longer than the 40 characters an environment name may
/// have keeps the whole function name and as much of the module path as fits, and ends with
/// `-` and six hex digits of a stable hash of the full path, so two cut paths never share a
/// name by accident.
pub fn env_name_for_test(module_path: &str, function: &str) -> String {
    let full = format!("{module_path}::{function}");
    let name = sanitize(&full);
    if name.is_empty() {
        return "e2ekit".to_string();
    }
    if name.len() <= MAX_ENV_NAME {
        return name;
    }
    let hash = format!(
        "{:0width$x}",
        stable_hash(&full) & 0xff_ffff,
        width = HASH_LEN
    );
    let budget = MAX_ENV_NAME - HASH_LEN - 1;
    let function = sanitize(function);
    let text = if function.len() + 2 > budget {
        // The function alone fills the name: its beginning, then the hash.
        cut(&function, budget).to_string()
    } else {
        let module = sanitize(module_path);
        let module = cut(&module, budget - function.len() - 1);
        if module.is_empty() {
            function
        } else {
            format!("{module}-{function}")
        }
    };
    if text.is_empty() {
        hash
    } else {
        format!("{text}-{hash}")
    }
}

/// The first `max` characters (all ASCII), without a trailing `-`.
fn cut(text: &str, max: usize) -> &str {
    text[..text.len().min(max)].trim_end_matches('-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::naming::validate_env_name;

    #[test]
    fn short_paths_are_the_name() {
        assert_eq!(
            env_name_for_test("engine::macro_test", "passes"),
            "engine-macro-test-passes"
        );
        assert_eq!(env_name_for_test("my_crate", "t"), "my-crate-t");
        assert_eq!(env_name_for_test("r#try", "r#match"), "r-try-r-match");
    }

    #[test]
    fn long_paths_keep_the_function_and_the_module_path_as_far_as_it_fits() {
        let name = env_name_for_test(
            "my_crate::integration::storage::replication",
            "survives_partition",
        );
        assert_eq!(name.len(), MAX_ENV_NAME, "{name}");
        assert!(
            name.starts_with("my-crate-integ-survives-partition-"),
            "{name}"
        );
        validate_env_name(&name).expect("valid");
        // Stable, and distinct for another module of the same prefix.
        assert_eq!(
            name,
            env_name_for_test(
                "my_crate::integration::storage::replication",
                "survives_partition"
            )
        );
        let other = env_name_for_test(
            "my_crate::integration::storage::recovery",
            "survives_partition",
        );
        assert_ne!(name, other);
        assert_eq!(
            name[..name.len() - HASH_LEN],
            other[..other.len() - HASH_LEN]
        );
    }

    #[test]
    fn a_function_name_longer_than_the_budget_is_cut_too() {
        let name = env_name_for_test(
            "engine::macro_test",
            "a_test_with_a_very_long_descriptive_name_indeed",
        );
        assert!(name.starts_with("a-test-with-a-very-long-descr"), "{name}");
        assert!(name.len() <= MAX_ENV_NAME, "{name}");
        validate_env_name(&name).expect("valid");
    }

    #[test]
    fn every_derived_name_is_valid() {
        for (module, function) in [
            ("a", "b"),
            ("___", "___"),
            ("x::y", &"z".repeat(100)),
            (&"m".repeat(100), "f"),
            ("crate::m_", "_f"),
        ] {
            let name = env_name_for_test(module, function);
            validate_env_name(&name).unwrap_or_else(|e| panic!("{module}::{function}: {e}"));
        }
    }

    #[test]
    fn an_explicit_name_wins() {
        let spec = TestSpec {
            module_path: "engine::x",
            function: "t",
            name: Some("mine"),
            flavor: Flavor::CurrentThread,
        };
        assert_eq!(spec.env_name(), "mine");
        assert_eq!(spec.path(), "engine::x::t");
    }

    #[test]
    fn failures_debug_print_as_the_report() {
        let failure = TestFailure(report_of(&Error::Unexpected("boom".into())));
        assert_eq!(format!("{failure:?}"), "boom");
    }
}
