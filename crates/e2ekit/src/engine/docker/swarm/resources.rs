//! An environment's resources on a swarm: services (its runnables), the overlay network and
//! configs on the manager, volumes on the nodes.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bollard::query_parameters::ListServicesOptionsBuilder;

use super::SwarmBackend;
use crate::engine::docker::calls::{engine_message, within, CALL_TIMEOUT};
use crate::engine::{Labelled, Leftovers, ResourceKind};
use crate::error::Result;
use crate::host::labels;

/// How long the network's removal waits for the nodes to let go of its endpoints.
const NETWORK_RELEASE: Duration = Duration::from_secs(30);

impl SwarmBackend {
    /// Services carrying every one of `filter_labels` (`key` or `key=value`).
    async fn services(&self, filter_labels: Vec<String>) -> Result<Vec<bollard::models::Service>> {
        let label = filter_labels.join(",");
        let filters = HashMap::from([("label".to_string(), filter_labels)]);
        within(
            || format!("listing services labelled {label}"),
            CALL_TIMEOUT,
            self.manager.docker.list_services(Some(
                ListServicesOptionsBuilder::default()
                    .filters(&filters)
                    .build(),
            )),
        )
        .await
    }

    /// Volumes carrying every one of `filter_labels`, on every ready node: (node id, volume).
    async fn node_volumes(
        &self,
        filter_labels: Vec<String>,
    ) -> Result<Vec<(String, bollard::models::Volume)>> {
        let mut found = Vec::new();
        for node in self.ready_nodes().await? {
            let engine = self.node_engine(&node.id).await?;
            for v in engine.labelled_volumes(filter_labels.clone()).await? {
                found.push((node.id.clone(), v));
            }
        }
        Ok(found)
    }

    pub(super) async fn find_environment(&self, env: &str) -> Result<Leftovers> {
        let label = format!("{}={env}", labels::ENV);
        let services = self.services(vec![label.clone()]).await?;
        let (_, networks) = self.manager.list_with_label(vec![label.clone()]).await?;
        let volumes = self.node_volumes(vec![label]).await?;
        let mut found = Leftovers::default();
        let mut owner = |l: Option<&HashMap<String, String>>| {
            if let Some(o) = l.and_then(|l| l.get(labels::OWNER)) {
                found.owners.push(o.clone());
            }
        };
        for s in &services {
            owner(s.spec.as_ref().and_then(|s| s.labels.as_ref()));
        }
        for n in &networks {
            owner(n.labels.as_ref());
        }
        for (_, v) in &volumes {
            owner(Some(&v.labels));
        }
        found.containers = services.into_iter().filter_map(|s| s.id).collect();
        found.networks = networks.into_iter().filter_map(|n| n.name).collect();
        found.volumes = volumes.into_iter().map(|(_, v)| v.name).collect();
        found.owners.sort();
        found.owners.dedup();
        Ok(found)
    }

    pub(super) async fn list_labelled(&self) -> Result<Vec<Labelled>> {
        let services = self.services(vec![labels::ENV.to_string()]).await?;
        let (_, networks) = self
            .manager
            .list_with_label(vec![labels::ENV.to_string()])
            .await?;
        let volumes = self.node_volumes(vec![labels::ENV.to_string()]).await?;
        let entry = |kind, l: Option<&HashMap<String, String>>| {
            let l = l?;
            Some(Labelled {
                kind,
                env: l.get(labels::ENV)?.clone(),
                owner: l.get(labels::OWNER).cloned(),
                created: l.get(labels::CREATED).cloned(),
            })
        };
        let mut all: Vec<Labelled> = services
            .iter()
            .filter_map(|s| {
                entry(
                    ResourceKind::Container,
                    s.spec.as_ref().and_then(|s| s.labels.as_ref()),
                )
            })
            .collect();
        all.extend(
            networks
                .iter()
                .filter_map(|n| entry(ResourceKind::Network, n.labels.as_ref())),
        );
        all.extend(
            volumes
                .iter()
                .filter_map(|(_, v)| entry(ResourceKind::Volume, Some(&v.labels))),
        );
        Ok(all)
    }

    /// Removes `env`'s services (waiting for their containers to go), configs, network and
    /// volumes; with `owner`, only those carrying that owner's label.
    pub(super) async fn remove_environment(
        &self,
        env: &str,
        network: Option<&str>,
        owner: Option<&str>,
    ) -> Result<()> {
        let mut filter = vec![format!("{}={env}", labels::ENV)];
        if let Some(o) = owner {
            filter.push(format!("{}={o}", labels::OWNER));
        }
        let mut first_error = None;
        let services = self.services(filter.clone()).await?;
        let removals = services
            .iter()
            .filter_map(|s| s.spec.as_ref().and_then(|s| s.name.clone()))
            .map(|name| async move { self.remove_service(&name).await });
        for r in futures_util::future::join_all(removals).await {
            if let Err(e) = r {
                first_error.get_or_insert(e);
            }
        }
        if let Err(e) = self.remove_configs(filter.clone()).await {
            first_error.get_or_insert(e);
        }
        let (_, networks) = self.manager.list_with_label(filter.clone()).await?;
        let mut names: Vec<String> = networks.into_iter().filter_map(|n| n.name).collect();
        if let Some(n) = network {
            if owner.is_none() && !names.iter().any(|x| x == n) {
                names.push(n.to_string());
            }
        }
        for n in names {
            if let Err(e) = self.remove_network_when_released(&n).await {
                first_error.get_or_insert(e);
            }
        }
        for (node, v) in self.node_volumes(filter).await? {
            let engine = self.node_engine(&node).await?;
            if let Err(e) = engine.remove_volume(&v.name).await {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Removes overlay network `name`; the nodes release a removed task's endpoint a moment
    /// after its container is gone, so "active endpoints" is retried for a while. The swarm
    /// forgets a network at once, while the manager's engine may list its own copy a moment
    /// longer (and answer "not found" to a removal meanwhile): either way this returns once
    /// the manager's engine no longer lists it.
    async fn remove_network_when_released(&self, name: &str) -> Result<()> {
        let deadline = Instant::now() + NETWORK_RELEASE;
        loop {
            match self.manager.remove_network(name).await {
                Ok(()) => break,
                Err(e) if engine_message(&e).contains("not found") => break,
                Err(e)
                    if Instant::now() < deadline
                        && engine_message(&e).contains("active endpoints") =>
                {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(e),
            }
        }
        while Instant::now() < deadline {
            let listed = self
                .manager
                .docker
                .inspect_network(
                    name,
                    None::<bollard::query_parameters::InspectNetworkOptions>,
                )
                .await;
            match listed {
                Ok(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                Err(_) => break,
            }
        }
        Ok(())
    }
}
