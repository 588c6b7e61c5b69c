//! The exact reference of the arithmetic tests: exact values as big integers, rounded to odd at 53 bits
//! (then rounded by `lowp::round::reference`, valid for formats of at most 51 bits), or rounded to float64
//! by hand.
#![allow(dead_code)]

use lowp::round::reference;
use lowp::{Format, RoundingMode};
use num_bigint::{BigInt, BigUint, Sign};

/// An exact value: NaN/inf/zero as a float64, or sign * floor-magnitude `m * 2^e` with `inexact` set when
/// the true magnitude is strictly above it.
#[derive(Clone, Debug)]
pub enum Val {
    Float(f64),
    Num { neg: bool, m: BigUint, e: i64, inexact: bool },
}

pub fn dyadic(v: f64) -> (bool, BigUint, i64) {
    let bits = v.abs().to_bits();
    let field = (bits >> 52) as i64;
    let (m, e) = if field == 0 { (bits, -1074) } else { (bits & ((1 << 52) - 1) | 1 << 52, field - 1075) };
    (v.is_sign_negative(), BigUint::from(m), e)
}

pub fn signed(neg: bool, m: BigUint, e: i64) -> (BigInt, i64) {
    (BigInt::from_biguint(if neg { Sign::Minus } else { Sign::Plus }, m), e)
}

/// The exact sum of dyadic terms (none zero or special), or None if it is exactly zero.
pub fn exact_sum(terms: &[(BigInt, i64)]) -> Option<Val> {
    let base = terms.iter().map(|t| t.1).min().unwrap();
    let total: BigInt = terms.iter().map(|(n, e)| n << (e - base) as usize).sum();
    if total.sign() == Sign::NoSign {
        return None;
    }
    Some(Val::Num { neg: total.sign() == Sign::Minus, m: total.magnitude().clone(), e: base, inexact: false })
}

pub fn zero_sum(mode: RoundingMode) -> f64 {
    if mode == RoundingMode::TowardNegative {
        -0.0
    } else {
        0.0
    }
}

pub fn is_plain(v: f64) -> bool {
    v.is_finite() && v != 0.0
}

pub fn ref_add(a: f64, b: f64, mode: RoundingMode) -> Val {
    if !is_plain(a) || !is_plain(b) {
        if a == 0.0 && b == 0.0 && a.is_sign_negative() != b.is_sign_negative() {
            return Val::Float(zero_sum(mode));
        }
        return Val::Float(a + b); // IEEE: exact for specials and a zero operand
    }
    let (an, am, ae) = dyadic(a);
    let (bn, bm, be) = dyadic(b);
    exact_sum(&[signed(an, am, ae), signed(bn, bm, be)]).unwrap_or(Val::Float(zero_sum(mode)))
}

pub fn ref_mul(a: f64, b: f64) -> Val {
    if !is_plain(a) || !is_plain(b) {
        return Val::Float(a * b);
    }
    let (an, am, ae) = dyadic(a);
    let (bn, bm, be) = dyadic(b);
    Val::Num { neg: an != bn, m: am * bm, e: ae + be, inexact: false }
}

pub fn ref_fma(a: f64, b: f64, c: f64, mode: RoundingMode) -> Val {
    if !a.is_finite() || !b.is_finite() || !c.is_finite() {
        return Val::Float(a.mul_add(b, c));
    }
    if a == 0.0 || b == 0.0 {
        // A zero product: IEEE's sign rules for p + c.
        let p = if a.is_sign_negative() != b.is_sign_negative() { -0.0 } else { 0.0 };
        return ref_add(p, c, mode);
    }
    let (an, am, ae) = dyadic(a);
    let (bn, bm, be) = dyadic(b);
    let p = signed(an != bn, am * bm, ae + be);
    if c == 0.0 {
        return Val::Num { neg: an != bn, m: p.0.magnitude().clone(), e: p.1, inexact: false };
    }
    let (cn, cm, ce) = dyadic(c);
    exact_sum(&[p, signed(cn, cm, ce)]).unwrap_or(Val::Float(zero_sum(mode)))
}

pub fn ref_div(a: f64, b: f64) -> Val {
    if !is_plain(a) || !is_plain(b) {
        return Val::Float(a / b);
    }
    let (an, am, ae) = dyadic(a);
    let (bn, bm, be) = dyadic(b);
    let k = 200;
    let num = am << k;
    let (q, r) = (&num / &bm, &num % &bm);
    Val::Num { neg: an != bn, m: q, e: ae - be - k as i64, inexact: r != BigUint::default() }
}

pub fn ref_sqrt(a: f64) -> Val {
    if !is_plain(a) || a < 0.0 {
        return Val::Float(a.sqrt());
    }
    let (_, m, mut e) = dyadic(a);
    let mut n = m << 200usize;
    e -= 200;
    if e % 2 != 0 {
        n <<= 1;
        e -= 1;
    }
    let root = n.sqrt();
    let inexact = &root * &root != n;
    Val::Num { neg: false, m: root, e: e / 2, inexact }
}

/// `m * 2^e` reduced to at most `bits` significant bits (and not below the quantum 2^min_e), with the lost
/// bits folded into `inexact`.
pub fn narrow(m: &BigUint, e: i64, inexact: bool, bits: u64, min_e: i64) -> (u64, i64, bool) {
    let len = m.bits();
    let mut shift = len.saturating_sub(bits) as i64;
    if e + shift < min_e {
        shift = min_e - e;
    }
    let shift = shift.max(0) as u64;
    let kept = m >> shift;
    let lost = shift > 0 && m.trailing_zeros().unwrap_or(0) < shift;
    (u64::try_from(&kept).unwrap(), e + shift as i64, inexact || lost)
}

pub fn ldexp(m: u64, e: i64) -> f64 {
    let half = e / 2;
    m as f64 * 2f64.powi(half as i32) * 2f64.powi((e - half) as i32)
}

/// Round-to-odd of the exact value at float64's 53 bits.
pub fn round_to_odd(v: &Val) -> f64 {
    match v {
        Val::Float(x) => *x,
        Val::Num { neg, m, e, inexact } => {
            let (k, e, inexact) = narrow(m, *e, *inexact, 53, -1074);
            let k = if inexact { k | 1 } else { k };
            let x = ldexp(k, e);
            assert!(x.is_finite(), "the test keeps exact values inside float64's range");
            if *neg {
                -x
            } else {
                x
            }
        }
    }
}

/// The correctly rounded result in a format of at most 51 bits of precision, deterministic modes.
pub fn expected_small(v: &Val, fmt: &Format, mode: RoundingMode) -> f64 {
    reference::round(round_to_odd(v), fmt, mode, 0)
}

/// The correctly rounded float64 result, deterministic modes, by hand: 53 bits, a guard bit, a sticky bit.
pub fn expected_f64(v: &Val, mode: RoundingMode) -> f64 {
    let (neg, m, e, inexact) = match v {
        Val::Float(x) => return *x,
        Val::Num { neg, m, e, inexact } => (*neg, m, *e, *inexact),
    };
    // Keep 54 bits, or the bits down to 2^-1075 (the guard position of float64's smallest quantum).
    let (k, qe, sticky) = narrow(m, e, inexact, 54, -1075);
    let (n, qe, guard) = if k >> 53 != 0 || qe == -1075 { (k >> 1, qe + 1, k & 1 == 1) } else { (k, qe, false) };
    let odd = n & 1 == 1;
    use RoundingMode::*;
    let up = match mode {
        NearestEven => guard && (sticky || odd),
        NearestAway => guard,
        NearestZero => guard && sticky,
        TowardZero => false,
        TowardPositive => (guard || sticky) && !neg,
        TowardNegative => (guard || sticky) && neg,
        Odd => (guard || sticky) && !odd,
        _ => unreachable!(),
    };
    let x = ldexp(n + u64::from(up), qe);
    if neg {
        -x
    } else {
        x
    }
}
