//! Elementary functions rounded once, correctly, to the target format (Ziv's strategy).
//!
//! 1. Exact cases are answered exactly: the specials, the arguments where the function is rational
//!    (exp(0) = 1, exp2(n) = 2^n, log(1) = 0, log2(2^k) = k, log10(10^k) = k, sin(±0) = ±0, cos(0) = 1, ...),
//!    and the arguments where the result lies beyond every format's reach (exp overflow and underflow,
//!    tanh(|x| >= 45) within 2^-128 of ±1), which are held as "just past this value" with a sticky bit.
//!    By the Lindemann–Weierstrass theorem every other argument gives a transcendental result, which is
//!    never a grid point or a midpoint of any format.
//! 2. The float64 value `y` of the system libm is taken as an interval `y ± 4 ulp` (glibc documents at most
//!    2 ulp for these functions). Rounding is monotone in the value for every mode with the element's draw
//!    held fixed, so when both ends round to the same value, so does the true result.
//! 3. Otherwise the function is evaluated with `astro-float` at 128 bits, then 256, ... 16384, each time as an
//!    interval of ±2 units in the last place, until both ends agree.

use std::cell::RefCell;

use astro_float::{BigFloat, Consts, RoundingMode as BigRounding, Sign};

use super::exact::Exact;
use crate::dtype::Element;
use crate::error::{Error, Result};
use crate::format::{exponent_of, pow2, Format};
use crate::round::RoundingMode;

/// The elementary functions lowp rounds correctly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Func {
    /// Square root (computed exactly, not through the interval steps).
    Sqrt,
    /// e^x.
    Exp,
    /// 2^x.
    Exp2,
    /// Natural logarithm.
    Log,
    /// Base-2 logarithm.
    Log2,
    /// Base-10 logarithm.
    Log10,
    /// Sine (radians).
    Sin,
    /// Cosine (radians).
    Cos,
    /// Tangent (radians).
    Tan,
    /// Hyperbolic tangent.
    Tanh,
}

impl Func {
    /// Every function, in the order of [`Func::NAMES`].
    pub const ALL: [Func; 10] = [
        Func::Sqrt,
        Func::Exp,
        Func::Exp2,
        Func::Log,
        Func::Log2,
        Func::Log10,
        Func::Sin,
        Func::Cos,
        Func::Tan,
        Func::Tanh,
    ];
    /// The names [`Func::parse`] accepts.
    pub const NAMES: [&'static str; 10] = ["sqrt", "exp", "exp2", "log", "log2", "log10", "sin", "cos", "tan", "tanh"];

    /// The function named `name` (see [`Func::NAMES`]).
    ///
    /// # Examples
    /// ```
    /// use lowp::arith::Func;
    /// assert_eq!(Func::parse("tanh")?, Func::Tanh);
    /// assert!(Func::parse("erf").is_err());
    /// # Ok::<(), lowp::Error>(())
    /// ```
    pub fn parse(name: &str) -> Result<Func> {
        Func::NAMES.iter().position(|n| *n == name).map(|i| Func::ALL[i]).ok_or_else(|| {
            Error::InvalidOption(format!("unknown function `{name}`. Accepted: {}", Func::NAMES.join(", ")))
        })
    }

    /// The function's name.
    pub fn name(self) -> &'static str {
        Func::NAMES[Func::ALL.iter().position(|f| *f == self).unwrap_or(0)]
    }

    fn libm(self, x: f64) -> f64 {
        match self {
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

    fn big(self, x: &BigFloat, p: usize, cc: &mut Consts) -> BigFloat {
        let rm = BigRounding::ToEven;
        match self {
            Func::Sqrt => x.sqrt(p, rm),
            Func::Exp => x.exp(p, rm, cc),
            Func::Exp2 => BigFloat::from_f64(2.0, 64).pow(x, p, rm, cc),
            Func::Log => x.ln(p, rm, cc),
            Func::Log2 => x.log2(p, rm, cc),
            Func::Log10 => x.log10(p, rm, cc),
            Func::Sin => x.sin(p, rm, cc),
            Func::Cos => x.cos(p, rm, cc),
            Func::Tan => x.tan(p, rm, cc),
            Func::Tanh => x.tanh(p, rm, cc),
        }
    }

    /// The result when it is exact or known without evaluating the function (see the module docs).
    fn known(self, x: f64) -> Option<Exact> {
        let exact = |v: f64| Some(Exact::of(v));
        if x.is_nan() {
            return exact(x);
        }
        match self {
            Func::Sqrt => Some(super::exact::sqrt(x, RoundingMode::Stochastic)), // eval's callers use Lanes::sqrt1
            Func::Exp | Func::Exp2 => {
                let ln2 = if self == Func::Exp { std::f64::consts::LN_2 } else { 1.0 };
                if x.is_infinite() || x == 0.0 {
                    exact(self.libm(x))
                } else if x * ln2.recip() > 1100.0 {
                    Some(huge())
                } else if x * ln2.recip() < -1300.0 {
                    Some(tiny(false))
                } else if self == Func::Exp2 && x.fract() == 0.0 {
                    Some(Exact::Finite { neg: false, sig: 1, exp2: x as i32, sticky: false })
                } else {
                    None
                }
            }
            Func::Log | Func::Log2 | Func::Log10 => {
                if x <= 0.0 || x.is_infinite() || x == 1.0 {
                    exact(self.libm(x)) // NaN, -inf, +inf, +0
                } else if self == Func::Log2 && x == pow2(exponent_of(x)) {
                    exact(f64::from(exponent_of(x)))
                } else if self == Func::Log10 {
                    (1..=22).find(|&k| 10f64.powi(k) == x).map(|k| Exact::of(f64::from(k)))
                } else {
                    None
                }
            }
            Func::Sin | Func::Tan => (x == 0.0 || x.is_infinite()).then(|| Exact::of(self.libm(x))),
            Func::Cos => (x == 0.0 || x.is_infinite()).then(|| Exact::of(self.libm(x))),
            Func::Tanh => {
                if x == 0.0 || x.is_infinite() {
                    exact(self.libm(x))
                } else if x.abs() >= 45.0 {
                    // 1 - tanh|x| = 2 / (e^(2|x|) + 1) < 2^-128: the value lies in (1 - 2^-126, 1).
                    Some(Exact::Finite { neg: x < 0.0, sig: u128::MAX >> 2, exp2: -126, sticky: true })
                } else {
                    None
                }
            }
        }
    }
}

/// A positive value beyond float64's range (rounds like an overflow in every mode).
fn huge() -> Exact {
    Exact::Finite { neg: false, sig: 1 << 125, exp2: 1100, sticky: true }
}

/// A value of the given sign below 2^-1175: far enough under float64's smallest subnormal that every mode,
/// the stochastic ones included, treats it as the true tiny value.
fn tiny(neg: bool) -> Exact {
    Exact::Finite { neg, sig: 1 << 125, exp2: -1300, sticky: true }
}

/// The float64 `k` units in the last place away from `y` (toward +inf for k > 0), saturating at ±inf.
fn step(y: f64, k: i32) -> f64 {
    let mut v = y;
    for _ in 0..k.abs() {
        v = if k > 0 { v.next_up() } else { v.next_down() };
    }
    v
}

/// A finite nonzero big float as an [`Exact`]: its top 128 bits, with the rest as the sticky bit.
fn from_big(z: &BigFloat) -> Exact {
    if z.is_nan() {
        return Exact::of(f64::NAN);
    }
    if z.is_inf() {
        return huge_signed(z.is_negative());
    }
    let Some((words, _, sign, e, _)) = z.as_raw_parts() else { return Exact::of(f64::NAN) };
    let neg = sign == Sign::Neg;
    let n = words.len();
    if words.iter().all(|w| *w == 0) {
        return tiny(neg); // underflowed inside astro-float: below anything float64 holds
    }
    let hi = u128::from(words[n - 1]) << 64 | if n >= 2 { u128::from(words[n - 2]) } else { 0 };
    let sticky = words[..n.saturating_sub(2)].iter().any(|w| *w != 0);
    // value = 0.words * 2^e = hi * 2^(e - 128) (+ the lower words).
    let lz = hi.leading_zeros();
    if lz > 0 && sticky {
        return Exact::of(f64::NAN); // astro-float keeps its mantissas normalized; not reached
    }
    Exact::Finite { neg, sig: hi, exp2: e - 128, sticky }
}

fn huge_signed(neg: bool) -> Exact {
    match huge() {
        Exact::Finite { sig, exp2, sticky, .. } => Exact::Finite { neg, sig, exp2, sticky },
        other => other,
    }
}

fn same<T: Element>(a: T, b: T) -> bool {
    a.bits64() == b.bits64()
}

thread_local! {
    static CONSTS: RefCell<Option<Consts>> = const { RefCell::new(None) };
}

/// `f(x)` rounded once to `fmt` under `mode` with the draw `rand`.
pub(crate) fn eval<T: Element>(f: Func, x: f64, fmt: &Format, mode: RoundingMode, rand: u64) -> T {
    if let Some(e) = f.known(x) {
        return e.round(fmt, mode, rand);
    }
    let y = f.libm(x);
    if y.is_nan() {
        return T::nan(false); // every domain error is answered in `known`; kept for safety
    }
    let (lo, hi) = if y.is_infinite() { (y.signum() * f64::MAX, y) } else { (step(y, -4), step(y, 4)) };
    let a: T = Exact::of(lo).round(fmt, mode, rand);
    if same(a, Exact::of(hi).round(fmt, mode, rand)) {
        return a;
    }
    CONSTS.with(|cell| {
        let mut cell = cell.borrow_mut();
        let cc = cell.get_or_insert_with(|| Consts::new().expect("astro-float constants cache"));
        let xb = big_of(x);
        let mut p = 128;
        loop {
            let z = f.big(&xb, p, cc);
            let (lo, hi) = bounds(&z, p);
            let a: T = lo.round(fmt, mode, rand);
            if same(a, hi.round(fmt, mode, rand)) || p >= 1 << 14 {
                return a;
            }
            p *= 2;
        }
    })
}

/// `x` exactly as a big float. (`BigFloat::from_f64` halves subnormal inputs in astro-float 0.9.6, so they
/// are scaled into the normal range first and scaled back exactly.)
fn big_of(x: f64) -> BigFloat {
    if x.is_normal() || x == 0.0 || !x.is_finite() {
        return BigFloat::from_f64(x, 64);
    }
    let scaled = BigFloat::from_f64(x * 2f64.powi(64), 64);
    scaled.mul(&BigFloat::from_f64(2f64.powi(-64), 64), 128, BigRounding::None)
}

/// `z ± 2` units in its last place (precision `p`), each as an [`Exact`].
fn bounds(z: &BigFloat, p: usize) -> (Exact, Exact) {
    let (Some(e), false) = (z.exponent(), z.is_zero()) else {
        let v = from_big(z);
        return (v, v);
    };
    let ulp2 = BigFloat::from_raw_parts(&[1u64 << 63], 64, Sign::Pos, e - p as i32 + 2, false);
    let wide = p + 128;
    let a = z.sub(&ulp2, wide, BigRounding::None);
    let b = z.add(&ulp2, wide, BigRounding::None);
    (from_big(&a), from_big(&b))
}
