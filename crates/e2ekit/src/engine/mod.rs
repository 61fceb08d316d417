//! The seam between scenarios and a container engine.
//!
//! [`Backend`] is everything e2ekit needs from an engine, in typed values only: container
//! specs with [`Mount`]s and port numbers, [`ImageConfig`]s, [`ExecOutput`], [`LogLine`]s and
//! [`UsageSample`]s. No engine's string syntax crosses it. The engine also answers the
//! questions only it can answer: how the test process reaches a published port, how
//! containers reach the host, which names it reserves, and what command removes a kept
//! environment.
//!
//! Everything Docker-specific lives in [`docker`]; [`fake`] is an in-memory engine for unit
//! tests of the layers above; [`lines`] turns output chunks into lines for any backend.
//! Users pick an engine with the public [`Engine`] value:
//!
//! ```no_run
//! use e2ekit::prelude::*;
//!
//! # async fn demo() -> e2ekit::Result<()> {
//! // The default: DOCKER_HOST, the current Docker context, else the usual sockets.
//! let env = Environment::builder().engine(Engine::docker()).build().await?;
//! // A remote engine: endpoints then name that host, not 127.0.0.1.
//! let remote = Environment::builder()
//!     .engine(Engine::docker_host("tcp://10.0.0.5:2375"))
//!     .build()
//!     .await?;
//! # let _ = (env, remote);
//! # Ok(()) }
//! ```

pub(crate) mod cleanup;
pub(crate) mod docker;
#[cfg(test)]
pub(crate) mod fake;
mod host_image;
mod lines;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::Stream;

use crate::error::Result;
pub(crate) use crate::spec::{ImageConfig, Mount};
pub(crate) use host_image::{build_host_image, INPUT_TAG_PREFIX};
pub(crate) use lines::{LineSplitter, LogLine};

/// Which container engine an environment runs on.
///
/// Today that is a Docker engine (or anything speaking its API, such as Podman's socket),
/// local or remote. The default finds the engine as [`Engine::docker`] describes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Engine {
    kind: EngineKind,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
enum EngineKind {
    /// Found by discovery: `DOCKER_HOST`, the current Docker context, the usual sockets.
    #[default]
    DockerDefault,
    Docker(String),
}

impl Engine {
    /// The Docker engine found the way the Docker CLI and the usual installations put it:
    /// `DOCKER_HOST` (TLS with `DOCKER_TLS_VERIFY` and `DOCKER_CERT_PATH`), the current Docker
    /// context (`DOCKER_CONTEXT`, else `currentContext` in `$DOCKER_CONFIG/config.json`), then
    /// the first of the system socket, rootless Docker, Docker Desktop, Colima and Podman
    /// sockets that answers; when none does, the error lists each place tried and why it
    /// failed. `DOCKER_HOST` or a selected context is used alone: when it does not answer (or
    /// a named context does not exist), that is the error, never replaced by another engine.
    pub fn docker() -> Self {
        Self::default()
    }

    /// The Docker engine (or Docker-compatible API) at `host`: `unix:///path/to.sock`,
    /// `tcp://host:port` or `https://host:port`. With `tcp://`, published ports are reached
    /// on that host; `https://`, or `tcp://` while `DOCKER_TLS_VERIFY` is set, speaks TLS with
    /// `ca.pem`, `cert.pem` and `key.pem` from `DOCKER_CERT_PATH` (default `~/.docker`), as
    /// `docker -H` does.
    pub fn docker_host(host: impl Into<String>) -> Self {
        Self {
            kind: EngineKind::Docker(host.into()),
        }
    }

    /// `Engine::docker_host(h)` for `Some(h)`, [`Engine::docker`] otherwise.
    pub fn docker_at(host: Option<&str>) -> Self {
        host.map_or_else(Self::docker, Self::docker_host)
    }

    /// The endpoint this engine is reached at (when not given: the one discovery connected
    /// to in this process, else the first it would try), as a child process must be told to
    /// reach the same engine; [`child_env`](Self::child_env) adds its TLS settings.
    pub(crate) fn endpoint(&self) -> String {
        match &self.kind {
            EngineKind::DockerDefault => docker::engine_endpoint(),
            EngineKind::Docker(host) => host.clone(),
        }
    }

    /// Connects and negotiates the API version.
    pub(crate) async fn connect(&self) -> Result<Arc<dyn Backend>> {
        match &self.kind {
            EngineKind::DockerDefault => Ok(Arc::new(docker::DockerBackend::connect(None).await?)),
            EngineKind::Docker(host) => {
                Ok(Arc::new(docker::DockerBackend::connect(Some(host)).await?))
            }
        }
    }

    /// What a child process's environment must set (`Some`) or remove (`None`) besides the
    /// [`endpoint`](Self::endpoint) to reach this engine as this process does: a discovered
    /// TLS engine's `DOCKER_TLS_VERIFY` and `DOCKER_CERT_PATH`.
    pub(crate) fn child_env(&self) -> Vec<(&'static str, Option<String>)> {
        match &self.kind {
            EngineKind::DockerDefault => docker::child_env(None),
            EngineKind::Docker(host) => docker::child_env(Some(host)),
        }
    }
}

/// Stream of container output lines; ends when the container stops.
pub(crate) type LogStream = Pin<Box<dyn Stream<Item = Result<LogLine>> + Send>>;

/// What the environment's private network looks like.
#[derive(Debug, Clone)]
pub(crate) struct NetworkInfo {
    pub name: String,
    /// The network's gateway: on a local engine, the host as containers see it.
    pub gateway: Option<IpAddr>,
}

/// Everything needed to create one container.
#[derive(Debug, Clone, Default)]
pub(crate) struct ContainerSpec {
    pub name: String,
    pub hostname: String,
    /// DNS names on the network besides the container name.
    pub aliases: Vec<String>,
    pub image: String,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub env: Vec<(String, String)>,
    pub user: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// Container ports to publish to the test process.
    pub ports: Vec<u16>,
    pub mounts: Vec<Mount>,
    pub userns: Option<String>,
    pub privileged: bool,
    pub capabilities: Vec<String>,
    pub memory_bytes: Option<i64>,
    pub nano_cpus: Option<i64>,
    /// The network to join; `None` runs without any network.
    pub network: Option<String>,
}

/// A container as seen right after it started.
#[derive(Debug, Clone)]
pub(crate) struct StartedContainer {
    pub id: String,
    /// The container's own address, when the test process can route to it (a local Linux
    /// engine). Probes prefer it: a port proxy may accept connections before the service
    /// inside listens.
    pub direct_ip: Option<IpAddr>,
    /// Container port → the address the test process reaches it at.
    pub published: BTreeMap<u16, SocketAddr>,
    /// Set when the container already exited by the time it was inspected.
    pub exited: Option<ExitStatus>,
}

/// How a container ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ExitStatus {
    /// The main process's exit code (137: killed with SIGKILL; -1: unknown, e.g. the
    /// container was removed before it could be asked).
    pub code: i64,
    /// The kernel's OOM killer killed a process of the container (with `code` 137: its main
    /// process): the container went over its memory limit, or the host ran out of memory.
    pub oom_killed: bool,
}

impl ExitStatus {
    /// An exit with `code` that was not an out-of-memory kill.
    pub(crate) fn code(code: i64) -> Self {
        Self {
            code,
            oom_killed: false,
        }
    }
}

/// What a command run with [`crate::Runnable::exec`] printed and how it exited.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOutput {
    /// The command's exit code.
    pub exit_code: i64,
    /// Everything written to stdout.
    pub stdout: String,
    /// Everything written to stderr.
    pub stderr: String,
}

/// A command to run inside a running container.
#[derive(Debug, Clone, Default)]
pub(crate) struct ExecRequest {
    pub argv: Vec<String>,
    pub stdin: Option<Vec<u8>>,
    pub user: Option<String>,
}

/// Resources of one environment, as found on the engine.
#[derive(Debug, Clone, Default)]
pub(crate) struct Leftovers {
    pub containers: Vec<String>,
    pub networks: Vec<String>,
    /// Owner labels of the resources found.
    pub owners: Vec<String>,
}

/// Resource usage of one container at one moment, in cAdvisor's units.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct UsageSample {
    pub cpu_seconds: f64,
    pub memory_usage_bytes: f64,
    pub working_set_bytes: f64,
    pub rss_bytes: f64,
    pub rx_bytes: f64,
    pub tx_bytes: f64,
}

/// Usage samples pushed by the engine (about one a second) until the container stops.
pub(crate) type UsageStream = Pin<Box<dyn Stream<Item = Result<UsageSample>> + Send>>;

/// One labelled resource (container or network) on the engine.
#[derive(Debug, Clone)]
pub(crate) struct Labelled {
    pub container: bool,
    pub env: String,
    pub owner: Option<String>,
    /// Its `e2ekit.created` label, as found (not parsed).
    pub created: Option<String>,
}

/// What a container engine must do for e2ekit.
#[async_trait::async_trait]
pub(crate) trait Backend: Send + Sync + std::fmt::Debug {
    /// A new connection to the same engine, bound to the current async runtime.
    async fn reconnect(&self) -> Result<Arc<dyn Backend>>;
    /// Whether the engine answers, within a few seconds.
    async fn ping(&self) -> Result<()>;

    /// The address containers on `network` use to reach the test host.
    fn host_addr(&self, network: &NetworkInfo) -> String;
    /// A shell command that removes everything of environment `env` (printed when an
    /// environment is kept for inspection).
    fn removal_hint(&self, env: &str, shared_dir: &Path) -> String;
    /// Names the engine keeps for itself, which an environment (its network) cannot take.
    fn reserved_names(&self) -> &'static [&'static str];

    async fn create_network(
        &self,
        name: &str,
        labels: BTreeMap<String, String>,
    ) -> Result<NetworkInfo>;
    async fn find_environment(&self, env: &str) -> Result<Leftovers>;
    /// Every container and network carrying e2ekit's environment label.
    async fn list_labelled(&self) -> Result<Vec<Labelled>>;
    /// Records that `owner` is alive now (a tiny labelled volume that replaces the last one),
    /// for sweeps that cannot check its process (another host's).
    async fn heartbeat(&self, owner: &str) -> Result<()>;
    /// The time (Unix seconds) of each owner's latest heartbeat.
    async fn heartbeats(&self) -> Result<BTreeMap<String, u64>>;
    /// Removes `owner`'s heartbeats.
    async fn end_heartbeat(&self, owner: &str) -> Result<()>;
    /// Remove everything labelled with the environment's name, concurrently.
    async fn remove_environment(&self, env: &str, network: Option<&str>) -> Result<()>;
    /// Remove the containers and networks of `env` labelled with `owner`, and only those (the
    /// reaper: a later owner may already have rebuilt the same name).
    async fn remove_owned(&self, env: &str, owner: &str) -> Result<()>;

    /// Makes sure the image is present, pulling it when missing. `for_whom` names the runnable.
    async fn ensure_image(&self, image: &str, for_whom: &str) -> Result<()>;
    async fn image_exists(&self, image: &str) -> Result<bool>;
    /// Every `repo:tag` of the image `image` names (itself included); `None` when there is
    /// no such image.
    async fn image_tags(&self, image: &str) -> Result<Option<Vec<String>>>;
    /// Creates image `repo:tag` from a root filesystem tar and its config.
    async fn import_image(
        &self,
        repo: &str,
        tag: &str,
        rootfs_tar: Vec<u8>,
        config: &ImageConfig,
    ) -> Result<()>;
    async fn tag_image(&self, image: &str, repo: &str, tag: &str) -> Result<()>;
    /// Pushes `reference` (`registry/repo:tag`) to its registry.
    async fn push_image(&self, reference: &str) -> Result<()>;
    /// The tags of every image built from host files (one entry per image).
    async fn list_host_images(&self) -> Result<Vec<Vec<String>>>;
    /// Removes one tag; `false` when a container uses the image, which stays.
    async fn untag_image(&self, reference: &str) -> Result<bool>;

    async fn create_and_start(
        &self,
        spec: &ContainerSpec,
        for_whom: &str,
    ) -> Result<StartedContainer>;
    /// What the test process can reach of a container now. The engine may move published
    /// ports (Docker does when a container rejoins its network), so callers refresh after
    /// such changes.
    async fn inspect(
        &self,
        id: &str,
        network: Option<&str>,
        for_whom: &str,
    ) -> Result<StartedContainer>;
    /// Resolves with how the container ended once it is not running.
    async fn wait_exit(&self, id: &str) -> Result<ExitStatus>;
    async fn stop(&self, id: &str, grace: Duration) -> Result<()>;
    async fn kill(&self, id: &str) -> Result<()>;
    async fn remove(&self, id: &str) -> Result<()>;
    async fn pause(&self, id: &str) -> Result<()>;
    async fn unpause(&self, id: &str) -> Result<()>;
    async fn disconnect(&self, id: &str, network: &str) -> Result<()>;
    async fn connect(&self, id: &str, network: &str, aliases: &[String]) -> Result<()>;

    fn follow_logs(&self, id: &str) -> LogStream;
    fn usage(&self, id: &str) -> UsageStream;
    /// Sends a signal (e.g. `HUP`) to the container's main process.
    async fn signal(&self, id: &str, signal: &str) -> Result<()>;
    /// The last `lines` lines of the container's output (stdout and stderr as the engine
    /// interleaved them). At most `max_line` bytes of each line are kept, and held while
    /// reading: [`LogLine::cut`] counts the rest. Empty when the output cannot be read.
    async fn log_tail(&self, id: &str, lines: usize, max_line: usize) -> Vec<LogLine>;
    async fn exec(&self, id: &str, for_whom: &str, request: &ExecRequest) -> Result<ExecOutput>;
}
