//! One runnable, one service: creating it from a [`ContainerSpec`], waiting for its task to
//! run, and removing it with everything it brought (configs, its shared-dir volume).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bollard::models::{
    ConfigSpec, EndpointPortConfig, EndpointPortConfigPublishModeEnum, EndpointSpec,
    EndpointSpecModeEnum, Limit, Mount, MountTmpfsOptions, MountType, NetworkAttachmentConfig,
    ResourcesUlimits, ServiceSpec, ServiceSpecMode, ServiceSpecModeReplicated, TaskSpec,
    TaskSpecContainerSpec, TaskSpecContainerSpecConfigs, TaskSpecContainerSpecFile1,
    TaskSpecPlacement, TaskSpecResources, TaskSpecRestartPolicy,
    TaskSpecRestartPolicyConditionEnum, TaskState,
};
use bollard::query_parameters::{ListConfigsOptionsBuilder, ListTasksOptionsBuilder};

use super::nodes::is_final;
use super::SwarmBackend;
use crate::engine::docker::calls::{is_not_found, within, CALL_TIMEOUT};
use crate::engine::docker::DockerBackend;
use crate::engine::{ContainerSpec, EntryKind, ExitStatus, FileEntry, StartedContainer};
use crate::error::{Error, Result};
use crate::host::fs::lock;
use crate::host::labels;

/// Label on the configs and volumes a service brought, naming the service.
const SERVICE_LABEL: &str = "e2ekit.swarm.service";
/// How long a task may take to run (images are on the node already by then).
const TASK_START: Duration = Duration::from_secs(120);
/// Swarm refuses configs larger than this.
const MAX_CONFIG_BYTES: usize = 500 * 1024;

impl SwarmBackend {
    pub(super) async fn create_service(
        &self,
        spec: &ContainerSpec,
        for_whom: &str,
    ) -> Result<StartedContainer> {
        unsupported(spec, for_whom)?;
        let volumes: Vec<String> = spec.volumes.iter().map(|v| v.name.clone()).collect();
        let node = self.pick_node(&volumes).await?;
        let engine = self.node_engine(&node.id).await?;
        // A service of that name left by an earlier run of this runnable: replace it.
        if self.service_exists(&spec.name).await? {
            self.remove_service(&spec.name).await?;
        }
        let made = self.prepare(spec, &engine, for_whom).await;
        let (mounts, configs) = match made {
            Ok(m) => m,
            Err(e) => {
                let _ = self.remove_service_resources(&spec.name, &engine).await;
                return Err(e);
            }
        };
        let service = service_spec(spec, &node.id, mounts, configs);
        let created = within(
            || format!("creating service {} for runnable {for_whom}", spec.name),
            CALL_TIMEOUT,
            self.manager.docker.create_service(service, None),
        )
        .await;
        if let Err(e) = created {
            let _ = self.remove_service_resources(&spec.name, &engine).await;
            return Err(e);
        }
        match self.wait_for_task(&spec.name, for_whom).await {
            Ok((container, exited)) => {
                lock(&self.placements).insert(container.clone(), node.id.clone());
                if exited.is_none() {
                    self.until_started(&engine, &container, for_whom).await?;
                }
                let mut started = engine
                    .inspect(&container, spec.network.as_deref(), for_whom)
                    .await?;
                if started.exited.is_none() {
                    started.exited = exited;
                }
                if started.exited.is_some() {
                    self.remember_why_it_ended(&engine, &container).await;
                }
                Ok(started)
            }
            Err(e) => {
                let _ = self.remove_service(&spec.name).await;
                let _ = self.remove_service_resources(&spec.name, &engine).await;
                Err(e)
            }
        }
    }

    /// Waits until the service's task runs (or ran and exited: its container is returned
    /// with the exit). A task that never got a container is an error with Swarm's reason.
    async fn wait_for_task(
        &self,
        service: &str,
        for_whom: &str,
    ) -> Result<(String, Option<ExitStatus>)> {
        let filters = HashMap::from([("service".to_string(), vec![service.to_string()])]);
        let started = Instant::now();
        let mut pause = Duration::from_millis(5);
        loop {
            let tasks = within(
                || format!("listing the task of service {service} for runnable {for_whom}"),
                CALL_TIMEOUT,
                self.manager.docker.list_tasks(Some(
                    ListTasksOptionsBuilder::default().filters(&filters).build(),
                )),
            )
            .await?;
            if let Some(task) = tasks.into_iter().next() {
                let status = task.status.unwrap_or_default();
                let container = status
                    .container_status
                    .as_ref()
                    .and_then(|c| c.container_id.clone())
                    .filter(|c| !c.is_empty());
                let state = status.state.unwrap_or(TaskState::NEW);
                match (state, container) {
                    // STARTING: the container runs, and Swarm waits for its health check
                    // before calling it running; readiness is the probe's to judge.
                    (TaskState::RUNNING | TaskState::STARTING, Some(id)) => return Ok((id, None)),
                    (state, Some(id)) if is_final(state) => {
                        if let Some(reason) = status.err.clone().or(status.message.clone()) {
                            lock(&self.task_errors).insert(id.clone(), reason);
                        }
                        let code = status
                            .container_status
                            .and_then(|c| c.exit_code)
                            .unwrap_or(-1);
                        return Ok((id, Some(ExitStatus::code(code))));
                    }
                    (state, None) if is_final(state) => {
                        let reason = status.err.or(status.message).unwrap_or_default();
                        return Err(task_failed(service, for_whom, &reason));
                    }
                    _ => {}
                }
            }
            if started.elapsed() > TASK_START {
                return Err(Error::EngineTimeout {
                    action: format!(
                        "waiting for the task of service {service} (runnable {for_whom}) to run"
                    ),
                    after: TASK_START,
                });
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(200));
        }
    }

    /// Waits (bounded) until container `id` left the `created` state: a task Swarm calls
    /// `starting` may still be between create and start on its node.
    async fn until_started(&self, engine: &DockerBackend, id: &str, for_whom: &str) -> Result<()> {
        let started = Instant::now();
        loop {
            let info = within(
                || format!("inspecting container {id} of runnable {for_whom}"),
                CALL_TIMEOUT,
                engine.docker.inspect_container(id, None),
            )
            .await?;
            let status = info.state.and_then(|s| s.status);
            if status != Some(bollard::models::ContainerStateStatusEnum::CREATED) {
                return Ok(());
            }
            if started.elapsed() > TASK_START {
                return Err(Error::EngineTimeout {
                    action: format!("waiting for container {id} of runnable {for_whom} to start"),
                    after: TASK_START,
                });
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Keeps what the engine and Swarm said about a container that ended at once (its
    /// `State.Error`, the task's error), for the error's output lines.
    async fn remember_why_it_ended(&self, engine: &DockerBackend, id: &str) {
        let engine_said = engine
            .docker
            .inspect_container(id, None)
            .await
            .ok()
            .and_then(|i| i.state)
            .and_then(|s| s.error)
            .filter(|e| !e.is_empty());
        if let Some(reason) = engine_said {
            lock(&self.task_errors)
                .entry(id.to_string())
                .and_modify(|r| *r = format!("{r}; {reason}"))
                .or_insert(reason);
        }
    }

    /// Makes what the service mounts: the environment's volumes and the shared directory's
    /// copy on the node, and configs for the copied files.
    async fn prepare(
        &self,
        spec: &ContainerSpec,
        engine: &DockerBackend,
        for_whom: &str,
    ) -> Result<(Vec<Mount>, Vec<TaskSpecContainerSpecConfigs>)> {
        let mut volume_labels: HashMap<String, String> = spec.labels.clone().into_iter().collect();
        volume_labels.remove(labels::RUNNABLE);
        let mut mounts = Vec::new();
        for v in &spec.volumes {
            engine
                .create_labelled_volume(&v.name, &volume_labels, for_whom)
                .await?;
            mounts.push(Mount {
                target: Some(v.target.clone()),
                source: Some(v.name.clone()),
                typ: Some(MountType::VOLUME),
                read_only: Some(v.read_only),
                ..Default::default()
            });
        }
        if let Some((path, entries)) = &spec.shared_dir {
            let volume = format!("{}-shared", spec.name);
            let mut labels = volume_labels.clone();
            labels.insert(SERVICE_LABEL.to_string(), spec.name.clone());
            engine
                .create_labelled_volume(&volume, &labels, for_whom)
                .await?;
            engine
                .fill_volume(&spec.image, &volume, path, entries, &labels, for_whom)
                .await?;
            mounts.push(Mount {
                target: Some(path.clone()),
                source: Some(volume),
                typ: Some(MountType::VOLUME),
                ..Default::default()
            });
        }
        for (path, size) in &spec.tmpfs {
            mounts.push(tmpfs(path, size.map(|s| s as i64)));
        }
        if let Some(bytes) = spec.shm_size {
            mounts.push(tmpfs("/dev/shm", Some(bytes)));
        }
        let mut configs = Vec::new();
        for (i, file) in spec.files.iter().enumerate() {
            let data = match &file.kind {
                EntryKind::File(data) => data,
                // Parents of config files are made by the engine.
                EntryKind::Dir => continue,
                EntryKind::Symlink(_) => {
                    return Err(copy_unsupported(
                        for_whom,
                        file,
                        "a symlink cannot be a swarm config",
                    ))
                }
            };
            if data.len() > MAX_CONFIG_BYTES {
                return Err(copy_unsupported(
                    for_whom,
                    file,
                    "swarm configs hold at most 500 KiB; build it into the image instead",
                ));
            }
            let name = format!("{}-f{i}-{:x}", spec.name, labels::now_secs());
            let mut labels = volume_labels.clone();
            labels.insert(SERVICE_LABEL.to_string(), spec.name.clone());
            let created = within(
                || format!("creating a config for {} of runnable {for_whom}", file.path),
                CALL_TIMEOUT,
                self.manager.docker.create_config(ConfigSpec {
                    name: Some(name.clone()),
                    labels: Some(labels),
                    data: Some(base64_encode(data)),
                    ..Default::default()
                }),
            )
            .await?;
            configs.push(TaskSpecContainerSpecConfigs {
                file: Some(TaskSpecContainerSpecFile1 {
                    name: Some(file.path.clone()),
                    uid: Some(file.uid.to_string()),
                    gid: Some(file.gid.to_string()),
                    mode: Some(file.mode),
                }),
                config_id: Some(created.id),
                config_name: Some(name),
                ..Default::default()
            });
        }
        Ok((mounts, configs))
    }

    async fn service_exists(&self, name: &str) -> Result<bool> {
        match within(
            || format!("inspecting service {name}"),
            CALL_TIMEOUT,
            self.manager.docker.inspect_service(name, None),
        )
        .await
        {
            Ok(_) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Removes service `name` and waits until its containers are gone from the nodes.
    pub(super) async fn remove_service(&self, name: &str) -> Result<()> {
        let containers = self.task_containers(name).await.unwrap_or_default();
        match within(
            || format!("removing service {name}"),
            CALL_TIMEOUT,
            self.manager.docker.delete_service(name),
        )
        .await
        {
            Ok(()) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(e),
        }
        for (node, container) in containers {
            let engine = self.node_engine(&node).await?;
            remove_now(&engine, &container).await;
            lock(&self.placements).remove(&container);
        }
        Ok(())
    }

    /// Node and container of every task of service `name` that got a container.
    async fn task_containers(&self, name: &str) -> Result<Vec<(String, String)>> {
        let filters = HashMap::from([("service".to_string(), vec![name.to_string()])]);
        let tasks = within(
            || format!("listing the tasks of service {name}"),
            CALL_TIMEOUT,
            self.manager.docker.list_tasks(Some(
                ListTasksOptionsBuilder::default().filters(&filters).build(),
            )),
        )
        .await?;
        Ok(tasks
            .into_iter()
            .filter_map(|t| {
                let container = t.status?.container_status?.container_id?;
                Some((t.node_id?, container))
            })
            .collect())
    }

    /// The configs and the shared-dir volume service `name` brought.
    async fn remove_service_resources(&self, name: &str, engine: &DockerBackend) -> Result<()> {
        self.remove_configs(vec![format!("{SERVICE_LABEL}={name}")])
            .await?;
        let volume = format!("{name}-shared");
        engine.remove_volume(&volume).await
    }

    /// Removes the configs carrying every one of `filter_labels` (`key` or `key=value`).
    pub(super) async fn remove_configs(&self, filter_labels: Vec<String>) -> Result<()> {
        let label = filter_labels.join(",");
        let filters = HashMap::from([("label".to_string(), filter_labels)]);
        let configs = within(
            || format!("listing configs labelled {label}"),
            CALL_TIMEOUT,
            self.manager.docker.list_configs(Some(
                ListConfigsOptionsBuilder::default()
                    .filters(&filters)
                    .build(),
            )),
        )
        .await?;
        for c in configs.into_iter().filter_map(|c| c.id) {
            match within(
                || format!("removing config {c}"),
                CALL_TIMEOUT,
                self.manager.docker.delete_config(&c),
            )
            .await
            {
                Ok(()) => {}
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Removes the service whose task runs container `id`, and what it brought.
    pub(super) async fn remove_task(&self, id: &str) -> Result<()> {
        let engine = match self.engine_of(id).await {
            Ok(engine) => engine,
            // No task runs it any more: its service is gone already.
            Err(_) => return Ok(()),
        };
        let service = match within(
            || format!("inspecting container {id}"),
            CALL_TIMEOUT,
            engine.docker.inspect_container(id, None),
        )
        .await
        {
            Ok(info) => info
                .config
                .and_then(|c| c.labels)
                .and_then(|l| l.get("com.docker.swarm.service.name").cloned()),
            Err(e) if is_not_found(&e) => None,
            Err(e) => return Err(e),
        };
        if let Some(service) = service {
            self.remove_service(&service).await?;
            self.remove_service_resources(&service, &engine).await?;
        }
        lock(&self.placements).remove(id);
        Ok(())
    }
}

/// The service for `spec`: one task, on `node`, never restarted by Swarm (a crash is the
/// test's to see), DNS round robin, ports published on the task's node.
fn service_spec(
    spec: &ContainerSpec,
    node: &str,
    mounts: Vec<Mount>,
    configs: Vec<TaskSpecContainerSpecConfigs>,
) -> ServiceSpec {
    let labels: HashMap<String, String> = spec.labels.clone().into_iter().collect();
    let ports = spec
        .ports
        .iter()
        .map(|p| EndpointPortConfig {
            protocol: Some(bollard::models::EndpointPortConfigProtocolEnum::TCP),
            target_port: Some(i64::from(*p)),
            published_port: spec.host_ports.get(p).map(|h| i64::from(*h)),
            publish_mode: Some(EndpointPortConfigPublishModeEnum::HOST),
            ..Default::default()
        })
        .collect();
    let container = TaskSpecContainerSpec {
        image: Some(spec.image.clone()),
        labels: Some(labels.clone()),
        command: spec.entrypoint.clone(),
        args: spec.cmd.clone(),
        hostname: Some(spec.hostname.clone()),
        env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        dir: spec.working_dir.clone(),
        user: spec.user.clone(),
        read_only: spec.read_only_rootfs.then_some(true),
        mounts: Some(mounts),
        hosts: Some(
            spec.extra_hosts
                .iter()
                .map(|(host, ip)| format!("{ip} {host}"))
                .collect(),
        ),
        configs: (!configs.is_empty()).then_some(configs),
        capability_add: (!spec.capabilities.is_empty()).then(|| spec.capabilities.clone()),
        ulimits: (!spec.ulimits.is_empty()).then(|| {
            spec.ulimits
                .iter()
                .map(|u| ResourcesUlimits {
                    name: Some(u.name.clone()),
                    soft: Some(u.soft),
                    hard: Some(u.hard),
                })
                .collect()
        }),
        health_check: crate::engine::docker::health::health_config(spec),
        ..Default::default()
    };
    let mut constraints = vec![format!("node.id=={node}")];
    if let Some(platform) = &spec.platform {
        let mut parts = platform.split('/');
        if let (Some(os), Some(arch)) = (parts.next(), parts.next()) {
            constraints.push(format!("node.platform.os=={os}"));
            constraints.push(format!("node.platform.arch=={}", swarm_arch(arch)));
        }
    }
    ServiceSpec {
        name: Some(spec.name.clone()),
        labels: Some(labels),
        task_template: Some(TaskSpec {
            container_spec: Some(container),
            resources: Some(TaskSpecResources {
                limits: Some(Limit {
                    nano_cpus: spec.nano_cpus,
                    memory_bytes: spec.memory_bytes,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            restart_policy: Some(TaskSpecRestartPolicy {
                condition: Some(TaskSpecRestartPolicyConditionEnum::NONE),
                ..Default::default()
            }),
            placement: Some(TaskSpecPlacement {
                constraints: Some(constraints),
                ..Default::default()
            }),
            networks: spec.network.as_ref().map(|n| {
                vec![NetworkAttachmentConfig {
                    target: Some(n.clone()),
                    aliases: Some(spec.aliases.clone()),
                    ..Default::default()
                }]
            }),
            ..Default::default()
        }),
        mode: Some(ServiceSpecMode {
            replicated: Some(ServiceSpecModeReplicated { replicas: Some(1) }),
            ..Default::default()
        }),
        endpoint_spec: Some(EndpointSpec {
            mode: Some(EndpointSpecModeEnum::DNSRR),
            ports: Some(ports),
        }),
        ..Default::default()
    }
}

/// Docker's platform architecture names as Swarm reports nodes' (`uname -m`).
fn swarm_arch(arch: &str) -> &str {
    match arch {
        "amd64" => "x86_64",
        "arm64" => "aarch64",
        other => other,
    }
}

/// Refuses what a swarm service cannot do, before anything is created.
fn unsupported(spec: &ContainerSpec, for_whom: &str) -> Result<()> {
    let refuse = |what: &str| {
        Err(Error::InvalidArgument(format!(
            "runnable {for_whom:?}: {what} is not supported on a Docker Swarm (services cannot ask for it)"
        )))
    };
    if spec.privileged {
        return refuse("a privileged container");
    }
    if spec.userns.is_some() {
        return refuse("a user namespace mode");
    }
    if !spec.mounts.is_empty() {
        return refuse("a bind mount of a test-host path");
    }
    if spec.extra_hosts.iter().any(|(_, ip)| ip == "host-gateway") {
        return refuse("the extra host address host-gateway");
    }
    Ok(())
}

fn tmpfs(path: &str, size: Option<i64>) -> Mount {
    Mount {
        target: Some(path.to_string()),
        typ: Some(MountType::TMPFS),
        tmpfs_options: Some(MountTmpfsOptions {
            size_bytes: size,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Removes a removed service's container from its node now: the node's agent would too,
/// but only when it gets round to it (seconds to tens of seconds for an exited task), and
/// the overlay network cannot go before its endpoints do. Racing the agent is fine: the
/// removal waits for one in progress and takes "gone" for done.
async fn remove_now(engine: &DockerBackend, id: &str) {
    let _ = engine.remove(id).await;
}

fn task_failed(service: &str, for_whom: &str, reason: &str) -> Error {
    if reason.contains("No such image") || reason.contains("not found") {
        return Error::ImageNotFound {
            runnable: for_whom.to_string(),
            image: service.to_string(),
            reason: reason.to_string(),
        };
    }
    Error::Unexpected(format!(
        "the swarm did not run the task of service {service} (runnable {for_whom:?}): {reason}"
    ))
}

fn copy_unsupported(for_whom: &str, file: &FileEntry, why: &str) -> Error {
    Error::Copy {
        runnable: for_whom.to_string(),
        what: format!("into {}", file.path),
        reason: why.to_string(),
        source: None,
    }
}

/// Standard base64 with padding (Swarm configs carry their data so).
fn base64_encode(data: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(TABLE[(n >> 18) as usize & 63] as char);
        out.push(TABLE[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 {
            TABLE[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if chunk.len() > 2 {
            TABLE[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_standard_alphabet_and_padding() {
        assert_eq!(base64_encode(b""), "");
        assert_eq!(base64_encode(b"f"), "Zg==");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
        assert_eq!(base64_encode(b"foo"), "Zm9v");
        assert_eq!(base64_encode(b"foobar\n"), "Zm9vYmFyCg==");
    }

    #[test]
    fn a_service_runs_one_task_on_its_node_with_host_ports_and_dns_round_robin() {
        let spec = ContainerSpec {
            name: "env-app".into(),
            hostname: "app".into(),
            aliases: vec!["app".into()],
            image: "img:1".into(),
            ports: vec![80, 9090],
            host_ports: [(80, 18080)].into_iter().collect(),
            network: Some("env".into()),
            platform: Some("linux/amd64".into()),
            ..Default::default()
        };
        let service = service_spec(&spec, "node-1", Vec::new(), Vec::new());
        let endpoint = service.endpoint_spec.expect("endpoint spec");
        assert_eq!(endpoint.mode, Some(EndpointSpecModeEnum::DNSRR));
        let ports = endpoint.ports.expect("ports");
        assert_eq!(ports.len(), 2);
        assert!(ports
            .iter()
            .all(|p| p.publish_mode == Some(EndpointPortConfigPublishModeEnum::HOST)));
        assert_eq!(ports[0].published_port, Some(18080));
        assert_eq!(ports[1].published_port, None);
        let task = service.task_template.expect("task");
        let constraints = task
            .placement
            .and_then(|p| p.constraints)
            .expect("constraints");
        assert_eq!(
            constraints,
            [
                "node.id==node-1",
                "node.platform.os==linux",
                "node.platform.arch==x86_64"
            ]
        );
        assert_eq!(
            task.restart_policy.and_then(|r| r.condition),
            Some(TaskSpecRestartPolicyConditionEnum::NONE)
        );
        let nets = task.networks.expect("networks");
        assert_eq!(nets[0].target.as_deref(), Some("env"));
        assert_eq!(nets[0].aliases.as_deref(), Some(&["app".to_string()][..]));
    }

    #[test]
    fn what_a_service_cannot_do_is_refused_by_name() {
        let privileged = ContainerSpec {
            privileged: true,
            ..Default::default()
        };
        let err = unsupported(&privileged, "app").expect_err("refused");
        assert!(err.to_string().contains("privileged"), "{err}");
        let bind = ContainerSpec {
            mounts: vec![crate::engine::Mount::same_path(std::path::Path::new(
                "/tmp",
            ))],
            ..Default::default()
        };
        assert!(unsupported(&bind, "app").is_err());
    }
}
