//! Exact results of the basic operations, held as a sign, a 128-bit significand, an exponent and a sticky
//! bit, and rounded once to the target format.
//!
//! Sums, products and fused multiply-adds of float64 values are computed exactly in integer arithmetic (a
//! product has at most 106 bits; a sum keeps 126 bits of the larger operand and folds everything below into
//! the sticky bit). Quotients are computed to 123 bits by long division and square roots to 125 bits by an
//! integer square root, each with the remainder as the sticky bit. [`round_finite`] then rounds with every
//! bit below the target's last place visible (64 or more), so each mode, the stochastic ones included,
//! decides as it would on the infinitely precise result. Modes that need only the side of the exact value
//! (all but `stochastic` and `stochastic:N`) get quotients and roots more cheaply: see [`beside`].

use num_bigint::BigUint;

use crate::dtype::Element;
use crate::format::Format;
use crate::round::reference::{self, round_finite};
use crate::round::RoundingMode;

/// A real number: exact, or (with `sticky`) strictly between `sig * 2^exp2` and `(sig + 1) * 2^exp2`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Exact {
    /// A value that float64 represents exactly: NaN, ±inf, ±0, and exact finite results too small to need
    /// more than float64.
    Float(f64),
    /// A nonzero finite magnitude with its sign.
    Finite { neg: bool, sig: u128, exp2: i32, sticky: bool },
}

/// The significand and exponent of a finite nonzero float64: |v| = sig * 2^exp2, sig < 2^53.
fn parts(v: f64) -> (u64, i32) {
    let bits = v.abs().to_bits();
    let field = (bits >> 52) as i32;
    if field == 0 {
        (bits, -1074)
    } else {
        (bits & ((1 << 52) - 1) | 1 << 52, field - 1075)
    }
}

/// `(sig, exp2)` shifted left so the top bit is bit 125 (no bits lost: callers pass at most 126 bits).
fn normalized(sig: u128, exp2: i32) -> (u128, i32) {
    let s = sig.leading_zeros() as i32 - 2;
    debug_assert!(s >= 0);
    (sig << s, exp2 - s)
}

impl Exact {
    /// The exact value of `v`.
    pub(crate) fn of(v: f64) -> Exact {
        Exact::Float(v)
    }

    /// Rounds to `fmt` under `mode` with the draw `rand`, as a value of the storage type `T`.
    pub(crate) fn round<T: Element>(self, fmt: &Format, mode: RoundingMode, rand: u64) -> T {
        match self {
            // Zero and the specials fit every storage type; finite values go through round_finite so that
            // a float64 result is never narrowed to float32 before its one rounding.
            Exact::Float(v) if !v.is_finite() || v == 0.0 => reference::round(T::from_f64(v), fmt, mode, rand),
            Exact::Float(v) => {
                let (sig, exp2) = parts(v);
                Exact::Finite { neg: v.is_sign_negative(), sig: u128::from(sig), exp2, sticky: false }
                    .round(fmt, mode, rand)
            }
            Exact::Finite { neg, .. } if !fmt.signed() && neg => T::nan(true),
            Exact::Finite { neg, sig, exp2, sticky } => round_finite(fmt, mode, neg, sig, exp2, sticky, rand),
        }
    }

    /// The finite nonzero value as (neg, sig, exp2), or None for the specials and zero.
    fn finite(self) -> Option<(bool, u128, i32)> {
        match self {
            Exact::Float(v) if v.is_finite() && v != 0.0 => {
                let (s, e) = parts(v);
                Some((v.is_sign_negative(), u128::from(s), e))
            }
            Exact::Finite { neg, sig, exp2, sticky: false } => Some((neg, sig, exp2)),
            _ => None,
        }
    }
}

/// The sign of an exact zero sum of nonzero or opposite-signed terms (IEEE 754: -0 only when rounding toward
/// negative).
fn zero_sum(mode: RoundingMode) -> f64 {
    if mode == RoundingMode::TowardNegative {
        -0.0
    } else {
        0.0
    }
}

/// `x + y` for exact, non-sticky finite nonzero operands of at most 126 bits.
fn add_finite(x: (bool, u128, i32), y: (bool, u128, i32), mode: RoundingMode) -> Exact {
    let (xs, xe) = normalized(x.1, x.2);
    let (ys, ye) = normalized(y.1, y.2);
    let ((bneg, bs, be), (sneg, ss, se)) =
        if (xe, xs) >= (ye, ys) { ((x.0, xs, xe), (y.0, ys, ye)) } else { ((y.0, ys, ye), (x.0, xs, xe)) };
    let d = (be - se) as u32; // >= 0: both have their top bit at 125
    let (small, lost) = if d >= 128 { (0, true) } else { (ss >> d, ss & ((1u128 << d) - 1) != 0) };
    let (sig, sticky) = if bneg == sneg {
        (bs + small, lost)
    } else if lost {
        // bs - (small + theta), 0 < theta < 1: (bs - small - 1) + (1 - theta).
        (bs - small - 1, true)
    } else {
        (bs - small, false)
    };
    if sig == 0 {
        return Exact::Float(zero_sum(mode));
    }
    Exact::Finite { neg: bneg, sig, exp2: be, sticky }
}

/// `a + b`, exactly.
pub(crate) fn add(a: f64, b: f64, mode: RoundingMode) -> Exact {
    match (Exact::of(a).finite(), Exact::of(b).finite()) {
        (Some(x), Some(y)) => add_finite(x, y, mode),
        _ if a == 0.0 && b == 0.0 && a.is_sign_negative() != b.is_sign_negative() => Exact::Float(zero_sum(mode)),
        _ => Exact::Float(a + b), // a special or a zero operand: float64 is exact
    }
}

/// `a * b`, exactly.
pub(crate) fn mul(a: f64, b: f64) -> Exact {
    match (Exact::of(a).finite(), Exact::of(b).finite()) {
        (Some((an, asig, ae)), Some((bn, bsig, be))) => {
            Exact::Finite { neg: an != bn, sig: asig * bsig, exp2: ae + be, sticky: false }
        }
        _ => Exact::Float(a * b),
    }
}

/// `a * b + c` with one rounding.
pub(crate) fn fma(a: f64, b: f64, c: f64, mode: RoundingMode) -> Exact {
    if !(a.is_finite() && b.is_finite() && c.is_finite()) {
        return Exact::Float(a.mul_add(b, c)); // specials: float64 is exact
    }
    let p = mul(a, b);
    match (p.finite(), Exact::of(c).finite()) {
        (Some(x), Some(y)) => add_finite(x, y, mode),
        (Some(_), None) => p, // c is ±0
        (None, Some(_)) => Exact::Float(c),
        (None, None) => {
            // Both zero: the product's sign is the xor of a's and b's.
            let pneg = a.is_sign_negative() != b.is_sign_negative();
            if pneg == c.is_sign_negative() {
                Exact::Float(c)
            } else {
                Exact::Float(zero_sum(mode))
            }
        }
    }
}

/// Whether `mode` decides only by where the exact value lies among the format's points and midpoints (and
/// whether it is exact): every mode but the two that use the distance fraction.
fn decides_by_side(mode: RoundingMode) -> bool {
    !matches!(mode, RoundingMode::Stochastic | RoundingMode::StochasticBits(_))
}

/// A stand-in for an exact value `v` of sign `neg`, given `r` = |v| rounded to nearest float64 (finite,
/// nonzero) and how |v| compares with it: `r` itself, or a value within 2^-70 of r's last place on v's
/// side. No float64 lies strictly between v and r (r is the nearest), so none lies between v and the
/// stand-in: both are on the same side of every point and midpoint of every format (their points are float64
/// values, and so are their midpoints up to 52 bits of precision; float64's own midpoints are farther from r
/// than v is). Modes that decide by side alone ([`decides_by_side`]) round both the same way.
fn beside(neg: bool, r: f64, cmp: std::cmp::Ordering) -> Exact {
    let (rs, re) = parts(r);
    let (sig, exp2) = normalized(u128::from(rs), re);
    match cmp {
        std::cmp::Ordering::Equal => Exact::Finite { neg, sig, exp2, sticky: false },
        std::cmp::Ordering::Greater => Exact::Finite { neg, sig, exp2, sticky: true },
        std::cmp::Ordering::Less => Exact::Finite { neg, sig: sig - 1, exp2, sticky: true },
    }
}

/// `a / b` with one rounding under `mode`: to 123 bits and a sticky remainder, or, for modes that decide by
/// side, the float64 quotient and the sign of the remainder (one 106-bit product instead of two 128-bit
/// divisions).
pub(crate) fn div(a: f64, b: f64, mode: RoundingMode) -> Exact {
    match (Exact::of(a).finite(), Exact::of(b).finite()) {
        (Some((an, asig, ae)), Some((bn, bsig, be))) => {
            let q = (a / b).abs();
            if decides_by_side(mode) && q != 0.0 && q.is_finite() {
                // |a| against q |b|: sa 2^ea against qs bs 2^(eq + eb), compared as integers.
                let (asig, ae) = normalized_to(asig, ae, 53);
                let (qs, qe) = parts(q);
                let prod = u128::from(qs) * bsig;
                let d = ae - qe - be;
                if (0..=74).contains(&d) {
                    return beside(an != bn, q, (asig << d).cmp(&prod));
                }
            }
            // Both significands to 53 bits exactly (subnormals normalized).
            let (asig, ae) = normalized_to(asig, ae, 53);
            let (bsig, be) = normalized_to(bsig, be, 53);
            let n1 = asig << 64;
            let (q1, r1) = (n1 / bsig, n1 % bsig); // 2^63 < q1 < 2^65
            let n2 = r1 << 60;
            let (q2, r2) = (n2 / bsig, n2 % bsig); // q2 < 2^60
            Exact::Finite { neg: an != bn, sig: q1 << 60 | q2, exp2: ae - be - 124, sticky: r2 != 0 }
        }
        _ => Exact::Float(a / b),
    }
}

/// `sig * 2^e` with the significand shifted to exactly `bits` bits (sig != 0, at most `bits` bits).
fn normalized_to(sig: u128, e: i32, bits: u32) -> (u128, i32) {
    let s = bits - (128 - sig.leading_zeros());
    (sig << s, e - s as i32)
}

/// `sqrt(a)` with one rounding under `mode`: to 125 bits and a sticky remainder, or, for modes that decide
/// by side, the float64 root and the sign of `a - root^2` (a 106-bit product instead of a big-integer root).
pub(crate) fn sqrt(a: f64, mode: RoundingMode) -> Exact {
    match Exact::of(a).finite() {
        Some((false, sig, e)) if decides_by_side(mode) => {
            let r = a.sqrt();
            let (sig, e) = normalized_to(sig, e, 53);
            let (rs, re) = parts(r);
            let d = e - 2 * re;
            if (0..=74).contains(&d) {
                let sq = u128::from(rs) * u128::from(rs);
                beside(false, r, (sig << d).cmp(&sq))
            } else {
                sqrt(a, RoundingMode::Stochastic) // not reached: d is 51..=54
            }
        }
        Some((false, sig, e)) => {
            // a = sig * 2^e; scale to N = sig * 2^k with N near 2^250 and e - k even.
            let top = 127 - sig.leading_zeros() as i32;
            let mut k = 250 - top;
            if (e - k) % 2 != 0 {
                k -= 1;
            }
            let n = BigUint::from(sig) << k as u32;
            let root = n.sqrt();
            let sticky = &root * &root != n;
            let sig = low_u128(&root);
            Exact::Finite { neg: false, sig, exp2: (e - k) / 2, sticky }
        }
        Some((true, ..)) => Exact::Float(f64::NAN),
        None => Exact::Float(a.sqrt()), // ±0, +inf, -inf (NaN), NaN
    }
}

/// The low 128 bits of a big integer.
fn low_u128(v: &BigUint) -> u128 {
    let mut digits = v.iter_u64_digits();
    let lo = digits.next().unwrap_or(0);
    u128::from(lo) | u128::from(digits.next().unwrap_or(0)) << 64
}

/// The exact sum of exact terms (the values of [`mul`], [`Exact::of`], ...; none sticky), for the
/// multi-term additions of the block-FMA model.
pub(crate) fn sum(terms: &[Exact], mode: RoundingMode) -> Exact {
    use num_bigint::BigInt;
    let mut special = None::<f64>;
    let mut finite = Vec::with_capacity(terms.len());
    let (mut pos_zero, mut neg_zero) = (false, false);
    for t in terms {
        match *t {
            Exact::Float(v) if !v.is_finite() => special = Some(special.map_or(v, |s| s + v)),
            Exact::Float(v) if v == 0.0 => {
                pos_zero |= v.is_sign_positive();
                neg_zero |= v.is_sign_negative();
            }
            _ => match t.finite() {
                Some(f) => finite.push(f),
                None => return Exact::Float(f64::NAN), // a sticky term: not produced by the callers
            },
        }
    }
    if let Some(s) = special {
        return Exact::Float(s);
    }
    if finite.is_empty() {
        // Only zeros: IEEE's rule for x + y with x, y zeros, extended to any number of them.
        return Exact::Float(match (pos_zero, neg_zero) {
            (true, true) => zero_sum(mode),
            (false, true) => -0.0,
            _ => 0.0,
        });
    }
    let base = finite.iter().map(|f| f.2).min().unwrap_or(0);
    let mut total = BigInt::default();
    for &(neg, sig, e) in &finite {
        let v = BigInt::from(sig) << (e - base) as u32;
        if neg {
            total -= v;
        } else {
            total += v;
        }
    }
    let (sign, mag) = total.into_parts();
    let bits = mag.bits();
    if bits == 0 {
        return Exact::Float(zero_sum(mode));
    }
    let shift = bits.saturating_sub(126);
    let top = &mag >> shift;
    let sig = low_u128(&top);
    let sticky = shift > 0 && mag.trailing_zeros().unwrap_or(0) < shift;
    Exact::Finite { neg: sign == num_bigint::Sign::Minus, sig, exp2: base + shift as i32, sticky }
}
