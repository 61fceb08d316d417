//! Images from installed Debian packages: any Debian-packaged server becomes an image in one
//! call, with no registry and no Dockerfile.
//!
//! ```no_run
//! use e2ekit::HostImage;
//!
//! # fn demo() -> e2ekit::Result<()> {
//! // Everything `dpkg -L prometheus-alertmanager` lists (docs, man pages and init scripts
//! // left out), the libraries of its executables, and the host's system users and groups.
//! let image = HostImage::debian_package("e2ekit/alertmanager", "prometheus-alertmanager")?
//!     .entrypoint(["/usr/bin/prometheus-alertmanager"]);
//! # let _ = image;
//! # Ok(()) }
//! ```
//!
//! What is packed, and why:
//! - every regular file, directory and symlink the package database lists for the package
//!   (symlinks stay links: Debian points web assets into other packages, which are only
//!   packed if asked for with [`HostImage::with_debian_package`]);
//! - for each ELF executable, the shared libraries `ldd` names (libraries a server `dlopen`s
//!   are invisible to `ldd`: add their package with `with_debian_package`);
//! - each file's and directory's owner, and each directory's mode, as on the host (a
//!   daemon's own directories stay its own);
//! - `/etc/passwd` and `/etc/group` with the host's system accounts (uid and gid below 1000),
//!   which covers the users packages create for their daemons (`prometheus`, `www-data`,
//!   `postgres`), so `StartOptions::user("prometheus")` works;
//! - not packed: `/usr/share/{doc,man,info,lintian,bug}`, shell completions, init scripts and
//!   systemd units (nothing runs them in a container).
//!
//! Directories that maintainer scripts create at install time (state directories such as
//! `/var/lib/prometheus`) are not in the package database: point the server at a runnable's
//! directory instead, as the catalog entries do.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::rootfs::HostImage;
use crate::error::{Error, Result};

/// Where dpkg keeps the list of each installed package's files.
const DPKG_INFO: &str = "/var/lib/dpkg/info";

/// Parts of a package that a container never uses.
const SKIPPED: [&str; 11] = [
    "/usr/share/doc",
    "/usr/share/man",
    "/usr/share/info",
    "/usr/share/lintian",
    "/usr/share/bug",
    "/usr/share/bash-completion",
    "/usr/share/zsh",
    "/etc/init.d",
    "/etc/logrotate.d",
    "/lib/systemd",
    "/usr/lib/systemd",
];

impl HostImage {
    /// An image named `repo` holding the installed Debian package `package`: its files (less
    /// docs, man pages, completions and init scripts), the shared libraries of its
    /// executables, and the host's system users and groups. Symlinks stay links. Fails if
    /// the package is not installed on this host, saying how to install it.
    pub fn debian_package(repo: impl Into<String>, package: &str) -> Result<Self> {
        HostImage::new(repo)
            .with_debian_package(package)
            .map(HostImage::with_system_accounts)
    }

    /// Adds the files of another installed Debian package (a dependency whose files the
    /// server reads, such as web assets or `dlopen`ed plugins).
    pub fn with_debian_package(mut self, package: &str) -> Result<Self> {
        let files = package_files(package)?;
        let listed: Vec<String> = files
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        for path in files {
            let text = path.to_string_lossy().into_owned();
            if text == "/." || SKIPPED.iter().any(|s| is_under(&text, s)) {
                continue;
            }
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                // Listed but gone from the host (a conffile the admin deleted): skip it.
                continue;
            };
            let kind = meta.file_type();
            if kind.is_symlink() && holds_listed(&listed, &text) {
                // A directory of the package that is a link on this host (merged /usr:
                // /lib -> usr/lib): the files under it go where they are, as directories.
                continue;
            }
            if kind.is_symlink() {
                let target = std::fs::read_link(&path).map_err(|e| {
                    Error::io(format!("reading symlink {} of package {package}", text), e)
                })?;
                self = self.symlink(text, target.to_string_lossy().into_owned());
            } else if kind.is_dir() {
                self = self.dir(text.clone());
                // Directories a daemon owns (its state, its logs) keep their owner and mode.
                let mode = meta.mode() & 0o7777;
                if meta.uid() != 0 || meta.gid() != 0 || mode != 0o755 {
                    self = self
                        .owner(text.clone(), meta.uid(), meta.gid())
                        .mode(text, mode);
                }
            } else if kind.is_file() {
                let (uid, gid) = (meta.uid(), meta.gid());
                self = if is_elf_executable(&path, &meta) {
                    self.binary_at(&path, text.clone())
                } else {
                    self.file(&path, text.clone())
                };
                if uid != 0 || gid != 0 {
                    self = self.owner(text, uid, gid);
                }
            }
        }
        Ok(self)
    }

    /// Writes `/etc/passwd` and `/etc/group` with the host's system accounts (ids below
    /// 1000) and `nobody`.
    fn with_system_accounts(self) -> Self {
        let passwd = system_entries(&std::fs::read_to_string("/etc/passwd").unwrap_or_default());
        let group = system_entries(&std::fs::read_to_string("/etc/group").unwrap_or_default());
        self.content("/etc/passwd", passwd)
            .content("/etc/group", group)
    }
}

/// The files dpkg lists for `package` (`<package>.list`, or `<package>:<arch>.list` for
/// multi-arch packages).
fn package_files(package: &str) -> Result<Vec<PathBuf>> {
    if package.is_empty()
        || !package
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '+' | '.' | ':'))
    {
        return Err(Error::InvalidArgument(format!(
            "{package:?} is not a Debian package name"
        )));
    }
    let info = Path::new(DPKG_INFO);
    let list = std::fs::read_dir(info)
        .ok()
        .and_then(|entries| {
            entries.flatten().map(|e| e.path()).find(|p| {
                p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                    n == format!("{package}.list")
                        || (n.starts_with(&format!("{package}:")) && n.ends_with(".list"))
                })
            })
        })
        .ok_or_else(|| Error::HostTool {
            tool: format!("the Debian package {package}"),
            reason: format!(
                "is not installed on this host (no {}/{package}.list): apt-get install {package}",
                info.display()
            ),
        })?;
    let text = std::fs::read_to_string(&list)
        .map_err(|e| Error::io(format!("reading {}", list.display()), e))?;
    Ok(text
        .lines()
        .filter(|l| l.starts_with('/'))
        .map(PathBuf::from)
        .collect())
}

/// Whether the package lists files beneath `dir`.
fn holds_listed(listed: &[String], dir: &str) -> bool {
    listed
        .iter()
        .any(|p| p.len() > dir.len() && is_under(p, dir))
}

fn is_under(path: &str, dir: &str) -> bool {
    path == dir
        || path
            .strip_prefix(dir)
            .is_some_and(|rest| rest.starts_with('/'))
}

fn is_elf_executable(path: &Path, meta: &std::fs::Metadata) -> bool {
    use std::io::Read;
    use std::os::unix::fs::PermissionsExt;
    if meta.permissions().mode() & 0o111 == 0 {
        return false;
    }
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok_and(|()| magic == *b"\x7fELF")
}

/// The lines of a passwd or group file whose id (third field) is below 1000, plus `nobody`
/// and `nogroup`.
fn system_entries(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let mut fields = line.split(':');
        let name = fields.next().unwrap_or_default();
        let id = fields.nth(1).and_then(|id| id.parse::<u32>().ok());
        if id.is_some_and(|id| id < 1000) || matches!(name, "nobody" | "nogroup") {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_accounts_keep_ids_below_1000_and_nobody() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\nprometheus:x:103:107::/var/lib/prometheus:/usr/sbin/nologin\nalice:x:1000:1000::/home/alice:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";
        let kept = system_entries(passwd);
        assert!(kept.contains("root:x:0:0"));
        assert!(kept.contains("prometheus:x:103:107"));
        assert!(kept.contains("nobody:x:65534"));
        assert!(
            !kept.contains("alice"),
            "a person's account stays on the host"
        );
    }

    #[test]
    fn docs_and_init_scripts_are_skipped_but_similar_names_are_not() {
        assert!(is_under("/usr/share/doc/x/README", "/usr/share/doc"));
        assert!(is_under("/usr/share/doc", "/usr/share/doc"));
        assert!(!is_under("/usr/share/docker/x", "/usr/share/doc"));
    }

    #[test]
    fn a_package_that_is_not_installed_says_how_to_install_it() {
        let err = HostImage::debian_package("x/y", "e2ekit-no-such-package")
            .expect_err("not installed")
            .to_string();
        assert!(
            err.contains("apt-get install e2ekit-no-such-package"),
            "{err}"
        );
        let err = HostImage::debian_package("x/y", "../etc/passwd")
            .expect_err("not a package name")
            .to_string();
        assert!(err.contains("not a Debian package name"), "{err}");
    }
}
