//! Soak: many bring-up/teardown cycles of one small scenario, looking for leaks and drift.
//!
//! Each cycle builds `Environment::builder().name("e2ekit-soak")`, defines three demo-app
//! runnables (port "http" 8080, `HttpProbe::new("http", "/ready")`), runs
//! `start_and_wait_ready`, sends one HTTP GET to each published endpoint and tears the
//! environment down with `close()`. Every 10th cycle the environment is dropped instead of
//! closed (the synchronous drop path); every 25th cycle one runnable is killed mid-scenario
//! and started (and awaited) again before the GETs.
//!
//! After every cycle the engine is asked, through `e2ekit::sweep::list_environments`, for
//! containers and networks labelled `e2ekit.env=e2ekit-soak`: anything found is a leak and is
//! recorded (the next cycle's `build` removes it, so the soak keeps going). The shared dir
//! `/tmp/e2ekit-<uid>/e2ekit-soak` must be gone too. The harness process's RSS, open file
//! descriptors (and how many are sockets), OS threads and live tokio tasks are sampled after
//! cycle 10 (warm) and at the end, both right after the cycle and after an idle pause that
//! lets tokio's idle blocking threads retire; growth there means leaked connections or tasks.
//!
//! Then come the fault cycles (`soak/faults.rs`; `E2EKIT_SOAK_FAULT_CYCLES`, default 20):
//! closes racing in-flight starts, and a private engine killed mid-bring-up and restarted.
//! They need root (the private engine is a `dockerd` in its own network namespace).
//!
//! Run: `cargo bench -p e2ekit --bench soak` (cycles: `E2EKIT_SOAK_CYCLES`, default 200;
//! `E2EKIT_SOAK_CSV=<path>` also writes one line per cycle there).
//! Container output goes to stdout through the library's `name: line` printing; progress goes
//! to stderr and the report is printed last. Exits 1 on leaks, leftover dirs or failed cycles.

use std::time::{Duration, Instant};

use e2ekit::prelude::*;

#[allow(dead_code)] // uses a subset
mod common;
#[path = "soak/faults.rs"]
mod faults;
use common::{leftovers, median, ms, percentile, sorted, BoxError, Res};

const ENV_NAME: &str = "e2ekit-soak";
const SERVICES: usize = 3;
const DEFAULT_CYCLES: usize = 200;
/// Every this many cycles the environment is dropped instead of closed.
const DROP_EVERY: usize = 10;
/// Every this many cycles one runnable is killed and started again.
const KILL_EVERY: usize = 25;
/// The warm resource sample is taken after this cycle.
const WARM_CYCLE: usize = 10;
/// A cycle taking longer than this is a hang: it is abandoned (its environment dropped).
const CYCLE_TIMEOUT: Duration = Duration::from_secs(180);
/// Idle time before the "settled" resource samples: tokio retires idle blocking threads after
/// 10 s.
const SETTLE: Duration = Duration::from_secs(11);

/// How a cycle tore its environment down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Teardown {
    Close,
    Drop,
}

/// What one cycle measured.
#[derive(Debug, Clone)]
struct Cycle {
    index: usize,
    teardown: Teardown,
    killed: bool,
    /// Whole cycle: build to teardown done.
    total: Duration,
    /// `Environment::builder().build()`.
    build: Duration,
    /// `start_and_wait_ready` of the three services.
    ready: Duration,
    /// Kill and start-and-wait-ready of one service (kill cycles only).
    restart: Option<Duration>,
    /// `close().await` or `drop`.
    teardown_time: Duration,
    /// Containers and networks labelled with the environment after the cycle.
    leaked_containers: usize,
    leaked_networks: usize,
    /// Whether the shared dir was still there after the cycle.
    leftover_dir: bool,
    /// The machine's 1-minute load average when the cycle ended (context for outliers).
    load1: f64,
    error: Option<String>,
}

impl Cycle {
    fn csv_header() -> &'static str {
        "cycle,teardown,killed,total_ms,build_ms,ready_ms,restart_ms,teardown_ms,leaked_containers,leaked_networks,leftover_dir,load1,error"
    }

    fn csv(&self) -> String {
        let ms_text = |d: Duration| format!("{:.1}", ms(d));
        format!(
            "{},{:?},{},{},{},{},{},{},{},{},{},{:.2},{:?}",
            self.index,
            self.teardown,
            self.killed,
            ms_text(self.total),
            ms_text(self.build),
            ms_text(self.ready),
            self.restart.map(ms_text).unwrap_or_default(),
            ms_text(self.teardown_time),
            self.leaked_containers,
            self.leaked_networks,
            self.leftover_dir,
            self.load1,
            self.error.as_deref().unwrap_or("")
        )
    }
}

/// The 1-minute load average.
fn load1() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(f64::NAN)
}

/// Process resources at one instant.
#[derive(Debug, Clone, Copy, Default)]
struct Resources {
    rss_kib: u64,
    fds: usize,
    sockets: usize,
    threads: u64,
    tasks: usize,
}

impl Resources {
    fn sample(handle: &tokio::runtime::Handle) -> Self {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        let mut fds = 0usize;
        let mut sockets = 0usize;
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            for entry in dir.flatten() {
                fds += 1;
                if std::fs::read_link(entry.path())
                    .is_ok_and(|t| t.to_string_lossy().starts_with("socket:"))
                {
                    sockets += 1;
                }
            }
        }
        Resources {
            rss_kib: field("VmRSS:"),
            // The read_dir handle itself is one of the entries.
            fds: fds.saturating_sub(1),
            sockets,
            threads: field("Threads:"),
            tasks: handle.metrics().num_alive_tasks(),
        }
    }

    fn rss_mib(&self) -> f64 {
        self.rss_kib as f64 / 1024.0
    }
}

/// Entries of this user's private e2ekit directory named like the soak environment's shared
/// dir (`<temp>/e2ekit-<uid>/<env>`).
fn leftover_dirs() -> Vec<String> {
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata("/proc/self").map_or(0, |m| m.uid());
    let base = std::env::var_os("E2E_TEMP_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
        .join(format!("e2ekit-{uid}"));
    let prefix = ENV_NAME.to_string();
    let mut found: Vec<String> = std::fs::read_dir(&base)
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                .map(|e| e.path().display().to_string())
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

/// The three demo-app runnables of a cycle.
fn services(env: &Environment, image: &str) -> e2ekit::Result<Vec<Runnable>> {
    (0..SERVICES)
        .map(|i| {
            env.runnable(format!("app-{i}"))
                .with_ports([("http", 8080)])
                .init(
                    StartOptions::new(image)
                        .command(Command::new("/bin/demo-app").args(["--listen", ":8080"]))
                        .readiness(HttpProbe::new("http", "/ready")),
                )
        })
        .collect()
}

async fn get_each(http: &reqwest::Client, apps: &[Runnable]) -> Res<()> {
    for app in apps {
        let url = format!("http://{}/", app.endpoint("http")?);
        let status = http.get(&url).send().await?.status();
        if !status.is_success() {
            return Err(format!("GET {url} of {} answered {status}", app.name()).into());
        }
    }
    Ok(())
}

/// One cycle. Timing fields are filled as phases complete; on error the environment is
/// dropped (which cleans up) and the error recorded.
async fn run_cycle(
    index: usize,
    image: &str,
    http: &reqwest::Client,
    cycle: &mut Cycle,
) -> Res<()> {
    let t = Instant::now();
    let env = Environment::builder().name(ENV_NAME).build().await?;
    cycle.build = t.elapsed();

    let apps = services(&env, image)?;
    let t = Instant::now();
    let refs: Vec<&dyn AsRunnable> = apps.iter().map(|a| a as &dyn AsRunnable).collect();
    start_and_wait_ready(&refs).await?;
    cycle.ready = t.elapsed();

    if cycle.killed {
        let victim = &apps[(index / KILL_EVERY) % SERVICES];
        let t = Instant::now();
        victim.kill().await?;
        if victim.is_running() {
            return Err(format!("{} still running after kill", victim.name()).into());
        }
        start_and_wait_ready(&[victim]).await?;
        cycle.restart = Some(t.elapsed());
    }

    get_each(http, &apps).await?;

    let t = Instant::now();
    match cycle.teardown {
        Teardown::Close => env.close().await,
        Teardown::Drop => {
            // The runnables keep only the environment's core alive, not its drop guard: the
            // last `Environment` handle going is what triggers the synchronous cleanup.
            drop(env);
        }
    }
    cycle.teardown_time = t.elapsed();
    drop(apps);
    Ok(())
}

fn stats_line(label: &str, values: impl IntoIterator<Item = Duration>) -> String {
    let v = sorted(values.into_iter().map(ms));
    if v.is_empty() {
        return format!("  {label:<28} (none)");
    }
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    format!(
        "  {label:<28} n={:<4} p50 {:>7.1}  p90 {:>7.1}  p99 {:>7.1}  max {:>7.1}  mean {:>7.1}",
        v.len(),
        percentile(&v, 50.0),
        percentile(&v, 90.0),
        percentile(&v, 99.0),
        v[v.len() - 1],
        mean
    )
}

fn growth_line(label: &str, warm: f64, end: f64, unit: &str, decimals: usize) -> String {
    format!(
        "  {label:<22} {warm:>9.decimals$} -> {end:>9.decimals$} {unit:<4} (growth {:+.decimals$})",
        end - warm
    )
}

struct Report {
    cycles: Vec<Cycle>,
    faults: faults::FaultReport,
    requested: usize,
    warmup: Duration,
    warm: Option<(Resources, Resources)>,
    end: (Resources, Resources),
    trend: Vec<(usize, Resources)>,
    dirs_at_end: Vec<String>,
    final_leak: (usize, usize),
    interrupted: bool,
    elapsed: Duration,
}

impl Report {
    fn print(&self) -> bool {
        let ok_cycles: Vec<&Cycle> = self.cycles.iter().filter(|c| c.error.is_none()).collect();
        let failed: Vec<&Cycle> = self.cycles.iter().filter(|c| c.error.is_some()).collect();
        let leaky: Vec<&Cycle> = self
            .cycles
            .iter()
            .filter(|c| c.leaked_containers + c.leaked_networks > 0)
            .collect();
        let dir_cycles = self.cycles.iter().filter(|c| c.leftover_dir).count();
        let leaked_containers: usize = self.cycles.iter().map(|c| c.leaked_containers).sum();
        let leaked_networks: usize = self.cycles.iter().map(|c| c.leaked_networks).sum();

        let mut out = String::new();
        let mut line = |s: String| {
            out.push_str(&s);
            out.push('\n');
        };
        line(String::new());
        line(format!(
            "== e2ekit soak: {} of {} cycles{} in {:.1} s ({} services each; drop every {DROP_EVERY}th, kill+restart every {KILL_EVERY}th) ==",
            self.cycles.len(),
            self.requested,
            if self.interrupted { " (interrupted)" } else { "" },
            self.elapsed.as_secs_f64(),
            SERVICES,
        ));
        line(format!(
            "warm-up cycle (image build + first bring-up/teardown): {:.0} ms",
            ms(self.warmup)
        ));
        line(format!(
            "failed cycles: {} | cycles with leaks: {} (containers {leaked_containers}, networks {leaked_networks}) | cycles leaving the shared dir: {dir_cycles}",
            failed.len(),
            leaky.len(),
        ));
        for c in failed.iter().take(10) {
            line(format!(
                "  cycle {} failed: {}",
                c.index,
                c.error.as_deref().unwrap_or("")
            ));
        }
        for c in leaky.iter().take(10) {
            line(format!(
                "  cycle {} ({:?}{}) leaked {} containers, {} networks",
                c.index,
                c.teardown,
                if c.killed { ", kill" } else { "" },
                c.leaked_containers,
                c.leaked_networks
            ));
        }
        line(format!(
            "after the last cycle: {} containers, {} networks labelled e2ekit.env={ENV_NAME}; leftover dirs: {}",
            self.final_leak.0,
            self.final_leak.1,
            if self.dirs_at_end.is_empty() {
                "none".to_string()
            } else {
                self.dirs_at_end.join(", ")
            }
        ));

        line("per-cycle time (ms):".to_string());
        line(stats_line("all cycles", ok_cycles.iter().map(|c| c.total)));
        line(stats_line(
            "close cycles (no kill)",
            ok_cycles
                .iter()
                .filter(|c| c.teardown == Teardown::Close && !c.killed)
                .map(|c| c.total),
        ));
        line(stats_line(
            "drop cycles",
            ok_cycles
                .iter()
                .filter(|c| c.teardown == Teardown::Drop)
                .map(|c| c.total),
        ));
        line(stats_line(
            "kill cycles",
            ok_cycles.iter().filter(|c| c.killed).map(|c| c.total),
        ));
        line("phases (ms):".to_string());
        line(stats_line(
            "build (network, dir)",
            ok_cycles.iter().map(|c| c.build),
        ));
        line(stats_line(
            "start_and_wait_ready x3",
            ok_cycles.iter().map(|c| c.ready),
        ));
        line(stats_line(
            "kill + restart one",
            ok_cycles.iter().filter_map(|c| c.restart),
        ));
        line(stats_line(
            "close().await",
            ok_cycles
                .iter()
                .filter(|c| c.teardown == Teardown::Close)
                .map(|c| c.teardown_time),
        ));
        line(stats_line(
            "drop(env)",
            ok_cycles
                .iter()
                .filter(|c| c.teardown == Teardown::Drop)
                .map(|c| c.teardown_time),
        ));
        // Drift: first vs last tenth of the cycles.
        let tenth = (ok_cycles.len() / 10).max(1);
        if ok_cycles.len() >= 2 * tenth {
            let median_total = |cs: &[&Cycle]| {
                let v: Vec<f64> = cs.iter().map(|c| ms(c.total)).collect();
                median(&v)
            };
            line(format!(
                "  drift: median of first {tenth} cycles {:.1} ms, of last {tenth} cycles {:.1} ms",
                median_total(&ok_cycles[..tenth]),
                median_total(&ok_cycles[ok_cycles.len() - tenth..])
            ));
        }

        let mut slowest: Vec<&&Cycle> = ok_cycles.iter().collect();
        slowest.sort_by_key(|c| std::cmp::Reverse(c.total));
        line("slowest cycles (ms; load = 1-min load average at the cycle's end):".to_string());
        for c in slowest.iter().take(5) {
            line(format!(
                "  cycle {:>4} {:<5}{:<5} total {:>7.0} = build {:>5.0} + ready {:>5.0}{} + teardown {:>6.0} (+ GETs); load {:.1}",
                c.index,
                format!("{:?}", c.teardown),
                if c.killed { " kill" } else { "" },
                ms(c.total),
                ms(c.build),
                ms(c.ready),
                c.restart
                    .map(|r| format!(" + restart {:>5.0}", ms(r)))
                    .unwrap_or_default(),
                ms(c.teardown_time),
                c.load1
            ));
        }
        let loads = sorted(
            self.cycles
                .iter()
                .map(|c| c.load1)
                .filter(|l| l.is_finite()),
        );
        if !loads.is_empty() {
            line(format!(
                "  machine load (1-min average at cycle ends): min {:.1}, median {:.1}, max {:.1}",
                loads[0],
                median(&loads),
                loads[loads.len() - 1]
            ));
        }

        let mut resources = |label: &str, warm: Resources, end: Resources| {
            line(format!("harness process, {label}:"));
            line(growth_line("RSS", warm.rss_mib(), end.rss_mib(), "MiB", 1));
            line(growth_line(
                "open fds",
                warm.fds as f64,
                end.fds as f64,
                "",
                0,
            ));
            line(growth_line(
                "  of which sockets",
                warm.sockets as f64,
                end.sockets as f64,
                "",
                0,
            ));
            line(growth_line(
                "threads",
                warm.threads as f64,
                end.threads as f64,
                "",
                0,
            ));
            line(growth_line(
                "live tokio tasks",
                warm.tasks as f64,
                end.tasks as f64,
                "",
                0,
            ));
        };
        match self.warm {
            Some((warm_now, warm_settled)) => {
                resources(
                    &format!("right after cycle {WARM_CYCLE} -> right after the last cycle"),
                    warm_now,
                    self.end.0,
                );
                resources(
                    &format!(
                        "after {} s idle: cycle {WARM_CYCLE} -> end",
                        SETTLE.as_secs()
                    ),
                    warm_settled,
                    self.end.1,
                );
            }
            None => line(format!(
                "harness process: no warm sample (fewer than {WARM_CYCLE} cycles); at the end: RSS {:.1} MiB, {} fds, {} threads, {} tasks",
                self.end.1.rss_mib(),
                self.end.1.fds,
                self.end.1.threads,
                self.end.1.tasks
            )),
        }
        if !self.trend.is_empty() {
            line(
                "trend (right after cycle N): cycle rss_MiB fds sockets threads tasks".to_string(),
            );
            let step = (self.trend.len() / 10).max(1);
            for (i, (n, r)) in self.trend.iter().enumerate() {
                if i % step == 0 || i + 1 == self.trend.len() {
                    line(format!(
                        "  {n:>5} {:>7.1} {:>4} {:>4} {:>4} {:>5}",
                        r.rss_mib(),
                        r.fds,
                        r.sockets,
                        r.threads,
                        r.tasks
                    ));
                }
            }
        }
        for l in self.faults.print().lines() {
            line(l.to_string());
        }
        let clean = failed.is_empty()
            && leaky.is_empty()
            && dir_cycles == 0
            && self.dirs_at_end.is_empty()
            && self.final_leak == (0, 0)
            && self.faults.clean();
        line(format!(
            "verdict: {}",
            if clean {
                "no leaked containers, networks or dirs; no failed cycles"
            } else {
                "PROBLEMS FOUND (see above)"
            }
        ));
        print!("{out}");
        clean
    }
}

async fn soak(cycles_wanted: usize) -> Res<bool> {
    let handle = tokio::runtime::Handle::current();
    // No idle pooling in the harness's own client: fds then reflect the library alone.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(10))
        .build()?;
    let bin = cargo_bin("demo-app")?;
    let started = Instant::now();

    // Warm-up (cycle 0): builds the image, with an environment of the same name, and proves
    // the scenario works before the measured cycles.
    let t = Instant::now();
    let image = {
        let env = Environment::builder().name(ENV_NAME).build().await?;
        let image = HostImage::new("e2ekit-soak/demo-app")
            .binary(&bin)
            .build(&env)
            .await?;
        let apps = services(&env, &image)?;
        let refs: Vec<&dyn AsRunnable> = apps.iter().map(|a| a as &dyn AsRunnable).collect();
        start_and_wait_ready(&refs).await?;
        get_each(&http, &apps).await?;
        env.close().await;
        image
    };
    let warmup = t.elapsed();
    let (c, n) = leftovers(ENV_NAME).await?;
    if c + n > 0 {
        eprintln!("soak: warm-up cycle leaked {c} containers, {n} networks");
    }

    let mut cycles: Vec<Cycle> = Vec::with_capacity(cycles_wanted);
    let mut warm = None;
    let mut trend = Vec::new();
    let mut interrupted = false;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    for index in 1..=cycles_wanted {
        let mut cycle = Cycle {
            index,
            teardown: if index % DROP_EVERY == 0 {
                Teardown::Drop
            } else {
                Teardown::Close
            },
            killed: index % KILL_EVERY == 0,
            total: Duration::ZERO,
            build: Duration::ZERO,
            ready: Duration::ZERO,
            restart: None,
            teardown_time: Duration::ZERO,
            leaked_containers: 0,
            leaked_networks: 0,
            leftover_dir: false,
            load1: f64::NAN,
            error: None,
        };
        let t = Instant::now();
        let result = tokio::select! {
            r = tokio::time::timeout(CYCLE_TIMEOUT, run_cycle(index, &image, &http, &mut cycle)) => r,
            _ = &mut ctrl_c => {
                interrupted = true;
                Ok(Err(BoxError::from("interrupted by Ctrl-C")))
            }
        };
        cycle.total = t.elapsed();
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => cycle.error = Some(e.to_string()),
            Err(_) => cycle.error = Some(format!("hang: cycle exceeded {CYCLE_TIMEOUT:?}")),
        }
        match leftovers(ENV_NAME).await {
            Ok((c, n)) => {
                cycle.leaked_containers = c;
                cycle.leaked_networks = n;
            }
            Err(e) => {
                cycle.error.get_or_insert(format!("leak check failed: {e}"));
            }
        }
        cycle.leftover_dir = !leftover_dirs().is_empty();
        cycle.load1 = load1();
        if let Some(e) = &cycle.error {
            eprintln!("soak: cycle {index} failed: {e}");
        }
        if cycle.leaked_containers + cycle.leaked_networks > 0 || cycle.leftover_dir {
            eprintln!(
                "soak: cycle {index} ({:?}{}) left {} containers, {} networks, shared dir: {}",
                cycle.teardown,
                if cycle.killed { ", kill" } else { "" },
                cycle.leaked_containers,
                cycle.leaked_networks,
                cycle.leftover_dir
            );
        }
        let total = cycle.total;
        cycles.push(cycle);
        if interrupted {
            break;
        }
        if index % 10 == 0 {
            let r = Resources::sample(&handle);
            trend.push((index, r));
            eprintln!(
                "soak: {index}/{cycles_wanted} last {:.0} ms; rss {:.1} MiB, fds {} ({} sockets), threads {}, tasks {}",
                ms(total),
                r.rss_mib(),
                r.fds,
                r.sockets,
                r.threads,
                r.tasks
            );
        }
        if index == WARM_CYCLE {
            let now = Resources::sample(&handle);
            tokio::time::sleep(SETTLE).await;
            warm = Some((now, Resources::sample(&handle)));
        }
    }
    let end_now = Resources::sample(&handle);
    tokio::time::sleep(SETTLE).await;
    let end_settled = Resources::sample(&handle);
    let final_leak = leftovers(ENV_NAME).await?;
    if let Some(path) = std::env::var_os("E2EKIT_SOAK_CSV") {
        let mut text = format!("{}\n", Cycle::csv_header());
        for c in &cycles {
            text.push_str(&c.csv());
            text.push('\n');
        }
        if let Err(e) = std::fs::write(&path, text) {
            eprintln!(
                "soak: writing {}: {e}",
                std::path::Path::new(&path).display()
            );
        }
    }

    let faults = if interrupted {
        faults::FaultReport::default()
    } else {
        faults::run(fault_cycles(), &bin).await?
    };

    let report = Report {
        faults,
        requested: cycles_wanted,
        warmup,
        warm,
        end: (end_now, end_settled),
        trend,
        dirs_at_end: leftover_dirs(),
        final_leak,
        interrupted,
        elapsed: started.elapsed(),
        cycles,
    };
    Ok(report.print())
}

/// `E2EKIT_SOAK_FAULT_CYCLES`, default 20.
fn fault_cycles() -> usize {
    std::env::var("E2EKIT_SOAK_FAULT_CYCLES")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(20)
}

fn main() {
    // `cargo bench` passes `--bench`; there is nothing to filter.
    if std::env::args().any(|a| a == "--list") {
        println!("soak: bench");
        return;
    }
    let cycles = match std::env::var("E2EKIT_SOAK_CYCLES") {
        Ok(v) if !v.trim().is_empty() => match v.trim().parse::<usize>() {
            Ok(n) if n > 0 => n,
            _ => {
                eprintln!("E2EKIT_SOAK_CYCLES={v:?} is not a positive number");
                std::process::exit(2);
            }
        },
        _ => DEFAULT_CYCLES,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(soak(cycles)) {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("soak: {e}");
            std::process::exit(1);
        }
    }
}
