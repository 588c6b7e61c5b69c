//! `lowp report`: how much error each format and rounding mode puts into realistic tensors, and how fast
//! lowp rounds them. Metrics follow FORMATS.md §6 and are accumulated in f64.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use lowp::{Element, Format, Rounding, RoundingMode};
use serde_json::{json, Value};

use crate::npy::{self, Data};
use crate::table::{mega, pct, sci, Align, Table};
use crate::tensors;
use crate::timing::{best_of, per_second, Progress};

pub struct Options {
    pub input: Option<PathBuf>,
    pub formats: Vec<Format>,
    pub modes: Vec<RoundingMode>,
    pub seed: u64,
    pub elements: usize,
    pub json: bool,
}

/// The default formats: what people choose between for training and inference.
pub const DEFAULT_FORMATS: &[&str] =
    &["bfloat16", "float16", "tf32", "float8_e5m2", "float8_e4m3fn", "float6_e3m2fn", "float6_e2m3fn", "float4_e2m1fn"];
pub const DEFAULT_MODES: &[RoundingMode] =
    &[RoundingMode::NearestEven, RoundingMode::TowardZero, RoundingMode::Stochastic];

/// Timed repetitions of each rounding (the best counts).
const REPS: usize = 3;

/// Error statistics of one rounding of one tensor.
///
/// Inputs that are inf or NaN are left out of everything. Finite inputs that come out as inf or NaN
/// (overflow in formats that do not saturate) are counted in `nonfinite` and left out of the error
/// metrics, which would otherwise all be inf or NaN.
#[derive(Default)]
struct Metrics {
    elements: usize,
    input_nonfinite: usize,
    /// Elements the error metrics are computed over: finite input and finite output.
    measured: usize,
    nonfinite: usize,
    saturated: usize,
    flushed: usize,
    sum_x2: f64,
    sum_e2: f64,
    max_abs: f64,
    max_rel: f64,
}

impl Metrics {
    fn of<T: Element>(fmt: &Format, x: &[T], q: &[T]) -> Metrics {
        let max = fmt.max();
        let mut m = Metrics { elements: x.len(), ..Metrics::default() };
        for (&x, &q) in x.iter().zip(q) {
            let (x, q) = (x.to_f64(), q.to_f64());
            if !x.is_finite() {
                m.input_nonfinite += 1;
                continue;
            }
            if !q.is_finite() {
                m.nonfinite += 1;
                continue;
            }
            if x.abs() > max && q.abs() == max {
                m.saturated += 1;
            }
            if x != 0.0 && q == 0.0 {
                m.flushed += 1;
            }
            let e = (x - q).abs();
            m.measured += 1;
            m.sum_x2 += x * x;
            m.sum_e2 += e * e;
            m.max_abs = m.max_abs.max(e);
            if x != 0.0 {
                m.max_rel = m.max_rel.max(e / x.abs());
            }
        }
        m
    }

    fn frac(&self, count: usize) -> f64 {
        if self.elements == 0 {
            0.0
        } else {
            count as f64 / self.elements as f64
        }
    }

    fn mse(&self) -> f64 {
        if self.measured == 0 {
            f64::NAN
        } else {
            self.sum_e2 / self.measured as f64
        }
    }

    /// inf when there is no error at all.
    fn sqnr_db(&self) -> f64 {
        10.0 * (self.sum_x2 / self.sum_e2).log10()
    }
}

struct Row {
    tensor: String,
    format: Format,
    mode: RoundingMode,
    dtype: &'static str,
    metrics: Metrics,
    elements_per_s: f64,
}

impl Row {
    fn json(&self) -> Value {
        let m = &self.metrics;
        // serde_json writes inf and NaN as null; SQNR without error is reported as null with `exact: true`.
        json!({
            "tensor": self.tensor,
            "format": self.format.name(),
            "options": self.format.to_string(),
            "mode": self.mode.name(),
            "dtype": self.dtype,
            "elements": m.elements,
            "bits_per_element": self.format.bits(),
            "mse": m.mse(),
            "sqnr_db": m.sqnr_db(),
            "exact": m.sum_e2 == 0.0,
            "max_abs_error": m.max_abs,
            "max_rel_error": m.max_rel,
            "overflow_fraction": m.frac(m.nonfinite + m.saturated),
            "nonfinite_fraction": m.frac(m.nonfinite),
            "saturated_fraction": m.frac(m.saturated),
            "flushed_to_zero_fraction": m.frac(m.flushed),
            "measured_elements": m.measured,
            "input_nonfinite": m.input_nonfinite,
            "elements_per_s": self.elements_per_s,
        })
    }
}

/// One tensor to report on.
struct Input {
    name: String,
    description: String,
    data: Data,
}

pub fn run(opts: &Options, out: &mut dyn Write) -> Result<()> {
    if opts.input.is_none() && opts.elements == 0 {
        bail!("--elements must be at least 1");
    }
    let inputs: Vec<Input> = match &opts.input {
        Some(path) => {
            let a = npy::read(path, npy::FLOATS, "report")?;
            let name = path.file_stem().map_or("input".into(), |s| s.to_string_lossy().into_owned());
            let description = format!("{} {:?} from {}", a.data.kind().name(), a.shape, path.display());
            vec![Input { name, description, data: a.data }]
        }
        None => tensors::builtin(opts.elements)
            .into_iter()
            .map(|t| Input { name: t.name.into(), description: t.description, data: Data::F32(t.data) })
            .collect(),
    };

    let mut progress = Progress::new("report", inputs.len() * opts.formats.len() * opts.modes.len());
    let mut records = Vec::new();
    for input in &inputs {
        let rows = match &input.data {
            Data::F32(x) => rows(opts, &input.name, x, &mut progress)?,
            Data::F64(x) => rows(opts, &input.name, x, &mut progress)?,
            _ => unreachable!("npy::read accepts only float data here"),
        };
        if opts.json {
            records.extend(rows.iter().map(Row::json));
        } else {
            print_table(out, input, &rows)?;
        }
    }
    drop(progress);
    if opts.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&records)?)?;
    } else {
        writeln!(
            out,
            "saturated: finite inputs beyond max that came out as ±max. inf/NaN*: finite inputs that overflowed to \
             inf or NaN;\n  they are left out of the error metrics, which are starred (*) where that happened. \
             flushed: nonzero inputs\n  that became 0. Melem/s: lowp::round, best of {REPS}, {} threads. \
             Stochastic rounding uses seed {}.",
            rayon::current_num_threads(),
            opts.seed
        )?;
        if opts.formats.iter().any(|f| f.bits() <= 6) {
            writeln!(
                out,
                "Formats of 6 bits or fewer are meant to be used with per-block scales (OCP MX, NVFP4); unscaled, \
                 small values\n  flush to 0, as the 'flushed' column shows."
            )?;
        }
    }
    Ok(())
}

fn rows<T: Element>(opts: &Options, tensor: &str, x: &[T], progress: &mut Progress) -> Result<Vec<Row>> {
    let mut y = x.to_vec(); // preallocated and touched before timing
    let mut rows = Vec::new();
    for fmt in &opts.formats {
        // Formats wider than the data (float64 on float32 data) cannot be emulated in it: say so, go on.
        if let Err(e) = lowp::round(fmt, &Rounding::default(), &x[..0], &mut y[..0]) {
            eprintln!("note: {tensor}: skipping {fmt}: {e}");
            continue;
        }
        for &mode in &opts.modes {
            progress.step(&format!("{tensor} {} {mode}", fmt.name()));
            let cfg = Rounding::new(mode).with_seed(opts.seed);
            // The rounding is a pure function of (data, seed), so the last timed output is the result.
            let d = best_of(0, REPS, || lowp::round(fmt, &cfg, x, &mut y))
                .with_context(|| format!("rounding {tensor} to {fmt} with {mode}"))?;
            rows.push(Row {
                tensor: tensor.to_string(),
                format: fmt.clone(),
                mode,
                dtype: T::DTYPE,
                metrics: Metrics::of(fmt, x, &y),
                elements_per_s: per_second(x.len(), d),
            });
        }
    }
    Ok(rows)
}

fn print_table(out: &mut dyn Write, input: &Input, rows: &[Row]) -> Result<()> {
    let n = rows.first().map_or(0, |r| r.metrics.elements);
    let dtype = input.data.kind().name();
    writeln!(out, "== {}: {} ({n} {dtype} elements)", input.name, input.description)?;
    let mut t = Table::new(&[
        ("format", Align::Left),
        ("mode", Align::Left),
        ("bits", Align::Right),
        ("MSE", Align::Right),
        ("SQNR dB", Align::Right),
        ("max abs err", Align::Right),
        ("max rel err", Align::Right),
        ("saturated", Align::Right),
        ("inf/NaN*", Align::Right),
        ("flushed", Align::Right),
        ("Melem/s", Align::Right),
    ]);
    let mut last = "";
    for r in rows {
        let m = &r.metrics;
        let name = if r.format.name() == last { String::new() } else { r.format.to_string() };
        last = r.format.name();
        let sqnr = m.sqnr_db();
        // The star ties error metrics that leave out overflowed elements to the inf/NaN* column.
        let star = if m.nonfinite > 0 { "*" } else { "" };
        t.row(vec![
            name,
            r.mode.name(),
            r.format.bits().to_string(),
            format!("{}{star}", sci(m.mse())),
            if sqnr.is_infinite() { format!("exact{star}") } else { format!("{sqnr:.2}{star}") },
            format!("{}{star}", sci(m.max_abs)),
            format!("{}{star}", sci(m.max_rel)),
            pct(m.frac(m.saturated)),
            pct(m.frac(m.nonfinite)),
            pct(m.frac(m.flushed)),
            mega(r.elements_per_s),
        ]);
    }
    write!(out, "{}", t.render())?;
    if let Some(r) = rows.iter().find(|r| r.metrics.input_nonfinite > 0) {
        writeln!(out, "({} inputs are inf or NaN and are left out of every column)", r.metrics.input_nonfinite)?;
    }
    writeln!(out)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_leave_out_nonfinite_outputs() {
        let f = Format::parse("float8_e4m3fn").unwrap();
        let x = [1.0f32, 1000.0, 0.0001, -3.0, f32::NAN, 460.0];
        let mut q = [0.0f32; 6];
        lowp::round(&f, &Rounding::default(), &x, &mut q).unwrap();
        let m = Metrics::of(&f, &x, &q);
        assert_eq!((m.input_nonfinite, m.nonfinite, m.measured), (1, 1, 4));
        assert_eq!(m.flushed, 1); // 0.0001 < 2^-10
        assert_eq!(m.saturated, 1); // 460 -> 448 (nearest), beyond max
        assert!(m.mse().is_finite() && m.sqnr_db().is_finite());
        let e = 0.0001f32 as f64;
        assert_eq!(m.max_rel, 1.0);
        assert_eq!(m.max_abs, 12.0);
        assert!(m.sum_e2 >= 144.0 + e * e);
    }
}
