//! Finding and removing what killed test processes left on the engine.
//!
//! Every resource carries its environment's name and its owner (`host:pid:start-time`). An
//! environment whose owner process is gone is an orphan; every new environment removes the
//! orphans it finds, and the `e2ekit` command-line tool lists and removes them by hand.
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

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::backend::Backend;
use crate::docker::DockerBackend;
use crate::error::{Error, Result};
use crate::labels;

/// File in an environment's shared dir marking it as kept for inspection (see
/// `E2EKIT_KEEP_ON_FAILURE`); sweeping leaves such environments alone.
pub(crate) const KEPT_MARKER: &str = ".e2ekit-kept";

/// Whether the owner of an environment is still around.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerState {
    /// A live process (or one on another host, which cannot be checked) owns it.
    Alive,
    /// Its owner is gone: a leftover.
    Orphaned,
    /// Its owner is gone, but it was kept for inspection after a failure.
    Kept,
    /// It carries no owner label (made by hand or by another tool): never swept automatically.
    Unknown,
}

/// An environment found on the engine.
#[derive(Debug, Clone)]
pub struct EnvironmentInfo {
    /// Environment name.
    pub name: String,
    /// Owner labels found on its resources.
    pub owners: Vec<String>,
    /// Whether its owner lives.
    pub state: OwnerState,
    /// Number of containers.
    pub containers: usize,
    /// Number of networks.
    pub networks: usize,
}

/// The shared directory of an environment: `$E2E_TEMP_DIR/e2ekit-<name>` or under the
/// system temp dir.
pub(crate) fn shared_dir_for(name: &str) -> Result<PathBuf> {
    let base = std::env::var_os("E2E_TEMP_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&base)
        .map_err(|e| Error::io(format!("creating {}", base.display()), e))?;
    // Canonical, so it is the same string on the host and inside containers (macOS links
    // /tmp elsewhere).
    let base = base
        .canonicalize()
        .map_err(|e| Error::io(format!("resolving {}", base.display()), e))?;
    Ok(base.join(format!("e2ekit-{name}")))
}

fn is_kept(name: &str) -> bool {
    shared_dir_for(name).is_ok_and(|d| d.join(KEPT_MARKER).exists())
}

pub(crate) async fn list_with(backend: &dyn Backend) -> Result<Vec<EnvironmentInfo>> {
    let mut by_env: BTreeMap<String, EnvironmentInfo> = BTreeMap::new();
    for r in backend.list_labelled().await? {
        let info = by_env
            .entry(r.env.clone())
            .or_insert_with(|| EnvironmentInfo {
                name: r.env.clone(),
                owners: Vec::new(),
                state: OwnerState::Orphaned,
                containers: 0,
                networks: 0,
            });
        if r.container {
            info.containers += 1;
        } else {
            info.networks += 1;
        }
        if let Some(owner) = r.owner {
            if !info.owners.contains(&owner) {
                info.owners.push(owner);
            }
        }
    }
    let mut envs: Vec<EnvironmentInfo> = by_env.into_values().collect();
    for env in &mut envs {
        let alive = env
            .owners
            .iter()
            .any(|o| o == labels::owner() || labels::is_other_live_owner(o));
        env.state = if env.owners.is_empty() {
            OwnerState::Unknown
        } else if alive {
            OwnerState::Alive
        } else if is_kept(&env.name) {
            OwnerState::Kept
        } else {
            OwnerState::Orphaned
        };
    }
    Ok(envs)
}

/// Removes an environment's containers, networks and shared dir.
pub(crate) async fn remove_with(backend: &dyn Backend, name: &str) -> Result<()> {
    backend.remove_environment(name, None).await?;
    if let Ok(dir) = shared_dir_for(name) {
        let _ = std::fs::remove_dir_all(dir);
    }
    Ok(())
}

pub(crate) async fn remove_orphans_with(backend: &dyn Backend) -> Result<Vec<String>> {
    let mut removed = Vec::new();
    for env in list_with(backend).await? {
        if env.state == OwnerState::Orphaned {
            tracing::info!(env = %env.name, owners = ?env.owners, "removing an orphaned environment");
            remove_with(backend, &env.name).await?;
            removed.push(env.name);
        }
    }
    Ok(removed)
}

async fn connect(docker_host: Option<&str>) -> Result<DockerBackend> {
    DockerBackend::connect(docker_host).await
}

/// Every e2ekit environment on the engine (`docker_host`: default `DOCKER_HOST` or the local
/// socket).
pub async fn list_environments(docker_host: Option<&str>) -> Result<Vec<EnvironmentInfo>> {
    list_with(&connect(docker_host).await?).await
}

/// Removes the environments whose owner process is gone (kept ones stay). Returns their names.
pub async fn remove_orphans(docker_host: Option<&str>) -> Result<Vec<String>> {
    remove_orphans_with(&connect(docker_host).await?).await
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
    remove_with(&connect(docker_host).await?, name).await
}
