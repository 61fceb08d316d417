//! `demo-app`: a small instrumented HTTP service for e2ekit's tests, examples and benchmarks.
//!
//! ```text
//! demo-app [--listen :8080] [--name NAME] [--ready-after-ms N] [--listen-delay-ms N]
//!          [--exit-code N [--exit-after-ms M]] [--print-lines N]
//!          [--load-targets HOST:PORT,... [--load-interval-ms N] [--load-path PATH]]
//! ```
//!
//! Flags take their value as `--flag value` or `--flag=value`; an unknown flag or a bad value
//! prints an error and the usage to stderr and exits with code 2.
//!
//! - `--listen <addr>`: address to serve on, default `:8080`; `:PORT` means `0.0.0.0:PORT`.
//! - `--name <s>`: instance name, default `$HOSTNAME` or `demo-app`; printed at start and
//!   exposed as `demo_app_info{instance_name="<s>"} 1`.
//! - `--ready-after-ms <n>`: the socket is served at once, but `/ready` answers 503
//!   `not ready` until `n` ms after process start (and never before the socket is bound), then
//!   200 `ready`. When that instant comes, exactly one stdout line
//!   `ready at_unix_ns=<ns since the UNIX epoch>` is printed, `<ns>` being that instant (not
//!   the time of printing), so benchmarks can measure their readiness-detection lag.
//! - `--listen-delay-ms <n>`: do not bind the socket until `n` ms after start (TCP probe tests).
//! - `--exit-code <n>` (0–255) with `--exit-after-ms <m>` (default 0): after `m` ms, print
//!   `exiting with code <n>` to stderr and exit with code `n`.
//! - `--print-lines <n>`: print `line 1` … `line n` to stdout at start.
//! - `--load-targets <host:port,...>`: besides serving, generate load once the socket is
//!   bound: every `--load-interval-ms` (default 100, at least 1) send
//!   `GET http://<target><--load-path>` (default `/work`) to the next target of the
//!   comma-separated list in turn, over HTTP/1.1 with `Connection: close` and a 2 s deadline
//!   per request. A 2xx answer counts as `ok`; anything else (refused, unknown host, timeout,
//!   other status) as `error`, and that target is tried again on its next turn. Counted in
//!   `demo_load_requests_total{target,result}`. Without targets the other two flags do nothing.
//!
//! Endpoints: `/` (index), `/ready`, `/metrics` (Prometheus text 0.0.4: `demo_requests_total`,
//! `demo_app_ready`, `demo_app_info`, `demo_value`, `demo_request_duration_seconds`,
//! `demo_metrics_scrapes_total` (requests to `/metrics`, the current one included), and with
//! `--load-targets` `demo_load_requests_total{target="host:port",result="ok|error"}`, each at 0
//! from the start), `/work` (`?sleep_ms=N`, `?code=NNN`), `/set?value=<f64>`, `/exit?code=N`;
//! anything else is 404.
//!
//! Stdout gets plain lines: `starting demo-app name=<name> pid=<pid>`, `listening on <addr>`
//! (the bound address, useful with port 0), `ready at_unix_ns=<ns>`, with `--load-targets`
//! `load targets=<list> interval_ms=<n> path=<path>` at start and
//! `load requests=<n> ok=<n> error=<n>[ last_error="<target>: <reason>"]` after every 100
//! finished requests (`last_error` only if one occurred since the previous line), and
//! `shutting down`. SIGTERM
//! and SIGINT stop accepting connections, give in-flight requests up to 500 ms, and exit 0.

/// Prints one line to stdout, ignoring errors (a closed stdout must not kill the service).
macro_rules! log {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

mod app;
mod args;
mod load;
mod metrics;

use std::future::Future;
use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};
use tokio::time::{sleep_until, Instant};

use crate::app::State;
use crate::args::{Args, Parsed};
use crate::metrics::Metrics;

/// How long in-flight connections get after SIGTERM/SIGINT.
const DRAIN_TIMEOUT: Duration = Duration::from_millis(500);

/// Process start, on both clocks, so monotonic instants can be reported as wall-clock time.
#[derive(Clone, Copy)]
struct Start {
    instant: Instant,
    unix_ns: u128,
}

impl Start {
    fn now() -> Self {
        let instant = Instant::now();
        let unix_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        Start { instant, unix_ns }
    }

    fn after_ms(&self, ms: u64) -> Instant {
        self.instant + Duration::from_millis(ms)
    }

    fn unix_ns_of(&self, t: Instant) -> u128 {
        self.unix_ns + t.saturating_duration_since(self.instant).as_nanos()
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let start = Start::now();
    let argv = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned());
    let args = match args::parse(argv, std::env::var("HOSTNAME").ok()) {
        Ok(Parsed::Run(args)) => args,
        Ok(Parsed::Help) => {
            print!("{}", args::USAGE);
            return;
        }
        Err(e) => {
            eprintln!("demo-app: {e}\n\n{}", args::USAGE);
            std::process::exit(2);
        }
    };

    // Register signal handlers first, so a signal during the listen delay is honoured.
    let shutdown = match shutdown_signal() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("demo-app: cannot install signal handlers: {e}");
            std::process::exit(1);
        }
    };

    log!(
        "starting demo-app name={} pid={}",
        args.name,
        std::process::id()
    );
    for i in 1..=args.print_lines {
        log!("line {i}");
    }

    if let Some(code) = args.exit_code {
        let at = start.after_ms(args.exit_after_ms);
        tokio::spawn(async move {
            sleep_until(at).await;
            exit_with(code);
        });
    }

    if let Err(e) = serve(&args, start, shutdown).await {
        eprintln!("demo-app: {e}");
        std::process::exit(1);
    }
}

/// Prints `exiting with code <code>` to stderr and exits the process.
pub(crate) fn exit_with(code: i32) -> ! {
    let _ = std::io::stdout().flush();
    eprintln!("exiting with code {code}");
    std::process::exit(code);
}

/// Resolves on the first SIGTERM or SIGINT.
fn shutdown_signal() -> std::io::Result<impl Future<Output = ()>> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}

async fn serve(
    args: &Args,
    start: Start,
    shutdown: impl Future<Output = ()>,
) -> Result<(), String> {
    tokio::pin!(shutdown);

    tokio::select! {
        _ = sleep_until(start.after_ms(args.listen_delay_ms)) => {}
        _ = &mut shutdown => {
            log!("shutting down");
            return Ok(());
        }
    }

    let listener = TcpListener::bind(&args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("cannot read the listening address: {e}"))?;

    // /ready cannot answer before the socket is bound, so readiness starts no earlier.
    let ready_at = start.after_ms(args.ready_after_ms).max(Instant::now());
    let metrics = Metrics::new(args.name.clone());
    metrics.register_load_targets(&args.load_targets);
    let state = Arc::new(State {
        metrics,
        ready_at: ready_at.into_std(),
    });
    log!("listening on {addr}");
    tokio::spawn(async move {
        sleep_until(ready_at).await;
        log!("ready at_unix_ns={}", start.unix_ns_of(ready_at));
    });
    let load = (!args.load_targets.is_empty()).then(|| {
        log!(
            "load targets={} interval_ms={} path={}",
            args.load_targets.join(","),
            args.load_interval_ms,
            args.load_path
        );
        let config = load::Config {
            targets: args.load_targets.clone(),
            interval: Duration::from_millis(args.load_interval_ms),
            path: args.load_path.clone(),
        };
        tokio::spawn(load::run(config, state.clone()))
    });

    let graceful = GracefulShutdown::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    let state = state.clone();
                    let service = service_fn(move |req| app::handle(state.clone(), req));
                    let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
                    let conn = graceful.watch(conn);
                    tokio::spawn(async move {
                        let _ = conn.await;
                    });
                }
                Err(e) => {
                    // E.g. out of file descriptors: report and back off instead of spinning.
                    eprintln!("demo-app: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            _ = &mut shutdown => break,
        }
    }

    log!("shutting down");
    if let Some(load) = load {
        load.abort();
    }
    drop(listener);
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await;
    Ok(())
}
