//! GPTQ (Frantar et al., 2023): quantizes a linear layer's weight column by column, each rounding error
//! spread over the columns not yet quantized so as to minimize the layer's output error on calibration
//! inputs, ‖(W − Q) X‖², through the Hessian H = 2 XᵀX / n.
//!
//! The steps, for W of `[rows, cols]` (output features × input features) and H of `[cols, cols]`:
//! 1. Columns whose H diagonal is 0 (inputs that never fire) get H_ii = 1 and W_:i = 0.
//! 2. With act-order, columns are processed by decreasing H_ii.
//! 3. Damping: λ = damp · mean(diag H) is added to the diagonal.
//! 4. U = the upper Cholesky factor of H⁻¹.
//! 5. In blocks of `block` columns: column i is quantized on its grid (q = the grid value nearest w, ties
//!    to even), e = (w − q) / U_ii is subtracted times U_i,j from each later column j of the block at once,
//!    and from the columns after the block in one product when the block ends ("lazy batch" updates).
//! 6. The grid of a column: per tensor or per channel (one per row), fitted once on the original W; per
//!    group of G columns, fitted on the group's current (already updated) weights when its first column is
//!    reached, or on the original weights before any update with static groups.
//!
//! lowp stores groups as runs of consecutive input features, so act-order with groups needs static groups
//! (the original implementation instead stores a group index per column).

use crate::error::{Error, Result};
use crate::quant::{AffineInt, Granularity, QuantizedInt, Scheme};

use super::dense::{gemm, inverse_upper_cholesky};

/// GPTQ's settings.
#[derive(Clone, Debug, PartialEq)]
pub struct GptqOptions {
    /// Damping, relative to the mean of H's diagonal (0.01 in the paper).
    pub damp: f64,
    /// Columns per lazy-batch block (128 in the paper).
    pub block: usize,
    /// Process columns by decreasing H diagonal.
    pub act_order: bool,
    /// Fit group grids on the original weights, before any update.
    pub static_groups: bool,
}

impl Default for GptqOptions {
    fn default() -> GptqOptions {
        GptqOptions { damp: 0.01, block: 128, act_order: false, static_groups: false }
    }
}

impl GptqOptions {
    /// Whether these options can quantize to `scheme`: act-order with groups needs static groups, since lowp
    /// stores groups as runs of consecutive input features.
    pub fn check(&self, scheme: &AffineInt) -> Result<()> {
        if self.act_order && matches!(scheme.granularity(), Granularity::Group(_)) && !self.static_groups {
            return Err(Error::InvalidOption(format!(
                "GPTQ with act-order and groups ({scheme}) needs static groups: lowp stores groups as runs of \
                 consecutive input features"
            )));
        }
        Ok(())
    }
}

/// The affine integer scheme of `scheme`: the only kind GPTQ quantizes to.
pub fn gptq_scheme(scheme: &Scheme) -> Result<&AffineInt> {
    match scheme {
        Scheme::Int(s) => Ok(s),
        other => Err(Error::InvalidOption(format!(
            "GPTQ quantizes to the affine integer schemes (int<b>:...); `{other}` is not one"
        ))),
    }
}

/// What [`gptq`] returns.
#[derive(Clone, Debug, PartialEq)]
pub struct Gptq {
    /// Codes, scales and zero points: the weight `[rows, cols]` quantized by the scheme (per channel: one
    /// scale per row, axis 0; groups run along a row, axis 1).
    pub quantized: QuantizedInt,
    /// The dequantized weight, row-major.
    pub values: Vec<f64>,
    /// GPTQ's own loss: Σ (w − q)² / (2 U_ii²) over the weights.
    pub loss: f64,
}

/// The grid parameters (scale, zero point) of every row and block of columns.
struct Grids {
    /// Blocks per row along the columns (1 for tensor and channel granularity).
    per_row: usize,
    /// Columns per block.
    width: usize,
    params: Vec<(f64, i32)>,
    shared: bool,
}

impl Grids {
    fn at(&self, row: usize, col: usize) -> (f64, i32) {
        if self.shared {
            self.params[0]
        } else {
            self.params[row * self.per_row + col / self.width]
        }
    }
}

/// GPTQ of weight `w` (`[rows, cols]`, row-major) with Hessian `h` (`[cols, cols]`) into the affine integer
/// `scheme`.
///
/// # Examples
/// ```
/// use lowp::ptq::{gptq, GptqOptions};
/// use lowp::quant::AffineInt;
/// // With a diagonal Hessian no error can be compensated: GPTQ is round-to-nearest.
/// let w = [0.1, -0.7, 0.33, 0.9, 0.05, -0.2];
/// let h = [2.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 3.0];
/// let s = AffineInt::parse("int4:channel:sym")?;
/// let g = gptq(&s, &w, 2, 3, &h, &GptqOptions::default())?;
/// let rtn = s.quantize(&lowp::Rounding::default(), &w, &[2, 3], 0)?;
/// assert_eq!(g.quantized.codes, rtn.codes);
/// # Ok::<(), lowp::Error>(())
/// ```
pub fn gptq(scheme: &AffineInt, w: &[f64], rows: usize, cols: usize, h: &[f64], opts: &GptqOptions) -> Result<Gptq> {
    GptqHessian::new(h, cols, opts)?.quantize(scheme, w, rows)
}

/// What GPTQ derives from a Hessian alone (the processing order, the dead inputs, the factor U of the damped
/// inverse), computed once and shared by the layers that read the same inputs (a block's q, k and v).
#[derive(Clone, Debug)]
pub struct GptqHessian {
    n: usize,
    options: GptqOptions,
    /// Processing order: perm[i] is the column quantized i-th.
    perm: Vec<usize>,
    /// Inputs whose H diagonal is 0, by column.
    dead: Vec<bool>,
    /// Upper Cholesky factor of the damped, permuted H⁻¹.
    u: Vec<f64>,
}

impl GptqHessian {
    /// Prepares `h` (`[cols, cols]`) under `opts`.
    pub fn new(h: &[f64], cols: usize, opts: &GptqOptions) -> Result<GptqHessian> {
        let n = cols;
        if n == 0 || h.len() != n * n || h.iter().any(|v| !v.is_finite()) {
            return Err(Error::InvalidOption(format!(
                "GPTQ: a Hessian of {} values is not a finite [{n}, {n}] matrix (n at least 1)",
                h.len()
            )));
        }
        if !(opts.damp >= 0.0 && opts.damp.is_finite()) || opts.block == 0 {
            return Err(Error::InvalidOption(format!(
                "GPTQ: damping {} and block {} (accepted: damping >= 0, block >= 1)",
                opts.damp, opts.block
            )));
        }
        let mut perm: Vec<usize> = (0..n).collect();
        if opts.act_order {
            perm.sort_by(|&a, &b| h[b * n + b].total_cmp(&h[a * n + a]).then(a.cmp(&b)));
        }
        let mut hp = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                hp[i * n + j] = h[perm[i] * n + perm[j]];
            }
        }
        let mut dead = vec![false; n];
        for i in 0..n {
            if hp[i * n + i] == 0.0 {
                hp[i * n + i] = 1.0;
                dead[perm[i]] = true;
            }
        }
        let damp = opts.damp * (0..n).map(|i| hp[i * n + i]).sum::<f64>() / n as f64;
        for i in 0..n {
            hp[i * n + i] += damp;
        }
        let u = inverse_upper_cholesky(&hp, n).map_err(|e| {
            Error::Numerical(format!("GPTQ: the damped Hessian cannot be inverted ({e}); raise the damping"))
        })?;
        Ok(GptqHessian { n, options: opts.clone(), perm, dead, u })
    }

    /// GPTQ of `w` (`[rows, cols]`, row-major) into `scheme`.
    pub fn quantize(&self, scheme: &AffineInt, w: &[f64], rows: usize) -> Result<Gptq> {
        let (n, cols, opts, perm, u) = (self.n, self.n, &self.options, &self.perm, &self.u);
        if rows == 0 || w.len() != rows * cols {
            return Err(Error::InvalidOption(format!(
                "GPTQ: a weight of {} values is not [{rows}, {cols}] (rows at least 1)",
                w.len()
            )));
        }
        if let Some(i) = w.iter().position(|v| !v.is_finite()) {
            return Err(Error::InvalidOption(format!("GPTQ: weight {i} is {} (accepted: finite values)", w[i])));
        }
        opts.check(scheme)?;
        let group = match scheme.granularity() {
            Granularity::Group(g) => Some(g),
            _ => None,
        };
        // Wt[i] = column perm[i] of W (contiguous over rows), dead inputs zeroed.
        let mut wt = vec![0.0; n * rows];
        for (i, &c) in perm.iter().enumerate() {
            if !self.dead[c] {
                for r in 0..rows {
                    wt[i * rows + r] = w[r * cols + c];
                }
            }
        }
        // Grids fitted before any update (tensor, channel, static groups) on the original weights with dead
        // columns zeroed.
        let mut inv_perm = vec![0; n];
        for (i, &c) in perm.iter().enumerate() {
            inv_perm[c] = i;
        }
        let original = |r: usize, c: usize| wt[inv_perm[c] * rows + r];
        let mut grids = match scheme.granularity() {
            Granularity::Tensor => {
                Grids { per_row: 1, width: cols.max(1), params: vec![scheme.fit(&wt)?], shared: true }
            }
            Granularity::Channel => {
                let params = (0..rows)
                    .map(|r| scheme.fit(&(0..cols).map(|c| original(r, c)).collect::<Vec<_>>()))
                    .collect::<Result<Vec<_>>>()?;
                Grids { per_row: 1, width: cols.max(1), params, shared: false }
            }
            Granularity::Group(g) => {
                let per_row = cols.div_ceil(g);
                let mut params = vec![(0.0, 0); rows * per_row];
                if opts.static_groups {
                    for r in 0..rows {
                        for k in 0..per_row {
                            let vals: Vec<f64> = (k * g..((k + 1) * g).min(cols)).map(|c| original(r, c)).collect();
                            params[r * per_row + k] = scheme.fit(&vals)?;
                        }
                    }
                }
                Grids { per_row, width: g, params, shared: false }
            }
        };
        let mut codes = vec![0i32; rows * cols];
        let mut values = vec![0.0; rows * cols];
        let mut loss = 0.0;
        let b = opts.block.min(n); // a block longer than the matrix is the whole matrix
        let mut err = vec![0.0; b * rows];
        for i1 in (0..n).step_by(b) {
            let i2 = (i1 + b).min(n);
            for i in i1..i2 {
                let c = perm[i];
                if let (Some(g), false) = (group, opts.static_groups) {
                    if c.is_multiple_of(g) {
                        // Without act-order, columns c..c+g are i..i+g: fit on their current weights. Columns past
                        // this block still owe it the updates of its columns before i (the lazy batch).
                        let end = (i + g).min(n);
                        let current = |j: usize, r: usize| {
                            let pending: f64 = if j < i2 {
                                0.0
                            } else {
                                (i1..i).map(|k| u[k * n + j] * err[(k - i1) * rows + r]).sum()
                            };
                            wt[j * rows + r] - pending
                        };
                        for r in 0..rows {
                            let vals: Vec<f64> = (i..end).map(|j| current(j, r)).collect();
                            grids.params[r * grids.per_row + c / g] = scheme.fit(&vals)?;
                        }
                    }
                }
                let d = u[i * n + i];
                let (col, rest) = wt[i * rows..].split_at_mut(rows);
                let e = &mut err[(i - i1) * rows..(i - i1 + 1) * rows];
                for r in 0..rows {
                    let (s, z) = grids.at(r, c);
                    let code = scheme.nearest_code(col[r], s, z);
                    let q = f64::from(code - z) * s;
                    codes[r * cols + c] = code;
                    values[r * cols + c] = q;
                    let diff = col[r] - q;
                    loss += diff * diff / (2.0 * d * d);
                    e[r] = diff / d;
                }
                for j in i + 1..i2 {
                    let uij = u[i * n + j];
                    if uij != 0.0 {
                        for (x, &er) in rest[(j - i - 1) * rows..(j - i) * rows].iter_mut().zip(e.iter()) {
                            *x -= er * uij;
                        }
                    }
                }
            }
            if i2 < n {
                // Wt[i2..] -= U[i1..i2, i2..]ᵀ · Err.
                let count = i2 - i1;
                gemm(
                    n - i2,
                    count,
                    rows,
                    -1.0,
                    &u[i1 * n + i2..],
                    (1, n as isize),
                    &err[..count * rows],
                    (rows as isize, 1),
                    1.0,
                    &mut wt[i2 * rows..],
                    rows as isize,
                );
            }
        }
        let (scales, zeros) = match scheme.granularity() {
            Granularity::Tensor => (vec![grids.params[0].0], vec![grids.params[0].1]),
            _ => grids.params.iter().copied().unzip(),
        };
        let axis = usize::from(scheme.granularity() != Granularity::Channel);
        let quantized = QuantizedInt { scheme: scheme.clone(), shape: vec![rows, cols], axis, codes, scales, zeros };
        Ok(Gptq { quantized, values, loss })
    }
}
