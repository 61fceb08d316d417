//! Container output as lines: the engine delivers chunks of bytes per stream (stdout,
//! stderr), cut anywhere; [`LineSplitter`] turns them into whole lines.
//!
//! Every byte is looked at once, when its chunk arrives: a line of any length costs time in
//! proportion to its length, however many chunks it comes in. A bounded splitter (for error
//! tails) keeps only the first bytes of each line and counts the rest, so a flood costs no
//! memory either. Engine-independent: every backend that reads output as byte chunks uses it.
//!
//! This file uses nothing but `std`, so `benches/split_lines.rs` compiles it as is.

/// A line of container output.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LogLine {
    pub stderr: bool,
    /// The line without its `\n` (or `\r\n`); invalid UTF-8 is replaced.
    pub text: String,
    /// Bytes of the line left out of `text` by a bounded splitter (0: the whole line).
    pub cut: usize,
}

/// Splits chunks of output into lines, separately per stream.
#[derive(Debug, Default)]
pub(crate) struct LineSplitter {
    /// The unfinished line of stdout (0) and of stderr (1).
    pending: [Partial; 2],
    /// Most bytes kept of one line; `None` keeps whole lines.
    max_line: Option<usize>,
    /// Bytes looked at for a line end so far (tests check that each is looked at once).
    #[cfg(test)]
    examined: usize,
}

/// The part of a line seen so far.
#[derive(Debug, Default)]
struct Partial {
    bytes: Vec<u8>,
    /// Bytes of the line not kept.
    cut: usize,
    /// How many of the cut bytes at its end are `\r` (part of a `\r\n`, not of the line).
    cut_cr: usize,
}

impl LineSplitter {
    /// Keeps whole lines.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Keeps at most `max_line` bytes of each line (cut at a character boundary); the rest
    /// is only counted, in [`LogLine::cut`].
    pub(crate) fn bounded(max_line: usize) -> Self {
        Self {
            max_line: Some(max_line),
            ..Self::default()
        }
    }

    /// Takes one chunk of a stream and appends the lines it completes to `out`.
    pub(crate) fn push(&mut self, stderr: bool, chunk: &[u8], out: &mut Vec<LogLine>) {
        #[cfg(test)]
        {
            self.examined += chunk.len();
        }
        let max = self.max_line;
        let partial = &mut self.pending[usize::from(stderr)];
        let mut rest = chunk;
        while let Some(end) = rest.iter().position(|b| *b == b'\n') {
            partial.keep(&rest[..end], max);
            out.push(partial.take(stderr, true));
            rest = &rest[end + 1..];
        }
        partial.keep(rest, max);
    }

    /// The output ended: appends the unfinished lines (stdout first), if any.
    pub(crate) fn finish(&mut self, out: &mut Vec<LogLine>) {
        for (i, partial) in self.pending.iter_mut().enumerate() {
            if !partial.bytes.is_empty() || partial.cut > 0 {
                out.push(partial.take(i == 1, false));
            }
        }
    }

    #[cfg(test)]
    fn examined(&self) -> usize {
        self.examined
    }
}

impl Partial {
    /// Adds `bytes` to the line, keeping at most `max` bytes of it in all.
    fn keep(&mut self, bytes: &[u8], max: Option<usize>) {
        let room = match max {
            Some(max) => max.saturating_sub(self.bytes.len()).min(bytes.len()),
            None => bytes.len(),
        };
        self.bytes.extend_from_slice(&bytes[..room]);
        let dropped = &bytes[room..];
        if !dropped.is_empty() {
            self.cut += dropped.len();
            let crs = dropped.iter().rev().take_while(|b| **b == b'\r').count();
            self.cut_cr = if crs == dropped.len() {
                self.cut_cr + crs
            } else {
                crs
            };
        }
    }

    /// The line so far, as a [`LogLine`]; `complete` when its `\n` was seen (then a `\r`
    /// before it is dropped).
    fn take(&mut self, stderr: bool, complete: bool) -> LogLine {
        let mut bytes = std::mem::take(&mut self.bytes);
        let mut cut = std::mem::take(&mut self.cut);
        let cut_cr = std::mem::take(&mut self.cut_cr);
        if complete {
            // A `\r\n` ending: the `\r`s are not part of the line, kept or not.
            cut -= cut_cr;
            if cut == 0 {
                let crs = bytes.iter().rev().take_while(|b| **b == b'\r').count();
                bytes.truncate(bytes.len() - crs);
            }
        }
        if cut > 0 {
            // The bound may have split a character: leave its first bytes out too.
            let partial = incomplete_char_at_end(&bytes);
            bytes.truncate(bytes.len() - partial);
            cut += partial;
        }
        let text = match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        };
        LogLine { stderr, text, cut }
    }
}

/// How many bytes at the end of `bytes` start a UTF-8 character that is not complete.
fn incomplete_char_at_end(bytes: &[u8]) -> usize {
    // A character is at most 4 bytes: its first byte is among the last 3 if it is cut.
    for back in 1..=bytes.len().min(3) {
        let b = bytes[bytes.len() - back];
        if b & 0xC0 == 0x80 {
            continue; // a continuation byte: look further back
        }
        let len = match b {
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF7 => 4,
            _ => 1,
        };
        return if len > back { back } else { 0 };
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUT: bool = false;
    const ERR: bool = true;

    fn line(stderr: bool, text: &str) -> LogLine {
        LogLine {
            stderr,
            text: text.to_string(),
            cut: 0,
        }
    }

    /// Feeds `chunks` in order, then ends the output; returns every line.
    fn split(splitter: &mut LineSplitter, chunks: &[(bool, &[u8])]) -> Vec<LogLine> {
        let mut out = Vec::new();
        for (stderr, chunk) in chunks {
            splitter.push(*stderr, chunk, &mut out);
        }
        splitter.finish(&mut out);
        out
    }

    #[test]
    fn a_huge_line_in_many_small_chunks_is_one_line_and_each_byte_is_examined_once() {
        let huge = vec![b'a'; 4 << 20];
        let mut splitter = LineSplitter::new();
        let mut out = Vec::new();
        for chunk in huge.chunks(1024) {
            splitter.push(OUT, chunk, &mut out);
            assert!(out.is_empty(), "no line before its end");
        }
        splitter.push(OUT, b"\nnext\n", &mut out);
        splitter.finish(&mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].text.len(), 4 << 20);
        assert!(out[0].text.bytes().all(|b| b == b'a'));
        assert_eq!(out[1], line(OUT, "next"));
        // Linear: every byte was looked at once, not once per chunk that followed it.
        assert_eq!(splitter.examined(), (4 << 20) + 6);
    }

    #[test]
    fn many_lines_in_one_chunk_and_lines_cut_anywhere_come_out_whole() {
        let text = b"one\ntwo\n\nthree\nfour";
        let expected = ["one", "two", "", "three", "four"].map(|t| line(OUT, t));
        assert_eq!(split(&mut LineSplitter::new(), &[(OUT, text)]), expected);
        // Every way of cutting the text in two (and into single bytes) gives the same lines.
        for at in 0..=text.len() {
            let (a, b) = text.split_at(at);
            assert_eq!(
                split(&mut LineSplitter::new(), &[(OUT, a), (OUT, b)]),
                expected,
                "cut at {at}"
            );
        }
        let bytes: Vec<(bool, &[u8])> = text.chunks(1).map(|c| (OUT, c)).collect();
        assert_eq!(split(&mut LineSplitter::new(), &bytes), expected);
    }

    #[test]
    fn crlf_endings_are_dropped_even_when_split_between_chunks() {
        let chunks: [(bool, &[u8]); 4] = [
            (OUT, b"dos\r\nsplit\r"),
            (OUT, b"\nbare\rcr inside\r\n"),
            (OUT, b"\r\n"),
            (OUT, b"last\r"),
        ];
        assert_eq!(
            split(&mut LineSplitter::new(), &chunks),
            [
                line(OUT, "dos"),
                line(OUT, "split"),
                line(OUT, "bare\rcr inside"),
                line(OUT, ""),
                // Unfinished at the end: kept as printed.
                line(OUT, "last\r"),
            ]
        );
    }

    #[test]
    fn stdout_and_stderr_interleaved_keep_their_own_partial_lines() {
        let chunks: [(bool, &[u8]); 6] = [
            (OUT, b"out-a"),
            (ERR, b"err-a"),
            (OUT, b"1\nout-b"),
            (ERR, b"1\n"),
            (ERR, b"err-b\n"),
            (OUT, b"2\n"),
        ];
        assert_eq!(
            split(&mut LineSplitter::new(), &chunks),
            [
                line(OUT, "out-a1"),
                line(ERR, "err-a1"),
                line(ERR, "err-b"),
                line(OUT, "out-b2"),
            ]
        );
    }

    #[test]
    fn unfinished_lines_of_both_streams_come_out_at_the_end() {
        let chunks: [(bool, &[u8]); 3] =
            [(ERR, b"no newline"), (OUT, b"done\npartial"), (OUT, b"")];
        assert_eq!(
            split(&mut LineSplitter::new(), &chunks),
            [
                line(OUT, "done"),
                line(OUT, "partial"),
                line(ERR, "no newline"),
            ]
        );
        assert!(split(&mut LineSplitter::new(), &[(OUT, b"")]).is_empty());
    }

    #[test]
    fn invalid_utf8_is_replaced_not_fatal() {
        assert_eq!(
            split(&mut LineSplitter::new(), &[(OUT, b"ok \xff\xfe end\n")]),
            [line(OUT, "ok \u{fffd}\u{fffd} end")]
        );
    }

    #[test]
    fn a_bounded_splitter_keeps_the_first_bytes_and_counts_the_rest() {
        let mut splitter = LineSplitter::bounded(8);
        let mut out = Vec::new();
        for chunk in vec![b'x'; 1 << 20].chunks(4096) {
            splitter.push(ERR, chunk, &mut out);
        }
        splitter.push(ERR, b"\nshort\n0123456789\r\n", &mut out);
        splitter.push(OUT, b"unfinished and long", &mut out);
        splitter.finish(&mut out);
        let cut = |stderr, text: &str, cut| LogLine {
            stderr,
            text: text.to_string(),
            cut,
        };
        assert_eq!(
            out,
            [
                cut(ERR, "xxxxxxxx", (1 << 20) - 8),
                cut(ERR, "short", 0),
                // The `\r\n` is no part of the line, so not counted as cut.
                cut(ERR, "01234567", 2),
                cut(OUT, "unfinish", 11),
            ]
        );
        // A line exactly at the bound, with its `\r` beyond it, is whole.
        assert_eq!(
            split(
                &mut LineSplitter::bounded(4),
                &[(OUT, b"abcd\r"), (OUT, b"\n")]
            ),
            [line(OUT, "abcd")]
        );
    }

    #[test]
    fn a_bounded_line_is_cut_at_a_character_boundary() {
        // "€" is 3 bytes: a bound of 5 falls inside the second one.
        let out = split(&mut LineSplitter::bounded(5), &[(OUT, "€€€\n".as_bytes())]);
        assert_eq!(
            out,
            [LogLine {
                stderr: OUT,
                text: "€".to_string(),
                cut: 6,
            }]
        );
    }
}
