//! The app's metrics and their Prometheus text exposition (format 0.0.4), written by hand.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

/// `Content-Type` of the exposition.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Upper bounds of the finite histogram buckets, in seconds (`+Inf` is implicit).
pub const BUCKETS: [f64; 4] = [0.001, 0.01, 0.1, 1.0];

/// All metrics of the app. Cheap to update from any task.
#[derive(Debug)]
pub struct Metrics {
    instance_name: String,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// `demo_requests_total` by (handler, code).
    requests: BTreeMap<(&'static str, u16), u64>,
    /// Cumulative counts per finite bucket of `BUCKETS`.
    buckets: [u64; BUCKETS.len()],
    duration_sum: f64,
    duration_count: u64,
    value: f64,
    /// `demo_load_requests_total` by (target, result), result being `ok` or `error`.
    load: BTreeMap<(String, &'static str), u64>,
    /// `demo_metrics_scrapes_total`: requests to `/metrics`, so a benchmark can see how often
    /// a metric wait looks without a proxy in between.
    scrapes: u64,
}

impl Metrics {
    /// Creates the metrics; the `/work` counter with `code="200"` starts at 0 so that it is
    /// present before the first request.
    pub fn new(instance_name: impl Into<String>) -> Self {
        let mut inner = Inner::default();
        inner.requests.insert(("/work", 200), 0);
        Metrics {
            instance_name: instance_name.into(),
            inner: Mutex::new(inner),
        }
    }

    /// Counts one request and observes its duration.
    pub fn observe_request(&self, handler: &'static str, code: u16, duration: Duration) {
        let secs = duration.as_secs_f64();
        let mut inner = self.lock();
        *inner.requests.entry((handler, code)).or_insert(0) += 1;
        for (bound, count) in BUCKETS.iter().zip(inner.buckets.iter_mut()) {
            if secs <= *bound {
                *count += 1;
            }
        }
        inner.duration_sum += secs;
        inner.duration_count += 1;
    }

    /// Declares the load-generator targets: their `demo_load_requests_total` series start at 0,
    /// so that they are exposed before the first request. Without targets the family is absent.
    pub fn register_load_targets(&self, targets: &[String]) {
        let mut inner = self.lock();
        for target in targets {
            for result in ["ok", "error"] {
                inner.load.entry((target.clone(), result)).or_insert(0);
            }
        }
    }

    /// Counts one load request to `target`.
    pub fn observe_load(&self, target: &str, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        *self
            .lock()
            .load
            .entry((target.to_owned(), result))
            .or_insert(0) += 1;
    }

    /// Counts one request to `/metrics` (before it is rendered, so the page counts itself).
    pub fn observe_scrape(&self) {
        self.lock().scrapes += 1;
    }

    /// Sets the `demo_value` gauge.
    pub fn set_value(&self, value: f64) {
        self.lock().value = value;
    }

    /// Renders the exposition; `ready` is the current value of `demo_app_ready`.
    pub fn render(&self, ready: bool) -> String {
        let inner = self.lock();
        let mut out = String::with_capacity(1024);
        // Writing to a String cannot fail.
        let w = &mut out;

        family(
            w,
            "demo_app_info",
            "gauge",
            "Information about this demo-app instance; always 1.",
        );
        let _ = writeln!(
            w,
            "demo_app_info{{instance_name=\"{}\"}} 1",
            escape_label(&self.instance_name)
        );

        family(
            w,
            "demo_app_ready",
            "gauge",
            "Whether /ready answers 200 (1) or 503 (0).",
        );
        let _ = writeln!(w, "demo_app_ready {}", u8::from(ready));

        family(
            w,
            "demo_requests_total",
            "counter",
            "Requests to /work, by handler and status code.",
        );
        for ((handler, code), n) in &inner.requests {
            let _ = writeln!(
                w,
                "demo_requests_total{{handler=\"{}\",code=\"{code}\"}} {n}",
                escape_label(handler)
            );
        }

        let h = "demo_request_duration_seconds";
        family(
            w,
            h,
            "histogram",
            "Duration of /work requests, including any requested sleep.",
        );
        for (bound, count) in BUCKETS.iter().zip(inner.buckets.iter()) {
            let _ = writeln!(w, "{h}_bucket{{le=\"{}\"}} {count}", fmt_f64(*bound));
        }
        let _ = writeln!(w, "{h}_bucket{{le=\"+Inf\"}} {}", inner.duration_count);
        let _ = writeln!(w, "{h}_sum {}", fmt_f64(inner.duration_sum));
        let _ = writeln!(w, "{h}_count {}", inner.duration_count);

        family(
            w,
            "demo_value",
            "gauge",
            "A value set through /set?value=<f64>.",
        );
        let _ = writeln!(w, "demo_value {}", fmt_f64(inner.value));

        family(
            w,
            "demo_metrics_scrapes_total",
            "counter",
            "Requests to /metrics, this one included.",
        );
        let _ = writeln!(w, "demo_metrics_scrapes_total {}", inner.scrapes);

        if !inner.load.is_empty() {
            family(
                w,
                "demo_load_requests_total",
                "counter",
                "Requests sent by the load generator, by target and result (ok: a 2xx answer).",
            );
            for ((target, result), n) in &inner.load {
                let _ = writeln!(
                    w,
                    "demo_load_requests_total{{target=\"{}\",result=\"{result}\"}} {n}",
                    escape_label(target)
                );
            }
        }

        out
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the counters inconsistent in a way that
        // matters here; keep serving.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn family(w: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(w, "# HELP {name} {help}");
    let _ = writeln!(w, "# TYPE {name} {kind}");
}

/// Formats a sample value as the text format expects (`+Inf`, `-Inf`, `NaN`).
pub fn fmt_f64(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else if v == f64::INFINITY {
        "+Inf".to_owned()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_owned()
    } else {
        v.to_string()
    }
}

/// Escapes a label value: backslash, double quote and newline.
fn escape_label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_exposition() {
        let m = Metrics::new("app-1");
        let want = "\
# HELP demo_app_info Information about this demo-app instance; always 1.
# TYPE demo_app_info gauge
demo_app_info{instance_name=\"app-1\"} 1
# HELP demo_app_ready Whether /ready answers 200 (1) or 503 (0).
# TYPE demo_app_ready gauge
demo_app_ready 0
# HELP demo_requests_total Requests to /work, by handler and status code.
# TYPE demo_requests_total counter
demo_requests_total{handler=\"/work\",code=\"200\"} 0
# HELP demo_request_duration_seconds Duration of /work requests, including any requested sleep.
# TYPE demo_request_duration_seconds histogram
demo_request_duration_seconds_bucket{le=\"0.001\"} 0
demo_request_duration_seconds_bucket{le=\"0.01\"} 0
demo_request_duration_seconds_bucket{le=\"0.1\"} 0
demo_request_duration_seconds_bucket{le=\"1\"} 0
demo_request_duration_seconds_bucket{le=\"+Inf\"} 0
demo_request_duration_seconds_sum 0
demo_request_duration_seconds_count 0
# HELP demo_value A value set through /set?value=<f64>.
# TYPE demo_value gauge
demo_value 0
# HELP demo_metrics_scrapes_total Requests to /metrics, this one included.
# TYPE demo_metrics_scrapes_total counter
demo_metrics_scrapes_total 0
";
        assert_eq!(m.render(false), want);
    }

    #[test]
    fn observations_counts_and_buckets() {
        let m = Metrics::new("x");
        m.observe_request("/work", 200, Duration::from_micros(500)); // <= 0.001
        m.observe_request("/work", 200, Duration::from_millis(50)); // <= 0.1
        m.observe_request("/work", 503, Duration::from_secs(2)); // +Inf only
        m.set_value(-2.5);
        m.observe_scrape();
        m.observe_scrape();
        let text = m.render(true);
        for line in [
            "demo_app_ready 1",
            "demo_requests_total{handler=\"/work\",code=\"200\"} 2",
            "demo_requests_total{handler=\"/work\",code=\"503\"} 1",
            "demo_request_duration_seconds_bucket{le=\"0.001\"} 1",
            "demo_request_duration_seconds_bucket{le=\"0.01\"} 1",
            "demo_request_duration_seconds_bucket{le=\"0.1\"} 2",
            "demo_request_duration_seconds_bucket{le=\"1\"} 2",
            "demo_request_duration_seconds_bucket{le=\"+Inf\"} 3",
            "demo_request_duration_seconds_sum 2.0505",
            "demo_request_duration_seconds_count 3",
            "demo_value -2.5",
            "demo_metrics_scrapes_total 2",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }

    #[test]
    fn load_counters() {
        let m = Metrics::new("x");
        assert!(!m.render(true).contains("demo_load"));
        m.register_load_targets(&["b:2".to_owned(), "a:1".to_owned()]);
        m.observe_load("a:1", true);
        m.observe_load("a:1", true);
        m.observe_load("b:2", false);
        m.observe_load("c:3", false); // not registered: still counted
        let text = m.render(true);
        let want = "\
# HELP demo_load_requests_total Requests sent by the load generator, by target and result (ok: a 2xx answer).
# TYPE demo_load_requests_total counter
demo_load_requests_total{target=\"a:1\",result=\"error\"} 0
demo_load_requests_total{target=\"a:1\",result=\"ok\"} 2
demo_load_requests_total{target=\"b:2\",result=\"error\"} 1
demo_load_requests_total{target=\"b:2\",result=\"ok\"} 0
demo_load_requests_total{target=\"c:3\",result=\"error\"} 1
";
        assert!(text.ends_with(want), "got\n{text}");
    }

    #[test]
    fn special_values_and_escaping() {
        assert_eq!(fmt_f64(f64::INFINITY), "+Inf");
        assert_eq!(fmt_f64(f64::NEG_INFINITY), "-Inf");
        assert_eq!(fmt_f64(f64::NAN), "NaN");
        assert_eq!(fmt_f64(1.0), "1");
        assert_eq!(fmt_f64(0.001), "0.001");
        let m = Metrics::new("a\"b\\c\nd");
        assert!(m
            .render(false)
            .contains("demo_app_info{instance_name=\"a\\\"b\\\\c\\nd\"} 1"));
    }
}
