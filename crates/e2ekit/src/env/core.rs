//! The state an environment shares with its runnables ([`EnvCore`]), and the one rule for
//! naming containers and runnable directories.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use super::runnable::{Runnable, RunnableInner};
use super::{sweep, EnvironmentListener};
use crate::engine::{Backend, NetworkInfo};
use crate::error::{Error, Result};
use crate::host::fs::lock;
use crate::host::{labels, naming};

/// The engine's name of a runnable's container, which is also its DNS name on the network:
/// `<env>-<runnable>`.
pub(crate) fn container_name(env: &str, runnable: &str) -> String {
    format!("{env}-{runnable}")
}

/// A runnable's directory: `<shared dir>/data/<runnable>`.
pub(crate) fn runnable_dir(shared_dir: &Path, runnable: &str) -> PathBuf {
    shared_dir.join("data").join(runnable)
}

pub(crate) type Closer = Box<dyn FnOnce() + Send>;

/// State shared by the environment and its runnables.
pub(crate) struct EnvCore {
    pub name: String,
    pub backend: Arc<dyn Backend>,
    /// A second connection to the same engine for the long watches that run on e2ekit's
    /// runtime (exit waits, output, usage): its pooled connections are never ones a caller's
    /// runtime opened, so a watch does not break when a caller's runtime goes away.
    pub background: Arc<dyn Backend>,
    pub network: NetworkInfo,
    pub shared_dir: PathBuf,
    pub volumes: Vec<crate::spec::Mount>,
    pub cpus: Option<f64>,
    pub verbose: bool,
    /// Whether runnables print their output with a `name: ` prefix unless their options say.
    pub(crate) print_output: AtomicBool,
    pub http: reqwest::Client,
    pub(crate) closed: AtomicBool,
    /// The engine confirmed the removal of every container and the network.
    pub(crate) removed: AtomicBool,
    /// Run once when the engine confirmed the removal (tells the reaper).
    pub(crate) on_removed: Mutex<Option<Closer>>,
    /// Kept for inspection (keep-on-failure): nothing closes it any more in this process.
    pub(crate) kept: AtomicBool,
    /// Serialises closes (an explicit one and the drop guard's, a retry after a failure).
    pub(crate) closing: tokio::sync::Mutex<()>,
    /// Engine work that creates containers holds this shared while it runs; close takes it
    /// exclusively, so it removes what in-flight starts created instead of racing them.
    pub(crate) in_flight: tokio::sync::RwLock<()>,
    /// A close stopped waiting for in-flight starts (the drop guard's short wait ran out):
    /// those starts must undo their own work when they finish.
    pub(crate) close_gave_up: AtomicBool,
    /// This environment's name, held open in this process until it closes.
    pub(crate) open_name: sweep::OpenName,
    pub(crate) names: Mutex<HashSet<String>>,
    pub(crate) started: Mutex<Vec<Weak<RunnableInner>>>,
    /// How to reach each running runnable, kept apart from the runnables themselves so it
    /// can be printed after they were dropped (keep-on-failure).
    pub(crate) reachable: Mutex<BTreeMap<String, String>>,
    pub(crate) listeners: Mutex<Vec<Arc<dyn EnvironmentListener>>>,
    pub(crate) closers: Mutex<Vec<Closer>>,
}

impl fmt::Debug for EnvCore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Environment")
            .field("name", &self.name)
            .field("network", &self.network.name)
            .field("shared_dir", &self.shared_dir)
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}

impl EnvCore {
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    pub(crate) fn ensure_open(&self) -> Result<()> {
        if self.is_closed() {
            return Err(Error::EnvironmentClosed {
                env: self.name.clone(),
            });
        }
        Ok(())
    }

    pub(crate) fn register(&self, name: &str) -> Result<()> {
        self.ensure_open()?;
        naming::validate_runnable_name(&self.name, name)?;
        if !lock(&self.names).insert(name.to_string()) {
            return Err(Error::DuplicateRunnable {
                env: self.name.clone(),
                name: name.to_string(),
            });
        }
        Ok(())
    }

    pub(crate) fn trace(&self, what: impl FnOnce() -> String) {
        if self.verbose {
            println!("e2ekit[{}]: {}", self.name, what());
        }
    }

    pub(crate) fn container_labels(&self, runnable: &str) -> BTreeMap<String, String> {
        let mut l = self.labels();
        l.insert(labels::RUNNABLE.to_string(), runnable.to_string());
        l
    }

    fn labels(&self) -> BTreeMap<String, String> {
        env_labels(&self.name)
    }

    /// Records a start (keeping start order) and tells the listeners.
    pub(crate) fn started(&self, runnable: &Arc<RunnableInner>) {
        {
            let mut started = lock(&self.started);
            started.retain(|w| w.strong_count() > 0 && !Weak::ptr_eq(w, &Arc::downgrade(runnable)));
            started.push(Arc::downgrade(runnable));
        }
        self.notify();
    }

    /// Records (or with `None` forgets) how to reach a runnable.
    pub(crate) fn set_reachable(&self, runnable: &str, how: Option<String>) {
        let mut map = lock(&self.reachable);
        match how {
            Some(h) => map.insert(runnable.to_string(), h),
            None => map.remove(runnable),
        };
    }

    pub(crate) fn notify(&self) {
        let running: Vec<Runnable> = lock(&self.started)
            .iter()
            .filter_map(Weak::upgrade)
            .map(Runnable::from_inner)
            .filter(Runnable::is_running)
            .collect();
        let listeners = lock(&self.listeners).clone();
        for l in listeners {
            if let Err(e) = l.on_change(&running) {
                tracing::warn!(env = %self.name, error = %e.report(), "environment listener failed");
            }
        }
    }

    /// Whether close removed everything from the engine.
    pub(crate) fn is_removed(&self) -> bool {
        self.removed.load(Ordering::Acquire)
    }

    /// Holds off a close while engine work that creates containers runs, or says the
    /// environment is closed. Check [`EnvCore::undo_needed`] when the work is done.
    pub(crate) async fn begin_work(&self) -> Result<tokio::sync::RwLockReadGuard<'_, ()>> {
        self.ensure_open()?;
        let guard = self.in_flight.read().await;
        // A close that began while we queued has the write side next; do not start new work.
        self.ensure_open()?;
        Ok(guard)
    }

    /// Whether work that ran under [`EnvCore::begin_work`] must remove what it created
    /// itself: the environment closed meanwhile and the close did not wait for it.
    pub(crate) fn undo_needed(&self) -> bool {
        self.is_closed() && self.close_gave_up.load(Ordering::Acquire)
    }

    /// Closes the environment with the given engine connection, after waiting up to
    /// `wait_for_work` for in-flight starts (which then fail with `EnvironmentClosed`, their
    /// containers removed here). Safe to call twice; a close the engine interrupted is retried
    /// by the next call (or the drop guard), and once the environment is closed, the next
    /// sweep of this process removes what is left anyway.
    pub(crate) async fn close_with(&self, backend: &dyn Backend, wait_for_work: Duration) {
        let _closing = self.closing.lock().await;
        if self.is_removed() {
            return;
        }
        let first = !self.closed.swap(true, Ordering::AcqRel);
        // New work is refused from here on; wait for what already runs so its containers
        // exist (and are listed) when we remove the environment's resources.
        let _no_work = match tokio::time::timeout(wait_for_work, self.in_flight.write()).await {
            Ok(guard) => Some(guard),
            Err(_) => {
                self.close_gave_up.store(true, Ordering::Release);
                self.trace(|| {
                    "stopped waiting for in-flight starts; they undo their own work".into()
                });
                None
            }
        };
        if first {
            let closers: Vec<Closer> = std::mem::take(&mut *lock(&self.closers));
            for closer in closers.into_iter().rev() {
                closer();
            }
            // Start order is kept for listeners; removal is concurrent because a kill does
            // not care about order and sequential removal would be N times slower.
            let runnables: Vec<_> = lock(&self.started)
                .drain(..)
                .filter_map(|w| w.upgrade())
                .collect();
            for r in runnables.iter().rev() {
                Runnable::from_inner(r.clone()).forget_container();
            }
        }
        self.trace(|| "removing containers and network".to_string());
        match backend
            .remove_environment(&self.name, Some(&self.network.name))
            .await
        {
            Ok(()) => {
                self.removed.store(true, Ordering::Release);
                if let Some(tell) = lock(&self.on_removed).take() {
                    tell();
                }
            }
            Err(e) => eprintln!(
                "e2ekit: closing environment {:?}: {}; call close() again, or the next environment this process creates removes what is left",
                self.name,
                e.report()
            ),
        }
        // Closed: what is left on the engine is an orphan now, for this process's sweeps too.
        self.open_name.release();
        match std::fs::remove_dir_all(&self.shared_dir) {
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                // Files a container wrote as another user (root, mostly): delete them as root
                // through the engine, then what is left is ours.
                self.trace(|| "removing files owned by another user through the engine".into());
                if let Err(e) = crate::engine::cleanup::remove_contents_as_root(
                    backend,
                    &self.name,
                    &self.shared_dir,
                )
                .await
                {
                    eprintln!(
                        "e2ekit: could not remove files written by containers as another user in {}: {}",
                        self.shared_dir.display(),
                        e.report()
                    );
                }
                remove_dir(&self.shared_dir);
            }
            Ok(()) => {}
            // Retried once more by remove_dir, which reports what is left.
            Err(_) => remove_dir(&self.shared_dir),
        }
    }
}

/// `E2EKIT_KEEP_ON_FAILURE=1`: leave the environment of a panicking test running.
pub(crate) fn keep_on_failure() -> bool {
    std::env::var("E2EKIT_KEEP_ON_FAILURE").is_ok_and(|v| !v.is_empty() && v != "0")
}

impl EnvCore {
    /// Whether the environment was kept for inspection.
    pub(crate) fn is_kept(&self) -> bool {
        self.kept.load(Ordering::Acquire)
    }

    /// Marks the environment as kept (so sweeps spare it, and the drop guard leaves it) and
    /// prints how to reach and remove it. Only the first call prints.
    pub(crate) fn keep_for_inspection(&self) {
        if self.kept.swap(true, Ordering::AcqRel) {
            return;
        }
        let _ = std::fs::write(self.shared_dir.join(sweep::KEPT_MARKER), labels::owner());
        let mut text = format!(
            "\ne2ekit: E2EKIT_KEEP_ON_FAILURE is set; environment {:?} is kept for inspection.\n",
            self.name
        );
        for line in lock(&self.reachable).values() {
            text.push_str(&format!("  {line}\n"));
        }
        text.push_str(&format!("  shared dir: {}\n", self.shared_dir.display()));
        text.push_str(&format!(
            "  remove it with: {}\n",
            self.backend.removal_hint(&self.name, &self.shared_dir)
        ));
        eprintln!("{text}");
    }
}

pub(crate) fn env_labels(name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (labels::ENV.to_string(), name.to_string()),
        (labels::OWNER.to_string(), labels::owner().to_string()),
        (labels::CREATED.to_string(), labels::created_now()),
    ])
}

pub(crate) fn remove_dir(dir: &Path) {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => eprintln!(
            "e2ekit: could not remove shared dir {}: {e} (files written by containers as another user? run them with StartOptions::host_user)",
            dir.display()
        ),
    }
}
