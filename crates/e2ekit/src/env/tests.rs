//! Unit tests of environments and runnables on the in-memory engine: no Docker needed.
//!
//! Every test builds its own [`FakeEngine`], so engine state never leaks between tests; only
//! shared directories live on the host, under names made unique per process
//! ([`unique_name`]). Nothing here asserts on how long something took: tests assert on
//! outcomes, error variants and the order of engine calls. Where an effect is asynchronous
//! (a crash noticed by a background task), [`eventually`] waits for it with a generous bound
//! that only guards against hanging.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

use super::EnvironmentBuilder;
use crate::engine::fake::{FakeEngine, Script};
use crate::engine::{Backend, ContainerSpec, ExecOutput};
use crate::host::labels;
use crate::prelude::*;
use crate::spec::Mount;

// ---------------------------------------------------------------------------------------
// Helpers (also used by the metrics tests)
// ---------------------------------------------------------------------------------------

/// `base` made unique to this process, so two test processes on one host (two worktrees,
/// two `cargo test` runs) never share a shared directory.
pub(crate) fn unique_name(base: &str) -> String {
    format!("{base}-{}", std::process::id())
}

/// An environment on `fake`, named `unique_name(name)`.
pub(crate) async fn fake_env(fake: &FakeEngine, name: &str) -> Environment {
    build_on(fake, &unique_name(name), true, Vec::new(), None)
        .await
        .expect("an environment on the fake engine")
}

/// [`EnvironmentBuilder::build_on`] on the fake engine, with the name taken as is.
pub(crate) async fn build_on(
    fake: &FakeEngine,
    name: &str,
    explicit: bool,
    volumes: Vec<Mount>,
    cpus: Option<f64>,
) -> Result<Environment> {
    EnvironmentBuilder::build_on(
        Arc::new(fake.clone()),
        name.to_string(),
        explicit,
        volumes,
        cpus,
        false,
    )
    .await
}

/// Waits until `cond` holds; panics after ~10 s (a hang guard, not a timing assertion).
pub(crate) async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..10_000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("never happened: {what}");
}

/// A minimal HTTP/1.1 server on 127.0.0.1, written by hand on tokio: it answers every
/// request with the current status and body (both changeable while it runs) and records the
/// requested paths. It also serves as a TCP listener that keeps connections open.
#[derive(Clone)]
pub(crate) struct HttpServer {
    pub addr: SocketAddr,
    pub status: Arc<AtomicU16>,
    pub body: Arc<Mutex<String>>,
    paths: Arc<Mutex<Vec<String>>>,
}

impl HttpServer {
    pub(crate) async fn start(status: u16, body: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let server = Self {
            addr: listener.local_addr().expect("local addr"),
            status: Arc::new(AtomicU16::new(status)),
            body: Arc::new(Mutex::new(body.to_string())),
            paths: Arc::new(Mutex::new(Vec::new())),
        };
        let s = server.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(s.clone().answer(stream));
            }
        });
        server
    }

    async fn answer(self, mut stream: TcpStream) {
        let mut request = Vec::new();
        let mut buf = [0u8; 1024];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => request.extend_from_slice(&buf[..n]),
            }
        }
        let path = String::from_utf8_lossy(&request)
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_string();
        self.paths.lock().unwrap().push(path);
        let status = self.status.load(Ordering::SeqCst);
        let body = self.body.lock().unwrap().clone();
        let response = format!(
            "HTTP/1.1 {status} Whatever\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = stream.write_all(response.as_bytes()).await;
        let _ = stream.shutdown().await;
    }

    pub(crate) fn set(&self, status: u16, body: &str) {
        self.status.store(status, Ordering::SeqCst);
        self.set_body(body);
    }

    pub(crate) fn set_body(&self, body: &str) {
        *self.body.lock().unwrap() = body.to_string();
    }

    /// The paths requested so far.
    pub(crate) fn paths(&self) -> Vec<String> {
        self.paths.lock().unwrap().clone()
    }
}

/// A listener that accepts connections and closes them at once (a proxy with nothing behind).
async fn closing_listener() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            drop(stream);
        }
    });
    addr
}

/// An address where nothing listens: a socket bound but not listening keeps the port ours,
/// so connections to it are refused for as long as the socket lives.
fn dead_addr() -> (TcpSocket, SocketAddr) {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind("127.0.0.1:0".parse().expect("address"))
        .expect("bind");
    let addr = socket.local_addr().expect("local addr");
    (socket, addr)
}

/// A listener that records the names of the running runnables on every change.
fn record_changes(env: &Environment) -> Arc<Mutex<Vec<Vec<String>>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    env.add_listener(Arc::new(move |running: &[Runnable]| -> Result<()> {
        let names = running.iter().map(|r| r.name().to_string()).collect();
        s.lock().unwrap().push(names);
        Ok(())
    }));
    seen
}

/// A runnable on a scripted image, defined with one port `http` (8080).
fn define(env: &Environment, name: &str, opts: StartOptions) -> Runnable {
    env.runnable(name)
        .with_ports([("http", 8080)])
        .init(opts)
        .expect("defined")
}

fn short() -> WaitPolicy {
    WaitPolicy::timeout(Duration::from_millis(150))
}

/// The full chain of an error's messages.
fn chain(e: &Error) -> String {
    crate::env::ready::error_chain(e)
}

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

// ---------------------------------------------------------------------------------------
// Start, stop, kill, restart
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn start_creates_the_container_and_close_removes_everything() {
    let fake = FakeEngine::new();
    fake.script("img:1", Script::new().log("hello"));
    let env = fake_env(&fake, "fk-basic").await;
    let app = env
        .runnable("app")
        .init(StartOptions::new("img:1"))
        .expect("defined");
    app.start().await.expect("started");
    assert!(app.is_running());
    assert_eq!(fake.running(), [app.container_name()]);
    assert_eq!(fake.networks(), [env.name()]);
    env.close().await;
    assert!(fake.containers().is_empty());
    assert!(fake.networks().is_empty());
    assert!(!env.shared_dir().exists());
}

#[tokio::test]
async fn start_on_a_running_runnable_does_nothing() {
    let fake = FakeEngine::new();
    fake.add_image("img:1");
    let env = fake_env(&fake, "fk-start-twice").await;
    let app = define(&env, "app", StartOptions::new("img:1"));
    app.start().await.expect("started");
    app.start().await.expect("second start is a no-op");
    app.clone().start().await.expect("so is a clone's");
    assert_eq!(fake.calls_of(app.container_name()), ["create_and_start"]);
    assert_eq!(fake.running(), [app.container_name()]);
    env.close().await;
}

#[tokio::test]
async fn stop_stops_then_removes_and_the_runnable_can_start_again() {
    let fake = FakeEngine::new();
    fake.add_image("img:1");
    let env = fake_env(&fake, "fk-stop").await;
    let app = define(&env, "app", StartOptions::new("img:1"));
    app.start().await.expect("started");
    app.stop().await.expect("stopped");
    assert!(!app.is_running());
    assert!(fake.containers().is_empty(), "{:?}", fake.containers());
    app.start().await.expect("started again");
    assert!(app.is_running());
    assert_eq!(
        fake.calls_of(app.container_name()),
        ["create_and_start", "stop", "remove", "create_and_start"]
    );
    env.close().await;
}

#[tokio::test]
async fn a_killed_runnable_starts_again() {
    let fake = FakeEngine::new();
    fake.add_image("img:1");
    let env = fake_env(&fake, "fk-kill").await;
    let app = define(&env, "app", StartOptions::new("img:1"));
    app.start().await.expect("started");
    app.kill().await.expect("killed");
    assert!(!app.is_running());
    assert!(fake.running().is_empty());
    app.start().await.expect("started again");
    assert!(app.is_running());
    assert_eq!(fake.running(), [app.container_name()]);
    assert_eq!(
        fake.calls_of(app.container_name()),
        ["create_and_start", "kill", "remove", "create_and_start"]
    );
    env.close().await;
}

#[tokio::test]
async fn stop_and_kill_are_idempotent() {
    let fake = FakeEngine::new();
    fake.add_image("img:1");
    let env = fake_env(&fake, "fk-idem").await;
    let never = define(&env, "never", StartOptions::new("img:1"));
    never
        .stop()
        .await
        .expect("stop of a never-started runnable");
    never
        .kill()
        .await
        .expect("kill of a never-started runnable");
    assert!(fake.calls_of(never.container_name()).is_empty());

    let app = define(&env, "app", StartOptions::new("img:1"));
    app.start().await.expect("started");
    app.stop().await.expect("stopped");
    app.stop().await.expect("stopped again");
    app.kill().await.expect("killed after stop");
    assert_eq!(
        fake.calls_of(app.container_name()),
        ["create_and_start", "stop", "remove"]
    );
    env.close().await;
}

#[tokio::test]
async fn a_crashed_runnable_is_noticed_and_its_container_replaced_on_start() {
    let fake = FakeEngine::new();
    fake.add_image("img:1");
    let env = fake_env(&fake, "fk-crash-restart").await;
    let app = define(&env, "app", StartOptions::new("img:1"));
    app.start().await.expect("started");
    fake.exit(app.container_name(), 139);
    eventually("the crash is noticed", || !app.is_running()).await;
    // The dead container is still there (for its logs) until the next start replaces it.
    assert_eq!(fake.containers(), [app.container_name()]);
    app.start().await.expect("restarted");
    assert!(app.is_running());
    assert_eq!(
        fake.calls_of(app.container_name()),
        ["create_and_start", "remove", "create_and_start"]
    );
    env.close().await;
}

/// Start, stop and kill of one runnable from many tasks at once: the engine must see a
/// serial history (create only when not running, stop/kill only when running and followed
/// directly by the removal), and the runnable's final state must match that history.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_start_stop_and_kill_of_one_runnable_serialise() {
    let fake = FakeEngine::new();
    fake.add_image("img:1");
    let env = fake_env(&fake, "fk-serial").await;
    let app = define(&env, "app", StartOptions::new("img:1"));
    for round in 0..5 {
        let tasks: Vec<_> = (0..9)
            .map(|i| {
                let a = app.clone();
                tokio::spawn(async move {
                    match (i + round) % 3 {
                        0 => a.start().await,
                        1 => a.stop().await,
                        _ => a.kill().await,
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("task").expect("operation");
        }
    }
    let calls = fake.calls_of(app.container_name());
    let mut running = false;
    let mut it = calls.iter().peekable();
    while let Some(op) = it.next() {
        match op.as_str() {
            "create_and_start" => {
                assert!(!running, "created while running: {calls:?}");
                running = true;
            }
            "stop" | "kill" => {
                assert!(running, "{op} while not running: {calls:?}");
                assert_eq!(
                    it.next().map(String::as_str),
                    Some("remove"),
                    "{op} not followed by its removal: {calls:?}"
                );
                running = false;
            }
            other => panic!("unexpected call {other}: {calls:?}"),
        }
    }
    assert!(calls.iter().any(|c| c == "create_and_start"));
    assert_eq!(app.is_running(), running, "{calls:?}");
    assert_eq!(fake.running().len(), usize::from(running));
    env.close().await;
}

#[tokio::test]
async fn a_stop_during_a_slow_start_waits_for_the_start_to_finish() {
    let fake = FakeEngine::new();
    fake.add_image("img:1");
    let env = fake_env(&fake, "fk-slow-start").await;
    let app = define(&env, "app", StartOptions::new("img:1"));
    let gate = fake.hold_next("create_and_start");
    let starting = tokio::spawn({
        let app = app.clone();
        async move { app.start().await }
    });
    eventually("the engine is creating", || {
        fake.calls_of(app.container_name()) == ["create_and_start"]
    })
    .await;
    let stopping = tokio::spawn({
        let app = app.clone();
        async move { app.stop().await }
    });
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
    assert!(!stopping.is_finished(), "the stop must wait for the start");
    assert_eq!(fake.calls_of(app.container_name()), ["create_and_start"]);
    gate.notify_one();
    starting.await.expect("task").expect("started");
    stopping.await.expect("task").expect("stopped");
    assert_eq!(
        fake.calls_of(app.container_name()),
        ["create_and_start", "stop", "remove"]
    );
    assert!(!app.is_running());
    assert!(fake.containers().is_empty());
    env.close().await;
}

#[tokio::test]
async fn a_close_that_stopped_waiting_for_a_slow_start_leaves_the_start_to_undo_its_container() {
    let fake = FakeEngine::new();
    fake.add_image("img:1");
    let env = fake_env(&fake, "fk-close-mid-start").await;
    let app = define(&env, "app", StartOptions::new("img:1"));
    let gate = fake.hold_next("create_and_start");
    let starting = tokio::spawn({
        let app = app.clone();
        async move { app.start().await }
    });
    eventually("the engine is creating", || {
        fake.calls_of(app.container_name()) == ["create_and_start"]
    })
    .await;
    // The drop guard's case: a close that cannot wait for the start (short wait here).
    let core = env.core().clone();
    core.close_with(core.backend.as_ref(), Duration::from_millis(20))
        .await;
    gate.notify_one();
    let started = starting.await.expect("task");
    assert!(
        matches!(started, Err(Error::EnvironmentClosed { .. })),
        "{started:?}"
    );
    assert!(fake.containers().is_empty(), "{:?}", fake.containers());
    assert!(!app.is_running());
}

#[tokio::test]
async fn start_and_wait_ready_starts_every_runnable() {
    let fake = FakeEngine::new();
    fake.script("a:1", Script::new().log("a is ready"));
    fake.add_image("b:1");
    let env = fake_env(&fake, "fk-all-ready").await;
    let a = define(
        &env,
        "a",
        StartOptions::new("a:1").readiness(LogProbe::contains("ready")),
    );
    let b = define(&env, "b", StartOptions::new("b:1"));
    start_and_wait_ready(&[&a, &b]).await.expect("both ready");
    assert!(a.is_running() && b.is_running());
    let mut running = fake.running();
    running.sort();
    assert_eq!(running, [a.container_name(), b.container_name()]);
    env.close().await;
}

#[tokio::test]
async fn start_and_wait_ready_reports_the_runnable_that_failed() {
    let fake = FakeEngine::new();
    fake.add_image("ok:1");
    fake.script(
        "bad:1",
        Script::new().log("panic: no config").exit_at_start(2),
    );
    let env = fake_env(&fake, "fk-all-bad").await;
    let good = define(&env, "good", StartOptions::new("ok:1"));
    let bad = define(&env, "bad", StartOptions::new("bad:1"));
    let err = start_and_wait_ready(&[&good, &bad])
        .await
        .expect_err("one exits");
    assert!(matches!(err, Error::ContainerExited { .. }), "{err}");
    assert_eq!(err.runnable(), Some("bad"));
    assert_eq!(err.exit_code(), Some(2));
    assert_eq!(err.log_tail(), Some(&names(&["panic: no config"])[..]));
    env.close().await;
    assert!(fake.containers().is_empty());
}

// ---------------------------------------------------------------------------------------
// Fail fast: exits during start and readiness, NotReady
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_container_exiting_during_start_fails_with_its_code_and_output() {
    let fake = FakeEngine::new();
    fake.script(
        "crashy:1",
        Script::new()
            .log("starting")
            .log("bad config")
            .exit_at_start(3),
    );
    let env = fake_env(&fake, "fk-crash-start").await;
    let app = env
        .runnable("crashy")
        .init(StartOptions::new("crashy:1"))
        .expect("defined");
    let err = app.start().await.expect_err("exits during start");
    assert!(matches!(&err, Error::ContainerExited { during, .. } if during == "starting"));
    assert_eq!(err.exit_code(), Some(3));
    assert_eq!(err.runnable(), Some("crashy"));
    assert_eq!(
        err.log_tail(),
        Some(&["starting".to_string(), "bad config".to_string()][..])
    );
    assert!(!app.is_running());
    // Waiting on it afterwards reports the same exit instead of probing a dead container.
    let again = app.wait_ready().await.expect_err("still exited");
    assert_eq!(again.exit_code(), Some(3));
    assert_eq!(again.log_tail(), err.log_tail());
    env.close().await;
    assert!(fake.containers().is_empty());
}

#[tokio::test]
async fn wait_ready_fails_fast_when_the_container_exits() {
    let fake = FakeEngine::new();
    fake.script(
        "late-crash:1",
        Script::new()
            .log("up")
            .exit_after(Duration::from_millis(50), 7),
    );
    let env = fake_env(&fake, "fk-crash-ready").await;
    let app = env
        .runnable("app")
        .init(
            StartOptions::new("late-crash:1")
                .readiness(LogProbe::contains("never printed"))
                .wait_policy(WaitPolicy::timeout(Duration::from_secs(30))),
        )
        .expect("defined");
    app.start().await.expect("started");
    // The deadline is 30 s away: only the exit can end this wait early, as ContainerExited.
    let err = app.wait_ready().await.expect_err("exits while waiting");
    assert!(matches!(err, Error::ContainerExited { .. }), "{err}");
    assert_eq!(err.exit_code(), Some(7));
    assert_eq!(err.log_tail(), Some(&names(&["up"])[..]));
    assert!(err.to_string().contains("waiting for readiness"), "{err}");
    env.close().await;
}

#[tokio::test]
async fn a_crash_during_an_http_readiness_wait_ends_it_with_the_exit_code() {
    let fake = FakeEngine::new();
    let server = HttpServer::start(503, "warming up").await;
    fake.script(
        "svc:1",
        Script::new().log("loading").serve(8080, server.addr),
    );
    let env = fake_env(&fake, "fk-crash-http").await;
    let app = define(
        &env,
        "svc",
        StartOptions::new("svc:1")
            .readiness(HttpProbe::new("http", "/ready"))
            .wait_policy(WaitPolicy::timeout(Duration::from_secs(60))),
    );
    app.start().await.expect("started");
    let waiter = tokio::spawn({
        let app = app.clone();
        async move { app.wait_ready().await }
    });
    eventually("the probe ran", || !server.paths().is_empty()).await;
    fake.print(app.container_name(), "out of memory");
    fake.exit(app.container_name(), 137);
    let err = waiter.await.expect("task").expect_err("crashed");
    assert!(matches!(err, Error::ContainerExited { .. }), "{err}");
    assert_eq!(err.exit_code(), Some(137));
    assert_eq!(
        err.log_tail(),
        Some(&names(&["loading", "out of memory"])[..])
    );
    env.close().await;
}

#[tokio::test]
async fn not_ready_after_the_deadline_carries_attempts_last_error_and_logs() {
    let fake = FakeEngine::new();
    let server = HttpServer::start(503, "warming up").await;
    fake.script(
        "slow:1",
        Script::new().log("booting").serve(8080, server.addr),
    );
    let env = fake_env(&fake, "fk-not-ready").await;
    let app = define(
        &env,
        "slow",
        StartOptions::new("slow:1")
            .readiness(HttpProbe::new("http", "/ready"))
            .wait_policy(short()),
    );
    app.start().await.expect("started");
    let err = app.wait_ready().await.expect_err("never ready");
    match &err {
        Error::NotReady {
            runnable,
            attempts,
            last_error,
            logs,
            ..
        } => {
            assert_eq!(runnable, "slow");
            assert!(*attempts >= 1);
            assert!(
                server.paths().len() >= *attempts as usize,
                "every attempt is a request"
            );
            assert!(last_error.contains("503"), "{last_error}");
            assert!(last_error.contains("warming up"), "{last_error}");
            assert_eq!(logs.0, ["booting"]);
        }
        other => panic!("expected NotReady, got {other}"),
    }
    assert!(app.is_running(), "a slow service is left running");
    env.close().await;
}

#[tokio::test]
async fn wait_ready_without_a_probe_means_running() {
    let fake = FakeEngine::new();
    fake.add_image("img:1");
    let env = fake_env(&fake, "fk-no-probe").await;
    let app = define(&env, "app", StartOptions::new("img:1"));
    let err = app.wait_ready().await.expect_err("not started");
    assert!(matches!(err, Error::NotRunning { .. }), "{err}");
    app.start().await.expect("started");
    app.wait_ready().await.expect("ready as soon as running");
    env.close().await;
}

// ---------------------------------------------------------------------------------------
// Readiness probes
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn log_probe_readiness_is_pushed_by_printed_lines() {
    let fake = FakeEngine::new();
    fake.script("logger:1", Script::new().log("starting up"));
    let env = fake_env(&fake, "fk-log-probe").await;
    // Polling alone would look again only after a minute: the printed line must wake it.
    let policy =
        WaitPolicy::timeout(Duration::from_secs(120)).min_interval(Duration::from_secs(60));
    let app = define(
        &env,
        "app",
        StartOptions::new("logger:1")
            .readiness(LogProbe::regex(r"listening on :\d+").expect("regex"))
            .wait_policy(policy),
    );
    app.start().await.expect("started");
    let waiter = tokio::spawn({
        let app = app.clone();
        async move { app.wait_ready().await }
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(!waiter.is_finished(), "ready before the line was printed");
    fake.print(app.container_name(), "listening on :8080");
    tokio::time::timeout(Duration::from_secs(30), waiter)
        .await
        .expect("woken by the line, not by the minute-long poll")
        .expect("task")
        .expect("ready");
    env.close().await;
}

#[tokio::test]
async fn log_probe_state_is_fresh_for_every_start() {
    let fake = FakeEngine::new();
    fake.add_image("img:1");
    let env = fake_env(&fake, "fk-log-fresh").await;
    let app = define(
        &env,
        "app",
        StartOptions::new("img:1")
            .readiness(LogProbe::contains("ready"))
            .wait_policy(short()),
    );
    app.start().await.expect("started");
    fake.print(app.container_name(), "ready");
    app.wait_ready().await.expect("ready");
    app.kill().await.expect("killed");
    app.start().await.expect("restarted");
    // The line was printed by the previous container; the new one has said nothing.
    let err = app.wait_ready().await.expect_err("not ready again yet");
    assert!(
        matches!(&err, Error::NotReady { last_error, .. } if last_error.contains("/ready/")),
        "{err}"
    );
    env.close().await;
}

#[tokio::test]
async fn http_probe_waits_for_an_accepted_status() {
    let fake = FakeEngine::new();
    let server = HttpServer::start(503, "not yet").await;
    fake.script("web:1", Script::new().serve(8080, server.addr));
    let env = fake_env(&fake, "fk-http-ok").await;
    let app = define(
        &env,
        "web",
        StartOptions::new("web:1")
            .readiness(HttpProbe::new("http", "/ready").status(200..=204))
            .wait_policy(WaitPolicy::timeout(Duration::from_secs(60))),
    );
    app.start().await.expect("started");
    let waiter = tokio::spawn({
        let app = app.clone();
        async move { app.wait_ready().await }
    });
    eventually("two probe attempts", || server.paths().len() >= 2).await;
    assert!(!waiter.is_finished(), "503 must not count as ready");
    server.set(204, "");
    waiter.await.expect("task").expect("ready on 204");
    assert!(server.paths().iter().all(|p| p == "/ready"));
    env.close().await;
}

#[tokio::test]
async fn http_probe_status_outside_the_range_is_not_ready() {
    let fake = FakeEngine::new();
    let server = HttpServer::start(206, "partial").await;
    fake.script("web:1", Script::new().serve(8080, server.addr));
    let env = fake_env(&fake, "fk-http-range").await;
    let strict = define(
        &env,
        "strict",
        StartOptions::new("web:1")
            .readiness(HttpProbe::new("http", "/health").status(200..=204))
            .wait_policy(short()),
    );
    let odd = define(
        &env,
        "odd",
        StartOptions::new("web:1")
            .readiness(HttpProbe::new("http", "/health").status(206..=206))
            .wait_policy(short()),
    );
    start_and_wait_ready(&[&odd]).await.expect("206 accepted");
    strict.start().await.expect("started");
    let err = strict.wait_ready().await.expect_err("206 rejected");
    match &err {
        Error::NotReady { last_error, .. } => {
            assert!(
                last_error.contains("answered 206, expected 200..=204"),
                "{last_error}"
            );
            assert!(last_error.contains("partial"), "{last_error}");
        }
        other => panic!("expected NotReady, got {other}"),
    }
    env.close().await;
}

#[tokio::test]
async fn http_probe_body_mismatch_is_not_ready_until_the_body_matches() {
    let fake = FakeEngine::new();
    let server = HttpServer::start(200, "status: starting").await;
    fake.script("web:1", Script::new().serve(8080, server.addr));
    let env = fake_env(&fake, "fk-http-body").await;
    let app = define(
        &env,
        "web",
        StartOptions::new("web:1")
            .readiness(HttpProbe::new("http", "/status").body_contains("serving"))
            .wait_policy(short()),
    );
    app.start().await.expect("started");
    let err = app.wait_ready().await.expect_err("body lacks the text");
    assert!(
        matches!(&err, Error::NotReady { last_error, .. }
            if last_error.contains("lacks \"serving\"") && last_error.contains("status: starting")),
        "{err}"
    );
    server.set_body("status: serving");
    app.wait_ready().await.expect("ready once the body matches");
    env.close().await;
}

#[tokio::test]
async fn http_probe_on_an_unpublished_port_says_so() {
    let fake = FakeEngine::new();
    // The image serves nothing: the engine publishes no address for port 8080.
    fake.add_image("img:1");
    let env = fake_env(&fake, "fk-http-unpub").await;
    let app = define(
        &env,
        "app",
        StartOptions::new("img:1")
            .readiness(HttpProbe::new("http", "/"))
            .wait_policy(short()),
    );
    app.start().await.expect("started");
    let err = app.wait_ready().await.expect_err("unreachable");
    assert!(
        matches!(&err, Error::NotReady { last_error, .. } if last_error.contains("not published")),
        "{err}"
    );
    env.close().await;
}

#[tokio::test]
async fn tcp_probe_is_ready_when_something_listens() {
    let fake = FakeEngine::new();
    let server = HttpServer::start(200, "").await;
    fake.script("db:1", Script::new().serve(8080, server.addr));
    let env = fake_env(&fake, "fk-tcp-ok").await;
    let app = define(
        &env,
        "db",
        StartOptions::new("db:1")
            .readiness(TcpProbe::new("http"))
            .wait_policy(WaitPolicy::timeout(Duration::from_secs(60))),
    );
    start_and_wait_ready(&[&app]).await.expect("ready");
    env.close().await;
}

#[tokio::test]
async fn tcp_probe_rejects_refused_and_closed_at_once_connections() {
    let fake = FakeEngine::new();
    fake.script(
        "closing:1",
        Script::new().serve(8080, closing_listener().await),
    );
    let (_reserved, dead_at) = dead_addr();
    fake.script("dead:1", Script::new().serve(8080, dead_at));
    let env = fake_env(&fake, "fk-tcp-bad").await;
    let proxy = define(
        &env,
        "proxy",
        StartOptions::new("closing:1")
            .readiness(TcpProbe::new("http"))
            .wait_policy(short()),
    );
    let dead = define(
        &env,
        "dead",
        StartOptions::new("dead:1")
            .readiness(TcpProbe::new("http"))
            .wait_policy(short()),
    );
    proxy.start().await.expect("started");
    dead.start().await.expect("started");
    let err = proxy.wait_ready().await.expect_err("closed at once");
    assert!(
        matches!(&err, Error::NotReady { last_error, .. } if last_error.contains("closed at once")),
        "{err}"
    );
    let err = dead.wait_ready().await.expect_err("refused");
    assert!(
        matches!(&err, Error::NotReady { last_error, .. } if last_error.starts_with("connect ")),
        "{err}"
    );
    env.close().await;
}

#[tokio::test]
async fn cmd_probe_runs_the_command_until_it_exits_zero() {
    let fake = FakeEngine::new();
    let attempts = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (a, s) = (attempts.clone(), seen.clone());
    fake.script(
        "pg:1",
        Script::new().exec(move |req| {
            s.lock().unwrap().push((req.argv.clone(), req.user.clone()));
            let n = a.fetch_add(1, Ordering::SeqCst);
            ExecOutput {
                exit_code: if n < 2 { 1 } else { 0 },
                stdout: String::new(),
                stderr: "no response".to_string(),
            }
        }),
    );
    let env = fake_env(&fake, "fk-cmd-ok").await;
    let app = define(
        &env,
        "pg",
        StartOptions::new("pg:1")
            .user("999")
            .readiness(CmdProbe::new(Command::new("pg_isready").arg("-q")))
            .wait_policy(WaitPolicy::timeout(Duration::from_secs(60))),
    );
    start_and_wait_ready(&[&app])
        .await
        .expect("ready on the third try");
    assert_eq!(attempts.load(Ordering::SeqCst), 3);
    let execs = fake
        .calls_of(app.container_name())
        .iter()
        .filter(|c| *c == "exec")
        .count();
    assert_eq!(execs, 3);
    let seen = seen.lock().unwrap().clone();
    assert!(seen.iter().all(
        |(argv, user)| argv == &names(&["pg_isready", "-q"]) && user.as_deref() == Some("999")
    ));
    env.close().await;
}

#[tokio::test]
async fn cmd_probe_failure_reports_exit_code_and_output() {
    let fake = FakeEngine::new();
    fake.script(
        "pg:1",
        Script::new().exec(|_| ExecOutput {
            exit_code: 2,
            stdout: "checking".to_string(),
            stderr: "no such file".to_string(),
        }),
    );
    let env = fake_env(&fake, "fk-cmd-bad").await;
    let app = define(
        &env,
        "pg",
        StartOptions::new("pg:1")
            .readiness(CmdProbe::new(Command::sh("test -f /tmp/ready")))
            .wait_policy(short()),
    );
    app.start().await.expect("started");
    let err = app.wait_ready().await.expect_err("never exits 0");
    match &err {
        Error::NotReady { last_error, .. } => {
            assert!(last_error.contains("exited with 2"), "{last_error}");
            assert!(last_error.contains("no such file"), "{last_error}");
            assert!(last_error.contains("checking"), "{last_error}");
        }
        other => panic!("expected NotReady, got {other}"),
    }
    env.close().await;
}

#[tokio::test]
async fn all_probe_needs_every_inner_probe() {
    let fake = FakeEngine::new();
    let server = HttpServer::start(200, "ok").await;
    fake.script("svc:1", Script::new().serve(8080, server.addr));
    let env = fake_env(&fake, "fk-all-probe").await;
    let app = define(
        &env,
        "svc",
        StartOptions::new("svc:1")
            .readiness(AllProbe::new([
                HttpProbe::new("http", "/ready").into(),
                TcpProbe::new("http").into(),
                LogProbe::contains("caches warm").into(),
            ]))
            .wait_policy(short()),
    );
    app.start().await.expect("started");
    let err = app.wait_ready().await.expect_err("the log line is missing");
    assert!(
        matches!(&err, Error::NotReady { last_error, .. } if last_error.contains("caches warm")),
        "{err}"
    );
    fake.print(app.container_name(), "caches warm");
    app.wait_ready().await.expect("all three pass");
    assert!(server.paths().iter().any(|p| p == "/ready"));
    env.close().await;
}

#[tokio::test]
async fn a_probe_on_an_undeclared_port_is_rejected_at_init() {
    let fake = FakeEngine::new();
    let env = fake_env(&fake, "fk-probe-port").await;
    let err = env
        .runnable("app")
        .with_ports([("http", 8080)])
        .init(StartOptions::new("img:1").readiness(AllProbe::new([
            LogProbe::contains("x").into(),
            TcpProbe::new("grpc").into(),
        ])))
        .expect_err("grpc is not declared");
    assert!(
        matches!(&err, Error::UnknownPort { runnable, port, known }
            if runnable == "app" && port == "grpc" && known == &names(&["http"])),
        "{err}"
    );
    env.close().await;
}

// ---------------------------------------------------------------------------------------
// Close and drop
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn closers_run_last_added_first_before_containers_are_removed() {
    let fake = FakeEngine::new();
    fake.add_image("img:1");
    let env = fake_env(&fake, "fk-closers").await;
    let app = define(&env, "app", StartOptions::new("img:1"));
    app.start().await.expect("started");
    let order = Arc::new(Mutex::new(Vec::new()));
    for name in ["first", "second", "third"] {
        let (order, fake) = (order.clone(), fake.clone());
        env.add_closer(move || {
            order
                .lock()
                .unwrap()
                .push(format!("{name} saw {:?}", fake.running()));
        });
    }
    env.close().await;
    let saw = format!("{:?}", [app.container_name()]);
    assert_eq!(
        *order.lock().unwrap(),
        [
            format!("third saw {saw}"),
            format!("second saw {saw}"),
            format!("first saw {saw}")
        ]
    );
    assert!(fake.containers().is_empty());
}

#[tokio::test]
async fn close_twice_is_fine_and_runs_everything_once() {
    let fake = FakeEngine::new();
    fake.add_image("img:1");
    let env = fake_env(&fake, "fk-close-twice").await;
    let app = define(&env, "app", StartOptions::new("img:1"));
    app.start().await.expect("started");
    let closed = Arc::new(AtomicUsize::new(0));
    let c = closed.clone();
    env.add_closer(move || {
        c.fetch_add(1, Ordering::SeqCst);
    });
    env.close().await;
    env.clone().close().await;
    assert!(env.is_closed());
    assert_eq!(closed.load(Ordering::SeqCst), 1);
    let removals = fake
        .calls()
        .iter()
        .filter(|c| c.starts_with("remove_environment "))
        .count();
    assert_eq!(removals, 1, "{:?}", fake.calls());
    assert_eq!(
        fake.calls_of(app.container_name()),
        ["create_and_start", "remove"]
    );
}

#[tokio::test]
async fn after_close_runnables_cannot_be_defined_or_started() {
    let fake = FakeEngine::new();
    fake.add_image("img:1");
    let env = fake_env(&fake, "fk-closed").await;
    let started = define(&env, "started", StartOptions::new("img:1"));
    let idle = define(&env, "idle", StartOptions::new("img:1"));
    started.start().await.expect("started");
    env.close().await;

    let err = env.runnable("late").future().expect_err("closed");
    assert!(
        matches!(&err, Error::EnvironmentClosed { env: e } if e == env.name()),
        "{err}"
    );
    let err = env
        .runnable("late")
        .init(StartOptions::new("img:1"))
        .expect_err("closed");
    assert!(matches!(err, Error::EnvironmentClosed { .. }), "{err}");
    let err = idle.start().await.expect_err("closed");
    assert!(matches!(err, Error::EnvironmentClosed { .. }), "{err}");
    let err = started.start().await.expect_err("closed");
    assert!(matches!(err, Error::EnvironmentClosed { .. }), "{err}");

    // The environment removed the container; the runnable knows and asks nothing more.
    assert!(!started.is_running());
    let before = fake.calls().len();
    started.stop().await.expect("nothing to stop");
    started.kill().await.expect("nothing to kill");
    assert_eq!(fake.calls().len(), before);
    let err = started.exec(Command::new("true")).await.expect_err("gone");
    assert!(matches!(err, Error::NotRunning { .. }), "{err}");
}

#[tokio::test]
async fn close_removes_running_stopped_and_crashed_runnables_alike() {
    let fake = FakeEngine::new();
    fake.add_image("img:1");
    fake.script("crash:1", Script::new().exit_at_start(1));
    let env = fake_env(&fake, "fk-close-all").await;
    let running = define(&env, "running", StartOptions::new("img:1"));
    let stopped = define(&env, "stopped", StartOptions::new("img:1"));
    let crashed = define(&env, "crashed", StartOptions::new("crash:1"));
    running.start().await.expect("started");
    stopped.start().await.expect("started");
    stopped.stop().await.expect("stopped");
    crashed.start().await.expect_err("exits at start");
    let dir = env.shared_dir().to_path_buf();
    assert!(dir.join("data").join("running").is_dir());
    env.close().await;
    assert!(fake.containers().is_empty(), "{:?}", fake.containers());
    assert!(fake.networks().is_empty());
    assert!(!dir.exists());
    for r in [&running, &stopped, &crashed] {
        assert_eq!(
            fake.calls_of(r.container_name()).last().map(String::as_str),
            Some("remove")
        );
    }
}

#[tokio::test]
async fn dropping_the_last_clone_cleans_up_on_a_current_thread_runtime() {
    let fake = FakeEngine::new();
    fake.add_image("img:1");
    let env = fake_env(&fake, "fk-drop").await;
    let app = define(&env, "app", StartOptions::new("img:1"));
    app.start().await.expect("started");
    let closed = Arc::new(AtomicUsize::new(0));
    let c = closed.clone();
    env.add_closer(move || {
        c.fetch_add(1, Ordering::SeqCst);
    });
    let dir: PathBuf = env.shared_dir().to_path_buf();
    let clone = env.clone();
    drop(env);
    assert_eq!(fake.running(), [app.container_name()], "a clone is alive");
    assert_eq!(closed.load(Ordering::SeqCst), 0);
    drop(clone);
    assert_eq!(closed.load(Ordering::SeqCst), 1);
    assert!(fake.containers().is_empty());
    assert!(fake.networks().is_empty());
    assert!(!dir.exists());
    // The runnable outlives the environment and knows its container is gone.
    assert!(!app.is_running());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_environment_cleans_up_on_a_multi_thread_runtime() {
    let fake = FakeEngine::new();
    fake.add_image("img:1");
    let env = fake_env(&fake, "fk-drop-mt").await;
    define(&env, "app", StartOptions::new("img:1"))
        .start()
        .await
        .expect("started");
    let dir = env.shared_dir().to_path_buf();
    drop(env);
    assert!(fake.containers().is_empty());
    assert!(fake.networks().is_empty());
    assert!(!dir.exists());
}

#[tokio::test]
async fn a_panic_with_the_environment_alive_still_cleans_up() {
    if std::env::var_os("E2EKIT_KEEP_ON_FAILURE").is_some() {
        return; // keeping is what the user asked for then
    }
    let fake = FakeEngine::new();
    fake.add_image("img:1");
    let env = fake_env(&fake, "fk-panic").await;
    define(&env, "app", StartOptions::new("img:1"))
        .start()
        .await
        .expect("started");
    let dir = env.shared_dir().to_path_buf();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let _env = env;
        panic!("the scenario failed");
    }));
    assert!(result.is_err());
    assert!(fake.containers().is_empty());
    assert!(fake.networks().is_empty());
    assert!(!dir.exists());
}

// ---------------------------------------------------------------------------------------
// Listeners
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn listeners_hear_of_starts_stops_kills_and_crashes() {
    let fake = FakeEngine::new();
    fake.add_image("img:1");
    let env = fake_env(&fake, "fk-listen").await;
    let seen = record_changes(&env);
    let a = define(&env, "a", StartOptions::new("img:1"));
    let b = define(&env, "b", StartOptions::new("img:1"));
    let c = define(&env, "c", StartOptions::new("img:1"));
    a.start().await.expect("a");
    b.start().await.expect("b");
    c.start().await.expect("c");
    a.stop().await.expect("stop a");
    b.kill().await.expect("kill b");
    fake.exit(c.container_name(), 1);
    eventually("the crash is told", || seen.lock().unwrap().len() == 6).await;
    let expected: Vec<Vec<String>> = vec![
        names(&["a"]),
        names(&["a", "b"]),
        names(&["a", "b", "c"]),
        names(&["b", "c"]),
        names(&["c"]),
        names(&[]),
    ];
    assert_eq!(*seen.lock().unwrap(), expected);
    // A restart of a stopped runnable is told again, in start order.
    a.start().await.expect("a again");
    assert_eq!(seen.lock().unwrap().last(), Some(&names(&["a"])));
    env.close().await;
}

#[tokio::test]
async fn a_failing_listener_neither_fails_a_start_nor_silences_other_listeners() {
    let fake = FakeEngine::new();
    fake.add_image("img:1");
    let env = fake_env(&fake, "fk-listen-err").await;
    env.add_listener(Arc::new(|_: &[Runnable]| -> Result<()> {
        Err(Error::Unexpected("listener broke".to_string()))
    }));
    let seen = record_changes(&env);
    let app = define(&env, "app", StartOptions::new("img:1"));
    app.start().await.expect("start succeeds anyway");
    app.stop().await.expect("stop succeeds anyway");
    assert_eq!(*seen.lock().unwrap(), [names(&["app"]), names(&[])]);
    env.close().await;
}

// ---------------------------------------------------------------------------------------
// Names: duplicates, leftovers, other owners, reserved names
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_duplicate_runnable_name_is_refused() {
    let fake = FakeEngine::new();
    let env = fake_env(&fake, "fk-dup").await;
    let first = env.runnable("app").future().expect("first");
    assert_eq!(first.name(), "app");
    let err = env
        .runnable("app")
        .init(StartOptions::new("img:1"))
        .expect_err("second");
    assert!(
        matches!(&err, Error::DuplicateRunnable { env: e, name } if e == env.name() && name == "app"),
        "{err}"
    );
    assert_eq!(err.runnable(), Some("app"));
    let err = env.runnable("bad/name").future().expect_err("invalid");
    assert!(
        matches!(&err, Error::InvalidName { what: "runnable", name, .. } if name == "bad/name"),
        "{err}"
    );
    env.close().await;
}

/// Creates resources labelled as environment `env` owned by `owner`, as an earlier run would
/// have left them.
async fn leave_behind(fake: &FakeEngine, env: &str, owner: &str) {
    let labels = BTreeMap::from([
        (labels::ENV.to_string(), env.to_string()),
        (labels::OWNER.to_string(), owner.to_string()),
    ]);
    fake.create_network(env, labels.clone())
        .await
        .expect("network");
    fake.add_image("old:1");
    let spec = ContainerSpec {
        name: format!("{env}-old"),
        image: "old:1".to_string(),
        labels,
        network: Some(env.to_string()),
        ..ContainerSpec::default()
    };
    fake.create_and_start(&spec, "old")
        .await
        .expect("container");
}

/// An owner label of a dead process on this host.
fn dead_owner() -> String {
    let host = labels::owner()
        .rsplitn(3, ':')
        .nth(2)
        .expect("host part")
        .to_string();
    format!("{host}:4000000:1")
}

#[tokio::test]
async fn leftovers_of_a_dead_owner_are_removed_at_build() {
    let fake = FakeEngine::new();
    let name = unique_name("fk-leftover");
    leave_behind(&fake, &name, &dead_owner()).await;
    // An unrelated environment of a live owner elsewhere is left alone.
    leave_behind(&fake, "fk-unrelated", "otherhost:1:1").await;
    let env = build_on(&fake, &name, true, Vec::new(), None)
        .await
        .expect("leftovers do not block");
    assert_eq!(fake.containers(), ["fk-unrelated-old"]);
    let mut networks = fake.networks();
    let mut expected = vec!["fk-unrelated".to_string(), name.clone()];
    networks.sort();
    expected.sort();
    assert_eq!(networks, expected);
    let calls = fake.calls();
    let removed = calls
        .iter()
        .position(|c| *c == format!("remove {name}-old"))
        .expect("the old container was removed");
    let created = calls
        .iter()
        .rposition(|c| *c == format!("create_network {name}"))
        .expect("the new network");
    assert!(removed < created, "{calls:?}");
    env.close().await;
    assert_eq!(fake.containers(), ["fk-unrelated-old"]);
}

#[tokio::test]
async fn an_environment_of_the_same_name_owned_by_a_live_process_is_in_use() {
    let fake = FakeEngine::new();
    let name = unique_name("fk-in-use");
    leave_behind(&fake, &name, "otherhost:1:1").await;
    let err = build_on(&fake, &name, true, Vec::new(), None)
        .await
        .expect_err("in use");
    assert!(
        matches!(&err, Error::EnvironmentInUse { env, owner } if *env == name && owner == "otherhost:1:1"),
        "{err}"
    );
    // Nothing of the other owner was touched, and nothing of ours was made.
    assert_eq!(fake.containers(), [format!("{name}-old")]);
    assert_eq!(fake.networks(), [name.as_str()]);
    assert!(!fake.calls().iter().any(|c| c.starts_with("remove")));
    assert_eq!(
        fake.calls()
            .iter()
            .filter(|c| c.starts_with("create_network"))
            .count(),
        1
    );
}

#[tokio::test]
async fn a_reserved_name_is_refused_when_explicit_and_hashed_when_derived() {
    let fake = FakeEngine::new();
    let err = build_on(&fake, "fake-reserved", true, Vec::new(), None)
        .await
        .expect_err("explicit");
    assert!(
        matches!(&err, Error::InvalidName { what: "environment", name, .. } if name == "fake-reserved"),
        "{err}"
    );
    assert!(fake.networks().is_empty());

    let env = build_on(&fake, "fake-reserved", false, Vec::new(), None)
        .await
        .expect("derived");
    assert!(env.name().starts_with("fake-reserved-"), "{}", env.name());
    assert_ne!(env.name(), "fake-reserved");
    assert_eq!(fake.networks(), [env.name()]);
    env.close().await;
}

#[tokio::test]
async fn a_failed_network_creation_fails_the_build_and_leaves_no_directory() {
    let fake = FakeEngine::new();
    let name = unique_name("fk-no-net");
    fake.fail_next("create_network", "address pools exhausted");
    let err = build_on(&fake, &name, true, Vec::new(), None)
        .await
        .expect_err("no network");
    assert!(matches!(err, Error::Engine { .. }), "{err}");
    assert!(
        chain(&err).contains("address pools exhausted"),
        "{}",
        chain(&err)
    );
    let dir = crate::env::sweep::shared_dir_for(&name).expect("dir");
    assert!(!dir.exists());
}

// ---------------------------------------------------------------------------------------
// Exec, pause, network partitions, signals
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn exec_returns_the_output_on_exit_zero_and_an_exec_error_otherwise() {
    let fake = FakeEngine::new();
    fake.script(
        "tool:1",
        Script::new().exec(|req| match req.argv.first().map(String::as_str) {
            Some("cat") => ExecOutput {
                exit_code: 0,
                stdout: "tool\n".to_string(),
                stderr: String::new(),
            },
            _ => ExecOutput {
                exit_code: 3,
                stdout: "partial".to_string(),
                stderr: "boom".to_string(),
            },
        }),
    );
    let env = fake_env(&fake, "fk-exec").await;
    let app = define(&env, "tool", StartOptions::new("tool:1"));
    app.start().await.expect("started");
    let out = app
        .exec(Command::new("cat").arg("/etc/hostname"))
        .await
        .expect("exit 0");
    assert_eq!(
        out,
        ExecOutput {
            exit_code: 0,
            stdout: "tool\n".to_string(),
            stderr: String::new()
        }
    );
    let err = app
        .exec(Command::new("false").arg("--now"))
        .await
        .expect_err("exit 3");
    match &err {
        Error::Exec {
            runnable,
            command,
            exit_code,
            stdout,
            stderr,
        } => {
            assert_eq!(runnable, "tool");
            assert!(command.contains("false"), "{command}");
            assert_eq!(*exit_code, 3);
            assert_eq!(stdout, "partial");
            assert_eq!(stderr, "boom");
        }
        other => panic!("expected Exec, got {other}"),
    }
    assert_eq!(err.exit_code(), Some(3));
    env.close().await;
}

#[tokio::test]
async fn exec_passes_stdin_and_user_to_the_engine() {
    let fake = FakeEngine::new();
    fake.script(
        "tool:1",
        Script::new().exec(|req| ExecOutput {
            exit_code: 0,
            stdout: format!(
                "{} as {:?}: {}",
                req.argv.join(" "),
                req.user,
                String::from_utf8_lossy(req.stdin.as_deref().unwrap_or_default())
            ),
            stderr: String::new(),
        }),
    );
    let env = fake_env(&fake, "fk-exec-opts").await;
    let app = define(&env, "tool", StartOptions::new("tool:1").user("1000"));
    app.start().await.expect("started");
    let out = app.exec(Command::new("id")).await.expect("default user");
    assert_eq!(out.stdout, "id as Some(\"1000\"): ");
    let out = app
        .exec_with(
            Command::new("tee").arg("/x"),
            ExecOptions::new().stdin("hello").user("root"),
        )
        .await
        .expect("explicit user and stdin");
    assert_eq!(out.stdout, "tee /x as Some(\"root\"): hello");
    env.close().await;
}

#[tokio::test]
async fn operations_on_a_runnable_that_is_not_running_fail_with_not_running() {
    let fake = FakeEngine::new();
    fake.add_image("img:1");
    let env = fake_env(&fake, "fk-not-running").await;
    let app = define(&env, "app", StartOptions::new("img:1"));
    let crashed = define(&env, "crashed", StartOptions::new("img:1"));
    crashed.start().await.expect("started");
    fake.exit(crashed.container_name(), 1);
    eventually("the crash is noticed", || !crashed.is_running()).await;

    for r in [&app, &crashed] {
        let check = |what: &str, res: Result<()>| {
            let err = res.expect_err(what);
            assert!(
                matches!(&err, Error::NotRunning { runnable, .. } if runnable == r.name()),
                "{what}: {err}"
            );
        };
        check("exec", r.exec(Command::new("true")).await.map(drop));
        check("pause", r.pause().await);
        check("unpause", r.unpause().await);
        check("disconnect", r.disconnect().await);
        check("connect", r.connect().await);
        check("signal", r.signal("HUP").await);
        check("endpoint", r.endpoint("http").map(drop));
        if r.name() == "app" {
            app.start().await.expect("started");
            app.stop().await.expect("stopped");
        }
    }
    // And once more after a stop.
    let err = app.exec(Command::new("true")).await.expect_err("stopped");
    assert!(matches!(err, Error::NotRunning { .. }), "{err}");
    let err = app.endpoint("http").expect_err("stopped");
    assert!(matches!(err, Error::NotRunning { .. }), "{err}");
    let before = fake.calls_of(app.container_name()).len();
    let _ = app.pause().await;
    assert_eq!(
        fake.calls_of(app.container_name()).len(),
        before,
        "no engine call"
    );
    env.close().await;
}

#[tokio::test]
async fn pause_unpause_disconnect_connect_and_signal_reach_the_engine() {
    let fake = FakeEngine::new();
    fake.add_image("img:1");
    let env = fake_env(&fake, "fk-chaos").await;
    let app = define(&env, "app", StartOptions::new("img:1"));
    app.start().await.expect("started");
    let name = app.container_name();
    assert_eq!(fake.is_paused(name), Some(false));
    assert_eq!(fake.is_connected(name), Some(true));
    app.pause().await.expect("pause");
    assert_eq!(fake.is_paused(name), Some(true));
    app.unpause().await.expect("unpause");
    assert_eq!(fake.is_paused(name), Some(false));
    app.disconnect().await.expect("disconnect");
    assert_eq!(fake.is_connected(name), Some(false));
    assert!(app.is_running(), "a partitioned container still runs");
    app.connect().await.expect("connect");
    assert_eq!(fake.is_connected(name), Some(true));
    app.signal("HUP").await.expect("signal");
    assert_eq!(
        fake.calls_of(name),
        [
            "create_and_start",
            "pause",
            "unpause",
            "disconnect",
            "connect",
            "inspect",
            "signal HUP"
        ]
    );
    assert_eq!(fake.is_paused("no-such-container"), None);
    env.close().await;
}

// ---------------------------------------------------------------------------------------
// Endpoints, specs, definitions
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn endpoint_is_the_published_address_and_internal_endpoints_are_known_before_start() {
    let fake = FakeEngine::new();
    let http = HttpServer::start(200, "").await;
    let (_reserved, grpc) = dead_addr();
    fake.script(
        "svc:1",
        Script::new().serve(8080, http.addr).serve(9090, grpc),
    );
    let env = fake_env(&fake, "fk-endpoint").await;
    let future = env
        .runnable("svc")
        .with_ports([("http", 8080), ("grpc", 9090)])
        .future()
        .expect("future");
    let internal = future
        .internal_endpoint("grpc")
        .expect("known before start");
    assert_eq!(internal, format!("{}-svc:9090", env.name()));
    assert!(future.dir().is_dir());
    assert!(future.dir().starts_with(env.shared_dir()));
    let err = future.internal_endpoint("admin").expect_err("undeclared");
    assert!(
        matches!(&err, Error::UnknownPort { port, known, .. }
            if port == "admin" && known == &names(&["http", "grpc"])),
        "{err}"
    );
    let svc = future.init(StartOptions::new("svc:1")).expect("defined");
    assert_eq!(svc.internal_endpoint("grpc").expect("same"), internal);
    svc.start().await.expect("started");
    assert_eq!(svc.endpoint("http").expect("http"), http.addr.to_string());
    assert_eq!(svc.endpoint("grpc").expect("grpc"), grpc.to_string());
    let err = svc.endpoint("admin").expect_err("undeclared");
    assert!(matches!(err, Error::UnknownPort { .. }), "{err}");
    assert_eq!(
        fake.spec_of(svc.container_name()).expect("spec").ports,
        [8080, 9090]
    );
    env.close().await;
}

#[tokio::test]
async fn endpoint_of_a_port_the_engine_did_not_publish_is_an_error() {
    let fake = FakeEngine::new();
    fake.add_image("img:1");
    let env = fake_env(&fake, "fk-unpublished").await;
    let app = define(&env, "app", StartOptions::new("img:1"));
    app.start().await.expect("started");
    let err = app.endpoint("http").expect_err("not published");
    assert!(matches!(err, Error::Unexpected(_)), "{err}");
    env.close().await;
}

#[tokio::test]
async fn the_container_spec_carries_the_start_options() {
    let fake = FakeEngine::new();
    fake.add_image("img:1");
    let name = unique_name("fk-spec");
    let env_volume = Mount::parse("/srv/env-data:/env-data:ro").expect("mount");
    let env = build_on(&fake, &name, true, vec![env_volume.clone()], Some(2.0))
        .await
        .expect("env");
    assert_eq!(env.host_addr(), format!("host.fake.{name}"));
    let app = env
        .runnable("app")
        .with_ports([("http", 8080)])
        .init(
            StartOptions::new("img:1")
                .command(Command::new("/bin/app").args(["--listen", ":8080"]))
                .env("RUST_LOG", "debug")
                .user("1000:1000")
                // A bind mount's host path must exist.
                .volume(format!("{}:/data", env.shared_dir().display()))
                .privileged(true)
                .capability("NET_ADMIN")
                .memory_bytes(64 << 20),
        )
        .expect("defined");
    let tool = env
        .runnable("tool")
        .init(
            StartOptions::new("img:1")
                .command(Command::new("/bin/tool").arg("-v").disable_entrypoint())
                .cpus(0.5),
        )
        .expect("defined");
    app.start().await.expect("app");
    tool.start().await.expect("tool");

    let spec = fake.spec_of(app.container_name()).expect("spec");
    assert_eq!(spec.name, format!("{name}-app"));
    assert_eq!(spec.hostname, "app");
    assert_eq!(spec.aliases, ["app"]);
    assert_eq!(spec.image, "img:1");
    assert_eq!(spec.entrypoint, None);
    assert_eq!(spec.cmd, Some(names(&["/bin/app", "--listen", ":8080"])));
    assert_eq!(spec.env, [("RUST_LOG".to_string(), "debug".to_string())]);
    assert_eq!(spec.user.as_deref(), Some("1000:1000"));
    assert_eq!(spec.ports, [8080]);
    assert_eq!(spec.network.as_deref(), Some(name.as_str()));
    assert!(spec.privileged);
    assert_eq!(spec.capabilities, ["NET_ADMIN"]);
    assert_eq!(spec.memory_bytes, Some(64 << 20));
    assert_eq!(
        spec.nano_cpus,
        Some(2_000_000_000),
        "the environment's limit"
    );
    assert_eq!(spec.labels.get(labels::ENV), Some(&name));
    assert_eq!(
        spec.labels.get(labels::RUNNABLE).map(String::as_str),
        Some("app")
    );
    assert_eq!(
        spec.labels.get(labels::OWNER).map(String::as_str),
        Some(labels::owner())
    );
    assert_eq!(
        spec.mounts,
        [
            Mount::same_path(env.shared_dir()),
            env_volume,
            Mount::parse(&format!("{}:/data", env.shared_dir().display())).expect("mount"),
        ]
    );

    let spec = fake.spec_of(tool.container_name()).expect("spec");
    assert_eq!(spec.entrypoint, Some(names(&["/bin/tool"])));
    assert_eq!(spec.cmd, Some(names(&["-v"])));
    assert_eq!(
        spec.nano_cpus,
        Some(500_000_000),
        "the runnable's own limit wins"
    );
    assert!(spec.ports.is_empty());
    env.close().await;
}

#[tokio::test]
async fn an_invalid_volume_is_rejected_at_init_with_the_runnable_named() {
    let fake = FakeEngine::new();
    let env = fake_env(&fake, "fk-volume").await;
    for (i, bad) in [
        "relative/path:/data",
        "/only-host",
        "/host:data",
        "/a:/b:rx",
    ]
    .into_iter()
    .enumerate()
    {
        let name = format!("vol{i}");
        let err = env
            .runnable(name.as_str())
            .init(StartOptions::new("img:1").volume(bad))
            .expect_err(bad);
        assert!(
            matches!(&err, Error::InvalidArgument(m) if m.contains(&format!("runnable {name:?}"))),
            "{bad}: {err}"
        );
    }
    env.close().await;
}

#[tokio::test]
async fn environment_options_are_validated_before_any_engine_is_contacted() {
    // No engine exists at this address: each error must come before connecting.
    let builder = || Environment::builder().docker_host("unix:///nonexistent/e2ekit.sock");
    let err = builder().name("bad/name").build().await.expect_err("name");
    assert!(
        matches!(
            err,
            Error::InvalidName {
                what: "environment",
                ..
            }
        ),
        "{err}"
    );
    let err = builder()
        .name("fk-ok")
        .cpus(0.0)
        .build()
        .await
        .expect_err("cpus");
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
    let err = builder()
        .name("fk-ok")
        .volume("no-colon")
        .build()
        .await
        .expect_err("volume");
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
}

// ---------------------------------------------------------------------------------------
// Engine failures
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn an_engine_failure_at_start_is_an_engine_error_and_close_removes_the_rest() {
    let fake = FakeEngine::new();
    fake.add_image("img:1");
    let env = fake_env(&fake, "fk-engine-fail").await;
    let ok = define(&env, "ok", StartOptions::new("img:1"));
    let broken = define(&env, "broken", StartOptions::new("img:1"));
    ok.start().await.expect("started");
    fake.fail_next("create_and_start", "no space left on device");
    let err = broken.start().await.expect_err("engine refuses");
    assert!(matches!(err, Error::Engine { .. }), "{err}");
    let text = chain(&err);
    assert!(text.contains("no space left on device"), "{text}");
    assert!(text.contains("fake engine"), "{text}");
    assert!(!broken.is_running());
    assert_eq!(fake.running(), [ok.container_name()]);
    let dir = env.shared_dir().to_path_buf();
    env.close().await;
    assert!(fake.containers().is_empty());
    assert!(fake.networks().is_empty());
    assert!(!dir.exists());
}

#[tokio::test]
async fn a_failure_is_consumed_and_the_next_start_succeeds() {
    let fake = FakeEngine::new();
    fake.add_image("img:1");
    let env = fake_env(&fake, "fk-retry").await;
    let app = define(&env, "app", StartOptions::new("img:1"));
    fake.fail_next("create_and_start", "transient");
    app.start().await.expect_err("first start fails");
    app.start().await.expect("second start works");
    assert_eq!(
        fake.calls_of(app.container_name()),
        ["create_and_start", "create_and_start"]
    );
    env.close().await;
}

#[tokio::test]
async fn a_missing_image_names_the_runnable() {
    let fake = FakeEngine::new();
    let env = fake_env(&fake, "fk-no-image").await;
    let app = define(&env, "app", StartOptions::new("nowhere/app:1"));
    let err = app.start().await.expect_err("no such image");
    assert!(
        matches!(&err, Error::ImageNotFound { runnable, image, .. }
            if runnable == "app" && image == "nowhere/app:1"),
        "{err}"
    );
    assert!(
        fake.calls_of(app.container_name()).is_empty(),
        "nothing created"
    );
    env.close().await;
}

#[tokio::test]
async fn engine_failures_of_stop_and_exec_are_engine_errors_and_close_still_cleans_up() {
    let fake = FakeEngine::new();
    fake.add_image("img:1");
    let env = fake_env(&fake, "fk-stop-fail").await;
    let app = define(&env, "app", StartOptions::new("img:1"));
    app.start().await.expect("started");
    fake.fail_next("exec", "exec broke");
    let err = app.exec(Command::new("true")).await.expect_err("exec");
    assert!(matches!(err, Error::Engine { .. }) && chain(&err).contains("exec broke"));
    fake.fail_next("stop", "daemon busy");
    let err = app.stop().await.expect_err("stop");
    assert!(matches!(err, Error::Engine { .. }) && chain(&err).contains("daemon busy"));
    let dir = env.shared_dir().to_path_buf();
    env.close().await;
    assert!(fake.containers().is_empty());
    assert!(fake.networks().is_empty());
    assert!(!dir.exists());
}

#[tokio::test]
async fn a_failed_stop_leaves_the_runnable_running_and_stoppable() {
    let fake = FakeEngine::new();
    fake.add_image("img:1");
    let env = fake_env(&fake, "fk-stop-retry").await;
    let app = define(&env, "app", StartOptions::new("img:1"));
    app.start().await.expect("started");
    fake.fail_next("stop", "daemon busy");
    app.stop().await.expect_err("stop fails");
    assert_eq!(
        fake.running(),
        [app.container_name()],
        "the engine still runs it"
    );
    assert!(app.is_running(), "so the runnable should still say it runs");
    app.stop().await.expect("retry");
    assert!(fake.running().is_empty(), "and a retry should stop it");
    env.close().await;
}

#[tokio::test]
async fn a_failed_removal_at_close_still_removes_the_shared_dir() {
    let fake = FakeEngine::new();
    fake.add_image("img:1");
    let env = fake_env(&fake, "fk-close-fail").await;
    let app = define(&env, "app", StartOptions::new("img:1"));
    app.start().await.expect("started");
    let dir = env.shared_dir().to_path_buf();
    fake.fail_next("remove_environment", "engine went away");
    env.close().await;
    assert!(env.is_closed());
    assert!(!dir.exists());
    assert!(!app.is_running(), "the runnable let go of its container");
    // What the engine could not remove is swept by the next environment of this name.
    let name = env.name().to_string();
    drop(env);
    let again = build_on(&fake, &name, true, Vec::new(), None)
        .await
        .expect("rebuilt");
    assert!(fake.containers().is_empty(), "{:?}", fake.containers());
    again.close().await;
}

// ---------------------------------------------------------------------------------------
// Bad input: refused when the runnable is defined, naming it, before any engine call
// ---------------------------------------------------------------------------------------

/// The error of defining runnable `name` with `opts` in one step (`RunnableBuilder::init`),
/// checked to be an [`Error::InvalidArgument`] naming the runnable and to have cost no
/// engine call, no registered name and no directory; returns its message.
fn refused_at_init(
    fake: &FakeEngine,
    env: &Environment,
    name: &str,
    ports: &[(&str, u16)],
    opts: StartOptions,
) -> String {
    let calls = fake.calls();
    let err = env
        .runnable(name)
        .with_ports(ports.iter().copied())
        .init(opts)
        .expect_err(&format!("runnable {name:?} must be refused"));
    let Error::InvalidArgument(message) = &err else {
        panic!("runnable {name:?}: expected InvalidArgument, got {err}");
    };
    assert!(message.contains(&format!("runnable {name:?}")), "{message}");
    assert_eq!(fake.calls(), calls, "{name}: no engine call");
    assert!(
        !super::core::runnable_dir(env.shared_dir(), name).exists(),
        "{name}: no directory"
    );
    // The name was not taken: a good definition of it still works.
    env.runnable(name)
        .init(StartOptions::new("img:1"))
        .unwrap_or_else(|e| panic!("{name} is still free: {e}"));
    message.clone()
}

#[tokio::test]
async fn a_huge_wait_policy_means_wait_for_ever_and_panics_nowhere() {
    let fake = FakeEngine::new();
    let server = HttpServer::start(503, "not yet").await;
    fake.script("web:1", Script::new().serve(8080, server.addr));
    let env = fake_env(&fake, "fk-forever").await;
    // An interval that large is pushed past only by the printed line.
    let forever = WaitPolicy::timeout(Duration::MAX).min_interval(Duration::MAX);
    let logger = define(
        &env,
        "logger",
        StartOptions::new("web:1")
            .readiness(LogProbe::contains("up"))
            .wait_policy(forever),
    );
    let web = define(
        &env,
        "web",
        StartOptions::new("web:1")
            .readiness(HttpProbe::new("http", "/ready"))
            .wait_policy(WaitPolicy::timeout(Duration::MAX).max_interval(Duration::MAX)),
    );
    logger.start().await.expect("started");
    web.start().await.expect("started");
    let waiters =
        [logger.clone(), web.clone()].map(|r| tokio::spawn(async move { r.wait_ready().await }));
    eventually("a few probe attempts", || server.paths().len() >= 3).await;
    fake.print(logger.container_name(), "up");
    server.set(200, "ok");
    for waiter in waiters {
        tokio::time::timeout(Duration::from_secs(30), waiter)
            .await
            .expect("a hang guard")
            .expect("the wait must not panic")
            .expect("ready");
    }
    env.close().await;
}

#[tokio::test]
async fn port_zero_is_refused_and_two_names_may_share_a_container_port() {
    let fake = FakeEngine::new();
    fake.add_image("img:1");
    let env = fake_env(&fake, "fk-port-zero").await;
    let calls = fake.calls();
    let err = env
        .runnable("zero")
        .with_ports([("http", 8080), ("admin", 0)])
        .future()
        .expect_err("port 0");
    assert!(
        matches!(&err, Error::InvalidArgument(m)
            if m.contains("runnable \"zero\"") && m.contains("\"admin\"") && m.contains("1-65535")),
        "{err}"
    );
    let message = refused_at_init(
        &fake,
        &env,
        "zero-init",
        &[("http", 0)],
        StartOptions::new("img:1"),
    );
    assert!(message.contains("1-65535"), "{message}");
    assert_eq!(fake.calls(), calls, "no engine call");
    env.runnable("zero")
        .with_ports([("http", 8080)])
        .future()
        .expect("the name is still free");

    // An alias: one listener known under two names; both resolve to the same address.
    let app = env
        .runnable("alias")
        .with_ports([("http", 9090), ("metrics", 9090)])
        .init(StartOptions::new("img:1"))
        .expect("aliases are allowed");
    assert_eq!(
        app.internal_endpoint("http").expect("http"),
        app.internal_endpoint("metrics").expect("metrics")
    );
    env.close().await;
}

#[tokio::test]
async fn cpu_and_memory_limits_must_be_positive_and_finite() {
    let fake = FakeEngine::new();
    fake.add_image("img:1");
    let env = fake_env(&fake, "fk-limits").await;
    for (i, cpus) in [0.0, -1.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1e-12]
        .into_iter()
        .enumerate()
    {
        let message = refused_at_init(
            &fake,
            &env,
            &format!("cpu{i}"),
            &[],
            StartOptions::new("img:1").cpus(cpus),
        );
        assert!(message.contains("CPU"), "{cpus}: {message}");
    }
    for (i, bytes) in [0, -1, i64::MIN].into_iter().enumerate() {
        let message = refused_at_init(
            &fake,
            &env,
            &format!("mem{i}"),
            &[],
            StartOptions::new("img:1").memory_bytes(bytes),
        );
        assert!(message.contains("memory"), "{bytes}: {message}");
    }
    let ok = env
        .runnable("ok")
        .init(StartOptions::new("img:1").cpus(0.01).memory_bytes(6 << 20))
        .expect("small but real limits");
    ok.start().await.expect("started");
    let spec = fake.spec_of(ok.container_name()).expect("spec");
    assert_eq!(spec.nano_cpus, Some(10_000_000));
    assert_eq!(spec.memory_bytes, Some(6 << 20));
    env.close().await;

    // The environment's limit, likewise, before any engine is contacted.
    for cpus in [f64::NAN, 1e-12, -0.5] {
        let err = Environment::builder()
            .docker_host("unix:///nonexistent/e2ekit.sock")
            .name("fk-ok")
            .cpus(cpus)
            .build()
            .await
            .expect_err("cpus");
        assert!(
            matches!(&err, Error::InvalidArgument(m) if m.contains("CPU")),
            "{cpus}: {err}"
        );
    }
}

#[tokio::test]
async fn environment_variable_names_must_be_non_empty_without_equals_or_nul() {
    let fake = FakeEngine::new();
    fake.add_image("img:1");
    let env = fake_env(&fake, "fk-env-keys").await;
    for (i, (key, value)) in [("A=B", "c"), ("", "x"), ("A\0B", "x"), ("A", "x\0y")]
        .into_iter()
        .enumerate()
    {
        let message = refused_at_init(
            &fake,
            &env,
            &format!("env{i}"),
            &[],
            StartOptions::new("img:1").env("OK", "1").env(key, value),
        );
        assert!(
            message.contains("environment variable"),
            "{key:?}: {message}"
        );
        assert!(!message.contains("\"OK\""), "names the bad one: {message}");
    }
    let ok = env
        .runnable("ok")
        .init(
            StartOptions::new("img:1")
                .env("A", "B=c")
                .env("lower.dot-dash", ""),
        )
        .expect("= in a value, odd characters in a name are fine");
    ok.start().await.expect("started");
    let spec = fake.spec_of(ok.container_name()).expect("spec");
    assert_eq!(
        spec.env,
        [
            ("A".to_string(), "B=c".to_string()),
            ("lower.dot-dash".to_string(), String::new())
        ]
    );
    env.close().await;
}

#[tokio::test]
async fn a_bind_mount_of_a_missing_host_path_is_refused_before_the_engine_creates_it() {
    let missing = std::env::temp_dir().join(unique_name("e2ekit-missing-mount"));
    assert!(!missing.exists());
    let fake = FakeEngine::new();
    fake.add_image("img:1");
    let env = fake_env(&fake, "fk-missing-mount").await;
    let spec = format!("{}/data:/data:ro", missing.display());
    let message = refused_at_init(
        &fake,
        &env,
        "app",
        &[],
        StartOptions::new("img:1").volume(spec.as_str()),
    );
    assert!(
        message.contains(&missing.join("data").display().to_string())
            && message.contains("does not exist"),
        "{message}"
    );
    env.close().await;

    // The environment's volumes, likewise, before any engine is contacted.
    let err = Environment::builder()
        .docker_host("unix:///nonexistent/e2ekit.sock")
        .name("fk-ok")
        .volume(spec.as_str())
        .build()
        .await
        .expect_err("missing host path");
    assert!(
        matches!(&err, Error::InvalidArgument(m) if m.contains("does not exist")),
        "{err}"
    );
    assert!(!missing.exists(), "nothing created it");
}

#[tokio::test]
async fn probes_that_can_never_pass_are_refused_at_init() {
    let fake = FakeEngine::new();
    fake.add_image("img:1");
    let env = fake_env(&fake, "fk-bad-probes").await;
    let http = [("http", 8080)];
    let message = refused_at_init(
        &fake,
        &env,
        "no-slash",
        &http,
        StartOptions::new("img:1").readiness(HttpProbe::new("http", "ready")),
    );
    assert!(
        message.contains("\"ready\"") && message.contains("\"/\""),
        "{message}"
    );
    let message = refused_at_init(
        &fake,
        &env,
        "nested",
        &http,
        StartOptions::new("img:1").readiness(AllProbe::new([
            TcpProbe::new("http").into(),
            HttpProbe::new("http", "").into(),
        ])),
    );
    assert!(message.contains("path"), "{message}");
    #[allow(clippy::reversed_empty_ranges)]
    let empty = 299..=200;
    let message = refused_at_init(
        &fake,
        &env,
        "no-status",
        &http,
        StartOptions::new("img:1").readiness(HttpProbe::new("http", "/").status(empty)),
    );
    assert!(message.contains("299..=200"), "{message}");
    let message = refused_at_init(
        &fake,
        &env,
        "no-program",
        &http,
        StartOptions::new("img:1").readiness(CmdProbe::new(Command::new(""))),
    );
    assert!(message.contains("command"), "{message}");
    env.runnable("fine")
        .with_ports(http)
        .init(
            StartOptions::new("img:1")
                .readiness(HttpProbe::new("http", "/ready?deep=1").status(200..=200)),
        )
        .expect("a path from the root");
    env.close().await;
}

#[tokio::test]
async fn an_invalid_image_reference_is_refused_at_init_naming_the_runnable() {
    let fake = FakeEngine::new();
    fake.add_image("img:1");
    let env = fake_env(&fake, "fk-bad-image").await;
    let long_tag = format!("img:{}", "t".repeat(129));
    let long_name = format!("{}:1", "a".repeat(256));
    for (i, bad) in [
        "",
        "   ",
        "img :1",
        " img:1",
        "img:1\n",
        "Img:1",
        "e2ekit/Demo-App:latest",
        "img:",
        "img:bad tag",
        "img:.dot",
        "img@sha256:xyz",
        "img@sha256",
        "a//b",
        "/a",
        "a/",
        "-a",
        "a/-b",
        "a/b-",
        "a...b",
        "a/b!c",
        "héllo",
        "localhost:port/a",
        "a:b:c",
        long_tag.as_str(),
        long_name.as_str(),
    ]
    .into_iter()
    .enumerate()
    {
        let message = refused_at_init(&fake, &env, &format!("img{i}"), &[], StartOptions::new(bad));
        assert!(
            message.contains(&format!("{bad:?}")) && message.contains("image reference"),
            "{bad:?}: {message}"
        );
    }
    let digest = format!("sha256:{}", "0123456789abcdef".repeat(4));
    for (i, good) in [
        "img:1".to_string(),
        "busybox".to_string(),
        "e2ekit/demo-app:latest".to_string(),
        "quay.io/prometheus/prometheus:v2.53.0".to_string(),
        "localhost:5000/a/b:Tag_1.0-rc".to_string(),
        "Registry.Example.com/team/app".to_string(),
        "a_b__c-d.e---f/g".to_string(),
        format!("img@{digest}"),
        format!("img:1@{digest}"),
        "[::1]:5000/app:1".to_string(),
        digest.clone(),
    ]
    .into_iter()
    .enumerate()
    {
        env.runnable(format!("good{i}"))
            .init(StartOptions::new(good.as_str()))
            .unwrap_or_else(|e| panic!("{good:?}: {e}"));
    }
    env.close().await;
}

// ---------------------------------------------------------------------------------------
// Floods: huge lines in error tails
// ---------------------------------------------------------------------------------------

/// The number in the first `(N bytes cut)` of `text`, if any.
fn bytes_cut(text: &str) -> Option<usize> {
    let end = text.find(" bytes cut)")?;
    let start = text[..end].rfind('(')? + 1;
    text[start..end].parse().ok()
}

#[tokio::test]
async fn a_huge_output_line_is_cut_in_the_error_and_says_how_much() {
    let fake = FakeEngine::new();
    let huge = "x".repeat(5_000_000);
    fake.script(
        "flood:1",
        Script::new()
            .log("starting")
            .log(&huge)
            .log("giving up")
            .exit_at_start(3),
    );
    let env = fake_env(&fake, "fk-flood-line").await;
    let app = define(&env, "flood", StartOptions::new("flood:1"));
    let err = app.start().await.expect_err("exits during start");
    let report = err.report();
    assert!(
        report.len() < 4096,
        "the error is {} bytes long",
        report.len()
    );
    let tail = err.log_tail().expect("a tail");
    assert_eq!(tail.len(), 3, "{report}");
    assert_eq!(
        (tail[0].as_str(), tail[2].as_str()),
        ("starting", "giving up")
    );
    assert!(tail[1].starts_with(&"x".repeat(1024)), "{report}");
    let kept = tail[1].len() - tail[1].trim_start_matches('x').len();
    assert_eq!(kept, 1024, "{report}");
    assert_eq!(bytes_cut(&tail[1]), Some(5_000_000 - 1024), "{report}");
    env.close().await;
}

#[tokio::test]
async fn many_long_lines_keep_the_whole_tail_bounded() {
    let fake = FakeEngine::new();
    let mut script = Script::new();
    for i in 0..50 {
        script = script.log(&format!("{i:02} {}", "y".repeat(100_000)));
    }
    fake.script("flood:2", script.exit_at_start(1));
    let env = fake_env(&fake, "fk-flood-tail").await;
    let app = define(&env, "flood", StartOptions::new("flood:2"));
    let err = app.start().await.expect_err("exits during start");
    let report = err.report();
    assert!(
        report.len() <= 9 * 1024,
        "the error is {} bytes long",
        report.len()
    );
    let tail = err.log_tail().expect("a tail");
    // The newest line is kept; older ones go first when the total is over its bound.
    assert!(
        tail.last().is_some_and(|l| l.starts_with("49 y")),
        "{report}"
    );
    assert!(tail.iter().all(|l| l.len() < 1100), "{report}");
    env.close().await;
}

#[test]
fn a_log_tail_keeps_the_newest_lines_within_its_total_and_says_what_it_left_out() {
    use crate::error::LogTail;
    let lines = (0..30).map(|i| (format!("{i:02} {}", "z".repeat(2000)), 0));
    let tail = LogTail::bounded(lines);
    let total: usize = tail.0.iter().map(String::len).sum();
    assert!(total <= LogTail::TOTAL_BYTES + 64, "{total} bytes kept");
    let kept = tail.0.len() - 1;
    assert_eq!(tail.0[0], format!("… ({} earlier line(s) cut)", 30 - kept));
    assert!(tail.0[1..]
        .iter()
        .zip(30 - kept..)
        .all(|(l, i)| l.starts_with(&format!("{i:02} z"))
            && l.ends_with(&format!("… ({} bytes cut)", 2003 - 1024))));
    // A line cut by the engine says how much the engine left out, plus any cut here.
    let tail = LogTail::bounded([("€".repeat(400), 10), ("short".to_string(), 0)]);
    assert_eq!(
        tail.0,
        [
            format!("{}… ({} bytes cut)", "€".repeat(341), 10 + 1200 - 1023),
            "short".to_string()
        ]
    );
}

// ---------------------------------------------------------------------------------------
// Floods: out-of-memory kills
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn an_out_of_memory_kill_at_start_is_named_with_the_memory_limit() {
    let fake = FakeEngine::new();
    fake.script(
        "hog:1",
        Script::new().log("allocating").oom_killed_at_start(),
    );
    let env = fake_env(&fake, "fk-oom-start").await;
    let app = define(
        &env,
        "hog",
        StartOptions::new("hog:1").memory_bytes(8 << 20),
    );
    let err = app.start().await.expect_err("killed during start");
    assert!(
        matches!(
            &err,
            Error::ContainerExited { exit_code: 137, oom_killed: true, memory_limit: Some(limit), .. }
                if *limit == 8 << 20
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "runnable \"hog\" exited with code 137, killed: out of memory (memory limit 8388608 bytes), \
         while starting\n  last 1 line(s) of its output:\n  | allocating"
    );
    env.close().await;
}

#[tokio::test]
async fn an_out_of_memory_kill_during_readiness_is_named() {
    let fake = FakeEngine::new();
    fake.add_image("hog:2");
    let env = fake_env(&fake, "fk-oom-ready").await;
    // No memory limit: the host ran out.
    let app = define(
        &env,
        "hog",
        StartOptions::new("hog:2")
            .readiness(LogProbe::contains("never printed"))
            .wait_policy(WaitPolicy::timeout(Duration::from_secs(60))),
    );
    app.start().await.expect("started");
    let waiter = tokio::spawn({
        let app = app.clone();
        async move { app.wait_ready().await }
    });
    fake.oom_kill(app.container_name());
    let err = waiter.await.expect("task").expect_err("killed");
    assert_eq!(err.exit_code(), Some(137));
    assert!(
        err.to_string()
            .contains("killed: out of memory (no memory limit: the host ran out)"),
        "{err}"
    );
    // Asked again, the runnable still knows why.
    let again = app.wait_ready().await.expect_err("still dead");
    assert!(
        again.to_string().contains("killed: out of memory"),
        "{again}"
    );
    env.close().await;
}

#[tokio::test]
async fn a_plain_kill_is_not_called_out_of_memory() {
    let fake = FakeEngine::new();
    fake.add_image("victim:1");
    let env = fake_env(&fake, "fk-oom-not").await;
    let app = define(
        &env,
        "victim",
        StartOptions::new("victim:1")
            .memory_bytes(8 << 20)
            .readiness(LogProbe::contains("never printed")),
    );
    app.start().await.expect("started");
    fake.exit(app.container_name(), 137);
    let err = app.wait_ready().await.expect_err("killed");
    assert!(
        matches!(
            err,
            Error::ContainerExited {
                exit_code: 137,
                oom_killed: false,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!err.to_string().contains("out of memory"), "{err}");
    env.close().await;
}

#[tokio::test]
async fn an_out_of_memory_kill_of_a_child_process_says_so() {
    let fake = FakeEngine::new();
    fake.script(
        "sh:1",
        Script {
            exit_at_start: Some(crate::engine::ExitStatus {
                code: 2,
                oom_killed: true,
            }),
            ..Script::new()
        },
    );
    let env = fake_env(&fake, "fk-oom-child").await;
    let app = define(&env, "sh", StartOptions::new("sh:1").memory_bytes(1 << 30));
    let err = app.start().await.expect_err("exits during start");
    assert_eq!(err.exit_code(), Some(2));
    assert!(
        err.to_string().starts_with(
            "runnable \"sh\" exited with code 2, a process in it was killed: out of memory \
             (memory limit 1073741824 bytes), while starting"
        ),
        "{err}"
    );
    env.close().await;
}
