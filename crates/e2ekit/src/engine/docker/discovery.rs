//! Where the Docker engine is, when the user did not name one: the decision only, over an
//! injected [`Snapshot`] of the environment variables, the home directory and the files it
//! reads, so every rule is unit-tested without touching the real machine. Connecting (and
//! pinging each candidate in turn) is `DockerBackend::connect`'s job.
//!
//! The order follows what the Docker CLI users know does, then the places engines put their
//! sockets: `DOCKER_HOST` (with `DOCKER_TLS_VERIFY` / `DOCKER_CERT_PATH`), the current Docker
//! context (`DOCKER_CONTEXT`, else `currentContext` in `$DOCKER_CONFIG/config.json`), then
//! the system socket, rootless Docker, Docker Desktop, Colima and Podman.
//!
//! ```no_run
//! # async fn demo() -> e2ekit::Result<()> {
//! // DOCKER_CONTEXT=ci picks the context's endpoint (and its TLS material), as `docker` does.
//! let env = e2ekit::Environment::new().await?;
//! # let _ = env;
//! # Ok(()) }
//! ```

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// What discovery reads from the machine; [`RealSnapshot`] reads the real one.
pub(crate) trait Snapshot {
    /// An environment variable, `None` when unset (or not UTF-8).
    fn var(&self, name: &str) -> Option<String>;
    /// The user's home directory.
    fn home(&self) -> Option<PathBuf>;
    /// A file's contents; `NotFound` when it does not exist.
    fn read(&self, path: &Path) -> std::io::Result<String>;
    /// Whether a file (or socket) exists.
    fn exists(&self, path: &Path) -> bool;
}

/// The process's own environment and file system.
pub(crate) struct RealSnapshot;

impl Snapshot for RealSnapshot {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }

    fn home(&self) -> Option<PathBuf> {
        std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from)
    }

    fn read(&self, path: &Path) -> std::io::Result<String> {
        std::fs::read_to_string(path)
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }
}

/// The directory holding the client certificates of a TLS engine: `ca.pem` (the engine's
/// CA), `cert.pem` and `key.pem` (this client's certificate and key), Docker's layout both
/// for `DOCKER_CERT_PATH` and for a context's TLS material.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct TlsFiles {
    pub dir: PathBuf,
}

impl TlsFiles {
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }
    pub fn cert(&self) -> PathBuf {
        self.dir.join("cert.pem")
    }
    pub fn key(&self) -> PathBuf {
        self.dir.join("key.pem")
    }
}

/// One way to reach an engine: its API endpoint, and TLS material when it speaks TLS.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Target {
    /// `unix:///path`, `tcp://host:port`, `http://…` or `https://…`.
    pub endpoint: String,
    /// Verify the engine against `ca.pem` and present `cert.pem`/`key.pem`.
    pub tls: Option<TlsFiles>,
}

impl Target {
    fn plain(endpoint: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into(),
            tls: None,
        }
    }

    /// The socket file of a `unix://` endpoint.
    pub fn socket(&self) -> Option<&Path> {
        self.endpoint.strip_prefix("unix://").map(Path::new)
    }

    /// The environment a child process needs to reach this engine the way we do: the
    /// endpoint travels separately (the reaper's own variable, or `DOCKER_HOST`); TLS goes as
    /// `DOCKER_TLS_VERIFY`/`DOCKER_CERT_PATH`, which [`explicit`] reads back. `None` values
    /// are removed, so a parent's TLS settings never leak onto a plain engine.
    pub fn child_env(&self) -> Vec<(&'static str, Option<String>)> {
        match &self.tls {
            Some(tls) => vec![
                ("DOCKER_TLS_VERIFY", Some("1".to_string())),
                (
                    "DOCKER_CERT_PATH",
                    Some(tls.dir.to_string_lossy().into_owned()),
                ),
            ],
            None => vec![("DOCKER_TLS_VERIFY", None), ("DOCKER_CERT_PATH", None)],
        }
    }
}

/// A place discovery will try, and why it is on the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Candidate {
    /// Where it came from, for the error that lists what was tried: `DOCKER_HOST`,
    /// `Docker context "ci"`, `rootless Docker`...
    pub source: String,
    pub target: Target,
}

/// The Docker client's configuration directory: `DOCKER_CONFIG`, else `~/.docker`.
pub(crate) fn config_dir(s: &dyn Snapshot) -> Option<PathBuf> {
    match s.var("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        Some(dir) => Some(PathBuf::from(dir)),
        None => s.home().map(|h| h.join(".docker")),
    }
}

/// Whether `DOCKER_TLS_VERIFY` asks for TLS: set and not empty, `0` or `false` (the Docker
/// CLI takes any non-empty value; `0` meaning "on" would surprise everyone).
fn tls_verify(s: &dyn Snapshot) -> bool {
    s.var("DOCKER_TLS_VERIFY")
        .is_some_and(|v| !matches!(v.trim(), "" | "0" | "false" | "FALSE" | "False"))
}

/// TLS material named by `DOCKER_CERT_PATH` (default: the config directory).
fn env_tls(s: &dyn Snapshot) -> Result<TlsFiles, String> {
    let dir = match s.var("DOCKER_CERT_PATH").filter(|d| !d.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => config_dir(s).ok_or(
            "DOCKER_TLS_VERIFY is set but neither DOCKER_CERT_PATH nor a home directory names the certificates",
        )?,
    };
    Ok(TlsFiles { dir })
}

/// Checks the endpoint's scheme: e2ekit speaks to engines over unix sockets and TCP only.
fn supported(endpoint: &str, source: &str) -> Result<(), String> {
    let ok = ["unix://", "tcp://", "http://", "https://"]
        .iter()
        .any(|p| endpoint.starts_with(p) && endpoint.len() > p.len());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{source} names {endpoint:?}: e2ekit reaches engines at unix:///path/to.sock, tcp://host:port or https://host:port only"
        ))
    }
}

/// The engine the builder named (`Engine::docker_host`) or a child was told: that endpoint,
/// with TLS when it is `https://`, or `tcp://` while `DOCKER_TLS_VERIFY` is set (as
/// `docker -H tcp://…` does).
pub(crate) fn explicit(host: &str, s: &dyn Snapshot) -> Result<Target, String> {
    supported(host, "the engine given")?;
    let tcp = host.starts_with("tcp://") || host.starts_with("https://");
    let tls = if host.starts_with("https://") || (tcp && tls_verify(s)) {
        Some(env_tls(s)?)
    } else {
        None
    };
    Ok(Target {
        endpoint: host.to_string(),
        tls,
    })
}

/// The `DOCKER_HOST` candidate, if the variable is set.
fn docker_host(s: &dyn Snapshot) -> Result<Option<Candidate>, String> {
    let Some(host) = s.var("DOCKER_HOST").filter(|h| !h.trim().is_empty()) else {
        return Ok(None);
    };
    supported(&host, "DOCKER_HOST")?;
    let target = explicit(&host, s)?;
    Ok(Some(Candidate {
        source: "DOCKER_HOST".to_string(),
        target,
    }))
}

/// The current context's name: `DOCKER_CONTEXT`, else `currentContext` in config.json;
/// `None` for the built-in `default` context (which means "no context").
///
/// A config.json that cannot be read or parsed selects no context (with a warning), as the
/// Docker CLI does: a process running as another user than the home directory's owner (a
/// test dropping privileges) must still find the engine.
fn current_context(s: &dyn Snapshot, config: &Path) -> Option<String> {
    let name = match s.var("DOCKER_CONTEXT").filter(|c| !c.trim().is_empty()) {
        Some(c) => Some(c),
        None => {
            let path = config.join("config.json");
            match s.read(&path) {
                Ok(text) => match serde_json::from_str::<serde_json::Value>(&text) {
                    Ok(json) => json
                        .get("currentContext")
                        .and_then(|c| c.as_str())
                        .map(str::to_string),
                    Err(e) => {
                        tracing::warn!(path = %path.display(), error = %e, "the Docker config is not valid JSON; using no Docker context");
                        None
                    }
                },
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "cannot read the Docker config; using no Docker context");
                    None
                }
            }
        }
    };
    name.filter(|n| !n.is_empty() && n != "default")
}

/// Docker stores a context under the SHA-256 of its name, in hex.
pub(crate) fn context_dir_name(name: &str) -> String {
    Sha256::digest(name.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The current context's candidate, if a context other than `default` is selected. A named
/// context that does not exist, or that cannot be used, is an error (as with `docker`): the
/// user asked for that engine, and another one must not be used in its place.
fn context(s: &dyn Snapshot) -> Result<Option<Candidate>, String> {
    let Some(config) = config_dir(s) else {
        return Ok(None);
    };
    let Some(name) = current_context(s, &config) else {
        return Ok(None);
    };
    let id = context_dir_name(&name);
    let meta_path = config.join("contexts/meta").join(&id).join("meta.json");
    let text = s.read(&meta_path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            format!(
                "Docker context {name:?} does not exist (no {}); `docker context ls` lists the contexts",
                meta_path.display()
            )
        } else {
            format!("reading Docker context {name:?} ({}): {e}", meta_path.display())
        }
    })?;
    let meta: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        format!(
            "Docker context {name:?}: {} is not valid JSON: {e}",
            meta_path.display()
        )
    })?;
    let docker = &meta["Endpoints"]["docker"];
    let host = docker["Host"]
        .as_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| {
            format!(
                "Docker context {name:?} has no Docker endpoint (Endpoints.docker.Host in {})",
                meta_path.display()
            )
        })?;
    let source = format!("Docker context {name:?}");
    supported(host, &source)?;
    let skip_verify = docker["SkipTLSVerify"].as_bool().unwrap_or(false);
    let tls_dir = config.join("contexts/tls").join(&id).join("docker");
    let has_tls = s.exists(&tls_dir.join("ca.pem"));
    let tcp = !host.starts_with("unix://");
    if tcp && skip_verify {
        return Err(format!(
            "{source} sets SkipTLSVerify: e2ekit only talks TLS to an engine it can verify; give the context the engine's CA (docker context update --docker \"host={host},ca=…,cert=…,key=…\")"
        ));
    }
    let tls =
        (tcp && (has_tls || host.starts_with("https://"))).then_some(TlsFiles { dir: tls_dir });
    Ok(Some(Candidate {
        source,
        target: Target {
            endpoint: host.to_string(),
            tls,
        },
    }))
}

/// The sockets engines create when installed the usual ways, most common first.
fn sockets(s: &dyn Snapshot) -> Vec<Candidate> {
    let mut out = Vec::new();
    let mut add = |source: &str, path: PathBuf| {
        out.push(Candidate {
            source: source.to_string(),
            target: Target::plain(format!("unix://{}", path.display())),
        })
    };
    add("the system Docker socket", "/var/run/docker.sock".into());
    let runtime = s
        .var("XDG_RUNTIME_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from);
    if let Some(run) = &runtime {
        add("rootless Docker", run.join("docker.sock"));
    }
    if let Some(home) = s.home() {
        add("Docker Desktop", home.join(".docker/run/docker.sock"));
        add("Docker Desktop", home.join(".docker/desktop/docker.sock"));
        add("Colima", home.join(".colima/default/docker.sock"));
        add("Colima", home.join(".colima/docker.sock"));
    }
    if let Some(run) = &runtime {
        add("rootless Podman", run.join("podman/podman.sock"));
    }
    add("Podman", "/run/podman/podman.sock".into());
    out
}

/// Every place to try for the default engine, in order, without duplicates.
///
/// A setting the user made (`DOCKER_HOST`, a selected context) is the only candidate: when
/// it does not answer, that is the error, as with the `docker` CLI; quietly running the
/// tests on another engine (the local one instead of CI's remote engine, say) would be
/// worse. Without settings, the usual sockets are tried in order. `Err` when the settings
/// are unusable (an unknown context, an unsupported scheme).
pub(crate) fn candidates(s: &dyn Snapshot) -> Result<Vec<Candidate>, String> {
    if let Some(c) = docker_host(s)? {
        return Ok(vec![c]);
    }
    if let Some(c) = context(s)? {
        return Ok(vec![c]);
    }
    let mut all = sockets(s);
    let mut seen = std::collections::HashSet::new();
    all.retain(|c| seen.insert(c.target.endpoint.clone()));
    Ok(all)
}

/// The first candidate, taken without asking any engine: what a child process is told when
/// nothing has connected yet.
pub(crate) fn preferred(s: &dyn Snapshot) -> Target {
    candidates(s)
        .ok()
        .and_then(|c| c.into_iter().next())
        .map_or_else(
            || Target::plain("unix:///var/run/docker.sock"),
            |c| c.target,
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[derive(Default)]
    struct Fake {
        vars: HashMap<String, String>,
        home: Option<PathBuf>,
        files: HashMap<PathBuf, String>,
    }

    impl Fake {
        fn new() -> Self {
            Self {
                home: Some("/home/u".into()),
                ..Default::default()
            }
        }
        fn var(mut self, k: &str, v: &str) -> Self {
            self.vars.insert(k.into(), v.into());
            self
        }
        fn file(mut self, p: impl Into<PathBuf>, text: &str) -> Self {
            self.files.insert(p.into(), text.into());
            self
        }
        fn context(self, config: &str, name: &str, meta: &str) -> Self {
            let id = context_dir_name(name);
            self.file(format!("{config}/contexts/meta/{id}/meta.json"), meta)
        }
    }

    impl Snapshot for Fake {
        fn var(&self, name: &str) -> Option<String> {
            self.vars.get(name).cloned()
        }
        fn home(&self) -> Option<PathBuf> {
            self.home.clone()
        }
        fn read(&self, path: &Path) -> std::io::Result<String> {
            self.files
                .get(path)
                .cloned()
                .ok_or_else(|| std::io::ErrorKind::NotFound.into())
        }
        fn exists(&self, path: &Path) -> bool {
            self.files.contains_key(path)
        }
    }

    fn endpoints(s: &dyn Snapshot) -> Vec<String> {
        candidates(s)
            .unwrap()
            .into_iter()
            .map(|c| c.target.endpoint)
            .collect()
    }

    #[test]
    fn without_settings_the_usual_sockets_are_tried_in_order() {
        let s = Fake::new().var("XDG_RUNTIME_DIR", "/run/user/1000");
        assert_eq!(
            endpoints(&s),
            [
                "unix:///var/run/docker.sock",
                "unix:///run/user/1000/docker.sock",
                "unix:///home/u/.docker/run/docker.sock",
                "unix:///home/u/.docker/desktop/docker.sock",
                "unix:///home/u/.colima/default/docker.sock",
                "unix:///home/u/.colima/docker.sock",
                "unix:///run/user/1000/podman/podman.sock",
                "unix:///run/podman/podman.sock",
            ]
        );
        let sources: Vec<String> = candidates(&s)
            .unwrap()
            .into_iter()
            .map(|c| c.source)
            .collect();
        assert_eq!(sources[1], "rootless Docker");
        assert_eq!(sources[6], "rootless Podman");
    }

    #[test]
    fn without_home_or_runtime_dir_only_the_system_sockets_remain() {
        let mut s = Fake::new();
        s.home = None;
        assert_eq!(
            endpoints(&s),
            [
                "unix:///var/run/docker.sock",
                "unix:///run/podman/podman.sock"
            ]
        );
    }

    #[test]
    fn docker_host_comes_first_and_is_not_repeated() {
        let s = Fake::new().var("DOCKER_HOST", "unix:///var/run/docker.sock");
        let e = endpoints(&s);
        assert_eq!(e[0], "unix:///var/run/docker.sock");
        assert_eq!(
            e.iter()
                .filter(|x| x.contains("/var/run/docker.sock"))
                .count(),
            1
        );
        let c = &candidates(&s).unwrap()[0];
        assert_eq!(c.source, "DOCKER_HOST");
        let s = Fake::new().var("DOCKER_HOST", "tcp://10.0.0.5:2375");
        let c = &candidates(&s).unwrap()[0];
        assert_eq!(c.target, Target::plain("tcp://10.0.0.5:2375"));
    }

    #[test]
    fn docker_tls_verify_uses_the_cert_path_or_the_config_dir() {
        let s = Fake::new()
            .var("DOCKER_HOST", "tcp://h:2376")
            .var("DOCKER_TLS_VERIFY", "1")
            .var("DOCKER_CERT_PATH", "/certs");
        let t = &candidates(&s).unwrap()[0].target;
        let tls = t.tls.as_ref().unwrap();
        assert_eq!(tls.ca(), Path::new("/certs/ca.pem"));
        assert_eq!(tls.cert(), Path::new("/certs/cert.pem"));
        assert_eq!(tls.key(), Path::new("/certs/key.pem"));
        // Default: the config directory, DOCKER_CONFIG or ~/.docker.
        let s = Fake::new()
            .var("DOCKER_HOST", "tcp://h:2376")
            .var("DOCKER_TLS_VERIFY", "1");
        let t = &candidates(&s).unwrap()[0].target;
        assert_eq!(t.tls.as_ref().unwrap().dir, Path::new("/home/u/.docker"));
        let s = s.var("DOCKER_CONFIG", "/cfg");
        let t = &candidates(&s).unwrap()[0].target;
        assert_eq!(t.tls.as_ref().unwrap().dir, Path::new("/cfg"));
        // "0" and empty mean off; unix sockets never take TLS.
        for off in ["0", "", "false"] {
            let s = Fake::new()
                .var("DOCKER_HOST", "tcp://h:2375")
                .var("DOCKER_TLS_VERIFY", off);
            assert_eq!(candidates(&s).unwrap()[0].target.tls, None, "{off:?}");
        }
        let s = Fake::new()
            .var("DOCKER_HOST", "unix:///s.sock")
            .var("DOCKER_TLS_VERIFY", "1");
        assert_eq!(candidates(&s).unwrap()[0].target.tls, None);
    }

    #[test]
    fn https_always_takes_tls() {
        let t = explicit("https://h:2376", &Fake::new()).unwrap();
        assert_eq!(t.tls.unwrap().dir, Path::new("/home/u/.docker"));
    }

    #[test]
    fn an_explicit_engine_follows_the_tls_variables_like_docker_dash_h() {
        let s = Fake::new()
            .var("DOCKER_TLS_VERIFY", "1")
            .var("DOCKER_CERT_PATH", "/c");
        let t = explicit("tcp://h:2376", &s).unwrap();
        assert_eq!(t.tls.unwrap().dir, Path::new("/c"));
        assert_eq!(explicit("tcp://h:2375", &Fake::new()).unwrap().tls, None);
        assert_eq!(explicit("unix:///x.sock", &s).unwrap().tls, None);
    }

    #[test]
    fn unsupported_schemes_are_errors_naming_the_setting() {
        let s = Fake::new().var("DOCKER_HOST", "ssh://me@h");
        let e = candidates(&s).unwrap_err();
        assert!(e.contains("DOCKER_HOST") && e.contains("ssh://me@h"), "{e}");
        let e = explicit("tcp://", &Fake::new()).unwrap_err();
        assert!(e.contains("the engine given"), "{e}");
        assert!(explicit("h:2375", &Fake::new()).is_err());
    }

    const TCP_META: &str = r#"{"Name":"ci","Metadata":{},"Endpoints":{"docker":{"Host":"tcp://10.1.2.3:2376","SkipTLSVerify":false}}}"#;

    #[test]
    fn the_current_context_from_config_json_is_the_only_candidate_without_docker_host() {
        let s = Fake::new()
            .file("/home/u/.docker/config.json", r#"{"currentContext":"ci"}"#)
            .context("/home/u/.docker", "ci", TCP_META);
        let c = candidates(&s).unwrap();
        assert_eq!(c.len(), 1, "{c:?}");
        assert_eq!(c[0].source, "Docker context \"ci\"");
        assert_eq!(c[0].target, Target::plain("tcp://10.1.2.3:2376"));
    }

    #[test]
    fn docker_context_overrides_config_json_and_default_means_none() {
        let s = Fake::new()
            .file("/home/u/.docker/config.json", r#"{"currentContext":"ci"}"#)
            .context("/home/u/.docker", "ci", TCP_META)
            .context(
                "/home/u/.docker",
                "other",
                r#"{"Endpoints":{"docker":{"Host":"unix:///other.sock"}}}"#,
            );
        assert_eq!(
            endpoints(&s.var("DOCKER_CONTEXT", "other"))[0],
            "unix:///other.sock"
        );
        let s = Fake::new().file(
            "/home/u/.docker/config.json",
            r#"{"currentContext":"default"}"#,
        );
        assert_eq!(endpoints(&s)[0], "unix:///var/run/docker.sock");
        let s = Fake::new()
            .file("/home/u/.docker/config.json", r#"{"currentContext":"ci"}"#)
            .context("/home/u/.docker", "ci", TCP_META)
            .var("DOCKER_CONTEXT", "default");
        assert_eq!(endpoints(&s)[0], "unix:///var/run/docker.sock");
    }

    #[test]
    fn contexts_live_under_docker_config_and_carry_their_tls_material() {
        let id = context_dir_name("ci");
        let s = Fake::new()
            .var("DOCKER_CONFIG", "/cfg")
            .file("/cfg/config.json", r#"{"currentContext":"ci","auths":{}}"#)
            .context("/cfg", "ci", TCP_META)
            .file(format!("/cfg/contexts/tls/{id}/docker/ca.pem"), "ca");
        let c = &candidates(&s).unwrap()[0];
        assert_eq!(
            c.target.tls,
            Some(TlsFiles {
                dir: format!("/cfg/contexts/tls/{id}/docker").into()
            })
        );
    }

    #[test]
    fn the_context_directory_is_the_sha256_of_its_name() {
        // `docker context create default2`'s directory, as the Docker CLI names it.
        assert_eq!(
            context_dir_name("default"),
            "37a8eec1ce19687d132fe29051dca629d164e2c4958ba141d5f4133a33f0688f"
        );
    }

    #[test]
    fn an_unknown_or_broken_context_is_an_error_not_a_fallback() {
        let s = Fake::new().var("DOCKER_CONTEXT", "nope");
        let e = candidates(&s).unwrap_err();
        assert!(e.contains("\"nope\" does not exist"), "{e}");
        let s = Fake::new()
            .var("DOCKER_CONTEXT", "x")
            .context("/home/u/.docker", "x", "{not json");
        assert!(candidates(&s).unwrap_err().contains("not valid JSON"));
        let s = Fake::new().var("DOCKER_CONTEXT", "x").context(
            "/home/u/.docker",
            "x",
            r#"{"Endpoints":{}}"#,
        );
        assert!(candidates(&s).unwrap_err().contains("no Docker endpoint"));
        let s = Fake::new().var("DOCKER_CONTEXT", "x").context(
            "/home/u/.docker",
            "x",
            r#"{"Endpoints":{"docker":{"Host":"tcp://h:2376","SkipTLSVerify":true}}}"#,
        );
        assert!(candidates(&s).unwrap_err().contains("SkipTLSVerify"));
    }

    #[test]
    fn an_unreadable_or_broken_config_json_selects_no_context() {
        // As the Docker CLI: a warning, then the defaults.
        let s = Fake::new().file("/home/u/.docker/config.json", "{oops");
        assert_eq!(endpoints(&s)[0], "unix:///var/run/docker.sock");
        struct Unreadable;
        impl Snapshot for Unreadable {
            fn var(&self, _: &str) -> Option<String> {
                None
            }
            fn home(&self) -> Option<PathBuf> {
                Some("/root".into())
            }
            fn read(&self, _: &Path) -> std::io::Result<String> {
                Err(std::io::ErrorKind::PermissionDenied.into())
            }
            fn exists(&self, _: &Path) -> bool {
                false
            }
        }
        assert_eq!(endpoints(&Unreadable)[0], "unix:///var/run/docker.sock");
    }

    #[test]
    fn a_missing_config_json_means_no_context() {
        assert_eq!(endpoints(&Fake::new())[0], "unix:///var/run/docker.sock");
    }

    #[test]
    fn preferred_is_the_first_candidate_or_the_system_socket() {
        let s = Fake::new().var("DOCKER_HOST", "tcp://h:1");
        assert_eq!(preferred(&s).endpoint, "tcp://h:1");
        let s = Fake::new().var("DOCKER_CONTEXT", "missing");
        assert_eq!(preferred(&s).endpoint, "unix:///var/run/docker.sock");
    }

    #[test]
    fn child_env_carries_tls_or_clears_it() {
        let t = Target {
            endpoint: "tcp://h:2376".into(),
            tls: Some(TlsFiles { dir: "/c".into() }),
        };
        assert_eq!(
            t.child_env(),
            vec![
                ("DOCKER_TLS_VERIFY", Some("1".to_string())),
                ("DOCKER_CERT_PATH", Some("/c".to_string()))
            ]
        );
        // What a child is given reads back as the same target.
        let s = Fake::new()
            .var("DOCKER_TLS_VERIFY", "1")
            .var("DOCKER_CERT_PATH", "/c");
        assert_eq!(explicit(&t.endpoint, &s).unwrap(), t);
        assert!(Target::plain("tcp://h:1")
            .child_env()
            .iter()
            .all(|(_, v)| v.is_none()));
    }
}
