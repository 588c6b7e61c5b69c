//! Linear algebra with every operation rounded: LU with partial pivoting, triangular solves, Cholesky, and
//! mixed-precision iterative refinement.
//!
//! Matrices are row-major `n x n` slices of float64 holding values of the chosen format. Every addition,
//! subtraction, multiplication, division and square root is rounded once to the format under the chosen
//! mode (a fused multiply-add is never formed: an update `a - l u` is `fl(a - fl(l u))`). Operation k of a
//! call draws rounding k of its stream (see [`crate::arith`]), in the order the algorithm performs them.
//!
//! ```
//! use lowp::arith::linalg::{refine, Refine};
//! use lowp::Format;
//! // A well-conditioned system: a float16 LU, float64 residuals and updates.
//! let a = [4.0, 1.0, 0.5, 1.0, 3.0, 0.25, 0.5, 0.25, 2.0];
//! let x_true = [1.0, -2.0, 3.0];
//! let b: Vec<f64> = (0..3).map(|i| (0..3).map(|j| a[3 * i + j] * x_true[j]).sum()).collect();
//! let cfg = Refine::new(&Format::parse("float16")?, &Format::parse("float64")?, &Format::parse("float64")?);
//! let r = refine(&a, 3, &b, &cfg.with_x_true(&x_true))?;
//! assert!(r.converged);
//! assert!(r.history.last().unwrap().forward_error.unwrap() < 1e-15);
//! # Ok::<(), lowp::Error>(())
//! ```

use super::lanes::Lanes;
use crate::error::{Error, Result};
use crate::format::Format;
use crate::round::Rounding;

/// Stream ids of the three precisions of a refinement (and of the single-format calls: `FACTOR`).
const STREAM_FACTOR: u64 = 3;
const STREAM_RESIDUAL: u64 = 4;
const STREAM_WORKING: u64 = 5;

/// One format's arithmetic, numbering its roundings in the order they happen.
struct Machine<'a> {
    lanes: Lanes<'a>,
    next: u64,
}

impl<'a> Machine<'a> {
    fn new(fmt: &'a Format, cfg: &Rounding, stream: u64) -> Result<Machine<'a>> {
        super::check::<f64>(fmt, cfg)?;
        Ok(Machine { lanes: Lanes::new(fmt, cfg, stream)?, next: 0 })
    }

    fn take(&mut self, n: usize) -> u64 {
        let at = self.next;
        self.next += n as u64;
        at
    }

    fn round(&mut self, x: f64) -> f64 {
        let at = self.take(1);
        self.lanes.round1(x, at)
    }

    fn sub(&mut self, a: f64, b: f64) -> f64 {
        let at = self.take(1);
        self.lanes.add1(a, -b, at)
    }

    fn add(&mut self, a: f64, b: f64) -> f64 {
        let at = self.take(1);
        self.lanes.add1(a, b, at)
    }

    fn mul(&mut self, a: f64, b: f64) -> f64 {
        let at = self.take(1);
        self.lanes.mul1(a, b, at)
    }

    fn div(&mut self, a: f64, b: f64) -> f64 {
        let at = self.take(1);
        self.lanes.div1(a, b, at)
    }

    fn sqrt(&mut self, a: f64) -> f64 {
        let at = self.take(1);
        self.lanes.sqrt1(a, at)
    }

    /// `dst = fl(dst - fl(l * src))` element-wise.
    fn update_row(&mut self, l: f64, src: &[f64], dst: &mut [f64]) {
        let mut prod = vec![0.0; src.len()];
        let at = self.take(src.len());
        self.lanes.scale_into(at, l, src, &mut prod);
        // Negating the rounded product is exact; rounding -l*u instead would flip directed modes.
        prod.iter_mut().for_each(|p| *p = -*p);
        let at = self.take(src.len());
        self.lanes.add_into(at, dst, &prod);
    }

    /// `fl(... fl(fl(acc - fl(a_0 b_0)) - fl(a_1 b_1)) ...)`.
    fn sub_dot(&mut self, acc: f64, a: &[f64], b: &[f64]) -> f64 {
        a.iter().zip(b).fold(acc, |s, (&x, &y)| {
            let p = self.mul(x, y);
            self.sub(s, p)
        })
    }
}

fn check_square(what: &str, len: usize, n: usize) -> Result<()> {
    match n.checked_mul(n) {
        Some(nn) if nn == len => Ok(()),
        nn => Err(Error::InvalidOption(format!(
            "{what} has {len} elements; an n x n matrix with n = {n} needs {}",
            nn.map_or("more than usize can count".to_string(), |v| v.to_string())
        ))),
    }
}

fn check_vector(what: &str, len: usize, n: usize) -> Result<()> {
    if len == n {
        Ok(())
    } else {
        Err(Error::InvalidOption(format!("{what} has {len} elements; the matrix has n = {n} rows")))
    }
}

fn check_finite(what: &str, v: &[f64]) -> Result<()> {
    match v.iter().position(|x| !x.is_finite()) {
        None => Ok(()),
        Some(i) => {
            Err(Error::InvalidOption(format!("{what} holds {} at index {i}; only finite values are accepted", v[i])))
        }
    }
}

/// [`check_finite`] on the lower (or upper) triangle of an n x n matrix, diagonal included: the part read.
fn check_triangle_finite(what: &str, t: &[f64], n: usize, lower: bool) -> Result<()> {
    let bad = (0..n * n).find(|&ij| {
        let (i, j) = (ij / n, ij % n);
        (if lower { j <= i } else { j >= i }) && !t[ij].is_finite()
    });
    match bad {
        None => Ok(()),
        Some(ij) => Err(Error::InvalidOption(format!(
            "{what} holds {} at ({}, {}); only finite values are accepted",
            t[ij],
            ij / n,
            ij % n
        ))),
    }
}

/// `v * 2^k` for |k| <= 2098, as two exact power-of-two factors (2^k alone may not be a float64).
fn scale2(v: f64, k: i32) -> f64 {
    let h = k / 2;
    v * 2f64.powi(h) * 2f64.powi(k - h)
}

fn overflowed(fmt: &Format, what: &str) -> Error {
    Error::Numerical(format!(
        "{what} overflowed or produced NaN in {}: scale the matrix so its entries fit the format",
        fmt.name()
    ))
}

/// An LU factorization with partial pivoting: `P A = L U`.
#[derive(Clone, Debug, PartialEq)]
pub struct Lu {
    /// Order of the matrix.
    pub n: usize,
    /// L (strictly below the diagonal, unit diagonal implied) and U (on and above), row-major.
    pub factors: Vec<f64>,
    /// Row `i` of `P A` is row `perm[i]` of A.
    pub perm: Vec<usize>,
}

impl Lu {
    /// L as a dense row-major matrix (unit diagonal).
    pub fn l(&self) -> Vec<f64> {
        let n = self.n;
        (0..n * n)
            .map(|ij| match (ij / n, ij % n) {
                (i, j) if i == j => 1.0,
                (i, j) if j < i => self.factors[ij],
                _ => 0.0,
            })
            .collect()
    }

    /// U as a dense row-major matrix.
    pub fn u(&self) -> Vec<f64> {
        let n = self.n;
        (0..n * n).map(|ij| if ij % n >= ij / n { self.factors[ij] } else { 0.0 }).collect()
    }
}

/// LU with partial pivoting of the `n x n` matrix `a`, every operation rounded to `fmt`. The entries of `a`
/// are rounded to `fmt` first. Errors: a zero pivot (singular in `fmt`), overflow.
///
/// # Examples
/// ```
/// use lowp::arith::linalg::lu;
/// use lowp::{Format, Rounding};
/// let f = lu(&Format::parse("float16")?, &Rounding::default(), &[1.0, 2.0, 3.0, 4.0], 2)?;
/// assert_eq!(f.perm, [1, 0]);
/// assert_eq!(f.u(), [3.0, 4.0, 0.0, 0.6669921875]); // 2 - fl(fl(1/3) * 4)
/// # Ok::<(), lowp::Error>(())
/// ```
pub fn lu(fmt: &Format, cfg: &Rounding, a: &[f64], n: usize) -> Result<Lu> {
    check_square("A", a.len(), n)?;
    check_finite("A", a)?;
    let mut m = Machine::new(fmt, cfg, STREAM_FACTOR)?;
    lu_in(&mut m, a, n)
}

fn lu_in(m: &mut Machine, a: &[f64], n: usize) -> Result<Lu> {
    let mut f: Vec<f64> = a.to_vec();
    let at = m.take(f.len());
    m.lanes.round(at, &mut f);
    let mut perm: Vec<usize> = (0..n).collect();
    for k in 0..n {
        let p = (k..n).max_by(|&i, &j| f[i * n + k].abs().total_cmp(&f[j * n + k].abs()).then(j.cmp(&i))).unwrap_or(k);
        if f[p * n + k] == 0.0 {
            return Err(Error::Numerical(format!(
                "the matrix is singular in {}: no nonzero pivot in column {k}",
                m.lanes.format().name()
            )));
        }
        if p != k {
            for j in 0..n {
                f.swap(k * n + j, p * n + j);
            }
            perm.swap(k, p);
        }
        let (top, rest) = f.split_at_mut((k + 1) * n);
        let pivot_row = &top[k * n..];
        for row in rest.chunks_mut(n) {
            let l = m.div(row[k], pivot_row[k]);
            row[k] = l;
            m.update_row(l, &pivot_row[k + 1..], &mut row[k + 1..]);
        }
    }
    if f.iter().any(|v| !v.is_finite()) {
        return Err(overflowed(m.lanes.format(), "the LU factorization"));
    }
    Ok(Lu { n, factors: f, perm })
}

/// Solves `T x = b` in place for triangular `T` (`lower`, with a unit diagonal when `unit`), every
/// operation rounded to `fmt`; T and b are rounded to `fmt` first. Only the named triangle of `t` is used.
/// Errors: a zero on the diagonal (when not `unit`), overflow.
///
/// # Examples
/// ```
/// use lowp::arith::linalg::solve_triangular;
/// use lowp::{Format, Rounding};
/// let mut b = [1.0, 1.0];
/// solve_triangular(&Format::parse("bfloat16")?, &Rounding::default(), &[3.0, 1.0, 0.0, 1.0], 2, &mut b, false, false)?;
/// assert_eq!(b, [0.0, 1.0]);
/// # Ok::<(), lowp::Error>(())
/// ```
pub fn solve_triangular(
    fmt: &Format,
    cfg: &Rounding,
    t: &[f64],
    n: usize,
    b: &mut [f64],
    lower: bool,
    unit: bool,
) -> Result<()> {
    check_square("T", t.len(), n)?;
    check_vector("b", b.len(), n)?;
    check_triangle_finite("T", t, n, lower)?;
    check_finite("b", b)?;
    let mut m = Machine::new(fmt, cfg, STREAM_FACTOR)?;
    // The other triangle is not read: zero it before rounding.
    let mut t: Vec<f64> =
        (0..n * n).map(|ij| if (ij % n <= ij / n) == lower || ij % n == ij / n { t[ij] } else { 0.0 }).collect();
    let at = m.take(t.len());
    m.lanes.round(at, &mut t);
    if !unit {
        if let Some(i) = (0..n).find(|&i| t[i * n + i] == 0.0) {
            return Err(Error::Numerical(format!(
                "the triangular matrix is singular in {}: T[{i}, {i}] is 0",
                fmt.name()
            )));
        }
    }
    let at = m.take(n);
    m.lanes.round(at, b);
    triangular_in(&mut m, &t, n, b, lower, unit);
    if b.iter().any(|v| !v.is_finite()) {
        return Err(overflowed(fmt, "the triangular solve"));
    }
    Ok(())
}

fn triangular_in(m: &mut Machine, t: &[f64], n: usize, b: &mut [f64], lower: bool, unit: bool) {
    let rows: Box<dyn Iterator<Item = usize>> = if lower { Box::new(0..n) } else { Box::new((0..n).rev()) };
    for i in rows {
        let (lo, hi) = if lower { (0, i) } else { (i + 1, n) };
        let s = m.sub_dot(b[i], &t[i * n + lo..i * n + hi], &b[lo..hi]);
        b[i] = if unit { s } else { m.div(s, t[i * n + i]) };
    }
}

fn lu_solve_in(m: &mut Machine, f: &Lu, b: &[f64]) -> Vec<f64> {
    let mut x: Vec<f64> = f.perm.iter().map(|&p| b[p]).collect();
    triangular_in(m, &f.factors, f.n, &mut x, true, true);
    triangular_in(m, &f.factors, f.n, &mut x, false, false);
    x
}

/// Solves `A x = b` by LU with partial pivoting, every operation rounded to `fmt`.
///
/// # Examples
/// ```
/// use lowp::arith::linalg::solve;
/// use lowp::{Format, Rounding};
/// let x = solve(&Format::parse("float16")?, &Rounding::default(), &[2.0, 1.0, 1.0, 3.0], 2, &[3.0, 5.0])?;
/// assert_eq!(x, [0.7998046875, 1.400390625]); // 0.8 and 1.4 in float16 arithmetic
/// # Ok::<(), lowp::Error>(())
/// ```
pub fn solve(fmt: &Format, cfg: &Rounding, a: &[f64], n: usize, b: &[f64]) -> Result<Vec<f64>> {
    check_square("A", a.len(), n)?;
    check_vector("b", b.len(), n)?;
    check_finite("A", a)?;
    check_finite("b", b)?;
    let mut m = Machine::new(fmt, cfg, STREAM_FACTOR)?;
    let f = lu_in(&mut m, a, n)?;
    let mut b = b.to_vec();
    let at = m.take(n);
    m.lanes.round(at, &mut b);
    let x = lu_solve_in(&mut m, &f, &b);
    if x.iter().any(|v| !v.is_finite()) {
        return Err(overflowed(m.lanes.format(), "the triangular solves"));
    }
    Ok(x)
}

/// The Cholesky factor L (lower triangular, `A = L L^T`) of a symmetric positive definite matrix, every
/// operation rounded to `fmt`; only the lower triangle of `a` is read. Errors when a diagonal entry is not
/// positive in `fmt` (the matrix is not positive definite to the format's precision).
///
/// # Examples
/// ```
/// use lowp::arith::linalg::cholesky;
/// use lowp::{Format, Rounding};
/// let l = cholesky(&Format::parse("float64")?, &Rounding::default(), &[4.0, 2.0, 2.0, 5.0], 2)?;
/// assert_eq!(l, [2.0, 0.0, 1.0, 2.0]);
/// # Ok::<(), lowp::Error>(())
/// ```
pub fn cholesky(fmt: &Format, cfg: &Rounding, a: &[f64], n: usize) -> Result<Vec<f64>> {
    check_square("A", a.len(), n)?;
    check_triangle_finite("A", a, n, true)?;
    let mut m = Machine::new(fmt, cfg, STREAM_FACTOR)?;
    let mut l = vec![0.0; n * n];
    for j in 0..n {
        let ajj = m.round(a[j * n + j]);
        let row = l[j * n..j * n + j].to_vec();
        let s = m.sub_dot(ajj, &row, &row);
        if s.is_nan() || s <= 0.0 || s.is_infinite() {
            return Err(Error::Numerical(format!(
                "the matrix is not positive definite in {}: the pivot of column {j} is {s}",
                fmt.name()
            )));
        }
        let d = m.sqrt(s);
        l[j * n + j] = d;
        for i in j + 1..n {
            let aij = m.round(a[i * n + j]);
            let s = m.sub_dot(aij, &l[i * n..i * n + j], &row);
            l[i * n + j] = m.div(s, d);
        }
    }
    if l.iter().any(|v| !v.is_finite()) {
        return Err(overflowed(fmt, "the Cholesky factorization"));
    }
    Ok(l)
}

/// The settings of [`refine`].
#[derive(Clone, Debug, PartialEq)]
pub struct Refine {
    /// Format of the LU factorization and of the correction solves.
    pub factor: Format,
    /// Format of the residual `b - A x`.
    pub residual: Format,
    /// Format of the solution and its updates (A and b are stored in it).
    pub working: Format,
    /// Mode and seed of every rounding.
    pub rounding: Rounding,
    /// Refinement steps at most.
    pub max_iter: usize,
    /// The true solution, if known: then each step reports its forward error.
    pub x_true: Option<Vec<f64>>,
}

impl Refine {
    /// Factor, residual and working formats; ties to even; at most 10 steps.
    pub fn new(factor: &Format, residual: &Format, working: &Format) -> Refine {
        Refine {
            factor: factor.clone(),
            residual: residual.clone(),
            working: working.clone(),
            rounding: Rounding::default(),
            max_iter: 10,
            x_true: None,
        }
    }
    /// Sets the rounding.
    pub fn with_rounding(mut self, rounding: Rounding) -> Refine {
        self.rounding = rounding;
        self
    }
    /// Sets the step limit.
    pub fn with_max_iter(mut self, max_iter: usize) -> Refine {
        self.max_iter = max_iter;
        self
    }
    /// Sets the true solution.
    pub fn with_x_true(mut self, x: &[f64]) -> Refine {
        self.x_true = Some(x.to_vec());
        self
    }
}

/// The state after the initial solve (step 0) and after each refinement step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Step {
    /// Normwise backward error `||b - A x|| / (||A|| ||x|| + ||b||)` (infinity norms), the residual
    /// computed in compensated float64 arithmetic (not in the emulated formats).
    pub backward_error: f64,
    /// `||x - x_true|| / ||x_true||` (infinity norms), when the true solution was given.
    pub forward_error: Option<f64>,
    /// `||d|| / ||x||` for the correction d of this step (0 for step 0).
    pub correction: f64,
}

/// The result of [`refine`].
#[derive(Clone, Debug, PartialEq)]
pub struct Refinement {
    /// The last iterate.
    pub x: Vec<f64>,
    /// Step 0 (the initial solve) and every refinement step taken.
    pub history: Vec<Step>,
    /// Whether the last correction was at most the working format's unit roundoff u relative to x (the
    /// iterate stopped changing), or the backward error reached n u (a backward-stable solution); never for
    /// an iterate that is not finite.
    pub converged: bool,
}

/// The infinity norm; NaN when any entry is NaN (`f64::max` would skip it).
fn norm_inf(v: &[f64]) -> f64 {
    v.iter().fold(0.0, |m: f64, x| if x.is_nan() || m.is_nan() { f64::NAN } else { m.max(x.abs()) })
}

/// `b - A x` in compensated float64 (Ogita, Rump and Oishi's Dot2: about twice float64's precision).
fn accurate_residual(a: &[f64], n: usize, x: &[f64], b: &[f64]) -> Vec<f64> {
    (0..n)
        .map(|i| {
            let (mut s, mut c) = (b[i], 0.0);
            for j in 0..n {
                let p = -a[i * n + j] * x[j];
                let pe = (-a[i * n + j]).mul_add(x[j], -p);
                let t = s + p;
                let bb = t - s;
                let se = (s - (t - bb)) + (p - bb);
                s = t;
                c += pe + se;
            }
            s + c
        })
        .collect()
}

/// Mixed-precision iterative refinement for `A x = b` (LU-IR): factorize `A` in the factor format, solve,
/// then repeat: residual `r = b - A x` in the residual format, correction `d` from the LU factors in the
/// factor format (r scaled by a power of two so that it fits that format's range), update `x = x + d` in
/// the working format. Stops after `max_iter` steps or when converged.
///
/// Classical theory (Carson and Higham, 2018): with LU in a format of unit roundoff u_f, refinement
/// converges when κ∞(A) u_f is sufficiently below 1, to a forward error of about κ∞(A) u_w with
/// residuals in the working format u_w.
pub fn refine(a: &[f64], n: usize, b: &[f64], cfg: &Refine) -> Result<Refinement> {
    check_square("A", a.len(), n)?;
    check_vector("b", b.len(), n)?;
    check_finite("A", a)?;
    check_finite("b", b)?;
    if let Some(t) = &cfg.x_true {
        check_vector("x_true", t.len(), n)?;
    }
    let mut fac = Machine::new(&cfg.factor, &cfg.rounding, STREAM_FACTOR)?;
    let mut res = Machine::new(&cfg.residual, &cfg.rounding, STREAM_RESIDUAL)?;
    let mut work = Machine::new(&cfg.working, &cfg.rounding, STREAM_WORKING)?;
    // A and b as stored in the working format.
    let mut a_w = a.to_vec();
    let at = work.take(a_w.len());
    work.lanes.round(at, &mut a_w);
    let mut b_w = b.to_vec();
    let at = work.take(n);
    work.lanes.round(at, &mut b_w);

    let f = lu_in(&mut fac, &a_w, n)?;
    // The correction for r: None when r is not finite (the residual overflowed: the refinement failed).
    let solve_scaled = |fac: &mut Machine, r: &[f64]| -> Option<Vec<f64>> {
        let norm = norm_inf(r);
        if !norm.is_finite() {
            return None;
        }
        if norm == 0.0 {
            return Some(vec![0.0; r.len()]);
        }
        // Scale by a power of two so that the largest entry is in [1, 2): exact unless entries far below the
        // largest fall into float64's subnormals, which no factor format could hold anyway.
        let e = crate::format::exponent_of(norm);
        let mut rs: Vec<f64> = r.iter().map(|&v| scale2(v, -e)).collect();
        let at = fac.take(rs.len());
        fac.lanes.round(at, &mut rs);
        Some(lu_solve_in(fac, &f, &rs).into_iter().map(|v| scale2(v, e)).collect())
    };
    let norm_a = (0..n).map(|i| a_w[i * n..(i + 1) * n].iter().map(|v| v.abs()).sum::<f64>()).fold(0.0, f64::max);
    let norm_b = norm_inf(&b_w);
    let report = |x: &[f64], correction: f64| {
        let r = accurate_residual(&a_w, n, x, &b_w);
        let denom = norm_a * norm_inf(x) + norm_b;
        Step {
            backward_error: if denom == 0.0 { 0.0 } else { norm_inf(&r) / denom },
            forward_error: cfg.x_true.as_ref().map(|t| {
                let d: Vec<f64> = x.iter().zip(t).map(|(a, b)| a - b).collect();
                norm_inf(&d) / norm_inf(t)
            }),
            correction,
        }
    };

    let mut x = solve_scaled(&mut fac, &b_w).unwrap_or_else(|| vec![f64::NAN; n]);
    let at = work.take(n);
    work.lanes.round(at, &mut x);
    let mut history = vec![report(&x, 0.0)];
    // Converged: the correction is below the working precision's unit roundoff u, or the backward error is
    // that of a backward-stable solve, n u (with residuals in the working precision the backward error
    // levels off at a small multiple of u, and the correction at about κ u).
    let u = cfg.working.unit_roundoff();
    let tol = u * n.max(1) as f64;
    let mut converged = x.iter().all(|v| v.is_finite()) && history[0].backward_error <= tol;
    for _ in 0..cfg.max_iter {
        if converged {
            break;
        }
        // r = b - A x, every operation in the residual format.
        let r: Vec<f64> = (0..n)
            .map(|i| {
                let bi = res.round(b_w[i]);
                res.sub_dot(bi, &a_w[i * n..(i + 1) * n], &x)
            })
            .collect();
        let Some(d) = solve_scaled(&mut fac, &r) else {
            // The residual overflowed in its format: record the step and stop, not converged.
            history.push(report(&x, f64::NAN));
            converged = false;
            break;
        };
        for (xi, di) in x.iter_mut().zip(&d) {
            *xi = work.add(*xi, *di);
        }
        let nx = norm_inf(&x);
        let correction = if nx == 0.0 { 0.0 } else { norm_inf(&d) / nx };
        let step = report(&x, correction);
        let finite = x.iter().all(|v| v.is_finite());
        // NaN comparisons are false: an iterate that overflowed never counts as converged.
        converged = finite && (correction <= u || step.backward_error <= tol);
        history.push(step);
        if !finite {
            break;
        }
    }
    Ok(Refinement { x, history, converged })
}
