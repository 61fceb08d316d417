//! The environment's labelled resources on the engine: finding, listing and removing them.

use std::collections::{BTreeMap, HashMap};

use bollard::query_parameters::{ListContainersOptionsBuilder, ListNetworksOptionsBuilder};

use super::calls::{already_done, is_not_found, within, CALL_TIMEOUT};
use super::{DockerBackend, Labelled, Leftovers};
use crate::engine::ResourceKind;
use crate::error::Result;
use crate::host::labels;

impl DockerBackend {
    pub(super) async fn remove_network(&self, name: &str) -> Result<()> {
        match within(
            || format!("removing network {name}"),
            CALL_TIMEOUT,
            self.docker.remove_network(name),
        )
        .await
        {
            Err(e) if is_not_found(&e) => Ok(()),
            other => other,
        }
    }

    pub(super) async fn find_environment(&self, env: &str) -> Result<Leftovers> {
        let (containers, networks) = self
            .list_with_label(vec![format!("{}={env}", labels::ENV)])
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
        for v in self
            .labelled_volumes(vec![format!("{}={env}", labels::ENV)])
            .await?
        {
            if let Some(owner) = v.labels.get(labels::OWNER) {
                found.owners.push(owner.clone());
            }
            found.volumes.push(v.name);
        }
        found.owners.sort();
        found.owners.dedup();
        Ok(found)
    }

    pub(super) async fn list_labelled(&self) -> Result<Vec<Labelled>> {
        let (containers, networks) = self.list_with_label(vec![labels::ENV.to_string()]).await?;
        let volumes = self.labelled_volumes(vec![labels::ENV.to_string()]).await?;
        let entry = |kind: ResourceKind, labels: Option<&HashMap<String, String>>| {
            let labels = labels?;
            Some(Labelled {
                kind,
                env: labels.get(labels::ENV)?.clone(),
                owner: labels.get(labels::OWNER).cloned(),
                created: labels.get(labels::CREATED).cloned(),
            })
        };
        Ok(containers
            .iter()
            .filter_map(|c| entry(ResourceKind::Container, c.labels.as_ref()))
            .chain(
                networks
                    .iter()
                    .filter_map(|n| entry(ResourceKind::Network, n.labels.as_ref())),
            )
            .chain(
                volumes
                    .iter()
                    .filter_map(|v| entry(ResourceKind::Volume, Some(&v.labels))),
            )
            .collect())
    }

    pub(super) async fn remove_environment(&self, env: &str, network: Option<&str>) -> Result<()> {
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
        // After the containers: a volume in use cannot be removed.
        for v in found.volumes {
            if let Err(e) = self.remove_volume(&v).await {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Removes the containers and networks of `env` that carry `owner`'s label, and nothing
    /// else (a process of the same name's next run may own the rest).
    pub(super) async fn remove_owned(&self, env: &str, owner: &str) -> Result<()> {
        let (containers, networks) = self
            .list_with_label(vec![
                format!("{}={env}", labels::ENV),
                format!("{}={owner}", labels::OWNER),
            ])
            .await?;
        let removals = containers
            .iter()
            .filter_map(|c| c.id.as_deref())
            .map(|id| self.remove(id));
        let results = futures_util::future::join_all(removals).await;
        let mut first_error = results.into_iter().find_map(|r| r.err());
        for n in networks.iter().filter_map(|n| n.id.as_deref()) {
            if let Err(e) = self.remove_network(n).await {
                first_error.get_or_insert(e);
            }
        }
        let volumes = self
            .labelled_volumes(vec![
                format!("{}={env}", labels::ENV),
                format!("{}={owner}", labels::OWNER),
            ])
            .await?;
        for v in volumes {
            if let Err(e) = self.remove_volume(&v.name).await {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    pub(super) async fn heartbeat(&self, owner: &str) -> Result<()> {
        let now = labels::now_secs();
        let name = format!(
            "e2ekit-alive-{:016x}-{now}",
            crate::host::naming::stable_hash(owner)
        );
        within(
            || format!("recording that {owner} is alive"),
            CALL_TIMEOUT,
            self.docker
                .create_volume(bollard::models::VolumeCreateRequest {
                    name: Some(name.clone()),
                    labels: Some(HashMap::from([
                        (labels::ALIVE.to_string(), owner.to_string()),
                        (labels::CREATED.to_string(), labels::format_rfc3339(now)),
                    ])),
                    ..Default::default()
                }),
        )
        .await?;
        // The older beats of this owner: the new one replaces them.
        for old in self.heartbeat_volumes(Some(owner)).await? {
            if old.name != name {
                let _ = self.remove_volume(&old.name).await;
            }
        }
        Ok(())
    }

    pub(super) async fn heartbeats(&self) -> Result<BTreeMap<String, u64>> {
        let mut latest = BTreeMap::new();
        for v in self.heartbeat_volumes(None).await? {
            let (Some(owner), Some(at)) = (
                v.labels.get(labels::ALIVE),
                v.labels
                    .get(labels::CREATED)
                    .and_then(|c| labels::parse_rfc3339(c)),
            ) else {
                continue;
            };
            let e = latest.entry(owner.clone()).or_insert(at);
            *e = (*e).max(at);
        }
        Ok(latest)
    }

    pub(super) async fn end_heartbeat(&self, owner: &str) -> Result<()> {
        let mut first_error = None;
        for v in self.heartbeat_volumes(Some(owner)).await? {
            if let Err(e) = self.remove_volume(&v.name).await {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Heartbeat volumes, of one owner or all.
    async fn heartbeat_volumes(&self, owner: Option<&str>) -> Result<Vec<bollard::models::Volume>> {
        let label = match owner {
            Some(o) => format!("{}={o}", labels::ALIVE),
            None => labels::ALIVE.to_string(),
        };
        self.labelled_volumes(vec![label]).await
    }

    /// Volumes carrying every one of `labels` (`key` or `key=value`).
    pub(super) async fn labelled_volumes(
        &self,
        labels: Vec<String>,
    ) -> Result<Vec<bollard::models::Volume>> {
        let label = labels.join(",");
        let filters = HashMap::from([("label".to_string(), labels)]);
        let listed = within(
            || format!("listing volumes labelled {label}"),
            CALL_TIMEOUT,
            self.docker.list_volumes(Some(
                bollard::query_parameters::ListVolumesOptionsBuilder::default()
                    .filters(&filters)
                    .build(),
            )),
        )
        .await?;
        Ok(listed.volumes.unwrap_or_default())
    }

    pub(super) async fn remove_volume(&self, name: &str) -> Result<()> {
        already_done(
            within(
                || format!("removing volume {name}"),
                CALL_TIMEOUT,
                self.docker
                    .remove_volume(name, None::<bollard::query_parameters::RemoveVolumeOptions>),
            )
            .await,
            &[],
        )
    }

    /// Containers (running or not) and networks carrying every one of `labels` (`key` or
    /// `key=value`).
    pub(super) async fn list_with_label(
        &self,
        labels: Vec<String>,
    ) -> Result<(
        Vec<bollard::models::ContainerSummary>,
        Vec<bollard::models::Network>,
    )> {
        let label = labels.join(",");
        let filters = HashMap::from([("label".to_string(), labels)]);
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
}
