//! Container resource metrics from the engine's stats stream, under cAdvisor's names, so
//! dashboards and queries written for cAdvisor work unchanged. One stream per container,
//! pushed by the engine about once a second; a scrape only reads the latest values, so it
//! costs no engine round trip and needs no privileged container.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;

use crate::engine::{Backend, UsageSample};
use crate::env::Runnable;

#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub runnable: String,
    pub container: String,
    pub image: String,
    pub sample: Option<UsageSample>,
}

/// Latest usage per container id.
pub(crate) type UsageTable = Arc<Mutex<BTreeMap<String, Entry>>>;

fn lock(t: &UsageTable) -> std::sync::MutexGuard<'_, BTreeMap<String, Entry>> {
    crate::host::fs::lock(t)
}

/// Starts a stream for each running runnable that has none yet.
pub(crate) fn track(
    table: &UsageTable,
    backend: &Arc<dyn Backend>,
    runtime: &tokio::runtime::Handle,
    running: &[Runnable],
) {
    for r in running {
        let Some(id) = r.container_id() else { continue };
        {
            let mut t = lock(table);
            if t.contains_key(&id) {
                continue;
            }
            t.insert(
                id.clone(),
                Entry {
                    runnable: r.name().to_string(),
                    container: r.container_name().to_string(),
                    image: r.options().image().to_string(),
                    sample: None,
                },
            );
        }
        let (table, backend) = (table.clone(), backend.clone());
        runtime.spawn(async move {
            let mut stream = backend.usage(&id);
            while let Some(Ok(sample)) = stream.next().await {
                if let Some(e) = lock(&table).get_mut(&id) {
                    e.sample = Some(sample);
                }
            }
            // The stream ends with the container; so does its series.
            lock(&table).remove(&id);
        });
    }
}

/// Name, type, help, and how to read the value from a sample.
type Family = (
    &'static str,
    &'static str,
    &'static str,
    fn(&UsageSample) -> f64,
);

/// The exposition of every tracked container.
pub(crate) fn render(table: &UsageTable) -> String {
    let entries: Vec<Entry> = lock(table).values().cloned().collect();
    let families: [Family; 6] = [
        ("container_cpu_usage_seconds_total", "counter", "Cumulative cpu time consumed in seconds.", |s| s.cpu_seconds),
        ("container_memory_usage_bytes", "gauge", "Current memory usage in bytes, including all memory regardless of when it was accessed.", |s| s.memory_usage_bytes),
        ("container_memory_working_set_bytes", "gauge", "Current working set in bytes.", |s| s.working_set_bytes),
        ("container_memory_rss", "gauge", "Size of RSS in bytes.", |s| s.rss_bytes),
        ("container_network_receive_bytes_total", "counter", "Cumulative count of bytes received.", |s| s.rx_bytes),
        ("container_network_transmit_bytes_total", "counter", "Cumulative count of bytes transmitted.", |s| s.tx_bytes),
    ];
    let mut out = String::new();
    for (name, kind, help, value) in families {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for e in &entries {
            let Some(s) = &e.sample else { continue };
            let _ = writeln!(
                out,
                "{name}{{name=\"{}\",container=\"{}\",image=\"{}\"}} {}",
                escape(&e.runnable),
                escape(&e.container),
                escape(&e.image),
                value(s)
            );
        }
    }
    out
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_cadvisor_names_per_container() {
        let table: UsageTable = Arc::default();
        lock(&table).insert(
            "id1".into(),
            Entry {
                runnable: "app".into(),
                container: "env-app".into(),
                image: "img:1".into(),
                sample: Some(UsageSample {
                    cpu_seconds: 1.5,
                    working_set_bytes: 100.0,
                    ..UsageSample::default()
                }),
            },
        );
        let text = render(&table);
        let families = crate::metrics::parse(&text).expect("valid exposition");
        assert_eq!(families.len(), 6);
        assert!(text.contains("container_cpu_usage_seconds_total{name=\"app\",container=\"env-app\",image=\"img:1\"} 1.5"), "{text}");
    }
}
