//! Linear algebra with every operation rounded: float64 round-to-nearest results equal plain float64 code
//! (the hardware rounds each operation the same way), low-precision results equal the algorithms written
//! out with one emulated operation per step, and iterative refinement behaves as the theory says.

mod common;

use common::TestRng;
use lowp::arith::linalg::{cholesky, lu, refine, solve, solve_triangular, Refine};
use lowp::arith::{binary, unary, BinaryOp, Func};
use lowp::{Format, Rounding, RoundingMode};

fn random_matrix(n: usize, seed: u64) -> Vec<f64> {
    let mut rng = TestRng::new(seed);
    (0..n * n).map(|_| (rng.next_u64() >> 11) as f64 / (1u64 << 52) as f64 - 1.0).collect()
}

/// Right-looking LU with partial pivoting, each operation done by `op` (the order lowp documents).
fn lu_by_hand(a: &[f64], n: usize, op: &dyn Fn(BinaryOp, f64, f64) -> f64) -> (Vec<f64>, Vec<usize>) {
    let mut f = a.to_vec();
    let mut perm: Vec<usize> = (0..n).collect();
    for k in 0..n {
        let mut p = k;
        for i in k + 1..n {
            if f[i * n + k].abs() > f[p * n + k].abs() {
                p = i;
            }
        }
        for j in 0..n {
            f.swap(k * n + j, p * n + j);
        }
        perm.swap(k, p);
        for i in k + 1..n {
            let l = op(BinaryOp::Div, f[i * n + k], f[k * n + k]);
            f[i * n + k] = l;
            for j in k + 1..n {
                let prod = op(BinaryOp::Mul, l, f[k * n + j]);
                f[i * n + j] = op(BinaryOp::Sub, f[i * n + j], prod);
            }
        }
    }
    (f, perm)
}

fn native(o: BinaryOp, a: f64, b: f64) -> f64 {
    match o {
        BinaryOp::Add => a + b,
        BinaryOp::Sub => a - b,
        BinaryOp::Mul => a * b,
        BinaryOp::Div => a / b,
    }
}

fn emulated(fmt: &Format, mode: RoundingMode) -> impl Fn(BinaryOp, f64, f64) -> f64 + '_ {
    move |o, a, b| {
        let mut out = [0.0];
        binary(o, fmt, &Rounding::new(mode), &[a], &[b], &mut out).unwrap();
        out[0]
    }
}

fn round_all(fmt: &Format, v: &[f64]) -> Vec<f64> {
    let mut o = vec![0.0; v.len()];
    lowp::round(fmt, &Rounding::default(), v, &mut o).unwrap();
    o
}

#[test]
fn float64_round_to_nearest_equals_plain_float64_code() {
    let f64fmt = Format::parse("float64").unwrap();
    let rne = Rounding::default();
    let n = 24;
    let a = random_matrix(n, 1);
    let f = lu(&f64fmt, &rne, &a, n).unwrap();
    let (want, perm) = lu_by_hand(&a, n, &native);
    assert_eq!(f.factors, want);
    assert_eq!(f.perm, perm);

    // Triangular solves, then the whole solve.
    let b: Vec<f64> = random_matrix(n, 2)[..n].to_vec();
    let x = solve(&f64fmt, &rne, &a, n, &b).unwrap();
    let mut y: Vec<f64> = perm.iter().map(|&p| b[p]).collect();
    for i in 0..n {
        for j in 0..i {
            y[i] -= want[i * n + j] * y[j];
        }
    }
    for i in (0..n).rev() {
        for j in i + 1..n {
            y[i] -= want[i * n + j] * y[j];
        }
        y[i] /= want[i * n + i];
    }
    assert_eq!(x, y);
    let mut z = b.clone();
    solve_triangular(&f64fmt, &rne, &f.factors, n, &mut z, true, true).unwrap();
    solve_triangular(&f64fmt, &rne, &f.factors, n, &mut { z.clone() }, false, false).unwrap();

    // Cholesky of A A^T + n I.
    let mut spd = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            spd[i * n + j] =
                (0..n).map(|k| a[i * n + k] * a[j * n + k]).sum::<f64>() + if i == j { n as f64 } else { 0.0 };
        }
    }
    let l = cholesky(&f64fmt, &rne, &spd, n).unwrap();
    let mut want = vec![0.0; n * n];
    for j in 0..n {
        let mut s = spd[j * n + j];
        for k in 0..j {
            s -= want[j * n + k] * want[j * n + k];
        }
        let d = s.sqrt();
        want[j * n + j] = d;
        for i in j + 1..n {
            let mut s = spd[i * n + j];
            for k in 0..j {
                s -= want[i * n + k] * want[j * n + k];
            }
            want[i * n + j] = s / d;
        }
    }
    assert_eq!(l, want);
}

#[test]
fn low_precision_lu_equals_the_algorithm_with_each_operation_emulated() {
    let n = 12;
    for name in ["float16", "bfloat16", "e4m3fn"] {
        let fmt = Format::parse(name).unwrap();
        let a = round_all(&fmt, &random_matrix(n, 3));
        for mode in RoundingMode::DETERMINISTIC {
            let f = lu(&fmt, &Rounding::new(mode), &a, n).unwrap();
            let (want, perm) = lu_by_hand(&a, n, &emulated(&fmt, mode));
            assert_eq!(f.perm, perm, "{name} {mode:?}");
            let same = f.factors.iter().zip(&want).all(|(x, y)| x.to_bits() == y.to_bits());
            assert!(same, "{name} {mode:?}: {:?} vs {want:?}", f.factors);
        }
    }
    // The factors of a float16 LU reconstruct P A to about n u.
    let half = Format::parse("float16").unwrap();
    let n = 40;
    let a = round_all(&half, &random_matrix(n, 4));
    let f = lu(&half, &Rounding::default(), &a, n).unwrap();
    let (l, u) = (f.l(), f.u());
    let scale = a.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    for i in 0..n {
        for j in 0..n {
            let lu_ij: f64 = (0..n).map(|k| l[i * n + k] * u[k * n + j]).sum();
            let err = (lu_ij - a[f.perm[i] * n + j]).abs();
            assert!(err <= 4.0 * n as f64 * half.unit_roundoff() * scale, "({i},{j}): {err}");
        }
    }
}

#[test]
fn cholesky_in_low_precision_equals_the_algorithm_with_each_operation_emulated() {
    let n = 10;
    let bf16 = Format::parse("bfloat16").unwrap();
    let a = random_matrix(n, 5);
    let mut spd = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            spd[i * n + j] = (0..n).map(|k| a[i * n + k] * a[j * n + k]).sum::<f64>() + if i == j { 1.0 } else { 0.0 };
        }
    }
    for mode in RoundingMode::DETERMINISTIC {
        let l = cholesky(&bf16, &Rounding::new(mode), &spd, n).unwrap();
        let op = emulated(&bf16, mode);
        let rnd = |v: f64| {
            let mut o = [0.0];
            lowp::round(&bf16, &Rounding::new(mode), &[v], &mut o).unwrap();
            o[0]
        };
        let sqrt = |v: f64| {
            let mut o = [0.0];
            unary(Func::Sqrt, &bf16, &Rounding::new(mode), &[v], &mut o).unwrap();
            o[0]
        };
        let mut want = vec![0.0; n * n];
        for j in 0..n {
            let mut s = rnd(spd[j * n + j]);
            for k in 0..j {
                s = op(BinaryOp::Sub, s, op(BinaryOp::Mul, want[j * n + k], want[j * n + k]));
            }
            let d = sqrt(s);
            want[j * n + j] = d;
            for i in j + 1..n {
                let mut s = rnd(spd[i * n + j]);
                for k in 0..j {
                    s = op(BinaryOp::Sub, s, op(BinaryOp::Mul, want[i * n + k], want[j * n + k]));
                }
                want[i * n + j] = op(BinaryOp::Div, s, d);
            }
        }
        assert_eq!(l, want, "{mode:?}");
    }
}

/// Q from the Householder QR of a random matrix: an orthogonal matrix.
fn orthogonal(n: usize, seed: u64) -> Vec<f64> {
    let mut a = random_matrix(n, seed);
    let mut q: Vec<f64> = (0..n * n).map(|ij| if ij / n == ij % n { 1.0 } else { 0.0 }).collect();
    for k in 0..n {
        let norm = (k..n).map(|i| a[i * n + k] * a[i * n + k]).sum::<f64>().sqrt();
        let alpha = if a[k * n + k] > 0.0 { -norm } else { norm };
        let mut v: Vec<f64> = (0..n).map(|i| if i < k { 0.0 } else { a[i * n + k] }).collect();
        v[k] -= alpha;
        let vv: f64 = v.iter().map(|x| x * x).sum();
        if vv == 0.0 {
            continue;
        }
        for m in [&mut a, &mut q] {
            for j in 0..n {
                let s: f64 = (0..n).map(|i| v[i] * m[i * n + j]).sum::<f64>() * 2.0 / vv;
                for i in 0..n {
                    m[i * n + j] -= s * v[i];
                }
            }
        }
    }
    q
}

/// A = U diag(sigma) V^T with sigma from 1 down to 1/kappa: 2-norm condition number kappa.
fn conditioned(n: usize, kappa: f64, seed: u64) -> Vec<f64> {
    let (u, v) = (orthogonal(n, seed), orthogonal(n, seed + 1));
    let sigma: Vec<f64> = (0..n).map(|i| kappa.powf(-(i as f64) / (n - 1) as f64)).collect();
    let mut a = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            a[i * n + j] = (0..n).map(|k| u[i * n + k] * sigma[k] * v[j * n + k]).sum();
        }
    }
    a
}

#[test]
fn refinement_with_a_float16_lu_converges_below_the_known_condition_limit_and_not_above() {
    let n = 40;
    let half = Format::parse("float16").unwrap();
    let f64fmt = Format::parse("float64").unwrap();
    for (kappa, should_converge) in [(10.0, true), (100.0, true), (1e8, false)] {
        let a = conditioned(n, kappa, 11);
        let x_true = random_matrix(n, 12)[..n].to_vec();
        let b: Vec<f64> = (0..n).map(|i| (0..n).map(|j| a[i * n + j] * x_true[j]).sum()).collect();
        let cfg = Refine::new(&half, &f64fmt, &f64fmt).with_x_true(&x_true).with_max_iter(20);
        let r = refine(&a, n, &b, &cfg).unwrap();
        let fe: Vec<f64> = r.history.iter().map(|s| s.forward_error.unwrap()).collect();
        if should_converge {
            assert!(r.converged, "kappa {kappa}: {fe:?}");
            assert!(fe[0] > 1e-4, "kappa {kappa}: the float16 solve alone is only float16-accurate: {fe:?}");
            assert!(*fe.last().unwrap() < 1e-14 * kappa, "kappa {kappa}: {fe:?}");
            assert!(r.history.last().unwrap().backward_error < 1e-15, "kappa {kappa}");
        } else {
            assert!(!r.converged, "kappa {kappa}: {fe:?}");
            assert!(fe.iter().all(|e| e.is_nan() || *e >= 1e-3), "kappa {kappa}: {fe:?}");
        }
    }
}

#[test]
fn stochastic_factorizations_are_reproducible() {
    let half = Format::parse("float16").unwrap();
    let n = 16;
    let a = random_matrix(n, 21);
    let run = |seed| lu(&half, &Rounding::new(RoundingMode::Stochastic).with_seed(seed), &a, n).unwrap().factors;
    assert_eq!(run(1), run(1));
    assert_ne!(run(1), run(2));
}

#[test]
fn linalg_errors_name_what_was_wrong() {
    let half = Format::parse("float16").unwrap();
    let rne = Rounding::default();
    let e = lu(&half, &rne, &[1.0, 2.0, 2.0, 4.0], 2).unwrap_err();
    assert!(e.to_string().contains("singular in float16") && e.to_string().contains("column 1"), "{e}");
    let e = cholesky(&half, &rne, &[1.0, 2.0, 2.0, 1.0], 2).unwrap_err();
    assert!(e.to_string().contains("not positive definite"), "{e}");
    let e = solve(&half, &rne, &[1.0; 3], 2, &[1.0, 1.0]).unwrap_err();
    assert!(e.to_string().contains("A has 3 elements"), "{e}");
    let e = solve(&half, &rne, &[1.0, 0.0, 0.0, 1.0], 2, &[f64::NAN, 1.0]).unwrap_err();
    assert!(e.to_string().contains("b holds NaN at index 0"), "{e}");
    let e = lu(&half, &rne, &[1e6, 0.0, 0.0, 1.0], 2).unwrap_err();
    assert!(e.to_string().contains("overflowed"), "{e}");
    let mut b = [1.0, 1.0];
    let e = solve_triangular(&half, &rne, &[0.0, 0.0, 1.0, 1.0], 2, &mut b, true, false).unwrap_err();
    assert!(e.to_string().contains("T[0, 0] is 0"), "{e}");
}

#[test]
fn refinement_edge_cases_found_in_review() {
    let half = Format::parse("float16").unwrap();
    let f64fmt = Format::parse("float64").unwrap();
    // A right-hand side below 2^-1023: the power-of-two scaling must not overflow.
    let cfg = Refine::new(&half, &f64fmt, &f64fmt);
    let r = refine(&[1.0, 0.0, 0.0, 1.0], 2, &[1e-310, 0.0], &cfg).unwrap();
    assert_eq!(r.x, [1e-310, 0.0]);
    assert!(r.converged);
    // A residual that overflows its format (float16 residuals of a system with entries near 2^16) is a
    // failure, never "converged".
    let a = [3000.0, 1.0, 1.0, 3000.0];
    let xt = [33.3, 33.3];
    let b = [a[0] * xt[0] + a[1] * xt[1], a[2] * xt[0] + a[3] * xt[1]];
    let r = refine(&a, 2, &b, &Refine::new(&half, &half, &f64fmt)).unwrap();
    assert!(!r.converged, "{:?}", r.history);
    // n x n with n*n beyond usize: an error, not an overflow panic.
    let e = lu(&half, &Rounding::default(), &[1.0], 1usize << 33).unwrap_err();
    assert!(e.to_string().contains("more than usize can count"), "{e}");
}

#[test]
fn only_the_triangle_used_is_read() {
    let half = Format::parse("float16").unwrap();
    let rne = Rounding::default();
    let l = cholesky(&half, &rne, &[4.0, f64::NAN, 2.0, 5.0], 2).unwrap();
    assert_eq!(l, [2.0, 0.0, 1.0, 2.0]);
    let mut b = [2.0, 4.0];
    solve_triangular(&half, &rne, &[2.0, f64::INFINITY, 1.0, 1.0], 2, &mut b, true, false).unwrap();
    assert_eq!(b, [1.0, 3.0]);
    let e = cholesky(&half, &rne, &[4.0, 0.0, f64::NAN, 5.0], 2).unwrap_err();
    assert!(e.to_string().contains("A holds NaN at (1, 0)"), "{e}");
}
