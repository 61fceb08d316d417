//! The reaper: a watcher process that removes this process's environments once it is gone,
//! however it ended (SIGKILL included), without waiting for a later run's sweep.
//!
//! # Design
//!
//! The reaper is a re-execution of the current executable, so it exists in every user's test
//! binary without installing anything and without pulling an image (Ryuk, by contrast, is a
//! container image). At the first environment build on an engine, [`ensure_for`] spawns
//! `current_exe() --e2ekit-reaper` with `E2EKIT_REAPER=<owner label>` and
//! `E2EKIT_REAPER_ENGINE=<endpoint>`:
//!
//! - in its own session (`setsid`), so Ctrl-C to the terminal's process group and nextest's
//!   group kill do not reach it;
//! - with stdin a pipe whose write end only this process holds (opened close-on-exec, never
//!   written): the reaper blocks reading it, and end-of-file means this process is gone,
//!   whatever killed it — the kernel closes the pipe as the process dies;
//! - with stdout a pipe on which it says it runs (the handshake), and stderr its log file in
//!   `<private root>/.reapers/`, so it holds none of the test runner's output pipes.
//!
//! A constructor ([`REAPER_HOOK`], an `.init_array` entry, which is what the `ctor` crate
//! generates) runs before the program's `main` — before the test harness — in every binary
//! that links e2ekit. When `E2EKIT_REAPER` is set it runs the reaper and exits, so the harness
//! never runs there; otherwise it returns at once. A reaper never spawns a reaper.
//!
//! On end-of-file the reaper removes every container and network labelled with its owner on
//! its engine (by both labels, so a later run that rebuilt the same name keeps its own), and
//! the shared directories recording that owner, except environments kept for inspection
//! (`E2EKIT_KEEP_ON_FAILURE`: the kept marker in their shared directory). It only ever acts
//! for its own owner, which is gone by then, so it never removes what a live process owns.
//!
//! One reaper runs per engine endpoint a process uses. If the executable cannot be re-executed
//! (deleted, or linked without the constructor: the handshake does not come), a warning is
//! printed once and leftovers are removed by the sweep of a later build, as before.
//! `E2EKIT_NO_REAPER=1` turns the reaper off.

use std::collections::HashMap;
use std::io::{BufRead, Read, Write};
use std::path::PathBuf;
use std::process::{ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::sweep::{self, KEPT_MARKER, OWNER_MARKER};
use crate::engine::{Backend, Engine};
use crate::error::{Error, Result};
use crate::host::fs::lock;

/// Set in the reaper's environment to the owner label it watches for.
pub(crate) const REAPER_VAR: &str = "E2EKIT_REAPER";
/// Set in the reaper's environment to the engine endpoint it cleans.
pub(crate) const REAPER_ENGINE_VAR: &str = "E2EKIT_REAPER_ENGINE";
/// The argument the reaper runs with: visible in `ps`, and refused by a test harness should
/// the constructor not run (so a reaper can never run tests).
pub(crate) const REAPER_ARG: &str = "--e2ekit-reaper";
/// What the reaper writes on stdout once it watches.
const HANDSHAKE: &str = "e2ekit-reaper ready";
/// How long a build waits for the reaper's handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the reaper keeps trying to reach its engine once its owner is gone.
const REAP_DEADLINE: Duration = Duration::from_secs(30);

/// Runs before `main` in every binary linking e2ekit; see the module docs.
///
/// Referenced from [`ensure_for`], so the linker keeps the object file holding it.
#[used]
#[cfg_attr(
    any(target_os = "linux", target_os = "android", target_os = "freebsd"),
    link_section = ".init_array"
)]
#[cfg_attr(target_vendor = "apple", link_section = "__DATA,__mod_init_func")]
pub(crate) static REAPER_HOOK: extern "C" fn() = reaper_hook;

extern "C" fn reaper_hook() {
    let Some(owner) = std::env::var_os(REAPER_VAR) else {
        return;
    };
    let owner = owner.to_string_lossy().into_owned();
    let endpoint = std::env::var(REAPER_ENGINE_VAR)
        .ok()
        .filter(|e| !e.is_empty());
    let code = run_reaper(&owner, endpoint.as_deref());
    std::process::exit(code);
}

/// The reapers of this process, by engine endpoint: the write end of each one's stdin, kept
/// open (never written) for the life of the process; `None` where it could not start.
fn reapers() -> &'static Mutex<HashMap<String, Option<ChildStdin>>> {
    static REAPERS: OnceLock<Mutex<HashMap<String, Option<ChildStdin>>>> = OnceLock::new();
    REAPERS.get_or_init(Default::default)
}

fn disabled() -> bool {
    std::env::var("E2EKIT_NO_REAPER").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Makes sure a reaper watches this process for `engine` (once per endpoint; a failure is
/// reported once and not retried).
pub(crate) fn ensure_for(engine: &Engine) {
    if disabled() || std::env::var_os(REAPER_VAR).is_some() {
        return;
    }
    // Keeps the constructor linked in (see REAPER_HOOK).
    std::hint::black_box(&REAPER_HOOK);
    let endpoint = engine.endpoint();
    let mut reapers = lock(reapers());
    if reapers.contains_key(&endpoint) {
        return;
    }
    let started = spawn(&endpoint, &engine.child_env());
    if let Err(e) = &started {
        eprintln!(
            "e2ekit: no reaper for engine {endpoint} ({}); environments of this process left by a kill are removed by the next sweep instead (the next environment built, or `e2ekit gc`)",
            e.report()
        );
    }
    reapers.insert(endpoint, started.ok());
}

/// Environments of this process per engine endpoint that are not yet removed.
fn open_counts() -> &'static Mutex<HashMap<String, usize>> {
    static OPEN: OnceLock<Mutex<HashMap<String, usize>>> = OnceLock::new();
    OPEN.get_or_init(Default::default)
}

/// Tells the endpoint's reaper (if any) whether this process has something on its engine.
fn tell(endpoint: &str, something_open: bool) {
    if let Some(Some(stdin)) = lock(reapers()).get_mut(endpoint) {
        // A reaper that is gone cannot be told; the sweep covers for it.
        let _ = stdin.write_all(if something_open { b"1" } else { b"0" });
        let _ = stdin.flush();
    }
}

/// An environment of this process was built on `endpoint`.
pub(crate) fn opened(endpoint: &str) {
    let first = {
        let mut open = lock(open_counts());
        let n = open.entry(endpoint.to_string()).or_default();
        *n += 1;
        *n == 1
    };
    if first {
        tell(endpoint, true);
    }
}

/// An environment of this process on `endpoint` was removed from its engine.
pub(crate) fn removed(endpoint: &str) {
    let last = {
        let mut open = lock(open_counts());
        let n = open.entry(endpoint.to_string()).or_default();
        *n = n.saturating_sub(1);
        *n == 0
    };
    if last {
        tell(endpoint, false);
    }
}

fn reaper_log_dir() -> Result<PathBuf> {
    let dir = sweep::private_root()?.join(".reapers");
    match std::fs::create_dir(&dir) {
        Ok(()) => Ok(dir),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(dir),
        Err(e) => Err(Error::io(format!("creating {}", dir.display()), e)),
    }
}

/// The reaper's log file for `owner` on `endpoint`.
pub(crate) fn log_path(owner: &str, endpoint: &str) -> Result<PathBuf> {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    endpoint.hash(&mut h);
    let safe: String = owner
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    Ok(reaper_log_dir()?.join(format!("{safe}-{:016x}.log", h.finish())))
}

fn spawn(endpoint: &str, engine_env: &[(&str, Option<String>)]) -> Result<ChildStdin> {
    let owner = crate::host::labels::owner();
    let exe = std::env::current_exe()
        .map_err(|e| Error::io("finding the current executable".to_string(), e))?;
    let log = log_path(owner, endpoint)?;
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .map_err(|e| Error::io(format!("opening {}", log.display()), e))?;
    let mut cmd = Command::new(&exe);
    cmd.arg(REAPER_ARG)
        .env(REAPER_VAR, owner)
        .env(REAPER_ENGINE_VAR, endpoint)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log_file));
    // A TLS engine (found through a Docker context, say) needs its certificates named: the
    // reaper reaches `endpoint` as an explicit engine, which reads them from these.
    for (name, value) in engine_env {
        match value {
            Some(v) => cmd.env(name, v),
            None => cmd.env_remove(name),
        };
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::io(format!("starting {} as a reaper", exe.display()), e))?;
    let (stdin, stdout) = match (child.stdin.take(), child.stdout.take()) {
        (Some(i), Some(o)) => (i, o),
        _ => return Err(Error::Unexpected("the reaper's pipes are missing".into())),
    };
    // The handshake, read on a thread so a reaper that never answers costs a bounded wait.
    let (tx, rx) = std::sync::mpsc::channel();
    let _ = std::thread::Builder::new()
        .name("e2ekit-reaper-handshake".into())
        .spawn(move || {
            let mut line = String::new();
            let _ = std::io::BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
    let answered = rx
        .recv_timeout(HANDSHAKE_TIMEOUT)
        .is_ok_and(|l| l.trim() == HANDSHAKE);
    if !answered {
        let _ = child.kill();
        let _ = child.wait();
        return Err(Error::Unexpected(format!(
            "{} did not start as a reaper (is e2ekit's constructor linked in? see {})",
            exe.display(),
            log.display()
        )));
    }
    // Collects the reaper's exit status, so it never lingers as a zombie of ours; it only
    // exits early on a failure, which its log explains.
    let _ = std::thread::Builder::new()
        .name("e2ekit-reaper-wait".into())
        .spawn(move || {
            if let Ok(status) = child.wait() {
                eprintln!(
                    "e2ekit: the reaper exited early ({status}); see {}",
                    log.display()
                );
            }
        });
    Ok(stdin)
}

/// Writes one line to the reaper's log (its stderr).
fn log(what: impl std::fmt::Display) {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let _ = writeln!(
        std::io::stderr(),
        "{} reaper {}: {what}",
        crate::host::labels::format_rfc3339(secs),
        std::process::id()
    );
}

/// The reaper process: handshake, wait for end-of-file on stdin, remove the owner's
/// environments. Returns the exit code.
fn run_reaper(owner: &str, endpoint: Option<&str>) -> i32 {
    #[cfg(unix)]
    // SAFETY: plain signal dispositions, set before any other thread exists. SIGPIPE ignored
    // as Rust's `main` would (this runs before it); SIGINT/SIGHUP ignored in case one is sent
    // to us anyway: only the owner's end decides when we act.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
    }
    log(format_args!(
        "watching owner {owner} on {}",
        endpoint.unwrap_or("the default engine")
    ));
    {
        let mut out = std::io::stdout();
        if writeln!(out, "{HANDSHAKE}")
            .and_then(|_| out.flush())
            .is_err()
        {
            log("the handshake could not be written; exiting");
            return 1;
        }
    }
    start_heartbeat(owner, endpoint);
    let mut stdin = std::io::stdin();
    let mut buf = [0u8; 64];
    // What the owner last said: b'1' when it has environments on this engine, b'0' when it
    // removed them all (see `opened` and `removed`).
    let mut nothing_open = false;
    loop {
        match stdin.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                match buf[..n].iter().rev().find(|b| matches!(b, b'0' | b'1')) {
                    Some(b'0') => nothing_open = true,
                    Some(_) => nothing_open = false,
                    None => {}
                }
                continue;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                log(format_args!(
                    "reading stdin failed ({e}); taking the owner for gone"
                ));
                break;
            }
        }
    }
    let gone = Instant::now();
    log("the owner is gone; removing its environments");
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            log(format_args!("cannot build a runtime: {e}"));
            return 1;
        }
    };
    let engine = Engine::docker_at(endpoint);
    let outcome = runtime.block_on(async {
        let deadline = Instant::now() + REAP_DEADLINE;
        let mut delay = Duration::from_millis(100);
        loop {
            if engine_socket_gone(&engine.endpoint()) {
                // A private engine torn down with everything on it (the fault tests'):
                // nothing is left to remove, and nothing will answer.
                log("the engine's socket is gone with the engine; nothing to remove");
                return Ok(Vec::new());
            }
            match reap_once(&engine, owner).await {
                Ok(removed) => return Ok(removed),
                Err(_) if nothing_open => {
                    // The owner had removed everything it made here; an engine gone with
                    // its owner (a test's own forwarder, a torn-down engine) leaves nothing.
                    log("the engine does not answer, and the owner had nothing left on it");
                    return Ok(Vec::new());
                }
                Err(e) if Instant::now() + delay < deadline => {
                    log(format_args!("{}; retrying", e.report()));
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(3));
                }
                Err(e) => return Err(e),
            }
        }
    });
    match outcome {
        Ok(removed) => {
            log(format_args!(
                "removed {removed:?} in {:?}; exiting",
                gone.elapsed()
            ));
            // A clean run leaves no log behind; a failed one keeps it for diagnosis.
            if let Ok(path) = log_path(owner, &engine.endpoint()) {
                let _ = std::fs::remove_file(&path);
                // The last reaper to finish cleanly takes the directory too (fails while
                // another reaper's log is in it, which is fine).
                if let Some(dir) = path.parent() {
                    let _ = std::fs::remove_dir(dir);
                }
            }
            0
        }
        Err(e) => {
            log(format_args!("giving up: {}", e.report()));
            1
        }
    }
}

/// Records on the engine, now and every [`sweep::HEARTBEAT_EVERY`], that the owner is alive,
/// so sweeps on other hosts (which cannot see this process) spare its environments however
/// long it runs. On a thread of its own: the reaper's main thread blocks on stdin.
fn start_heartbeat(owner: &str, endpoint: Option<&str>) {
    let owner = owner.to_string();
    let engine = Engine::docker_at(endpoint);
    let started = std::thread::Builder::new()
        .name("e2ekit-heartbeat".into())
        .spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                log("cannot build a runtime for heartbeats; other hosts see only the 24 h rule");
                return;
            };
            runtime.block_on(async {
                loop {
                    let beat = async { engine.connect().await?.heartbeat(&owner).await };
                    if let Err(e) = beat.await {
                        log(format_args!("heartbeat failed: {}", e.report()));
                    }
                    tokio::time::sleep(sweep::HEARTBEAT_EVERY).await;
                }
            });
        });
    if let Err(e) = started {
        log(format_args!("cannot start the heartbeat thread: {e}"));
    }
}

/// A local engine whose socket file no longer exists: it was torn down, not just slow.
fn engine_socket_gone(endpoint: &str) -> bool {
    endpoint
        .strip_prefix("unix://")
        .is_some_and(|path| !std::path::Path::new(path).exists())
}

/// Removes what `owner` left on `engine`: its environments (not kept ones) and its shared
/// directories. Returns the names removed.
async fn reap_once(engine: &Engine, owner: &str) -> Result<Vec<String>> {
    let backend = engine.connect().await?;
    // The owner is gone: it stops beating first, so no sweep takes it for alive meanwhile.
    if let Err(e) = backend.end_heartbeat(owner).await {
        log(format_args!("removing the heartbeat: {}", e.report()));
    }
    let mut names: Vec<String> = backend
        .list_labelled()
        .await?
        .into_iter()
        .filter(|r| r.owner.as_deref() == Some(owner))
        .map(|r| r.env)
        .collect();
    names.sort();
    names.dedup();
    let mut removed = Vec::new();
    let mut first_error = None;
    for name in names {
        if is_kept(&name) {
            log(format_args!("{name} was kept for inspection; leaving it"));
            continue;
        }
        match backend.remove_owned(&name, owner).await {
            Ok(()) => {
                if dir_owned_by(&name, owner) {
                    remove_shared_dir(backend.as_ref(), &name).await;
                }
                removed.push(name);
            }
            Err(e) => {
                log(format_args!("removing {name}: {}", e.report()));
                first_error.get_or_insert(e);
            }
        }
    }
    // Shared directories whose engine resources were already gone (a kill during close).
    for name in owned_dirs(owner) {
        remove_shared_dir(backend.as_ref(), &name).await;
        removed.push(name);
    }
    first_error.map_or(Ok(removed), Err)
}

fn is_kept(name: &str) -> bool {
    sweep::shared_dir_for(name).is_ok_and(|d| d.join(KEPT_MARKER).exists())
}

/// Shared directories recording `owner` and not kept.
fn owned_dirs(owner: &str) -> Vec<String> {
    let Ok(root) = sweep::private_root() else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| crate::host::naming::validate_env_name(name).is_ok() && !is_kept(name))
        .filter(|name| dir_owned_by(name, owner))
        .collect()
}

/// Whether the shared directory of `name` records `owner` (a later run of the same name may
/// have made it anew, for another owner, which must keep it).
fn dir_owned_by(name: &str, owner: &str) -> bool {
    sweep::shared_dir_for(name)
        .ok()
        .and_then(|d| std::fs::read_to_string(d.join(OWNER_MARKER)).ok())
        .is_some_and(|o| o.trim() == owner)
}

/// Removes a shared directory, through the engine for files containers wrote as another user.
async fn remove_shared_dir(backend: &dyn Backend, name: &str) {
    let Ok(dir) = sweep::shared_dir_for(name) else {
        return;
    };
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            if let Err(e) =
                crate::engine::cleanup::remove_contents_as_root(backend, name, &dir).await
            {
                log(format_args!("emptying {}: {}", dir.display(), e.report()));
            }
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                log(format_args!("removing {}: {e}", dir.display()));
            }
        }
        Err(e) => log(format_args!("removing {}: {e}", dir.display())),
    }
}
