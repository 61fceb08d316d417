//! One setup (an environment and its runnables) started once per test binary and used by
//! many tests, each on its own runtime.
//!
//! ```no_run
//! use e2ekit::prelude::*;
//!
//! struct Setup {
//!     env: Environment,
//!     app: Runnable,
//! }
//!
//! static SETUP: Shared<Setup> = Shared::new();
//!
//! async fn setup() -> e2ekit::Result<&'static Setup> {
//!     SETUP
//!         .get_or_try_init(|| async {
//!             let env = Environment::builder().name("shared-setup").build().await?;
//!             let app = env
//!                 .runnable("app")
//!                 .init(StartOptions::new("e2ekit/demo-app:latest"))?;
//!             app.start().await?;
//!             Ok(Setup { env, app })
//!         })
//!         .await
//! }
//!
//! #[tokio::test]
//! async fn first() -> e2ekit::Result<()> {
//!     let s = setup().await?;
//!     assert!(s.app.is_running());
//!     Ok(())
//! }
//! ```
//!
//! Why this works when each `#[tokio::test]` has its own runtime, dropped when the test ends:
//! the setup runs on e2ekit's own runtime, and so do the exit watchers, output pumps and
//! liveness checks of every runnable (see `crate::runtime`), whatever runtime started them.
//! A crash is noticed, and output printed, after the test that started the setup is over.
//!
//! The environment of a shared setup is never dropped (it lives in a `static`); it is removed
//! when the process exits, normally or not, by e2ekit's reaper, or else by the next build of
//! any environment on that engine (the owner process is gone).

use std::future::Future;

use tokio::sync::OnceCell;

use crate::error::{Error, Result};

/// A value built once per process on e2ekit's own runtime, for a `static` shared by tests.
pub struct Shared<T> {
    cell: OnceCell<T>,
}

impl<T> std::fmt::Debug for Shared<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("initialised", &self.cell.initialized())
            .finish()
    }
}

impl<T> Default for Shared<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Shared<T> {
    /// An empty cell, usable in a `static`.
    pub const fn new() -> Self {
        Self {
            cell: OnceCell::const_new(),
        }
    }

    /// The value, if it was built.
    pub fn get(&self) -> Option<&T> {
        self.cell.get()
    }
}

impl<T: Send + Sync + 'static> Shared<T> {
    /// The value, building it with `init` on e2ekit's runtime the first time. Concurrent
    /// callers wait for the one build; if it fails, that caller gets the error and the next
    /// call tries again.
    pub async fn get_or_try_init<F, Fut>(&'static self, init: F) -> Result<&'static T>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T>> + Send + 'static,
    {
        self.cell
            .get_or_try_init(|| async move {
                // Built on e2ekit's runtime: what the setup opens (sockets, the engine
                // client's connections) must not belong to the caller's runtime, which ends
                // with the caller's test.
                crate::runtime::spawn(init())
                    .await
                    .map_err(|e| Error::Unexpected(format!("building a shared setup: {e}")))?
            })
            .await
    }
}
