//! The Docker engine backend, spoken through the engine API with `bollard`.
//!
//! Users do not touch this module directly; [`crate::Environment::new`] connects to the engine
//! named by `DOCKER_HOST` (or the default socket) and negotiates the API version.
//!
//! ```no_run
//! # async fn demo() -> e2ekit::Result<()> {
//! // DOCKER_HOST=unix:///run/user/1000/podman/podman.sock also works for Podman's socket.
//! let env = e2ekit::Environment::new().await?;
//! # Ok(()) }
//! ```

mod network;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::models::{
    ContainerCreateBody, EndpointSettings, HostConfig, NetworkConnectRequest,
    NetworkDisconnectRequest, NetworkingConfig, PortBinding,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, ImportImageOptionsBuilder,
    KillContainerOptionsBuilder, ListContainersOptionsBuilder, ListImagesOptionsBuilder,
    ListNetworksOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder,
    StatsOptionsBuilder, StopContainerOptionsBuilder, TagImageOptionsBuilder,
    WaitContainerOptionsBuilder,
};
use bollard::Docker;
use futures_util::{StreamExt, TryStreamExt};
use tokio::io::AsyncWriteExt;

use crate::backend::{
    Backend, ContainerSpec, Labelled, Leftovers, LogLine, LogStream, NetworkInfo, StartedContainer,
    UsageSample, UsageStream,
};
use crate::error::{Error, Result};
use crate::labels;
use crate::runnable::ExecOutput;

/// Upper bound for any single engine call that is not a long wait, so a vanished engine
/// yields an error instead of a hung test.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// Connecting must fail fast: a test suite pointed at a dead engine should say so in seconds.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Docker engine connection.
#[derive(Clone)]
pub(crate) struct DockerBackend {
    docker: Docker,
    endpoint: String,
    /// Podman's Docker-compatible API, which needs a few detours.
    podman: bool,
}

impl std::fmt::Debug for DockerBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerBackend")
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

/// bollard's own deadline for a request; [`CALL_TIMEOUT`] and the waits stay below it.
const ENGINE_TIMEOUT_SECS: u64 = 120;

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
    ENGINES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .entry(endpoint.to_string())
        .or_default()
        .clone()
}

fn engine_endpoint() -> String {
    std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".to_string())
}

/// Runs an engine call with a deadline, naming the action in the error.
async fn within<T>(
    action: impl FnOnce() -> String,
    limit: Duration,
    call: impl Future<Output = std::result::Result<T, bollard::errors::Error>>,
) -> Result<T> {
    match tokio::time::timeout(limit, call).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(Error::engine(action(), e)),
        Err(_) => Err(Error::EngineTimeout {
            action: action(),
            after: limit,
        }),
    }
}

fn is_not_found(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

/// Treats the given engine answers (besides 404, gone already) as success: they mean the
/// container is already in the state the call wanted.
fn already_done(res: Result<()>, codes: &[u16]) -> Result<()> {
    match res {
        Err(Error::Engine { source, .. })
            if is_not_found(&source)
                || status_code(&source).is_some_and(|c| codes.contains(&c)) =>
        {
            Ok(())
        }
        other => other,
    }
}

/// The engine's error message; Podman reports some of Docker's 409 conditions as 500 with a
/// message only.
fn engine_message(e: &bollard::errors::Error) -> &str {
    match e {
        bollard::errors::Error::DockerResponseServerError { message, .. } => message,
        _ => "",
    }
}

fn status_code(e: &bollard::errors::Error) -> Option<u16> {
    match e {
        bollard::errors::Error::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

impl DockerBackend {
    /// Connects to `host` (default: `DOCKER_HOST`, else the local socket) and negotiates the
    /// API version.
    pub(crate) async fn connect(host: Option<&str>) -> Result<Self> {
        let endpoint = host.map(str::to_string).unwrap_or_else(engine_endpoint);
        let unreachable = |reason: String| Error::EngineUnreachable {
            endpoint: endpoint.clone(),
            reason,
        };
        let docker = Docker::connect_with_host(&endpoint)
            .map_err(|e| unreachable(e.to_string()))?
            .with_timeout(Duration::from_secs(ENGINE_TIMEOUT_SECS));
        // Reachability is a cheap /_ping under the short deadline; /version is not (see
        // engine_info).
        match tokio::time::timeout(CONNECT_TIMEOUT, docker.ping()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(unreachable(e.to_string())),
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
        let docker = if endpoint.starts_with("unix://") {
            Docker::connect_with_unix(&endpoint, ENGINE_TIMEOUT_SECS, &engine.api)
        } else {
            // connect_with_host accepted it, so it is tcp:// or http://.
            Docker::connect_with_http(&endpoint, ENGINE_TIMEOUT_SECS, &engine.api)
        }
        .map_err(|e| unreachable(e.to_string()))?;
        Ok(Self {
            docker,
            endpoint,
            podman: engine.podman,
        })
    }

    /// Containers (running or not) and networks carrying `label` (`key` or `key=value`).
    async fn list_with_label(
        &self,
        label: String,
    ) -> Result<(
        Vec<bollard::models::ContainerSummary>,
        Vec<bollard::models::Network>,
    )> {
        let filters = HashMap::from([("label".to_string(), vec![label.clone()])]);
        let containers = within(
            || format!("listing containers labelled {label}"),
            CALL_TIMEOUT,
            self.docker.list_containers(Some(
                ListContainersOptionsBuilder::default()
                    .all(true)
                    .filters(&filters)
                    .build(),
            )),
        )
        .await?;
        let networks = within(
            || format!("listing networks labelled {label}"),
            CALL_TIMEOUT,
            self.docker.list_networks(Some(
                ListNetworksOptionsBuilder::default()
                    .filters(&filters)
                    .build(),
            )),
        )
        .await?;
        Ok((containers, networks))
    }

    async fn pull(&self, image: &str, for_whom: &str) -> Result<()> {
        let (repo, tag) = split_image(image);
        let opts = CreateImageOptionsBuilder::default()
            .from_image(repo)
            .tag(tag)
            .build();
        let mut stream = self.docker.create_image(Some(opts), None, None);
        // Pulls can take minutes on slow links; each progress message proves liveness.
        loop {
            match tokio::time::timeout(CALL_TIMEOUT, stream.next()).await {
                Ok(None) => return Ok(()),
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(e))) => {
                    return Err(Error::ImageNotFound {
                        runnable: for_whom.to_string(),
                        image: image.to_string(),
                        reason: e.to_string(),
                    })
                }
                Err(_) => {
                    return Err(Error::ImageNotFound {
                        runnable: for_whom.to_string(),
                        image: image.to_string(),
                        reason: format!("the pull made no progress for {CALL_TIMEOUT:?}"),
                    })
                }
            }
        }
    }
}

/// Splits `repo[:tag][@digest]` into repository and tag (default `latest`).
pub(crate) fn split_image(image: &str) -> (&str, &str) {
    if image.contains('@') {
        return (image, "");
    }
    match image.rsplit_once(':') {
        // A colon before the last slash belongs to a registry port, not a tag.
        Some((repo, tag)) if !tag.contains('/') => (repo, tag),
        _ => (image, "latest"),
    }
}

#[async_trait::async_trait]
impl Backend for DockerBackend {
    async fn reconnect(&self) -> Result<Arc<dyn Backend>> {
        Ok(Arc::new(
            DockerBackend::connect(Some(&self.endpoint)).await?,
        ))
    }

    async fn create_network(
        &self,
        name: &str,
        labels: BTreeMap<String, String>,
    ) -> Result<NetworkInfo> {
        network::create(&self.docker, name, labels).await
    }

    async fn remove_network(&self, name: &str) -> Result<()> {
        match within(
            || format!("removing network {name}"),
            CALL_TIMEOUT,
            self.docker.remove_network(name),
        )
        .await
        {
            Err(Error::Engine { source, .. }) if is_not_found(&source) => Ok(()),
            other => other,
        }
    }

    async fn find_environment(&self, env: &str) -> Result<Leftovers> {
        let (containers, networks) = self
            .list_with_label(format!("{}={env}", labels::ENV))
            .await?;
        let mut found = Leftovers::default();
        for c in containers {
            if let Some(owner) = c.labels.as_ref().and_then(|l| l.get(labels::OWNER)) {
                found.owners.push(owner.clone());
            }
            found.containers.extend(c.id);
        }
        for n in networks {
            if let Some(owner) = n.labels.as_ref().and_then(|l| l.get(labels::OWNER)) {
                found.owners.push(owner.clone());
            }
            found.networks.extend(n.name);
        }
        found.owners.sort();
        found.owners.dedup();
        Ok(found)
    }

    async fn list_labelled(&self) -> Result<Vec<Labelled>> {
        let (containers, networks) = self.list_with_label(labels::ENV.to_string()).await?;
        let entry = |container: bool, labels: Option<&HashMap<String, String>>| {
            let labels = labels?;
            Some(Labelled {
                container,
                env: labels.get(labels::ENV)?.clone(),
                owner: labels.get(labels::OWNER).cloned(),
            })
        };
        Ok(containers
            .iter()
            .filter_map(|c| entry(true, c.labels.as_ref()))
            .chain(
                networks
                    .iter()
                    .filter_map(|n| entry(false, n.labels.as_ref())),
            )
            .collect())
    }

    async fn remove_environment(&self, env: &str, network: Option<&str>) -> Result<()> {
        let found = self.find_environment(env).await?;
        let removals = found.containers.iter().map(|id| self.remove(id));
        let results = futures_util::future::join_all(removals).await;
        let mut first_error = results.into_iter().find_map(|r| r.err());
        let mut networks = found.networks;
        if let Some(n) = network {
            if !networks.iter().any(|x| x == n) {
                networks.push(n.to_string());
            }
        }
        for n in networks {
            if let Err(e) = self.remove_network(&n).await {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    async fn ensure_image(&self, image: &str, for_whom: &str) -> Result<()> {
        if self.image_exists(image).await? {
            return Ok(());
        }
        tracing::info!(image, runnable = for_whom, "pulling image");
        self.pull(image, for_whom).await
    }

    async fn image_exists(&self, image: &str) -> Result<bool> {
        match within(
            || format!("inspecting image {image}"),
            CALL_TIMEOUT,
            self.docker.inspect_image(image),
        )
        .await
        {
            Ok(_) => Ok(true),
            Err(Error::Engine { source, .. }) if is_not_found(&source) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn import_image(
        &self,
        repo: &str,
        tag: &str,
        tar: Vec<u8>,
        changes: Vec<String>,
    ) -> Result<()> {
        // Not /images/create?fromSrc=-: Podman ignores its `tag` and applies only the first
        // of its `changes`. A `docker save` archive carries name and config in itself, and
        // both engines load it alike.
        let archive =
            docker_archive(repo, tag, &tar, &changes).map_err(|reason| Error::ImageBuild {
                image: format!("{repo}:{tag}"),
                reason,
            })?;
        let opts = ImportImageOptionsBuilder::default().quiet(true).build();
        let mut stream = self
            .docker
            .import_image(opts, bollard::body_full(archive.into()), None);
        loop {
            match tokio::time::timeout(CALL_TIMEOUT, stream.next()).await {
                Ok(None) => return Ok(()),
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(e))) => {
                    return Err(Error::ImageBuild {
                        image: format!("{repo}:{tag}"),
                        reason: format!("the engine refused the import: {e}"),
                    })
                }
                Err(_) => {
                    return Err(Error::EngineTimeout {
                        action: format!("importing image {repo}:{tag}"),
                        after: CALL_TIMEOUT,
                    })
                }
            }
        }
    }

    async fn list_host_images(&self) -> Result<Vec<Vec<String>>> {
        let label = labels::HOST_IMAGE.to_string();
        let filters = HashMap::from([("label".to_string(), vec![label.clone()])]);
        let images = within(
            || format!("listing images labelled {label}"),
            CALL_TIMEOUT,
            self.docker.list_images(Some(
                ListImagesOptionsBuilder::default()
                    .filters(&filters)
                    .build(),
            )),
        )
        .await?;
        Ok(images
            .into_iter()
            .map(|i| {
                i.repo_tags
                    .into_iter()
                    .filter(|t| t != "<none>:<none>")
                    .collect()
            })
            .collect())
    }

    async fn untag_image(&self, reference: &str) -> Result<bool> {
        match within(
            || format!("removing image {reference}"),
            CALL_TIMEOUT,
            self.docker.remove_image(
                reference,
                None::<bollard::query_parameters::RemoveImageOptions>,
                None,
            ),
        )
        .await
        {
            Ok(_) => Ok(true),
            // In use by a container (running or not): keep it.
            Err(Error::Engine { source, .. }) if status_code(&source) == Some(409) => Ok(false),
            Err(Error::Engine { source, .. }) if is_not_found(&source) => Ok(true),
            Err(e) => Err(e),
        }
    }

    async fn tag_image(&self, image: &str, repo: &str, tag: &str) -> Result<()> {
        within(
            || format!("tagging image {image} as {repo}:{tag}"),
            CALL_TIMEOUT,
            self.docker.tag_image(
                image,
                Some(
                    TagImageOptionsBuilder::default()
                        .repo(repo)
                        .tag(tag)
                        .build(),
                ),
            ),
        )
        .await
    }

    async fn create_and_start(
        &self,
        spec: &ContainerSpec,
        for_whom: &str,
    ) -> Result<StartedContainer> {
        let body = container_body(spec);
        let create = || {
            self.docker.create_container(
                Some(
                    CreateContainerOptionsBuilder::default()
                        .name(&spec.name)
                        .build(),
                ),
                body.clone(),
            )
        };
        let action = || format!("creating container {} for runnable {for_whom}", spec.name);
        let created = match within(action, CALL_TIMEOUT, create()).await {
            // A container of that name left by an earlier run of this runnable: replace it.
            // Podman answers 500 "... that name is already in use" instead of 409.
            Err(Error::Engine { source, .. })
                if status_code(&source) == Some(409)
                    || engine_message(&source).contains("name is already in use") =>
            {
                self.remove(&spec.name).await?;
                within(action, CALL_TIMEOUT, create()).await?
            }
            Err(Error::Engine { source, .. }) if is_not_found(&source) => {
                return Err(Error::ImageNotFound {
                    runnable: for_whom.to_string(),
                    image: spec.image.clone(),
                    reason: source.to_string(),
                })
            }
            other => other?,
        };
        let id = created.id;
        if let Err(e) = within(
            || format!("starting container {} for runnable {for_whom}", spec.name),
            CALL_TIMEOUT,
            self.docker.start_container(&id, None),
        )
        .await
        {
            let _ = self.remove(&id).await;
            return Err(e);
        }
        // Between a container's exit and its cleanup Podman reports State.Status "stopped",
        // which is not in Docker's schema, so bollard cannot decode the answer; it settles
        // within moments, so ask again briefly.
        let mut undecodable = 0;
        let info = loop {
            match within(
                || format!("inspecting container {} for runnable {for_whom}", spec.name),
                CALL_TIMEOUT,
                self.docker.inspect_container(&id, None),
            )
            .await
            {
                Err(Error::Engine {
                    source: bollard::errors::Error::JsonDataError { .. },
                    ..
                }) if undecodable < 50 => {
                    undecodable += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                other => break other?,
            }
        };
        let state = info.state.unwrap_or_default();
        let exited = match state.running {
            Some(true) => None,
            _ => Some(state.exit_code.unwrap_or(-1)),
        };
        let settings = info.network_settings.unwrap_or_default();
        let ip = settings
            .networks
            .as_ref()
            .and_then(|n| n.get(&spec.network))
            .and_then(|e| e.ip_address.as_deref())
            .and_then(|ip| ip.parse::<IpAddr>().ok());
        let mut host_ports = BTreeMap::new();
        for (key, bindings) in settings.ports.unwrap_or_default() {
            let Some(port) = key.split('/').next().and_then(|p| p.parse::<u16>().ok()) else {
                continue;
            };
            let host_port = bindings
                .unwrap_or_default()
                .into_iter()
                .filter_map(|b| b.host_port?.parse::<u16>().ok())
                .next();
            if let Some(hp) = host_port {
                host_ports.insert(port, hp);
            }
        }
        Ok(StartedContainer {
            id,
            ip,
            host_ports,
            exited,
        })
    }

    async fn wait_exit(&self, id: &str) -> Result<i64> {
        loop {
            let opts = WaitContainerOptionsBuilder::default()
                .condition("not-running")
                .build();
            let mut stream = self.docker.wait_container(id, Some(opts));
            match stream.next().await {
                Some(Ok(r)) => return Ok(r.status_code),
                Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => {
                    return Ok(code)
                }
                Some(Err(e)) if is_not_found(&e) => return Ok(-1),
                // The long poll can be cut by client timeouts; ask again unless the engine is gone.
                Some(Err(bollard::errors::Error::RequestTimeoutError)) => continue,
                Some(Err(e)) => return Err(Error::engine(format!("waiting for {id} to exit"), e)),
                None => continue,
            }
        }
    }

    async fn stop(&self, id: &str, grace: Duration) -> Result<()> {
        let secs = i32::try_from(grace.as_secs()).unwrap_or(i32::MAX);
        let res = within(
            || format!("stopping container {id}"),
            grace + CALL_TIMEOUT,
            self.docker.stop_container(
                id,
                Some(StopContainerOptionsBuilder::default().t(secs).build()),
            ),
        )
        .await;
        // 304: not running any more.
        already_done(res, &[304])
    }

    async fn kill(&self, id: &str) -> Result<()> {
        let res = within(
            || format!("killing container {id}"),
            CALL_TIMEOUT,
            self.docker.kill_container(
                id,
                Some(
                    KillContainerOptionsBuilder::default()
                        .signal("KILL")
                        .build(),
                ),
            ),
        )
        .await;
        // Not running any more, which is what kill wanted: Docker answers 409, Podman 500
        // "can only kill running containers".
        match res {
            Err(Error::Engine { source, .. })
                if engine_message(&source).contains("can only kill running containers") =>
            {
                Ok(())
            }
            other => already_done(other, &[409]),
        }
    }

    async fn remove(&self, id: &str) -> Result<()> {
        let res = within(
            || format!("removing container {id}"),
            CALL_TIMEOUT,
            self.docker.remove_container(
                id,
                Some(
                    RemoveContainerOptionsBuilder::default()
                        .force(true)
                        .v(true)
                        .build(),
                ),
            ),
        )
        .await;
        // 409 "removal already in progress": someone else is removing it for us.
        already_done(res, &[409])
    }

    async fn pause(&self, id: &str) -> Result<()> {
        within(
            || format!("pausing container {id}"),
            CALL_TIMEOUT,
            self.docker.pause_container(id),
        )
        .await
    }

    async fn unpause(&self, id: &str) -> Result<()> {
        within(
            || format!("unpausing container {id}"),
            CALL_TIMEOUT,
            self.docker.unpause_container(id),
        )
        .await
    }

    async fn disconnect(&self, id: &str, network: &str) -> Result<()> {
        within(
            || format!("disconnecting container {id} from network {network}"),
            CALL_TIMEOUT,
            self.docker.disconnect_network(
                network,
                NetworkDisconnectRequest {
                    container: id.to_string(),
                    force: Some(true),
                },
            ),
        )
        .await
    }

    async fn connect(&self, id: &str, network: &str, aliases: &[String]) -> Result<()> {
        within(
            || format!("connecting container {id} to network {network}"),
            CALL_TIMEOUT,
            self.docker.connect_network(
                network,
                NetworkConnectRequest {
                    container: id.to_string(),
                    endpoint_config: Some(EndpointSettings {
                        aliases: Some(aliases.to_vec()),
                        ..Default::default()
                    }),
                },
            ),
        )
        .await
    }

    fn usage(&self, id: &str) -> UsageStream {
        let opts = StatsOptionsBuilder::default().stream(true).build();
        let id_owned = id.to_string();
        Box::pin(self.docker.stats(id, Some(opts)).map(move |r| {
            r.map(|s| usage_sample(&s))
                .map_err(|e| Error::engine(format!("reading the usage of container {id_owned}"), e))
        }))
    }

    async fn signal(&self, id: &str, signal: &str) -> Result<()> {
        within(
            || format!("sending {signal} to container {id}"),
            CALL_TIMEOUT,
            self.docker.kill_container(
                id,
                Some(
                    KillContainerOptionsBuilder::default()
                        .signal(signal)
                        .build(),
                ),
            ),
        )
        .await
    }

    fn follow_logs(&self, id: &str) -> LogStream {
        let opts = LogsOptionsBuilder::default()
            .follow(true)
            .stdout(true)
            .stderr(true)
            .build();
        let id_owned = id.to_string();
        let chunks = self.docker.logs(id, Some(opts));
        Box::pin(split_lines(chunks.map_err(move |e| {
            Error::engine(format!("following the output of container {id_owned}"), e)
        })))
    }

    async fn log_tail(&self, id: &str, lines: usize) -> Vec<String> {
        // Podman 4 garbles lines written in several pieces when it reads a log backwards for
        // `tail=N`; there, read everything and keep the last lines instead.
        let mut opts = LogsOptionsBuilder::default().stdout(true).stderr(true);
        if !self.podman {
            opts = opts.tail(&lines.to_string());
        }
        let opts = opts.build();
        let collect = split_lines(
            self.docker
                .logs(id, Some(opts))
                .map_err(|e| Error::engine("reading container output", e)),
        )
        .filter_map(|l| async move { l.ok().map(|l| l.text) })
        .fold(VecDeque::new(), move |mut tail, line| async move {
            tail.push_back(line);
            if tail.len() > lines {
                tail.pop_front();
            }
            tail
        });
        tokio::time::timeout(Duration::from_secs(5), collect)
            .await
            .map(Vec::from)
            .unwrap_or_default()
    }

    async fn exec(
        &self,
        id: &str,
        for_whom: &str,
        cmd: &[String],
        stdin: Option<Vec<u8>>,
        user: Option<&str>,
    ) -> Result<ExecOutput> {
        let command_line = cmd.join(" ");
        let action = || format!("running {command_line:?} in runnable {for_whom}");
        let created = within(
            action,
            CALL_TIMEOUT,
            self.docker.create_exec(
                id,
                CreateExecOptions {
                    attach_stdin: Some(stdin.is_some()),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    cmd: Some(cmd.to_vec()),
                    user: user.map(str::to_string),
                    ..Default::default()
                },
            ),
        )
        .await?;
        let started = within(
            action,
            CALL_TIMEOUT,
            self.docker.start_exec(&created.id, None),
        )
        .await?;
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        if let StartExecResults::Attached {
            mut output,
            mut input,
        } = started
        {
            if let Some(data) = stdin {
                input
                    .write_all(&data)
                    .await
                    .map_err(|e| Error::io(format!("writing stdin of {command_line:?}"), e))?;
                input
                    .shutdown()
                    .await
                    .map_err(|e| Error::io(format!("closing stdin of {command_line:?}"), e))?;
            }
            while let Some(chunk) = output.next().await {
                match chunk.map_err(|e| Error::engine(action(), e))? {
                    LogOutput::StdErr { message } => stderr.extend_from_slice(&message),
                    LogOutput::StdOut { message } | LogOutput::Console { message } => {
                        stdout.extend_from_slice(&message)
                    }
                    LogOutput::StdIn { .. } => {}
                }
            }
        }
        let inspected = within(action, CALL_TIMEOUT, self.docker.inspect_exec(&created.id)).await?;
        Ok(ExecOutput {
            exit_code: inspected.exit_code.unwrap_or(-1),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        })
    }
}

/// cAdvisor's definitions: working set = usage - inactive file pages; RSS = anonymous memory.
fn usage_sample(s: &bollard::models::ContainerStatsResponse) -> UsageSample {
    let mem = s.memory_stats.clone().unwrap_or_default();
    let stats = mem.stats.unwrap_or_default();
    let usage = mem.usage.unwrap_or(0) as f64;
    // cgroup v2 names first, then v1.
    let inactive = stats
        .get("inactive_file")
        .or_else(|| stats.get("total_inactive_file"))
        .copied()
        .unwrap_or(0) as f64;
    let rss = stats
        .get("anon")
        .or_else(|| stats.get("rss"))
        .or_else(|| stats.get("total_rss"))
        .copied()
        .unwrap_or(0) as f64;
    let (rx, tx) = s
        .networks
        .as_ref()
        .map(|n| {
            n.values().fold((0.0, 0.0), |(rx, tx), i| {
                (
                    rx + i.rx_bytes.unwrap_or(0) as f64,
                    tx + i.tx_bytes.unwrap_or(0) as f64,
                )
            })
        })
        .unwrap_or_default();
    let cpu_ns = s
        .cpu_stats
        .as_ref()
        .and_then(|c| c.cpu_usage.as_ref())
        .and_then(|u| u.total_usage)
        .unwrap_or(0);
    UsageSample {
        cpu_seconds: cpu_ns as f64 / 1e9,
        memory_usage_bytes: usage,
        working_set_bytes: (usage - inactive).max(0.0),
        rss_bytes: rss,
        rx_bytes: rx,
        tx_bytes: tx,
    }
}

/// A `docker save` archive (manifest.json, image config, one layer) naming the image
/// `repo:tag`, with the config that `changes` (ENV, ENTRYPOINT, CMD, WORKDIR lines as
/// `docker import --change` takes them) describe.
fn docker_archive(
    repo: &str,
    tag: &str,
    layer: &[u8],
    changes: &[String],
) -> std::result::Result<Vec<u8>, String> {
    use serde_json::{json, Map, Value};
    use sha2::{Digest, Sha256};
    let hex = |data: &[u8]| -> String {
        Sha256::digest(data)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    let mut env = Vec::new();
    let mut config = Map::new();
    let mut labels = Map::new();
    for change in changes {
        let (keyword, arg) = change.split_once(' ').unwrap_or((change.as_str(), ""));
        let exec_form =
            || serde_json::from_str::<Value>(arg).map_err(|e| format!("{keyword} {arg}: {e}"));
        match keyword {
            "ENV" => env.push(Value::from(arg)),
            "WORKDIR" => {
                config.insert("WorkingDir".into(), Value::from(arg));
            }
            "USER" => {
                config.insert("User".into(), Value::from(arg));
            }
            "LABEL" => {
                let (k, v) = arg.split_once('=').unwrap_or((arg, ""));
                labels.insert(k.to_string(), Value::from(v));
            }
            "ENTRYPOINT" => {
                config.insert("Entrypoint".into(), exec_form()?);
            }
            "CMD" => {
                config.insert("Cmd".into(), exec_form()?);
            }
            _ => return Err(format!("unsupported image change {change:?}")),
        }
    }
    config.insert("Env".into(), Value::Array(env));
    if !labels.is_empty() {
        config.insert("Labels".into(), Value::Object(labels));
    }
    let diff_id = hex(layer);
    let image_config = serde_json::to_vec(&json!({
        "architecture": go_arch(),
        "os": "linux",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{diff_id}")]},
    }))
    .map_err(|e| e.to_string())?;
    let config_name = format!("{}.json", hex(&image_config));
    let layer_name = format!("{diff_id}/layer.tar");
    let manifest = serde_json::to_vec(&json!([{
        "Config": config_name,
        "RepoTags": [format!("{repo}:{tag}")],
        "Layers": [layer_name],
    }]))
    .map_err(|e| e.to_string())?;
    let mut archive = tar::Builder::new(Vec::new());
    for (name, data) in [
        (config_name.as_str(), image_config.as_slice()),
        (layer_name.as_str(), layer),
        ("manifest.json", manifest.as_slice()),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        archive
            .append_data(&mut header, name, data)
            .map_err(|e| format!("packing the image archive: {e}"))?;
    }
    archive
        .into_inner()
        .map_err(|e| format!("packing the image archive: {e}"))
}

/// The host's architecture as image configs name it (Go's GOARCH).
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    }
}

fn container_body(spec: &ContainerSpec) -> ContainerCreateBody {
    let port_key = |p: &u16| format!("{p}/tcp");
    let port_bindings = spec
        .ports
        .iter()
        .map(|p| {
            (
                port_key(p),
                Some(vec![PortBinding {
                    // Published on loopback only: scenario services are not for the LAN.
                    host_ip: Some("127.0.0.1".to_string()),
                    host_port: Some(String::new()),
                }]),
            )
        })
        .collect::<HashMap<_, _>>();
    let endpoint = EndpointSettings {
        aliases: Some(spec.aliases.clone()),
        ..Default::default()
    };
    ContainerCreateBody {
        hostname: Some(spec.hostname.clone()),
        user: spec.user.clone(),
        exposed_ports: Some(spec.ports.iter().map(port_key).collect()),
        env: Some(spec.env.clone()),
        cmd: spec.cmd.clone(),
        image: Some(spec.image.clone()),
        entrypoint: spec.entrypoint.clone(),
        labels: Some(spec.labels.clone().into_iter().collect()),
        host_config: Some(HostConfig {
            binds: Some(spec.binds.clone()),
            port_bindings: Some(port_bindings),
            network_mode: Some(spec.network.clone()),
            userns_mode: spec.userns.clone(),
            privileged: Some(spec.privileged),
            cap_add: (!spec.capabilities.is_empty()).then(|| spec.capabilities.clone()),
            memory: spec.memory_bytes,
            nano_cpus: spec.nano_cpus,
            ..Default::default()
        }),
        networking_config: Some(NetworkingConfig {
            endpoints_config: Some(HashMap::from([(spec.network.clone(), endpoint)])),
        }),
        ..Default::default()
    }
}

/// Turns the engine's output chunks into whole lines, per stream.
fn split_lines(
    chunks: impl futures_util::Stream<Item = Result<LogOutput>> + Send + 'static,
) -> impl futures_util::Stream<Item = Result<LogLine>> + Send + 'static {
    let mut pending: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
    let chunks = chunks
        .map(Some)
        .chain(futures_util::stream::once(async { None }));
    chunks.flat_map(move |chunk| {
        let mut lines = Vec::new();
        match chunk {
            Some(Ok(out)) => {
                let (stderr, bytes) = match out {
                    LogOutput::StdErr { message } => (true, message),
                    LogOutput::StdOut { message } | LogOutput::Console { message } => {
                        (false, message)
                    }
                    LogOutput::StdIn { message } => (false, message),
                };
                let buf = &mut pending[usize::from(stderr)];
                buf.extend_from_slice(&bytes);
                while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=pos).collect();
                    lines.push(Ok(LogLine {
                        stderr,
                        text: String::from_utf8_lossy(&line[..line.len() - 1])
                            .trim_end_matches('\r')
                            .to_string(),
                    }));
                }
            }
            Some(Err(e)) => lines.push(Err(e)),
            None => {
                for (i, buf) in pending.iter_mut().enumerate() {
                    if !buf.is_empty() {
                        lines.push(Ok(LogLine {
                            stderr: i == 1,
                            text: String::from_utf8_lossy(buf).to_string(),
                        }));
                        buf.clear();
                    }
                }
            }
        }
        futures_util::stream::iter(lines)
    })
}

#[cfg(test)]
mod tests {
    use super::{docker_archive, split_image};

    #[test]
    fn image_archive_carries_tag_and_every_change() {
        let changes = [
            "ENV PATH=/bin",
            "ENV A=1",
            "ENTRYPOINT [\"/bin/sh\"]",
            "CMD [\"-c\",\"true\"]",
            "WORKDIR /w",
        ]
        .map(String::from);
        let archive = docker_archive("r/x", "t1", b"layer", &changes).unwrap();
        let mut files = std::collections::HashMap::new();
        for entry in tar::Archive::new(archive.as_slice()).entries().unwrap() {
            let mut entry = entry.unwrap();
            let name = entry.path().unwrap().to_string_lossy().into_owned();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
            files.insert(name, data);
        }
        let manifest: serde_json::Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
        assert_eq!(manifest[0]["RepoTags"][0], "r/x:t1");
        let layer = manifest[0]["Layers"][0].as_str().unwrap();
        assert_eq!(files[layer], b"layer");
        let config: serde_json::Value =
            serde_json::from_slice(&files[manifest[0]["Config"].as_str().unwrap()]).unwrap();
        let c = &config["config"];
        assert_eq!(c["Env"], serde_json::json!(["PATH=/bin", "A=1"]));
        assert_eq!(c["Entrypoint"], serde_json::json!(["/bin/sh"]));
        assert_eq!(c["Cmd"], serde_json::json!(["-c", "true"]));
        assert_eq!(c["WorkingDir"], "/w");
        assert!(docker_archive("r/x", "t", b"", &["EXPOSE 80".into()]).is_err());
    }

    #[test]
    fn image_references_split_into_repo_and_tag() {
        assert_eq!(split_image("busybox"), ("busybox", "latest"));
        assert_eq!(split_image("quay.io/p/p:v2"), ("quay.io/p/p", "v2"));
        assert_eq!(
            split_image("localhost:5000/x"),
            ("localhost:5000/x", "latest")
        );
        assert_eq!(split_image("localhost:5000/x:1"), ("localhost:5000/x", "1"));
    }
}
