//! Element-wise emulated arithmetic against an exact reference written for clarity.
//!
//! The reference computes each result as an exact rational with big integers (sums and products as
//! dyadic numbers n * 2^e, quotients and square roots as floor(...) with a remainder flag), then:
//! - for formats of at most 51 bits of precision (every 8/16-bit format, float32): rounds the exact value
//!   to odd at float64's 53 bits and rounds that with the scalar reference `lowp::round::reference::round`.
//!   Round-to-odd at p + 2 or more bits followed by any deterministic rounding to p bits equals the direct
//!   rounding (Boldo and Melquiond), so this is the correctly rounded result, obtained without any of
//!   `lowp::arith`'s code;
//! - for float64 targets: rounds the exact value to 53 bits by hand (a guard bit and a sticky bit);
//! - for the stochastic modes: checks the draw against the exact distance fraction to 64 bits.

mod common;
mod exact_ref;

use exact_ref::*;

use common::TestRng;
use lowp::arith::{binary, fma, unary, BinaryOp, Func};
use lowp::round::rng::draw;
use lowp::{Format, Rounding, RoundingMode};
use num_bigint::BigUint;

fn modes() -> [RoundingMode; 7] {
    RoundingMode::DETERMINISTIC
}

/// Every finite value of a format of at most 16 bits.
fn finite_values(fmt: &Format) -> Vec<f64> {
    fmt.values().unwrap().into_iter().map(|(_, v)| v).filter(|v| v.is_finite()).collect()
}

fn run_binary(op: BinaryOp, fmt: &Format, mode: RoundingMode, a: &[f64], b: &[f64]) -> Vec<f64> {
    let mut out = vec![0.0; a.len()];
    binary(op, fmt, &Rounding::new(mode), a, b, &mut out).unwrap();
    out
}

fn ref_binary(op: BinaryOp, a: f64, b: f64, mode: RoundingMode) -> Val {
    match op {
        BinaryOp::Add => ref_add(a, b, mode),
        BinaryOp::Sub => ref_add(a, -b, mode),
        BinaryOp::Mul => ref_mul(a, b),
        BinaryOp::Div => ref_div(a, b),
    }
}

fn same(x: f64, y: f64) -> bool {
    x.to_bits() == y.to_bits() || x.is_nan() && y.is_nan()
}

fn check_binary(fmt: &Format, a: &[f64], b: &[f64], what: &str) {
    for op in [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div] {
        for mode in modes() {
            let got = run_binary(op, fmt, mode, a, b);
            for k in 0..a.len() {
                let v = ref_binary(op, a[k], b[k], mode);
                let want = if fmt.man_bits() == 52 { expected_f64(&v, mode) } else { expected_small(&v, fmt, mode) };
                assert!(
                    same(got[k], want),
                    "{what}: {op:?} {} {mode:?}: {:e} op {:e} gave {:e}, want {:e}",
                    fmt.name(),
                    a[k],
                    b[k],
                    got[k],
                    want
                );
            }
        }
    }
}

/// All pairs of finite values of the 8-bit (and smaller) formats.
#[test]
fn binary_ops_on_every_pair_of_small_format_values() {
    for name in ["float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float6_e2m3fn", "float4_e2m1fn", "float8_e8m0fnu"]
    {
        let fmt = Format::parse(name).unwrap();
        let vals = finite_values(&fmt);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for &x in &vals {
            for &y in &vals {
                a.push(x);
                b.push(y);
            }
        }
        check_binary(&fmt, &a, &b, "all pairs");
    }
}

/// A random and adversarial sample of pairs: random codes, pairs whose exact sum or product lies on a
/// midpoint of the format or one float64 ulp either side of it, cancellation, subnormal results.
fn adversarial_pairs(fmt: &Format, n: usize, seed: u64) -> (Vec<f64>, Vec<f64>) {
    let mut rng = TestRng::new(seed);
    let vals: Vec<f64> = if fmt.bits() <= 16 { finite_values(fmt) } else { Vec::new() };
    let pick = |rng: &mut TestRng| -> f64 {
        if !vals.is_empty() {
            vals[(rng.next_u64() % vals.len() as u64) as usize]
        } else {
            // float32 / float64: random bit patterns of the format's width over a useful exponent range.
            let e = (rng.next_u64() % 120) as i32 - 60;
            let m = 1.0 + (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
            let x = m * 2f64.powi(e);
            let x = if fmt.man_bits() == 23 { f64::from(x as f32) } else { x };
            if rng.next_u64() & 1 == 1 {
                -x
            } else {
                x
            }
        }
    };
    let ulp = |x: f64| 2f64.powi(x.abs().log2().floor() as i32 - fmt.man_bits() as i32);
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for i in 0..n {
        let x = pick(&mut rng);
        let y = match i % 4 {
            0 => pick(&mut rng),
            // x + y on a midpoint: y = half an ulp of x (times a power of two), nudged by a float64 ulp.
            1 => {
                let h = ulp(x) / 2.0;
                match rng.next_u64() % 3 {
                    0 => h,
                    1 => h.next_up(),
                    _ => h.next_down(),
                }
            }
            // cancellation: y close to -x
            2 => {
                let y = -x;
                if rng.next_u64() & 1 == 0 {
                    y
                } else {
                    y + ulp(x) * if rng.next_u64() & 1 == 0 { 1.0 } else { -1.0 }
                }
            }
            // tiny results: products and quotients into the subnormal range
            _ => fmt.min_normal() * (1.0 + (rng.next_u64() % 8) as f64 / 8.0) / x.abs().max(1.0),
        };
        if x.is_finite() && y.is_finite() {
            a.push(x);
            b.push(y);
        }
    }
    (a, b)
}

#[test]
fn binary_ops_on_random_and_adversarial_16_and_32_bit_inputs() {
    for (name, n) in [("float16", 60_000), ("bfloat16", 60_000), ("float32", 40_000), ("e3m4", 10_000)] {
        let fmt = Format::parse(name).unwrap();
        let (a, b) = adversarial_pairs(&fmt, n, 7);
        check_binary(&fmt, &a, &b, "random/adversarial");
    }
}

#[test]
fn binary_ops_in_float64_match_a_hand_rounding_and_the_hardware() {
    let fmt = Format::parse("float64").unwrap();
    let (a, b): (Vec<f64>, Vec<f64>) = {
        let (a, b) = adversarial_pairs(&fmt, 40_000, 11);
        // Keep every result inside float64's range (the hand rounding has no overflow rules).
        a.into_iter().zip(b).filter(|(x, y)| (x / y).abs() < 1e300 && (x * y).abs() < 1e300).unzip()
    };
    check_binary(&fmt, &a, &b, "float64");
    // Round to nearest even in float64 is what the hardware does.
    for (op, f) in [
        (BinaryOp::Add, (|x, y| x + y) as fn(f64, f64) -> f64),
        (BinaryOp::Sub, |x, y| x - y),
        (BinaryOp::Mul, |x, y| x * y),
        (BinaryOp::Div, |x, y| x / y),
    ] {
        let got = run_binary(op, &fmt, RoundingMode::NearestEven, &a, &b);
        for k in 0..a.len() {
            assert!(same(got[k], f(a[k], b[k])), "{op:?} {} {}", a[k], b[k]);
        }
    }
}

#[test]
fn float32_storage_gives_the_float64_storage_results() {
    let fmt = Format::parse("bfloat16").unwrap();
    let (a, b): (Vec<f64>, Vec<f64>) = {
        let (a, b) = adversarial_pairs(&fmt, 20_000, 3);
        let fits = |x: f64| f64::from(x as f32) == x;
        a.into_iter().zip(b).filter(|(x, y)| fits(*x) && fits(*y)).unzip()
    };
    let (a32, b32): (Vec<f32>, Vec<f32>) =
        (a.iter().map(|&x| x as f32).collect(), b.iter().map(|&x| x as f32).collect());
    for op in [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div] {
        for mode in RoundingMode::ALL {
            let cfg = Rounding::new(mode).with_seed(5);
            let mut o64 = vec![0.0f64; a.len()];
            let mut o32 = vec![0.0f32; a.len()];
            binary(op, &fmt, &cfg, &a, &b, &mut o64).unwrap();
            binary(op, &fmt, &cfg, &a32, &b32, &mut o32).unwrap();
            for k in 0..a.len() {
                assert!(same(f64::from(o32[k]), o64[k]), "{op:?} {mode:?} {} {}", a[k], b[k]);
            }
        }
    }
}

#[test]
fn sqrt_of_every_16_bit_value_and_fma_on_random_triples() {
    for name in ["float16", "bfloat16", "float8_e4m3fn", "float8_e5m2", "float6_e3m2fn"] {
        let fmt = Format::parse(name).unwrap();
        let vals = finite_values(&fmt);
        for mode in modes() {
            let mut out = vec![0.0; vals.len()];
            unary(Func::Sqrt, &fmt, &Rounding::new(mode), &vals, &mut out).unwrap();
            for (k, &x) in vals.iter().enumerate() {
                let want = expected_small(&ref_sqrt(x), &fmt, mode);
                assert!(same(out[k], want), "sqrt {name} {mode:?} {x:e}: {:e} != {want:e}", out[k]);
            }
        }
    }
    // sqrt of float64 values whose roots are near float32 midpoints, in float32 and float64.
    let mut rng = TestRng::new(1);
    let mut xs: Vec<f64> = (0..20_000)
        .map(|_| {
            let r = f64::from(f32::from_bits(0x3f80_0000 | (rng.next_u64() as u32 >> 9))) + 2f64.powi(-24);
            let sq = r * r;
            match rng.next_u64() % 3 {
                0 => sq,
                1 => sq.next_up(),
                _ => sq.next_down(),
            }
        })
        .collect();
    xs.extend([4.0, 2.0, 0.0, -0.0, -1.0, f64::INFINITY, 1e-310, 5e-324]);
    for name in ["float32", "float64"] {
        let fmt = Format::parse(name).unwrap();
        for mode in modes() {
            let mut out = vec![0.0; xs.len()];
            unary(Func::Sqrt, &fmt, &Rounding::new(mode), &xs, &mut out).unwrap();
            for (k, &x) in xs.iter().enumerate() {
                let v = ref_sqrt(x);
                let want = if name == "float64" { expected_f64(&v, mode) } else { expected_small(&v, &fmt, mode) };
                assert!(same(out[k], want), "sqrt {name} {mode:?} {x:e}: {:e} != {want:e}", out[k]);
            }
        }
    }

    for name in ["float8_e4m3fn", "float16", "bfloat16", "float32"] {
        let fmt = Format::parse(name).unwrap();
        let (a, b) = adversarial_pairs(&fmt, 20_000, 17);
        let (c, _) = adversarial_pairs(&fmt, 20_000, 18);
        let n = a.len().min(c.len());
        // Half the addends cancel the product's leading part: c = -fl(a b).
        let c: Vec<f64> =
            (0..n)
                .map(|k| {
                    if k % 2 == 0 {
                        c[k]
                    } else {
                        -expected_small(&ref_mul(a[k], b[k]), &fmt, RoundingMode::NearestEven)
                    }
                })
                .collect();
        for mode in modes() {
            let mut out = vec![0.0; n];
            fma(&fmt, &Rounding::new(mode), &a[..n], &b[..n], &c, &mut out).unwrap();
            for k in 0..n {
                let want = expected_small(&ref_fma(a[k], b[k], c[k], mode), &fmt, mode);
                assert!(
                    same(out[k], want),
                    "fma {name} {mode:?} {:e} {:e} {:e}: {:e} != {want:e}",
                    a[k],
                    b[k],
                    c[k],
                    out[k]
                );
            }
        }
    }
}

/// floor(frac * 2^64) of the exact value between its two neighbours `lo` and `hi` in the format.
fn fraction_64(v: &Val, lo: f64, hi: f64) -> Option<u128> {
    let Val::Num { m, e, inexact, .. } = v else { return None };
    if *inexact {
        return None; // quotients and roots: the exact fraction needs the remainder; sums and products only
    }
    let (lm, le) = if lo == 0.0 {
        (BigUint::default(), *e)
    } else {
        let (_, m, e) = dyadic(lo);
        (m, e)
    };
    let (_, hm, he) = dyadic(hi);
    let base = (*e).min(le).min(he);
    let x = m << (*e - base) as usize;
    let l = lm << (le - base) as usize;
    let h = hm << (he - base) as usize;
    let f: BigUint = ((x - &l) << 64usize) / (h - l);
    Some(u128::try_from(&f).unwrap())
}

#[test]
fn stochastic_rounding_uses_the_exact_fraction() {
    let seed = 99;
    for name in ["float16", "bfloat16", "float8_e4m3fn"] {
        let fmt = Format::parse(name).unwrap();
        let (a, b) = adversarial_pairs(&fmt, 30_000, 23);
        for op in [BinaryOp::Add, BinaryOp::Mul] {
            let got = run_binary_seeded(op, &fmt, RoundingMode::Stochastic, seed, &a, &b);
            let mut checked = 0;
            for k in 0..a.len() {
                let v = ref_binary(op, a[k], b[k], RoundingMode::NearestEven);
                let down = expected_small(&v, &fmt, RoundingMode::TowardZero);
                let away = if round_to_odd(&v) > 0.0 {
                    expected_small(&v, &fmt, RoundingMode::TowardPositive)
                } else {
                    expected_small(&v, &fmt, RoundingMode::TowardNegative)
                };
                assert!(same(got[k], down) || same(got[k], away), "{op:?} {name}: {} not a neighbour", got[k]);
                if down == away || !away.is_finite() || away.abs() > fmt.max() {
                    continue;
                }
                if let Some(frac) = fraction_64(&v, down.abs(), away.abs()) {
                    let r = u128::from(draw(seed, 0, k as u64, 64));
                    let up = frac + r >= 1u128 << 64;
                    assert!(same(got[k], if up { away } else { down }), "{op:?} {name} {:e} {:e}", a[k], b[k]);
                    checked += 1;
                }
            }
            assert!(checked > 1000, "{name} {op:?}: only {checked} inexact cases checked");
        }
    }
}

fn run_binary_seeded(op: BinaryOp, fmt: &Format, mode: RoundingMode, seed: u64, a: &[f64], b: &[f64]) -> Vec<f64> {
    let mut out = vec![0.0; a.len()];
    binary(op, fmt, &Rounding::new(mode).with_seed(seed), a, b, &mut out).unwrap();
    out
}

#[test]
fn results_do_not_depend_on_the_number_of_threads() {
    let fmt = Format::parse("float16").unwrap();
    let (a, b) = adversarial_pairs(&fmt, 200_000, 31);
    for mode in [RoundingMode::Stochastic, RoundingMode::StochasticEqual, RoundingMode::NearestEven] {
        let all = run_binary_seeded(BinaryOp::Div, &fmt, mode, 4, &a, &b);
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap()
            .install(|| run_binary_seeded(BinaryOp::Div, &fmt, mode, 4, &a, &b));
        assert!(all.iter().zip(&one).all(|(x, y)| same(*x, *y)));
    }
}

#[test]
fn errors_name_what_was_wrong() {
    let f16 = Format::parse("float16").unwrap();
    let mut out = [0.0f64; 2];
    let e = binary(BinaryOp::Add, &f16, &Rounding::default(), &[1.0, 2.0], &[1.0], &mut out).unwrap_err();
    assert!(e.to_string().contains("length mismatch"), "{e}");
    let flips = Rounding::default().with_flip(0.1, lowp::FlipScope::Code);
    let e = binary(BinaryOp::Add, &f16, &flips, &[1.0, 2.0], &[1.0, 2.0], &mut out).unwrap_err();
    assert!(e.to_string().contains("soft errors"), "{e}");
    let f64fmt = Format::parse("float64").unwrap();
    let mut o32 = [0.0f32; 1];
    let e = unary(Func::Exp, &f64fmt, &Rounding::default(), &[1.0f32], &mut o32).unwrap_err();
    assert!(e.to_string().contains("float32"), "{e}");
    // float32 data cannot hold every result of a format without exponent limit, or reaching below 2^-149.
    for f in [
        Format::parse("bfloat16").unwrap().with_exponent_limit(false),
        Format::custom(8, 23, Some(140), lowp::Specials::Ieee).unwrap(),
    ] {
        let e = binary(BinaryOp::Mul, &f, &Rounding::default(), &[1.0f32], &[1.0f32], &mut o32).unwrap_err();
        assert!(e.to_string().contains("use float64 data"), "{e}");
    }
    assert!(Func::parse("erf").unwrap_err().to_string().contains("sqrt, exp"));
    assert!(BinaryOp::parse("pow").unwrap_err().to_string().contains("add, sub, mul, div"));
}
