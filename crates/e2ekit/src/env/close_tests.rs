//! Unit tests on the fake engine: closes the engine interrupts or that race starts, an
//! engine that dies under a wait, and environment names of one process.

use crate::engine::fake::{FakeEngine, Script};
use crate::env::tests::{build_on, eventually, fake_env, unique_name};
use crate::prelude::*;

async fn running_app(fake: &FakeEngine, env: &Environment) -> Runnable {
    fake.script("img:close", Script::new().log("up"));
    let app = env
        .runnable("app")
        .init(StartOptions::new("img:close"))
        .expect("defined");
    app.start().await.expect("started");
    app
}

#[tokio::test]
async fn a_close_the_engine_interrupted_is_finished_by_the_next_close() {
    let fake = FakeEngine::new();
    let env = fake_env(&fake, "fk-close-retry").await;
    let _app = running_app(&fake, &env).await;
    fake.fail_next("remove_environment", "engine went away");
    env.close().await;
    assert!(
        env.is_closed(),
        "closed for new work even though removal failed"
    );
    assert_eq!(
        fake.running().len(),
        1,
        "the interrupted close left the container"
    );
    env.close().await;
    assert!(fake.containers().is_empty(), "the second close removed it");
    assert!(fake.networks().is_empty());
}

#[tokio::test]
async fn leftovers_of_an_interrupted_close_are_swept_by_the_next_environment_of_the_process() {
    let fake = FakeEngine::new();
    let first = fake_env(&fake, "fk-close-sweep-a").await;
    let _app = running_app(&fake, &first).await;
    fake.fail_next("remove_environment", "engine went away");
    first.close().await;
    assert_eq!(fake.containers().len(), 1);
    // Same process, another name: its sweep takes the closed environment's leftovers for
    // what they are, orphans, although their owner label is this (live) process.
    let second = fake_env(&fake, "fk-close-sweep-b").await;
    assert!(
        fake.containers().is_empty(),
        "left: {:?}",
        fake.containers()
    );
    assert_eq!(fake.networks(), [second.name().to_string()]);
    second.close().await;
}

#[tokio::test]
async fn an_open_name_of_this_process_is_reported_not_clobbered_and_free_again_after_close() {
    let fake = FakeEngine::new();
    let name = unique_name("fk-same-name");
    let first = build_on(&fake, &name, true, Vec::new(), None)
        .await
        .expect("first");
    let _app = running_app(&fake, &first).await;
    let err = build_on(&fake, &name, true, Vec::new(), None)
        .await
        .expect_err("the name is open in this process");
    assert!(
        matches!(&err, Error::EnvironmentInUse { env, owner } if *env == name && owner.starts_with("this process")),
        "{err}"
    );
    assert_eq!(
        fake.running().len(),
        1,
        "the first environment is untouched"
    );
    first.close().await;
    let again = build_on(&fake, &name, true, Vec::new(), None)
        .await
        .expect("free again after close");
    again.close().await;
}

#[tokio::test]
async fn close_waits_for_an_in_flight_start_and_removes_its_container() {
    let fake = FakeEngine::new();
    let env = fake_env(&fake, "fk-close-race").await;
    fake.script("img:race", Script::new().log("up"));
    let app = env
        .runnable("app")
        .init(StartOptions::new("img:race"))
        .expect("defined");
    let gate = fake.hold_next("create_and_start");
    let start = tokio::spawn({
        let app = app.clone();
        async move { app.start().await }
    });
    let called = |op: &str| fake.calls().iter().any(|c| c.starts_with(op));
    eventually("the start reaches the engine", || {
        called("create_and_start ")
    })
    .await;
    let close = tokio::spawn({
        let env = env.clone();
        async move { env.close().await }
    });
    // Give the close every chance to run ahead of the start; it must not.
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(
        !close.is_finished(),
        "close returned while a start was creating a container"
    );
    assert!(
        !called("remove_environment "),
        "close removed the environment under an in-flight start"
    );
    gate.notify_one();
    let started = start.await.expect("start task");
    close.await.expect("close task");
    assert!(
        matches!(&started, Err(Error::EnvironmentClosed { .. })),
        "a start that finished into a closed environment says so: {started:?}"
    );
    assert!(
        fake.containers().is_empty(),
        "left: {:?}",
        fake.containers()
    );
    assert!(fake.networks().is_empty(), "left: {:?}", fake.networks());
    let again = app.start().await.expect_err("closed");
    assert!(matches!(again, Error::EnvironmentClosed { .. }), "{again}");
}

#[tokio::test]
async fn an_engine_that_dies_during_wait_ready_is_named_with_the_output_seen_so_far() {
    let fake = FakeEngine::new();
    let env = fake_env(&fake, "fk-engine-dies").await;
    fake.script(
        "img:dies",
        Script::new().log("booting").log("still booting"),
    );
    let app = env
        .runnable("app")
        .init(StartOptions::new("img:dies").readiness(LogProbe::contains("never printed")))
        .expect("defined");
    app.start().await.expect("started");
    let wait = tokio::spawn({
        let app = app.clone();
        async move { app.wait_ready().await }
    });
    eventually("the log pump saw the output", || {
        app.recent_output().len() == 2
    })
    .await;
    fake.die("connection refused");
    let err = wait.await.expect("wait task").expect_err("the engine died");
    let text = err.to_string();
    assert!(
        matches!(&err, Error::EngineLost { runnable, .. } if runnable == "app"),
        "{text}"
    );
    assert!(
        text.contains("the engine failed while waiting for readiness of runnable \"app\""),
        "{text}"
    );
    assert!(!text.contains("exited with code"), "not an exit: {text}");
    assert_eq!(
        err.log_tail().map(<[String]>::to_vec),
        Some(vec!["booting".to_string(), "still booting".to_string()]),
        "the output the container printed before the engine died"
    );
    assert!(
        err.report().contains("connection refused"),
        "the cause is kept: {}",
        err.report()
    );
    assert!(!app.is_running(), "unknown while the engine is gone");
    fake.revive();
    // The engine is back and the container never stopped: it is watched again.
    eventually("the runnable counts as running again", || app.is_running()).await;
    fake.exit(app.container_name(), 3);
    eventually("a later crash is still noticed", || !app.is_running()).await;
    env.close().await;
}
