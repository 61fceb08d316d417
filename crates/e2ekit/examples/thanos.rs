//! The Thanos scenario of upstream e2e's README, in Rust: two Prometheus servers scraping
//! themselves, a Thanos sidecar next to each, and a Thanos querier fanning out to both
//! sidecars, all linked by internal endpoints before anything starts. It waits until the
//! querier is connected to both stores, queries `up` through the querier from the test
//! process with the typed PromQL client, stops one pair, and checks that the querier noticed.
//!
//! ```text
//! cargo run --example thanos
//! ```
//!
//! It runs the official images (`quay.io/prometheus/prometheus`, `quay.io/thanos/thanos`), so
//! the container engine needs registry access to pull them. For tracing, monitoring and
//! profiling of a running scenario, see the observe mode of the standalone demo
//! (`E2EKIT_DEMO_OBSERVE=1 cargo run --example standalone`).

use e2ekit::prelude::*;

#[tokio::main]
async fn main() -> Result<()> {
    let env = Environment::builder().name("e2ekit-thanos").build().await?;
    // Two Prometheus scraping themselves, each with a sidecar serving its data (Store API).
    let p1 = db::prometheus(&env, "prometheus-1", db::Options::new())?;
    let s1 = db::thanos_sidecar(&env, "sidecar-1", &p1, db::Options::new())?;
    let p2 = db::prometheus(&env, "prometheus-2", db::Options::new())?;
    let s2 = db::thanos_sidecar(&env, "sidecar-2", &p2, db::Options::new())?;
    // The querier links to both sidecars by their internal endpoints, known before start.
    let stores = [s1.internal_endpoint("grpc")?, s2.internal_endpoint("grpc")?];
    let q1 = db::thanos_querier(&env, "query-1", stores, db::Options::new())?;
    start_and_wait_ready(&[&p1, &s1, &p2, &s2, &q1]).await?;

    // The store connections metric appears only once the querier connected.
    let connections = ["thanos_store_nodes_grpc_connections"];
    let appear = MetricsOptions::new().wait_missing_metrics();
    q1.wait_sum_metrics_with(equals(2.0), connections, appear.clone())
        .await?;

    // Query `up` through the querier (from here) until both Prometheus scraped themselves.
    let promql = PromQl::of(&q1, "http")?;
    let up = promql
        .wait("up", |up| up.len() == 2, WaitPolicy::default())
        .await?;
    let mut up: Vec<String> = up.iter().map(Sample::to_string).collect();
    up.sort();
    let (i1, i2) = (p1.internal_endpoint("http")?, p2.internal_endpoint("http")?);
    let up1 = format!(r#"up{{instance="{i1}", job="myself", prometheus="prometheus-1"}} => 1"#);
    let up2 = format!(r#"up{{instance="{i2}", job="myself", prometheus="prometheus-2"}} => 1"#);
    assert_eq!(up, [up1, up2.clone()]);

    // Stop the first pair; the querier drops it and answers from the second one only.
    s1.stop().await?;
    p1.stop().await?;
    q1.wait_sum_metrics_with(equals(1.0), connections, appear)
        .await?;
    let up = promql.instant("up").await?;
    assert_eq!(up.iter().map(Sample::to_string).collect::<Vec<_>>(), [up2]);
    println!("thanos example: passed");
    env.close().await;
    Ok(())
}
