//! Real private engines on the machine's kernel: needs root, dockerd, the docker CLI, and
//! /bin/busybox (busybox-static; installed with apt-get if missing).
//!
//! Every test checks afterwards that its nodes left nothing behind, holding the node's index
//! lock meanwhile so that a concurrently starting engine (from this or another test process)
//! cannot take the index and be mistaken for leftovers.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use e2ekit_test_engines::{reap_all, Cluster, IndexLock, PrivateEngine};

fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    out
}

/// Runs `docker -H host args…` and returns stdout; panics with stderr on failure.
fn docker(host: &str, args: &[&str]) -> String {
    let out = run(Command::new("docker").arg("-H").arg(host).args(args));
    assert!(
        out.status.success(),
        "docker -H {host} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Imports a one-binary busybox image as `e2ekit-te/busybox:1` (the private engine has no
/// images and cannot pull).
fn import_busybox(host: &str) {
    if !Path::new("/bin/busybox").exists() {
        let install = || {
            run(Command::new("apt-get")
                .args(["install", "-y", "-qq", "busybox-static"])
                .env("DEBIAN_FRONTEND", "noninteractive"))
        };
        if !install().status.success() {
            run(Command::new("apt-get").args(["update", "-qq"]));
            let out = install();
            assert!(
                out.status.success(),
                "apt-get install busybox-static: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "e2ekit-te-bb-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).expect("create image dir");
    std::fs::copy("/bin/busybox", bin.join("busybox")).expect("copy busybox");
    for applet in ["sh", "sleep"] {
        std::os::unix::fs::symlink("busybox", bin.join(applet)).expect("symlink applet");
    }
    let script = format!(
        "tar -C '{}' -c . | docker -H '{host}' import - e2ekit-te/busybox:1",
        dir.display()
    );
    let out = run(Command::new("sh").args(["-c", &script]));
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "import: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Whether a process with this pid is alive (zombies count as gone) and mentions `needle`.
fn process_alive_with(pid: u32, needle: &str) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let zombie = stat
        .rfind(')')
        .is_some_and(|i| stat[i + 1..].trim_start().starts_with('Z'));
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    !stat.is_empty() && !zombie && String::from_utf8_lossy(&cmdline).contains(needle)
}

/// Asserts that node `index` left nothing behind: namespace, veth, socket, directories,
/// dockerd, other processes, mounts, cgroups, iptables rules.
fn assert_gone(index: u32, dockerd_pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(180);
    let lock = loop {
        if let Some(l) = IndexLock::try_acquire(index).expect("lock index") {
            break l;
        }
        assert!(Instant::now() < deadline, "index {index} stayed held");
        std::thread::sleep(Duration::from_millis(20));
    };
    let name = format!("e2ekit-eng-{index}");
    let netns = String::from_utf8_lossy(&run(Command::new("ip").args(["netns", "list"])).stdout)
        .to_string();
    assert!(
        !netns.split_whitespace().any(|w| w == name),
        "netns {name} still listed: {netns}"
    );
    assert!(!Path::new(&format!("/run/netns/{name}")).exists());
    let links =
        String::from_utf8_lossy(&run(Command::new("ip").args(["-o", "link", "show"])).stdout)
            .to_string();
    let veth = format!("e2k-h{index}");
    assert!(
        !links.lines().any(|l| l
            .split(':')
            .nth(1)
            .map(|n| n.trim().split('@').next() == Some(&veth))
            .unwrap_or(false)),
        "veth {veth} still there"
    );
    for p in [
        format!("/run/{name}.sock"),
        format!("/run/e2ekit-test-engines/{index}"),
        format!("/var/lib/e2ekit-test-engines/{index}"),
    ] {
        assert!(!Path::new(&p).exists(), "{p} still exists");
    }
    assert!(
        !process_alive_with(dockerd_pid, "dockerd"),
        "dockerd {dockerd_pid} still running"
    );
    let ours = [
        format!("/e2ekit-test-engines/{index}/"),
        format!("/e2ekit-test-engines/{index} "),
    ];
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    for l in mountinfo.lines() {
        assert!(
            !ours.iter().any(|o| l.contains(o.as_str())),
            "mount left: {l}"
        );
    }
    for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let args = String::from_utf8_lossy(
            &std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default(),
        )
        .replace('\0', " ");
        assert!(
            !(args.contains(&ours[0]) || args.contains(&format!("/run/{name}.sock")))
                || !process_alive_with(pid, ""),
            "process of {name} left: {pid} {args}"
        );
    }
    for c in std::fs::read_dir("/sys/fs/cgroup")
        .expect("/sys/fs/cgroup")
        .flatten()
    {
        assert!(
            !c.path().join(&name).exists(),
            "cgroup {} left",
            c.path().join(&name).display()
        );
    }
    let rules = String::from_utf8_lossy(
        &run(Command::new("iptables").args(["-w", "-S", "DOCKER-USER"])).stdout,
    )
    .to_string();
    assert!(
        !rules.split_whitespace().any(|t| t == veth),
        "iptables rule for {veth} left: {rules}"
    );
    lock.release();
}

#[test]
fn engine_is_separate_and_teardown_removes_everything() {
    let engine = PrivateEngine::start().expect("start");
    let index = engine.index();
    assert!((1..=250).contains(&index));
    assert_eq!(engine.name(), format!("e2ekit-eng-{index}"));
    assert_eq!(
        engine.docker_host(),
        format!("unix:///run/e2ekit-eng-{index}.sock")
    );
    assert_eq!(engine.node_addr(), format!("10.250.{index}.2"));
    assert_eq!(engine.tcp_host(), None);
    engine.ping().expect("ping");
    assert!(process_alive_with(engine.pid(), "dockerd"));

    let host = engine.docker_host();
    let info = docker(
        &host,
        &["info", "--format", "{{.DockerRootDir}}|{{.ID}}|{{.Driver}}"],
    );
    let main = docker(
        "unix:///var/run/docker.sock",
        &["info", "--format", "{{.DockerRootDir}}|{{.ID}}|{{.Driver}}"],
    );
    let (ours, theirs): (Vec<&str>, Vec<&str>) =
        (info.split('|').collect(), main.split('|').collect());
    assert_eq!(ours[0], format!("/var/lib/e2ekit-test-engines/{index}"));
    assert_ne!(ours[0], theirs[0], "same data-root as the main engine");
    assert_ne!(ours[1], theirs[1], "same engine ID as the main engine");
    assert_eq!(
        ours[2], theirs[2],
        "storage driver differs from the main engine's"
    );
    assert!(!docker(&host, &["version", "--format", "{{.Server.Version}}"]).is_empty());
    // A fresh engine: none of the main engine's images or containers.
    assert_eq!(docker(&host, &["ps", "-aq"]), "");
    assert_eq!(docker(&host, &["images", "-q"]), "");

    // Something to clean up: a running container means shims, a fuse-overlayfs mount, a
    // container network namespace and cgroups.
    import_busybox(&host);
    docker(
        &host,
        &[
            "run",
            "-d",
            "--name",
            "e2ekit-te-run",
            "e2ekit-te/busybox:1",
            "/bin/sleep",
            "1000",
        ],
    );

    let pid = engine.pid();
    engine.stop().expect("stop");
    assert_gone(index, pid);
}

#[test]
fn two_engines_start_concurrently() {
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(PrivateEngine::start);
        let b = s.spawn(PrivateEngine::start);
        (a.join().expect("thread a"), b.join().expect("thread b"))
    });
    let (a, b) = (a.expect("start a"), b.expect("start b"));
    assert_ne!(a.index(), b.index());
    a.ping().expect("ping a");
    b.ping().expect("ping b");
    let ra = docker(
        &a.docker_host(),
        &["info", "--format", "{{.DockerRootDir}}"],
    );
    let rb = docker(
        &b.docker_host(),
        &["info", "--format", "{{.DockerRootDir}}"],
    );
    assert_ne!(ra, rb);
    let gone = [(a.index(), a.pid()), (b.index(), b.pid())];
    drop(a);
    drop(b);
    for (i, p) in gone {
        assert_gone(i, p);
    }
}

#[test]
fn kill_then_restart_keeps_containers_known() {
    let mut engine = PrivateEngine::start().expect("start");
    let host = engine.docker_host();
    import_busybox(&host);
    docker(
        &host,
        &[
            "create",
            "--name",
            "e2ekit-te-created",
            "e2ekit-te/busybox:1",
            "/bin/sleep",
            "1000",
        ],
    );
    // A short stop timeout: without live-restore the restarted dockerd stops it before it
    // answers, and busybox sleep as PID 1 ignores SIGTERM.
    docker(
        &host,
        &[
            "run",
            "-d",
            "--stop-timeout",
            "1",
            "--name",
            "e2ekit-te-running",
            "e2ekit-te/busybox:1",
            "/bin/sleep",
            "1000",
        ],
    );
    let workload: u32 = docker(
        &host,
        &["inspect", "-f", "{{.State.Pid}}", "e2ekit-te-running"],
    )
    .parse()
    .expect("pid");
    let first = engine.pid();

    engine.kill().expect("kill");
    let err = engine
        .ping_timeout(Duration::from_secs(1))
        .expect_err("ping after kill");
    assert!(
        !err.is_timeout(),
        "a killed engine refuses, it does not hang: {err}"
    );
    assert!(!process_alive_with(first, "dockerd"));
    assert!(
        process_alive_with(workload, "sleep"),
        "the container's process died with dockerd"
    );
    assert!(
        engine.freeze().is_err(),
        "freeze of a killed engine must fail"
    );

    engine.restart().expect("restart");
    engine.ping().expect("ping after restart");
    assert_ne!(engine.pid(), first);
    assert_eq!(
        docker(
            &host,
            &["inspect", "-f", "{{.State.Status}}", "e2ekit-te-created"]
        ),
        "created"
    );
    assert_eq!(
        docker(
            &host,
            &["inspect", "-f", "{{.State.Running}}", "e2ekit-te-running"]
        ),
        "false"
    );
    // The engine works normally afterwards.
    docker(&host, &["start", "e2ekit-te-running"]);
    assert_eq!(
        docker(
            &host,
            &["inspect", "-f", "{{.State.Running}}", "e2ekit-te-running"]
        ),
        "true"
    );

    let (index, pid) = (engine.index(), engine.pid());
    drop(engine);
    assert_gone(index, pid);
}

#[test]
fn live_restore_keeps_containers_running_across_restart() {
    let mut engine = PrivateEngine::builder()
        .live_restore(true)
        .start()
        .expect("start");
    let host = engine.docker_host();
    import_busybox(&host);
    docker(
        &host,
        &[
            "run",
            "-d",
            "--name",
            "e2ekit-te-live",
            "e2ekit-te/busybox:1",
            "/bin/sleep",
            "1000",
        ],
    );
    let workload = docker(
        &host,
        &["inspect", "-f", "{{.State.Pid}}", "e2ekit-te-live"],
    );

    engine.kill().expect("kill");
    engine.restart().expect("restart");
    assert_eq!(
        docker(
            &host,
            &["inspect", "-f", "{{.State.Running}}", "e2ekit-te-live"]
        ),
        "true"
    );
    assert_eq!(
        docker(
            &host,
            &["inspect", "-f", "{{.State.Pid}}", "e2ekit-te-live"]
        ),
        workload
    );

    let (index, pid) = (engine.index(), engine.pid());
    drop(engine);
    assert_gone(index, pid);
}

#[test]
fn freeze_makes_pings_hang_and_thaw_answers() {
    let mut engine = PrivateEngine::start().expect("start");
    engine.freeze().expect("freeze");
    assert!(engine.is_frozen());
    let err = engine
        .ping_timeout(Duration::from_secs(1))
        .expect_err("ping while frozen");
    assert!(err.is_timeout(), "expected a timeout, got: {err}");
    engine.thaw().expect("thaw");
    engine.ping().expect("ping after thaw");

    // Dropping a frozen engine works too.
    engine.freeze().expect("freeze again");
    let (index, pid) = (engine.index(), engine.pid());
    drop(engine);
    assert_gone(index, pid);
}

#[test]
fn engine_of_a_killed_process_is_reaped() {
    let mut holder = Command::new(env!("CARGO_BIN_EXE_e2ekit-test-engines"))
        .arg("hold")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn holder");
    let mut line = String::new();
    BufReader::new(holder.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read holder");
    let mut words = line.split_whitespace();
    let index: u32 = words
        .next()
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("holder said {line:?}"));
    let host = words.next().expect("docker host").to_string();
    docker(&host, &["version"]);
    let dockerd = e2ekit_test_engines::list()
        .into_iter()
        .find(|n| n.index == index)
        .and_then(|n| n.dockerd_pid)
        .expect("holder's dockerd listed");

    holder.kill().expect("SIGKILL holder");
    holder.wait().expect("reap holder");
    // Another test's start() may reap it first; either way it must end up gone.
    reap_all().expect("reap_all");
    assert_gone(index, dockerd);
}

#[test]
fn tcp_listener_answers_from_the_host() {
    let engine = PrivateEngine::builder().tcp(true).start().expect("start");
    let tcp = engine.tcp_host().expect("tcp host");
    assert_eq!(tcp, format!("tcp://10.250.{}.2:2375", engine.index()));
    assert_eq!(
        docker(&tcp, &["version", "--format", "{{.Server.Version}}"]),
        docker(
            &engine.docker_host(),
            &["version", "--format", "{{.Server.Version}}"]
        )
    );
    let (index, pid) = (engine.index(), engine.pid());
    drop(engine);
    assert_gone(index, pid);
}

#[test]
fn cluster_nodes_reach_each_other() {
    let cluster = Cluster::start(2).expect("cluster");
    let [a, b] = cluster.engines() else {
        panic!("expected two engines");
    };
    let rules = String::from_utf8_lossy(
        &run(Command::new("iptables").args(["-w", "-S", "DOCKER-USER"])).stdout,
    )
    .to_string();
    for (from, to) in [(a.veth(), b.veth()), (b.veth(), a.veth())] {
        assert!(
            rules
                .lines()
                .any(|l| l.contains(&format!("-i {from} -o {to} "))),
            "no rule {from} -> {to}: {rules}"
        );
    }
    // From inside node a, node b's engine answers over the forwarded path.
    let out = run(Command::new("nsenter")
        .arg(format!("--net=/run/netns/{}", a.name()))
        .args([
            "docker",
            "-H",
            &b.tcp_host().expect("tcp"),
            "version",
            "--format",
            "{{.Server.Version}}",
        ]));
    assert!(
        out.status.success(),
        "node a cannot reach node b: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let gone: Vec<(u32, u32)> = cluster
        .engines()
        .iter()
        .map(|e| (e.index(), e.pid()))
        .collect();
    cluster.stop().expect("stop cluster");
    for (i, p) in gone {
        assert_gone(i, p);
    }
}

#[test]
fn failed_start_cleans_up_and_shows_the_log() {
    // No dockerd answers within a millisecond: the start fails after spawning it.
    let err = PrivateEngine::builder()
        .start_timeout(Duration::from_millis(1))
        .start()
        .expect_err("start with a 1 ms timeout");
    let e2ekit_test_engines::Error::Start { node, log_tail, .. } = &err else {
        panic!("expected a start error, got: {err}");
    };
    let message = err.to_string();
    eprintln!("{message}");
    assert!(message.contains("dockerd did not come up"), "{message}");
    assert!(message.contains(log_tail.as_str()));
    let index: u32 = node
        .strip_prefix("e2ekit-eng-")
        .and_then(|i| i.parse().ok())
        .expect("node name");
    assert_gone(index, 0);
}

#[test]
fn not_root_is_a_clear_error() {
    let out = run(Command::new("setpriv").args([
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        env!("CARGO_BIN_EXE_e2ekit-test-engines"),
        "reap",
    ]));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("need root") && stderr.contains("euid 65534"),
        "{stderr}"
    );
}

#[test]
fn engine_is_torn_down_when_its_owner_panics() {
    let (tx, rx) = std::sync::mpsc::channel();
    let result = std::thread::spawn(move || {
        let engine = PrivateEngine::start().expect("start");
        tx.send((engine.index(), engine.pid())).expect("send");
        panic!("test panic with a live engine");
    })
    .join();
    assert!(result.is_err());
    let (index, pid) = rx.recv().expect("engine started");
    assert_gone(index, pid);
}
