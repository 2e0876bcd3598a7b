//! The figures of `nmt-analyze`, each written as PNG and SVG from one drawing function
//! generic over the plotters backend. Text uses the font of the `figures` crate (embedded),
//! so figures look the same on machines without fonts.

use std::path::{Path, PathBuf};

use figures::{register_font, FONT};
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::histogram::BINS;
use crate::AnalysisError;

/// Colours for series (models) in one figure: distinguishable, colour-blind friendly
/// (Okabe–Ito).
pub const SERIES_COLOURS: [RGBColor; 6] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
];

fn series_colour(i: usize) -> RGBColor {
    SERIES_COLOURS[i % SERIES_COLOURS.len()]
}

type DrawResult<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

/// Draws with `$draw` (a generic function taking the drawing area, then `$args`) into
/// `stem.png` and `stem.svg`; returns both paths.
macro_rules! render {
    ($stem:expr, $size:expr, $draw:ident ( $($arg:expr),* )) => {{
        register_font();
        let stem: &Path = $stem;
        let png = stem.with_extension("png");
        let svg = stem.with_extension("svg");
        let size: (u32, u32) = $size;
        let err = |path: &Path, e: String| AnalysisError::Plot { path: path.to_path_buf(), message: e };
        {
            let root = BitMapBackend::new(&png, size).into_drawing_area();
            $draw(&root, $($arg),*).map_err(|e| err(&png, e.to_string()))?;
            root.present().map_err(|e| err(&png, e.to_string()))?;
        }
        {
            let root = SVGBackend::new(&svg, size).into_drawing_area();
            $draw(&root, $($arg),*).map_err(|e| err(&svg, e.to_string()))?;
            root.present().map_err(|e| err(&svg, e.to_string()))?;
        }
        Ok::<_, AnalysisError>(vec![png, svg])
    }};
}

/// One panel of a histogram figure: a gate, and per model the share of each bin.
pub struct HistogramPanel {
    pub title: String,
    pub series: Vec<(String, [f64; BINS])>,
}

/// Histograms side by side (one panel per gate), models as grouped bars in each bin of
/// 0.05. Writes `stem.png` and `stem.svg`.
pub fn histograms(
    stem: &Path,
    title: &str,
    panels: &[HistogramPanel],
) -> Result<Vec<PathBuf>, AnalysisError> {
    let width = 420 * panels.len().max(1) as u32;
    render!(stem, (width, 400), draw_histograms(title, panels))
}

fn draw_histograms<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    panels: &[HistogramPanel],
) -> DrawResult<DB> {
    root.fill(&WHITE)?;
    let root = root.titled(title, (FONT, 20))?;
    let areas = root.split_evenly((1, panels.len().max(1)));
    for (area, panel) in areas.iter().zip(panels) {
        let top = panel
            .series
            .iter()
            .flat_map(|(_, f)| f.iter().copied())
            .fold(0.0f64, f64::max);
        let mut chart = ChartBuilder::on(area)
            .caption(&panel.title, (FONT, 16))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(44)
            .build_cartesian_2d(0.0..1.0, 0.0..(top * 100.0 * 1.08).max(1.0))?;
        chart
            .configure_mesh()
            .x_desc("gate value")
            .y_desc("% of values")
            .x_labels(6)
            .label_style((FONT, 12))
            .draw()?;
        let groups = panel.series.len().max(1) as f64;
        let width = 1.0 / BINS as f64;
        for (i, (name, fractions)) in panel.series.iter().enumerate() {
            let colour = series_colour(i);
            chart
                .draw_series(fractions.iter().enumerate().map(|(b, f)| {
                    let x0 = b as f64 * width + width * i as f64 / groups;
                    let x1 = x0 + width / groups;
                    Rectangle::new([(x0, 0.0), (x1, f * 100.0)], colour.filled())
                }))?
                .label(name)
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 12, y + 5)], colour.filled())
                });
        }
        if panel.series.len() > 1 {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperMiddle)
                .label_font((FONT, 12))
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()?;
        }
    }
    Ok(())
}

/// A row of tokens, each coloured by a value.
pub struct StripRow {
    pub label: String,
    pub pieces: Vec<String>,
    pub values: Vec<f32>,
}

/// How values map to colours.
#[derive(Clone, Copy, Debug)]
pub enum Scale {
    /// 0 → white, 1 → dark blue (gate values).
    Unit,
    /// −1 → red, 0 → white, +1 → blue (neuron values, as in Chen's LSTM explorer).
    Signed,
}

impl Scale {
    fn colour(self, v: f32) -> RGBColor {
        let mix = |from: (f32, f32, f32), to: (f32, f32, f32), t: f32| {
            let t = t.clamp(0.0, 1.0);
            RGBColor(
                (from.0 + (to.0 - from.0) * t) as u8,
                (from.1 + (to.1 - from.1) * t) as u8,
                (from.2 + (to.2 - from.2) * t) as u8,
            )
        };
        let white = (255.0, 255.0, 255.0);
        match self {
            Scale::Unit => mix(white, (8.0, 48.0, 107.0), v),
            Scale::Signed if v >= 0.0 => mix(white, (33.0, 102.0, 172.0), v),
            Scale::Signed => mix(white, (178.0, 24.0, 43.0), -v),
        }
    }

    /// Text colour that stays readable on `colour(v)`.
    fn ink(self, v: f32) -> RGBColor {
        if v.abs() > 0.55 {
            WHITE
        } else {
            BLACK
        }
    }
}

/// Rows of coloured tokens (gate strips, neuron values), each row with its label on the
/// left and the value printed under each token. Writes `stem.png` and `stem.svg`.
pub fn strips(
    stem: &Path,
    title: &str,
    rows: &[StripRow],
    scale: Scale,
) -> Result<Vec<PathBuf>, AnalysisError> {
    let widths: Vec<u32> = rows.iter().map(|r| row_width(&r.pieces)).collect();
    let width = 190 + widths.iter().copied().max().unwrap_or(100);
    let height = 50 + 44 * rows.len() as u32;
    render!(
        stem,
        (width.min(8000), height),
        draw_strips(title, rows, scale)
    )
}

fn piece_width(piece: &str) -> u32 {
    (16 + 8 * piece.chars().count() as u32).max(36)
}

fn row_width(pieces: &[String]) -> u32 {
    pieces.iter().map(|p| piece_width(p)).sum()
}

fn draw_strips<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    rows: &[StripRow],
    scale: Scale,
) -> DrawResult<DB> {
    root.fill(&WHITE)?;
    root.draw(&Text::new(title.to_string(), (10, 10), (FONT, 16)))?;
    for (r, row) in rows.iter().enumerate() {
        let y = 44 + 44 * r as i32;
        root.draw(&Text::new(row.label.clone(), (10, y + 8), (FONT, 13)))?;
        let mut x = 190;
        for (piece, &v) in row.pieces.iter().zip(&row.values) {
            let w = piece_width(piece) as i32;
            root.draw(&Rectangle::new(
                [(x, y), (x + w - 2, y + 38)],
                scale.colour(v).filled(),
            ))?;
            let ink = scale.ink(v);
            root.draw(&Text::new(
                piece.clone(),
                (x + 4, y + 4),
                (FONT, 13).into_font().color(&ink),
            ))?;
            root.draw(&Text::new(
                format!("{v:.2}"),
                (x + 4, y + 22),
                (FONT, 10).into_font().color(&ink),
            ))?;
            x += w;
        }
    }
    Ok(())
}

/// A line of points with a name.
pub struct Line {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// One panel of a line figure.
pub struct LinePanel {
    pub title: String,
    pub lines: Vec<Line>,
}

/// Panels of lines side by side (two per row), each on its own axes, the same line names
/// in the same colours; a log-scaled y axis when `log_y`. Writes `stem.png` and `stem.svg`.
pub fn lines(
    stem: &Path,
    title: &str,
    axes: (&str, &str),
    panels: &[LinePanel],
    log_y: bool,
) -> Result<Vec<PathBuf>, AnalysisError> {
    let rows = panels.len().div_ceil(2).max(1) as u32;
    let cols = panels.len().clamp(1, 2) as u32;
    render!(
        stem,
        (560 * cols, 40 + 400 * rows),
        draw_line_panels(title, axes, panels, log_y)
    )
}

fn draw_line_panels<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    axes: (&str, &str),
    panels: &[LinePanel],
    log_y: bool,
) -> DrawResult<DB> {
    root.fill(&WHITE)?;
    let root = root.titled(title, (FONT, 20))?;
    let rows = panels.len().div_ceil(2).max(1);
    let cols = panels.len().clamp(1, 2);
    let areas = root.split_evenly((rows, cols));
    // Colours follow the line's name, so a model keeps its colour in every panel.
    let mut names: Vec<&str> = panels
        .iter()
        .flat_map(|p| p.lines.iter().map(|l| l.name.as_str()))
        .collect();
    names.dedup();
    let mut unique: Vec<&str> = Vec::new();
    for n in names {
        if !unique.contains(&n) {
            unique.push(n);
        }
    }
    let colour_of = |name: &str| series_colour(unique.iter().position(|n| *n == name).unwrap_or(0));
    for (area, panel) in areas.iter().zip(panels) {
        draw_lines(area, &panel.title, axes, &panel.lines, log_y, &colour_of)?;
    }
    Ok(())
}

fn draw_lines<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    (x_desc, y_desc): (&str, &str),
    series: &[Line],
    log_y: bool,
    colour_of: &dyn Fn(&str) -> RGBColor,
) -> DrawResult<DB> {
    let finite = |v: f64| v.is_finite() && (!log_y || v > 0.0);
    let (mut x_hi, mut y_lo, mut y_hi) = (1.0f64, f64::INFINITY, f64::NEG_INFINITY);
    for &(x, y) in series.iter().flat_map(|s| s.points.iter()) {
        if finite(y) {
            x_hi = x_hi.max(x);
            y_lo = y_lo.min(y);
            y_hi = y_hi.max(y);
        }
    }
    if !y_lo.is_finite() {
        (y_lo, y_hi) = (if log_y { 1e-3 } else { 0.0 }, 1.0);
    }
    let mut builder = ChartBuilder::on(root);
    builder
        .caption(title, (FONT, 16))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(60);
    macro_rules! finish {
        ($chart:expr) => {{
            let mut chart = $chart;
            chart
                .configure_mesh()
                .x_desc(x_desc)
                .y_desc(y_desc)
                .x_label_formatter(&|x| format!("{x:.0}"))
                .label_style((FONT, 12))
                .draw()?;
            for s in series {
                let colour = colour_of(&s.name);
                let pts: Vec<(f64, f64)> =
                    s.points.iter().copied().filter(|p| finite(p.1)).collect();
                chart
                    .draw_series(LineSeries::new(pts, colour.stroke_width(2)))?
                    .label(&s.name)
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
                    });
            }
            chart
                .configure_series_labels()
                .label_font((FONT, 12))
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .draw()?;
        }};
    }
    if log_y {
        finish!(builder.build_cartesian_2d(0.0..x_hi, (y_lo * 0.8..y_hi * 1.25).log_scale())?);
    } else {
        let pad = ((y_hi - y_lo) * 0.05).max(1e-6);
        finish!(builder.build_cartesian_2d(0.0..x_hi, (y_lo - pad)..(y_hi + pad))?);
    }
    Ok(())
}
