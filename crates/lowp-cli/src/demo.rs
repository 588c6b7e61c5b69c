//! `lowp demo`: two classic experiments of low-precision numerical analysis, run in lowp's emulated
//! arithmetic (every operation rounded once to the format, see `lowp::arith`).
//!
//! - `harmonic`: the harmonic series `s = fl(s + fl(1/k))`, which stagnates under round-to-nearest once
//!   `1/k` falls below half an ulp of `s` (Higham and Pranesh, "Simulating low precision floating-point
//!   arithmetic", SIAM J. Sci. Comput. 41(5), 2019), and keeps moving, in expectation at the right speed,
//!   under stochastic rounding.
//! - `refine`: LU-based mixed-precision iterative refinement against the condition number (Carson and
//!   Higham, SIAM J. Sci. Comput. 40(2), 2018): a float16 LU refines to float64 accuracy while κ∞(A) u_f is
//!   well below 1, and not beyond.

use std::io::Write;

use anyhow::{bail, Context, Result};
use lowp::arith::linalg::{refine, Refine, Refinement};
use lowp::arith::{binary, sum, Accumulation, BinaryOp};
use lowp::{Format, Rounding, RoundingMode};
use serde_json::{json, Value};

use crate::table::{exact, sci, Align, Table};
use crate::tensors::Rng;

/// Formats of `demo harmonic` by default.
pub const HARMONIC_FORMATS: &[&str] = &["float16", "bfloat16", "float32"];
/// Modes of `demo harmonic` by default.
pub const HARMONIC_MODES: &[RoundingMode] =
    &[RoundingMode::NearestEven, RoundingMode::TowardZero, RoundingMode::Stochastic];

pub struct HarmonicOptions {
    pub formats: Vec<Format>,
    pub modes: Vec<RoundingMode>,
    pub terms: usize,
    pub seed: u64,
    pub json: bool,
}

/// One run of the series.
struct Series {
    format: String,
    mode: RoundingMode,
    terms: usize,
    sum: f64,
    /// The first term that left the sum unchanged, when no later term changed it either.
    stagnation: Option<usize>,
    /// The last term that changed the sum (0 when none did).
    last_change: usize,
    /// The first term after which the sum was inf or NaN (formats without inf overflow to NaN).
    overflow: Option<usize>,
    /// sum_{k=1}^{terms} 1/k, accurate to float64.
    true_sum: f64,
}

impl Series {
    fn relative_error(&self) -> f64 {
        (self.sum - self.true_sum).abs() / self.true_sum
    }

    fn json(&self) -> Value {
        json!({
            "format": self.format,
            "mode": self.mode.name(),
            "terms": self.terms,
            "sum": self.sum,
            "stagnation_term": self.stagnation,
            "last_change_term": self.last_change,
            "overflow_term": self.overflow,
            "true_sum": self.true_sum,
            "relative_error": self.relative_error(),
        })
    }
}

/// A seed per addition, so the draws of a stochastic mode differ from step to step and are reproducible
/// from the user's seed alone.
fn step_seed(seed: u64, k: usize) -> u64 {
    // SplitMix64 of the seed, then one counter step per term: distinct seeds for distinct k.
    Rng::new(seed ^ 0x4a52_4d4f_4e49_4321).next_u64().wrapping_add(k as u64)
}

/// sum_{k=1}^{n} 1/k in float64, smallest terms first, compensated (Kahan–Babuška): far below the errors shown.
fn harmonic_f64(n: usize) -> f64 {
    let (mut s, mut c) = (0.0f64, 0.0f64);
    for k in (1..=n).rev() {
        let t = 1.0 / k as f64;
        let u = s + t;
        c += if s.abs() >= t { (s - u) + t } else { (t - u) + s };
        s = u;
    }
    s + c
}

fn series(fmt: &Format, mode: RoundingMode, terms: usize, seed: u64) -> Result<Series> {
    let what = || format!("the harmonic series in {} with {}", fmt.name(), mode.name());
    // t_k = fl(1/k): one call, element k - 1 draws its own number.
    let ones = vec![1.0f64; terms];
    let ks: Vec<f64> = (1..=terms).map(|k| k as f64).collect();
    let mut t = vec![0.0f64; terms];
    binary(BinaryOp::Div, fmt, &Rounding::new(mode).with_seed(seed), &ones, &ks, &mut t).with_context(what)?;
    // s = fl(s + t_k), one element call per term (each step needs the previous sum).
    let (mut s, mut last_change, mut first_unchanged, mut overflow) = (0.0f64, 0usize, None, None);
    let mut next = [0.0f64];
    for (i, &tk) in t.iter().enumerate() {
        let k = i + 1;
        let cfg = Rounding::new(mode).with_seed(step_seed(seed, k));
        binary(BinaryOp::Add, fmt, &cfg, &[s], &[tk], &mut next).with_context(what)?;
        if !next[0].is_finite() {
            // Directed-up and stochastic modes can push a narrow format past its largest value.
            overflow = Some(k);
            s = next[0];
            break;
        }
        if next[0] == s {
            first_unchanged.get_or_insert(k);
        } else {
            last_change = k;
        }
        s = next[0];
    }
    if !mode.is_stochastic() && overflow.is_none() {
        // The same computation through the recursive-sum model: a check of lowp's two paths.
        let model = Accumulation::new(fmt).with_rounding(Rounding::new(mode).with_seed(seed));
        let recursive = sum(&model, &t).with_context(what)?;
        if recursive.to_bits() != s.to_bits() {
            bail!(
                "internal inconsistency in {}: lowp::arith::sum gave {recursive:?}, element-wise additions {s:?}",
                what()
            );
        }
    }
    let stagnation = first_unchanged.filter(|&k| k > last_change && overflow.is_none());
    Ok(Series {
        format: fmt.name().to_string(),
        mode,
        terms,
        sum: s,
        stagnation,
        last_change,
        overflow,
        true_sum: harmonic_f64(terms),
    })
}

pub fn harmonic(opts: &HarmonicOptions, out: &mut dyn Write) -> Result<()> {
    if opts.terms == 0 {
        bail!("--terms must be at least 1");
    }
    if opts.formats.is_empty() || opts.modes.is_empty() {
        bail!("give at least one format and one rounding mode");
    }
    let mut runs = Vec::new();
    for fmt in &opts.formats {
        for &mode in &opts.modes {
            runs.push(series(fmt, mode, opts.terms, opts.seed)?);
        }
    }
    if opts.json {
        let recs: Vec<Value> = runs.iter().map(Series::json).collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&recs)?)?;
        return Ok(());
    }
    writeln!(
        out,
        "The harmonic series s = fl(s + fl(1/k)), k = 1..{}, every operation rounded once to the format \
         (seed {} for the stochastic modes).\n\"stagnates at k\": the first term that left s unchanged, when no \
         later term changed it; \"overflow at k\": s became inf or NaN at term k (the run stops there).\n",
        opts.terms, opts.seed
    )?;
    let mut t = Table::new(&[
        ("format", Align::Left),
        ("mode", Align::Left),
        ("sum", Align::Right),
        ("stagnates at k", Align::Right),
        ("last change at k", Align::Right),
        ("true sum", Align::Right),
        ("relative error", Align::Right),
    ]);
    let mut last = "";
    for r in &runs {
        let name = if r.format == last { String::new() } else { r.format.clone() };
        last = &r.format;
        t.row(vec![
            name,
            r.mode.name(),
            exact(r.sum),
            match (r.overflow, r.stagnation) {
                (Some(k), _) => format!("overflow at {k}"),
                (None, Some(k)) => k.to_string(),
                (None, None) => "never".into(),
            },
            if r.last_change == 0 { "-".into() } else { r.last_change.to_string() },
            format!("{:.6}", r.true_sum),
            sci(r.relative_error()),
        ]);
    }
    writeln!(out, "{}", t.render())?;
    writeln!(
        out,
        "Under round-to-nearest the sum stops growing once 1/k is at most half an ulp of s (toward_zero: below one \
         ulp), and the error is then the whole tail of the series. Stochastic rounding makes each addition \
         exact in expectation: the sum keeps moving, its expected value is the true sum, and its spread is \
         about sqrt(ulp(s) * the sum of the terms added) (over 40 seeds at 2^17 terms: 1.5% for float16, 4.5% \
         for bfloat16)."
    )?;
    Ok(())
}

pub struct RefineOptions {
    pub n: usize,
    pub kappas: Vec<f64>,
    pub factor: Format,
    pub residual: Format,
    pub working: Format,
    pub mode: RoundingMode,
    pub max_iter: usize,
    pub seed: u64,
    pub json: bool,
}

/// A test problem with a prescribed 2-norm condition number.
struct Problem {
    a: Vec<f64>,
    x_true: Vec<f64>,
    b: Vec<f64>,
    kappa_inf: f64,
}

/// An n x n Gaussian matrix made orthogonal by modified Gram–Schmidt run twice over its columns (one pass
/// leaves a loss of orthogonality of order κ u; the second brings it to u).
fn random_orthogonal(n: usize, rng: &mut Rng) -> Vec<f64> {
    // Column-major while orthogonalizing: column j is q[j*n..(j+1)*n].
    let mut q: Vec<f64> = (0..n * n).map(|_| rng.normal()).collect();
    for j in 0..n {
        for _pass in 0..2 {
            for i in 0..j {
                let (prev, cur) = q.split_at_mut(j * n);
                let qi = &prev[i * n..(i + 1) * n];
                let qj = &mut cur[..n];
                let r: f64 = qi.iter().zip(qj.iter()).map(|(a, b)| a * b).sum();
                qj.iter_mut().zip(qi).for_each(|(x, y)| *x -= r * y);
            }
        }
        let qj = &mut q[j * n..(j + 1) * n];
        let norm = qj.iter().map(|v| v * v).sum::<f64>().sqrt();
        qj.iter_mut().for_each(|v| *v /= norm);
    }
    // Row-major.
    (0..n * n).map(|ij| q[(ij % n) * n + ij / n]).collect()
}

fn norm_inf_matrix(a: &[f64], n: usize) -> f64 {
    a.chunks(n).map(|r| r.iter().map(|v| v.abs()).sum::<f64>()).fold(0.0, f64::max)
}

/// A = U diag(sigma) V^T with sigma_i = kappa^(-i/(n-1)); x_true ~ N(0, 1); b = A x_true in float64.
/// U, V and x_true depend only on the seed, so the problems of one run differ only in their singular values.
fn problem(n: usize, kappa: f64, seed: u64) -> Problem {
    let mut rng = Rng::new(seed);
    let u = random_orthogonal(n, &mut rng);
    let v = random_orthogonal(n, &mut rng);
    let x_true: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
    let sigma: Vec<f64> = (0..n).map(|i| if n == 1 { 1.0 } else { kappa.powf(-(i as f64) / (n - 1) as f64) }).collect();
    let product = |left: &[f64], right: &[f64], scale: &dyn Fn(usize) -> f64| -> Vec<f64> {
        // left diag(scale) right^T.
        (0..n * n)
            .map(|ij| {
                let (i, j) = (ij / n, ij % n);
                (0..n).map(|p| left[i * n + p] * scale(p) * right[j * n + p]).sum()
            })
            .collect()
    };
    let a = product(&u, &v, &|p| sigma[p]);
    let a_inv = product(&v, &u, &|p| 1.0 / sigma[p]);
    let b = (0..n).map(|i| (0..n).map(|j| a[i * n + j] * x_true[j]).sum()).collect();
    let kappa_inf = norm_inf_matrix(&a, n) * norm_inf_matrix(&a_inv, n);
    Problem { a, x_true, b, kappa_inf }
}

/// One condition number's run: the refinement, or why it could not start.
struct RefineRun {
    kappa: f64,
    kappa_inf: f64,
    result: std::result::Result<Refinement, String>,
}

/// How a run ended.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Converged,
    /// Stopped by the step limit while the corrections were still shrinking (at least halving).
    Contracting,
    /// Stopped by the step limit with corrections not shrinking: stagnation or divergence.
    NotContracting,
    FactorizationFailed,
}

impl Outcome {
    fn key(self) -> &'static str {
        match self {
            Outcome::Converged => "converged",
            Outcome::Contracting => "contracting",
            Outcome::NotContracting => "not_contracting",
            Outcome::FactorizationFailed => "factorization_failed",
        }
    }

    fn describe(self, steps: usize) -> String {
        match self {
            Outcome::Converged => format!("converged in {steps} steps"),
            Outcome::Contracting => format!("did not converge in {steps} steps (still contracting, slowly)"),
            Outcome::NotContracting => format!("did not converge in {steps} steps (diverging or stagnating)"),
            Outcome::FactorizationFailed => "the factorization failed".into(),
        }
    }
}

impl RefineRun {
    fn steps(&self) -> Option<usize> {
        self.result.as_ref().ok().map(|r| r.history.len() - 1)
    }

    fn outcome(&self) -> Outcome {
        match &self.result {
            Err(_) => Outcome::FactorizationFailed,
            Ok(r) if r.converged => Outcome::Converged,
            Ok(r) => match r.history.len() {
                n if n >= 3 && r.history[n - 1].correction <= 0.5 * r.history[n - 2].correction => Outcome::Contracting,
                _ => Outcome::NotContracting,
            },
        }
    }

    fn json(&self, opts: &RefineOptions) -> Value {
        let mut v = json!({
            "kappa": self.kappa,
            "kappa_inf": self.kappa_inf,
            "kappa_inf_u_factor": self.kappa_inf * opts.factor.unit_roundoff(),
            "n": opts.n,
            "factor": opts.factor.name(),
            "residual": opts.residual.name(),
            "working": opts.working.name(),
            "mode": opts.mode.name(),
            "outcome": self.outcome().key(),
        });
        match &self.result {
            Ok(r) => {
                v["converged"] = json!(r.converged);
                v["steps"] = json!(r.history.len() - 1);
                v["error"] = Value::Null;
                v["history"] = r
                    .history
                    .iter()
                    .enumerate()
                    .map(|(i, s)| {
                        json!({
                            "step": i,
                            "forward_error": s.forward_error,
                            "backward_error": s.backward_error,
                            "correction": s.correction,
                        })
                    })
                    .collect();
            }
            Err(e) => {
                v["converged"] = json!(false);
                v["steps"] = Value::Null;
                v["error"] = json!(e);
                v["history"] = json!([]);
            }
        }
        v
    }
}

pub fn refine_demo(opts: &RefineOptions, out: &mut dyn Write) -> Result<()> {
    if opts.n == 0 {
        bail!("--n must be at least 1");
    }
    if opts.kappas.is_empty() {
        bail!("--kappa needs at least one condition number");
    }
    if let Some(k) = opts.kappas.iter().find(|k| !(k.is_finite() && **k >= 1.0)) {
        bail!("--kappa: condition numbers must be finite and at least 1, got {k}");
    }
    let cfg = Refine::new(&opts.factor, &opts.residual, &opts.working)
        .with_rounding(Rounding::new(opts.mode).with_seed(opts.seed))
        .with_max_iter(opts.max_iter);
    let mut runs = Vec::new();
    for &kappa in &opts.kappas {
        let p = problem(opts.n, kappa, opts.seed);
        let result = match refine(&p.a, opts.n, &p.b, &cfg.clone().with_x_true(&p.x_true)) {
            Ok(r) => Ok(r),
            // A factorization that breaks down (a zero pivot, overflow) is a result of the experiment.
            Err(e @ lowp::Error::Numerical(_)) => Err(e.to_string()),
            Err(e) => return Err(e).context("iterative refinement"),
        };
        runs.push(RefineRun { kappa, kappa_inf: p.kappa_inf, result });
    }
    if opts.json {
        let recs: Vec<Value> = runs.iter().map(|r| r.json(opts)).collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&recs)?)?;
        return Ok(());
    }
    let u_f = opts.factor.unit_roundoff();
    writeln!(
        out,
        "LU-based iterative refinement, n = {}: LU and correction solves in {} (u_f = {}), residuals in {}, \
         updates in {}; {} (seed {}).\nA = U diag(sigma) V^T, U and V random orthogonal, sigma geometric from 1 \
         to 1/kappa; x_true ~ N(0, 1); b = A x_true in float64.\nforward error = |x - x_true|_inf / \
         |x_true|_inf; backward error = |b - A x|_inf / (|A|_inf |x|_inf + |b|_inf); correction = |d|_inf / \
         |x|_inf.\n",
        opts.n,
        opts.factor.name(),
        sci(u_f),
        opts.residual.name(),
        opts.working.name(),
        opts.mode.name(),
        opts.seed
    )?;
    for r in &runs {
        let head = format!(
            "kappa_2 = {}, kappa_inf = {}, kappa_inf * u_f = {}",
            sci(r.kappa),
            sci(r.kappa_inf),
            sci(r.kappa_inf * u_f)
        );
        match &r.result {
            Err(e) => writeln!(out, "{head}: the factorization failed: {e}\n")?,
            Ok(res) => {
                writeln!(out, "{head}: {}", r.outcome().describe(res.history.len() - 1))?;
                let mut t = Table::new(&[
                    ("step", Align::Right),
                    ("forward error", Align::Right),
                    ("backward error", Align::Right),
                    ("correction", Align::Right),
                ]);
                for (i, s) in res.history.iter().enumerate() {
                    t.row(vec![
                        i.to_string(),
                        s.forward_error.map_or_else(|| "-".into(), sci),
                        sci(s.backward_error),
                        if i == 0 { "-".into() } else { sci(s.correction) },
                    ]);
                }
                writeln!(out, "{}", t.render())?;
            }
        }
    }
    let mut t = Table::new(&[
        ("kappa_2", Align::Right),
        ("kappa_inf", Align::Right),
        ("kappa_inf*u_f", Align::Right),
        ("steps", Align::Right),
        ("forward error", Align::Right),
        ("result", Align::Left),
    ]);
    for r in &runs {
        let last = r.result.as_ref().ok().and_then(|res| res.history.last().copied());
        t.row(vec![
            sci(r.kappa),
            sci(r.kappa_inf),
            sci(r.kappa_inf * u_f),
            r.steps().map_or_else(|| "-".into(), |s| s.to_string()),
            last.and_then(|s| s.forward_error).map_or_else(|| "-".into(), sci),
            match r.outcome() {
                Outcome::Converged => "converged".into(),
                Outcome::Contracting => "not yet (still contracting)".into(),
                Outcome::NotContracting => "no (diverging or stagnating)".into(),
                Outcome::FactorizationFailed => "factorization failed".into(),
            },
        ]);
    }
    writeln!(out, "Summary\n{}", t.render())?;
    writeln!(
        out,
        "Theory (Carson and Higham 2018): refinement with an LU of unit roundoff u_f converges when kappa_inf(A) u_f \
         is sufficiently below 1, to a forward error of order u_w plus kappa_inf(A) u_r when residuals have unit \
         roundoff u_r; near or beyond 1 it stagnates or diverges."
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orthogonal_factors_are_orthogonal() {
        let n = 30;
        let q = random_orthogonal(n, &mut Rng::new(5));
        for i in 0..n {
            for j in 0..n {
                let d: f64 = (0..n).map(|p| q[p * n + i] * q[p * n + j]).sum();
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((d - want).abs() < 1e-13, "Q^T Q [{i}, {j}] = {d}");
            }
        }
    }

    #[test]
    fn harmonic_reference_is_accurate() {
        // H_n = ln n + gamma + 1/(2n) - 1/(12 n^2) + O(n^-4).
        let n = 1 << 17;
        let nf = n as f64;
        let asym = nf.ln() + 0.577_215_664_901_532_9 + 1.0 / (2.0 * nf) - 1.0 / (12.0 * nf * nf);
        assert!((harmonic_f64(n) - asym).abs() < 1e-13);
        assert!((harmonic_f64(3) - 11.0 / 6.0).abs() <= f64::EPSILON);
    }
}
