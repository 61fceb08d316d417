//! Nothing outlives its process (issue 12): SIGTERM and SIGINT close a process's environments
//! before it exits; after SIGKILL its reaper removes them within 10 s without any later run,
//! on a local and on a remote (tcp://) engine; a kept environment survives the reaper; a
//! leftover of another host is swept once stale, a fresh one is not.
//!
//! Every scenario runs in a child copy of this test binary, which builds an environment with
//! a running container, prints `CHILD-READY <shared dir>`, and waits to be signalled.

use std::io::BufRead;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use e2ekit::prelude::*;

use crate::common::{self, busybox};

/// The bound the issue sets for removal after a SIGKILL.
const SIGKILL_BOUND: Duration = Duration::from_secs(10);
/// Hang guard for waits that should end far sooner.
const HANG_GUARD: Duration = Duration::from_secs(60);

/// In a child process: an environment named `$E2EKIT_CHILD_REAP` on `$E2EKIT_CHILD_ENGINE`
/// (default engine when unset) with one running container; says so and waits to be killed.
fn child_scenario(name: &str) {
    let engine = std::env::var("E2EKIT_CHILD_ENGINE").ok();
    let panic_after_ready = std::env::var_os("E2EKIT_CHILD_PANIC").is_some();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let env = Environment::builder()
            .engine(Engine::docker_at(engine.as_deref()))
            .name(name)
            .build()
            .await
            .expect("env");
        let image = busybox(&env).await.expect("image");
        let r = env
            .runnable("victim")
            .init(StartOptions::new(image).command(Command::new("sleep").arg("3600")))
            .expect("init");
        r.start().await.expect("start");
        println!("CHILD-READY {}", env.shared_dir().display());
        if panic_after_ready {
            panic!("the scenario failed on purpose");
        }
        tokio::time::sleep(Duration::from_secs(600)).await;
    });
}

/// A child running `test` for environment `name`, once its environment is up: the child and
/// the shared directory it reported.
fn spawn_child(test: &str, name: &str, envs: &[(&str, &str)]) -> (std::process::Child, PathBuf) {
    let mut all = vec![("E2EKIT_CHILD_REAP", name)];
    all.extend_from_slice(envs);
    let mut child = common::child_command(test, &all)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("child stdout");
    let mut lines = std::io::BufReader::new(stdout).lines();
    let dir = lines
        .by_ref()
        .map_while(|l| l.ok())
        // The harness may print `test <name> ... ` before it on the same line.
        .find_map(|l| {
            l.split_once("CHILD-READY ")
                .map(|(_, dir)| PathBuf::from(dir.trim()))
        });
    // Drained to the end, so the child never writes into a closed pipe.
    std::thread::spawn(move || lines.for_each(drop));
    match dir {
        Some(dir) => (child, dir),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the child never reported its environment up");
        }
    }
}

/// Pids of the reapers watching process `pid` (found by their `E2EKIT_REAPER` variable).
fn reapers_of(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            std::fs::read(format!("/proc/{p}/environ")).is_ok_and(|env| {
                env.split(|b| *b == 0).any(|var| {
                    let var = String::from_utf8_lossy(var);
                    var.strip_prefix("E2EKIT_REAPER=")
                        .is_some_and(|owner| owner.contains(&format!(":{pid}:")))
                })
            })
        })
        .collect()
}

fn is_running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit(')')
            .next()
            .is_some_and(|r| !r.trim_start().starts_with('Z'))
    })
}

/// Polls `done` until it holds or `limit` passes; returns the time it took.
fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    let mut interval = Duration::from_millis(20);
    loop {
        if done() {
            return Some(start.elapsed());
        }
        if start.elapsed() > limit {
            return None;
        }
        std::thread::sleep(interval);
        interval = (interval * 2).min(Duration::from_millis(250));
    }
}

fn signal(child: &std::process::Child, signo: i32) {
    let pid = i32::try_from(child.id()).expect("a pid");
    // SAFETY: sending a signal to our own child.
    assert_eq!(unsafe { libc::kill(pid, signo) }, 0, "signalling the child");
}

#[test]
fn sigterm_and_sigint_remove_the_environments_before_the_process_exits() {
    if let Ok(name) = std::env::var("E2EKIT_CHILD_REAP") {
        return child_scenario(&name);
    }
    use std::os::unix::process::ExitStatusExt;
    let test = "reaper::sigterm_and_sigint_remove_the_environments_before_the_process_exits";
    for (signo, name) in [
        (libc::SIGTERM, "e2ekit-t-reap-term"),
        (libc::SIGINT, "e2ekit-t-reap-int"),
    ] {
        // No reaper: only the signal handler can have removed them by the time the child
        // has exited.
        let (mut child, dir) = spawn_child(test, name, &[("E2EKIT_NO_REAPER", "1")]);
        assert_eq!(common::leftovers_on(None, name), (1, 1), "{name} is up");
        signal(&child, signo);
        let status = child.wait().expect("the child ends");
        assert_eq!(
            status.signal(),
            Some(signo),
            "the exit status is the signal's: {status}"
        );
        assert_eq!(
            common::leftovers_on(None, name),
            (0, 0),
            "{name} outlived its process (signal {signo})"
        );
        assert!(!dir.exists(), "{} outlived its process", dir.display());
    }
}

/// SIGKILLs a child on `engine` and returns how long its environment took to disappear.
fn sigkill_is_reaped(test: &str, name: &str, engine: Option<&str>) -> Duration {
    let envs: Vec<(&str, &str)> = engine
        .map(|e| ("E2EKIT_CHILD_ENGINE", e))
        .into_iter()
        .collect();
    let (mut child, dir) = spawn_child(test, name, &envs);
    let reapers = reapers_of(child.id());
    assert_eq!(
        reapers.len(),
        1,
        "one reaper watches the child: {reapers:?}"
    );
    assert_eq!(common::leftovers_on(engine, name), (1, 1), "{name} is up");
    let killed = Instant::now();
    child.kill().expect("SIGKILL the child");
    let _ = child.wait();
    let took = wait_until(HANG_GUARD, || {
        common::leftovers_on(engine, name) == (0, 0) && !dir.exists()
    });
    let took = took.map(|_| killed.elapsed());
    assert!(
        took.is_some_and(|t| t <= SIGKILL_BOUND),
        "{name} was not removed within {SIGKILL_BOUND:?} of the SIGKILL (took {took:?})"
    );
    assert!(
        wait_until(HANG_GUARD, || !is_running(reapers[0])).is_some(),
        "the reaper exits once it removed everything"
    );
    took.unwrap_or_default()
}

#[test]
fn a_sigkilled_process_is_reaped_within_ten_seconds() {
    if let Ok(name) = std::env::var("E2EKIT_CHILD_REAP") {
        return child_scenario(&name);
    }
    let took = sigkill_is_reaped(
        "reaper::a_sigkilled_process_is_reaped_within_ten_seconds",
        "e2ekit-t-reap-kill",
        None,
    );
    eprintln!("local engine: SIGKILL to everything removed in {took:?}");
}

#[test]
fn a_sigkilled_process_on_a_remote_engine_is_reaped_within_ten_seconds() {
    if let Ok(name) = std::env::var("E2EKIT_CHILD_REAP") {
        return child_scenario(&name);
    }
    let engine = e2ekit_test_engines::PrivateEngine::builder()
        .tcp(true)
        .start()
        .unwrap_or_else(|e| panic!("a private engine (root needed): {e}"));
    let endpoint = engine.tcp_host().expect("a tcp:// endpoint");
    // No other test uses this engine, so no sweep can have removed it: only the reaper.
    let took = sigkill_is_reaped(
        "reaper::a_sigkilled_process_on_a_remote_engine_is_reaped_within_ten_seconds",
        "e2ekit-t-reap-remote",
        Some(&endpoint),
    );
    eprintln!("remote engine ({endpoint}): SIGKILL to everything removed in {took:?}");
    engine.stop().expect("stopping the private engine");
}

#[test]
fn a_kept_environment_survives_the_reaper() {
    if let Ok(name) = std::env::var("E2EKIT_CHILD_REAP") {
        return child_scenario(&name);
    }
    let name = "e2ekit-t-reap-kept";
    let (mut child, dir) = spawn_child(
        "reaper::a_kept_environment_survives_the_reaper",
        name,
        &[("E2EKIT_KEEP_ON_FAILURE", "1"), ("E2EKIT_CHILD_PANIC", "1")],
    );
    let reapers = reapers_of(child.id());
    assert_eq!(
        reapers.len(),
        1,
        "one reaper watches the child: {reapers:?}"
    );
    let status = child.wait().expect("the child ends");
    assert!(!status.success(), "the child panics on purpose");
    assert!(
        wait_until(HANG_GUARD, || !is_running(reapers[0])).is_some(),
        "the reaper is done"
    );
    let left = common::leftovers_on(None, name);
    let dir_left = dir.exists();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(e2ekit::sweep::remove_environment(None, name))
        .expect("removing the kept environment");
    assert_eq!(left, (1, 1), "the reaper removed a kept environment");
    assert!(dir_left, "the reaper removed a kept shared dir");
    assert_eq!(common::leftovers_on(None, name), (0, 0));
}

/// Creates a network and a (never started) container labelled as owned by a process of
/// another host, created at `created`, with the `docker` CLI (as another host's e2ekit would).
fn foreign_leftover(name: &str, created: &str, image: &str) {
    foreign_leftover_of(name, "otherhost:1:1", created, image)
}

/// The same, owned by `owner`.
fn foreign_leftover_of(name: &str, owner: &str, created: &str, image: &str) {
    let labels = [
        format!("e2ekit.env={name}"),
        format!("e2ekit.owner={owner}"),
        format!("e2ekit.created={created}"),
    ];
    let label_args: Vec<String> = labels
        .iter()
        .flat_map(|l| ["--label".into(), l.clone()])
        .collect();
    for args in [
        [
            vec!["network".into(), "create".into()],
            label_args.clone(),
            vec![name.into()],
        ]
        .concat(),
        [
            vec!["create".into(), "--name".into(), format!("{name}-r")],
            label_args.clone(),
            vec![image.into(), "sleep".into(), "60".into()],
        ]
        .concat(),
    ] {
        let out = std::process::Command::new("docker")
            .args(&args)
            .output()
            .expect("the docker CLI");
        assert!(
            out.status.success(),
            "docker {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[tokio::test]
async fn a_foreign_hosts_leftover_is_swept_once_stale_and_a_fresh_one_is_not() -> Result<()> {
    let (old, fresh) = ("e2ekit-t-foreign-old", "e2ekit-t-foreign-fresh");
    let env = Environment::builder()
        .name("e2ekit-t-foreign")
        .build()
        .await?;
    let image = busybox(&env).await?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    // 25 hours ago and now, in the label's format.
    let stamp = |secs: u64| {
        let out = std::process::Command::new("date")
            .args(["-u", "-d", &format!("@{secs}"), "+%Y-%m-%dT%H:%M:%SZ"])
            .output()
            .expect("date");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    // As old, but its owner's reaper (on its own host) beat an hour ago: it is alive. The
    // heartbeat comes first, so no sweep of a concurrent test sees the leftover without it.
    let beating = "e2ekit-t-foreign-beating";
    let beating_owner = "beatinghost:1:1";
    let heartbeat = "e2ekit-t-foreign-heartbeat";
    // Leftovers of an interrupted earlier run of this test (the fresh and beating ones are
    // alive to every sweep).
    for name in [old, fresh, beating] {
        let _ = e2ekit::sweep::remove_environment(None, name).await;
    }
    let _ = std::process::Command::new("docker")
        .args(["volume", "rm", "-f", heartbeat])
        .output();
    let created = std::process::Command::new("docker")
        .args([
            "volume",
            "create",
            "--label",
            &format!("e2ekit.alive={beating_owner}"),
            "--label",
            &format!("e2ekit.created={}", stamp(now - 3600)),
            heartbeat,
        ])
        .output()
        .expect("the docker CLI");
    assert!(created.status.success(), "docker volume create failed");
    foreign_leftover(old, &stamp(now - 25 * 3600), &image);
    foreign_leftover(fresh, &stamp(now), &image);
    foreign_leftover_of(beating, beating_owner, &stamp(now - 25 * 3600), &image);

    let listed = e2ekit::sweep::list_environments(None).await?;
    let state = |n: &str| listed.iter().find(|e| e.name == n).map(|e| e.state);
    // Another test's environment build may have swept the stale one already.
    assert!(
        matches!(state(old), Some(e2ekit::sweep::OwnerState::Orphaned) | None),
        "{:?}",
        state(old)
    );
    assert_eq!(state(fresh), Some(e2ekit::sweep::OwnerState::Alive));
    assert_eq!(
        state(beating),
        Some(e2ekit::sweep::OwnerState::Alive),
        "a fresh heartbeat keeps an old foreign environment"
    );

    let gc = std::process::Command::new(env!("CARGO_BIN_EXE_e2ekit"))
        .arg("gc")
        .output()
        .expect("e2ekit gc");
    let old_left = common::leftovers_on(None, old);
    let fresh_left = common::leftovers_on(None, fresh);
    let beating_left = common::leftovers_on(None, beating);
    e2ekit::sweep::remove_environment(None, beating).await?;
    let _ = std::process::Command::new("docker")
        .args(["volume", "rm", "-f", heartbeat])
        .output();
    e2ekit::sweep::remove_environment(None, fresh).await?;
    e2ekit::sweep::remove_environment(None, old).await?;
    env.close().await;
    assert!(
        gc.status.success(),
        "{}",
        String::from_utf8_lossy(&gc.stderr)
    );
    assert_eq!(old_left, (0, 0), "a stale foreign leftover stays");
    assert_eq!(fresh_left, (1, 1), "a fresh foreign leftover was removed");
    assert_eq!(
        beating_left,
        (1, 1),
        "a leftover whose owner beats was removed"
    );
    Ok(())
}

#[tokio::test]
async fn the_reaper_records_that_its_owner_is_alive() -> Result<()> {
    let env = Environment::builder()
        .name("e2ekit-t-heartbeat")
        .build()
        .await?;
    // The reaper beats once at start; it may still be on its way.
    let mut volumes = String::new();
    for _ in 0..100 {
        let out = std::process::Command::new("docker")
            .args([
                "volume",
                "ls",
                "-q",
                "--filter",
                &format!("label=e2ekit.alive={}", e2ekit::labels::owner()),
            ])
            .output()
            .expect("the docker CLI");
        volumes = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !volumes.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    env.close().await;
    assert_eq!(
        volumes.lines().count(),
        1,
        "one heartbeat of this process's reaper: {volumes:?}"
    );
    Ok(())
}
