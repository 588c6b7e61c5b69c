//! Element-wise operations on float64 slices, rounded once per element: the bulk path shared by the
//! element-wise API, the reductions and GEMM.
//!
//! Each operation is first done in float64 together with its error term (TwoSum for sums, an FMA for
//! products). Where the error term is zero the float64 result is the exact result, and the whole slice is
//! rounded by the vectorized kernels of [`crate::round`]; the few elements whose float64 result is not exact
//! (or is zero, infinite or NaN, where the sign of zero or a special needs the exact rules) are redone one by
//! one in exact arithmetic ([`super::exact`]). Both paths round the same exact value with the same draw, so
//! the result never depends on which path an element took.

use super::exact::{self, Exact};
use super::func::{self, Func};
use crate::error::Result;
use crate::format::Format;
use crate::round::rng::{draw, splitmix64, STREAM_ROUND};
use crate::round::{Encoder, Rounding, RoundingMode};

/// Products below this magnitude may have lost bits to underflow in their FMA error term.
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
        self.exact(exact::div(a, b), index)
    }

    /// `fl(a * b + c)` as the rounding numbered `index`.
    pub(crate) fn fma1(&self, a: f64, b: f64, c: f64, index: u64) -> f64 {
        self.exact(exact::fma(a, b, c, self.mode), index)
    }

    /// `fl(sqrt(a))` as the rounding numbered `index`.
    pub(crate) fn sqrt1(&self, a: f64, index: u64) -> f64 {
        self.exact(exact::sqrt(a), index)
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
        let mut redo = Vec::new();
        for (j, (a, &b)) in acc.iter_mut().zip(t).enumerate() {
            let s = *a + b;
            // TwoSum: the error term is exactly (a + b) - s when nothing overflows.
            let bb = s - *a;
            let err = (*a - (s - bb)) + (b - bb);
            if !(err == 0.0 && s != 0.0 && s.is_finite()) {
                redo.push((j, *a, b));
            }
            *a = s;
        }
        self.round(at, acc);
        for (j, a, b) in redo {
            acc[j] = self.add1(a, b, at + j as u64);
        }
    }

    /// `out[j] = fl(a[j] * b[j])` as roundings `at + j`.
    pub(crate) fn mul_into(&self, at: u64, a: &[f64], b: &[f64], out: &mut [f64]) {
        let mut redo = Vec::new();
        for (j, ((o, &x), &y)) in out.iter_mut().zip(a).zip(b).enumerate() {
            let p = x * y;
            let err = x.mul_add(y, -p);
            if !(x == 0.0 || y == 0.0 || err == 0.0 && p.abs() >= TINY_PRODUCT && p.is_finite()) {
                redo.push(j);
            }
            *o = p;
        }
        self.round(at, out);
        for j in redo {
            out[j] = self.mul1(a[j], b[j], at + j as u64);
        }
    }

    /// `out[j] = fl(s * b[j])` as roundings `at + j` (a scalar times a row).
    pub(crate) fn scale_into(&self, at: u64, s: f64, b: &[f64], out: &mut [f64]) {
        let mut redo = Vec::new();
        for (j, (o, &y)) in out.iter_mut().zip(b).enumerate() {
            let p = s * y;
            let err = s.mul_add(y, -p);
            if !(s == 0.0 || y == 0.0 || err == 0.0 && p.abs() >= TINY_PRODUCT && p.is_finite()) {
                redo.push(j);
            }
            *o = p;
        }
        self.round(at, out);
        for j in redo {
            out[j] = self.mul1(s, b[j], at + j as u64);
        }
    }

    /// `acc[j] = fl(s * b[j] + acc[j])` as roundings `at + j` (one rounding: a fused multiply-add).
    pub(crate) fn fma_into(&self, at: u64, s: f64, b: &[f64], acc: &mut [f64]) {
        let mut redo = Vec::new();
        for (j, (c, &y)) in acc.iter_mut().zip(b).enumerate() {
            let p = s * y;
            let perr = s.mul_add(y, -p);
            let exact_p = perr == 0.0 && (p.abs() >= TINY_PRODUCT || s == 0.0 || y == 0.0);
            let sum = *c + p;
            let bb = sum - *c;
            let err = (*c - (sum - bb)) + (p - bb);
            if !(exact_p && err == 0.0 && sum != 0.0 && sum.is_finite()) {
                redo.push((j, *c));
            }
            *c = sum;
        }
        self.round(at, acc);
        for (j, c) in redo {
            acc[j] = self.fma1(s, b[j], c, at + j as u64);
        }
    }
}
