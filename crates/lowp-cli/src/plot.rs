//! Charts for `lowp report --plot`: error against bits per element, as SVG or PNG.
//!
//! Both outputs come from one layout: [`Scene::new`] turns a [`Chart`] into a list of shapes in pixel
//! coordinates (axes, ticks, series lines, markers, labels, legend), and two small back ends draw that list,
//! one as SVG text and one into an RGB raster encoded as PNG. So the two files show the same picture, and
//! the tests can compute where a point lands in the PNG.
//!
//! The PNG back end needs no font files: text uses a 5x7 bitmap font (with two rows for descenders)
//! defined at the end of this module. Characters outside printable ASCII are drawn as a box there; the
//! SVG keeps them as they are.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{bail, Context, Result};

/// One measurement: `x` is bits per element, `y` the quality (SQNR in dB), `label` names the scheme.
pub struct Point {
    pub x: f64,
    pub y: f64,
    pub label: String,
}

/// The points measured on one tensor; drawn in one colour and listed in the legend under `label`.
pub struct Series {
    pub label: String,
    pub points: Vec<Point>,
}

/// A scatter chart of several series sharing two numeric axes.
pub struct Chart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
}

/// Writes `chart` to `path`, as SVG or PNG by the extension (case-insensitive `.svg` / `.png`); any other
/// extension is an error naming the accepted ones. Written to a temporary file in the same directory and
/// renamed into place, so a failure never leaves a half-written file. Non-finite points are left out (and
/// the chart still draws); an empty chart (no finite point) is an error.
pub fn write(path: &Path, chart: &Chart) -> Result<()> {
    // Render before touching the file system, so a chart that cannot be drawn leaves nothing behind.
    let bytes = match check_path(path)? {
        ImageType::Svg => svg(chart)?.into_bytes(),
        ImageType::Png => png(chart)?,
    };
    lowp::quant::write_atomically(path, &bytes).with_context(|| format!("cannot write plot file {}", path.display()))
}

/// The image types a chart is written as.
pub enum ImageType {
    Svg,
    Png,
}

/// The image type `path` asks for by its extension, or an error naming the accepted ones (callers check this
/// before long work, so a bad name fails at once).
pub fn check_path(path: &Path) -> Result<ImageType> {
    match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("svg") => Ok(ImageType::Svg),
        Some("png") => Ok(ImageType::Png),
        _ => bail!(
            "cannot tell which image format to write to {}: use a file name ending in .svg or .png",
            path.display()
        ),
    }
}

/// The chart as a standalone SVG document.
pub fn svg(chart: &Chart) -> Result<String> {
    Ok(Scene::new(chart)?.to_svg())
}

/// The chart as PNG file contents (8-bit RGB).
pub fn png(chart: &Chart) -> Result<Vec<u8>> {
    let canvas = Scene::new(chart)?.rasterize();
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, canvas.width, canvas.height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().context("cannot encode the plot as PNG")?;
    writer.write_image_data(&canvas.pixels).context("cannot encode the plot as PNG")?;
    writer.finish().context("cannot encode the plot as PNG")?;
    Ok(out)
}

// ---------------------------------------------------------------------------------------------------------
// Layout

const WIDTH: u32 = 900;
const HEIGHT: u32 = 600;
const MARGIN: f64 = 16.0;
/// Marker "radius" in pixels; the shapes are sized so they look about equally heavy.
const MARKER_RADIUS: i64 = 4;
/// Longest label drawn in full; longer ones lose their middle (the ends of tensor names tell them apart).
const MAX_LEGEND_CHARS: usize = 32;
const MAX_POINT_LABEL_CHARS: usize = 28;
const LEGEND_ROW: f64 = 16.0;
/// Room for the line sample and marker in front of each legend label.
const LEGEND_KEY: f64 = 24.0;

/// Distinct hues. Marker shapes cycle with a different period, so series stay apart in print and where
/// two colours are hard to tell apart.
const PALETTE: [Rgb; 10] = [
    Rgb(0x1b, 0x6c, 0xc4), // blue
    Rgb(0xe0, 0x6c, 0x00), // orange
    Rgb(0x2a, 0x9d, 0x3a), // green
    Rgb(0xd0, 0x2f, 0x3a), // red
    Rgb(0x7b, 0x4f, 0xc2), // purple
    Rgb(0x8c, 0x56, 0x3c), // brown
    Rgb(0xd9, 0x4f, 0xa8), // pink
    Rgb(0x5f, 0x6b, 0x76), // slate
    Rgb(0x9a, 0xa0, 0x12), // olive
    Rgb(0x14, 0xa3, 0xb8), // teal
];
const MARKER_SHAPES: [MarkerShape; 4] =
    [MarkerShape::Circle, MarkerShape::Square, MarkerShape::Diamond, MarkerShape::Triangle];

const BACKGROUND: Rgb = Rgb(0xff, 0xff, 0xff);
const INK: Rgb = Rgb(0x22, 0x22, 0x22);
const FRAME: Rgb = Rgb(0x55, 0x55, 0x55);
const GRID: Rgb = Rgb(0xe4, 0xe4, 0xe4);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Rgb(u8, u8, u8);

impl Rgb {
    /// This colour moved `amount` (0..1) of the way towards `other`.
    fn mix(self, other: Rgb, amount: f64) -> Rgb {
        let blend = |a: u8, b: u8| (f64::from(a) + (f64::from(b) - f64::from(a)) * amount).round() as u8;
        Rgb(blend(self.0, other.0), blend(self.1, other.1), blend(self.2, other.2))
    }

    fn hex(self) -> String {
        format!("#{:02x}{:02x}{:02x}", self.0, self.1, self.2)
    }
}

/// An axis-aligned box in pixels, y growing downwards.
#[derive(Clone, Copy, Debug)]
struct Rect {
    left: f64,
    top: f64,
    right: f64,
    bottom: f64,
}

impl Rect {
    fn width(&self) -> f64 {
        self.right - self.left
    }

    fn height(&self) -> f64 {
        self.bottom - self.top
    }

    fn overlap_area(&self, other: &Rect) -> f64 {
        let w = self.right.min(other.right) - self.left.max(other.left);
        let h = self.bottom.min(other.bottom) - self.top.max(other.top);
        if w > 0.0 && h > 0.0 {
            w * h
        } else {
            0.0
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MarkerShape {
    Circle,
    Square,
    Diamond,
    Triangle,
}

impl MarkerShape {
    /// Whether the pixel at offset (`dx`, `dy`) from the centre is inside a marker of radius `r`. The SVG
    /// shapes are drawn to match.
    fn covers(self, dx: i64, dy: i64, r: i64) -> bool {
        match self {
            MarkerShape::Circle => dx * dx + dy * dy <= r * r + r,
            MarkerShape::Square => dx.abs() < r && dy.abs() < r,
            MarkerShape::Diamond => dx.abs() + dy.abs() <= r + 1,
            MarkerShape::Triangle => (-r..=r).contains(&dy) && 2 * dx.abs() <= dy + r,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Anchor {
    Start,
    Middle,
    End,
}

/// Text sizes: `Small` is the bitmap font at scale 1 (11px sans-serif in SVG), `Large` at scale 2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TextSize {
    Small,
    Large,
}

impl TextSize {
    fn scale(self) -> f64 {
        match self {
            TextSize::Small => 1.0,
            TextSize::Large => 2.0,
        }
    }

    fn svg_font_size(self) -> u32 {
        match self {
            TextSize::Small => 11,
            TextSize::Large => 20,
        }
    }

    /// Width of `text` in pixels with the bitmap font; the SVG font is close enough for placing labels.
    fn width(self, text: &str) -> f64 {
        let chars = text.chars().count() as f64;
        if chars == 0.0 {
            0.0
        } else {
            (chars * GLYPH_ADVANCE as f64 - 1.0) * self.scale()
        }
    }

    /// Height above the baseline (capitals and digits).
    fn ascent(self) -> f64 {
        GLYPH_ASCENT as f64 * self.scale()
    }

    /// Depth below the baseline (descenders of g, p, q, y, and _).
    fn descent(self) -> f64 {
        (GLYPH_ROWS - GLYPH_ASCENT) as f64 * self.scale()
    }
}

/// One thing to draw, in pixel coordinates.
#[derive(Clone, Debug)]
enum Shape {
    Line {
        from: (f64, f64),
        to: (f64, f64),
        color: Rgb,
    },
    Polyline {
        points: Vec<(f64, f64)>,
        color: Rgb,
    },
    Frame {
        rect: Rect,
        color: Rgb,
    },
    /// `class` tells point markers from legend keys in the SVG (and lets tests count them).
    Marker {
        center: (f64, f64),
        shape: MarkerShape,
        color: Rgb,
        class: &'static str,
    },
    Text(Text),
}

/// A line of text. `at` is the anchor point on the baseline; `vertical` text reads bottom to top, turned
/// about `at`. `full` is the text before shortening, kept in the SVG as a tooltip when it differs.
#[derive(Clone, Debug)]
struct Text {
    at: (f64, f64),
    text: String,
    full: String,
    size: TextSize,
    anchor: Anchor,
    color: Rgb,
    vertical: bool,
}

impl Text {
    /// Horizontal dark text starting at `at`.
    fn new(at: (f64, f64), text: &str, size: TextSize) -> Text {
        Text {
            at,
            text: text.to_string(),
            full: text.to_string(),
            size,
            anchor: Anchor::Start,
            color: INK,
            vertical: false,
        }
    }

    fn anchored(self, anchor: Anchor) -> Text {
        Text { anchor, ..self }
    }

    fn colored(self, color: Rgb) -> Text {
        Text { color, ..self }
    }

    fn vertical(self) -> Text {
        Text { vertical: true, ..self }
    }

    /// Shortened (by its middle) to at most `max_width` pixels, rather than running off the canvas.
    fn fitted(self, max_width: f64) -> Text {
        let advance = GLYPH_ADVANCE as f64 * self.size.scale();
        let max_chars = ((max_width + self.size.scale()) / advance).floor().max(4.0) as usize;
        Text { text: shorten(&self.full, max_chars), ..self }
    }
}

/// One axis: the data range it spans and where its ticks go.
#[derive(Clone, Debug)]
struct Axis {
    lo: f64,
    hi: f64,
    ticks: Vec<f64>,
    step: f64,
}

impl Axis {
    /// An axis over the data range `min..=max` (finite, `min <= max`), padded a little so points at the
    /// ends are not drawn on the frame, with about `target_ticks` ticks at 1, 2 or 5 times a power of ten.
    fn new(min: f64, max: f64, target_ticks: f64) -> Axis {
        // Halves keep the arithmetic finite for data near the ends of the f64 range.
        let data_half_span = max / 2.0 - min / 2.0;
        let pad = if data_half_span > 0.0 {
            data_half_span * 0.12
        } else if min != 0.0 {
            // All values equal: open a window of 10% around them.
            min.abs() * 0.1
        } else {
            1.0
        };
        let (mut lo, mut hi) = ((min - pad).max(-f64::MAX), (max + pad).min(f64::MAX));
        if lo >= hi {
            // The padding vanished (subnormal values): any window containing the data will do.
            (lo, hi) = (min - 1.0, max + 1.0);
        }
        let half_span = hi / 2.0 - lo / 2.0;
        let mut step = nice_step(half_span / target_ticks.max(1.0) * 2.0);
        let mut ticks = Vec::new();
        if step.is_finite() && step > 0.0 {
            let mut k = (lo / step).ceil();
            // The bound guards against steps lost in rounding next to huge values.
            while ticks.len() < 64 {
                let tick = k * step;
                if tick > hi {
                    break;
                }
                // `+ 0.0` turns -0 into 0, so no tick reads "-0".
                ticks.push(tick + 0.0);
                k += 1.0;
            }
        }
        if ticks.is_empty() {
            // No usable step (the span is near the ends of the f64 range): mark the ends instead.
            (ticks, step) = (vec![lo, hi], half_span);
        }
        Axis { lo, hi, ticks, step }
    }

    /// Where `v` lies along the axis, 0 at `lo` and 1 at `hi`.
    fn fraction(&self, v: f64) -> f64 {
        (v / 2.0 - self.lo / 2.0) / (self.hi / 2.0 - self.lo / 2.0)
    }

    fn tick_label(&self, v: f64) -> String {
        format_tick(v, self.step)
    }
}

/// The smallest of 1, 2, 5 x 10^k that is at least `raw`; NaN when `raw` is not a positive finite number.
fn nice_step(raw: f64) -> f64 {
    if !(raw.is_finite() && raw > 0.0) {
        return f64::NAN;
    }
    let magnitude = 10f64.powf(raw.log10().floor());
    for multiple in [1.0, 2.0, 5.0, 10.0] {
        let step = multiple * magnitude;
        // A relative tolerance, since 10^floor(log10(raw)) is rounded.
        if step >= raw * (1.0 - 1e-9) {
            return step;
        }
    }
    10.0 * magnitude
}

/// A tick value written with just enough digits to tell it from its neighbours `step` apart.
fn format_tick(v: f64, step: f64) -> String {
    if v == 0.0 {
        return "0".to_string();
    }
    let step_exponent = step.log10().floor();
    if v.abs() < 1e7 && step >= 1e-4 {
        let decimals = (-step_exponent).max(0.0) as usize;
        format!("{v:.decimals$}")
    } else {
        let digits = (v.abs().log10().floor() - step_exponent).clamp(0.0, 16.0) as usize;
        format!("{v:.digits$e}")
    }
}

/// `text` cut to at most `max_chars` characters by replacing its middle with "...".
fn shorten(text: &str, max_chars: usize) -> String {
    let count = text.chars().count();
    if count <= max_chars {
        return text.to_string();
    }
    let keep = max_chars.saturating_sub(3);
    let head = keep / 2;
    let tail = keep - head;
    let mut out: String = text.chars().take(head).collect();
    out.push_str("...");
    out.extend(text.chars().skip(count - tail));
    out
}

/// Where the plot area lies on the canvas and which data range it shows; maps data to pixels.
#[derive(Clone, Debug)]
struct Frame {
    plot: Rect,
    x: Axis,
    y: Axis,
}

impl Frame {
    /// The pixel position of data point (`x`, `y`), in continuous coordinates (the SVG uses them as they
    /// are; the raster rounds them with [`raster`]).
    fn to_pixel(&self, x: f64, y: f64) -> (f64, f64) {
        let px = self.plot.left + self.x.fraction(x) * self.plot.width();
        let py = self.plot.bottom - self.y.fraction(y) * self.plot.height();
        (px, py)
    }
}

/// The raster pixel holding continuous position `p`.
fn raster(p: (f64, f64)) -> (i64, i64) {
    (p.0.round() as i64, p.1.round() as i64)
}

/// Everything to draw for one chart.
struct Scene {
    width: u32,
    height: u32,
    #[cfg_attr(not(test), allow(dead_code))] // the tests read the axes off it
    frame: Frame,
    shapes: Vec<Shape>,
}

/// One series reduced to what is drawn: its finite points and its style.
struct SeriesStyle<'a> {
    label: &'a str,
    points: Vec<&'a Point>,
    color: Rgb,
    shape: MarkerShape,
}

impl Scene {
    fn new(chart: &Chart) -> Result<Scene> {
        let series: Vec<SeriesStyle> = chart
            .series
            .iter()
            .enumerate()
            .map(|(i, s)| SeriesStyle {
                label: &s.label,
                points: s.points.iter().filter(|p| p.x.is_finite() && p.y.is_finite()).collect(),
                color: PALETTE[i % PALETTE.len()],
                shape: MARKER_SHAPES[i % MARKER_SHAPES.len()],
            })
            .collect();
        let finite = || series.iter().flat_map(|s| s.points.iter());
        let Some(first) = finite().next() else {
            bail!("nothing to plot: the chart has no point with finite x and y");
        };
        let (mut x_min, mut x_max, mut y_min, mut y_max) = (first.x, first.x, first.y, first.y);
        for p in finite() {
            (x_min, x_max) = (x_min.min(p.x), x_max.max(p.x));
            (y_min, y_max) = (y_min.min(p.y), y_max.max(p.y));
        }

        let (width, height) = (f64::from(WIDTH), f64::from(HEIGHT));
        let mut shapes = Vec::new();

        // Title: large if it fits, otherwise small (and shortened if even that is too wide).
        let title_room = width - 2.0 * MARGIN;
        let title_size =
            if TextSize::Large.width(&chart.title) <= title_room { TextSize::Large } else { TextSize::Small };
        let title_baseline = MARGIN + TextSize::Large.ascent();
        let title = Text::new((width / 2.0, title_baseline), &chart.title, title_size);
        shapes.push(Shape::Text(title.anchored(Anchor::Middle).fitted(title_room)));

        // Vertical extent first: the y ticks decide how much room their labels need on the left.
        let small = TextSize::Small;
        let plot_top = title_baseline + TextSize::Large.descent() + 14.0;
        let plot_bottom = height - MARGIN - small.ascent() - small.descent() - 12.0 - small.ascent() - 10.0;
        let y_axis = Axis::new(y_min, y_max, ((plot_bottom - plot_top) / 70.0).max(2.0));
        let y_tick_width = y_axis.ticks.iter().map(|&t| small.width(&y_axis.tick_label(t))).fold(0.0, f64::max);
        let y_label_x = MARGIN + small.ascent();
        let plot_left = y_label_x + small.descent() + 10.0 + y_tick_width + 8.0;

        let legend_labels: Vec<String> = series
            .iter()
            .map(|s| {
                let label = shorten(s.label, MAX_LEGEND_CHARS);
                if s.points.is_empty() {
                    format!("{label} (no finite points)")
                } else {
                    label
                }
            })
            .collect();
        let legend_text_width = legend_labels.iter().map(|l| small.width(l)).fold(40.0, f64::max);
        let legend_left = width - MARGIN - LEGEND_KEY - legend_text_width;
        let plot_right = legend_left - 20.0;
        let plot = Rect { left: plot_left, top: plot_top, right: plot_right, bottom: plot_bottom };
        let x_axis = Axis::new(x_min, x_max, (plot.width() / 80.0).max(2.0));
        let frame = Frame { plot, x: x_axis, y: y_axis };

        // Grid and ticks.
        for &t in &frame.x.ticks {
            let (px, _) = frame.to_pixel(t, frame.y.lo);
            shapes.push(Shape::Line { from: (px, plot.top), to: (px, plot.bottom), color: GRID });
            shapes.push(Shape::Line { from: (px, plot.bottom), to: (px, plot.bottom + 5.0), color: FRAME });
            let baseline = plot.bottom + 9.0 + small.ascent();
            let label = Text::new((px, baseline), &frame.x.tick_label(t), small);
            shapes.push(Shape::Text(label.anchored(Anchor::Middle)));
        }
        for &t in &frame.y.ticks {
            let (_, py) = frame.to_pixel(frame.x.lo, t);
            shapes.push(Shape::Line { from: (plot.left, py), to: (plot.right, py), color: GRID });
            shapes.push(Shape::Line { from: (plot.left - 5.0, py), to: (plot.left, py), color: FRAME });
            let at = (plot.left - 8.0, py + (small.ascent() / 2.0).round());
            shapes.push(Shape::Text(Text::new(at, &frame.y.tick_label(t), small).anchored(Anchor::End)));
        }
        shapes.push(Shape::Frame { rect: plot, color: FRAME });

        // Axis labels.
        let x_label_baseline = height - MARGIN - small.descent();
        let plot_middle_x = (plot.left + plot.right) / 2.0;
        let x_label = Text::new((plot_middle_x, x_label_baseline), &chart.x_label, small);
        shapes.push(Shape::Text(x_label.anchored(Anchor::Middle).fitted(plot.width())));
        let plot_middle_y = (plot.top + plot.bottom) / 2.0;
        let y_label = Text::new((y_label_x, plot_middle_y), &chart.y_label, small);
        shapes.push(Shape::Text(y_label.anchored(Anchor::Middle).vertical().fitted(plot.height())));

        // Series: lines first (lighter, in order of x), then markers on top, then labels beside them.
        let positions: Vec<Vec<(f64, f64)>> =
            series.iter().map(|s| s.points.iter().map(|p| frame.to_pixel(p.x, p.y)).collect()).collect();
        for (style, pixels) in series.iter().zip(&positions) {
            if pixels.len() < 2 {
                continue;
            }
            let mut order: Vec<usize> = (0..pixels.len()).collect();
            // Ties in x are ordered by y, so the line runs up a column of points instead of zigzagging.
            let (xs, ys) = (|i: usize| style.points[i].x, |i: usize| style.points[i].y);
            order.sort_by(|&a, &b| xs(a).total_cmp(&xs(b)).then(ys(a).total_cmp(&ys(b))));
            let points = order.iter().map(|&i| pixels[i]).collect();
            shapes.push(Shape::Polyline { points, color: style.color.mix(BACKGROUND, 0.45) });
        }
        for (style, pixels) in series.iter().zip(&positions) {
            for &center in pixels {
                shapes.push(Shape::Marker { center, shape: style.shape, color: style.color, class: "marker" });
            }
        }
        let mut occupied: Vec<Rect> = positions
            .iter()
            .flatten()
            .map(|&(x, y)| {
                let r = MARKER_RADIUS as f64 + 1.0;
                Rect { left: x - r, top: y - r, right: x + r, bottom: y + r }
            })
            .collect();
        for (style, pixels) in series.iter().zip(&positions) {
            let label_color = style.color.mix(Rgb(0, 0, 0), 0.3);
            for (point, &center) in style.points.iter().zip(pixels) {
                if point.label.is_empty() {
                    continue;
                }
                let label = shorten(&point.label, MAX_POINT_LABEL_CHARS);
                let (left, baseline, rect) = place_label(&label, center, &plot, &occupied);
                occupied.push(rect);
                let text = Text { text: label, ..Text::new((left, baseline), &point.label, small) };
                shapes.push(Shape::Text(text.colored(label_color)));
            }
        }

        // Legend, to the right of the plot; rows that do not fit are summarised in a last row.
        let rows_room = ((plot.height() - 4.0) / LEGEND_ROW).floor().max(1.0) as usize;
        let shown = if series.len() <= rows_room { series.len() } else { rows_room - 1 };
        for (row, (style, label)) in series.iter().zip(&legend_labels).take(shown).enumerate() {
            let middle = plot.top + 8.0 + row as f64 * LEGEND_ROW;
            let key_middle = legend_left + 9.0;
            let line_color = style.color.mix(BACKGROUND, 0.45);
            shapes.push(Shape::Line {
                from: (legend_left, middle),
                to: (legend_left + 18.0, middle),
                color: line_color,
            });
            shapes.push(Shape::Marker {
                center: (key_middle, middle),
                shape: style.shape,
                color: style.color,
                class: "legend-marker",
            });
            let at = (legend_left + LEGEND_KEY, middle + (small.ascent() / 2.0).round());
            shapes.push(Shape::Text(Text { text: label.clone(), ..Text::new(at, style.label, small) }));
        }
        if shown < series.len() {
            let middle = plot.top + 8.0 + shown as f64 * LEGEND_ROW;
            let more = format!("+{} more", series.len() - shown);
            let at = (legend_left + LEGEND_KEY, middle + (small.ascent() / 2.0).round());
            shapes.push(Shape::Text(Text::new(at, &more, small)));
        }

        Ok(Scene { width: WIDTH, height: HEIGHT, frame, shapes })
    }
}

/// Chooses where a point label goes: the first of a few spots around the point (right, left, above,
/// below, then the diagonals) that overlaps no marker or earlier label and stays inside the plot, or failing
/// that the spot that overlaps least. Returns the text's left end, its baseline, and the box it covers.
fn place_label(label: &str, center: (f64, f64), plot: &Rect, occupied: &[Rect]) -> (f64, f64, Rect) {
    let size = TextSize::Small;
    let (w, ascent, descent) = (size.width(label), size.ascent(), size.descent());
    let gap = MARKER_RADIUS as f64 + 3.0;
    let (x, y) = center;
    let middle_baseline = y + (ascent / 2.0).round();
    let above_baseline = y - gap - descent;
    let below_baseline = y + gap + ascent;
    let candidates = [
        (x + gap, middle_baseline),
        (x - gap - w, middle_baseline),
        (x - w / 2.0, above_baseline),
        (x - w / 2.0, below_baseline),
        (x + 2.0, above_baseline),
        (x + 2.0, below_baseline),
        (x - 2.0 - w, above_baseline),
        (x - 2.0 - w, below_baseline),
    ];
    let mut best = None;
    let mut best_cost = f64::INFINITY;
    for (left, baseline) in candidates {
        let rect = Rect { left, top: baseline - ascent, right: left + w, bottom: baseline + descent };
        let inside = rect.overlap_area(plot);
        let outside = rect.width() * rect.height() - inside;
        let cost: f64 = occupied.iter().map(|o| rect.overlap_area(o)).sum::<f64>() + 2.0 * outside;
        if cost < best_cost {
            best_cost = cost;
            best = Some((left, baseline, rect));
        }
        if cost == 0.0 {
            break;
        }
    }
    // `candidates` is not empty, so `best` is set; fall back to the first spot all the same.
    best.unwrap_or_else(|| {
        let (left, baseline) = candidates[0];
        (left, baseline, Rect { left, top: baseline - ascent, right: left + w, bottom: baseline + descent })
    })
}

// ---------------------------------------------------------------------------------------------------------
// SVG

impl Scene {
    fn to_svg(&self) -> String {
        let (w, h) = (self.width, self.height);
        let mut out = String::new();
        // Writing to a String cannot fail, so the results of `write!` below are ignored.
        let _ = writeln!(out, r#"<?xml version="1.0" encoding="UTF-8"?>"#);
        let _ = writeln!(
            out,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif">"#
        );
        let _ = writeln!(out, r#"<rect width="{w}" height="{h}" fill="{}"/>"#, BACKGROUND.hex());
        for shape in &self.shapes {
            match shape {
                Shape::Line { from, to, color } => {
                    let _ = writeln!(
                        out,
                        r#"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{}"/>"#,
                        from.0,
                        from.1,
                        to.0,
                        to.1,
                        color.hex()
                    );
                }
                Shape::Polyline { points, color } => {
                    let coords: Vec<String> = points.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
                    let _ = writeln!(
                        out,
                        r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="1.5" stroke-linejoin="round"/>"#,
                        coords.join(" "),
                        color.hex()
                    );
                }
                Shape::Frame { rect, color } => {
                    let _ = writeln!(
                        out,
                        r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="none" stroke="{}"/>"#,
                        rect.left,
                        rect.top,
                        rect.width(),
                        rect.height(),
                        color.hex()
                    );
                }
                Shape::Marker { center, shape, color, class } => {
                    out.push_str(&svg_marker(*center, *shape, *color, class));
                    out.push('\n');
                }
                Shape::Text(text) => {
                    out.push_str(&svg_text(text));
                    out.push('\n');
                }
            }
        }
        out.push_str("</svg>\n");
        out
    }
}

/// A marker covering about the same pixels as [`MarkerShape::covers`] does in the raster.
fn svg_marker(center: (f64, f64), shape: MarkerShape, color: Rgb, class: &str) -> String {
    let (x, y) = center;
    let r = MARKER_RADIUS as f64;
    let fill = color.hex();
    let polygon = |corners: &[(f64, f64)]| {
        let coords: Vec<String> = corners.iter().map(|(cx, cy)| format!("{cx:.1},{cy:.1}")).collect();
        format!(r#"<polygon class="{class}" points="{}" fill="{fill}"/>"#, coords.join(" "))
    };
    match shape {
        MarkerShape::Circle => {
            format!(r#"<circle class="{class}" cx="{x:.1}" cy="{y:.1}" r="{:.1}" fill="{fill}"/>"#, r + 0.5)
        }
        MarkerShape::Square => {
            let side = 2.0 * r - 1.0;
            let (left, top) = (x - side / 2.0, y - side / 2.0);
            format!(
                r#"<rect class="{class}" x="{left:.1}" y="{top:.1}" width="{side:.1}" height="{side:.1}" fill="{fill}"/>"#
            )
        }
        MarkerShape::Diamond => {
            let d = r + 1.5;
            polygon(&[(x, y - d), (x + d, y), (x, y + d), (x - d, y)])
        }
        MarkerShape::Triangle => {
            let d = r + 0.5;
            polygon(&[(x, y - d), (x + d, y + d), (x - d, y + d)])
        }
    }
}

fn svg_text(text: &Text) -> String {
    let (x, y) = text.at;
    let anchor = match text.anchor {
        Anchor::Start => "start",
        Anchor::Middle => "middle",
        Anchor::End => "end",
    };
    let rotate = if text.vertical { format!(r#" transform="rotate(-90 {x:.1} {y:.1})""#) } else { String::new() };
    // Shortened text keeps its full form as a tooltip.
    let tooltip =
        if text.full != text.text { format!("<title>{}</title>", xml_escape(&text.full)) } else { String::new() };
    format!(
        r#"<text x="{x:.1}" y="{y:.1}" font-size="{}" fill="{}" text-anchor="{anchor}"{rotate}>{tooltip}{}</text>"#,
        text.size.svg_font_size(),
        text.color.hex(),
        xml_escape(&text.text)
    )
}

/// `text` made safe for XML content and attribute values. Control characters, which XML 1.0 does not allow,
/// become U+FFFD.
fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------------------
// Raster

/// An 8-bit RGB image, rows top to bottom.
struct Canvas {
    width: u32,
    height: u32,
    pixels: Vec<u8>,
}

impl Scene {
    fn rasterize(&self) -> Canvas {
        let mut canvas = Canvas::new(self.width, self.height, BACKGROUND);
        for shape in &self.shapes {
            match shape {
                Shape::Line { from, to, color } => canvas.line(raster(*from), raster(*to), *color),
                Shape::Polyline { points, color } => {
                    for pair in points.windows(2) {
                        canvas.line(raster(pair[0]), raster(pair[1]), *color);
                    }
                }
                Shape::Frame { rect, color } => {
                    let (left, top) = raster((rect.left, rect.top));
                    let (right, bottom) = raster((rect.right, rect.bottom));
                    canvas.line((left, top), (right, top), *color);
                    canvas.line((right, top), (right, bottom), *color);
                    canvas.line((right, bottom), (left, bottom), *color);
                    canvas.line((left, bottom), (left, top), *color);
                }
                Shape::Marker { center, shape, color, .. } => canvas.marker(raster(*center), *shape, *color),
                Shape::Text(text) => canvas.text(text),
            }
        }
        canvas
    }
}

impl Canvas {
    fn new(width: u32, height: u32, background: Rgb) -> Canvas {
        let count = width as usize * height as usize;
        let pixels = [background.0, background.1, background.2].repeat(count);
        Canvas { width, height, pixels }
    }

    /// Paints one pixel; positions off the canvas are ignored, so shapes may run over the edge.
    fn set(&mut self, x: i64, y: i64, color: Rgb) {
        if x < 0 || y < 0 || x >= i64::from(self.width) || y >= i64::from(self.height) {
            return;
        }
        let at = (y as usize * self.width as usize + x as usize) * 3;
        self.pixels[at..at + 3].copy_from_slice(&[color.0, color.1, color.2]);
    }

    /// A one-pixel line from `from` to `to`, both ends included (Bresenham's algorithm).
    fn line(&mut self, from: (i64, i64), to: (i64, i64), color: Rgb) {
        let (mut x, mut y) = from;
        let (dx, dy) = ((to.0 - x).abs(), -(to.1 - y).abs());
        let (step_x, step_y) = ((to.0 - x).signum(), (to.1 - y).signum());
        let mut error = dx + dy;
        loop {
            self.set(x, y, color);
            if (x, y) == to {
                break;
            }
            let doubled = 2 * error;
            if doubled >= dy {
                error += dy;
                x += step_x;
            }
            if doubled <= dx {
                error += dx;
                y += step_y;
            }
        }
    }

    fn marker(&mut self, center: (i64, i64), shape: MarkerShape, color: Rgb) {
        let r = MARKER_RADIUS + 1;
        for dy in -r..=r {
            for dx in -r..=r {
                if shape.covers(dx, dy, MARKER_RADIUS) {
                    self.set(center.0 + dx, center.1 + dy, color);
                }
            }
        }
    }

    fn text(&mut self, text: &Text) {
        let scale = text.size.scale() as i64;
        let width = text.size.width(&text.text);
        let lead = match text.anchor {
            Anchor::Start => 0.0,
            Anchor::Middle => (width / 2.0).round(),
            Anchor::End => width,
        };
        // Pixels are placed along the reading direction and across it (downwards for horizontal text);
        // vertical text reads upwards with "down" pointing right.
        let (along_dir, across_dir) = if text.vertical { ((0, -1), (1, 0)) } else { ((1, 0), (0, 1)) };
        let (ax, ay) = raster(text.at);
        for (index, c) in text.text.chars().enumerate() {
            let glyph = glyph(c);
            for (row, bits) in glyph.iter().enumerate() {
                for col in 0..GLYPH_COLUMNS {
                    if bits & (1 << (GLYPH_COLUMNS - 1 - col)) == 0 {
                        continue;
                    }
                    for sy in 0..scale {
                        for sx in 0..scale {
                            let along = (index as i64 * GLYPH_ADVANCE + col) * scale + sx - lead as i64;
                            let across = (row as i64 - GLYPH_ASCENT) * scale + sy;
                            let x = ax + along * along_dir.0 + across * across_dir.0;
                            let y = ay + along * along_dir.1 + across * across_dir.1;
                            self.set(x, y, text.color);
                        }
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Bitmap font

/// Glyph width in pixels; each row of a glyph is a 5-bit mask, most significant bit on the left.
const GLYPH_COLUMNS: i64 = 5;
/// Pixels from one character's left edge to the next one's: the glyph plus one blank column.
const GLYPH_ADVANCE: i64 = 6;
/// Rows from the top of a capital to the baseline (the baseline is the row below the last of these).
const GLYPH_ASCENT: i64 = 7;
/// All rows: the ascent plus two rows of descender.
const GLYPH_ROWS: i64 = 9;

type Glyph = [u8; GLYPH_ROWS as usize];

/// An outlined box, drawn for characters the font lacks.
const MISSING_GLYPH: Glyph = [0b11111, 0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b11111, 0, 0];

fn glyph(c: char) -> &'static Glyph {
    match c {
        ' '..='~' => &FONT[c as usize - ' ' as usize],
        _ => &MISSING_GLYPH,
    }
}

/// Printable ASCII, from ' ' (0x20) to '~' (0x7e).
#[rustfmt::skip]
const FONT: [Glyph; 95] = [
    [0b00000, 0b00000, 0b00000, 0b00000, 0b00000, 0b00000, 0b00000, 0b00000, 0b00000], // ' '
    [0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b00000, 0b00100, 0b00000, 0b00000], // '!'
    [0b01010, 0b01010, 0b01010, 0b00000, 0b00000, 0b00000, 0b00000, 0b00000, 0b00000], // '"'
    [0b01010, 0b01010, 0b11111, 0b01010, 0b11111, 0b01010, 0b01010, 0b00000, 0b00000], // '#'
    [0b00100, 0b01111, 0b10100, 0b01110, 0b00101, 0b11110, 0b00100, 0b00000, 0b00000], // '$'
    [0b11000, 0b11001, 0b00010, 0b00100, 0b01000, 0b10011, 0b00011, 0b00000, 0b00000], // '%'
    [0b01100, 0b10010, 0b10100, 0b01000, 0b10101, 0b10010, 0b01101, 0b00000, 0b00000], // '&'
    [0b00100, 0b00100, 0b01000, 0b00000, 0b00000, 0b00000, 0b00000, 0b00000, 0b00000], // '\''
    [0b00010, 0b00100, 0b01000, 0b01000, 0b01000, 0b00100, 0b00010, 0b00000, 0b00000], // '('
    [0b01000, 0b00100, 0b00010, 0b00010, 0b00010, 0b00100, 0b01000, 0b00000, 0b00000], // ')'
    [0b00000, 0b00100, 0b10101, 0b01110, 0b10101, 0b00100, 0b00000, 0b00000, 0b00000], // '*'
    [0b00000, 0b00100, 0b00100, 0b11111, 0b00100, 0b00100, 0b00000, 0b00000, 0b00000], // '+'
    [0b00000, 0b00000, 0b00000, 0b00000, 0b00000, 0b00110, 0b00110, 0b00010, 0b00100], // ','
    [0b00000, 0b00000, 0b00000, 0b11111, 0b00000, 0b00000, 0b00000, 0b00000, 0b00000], // '-'
    [0b00000, 0b00000, 0b00000, 0b00000, 0b00000, 0b01100, 0b01100, 0b00000, 0b00000], // '.'
    [0b00001, 0b00010, 0b00010, 0b00100, 0b01000, 0b01000, 0b10000, 0b00000, 0b00000], // '/'
    [0b01110, 0b10001, 0b10011, 0b10101, 0b11001, 0b10001, 0b01110, 0b00000, 0b00000], // '0'
    [0b00100, 0b01100, 0b00100, 0b00100, 0b00100, 0b00100, 0b01110, 0b00000, 0b00000], // '1'
    [0b01110, 0b10001, 0b00001, 0b00010, 0b00100, 0b01000, 0b11111, 0b00000, 0b00000], // '2'
    [0b11111, 0b00010, 0b00100, 0b00010, 0b00001, 0b10001, 0b01110, 0b00000, 0b00000], // '3'
    [0b00010, 0b00110, 0b01010, 0b10010, 0b11111, 0b00010, 0b00010, 0b00000, 0b00000], // '4'
    [0b11111, 0b10000, 0b11110, 0b00001, 0b00001, 0b10001, 0b01110, 0b00000, 0b00000], // '5'
    [0b00110, 0b01000, 0b10000, 0b11110, 0b10001, 0b10001, 0b01110, 0b00000, 0b00000], // '6'
    [0b11111, 0b00001, 0b00010, 0b00100, 0b01000, 0b01000, 0b01000, 0b00000, 0b00000], // '7'
    [0b01110, 0b10001, 0b10001, 0b01110, 0b10001, 0b10001, 0b01110, 0b00000, 0b00000], // '8'
    [0b01110, 0b10001, 0b10001, 0b01111, 0b00001, 0b00010, 0b01100, 0b00000, 0b00000], // '9'
    [0b00000, 0b01100, 0b01100, 0b00000, 0b01100, 0b01100, 0b00000, 0b00000, 0b00000], // ':'
    [0b00000, 0b01100, 0b01100, 0b00000, 0b01100, 0b01100, 0b00100, 0b01000, 0b00000], // ';'
    [0b00010, 0b00100, 0b01000, 0b10000, 0b01000, 0b00100, 0b00010, 0b00000, 0b00000], // '<'
    [0b00000, 0b00000, 0b11111, 0b00000, 0b11111, 0b00000, 0b00000, 0b00000, 0b00000], // '='
    [0b01000, 0b00100, 0b00010, 0b00001, 0b00010, 0b00100, 0b01000, 0b00000, 0b00000], // '>'
    [0b01110, 0b10001, 0b00001, 0b00010, 0b00100, 0b00000, 0b00100, 0b00000, 0b00000], // '?'
    [0b01110, 0b10001, 0b10111, 0b10101, 0b10111, 0b10000, 0b01111, 0b00000, 0b00000], // '@'
    [0b01110, 0b10001, 0b10001, 0b11111, 0b10001, 0b10001, 0b10001, 0b00000, 0b00000], // 'A'
    [0b11110, 0b10001, 0b10001, 0b11110, 0b10001, 0b10001, 0b11110, 0b00000, 0b00000], // 'B'
    [0b01110, 0b10001, 0b10000, 0b10000, 0b10000, 0b10001, 0b01110, 0b00000, 0b00000], // 'C'
    [0b11110, 0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b11110, 0b00000, 0b00000], // 'D'
    [0b11111, 0b10000, 0b10000, 0b11110, 0b10000, 0b10000, 0b11111, 0b00000, 0b00000], // 'E'
    [0b11111, 0b10000, 0b10000, 0b11110, 0b10000, 0b10000, 0b10000, 0b00000, 0b00000], // 'F'
    [0b01110, 0b10001, 0b10000, 0b10111, 0b10001, 0b10001, 0b01111, 0b00000, 0b00000], // 'G'
    [0b10001, 0b10001, 0b10001, 0b11111, 0b10001, 0b10001, 0b10001, 0b00000, 0b00000], // 'H'
    [0b01110, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b01110, 0b00000, 0b00000], // 'I'
    [0b00111, 0b00010, 0b00010, 0b00010, 0b00010, 0b10010, 0b01100, 0b00000, 0b00000], // 'J'
    [0b10001, 0b10010, 0b10100, 0b11000, 0b10100, 0b10010, 0b10001, 0b00000, 0b00000], // 'K'
    [0b10000, 0b10000, 0b10000, 0b10000, 0b10000, 0b10000, 0b11111, 0b00000, 0b00000], // 'L'
    [0b10001, 0b11011, 0b10101, 0b10101, 0b10001, 0b10001, 0b10001, 0b00000, 0b00000], // 'M'
    [0b10001, 0b10001, 0b11001, 0b10101, 0b10011, 0b10001, 0b10001, 0b00000, 0b00000], // 'N'
    [0b01110, 0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b01110, 0b00000, 0b00000], // 'O'
    [0b11110, 0b10001, 0b10001, 0b11110, 0b10000, 0b10000, 0b10000, 0b00000, 0b00000], // 'P'
    [0b01110, 0b10001, 0b10001, 0b10001, 0b10101, 0b10010, 0b01101, 0b00000, 0b00000], // 'Q'
    [0b11110, 0b10001, 0b10001, 0b11110, 0b10100, 0b10010, 0b10001, 0b00000, 0b00000], // 'R'
    [0b01111, 0b10000, 0b10000, 0b01110, 0b00001, 0b00001, 0b11110, 0b00000, 0b00000], // 'S'
    [0b11111, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b00000, 0b00000], // 'T'
    [0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b01110, 0b00000, 0b00000], // 'U'
    [0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b01010, 0b00100, 0b00000, 0b00000], // 'V'
    [0b10001, 0b10001, 0b10001, 0b10101, 0b10101, 0b10101, 0b01010, 0b00000, 0b00000], // 'W'
    [0b10001, 0b10001, 0b01010, 0b00100, 0b01010, 0b10001, 0b10001, 0b00000, 0b00000], // 'X'
    [0b10001, 0b10001, 0b01010, 0b00100, 0b00100, 0b00100, 0b00100, 0b00000, 0b00000], // 'Y'
    [0b11111, 0b00001, 0b00010, 0b00100, 0b01000, 0b10000, 0b11111, 0b00000, 0b00000], // 'Z'
    [0b01110, 0b01000, 0b01000, 0b01000, 0b01000, 0b01000, 0b01110, 0b00000, 0b00000], // '['
    [0b10000, 0b01000, 0b01000, 0b00100, 0b00010, 0b00010, 0b00001, 0b00000, 0b00000], // '\\'
    [0b01110, 0b00010, 0b00010, 0b00010, 0b00010, 0b00010, 0b01110, 0b00000, 0b00000], // ']'
    [0b00100, 0b01010, 0b10001, 0b00000, 0b00000, 0b00000, 0b00000, 0b00000, 0b00000], // '^'
    [0b00000, 0b00000, 0b00000, 0b00000, 0b00000, 0b00000, 0b00000, 0b11111, 0b00000], // '_'
    [0b01000, 0b00100, 0b00010, 0b00000, 0b00000, 0b00000, 0b00000, 0b00000, 0b00000], // '`'
    [0b00000, 0b00000, 0b01110, 0b00001, 0b01111, 0b10001, 0b01111, 0b00000, 0b00000], // 'a'
    [0b10000, 0b10000, 0b10110, 0b11001, 0b10001, 0b10001, 0b11110, 0b00000, 0b00000], // 'b'
    [0b00000, 0b00000, 0b01110, 0b10000, 0b10000, 0b10001, 0b01110, 0b00000, 0b00000], // 'c'
    [0b00001, 0b00001, 0b01101, 0b10011, 0b10001, 0b10001, 0b01111, 0b00000, 0b00000], // 'd'
    [0b00000, 0b00000, 0b01110, 0b10001, 0b11111, 0b10000, 0b01110, 0b00000, 0b00000], // 'e'
    [0b00110, 0b01001, 0b01000, 0b11100, 0b01000, 0b01000, 0b01000, 0b00000, 0b00000], // 'f'
    [0b00000, 0b00000, 0b01111, 0b10001, 0b10001, 0b10001, 0b01111, 0b00001, 0b01110], // 'g'
    [0b10000, 0b10000, 0b10110, 0b11001, 0b10001, 0b10001, 0b10001, 0b00000, 0b00000], // 'h'
    [0b00100, 0b00000, 0b01100, 0b00100, 0b00100, 0b00100, 0b01110, 0b00000, 0b00000], // 'i'
    [0b00010, 0b00000, 0b00110, 0b00010, 0b00010, 0b00010, 0b00010, 0b10010, 0b01100], // 'j'
    [0b10000, 0b10000, 0b10010, 0b10100, 0b11000, 0b10100, 0b10010, 0b00000, 0b00000], // 'k'
    [0b01100, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b01110, 0b00000, 0b00000], // 'l'
    [0b00000, 0b00000, 0b11010, 0b10101, 0b10101, 0b10101, 0b10101, 0b00000, 0b00000], // 'm'
    [0b00000, 0b00000, 0b10110, 0b11001, 0b10001, 0b10001, 0b10001, 0b00000, 0b00000], // 'n'
    [0b00000, 0b00000, 0b01110, 0b10001, 0b10001, 0b10001, 0b01110, 0b00000, 0b00000], // 'o'
    [0b00000, 0b00000, 0b11110, 0b10001, 0b10001, 0b10001, 0b11110, 0b10000, 0b10000], // 'p'
    [0b00000, 0b00000, 0b01111, 0b10001, 0b10001, 0b10001, 0b01111, 0b00001, 0b00001], // 'q'
    [0b00000, 0b00000, 0b10110, 0b11001, 0b10000, 0b10000, 0b10000, 0b00000, 0b00000], // 'r'
    [0b00000, 0b00000, 0b01111, 0b10000, 0b01110, 0b00001, 0b11110, 0b00000, 0b00000], // 's'
    [0b01000, 0b01000, 0b11100, 0b01000, 0b01000, 0b01001, 0b00110, 0b00000, 0b00000], // 't'
    [0b00000, 0b00000, 0b10001, 0b10001, 0b10001, 0b10011, 0b01101, 0b00000, 0b00000], // 'u'
    [0b00000, 0b00000, 0b10001, 0b10001, 0b10001, 0b01010, 0b00100, 0b00000, 0b00000], // 'v'
    [0b00000, 0b00000, 0b10001, 0b10001, 0b10101, 0b10101, 0b01010, 0b00000, 0b00000], // 'w'
    [0b00000, 0b00000, 0b10001, 0b01010, 0b00100, 0b01010, 0b10001, 0b00000, 0b00000], // 'x'
    [0b00000, 0b00000, 0b10001, 0b10001, 0b10001, 0b10001, 0b01111, 0b00001, 0b01110], // 'y'
    [0b00000, 0b00000, 0b11111, 0b00010, 0b00100, 0b01000, 0b11111, 0b00000, 0b00000], // 'z'
    [0b00011, 0b00100, 0b00100, 0b01000, 0b00100, 0b00100, 0b00011, 0b00000, 0b00000], // '{'
    [0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b00000, 0b00000], // '|'
    [0b11000, 0b00100, 0b00100, 0b00010, 0b00100, 0b00100, 0b11000, 0b00000, 0b00000], // '}'
    [0b00000, 0b00000, 0b01000, 0b10101, 0b00010, 0b00000, 0b00000, 0b00000, 0b00000], // '~'
];

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::path::PathBuf;

    fn point(x: f64, y: f64, label: &str) -> Point {
        Point { x, y, label: label.to_string() }
    }

    fn chart(series: Vec<Series>) -> Chart {
        Chart {
            title: "SQNR against storage".to_string(),
            x_label: "bits per element".to_string(),
            y_label: "SQNR (dB)".to_string(),
            series,
        }
    }

    /// Two tensors, three schemes each, with labels that need escaping.
    fn sample() -> Chart {
        chart(vec![
            Series {
                label: "layers.0.q_proj <w&b>".to_string(),
                points: vec![
                    point(4.25, 18.5, "int4:g128:asym"),
                    point(4.5, 21.0, "nvfp4"),
                    point(8.25, 40.0, "mxfp8 \"e4m3\""),
                ],
            },
            Series {
                label: "embed".to_string(),
                points: vec![point(4.25, 12.0, "mxfp4"), point(16.0, 80.0, "bf16"), point(3.0, -5.0, "a<b & c")],
            },
        ])
    }

    fn decode(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
        let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
        let mut reader = decoder.read_info().expect("PNG header");
        let mut buf = vec![0; reader.output_buffer_size().expect("buffer size")];
        let info = reader.next_frame(&mut buf).expect("PNG data");
        assert_eq!(info.color_type, png::ColorType::Rgb);
        assert_eq!(info.bit_depth, png::BitDepth::Eight);
        buf.truncate(info.buffer_size());
        (info.width, info.height, buf)
    }

    fn pixel(image: &[u8], width: u32, (x, y): (i64, i64)) -> Rgb {
        let at = (y as usize * width as usize + x as usize) * 3;
        Rgb(image[at], image[at + 1], image[at + 2])
    }

    /// Checks the PNG of `chart` puts every finite point, in its series' colour, where the layout says.
    fn assert_points_drawn(chart: &Chart) {
        let frame = Scene::new(chart).unwrap().frame;
        let (width, height, image) = decode(&png(chart).unwrap());
        assert_eq!((width, height), (WIDTH, HEIGHT));
        for (i, series) in chart.series.iter().enumerate() {
            for p in series.points.iter().filter(|p| p.x.is_finite() && p.y.is_finite()) {
                let at = raster(frame.to_pixel(p.x, p.y));
                let plot = frame.plot;
                assert!(
                    (plot.left as i64..=plot.right as i64).contains(&at.0)
                        && (plot.top as i64..=plot.bottom as i64).contains(&at.1),
                    "point ({}, {}) at {at:?} is outside the plot {plot:?}",
                    p.x,
                    p.y
                );
                assert_eq!(pixel(&image, width, at), PALETTE[i], "point ({}, {}) of series {i} at {at:?}", p.x, p.y);
            }
        }
    }

    /// Whether every element opened in `xml` is closed, in order. Skips the declaration, and rejects a
    /// `<` or `&` in text that is not part of a tag or an entity.
    fn is_balanced_xml(xml: &str) -> bool {
        let mut open: Vec<&str> = Vec::new();
        let mut rest = xml;
        while let Some(start) = rest.find(['<', '&']) {
            if rest[start..].starts_with('&') {
                let entity = &rest[start..];
                let known = ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;"];
                if !known.iter().any(|e| entity.starts_with(e)) {
                    return false;
                }
                rest = &rest[start + 1..];
                continue;
            }
            let Some(len) = rest[start..].find('>') else { return false };
            let tag = &rest[start + 1..start + len];
            rest = &rest[start + len + 1..];
            if tag.contains('<') {
                return false;
            }
            if tag.starts_with('?') {
                continue;
            }
            if let Some(name) = tag.strip_prefix('/') {
                if open.pop() != Some(name.trim()) {
                    return false;
                }
            } else if !tag.ends_with('/') {
                open.push(tag.split_whitespace().next().unwrap_or(""));
            }
        }
        open.is_empty()
    }

    fn scratch_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("lowp-plot-test-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn files_in(dir: &Path) -> Vec<String> {
        fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect()
    }

    #[test]
    fn svg_names_every_series_and_point_escaped() {
        let svg = svg(&sample()).unwrap();
        for text in ["layers.0.q_proj &lt;w&amp;b&gt;", "embed", "int4:g128:asym", "nvfp4", "mxfp4", "bf16"] {
            assert!(svg.contains(text), "{text} missing");
        }
        assert!(svg.contains("mxfp8 &quot;e4m3&quot;"));
        assert!(svg.contains("a&lt;b &amp; c"));
        assert!(!svg.contains("<w&b>") && !svg.contains("a<b"));
        assert!(svg.contains("SQNR against storage") && svg.contains("bits per element"));
    }

    #[test]
    fn svg_has_one_marker_per_point() {
        let svg = svg(&sample()).unwrap();
        assert_eq!(svg.matches(r#"class="marker""#).count(), 6);
        assert_eq!(svg.matches(r#"class="legend-marker""#).count(), 2);
        // Each series with two or more points gets a line.
        assert_eq!(svg.matches("<polyline").count(), 2);
    }

    #[test]
    fn svg_is_balanced_xml() {
        let svg = svg(&sample()).unwrap();
        assert!(svg.starts_with("<?xml"));
        assert!(is_balanced_xml(&svg));
        // The checker itself catches what it is meant to.
        assert!(!is_balanced_xml("<svg><text>a</svg>"));
        assert!(!is_balanced_xml("<svg><text>a<b</text></svg>"));
        assert!(!is_balanced_xml("<svg>a & b</svg>"));
        // Control characters never reach the document.
        let mut odd = sample();
        odd.series[0].label = "tab\there\u{1}".to_string();
        let svg = super::svg(&odd).unwrap();
        assert!(is_balanced_xml(&svg) && !svg.contains('\u{1}') && svg.contains("tab\u{fffd}here\u{fffd}"));
    }

    #[test]
    fn png_draws_points_in_series_colours() {
        let chart = sample();
        assert_points_drawn(&chart);
        let (_, _, image) = decode(&png(&chart).unwrap());
        let background = [BACKGROUND.0, BACKGROUND.1, BACKGROUND.2];
        let drawn = image.chunks(3).filter(|p| *p != background).count();
        // Text, grid, frame, lines and markers: well over a few hundred pixels, still mostly white.
        assert!(drawn > 2000 && drawn < image.len() / 3 / 2, "{drawn} pixels drawn");
    }

    #[test]
    fn png_text_is_drawn_where_the_layout_puts_it() {
        let scene = Scene::new(&sample()).unwrap();
        let canvas = scene.rasterize();
        let title = scene
            .shapes
            .iter()
            .find_map(|s| match s {
                Shape::Text(t) if t.text == "SQNR against storage" => Some(t.clone()),
                _ => None,
            })
            .unwrap();
        // The title is large and centred: some ink lies in the band above its baseline, none well below it.
        let (x, y) = raster(title.at);
        let half = (title.size.width(&title.text) / 2.0) as i64;
        let ink_in = |rows: std::ops::Range<i64>| {
            rows.flat_map(|row| (x - half..x + half).map(move |col| (col, row)))
                .filter(|&(col, row)| pixel(&canvas.pixels, canvas.width, (col, row)) == INK)
                .count()
        };
        assert!(ink_in(y - 14..y) > 100);
        assert_eq!(ink_in(y + 5..y + 12), 0);
    }

    #[test]
    fn write_picks_the_format_by_extension() {
        let dir = scratch_dir("formats");
        let chart = sample();
        write(&dir.join("a.svg"), &chart).unwrap();
        write(&dir.join("b.PNG"), &chart).unwrap();
        assert!(fs::read_to_string(dir.join("a.svg")).unwrap().starts_with("<?xml"));
        assert!(fs::read(dir.join("b.PNG")).unwrap().starts_with(b"\x89PNG\r\n\x1a\n"));
        let mut names = files_in(&dir);
        names.sort();
        assert_eq!(names, ["a.svg", "b.PNG"], "no temporary file is left behind");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn write_refuses_other_extensions_and_leaves_nothing() {
        let dir = scratch_dir("refuse");
        for name in ["chart.jpg", "chart", "chart.svg.txt"] {
            let err = write(&dir.join(name), &sample()).unwrap_err().to_string();
            assert!(err.contains("svg") && err.contains("png"), "{err}");
        }
        let empty = chart(vec![]);
        assert!(write(&dir.join("empty.svg"), &empty).is_err());
        assert!(files_in(&dir).is_empty(), "{:?}", files_in(&dir));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn write_failure_names_the_file() {
        let dir = scratch_dir("missing");
        let target = dir.join("no-such-dir").join("plot.svg");
        let err = format!("{:#}", write(&target, &sample()).unwrap_err());
        assert!(err.contains("plot.svg"), "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn non_finite_points_are_left_out() {
        let mut chart = sample();
        chart.series[0].points.push(point(f64::NAN, 3.0, "nan-x"));
        chart.series[1].points.push(point(5.0, f64::INFINITY, "inf-y"));
        chart.series[1].points.push(point(f64::NEG_INFINITY, f64::NAN, "both"));
        let svg = svg(&chart).unwrap();
        assert_eq!(svg.matches(r#"class="marker""#).count(), 6);
        assert!(!svg.contains("nan-x") && !svg.contains("inf-y") && !svg.contains("both"));
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
        assert_points_drawn(&chart);
        // The range is the one of the finite points alone.
        assert_eq!(Scene::new(&chart).unwrap().frame.x.ticks, Scene::new(&sample()).unwrap().frame.x.ticks);
        // A series with nothing finite stays in the legend, saying why it has no points.
        chart.series.push(Series { label: "empty".to_string(), points: vec![point(f64::NAN, 1.0, "p")] });
        assert!(super::svg(&chart).unwrap().contains("empty (no finite points)"));
    }

    #[test]
    fn a_chart_without_finite_points_is_an_error() {
        let no_series = chart(vec![]);
        let no_points = chart(vec![Series { label: "t".to_string(), points: vec![] }]);
        let only_nan = chart(vec![Series { label: "t".to_string(), points: vec![point(f64::NAN, f64::NAN, "x")] }]);
        for chart in [no_series, no_points, only_nan] {
            let err = svg(&chart).unwrap_err().to_string();
            assert!(err.contains("nothing to plot"), "{err}");
            assert!(png(&chart).is_err());
        }
    }

    #[test]
    fn degenerate_ranges_still_render() {
        let one_x = chart(vec![Series {
            label: "t".to_string(),
            points: vec![point(4.0, 10.0, "a"), point(4.0, 20.0, "b"), point(4.0, 35.0, "c")],
        }]);
        let one_y = chart(vec![Series {
            label: "t".to_string(),
            points: vec![point(3.0, 7.5, "a"), point(8.0, 7.5, "b"), point(16.0, 7.5, "c")],
        }]);
        let single = chart(vec![Series { label: "t".to_string(), points: vec![point(0.0, 0.0, "zero")] }]);
        let huge = chart(vec![Series {
            label: "t".to_string(),
            points: vec![point(-f64::MAX, f64::MAX, "a"), point(f64::MAX, -f64::MAX, "b")],
        }]);
        let tiny = chart(vec![Series {
            label: "t".to_string(),
            points: vec![point(5e-324, 1e-310, "a"), point(5e-324, 1e-310, "b")],
        }]);
        for chart in [one_x, one_y, single, huge, tiny] {
            let scene = Scene::new(&chart).unwrap();
            for axis in [&scene.frame.x, &scene.frame.y] {
                assert!(axis.lo.is_finite() && axis.hi.is_finite() && axis.lo < axis.hi, "{axis:?}");
                assert!(!axis.ticks.is_empty() && axis.ticks.iter().all(|t| t.is_finite()), "{axis:?}");
            }
            assert!(is_balanced_xml(&svg(&chart).unwrap()));
            assert_points_drawn(&chart);
        }
    }

    #[test]
    fn ticks_fall_on_nice_steps_inside_the_range() {
        for (min, max) in [(3.0, 16.5), (-5.0, 120.0), (0.001, 0.004), (1e6, 3e9), (-2.0, -1.0)] {
            let axis = Axis::new(min, max, 8.0);
            assert!(axis.lo < min && axis.hi > max);
            let mantissa = axis.step / 10f64.powf(axis.step.log10().floor());
            assert!([1.0, 2.0, 5.0].iter().any(|m| (mantissa - m).abs() < 1e-9), "step {}", axis.step);
            assert!((4..=12).contains(&axis.ticks.len()), "{axis:?}");
            for &t in &axis.ticks {
                assert!(axis.lo <= t && t <= axis.hi);
                let k = t / axis.step;
                assert!((k - k.round()).abs() < 1e-6, "tick {t} is not a multiple of {}", axis.step);
            }
        }
        assert_eq!(Axis::new(3.0, 16.5, 8.0).ticks, [4.0, 6.0, 8.0, 10.0, 12.0, 14.0, 16.0]);
    }

    #[test]
    fn tick_labels_are_short_and_exact() {
        assert_eq!(format_tick(0.0, 20.0), "0");
        assert_eq!(format_tick(-0.0, 20.0), "0");
        assert_eq!(format_tick(-20.0, 20.0), "-20");
        assert_eq!(format_tick(2.5, 0.5), "2.5");
        assert_eq!(format_tick(0.30000000000000004, 0.1), "0.3");
        assert_eq!(format_tick(0.002, 0.001), "0.002");
        assert_eq!(format_tick(3e9, 5e8), "3.0e9");
        assert_eq!(format_tick(1.5e-5, 5e-6), "1.5e-5");
    }

    #[test]
    fn long_text_loses_its_middle() {
        assert_eq!(shorten("short", 10), "short");
        assert_eq!(shorten("model.layers.10.self_attn.q_proj.weight", 20), "model.la...oj.weight");
        assert_eq!(shorten("model.layers.10.self_attn.q_proj.weight", 20).chars().count(), 20);
        assert_eq!(shorten("αβγδεζηθ", 5).chars().count(), 5);
    }

    #[test]
    fn font_covers_printable_ascii_and_boxes_the_rest() {
        for c in ' '..='~' {
            let g = glyph(c);
            assert!(g.iter().all(|row| *row < 1 << GLYPH_COLUMNS), "{c:?} is too wide");
            assert_ne!(g, &MISSING_GLYPH, "{c:?}");
            assert_eq!(c == ' ', g.iter().all(|row| *row == 0), "{c:?} should have ink unless it is a space");
        }
        assert_eq!(glyph('µ'), &MISSING_GLYPH);
        // Letters of either case differ, so labels keep their case.
        for (lower, upper) in ('a'..='z').zip('A'..='Z') {
            assert_ne!(glyph(lower), glyph(upper), "{lower}");
        }
    }

    #[test]
    fn many_series_fit_the_legend() {
        let series = (0..60)
            .map(|i| Series {
                label: format!("model.layers.{i}.mlp.down_proj.weight.with.a.long.name"),
                points: vec![point(f64::from(i), f64::from(i % 7), "int8")],
            })
            .collect();
        let chart = chart(series);
        let svg = svg(&chart).unwrap();
        assert!(svg.contains(" more</text>"));
        assert!(is_balanced_xml(&svg));
        assert_eq!(svg.matches(r#"class="marker""#).count(), 60);
        let frame = Scene::new(&chart).unwrap().frame;
        assert!(frame.plot.width() > 400.0, "{:?}", frame.plot);
    }
}
