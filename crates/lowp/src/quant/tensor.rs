//! One packed representation for every scheme: a quantized tensor is its scheme, shape and axis plus a few
//! named arrays of fixed-width integers packed into bytes ("parts"): `codes` (one per element), `scales`
//! (one per block, as codes of their storage format), and where the scheme has them `zeros`, `types` and
//! `tensor_scale`. The storage in bits is exactly what the parts hold, metadata included.
//!
//! Packing is least-significant bit first: value k occupies bits [k*b, (k+1)*b) of the byte string read as one
//! little-endian number. For widths of 8, 16, 32 and 64 bits that is the plain little-endian array, so such
//! parts are ordinary arrays to any reader; narrower widths are what [`crate::pack`] produces.

use super::layout::{Layout, Span};
use super::{BfpQuantized, CodebookQuantized, MxElement, MxQuantized, Nvfp4Quantized, QuantizedInt};
use super::{Granularity, Quantized, Scheme, Symmetry};
use crate::codes::code_of;
use crate::error::{Error, Result};
use crate::round::isa_dispatched;
use crate::{Element, Format, Rounding};
use rayon::prelude::*;

/// One stored array of a [`QuantizedTensor`]: `len` values of `bits` bits, packed.
#[derive(Clone, Debug, PartialEq)]
pub struct Part {
    /// What it holds: `codes`, `scales`, `zeros`, `types` or `tensor_scale`.
    pub name: &'static str,
    /// Bits per value (1 to 64).
    pub bits: u32,
    /// Whether the values are two's complement integers.
    pub signed: bool,
    /// The number format the values are codes of (element codes of float formats, scales); `None` for
    /// integers.
    pub format: Option<Format>,
    /// The array's shape: the tensor's for codes, the grid of blocks for per-block parts.
    pub shape: Vec<usize>,
    /// The packed bytes.
    pub data: Vec<u8>,
}

/// The names parts may have, in storage order.
pub const PART_NAMES: [&str; 5] = ["codes", "scales", "zeros", "types", "tensor_scale"];

impl Part {
    /// Number of values.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }
    /// Whether the part holds no value.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The values as integers (sign-extended when signed).
    pub fn values(&self) -> Vec<i64> {
        let (bits, signed) = (self.bits, self.signed);
        unpack_bits(&self.data, bits, self.len()).map(|v| extend(v, bits, signed)).collect()
    }

    /// The values read through the part's format (integers when it has none).
    pub fn decoded(&self) -> Vec<f64> {
        match &self.format {
            // Codes of at most 8 bits through a table of their values (one decode per code, not per value).
            Some(f) if self.bits <= 8 => {
                let table = table(self, |c| f.decode_code(c as u64)); // format parts are unsigned
                unpack_bits(&self.data, self.bits, self.len()).map(|c| table[c as usize]).collect()
            }
            Some(f) => unpack_bits(&self.data, self.bits, self.len()).map(|c| f.decode_code(c)).collect(),
            None => self.values().into_iter().map(|v| v as f64).collect(),
        }
    }

    fn packed<V: Copy + Sync>(spec: &Spec, values: &[V], bits_of: impl Fn(&V) -> u64 + Sync) -> Part {
        Part::of(spec, pack_par(values, spec.bits, bits_of))
    }

    /// The part `spec` describes, holding `data` (already packed).
    fn of(spec: &Spec, data: Vec<u8>) -> Part {
        Part {
            name: spec.name,
            bits: spec.bits,
            signed: spec.signed,
            format: spec.format.clone(),
            shape: spec.shape.clone(),
            data,
        }
    }
}

/// What a part must look like for a scheme, shape and axis.
struct Spec {
    name: &'static str,
    bits: u32,
    signed: bool,
    format: Option<Format>,
    shape: Vec<usize>,
}

/// A quantized tensor: the scheme, shape and axis that decode it, and its packed [`Part`]s.
///
/// # Examples
/// ```
/// use lowp::quant::{QuantizedTensor, Scheme};
/// use lowp::Rounding;
/// let x: Vec<f32> = (0..64).map(|i| i as f32 / 8.0 - 4.0).collect();
/// let q = QuantizedTensor::quantize(&Scheme::parse("mxfp4")?, &Rounding::default(), &x, &[2, 32], 1)?;
/// assert_eq!(q.part("codes").unwrap().data.len(), 32); // 64 codes of 4 bits
/// assert_eq!(q.scales(), vec![1.0, 0.5]); // E8M0 scales 2^(floor(log2 amax) - 2): amax 4 and 3.875
/// assert_eq!(q.bits_per_element(), 4.25);
/// let mut y = vec![0.0f32; 64];
/// q.dequantize(&mut y)?;
/// assert_eq!((y[0], y[63]), (-4.0, 3.0)); // 3.875 / 0.5 = 7.75 clamps to e2m1's max 6
/// # Ok::<(), lowp::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct QuantizedTensor {
    scheme: Scheme,
    shape: Vec<usize>,
    axis: usize,
    parts: Vec<Part>,
}

impl QuantizedTensor {
    /// Quantizes `x` of `shape` (C order) with `scheme`, groups or blocks along `axis`, and packs the result.
    pub fn quantize<T: Element>(
        scheme: &Scheme,
        cfg: &Rounding,
        x: &[T],
        shape: &[usize],
        axis: usize,
    ) -> Result<QuantizedTensor> {
        if let Some(t) = QuantizedTensor::quantize_packed(scheme, cfg, x, shape, axis)? {
            return Ok(t);
        }
        QuantizedTensor::pack(scheme, &scheme.quantize(cfg, x, shape, axis)?)
    }

    /// The route of [`quantize`](Self::quantize) for the schemes and layouts whose batch quantizers pack
    /// their codes as they go (the same batch code as [`Scheme::quantize`], so the same codes): no
    /// tensor-sized array of unpacked codes, no second pass. None for the others.
    fn quantize_packed<T: Element>(
        scheme: &Scheme,
        cfg: &Rounding,
        x: &[T],
        shape: &[usize],
        axis: usize,
    ) -> Result<Option<QuantizedTensor>> {
        let parts = match scheme {
            Scheme::Mx(s) => {
                let Some((codes, scales)) = s.quantize_packed(cfg, x, shape, axis)? else { return Ok(None) };
                let specs = specs(scheme, shape, axis)?;
                vec![Part::of(&specs[0], codes), Part::of(&specs[1], scales)]
            }
            Scheme::Int(s) => {
                let Some((codes, scales, zeros)) = s.quantize_packed(cfg, x, shape, axis)? else { return Ok(None) };
                let specs = specs(scheme, shape, axis)?;
                let mut parts = vec![Part::of(&specs[0], codes), scale_part(&specs[1], &scales)?];
                if let Some(z) = specs.get(2) {
                    parts.push(Part::packed(z, &zeros, |&c| c as u64));
                }
                parts
            }
            Scheme::Nvfp4(s) => {
                let Some((codes, scales, t)) = s.quantize_packed(cfg, x, shape, axis)? else { return Ok(None) };
                let specs = specs(scheme, shape, axis)?;
                let mut parts = vec![Part::of(&specs[0], codes), Part::of(&specs[1], scales)];
                if let Some(spec) = specs.get(2) {
                    parts.push(Part::of(spec, t.to_bits().to_le_bytes().to_vec()));
                }
                parts
            }
            Scheme::BitMod(s) => {
                let Some((codes, scales, types)) = s.quantize_packed(cfg, x, shape, axis)? else { return Ok(None) };
                let specs = specs(scheme, shape, axis)?;
                vec![
                    Part::of(&specs[0], codes),
                    scale_part(&specs[1], &scales)?,
                    Part::packed(&specs[2], &types, |&c| u64::from(c)),
                ]
            }
            _ => return Ok(None),
        };
        let t = QuantizedTensor { scheme: scheme.clone(), shape: shape.to_vec(), axis, parts };
        t.check_parts()?;
        Ok(Some(t))
    }

    /// Packs a tensor quantized by `scheme` (the scheme that produced `q`; refused when `q` names another).
    pub fn pack(scheme: &Scheme, q: &Quantized) -> Result<QuantizedTensor> {
        let own = match q {
            Quantized::Int(q) => Some(Scheme::Int(q.scheme.clone())),
            Quantized::Fixed(s, ..) => Some(Scheme::Fixed(*s)),
            Quantized::Mx(q) => Some(Scheme::Mx(q.scheme.clone())),
            Quantized::Nvfp4(q) => Some(Scheme::Nvfp4(q.scheme.clone())),
            Quantized::Bfp(q) => Some(Scheme::Bfp(q.scheme.clone())),
            Quantized::Codebook(_) => None,
        };
        let codebooks_differ = match (q, scheme) {
            (Quantized::Codebook(q), Scheme::BitMod(s)) => {
                q.codebooks != s.variants() || q.group != s.group() || q.scale_bits != s.scale_format().bits()
            }
            (Quantized::Codebook(q), Scheme::Codebook(s)) => {
                q.codebooks != [s.codebook().clone()] || q.group != s.group() || q.scale_bits != s.scale_format().bits()
            }
            (Quantized::Codebook(_), _) => true,
            _ => false,
        };
        if codebooks_differ {
            return Err(Error::InvalidOption(format!("cannot pack a codebook-quantized tensor as {scheme}")));
        }
        if own.as_ref().is_some_and(|own| own != scheme) {
            return Err(Error::InvalidOption(format!(
                "cannot pack a tensor quantized by {} as {scheme}",
                own.expect("checked just above")
            )));
        }
        let (shape, axis) = q.shape_axis();
        let specs = specs(scheme, shape, axis)?;
        let spec = |name: &str| specs.iter().find(|s| s.name == name).expect("every scheme has codes and scales");
        let codes = spec("codes");
        let mut parts = Vec::with_capacity(specs.len());
        let code_mask = mask(codes.bits);
        let as_bits = move |v: i64| v as u64 & code_mask;
        match q {
            Quantized::Int(q) => {
                parts.push(Part::packed(codes, &q.codes, |&c| as_bits(c.into())));
                parts.push(scale_part(spec("scales"), &q.scales)?);
                if let Some(z) = specs.iter().find(|s| s.name == "zeros") {
                    parts.push(Part::packed(z, &q.zeros, |&c| c as u64));
                }
            }
            Quantized::Fixed(_, _, c) => parts.push(Part::packed(codes, c, |&c| as_bits(c))),
            Quantized::Mx(q) => {
                parts.push(Part::packed(codes, &q.codes, |&c| u64::from(c)));
                parts.push(Part::packed(spec("scales"), &q.scales, |&c| u64::from(c)));
            }
            Quantized::Nvfp4(q) => {
                parts.push(Part::packed(codes, &q.codes, |&c| u64::from(c)));
                parts.push(Part::packed(spec("scales"), &q.scales, |&c| u64::from(c)));
                if let Some(t) = specs.iter().find(|s| s.name == "tensor_scale") {
                    parts.push(Part::packed(t, &[q.tensor_scale], |&v| u64::from(v.to_bits())));
                }
            }
            Quantized::Bfp(q) => {
                parts.push(Part::packed(codes, &q.mantissas, |&c| as_bits(c.into())));
                parts.push(Part::packed(spec("scales"), &q.exponents, |&c| u64::from(c)));
            }
            Quantized::Codebook(q) => {
                parts.push(Part::packed(codes, &q.codes, |&c| u64::from(c)));
                parts.push(scale_part(spec("scales"), &q.scales)?);
                if let Some(t) = specs.iter().find(|s| s.name == "types") {
                    parts.push(Part::packed(t, &q.types, |&c| u64::from(c)));
                }
            }
        }
        let t = QuantizedTensor { scheme: scheme.clone(), shape: shape.to_vec(), axis, parts };
        t.check_parts()?;
        Ok(t)
    }

    /// A tensor from stored parts (as read from a file), checked against what `scheme`, `shape` and `axis`
    /// need: every part present with its width, signedness, format and shape, the byte counts, and values in
    /// their ranges (codebook indices, type ids). Parts may come in any order.
    pub fn from_parts(scheme: Scheme, shape: Vec<usize>, axis: usize, parts: Vec<Part>) -> Result<QuantizedTensor> {
        for (name, s) in std::iter::once(("the tensor", &shape)).chain(parts.iter().map(|p| (p.name, &p.shape))) {
            if checked_len(s).is_none() {
                return Err(invalid(format!("{name} has an impossible shape {s:?}")));
            }
        }
        let t = QuantizedTensor { scheme, shape, axis, parts };
        t.check_parts()?;
        if let Scheme::Int(s) = &t.scheme {
            let (lo, hi) = s.code_range();
            for (what, values) in [("code", t.codes()), ("zero point", t.zeros().unwrap_or_default())] {
                if let Some(v) = values.iter().find(|&&v| v < i64::from(lo) || v > i64::from(hi)) {
                    return Err(invalid(format!("{what} {v} is outside {s}'s range {lo}..={hi}")));
                }
            }
        }
        t.unpack()?; // range checks of the codebook indices
        Ok(t)
    }

    /// The scheme.
    pub fn scheme(&self) -> &Scheme {
        &self.scheme
    }
    /// The tensor's shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }
    /// The axis groups and blocks run along.
    pub fn axis(&self) -> usize {
        self.axis
    }
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }
    /// Whether the tensor has no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The parts, in storage order.
    pub fn parts(&self) -> &[Part] {
        &self.parts
    }
    /// The part called `name`, if the scheme has one.
    pub fn part(&self, name: &str) -> Option<&Part> {
        self.parts.iter().find(|p| p.name == name)
    }

    /// The element codes, C order, as integers (signed for signed codes).
    pub fn codes(&self) -> Vec<i64> {
        self.part("codes").map(Part::values).unwrap_or_default()
    }
    /// The block scales as numbers, in block order (empty for fixed point). NaN for blocks whose scale code
    /// is NaN. Block floating point reports its shared exponents as the scales 2^e.
    pub fn scales(&self) -> Vec<f64> {
        self.part("scales").map(Part::decoded).unwrap_or_default()
    }
    /// The zero points of asymmetric integer schemes.
    pub fn zeros(&self) -> Option<Vec<i64>> {
        self.part("zeros").map(Part::values)
    }
    /// The type id of each group (BitMoD).
    pub fn types(&self) -> Option<Vec<i64>> {
        self.part("types").map(Part::values)
    }
    /// The float32 tensor scale (NVFP4).
    pub fn tensor_scale(&self) -> Option<f32> {
        self.part("tensor_scale").map(|p| f32::from_bits(p.values()[0] as u32))
    }

    /// Storage in bits: every value of every part, at its width.
    pub fn storage_bits(&self) -> u64 {
        self.parts.iter().map(|p| u64::from(p.bits) * p.len() as u64).sum()
    }
    /// Storage in bits per element, all metadata included.
    pub fn bits_per_element(&self) -> f64 {
        self.storage_bits() as f64 / self.len().max(1) as f64
    }

    /// The per-scheme view of the same data.
    pub fn unpack(&self) -> Result<Quantized> {
        let (shape, axis) = (self.shape.clone(), self.axis);
        let part = |name: &str| self.part(name).expect("checked by check_parts");
        let codes = part("codes");
        let bytes = |p: &Part| unpack_bits(&p.data, p.bits, p.len()).map(|v| v as u8).collect::<Vec<u8>>();
        Ok(match &self.scheme {
            Scheme::Int(s) => {
                let codes = codes.values().into_iter().map(|v| v as i32).collect();
                let zeros = match self.part("zeros") {
                    Some(z) => z.values().into_iter().map(|v| v as i32).collect(),
                    None => vec![0; part("scales").len()],
                };
                let scales = part("scales").decoded();
                Quantized::Int(QuantizedInt { scheme: s.clone(), shape, axis, codes, scales, zeros })
            }
            Scheme::Fixed(s) => Quantized::Fixed(*s, shape, codes.values()),
            Scheme::Mx(s) => Quantized::Mx(MxQuantized {
                scheme: s.clone(),
                shape,
                axis,
                codes: bytes(codes),
                scales: bytes(part("scales")),
            }),
            Scheme::Nvfp4(s) => Quantized::Nvfp4(Nvfp4Quantized {
                scheme: s.clone(),
                shape,
                axis,
                codes: bytes(codes),
                scales: bytes(part("scales")),
                tensor_scale: self.tensor_scale().unwrap_or(1.0),
            }),
            Scheme::Bfp(s) => Quantized::Bfp(BfpQuantized {
                scheme: s.clone(),
                shape,
                axis,
                mantissas: codes.values().into_iter().map(|v| v as i32).collect(),
                exponents: bytes(part("scales")),
            }),
            Scheme::BitMod(_) | Scheme::Codebook(_) => {
                let (books, scale_format, group) = match &self.scheme {
                    Scheme::BitMod(s) => (s.variants(), s.scale_format(), s.group()),
                    Scheme::Codebook(s) => (vec![s.codebook().clone()], s.scale_format().clone(), s.group()),
                    _ => unreachable!("matched above"),
                };
                let codes = bytes(codes);
                let types = self.part("types").map_or_else(|| vec![0; part("scales").len()], bytes);
                if let Some(t) = types.iter().position(|&t| usize::from(t) >= books.len()) {
                    return Err(invalid(format!("type id {} of group {t} names no codebook", types[t])));
                }
                let layout = Layout::new(&self.shape, axis, Granularity::Group(group))?;
                for (i, &c) in codes.iter().enumerate() {
                    let book = &books[usize::from(types[layout.block(i)])];
                    if usize::from(c) >= book.values().len() {
                        return Err(invalid(format!("code {c} of element {i} is past the codebook's end")));
                    }
                }
                Quantized::Codebook(CodebookQuantized {
                    code_bits: books[0].bits(),
                    type_bits: if books.len() > 1 { usize::BITS - (books.len() - 1).leading_zeros() } else { 0 },
                    scale_bits: scale_format.bits(),
                    codebooks: books,
                    group,
                    shape,
                    axis,
                    codes,
                    scales: part("scales").decoded(),
                    types,
                })
            }
        })
    }

    /// The values, C order, into `out` (one per element).
    ///
    /// Schemes with codes of at most 8 bits whose blocks are runs of consecutive elements decode straight
    /// from the packed parts, in parallel, through a table of code values: value = `(table[code] - zero) * scale`
    /// (* tensor scale), the same float64 operations in the same order as the schemes' own `dequantize` (NVFP4's
    /// tensor scale is folded into its block scales, which changes nothing: those products are exact).
    pub fn dequantize<T: Element>(&self, out: &mut [T]) -> Result<()> {
        crate::round::check_len(self.len(), out.len())?;
        match self.decode_plan()? {
            Some(plan) => {
                plan.run(self, out);
                Ok(())
            }
            None => self.unpack()?.dequantize(out),
        }
    }

    /// The per-block parameters and code tables of the fast dequantization, where it applies.
    fn decode_plan(&self) -> Result<Option<DecodePlan>> {
        let codes = self.part("codes").expect("checked by check_parts");
        let (gran, tables): (Granularity, Vec<Vec<f64>>) = match &self.scheme {
            Scheme::Int(s) => (s.granularity(), vec![table(codes, |c| c as f64)]),
            Scheme::Mx(s) => {
                let t = match s.element() {
                    MxElement::Float(f) => table(codes, |c| f.decode_code(c as u64)),
                    MxElement::Int8 => table(codes, |c| c as f64 / 64.0),
                };
                (Granularity::Group(s.block()), vec![t])
            }
            Scheme::Nvfp4(s) => {
                let e2m1 = codes.format.clone().expect("element format");
                (Granularity::Group(s.block()), vec![table(codes, |c| e2m1.decode_code(c as u64))])
            }
            Scheme::Bfp(s) => (Granularity::Group(s.block()), vec![table(codes, |c| c as f64)]),
            Scheme::BitMod(s) => {
                (Granularity::Group(s.group()), s.variants().iter().map(|b| b.values().to_vec()).collect())
            }
            Scheme::Codebook(s) => (Granularity::Group(s.group()), vec![s.codebook().values().to_vec()]),
            Scheme::Fixed(_) => return Ok(None),
        };
        let layout = Layout::new(&self.shape, self.axis, gran)?;
        if codes.bits > 8 || !layout.contiguous() {
            return Ok(None);
        }
        let mut scales = self.scales();
        if let Scheme::Bfp(s) = &self.scheme {
            // Mantissas are fractions of 2^(m - 2): the element is q * 2^(e - m + 2).
            let unit = crate::format::pow2(2 - s.mantissa_bits() as i32);
            scales.iter_mut().for_each(|v| *v *= unit);
        }
        if let Some(t) = self.tensor_scale() {
            // NVFP4: e2m1 * s * t. Every such product is exact (2 + 4 + 24 significant bits), so folding t into
            // each block's scale changes no result and saves a multiplication per element.
            scales.iter_mut().for_each(|v| *v *= f64::from(t));
        }
        let zeros = self.zeros().map(|z| z.into_iter().map(|v| v as f64).collect());
        let types = self.types().map(|t| t.into_iter().map(|v| v as u8).collect());
        Ok(Some(DecodePlan { layout, tables, scales, zeros, types }))
    }

    /// Every part the scheme needs is there, with the right width, signedness, format, shape and byte count,
    /// and there is no other.
    fn check_parts(&self) -> Result<()> {
        let specs = specs(&self.scheme, &self.shape, self.axis)?;
        for (k, p) in self.parts.iter().enumerate() {
            if !specs.iter().any(|s| s.name == p.name) {
                return Err(invalid(format!("{} has no part `{}`", self.scheme, p.name)));
            }
            if self.parts[..k].iter().any(|q| q.name == p.name) {
                return Err(invalid(format!("part `{}` appears twice", p.name)));
            }
        }
        for s in &specs {
            let p = self.part(s.name).ok_or_else(|| invalid(format!("part `{}` is missing", s.name)))?;
            let fmt = |f: &Option<Format>| f.as_ref().map_or("none".to_string(), |f| f.name().to_string());
            if (p.bits, p.signed, &p.shape) != (s.bits, s.signed, &s.shape) || fmt(&p.format) != fmt(&s.format) {
                return Err(invalid(format!(
                    "part `{}` is {} {}-bit values of format {} with shape {:?}; {} on shape {:?} axis {} needs {} \
                     {}-bit values of format {} with shape {:?}",
                    p.name,
                    if p.signed { "signed" } else { "unsigned" },
                    p.bits,
                    fmt(&p.format),
                    p.shape,
                    self.scheme,
                    self.shape,
                    self.axis,
                    if s.signed { "signed" } else { "unsigned" },
                    s.bits,
                    fmt(&s.format),
                    s.shape
                )));
            }
            let need = packed_bytes(p.len(), p.bits);
            if p.data.len() != need {
                return Err(invalid(format!("part `{}` holds {} bytes; it needs {need}", p.name, p.data.len())));
            }
        }
        Ok(())
    }
}

/// The code table of a part of at most 8 bits: `value(code)` for every code, signed codes sign-extended.
fn table(codes: &Part, value: impl Fn(i64) -> f64) -> Vec<f64> {
    (0..1u64 << codes.bits.min(8)).map(|c| value(extend(c, codes.bits, codes.signed))).collect()
}

/// Fast dequantization: per block a scale (NaN for NaN blocks; NVFP4's tensor scale folded in), an optional
/// zero point and code table.
struct DecodePlan {
    layout: Layout,
    tables: Vec<Vec<f64>>,
    scales: Vec<f64>,
    zeros: Option<Vec<f64>>,
    types: Option<Vec<u8>>,
}

impl DecodePlan {
    fn run<T: Element>(&self, t: &QuantizedTensor, out: &mut [T]) {
        let codes = t.part("codes").expect("checked by check_parts");
        let mut blocks = vec![(); self.scales.len()];
        self.layout.par_batches(out, &mut blocks, |b0, i0, out, blocks| {
            let mut c = vec![0u8; out.len()];
            unpack_into(&codes.data, codes.bits, i0, &mut c);
            let spans: Vec<(Span, usize, f64)> = self
                .layout
                .block_ranges(b0, blocks.len())
                .zip(b0..)
                .map(|(r, b)| {
                    let table = self.types.as_ref().map_or(0, |t| usize::from(t[b]));
                    let z = self.zeros.as_ref().map_or(0.0, |z| z[b]);
                    (Span { at: r.start - i0, len: r.len(), by: self.scales[b] }, table, z)
                })
                .collect();
            decode_spans(&self.tables, &spans, self.zeros.is_some(), &c, out);
        });
    }
}

isa_dispatched! {
/// Per span (a block): `out = (table[code] - zero) * scale`, or `table[code] * scale` without zero points;
/// compiled per instruction set, one call per batch.
fn decode_spans<T: Element>(tables: &[Vec<f64>], spans: &[(Span, usize, f64)], zeros: bool, c: &[u8], out: &mut [T]) {
    for &(sp, table, z) in spans {
        let (table, s) = (&tables[table], sp.by);
        let (o, c) = (&mut out[sp.at..sp.at + sp.len], &c[sp.at..sp.at + sp.len]);
        if zeros {
            o.iter_mut().zip(c).for_each(|(o, &c)| *o = T::from_f64((table[usize::from(c)] - z) * s));
        } else {
            o.iter_mut().zip(c).for_each(|(o, &c)| *o = T::from_f64(table[usize::from(c)] * s));
        }
    }
}
}

/// Unpacks the codes `start..start + dst.len()` of `bits` bits (at most 8) into `dst`.
fn unpack_into(data: &[u8], bits: u32, start: usize, dst: &mut [u8]) {
    match bits {
        8 => dst.copy_from_slice(&data[start..start + dst.len()]),
        4 if start.is_multiple_of(2) => {
            let bytes = &data[start / 2..(start + dst.len()).div_ceil(2)];
            let mut pairs = dst.chunks_exact_mut(2);
            for (pair, &b) in (&mut pairs).zip(bytes) {
                pair[0] = b & 0xF;
                pair[1] = b >> 4;
            }
            if let [last] = pairs.into_remainder() {
                *last = bytes[bytes.len() - 1] & 0xF;
            }
        }
        _ => {
            let b = bits as usize;
            for (k, d) in dst.iter_mut().enumerate() {
                let bit = (start + k) * b;
                let (byte, shift) = (bit / 8, bit % 8);
                let lo = u16::from(data[byte]);
                let hi = data.get(byte + 1).map_or(0, |&h| u16::from(h));
                *d = (((hi << 8 | lo) >> shift) & ((1 << b) - 1)) as u8;
            }
        }
    }
}

impl Quantized {
    fn shape_axis(&self) -> (&[usize], usize) {
        match self {
            Quantized::Int(q) => (&q.shape, q.axis),
            Quantized::Fixed(_, shape, _) => (shape, 0),
            Quantized::Mx(q) => (&q.shape, q.axis),
            Quantized::Nvfp4(q) => (&q.shape, q.axis),
            Quantized::Bfp(q) => (&q.shape, q.axis),
            Quantized::Codebook(q) => (&q.shape, q.axis),
        }
    }
}

/// The number of elements of `shape`, or `None` when it overflows.
pub(crate) fn checked_len(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d))
}

fn invalid(why: String) -> Error {
    Error::InvalidFile(why)
}

/// The parts `scheme` stores for a tensor of `shape` with blocks along `axis`.
fn specs(scheme: &Scheme, shape: &[usize], axis: usize) -> Result<Vec<Spec>> {
    let part =
        |name, bits, signed, format: Option<Format>, shape: Vec<usize>| Spec { name, bits, signed, format, shape };
    let grid = |gran| Layout::new(shape, axis, gran).map(|l| l.grid_shape(shape, axis));
    let preset = |name: &str| Some(Format::parse(name).expect("a preset"));
    let codes_shape = shape.to_vec();
    Ok(match scheme {
        Scheme::Int(s) => {
            let grid = grid(s.granularity())?;
            let signed = s.symmetry() != Symmetry::Asymmetric;
            let fmt = s.scale_format().clone();
            let mut v = vec![
                part("codes", s.bits(), signed, None, codes_shape),
                part("scales", fmt.bits(), false, Some(fmt), grid.clone()),
            ];
            if !signed {
                v.push(part("zeros", s.bits(), false, None, grid));
            }
            v
        }
        Scheme::Fixed(s) => {
            grid(Granularity::Tensor)?; // the axis must still name one of the tensor's
            vec![part("codes", s.bits(), true, None, codes_shape)]
        }
        Scheme::Mx(s) => {
            let (signed, fmt) = match s.element() {
                MxElement::Float(f) => (false, Some(f.clone())),
                MxElement::Int8 => (true, None),
            };
            vec![
                part("codes", s.element_bits(), signed, fmt, codes_shape),
                part("scales", 8, false, preset("float8_e8m0fnu"), grid(Granularity::Group(s.block()))?),
            ]
        }
        Scheme::Nvfp4(s) => {
            let mut v = vec![
                part("codes", 4, false, preset("float4_e2m1fn"), codes_shape),
                part("scales", 8, false, preset("float8_e4m3fn"), grid(Granularity::Group(s.block()))?),
            ];
            if s.uses_tensor_scale() {
                v.push(part("tensor_scale", 32, false, preset("float32"), vec![1]));
            }
            v
        }
        Scheme::Bfp(s) => vec![
            part("codes", s.mantissa_bits(), true, None, codes_shape),
            part("scales", 8, false, preset("float8_e8m0fnu"), grid(Granularity::Group(s.block()))?),
        ],
        Scheme::BitMod(s) => {
            let grid = grid(Granularity::Group(s.group()))?;
            vec![
                part("codes", s.bits(), false, None, codes_shape),
                part("scales", 16, false, Some(s.scale_format()), grid.clone()),
                part("types", 2, false, None, grid),
            ]
        }
        Scheme::Codebook(s) => {
            let fmt = s.scale_format().clone();
            vec![
                part("codes", s.codebook().bits(), false, None, codes_shape),
                part("scales", fmt.bits(), false, Some(fmt), grid(Granularity::Group(s.group()))?),
            ]
        }
    })
}

/// Scales given as numbers, stored as codes of their format (every scale a scheme produces has one).
fn scale_part(spec: &Spec, scales: &[f64]) -> Result<Part> {
    let fmt = spec.format.as_ref().expect("scales have a format");
    let codes = scales
        .iter()
        .enumerate()
        .map(|(i, &s)| {
            code_of(fmt, s).ok_or_else(|| Error::NotRepresentable {
                value: s,
                index: i,
                format: fmt.name().to_string(),
                why: "a scale must be a value of its storage format",
            })
        })
        .collect::<Result<Vec<u64>>>()?;
    Ok(Part::packed(spec, &codes, |&c| c))
}

fn mask(bits: u32) -> u64 {
    if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    }
}

fn extend(v: u64, bits: u32, signed: bool) -> i64 {
    if signed && bits < 64 {
        let shift = 64 - bits;
        ((v << shift) as i64) >> shift
    } else {
        v as i64
    }
}

/// Bytes that hold `count` values of `bits` bits.
pub fn packed_bytes(count: usize, bits: u32) -> usize {
    (count as u128 * u128::from(bits)).div_ceil(8) as usize
}

/// [`pack_bits`] of `bits_of` of every value, in parallel for long inputs: chunks of 8k values fill whole
/// bytes, whatever the width.
fn pack_par<V: Copy + Sync>(values: &[V], bits: u32, bits_of: impl Fn(&V) -> u64 + Sync) -> Vec<u8> {
    const K: usize = 1 << 13;
    if values.len() <= 8 * K {
        return pack_bits(values.iter().map(&bits_of), bits, values.len());
    }
    let mut out = vec![0u8; packed_bytes(values.len(), bits)];
    out.par_chunks_mut(K * bits as usize)
        .zip(values.par_chunks(8 * K))
        .for_each(|(o, v)| pack_into(v, bits, |v| bits_of(&v), o));
    out
}

isa_dispatched! {
/// Packs `low(v)` of every value (its low `bits` bits) into `out`, which holds exactly their bytes. The
/// common widths run loops the compiler vectorizes, compiled per instruction set.
pub(crate) fn pack_into<V: Copy>(values: &[V], bits: u32, low: impl Fn(V) -> u64, out: &mut [u8]) {
    match bits {
        4 => {
            let pairs = values.chunks_exact(2);
            if let [last] = pairs.remainder() {
                out[values.len() / 2] = (low(*last) & 0xF) as u8;
            }
            for (o, p) in out.iter_mut().zip(pairs) {
                *o = (low(p[0]) & 0xF | (low(p[1]) & 0xF) << 4) as u8;
            }
        }
        8 => out.iter_mut().zip(values).for_each(|(o, &v)| *o = low(v) as u8),
        _ => out.copy_from_slice(&pack_bits(values.iter().map(|&v| low(v)), bits, values.len())),
    }
}
}

/// Packs the low `bits` bits of each value, least-significant bit first.
fn pack_bits(values: impl Iterator<Item = u64>, bits: u32, count: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(packed_bytes(count, bits));
    if bits.is_multiple_of(8) {
        for v in values {
            out.extend_from_slice(&v.to_le_bytes()[..(bits / 8) as usize]);
        }
        return out;
    }
    let m = mask(bits);
    if 8u32.is_multiple_of(bits) {
        // 1, 2 or 4 bits: whole bytes of 8 / bits values.
        let per = (8 / bits) as usize;
        let (mut byte, mut k) = (0u8, 0usize);
        for v in values {
            byte |= ((v & m) as u8) << (k as u32 * bits);
            k += 1;
            if k == per {
                out.push(byte);
                (byte, k) = (0, 0);
            }
        }
        if k > 0 {
            out.push(byte);
        }
        return out;
    }
    let (mut acc, mut have) = (0u128, 0u32);
    for v in values {
        acc |= u128::from(v & m) << have;
        have += bits;
        while have >= 8 {
            out.push(acc as u8);
            acc >>= 8;
            have -= 8;
        }
    }
    if have > 0 {
        out.push(acc as u8);
    }
    out
}

/// The `count` values of `bits` bits packed in `data` (which holds at least that many bytes).
fn unpack_bits(data: &[u8], bits: u32, count: usize) -> impl Iterator<Item = u64> + '_ {
    let m = mask(bits);
    let b = bits as usize;
    (0..count).map(move |k| {
        let (start, shift) = ((k * b) / 8, (k * b) % 8);
        let end = ((k + 1) * b).div_ceil(8);
        let mut acc = 0u128;
        for (j, &byte) in data[start..end].iter().enumerate() {
            acc |= u128::from(byte) << (8 * j);
        }
        (acc >> shift) as u64 & m
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packing_round_trips_every_width() {
        for bits in 1..=64u32 {
            let vals: Vec<u64> = (0..37u64).map(|k| k.wrapping_mul(0x9e37_79b9_7f4a_7c15) & mask(bits)).collect();
            let data = pack_bits(vals.iter().copied(), bits, vals.len());
            assert_eq!(data.len(), packed_bytes(vals.len(), bits));
            assert_eq!(unpack_bits(&data, bits, vals.len()).collect::<Vec<_>>(), vals, "{bits} bits");
        }
    }

    #[test]
    fn narrow_packing_matches_lowp_pack() {
        for bits in 1..=8u32 {
            let codes: Vec<u8> = (0..53u32).map(|k| (k * 37 % 256) as u8 & mask(bits) as u8).collect();
            let ours = pack_bits(codes.iter().map(|&c| u64::from(c)), bits, codes.len());
            assert_eq!(ours, crate::pack(&codes, bits).unwrap(), "{bits} bits");
        }
    }

    #[test]
    fn sign_extension() {
        assert_eq!(extend(0b1111, 4, true), -1);
        assert_eq!(extend(0b0111, 4, true), 7);
        assert_eq!(extend(0b1000, 4, false), 8);
        assert_eq!(extend(u64::MAX, 64, true), -1);
    }
}
