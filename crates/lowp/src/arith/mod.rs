//! Emulated arithmetic: every operation rounded once to a chosen format under a chosen rounding mode, as
//! if the hardware computed in that format.
//!
//! - Element-wise: [`binary`] (`add`, `sub`, `mul`, `div`), [`fma`], and [`unary`] for `sqrt` and the
//!   elementary functions of [`Func`].
//! - Reductions and GEMM under an explicit arithmetic model: [`sum`], [`dot`], [`matmul`] with an
//!   [`Accumulation`] (products rounded to one format, the accumulator held in another, recursive, pairwise,
//!   blocked or block-FMA order).
//! - Linear algebra with every operation rounded: [`linalg`].
//!
//! # Correct rounding, and where double rounding is avoided
//! Every result is the exact result rounded once, for every format and every mode, the stochastic ones
//! included (their probability is the exact distance fraction to 64 bits: the draws are 64-bit whatever the
//! storage type):
//! - `+ - * fma` are computed exactly (integer significands; a product has at most 106 bits), `/` to 123
//!   bits and `sqrt` to 125 bits, each with a sticky bit for the rest; the rounding then sees at least 64
//!   bits below the target's last place. The common shortcut — compute in float64, then round to the
//!   target — rounds twice. For `+ - * / sqrt` that is harmless only for round-to-nearest and targets of at
//!   most 25 bits of precision (float64 has 2p + 3 bits or more), and never for directed, stochastic or odd
//!   rounding, for fma, or for formats with more than 25 bits; lowp never relies on it. Where the float64
//!   result is exact (a sum whose TwoSum error term is zero; a product of two significands of at most 26
//!   bits each, in float64's normal range), lowp uses it and rounds it with the vectorized kernels; that is
//!   one rounding of the exact value, and the other elements take the exact path.
//! - The elementary functions use Ziv's strategy (see [`Func`]): an interval around the float64 libm value
//!   is rounded at both ends, and only when the ends disagree is the function evaluated again with
//!   arbitrary precision (`astro-float`), in wider and wider intervals. Correct rounding there rests on
//!   the libm being within 4 ulp of the true value and astro-float within 2 ulp of its precision; the test
//!   suite checks results against MPFR.
//!
//! Random draws: operation `k` of a call (element `k` of an element-wise call) draws
//! `rng::draw(seed', 0, k, 64)`, where `seed'` depends on the seed and, in reductions and linear algebra, on
//! which rounding it is (product, sum, ...). Results are identical for any number of threads.
//!
//! ```
//! use lowp::arith::{binary, BinaryOp};
//! use lowp::{Format, Rounding, RoundingMode};
//!
//! let half = Format::parse("float16")?;
//! let (a, b) = ([2048.0f64], [1.0f64]);
//! let mut c = [0.0f64];
//! binary(BinaryOp::Add, &half, &Rounding::new(RoundingMode::NearestEven), &a, &b, &mut c)?;
//! assert_eq!(c[0], 2048.0); // 2049 is a tie in float16: ties to even
//! binary(BinaryOp::Add, &half, &Rounding::new(RoundingMode::TowardPositive), &a, &b, &mut c)?;
//! assert_eq!(c[0], 2050.0);
//! # Ok::<(), lowp::Error>(())
//! ```

mod exact;
mod func;
mod lanes;
pub mod linalg;
mod reduce;

pub use func::Func;
pub use reduce::{dot, matmul, sum, Accumulation, Order};

use rayon::prelude::*;

use crate::dtype::Element;
use crate::error::{Error, Result};
use crate::format::Format;
use crate::round::check_len;
use crate::round::Rounding;
use lanes::{Lanes, TILE};

/// Elements per parallel task.
const CHUNK: usize = 1 << 14;
/// Elements per parallel task of the functions (an element can take microseconds: the arbitrary-precision
/// path).
const FUNC_CHUNK: usize = 256;

/// The binary operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    /// a + b.
    Add,
    /// a - b.
    Sub,
    /// a * b.
    Mul,
    /// a / b.
    Div,
}

impl BinaryOp {
    /// The names [`BinaryOp::parse`] accepts.
    pub const NAMES: [&'static str; 4] = ["add", "sub", "mul", "div"];

    /// `add`, `sub`, `mul` or `div`.
    pub fn parse(name: &str) -> Result<BinaryOp> {
        match name {
            "add" => Ok(BinaryOp::Add),
            "sub" => Ok(BinaryOp::Sub),
            "mul" => Ok(BinaryOp::Mul),
            "div" => Ok(BinaryOp::Div),
            _ => Err(Error::InvalidOption(format!(
                "unknown operation `{name}`. Accepted: {}",
                BinaryOp::NAMES.join(", ")
            ))),
        }
    }
}

/// Checks what every arithmetic call needs: a format float64 can carry, a valid rounding without soft
/// errors, and a storage type `T` that holds the format.
fn check<T: Element>(fmt: &Format, cfg: &Rounding) -> Result<()> {
    if cfg.flip.is_some() {
        return Err(Error::InvalidOption(
            "soft errors (bit flips) are not modelled in arithmetic; inject them with `round` on the results".into(),
        ));
    }
    fmt.check_dtype(T::DTYPE, T::MAN_BITS, T::MAX)?;
    fmt.check_dtype(f64::DTYPE, f64::MAN_BITS, f64::MAX)?;
    if T::MAN_BITS < f64::MAN_BITS {
        // `round` only ever maps float32 inputs to values near them; arithmetic results can lie anywhere in
        // the format's range, so all of it must be float32 values.
        let smallest = if fmt.subnormals() { fmt.min_subnormal() } else { fmt.min_normal() };
        if !fmt.exponent_limit() || smallest < f64::from(f32::from_bits(1)) {
            return Err(Error::UnsupportedDtype {
                format: fmt.name().to_string(),
                dtype: T::DTYPE,
                reason: "arithmetic results in it need a wider exponent range than float32's; use float64 data".into(),
            });
        }
    }
    cfg.validate(64)
}

/// Runs `f(start, chunk)` over chunks of `chunk` elements, in parallel when there are several.
fn par_tiles<T: Send>(out: &mut [T], chunk: usize, f: impl Fn(u64, &mut [T]) + Sync + Send) {
    if out.len() <= chunk {
        f(0, out);
    } else {
        out.par_chunks_mut(chunk).enumerate().for_each(|(c, o)| f((c * chunk) as u64, o));
    }
}

/// `out[k] = fl(a[k] op b[k])` in `fmt` under `cfg`.
///
/// # Examples
/// ```
/// use lowp::arith::{binary, BinaryOp};
/// use lowp::{Format, Rounding};
/// let bf16 = Format::parse("bfloat16")?;
/// let mut q = [0.0f32; 2];
/// binary(BinaryOp::Div, &bf16, &Rounding::default(), &[1.0f32, 2.0], &[3.0, 3.0], &mut q)?;
/// assert_eq!(q, [0.333984375, 0.66796875]);
/// # Ok::<(), lowp::Error>(())
/// ```
pub fn binary<T: Element>(op: BinaryOp, fmt: &Format, cfg: &Rounding, a: &[T], b: &[T], out: &mut [T]) -> Result<()> {
    check::<T>(fmt, cfg)?;
    check_len(a.len(), b.len())?;
    check_len(a.len(), out.len())?;
    let lanes = Lanes::new(fmt, cfg, 0)?;
    par_tiles(out, CHUNK, |start, o| {
        let (mut x, mut y, mut r) = ([0.0f64; TILE], [0.0f64; TILE], [0.0f64; TILE]);
        for (t, o) in o.chunks_mut(TILE).enumerate() {
            let at = start + (t * TILE) as u64;
            let i = at as usize;
            let n = o.len();
            for k in 0..n {
                x[k] = a[i + k].to_f64();
                y[k] = b[i + k].to_f64();
            }
            match op {
                BinaryOp::Add | BinaryOp::Sub => {
                    if op == BinaryOp::Sub {
                        y[..n].iter_mut().for_each(|v| *v = -*v);
                    }
                    r[..n].copy_from_slice(&x[..n]);
                    lanes.add_into(at, &mut r[..n], &y[..n]);
                }
                BinaryOp::Mul => lanes.mul_into(at, &x[..n], &y[..n], &mut r[..n]),
                BinaryOp::Div => {
                    for k in 0..n {
                        r[k] = lanes.div1(x[k], y[k], at + k as u64);
                    }
                }
            }
            for k in 0..n {
                o[k] = T::from_f64(r[k]);
            }
        }
    });
    Ok(())
}

/// `out[k] = fl(a[k] * b[k] + c[k])`, one rounding.
///
/// # Examples
/// ```
/// use lowp::arith::fma;
/// use lowp::{Format, Rounding};
/// let half = Format::parse("float16")?;
/// let e = 1.0 / 1024.0; // float16's epsilon
/// let mut d = [0.0f64];
/// // (1 + e)(1 - e) - 1 = -e^2: exact in an fma, lost if the product were rounded first.
/// fma(&half, &Rounding::default(), &[1.0 + e], &[1.0 - e], &[-1.0], &mut d)?;
/// assert_eq!(d[0], -e * e);
/// # Ok::<(), lowp::Error>(())
/// ```
pub fn fma<T: Element>(fmt: &Format, cfg: &Rounding, a: &[T], b: &[T], c: &[T], out: &mut [T]) -> Result<()> {
    check::<T>(fmt, cfg)?;
    check_len(a.len(), b.len())?;
    check_len(a.len(), c.len())?;
    check_len(a.len(), out.len())?;
    let lanes = Lanes::new(fmt, cfg, 0)?;
    par_tiles(out, CHUNK, |start, o| {
        let (mut x, mut y, mut z, mut r) = ([0.0f64; TILE], [0.0f64; TILE], [0.0f64; TILE], [0.0f64; TILE]);
        for (t, o) in o.chunks_mut(TILE).enumerate() {
            let at = start + (t * TILE) as u64;
            let (i, n) = (at as usize, o.len());
            for k in 0..n {
                (x[k], y[k], z[k]) = (a[i + k].to_f64(), b[i + k].to_f64(), c[i + k].to_f64());
            }
            lanes.fma3_into(at, &x[..n], &y[..n], &z[..n], &mut r[..n]);
            for k in 0..n {
                o[k] = T::from_f64(r[k]);
            }
        }
    });
    Ok(())
}

/// `out[k] = fl(f(x[k]))`, correctly rounded (see the module docs).
///
/// # Examples
/// ```
/// use lowp::arith::{unary, Func};
/// use lowp::{Format, Rounding, RoundingMode};
/// let e4m3 = Format::parse("e4m3fn")?;
/// let mut y = [0.0f32; 3];
/// unary(Func::Exp, &e4m3, &Rounding::new(RoundingMode::TowardZero), &[1.0f32, 0.0, 10.0], &mut y)?;
/// assert_eq!(y, [2.5, 1.0, 448.0]);
/// # Ok::<(), lowp::Error>(())
/// ```
pub fn unary<T: Element>(f: Func, fmt: &Format, cfg: &Rounding, x: &[T], out: &mut [T]) -> Result<()> {
    check::<T>(fmt, cfg)?;
    check_len(x.len(), out.len())?;
    let lanes = Lanes::new(fmt, cfg, 0)?;
    par_tiles(out, FUNC_CHUNK, |start, o| {
        for (k, o) in o.iter_mut().enumerate() {
            let i = start as usize + k;
            *o = T::from_f64(lanes.func1(f, x[i].to_f64(), i as u64));
        }
    });
    Ok(())
}
