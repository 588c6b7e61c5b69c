//! `lowp bench --gemm`: lowp's emulated GEMM (`lowp::arith::matmul`, every product and addition rounded as
//! its arithmetic model says) beside two plain float32 GEMMs on the same machine, threads and run: the
//! `matrixmultiply` crate's `sgemm` (cache-blocked, vectorized at run time) and an i-k-j triple loop. The
//! plain kernels are the yardstick that makes the emulation's cost readable on a noisy machine, as memcpy is
//! for the rounding kernels.

use std::io::Write;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use lowp::arith::{matmul, Accumulation, Order};
use lowp::{Format, Rounding, RoundingMode};
use rayon::prelude::*;
use serde_json::{json, Value};

use crate::table::{sci, Align, Table};
use crate::tensors;
use crate::timing::{best_of, Progress};

pub struct Options {
    /// Square sizes: m = n = k.
    pub sizes: Vec<usize>,
    pub threads: Vec<usize>,
    pub reps: usize,
    pub seed: u64,
    pub json: bool,
}

/// One arithmetic model of the emulated GEMM, with the format its inputs are stored in.
struct Model {
    key: &'static str,
    description: &'static str,
    input: Format,
    accumulation: Accumulation,
}

fn models(seed: u64) -> Result<Vec<Model>> {
    let f16 = Format::parse("float16")?;
    let bf16 = Format::parse("bfloat16")?;
    let f32 = Format::parse("float32")?;
    Ok(vec![
        Model {
            key: "fp16_recursive",
            description: "float16 products, float16 recursive sum (nearest_even)",
            input: f16.clone(),
            accumulation: Accumulation::new(&f16),
        },
        Model {
            key: "bf16_fp32_accum",
            description: "bfloat16 products, float32 recursive sum",
            input: bf16.clone(),
            accumulation: Accumulation::new(&bf16).with_accum(&f32),
        },
        Model {
            key: "blockfma4_fp32_accum",
            description: "float16 inputs, exact products, blockfma:4 into float32 (tensor-core-like)",
            input: f16.clone(),
            accumulation: Accumulation::new(&f32).with_product(None).with_order(Order::BlockFma(4)),
        },
        Model {
            key: "fp16_stochastic",
            description: "float16 products, float16 recursive sum (stochastic)",
            input: f16.clone(),
            accumulation: Accumulation::new(&f16)
                .with_rounding(Rounding::new(RoundingMode::Stochastic).with_seed(seed)),
        },
        Model {
            key: "fp32_recursive",
            description: "float32 products, float32 recursive sum (nearest_even)",
            input: f32.clone(),
            accumulation: Accumulation::new(&f32),
        },
    ])
}

struct Record {
    key: &'static str,
    description: &'static str,
    size: usize,
    threads: usize,
    seconds: f64,
    /// The plain kernels' times in the same pool.
    sgemm_seconds: f64,
    loop_seconds: f64,
    /// max_ij |C - C_exact|_ij / (|A| |B|)_ij, against a float64 product of the same inputs.
    error: f64,
}

impl Record {
    fn gflops(&self) -> f64 {
        2.0 * (self.size as f64).powi(3) / self.seconds / 1e9
    }

    fn json(&self) -> Value {
        json!({
            "kernel": self.key,
            "description": self.description,
            "m": self.size,
            "n": self.size,
            "k": self.size,
            "threads": self.threads,
            "seconds": self.seconds,
            "gflops": self.gflops(),
            "slowdown_vs_sgemm": self.seconds / self.sgemm_seconds,
            "slowdown_vs_loop": self.seconds / self.loop_seconds,
            "max_error": self.error,
        })
    }
}

/// `C = A B` in float32 with matrixmultiply's `sgemm`, the rows of C split evenly over the pool's threads.
fn sgemm(a: &[f32], b: &[f32], c: &mut [f32], n: usize, threads: usize) {
    let rows = n.div_ceil(threads.max(1)).max(1);
    c.par_chunks_mut(rows * n).zip(a.par_chunks(rows * n)).for_each(|(c, a)| {
        let m = c.len() / n;
        // SAFETY: `a` is m x n, `b` n x n and `c` m x n, all row-major (row stride n, column stride 1), in
        // bounds, and `c` does not overlap the inputs.
        unsafe {
            matrixmultiply::sgemm(
                m,
                n,
                n,
                1.0,
                a.as_ptr(),
                n as isize,
                1,
                b.as_ptr(),
                n as isize,
                1,
                0.0,
                c.as_mut_ptr(),
                n as isize,
                1,
            );
        }
    });
}

/// `C = A B` in float32 with an i-k-j triple loop (the inner loop runs along rows of B and C, and
/// vectorizes), the rows of C split evenly over the pool's threads.
fn triple_loop(a: &[f32], b: &[f32], c: &mut [f32], n: usize, threads: usize) {
    let rows = n.div_ceil(threads.max(1)).max(1);
    c.par_chunks_mut(rows * n).zip(a.par_chunks(rows * n)).for_each(|(c, a)| {
        for (ci, ai) in c.chunks_mut(n).zip(a.chunks(n)) {
            ci.fill(0.0);
            for (&aip, bp) in ai.iter().zip(b.chunks(n)) {
                ci.iter_mut().zip(bp).for_each(|(x, &y)| *x += aip * y);
            }
        }
    });
}

/// The float64 product of float64 matrices (exact to within float64 rounding, far below the emulated
/// formats' errors) and |A| |B|, for the error column.
fn reference(a: &[f64], b: &[f64], n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut c = vec![0.0; n * n];
    let mut scale = vec![0.0; n * n];
    c.par_chunks_mut(n).zip(scale.par_chunks_mut(n)).zip(a.par_chunks(n)).for_each(|((ci, si), ai)| {
        for (&aip, bp) in ai.iter().zip(b.chunks(n)) {
            for ((x, s), &y) in ci.iter_mut().zip(si.iter_mut()).zip(bp) {
                *x += aip * y;
                *s += aip.abs() * y.abs();
            }
        }
    });
    (c, scale)
}

fn max_error(c: &[f64], exact: &[f64], scale: &[f64]) -> f64 {
    c.iter()
        .zip(exact)
        .zip(scale)
        .map(|((&c, &e), &s)| if s == 0.0 { (c - e).abs() } else { (c - e).abs() / s })
        .fold(0.0, f64::max)
}

/// Inputs of one size stored in one format: the values, and the float64 reference product.
struct Inputs {
    a: Vec<f64>,
    b: Vec<f64>,
    exact: Vec<f64>,
    scale: Vec<f64>,
}

fn inputs(fmt: &Format, a32: &[f32], b32: &[f32], n: usize) -> Result<Inputs> {
    let round = |x: &[f32]| -> Result<Vec<f64>> {
        let x: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
        let mut y = vec![0.0; x.len()];
        lowp::round(fmt, &Rounding::default(), &x, &mut y)?;
        Ok(y)
    };
    let (a, b) = (round(a32)?, round(b32)?);
    let (exact, scale) = reference(&a, &b, n);
    Ok(Inputs { a, b, exact, scale })
}

pub fn run(opts: &Options, out: &mut dyn Write) -> Result<()> {
    if opts.sizes.is_empty() || opts.sizes.contains(&0) {
        bail!("--gemm: sizes must be at least 1");
    }
    if opts.threads.is_empty() || opts.threads.contains(&0) {
        bail!("--threads: thread counts must be at least 1");
    }
    let models = models(opts.seed)?;
    let mut progress = Progress::new("bench --gemm", opts.sizes.len() * opts.threads.len() * (models.len() + 2));
    let mut records = Vec::new();
    for &n in &opts.sizes {
        let a32 = tensors::gaussian(n * n, 1.0, 0x6e44 ^ opts.seed);
        let b32 = tensors::gaussian(n * n, 1.0, 0x6e45 ^ opts.seed);
        let a64: Vec<f64> = a32.iter().map(|&v| f64::from(v)).collect();
        let b64: Vec<f64> = b32.iter().map(|&v| f64::from(v)).collect();
        let (exact32, scale32) = reference(&a64, &b64, n);
        let mut by_input: Vec<(String, Inputs)> = Vec::new();
        for m in &models {
            if !by_input.iter().any(|(name, _)| name == m.input.name()) {
                by_input.push((m.input.name().to_string(), inputs(&m.input, &a32, &b32, n)?));
            }
        }
        for &threads in &opts.threads {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .with_context(|| format!("cannot start a pool of {threads} threads"))?;
            pool.install(|| -> Result<()> {
                let mut c32 = vec![0.0f32; n * n];
                let mut plain = |what: &str, f: &dyn Fn(&mut [f32])| -> Result<(Duration, f64)> {
                    progress.step(&format!("{n} {threads}t {what}"));
                    let d = best_of(1, opts.reps, || -> Result<()> {
                        f(&mut c32);
                        Ok(())
                    })?;
                    let c: Vec<f64> = c32.iter().map(|&v| f64::from(v)).collect();
                    Ok((d, max_error(&c, &exact32, &scale32)))
                };
                let (t_sgemm, e_sgemm) = plain("sgemm", &|c| sgemm(&a32, &b32, c, n, threads))?;
                let (t_loop, e_loop) = plain("loop", &|c| triple_loop(&a32, &b32, c, n, threads))?;
                let record = |key, description, d: Duration, error| Record {
                    key,
                    description,
                    size: n,
                    threads,
                    seconds: d.as_secs_f64(),
                    sgemm_seconds: t_sgemm.as_secs_f64(),
                    loop_seconds: t_loop.as_secs_f64(),
                    error,
                };
                records.push(record("sgemm", "matrixmultiply::sgemm, float32", t_sgemm, e_sgemm));
                records.push(record("loop_f32", "i-k-j triple loop, float32", t_loop, e_loop));
                let mut c = vec![0.0f64; n * n];
                for m in &models {
                    progress.step(&format!("{n} {threads}t {}", m.key));
                    let x = &by_input.iter().find(|(name, _)| name == m.input.name()).expect("prepared above").1;
                    let d = best_of(1, opts.reps, || matmul(&m.accumulation, &x.a, &x.b, &mut c, n, n, n))
                        .with_context(|| format!("matmul under {}", m.description))?;
                    records.push(record(m.key, m.description, d, max_error(&c, &x.exact, &x.scale)));
                }
                Ok(())
            })?;
        }
    }
    drop(progress);
    if opts.json {
        let recs: Vec<Value> = records.iter().map(Record::json).collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&recs)?)?;
        return Ok(());
    }
    writeln!(
        out,
        "Square GEMM C = A B, A and B ~ N(0, 1) stored in each model's input format; best of {} after a warm-up.\n\
         Plain float32 yardsticks in the same pool: matrixmultiply's sgemm and an i-k-j triple loop.\n\
         GFLOP/s = 2 n^3 / t; \"x sgemm\", \"x loop\": time relative to those; max error = max |C - AB| / (|A||B|) \
         elementwise, AB in float64 on the same inputs.\n",
        opts.reps
    )?;
    let mut keys: Vec<(usize, usize)> = Vec::new();
    for r in &records {
        if !keys.contains(&(r.size, r.threads)) {
            keys.push((r.size, r.threads));
        }
    }
    for (size, threads) in keys {
        let s = if threads == 1 { "" } else { "s" };
        writeln!(out, "== {size} x {size} x {size}, {threads} thread{s}")?;
        let mut t = Table::new(&[
            ("kernel", Align::Left),
            ("description", Align::Left),
            ("GFLOP/s", Align::Right),
            ("ms", Align::Right),
            ("x sgemm", Align::Right),
            ("x loop", Align::Right),
            ("max error", Align::Right),
        ]);
        for r in records.iter().filter(|r| r.size == size && r.threads == threads) {
            t.row(vec![
                r.key.into(),
                r.description.into(),
                format!("{:.3}", r.gflops()),
                format!("{:.3}", r.seconds * 1e3),
                format!("{:.1}", r.seconds / r.sgemm_seconds),
                format!("{:.1}", r.seconds / r.loop_seconds),
                sci(r.error),
            ]);
        }
        writeln!(out, "{}", t.render())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The i-k-j loop is the recursive float32 model (no fused multiply-add in Rust's `*` and `+`), so it and
    /// lowp's emulation must agree bit for bit; sgemm sums in another order.
    #[test]
    fn triple_loop_is_the_recursive_float32_model() {
        let n = 37;
        let a = tensors::gaussian(n * n, 1.0, 1);
        let b = tensors::gaussian(n * n, 1.0, 2);
        let mut c = vec![0.0f32; n * n];
        triple_loop(&a, &b, &mut c, n, 2);
        let (a64, b64): (Vec<f64>, Vec<f64>) =
            (a.iter().map(|&v| v.into()).collect(), b.iter().map(|&v| v.into()).collect());
        let mut e = vec![0.0f64; n * n];
        matmul(&Accumulation::new(&Format::parse("float32").unwrap()), &a64, &b64, &mut e, n, n, n).unwrap();
        assert!(c.iter().zip(&e).all(|(&x, &y)| f64::from(x).to_bits() == y.to_bits()));
        let mut s = vec![0.0f32; n * n];
        sgemm(&a, &b, &mut s, n, 3);
        let (exact, scale) = reference(&a64, &b64, n);
        let s64: Vec<f64> = s.iter().map(|&v| v.into()).collect();
        assert!(max_error(&s64, &exact, &scale) < 1e-5);
    }
}
