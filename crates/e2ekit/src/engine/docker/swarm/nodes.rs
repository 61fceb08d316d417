//! The swarm's nodes: which are ready, their engines, where a container runs, and getting
//! images onto them.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bollard::models::{NodeSpecAvailabilityEnum, NodeState, TaskState};
use bollard::query_parameters::{ImportImageOptionsBuilder, ListTasksOptionsBuilder};
use futures_util::StreamExt;

use super::SwarmBackend;
use crate::engine::docker::calls::{within, CALL_TIMEOUT};
use crate::engine::docker::DockerBackend;
use crate::error::{Error, Result};
use crate::host::fs::lock;

/// A node that takes tasks.
#[derive(Debug, Clone)]
pub(super) struct ReadyNode {
    pub id: String,
}

impl SwarmBackend {
    /// The nodes that are ready and active, in a stable order.
    pub(super) async fn ready_nodes(&self) -> Result<Vec<ReadyNode>> {
        let nodes = within(
            || {
                format!(
                    "listing the nodes of the swarm at {}",
                    self.manager.endpoint
                )
            },
            CALL_TIMEOUT,
            self.manager
                .docker
                .list_nodes(None::<bollard::query_parameters::ListNodesOptions>),
        )
        .await?;
        let mut ready: Vec<ReadyNode> = nodes
            .into_iter()
            .filter(|n| {
                let status = n.status.as_ref();
                let active = n
                    .spec
                    .as_ref()
                    .and_then(|s| s.availability)
                    .is_none_or(|a| a == NodeSpecAvailabilityEnum::ACTIVE);
                active && status.and_then(|s| s.state) == Some(NodeState::READY)
            })
            .filter_map(|n| Some(ReadyNode { id: n.id? }))
            .collect();
        ready.sort_by(|a, b| a.id.cmp(&b.id));
        if ready.is_empty() {
            return Err(Error::Unexpected(format!(
                "the swarm at {} has no ready, active node to run tasks on",
                self.manager.endpoint
            )));
        }
        Ok(ready)
    }

    /// The node for a task that mounts `volumes`: the one that has the first of them already
    /// (an environment's volume lives on one node, and runnables naming it share it there),
    /// else the next node in turn, so the runnables of a scenario spread over the nodes.
    pub(super) async fn pick_node(&self, volumes: &[String]) -> Result<ReadyNode> {
        let nodes = self.ready_nodes().await?;
        for volume in volumes {
            for node in &nodes {
                let engine = self.node_engine(&node.id).await?;
                let found = engine.docker.inspect_volume(volume).await.is_ok();
                if found {
                    return Ok(node.clone());
                }
            }
        }
        let turn = self.next_node.fetch_add(1, Ordering::Relaxed);
        Ok(nodes[turn % nodes.len()].clone())
    }

    /// A connection to the engine of node `node_id`.
    pub(super) async fn node_engine(&self, node_id: &str) -> Result<Arc<DockerBackend>> {
        let mut engines = self.node_engines.lock().await;
        if let Some(engine) = engines.get(node_id) {
            return Ok(engine.clone());
        }
        let node = within(
            || format!("inspecting swarm node {node_id}"),
            CALL_TIMEOUT,
            self.manager.docker.inspect_node(node_id),
        )
        .await?;
        let addr = node
            .status
            .and_then(|s| s.addr)
            .ok_or_else(|| Error::Unexpected(format!("swarm node {node_id} has no address")))?;
        let endpoint = format!("tcp://{}:{}", host_for_url(&addr), self.node_port);
        let engine = Arc::new(DockerBackend::connect(Some(&endpoint)).await.map_err(|e| {
            Error::EngineUnreachable {
                endpoint: endpoint.clone(),
                reason: format!(
                    "the engine of swarm node {node_id} does not answer there ({}); e2ekit runs exec, logs, stop and copies through each node's engine: make it listen on tcp port {} of the node, or set the port with Engine::swarm(..).node_port(..)",
                    e.report(),
                    self.node_port
                ),
            }
        })?);
        engines.insert(node_id.to_string(), engine.clone());
        lock(&self.known_engines).insert(node_id.to_string(), engine.clone());
        Ok(engine)
    }

    /// Asks the swarm which node runs container `id` (its task says).
    pub(super) async fn find_node_of_container(&self, id: &str) -> Result<String> {
        let filters: HashMap<String, Vec<String>> = HashMap::new();
        let tasks = within(
            || format!("finding the task of container {id}"),
            CALL_TIMEOUT,
            self.manager.docker.list_tasks(Some(
                ListTasksOptionsBuilder::default().filters(&filters).build(),
            )),
        )
        .await?;
        tasks
            .into_iter()
            .find(|t| {
                t.status
                    .as_ref()
                    .and_then(|s| s.container_status.as_ref())
                    .and_then(|c| c.container_id.as_deref())
                    == Some(id)
            })
            .and_then(|t| t.node_id)
            .ok_or_else(|| {
                Error::Unexpected(format!(
                    "no task of the swarm runs container {id} (its service was removed)"
                ))
            })
    }

    /// Makes `image` present on every ready node: streamed from the manager's engine when it
    /// has it (host images and Dockerfile builds are made there), pulled by the node otherwise.
    pub(super) async fn distribute_image(&self, image: &str, for_whom: &str) -> Result<()> {
        let on_manager = self.manager.image_exists(image).await?;
        let nodes = self.ready_nodes().await?;
        let copies = nodes.iter().map(|node| async move {
            let engine = self.node_engine(&node.id).await?;
            if engine.image_exists(image).await? {
                return Ok(());
            }
            if on_manager {
                self.copy_image(image, &engine, for_whom).await
            } else {
                engine.ensure_image(image, for_whom).await
            }
        });
        for result in futures_util::future::join_all(copies).await {
            result?;
        }
        Ok(())
    }

    /// `docker save` on the manager piped into `docker load` on `engine`.
    async fn copy_image(&self, image: &str, engine: &DockerBackend, for_whom: &str) -> Result<()> {
        tracing::info!(image, node = %engine.endpoint, runnable = for_whom, "loading image into a swarm node");
        let saved = self.manager.docker.export_image(image);
        let mut loading = engine.docker.import_image_stream(
            ImportImageOptionsBuilder::default().quiet(true).build(),
            saved,
            None,
        );
        let failed = |reason: String| Error::ImageBuild {
            image: image.to_string(),
            reason: format!(
                "loading it into the swarm node at {} for runnable {for_whom:?}: {reason}",
                engine.endpoint
            ),
        };
        loop {
            match tokio::time::timeout(CALL_TIMEOUT, loading.next()).await {
                Ok(None) => return Ok(()),
                Ok(Some(Ok(info))) => {
                    if let Some(e) = info.error_detail.and_then(|d| d.message) {
                        return Err(failed(e));
                    }
                }
                Ok(Some(Err(e))) => return Err(failed(e.to_string())),
                Err(_) => return Err(failed(format!("no progress for {CALL_TIMEOUT:?}"))),
            }
        }
    }
}

/// `addr` ready to go into a URL (IPv6 in brackets).
fn host_for_url(addr: &str) -> String {
    if addr.contains(':') && !addr.starts_with('[') {
        format!("[{addr}]")
    } else {
        addr.to_string()
    }
}

/// Whether a task in `state` will never run (any more).
pub(super) fn is_final(state: TaskState) -> bool {
    matches!(
        state,
        TaskState::COMPLETE
            | TaskState::SHUTDOWN
            | TaskState::FAILED
            | TaskState::REJECTED
            | TaskState::REMOVE
            | TaskState::ORPHANED
    )
}
