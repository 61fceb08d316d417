//! Environment: naming, network, shared dir, host address, options, listeners, closers,
//! cleanup on close, on drop and on panic, and sweeping of leftovers.

use std::sync::{Arc, Mutex};

use e2ekit::prelude::*;

use crate::common::{self, busybox, leftovers};

fn sleeper(image: &str) -> StartOptions {
    StartOptions::new(image).command(Command::new("sleep").arg("3600"))
}

#[tokio::test]
async fn derived_name() -> Result<()> {
    let env = Environment::new().await?;
    // test binary "engine", module "environment", test "derived_name"
    assert_eq!(env.name(), "engine-environment-derived-name");
    assert_eq!(
        leftovers(env.name()).1,
        1,
        "the environment's network exists"
    );
    env.close().await;
    assert_eq!(leftovers(env.name()), (0, 0));
    Ok(())
}

#[tokio::test]
async fn shared_dir_has_the_same_path_inside_and_outside() -> Result<()> {
    let env = Environment::builder()
        .name("e2ekit-t-shared")
        .build()
        .await?;
    let image = busybox(&env).await?;
    let future = env.runnable("writer").future()?;
    let dir = future.dir().to_path_buf();
    assert!(dir.starts_with(env.shared_dir()));
    let script = format!("echo from-container > {}/hello; sleep 3600", dir.display());
    let writer = future.init(
        StartOptions::new(image)
            .command(Command::sh(script))
            .readiness(CmdProbe::new(
                Command::new("test").args(["-f", &format!("{}/hello", dir.display())]),
            )),
    )?;
    start_and_wait_ready(&[&writer]).await?;
    let content =
        std::fs::read_to_string(dir.join("hello")).expect("file written by the container");
    assert_eq!(content.trim(), "from-container");
    std::fs::write(env.shared_dir().join("from-host"), "hi").expect("host write");
    let out = writer
        .exec(Command::new("cat").arg(env.shared_dir().join("from-host").display().to_string()))
        .await?;
    assert_eq!(out.stdout, "hi");
    let shared = env.shared_dir().to_path_buf();
    env.close().await;
    assert!(
        !shared.exists(),
        "shared dir {} must be removed on close",
        shared.display()
    );
    Ok(())
}

#[tokio::test]
async fn containers_reach_the_host_at_host_addr() -> Result<()> {
    let env = Environment::builder()
        .name("e2ekit-t-hostaddr")
        .build()
        .await?;
    let image = busybox(&env).await?;
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let accepted = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        let (mut sock, _) = listener.accept().await.expect("accept");
        sock.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 7\r\n\r\nhost-ok")
            .await
            .expect("write");
    });
    let client = env.runnable("client").init(sleeper(&image))?;
    client.start().await?;
    let url = format!("http://{}:{port}/", env.host_addr());
    let out = client
        .exec(Command::new("wget").args(["-qO-", &url]))
        .await?;
    assert_eq!(out.stdout, "host-ok");
    accepted.await.expect("host server task");
    env.close().await;
    Ok(())
}

#[tokio::test]
async fn runnables_find_each_other_by_internal_endpoint() -> Result<()> {
    let env = Environment::builder().name("e2ekit-t-dns").build().await?;
    let image = busybox(&env).await?;
    let app = common::demo_runnable(&env, "app", &[]).await?;
    let endpoint = app.internal_endpoint("http")?;
    assert_eq!(endpoint, "e2ekit-t-dns-app:8080");
    let client = env.runnable("client").init(sleeper(&image))?;
    start_and_wait_ready(&[&app, &client]).await?;
    let by_container_name = client
        .exec(Command::new("wget").args(["-qO-", &format!("http://{endpoint}/ready")]))
        .await?;
    assert_eq!(by_container_name.stdout.trim(), "ready");
    let by_alias = client
        .exec(Command::new("wget").args(["-qO-", "http://app:8080/ready"]))
        .await?;
    assert_eq!(by_alias.stdout.trim(), "ready");
    env.close().await;
    Ok(())
}

#[tokio::test]
async fn listeners_see_starts_and_stops_and_closers_run_before_removal() -> Result<()> {
    let env = Environment::builder()
        .name("e2ekit-t-listen")
        .build()
        .await?;
    let image = busybox(&env).await?;
    let seen: Arc<Mutex<Vec<Vec<String>>>> = Arc::default();
    let record = seen.clone();
    env.add_listener(Arc::new(move |running: &[Runnable]| {
        let names = running.iter().map(|r| r.name().to_string()).collect();
        record.lock().expect("lock").push(names);
        Ok(())
    }));
    let a = env.runnable("a").init(sleeper(&image))?;
    let b = env.runnable("b").init(sleeper(&image))?;
    a.start().await?;
    b.start().await?;
    a.stop().await?;
    let closer_saw_running = Arc::new(Mutex::new(None));
    let flag = closer_saw_running.clone();
    let b2 = b.clone();
    env.add_closer(move || {
        *flag.lock().expect("lock") = Some(b2.is_running());
    });
    env.close().await;
    let seen = seen.lock().expect("lock").clone();
    assert_eq!(
        seen,
        vec![
            vec!["a".to_string()],
            vec!["a".into(), "b".into()],
            vec!["b".into()]
        ]
    );
    assert_eq!(
        *closer_saw_running.lock().expect("lock"),
        Some(true),
        "closers run before runnables are removed"
    );
    Ok(())
}

#[tokio::test]
async fn volumes_and_cpu_limit_apply_to_every_runnable() -> Result<()> {
    let host_dir = std::env::temp_dir().join("e2ekit-t-volume-src");
    std::fs::create_dir_all(&host_dir).expect("mkdir");
    std::fs::write(host_dir.join("data"), "mounted").expect("write");
    let env = Environment::builder()
        .name("e2ekit-t-volumes")
        .volume(format!("{}:/mnt/extra:ro", host_dir.display()))
        .cpus(0.5)
        .verbose(true)
        .build()
        .await?;
    let image = busybox(&env).await?;
    let r = env.runnable("r").init(sleeper(&image))?;
    r.start().await?;
    assert_eq!(
        r.exec(Command::new("cat").arg("/mnt/extra/data"))
            .await?
            .stdout,
        "mounted"
    );
    let cpu = r
        .exec(Command::sh(
            "cat /sys/fs/cgroup/cpu.max 2>/dev/null || cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us",
        ))
        .await?;
    assert!(
        cpu.stdout.starts_with("50000"),
        "0.5 CPU should be a 50000us quota, got {:?}",
        cpu.stdout
    );
    env.close().await;
    std::fs::remove_dir_all(&host_dir).expect("cleanup");
    Ok(())
}

#[tokio::test]
async fn leftovers_of_an_earlier_run_with_the_same_name_are_removed() -> Result<()> {
    const TEST: &str = "environment::leftovers_of_an_earlier_run_with_the_same_name_are_removed";
    if std::env::var("E2EKIT_CHILD_EARLIER_RUN").is_ok() {
        // The earlier run: starts a runnable and exits without any cleanup (no close, no
        // drop; process::exit runs no destructors), as a killed test would.
        let env = Environment::builder()
            .name("e2ekit-t-sweep")
            .build()
            .await?;
        let image = busybox(&env).await?;
        env.runnable("old").init(sleeper(&image))?.start().await?;
        std::process::exit(0);
    }
    let (_, text) = common::run_child(TEST, &[("E2EKIT_CHILD_EARLIER_RUN", "1")]);
    assert_eq!(
        leftovers("e2ekit-t-sweep"),
        (1, 1),
        "the earlier run left:\n{text}"
    );
    let env = Environment::builder()
        .name("e2ekit-t-sweep")
        .build()
        .await?;
    assert_eq!(
        leftovers("e2ekit-t-sweep"),
        (0, 1),
        "the old container is gone, a new network exists"
    );
    // The same name, open in this process, is reported rather than swept.
    let again = Environment::builder().name("e2ekit-t-sweep").build().await;
    assert!(
        matches!(again, Err(Error::EnvironmentInUse { .. })),
        "{again:?}"
    );
    env.close().await;
    assert_eq!(leftovers("e2ekit-t-sweep"), (0, 0));
    Ok(())
}

async fn start_one_and_drop(name: &str) -> Result<()> {
    let env = Environment::builder().name(name).build().await?;
    let image = busybox(&env).await?;
    let r = env.runnable("r").init(sleeper(&image))?;
    r.start().await?;
    assert_eq!(leftovers(name), (1, 1));
    drop(r);
    drop(env);
    Ok(())
}

#[tokio::test(flavor = "current_thread")]
async fn drop_without_close_cleans_up_on_a_current_thread_runtime() -> Result<()> {
    start_one_and_drop("e2ekit-t-drop-ct").await?;
    assert_eq!(leftovers("e2ekit-t-drop-ct"), (0, 0));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_without_close_cleans_up_on_a_multi_thread_runtime() -> Result<()> {
    start_one_and_drop("e2ekit-t-drop-mt").await?;
    assert_eq!(leftovers("e2ekit-t-drop-mt"), (0, 0));
    Ok(())
}

#[test]
fn a_panicking_scenario_leaves_nothing_behind() {
    for flavor in ["current", "multi"] {
        let name = format!("e2ekit-t-panic-{flavor}");
        let thread_name = name.clone();
        let outcome = std::thread::spawn(move || {
            let rt = if flavor == "current" {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
            } else {
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
            }
            .expect("runtime");
            rt.block_on(async move {
                let env = Environment::builder()
                    .name(thread_name)
                    .build()
                    .await
                    .expect("env");
                let image = busybox(&env).await.expect("image");
                let r = env.runnable("r").init(sleeper(&image)).expect("init");
                r.start().await.expect("start");
                panic!("scenario failed on purpose");
            })
        })
        .join();
        assert!(outcome.is_err(), "the scenario thread should have panicked");
        assert_eq!(
            leftovers(&name),
            (0, 0),
            "{flavor}-thread runtime left resources"
        );
    }
}

#[tokio::test]
async fn a_closed_environment_refuses_new_runnables_and_starts() -> Result<()> {
    let env = Environment::builder()
        .name("e2ekit-t-closed")
        .build()
        .await?;
    let image = busybox(&env).await?;
    let defined = env.runnable("early").init(sleeper(&image))?;
    env.close().await;
    env.close().await; // idempotent
    assert!(env.is_closed());
    let err = env.runnable("late").init(sleeper(&image)).unwrap_err();
    assert!(matches!(err, Error::EnvironmentClosed { .. }), "{err}");
    let err = defined.start().await.unwrap_err();
    assert!(err.to_string().contains("is closed"), "{err}");
    Ok(())
}

#[test]
fn e2e_docker_cpus_sets_the_default_limit_and_the_builder_wins() {
    // The variable is process-wide, so the check runs in a child copy of this test binary.
    if std::env::var_os("E2EKIT_CHILD_CPUS").is_some() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let quota = |env: &Environment| {
                let env = env.clone();
                async move {
                    let image = busybox(&env).await?;
                    let r = env.runnable("r").init(sleeper(&image))?;
                    r.start().await?;
                    let out = r
                        .exec(Command::sh("cat /sys/fs/cgroup/cpu.max 2>/dev/null || cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us"))
                        .await?;
                    Ok::<_, Error>(out.stdout.split_whitespace().next().unwrap_or_default().to_string())
                }
            };
            let from_var = Environment::builder().name("e2ekit-t-cpus-var").build().await?;
            println!("QUOTA-VAR={}", quota(&from_var).await?);
            from_var.close().await;
            let explicit = Environment::builder().name("e2ekit-t-cpus-opt").cpus(1.0).build().await?;
            println!("QUOTA-OPT={}", quota(&explicit).await?);
            explicit.close().await;
            let err = Environment::builder().name("e2ekit-t-cpus-bad").cpus(-1.0).build().await.unwrap_err();
            println!("BAD-CPUS={err}");
            Ok::<_, Error>(())
        })
        .expect("child scenario");
        return;
    }
    let out = common::run_child_test(
        "environment::e2e_docker_cpus_sets_the_default_limit_and_the_builder_wins",
        &[("E2EKIT_CHILD_CPUS", "1"), ("E2E_DOCKER_CPUS", "0.25")],
    );
    assert!(out.contains("QUOTA-VAR=25000"), "{out}");
    assert!(out.contains("QUOTA-OPT=100000"), "{out}");
    assert!(
        out.contains("BAD-CPUS=invalid argument: CPU limit must be a positive number"),
        "{out}"
    );
}

/// The user and group the root-files scenario runs as when the suite itself runs as root:
/// nobody, in the group that may use the engine socket.
fn unprivileged_child(test: &str, envs: &[(&str, &str)]) -> std::process::Command {
    use std::os::unix::fs::MetadataExt;
    let socket = std::fs::metadata("/var/run/docker.sock").expect(
        "this test runs the scenario as another user and needs the engine at /var/run/docker.sock",
    );
    let inner = common::child_command(test, envs);
    let mut cmd = std::process::Command::new("setpriv");
    cmd.args([
        "--reuid=65534",
        "--regid=65534",
        &format!("--groups={}", socket.gid()),
        "--",
    ])
    .arg(inner.get_program())
    .args(inner.get_args())
    .envs(envs.iter().copied());
    cmd
}

#[tokio::test]
async fn close_removes_files_containers_wrote_as_root() -> Result<()> {
    const TEST: &str = "environment::close_removes_files_containers_wrote_as_root";
    let as_root = std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false);
    if as_root && std::env::var("E2EKIT_CHILD_ROOT_FILES").is_err() {
        // Root can delete anything, so the scenario needs a user that cannot.
        let out = unprivileged_child(TEST, &[("E2EKIT_CHILD_ROOT_FILES", "1")])
            .output()
            .expect("running the scenario as nobody needs setpriv (util-linux)");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "the unprivileged scenario failed:\n{text}"
        );
        assert!(text.contains("scenario ran as uid 65534"), "{text}");
        assert_eq!(leftovers("e2ekit-t-root-files"), (0, 0));
        // Leave the machine as it was: nobody's private e2ekit directory empties once the
        // child's reaper has finished and removed its log directory (within a second or two
        // of the child's exit; a hang guard, not a timing check).
        let private = std::env::temp_dir().join("e2ekit-65534");
        for _ in 0..100 {
            if std::fs::remove_dir(&private).is_ok() || !private.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(!private.exists(), "{} is left", private.display());
        return Ok(());
    }
    let env = Environment::builder()
        .name("e2ekit-t-root-files")
        .build()
        .await?;
    let image = common::busybox(&env).await?;
    let future = env.runnable("writer").future()?;
    let deep = future.dir().join("deep");
    let file = deep.join("file");
    let writer = future.init(
        StartOptions::new(image)
            .user("0")
            .command(Command::sh(format!(
                "mkdir -p {deep} && touch {file} && chmod 700 {deep} && exec sleep 3600",
                deep = deep.display(),
                file = file.display()
            )))
            .readiness(CmdProbe::new(
                Command::new("test").args(["-f".to_string(), file.display().to_string()]),
            )),
    )?;
    start_and_wait_ready(&[&writer]).await?;
    let denied = std::fs::read_dir(&deep).map(|_| ()).unwrap_err();
    assert_eq!(
        denied.kind(),
        std::io::ErrorKind::PermissionDenied,
        "precondition: we cannot delete what root wrote"
    );
    let shared = env.shared_dir().to_path_buf();
    env.close().await;
    assert!(!shared.exists(), "{} is left behind", shared.display());
    let uid = std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
        .unwrap_or(u32::MAX);
    println!("scenario ran as uid {uid}");
    Ok(())
}
