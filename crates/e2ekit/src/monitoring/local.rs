//! The host-side HTTP endpoint Prometheus scrapes through the environment's host address:
//! the test process's own metrics and the containers' resource usage.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::usage::UsageTable;
use crate::error::{Error, Result};
use crate::host::http::{read_request_path, respond};

/// Produces the test process's exposition on every scrape.
pub(crate) type LocalMetrics = Arc<dyn Fn() -> String + Send + Sync>;

/// Path of the test process's metrics.
pub(crate) const LOCAL_PATH: &str = "/metrics";
/// Path of the containers' resource metrics.
pub(crate) const CONTAINERS_PATH: &str = "/container-metrics";

pub(crate) struct LocalServer {
    pub addr: SocketAddr,
    /// Counts scrapes of [`LOCAL_PATH`].
    pub scrapes: watch::Receiver<u64>,
    pub task: tokio::task::JoinHandle<()>,
}

/// Binds on all interfaces: containers reach the host through the network gateway, which is
/// not loopback.
pub(crate) async fn start(local: LocalMetrics, usage: UsageTable) -> Result<LocalServer> {
    // Bound and served on e2ekit's runtime: a socket belongs to the runtime that opened it,
    // and monitoring must keep answering after the runtime that started it is gone.
    let listener = crate::runtime::spawn(async { TcpListener::bind(("0.0.0.0", 0)).await })
        .await
        .map_err(|e| Error::Unexpected(format!("the scrape listener task failed: {e}")))?
        .map_err(|e| Error::io("listening for Prometheus scrapes", e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::io("reading the scrape listener address", e))?;
    let (tx, rx) = watch::channel(0u64);
    let tx = Arc::new(tx);
    let task = crate::runtime::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                continue;
            };
            let (local, usage, tx) = (local.clone(), usage.clone(), tx.clone());
            tokio::spawn(async move {
                let _ = answer(sock, &local, &usage, &tx).await;
            });
        }
    });
    Ok(LocalServer {
        addr,
        scrapes: rx,
        task,
    })
}

async fn answer(
    mut sock: TcpStream,
    local: &LocalMetrics,
    usage: &UsageTable,
    scrapes: &watch::Sender<u64>,
) -> std::io::Result<()> {
    let Some(path) = read_request_path(&mut sock).await? else {
        return Ok(());
    };
    let path = path.as_str();
    let (status, body) = match path {
        LOCAL_PATH => {
            scrapes.send_modify(|n| *n += 1);
            ("200 OK", local())
        }
        CONTAINERS_PATH => ("200 OK", super::usage::render(usage)),
        _ => ("404 Not Found", "not found\n".to_string()),
    };
    respond(&mut sock, status, "text/plain; version=0.0.4", &body).await
}

/// The default local metrics: this process's resource usage, named like the Prometheus
/// client libraries' process collector.
pub(crate) fn process_metrics() -> String {
    let mut out = String::new();
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
    };
    let ticks = 100.0; // USER_HZ on Linux
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rfind(')').map(|i| &stat[i + 2..]).unwrap_or("");
    let cols: Vec<&str> = after.split_whitespace().collect();
    let cpu = cols
        .get(11)
        .zip(cols.get(12))
        .and_then(|(u, s)| Some(u.parse::<f64>().ok()? + s.parse::<f64>().ok()?))
        .map(|t| t / ticks);
    let fds = std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count() as f64)
        .ok();
    let mut gauge = |name: &str, kind: &str, help: &str, value: Option<f64>| {
        if let Some(v) = value {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}\n"
            ));
        }
    };
    gauge(
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory size in bytes.",
        field("VmRSS:").map(|kb| kb * 1024.0),
    );
    gauge(
        "process_cpu_seconds_total",
        "counter",
        "Total user and system CPU time spent in seconds.",
        cpu,
    );
    gauge(
        "process_threads",
        "gauge",
        "Number of OS threads.",
        field("Threads:"),
    );
    gauge(
        "process_open_fds",
        "gauge",
        "Number of open file descriptors.",
        fds,
    );
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn process_metrics_parse_and_name_memory() {
        let text = super::process_metrics();
        let families = crate::metrics::parse(&text).expect("valid exposition");
        assert!(families
            .iter()
            .any(|f| f.name == "process_resident_memory_bytes"));
    }
}
