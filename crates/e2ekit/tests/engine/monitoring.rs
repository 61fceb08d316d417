//! Monitoring with a real Prometheus (built from Debian's `prometheus` package; no registry).

use std::time::{Duration, SystemTime};

use e2ekit::prelude::*;

use crate::common;

fn fast() -> MonitoringOptions {
    MonitoringOptions::new().scrape_interval(Duration::from_millis(500))
}

fn policy() -> WaitPolicy {
    WaitPolicy::timeout(Duration::from_secs(30))
}

fn has_prometheus() {
    assert!(
        std::path::Path::new("/usr/bin/prometheus").is_file(),
        "these tests need Debian's prometheus package (apt-get install prometheus; .ci/run does)"
    );
}

#[tokio::test]
async fn discovers_old_and_new_runnables_and_drops_stopped_ones() -> Result<()> {
    has_prometheus();
    let env = Environment::builder()
        .name("e2ekit-t-monitoring")
        .build()
        .await?;
    let before = Instrumented::new(common::demo_runnable(&env, "before", &[]).await?, "http")?;
    start_and_wait_ready(&[&before]).await?;
    let image = e2ekit::prometheus::host_image().build(&env).await?;
    let mon = monitoring::start_with(
        &env,
        fast()
            .prometheus_image(image)
            .local_metrics(|| "e2ekit_test_marker 42\n".to_string()),
    )
    .await?;
    let after = Instrumented::new(common::demo_runnable(&env, "after", &[]).await?, "http")?;
    start_and_wait_ready(&[&after]).await?;

    let up = mon
        .wait_query(
            "up",
            |s| {
                ["before", "after", "prometheus"].iter().all(|job| {
                    s.iter().any(|x| {
                        x.labels.get("job").map(String::as_str) == Some(*job) && x.value == 1.0
                    })
                })
            },
            policy(),
        )
        .await?;
    assert!(
        up.iter().all(|s| s.labels.contains_key("instance")),
        "{up:?}"
    );

    // This process's metrics, through the environment's host address.
    let local = mon
        .wait_query("e2ekit_test_marker", |s| !s.is_empty(), policy())
        .await?;
    assert_eq!(local[0].value, 42.0);
    assert_eq!(
        local[0].labels.get("job").map(String::as_str),
        Some("local")
    );

    before.stop().await?;
    mon.wait_query("up{job=\"before\"}", |s| s.is_empty(), policy())
        .await?;
    mon.wait_query("up{job=\"after\"}", |s| s.len() == 1, policy())
        .await?;
    env.close().await;
    Ok(())
}

#[tokio::test]
async fn container_metrics_and_typed_query_results() -> Result<()> {
    has_prometheus();
    let env = Environment::builder()
        .name("e2ekit-t-containers")
        .build()
        .await?;
    let app = Instrumented::new(common::demo_runnable(&env, "app", &[]).await?, "http")?;
    start_and_wait_ready(&[&app]).await?;
    let started = SystemTime::now();
    let mon = monitoring::start_with(&env, fast()).await?; // default image: falls back to Debian's
    for name in [
        "container_cpu_usage_seconds_total",
        "container_memory_working_set_bytes",
        "container_memory_rss",
        "container_network_receive_bytes_total",
        "container_network_transmit_bytes_total",
    ] {
        let q = format!("{name}{{name=\"app\"}}");
        let samples = mon.wait_query(&q, |s| s.len() == 1, policy()).await?;
        assert_eq!(
            samples[0].labels.get("container").map(String::as_str),
            Some("e2ekit-t-containers-app"),
            "{samples:?}"
        );
    }
    let memory = mon
        .instant_query("container_memory_working_set_bytes{name=\"app\"}")
        .await?;
    assert!(memory[0].value > 0.0, "{memory:?}");
    mon.wait_query(
        "container_memory_working_set_bytes{name=\"prometheus\"}",
        |s| s.len() == 1,
        policy(),
    )
    .await?;

    let scalar = mon.instant_query("1 + 1").await?;
    assert_eq!(
        scalar,
        vec![Sample {
            labels: Default::default(),
            value: 2.0
        }]
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let series = mon
        .range_query(
            "up{job=\"app\"}",
            started,
            SystemTime::now(),
            Duration::from_millis(500),
        )
        .await?;
    assert_eq!(series.len(), 1, "{series:?}");
    assert!(
        series[0].points.len() >= 2 && series[0].points.iter().all(|(_, v)| *v == 1.0),
        "{series:?}"
    );
    let err = mon.instant_query("up{").await.unwrap_err();
    assert!(err.to_string().contains("parse error"), "{err}");
    assert!(mon.ui_url()?.starts_with("http://127.0.0.1:"));
    env.close().await;
    Ok(())
}
