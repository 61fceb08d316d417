//! Readiness probes: what "ready" means for a runnable.
//!
//! A probe answers "is this runnable ready?"; the [`crate::WaitPolicy`] says how long to keep
//! asking and how often. This module only describes probes; running them against a started
//! container is the environment's job.
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
//! // The image's own HEALTHCHECK, or one given with the start options:
//! let healthy = HealthProbe::new();
//! let check = HealthCheck::new(Command::sh("test -f /tmp/ready")).interval(Duration::from_millis(200));
//! // Any check the test process can make, as an async closure:
//! let custom = Probe::custom(|ctx| async move {
//!     let addr = ctx.socket_addr("redis")?;
//!     tokio::net::TcpStream::connect(addr).await?;
//!     Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
//! });
//! # let _ = (both, from_logs, by_command, policy, healthy, check, custom);
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;

use regex::Regex;

use super::command::Command;

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
    /// See [`HealthProbe`].
    Health(HealthProbe),
    /// See [`CustomProbe`].
    Custom(CustomProbe),
}

macro_rules! probe_from {
    ($($t:ident => $v:ident),*) => {$(
        impl From<$t> for Probe {
            fn from(p: $t) -> Self { Probe::$v(p) }
        }
    )*};
}
probe_from!(HttpProbe => Http, TcpProbe => Tcp, CmdProbe => Cmd, LogProbe => Log, AllProbe => All,
    HealthProbe => Health, CustomProbe => Custom);

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

    /// Why this probe could never pass, if it could not (checked when the runnable is
    /// defined, so a typo fails there instead of burning the whole readiness deadline).
    pub(crate) fn check_definition(&self) -> Result<(), String> {
        match self {
            Probe::Http(p) => {
                if !p.path.starts_with('/') {
                    return Err(format!(
                        "the HTTP probe path {:?} on port {:?} must start with \"/\" (e.g. \"/ready\")",
                        p.path, p.port
                    ));
                }
                if p.status.is_empty() {
                    return Err(format!(
                        "the HTTP probe on port {:?} accepts no status: the range {}..={} is empty; give low..=high (e.g. 200..=299)",
                        p.port,
                        p.status.start(),
                        p.status.end()
                    ));
                }
                Ok(())
            }
            Probe::Cmd(p) if p.command.program.is_empty() => Err(
                "the command probe's command has an empty program; give the program to run (e.g. Command::sh(\"test -f /tmp/ready\"))"
                    .to_string(),
            ),
            Probe::All(all) => all.probes.iter().try_for_each(Probe::check_definition),
            Probe::Custom(p) if p.attempt_timeout.is_zero() => Err(format!(
                "the attempt timeout of {p:?} is zero; give a positive duration (the default is {DEFAULT_CUSTOM_ATTEMPT:?})"
            )),
            Probe::Tcp(_) | Probe::Cmd(_) | Probe::Log(_) | Probe::Health(_) | Probe::Custom(_) => {
                Ok(())
            }
        }
    }

    /// Smallest sensible pause between attempts: exec round trips are costly for the engine.
    pub(crate) fn min_interval(&self) -> Duration {
        match self {
            // Asking the engine for the health status is an inspect round trip.
            Probe::Cmd(_) | Probe::Health(_) => Duration::from_millis(50),
            Probe::All(all) => all
                .probes
                .iter()
                .map(Probe::min_interval)
                .max()
                .unwrap_or_default(),
            _ => Duration::ZERO,
        }
    }
}

impl Probe {
    /// A probe running `check` from the test process: ready once it returns `Ok`. See
    /// [`CustomProbe::new`].
    pub fn custom<F, Fut, E>(check: F) -> Probe
    where
        F: Fn(ProbeContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        Probe::Custom(CustomProbe::new(check))
    }

    /// Whether this probe (or one inside it) waits on the engine's health status.
    pub(crate) fn uses_health(&self) -> bool {
        match self {
            Probe::Health(_) => true,
            Probe::All(all) => all.probes.iter().any(Probe::uses_health),
            _ => false,
        }
    }
}

/// Ready when the engine reports the container `healthy`, by the image's own `HEALTHCHECK`
/// or by the one given with [`crate::StartOptions::health_check`].
///
/// `unhealthy` fails the wait at once, with the health check's last output and the
/// container's; a runnable whose image has no health check (and none given) is refused when it
/// starts, before a container is created, instead of waiting for a status that never comes.
#[derive(Debug, Clone, Default)]
pub struct HealthProbe {
    _private: (),
}

impl HealthProbe {
    /// Waits for the engine's `healthy`.
    pub fn new() -> Self {
        Self::default()
    }
}

/// A health check the engine runs inside the container, given with
/// [`crate::StartOptions::health_check`]: it replaces the image's `HEALTHCHECK` (or adds one to
/// an image without), so [`HealthProbe`] works with any image.
///
/// The engine runs `test` every `interval` (default 1 s); after `retries` failures in a row
/// (default 3) the container is `unhealthy`. Failures during `start_period` (default 0) do not
/// count. One run may take at most `timeout` (default 30 s).
#[derive(Debug, Clone, PartialEq)]
pub struct HealthCheck {
    pub(crate) test: Command,
    pub(crate) interval: Duration,
    pub(crate) timeout: Duration,
    pub(crate) retries: u32,
    pub(crate) start_period: Duration,
}

impl HealthCheck {
    /// Runs `test` in the container (exit 0: healthy). Use [`Command::sh`] for a shell line.
    pub fn new(test: impl Into<Command>) -> Self {
        Self {
            test: test.into(),
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(30),
            retries: 3,
            start_period: Duration::ZERO,
        }
    }

    /// Time between two runs (at least 1 ms).
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// Longest one run may take before it counts as failed (at least 1 ms).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Failures in a row that make the container `unhealthy` (at least 1).
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// Time after start during which failures do not count.
    pub fn start_period(mut self, period: Duration) -> Self {
        self.start_period = period;
        self
    }

    /// Why the engine could not run this check, if it could not.
    pub(crate) fn check_definition(&self) -> Result<(), String> {
        if self.test.program.is_empty() {
            return Err("the health check's command has an empty program; give the program to run (e.g. Command::sh(\"test -f /tmp/ready\"))".to_string());
        }
        for (what, value) in [("interval", self.interval), ("timeout", self.timeout)] {
            if value < Duration::from_millis(1) {
                return Err(format!(
                    "the health check's {what} is {value:?}; it must be at least 1ms"
                ));
            }
        }
        if self.retries == 0 {
            return Err(
                "the health check's retries is 0; at least 1 failure must make the container unhealthy"
                    .to_string(),
            );
        }
        Ok(())
    }
}

/// Default bound for one attempt of a [`CustomProbe`].
const DEFAULT_CUSTOM_ATTEMPT: Duration = Duration::from_secs(10);

/// What a [`CustomProbe`] gets to reach the runnable it checks.
#[derive(Debug, Clone)]
pub struct ProbeContext {
    pub(crate) runnable: String,
    pub(crate) container_name: String,
    /// Port name → (container port, where the test process reaches it).
    pub(crate) ports: BTreeMap<String, (u16, Option<SocketAddr>)>,
    pub(crate) container_ip: Option<IpAddr>,
}

impl ProbeContext {
    /// The runnable's name.
    pub fn runnable(&self) -> &str {
        &self.runnable
    }

    /// Where the test process reaches the named port, as `host:port`.
    pub fn endpoint(&self, port: &str) -> crate::Result<String> {
        self.socket_addr(port).map(|a| a.to_string())
    }

    /// Where the test process reaches the named port.
    pub fn socket_addr(&self, port: &str) -> crate::Result<SocketAddr> {
        let (_, published) = self.port(port)?;
        published.ok_or_else(|| {
            crate::Error::InvalidArgument(format!(
                "port {port:?} of runnable {:?} is not published to the test process",
                self.runnable
            ))
        })
    }

    /// `<container-name>:<port>`, as other runnables of the environment reach the named port.
    pub fn internal_endpoint(&self, port: &str) -> crate::Result<String> {
        let (container_port, _) = self.port(port)?;
        Ok(format!("{}:{container_port}", self.container_name))
    }

    /// The container's address on the environment network, when the test process can route
    /// to it (a local Linux engine).
    pub fn container_ip(&self) -> Option<IpAddr> {
        self.container_ip
    }

    fn port(&self, name: &str) -> crate::Result<(u16, Option<SocketAddr>)> {
        self.ports
            .get(name)
            .copied()
            .ok_or_else(|| crate::Error::UnknownPort {
                runnable: self.runnable.clone(),
                port: name.to_string(),
                known: self.ports.keys().cloned().collect(),
            })
    }
}

/// The boxed check of a [`CustomProbe`]: an attempt's outcome, with the error as text.
type CustomCheck =
    Arc<dyn Fn(ProbeContext) -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// Ready once an async check run from the test process returns `Ok` (a Redis `PING`, a SQL
/// `SELECT 1`, an HTTP round trip with a client library...).
///
/// The check gets a [`ProbeContext`] (the runnable's endpoints by port name, its internal
/// endpoint, its address) and is run again, with growing pauses, until it passes or the wait
/// policy's deadline; its last error is part of the timeout error. A container that exits
/// while the check runs fails the wait at once, with its exit code and output. One attempt
/// may take at most 10 s by default ([`CustomProbe::attempt_timeout`]).
#[derive(Clone)]
pub struct CustomProbe {
    pub(crate) check: CustomCheck,
    pub(crate) description: Option<String>,
    pub(crate) attempt_timeout: Duration,
}

impl fmt::Debug for CustomProbe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.description {
            Some(d) => write!(f, "custom probe {d:?}"),
            None => f.write_str("custom probe"),
        }
    }
}

impl CustomProbe {
    /// Probes with `check`. Its error may be any error type or a string; its cause chain is
    /// kept in the reported text. With `async move` blocks, name the error type in the last
    /// line (`Ok::<_, MyError>(())`) when nothing else fixes it.
    pub fn new<F, Fut, E>(check: F) -> Self
    where
        F: Fn(ProbeContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let check: CustomCheck = Arc::new(move |ctx| {
            let attempt = check(ctx);
            Box::pin(async move {
                attempt.await.map_err(|e| {
                    let e: Box<dyn std::error::Error + Send + Sync> = e.into();
                    let mut text = e.to_string();
                    let mut source = e.source();
                    while let Some(s) = source {
                        text.push_str(": ");
                        text.push_str(&s.to_string());
                        source = s.source();
                    }
                    text
                })
            })
        });
        Self {
            check,
            description: None,
            attempt_timeout: DEFAULT_CUSTOM_ATTEMPT,
        }
    }

    /// Names the check in errors and debug output (e.g. `"redis PING"`).
    pub fn describe(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// Bounds one attempt (default 10 s): a check that hangs counts as failed then and is
    /// tried again.
    pub fn attempt_timeout(mut self, timeout: Duration) -> Self {
        self.attempt_timeout = timeout;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn probes_that_can_never_pass_say_why() {
        #[allow(clippy::reversed_empty_ranges)]
        let empty = 204..=200;
        for (probe, why) in [
            (
                Probe::from(HttpProbe::new("http", "ready")),
                "must start with \"/\"",
            ),
            (HttpProbe::new("http", "").into(), "must start with"),
            (
                HttpProbe::new("http", "/").status(empty).into(),
                "204..=200 is empty",
            ),
            (CmdProbe::new(Command::new("")).into(), "empty program"),
            (
                AllProbe::new([TcpProbe::new("a").into(), HttpProbe::new("b", "x").into()]).into(),
                "\"x\" on port \"b\"",
            ),
        ] {
            let err = probe.check_definition().expect_err(why);
            assert!(err.contains(why), "{err}");
        }
        for fine in [
            Probe::from(HttpProbe::new("http", "/ready?x=1").status(200..=200)),
            TcpProbe::new("t").into(),
            LogProbe::contains("").into(),
            CmdProbe::new(Command::sh("true")).into(),
            AllProbe::new([]).into(),
        ] {
            assert_eq!(fine.check_definition(), Ok(()), "{fine:?}");
        }
    }

    #[test]
    fn health_checks_and_custom_probes_say_what_is_wrong() {
        let probe = Probe::custom(|_ctx| async { Ok::<_, String>(()) });
        assert_eq!(format!("{probe:?}"), "Custom(custom probe)");
        let named = CustomProbe::new(|_ctx| async { Err::<(), _>("no") }).describe("redis PING");
        assert_eq!(format!("{named:?}"), "custom probe \"redis PING\"");
        let zero = Probe::from(named.attempt_timeout(Duration::ZERO));
        let err = zero.check_definition().expect_err("zero attempt timeout");
        assert!(err.contains("redis PING") && err.contains("zero"), "{err}");

        assert!(Probe::from(AllProbe::new([HealthProbe::new().into()])).uses_health());
        assert!(!Probe::from(TcpProbe::new("x")).uses_health());

        let ok = HealthCheck::new(Command::sh("true"));
        assert_eq!(ok.check_definition(), Ok(()));
        for (bad, why) in [
            (HealthCheck::new(Command::new("")), "empty program"),
            (ok.clone().interval(Duration::ZERO), "interval is 0ns"),
            (
                ok.clone().timeout(Duration::from_micros(5)),
                "timeout is 5µs",
            ),
            (ok.clone().retries(0), "retries is 0"),
        ] {
            let err = bad.check_definition().expect_err(why);
            assert!(err.contains(why), "{err}");
        }
    }

    #[tokio::test]
    async fn custom_probe_context_and_error_chain() {
        let ctx = ProbeContext {
            runnable: "db".into(),
            container_name: "env-db".into(),
            ports: BTreeMap::from([
                (
                    "sql".to_string(),
                    (5432, Some(SocketAddr::from(([127, 0, 0, 1], 4000)))),
                ),
                ("hidden".to_string(), (9, None)),
            ]),
            container_ip: None,
        };
        assert_eq!(ctx.endpoint("sql").expect("sql"), "127.0.0.1:4000");
        assert_eq!(ctx.internal_endpoint("sql").expect("sql"), "env-db:5432");
        assert!(matches!(
            ctx.socket_addr("nope"),
            Err(crate::Error::UnknownPort { .. })
        ));
        assert!(ctx.socket_addr("hidden").is_err());
        let probe = CustomProbe::new(|ctx: ProbeContext| async move {
            let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
            Err::<(), _>(crate::Error::io(
                format!("connecting to {}", ctx.runnable()),
                io,
            ))
        });
        let err = (probe.check)(ctx).await.expect_err("fails");
        assert_eq!(err, "connecting to db: refused");
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
