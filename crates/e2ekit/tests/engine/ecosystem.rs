//! The Prometheus ecosystem from Debian's packages, packed by `HostImage::debian_package`:
//! a Prometheus firing an always-on alert into an Alertmanager, a value pushed to a
//! Pushgateway read back through a Prometheus query, and the node exporter.

use std::time::Duration;

use e2ekit::db::{PrometheusConfig, ScrapeConfig};
use e2ekit::prelude::*;

/// An image of an installed Debian package with its server binary where the official image
/// has it (`/bin/<name>`).
async fn package_image(env: &Environment, package: &str, binary: &str, at: &str) -> Result<String> {
    HostImage::debian_package(format!("e2ekit-test/{package}"), package)
        .unwrap_or_else(|e| panic!("{e} (cargo xtask test installs it)"))
        .symlink(at, binary)
        .build(env)
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_alerts_into_alertmanager_and_reads_a_pushed_value() -> Result<()> {
    let env = Environment::builder()
        .name("e2ekit-t-ecosystem")
        .build()
        .await?;
    let am_image = package_image(
        &env,
        "prometheus-alertmanager",
        "/usr/bin/prometheus-alertmanager",
        "/bin/alertmanager",
    )
    .await?;
    let pgw_image = package_image(
        &env,
        "prometheus-pushgateway",
        "/usr/bin/prometheus-pushgateway",
        "/bin/pushgateway",
    )
    .await?;
    let node_image = package_image(
        &env,
        "prometheus-node-exporter",
        "/usr/bin/prometheus-node-exporter",
        "/bin/node_exporter",
    )
    .await?;
    let prom_image = e2ekit::prometheus::host_image().build(&env).await?;

    let am = db::alertmanager(&env, "am", db::Options::new().image(am_image))?;
    let pgw = db::pushgateway(&env, "pgw", db::Options::new().image(pgw_image))?;
    let node = db::node_exporter(&env, "node", db::Options::new().image(node_image))?;
    let prom = db::prometheus(&env, "prom", db::Options::new().image(prom_image))?;
    std::fs::write(
        prom.runnable().dir().join("rules.yml"),
        "groups:\n  - name: always\n    rules:\n      - alert: AlwaysFiring\n        expr: vector(1)\n",
    )
    .expect("writing the rule file");
    prom.set_config(
        &PrometheusConfig::self_scraping("prom", &prom.internal_endpoint(db::ACCESS_PORT)?)
            .evaluation_interval("1s")
            .rule_file(
                prom.runnable()
                    .dir()
                    .join("rules.yml")
                    .display()
                    .to_string(),
            )
            .alertmanager(am.internal_endpoint(db::ACCESS_PORT)?)
            .scrape(
                ScrapeConfig::new("pushgateway")
                    .interval("1s")
                    .honor_labels()
                    .target(pgw.internal_endpoint(db::ACCESS_PORT)?),
            )
            .scrape(
                ScrapeConfig::new("node")
                    .interval("1s")
                    .target(node.internal_endpoint(db::ACCESS_PORT)?),
            ),
    )
    .await?;
    start_and_wait_ready(&[&am, &pgw, &node, &prom]).await?;

    // The always-on alert reaches the Alertmanager.
    am.wait_sum_metrics_with(
        greater_or_equal(1.0),
        ["alertmanager_alerts"],
        MetricsOptions::new()
            .label_matchers([Matcher::equal("state", "active")])
            .wait_missing_metrics(),
    )
    .await
    .unwrap_or_else(|e| panic!("the alert never reached the Alertmanager: {}", e.report()));

    // A value pushed to the Pushgateway comes back through a Prometheus query, with the
    // pushed job label kept (honor_labels).
    let url = format!(
        "http://{}/metrics/job/batch",
        pgw.endpoint(db::ACCESS_PORT)?
    );
    let pushed = reqwest::Client::new()
        .post(&url)
        .body("e2ekit_pushed_value 42\n")
        .send()
        .await
        .expect("pushing to the pushgateway");
    assert!(
        pushed.status().is_success(),
        "push answered {}",
        pushed.status()
    );
    let samples = prom
        .promql()
        .wait(
            "e2ekit_pushed_value",
            |s| !s.is_empty(),
            WaitPolicy::timeout(Duration::from_secs(30)),
        )
        .await?;
    assert_eq!(samples.len(), 1, "{samples:?}");
    assert_eq!(samples[0].value, 42.0);
    assert_eq!(
        samples[0].labels.get("job").map(String::as_str),
        Some("batch")
    );

    // The node exporter is scraped too.
    prom.promql()
        .wait(
            r#"up{job="node"}"#,
            |s| s.iter().any(|x| x.value == 1.0),
            WaitPolicy::timeout(Duration::from_secs(30)),
        )
        .await?;
    node.wait_sum_metrics(greater(0.0), ["node_cpu_seconds_total"])
        .await?;
    env.close().await;
    Ok(())
}

#[tokio::test]
async fn a_package_that_is_not_installed_is_a_clear_error() {
    let err = HostImage::debian_package("x/y", "e2ekit-no-such-package").expect_err("missing");
    assert!(
        err.to_string()
            .contains("apt-get install e2ekit-no-such-package"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_pushed_to_the_scenarios_registry_is_pulled_back() -> Result<()> {
    let env = Environment::builder()
        .name("e2ekit-t-registry")
        .build()
        .await?;
    let registry_image = package_image(
        &env,
        "docker-registry",
        "/usr/bin/docker-registry",
        "/bin/registry",
    )
    .await?;
    let registry = db::registry(&env, "registry", db::Options::new().image(registry_image))?;
    start_and_wait_ready(&[&registry]).await?;

    let local = crate::common::busybox(&env).await?;
    let pushed = registry.push(&local).await?;
    assert!(
        pushed.starts_with(&format!("{}/e2ekit-test/busybox:", registry.address()?)),
        "{pushed}"
    );
    // The registry saw the push.
    registry
        .wait_sum_metrics_with(
            greater(0.0),
            ["registry_http_requests_total"],
            MetricsOptions::new()
                .label_matchers([Matcher::equal("method", "put")])
                .wait_missing_metrics(),
        )
        .await?;

    // Only the registry has it now: the local tag goes, and a start pulls it back.
    let removed = std::process::Command::new("docker")
        .args(["image", "rm", &pushed])
        .output()
        .expect("the docker CLI");
    assert!(
        removed.status.success(),
        "{}",
        String::from_utf8_lossy(&removed.stderr)
    );
    let app = env.runnable("pulled").init(
        StartOptions::new(&pushed)
            .command(Command::new("sh").args(["-c", "echo pulled-and-running; exec sleep 60"]))
            .readiness(LogProbe::contains("pulled-and-running")),
    )?;
    start_and_wait_ready(&[&app]).await?;
    let pulls = registry
        .sum_metrics(
            ["registry_http_requests_total"],
            MetricsOptions::new().label_matchers([Matcher::equal("method", "get")]),
        )
        .await?;
    assert!(pulls[0] > 0.0, "the start pulled from the registry");

    // A reference to nothing in the registry: a clear error naming the runnable.
    let missing = env.runnable("missing").init(StartOptions::new(format!(
        "{}/e2ekit-test/nothing:here",
        registry.address()?
    )))?;
    let err = missing.start().await.expect_err("not in the registry");
    assert!(
        matches!(&err, Error::ImageNotFound { runnable, .. } if runnable == "missing"),
        "{err}"
    );

    env.close().await;
    let _ = std::process::Command::new("docker")
        .args(["image", "rm", &pushed])
        .output();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_from_its_debian_packages_answers_a_query() -> Result<()> {
    let env = Environment::builder()
        .name("e2ekit-t-postgres")
        .build()
        .await?;
    // The server, its client, time zones; /bin/sh because initdb runs commands through it.
    let image = HostImage::debian_package("e2ekit-test/postgres", "postgresql-15")
        .unwrap_or_else(|e| panic!("{e} (Debian's postgresql-15)"))
        .with_debian_package("postgresql-client-15")?
        .with_debian_package("tzdata")?
        .binary_at("/bin/busybox", "/bin/sh")
        .env("PATH", "/usr/lib/postgresql/15/bin:/usr/bin:/bin")
        .build(&env)
        .await?;
    let pg = env.runnable("pg").with_ports([("sql", 5432)]).future()?;
    let data = pg.dir().join("pgdata");
    let script = format!(
        "initdb -D {d} --locale=C -E UTF8 -A trust -U postgres >/dev/null && exec postgres -D {d} -k /tmp -c listen_addresses='*'",
        d = data.display()
    );
    let pg = pg.init(
        StartOptions::new(image)
            .user("postgres")
            .command(Command::new("/bin/sh").args(["-c", &script]))
            .readiness(LogProbe::contains(
                "database system is ready to accept connections",
            )),
    )?;
    start_and_wait_ready(&[&pg]).await?;
    let out = pg
        .exec(Command::new("psql").args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-tAc",
            "select 40 + 2",
        ]))
        .await?;
    assert_eq!(out.stdout.trim(), "42");
    env.close().await;
    Ok(())
}
