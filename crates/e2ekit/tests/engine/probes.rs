//! Readiness probes, the wait policy, and fail-fast diagnostics.

use std::time::Duration;

use e2ekit::prelude::*;

use crate::common::{self, busybox};

#[tokio::test]
async fn http_probe_checks_status_range_and_body() -> Result<()> {
    let env = Environment::builder().name("e2ekit-t-http").build().await?;
    let image = common::demo_app(&env).await?;
    let make = |name: &str, probe: HttpProbe, wait: Duration| {
        env.runnable(name).with_ports([("http", 8080)]).init(
            StartOptions::new(image.clone())
                .command(Command::new("/bin/demo-app").args(["--listen", ":8080"]))
                .readiness(probe)
                .wait_policy(WaitPolicy::timeout(wait)),
        )
    };
    let ok = make(
        "ok",
        HttpProbe::new("http", "/ready")
            .status(200..=200)
            .body_contains("ready"),
        Duration::from_secs(30),
    )?;
    start_and_wait_ready(&[&ok]).await?;

    let wrong_status = make(
        "status",
        HttpProbe::new("http", "/missing").status(200..=204),
        Duration::from_secs(5),
    )?;
    let err = start_and_wait_ready(&[&wrong_status]).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::NotReady { .. }), "{text}");
    assert!(
        text.contains("answered 404") && text.contains("200..=204"),
        "{text}"
    );
    assert!(
        text.contains("listening on"),
        "the error carries the container's output: {text}"
    );

    let wrong_body = make(
        "body",
        HttpProbe::new("http", "/ready").body_contains("banana"),
        Duration::from_secs(5),
    )?;
    let err = start_and_wait_ready(&[&wrong_body])
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("lacks \"banana\""), "{err}");

    let not_found_ok = make(
        "range",
        HttpProbe::new("http", "/missing").status(404..=404),
        Duration::from_secs(30),
    )?;
    start_and_wait_ready(&[&not_found_ok]).await?;
    env.close().await;
    Ok(())
}

#[tokio::test]
async fn https_probe_accepts_untrusted_certificates() -> Result<()> {
    let env = Environment::builder()
        .name("e2ekit-t-https")
        .build()
        .await?;
    let dir = env.shared_dir().to_path_buf();
    common::untrusted_cert(&dir);
    let image = HostImage::new("e2ekit-test/openssl")
        .binary("/usr/bin/openssl")
        .build(&env)
        .await?;
    let tls = env.runnable("tls").with_ports([("https", 8443)]).init(
        StartOptions::new(image)
            .command(
                Command::new("/bin/openssl")
                    .args(["s_server", "-accept", "8443", "-www", "-quiet"])
                    .args([
                        "-cert",
                        &dir.join("cert.pem").display().to_string(),
                        "-key",
                        &dir.join("key.pem").display().to_string(),
                    ]),
            )
            .readiness(
                HttpProbe::new("https", "/")
                    .https()
                    .body_contains("s_server"),
            ),
    )?;
    start_and_wait_ready(&[&tls]).await?;
    env.close().await;
    Ok(())
}

#[tokio::test]
async fn tcp_probe_waits_for_the_service_not_the_port_proxy() -> Result<()> {
    let env = Environment::builder().name("e2ekit-t-tcp").build().await?;
    let image = common::demo_app(&env).await?;
    let late = env.runnable("late").with_ports([("http", 8080)]).init(
        StartOptions::new(image)
            .command(Command::new("/bin/demo-app").args([
                "--listen",
                ":8080",
                "--listen-delay-ms",
                "700",
            ]))
            .readiness(TcpProbe::new("http")),
    )?;
    start_and_wait_ready(&[&late]).await?;
    // Ready must mean listening: the very first request succeeds.
    let body = reqwest::get(format!("http://{}/", late.endpoint("http")?))
        .await
        .expect("service listens once ready");
    assert!(body.status().is_success());
    env.close().await;
    Ok(())
}

#[tokio::test]
async fn command_log_and_all_probes() -> Result<()> {
    let env = Environment::builder()
        .name("e2ekit-t-probes")
        .build()
        .await?;
    let image = busybox(&env).await?;
    let cmd = env.runnable("cmd").init(
        StartOptions::new(image.clone())
            .command(Command::sh("sleep 0.3; touch /tmp/ready; sleep 3600"))
            .readiness(CmdProbe::new(
                Command::new("test").args(["-f", "/tmp/ready"]),
            )),
    )?;
    let log = env.runnable("log").init(
        StartOptions::new(image.clone())
            .command(Command::sh(
                "sleep 0.3; echo 'server started on port 1' >&2; sleep 3600",
            ))
            .readiness(LogProbe::regex(r"started on port \d")?),
    )?;
    let all = env.runnable("all").init(
        StartOptions::new(image.clone())
            .command(Command::sh(
                "echo booting; sleep 0.3; touch /tmp/ready; echo up; sleep 3600",
            ))
            .readiness(AllProbe::new([
                LogProbe::contains("up").into(),
                CmdProbe::new(Command::new("test").args(["-f", "/tmp/ready"])).into(),
            ])),
    )?;
    start_and_wait_ready(&[&cmd, &log, &all]).await?;
    cmd.exec(Command::new("test").args(["-f", "/tmp/ready"]))
        .await?;
    all.exec(Command::new("test").args(["-f", "/tmp/ready"]))
        .await?;

    let never = env.runnable("never").init(
        StartOptions::new(image)
            .command(Command::sh("echo nothing to see; sleep 3600"))
            .readiness(LogProbe::contains("ready"))
            .wait_policy(WaitPolicy::timeout(Duration::from_millis(500))),
    )?;
    let err = start_and_wait_ready(&[&never]).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::NotReady { .. }), "{text}");
    assert!(
        text.contains("no output line matched") && text.contains("nothing to see"),
        "{text}"
    );
    env.close().await;
    Ok(())
}

#[tokio::test]
async fn an_exit_while_waiting_fails_at_once_with_code_and_output() -> Result<()> {
    let env = Environment::builder()
        .name("e2ekit-t-failfast")
        .build()
        .await?;
    let app = common::demo_runnable(
        &env,
        "crashy",
        &[
            "--ready-after-ms",
            "60000",
            "--exit-code",
            "3",
            "--exit-after-ms",
            "300",
            "--print-lines",
            "2",
        ],
    )
    .await?;
    let started = std::time::Instant::now();
    let err = start_and_wait_ready(&[&app]).await.unwrap_err();
    // Not a timing assertion: the default wait is a minute, so returning at all before it
    // proves the exit was noticed; the elapsed time goes in the failure message only.
    let text = err.to_string();
    assert_eq!(
        err.exit_code(),
        Some(3),
        "{text} (after {:?})",
        started.elapsed()
    );
    assert_eq!(err.runnable(), Some("crashy"));
    let tail = err.log_tail().expect("a log tail");
    assert!(
        tail.iter().any(|l| l.contains("exiting with code 3")),
        "{tail:?}"
    );
    assert!(tail.iter().any(|l| l.contains("line 2")), "{tail:?}");

    let image = busybox(&env).await?;
    let instant = env.runnable("instant").init(
        StartOptions::new(image)
            .command(Command::sh("echo bye; exit 9"))
            .readiness(LogProbe::contains("never printed")),
    )?;
    // Whether the exit is seen by start or by the wait depends on timing; both must say so.
    let err = start_and_wait_ready(&[&instant]).await.unwrap_err();
    assert_eq!(err.exit_code(), Some(9), "{err}");
    env.close().await;
    Ok(())
}
