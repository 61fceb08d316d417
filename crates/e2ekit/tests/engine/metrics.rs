//! Instrumented runnables and metric waits against demo-app and a static metrics server.

use std::time::Duration;

use e2ekit::prelude::*;

use crate::common;

fn short(timeout_ms: u64) -> MetricsOptions {
    MetricsOptions::new().wait(WaitPolicy::timeout(Duration::from_millis(timeout_ms)))
}

async fn get(app: &Instrumented, path: &str) {
    let url = format!("http://{}{path}", app.endpoint("http").expect("endpoint"));
    let status = reqwest::get(&url).await.expect("request").status();
    assert!(status.as_u16() < 600, "{url}: {status}");
}

#[tokio::test]
async fn demo_app_counters_gauges_and_histograms() -> Result<()> {
    let env = Environment::builder()
        .name("e2ekit-t-metrics")
        .build()
        .await?;
    let app = Instrumented::new(common::demo_runnable(&env, "app", &[]).await?, "http")?;
    start_and_wait_ready(&[&app]).await?;
    assert!(app
        .metrics()
        .await?
        .contains("# TYPE demo_requests_total counter"));
    app.wait_sum_metrics(equals(0.0), ["demo_requests_total"])
        .await?;

    for _ in 0..3 {
        get(&app, "/work").await;
    }
    get(&app, "/work?code=500").await;
    get(&app, "/work?code=503").await;
    app.wait_sum_metrics(greater_or_equal(5.0), ["demo_requests_total"])
        .await?;
    let by = |m: Matcher| MetricsOptions::new().label_matchers([m]);
    assert_eq!(
        app.sum_metrics(["demo_requests_total"], by(Matcher::equal("code", "200")))
            .await?,
        [3.0]
    );
    assert_eq!(
        app.sum_metrics(
            ["demo_requests_total"],
            by(Matcher::not_equal("code", "200"))
        )
        .await?,
        [2.0]
    );
    assert_eq!(
        app.sum_metrics(["demo_requests_total"], by(Matcher::regex("code", "5..")))
            .await?,
        [2.0]
    );
    // Anchored like Prometheus: "5" alone matches no code.
    let anchored = app
        .sum_metrics(
            ["demo_requests_total"],
            by(Matcher::regex("code", "5")).skip_missing_metrics(),
        )
        .await?;
    assert_eq!(anchored, [0.0]);
    assert_eq!(
        app.sum_metrics(
            ["demo_requests_total"],
            by(Matcher::not_regex("code", "50."))
        )
        .await?,
        [3.0]
    );
    let two = MetricsOptions::new().label_matchers([
        Matcher::equal("handler", "/work"),
        Matcher::regex("code", "50[03]"),
    ]);
    app.wait_sum_metrics_with(equals(2.0), ["demo_requests_total"], two)
        .await?;

    // Histogram: sum by default, count on request.
    get(&app, "/work?sleep_ms=30").await;
    let count = app
        .sum_metrics(
            ["demo_request_duration_seconds"],
            MetricsOptions::new().metric_count(),
        )
        .await?;
    assert_eq!(count, [6.0]);
    let sum = app
        .sum_metrics(["demo_request_duration_seconds"], MetricsOptions::new())
        .await?;
    assert!(
        sum[0] >= 0.03,
        "histogram sum {sum:?} includes the 30 ms request"
    );

    // Gauges, several metrics at once, expectations among two, closures.
    get(&app, "/set?value=2.5").await;
    app.wait_sum_metrics(between(2.0, 3.0), ["demo_value"])
        .await?;
    app.wait_sum_metrics(less(3.0), ["demo_value"]).await?;
    app.wait_sum_metrics(greater(2.0), ["demo_value"]).await?;
    app.wait_sum_metrics(greater_among_two(), ["demo_requests_total", "demo_value"])
        .await?;
    app.wait_sum_metrics(less_among_two(), ["demo_value", "demo_requests_total"])
        .await?;
    app.wait_sum_metrics(equals_among_two(), ["demo_app_ready", "demo_app_ready"])
        .await?;
    app.wait_sum_metrics(
        Expectation::from(|s: &[f64]| s[0] + s[1] == 3.5),
        ["demo_value", "demo_app_ready"],
    )
    .await?;
    env.close().await;
    Ok(())
}

#[tokio::test]
async fn failures_explain_themselves() -> Result<()> {
    let env = Environment::builder()
        .name("e2ekit-t-metricerr")
        .build()
        .await?;
    let app = Instrumented::new(common::demo_runnable(&env, "app", &[]).await?, "http")?;
    start_and_wait_ready(&[&app]).await?;

    let err = app
        .sum_metrics(["nope_total"], MetricsOptions::new())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::MetricMissing { .. }), "{err}");
    assert!(
        err.to_string().contains("wait_missing_metrics()"),
        "the error teaches the fix: {err}"
    );
    assert_eq!(
        app.sum_metrics(["nope_total"], MetricsOptions::new().skip_missing_metrics())
            .await?,
        [0.0]
    );
    let err = app
        .wait_sum_metrics(equals(1.0), ["nope_total"])
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::MetricMissing { .. }),
        "without an option a missing metric fails at once: {err}"
    );

    let opts = short(300).label_matchers([Matcher::equal("code", "200")]);
    let err = app
        .wait_sum_metrics_with(greater(50.0), ["demo_requests_total"], opts)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::MetricsWait(_)), "{text}");
    for part in [
        "\"demo_requests_total\"",
        "{code=\"200\"}",
        "> 50",
        "last sums seen: [0.0]",
        "runnable \"app\"",
    ] {
        assert!(text.contains(part), "missing {part:?} in: {text}");
    }
    let err = app
        .wait_sum_metrics_with(
            equals(1.0),
            ["nope_total"],
            short(200).wait_missing_metrics(),
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("last error: metric \"nope_total\""),
        "{err}"
    );

    let err = app
        .wait_sum_metrics(greater_among_two(), ["demo_value"])
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidArgument(_)),
        "arity mismatch: {err}"
    );
    let err = app
        .sum_metrics(
            ["demo_value"],
            MetricsOptions::new().label_matchers([Matcher::regex("code", "(")]),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidMatcher { .. }),
        "invalid regex: {err}"
    );
    let err = Instrumented::new(app.runnable().clone(), "metrics").unwrap_err();
    assert!(matches!(err, Error::UnknownPort { .. }), "{err}");

    app.stop().await?;
    let err = app
        .wait_sum_metrics(equals(0.0), ["demo_value"])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotRunning { .. }), "{err}");
    env.close().await;
    Ok(())
}

#[tokio::test]
async fn static_server_content_changes_while_waiting() -> Result<()> {
    let env = Environment::builder()
        .name("e2ekit-t-static")
        .build()
        .await?;
    let server = StaticMetricsServer::start(&env, "fake", "# TYPE up gauge\nup 0\n").await?;
    server.wait_sum_metrics(equals(0.0), ["up"]).await?;

    let waiter = {
        let server = server.clone();
        tokio::spawn(async move {
            server
                .wait_sum_metrics_with(
                    equals(3.0),
                    ["jobs_total"],
                    MetricsOptions::new().wait_missing_metrics(),
                )
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.set("# TYPE jobs_total counter\njobs_total{job=\"a\"} 1\njobs_total{job=\"b\"} 2\n")?;
    waiter.await.expect("waiter task")?;

    server.set("# TYPE other gauge\nother 1\n")?;
    server
        .wait_removed_metric("jobs_total", MetricsOptions::new())
        .await?;

    // NaN equals NaN; +Inf and escaped labels parse; OpenMetrics text too.
    server.set("x NaN\ny +Inf\nz{path=\"a\\\"b\"} 4\n")?;
    server.wait_sum_metrics(equals(f64::NAN), ["x"]).await?;
    server
        .wait_sum_metrics(equals(f64::INFINITY), ["y"])
        .await?;
    let quoted = MetricsOptions::new().label_matchers([Matcher::equal("path", "a\"b")]);
    server
        .wait_sum_metrics_with(equals(4.0), ["z"], quoted)
        .await?;
    server.set("# TYPE req counter\nreq_total 7\n# TYPE lat summary\nlat{quantile=\"0.5\"} 1\nlat_sum 9\nlat_count 3\n# EOF\n")?;
    server.wait_sum_metrics(equals(7.0), ["req_total"]).await?;
    server.wait_sum_metrics(equals(9.0), ["lat"]).await?;
    assert_eq!(
        server
            .sum_metrics(["lat"], MetricsOptions::new().metric_count())
            .await?,
        [3.0]
    );

    server.set("good 1\nbroken{ 2\n")?;
    let err = server
        .sum_metrics(["good"], MetricsOptions::new())
        .await
        .unwrap_err();
    // The parse error naming the line is the cause, in the whole report.
    let text = err.report();
    assert!(
        matches!(err, Error::MetricsFetch { .. }) && text.contains("line 2"),
        "{text}"
    );

    // Another path on the same server, put there through the engine (on a remote engine or a
    // swarm the shared directory is the server's own copy).
    let other = server.dir().join("www").join("other");
    server
        .copy_to(CopyFile::bytes(
            b"alt 5\n".to_vec(),
            other.display().to_string(),
        ))
        .await?;
    let alt = server.instrumented().clone().metrics_path("/other");
    alt.wait_sum_metrics(equals(5.0), ["alt"]).await?;
    env.close().await;
    Ok(())
}

#[tokio::test]
async fn composite_sums_across_instances() -> Result<()> {
    let env = Environment::builder()
        .name("e2ekit-t-composite")
        .build()
        .await?;
    let a = Instrumented::new(common::demo_runnable(&env, "a", &[]).await?, "http")?;
    let b = Instrumented::new(common::demo_runnable(&env, "b", &[]).await?, "http")?;
    start_and_wait_ready(&[&a, &b]).await?;
    get(&a, "/work").await;
    get(&b, "/work").await;
    get(&b, "/work").await;
    let both = CompositeInstrumented::new([a.clone(), b.clone()]);
    both.wait_sum_metrics(equals(3.0), ["demo_requests_total"])
        .await?;
    assert_eq!(
        both.sum_metrics(
            ["demo_requests_total", "demo_app_ready"],
            MetricsOptions::new()
        )
        .await?,
        [3.0, 2.0]
    );
    env.close().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_composite_wait_outlasts_a_replica_restart() -> Result<()> {
    let env = Environment::builder()
        .name("e2ekit-t-composite-restart")
        .build()
        .await?;
    let a = Instrumented::new(common::demo_runnable(&env, "a", &[]).await?, "http")?;
    let b = Instrumented::new(common::demo_runnable(&env, "b", &[]).await?, "http")?;
    start_and_wait_ready(&[&a, &b]).await?;
    get(&a, "/set?value=3").await;
    let both = CompositeInstrumented::new([a.clone(), b.clone()]);
    // The wait starts while every replica is up, and must not fail when one of them is down
    // for a restart (it failed at once with "not running" before).
    let waiting = tokio::spawn({
        let both = both.clone();
        async move { both.wait_sum_metrics(equals(7.0), ["demo_value"]).await }
    });
    b.runnable().kill().await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !waiting.is_finished(),
        "the wait ended while b restarted: {:?}",
        waiting.await
    );
    start_and_wait_ready(&[&b]).await?;
    get(&b, "/set?value=4").await;
    waiting.await.expect("wait task")?;
    env.close().await;
    Ok(())
}

#[tokio::test]
async fn https_metrics_endpoint() -> Result<()> {
    let env = Environment::builder()
        .name("e2ekit-t-httpsmetrics")
        .build()
        .await?;
    let dir = env.shared_dir().join("tls");
    std::fs::create_dir_all(&dir).expect("mkdir");
    common::untrusted_cert(&dir);
    std::fs::write(dir.join("metrics"), "secure_total 11\n").expect("write");
    let image = HostImage::new("e2ekit-test/openssl-www")
        .binary("/usr/bin/openssl")
        .workdir(dir.display().to_string())
        .build(&env)
        .await?;
    let tls = env.runnable("tls").with_ports([("https", 8443)]).init(
        StartOptions::new(image)
            .command(Command::new("/bin/openssl").args([
                "s_server", "-accept", "8443", "-WWW", "-quiet", "-cert", "cert.pem", "-key",
                "key.pem",
            ]))
            .readiness(TcpProbe::new("https")),
    )?;
    let tls = Instrumented::new(tls, "https")?.https();
    start_and_wait_ready(&[&tls]).await?;
    tls.wait_sum_metrics(equals(11.0), ["secure_total"]).await?;
    env.close().await;
    Ok(())
}
