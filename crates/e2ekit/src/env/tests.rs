//! Unit tests of environments and runnables on the in-memory engine: no Docker needed.

use std::sync::Arc;
use std::time::Duration;

use super::EnvironmentBuilder;
use crate::engine::fake::{FakeEngine, Script};
use crate::prelude::*;

/// An environment named `name` on `fake`.
pub(crate) async fn fake_env(fake: &FakeEngine, name: &str) -> Environment {
    EnvironmentBuilder::build_on(
        Arc::new(fake.clone()),
        name.to_string(),
        true,
        Vec::new(),
        None,
        false,
    )
    .await
    .expect("an environment on the fake engine")
}

#[tokio::test]
async fn start_creates_the_container_and_close_removes_everything() {
    let fake = FakeEngine::new();
    fake.script("img:1", Script::new().log("hello"));
    let env = fake_env(&fake, "fk-basic").await;
    let app = env
        .runnable("app")
        .init(StartOptions::new("img:1"))
        .expect("defined");
    app.start().await.expect("started");
    assert!(app.is_running());
    assert_eq!(fake.running(), ["fk-basic-app"]);
    assert_eq!(fake.networks(), ["fk-basic"]);
    env.close().await;
    assert!(fake.containers().is_empty());
    assert!(fake.networks().is_empty());
    assert!(!env.shared_dir().exists());
}

#[tokio::test]
async fn a_container_exiting_during_start_fails_with_its_code_and_output() {
    let fake = FakeEngine::new();
    fake.script(
        "crashy:1",
        Script::new()
            .log("starting")
            .log("bad config")
            .exit_at_start(3),
    );
    let env = fake_env(&fake, "fk-crash-start").await;
    let app = env
        .runnable("crashy")
        .init(StartOptions::new("crashy:1"))
        .expect("defined");
    let err = app.start().await.expect_err("exits during start");
    assert_eq!(err.exit_code(), Some(3));
    assert_eq!(err.runnable(), Some("crashy"));
    assert_eq!(
        err.log_tail(),
        Some(&["starting".to_string(), "bad config".to_string()][..])
    );
    env.close().await;
}

#[tokio::test]
async fn wait_ready_fails_fast_when_the_container_exits() {
    let fake = FakeEngine::new();
    fake.script(
        "late-crash:1",
        Script::new()
            .log("up")
            .exit_after(Duration::from_millis(50), 7),
    );
    let env = fake_env(&fake, "fk-crash-ready").await;
    let app = env
        .runnable("app")
        .init(
            StartOptions::new("late-crash:1")
                .readiness(LogProbe::contains("never printed"))
                .wait_policy(WaitPolicy::timeout(Duration::from_secs(30))),
        )
        .expect("defined");
    app.start().await.expect("started");
    // The deadline is 30 s away: only the exit can end this wait early, as ContainerExited.
    let err = app.wait_ready().await.expect_err("exits while waiting");
    assert!(matches!(err, Error::ContainerExited { .. }), "{err}");
    assert_eq!(err.exit_code(), Some(7));
    assert!(err.to_string().contains("waiting for readiness"), "{err}");
    env.close().await;
}
