//! Faults while work is in flight: a close racing starts on the main engine; and, on a
//! private engine this test starts in its own network namespace (never the main one), an
//! engine killed during a readiness wait and an engine frozen under a streaming exec.

use std::time::Duration;

use e2ekit::prelude::*;

use crate::common;

/// Runnables started at once in each round of the race.
const RACERS: usize = 6;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_racing_starts_leaves_nothing_and_the_starts_say_why_they_failed() -> Result<()> {
    // From "before the first start reached the engine" to "after most have finished".
    for delay_ms in [0u64, 10, 40, 120, 300, 700] {
        let name = format!("e2ekit-close-race-{delay_ms}");
        let env = Environment::builder().name(&name).build().await?;
        let image = common::busybox(&env).await?;
        let mut racers = Vec::new();
        for i in 0..RACERS {
            racers.push(
                env.runnable(format!("r{i}"))
                    .init(StartOptions::new(&image).command(Command::new("sleep").arg("3600")))?,
            );
        }
        let starts: Vec<_> = racers
            .iter()
            .cloned()
            .map(|r| tokio::spawn(async move { r.start().await }))
            .collect();
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        env.close().await;
        // Right after close returns: nothing of the environment is on the engine.
        assert_eq!(
            common::leftovers(&name),
            (0, 0),
            "close at {delay_ms} ms left containers or the network behind"
        );
        let mut closed = 0;
        for start in starts {
            match start.await.expect("start task") {
                Ok(()) => {}
                Err(Error::EnvironmentClosed { .. }) => closed += 1,
                Err(other) => panic!(
                    "a start racing close at {delay_ms} ms failed with something other than \
                     EnvironmentClosed: {}",
                    other.report()
                ),
            }
        }
        // And still nothing after every start has returned.
        assert_eq!(
            common::leftovers(&name),
            (0, 0),
            "after the starts returned"
        );
        println!("close at {delay_ms} ms: {closed}/{RACERS} starts refused or undone");
        for r in &racers {
            assert!(!r.is_running(), "{} reports running after close", r.name());
        }
    }
    Ok(())
}

/// A private engine for one test; `E2EKIT_TEST_ENGINE_*` nothing: it needs root and
/// `dockerd`, and says so loudly when they are missing.
fn private_engine() -> e2ekit_test_engines::PrivateEngine {
    e2ekit_test_engines::PrivateEngine::start().unwrap_or_else(|e| {
        panic!("the engine-fault tests need a private dockerd (root, dockerd, nsenter, ip, iptables): {e}")
    })
}

/// Waits until `path` exists: the container got that far (a hang guard, not a timing check).
async fn wait_for_file(path: &std::path::Path) {
    for _ in 0..30_000 {
        if path.exists() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("{} never appeared", path.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_killed_during_wait_ready_is_reported_as_an_engine_failure_with_the_output(
) -> Result<()> {
    let mut engine = private_engine();
    let host = engine.docker_host();
    let env = Environment::builder()
        .name("e2ekit-fault-engine-dies")
        .engine(Engine::docker_host(&host))
        .build()
        .await?;
    let image = common::busybox(&env).await?;
    let app = env.runnable("app").future()?;
    let printed = app.dir().join("printed");
    let app = app.init(
        StartOptions::new(&image)
            .command(Command::new("sh").args([
                "-c",
                &format!(
                    "echo booting; echo still booting; touch {}; exec sleep 3600",
                    printed.display()
                ),
            ]))
            .readiness(LogProbe::contains("never printed"))
            .wait_policy(WaitPolicy::timeout(Duration::from_secs(120))),
    )?;
    app.start().await?;
    let waiting = tokio::spawn({
        let app = app.clone();
        async move { app.wait_ready().await }
    });
    wait_for_file(&printed).await;
    // The lines were printed before the file appeared; give the log stream a moment to
    // deliver them to the test process.
    tokio::time::sleep(Duration::from_millis(500)).await;
    tokio::task::block_in_place(|| engine.kill()).expect("killing the private engine");

    let err = tokio::time::timeout(Duration::from_secs(120), waiting)
        .await
        .expect("wait_ready must end when the engine dies, not hang")
        .expect("wait task")
        .expect_err("the engine died under the wait");
    let text = err.to_string();
    println!("{}", err.report());
    assert!(
        matches!(&err, Error::EngineLost { runnable, .. } if runnable == "app"),
        "{text}"
    );
    assert!(
        text.contains("the engine failed while waiting for readiness of runnable \"app\""),
        "{text}"
    );
    assert!(!text.contains("exited with code"), "not an exit: {text}");
    let tail = err.log_tail().unwrap_or_default().to_vec();
    assert!(
        tail.iter().any(|l| l == "booting") && tail.iter().any(|l| l == "still booting"),
        "the output the container printed before the engine died: {tail:?}"
    );

    // The engine comes back; close removes what the environment left there.
    tokio::task::block_in_place(|| engine.restart()).expect("restarting the private engine");
    env.close().await;
    assert_eq!(
        common::leftovers_on(Some(&host), "e2ekit-fault-engine-dies"),
        (0, 0)
    );
    tokio::task::block_in_place(|| engine.stop()).expect("tearing the private engine down");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exec_streaming_when_the_engine_freezes_fails_instead_of_hanging() -> Result<()> {
    let mut engine = private_engine();
    let host = engine.docker_host();
    let env = Environment::builder()
        .name("e2ekit-fault-engine-freezes")
        .engine(Engine::docker_host(&host))
        .build()
        .await?;
    let image = common::busybox(&env).await?;
    let app = env.runnable("app").future()?;
    let streaming = app.dir().join("streaming");
    let app = app.init(StartOptions::new(&image).command(Command::new("sleep").arg("3600")))?;
    app.start().await?;
    let exec = tokio::spawn({
        let app = app.clone();
        let script = format!(
            "echo started; touch {}; exec sleep 3600",
            streaming.display()
        );
        async move { app.exec(Command::new("sh").args(["-c", &script])).await }
    });
    wait_for_file(&streaming).await;
    tokio::task::block_in_place(|| engine.freeze()).expect("freezing the private engine");

    // Before the liveness check this waited for ever; the hang guard is far above the 15 s
    // of silence after which the engine counts as gone.
    let outcome = tokio::time::timeout(Duration::from_secs(120), exec).await;
    tokio::task::block_in_place(|| engine.thaw()).expect("thawing the private engine");
    let err = outcome
        .expect("the exec must fail when the engine freezes, not hang")
        .expect("exec task")
        .expect_err("the engine froze under the exec");
    let report = err.report();
    println!("{report}");
    assert!(report.contains("stopped answering"), "{report}");
    assert!(
        report.contains("runnable app"),
        "names the runnable: {report}"
    );

    // Thawed, the engine answers again and the container, which never stopped, counts as
    // running again (hang guard only).
    for _ in 0..30 {
        if app.is_running() {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert!(
        app.is_running(),
        "the container runs again once the engine answers"
    );
    // A long command on a live engine is not capped by the same check.
    let out = app
        .exec(Command::new("sh").args(["-c", "sleep 20; echo done"]))
        .await?;
    assert_eq!(out.stdout.trim(), "done");

    env.close().await;
    assert_eq!(
        common::leftovers_on(Some(&host), "e2ekit-fault-engine-freezes"),
        (0, 0)
    );
    tokio::task::block_in_place(|| engine.stop()).expect("tearing the private engine down");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_the_dead_engine_interrupted_is_finished_once_the_engine_is_back() -> Result<()> {
    let mut engine = private_engine();
    let host = engine.docker_host();
    let name = "e2ekit-fault-close-interrupted";
    let env = Environment::builder()
        .name(name)
        .engine(Engine::docker_host(&host))
        .build()
        .await?;
    let image = common::busybox(&env).await?;
    let app = env
        .runnable("app")
        .init(StartOptions::new(&image).command(Command::new("sleep").arg("3600")))?;
    app.start().await?;
    let shared = env.shared_dir().to_path_buf();

    tokio::task::block_in_place(|| engine.kill()).expect("killing the private engine");
    // The engine is gone: close cannot remove anything there, but the environment is closed
    // for new work at once.
    env.close().await;
    assert!(env.is_closed());
    let refused = app.start().await.expect_err("closed");
    assert!(
        matches!(refused, Error::EnvironmentClosed { .. }),
        "{refused}"
    );

    tokio::task::block_in_place(|| engine.restart()).expect("restarting the private engine");
    // A second close finishes the job.
    env.close().await;
    assert_eq!(common::leftovers_on(Some(&host), name), (0, 0));
    assert!(!shared.exists(), "{} is left", shared.display());
    tokio::task::block_in_place(|| engine.stop()).expect("tearing the private engine down");
    Ok(())
}
