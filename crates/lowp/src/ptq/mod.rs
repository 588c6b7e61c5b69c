//! Post-training quantization of weight matrices with calibration data: the Hessian of a linear layer's
//! output error ([`Hessian`]), the error it measures ([`hessian_error`]), and GPTQ ([`gptq`]).
//!
//! A linear layer y = W x with W of `[rows, cols]` (output × input features) quantized to Q changes its
//! outputs on calibration inputs X (`[n, cols]`) by ‖(W − Q) Xᵀ‖², which is tr((W − Q) H (W − Q)ᵀ) / 2 with
//! H = 2 XᵀX / n up to the factor n. Methods that use calibration data minimize this.

mod dense;
mod gptq;

pub use dense::{cholesky_lower, gemm, inverse_upper_cholesky, GemmFloat};
pub use gptq::{gptq, gptq_scheme, Gptq, GptqHessian, GptqOptions};

use crate::error::{Error, Result};

/// Rows of inputs whose products are summed in float32 before joining the float64 sum.
const CHUNK: usize = 512;

/// H = 2 XᵀX / n accumulated over batches of inputs X (`[tokens, dim]`): products of up to 512 rows at a
/// time in float32 (sgemm), their sums in float64.
#[derive(Clone, Debug, PartialEq)]
pub struct Hessian {
    dim: usize,
    sum: Vec<f64>,
    count: usize,
}

impl Hessian {
    /// An empty accumulator for inputs of `dim` features.
    pub fn new(dim: usize) -> Hessian {
        Hessian { dim, sum: vec![0.0; dim * dim], count: 0 }
    }

    /// Input features.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Input rows added so far.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Adds `rows` inputs (`x` is `[rows, dim]`, row-major).
    pub fn add(&mut self, x: &[f32], rows: usize) -> Result<()> {
        if x.len() != rows * self.dim {
            return Err(Error::InvalidOption(format!(
                "Hessian of {} features: {} values are not {rows} rows",
                self.dim,
                x.len()
            )));
        }
        if let Some(i) = x.iter().position(|v| !v.is_finite()) {
            return Err(Error::InvalidOption(format!("Hessian input {i} is {} (accepted: finite values)", x[i])));
        }
        let d = self.dim;
        let mut part = vec![0f32; d * d];
        for chunk in x.chunks(CHUNK * d.max(1)) {
            let t = chunk.len() / d.max(1);
            // part = chunkᵀ chunk in float32 (sgemm), added to the float64 sum: at most CHUNK products per
            // entry are summed in float32.
            dense::gemm(d, t, d, 1.0, chunk, (1, d as isize), chunk, (d as isize, 1), 0.0, &mut part, d as isize);
            for (s, &p) in self.sum.iter_mut().zip(&part) {
                *s += f64::from(p);
            }
        }
        self.count += rows;
        Ok(())
    }

    /// H = 2 XᵀX / n (all zeros before any input).
    pub fn matrix(&self) -> Vec<f64> {
        let f = if self.count == 0 { 0.0 } else { 2.0 / self.count as f64 };
        self.sum.iter().map(|v| v * f).collect()
    }
}

/// tr((W − Q) H (W − Q)ᵀ): the layer's output error on the calibration inputs that made H (times n/2), for
/// `w` and `q` of `[rows, cols]` and `h` of `[cols, cols]`.
pub fn hessian_error(w: &[f64], q: &[f64], rows: usize, cols: usize, h: &[f64]) -> Result<f64> {
    if w.len() != rows * cols || q.len() != w.len() || h.len() != cols * cols {
        return Err(Error::InvalidOption(format!(
            "hessian_error: W has {}, Q {} and H {} values for [{rows}, {cols}] and [{cols}, {cols}]",
            w.len(),
            q.len(),
            h.len()
        )));
    }
    let d: Vec<f64> = w.iter().zip(q).map(|(a, b)| a - b).collect();
    let mut dh = vec![0.0; rows * cols];
    dense::gemm(rows, cols, cols, 1.0, &d, (cols as isize, 1), h, (cols as isize, 1), 0.0, &mut dh, cols as isize);
    Ok(d.iter().zip(&dh).map(|(a, b)| a * b).sum())
}
