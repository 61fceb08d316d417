//! The engine-neutral seam between scenarios and a container engine.
//!
//! Everything Docker-specific lives in [`crate::docker`]; the rest of the crate only sees the
//! [`Backend`] trait, so another engine (Kubernetes) can slot in behind the same `Environment`.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::Stream;

use crate::error::Result;
use crate::runnable::ExecOutput;

/// A line of container output.
#[derive(Debug, Clone)]
pub(crate) struct LogLine {
    pub stderr: bool,
    pub text: String,
}

/// Stream of container output lines; ends when the container stops.
pub(crate) type LogStream = Pin<Box<dyn Stream<Item = Result<LogLine>> + Send>>;

/// What the environment's private network looks like.
#[derive(Debug, Clone)]
pub(crate) struct NetworkInfo {
    pub name: String,
    /// The address containers use to reach the host.
    pub gateway: Option<IpAddr>,
}

/// Everything needed to create one container.
#[derive(Debug, Clone, Default)]
pub(crate) struct ContainerSpec {
    pub name: String,
    pub hostname: String,
    pub aliases: Vec<String>,
    pub image: String,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub env: Vec<String>,
    pub user: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub ports: Vec<u16>,
    pub binds: Vec<String>,
    pub userns: Option<String>,
    pub privileged: bool,
    pub capabilities: Vec<String>,
    pub memory_bytes: Option<i64>,
    pub nano_cpus: Option<i64>,
    pub network: String,
}

/// A container as seen right after it started.
#[derive(Debug, Clone)]
pub(crate) struct StartedContainer {
    pub id: String,
    /// Address on the environment network.
    pub ip: Option<IpAddr>,
    /// Container port → host port on 127.0.0.1.
    pub host_ports: BTreeMap<u16, u16>,
    /// Set when the container already exited by the time it was inspected.
    pub exited: Option<i64>,
}

/// Resources of one environment, as found on the engine.
#[derive(Debug, Clone, Default)]
pub(crate) struct Leftovers {
    pub containers: Vec<String>,
    pub networks: Vec<String>,
    /// Owner labels of the resources found.
    pub owners: Vec<String>,
}

/// Resource usage of one container at one moment, in cAdvisor's units.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct UsageSample {
    pub cpu_seconds: f64,
    pub memory_usage_bytes: f64,
    pub working_set_bytes: f64,
    pub rss_bytes: f64,
    pub rx_bytes: f64,
    pub tx_bytes: f64,
}

/// Usage samples pushed by the engine (about one a second) until the container stops.
pub(crate) type UsageStream = Pin<Box<dyn Stream<Item = Result<UsageSample>> + Send>>;

/// One labelled resource (container or network) on the engine.
#[derive(Debug, Clone)]
pub(crate) struct Labelled {
    pub container: bool,
    pub env: String,
    pub owner: Option<String>,
}

/// What the engine must do for e2ekit.
#[async_trait::async_trait]
pub(crate) trait Backend: Send + Sync + std::fmt::Debug {
    /// A new connection to the same engine, bound to the current async runtime.
    async fn reconnect(&self) -> Result<Arc<dyn Backend>>;

    async fn create_network(
        &self,
        name: &str,
        labels: BTreeMap<String, String>,
    ) -> Result<NetworkInfo>;
    async fn remove_network(&self, name: &str) -> Result<()>;
    async fn find_environment(&self, env: &str) -> Result<Leftovers>;
    /// Every container and network carrying e2ekit's environment label.
    async fn list_labelled(&self) -> Result<Vec<Labelled>>;
    /// Remove everything labelled with the environment's name, concurrently.
    async fn remove_environment(&self, env: &str, network: Option<&str>) -> Result<()>;

    /// Makes sure the image is present, pulling it when missing. `for_whom` names the runnable.
    async fn ensure_image(&self, image: &str, for_whom: &str) -> Result<()>;
    async fn image_exists(&self, image: &str) -> Result<bool>;
    async fn import_image(
        &self,
        repo: &str,
        tag: &str,
        tar: Vec<u8>,
        changes: Vec<String>,
    ) -> Result<()>;
    async fn tag_image(&self, image: &str, repo: &str, tag: &str) -> Result<()>;
    /// The tags of every image built from host files (one entry per image).
    async fn list_host_images(&self) -> Result<Vec<Vec<String>>>;
    /// Removes one tag; `false` when a container uses the image, which stays.
    async fn untag_image(&self, reference: &str) -> Result<bool>;

    async fn create_and_start(
        &self,
        spec: &ContainerSpec,
        for_whom: &str,
    ) -> Result<StartedContainer>;
    /// Resolves with the exit code once the container is not running.
    async fn wait_exit(&self, id: &str) -> Result<i64>;
    async fn stop(&self, id: &str, grace: Duration) -> Result<()>;
    async fn kill(&self, id: &str) -> Result<()>;
    async fn remove(&self, id: &str) -> Result<()>;
    async fn pause(&self, id: &str) -> Result<()>;
    async fn unpause(&self, id: &str) -> Result<()>;
    async fn disconnect(&self, id: &str, network: &str) -> Result<()>;
    async fn connect(&self, id: &str, network: &str, aliases: &[String]) -> Result<()>;

    fn follow_logs(&self, id: &str) -> LogStream;
    fn usage(&self, id: &str) -> UsageStream;
    /// Sends a signal (e.g. `HUP`) to the container's main process.
    async fn signal(&self, id: &str, signal: &str) -> Result<()>;
    async fn log_tail(&self, id: &str, lines: usize) -> Vec<String>;
    async fn exec(
        &self,
        id: &str,
        for_whom: &str,
        cmd: &[String],
        stdin: Option<Vec<u8>>,
        user: Option<&str>,
    ) -> Result<ExecOutput>;
}
