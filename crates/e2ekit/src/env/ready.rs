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
