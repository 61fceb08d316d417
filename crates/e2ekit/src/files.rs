//! Replacing files that running services read (configurations, discovery files).

use std::path::{Path, PathBuf};

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
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644));
    }
    std::fs::rename(&tmp, path).map_err(|e| Error::io(format!("replacing {}", path.display()), e))
}
