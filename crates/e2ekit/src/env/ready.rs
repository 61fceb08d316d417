//! Running readiness probes against a started container, at the addresses the engine handed
//! out.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use crate::engine::{Backend, ContainerHealth, ExecRequest};
use crate::error::{Error, Result};
use crate::spec::{CmdProbe, CustomProbe, HttpProbe, Probe, ProbeContext, StartOptions, TcpProbe};

/// Where a probe reaches one named port.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PortTarget {
    /// The port inside the container.
    pub container_port: u16,
    /// Where the test process reaches it, as the engine published it.
    pub published: Option<SocketAddr>,
}

/// What a probe may look at: addresses the engine handed out, and the engine for commands.
pub(crate) struct ProbeTarget<'a> {
    pub runnable: &'a str,
    /// The container's name: other runnables reach it by this name.
    pub container_name: &'a str,
    pub backend: &'a dyn Backend,
    pub http: &'a reqwest::Client,
    pub container_id: &'a str,
    /// The container's own address, when the engine says the test process can route to it.
    pub direct_ip: Option<IpAddr>,
    /// Port name → where to reach it.
    pub ports: &'a BTreeMap<String, PortTarget>,
    pub user: Option<&'a str>,
    /// Upper bound for one attempt, so a stalled connection cannot eat the whole wait.
    pub attempt_timeout: Duration,
}

impl ProbeTarget<'_> {
    fn port(&self, name: &str) -> Result<PortTarget, String> {
        self.ports.get(name).copied().ok_or_else(|| {
            format!(
                "the probe uses port {name:?}, but runnable {:?} declares {:?}",
                self.runnable,
                self.ports.keys().collect::<Vec<_>>()
            )
        })
    }
}

/// Why a probe attempt did not pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProbeFailure {
    pub reason: String,
    /// Waiting longer cannot help (the health check reports `unhealthy`): the wait ends now.
    pub fatal: bool,
}

impl From<String> for ProbeFailure {
    fn from(reason: String) -> Self {
        Self {
            reason,
            fatal: false,
        }
    }
}

impl From<&str> for ProbeFailure {
    fn from(reason: &str) -> Self {
        reason.to_string().into()
    }
}

impl ProbeFailure {
    fn fatal(reason: String) -> Self {
        Self {
            reason,
            fatal: true,
        }
    }
}

impl Probe {
    /// One attempt: `Ok` when ready, otherwise why not.
    pub(crate) fn check<'a>(
        &'a self,
        target: &'a ProbeTarget<'a>,
    ) -> futures_util::future::BoxFuture<'a, std::result::Result<(), ProbeFailure>> {
        Box::pin(async move {
            match self {
                Probe::Http(p) => Ok(check_http(p, target).await?),
                Probe::Tcp(p) => Ok(check_tcp(p, target).await?),
                Probe::Cmd(p) => Ok(check_cmd(p, target).await?),
                Probe::Log(p) => {
                    if p.seen.load(Ordering::Acquire) {
                        Ok(())
                    } else {
                        Err(format!("no output line matched /{}/ yet", p.pattern).into())
                    }
                }
                Probe::All(all) => {
                    for p in &all.probes {
                        p.check(target).await?;
                    }
                    Ok(())
                }
                Probe::Health(_) => check_health(target).await,
                Probe::Custom(p) => Ok(check_custom(p, target).await?),
            }
        })
    }
}

/// Refuses, before any container is created, a health probe on an image that defines no
/// health check when the start options give none either: the status would never come.
pub(crate) async fn check_health_defined(
    backend: &dyn Backend,
    runnable: &str,
    options: &StartOptions,
) -> Result<()> {
    let waits_on_health = options.readiness.as_ref().is_some_and(Probe::uses_health);
    if !waits_on_health || options.health_check.is_some() {
        return Ok(());
    }
    if backend.image_has_health_check(&options.image).await? {
        return Ok(());
    }
    Err(Error::InvalidArgument(format!(
        "runnable {runnable:?} waits for its health check (HealthProbe), but image {:?} defines no HEALTHCHECK; give one with StartOptions::health_check(HealthCheck::new(..)) or use another probe",
        options.image
    )))
}

async fn check_health(t: &ProbeTarget<'_>) -> std::result::Result<(), ProbeFailure> {
    let last_of = |last: &Option<(i64, String)>| match last {
        Some((code, output)) => format!(
            "; last check exited with {code}, output {:?}",
            truncate(output.trim_end(), 400)
        ),
        None => String::new(),
    };
    match t.backend.health(t.container_id, t.runnable).await {
        Ok(ContainerHealth::Healthy) => Ok(()),
        Ok(ContainerHealth::Starting { last }) => Err(format!(
            "the health check has not passed yet (status starting){}",
            last_of(&last)
        )
        .into()),
        Ok(ContainerHealth::Unhealthy {
            failing_streak,
            last,
        }) => Err(ProbeFailure::fatal(format!(
            "the engine reports it unhealthy after {failing_streak} failed health check(s) in a row{}",
            last_of(&last)
        ))),
        Ok(ContainerHealth::NoHealthCheck) => Err(ProbeFailure::fatal(format!(
            "it waits for its health check (HealthProbe), but container {} has none; give one with StartOptions::health_check(HealthCheck::new(..))",
            t.container_name
        ))),
        Err(e) => Err(format!("asking the engine for the health status: {}", error_chain(&e)).into()),
    }
}

async fn check_custom(p: &CustomProbe, t: &ProbeTarget<'_>) -> std::result::Result<(), String> {
    let ctx = ProbeContext {
        runnable: t.runnable.to_string(),
        container_name: t.container_name.to_string(),
        ports: t
            .ports
            .iter()
            .map(|(name, port)| (name.clone(), (port.container_port, port.published)))
            .collect(),
        container_ip: t.direct_ip,
    };
    let name = p.description.as_deref().unwrap_or("the custom probe");
    match tokio::time::timeout(p.attempt_timeout, (p.check)(ctx)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("{name}: {e}")),
        Err(_) => Err(format!(
            "{name}: the attempt took longer than {:?}",
            p.attempt_timeout
        )),
    }
}

async fn check_http(p: &HttpProbe, t: &ProbeTarget<'_>) -> Result<(), String> {
    let published = t
        .port(&p.port)?
        .published
        .ok_or_else(|| format!("port {:?} is not published", p.port))?;
    let scheme = if p.https { "https" } else { "http" };
    let url = format!("{scheme}://{published}{}", p.path);
    let response = t
        .http
        .get(&url)
        .timeout(t.attempt_timeout)
        .send()
        .await
        .map_err(|e| format!("GET {url}: {}", error_chain(&e)))?;
    let status = response.status().as_u16();
    let body = response
        .text()
        .await
        .map_err(|e| format!("GET {url}: reading body: {e}"))?;
    if !p.status.contains(&status) {
        return Err(format!(
            "GET {url} answered {status}, expected {}..={}; body: {:?}",
            p.status.start(),
            p.status.end(),
            truncate(&body, 200)
        ));
    }
    if let Some(needle) = &p.body {
        if !body.contains(needle.as_str()) {
            return Err(format!(
                "GET {url} answered {status} but the body lacks {needle:?}; body: {:?}",
                truncate(&body, 200)
            ));
        }
    }
    Ok(())
}

async fn check_tcp(p: &TcpProbe, t: &ProbeTarget<'_>) -> Result<(), String> {
    let port = t.port(&p.port)?;
    if let Some(ip) = t.direct_ip {
        let addr = SocketAddr::new(ip, port.container_port);
        match tokio::time::timeout(t.attempt_timeout, TcpStream::connect(addr)).await {
            Ok(Ok(_)) => return Ok(()),
            // Refused means we reached the container and nothing listens yet.
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                return Err(format!("connect {addr}: {e}"))
            }
            // Unroutable after all: fall back to the published port.
            _ => {}
        }
    }
    let addr = port
        .published
        .ok_or_else(|| format!("port {:?} is not published", p.port))?;
    let mut stream = tokio::time::timeout(t.attempt_timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| format!("connect {addr}: timed out"))?
        .map_err(|e| format!("connect {addr}: {e}"))?;
    // A published port may be served by a proxy that accepts before the service inside
    // listens; a connection that is closed at once means nothing listens yet.
    let mut byte = [0u8; 1];
    match tokio::time::timeout(Duration::from_millis(20), stream.read(&mut byte)).await {
        Ok(Ok(0)) | Ok(Err(_)) => Err(format!(
            "connect {addr}: accepted, then closed at once (nothing listens behind the published port yet)"
        )),
        _ => Ok(()),
    }
}

async fn check_cmd(p: &CmdProbe, t: &ProbeTarget<'_>) -> Result<(), String> {
    let request = ExecRequest {
        argv: p.command.to_vec(),
        stdin: None,
        user: t.user.map(str::to_string),
    };
    let out = t
        .backend
        .exec(t.container_id, t.runnable, &request)
        .await
        .map_err(|e| error_chain(&e))?;
    if out.exit_code == 0 {
        Ok(())
    } else {
        Err(format!(
            "{:?} exited with {}; stdout {:?}, stderr {:?}",
            p.command.to_string(),
            out.exit_code,
            truncate(&out.stdout, 200),
            truncate(&out.stderr, 200)
        ))
    }
}

/// An error and all its causes on one line, for probe results.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The first `max` characters of `s`.
pub(crate) fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use crate::engine::fake::{FakeEngine, Script};
    use crate::engine::ContainerHealth;
    use crate::env::tests::{eventually, fake_env, HttpServer};
    use crate::prelude::*;

    fn define(env: &Environment, name: &str, opts: StartOptions) -> Runnable {
        env.runnable(name)
            .with_ports([("http", 8080)])
            .init(opts)
            .expect("defined")
    }

    fn long() -> WaitPolicy {
        WaitPolicy::timeout(Duration::from_secs(60))
    }

    #[tokio::test]
    async fn health_probe_waits_for_healthy() {
        let fake = FakeEngine::new();
        fake.add_health_checked_image("hc:1");
        let env = fake_env(&fake, "fk-health-ok").await;
        let app = define(
            &env,
            "app",
            StartOptions::new("hc:1")
                .readiness(HealthProbe::new())
                .wait_policy(long()),
        );
        app.start().await.expect("started");
        let waiter = tokio::spawn({
            let app = app.clone();
            async move { app.wait_ready().await }
        });
        let name = app.container_name().to_string();
        eventually("the health status was asked", || {
            fake.calls_of(&name).iter().any(|c| c == "health")
        })
        .await;
        assert!(!waiter.is_finished(), "starting is not ready");
        fake.set_health(&name, ContainerHealth::Healthy);
        waiter.await.expect("task").expect("ready once healthy");
        env.close().await;
    }

    #[tokio::test]
    async fn unhealthy_fails_at_once_with_the_check_output_and_the_logs() {
        let fake = FakeEngine::new();
        fake.script("hc:2", Script::new().log("serving"));
        fake.add_health_checked_image("hc:2");
        let env = fake_env(&fake, "fk-unhealthy").await;
        let app = define(
            &env,
            "app",
            StartOptions::new("hc:2")
                .readiness(HealthProbe::new())
                .wait_policy(long()),
        );
        app.start().await.expect("started");
        fake.set_health(
            app.container_name(),
            ContainerHealth::Unhealthy {
                failing_streak: 3,
                last: Some((1, "redis-cli: connection refused\n".to_string())),
            },
        );
        // The deadline is a minute away: only the unhealthy status ends this wait now.
        let err = app.wait_ready().await.expect_err("unhealthy");
        assert!(matches!(err, Error::ProbeFailed { .. }), "{err}");
        assert_eq!(err.runnable(), Some("app"));
        let text = err.to_string();
        assert!(
            text.contains("unhealthy after 3 failed")
                && text.contains("exited with 1")
                && text.contains("connection refused"),
            "{text}"
        );
        assert_eq!(err.log_tail(), Some(&["serving".to_string()][..]));
        env.close().await;
    }

    #[tokio::test]
    async fn an_image_without_a_health_check_is_refused_at_start_without_a_container() {
        let fake = FakeEngine::new();
        fake.add_image("plain:1");
        let env = fake_env(&fake, "fk-no-hc").await;
        let app = define(
            &env,
            "app",
            StartOptions::new("plain:1").readiness(AllProbe::new([HealthProbe::new().into()])),
        );
        let err = app.start().await.expect_err("no health check");
        let text = err.to_string();
        assert!(
            text.contains("\"app\"") && text.contains("plain:1") && text.contains("HEALTHCHECK"),
            "{text}"
        );
        assert!(fake.containers().is_empty());
        assert!(!fake
            .calls()
            .iter()
            .any(|c| c.starts_with("create_and_start")));

        // A health check given with the options makes the same image usable.
        let with_check = define(
            &env,
            "checked",
            StartOptions::new("plain:1")
                .health_check(
                    HealthCheck::new(Command::sh("true")).interval(Duration::from_millis(10)),
                )
                .readiness(HealthProbe::new())
                .wait_policy(long()),
        );
        with_check.start().await.expect("started");
        let spec = fake.spec_of(with_check.container_name()).expect("spec");
        assert_eq!(
            spec.health_check.map(|h| h.interval),
            Some(Duration::from_millis(10))
        );
        fake.set_health(with_check.container_name(), ContainerHealth::Healthy);
        with_check.wait_ready().await.expect("healthy");
        env.close().await;
    }

    #[tokio::test]
    async fn a_container_without_a_health_check_at_wait_time_fails_at_once() {
        // The image check passed, yet the engine runs no check (e.g. the image changed under
        // the tag): the wait must not burn its deadline.
        let fake = FakeEngine::new();
        fake.add_health_checked_image("hc:3");
        let env = fake_env(&fake, "fk-hc-gone").await;
        let app = define(
            &env,
            "app",
            StartOptions::new("hc:3")
                .readiness(HealthProbe::new())
                .wait_policy(long()),
        );
        app.start().await.expect("started");
        fake.set_health(app.container_name(), ContainerHealth::NoHealthCheck);
        let err = app.wait_ready().await.expect_err("no check");
        assert!(matches!(err, Error::ProbeFailed { .. }), "{err}");
        assert!(err.to_string().contains("has none"), "{err}");
        env.close().await;
    }

    #[tokio::test]
    async fn custom_probe_gets_the_endpoints_and_retries_until_ok() {
        let fake = FakeEngine::new();
        let server = HttpServer::start(200, "PONG").await;
        fake.script("kv:1", Script::new().serve(8080, server.addr));
        let env = fake_env(&fake, "fk-custom-ok").await;
        let attempts = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let probe = Probe::custom({
            let attempts = attempts.clone();
            let seen = seen.clone();
            move |ctx: ProbeContext| {
                let attempts = attempts.clone();
                let seen = seen.clone();
                async move {
                    let addr = ctx.socket_addr("http")?;
                    seen.lock().unwrap().push((
                        ctx.runnable().to_string(),
                        addr,
                        ctx.internal_endpoint("http")?,
                    ));
                    // A real round trip to the served port.
                    tokio::net::TcpStream::connect(addr).await?;
                    if attempts.fetch_add(1, Ordering::SeqCst) < 2 {
                        return Err("not yet".into());
                    }
                    Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
                }
            }
        });
        let app = define(
            &env,
            "kv",
            StartOptions::new("kv:1")
                .readiness(probe)
                .wait_policy(long()),
        );
        start_and_wait_ready(&[&app]).await.expect("ready");
        assert_eq!(attempts.load(Ordering::SeqCst), 3);
        let seen = seen.lock().unwrap().clone();
        assert_eq!(
            seen[0],
            (
                "kv".to_string(),
                server.addr,
                app.internal_endpoint("http").expect("internal")
            )
        );
        env.close().await;
    }

    #[tokio::test]
    async fn custom_probe_timeout_carries_its_last_error_and_the_logs() {
        let fake = FakeEngine::new();
        fake.script("kv:2", Script::new().log("loading dataset"));
        let env = fake_env(&fake, "fk-custom-late").await;
        let probe = CustomProbe::new(|_ctx| async {
            Err::<(), _>(std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                "PING refused",
            ))
        })
        .describe("redis PING");
        let app = define(
            &env,
            "kv",
            StartOptions::new("kv:2")
                .readiness(probe)
                .wait_policy(WaitPolicy::timeout(Duration::from_millis(150))),
        );
        app.start().await.expect("started");
        let err = app.wait_ready().await.expect_err("never ready");
        match &err {
            Error::NotReady {
                last_error, logs, ..
            } => {
                assert_eq!(last_error, "redis PING: PING refused");
                assert_eq!(logs.0, ["loading dataset"]);
            }
            other => panic!("expected NotReady, got {other}"),
        }
        env.close().await;
    }

    #[tokio::test]
    async fn a_hung_custom_attempt_is_cut_and_a_crash_ends_the_wait_with_the_exit_code() {
        let fake = FakeEngine::new();
        fake.script("kv:3", Script::new().log("starting"));
        let env = fake_env(&fake, "fk-custom-crash").await;
        let started = Arc::new(tokio::sync::Notify::new());
        let probe = CustomProbe::new({
            let started = started.clone();
            move |_ctx| {
                let started = started.clone();
                async move {
                    started.notify_one();
                    // Hangs, as a client waiting on a server that never answers.
                    std::future::pending::<()>().await;
                    Ok::<_, String>(())
                }
            }
        });
        let app = define(
            &env,
            "kv",
            StartOptions::new("kv:3")
                .readiness(probe)
                .wait_policy(long()),
        );
        app.start().await.expect("started");
        let waiter = tokio::spawn({
            let app = app.clone();
            async move { app.wait_ready().await }
        });
        started.notified().await;
        fake.print(app.container_name(), "panic: disk full");
        fake.exit(app.container_name(), 2);
        let err = waiter.await.expect("task").expect_err("crashed");
        assert!(matches!(err, Error::ContainerExited { .. }), "{err}");
        assert_eq!(err.exit_code(), Some(2));
        assert_eq!(
            err.log_tail(),
            Some(&["starting".to_string(), "panic: disk full".to_string()][..])
        );

        // A hung attempt counts as failed after its own bound, and is tried again.
        fake.script("kv:4", Script::new());
        let tries = Arc::new(AtomicUsize::new(0));
        let hung_once = CustomProbe::new({
            let tries = tries.clone();
            move |_ctx| {
                let first = tries.fetch_add(1, Ordering::SeqCst) == 0;
                async move {
                    if first {
                        std::future::pending::<()>().await;
                    }
                    Ok::<_, String>(())
                }
            }
        })
        .attempt_timeout(Duration::from_millis(20));
        let again = define(
            &env,
            "kv4",
            StartOptions::new("kv:4")
                .readiness(hung_once)
                .wait_policy(long()),
        );
        start_and_wait_ready(&[&again])
            .await
            .expect("ready on the second attempt");
        assert_eq!(tries.load(Ordering::SeqCst), 2);
        env.close().await;
    }
}
