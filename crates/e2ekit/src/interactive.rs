//! Helpers for standalone, interactive setups: keep the scenario up until the person at the
//! keyboard is done.
//!
//! ```no_run
//! use e2ekit::prelude::*;
//!
//! # async fn demo() -> e2ekit::Result<()> {
//! let env = Environment::new().await?;
//! // ... start services, print their URLs ...
//! interactive::run_until_endpoint_hit().await?; // prints a URL; returns when it is opened
//! env.close().await;
//! # Ok(()) }
//! ```

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::error::{Error, Result};

/// How an interactive wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finished {
    /// The printed URL was requested.
    EndpointHit,
    /// SIGINT (Ctrl-C), SIGTERM or SIGHUP arrived.
    Signal,
    /// The optional time limit passed.
    TimeLimit,
}

/// Prints a local URL and waits until it is requested, or a termination signal arrives.
pub async fn run_until_endpoint_hit() -> Result<Finished> {
    run_until_endpoint_hit_on(0, None).await
}

/// [`run_until_endpoint_hit`] on a fixed port (0 picks a free one), with an optional limit
/// after which it returns on its own (for unattended runs of interactive examples).
pub async fn run_until_endpoint_hit_on(port: u16, limit: Option<Duration>) -> Result<Finished> {
    let endpoint = FinishEndpoint::bind(port).await?;
    println!(
        "Open {} (or press Ctrl-C) to finish and clean up.",
        endpoint.url()
    );
    endpoint.wait(limit).await
}

/// A local URL whose first request ends an interactive wait.
#[derive(Debug)]
pub struct FinishEndpoint {
    listener: TcpListener,
    addr: std::net::SocketAddr,
}

impl FinishEndpoint {
    /// Listens on 127.0.0.1:`port` (0 picks a free port).
    pub async fn bind(port: u16) -> Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .map_err(|e| Error::io(format!("listening on 127.0.0.1:{port}"), e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::io("reading the listening address", e))?;
        Ok(Self { listener, addr })
    }

    /// The URL to open.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Waits for a request to the URL, a termination signal, or the optional limit.
    pub async fn wait(self, limit: Option<Duration>) -> Result<Finished> {
        let hit = async {
            loop {
                let Ok((mut sock, _)) = self.listener.accept().await else {
                    continue;
                };
                let mut buf = [0u8; 1024];
                let _ = tokio::time::timeout(Duration::from_millis(500), sock.read(&mut buf)).await;
                let body = "e2ekit: finishing the scenario and cleaning up.\n";
                let reply = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(reply.as_bytes()).await;
                return;
            }
        };
        tokio::select! {
            _ = hit => Ok(Finished::EndpointHit),
            r = termination_signal() => r.map(|_| Finished::Signal),
            _ = sleep_or_forever(limit) => Ok(Finished::TimeLimit),
        }
    }
}

/// Waits for SIGINT (Ctrl-C), SIGTERM or SIGHUP.
pub async fn run_until_signal() -> Result<Finished> {
    println!("Press Ctrl-C to finish and clean up.");
    termination_signal().await.map(|_| Finished::Signal)
}

async fn sleep_or_forever(limit: Option<Duration>) {
    match limit {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

async fn termination_signal() -> Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut streams = Vec::new();
        for kind in [
            SignalKind::interrupt(),
            SignalKind::terminate(),
            SignalKind::hangup(),
        ] {
            streams.push(signal(kind).map_err(|e| Error::io("installing a signal handler", e))?);
        }
        let waits = streams.iter_mut().map(|s| Box::pin(s.recv()));
        futures_util::future::select_all(waits).await;
        Ok(())
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c()
            .await
            .map_err(|e| Error::io("waiting for Ctrl-C", e))
    }
}

/// Opens `url` in the default browser (`$BROWSER` if set, else `xdg-open` on Linux, `open` on
/// macOS, `rundll32` on Windows). Errors clearly when no opener exists, e.g. on a headless machine.
pub fn open_in_browser(url: &str) -> Result<()> {
    // $BROWSER is the conventional override (and lets tests avoid opening a real browser).
    let custom = std::env::var("BROWSER").ok().filter(|b| !b.is_empty());
    let (program, args): (&str, Vec<&str>) = if let Some(browser) = custom.as_deref() {
        (browser, vec![url])
    } else if cfg!(target_os = "macos") {
        ("open", vec![url])
    } else if cfg!(target_os = "windows") {
        ("rundll32", vec!["url.dll,FileProtocolHandler", url])
    } else {
        ("xdg-open", vec![url])
    };
    let status = std::process::Command::new(program)
        .args(&args)
        .status()
        .map_err(|e| {
            Error::io(
                format!("opening {url} with {program} (no browser opener on this machine? open the URL by hand)"),
                e,
            )
        })?;
    if !status.success() {
        return Err(Error::InvalidArgument(format!(
            "{program} {url} failed ({status}); open the URL by hand"
        )));
    }
    Ok(())
}
