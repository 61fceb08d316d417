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
mod dockerfile_image;
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
pub(crate) use crate::spec::HealthCheck;
pub(crate) use crate::spec::{EntryKind, FileEntry, ImageConfig, Mount, Output, Ulimit};
pub(crate) use dockerfile_image::build_dockerfile_image;
pub(crate) use host_image::{build_host_image, INPUT_TAG_PREFIX};
pub(crate) use lines::{LineSplitter, LogLine};

/// Which container engine an environment runs on.
///
/// Today that is a Docker engine (or anything speaking its API, such as Podman's socket),
/// local or remote. The default finds the engine as [`Engine::docker`] describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Engine {
    kind: EngineKind,
}

impl Default for Engine {
    /// [`Engine::docker`]: `E2EKIT_ENGINE` and `DOCKER_HOST` are read here, so an
    /// environment built without naming an engine follows them too.
    fn default() -> Self {
        Self::docker()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
enum EngineKind {
    /// Found by discovery: `DOCKER_HOST`, the current Docker context, the usual sockets.
    #[default]
    DockerDefault,
    Docker(String),
    /// A Docker Swarm through one of its managers (`None`: `DOCKER_HOST`, else the local
    /// socket), its nodes' engines on `node_port`.
    Swarm {
        manager: Option<String>,
        node_port: u16,
    },
}

/// `E2EKIT_ENGINE=swarm` makes the default engine a Docker Swarm (`DOCKER_HOST` names a
/// manager): the same scenarios on a cluster without a code change.
pub const ENGINE_VAR: &str = "E2EKIT_ENGINE";

/// How a Swarm engine's endpoint is written for a child process (the reaper):
/// `swarm+<manager>[#node-port=N]`.
const SWARM_PREFIX: &str = "swarm+";

impl Engine {
    /// The Docker engine found the way the Docker CLI and the usual installations put it:
    /// `DOCKER_HOST` (TLS with `DOCKER_TLS_VERIFY` and `DOCKER_CERT_PATH`), the current Docker
    /// context (`DOCKER_CONTEXT`, else `currentContext` in `$DOCKER_CONFIG/config.json`), then
    /// the first of the system socket, rootless Docker, Docker Desktop, Colima and Podman
    /// sockets that answers; when none does, the error lists each place tried and why it
    /// failed. `DOCKER_HOST` or a selected context is used alone: when it does not answer (or
    /// a named context does not exist), that is the error, never replaced by another engine.
    ///
    /// With `E2EKIT_ENGINE=swarm`, that engine is taken as a Swarm manager ([`Engine::swarm`]).
    pub fn docker() -> Self {
        match std::env::var(ENGINE_VAR).as_deref() {
            Ok("swarm") => Self {
                kind: EngineKind::Swarm {
                    manager: None,
                    node_port: docker::swarm::DEFAULT_NODE_PORT,
                },
            },
            _ => Self {
                kind: EngineKind::DockerDefault,
            },
        }
    }

    /// The Docker engine (or Docker-compatible API) at `host`: `unix:///path/to.sock`,
    /// `tcp://host:port` or `https://host:port`. With `tcp://`, published ports are reached
    /// on that host; `https://`, or `tcp://` while `DOCKER_TLS_VERIFY` is set, speaks TLS with
    /// `ca.pem`, `cert.pem` and `key.pem` from `DOCKER_CERT_PATH` (default `~/.docker`), as
    /// `docker -H` does.
    pub fn docker_host(host: impl Into<String>) -> Self {
        let host = host.into();
        if let Some(engine) = Self::parse_swarm_endpoint(&host) {
            return engine;
        }
        Self {
            kind: EngineKind::Docker(host),
        }
    }

    /// `Engine::docker_host(h)` for `Some(h)`, [`Engine::docker`] otherwise.
    pub fn docker_at(host: Option<&str>) -> Self {
        host.map_or_else(Self::docker, Self::docker_host)
    }

    /// A Docker Swarm reached through the manager at `manager` (`tcp://host:port` or
    /// `unix:///path`). Each runnable runs as a one-task service spread over the nodes;
    /// exec, logs, stop, copies and partitions go to the engine of the node running the
    /// task, at `tcp://<node address>:2375` unless [`Engine::node_port`] says otherwise.
    /// See the README's "Docker Swarm" section for what works there.
    pub fn swarm(manager: impl Into<String>) -> Self {
        Self {
            kind: EngineKind::Swarm {
                manager: Some(manager.into()),
                node_port: docker::swarm::DEFAULT_NODE_PORT,
            },
        }
    }

    /// The TCP port the nodes' engines listen on (a Swarm engine only; default 2375).
    pub fn node_port(mut self, port: u16) -> Self {
        if let EngineKind::Swarm { node_port, .. } = &mut self.kind {
            *node_port = port;
        }
        self
    }

    /// Whether this is a Docker Swarm engine.
    pub fn is_swarm(&self) -> bool {
        matches!(self.kind, EngineKind::Swarm { .. })
    }

    fn parse_swarm_endpoint(endpoint: &str) -> Option<Self> {
        let rest = endpoint.strip_prefix(SWARM_PREFIX)?;
        let (manager, port) = match rest.split_once("#node-port=") {
            Some((m, p)) => (m, p.parse().ok()?),
            None => (rest, docker::swarm::DEFAULT_NODE_PORT),
        };
        Some(Self::swarm(manager).node_port(port))
    }

    /// The endpoint this engine is reached at (when not given: the one discovery connected
    /// to in this process, else the first it would try), as a child process must be told to
    /// reach the same engine; [`child_env`](Self::child_env) adds its TLS settings.
    pub(crate) fn endpoint(&self) -> String {
        match &self.kind {
            EngineKind::DockerDefault => docker::engine_endpoint(),
            EngineKind::Docker(host) => host.clone(),
            EngineKind::Swarm { manager, node_port } => {
                let manager = manager.clone().unwrap_or_else(docker::engine_endpoint);
                if *node_port == docker::swarm::DEFAULT_NODE_PORT {
                    format!("{SWARM_PREFIX}{manager}")
                } else {
                    format!("{SWARM_PREFIX}{manager}#node-port={node_port}")
                }
            }
        }
    }

    /// Connects and negotiates the API version.
    pub(crate) async fn connect(&self) -> Result<Arc<dyn Backend>> {
        match &self.kind {
            EngineKind::DockerDefault => Ok(Arc::new(docker::DockerBackend::connect(None).await?)),
            EngineKind::Docker(host) => {
                Ok(Arc::new(docker::DockerBackend::connect(Some(host)).await?))
            }
            EngineKind::Swarm { manager, node_port } => {
                let manager = manager.clone().unwrap_or_else(docker::engine_endpoint);
                Ok(Arc::new(
                    docker::swarm::SwarmBackend::connect(&manager, *node_port).await?,
                ))
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
            EngineKind::Swarm { manager, .. } => docker::child_env(manager.as_deref()),
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
    /// Files copied in after the container is created and before it starts.
    pub files: Vec<FileEntry>,
    /// On an engine that cannot see the test host's files: the shared directory's path and
    /// its content at start, to be made available at the same path (writable).
    pub shared_dir: Option<(String, Vec<FileEntry>)>,
    /// Engine volumes to create (labelled like the container, without its runnable label)
    /// when missing, and mount.
    pub volumes: Vec<VolumeMount>,
    /// In-memory filesystems: container path and size limit in bytes.
    pub tmpfs: Vec<(String, Option<u64>)>,
    pub working_dir: Option<String>,
    pub read_only_rootfs: bool,
    pub shm_size: Option<i64>,
    pub ulimits: Vec<Ulimit>,
    /// `/etc/hosts` lines: hostname and address (or `host-gateway`).
    pub extra_hosts: Vec<(String, String)>,
    /// `os/arch[/variant]`.
    pub platform: Option<String>,
    /// Container port → fixed host port (the other ports get one the engine picks).
    pub host_ports: BTreeMap<u16, u16>,
    /// Replaces the image's health check.
    pub health_check: Option<HealthCheck>,
}

/// An engine volume mounted into a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VolumeMount {
    /// The volume's name on the engine.
    pub name: String,
    pub target: String,
    pub read_only: bool,
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
    /// Names of the environment's volumes.
    pub volumes: Vec<String>,
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
    pub kind: ResourceKind,
    pub env: String,
    pub owner: Option<String>,
    /// Its `e2ekit.created` label, as found (not parsed).
    pub created: Option<String>,
}

/// What kind of resource a [`Labelled`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ResourceKind {
    Container,
    Network,
    Volume,
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

    // --- Files, output and host files (container options) ---

    /// Whether containers can bind-mount paths of the test process's filesystem: true for a
    /// local engine; false for a remote one, where the shared directory is copied instead.
    fn sees_host_files(&self) -> bool;
    /// Writes `entries` (absolute container paths) into container `id`, running or
    /// created; parent directories are created as needed.
    async fn copy_in(&self, id: &str, for_whom: &str, entries: &[FileEntry]) -> Result<()>;
    /// Reads the file or directory at `path` of container `id`: entries with paths relative
    /// to the parent of `path` (the first is `path`'s own name).
    async fn copy_out(&self, id: &str, for_whom: &str, path: &str) -> Result<Vec<FileEntry>>;
    /// Everything container `id` printed so far, each stream apart.
    async fn output(&self, id: &str, for_whom: &str) -> Result<Output>;

    // Readiness by health check, and images built from a Dockerfile (issue 13).
    /// The container's health status as the engine reports it now.
    async fn health(&self, id: &str, for_whom: &str) -> Result<ContainerHealth>;
    /// Whether `image` defines a health check (`HEALTHCHECK NONE` counts as none).
    async fn image_has_health_check(&self, image: &str) -> Result<bool>;
    /// Builds an image from a Dockerfile and its context and tags it `request.tag`; nothing
    /// is tagged, and no build container is left, when the build fails.
    async fn build_image(&self, request: &BuildRequest) -> Result<()>;
}

/// A container's health, as its health check last found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ContainerHealth {
    /// Neither the image nor the container's options define a health check.
    NoHealthCheck,
    /// Not decided yet: the check has not passed since start.
    Starting {
        /// The last check's exit code and output, if one ran.
        last: Option<(i64, String)>,
    },
    Healthy,
    /// The check failed `failing_streak` times in a row.
    Unhealthy {
        failing_streak: i64,
        last: Option<(i64, String)>,
    },
}

/// What to build from a Dockerfile.
#[derive(Debug, Clone)]
pub(crate) struct BuildRequest {
    /// The context as an uncompressed tar (the Dockerfile included).
    pub context_tar: Vec<u8>,
    /// The Dockerfile's path inside the context.
    pub dockerfile: String,
    pub build_args: BTreeMap<String, String>,
    /// The stage of a multi-stage Dockerfile to build; `None`: the last.
    pub target: Option<String>,
    /// `repo:tag` to give the image.
    pub tag: String,
    pub labels: BTreeMap<String, String>,
    /// The context directory on the host, for errors.
    pub context_dir: std::path::PathBuf,
}
