//! `lowp bench`: throughput of round, encode and decode, each beside a memcpy of the same elements
//! measured in the same run and thread pool, so the ratio stays meaningful on a noisy or shared machine.

use std::io::Write;

use anyhow::{bail, Context, Result};
use lowp::codes::code_width;
use lowp::{CodeInt, Element, Format, Rounding, RoundingMode};
use rayon::prelude::*;
use serde_json::{json, Value};

use crate::table::{mega, Align, Table};
use crate::tensors;
use crate::timing::{best_of, per_second, Progress};

pub struct Options {
    /// When not empty: time these schemes' quantize and dequantize instead of the formats.
    pub schemes: Vec<lowp::quant::Scheme>,
    pub formats: Vec<Format>,
    pub modes: Vec<RoundingMode>,
    pub threads: Vec<usize>,
    pub size: usize,
    pub reps: usize,
    pub seed: u64,
    pub ops: Vec<Op>,
    pub dtypes: Vec<Dtype>,
    pub json: bool,
}

/// An operation `lowp bench` can time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Op {
    Round,
    Encode,
    Decode,
}

/// A data type `lowp bench` can time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Dtype {
    F32,
    F64,
}

/// Default formats: every preset of at most 8 bits, plus the two 16-bit ones.
pub fn default_formats() -> Vec<Format> {
    Format::presets().into_iter().filter(|f| f.bits() <= 8 || matches!(f.name(), "float16" | "bfloat16")).collect()
}

/// Default modes: every deterministic mode plus stochastic.
pub fn default_modes() -> Vec<RoundingMode> {
    let mut m = RoundingMode::DETERMINISTIC.to_vec();
    m.push(RoundingMode::Stochastic);
    m
}

pub const QUICK_FORMATS: &[&str] = &["bfloat16", "float8_e4m3fn", "float4_e2m1fn"];
pub const QUICK_MODES: &[RoundingMode] = &[RoundingMode::NearestEven, RoundingMode::Stochastic];

struct Record {
    op: &'static str,
    format: String,
    mode: Option<String>,
    dtype: &'static str,
    threads: usize,
    elements: usize,
    elements_per_s: f64,
    /// Bytes read plus bytes written per element.
    bytes_per_element: f64,
    memcpy_elements_per_s: f64,
}

impl Record {
    fn gbytes_per_s(&self) -> f64 {
        self.elements_per_s * self.bytes_per_element / 1e9
    }

    fn memcpy_fraction(&self) -> f64 {
        self.elements_per_s / self.memcpy_elements_per_s
    }

    fn json(&self) -> Value {
        json!({
            "op": self.op,
            "format": self.format,
            "mode": self.mode,
            "dtype": self.dtype,
            "threads": self.threads,
            "elements": self.elements,
            "elements_per_s": self.elements_per_s,
            "gbytes_per_s": self.gbytes_per_s(),
            "memcpy_elements_per_s": self.memcpy_elements_per_s,
            "memcpy_fraction": self.memcpy_fraction(),
        })
    }
}

pub fn run(opts: &Options, out: &mut dyn Write) -> Result<()> {
    if opts.size == 0 {
        bail!("--size must be at least 1");
    }
    if opts.threads.contains(&0) {
        bail!("--threads: thread counts must be at least 1");
    }
    let data = tensors::gaussian(opts.size, 1.0, 0x5eed);
    let timed = |op| usize::from(opts.ops.contains(&op));
    let per_group = if opts.schemes.is_empty() {
        opts.formats.len() * ((timed(Op::Round) + timed(Op::Encode)) * opts.modes.len() + timed(Op::Decode))
    } else {
        opts.schemes.len() * opts.modes.len()
    };
    let mut progress = Progress::new("bench", opts.dtypes.len() * opts.threads.len() * per_group);
    let mut records = Vec::new();
    let x32 = data;
    let x64: Vec<f64> = x32.iter().map(|&v| f64::from(v)).collect();
    for &threads in &opts.threads {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .with_context(|| format!("cannot start a pool of {threads} threads"))?;
        pool.install(|| -> Result<()> {
            if opts.dtypes.contains(&Dtype::F32) {
                records.extend(group(opts, threads, &x32, &mut progress)?);
            }
            if opts.dtypes.contains(&Dtype::F64) {
                records.extend(group(opts, threads, &x64, &mut progress)?);
            }
            Ok(())
        })?;
    }
    drop(progress);
    if opts.json {
        let recs: Vec<Value> = records.iter().map(Record::json).collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&recs)?)?;
    } else {
        print_tables(out, opts, &records)?;
    }
    Ok(())
}

/// Copies with `threads` threads, in equal contiguous parts, as a bandwidth baseline.
fn memcpy<T: Copy + Send + Sync>(src: &[T], dst: &mut [T], threads: usize) {
    if threads <= 1 {
        dst.copy_from_slice(src);
    } else {
        let part = src.len().div_ceil(threads).max(1);
        dst.par_chunks_mut(part).zip(src.par_chunks(part)).for_each(|(d, s)| d.copy_from_slice(s));
    }
}

/// Every measurement for one data type and thread count (run inside the pool).
fn group<T: Element>(opts: &Options, threads: usize, x: &[T], progress: &mut Progress) -> Result<Vec<Record>> {
    let n = x.len();
    let size = std::mem::size_of::<T>();
    // Outputs are written once before timing so page faults are not measured.
    let mut y = x.to_vec();
    if !opts.schemes.is_empty() {
        return schemes(opts, threads, x, &mut y, progress);
    }
    let mut records = Vec::new();
    for fmt in &opts.formats {
        if let Err(e) = lowp::round(fmt, &Rounding::default(), &x[..0], &mut y[..0]) {
            eprintln!("note: skipping {fmt} on {} data: {e}", T::DTYPE);
            continue;
        }
        // Measured per format, right beside its kernels, so slow drift in the machine cancels out.
        let copy = best_of(1, opts.reps, || -> Result<()> {
            memcpy(x, &mut y, threads);
            Ok(())
        })?;
        let memcpy_rate = per_second(n, copy);
        let record = |op, mode: Option<RoundingMode>, rate, bytes_per_element| Record {
            op,
            format: fmt.name().to_string(),
            mode: mode.map(|m| m.name()),
            dtype: T::DTYPE,
            threads,
            elements: n,
            elements_per_s: rate,
            bytes_per_element: bytes_per_element as f64,
            memcpy_elements_per_s: memcpy_rate,
        };
        let code_bytes = (code_width(fmt) / 8) as usize;
        let modes = |op: Op| {
            if opts.ops.contains(&op) {
                opts.modes.as_slice()
            } else {
                &[]
            }
        };
        for &mode in modes(Op::Round) {
            let cfg = Rounding::new(mode).with_seed(opts.seed);
            progress.step(&format!("{} {threads}t round {} {mode}", T::DTYPE, fmt.name()));
            let d = best_of(1, opts.reps, || lowp::round(fmt, &cfg, x, &mut y))
                .with_context(|| format!("round to {fmt} with {mode}"))?;
            records.push(record("round", Some(mode), per_second(n, d), 2 * size));
        }
        for &mode in modes(Op::Encode) {
            let cfg = Rounding::new(mode).with_seed(opts.seed);
            progress.step(&format!("{} {threads}t encode {} {mode}", T::DTYPE, fmt.name()));
            let d = time_codes(fmt, x, &mut y, opts.reps, CodeOp::Encode(cfg))
                .with_context(|| format!("encode to {fmt} with {mode}"))?;
            records.push(record("encode", Some(mode), per_second(n, d), size + code_bytes));
        }
        if opts.ops.contains(&Op::Decode) {
            progress.step(&format!("{} {threads}t decode {}", T::DTYPE, fmt.name()));
            let d = time_codes(fmt, x, &mut y, opts.reps, CodeOp::Decode).with_context(|| format!("decode {fmt}"))?;
            records.push(record("decode", None, per_second(n, d), size + code_bytes));
        }
    }
    Ok(records)
}

/// Columns of the matrix the schemes quantize (blocks and groups along its rows).
const SCHEME_COLUMNS: usize = 1024;

/// Quantize (to the packed `QuantizedTensor`, allocated per call as a user's call would) and dequantize (into
/// a written buffer) for every scheme and mode, each beside a memcpy of the same elements.
fn schemes<T: Element>(
    opts: &Options,
    threads: usize,
    x: &[T],
    y: &mut [T],
    progress: &mut Progress,
) -> Result<Vec<Record>> {
    // Whole rows of the matrix (the default sizes are not multiples of 1024).
    let n = if x.len() >= SCHEME_COLUMNS { x.len() / SCHEME_COLUMNS * SCHEME_COLUMNS } else { x.len() };
    let (x, y) = (&x[..n], &mut y[..n]);
    let shape = if n.is_multiple_of(SCHEME_COLUMNS) { vec![n / SCHEME_COLUMNS, SCHEME_COLUMNS] } else { vec![n] };
    let axis = shape.len() - 1;
    let size = std::mem::size_of::<T>();
    let mut records = Vec::new();
    for scheme in &opts.schemes {
        let copy = best_of(1, opts.reps, || -> Result<()> {
            memcpy(x, y, threads);
            Ok(())
        })?;
        for &mode in &opts.modes {
            let cfg = Rounding::new(mode).with_seed(opts.seed);
            progress.step(&format!("{} {threads}t {scheme} {mode}", T::DTYPE));
            let what = || format!("quantize with {scheme} ({mode})");
            let mut q = None;
            let dq = best_of(1, opts.reps, || -> Result<()> {
                q = Some(lowp::quant::QuantizedTensor::quantize(scheme, &cfg, x, &shape, axis)?);
                Ok(())
            })
            .with_context(what)?;
            let q = q.expect("quantized at least once");
            let dd = best_of(1, opts.reps, || q.dequantize(y)).with_context(what)?;
            let packed = q.storage_bits() as f64 / 8.0 / n.max(1) as f64;
            for (op, d) in [("quantize", dq), ("dequantize", dd)] {
                records.push(Record {
                    op,
                    format: scheme.to_string(),
                    mode: Some(mode.name()),
                    dtype: T::DTYPE,
                    threads,
                    elements: n,
                    elements_per_s: per_second(n, d),
                    bytes_per_element: size as f64 + packed,
                    memcpy_elements_per_s: per_second(n, copy),
                });
            }
        }
    }
    Ok(records)
}

enum CodeOp {
    Encode(Rounding),
    Decode,
}

/// Times encode or decode with the code type of `fmt`.
fn time_codes<T: Element>(fmt: &Format, x: &[T], y: &mut [T], reps: usize, op: CodeOp) -> Result<std::time::Duration> {
    match code_width(fmt) {
        8 => time_codes_as::<T, u8>(fmt, x, y, reps, op),
        16 => time_codes_as::<T, u16>(fmt, x, y, reps, op),
        32 => time_codes_as::<T, u32>(fmt, x, y, reps, op),
        _ => time_codes_as::<T, u64>(fmt, x, y, reps, op),
    }
}

fn time_codes_as<T: Element, C: CodeInt>(
    fmt: &Format,
    x: &[T],
    y: &mut [T],
    reps: usize,
    op: CodeOp,
) -> Result<std::time::Duration> {
    let mut codes = vec![C::from_u64(1); x.len()];
    Ok(match op {
        CodeOp::Encode(cfg) => best_of(1, reps, || lowp::encode(fmt, &cfg, x, &mut codes))?,
        CodeOp::Decode => {
            // Decode real codes (those of the data), not a constant: table lookups depend on them.
            lowp::encode(fmt, &Rounding::default(), x, &mut codes)?;
            best_of(1, reps, || lowp::decode(fmt, &codes, y))?
        }
    })
}

fn print_tables(out: &mut dyn Write, opts: &Options, records: &[Record]) -> Result<()> {
    writeln!(
        out,
        "{} elements of N(0, 1) data; best of {} after a warm-up. memcpy: copy_from_slice of the same elements \
         with the same threads.\nGB/s counts bytes read plus bytes written.\n",
        opts.size, opts.reps
    )?;
    let mut keys: Vec<(&str, usize)> = Vec::new();
    for r in records {
        if !keys.contains(&(r.dtype, r.threads)) {
            keys.push((r.dtype, r.threads));
        }
    }
    for (dtype, threads) in keys {
        let rows: Vec<&Record> = records.iter().filter(|r| r.dtype == dtype && r.threads == threads).collect();
        let mut copies: Vec<f64> = rows.iter().map(|r| r.memcpy_elements_per_s).collect();
        copies.sort_by(f64::total_cmp);
        let memcpy = copies.get(copies.len() / 2).copied().unwrap_or(0.0);
        let s = if threads == 1 { "" } else { "s" };
        writeln!(
            out,
            "== {dtype} data, {threads} thread{s} (memcpy: median {} Melem/s, {:.1} GB/s)",
            mega(memcpy),
            memcpy * 2.0 * if dtype == "float32" { 4.0 } else { 8.0 } / 1e9
        )?;
        let mut t = Table::new(&[
            ("format", Align::Left),
            ("op", Align::Left),
            ("mode", Align::Left),
            ("Melem/s", Align::Right),
            ("GB/s", Align::Right),
            ("memcpy Melem/s", Align::Right),
            ("of memcpy", Align::Right),
        ]);
        let mut last = "";
        for r in rows {
            let name = if r.format == last { String::new() } else { r.format.clone() };
            last = &r.format;
            t.row(vec![
                name,
                r.op.into(),
                r.mode.clone().unwrap_or_else(|| "-".into()),
                mega(r.elements_per_s),
                format!("{:.2}", r.gbytes_per_s()),
                mega(r.memcpy_elements_per_s),
                format!("{:.0}%", 100.0 * r.memcpy_fraction()),
            ]);
        }
        writeln!(out, "{}", t.render())?;
    }
    Ok(())
}
