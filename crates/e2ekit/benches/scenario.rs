//! The DESIGN.md performance scenario, e2ekit against a hand-written bollard baseline.
//!
//! N=8 demo-app services that become ready 500 ms after their process starts, on one network,
//! ports published on 127.0.0.1. Each round runs the scenario twice, once through e2ekit and
//! once with raw concurrent engine-API calls (the best a hand-written harness could do), in
//! alternating order, and measures:
//!
//! 1. bring-up: from before the environment (network) exists until every service answered
//!    `/ready` with 200;
//! 2. readiness lag: per service, the instant the harness noticed it ready minus the
//!    `ready at_unix_ns=` instant the service printed (read from its output afterwards);
//! 3. teardown: `Environment::close` against concurrent force-removal plus network removal.
//!
//! Run: `cargo bench -p e2ekit --bench scenario` (rounds: `E2EKIT_BENCH_ROUNDS`, default 5).
//! Everything created carries the label `e2ekit.env=bench-scn-…` and is removed after every
//! round, after a failed or panicking round, and on Ctrl-C.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bollard::models::{
    ContainerCreateBody, EndpointSettings, HostConfig, NetworkCreateRequest, NetworkingConfig,
    PortBinding,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder,
};
use bollard::Docker;
use e2ekit::labels::{owner, ENV, OWNER};
use e2ekit::prelude::*;
use futures_util::future::{join_all, try_join_all};
use futures_util::StreamExt;

#[allow(dead_code)] // uses a subset
mod common;
use common::{median, min_max, ms, percentile, remove_environments, sorted, BoxError, Res};

/// Services per scenario.
const N: usize = 8;
/// How long after process start each service becomes ready.
const READY_AFTER_MS: u64 = 500;
const PORT: u16 = 8080;
/// Prefix of every environment name this benchmark creates.
const PREFIX: &str = "bench-scn";
/// Pause of the raw harness between two `/ready` attempts.
const RAW_POLL: Duration = Duration::from_millis(1);
/// Per-request timeout of the raw harness.
const RAW_ATTEMPT_TIMEOUT: Duration = Duration::from_millis(200);
/// Give up on a service after this long.
const READY_DEADLINE: Duration = Duration::from_secs(60);
/// Idle time between two measured scenarios, so one's cleanup does not slow the next.
const SETTLE: Duration = Duration::from_millis(500);

/// What one scenario run measured.
#[derive(Debug, Clone, Default)]
struct Sample {
    bring_up: Duration,
    teardown: Duration,
    /// Per service: noticed-ready minus really-ready, in ms.
    lags_ms: Vec<f64>,
    /// Per service: whether it became ready while other containers were still being started
    /// (the engine then keeps both cores busy).
    contended: Vec<bool>,
    /// Environment (network) ready, after t0.
    network: Duration,
    /// Every `start` returned (engine says running, ports known), after t0.
    starts: Vec<Duration>,
    /// Every service process started (its printed ready instant minus 500 ms), after t0.
    processes: Vec<Duration>,
    /// Every service noticed ready, after t0.
    readies: Vec<Duration>,
}

/// When one service's milestones happened.
struct Service {
    container: String,
    /// `start` returned (engine says running, published port known), after t0.
    started: Duration,
    /// Noticed ready, after t0.
    ready: Duration,
    /// Noticed ready, wall clock.
    noticed: SystemTime,
}

impl Sample {
    /// Combines the harness's instants with the ready instants the services printed.
    fn new(
        t0: SystemTime,
        network: Duration,
        bring_up: Duration,
        teardown: Duration,
        services: &[Service],
        printed_ready_ns: &[i128],
    ) -> Self {
        let t0_ns = unix_ns(t0);
        let last_start = services.iter().map(|s| s.started).max().unwrap_or_default();
        let mut sample = Sample {
            bring_up,
            teardown,
            network,
            ..Sample::default()
        };
        for (s, &ready_ns) in services.iter().zip(printed_ready_ns) {
            let process_ns = ready_ns - i128::from(READY_AFTER_MS) * 1_000_000;
            sample.starts.push(s.started);
            sample.readies.push(s.ready);
            sample.processes.push(after_t0(t0_ns, process_ns));
            sample
                .lags_ms
                .push((unix_ns(s.noticed) - ready_ns) as f64 / 1e6);
            sample
                .contended
                .push(after_t0(t0_ns, ready_ns) < last_start);
        }
        sample
    }
}

fn unix_ns(t: SystemTime) -> i128 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}

/// Offset of a wall-clock instant (ns since the epoch) after `t0_ns`, clamped at zero.
fn after_t0(t0_ns: i128, at_ns: i128) -> Duration {
    Duration::from_nanos(u64::try_from(at_ns - t0_ns).unwrap_or(0))
}

fn demo_command() -> Command {
    Command::new("/bin/demo-app").args([
        "--listen".to_string(),
        format!(":{PORT}"),
        "--ready-after-ms".to_string(),
        READY_AFTER_MS.to_string(),
    ])
}

// ---------------------------------------------------------------------------------------------
// e2ekit

async fn e2ekit_scenario(docker: Docker, env_name: String, image: String) -> Res<Sample> {
    let t0_sys = SystemTime::now();
    let t0 = Instant::now();
    let env = Environment::builder().name(&env_name).build().await?;
    let network = t0.elapsed();
    let result = e2ekit_bring_up(&env, &image, t0).await;
    let bring_up = t0.elapsed();
    let per_service = match result {
        Ok(v) => v,
        Err(e) => {
            env.close().await;
            return Err(e);
        }
    };
    let names: Vec<String> = per_service.iter().map(|s| s.container.clone()).collect();
    let printed = ready_instants(&docker, &names).await;

    let t1 = Instant::now();
    env.close().await;
    let teardown = t1.elapsed();

    let printed = printed?;
    Ok(Sample::new(
        t0_sys,
        network,
        bring_up,
        teardown,
        &per_service,
        &printed,
    ))
}

/// The services' start options; `E2EKIT_BENCH_MAX_INTERVAL_MS` overrides the wait policy's
/// largest polling interval (to try a different default without editing the library).
fn start_options(image: &str) -> StartOptions {
    let options = StartOptions::new(image)
        .command(demo_command())
        .readiness(HttpProbe::new("http", "/ready"));
    match std::env::var("E2EKIT_BENCH_MAX_INTERVAL_MS")
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
    {
        Some(max) => options.wait_policy(
            WaitPolicy::timeout(READY_DEADLINE).max_interval(Duration::from_secs_f64(max / 1e3)),
        ),
        None => options,
    }
}

/// Defines the services and does what `start_and_wait_ready` does (concurrent `start` then
/// `wait_ready` per runnable, first error wins), noting when each one was noticed ready.
async fn e2ekit_bring_up(env: &Environment, image: &str, t0: Instant) -> Res<Vec<Service>> {
    let runnables = (0..N)
        .map(|i| {
            env.runnable(format!("svc{i}"))
                .with_ports([("http", PORT)])
                .init(start_options(image))
        })
        .collect::<e2ekit::Result<Vec<Runnable>>>()?;
    let per_service = try_join_all(runnables.iter().map(|r| async move {
        r.start().await?;
        let started = t0.elapsed();
        r.wait_ready().await?;
        let noticed = SystemTime::now();
        Ok::<_, e2ekit::Error>(Service {
            container: r.container_name().to_string(),
            started,
            ready: t0.elapsed(),
            noticed,
        })
    }))
    .await?;
    Ok(per_service)
}

// ---------------------------------------------------------------------------------------------
// Raw baseline: bollard, concurrent, tight polling

/// The labels e2ekit puts on its own resources. The owner label matters: e2ekit removes
/// environments without a live owner whenever any process builds an environment, which
/// would otherwise delete the raw baseline's containers in the middle of a round.
fn env_labels(env_name: &str) -> HashMap<String, String> {
    HashMap::from([
        (ENV.to_string(), env_name.to_string()),
        (OWNER.to_string(), owner().to_string()),
    ])
}

async fn raw_scenario(docker: Docker, env_name: String, image: String) -> Res<Sample> {
    // Built once, outside the timed window, as a hand-written harness would.
    let http = &reqwest::Client::new();
    let t0_sys = SystemTime::now();
    let t0 = Instant::now();
    docker
        .create_network(NetworkCreateRequest {
            name: env_name.clone(),
            driver: Some("bridge".to_string()),
            labels: Some(env_labels(&env_name)),
            ..Default::default()
        })
        .await?;
    let network = t0.elapsed();
    let per_service = try_join_all((0..N).map(|i| {
        let docker = &docker;
        let env_name = &env_name;
        let image = &image;
        async move {
            let name = format!("{env_name}-svc{i}");
            let id =
                raw_create_and_start(docker, env_name, &name, &format!("svc{i}"), image).await?;
            let host_port = raw_host_port(docker, &id).await?;
            let started = t0.elapsed();
            raw_wait_ready(http, host_port).await?;
            let noticed = SystemTime::now();
            Ok::<_, BoxError>(Service {
                container: name,
                started,
                ready: t0.elapsed(),
                noticed,
            })
        }
    }))
    .await?;
    let bring_up = t0.elapsed();

    let names: Vec<String> = per_service.iter().map(|s| s.container.clone()).collect();
    let printed = ready_instants(&docker, &names).await?;

    let t1 = Instant::now();
    let removals = join_all(
        names
            .iter()
            .map(|n| docker.remove_container(n, Some(force()))),
    );
    for r in removals.await {
        r?;
    }
    docker.remove_network(&env_name).await?;
    let teardown = t1.elapsed();

    Ok(Sample::new(
        t0_sys,
        network,
        bring_up,
        teardown,
        &per_service,
        &printed,
    ))
}

fn force() -> bollard::query_parameters::RemoveContainerOptions {
    RemoveContainerOptionsBuilder::default()
        .force(true)
        .v(true)
        .build()
}

async fn raw_create_and_start(
    docker: &Docker,
    env_name: &str,
    name: &str,
    alias: &str,
    image: &str,
) -> Res<String> {
    let port_key = format!("{PORT}/tcp");
    let body = ContainerCreateBody {
        hostname: Some(alias.to_string()),
        image: Some(image.to_string()),
        cmd: Some(demo_command().to_vec()),
        labels: Some(env_labels(env_name)),
        exposed_ports: Some(vec![port_key.clone()]),
        host_config: Some(HostConfig {
            network_mode: Some(env_name.to_string()),
            port_bindings: Some(HashMap::from([(
                port_key,
                Some(vec![PortBinding {
                    host_ip: Some("127.0.0.1".to_string()),
                    host_port: Some(String::new()),
                }]),
            )])),
            ..Default::default()
        }),
        networking_config: Some(NetworkingConfig {
            endpoints_config: Some(HashMap::from([(
                env_name.to_string(),
                EndpointSettings {
                    aliases: Some(vec![alias.to_string()]),
                    ..Default::default()
                },
            )])),
        }),
        ..Default::default()
    };
    let created = docker
        .create_container(
            Some(CreateContainerOptionsBuilder::default().name(name).build()),
            body,
        )
        .await?;
    docker.start_container(&created.id, None).await?;
    Ok(created.id)
}

async fn raw_host_port(docker: &Docker, id: &str) -> Res<u16> {
    let info = docker.inspect_container(id, None).await?;
    let port = info
        .network_settings
        .and_then(|s| s.ports)
        .and_then(|p| p.get(&format!("{PORT}/tcp")).cloned().flatten())
        .and_then(|b| b.into_iter().find_map(|b| b.host_port?.parse::<u16>().ok()))
        .ok_or_else(|| format!("container {id} has no published port {PORT}"))?;
    Ok(port)
}

/// Polls `GET /ready` through the published port every millisecond until it answers 200,
/// on a keep-alive client (measured: fresh connections through Docker's port proxy are slower
/// and have a worse tail).
async fn raw_wait_ready(http: &reqwest::Client, host_port: u16) -> Res<()> {
    let deadline = Instant::now() + READY_DEADLINE;
    let url = format!("http://127.0.0.1:{host_port}/ready");
    loop {
        if let Ok(response) = http.get(&url).timeout(RAW_ATTEMPT_TIMEOUT).send().await {
            let ok = response.status() == reqwest::StatusCode::OK;
            if response.bytes().await.is_ok() && ok {
                return Ok(());
            }
        }
        if Instant::now() >= deadline {
            return Err(format!("{url} not 200 after {READY_DEADLINE:?}").into());
        }
        tokio::time::sleep(RAW_POLL).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Shared: printed ready instants, cleanup

/// The `ready at_unix_ns=<ns>` instant each container printed, read from its output.
async fn ready_instants(docker: &Docker, containers: &[String]) -> Res<Vec<i128>> {
    try_join_all(containers.iter().map(|c| ready_instant(docker, c))).await
}

async fn ready_instant(docker: &Docker, container: &str) -> Res<i128> {
    // The line is written as the instant comes; give the log driver a moment to have it.
    for _ in 0..100 {
        let opts = LogsOptionsBuilder::default().stdout(true).build();
        let mut logs = docker.logs(container, Some(opts));
        let mut text = Vec::new();
        while let Some(chunk) = logs.next().await {
            text.extend_from_slice(&chunk?.into_bytes());
        }
        let text = String::from_utf8_lossy(&text);
        if let Some(ns) = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("ready at_unix_ns="))
        {
            return Ok(ns.trim().parse()?);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Err(format!("container {container} never printed its ready line").into())
}

async fn sweep_env(env_name: &str) {
    match remove_environments(|v| v == env_name).await {
        Ok(0) => {}
        Ok(n) => eprintln!("bench: removed {n} leftover resources of {env_name}"),
        Err(e) => eprintln!("bench: cleaning up {env_name}: {e}"),
    }
}

fn is_ours(env_name: &str) -> bool {
    env_name.starts_with(PREFIX)
}

// ---------------------------------------------------------------------------------------------
// Driver

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    E2ekit,
    Raw,
}

/// Runs one scenario in its own task (so a panic is contained) and always sweeps after it.
async fn run_one(docker: &Docker, kind: Kind, env_name: String, image: &str) -> Option<Sample> {
    let task = match kind {
        Kind::E2ekit => tokio::spawn(e2ekit_scenario(
            docker.clone(),
            env_name.clone(),
            image.to_string(),
        )),
        Kind::Raw => tokio::spawn(raw_scenario(
            docker.clone(),
            env_name.clone(),
            image.to_string(),
        )),
    };
    let outcome = task.await;
    sweep_env(&env_name).await;
    tokio::time::sleep(SETTLE).await;
    match outcome {
        Ok(Ok(s)) => Some(s),
        Ok(Err(e)) => {
            eprintln!("bench: {kind:?} round {env_name} failed: {e}");
            None
        }
        Err(e) => {
            eprintln!("bench: {kind:?} round {env_name} panicked: {e}");
            None
        }
    }
}

async fn build_image() -> Res<String> {
    let env = Environment::builder()
        .name(format!("{PREFIX}-image"))
        .build()
        .await?;
    let image = async {
        let bin = cargo_bin("demo-app")?;
        HostImage::new("e2ekit-bench/demo-app")
            .binary(bin)
            .build(&env)
            .await
    }
    .await;
    env.close().await;
    Ok(image?)
}

struct Summary {
    bring_up: Vec<f64>,
    teardown: Vec<f64>,
    lags: Vec<f64>,
    lags_contended: Vec<f64>,
    lags_quiet: Vec<f64>,
    network: Vec<f64>,
    first_start: Vec<f64>,
    last_start: Vec<f64>,
    first_process: Vec<f64>,
    last_process: Vec<f64>,
    last_ready: Vec<f64>,
    ready_after_last_process: Vec<f64>,
}

fn summarize(samples: &[Sample]) -> Summary {
    let per = |f: &dyn Fn(&Sample) -> f64| samples.iter().map(f).collect::<Vec<_>>();
    let max_of = |v: &[Duration]| v.iter().copied().max().map_or(f64::NAN, ms);
    let min_of = |v: &[Duration]| v.iter().copied().min().map_or(f64::NAN, ms);
    Summary {
        bring_up: per(&|s| ms(s.bring_up)),
        teardown: per(&|s| ms(s.teardown)),
        lags: sorted(samples.iter().flat_map(|s| s.lags_ms.iter().copied())),
        lags_contended: lags_where(samples, true),
        lags_quiet: lags_where(samples, false),
        network: per(&|s| ms(s.network)),
        first_start: per(&|s| min_of(&s.starts)),
        last_start: per(&|s| max_of(&s.starts)),
        first_process: per(&|s| min_of(&s.processes)),
        last_process: per(&|s| max_of(&s.processes)),
        last_ready: per(&|s| max_of(&s.readies)),
        ready_after_last_process: per(&|s| max_of(&s.readies) - max_of(&s.processes)),
    }
}

fn lags_where(samples: &[Sample], contended: bool) -> Vec<f64> {
    sorted(
        samples
            .iter()
            .flat_map(|s| s.lags_ms.iter().zip(&s.contended))
            .filter(|(_, c)| **c == contended)
            .map(|(l, _)| *l),
    )
}

fn fmt_range(v: &[f64]) -> String {
    let (lo, hi) = min_max(v);
    format!("{:.0} ms ({:.0}–{:.0})", median(v), lo, hi)
}

fn print_report(e2e: &[Sample], raw: &[Sample], pair_ratios: &[(f64, f64)], rounds: usize) {
    let a = summarize(e2e);
    let b = summarize(raw);
    let verdict = |ok: bool| if ok { "ok" } else { "MISSED" };

    println!();
    println!(
        "scenario: {N} demo-app services, ready {READY_AFTER_MS} ms after start, one network, ports on 127.0.0.1"
    );
    println!(
        "rounds: {rounds} requested, {} e2ekit and {} raw succeeded; medians (min–max over rounds)",
        e2e.len(),
        raw.len()
    );
    println!();
    println!(
        "| {:<28} | {:<22} | {:<22} | {:>6} | {:<14} | {:<6} |",
        "metric", "e2ekit", "raw", "ratio", "target", "result"
    );
    println!(
        "|{:-<30}|{:-<24}|{:-<24}|{:->8}|{:-<16}|{:-<8}|",
        "", "", "", "", "", ""
    );
    let bring_ratio = median(&a.bring_up) / median(&b.bring_up);
    println!(
        "| {:<28} | {:<22} | {:<22} | {:>5.3}x | {:<14} | {:<6} |",
        "bring-up (median)",
        fmt_range(&a.bring_up),
        fmt_range(&b.bring_up),
        bring_ratio,
        "<= 1.10x raw",
        verdict(bring_ratio <= 1.10)
    );
    let lag_a = median(&a.lags);
    let lag_b = median(&b.lags);
    println!(
        "| {:<28} | {:<22} | {:<22} | {:>5.2}x | {:<14} | {:<6} |",
        "readiness lag (median)",
        format!("{lag_a:.1} ms"),
        format!("{lag_b:.1} ms"),
        lag_a / lag_b,
        "<= 10 ms",
        verdict(lag_a <= 10.0)
    );
    println!(
        "| {:<28} | {:<22} | {:<22} | {:>5.2}x | {:<14} | {:<6} |",
        "readiness lag (p90)",
        format!("{:.1} ms", percentile(&a.lags, 90.0)),
        format!("{:.1} ms", percentile(&b.lags, 90.0)),
        percentile(&a.lags, 90.0) / percentile(&b.lags, 90.0),
        "-",
        "-"
    );
    println!(
        "| {:<28} | {:<22} | {:<22} | {:>6} | {:<14} | {:<6} |",
        "readiness lag (min–max)",
        format!("{:.1}–{:.1} ms", min_max(&a.lags).0, min_max(&a.lags).1),
        format!("{:.1}–{:.1} ms", min_max(&b.lags).0, min_max(&b.lags).1),
        "-",
        "-",
        "-"
    );
    let td_ratio = median(&a.teardown) / median(&b.teardown);
    println!(
        "| {:<28} | {:<22} | {:<22} | {:>5.3}x | {:<14} | {:<6} |",
        "teardown (median)",
        fmt_range(&a.teardown),
        fmt_range(&b.teardown),
        td_ratio,
        "<= 1.1x raw",
        verdict(td_ratio <= 1.1)
    );
    let bring_pairs: Vec<f64> = pair_ratios.iter().map(|p| p.0).collect();
    let td_pairs: Vec<f64> = pair_ratios.iter().map(|p| p.1).collect();
    println!();
    println!(
        "paired (same round) ratios e2ekit/raw, median (min–max) over {} rounds: bring-up {:.3}x ({:.3}–{:.3}), teardown {:.3}x ({:.3}–{:.3})",
        pair_ratios.len(),
        median(&bring_pairs),
        min_max(&bring_pairs).0,
        min_max(&bring_pairs).1,
        median(&td_pairs),
        min_max(&td_pairs).0,
        min_max(&td_pairs).1,
    );
    println!();
    println!("where the bring-up time goes (median over rounds, ms after t0):");
    println!("| {:<40} | {:>8} | {:>8} |", "phase", "e2ekit", "raw");
    println!("|{:-<42}|{:->10}|{:->10}|", "", "", "");
    let rows: [(&str, &Vec<f64>, &Vec<f64>); 8] = [
        ("environment / network ready", &a.network, &b.network),
        ("first start() returned", &a.first_start, &b.first_start),
        ("last start() returned", &a.last_start, &b.last_start),
        (
            "first service process started",
            &a.first_process,
            &b.first_process,
        ),
        (
            "last service process started",
            &a.last_process,
            &b.last_process,
        ),
        ("last service noticed ready", &a.last_ready, &b.last_ready),
        (
            "  = last process start + this",
            &a.ready_after_last_process,
            &b.ready_after_last_process,
        ),
        ("bring-up", &a.bring_up, &b.bring_up),
    ];
    for (label, x, y) in rows {
        println!(
            "| {:<40} | {:>8.1} | {:>8.1} |",
            label,
            median(x),
            median(y)
        );
    }
    println!();
    for (label, x, y) in [
        (
            "ready while others were still starting",
            &a.lags_contended,
            &b.lags_contended,
        ),
        (
            "ready after every container had started",
            &a.lags_quiet,
            &b.lags_quiet,
        ),
    ] {
        println!(
            "readiness lag, {label}: e2ekit median {:.1} ms p90 {:.1} ms (n={}), raw median {:.1} ms p90 {:.1} ms (n={})",
            median(x),
            percentile(x, 90.0),
            x.len(),
            median(y),
            percentile(y, 90.0),
            y.len()
        );
    }
    println!(
        "readiness lag samples (ms, sorted): e2ekit {:?}",
        a.lags
            .iter()
            .map(|l| (l * 10.0).round() / 10.0)
            .collect::<Vec<_>>()
    );
    println!(
        "readiness lag samples (ms, sorted): raw    {:?}",
        b.lags
            .iter()
            .map(|l| (l * 10.0).round() / 10.0)
            .collect::<Vec<_>>()
    );
}

async fn bench(docker: &Docker, rounds: usize) -> Res<bool> {
    let image = build_image().await?;
    println!("bench: image {image}");

    // Warm-up: one full scenario each, not measured.
    println!("bench: warm-up");
    for kind in [Kind::E2ekit, Kind::Raw] {
        let tag = if kind == Kind::E2ekit { "e2e" } else { "raw" };
        if run_one(docker, kind, format!("{PREFIX}-{tag}-warm"), &image)
            .await
            .is_none()
        {
            return Err(format!("{kind:?} warm-up failed").into());
        }
    }

    let mut e2e = Vec::new();
    let mut raw = Vec::new();
    let mut pair_ratios = Vec::new();
    for round in 0..rounds {
        let (mut this_e2e, mut this_raw) = (None, None);
        // Alternate the order so neither side always runs on a freshly idle engine.
        let order = if round % 2 == 0 {
            [Kind::E2ekit, Kind::Raw]
        } else {
            [Kind::Raw, Kind::E2ekit]
        };
        for kind in order {
            let tag = if kind == Kind::E2ekit { "e2e" } else { "raw" };
            let name = format!("{PREFIX}-{tag}-r{round}");
            if let Some(s) = run_one(docker, kind, name, &image).await {
                println!(
                    "bench: round {round} {kind:?}: bring-up {:.0} ms, teardown {:.0} ms, lag median {:.1} ms",
                    ms(s.bring_up),
                    ms(s.teardown),
                    median(&s.lags_ms)
                );
                match kind {
                    Kind::E2ekit => this_e2e = Some(s),
                    Kind::Raw => this_raw = Some(s),
                }
            }
        }
        if let (Some(a), Some(b)) = (&this_e2e, &this_raw) {
            pair_ratios.push((
                ms(a.bring_up) / ms(b.bring_up),
                ms(a.teardown) / ms(b.teardown),
            ));
        }
        e2e.extend(this_e2e);
        raw.extend(this_raw);
    }
    if e2e.is_empty() || raw.is_empty() {
        return Err("no successful round on one side; nothing to compare".into());
    }
    print_report(&e2e, &raw, &pair_ratios, rounds);
    Ok(e2e.len() == rounds && raw.len() == rounds)
}

async fn connect() -> Res<Docker> {
    Ok(Docker::connect_with_defaults()?.negotiate_version().await?)
}

fn runtime(multi_thread: bool) -> tokio::runtime::Runtime {
    let mut builder = if multi_thread {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bench: cannot build a tokio runtime: {e}");
            std::process::exit(1);
        }
    }
}

fn main() {
    // `cargo bench` passes `--bench`; filters are not meaningful for a single scenario.
    if std::env::args().any(|a| a == "--list") {
        println!("scenario: bench");
        return;
    }
    let rounds = std::env::var("E2EKIT_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|r| *r > 0)
        .unwrap_or(5);

    let main_rt = runtime(true);
    let outcome: Res<bool> = main_rt.block_on(async {
        let docker = connect()
            .await
            .map_err(|e| format!("the Docker engine does not answer: {e}"))?;
        // Leftovers of a killed earlier run.
        if let Ok(n @ 1..) = remove_environments(is_ours).await {
            eprintln!("bench: removed {n} leftovers of an earlier run");
        }
        tokio::select! {
            r = bench(&docker, rounds) => r,
            _ = tokio::signal::ctrl_c() => Err("interrupted".into()),
        }
    });
    // Dropping the runtime cancels a round still in flight (after Ctrl-C); its environment
    // closes on drop. Only then is the final sweep sure to see everything.
    drop(main_rt);
    let swept = runtime(false).block_on(remove_environments(is_ours));
    match swept {
        Ok(0) => {}
        Ok(n) => eprintln!("bench: final cleanup removed {n} leftover resources"),
        Err(e) => eprintln!("bench: final cleanup failed: {e}"),
    }
    let code = match outcome {
        Ok(true) => 0,
        Ok(false) => {
            eprintln!("bench: some rounds failed (see above)");
            1
        }
        Err(e) => {
            eprintln!("bench: {e}");
            1
        }
    };
    std::process::exit(code);
}
