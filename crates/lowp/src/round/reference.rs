//! The reference rounding, written for clarity: exact integer arithmetic on sign, exponent and
//! significand; no floating-point shortcuts and no log2. The fast kernels are tested against it bit for bit.

use std::cmp::Ordering;

use crate::dtype::Element;
use crate::format::{pow2, Format};
use crate::round::RoundingMode;

/// What a rounding that leaves the format's range produces.
pub(crate) fn overflow_value<T: Element>(fmt: &Format, mode: RoundingMode, neg: bool) -> T {
    use RoundingMode::*;
    // "Far": the mode rounds away from zero here, so the result would be infinite.
    let far = match mode {
        NearestEven | NearestZero | NearestAway | Stochastic | StochasticEqual | StochasticBits(_) => true,
        TowardPositive => !neg,
        TowardNegative => neg,
        TowardZero | Odd => false,
    };
    if !far || fmt.saturate() {
        signed(fmt.max(), neg)
    } else if fmt.has_inf() {
        signed(f64::INFINITY, neg)
    } else {
        T::nan(neg)
    }
}

/// What an infinite input produces.
pub(crate) fn infinity_value<T: Element>(fmt: &Format, neg: bool) -> T {
    if !fmt.exponent_limit() || fmt.has_inf() && (!fmt.saturate() || fmt.propagate_inf()) {
        signed(f64::INFINITY, neg)
    } else if fmt.saturate() && (!fmt.propagate_inf() || !fmt.has_nan()) {
        signed(fmt.max(), neg)
    } else {
        T::nan(neg)
    }
}

fn signed<T: Element>(mag: f64, neg: bool) -> T {
    T::from_f64(if neg { -mag } else { mag })
}

/// Rounds `x` to `fmt` under `mode`. `rand` is the element's random draw (the low `T::RANDOM_BITS` bits
/// are used; ignored by deterministic modes). NaN inputs are returned unchanged.
pub fn round<T: Element>(x: T, fmt: &Format, mode: RoundingMode, rand: u64) -> T {
    let v = x.to_f64();
    if v.is_nan() {
        return x;
    }
    let neg = v.is_sign_negative();
    if !fmt.signed() && neg && v != 0.0 {
        return T::nan(true);
    }
    if v.is_infinite() {
        return infinity_value(fmt, neg);
    }
    let zero = signed(0.0, neg && fmt.has_neg_zero());
    if v == 0.0 {
        return if fmt.has_zero() { zero } else { T::nan(neg) };
    }

    // |v| = sig * 2^exp2 exactly.
    let bits = v.abs().to_bits();
    let field = (bits >> 52) as i32;
    let (sig, exp2) = if field == 0 { (bits, -1074) } else { (bits & ((1 << 52) - 1) | 1 << 52, field - 1075) };
    round_finite(fmt, mode, neg, u128::from(sig), exp2, false, rand)
}

/// Rounds the nonzero finite magnitude `sig * 2^exp2` (or, with `sticky`, a value strictly between
/// `sig * 2^exp2` and `(sig + 1) * 2^exp2`), negated when `neg`, to `fmt` under `mode`. This is how exact
/// results of arithmetic are rounded once (see [`crate::arith`]).
///
/// With `sticky`, `sig` must have at least 120 significant bits, so that at least 64 bits lie between the
/// target's last place and `sig`'s: then every mode, the stochastic ones included, decides exactly as it would
/// on the infinitely precise value.
pub(crate) fn round_finite<T: Element>(
    fmt: &Format,
    mode: RoundingMode,
    neg: bool,
    sig: u128,
    exp2: i32,
    sticky: bool,
    rand: u64,
) -> T {
    debug_assert!(sig != 0);
    debug_assert!(!sticky || sig >> 119 != 0, "a sticky significand needs 120 bits");
    let zero = signed(0.0, neg && fmt.has_neg_zero());
    let ex = exp2 + 127 - sig.leading_zeros() as i32; // floor(log2 |v|)

    let m = fmt.man_bits() as i32;
    let limited = fmt.exponent_limit();
    let emin = fmt.emin();
    let below = limited && ex < emin;
    // Exponent of the quantum (the spacing of the target grid around v); never finer than float64's.
    let qe = if !below {
        ex - m
    } else if fmt.subnormals() {
        emin - m
    } else {
        emin // no subnormals: the neighbours below min_normal are 0 and min_normal
    }
    .max(-1074);

    let mag = if qe <= exp2 && !sticky {
        scaled(sig, exp2) // the grid is at least as fine as the input's: exact
    } else {
        let drop = (qe - exp2) as u32;
        let n = if drop >= 128 { 0 } else { sig >> drop };
        let rem = if drop >= 128 { sig } else { sig - (n << drop) }; // the discarded part, over 2^drop
        let half_cmp = if drop > 128 {
            Ordering::Less
        } else {
            match rem.cmp(&(1u128 << (drop - 1))) {
                Ordering::Equal if sticky => Ordering::Greater,
                c => c,
            }
        };
        let sticky = sticky || rem != 0;
        let rbits = T::RANDOM_BITS;
        // floor(rem / 2^drop * 2^rbits): the fraction to rbits bits, rounded down (exact with a sticky
        // remainder too, as then drop >= rbits).
        let frac = if drop <= rbits {
            rem << (rbits - drop)
        } else if drop - rbits >= 128 {
            0
        } else {
            rem >> (drop - rbits)
        };
        let r = u128::from(rand) & ((1u128 << rbits) - 1);
        // Ties-to-even and round-to-odd look at the last bit of the lower neighbour's code. For M >= 1
        // that is the last bit of n; for M = 0 every significand is 1 and the code's last bit is the
        // exponent's.
        let lower_odd = if m == 0 { n == 1 && (qe + fmt.bias()) & 1 == 1 } else { n & 1 == 1 };
        use RoundingMode::*;
        let up = match mode {
            NearestEven => {
                // Without subnormals, the tie between 0 and min_normal goes to min_normal (MATLAB chop).
                half_cmp == Ordering::Greater
                    || half_cmp == Ordering::Equal && (lower_odd || below && !fmt.subnormals())
            }
            NearestZero => half_cmp == Ordering::Greater,
            NearestAway => half_cmp != Ordering::Less,
            TowardZero => false,
            TowardPositive => sticky && !neg,
            TowardNegative => sticky && neg,
            Odd => sticky && !lower_odd,
            Stochastic => frac + r >= 1u128 << rbits,
            StochasticBits(nb) => {
                let shift = rbits - u32::from(nb);
                (frac >> shift) + (r >> shift) >= 1u128 << nb
            }
            StochasticEqual => sticky && (r >> (rbits - 1)) & 1 == 1,
        };
        let n = n + u128::from(up);
        if n == 0 {
            0.0
        } else {
            scaled(n, qe)
        }
    };
    if limited && mag > fmt.max() {
        return overflow_value(fmt, mode, neg);
    }
    if mag == 0.0 {
        return if fmt.has_zero() { zero } else { signed(fmt.min_normal(), neg) };
    }
    signed(mag, neg)
}

/// `n * 2^e` as a float64 (n != 0): exact when representable, +inf beyond float64's range.
fn scaled(n: u128, e: i32) -> f64 {
    let tz = n.trailing_zeros();
    let (n, e) = (n >> tz, e + tz as i32);
    let top = e + 127 - n.leading_zeros() as i32;
    if top > 1023 {
        return f64::INFINITY;
    }
    // n < 2^54 here for every caller (at most one bit more than the target's precision), so the
    // conversion is exact and the two factors keep every step inside float64's range.
    let half = e / 2;
    n as f64 * pow2(half) * pow2(e - half)
}
