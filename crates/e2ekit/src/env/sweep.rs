//! Finding and removing what killed test processes left on the engine (the internals behind
//! [`crate::sweep`]).

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::engine::Backend;
use crate::error::{Error, Result};
use crate::host::{labels, naming};

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
///
/// Names reach here from engine labels and the command line too, so a name that is not a
/// valid environment name (`x/../victim`) is refused: the path must stay one directory
/// inside the base.
pub(crate) fn shared_dir_for(name: &str) -> Result<PathBuf> {
    naming::validate_env_name(name)?;
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

/// Removes an environment's containers, networks and shared dir. The directory is only
/// touched for a valid environment name (see [`shared_dir_for`]).
pub(crate) async fn remove_with(backend: &dyn Backend, name: &str) -> Result<()> {
    backend.remove_environment(name, None).await?;
    match shared_dir_for(name) {
        Ok(dir) => {
            let _ = std::fs::remove_dir_all(dir);
        }
        Err(e) => {
            tracing::warn!(env = %name, error = %e, "not touching any directory for an invalid environment name");
        }
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::engine::fake::FakeEngine;

    /// A label naming a process of this host that is not running: an orphan's owner.
    fn dead_owner() -> String {
        let mine = labels::owner();
        let host = mine.rsplitn(3, ':').nth(2).unwrap_or_default();
        format!("{host}:4000000:1")
    }

    #[tokio::test]
    async fn a_label_with_a_path_in_it_never_reaches_the_file_system() {
        let base = std::env::temp_dir();
        let tag = format!("{}-{}", std::process::id(), line!());
        let victim = base.join(format!("victim-{tag}"));
        let decoy = base.join(format!("e2ekit-x-{tag}"));
        std::fs::create_dir_all(&victim).expect("victim dir");
        std::fs::write(victim.join("precious"), "keep me").expect("victim file");
        std::fs::create_dir_all(&decoy).expect("decoy dir");
        let hostile = format!("x-{tag}/../victim-{tag}");

        let fake = FakeEngine::new();
        let labels = BTreeMap::from([
            (labels::ENV.to_string(), hostile.clone()),
            (labels::OWNER.to_string(), dead_owner()),
        ]);
        fake.create_network("hostile", labels)
            .await
            .expect("labelled network");

        let removed = remove_orphans_with(&fake).await.expect("sweep");
        assert_eq!(
            removed,
            std::slice::from_ref(&hostile),
            "the orphan's engine resources go"
        );
        assert!(fake.networks().is_empty());
        assert!(
            victim.join("precious").exists(),
            "a path outside e2ekit's dirs was removed"
        );
        assert!(shared_dir_for(&hostile).is_err());
        std::fs::remove_dir_all(&victim).expect("cleanup");
        std::fs::remove_dir_all(&decoy).expect("cleanup");
    }
}
