//! [`PrivateEngine`]: one dockerd in its own network namespace, and its fault controls.

use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::node::{self, Paths, MAX_INDEX};
use crate::sys::{self, IndexLock};
use crate::Error;

/// The main engine's config, read for its storage driver: a private engine must use the same
/// one (fuse-overlayfs here, where the kernel's overlay cannot be used on the backing file
/// system).
const MAIN_DAEMON_JSON: &str = "/etc/docker/daemon.json";

/// How a [`PrivateEngine`] is started; get one from [`PrivateEngine::builder`].
#[derive(Debug, Clone)]
pub struct Builder {
    tcp: bool,
    live_restore: bool,
    default_route: bool,
    start_timeout: Duration,
    /// Makes the TLS listener's material for the node's address.
    tls: Option<TlsMaker>,
}

/// Writes `ca.pem`, `cert.pem` and `key.pem` for a node address into a directory it returns.
#[derive(Clone)]
struct TlsMaker(std::sync::Arc<MakeTls>);

/// See [`TlsMaker`].
type MakeTls = dyn Fn(&str) -> Result<std::path::PathBuf, String> + Send + Sync;

impl std::fmt::Debug for TlsMaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsMaker")
    }
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            tcp: false,
            live_restore: false,
            default_route: true,
            start_timeout: Duration::from_secs(60),
            tls: None,
        }
    }
}

impl Builder {
    /// Also listen on `tcp://10.250.N.2:2375` (plain HTTP, no TLS), reachable from the host and,
    /// in a [`Cluster`](crate::Cluster), from the other nodes. Default: off.
    pub fn tcp(mut self, on: bool) -> Self {
        self.tcp = on;
        self
    }

    /// Start dockerd with `live-restore`: containers keep running across [`PrivateEngine::kill`]
    /// and [`PrivateEngine::restart`] instead of being stopped when dockerd comes back.
    /// Default: off (dockerd's own default).
    pub fn live_restore(mut self, on: bool) -> Self {
        self.live_restore = on;
        self
    }

    /// Give the node a default route via the host side of its veth. Default: on. Without it,
    /// the node routes only to the other nodes (10.250.0.0/16) through the host, and anything
    /// else (registries, DNS) fails at once with "network unreachable";
    /// with it, such traffic is forwarded to the host, where the main engine's FORWARD policy
    /// drops it, so pulls fail only after a timeout.
    pub fn default_route(mut self, on: bool) -> Self {
        self.default_route = on;
        self
    }

    /// How long [`start`](Self::start) and [`PrivateEngine::restart`] wait for `/_ping` to
    /// answer. Default: 60 s.
    pub fn start_timeout(mut self, timeout: Duration) -> Self {
        self.start_timeout = timeout;
        self
    }

    /// Listen on `tcp://10.250.N.2:2376` with TLS instead of plain TCP (implies
    /// [`tcp`](Self::tcp)). The node's address is known only once the start has picked N, so
    /// `make` is called with it (`"10.250.N.2"`) and returns a directory holding `ca.pem`,
    /// `cert.pem` and `key.pem` (the server certificate must name that address). dockerd runs
    /// with `--tlsverify` and accepts only clients presenting a certificate `ca.pem` signed.
    /// Default: no TLS.
    pub fn tls(
        mut self,
        make: impl Fn(&str) -> Result<std::path::PathBuf, String> + Send + Sync + 'static,
    ) -> Self {
        self.tcp = true;
        self.tls = Some(TlsMaker(std::sync::Arc::new(make)));
        self
    }

    /// Starts the engine: see [`PrivateEngine::start`].
    pub fn start(self) -> Result<PrivateEngine, Error> {
        let tools = sys::tools()?;
        // A test process killed earlier left its engines running: clear them first, so they
        // neither hold indexes nor load the machine. Busy nodes are someone else's, running.
        if let Err(e) = node::reap_except(None) {
            eprintln!("e2ekit-test-engines: reaping stale engines failed (continuing): {e}");
        }
        let mut lock = None;
        for index in 1..=MAX_INDEX {
            if let Some(l) = IndexLock::try_acquire(index)? {
                lock = Some(l);
                break;
            }
        }
        let lock = lock.ok_or(Error::NoFreeIndex)?;
        let index = lock.index();
        // Remains of an owner that died half-way through its teardown (nothing, normally).
        if let Err(e) = node::teardown(index, None) {
            lock.release();
            return Err(e);
        }
        let mut engine = PrivateEngine {
            paths: Paths::new(index),
            tls_dir: None,
            lock: Some(lock),
            child: None,
            pid: 0,
            frozen: false,
            opts: self,
        };
        match engine.setup(tools) {
            Ok(()) => Ok(engine),
            Err(e) => {
                if let Err(t) = engine.teardown() {
                    eprintln!("e2ekit-test-engines: cleaning up after a failed start: {t}");
                }
                Err(e)
            }
        }
    }
}

/// A private Docker engine: its own `dockerd` (and managed containerd) in network namespace
/// `e2ekit-eng-N`, with its own data-root, exec-root, API socket `/run/e2ekit-eng-N.sock` and
/// cgroup parent `/e2ekit-eng-N`.
///
/// The node is reachable from the host at `10.250.N.2` over a veth pair (host side `e2k-hN`,
/// `10.250.N.1`). It owns index N through an exclusive `flock` on
/// `/run/e2ekit-test-engines/N.lock` for its whole life, so any number of threads and processes
/// can start engines at once.
///
/// Dropping it (or [`stop`](Self::stop)) removes everything: processes (dockerd, containerd,
/// shims, containers), mounts, cgroups, directories, the namespace, the veth, its iptables rules,
/// the socket and the lock file. If the owning process is killed instead, the next
/// [`PrivateEngine::start`] or [`reap_all`](crate::reap_all) cleans up.
#[derive(Debug)]
pub struct PrivateEngine {
    paths: Paths,
    lock: Option<IndexLock>,
    /// The running dockerd (`nsenter` execs it, so this is dockerd's pid); None after
    /// [`kill`](Self::kill) and after teardown.
    child: Option<Child>,
    pid: u32,
    frozen: bool,
    opts: Builder,
    /// The TLS listener's material (see [`Builder::tls`]), made once at the start.
    tls_dir: Option<std::path::PathBuf>,
}

impl PrivateEngine {
    /// Starts a private engine with default options (unix socket only).
    ///
    /// Picks the lowest free index, creates namespace and veth, writes the engine's config and
    /// starts dockerd, then waits (up to 60 s) until `GET /_ping` answers. Before that it reaps
    /// stale engines left by dead processes. On failure everything created is removed again
    /// and the error carries the tail of dockerd's log.
    pub fn start() -> Result<PrivateEngine, Error> {
        Builder::default().start()
    }

    /// Options for starting an engine: `PrivateEngine::builder().tcp(true).start()`.
    pub fn builder() -> Builder {
        Builder::default()
    }

    fn setup(&mut self, tools: &sys::Tools) -> Result<(), Error> {
        let p = self.paths.clone();
        let node = p.name.as_str();
        create_dir(node, &p.state_dir, 0o700)?;
        create_dir(node, &p.data_root, 0o710)?;

        let ip = |args: &[&str]| sys::run(node, &tools.ip, args);
        ip(&["netns", "add", node])?;
        ip(&["-n", node, "link", "set", "lo", "up"])?;
        // Create the peer directly inside the namespace: no temporary name in the host's.
        ip(&[
            "link",
            "add",
            &p.veth_host,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            node,
        ])?;
        ip(&[
            "addr",
            "add",
            &format!("{}/24", p.host_addr()),
            "dev",
            &p.veth_host,
        ])?;
        ip(&["link", "set", &p.veth_host, "up"])?;
        ip(&[
            "-n",
            node,
            "addr",
            "add",
            &format!("{}/24", p.node_addr()),
            "dev",
            "eth0",
        ])?;
        ip(&["-n", node, "link", "set", "eth0", "up"])?;
        if self.opts.default_route {
            ip(&["-n", node, "route", "add", "default", "via", &p.host_addr()])?;
        } else {
            // Only the other nodes (10.250.0.0/16), through the host: registry and DNS
            // lookups then fail at once instead of timing out.
            ip(&[
                "-n",
                node,
                "route",
                "add",
                "10.250.0.0/16",
                "via",
                &p.host_addr(),
            ])?;
        }

        let mut cfg = serde_json::Map::new();
        cfg.insert("data-root".into(), p.data_root.to_string_lossy().into());
        if let Some(driver) = main_storage_driver(node)? {
            cfg.insert("storage-driver".into(), driver.into());
        }
        // dockerd derives its engine ID from this key; the default (/etc/docker/key.json)
        // would give every engine the main engine's ID.
        cfg.insert("deprecated-key-path".into(), p.key.to_string_lossy().into());
        if self.opts.live_restore {
            cfg.insert("live-restore".into(), true.into());
        }
        let text = serde_json::to_string_pretty(&serde_json::Value::Object(cfg))
            .map_err(|e| Error::io(node, "serialise daemon.json", e.into()))?;
        fs::write(&p.config, text)
            .map_err(|e| Error::io(node, format!("write {}", p.config.display()), e))?;

        if let Some(make) = &self.opts.tls {
            let dir = (make.0)(&p.node_addr()).map_err(|e| Error::State {
                node: node.to_string(),
                what: format!("making the TLS listener's certificates: {e}"),
            })?;
            self.tls_dir = Some(dir);
        }

        self.spawn(tools)?;
        self.wait_ready()
    }

    /// Starts dockerd in the namespace, detached from our stdio and process group (so a
    /// Ctrl-C meant for the test runner does not hit it first), logging to the state dir.
    fn spawn(&mut self, tools: &sys::Tools) -> Result<(), Error> {
        let p = &self.paths;
        let node = p.name.as_str();
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&p.log)
            .map_err(|e| Error::io(node, format!("open {}", p.log.display()), e))?;
        let log2 = log
            .try_clone()
            .map_err(|e| Error::io(node, "dup log fd", e))?;
        let netns = format!("--net={}", p.netns_file.display());
        let unix = format!("unix://{}", p.socket.display());
        let cgroup_parent = format!("/{node}");
        let tcp = format!("tcp://{}:2375", p.node_addr());
        // `ip netns exec` would remount /sys in a new mount namespace and dockerd then fails
        // with "Devices cgroup isn't mounted"; nsenter only switches the network namespace.
        let mut args: Vec<&std::ffi::OsStr> = vec![
            netns.as_ref(),
            "--".as_ref(),
            tools.dockerd.as_os_str(),
            "--config-file".as_ref(),
            p.config.as_os_str(),
            "--exec-root".as_ref(),
            p.exec_root.as_os_str(),
            "--pidfile".as_ref(),
            p.pidfile.as_os_str(),
            "-H".as_ref(),
            unix.as_ref(),
            "--cgroup-parent".as_ref(),
            cgroup_parent.as_ref(),
        ];
        let tls_files = self.tls_dir.as_ref().map(|dir| {
            (
                dir.join("ca.pem").into_os_string(),
                dir.join("cert.pem").into_os_string(),
                dir.join("key.pem").into_os_string(),
            )
        });
        let tls_tcp = format!("tcp://{}:2376", p.node_addr());
        if let Some((ca, cert, key)) = &tls_files {
            args.extend::<[&std::ffi::OsStr; 9]>([
                "-H".as_ref(),
                tls_tcp.as_ref(),
                "--tlsverify".as_ref(),
                "--tlscacert".as_ref(),
                ca.as_ref(),
                "--tlscert".as_ref(),
                cert.as_ref(),
                "--tlskey".as_ref(),
                key.as_ref(),
            ]);
        } else if self.opts.tcp {
            // Without --tls=false a plain tcp:// listener makes dockerd sleep 15 s at start.
            args.extend::<[&std::ffi::OsStr; 3]>([
                "-H".as_ref(),
                tcp.as_ref(),
                "--tls=false".as_ref(),
            ]);
        }
        let child = Command::new(&tools.nsenter)
            .args(&args)
            .env("PATH", sys::child_path())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .process_group(0)
            .spawn()
            .map_err(|e| Error::Command {
                node: node.to_string(),
                command: sys::command_line(&tools.nsenter, &args),
                status: "could not start".into(),
                stderr: e.to_string(),
            })?;
        self.pid = child.id();
        self.child = Some(child);
        self.frozen = false;
        Ok(())
    }

    /// Polls `/_ping` until it answers, dockerd exits, or the start timeout passes.
    fn wait_ready(&mut self) -> Result<(), Error> {
        let started = Instant::now();
        let deadline = started + self.opts.start_timeout;
        let mut last = String::from("not pinged yet");
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Err(self.start_error(started, format!("dockerd exited ({status})")));
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(
                    self.start_error(started, format!("no answer to /_ping; last error: {last}"))
                );
            }
            // The socket accepts connections before the API serves them (they queue in the
            // backlog until dockerd has restored its containers), so a bounded wait per try.
            match ping(
                &self.paths.name,
                &self.paths.socket,
                (deadline - now).min(Duration::from_secs(2)),
            ) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    last = e.to_string();
                    if !e.is_timeout() {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                }
            }
        }
    }

    fn start_error(&self, started: Instant, reason: String) -> Error {
        Error::Start {
            node: self.paths.name.clone(),
            waited: started.elapsed(),
            reason,
            log: self.paths.log.display().to_string(),
            log_tail: self.log_tail(),
        }
    }

    /// `e2ekit-eng-N`: the node's name (network namespace, cgroup parent).
    pub fn name(&self) -> &str {
        &self.paths.name
    }

    /// The node index N (1..=250).
    pub fn index(&self) -> u32 {
        self.paths.index
    }

    /// The engine's API address for `DOCKER_HOST` / `docker -H`: `unix:///run/e2ekit-eng-N.sock`.
    pub fn docker_host(&self) -> String {
        format!("unix://{}", self.paths.socket.display())
    }

    /// The API socket's path, `/run/e2ekit-eng-N.sock`.
    pub fn socket_path(&self) -> &Path {
        &self.paths.socket
    }

    /// `Some("tcp://10.250.N.2:2375")` if the engine was started with [`Builder::tcp`],
    /// `Some("tcp://10.250.N.2:2376")` (TLS) with [`Builder::tls`].
    pub fn tcp_host(&self) -> Option<String> {
        let port = if self.opts.tls.is_some() { 2376 } else { 2375 };
        self.opts
            .tcp
            .then(|| format!("tcp://{}:{port}", self.paths.node_addr()))
    }

    /// The node's address, `10.250.N.2` (the host side is `10.250.N.1`).
    pub fn node_addr(&self) -> String {
        self.paths.node_addr()
    }

    /// Name of the host side of the node's veth pair, `e2k-hN`.
    pub fn veth(&self) -> &str {
        &self.paths.veth_host
    }

    /// The pid of the most recently started dockerd (after [`kill`](Self::kill) the pid of the
    /// killed, now gone, process).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The last 50 lines of dockerd's log (all starts append to one file).
    pub fn log_tail(&self) -> String {
        sys::tail(&self.paths.log, 50)
    }

    /// Path of dockerd's log file.
    pub fn log_path(&self) -> &Path {
        &self.paths.log
    }

    /// `GET /_ping` on the unix socket with a 5 s timeout.
    pub fn ping(&self) -> Result<(), Error> {
        self.ping_timeout(Duration::from_secs(5))
    }

    /// `GET /_ping` on the unix socket, failing after `timeout`. A timeout (the socket
    /// accepted but nothing answered, as when frozen) gives an error whose
    /// [`Error::is_timeout`] is true; a dead engine fails at once (connection refused).
    pub fn ping_timeout(&self, timeout: Duration) -> Result<(), Error> {
        ping(&self.paths.name, &self.paths.socket, timeout)
    }

    fn running_child(&mut self, what: &str) -> Result<&mut Child, Error> {
        let node = self.paths.name.clone();
        let child = self.child.as_mut().ok_or_else(|| Error::State {
            node: node.clone(),
            what: format!("cannot {what}: dockerd is not running (killed, or failed to restart)"),
        })?;
        match child.try_wait() {
            Ok(None) => Ok(child),
            Ok(Some(status)) => Err(Error::State {
                node,
                what: format!("cannot {what}: dockerd has exited ({status})"),
            }),
            Err(e) => Err(Error::io(node, "waitpid dockerd", e)),
        }
    }

    /// SIGKILLs dockerd, only dockerd, and waits until it is gone.
    ///
    /// Afterwards: the API socket file stays but refuses connections, so pings fail at once.
    /// dockerd's managed containerd dies with it (dockerd starts it with a parent-death signal of
    /// SIGKILL); `kill` also waits (up to 5 s) for that. The containerd shims and the containers' processes
    /// keep running (re-parented to init): a container's workload keeps serving, but nothing
    /// manages it until [`restart`](Self::restart). Works on a frozen engine too.
    pub fn kill(&mut self) -> Result<(), Error> {
        let node = self.paths.name.clone();
        let pid = self.running_child("kill")?.id();
        sys::signal(pid, libc::SIGKILL)
            .map_err(|e| Error::io(&node, format!("kill -KILL {pid}"), e))?;
        if let Some(mut child) = self.child.take() {
            child
                .wait()
                .map_err(|e| Error::io(&node, "waitpid dockerd", e))?;
        }
        self.frozen = false;
        // The kill itself succeeded; a containerd that outlives dockerd (a dockerd without the
        // parent-death signal) is not worth failing for: restart() kills it, teardown too.
        let _ = self.wait_containerd_gone(false);
        Ok(())
    }

    /// Waits (5 s) for the old managed containerd to exit; with `force`, SIGKILLs it if it
    /// has not. Identified through containerd's pid file and checked against its command line,
    /// so a recycled pid is never signalled.
    fn wait_containerd_gone(&self, force: bool) -> Result<(), Error> {
        let Some(pid) = fs::read_to_string(&self.paths.containerd_pidfile)
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
        else {
            return Ok(());
        };
        let exec_root = self.paths.exec_root.to_string_lossy().into_owned();
        let ours =
            |pid: u32| sys::alive(pid) && sys::cmdline(pid).iter().any(|a| a.contains(&exec_root));
        let deadline = Instant::now() + Duration::from_secs(5);
        while ours(pid) {
            if Instant::now() > deadline {
                if force {
                    let _ = sys::signal(pid, libc::SIGKILL);
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
                return Err(Error::State {
                    node: self.paths.name.clone(),
                    what: format!(
                        "containerd (pid {pid}) still running 5 s after dockerd was killed"
                    ),
                });
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    }

    /// SIGSTOPs dockerd (and waits until it is stopped).
    ///
    /// Afterwards: the API socket still accepts connections (the kernel queues them) but
    /// nothing answers, so clients hang until their own timeout. containerd, shims and
    /// containers are not stopped: workloads keep running. Undo with [`thaw`](Self::thaw);
    /// queued requests are then served.
    pub fn freeze(&mut self) -> Result<(), Error> {
        let node = self.paths.name.clone();
        let pid = self.running_child("freeze")?.id();
        sys::signal(pid, libc::SIGSTOP)
            .map_err(|e| Error::io(&node, format!("kill -STOP {pid}"), e))?;
        self.frozen = true;
        // Signal delivery is asynchronous: wait for state T so callers see a frozen engine.
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            if stat
                .rfind(')')
                .is_some_and(|i| stat[i + 1..].trim_start().starts_with('T'))
            {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Err(Error::State {
            node,
            what: format!("dockerd (pid {pid}) did not stop within 5 s of SIGSTOP"),
        })
    }

    /// SIGCONTs a frozen dockerd; it answers again (including requests queued meanwhile).
    pub fn thaw(&mut self) -> Result<(), Error> {
        let node = self.paths.name.clone();
        let pid = self.running_child("thaw")?.id();
        sys::signal(pid, libc::SIGCONT)
            .map_err(|e| Error::io(&node, format!("kill -CONT {pid}"), e))?;
        self.frozen = false;
        Ok(())
    }

    /// Whether [`freeze`](Self::freeze) was called without a [`thaw`](Self::thaw) since.
    pub fn is_frozen(&self) -> bool {
        self.frozen
    }

    /// Starts dockerd again on the same data-root, exec-root and socket, and waits for
    /// `/_ping`. If dockerd is still running it is [`kill`](Self::kill)ed first.
    ///
    /// What happens (measured with Docker 20.10 and its managed containerd 1.6): the killed
    /// dockerd's containerd is gone (parent-death signal); `restart` makes sure of that (and
    /// removes the stale dockerd and containerd pid files, whose pids may have been recycled)
    /// before starting dockerd, which starts a fresh containerd on the same state. That
    /// containerd reconnects to the surviving shims, so dockerd still knows every container
    /// (created, running, exited). Without [`Builder::live_restore`], dockerd then stops the
    /// containers that were running, SIGTERM and after their stop timeout (10 s by default)
    /// SIGKILL, *before* the API answers: restarting with a running container that ignores
    /// SIGTERM takes over 10 s, and afterwards the container is exited (137). With
    /// live-restore they simply keep running.
    pub fn restart(&mut self) -> Result<(), Error> {
        let tools = sys::tools()?;
        let running = self
            .child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)));
        if running {
            self.kill()?;
        } else if let Some(mut c) = self.child.take() {
            // Exited on its own: just reap it.
            let _ = c.wait();
        }
        self.wait_containerd_gone(true)?;
        let node = self.paths.name.clone();
        for f in [&self.paths.pidfile, &self.paths.containerd_pidfile] {
            sys::remove_file_if_exists(f)
                .map_err(|e| Error::io(&node, format!("remove {}", f.display()), e))?;
        }
        if let Ok(mut log) = OpenOptions::new().append(true).open(&self.paths.log) {
            let _ = writeln!(log, "---- e2ekit-test-engines: restarting dockerd ----");
        }
        self.spawn(tools)?;
        self.wait_ready()
    }

    /// Tears the engine down now, reporting anything that could not be removed (dropping does
    /// the same but can only print problems to stderr).
    pub fn stop(mut self) -> Result<(), Error> {
        self.teardown()
    }

    fn teardown(&mut self) -> Result<(), Error> {
        let Some(lock) = self.lock.take() else {
            return Ok(());
        };
        let r = node::teardown(self.paths.index, self.child.as_mut());
        self.child = None;
        self.frozen = false;
        lock.release();
        r
    }
}

impl Drop for PrivateEngine {
    /// Same as [`PrivateEngine::stop`]; plain blocking code, so it works inside an async
    /// runtime and while a panic unwinds. Problems go to stderr.
    fn drop(&mut self) {
        if let Err(e) = self.teardown() {
            eprintln!("e2ekit-test-engines: {e}");
        }
    }
}

/// Creates `dir` and its parents. The parents are shared by all nodes and removed by a
/// teardown when they become empty, possibly just between our mkdirs: then try again.
fn create_dir(node: &str, dir: &Path, mode: u32) -> Result<(), Error> {
    let mut tries = 0;
    loop {
        match fs::DirBuilder::new().recursive(true).mode(mode).create(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && tries < 100 => tries += 1,
            Err(e) => return Err(Error::io(node, format!("create {}", dir.display()), e)),
        }
    }
}

/// The `storage-driver` of the main engine's config, if it sets one.
fn main_storage_driver(node: &str) -> Result<Option<String>, Error> {
    let text = match fs::read_to_string(MAIN_DAEMON_JSON) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(node, format!("read {MAIN_DAEMON_JSON}"), e)),
    };
    let v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Error::io(node, format!("parse {MAIN_DAEMON_JSON}"), e.into()))?;
    Ok(v.get("storage-driver")
        .and_then(|d| d.as_str())
        .map(str::to_string))
}

/// `GET /_ping` over HTTP/1.0 (the server closes the connection after answering, so the
/// response is everything up to EOF) on a unix socket, all within `timeout`.
pub(crate) fn ping(node: &str, socket: &Path, timeout: Duration) -> Result<(), Error> {
    let fail = |reason: String, timed_out: bool| Error::Ping {
        node: node.to_string(),
        socket: socket.display().to_string(),
        reason,
        timed_out,
    };
    let is_timeout = |e: &std::io::Error| {
        matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        )
    };
    let deadline = Instant::now() + timeout;
    let mut s = UnixStream::connect(socket).map_err(|e| fail(format!("connect: {e}"), false))?;
    s.set_write_timeout(Some(timeout.max(Duration::from_millis(1))))
        .map_err(|e| fail(format!("set timeout: {e}"), false))?;
    s.write_all(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
        .map_err(|e| fail(format!("send: {e}"), is_timeout(&e)))?;
    let mut resp = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(fail(format!("no answer within {timeout:?}"), true));
        }
        s.set_read_timeout(Some(left))
            .map_err(|e| fail(format!("set timeout: {e}"), false))?;
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                resp.extend_from_slice(&buf[..n]);
                if resp.len() > 64 * 1024 {
                    return Err(fail("answer larger than 64 KiB".into(), false));
                }
            }
            Err(e) if is_timeout(&e) => {
                return Err(fail(format!("no answer within {timeout:?}"), true))
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(fail(format!("receive: {e}"), false)),
        }
    }
    let text = String::from_utf8_lossy(&resp);
    let status_ok = text
        .lines()
        .next()
        .is_some_and(|l| l.starts_with("HTTP/1.") && l.split_whitespace().nth(1) == Some("200"));
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    if status_ok && body.trim() == "OK" {
        Ok(())
    } else {
        Err(fail(
            format!(
                "unexpected answer: {:?}",
                text.chars().take(200).collect::<String>()
            ),
            false,
        ))
    }
}
