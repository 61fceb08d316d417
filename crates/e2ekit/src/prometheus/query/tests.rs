//! The PromQL client against an in-process HTTP server answering canned Prometheus API JSON.

use std::error::Error as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;

/// What the canned server answers: HTTP status and body, given the request target (path and
/// query string) and how many requests came before.
type Handler = dyn Fn(&str, usize) -> (u16, String) + Send + Sync;

/// Serves `handler` on 127.0.0.1; returns `host:port` and the request counter.
async fn serve(
    handler: impl Fn(&str, usize) -> (u16, String) + Send + Sync + 'static,
) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address").to_string();
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let handler: Arc<Handler> = Arc::new(handler);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            let handler = handler.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(read) => request.extend_from_slice(&buf[..read]),
                    }
                }
                let text = String::from_utf8_lossy(&request);
                let target = text.split_whitespace().nth(1).unwrap_or("/").to_string();
                let (status, body) = handler(&target, n);
                let response = format!(
                    "HTTP/1.1 {status} Canned\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    (addr, calls)
}

fn ok(data: serde_json::Value) -> (u16, String) {
    (
        200,
        serde_json::json!({"status": "success", "data": data}).to_string(),
    )
}

fn vector(series: &[(&[(&str, &str)], &str)]) -> (u16, String) {
    let result: Vec<serde_json::Value> = series
        .iter()
        .map(|(labels, value)| {
            let metric: BTreeMap<&str, &str> = labels.iter().copied().collect();
            serde_json::json!({"metric": metric, "value": [1700000000.5, value]})
        })
        .collect();
    ok(serde_json::json!({"resultType": "vector", "result": result}))
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test]
async fn instant_vectors_and_scalars_come_back_typed() {
    let (addr, _) = serve(|target, _| {
        if target.contains("query=scalar") {
            ok(serde_json::json!({"resultType": "scalar", "result": [1700000000, "2"]}))
        } else {
            vector(&[
                (
                    &[("__name__", "up"), ("job", "a"), ("instance", "a:1")],
                    "1",
                ),
                (&[("job", "b")], "+Inf"),
                (&[], "NaN"),
            ])
        }
    })
    .await;
    let q = PromQl::new(&addr);
    let up = q.instant("up").await.expect("vector");
    assert_eq!(up.len(), 3);
    assert_eq!(
        up[0].labels,
        labels(&[("__name__", "up"), ("job", "a"), ("instance", "a:1")])
    );
    assert_eq!(up[0].value, 1.0);
    assert_eq!(up[0].label("job"), Some("a"));
    assert_eq!(up[0].label("nope"), None);
    assert_eq!(up[0].to_string(), r#"up{instance="a:1", job="a"} => 1"#);
    assert_eq!(up[1].value, f64::INFINITY);
    assert_eq!(up[1].to_string(), r#"{job="b"} => +Inf"#);
    assert!(up[2].value.is_nan());
    assert_eq!(up[2].to_string(), "{} => NaN");

    let two = q.instant("scalar").await.expect("scalar");
    assert_eq!(
        two,
        [Sample {
            labels: BTreeMap::new(),
            value: 2.0
        }]
    );
}

#[tokio::test]
async fn range_queries_send_the_range_and_return_series() {
    let (addr, _) = serve(|target, _| {
        assert!(
            target.starts_with("/prefix/api/v1/query_range?"),
            "{target}"
        );
        assert!(target.contains("start=1700000000.000"), "{target}");
        assert!(target.contains("end=1700000010.000"), "{target}");
        assert!(target.contains("step=0.500"), "{target}");
        ok(serde_json::json!({"resultType": "matrix", "result": [
            {"metric": {"job": "a"}, "values": [[1700000000, "1"], [1700000000.5, "3.5"]]},
        ]}))
    })
    .await;
    let q = PromQl::new(format!("http://{addr}/prefix/"));
    let start = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let series = q
        .range(
            "up",
            start,
            start + Duration::from_secs(10),
            Duration::from_millis(500),
        )
        .await
        .expect("matrix");
    assert_eq!(
        series,
        [Series {
            labels: labels(&[("job", "a")]),
            points: vec![(1_700_000_000.0, 1.0), (1_700_000_000.5, 3.5)],
        }]
    );
    assert_eq!(series[0].legend(), "job=a");
}

#[tokio::test]
async fn refused_queries_name_the_url_and_the_servers_reason() {
    let (addr, _) = serve(|_, _| {
        (
            400,
            serde_json::json!({"status": "error", "errorType": "bad_data",
                "error": "1:4: parse error: unexpected end of input"})
            .to_string(),
        )
    })
    .await;
    let err = PromQl::new(&addr)
        .instant("up{")
        .await
        .expect_err("refused");
    let text = err.to_string();
    assert!(
        matches!(&err, Error::Query { query, .. } if query == "up{"),
        "{err:?}"
    );
    assert!(
        text.contains(&format!("http://{addr}/api/v1/query")),
        "{text}"
    );
    assert!(text.contains("bad_data: 1:4: parse error"), "{text}");
    assert_eq!(err.runnable(), None);
}

#[tokio::test]
async fn unreadable_answers_keep_their_cause() {
    let (addr, _) = serve(|_, _| (502, "Bad Gateway".to_string())).await;
    let err = PromQl::new(&addr)
        .instant("up")
        .await
        .expect_err("not JSON");
    assert!(err.to_string().contains("HTTP 502"), "{err}");
    assert!(err.to_string().contains("Bad Gateway"), "{err}");
    let cause = err.source().expect("the JSON error is the source");
    assert!(cause.is::<serde_json::Error>(), "{cause:?}");
}

#[tokio::test]
async fn an_unreachable_server_is_a_query_error_with_the_http_cause() {
    // A port that was free a moment ago: nothing listens there.
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("address").to_string()
    };
    let err = PromQl::new(&addr)
        .timeout(Duration::from_secs(2))
        .instant("up")
        .await
        .expect_err("nobody listens");
    assert!(err.to_string().contains(&addr), "{err}");
    assert!(
        err.source().is_some_and(|s| s.is::<reqwest::Error>()),
        "{err:?}"
    );
}

#[tokio::test]
async fn warnings_fail_a_query_unless_allowed() {
    let (addr, _) = serve(|_, _| {
        (
            200,
            serde_json::json!({"status": "success",
                "data": {"resultType": "vector", "result": []},
                "warnings": ["store sidecar-1 unreachable"]})
            .to_string(),
        )
    })
    .await;
    let err = PromQl::new(&addr).instant("up").await.expect_err("partial");
    assert!(err.to_string().contains("partial answer"), "{err}");
    assert!(err.to_string().contains("sidecar-1 unreachable"), "{err}");
    let lenient = PromQl::new(&addr).allow_warnings();
    assert_eq!(lenient.instant("up").await.expect("allowed"), []);
}

#[tokio::test]
async fn other_result_types_are_errors_that_end_a_wait_at_once() {
    let (addr, calls) =
        serve(|_, _| ok(serde_json::json!({"resultType": "matrix", "result": []}))).await;
    let q = PromQl::new(&addr);
    let err = q.instant("up[1m]").await.expect_err("a matrix");
    assert!(err.to_string().contains("PromQl::range"), "{err}");
    let started = Instant::now();
    let err = q
        .wait(
            "up[1m]",
            |_| true,
            WaitPolicy::timeout(Duration::from_secs(30)),
        )
        .await
        .expect_err("a matrix");
    assert!(matches!(err, Error::Query { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn wait_polls_until_the_check_holds() {
    let (addr, calls) = serve(|_, n| match n {
        0 => (503, "starting".to_string()),
        1 | 2 => vector(&[(&[("job", "a")], "1")]),
        _ => vector(&[(&[("job", "a")], "1"), (&[("job", "b")], "1")]),
    })
    .await;
    let up = PromQl::new(&addr)
        .wait(
            "up",
            |up| up.len() == 2,
            WaitPolicy::timeout(Duration::from_secs(30)),
        )
        .await
        .expect("two series");
    assert_eq!(up.len(), 2);
    assert_eq!(calls.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn a_timed_out_wait_shows_the_last_answer() {
    let (addr, calls) = serve(|_, _| vector(&[(&[("job", "a")], "0")])).await;
    let started = Instant::now();
    let err = PromQl::new(&addr)
        .wait(
            "up",
            |up| up.iter().all(|s| s.value == 1.0) && !up.is_empty(),
            WaitPolicy::timeout(Duration::from_millis(300)),
        )
        .await
        .expect_err("never up");
    assert!(started.elapsed() >= Duration::from_millis(300));
    let Error::MetricsWait(failure) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(failure.metrics, ["up"]);
    assert!(failure.runnable.contains(&addr), "{err}");
    assert_eq!(
        failure.last_error.as_deref(),
        Some(r#"last answer: [{job="a"} => 0]"#)
    );
    let checks = failure.checks as usize;
    assert_eq!(checks, calls.load(Ordering::SeqCst));
    // At most every 50 ms, so a handful of checks, not hundreds.
    assert!((2..=8).contains(&checks), "{checks} checks");
}

#[test]
fn endpoints_become_base_urls() {
    assert_eq!(base_url("127.0.0.1:9090"), "http://127.0.0.1:9090");
    assert_eq!(base_url(" https://h:1/p/ "), "https://h:1/p");
    assert_eq!(
        format!("{:?}", PromQl::new("h:1")),
        r#"PromQl { url: "http://h:1", timeout: 30s, allow_warnings: false }"#
    );
}

#[test]
fn samples_print_as_promql_with_escaped_values() {
    let s = Sample {
        labels: labels(&[("__name__", "x"), ("path", "a\"b\\c\nd")]),
        value: -2.5,
    };
    assert_eq!(s.to_string(), r#"x{path="a\"b\\c\nd"} => -2.5"#);
    let bare = Sample {
        labels: labels(&[("__name__", "x")]),
        value: f64::NEG_INFINITY,
    };
    assert_eq!(bare.to_string(), "x => -Inf");
    assert_eq!(shown(&[bare.clone(), bare]), "[x => -Inf, x => -Inf]");
}

/// An environment on the in-memory engine.
async fn fake_env(fake: &crate::engine::fake::FakeEngine, name: &str) -> crate::Environment {
    crate::EnvironmentBuilder::build_on(
        Arc::new(fake.clone()),
        name.to_string(),
        true,
        Vec::new(),
        None,
        false,
    )
    .await
    .expect("an environment on the fake engine")
}

#[tokio::test]
async fn the_one_definition_on_the_fake_engine_is_queried_through_its_runnable() {
    use crate::engine::fake::{FakeEngine, Script};
    use crate::prometheus::config::PrometheusConfig;
    use crate::prometheus::server;
    use crate::spec::{Flags, StartOptions};

    let (addr, _) = serve(|target, _| {
        assert!(target.starts_with("/api/v1/query?query=up"), "{target}");
        vector(&[(&[("__name__", "up"), ("job", "myself")], "1")])
    })
    .await;
    let fake = FakeEngine::new();
    fake.script(
        "prom:1",
        Script::new().serve(9090, addr.parse().expect("address")),
    );
    let env = fake_env(&fake, "fk-promql").await;
    let prom = server::define(
        &env,
        "prom",
        StartOptions::new("prom:1"),
        &Flags::new(),
        |future| {
            Ok(PrometheusConfig::self_scraping(
                "prom",
                &future.internal_endpoint("http")?,
            ))
        },
    )
    .expect("defined");
    let config = std::fs::read_to_string(prom.config_file()).expect("config written");
    assert!(config.contains("fk-promql-prom:9090"), "{config}");
    assert_eq!(prom.config_file(), prom.dir().join("prometheus.yml"));

    // Made before the start: the endpoint is looked up at each query.
    let q = PromQl::of(&prom, "http").expect("port exists");
    let err = q.instant("up").await.expect_err("not running yet");
    assert!(matches!(err, Error::NotRunning { .. }), "{err:?}");
    assert!(matches!(
        PromQl::of(&prom, "grpc"),
        Err(Error::UnknownPort { .. })
    ));

    prom.runnable().start().await.expect("started");
    let spec = fake.spec_of("fk-promql-prom").expect("created");
    assert_eq!(spec.image, "prom:1");
    assert_eq!(spec.ports, [9090]);
    assert_eq!(spec.entrypoint, Some(vec!["prometheus".to_string()]));
    let config_flag = format!("--config.file={}", prom.config_file().display());
    assert_eq!(
        spec.cmd.as_ref().and_then(|c| c.first()),
        Some(&config_flag)
    );
    assert!(spec.user.is_some(), "the host user");
    let up = q.instant("up").await.expect("answered");
    assert_eq!(up[0].to_string(), r#"up{job="myself"} => 1"#);
    assert_eq!(prom.promql().instant("up").await.expect("answered"), up);
    assert_eq!(q.url().expect("running"), format!("http://{addr}"));
    env.close().await;
}
