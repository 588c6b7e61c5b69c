//! Element-wise operations on float64 slices, rounded once per element: the bulk path shared by the
//! element-wise API, the reductions and GEMM.
//!
//! Each operation is first done in float64 together with a test of its exactness (a zero TwoSum error term
//! for sums; for products, both significands of at most 26 bits and a normal result). Where it passes, the
//! float64 result is the exact result, and the whole slice is
//! rounded by the vectorized kernels of [`crate::round`]; the few elements whose float64 result is not exact
//! (or is zero, infinite or NaN, where the sign of zero or a special needs the exact rules) are redone one by
//! one in exact arithmetic ([`super::exact`]). Both paths round the same exact value with the same draw, so
//! the result never depends on which path an element took.

use super::exact::{self, Exact};
use super::func::{self, Func};
use crate::error::Result;
use crate::format::Format;
use crate::round::rng::{draw, splitmix64, STREAM_ROUND};
use crate::round::{isa_dispatched, Encoder, Rounding, RoundingMode};

/// Products below this magnitude may have lost bits to underflow (subnormal float64 results).
const TINY_PRODUCT: f64 = 1.0e-290;

/// Rounding of float64 results to one format under one mode, with draws from one stream.
pub(crate) struct Lanes<'a> {
    fmt: &'a Format,
    mode: RoundingMode,
    seed: u64,
    enc: Encoder<'a, f64>,
}

impl<'a> Lanes<'a> {
    /// Rounds to `fmt` under `cfg`; `stream` separates the draws of different roundings of one algorithm
    /// (products, sums, ...): stream k draws with the seed `splitmix64(seed ^ k)` (stream 0 uses `seed`, as
    /// [`crate::round`] does).
    pub(crate) fn new(fmt: &'a Format, cfg: &Rounding, stream: u64) -> Result<Lanes<'a>> {
        let seed = if stream == 0 { cfg.seed } else { splitmix64(cfg.seed ^ stream) };
        let cfg = Rounding { seed, flip: None, ..*cfg };
        Ok(Lanes { fmt, mode: cfg.mode, seed, enc: Encoder::new(fmt, &cfg)? })
    }

    pub(crate) fn format(&self) -> &Format {
        self.fmt
    }

    pub(crate) fn mode(&self) -> RoundingMode {
        self.mode
    }

    /// The draw of the rounding numbered `index`.
    fn rand(&self, index: u64) -> u64 {
        draw(self.seed, STREAM_ROUND, index, 64)
    }

    /// Rounds an exact value as the rounding numbered `index`.
    pub(crate) fn exact(&self, v: Exact, index: u64) -> f64 {
        v.round::<f64>(self.fmt, self.mode, self.rand(index))
    }

    /// Rounds `x` as the rounding numbered `index`.
    pub(crate) fn round1(&self, x: f64, index: u64) -> f64 {
        self.exact(Exact::of(x), index)
    }

    /// `fl(a + b)` as the rounding numbered `index`.
    pub(crate) fn add1(&self, a: f64, b: f64, index: u64) -> f64 {
        self.exact(exact::add(a, b, self.mode), index)
    }

    /// `fl(a * b)` as the rounding numbered `index`.
    pub(crate) fn mul1(&self, a: f64, b: f64, index: u64) -> f64 {
        self.exact(exact::mul(a, b), index)
    }

    /// `fl(a / b)` as the rounding numbered `index`.
    pub(crate) fn div1(&self, a: f64, b: f64, index: u64) -> f64 {
        self.exact(exact::div(a, b, self.mode), index)
    }

    /// `fl(a * b + c)` as the rounding numbered `index`.
    pub(crate) fn fma1(&self, a: f64, b: f64, c: f64, index: u64) -> f64 {
        self.exact(exact::fma(a, b, c, self.mode), index)
    }

    /// `fl(sqrt(a))` as the rounding numbered `index`.
    pub(crate) fn sqrt1(&self, a: f64, index: u64) -> f64 {
        self.exact(exact::sqrt(a, self.mode), index)
    }

    /// `fl(f(x))` as the rounding numbered `index`.
    pub(crate) fn func1(&self, f: Func, x: f64, index: u64) -> f64 {
        match f {
            Func::Sqrt => self.sqrt1(x, index),
            _ => func::eval::<f64>(f, x, self.fmt, self.mode, self.rand(index)),
        }
    }

    /// Rounds `buf` in place as roundings `at..`.
    pub(crate) fn round(&self, at: u64, buf: &mut [f64]) {
        self.enc.round_at(at, buf);
    }

    /// `acc[j] = fl(acc[j] + t[j])` as roundings `at + j`.
    pub(crate) fn add_into(&self, at: u64, acc: &mut [f64], t: &[f64]) {
        debug_assert_eq!(acc.len(), t.len());
        for (k, (acc, t)) in acc.chunks_mut(TILE).zip(t.chunks(TILE)).enumerate() {
            let at = at + (k * TILE) as u64;
            let mut old = [0.0; TILE];
            let mut bad = [0u8; TILE];
            let any = sum_pass(acc, t, &mut old, &mut bad);
            self.round(at, acc);
            if any != 0 {
                for j in (0..acc.len()).filter(|&j| bad[j] != 0) {
                    acc[j] = self.add1(old[j], t[j], at + j as u64);
                }
            }
        }
    }

    /// `out[j] = fl(a[j] * b[j])` as roundings `at + j`.
    pub(crate) fn mul_into(&self, at: u64, a: &[f64], b: &[f64], out: &mut [f64]) {
        for (k, ((out, a), b)) in out.chunks_mut(TILE).zip(a.chunks(TILE)).zip(b.chunks(TILE)).enumerate() {
            let at = at + (k * TILE) as u64;
            let mut bad = [0u8; TILE];
            let any = product_pass(a, b, out, &mut bad);
            self.round(at, out);
            if any != 0 {
                for j in (0..out.len()).filter(|&j| bad[j] != 0) {
                    out[j] = self.mul1(a[j], b[j], at + j as u64);
                }
            }
        }
    }

    /// `out[j] = fl(s * b[j])` as roundings `at + j` (a scalar times a row).
    pub(crate) fn scale_into(&self, at: u64, s: f64, b: &[f64], out: &mut [f64]) {
        for (k, (out, b)) in out.chunks_mut(TILE).zip(b.chunks(TILE)).enumerate() {
            let at = at + (k * TILE) as u64;
            let mut bad = [0u8; TILE];
            let any = scale_pass(s, b, out, &mut bad);
            self.round(at, out);
            if any != 0 {
                for j in (0..out.len()).filter(|&j| bad[j] != 0) {
                    out[j] = self.mul1(s, b[j], at + j as u64);
                }
            }
        }
    }

    /// `out[j] = fl(a[j] * b[j] + c[j])` as roundings `at + j` (one rounding).
    pub(crate) fn fma3_into(&self, at: u64, a: &[f64], b: &[f64], c: &[f64], out: &mut [f64]) {
        for (k, out) in out.chunks_mut(TILE).enumerate() {
            let (i0, at) = (k * TILE, at + (k * TILE) as u64);
            let (a, b, c) = (&a[i0..i0 + out.len()], &b[i0..i0 + out.len()], &c[i0..i0 + out.len()]);
            let mut bad = [0u8; TILE];
            let any = fma3_pass(a, b, c, out, &mut bad);
            self.round(at, out);
            if any != 0 {
                for j in (0..out.len()).filter(|&j| bad[j] != 0) {
                    out[j] = self.fma1(a[j], b[j], c[j], at + j as u64);
                }
            }
        }
    }

    /// `acc[j] = fl(s * b[j] + acc[j])` as roundings `at + j` (one rounding: a fused multiply-add).
    pub(crate) fn fma_into(&self, at: u64, s: f64, b: &[f64], acc: &mut [f64]) {
        for (k, (acc, b)) in acc.chunks_mut(TILE).zip(b.chunks(TILE)).enumerate() {
            let at = at + (k * TILE) as u64;
            let mut old = [0.0; TILE];
            let mut bad = [0u8; TILE];
            let any = fma_pass(s, b, acc, &mut old, &mut bad);
            self.round(at, acc);
            if any != 0 {
                for j in (0..acc.len()).filter(|&j| bad[j] != 0) {
                    acc[j] = self.fma1(s, b[j], old[j], at + j as u64);
                }
            }
        }
    }
}

/// Elements per tile of the bulk loops (their flags live on the stack).
pub(crate) const TILE: usize = 256;

isa_dispatched! {
    /// `acc += t` in float64, keeping the old values and flagging the inexact sums; returns whether any is.
    fn sum_pass(acc: &mut [f64], t: &[f64], old: &mut [f64; TILE], bad: &mut [u8; TILE]) -> u8 {
        let mut any = 0u8;
        for j in 0..acc.len().min(t.len()).min(TILE) {
            let (a, b) = (acc[j], t[j]);
            let s = a + b;
            old[j] = a;
            bad[j] = u8::from(!sum_is_exact(a, b, s));
            any |= bad[j];
            acc[j] = s;
        }
        any
    }
}

isa_dispatched! {
    /// `out = a * b` in float64, flagging the inexact products.
    fn product_pass(a: &[f64], b: &[f64], out: &mut [f64], bad: &mut [u8; TILE]) -> u8 {
        let mut any = 0u8;
        for j in 0..out.len().min(a.len()).min(b.len()).min(TILE) {
            let p = a[j] * b[j];
            bad[j] = u8::from(!product_is_exact(a[j], b[j], p));
            any |= bad[j];
            out[j] = p;
        }
        any
    }
}

isa_dispatched! {
    /// `out = s * b` in float64, flagging the inexact products.
    fn scale_pass(s: f64, b: &[f64], out: &mut [f64], bad: &mut [u8; TILE]) -> u8 {
        let mut any = 0u8;
        for j in 0..out.len().min(b.len()).min(TILE) {
            let p = s * b[j];
            bad[j] = u8::from(!product_is_exact(s, b[j], p));
            any |= bad[j];
            out[j] = p;
        }
        any
    }
}

isa_dispatched! {
    /// `acc += s * b` in float64 (product and sum separately), keeping the old values and flagging the
    /// elements where either step is inexact.
    fn fma_pass(s: f64, b: &[f64], acc: &mut [f64], old: &mut [f64; TILE], bad: &mut [u8; TILE]) -> u8 {
        let mut any = 0u8;
        for j in 0..acc.len().min(b.len()).min(TILE) {
            let c = acc[j];
            let p = s * b[j];
            let sum = c + p;
            old[j] = c;
            bad[j] = u8::from(!(product_is_exact(s, b[j], p) & sum_is_exact(c, p, sum)));
            any |= bad[j];
            acc[j] = sum;
        }
        any
    }
}

isa_dispatched! {
    /// `out = a * b + c` in float64 (product and sum separately), flagging the elements where either step is
    /// inexact.
    fn fma3_pass(a: &[f64], b: &[f64], c: &[f64], out: &mut [f64], bad: &mut [u8; TILE]) -> u8 {
        let mut any = 0u8;
        for j in 0..out.len().min(a.len()).min(b.len()).min(c.len()).min(TILE) {
            let p = a[j] * b[j];
            let sum = p + c[j];
            bad[j] = u8::from(!(product_is_exact(a[j], b[j], p) & sum_is_exact(p, c[j], sum)));
            any |= bad[j];
            out[j] = sum;
        }
        any
    }
}

isa_dispatched! {
    /// The block-FMA model's step with exact products: `total += s * b`, clearing `ok` where the product or
    /// the sum is not exact (an exact zero sum is kept: a later term or the final check decides).
    fn block_products_pass(s: f64, b: &[f64], total: &mut [f64; TILE], ok: &mut [u8; TILE]) -> u8 {
        for j in 0..b.len().min(TILE) {
            let (x, p) = (total[j], s * b[j]);
            let sum = x + p;
            ok[j] &= u8::from(product_is_exact(s, b[j], p) & (sum_is_exact(x, p, sum) | (sum == 0.0) & (x == -p)));
            total[j] = sum;
        }
        0
    }
}

isa_dispatched! {
    /// The block-FMA model's step with float64 terms: `total += t`, clearing `ok` where the sum is not exact.
    fn block_terms_pass(t: &[f64], total: &mut [f64; TILE], ok: &mut [u8; TILE]) -> u8 {
        for j in 0..t.len().min(TILE) {
            let (x, y) = (total[j], t[j]);
            let sum = x + y;
            ok[j] &= u8::from(sum_is_exact(x, y, sum) | (sum == 0.0) & (x == -y));
            total[j] = sum;
        }
        0
    }
}

impl Lanes<'_> {
    /// The block-FMA step `total += s * b` (exact products) with the flags in `ok`.
    pub(crate) fn block_products(&self, s: f64, b: &[f64], total: &mut [f64; TILE], ok: &mut [u8; TILE]) {
        block_products_pass(s, b, total, ok);
    }

    /// The block-FMA step `total += t` with the flags in `ok`.
    pub(crate) fn block_terms(&self, t: &[f64], total: &mut [f64; TILE], ok: &mut [u8; TILE]) {
        block_terms_pass(t, total, ok);
    }
}

/// Whether `s = a + b` (float64) is the exact sum, nonzero and finite: the TwoSum error term is zero. A zero
/// sum is left to the exact path, which gives it the sign the mode calls for. Branch-free, so the loops
/// that call it vectorize.
#[inline(always)]
pub(crate) fn sum_is_exact(a: f64, b: f64, s: f64) -> bool {
    let bb = s - a;
    let err = (a - (s - bb)) + (b - bb);
    (err == 0.0) & (s != 0.0) & (s.abs() <= f64::MAX)
}

/// Whether `p = x * y` (float64) is the exact product: both significands have at most 26 bits (the low 27
/// bits of both encodings are zero: every format of at most 26 bits of precision, float32 included), so the
/// product has at most 52 bits, and p is normal and finite (or an operand is zero: then p is the exact ±0, or
/// NaN for 0 * inf, as in the exact path). Branch-free.
#[inline(always)]
pub(crate) fn product_is_exact(x: f64, y: f64, p: f64) -> bool {
    const LOW: u64 = (1 << 27) - 1;
    let short = (x.to_bits() | y.to_bits()) & LOW == 0;
    let a = p.abs();
    short & ((TINY_PRODUCT..=f64::MAX).contains(&a) | (x == 0.0) | (y == 0.0))
}
