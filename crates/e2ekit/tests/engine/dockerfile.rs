//! Images built by the engine from a Dockerfile and a context directory (`DockerfileImage`):
//! offline builds (FROM scratch, FROM a host-built image), the content cache, and failures
//! that leave nothing behind.

use std::process::Command as Process;

use e2ekit::prelude::*;

use crate::common::{busybox, leftovers};
use crate::probes_more::tempdir;

/// The image id of `reference`, from the engine.
fn image_id(reference: &str) -> String {
    let out = Process::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}", reference])
        .output()
        .expect("docker image inspect");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Images of `repo` on the engine (tagged or not), by reference.
fn images_of(repo: &str) -> Vec<String> {
    let out = Process::new("docker")
        .args(["image", "ls", "--format", "{{.Repository}}:{{.Tag}}", repo])
        .output()
        .expect("docker image ls");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn from_scratch_with_a_copied_busybox_runs_and_an_unchanged_context_is_not_rebuilt(
) -> Result<()> {
    let env = Environment::builder()
        .name("e2ekit-t-dockerfile")
        .build()
        .await?;
    let dir = tempdir("dockerfile-scratch");
    std::fs::copy("/bin/busybox", dir.join("busybox"))
        .expect("a static busybox at /bin/busybox (busybox-static)");
    std::fs::write(
        dir.join("hello.txt"),
        format!("hello from {}\n", env.name()),
    )
    .expect("write");
    std::fs::write(dir.join("junk.log"), "ignored").expect("write");
    // A context no earlier run built, so the first build below really builds.
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_nanos();
    std::fs::write(dir.join("nonce"), nonce.to_string()).expect("write");
    std::fs::write(dir.join(".dockerignore"), "*.log\n").expect("write");
    std::fs::write(
        dir.join("Dockerfile"),
        "FROM scratch\nCOPY busybox /bin/busybox\nCOPY hello.txt /hello.txt\nCOPY . /ctx/\nENTRYPOINT [\"/bin/busybox\"]\nCMD [\"sleep\", \"3600\"]\n",
    )
    .expect("write");
    let repo = "e2ekit-test/df-scratch";
    let image = DockerfileImage::new(&*dir).repo(repo).tag("latest");
    let reference = image.build(&env).await?;
    assert_eq!(reference, format!("{repo}:latest"));

    let app = env
        .runnable("app")
        .init(StartOptions::new(reference.clone()))?;
    app.start().await?;
    let out = app
        .exec(Command::new("/bin/busybox").args(["cat", "/hello.txt"]))
        .await?;
    assert_eq!(out.stdout, format!("hello from {}\n", env.name()));
    let listed = app
        .exec(Command::new("/bin/busybox").args(["ls", "-a", "/ctx"]))
        .await?;
    assert!(
        !listed.stdout.contains("junk.log"),
        ".dockerignore is respected: {}",
        listed.stdout
    );
    assert!(listed.stdout.contains("hello.txt"), "{}", listed.stdout);

    // The same context again: found by its content tag, not built. Every build the engine
    // runs labels its image with a build id of its own, so the same image id means no build.
    let id = image_id(&reference);
    let again = DockerfileImage::new(&*dir).repo(repo).build(&env).await?;
    assert!(again.starts_with(&format!("{repo}:df-")), "{again}");
    assert_eq!(
        image_id(&again),
        id,
        "the engine built the unchanged context again"
    );
    let build_label = |r: &str| {
        let out = Process::new("docker")
            .args([
                "image",
                "inspect",
                "--format",
                "{{index .Config.Labels \"e2ekit.build\"}}",
                r,
            ])
            .output()
            .expect("docker image inspect");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert!(!build_label(&again).is_empty(), "the build id label is set");

    // A changed file makes a new image.
    std::fs::write(dir.join("hello.txt"), "changed\n").expect("write");
    let changed = DockerfileImage::new(&*dir).repo(repo).build(&env).await?;
    assert_ne!(changed, again);
    assert_ne!(image_id(&changed), id);
    assert_ne!(build_label(&changed), build_label(&again));

    env.close().await;
    assert_eq!(leftovers("e2ekit-t-dockerfile"), (0, 0));
    // Each run's context is new (its nonce): remove its images rather than pile them up.
    let removed = Process::new("docker")
        .args(["rmi", &reference, &again, &changed])
        .output()
        .expect("docker rmi");
    assert!(
        removed.status.success(),
        "{}",
        String::from_utf8_lossy(&removed.stderr)
    );
    Ok(())
}

#[tokio::test]
async fn from_a_host_built_base_with_build_args_run_steps_and_stages() -> Result<()> {
    let env = Environment::builder()
        .name("e2ekit-t-dockerfile-base")
        .build()
        .await?;
    let base = busybox(&env).await?;
    let dir = tempdir("dockerfile-base");
    std::fs::create_dir_all(dir.join("docker")).expect("mkdir");
    std::fs::write(
        dir.join("docker/app.Dockerfile"),
        "ARG BASE\n\
         FROM ${BASE} AS build\n\
         ARG GREETING\n\
         RUN [\"/bin/sh\", \"-c\", \"echo $GREETING > /greeting\"]\n\
         FROM ${BASE} AS final\n\
         COPY --from=build /greeting /copied\n\
         CMD [\"/bin/sleep\", \"3600\"]\n",
    )
    .expect("write");
    let image = DockerfileImage::new(&*dir)
        .dockerfile("docker/app.Dockerfile")
        .repo("e2ekit-test/df-base")
        .build_arg("BASE", &base)
        .build_arg("GREETING", "hi there");
    let last_stage = image.build(&env).await?;
    let build_stage = image.clone().target("build").build(&env).await?;
    assert_ne!(last_stage, build_stage);
    let sleeping =
        |image: String| StartOptions::new(image).command(Command::new("/bin/sleep").arg("3600"));
    let app = env.runnable("app").init(sleeping(last_stage))?;
    let builder = env.runnable("builder").init(sleeping(build_stage))?;
    start_and_wait_ready(&[&app, &builder]).await?;
    let copied = app.exec(Command::new("/bin/cat").arg("/copied")).await?;
    assert_eq!(copied.stdout, "hi there\n");
    let absent = app.exec(Command::new("/bin/cat").arg("/greeting")).await;
    assert!(absent.is_err(), "the last stage has only what it copied");
    let built = builder
        .exec(Command::new("/bin/cat").arg("/greeting"))
        .await?;
    assert_eq!(built.stdout, "hi there\n");
    env.close().await;
    assert_eq!(leftovers("e2ekit-t-dockerfile-base"), (0, 0));
    Ok(())
}

#[tokio::test]
async fn a_failing_run_step_names_the_step_and_its_output_and_leaves_nothing() -> Result<()> {
    let env = Environment::builder()
        .name("e2ekit-t-dockerfile-fail")
        .build()
        .await?;
    let base = busybox(&env).await?;
    let dir = tempdir("dockerfile-fail");
    std::fs::write(
        dir.join("Dockerfile"),
        "ARG BASE\nFROM ${BASE}\nRUN [\"/bin/sh\", \"-c\", \"echo compiling the widget; echo widget.c:3: syntax error >&2; exit 2\"]\nCMD [\"/bin/sleep\", \"3600\"]\n",
    )
    .expect("write");
    let repo = "e2ekit-test/df-fail";
    let before = containers_now();
    let err = DockerfileImage::new(&*dir)
        .repo(repo)
        .tag("latest")
        .build_arg("BASE", &base)
        .build(&env)
        .await
        .expect_err("the RUN step fails");
    let text = err.to_string();
    assert!(matches!(err, Error::DockerfileBuild(_)), "{text}");
    assert!(
        text.contains("failing step: Step 3/") && text.contains(" : RUN [\"/bin/sh\""),
        "the failing step: {text}"
    );
    assert!(text.contains("returned a non-zero code: 2"), "{text}");
    assert!(
        text.contains("compiling the widget") && text.contains("syntax error"),
        "the build output: {text}"
    );
    assert!(
        images_of(repo).is_empty(),
        "no image is tagged: {:?}",
        images_of(repo)
    );
    assert_eq!(containers_now(), before, "no build container is left");

    // A missing context directory or Dockerfile: a clear error before any engine call.
    let err = DockerfileImage::new(dir.join("no-such-dir"))
        .build(&env)
        .await
        .expect_err("no context");
    assert!(err.to_string().contains("no-such-dir"), "{err}");
    let err = DockerfileImage::new(&*dir)
        .dockerfile("Nope.Dockerfile")
        .build(&env)
        .await
        .expect_err("no Dockerfile");
    assert!(err.to_string().contains("Nope.Dockerfile"), "{err}");
    env.close().await;
    assert_eq!(leftovers("e2ekit-t-dockerfile-fail"), (0, 0));
    Ok(())
}

/// Containers (any state) made from the busybox base or an image built on it that carry no
/// e2ekit label: the classic builder's step containers. Other tests' runnables are labelled.
fn containers_now() -> Vec<String> {
    let out = Process::new("docker")
        .args([
            "ps",
            "-a",
            "--no-trunc",
            "--filter",
            "ancestor=e2ekit-test/busybox",
            "--format",
            "{{.ID}} {{.Label \"e2ekit.env\"}}",
        ])
        .output()
        .expect("docker ps");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (id, env) = l.split_once(' ').unwrap_or((l, ""));
            env.trim().is_empty().then(|| id.to_string())
        })
        .collect();
    ids.sort();
    ids
}

#[test]
fn the_blocking_facade_builds_and_runs_a_dockerfile_image() -> Result<()> {
    let env = e2ekit::blocking::Environment::builder()
        .name("e2ekit-t-dockerfile-blocking")
        .build()?;
    let base = env.build_image(
        &HostImage::new("e2ekit-test/busybox-blocking")
            .binary_at("/bin/busybox", "/bin/busybox")
            .symlink("/bin/sh", "/bin/busybox")
            .symlink("/bin/cat", "/bin/busybox")
            .symlink("/bin/sleep", "/bin/busybox"),
    )?;
    let dir = tempdir("dockerfile-blocking");
    std::fs::write(dir.join("motd"), "built without async\n").expect("write");
    std::fs::write(
        dir.join("Dockerfile"),
        "ARG BASE\nFROM ${BASE}\nCOPY motd /etc/motd\nCMD [\"/bin/sleep\", \"3600\"]\n",
    )
    .expect("write");
    let image = env.build_dockerfile_image(
        &DockerfileImage::new(&*dir)
            .repo("e2ekit-test/df-blocking")
            .build_arg("BASE", base),
    )?;
    let app = env.runnable("app").init(StartOptions::new(image))?;
    app.start()?;
    let out = app.exec(Command::new("/bin/cat").arg("/etc/motd"))?;
    assert_eq!(out.stdout, "built without async\n");
    env.close()?;
    assert_eq!(leftovers("e2ekit-t-dockerfile-blocking"), (0, 0));
    Ok(())
}
