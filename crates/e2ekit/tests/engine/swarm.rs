//! The Swarm backend on a real 3-node Docker Swarm: each node is a private `dockerd` in its
//! own network namespace (crates/test-engines), so the cluster runs on one machine.

use std::collections::BTreeSet;

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
