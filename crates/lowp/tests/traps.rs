//! One test per trap of FORMATS.md §7. Expected values come from the formats' definitions (powers of two
//! and spacings), not from lowp's output.

use lowp::{round, round_value, FlipScope, Format, Rounding, RoundingMode, Specials};
use RoundingMode::*;

fn r64(fmt: &str, mode: RoundingMode, x: f64) -> f64 {
    round_value(&Format::parse(fmt).unwrap(), &Rounding::new(mode), x, 0).unwrap()
}

fn r32(fmt: &str, mode: RoundingMode, x: f32) -> f32 {
    round_value(&Format::parse(fmt).unwrap(), &Rounding::new(mode), x, 0).unwrap()
}

fn p2(k: i32) -> f64 {
    2f64.powi(k)
}

#[test]
fn exponent_is_read_from_bits_just_below_powers_of_two() {
    // x = 2^k (1 - 2^-53): log2 rounds to k, the true exponent is k-1.
    for k in -14..16 {
        let x = p2(k) * (1.0 - p2(-53));
        assert_eq!(r64("float16", NearestEven, x), p2(k), "k={k}");
        assert_eq!(r64("float16", TowardZero, x), p2(k) - p2(k - 11).max(p2(-24)), "k={k}");
        let xf = (p2(k) as f32).next_down();
        assert_eq!(r32("float16", TowardZero, xf) as f64, p2(k) - p2(k - 11).max(p2(-24)), "f32 k={k}");
    }
}

#[test]
fn tiny_inputs_are_not_clamped() {
    // bfloat16 subnormals reach 2^-133; 1e-39 lies among them.
    let y = r64("bfloat16", NearestEven, 1e-39);
    assert!(y > 0.0 && (y - 1e-39).abs() <= p2(-134), "{y:e}");
    assert_eq!(r64("bfloat16", TowardPositive, 1e-45), p2(-133));
    assert_eq!(r32("bfloat16", TowardPositive, 1e-45), p2(-133) as f32);
}

#[test]
fn values_two_binades_above_max_overflow_rather_than_vanish() {
    for x in [p2(16), p2(16) * 1.9, p2(17) * 1.5, 1e300] {
        assert_eq!(r64("float16", NearestEven, x), f64::INFINITY, "{x:e}");
        assert_eq!(r64("float16", TowardZero, x), 65504.0, "{x:e}");
        assert_eq!(r64("float16", TowardZero, -x), -65504.0, "{x:e}");
        assert_eq!(r64("float16", TowardNegative, x), 65504.0, "{x:e}");
        assert_eq!(r64("float16", TowardPositive, -x), -65504.0, "{x:e}");
    }
    assert!(r64("e4m3fn", NearestEven, 600.0).is_nan());
    assert_eq!(r64("e2m1", NearestEven, 1e9), 6.0);
}

#[test]
fn half_overflow_threshold_is_65520() {
    assert_eq!(r64("float16", NearestEven, 65520.0), f64::INFINITY);
    assert_eq!(r64("float16", NearestEven, 65520.0 - p2(-20)), 65504.0);
    assert_eq!(r64("float16", NearestZero, 65520.0), 65504.0);
    assert_eq!(r32("float16", NearestEven, 65520.0), f32::INFINITY);
    assert_eq!(r64("float16", NearestEven, 65519.99), 65504.0);
}

#[test]
fn underflow_rounds_once_to_the_subnormal_grid() {
    assert_eq!(r64("float16", NearestEven, p2(-25) * 1.0001), p2(-24));
    assert_eq!(r32("float16", NearestEven, (p2(-25) * 1.0001) as f32), p2(-24) as f32);
    assert_eq!(r64("float16", NearestEven, p2(-25)), 0.0); // tie, to even (0)
    assert_eq!(r64("float16", NearestAway, p2(-25)), p2(-24));
    assert_eq!(r64("float16", NearestEven, p2(-25) * 3.0), p2(-23)); // tie 1.5 ulp, to even (2)
                                                                     // The tie between the largest subnormal and min_normal goes to min_normal (its code is even).
    assert_eq!(r64("float16", NearestEven, p2(-14) - p2(-25)), p2(-14));
    assert_eq!(r64("float16", NearestZero, p2(-14) - p2(-25)), p2(-14) - p2(-24));
    // Without subnormals: {0, min_normal}, the tie at min_normal/2 going up (chop's rule).
    let nosub = Format::parse("float16").unwrap().with_subnormals(false);
    let r = |m, x| round_value(&nosub, &Rounding::new(m), x, 0).unwrap();
    assert_eq!(r(NearestEven, p2(-15)), p2(-14));
    assert_eq!(r(NearestEven, p2(-15) * 0.999), 0.0);
    assert_eq!(r(NearestZero, p2(-15)), 0.0);
    assert_eq!(r(TowardPositive, p2(-30)), p2(-14));
    assert_eq!(r(Odd, p2(-30)), p2(-14));
    assert_eq!(r(TowardZero, p2(-14) * 0.999), 0.0);
}

#[test]
fn float64_subnormal_inputs_and_signs_survive_underflow() {
    for fmt in ["float16", "bfloat16", "e4m3fn", "e5m2", "e2m1", "e4m3fnuz"] {
        for x in [5e-324, 1e-310, -5e-324, -1e-310] {
            let y = r64(fmt, NearestEven, x);
            assert!(!y.is_nan(), "{fmt} {x:e} gave NaN");
            assert_eq!(y, 0.0, "{fmt} {x:e}");
            let has_neg_zero = Format::parse(fmt).unwrap().has_neg_zero();
            assert_eq!(y.is_sign_negative(), x < 0.0 && has_neg_zero, "{fmt} {x:e}: sign of zero");
        }
        let tiny_up = r64(fmt, TowardPositive, 5e-324);
        assert_eq!(tiny_up, Format::parse(fmt).unwrap().min_subnormal(), "{fmt}");
    }
    assert_eq!(r64("float16", NearestEven, -0.0).to_bits(), (-0.0f64).to_bits());
    assert_eq!(r32("float16", NearestEven, -1e-30).to_bits(), (-0.0f32).to_bits());
    assert_eq!(r64("e4m3fnuz", NearestEven, -0.0).to_bits(), 0.0f64.to_bits());
}

#[test]
fn ties_to_zero_and_away_are_not_swapped_for_negative_numbers() {
    let tie = 1.0 + p2(-11); // halfway between 1 and 1 + 2^-10 in float16
    assert_eq!(r64("float16", NearestZero, tie), 1.0);
    assert_eq!(r64("float16", NearestZero, -tie), -1.0);
    assert_eq!(r64("float16", NearestAway, tie), 1.0 + p2(-10));
    assert_eq!(r64("float16", NearestAway, -tie), -1.0 - p2(-10));
    assert_eq!(r64("float16", TowardPositive, -tie), -1.0);
    assert_eq!(r64("float16", TowardNegative, -tie), -1.0 - p2(-10));
}

#[test]
fn round_to_odd_and_every_mode_keep_exact_values() {
    for name in ["float16", "bfloat16", "e4m3fn", "e5m2", "e2m1", "e3m2fn", "e8m0", "e4m3fnuz"] {
        let fmt = Format::parse(name).unwrap();
        let values: Vec<f64> = fmt.values().unwrap().into_iter().map(|(_, v)| v).filter(|v| v.is_finite()).collect();
        for mode in RoundingMode::ALL {
            let mut y = vec![0.0; values.len()];
            round(&fmt, &Rounding::new(mode).with_seed(5), &values, &mut y).unwrap();
            for (x, y) in values.iter().zip(&y) {
                let same = x == y && (x.is_sign_negative() == y.is_sign_negative() || !fmt.has_neg_zero());
                assert!(same, "{name} {mode}: exact {x:e} became {y:e}");
            }
        }
    }
    // Odd sets the last bit when inexact: 1 + 2^-12 -> 1 + 2^-10 (code 0x3c01), not 1.
    assert_eq!(r64("float16", Odd, 1.0 + p2(-12)), 1.0 + p2(-10));
    assert_eq!(r64("float16", Odd, 1.0 + 3.0 * p2(-10) + p2(-12)), 1.0 + 3.0 * p2(-10));
}

#[test]
fn bit_flip_probability_is_honoured_and_draws_change_with_the_seed() {
    let fmt = Format::parse("float16").unwrap();
    let xs = vec![1.5f32; 100_000];
    let count = |p: f64, seed: u64| {
        let mut y = vec![0f32; xs.len()];
        round(&fmt, &Rounding::default().with_seed(seed).with_flip(p, FlipScope::Significand), &xs, &mut y).unwrap();
        y
    };
    let a = count(0.5, 1);
    let hits = a.iter().filter(|&&v| v != 1.5).count();
    assert!((hits as f64 - 50_000.0).abs() < 1_000.0, "{hits}");
    let b = count(0.5, 2);
    assert_ne!(a, b);
    assert_eq!(count(0.0, 1), xs);
    let sr = |seed| {
        let mut y = vec![0f32; 1000];
        round(&fmt, &Rounding::new(Stochastic).with_seed(seed), &vec![1.0 + p2(-12) as f32; 1000], &mut y).unwrap();
        y
    };
    assert_ne!(sr(1), sr(2));
}

#[test]
fn e4m3_maxima_are_explicit() {
    assert_eq!(Format::parse("float8_e4m3fn").unwrap().max(), 448.0);
    assert_eq!(Format::parse("float8_e4m3").unwrap().max(), 240.0);
    assert_eq!(Format::parse("q43").unwrap().max(), 240.0);
    assert_eq!(Format::parse("float8_e4m3fnuz").unwrap().max(), 240.0);
    assert_eq!(Format::custom(4, 3, None, Specials::Finite).unwrap().max(), 480.0);
}

#[test]
fn e8m0_ties_go_to_the_even_code() {
    // 3 = 1.5 * 2: between 2 (code 128, even) and 4 (code 129).
    assert_eq!(r64("e8m0", NearestEven, 3.0), 2.0);
    assert_eq!(r64("e8m0", NearestEven, 1.5), 2.0); // 1 is code 127 (odd)
    assert_eq!(r64("e8m0", NearestAway, 3.0), 4.0);
    assert!(r64("e8m0", NearestEven, 0.0).is_nan());
    assert!(r64("e8m0", NearestEven, -1.0).is_nan());
    assert_eq!(r64("e8m0", NearestEven, 1e-45), p2(-127));
}
