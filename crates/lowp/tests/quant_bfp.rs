//! Block floating point against a reference written here, and blocks worked by hand.

use lowp::quant::Bfp;
use lowp::{Rounding, RoundingMode};

mod common;
use common::{floor_log2, TestRng};

fn round_int(v: f64, mode: RoundingMode) -> f64 {
    // a different route from the library's: compare with the two neighbours directly
    let (lo, hi) = (v.floor(), v.floor() + 1.0);
    if lo == v {
        return v;
    }
    let (dlo, dhi) = (v - lo, hi - v); // both exact for the magnitudes used here (|v| < 2^24)
    let even = |a: f64| a % 2.0 == 0.0;
    let toward_zero = if v > 0.0 { lo } else { hi };
    let away = if v > 0.0 { hi } else { lo };
    match mode {
        RoundingMode::NearestEven => {
            if dlo < dhi {
                lo
            } else if dhi < dlo {
                hi
            } else if even(lo) {
                lo
            } else {
                hi
            }
        }
        RoundingMode::NearestZero => {
            if dlo < dhi {
                lo
            } else if dhi < dlo {
                hi
            } else {
                toward_zero
            }
        }
        RoundingMode::NearestAway => {
            if dlo < dhi {
                lo
            } else if dhi < dlo {
                hi
            } else {
                away
            }
        }
        RoundingMode::TowardPositive => hi,
        RoundingMode::TowardNegative => lo,
        RoundingMode::TowardZero => toward_zero,
        RoundingMode::Odd => {
            if even(lo) {
                hi
            } else {
                lo
            }
        }
        _ => unreachable!(),
    }
}

#[test]
fn bfp_matches_the_reference() {
    let mut rng = TestRng::new(31);
    let n = 203;
    let mut x: Vec<f64> = (0..n)
        .map(|_| {
            let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
            (u - 0.5) * 2f64.powi((rng.next_u64() % 30) as i32 - 15)
        })
        .collect();
    x[0..16].iter_mut().for_each(|v| *v = 0.0);
    x[20] = 1e6;
    x[50] = f64::NAN;
    x[90] = 1e-300; // alone in... its block has other values; the exponent follows the block's amax
    for spec in ["bfp8", "bfp4:b8", "bfp12:b32", "bfp2:b3", "bfp24:b7"] {
        let s = Bfp::parse(spec).unwrap();
        let (m, b) = (s.mantissa_bits() as i32, s.block());
        let top = f64::from((1u32 << (m - 1)) - 1);
        for mode in RoundingMode::DETERMINISTIC {
            let q = s.quantize(&Rounding::new(mode), &x, &[n], 0).unwrap();
            for (k, start) in (0..n).step_by(b).enumerate() {
                let blk = &x[start..(start + b).min(n)];
                if blk.iter().any(|v| !v.is_finite()) {
                    assert_eq!(q.exponents[k], 0xFF, "{spec}: NaN block");
                    continue;
                }
                let amax = blk.iter().fold(0.0f64, |a, v| a.max(v.abs()));
                let e = if amax == 0.0 { -127 } else { floor_log2(amax).clamp(-127, 127) };
                assert_eq!(i32::from(q.exponents[k]), e + 127, "{spec} block {k}");
                for (j, v) in blk.iter().enumerate() {
                    let want = round_int(v / 2f64.powi(e - m + 2), mode).clamp(-top, top);
                    assert_eq!(f64::from(q.mantissas[start + j]), want, "{spec} {mode} x={v:e}");
                }
            }
            let mut y = vec![0f64; n];
            q.dequantize(&mut y).unwrap();
            for (i, v) in y.iter().enumerate() {
                let e = q.exponents[i / b];
                if e == 0xFF {
                    assert!(v.is_nan());
                } else {
                    assert_eq!(*v, f64::from(q.mantissas[i]) * 2f64.powi(i32::from(e) - 127 - m + 2));
                }
            }
        }
    }
}

#[test]
fn bfp_worked_by_hand_and_errors() {
    let s = Bfp::parse("bfp4:b4").unwrap(); // mantissas in [-7, 7]
    let q = s.quantize(&Rounding::default(), &[7.9f32, 1.0, -2.5, 0.4], &[4], 0).unwrap();
    assert_eq!(q.exponents, [129]); // floor(log2 7.9) = 2
    assert_eq!(q.mantissas, [7, 1, -2, 0]); // x / 2^(2 - 4 + 2): 7.9 -> 8 clamps to 7; -2.5 ties to -2; 0.4 -> 0
    assert_eq!(q.bits_per_element(), 6.0);
    assert_eq!(Bfp::parse("BFP8").unwrap().to_string(), "bfp8:b16");
    for bad in ["bfp1", "bfp25", "bfp8:b0", "bfp8:x", "bf8"] {
        assert!(Bfp::parse(bad).unwrap_err().to_string().contains("block floating point"), "{bad}");
    }
}
