//! Names and paths of node N, and the teardown, reaping and listing that work from the index
//! alone (so they also clean up after a process that died without dropping its engine).

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use crate::sys::{self, IndexLock, DATA_DIR, RULE_COMMENT, RUN_DIR};
use crate::Error;

/// Highest node index: the index is the third octet of the node's 10.250.N.0/24 subnet.
pub const MAX_INDEX: u32 = 250;

/// `e2ekit-eng-N`: the node's network namespace, cgroup parent and socket name.
pub(crate) fn node_name(index: u32) -> String {
    format!("e2ekit-eng-{index}")
}

/// Every path and name belonging to node N.
#[derive(Debug, Clone)]
pub(crate) struct Paths {
    pub index: u32,
    pub name: String,
    /// `/run/e2ekit-test-engines/N`: config, key, log, pid file and exec-root.
    pub state_dir: PathBuf,
    pub exec_root: PathBuf,
    /// `/var/lib/e2ekit-test-engines/N`: the data-root.
    pub data_root: PathBuf,
    pub config: PathBuf,
    pub key: PathBuf,
    pub log: PathBuf,
    pub pidfile: PathBuf,
    pub containerd_pidfile: PathBuf,
    pub socket: PathBuf,
    pub netns_file: PathBuf,
    pub veth_host: String,
}

impl Paths {
    pub fn new(index: u32) -> Paths {
        let name = node_name(index);
        let state_dir = Path::new(RUN_DIR).join(index.to_string());
        let exec_root = state_dir.join("exec");
        Paths {
            index,
            data_root: Path::new(DATA_DIR).join(index.to_string()),
            config: state_dir.join("daemon.json"),
            key: state_dir.join("key.json"),
            log: state_dir.join("dockerd.log"),
            pidfile: state_dir.join("dockerd.pid"),
            containerd_pidfile: exec_root.join("containerd").join("containerd.pid"),
            socket: PathBuf::from(format!("/run/{name}.sock")),
            netns_file: PathBuf::from(format!("/run/netns/{name}")),
            veth_host: format!("e2k-h{index}"),
            exec_root,
            state_dir,
            name,
        }
    }

    pub fn host_addr(&self) -> String {
        format!("10.250.{}.1", self.index)
    }

    pub fn node_addr(&self) -> String {
        format!("10.250.{}.2", self.index)
    }

    /// Whether `arg` names something inside this node's state or data directories.
    fn mentions(&self, arg: &str) -> bool {
        [&self.state_dir, &self.data_root].iter().any(|d| {
            let d = d.to_string_lossy();
            arg == d || arg.contains(&format!("{d}/"))
        }) || arg.contains(&format!("/run/{}.sock", self.name))
    }
}

/// Programs an engine runs: a process of one of these whose arguments name the node's
/// directories is the node's even if it somehow left the namespace and cgroup. Anything else
/// (say, someone's `tail -f` of the log) is left alone.
const ENGINE_PROGRAMS: &[&str] = &[
    "dockerd",
    "containerd",
    "containerd-shim",
    "containerd-shim-runc-v2",
    "fuse-overlayfs",
    "runc",
    "docker-proxy",
    "nsenter",
];

/// All live processes of node N: in its network namespace, in its cgroups, or an engine
/// program working on its directories.
fn node_pids(p: &Paths, cgroups: &[PathBuf]) -> BTreeSet<u32> {
    let me = std::process::id();
    let mut pids: BTreeSet<u32> = sys::pids_in_netns(&p.netns_file).into_iter().collect();
    for c in cgroups {
        pids.extend(sys::pids_in_cgroup(c));
    }
    for pid in sys::all_pids() {
        let args = sys::cmdline(pid);
        let prog = args
            .first()
            .map(|a| a.rsplit('/').next().unwrap_or(a))
            .unwrap_or("");
        if ENGINE_PROGRAMS.contains(&prog) && args.iter().any(|a| p.mentions(a)) {
            pids.insert(pid);
        }
    }
    pids.retain(|pid| *pid != me && sys::alive(*pid));
    pids
}

/// Removes everything node N consists of. Idempotent; keeps going after a failure and reports
/// all of them. `child` is our handle on dockerd, if we started it, so that it gets reaped
/// instead of lingering as a zombie.
pub(crate) fn teardown(index: u32, mut child: Option<&mut Child>) -> Result<(), Error> {
    let tools = sys::tools()?;
    let p = Paths::new(index);
    let mut problems = Vec::new();
    let cgroups: Vec<PathBuf> = sys::cgroup_roots()
        .into_iter()
        .map(|r| r.join(&p.name))
        .collect();

    // Shim sockets can only be told apart while the namespace still has processes in it.
    let mut shim_sockets = BTreeSet::new();
    for pid in sys::pids_in_netns(&p.netns_file) {
        shim_sockets.extend(sys::shim_sockets(pid));
    }

    // 1. Processes: SIGKILL everything, repeatedly (dockerd or containerd may be starting a
    //    child right now), until nothing of the node is alive.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(c) = child.as_deref_mut() {
            let _ = c.try_wait();
        }
        let pids = node_pids(&p, &cgroups);
        if pids.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            problems.push(format!(
                "processes still alive 20 s after SIGKILL: {pids:?}"
            ));
            break;
        }
        for pid in pids {
            if let Err(e) = sys::signal(pid, libc::SIGKILL) {
                problems.push(format!("kill -KILL {pid}: {e}"));
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    if let Some(c) = child {
        // Dead by now (or we reported it); wait only if it has exited, never block.
        let _ = c.try_wait();
    }
    for s in shim_sockets {
        if let Err(e) = sys::remove_file_if_exists(&s) {
            problems.push(format!("remove shim socket {}: {e}", s.display()));
        }
    }

    // 2. Mounts under the data-root and exec-root (the data-root bind-mounted onto itself,
    //    fuse-overlayfs/overlay layers, shm, netns bind mounts): deepest first; a mount can
    //    hide another on the same path, so repeat until none is left.
    for round in 0..10 {
        let mut ours: Vec<PathBuf> = sys::mounts()
            .into_iter()
            .map(|m| m.mount_point)
            .filter(|m| m.starts_with(&p.state_dir) || m.starts_with(&p.data_root))
            .collect();
        if ours.is_empty() {
            break;
        }
        ours.sort_by_key(|m| std::cmp::Reverse(m.as_os_str().len()));
        for m in ours {
            if let Err(e) = sys::unmount(&m) {
                if round == 9 {
                    problems.push(format!("umount {}: {e}", m.display()));
                }
            }
        }
    }

    // 3. The cgroups dockerd created under --cgroup-parent /e2ekit-eng-N.
    for c in &cgroups {
        if let Err(e) = sys::remove_cgroup_tree(c) {
            problems.push(format!("rmdir cgroup {}: {e}", c.display()));
        }
    }

    // 4. Our iptables rules that mention the veth, then the veth and the namespace.
    if let Err(e) = remove_rules(&p.name, &tools.iptables, &p.veth_host) {
        problems.push(e.to_string());
    }
    if Path::new("/sys/class/net").join(&p.veth_host).exists() {
        if let Err(e) = sys::run(&p.name, &tools.ip, &["link", "del", &p.veth_host]) {
            problems.push(e.to_string());
        }
    }
    if p.netns_file.exists() {
        if let Err(e) = sys::run(&p.name, &tools.ip, &["netns", "del", &p.name]) {
            problems.push(e.to_string());
        }
    }

    // 5. Files and directories.
    if let Err(e) = sys::remove_file_if_exists(&p.socket) {
        problems.push(format!("remove {}: {e}", p.socket.display()));
    }
    for d in [&p.state_dir, &p.data_root] {
        if let Err(e) = sys::remove_dir_all_if_exists(d) {
            problems.push(format!("remove {}: {e}", d.display()));
        }
    }
    // Shared by all nodes: only goes when empty.
    let _ = fs::remove_dir(DATA_DIR);

    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::Teardown {
            node: p.name,
            problems,
        })
    }
}

/// Deletes every DOCKER-USER rule carrying our comment that names `veth`.
pub(crate) fn remove_rules(node: &str, iptables: &Path, veth: &str) -> Result<(), Error> {
    let listing = match sys::run(node, iptables, &["-w", "-S", "DOCKER-USER"]) {
        Ok(s) => s,
        // No chain (main engine runs without iptables): then we added nothing either.
        Err(Error::Command { stderr, .. })
            if stderr.contains("No chain") || stderr.contains("does not exist") =>
        {
            return Ok(())
        }
        Err(e) => return Err(e),
    };
    for line in listing.lines() {
        let tokens: Vec<String> = line
            .split_whitespace()
            .map(|t| t.trim_matches('"').to_string())
            .collect();
        let ours = tokens.first().map(String::as_str) == Some("-A")
            && tokens.iter().any(|t| t == RULE_COMMENT)
            && tokens.iter().any(|t| t == veth);
        if !ours {
            continue;
        }
        let mut args = vec!["-w".to_string(), "-D".to_string()];
        args.extend(tokens.into_iter().skip(1));
        sys::run(node, iptables, &args)?;
    }
    Ok(())
}

/// Inserts `-i from -o to -j ACCEPT` (with our comment) at the top of DOCKER-USER.
pub(crate) fn add_rule(node: &str, iptables: &Path, from: &str, to: &str) -> Result<(), Error> {
    sys::run(
        node,
        iptables,
        &[
            "-w",
            "-I",
            "DOCKER-USER",
            "-i",
            from,
            "-o",
            to,
            "-m",
            "comment",
            "--comment",
            RULE_COMMENT,
            "-j",
            "ACCEPT",
        ],
    )
    .map(|_| ())
}

/// Indexes for which anything of ours exists: a lock file, a state or data directory, a
/// namespace, a veth or a socket.
pub(crate) fn candidates() -> BTreeSet<u32> {
    fn names(dir: &str) -> Vec<String> {
        fs::read_dir(dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default()
    }
    let mut set = BTreeSet::new();
    let mut add = |n: Option<&str>| {
        if let Some(i) = n
            .and_then(|s| s.parse::<u32>().ok())
            .filter(|i| (1..=MAX_INDEX).contains(i))
        {
            set.insert(i);
        }
    };
    for n in names(RUN_DIR) {
        add(n.strip_suffix(".lock").or(Some(n.as_str())));
    }
    for n in names(DATA_DIR) {
        add(Some(&n));
    }
    for n in names("/run/netns") {
        add(n.strip_prefix("e2ekit-eng-"));
    }
    for n in names("/sys/class/net") {
        add(n.strip_prefix("e2k-h"));
    }
    for n in names("/run") {
        add(n
            .strip_prefix("e2ekit-eng-")
            .and_then(|s| s.strip_suffix(".sock")));
    }
    set
}

/// What [`reap_all`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reaped {
    /// Indexes whose owner was gone and which were torn down.
    pub reaped: Vec<u32>,
    /// Indexes held by a live owner, left alone.
    pub busy: Vec<u32>,
}

/// Tears down every engine of ours whose lock is free, i.e. whose owning process is gone
/// (killed, or crashed before its `Drop` ran). Engines of live processes are left alone.
///
/// Goes on after a failed teardown and then reports all failures in one
/// [`Error::Teardown`].
pub fn reap_all() -> Result<Reaped, Error> {
    reap_except(None)
}

pub(crate) fn reap_except(skip: Option<u32>) -> Result<Reaped, Error> {
    sys::tools()?;
    let mut out = Reaped::default();
    let mut problems = Vec::new();
    for index in candidates() {
        if Some(index) == skip {
            continue;
        }
        match IndexLock::try_acquire(index)? {
            Some(lock) => {
                match teardown(index, None) {
                    Ok(()) => out.reaped.push(index),
                    Err(e) => problems.push(e.to_string()),
                }
                lock.release();
            }
            None => out.busy.push(index),
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(Error::Teardown {
            node: "reaping stale engines".into(),
            problems,
        })
    }
}

/// One node as [`list`] sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// The node index N.
    pub index: u32,
    /// `e2ekit-eng-N`.
    pub name: String,
    /// Whether a live process holds the node's lock (false: stale, [`reap_all`] removes it).
    pub held: bool,
    /// The pid the last owner wrote into the lock file.
    pub owner_pid: Option<u32>,
    /// The node's dockerd, if it is running.
    pub dockerd_pid: Option<u32>,
    /// Whether the network namespace exists.
    pub netns: bool,
    /// Whether the API socket file exists.
    pub socket: bool,
}

/// Every node for which anything of ours exists, live or stale.
pub fn list() -> Vec<NodeInfo> {
    candidates()
        .into_iter()
        .map(|index| {
            let p = Paths::new(index);
            let (held, owner_pid) = sys::lock_state(index);
            let dockerd_pid = fs::read_to_string(&p.pidfile)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .filter(|pid| {
                    sys::alive(*pid)
                        && sys::cmdline(*pid)
                            .first()
                            .is_some_and(|a| a.ends_with("dockerd"))
                });
            NodeInfo {
                index,
                held,
                owner_pid,
                dockerd_pid,
                netns: p.netns_file.exists(),
                socket: p.socket.exists(),
                name: p.name,
            }
        })
        .collect()
}
