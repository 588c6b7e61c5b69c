//! Affine integer quantization (FORMATS.md §3): b-bit codes, a scale (and for the asymmetric scheme a zero
//! point) per tensor, per channel or per group of G consecutive elements along an axis.

use super::layout::{finite_range, Codes, Layout};
use super::{empty_block_scale, keep_first, round_to_integer};
use crate::error::{Error, Result};
use crate::round::{check_len, isa_dispatched};
use crate::{round, round_value, Element, Format, Rounding, RoundingMode};
use std::ops::Range;

/// Which elements share a scale.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Granularity {
    /// One scale for the whole tensor.
    Tensor,
    /// One scale per index along the axis (a channel), shared by all the other dimensions.
    Channel,
    /// One scale per run of G consecutive elements along the axis (the last run may be shorter).
    Group(usize),
}

/// How the grid is placed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Symmetry {
    /// scale = amax / qmax with qmax = 2^(b-1) - 1; codes in [-qmax, qmax], or [-2^(b-1), qmax] with
    /// `full_range`.
    Symmetric {
        /// Use the code -2^(b-1) too.
        full_range: bool,
    },
    /// scale = (max - min) / (2^b - 1), zero point = clamp(round(-min / scale)); codes in [0, 2^b - 1]. The
    /// range [min, max] is widened to hold 0 (as PyTorch's observers do), so zero is exact and no value of
    /// a block that is all positive or all negative is clipped.
    Asymmetric,
}

/// How a block's range [min, max] (or amax) is chosen before the scale follows from it.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub enum ScaleChoice {
    /// The block's finite min and max (absmax for symmetric schemes).
    #[default]
    MinMax,
    /// Clip to the p-th percentile (nearest rank) of |x| (symmetric) or to the (100 - p)-th and p-th
    /// percentiles of x (asymmetric), p in (0, 100].
    Percentile(f64),
    /// The min/max range shrunk by the factor in {1, 0.99, ..., 0.50} whose quantized block (nearest even)
    /// has the least squared error; ties keep the larger factor.
    MseSearch,
}

/// An affine integer scheme: bits, granularity, symmetry, and the format its scales are stored in.
///
/// # Examples
/// ```
/// use lowp::quant::{AffineInt, Granularity, Symmetry};
/// use lowp::Rounding;
///
/// let s = AffineInt::parse("int4:g4:asym")?;
/// assert_eq!((s.bits(), s.granularity(), s.symmetry()), (4, Granularity::Group(4), Symmetry::Asymmetric));
/// let x = [0.0f32, 3.0, 6.0, 22.5, -1.0, 0.0, 1.0, 14.0];
/// let q = s.quantize(&Rounding::default(), &x, &[8], 0)?;
/// assert_eq!(q.scales, [1.5, 1.0]); // (22.5 - 0) / 15 and (14 - -1) / 15
/// assert_eq!(q.zeros, [0, 1]);
/// assert_eq!(q.codes, [0, 2, 4, 15, 0, 1, 2, 15]);
/// let mut y = [0.0f32; 8];
/// q.dequantize(&mut y)?;
/// assert_eq!(y, x);
/// # Ok::<(), lowp::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct AffineInt {
    bits: u32,
    granularity: Granularity,
    symmetry: Symmetry,
    scale_format: Format,
    choice: ScaleChoice,
}

/// A tensor quantized by an [`AffineInt`] scheme: one code per element (C order), one scale and zero point per
/// block, and what is needed to decode them.
#[derive(Clone, Debug, PartialEq)]
pub struct QuantizedInt {
    /// The scheme.
    pub scheme: AffineInt,
    /// The tensor's shape.
    pub shape: Vec<usize>,
    /// The axis the channels or groups run along.
    pub axis: usize,
    /// Codes, in C order: in [-2^(b-1), 2^(b-1) - 1] (symmetric) or [0, 2^b - 1] (asymmetric).
    pub codes: Vec<i32>,
    /// Scales, after rounding to the scheme's scale format, in block order.
    pub scales: Vec<f64>,
    /// Zero points (all 0 for symmetric schemes), in block order.
    pub zeros: Vec<i32>,
}

impl AffineInt {
    /// A scheme of `bits` (2..=16) bits, scales stored as float32.
    pub fn new(bits: u32, granularity: Granularity, symmetry: Symmetry) -> Result<AffineInt> {
        if !(2..=16).contains(&bits) {
            return Err(Error::InvalidFormat(format!("int{bits}: integer schemes take 2 to 16 bits")));
        }
        if granularity == Granularity::Group(0) {
            return Err(Error::InvalidFormat("group size 0: groups need at least one element".into()));
        }
        Ok(AffineInt {
            bits,
            granularity,
            symmetry,
            scale_format: Format::parse("float32")?,
            choice: ScaleChoice::MinMax,
        })
    }

    /// Stores scales in `fmt` (e.g. float16, bfloat16, float8_e4m3fn, float8_e8m0fnu): each scale is rounded
    /// to it (nearest, ties to even) before the elements are computed with it.
    pub fn with_scale_format(mut self, fmt: Format) -> AffineInt {
        self.scale_format = fmt;
        self
    }

    /// Chooses the range by `choice` (min/max by default).
    pub fn with_scale_choice(mut self, choice: ScaleChoice) -> Result<AffineInt> {
        if let ScaleChoice::Percentile(p) = choice {
            if !(p > 0.0 && p <= 100.0) {
                return Err(Error::InvalidOption(format!("percentile {p}: accepted (0, 100]")));
            }
        }
        self.choice = choice;
        Ok(self)
    }

    /// `int<b>[:tensor|:channel|:g<G>][:sym|:asym][:full][:scale=<format>][:minmax|:pct<p>|:mse]`, e.g.
    /// `int4:g128:asym`, `int8:channel:sym`, `int4:g64:sym:scale=bf16:mse`, `int8:tensor:pct99.9`. Defaults: per
    /// tensor, symmetric narrow range, float32 scales, min/max range.
    pub fn parse(spec: &str) -> Result<AffineInt> {
        let bad = |why: &str| {
            Error::InvalidFormat(format!(
                "integer scheme `{spec}`: {why}. Expected int<b>[:tensor|:channel|:g<G>][:sym|:asym][:full][:scale=<format>], \
                 e.g. int4:g128:asym or int8:channel:sym"
            ))
        };
        let lower = spec.trim().to_ascii_lowercase();
        let mut parts = lower.split(':');
        let bits = parts
            .next()
            .and_then(|p| p.strip_prefix("int"))
            .and_then(|b| b.parse::<u32>().ok())
            .ok_or_else(|| bad("it must start with int<bits>"))?;
        let (mut gran, mut sym, mut full, mut scale) = (Granularity::Tensor, None, false, None);
        let mut choice = ScaleChoice::MinMax;
        for p in parts {
            match p {
                "tensor" => gran = Granularity::Tensor,
                "channel" => gran = Granularity::Channel,
                "sym" => sym = Some(false),
                "asym" => sym = Some(true),
                "full" => full = true,
                _ if p.starts_with('g') && p[1..].parse::<usize>().is_ok() => {
                    gran = Granularity::Group(p[1..].parse().unwrap_or(0))
                }
                _ if p.starts_with("scale=") => scale = Some(Format::parse(&p["scale=".len()..])?),
                "minmax" => choice = ScaleChoice::MinMax,
                "mse" => choice = ScaleChoice::MseSearch,
                _ if p.starts_with("pct") && p[3..].parse::<f64>().is_ok() => {
                    choice = ScaleChoice::Percentile(p[3..].parse().unwrap_or(100.0))
                }
                _ => return Err(bad(&format!("unknown part `{p}`"))),
            }
        }
        let symmetry = match (sym, full) {
            (Some(true), true) => return Err(bad("`full` applies to symmetric schemes only")),
            (Some(true), false) => Symmetry::Asymmetric,
            (_, full) => Symmetry::Symmetric { full_range: full },
        };
        let s = AffineInt::new(bits, gran, symmetry)?;
        let s = match scale {
            Some(f) => s.with_scale_format(f),
            None => s,
        };
        s.with_scale_choice(choice)
    }

    /// Bits per code.
    pub fn bits(&self) -> u32 {
        self.bits
    }
    /// Granularity.
    pub fn granularity(&self) -> Granularity {
        self.granularity
    }
    /// Symmetry.
    pub fn symmetry(&self) -> Symmetry {
        self.symmetry
    }
    /// The format scales are stored in.
    pub fn scale_format(&self) -> &Format {
        &self.scale_format
    }
    /// How the range is chosen.
    pub fn scale_choice(&self) -> ScaleChoice {
        self.choice
    }

    /// (lowest code, highest code).
    pub fn code_range(&self) -> (i32, i32) {
        let b = self.bits;
        match self.symmetry {
            Symmetry::Symmetric { full_range: false } => (-((1 << (b - 1)) - 1), (1 << (b - 1)) - 1),
            Symmetry::Symmetric { full_range: true } => (-(1 << (b - 1)), (1 << (b - 1)) - 1),
            Symmetry::Asymmetric => (0, (1 << b) - 1),
        }
    }

    /// The stored scale and zero point this scheme gives a block holding `vals` (its finite values count;
    /// the range by the scale choice, 0 included): what [`quantize`](Self::quantize) computes per block, for
    /// methods that fit a block once and then place other values on its grid (GPTQ).
    ///
    /// # Examples
    /// ```
    /// use lowp::quant::AffineInt;
    /// let s = AffineInt::parse("int4:g8:asym")?;
    /// let (scale, zero) = s.fit(&[-1.5, 0.5, 6.0])?;
    /// assert_eq!((scale, zero), (0.5, 3)); // (6 - -1.5) / 15; -(-1.5) / 0.5 = 3
    /// assert_eq!(s.nearest_code(0.6, scale, zero), 4); // 0.6 / 0.5 = 1.2 -> 1, + 3
    /// assert_eq!(s.nearest_code(99.0, scale, zero), 15); // clamped
    /// # Ok::<(), lowp::Error>(())
    /// ```
    pub fn fit(&self, vals: &[f64]) -> Result<(f64, i32)> {
        let mut finite: Vec<f64> = vals.iter().copied().filter(|v| v.is_finite()).collect();
        let (mn, mx) = self.range(&mut finite)?;
        self.scale_zero(mn, mx)
    }

    /// The code of `v` on the grid of scale `s` and zero point `z`, rounded to nearest (ties to even) and
    /// clamped to the code range (infinities clamp; scale 0 gives `z`). Its value is (code − z) · s.
    pub fn nearest_code(&self, v: f64, s: f64, z: i32) -> i32 {
        self.code(v, s, z, RoundingMode::NearestEven, 0, 0)
    }

    /// Quantizes `x` of `shape` (C order) with channels or groups along `axis`. Scales come from the
    /// block's finite values (min/max, or absmax); infinities clamp to the end codes; NaN is an error (an
    /// integer code has no NaN); an all-zero block gets scale 0 and decodes to zeros.
    pub fn quantize<T: Element>(&self, cfg: &Rounding, x: &[T], shape: &[usize], axis: usize) -> Result<QuantizedInt> {
        super::check_no_flip(cfg)?;
        let layout = Layout::new(shape, axis, self.granularity)?;
        check_len(layout.len(), x.len())?;
        if layout.contiguous() {
            let (codes, scales, zeros) = self.quantize_batches(&layout, cfg, x, None)?.expect("unpacked always runs");
            let codes = codes.each();
            return Ok(QuantizedInt { scheme: self.clone(), shape: shape.to_vec(), axis, codes, scales, zeros });
        }
        if let Some(index) = x.iter().position(|v| v.to_f64().is_nan()) {
            return Err(self.nan_at(index));
        }
        let nb = layout.blocks();
        let (mut scales, mut zeros) = (vec![0.0; nb], vec![0; nb]);
        // The finite values of each block.
        let mut members: Vec<Vec<f64>> = vec![Vec::new(); nb];
        for (i, v) in x.iter().enumerate() {
            let v = v.to_f64();
            if v.is_finite() {
                members[layout.block(i)].push(v);
            }
        }
        for (b, vals) in members.iter_mut().enumerate() {
            let (mn, mx) = self.range(vals)?;
            (scales[b], zeros[b]) = self.scale_zero(mn, mx)?;
        }
        let codes = x
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let b = layout.block(i);
                self.code(v.to_f64(), scales[b], zeros[b], cfg.mode, cfg.seed, i as u64)
            })
            .collect();
        Ok(QuantizedInt { scheme: self.clone(), shape: shape.to_vec(), axis, codes, scales, zeros })
    }

    /// [`quantize`](Self::quantize) straight into packed codes, with the scales and zero points, for the
    /// layouts with the batch path and codes of at most 8 bits (None otherwise): what
    /// [`QuantizedTensor::quantize`](super::QuantizedTensor::quantize) uses.
    #[allow(clippy::type_complexity)]
    pub(crate) fn quantize_packed<T: Element>(
        &self,
        cfg: &Rounding,
        x: &[T],
        shape: &[usize],
        axis: usize,
    ) -> Result<Option<(Vec<u8>, Vec<f64>, Vec<i32>)>> {
        super::check_no_flip(cfg)?;
        let layout = Layout::new(shape, axis, self.granularity)?;
        check_len(layout.len(), x.len())?;
        if !layout.contiguous() || self.bits > 8 {
            return Ok(None);
        }
        let run = self.quantize_batches(&layout, cfg, x, Some(self.bits))?;
        Ok(run.and_then(|(codes, scales, zeros)| Some((codes.packed()?, scales, zeros))))
    }

    /// The batch path of a [`contiguous`](Layout::contiguous) layout, in parallel over batches of whole
    /// blocks, each done in one visit while it is in cache: the blocks' ranges (NaN refused), their scales
    /// rounded to the scale format in one bulk call (as `round_value` would, one at a time), the zero points,
    /// then the codes. With `pack`, codes come back packed that many bits to a value (None when the layout
    /// does not allow it). The error of a failing run is the first in block order.
    #[allow(clippy::type_complexity)]
    fn quantize_batches<T: Element>(
        &self,
        layout: &Layout,
        cfg: &Rounding,
        x: &[T],
        pack: Option<u32>,
    ) -> Result<Option<(Codes<i32>, Vec<f64>, Vec<i32>)>> {
        let failed = std::sync::Mutex::new(None);
        let sat = self.scale_format.clone().with_saturation(true);
        let (lo, hi) = self.code_range();
        let mut per_block: Vec<(f64, i32)> = vec![(0.0, 0); layout.blocks()];
        let work = |b0: usize, i0: usize, codes: &mut [i32], blocks: &mut [(f64, i32)]| {
            let ranges: Vec<Range<usize>> = layout.block_ranges(b0, blocks.len()).collect();
            let mut vals = Vec::new();
            let mut extent = Vec::with_capacity(ranges.len());
            for (k, r) in ranges.iter().enumerate() {
                let (mn, mx, nonfinite) = finite_range(&x[r.clone()]);
                if nonfinite {
                    if let Some(i) = x[r.clone()].iter().position(|v| v.to_f64().is_nan()) {
                        return keep_first(&failed, b0 + k, self.nan_at(r.start + i));
                    }
                }
                let got = if self.choice == ScaleChoice::MinMax {
                    Ok((mn, mx)) // the range `range` gives, without gathering the values
                } else {
                    vals.clear();
                    vals.extend(x[r.clone()].iter().map(|v| v.to_f64()).filter(|v| v.is_finite()));
                    self.range(&mut vals)
                };
                match got {
                    Ok(g) => extent.push(g),
                    Err(e) => return keep_first(&failed, b0 + k, e),
                }
            }
            let raw: Vec<f64> = extent.iter().map(|&(mn, mx)| self.raw_scale(mn, mx)).collect();
            let mut scales = vec![0.0; raw.len()];
            if let Err(e) = round(&sat, &Rounding::new(RoundingMode::NearestEven), &raw, &mut scales) {
                return keep_first(&failed, b0, e);
            }
            for (k, r) in ranges.iter().enumerate() {
                let s = if raw[k] == 0.0 { empty_block_scale(&self.scale_format) } else { scales[k] };
                let z = self.zero_point(extent[k].0, s);
                blocks[k] = (s, z);
                let (codes, x) = (&mut codes[r.start - i0..r.end - i0], &x[r.clone()]);
                if cfg.mode == RoundingMode::NearestEven && s != 0.0 {
                    nearest_even_codes(x, s, z, lo, hi, codes);
                } else {
                    for (i, (c, v)) in codes.iter_mut().zip(x).enumerate() {
                        *c = self.code(v.to_f64(), s, z, cfg.mode, cfg.seed, (r.start + i) as u64);
                    }
                }
            }
        };
        let code_mask = (1u64 << self.bits) - 1;
        let codes = layout.run_batches(pack, &mut per_block, work, |c| c as u64 & code_mask);
        if let Some((_, e)) = failed.into_inner().expect("no panic while held") {
            return Err(e);
        }
        let (scales, zeros) = per_block.into_iter().unzip();
        Ok(codes.map(|codes| (codes, scales, zeros)))
    }

    /// The error for a NaN at `index`: an integer code has no NaN.
    fn nan_at(&self, index: usize) -> Error {
        Error::NotRepresentable { value: f64::NAN, index, format: self.to_string(), why: "integer codes have no NaN" }
    }
}

isa_dispatched! {
/// `codes[i] = clamp(round_ties_even(x[i] / s) + z, lo, hi)`: `code` inlined for the default mode (x holds
/// no NaN: the callers refuse it; infinities clamp as there, inf / s staying inf), compiled per instruction
/// set. The integer comes out of the bit pattern of `v + 1.5 * 2^52` (its low 32 bits are v in two's
/// complement for |v| < 2^31) rather than a float-to-int cast, whose NaN and saturation rules keep the loop
/// scalar.
///
/// The quotient is first taken as x[i] * (1 / s), a multiplication instead of a division (several times
/// the throughput). It differs from the float64 quotient by at most 3 units in its 53rd bit (1 / s, the
/// product and the quotient each round once), so the two round to the same integer whenever the product
/// is further than 2^-50 of its magnitude from a half-integer. Lanes of 16 where some element is not (or
/// 1 / s is not a normal number) are redone with the division.
fn nearest_even_codes<T: Element>(x: &[T], s: f64, z: i32, lo: i32, hi: i32, codes: &mut [i32]) {
    const SHIFT: f64 = 6755399441055744.0; // 1.5 * 2^52
    const MARGIN: f64 = 1.0 / 1125899906842624.0; // 2^-50
    const LANES: usize = 16;
    let (zf, lo, hi) = (f64::from(z), f64::from(lo), f64::from(hi));
    let code = |q: f64| ((round_ties_even_fast(q) + zf).clamp(lo, hi) + SHIFT).to_bits() as u32 as i32;
    let r = 1.0 / s;
    let by_product = r.is_normal();
    let mut xs = x.chunks_exact(LANES);
    let mut cs = codes.chunks_exact_mut(LANES);
    for (xs, cs) in (&mut xs).zip(&mut cs) {
        let mut q = [0.0f64; LANES];
        let mut near = !by_product;
        for j in 0..LANES {
            q[j] = xs[j].to_f64() * r;
            let from_half = 0.5 - (q[j] - round_ties_even_fast(q[j])).abs();
            let far = from_half > q[j].abs() * MARGIN; // false for NaN (inf * r - inf): near
            near |= !far;
        }
        if near {
            for j in 0..LANES {
                q[j] = xs[j].to_f64() / s;
            }
        }
        for j in 0..LANES {
            cs[j] = code(q[j]);
        }
    }
    for (c, v) in cs.into_remainder().iter_mut().zip(xs.remainder()) {
        *c = code(v.to_f64() / s);
    }
}
}

/// `q` rounded to an integer, ties to even, for |q| < 2^51 — without a call to `rint`, which the baseline
/// instruction set has no instruction for: adding and subtracting 1.5 * 2^52 leaves the integer nearest to q
/// (the addition rounds to a multiple of 1, ties to even). Larger magnitudes, infinities included, come out
/// as large magnitudes of the same sign, which is all the callers need: they clamp to the code range.
#[inline(always)]
pub(crate) fn round_ties_even_fast(q: f64) -> f64 {
    const SHIFT: f64 = 6755399441055744.0; // 1.5 * 2^52
    (q + SHIFT) - SHIFT
}

impl AffineInt {
    /// The range [mn, mx] (0 included) of a block's finite values under the scale choice.
    fn range(&self, vals: &mut [f64]) -> Result<(f64, f64)> {
        if vals.is_empty() {
            return Ok((0.0, 0.0));
        }
        let minmax = |v: &[f64]| {
            let (lo, hi, _) = finite_range(v); // the values here are the finite ones
            (lo, hi)
        };
        Ok(match self.choice {
            ScaleChoice::MinMax => minmax(vals),
            ScaleChoice::Percentile(p) => {
                let rank = |n: usize, p: f64| ((p / 100.0 * n as f64).ceil() as usize).clamp(1, n) - 1;
                match self.symmetry {
                    Symmetry::Symmetric { .. } => {
                        let mut mags: Vec<f64> = vals.iter().map(|v| v.abs()).collect();
                        mags.sort_by(f64::total_cmp);
                        let a = mags[rank(mags.len(), p)];
                        (-a, a)
                    }
                    Symmetry::Asymmetric => {
                        vals.sort_by(f64::total_cmp);
                        let n = vals.len();
                        (vals[rank(n, 100.0 - p)].min(0.0), vals[rank(n, p)].max(0.0))
                    }
                }
            }
            ScaleChoice::MseSearch => {
                let (mn, mx) = minmax(vals);
                let mut best = (f64::INFINITY, mn, mx);
                for k in 0..50 {
                    let f = 1.0 - k as f64 / 100.0;
                    let (s, z) = self.scale_zero(mn * f, mx * f)?;
                    let err: f64 = vals
                        .iter()
                        .map(|&v| {
                            let d = v - (self.code(v, s, z, RoundingMode::NearestEven, 0, 0) - z) as f64 * s;
                            d * d
                        })
                        .sum();
                    if err < best.0 {
                        best = (err, mn * f, mx * f);
                    }
                }
                (best.1, best.2)
            }
        })
    }

    /// The scale of a range [mn, mx] holding 0, before rounding to the scale format.
    fn raw_scale(&self, mn: f64, mx: f64) -> f64 {
        let qhi = f64::from(self.code_range().1);
        match self.symmetry {
            Symmetry::Symmetric { .. } => mn.abs().max(mx.abs()) / qhi,
            Symmetry::Asymmetric => (mx - mn) / qhi,
        }
    }

    /// The zero point of a range starting at `mn` with stored scale `s` (0 for symmetric schemes).
    fn zero_point(&self, mn: f64, s: f64) -> i32 {
        let (qlo, qhi) = self.code_range();
        if self.symmetry == Symmetry::Asymmetric && s > 0.0 {
            round_to_integer(-mn / s, RoundingMode::NearestEven, 0, 0).clamp(qlo as f64, qhi as f64) as i32
        } else {
            0
        }
    }

    /// The stored scale and the zero point of a range [mn, mx] holding 0.
    fn scale_zero(&self, mn: f64, mx: f64) -> Result<(f64, i32)> {
        let raw = self.raw_scale(mn, mx);
        // An all-zero block keeps scale 0 (the smallest scale in formats without zero, e8m0); a scale past the
        // scale format's range saturates to its max.
        let sat = self.scale_format.clone().with_saturation(true);
        let s = if raw == 0.0 {
            empty_block_scale(&self.scale_format)
        } else {
            round_value(&sat, &Rounding::new(RoundingMode::NearestEven), raw, 0)?
        };
        Ok((s, self.zero_point(mn, s)))
    }

    /// The code of v with scale s and zero point z (infinities clamp; scale 0 gives z).
    fn code(&self, v: f64, s: f64, z: i32, mode: RoundingMode, seed: u64, index: u64) -> i32 {
        if s == 0.0 {
            return z;
        }
        let (qlo, qhi) = self.code_range();
        let q = if v.is_finite() { round_to_integer(v / s, mode, seed, index) + z as f64 } else { v };
        q.clamp(qlo as f64, qhi as f64) as i32
    }
}

impl QuantizedInt {
    /// (code - zero point) * scale for every element, in C order.
    pub fn dequantize<T: Element>(&self, out: &mut [T]) -> Result<()> {
        let layout = Layout::new(&self.shape, self.axis, self.scheme.granularity)?;
        check_len(self.codes.len(), out.len())?;
        for (i, (o, &c)) in out.iter_mut().zip(&self.codes).enumerate() {
            let b = layout.block(i);
            *o = T::from_f64((c - self.zeros[b]) as f64 * self.scales[b]);
        }
        Ok(())
    }

    /// Storage in bits per element: the codes plus every scale (in its format) and, for asymmetric schemes,
    /// every zero point (b bits each).
    pub fn bits_per_element(&self) -> f64 {
        let n = self.codes.len().max(1) as f64;
        let per_block = self.scheme.scale_format.bits() as f64
            + if self.scheme.symmetry == Symmetry::Asymmetric { self.scheme.bits as f64 } else { 0.0 };
        self.scheme.bits as f64 + per_block * self.scales.len() as f64 / n
    }
}

impl std::fmt::Display for AffineInt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "int{}", self.bits)?;
        match self.granularity {
            Granularity::Tensor => f.write_str(":tensor")?,
            Granularity::Channel => f.write_str(":channel")?,
            Granularity::Group(g) => write!(f, ":g{g}")?,
        }
        match self.symmetry {
            Symmetry::Symmetric { full_range: false } => f.write_str(":sym")?,
            Symmetry::Symmetric { full_range: true } => f.write_str(":sym:full")?,
            Symmetry::Asymmetric => f.write_str(":asym")?,
        }
        if self.scale_format.name() != "float32" {
            write!(f, ":scale={}", self.scale_format.name())?;
        }
        match self.choice {
            ScaleChoice::MinMax => {}
            ScaleChoice::Percentile(p) => write!(f, ":pct{p}")?,
            ScaleChoice::MseSearch => f.write_str(":mse")?,
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{nearest_even_codes, round_ties_even_fast};

    #[test]
    fn fast_rounding_equals_round_ties_even_below_2_pow_51() {
        let mut cases: Vec<f64> = (0..=u16::MAX).map(|b| f64::from(half_bits_to_f32(b))).collect();
        for k in -4000..=4000 {
            let h = f64::from(k) / 2.0; // every half-integer and integer in [-2000, 2000] and their neighbours
            cases.extend([h, h.next_up(), h.next_down()]);
        }
        for e in 0..51 {
            let p = 2f64.powi(e);
            cases.extend([p + 0.5, -p - 0.5, p * 1.5 + 0.5, (2f64.powi(51) - 0.5).min(p * 3.0 + 0.5)]);
        }
        for q in cases.into_iter().filter(|q| q.abs() < 2f64.powi(51)) {
            assert_eq!(round_ties_even_fast(q), q.round_ties_even() + 0.0, "{q}");
            // (+0.0: the sign of zero may differ)
        }
        // Beyond: a large magnitude of the right sign, which the callers clamp.
        for q in [2f64.powi(51), 1e300, f64::INFINITY] {
            assert!(round_ties_even_fast(q) >= 2f64.powi(50) && round_ties_even_fast(-q) <= -2f64.powi(50));
        }
    }

    #[test]
    fn codes_by_product_equal_codes_by_division() {
        // nearest_even_codes' multiplication shortcut against the definition, clamp(round_ties_even(x / s) +
        // z): quotients at and next to half-integers (where a product and a quotient could round apart), for
        // scales that are not powers of two, and scales whose reciprocal is subnormal or infinite.
        let scales = [0.1, 1.0 / 3.0, 0.7, 3.0e-3, 1.37e-6, 1.7e-300, 5e-324, 1e308, 1.0, 6.0];
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        for &s in &scales {
            let mut xs: Vec<f64> = Vec::new();
            for k in -40..=40 {
                for v in [(f64::from(k) + 0.5) * s, f64::from(k) * s] {
                    xs.extend([v, v.next_up(), v.next_down(), v.next_up().next_up(), v.next_down().next_down()]);
                }
            }
            for _ in 0..500 {
                rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                xs.push(((rng >> 11) as f64 / (1u64 << 53) as f64 - 0.5) * 30.0 * s);
            }
            xs.extend([f64::INFINITY, f64::NEG_INFINITY, 0.0, -0.0, 1e300, -1e300]);
            xs.retain(|v| !v.is_nan());
            let x32: Vec<f32> = xs.iter().map(|&v| v as f32).collect();
            for (z, lo, hi) in [(0, -8, 7), (0, -127, 127), (9, 0, 15), (3, 0, 255)] {
                let want =
                    |v: f64| ((v / s).round_ties_even() + f64::from(z)).clamp(f64::from(lo), f64::from(hi)) as i32;
                let mut got = vec![0; xs.len()];
                nearest_even_codes(&xs, s, z, lo, hi, &mut got);
                for (v, c) in xs.iter().zip(&got) {
                    assert_eq!(*c, want(*v), "float64 {v:e} / {s:e}, zero point {z}");
                }
                let mut got = vec![0; x32.len()];
                nearest_even_codes(&x32, s, z, lo, hi, &mut got);
                for (v, c) in x32.iter().zip(&got) {
                    assert_eq!(*c, want(f64::from(*v)), "float32 {v:e} / {s:e}, zero point {z}");
                }
            }
        }
    }

    /// The float16 value of a bit pattern (NaN and inf included), without a dependency.
    fn half_bits_to_f32(b: u16) -> f32 {
        let (s, e, m) = (u32::from(b >> 15), u32::from((b >> 10) & 0x1f), u32::from(b & 0x3ff));
        let mag = match e {
            0 => m as f32 * 2f32.powi(-24),
            31 => {
                if m == 0 {
                    f32::INFINITY
                } else {
                    f32::NAN
                }
            }
            _ => f32::from_bits(((e + 112) << 23) | (m << 13)),
        };
        if s == 1 {
            -mag
        } else {
            mag
        }
    }
}
