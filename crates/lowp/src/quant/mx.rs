//! OCP Microscaling (MX v1.0, FORMATS.md §4): blocks of 32 elements along an axis share an E8M0 scale
//! X = 2^e; each element stores x / X in a small float format (or, for MXINT8, 1.6 fixed point).

use super::fixed::{FixedPoint, Overflow};
use super::layout::{finite_amax, with_scratch, Codes, Layout, Span};
use super::{exponent_of, Granularity};
use crate::error::{Error, Result};
use crate::format::pow2;
use crate::round::{check_len, isa_dispatched, Encoder};
use crate::Typed;
use crate::{round_value, Element, Format, Rounding};
use std::ops::Range;

/// How the shared exponent follows from the block's largest magnitude amax.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ScaleRule {
    /// The spec's rule: e = floor(log2(amax)) - emax_elem. Elements near the top of the binade clamp to the
    /// element format's max.
    #[default]
    Floor,
    /// The smallest e with amax / 2^e <= the element format's max: nothing clamps, at the price of one binade
    /// of resolution for some blocks.
    Ceil,
}

/// The element type of an MX scheme.
#[derive(Clone, Debug, PartialEq)]
pub enum MxElement {
    /// A float format (e5m2, e4m3fn, e3m2fn, e2m3fn, e2m1fn), rounded with saturation and subnormals.
    Float(Format),
    /// MXINT8: 8-bit two's complement read as 1.6 fixed point, [-2, 2 - 2^-6].
    Int8,
}

/// An MX scheme: element type, block size, scale rule.
///
/// # Examples
/// ```
/// use lowp::quant::Mx;
/// use lowp::Rounding;
///
/// let mx = Mx::parse("mxfp4")?; // e2m1 elements, blocks of 32, E8M0 scales by the floor rule
/// let mut x = vec![0.0f32; 32];
/// x[0] = 5.0; // amax 5: floor(log2 5) - 2 = 0, so X = 1
/// x[1] = -0.3;
/// let q = mx.quantize(&Rounding::default(), &x, &[32], 0)?;
/// assert_eq!(q.scales, [127]); // E8M0 code of 2^0
/// let mut y = vec![0.0f32; 32];
/// q.dequantize(&mut y)?;
/// assert_eq!(y[..2], [4.0, -0.5]); // 5 is a tie between 4 and 6: even; -0.3 -> -0.5
/// assert_eq!(q.bits_per_element(), 4.25);
/// # Ok::<(), lowp::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Mx {
    element: MxElement,
    block: usize,
    rule: ScaleRule,
}

/// A tensor quantized by an [`Mx`] scheme: one element code per element (C order; the format's bit pattern,
/// or the two's complement byte for MXINT8) and one E8M0 scale code per block (0xFF = NaN).
#[derive(Clone, Debug, PartialEq)]
pub struct MxQuantized {
    /// The scheme.
    pub scheme: Mx,
    /// The tensor's shape.
    pub shape: Vec<usize>,
    /// The axis blocks run along.
    pub axis: usize,
    /// Element codes, C order.
    pub codes: Vec<u8>,
    /// E8M0 scale codes (biased exponents, 127 = 2^0; 0xFF = NaN), in block order.
    pub scales: Vec<u8>,
}

const E8M0_NAN: u8 = 0xFF;

impl Mx {
    /// A scheme with `element` values in blocks of `block` (>= 1).
    pub fn new(element: MxElement, block: usize, rule: ScaleRule) -> Result<Mx> {
        if block == 0 {
            return Err(Error::InvalidFormat("MX block size 0: blocks need at least one element".into()));
        }
        if let MxElement::Float(f) = &element {
            if f.bits() > 8 || !f.signed() || !f.has_zero() {
                return Err(Error::InvalidFormat(format!(
                    "{}: MX elements are signed float formats of at most 8 bits with a zero",
                    f.name()
                )));
            }
        }
        Ok(Mx { element, block, rule })
    }

    /// `mxfp8_e4m3` (or `mxfp8`), `mxfp8_e5m2`, `mxfp6_e3m2` (or `mxfp6`), `mxfp6_e2m3`, `mxfp4`, `mxint8`,
    /// optionally followed by `:b<N>` (block size, default 32) and `:floor` (default) or `:ceil`.
    pub fn parse(spec: &str) -> Result<Mx> {
        let bad = |why: String| {
            Error::InvalidFormat(format!(
                "MX scheme `{spec}`: {why}. Accepted: mxfp8_e4m3 (mxfp8), mxfp8_e5m2, mxfp6_e3m2 (mxfp6), mxfp6_e2m3, \
                 mxfp4, mxint8, then optionally :b<block> and :floor or :ceil"
            ))
        };
        let lower = spec.trim().to_ascii_lowercase();
        let mut parts = lower.split(':');
        let name = parts.next().unwrap_or_default();
        let element = match name {
            "mxfp8" | "mxfp8_e4m3" => MxElement::Float(Format::parse("float8_e4m3fn")?),
            "mxfp8_e5m2" => MxElement::Float(Format::parse("float8_e5m2")?),
            "mxfp6" | "mxfp6_e3m2" => MxElement::Float(Format::parse("float6_e3m2fn")?),
            "mxfp6_e2m3" => MxElement::Float(Format::parse("float6_e2m3fn")?),
            "mxfp4" | "mxfp4_e2m1" => MxElement::Float(Format::parse("float4_e2m1fn")?),
            "mxint8" => MxElement::Int8,
            other => return Err(bad(format!("unknown element type `{other}`"))),
        };
        let (mut block, mut rule) = (32, ScaleRule::Floor);
        for p in parts {
            match p {
                "floor" => rule = ScaleRule::Floor,
                "ceil" => rule = ScaleRule::Ceil,
                _ => match p.strip_prefix('b').and_then(|b| b.parse::<usize>().ok()) {
                    Some(b) => block = b,
                    None => return Err(bad(format!("unknown part `{p}`"))),
                },
            }
        }
        Mx::new(element, block, rule)
    }

    /// Block size.
    pub fn block(&self) -> usize {
        self.block
    }
    /// Scale rule.
    pub fn rule(&self) -> ScaleRule {
        self.rule
    }
    /// Element type.
    pub fn element(&self) -> &MxElement {
        &self.element
    }
    /// Bits per element code.
    pub fn element_bits(&self) -> u32 {
        match &self.element {
            MxElement::Float(f) => f.bits(),
            MxElement::Int8 => 8,
        }
    }

    /// emax of the element type: floor(log2(max)) (e5m2 15, e4m3fn 8, e3m2 4, e2m3 2, e2m1 2, int8 0).
    #[inline]
    pub fn emax_elem(&self) -> i32 {
        match &self.element {
            MxElement::Float(f) => f.emax(),
            MxElement::Int8 => 0,
        }
    }

    fn elem_max(&self) -> f64 {
        match &self.element {
            MxElement::Float(f) => f.max(),
            MxElement::Int8 => 127.0 / 64.0,
        }
    }

    /// The shared exponent of a block whose largest finite magnitude is `amax`, clamped to [-127, 127].
    #[inline]
    pub fn shared_exponent(&self, amax: f64) -> i32 {
        if amax == 0.0 || !amax.is_finite() {
            return -127;
        }
        let mut e = exponent_of(amax) - self.emax_elem();
        if self.rule == ScaleRule::Ceil && amax > self.elem_max() * pow2(e) {
            e += 1;
        }
        e.clamp(-127, 127)
    }

    /// Quantizes `x` of `shape` (C order) in blocks along `axis` (the last block may be shorter).
    ///
    /// Elements are x / 2^e rounded to the element type under `cfg` (saturating, subnormals on). NaN and
    /// infinities: the element format's NaN / inf code where it has one (e5m2 keeps ±inf and NaN, e4m3fn
    /// NaN); otherwise the block's scale becomes NaN (0xFF), which makes every element of the block NaN, as
    /// the spec defines. amax is taken over the finite values.
    pub fn quantize<T: Element>(&self, cfg: &Rounding, x: &[T], shape: &[usize], axis: usize) -> Result<MxQuantized> {
        super::check_no_flip(cfg)?;
        let layout = Layout::new(shape, axis, Granularity::Group(self.block))?;
        check_len(layout.len(), x.len())?;
        if let (MxElement::Float(f), true) = (&self.element, layout.contiguous()) {
            let (codes, scales) = self.quantize_batches(f, &layout, cfg, x, None)?.expect("unpacked always runs");
            let codes = codes.each();
            return Ok(MxQuantized { scheme: self.clone(), shape: shape.to_vec(), axis, codes, scales });
        }
        let (amax, special) = layout.block_amax(x, |v| !self.holds(v));
        let exps: Vec<i32> = amax.iter().map(|&a| self.shared_exponent(a)).collect();
        let scales: Vec<u8> =
            exps.iter().zip(&special).map(|(&e, &s)| if s { E8M0_NAN } else { (e + 127) as u8 }).collect();
        let mut codes = vec![0u8; x.len()];
        match &self.element {
            MxElement::Float(f) => {
                let f = f.clone().with_saturation(true).with_subnormals(true).with_propagate_inf(true);
                for (i, (c, v)) in codes.iter_mut().zip(x).enumerate() {
                    let b = layout.block(i);
                    if scales[b] == E8M0_NAN {
                        continue; // the whole block decodes to NaN
                    }
                    let scaled = v.to_f64() * pow2(-exps[b]);
                    let r = round_value(&f, cfg, scaled, i as u64)?;
                    *c = crate::codes::code_of(&f, r).unwrap_or(0) as u8;
                }
            }
            MxElement::Int8 => {
                let q = FixedPoint::new(2, 6, Overflow::Saturate)?;
                for (i, (c, v)) in codes.iter_mut().zip(x).enumerate() {
                    let b = layout.block(i);
                    if scales[b] == E8M0_NAN {
                        continue;
                    }
                    *c = q.code_of(cfg, v.to_f64() * pow2(-exps[b]), i)? as i8 as u8;
                }
            }
        }
        Ok(MxQuantized { scheme: self.clone(), shape: shape.to_vec(), axis, codes, scales })
    }

    /// The fast path of [`quantize`](Self::quantize) for float elements in blocks of consecutive elements: batches
    /// of blocks in parallel, each read once for its amax, scaled by 2^-e and encoded in bulk. The scaling is
    /// exact: in float64 always, in float32 for float32 data when no nonzero value scales to below float32's
    /// normal range (to a subnormal or to 0; otherwise the batch is redone in float64). Deterministic modes only use float32, so every
    /// element gets the same rounding and random draw as the element-by-element definition (round_value on
    /// the float64 scaled value at the element's index).
    ///
    /// With `pack`, the codes come back packed that many bits to a value (None when the layout does not
    /// allow it: see [`Layout::par_batches_packed`]).
    fn quantize_batches<T: Element>(
        &self,
        f: &Format,
        layout: &Layout,
        cfg: &Rounding,
        x: &[T],
        pack: Option<u32>,
    ) -> Result<Option<(Codes<u8>, Vec<u8>)>> {
        let f = f.clone().with_saturation(true).with_subnormals(true).with_propagate_inf(true);
        let enc64 = Encoder::<f64>::new(&f, cfg)?;
        let enc32 =
            if T::DTYPE == "float32" && !cfg.mode.is_stochastic() { Some(Encoder::<f32>::new(&f, cfg)?) } else { None };
        let mut scales = vec![0u8; layout.blocks()];
        let work = |b0: usize, i0: usize, codes: &mut [u8], scales: &mut [u8]| {
            // Block k of the batch: its elements' positions in the batch, and 2^-e (none for NaN blocks).
            let blocks: Vec<(Range<usize>, Option<f64>)> = layout
                .block_ranges(b0, scales.len())
                .zip(scales.iter_mut())
                .map(|(r, sc)| {
                    let (amax, special) = finite_amax(&x[r.clone()], |v| !self.holds(v));
                    let e = self.shared_exponent(amax);
                    *sc = if special { E8M0_NAN } else { (e + 127) as u8 };
                    (r.start - i0..r.end - i0, (!special).then(|| pow2(-e)))
                })
                .collect();
            let spans: Vec<Span> = blocks
                .iter()
                .filter_map(|(local, factor)| factor.map(|by| Span { at: local.start, len: local.len(), by }))
                .collect();
            let xb = &x[i0..i0 + codes.len()];
            let in_f32 = match (&enc32, T::typed(xb)) {
                (Some(enc), Typed::F32(xb)) => {
                    let mut scaled = vec![0.0f32; codes.len()];
                    let exact = scale_f32(xb, &spans, &mut scaled);
                    if exact {
                        enc.encode_at(i0 as u64, &scaled, codes);
                    }
                    exact
                }
                _ => false,
            };
            if !in_f32 {
                with_scratch(codes.len(), |scaled| {
                    for sp in &spans {
                        let r = sp.at..sp.at + sp.len;
                        for (d, v) in scaled[r.clone()].iter_mut().zip(&xb[r]) {
                            *d = v.to_f64() * sp.by;
                        }
                    }
                    enc64.encode_at(i0 as u64, scaled, codes);
                });
            }
            for (local, factor) in &blocks {
                if factor.is_none() {
                    codes[local.clone()].fill(0); // the whole block decodes to NaN
                }
            }
        };
        Ok(layout.run_batches(pack, &mut scales, work, u64::from).map(|codes| (codes, scales)))
    }

    /// [`quantize`](Self::quantize) straight into the packed codes and the scale codes, for the layouts and
    /// element types that have the batch path (None otherwise): what [`QuantizedTensor::quantize`] uses.
    ///
    /// [`QuantizedTensor::quantize`]: super::QuantizedTensor::quantize
    pub(crate) fn quantize_packed<T: Element>(
        &self,
        cfg: &Rounding,
        x: &[T],
        shape: &[usize],
        axis: usize,
    ) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        super::check_no_flip(cfg)?;
        let layout = Layout::new(shape, axis, Granularity::Group(self.block))?;
        check_len(layout.len(), x.len())?;
        let MxElement::Float(f) = &self.element else { return Ok(None) };
        if !layout.contiguous() {
            return Ok(None);
        }
        let run = self.quantize_batches(f, &layout, cfg, x, Some(self.element_bits()))?;
        Ok(run.and_then(|(codes, scales)| Some((codes.packed()?, scales))))
    }

    /// Whether a non-finite value has a code of its own in the element type.
    fn holds(&self, v: f64) -> bool {
        match &self.element {
            MxElement::Float(f) => {
                if v.is_nan() {
                    f.has_nan()
                } else {
                    f.has_inf()
                }
            }
            MxElement::Int8 => false,
        }
    }
}

isa_dispatched! {
/// `out = x * factor` over each span (factors are powers of two), and whether every product is exact: false
/// when a nonzero input came out below float32's normal range, where it may have lost bits or all of them
/// (the definition's float64 value is then another). Compiled per instruction set.
fn scale_f32(x: &[f32], spans: &[Span], out: &mut [f32]) -> bool {
    let mut tiny = false;
    for sp in spans {
        let factor = sp.by as f32; // a power of two within float32's range: exact
        let r = sp.at..sp.at + sp.len;
        for (d, &v) in out[r.clone()].iter_mut().zip(&x[r]) {
            *d = v * factor;
            tiny |= (d.abs() < f32::MIN_POSITIVE) & (v != 0.0);
        }
    }
    !tiny
}
}

impl MxQuantized {
    /// element value * 2^e for every element (NaN for blocks whose scale is NaN), in C order.
    pub fn dequantize<T: Element>(&self, out: &mut [T]) -> Result<()> {
        let layout = Layout::new(&self.shape, self.axis, Granularity::Group(self.scheme.block))?;
        check_len(self.codes.len(), out.len())?;
        for (i, (o, &c)) in out.iter_mut().zip(&self.codes).enumerate() {
            let s = self.scales[layout.block(i)];
            let v = match &self.scheme.element {
                MxElement::Float(f) => f.decode_code(u64::from(c)),
                MxElement::Int8 => f64::from(c as i8) / 64.0,
            };
            *o = T::from_f64(if s == E8M0_NAN { f64::NAN } else { v * pow2(i32::from(s) - 127) });
        }
        Ok(())
    }

    /// Storage in bits per element: element bits plus 8 scale bits per block.
    pub fn bits_per_element(&self) -> f64 {
        let n = self.codes.len().max(1) as f64;
        self.scheme.element_bits() as f64 + 8.0 * self.scales.len() as f64 / n
    }
}

impl std::fmt::Display for Mx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match &self.element {
            MxElement::Int8 => "mxint8",
            MxElement::Float(fmt) => match fmt.name() {
                "float8_e4m3fn" => "mxfp8_e4m3",
                "float8_e5m2" => "mxfp8_e5m2",
                "float6_e3m2fn" => "mxfp6_e3m2",
                "float6_e2m3fn" => "mxfp6_e2m3",
                "float4_e2m1fn" => "mxfp4",
                other => other,
            },
        };
        write!(f, "{name}:b{}", self.block)?;
        if self.rule == ScaleRule::Ceil {
            f.write_str(":ceil")?;
        }
        Ok(())
    }
}
