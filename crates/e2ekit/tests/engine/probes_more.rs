//! Readiness by the engine's health status ([`HealthProbe`], [`HealthCheck`]) and by custom
//! async probes run from the test process, against the real engine.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use e2ekit::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::{self, busybox, leftovers};

fn long() -> WaitPolicy {
    WaitPolicy::timeout(Duration::from_secs(60))
}

/// A busybox health check that passes once `/tmp/ok` exists, every 100 ms.
fn file_check(retries: u32) -> HealthCheck {
    HealthCheck::new(Command::new("/bin/test").args(["-f", "/tmp/ok"]))
        .interval(Duration::from_millis(100))
        .retries(retries)
}

#[tokio::test]
async fn health_probe_waits_for_healthy_from_a_health_check_given_in_the_options() -> Result<()> {
    let env = Environment::builder()
        .name("e2ekit-t-health-ok")
        .build()
        .await?;
    let image = busybox(&env).await?;
    let app = env.runnable("app").init(
        StartOptions::new(image)
            .command(Command::new("/bin/sleep").arg("3600"))
            .health_check(file_check(10_000))
            .readiness(HealthProbe::new())
            .wait_policy(long()),
    )?;
    app.start().await?;
    let waiter = tokio::spawn({
        let app = app.clone();
        async move { app.wait_ready().await }
    });
    // The check cannot pass before the file exists: readiness follows the engine's status.
    let before = app
        .exec(Command::new("/bin/test").args(["-f", "/tmp/ok"]))
        .await;
    assert_eq!(before.expect_err("no file yet").exit_code(), Some(1));
    assert!(!waiter.is_finished(), "not ready while the check fails");
    app.exec(Command::new("/bin/touch").arg("/tmp/ok")).await?;
    waiter.await.expect("the wait task")?;
    env.close().await;
    assert_eq!(leftovers("e2ekit-t-health-ok"), (0, 0));
    Ok(())
}

#[tokio::test]
async fn unhealthy_fails_fast_with_the_check_output_and_the_container_output() -> Result<()> {
    let env = Environment::builder()
        .name("e2ekit-t-unhealthy")
        .build()
        .await?;
    let image = busybox(&env).await?;
    let app = env.runnable("db").init(
        StartOptions::new(image)
            .command(Command::sh("echo db starting; sleep 3600"))
            .health_check(
                HealthCheck::new(Command::sh("echo connection refused by db; exit 1"))
                    .interval(Duration::from_millis(100))
                    .retries(2),
            )
            .readiness(HealthProbe::new())
            .wait_policy(long()),
    )?;
    app.start().await?;
    // The deadline is a minute away; only the engine's "unhealthy" can end the wait early.
    let err = app.wait_ready().await.expect_err("unhealthy");
    let text = err.to_string();
    assert!(matches!(err, Error::ProbeFailed { .. }), "{text}");
    assert_eq!(err.runnable(), Some("db"));
    assert!(
        text.contains("unhealthy") && text.contains("connection refused by db"),
        "the error carries the health check's output: {text}"
    );
    assert!(
        err.log_tail()
            .is_some_and(|l| l.iter().any(|x| x.contains("db starting"))),
        "the error carries the container's output: {text}"
    );
    env.close().await;
    assert_eq!(leftovers("e2ekit-t-unhealthy"), (0, 0));
    Ok(())
}

#[tokio::test]
async fn health_probe_on_an_image_without_healthcheck_is_refused_at_start() -> Result<()> {
    let env = Environment::builder()
        .name("e2ekit-t-health-none")
        .build()
        .await?;
    let image = busybox(&env).await?;
    let app = env.runnable("plain").init(
        StartOptions::new(image.clone())
            .command(Command::new("/bin/sleep").arg("3600"))
            .readiness(HealthProbe::new())
            .wait_policy(long()),
    )?;
    let err = app.start().await.expect_err("no HEALTHCHECK");
    let text = err.to_string();
    assert!(
        text.contains("\"plain\"") && text.contains(&image) && text.contains("HEALTHCHECK"),
        "{text}"
    );
    assert_eq!(leftovers(env.name()).0, 0, "no container was created");
    env.close().await;
    assert_eq!(leftovers("e2ekit-t-health-none"), (0, 0));
    Ok(())
}

#[tokio::test]
async fn health_probe_uses_the_images_own_healthcheck() -> Result<()> {
    let env = Environment::builder()
        .name("e2ekit-t-health-image")
        .build()
        .await?;
    let base = busybox(&env).await?;
    let dir = tempdir("health-image");
    std::fs::write(
        dir.join("Dockerfile"),
        "ARG BASE\nFROM ${BASE}\nHEALTHCHECK --interval=100ms --retries=10000 CMD [\"/bin/test\", \"-f\", \"/tmp/ok\"]\n",
    )
    .expect("write the Dockerfile");
    let image = DockerfileImage::new(&*dir)
        .repo("e2ekit-test/healthy")
        .build_arg("BASE", base)
        .build(&env)
        .await?;
    let app = env.runnable("svc").init(
        StartOptions::new(image)
            .command(Command::sh("touch /tmp/ok; sleep 3600"))
            .readiness(HealthProbe::new())
            .wait_policy(long()),
    )?;
    start_and_wait_ready(&[&app]).await?;
    env.close().await;
    assert_eq!(leftovers("e2ekit-t-health-image"), (0, 0));
    Ok(())
}

/// An HTTP/1.0 GET from the test process; the status line and body.
async fn http_get(addr: std::net::SocketAddr, path: &str) -> std::io::Result<String> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
        .await?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await?;
    Ok(answer)
}

#[tokio::test]
async fn custom_probe_makes_a_real_round_trip_from_the_test_process() -> Result<()> {
    let env = Environment::builder()
        .name("e2ekit-t-custom-probe")
        .build()
        .await?;
    let image = common::demo_app(&env).await?;
    let attempts = Arc::new(AtomicUsize::new(0));
    let probe = CustomProbe::new({
        let attempts = attempts.clone();
        move |ctx: ProbeContext| {
            attempts.fetch_add(1, Ordering::SeqCst);
            async move {
                assert_eq!(ctx.runnable(), "app");
                let answer = http_get(ctx.socket_addr("http")?, "/ready").await?;
                if !answer.starts_with("HTTP/1.1 200") && !answer.starts_with("HTTP/1.0 200") {
                    return Err(format!("GET /ready answered {:?}", answer.lines().next()).into());
                }
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
            }
        }
    })
    .describe("GET /ready");
    let app = env.runnable("app").with_ports([("http", 8080)]).init(
        StartOptions::new(image)
            .command(Command::new("/bin/demo-app").args(["--listen", ":8080"]))
            .readiness(probe)
            .wait_policy(long()),
    )?;
    start_and_wait_ready(&[&app]).await?;
    assert!(attempts.load(Ordering::SeqCst) >= 1);
    // Ready means the check passed: the same round trip works now.
    let addr: std::net::SocketAddr = app.endpoint("http")?.parse().expect("an address");
    let answer = http_get(addr, "/ready").await.expect("GET /ready");
    assert!(answer.contains(" 200 "), "{answer}");

    // The timeout error carries the closure's last error.
    let never = env.runnable("never").with_ports([("http", 8080)]).init(
        StartOptions::new(common::demo_app(&env).await?)
            .command(Command::new("/bin/demo-app").args(["--listen", ":8080"]))
            .readiness(Probe::custom(|ctx| async move {
                let answer = http_get(ctx.socket_addr("http")?, "/no-such-page").await?;
                Err::<(), Box<dyn std::error::Error + Send + Sync>>(
                    format!("wanted 200, got {:?}", answer.lines().next().unwrap_or("")).into(),
                )
            }))
            .wait_policy(WaitPolicy::timeout(Duration::from_secs(3))),
    )?;
    let err = start_and_wait_ready(&[&never])
        .await
        .expect_err("never ready");
    let text = err.to_string();
    assert!(matches!(err, Error::NotReady { .. }), "{text}");
    assert!(
        text.contains("wanted 200, got \"HTTP/1.") && text.contains("404"),
        "{text}"
    );
    assert!(
        text.contains("listening on"),
        "the container's output: {text}"
    );
    env.close().await;
    assert_eq!(leftovers("e2ekit-t-custom-probe"), (0, 0));
    Ok(())
}

#[tokio::test]
async fn custom_probe_fails_fast_when_the_container_exits_while_probing() -> Result<()> {
    let env = Environment::builder()
        .name("e2ekit-t-custom-crash")
        .build()
        .await?;
    let image = busybox(&env).await?;
    let first = Arc::new(tokio::sync::Notify::new());
    let probe = CustomProbe::new({
        let first = first.clone();
        move |_ctx| {
            first.notify_one();
            async { Err::<(), _>("the service does not answer yet") }
        }
    });
    // Exits with 4 once the test says so (the loop runs inside the container).
    let app = env.runnable("crashy").with_ports([("kv", 6379)]).init(
        StartOptions::new(image)
            .command(Command::sh(
                "echo about to fail; while [ ! -f /tmp/die ]; do sleep 0.05; done; exit 4",
            ))
            .readiness(probe)
            .wait_policy(long()),
    )?;
    app.start().await?;
    let waiter = tokio::spawn({
        let app = app.clone();
        async move { app.wait_ready().await }
    });
    first.notified().await;
    app.exec(Command::new("/bin/touch").arg("/tmp/die")).await?;
    let err = waiter.await.expect("the wait task").expect_err("exited");
    let text = err.to_string();
    assert!(matches!(err, Error::ContainerExited { .. }), "{text}");
    assert_eq!(err.exit_code(), Some(4), "{text}");
    assert!(text.contains("about to fail"), "{text}");
    env.close().await;
    assert_eq!(leftovers("e2ekit-t-custom-crash"), (0, 0));
    Ok(())
}

/// A fresh directory under the system's temporary directory, removed when dropped (also
/// when the test fails).
pub struct TempDir(std::path::PathBuf);

impl std::ops::Deref for TempDir {
    type Target = std::path::Path;

    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A new [`TempDir`] named after `name` and this process.
pub fn tempdir(name: &str) -> TempDir {
    let dir = std::env::temp_dir().join(format!("e2ekit-test-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    TempDir(dir)
}
