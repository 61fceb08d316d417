//! Charts of time series (the results of range queries), written as PNG images.
//!
//! A [`Chart`] stacks one [`Panel`] per query vertically. All panels share one x axis, in
//! seconds since the first finite point of the whole chart (its wall-clock time is named in
//! the axis description), so that effects line up across panels; each panel's y axis is
//! ranged on its own data. Every series is a line in a distinct colour, listed in the panel's
//! legend under [`Series::legend`].
//!
//! Points whose time or value is NaN or infinite are skipped and leave a gap in their line;
//! a point with no finite neighbour is drawn as a dot; a series without points still gets a
//! legend entry, marked `(no data)`; a panel without series is drawn empty.
//!
//! # Fonts
//!
//! Text (title, captions, tick labels, legends) needs a TrueType or OpenType font, which is
//! read once per process from the file named by `$E2EKIT_CHART_FONT` ([`FONT_ENV`]) or else
//! from the first of a few common system locations that exists (DejaVu Sans, Liberation Sans,
//! Noto Sans, FreeSans, Arial). On Debian and Ubuntu, the package `fonts-dejavu-core` provides
//! `/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf`. Without a usable font the chart is still
//! written, with its lines, grid and axes but no text at all, and a warning is logged through
//! `tracing`.
//!
//! ```no_run
//! use std::collections::BTreeMap;
//! use e2ekit::monitoring::chart::Chart;
//! use e2ekit::monitoring::Series;
//!
//! # fn main() -> e2ekit::Result<()> {
//! // Usually the result of a range query against the monitoring Prometheus.
//! let rate = vec![Series {
//!     labels: BTreeMap::from([("code".to_string(), "200".to_string())]),
//!     points: vec![(1_700_000_000.0, 9.5), (1_700_000_001.0, 10.25), (1_700_000_002.0, 11.0)],
//! }];
//! Chart::new("demo-app under load")
//!     .panel("requests", "req/s", rate)
//!     .write_png("target/load.png")?;
//! # Ok(())
//! # }
//! ```

use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{register_font, FontStyle};

use crate::error::{Error, Result};
use crate::prometheus::Series;

/// Environment variable naming the font file used for chart text; it takes precedence over
/// the system locations searched by default. Read once, at the first chart of the process.
pub const FONT_ENV: &str = "E2EKIT_CHART_FONT";

/// Where fonts are looked for when [`FONT_ENV`] is unset or unusable, in order.
const FONT_PATHS: &[&str] = &[
    // Debian, Ubuntu (fonts-dejavu-core)
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    // Fedora, RHEL (dejavu-sans-fonts)
    "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    // Arch (ttf-dejavu), Alpine (font-dejavu)
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    // Debian, Ubuntu (fonts-liberation, fonts-noto-core, fonts-freefont-ttf)
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf",
    "/usr/share/fonts/truetype/freefont/FreeSans.ttf",
    // Fedora (liberation-sans-fonts, google-noto-sans-fonts)
    "/usr/share/fonts/liberation-sans/LiberationSans-Regular.ttf",
    "/usr/share/fonts/google-noto/NotoSans-Regular.ttf",
    // macOS, Windows
    "/System/Library/Fonts/Supplemental/Arial.ttf",
    "/Library/Fonts/Arial.ttf",
    "C:\\Windows\\Fonts\\arial.ttf",
];

/// The name under which the font is registered with plotters (a process-wide table).
const FONT_FAMILY: &str = "e2ekit-chart-sans";

const DEFAULT_WIDTH: u32 = 1000;
const PANEL_HEIGHT: u32 = 300;
const TITLE_HEIGHT: u32 = 40;
const MIN_WIDTH: u32 = 120;
const MIN_PANEL_HEIGHT: u32 = 60;
const MAX_SIDE: u32 = 16_384;
/// Legend entries per panel; the rest are summed up in one `+N more` entry.
const LEGEND_MAX: usize = 12;
/// Legend texts longer than this many characters are cut.
const LEGEND_CHARS: usize = 80;

/// A chart of one or more panels (one panel per query), written as PNG.
///
/// Built with [`Chart::new`], [`Chart::panel`] for each query and optionally
/// [`Chart::size`]; written with [`Chart::write_png`] (or [`Chart::to_png`] for the bytes).
/// The default size is 1000 pixels wide and 300 pixels high per panel plus 40 for the title.
#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    title: String,
    panels: Vec<Panel>,
    /// 0 means automatic.
    width: u32,
    /// 0 means automatic.
    height: u32,
}

/// One panel of a [`Chart`]: the series of one query, on their own y axis.
#[derive(Debug, Clone, PartialEq)]
pub struct Panel {
    /// Caption above the panel, typically the query or what it measures.
    pub title: String,
    /// Unit of the values, shown as the y axis description (may be empty).
    pub unit: String,
    /// The series to draw, one line each.
    pub series: Vec<Series>,
}

impl Chart {
    /// A chart titled `title`, with no panels yet and the automatic size.
    pub fn new(title: impl Into<String>) -> Self {
        Chart {
            title: title.into(),
            panels: Vec::new(),
            width: 0,
            height: 0,
        }
    }

    /// Sets the image size in pixels; a side given as 0 keeps its automatic size (1000 wide,
    /// 300 per panel plus 40 high). [`Chart::write_png`] rejects a width under 120 pixels,
    /// panels under 60 pixels high and sides over 16384 pixels.
    pub fn size(mut self, width: u32, height: u32) -> Self {
        self.width = width;
        self.height = height;
        self
    }

    /// Adds a panel below the existing ones, with its caption, the unit of its values (may be
    /// empty) and its series.
    pub fn panel(
        mut self,
        title: impl Into<String>,
        unit: impl Into<String>,
        series: Vec<Series>,
    ) -> Self {
        self.panels.push(Panel {
            title: title.into(),
            unit: unit.into(),
            series,
        });
        self
    }

    /// The panels, top to bottom.
    pub fn panels(&self) -> &[Panel] {
        &self.panels
    }

    /// Renders the chart and writes it to `path` as a PNG image, replacing any existing file.
    ///
    /// Fails with [`Error::InvalidArgument`] if the chart has no panels or an unusable size,
    /// and with [`Error::Io`] if the file cannot be written. A missing font is not an error:
    /// see the [module documentation](self).
    pub fn write_png(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let bytes = self.to_png()?;
        std::fs::write(path, bytes)
            .map_err(|e| Error::io(format!("writing chart {}", path.display()), e))
    }

    /// Renders the chart and returns the PNG image, e.g. to serve it or attach it to a report.
    /// Fails as [`Chart::write_png`] does, without the file.
    pub fn to_png(&self) -> Result<Vec<u8>> {
        self.render(font_family())?.encode_png()
    }

    /// The image size to draw, validated.
    fn dimensions(&self) -> Result<(u32, u32)> {
        let n = u32::try_from(self.panels.len()).unwrap_or(u32::MAX);
        if n == 0 {
            return Err(Error::InvalidArgument(format!(
                "chart {:?} has no panels; add one with Chart::panel",
                self.title
            )));
        }
        let width = if self.width == 0 {
            DEFAULT_WIDTH
        } else {
            self.width
        };
        let height = if self.height == 0 {
            TITLE_HEIGHT
                .saturating_add(PANEL_HEIGHT.saturating_mul(n))
                .min(MAX_SIDE)
        } else {
            self.height
        };
        if !(MIN_WIDTH..=MAX_SIDE).contains(&width) || height > MAX_SIDE {
            return Err(Error::InvalidArgument(format!(
                "chart {:?}: size {width}x{height} is out of range; each side must be at most \
                 {MAX_SIDE} pixels and the width at least {MIN_WIDTH}",
                self.title
            )));
        }
        if height / n < MIN_PANEL_HEIGHT {
            return Err(Error::InvalidArgument(format!(
                "chart {:?}: height {height} is too small for {n} panel(s); give each panel at \
                 least {MIN_PANEL_HEIGHT} pixels",
                self.title
            )));
        }
        Ok((width, height))
    }

    /// Draws the chart into an RGB buffer; `font` is the registered font family, if any.
    fn render(&self, font: Option<&'static str>) -> Result<Image> {
        let (width, height) = self.dimensions()?;
        let mut rgb = vec![0u8; width as usize * height as usize * 3];
        let x = XAxis::of(&self.panels);
        {
            let root = BitMapBackend::with_buffer(&mut rgb, (width, height)).into_drawing_area();
            root.fill(&WHITE).map_err(draw_err)?;
            let body = match font {
                Some(family) if !self.title.is_empty() => root
                    .titled(&self.title, (family, 22).into_font().color(&BLACK))
                    .map_err(draw_err)?,
                _ => root.clone(),
            };
            let areas = body.split_evenly((self.panels.len(), 1));
            let last = self.panels.len() - 1;
            for (i, (panel, area)) in self.panels.iter().zip(&areas).enumerate() {
                draw_panel(area, panel, &x, font, i == last)?;
            }
            root.present().map_err(draw_err)?;
        }
        Ok(Image { width, height, rgb })
    }
}

/// The x axis shared by all panels.
#[derive(Debug, Clone, PartialEq)]
struct XAxis {
    /// Unix seconds of the first finite point, if any: x = 0 there.
    t0: Option<f64>,
    /// Seconds from `t0` to the last finite point (at least a small positive span).
    end: f64,
}

impl XAxis {
    fn of(panels: &[Panel]) -> XAxis {
        let (mut first, mut last) = (f64::INFINITY, f64::NEG_INFINITY);
        for (t, _) in panels
            .iter()
            .flat_map(|p| &p.series)
            .flat_map(|s| finite_points(&s.points))
        {
            first = first.min(t);
            last = last.max(t);
        }
        if first > last {
            return XAxis { t0: None, end: 1.0 };
        }
        let span = last - first;
        XAxis {
            t0: Some(first),
            end: if span.is_finite() && span > 0.0 {
                span
            } else {
                1.0
            },
        }
    }

    fn desc(&self) -> String {
        match self.t0 {
            Some(t0) => format!("seconds since {}", utc(t0)),
            None => "seconds".to_string(),
        }
    }
}

fn finite_points(points: &[(f64, f64)]) -> impl Iterator<Item = (f64, f64)> + '_ {
    points
        .iter()
        .copied()
        .filter(|(t, v)| t.is_finite() && v.is_finite())
}

/// The finite runs of `points`, shifted by `t0`; a non-finite point ends a run.
fn segments(points: &[(f64, f64)], t0: f64) -> Vec<Vec<(f64, f64)>> {
    let mut out = Vec::new();
    let mut run = Vec::new();
    for &(t, v) in points {
        if t.is_finite() && v.is_finite() {
            run.push((t - t0, v));
        } else if !run.is_empty() {
            out.push(std::mem::take(&mut run));
        }
    }
    if !run.is_empty() {
        out.push(run);
    }
    out
}

/// The y range of a panel: its finite values with a 5% margin, never below 0 for non-negative
/// data; a band around a constant; `0..1` without data.
fn y_range(series: &[Series]) -> Range<f64> {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for (_, v) in series.iter().flat_map(|s| finite_points(&s.points)) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if lo > hi {
        return 0.0..1.0;
    }
    if lo == hi {
        let pad = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
        return lo - pad..hi + pad;
    }
    let pad = (hi - lo) * 0.05;
    if !pad.is_finite() {
        return lo..hi;
    }
    let bottom = if lo >= 0.0 {
        (lo - pad).max(0.0)
    } else {
        lo - pad
    };
    bottom..hi + pad
}

/// The colour of the `i`-th series of a panel: ten well-separated colours, then hues spread
/// by the golden angle.
fn series_color(i: usize) -> RGBColor {
    const BASE: [RGBColor; 10] = [
        RGBColor(0x1f, 0x77, 0xb4),
        RGBColor(0xff, 0x7f, 0x0e),
        RGBColor(0x2c, 0xa0, 0x2c),
        RGBColor(0xd6, 0x27, 0x28),
        RGBColor(0x94, 0x67, 0xbd),
        RGBColor(0x8c, 0x56, 0x4b),
        RGBColor(0xe3, 0x77, 0xc2),
        RGBColor(0x7f, 0x7f, 0x7f),
        RGBColor(0xbc, 0xbd, 0x22),
        RGBColor(0x17, 0xbe, 0xcf),
    ];
    if let Some(c) = BASE.get(i) {
        return *c;
    }
    let hue = (i as f64 * 0.618_033_988_75).fract();
    let (r, g, b) = HSLColor(hue, 0.65, 0.42).rgb();
    RGBColor(r, g, b)
}

fn legend_text(series: &Series, index: usize) -> String {
    let mut text = series.legend();
    if text.is_empty() {
        text = format!("series {}", index + 1);
    }
    if text.chars().count() > LEGEND_CHARS {
        text = text.chars().take(LEGEND_CHARS - 3).collect::<String>() + "...";
    }
    if finite_points(&series.points).next().is_none() {
        text.push_str(" (no data)");
    }
    text
}

fn draw_panel(
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
    panel: &Panel,
    x: &XAxis,
    font: Option<&'static str>,
    bottom: bool,
) -> Result<()> {
    let y = y_range(&panel.series);
    let mut builder = ChartBuilder::on(area);
    builder.margin(10).margin_right(20);
    if let Some(family) = font {
        builder
            .caption(&panel.title, (family, 16))
            .x_label_area_size(if bottom { 40 } else { 24 })
            // The same for every panel, so that their x axes line up.
            .y_label_area_size(80);
    }
    let mut chart = builder
        .build_cartesian_2d(0.0..x.end, y.clone())
        .map_err(draw_err)?;

    let x_tick = |v: &f64| fmt_tick_in("", *v);
    let y_tick = |v: &f64| fmt_tick_in(&panel.unit, *v);
    let mut mesh = chart.configure_mesh();
    mesh.bold_line_style(RGBColor(0xdd, 0xdd, 0xdd))
        .light_line_style(RGBColor(0xf2, 0xf2, 0xf2))
        .x_labels(10)
        .y_labels(6);
    if let Some(family) = font {
        mesh.label_style((family, 12))
            .axis_desc_style((family, 13))
            .x_label_formatter(&x_tick)
            .y_label_formatter(&y_tick);
        if bottom {
            mesh.x_desc(x.desc());
        }
        if !panel.unit.is_empty() {
            mesh.y_desc(panel.unit.as_str());
        }
    }
    mesh.draw().map_err(draw_err)?;
    if font.is_none() {
        // Without label areas plotters draws no axes; draw them by hand.
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(0.0, y.end), (0.0, y.start), (x.end, y.start)],
                BLACK,
            )))
            .map_err(draw_err)?;
    }

    let t0 = x.t0.unwrap_or(0.0);
    let shown = if panel.series.len() <= LEGEND_MAX {
        panel.series.len()
    } else {
        LEGEND_MAX - 1
    };
    for (i, series) in panel.series.iter().enumerate() {
        let color = series_color(i);
        let line = color.stroke_width(2);
        let runs = segments(&series.points, t0);
        let anno = chart
            .draw_series(
                runs.iter()
                    .filter(|run| run.len() > 1)
                    .map(|run| PathElement::new(run.clone(), line)),
            )
            .map_err(draw_err)?;
        if font.is_some() && i < shown {
            anno.label(legend_text(series, i))
                .legend(move |(px, py)| PathElement::new(vec![(px, py), (px + 20, py)], line));
        }
        chart
            .draw_series(
                runs.iter()
                    .filter(|run| run.len() == 1)
                    .map(|run| Circle::new(run[0], 3, color.filled())),
            )
            .map_err(draw_err)?;
    }

    if let Some(family) = font {
        let hidden = panel.series.len() - shown;
        if hidden > 0 {
            chart
                .draw_series(std::iter::empty::<PathElement<(f64, f64)>>())
                .map_err(draw_err)?
                .label(format!("+{hidden} more series"));
        }
        if panel.series.is_empty() {
            let at = (x.end / 2.0, (y.start + y.end) / 2.0);
            let style = (family, 14)
                .into_font()
                .color(&RGBColor(0x88, 0x88, 0x88))
                .pos(Pos::new(HPos::Center, VPos::Center));
            chart
                .draw_series(std::iter::once(Text::new("no series", at, style)))
                .map_err(draw_err)?;
        } else {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.85))
                .border_style(RGBColor(0xbb, 0xbb, 0xbb))
                .label_font((family, 12))
                .draw()
                .map_err(draw_err)?;
        }
    }
    Ok(())
}

/// Tick labels in human units: plain decimals (at most three places) near 1, SI prefixes
/// (`1.5k`, `25M`, `300µ`) away from it, and binary prefixes (`23.8Mi`) when the panel's
/// unit is bytes, so a memory axis reads `24Mi`, not `2.50e7`.
fn fmt_tick_in(unit: &str, v: f64) -> String {
    let a = v.abs();
    if a < 1e-12 {
        return "0".to_string();
    }
    let bytes = matches!(unit.to_ascii_lowercase().as_str(), "bytes" | "byte" | "b");
    let (scaled, prefix) = if bytes {
        const BINARY: [&str; 6] = ["", "Ki", "Mi", "Gi", "Ti", "Pi"];
        let mut i = 0;
        let mut x = v;
        while x.abs() >= 1024.0 && i + 1 < BINARY.len() {
            x /= 1024.0;
            i += 1;
        }
        (x, BINARY[i])
    } else {
        const UP: [&str; 6] = ["", "k", "M", "G", "T", "P"];
        const DOWN: [&str; 5] = ["", "m", "µ", "n", "p"];
        if a >= 1e4 {
            let i = ((a.log10() / 3.0).floor() as usize).min(UP.len() - 1);
            (v / 1e3f64.powi(i as i32), UP[i])
        } else if a < 1e-2 {
            let i = ((-a.log10() / 3.0).ceil() as usize).min(DOWN.len() - 1);
            (v * 1e3f64.powi(i as i32), DOWN[i])
        } else {
            (v, "")
        }
    };
    format!("{}{prefix}", plain(scaled))
}

/// At most three significant decimals, no trailing zeros.
fn plain(v: f64) -> String {
    let places = if v.abs() >= 100.0 {
        0
    } else if v.abs() >= 10.0 {
        1
    } else {
        3
    };
    let s = format!("{v:.places$}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        &s
    };
    if s == "-0" {
        "0".to_string()
    } else {
        s.to_string()
    }
}

/// `YYYY-MM-DD hh:mm:ss UTC` of unix seconds.
fn utc(secs: f64) -> String {
    if !secs.is_finite() || secs.abs() > 1e12 {
        return format!("unix time {secs}");
    }
    let s = secs.floor() as i64;
    let (days, of_day) = (s.div_euclid(86_400), s.rem_euclid(86_400));
    // Days to civil date, after Howard Hinnant's `civil_from_days`.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    )
}

/// The registered font family for chart text, loading a font on first use; `None` if no
/// usable font was found.
fn font_family() -> Option<&'static str> {
    static FONT: OnceLock<Option<PathBuf>> = OnceLock::new();
    FONT.get_or_init(load_font).as_ref().map(|_| FONT_FAMILY)
}

fn load_font() -> Option<PathBuf> {
    let from_env = std::env::var_os(FONT_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    let candidates = from_env
        .iter()
        .cloned()
        .chain(FONT_PATHS.iter().map(PathBuf::from));
    for path in candidates {
        let explicit = from_env.as_ref() == Some(&path);
        match std::fs::read(&path) {
            Ok(bytes) if looks_like_font(&bytes) => {
                // plotters keeps fonts for the life of the process; this happens once.
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if register_font(FONT_FAMILY, FontStyle::Normal, bytes).is_ok() {
                    tracing::debug!(font = %path.display(), "chart font loaded");
                    return Some(path);
                }
                tracing::warn!(font = %path.display(), "chart font cannot be parsed; skipped");
            }
            Ok(_) => {
                tracing::warn!(font = %path.display(), "not a TrueType/OpenType font; skipped");
            }
            Err(e) if explicit => {
                tracing::warn!(font = %path.display(), "{FONT_ENV} names an unreadable font: {e}");
            }
            Err(_) => {}
        }
    }
    tracing::warn!(
        "no font found for chart text: charts are drawn without text; set {FONT_ENV} to a \
         .ttf file or install one (Debian: fonts-dejavu-core)"
    );
    None
}

/// Whether `bytes` start like a TrueType, OpenType or TrueType collection file.
fn looks_like_font(bytes: &[u8]) -> bool {
    matches!(
        bytes.get(..4),
        Some([0, 1, 0, 0] | b"OTTO" | b"true" | b"ttcf")
    )
}

fn draw_err(e: impl std::fmt::Display) -> Error {
    Error::io("drawing a chart", io::Error::other(e.to_string()))
}

/// A rendered chart, RGB 8 bits per channel, row-major.
struct Image {
    width: u32,
    height: u32,
    rgb: Vec<u8>,
}

impl Image {
    fn encode_png(&self) -> Result<Vec<u8>> {
        let fail = |e: png::EncodingError| {
            let e = match e {
                png::EncodingError::IoError(e) => e,
                other => io::Error::other(other),
            };
            Error::io("encoding a chart as PNG", e)
        };
        let mut out = Vec::with_capacity(self.rgb.len() / 8);
        let mut encoder = png::Encoder::new(&mut out, self.width, self.height);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        // Charts are large flat areas: unfiltered rows with light deflate compress well (about
        // 90 KB for a 1000x940 chart) and encode fast even in unoptimised test builds, where
        // the adaptive filter and stronger levels cost seconds.
        encoder.set_deflate_compression(png::DeflateCompression::Level(1));
        encoder.set_filter(png::Filter::NoFilter);
        let mut writer = encoder.write_header().map_err(fail)?;
        writer.write_image_data(&self.rgb).map_err(fail)?;
        writer.finish().map_err(fail)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};

    const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];

    fn series(labels: &[(&str, &str)], points: Vec<(f64, f64)>) -> Series {
        Series {
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
            points,
        }
    }

    fn wave(t0: f64, n: usize, f: impl Fn(f64) -> f64) -> Vec<(f64, f64)> {
        (0..n).map(|i| (t0 + i as f64, f(i as f64))).collect()
    }

    fn sample_chart() -> Chart {
        let t0 = 1_700_000_000.0;
        let mut with_gaps = wave(t0, 30, |x| 5.0 + x.cos());
        with_gaps[10].1 = f64::NAN;
        with_gaps[11].1 = f64::INFINITY;
        with_gaps[20].0 = f64::NAN;
        Chart::new("two panels")
            .size(800, 600)
            .panel(
                "requests",
                "req/s",
                vec![
                    series(
                        &[("__name__", "x"), ("code", "200")],
                        wave(t0, 30, |x| 10.0 + x.sin() * 3.0),
                    ),
                    series(&[("code", "500")], with_gaps),
                    series(&[("code", "404")], vec![]),
                    series(
                        &[("code", "nan")],
                        vec![(t0, f64::NAN), (t0 + 1.0, f64::NAN)],
                    ),
                ],
            )
            .panel(
                "latency",
                "",
                vec![
                    series(&[("quantile", "0.99")], vec![(t0 + 5.0, 0.25)]),
                    series(&[], wave(t0 + 2.0, 10, |_| 0.1)),
                ],
            )
    }

    /// Decodes a PNG: (width, height, distinct RGB colours).
    fn decode(bytes: &[u8]) -> (u32, u32, BTreeSet<[u8; 3]>) {
        assert_eq!(bytes[..8], PNG_SIGNATURE, "not a PNG signature");
        let decoder = png::Decoder::new(io::Cursor::new(bytes));
        let mut reader = decoder.read_info().expect("PNG header");
        let mut buf = vec![0; reader.output_buffer_size().expect("buffer size")];
        let info = reader.next_frame(&mut buf).expect("PNG data");
        assert_eq!(info.color_type, png::ColorType::Rgb);
        assert_eq!(info.bit_depth, png::BitDepth::Eight);
        let colors = buf[..info.buffer_size()]
            .chunks_exact(3)
            .map(|p| [p[0], p[1], p[2]])
            .collect();
        (info.width, info.height, colors)
    }

    fn rgb(c: RGBColor) -> [u8; 3] {
        [c.0, c.1, c.2]
    }

    fn temp_png(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("e2ekit-chart-{}-{name}.png", std::process::id()))
    }

    #[test]
    fn writes_a_png_with_the_data_drawn() {
        let path = temp_png("two-panels");
        sample_chart().write_png(&path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        let (w, h, colors) = decode(&bytes);
        assert_eq!((w, h), (800, 600));
        assert!(colors.len() > 2, "only {} colours", colors.len());
        assert!(colors.contains(&[255, 255, 255]), "no background");
        for i in 0..2 {
            let c = rgb(series_color(i));
            assert!(colors.contains(&c), "series colour {i} {c:?} not drawn");
        }
    }

    #[test]
    fn draws_lines_and_axes_without_a_font() {
        let image = sample_chart().render(None).unwrap();
        let (w, h, colors) = decode(&image.encode_png().unwrap());
        assert_eq!((w, h), (800, 600));
        assert!(colors.contains(&[0, 0, 0]), "no axes");
        for i in 0..2 {
            assert!(
                colors.contains(&rgb(series_color(i))),
                "series {i} not drawn"
            );
        }
    }

    #[test]
    fn text_is_drawn_when_a_font_is_available() {
        let Some(family) = font_family() else {
            eprintln!("no font on this machine; skipping");
            return;
        };
        let chart = Chart::new("title only")
            .size(300, 200)
            .panel("p", "u", vec![]);
        let with = chart.render(Some(family)).unwrap();
        let without = chart.render(None).unwrap();
        // Anti-aliased glyphs bring grey levels that the bare grid and axes do not have.
        let count = |img: &Image| img.rgb.chunks_exact(3).filter(|p| p[0] < 0x80).count();
        assert!(count(&with) > count(&without) + 50);
    }

    #[test]
    fn sizes() {
        let one = Chart::new("t").panel("a", "", vec![]);
        assert_eq!(one.dimensions().unwrap(), (1000, 340));
        let two = one.clone().panel("b", "", vec![]);
        assert_eq!(two.dimensions().unwrap(), (1000, 640));
        assert_eq!(two.clone().size(500, 0).dimensions().unwrap(), (500, 640));
        assert_eq!(two.clone().size(0, 400).dimensions().unwrap(), (1000, 400));
        assert_eq!(two.panels().len(), 2);
        for bad in [
            two.clone().size(50, 400),
            two.clone().size(500, 100),
            two.clone().size(MAX_SIDE + 1, 400),
            Chart::new("empty"),
        ] {
            match bad.to_png() {
                Err(Error::InvalidArgument(msg)) => assert!(msg.contains("chart")),
                other => panic!("expected InvalidArgument, got {other:?}"),
            }
        }
        // Auto height is capped rather than rejected.
        let many = (0..100).fold(Chart::new("many"), |c, i| {
            c.panel(i.to_string(), "", vec![])
        });
        assert_eq!(many.dimensions().unwrap(), (1000, MAX_SIDE));
    }

    #[test]
    fn unwritable_path_is_an_io_error() {
        let path = std::env::temp_dir().join("e2ekit-no-such-dir/x/chart.png");
        match sample_chart().write_png(&path) {
            Err(Error::Io { context, .. }) => assert!(context.contains("chart.png"), "{context}"),
            other => panic!("expected Io, got {other:?}"),
        }
    }

    #[test]
    fn ranges_skip_non_finite_points() {
        assert_eq!(y_range(&[]), 0.0..1.0);
        assert_eq!(y_range(&[series(&[], vec![(1.0, f64::NAN)])]), 0.0..1.0);
        assert_eq!(y_range(&[series(&[], vec![(1.0, 0.0)])]), -1.0..1.0);
        assert_eq!(y_range(&[series(&[], vec![(1.0, -10.0)])]), -11.0..-9.0);
        assert_eq!(
            y_range(&[series(
                &[],
                vec![(1.0, 10.0), (2.0, f64::INFINITY), (3.0, 30.0)]
            )]),
            9.0..31.0
        );
        assert_eq!(
            y_range(&[series(&[], vec![(0.0, 0.5), (1.0, 100.5)])]),
            0.0..105.5
        );
        assert_eq!(
            y_range(&[series(&[], vec![(0.0, -10.0), (1.0, 10.0)])]),
            -11.0..11.0
        );

        let none = XAxis::of(&[]);
        assert_eq!((none.t0, none.end), (None, 1.0));
        assert_eq!(none.desc(), "seconds");
        let x = XAxis::of(&sample_chart().panels);
        assert_eq!((x.t0, x.end), (Some(1_700_000_000.0), 29.0));
        assert_eq!(x.desc(), "seconds since 2023-11-14 22:13:20 UTC");
        let single = Chart::new("t").panel("p", "", vec![series(&[], vec![(5.0, 1.0)])]);
        let x = XAxis::of(&single.panels);
        assert_eq!((x.t0, x.end), (Some(5.0), 1.0));
    }

    #[test]
    fn segments_break_at_non_finite_points() {
        let pts = vec![
            (10.0, 1.0),
            (11.0, 2.0),
            (12.0, f64::NAN),
            (13.0, 3.0),
            (f64::NAN, 4.0),
            (15.0, f64::NEG_INFINITY),
            (16.0, 5.0),
            (17.0, 6.0),
        ];
        assert_eq!(
            segments(&pts, 10.0),
            vec![
                vec![(0.0, 1.0), (1.0, 2.0)],
                vec![(3.0, 3.0)],
                vec![(6.0, 5.0), (7.0, 6.0)]
            ]
        );
        assert!(segments(&[], 0.0).is_empty());
        assert!(segments(&[(1.0, f64::NAN)], 0.0).is_empty());
    }

    #[test]
    fn legends_colors_and_labels() {
        assert_eq!(
            legend_text(&series(&[("a", "1")], vec![(0.0, 1.0)]), 0),
            "a=1"
        );
        assert_eq!(legend_text(&series(&[], vec![]), 2), "series 3 (no data)");
        assert_eq!(
            legend_text(&series(&[("__name__", "up")], vec![(0.0, f64::NAN)]), 0),
            "up (no data)"
        );
        let long = "v".repeat(200);
        assert_eq!(
            legend_text(&series(&[("k", &long)], vec![(0.0, 1.0)]), 0)
                .chars()
                .count(),
            LEGEND_CHARS
        );
        let colors: BTreeSet<_> = (0..40).map(|i| rgb(series_color(i))).collect();
        assert_eq!(colors.len(), 40);
        assert!(!colors.contains(&[255, 255, 255]));

        assert_eq!(fmt_tick_in("", 0.0), "0");
        assert_eq!(fmt_tick_in("", 1.5), "1.5");
        assert_eq!(fmt_tick_in("", 20.0), "20");
        assert_eq!(fmt_tick_in("", -0.25), "-0.25");
        assert_eq!(fmt_tick_in("req/s", 1500.0), "1500");
        assert_eq!(fmt_tick_in("req/s", 123_456.0), "123k");
        assert_eq!(fmt_tick_in("", 25_000_000.0), "25M");
        assert_eq!(fmt_tick_in("cores", 0.000_12), "120µ");
        assert_eq!(fmt_tick_in("cores", 0.005), "5m");
        assert_eq!(fmt_tick_in("bytes", 25_000_000.0), "23.8Mi");
        assert_eq!(fmt_tick_in("bytes", 512.0), "512");
        assert_eq!(fmt_tick_in("bytes", 3.0 * 1024.0 * 1024.0 * 1024.0), "3Gi");
        assert_eq!(utc(0.0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400.5), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(-1.0), "1969-12-31 23:59:59 UTC");
        assert!(looks_like_font(&[0, 1, 0, 0, 9]));
        assert!(!looks_like_font(b"<html>"));
    }
}
