//! Reading what a [`CopyFile`] names on the host into entries an engine can write, and
//! writing entries an engine read back onto the host.
//!
//! ```text
//! CopyFile::host_path("/srv/conf", "/etc/app")  ->  /etc/app (dir), /etc/app/a.yml, ...
//! ```

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use crate::spec::{CopyFile, CopySource, EntryKind, FileEntry};

/// Bounds what one copy reads into memory: copies are for configs and fixtures.
const MAX_COPY_BYTES: u64 = 512 << 20;

/// The entries `copy` puts into a container, read from the host now.
pub(crate) fn entries_of(copy: &CopyFile) -> Result<Vec<FileEntry>, String> {
    let (uid, gid) = copy.owner.unwrap_or((0, 0));
    match &copy.source {
        CopySource::Bytes(data) => Ok(vec![FileEntry {
            path: copy.target.clone(),
            kind: EntryKind::File(data.clone()),
            mode: copy.mode.unwrap_or(0o644),
            uid,
            gid,
        }]),
        CopySource::HostPath(source) => {
            let mut out = Vec::new();
            let mut budget = MAX_COPY_BYTES;
            walk(
                source,
                &copy.target,
                copy,
                (uid, gid),
                &mut out,
                &mut budget,
            )?;
            Ok(out)
        }
    }
}

fn walk(
    path: &Path,
    target: &str,
    copy: &CopyFile,
    (uid, gid): (u32, u32),
    out: &mut Vec<FileEntry>,
    budget: &mut u64,
) -> Result<(), String> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!("the host path {} does not exist", path.display()),
        _ => format!("reading {}: {e}", path.display()),
    })?;
    let own_mode = meta.permissions().mode() & 0o7777;
    let entry = |kind, mode| FileEntry {
        path: target.to_string(),
        kind,
        mode,
        uid,
        gid,
    };
    if meta.file_type().is_symlink() {
        let link = std::fs::read_link(path)
            .map_err(|e| format!("reading the link {}: {e}", path.display()))?;
        out.push(entry(
            EntryKind::Symlink(link.to_string_lossy().into_owned()),
            0o777,
        ));
    } else if meta.is_dir() {
        out.push(entry(EntryKind::Dir, own_mode));
        let mut children: Vec<_> = std::fs::read_dir(path)
            .map_err(|e| format!("listing {}: {e}", path.display()))?
            .collect::<Result<_, _>>()
            .map_err(|e| format!("listing {}: {e}", path.display()))?;
        children.sort_by_key(|c| c.file_name());
        for child in children {
            let name = child.file_name();
            let child_target = format!(
                "{}/{}",
                target.trim_end_matches('/'),
                name.to_string_lossy()
            );
            walk(&child.path(), &child_target, copy, (uid, gid), out, budget)?;
        }
    } else if meta.is_file() {
        if meta.size() > *budget {
            return Err(format!(
                "{} would take the copy over {} MiB; mount it or build it into an image instead",
                path.display(),
                MAX_COPY_BYTES >> 20
            ));
        }
        *budget -= meta.size();
        let data = std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
        out.push(entry(EntryKind::File(data), copy.mode.unwrap_or(own_mode)));
    }
    // Sockets, fifos and devices have no content to copy.
    Ok(())
}

/// Writes entries read out of a container (paths relative to `dest`'s parent, the first one
/// being the copied root) so that the root lands at `dest`.
pub(crate) fn write_entries(entries: &[FileEntry], dest: &Path) -> Result<(), String> {
    let Some(root) = entries.first().map(|e| e.path.clone()) else {
        return Err("the engine returned nothing".to_string());
    };
    let relative = |e: &FileEntry| -> String {
        let rel = e.path.strip_prefix(&root).unwrap_or(&e.path);
        rel.trim_start_matches('/').to_string()
    };
    // Every path is checked before anything is written: a refused archive leaves nothing.
    if let Some(bad) = entries
        .iter()
        .find(|e| relative(e).split('/').any(|c| c == ".."))
    {
        return Err(format!(
            "the engine's archive holds an unsafe path {:?}",
            bad.path
        ));
    }
    for e in entries {
        let rel = relative(e);
        let rel = rel.as_str();
        let path = if rel.is_empty() {
            dest.to_path_buf()
        } else {
            dest.join(rel)
        };
        let io = |what: &str, err: std::io::Error| format!("{what} {}: {err}", path.display());
        match &e.kind {
            EntryKind::Dir => {
                std::fs::create_dir_all(&path).map_err(|err| io("creating", err))?;
            }
            EntryKind::File(data) => {
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent)
                        .map_err(|err| io("creating the parent of", err))?;
                }
                std::fs::write(&path, data).map_err(|err| io("writing", err))?;
                let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(e.mode));
            }
            EntryKind::Symlink(target) => {
                let _ = std::fs::remove_file(&path);
                std::os::unix::fs::symlink(target, &path).map_err(|err| io("linking", err))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_directory_becomes_entries_and_comes_back_the_same() {
        let dir = std::env::temp_dir().join(format!("e2ekit-copy-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("src/sub")).expect("dirs");
        std::fs::write(dir.join("src/a.txt"), "a").expect("a");
        std::fs::write(dir.join("src/sub/b.txt"), "b").expect("b");
        std::os::unix::fs::symlink("a.txt", dir.join("src/link")).expect("link");
        let copy = CopyFile::host_path(dir.join("src"), "/etc/app").owner(7, 8);
        let entries = entries_of(&copy).expect("entries");
        let paths: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "/etc/app",
                "/etc/app/a.txt",
                "/etc/app/link",
                "/etc/app/sub",
                "/etc/app/sub/b.txt"
            ]
        );
        assert!(entries.iter().all(|e| (e.uid, e.gid) == (7, 8)));
        // As an engine returns them: relative to the parent of the copied path.
        let back: Vec<FileEntry> = entries
            .into_iter()
            .map(|mut e| {
                e.path = e.path.trim_start_matches("/etc/").to_string();
                e
            })
            .collect();
        write_entries(&back, &dir.join("out")).expect("written");
        assert_eq!(
            std::fs::read_to_string(dir.join("out/sub/b.txt")).expect("b"),
            "b"
        );
        assert_eq!(
            std::fs::read_link(dir.join("out/link")).expect("link"),
            Path::new("a.txt")
        );
        let missing = entries_of(&CopyFile::host_path(dir.join("nope"), "/x")).unwrap_err();
        assert!(missing.contains("does not exist"), "{missing}");
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn archives_with_escaping_paths_are_refused() {
        let evil = vec![
            FileEntry {
                path: "root".into(),
                kind: EntryKind::Dir,
                mode: 0o755,
                uid: 0,
                gid: 0,
            },
            FileEntry {
                path: "root/../../etc/passwd".into(),
                kind: EntryKind::File(b"x".to_vec()),
                mode: 0o644,
                uid: 0,
                gid: 0,
            },
        ];
        let dest = std::env::temp_dir().join(format!("e2ekit-copy-evil-{}", std::process::id()));
        let err = write_entries(&evil, &dest).unwrap_err();
        assert!(err.contains("unsafe"), "{err}");
        assert!(!dest.exists(), "a refused archive writes nothing");
    }
}
