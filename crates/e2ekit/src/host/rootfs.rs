//! Root filesystems assembled from host files, with no registry and no Dockerfile.
//!
//! [`HostImage`] packs binaries (with the shared libraries they load), files and symlinks into
//! a deterministic tar plus an image config. Building it on an engine (content-addressed, so
//! unchanged inputs are not imported again) is `HostImage::build`, in the environment layer.
//!
//! ```
//! use e2ekit::HostImage;
//!
//! let image = HostImage::new("e2ekit/busybox")
//!     .binary_at("/bin/busybox", "/bin/busybox")
//!     .symlink("/bin/sh", "/bin/busybox")
//!     .content("/etc/app.conf", "a=1");
//! # let _ = image;
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::labels;
use crate::error::{Error, Result};
use crate::spec::ImageConfig;

/// What goes at one path of the image.
#[derive(Debug, Clone)]
enum Entry {
    File { source: PathBuf, mode: u32 },
    Content { data: Vec<u8>, mode: u32 },
    Symlink { target: String },
    Dir,
}

/// An image assembled from host files.
#[derive(Debug, Clone)]
pub struct HostImage {
    repo: String,
    tag: Option<String>,
    binaries: Vec<(PathBuf, String)>,
    entries: BTreeMap<String, Entry>,
    env: Vec<(String, String)>,
    entrypoint: Option<Vec<String>>,
    cmd: Option<Vec<String>>,
    workdir: Option<String>,
    user: Option<String>,
    /// Owner and mode overrides by image path (everything else is root's, 0755 or the
    /// source's mode).
    owners: BTreeMap<String, Ownership>,
}

/// Who owns one path of an image, and its mode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Ownership {
    uid: u32,
    gid: u32,
    mode: Option<u32>,
}

impl HostImage {
    /// A new image named `repo` (e.g. `e2ekit/demo-app`), tagged by content unless
    /// [`HostImage::tag`] is set.
    pub fn new(repo: impl Into<String>) -> Self {
        Self {
            repo: repo.into(),
            tag: None,
            binaries: Vec::new(),
            entries: BTreeMap::new(),
            env: Vec::new(),
            entrypoint: None,
            cmd: None,
            workdir: None,
            user: None,
            owners: BTreeMap::new(),
        }
    }

    /// Also tags the image with a fixed tag (e.g. `latest`), so it has a memorable name.
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tag = Some(tag.into());
        self
    }

    /// Adds an executable at `/bin/<file name>` with the shared libraries it needs.
    pub fn binary(self, host_path: impl AsRef<Path>) -> Self {
        let path = host_path.as_ref();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        self.binary_at(path, format!("/bin/{name}"))
    }

    /// Adds an executable at `image_path` with the shared libraries it needs.
    pub fn binary_at(mut self, host_path: impl AsRef<Path>, image_path: impl Into<String>) -> Self {
        self.binaries
            .push((host_path.as_ref().to_path_buf(), image_path.into()));
        self
    }

    /// Copies a host file (or a directory, recursively) to `image_path`.
    pub fn file(mut self, host_path: impl AsRef<Path>, image_path: impl Into<String>) -> Self {
        self.entries.insert(
            image_path.into(),
            Entry::File {
                source: host_path.as_ref().to_path_buf(),
                mode: 0,
            },
        );
        self
    }

    /// Writes `data` to `image_path` (mode 0644).
    pub fn content(mut self, image_path: impl Into<String>, data: impl Into<Vec<u8>>) -> Self {
        self.entries.insert(
            image_path.into(),
            Entry::Content {
                data: data.into(),
                mode: 0o644,
            },
        );
        self
    }

    /// Writes an executable file (mode 0755), e.g. a shell script starting with `#!/bin/sh`.
    pub fn executable(mut self, image_path: impl Into<String>, data: impl Into<Vec<u8>>) -> Self {
        self.entries.insert(
            image_path.into(),
            Entry::Content {
                data: data.into(),
                mode: 0o755,
            },
        );
        self
    }

    /// Adds a symlink `link -> target`.
    pub fn symlink(mut self, link: impl Into<String>, target: impl Into<String>) -> Self {
        self.entries.insert(
            link.into(),
            Entry::Symlink {
                target: target.into(),
            },
        );
        self
    }

    /// Adds an empty directory.
    pub fn dir(mut self, image_path: impl Into<String>) -> Self {
        self.entries.insert(image_path.into(), Entry::Dir);
        self
    }

    /// Makes `image_path` (a file or directory of the image, or one of its parent
    /// directories) owned by `uid:gid`, instead of root. Services that drop privileges need
    /// their directories to be theirs (PostgreSQL's data and socket directories).
    pub fn owner(mut self, image_path: impl Into<String>, uid: u32, gid: u32) -> Self {
        let o = self.owners.entry(image_path.into()).or_default();
        o.uid = uid;
        o.gid = gid;
        self
    }

    /// Sets the permission bits of `image_path` (e.g. `0o700`), instead of 0755 for
    /// directories and the source's mode for files.
    pub fn mode(mut self, image_path: impl Into<String>, mode: u32) -> Self {
        self.owners.entry(image_path.into()).or_default().mode = Some(mode & 0o7777);
        self
    }

    /// Sets an environment variable in the image.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Sets the image's entrypoint.
    pub fn entrypoint<I: IntoIterator<Item = S>, S: Into<String>>(mut self, argv: I) -> Self {
        self.entrypoint = Some(argv.into_iter().map(Into::into).collect());
        self
    }

    /// Sets the image's default command.
    pub fn cmd<I: IntoIterator<Item = S>, S: Into<String>>(mut self, argv: I) -> Self {
        self.cmd = Some(argv.into_iter().map(Into::into).collect());
        self
    }

    /// Sets the user the image runs as by default (`uid` or `uid:gid`), as official images
    /// of daemons that refuse to run as root do.
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self
    }

    /// Sets the working directory.
    pub fn workdir(mut self, dir: impl Into<String>) -> Self {
        self.workdir = Some(dir.into());
        self
    }

    /// The repository part of the image name.
    pub(crate) fn repo(&self) -> &str {
        &self.repo
    }

    /// The fixed tag given with [`HostImage::tag`], if any.
    pub(crate) fn fixed_tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    fn image_ref(&self) -> String {
        format!(
            "{}:{}",
            self.repo,
            self.tag.as_deref().unwrap_or("<content>")
        )
    }

    fn fail(&self, reason: String) -> Error {
        Error::ImageBuild {
            image: self.image_ref(),
            reason,
        }
    }

    /// Every path of the image and what goes there: the user's entries, the binaries and
    /// their shared libraries, the defaults (`/tmp`, `/etc/passwd`, `/etc/group`), with host
    /// directories expanded. Reads metadata and directory listings, no file content.
    fn layout(&self) -> Result<BTreeMap<String, Entry>> {
        let mut entries = self.entries.clone();
        for (host, image_path) in &self.binaries {
            let meta = std::fs::metadata(host)
                .map_err(|e| self.fail(format!("binary {}: {e}", host.display())))?;
            if !meta.is_file() {
                return Err(self.fail(format!("binary {} is not a file", host.display())));
            }
            entries.insert(
                image_path.clone(),
                Entry::File {
                    source: host.clone(),
                    mode: 0o755,
                },
            );
            for lib in shared_libraries(host).map_err(|e| self.fail(e))? {
                entries
                    .entry(lib.display().to_string())
                    .or_insert(Entry::File {
                        source: lib,
                        mode: 0o755,
                    });
            }
        }
        entries.entry("/tmp".to_string()).or_insert(Entry::Dir);
        entries.entry("/etc/passwd".to_string()).or_insert(Entry::Content {
            data: b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n".to_vec(),
            mode: 0o644,
        });
        entries
            .entry("/etc/group".to_string())
            .or_insert(Entry::Content {
                data: b"root:x:0:\nnogroup:x:65534:\n".to_vec(),
                mode: 0o644,
            });

        let mut files: BTreeMap<String, Entry> = BTreeMap::new();
        for (path, entry) in entries {
            expand(&path, entry, &mut files).map_err(|e| self.fail(e))?;
        }
        Ok(files)
    }

    /// The image config: `PATH`, the user's settings and the host-image label.
    fn config(&self) -> ImageConfig {
        let mut env: Vec<(String, String)> = vec![(
            "PATH".to_string(),
            "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin".to_string(),
        )];
        // One entry per name, the last setting winning: with two, an engine merging a
        // container's own variables keeps the first (the default PATH), not the user's.
        for (key, value) in &self.env {
            match env.iter_mut().find(|(k, _)| k == key) {
                Some(existing) => existing.1 = value.clone(),
                None => env.push((key.clone(), value.clone())),
            }
        }
        ImageConfig {
            env,
            entrypoint: self.entrypoint.clone(),
            cmd: self.cmd.clone(),
            workdir: self.workdir.clone(),
            user: self.user.clone(),
            labels: BTreeMap::from([(labels::HOST_IMAGE.to_string(), "1".to_string())]),
        }
    }

    /// A fingerprint of the inputs from their metadata only, cheap enough to take on every
    /// build: no file is read. See [`InputFingerprint`] for what it covers.
    pub(crate) fn input_fingerprint(&self) -> Result<InputFingerprint> {
        use sha2::{Digest, Sha256};
        let files = self.layout()?;
        let mut hasher = Sha256::new();
        hasher.update(b"e2ekit-host-image-inputs-v1\0");
        hasher.update(self.config().fingerprint());
        for (path, o) in &self.owners {
            hasher.update(path.as_bytes());
            hasher.update([0]);
            hasher.update(o.uid.to_le_bytes());
            hasher.update(o.gid.to_le_bytes());
            hasher.update(o.mode.unwrap_or(u32::MAX).to_le_bytes());
        }
        // Content written at most this long ago may still change within the file system's
        // timestamp granularity without its mtime moving ("racy" in git's terms).
        let settled = std::time::SystemTime::now() - RACY_WINDOW;
        let mut racy = false;
        for (path, entry) in &files {
            hasher.update(path.as_bytes());
            hasher.update([0]);
            match entry {
                Entry::Dir => hasher.update(b"d"),
                Entry::Symlink { target } => {
                    hasher.update(b"l");
                    hasher.update(target.as_bytes());
                }
                Entry::Content { data, mode } => {
                    hasher.update(b"c");
                    hasher.update(mode.to_le_bytes());
                    hasher.update((data.len() as u64).to_le_bytes());
                    hasher.update(data);
                }
                Entry::File { source, mode } => {
                    let meta = std::fs::metadata(source)
                        .map_err(|e| self.fail(format!("file {}: {e}", source.display())))?;
                    hasher.update(b"f");
                    hasher.update(source.as_os_str().as_encoded_bytes());
                    hasher.update([0]);
                    hasher.update(mode.to_le_bytes());
                    hasher.update(file_stamp(&meta));
                    racy |= meta.modified().map_or(true, |t| t > settled);
                }
            }
            hasher.update([0xff]);
        }
        let digest = hasher.finalize();
        Ok(InputFingerprint {
            hex: digest.iter().take(16).map(|b| format!("{b:02x}")).collect(),
            racy,
        })
    }

    /// The rootfs tar (deterministic: sorted, zero mtimes, root-owned) and the image config.
    pub(crate) fn assemble(&self) -> Result<(Vec<u8>, ImageConfig)> {
        let files = self.layout()?;
        let mut dirs: BTreeMap<String, ()> = BTreeMap::new();
        for path in files.keys() {
            let mut p = Path::new(path).parent();
            while let Some(dir) = p {
                let s = dir.display().to_string();
                if s != "/" && !s.is_empty() {
                    dirs.insert(s, ());
                }
                p = dir.parent();
            }
        }

        let mut builder = tar::Builder::new(Vec::new());
        builder.mode(tar::HeaderMode::Deterministic);
        for dir in dirs.keys() {
            if !matches!(files.get(dir), Some(Entry::Dir) | None) {
                continue;
            }
            let mode = if dir == "/tmp" { 0o1777 } else { 0o755 };
            append_dir(&mut builder, dir, mode, self.owners.get(dir)).map_err(|e| self.fail(e))?;
        }
        for (path, entry) in &files {
            let rel = path.trim_start_matches('/');
            let result = match entry {
                Entry::Dir => {
                    if dirs.contains_key(path) {
                        Ok(())
                    } else {
                        let mode = if path == "/tmp" { 0o1777 } else { 0o755 };
                        append_dir(&mut builder, path, mode, self.owners.get(path))
                    }
                }
                Entry::Symlink { target } => {
                    let mut h = header(tar::EntryType::Symlink, 0o777, 0);
                    builder
                        .append_link(&mut h, rel, target)
                        .map_err(|e| format!("adding symlink {path}: {e}"))
                }
                Entry::Content { data, mode } => {
                    let mut h = header(tar::EntryType::Regular, *mode, data.len() as u64);
                    own(&mut h, self.owners.get(path));
                    builder
                        .append_data(&mut h, rel, data.as_slice())
                        .map_err(|e| format!("adding {path}: {e}"))
                }
                Entry::File { source, mode } => std::fs::read(source)
                    .map_err(|e| format!("reading {}: {e}", source.display()))
                    .and_then(|data| {
                        let mode = if *mode == 0 { file_mode(source) } else { *mode };
                        let mut h = header(tar::EntryType::Regular, mode, data.len() as u64);
                        own(&mut h, self.owners.get(path));
                        builder
                            .append_data(&mut h, rel, data.as_slice())
                            .map_err(|e| format!("adding {path}: {e}"))
                    }),
            };
            result.map_err(|e| self.fail(e))?;
        }
        let tar = builder
            .into_inner()
            .map_err(|e| self.fail(format!("finishing the archive: {e}")))?;
        Ok((tar, self.config()))
    }
}

/// How long after its last change a file counts as possibly still changing unseen.
const RACY_WINDOW: std::time::Duration = std::time::Duration::from_secs(2);

/// What a [`HostImage`]'s inputs looked like, from metadata: every image path and its kind,
/// symlink targets, the bytes of inline content, and for each host file its path, size, mode,
/// inode, device, and modification and status-change times (nanoseconds), plus the image
/// config. Any write to a file moves its mtime and ctime. The blind spot, shared by every
/// metadata cache (make, cargo's own fingerprints, git's index): content changed with size,
/// inode, mtime and ctime all unchanged, which takes a write within one timestamp tick of the
/// previous one (excluded by [`InputFingerprint::racy`]) or tampering with the clock or the
/// disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InputFingerprint {
    /// 32 hex digits.
    pub hex: String,
    /// Some file was modified within the last [`RACY_WINDOW`] (or in the future, or its
    /// mtime is unknown): it may change again within the file system's timestamp granularity
    /// without a visible change, so this fingerprint must not be recorded.
    pub racy: bool,
}

/// The metadata of a host file that a content change moves, as bytes.
fn file_stamp(meta: &std::fs::Metadata) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&meta.len().to_le_bytes());
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        for n in [
            meta.mtime(),
            meta.mtime_nsec(),
            meta.ctime(),
            meta.ctime_nsec(),
            i64::from(meta.mode()),
        ] {
            out.extend_from_slice(&n.to_le_bytes());
        }
        for n in [meta.ino(), meta.dev()] {
            out.extend_from_slice(&n.to_le_bytes());
        }
    }
    #[cfg(not(unix))]
    {
        let since_epoch = meta
            .modified()
            .ok()
            .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok());
        if let Some(d) = since_epoch {
            out.extend_from_slice(&d.as_nanos().to_le_bytes());
        }
    }
    out
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h
}

/// Applies an ownership override to a tar header.
fn own(h: &mut tar::Header, owner: Option<&Ownership>) {
    if let Some(o) = owner {
        h.set_uid(u64::from(o.uid));
        h.set_gid(u64::from(o.gid));
        if let Some(mode) = o.mode {
            h.set_mode(mode);
        }
    }
}

fn append_dir(
    builder: &mut tar::Builder<Vec<u8>>,
    dir: &str,
    mode: u32,
    owner: Option<&Ownership>,
) -> Result<(), String> {
    let mut h = header(tar::EntryType::Directory, mode, 0);
    own(&mut h, owner);
    builder
        .append_data(
            &mut h,
            format!("{}/", dir.trim_start_matches('/')),
            std::io::empty(),
        )
        .map_err(|e| format!("adding directory {dir}: {e}"))
}

fn file_mode(path: &Path) -> u32 {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path)
            .map(|m| m.permissions().mode() & 0o7777)
            .unwrap_or(0o644)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        0o644
    }
}

/// Expands a host directory entry into its files; other entries pass through.
///
/// The path the user named is followed if it is a symlink (they asked for that file), but
/// symlinks *inside* a copied directory stay symlinks: following them would copy whatever
/// they point to, anywhere on the host (a link to `~/.ssh/id_rsa` would put the key into the
/// image, and Debian's Prometheus web assets link into 200 MB of shared JavaScript), and a
/// dangling one would fail the build.
fn expand(path: &str, entry: Entry, out: &mut BTreeMap<String, Entry>) -> Result<(), String> {
    expand_at(path, entry, out, true)
}

fn expand_at(
    path: &str,
    entry: Entry,
    out: &mut BTreeMap<String, Entry>,
    named_by_user: bool,
) -> Result<(), String> {
    if let Entry::File { source, mode } = &entry {
        let meta = if named_by_user {
            std::fs::metadata(source)
        } else {
            std::fs::symlink_metadata(source)
        }
        .map_err(|e| format!("file {}: {e}", source.display()))?;
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(source)
                .map_err(|e| format!("reading link {}: {e}", source.display()))?;
            out.insert(
                path.to_string(),
                Entry::Symlink {
                    target: target.display().to_string(),
                },
            );
            return Ok(());
        }
        if meta.is_dir() {
            out.insert(path.to_string(), Entry::Dir);
            let listing = std::fs::read_dir(source)
                .map_err(|e| format!("listing {}: {e}", source.display()))?;
            for child in listing {
                let child = child.map_err(|e| format!("listing {}: {e}", source.display()))?;
                let child_path = format!(
                    "{}/{}",
                    path.trim_end_matches('/'),
                    child.file_name().to_string_lossy()
                );
                expand_at(
                    &child_path,
                    Entry::File {
                        source: child.path(),
                        mode: *mode,
                    },
                    out,
                    false,
                )?;
            }
            return Ok(());
        }
    }
    out.insert(path.to_string(), entry);
    Ok(())
}

/// The shared libraries (and the loader) a dynamic ELF binary needs, from `ldd`.
/// A static binary needs none.
fn shared_libraries(binary: &Path) -> Result<Vec<PathBuf>, String> {
    let output = std::process::Command::new("ldd").arg(binary).output();
    let output = match output {
        Ok(o) => o,
        // No ldd (e.g. macOS host): assume a static binary; a dynamic one fails at start with
        // a clear loader message in the container's output.
        Err(_) => return Ok(Vec::new()),
    };
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    if text.contains("not a dynamic executable") || text.contains("statically linked") {
        return Ok(Vec::new());
    }
    if !output.status.success() {
        return Err(format!("ldd {} failed: {}", binary.display(), text.trim()));
    }
    parse_ldd(&text)
}

fn parse_ldd(text: &str) -> Result<Vec<PathBuf>, String> {
    let mut libs = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.contains("=> not found") {
            return Err(format!("a shared library is missing on the host: {line}"));
        }
        let path = match line.split_once("=>") {
            Some((_, right)) => right.split_whitespace().next(),
            None => line
                .split_whitespace()
                .next()
                .filter(|p| p.starts_with('/')),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            libs.push(PathBuf::from(p));
        }
    }
    Ok(libs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_users_path_replaces_the_default_instead_of_adding_a_second_entry() {
        let image = HostImage::new("t/path")
            .env("PATH", "/opt/bin:/bin")
            .env("A", "1")
            .env("A", "2");
        let env = image.config().env;
        assert_eq!(
            env,
            [
                ("PATH".to_string(), "/opt/bin:/bin".to_string()),
                ("A".to_string(), "2".to_string())
            ]
        );
    }

    #[test]
    fn ldd_output_lists_libraries_and_loader() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f)\n\t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n";
        let libs = parse_ldd(text).unwrap();
        assert_eq!(
            libs,
            [
                PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2")
            ]
        );
        assert!(parse_ldd("libfoo.so => not found")
            .unwrap_err()
            .contains("missing"));
    }

    #[test]
    fn assembly_is_deterministic_and_includes_parents() {
        let img = HostImage::new("t/x")
            .content("/etc/app/conf", "a=1")
            .symlink("/bin/sh", "/bin/busybox")
            .dir("/var/lib/x")
            .entrypoint(["/bin/sh"]);
        let (a, changes) = img.assemble().unwrap();
        let (b, _) = img.assemble().unwrap();
        assert_eq!(a, b);
        assert_eq!(changes.entrypoint, Some(vec!["/bin/sh".to_string()]));
        assert_eq!(
            changes.labels.get(labels::HOST_IMAGE).map(String::as_str),
            Some("1")
        );
        let mut archive = tar::Archive::new(a.as_slice());
        let names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        for expected in [
            "etc/",
            "etc/app/",
            "etc/app/conf",
            "bin/sh",
            "tmp/",
            "var/lib/x/",
        ] {
            assert!(
                names.iter().any(|n| n == expected),
                "{expected} missing in {names:?}"
            );
        }
    }

    #[test]
    fn links_inside_a_copied_directory_stay_links_and_are_never_followed() {
        let dir = std::env::temp_dir().join(format!("e2ekit-rootfs-links-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("tree")).expect("tree");
        std::fs::write(dir.join("secret"), "do not copy me").expect("secret");
        std::fs::write(dir.join("tree/real.txt"), "real").expect("file");
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(dir.join("secret"), dir.join("tree/key")).expect("link");
            std::os::unix::fs::symlink("/nonexistent/target", dir.join("tree/dangling"))
                .expect("dangling link");
        }
        let (tar, _) = HostImage::new("t/links")
            .file(dir.join("tree"), "/data")
            .assemble()
            .expect("a dangling link does not fail the build");
        let mut archive = tar::Archive::new(tar.as_slice());
        let mut seen = BTreeMap::new();
        for entry in archive.entries().expect("entries") {
            let mut entry = entry.expect("entry");
            let path = entry.path().expect("path").display().to_string();
            let kind = entry.header().entry_type();
            let link = entry
                .link_name()
                .expect("link name")
                .map(|l| l.display().to_string());
            let mut body = String::new();
            std::io::Read::read_to_string(&mut entry, &mut body).expect("body");
            assert!(
                !body.contains("do not copy me"),
                "{path} holds the link target's content"
            );
            seen.insert(path, (kind, link));
        }
        #[cfg(unix)]
        {
            let secret = dir.join("secret").display().to_string();
            assert_eq!(
                seen.get("data/key"),
                Some(&(tar::EntryType::Symlink, Some(secret)))
            );
            assert_eq!(
                seen.get("data/dangling"),
                Some(&(
                    tar::EntryType::Symlink,
                    Some("/nonexistent/target".to_string())
                ))
            );
        }
        assert_eq!(
            seen.get("data/real.txt").map(|e| e.0),
            Some(tar::EntryType::Regular)
        );
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    /// A scratch directory for one test.
    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("e2ekit-rootfs-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        dir
    }

    /// Writes `data` to `path` and sets its mtime `secs_ago` seconds in the past.
    fn write_aged(path: &Path, data: &str, secs_ago: u64) {
        std::fs::write(path, data).expect("write");
        let when = std::time::SystemTime::now() - std::time::Duration::from_secs(secs_ago);
        std::fs::File::options()
            .write(true)
            .open(path)
            .and_then(|f| f.set_modified(when))
            .expect("set mtime");
    }

    #[test]
    fn input_fingerprint_is_stable_and_follows_every_input() {
        let dir = scratch("fingerprint");
        write_aged(&dir.join("a.txt"), "one", 60);
        std::fs::create_dir_all(dir.join("tree")).expect("tree");
        write_aged(&dir.join("tree/b.txt"), "two", 60);
        let image = || {
            HostImage::new("t/fp")
                .file(dir.join("a.txt"), "/a.txt")
                .file(dir.join("tree"), "/tree")
                .content("/etc/c", "three")
                .symlink("/bin/sh", "/bin/busybox")
        };
        let first = image().input_fingerprint().expect("fingerprint");
        assert_eq!(first.hex.len(), 32);
        assert!(!first.racy, "files modified a minute ago are settled");
        assert_eq!(image().input_fingerprint().expect("again"), first, "stable");

        let differs = |changed: HostImage, what: &str| {
            let fp = changed.input_fingerprint().expect("fingerprint");
            assert_ne!(fp.hex, first.hex, "{what} must change the fingerprint");
        };
        differs(image().env("A", "1"), "the config");
        differs(image().content("/etc/c", "THREE"), "inline content");
        differs(image().symlink("/bin/sh", "/bin/dash"), "a link target");
        differs(image().dir("/var/x"), "a new path");

        // Same size, new content, an mtime that only moved by a second: rebuilt.
        write_aged(&dir.join("a.txt"), "ONE", 59);
        differs(image(), "a same-size rewrite");
        // A file added inside a copied directory.
        let before = image().input_fingerprint().expect("fingerprint");
        write_aged(&dir.join("tree/new.txt"), "new", 60);
        let after = image().input_fingerprint().expect("fingerprint");
        assert_ne!(after.hex, before.hex, "a new file in a directory");

        // Just modified: may still change unseen, so the fingerprint is not to be recorded.
        std::fs::write(dir.join("a.txt"), "fresh").expect("write");
        assert!(image().input_fingerprint().expect("fingerprint").racy);
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn missing_binary_is_a_clear_error() {
        let err = HostImage::new("t/x")
            .binary("/definitely/not/here")
            .assemble()
            .unwrap_err()
            .to_string();
        assert!(err.contains("/definitely/not/here"), "{err}");
    }

    #[test]
    fn owners_and_modes_reach_the_archive_and_change_the_fingerprint() {
        let plain = HostImage::new("t/own")
            .dir("/var/lib/db")
            .content("/etc/db.conf", "x=1");
        let owned = plain
            .clone()
            .owner("/var/lib/db", 105, 107)
            .mode("/var/lib/db", 0o700)
            .owner("/etc/db.conf", 105, 107);
        let (tar, _) = owned.assemble().expect("assembled");
        let mut archive = tar::Archive::new(tar.as_slice());
        let mut seen = BTreeMap::new();
        for entry in archive.entries().expect("entries") {
            let entry = entry.expect("entry");
            let h = entry.header();
            seen.insert(
                entry.path().expect("path").display().to_string(),
                (
                    h.uid().expect("uid"),
                    h.gid().expect("gid"),
                    h.mode().expect("mode"),
                ),
            );
        }
        assert_eq!(seen["var/lib/db/"], (105, 107, 0o700));
        assert_eq!(seen["etc/db.conf"], (105, 107, 0o644));
        assert_eq!(seen["var/lib/"], (0, 0, 0o755), "parents stay root's");
        assert_ne!(
            plain.input_fingerprint().expect("fp").hex,
            owned.input_fingerprint().expect("fp").hex,
            "an owner change is a change of the image"
        );
    }
}
