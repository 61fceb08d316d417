//! The standalone demo: three `demo-app` replicas, a load generator hitting them, and
//! Prometheus monitoring every service and container, all on a private network, with every
//! image built locally (no registry needed). It prints the URLs to poke at, a live line of
//! request rates per replica, and when you open the printed "finish" URL or press Ctrl-C it
//! writes a chart of the run and removes everything.
//!
//! ```text
//! cargo run --example standalone
//! E2EKIT_DEMO_SECONDS=20 cargo run --example standalone   # unattended: finish after 20 s
//! E2EKIT_DEMO_OBSERVE=1 cargo run --example standalone    # plus tracing and profiling
//! ```
//! Other settings: `E2EKIT_DEMO_CHART` (chart path, default `e2ekit-demo.png` in the system
//! temp dir), `E2EKIT_DEMO_NAME` (environment name, default `e2ekit-demo`).
//!
//! Observe mode (`E2EKIT_DEMO_OBSERVE` set to anything but `0`) also runs a Jaeger, to which
//! services that export traces send them over OTLP, and continuous profiling: a Parca that
//! collects the pprof profiles of every profiled runnable (`Observable` / `Profiled`), itself
//! included. These two run their official images (`jaegertracing/all-in-one`,
//! `ghcr.io/parca-dev/parca`), so observe mode needs registry access.

use std::time::{Duration, SystemTime};

use e2ekit::interactive::FinishEndpoint;
use e2ekit::monitoring::chart::Chart;
use e2ekit::prelude::*;
use e2ekit::profiling::Profiled;

const REPLICAS: usize = 3;

#[tokio::main]
async fn main() -> Result<()> {
    let limit = std::env::var("E2EKIT_DEMO_SECONDS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .map(Duration::from_secs);
    let chart_path = std::env::var_os("E2EKIT_DEMO_CHART")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("e2ekit-demo.png"));
    let name = std::env::var("E2EKIT_DEMO_NAME").unwrap_or_else(|_| "e2ekit-demo".to_string());
    let observe = std::env::var("E2EKIT_DEMO_OBSERVE").is_ok_and(|v| !v.is_empty() && v != "0");

    let env = Environment::builder().name(name).build().await?;
    let image = HostImage::new("e2ekit/demo-app")
        .binary(cargo_bin("demo-app")?)
        .tag("latest")
        .build(&env)
        .await?;
    let demo_app = |args: Vec<String>| {
        StartOptions::new(image.clone())
            .command(Command::new("/bin/demo-app").args(args))
            .readiness(HttpProbe::new("http", "/ready"))
    };

    // Replicas are linked by their internal endpoints before anything starts.
    let mut replicas = Vec::new();
    let mut targets = Vec::new();
    for i in 1..=REPLICAS {
        let name = format!("app-{i}");
        let future = env
            .runnable(name.clone())
            .with_ports([("http", 8080)])
            .future()?;
        targets.push(future.internal_endpoint("http")?);
        let args = vec!["--listen".into(), ":8080".into(), "--name".into(), name];
        replicas.push(Instrumented::new(future.init(demo_app(args))?, "http")?);
    }
    let loadgen = env
        .runnable("loadgen")
        .with_ports([("http", 8080)])
        .init(demo_app(vec![
            "--listen".into(),
            ":8080".into(),
            "--load-targets".into(),
            targets.join(","),
            "--load-interval-ms".into(),
            "20".into(),
        ]))?;
    let loadgen = Instrumented::new(loadgen, "http")?;

    let monitoring = monitoring::start_with(
        &env,
        MonitoringOptions::new().scrape_interval(Duration::from_secs(1)),
    )
    .await?;
    let observers = if observe {
        let jaeger = db::jaeger(&env, "tracing", db::Options::new())?;
        start_and_wait_ready(&[&jaeger]).await?;
        let profiling = profiling::start(&env).await?;
        // Parca serves pprof handlers too: profiling itself, its UI has data at once.
        Profiled::new(profiling.parca().runnable().clone(), "http")?;
        Some((jaeger, profiling))
    } else {
        None
    };
    // Replicas first: a load generator started beside them would see refused requests
    // until each replica is ready.
    let all: Vec<&dyn AsRunnable> = replicas.iter().map(|r| r as &dyn AsRunnable).collect();
    start_and_wait_ready(&all).await?;
    start_and_wait_ready(&[&loadgen]).await?;
    let started = SystemTime::now();

    println!("\nEnvironment {:?} is up:", env.name());
    println!("  Prometheus  {}/graph", monitoring.ui_url()?);
    for r in replicas.iter().chain([&loadgen]) {
        let url = format!("http://{}", r.endpoint("http")?);
        println!("  {:<10}  {url}/  (metrics: {url}/metrics)", r.name());
    }
    if let Some((jaeger, profiling)) = &observers {
        println!("  Profiling   {}", profiling.ui_url()?);
        println!(
            "  Jaeger      http://{}  (OTLP gRPC inside the network: {})",
            jaeger.endpoint("http.front")?,
            jaeger.internal_endpoint("otlp.grpc")?
        );
    }
    let finish = FinishEndpoint::bind(0).await?;
    println!(
        "Open {} (or press Ctrl-C) to finish and clean up.\n",
        finish.url()
    );

    let waiting = finish.wait(limit);
    tokio::pin!(waiting);
    let finished = loop {
        tokio::select! {
            finished = &mut waiting => break finished?,
            _ = tokio::time::sleep(Duration::from_secs(2)) => print_rates(&monitoring).await,
        }
    };
    println!("Finished ({finished:?}).");

    let end = SystemTime::now();
    let step = Duration::from_secs(1);
    let range = |q: &'static str| monitoring.range_query(q, started, end, step);
    Chart::new(format!("e2ekit demo: {} replicas under load", REPLICAS))
        .panel(
            "request rate per replica",
            "req/s",
            range(r#"sum by (job) (rate(demo_requests_total{job=~"app-.*"}[5s]))"#).await?,
        )
        .panel(
            "CPU per container",
            "cores",
            range("sum by (name) (rate(container_cpu_usage_seconds_total[5s]))").await?,
        )
        .panel(
            "memory working set per container",
            "bytes",
            range("sum by (name) (container_memory_working_set_bytes)").await?,
        )
        .write_png(&chart_path)?;
    println!("Chart of the run: {}", chart_path.display());
    env.close().await;
    println!("Cleaned up.");
    Ok(())
}

/// One line: requests per second per replica, as Prometheus sees them.
async fn print_rates(monitoring: &Monitoring) {
    match monitoring
        .instant_query(r#"sum by (job) (rate(demo_requests_total{job=~"app-.*"}[5s]))"#)
        .await
    {
        Ok(mut samples) => {
            samples.sort_by(|a, b| a.labels.get("job").cmp(&b.labels.get("job")));
            let line: Vec<String> = samples
                .iter()
                .map(|s| {
                    let job = s.labels.get("job").map(String::as_str).unwrap_or("?");
                    format!("{job} {:.1}/s", s.value)
                })
                .collect();
            if line.is_empty() {
                println!("requests: (waiting for the first scrapes)");
            } else {
                println!("requests: {}", line.join(" | "));
            }
        }
        Err(e) => println!("requests: query failed: {e}"),
    }
}
