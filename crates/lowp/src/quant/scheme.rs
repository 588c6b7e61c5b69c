//! One entry point for every scheme: a scheme string, parsed once, quantizes and dequantizes.

use super::{AffineInt, Bfp, BitMod, CodebookScheme, FixedPoint, Mx, Nvfp4};
use super::{BfpQuantized, CodebookQuantized, MxQuantized, Nvfp4Quantized, QuantizedInt};
use crate::error::{Error, Result};
use crate::{Element, Rounding};

/// A quantization scheme named by a string (docs/quantization.md has the table):
///
/// | prefix | scheme | example |
/// |---|---|---|
/// | `int<b>` | affine integers | `int4:g128:asym`, `int8:channel:sym`, `int8:pct99.9` |
/// | `fixed:q<i>.<f>` | fixed point | `fixed:q4.4`, `fixed:q1.15:wrap` |
/// | `mx...` | OCP MX | `mxfp4`, `mxfp6_e2m3`, `mxfp8_e5m2`, `mxint8:b16` |
/// | `nvfp4` | NVFP4 | `nvfp4`, `nvfp4:notensor` |
/// | `bfp<m>` | block floating point | `bfp8:b16` |
/// | `bitmod3`, `bitmod4` | BitMoD | `bitmod4:g128` |
/// | `nf4` | NF4 codebook | `nf4:g64` |
/// | `codebook(...)` | a user codebook | `codebook(-1,-0.5,0,0.5,1):g32` |
///
/// # Examples
/// ```
/// use lowp::quant::Scheme;
/// use lowp::Rounding;
/// let x: Vec<f32> = (0..256).map(|i| (i as f32 * 0.1).sin()).collect();
/// for name in ["int4:g128:asym", "mxfp4", "nvfp4", "bfp8:b16", "bitmod4:g128", "nf4:g64", "fixed:q4.4"] {
///     let q = Scheme::parse(name)?.quantize(&Rounding::default(), &x, &[256], 0)?;
///     let mut y = vec![0.0f32; 256];
///     q.dequantize(&mut y)?;
///     assert!(q.bits_per_element() <= 8.5, "{name}");
/// }
/// assert!(Scheme::parse("mxfp5").is_err());
/// # Ok::<(), lowp::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub enum Scheme {
    /// Affine integers.
    Int(AffineInt),
    /// Fixed point.
    Fixed(FixedPoint),
    /// OCP MX.
    Mx(Mx),
    /// NVFP4.
    Nvfp4(Nvfp4),
    /// Block floating point.
    Bfp(Bfp),
    /// BitMoD.
    BitMod(BitMod),
    /// A codebook with absmax groups (NF4).
    Codebook(CodebookScheme),
}

/// A tensor quantized by a [`Scheme`].
#[derive(Clone, Debug, PartialEq)]
pub enum Quantized {
    /// By affine integers.
    Int(QuantizedInt),
    /// By fixed point: the scheme, the shape and the codes.
    Fixed(FixedPoint, Vec<usize>, Vec<i64>),
    /// By OCP MX.
    Mx(MxQuantized),
    /// By NVFP4.
    Nvfp4(Nvfp4Quantized),
    /// By block floating point.
    Bfp(BfpQuantized),
    /// By a codebook or BitMoD.
    Codebook(CodebookQuantized),
}

impl Scheme {
    /// Parses a scheme string (see the table above).
    pub fn parse(spec: &str) -> Result<Scheme> {
        let lower = spec.trim().to_ascii_lowercase();
        let head = lower.split(':').next().unwrap_or_default();
        Ok(if head.starts_with("int") {
            Scheme::Int(AffineInt::parse(spec)?)
        } else if head == "fixed" || (head.starts_with('q') && head.contains('.')) {
            Scheme::Fixed(FixedPoint::parse(spec)?)
        } else if head.starts_with("mx") {
            Scheme::Mx(Mx::parse(spec)?)
        } else if head == "nvfp4" {
            Scheme::Nvfp4(Nvfp4::parse(spec)?)
        } else if head.starts_with("bfp") {
            Scheme::Bfp(Bfp::parse(spec)?)
        } else if head.starts_with("bitmod") {
            Scheme::BitMod(BitMod::parse(spec)?)
        } else if head.starts_with("nf4") || head.starts_with("codebook(") {
            Scheme::Codebook(CodebookScheme::parse(spec)?)
        } else {
            return Err(Error::InvalidFormat(format!(
                "unknown scheme `{spec}`. Accepted: int<b>[:tensor|:channel|:g<G>][:sym|:asym]..., fixed:q<i>.<f>, \
                 mxfp8_e4m3, mxfp8_e5m2, mxfp6_e3m2, mxfp6_e2m3, mxfp4, mxint8, nvfp4, bfp<m>, bitmod3, bitmod4, nf4, codebook(v1,v2,...) \
                 (see docs/quantization.md)"
            )));
        })
    }

    /// Quantizes `x` of `shape` (C order) with groups or blocks along `axis` (fixed point ignores the axis).
    pub fn quantize<T: Element>(&self, cfg: &Rounding, x: &[T], shape: &[usize], axis: usize) -> Result<Quantized> {
        Ok(match self {
            Scheme::Int(s) => Quantized::Int(s.quantize(cfg, x, shape, axis)?),
            Scheme::Fixed(s) => {
                let mut codes = vec![0i64; x.len()];
                s.quantize(cfg, x, &mut codes)?;
                Quantized::Fixed(*s, shape.to_vec(), codes)
            }
            Scheme::Mx(s) => Quantized::Mx(s.quantize(cfg, x, shape, axis)?),
            Scheme::Nvfp4(s) => Quantized::Nvfp4(s.quantize(cfg, x, shape, axis)?),
            Scheme::Bfp(s) => Quantized::Bfp(s.quantize(cfg, x, shape, axis)?),
            Scheme::BitMod(s) => Quantized::Codebook(s.quantize(cfg, x, shape, axis)?),
            Scheme::Codebook(s) => Quantized::Codebook(s.quantize(cfg, x, shape, axis)?),
        })
    }
}

impl std::str::FromStr for Scheme {
    type Err = Error;
    fn from_str(s: &str) -> Result<Scheme> {
        Scheme::parse(s)
    }
}

impl std::fmt::Display for Scheme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scheme::Int(s) => write!(f, "{s}"),
            Scheme::Fixed(s) => write!(f, "fixed:{s}"),
            Scheme::Mx(s) => write!(f, "{s}"),
            Scheme::Nvfp4(s) => write!(f, "{s}"),
            Scheme::Bfp(s) => write!(f, "{s}"),
            Scheme::BitMod(s) => write!(f, "{s}"),
            Scheme::Codebook(s) => write!(f, "{s}"),
        }
    }
}

impl Quantized {
    /// The values, C order.
    pub fn dequantize<T: Element>(&self, out: &mut [T]) -> Result<()> {
        match self {
            Quantized::Int(q) => q.dequantize(out),
            Quantized::Fixed(s, _, codes) => s.dequantize(codes, out),
            Quantized::Mx(q) => q.dequantize(out),
            Quantized::Nvfp4(q) => q.dequantize(out),
            Quantized::Bfp(q) => q.dequantize(out),
            Quantized::Codebook(q) => q.dequantize(out),
        }
    }

    /// Storage in bits per element, metadata included.
    pub fn bits_per_element(&self) -> f64 {
        match self {
            Quantized::Int(q) => q.bits_per_element(),
            Quantized::Fixed(s, ..) => f64::from(s.bits()),
            Quantized::Mx(q) => q.bits_per_element(),
            Quantized::Nvfp4(q) => q.bits_per_element(),
            Quantized::Bfp(q) => q.bits_per_element(),
            Quantized::Codebook(q) => q.bits_per_element(),
        }
    }
}
