//! Parser for the Prometheus text exposition format (version 0.0.4) and the OpenMetrics text
//! format.
//!
//! The parser is a single pass over the input with no regular expressions. Names, label names,
//! label values and help texts borrow from the input unless they contain escape sequences, so the
//! common case allocates one `Vec` of labels per sample and nothing else.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fmt;

/// The type of a metric family, as declared by its `# TYPE` line.
///
/// Samples that appear without a `# TYPE` line form [`MetricKind::Untyped`] families; the
/// OpenMetrics type `unknown` maps to [`MetricKind::Untyped`] too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MetricKind {
    /// A monotonically increasing value. Its series are the family name itself (Prometheus text
    /// format), `<name>_total` and `<name>_created` (OpenMetrics).
    Counter,
    /// A value that can go up and down; one series named like the family.
    Gauge,
    /// A histogram: `<name>_bucket` (with an `le` label), `<name>_sum`, `<name>_count` and
    /// `<name>_created`.
    Histogram,
    /// A summary: `<name>` (with a `quantile` label), `<name>_sum`, `<name>_count` and
    /// `<name>_created`.
    Summary,
    /// No declared type (or OpenMetrics `unknown`); one series named like the family.
    Untyped,
    /// OpenMetrics info: series `<name>_info` (or `<name>`) whose value is 1.
    Info,
    /// OpenMetrics state set: series named like the family, one label per state.
    StateSet,
    /// OpenMetrics gauge histogram: `<name>_bucket`, `<name>_gsum` and `<name>_gcount`.
    GaugeHistogram,
}

/// Every suffix that some kind of family appends to its name to form a series name.
const SUFFIXES: [&str; 8] = [
    "_total", "_created", "_bucket", "_sum", "_count", "_gsum", "_gcount", "_info",
];

impl MetricKind {
    /// The lowercase name used in `# TYPE` lines, e.g. `"counter"` or `"gaugehistogram"`.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
            MetricKind::Histogram => "histogram",
            MetricKind::Summary => "summary",
            MetricKind::Untyped => "untyped",
            MetricKind::Info => "info",
            MetricKind::StateSet => "stateset",
            MetricKind::GaugeHistogram => "gaugehistogram",
        }
    }

    /// Parses the type token of a `# TYPE` line (case-insensitive).
    fn from_type_token(token: &str) -> Option<MetricKind> {
        const KINDS: [(&str, MetricKind); 9] = [
            ("counter", MetricKind::Counter),
            ("gauge", MetricKind::Gauge),
            ("histogram", MetricKind::Histogram),
            ("summary", MetricKind::Summary),
            ("untyped", MetricKind::Untyped),
            ("unknown", MetricKind::Untyped),
            ("info", MetricKind::Info),
            ("stateset", MetricKind::StateSet),
            ("gaugehistogram", MetricKind::GaugeHistogram),
        ];
        KINDS
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(token))
            .map(|&(_, kind)| kind)
    }

    /// Whether a family of this kind owns the series `<family name><suffix>`.
    pub(crate) fn accepts_suffix(self, suffix: &str) -> bool {
        match self {
            MetricKind::Counter => matches!(suffix, "" | "_total" | "_created"),
            MetricKind::Gauge | MetricKind::Untyped | MetricKind::StateSet => suffix.is_empty(),
            MetricKind::Histogram => matches!(suffix, "_bucket" | "_sum" | "_count" | "_created"),
            MetricKind::Summary => matches!(suffix, "" | "_sum" | "_count" | "_created"),
            MetricKind::Info => matches!(suffix, "" | "_info"),
            MetricKind::GaugeHistogram => matches!(suffix, "_bucket" | "_gsum" | "_gcount"),
        }
    }
}

impl fmt::Display for MetricKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One sample line of an exposition: a series name, its labels, a value and maybe a timestamp.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedSample<'a> {
    /// The full series name as written, e.g. `http_request_duration_seconds_bucket`.
    pub name: Cow<'a, str>,
    /// Label names and (unescaped) values in the order they were written.
    pub labels: Vec<(Cow<'a, str>, Cow<'a, str>)>,
    /// The sample value; `+Inf`, `-Inf` and `NaN` are parsed to the matching `f64`.
    pub value: f64,
    /// The timestamp as written: milliseconds since the epoch in the Prometheus text format,
    /// seconds (possibly fractional) in OpenMetrics.
    pub timestamp: Option<f64>,
}

impl ParsedSample<'_> {
    /// The value of label `name`, if the sample has it.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_ref())
    }

    /// The labels as an owned, sorted map.
    pub fn labels_map(&self) -> BTreeMap<String, String> {
        self.labels
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    /// Copies every borrowed string so the sample no longer borrows the exposition text.
    pub fn into_owned(self) -> ParsedSample<'static> {
        ParsedSample {
            name: Cow::Owned(self.name.into_owned()),
            labels: self
                .labels
                .into_iter()
                .map(|(n, v)| (Cow::Owned(n.into_owned()), Cow::Owned(v.into_owned())))
                .collect(),
            value: self.value,
            timestamp: self.timestamp,
        }
    }
}

/// A metric family: a name, its declared type, optional help and unit, and its samples.
///
/// A family declared by a `# TYPE` line owns every series its type derives from its name (see
/// [`MetricKind`]); a sample without such a family forms an untyped family of its own name.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricFamily<'a> {
    /// The family name from its `# TYPE`/`# HELP` line, or the sample name of an untyped family.
    pub name: Cow<'a, str>,
    /// The declared type; [`MetricKind::Untyped`] when there was no `# TYPE` line.
    pub kind: MetricKind,
    /// The unescaped text of the `# HELP` line, if any.
    pub help: Option<Cow<'a, str>>,
    /// The unit of an OpenMetrics `# UNIT` line, if any.
    pub unit: Option<Cow<'a, str>>,
    /// The samples in exposition order.
    pub samples: Vec<ParsedSample<'a>>,
}

impl MetricFamily<'_> {
    /// The part of `series_name` after the family name if this family owns that series, e.g.
    /// `Some("_bucket")` for `x_bucket` in histogram `x`, `Some("")` for gauge `x`'s `x`.
    pub fn series_suffix<'s>(&self, series_name: &'s str) -> Option<&'s str> {
        series_name
            .strip_prefix(&*self.name)
            .filter(|suffix| self.kind.accepts_suffix(suffix))
    }

    /// Copies every borrowed string so the family no longer borrows the exposition text.
    pub fn into_owned(self) -> MetricFamily<'static> {
        MetricFamily {
            name: Cow::Owned(self.name.into_owned()),
            kind: self.kind,
            help: self.help.map(|h| Cow::Owned(h.into_owned())),
            unit: self.unit.map(|u| Cow::Owned(u.into_owned())),
            samples: self
                .samples
                .into_iter()
                .map(ParsedSample::into_owned)
                .collect(),
        }
    }
}

/// A malformed exposition: which line, what it said, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid metrics exposition at line {line}: {reason} (line: `{text}`)")]
pub struct ParseError {
    /// The 1-based number of the offending line.
    pub line: usize,
    /// The offending line, truncated to about 120 bytes.
    pub text: String,
    /// What is wrong with it.
    pub reason: String,
}

const MAX_ERROR_TEXT: usize = 120;

impl ParseError {
    fn new(line: usize, text: &str, reason: String) -> Self {
        let text = if text.len() <= MAX_ERROR_TEXT {
            text.to_owned()
        } else {
            let mut end = MAX_ERROR_TEXT;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            format!("{}…", &text[..end])
        };
        ParseError { line, text, reason }
    }
}

/// Parses a Prometheus text (0.0.4) or OpenMetrics text exposition into metric families, in
/// order of first appearance.
///
/// Comments, blank lines and OpenMetrics exemplars are skipped; `# EOF` ends the exposition
/// (only blank lines may follow it). Any malformed line yields a [`ParseError`] naming it.
///
/// ```
/// use e2ekit::metrics::{parse, MetricKind};
///
/// let families = parse("# TYPE up gauge\nup{job=\"a\"} 1\n").unwrap();
/// assert_eq!(families[0].name, "up");
/// assert_eq!(families[0].kind, MetricKind::Gauge);
/// assert_eq!(families[0].samples[0].label("job"), Some("a"));
/// ```
pub fn parse(text: &str) -> Result<Vec<MetricFamily<'_>>, ParseError> {
    let mut parser = Parser::default();
    for (index, raw) in text.split('\n').enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if let Err(reason) = parser.line(line) {
            return Err(ParseError::new(index + 1, line, reason));
        }
    }
    Ok(parser.families)
}

/// Like [`parse`] for raw bytes; invalid UTF-8 is an error naming the line it is on.
pub fn parse_bytes(bytes: &[u8]) -> Result<Vec<MetricFamily<'_>>, ParseError> {
    match std::str::from_utf8(bytes) {
        Ok(text) => parse(text),
        Err(err) => {
            let pos = err.valid_up_to();
            let start = bytes[..pos]
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |p| p + 1);
            let end = bytes[pos..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(bytes.len(), |p| pos + p);
            let line = bytes[..start].iter().filter(|&&b| b == b'\n').count() + 1;
            Err(ParseError::new(
                line,
                &String::from_utf8_lossy(&bytes[start..end]),
                format!("invalid UTF-8 at byte {} of the line", pos - start + 1),
            ))
        }
    }
}

type Reason = String;

/// Per-family bookkeeping that is not part of the result.
#[derive(Default, Clone, Copy)]
struct FamilyMeta {
    /// A `# TYPE` line declared the kind.
    typed: bool,
    /// Another family's name is this one's plus a series suffix (or the reverse), so the fast
    /// "same family as the previous sample" path must not be used for it.
    ambiguous: bool,
    /// The name is a plain (unquoted) metric name, so a sample name starting with it only
    /// needs the rest scanned.
    plain: bool,
}

#[derive(Default)]
struct Parser<'a> {
    families: Vec<MetricFamily<'a>>,
    meta: Vec<FamilyMeta>,
    index: HashMap<Cow<'a, str>, usize>,
    /// The family of the last metadata line or sample.
    current: Option<usize>,
    eof: bool,
    scratch: String,
}

impl<'a> Parser<'a> {
    fn line(&mut self, line: &'a str) -> Result<(), Reason> {
        let mut c = Cursor::new(line);
        c.skip_blanks();
        let Some(first) = c.peek() else {
            return Ok(());
        };
        if self.eof {
            return Err("content after `# EOF`".into());
        }
        if first == b'#' {
            c.pos += 1;
            self.comment(c)
        } else {
            self.sample(c)
        }
    }

    fn comment(&mut self, mut c: Cursor<'a>) -> Result<(), Reason> {
        c.skip_blanks();
        let keyword = c.token();
        match keyword {
            "HELP" | "TYPE" | "UNIT" => {}
            "EOF" => {
                c.skip_blanks();
                if c.at_end() {
                    self.eof = true;
                }
                return Ok(());
            }
            _ => return Ok(()),
        }
        c.skip_blanks();
        let name = c.metadata_name(keyword)?;
        let after_name = c.peek();
        if !matches!(after_name, None | Some(b' ' | b'\t')) {
            return Err(format!(
                "invalid character `{}` in metric name of {keyword} line",
                c.char_at_pos()
            ));
        }
        c.skip_blanks();
        let idx = self.family(name);
        self.current = Some(idx);
        match keyword {
            "HELP" => {
                let family = &mut self.families[idx];
                if family.help.is_none() {
                    family.help = Some(unescape_help(c.rest()));
                }
            }
            "UNIT" => {
                let unit = c.token();
                c.skip_blanks();
                if !c.at_end() {
                    return Err("unexpected text after the unit".into());
                }
                let family = &mut self.families[idx];
                if family.unit.is_none() && !unit.is_empty() {
                    family.unit = Some(Cow::Borrowed(unit));
                }
            }
            _ => {
                let token = c.token();
                if token.is_empty() {
                    return Err("missing metric type in TYPE line".into());
                }
                let kind = MetricKind::from_type_token(token)
                    .ok_or_else(|| format!("unknown metric type `{token}`"))?;
                c.skip_blanks();
                if !c.at_end() {
                    return Err("unexpected text after the metric type".into());
                }
                let family = &mut self.families[idx];
                let meta = &mut self.meta[idx];
                if meta.typed {
                    if family.kind != kind {
                        return Err(format!(
                            "conflicting TYPE for `{}`: already declared {}",
                            family.name, family.kind
                        ));
                    }
                } else if !family.samples.is_empty() {
                    return Err(format!("TYPE line for `{}` after its samples", family.name));
                } else {
                    family.kind = kind;
                    meta.typed = true;
                }
            }
        }
        Ok(())
    }

    fn sample(&mut self, mut c: Cursor<'a>) -> Result<(), Reason> {
        let mut name = None;
        if c.peek() != Some(b'{') {
            let n = match self.current {
                // Sample names usually start with the current family's name: compare it at
                // once rather than byte by byte.
                Some(cur) if self.meta[cur].plain => {
                    c.metric_name_after(self.families[cur].name.as_bytes())
                }
                _ => c.metric_name(),
            };
            if n.is_empty() {
                return Err(format!(
                    "invalid metric name: unexpected character `{}`",
                    c.char_at_pos()
                ));
            }
            name = Some(Cow::Borrowed(n));
            match c.peek() {
                None => return Err("missing value".into()),
                Some(b' ' | b'\t' | b'{') => c.skip_blanks(),
                Some(_) => {
                    return Err(format!(
                        "invalid character `{}` in metric name",
                        c.char_at_pos()
                    ))
                }
            }
        }
        let mut labels = Vec::new();
        if c.peek() == Some(b'{') {
            c.pos += 1;
            c.labels(&mut labels, Some(&mut name))?;
        }
        let name = name.ok_or("missing metric name")?;
        c.skip_blanks();
        if c.at_end() {
            return Err("missing value".into());
        }
        let token = c.token();
        let value = parse_float(token).ok_or_else(|| format!("invalid value `{token}`"))?;
        c.skip_blanks();
        let mut timestamp = None;
        if !c.at_end() && c.peek() != Some(b'#') {
            timestamp = Some(c.timestamp()?);
            c.skip_blanks();
        }
        if c.peek() == Some(b'#') {
            c.pos += 1;
            c.exemplar()?;
        }
        if !c.at_end() {
            return Err(format!(
                "unexpected text `{}` after the sample",
                truncate_token(c.rest())
            ));
        }
        let idx = match self.resolve(&name)? {
            Some(idx) => idx,
            None => self.create(name.clone()),
        };
        self.current = Some(idx);
        self.families[idx].samples.push(ParsedSample {
            name,
            labels,
            value,
            timestamp,
        });
        Ok(())
    }

    /// The family a sample named `name` belongs to, if there is one: the family of that name,
    /// else a family owning the name as one of its series (e.g. `x` for `x_bucket`).
    fn resolve(&self, name: &str) -> Result<Option<usize>, Reason> {
        if let Some(cur) = self.current {
            let family = &self.families[cur];
            if !self.meta[cur].ambiguous && family.series_suffix(name).is_some() {
                return Ok(Some(cur));
            }
        }
        if let Some(&idx) = self.index.get(name) {
            let family = &self.families[idx];
            if family.kind.accepts_suffix("") {
                return Ok(Some(idx));
            }
            return Err(format!(
                "sample `{name}` is not a series of {} `{}` (a suffix such as `_sum` is missing)",
                family.kind, family.name
            ));
        }
        for suffix in SUFFIXES {
            if let Some(base) = name.strip_suffix(suffix) {
                if let Some(&idx) = self.index.get(base) {
                    if self.families[idx].kind.accepts_suffix(suffix) {
                        return Ok(Some(idx));
                    }
                }
            }
        }
        Ok(None)
    }

    /// The family named `name`, created (untyped, no samples) if there is none.
    fn family(&mut self, name: Cow<'a, str>) -> usize {
        match self.index.get(name.as_ref()) {
            Some(&idx) => idx,
            None => self.create(name),
        }
    }

    fn create(&mut self, name: Cow<'a, str>) -> usize {
        let idx = self.families.len();
        let mut meta = FamilyMeta {
            plain: Cursor::new(&name).metric_name().len() == name.len(),
            ..FamilyMeta::default()
        };
        // Mark families whose series could be confused with this one's name, both ways.
        for suffix in SUFFIXES {
            if let Some(base) = name.strip_suffix(suffix) {
                if let Some(&other) = self.index.get(base) {
                    self.meta[other].ambiguous = true;
                    meta.ambiguous = true;
                }
            }
            self.scratch.clear();
            self.scratch.push_str(&name);
            self.scratch.push_str(suffix);
            if let Some(&other) = self.index.get(self.scratch.as_str()) {
                self.meta[other].ambiguous = true;
                meta.ambiguous = true;
            }
        }
        self.index.insert(name.clone(), idx);
        self.meta.push(meta);
        self.families.push(MetricFamily {
            name,
            kind: MetricKind::Untyped,
            help: None,
            unit: None,
            samples: Vec::new(),
        });
        idx
    }
}

/// Bytes allowed in a metric name after the first one: `[a-zA-Z0-9_:]`.
const METRIC_NAME: [bool; 256] = byte_class(true);
/// Bytes allowed in a label name after the first one: `[a-zA-Z0-9_]`.
const LABEL_NAME: [bool; 256] = byte_class(false);

const fn byte_class(colon: bool) -> [bool; 256] {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric() || c == b'_' || (colon && c == b':');
        b += 1;
    }
    table
}

/// A position in one line. Every position it stops at is next to an ASCII byte, hence a char
/// boundary, so slicing the line there cannot panic.
struct Cursor<'a> {
    line: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(line: &'a str) -> Self {
        Cursor { line, pos: 0 }
    }

    fn bytes(&self) -> &'a [u8] {
        self.line.as_bytes()
    }

    fn peek(&self) -> Option<u8> {
        self.bytes().get(self.pos).copied()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.line.len()
    }

    fn rest(&self) -> &'a str {
        &self.line[self.pos..]
    }

    /// The character at the cursor, for error messages (`end of line` past the end).
    fn char_at_pos(&self) -> String {
        self.rest()
            .chars()
            .next()
            .map_or_else(|| "end of line".to_owned(), |c| c.to_string())
    }

    fn skip_blanks(&mut self) {
        while let Some(b' ' | b'\t') = self.peek() {
            self.pos += 1;
        }
    }

    /// Everything up to the next blank or the end of the line.
    fn token(&mut self) -> &'a str {
        let bytes = self.bytes();
        let start = self.pos;
        let mut end = start;
        while end < bytes.len() && !matches!(bytes[end], b' ' | b'\t') {
            end += 1;
        }
        self.pos = end;
        &self.line[start..end]
    }

    /// A run of `table` bytes whose first byte is not a digit.
    fn name_in(&mut self, table: &[bool; 256]) -> &'a str {
        let bytes = self.bytes();
        let start = self.pos;
        match bytes.get(start) {
            Some(b) if !b.is_ascii_digit() => {}
            _ => return "",
        }
        let mut end = start;
        while end < bytes.len() && table[bytes[end] as usize] {
            end += 1;
        }
        self.pos = end;
        &self.line[start..end]
    }

    /// Like [`Cursor::metric_name`], skipping the scan of `prefix` (a valid metric name) if
    /// the name starts with it.
    fn metric_name_after(&mut self, prefix: &[u8]) -> &'a str {
        let start = self.pos;
        if !prefix.is_empty() && self.bytes()[start..].starts_with(prefix) {
            let bytes = self.bytes();
            let mut end = start + prefix.len();
            while end < bytes.len() && METRIC_NAME[bytes[end] as usize] {
                end += 1;
            }
            self.pos = end;
            return &self.line[start..end];
        }
        self.metric_name()
    }

    fn metric_name(&mut self) -> &'a str {
        self.name_in(&METRIC_NAME)
    }

    /// The metric name of a HELP/TYPE/UNIT line: plain or a quoted UTF-8 name.
    fn metadata_name(&mut self, keyword: &str) -> Result<Cow<'a, str>, Reason> {
        if self.peek() == Some(b'"') {
            self.pos += 1;
            return self.quoted();
        }
        let name = self.metric_name();
        if name.is_empty() {
            return Err(if self.at_end() {
                format!("missing metric name in {keyword} line")
            } else {
                format!(
                    "invalid metric name in {keyword} line: unexpected character `{}`",
                    self.char_at_pos()
                )
            });
        }
        Ok(Cow::Borrowed(name))
    }

    /// Parses labels after the opening `{` up to and including the closing `}`. When `name` is
    /// given and still `None`, a leading quoted string without `=` is taken as the metric name.
    fn labels(
        &mut self,
        out: &mut Vec<(Cow<'a, str>, Cow<'a, str>)>,
        mut name: Option<&mut Option<Cow<'a, str>>>,
    ) -> Result<(), Reason> {
        loop {
            self.skip_blanks();
            let label = match self.peek() {
                None => return Err("unterminated label set: missing `}`".into()),
                Some(b'}') => {
                    self.pos += 1;
                    break;
                }
                Some(b'"') => {
                    self.pos += 1;
                    let quoted = self.quoted()?;
                    self.skip_blanks();
                    if matches!(self.peek(), Some(b',' | b'}')) && out.is_empty() {
                        if let Some(slot) = name.as_deref_mut().filter(|slot| slot.is_none()) {
                            *slot = Some(quoted);
                            if self.peek() == Some(b',') {
                                self.pos += 1;
                            }
                            continue;
                        }
                    }
                    quoted
                }
                Some(_) => {
                    let label = self.name_in(&LABEL_NAME);
                    if label.is_empty() {
                        return Err(format!(
                            "invalid label name: unexpected character `{}`",
                            self.char_at_pos()
                        ));
                    }
                    Cow::Borrowed(label)
                }
            };
            self.skip_blanks();
            if self.peek() != Some(b'=') {
                return Err(format!(
                    "expected `=` after label name `{label}`, found `{}`",
                    self.char_at_pos()
                ));
            }
            self.pos += 1;
            self.skip_blanks();
            if self.peek() != Some(b'"') {
                return Err(format!(
                    "expected `\"` to open the value of label `{label}`, found `{}`",
                    self.char_at_pos()
                ));
            }
            self.pos += 1;
            let value = self.quoted()?;
            out.push((label, value));
            self.skip_blanks();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    break;
                }
                None => return Err("unterminated label set: missing `}`".into()),
                Some(_) => {
                    return Err(format!(
                        "expected `,` or `}}` after the value of label `{}`, found `{}`",
                        out[out.len() - 1].0,
                        self.char_at_pos()
                    ))
                }
            }
        }
        check_duplicate_labels(out)
    }

    /// A quoted string after its opening `"`, up to and including the closing `"`; unescapes
    /// `\\`, `\"` and `\n`.
    fn quoted(&mut self) -> Result<Cow<'a, str>, Reason> {
        let bytes = self.bytes();
        let start = self.pos;
        let mut i = start;
        while i < bytes.len() {
            match bytes[i] {
                b'"' => {
                    self.pos = i + 1;
                    return Ok(Cow::Borrowed(&self.line[start..i]));
                }
                b'\\' => return self.quoted_escaped(start, i).map(Cow::Owned),
                _ => i += 1,
            }
        }
        Err("unterminated quoted string: missing closing `\"`".into())
    }

    fn quoted_escaped(&mut self, start: usize, first_escape: usize) -> Result<String, Reason> {
        let bytes = self.bytes();
        let mut out = String::with_capacity(first_escape - start + 16);
        out.push_str(&self.line[start..first_escape]);
        let mut i = first_escape;
        let mut segment = i;
        while i < bytes.len() {
            match bytes[i] {
                b'"' => {
                    out.push_str(&self.line[segment..i]);
                    self.pos = i + 1;
                    return Ok(out);
                }
                b'\\' => {
                    out.push_str(&self.line[segment..i]);
                    match bytes.get(i + 1) {
                        Some(b'\\') => out.push('\\'),
                        Some(b'"') => out.push('"'),
                        Some(b'n') => out.push('\n'),
                        Some(_) => {
                            let c = self.line[i + 1..].chars().next().unwrap_or('?');
                            return Err(format!("invalid escape sequence `\\{c}`"));
                        }
                        None => break,
                    }
                    i += 2;
                    segment = i;
                }
                _ => i += 1,
            }
        }
        Err("unterminated quoted string: missing closing `\"`".into())
    }

    fn timestamp(&mut self) -> Result<f64, Reason> {
        let token = self.token();
        match parse_float(token) {
            Some(ts) if ts.is_finite() => Ok(ts),
            _ => Err(format!("invalid timestamp `{}`", truncate_token(token))),
        }
    }

    /// An OpenMetrics exemplar after its `#`: `{labels} value [timestamp]`. Validated, then
    /// discarded.
    fn exemplar(&mut self) -> Result<(), Reason> {
        self.skip_blanks();
        if self.peek() != Some(b'{') {
            return Err("invalid exemplar: expected `{` after `#`".into());
        }
        self.pos += 1;
        let mut labels = Vec::new();
        self.labels(&mut labels, None)?;
        self.skip_blanks();
        let token = self.token();
        if parse_float(token).is_none() {
            return Err(format!(
                "invalid exemplar value `{}`",
                truncate_token(token)
            ));
        }
        self.skip_blanks();
        if !self.at_end() {
            self.timestamp()?;
            self.skip_blanks();
        }
        Ok(())
    }
}

fn check_duplicate_labels(labels: &[(Cow<'_, str>, Cow<'_, str>)]) -> Result<(), Reason> {
    let duplicate = if labels.len() <= 16 {
        labels
            .iter()
            .enumerate()
            .find(|(i, (name, _))| labels[..*i].iter().any(|(other, _)| other == name))
            .map(|(_, (name, _))| name)
    } else {
        let mut seen = std::collections::HashSet::with_capacity(labels.len());
        labels
            .iter()
            .map(|(name, _)| name)
            .find(|&name| !seen.insert(name.as_ref()))
    };
    match duplicate {
        Some(name) => Err(format!("duplicate label `{name}`")),
        None => Ok(()),
    }
}

/// Unescapes a HELP text: `\\`, `\n` and (OpenMetrics) `\"`; other backslashes stay as written.
fn unescape_help(text: &str) -> Cow<'_, str> {
    if !text.contains('\\') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.clone().next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('"') => out.push('"'),
            _ => {
                out.push('\\');
                continue;
            }
        }
        chars.next();
    }
    Cow::Owned(out)
}

/// Parses a sample value or timestamp: decimal or exponent notation, `+Inf`, `-Inf`, `NaN`
/// (case-insensitive, as Go's `strconv.ParseFloat` which Prometheus uses).
fn parse_float(token: &str) -> Option<f64> {
    let bytes = token.as_bytes();
    // Fast path: short unsigned integers (most counters, buckets and timestamps) are exact.
    if !bytes.is_empty() && bytes.len() <= 15 && bytes.iter().all(u8::is_ascii_digit) {
        let mut n = 0u64;
        for &b in bytes {
            n = n * 10 + u64::from(b - b'0');
        }
        return Some(n as f64);
    }
    token.parse().ok()
}

fn truncate_token(token: &str) -> &str {
    let mut end = token.len().min(40);
    while !token.is_char_boundary(end) {
        end -= 1;
    }
    &token[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> Vec<MetricFamily<'_>> {
        match parse(text) {
            Ok(families) => families,
            Err(err) => panic!("unexpected error: {err}"),
        }
    }

    fn err(text: &str) -> ParseError {
        match parse(text) {
            Ok(families) => panic!("expected an error, got {families:?}"),
            Err(err) => err,
        }
    }

    fn labels<'s>(sample: &'s ParsedSample<'_>) -> Vec<(&'s str, &'s str)> {
        sample
            .labels
            .iter()
            .map(|(n, v)| (n.as_ref(), v.as_ref()))
            .collect()
    }

    #[test]
    fn empty_and_comment_only_inputs() {
        assert!(ok("").is_empty());
        assert!(ok("\n\n  \n\t\n").is_empty());
        assert!(ok("# just a comment\n#another\n# HELPER not help\n").is_empty());
    }

    #[test]
    fn untyped_samples_form_their_own_families() {
        let families = ok("a 1\nb 2\na 3\n");
        assert_eq!(families.len(), 2);
        assert_eq!(families[0].name, "a");
        assert_eq!(families[0].kind, MetricKind::Untyped);
        assert_eq!(families[0].samples.len(), 2);
        assert_eq!(families[0].samples[1].value, 3.0);
        assert_eq!(families[1].name, "b");
        assert_eq!(families[1].help, None);
    }

    #[test]
    fn help_and_type_with_counter() {
        let text = "# HELP http_requests_total The total number of HTTP requests.\n\
                    # TYPE http_requests_total counter\n\
                    http_requests_total{method=\"post\",code=\"200\"} 1027 1395066363000\n\
                    http_requests_total{method=\"post\",code=\"400\"}    3 1395066363000\n";
        let families = ok(text);
        assert_eq!(families.len(), 1);
        let family = &families[0];
        assert_eq!(family.name, "http_requests_total");
        assert_eq!(family.kind, MetricKind::Counter);
        assert_eq!(
            family.help.as_deref(),
            Some("The total number of HTTP requests.")
        );
        assert_eq!(family.samples.len(), 2);
        let sample = &family.samples[0];
        assert_eq!(sample.name, "http_requests_total");
        assert_eq!(labels(sample), [("method", "post"), ("code", "200")]);
        assert_eq!(sample.value, 1027.0);
        assert_eq!(sample.timestamp, Some(1_395_066_363_000.0));
        assert_eq!(family.samples[1].value, 3.0);
    }

    #[test]
    fn escaped_label_values_are_unescaped() {
        let text = r#"msdos_file_access_time_seconds{path="C:\\DIR\\FILE.TXT",error="Cannot find file:\n\"FILE.TXT\""} 1.458255915e9"#;
        let families = ok(text);
        let sample = &families[0].samples[0];
        assert_eq!(sample.label("path"), Some(r"C:\DIR\FILE.TXT"));
        assert_eq!(
            sample.label("error"),
            Some("Cannot find file:\n\"FILE.TXT\"")
        );
        assert_eq!(sample.value, 1.458255915e9);
        assert!(matches!(sample.labels[0].1, Cow::Owned(_)));
    }

    #[test]
    fn unescaped_values_borrow_from_the_input() {
        let families = ok("x{a=\"plain\"} 1");
        let sample = &families[0].samples[0];
        assert!(matches!(sample.name, Cow::Borrowed(_)));
        assert!(matches!(sample.labels[0].0, Cow::Borrowed(_)));
        assert!(matches!(sample.labels[0].1, Cow::Borrowed(_)));
        assert!(matches!(families[0].name, Cow::Borrowed(_)));
    }

    #[test]
    fn special_float_values_and_exponents() {
        let text = "a +Inf\nb -Inf\nc NaN\nd 1e3\ne -1.5E-3\nf .5\ng Inf\nh nan\ni 0\nj -0\nk 12345678901234567890\n";
        let families = ok(text);
        let value = |i: usize| families[i].samples[0].value;
        assert_eq!(value(0), f64::INFINITY);
        assert_eq!(value(1), f64::NEG_INFINITY);
        assert!(value(2).is_nan());
        assert_eq!(value(3), 1000.0);
        assert_eq!(value(4), -0.0015);
        assert_eq!(value(5), 0.5);
        assert_eq!(value(6), f64::INFINITY);
        assert!(value(7).is_nan());
        assert_eq!(value(8), 0.0);
        assert!(value(9) == 0.0 && value(9).is_sign_negative());
        assert_eq!(value(10), 12_345_678_901_234_567_890.0);
    }

    #[test]
    fn timestamps_integer_negative_and_fractional() {
        let families = ok("a 1 1700000000000\nb 2 -5\nc 3 1700000000.25\n");
        assert_eq!(families[0].samples[0].timestamp, Some(1_700_000_000_000.0));
        assert_eq!(families[1].samples[0].timestamp, Some(-5.0));
        assert_eq!(families[2].samples[0].timestamp, Some(1_700_000_000.25));
        let e = err("a 1 NaN\n");
        assert_eq!(e.line, 1);
        assert!(e.reason.contains("invalid timestamp"), "{e}");
        let e = err("a 1 12x\n");
        assert!(e.reason.contains("invalid timestamp"), "{e}");
    }

    #[test]
    fn help_escapes() {
        let families =
            ok("# HELP a Line one\\nline two \\\\ back \\\"q\\\" \\x\n# HELP b\n# HELP c  \n");
        assert_eq!(
            families[0].help.as_deref(),
            Some("Line one\nline two \\ back \"q\" \\x")
        );
        assert_eq!(families[1].help.as_deref(), Some(""));
        assert_eq!(families[2].help.as_deref(), Some(""));
        assert!(families.iter().all(|f| f.samples.is_empty()));
        // Only the first HELP line counts.
        let families = ok("# HELP a first\n# HELP a second\n");
        assert_eq!(families[0].help.as_deref(), Some("first"));
    }

    #[test]
    fn comments_blank_lines_and_whitespace() {
        let text = "\n# a comment\n  # indented comment\n\t\nfoo   {  a = \"1\" ,  b=\"2\" , }\t 7 \t\n\r\nbar{} 1\r\n";
        let families = ok(text);
        assert_eq!(families.len(), 2);
        assert_eq!(labels(&families[0].samples[0]), [("a", "1"), ("b", "2")]);
        assert_eq!(families[0].samples[0].value, 7.0);
        assert!(families[1].samples[0].labels.is_empty());
    }

    const HISTOGRAM: &str =
        "# HELP http_request_duration_seconds A histogram of the request duration.
# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_bucket{le=\"0.05\"} 24054
http_request_duration_seconds_bucket{le=\"0.1\"} 33444
http_request_duration_seconds_bucket{le=\"0.2\"} 100392
http_request_duration_seconds_bucket{le=\"+Inf\"} 144320
http_request_duration_seconds_sum 53423
http_request_duration_seconds_count 144320
# HELP rpc_duration_seconds A summary of the RPC duration in seconds.
# TYPE rpc_duration_seconds summary
rpc_duration_seconds{quantile=\"0.01\"} 3102
rpc_duration_seconds{quantile=\"0.5\"} 4773
rpc_duration_seconds{quantile=\"0.99\"} 76656
rpc_duration_seconds_sum 1.7560473e+07
rpc_duration_seconds_count 2693
";

    #[test]
    fn histogram_and_summary_families_own_their_series() {
        let families = ok(HISTOGRAM);
        assert_eq!(families.len(), 2);
        let h = &families[0];
        assert_eq!(h.name, "http_request_duration_seconds");
        assert_eq!(h.kind, MetricKind::Histogram);
        assert_eq!(h.samples.len(), 6);
        assert_eq!(h.samples[0].name, "http_request_duration_seconds_bucket");
        assert_eq!(h.samples[3].label("le"), Some("+Inf"));
        assert_eq!(h.samples[4].name, "http_request_duration_seconds_sum");
        assert_eq!(h.samples[4].value, 53423.0);
        assert_eq!(h.series_suffix(&h.samples[5].name), Some("_count"));
        let s = &families[1];
        assert_eq!(s.kind, MetricKind::Summary);
        assert_eq!(s.samples.len(), 5);
        assert_eq!(s.series_suffix(&s.samples[0].name), Some(""));
        assert_eq!(s.samples[3].value, 1.7560473e7);
    }

    #[test]
    fn non_contiguous_samples_join_their_family() {
        let families = ok("# TYPE h histogram\nh_sum 1\n# TYPE g gauge\ng 2\nh_count 3\nh_bucket{le=\"+Inf\"} 3\n");
        assert_eq!(families.len(), 2);
        assert_eq!(families[0].samples.len(), 3);
        assert_eq!(families[1].samples.len(), 1);
    }

    #[test]
    fn series_of_undeclared_or_other_kinds_form_own_families() {
        // `g_sum` is not a series of gauge `g`; `u_count` is not one of untyped `u`.
        let families = ok("# TYPE g gauge\ng 1\ng_sum 2\nu 1\nu_count 2\n");
        let names: Vec<&str> = families.iter().map(|f| f.name.as_ref()).collect();
        assert_eq!(names, ["g", "g_sum", "u", "u_count"]);
    }

    #[test]
    fn exact_family_name_wins_over_suffix() {
        let text = "# TYPE x summary\n# TYPE x_count gauge\nx_count 5\nx_sum 1\nx{quantile=\"0.5\"} 2\nx_count 9\n";
        let families = ok(text);
        assert_eq!(families.len(), 2);
        let x = &families[0];
        let x_count = &families[1];
        assert_eq!(x_count.kind, MetricKind::Gauge);
        assert_eq!(
            x_count.samples.iter().map(|s| s.value).collect::<Vec<_>>(),
            [5.0, 9.0]
        );
        assert_eq!(
            x.samples.iter().map(|s| s.value).collect::<Vec<_>>(),
            [1.0, 2.0]
        );
    }

    #[test]
    fn openmetrics_counter_info_stateset_gaugehistogram_and_eof() {
        let text = "# TYPE foo counter
# UNIT foo seconds
# HELP foo Total \\\"time\\\".
foo_total{a=\"1\"} 17.0 1520879607.789 # {trace_id=\"KOO5S4vxi0o\"} 0.67
foo_created{a=\"1\"} 1520430000.123
# TYPE build info
build_info{version=\"1.2\"} 1
# TYPE state stateset
state{state=\"a\"} 1
state{state=\"b\"} 0
# TYPE queue gaugehistogram
queue_bucket{le=\"1\"} 2
queue_bucket{le=\"+Inf\"} 3
queue_gsum 4
queue_gcount 3
# TYPE other unknown
other 5
# EOF
";
        let families = ok(text);
        let kinds: Vec<(&str, MetricKind)> =
            families.iter().map(|f| (f.name.as_ref(), f.kind)).collect();
        assert_eq!(
            kinds,
            [
                ("foo", MetricKind::Counter),
                ("build", MetricKind::Info),
                ("state", MetricKind::StateSet),
                ("queue", MetricKind::GaugeHistogram),
                ("other", MetricKind::Untyped),
            ]
        );
        let foo = &families[0];
        assert_eq!(foo.unit.as_deref(), Some("seconds"));
        assert_eq!(foo.help.as_deref(), Some("Total \"time\"."));
        assert_eq!(foo.samples.len(), 2);
        assert_eq!(foo.samples[0].name, "foo_total");
        assert_eq!(foo.samples[0].timestamp, Some(1_520_879_607.789));
        assert_eq!(foo.series_suffix("foo_created"), Some("_created"));
        assert_eq!(families[3].samples.len(), 4);
    }

    #[test]
    fn content_after_eof_is_an_error_but_blank_lines_are_not() {
        assert!(ok("a 1\n# EOF\n\n  \n").len() == 1);
        let e = err("a 1\n# EOF\nb 2\n");
        assert_eq!(e.line, 3);
        assert!(e.reason.contains("EOF"), "{e}");
        // `# EOF` followed by text is an ordinary comment.
        assert_eq!(ok("# EOF not really\na 1\n").len(), 1);
    }

    #[test]
    fn exemplars_are_validated_and_skipped() {
        let families = ok("# TYPE h histogram\nh_bucket{le=\"1\"} 2 # {id=\"x\"} 0.5 123.4\nh_bucket{le=\"+Inf\"} 3 #{} 1\n");
        assert_eq!(families[0].samples.len(), 2);
        let e = err("a 1 # id=\"x\" 1\n");
        assert!(e.reason.contains("exemplar"), "{e}");
        let e = err("a 1 # {id=\"x\"}\n");
        assert!(e.reason.contains("exemplar value"), "{e}");
        let e = err("a 1 # {id=\"x\"} 1 x\n");
        assert!(e.reason.contains("invalid timestamp"), "{e}");
        let e = err("a 1 # {id=\"x\"} 1 2 3\n");
        assert!(e.reason.contains("unexpected text `3`"), "{e}");
    }

    #[test]
    fn quoted_utf8_names() {
        let text = "# TYPE \"my.metric\" gauge\n{\"my.metric\", \"my.label\"=\"v\", b=\"c\"} 1\n{\"other.metric\"} 2\n";
        let families = ok(text);
        assert_eq!(families.len(), 2);
        assert_eq!(families[0].name, "my.metric");
        assert_eq!(families[0].kind, MetricKind::Gauge);
        assert_eq!(
            labels(&families[0].samples[0]),
            [("my.label", "v"), ("b", "c")]
        );
        assert_eq!(families[1].name, "other.metric");
        let e = err("{a=\"b\"} 1\n");
        assert!(e.reason.contains("missing metric name"), "{e}");
        let e = err("x{\"y\"} 1\n");
        assert!(e.reason.contains("expected `=`"), "{e}");
    }

    #[test]
    fn type_errors() {
        let e = err("# TYPE a gauge\n# TYPE a counter\n");
        assert_eq!(e.line, 2);
        assert!(e.reason.contains("conflicting TYPE"), "{e}");
        assert_eq!(ok("# TYPE a gauge\n# TYPE a gauge\na 1\n").len(), 1);
        let e = err("a 1\n# TYPE a gauge\n");
        assert_eq!(e.line, 2);
        assert!(e.reason.contains("after its samples"), "{e}");
        let e = err("# TYPE a histo\n");
        assert!(e.reason.contains("unknown metric type `histo`"), "{e}");
        let e = err("# TYPE a\n");
        assert!(e.reason.contains("missing metric type"), "{e}");
        let e = err("# TYPE a gauge extra\n");
        assert!(e.reason.contains("unexpected text"), "{e}");
        let e = err("# TYPE\n");
        assert!(e.reason.contains("missing metric name"), "{e}");
        let e = err("# HELP 1abc x\n");
        assert!(e.reason.contains("invalid metric name"), "{e}");
        let e = err("# HELP a-b x\n");
        assert!(e.reason.contains("invalid character `-`"), "{e}");
        assert_eq!(ok("# TYPE A COUNTER\nA 1\n")[0].kind, MetricKind::Counter);
    }

    #[test]
    fn histogram_sample_without_suffix_is_an_error() {
        let e = err("# TYPE h histogram\nh 1\n");
        assert_eq!(e.line, 2);
        assert!(e.reason.contains("not a series of histogram `h`"), "{e}");
    }

    #[test]
    fn missing_value_names_the_line() {
        let e = err("# TYPE a gauge\na 1\nb\n");
        assert_eq!(e.line, 3);
        assert_eq!(e.text, "b");
        assert_eq!(e.reason, "missing value");
        let e = err("a{b=\"c\"}   \n");
        assert_eq!(e.line, 1);
        assert_eq!(e.reason, "missing value");
        let e = err("a{b=\"c\"}");
        assert_eq!(e.reason, "missing value");
    }

    #[test]
    fn bad_label_syntax() {
        let cases = [
            ("a{b} 1", "expected `=` after label name `b`"),
            ("a{b=c} 1", "expected `\"` to open the value of label `b`"),
            ("a{=\"c\"} 1", "invalid label name"),
            ("a{1b=\"c\"} 1", "invalid label name"),
            (
                "a{b=\"c\" d=\"e\"} 1",
                "expected `,` or `}` after the value of label `b`",
            ),
            ("a{b=\"c\"", "unterminated label set"),
            ("a{b=\"c\",", "unterminated label set"),
            ("a{b=\"c\",b=\"d\"} 1", "duplicate label `b`"),
            ("a{b=\"c\\t\"} 1", "invalid escape sequence `\\t`"),
            ("a{b-c=\"d\"} 1", "expected `=` after label name `b`"),
        ];
        for (text, reason) in cases {
            let e = err(text);
            assert_eq!(e.line, 1, "{text}");
            assert!(e.reason.contains(reason), "{text}: {e}");
        }
    }

    #[test]
    fn duplicate_labels_in_large_label_sets() {
        let mut text = String::from("a{");
        for i in 0..40 {
            text.push_str(&format!("l{i}=\"v\","));
        }
        text.push_str("l7=\"x\"} 1");
        assert!(err(&text).reason.contains("duplicate label `l7`"));
    }

    #[test]
    fn unterminated_quote() {
        let e = err("ok 1\na{b=\"c} 1\n");
        assert_eq!(e.line, 2);
        assert!(e.reason.contains("unterminated quoted string"), "{e}");
        let e = err("a{b=\"c\\\"} 1\n");
        assert!(e.reason.contains("unterminated quoted string"), "{e}");
        let e = err("a{b=\"c\\");
        assert!(e.reason.contains("unterminated quoted string"), "{e}");
    }

    #[test]
    fn bad_float() {
        for (text, token) in [
            ("a 1.2.3", "1.2.3"),
            ("a abc", "abc"),
            ("a 0x10", "0x10"),
            ("a{b=\"c\"} --1", "--1"),
            ("a 1,5", "1,5"),
        ] {
            let e = err(text);
            assert_eq!(e.reason, format!("invalid value `{token}`"), "{text}");
        }
    }

    #[test]
    fn bad_names_and_trailing_text() {
        let e = err("1abc 1\n");
        assert!(e.reason.contains("invalid metric name"), "{e}");
        let e = err("a-b 1\n");
        assert!(
            e.reason.contains("invalid character `-` in metric name"),
            "{e}"
        );
        let e = err("a 1 2 3\n");
        assert!(e.reason.contains("unexpected text `3`"), "{e}");
        let e = err("a{b=\"c\"}x 1\n");
        assert!(e.reason.contains("invalid value `x`"), "{e}");
    }

    #[test]
    fn error_text_is_truncated_on_a_char_boundary() {
        let long = format!("a{{b=\"{}", "é".repeat(200));
        let e = err(&long);
        assert!(e.text.len() <= MAX_ERROR_TEXT + "…".len());
        assert!(e.text.ends_with('…'));
        assert!(e.to_string().contains("line 1"));
    }

    #[test]
    fn parse_bytes_reports_invalid_utf8_line() {
        let bytes = b"a 1\nb{c=\"\xff\"} 2\nd 3\n";
        let e = parse_bytes(bytes).unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.reason.contains("invalid UTF-8"), "{e}");
        assert!(e.text.starts_with("b{c=\""), "{e}");
        assert_eq!(parse_bytes(b"a 1\n").unwrap().len(), 1);
    }

    #[test]
    fn into_owned_keeps_everything() {
        let text = String::from(HISTOGRAM);
        let owned: Vec<MetricFamily<'static>> = parse(&text)
            .unwrap()
            .into_iter()
            .map(MetricFamily::into_owned)
            .collect();
        drop(text);
        assert_eq!(owned, parse(HISTOGRAM).unwrap());
        assert_eq!(
            owned[1].samples[0].labels_map(),
            BTreeMap::from([("quantile".to_owned(), "0.01".to_owned())])
        );
    }

    #[test]
    fn kind_names_round_trip() {
        for kind in [
            MetricKind::Counter,
            MetricKind::Gauge,
            MetricKind::Histogram,
            MetricKind::Summary,
            MetricKind::Untyped,
            MetricKind::Info,
            MetricKind::StateSet,
            MetricKind::GaugeHistogram,
        ] {
            assert_eq!(MetricKind::from_type_token(kind.as_str()), Some(kind));
            assert_eq!(kind.to_string(), kind.as_str());
        }
    }

    #[test]
    fn float_fast_path_agrees_with_std() {
        for s in ["0", "7", "000123", "999999999999999", "1234567890123456"] {
            assert_eq!(parse_float(s), s.parse().ok(), "{s}");
        }
        assert_eq!(parse_float(""), None);
    }
}
