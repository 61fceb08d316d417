//! An in-memory engine for unit tests of everything above the seam: no Docker, no network,
//! milliseconds per test.
//!
//! It keeps networks, images and containers in a map, records every call in order (so tests
//! can assert on ordering), and is scripted per image: what a container prints, when it
//! exits, and where its ports are served. A port can point at a real in-process server, so
//! HTTP and TCP probes and metric waits run for real against it.
//!
//! ```text
//! let fake = FakeEngine::new();
//! fake.script("app:1", Script::new().log("listening").serve(8080, server_addr));
//! let env = env::tests::fake_env(&fake, "t").await; // an Environment on the fake engine
//! app.start().await?;
//! fake.exit(app.container_name(), 3);              // the container crashes
//! fake.oom_kill(app.container_name());             // or goes over its memory limit
//! app.start().await?;                              // and is replaced
//! assert_eq!(fake.calls_of(app.container_name()), ["create_and_start", "remove", "create_and_start"]);
//! ```
//!
//! Failures and slowness are injected per operation: `fail_next(op, message)` makes the next
//! call fail with an engine error, `hold_next(op)` freezes it until the test releases it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::{mpsc, watch, Notify};

use super::{
    Backend, ContainerSpec, ExecOutput, ExecRequest, ExitStatus, FileEntry, ImageConfig, Labelled,
    Leftovers, LogLine, LogStream, NetworkInfo, Output, StartedContainer, UsageStream,
};
use super::{BuildRequest, ContainerHealth};
use crate::error::{Error, Result};
use crate::host::fs::lock;
use crate::host::labels;

/// Answers a command run in a fake container.
pub(crate) type ExecAnswer = Arc<dyn Fn(&ExecRequest) -> ExecOutput + Send + Sync>;

/// What a container made from an image does.
#[derive(Clone, Default)]
pub(crate) struct Script {
    /// Lines printed at start.
    pub logs: Vec<String>,
    /// Exit at once like this (the engine sees it exited by the time it inspects).
    pub exit_at_start: Option<ExitStatus>,
    /// Exit with this code after this long.
    pub exit_after: Option<(Duration, i64)>,
    /// Container port → the address the test process reaches it at.
    pub serve: BTreeMap<u16, SocketAddr>,
    /// Answers exec requests; default: exit 0, stdout = the command line.
    pub exec: Option<ExecAnswer>,
}

impl std::fmt::Debug for Script {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Script")
            .field("logs", &self.logs)
            .field("exit_at_start", &self.exit_at_start)
            .field("exit_after", &self.exit_after)
            .field("serve", &self.serve)
            .finish_non_exhaustive()
    }
}

impl Script {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    pub(crate) fn log(mut self, line: &str) -> Self {
        self.logs.push(line.to_string());
        self
    }

    pub(crate) fn exit_at_start(mut self, code: i64) -> Self {
        self.exit_at_start = Some(ExitStatus::code(code));
        self
    }

    /// Killed by the kernel for going over its memory limit as soon as it starts.
    pub(crate) fn oom_killed_at_start(mut self) -> Self {
        self.exit_at_start = Some(OOM_KILLED);
        self
    }

    pub(crate) fn exit_after(mut self, after: Duration, code: i64) -> Self {
        self.exit_after = Some((after, code));
        self
    }

    pub(crate) fn serve(mut self, container_port: u16, at: SocketAddr) -> Self {
        self.serve.insert(container_port, at);
        self
    }

    pub(crate) fn exec(
        mut self,
        answer: impl Fn(&ExecRequest) -> ExecOutput + Send + Sync + 'static,
    ) -> Self {
        self.exec = Some(Arc::new(answer));
        self
    }
}

/// How a container the kernel killed for its memory ends.
const OOM_KILLED: ExitStatus = ExitStatus {
    code: 137,
    oom_killed: true,
};

struct FakeContainer {
    name: String,
    spec: ContainerSpec,
    exit: watch::Sender<Option<ExitStatus>>,
    paused: bool,
    connected: bool,
    logs: Vec<LogLine>,
    followers: Vec<mpsc::UnboundedSender<Result<LogLine>>>,
    script: Script,
    /// Files copied in, by absolute path.
    files: BTreeMap<String, FileEntry>,
}

impl FakeContainer {
    fn running(&self) -> bool {
        self.exit.borrow().is_none()
    }

    fn print(&mut self, text: &str) {
        let line = LogLine {
            stderr: false,
            text: text.to_string(),
            cut: 0,
        };
        self.followers.retain(|f| f.send(Ok(line.clone())).is_ok());
        self.logs.push(line);
    }

    fn stop_with(&mut self, status: ExitStatus) {
        if self.running() {
            // send_replace: the value must stick even before anyone subscribed.
            self.exit.send_replace(Some(status));
        }
        // The log stream ends when the container stops.
        self.followers.clear();
    }
}

#[derive(Default)]
struct FakeState {
    networks: BTreeMap<String, BTreeMap<String, String>>,
    images: BTreeSet<String>,
    /// A reference made by `tag_image` → the reference it was made from.
    tagged_from: BTreeMap<String, String>,
    containers: BTreeMap<String, FakeContainer>,
    scripts: BTreeMap<String, Script>,
    /// Every call, in order: `(operation, subject)`; subject is a container name where the
    /// call is about a container.
    calls: Vec<(String, String)>,
    /// Operation → error message for its next call.
    failures: BTreeMap<String, String>,
    /// Operation → gate its next call waits on (after being recorded) until released.
    holds: BTreeMap<String, Arc<Notify>>,
    /// Set by [`FakeEngine::die`]: every call fails with this message from then on.
    dead: Option<String>,
    /// Owner -> time of its latest heartbeat.
    heartbeats: BTreeMap<String, u64>,
    /// Volume name → its labels.
    volumes: BTreeMap<String, BTreeMap<String, String>>,
    /// Plays a remote engine: it cannot see the test host's files.
    remote: bool,
    next_id: u64,
    /// Container name → the health status the test set.
    health: BTreeMap<String, ContainerHealth>,
    /// Images that define a health check.
    health_checked_images: BTreeSet<String>,
    /// Every build request, in order.
    builds: Vec<BuildRequest>,
}

/// The in-memory engine. Clones share one state (a reconnect gives back the same engine).
#[derive(Clone, Default)]
pub(crate) struct FakeEngine {
    state: Arc<Mutex<FakeState>>,
    /// Wakes waits in progress when the engine dies.
    death: Arc<Notify>,
}

impl std::fmt::Debug for FakeEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FakeEngine")
    }
}

/// The error a fake engine call fails with when told to.
#[derive(Debug, thiserror::Error)]
#[error("fake engine: {0}")]
pub(crate) struct FakeError(String);

impl FakeEngine {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Scripts what containers of `image` do.
    /// Plays a remote engine, which cannot bind-mount the test host's files.
    pub(crate) fn remote(&self) {
        lock(&self.state).remote = true;
    }

    /// The engine's volumes.
    pub(crate) fn volumes(&self) -> Vec<String> {
        lock(&self.state).volumes.keys().cloned().collect()
    }

    /// The files copied into container `name`, by path.
    pub(crate) fn files_of(&self, name: &str) -> BTreeMap<String, FileEntry> {
        lock(&self.state)
            .containers
            .values()
            .find(|c| c.name == name)
            .map(|c| c.files.clone())
            .unwrap_or_default()
    }

    /// Prints `line` to stderr of container `name`.
    pub(crate) fn print_stderr(&self, name: &str, line: &str) {
        let mut s = lock(&self.state);
        if let Some(c) = s.containers.values_mut().find(|c| c.name == name) {
            let line = LogLine {
                stderr: true,
                text: line.to_string(),
                cut: 0,
            };
            c.followers.retain(|f| f.send(Ok(line.clone())).is_ok());
            c.logs.push(line);
        }
    }

    pub(crate) fn script(&self, image: &str, script: Script) {
        let mut s = lock(&self.state);
        s.images.insert(image.to_string());
        s.scripts.insert(image.to_string(), script);
    }

    /// Makes an image present without scripting it.
    pub(crate) fn add_image(&self, image: &str) {
        lock(&self.state).images.insert(image.to_string());
    }

    /// Makes the next call of `operation` fail with `message`.
    pub(crate) fn fail_next(&self, operation: &str, message: &str) {
        lock(&self.state)
            .failures
            .insert(operation.to_string(), message.to_string());
    }

    /// Makes the next call of `operation` (`create_and_start`, `stop`, `kill` or `remove`)
    /// wait, once recorded, until the returned gate is released with `notify_one`: a slow
    /// engine call, frozen at a point the test chooses.
    pub(crate) fn hold_next(&self, operation: &str) -> Arc<Notify> {
        let gate = Arc::new(Notify::new());
        lock(&self.state)
            .holds
            .insert(operation.to_string(), gate.clone());
        gate
    }

    /// Waits at the gate of `op`, if one was set for this call.
    async fn gate(&self, op: &str) {
        let gate = lock(&self.state).holds.remove(op);
        if let Some(gate) = gate {
            gate.notified().await;
        }
    }

    /// Makes the engine go away, as a killed `dockerd` does: waits in progress fail, every
    /// later call fails with `message`, output can no longer be read; containers keep
    /// their state.
    pub(crate) fn die(&self, message: &str) {
        lock(&self.state).dead = Some(message.to_string());
        self.death.notify_waiters();
    }

    /// Records a heartbeat of `owner` at `at` (Unix seconds), as another host's reaper would.
    pub(crate) fn heartbeat_at(&self, owner: &str, at: u64) {
        lock(&self.state).heartbeats.insert(owner.to_string(), at);
    }

    /// Fails unless the image exists, as an engine does.
    fn with_image(&self, reference: &str) -> Result<()> {
        if lock(&self.state).images.contains(reference) {
            Ok(())
        } else {
            Err(Error::engine(
                format!("pushing {reference}"),
                FakeError(format!("no such image: {reference}")),
            ))
        }
    }

    /// Brings a dead engine back (the containers as they were).
    pub(crate) fn revive(&self) {
        lock(&self.state).dead = None;
    }

    /// Ends the container named `name` with `code`, as a crash would.
    pub(crate) fn exit(&self, name: &str, code: i64) {
        self.end(name, ExitStatus::code(code));
    }

    /// Ends the container named `name` as the kernel does when it goes over its memory
    /// limit: killed (137), and the engine knows why.
    pub(crate) fn oom_kill(&self, name: &str) {
        self.end(name, OOM_KILLED);
    }

    fn end(&self, name: &str, status: ExitStatus) {
        let mut s = lock(&self.state);
        if let Some(c) = s.containers.values_mut().find(|c| c.name == name) {
            c.stop_with(status);
        }
    }

    /// Makes the running container named `name` print `line`.
    pub(crate) fn print(&self, name: &str, line: &str) {
        let mut s = lock(&self.state);
        if let Some(c) = s
            .containers
            .values_mut()
            .find(|c| c.name == name && c.running())
        {
            c.print(line);
        }
    }

    /// Every call so far, as `operation subject`.
    pub(crate) fn calls(&self) -> Vec<String> {
        lock(&self.state)
            .calls
            .iter()
            .map(|(op, subject)| format!("{op} {subject}"))
            .collect()
    }

    /// The operations called for one container name, in order.
    pub(crate) fn calls_of(&self, name: &str) -> Vec<String> {
        lock(&self.state)
            .calls
            .iter()
            .filter(|(_, subject)| subject == name)
            .map(|(op, _)| op.clone())
            .collect()
    }

    /// Names of containers that exist (running or not).
    pub(crate) fn containers(&self) -> Vec<String> {
        lock(&self.state)
            .containers
            .values()
            .map(|c| c.name.clone())
            .collect()
    }

    /// Names of running containers.
    pub(crate) fn running(&self) -> Vec<String> {
        lock(&self.state)
            .containers
            .values()
            .filter(|c| c.running())
            .map(|c| c.name.clone())
            .collect()
    }

    /// Names of networks that exist.
    pub(crate) fn networks(&self) -> Vec<String> {
        lock(&self.state).networks.keys().cloned().collect()
    }

    /// The spec a container was created with.
    pub(crate) fn spec_of(&self, name: &str) -> Option<ContainerSpec> {
        lock(&self.state)
            .containers
            .values()
            .find(|c| c.name == name)
            .map(|c| c.spec.clone())
    }

    /// Whether the container is connected to its network (a partition cuts it).
    pub(crate) fn is_connected(&self, name: &str) -> Option<bool> {
        lock(&self.state)
            .containers
            .values()
            .find(|c| c.name == name)
            .map(|c| c.connected)
    }

    /// Whether the container is paused.
    pub(crate) fn is_paused(&self, name: &str) -> Option<bool> {
        lock(&self.state)
            .containers
            .values()
            .find(|c| c.name == name)
            .map(|c| c.paused)
    }

    /// Records a call and fails it if told to.
    fn call(&self, op: &str, subject: &str) -> Result<()> {
        let mut s = lock(&self.state);
        s.calls.push((op.to_string(), subject.to_string()));
        if let Some(message) = &s.dead {
            return Err(Error::engine(
                format!("{op} {subject}"),
                FakeError(message.clone()),
            ));
        }
        match s.failures.remove(op) {
            Some(message) => Err(Error::engine(format!("{op} {subject}"), FakeError(message))),
            None => Ok(()),
        }
    }

    /// The container's name for call records (ids are what the core passes in).
    fn name_of(&self, id: &str) -> String {
        lock(&self.state)
            .containers
            .get(id)
            .map_or_else(|| id.to_string(), |c| c.name.clone())
    }

    fn with_container<T>(&self, id: &str, f: impl FnOnce(&mut FakeContainer) -> T) -> Result<T> {
        let mut s = lock(&self.state);
        match s.containers.get_mut(id) {
            Some(c) => Ok(f(c)),
            None => Err(Error::engine(
                format!("using container {id}"),
                FakeError(format!("no such container: {id}")),
            )),
        }
    }
}

/// Health checks and Dockerfile builds (issue 13).
impl FakeEngine {
    /// Sets the health status the engine reports for the container named `name`.
    pub(crate) fn set_health(&self, name: &str, health: ContainerHealth) {
        lock(&self.state).health.insert(name.to_string(), health);
    }

    /// Makes `image` present, defining a health check.
    pub(crate) fn add_health_checked_image(&self, image: &str) {
        let mut s = lock(&self.state);
        s.images.insert(image.to_string());
        s.health_checked_images.insert(image.to_string());
    }

    /// Every build request so far.
    pub(crate) fn builds(&self) -> Vec<BuildRequest> {
        lock(&self.state).builds.clone()
    }
}

#[async_trait::async_trait]
impl Backend for FakeEngine {
    async fn reconnect(&self) -> Result<Arc<dyn Backend>> {
        self.call("reconnect", "")?;
        Ok(Arc::new(self.clone()))
    }

    async fn ping(&self) -> Result<()> {
        match lock(&self.state).dead.clone() {
            Some(message) => Err(Error::engine("pinging the fake engine", FakeError(message))),
            None => Ok(()),
        }
    }

    fn host_addr(&self, network: &NetworkInfo) -> String {
        format!("host.fake.{}", network.name)
    }

    fn removal_hint(&self, env: &str, shared_dir: &Path) -> String {
        format!("fake-engine rm {env}; rm -rf {}", shared_dir.display())
    }

    fn reserved_names(&self) -> &'static [&'static str] {
        &["fake-reserved"]
    }

    async fn create_network(
        &self,
        name: &str,
        labels: BTreeMap<String, String>,
    ) -> Result<NetworkInfo> {
        self.call("create_network", name)?;
        lock(&self.state).networks.insert(name.to_string(), labels);
        Ok(NetworkInfo {
            name: name.to_string(),
            gateway: None,
        })
    }

    async fn find_environment(&self, env: &str) -> Result<Leftovers> {
        self.call("find_environment", env)?;
        let s = lock(&self.state);
        let mut found = Leftovers::default();
        for (id, c) in &s.containers {
            if c.spec.labels.get(labels::ENV).map(String::as_str) == Some(env) {
                found.containers.push(id.clone());
                found
                    .owners
                    .extend(c.spec.labels.get(labels::OWNER).cloned());
            }
        }
        for (name, l) in &s.networks {
            if l.get(labels::ENV).map(String::as_str) == Some(env) {
                found.networks.push(name.clone());
                found.owners.extend(l.get(labels::OWNER).cloned());
            }
        }
        for (name, l) in &s.volumes {
            if l.get(labels::ENV).map(String::as_str) == Some(env) {
                found.volumes.push(name.clone());
                found.owners.extend(l.get(labels::OWNER).cloned());
            }
        }
        found.owners.sort();
        found.owners.dedup();
        Ok(found)
    }

    async fn heartbeat(&self, owner: &str) -> Result<()> {
        self.call("heartbeat", owner)?;
        let now = labels::now_secs();
        lock(&self.state).heartbeats.insert(owner.to_string(), now);
        Ok(())
    }

    async fn heartbeats(&self) -> Result<BTreeMap<String, u64>> {
        Ok(lock(&self.state).heartbeats.clone())
    }

    async fn end_heartbeat(&self, owner: &str) -> Result<()> {
        lock(&self.state).heartbeats.remove(owner);
        Ok(())
    }

    async fn list_labelled(&self) -> Result<Vec<Labelled>> {
        self.call("list_labelled", "")?;
        let s = lock(&self.state);
        let containers = s.containers.values().filter_map(|c| {
            Some(Labelled {
                kind: super::ResourceKind::Container,
                env: c.spec.labels.get(labels::ENV)?.clone(),
                owner: c.spec.labels.get(labels::OWNER).cloned(),
                created: c.spec.labels.get(labels::CREATED).cloned(),
            })
        });
        let networks = s.networks.values().filter_map(|l| {
            Some(Labelled {
                kind: super::ResourceKind::Network,
                env: l.get(labels::ENV)?.clone(),
                owner: l.get(labels::OWNER).cloned(),
                created: l.get(labels::CREATED).cloned(),
            })
        });
        Ok(containers.chain(networks).collect())
    }

    async fn remove_owned(&self, env: &str, owner: &str) -> Result<()> {
        self.call("remove_owned", env)?;
        let owned = |l: &BTreeMap<String, String>| {
            l.get(labels::ENV).map(String::as_str) == Some(env)
                && l.get(labels::OWNER).map(String::as_str) == Some(owner)
        };
        let ids: Vec<String> = lock(&self.state)
            .containers
            .iter()
            .filter(|(_, c)| owned(&c.spec.labels))
            .map(|(id, _)| id.clone())
            .collect();
        for id in &ids {
            self.remove(id).await?;
        }
        let mut s = lock(&self.state);
        s.networks.retain(|_, l| !owned(l));
        s.volumes.retain(|_, l| !owned(l));
        Ok(())
    }

    async fn remove_environment(&self, env: &str, network: Option<&str>) -> Result<()> {
        self.call("remove_environment", env)?;
        let found = self.find_environment(env).await?;
        for id in &found.containers {
            self.remove(id).await?;
        }
        let mut s = lock(&self.state);
        for n in found.networks.iter().map(String::as_str).chain(network) {
            s.networks.remove(n);
        }
        for v in &found.volumes {
            s.volumes.remove(v);
        }
        Ok(())
    }

    async fn ensure_image(&self, image: &str, for_whom: &str) -> Result<()> {
        self.call("ensure_image", image)?;
        if lock(&self.state).images.contains(image) {
            return Ok(());
        }
        Err(Error::ImageNotFound {
            runnable: for_whom.to_string(),
            image: image.to_string(),
            reason: "the fake engine has no registry".to_string(),
        })
    }

    async fn image_exists(&self, image: &str) -> Result<bool> {
        self.call("image_exists", image)?;
        Ok(lock(&self.state).images.contains(image))
    }

    async fn import_image(
        &self,
        repo: &str,
        tag: &str,
        _rootfs_tar: Vec<u8>,
        _config: &ImageConfig,
    ) -> Result<()> {
        let reference = format!("{repo}:{tag}");
        self.call("import_image", &reference)?;
        lock(&self.state).images.insert(reference);
        Ok(())
    }

    async fn push_image(&self, reference: &str) -> Result<()> {
        self.call("push_image", reference)?;
        self.with_image(reference)
    }

    async fn tag_image(&self, image: &str, repo: &str, tag: &str) -> Result<()> {
        self.call("tag_image", image)?;
        let mut s = lock(&self.state);
        let source = s
            .tagged_from
            .get(image)
            .cloned()
            .unwrap_or_else(|| image.to_string());
        s.images.insert(format!("{repo}:{tag}"));
        s.tagged_from.insert(format!("{repo}:{tag}"), source);
        Ok(())
    }

    async fn image_tags(&self, image: &str) -> Result<Option<Vec<String>>> {
        self.call("image_tags", image)?;
        let s = lock(&self.state);
        if !s.images.contains(image) {
            return Ok(None);
        }
        let root = s.tagged_from.get(image).map_or(image, String::as_str);
        Ok(Some(
            s.images
                .iter()
                .filter(|r| {
                    r.as_str() == root || s.tagged_from.get(*r).map(String::as_str) == Some(root)
                })
                .cloned()
                .collect(),
        ))
    }

    async fn list_host_images(&self) -> Result<Vec<Vec<String>>> {
        self.call("list_host_images", "")?;
        Ok(Vec::new())
    }

    async fn untag_image(&self, reference: &str) -> Result<bool> {
        self.call("untag_image", reference)?;
        Ok(lock(&self.state).images.remove(reference))
    }

    async fn create_and_start(
        &self,
        spec: &ContainerSpec,
        _for_whom: &str,
    ) -> Result<StartedContainer> {
        self.call("create_and_start", &spec.name)?;
        self.gate("create_and_start").await;
        let mut s = lock(&self.state);
        // A leftover of the same name is replaced, as the Docker adapter does.
        s.containers.retain(|_, c| c.name != spec.name);
        s.next_id += 1;
        let id = format!("fake{:04}", s.next_id);
        let script = s.scripts.get(&spec.image).cloned().unwrap_or_default();
        let (exit, _) = watch::channel(script.exit_at_start);
        let mut container = FakeContainer {
            name: spec.name.clone(),
            spec: spec.clone(),
            exit,
            paused: false,
            connected: spec.network.is_some(),
            logs: Vec::new(),
            followers: Vec::new(),
            script: script.clone(),
            files: spec
                .shared_dir
                .iter()
                .flat_map(|(_, entries)| entries)
                .chain(&spec.files)
                .map(|f| (f.path.clone(), f.clone()))
                .collect(),
        };
        let mut volume_labels = spec.labels.clone();
        volume_labels.remove(labels::RUNNABLE);
        for v in &spec.volumes {
            s.volumes
                .entry(v.name.clone())
                .or_insert_with(|| volume_labels.clone());
        }
        for line in &script.logs {
            container.print(line);
        }
        let published = spec
            .ports
            .iter()
            .filter_map(|p| Some((*p, *script.serve.get(p)?)))
            .collect();
        let exited = script.exit_at_start;
        s.containers.insert(id.clone(), container);
        drop(s);
        if let Some((after, code)) = script.exit_after {
            // By id: a later container of the same name (a restart) must not be the one to go.
            let engine = self.clone();
            let id = id.clone();
            tokio::spawn(async move {
                tokio::time::sleep(after).await;
                let _ = engine.with_container(&id, |c| c.stop_with(ExitStatus::code(code)));
            });
        }
        Ok(StartedContainer {
            id,
            direct_ip: None,
            published,
            exited,
        })
    }

    async fn inspect(
        &self,
        id: &str,
        _network: Option<&str>,
        _for_whom: &str,
    ) -> Result<StartedContainer> {
        self.call("inspect", &self.name_of(id))?;
        self.with_container(id, |c| StartedContainer {
            id: id.to_string(),
            direct_ip: None,
            published: c
                .spec
                .ports
                .iter()
                .filter_map(|p| Some((*p, *c.script.serve.get(p)?)))
                .collect(),
            exited: *c.exit.borrow(),
        })
    }

    async fn wait_exit(&self, id: &str) -> Result<ExitStatus> {
        let mut exit = self.with_container(id, |c| c.exit.subscribe())?;
        let death = self.death.notified();
        tokio::pin!(death);
        // Registered before looking, so a death between the look and the wait is not missed.
        death.as_mut().enable();
        if let Some(message) = lock(&self.state).dead.clone() {
            return Err(Error::engine(
                format!("waiting for {id} to exit"),
                FakeError(message),
            ));
        }
        let status = tokio::select! {
            status = exit.wait_for(Option::is_some) => match status {
                Ok(status) => status.unwrap_or(ExitStatus::code(-1)),
                // The container was removed while running.
                Err(_) => ExitStatus::code(-1),
            },
            _ = death => {
                let message = lock(&self.state).dead.clone().unwrap_or_default();
                return Err(Error::engine(format!("waiting for {id} to exit"), FakeError(message)));
            }
        };
        Ok(status)
    }

    async fn stop(&self, id: &str, _grace: Duration) -> Result<()> {
        self.call("stop", &self.name_of(id))?;
        self.gate("stop").await;
        self.with_container(id, |c| c.stop_with(ExitStatus::code(0)))
            .or(Ok(()))
    }

    async fn kill(&self, id: &str) -> Result<()> {
        self.call("kill", &self.name_of(id))?;
        self.gate("kill").await;
        self.with_container(id, |c| c.stop_with(ExitStatus::code(137)))
            .or(Ok(()))
    }

    async fn remove(&self, id: &str) -> Result<()> {
        self.call("remove", &self.name_of(id))?;
        self.gate("remove").await;
        let mut s = lock(&self.state);
        let key = s
            .containers
            .iter()
            .find(|(k, c)| k.as_str() == id || c.name == id)
            .map(|(k, _)| k.clone());
        if let Some(mut c) = key.and_then(|k| s.containers.remove(&k)) {
            c.stop_with(ExitStatus::code(137));
        }
        Ok(())
    }

    async fn pause(&self, id: &str) -> Result<()> {
        self.call("pause", &self.name_of(id))?;
        self.with_container(id, |c| c.paused = true)
    }

    async fn unpause(&self, id: &str) -> Result<()> {
        self.call("unpause", &self.name_of(id))?;
        self.with_container(id, |c| c.paused = false)
    }

    async fn disconnect(&self, id: &str, _network: &str) -> Result<()> {
        self.call("disconnect", &self.name_of(id))?;
        self.with_container(id, |c| c.connected = false)
    }

    async fn connect(&self, id: &str, _network: &str, _aliases: &[String]) -> Result<()> {
        self.call("connect", &self.name_of(id))?;
        self.with_container(id, |c| c.connected = true)
    }

    fn follow_logs(&self, id: &str) -> LogStream {
        let (tx, rx) = mpsc::unbounded_channel();
        let _ = self.with_container(id, |c| {
            for line in &c.logs {
                let _ = tx.send(Ok(line.clone()));
            }
            if c.running() {
                c.followers.push(tx);
            }
        });
        Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|line| (line, rx))
        }))
    }

    fn usage(&self, _id: &str) -> UsageStream {
        Box::pin(futures_util::stream::pending().boxed())
    }

    async fn signal(&self, id: &str, signal: &str) -> Result<()> {
        self.call(&format!("signal {signal}"), &self.name_of(id))?;
        self.with_container(id, |_| ())
    }

    async fn log_tail(&self, id: &str, lines: usize, max_line: usize) -> Vec<LogLine> {
        if lock(&self.state).dead.is_some() {
            return Vec::new();
        }
        self.with_container(id, |c| {
            let skip = c.logs.len().saturating_sub(lines);
            c.logs[skip..]
                .iter()
                .map(|l| {
                    // As an engine does: the first `max_line` bytes, on a character boundary.
                    let mut keep = l.text.len().min(max_line);
                    while !l.text.is_char_boundary(keep) {
                        keep -= 1;
                    }
                    LogLine {
                        stderr: l.stderr,
                        text: l.text[..keep].to_string(),
                        cut: l.text.len() - keep,
                    }
                })
                .collect()
        })
        .unwrap_or_default()
    }

    async fn exec(&self, id: &str, _for_whom: &str, request: &ExecRequest) -> Result<ExecOutput> {
        self.call("exec", &self.name_of(id))?;
        let answer = self.with_container(id, |c| c.script.exec.clone())?;
        Ok(match answer {
            Some(f) => f(request),
            None => ExecOutput {
                exit_code: 0,
                stdout: request.argv.join(" "),
                stderr: String::new(),
            },
        })
    }

    // --- Files, output and host files (container options) ---

    fn sees_host_files(&self) -> bool {
        !lock(&self.state).remote
    }

    async fn copy_in(&self, id: &str, _for_whom: &str, entries: &[FileEntry]) -> Result<()> {
        self.call("copy_in", &self.name_of(id))?;
        self.with_container(id, |c| {
            for e in entries {
                c.files.insert(e.path.clone(), e.clone());
            }
        })
    }

    async fn copy_out(&self, id: &str, for_whom: &str, path: &str) -> Result<Vec<FileEntry>> {
        self.call("copy_out", &self.name_of(id))?;
        let files = self.with_container(id, |c| c.files.clone())?;
        let parent = path.rsplit_once('/').map_or("", |(p, _)| p);
        let below = format!("{path}/");
        let found: Vec<FileEntry> = files
            .values()
            .filter(|f| f.path == path || f.path.starts_with(&below))
            .map(|f| FileEntry {
                path: f.path[parent.len()..].trim_start_matches('/').to_string(),
                ..f.clone()
            })
            .collect();
        if found.is_empty() {
            return Err(Error::Copy {
                runnable: for_whom.to_string(),
                what: format!("{path} out of the container"),
                reason: format!("{path} does not exist in the container"),
                source: None,
            });
        }
        Ok(found)
    }

    async fn output(&self, id: &str, _for_whom: &str) -> Result<Output> {
        self.call("output", &self.name_of(id))?;
        self.with_container(id, |c| {
            let mut out = Output::default();
            for l in &c.logs {
                let stream = if l.stderr {
                    &mut out.stderr
                } else {
                    &mut out.stdout
                };
                stream.push_str(&l.text);
                stream.push('\n');
            }
            out
        })
    }

    async fn health(&self, id: &str, _for_whom: &str) -> Result<ContainerHealth> {
        let name = self.name_of(id);
        self.call("health", &name)?;
        let s = lock(&self.state);
        let container = s.containers.get(id).ok_or_else(|| {
            Error::engine(
                format!("inspecting {id}"),
                FakeError(format!("no such container: {id}")),
            )
        })?;
        if let Some(health) = s.health.get(&name) {
            return Ok(health.clone());
        }
        let defined = container.spec.health_check.is_some()
            || s.health_checked_images.contains(&container.spec.image);
        Ok(if defined {
            ContainerHealth::Starting { last: None }
        } else {
            ContainerHealth::NoHealthCheck
        })
    }

    async fn image_has_health_check(&self, image: &str) -> Result<bool> {
        self.call("image_has_health_check", image)?;
        Ok(lock(&self.state).health_checked_images.contains(image))
    }

    async fn build_image(&self, request: &BuildRequest) -> Result<()> {
        self.call("build_image", &request.tag)?;
        let mut s = lock(&self.state);
        s.builds.push(request.clone());
        s.images.insert(request.tag.clone());
        Ok(())
    }
}
