//! The one error type of e2ekit.
//!
//! Every variant names what failed and for which runnable; where a container was involved it
//! carries the container's exit code and the tail of its output, so a failing test explains
//! itself without a second run.
//!
//! ```
//! use e2ekit::Error;
//!
//! fn explain(err: &Error) -> String {
//!     match err.runnable() {
//!         Some(name) => format!("runnable {name} failed: {err}"),
//!         None => format!("environment failed: {err}"),
//!     }
//! }
//! # let _ = explain;
//! ```

use std::fmt;
use std::time::Duration;

/// Result alias used across e2ekit.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The last lines a container printed, shown in errors.
///
/// Bounded, so a flood of output cannot make an error huge: e2ekit keeps at most 1 KiB of
/// each line (a longer one ends in `… (N bytes cut)`) and 8 KiB in all (older lines go
/// first; the first line then says how many).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogTail(pub Vec<String>);

impl LogTail {
    /// Most bytes of one line kept.
    pub(crate) const LINE_BYTES: usize = 1024;
    /// Most bytes of all lines kept.
    pub(crate) const TOTAL_BYTES: usize = 8 * 1024;

    /// The newest of `lines` within both bounds. Each line comes with how many of its bytes
    /// were already left out (by a reader that kept only its start); a line longer than
    /// [`Self::LINE_BYTES`] is cut here too.
    pub(crate) fn bounded(lines: impl IntoIterator<Item = (String, usize)>) -> Self {
        let lines: Vec<String> = lines
            .into_iter()
            .map(|(mut text, mut cut)| {
                if text.len() > Self::LINE_BYTES {
                    let mut keep = Self::LINE_BYTES;
                    while !text.is_char_boundary(keep) {
                        keep -= 1;
                    }
                    cut += text.len() - keep;
                    text.truncate(keep);
                }
                if cut > 0 {
                    text.push_str(&format!("… ({cut} bytes cut)"));
                }
                text
            })
            .collect();
        let mut total = 0;
        let kept = lines
            .iter()
            .rev()
            .take_while(|line| {
                total += line.len();
                total <= Self::TOTAL_BYTES
            })
            .count();
        let dropped = lines.len() - kept;
        let mut tail = Vec::with_capacity(kept + 1);
        if dropped > 0 {
            tail.push(format!("… ({dropped} earlier line(s) cut)"));
        }
        tail.extend(lines.into_iter().skip(dropped));
        Self(tail)
    }
}

impl fmt::Display for LogTail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return write!(f, "\n  (the container printed nothing)");
        }
        write!(f, "\n  last {} line(s) of its output:", self.0.len())?;
        for line in &self.0 {
            write!(f, "\n  | {line}")?;
        }
        Ok(())
    }
}

/// Everything that can go wrong in e2ekit.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The container engine could not be reached or did not answer in time.
    #[error("cannot reach the container engine at {endpoint}: {reason}. Is the engine running, and is DOCKER_HOST (or the builder's engine) right?")]
    EngineUnreachable {
        /// Where we tried to connect (DOCKER_HOST or the default socket).
        endpoint: String,
        /// What happened.
        reason: String,
    },

    /// An engine call failed. The engine's own error is the [`std::error::Error::source`].
    #[error("engine call failed while {action}")]
    Engine {
        /// What e2ekit was doing, with the runnable or environment it was for.
        action: String,
        /// The engine client's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// An engine call did not answer within its deadline.
    #[error("engine call timed out after {after:?} while {action}")]
    EngineTimeout {
        /// What e2ekit was doing.
        action: String,
        /// How long it waited.
        after: Duration,
    },

    /// A name given by the user is not usable.
    #[error("invalid {what} name {name:?}: {reason}")]
    InvalidName {
        /// "environment" or "runnable".
        what: &'static str,
        /// The rejected name.
        name: String,
        /// Why it was rejected and what is allowed.
        reason: String,
    },

    /// A runnable name was registered twice in one environment.
    #[error("runnable {name:?} is already registered in environment {env:?}; runnable names must be unique per environment")]
    DuplicateRunnable {
        /// Environment name.
        env: String,
        /// Runnable name.
        name: String,
    },

    /// The environment was closed; it accepts no new runnables and starts nothing.
    #[error("environment {env:?} is closed")]
    EnvironmentClosed {
        /// Environment name.
        env: String,
    },

    /// Another live process owns an environment of the same name.
    #[error("environment {env:?} is in use by another live process ({owner}); give one of them another name with Environment::builder().name(..)")]
    EnvironmentInUse {
        /// Environment name.
        env: String,
        /// Owner label of the other process (host:pid:start).
        owner: String,
    },

    /// A port name was not declared with `with_ports`.
    #[error("runnable {runnable:?} has no port named {port:?} (declared: {known:?})")]
    UnknownPort {
        /// Runnable name.
        runnable: String,
        /// The requested port name.
        port: String,
        /// Port names that exist.
        known: Vec<String>,
    },

    /// An operation needs a running container.
    #[error("cannot {action} runnable {runnable:?}: it is not running")]
    NotRunning {
        /// Runnable name.
        runnable: String,
        /// What was attempted.
        action: String,
    },

    /// The image is not present and could not be pulled.
    #[error("image {image:?} for runnable {runnable:?} is not present locally and could not be pulled: {reason}")]
    ImageNotFound {
        /// Runnable name (or the image builder's name).
        runnable: String,
        /// The image reference.
        image: String,
        /// The engine's answer.
        reason: String,
    },

    /// The engine failed (went away, or stopped answering) while e2ekit waited on a
    /// runnable's container; what became of the container is unknown. The engine's error is
    /// the [`std::error::Error::source`].
    #[error("the engine failed while {during} of runnable {runnable:?}; the container may still run{logs}")]
    EngineLost {
        /// Runnable name.
        runnable: String,
        /// What e2ekit was doing ("waiting for readiness").
        during: String,
        /// The last lines the container printed before the engine failed.
        logs: LogTail,
        /// The engine client's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// The container exited while e2ekit waited for it to start or become ready.
    #[error("runnable {runnable:?} exited with code {exit_code}{} while {during}{logs}", oom_note(*.exit_code, *.oom_killed, *.memory_limit))]
    ContainerExited {
        /// Runnable name.
        runnable: String,
        /// The container's exit code (137 means killed; `oom_killed` says whether for its
        /// memory).
        exit_code: i64,
        /// What e2ekit was doing ("starting", "waiting for readiness").
        during: String,
        /// The last lines the container printed.
        logs: LogTail,
        /// The kernel killed it (or, with a code other than 137, a process in it) for
        /// running out of memory; the engine says so.
        oom_killed: bool,
        /// The container's memory limit in bytes, if it had one.
        memory_limit: Option<i64>,
    },

    /// The readiness probe did not pass before the wait policy gave up.
    #[error("runnable {runnable:?} was not ready after {after:?} ({attempts} probe attempts); last probe result: {last_error}{logs}")]
    NotReady {
        /// Runnable name.
        runnable: String,
        /// How long e2ekit waited.
        after: Duration,
        /// How many times the probe ran.
        attempts: u32,
        /// Why the last probe failed.
        last_error: String,
        /// The last lines the container printed.
        logs: LogTail,
    },

    /// A command run inside a container exited with a non-zero code.
    #[error("command {command:?} in runnable {runnable:?} exited with code {exit_code}\n  stdout: {stdout:?}\n  stderr: {stderr:?}")]
    Exec {
        /// Runnable name.
        runnable: String,
        /// The command line.
        command: String,
        /// Exit code of the command.
        exit_code: i64,
        /// Everything it wrote to stdout.
        stdout: String,
        /// Everything it wrote to stderr.
        stderr: String,
    },

    /// Building an image from host files failed.
    #[error("cannot build image {image:?}: {reason}")]
    ImageBuild {
        /// The image reference being built.
        image: String,
        /// What went wrong.
        reason: String,
    },

    /// A host I/O operation failed. The I/O error is the `source()`.
    #[error("{context}")]
    Io {
        /// What e2ekit was doing.
        context: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// A value given by the user is not valid.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// A program on the test host that e2ekit relies on is missing or failed (`cargo build`
    /// for [`crate::cargo_bin`], `rm` for cleaning up root-owned files, ...).
    #[error("host tool {tool:?} {reason}")]
    HostTool {
        /// The program.
        tool: String,
        /// What went wrong ("is not installed", "failed with exit status 1", ...).
        reason: String,
    },

    /// A service answered something e2ekit cannot use (an unexpected API result, a client
    /// that could not be built). The message says what and from whom.
    #[error("{0}")]
    Unexpected(String),

    /// The metrics endpoint of a runnable could not be read or parsed. The cause (the HTTP
    /// client's error, the parse error naming the line) is the `source()`.
    #[error("cannot read the metrics of runnable {runnable:?} from {url}: {reason}")]
    MetricsFetch {
        /// Runnable name.
        runnable: String,
        /// The metrics URL.
        url: String,
        /// What went wrong, in short ("the request failed", "invalid exposition").
        reason: String,
        /// The underlying error, if any.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },

    /// A label matcher is not valid (a regex that does not compile, ...).
    #[error("invalid label matcher")]
    InvalidMatcher {
        /// What is wrong with it.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// A requested metric is not exposed (and the options neither wait for it nor skip it).
    #[error("metric {metric:?}{matchers} is not exposed by runnable {runnable:?}; to wait until it appears use MetricsOptions::new().wait_missing_metrics(), to count it as 0 use .skip_missing_metrics()")]
    MetricMissing {
        /// Runnable name.
        runnable: String,
        /// The metric name.
        metric: String,
        /// The label matchers in PromQL form (`{code=~"2.."}`), empty without matchers.
        matchers: String,
    },

    /// A metric expectation did not hold before the wait policy gave up.
    #[error("{0}")]
    MetricsWait(Box<MetricsWaitFailure>),

    /// A PromQL query could not be answered: the Prometheus HTTP API (Prometheus, a Thanos
    /// querier, ...) was unreachable, refused the query, answered with warnings (a partial
    /// answer), or answered something unreadable. The HTTP or JSON error behind it, if any, is
    /// the [`std::error::Error::source`].
    #[error("PromQL query {query:?} at {url}{} failed: {reason}", .runnable.as_ref().map(|r| format!(" (runnable {r:?})")).unwrap_or_default())]
    Query {
        /// The runnable asked, when the client was made for one.
        runnable: Option<String>,
        /// The API URL asked (`http://127.0.0.1:1234/api/v1/query`).
        url: String,
        /// The PromQL expression.
        query: String,
        /// What went wrong (the API's own error text when it answered one).
        reason: String,
        /// The underlying error, if any.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },

    /// A running service rejected a new configuration (it keeps the previous one).
    #[error("runnable {runnable:?} did not apply its new configuration {file}: {reason}{logs}")]
    ConfigRejected {
        /// Runnable name.
        runnable: String,
        /// The configuration file.
        file: String,
        /// What the service reported.
        reason: String,
        /// The service's last output lines (they name the offending line).
        logs: LogTail,
    },

    /// A fixed host port a runnable asked for ([`crate::StartOptions::host_port`]) is taken.
    #[error("runnable {runnable:?}: host port {host_port} for port {port:?} is already in use ({reason}); pick another or let the engine choose one")]
    PortTaken {
        /// Runnable name.
        runnable: String,
        /// The declared port's name.
        port: String,
        /// The host port asked for.
        host_port: u16,
        /// The engine's words.
        reason: String,
    },

    /// Copying files into or out of a runnable's container failed.
    #[error("runnable {runnable:?}: copying {what} failed: {reason}")]
    Copy {
        /// Runnable name.
        runnable: String,
        /// What was copied, and where (`/host/file into /etc/app.yml`).
        what: String,
        /// Why.
        reason: String,
        /// The underlying error, if any.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },

    // Readiness by health check and images built from a Dockerfile (issue 13).
    /// A readiness probe found that the runnable will not become ready (its health check
    /// reports `unhealthy`), so the wait ended before its deadline.
    #[error("runnable {runnable:?} will not become ready: {reason}{logs}")]
    ProbeFailed {
        /// Runnable name.
        runnable: String,
        /// What the probe found (for a health check: its last exit code and output).
        reason: String,
        /// The container's last output lines.
        logs: LogTail,
    },

    /// Building an image from a Dockerfile failed: a step failed, or the Dockerfile is wrong.
    #[error("{0}")]
    DockerfileBuild(Box<DockerfileBuildFailure>),
}

/// Details of [`Error::DockerfileBuild`]: which build failed, at which step, with what output.
#[derive(Debug, Clone)]
pub struct DockerfileBuildFailure {
    /// The image being built.
    pub image: String,
    /// The context directory.
    pub context: String,
    /// The Dockerfile, as a path inside the context.
    pub dockerfile: String,
    /// The step that failed (e.g. `Step 2/3 : RUN make`), when the engine said.
    pub step: Option<String>,
    /// The engine's message.
    pub reason: String,
    /// The last lines of the build's output.
    pub output: LogTail,
}

impl fmt::Display for DockerfileBuildFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot build image {:?} from {} in {}: {}",
            self.image, self.dockerfile, self.context, self.reason
        )?;
        if let Some(step) = &self.step {
            write!(f, "\n  failing step: {step}")?;
        }
        write!(f, "{}", self.output)
    }
}

/// `, killed: out of memory (memory limit N bytes),` when the kernel killed the container
/// (137: its main process) or a process in it for the container's memory.
fn oom_note(exit_code: i64, oom_killed: bool, memory_limit: Option<i64>) -> String {
    if !oom_killed {
        return String::new();
    }
    let limit = match memory_limit {
        Some(limit) => format!("memory limit {limit} bytes"),
        None => "no memory limit: the host ran out".to_string(),
    };
    let who = if exit_code == 137 {
        ""
    } else {
        " a process in it was"
    };
    format!(",{who} killed: out of memory ({limit}),")
}

impl Error {
    /// The error and every cause below it on one line (`what failed: why: root cause`).
    ///
    /// `Display` shows only this error's own message and `source()` gives the causes, so
    /// error reporters (`anyhow`, `eyre`) print each once; this is the same text for code
    /// that prints errors itself.
    ///
    /// ```
    /// let err = e2ekit::Error::InvalidArgument("bad".into());
    /// assert_eq!(err.report(), "invalid argument: bad");
    /// ```
    pub fn report(&self) -> String {
        let mut text = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        text
    }

    /// The runnable the error is about, if any.
    pub fn runnable(&self) -> Option<&str> {
        match self {
            Error::UnknownPort { runnable, .. }
            | Error::NotRunning { runnable, .. }
            | Error::ImageNotFound { runnable, .. }
            | Error::ContainerExited { runnable, .. }
            | Error::EngineLost { runnable, .. }
            | Error::NotReady { runnable, .. }
            | Error::Exec { runnable, .. }
            | Error::MetricsFetch { runnable, .. }
            | Error::MetricMissing { runnable, .. }
            | Error::ConfigRejected { runnable, .. }
            | Error::PortTaken { runnable, .. }
            | Error::Copy { runnable, .. }
            | Error::ProbeFailed { runnable, .. } => Some(runnable),
            Error::MetricsWait(failure) => Some(&failure.runnable),
            Error::Query {
                runnable: Some(runnable),
                ..
            } => Some(runnable),
            Error::DuplicateRunnable { name, .. } => Some(name),
            _ => None,
        }
    }

    /// The container exit code carried by the error, if a container exited.
    pub fn exit_code(&self) -> Option<i64> {
        match self {
            Error::ContainerExited { exit_code, .. } | Error::Exec { exit_code, .. } => {
                Some(*exit_code)
            }
            _ => None,
        }
    }

    /// The container output carried by the error, if any.
    pub fn log_tail(&self) -> Option<&[String]> {
        match self {
            Error::ContainerExited { logs, .. }
            | Error::EngineLost { logs, .. }
            | Error::NotReady { logs, .. }
            | Error::ConfigRejected { logs, .. } => Some(&logs.0),
            Error::ProbeFailed { logs, .. } => Some(&logs.0),
            Error::DockerfileBuild(failure) => Some(&failure.output.0),
            _ => None,
        }
    }

    pub(crate) fn engine(
        action: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Error::Engine {
            action: action.into(),
            source: source.into(),
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

/// Details of [`Error::MetricsWait`]: what was awaited and what was seen instead.
#[derive(Debug, Clone)]
pub struct MetricsWaitFailure {
    /// Runnable name(s), e.g. `runnable "app"`.
    pub runnable: String,
    /// The metrics waited on.
    pub metrics: Vec<String>,
    /// The label matchers in PromQL form, empty without matchers.
    pub matchers: String,
    /// The expectation, rendered (`>= 5`).
    pub expected: String,
    /// The sums seen at the last check, if any.
    pub last_values: Option<Vec<f64>>,
    /// The last error seen while checking, if any.
    pub last_error: Option<String>,
    /// How long it waited.
    pub after: Duration,
    /// How many times it checked.
    pub checks: u32,
}

impl fmt::Display for MetricsWaitFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "metrics {:?}{} of {} did not become {} within {:?} ({} checks); last sums seen: ",
            self.metrics, self.matchers, self.runnable, self.expected, self.after, self.checks
        )?;
        match &self.last_values {
            Some(v) => write!(f, "{v:?}")?,
            None => write!(f, "none")?,
        }
        write!(
            f,
            "; last error: {}",
            self.last_error.as_deref().unwrap_or("none")
        )
    }
}
