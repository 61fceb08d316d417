//! Thin wrappers over the system: the tools we shell out to, processes, mounts, cgroups, locks.
//!
//! Everything here is plain blocking std code so that it can run from `Drop`, inside a tokio
//! runtime and while a panic unwinds.

use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::Error;

/// Where lock files and per-node state (config, log, pid file, exec-root) live.
pub(crate) const RUN_DIR: &str = "/run/e2ekit-test-engines";
/// Where each node's data-root lives (on disk: images can be large, /run is a small tmpfs).
pub(crate) const DATA_DIR: &str = "/var/lib/e2ekit-test-engines";
/// Comment on every iptables rule we add, so that teardown and reaping find exactly ours.
pub(crate) const RULE_COMMENT: &str = "e2ekit-test-engines";
/// Where containerd 1.6 shims bind their sockets: hard-coded by containerd, shared with the main
/// engine, so we remove only the sockets our own shims bound.
const SHIM_SOCKET_DIR: &str = "/run/containerd/s/";

/// Absolute paths of the programs we run.
#[derive(Debug)]
pub(crate) struct Tools {
    pub ip: PathBuf,
    pub iptables: PathBuf,
    pub nsenter: PathBuf,
    pub dockerd: PathBuf,
}

static TOOLS: OnceLock<Tools> = OnceLock::new();

/// Checks we are root and finds the tools, once per process.
pub(crate) fn tools() -> Result<&'static Tools, Error> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        return Err(Error::NotRoot { euid });
    }
    if let Some(t) = TOOLS.get() {
        return Ok(t);
    }
    let tools = Tools {
        ip: find_tool("ip", "network namespaces, veths and addresses (iproute2)")?,
        iptables: find_tool("iptables", "the DOCKER-USER rules between nodes")?,
        nsenter: find_tool(
            "nsenter",
            "starting dockerd inside the node's network namespace (util-linux)",
        )?,
        dockerd: find_tool("dockerd", "the private engines themselves")?,
    };
    Ok(TOOLS.get_or_init(|| tools))
}

/// The directories a tool is looked for in: PATH, then the sbin directories a non-login root
/// shell (or a test harness) often lacks.
fn search_path() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    for d in [
        "/usr/local/sbin",
        "/usr/local/bin",
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
    ] {
        let d = PathBuf::from(d);
        if !dirs.contains(&d) {
            dirs.push(d);
        }
    }
    dirs
}

/// PATH for dockerd: it runs iptables, containerd, runc and fuse-overlayfs by name.
pub(crate) fn child_path() -> std::ffi::OsString {
    std::env::join_paths(search_path())
        .unwrap_or_else(|_| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into())
}

fn find_tool(tool: &'static str, why: &'static str) -> Result<PathBuf, Error> {
    search_path()
        .into_iter()
        .map(|d| d.join(tool))
        .find(|p| {
            fs::metadata(p)
                .map(|m| m.is_file() && m.mode() & 0o111 != 0)
                .unwrap_or(false)
        })
        .ok_or(Error::MissingTool { tool, why })
}

/// Runs a command to completion and returns its stdout; a non-zero exit is an error carrying
/// the command line and stderr.
pub(crate) fn run<S: AsRef<OsStr>>(node: &str, prog: &Path, args: &[S]) -> Result<String, Error> {
    let line = command_line(prog, args);
    let out = Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::Command {
            node: node.to_string(),
            command: line.clone(),
            status: "could not run".into(),
            stderr: e.to_string(),
        })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(Error::Command {
            node: node.to_string(),
            command: line,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

pub(crate) fn command_line<S: AsRef<OsStr>>(prog: &Path, args: &[S]) -> String {
    let mut s = prog.display().to_string();
    for a in args {
        s.push(' ');
        s.push_str(&a.as_ref().to_string_lossy());
    }
    s
}

/// Sends a signal; a process that is already gone is not an error.
pub(crate) fn signal(pid: u32, sig: libc::c_int) -> io::Result<()> {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "pid out of range",
        ));
    };
    // SAFETY: kill has no memory-safety preconditions.
    if unsafe { libc::kill(pid, sig) } == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::ESRCH) {
        Ok(())
    } else {
        Err(e)
    }
}

/// Whether a process exists and is not a zombie (a zombie holds no resources we care about;
/// its parent, maybe long gone, reaps it).
pub(crate) fn alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name, which may itself contain ')'.
        Ok(stat) => match stat.rfind(')') {
            Some(i) => !matches!(
                stat[i + 1..].trim_start().chars().next(),
                Some('Z') | Some('X')
            ),
            None => true,
        },
        Err(_) => false,
    }
}

/// The NUL-separated arguments of a process (empty if it is gone or a kernel thread).
pub(crate) fn cmdline(pid: u32) -> Vec<String> {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|c| *c == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// All pids currently in /proc.
pub(crate) fn all_pids() -> Vec<u32> {
    fs::read_dir("/proc")
        .map(|rd| {
            rd.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Pids whose network namespace is the one bound at `netns_file` (what `ip netns pids` does,
/// without a fork per poll).
pub(crate) fn pids_in_netns(netns_file: &Path) -> Vec<u32> {
    let Ok(ns) = fs::metadata(netns_file) else {
        return Vec::new();
    };
    all_pids()
        .into_iter()
        .filter(|pid| {
            fs::metadata(format!("/proc/{pid}/ns/net"))
                .map(|m| m.dev() == ns.dev() && m.ino() == ns.ino())
                .unwrap_or(false)
        })
        .collect()
}

/// Mount points of all cgroup hierarchies (v1 controllers and the v2 unified one).
pub(crate) fn cgroup_roots() -> Vec<PathBuf> {
    mounts()
        .into_iter()
        .filter(|m| m.fstype == "cgroup" || m.fstype == "cgroup2")
        .map(|m| m.mount_point)
        .collect()
}

/// Pids in a cgroup directory and all its descendants.
pub(crate) fn pids_in_cgroup(dir: &Path) -> Vec<u32> {
    let mut pids = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        if let Ok(s) = fs::read_to_string(d.join("cgroup.procs")) {
            pids.extend(s.lines().filter_map(|l| l.trim().parse::<u32>().ok()));
        }
        if let Ok(rd) = fs::read_dir(&d) {
            stack.extend(
                rd.filter_map(|e| e.ok())
                    .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
                    .map(|e| e.path()),
            );
        }
    }
    pids
}

/// Removes a cgroup directory tree, children first (cgroupfs only lets empty leaves go).
pub(crate) fn remove_cgroup_tree(dir: &Path) -> io::Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.filter_map(|e| e.ok()) {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                remove_cgroup_tree(&e.path())?;
            }
        }
    }
    // A cgroup whose last task just exited can report EBUSY for a moment.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if Instant::now() < deadline && e.raw_os_error() == Some(libc::EBUSY) => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(e) => return Err(e),
        }
    }
}

/// One line of /proc/self/mountinfo, the parts we need.
pub(crate) struct Mount {
    pub mount_point: PathBuf,
    pub fstype: String,
}

pub(crate) fn mounts() -> Vec<Mount> {
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    info.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let mount_point = unescape_mount(fields.get(4)?);
            let sep = fields.iter().position(|f| *f == "-")?;
            let fstype = fields.get(sep + 1)?.to_string();
            Some(Mount {
                mount_point: PathBuf::from(mount_point),
                fstype,
            })
        })
        .collect()
}

/// mountinfo escapes space, tab, newline and backslash as \ooo octal.
fn unescape_mount(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = u32::from(b[i + 1] - b'0') * 64
                + u32::from(b[i + 2] - b'0') * 8
                + u32::from(b[i + 3] - b'0');
            // The kernel only escapes bytes (<= \377); anything larger is not an escape.
            out.push(u8::try_from(v).unwrap_or(b'?'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Unmounts `path`; if it is busy, detaches it lazily (it then disappears from the tree at once
/// and is freed when its last user goes).
pub(crate) fn unmount(path: &Path) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: c is a valid NUL-terminated path for the duration of the calls.
    if unsafe { libc::umount2(c.as_ptr(), 0) } == 0 {
        return Ok(());
    }
    // SAFETY: as above.
    if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EINVAL) || e.raw_os_error() == Some(libc::ENOENT) {
        // Not a mount point (any more): someone else got there first.
        Ok(())
    } else {
        Err(e)
    }
}

/// Unix-socket paths bound in the network namespace of `pid` that lie in containerd's shared
/// shim socket directory. Unix sockets are listed per network namespace, so for a pid in a
/// node's namespace these are exactly the node's shims' sockets.
pub(crate) fn shim_sockets(pid: u32) -> Vec<PathBuf> {
    let Ok(table) = fs::read_to_string(format!("/proc/{pid}/net/unix")) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = table
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(7))
        .filter(|p| p.starts_with(SHIM_SOCKET_DIR))
        .map(PathBuf::from)
        .collect();
    v.sort();
    v.dedup();
    v
}

/// Removes a file; a missing one is fine.
pub(crate) fn remove_file_if_exists(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Removes a directory tree; a missing one is fine.
pub(crate) fn remove_dir_all_if_exists(path: &Path) -> io::Result<()> {
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// The last `lines` lines of a file (at most its last 16 KiB), for error messages.
pub(crate) fn tail(path: &Path, lines: usize) -> String {
    let Ok(bytes) = fs::read(path) else {
        return format!("(no log at {})", path.display());
    };
    let start = bytes.len().saturating_sub(16 * 1024);
    let text = String::from_utf8_lossy(&bytes[start..]);
    let all: Vec<&str> = text.lines().collect();
    if all.is_empty() {
        return "(dockerd has not logged anything)".into();
    }
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// An exclusive `flock` on `/run/e2ekit-test-engines/N.lock`: whoever holds it owns node N.
///
/// flock (not fcntl) locks belong to the open file description, so two threads of one process
/// exclude each other too, and the lock goes away by itself when its owner dies, which is
/// how stale engines are recognised. The file is opened close-on-exec so dockerd and other
/// children never inherit (and so never keep) it.
#[derive(Debug)]
pub struct IndexLock {
    file: File,
    index: u32,
    path: PathBuf,
}

impl IndexLock {
    /// Takes node `index`'s lock without blocking: `Ok(None)` if someone holds it.
    ///
    /// Holding it keeps `PrivateEngine::start` (in any process) off that index. Tests use it to
    /// inspect a node's remains without another engine taking the index meanwhile.
    pub fn try_acquire(index: u32) -> Result<Option<IndexLock>, Error> {
        let path = Path::new(RUN_DIR).join(format!("{index}.lock"));
        let node = crate::node_name(index);
        // A releaser unlinks the file while holding the lock; if we opened the old inode just
        // before that, our lock is on a file nobody else will ever see: check and retry.
        for _ in 0..100 {
            fs::create_dir_all(RUN_DIR)
                .map_err(|e| Error::io(&node, format!("create {RUN_DIR}"), e))?;
            let file = match OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                // Not before we hold the lock: the file names its current owner.
                .truncate(false)
                .mode(0o644)
                .open(&path)
            {
                Ok(f) => f,
                // The directory was removed by a concurrent release: create it again.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io(&node, format!("open {}", path.display()), e)),
            };
            // SAFETY: the fd is valid for the life of `file`.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
                let e = io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
                    return Ok(None);
                }
                return Err(Error::io(&node, format!("flock {}", path.display()), e));
            }
            let same = match (fs::metadata(&path), file.metadata()) {
                (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
                _ => false,
            };
            if !same {
                continue;
            }
            let mut lock = IndexLock { file, index, path };
            // Informational only (for `ls`): the lock itself is what counts.
            let _ = lock.file.set_len(0);
            let _ = writeln!(lock.file, "{}", std::process::id());
            return Ok(Some(lock));
        }
        Err(Error::io(
            &node,
            format!("lock {}", path.display()),
            io::Error::other("the lock file kept being replaced"),
        ))
    }

    /// The node index this lock is for.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// Removes the lock file (while still holding the lock, so nobody can take the old inode
    /// and think they own the node), then unlocks. Dropping an `IndexLock` without calling this
    /// unlocks but leaves the file.
    pub fn release(self) {
        let _ = fs::remove_file(&self.path);
        drop(self.file);
        // Only succeeds if empty: the directory is shared with other nodes' locks and state.
        let _ = fs::remove_dir(RUN_DIR);
    }
}

/// Whether a lock file exists and is currently held, and the pid written into it.
pub(crate) fn lock_state(index: u32) -> (bool, Option<u32>) {
    let path = Path::new(RUN_DIR).join(format!("{index}.lock"));
    let Ok(file) = File::open(&path) else {
        return (false, None);
    };
    let owner = fs::read_to_string(&path)
        .ok()
        .and_then(|s| s.trim().parse().ok());
    // A shared, non-blocking probe: fails only while someone holds it exclusively; released
    // at once when `file` closes.
    // SAFETY: the fd is valid for the life of `file`.
    let held = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) } != 0;
    (held, owner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_are_decoded() {
        assert_eq!(
            unescape_mount(r"/var/lib/with\040space"),
            "/var/lib/with space"
        );
        assert_eq!(unescape_mount(r"/a\134b"), r"/a\b");
        assert_eq!(unescape_mount(r"/odd\7"), r"/odd\7");
        assert_eq!(unescape_mount(r"/big\777"), "/big?");
    }
}
