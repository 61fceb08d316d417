//! The runtime e2ekit owns for work that must outlive the caller's runtime.
//!
//! Exit watchers, log pumps and the engine liveness pinger are spawned here (and
//! `e2ekit::blocking` drives its calls here), not on the
//! runtime of whoever started the runnable: an environment kept in a `static` and used by many
//! `#[tokio::test]`s (each with its own runtime, dropped when its test ends) still notices a
//! crash, prints its runnables' output and feeds their log probes after the runtime that
//! started them is gone.
//!
//! ```
//! # async fn demo() {
//! // Inside the crate: runs on e2ekit's runtime whatever runtime calls it.
//! // crate::runtime::spawn(async { /* watch something */ });
//! # }
//! ```
//!
//! Two worker threads named `e2ekit-bg`, started on first use and kept for the life of the
//! process (a `static` is never dropped, so they end with it).

use std::future::Future;
use std::sync::OnceLock;

use tokio::runtime::{Handle, Runtime};
use tokio::task::JoinHandle;

/// e2ekit's runtime, unless it could not be started.
pub(crate) fn owned() -> Option<&'static Runtime> {
    static RUNTIME: OnceLock<Option<Runtime>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("e2ekit-bg")
                .enable_all()
                .build()
                .map_err(|e| {
                    tracing::warn!(error = %e, "cannot start e2ekit's runtime; background work runs on the caller's");
                })
                .ok()
        })
        .as_ref()
}

/// The handle of e2ekit's own runtime (or, if it could not be started, the caller's).
pub(crate) fn handle() -> Handle {
    match owned() {
        Some(rt) => rt.handle().clone(),
        None => Handle::current(),
    }
}

/// Spawns `task` on e2ekit's own runtime.
pub(crate) fn spawn<F>(task: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    handle().spawn(task)
}
