//! Images from host files, and cargo-built binaries as runnables.

use e2ekit::prelude::*;

use crate::common::{self, busybox};

#[tokio::test]
async fn host_images_are_content_addressed() -> Result<()> {
    let env = Environment::builder()
        .name("e2ekit-t-images")
        .build()
        .await?;
    let a = HostImage::new("e2ekit-test/content")
        .content("/etc/msg", "one")
        .build(&env)
        .await?;
    let again = HostImage::new("e2ekit-test/content")
        .content("/etc/msg", "one")
        .build(&env)
        .await?;
    let b = HostImage::new("e2ekit-test/content")
        .content("/etc/msg", "two")
        .build(&env)
        .await?;
    assert_eq!(a, again, "unchanged inputs give the same image");
    assert_ne!(a, b, "changed inputs give another image");
    let tagged = HostImage::new("e2ekit-test/content")
        .content("/etc/msg", "two")
        .tag("latest")
        .build(&env)
        .await?;
    assert_eq!(tagged, "e2ekit-test/content:latest");

    // A static binary with symlinks, a directory copied recursively, and a dynamic binary with
    // its libraries: all run.
    let shell = busybox(&env).await?;
    let dir = env.shared_dir().join("tree");
    std::fs::create_dir_all(dir.join("sub")).expect("mkdir");
    std::fs::write(dir.join("sub/file"), "deep").expect("write");
    let with_tree = HostImage::new("e2ekit-test/tree")
        .binary_at("/bin/busybox", "/bin/busybox")
        .symlink("/bin/sh", "/bin/busybox")
        .symlink("/bin/cat", "/bin/busybox")
        .symlink("/bin/sleep", "/bin/busybox")
        .file(&dir, "/opt/tree")
        .env("FROM_IMAGE", "yes")
        .build(&env)
        .await?;
    let r = env
        .runnable("tree")
        .init(StartOptions::new(with_tree).command(Command::new("sleep").arg("60")))?;
    r.start().await?;
    assert_eq!(
        r.exec(Command::new("cat").arg("/opt/tree/sub/file"))
            .await?
            .stdout,
        "deep"
    );
    assert_eq!(
        r.exec(Command::sh("echo $FROM_IMAGE")).await?.stdout.trim(),
        "yes"
    );
    let _ = shell;
    env.close().await;
    Ok(())
}

#[tokio::test]
async fn containerize_runs_a_cargo_built_binary() -> Result<()> {
    let env = Environment::builder()
        .name("e2ekit-t-containerize")
        .build()
        .await?;
    let app = containerize(&env, "app", cargo_bin("demo-app")?)
        .await?
        .with_ports([("http", 8080)])
        .args(["--listen", ":8080"])
        .readiness(HttpProbe::new("http", "/ready"))
        .init()?;
    start_and_wait_ready(&[&app]).await?;
    let metrics = reqwest::get(format!("http://{}/metrics", app.endpoint("http")?))
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("body");
    assert!(metrics.contains("demo_requests_total"), "{metrics}");
    env.close().await;
    Ok(())
}

#[tokio::test]
async fn a_missing_binary_is_a_clear_build_error() -> Result<()> {
    let env = Environment::builder()
        .name("e2ekit-t-nobinary")
        .build()
        .await?;
    let err = HostImage::new("e2ekit-test/none")
        .binary("/no/such/binary")
        .build(&env)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::ImageBuild { .. }) && err.to_string().contains("/no/such/binary"),
        "{err}"
    );
    let _ = common::leftovers;
    env.close().await;
    Ok(())
}

#[tokio::test]
async fn unused_host_images_are_pruned_and_used_ones_kept() -> Result<()> {
    let env = Environment::builder()
        .name("e2ekit-t-prune-images")
        .build()
        .await?;
    // Unique content, so these images are this test's alone.
    let nonce = format!(
        "{:?}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
    );
    let busybox_path = "/bin/busybox";
    let image = |repo: &str| {
        HostImage::new(repo)
            .binary_at(busybox_path, "/bin/busybox")
            .symlink("/bin/sleep", "/bin/busybox")
            .content("/nonce", nonce.clone())
    };
    let unused = image("e2ekit-test/prune-me-unused").build(&env).await?;
    let used = image("e2ekit-test/prune-me-used").build(&env).await?;
    let sleeper = env
        .runnable("sleeper")
        .init(StartOptions::new(used.clone()).command(Command::new("sleep").arg("3600")))?;
    sleeper.start().await?;

    let pruned = e2ekit::sweep::prune_images(None, Some("e2ekit-test/prune-me-")).await?;
    assert_eq!(pruned.removed, std::slice::from_ref(&unused), "{pruned:?}");
    assert_eq!(pruned.in_use, std::slice::from_ref(&used), "{pruned:?}");
    let exists = |reference: &str| {
        std::process::Command::new("docker")
            .args(["image", "inspect", reference])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    };
    assert!(!exists(&unused), "{unused} should be gone");
    assert!(exists(&used), "{used} is in use and must stay");

    env.close().await;
    let pruned = e2ekit::sweep::prune_images(None, Some("e2ekit-test/prune-me-")).await?;
    assert_eq!(pruned.removed, [used], "unused once its container is gone");
    Ok(())
}
