//! Bring-up and teardown of 8 services on a Docker Swarm: e2ekit's Swarm engine against raw
//! Swarm API calls on the same 3-node swarm, with e2ekit on the local Docker engine alongside.
//!
//! The swarm is real: three private `dockerd`s in their own network namespaces
//! (`e2ekit-test-engines`), formed into a swarm at start and torn down at the end. Each round
//! runs the same workload three ways:
//!
//! 1. **e2ekit on the swarm**: `Environment::builder().engine(Engine::swarm(manager)).build()`
//!    (timed as "build"), 8 runnables started with `start_and_wait_ready` (timed as "starts"),
//!    then `env.close()` (teardown);
//! 2. **e2ekit on the local Docker engine**: the same with the default engine;
//! 3. **raw Swarm API** (`bollard` against the same manager, the least a hand-written harness
//!    does for the same result): an attachable overlay network ("build"), 8 services created
//!    concurrently (one replica, restart condition none, one `node.id==X` constraint per
//!    service round robin over the nodes as e2ekit places them, DNS round robin) and one
//!    task listing every 10 ms until all 8 tasks run ("starts"); teardown removes the
//!    services, force-removes their containers on their nodes (as e2ekit does: a node's
//!    agent removes them only when it gets round to it), removes the network (retrying while
//!    the nodes still hold endpoints) and waits until the manager's engine no longer lists
//!    it and no node lists a container of the round.
//!
//! Besides the timings, each swarm run asks the manager afterwards (outside the timed windows)
//! when it created each service and when each task entered RUNNING, so the report shows how
//! much of the bring-up comes before the services exist and how much is the swarm's own work.
//!
//! The workload: a static busybox image built from `/bin/busybox` with `HostImage`, running
//! `sh -c "trap 'exit 0' TERM; sleep 3600 & wait"` (a bare `sleep` as PID 1 ignores SIGTERM,
//! so every graceful stop would wait for the kill), no published port, no readiness probe:
//! a runnable is ready when its container runs. One unmeasured warm-up round goes first; its
//! e2ekit swarm run also streams the image from the manager into the nodes, so the raw runs
//! find it there.
//!
//! Run (as root, with `dockerd`, `ip`, `iptables`, `nsenter`): `cargo bench -p e2ekit --bench
//! swarm` (rounds: `E2EKIT_BENCH_ROUNDS`, default 10: with five, single rounds' ratios range
//! 0.8–1.4× on a loaded machine). Everything a run creates carries `e2ekit.env=bench-swarm-…`
//! and is removed after every run (also after a failed or panicking one) and on Ctrl-C; the
//! swarm itself goes at the end.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bollard::models::{
    EndpointSpec, EndpointSpecModeEnum, NetworkAttachmentConfig, NetworkCreateRequest, NodeState,
    ServiceSpec, ServiceSpecMode, ServiceSpecModeReplicated, TaskSpec, TaskSpecContainerSpec,
    TaskSpecPlacement, TaskSpecRestartPolicy, TaskSpecRestartPolicyConditionEnum, TaskState,
};
use bollard::query_parameters::{
    ListContainersOptionsBuilder, ListServicesOptionsBuilder, ListTasksOptionsBuilder,
    RemoveContainerOptionsBuilder,
};
use bollard::Docker;
use e2ekit::labels::{owner, ENV, OWNER};
use e2ekit::prelude::*;
use e2ekit_test_engines::{Cluster, PrivateEngine};
use futures_util::future::{join_all, try_join_all};

#[allow(dead_code)] // uses a subset
mod common;
use common::{median, min_max, ms, BoxError, Res};

/// Services per scenario.
const N: usize = 8;
/// Nodes of the test swarm.
const NODES: usize = 3;
/// Prefix of every environment name this benchmark creates.
const PREFIX: &str = "bench-swarm";
/// Pause of the raw harness between two task listings.
const RAW_POLL: Duration = Duration::from_millis(10);
/// Give up on a run's bring-up or teardown step after this long.
const DEADLINE: Duration = Duration::from_secs(120);
/// Idle time between two measured runs, so one's cleanup does not slow the next.
const SETTLE: Duration = Duration::from_millis(500);

/// The service's command: sleeps, and ends at once on SIGTERM.
fn workload() -> Vec<String> {
    ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]
        .map(String::from)
        .to_vec()
}

/// What one run measured.
#[derive(Debug, Clone, Default)]
struct Sample {
    /// Environment built / network created.
    build: Duration,
    /// From the first start until all 8 run (ready).
    starts: Duration,
    /// Per service, when its start returned (e2ekit) or its task was seen running (raw),
    /// after the first start.
    started: Vec<Duration>,
    /// `close()` / removal of everything until gone.
    teardown: Duration,
    /// Per service, when the swarm created it (its `CreatedAt`), after the first start.
    created: Vec<Duration>,
    /// Per service, when its task entered RUNNING (the task status timestamp), after the
    /// first start.
    running: Vec<Duration>,
}

impl Sample {
    fn bring_up(&self) -> Duration {
        self.build + self.starts
    }
}

// ---------------------------------------------------------------------------------------------
// e2ekit (swarm or local engine)

/// `manager`: the swarm's manager, asked after the bring-up when the services were created
/// and their tasks ran (`None` on the local engine).
async fn e2ekit_run(
    engine: Engine,
    env_name: String,
    image: String,
    manager: Option<Docker>,
) -> Res<Sample> {
    let t0 = Instant::now();
    let env = Environment::builder()
        .name(&env_name)
        .engine(engine)
        .build()
        .await?;
    let build = t0.elapsed();
    let t1_sys = SystemTime::now();
    let result = e2ekit_starts(&env, &image).await;
    // Outside the timings: when the swarm created each service and ran its task.
    let observed = match (&result, &manager) {
        (Ok(_), Some(m)) => Some(observe(m, &env_name, t1_sys).await),
        _ => None,
    };
    let t2 = Instant::now();
    env.close().await;
    let teardown = t2.elapsed();
    let (starts, started) = result?;
    let (created, running) = observed.transpose()?.unwrap_or_default();
    Ok(Sample {
        build,
        starts,
        started,
        teardown,
        created,
        running,
    })
}

/// Defines the 8 runnables and does what `start_and_wait_ready` does (a concurrent `start`
/// then `wait_ready` per runnable, first error wins), noting when each start returned.
async fn e2ekit_starts(env: &Environment, image: &str) -> Res<(Duration, Vec<Duration>)> {
    let runnables = (0..N)
        .map(|i| {
            env.runnable(format!("svc{i}"))
                .init(StartOptions::new(image).command(Command::new("sh").args(&workload()[1..])))
        })
        .collect::<e2ekit::Result<Vec<Runnable>>>()?;
    let t1 = Instant::now();
    let started = try_join_all(runnables.iter().map(|r| async move {
        r.start().await?;
        let started = t1.elapsed();
        r.wait_ready().await?;
        Ok::<_, e2ekit::Error>(started)
    }))
    .await?;
    Ok((t1.elapsed(), started))
}

// ---------------------------------------------------------------------------------------------
// Raw Swarm API

/// The manager and a connection to every node's engine, made once (outside the timings).
struct Raw {
    manager: Docker,
    /// (node id, its engine), in node id order (e2ekit's round-robin order too).
    nodes: Vec<(String, Docker)>,
}

async fn connect_tcp(endpoint: &str) -> Res<Docker> {
    let docker = Docker::connect_with_http(endpoint, 120, bollard::API_DEFAULT_VERSION)?
        .negotiate_version()
        .await
        .map_err(|e| format!("{endpoint}: {e}"))?;
    Ok(docker)
}

impl Raw {
    async fn connect(manager: &str) -> Res<Raw> {
        let docker = connect_tcp(manager).await?;
        let mut nodes = Vec::new();
        for node in docker.list_nodes(None).await? {
            let status = node.status.unwrap_or_default();
            if status.state != Some(NodeState::READY) {
                continue;
            }
            let (Some(id), Some(addr)) = (node.id, status.addr) else {
                continue;
            };
            nodes.push((id, connect_tcp(&format!("tcp://{addr}:2375")).await?));
        }
        nodes.sort_by(|a, b| a.0.cmp(&b.0));
        if nodes.len() != NODES {
            return Err(format!("the swarm has {} ready nodes, not {NODES}", nodes.len()).into());
        }
        Ok(Raw {
            manager: docker,
            nodes,
        })
    }
}

/// The labels e2ekit puts on its own resources. The owner label matters: any e2ekit
/// environment build removes labelled environments without a live owner, which would
/// otherwise take the raw run's services in the middle of a round.
fn env_labels(env_name: &str) -> HashMap<String, String> {
    HashMap::from([
        (ENV.to_string(), env_name.to_string()),
        (OWNER.to_string(), owner().to_string()),
    ])
}

fn raw_service(env_name: &str, i: usize, node: &str, image: &str) -> ServiceSpec {
    let labels = env_labels(env_name);
    ServiceSpec {
        name: Some(format!("{env_name}-svc{i}")),
        labels: Some(labels.clone()),
        task_template: Some(TaskSpec {
            container_spec: Some(TaskSpecContainerSpec {
                image: Some(image.to_string()),
                labels: Some(labels),
                command: Some(workload()),
                ..Default::default()
            }),
            restart_policy: Some(TaskSpecRestartPolicy {
                condition: Some(TaskSpecRestartPolicyConditionEnum::NONE),
                ..Default::default()
            }),
            placement: Some(TaskSpecPlacement {
                constraints: Some(vec![format!("node.id=={node}")]),
                ..Default::default()
            }),
            networks: Some(vec![NetworkAttachmentConfig {
                target: Some(env_name.to_string()),
                aliases: Some(vec![format!("svc{i}")]),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        mode: Some(ServiceSpecMode {
            replicated: Some(ServiceSpecModeReplicated { replicas: Some(1) }),
            ..Default::default()
        }),
        endpoint_spec: Some(EndpointSpec {
            mode: Some(EndpointSpecModeEnum::DNSRR),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A running task: its service (id), node and container.
struct Task {
    service: String,
    node: String,
    container: String,
}

async fn raw_run(raw: &Raw, env_name: String, image: String) -> Res<Sample> {
    let t0 = Instant::now();
    raw.manager
        .create_network(NetworkCreateRequest {
            name: env_name.clone(),
            driver: Some("overlay".to_string()),
            attachable: Some(true),
            labels: Some(env_labels(&env_name)),
            ..Default::default()
        })
        .await?;
    let build = t0.elapsed();
    let t1_sys = SystemTime::now();
    let t1 = Instant::now();
    let mut tasks = Vec::new();
    let result = raw_starts(raw, &env_name, &image, t1, &mut tasks).await;
    let starts = t1.elapsed();
    let observed = match &result {
        Ok(_) => Some(observe(&raw.manager, &env_name, t1_sys).await),
        Err(_) => None,
    };
    let t2 = Instant::now();
    let removed = raw_teardown(raw, &env_name, &tasks).await;
    let teardown = t2.elapsed();
    let started = result?;
    removed?;
    let (created, running) = observed.transpose()?.unwrap_or_default();
    Ok(Sample {
        build,
        starts,
        started,
        teardown,
        created,
        running,
    })
}

/// When the swarm created each service of `env_name` and when each one's task entered
/// RUNNING, after `t1` (the manager's engine shares this machine's clock).
async fn observe(
    manager: &Docker,
    env_name: &str,
    t1: SystemTime,
) -> Res<(Vec<Duration>, Vec<Duration>)> {
    let label = HashMap::from([("label".to_string(), vec![format!("{ENV}={env_name}")])]);
    let services = manager
        .list_services(Some(
            ListServicesOptionsBuilder::default()
                .filters(&label)
                .build(),
        ))
        .await?;
    let after_t1 = |at: Option<&str>| -> Res<Duration> {
        let at = at
            .and_then(parse_rfc3339)
            .ok_or("a swarm timestamp that is not RFC 3339")?;
        Ok(at.duration_since(t1).unwrap_or_default())
    };
    let mut created = Vec::new();
    let mut ids = Vec::new();
    for svc in services {
        created.push(after_t1(svc.created_at.as_deref())?);
        ids.extend(svc.id);
    }
    let filters = HashMap::from([("service".to_string(), ids)]);
    let tasks = manager
        .list_tasks(Some(
            ListTasksOptionsBuilder::default().filters(&filters).build(),
        ))
        .await?;
    let mut running = Vec::new();
    for t in tasks {
        let status = t.status.unwrap_or_default();
        if status.state == Some(TaskState::RUNNING) {
            running.push(after_t1(status.timestamp.as_deref())?);
        }
    }
    Ok((created, running))
}

/// `2026-11-30T11:12:00.123456789Z` (UTC, as the engine writes it) as a `SystemTime`.
fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.splitn(3, ':').map(|p| p.parse::<i64>().ok());
    let (hh, mm, ss) = (t.next()??, t.next()??, t.next()??);
    let nanos: u32 = format!("{frac:0<9}").get(..9)?.parse().ok()?;
    // Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = u64::try_from(days * 86_400 + hh * 3600 + mm * 60 + ss).ok()?;
    Some(UNIX_EPOCH + Duration::new(secs, nanos))
}

/// Creates the services concurrently and lists their tasks until all run; `tasks` gets every
/// running task seen (also on failure, for the teardown).
async fn raw_starts(
    raw: &Raw,
    env_name: &str,
    image: &str,
    t1: Instant,
    tasks: &mut Vec<Task>,
) -> Res<Vec<Duration>> {
    let created = join_all((0..N).map(|i| {
        let node = &raw.nodes[i % raw.nodes.len()].0;
        raw.manager
            .create_service(raw_service(env_name, i, node, image), None)
    }))
    .await;
    let mut ids = Vec::new();
    for c in created {
        ids.push(c?.id.ok_or("a created service without an id")?);
    }
    let filters = HashMap::from([("service".to_string(), ids)]);
    let mut started = Vec::new();
    loop {
        let listed = raw
            .manager
            .list_tasks(Some(
                ListTasksOptionsBuilder::default().filters(&filters).build(),
            ))
            .await?;
        for t in listed {
            let status = t.status.unwrap_or_default();
            let state = status.state.unwrap_or(TaskState::NEW);
            let container = status
                .container_status
                .and_then(|c| c.container_id)
                .filter(|c| !c.is_empty());
            match (state, container, t.node_id, t.service_id) {
                (TaskState::RUNNING, Some(container), Some(node), Some(service))
                    if !tasks.iter().any(|t| t.service == service) =>
                {
                    tasks.push(Task {
                        service,
                        node,
                        container,
                    });
                    started.push(t1.elapsed());
                }
                (
                    TaskState::FAILED
                    | TaskState::REJECTED
                    | TaskState::COMPLETE
                    | TaskState::SHUTDOWN
                    | TaskState::ORPHANED,
                    ..,
                ) => {
                    return Err(format!(
                        "a task of {env_name} ended in state {state:?}: {}",
                        status.err.or(status.message).unwrap_or_default()
                    )
                    .into())
                }
                _ => {}
            }
        }
        if tasks.len() == N {
            return Ok(started);
        }
        if t1.elapsed() > DEADLINE {
            return Err(format!("{env_name}: tasks not all running after {DEADLINE:?}").into());
        }
        tokio::time::sleep(RAW_POLL).await;
    }
}

fn is_404(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

/// Removes the services, each one's container at once on its node, then the network, and
/// waits until the manager's engine and the nodes hold nothing of the run.
async fn raw_teardown(raw: &Raw, env_name: &str, tasks: &[Task]) -> Res<()> {
    let force = RemoveContainerOptionsBuilder::default()
        .force(true)
        .v(true)
        .build();
    // By name: also the services whose task never ran.
    let removals = join_all((0..N).map(|i| {
        let name = format!("{env_name}-svc{i}");
        let force = force.clone();
        async move {
            let id = match raw.manager.inspect_service(&name, None).await {
                Ok(s) => s.id.unwrap_or_default(),
                Err(e) if is_404(&e) => return Ok(()),
                Err(e) => return Err(BoxError::from(e)),
            };
            match raw.manager.delete_service(&id).await {
                Err(e) if !is_404(&e) => return Err(e.into()),
                _ => {}
            }
            for t in tasks.iter().filter(|t| t.service == id) {
                let Some((_, engine)) = raw.nodes.iter().find(|(n, _)| *n == t.node) else {
                    continue;
                };
                match engine
                    .remove_container(&t.container, Some(force.clone()))
                    .await
                {
                    Err(e) if !is_404(&e) => return Err(e.into()),
                    _ => {}
                }
            }
            Ok(())
        }
    }))
    .await;
    for r in removals {
        r?;
    }
    let deadline = Instant::now() + DEADLINE;
    // The swarm refuses while a node still holds an endpoint of a removed task.
    loop {
        match raw.manager.remove_network(env_name).await {
            Ok(()) => break,
            Err(e) if is_404(&e) => break,
            Err(e) if Instant::now() < deadline && e.to_string().contains("active endpoints") => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
    // The manager's engine lists the network until its own node let go of it.
    while raw
        .manager
        .inspect_network(
            env_name,
            None::<bollard::query_parameters::InspectNetworkOptions>,
        )
        .await
        .is_ok()
    {
        if Instant::now() > deadline {
            return Err(format!("network {env_name} still listed after {DEADLINE:?}").into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let filters = HashMap::from([("label".to_string(), vec![format!("{ENV}={env_name}")])]);
    for (node, engine) in &raw.nodes {
        loop {
            let left = engine
                .list_containers(Some(
                    ListContainersOptionsBuilder::default()
                        .all(true)
                        .filters(&filters)
                        .build(),
                ))
                .await?;
            if left.is_empty() {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!("node {node} still has {} containers", left.len()).into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Cleanup: through the library's own sweep API, by environment name

/// The engine string the sweep API takes for the swarm (`None`: the local engine).
fn sweep_engine(manager: Option<&str>) -> Option<String> {
    manager.map(|m| format!("swarm+{m}"))
}

/// Removes every environment whose name starts with [`PREFIX`] (or is `only`) on the swarm
/// (`manager`) or the local engine; how many resources there were.
async fn sweep(manager: Option<&str>, only: Option<&str>) -> Res<usize> {
    let engine = sweep_engine(manager);
    let mut removed = 0;
    let mut first_error: Option<BoxError> = None;
    for env in e2ekit::sweep::list_environments(engine.as_deref()).await? {
        let ours = match only {
            Some(name) => env.name == name,
            None => env.name.starts_with(PREFIX),
        };
        if !ours {
            continue;
        }
        match e2ekit::sweep::remove_environment(engine.as_deref(), &env.name).await {
            Ok(()) => removed += env.containers + env.networks,
            Err(e) => {
                first_error.get_or_insert(e.into());
            }
        }
    }
    first_error.map_or(Ok(removed), Err)
}

async fn sweep_run(manager: Option<&str>, env_name: &str) {
    match sweep(manager, Some(env_name)).await {
        Ok(0) => {}
        Ok(n) => eprintln!("bench: removed {n} leftover resources of {env_name}"),
        Err(e) => eprintln!("bench: cleaning up {env_name}: {e}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Driver

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Kind {
    /// e2ekit, Swarm engine.
    Swarm,
    /// Raw Swarm API.
    Raw,
    /// e2ekit, local Docker engine.
    Local,
}

impl Kind {
    fn tag(self) -> &'static str {
        match self {
            Kind::Swarm => "e2e",
            Kind::Raw => "raw",
            Kind::Local => "local",
        }
    }
}

struct Setup {
    manager: String,
    raw: std::sync::Arc<Raw>,
    swarm_image: String,
    local_image: String,
}

/// Runs one scenario in its own task (so a panic is contained) and always sweeps after it.
async fn run_one(setup: &Setup, kind: Kind, env_name: String) -> Option<Sample> {
    let task = match kind {
        Kind::Swarm => tokio::spawn(e2ekit_run(
            Engine::swarm(setup.manager.clone()),
            env_name.clone(),
            setup.swarm_image.clone(),
            Some(setup.raw.manager.clone()),
        )),
        Kind::Local => tokio::spawn(e2ekit_run(
            Engine::docker(),
            env_name.clone(),
            setup.local_image.clone(),
            None,
        )),
        Kind::Raw => {
            let raw = setup.raw.clone();
            let (name, image) = (env_name.clone(), setup.swarm_image.clone());
            tokio::spawn(async move { raw_run(&raw, name, image).await })
        }
    };
    let outcome = task.await;
    let manager = (kind != Kind::Local).then_some(setup.manager.as_str());
    sweep_run(manager, &env_name).await;
    tokio::time::sleep(SETTLE).await;
    match outcome {
        Ok(Ok(s)) => Some(s),
        Ok(Err(e)) => {
            eprintln!("bench: {kind:?} run {env_name} failed: {e}");
            None
        }
        Err(e) => {
            eprintln!("bench: {kind:?} run {env_name} panicked: {e}");
            None
        }
    }
}

/// The busybox image, built into the engine (on a swarm: into the manager's engine).
async fn build_image(engine: Engine, env_name: &str) -> Res<String> {
    let env = Environment::builder()
        .name(env_name)
        .engine(engine)
        .build()
        .await?;
    let image = HostImage::new("e2ekit-bench/busybox")
        .binary_at("/bin/busybox", "/bin/busybox")
        .symlink("/bin/sh", "/bin/busybox")
        .symlink("/bin/sleep", "/bin/busybox")
        .build(&env)
        .await;
    env.close().await;
    Ok(image?)
}

fn fmt_range(v: &[f64]) -> String {
    // Only the swarm runs have swarm timestamps.
    if v.iter().all(|x| x.is_nan()) {
        return "–".to_string();
    }
    let (lo, hi) = min_max(v);
    format!("{:.0} ms ({:.0}–{:.0})", median(v), lo, hi)
}

fn print_report(runs: &HashMap<Kind, Vec<Sample>>, pairs: &[(f64, f64)], rounds: usize) {
    let empty = Vec::new();
    let of = |k: Kind| runs.get(&k).unwrap_or(&empty);
    let col = |k: Kind, f: &dyn Fn(&Sample) -> f64| of(k).iter().map(f).collect::<Vec<f64>>();
    println!();
    println!(
        "swarm bench: {N} services (busybox sh+sleep, no port, no probe) on a {NODES}-node swarm of private dockerds on this machine"
    );
    println!(
        "rounds: {rounds} requested; succeeded: e2ekit swarm {}, raw swarm {}, e2ekit local {}; medians (min–max over rounds)",
        of(Kind::Swarm).len(),
        of(Kind::Raw).len(),
        of(Kind::Local).len()
    );
    println!();
    println!(
        "| {:<34} | {:<22} | {:<22} | {:>7} | {:<22} |",
        "metric", "e2ekit swarm", "raw swarm", "ratio", "e2ekit local docker"
    );
    println!(
        "|{:-<36}|{:-<24}|{:-<24}|{:->9}|{:-<24}|",
        "", "", "", "", ""
    );
    type Metric<'a> = (&'a str, &'a dyn Fn(&Sample) -> f64);
    let first = |v: &[Duration]| v.iter().copied().min().map_or(f64::NAN, ms);
    let last = |v: &[Duration]| v.iter().copied().max().map_or(f64::NAN, ms);
    let metrics: [Metric; 12] = [
        ("environment build / network", &|s| ms(s.build)),
        ("starts: first start to all ready", &|s| ms(s.starts)),
        ("  first service created (swarm)", &|s| first(&s.created)),
        ("  last service created (swarm)", &|s| last(&s.created)),
        ("  first task running (swarm)", &|s| first(&s.running)),
        ("  last task running (swarm)", &|s| last(&s.running)),
        ("  last start returned", &|s| last(&s.started)),
        ("  = last task running + this", &|s| {
            last(&s.started) - last(&s.running)
        }),
        ("  first start returned", &|s| {
            s.started.iter().copied().min().map_or(f64::NAN, ms)
        }),
        ("  median start returned", &|s| {
            median(&s.started.iter().copied().map(ms).collect::<Vec<_>>())
        }),
        ("bring-up = build + starts", &|s| ms(s.bring_up())),
        ("teardown", &|s| ms(s.teardown)),
    ];
    for (label, f) in metrics {
        let (a, b, c) = (col(Kind::Swarm, f), col(Kind::Raw, f), col(Kind::Local, f));
        println!(
            "| {:<34} | {:<22} | {:<22} | {:>6.2}x | {:<22} |",
            label,
            fmt_range(&a),
            fmt_range(&b),
            median(&a) / median(&b),
            fmt_range(&c)
        );
    }
    let bring: Vec<f64> = pairs.iter().map(|p| p.0).collect();
    let td: Vec<f64> = pairs.iter().map(|p| p.1).collect();
    println!();
    println!(
        "paired (same round) ratios e2ekit swarm / raw swarm over {} rounds, median (min–max): bring-up {:.2}x ({:.2}–{:.2}), teardown {:.2}x ({:.2}–{:.2}); target <= 1.2x",
        pairs.len(),
        median(&bring),
        min_max(&bring).0,
        min_max(&bring).1,
        median(&td),
        min_max(&td).0,
        min_max(&td).1,
    );
    let verdict = |r: f64| if r <= 1.2 { "ok" } else { "MISSED" };
    let bring_ratio = median(&col(Kind::Swarm, &|s| ms(s.bring_up())))
        / median(&col(Kind::Raw, &|s| ms(s.bring_up())));
    let td_ratio = median(&col(Kind::Swarm, &|s| ms(s.teardown)))
        / median(&col(Kind::Raw, &|s| ms(s.teardown)));
    println!(
        "verdict (ratio of medians, target <= 1.2x raw): bring-up {bring_ratio:.2}x {}, teardown {td_ratio:.2}x {}",
        verdict(bring_ratio),
        verdict(td_ratio)
    );
}

async fn bench(setup: &Setup, rounds: usize) -> Res<bool> {
    // Warm-up: e2ekit's swarm run first, so the image reaches the nodes before the raw run.
    println!("bench: warm-up");
    for kind in [Kind::Swarm, Kind::Raw, Kind::Local] {
        let name = format!("{PREFIX}-{}-warm", kind.tag());
        if run_one(setup, kind, name).await.is_none() {
            return Err(format!("{kind:?} warm-up failed").into());
        }
    }
    let mut runs: HashMap<Kind, Vec<Sample>> = HashMap::new();
    let mut pairs = Vec::new();
    let kinds = [Kind::Swarm, Kind::Raw, Kind::Local];
    for round in 0..rounds {
        // Rotate the order so no kind always runs first or right after another's cleanup.
        let mut order = kinds;
        order.rotate_left(round % kinds.len());
        let mut this: HashMap<Kind, Sample> = HashMap::new();
        for kind in order {
            let name = format!("{PREFIX}-{}-r{round}", kind.tag());
            if let Some(s) = run_one(setup, kind, name).await {
                println!(
                    "bench: round {round} {kind:?}: build {:.0} ms, starts {:.0} ms, bring-up {:.0} ms, teardown {:.0} ms",
                    ms(s.build),
                    ms(s.starts),
                    ms(s.bring_up()),
                    ms(s.teardown)
                );
                this.insert(kind, s);
            }
        }
        if let (Some(a), Some(b)) = (this.get(&Kind::Swarm), this.get(&Kind::Raw)) {
            pairs.push((
                ms(a.bring_up()) / ms(b.bring_up()),
                ms(a.teardown) / ms(b.teardown),
            ));
        }
        for (k, s) in this {
            runs.entry(k).or_default().push(s);
        }
    }
    if runs.get(&Kind::Swarm).is_none_or(Vec::is_empty)
        || runs.get(&Kind::Raw).is_none_or(Vec::is_empty)
    {
        return Err("no successful e2ekit swarm or raw swarm run; nothing to compare".into());
    }
    print_report(&runs, &pairs, rounds);
    Ok(kinds
        .iter()
        .all(|k| runs.get(k).map_or(0, Vec::len) == rounds))
}

async fn prepare(manager: &str) -> Res<Setup> {
    let local =
        Docker::connect_with_defaults().map_err(|e| format!("the local Docker engine: {e}"))?;
    local
        .ping()
        .await
        .map_err(|e| format!("the local Docker engine does not answer: {e}"))?;
    // Leftovers of a killed earlier run on the local engine (the swarm is new).
    if let Ok(n @ 1..) = sweep(None, None).await {
        eprintln!("bench: removed {n} leftovers of an earlier run");
    }
    let raw = Raw::connect(manager).await?;
    let swarm_image = build_image(
        Engine::swarm(manager.to_string()),
        &format!("{PREFIX}-image"),
    )
    .await?;
    let local_image = build_image(Engine::docker(), &format!("{PREFIX}-image")).await?;
    println!("bench: image {swarm_image} (swarm manager), {local_image} (local engine)");
    Ok(Setup {
        manager: manager.to_string(),
        raw: std::sync::Arc::new(raw),
        swarm_image,
        local_image,
    })
}

/// Why this bench cannot run here, if it cannot.
fn cannot_run() -> Option<String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Some(
            "it needs root (the swarm's nodes are private dockerds in network namespaces)"
                .to_string(),
        );
    }
    if !std::path::Path::new("/bin/busybox").is_file() {
        return Some(
            "it needs a static busybox at /bin/busybox (apt-get install busybox-static)".into(),
        );
    }
    for tool in ["/usr/sbin/dockerd", "/usr/bin/docker"] {
        if !std::path::Path::new(tool).is_file() {
            return Some(format!("it needs {tool} (Docker's engine and CLI)"));
        }
    }
    None
}

fn runtime(multi_thread: bool) -> tokio::runtime::Runtime {
    let mut builder = if multi_thread {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bench: cannot build a tokio runtime: {e}");
            std::process::exit(1);
        }
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("swarm: bench");
        return;
    }
    // This bench handles Ctrl-C itself: it closes its environments, sweeps and then tears the
    // swarm down; e2ekit's handler would re-raise the signal and end the process before the
    // swarm's engines are stopped. Set before any thread exists.
    std::env::set_var("E2EKIT_NO_SIGNAL_HANDLER", "1");
    if let Some(why) = cannot_run() {
        eprintln!("bench: CANNOT RUN the swarm benchmark: {why}");
        std::process::exit(2);
    }
    let rounds = std::env::var("E2EKIT_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|r| *r > 0)
        .unwrap_or(10);

    println!("bench: starting a {NODES}-node swarm");
    let cluster = match Cluster::start_with(NODES, PrivateEngine::builder().default_route(false))
        .map_err(|e| e.to_string())
        .and_then(|c| match c.init_swarm() {
            Ok(()) => Ok(c),
            // Dropping the cluster tears its engines down.
            Err(e) => Err(format!("forming the swarm: {e}")),
        }) {
        Ok(c) => c,
        Err(e) => {
            eprintln!(
                "bench: CANNOT RUN the swarm benchmark: no {NODES}-node test swarm (root, dockerd, nsenter, ip, iptables): {e}"
            );
            std::process::exit(2);
        }
    };
    let manager = match cluster.engines()[0].tcp_host() {
        Some(m) => m,
        None => {
            eprintln!("bench: the swarm's manager has no TCP listener");
            drop(cluster);
            std::process::exit(2);
        }
    };
    println!("bench: swarm manager {manager}");

    let main_rt = runtime(true);
    let outcome: Res<bool> = main_rt.block_on(async {
        tokio::select! {
            r = async { bench(&prepare(&manager).await?, rounds).await } => r,
            _ = tokio::signal::ctrl_c() => Err("interrupted".into()),
        }
    });
    // Dropping the runtime cancels a run still in flight (after Ctrl-C); its environment
    // closes on drop. Only then is the final sweep sure to see everything.
    drop(main_rt);
    let swept = runtime(false).block_on(async {
        let swarm = sweep(Some(&manager), None).await;
        let local = sweep(None, None).await;
        (swarm, local)
    });
    for (where_, r) in [("swarm", swept.0), ("local engine", swept.1)] {
        match r {
            Ok(0) => {}
            Ok(n) => {
                eprintln!("bench: final cleanup removed {n} leftover resources on the {where_}")
            }
            Err(e) => eprintln!("bench: final cleanup on the {where_} failed: {e}"),
        }
    }
    let stopped = cluster.stop();
    if let Err(e) = &stopped {
        eprintln!("bench: tearing the swarm down: {e}");
    }
    let code = match outcome {
        Ok(true) if stopped.is_ok() => 0,
        Ok(true) => 1,
        Ok(false) => {
            eprintln!("bench: some runs failed (see above)");
            1
        }
        Err(e) => {
            eprintln!("bench: {e}");
            1
        }
    };
    std::process::exit(code);
}
