//! Finding and removing what killed test processes left on the engine.
//!
//! Every resource carries its environment's name, its owner (`host:pid:start-time`) and its
//! creation time (`e2ekit.created`, RFC 3339 UTC). An environment whose owner process is gone
//! is an orphan; so is one owned on another host whose resources are all older than
//! [`FOREIGN_STALE_AFTER`] and whose owner's reaper has not recorded a heartbeat for
//! [`HEARTBEAT_FRESH`] (that host's processes cannot be seen from here).
//! Every new environment removes the orphans it finds, and the `e2ekit` command-line tool
//! lists and removes them by hand.
//!
//! Most orphans never wait for a sweep: each process's reaper removes its environments as soon
//! as the process is gone, and SIGINT/SIGTERM close them before it exits. The sweep covers a
//! reaper that could not start, and leftovers of other hosts.
//!
//! ```no_run
//! # async fn demo() -> e2ekit::Result<()> {
//! for env in e2ekit::sweep::list_environments(None).await? {
//!     println!("{} ({:?}): {} containers", env.name, env.state, env.containers);
//! }
//! let removed = e2ekit::sweep::remove_orphans(None).await?;
//! # let _ = removed;
//! # Ok(()) }
//! ```

use std::sync::Arc;

use crate::engine::{Backend, Engine};
use crate::env::sweep::{list_with, remove_orphans_with, remove_with};
use crate::error::Result;

pub use crate::env::sweep::{
    EnvironmentInfo, OwnerState, FOREIGN_STALE_AFTER, HEARTBEAT_EVERY, HEARTBEAT_FRESH,
};

async fn connect(docker_host: Option<&str>) -> Result<Arc<dyn Backend>> {
    Engine::docker_at(docker_host).connect().await
}

/// Every e2ekit environment on the engine (`docker_host`: default as
/// [`Engine::docker`](crate::Engine::docker) finds it).
pub async fn list_environments(docker_host: Option<&str>) -> Result<Vec<EnvironmentInfo>> {
    list_with(connect(docker_host).await?.as_ref()).await
}

/// Removes the environments whose owner process is gone (kept ones stay). Returns their names.
pub async fn remove_orphans(docker_host: Option<&str>) -> Result<Vec<String>> {
    remove_orphans_with(connect(docker_host).await?.as_ref()).await
}

/// What [`prune_images`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrunedImages {
    /// Tags removed (an image goes with its last tag).
    pub removed: Vec<String>,
    /// Tags kept because a container (running or stopped) uses their image.
    pub in_use: Vec<String>,
}

/// Removes images built from host files ([`crate::HostImage`]; they carry the label
/// `e2ekit.host-image`) that no container uses, optionally only those whose repository starts
/// with `repo_prefix`. They are build caches, rebuilt on demand; like `docker image prune`, run
/// it when no scenario is building images.
pub async fn prune_images(
    docker_host: Option<&str>,
    repo_prefix: Option<&str>,
) -> Result<PrunedImages> {
    let backend = connect(docker_host).await?;
    let mut pruned = PrunedImages::default();
    for tags in backend.list_host_images().await? {
        for tag in tags {
            if repo_prefix.is_some_and(|p| !tag.starts_with(p)) {
                continue;
            }
            if backend.untag_image(&tag).await? {
                pruned.removed.push(tag);
            } else {
                pruned.in_use.push(tag);
            }
        }
    }
    Ok(pruned)
}

/// Removes one environment, whoever owns it.
pub async fn remove_environment(docker_host: Option<&str>, name: &str) -> Result<()> {
    remove_with(connect(docker_host).await?.as_ref(), name).await
}
