//! The Thanos scenario of upstream e2e's README, in Rust: two Prometheus servers scraping
//! themselves, a Thanos sidecar next to each, and a Thanos querier fanning out to both
//! sidecars, all linked by internal endpoints before anything starts.
//!
//! It shows the main moves of a scenario: start everything at once and wait until ready,
//! wait on metric values (the querier's store connections, each Prometheus' appended
//! samples), query a service's API from the test process through its host endpoint, stop
//! part of the system and wait for the rest to notice.
//!
//! ```text
//! cargo run --example thanos
//! E2EKIT_THANOS_OBSERVE=1 cargo run --example thanos   # plus tracing, monitoring, profiling
//! ```
//!
//! It runs the official images (`quay.io/prometheus/prometheus`, `quay.io/thanos/thanos`;
//! with `E2EKIT_THANOS_OBSERVE` also `jaegertracing/all-in-one` and
//! `ghcr.io/parca-dev/parca`), so the container engine needs registry access to pull them.
//!
//! With `E2EKIT_THANOS_OBSERVE` set (to anything but `0`), a Jaeger receives every Thanos
//! component's traces, monitoring and profiling follow every runnable, and once the querier
//! answered from both Prometheus servers it prints the UIs and waits until you open the printed
//! "finish" URL or press Ctrl-C; then the scenario goes on (stopping one pair) and cleans up.

use std::collections::BTreeMap;
use std::process::ExitCode;

use e2ekit::prelude::*;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> ExitCode {
    let observe = std::env::var("E2EKIT_THANOS_OBSERVE").is_ok_and(|v| !v.is_empty() && v != "0");
    let env = match Environment::builder().name("e2ekit-thanos").build().await {
        Ok(env) => env,
        Err(e) => {
            eprintln!("thanos example: cannot create the environment: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = scenario(&env, observe).await;
    env.close().await;
    match result {
        Ok(()) => {
            println!("thanos example: passed; everything is cleaned up.");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("thanos example failed: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn scenario(env: &Environment, observe: bool) -> Result<(), BoxError> {
    // Optional: a tracing backend that every Thanos component sends its traces to.
    let jaeger = if observe {
        Some(db::jaeger(env, "tracing", db::Options::new())?)
    } else {
        None
    };
    let thanos_options = |component: &str| -> Result<db::Options, BoxError> {
        let mut options = db::Options::new();
        if let Some(jaeger) = &jaeger {
            let tracing = format!(
                "type: OTLP\nconfig:\n  client_type: grpc\n  service_name: {component}\n  endpoint: {}\n  insecure: true\n  sampler_type: alwayssample\n",
                jaeger.internal_endpoint("otlp.grpc")?
            );
            options = options.flag("--tracing.config", tracing);
        }
        Ok(options)
    };

    // Two Prometheus servers scraping themselves (job "myself", external label
    // prometheus=<name>), each with a sidecar serving its data over the Store API.
    let p1 = db::prometheus(env, "prometheus-1", db::Options::new())?;
    let s1 = db::thanos_sidecar(env, "sidecar-1", &p1, thanos_options("sidecar-1")?)?;
    let p2 = db::prometheus(env, "prometheus-2", db::Options::new())?;
    let s2 = db::thanos_sidecar(env, "sidecar-2", &p2, thanos_options("sidecar-2")?)?;

    // The querier links to both sidecars through their internal endpoints, known before
    // anything runs.
    let q1 = db::thanos_querier(
        env,
        "query-1",
        [s1.internal_endpoint("grpc")?, s2.internal_endpoint("grpc")?],
        thanos_options("query-1")?,
    )?;

    let (monitoring, profiling) = if observe {
        (
            Some(monitoring::start(env).await?),
            Some(profiling::start(env).await?),
        )
    } else {
        (None, None)
    };

    let mut all: Vec<&dyn AsRunnable> = vec![&p1, &s1, &p2, &s2, &q1];
    if let Some(jaeger) = &jaeger {
        all.push(jaeger);
    }
    println!("Starting Prometheus ×2, Thanos sidecar ×2 and a Thanos querier...");
    start_and_wait_ready(&all).await?;

    // The querier's store connections metric only appears once it connected, so wait for it
    // to appear too.
    let connections = ["thanos_store_nodes_grpc_connections"];
    let wait = MetricsOptions::new()
        .wait_missing_metrics()
        .wait(WaitPolicy::timeout(Duration::from_secs(60)));
    q1.wait_sum_metrics_with(equals(2.0), connections, wait.clone())
        .await?;
    println!("The querier is connected to both sidecars.");
    // Both Prometheus servers scraped something already (the counter appears with the first
    // appended sample, so missing means "not yet").
    for p in [&p1, &p2] {
        p.wait_sum_metrics_with(
            greater(50.0),
            ["prometheus_tsdb_head_samples_appended_total"],
            wait.clone(),
        )
        .await?;
    }
    println!("Both Prometheus servers appended samples.");

    // Query through the querier, from here, at its host endpoint.
    let querier_url = format!("http://{}", q1.endpoint("http")?);
    let expected = |proms: &[&db::Prometheus]| -> Result<Vec<VectorSample>, BoxError> {
        proms
            .iter()
            .map(|p| {
                let labels = BTreeMap::from([
                    ("__name__".to_string(), "up".to_string()),
                    (
                        "instance".to_string(),
                        p.internal_endpoint(db::ACCESS_PORT)?,
                    ),
                    ("job".to_string(), "myself".to_string()),
                    ("prometheus".to_string(), p.name().to_string()),
                ]);
                Ok((labels, "1".to_string()))
            })
            .collect()
    };
    check_up(&querier_url, expected(&[&p1, &p2])?).await?;
    println!("`up` through the querier: one series per Prometheus, both up.");

    if let (Some(jaeger), Some(monitoring), Some(profiling)) = (&jaeger, &monitoring, &profiling) {
        println!("\nEverything is up; have a look:");
        println!("  Thanos querier  {querier_url}");
        println!("  Monitoring      {}", monitoring.ui_url()?);
        println!("  Profiling       {}", profiling.ui_url()?);
        println!(
            "  Jaeger          http://{}",
            jaeger.endpoint("http.front")?
        );
        interactive::run_until_endpoint_hit().await?;
    }

    // Stop the first Prometheus and its sidecar; the querier notices and answers from the
    // second one only.
    s1.stop().await?;
    p1.stop().await?;
    q1.wait_sum_metrics_with(equals(1.0), connections, wait)
        .await?;
    println!("The querier dropped the stopped sidecar.");
    check_up(&querier_url, expected(&[&p2])?).await?;
    println!("`up` through the querier: only prometheus-2 is left.");
    Ok(())
}

/// One series of an instant vector: its labels and its value as Prometheus renders it.
type VectorSample = (BTreeMap<String, String>, String);

/// Queries `up` through the querier's HTTP API and compares the answer with `expected`
/// (order does not matter).
async fn check_up(querier_url: &str, mut expected: Vec<VectorSample>) -> Result<(), BoxError> {
    let mut got = instant_query(querier_url, "up").await?;
    got.sort();
    expected.sort();
    if got != expected {
        return Err(format!(
            "`up` through the querier returned\n  {got:?}\nexpected\n  {expected:?}"
        )
        .into());
    }
    Ok(())
}

/// `GET /api/v1/query?query=<promql>`: the series of an instant vector. Errors on a failed
/// query, warnings (a partial answer), or another result type.
async fn instant_query(base_url: &str, promql: &str) -> Result<Vec<VectorSample>, BoxError> {
    let url = format!("{base_url}/api/v1/query?query={promql}");
    let response = reqwest::Client::new()
        .get(&url)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    let status = response.status();
    let body = response
        .text()
        .await
        .map_err(|e| format!("GET {url}: reading the answer: {e}"))?;
    if !status.is_success() {
        return Err(format!("GET {url} answered {status}: {body}").into());
    }
    let answer: serde_json::Value =
        serde_json::from_str(&body).map_err(|e| format!("GET {url}: not JSON ({e}): {body}"))?;
    if answer["status"] != "success" {
        return Err(format!("query {promql:?} failed: {body}").into());
    }
    if answer["warnings"].as_array().is_some_and(|w| !w.is_empty()) {
        return Err(format!("query {promql:?} answered with warnings: {body}").into());
    }
    if answer["data"]["resultType"] != "vector" {
        return Err(format!("query {promql:?} is not an instant vector: {body}").into());
    }
    let results = answer["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    results
        .iter()
        .map(|series| {
            let labels = series["metric"]
                .as_object()
                .ok_or_else(|| format!("a series without labels in {body}"))?
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect();
            let value = series["value"][1]
                .as_str()
                .ok_or_else(|| format!("a series without a value in {body}"))?
                .to_string();
            Ok((labels, value))
        })
        .collect()
}
