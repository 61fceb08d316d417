//! Metric waits, from both sides: how soon a wait notices a new value (DESIGN.md
//! "Performance targets": within 50 ms, median), and how often it scrapes the target while
//! it waits (issue 14: a long wait averages at most 10 scrapes a second, so the observer does
//! not disturb what it measures).
//!
//! One demo-app runs in the environment `e2ekit-bench-metrics`.
//!
//! **Latency.** Each iteration picks a new value `v` and a pseudo-random delay of 20–1000 ms
//! (a change in the first second of a wait), then measures three waiters, in rotating order,
//! each alone:
//!
//! - **e2ekit, default**: `app.wait_sum_metrics(equals(v), ["demo_value"])`, spawned before
//!   the delay;
//! - **e2ekit, deadline only**: `wait_sum_metrics_with(.., MetricsOptions::new()
//!   .wait(WaitPolicy::timeout(30 s)))`, the policy a user writes to change only the deadline;
//! - **baseline**: a tight loop, `GET /metrics` every 1 ms and a substring check for
//!   `demo_value <v>`, with its own HTTP client (the best a hand-written harness could do).
//!
//! After the delay the bench sends `GET /set?value=<v>`; `t_set` is the instant its response
//! arrived, `t_seen` the instant the waiter returned, and the latency is `t_seen - t_set`. The
//! value is exposed somewhere between sending `/set` and `t_set`, so the latency can be
//! slightly negative and understates the true lag by at most one `/set` round trip (also
//! reported).
//!
//! **Scrape rate.** For each of the two e2ekit policies, a wait that never succeeds
//! (`demo_value == -1`) runs for a window (default 15 s) and is then dropped. demo-app counts
//! the requests to `/metrics` it served (`demo_metrics_scrapes_total`); the bench reads that
//! counter when the wait starts, 1 s and 5 s into it and at the end (and subtracts its own
//! reads), so the report shows the scrapes of the first second, the rate later on and the
//! average over the whole window.
//!
//! Run: `cargo bench -p e2ekit --bench metrics_wait` (iterations: `E2EKIT_BENCH_ITERS`,
//! default 50; rate window in seconds: `E2EKIT_BENCH_RATE_SECS`, default 15, at most 25). The
//! environment is closed at the end, after errors and panics, and on Ctrl-C; the bench then
//! checks (through `e2ekit::sweep`) that none of its containers and networks are left.

use std::time::{Duration, Instant};

use e2ekit::prelude::*;

#[allow(dead_code)] // uses a subset
mod common;
use common::{environments, leftovers, median, percentile, sorted, BoxError, Res};

const ENV_NAME: &str = "e2ekit-bench-metrics";
const DEFAULT_ITERS: usize = 50;
const METRIC: &str = "demo_value";
/// demo-app's count of requests to `/metrics`.
const SCRAPES: &str = "demo_metrics_scrapes_total";
/// DESIGN.md / issue 14: median latency of a metric wait, for a change in its first second.
const TARGET_MEDIAN_MS: f64 = 50.0;
/// Issue 14: scrapes per second a long metric wait may average.
const TARGET_RATE: f64 = 10.0;
/// Default length of one scrape-rate window; at most `MAX_RATE_SECS`, below the default
/// wait's 30 s deadline, so the wait is still running when the window ends.
const DEFAULT_RATE_SECS: u64 = 15;
const MAX_RATE_SECS: u64 = 25;
/// Instants into a rate window at which the scrape counter is read (besides start and end).
const CHECKPOINTS: [Duration; 2] = [Duration::from_secs(1), Duration::from_secs(5)];
/// Pause of the baseline loop between two scrapes.
const BASELINE_POLL: Duration = Duration::from_millis(1);
/// Give up on one waiter after this long (the default metric wait is 30 s too).
const DEADLINE: Duration = Duration::from_secs(30);
/// Per-request timeout of the bench's own HTTP calls.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Delay between starting a waiter and setting the value: 20..=1000 ms, a change within the
/// first second of the wait.
const DELAY_MIN_MS: u64 = 20;
const DELAY_SPAN_MS: u64 = 981;
/// Latencies are also reported for changes in these ranges of the delay (ms), since a wait
/// that backs off notices late changes later than early ones.
const DELAY_BANDS: [(u64, u64); 3] = [(20, 120), (121, 500), (501, 1000)];
/// Stop after this many failed measurements in a row.
const MAX_CONSECUTIVE_FAILURES: usize = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    E2ekit,
    E2ekitDeadline,
    Baseline,
}

const METHODS: [Method; 3] = [Method::E2ekit, Method::E2ekitDeadline, Method::Baseline];

impl Method {
    fn label(self) -> &'static str {
        match self {
            Method::E2ekit => "e2ekit `wait_sum_metrics` (default options)",
            Method::E2ekitDeadline => "e2ekit, `.wait(WaitPolicy::timeout(30 s))` only",
            Method::Baseline => "baseline: GET /metrics every 1 ms + substring",
        }
    }

    /// The options of the e2ekit waits (`None`: `wait_sum_metrics`, all defaults).
    fn options(self) -> Option<MetricsOptions> {
        match self {
            Method::E2ekitDeadline => {
                Some(MetricsOptions::new().wait(WaitPolicy::timeout(DEADLINE)))
            }
            _ => None,
        }
    }
}

/// One measurement.
#[derive(Debug, Clone, Copy)]
struct Sample {
    /// Delay between starting the waiter and sending `/set`, in ms.
    delay_ms: u64,
    /// `t_seen - t_set`, in ms (negative if seen before the `/set` response arrived).
    latency_ms: f64,
    /// Round trip of the `/set` request, in ms.
    set_rtt_ms: f64,
}

/// Scrapes one wait made, read from demo-app's counter.
#[derive(Debug, Clone)]
struct Rate {
    method: Method,
    /// Seconds into the window of each reading, the end included.
    at: Vec<f64>,
    /// Scrapes by the wait up to each reading.
    scrapes: Vec<u64>,
}

#[derive(Debug, Default)]
struct Results {
    samples: Vec<(Method, Sample)>,
    rates: Vec<Rate>,
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

/// The wait of `method` on `demo_value == v` (e2ekit methods only).
async fn e2ekit_wait(app: Instrumented, method: Method, v: f64) -> Res<Instant> {
    let waited = match method.options() {
        None => app.wait_sum_metrics(equals(v), [METRIC]).await,
        Some(options) => {
            app.wait_sum_metrics_with(equals(v), [METRIC], options)
                .await
        }
    };
    waited.map(|()| Instant::now()).map_err(BoxError::from)
}

impl Bench {
    async fn measure(&self, method: Method, v: f64, delay: Duration) -> Res<Sample> {
        let waiter = match method {
            Method::E2ekit | Method::E2ekitDeadline => {
                tokio::spawn(e2ekit_wait(self.app.clone(), method, v))
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
            delay_ms: delay.as_millis() as u64,
            latency_ms: signed_ms(t_seen, t_set),
            set_rtt_ms: signed_ms(t_set, t_send),
        })
    }

    /// demo-app's scrape counter (this read included).
    async fn scrapes(&self) -> Res<u64> {
        let body = self
            .setter
            .get(format!("{}/metrics", self.base))
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?;
        let prefix = format!("{SCRAPES} ");
        body.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .ok_or_else(|| format!("no {SCRAPES} in demo-app's metrics (an older demo-app?)"))?
            .trim()
            .parse::<u64>()
            .map_err(|e| format!("{SCRAPES}: {e}").into())
    }

    /// Runs a wait of `method` that never succeeds for `window`, reading the scrape counter
    /// at the start, at each checkpoint and at the end.
    async fn rate(&self, method: Method, window: Duration) -> Res<Rate> {
        let start = self.scrapes().await?;
        let t0 = Instant::now();
        // demo_value is never negative here: the wait runs until it is dropped.
        let mut waiter = AbortOnDrop(tokio::spawn(e2ekit_wait(self.app.clone(), method, -1.0)));
        let mut rate = Rate {
            method,
            at: Vec::new(),
            scrapes: Vec::new(),
        };
        let marks = CHECKPOINTS.iter().copied().filter(|c| *c < window);
        for (reads, mark) in marks.chain([window]).enumerate() {
            tokio::select! {
                r = &mut waiter.0 => {
                    return Err(format!("the wait ended within the window: {:?}", r?.err()).into())
                }
                () = tokio::time::sleep_until((t0 + mark).into()) => {}
            }
            let now = self.scrapes().await?;
            // This read and the earlier ones in the window were the bench's, not the wait's.
            rate.scrapes.push(now - start - 1 - reads as u64);
            rate.at.push(t0.elapsed().as_secs_f64());
        }
        Ok(rate)
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

async fn run(env: Environment, iters: usize, window: Duration) -> Res<Results> {
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
        "bench: demo-app ready at {}; {iters} iterations, then {}-s scrape-rate windows",
        bench.base,
        window.as_secs()
    );

    let mut rng = Rng(0x00E2_E0C1_7BE2_C4A1);
    // Distinct values, never the initial 0.
    let mut counter = 0u32;
    let mut next_value = || {
        counter += 1;
        1.0 + f64::from(counter) * 0.25
    };

    // Warm-up (not recorded): connections of all three clients, code paths, page cache.
    for method in METHODS {
        bench
            .measure(method, next_value(), Duration::from_millis(30))
            .await?;
    }

    let mut results = Results::default();
    let mut consecutive_failures = 0;
    for i in 0..iters {
        let delay = rng.delay();
        // Rotate the order so no method always runs right after another.
        let mut order = METHODS;
        order.rotate_left(i % METHODS.len());
        for method in order {
            let v = next_value();
            match bench.measure(method, v, delay).await {
                Ok(sample) => {
                    consecutive_failures = 0;
                    results.samples.push((method, sample));
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
    for method in [Method::E2ekit, Method::E2ekitDeadline] {
        match bench.rate(method, window).await {
            Ok(rate) => results.rates.push(rate),
            Err(e) => {
                let msg = format!("scrape rate, {method:?}: {}", chain(&*e));
                eprintln!("bench: {msg}");
                results.failures.push(msg);
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
    let of = |method: Method| -> Vec<Sample> {
        results
            .samples
            .iter()
            .filter(|(m, _)| *m == method)
            .map(|(_, s)| *s)
            .collect()
    };
    let row = |label: &str, samples: &[Sample], target: String| {
        let lat = sorted(samples.iter().map(|s| s.latency_ms));
        println!(
            "| {label} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {target} |",
            lat.len(),
            lat.first().copied().unwrap_or(f64::NAN),
            median(&lat),
            percentile(&lat, 90.0),
            lat.last().copied().unwrap_or(f64::NAN),
        );
    };
    println!();
    println!(
        "Metric wait latency: t_seen - t_set (ms), {iters} iterations, set {DELAY_MIN_MS}-{} ms after the waiter started",
        DELAY_MIN_MS + DELAY_SPAN_MS - 1
    );
    println!();
    println!("| waiter | n | min | median | p90 | max | target (median) |");
    println!("|---|---:|---:|---:|---:|---:|---|");
    let mut met = true;
    for method in METHODS {
        let samples = of(method);
        let target = match method {
            Method::E2ekit | Method::E2ekitDeadline => {
                let lat: Vec<f64> = samples.iter().map(|s| s.latency_ms).collect();
                let ok = median(&lat) <= TARGET_MEDIAN_MS;
                met &= ok;
                format!(
                    "≤ {TARGET_MEDIAN_MS:.0} ms: {}",
                    if ok { "met" } else { "MISSED" }
                )
            }
            Method::Baseline => "(floor)".to_string(),
        };
        row(method.label(), &samples, target);
    }
    println!();
    println!("By delay of the change (ms into the wait):");
    println!();
    println!("| waiter | delay | n | min | median | p90 | max | |");
    println!("|---|---|---:|---:|---:|---:|---:|---|");
    for method in METHODS {
        for (lo, hi) in DELAY_BANDS {
            let band: Vec<Sample> = of(method)
                .into_iter()
                .filter(|s| (lo..=hi).contains(&s.delay_ms))
                .collect();
            row(
                &format!("{} | {lo}-{hi}", method.label()),
                &band,
                String::new(),
            );
        }
    }
    let rtt = sorted(results.samples.iter().map(|(_, s)| s.set_rtt_ms));
    println!();
    println!(
        "`/set` round trip (upper bound of how much t_set trails the exposure): median {:.2} ms, max {:.2} ms",
        median(&rtt),
        rtt.last().copied().unwrap_or(f64::NAN)
    );

    println!();
    println!(
        "Scrape rate of a wait that never succeeds (demo-app's {SCRAPES}, bench reads excluded):"
    );
    println!();
    println!("| waiter | first 1 s | 1-5 s, per s | 5 s-end, per s | whole window: scrapes / s | target (average) |");
    println!("|---|---:|---:|---:|---:|---|");
    for rate in &results.rates {
        // Scrapes between consecutive readings, per second of that stretch.
        let per_s = |i: usize| -> String {
            match (rate.at.get(i), rate.scrapes.get(i)) {
                (Some(at), Some(n)) if i > 0 => {
                    let dt = at - rate.at[i - 1];
                    format!("{:.1}", (n - rate.scrapes[i - 1]) as f64 / dt)
                }
                _ => "-".to_string(),
            }
        };
        let (Some(&end_at), Some(&total)) = (rate.at.last(), rate.scrapes.last()) else {
            continue;
        };
        let average = total as f64 / end_at;
        let ok = average <= TARGET_RATE;
        met &= ok;
        println!(
            "| {} | {} | {} | {} | {total} / {end_at:.1} s = {average:.1} | ≤ {TARGET_RATE:.0}/s: {} |",
            rate.method.label(),
            rate.scrapes.first().map_or("-".to_string(), |n| n.to_string()),
            per_s(1),
            per_s(2),
            if ok { "met" } else { "MISSED" }
        );
    }
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
    let window = match std::env::var("E2EKIT_BENCH_RATE_SECS") {
        Ok(s) => match s.trim().parse::<u64>() {
            Ok(n) if (1..=MAX_RATE_SECS).contains(&n) => Duration::from_secs(n),
            _ => {
                eprintln!("bench: E2EKIT_BENCH_RATE_SECS must be 1..={MAX_RATE_SECS}, got {s:?}");
                std::process::exit(2);
            }
        },
        Err(_) => Duration::from_secs(DEFAULT_RATE_SECS),
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
        let task = tokio::spawn(run(env.clone(), iters, window));
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
