//! The soak's fault cycles: closes racing starts on the main engine, and an engine killed
//! mid-bring-up on a private engine (a `dockerd` in its own network namespace, from
//! `e2ekit-test-engines`; never the main engine). Each cycle must leave nothing behind.
//!
//! - **race** (odd cycles): three demo-app runnables are started at once and the environment
//!   is closed after 0–900 ms (varied per cycle, from before the first start reaches the engine to after most are ready). Right after `close()` returns, and again
//!   once every start has returned, the engine must hold nothing of the environment; each
//!   start must succeed or fail with `EnvironmentClosed`.
//! - **engine kill** (even cycles): on the private engine, the same bring-up is started and
//!   `dockerd` is SIGKILLed after 0–900 ms; the starts and waits must fail (or have
//!   succeeded) without hanging; the engine is restarted and `close()` must then leave
//!   nothing on it.

use std::path::Path;
use std::time::{Duration, Instant};

use e2ekit::prelude::*;
use e2ekit_test_engines::PrivateEngine;

use super::common::{leftovers, leftovers_on, ms, Res};
use super::services;

const RACE_ENV: &str = "e2ekit-soak-race";
const KILL_ENV: &str = "e2ekit-soak-engine-kill";
/// A fault cycle taking longer than this is a hang.
const FAULT_CYCLE_TIMEOUT: Duration = Duration::from_secs(180);

/// What the fault cycles found.
#[derive(Debug, Default)]
pub struct FaultReport {
    pub race_cycles: usize,
    pub kill_cycles: usize,
    /// Cycles with containers or networks left after close (or after the starts returned).
    pub leaky: Vec<String>,
    /// Cycles where something failed in a way the contract does not allow.
    pub failed: Vec<String>,
    /// Starts refused or undone by a racing close, of all racing starts.
    pub starts_closed: usize,
    pub starts_raced: usize,
    /// Starts or waits that failed because the engine was killed, of all in kill cycles.
    pub engine_failures: usize,
    pub kill_time: Vec<Duration>,
}

impl FaultReport {
    pub fn clean(&self) -> bool {
        self.leaky.is_empty() && self.failed.is_empty()
    }

    pub fn print(&self) -> String {
        let mut out = format!(
            "fault cycles: {} close-racing-start, {} engine-kill; leaks: {}; failures: {}\n",
            self.race_cycles,
            self.kill_cycles,
            self.leaky.len(),
            self.failed.len()
        );
        out.push_str(&format!(
            "  racing starts refused or undone by close: {}/{}; engine-kill starts/waits that failed: {}\n",
            self.starts_closed, self.starts_raced, self.engine_failures
        ));
        if !self.kill_time.is_empty() {
            let mut v: Vec<f64> = self.kill_time.iter().map(|d| ms(*d)).collect();
            v.sort_by(f64::total_cmp);
            out.push_str(&format!(
                "  engine-kill cycle (bring-up, kill, restart, close): p50 {:.0} ms, max {:.0} ms\n",
                v[v.len() / 2],
                v[v.len() - 1]
            ));
        }
        for line in self.leaky.iter().chain(&self.failed).take(20) {
            out.push_str(&format!("  {line}\n"));
        }
        out
    }
}

/// Runs `cycles` fault cycles, alternating race and engine kill.
pub async fn run(cycles: usize, bin: &Path) -> Res<FaultReport> {
    let mut report = FaultReport::default();
    if cycles == 0 {
        return Ok(report);
    }
    let mut engine = tokio::task::block_in_place(PrivateEngine::start)
        .map_err(|e| format!("the engine-kill cycles need a private dockerd (root): {e}"))?;
    let host = engine.docker_host();
    for index in 1..=cycles {
        let delay = Duration::from_millis((index as u64 * 137) % 900);
        let outcome = if index % 2 == 1 {
            report.race_cycles += 1;
            tokio::time::timeout(FAULT_CYCLE_TIMEOUT, race(index, delay, bin, &mut report)).await
        } else {
            report.kill_cycles += 1;
            let t = Instant::now();
            let r = tokio::time::timeout(
                FAULT_CYCLE_TIMEOUT,
                engine_kill(index, delay, bin, &mut engine, &mut report),
            )
            .await;
            report.kill_time.push(t.elapsed());
            r
        };
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(e)) => report.failed.push(format!("fault cycle {index}: {e}")),
            Err(_) => report.failed.push(format!(
                "fault cycle {index}: hang (over {FAULT_CYCLE_TIMEOUT:?})"
            )),
        }
        eprintln!(
            "soak: fault cycle {index}/{cycles} ({}) done",
            if index % 2 == 1 {
                "race"
            } else {
                "engine kill"
            }
        );
    }
    let (c, n) = leftovers_on(Some(&host), KILL_ENV).await?;
    if c + n > 0 {
        report.leaky.push(format!(
            "private engine at the end: {c} containers, {n} networks"
        ));
    }
    tokio::task::block_in_place(|| engine.stop())
        .map_err(|e| format!("tearing the private engine down: {e}"))?;
    Ok(report)
}

async fn race(index: usize, delay: Duration, bin: &Path, report: &mut FaultReport) -> Res<()> {
    let env = Environment::builder().name(RACE_ENV).build().await?;
    let image = HostImage::new("e2ekit-soak/demo-app")
        .binary(bin)
        .build(&env)
        .await?;
    let apps = services(&env, &image)?;
    let starts: Vec<_> = apps
        .iter()
        .cloned()
        .map(|a| tokio::spawn(async move { a.start().await }))
        .collect();
    tokio::time::sleep(delay).await;
    env.close().await;
    let after_close = leftovers(RACE_ENV).await?;
    for start in starts {
        report.starts_raced += 1;
        match start.await? {
            Ok(()) => {}
            Err(Error::EnvironmentClosed { .. }) => report.starts_closed += 1,
            Err(e) => report.failed.push(format!(
                "race cycle {index} ({} ms): a start failed with {}",
                delay.as_millis(),
                e.report()
            )),
        }
    }
    let after_starts = leftovers(RACE_ENV).await?;
    if after_close != (0, 0) || after_starts != (0, 0) {
        report.leaky.push(format!(
            "race cycle {index} ({} ms): after close {after_close:?}, after the starts {after_starts:?} (containers, networks)",
            delay.as_millis()
        ));
    }
    Ok(())
}

async fn engine_kill(
    index: usize,
    delay: Duration,
    bin: &Path,
    engine: &mut PrivateEngine,
    report: &mut FaultReport,
) -> Res<()> {
    let host = engine.docker_host();
    let env = Environment::builder()
        .name(KILL_ENV)
        .engine(Engine::docker_host(&host))
        .build()
        .await?;
    let image = HostImage::new("e2ekit-soak/demo-app")
        .binary(bin)
        .build(&env)
        .await?;
    let apps = services(&env, &image)?;
    let bring_up: Vec<_> = apps
        .iter()
        .cloned()
        .map(|a| {
            tokio::spawn(async move {
                a.start().await?;
                a.wait_ready().await
            })
        })
        .collect();
    tokio::time::sleep(delay).await;
    tokio::task::block_in_place(|| engine.kill())?;
    for b in bring_up {
        if b.await?.is_err() {
            report.engine_failures += 1;
        }
    }
    tokio::task::block_in_place(|| engine.restart())?;
    env.close().await;
    let left = leftovers_on(Some(&host), KILL_ENV).await?;
    if left != (0, 0) {
        report.leaky.push(format!(
            "engine-kill cycle {index} ({} ms): after restart and close {left:?} (containers, networks)",
            delay.as_millis()
        ));
    }
    Ok(())
}
