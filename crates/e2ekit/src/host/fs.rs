//! Small host-side helpers every layer needs: atomic file replacement, permissions for
//! directories containers write into, and a lock that survives a panic.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use crate::error::{Error, Result};

/// Replaces `path` so readers see the old or the new content, never half of one: the content
/// goes to `<path>.tmp` first and is renamed over `path`. The file is left world-readable, as
/// containers may read it as any user.
pub(crate) fn write_atomically(path: &Path, content: impl AsRef<[u8]>) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, content)
        .map_err(|e| Error::io(format!("writing {}", tmp.display()), e))?;
    set_mode(&tmp, 0o644);
    std::fs::rename(&tmp, path).map_err(|e| Error::io(format!("replacing {}", path.display()), e))
}

/// Lets containers running as any user write into `dir` (they do not share our uid).
pub(crate) fn open_permissions(dir: &Path) {
    set_mode(dir, 0o777);
}

/// Sets a Unix mode; a no-op elsewhere. Failures are ignored: the caller's next file
/// operation reports a real problem with the path.
pub(crate) fn set_mode(path: &Path, mode: u32) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode));
    }
    #[cfg(not(unix))]
    let _ = (path, mode);
}

/// The uid of this process (the owner of its own `/proc` entry; no libc call needed).
pub(crate) fn current_uid() -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata("/proc/self").ok().map(|m| m.uid())
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// Creates `dir` readable only by this user (0700), or checks that an existing one is a real
/// directory (not a link), owned by this user, with no access for others. Anything else is an
/// error: another user may have made it to read or plant files.
pub(crate) fn ensure_private_dir(dir: &Path) -> Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    match builder.create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(Error::io(format!("creating {}", dir.display()), e)),
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let meta = std::fs::symlink_metadata(dir)
            .map_err(|e| Error::io(format!("checking {}", dir.display()), e))?;
        let mode = meta.permissions().mode() & 0o777;
        let ours = current_uid().is_none_or(|uid| uid == meta.uid());
        if !meta.is_dir() || !ours || mode & 0o077 != 0 {
            return Err(Error::io(
                format!(
                    "{} must be a directory private to you (owner uid {}, mode {mode:o} found); another user may have created it: remove it, or set E2E_TEMP_DIR elsewhere",
                    dir.display(),
                    meta.uid()
                ),
                std::io::Error::from(std::io::ErrorKind::PermissionDenied),
            ));
        }
    }
    Ok(())
}

/// Locks a mutex even if a panicking thread held it: cleanup must still run, and the data
/// under e2ekit's locks stays consistent between statements.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_content_and_leaves_no_temp_file() {
        let dir = std::env::temp_dir().join(format!("e2ekit-fs-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("conf.yml");
        write_atomically(&file, "a: 1").expect("first write");
        write_atomically(&file, "a: 2").expect("second write");
        assert_eq!(std::fs::read_to_string(&file).expect("read"), "a: 2");
        assert!(!dir.join("conf.yml.tmp").exists());
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn lock_survives_a_poisoned_mutex() {
        let m = std::sync::Arc::new(Mutex::new(1));
        let m2 = m.clone();
        let _ = std::thread::spawn(move || {
            let _g = m2.lock().expect("first lock");
            panic!("poison it");
        })
        .join();
        assert!(m.is_poisoned());
        *lock(&m) += 1;
        assert_eq!(*lock(&m), 2);
    }
}
