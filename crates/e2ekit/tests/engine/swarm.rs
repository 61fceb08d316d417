//! The Swarm backend on a real 3-node Docker Swarm: each node is a private `dockerd` in its
//! own network namespace (crates/test-engines), so the cluster runs on one machine.

use std::collections::BTreeSet;

use e2ekit::db::{PrometheusConfig, ScrapeConfig};
use e2ekit::prelude::*;
use e2ekit_test_engines::Cluster;

use crate::common;

/// A 3-node swarm for one test, torn down (engines stopped by pid, namespaces, veths,
/// forwarding rules and data removed) when dropped, also when the test panics.
fn swarm() -> Cluster {
    let nodes = e2ekit_test_engines::PrivateEngine::builder().default_route(false);
    let cluster = Cluster::start_with(3, nodes).unwrap_or_else(|e| {
        panic!(
            "the Swarm tests need 3 private dockerds (root, dockerd, nsenter, ip, iptables): {e}"
        )
    });
    cluster
        .init_swarm()
        .unwrap_or_else(|e| panic!("forming the test swarm: {e}"));
    cluster
}

fn manager(cluster: &Cluster) -> String {
    cluster.engines()[0]
        .tcp_host()
        .expect("cluster engines listen on tcp")
}

/// Containers labelled with `env` on every node (the tasks' containers live there).
fn containers_on_nodes(cluster: &Cluster, env: &str) -> usize {
    cluster
        .engines()
        .iter()
        .map(|e| {
            let out = std::process::Command::new("docker")
                .args(["-H", &e.docker_host(), "ps", "-aq", "--filter"])
                .arg(format!("label=e2ekit.env={env}"))
                .output()
                .expect("docker ps");
            String::from_utf8_lossy(&out.stdout).lines().count()
        })
        .sum()
}

/// Which node engine runs `container` (by its name).
fn node_of(cluster: &Cluster, container: &str) -> Option<String> {
    cluster.engines().iter().find_map(|e| {
        let out = std::process::Command::new("docker")
            .args(["-H", &e.docker_host(), "ps", "-q", "--filter"])
            .arg(format!("name={container}"))
            .output()
            .ok()?;
        (!out.stdout.is_empty()).then(|| e.name().to_string())
    })
}

async fn server(env: &Environment, name: &str) -> Result<Runnable> {
    let image = common::busybox(env).await?;
    let app = env.runnable(name).with_ports([("http", 80)]).future()?;
    std::fs::write(app.dir().join("index.html"), format!("I am {name}")).expect("page");
    app.init(
        StartOptions::new(image)
            // A shell that ends on SIGTERM (httpd as PID 1 would ignore it, and every stop
            // would wait for the kill).
            .command(Command::new("sh").args([
                "-c",
                &format!(
                    "trap 'exit 0' TERM; httpd -f -p 80 -h {} & wait",
                    app_dir_of(env, name)
                ),
            ]))
            .readiness(HttpProbe::new("http", "/index.html")),
    )
}

fn app_dir_of(env: &Environment, name: &str) -> String {
    env.shared_dir()
        .join("data")
        .join(name)
        .display()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runnables_spread_over_the_nodes_reach_each_other_and_the_test() -> Result<()> {
    let cluster = tokio::task::block_in_place(swarm);
    let t = std::time::Instant::now();
    let name = "e2ekit-t-swarm-basic";
    let env = Environment::builder()
        .name(name)
        .engine(Engine::swarm(manager(&cluster)))
        .build()
        .await?;
    let a = server(&env, "a").await?;
    let b = server(&env, "b").await?;
    let c = server(&env, "c").await?;
    println!("built {:?}", t.elapsed());
    start_and_wait_ready(&[&a, &b, &c]).await?;
    println!("started {:?}", t.elapsed());
    let nodes: BTreeSet<_> = [&a, &b, &c]
        .iter()
        .filter_map(|r| node_of(&cluster, r.container_name()))
        .collect();
    assert_eq!(nodes.len(), 3, "one task per node: {nodes:?}");

    // From the test process, at the node running the task.
    for r in [&a, &b, &c] {
        let page = reqwest::get(format!("http://{}/index.html", r.endpoint("http")?))
            .await
            .and_then(|r| r.error_for_status())
            .expect("the published port answers")
            .text()
            .await
            .expect("a page");
        assert_eq!(page, format!("I am {}", r.name()));
    }
    // Between tasks on different nodes, by the internal endpoint.
    let url = format!("http://{}/index.html", b.internal_endpoint("http")?);
    let fetched = a.exec(Command::new("wget").args(["-qO-", &url])).await?;
    assert_eq!(fetched.stdout, "I am b");

    // A partition between two runnables on different nodes, and its healing.
    b.disconnect().await?;
    let cut = a
        .exec(Command::new("timeout").args(["2", "wget", "-qO-", &url]))
        .await;
    assert!(cut.is_err(), "b is cut off: {cut:?}");
    b.connect().await?;
    let healed = a.exec(Command::new("wget").args(["-qO-", &url])).await?;
    assert_eq!(healed.stdout, "I am b");

    println!("partition healed {:?}", t.elapsed());
    // Stop, kill, restart.
    c.stop().await?;
    println!("stopped {:?}", t.elapsed());
    assert!(!c.is_running());
    c.start().await?;
    c.wait_ready().await?;
    c.kill().await?;
    assert!(!c.is_running());

    println!("stop/start/kill {:?}", t.elapsed());
    env.close().await;
    println!("closed {:?}", t.elapsed());
    assert_eq!(containers_on_nodes(&cluster, name), 0);
    assert_eq!(
        common::leftovers_on(Some(&format!("swarm+{}", manager(&cluster))), name),
        (0, 0)
    );
    tokio::task::block_in_place(|| cluster.stop()).expect("tearing the swarm down");
    Ok(())
}

/// Metric waits, monitoring that discovers runnables on every node (and this process), a
/// catalog Prometheus reloading a new configuration, and the shared directory's meaning.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_monitoring_and_files_work_across_the_nodes() -> Result<()> {
    assert!(
        std::path::Path::new("/usr/bin/prometheus").is_file(),
        "this test needs Debian's prometheus package (cargo xtask test installs it)"
    );
    let cluster = tokio::task::block_in_place(swarm);
    let name = "e2ekit-t-swarm-metrics";
    let env = Environment::builder()
        .name(name)
        .engine(Engine::swarm(manager(&cluster)))
        .build()
        .await?;
    let apps: Vec<Instrumented> = futures_util::future::try_join_all(
        ["app-1", "app-2", "app-3"]
            .into_iter()
            .map(|n| common::demo_runnable(&env, n, &[])),
    )
    .await?
    .into_iter()
    .map(|r| Instrumented::new(r, "http"))
    .collect::<Result<_>>()?;
    let refs: Vec<&dyn AsRunnable> = apps.iter().map(|a| a as &dyn AsRunnable).collect();
    start_and_wait_ready(&refs).await?;
    let nodes: BTreeSet<_> = apps
        .iter()
        .filter_map(|a| node_of(&cluster, a.container_name()))
        .collect();
    assert!(nodes.len() >= 2, "the apps run on several nodes: {nodes:?}");

    // A metric wait through the published port on the task's node.
    let url = format!("http://{}/work", apps[0].endpoint("http")?);
    for _ in 0..3 {
        reqwest::get(&url).await.expect("the app answers");
    }
    apps[0]
        .wait_sum_metrics(greater_or_equal(3.0), ["demo_requests_total"])
        .await?;

    // Monitoring: Prometheus on one node scrapes the apps on all of them, and this process.
    let image = e2ekit::prometheus::host_image().build(&env).await?;
    let mon = monitoring::start_with(
        &env,
        MonitoringOptions::new()
            .scrape_interval(Duration::from_millis(500))
            .prometheus_image(image.clone())
            .local_metrics(|| "e2ekit_test_marker 7\n".to_string()),
    )
    .await?;
    let policy = WaitPolicy::timeout(Duration::from_secs(60));
    mon.wait_query(
        "up",
        |s| {
            ["app-1", "app-2", "app-3"].iter().all(|job| {
                s.iter().any(|x| {
                    x.labels.get("job").map(String::as_str) == Some(*job) && x.value == 1.0
                })
            })
        },
        policy,
    )
    .await?;
    let local = mon
        .wait_query("e2ekit_test_marker", |s| !s.is_empty(), policy)
        .await?;
    assert_eq!(local[0].value, 7.0);
    mon.wait_query(
        "container_memory_working_set_bytes",
        |s| s.len() >= 3,
        policy,
    )
    .await?;

    // The catalog Prometheus: its configuration is copied in and reloaded.
    let prom = db::prometheus(&env, "prom", db::Options::new().image(image))?;
    start_and_wait_ready(&[&prom]).await?;
    let target = apps[1].internal_endpoint("http")?;
    prom.set_config(
        &PrometheusConfig::new().scrape(ScrapeConfig::new("copied").interval("1s").target(&target)),
    )
    .await?;
    PromQl::of(&prom, db::ACCESS_PORT)?
        .wait("up{job=\"copied\"} == 1", |s| s.len() == 1, policy)
        .await?;

    // No path of this host is mounted anywhere; files come back by copy.
    let written = apps[2].dir().join("written.txt");
    apps[2]
        .exec(Command::new("sh").args(["-c", &format!("echo from-node > {}", written.display())]))
        .await
        .ok();
    for engine in cluster.engines() {
        let out = std::process::Command::new("docker")
            .args(["-H", &engine.docker_host(), "ps", "-q", "--filter"])
            .arg(format!("label=e2ekit.env={name}"))
            .output()
            .expect("docker ps");
        for id in String::from_utf8_lossy(&out.stdout).lines() {
            let mounts = std::process::Command::new("docker")
                .args(["-H", &engine.docker_host(), "inspect", "-f"])
                .arg("{{range .Mounts}}{{.Type}} {{end}}")
                .arg(id)
                .output()
                .expect("docker inspect");
            let types = String::from_utf8_lossy(&mounts.stdout);
            assert!(
                !types.contains("bind"),
                "container {id} has a bind mount: {types}"
            );
        }
    }

    env.close().await;
    assert_eq!(containers_on_nodes(&cluster, name), 0);
    tokio::task::block_in_place(|| cluster.stop()).expect("tearing the swarm down");
    Ok(())
}

/// A task that exits at once fails the start with its exit code and output; a runnable that
/// never gets ready fails its wait with the output; output carries the `name: ` prefix path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_task_fails_fast_with_its_exit_code_and_output() -> Result<()> {
    let cluster = tokio::task::block_in_place(swarm);
    let name = "e2ekit-t-swarm-fails";
    let env = Environment::builder()
        .name(name)
        .engine(Engine::swarm(manager(&cluster)))
        .build()
        .await?;
    let image = common::busybox(&env).await?;
    let crash = env.runnable("crash").init(
        StartOptions::new(&image)
            .command(Command::new("sh").args(["-c", "echo going down; sleep 1; exit 3"]))
            .readiness(HttpProbe::new("http", "/")),
    );
    assert!(crash.is_err(), "the probe names an undeclared port");
    let crash = env.runnable("crash").with_ports([("http", 80)]).init(
        StartOptions::new(&image)
            .command(Command::new("sh").args(["-c", "echo going down; sleep 1; exit 3"]))
            .readiness(HttpProbe::new("http", "/")),
    )?;
    crash.start().await?;
    let err = crash.wait_ready().await.expect_err("it exits");
    assert!(
        matches!(&err, Error::ContainerExited { exit_code: 3, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("going down"), "{err}");
    assert_eq!(crash.exit_code(), Some(3));
    assert_eq!(crash.output().await?.stdout, "going down\n");

    // Pause, exec and unpause through the task's node.
    let app = env
        .runnable("app")
        .init(StartOptions::new(&image).command(Command::new("sleep").arg("3600")))?;
    app.start().await?;
    app.pause().await?;
    app.unpause().await?;
    let hostname = app.exec(Command::new("hostname")).await?;
    assert_eq!(hostname.stdout.trim(), "app");
    app.copy_to(CopyFile::bytes(b"x".to_vec(), "/tmp/x"))
        .await?;
    assert_eq!(app.read_file("/tmp/x").await?, b"x");

    env.close().await;
    assert_eq!(containers_on_nodes(&cluster, name), 0);
    tokio::task::block_in_place(|| cluster.stop()).expect("tearing the swarm down");
    Ok(())
}

/// The README's scenario, unchanged, on the swarm: only `E2EKIT_ENGINE=swarm` and
/// `DOCKER_HOST` (the manager) differ, in a child copy of this test binary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_scenario_runs_unchanged_with_e2ekit_engine_swarm() -> Result<()> {
    let cluster = tokio::task::block_in_place(swarm);
    let manager = manager(&cluster);
    let output = tokio::task::block_in_place(|| {
        common::run_child_test(
            "readme::two_services_talk",
            &[
                ("E2EKIT_ENGINE", "swarm"),
                ("DOCKER_HOST", manager.as_str()),
            ],
        )
    });
    assert!(output.contains("test result: ok. 1 passed"), "{output}");
    assert!(
        output.contains("frontend: ready"),
        "the scenario ran: {output}"
    );
    // It ran on the swarm (its services' containers were on the nodes) and left nothing.
    assert_eq!(
        containers_on_nodes(&cluster, "engine-readme-two-services-talk"),
        0
    );
    let services = std::process::Command::new("docker")
        .args(["-H", &manager, "service", "ls", "-q"])
        .output()
        .expect("docker service ls");
    assert!(services.stdout.is_empty(), "services left on the swarm");
    tokio::task::block_in_place(|| cluster.stop()).expect("tearing the swarm down");
    Ok(())
}
