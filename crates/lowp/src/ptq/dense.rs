//! Dense linear algebra for the PTQ methods (and lowp-model's forward passes): Cholesky factors and the
//! inverse of a symmetric positive definite matrix (float64, row-major, n × n), and bounds-checked products
//! on `matrixmultiply`'s sgemm and dgemm.

use crate::error::{Error, Result};

/// The lower Cholesky factor L of `a` (a = L Lᵀ), or an error if `a` is not positive definite.
pub fn cholesky_lower(a: &[f64], n: usize) -> Result<Vec<f64>> {
    let mut l = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..=i {
            let s = a[i * n + j] - dot(&l[i * n..i * n + j], &l[j * n..j * n + j]);
            if i == j {
                if s.is_nan() || s <= 0.0 || s.is_infinite() {
                    return Err(Error::Numerical(format!(
                        "the matrix is not positive definite (pivot {i} of {n} is {s:e})"
                    )));
                }
                l[i * n + i] = s.sqrt();
            } else {
                l[i * n + j] = s / l[j * n + j];
            }
        }
    }
    Ok(l)
}

/// Σ x_k y_k in eight interleaved partial sums (a fixed order, so the same on every run).
fn dot(x: &[f64], y: &[f64]) -> f64 {
    let mut acc = [0.0; 8];
    let (xc, yc) = (x.chunks_exact(8), y.chunks_exact(8));
    let tail: f64 = xc.remainder().iter().zip(yc.remainder()).map(|(a, b)| a * b).sum();
    for (a, b) in xc.zip(yc) {
        for k in 0..8 {
            acc[k] += a[k] * b[k];
        }
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

/// The upper Cholesky factor U of a⁻¹ (a⁻¹ = Uᵀ U), for `a` symmetric positive definite: GPTQ's
/// `Hinv`. With P the reversal permutation and P a P = K Kᵀ, U = P K⁻¹ P: one Cholesky factorization and
/// one triangular inverse.
pub fn inverse_upper_cholesky(a: &[f64], n: usize) -> Result<Vec<f64>> {
    let reversed: Vec<f64> = (0..n * n).map(|k| a[(n - 1 - k / n) * n + (n - 1 - k % n)]).collect();
    let k = cholesky_lower(&reversed, n)?;
    // M = K⁻¹ (lower triangular), row by row: M_i = (e_i − Σ_{j<i} K_ij M_j) / K_ii (contiguous rows).
    let mut m = vec![0.0; n * n];
    for i in 0..n {
        let (done, row) = m.split_at_mut(i * n);
        let row = &mut row[..n];
        row[i] = 1.0;
        for j in 0..i {
            let f = k[i * n + j];
            if f != 0.0 {
                for (x, &y) in row[..=j].iter_mut().zip(&done[j * n..j * n + j + 1]) {
                    *x -= f * y;
                }
            }
        }
        let d = k[i * n + i];
        row[..=i].iter_mut().for_each(|x| *x /= d);
    }
    Ok((0..n * n).map(|p| m[(n - 1 - p / n) * n + (n - 1 - p % n)]).collect())
}

/// A float type `matrixmultiply` multiplies: float32 (sgemm) or float64 (dgemm).
pub trait GemmFloat: Copy + sealed::Sealed {
    /// `matrixmultiply`'s sgemm or dgemm.
    ///
    /// # Safety
    /// The strides must keep every element reached inside the operands, and `c` must alias neither.
    #[doc(hidden)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn raw_gemm(
        m: usize,
        k: usize,
        n: usize,
        alpha: Self,
        a: *const Self,
        rsa: isize,
        csa: isize,
        b: *const Self,
        rsb: isize,
        csb: isize,
        beta: Self,
        c: *mut Self,
        rsc: isize,
        csc: isize,
    );
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

macro_rules! gemm_float {
    ($t:ty, $f:ident) => {
        impl GemmFloat for $t {
            unsafe fn raw_gemm(
                m: usize,
                k: usize,
                n: usize,
                alpha: $t,
                a: *const $t,
                rsa: isize,
                csa: isize,
                b: *const $t,
                rsb: isize,
                csb: isize,
                beta: $t,
                c: *mut $t,
                rsc: isize,
                csc: isize,
            ) {
                // SAFETY: the caller's contract is matrixmultiply's.
                unsafe { matrixmultiply::$f(m, k, n, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc) }
            }
        }
    };
}
gemm_float!(f32, sgemm);
gemm_float!(f64, dgemm);

/// c ← alpha · a · b + beta · c for a `[m, k]` and b `[k, n]` given by (row stride, column stride), c
/// row-major with row stride `rsc`, in float32 or float64 (`matrixmultiply`, cache-blocked, one thread).
///
/// # Panics
/// If the strides reach outside an operand.
#[allow(clippy::too_many_arguments)]
pub fn gemm<F: GemmFloat>(
    m: usize,
    k: usize,
    n: usize,
    alpha: F,
    a: &[F],
    (rsa, csa): (isize, isize),
    b: &[F],
    (rsb, csb): (isize, isize),
    beta: F,
    c: &mut [F],
    rsc: isize,
) {
    if m == 0 || n == 0 {
        return;
    }
    let last = |r: isize, cs: isize, rows: usize, cols: usize| (rows as isize - 1) * r + (cols as isize - 1) * cs;
    assert!(
        k == 0 || (last(rsa, csa, m, k) < a.len() as isize && last(rsb, csb, k, n) < b.len() as isize),
        "gemm operand bounds"
    );
    assert!(last(rsc, 1, m, n) < c.len() as isize, "gemm output bounds");
    // SAFETY: the asserts keep every element the strides reach inside the slices (all strides are
    // non-negative here); `c` is a unique borrow, so it aliases neither input.
    unsafe { F::raw_gemm(m, k, n, alpha, a.as_ptr(), rsa, csa, b.as_ptr(), rsb, csb, beta, c.as_mut_ptr(), rsc, 1) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spd(n: usize) -> Vec<f64> {
        // B Bᵀ + n I for a fixed B.
        let b: Vec<f64> = (0..n * n).map(|i| ((i * 37 % 23) as f64 - 11.0) / 7.0).collect();
        let mut a = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                a[i * n + j] =
                    (0..n).map(|k| b[i * n + k] * b[j * n + k]).sum::<f64>() + if i == j { n as f64 } else { 0.0 };
            }
        }
        a
    }

    #[test]
    fn factors_reproduce_the_matrix_and_its_inverse() {
        let n = 9;
        let a = spd(n);
        let l = cholesky_lower(&a, n).unwrap();
        let u = inverse_upper_cholesky(&a, n).unwrap();
        for i in 0..n {
            for j in 0..n {
                let llt: f64 = (0..n).map(|k| l[i * n + k] * l[j * n + k]).sum();
                assert!((llt - a[i * n + j]).abs() < 1e-10 * a[i * n + i].abs());
                // (Uᵀ U) a = I.
                let utu_a: f64 =
                    (0..n).map(|k| (0..n).map(|p| u[p * n + i] * u[p * n + k]).sum::<f64>() * a[k * n + j]).sum();
                assert!((utu_a - if i == j { 1.0 } else { 0.0 }).abs() < 1e-10, "{i},{j}: {utu_a}");
                if j < i {
                    assert_eq!(u[i * n + j], 0.0); // upper triangular
                }
            }
        }
        let mut bad = a.clone();
        bad[0] = -1.0;
        assert!(cholesky_lower(&bad, n).unwrap_err().to_string().contains("not positive definite"));
    }
}
