//! NVFP4 (FORMATS.md §4): e2m1 elements in blocks of 16, each block scaled by amax / 6 stored as e4m3fn,
//! optionally under one float32 tensor scale amax_tensor / (448 * 6) that divides the block scales before their
//! e4m3 rounding.

use super::affine::round_ties_even_fast;
use super::keep_first;
use super::layout::{finite_amax, with_scratch, Codes, Layout, Span};
use super::Granularity;
use crate::error::{Error, Result};
use crate::round::{check_len, isa_dispatched, Encoder};
use crate::{round_value, Element, Format, Rounding, RoundingMode, Typed};
use rayon::prelude::*;
use std::ops::Range;

/// The e4m3fn NaN code, used as the scale of a block holding NaN or an infinity (e2m1 has neither).
const SCALE_NAN: u8 = 0x7F;

/// The NVFP4 scheme: block size (16 in the format; other sizes as an option) and whether a float32 tensor
/// scale is used.
///
/// # Examples
/// ```
/// use lowp::quant::Nvfp4;
/// use lowp::Rounding;
///
/// let s = Nvfp4::parse("nvfp4")?; // blocks of 16, e4m3fn block scales, a float32 tensor scale
/// let x: Vec<f32> = (0..16).map(|i| i as f32 * 0.75).collect(); // amax 11.25
/// let q = s.quantize(&Rounding::default(), &x, &[16], 0)?;
/// assert_eq!(q.tensor_scale, (11.25f64 / 2688.0) as f32); // amax / (448 * 6)
/// let mut y = vec![0.0f32; 16];
/// q.dequantize(&mut y)?;
/// assert_eq!(y[15], 11.25); // the block's amax lands on e2m1's 6 times the stored scale
/// assert_eq!(q.bits_per_element(), 4.5 + 32.0 / 16.0);
/// # Ok::<(), lowp::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nvfp4 {
    block: usize,
    tensor_scale: bool,
}

/// A tensor quantized by [`Nvfp4`]: e2m1 codes (one byte each, C order), e4m3fn block scale codes (0x7F = NaN
/// block), and the float32 tensor scale (1 when unused).
#[derive(Clone, Debug, PartialEq)]
pub struct Nvfp4Quantized {
    /// The scheme.
    pub scheme: Nvfp4,
    /// The tensor's shape.
    pub shape: Vec<usize>,
    /// The axis blocks run along.
    pub axis: usize,
    /// e2m1 codes, C order.
    pub codes: Vec<u8>,
    /// e4m3fn block scale codes, in block order.
    pub scales: Vec<u8>,
    /// The tensor scale (1.0 without one).
    pub tensor_scale: f32,
}

impl Nvfp4 {
    /// NVFP4 with blocks of `block` elements, with or without the tensor scale.
    pub fn new(block: usize, tensor_scale: bool) -> Result<Nvfp4> {
        if block == 0 {
            return Err(Error::InvalidFormat("NVFP4 block size 0: blocks need at least one element".into()));
        }
        Ok(Nvfp4 { block, tensor_scale })
    }

    /// `nvfp4` (blocks of 16 with a tensor scale), then optionally `:b<N>` and `:notensor`.
    pub fn parse(spec: &str) -> Result<Nvfp4> {
        let bad = |why: String| {
            Error::InvalidFormat(format!("NVFP4 scheme `{spec}`: {why}. Accepted: nvfp4[:b<block>][:notensor]"))
        };
        let lower = spec.trim().to_ascii_lowercase();
        let mut parts = lower.split(':');
        if parts.next() != Some("nvfp4") {
            return Err(bad("it must start with nvfp4".into()));
        }
        let (mut block, mut tensor) = (16, true);
        for p in parts {
            match p {
                "notensor" => tensor = false,
                "tensor" => tensor = true,
                _ => match p.strip_prefix('b').and_then(|b| b.parse::<usize>().ok()) {
                    Some(b) => block = b,
                    None => return Err(bad(format!("unknown part `{p}`"))),
                },
            }
        }
        Nvfp4::new(block, tensor)
    }

    /// Block size.
    pub fn block(&self) -> usize {
        self.block
    }
    /// Whether a float32 tensor scale is used.
    pub fn uses_tensor_scale(&self) -> bool {
        self.tensor_scale
    }

    /// Quantizes `x` of `shape` (C order) in blocks along `axis` (the last block of a row may be shorter).
    ///
    /// Tensor scale t = amax / (448 * 6) as float32 (1 when unused or when the tensor is all zero). Block
    /// scale s = (amax_block / 6) / t rounded to e4m3fn (nearest even, saturating). Elements x / (s * t)
    /// rounded to e2m1 under `cfg`, saturating; a block whose stored scale is 0 stores zeros. e2m1 has no NaN
    /// or infinity: a block holding one gets the NaN scale code (0x7F) and decodes to NaN. amax values are over
    /// finite elements.
    pub fn quantize<T: Element>(
        &self,
        cfg: &Rounding,
        x: &[T],
        shape: &[usize],
        axis: usize,
    ) -> Result<Nvfp4Quantized> {
        let (codes, scales, tensor_scale) =
            self.quantize_with(cfg, x, shape, axis, None)?.expect("unpacked always runs");
        let codes = codes.each();
        Ok(Nvfp4Quantized { scheme: self.clone(), shape: shape.to_vec(), axis, codes, scales, tensor_scale })
    }

    /// [`quantize`](Self::quantize) straight into the packed codes, with the scale codes and the tensor
    /// scale, for the layouts with the batch path (None otherwise): what
    /// [`QuantizedTensor::quantize`](super::QuantizedTensor::quantize) uses.
    #[allow(clippy::type_complexity)]
    pub(crate) fn quantize_packed<T: Element>(
        &self,
        cfg: &Rounding,
        x: &[T],
        shape: &[usize],
        axis: usize,
    ) -> Result<Option<(Vec<u8>, Vec<u8>, f32)>> {
        let run = self.quantize_with(cfg, x, shape, axis, Some(4))?;
        Ok(run.and_then(|(codes, scales, t)| Some((codes.packed()?, scales, t))))
    }

    /// [`quantize`](Self::quantize), with the codes packed `pack` bits to a value when asked (None when the
    /// layout does not allow it).
    #[allow(clippy::type_complexity)]
    fn quantize_with<T: Element>(
        &self,
        cfg: &Rounding,
        x: &[T],
        shape: &[usize],
        axis: usize,
        pack: Option<u32>,
    ) -> Result<Option<(Codes<u8>, Vec<u8>, f32)>> {
        super::check_no_flip(cfg)?;
        let layout = Layout::new(shape, axis, Granularity::Group(self.block))?;
        check_len(layout.len(), x.len())?;
        if pack.is_some_and(|bits| !layout.packs(bits)) {
            return Ok(None); // before any work: the caller takes the unpacked route
        }
        let e4m3 = Format::parse("float8_e4m3fn")?.with_saturation(true);
        let e2m1 = Format::parse("float4_e2m1fn")?.with_saturation(true); // as it does anyway: no inf or NaN
        let t = if self.tensor_scale { tensor_scale(finite_amax_par(x)) } else { 1.0 };
        // One decode per code.
        let values: Vec<f64> = (0..256).map(|c| e4m3.decode_code(c)).collect();
        // Block scales: (amax / 6) / t rounded to e4m3fn in one bulk encode (the same rounding as one value at
        // a time); NaN blocks get the NaN code, and their elements scale 0 (stored as zeros).
        let block_scales = |amax: &[f64], special: &[bool], out: &mut [u8]| -> Result<()> {
            let raw: Vec<f64> =
                amax.iter().zip(special).map(|(&a, &s)| if s { 0.0 } else { a / 6.0 / f64::from(t) }).collect();
            crate::encode(&e4m3, &Rounding::new(RoundingMode::NearestEven), &raw, out)?;
            special.iter().zip(out).filter(|(&s, _)| s).for_each(|(_, c)| *c = SCALE_NAN);
            Ok(())
        };
        let scale_of = |code: u8| if code == SCALE_NAN { 0.0 } else { values[usize::from(code)] };
        let mut scales = vec![0u8; layout.blocks()];
        let codes = if layout.contiguous() {
            // Batches of blocks, each in one visit: the blocks' amax and scales, each element's quotient by its
            // scale, then one bulk encode: the same roundings, with the same random draws, as the
            // element-by-element loop below.
            let encoder = Encoder::<f64>::new(&e2m1, cfg)?;
            let enc32 = if cfg.mode.is_stochastic() { None } else { Some(Encoder::<f32>::new(&e2m1, cfg)?) };
            let grid = e2m1.min_subnormal() / 2.0; // e2m1's values and rounding boundaries are multiples of it
            let failed = std::sync::Mutex::new(None);
            let work = |b0: usize, i0: usize, codes: &mut [u8], scales: &mut [u8]| {
                let ranges: Vec<Range<usize>> = layout.block_ranges(b0, scales.len()).collect();
                let (amax, special): (Vec<f64>, Vec<bool>) =
                    ranges.iter().map(|r| finite_amax(&x[r.clone()], |_| true)).unzip(); // e2m1: no NaN, no inf
                if let Err(e) = block_scales(&amax, &special, scales) {
                    return keep_first(&failed, b0, e);
                }
                // Each block's divisor s * t (exact: 4 + 24 bits); blocks with scale 0 or NaN store zeros.
                let spans: Vec<Span> = ranges
                    .iter()
                    .zip(scales.iter())
                    .map(|(r, &code)| Span { at: r.start - i0, len: r.len(), by: scale_of(code) * f64::from(t) })
                    .filter(|sp| sp.by != 0.0)
                    .collect();
                let xb = &x[i0..i0 + codes.len()];
                if let (Some(enc), Typed::F32(xf)) = (&enc32, T::typed(xb)) {
                    let mut scaled = vec![0.0f32; codes.len()];
                    quotients_f32(xf, &spans, grid, &mut scaled);
                    return enc.encode_at(i0 as u64, &scaled, codes);
                }
                with_scratch(codes.len(), |scaled| {
                    quotients(xb, &spans, grid, !cfg.mode.is_stochastic(), scaled);
                    encoder.encode_at(i0 as u64, scaled, codes);
                });
            };
            let codes = layout.run_batches(pack, &mut scales, work, u64::from);
            if let Some((_, e)) = failed.into_inner().expect("no panic while held") {
                return Err(e);
            }
            match codes {
                Some(codes) => codes,
                None => return Ok(None),
            }
        } else {
            let (amax, special) = layout.block_amax(x, |_| true);
            block_scales(&amax, &special, &mut scales)?;
            Codes::Each(
                x.iter()
                    .enumerate()
                    .map(|(i, v)| {
                        let s = scale_of(scales[layout.block(i)]);
                        if s == 0.0 {
                            return Ok(0);
                        }
                        let q = v.to_f64() / (s * f64::from(t)); // the product is exact: 4 + 24 bits
                        let r = round_value(&e2m1, cfg, q, i as u64)?;
                        Ok(crate::codes::code_of(&e2m1, r).unwrap_or(0) as u8)
                    })
                    .collect::<Result<Vec<u8>>>()?,
            )
        };
        Ok(Some((codes, scales, t)))
    }
}

isa_dispatched! {
/// For float32 data in deterministic modes: `out[i]` = a float32 stand-in for the float64 quotient x[i] / d
/// that every deterministic rounding to a format whose values and rounding boundaries are all multiples of
/// `grid` (e2m1: 0.25) rounds alike: one in the same cell of that grid (the same multiple, or strictly between
/// the same two). Those roundings depend on nothing else, saturation included (every quotient beyond the
/// largest value goes to it). Compiled per instruction set, one call per batch over its spans.
///
/// Usually the stand-in is the product x[i] * (1 / d) rounded to float32: the product is within 3 units of
/// the 53rd bit of the quotient, float32 moves it by at most 2^-24 of itself, so when it is further than
/// 2^-20 of its magnitude from every multiple of `grid` (and within float32's normal range) it stays in the
/// quotient's cell. Otherwise the quotient is computed, and the stand-in is the quotient itself where it is
/// a multiple of `grid`, else the middle of its cell.
fn quotients_f32(x: &[f32], spans: &[Span], grid: f64, out: &mut [f32]) {
    for sp in spans {
        let r = sp.at..sp.at + sp.len;
        quotients_f32_in(&x[r.clone()], sp.by, grid, &mut out[r]);
    }
}
}

/// [`quotients_f32`] of one span.
#[inline(always)]
fn quotients_f32_in(x: &[f32], d: f64, grid: f64, out: &mut [f32]) {
    const LANES: usize = 16;
    const EXACT: f64 = 16777216.0; // 2^24: multiples of the grid below it are float32 values
    let r = 1.0 / d;
    let per_grid = 1.0 / grid; // a power of two: exact
    let by_product = r.is_normal();
    let fast = |v: f32| -> (f32, bool) {
        const MARGIN: f64 = 1.0 / 1048576.0; // 2^-20
        let q = f64::from(v) * r;
        (q as f32, by_product & inside_cell(q * per_grid, MARGIN, EXACT))
    };
    let slow = |xs: &[f32], os: &mut [f32]| {
        for (&v, o) in xs.iter().zip(os.iter_mut()) {
            let (q, ok) = fast(v);
            *o = if ok {
                q
            } else {
                let q = f64::from(v) / d;
                let g = q * per_grid;
                // A multiple of the grid (zero included, with its sign) is exact in float32; so far beyond the
                // format's largest value, the float32 rounding stays beyond it.
                if g.abs() >= EXACT || g == g.floor() {
                    q as f32
                } else {
                    ((g.floor() + 0.5) * grid) as f32 // the middle of its cell: exact
                }
            };
        }
    };
    let mut xs = x.chunks_exact(LANES);
    let mut os = out.chunks_exact_mut(LANES);
    for (xs, os) in (&mut xs).zip(&mut os) {
        let mut all = true;
        for j in 0..LANES {
            let (q, ok) = fast(xs[j]);
            os[j] = q;
            all &= ok;
        }
        if !all {
            slow(xs, os);
        }
    }
    slow(xs.remainder(), os.into_remainder());
}

/// Whether `g`, a product x * (1 / d) over the grid spacing, lies safely inside a cell of the grid of
/// integers: further than `margin` of its magnitude from every integer, above 2^-100 in magnitude (the
/// product's error bound is relative: it needs the normal range, far above the subnormals) and below `upper`
/// (at most 2^48: round_ties_even_fast is exact below it). False for NaN.
#[inline(always)]
fn inside_cell(g: f64, margin: f64, upper: f64) -> bool {
    const TINY: f64 = 1.0 / 1267650600228229401496703205376.0; // 2^-100
    let from_grid = (g - round_ties_even_fast(g)).abs();
    (from_grid > g.abs() * margin) & (g.abs() < upper) & (g.abs() > TINY)
}

/// The tensor scale of a tensor whose largest finite magnitude is `amax`: amax / (448 * 6) to the nearest
/// float32, kept within float32's positive finite range; 1 for a tensor with no nonzero finite value.
fn tensor_scale(amax: f64) -> f32 {
    if amax == 0.0 {
        return 1.0;
    }
    let t = (amax / (448.0 * 6.0)) as f32; // nearest float32
    if t == 0.0 {
        f32::from_bits(1) // below float32's range: its smallest positive value
    } else if t.is_infinite() {
        f32::MAX // float64 data beyond 2688 * float32's max: the largest finite scale (blocks saturate)
    } else {
        t
    }
}

/// The largest finite magnitude of `x` (0 when there is none), in parallel over chunks.
fn finite_amax_par<T: Element>(x: &[T]) -> f64 {
    x.par_chunks(1 << 16).map(|c| finite_amax(c, |_| false).0).reduce(|| 0.0, f64::max)
}

isa_dispatched! {
/// `out[i]` = x[i] / d in float64, or (with `shortcut`) a value that every deterministic rounding to a format
/// whose values and rounding boundaries are all multiples of `grid` rounds alike; compiled per instruction set.
///
/// The shortcut takes x[i] * (1 / d), a multiplication instead of a division (several times the
/// throughput). It is within 3 units of the 53rd bit of the float64 quotient (1 / d, the product and the
/// quotient each round once), so when it is further than 2^-50 of its magnitude from every multiple of
/// `grid`, the quotient lies strictly between the same two multiples: both are inexact and round to the same
/// value in every deterministic mode. Lanes of 16 with an element that is not, or whose product is below
/// 2^-100 times the grid (near the subnormals the bound does not hold), or with 1 / d not a normal number, are
/// redone with the division. Stochastic modes use the fraction itself: they need the quotient.
fn quotients<T: Element>(x: &[T], spans: &[Span], grid: f64, shortcut: bool, out: &mut [f64]) {
    for sp in spans {
        quotients_in(&x[sp.at..sp.at + sp.len], sp.by, grid, shortcut, &mut out[sp.at..sp.at + sp.len]);
    }
}
}

/// [`quotients`] of one span.
#[inline(always)]
fn quotients_in<T: Element>(x: &[T], d: f64, grid: f64, shortcut: bool, out: &mut [f64]) {
    const MARGIN: f64 = 1.0 / 1125899906842624.0; // 2^-50
    const BIG: f64 = 281474976710656.0; // 2^48: below it, round_ties_even_fast is exact
    const LANES: usize = 16;
    let r = 1.0 / d;
    let per_grid = 1.0 / grid; // a power of two: exact
    let by_product = shortcut && r.is_normal();
    let mut xs = x.chunks_exact(LANES);
    let mut os = out.chunks_exact_mut(LANES);
    for (xs, os) in (&mut xs).zip(&mut os) {
        let mut near = !by_product;
        for j in 0..LANES {
            let q = xs[j].to_f64() * r;
            near |= !inside_cell(q * per_grid, MARGIN, BIG);
            os[j] = q;
        }
        if near {
            for j in 0..LANES {
                os[j] = xs[j].to_f64() / d;
            }
        }
    }
    for (o, v) in os.into_remainder().iter_mut().zip(xs.remainder()) {
        *o = v.to_f64() / d;
    }
}

impl Nvfp4Quantized {
    /// e2m1 value * block scale * tensor scale for every element (NaN in NaN-scaled blocks), C order.
    pub fn dequantize<T: Element>(&self, out: &mut [T]) -> Result<()> {
        let layout = Layout::new(&self.shape, self.axis, Granularity::Group(self.scheme.block))?;
        check_len(self.codes.len(), out.len())?;
        let e4m3 = Format::parse("float8_e4m3fn")?;
        let e2m1 = Format::parse("float4_e2m1fn")?;
        for (i, (o, &c)) in out.iter_mut().zip(&self.codes).enumerate() {
            let s = e4m3.decode_code(u64::from(self.scales[layout.block(i)]));
            *o = T::from_f64(e2m1.decode_code(u64::from(c)) * s * f64::from(self.tensor_scale));
        }
        Ok(())
    }

    /// Storage in bits per element: 4 per code, 8 per block scale, 32 for the tensor scale when used.
    pub fn bits_per_element(&self) -> f64 {
        let n = self.codes.len().max(1) as f64;
        let tensor = if self.scheme.tensor_scale { 32.0 } else { 0.0 };
        4.0 + (8.0 * self.scales.len() as f64 + tensor) / n
    }
}

impl std::fmt::Display for Nvfp4 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "nvfp4:b{}", self.block)?;
        if !self.tensor_scale {
            f.write_str(":notensor")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{quotients, quotients_f32};
    use crate::quant::layout::Span;

    /// The interval of the grid of multiples of `grid` that `q` lies in: (k, true) for q = k * grid,
    /// (k, false) for k * grid < q < (k + 1) * grid.
    fn cell(q: f64, grid: f64) -> (f64, bool) {
        let k = (q / grid).floor(); // exact for the small multiples used here
        (k, q == k * grid)
    }

    #[test]
    fn shortcut_quotients_stay_in_the_quotients_grid_cell() {
        // Every deterministic rounding to e2m1 depends only on the cell of the grid of multiples of 0.25 that
        // the value lies in; the shortcuts must keep the float64 quotient's cell. Subnormal dividends too
        // (where a product and a quotient can round to 2^-1074 and 0).
        let grid = 0.25;
        let divisors = [0.1, 1.0 / 3.0, 448.0 * 1.1920929e-7, 1.375 * 3.7252903e-9, 0.875, 6.0 * 0.3, 10.0, 448.0];
        for &d in &divisors {
            let mut x64: Vec<f64> = Vec::new();
            for k in -40..=40 {
                let mut v = f64::from(k) * grid * d;
                for _ in 0..6 {
                    v = v.next_down();
                }
                for _ in 0..13 {
                    x64.push(v);
                    v = v.next_up();
                }
            }
            // Subnormals, in runs of 16 equal values (a run is one chunk of the kernel: no other lane sends it
            // to the division).
            let pad = 16 - x64.len() % 16;
            x64.extend(std::iter::repeat_n(1.0, pad));
            x64.extend((1..40).flat_map(|k| [f64::from_bits(k); 16].into_iter().chain([-f64::from_bits(k * 7); 16])));
            x64.extend([1e-310, -3e-320, 1e-300]);
            let spans = [Span { at: 0, len: x64.len(), by: d }];
            let mut out = vec![0.0; x64.len()];
            quotients(&x64, &spans, grid, true, &mut out);
            for (v, o) in x64.iter().zip(&out) {
                assert_eq!(cell(*o, grid), cell(v / d, grid), "float64 {v:e} / {d:e}");
            }
            let x32: Vec<f32> = (-40..=40)
                .flat_map(|k| {
                    let v = (f64::from(k) * grid * d) as f32;
                    [v.next_down().next_down(), v.next_down(), v, v.next_up(), v.next_up().next_up()]
                })
                .collect();
            let spans = [Span { at: 0, len: x32.len(), by: d }];
            let mut out = vec![0.0f32; x32.len()];
            quotients_f32(&x32, &spans, grid, &mut out);
            for (v, o) in x32.iter().zip(&out) {
                let q = f64::from(*v) / d;
                assert_eq!(cell(f64::from(*o), grid), cell(q, grid), "float32 {v:e} / {d:e}");
            }
        }
    }
}
