//! The dense float32 building blocks of the forward passes: products with a weight matrix, RMS and layer
//! normalization, softmax. Products run on `matrixmultiply`'s sgemm (through [`lowp::ptq::gemm`]), split over rows of the activations
//! across rayon's threads.

use lowp::ptq::gemm;
use rayon::prelude::*;

/// Rows of activations per parallel task (the last task takes the remainder).
const ROWS_PER_TASK: usize = 64;

/// `y[t, o] = sum_i x[t, i] * w[o, i]` for `t < rows`: `x` is `[rows, inp]`, `w` is `[out, inp]` (a linear
/// layer's weight, row-major), `y` is `[rows, out]`. Rows are split across threads.
pub fn matmul_t(x: &[f32], w: &[f32], rows: usize, inp: usize, out: usize, y: &mut [f32]) {
    assert!(x.len() >= rows * inp && w.len() == out * inp && y.len() >= rows * out, "matmul_t shapes");
    let tasks = rows.div_ceil(ROWS_PER_TASK).max(1);
    let per = rows.div_ceil(tasks.min(rayon::current_num_threads().max(1) * 4)).max(1);
    y[..rows * out].par_chunks_mut(per * out).zip(x[..rows * inp].par_chunks(per * inp)).for_each(|(yc, xc)| {
        let m = xc.len() / inp.max(1);
        gemm(m, inp, out, 1.0, xc, (inp as isize, 1), w, (1, inp as isize), 0.0, yc, out as isize);
    });
}

/// RMS normalization of each row of `x` (`[rows, d]`) times `w`, into `y`: x / sqrt(mean(x²) + eps) · w.
pub fn rms_norm(x: &[f32], w: &[f32], eps: f32, y: &mut [f32]) {
    let d = w.len();
    y.par_chunks_mut(d).zip(x.par_chunks(d)).for_each(|(yr, xr)| {
        let ms = xr.iter().map(|v| v * v).sum::<f32>() / d as f32;
        let r = 1.0 / (ms + eps).sqrt();
        for ((o, &v), &g) in yr.iter_mut().zip(xr).zip(w) {
            *o = v * r * g;
        }
    });
}

/// Layer normalization of each row of `x` (`[rows, d]`): (x − mean) / sqrt(var + eps) · w + b, in place.
pub fn layer_norm(x: &mut [f32], w: &[f32], b: &[f32], eps: f32) {
    let d = w.len();
    x.par_chunks_mut(d).for_each(|r| {
        let mean = r.iter().sum::<f32>() / d as f32;
        let var = r.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / d as f32;
        let s = 1.0 / (var + eps).sqrt();
        for ((v, &g), &bb) in r.iter_mut().zip(w).zip(b) {
            *v = (*v - mean) * s * g + bb;
        }
    });
}

/// Softmax of `row` in place (max subtracted first).
pub fn softmax(row: &mut [f32]) {
    let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for v in row.iter_mut() {
        *v = (*v - m).exp();
        sum += *v;
    }
    let inv = 1.0 / sum;
    for v in row.iter_mut() {
        *v *= inv;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matmul_t_matches_a_plain_loop() {
        let (rows, inp, out) = (131, 37, 29);
        let x: Vec<f32> = (0..rows * inp).map(|i| ((i * 7919) % 97) as f32 / 13.0 - 3.0).collect();
        let w: Vec<f32> = (0..out * inp).map(|i| ((i * 104729) % 89) as f32 / 11.0 - 4.0).collect();
        let mut y = vec![0f32; rows * out];
        matmul_t(&x, &w, rows, inp, out, &mut y);
        for t in 0..rows {
            for o in 0..out {
                let r: f64 = (0..inp).map(|i| f64::from(x[t * inp + i]) * f64::from(w[o * inp + i])).sum();
                assert!((f64::from(y[t * out + o]) - r).abs() <= 1e-4 * (1.0 + r.abs()), "{t},{o}");
            }
        }
    }

    #[test]
    fn norms_and_softmax_by_definition() {
        let x = [3.0f32, 4.0, 0.0, 0.0];
        let mut y = [0f32; 4];
        rms_norm(&x, &[1.0, 2.0, 1.0, 1.0], 0.0, &mut y);
        assert_eq!(y, [1.2, 3.2, 0.0, 0.0]); // rms = sqrt(25 / 4) = 2.5
        let mut z = [1.0f32, 3.0];
        layer_norm(&mut z, &[1.0, 1.0], &[0.5, 0.5], 0.0);
        assert_eq!(z, [-0.5, 1.5]);
        let mut s = [0.0f32, 2f32.ln()];
        softmax(&mut s);
        assert!((s[0] - 1.0 / 3.0).abs() < 1e-7 && (s[1] - 2.0 / 3.0).abs() < 1e-7);
    }
}
