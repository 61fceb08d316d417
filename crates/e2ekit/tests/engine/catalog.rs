//! Catalog entries run for real, with images built from Debian's packages in the official
//! images' layouts (no registry): each is started from the catalog with only the image
//! overridden, waited ready, and asked a real question.

use std::time::Duration;

use e2ekit::db::{self, PrometheusConfig, ScrapeConfig};
use e2ekit::prelude::*;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn need(path: &str, package: &str) {
    assert!(
        std::path::Path::new(path).is_file(),
        "this test needs {path} from Debian's {package} package (apt-get install {package}; .ci/run does)"
    );
}

async fn env(name: &str) -> Result<Environment> {
    Environment::builder().name(name).build().await
}

/// The official etcd image keeps its binary at /usr/local/bin/etcd.
async fn etcd_image(env: &Environment) -> Result<String> {
    need("/usr/bin/etcd", "etcd-server");
    HostImage::new("e2ekit-test/etcd")
        .binary_at("/usr/bin/etcd", "/usr/local/bin/etcd")
        .dir("/tmp")
        .build(env)
        .await
}

/// The official memcached image runs `memcached` from /usr/local/bin as user 11211.
async fn memcached_image(env: &Environment) -> Result<String> {
    need("/usr/bin/memcached", "memcached");
    HostImage::new("e2ekit-test/memcached")
        .binary_at("/usr/bin/memcached", "/usr/local/bin/memcached")
        .user("11211")
        .build(env)
        .await
}

async fn get_json(url: &str) -> Value {
    let response = reqwest::get(url)
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let text = response
        .text()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("GET {url}: not JSON ({e}): {text}"))
}

async fn post_json(url: &str, body: Value) -> Value {
    let response = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {url}: {e}"));
    let status = response.status();
    let text = response
        .text()
        .await
        .unwrap_or_else(|e| panic!("POST {url}: {e}"));
    assert!(status.is_success(), "POST {url} answered {status}: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("POST {url}: not JSON ({e}): {text}"))
}

/// Files the service wrote into its directory can be removed by the test's user.
fn assert_removable_by_us(dir: &std::path::Path) {
    let entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .collect();
    assert!(!entries.is_empty(), "{} is empty", dir.display());
    std::fs::remove_dir_all(dir)
        .unwrap_or_else(|e| panic!("the service's files in {} are not ours: {e}", dir.display()));
}

#[tokio::test]
async fn prometheus_scrapes_itself_and_reloads_a_new_config() -> Result<()> {
    need("/usr/bin/prometheus", "prometheus");
    let env = env("e2ekit-t-catalog-prom").await?;
    let image = e2ekit::prometheus::host_image().build(&env).await?;
    let prom = db::prometheus(&env, "prom-1", db::Options::new().image(image))?;
    start_and_wait_ready(&[&prom]).await?;

    // The counter appears with the first appended sample.
    prom.wait_sum_metrics_with(
        greater(0.0),
        ["prometheus_tsdb_head_samples_appended_total"],
        MetricsOptions::new().wait_missing_metrics(),
    )
    .await?;
    let api = format!("http://{}/api/v1", prom.endpoint(db::ACCESS_PORT)?);
    let self_target = prom.internal_endpoint(db::ACCESS_PORT)?;
    let up = get_json(&format!("{api}/query?query=up")).await;
    let series = &up["data"]["result"];
    assert_eq!(series[0]["metric"]["job"], "myself", "{up}");
    assert_eq!(
        series[0]["metric"]["instance"],
        self_target.as_str(),
        "{up}"
    );
    assert_eq!(series[0]["value"][1], "1", "{up}");
    // The same through the typed PromQL client, made for the runnable or for its endpoint.
    let typed = PromQl::of(&prom, db::ACCESS_PORT)?.instant("up").await?;
    assert_eq!(
        typed.iter().map(Sample::to_string).collect::<Vec<_>>(),
        [format!(
            r#"up{{instance="{self_target}", job="myself"}} => 1"#
        )]
    );
    let by_url = PromQl::new(prom.endpoint(db::ACCESS_PORT)?);
    assert_eq!(by_url.instant("up").await?, typed);
    let err = prom.promql().instant("up{").await.unwrap_err();
    assert!(matches!(err, Error::Query { .. }), "{err:?}");
    assert_eq!(err.runnable(), Some("prom-1"));
    assert!(err.to_string().contains("parse error"), "{err}");

    // A typed configuration while running: reloaded by SIGHUP before set_config returns.
    prom.set_config(
        &PrometheusConfig::new()
            .external_label("prometheus", "prom-1")
            .scrape(
                ScrapeConfig::new("again")
                    .interval("1s")
                    .target(&self_target),
            ),
    )
    .await?;
    let config = get_json(&format!("{api}/status/config")).await;
    let yaml = config["data"]["yaml"].as_str().unwrap_or_default();
    assert!(yaml.contains("job_name: again"), "{yaml}");
    assert!(!yaml.contains("job_name: myself"), "{yaml}");
    // Target discovery follows the reload asynchronously (Prometheus throttles it).
    let mut jobs = Vec::new();
    for _ in 0..300 {
        let targets = get_json(&format!("{api}/targets")).await;
        jobs = targets["data"]["activeTargets"]
            .as_array()
            .map(|t| {
                t.iter()
                    .filter_map(|t| t["labels"]["job"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        if !jobs.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(jobs, ["again"]);

    // Raw YAML, also applied at once.
    prom.set_config_yaml(format!(
        "scrape_configs:\n- job_name: raw\n  static_configs:\n  - targets: ['{self_target}']\n"
    ))
    .await?;
    let config = get_json(&format!("{api}/status/config")).await;
    let yaml = config["data"]["yaml"].as_str().unwrap_or_default();
    assert!(yaml.contains("job_name: raw"), "{yaml}");

    // A broken one is refused; Prometheus keeps running with the previous configuration.
    let err = prom
        .set_config_yaml("scrape_configs: [{job_name: 1, nonsense: true}]\n")
        .await
        .expect_err("an invalid configuration must be reported");
    assert!(matches!(err, Error::ConfigRejected { .. }), "{err}");
    assert!(err.to_string().contains("prom-1"), "{err}");
    let logs = err.log_tail().unwrap_or_default().join("\n");
    assert!(
        logs.contains("nonsense") || logs.contains("reload"),
        "{err}"
    );
    assert!(prom.is_running());

    prom.stop().await?;
    // Written as the host user: the test can clean the TSDB up itself.
    assert_removable_by_us(&prom.dir().join("wal"));
    env.close().await;
    Ok(())
}

#[tokio::test]
async fn prometheus_config_set_before_start_is_used_at_start() -> Result<()> {
    need("/usr/bin/prometheus", "prometheus");
    let env = env("e2ekit-t-catalog-prom-pre").await?;
    let image = e2ekit::prometheus::host_image().build(&env).await?;
    let prom = db::prometheus(
        &env,
        "prom",
        db::Options::new().image(image).flag("--log.level", "warn"),
    )?;
    let me = prom.internal_endpoint(db::ACCESS_PORT)?;
    prom.set_config(
        &PrometheusConfig::new().scrape(ScrapeConfig::new("early").interval("1s").target(me)),
    )
    .await?;
    start_and_wait_ready(&[&prom]).await?;
    let api = format!("http://{}/api/v1", prom.endpoint(db::ACCESS_PORT)?);
    let config = get_json(&format!("{api}/status/config")).await;
    let yaml = config["data"]["yaml"].as_str().unwrap_or_default();
    assert!(yaml.contains("job_name: early"), "{yaml}");
    let flags = get_json(&format!("{api}/status/flags")).await;
    assert_eq!(flags["data"]["log.level"], "warn", "{flags}");
    env.close().await;
    Ok(())
}

fn b64(input: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.as_bytes().chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[tokio::test]
async fn etcd_elects_itself_and_stores_a_key() -> Result<()> {
    let env = env("e2ekit-t-catalog-etcd").await?;
    let image = etcd_image(&env).await?;
    let etcd = db::etcd(&env, "etcd-1", db::Options::new().image(image))?;
    start_and_wait_ready(&[&etcd]).await?;
    etcd.wait_sum_metrics(equals(1.0), ["etcd_server_has_leader"])
        .await?;

    // The v3 API through etcd's JSON gateway: put, then read back.
    let base = format!("http://{}/v3/kv", etcd.endpoint(db::ACCESS_PORT)?);
    let put = post_json(
        &format!("{base}/put"),
        serde_json::json!({"key": b64("scenario"), "value": b64("e2ekit")}),
    )
    .await;
    assert!(put.get("header").is_some(), "{put}");
    let range = post_json(
        &format!("{base}/range"),
        serde_json::json!({"key": b64("scenario")}),
    )
    .await;
    assert_eq!(range["kvs"][0]["value"], b64("e2ekit"), "{range}");
    etcd.wait_sum_metrics_with(
        greater_or_equal(1.0),
        ["etcd_mvcc_put_total"],
        MetricsOptions::new().wait_missing_metrics(),
    )
    .await?;

    etcd.stop().await?;
    assert_removable_by_us(&etcd.dir().join("data"));
    env.close().await;
    Ok(())
}

async fn ask(stream: &mut tokio::net::TcpStream, request: &str, until: &str) -> String {
    stream
        .write_all(request.as_bytes())
        .await
        .unwrap_or_else(|e| panic!("sending {request:?}: {e}"));
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    while !String::from_utf8_lossy(&answer).contains(until) {
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("no answer to {request:?}; so far {answer:?}"))
            .unwrap_or_else(|e| panic!("reading the answer to {request:?}: {e}"));
        assert!(
            n > 0,
            "memcached closed the connection; answer so far {answer:?}"
        );
        answer.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn memcached_answers_its_protocol() -> Result<()> {
    let env = env("e2ekit-t-catalog-memcached").await?;
    let image = memcached_image(&env).await?;
    let mc = db::memcached(&env, "mc-1", db::Options::new().image(image.clone()))?;
    // A second one with a flag override, to see flags reach the server.
    let small = db::memcached(
        &env,
        "mc-2",
        db::Options::new().image(image).flag("-m", "32"),
    )?;
    start_and_wait_ready(&[&mc, &small]).await?;

    let mut conn = tokio::net::TcpStream::connect(mc.endpoint(db::ACCESS_PORT)?)
        .await
        .map_err(|e| Error::InvalidArgument(format!("connecting to memcached: {e}")))?;
    let version = ask(&mut conn, "version\r\n", "\r\n").await;
    assert!(version.starts_with("VERSION 1."), "{version:?}");
    assert_eq!(
        ask(&mut conn, "set k 0 0 5\r\nhello\r\n", "\r\n").await,
        "STORED\r\n"
    );
    assert_eq!(
        ask(&mut conn, "get k\r\n", "END\r\n").await,
        "VALUE k 0 5\r\nhello\r\nEND\r\n"
    );
    let stats = ask(&mut conn, "stats settings\r\n", "END\r\n").await;
    assert!(
        stats.contains("STAT maxbytes 67108864"),
        "default 64 MiB: {stats}"
    );

    let mut conn = tokio::net::TcpStream::connect(small.endpoint(db::ACCESS_PORT)?)
        .await
        .map_err(|e| Error::InvalidArgument(format!("connecting to memcached: {e}")))?;
    let stats = ask(&mut conn, "stats settings\r\n", "END\r\n").await;
    assert!(
        stats.contains("STAT maxbytes 33554432"),
        "-m 32 reached it: {stats}"
    );
    env.close().await;
    Ok(())
}
