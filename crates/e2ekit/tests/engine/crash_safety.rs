//! Crash safety and scale: SIGKILLed owners are swept, kept environments survive until
//! removed, the CLI lists and removes environments, and 100 environments coexist.

use std::io::BufRead;

use e2ekit::prelude::*;

use crate::common::{self, busybox, leftovers};

/// In a child process: starts an environment with one container, says so, and waits to be
/// killed.
fn child_that_waits_to_be_killed(env_name: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let env = Environment::builder()
            .name(env_name)
            .build()
            .await
            .expect("env");
        let image = busybox(&env).await.expect("image");
        let r = env
            .runnable("victim")
            .init(StartOptions::new(image).command(Command::new("sleep").arg("3600")))
            .expect("init");
        r.start().await.expect("start");
        println!("CHILD-READY");
        tokio::time::sleep(std::time::Duration::from_secs(600)).await;
    });
}

/// Spawns the child and waits until its environment is up.
fn spawn_owner(test: &str, env_name: &str) -> std::process::Child {
    let mut child = common::child_command(test, &[("E2EKIT_CHILD_KILLME", env_name)])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("child stdout");
    let ready = std::io::BufReader::new(stdout)
        .lines()
        .map_while(|l| l.ok())
        .any(|l| l.contains("CHILD-READY"));
    if !ready {
        let _ = child.kill();
        panic!("the child never reported its environment up");
    }
    child
}

/// Spawns the child, waits until its environment is up, and SIGKILLs it.
fn start_and_sigkill(test: &str, env_name: &str) {
    let mut child = spawn_owner(test, env_name);
    child.kill().expect("SIGKILL the child");
    let _ = child.wait();
}

#[test]
fn a_live_owners_environment_name_is_reported_not_clobbered() {
    if let Ok(name) = std::env::var("E2EKIT_CHILD_KILLME") {
        return child_that_waits_to_be_killed(&name);
    }
    let test = "crash_safety::a_live_owners_environment_name_is_reported_not_clobbered";
    let mut owner = spawn_owner(test, "e2ekit-t-inuse");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let err = rt
        .block_on(Environment::builder().name("e2ekit-t-inuse").build())
        .unwrap_err();
    let still_there = leftovers("e2ekit-t-inuse");
    owner.kill().expect("SIGKILL the owner");
    let _ = owner.wait();
    assert!(matches!(err, Error::EnvironmentInUse { .. }), "{err}");
    assert!(err.to_string().contains("another live process"), "{err}");
    assert_eq!(
        still_there,
        (1, 1),
        "the live owner's environment was left alone"
    );
    // Once the owner is gone the name is free again.
    create_and_close(&rt, "e2ekit-t-inuse");
    assert_eq!(leftovers("e2ekit-t-inuse"), (0, 0));
}

#[test]
fn a_sigkilled_owner_is_swept_by_the_next_environment_of_any_name() {
    if let Ok(name) = std::env::var("E2EKIT_CHILD_KILLME") {
        return child_that_waits_to_be_killed(&name);
    }
    let test = "crash_safety::a_sigkilled_owner_is_swept_by_the_next_environment_of_any_name";
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    for (victim, next) in [
        ("e2ekit-t-killed-a", "e2ekit-t-sweeper"),
        ("e2ekit-t-killed-b", "e2ekit-t-killed-b"),
    ] {
        start_and_sigkill(test, victim);
        // Another test may sweep it first; either way it must be gone after the next build.
        rt.block_on(async {
            let env = Environment::builder()
                .name(next)
                .build()
                .await
                .expect("next environment");
            assert_eq!(
                leftovers(victim).0,
                0,
                "{victim}'s container outlived its killed owner"
            );
            if victim != next {
                assert_eq!(
                    leftovers(victim).1,
                    0,
                    "{victim}'s network outlived its killed owner"
                );
            }
            env.close().await;
        });
        assert_eq!(leftovers(victim), (0, 0));
    }
}

#[test]
fn keep_on_failure_leaves_the_environment_and_prints_how_to_remove_it() {
    if std::env::var_os("E2EKIT_CHILD_KEEP").is_some() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let env = Environment::builder()
                .name("e2ekit-t-kept")
                .build()
                .await
                .expect("env");
            let app = common::demo_runnable(&env, "app", &[])
                .await
                .expect("define");
            start_and_wait_ready(&[&app]).await.expect("start");
            panic!("the scenario failed on purpose");
        });
        return;
    }
    let (passed, out) = common::run_child(
        "crash_safety::keep_on_failure_leaves_the_environment_and_prints_how_to_remove_it",
        &[("E2EKIT_CHILD_KEEP", "1"), ("E2EKIT_KEEP_ON_FAILURE", "1")],
    );
    assert!(!passed, "the child scenario panics on purpose:\n{out}");
    assert!(
        out.contains("environment \"e2ekit-t-kept\" is kept for inspection"),
        "{out}"
    );
    assert!(
        out.contains("app (container e2ekit-t-kept-app) http=127.0.0.1:"),
        "{out}"
    );
    assert_eq!(
        leftovers("e2ekit-t-kept"),
        (1, 1),
        "kept after the owner exited"
    );

    // Sweeps by other environments spare a kept environment.
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    create_and_close(&rt, "e2ekit-t-kept-sweeper");
    assert_eq!(
        leftovers("e2ekit-t-kept"),
        (1, 1),
        "a sweep must not remove a kept environment"
    );

    let command = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("remove it with: "))
        .expect("the removal command is printed");
    let status = std::process::Command::new("sh")
        .args(["-c", command])
        .output()
        .expect("run it");
    assert!(
        status.status.success(),
        "{command}: {}",
        String::from_utf8_lossy(&status.stderr)
    );
    assert_eq!(
        leftovers("e2ekit-t-kept"),
        (0, 0),
        "the printed command removes everything"
    );
}

#[tokio::test]
async fn the_cli_lists_and_removes_environments() -> Result<()> {
    let env = Environment::builder().name("e2ekit-t-cli").build().await?;
    let image = busybox(&env).await?;
    let r = env
        .runnable("r")
        .init(StartOptions::new(image).command(Command::new("sleep").arg("3600")))?;
    r.start().await?;
    let cli = env!("CARGO_BIN_EXE_e2ekit");
    let ls = std::process::Command::new(cli)
        .arg("ls")
        .output()
        .expect("e2ekit ls");
    let text = String::from_utf8_lossy(&ls.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("e2ekit-t-cli "))
        .unwrap_or_else(|| panic!("not listed:\n{text}"));
    let cols: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(&cols[1..4], ["alive", "1", "1"], "{line}");

    let gc = std::process::Command::new(cli)
        .arg("gc")
        .output()
        .expect("e2ekit gc");
    assert!(gc.status.success());
    assert_eq!(
        leftovers("e2ekit-t-cli"),
        (1, 1),
        "gc spares environments whose owner lives"
    );
    let gc = std::process::Command::new(cli)
        .args(["gc", "--env", "e2ekit-t-cli"])
        .output()
        .expect("e2ekit gc --env");
    assert!(
        gc.status.success(),
        "{}",
        String::from_utf8_lossy(&gc.stderr)
    );
    assert_eq!(leftovers("e2ekit-t-cli"), (0, 0));
    let usage = std::process::Command::new(cli)
        .arg("bogus")
        .output()
        .expect("e2ekit bogus");
    assert_eq!(usage.status.code(), Some(2));
    env.close().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_environments_coexist() -> Result<()> {
    let builds = (0..100).map(|i| {
        Environment::builder()
            .name(format!("e2ekit-t-many-{i}"))
            .build()
    });
    let envs = futures_util::future::join_all(builds).await;
    let mut ok = Vec::new();
    for (i, env) in envs.into_iter().enumerate() {
        match env {
            Ok(env) => ok.push(env),
            Err(e) => panic!("environment {i} of 100 failed: {e}"),
        }
    }
    let networks = std::process::Command::new("docker")
        .args(["network", "ls", "-q", "--filter", "label=e2ekit.env"])
        .output()
        .expect("docker network ls");
    assert!(String::from_utf8_lossy(&networks.stdout).lines().count() >= 100);
    futures_util::future::join_all(ok.iter().map(|e| e.close())).await;
    for i in 0..100 {
        assert_eq!(leftovers(&format!("e2ekit-t-many-{i}")), (0, 0));
    }
    Ok(())
}

/// Builds an environment (sweeping what it may) and closes it.
fn create_and_close(rt: &tokio::runtime::Runtime, name: &str) {
    rt.block_on(async {
        let env = Environment::builder()
            .name(name)
            .build()
            .await
            .expect("environment");
        env.close().await;
    });
}
