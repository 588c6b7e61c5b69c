//! Elementary functions: every float16 and bfloat16 input, every deterministic mode, against an
//! independent evaluation: where the float64 libm value lies at least 16 ulps away from every rounding
//! boundary of the format, the correctly rounded result is the rounding of that value; elsewhere the test
//! evaluates the function with astro-float at 320 bits (rounded toward zero, with its inexact flag) itself and rounds it to odd at 53 bits (valid for
//! formats of at most 51 bits). The Python tests compare the same functions with MPFR.

use astro_float::{BigFloat, Consts, RoundingMode as Big, Sign};
use lowp::arith::{unary, Func};
use lowp::round::reference;
use lowp::{Format, Rounding, RoundingMode};

fn same(x: f64, y: f64) -> bool {
    x.to_bits() == y.to_bits() || x.is_nan() && y.is_nan()
}

fn libm(f: Func, x: f64) -> f64 {
    match f {
        Func::Sqrt => x.sqrt(),
        Func::Exp => x.exp(),
        Func::Exp2 => x.exp2(),
        Func::Log => x.ln(),
        Func::Log2 => x.log2(),
        Func::Log10 => x.log10(),
        Func::Sin => x.sin(),
        Func::Cos => x.cos(),
        Func::Tan => x.tan(),
        Func::Tanh => x.tanh(),
    }
}

fn step(y: f64, k: i32) -> f64 {
    (0..k.abs()).fold(y, |v, _| if k > 0 { v.next_up() } else { v.next_down() })
}

/// f(x) at 320 bits, rounded to odd at 53 bits: a float64 that every deterministic rounding to a format of
/// at most 51 bits treats as the true value.
fn big_round_to_odd(f: Func, x: f64, cc: &mut Consts) -> f64 {
    let p = 320;
    // astro-float 0.9.6's from_f64 halves subnormals: scale them into the normal range and back, exactly.
    let xb = if x.is_normal() {
        BigFloat::from_f64(x, 64)
    } else {
        BigFloat::from_f64(x * 2f64.powi(64), 64).mul(&BigFloat::from_f64(2f64.powi(-64), 64), 128, Big::None)
    };
    let z = match f {
        Func::Sqrt => xb.sqrt(p, Big::ToZero),
        Func::Exp => xb.exp(p, Big::ToZero, cc),
        Func::Exp2 => BigFloat::from_f64(2.0, 64).pow(&xb, p, Big::ToZero, cc),
        Func::Log => xb.ln(p, Big::ToZero, cc),
        Func::Log2 => xb.log2(p, Big::ToZero, cc),
        Func::Log10 => xb.log10(p, Big::ToZero, cc),
        Func::Sin => xb.sin(p, Big::ToZero, cc),
        Func::Cos => xb.cos(p, Big::ToZero, cc),
        Func::Tan => xb.tan(p, Big::ToZero, cc),
        Func::Tanh => xb.tanh(p, Big::ToZero, cc),
    };
    let (words, _, sign, e, inexact) = z.as_raw_parts().expect("a finite nonzero value");
    let n = words.len();
    // value = 0.words * 2^e. Keep the bits of weight >= 2^-1074, at most 53 of them; the rest is sticky.
    let nb = 53.min(e + 1074);
    let v = if nb <= 0 {
        f64::from_bits(1) // below float64's smallest subnormal: round to odd gives it
    } else {
        let nb = nb as u32;
        let top = words[n - 1] >> (64 - nb);
        let low_mask = if nb == 64 { 0 } else { (1u64 << (64 - nb)) - 1 };
        let rest = words[n - 1] & low_mask != 0 || words[..n - 1].iter().any(|w| *w != 0) || inexact;
        let top = if rest { top | 1 } else { top };
        let q = e - nb as i32;
        top as f64 * 2f64.powi(q / 2) * 2f64.powi(q - q / 2)
    };
    if sign == Sign::Neg {
        -v
    } else {
        v
    }
}

/// Arguments where the function's value is exact (and the libm returns it).
fn exact_case(f: Func, x: f64, y: f64) -> bool {
    !x.is_finite()
        || y.is_nan()
        || x == 0.0
        || x == 1.0 && y == 0.0
        || f == Func::Exp2 && x.fract() == 0.0 && y.is_finite() && y != 0.0
        || f == Func::Log2 && x > 0.0 && x.log2().fract() == 0.0 && 2f64.powf(y) == x
        || f == Func::Log10 && (1..=22).any(|k| 10f64.powi(k) == x)
        || f == Func::Sqrt && y * y == x
}

/// The correctly rounded f(x) in a format of at most 51 bits, computed independently of lowp::arith.
fn expected(f: Func, x: f64, fmt: &Format, mode: RoundingMode, cc: &mut Consts, hard: &mut usize) -> f64 {
    let y = libm(f, x);
    if exact_case(f, x, y) {
        return reference::round(y, fmt, mode, 0);
    }
    if y.is_infinite() {
        return reference::round(f64::MAX.copysign(y), fmt, mode, 0); // overflow: beyond every format
    }
    if y == 0.0 {
        // Underflow below float64's smallest subnormal: round to odd gives it.
        return reference::round(f64::from_bits(1).copysign(y), fmt, mode, 0);
    }
    {
        let lo = reference::round(step(y, -16), fmt, mode, 0);
        let hi = reference::round(step(y, 16), fmt, mode, 0);
        if same(lo, hi) {
            return lo;
        }
    }
    *hard += 1;
    reference::round(big_round_to_odd(f, x, cc), fmt, mode, 0)
}

#[test]
fn every_16_bit_input_of_every_function_is_correctly_rounded() {
    let mut cc = Consts::new().unwrap();
    for name in ["float16", "bfloat16"] {
        let fmt = Format::parse(name).unwrap();
        let xs: Vec<f64> = fmt.values().unwrap().into_iter().map(|(_, v)| v).collect();
        for f in Func::ALL {
            for mode in RoundingMode::DETERMINISTIC {
                let mut out = vec![0.0; xs.len()];
                unary(f, &fmt, &Rounding::new(mode), &xs, &mut out).unwrap();
                let mut hard = 0; // cases the libm value cannot decide (counted for debugging)
                for (k, &x) in xs.iter().enumerate() {
                    let want = expected(f, x, &fmt, mode, &mut cc, &mut hard);
                    assert!(same(out[k], want), "{f:?} {name} {mode:?} x={x:e}: got {:e}, want {want:e}", out[k]);
                }
            }
        }
    }
}

#[test]
fn stochastic_function_values_are_neighbours_and_reproducible() {
    let fmt = Format::parse("float16").unwrap();
    let xs: Vec<f64> = (1..4000).map(|k| k as f64 / 400.0 - 5.0).collect();
    for f in [Func::Exp, Func::Sin, Func::Tanh, Func::Log2] {
        let run = |seed: u64| {
            let mut out = vec![0.0; xs.len()];
            unary(f, &fmt, &Rounding::new(RoundingMode::Stochastic).with_seed(seed), &xs, &mut out).unwrap();
            out
        };
        let (a, b, c) = (run(1), run(1), run(2));
        assert_eq!(
            a.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            b.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
        assert!(a.iter().zip(&c).any(|(x, y)| !same(*x, *y)), "{f:?}: a different seed changes something");
        let down = {
            let mut o = vec![0.0; xs.len()];
            unary(f, &fmt, &Rounding::new(RoundingMode::TowardNegative), &xs, &mut o).unwrap();
            o
        };
        let up = {
            let mut o = vec![0.0; xs.len()];
            unary(f, &fmt, &Rounding::new(RoundingMode::TowardPositive), &xs, &mut o).unwrap();
            o
        };
        for k in 0..xs.len() {
            assert!(
                same(a[k], down[k]) || same(a[k], up[k]),
                "{f:?}({}) = {} not in [{}, {}]",
                xs[k],
                a[k],
                down[k],
                up[k]
            );
        }
    }
}

#[test]
fn hard_arguments_in_float32_and_float64() {
    let mut cc = Consts::new().unwrap();
    // Tiny arguments (results within a hair of x or of 1), huge arguments of the trigonometric functions,
    // and the edges of exp's range.
    let xs = [
        2f64.powi(-30),
        -2f64.powi(-40),
        1e-300,
        3e-320,
        1e22,
        1e300,
        -1e300,
        708.0,
        709.78,
        -745.0,
        -744.0,
        44.0,
        20.0,
        1.0 + 2f64.powi(-52),
    ];
    for name in ["float32", "bfloat16", "float64"] {
        let fmt = Format::parse(name).unwrap();
        for f in Func::ALL {
            for mode in RoundingMode::DETERMINISTIC {
                let mut out = vec![0.0; xs.len()];
                unary(f, &fmt, &Rounding::new(mode), &xs, &mut out).unwrap();
                for (k, &x) in xs.iter().enumerate() {
                    let y = libm(f, x);
                    if name == "float64" {
                        // float64 targets need more than round-to-odd at 53 bits: the Python tests compare
                        // them with MPFR; here, the value is within one float64 ulp of the libm's.
                        assert!(out[k].is_nan() == y.is_nan(), "{f:?} {name} {x:e}");
                        if y.is_normal() && out[k].is_normal() {
                            assert!(
                                ((out[k] - y) / y).abs() <= 2.0 * f64::EPSILON,
                                "{f:?} {mode:?} {x:e}: {} vs {y}",
                                out[k]
                            );
                        }
                        continue;
                    }
                    let mut hard = 0;
                    let want = expected(f, x, &fmt, mode, &mut cc, &mut hard);
                    assert!(same(out[k], want), "{f:?} {name} {mode:?} x={x:e}: got {:e}, want {want:e}", out[k]);
                }
            }
        }
    }
}
