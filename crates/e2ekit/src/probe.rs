//! Readiness probes and the wait policy.
//!
//! A probe answers "is this runnable ready?"; the [`WaitPolicy`] says how long to keep asking
//! and how often. Polling starts at a millisecond and grows to a small cap (4 ms), so readiness is
//! noticed within milliseconds of it happening instead of after a fixed sleep.
//!
//! ```
//! use e2ekit::prelude::*;
//! use std::time::Duration;
//!
//! let http = HttpProbe::new("http", "/ready").status(200..=204).body_contains("ok");
//! let tcp = TcpProbe::new("grpc");
//! let both = AllProbe::new([http.into(), tcp.into()]);
//! let from_logs = LogProbe::contains("server started");
//! let by_command = CmdProbe::new(Command::sh("test -f /tmp/ready"));
//! let policy = WaitPolicy::timeout(Duration::from_secs(30)).max_interval(Duration::from_millis(50));
//! # let _ = (both, from_logs, by_command, policy);
//! ```

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use regex::Regex;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use crate::backend::Backend;
use crate::options::Command;

/// How long to wait for something, and how often to check.
///
/// The interval starts at `min_interval` and grows by half each attempt up to `max_interval`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WaitPolicy {
    pub(crate) timeout: Duration,
    pub(crate) min_interval: Duration,
    pub(crate) max_interval: Duration,
}

impl Default for WaitPolicy {
    /// One minute, polling from 1 ms up to every 4 ms. Readiness is noticed a few
    /// milliseconds after it happens (the bring-up benchmark measured a median lag of 6.6 ms
    /// with a 10 ms cap, 3.5-5 ms with 1-2 ms caps, at no measurable bring-up cost); probes
    /// that are costly for the engine (`CmdProbe`) keep a 50 ms floor.
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(60),
            min_interval: Duration::from_millis(1),
            max_interval: Duration::from_millis(4),
        }
    }
}

impl WaitPolicy {
    /// Gives up after `timeout`, with the default polling intervals.
    pub fn timeout(timeout: Duration) -> Self {
        Self {
            timeout,
            ..Self::default()
        }
    }

    /// First (smallest) pause between attempts.
    pub fn min_interval(mut self, interval: Duration) -> Self {
        self.min_interval = interval;
        self.max_interval = self.max_interval.max(interval);
        self
    }

    /// Largest pause between attempts.
    pub fn max_interval(mut self, interval: Duration) -> Self {
        self.max_interval = interval;
        self.min_interval = self.min_interval.min(interval);
        self
    }

    /// The deadline.
    pub fn deadline(&self) -> Duration {
        self.timeout
    }

    pub(crate) fn intervals(&self) -> impl Iterator<Item = Duration> {
        let max = self.max_interval;
        std::iter::successors(Some(self.min_interval), move |d| {
            Some((d.mul_f64(1.5) + Duration::from_micros(100)).min(max))
        })
    }
}

/// Ready when an HTTP(S) GET answers with a status in range (default 200..=299) and, if set,
/// a body containing a given text. HTTPS skips certificate verification.
#[derive(Debug, Clone)]
pub struct HttpProbe {
    pub(crate) port: String,
    pub(crate) path: String,
    pub(crate) https: bool,
    pub(crate) status: RangeInclusive<u16>,
    pub(crate) body: Option<String>,
}

impl HttpProbe {
    /// Probes `path` on the named port.
    pub fn new(port: impl Into<String>, path: impl Into<String>) -> Self {
        Self {
            port: port.into(),
            path: path.into(),
            https: false,
            status: 200..=299,
            body: None,
        }
    }

    /// Accepted status codes.
    pub fn status(mut self, range: RangeInclusive<u16>) -> Self {
        self.status = range;
        self
    }

    /// Requires the body to contain `text`.
    pub fn body_contains(mut self, text: impl Into<String>) -> Self {
        self.body = Some(text.into());
        self
    }

    /// Uses HTTPS (certificates are not verified).
    pub fn https(mut self) -> Self {
        self.https = true;
        self
    }
}

/// Ready when a TCP connection to the named port succeeds.
///
/// It connects to the container's address on the environment network where the host can route
/// to it, because Docker's port proxy accepts connections on the published port before the
/// service inside listens.
#[derive(Debug, Clone)]
pub struct TcpProbe {
    pub(crate) port: String,
}

impl TcpProbe {
    /// Probes the named port.
    pub fn new(port: impl Into<String>) -> Self {
        Self { port: port.into() }
    }
}

/// Ready when a command run inside the container exits with 0.
#[derive(Debug, Clone)]
pub struct CmdProbe {
    pub(crate) command: Command,
}

impl CmdProbe {
    /// Probes by running `command` in the container.
    pub fn new(command: impl Into<Command>) -> Self {
        Self {
            command: command.into(),
        }
    }
}

/// Ready once the container printed a line matching a pattern (stdout or stderr).
///
/// The log stream pushes lines to the probe, so readiness is noticed as the line arrives.
#[derive(Debug, Clone)]
pub struct LogProbe {
    pub(crate) pattern: Arc<Regex>,
    pub(crate) seen: Arc<AtomicBool>,
}

impl LogProbe {
    /// Ready once a line contains `text`.
    pub fn contains(text: &str) -> Self {
        Self::from_regex(Regex::new(&regex::escape(text)).unwrap_or_else(|_| never_matches()))
    }

    /// Ready once a line matches `pattern` (unanchored). Errors on an invalid regex.
    pub fn regex(pattern: &str) -> crate::Result<Self> {
        Regex::new(pattern)
            .map(Self::from_regex)
            .map_err(|e| crate::Error::InvalidArgument(format!("log probe regex {pattern:?}: {e}")))
    }

    fn from_regex(re: Regex) -> Self {
        Self {
            pattern: Arc::new(re),
            seen: Arc::new(AtomicBool::new(false)),
        }
    }

    pub(crate) fn observe(&self, line: &str) {
        if !self.seen.load(Ordering::Relaxed) && self.pattern.is_match(line) {
            self.seen.store(true, Ordering::Release);
        }
    }
}

fn never_matches() -> Regex {
    // An escaped literal always compiles; this is only the type-correct fallback.
    Regex::new("$^").expect("static regex")
}

/// Ready when every inner probe is ready.
#[derive(Debug, Clone)]
pub struct AllProbe {
    pub(crate) probes: Vec<Probe>,
}

impl AllProbe {
    /// All of `probes` must pass.
    pub fn new(probes: impl IntoIterator<Item = Probe>) -> Self {
        Self {
            probes: probes.into_iter().collect(),
        }
    }
}

/// Any readiness probe.
#[derive(Debug, Clone)]
pub enum Probe {
    /// See [`HttpProbe`].
    Http(HttpProbe),
    /// See [`TcpProbe`].
    Tcp(TcpProbe),
    /// See [`CmdProbe`].
    Cmd(CmdProbe),
    /// See [`LogProbe`].
    Log(LogProbe),
    /// See [`AllProbe`].
    All(AllProbe),
}

macro_rules! probe_from {
    ($($t:ident => $v:ident),*) => {$(
        impl From<$t> for Probe {
            fn from(p: $t) -> Self { Probe::$v(p) }
        }
    )*};
}
probe_from!(HttpProbe => Http, TcpProbe => Tcp, CmdProbe => Cmd, LogProbe => Log, AllProbe => All);

/// What a probe may look at.
pub(crate) struct ProbeTarget<'a> {
    pub runnable: &'a str,
    pub backend: &'a dyn Backend,
    pub http: &'a reqwest::Client,
    pub container_id: &'a str,
    pub container_ip: Option<IpAddr>,
    /// Port name → (container port, host port).
    pub ports: &'a BTreeMap<String, (u16, Option<u16>)>,
    pub user: Option<&'a str>,
    /// Upper bound for one attempt, so a stalled connection cannot eat the whole wait.
    pub attempt_timeout: Duration,
}

impl ProbeTarget<'_> {
    fn port(&self, name: &str) -> Result<(u16, Option<u16>), String> {
        self.ports.get(name).copied().ok_or_else(|| {
            format!(
                "the probe uses port {name:?}, but runnable {:?} declares {:?}",
                self.runnable,
                self.ports.keys().collect::<Vec<_>>()
            )
        })
    }
}

impl Probe {
    /// A copy whose log watchers are not shared with the original (one per runnable start).
    pub(crate) fn fresh(&self) -> Probe {
        match self {
            Probe::Log(p) => Probe::Log(LogProbe::from_regex((*p.pattern).clone())),
            Probe::All(all) => Probe::All(AllProbe::new(all.probes.iter().map(Probe::fresh))),
            other => other.clone(),
        }
    }

    /// The log probes inside this probe, to be fed by the log stream.
    pub(crate) fn log_probes(&self) -> Vec<LogProbe> {
        match self {
            Probe::Log(p) => vec![p.clone()],
            Probe::All(all) => all.probes.iter().flat_map(Probe::log_probes).collect(),
            _ => Vec::new(),
        }
    }

    /// The port names the probe needs (checked when the runnable is defined).
    pub(crate) fn port_names(&self) -> Vec<&str> {
        match self {
            Probe::Http(p) => vec![p.port.as_str()],
            Probe::Tcp(p) => vec![p.port.as_str()],
            Probe::All(all) => all.probes.iter().flat_map(Probe::port_names).collect(),
            _ => Vec::new(),
        }
    }

    /// Smallest sensible pause between attempts: exec round trips are costly for the engine.
    pub(crate) fn min_interval(&self) -> Duration {
        match self {
            Probe::Cmd(_) => Duration::from_millis(50),
            Probe::All(all) => all
                .probes
                .iter()
                .map(Probe::min_interval)
                .max()
                .unwrap_or_default(),
            _ => Duration::ZERO,
        }
    }

    /// One attempt: `Ok` when ready, otherwise why not.
    pub(crate) fn check<'a>(
        &'a self,
        target: &'a ProbeTarget<'a>,
    ) -> futures_util::future::BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            match self {
                Probe::Http(p) => check_http(p, target).await,
                Probe::Tcp(p) => check_tcp(p, target).await,
                Probe::Cmd(p) => check_cmd(p, target).await,
                Probe::Log(p) => {
                    if p.seen.load(Ordering::Acquire) {
                        Ok(())
                    } else {
                        Err(format!("no output line matched /{}/ yet", p.pattern))
                    }
                }
                Probe::All(all) => {
                    for p in &all.probes {
                        p.check(target).await?;
                    }
                    Ok(())
                }
            }
        })
    }
}

async fn check_http(p: &HttpProbe, t: &ProbeTarget<'_>) -> Result<(), String> {
    let (_, host_port) = t.port(&p.port)?;
    let host_port = host_port.ok_or_else(|| format!("port {:?} is not published", p.port))?;
    let scheme = if p.https { "https" } else { "http" };
    let url = format!("{scheme}://127.0.0.1:{host_port}{}", p.path);
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
    let (container_port, host_port) = t.port(&p.port)?;
    if let Some(ip) = t.container_ip {
        let addr = SocketAddr::new(ip, container_port);
        match tokio::time::timeout(t.attempt_timeout, TcpStream::connect(addr)).await {
            Ok(Ok(_)) => return Ok(()),
            // Refused means we reached the container and nothing listens yet.
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                return Err(format!("connect {addr}: {e}"))
            }
            // Unroutable (e.g. Docker Desktop's VM): fall back to the published port.
            _ => {}
        }
    }
    let host_port = host_port.ok_or_else(|| format!("port {:?} is not published", p.port))?;
    let addr = SocketAddr::from(([127, 0, 0, 1], host_port));
    let mut stream = tokio::time::timeout(t.attempt_timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| format!("connect {addr}: timed out"))?
        .map_err(|e| format!("connect {addr}: {e}"))?;
    // Through the port proxy, a connection that is closed at once means nothing listens.
    let mut byte = [0u8; 1];
    match tokio::time::timeout(Duration::from_millis(20), stream.read(&mut byte)).await {
        Ok(Ok(0)) | Ok(Err(_)) => Err(format!("connect {addr}: closed by the port proxy")),
        _ => Ok(()),
    }
}

async fn check_cmd(p: &CmdProbe, t: &ProbeTarget<'_>) -> Result<(), String> {
    let argv = p.command.to_vec();
    let out = t
        .backend
        .exec(t.container_id, t.runnable, &argv, None, t.user)
        .await
        .map_err(|e| e.to_string())?;
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

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_grow_from_min_to_max() {
        let p = WaitPolicy::timeout(Duration::from_secs(1));
        let v: Vec<_> = p.intervals().take(20).collect();
        assert_eq!(v[0], Duration::from_millis(1));
        assert!(v.windows(2).all(|w| w[1] >= w[0]));
        assert_eq!(*v.last().unwrap(), Duration::from_millis(4));
    }

    #[test]
    fn log_probe_sees_matching_line_once_and_fresh_copies_are_independent() {
        let p = LogProbe::contains("ready (1)");
        let copy = Probe::from(p.clone()).fresh();
        p.observe("not yet");
        assert!(!p.seen.load(Ordering::Relaxed));
        p.observe("server ready (1) now");
        assert!(p.seen.load(Ordering::Relaxed));
        assert!(copy
            .log_probes()
            .iter()
            .all(|c| !c.seen.load(Ordering::Relaxed)));
    }

    #[test]
    fn all_probe_reports_nested_ports_and_log_probes() {
        let all = Probe::from(AllProbe::new([
            HttpProbe::new("http", "/").into(),
            TcpProbe::new("grpc").into(),
            LogProbe::contains("x").into(),
        ]));
        assert_eq!(all.port_names(), ["http", "grpc"]);
        assert_eq!(all.log_probes().len(), 1);
        assert!(LogProbe::regex("(").is_err());
    }
}
