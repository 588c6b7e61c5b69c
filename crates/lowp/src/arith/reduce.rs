//! Sums, dot products and GEMM under an explicit arithmetic model ([`Accumulation`]).
//!
//! A dot product of length K (and each entry of a GEMM) is computed from the terms `t_p = fl_P(a_p b_p)`
//! (products rounded to the product format P) or, without a product format, from the exact products; a
//! sum's terms are its inputs as given. The accumulator is held in format A, and each [`Order`] says which
//! additions are rounded to A:
//! - `Recursive`: `s = fl_A(s + t_p)` for p = 0, 1, ..., starting from s = 0. Without a product format this
//!   is a chain of fused multiply-adds, `s = fl_A(s + a_p b_p)`.
//! - `Pairwise`: the terms are split in halves recursively (the left half has floor(n/2) terms); each leaf is
//!   `fl_A(0 + t_p)` (a -0 term becomes +0, as in the recursive order), each inner node `fl_A(left + right)`.
//! - `Blocked(b)`: each block of b consecutive terms is summed recursively, and the block sums are added in
//!   turn: `S = fl_A(S + B_m)`.
//! - `BlockFma(k)`: the tensor-core model: `s = fl_A(s + t_p + ... + t_{p+k-1})` with the k + 1 terms added
//!   exactly and rounded once; with exact products this is a k-term fused dot-product unit accumulating in A.
//!
//! Draws (see [`super`]): for entry (i, j) of an M x K by K x N product, the product of term p is rounding
//! `(i K + p) N + j` of stream 1, and accumulation step s is rounding `(2 i K + s) N + j` of stream 2, where
//! term p is step p (recursive, blocked, block FMA: the step of the block's first term; pairwise leaves),
//! and the inner node or block sum whose right part starts at term m is step K + m. A dot product or a sum
//! is the entry (0, 0) of a 1 x K by K x 1 product.

use rayon::prelude::*;

use super::exact::{self, Exact};
use super::lanes::{Lanes, TILE};
use crate::error::{Error, Result};
use crate::format::Format;
use crate::round::{check_len, Rounding};

/// Stream of the product roundings.
const STREAM_PRODUCT: u64 = 1;
/// Stream of the accumulator roundings.
const STREAM_SUM: u64 = 2;

/// The order in which terms are accumulated (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Order {
    /// One term after the other.
    Recursive,
    /// Halves, recursively.
    Pairwise,
    /// Blocks of the given size summed recursively, then the block sums in turn.
    Blocked(usize),
    /// Exact sums of the given number of terms added to the accumulator with one rounding.
    BlockFma(usize),
}

impl Order {
    /// `recursive`, `pairwise`, `blocked:B` or `blockfma:K`.
    ///
    /// # Examples
    /// ```
    /// use lowp::arith::Order;
    /// assert_eq!(Order::parse("blocked:32")?, Order::Blocked(32));
    /// assert_eq!(Order::parse("blockfma:4")?, Order::BlockFma(4));
    /// # Ok::<(), lowp::Error>(())
    /// ```
    pub fn parse(s: &str) -> Result<Order> {
        let bad = || {
            Error::InvalidOption(format!(
                "unknown accumulation order `{s}`. Accepted: recursive, pairwise, blocked:B, blockfma:K (B, K >= 1)"
            ))
        };
        let size = |v: &str| v.parse::<usize>().ok().filter(|&b| b >= 1).ok_or_else(bad);
        match s.split_once(':') {
            None if s == "recursive" => Ok(Order::Recursive),
            None if s == "pairwise" => Ok(Order::Pairwise),
            Some(("blocked", b)) => Ok(Order::Blocked(size(b)?)),
            Some(("blockfma", k)) => Ok(Order::BlockFma(size(k)?)),
            _ => Err(bad()),
        }
    }
}

impl std::fmt::Display for Order {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Order::Recursive => f.write_str("recursive"),
            Order::Pairwise => f.write_str("pairwise"),
            Order::Blocked(b) => write!(f, "blocked:{b}"),
            Order::BlockFma(k) => write!(f, "blockfma:{k}"),
        }
    }
}

/// An arithmetic model for sums, dot products and GEMM.
#[derive(Clone, Debug, PartialEq)]
pub struct Accumulation {
    /// The format products are rounded to; `None`: products are exact (fused multiply-adds).
    pub product: Option<Format>,
    /// The format the accumulator is held in.
    pub accum: Format,
    /// Which additions are rounded.
    pub order: Order,
    /// Mode and seed of every rounding.
    pub rounding: Rounding,
}

impl Accumulation {
    /// Everything in `fmt`: products rounded to it, recursive accumulation in it, ties to even.
    pub fn new(fmt: &Format) -> Accumulation {
        Accumulation {
            product: Some(fmt.clone()),
            accum: fmt.clone(),
            order: Order::Recursive,
            rounding: Rounding::default(),
        }
    }
    /// Sets the accumulator's format.
    pub fn with_accum(mut self, accum: &Format) -> Accumulation {
        self.accum = accum.clone();
        self
    }
    /// Sets the products' format (`None`: exact products).
    pub fn with_product(mut self, product: Option<&Format>) -> Accumulation {
        self.product = product.cloned();
        self
    }
    /// Sets the order.
    pub fn with_order(mut self, order: Order) -> Accumulation {
        self.order = order;
        self
    }
    /// Sets the rounding mode and seed.
    pub fn with_rounding(mut self, rounding: Rounding) -> Accumulation {
        self.rounding = rounding;
        self
    }

    fn check(&self) -> Result<()> {
        if let Order::Blocked(0) | Order::BlockFma(0) = self.order {
            return Err(Error::InvalidOption("block sizes must be at least 1".into()));
        }
        for f in self.product.iter().chain([&self.accum]) {
            super::check::<f64>(f, &self.rounding)?;
        }
        Ok(())
    }
}

/// Where the terms of one row of results come from.
enum Terms<'a> {
    /// Term p of column j is `a[p] * b[p * n + j]`.
    Products { a: &'a [f64], b: &'a [f64] },
    /// Term p is `x[p]` (one column).
    Values(&'a [f64]),
}

/// One row of results: `n` accumulators over `k` terms.
struct Row<'a> {
    terms: Terms<'a>,
    product: Option<&'a Lanes<'a>>,
    sum: &'a Lanes<'a>,
    order: Order,
    k: usize,
    n: usize,
    /// The row's index i (for the draws).
    i: u64,
}

impl Row<'_> {
    fn product_at(&self, p: usize) -> u64 {
        (self.i * self.k as u64 + p as u64) * self.n as u64
    }

    fn step_at(&self, s: usize) -> u64 {
        (2 * self.i * self.k as u64 + s as u64) * self.n as u64
    }

    /// `t_p` for the columns `j0..j0 + out.len()`, when it is a float64 (a rounded product or an input value).
    fn term(&self, p: usize, j0: usize, out: &mut [f64]) {
        match (&self.terms, &self.product) {
            (Terms::Values(x), _) => out[0] = x[p],
            (Terms::Products { a, b }, Some(lanes)) => {
                let row = &b[p * self.n + j0..p * self.n + j0 + out.len()];
                lanes.scale_into(self.product_at(p) + j0 as u64, a[p], row, out)
            }
            (Terms::Products { .. }, None) => unreachable!("exact products are added by `add_term`"),
        }
    }

    /// The exact term p of column j.
    fn exact_term(&self, p: usize, j: usize) -> Exact {
        match (&self.terms, &self.product) {
            (Terms::Values(x), _) => Exact::of(x[p]),
            (Terms::Products { a, b }, None) => exact::mul(a[p], b[p * self.n + j]),
            (Terms::Products { a, b }, Some(lanes)) => {
                Exact::of(lanes.mul1(a[p], b[p * self.n + j], self.product_at(p) + j as u64))
            }
        }
    }

    /// `acc = fl_A(acc + t_p)` as step `s`.
    fn add_term(&self, p: usize, s: usize, acc: &mut [f64], tmp: &mut [f64]) {
        if let (Terms::Products { a, b }, None) = (&self.terms, &self.product) {
            self.sum.fma_into(self.step_at(s), a[p], &b[p * self.n..(p + 1) * self.n], acc);
        } else {
            self.term(p, 0, tmp);
            self.sum.add_into(self.step_at(s), acc, tmp);
        }
    }

    /// Recursive accumulation of terms `lo..hi` into `acc` (steps lo..hi).
    fn recursive(&self, lo: usize, hi: usize, acc: &mut [f64], tmp: &mut [f64]) {
        for p in lo..hi {
            self.add_term(p, p, acc, tmp);
        }
    }

    /// Pairwise sum of terms `lo..hi` (hi > lo) into `out`.
    fn pairwise(&self, lo: usize, hi: usize, out: &mut [f64], tmp: &mut [f64]) {
        if hi - lo == 1 {
            out.fill(0.0);
            self.add_term(lo, lo, out, tmp);
            return;
        }
        let mid = lo + (hi - lo) / 2;
        self.pairwise(lo, mid, out, tmp);
        let mut right = vec![0.0; self.n];
        self.pairwise(mid, hi, &mut right, tmp);
        self.sum.add_into(self.step_at(self.k + mid), out, &right);
    }

    /// `acc = fl_A(acc + t_lo + ... + t_{hi-1})`, one rounding, as step `lo`; in tiles of columns.
    fn block_fma(&self, lo: usize, hi: usize, acc: &mut [f64]) {
        let n = self.n;
        let at = self.step_at(lo);
        for (jt, acc) in acc.chunks_mut(TILE).enumerate() {
            let (j0, len) = (jt * TILE, acc.len());
            let mut total = [0.0; TILE];
            let mut tmp = [0.0; TILE];
            let mut ok = [1u8; TILE];
            total[..len].copy_from_slice(acc);
            for p in lo..hi {
                match (&self.terms, &self.product) {
                    (Terms::Products { a, b }, None) => {
                        self.sum.block_products(a[p], &b[p * n + j0..p * n + j0 + len], &mut total, &mut ok)
                    }
                    _ => {
                        self.term(p, j0, &mut tmp[..len]);
                        self.sum.block_terms(&tmp[..len], &mut total, &mut ok);
                    }
                }
            }
            for j in 0..len {
                ok[j] &= u8::from(total[j] != 0.0 && total[j].is_finite());
            }
            let at = at + j0 as u64;
            self.sum.round(at, &mut total[..len]);
            for j in (0..len).filter(|&j| ok[j] == 0) {
                let mut terms = vec![Exact::of(acc[j])];
                terms.extend((lo..hi).map(|p| self.exact_term(p, j0 + j)));
                total[j] = self.sum.exact(exact::sum(&terms, self.sum.mode()), at + j as u64);
            }
            acc.copy_from_slice(&total[..len]);
        }
    }

    /// The row's n results.
    fn run(&self, out: &mut [f64]) {
        let (k, n) = (self.k, self.n);
        out.fill(0.0);
        if k == 0 {
            return;
        }
        let mut tmp = vec![0.0; n];
        match self.order {
            Order::Recursive => self.recursive(0, k, out, &mut tmp),
            Order::Pairwise => self.pairwise(0, k, out, &mut tmp),
            Order::Blocked(b) => {
                self.recursive(0, b.min(k), out, &mut tmp);
                let mut block = vec![0.0; n];
                for m in (b..k).step_by(b) {
                    block.fill(0.0);
                    self.recursive(m, (m + b).min(k), &mut block, &mut tmp);
                    self.sum.add_into(self.step_at(k + m), out, &block);
                }
            }
            Order::BlockFma(kb) => {
                for m in (0..k).step_by(kb) {
                    self.block_fma(m, (m + kb).min(k), out);
                }
            }
        }
    }
}

/// The lanes of a model: products (if rounded) and sums.
fn lanes(model: &Accumulation) -> Result<(Option<Lanes<'_>>, Lanes<'_>)> {
    model.check()?;
    let product = model.product.as_ref().map(|f| Lanes::new(f, &model.rounding, STREAM_PRODUCT)).transpose()?;
    Ok((product, Lanes::new(&model.accum, &model.rounding, STREAM_SUM)?))
}

/// The sum of `x` under `model` (its product format is not used).
///
/// # Examples
/// ```
/// use lowp::arith::{sum, Accumulation};
/// use lowp::Format;
/// let half = Format::parse("float16")?;
/// // 2048 + 1 + 1 + ... stagnates in float16 under ties-to-even.
/// let mut x = vec![1.0; 100];
/// x[0] = 2048.0;
/// assert_eq!(sum(&Accumulation::new(&half), &x)?, 2048.0);
/// # Ok::<(), lowp::Error>(())
/// ```
pub fn sum(model: &Accumulation, x: &[f64]) -> Result<f64> {
    let (_, sum) = lanes(model)?;
    let row = Row { terms: Terms::Values(x), product: None, sum: &sum, order: model.order, k: x.len(), n: 1, i: 0 };
    let mut out = [0.0];
    row.run(&mut out);
    Ok(out[0])
}

/// The dot product of `a` and `b` under `model`.
///
/// # Examples
/// ```
/// use lowp::arith::{dot, Accumulation};
/// use lowp::Format;
/// let bf16 = Format::parse("bfloat16")?;
/// let fp32 = Format::parse("float32")?;
/// let a = vec![1.0 / 3.0; 3];
/// // Products in bfloat16, accumulation in float32.
/// let d = dot(&Accumulation::new(&bf16).with_accum(&fp32), &a, &a)?;
/// assert_eq!(d, 3.0 * 0.111328125);
/// # Ok::<(), lowp::Error>(())
/// ```
pub fn dot(model: &Accumulation, a: &[f64], b: &[f64]) -> Result<f64> {
    check_len(a.len(), b.len())?;
    let mut out = [0.0];
    matmul(model, a, b, &mut out, 1, a.len(), 1)?;
    Ok(out[0])
}

/// `C = A B` under `model`, with A (m x k), B (k x n) and C (m x n) row-major. Rows of C are computed in
/// parallel; the result does not depend on the number of threads.
///
/// # Examples
/// ```
/// use lowp::arith::{matmul, Accumulation, Order};
/// use lowp::Format;
/// let half = Format::parse("float16")?;
/// let fp32 = Format::parse("float32")?;
/// // A tensor-core-like model: exact products, 4-term sums added to a float32 accumulator.
/// let model = Accumulation::new(&fp32).with_product(None).with_order(Order::BlockFma(4));
/// let a = [1.0, 2.0, 3.0, 4.0];
/// let b = [1.0, 0.0, 0.0, 1.0];
/// let mut c = [0.0; 4];
/// matmul(&model, &a, &b, &mut c, 2, 2, 2)?;
/// assert_eq!(c, a);
/// # let _ = half;
/// # Ok::<(), lowp::Error>(())
/// ```
pub fn matmul(model: &Accumulation, a: &[f64], b: &[f64], c: &mut [f64], m: usize, k: usize, n: usize) -> Result<()> {
    let shape_err = |what: &str, len: usize, want: Option<usize>| {
        Error::InvalidOption(format!(
            "matmul: {what} has {len} elements but the shapes (m={m}, k={k}, n={n}) need {}",
            want.map_or("more than usize can count".to_string(), |w| w.to_string())
        ))
    };
    for (what, len, want) in
        [("A", a.len(), m.checked_mul(k)), ("B", b.len(), k.checked_mul(n)), ("C", c.len(), m.checked_mul(n))]
    {
        if want != Some(len) {
            return Err(shape_err(what, len, want));
        }
    }
    let (product, sum) = lanes(model)?;
    if n == 0 {
        return Ok(());
    }
    let row = |i: usize, out: &mut [f64]| {
        let r = Row {
            terms: Terms::Products { a: &a[i * k..(i + 1) * k], b },
            product: product.as_ref(),
            sum: &sum,
            order: model.order,
            k,
            n,
            i: i as u64,
        };
        r.run(out);
    };
    if m * n * k.max(1) < 1 << 15 {
        c.chunks_mut(n).enumerate().for_each(|(i, o)| row(i, o));
    } else {
        c.par_chunks_mut(n).enumerate().for_each(|(i, o)| row(i, o));
    }
    Ok(())
}
