//! NVFP4 (FORMATS.md §4): e2m1 elements in blocks of 16, each block scaled by amax / 6 stored as e4m3fn,
//! optionally under one float32 tensor scale amax_tensor / (448 * 6) that divides the block scales before their
//! e4m3 rounding.

use super::layout::Layout;
use super::Granularity;
use crate::error::{Error, Result};
use crate::round::{check_len, Encoder};
use crate::{round_value, Element, Format, Rounding, RoundingMode};

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
        super::check_no_flip(cfg)?;
        let layout = Layout::new(shape, axis, Granularity::Group(self.block))?;
        check_len(layout.len(), x.len())?;
        let e4m3 = Format::parse("float8_e4m3fn")?.with_saturation(true);
        let e2m1 = Format::parse("float4_e2m1fn")?.with_saturation(true); // as it does anyway: no inf or NaN
        let nb = layout.blocks();
        let (amax, special) = layout.block_amax(x, |_| true); // e2m1 holds neither NaN nor inf
        let tensor_amax = amax.iter().cloned().fold(0.0, f64::max);
        let t = if self.tensor_scale && tensor_amax > 0.0 {
            let t = (tensor_amax / (448.0 * 6.0)) as f32; // nearest float32
            if t == 0.0 {
                f32::from_bits(1) // below float32's range: its smallest positive value
            } else if t.is_infinite() {
                f32::MAX // float64 data beyond 2688 * float32's max: the largest finite scale (blocks saturate)
            } else {
                t
            }
        } else {
            1.0
        };
        let rne = Rounding::new(RoundingMode::NearestEven);
        // Block scales: (amax / 6) / t rounded to e4m3fn, all in one bulk encode (the same rounding as one value
        // at a time). NaN blocks get the NaN code and scale 0 for the elements.
        let raw: Vec<f64> =
            amax.iter().zip(&special).map(|(&a, &s)| if s { 0.0 } else { a / 6.0 / f64::from(t) }).collect();
        let mut scales = vec![0u8; nb];
        crate::encode(&e4m3, &rne, &raw, &mut scales)?;
        let values: Vec<f64> = (0..256).map(|c| e4m3.decode_code(c)).collect(); // one decode per code
        let mut scale_vals: Vec<f64> = scales.iter().map(|&c| values[usize::from(c)]).collect();
        for (b, _) in special.iter().enumerate().filter(|(_, &s)| s) {
            (scales[b], scale_vals[b]) = (SCALE_NAN, 0.0);
        }
        let codes = if layout.contiguous() {
            // Batches of blocks divided by their scales in float64 and encoded in one go: the same roundings,
            // with the same random draws, as the element-by-element loop below.
            let encoder = Encoder::<f64>::new(&e2m1, cfg)?;
            let mut codes = vec![0u8; x.len()];
            let mut per_block: Vec<(u8, f64)> = scales.iter().copied().zip(scale_vals.iter().copied()).collect();
            layout.par_batches(&mut codes, &mut per_block, |b0, i0, codes, blocks| {
                let mut scaled = vec![0.0f64; codes.len()];
                for (k, &(code, s)) in blocks.iter().enumerate() {
                    if code == SCALE_NAN || s == 0.0 {
                        continue; // zeros
                    }
                    let r = layout.block_range(b0 + k);
                    let st = s * f64::from(t); // exact: 4 + 24 bits
                    for (d, v) in scaled[r.start - i0..r.end - i0].iter_mut().zip(&x[r]) {
                        *d = v.to_f64() / st;
                    }
                }
                encoder.encode_at(i0 as u64, &scaled, codes);
            });
            codes
        } else {
            x.iter()
                .enumerate()
                .map(|(i, v)| {
                    let b = layout.block(i);
                    if scales[b] == SCALE_NAN || scale_vals[b] == 0.0 {
                        return Ok(0);
                    }
                    let q = v.to_f64() / (scale_vals[b] * f64::from(t)); // the product is exact: 4 + 24 bits
                    let r = round_value(&e2m1, cfg, q, i as u64)?;
                    Ok(crate::codes::code_of(&e2m1, r).unwrap_or(0) as u8)
                })
                .collect::<Result<Vec<u8>>>()?
        };
        Ok(Nvfp4Quantized { scheme: self.clone(), shape: shape.to_vec(), axis, codes, scales, tensor_scale: t })
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
