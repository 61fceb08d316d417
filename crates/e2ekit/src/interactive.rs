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

use tokio::net::TcpListener;

use crate::error::{Error, Result};
use crate::host::http::{read_request_path, respond};

pub use crate::host::browser::open_in_browser;

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
                // A connection that sends no request (a port scan, a browser's pre-connect)
                // does not finish the scenario.
                if let Ok(Some(_)) = read_request_path(&mut sock).await {
                    let body = "e2ekit: finishing the scenario and cleaning up.\n";
                    let _ = respond(&mut sock, "200 OK", "text/plain", body).await;
                    return;
                }
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
