//! Telling a long engine call from a dead or frozen engine.
//!
//! An exec may stream for an hour and a container may run for days, so their engine calls
//! have no deadline. Instead, while at least one such call is in progress, one task per
//! connection pings the engine; when the engine has not answered for [`SILENCE_LIMIT`], the
//! calls fail with an error that says so. A frozen `dockerd` still accepts connections (the
//! kernel queues them), so only an answer counts as alive.
//!
//! ```text
//! exec "sleep 3600" ─────────────────────────────── runs as long as it runs
//! pinger            ping ok ·· ping ok ·· timeout ·· timeout ·· → calls fail after 15 s
//! ```

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bollard::Docker;
use tokio::sync::watch;

use crate::error::{Error, Result};
use crate::host::fs::lock;

/// How often the engine is pinged while a guarded call runs.
const PING_EVERY: Duration = Duration::from_secs(3);
/// How long one ping may take: an engine under load still answers `/_ping` in milliseconds.
const PING_TIMEOUT: Duration = Duration::from_secs(5);
/// How long without any answer means the engine is gone.
pub(super) const SILENCE_LIMIT: Duration = Duration::from_secs(15);

/// The engine stopped answering; the cause of the failed call's error.
#[derive(Debug, thiserror::Error)]
#[error("the engine stopped answering: no reply to a ping for {silent:?} ({last})")]
pub(crate) struct EngineSilent {
    silent: Duration,
    last: String,
}

/// Liveness of one engine connection, shared by its clones.
#[derive(Clone)]
pub(super) struct Liveness {
    shared: Arc<Shared>,
}

struct Shared {
    docker: Docker,
    /// Guarded calls in progress, and whether the pinger runs.
    state: Mutex<PingerState>,
    /// `Some` once the engine has been silent too long (reset by the next answer).
    verdict: watch::Sender<Option<Arc<EngineSilent>>>,
}

#[derive(Default)]
struct PingerState {
    guarded: usize,
    pinging: bool,
}

/// One guarded call: keeps the pinger going while it lives.
struct Guarded {
    shared: Arc<Shared>,
}

impl Drop for Guarded {
    fn drop(&mut self) {
        lock(&self.shared.state).guarded -= 1;
    }
}

impl Liveness {
    pub(super) fn new(docker: Docker) -> Self {
        Self {
            shared: Arc::new(Shared {
                docker,
                state: Mutex::new(PingerState::default()),
                verdict: watch::channel(None).0,
            }),
        }
    }

    /// Runs `call`, failing it (as `action`) if the engine stops answering meanwhile.
    pub(super) async fn guard<T>(
        &self,
        action: impl FnOnce() -> String,
        call: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        let _guarded = self.enter();
        let mut verdict = self.shared.verdict.subscribe();
        // Only a verdict reached while this call runs counts: the engine may have come back
        // since an earlier one (a failing ping repeats the verdict, so a silence that goes on
        // is reported again within one ping).
        verdict.borrow_and_update();
        let silent = async {
            loop {
                if verdict.changed().await.is_err() {
                    return None;
                }
                if let Some(cause) = verdict.borrow_and_update().clone() {
                    return Some(cause);
                }
            }
        };
        tokio::select! {
            result = call => result,
            cause = silent => Err(match cause {
                Some(cause) => Error::engine(action(), cause),
                None => Error::engine(action(), "the engine connection was dropped"),
            }),
        }
    }

    fn enter(&self) -> Guarded {
        let start_pinger = {
            let mut state = lock(&self.shared.state);
            state.guarded += 1;
            !std::mem::replace(&mut state.pinging, true)
        };
        if start_pinger {
            // A verdict from an earlier silence is stale: the engine may be back.
            self.shared.verdict.send_replace(None);
            crate::runtime::spawn(ping_while_guarded(self.shared.clone()));
        }
        Guarded {
            shared: self.shared.clone(),
        }
    }
}

/// Marks the pinger as gone however its task ends (returned, or dropped with its runtime),
/// so the next guarded call starts a new one.
struct Pinging(Arc<Shared>);

impl Drop for Pinging {
    fn drop(&mut self) {
        lock(&self.0.state).pinging = false;
    }
}

async fn ping_while_guarded(shared: Arc<Shared>) {
    let _pinging = Pinging(shared.clone());
    let mut last_answer = Instant::now();
    loop {
        tokio::time::sleep(PING_EVERY).await;
        if lock(&shared.state).guarded == 0 {
            return;
        }
        let failure = match tokio::time::timeout(PING_TIMEOUT, shared.docker.ping()).await {
            Ok(Ok(_)) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some(format!(
                "the last ping got no answer within {PING_TIMEOUT:?}"
            )),
        };
        match failure {
            None => {
                last_answer = Instant::now();
                shared.verdict.send_replace(None);
            }
            Some(last) => {
                let silent = last_answer.elapsed();
                tracing::debug!(?silent, %last, "engine ping failed");
                if silent >= SILENCE_LIMIT {
                    shared
                        .verdict
                        .send_replace(Some(Arc::new(EngineSilent { silent, last })));
                }
            }
        }
    }
}
