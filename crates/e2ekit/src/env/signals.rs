//! Closing this process's environments on SIGINT and SIGTERM, before the process exits.
//!
//! At the first environment build, [`install_once`] starts one thread (`e2ekit-signals`)
//! with its own runtime that waits for SIGINT or SIGTERM. On one, it closes every
//! environment of this process that is still open (the [`register`]ed ones; kept ones stay),
//! concurrently and for at most [`CLOSE_BUDGET`] — well inside nextest's 10 s grace period —
//! then restores the signal's default action and raises it again, so the process ends with
//! the signal's status as it would have without e2ekit. A second SIGINT or SIGTERM while
//! closing ends the wait at once. Whatever closing missed, the reaper removes after the exit.
//!
//! Programs with their own SIGINT/SIGTERM handling set `E2EKIT_NO_SIGNAL_HANDLER=1`: e2ekit
//! then installs nothing, and such programs close their environments themselves (the reaper
//! still removes what is left when the process is gone).

use std::sync::{Arc, Mutex, Once, OnceLock, Weak};
use std::time::Duration;

use super::core::EnvCore;
use super::sweep::KEPT_MARKER;
use crate::host::fs::lock;

/// How long the handler spends closing environments before it re-raises the signal.
pub(crate) const CLOSE_BUDGET: Duration = Duration::from_secs(5);
/// How long each close waits for starts in flight.
const WAIT_FOR_WORK: Duration = Duration::from_secs(1);

fn open_cores() -> &'static Mutex<Vec<Weak<EnvCore>>> {
    static CORES: OnceLock<Mutex<Vec<Weak<EnvCore>>>> = OnceLock::new();
    CORES.get_or_init(Default::default)
}

/// Lists an environment for closing on a signal (dropped ones fall out by themselves).
pub(crate) fn register(core: &Arc<EnvCore>) {
    let mut cores = lock(open_cores());
    cores.retain(|w| w.strong_count() > 0);
    cores.push(Arc::downgrade(core));
}

fn disabled() -> bool {
    std::env::var("E2EKIT_NO_SIGNAL_HANDLER").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Starts the signal thread, once per process (see the module docs).
pub(crate) fn install_once() {
    static INSTALLED: Once = Once::new();
    if disabled() {
        return;
    }
    INSTALLED.call_once(|| {
        // The signal streams are created on the thread, inside its runtime; report whether
        // that worked before the build goes on, so a failure is said once, here.
        let (tx, rx) = std::sync::mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("e2ekit-signals".into())
            .spawn(move || watch(tx));
        let ready = match spawned {
            Ok(_) => rx
                .recv()
                .unwrap_or_else(|_| Err("the signal thread ended".into())),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = ready {
            eprintln!(
                "e2ekit: no SIGINT/SIGTERM handling ({e}); environments left by a signal are removed by the reaper or the next sweep"
            );
        }
    });
}

#[cfg(unix)]
fn watch(ready: std::sync::mpsc::Sender<Result<(), String>>) {
    use tokio::signal::unix::{signal, SignalKind};
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(format!("building its runtime: {e}")));
            return;
        }
    };
    runtime.block_on(async move {
        let (mut int, mut term) = match (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            (Ok(i), Ok(t)) => (i, t),
            (Err(e), _) | (_, Err(e)) => {
                let _ = ready.send(Err(format!("installing the handlers: {e}")));
                return;
            }
        };
        let _ = ready.send(Ok(()));
        let signo = tokio::select! {
            _ = int.recv() => libc::SIGINT,
            _ = term.recv() => libc::SIGTERM,
        };
        eprintln!(
            "e2ekit: {} received; closing this process's environments",
            if signo == libc::SIGINT {
                "SIGINT"
            } else {
                "SIGTERM"
            }
        );
        tokio::select! {
            _ = tokio::time::timeout(CLOSE_BUDGET, close_all()) => {}
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        reraise(signo);
    });
}

#[cfg(not(unix))]
fn watch(ready: std::sync::mpsc::Sender<Result<(), String>>) {
    let _ = ready.send(Err("signals are handled on Unix only".into()));
}

/// Closes every registered environment that is open and not kept, concurrently.
async fn close_all() {
    let cores: Vec<Arc<EnvCore>> = lock(open_cores())
        .iter()
        .filter_map(Weak::upgrade)
        .filter(|c| !c.is_removed() && !c.shared_dir.join(KEPT_MARKER).exists())
        .collect();
    let closes = cores.into_iter().map(|core| async move {
        // The environment's own connection belongs to the runtime of the code that built it,
        // which may be blocked or gone: close through a connection of this thread's runtime.
        match core.backend.reconnect().await {
            Ok(backend) => core.close_with(backend.as_ref(), WAIT_FOR_WORK).await,
            Err(e) => eprintln!(
                "e2ekit: cannot close environment {:?} on a signal: {}",
                core.name,
                e.report()
            ),
        }
    });
    futures_util::future::join_all(closes).await;
}

/// Ends the process with `signo`'s default action, so its exit status is the signal's.
#[cfg(unix)]
fn reraise(signo: libc::c_int) {
    // SAFETY: resetting a disposition and sending a signal to ourselves.
    unsafe {
        libc::signal(signo, libc::SIG_DFL);
        libc::kill(libc::getpid(), signo);
    }
    // Should the signal be blocked somewhere, do not return into a process that was told to
    // stop.
    std::thread::sleep(Duration::from_secs(1));
    std::process::exit(128 + signo);
}
