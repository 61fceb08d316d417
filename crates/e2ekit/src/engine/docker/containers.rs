//! Containers: create and start, inspect what the test process can reach, wait for the
//! exit, stop, kill, remove, pause, signal, and network partitions.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bollard::models::{
    ContainerCreateBody, EndpointSettings, HostConfig, NetworkConnectRequest,
    NetworkDisconnectRequest, NetworkingConfig, PortBinding, ResourcesUlimits,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, KillContainerOptionsBuilder, RemoveContainerOptionsBuilder,
    StopContainerOptionsBuilder, WaitContainerOptionsBuilder,
};
use futures_util::StreamExt;

use super::calls::{
    already_done, bollard_error, engine_message, is_not_found, is_undecodable, status_code, within,
    CALL_TIMEOUT,
};
use super::{ContainerSpec, DockerBackend, ExitStatus, StartedContainer};
use crate::error::{Error, Result};

impl DockerBackend {
    pub(super) async fn create_and_start(
        &self,
        spec: &ContainerSpec,
        for_whom: &str,
    ) -> Result<StartedContainer> {
        let bind_ip = self.bind_ip();
        match self.create_and_start_on(spec, for_whom, &bind_ip).await {
            // A remote engine reached through an address its host does not own (NAT, a
            // forwarded port): the engine cannot listen there, so publish on every address
            // of its host instead, as before, and remember it for this connection.
            Err(e)
                if !self.local
                    && engine_message(&e).contains("cannot assign requested address") =>
            {
                tracing::warn!(
                    engine = %self.endpoint,
                    address = %bind_ip,
                    "the engine's host does not own the address it is reached at; publishing ports on all its addresses"
                );
                self.bind_any
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                self.create_and_start_on(spec, for_whom, "0.0.0.0").await
            }
            other => other,
        }
    }

    /// The address published ports bind to: loopback for a local engine, the address the
    /// test process reaches a remote engine at (so they are not open on the engine host's
    /// other interfaces), or every address where the engine cannot bind that one.
    fn bind_ip(&self) -> String {
        if self.local {
            "127.0.0.1".to_string()
        } else if self.bind_any.load(std::sync::atomic::Ordering::Relaxed) {
            "0.0.0.0".to_string()
        } else {
            self.publish_ip.to_string()
        }
    }

    async fn create_and_start_on(
        &self,
        spec: &ContainerSpec,
        for_whom: &str,
        bind_ip: &str,
    ) -> Result<StartedContainer> {
        let mut body = container_body(spec, bind_ip);
        self.create_volumes(spec, for_whom).await?;
        if let Some(shared) = self.shared_dir_volume(spec, for_whom).await? {
            if let Some(binds) = body.host_config.as_mut().and_then(|h| h.binds.as_mut()) {
                binds.push(shared);
            }
        }
        let create = || {
            let mut opts = CreateContainerOptionsBuilder::default().name(&spec.name);
            if let Some(platform) = &spec.platform {
                opts = opts.platform(platform);
            }
            self.docker
                .create_container(Some(opts.build()), body.clone())
        };
        let action = || format!("creating container {} for runnable {for_whom}", spec.name);
        let created = match within(action, CALL_TIMEOUT, create()).await {
            // A container of that name left by an earlier run of this runnable: replace it.
            // Podman answers 500 "... that name is already in use" instead of 409.
            Err(e)
                if status_code(&e) == Some(409)
                    || engine_message(&e).contains("name is already in use") =>
            {
                self.remove(&spec.name).await?;
                within(action, CALL_TIMEOUT, create()).await?
            }
            Err(e) if is_not_found(&e) => {
                return Err(Error::ImageNotFound {
                    runnable: for_whom.to_string(),
                    image: spec.image.clone(),
                    reason: bollard_error(&e).map_or_else(|| e.to_string(), |b| b.to_string()),
                })
            }
            other => other?,
        };
        let id = created.id;
        if !spec.files.is_empty() {
            if let Err(e) = self.copy_in(&id, for_whom, &spec.files).await {
                let _ = self.remove(&id).await;
                return Err(e);
            }
        }
        if let Err(e) = within(
            || format!("starting container {} for runnable {for_whom}", spec.name),
            CALL_TIMEOUT,
            self.docker.start_container(&id, None),
        )
        .await
        {
            let _ = self.remove(&id).await;
            return Err(port_taken(e, spec, for_whom));
        }
        self.inspect(&id, spec.network.as_deref(), for_whom).await
    }

    /// On an engine that cannot mount this host's files: the shared directory's copy, in a
    /// volume of its own (`<container>-shared`, labelled as the environment's, so it goes
    /// with it), filled before the container starts; the bind that mounts it at the shared
    /// directory's path. A volume rather than a copy into the container: it stays writable
    /// under a read-only root filesystem, and a restarted runnable finds its files again, as
    /// it would in a mounted directory.
    async fn shared_dir_volume(
        &self,
        spec: &ContainerSpec,
        for_whom: &str,
    ) -> Result<Option<String>> {
        let Some((path, entries)) = &spec.shared_dir else {
            return Ok(None);
        };
        let volume = format!("{}-shared", spec.name);
        let mut labels: HashMap<String, String> = spec.labels.clone().into_iter().collect();
        labels.remove(crate::host::labels::RUNNABLE);
        self.create_labelled_volume(&volume, &labels, for_whom)
            .await?;
        self.fill_volume(&spec.image, &volume, path, entries, &labels, for_whom)
            .await?;
        Ok(Some(format!("{volume}:{path}")))
    }

    /// Creates the spec's volumes that do not exist yet, labelled as the environment's.
    async fn create_volumes(&self, spec: &ContainerSpec, for_whom: &str) -> Result<()> {
        let mut labels = spec.labels.clone();
        labels.remove(crate::host::labels::RUNNABLE);
        for volume in &spec.volumes {
            // Creating an existing volume with the same labels is a no-op for the engine.
            within(
                || format!("creating volume {} for runnable {for_whom}", volume.name),
                CALL_TIMEOUT,
                self.docker
                    .create_volume(bollard::models::VolumeCreateRequest {
                        name: Some(volume.name.clone()),
                        labels: Some(labels.clone().into_iter().collect()),
                        ..Default::default()
                    }),
            )
            .await?;
        }
        Ok(())
    }

    /// What the test process can reach of a container now: its published ports (which the
    /// engine may change, e.g. when the container rejoins its network), its address on
    /// `network`, and whether it still runs.
    pub(super) async fn inspect(
        &self,
        id: &str,
        network: Option<&str>,
        for_whom: &str,
    ) -> Result<StartedContainer> {
        // Between a container's exit and its cleanup Podman reports State.Status "stopped",
        // which is not in Docker's schema, so bollard cannot decode the answer; it settles
        // within moments, so ask again briefly.
        let mut undecodable = 0;
        let info = loop {
            match within(
                || format!("inspecting container {id} for runnable {for_whom}"),
                CALL_TIMEOUT,
                self.docker.inspect_container(id, None),
            )
            .await
            {
                Err(e) if is_undecodable(&e) && undecodable < 50 => {
                    undecodable += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                other => break other?,
            }
        };
        let state = info.state.unwrap_or_default();
        let exited = match state.running {
            Some(true) => None,
            _ => Some(ExitStatus {
                code: state.exit_code.unwrap_or(-1),
                oom_killed: state.oom_killed.unwrap_or(false),
            }),
        };
        let settings = info.network_settings.unwrap_or_default();
        // Container addresses are routable from the test process only on a local Linux
        // engine (not through Docker Desktop's VM, not on a remote engine).
        let direct_ip = settings
            .networks
            .as_ref()
            .zip(network)
            .and_then(|(n, name)| n.get(name))
            .and_then(|e| e.ip_address.as_deref())
            .and_then(|ip| ip.parse::<IpAddr>().ok())
            .filter(|_| self.local && cfg!(target_os = "linux"));
        let mut published = BTreeMap::new();
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
                published.insert(port, SocketAddr::new(self.publish_ip, hp));
            }
        }
        Ok(StartedContainer {
            id: id.to_string(),
            direct_ip,
            published,
            exited,
        })
    }

    pub(super) async fn wait_exit(&self, id: &str) -> Result<ExitStatus> {
        // A container may run for days: no deadline, but a frozen or dead engine ends the wait.
        let code = self
            .liveness
            .guard(|| format!("waiting for {id} to exit"), self.exit_code(id))
            .await?;
        // The wait answer has only the code; whether the kernel killed something in the
        // container for its memory is in its state. A clean exit needs no explanation, and
        // once the container is removed (a stop or kill under way) nobody asks.
        let oom_killed = code != 0
            && within(
                || format!("inspecting container {id} after its exit"),
                CALL_TIMEOUT,
                self.docker.inspect_container(id, None),
            )
            .await
            .ok()
            .and_then(|info| info.state?.oom_killed)
            .unwrap_or(false);
        Ok(ExitStatus { code, oom_killed })
    }

    /// The exit code, once the container no longer runs (-1 when it is gone).
    async fn exit_code(&self, id: &str) -> Result<i64> {
        let code = loop {
            let opts = WaitContainerOptionsBuilder::default()
                .condition("not-running")
                .build();
            let mut stream = self.docker.wait_container(id, Some(opts));
            match stream.next().await {
                Some(Ok(r)) => break r.status_code,
                Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => {
                    break code
                }
                Some(Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 404,
                    ..
                })) => return Ok(-1),
                // The long poll can be cut by client timeouts; ask again unless the engine is gone.
                Some(Err(bollard::errors::Error::RequestTimeoutError)) => continue,
                Some(Err(e)) => return Err(Error::engine(format!("waiting for {id} to exit"), e)),
                None => continue,
            }
        };
        Ok(code)
    }

    pub(super) async fn stop(&self, id: &str, grace: Duration) -> Result<()> {
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

    pub(super) async fn kill(&self, id: &str) -> Result<()> {
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
            Err(e) if engine_message(&e).contains("can only kill running containers") => Ok(()),
            other => already_done(other, &[409]),
        }
    }

    pub(super) async fn remove(&self, id: &str) -> Result<()> {
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
        match res {
            // 409 "removal already in progress": someone else (a reaper, another sweep) is
            // removing it. Callers rely on it being gone when this returns, so wait for that.
            Err(e) if status_code(&e) == Some(409) => self.until_removed(id).await,
            other => already_done(other, &[]),
        }
    }

    /// Waits until the engine no longer knows container `id`.
    async fn until_removed(&self, id: &str) -> Result<()> {
        let gone = async {
            loop {
                match self.docker.inspect_container(id, None).await {
                    Err(bollard::errors::Error::DockerResponseServerError {
                        status_code: 404,
                        ..
                    }) => return Ok(()),
                    Err(e) => return Err(Error::engine(format!("removing container {id}"), e)),
                    Ok(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
                }
            }
        };
        tokio::time::timeout(CALL_TIMEOUT, gone)
            .await
            .unwrap_or_else(|_| {
                Err(Error::EngineTimeout {
                    action: format!("waiting for another removal of container {id}"),
                    after: CALL_TIMEOUT,
                })
            })
    }

    pub(super) async fn pause(&self, id: &str) -> Result<()> {
        within(
            || format!("pausing container {id}"),
            CALL_TIMEOUT,
            self.docker.pause_container(id),
        )
        .await
    }

    pub(super) async fn unpause(&self, id: &str) -> Result<()> {
        within(
            || format!("unpausing container {id}"),
            CALL_TIMEOUT,
            self.docker.unpause_container(id),
        )
        .await
    }

    pub(super) async fn disconnect_network(&self, id: &str, network: &str) -> Result<()> {
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

    pub(super) async fn connect_network(
        &self,
        id: &str,
        network: &str,
        aliases: &[String],
    ) -> Result<()> {
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
}

impl DockerBackend {
    pub(super) async fn signal(&self, id: &str, signal: &str) -> Result<()> {
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
}

/// A start that failed because a fixed host port is taken, as [`Error::PortTaken`] (the port
/// named by its number: the environment knows its name); other errors as they are.
fn port_taken(e: Error, spec: &ContainerSpec, for_whom: &str) -> Error {
    let message = engine_message(&e).to_string();
    let taken =
        message.contains("port is already allocated") || message.contains("address already in use");
    if !taken {
        return e;
    }
    // The engine names the host port in its message ("Bind for 127.0.0.1:18080 failed").
    let Some((container_port, host_port)) = spec
        .host_ports
        .iter()
        .find(|(_, h)| message.contains(&format!(":{h} ")) || message.contains(&format!(":{h}:")))
        .or_else(|| spec.host_ports.iter().next())
    else {
        return e;
    };
    Error::PortTaken {
        runnable: for_whom.to_string(),
        port: container_port.to_string(),
        host_port: *host_port,
        reason: message,
    }
}

/// The engine's container-create body. Ports are published on `bind_ip` only: loopback for a
/// local engine (scenario services are not for the LAN), the address the test process
/// reaches a remote engine at (see `DockerBackend::bind_ip`).
fn container_body(spec: &ContainerSpec, bind_ip: &str) -> ContainerCreateBody {
    let port_key = |p: &u16| format!("{p}/tcp");
    let port_bindings = spec
        .ports
        .iter()
        .map(|p| {
            (
                port_key(p),
                Some(vec![PortBinding {
                    host_ip: Some(bind_ip.to_string()),
                    host_port: Some(
                        spec.host_ports
                            .get(p)
                            .map_or_else(String::new, u16::to_string),
                    ),
                }]),
            )
        })
        .collect::<HashMap<_, _>>();
    let endpoint = EndpointSettings {
        aliases: Some(spec.aliases.clone()),
        ..Default::default()
    };
    let binds = spec
        .mounts
        .iter()
        .map(|m| {
            let mode = if m.read_only { ":ro" } else { "" };
            format!("{}:{}{mode}", m.host.display(), m.container)
        })
        .chain(spec.volumes.iter().map(|v| {
            let mode = if v.read_only { ":ro" } else { "" };
            format!("{}:{}{mode}", v.name, v.target)
        }))
        .collect();
    let tmpfs = spec
        .tmpfs
        .iter()
        .map(|(path, size)| {
            let options = size.map_or_else(String::new, |bytes| format!("size={bytes}"));
            (path.clone(), options)
        })
        .collect::<HashMap<_, _>>();
    let ulimits = spec
        .ulimits
        .iter()
        .map(|u| ResourcesUlimits {
            name: Some(u.name.clone()),
            soft: Some(u.soft),
            hard: Some(u.hard),
        })
        .collect::<Vec<_>>();
    let extra_hosts = spec
        .extra_hosts
        .iter()
        .map(|(host, address)| format!("{host}:{address}"))
        .collect::<Vec<_>>();
    let network = spec.network.clone().unwrap_or_else(|| "none".to_string());
    ContainerCreateBody {
        hostname: Some(spec.hostname.clone()),
        user: spec.user.clone(),
        exposed_ports: Some(spec.ports.iter().map(port_key).collect()),
        env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        cmd: spec.cmd.clone(),
        image: Some(spec.image.clone()),
        entrypoint: spec.entrypoint.clone(),
        working_dir: spec.working_dir.clone(),
        labels: Some(spec.labels.clone().into_iter().collect()),
        healthcheck: super::health::health_config(spec),
        host_config: Some(HostConfig {
            binds: Some(binds),
            port_bindings: Some(port_bindings),
            network_mode: Some(network.clone()),
            userns_mode: spec.userns.clone(),
            privileged: Some(spec.privileged),
            cap_add: (!spec.capabilities.is_empty()).then(|| spec.capabilities.clone()),
            memory: spec.memory_bytes,
            nano_cpus: spec.nano_cpus,
            tmpfs: (!tmpfs.is_empty()).then_some(tmpfs),
            readonly_rootfs: spec.read_only_rootfs.then_some(true),
            shm_size: spec.shm_size,
            ulimits: (!ulimits.is_empty()).then_some(ulimits),
            extra_hosts: (!extra_hosts.is_empty()).then_some(extra_hosts),
            ..Default::default()
        }),
        networking_config: spec.network.is_some().then(|| NetworkingConfig {
            endpoints_config: Some(HashMap::from([(network, endpoint)])),
        }),
        ..Default::default()
    }
}
