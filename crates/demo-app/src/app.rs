//! HTTP routing and handlers.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};

use crate::metrics::{self, Metrics};

/// Shared state of the server.
#[derive(Debug)]
pub struct State {
    pub metrics: Metrics,
    /// From this instant on, `/ready` answers 200.
    pub ready_at: Instant,
}

impl State {
    pub fn is_ready(&self) -> bool {
        Instant::now() >= self.ready_at
    }
}

const INDEX: &str = "\
demo-app endpoints:
  /ready              200 \"ready\" once ready, 503 \"not ready\" before
  /metrics            Prometheus metrics (text format 0.0.4); counted in demo_metrics_scrapes_total
  /work               counted and timed; ?sleep_ms=N sleeps first, ?code=NNN sets the status
  /set?value=<f64>    sets the demo_value gauge
  /exit?code=N        answers, then exits the process with code N
";

type Resp = Response<Full<Bytes>>;

/// Handles one request. The body is ignored, hence generic.
pub async fn handle<B>(state: std::sync::Arc<State>, req: Request<B>) -> Result<Resp, Infallible> {
    let query = req.uri().query();
    let resp = match req.uri().path() {
        "/" => text(StatusCode::OK, INDEX),
        "/ready" if state.is_ready() => text(StatusCode::OK, "ready"),
        "/ready" => text(StatusCode::SERVICE_UNAVAILABLE, "not ready"),
        "/metrics" => {
            state.metrics.observe_scrape();
            let mut r = text(StatusCode::OK, state.metrics.render(state.is_ready()));
            r.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static(metrics::CONTENT_TYPE),
            );
            r
        }
        "/work" => work(&state, query).await,
        "/set" => match param(query, "value").map(str::parse::<f64>) {
            Some(Ok(v)) => {
                state.metrics.set_value(v);
                text(StatusCode::OK, "ok")
            }
            Some(Err(_)) => bad_request("invalid value: want an f64"),
            None => bad_request("missing value: use /set?value=<f64>"),
        },
        "/exit" => match param(query, "code").map_or(Ok(0), str::parse::<u8>) {
            Ok(code) => {
                tokio::spawn(async move {
                    // Let the response go out first.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    crate::exit_with(i32::from(code));
                });
                text(StatusCode::OK, format!("exiting with code {code}\n"))
            }
            Err(_) => bad_request("invalid code: want 0-255"),
        },
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    };
    Ok(resp)
}

async fn work(state: &State, query: Option<&str>) -> Resp {
    let started = Instant::now();
    let resp = match (parse_sleep(query), parse_code(query)) {
        (Ok(sleep), Ok(code)) => {
            if !sleep.is_zero() {
                tokio::time::sleep(sleep).await;
            }
            text(code, "ok")
        }
        (Err(msg), _) | (_, Err(msg)) => bad_request(msg),
    };
    state
        .metrics
        .observe_request("/work", resp.status().as_u16(), started.elapsed());
    resp
}

fn parse_sleep(query: Option<&str>) -> Result<Duration, &'static str> {
    match param(query, "sleep_ms") {
        None => Ok(Duration::ZERO),
        Some(v) => v
            .parse()
            .map(Duration::from_millis)
            .map_err(|_| "invalid sleep_ms: want a non-negative integer"),
    }
}

fn parse_code(query: Option<&str>) -> Result<StatusCode, &'static str> {
    const ERR: &str = "invalid code: want 200-599";
    match param(query, "code") {
        None => Ok(StatusCode::OK),
        Some(v) => match v.parse::<u16>() {
            Ok(n @ 200..=599) => StatusCode::from_u16(n).map_err(|_| ERR),
            _ => Err(ERR),
        },
    }
}

/// First value of `key` in a query string (no percent-decoding: values here are numbers).
fn param<'a>(query: Option<&'a str>, key: &str) -> Option<&'a str> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == key).then_some(v)
    })
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Resp {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn bad_request(msg: &'static str) -> Resp {
    text(StatusCode::BAD_REQUEST, format!("{msg}\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use std::sync::Arc;

    fn state(ready_in: Duration) -> Arc<State> {
        Arc::new(State {
            metrics: Metrics::new("t"),
            ready_at: Instant::now() + ready_in,
        })
    }

    async fn get(state: &Arc<State>, uri: &str) -> (u16, String) {
        let req = Request::get(uri).body(()).unwrap();
        let resp = handle(state.clone(), req).await.unwrap();
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[test]
    fn query_params() {
        assert_eq!(param(Some("a=1&b=2"), "b"), Some("2"));
        assert_eq!(param(Some("a=1&a=2"), "a"), Some("1"));
        assert_eq!(param(Some("flag&b=2"), "flag"), Some(""));
        assert_eq!(param(Some("ab=1"), "a"), None);
        assert_eq!(param(None, "a"), None);
    }

    #[tokio::test]
    async fn ready_flips() {
        let s = state(Duration::from_millis(30));
        assert_eq!(get(&s, "/ready").await, (503, "not ready".into()));
        assert!(get(&s, "/metrics").await.1.contains("\ndemo_app_ready 0\n"));
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert_eq!(get(&s, "/ready").await, (200, "ready".into()));
        assert!(get(&s, "/metrics").await.1.contains("\ndemo_app_ready 1\n"));
    }

    #[tokio::test]
    async fn work_counts_codes_and_sleeps() {
        let s = state(Duration::ZERO);
        assert_eq!(get(&s, "/work").await, (200, "ok".into()));
        assert_eq!(get(&s, "/work?code=503").await, (503, "ok".into()));
        let t = Instant::now();
        assert_eq!(get(&s, "/work?sleep_ms=20&code=201").await.0, 201);
        assert!(t.elapsed() >= Duration::from_millis(20));
        assert_eq!(get(&s, "/work?code=99").await.0, 400);
        assert_eq!(get(&s, "/work?sleep_ms=-1").await.0, 400);
        let m = get(&s, "/metrics").await.1;
        for line in [
            "demo_requests_total{handler=\"/work\",code=\"200\"} 1",
            "demo_requests_total{handler=\"/work\",code=\"201\"} 1",
            "demo_requests_total{handler=\"/work\",code=\"400\"} 2",
            "demo_requests_total{handler=\"/work\",code=\"503\"} 1",
            "demo_request_duration_seconds_count 5",
            "demo_request_duration_seconds_bucket{le=\"+Inf\"} 5",
        ] {
            assert!(m.lines().any(|l| l == line), "missing {line:?} in\n{m}");
        }
    }

    #[tokio::test]
    async fn set_index_and_not_found() {
        let s = state(Duration::ZERO);
        assert_eq!(get(&s, "/set?value=4.25").await, (200, "ok".into()));
        assert!(get(&s, "/metrics").await.1.contains("\ndemo_value 4.25\n"));
        assert_eq!(get(&s, "/set?value=x").await.0, 400);
        assert_eq!(get(&s, "/set").await.0, 400);
        assert_eq!(get(&s, "/exit?code=300").await.0, 400);
        let (code, body) = get(&s, "/").await;
        assert_eq!(code, 200);
        assert!(body.contains("/metrics"));
        assert_eq!(get(&s, "/nope").await.0, 404);
    }
}
