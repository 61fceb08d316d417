//! Private bridge networks with explicitly allocated small subnets.
//!
//! Docker's default address pools hold about 31 bridge networks; parallel test suites exhaust
//! them. Each environment therefore asks for a /26 (61 containers) out of a dedicated /16 and
//! retries on overlap, which lets ~1000 environments coexist on one engine.

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;
use std::net::{IpAddr, Ipv4Addr};

use bollard::models::{Ipam, IpamConfig, NetworkCreateRequest};
use bollard::Docker;

use crate::engine::NetworkInfo;
use crate::error::{Error, Result};

/// `E2EKIT_SUBNET_POOL` overrides the /16 the subnets come from (e.g. `10.77.0.0`).
const DEFAULT_POOL: [u8; 2] = [10, 213];
const SLOTS: u32 = 1024; // /26 slots in a /16
const ATTEMPTS: usize = 64;

fn pool() -> [u8; 2] {
    std::env::var("E2EKIT_SUBNET_POOL")
        .ok()
        .and_then(|p| p.parse::<Ipv4Addr>().ok())
        .map(|ip| [ip.octets()[0], ip.octets()[1]])
        .unwrap_or(DEFAULT_POOL)
}

fn slot_subnet(pool: [u8; 2], slot: u32) -> (Ipv4Addr, Ipv4Addr) {
    let offset = slot * 64;
    let base = Ipv4Addr::new(pool[0], pool[1], (offset >> 8) as u8, (offset & 0xff) as u8);
    let gateway = Ipv4Addr::from(u32::from(base) + 1);
    (base, gateway)
}

/// Host routes (other than the default route) that a subnet must not shadow.
fn host_routes() -> Vec<(u32, u32)> {
    let Ok(table) = std::fs::read_to_string("/proc/net/route") else {
        return Vec::new();
    };
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let dest = u32::from_str_radix(cols.get(1)?, 16).ok()?;
            let mask = u32::from_str_radix(cols.get(7)?, 16).ok()?;
            // /proc/net/route prints addresses in host (little-endian) byte order.
            let (dest, mask) = (u32::from_be(dest), u32::from_be(mask));
            (mask != 0).then_some((dest, mask))
        })
        .collect()
}

fn overlaps_host(routes: &[(u32, u32)], base: Ipv4Addr) -> bool {
    let net = u32::from(base);
    let mask26 = 0xffff_ffc0u32;
    routes.iter().any(|(dest, mask)| {
        let common = mask & mask26;
        (net & common) == (dest & common)
    })
}

/// Whether creating the network failed because its subnet is taken, so another slot may work.
fn is_overlap(e: &bollard::errors::Error) -> bool {
    let text = e.to_string().to_lowercase();
    text.contains("overlap")
        || text.contains("pool") && text.contains("use")
        // Podman: "subnet ... is already used on the host or by another config".
        || text.contains("already used")
        // Podman, while scanning host interfaces for used subnets, when one vanishes meanwhile
        // (another environment's network being removed).
        || text.contains("no such network interface")
}

/// Which kind of network an environment gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Driver {
    /// A bridge on one engine.
    Bridge,
    /// An attachable overlay spanning a Swarm's nodes.
    Overlay,
}

pub(super) async fn create(
    docker: &Docker,
    name: &str,
    labels: BTreeMap<String, String>,
    driver: Driver,
) -> Result<NetworkInfo> {
    let pool = pool();
    let routes = host_routes();
    let start = (RandomState::new().hash_one(name) % u64::from(SLOTS)) as u32;
    let mut last_error = None;
    for attempt in 0..ATTEMPTS {
        // Stride through the pool from a random start so parallel creators rarely collide twice.
        let slot = (start + (attempt as u32) * 37) % SLOTS;
        let (base, gateway) = slot_subnet(pool, slot);
        if overlaps_host(&routes, base) {
            continue;
        }
        let request = NetworkCreateRequest {
            name: name.to_string(),
            driver: Some(
                match driver {
                    Driver::Bridge => "bridge",
                    Driver::Overlay => "overlay",
                }
                .to_string(),
            ),
            // Attachable: the partition helper and sweeps look at tasks' containers.
            attachable: (driver == Driver::Overlay).then_some(true),
            labels: Some(labels.clone().into_iter().collect::<HashMap<_, _>>()),
            ipam: Some(Ipam {
                config: Some(vec![IpamConfig {
                    subnet: Some(format!("{base}/26")),
                    gateway: Some(gateway.to_string()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let call = docker.create_network(request);
        match tokio::time::timeout(std::time::Duration::from_secs(60), call).await {
            Ok(Ok(_)) => {
                return Ok(NetworkInfo {
                    name: name.to_string(),
                    // An overlay's gateway is no host: containers reach the test host by
                    // its own address there.
                    gateway: (driver == Driver::Bridge).then_some(IpAddr::V4(gateway)),
                });
            }
            Ok(Err(e)) if is_overlap(&e) => last_error = Some(e),
            Ok(Err(e)) => return Err(Error::engine(format!("creating network {name}"), e)),
            Err(_) => {
                return Err(Error::EngineTimeout {
                    action: format!("creating network {name}"),
                    after: std::time::Duration::from_secs(60),
                })
            }
        }
    }
    Err(match last_error {
        Some(e) => Error::engine(
            format!("creating network {name}: no free /26 left in {}.{}.0.0/16 after {ATTEMPTS} attempts (set E2EKIT_SUBNET_POOL to another /16)", pool[0], pool[1]),
            e,
        ),
        None => Error::engine(
            format!("creating network {name}"),
            format!(
                "the subnet pool {}.{}.0.0/16 overlaps the host's routes; set E2EKIT_SUBNET_POOL to a free /16",
                pool[0], pool[1]
            ),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_distinct_slash26_subnets() {
        assert_eq!(slot_subnet([10, 213], 0).0, Ipv4Addr::new(10, 213, 0, 0));
        assert_eq!(slot_subnet([10, 213], 1).0, Ipv4Addr::new(10, 213, 0, 64));
        assert_eq!(slot_subnet([10, 213], 5).1, Ipv4Addr::new(10, 213, 1, 65));
        assert_eq!(
            slot_subnet([10, 213], 1023).0,
            Ipv4Addr::new(10, 213, 255, 192)
        );
    }

    #[test]
    fn host_route_overlap_is_detected() {
        let routes = vec![(u32::from(Ipv4Addr::new(10, 213, 4, 0)), 0xffff_ff00)];
        assert!(overlaps_host(&routes, Ipv4Addr::new(10, 213, 4, 64)));
        assert!(!overlaps_host(&routes, Ipv4Addr::new(10, 213, 5, 0)));
        let wide = vec![(u32::from(Ipv4Addr::new(10, 0, 0, 0)), 0xff00_0000)];
        assert!(overlaps_host(&wide, Ipv4Addr::new(10, 213, 0, 0)));
    }
}
