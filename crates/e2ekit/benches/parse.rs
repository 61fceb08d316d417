//! Parse throughput on a ~1 MB realistic exposition (counters, gauges, histograms and summaries
//! with labels), compared with the `prometheus-parse` crate.
//!
//! Run: `cargo bench -p e2ekit --bench parse`.

use std::fmt::Write as _;
use std::hint::black_box;
use std::io;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const TARGET_BYTES: usize = 1 << 20;
const METHODS: [&str; 4] = ["GET", "POST", "PUT", "DELETE"];
const CODES: [&str; 5] = ["200", "201", "404", "429", "500"];
const BUCKETS: [&str; 12] = [
    "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf",
];

/// A small deterministic generator, so every run parses the same text.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    fn float(&mut self) -> f64 {
        (self.next() % 10_000_000) as f64 / 1_000.0
    }
}

/// Builds an exposition of about [`TARGET_BYTES`] like a busy Go or Rust service exposes.
fn exposition() -> String {
    let mut rng = Rng(42);
    let mut out = String::with_capacity(TARGET_BYTES + 64 * 1024);
    let mut subsystem = 0;
    while out.len() < TARGET_BYTES {
        let p = format!("service_{subsystem}");
        subsystem += 1;

        writeln!(
            out,
            "# HELP {p}_http_requests_total Total HTTP requests by method, code and handler."
        )
        .unwrap();
        writeln!(out, "# TYPE {p}_http_requests_total counter").unwrap();
        for handler in 0..6 {
            for method in METHODS {
                let code = CODES[(rng.next() % 5) as usize];
                writeln!(
                    out,
                    "{p}_http_requests_total{{code=\"{code}\",handler=\"/api/v1/resource{handler}\",method=\"{method}\"}} {}",
                    rng.next() % 1_000_000
                )
                .unwrap();
            }
        }

        writeln!(
            out,
            "# HELP {p}_inflight_requests Requests currently served."
        )
        .unwrap();
        writeln!(out, "# TYPE {p}_inflight_requests gauge").unwrap();
        for handler in 0..6 {
            writeln!(
                out,
                "{p}_inflight_requests{{handler=\"/api/v1/resource{handler}\"}} {}",
                rng.next() % 64
            )
            .unwrap();
        }

        writeln!(
            out,
            "# HELP {p}_request_duration_seconds Latency of HTTP requests."
        )
        .unwrap();
        writeln!(out, "# TYPE {p}_request_duration_seconds histogram").unwrap();
        for handler in 0..4 {
            for method in &METHODS[..2] {
                let labels = format!("handler=\"/api/v1/resource{handler}\",method=\"{method}\"");
                let mut count = 0;
                for le in BUCKETS {
                    count += rng.next() % 1000;
                    writeln!(
                        out,
                        "{p}_request_duration_seconds_bucket{{{labels},le=\"{le}\"}} {count}"
                    )
                    .unwrap();
                }
                writeln!(
                    out,
                    "{p}_request_duration_seconds_sum{{{labels}}} {}",
                    rng.float()
                )
                .unwrap();
                writeln!(
                    out,
                    "{p}_request_duration_seconds_count{{{labels}}} {count}"
                )
                .unwrap();
            }
        }

        writeln!(
            out,
            "# HELP {p}_gc_duration_seconds A summary of GC pause durations."
        )
        .unwrap();
        writeln!(out, "# TYPE {p}_gc_duration_seconds summary").unwrap();
        for q in ["0", "0.25", "0.5", "0.75", "1"] {
            writeln!(
                out,
                "{p}_gc_duration_seconds{{quantile=\"{q}\"}} {:e}",
                rng.float() / 1e6
            )
            .unwrap();
        }
        writeln!(out, "{p}_gc_duration_seconds_sum {}", rng.float()).unwrap();
        writeln!(
            out,
            "{p}_gc_duration_seconds_count {}",
            rng.next() % 100_000
        )
        .unwrap();

        writeln!(out, "# HELP {p}_build_info Build information.").unwrap();
        writeln!(out, "# TYPE {p}_build_info gauge").unwrap();
        writeln!(
            out,
            "{p}_build_info{{branch=\"main\",goversion=\"go1.22.5\",revision=\"{:x}\",version=\"2.53.0\"}} 1",
            rng.next()
        )
        .unwrap();
        writeln!(out, "{p}_start_time_seconds 1.7e+09").unwrap();
    }
    out
}

fn bench_parse(c: &mut Criterion) {
    let text = exposition();
    let families = e2ekit::metrics::parse(&text).expect("generated exposition parses");
    let samples: usize = families.iter().map(|f| f.samples.len()).sum();
    println!(
        "exposition: {} bytes, {} families, {samples} samples",
        text.len(),
        families.len()
    );

    let mut group = c.benchmark_group("parse_1mb");
    group.throughput(Throughput::Bytes(text.len() as u64));
    group.bench_function("e2ekit::metrics::parse", |b| {
        b.iter(|| e2ekit::metrics::parse(black_box(&text)).unwrap())
    });
    group.bench_function("e2ekit::metrics::parse_bytes", |b| {
        b.iter(|| e2ekit::metrics::parse_bytes(black_box(text.as_bytes())).unwrap())
    });
    group.bench_function("prometheus-parse 0.2", |b| {
        b.iter(|| {
            prometheus_parse::Scrape::parse(
                black_box(&text)
                    .lines()
                    .map(|line| Ok::<_, io::Error>(line.to_owned())),
            )
            .unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, bench_parse);
criterion_main!(benches);
