//! Resource usage from the engine's stats stream, in cAdvisor's units.

use bollard::query_parameters::StatsOptionsBuilder;
use futures_util::StreamExt;

use super::{DockerBackend, UsageStream};
use crate::engine::UsageSample;
use crate::error::Error;

impl DockerBackend {
    pub(super) fn usage(&self, id: &str) -> UsageStream {
        let opts = StatsOptionsBuilder::default().stream(true).build();
        let id_owned = id.to_string();
        Box::pin(self.docker.stats(id, Some(opts)).map(move |r| {
            r.map(|s| usage_sample(&s))
                .map_err(|e| Error::engine(format!("reading the usage of container {id_owned}"), e))
        }))
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
