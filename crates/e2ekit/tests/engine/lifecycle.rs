//! Runnable lifecycle: start options, exec, stop/kill/restart, endpoints, fault injection.

use e2ekit::prelude::*;

use crate::common::{self, busybox};

fn sleeper(image: &str) -> StartOptions {
    StartOptions::new(image).command(Command::new("sleep").arg("3600"))
}

#[tokio::test]
async fn start_options_reach_the_container() -> Result<()> {
    let env = Environment::builder()
        .name("e2ekit-t-options")
        .build()
        .await?;
    let image = busybox(&env).await?;
    let r = env.runnable("opts").init(
        StartOptions::new(image.clone())
            .command(Command::new("3600"))
            .entrypoint(["sleep"])
            .env("GREETING", "hello world")
            .user("1234:1234")
            .memory_bytes(64 << 20)
            .userns("host")
            .capability("NET_ADMIN"),
    )?;
    r.start().await?;
    assert_eq!(
        r.exec(Command::new("hostname")).await?.stdout.trim(),
        "opts"
    );
    assert_eq!(
        r.exec(Command::sh("echo $GREETING")).await?.stdout.trim(),
        "hello world"
    );
    assert_eq!(
        r.exec(Command::new("id").arg("-u")).await?.stdout.trim(),
        "1234"
    );
    let mem = r
        .exec(Command::sh("cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes"))
        .await?;
    assert_eq!(mem.stdout.trim(), (64u64 << 20).to_string());
    let caps = r.exec(Command::sh("grep CapBnd /proc/self/status")).await?;
    // NET_ADMIN is capability 12: bit 0x1000 of the bounding set.
    let bits =
        u64::from_str_radix(caps.stdout.split_whitespace().last().unwrap_or("0"), 16).unwrap_or(0);
    assert_ne!(
        bits & (1 << 12),
        0,
        "NET_ADMIN missing from {:?}",
        caps.stdout
    );

    let disabled = env.runnable("noentry").init(
        StartOptions::new(image)
            .entrypoint(["/bin/false"])
            .command(Command::new("sleep").arg("3600").disable_entrypoint()),
    )?;
    disabled.start().await?;
    assert!(disabled.is_running(), "the command replaced the entrypoint");
    env.close().await;
    Ok(())
}

#[tokio::test]
async fn exec_returns_output_and_exit_code_and_feeds_stdin() -> Result<()> {
    let env = Environment::builder().name("e2ekit-t-exec").build().await?;
    let image = busybox(&env).await?;
    let r = env.runnable("box").init(sleeper(&image))?;
    r.start().await?;
    let out = r.exec(Command::sh("echo out; echo err >&2")).await?;
    assert_eq!(
        (out.exit_code, out.stdout.as_str(), out.stderr.as_str()),
        (0, "out\n", "err\n")
    );
    let piped = r
        .exec_with(Command::new("cat"), ExecOptions::new().stdin("from stdin"))
        .await?;
    assert_eq!(piped.stdout, "from stdin");
    let as_root = r
        .exec_with(Command::new("id").arg("-u"), ExecOptions::new().user("0"))
        .await?;
    assert_eq!(as_root.stdout.trim(), "0");
    let err = r
        .exec(Command::sh("echo partial; echo bad >&2; exit 7"))
        .await
        .unwrap_err();
    match &err {
        Error::Exec {
            runnable,
            exit_code,
            stdout,
            stderr,
            ..
        } => {
            assert_eq!((runnable.as_str(), *exit_code), ("box", 7));
            assert_eq!((stdout.as_str(), stderr.as_str()), ("partial\n", "bad\n"));
        }
        other => panic!("expected an exec error, got {other}"),
    }
    assert!(err.to_string().contains("exited with code 7"), "{err}");
    env.close().await;
    Ok(())
}

#[tokio::test]
async fn stop_and_kill_are_idempotent_and_a_stopped_runnable_starts_again() -> Result<()> {
    let env = Environment::builder()
        .name("e2ekit-t-restart")
        .build()
        .await?;
    let app = common::demo_runnable(&env, "app", &[]).await?;
    start_and_wait_ready(&[&app]).await?;
    let first = app.endpoint("http")?;
    app.stop().await?;
    assert!(!app.is_running());
    app.stop().await?;
    app.kill().await?;
    let err = app.endpoint("http").unwrap_err();
    assert!(matches!(err, Error::NotRunning { .. }), "{err}");
    let err = app.exec(Command::new("true")).await.unwrap_err();
    assert!(
        matches!(err, Error::NotRunning { .. }),
        "exec on a stopped runnable: {err}"
    );

    start_and_wait_ready(&[&app]).await?;
    assert!(app.is_running());
    let body = reqwest::get(format!("http://{}/ready", app.endpoint("http")?))
        .await
        .expect("GET")
        .text()
        .await
        .expect("body");
    assert_eq!(body.trim(), "ready");
    app.kill().await?;
    assert!(!app.is_running());
    app.kill().await?;
    app.start().await?;
    app.wait_ready().await?;
    assert!(app.is_running());
    let _ = first;
    env.close().await;
    Ok(())
}

#[tokio::test]
async fn a_crash_is_noticed_without_polling() -> Result<()> {
    let env = Environment::builder()
        .name("e2ekit-t-crash")
        .build()
        .await?;
    let app = common::demo_runnable(&env, "app", &[]).await?;
    start_and_wait_ready(&[&app]).await?;
    let url = format!("http://{}/exit?code=5", app.endpoint("http")?);
    let _ = reqwest::get(url).await;
    for _ in 0..500 {
        if !app.is_running() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(
        !app.is_running(),
        "the exit should be seen by the engine watcher"
    );
    let err = app.wait_ready().await.unwrap_err();
    assert_eq!(err.exit_code(), Some(5), "{err}");
    env.close().await;
    Ok(())
}

#[tokio::test]
async fn pause_freezes_and_unpause_resumes() -> Result<()> {
    let env = Environment::builder()
        .name("e2ekit-t-pause")
        .build()
        .await?;
    let app = common::demo_runnable(&env, "app", &[]).await?;
    start_and_wait_ready(&[&app]).await?;
    let url = format!("http://{}/ready", app.endpoint("http")?);
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_millis(500))
        .build()
        .expect("client");
    app.pause().await?;
    assert!(
        client.get(&url).send().await.is_err(),
        "a paused service must not answer"
    );
    app.unpause().await?;
    assert_eq!(
        client
            .get(&url)
            .send()
            .await
            .expect("answer after unpause")
            .status(),
        200
    );
    env.close().await;
    Ok(())
}

#[tokio::test]
async fn disconnect_partitions_and_connect_heals_with_dns() -> Result<()> {
    let env = Environment::builder()
        .name("e2ekit-t-partition")
        .build()
        .await?;
    let image = busybox(&env).await?;
    let app = common::demo_runnable(&env, "app", &[]).await?;
    let client = env.runnable("client").init(sleeper(&image))?;
    start_and_wait_ready(&[&app, &client]).await?;
    let fetch = Command::new("timeout").args(["5", "wget", "-qO-", "http://app:8080/ready"]);
    // On a Docker Swarm a new task's name reaches the other nodes a moment after it runs
    // (service discovery is gossiped): poll, bounded. A local engine answers at once.
    let reachable = || async {
        for _ in 0..20 {
            let quick =
                Command::new("timeout").args(["2", "wget", "-qO-", "http://app:8080/ready"]);
            if let Ok(out) = client.exec(quick).await {
                return out.stdout.trim() == "ready";
            }
        }
        false
    };
    assert!(
        reachable().await,
        "app answers the client before the partition"
    );
    app.disconnect().await?;
    let err = client.exec(fetch.clone()).await.unwrap_err();
    assert!(
        err.exit_code().is_some_and(|c| c != 0),
        "traffic must be blocked: {err}"
    );
    app.connect().await?;
    assert!(
        reachable().await,
        "app answers the client again after the heal"
    );
    // The engine publishes the ports anew on rejoining; the endpoint must follow, so the
    // host still reaches the service.
    let url = format!("http://{}/ready", app.endpoint("http")?);
    let answer = reqwest::get(&url).await.map_err(|e| {
        e2ekit::Error::InvalidArgument(format!("GET {url} after the heal failed: {e}"))
    })?;
    assert_eq!(answer.status(), 200, "GET {url} after the heal");
    env.close().await;
    Ok(())
}

#[tokio::test]
async fn start_and_wait_ready_takes_a_mix_and_runs_them_concurrently() -> Result<()> {
    let env = Environment::builder()
        .name("e2ekit-t-group")
        .build()
        .await?;
    let image = busybox(&env).await?;
    let a = common::demo_runnable(&env, "a", &["--ready-after-ms", "400"]).await?;
    let b = common::demo_runnable(&env, "b", &["--ready-after-ms", "400"]).await?;
    let c = env.runnable("c").init(sleeper(&image))?;
    let wrapped = Wrapper(b.clone());
    start_and_wait_ready(&[&a, &wrapped, &c]).await?;
    assert!(a.is_running() && b.is_running() && c.is_running());
    env.close().await;
    Ok(())
}

/// A user type wrapping a runnable, as catalog services do.
struct Wrapper(Runnable);

impl AsRunnable for Wrapper {
    fn as_runnable(&self) -> &Runnable {
        &self.0
    }
}
