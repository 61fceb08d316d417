//! Partitions on a swarm: the task's overlay interface set down, and up again to heal.
//!
//! Disconnecting a task's container from the overlay through its node's engine (what the
//! Docker backend does) breaks the service's DNS name for good on a swarm, even after a
//! reconnect. Setting the interface down inside the task's network namespace cuts it off
//! the overlay just as well, keeps Swarm's bookkeeping untouched, and heals cleanly. A
//! short-lived helper container sharing the task's network namespace (with `NET_ADMIN`, from
//! an image of this host's `ip` program) does it, so the task's own image needs no tools.

use std::collections::HashMap;

use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{LogsOptionsBuilder, WaitContainerOptionsBuilder};
use futures_util::StreamExt;

use super::SwarmBackend;
use crate::engine::docker::calls::{within, CALL_TIMEOUT};
use crate::engine::docker::DockerBackend;
use crate::error::{Error, Result};
use crate::host::labels;
use crate::host::HostImage;

/// Where hosts keep iproute2's `ip`, and busybox (whose `ip` applet does the same).
const IP_PROGRAMS: &[&str] = &["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"];
const BUSYBOX: &[&str] = &["/bin/busybox", "/usr/bin/busybox"];

impl SwarmBackend {
    /// Sets the interface of container `id` on `network` down (`up == false`) or up.
    pub(super) async fn set_link(&self, id: &str, network: &str, up: bool) -> Result<()> {
        let engine = self.engine_of(id).await?;
        let info = within(
            || format!("inspecting container {id}"),
            CALL_TIMEOUT,
            engine.docker.inspect_container(id, None),
        )
        .await?;
        let ip = info
            .network_settings
            .and_then(|s| s.networks)
            .and_then(|n| n.get(network).cloned())
            .and_then(|e| e.ip_address)
            .filter(|ip| !ip.is_empty())
            .ok_or_else(|| {
                Error::Unexpected(format!(
                    "container {id} has no address on network {network}"
                ))
            })?;
        let (image, ip_argv) = netctl_image(&engine).await?;
        let listed =
            run_helper(&engine, &image, id, &ip_argv, &["-o", "-4", "addr", "show"]).await?;
        let interface = interface_with(&listed, &ip).ok_or_else(|| {
            Error::Unexpected(format!(
                "no interface of container {id} holds its address {ip} on {network}: {listed}"
            ))
        })?;
        let state = if up { "up" } else { "down" };
        run_helper(
            &engine,
            &image,
            id,
            &ip_argv,
            &["link", "set", &interface, state],
        )
        .await?;
        Ok(())
    }
}

/// The helper image on `engine` and the argv prefix that runs `ip` in it.
async fn netctl_image(engine: &DockerBackend) -> Result<(String, Vec<String>)> {
    let found = |paths: &[&str]| {
        paths
            .iter()
            .find(|p| std::path::Path::new(p).is_file())
            .map(|p| p.to_string())
    };
    // Placed at a fixed path in the image, whatever its path here.
    let (image, argv) = if let Some(ip) = found(IP_PROGRAMS) {
        (
            HostImage::new("e2ekit/netctl").binary_at(&ip, "/bin/ip"),
            vec!["/bin/ip".to_string()],
        )
    } else if let Some(busybox) = found(BUSYBOX) {
        (
            HostImage::new("e2ekit/netctl").binary_at(&busybox, "/bin/busybox"),
            vec!["/bin/busybox".to_string(), "ip".to_string()],
        )
    } else {
        return Err(Error::HostTool {
            tool: "ip".to_string(),
            reason: "a partition on a swarm runs this host's `ip` (iproute2) or busybox in a helper container next to the task; install iproute2".to_string(),
        });
    };
    let reference = crate::engine::build_host_image(engine, &image).await?;
    Ok((reference, argv))
}

/// Runs `ip args` in a container sharing `target`'s network namespace; its output.
async fn run_helper(
    engine: &DockerBackend,
    image: &str,
    target: &str,
    ip_argv: &[String],
    args: &[&str],
) -> Result<String> {
    let mut cmd = ip_argv.to_vec();
    cmd.extend(args.iter().map(|a| a.to_string()));
    let body = ContainerCreateBody {
        image: Some(image.to_string()),
        entrypoint: Some(cmd.clone()),
        labels: Some(HashMap::from([(
            labels::HOST_IMAGE.to_string(),
            "netctl".to_string(),
        )])),
        host_config: Some(HostConfig {
            network_mode: Some(format!("container:{target}")),
            cap_add: Some(vec!["NET_ADMIN".to_string()]),
            ..Default::default()
        }),
        ..Default::default()
    };
    let action = || format!("running `{}` next to container {target}", cmd.join(" "));
    let created = within(
        action,
        CALL_TIMEOUT,
        engine.docker.create_container(
            None::<bollard::query_parameters::CreateContainerOptions>,
            body,
        ),
    )
    .await?;
    let id = created.id;
    let outcome = async {
        within(
            action,
            CALL_TIMEOUT,
            engine.docker.start_container(&id, None),
        )
        .await?;
        let mut waits = engine
            .docker
            .wait_container(&id, Some(WaitContainerOptionsBuilder::default().build()));
        let code = match tokio::time::timeout(CALL_TIMEOUT, waits.next()).await {
            Ok(Some(Ok(w))) => w.status_code,
            // bollard reports a non-zero exit as an error carrying the code.
            Ok(Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. }))) => code,
            Ok(Some(Err(e))) => return Err(Error::engine(action(), e)),
            Ok(None) | Err(_) => {
                return Err(Error::EngineTimeout {
                    action: action(),
                    after: CALL_TIMEOUT,
                })
            }
        };
        let mut out = String::new();
        let mut logs = engine.docker.logs(
            &id,
            Some(
                LogsOptionsBuilder::default()
                    .stdout(true)
                    .stderr(true)
                    .build(),
            ),
        );
        while let Some(Ok(chunk)) = logs.next().await {
            out.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
        }
        if code != 0 {
            return Err(Error::Unexpected(format!(
                "`{}` next to container {target} exited with {code}: {out}",
                cmd.join(" ")
            )));
        }
        Ok(out)
    }
    .await;
    let _ = engine.remove(&id).await;
    outcome
}

/// The interface holding `ip` in `ip -o -4 addr show` output
/// (`2: eth0    inet 10.0.1.5/24 brd ...`; an interface name may carry `@peer`).
fn interface_with(listing: &str, ip: &str) -> Option<String> {
    listing.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        let _index = words.next()?;
        let name = words.next()?.trim_end_matches(':');
        let rest: Vec<&str> = words.collect();
        let holds = rest
            .windows(2)
            .any(|w| w[0] == "inet" && w[1].split('/').next() == Some(ip));
        holds.then(|| name.split('@').next().unwrap_or(name).to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interface_holding_an_address_is_found_in_ip_output() {
        let listing = "1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever\n\
                       52: eth0@if53    inet 10.213.4.5/26 brd 10.213.4.63 scope global eth0\n\
                       54: eth1    inet 172.18.0.3/16 brd 172.18.255.255 scope global eth1\n";
        assert_eq!(
            interface_with(listing, "10.213.4.5").as_deref(),
            Some("eth0")
        );
        assert_eq!(
            interface_with(listing, "172.18.0.3").as_deref(),
            Some("eth1")
        );
        assert_eq!(interface_with(listing, "10.0.0.9"), None);
    }
}
