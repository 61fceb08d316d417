//! The Docker Swarm backend: the same scenarios on a multi-host engine.
//!
//! Each runnable becomes a Swarm service with one task, on an attachable overlay network
//! private to the environment (a /26 of its own, like the bridge networks of the Docker
//! backend). The service is named like the container would be (`<env>-<name>`) and uses DNS
//! round robin, so `internal_endpoint` resolves between tasks on any node, before start too.
//! Ports are published in host mode on the node that runs the task: the routing mesh needs
//! IPVS, which not every kernel has, and a task's own node is where its port answers.
//!
//! Swarm has no API for what happens inside a task (exec, logs, stop with a grace period,
//! kill, pause, copies, stats), so those go to the engine of the node running the task, at
//! `tcp://<node address>:<node port>` (2375 unless `Engine::swarm(..).node_port(..)` says
//! otherwise).
//!
//! ```no_run
//! use e2ekit::prelude::*;
//!
//! # async fn demo() -> e2ekit::Result<()> {
//! let env = Environment::builder()
//!     .engine(Engine::swarm("tcp://10.0.0.1:2375"))
//!     .build()
//!     .await?;
//! # let _ = env;
//! # Ok(()) }
//! ```
//!
//! Placement, images and files:
//! - Runnables are placed on the ready nodes in turn, so a scenario of several runnables runs
//!   on several hosts; the service is constrained to that node (its files live there).
//! - Images reach every node without a registry: an image the manager has (a `HostImage`, a
//!   Dockerfile build) is streamed from the manager's engine into each node's engine that
//!   lacks it (`docker save | docker load`); any other image is pulled by the node.
//! - The shared directory is copied, never bind-mounted (a test-host path does not exist on
//!   another host): its content at start goes into a volume on the task's node, mounted at
//!   the same path. Files from `StartOptions::copy` become Swarm configs (read-only files
//!   with their mode and owner).
//! - A partition (`disconnect`) sets the task's overlay interface down from a helper
//!   container sharing its network namespace, and `connect` sets it up again: disconnecting
//!   a task's container from the overlay through its node's engine breaks the service's DNS
//!   name for good.

mod nodes;
mod partition;
mod resources;
mod service;

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;

use super::calls::{within, CALL_TIMEOUT, CONNECT_TIMEOUT};
use super::DockerBackend;
use crate::engine::{
    Backend, BuildRequest, ContainerHealth, ContainerSpec, ExecOutput, ExecRequest, ExitStatus,
    FileEntry, ImageConfig, Labelled, Leftovers, LogLine, LogStream, NetworkInfo, Output,
    StartedContainer, UsageStream,
};
use crate::error::{Error, Result};
use crate::host::fs::lock;
use crate::host::labels;

/// Where node engines listen unless told otherwise.
pub(crate) const DEFAULT_NODE_PORT: u16 = 2375;

/// Which node runs the task whose container has a given id.
type Placements = Arc<Mutex<HashMap<String, String>>>;

/// A Swarm reached through one of its managers.
#[derive(Clone)]
pub(crate) struct SwarmBackend {
    /// The manager's engine: services, networks, configs, nodes, and the images built here.
    manager: DockerBackend,
    node_port: u16,
    /// This host's address as the nodes reach it (containers reach the test process there).
    host_ip: IpAddr,
    /// Container id → node id, shared with reconnected copies of this backend.
    placements: Placements,
    /// Node id → a connection to its engine (one set per copy: connections belong to the
    /// runtime that made them).
    node_engines: Arc<tokio::sync::Mutex<BTreeMap<String, Arc<DockerBackend>>>>,
    /// Node engines connected so far, for the stream calls that cannot wait to connect.
    known_engines: Arc<Mutex<BTreeMap<String, Arc<DockerBackend>>>>,
    /// Round-robin position over the ready nodes, shared by the copies.
    next_node: Arc<std::sync::atomic::AtomicUsize>,
    /// Container id → what Swarm said when its task failed (`task: non-zero exit (1)`,
    /// `starting container failed: ...`), shown after the container's own last lines.
    task_errors: Arc<Mutex<HashMap<String, String>>>,
}

impl std::fmt::Debug for SwarmBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SwarmBackend")
            .field("manager", &self.manager.endpoint)
            .field("node_port", &self.node_port)
            .finish_non_exhaustive()
    }
}

impl SwarmBackend {
    /// Connects to the manager at `endpoint` and checks that it manages an active swarm.
    pub(crate) async fn connect(endpoint: &str, node_port: u16) -> Result<Self> {
        let manager = DockerBackend::connect(Some(endpoint)).await?;
        Self::on(manager, node_port, Arc::default(), Arc::default()).await
    }

    async fn on(
        manager: DockerBackend,
        node_port: u16,
        placements: Placements,
        next_node: Arc<std::sync::atomic::AtomicUsize>,
    ) -> Result<Self> {
        let endpoint = manager.endpoint.clone();
        let not_a_manager = |reason: String| {
            Error::EngineUnreachable {
            endpoint: endpoint.clone(),
            reason: format!(
                "this engine does not manage a swarm ({reason}); point the Swarm engine at a manager (docker swarm init / docker node ls there)"
            ),
        }
        };
        match within(
            || format!("asking {endpoint} about its swarm"),
            CALL_TIMEOUT,
            manager.docker.inspect_swarm(),
        )
        .await
        {
            Ok(_) => {}
            Err(e) => return Err(not_a_manager(super::calls::engine_message(&e).to_string())),
        }
        let host_ip = super::own_address_towards(manager.publish_ip);
        Ok(Self {
            manager,
            node_port,
            host_ip,
            placements,
            node_engines: Arc::default(),
            known_engines: Arc::default(),
            next_node,
            task_errors: Arc::default(),
        })
    }

    /// The engine of the node running container `id`.
    async fn engine_of(&self, id: &str) -> Result<Arc<DockerBackend>> {
        let known = lock(&self.placements).get(id).cloned();
        let node = match known {
            Some(node) => node,
            None => {
                let node = self.find_node_of_container(id).await?;
                lock(&self.placements).insert(id.to_string(), node.clone());
                node
            }
        };
        self.node_engine(&node).await
    }

    /// The node engine of `id` if already connected (for calls that cannot wait).
    fn known_engine_of(&self, id: &str) -> Option<Arc<DockerBackend>> {
        let node = lock(&self.placements).get(id).cloned()?;
        lock(&self.known_engines).get(&node).cloned()
    }

    /// A stream from the node engine of `id`, connecting first when needed.
    fn node_stream<T: Send + 'static>(
        &self,
        id: &str,
        make: impl FnOnce(
                &DockerBackend,
                &str,
            )
                -> std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<T>> + Send>>
            + Send
            + 'static,
    ) -> std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<T>> + Send>> {
        if let Some(engine) = self.known_engine_of(id) {
            return make(&engine, id);
        }
        let this = self.clone();
        let id = id.to_string();
        Box::pin(
            futures_util::stream::once(async move {
                match this.engine_of(&id).await {
                    Ok(engine) => make(&engine, &id),
                    Err(e) => Box::pin(futures_util::stream::iter([Err(e)])),
                }
            })
            .flatten(),
        )
    }
}

#[async_trait::async_trait]
impl Backend for SwarmBackend {
    async fn reconnect(&self) -> Result<Arc<dyn Backend>> {
        let manager = DockerBackend::connect(Some(&self.manager.endpoint)).await?;
        let mut copy = Self::on(
            manager,
            self.node_port,
            self.placements.clone(),
            self.next_node.clone(),
        )
        .await?;
        copy.task_errors = self.task_errors.clone();
        Ok(Arc::new(copy))
    }

    async fn ping(&self) -> Result<()> {
        within(
            || format!("pinging the swarm manager at {}", self.manager.endpoint),
            CONNECT_TIMEOUT,
            self.manager.docker.ping(),
        )
        .await
        .map(drop)
    }

    fn host_addr(&self, _network: &NetworkInfo) -> String {
        self.host_ip.to_string()
    }

    fn removal_hint(&self, env: &str, shared_dir: &Path) -> String {
        let engine = format!("DOCKER_HOST={} ", self.manager.endpoint);
        format!(
            "{engine}docker service rm $({engine}docker service ls -q --filter label={}={env}); {engine}docker network rm {env}; {engine}docker config rm $({engine}docker config ls -q --filter label={}={env}); rm -rf {} (volumes named {env}-* stay on the nodes: docker volume rm them on each)",
            labels::ENV,
            labels::ENV,
            shared_dir.display()
        )
    }

    fn reserved_names(&self) -> &'static [&'static str] {
        &["bridge", "host", "none", "ingress", "docker_gwbridge"]
    }

    async fn create_network(
        &self,
        name: &str,
        labels: BTreeMap<String, String>,
    ) -> Result<NetworkInfo> {
        super::network::create(
            &self.manager.docker,
            name,
            labels,
            super::network::Driver::Overlay,
        )
        .await
    }

    async fn find_environment(&self, env: &str) -> Result<Leftovers> {
        self.find_environment(env).await
    }

    async fn list_labelled(&self) -> Result<Vec<Labelled>> {
        self.list_labelled().await
    }

    async fn heartbeat(&self, owner: &str) -> Result<()> {
        self.manager.heartbeat(owner).await
    }

    async fn heartbeats(&self) -> Result<BTreeMap<String, u64>> {
        self.manager.heartbeats().await
    }

    async fn end_heartbeat(&self, owner: &str) -> Result<()> {
        self.manager.end_heartbeat(owner).await
    }

    async fn remove_environment(&self, env: &str, network: Option<&str>) -> Result<()> {
        self.remove_environment(env, network, None).await
    }

    async fn remove_owned(&self, env: &str, owner: &str) -> Result<()> {
        self.remove_environment(env, None, Some(owner)).await
    }

    async fn ensure_image(&self, image: &str, for_whom: &str) -> Result<()> {
        self.distribute_image(image, for_whom).await
    }

    async fn image_exists(&self, image: &str) -> Result<bool> {
        self.manager.image_exists(image).await
    }

    async fn image_tags(&self, image: &str) -> Result<Option<Vec<String>>> {
        self.manager.image_tags(image).await
    }

    async fn import_image(
        &self,
        repo: &str,
        tag: &str,
        rootfs_tar: Vec<u8>,
        config: &ImageConfig,
    ) -> Result<()> {
        // Into the manager; starts stream it on to the nodes that need it.
        self.manager
            .import_image(repo, tag, rootfs_tar, config)
            .await
    }

    async fn tag_image(&self, image: &str, repo: &str, tag: &str) -> Result<()> {
        self.manager.tag_image(image, repo, tag).await
    }

    async fn push_image(&self, reference: &str) -> Result<()> {
        self.manager.push_image(reference).await
    }

    async fn list_host_images(&self) -> Result<Vec<Vec<String>>> {
        self.manager.list_host_images().await
    }

    async fn untag_image(&self, reference: &str) -> Result<bool> {
        self.manager.untag_image(reference).await
    }

    async fn create_and_start(
        &self,
        spec: &ContainerSpec,
        for_whom: &str,
    ) -> Result<StartedContainer> {
        self.create_service(spec, for_whom).await
    }

    async fn inspect(
        &self,
        id: &str,
        network: Option<&str>,
        for_whom: &str,
    ) -> Result<StartedContainer> {
        self.engine_of(id)
            .await?
            .inspect(id, network, for_whom)
            .await
    }

    async fn wait_exit(&self, id: &str) -> Result<ExitStatus> {
        self.engine_of(id).await?.wait_exit(id).await
    }

    async fn stop(&self, id: &str, grace: Duration) -> Result<()> {
        self.engine_of(id).await?.stop(id, grace).await
    }

    async fn kill(&self, id: &str) -> Result<()> {
        self.engine_of(id).await?.kill(id).await
    }

    async fn remove(&self, id: &str) -> Result<()> {
        self.remove_task(id).await
    }

    async fn pause(&self, id: &str) -> Result<()> {
        self.engine_of(id).await?.pause(id).await
    }

    async fn unpause(&self, id: &str) -> Result<()> {
        self.engine_of(id).await?.unpause(id).await
    }

    async fn disconnect(&self, id: &str, network: &str) -> Result<()> {
        self.set_link(id, network, false).await
    }

    async fn connect(&self, id: &str, network: &str, _aliases: &[String]) -> Result<()> {
        self.set_link(id, network, true).await
    }

    fn follow_logs(&self, id: &str) -> LogStream {
        self.node_stream(id, |engine, id| engine.follow_logs(id))
    }

    fn usage(&self, id: &str) -> UsageStream {
        self.node_stream(id, |engine, id| engine.usage(id))
    }

    async fn signal(&self, id: &str, signal: &str) -> Result<()> {
        self.engine_of(id).await?.signal(id, signal).await
    }

    async fn log_tail(&self, id: &str, lines: usize, max_line: usize) -> Vec<LogLine> {
        let mut tail = match self.engine_of(id).await {
            Ok(engine) => engine.log_tail(id, lines, max_line).await,
            Err(_) => Vec::new(),
        };
        if let Some(reason) = lock(&self.task_errors).get(id) {
            tail.push(LogLine {
                stderr: true,
                text: format!("(swarm: {reason})"),
                cut: 0,
            });
        }
        tail
    }

    async fn exec(&self, id: &str, for_whom: &str, request: &ExecRequest) -> Result<ExecOutput> {
        self.engine_of(id).await?.exec(id, for_whom, request).await
    }

    fn sees_host_files(&self) -> bool {
        false
    }

    async fn copy_in(&self, id: &str, for_whom: &str, entries: &[FileEntry]) -> Result<()> {
        self.engine_of(id)
            .await?
            .copy_in(id, for_whom, entries)
            .await
    }

    async fn copy_out(&self, id: &str, for_whom: &str, path: &str) -> Result<Vec<FileEntry>> {
        self.engine_of(id).await?.copy_out(id, for_whom, path).await
    }

    async fn output(&self, id: &str, for_whom: &str) -> Result<Output> {
        self.engine_of(id).await?.output(id, for_whom).await
    }

    async fn health(&self, id: &str, for_whom: &str) -> Result<ContainerHealth> {
        self.engine_of(id).await?.health(id, for_whom).await
    }

    async fn image_has_health_check(&self, image: &str) -> Result<bool> {
        self.manager.image_has_health_check(image).await
    }

    async fn build_image(&self, request: &BuildRequest) -> Result<()> {
        // Built by the manager's engine; starts stream it on to the nodes.
        self.manager.build_image(request).await
    }
}
