//! Engine calls with deadlines, and the classification of Docker's answers.
//!
//! Every call names its action ("creating container x for runnable y") so an error says what
//! e2ekit was doing; "already in that state" answers are normalised once, here.

use std::future::Future;
use std::time::Duration;

use crate::error::{Error, Result};

/// Upper bound for any single engine call that is not a long wait, so a vanished engine
/// yields an error instead of a hung test.
pub(super) const CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// Connecting must fail fast: a test suite pointed at a dead engine should say so in seconds.
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// bollard's own deadline for a request; [`CALL_TIMEOUT`] and the waits stay below it.
pub(super) const ENGINE_TIMEOUT_SECS: u64 = 120;

/// The engine used when neither the builder nor `DOCKER_HOST` names one.
pub(super) fn default_endpoint() -> &'static str {
    "unix:///var/run/docker.sock"
}

/// Runs an engine call with a deadline, naming the action in the error.
pub(super) async fn within<T>(
    action: impl FnOnce() -> String,
    limit: Duration,
    call: impl Future<Output = std::result::Result<T, bollard::errors::Error>>,
) -> Result<T> {
    match tokio::time::timeout(limit, call).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(Error::engine(action(), e)),
        Err(_) => Err(Error::EngineTimeout {
            action: action(),
            after: limit,
        }),
    }
}

/// The bollard error inside an [`Error::Engine`], if that is what `e` is.
pub(super) fn bollard_error(e: &Error) -> Option<&bollard::errors::Error> {
    match e {
        Error::Engine { source, .. } => source.downcast_ref::<bollard::errors::Error>(),
        _ => None,
    }
}

/// The HTTP status the engine answered with.
pub(super) fn status_code(e: &Error) -> Option<u16> {
    match bollard_error(e)? {
        bollard::errors::Error::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

/// The resource is gone (or never was).
pub(super) fn is_not_found(e: &Error) -> bool {
    status_code(e) == Some(404)
}

/// The engine's error message; Podman reports some of Docker's 409 conditions as 500 with a
/// message only.
pub(super) fn engine_message(e: &Error) -> &str {
    match bollard_error(e) {
        Some(bollard::errors::Error::DockerResponseServerError { message, .. }) => message,
        _ => "",
    }
}

/// The engine answered with JSON bollard cannot decode.
pub(super) fn is_undecodable(e: &Error) -> bool {
    matches!(
        bollard_error(e),
        Some(bollard::errors::Error::JsonDataError { .. })
    )
}

/// Treats the given engine answers (besides 404, gone already) as success: they mean the
/// container is already in the state the call wanted.
pub(super) fn already_done(res: Result<()>, codes: &[u16]) -> Result<()> {
    match res {
        Err(e) if is_not_found(&e) || status_code(&e).is_some_and(|c| codes.contains(&c)) => Ok(()),
        other => other,
    }
}
