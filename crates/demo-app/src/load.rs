//! The load generator: `GET http://<target><path>` to each target in turn, one request per
//! interval, over a minimal HTTP/1.1 client (`Connection: close`, one connection per request).
//!
//! A request is `ok` when a 2xx status line comes back within [`REQUEST_TIMEOUT`]; connection
//! failures (refused, unknown host), timeouts, malformed answers and other statuses are
//! `error`. Failures are counted and the target is tried again on its next turn: the generator
//! never stops on its own.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::MissedTickBehavior;

use crate::app::State;

/// Deadline of one request, from connecting (name resolution included) to the end of the answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// A progress line is printed after every this many finished requests.
pub const REPORT_EVERY: u64 = 100;

/// Requests in flight beyond which a turn is skipped (every target hanging, tiny interval).
const MAX_IN_FLIGHT: usize = 512;

/// Bytes of an answer read at most; the rest is left unread.
const MAX_ANSWER: usize = 1 << 20;

/// What to load.
#[derive(Debug, Clone)]
pub struct Config {
    /// `host:port` targets, at least one.
    pub targets: Vec<String>,
    /// Time between two requests (to successive targets).
    pub interval: Duration,
    /// Path and query of the requests.
    pub path: String,
}

/// Runs the generator until the task is dropped or aborted; counts into `state.metrics`.
pub async fn run(config: Config, state: Arc<State>) {
    if config.targets.is_empty() {
        return;
    }
    let progress = Arc::new(Progress::default());
    let path: Arc<str> = config.path.into();
    let mut ticker = tokio::time::interval(config.interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    for target in config.targets.iter().cycle() {
        ticker.tick().await;
        if progress.in_flight.load(Ordering::Relaxed) >= MAX_IN_FLIGHT {
            continue;
        }
        progress.in_flight.fetch_add(1, Ordering::Relaxed);
        let (state, progress, path, target) = (
            state.clone(),
            progress.clone(),
            path.clone(),
            target.clone(),
        );
        tokio::spawn(async move {
            let result = get(&target, &path, REQUEST_TIMEOUT).await;
            state.metrics.observe_load(&target, result.is_ok());
            progress.in_flight.fetch_sub(1, Ordering::Relaxed);
            if let Some(line) = progress.finish(&target, result) {
                log!("{line}");
            }
        });
    }
}

/// Counts of finished requests, for the progress lines.
#[derive(Debug, Default)]
struct Progress {
    in_flight: AtomicUsize,
    finished: AtomicU64,
    ok: AtomicU64,
    error: AtomicU64,
    /// The last error since the previous progress line.
    last_error: Mutex<Option<String>>,
}

impl Progress {
    /// Counts one finished request; every [`REPORT_EVERY`] requests, returns the line to print.
    fn finish(&self, target: &str, result: Result<u16, String>) -> Option<String> {
        let mut last_error = self.last_error.lock().unwrap_or_else(|e| e.into_inner());
        match result {
            Ok(_) => self.ok.fetch_add(1, Ordering::Relaxed),
            Err(e) => {
                *last_error = Some(format!("{target}: {e}"));
                self.error.fetch_add(1, Ordering::Relaxed)
            }
        };
        let n = self.finished.fetch_add(1, Ordering::Relaxed) + 1;
        if !n.is_multiple_of(REPORT_EVERY) {
            return None;
        }
        let mut line = format!(
            "load requests={n} ok={} error={}",
            self.ok.load(Ordering::Relaxed),
            self.error.load(Ordering::Relaxed)
        );
        if let Some(e) = last_error.take() {
            line.push_str(&format!(" last_error={e:?}"));
        }
        Some(line)
    }
}

/// Sends `GET path` to `target` and returns the status if it is 2xx; otherwise says why not.
pub async fn get(target: &str, path: &str, timeout: Duration) -> Result<u16, String> {
    let status = tokio::time::timeout(timeout, exchange(target, path))
        .await
        .map_err(|_| format!("no complete answer within {timeout:?}"))??;
    if (200..300).contains(&status) {
        Ok(status)
    } else {
        Err(format!("status {status}"))
    }
}

/// One request on a fresh connection; reads the answer to its end (the server closes the
/// connection, as asked) and returns its status.
async fn exchange(target: &str, path: &str) -> Result<u16, String> {
    let mut stream = TcpStream::connect(target)
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {target}\r\nUser-Agent: demo-app\r\nAccept: */*\r\n\
         Connection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("cannot send the request: {e}"))?;
    let mut answer = Vec::with_capacity(512);
    let mut chunk = [0u8; 4096];
    while answer.len() < MAX_ANSWER {
        match stream.read(&mut chunk).await {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&chunk[..n]),
            // A reset after a complete status line still tells the status.
            Err(_) if answer.contains(&b'\n') => break,
            Err(e) => return Err(format!("cannot read the answer: {e}")),
        }
    }
    parse_status(&answer)
}

/// The status code of an HTTP/1.x answer, from its status line.
fn parse_status(answer: &[u8]) -> Result<u16, String> {
    if answer.is_empty() {
        return Err("connection closed without an answer".to_owned());
    }
    let line_end = answer
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(answer.len());
    let line = String::from_utf8_lossy(&answer[..line_end]);
    let line = line.trim_end();
    let mut parts = line.splitn(3, ' ');
    match (parts.next(), parts.next()) {
        (Some(version), Some(code)) if version.starts_with("HTTP/1.") && code.len() == 3 => code
            .parse()
            .map_err(|_| format!("malformed status line {line:?}")),
        _ => Err(format!("malformed status line {line:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use std::time::Instant;
    use tokio::net::TcpListener;

    /// A loopback server answering every connection with `answer` after reading the request
    /// head (or never answering if `answer` is `None`); returns its address.
    async fn server(answer: Option<&'static str>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            loop {
                let Ok((mut conn, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.ends_with(b"\r\n\r\n") {
                        match conn.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    assert!(head.starts_with(b"GET /work?x=1 HTTP/1.1\r\n"), "{head:?}");
                    assert!(head.windows(17).any(|w| w == b"Connection: close"));
                    match answer {
                        Some(a) => {
                            let _ = conn.write_all(a.as_bytes()).await;
                        }
                        None => tokio::time::sleep(Duration::from_secs(60)).await,
                    }
                });
            }
        });
        addr
    }

    /// An address on which nothing listens.
    async fn closed_port() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap().to_string()
    }

    const OK: &str = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";

    #[tokio::test]
    async fn get_outcomes() {
        let t = Duration::from_secs(2);
        assert_eq!(get(&server(Some(OK)).await, "/work?x=1", t).await, Ok(200));
        let created = server(Some("HTTP/1.0 201 Created\r\n\r\n")).await;
        assert_eq!(get(&created, "/work?x=1", t).await, Ok(201));
        let unavailable = server(Some("HTTP/1.1 503 Service Unavailable\r\n\r\n")).await;
        assert_eq!(
            get(&unavailable, "/work?x=1", t).await,
            Err("status 503".into())
        );
        let garbage = server(Some("hello\r\n")).await;
        assert!(get(&garbage, "/work?x=1", t)
            .await
            .unwrap_err()
            .contains("malformed"));
        let empty = server(Some("")).await;
        assert_eq!(
            get(&empty, "/work?x=1", t).await,
            Err("connection closed without an answer".into())
        );
        let refused = get(&closed_port().await, "/work?x=1", t).await.unwrap_err();
        assert!(refused.starts_with("cannot connect"), "{refused}");

        let silent = server(None).await;
        let started = Instant::now();
        let e = get(&silent, "/work?x=1", Duration::from_millis(100))
            .await
            .unwrap_err();
        assert!(e.starts_with("no complete answer within"), "{e}");
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn status_lines() {
        assert_eq!(parse_status(b"HTTP/1.1 204 No Content\r\n\r\n"), Ok(204));
        assert_eq!(parse_status(b"HTTP/1.1 200"), Ok(200));
        assert!(parse_status(b"HTTP/2 200 OK\r\n").is_err());
        assert!(parse_status(b"HTTP/1.1 2000 OK\r\n").is_err());
        assert!(parse_status(b"HTTP/1.1 abc OK\r\n").is_err());
    }

    #[test]
    fn one_progress_line_per_hundred_requests() {
        let p = Progress::default();
        let mut lines = Vec::new();
        for i in 0..250 {
            let result = if i % 50 == 7 {
                Err("boom".to_owned())
            } else {
                Ok(200)
            };
            lines.extend(p.finish("t:1", result));
        }
        assert_eq!(
            lines,
            [
                "load requests=100 ok=98 error=2 last_error=\"t:1: boom\"",
                "load requests=200 ok=196 error=4 last_error=\"t:1: boom\"",
            ]
        );
        for _ in 0..50 {
            lines.extend(p.finish("t:1", Ok(200)));
        }
        assert_eq!(
            lines[2],
            "load requests=300 ok=295 error=5 last_error=\"t:1: boom\""
        );
        for _ in 0..100 {
            lines.extend(p.finish("t:1", Ok(200)));
        }
        assert_eq!(lines[3], "load requests=400 ok=395 error=5");
    }

    #[tokio::test]
    async fn round_robin_counts_ok_and_errors() {
        let good = server(Some(OK)).await;
        let bad = closed_port().await;
        let state = Arc::new(State {
            metrics: Metrics::new("t"),
            ready_at: std::time::Instant::now(),
        });
        let targets = vec![good.clone(), bad.clone()];
        state.metrics.register_load_targets(&targets);
        let task = tokio::spawn(run(
            Config {
                targets,
                interval: Duration::from_millis(5),
                path: "/work?x=1".to_owned(),
            },
            state.clone(),
        ));
        let line = |target: &str, result: &str| {
            format!("demo_load_requests_total{{target=\"{target}\",result=\"{result}\"}} ")
        };
        let count = |text: &str, prefix: &str| -> u64 {
            text.lines()
                .find_map(|l| l.strip_prefix(prefix))
                .map_or(0, |v| v.parse().unwrap())
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = state.metrics.render(true);
            let (good_ok, bad_err) = (
                count(&text, &line(&good, "ok")),
                count(&text, &line(&bad, "error")),
            );
            if good_ok >= 5 && bad_err >= 5 {
                assert_eq!(count(&text, &line(&good, "error")), 0, "{text}");
                assert_eq!(count(&text, &line(&bad, "ok")), 0, "{text}");
                // Round robin: the two targets get turns alternately.
                assert!(good_ok.abs_diff(bad_err) <= 2, "{text}");
                break;
            }
            assert!(Instant::now() < deadline, "load did not flow:\n{text}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        task.abort();
    }
}
