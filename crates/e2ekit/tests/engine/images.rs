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
    // Input tags (`repo:in-…`, the metadata cache) go with their images: an image in use loses
    // only those and keeps its content tag.
    assert_eq!(
        content_tags(&pruned.removed),
        std::slice::from_ref(&unused),
        "{pruned:?}"
    );
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
    assert_eq!(
        content_tags(&pruned.removed),
        [used],
        "unused once its container is gone"
    );
    Ok(())
}

/// The references that are not input tags.
fn content_tags(references: &[String]) -> Vec<String> {
    references
        .iter()
        .filter(|r| {
            !r.rsplit_once(':')
                .is_some_and(|(_, tag)| tag.starts_with("in-"))
        })
        .cloned()
        .collect()
}

/// The tags of an image, from the `docker` CLI (a second opinion beside the library's).
fn docker_tags(reference: &str) -> Vec<String> {
    let output = std::process::Command::new("docker")
        .args([
            "image",
            "inspect",
            "--format",
            "{{json .RepoTags}}",
            reference,
        ])
        .output()
        .expect("docker image inspect");
    assert!(output.status.success(), "{reference} should exist");
    serde_json::from_slice(&output.stdout).expect("RepoTags as JSON")
}

/// Writes `data` to `path`, modified `secs_ago` seconds ago (settled: older than the 2 s in
/// which a file counts as still changing).
fn write_aged(path: &std::path::Path, data: &str, secs_ago: u64) {
    std::fs::write(path, data).expect("write");
    let when = std::time::SystemTime::now() - std::time::Duration::from_secs(secs_ago);
    std::fs::File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(when))
        .expect("set mtime");
}

#[tokio::test]
async fn an_unchanged_host_image_is_found_by_its_inputs_metadata_without_reading_them() -> Result<()>
{
    let env = Environment::builder()
        .name("e2ekit-t-images-cache")
        .build()
        .await?;
    let file = env.shared_dir().join("payload.bin");
    // Unique content, so these images are this test's alone.
    let nonce = format!("{:?}", std::time::SystemTime::now());
    write_aged(&file, &format!("one {nonce}"), 60);
    let image = || HostImage::new("e2ekit-test/cache").file(&file, "/payload.bin");

    let first = image().build(&env).await?;
    let tags = docker_tags(&first);
    assert!(tags.contains(&first), "{tags:?}");
    let input_tag = tags
        .iter()
        .find(|t| t.starts_with("e2ekit-test/cache:in-"))
        .unwrap_or_else(|| panic!("the build records an input tag: {tags:?}"))
        .clone();
    assert_eq!(image().build(&env).await?, first, "unchanged: same tag");

    // Proof that a rebuild with unchanged metadata reads no file: point the input tag at
    // another image, and the rebuild answers with that image, not with the file's content.
    let other = HostImage::new("e2ekit-test/cache")
        .content("/other", nonce.clone())
        .build(&env)
        .await?;
    assert_ne!(other, first);
    let (repo, tag) = input_tag.rsplit_once(':').expect("repo:tag");
    let status = std::process::Command::new("docker")
        .args(["tag", &other, &format!("{repo}:{tag}")])
        .status()
        .expect("docker tag");
    assert!(status.success());
    assert_eq!(
        image().build(&env).await?,
        other,
        "the answer came from the input tag alone"
    );

    // Same size, new content, a new mtime: hashed and imported as a new image.
    write_aged(&file, &format!("two {nonce}"), 59);
    let second = image().build(&env).await?;
    assert_ne!(second, first);
    assert_ne!(second, other);
    // Back to the first content under new metadata: the first image's tag again.
    write_aged(&file, &format!("one {nonce}"), 58);
    assert_eq!(image().build(&env).await?, first, "same content, same tag");

    env.close().await;
    for reference in [first, second, other] {
        for tag in docker_tags(&reference) {
            let _ = std::process::Command::new("docker")
                .args(["rmi", &tag])
                .output();
        }
    }
    Ok(())
}
