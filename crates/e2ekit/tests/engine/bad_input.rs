//! Bad input gets a clear error and leaves nothing behind.

use std::time::Duration;

use e2ekit::prelude::*;

use crate::common::{busybox, leftovers};

#[tokio::test]
async fn invalid_environment_names_are_rejected_before_touching_the_engine() {
    for bad in [
        "",
        "has space",
        "-leading",
        "bridge",
        "ünicode",
        &"x".repeat(41),
    ] {
        let err = Environment::builder().name(bad).build().await.unwrap_err();
        assert!(
            matches!(
                err,
                Error::InvalidName {
                    what: "environment",
                    ..
                }
            ),
            "{bad:?}: {err}"
        );
    }
}

#[tokio::test]
async fn duplicate_and_invalid_runnable_names_and_unknown_ports() -> Result<()> {
    let env = Environment::builder()
        .name("e2ekit-t-badnames")
        .build()
        .await?;
    let image = busybox(&env).await?;
    let _first = env.runnable("svc").with_ports([("http", 80)]).future()?;
    let err = env.runnable("svc").future().unwrap_err();
    assert!(matches!(err, Error::DuplicateRunnable { .. }), "{err}");
    let err = env.runnable("no/slash").future().unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidName {
                what: "runnable",
                ..
            }
        ),
        "{err}"
    );

    let err = _first.internal_endpoint("grpc").unwrap_err();
    assert!(
        err.to_string().contains("no port named \"grpc\"") && err.to_string().contains("http"),
        "{err}"
    );
    let err = env
        .runnable("probe-port")
        .with_ports([("http", 80)])
        .init(StartOptions::new(image.clone()).readiness(HttpProbe::new("metrics", "/")))
        .unwrap_err();
    assert!(
        matches!(err, Error::UnknownPort { .. }),
        "a probe on an undeclared port: {err}"
    );

    let r = env
        .runnable("r")
        .with_ports([("http", 80)])
        .init(StartOptions::new(image).command(Command::new("sleep").arg("60")))?;
    r.start().await?;
    let err = r.endpoint("nope").unwrap_err();
    assert!(matches!(err, Error::UnknownPort { .. }), "{err}");
    env.close().await;
    Ok(())
}

#[tokio::test]
async fn a_missing_image_is_reported_and_leaves_nothing() -> Result<()> {
    let env = Environment::builder()
        .name("e2ekit-t-noimage")
        .build()
        .await?;
    let r = env
        .runnable("ghost")
        .init(StartOptions::new("e2ekit-test/does-not-exist:1"))?;
    let err = r.start().await.unwrap_err();
    assert!(matches!(err, Error::ImageNotFound { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("e2ekit-test/does-not-exist:1") && text.contains("ghost"),
        "{text}"
    );
    assert_eq!(leftovers(env.name()).0, 0, "no container was created");
    assert!(!r.is_running());
    env.close().await;
    assert_eq!(leftovers(env.name()), (0, 0));
    Ok(())
}

#[tokio::test]
async fn operations_on_a_runnable_that_never_started_say_so() -> Result<()> {
    let env = Environment::builder()
        .name("e2ekit-t-notstarted")
        .build()
        .await?;
    let image = busybox(&env).await?;
    let r = env
        .runnable("idle")
        .with_ports([("http", 80)])
        .init(StartOptions::new(image))?;
    for err in [
        r.exec(Command::new("true")).await.unwrap_err(),
        r.wait_ready().await.unwrap_err(),
        r.pause().await.unwrap_err(),
        r.disconnect().await.unwrap_err(),
        r.endpoint("http").unwrap_err(),
    ] {
        assert!(matches!(err, Error::NotRunning { .. }), "{err}");
        assert!(err.to_string().contains("\"idle\""), "{err}");
    }
    r.stop().await?;
    r.kill().await?;
    env.close().await;
    Ok(())
}

#[tokio::test]
async fn an_unreachable_engine_fails_fast_with_its_address() {
    for host in ["unix:///nonexistent/docker.sock", "tcp://127.0.0.1:1"] {
        let attempt = Environment::builder()
            .name("e2ekit-t-noengine")
            .docker_host(host)
            .build();
        // A guard against hanging, not a timing assertion.
        let err = tokio::time::timeout(Duration::from_secs(60), attempt)
            .await
            .expect("connecting to a dead engine must not hang")
            .unwrap_err();
        assert!(matches!(err, Error::EngineUnreachable { .. }), "{err}");
        assert!(err.to_string().contains(host), "{err}");
    }
}

#[test]
fn docker_host_pointing_nowhere_fails_fast() {
    // DOCKER_HOST is process-wide, so the check runs in a child copy of this test binary.
    if std::env::var_os("E2EKIT_CHILD_UNREACHABLE").is_some() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let err = rt
            .block_on(Environment::builder().name("e2ekit-t-dockerhost").build())
            .unwrap_err();
        println!("CHILD-ERROR: {err}");
        return;
    }
    let out = crate::common::run_child_test(
        "bad_input::docker_host_pointing_nowhere_fails_fast",
        &[
            ("E2EKIT_CHILD_UNREACHABLE", "1"),
            ("DOCKER_HOST", "unix:///nonexistent/e2ekit.sock"),
        ],
    );
    assert!(
        out.contains(
            "CHILD-ERROR: cannot reach the container engine at unix:///nonexistent/e2ekit.sock"
        ),
        "{out}"
    );
}

/// A bind mount of a host path that does not exist: Docker would create it (as root, a
/// directory even where a file was meant) and leave it behind. It is refused when the
/// environment or the runnable is defined, and nothing is created on the host or the engine.
#[tokio::test]
async fn a_missing_bind_mount_host_path_is_refused_and_never_created() -> Result<()> {
    let missing = std::env::temp_dir().join(format!("e2ekit-missing-{}", std::process::id()));
    assert!(!missing.exists());
    let volume = format!("{}/config.yml:/etc/app/config.yml:ro", missing.display());

    let err = Environment::builder()
        .name("e2ekit-t-missingvol-env")
        .volume(volume.as_str())
        .build()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidArgument(m) if m.contains("does not exist")),
        "{err}"
    );
    assert_eq!(
        leftovers("e2ekit-t-missingvol-env"),
        (0, 0),
        "no network either"
    );

    let env = Environment::builder()
        .name("e2ekit-t-missingvol")
        .build()
        .await?;
    let image = busybox(&env).await?;
    let err = env
        .runnable("reader")
        .init(
            StartOptions::new(image.clone())
                .command(Command::new("cat").arg("/etc/app/config.yml"))
                .volume(volume.as_str()),
        )
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidArgument(m)
            if m.contains("\"reader\"") && m.contains("does not exist")
                && m.contains(&missing.join("config.yml").display().to_string())),
        "{err}"
    );
    // The definition can be corrected under the same name once the file exists.
    std::fs::create_dir_all(&missing).expect("create the config dir");
    std::fs::write(missing.join("config.yml"), "hello: world\n").expect("write the config");
    let reader = env.runnable("reader").init(
        StartOptions::new(image)
            .command(Command::new("cat").arg("/etc/app/config.yml"))
            .volume(volume.as_str()),
    );
    std::fs::remove_dir_all(&missing).expect("remove the config dir");
    reader?;
    assert_eq!(leftovers(env.name()).0, 0, "no container was created");
    env.close().await;
    assert_eq!(leftovers(env.name()), (0, 0));
    assert!(!missing.exists(), "the engine created nothing on the host");
    Ok(())
}
