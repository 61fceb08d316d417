//! Metric wait latency: how soon `Instrumented::wait_sum_metrics` notices a new value
//! (DESIGN.md "Performance targets": a metric wait notices a value within 50 ms of it being
//! exposed), against a hand-written floor.
//!
//! One demo-app runs in the environment `e2ekit-bench-metrics`. Each iteration picks a new
//! value `v` and a pseudo-random delay of 20–120 ms, then measures two waiters, in alternating
//! order, each alone:
//!
//! - **e2ekit**: `app.wait_sum_metrics(equals(v), ["demo_value"])` with default options,
//!   spawned before the delay;
//! - **baseline**: a tight loop, `GET /metrics` every 1 ms and a substring check for
//!   `demo_value <v>`, with its own HTTP client (the best a hand-written harness could do).
//!
//! After the delay the bench sends `GET /set?value=<v>`; `t_set` is the instant its response
//! arrived, `t_seen` the instant the waiter returned, and the latency is `t_seen - t_set`. The
//! value is exposed somewhere between sending `/set` and `t_set`, so the latency can be
//! slightly negative and understates the true lag by at most one `/set` round trip (also
//! reported).
//!
//! Run: `cargo bench -p e2ekit --bench metrics_wait` (iterations: `E2EKIT_BENCH_ITERS`,
//! default 50). The environment is closed at the end, after errors and panics, and on
//! Ctrl-C; the bench then checks (through `e2ekit::sweep`) that none of its containers and
//! networks are left.

use std::time::{Duration, Instant};

use e2ekit::prelude::*;

#[allow(dead_code)] // uses a subset
mod common;
use common::{environments, leftovers, median, percentile, sorted, BoxError, Res};

const ENV_NAME: &str = "e2ekit-bench-metrics";
const DEFAULT_ITERS: usize = 50;
const METRIC: &str = "demo_value";
/// DESIGN.md: median latency of a metric wait, with default options.
const TARGET_MEDIAN_MS: f64 = 50.0;
/// Pause of the baseline loop between two scrapes.
const BASELINE_POLL: Duration = Duration::from_millis(1);
/// Give up on one waiter after this long (the default metric wait is 30 s too).
const DEADLINE: Duration = Duration::from_secs(30);
/// Per-request timeout of the bench's own HTTP calls.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Delay between starting a waiter and setting the value: 20..=120 ms.
const DELAY_MIN_MS: u64 = 20;
const DELAY_SPAN_MS: u64 = 101;
/// Stop after this many failed measurements in a row.
const MAX_CONSECUTIVE_FAILURES: usize = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    E2ekit,
    Baseline,
}

impl Method {
    fn label(self) -> &'static str {
        match self {
            Method::E2ekit => "e2ekit `wait_sum_metrics` (default options)",
            Method::Baseline => "baseline: GET /metrics every 1 ms + substring",
        }
    }
}

/// One measurement.
#[derive(Debug, Clone, Copy)]
struct Sample {
    /// `t_seen - t_set`, in ms (negative if seen before the `/set` response arrived).
    latency_ms: f64,
    /// Round trip of the `/set` request, in ms.
    set_rtt_ms: f64,
}

#[derive(Debug, Default)]
struct Results {
    e2ekit: Vec<Sample>,
    baseline: Vec<Sample>,
    failures: Vec<String>,
}

/// SplitMix64: reproducible "random-ish" delays without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn delay(&mut self) -> Duration {
        Duration::from_millis(DELAY_MIN_MS + self.next() % DELAY_SPAN_MS)
    }
}

/// Signed `later - earlier` in ms.
fn signed_ms(later: Instant, earlier: Instant) -> f64 {
    if later >= earlier {
        (later - earlier).as_secs_f64() * 1e3
    } else {
        -(earlier - later).as_secs_f64() * 1e3
    }
}

/// Sets the gauge through `/set`; returns (request sent, response arrived).
async fn set_value(client: &reqwest::Client, base: &str, v: f64) -> Res<(Instant, Instant)> {
    let t_send = Instant::now();
    let response = client
        .get(format!("{base}/set?value={v}"))
        .timeout(REQUEST_TIMEOUT)
        .send()
        .await?;
    let status = response.status();
    let body = response.text().await?;
    let t_set = Instant::now();
    if !status.is_success() {
        return Err(format!("/set?value={v} answered {status}: {body}").into());
    }
    Ok((t_send, t_set))
}

/// The hand-written floor: scrape every `BASELINE_POLL` until the exposition shows `v`.
async fn baseline_wait(client: reqwest::Client, url: String, v: f64) -> Res<Instant> {
    // demo-app formats values with Rust's `f64` Display, like this.
    let needle = format!("\n{METRIC} {v}\n");
    let started = Instant::now();
    loop {
        let body = client
            .get(&url)
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await?
            .text()
            .await?;
        if body.contains(&needle) {
            return Ok(Instant::now());
        }
        if started.elapsed() >= DEADLINE {
            return Err(format!("baseline did not see {METRIC} == {v} within {DEADLINE:?}").into());
        }
        tokio::time::sleep(BASELINE_POLL).await;
    }
}

/// Aborts a spawned waiter when the measurement gives up early.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

struct Bench {
    app: Instrumented,
    base: String,
    /// For `/set`.
    setter: reqwest::Client,
    /// For the baseline's scrapes (its own connection, like a hand-written harness).
    scraper: reqwest::Client,
}

impl Bench {
    async fn measure(&self, method: Method, v: f64, delay: Duration) -> Res<Sample> {
        let waiter = match method {
            Method::E2ekit => {
                let app = self.app.clone();
                tokio::spawn(async move {
                    app.wait_sum_metrics(equals(v), [METRIC])
                        .await
                        .map(|()| Instant::now())
                        .map_err(BoxError::from)
                })
            }
            Method::Baseline => tokio::spawn(baseline_wait(
                self.scraper.clone(),
                format!("{}/metrics", self.base),
                v,
            )),
        };
        let mut waiter = AbortOnDrop(waiter);
        tokio::time::sleep(delay).await;
        let (t_send, t_set) = set_value(&self.setter, &self.base, v).await?;
        let t_seen = (&mut waiter.0).await??;
        Ok(Sample {
            latency_ms: signed_ms(t_seen, t_set),
            set_rtt_ms: signed_ms(t_set, t_send),
        })
    }
}

async fn start_app(env: &Environment) -> Res<Instrumented> {
    let bin = cargo_bin("demo-app")?;
    let image = HostImage::new("e2ekit-bench/demo-app")
        .binary(bin)
        .build(env)
        .await?;
    let runnable = env.runnable("app").with_ports([("http", 8080)]).init(
        StartOptions::new(image)
            .command(Command::new("/bin/demo-app").args(["--listen", ":8080"]))
            .readiness(HttpProbe::new("http", "/ready")),
    )?;
    let app = Instrumented::new(runnable, "http")?;
    start_and_wait_ready(&[&app]).await?;
    Ok(app)
}

async fn run(env: Environment, iters: usize) -> Res<Results> {
    let app = start_app(&env).await?;
    let base = format!("http://{}", app.endpoint("http")?);
    let client = || reqwest::Client::builder().pool_max_idle_per_host(1).build();
    let bench = Bench {
        app,
        base,
        setter: client()?,
        scraper: client()?,
    };
    eprintln!(
        "bench: demo-app ready at {}; {iters} iterations",
        bench.base
    );

    let mut rng = Rng(0x00E2_E0C1_7BE2_C4A1);
    // Distinct values, never the initial 0.
    let mut counter = 0u32;
    let mut next_value = || {
        counter += 1;
        1.0 + f64::from(counter) * 0.25
    };

    // Warm-up (not recorded): connections of all three clients, code paths, page cache.
    for method in [Method::E2ekit, Method::Baseline] {
        bench
            .measure(method, next_value(), Duration::from_millis(30))
            .await?;
    }

    let mut results = Results::default();
    let mut consecutive_failures = 0;
    for i in 0..iters {
        let delay = rng.delay();
        // Alternate the order so neither method always runs right after the other.
        let order = if i % 2 == 0 {
            [Method::E2ekit, Method::Baseline]
        } else {
            [Method::Baseline, Method::E2ekit]
        };
        for method in order {
            let v = next_value();
            match bench.measure(method, v, delay).await {
                Ok(sample) => {
                    consecutive_failures = 0;
                    match method {
                        Method::E2ekit => results.e2ekit.push(sample),
                        Method::Baseline => results.baseline.push(sample),
                    }
                }
                Err(e) => {
                    let msg = format!("iteration {i}, {method:?}, value {v}: {}", chain(&*e));
                    eprintln!("bench: {msg}");
                    results.failures.push(msg);
                    consecutive_failures += 1;
                    if consecutive_failures >= MAX_CONSECUTIVE_FAILURES {
                        return Err(format!(
                            "{consecutive_failures} failed measurements in a row; giving up"
                        )
                        .into());
                    }
                }
            }
        }
    }
    Ok(results)
}

/// An error with all its causes.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn report(results: &Results, iters: usize) -> bool {
    println!();
    println!(
        "Metric wait latency: t_seen - t_set (ms), {iters} iterations, set 20-120 ms after the waiter started"
    );
    println!();
    println!("| waiter | n | min | median | p90 | max | target (median) |");
    println!("|---|---:|---:|---:|---:|---:|---|");
    let mut met = true;
    for (method, samples) in [
        (Method::E2ekit, &results.e2ekit),
        (Method::Baseline, &results.baseline),
    ] {
        let lat = sorted(samples.iter().map(|s| s.latency_ms));
        let med = median(&lat);
        let target = match method {
            Method::E2ekit => {
                let ok = med <= TARGET_MEDIAN_MS;
                met &= ok;
                format!(
                    "≤ {TARGET_MEDIAN_MS:.0} ms: {}",
                    if ok { "met" } else { "MISSED" }
                )
            }
            Method::Baseline => "(floor)".to_string(),
        };
        println!(
            "| {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {target} |",
            method.label(),
            lat.len(),
            lat.first().copied().unwrap_or(f64::NAN),
            med,
            percentile(&lat, 90.0),
            lat.last().copied().unwrap_or(f64::NAN),
        );
    }
    let rtt = sorted(
        results
            .e2ekit
            .iter()
            .chain(&results.baseline)
            .map(|s| s.set_rtt_ms),
    );
    println!();
    println!(
        "`/set` round trip (upper bound of how much t_set trails the exposure): median {:.2} ms, max {:.2} ms",
        median(&rtt),
        rtt.last().copied().unwrap_or(f64::NAN)
    );
    if !results.failures.is_empty() {
        println!("failed measurements: {}", results.failures.len());
    }
    met
}

/// Checks that the environment left nothing behind; false if it did.
async fn check_leftovers() -> bool {
    let clean = match leftovers(ENV_NAME).await {
        Ok((0, 0)) => true,
        Ok((containers, networks)) => {
            eprintln!(
                "bench: LEFTOVER of {ENV_NAME}: {containers} container(s), {networks} network(s)"
            );
            false
        }
        Err(e) => {
            eprintln!("bench: cannot check leftovers: {e}");
            false
        }
    };
    // Any e2ekit environment (others may be running tests on this engine at the same time).
    match environments(|_| true).await {
        Ok(envs) if envs.is_empty() => {
            println!("leftovers: none (no e2ekit environment on the engine)")
        }
        Ok(envs) if clean => println!(
            "leftovers: none of {ENV_NAME}; {} other e2ekit environment(s) exist (not ours): {}",
            envs.len(),
            envs.iter()
                .map(|e| e.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Ok(_) => {}
        Err(e) => eprintln!("bench: cannot list e2ekit environments: {e}"),
    }
    clean
}

fn main() {
    let iters = match std::env::var("E2EKIT_BENCH_ITERS") {
        Ok(s) => match s.trim().parse::<usize>() {
            Ok(n) if n > 0 => n,
            _ => {
                eprintln!("bench: E2EKIT_BENCH_ITERS must be a positive integer, got {s:?}");
                std::process::exit(2);
            }
        },
        Err(_) => DEFAULT_ITERS,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bench: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    let code = runtime.block_on(async {
        let env = match Environment::builder().name(ENV_NAME).build().await {
            Ok(env) => env,
            Err(e) => {
                eprintln!("bench: cannot create environment {ENV_NAME}: {e}");
                return 1;
            }
        };
        // Measure in a task, so that a panic comes back as an error and cleanup still runs.
        let task = tokio::spawn(run(env.clone(), iters));
        let abort = task.abort_handle();
        let outcome: Res<Results> = tokio::select! {
            r = task => match r {
                Ok(r) => r,
                Err(e) => Err(format!("the measurement task failed: {e}").into()),
            },
            _ = tokio::signal::ctrl_c() => {
                abort.abort();
                Err("interrupted".into())
            }
        };
        env.close().await;
        drop(env);
        let ok = match &outcome {
            Ok(results) => {
                if !report(results, iters) {
                    println!("target missed (see table)");
                }
                results.failures.is_empty()
            }
            Err(e) => {
                eprintln!("bench: {}", chain(&**e));
                false
            }
        };
        let clean = check_leftovers().await;
        if ok && clean {
            0
        } else {
            1
        }
    });
    drop(runtime);
    std::process::exit(code);
}
