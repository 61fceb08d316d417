//! Splitting container output into lines (`engine::lines::LineSplitter`), on the inputs a
//! flood produces: one 10 MB line delivered in 8 KiB chunks, and 10 MB of ordinary 100-byte
//! lines. Compared with the splitter it replaced, which searched the whole pending buffer for
//! `\n` again on every chunk (quadratic in a line's length; kept below as `rescan`).
//!
//! Run: `cargo bench -p e2ekit --bench split_lines`. The `rescan` run of the 10 MB line
//! takes a few seconds per iteration, so that group takes a minute or two.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

// The splitter has no engine or crate dependencies, so the bench compiles its source as is.
#[allow(dead_code)]
#[path = "../src/engine/lines.rs"]
mod lines;

use lines::{LineSplitter, LogLine};

const CHUNK: usize = 8 * 1024;

/// One line of `len` bytes and its `\n`.
fn one_line(len: usize) -> Vec<u8> {
    let mut text = vec![b'a'; len];
    text.push(b'\n');
    text
}

/// About `len` bytes of 100-byte lines.
fn short_lines(len: usize) -> Vec<u8> {
    let line = format!("{}\n", "l".repeat(99));
    line.as_bytes().repeat(len / line.len())
}

/// The splitter in use: every byte looked at once.
fn linear(text: &[u8]) -> usize {
    let mut splitter = LineSplitter::new();
    let mut out: Vec<LogLine> = Vec::new();
    let mut lines = 0;
    for chunk in text.chunks(CHUNK) {
        splitter.push(false, chunk, &mut out);
        for line in out.drain(..) {
            black_box(line);
            lines += 1;
        }
    }
    splitter.finish(&mut out);
    lines + out.len()
}

/// The splitter before (engine/docker/logs.rs up to this change): appends each chunk to the
/// pending bytes and searches all of them for `\n` from the start.
fn rescan(text: &[u8]) -> usize {
    let mut pending: Vec<u8> = Vec::new();
    let mut lines = 0;
    for chunk in text.chunks(CHUNK) {
        pending.extend_from_slice(chunk);
        while let Some(pos) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=pos).collect();
            let text = String::from_utf8_lossy(&line[..line.len() - 1])
                .trim_end_matches('\r')
                .to_string();
            black_box(text);
            lines += 1;
        }
    }
    lines + usize::from(!pending.is_empty())
}

fn bench_split(c: &mut Criterion) {
    let inputs = [
        ("one 1 MB line", one_line(1_000_000)),
        ("one 10 MB line", one_line(10_000_000)),
        ("10 MB of 100-byte lines", short_lines(10_000_000)),
    ];
    for (name, text) in &inputs {
        assert_eq!(
            linear(text),
            rescan(text),
            "{name}: both give the same lines"
        );
    }
    let mut group = c.benchmark_group("split_lines");
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(500));
    for (name, text) in &inputs {
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_with_input(BenchmarkId::new("linear", name), text, |b, t| {
            b.iter(|| linear(black_box(t)))
        });
        group.bench_with_input(BenchmarkId::new("rescan (before)", name), text, |b, t| {
            b.iter(|| rescan(black_box(t)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_split);
criterion_main!(benches);
