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
