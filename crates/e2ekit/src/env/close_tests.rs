//! Unit tests on the fake engine: closes the engine interrupts, and environment names of one
//! process.

use crate::engine::fake::{FakeEngine, Script};
use crate::env::tests::{build_on, fake_env, unique_name};
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
