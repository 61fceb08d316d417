//! Finding and removing what killed test processes left on the engine (the internals behind
//! [`crate::sweep`]).

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::engine::{Backend, ResourceKind};
use crate::error::{Error, Result};
use crate::host::{fs, labels, naming};

/// File in an environment's shared dir marking it as kept for inspection (see
/// `E2EKIT_KEEP_ON_FAILURE`); sweeping leaves such environments alone.
pub(crate) const KEPT_MARKER: &str = ".e2ekit-kept";
/// File in an environment's shared dir naming its owner process (`host:pid:start`), so a
/// directory left by a process killed during close is recognised as an orphan even after its
/// engine resources are gone.
pub(crate) const OWNER_MARKER: &str = ".e2ekit-owner";

/// How old a leftover of another host's process must be before a sweep takes it for stale:
/// 24 hours, by its `e2ekit.created` label, unless its owner shows it is alive. This host
/// cannot see that process; its reaper records a heartbeat on the engine every
/// [`HEARTBEAT_EVERY`], and a heartbeat younger than [`HEARTBEAT_FRESH`] keeps the owner's
/// environments however old they are.
pub const FOREIGN_STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// How often a reaper records that its owner is alive.
pub const HEARTBEAT_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// How recent an owner's last heartbeat must be to count as alive (three beats).
pub const HEARTBEAT_FRESH: std::time::Duration = std::time::Duration::from_secs(3 * 3600);

/// Whether an owner's latest heartbeat (Unix seconds) shows it alive at `now`.
pub(crate) fn heartbeat_is_fresh(beat: Option<u64>, now: u64) -> bool {
    beat.is_some_and(|b| now.saturating_sub(b) < HEARTBEAT_FRESH.as_secs())
}

/// Whether the owner of an environment is still around.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerState {
    /// A live process owns it, or a process on another host that this host cannot check and
    /// whose resources are younger than [`FOREIGN_STALE_AFTER`].
    Alive,
    /// Its owner is gone (or, on another host, its resources are all older than
    /// [`FOREIGN_STALE_AFTER`]): a leftover.
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
    /// Number of volumes ([`crate::StartOptions::named_volume`]).
    pub volumes: usize,
}

/// The directory holding this user's environments: `<base>/e2ekit-<uid>`, where the base is
/// `$E2E_TEMP_DIR` or the system temp dir.
///
/// It is private to the test user (mode 0700, checked to be ours and not a link): other local
/// users cannot reach the shared directories inside it, so they cannot plant or replace a file
/// a service reads, or read a generated key. Containers still can: the shared directory is
/// bind-mounted at its own path, and inside a container the parents of that path are the
/// engine's, not this one. The shared directories themselves stay writable by every uid,
/// because services run as users of their images.
pub(crate) fn private_root() -> Result<PathBuf> {
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
    let root = base.join(format!("e2ekit-{}", fs::current_uid().unwrap_or(0)));
    fs::ensure_private_dir(&root)?;
    Ok(root)
}

/// The shared directory of an environment: `<private root>/<name>` (see [`private_root`]).
///
/// Names reach here from engine labels and the command line too, so a name that is not a
/// valid environment name (`x/../victim`) is refused: the path must stay one directory
/// inside the private root.
pub(crate) fn shared_dir_for(name: &str) -> Result<PathBuf> {
    naming::validate_env_name(name)?;
    Ok(private_root()?.join(name))
}

/// Names of this process's environments that are open (built and not yet closed).
///
/// Resources labelled with this process as owner are only alive while their environment is
/// open here: once it closed (even when its removal failed), they are orphans that the next
/// sweep of this process removes. And a name open here cannot be built a second time.
fn open_here() -> &'static std::sync::Mutex<std::collections::HashSet<String>> {
    static OPEN: std::sync::OnceLock<std::sync::Mutex<std::collections::HashSet<String>>> =
        std::sync::OnceLock::new();
    OPEN.get_or_init(Default::default)
}

fn is_open_here(name: &str) -> bool {
    fs::lock(open_here()).contains(name)
}

/// An environment name held open by this process; released on drop (or [`OpenName::release`]).
#[derive(Debug)]
pub(crate) struct OpenName(String);

impl OpenName {
    /// Holds `name` for this process; `None` if it is already open here.
    pub(crate) fn hold(name: &str) -> Option<Self> {
        fs::lock(open_here())
            .insert(name.to_string())
            .then(|| Self(name.to_string()))
    }

    /// Lets the name go: the environment is closed.
    pub(crate) fn release(&self) {
        fs::lock(open_here()).remove(&self.0);
    }
}

impl Drop for OpenName {
    fn drop(&mut self) {
        self.release();
    }
}

fn is_kept(name: &str) -> bool {
    shared_dir_for(name).is_ok_and(|d| d.join(KEPT_MARKER).exists())
}

/// Whether the resources of an environment owned on another host are stale: every one of
/// them carries an `e2ekit.created` time (seconds since the epoch, `None` when missing or
/// unreadable) older than [`FOREIGN_STALE_AFTER`] at `now`. A resource without a readable time
/// (made by an older e2ekit, or by hand) keeps its environment: its age is unknown.
pub(crate) fn foreign_is_stale(created: &[Option<u64>], now: u64) -> bool {
    !created.is_empty()
        && created
            .iter()
            .all(|c| c.is_some_and(|t| now.saturating_sub(t) > FOREIGN_STALE_AFTER.as_secs()))
}

pub(crate) async fn list_with(backend: &dyn Backend) -> Result<Vec<EnvironmentInfo>> {
    let mut by_env: BTreeMap<String, EnvironmentInfo> = BTreeMap::new();
    let mut created: BTreeMap<String, Vec<Option<u64>>> = BTreeMap::new();
    for r in backend.list_labelled().await? {
        created
            .entry(r.env.clone())
            .or_default()
            .push(r.created.as_deref().and_then(labels::parse_rfc3339));
        let info = by_env
            .entry(r.env.clone())
            .or_insert_with(|| EnvironmentInfo {
                name: r.env.clone(),
                owners: Vec::new(),
                state: OwnerState::Orphaned,
                containers: 0,
                networks: 0,
                volumes: 0,
            });
        match r.kind {
            ResourceKind::Container => info.containers += 1,
            ResourceKind::Network => info.networks += 1,
            ResourceKind::Volume => info.volumes += 1,
        }
        if let Some(owner) = r.owner {
            if !info.owners.contains(&owner) {
                info.owners.push(owner);
            }
        }
    }
    let mut envs: Vec<EnvironmentInfo> = by_env.into_values().collect();
    let now = labels::now_secs();
    // Only owners on other hosts need them; a failure to list them must not stop a sweep
    // (without them, the 24 h rule alone applies).
    let beats = if envs
        .iter()
        .any(|e| e.owners.iter().any(|o| labels::is_foreign_owner(o)))
    {
        backend.heartbeats().await.unwrap_or_else(|e| {
            tracing::warn!(error = %e.report(), "could not list owners' heartbeats");
            BTreeMap::new()
        })
    } else {
        BTreeMap::new()
    };
    for env in &mut envs {
        let stale = created
            .get(&env.name)
            .is_some_and(|c| foreign_is_stale(c, now));
        let alive = env.owners.iter().any(|o| {
            let beating = heartbeat_is_fresh(beats.get(o).copied(), now);
            (o == labels::owner() && is_open_here(&env.name))
                || (labels::is_other_live_owner(o)
                    && !(labels::is_foreign_owner(o) && stale && !beating))
        });
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

/// Removes orphaned environments: those on the engine whose owner is gone, and shared
/// directories whose owner is gone and that have nothing left on the engine (a process killed
/// during close). One that cannot be removed is reported and skipped; the others still go.
pub(crate) async fn remove_orphans_with(backend: &dyn Backend) -> Result<Vec<String>> {
    let mut removed = Vec::new();
    let envs = list_with(backend).await?;
    for env in &envs {
        if env.state == OwnerState::Orphaned {
            tracing::info!(env = %env.name, owners = ?env.owners, "removing an orphaned environment");
            match remove_with(backend, &env.name).await {
                Ok(()) => removed.push(env.name.clone()),
                Err(e) => tracing::warn!(
                    env = %env.name,
                    error = %e.report(),
                    "could not remove an orphaned environment; the sweep goes on"
                ),
            }
        }
    }
    // Heartbeats of owners that are gone: another host's that stopped beating a day ago, or
    // this host's whose process ended without its reaper removing them.
    if let Ok(beats) = backend.heartbeats().await {
        let now = labels::now_secs();
        for (owner, beat) in beats {
            let gone = if labels::is_foreign_owner(&owner) {
                now.saturating_sub(beat) > FOREIGN_STALE_AFTER.as_secs()
            } else {
                owner != labels::owner() && !labels::is_other_live_owner(&owner)
            };
            if gone {
                if let Err(e) = backend.end_heartbeat(&owner).await {
                    tracing::warn!(%owner, error = %e.report(), "could not remove a stale heartbeat");
                }
            }
        }
    }
    for name in orphaned_dirs(&envs) {
        tracing::info!(env = %name, "removing the shared directory of an orphaned environment");
        if let Ok(dir) = shared_dir_for(&name) {
            match std::fs::remove_dir_all(&dir) {
                Ok(()) => removed.push(name),
                Err(e) => tracing::warn!(
                    dir = %dir.display(),
                    error = %e,
                    "could not remove an orphaned shared directory; the sweep goes on"
                ),
            }
        }
    }
    Ok(removed)
}

/// Shared directories in the private root with no engine resources, whose recorded owner is
/// gone and which were not kept for inspection. A directory without an owner record (being
/// created right now, or made by hand) is left alone.
fn orphaned_dirs(on_engine: &[EnvironmentInfo]) -> Vec<String> {
    let Ok(root) = private_root() else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir(&root) else {
        return Vec::new();
    };
    let mut orphans = Vec::new();
    for entry in entries.flatten() {
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let dir = entry.path();
        if naming::validate_env_name(&name).is_err()
            || on_engine.iter().any(|e| e.name == name)
            || dir.join(KEPT_MARKER).exists()
        {
            continue;
        }
        let Ok(owner) = std::fs::read_to_string(dir.join(OWNER_MARKER)) else {
            continue;
        };
        let owner = owner.trim();
        let alive =
            (owner == labels::owner() && is_open_here(&name)) || labels::is_other_live_owner(owner);
        if !alive {
            orphans.push(name);
        }
    }
    orphans.sort();
    orphans
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

    async fn orphan_network(fake: &FakeEngine, env: &str) {
        let labels = BTreeMap::from([
            (labels::ENV.to_string(), env.to_string()),
            (labels::OWNER.to_string(), dead_owner()),
        ]);
        fake.create_network(env, labels)
            .await
            .expect("labelled network");
    }

    #[test]
    fn a_foreign_leftover_is_stale_only_when_every_resource_is_known_to_be_old() {
        let day = FOREIGN_STALE_AFTER.as_secs();
        let now = 10 * day;
        let old = Some(now - day - 1);
        let fresh = Some(now - day + 60);
        assert!(foreign_is_stale(&[old, old], now));
        assert!(!foreign_is_stale(&[old, fresh], now), "one young resource");
        assert!(!foreign_is_stale(&[old, None], now), "one of unknown age");
        assert!(!foreign_is_stale(&[Some(now - day)], now), "exactly 24 h");
        assert!(!foreign_is_stale(&[], now));
        // A clock behind the label's time: not stale.
        assert!(!foreign_is_stale(&[Some(now + 5)], now));
    }

    #[tokio::test]
    async fn a_stale_foreign_leftover_is_swept_a_fresh_or_undated_one_stays() {
        let fake = FakeEngine::new();
        let tag = std::process::id();
        let now = labels::now_secs();
        let foreign = |env: &str, created: Option<String>| {
            let mut l = BTreeMap::from([
                (labels::ENV.to_string(), env.to_string()),
                (labels::OWNER.to_string(), "fk-other-host:1:1".to_string()),
            ]);
            if let Some(c) = created {
                l.insert(labels::CREATED.to_string(), c);
            }
            l
        };
        let (old, fresh, undated) = (
            format!("fk-foreign-old-{tag}"),
            format!("fk-foreign-fresh-{tag}"),
            format!("fk-foreign-undated-{tag}"),
        );
        let stamp = |secs| Some(labels::format_rfc3339(secs));
        fake.create_network(&old, foreign(&old, stamp(now - 25 * 3600)))
            .await
            .expect("network");
        fake.create_network(&fresh, foreign(&fresh, stamp(now - 3600)))
            .await
            .expect("network");
        fake.create_network(&undated, foreign(&undated, None))
            .await
            .expect("network");
        let states: BTreeMap<String, OwnerState> = list_with(&fake)
            .await
            .expect("list")
            .into_iter()
            .map(|e| (e.name, e.state))
            .collect();
        assert_eq!(states[&old], OwnerState::Orphaned);
        assert_eq!(states[&fresh], OwnerState::Alive);
        assert_eq!(states[&undated], OwnerState::Alive);
        let removed = remove_orphans_with(&fake).await.expect("sweep");
        assert!(removed.contains(&old), "{removed:?}");
        let mut left = fake.networks();
        left.sort();
        assert_eq!(left, [fresh, undated]);
    }

    #[tokio::test]
    async fn an_old_foreign_leftover_whose_owner_still_beats_stays() {
        let fake = FakeEngine::new();
        let tag = std::process::id();
        let now = labels::now_secs();
        let day_old = Some(labels::format_rfc3339(now - 25 * 3600));
        let leftover = |env: &str, owner: &str| {
            BTreeMap::from([
                (labels::ENV.to_string(), env.to_string()),
                (labels::OWNER.to_string(), owner.to_string()),
                (
                    labels::CREATED.to_string(),
                    day_old.clone().unwrap_or_default(),
                ),
            ])
        };
        let (beating, silent, stopped) = (
            format!("fk-beating-{tag}"),
            format!("fk-silent-{tag}"),
            format!("fk-stopped-{tag}"),
        );
        for (env, owner) in [
            (&beating, "fk-host-a:1:1"),
            (&silent, "fk-host-b:1:1"),
            (&stopped, "fk-host-c:1:1"),
        ] {
            fake.create_network(env, leftover(env, owner))
                .await
                .expect("network");
        }
        // host-a's reaper beat an hour ago; host-c's stopped beating four hours ago.
        fake.heartbeat_at("fk-host-a:1:1", now - 3600);
        fake.heartbeat_at("fk-host-c:1:1", now - 4 * 3600);
        let states: BTreeMap<String, OwnerState> = list_with(&fake)
            .await
            .expect("list")
            .into_iter()
            .map(|e| (e.name, e.state))
            .collect();
        assert_eq!(
            states[&beating],
            OwnerState::Alive,
            "a fresh heartbeat keeps it"
        );
        assert_eq!(states[&silent], OwnerState::Orphaned);
        assert_eq!(
            states[&stopped],
            OwnerState::Orphaned,
            "a heartbeat 4 h old is not fresh"
        );
        remove_orphans_with(&fake).await.expect("sweep");
        assert_eq!(fake.networks(), [beating]);
        // A heartbeat a day old is itself removed by the sweep.
        fake.heartbeat_at("fk-host-d:1:1", now - 25 * 3600);
        remove_orphans_with(&fake).await.expect("sweep");
        let beats = fake.heartbeats().await.expect("beats");
        assert!(beats.contains_key("fk-host-a:1:1"));
        assert!(!beats.contains_key("fk-host-d:1:1"), "{beats:?}");
    }

    #[tokio::test]
    async fn one_unremovable_orphan_does_not_stop_the_sweep() {
        let fake = FakeEngine::new();
        let tag = std::process::id();
        let (first, second) = (format!("fk-orph-a-{tag}"), format!("fk-orph-b-{tag}"));
        orphan_network(&fake, &first).await;
        orphan_network(&fake, &second).await;
        // The engine refuses the first removal (environments are swept in name order).
        fake.fail_next("remove_environment", "device or resource busy");
        let removed = remove_orphans_with(&fake).await.expect("the sweep goes on");
        assert!(removed.contains(&second), "{removed:?}");
        assert!(!removed.contains(&first), "{removed:?}");
        assert_eq!(fake.networks(), [first]);
    }

    #[tokio::test]
    async fn a_shared_dir_left_by_a_killed_close_is_swept_once_its_owner_is_gone() {
        let root = private_root().expect("private root");
        let tag = std::process::id();
        let make = |name: &str, owner: Option<String>| {
            let dir = root.join(name);
            std::fs::create_dir_all(&dir).expect("dir");
            if let Some(owner) = owner {
                std::fs::write(dir.join(OWNER_MARKER), owner).expect("owner");
            }
            dir
        };
        let dead = make(&format!("fk-dir-dead-{tag}"), Some(dead_owner()));
        // This process's own environment, open: alive.
        let live_name = format!("fk-dir-live-{tag}");
        let _open = OpenName::hold(&live_name).expect("open in this process");
        let live = make(&live_name, Some(labels::owner().to_string()));
        let unknown = make(&format!("fk-dir-unknown-{tag}"), None);
        let kept = make(&format!("fk-dir-kept-{tag}"), Some(dead_owner()));
        std::fs::write(kept.join(KEPT_MARKER), "kept").expect("kept marker");
        // Removes what the test made even when an assertion fails.
        struct Cleanup(Vec<std::path::PathBuf>);
        impl Drop for Cleanup {
            fn drop(&mut self) {
                for dir in &self.0 {
                    let _ = std::fs::remove_dir_all(dir);
                }
            }
        }
        let _cleanup = Cleanup(vec![
            dead.clone(),
            live.clone(),
            unknown.clone(),
            kept.clone(),
        ]);

        // Other tests of this process sweep the same root concurrently: whichever sweep got
        // there, the dead owner's directory is gone and the others stay.
        remove_orphans_with(&FakeEngine::new())
            .await
            .expect("sweep");
        assert!(!dead.exists());
        for stays in [&live, &unknown, &kept] {
            assert!(stays.exists(), "{} was removed", stays.display());
        }
    }

    #[tokio::test]
    async fn shared_dirs_live_in_a_root_only_the_test_user_can_enter() {
        let env = crate::env::tests::fake_env(&FakeEngine::new(), "fk-private").await;
        let parent = env.shared_dir().parent().expect("a parent");
        assert_eq!(parent, private_root().expect("root"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::{MetadataExt, PermissionsExt};
            let meta = std::fs::metadata(parent).expect("root exists");
            assert_eq!(meta.permissions().mode() & 0o777, 0o700);
            assert_eq!(Some(meta.uid()), fs::current_uid());
        }
        assert_eq!(
            std::fs::read_to_string(env.shared_dir().join(OWNER_MARKER)).expect("owner"),
            labels::owner()
        );
        env.close().await;
    }

    #[cfg(unix)]
    #[test]
    fn a_root_others_can_enter_or_a_link_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let base = std::env::temp_dir().join(format!("e2ekit-private-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(&base).expect("base");
        let open = base.join("open");
        std::fs::create_dir(&open).expect("open dir");
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        let err = fs::ensure_private_dir(&open).expect_err("world-writable root");
        assert!(err.to_string().contains("private to you"), "{err}");
        let link = base.join("link");
        std::os::unix::fs::symlink(&open, &link).expect("link");
        assert!(fs::ensure_private_dir(&link).is_err(), "a link is refused");
        let fresh = base.join("fresh");
        fs::ensure_private_dir(&fresh).expect("created");
        let mode = std::fs::metadata(&fresh)
            .expect("exists")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o700);
        std::fs::remove_dir_all(&base).expect("cleanup");
    }
}
