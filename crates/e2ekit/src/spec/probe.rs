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
//! # let _ = (both, from_logs, by_command, policy);
//! ```

use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

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
}

macro_rules! probe_from {
    ($($t:ident => $v:ident),*) => {$(
        impl From<$t> for Probe {
            fn from(p: $t) -> Self { Probe::$v(p) }
        }
    )*};
}
probe_from!(HttpProbe => Http, TcpProbe => Tcp, CmdProbe => Cmd, LogProbe => Log, AllProbe => All);

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
            Probe::Tcp(_) | Probe::Cmd(_) | Probe::Log(_) => Ok(()),
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
