//! The test author's workflow: environments whose names never collide (a helper called twice,
//! tests inside `tokio::spawn`), and a setup shared by tests that each have their own
//! runtime.

use std::time::Duration;

use e2ekit::prelude::*;

use crate::common;

/// A runnable that sleeps until stopped.
async fn sleeper(env: &Environment, name: &str) -> Result<Runnable> {
    let image = common::busybox(env).await?;
    env.runnable(name)
        .init(StartOptions::new(image).command(Command::new("sleep").arg("3600")))
}

#[tokio::test]
async fn two_environments_in_one_test_get_distinct_names_and_both_live() -> Result<()> {
    let first = Environment::new().await?;
    let second = Environment::new().await?;
    assert_ne!(first.name(), second.name());
    assert!(
        second.name().ends_with("-2") && second.name().starts_with("engine-workflow-two-env"),
        "the second gets the next ordinal, stable across runs: {}",
        second.name()
    );
    let a = sleeper(&first, "app").await?;
    let b = sleeper(&second, "app").await?;
    start_and_wait_ready(&[&a, &b]).await?;
    assert!(a.is_running() && b.is_running(), "neither swept the other");
    assert_eq!(common::leftovers(first.name()).0, 1);
    assert_eq!(common::leftovers(second.name()).0, 1);
    let (first_name, second_name) = (first.name().to_string(), second.name().to_string());
    first.close().await;
    second.close().await;
    assert_eq!(common::leftovers(&first_name), (0, 0));
    assert_eq!(common::leftovers(&second_name), (0, 0));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environments_created_in_tokio_spawn_never_share_a_name() -> Result<()> {
    let tasks: Vec<_> = (0..3)
        .map(|_| {
            tokio::spawn(async {
                let env = Environment::new().await?;
                let app = sleeper(&env, "app").await?;
                app.start().await?;
                Ok::<_, Error>((env, app))
            })
        })
        .collect();
    let mut envs = Vec::new();
    for t in tasks {
        envs.push(t.await.expect("task")?);
    }
    let mut names: Vec<String> = envs.iter().map(|(e, _)| e.name().to_string()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 3, "distinct names: {names:?}");
    for (env, app) in &envs {
        assert!(
            app.is_running(),
            "{} was swept by another environment",
            env.name()
        );
    }
    for (env, _) in envs {
        let name = env.name().to_string();
        env.close().await;
        assert_eq!(common::leftovers(&name), (0, 0));
    }
    Ok(())
}

/// A plain test with two runtimes, as two `#[tokio::test]`s sharing a setup have: the first
/// starts the setup and ends; a crash is still noticed from the second.
#[test]
fn a_shared_setup_notices_a_crash_after_the_runtime_that_started_it_is_gone() {
    struct Setup {
        env: Environment,
        app: Runnable,
        crash: std::path::PathBuf,
    }
    static SETUP: Shared<Setup> = Shared::new();
    let runtime = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
    };

    // "Test one": builds the setup on its runtime, then its runtime is dropped.
    let first = runtime();
    let setup = first
        .block_on(SETUP.get_or_try_init(|| async {
            let env = Environment::builder()
                .name("e2ekit-shared-setup")
                .build()
                .await?;
            let image = common::busybox(&env).await?;
            let app = env.runnable("app").future()?;
            let crash = app.dir().join("crash");
            let script = format!(
                "echo up; while [ ! -f {} ]; do sleep 0.05; done; echo crashing; exit 7",
                crash.display()
            );
            let app = app.init(
                StartOptions::new(image)
                    .command(Command::new("sh").args(["-c", &script]))
                    .readiness(LogProbe::contains("up")),
            )?;
            app.start().await?;
            app.wait_ready().await?;
            Ok(Setup { env, app, crash })
        }))
        .expect("the shared setup");
    drop(first);

    // "Test two", on another runtime: the same setup, and its crash detection still works.
    let second = runtime();
    second.block_on(async {
        let again = SETUP
            .get_or_try_init(|| async { unreachable!("built once") })
            .await
            .expect("the same setup");
        assert!(std::ptr::eq(again, setup));
        assert!(setup.app.is_running());
        std::fs::write(&setup.crash, b"").expect("trigger the crash");
        for _ in 0..600 {
            if !setup.app.is_running() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            !setup.app.is_running(),
            "the crash went unnoticed after the starting runtime was dropped"
        );
        let err = setup.app.wait_ready().await.expect_err("it crashed");
        assert_eq!(err.exit_code(), Some(7), "{err}");
        assert!(
            err.log_tail()
                .is_some_and(|t| t.iter().any(|l| l == "crashing")),
            "{err}"
        );
        setup.env.close().await;
    });
    assert_eq!(common::leftovers("e2ekit-shared-setup"), (0, 0));
}

/// Run by the next test in a child process: a shared setup in a `static`, never closed, and
/// a normal exit.
#[tokio::test]
#[ignore = "a child of a_shared_setup_is_removed_when_its_process_exits"]
async fn child_leaves_a_shared_setup() -> Result<()> {
    static SETUP: Shared<(Environment, Runnable)> = Shared::new();
    let (env, app) = SETUP
        .get_or_try_init(|| async {
            let env = Environment::builder()
                .name("e2ekit-shared-exit")
                .build()
                .await?;
            let app = sleeper(&env, "app").await?;
            app.start().await?;
            Ok((env, app))
        })
        .await?;
    assert!(app.is_running());
    println!("shared dir: {}", env.shared_dir().display());
    Ok(())
}

#[test]
fn a_shared_setup_is_removed_when_its_process_exits() {
    let out = common::child_command("workflow::child_leaves_a_shared_setup", &[])
        .arg("--ignored")
        .output()
        .expect("run the child test");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the child failed:\n{text}");
    let dir = text
        .lines()
        .find_map(|l| l.split("shared dir: ").nth(1))
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| panic!("no shared dir in:\n{text}"));
    // The process is gone; its reaper removes what the static kept (a hang guard of 10 s,
    // the bound, with no later environment built).
    let mut left = common::leftovers("e2ekit-shared-exit");
    for _ in 0..100 {
        if left == (0, 0) && !dir.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        left = common::leftovers("e2ekit-shared-exit");
    }
    assert_eq!(left, (0, 0), "the shared setup outlived its process");
    assert!(!dir.exists(), "{} is left", dir.display());
}
