//! Container options and access on the real engine: files in and out, named volumes, tmpfs,
//! working dir, read-only root, shm size, ulimits, extra hosts, platform, fixed host ports,
//! output so far and consumers, identity and exit code; and the shared directory on an
//! engine that cannot see this host's files (a private engine reached over TCP).

use std::sync::{Arc, Mutex};

use e2ekit::db::{PrometheusConfig, ScrapeConfig};
use e2ekit::prelude::*;

use crate::common;

async fn env(name: &str) -> Result<Environment> {
    Environment::builder().name(name).build().await
}

/// A busybox container that sleeps, with `opts` applied.
async fn sleeper(
    env: &Environment,
    name: &str,
    opts: impl FnOnce(StartOptions) -> StartOptions,
) -> Result<Runnable> {
    let image = common::busybox(env).await?;
    env.runnable(name).init(opts(
        StartOptions::new(image).command(Command::new("sleep").arg("3600")),
    ))
}

async fn sh(r: &Runnable, script: &str) -> Result<ExecOutput> {
    r.exec(Command::new("sh").args(["-c", script])).await
}

/// Volumes labelled with `env` on the local engine (`docker volume ls`, outside e2ekit).
fn volumes_of(env: &str) -> Vec<String> {
    let out = std::process::Command::new("docker")
        .args([
            "volume",
            "ls",
            "-q",
            "--filter",
            &format!("label=e2ekit.env={env}"),
        ])
        .output()
        .expect("docker volume ls");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_go_in_before_start_and_while_running_and_come_back_out() -> Result<()> {
    let env = env("e2ekit-t-opts-files").await?;
    let fixtures = env.shared_dir().join("fixtures-src");
    std::fs::create_dir_all(fixtures.join("sub")).expect("fixtures");
    std::fs::write(fixtures.join("a.txt"), "alpha").expect("a");
    std::fs::write(fixtures.join("sub/b.txt"), "beta").expect("b");
    let app = sleeper(&env, "app", |o| {
        o.copy(
            CopyFile::bytes(b"secret\n".to_vec(), "/etc/app/token")
                .mode(0o600)
                .owner(1234, 4321),
        )
        .copy(CopyFile::host_path(&fixtures, "/srv/fixtures"))
    })
    .await?;
    let early = app
        .copy_to(CopyFile::bytes(*b"x", "/x"))
        .await
        .expect_err("not started");
    assert!(matches!(early, Error::NotRunning { .. }), "{early}");
    app.start().await?;
    let stat = sh(&app, "stat -c '%a %u %g' /etc/app/token; cat /etc/app/token /srv/fixtures/a.txt /srv/fixtures/sub/b.txt").await?;
    assert_eq!(stat.stdout, "600 1234 4321\nsecret\nalphabeta", "{stat:?}");

    app.copy_to(CopyFile::bytes(b"late".to_vec(), "/tmp/new/late.txt").mode(0o640))
        .await?;
    let late = sh(&app, "stat -c %a /tmp/new/late.txt; cat /tmp/new/late.txt").await?;
    assert_eq!(late.stdout, "640\nlate", "{late:?}");

    sh(
        &app,
        "mkdir -p /out/d && echo made > /out/d/f && echo top > /out/t",
    )
    .await?;
    assert_eq!(app.read_file("/out/t").await?, b"top\n");
    let back = env.shared_dir().join("back");
    app.copy_from("/out", &back).await?;
    assert_eq!(
        std::fs::read_to_string(back.join("d/f")).expect("copied out"),
        "made\n"
    );
    assert_eq!(
        std::fs::read_to_string(back.join("t")).expect("copied out"),
        "top\n"
    );

    let missing = app.read_file("/out/none").await.expect_err("no such file");
    assert!(
        matches!(&missing, Error::Copy { runnable, reason, .. } if runnable == "app" && reason.contains("/out/none")),
        "{missing}"
    );
    let dir = app.read_file("/out").await.expect_err("a directory");
    assert!(dir.to_string().contains("not a regular file"), "{dir}");

    // After an exit of its own (not a stop, which removes the container) its files can
    // still be read.
    app.signal("KILL").await?;
    for _ in 0..600 {
        if app.exit_code().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(app.exit_code(), Some(137));
    assert_eq!(app.read_file("/out/t").await?, b"top\n");
    let stopped = app
        .copy_to(CopyFile::bytes(*b"x", "/x"))
        .await
        .expect_err("stopped");
    assert!(matches!(stopped, Error::NotRunning { .. }), "{stopped}");
    env.close().await;
    assert_eq!(common::leftovers("e2ekit-t-opts-files"), (0, 0));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_copy_source_fails_the_start_and_leaves_nothing() -> Result<()> {
    let env = env("e2ekit-t-opts-nosrc").await?;
    let app = sleeper(&env, "app", |o| {
        o.copy(CopyFile::host_path("/nonexistent/e2ekit-fixture", "/f"))
    })
    .await?;
    let err = app.start().await.expect_err("missing source");
    assert!(
        matches!(&err, Error::Copy { runnable, reason, .. } if runnable == "app" && reason.contains("/nonexistent/e2ekit-fixture")),
        "{err}"
    );
    assert_eq!(
        common::leftovers("e2ekit-t-opts-nosrc").0,
        0,
        "no container"
    );
    env.close().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_volumes_tmpfs_and_process_settings_apply() -> Result<()> {
    let name = "e2ekit-t-opts-settings";
    let env = env(name).await?;
    let writer = sleeper(&env, "writer", |o| {
        o.named_volume("shared", "/data")
            .tmpfs_sized("/scratch", 8 << 20)
            .working_dir("/work/here")
            .shm_size(96 << 20)
            .ulimit("nofile", 777, 888)
            .extra_host("db.test", "10.9.8.7")
            .platform("linux/amd64")
    })
    .await?;
    let reader = sleeper(&env, "reader", |o| {
        o.named_volume_ro("shared", "/data").read_only_rootfs(true)
    })
    .await?;
    writer.start().await?;
    reader.start().await?;
    assert_eq!(volumes_of(name), [format!("{name}-shared")]);

    sh(&writer, "echo hi > /data/f").await?;
    assert_eq!(sh(&reader, "cat /data/f").await?.stdout, "hi\n");
    let ro = sh(&reader, "echo x > /data/g")
        .await
        .expect_err("a read-only volume");
    assert!(ro.to_string().contains("Read-only file system"), "{ro}");
    let rootfs = sh(&reader, "touch /rootfile")
        .await
        .expect_err("a read-only root");
    assert!(
        rootfs.to_string().contains("Read-only file system"),
        "{rootfs}"
    );
    assert_eq!(sh(&writer, "touch /rootfile").await?.exit_code, 0);

    let mounts = sh(&writer, "grep -E ' /scratch | /dev/shm ' /proc/mounts").await?;
    assert!(
        mounts.stdout.contains("tmpfs /scratch tmpfs") && mounts.stdout.contains("size=8192k"),
        "{mounts:?}"
    );
    assert!(
        mounts.stdout.contains("size=98304k"),
        "96 MiB /dev/shm: {mounts:?}"
    );
    assert_eq!(sh(&writer, "pwd").await?.stdout, "/work/here\n");
    // The main process's limits (an exec'd shell may get its soft limit raised by the
    // runtime, which is Go and lifts its own soft limit to the hard one).
    let limits = sh(&writer, "grep 'Max open files' /proc/1/limits")
        .await?
        .stdout;
    let fields: Vec<&str> = limits.split_whitespace().collect();
    assert_eq!(fields.get(3..5), Some(&["777", "888"][..]), "{limits}");
    assert!(sh(&writer, "cat /etc/hosts")
        .await?
        .stdout
        .contains("10.9.8.7\tdb.test"));

    // A restart finds the volume's files again; close removes the volume.
    writer.stop().await?;
    writer.start().await?;
    assert_eq!(sh(&writer, "cat /data/f").await?.stdout, "hi\n");
    env.close().await;
    assert!(volumes_of(name).is_empty(), "{:?}", volumes_of(name));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fixed_host_port_is_used_and_a_taken_one_is_a_clear_error() -> Result<()> {
    let name = "e2ekit-t-opts-port";
    let env = env(name).await?;
    let image = common::busybox(&env).await?;
    // A port free right now (the engine binds it next).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let serve = |n: &str| {
        env.runnable(n).with_ports([("http", 80)]).init(
            StartOptions::new(&image)
                .command(Command::new("httpd").args(["-f", "-p", "80", "-h", "/"]))
                .readiness(TcpProbe::new("http"))
                .host_port("http", port),
        )
    };
    let first = serve("first")?;
    start_and_wait_ready(&[&first]).await?;
    let addr = first.endpoint_addr("http")?;
    assert_eq!(addr, std::net::SocketAddr::from(([127, 0, 0, 1], port)));
    assert_eq!(first.endpoint("http")?, addr.to_string());

    let second = serve("second")?;
    let err = second.start().await.expect_err("the port is taken");
    assert!(
        matches!(&err, Error::PortTaken { runnable, port: p, host_port, .. }
            if runnable == "second" && p == "http" && *host_port == port),
        "{err}"
    );
    assert!(err.to_string().contains(&port.to_string()), "{err}");
    assert!(second.container_id().is_none());
    let left = std::process::Command::new("docker")
        .args(["ps", "-aq", "--filter", &format!("name={name}-second")])
        .output()
        .expect("docker ps");
    assert!(
        left.stdout.is_empty(),
        "the failed start left its container"
    );
    env.close().await;
    assert_eq!(common::leftovers(name), (0, 0));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_identity_and_exit_code() -> Result<()> {
    let env = env("e2ekit-t-opts-output").await?;
    let image = common::busybox(&env).await?;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let app = env.runnable("app").init(
        StartOptions::new(&image)
            .command(Command::new("sh").args([
                "-c",
                "echo out-1; echo err-1 >&2; echo out-2; sleep 1; exit 5",
            ]))
            .print_output(false)
            .on_output(move |l: &OutputLine| {
                sink.lock().expect("lock").push(format!(
                    "{}:{}",
                    if l.is_stderr() { "E" } else { "O" },
                    l.text()
                ));
            }),
    )?;
    app.start().await?;
    let id = app.container_id().expect("an id once started");
    let inspected = std::process::Command::new("docker")
        .args(["inspect", "-f", "{{.Id}}", app.container_name()])
        .output()
        .expect("docker inspect");
    assert_eq!(String::from_utf8_lossy(&inspected.stdout).trim(), id);
    for _ in 0..600 {
        if app.exit_code().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(app.exit_code(), Some(5));
    let out = app.output().await?;
    assert_eq!(out.stdout, "out-1\nout-2\n");
    assert_eq!(out.stderr, "err-1\n");
    let mut lines = seen.lock().expect("lock").clone();
    lines.sort();
    assert_eq!(lines, ["E:err-1", "O:out-1", "O:out-2"]);
    env.close().await;
    Ok(())
}

/// On an engine reached over TCP from another address (a private engine in its own network
/// namespace), no path of this host is mounted: the shared directory is copied in at start,
/// files come back with copy calls, and Prometheus' config and reload work that way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_remote_engine_the_shared_dir_is_copied_and_prometheus_reloads() -> Result<()> {
    assert!(
        std::path::Path::new("/usr/bin/prometheus").is_file(),
        "this test needs Debian's prometheus package (cargo xtask test installs it)"
    );
    let engine = tokio::task::block_in_place(|| {
        e2ekit_test_engines::PrivateEngine::builder().tcp(true).start()
    })
    .unwrap_or_else(|e| panic!("this test needs a private dockerd over TCP (root, dockerd, nsenter, ip, iptables): {e}"));
    let host = engine.tcp_host().expect("a tcp listener");
    let name = "e2ekit-t-opts-remote-dir";
    let env = Environment::builder()
        .name(name)
        .engine(Engine::docker_host(&host))
        .build()
        .await?;
    let image = common::busybox(&env).await?;
    let app = env.runnable("app").future()?;
    std::fs::write(app.dir().join("input.txt"), "from the test host").expect("input");
    let app = app.init(StartOptions::new(&image).command(Command::new("sleep").arg("3600")))?;
    app.start().await?;
    let input = app.dir().join("input.txt").display().to_string();
    assert_eq!(
        sh(&app, &format!("cat {input}")).await?.stdout,
        "from the test host"
    );
    // What the service writes stays in its container until copied back.
    let output = app.dir().join("output.txt");
    sh(&app, &format!("echo result > {}", output.display())).await?;
    assert!(!output.exists(), "nothing is shared through a mount");
    app.copy_from(&output.display().to_string(), &output)
        .await?;
    assert_eq!(
        std::fs::read_to_string(&output).expect("copied back"),
        "result\n"
    );

    // No bind mount of a path of this host reaches any container of the environment: the
    // shared directory's copy is a volume of the engine's.
    let mount_types = |container: &str| {
        let out = std::process::Command::new("docker")
            .args([
                "-H",
                &host,
                "inspect",
                "-f",
                "{{range .Mounts}}{{.Type}} {{end}}",
            ])
            .arg(container)
            .output()
            .expect("docker inspect");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(mount_types(app.container_name()), "volume");
    let refused = env
        .runnable("mounted")
        .init(StartOptions::new(&image).volume(format!("{}:/m", env.shared_dir().display())))?
        .start()
        .await
        .expect_err("a host path cannot be mounted there");
    assert!(refused.to_string().contains("cannot see"), "{refused}");

    let prom_image = e2ekit::prometheus::host_image().build(&env).await?;
    let prom = db::prometheus(&env, "prom", db::Options::new().image(prom_image))?;
    start_and_wait_ready(&[&prom]).await?;
    let self_target = prom.internal_endpoint(db::ACCESS_PORT)?;
    prom.set_config(
        &PrometheusConfig::new().scrape(
            ScrapeConfig::new("copied")
                .interval("1s")
                .target(&self_target),
        ),
    )
    .await?;
    let yaml = reqwest::get(format!(
        "http://{}/api/v1/status/config",
        prom.endpoint(db::ACCESS_PORT)?
    ))
    .await
    .and_then(|r| r.error_for_status())
    .expect("the config API")
    .text()
    .await
    .expect("its body");
    assert!(yaml.contains("job_name: copied"), "{yaml}");
    assert_eq!(mount_types(prom.runnable().container_name()), "volume");

    env.close().await;
    assert_eq!(common::leftovers_on(Some(&host), name), (0, 0));
    tokio::task::block_in_place(|| engine.stop()).expect("tearing the private engine down");
    Ok(())
}
