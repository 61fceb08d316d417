//! Images built from host files, with no registry and no Dockerfile.
//!
//! [`HostImage`] packs binaries (with the shared libraries they load), files and symlinks into
//! a root filesystem and imports it through the engine API. The tag is a hash of the content,
//! so building unchanged inputs again only asks the engine whether the image exists.
//!
//! ```no_run
//! use e2ekit::prelude::*;
//!
//! # async fn demo(env: &Environment) -> e2ekit::Result<()> {
//! // In an integration test, cargo hands over the path of a binary of the package:
//! // env!("CARGO_BIN_EXE_demo-app").
//! let image = HostImage::new("e2ekit/busybox")
//!     .binary_at("/bin/busybox", "/bin/busybox")
//!     .symlink("/bin/sh", "/bin/busybox")
//!     .build(env)
//!     .await?;
//! let shell = env.runnable("shell").init(StartOptions::new(image)
//!     .command(Command::new("/bin/sh").args(["-c", "sleep 3600"])))?;
//!
//! // Or run a cargo-built binary directly:
//! let app = containerize(env, "app", "target/debug/demo-app").await?
//!     .with_ports([("http", 8080)])
//!     .args(["--listen", ":8080"])
//!     .readiness(HttpProbe::new("http", "/ready"))
//!     .init()?;
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::backend::Backend;
use crate::env::Environment;
use crate::error::{Error, Result};
use crate::options::{Command, StartOptions};
use crate::probe::Probe;
use crate::runnable::{FutureRunnable, Runnable};

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

    /// Builds (or finds) the image on the environment's engine; returns its reference.
    pub async fn build(&self, env: &Environment) -> Result<String> {
        self.build_on(env.core().backend.as_ref()).await
    }

    /// [`HostImage::build`] on a given engine connection.
    pub(crate) async fn build_on(&self, backend: &dyn Backend) -> Result<String> {
        let (tar, changes) = self.assemble()?;
        let mut hasher = Sha256::new();
        hasher.update(&tar);
        for c in &changes {
            hasher.update(c.as_bytes());
        }
        let digest = hasher.finalize();
        let content_tag: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
        let reference = format!("{}:{content_tag}", self.repo);
        if !backend.image_exists(&reference).await? {
            tracing::info!(image = %reference, bytes = tar.len(), "importing host image");
            backend
                .import_image(&self.repo, &content_tag, tar, changes)
                .await?;
        }
        match &self.tag {
            Some(tag) => {
                backend.tag_image(&reference, &self.repo, tag).await?;
                Ok(format!("{}:{tag}", self.repo))
            }
            None => Ok(reference),
        }
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

    /// The rootfs tar (deterministic: sorted, zero mtimes, root-owned) and import changes.
    fn assemble(&self) -> Result<(Vec<u8>, Vec<String>)> {
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
            append_dir(&mut builder, dir, mode).map_err(|e| self.fail(e))?;
        }
        for (path, entry) in &files {
            let rel = path.trim_start_matches('/');
            let result = match entry {
                Entry::Dir => {
                    if dirs.contains_key(path) {
                        Ok(())
                    } else {
                        let mode = if path == "/tmp" { 0o1777 } else { 0o755 };
                        append_dir(&mut builder, path, mode)
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
                    builder
                        .append_data(&mut h, rel, data.as_slice())
                        .map_err(|e| format!("adding {path}: {e}"))
                }
                Entry::File { source, mode } => std::fs::read(source)
                    .map_err(|e| format!("reading {}: {e}", source.display()))
                    .and_then(|data| {
                        let mode = if *mode == 0 { file_mode(source) } else { *mode };
                        let mut h = header(tar::EntryType::Regular, mode, data.len() as u64);
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

        let mut changes = vec![format!(
            "ENV PATH={}",
            "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"
        )];
        for (k, v) in &self.env {
            changes.push(format!("ENV {k}={v}"));
        }
        changes.push(format!("LABEL {}=1", crate::labels::HOST_IMAGE));
        if let Some(ep) = &self.entrypoint {
            changes.push(format!("ENTRYPOINT {}", json_array(ep)));
        }
        if let Some(cmd) = &self.cmd {
            changes.push(format!("CMD {}", json_array(cmd)));
        }
        if let Some(dir) = &self.workdir {
            changes.push(format!("WORKDIR {dir}"));
        }
        if let Some(user) = &self.user {
            changes.push(format!("USER {user}"));
        }
        Ok((tar, changes))
    }
}

fn json_array(items: &[String]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".to_string())
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

fn append_dir(builder: &mut tar::Builder<Vec<u8>>, dir: &str, mode: u32) -> Result<(), String> {
    let mut h = header(tar::EntryType::Directory, mode, 0);
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
fn expand(path: &str, entry: Entry, out: &mut BTreeMap<String, Entry>) -> Result<(), String> {
    if let Entry::File { source, mode } = &entry {
        let meta =
            std::fs::metadata(source).map_err(|e| format!("file {}: {e}", source.display()))?;
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
                expand(
                    &child_path,
                    Entry::File {
                        source: child.path(),
                        mode: *mode,
                    },
                    out,
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

/// A cargo-built binary made into a runnable; see [`containerize`].
#[derive(Debug)]
pub struct Containerized {
    env: Environment,
    name: String,
    program: String,
    image: String,
    ports: Vec<(String, u16)>,
    args: Vec<String>,
    env_vars: Vec<(String, String)>,
    readiness: Option<Probe>,
}

/// Packs a host binary (for tests: `env!("CARGO_BIN_EXE_<name>")`) into an image and prepares
/// a runnable named `name` that runs it.
pub async fn containerize(
    env: &Environment,
    name: &str,
    binary: impl AsRef<Path>,
) -> Result<Containerized> {
    let binary = binary.as_ref();
    let file = binary
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .ok_or_else(|| {
            Error::InvalidArgument(format!("{} is not a file path", binary.display()))
        })?;
    let repo = format!("e2ekit/{}", sanitize_repo(&file));
    let image = HostImage::new(repo).binary(binary).build(env).await?;
    Ok(Containerized {
        env: env.clone(),
        name: name.to_string(),
        program: format!("/bin/{file}"),
        image,
        ports: Vec::new(),
        args: Vec::new(),
        env_vars: Vec::new(),
        readiness: None,
    })
}

fn sanitize_repo(file: &str) -> String {
    file.chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

impl Containerized {
    /// Declares ports, as [`crate::RunnableBuilder::with_ports`].
    pub fn with_ports<I, S>(mut self, ports: I) -> Self
    where
        I: IntoIterator<Item = (S, u16)>,
        S: Into<String>,
    {
        self.ports
            .extend(ports.into_iter().map(|(n, p)| (n.into(), p)));
        self
    }

    /// Arguments for the binary.
    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, args: I) -> Self {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// An environment variable for the binary.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env_vars.push((key.into(), value.into()));
        self
    }

    /// The readiness probe.
    pub fn readiness(mut self, probe: impl Into<Probe>) -> Self {
        self.readiness = Some(probe.into());
        self
    }

    /// The image reference that was built.
    pub fn image(&self) -> &str {
        &self.image
    }

    /// The start options this will use (to adjust before [`FutureRunnable::init`]).
    pub fn start_options(&self) -> StartOptions {
        let mut opts = StartOptions::new(self.image.clone())
            .command(Command::new(self.program.clone()).args(self.args.clone()));
        for (k, v) in &self.env_vars {
            opts = opts.env(k.clone(), v.clone());
        }
        if let Some(p) = &self.readiness {
            opts = opts.readiness(p.clone());
        }
        opts
    }

    /// Registers the runnable without defining it yet (to link to it first).
    pub fn future(&self) -> Result<FutureRunnable> {
        self.env
            .runnable(self.name.clone())
            .with_ports(self.ports.clone())
            .future()
    }

    /// Defines the runnable.
    pub fn init(self) -> Result<Runnable> {
        let opts = self.start_options();
        self.future()?.init(opts)
    }
}

/// Path of a binary built by cargo from this workspace (e.g. `demo-app`), for packing into a
/// [`HostImage`].
///
/// Integration tests of the package owning the binary should prefer
/// `env!("CARGO_BIN_EXE_<name>")`. This helper serves the other cases (tests of another
/// package, examples): it looks next to the running executable (`cargo test --workspace` and
/// `cargo build` put every binary there) and otherwise runs `cargo build -p <name>` into
/// `target/e2ekit-bins` (a separate directory, because the outer cargo may hold the lock on
/// the main one).
pub fn cargo_bin(name: &str) -> Result<PathBuf> {
    let exe =
        std::env::current_exe().map_err(|e| Error::io("finding the running executable", e))?;
    let dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    for candidate in [dir.join(name), dir.join("..").join(name)] {
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    // <target>/<profile>/{deps,examples}/<exe> or <target>/<profile>/<exe>
    let profile_dir = if dir.ends_with("deps") || dir.ends_with("examples") {
        dir.parent().unwrap_or(&dir)
    } else {
        &dir
    };
    let target = profile_dir
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("target"));
    let bins_dir = target.join("e2ekit-bins");
    let cargo = option_env!("CARGO").unwrap_or("cargo");
    let status = std::process::Command::new(cargo)
        .args(["build", "--quiet", "-p", name, "--bin", name])
        .env("CARGO_TARGET_DIR", &bins_dir)
        .status()
        .map_err(|e| Error::io(format!("running {cargo} build -p {name}"), e))?;
    let built = bins_dir.join("debug").join(name);
    if !status.success() || !built.is_file() {
        return Err(Error::InvalidArgument(format!(
            "binary {name:?} is not built and `cargo build -p {name}` failed ({status}); build it first"
        )));
    }
    Ok(built)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(changes.iter().any(|c| c == "ENTRYPOINT [\"/bin/sh\"]"));
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
    fn missing_binary_is_a_clear_error() {
        let err = HostImage::new("t/x")
            .binary("/definitely/not/here")
            .assemble()
            .unwrap_err()
            .to_string();
        assert!(err.contains("/definitely/not/here"), "{err}");
    }
}
