//! Property tests of the exposition parser: it never panics, and rendering generated families
//! then parsing them gives the families back.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use e2ekit::metrics::{parse, parse_bytes, MetricFamily, MetricKind};
use proptest::prelude::*;

/// A generated series: labels (without `le`/`quantile`) and values.
#[derive(Debug, Clone)]
struct Series {
    labels: BTreeMap<String, String>,
    values: Vec<f64>,
    timestamp: Option<i64>,
}

#[derive(Debug, Clone)]
struct Family {
    name: String,
    kind: MetricKind,
    help: Option<String>,
    series: Vec<Series>,
}

/// An expected sample: series name, labels in render order, value, timestamp.
type Expected = (String, Vec<(String, String)>, f64, Option<f64>);

const BOUNDS: [&str; 3] = ["0.1", "1", "+Inf"];
const QUANTILES: [&str; 2] = ["0.5", "0.99"];
const SUFFIXES: [&str; 8] = [
    "_total", "_created", "_bucket", "_sum", "_count", "_gsum", "_gcount", "_info",
];

fn value() -> impl Strategy<Value = f64> {
    prop_oneof![
        4 => any::<f64>(),
        2 => (-1_000_000i64..1_000_000).prop_map(|v| v as f64),
        1 => Just(f64::NAN),
        1 => Just(f64::INFINITY),
        1 => Just(f64::NEG_INFINITY),
        1 => Just(-0.0),
    ]
}

fn series(values: usize) -> impl Strategy<Value = Series> {
    (
        prop::collection::btree_map(
            "[a-zA-Z_][a-zA-Z0-9_]{0,8}".prop_filter("reserved", |n| n != "le" && n != "quantile"),
            any::<String>(),
            0..4,
        ),
        prop::collection::vec(value(), values),
        prop::option::of(-1_000_000_000_000_000i64..1_000_000_000_000_000),
    )
        .prop_map(|(labels, values, timestamp)| Series {
            labels,
            values,
            timestamp,
        })
}

fn family() -> impl Strategy<Value = Family> {
    let kind = prop_oneof![
        Just(MetricKind::Counter),
        Just(MetricKind::Gauge),
        Just(MetricKind::Untyped),
        Just(MetricKind::Histogram),
        Just(MetricKind::Summary),
    ];
    (
        "[a-zA-Z_:][a-zA-Z0-9_:]{0,12}",
        kind,
        prop::option::of(any::<String>().prop_map(|h| {
            h.replace('\r', "")
                .trim_start_matches([' ', '\t'])
                .to_owned()
        })),
    )
        .prop_flat_map(|(name, kind, help)| {
            let values = match kind {
                MetricKind::Histogram => BOUNDS.len() + 2,
                MetricKind::Summary => QUANTILES.len() + 2,
                _ => 1,
            };
            prop::collection::vec(series(values), 0..4).prop_map(move |series| Family {
                name: name.clone(),
                kind,
                help: help.clone(),
                series,
            })
        })
}

/// Families whose names are distinct and never a series name of another family.
fn families() -> impl Strategy<Value = Vec<Family>> {
    prop::collection::vec(family(), 0..6).prop_filter("colliding names", |families| {
        families.iter().enumerate().all(|(i, a)| {
            families.iter().enumerate().all(|(j, b)| {
                i == j
                    || (a.name != b.name
                        && SUFFIXES.iter().all(|s| b.name != format!("{}{s}", a.name)))
            })
        })
    })
}

fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn render_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v:?}")
    }
}

/// Renders families as text and returns the samples the parser must find, per family.
fn render(families: &[Family], openmetrics: bool) -> (String, Vec<Vec<Expected>>) {
    let mut out = String::new();
    let mut expected = Vec::new();
    for f in families {
        if let Some(help) = &f.help {
            let help = help.replace('\\', "\\\\").replace('\n', "\\n");
            writeln!(out, "# HELP {} {help}", f.name).unwrap();
        }
        writeln!(out, "# TYPE {} {}", f.name, f.kind).unwrap();
        let mut samples = Vec::new();
        for s in &f.series {
            let base: Vec<(String, String)> = s.labels.clone().into_iter().collect();
            let mut push = |suffix: &str, extra: Option<(&str, &str)>, value: f64| {
                let mut labels = base.clone();
                if let Some((n, v)) = extra {
                    labels.push((n.to_owned(), v.to_owned()));
                }
                let name = format!("{}{suffix}", f.name);
                let rendered: Vec<String> = labels
                    .iter()
                    .map(|(n, v)| format!("{n}=\"{}\"", escape_label(v)))
                    .collect();
                write!(
                    out,
                    "{name}{{{}}} {}",
                    rendered.join(","),
                    render_value(value)
                )
                .unwrap();
                if let Some(ts) = s.timestamp {
                    write!(out, " {ts}").unwrap();
                }
                out.push('\n');
                samples.push((name, labels, value, s.timestamp.map(|t| t as f64)));
            };
            match f.kind {
                MetricKind::Histogram => {
                    for (bound, &v) in BOUNDS.iter().zip(&s.values) {
                        push("_bucket", Some(("le", bound)), v);
                    }
                    push("_sum", None, s.values[BOUNDS.len()]);
                    push("_count", None, s.values[BOUNDS.len() + 1]);
                }
                MetricKind::Summary => {
                    for (q, &v) in QUANTILES.iter().zip(&s.values) {
                        push("", Some(("quantile", q)), v);
                    }
                    push("_sum", None, s.values[QUANTILES.len()]);
                    push("_count", None, s.values[QUANTILES.len() + 1]);
                }
                MetricKind::Counter if openmetrics => push("_total", None, s.values[0]),
                _ => push("", None, s.values[0]),
            }
        }
        expected.push(samples);
    }
    if openmetrics {
        out.push_str("# EOF\n");
    }
    (out, expected)
}

fn same_value(a: f64, b: f64) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

fn check_round_trip(
    families: &[Family],
    expected: &[Vec<Expected>],
    parsed: &[MetricFamily<'_>],
) -> Result<(), TestCaseError> {
    prop_assert_eq!(parsed.len(), families.len());
    for ((f, want), got) in families.iter().zip(expected).zip(parsed) {
        prop_assert_eq!(&*got.name, f.name.as_str());
        prop_assert_eq!(got.kind, f.kind);
        prop_assert_eq!(got.help.as_deref(), f.help.as_deref());
        prop_assert_eq!(got.samples.len(), want.len());
        for (sample, (name, labels, value, ts)) in got.samples.iter().zip(want) {
            prop_assert_eq!(&*sample.name, name.as_str());
            let got_labels: Vec<(String, String)> = sample
                .labels
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect();
            prop_assert_eq!(&got_labels, labels);
            prop_assert!(
                same_value(sample.value, *value),
                "value {} != {}",
                sample.value,
                value
            );
            prop_assert_eq!(sample.timestamp, *ts);
        }
    }
    Ok(())
}

proptest! {
    #[test]
    fn arbitrary_strings_never_panic(text in any::<String>()) {
        let _ = parse(&text);
    }

    #[test]
    fn exposition_like_strings_never_panic(
        text in "[a-z_:{}=\",#. \\\\\t\r\n0-9eE+\\-InfNa\"é]{0,300}"
    ) {
        if let Err(err) = parse(&text) {
            prop_assert!(err.line >= 1 && err.line <= text.split('\n').count());
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Err(err) = parse_bytes(&bytes) {
            prop_assert!(err.line >= 1);
            prop_assert!(err.line <= bytes.split(|&b| b == b'\n').count());
        }
    }

    #[test]
    fn mutated_expositions_never_panic(
        families in families(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0usize..4), 1..8),
    ) {
        let (text, _) = render(&families, false);
        let mut bytes = text.into_bytes();
        for (at, byte, len) in edits {
            if bytes.is_empty() {
                bytes.push(byte);
                continue;
            }
            let at = at.index(bytes.len());
            let end = (at + len).min(bytes.len());
            bytes.splice(at..end, [byte]);
        }
        let _ = parse_bytes(&bytes);
        let _ = parse(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn render_then_parse_round_trips(families in families()) {
        let (text, expected) = render(&families, false);
        let parsed = parse(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        check_round_trip(&families, &expected, &parsed)?;
    }

    #[test]
    fn render_then_parse_round_trips_openmetrics(families in families()) {
        let (text, expected) = render(&families, true);
        let parsed = parse(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        check_round_trip(&families, &expected, &parsed)?;
    }
}
