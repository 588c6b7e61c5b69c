//! `lowp report --schemes`: the error and storage of quantization schemes on the user's tensors (or the
//! built-in ones) in one table per tensor, the quantize and dequantize throughput, and optionally a chart of
//! SQNR against bits per element.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use lowp::quant::{Floats, QuantizedTensor, Scheme};
use lowp::{Element, Rounding};
use serde_json::{json, Value};

use crate::plot;
use crate::quantize::{resolve_axis, ErrorStats, Source};
use crate::table::{mega, sci, Align, Table};
use crate::tensors;
use crate::timing::{best_of, per_second, Progress};

/// What `--schemes default` compares: the schemes people choose between for weights.
pub const DEFAULT_SCHEMES: &[&str] = &[
    "int8:channel:sym",
    "int8:g128:sym",
    "int4:g128:asym",
    "int4:g128:sym",
    "int3:g128:asym",
    "mxfp8_e4m3",
    "mxfp6_e2m3",
    "mxfp4",
    "nvfp4",
    "bfp8:b16",
    "bitmod4:g128",
    "bitmod3:g128",
    "nf4:g64",
];

/// Columns of the built-in tensors (rows of 1024, like a weight matrix's input dimension).
const BUILTIN_COLUMNS: usize = 1024;
/// Timed repetitions (the best counts).
const REPS: usize = 3;

pub struct Options {
    pub input: Option<PathBuf>,
    pub schemes: Vec<Scheme>,
    pub rounding: Rounding,
    pub axis: isize,
    pub elements: usize,
    pub json: bool,
    pub plot: Option<PathBuf>,
}

struct Row {
    tensor: String,
    scheme: String,
    elements: usize,
    bits_per_element: f64,
    mse: f64,
    sqnr_db: f64,
    max_abs: f64,
    measured: usize,
    quantize_per_s: f64,
    dequantize_per_s: f64,
}

impl Row {
    fn json(&self) -> Value {
        json!({
            "tensor": self.tensor,
            "scheme": self.scheme,
            "elements": self.elements,
            "bits_per_element": self.bits_per_element,
            "mse": self.mse,
            "sqnr_db": self.sqnr_db,
            "exact": self.mse == 0.0,
            "max_abs_error": self.max_abs,
            "measured_elements": self.measured,
            "quantize_elements_per_s": self.quantize_per_s,
            "dequantize_elements_per_s": self.dequantize_per_s,
        })
    }
}

pub fn run(opts: &Options, out: &mut dyn Write) -> Result<()> {
    if let Some(path) = &opts.plot {
        plot::check_path(path)?;
    }
    let mut records = Vec::new();
    let mut chart = plot::Chart {
        title: "lowp report: SQNR against storage".into(),
        x_label: "bits per element (scales and metadata included)".into(),
        y_label: "SQNR (dB)".into(),
        series: Vec::new(),
    };
    let mut each = |name: &str, shape: &[usize], data: &Floats, out: &mut dyn Write| -> Result<()> {
        let axis = resolve_axis(opts.axis, shape).with_context(|| format!("tensor `{name}`"))?;
        let rows = match data {
            Floats::F32(x) => rows(opts, name, x, shape, axis)?,
            Floats::F64(x) => rows(opts, name, x, shape, axis)?,
        };
        chart.series.push(plot::Series {
            label: name.to_string(),
            points: rows
                .iter()
                .map(|r| plot::Point { x: r.bits_per_element, y: r.sqnr_db, label: r.scheme.clone() })
                .collect(),
        });
        if opts.json {
            records.extend(rows.iter().map(Row::json));
        } else {
            print_table(out, name, shape, data, axis, &rows)?;
        }
        Ok(())
    };
    match &opts.input {
        None => {
            if opts.elements == 0 {
                bail!("--elements must be at least 1");
            }
            let tensors = tensors::builtin(opts.elements);
            let mut bar = Progress::new("report", tensors.len());
            for t in tensors {
                bar.step(t.name);
                let n = t.data.len();
                let shape = if n.is_multiple_of(BUILTIN_COLUMNS) {
                    vec![n / BUILTIN_COLUMNS, BUILTIN_COLUMNS]
                } else {
                    vec![n]
                };
                each(t.name, &shape, &Floats::F32(t.data), out)?;
            }
        }
        Some(path) => {
            let mut src = Source::open(path, "report")?;
            let names = src.float_names();
            if names.is_empty() {
                bail!("{}: no float tensor to report on", path.display());
            }
            let mut bar = Progress::new("report", names.len());
            for name in names {
                bar.step(&name);
                let t = src.load(&name)?;
                each(&t.name, &t.shape, &t.data, out)?;
            }
        }
    }
    if opts.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&records)?)?;
    } else {
        writeln!(
            out,
            "bits/elem: storage of codes, scales, zero points and type ids per element. Errors are over elements whose \
             input\n  and output are finite. Melem/s: quantize (packed result) and dequantize, best of {REPS}, {} \
             threads.",
            rayon::current_num_threads()
        )?;
    }
    if let Some(path) = &opts.plot {
        plot::write(path, &chart).with_context(|| format!("cannot write the plot {}", path.display()))?;
        if !opts.json {
            writeln!(out, "plot: {}", path.display())?;
        }
    }
    Ok(())
}

fn rows<T: Element>(opts: &Options, tensor: &str, x: &[T], shape: &[usize], axis: usize) -> Result<Vec<Row>> {
    let mut y = vec![T::from_f64(0.0); x.len()];
    let mut rows = Vec::new();
    for scheme in &opts.schemes {
        let what = || format!("cannot quantize `{tensor}` {shape:?} with {scheme}");
        let mut q = None;
        let dq = best_of(0, REPS, || {
            q = Some(QuantizedTensor::quantize(scheme, &opts.rounding, x, shape, axis)?);
            Ok::<(), lowp::Error>(())
        })
        .with_context(what)?;
        let q = q.expect("quantized at least once");
        let dd = best_of(0, REPS, || q.dequantize(&mut y)).with_context(what)?;
        let err = ErrorStats::of(x, &y);
        rows.push(Row {
            tensor: tensor.to_string(),
            scheme: scheme.to_string(),
            elements: x.len(),
            bits_per_element: q.bits_per_element(),
            mse: err.mse(),
            sqnr_db: err.sqnr_db(),
            max_abs: err.max_abs,
            measured: err.measured,
            quantize_per_s: per_second(x.len(), dq),
            dequantize_per_s: per_second(x.len(), dd),
        });
    }
    Ok(rows)
}

fn print_table(
    out: &mut dyn Write,
    name: &str,
    shape: &[usize],
    data: &Floats,
    axis: usize,
    rows: &[Row],
) -> Result<()> {
    let dtype = match data {
        Floats::F32(_) => "float32",
        Floats::F64(_) => "float64",
    };
    writeln!(out, "== {name}: {dtype} {shape:?}, groups and blocks along axis {axis}")?;
    let mut t = Table::new(&[
        ("scheme", Align::Left),
        ("bits/elem", Align::Right),
        ("MSE", Align::Right),
        ("SQNR dB", Align::Right),
        ("max abs err", Align::Right),
        ("quantize Melem/s", Align::Right),
        ("dequantize Melem/s", Align::Right),
    ]);
    for r in rows {
        let left_out = if r.measured < r.elements { "*" } else { "" };
        t.row(vec![
            r.scheme.clone(),
            format!("{:.3}", r.bits_per_element),
            format!("{}{left_out}", sci(r.mse)),
            if r.sqnr_db.is_infinite() { "exact".into() } else { format!("{:.2}{left_out}", r.sqnr_db) },
            format!("{}{left_out}", sci(r.max_abs)),
            mega(r.quantize_per_s),
            mega(r.dequantize_per_s),
        ]);
    }
    write!(out, "{}", t.render())?;
    if rows.iter().any(|r| r.measured < r.elements) {
        writeln!(out, "(*: some inputs or outputs are inf or NaN and are left out of the error columns)")?;
    }
    writeln!(out)?;
    Ok(())
}
