//! [`DockerfileImage`]: an image built by the engine from a Dockerfile and a context
//! directory, content-cached: the tag is a hash of what the build is given (every file of the
//! context with its path, mode and contents, the Dockerfile's path and the build arguments), so
//! an unchanged context is found on the engine and not built again.
//!
//! ```no_run
//! use e2ekit::prelude::*;
//!
//! # async fn demo(env: &Environment) -> e2ekit::Result<()> {
//! // A local base image: nothing is pulled, the build works offline.
//! let base = HostImage::new("e2ekit/busybox").binary_at("/bin/busybox", "/bin/busybox")
//!     .symlink("/bin/sh", "/bin/busybox").build(env).await?;
//! let image = DockerfileImage::new("tests/fixtures/app")
//!     .dockerfile("Dockerfile.test")
//!     .build_arg("BASE", base)
//!     .build(env)
//!     .await?;
//! let app = env.runnable("app").init(StartOptions::new(image))?;
//! # let _ = app; Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// The name the Dockerfile gets inside the context when it lives outside the context
/// directory.
const OUTSIDE_DOCKERFILE: &str = ".e2ekit.Dockerfile";

/// An image built by the engine from a Dockerfile and a context directory; see the module
/// documentation. Build it with `DockerfileImage::build(&env)`, which returns the reference to
/// give [`crate::StartOptions::new`].
///
/// The base image must be on the engine already or be `scratch` when no registry can be
/// reached (the build pulls nothing itself). A mutable base tag is not part of the cache key:
/// pass the base reference as a build argument (`ARG BASE` / `FROM ${BASE}`) so a new base
/// makes a new image. Paths that `.dockerignore` excludes (patterns with `*`, `?`, `**` and
/// `!` exceptions) are neither sent nor hashed.
#[derive(Debug, Clone)]
pub struct DockerfileImage {
    context: PathBuf,
    dockerfile: Option<PathBuf>,
    build_args: BTreeMap<String, String>,
    target: Option<String>,
    repo: Option<String>,
    tag: Option<String>,
}

/// What a build sends to the engine, and the tag it derives from it.
#[derive(Debug)]
pub(crate) struct PreparedBuild {
    pub context_tar: Vec<u8>,
    /// The Dockerfile's path inside the context tar.
    pub dockerfile: String,
    /// 16 hex digits of the hash of everything the build is given.
    pub fingerprint: String,
}

impl DockerfileImage {
    /// Builds from the directory `context`, with `Dockerfile` in it unless
    /// [`DockerfileImage::dockerfile`] says otherwise.
    pub fn new(context: impl Into<PathBuf>) -> Self {
        Self {
            context: context.into(),
            dockerfile: None,
            build_args: BTreeMap::new(),
            target: None,
            repo: None,
            tag: None,
        }
    }

    /// The Dockerfile: a path relative to the context directory, or any absolute path (one
    /// outside the context is sent along with it).
    pub fn dockerfile(mut self, path: impl Into<PathBuf>) -> Self {
        self.dockerfile = Some(path.into());
        self
    }

    /// A build argument (`ARG key` in the Dockerfile). Giving a key again replaces its value.
    pub fn build_arg(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.build_args.insert(key.into(), value.into());
        self
    }

    /// Builds the stage named `stage` of a multi-stage Dockerfile (`FROM ... AS stage`)
    /// instead of the last one.
    pub fn target(mut self, stage: impl Into<String>) -> Self {
        self.target = Some(stage.into());
        self
    }

    /// The image repository (default `e2ekit/dockerfile-<context directory name>`).
    pub fn repo(mut self, repo: impl Into<String>) -> Self {
        self.repo = Some(repo.into());
        self
    }

    /// Also tags the image `repo:tag` (e.g. `latest`), and returns that reference from the
    /// build, so it has a memorable name.
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tag = Some(tag.into());
        self
    }

    pub(crate) fn context_dir(&self) -> &Path {
        &self.context
    }

    pub(crate) fn build_args(&self) -> &BTreeMap<String, String> {
        &self.build_args
    }

    pub(crate) fn target_stage(&self) -> Option<&str> {
        self.target.as_deref()
    }

    pub(crate) fn fixed_tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The repository, named after the context directory unless given.
    pub(crate) fn repository(&self) -> String {
        if let Some(repo) = &self.repo {
            return repo.clone();
        }
        let dir = self
            .context
            .canonicalize()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_default();
        let name: String = dir
            .chars()
            .map(|c| {
                let c = c.to_ascii_lowercase();
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        let name = name.trim_matches(|c: char| !c.is_ascii_alphanumeric());
        if name.is_empty() {
            "e2ekit/dockerfile".to_string()
        } else {
            format!("e2ekit/dockerfile-{name}")
        }
    }

    fn invalid(&self, problem: impl std::fmt::Display) -> Error {
        Error::InvalidArgument(format!(
            "Dockerfile image from {}: {problem}",
            self.context.display()
        ))
    }

    /// Checks the inputs and packs the context (deterministic: sorted, zero times, root-owned),
    /// before anything reaches the engine.
    pub(crate) fn prepare(&self) -> Result<PreparedBuild> {
        match std::fs::metadata(&self.context) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(self.invalid("the context is not a directory")),
            Err(e) => {
                return Err(self.invalid(format!(
                    "the context directory cannot be read ({e}); give an existing directory"
                )))
            }
        }
        let context = self
            .context
            .canonicalize()
            .map_err(|e| self.invalid(format!("resolving the context directory: {e}")))?;
        let given = self
            .dockerfile
            .clone()
            .unwrap_or_else(|| PathBuf::from("Dockerfile"));
        let on_host = if given.is_absolute() {
            given.clone()
        } else {
            context.join(&given)
        };
        if !on_host.is_file() {
            return Err(self.invalid(format!(
                "the Dockerfile {} does not exist (or is not a file)",
                on_host.display()
            )));
        }
        let on_host = on_host
            .canonicalize()
            .map_err(|e| self.invalid(format!("resolving the Dockerfile: {e}")))?;
        // Inside the context the builder finds it by its relative path; from outside it is
        // sent under a name of its own.
        let (dockerfile, outside) = match on_host.strip_prefix(&context) {
            Ok(rel) => (slash_path(rel), None),
            Err(_) => (OUTSIDE_DOCKERFILE.to_string(), Some(on_host.clone())),
        };
        let ignore = match std::fs::read_to_string(context.join(".dockerignore")) {
            Ok(text) => IgnoreRules::parse(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => IgnoreRules::default(),
            Err(e) => return Err(self.invalid(format!("reading .dockerignore: {e}"))),
        };
        let mut builder = tar::Builder::new(Vec::new());
        builder.mode(tar::HeaderMode::Deterministic);
        builder.follow_symlinks(false);
        let mut entries = Vec::new();
        walk(&context, Path::new(""), &mut entries)
            .map_err(|e| self.invalid(format!("reading the context: {e}")))?;
        for rel in entries {
            let name = slash_path(&rel);
            // The builder always needs the Dockerfile and reads .dockerignore itself.
            let always = name == dockerfile || name == ".dockerignore";
            if !always && ignore.excludes(&name) {
                continue;
            }
            builder
                .append_path_with_name(context.join(&rel), &rel)
                .map_err(|e| self.invalid(format!("packing {name}: {e}")))?;
        }
        if let Some(outside) = &outside {
            builder
                .append_path_with_name(outside, OUTSIDE_DOCKERFILE)
                .map_err(|e| self.invalid(format!("packing {}: {e}", outside.display())))?;
        }
        let context_tar = builder
            .into_inner()
            .map_err(|e| self.invalid(format!("finishing the context archive: {e}")))?;
        let mut hasher = Sha256::new();
        hasher.update(&context_tar);
        hasher.update(dockerfile.as_bytes());
        // The stage, after a separator no path holds, so the two cannot run together.
        hasher.update([0u8]);
        hasher.update(self.target.as_deref().unwrap_or("").as_bytes());
        for (k, v) in &self.build_args {
            // Lengths first: ("a", "bc") and ("ab", "c") must not hash alike.
            hasher.update((k.len() as u64).to_le_bytes());
            hasher.update(k.as_bytes());
            hasher.update((v.len() as u64).to_le_bytes());
            hasher.update(v.as_bytes());
        }
        let fingerprint = hasher
            .finalize()
            .iter()
            .take(8)
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(PreparedBuild {
            context_tar,
            dockerfile,
            fingerprint,
        })
    }
}

/// Every entry under `dir` (relative to the context), sorted, directories before their
/// contents. Sockets and other special files are left out: an archive cannot carry them.
fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut names: Vec<_> = std::fs::read_dir(root.join(dir))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<std::io::Result<_>>()?;
    names.sort();
    for name in names {
        let rel = dir.join(&name);
        let meta = std::fs::symlink_metadata(root.join(&rel))?;
        let kind = meta.file_type();
        if kind.is_dir() {
            out.push(rel.clone());
            walk(root, &rel, out)?;
        } else if kind.is_file() || kind.is_symlink() {
            out.push(rel);
        }
    }
    Ok(())
}

/// A relative path with `/` separators.
fn slash_path(path: &Path) -> String {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// `.dockerignore` rules: the last matching pattern decides; `!` re-includes. A pattern that
/// matches a directory excludes everything in it.
#[derive(Debug, Default)]
struct IgnoreRules {
    rules: Vec<(bool, Vec<String>)>,
}

impl IgnoreRules {
    fn parse(text: &str) -> Self {
        let rules = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| {
                let (negated, pattern) = match l.strip_prefix('!') {
                    Some(rest) => (true, rest.trim()),
                    None => (false, l),
                };
                let segments = pattern
                    .split('/')
                    .filter(|s| !s.is_empty() && *s != ".")
                    .map(str::to_string)
                    .collect();
                (negated, segments)
            })
            .filter(|(_, segments): &(bool, Vec<String>)| !segments.is_empty())
            .collect();
        Self { rules }
    }

    fn excludes(&self, path: &str) -> bool {
        let parts: Vec<&str> = path.split('/').collect();
        let mut excluded = false;
        for (negated, pattern) in &self.rules {
            // A match of the path or of a directory above it.
            let hit = (1..=parts.len()).any(|n| segments_match(pattern, &parts[..n]));
            if hit {
                excluded = !negated;
            }
        }
        excluded
    }
}

/// Whether `pattern` (path segments; `**` spans any number of them) matches `path`.
fn segments_match(pattern: &[String], path: &[&str]) -> bool {
    match pattern.split_first() {
        None => path.is_empty(),
        Some((first, rest)) if first == "**" => {
            (0..=path.len()).any(|skip| segments_match(rest, &path[skip..]))
        }
        Some((first, rest)) => match path.split_first() {
            Some((segment, more)) => {
                glob(first.as_bytes(), segment.as_bytes()) && segments_match(rest, more)
            }
            None => false,
        },
    }
}

/// One path segment against a pattern with `*` (any run) and `?` (any one character).
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|skip| glob(rest, &text[skip..])),
        Some((b'?', rest)) => !text.is_empty() && glob(rest, &text[1..]),
        Some((c, rest)) => text.first() == Some(c) && glob(rest, &text[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("e2ekit-dockerfile-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        dir
    }

    fn names(tar: &[u8]) -> Vec<String> {
        let mut archive = tar::Archive::new(tar);
        archive
            .entries()
            .expect("entries")
            .map(|e| {
                e.expect("entry")
                    .path()
                    .expect("path")
                    .display()
                    .to_string()
            })
            .collect()
    }

    #[test]
    fn dockerignore_patterns() {
        let rules = IgnoreRules::parse("# comment\ntarget\n*.log\n!keep.log\n**/tmp\n/docs/*.md\n");
        assert!(rules.excludes("target"));
        assert!(rules.excludes("target/debug/app"));
        assert!(rules.excludes("a.log"));
        assert!(!rules.excludes("keep.log"));
        assert!(
            !rules.excludes("sub/a.log"),
            "*.log is anchored at the context root"
        );
        assert!(rules.excludes("x/y/tmp/file"));
        assert!(rules.excludes("docs/readme.md"));
        assert!(!rules.excludes("docs/deep/readme.md"));
        assert!(!rules.excludes("src/main.rs"));
    }

    #[test]
    fn fingerprint_follows_contents_modes_names_and_args_and_ignores_excluded_files() {
        let dir = scratch("fingerprint");
        std::fs::write(dir.join("Dockerfile"), "FROM scratch\nCOPY a /a\n").expect("write");
        std::fs::write(dir.join("a"), "one").expect("write");
        std::fs::write(dir.join(".dockerignore"), "*.tmp\n").expect("write");
        let image = DockerfileImage::new(&dir);
        let first = image.prepare().expect("prepare");
        assert_eq!(first.dockerfile, "Dockerfile");
        assert_eq!(
            names(&first.context_tar),
            [".dockerignore", "Dockerfile", "a"]
        );
        assert_eq!(
            image.prepare().expect("again").fingerprint,
            first.fingerprint
        );

        std::fs::write(dir.join("junk.tmp"), "ignored").expect("write");
        assert_eq!(
            image.prepare().expect("ignored").fingerprint,
            first.fingerprint
        );

        std::fs::write(dir.join("a"), "two").expect("write");
        let changed = image.prepare().expect("changed").fingerprint;
        assert_ne!(changed, first.fingerprint);
        let with_arg = image.clone().build_arg("X", "1").prepare().expect("arg");
        assert_ne!(with_arg.fingerprint, changed);
        let staged = image.clone().target("test").prepare().expect("target");
        assert_ne!(staged.fingerprint, changed);

        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.join("a"), std::fs::Permissions::from_mode(0o755))
                .expect("chmod");
            assert_ne!(image.prepare().expect("mode").fingerprint, changed);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn dockerfile_outside_the_context_is_sent_along() {
        let dir = scratch("outside");
        let ctx = dir.join("ctx");
        std::fs::create_dir_all(&ctx).expect("ctx");
        std::fs::write(dir.join("Build.df"), "FROM scratch\n").expect("write");
        let prepared = DockerfileImage::new(&ctx)
            .dockerfile(dir.join("Build.df"))
            .prepare()
            .expect("prepare");
        assert_eq!(prepared.dockerfile, OUTSIDE_DOCKERFILE);
        assert_eq!(names(&prepared.context_tar), [OUTSIDE_DOCKERFILE]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn missing_context_or_dockerfile_is_a_clear_error() {
        let dir = scratch("missing");
        let err = DockerfileImage::new(dir.join("nope"))
            .prepare()
            .expect_err("no context");
        assert!(
            err.to_string().contains("context directory cannot be read"),
            "{err}"
        );
        let err = DockerfileImage::new(&dir)
            .prepare()
            .expect_err("no Dockerfile");
        assert!(
            err.to_string().contains("Dockerfile") && err.to_string().contains("does not exist"),
            "{err}"
        );
        assert_eq!(DockerfileImage::new(&dir).repo("x/y").repository(), "x/y");
        assert!(DockerfileImage::new(&dir)
            .repository()
            .starts_with("e2ekit/dockerfile-e2ekit-dockerfile-missing"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
