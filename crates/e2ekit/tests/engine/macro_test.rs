//! `#[e2ekit::test]` against the real engine: the environment is named after the test's full
//! path and closed after a passing test; a test that fails by `Err` or by panic fails, and its
//! environment is removed, or kept (with the removal command printed) only when
//! `E2EKIT_KEEP_ON_FAILURE` asks for it. The tests that must fail run in child processes.

use e2ekit::prelude::*;

use crate::common::{self, busybox, leftovers};

/// A sleeping container in the environment, so there is something to leave behind.
async fn sleeper(env: &Environment) -> e2ekit::Result<Runnable> {
    let image = busybox(env).await?;
    let r = env
        .runnable("sleeper")
        .init(StartOptions::new(image).command(Command::new("sleep").arg("3600")))?;
    r.start().await?;
    Ok(r)
}

#[e2ekit::test]
#[ignore = "a child of a_passing_test_is_named_after_its_path_and_closed"]
async fn child_passes(env: Environment) -> e2ekit::Result<()> {
    assert_eq!(env.name(), "engine-macro-test-child-passes");
    let r = sleeper(&env).await?;
    assert!(r.is_running());
    println!("CHILD-PASSED-IN {}", env.name());
    Ok(())
}

#[e2ekit::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a child of a_failing_test_by_err_is_kept_only_when_asked"]
async fn child_fails_by_err(env: Environment) -> e2ekit::Result<()> {
    let r = sleeper(&env).await?;
    r.exec(Command::new("false")).await?; // fails: exit code 1
    Ok(())
}

#[e2ekit::test]
#[ignore = "a child of a_panicking_test_is_kept_only_when_asked"]
async fn child_panics(env: Environment) {
    sleeper(&env).await.expect("sleeper");
    panic!("the scenario failed on purpose");
}

/// Runs an ignored child test of this module; returns whether it passed, and its output.
fn run(test: &str, keep: bool) -> (bool, String) {
    let out = common::child_command(
        &format!("macro_test::{test}"),
        &[("E2EKIT_KEEP_ON_FAILURE", if keep { "1" } else { "0" })],
    )
    .arg("--ignored")
    .output()
    .expect("run the child test");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains(&format!("macro_test::{test}")),
        "the child ran no test:\n{text}"
    );
    (out.status.success(), text)
}

fn remove(env: &str) {
    tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(e2ekit::sweep::remove_environment(None, env))
        .expect("removing the kept environment");
    assert_eq!(leftovers(env), (0, 0));
}

/// The failing child, first without keep-on-failure (removed), then with it (kept, and the
/// output says how to remove it).
fn fails_and_is_kept_only_when_asked(test: &str, env: &str, says: &str) {
    let (passed, out) = run(test, false);
    assert!(!passed, "the child must fail:\n{out}");
    assert!(out.contains(says), "{out}");
    assert!(!out.contains("kept for inspection"), "{out}");
    assert_eq!(leftovers(env), (0, 0), "removed without keep-on-failure");

    let (passed, out) = run(test, true);
    assert!(!passed, "the child must fail:\n{out}");
    assert!(out.contains(says), "{out}");
    assert!(
        out.contains(&format!("environment {env:?} is kept for inspection")),
        "{out}"
    );
    assert!(out.contains("remove it with: "), "{out}");
    assert!(out.contains(&format!("docker network rm {env}")), "{out}");
    assert_eq!(leftovers(env), (1, 1), "kept after the test process exited");
    remove(env);
}

#[test]
fn a_passing_test_is_named_after_its_path_and_closed() {
    let (passed, out) = run("child_passes", false);
    assert!(passed, "{out}");
    assert!(
        out.contains("CHILD-PASSED-IN engine-macro-test-child-passes"),
        "{out}"
    );
    assert_eq!(leftovers("engine-macro-test-child-passes"), (0, 0));
}

#[test]
fn a_failing_test_by_err_is_kept_only_when_asked() {
    fails_and_is_kept_only_when_asked(
        "child_fails_by_err",
        "engine-macro-test-child-fails-by-err",
        "e2ekit: test engine::macro_test::child_fails_by_err failed: command",
    );
}

#[test]
fn a_panicking_test_is_kept_only_when_asked() {
    fails_and_is_kept_only_when_asked(
        "child_panics",
        "engine-macro-test-child-panics",
        "the scenario failed on purpose",
    );
}
