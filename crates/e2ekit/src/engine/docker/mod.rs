//! The Docker engine adapter: the only place that knows Docker's API, spoken through
//! `bollard` (never the `docker` CLI). Podman's Docker-compatible socket works through it too.
//!
//! Split by job: connecting and negotiating the API version (here), engine call deadlines and
//! error classification ([`calls`]), containers, exec, logs, images and archives, stats, the
//! environment's network and its labelled resources.
//!
//! ```no_run
//! # async fn demo() -> e2ekit::Result<()> {
//! // DOCKER_HOST=unix:///run/user/1000/podman/podman.sock also works for Podman's socket.
//! let env = e2ekit::Environment::new().await?;
//! # Ok(()) }
//! ```

pub(crate) mod auth;
mod calls;
mod containers;
pub(crate) mod discovery;
mod exec;
mod files;
mod images;
mod liveness;
mod logs;
mod network;
mod resources;
mod stats;
pub(crate) mod swarm;
// Readiness by health check and images built from a Dockerfile (issue 13).
mod build;
mod health;

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bollard::Docker;

use super::{
    Backend, ContainerSpec, ExecOutput, ExecRequest, ExitStatus, FileEntry, ImageConfig, Labelled,
    Leftovers, LogLine, LogStream, NetworkInfo, Output, StartedContainer, UsageStream,
};
use super::{BuildRequest, ContainerHealth};
use crate::error::{Error, Result};
use crate::host::labels;
use calls::{CALL_TIMEOUT, CONNECT_TIMEOUT, ENGINE_TIMEOUT_SECS};

impl std::fmt::Debug for DockerBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerBackend")
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

/// Docker engine connection.
#[derive(Clone)]
pub(crate) struct DockerBackend {
    docker: Docker,
    endpoint: String,
    /// Podman's Docker-compatible API, which needs a few detours.
    podman: bool,
    /// Where the test process reaches published ports: loopback for a local engine, the
    /// engine's host for `tcp://`.
    publish_ip: IpAddr,
    /// A local engine: published ports bind to loopback only, and container addresses are
    /// routable from the test process (on Linux).
    local: bool,
    /// Fails calls without a deadline (exec output, exit waits) when the engine stops
    /// answering.
    liveness: liveness::Liveness,
    /// How this engine was reached (endpoint and TLS material): reconnects and child
    /// processes reach it the same way.
    target: discovery::Target,
    /// Published ports bind to every address of a remote engine's host: it could not bind
    /// the address the test process reaches it at (see `create_and_start`).
    bind_any: Arc<std::sync::atomic::AtomicBool>,
}

/// What connecting learns from the engine's /version.
#[derive(Clone, Copy)]
struct EngineInfo {
    /// The API version both sides speak: the engine's, unless bollard's is older.
    api: bollard::ClientVersion,
    podman: bool,
}

impl EngineInfo {
    fn from_version(v: &bollard::models::SystemVersion) -> Self {
        let engine_api = v.api_version.as_deref().and_then(|a| {
            let (major, minor) = a.split_once('.')?;
            Some(bollard::ClientVersion {
                major_version: major.parse().ok()?,
                minor_version: minor.parse().ok()?,
            })
        });
        let api = match engine_api {
            Some(a) if a < *bollard::API_DEFAULT_VERSION => a,
            _ => *bollard::API_DEFAULT_VERSION,
        };
        let podman = v
            .components
            .iter()
            .flatten()
            .any(|c| c.name.contains("Podman"));
        Self { api, podman }
    }
}

/// The engine behind `endpoint`, asked once per endpoint and process: every environment
/// connects (and reconnects) separately, a hundred built at once must not each ask, and Podman
/// takes about a second to answer /version.
fn engine_info(endpoint: &str) -> Arc<tokio::sync::OnceCell<EngineInfo>> {
    type Engines = Mutex<HashMap<String, Arc<tokio::sync::OnceCell<EngineInfo>>>>;
    static ENGINES: OnceLock<Engines> = OnceLock::new();
    crate::host::fs::lock(ENGINES.get_or_init(Default::default))
        .entry(endpoint.to_string())
        .or_default()
        .clone()
}

/// The default engine's endpoint: the one discovery last connected to in this process, else
/// the first place it would try.
pub(crate) fn engine_endpoint() -> String {
    default_target().endpoint
}

/// The default engine as discovery found it (see [`discovery`]): the candidate that answered
/// when this process last connected with the same settings, else the first candidate.
pub(crate) fn default_target() -> discovery::Target {
    let snapshot = discovery::RealSnapshot;
    if let Ok(candidates) = discovery::candidates(&snapshot) {
        let key: Vec<discovery::Target> = candidates.iter().map(|c| c.target.clone()).collect();
        if let Some(found) = crate::host::fs::lock(winners()).get(&key) {
            return found.clone();
        }
    }
    discovery::preferred(&snapshot)
}

/// The environment a child process needs to reach `host` (or the default engine) as this
/// process does: TLS settings for a TLS engine, none otherwise.
pub(crate) fn child_env(host: Option<&str>) -> Vec<(&'static str, Option<String>)> {
    match host {
        None => default_target().child_env(),
        Some(h) => discovery::explicit(h, &discovery::RealSnapshot)
            .map(|t| t.child_env())
            .unwrap_or_default(),
    }
}

/// Which candidate answered, per list of candidates (the settings discovery saw): later
/// connects try it first, and [`default_target`] tells child processes about it.
fn winners() -> &'static Mutex<HashMap<Vec<discovery::Target>, discovery::Target>> {
    type Winners = Mutex<HashMap<Vec<discovery::Target>, discovery::Target>>;
    static WINNERS: OnceLock<Winners> = OnceLock::new();
    WINNERS.get_or_init(Default::default)
}

impl DockerBackend {
    /// Connects to `host` (the builder's engine) or, without one, to the first engine
    /// discovery finds that answers (see [`discovery`]), and negotiates the API version.
    pub(crate) async fn connect(host: Option<&str>) -> Result<Self> {
        let snapshot = discovery::RealSnapshot;
        match host {
            Some(host) => {
                let target = discovery::explicit(host, &snapshot).map_err(|reason| {
                    Error::EngineUnreachable {
                        endpoint: host.to_string(),
                        reason,
                    }
                })?;
                Self::connect_to(target).await
            }
            None => Self::discover(&snapshot).await,
        }
    }

    /// Tries the candidates in order (the one that answered last time first) and keeps the
    /// first that answers a ping; the error lists each one tried and why it failed. With
    /// `DOCKER_HOST` or a context there is just one.
    async fn discover(snapshot: &(dyn discovery::Snapshot + Sync)) -> Result<Self> {
        let candidates =
            discovery::candidates(snapshot).map_err(|reason| Error::EngineUnreachable {
                endpoint: "the default engine".to_string(),
                reason,
            })?;
        let key: Vec<discovery::Target> = candidates.iter().map(|c| c.target.clone()).collect();
        let known = crate::host::fs::lock(winners()).get(&key).cloned();
        // The one that failed just now, with its reason: not asked twice.
        let mut known_failure = None;
        if let Some(target) = known {
            match Self::connect_to(target.clone()).await {
                Ok(found) => return Ok(found),
                Err(e) => known_failure = Some((target, unreachable_reason(e))),
            }
        }
        let mut failures = Vec::new();
        for candidate in &candidates {
            let target = &candidate.target;
            if let Some((_, reason)) = known_failure.as_ref().filter(|(t, _)| t == target) {
                failures.push((candidate, reason.clone()));
                continue;
            }
            if let Some(socket) = target.socket() {
                // Most of the usual sockets do not exist on a given machine; say so plainly
                // instead of with a connection error.
                if !snapshot.exists(socket) {
                    failures.push((candidate, "no socket there".to_string()));
                    continue;
                }
            }
            match Self::connect_to(target.clone()).await {
                Ok(found) => {
                    crate::host::fs::lock(winners()).insert(key, target.clone());
                    return Ok(found);
                }
                Err(e) => failures.push((candidate, unreachable_reason(e))),
            }
        }
        if let [(only, reason)] = failures.as_slice() {
            return Err(Error::EngineUnreachable {
                endpoint: format!("{} ({})", only.target.endpoint, only.source),
                reason: reason.clone(),
            });
        }
        let failures: Vec<String> = failures
            .iter()
            .map(|(c, reason)| format!("{} at {}: {reason}", c.source, c.target.endpoint))
            .collect();
        Err(Error::EngineUnreachable {
            endpoint: format!("any of the {} places tried", candidates.len()),
            reason: format!(
                "no engine answered:\n  - {}\n(set DOCKER_HOST, select a Docker context, or name the engine with Engine::docker_host)",
                failures.join("\n  - ")
            ),
        })
    }

    /// Connects to one engine and negotiates the API version.
    async fn connect_to(target: discovery::Target) -> Result<Self> {
        let endpoint = target.endpoint.clone();
        let unreachable = |reason: String| Error::EngineUnreachable {
            endpoint: endpoint.clone(),
            reason,
        };
        let open = |api: &bollard::ClientVersion| match &target.tls {
            Some(tls) => {
                for file in [tls.ca(), tls.cert(), tls.key()] {
                    if !file.is_file() {
                        return Err(unreachable(format!(
                            "TLS is on but {} is missing (DOCKER_CERT_PATH or the context's TLS material)",
                            file.display()
                        )));
                    }
                }
                Docker::connect_with_ssl(
                    &endpoint,
                    &tls.key(),
                    &tls.cert(),
                    &tls.ca(),
                    ENGINE_TIMEOUT_SECS,
                    api,
                )
                .map_err(|e| unreachable(format!("setting up TLS: {e}")))
            }
            None if endpoint.starts_with("unix://") => {
                Docker::connect_with_unix(&endpoint, ENGINE_TIMEOUT_SECS, api)
                    .map_err(|e| unreachable(e.to_string()))
            }
            None => Docker::connect_with_http(&endpoint, ENGINE_TIMEOUT_SECS, api)
                .map_err(|e| unreachable(e.to_string())),
        };
        let docker = open(bollard::API_DEFAULT_VERSION)?
            .with_timeout(Duration::from_secs(ENGINE_TIMEOUT_SECS));
        // Reachability is a cheap /_ping under the short deadline; /version is not (see
        // engine_info).
        match tokio::time::timeout(CONNECT_TIMEOUT, docker.ping()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(unreachable(error_chain(&e))),
            Err(_) => return Err(unreachable(format!("no answer within {CONNECT_TIMEOUT:?}"))),
        }
        let engine = *engine_info(&endpoint)
            .get_or_try_init(|| async {
                match tokio::time::timeout(CALL_TIMEOUT, docker.version()).await {
                    Ok(Ok(v)) => Ok(EngineInfo::from_version(&v)),
                    Ok(Err(e)) => Err(unreachable(e.to_string())),
                    Err(_) => Err(unreachable(format!(
                        "no /version answer within {CALL_TIMEOUT:?}"
                    ))),
                }
            })
            .await?;
        let docker = open(&engine.api)?;
        let (publish_ip, local) = match remote_host(&endpoint) {
            None => (IpAddr::from([127, 0, 0, 1]), true),
            Some(host) => {
                let ip = resolve(&host).await.map_err(|e| {
                    unreachable(format!("resolving the engine's host {host:?}: {e}"))
                })?;
                (ip, ip.is_loopback())
            }
        };
        Ok(Self {
            liveness: liveness::Liveness::new(docker.clone()),
            docker,
            endpoint,
            podman: engine.podman,
            publish_ip,
            local,
            target,
            bind_any: Arc::default(),
        })
    }
}

/// Why connecting failed, without the endpoint (the list of candidates names it).
fn unreachable_reason(e: Error) -> String {
    match e {
        Error::EngineUnreachable { reason, .. } => reason,
        other => other.to_string(),
    }
}

/// An error with its causes, one after another: a TLS failure's reason (unknown CA, wrong
/// name) is deep in the chain.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let part = c.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        cause = c.source();
    }
    text
}

/// The host part of a `tcp://host:port` or `http://host:port` endpoint; `None` for local
/// sockets.
fn remote_host(endpoint: &str) -> Option<String> {
    let rest = endpoint
        .strip_prefix("tcp://")
        .or_else(|| endpoint.strip_prefix("http://"))
        .or_else(|| endpoint.strip_prefix("https://"))?;
    let authority = rest.split('/').next().unwrap_or(rest);
    let host = match authority.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => authority,
    };
    Some(
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
    )
}

async fn resolve(host: &str) -> std::io::Result<IpAddr> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(ip);
    }
    tokio::net::lookup_host((host, 0))
        .await?
        .map(|a| a.ip())
        .next()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no address"))
}

/// This host's address on the route towards `peer` (no packet is sent: connecting a UDP
/// socket only picks the route); `peer` itself when no route says.
pub(super) fn own_address_towards(peer: IpAddr) -> IpAddr {
    let probe = || -> std::io::Result<IpAddr> {
        let bind = if peer.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        };
        let socket = std::net::UdpSocket::bind(bind)?;
        socket.connect((peer, 9))?;
        Ok(socket.local_addr()?.ip())
    };
    probe().unwrap_or(peer)
}

/// Docker's built-in networks, which an environment's network cannot be named.
const RESERVED_NETWORKS: &[&str] = &["bridge", "host", "none"];

#[async_trait::async_trait]
impl Backend for DockerBackend {
    async fn reconnect(&self) -> Result<Arc<dyn Backend>> {
        Ok(Arc::new(
            DockerBackend::connect_to(self.target.clone()).await?,
        ))
    }

    async fn ping(&self) -> Result<()> {
        calls::within(
            || format!("pinging the engine at {}", self.endpoint),
            CONNECT_TIMEOUT,
            self.docker.ping(),
        )
        .await
        .map(drop)
    }

    fn host_addr(&self, network: &NetworkInfo) -> String {
        // Docker Desktop (macOS, Windows) runs containers in a VM whose gateway is not the host.
        if cfg!(any(target_os = "macos", target_os = "windows")) {
            return "host.docker.internal".to_string();
        }
        // A remote engine's gateway is its own host, not this one: containers reach this
        // host at the address it reaches the engine from (routes permitting).
        if !self.local {
            return own_address_towards(self.publish_ip).to_string();
        }
        match network.gateway {
            Some(ip) => ip.to_string(),
            None => "host.docker.internal".to_string(),
        }
    }

    fn removal_hint(&self, env: &str, shared_dir: &Path) -> String {
        let engine = match &self.target.tls {
            Some(tls) => format!(
                "DOCKER_HOST={} DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH={} ",
                self.endpoint,
                tls.dir.display()
            ),
            None if self.endpoint == calls::default_endpoint() => String::new(),
            None => format!("DOCKER_HOST={} ", self.endpoint),
        };
        format!(
            "{engine}docker rm -f $({engine}docker ps -aq --filter label={}={env}); {engine}docker network rm {env}; rm -rf {}",
            labels::ENV,
            shared_dir.display()
        )
    }

    fn reserved_names(&self) -> &'static [&'static str] {
        RESERVED_NETWORKS
    }

    async fn create_network(
        &self,
        name: &str,
        labels: BTreeMap<String, String>,
    ) -> Result<NetworkInfo> {
        network::create(&self.docker, name, labels, network::Driver::Bridge).await
    }

    async fn find_environment(&self, env: &str) -> Result<Leftovers> {
        self.find_environment(env).await
    }

    async fn heartbeat(&self, owner: &str) -> Result<()> {
        self.heartbeat(owner).await
    }

    async fn heartbeats(&self) -> Result<BTreeMap<String, u64>> {
        self.heartbeats().await
    }

    async fn end_heartbeat(&self, owner: &str) -> Result<()> {
        self.end_heartbeat(owner).await
    }

    async fn list_labelled(&self) -> Result<Vec<Labelled>> {
        self.list_labelled().await
    }

    async fn remove_environment(&self, env: &str, network: Option<&str>) -> Result<()> {
        self.remove_environment(env, network).await
    }

    async fn remove_owned(&self, env: &str, owner: &str) -> Result<()> {
        self.remove_owned(env, owner).await
    }

    async fn ensure_image(&self, image: &str, for_whom: &str) -> Result<()> {
        self.ensure_image(image, for_whom).await
    }

    async fn image_exists(&self, image: &str) -> Result<bool> {
        self.image_exists(image).await
    }

    async fn image_tags(&self, image: &str) -> Result<Option<Vec<String>>> {
        self.image_tags(image).await
    }

    async fn import_image(
        &self,
        repo: &str,
        tag: &str,
        rootfs_tar: Vec<u8>,
        config: &ImageConfig,
    ) -> Result<()> {
        self.import_image(repo, tag, rootfs_tar, config).await
    }

    async fn tag_image(&self, image: &str, repo: &str, tag: &str) -> Result<()> {
        self.tag_image(image, repo, tag).await
    }

    async fn push_image(&self, reference: &str) -> Result<()> {
        self.push_image(reference).await
    }

    async fn list_host_images(&self) -> Result<Vec<Vec<String>>> {
        self.list_host_images().await
    }

    async fn untag_image(&self, reference: &str) -> Result<bool> {
        self.untag_image(reference).await
    }

    async fn create_and_start(
        &self,
        spec: &ContainerSpec,
        for_whom: &str,
    ) -> Result<StartedContainer> {
        self.create_and_start(spec, for_whom).await
    }

    async fn inspect(
        &self,
        id: &str,
        network: Option<&str>,
        for_whom: &str,
    ) -> Result<StartedContainer> {
        self.inspect(id, network, for_whom).await
    }

    async fn wait_exit(&self, id: &str) -> Result<ExitStatus> {
        self.wait_exit(id).await
    }

    async fn stop(&self, id: &str, grace: Duration) -> Result<()> {
        self.stop(id, grace).await
    }

    async fn kill(&self, id: &str) -> Result<()> {
        self.kill(id).await
    }

    async fn remove(&self, id: &str) -> Result<()> {
        self.remove(id).await
    }

    async fn pause(&self, id: &str) -> Result<()> {
        self.pause(id).await
    }

    async fn unpause(&self, id: &str) -> Result<()> {
        self.unpause(id).await
    }

    async fn disconnect(&self, id: &str, network: &str) -> Result<()> {
        self.disconnect_network(id, network).await
    }

    async fn connect(&self, id: &str, network: &str, aliases: &[String]) -> Result<()> {
        self.connect_network(id, network, aliases).await
    }

    fn follow_logs(&self, id: &str) -> LogStream {
        self.follow_logs(id)
    }

    fn usage(&self, id: &str) -> UsageStream {
        self.usage(id)
    }

    async fn signal(&self, id: &str, signal: &str) -> Result<()> {
        self.signal(id, signal).await
    }

    async fn log_tail(&self, id: &str, lines: usize, max_line: usize) -> Vec<LogLine> {
        self.log_tail(id, lines, max_line).await
    }

    async fn exec(&self, id: &str, for_whom: &str, request: &ExecRequest) -> Result<ExecOutput> {
        self.exec(id, for_whom, request).await
    }

    // --- Files, output and host files (container options) ---

    fn sees_host_files(&self) -> bool {
        self.local
    }

    async fn copy_in(&self, id: &str, for_whom: &str, entries: &[FileEntry]) -> Result<()> {
        self.copy_in(id, for_whom, entries).await
    }

    async fn copy_out(&self, id: &str, for_whom: &str, path: &str) -> Result<Vec<FileEntry>> {
        self.copy_out(id, for_whom, path).await
    }

    async fn output(&self, id: &str, for_whom: &str) -> Result<Output> {
        self.output(id, for_whom).await
    }

    async fn health(&self, id: &str, for_whom: &str) -> Result<ContainerHealth> {
        self.health(id, for_whom).await
    }

    async fn image_has_health_check(&self, image: &str) -> Result<bool> {
        self.image_has_health_check(image).await
    }

    async fn build_image(&self, request: &BuildRequest) -> Result<()> {
        self.build_image(request).await
    }
}
