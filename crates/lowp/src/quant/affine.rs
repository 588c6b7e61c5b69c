//! Affine integer quantization (FORMATS.md §3): b-bit codes, a scale (and for the asymmetric scheme a zero
//! point) per tensor, per channel or per group of G consecutive elements along an axis.

use super::fixed::check_len;
use super::layout::Layout;
use super::round_to_integer;
use crate::error::{Error, Result};
use crate::{round_value, Element, Format, Rounding, RoundingMode};

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
        Ok(AffineInt { bits, granularity, symmetry, scale_format: Format::parse("float32")? })
    }

    /// Stores scales in `fmt` (e.g. float16, bfloat16, float8_e4m3fn, float8_e8m0fnu): each scale is rounded
    /// to it (nearest, ties to even) before the elements are computed with it.
    pub fn with_scale_format(mut self, fmt: Format) -> AffineInt {
        self.scale_format = fmt;
        self
    }

    /// `int<b>[:tensor|:channel|:g<G>][:sym|:asym][:full][:scale=<format>]`, e.g. `int4:g128:asym`,
    /// `int8:channel:sym`, `int4:g64:sym:scale=bf16`. Defaults: per tensor, symmetric narrow range, float32
    /// scales.
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
                _ => return Err(bad(&format!("unknown part `{p}`"))),
            }
        }
        let symmetry = match (sym, full) {
            (Some(true), true) => return Err(bad("`full` applies to symmetric schemes only")),
            (Some(true), false) => Symmetry::Asymmetric,
            (_, full) => Symmetry::Symmetric { full_range: full },
        };
        let s = AffineInt::new(bits, gran, symmetry)?;
        Ok(match scale {
            Some(f) => s.with_scale_format(f),
            None => s,
        })
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

    /// (lowest code, highest code).
    pub fn code_range(&self) -> (i32, i32) {
        let b = self.bits;
        match self.symmetry {
            Symmetry::Symmetric { full_range: false } => (-((1 << (b - 1)) - 1), (1 << (b - 1)) - 1),
            Symmetry::Symmetric { full_range: true } => (-(1 << (b - 1)), (1 << (b - 1)) - 1),
            Symmetry::Asymmetric => (0, (1 << b) - 1),
        }
    }

    /// Quantizes `x` of `shape` (C order) with channels or groups along `axis`. Scales come from the
    /// block's finite values (min/max, or absmax); infinities clamp to the end codes; NaN is an error (an
    /// integer code has no NaN); an all-zero block gets scale 0 and decodes to zeros.
    pub fn quantize<T: Element>(&self, cfg: &Rounding, x: &[T], shape: &[usize], axis: usize) -> Result<QuantizedInt> {
        let layout = Layout::new(shape, axis, self.granularity)?;
        check_len(layout.len(), x.len())?;
        if let Some(index) = x.iter().position(|v| v.to_f64().is_nan()) {
            return Err(Error::NotRepresentable {
                value: f64::NAN,
                index,
                format: self.to_string(),
                why: "integer codes have no NaN",
            });
        }
        // Block statistics over finite values.
        let nb = layout.blocks();
        let (mut lo, mut hi) = (vec![f64::INFINITY; nb], vec![f64::NEG_INFINITY; nb]);
        for (i, v) in x.iter().enumerate() {
            let v = v.to_f64();
            if v.is_finite() {
                let b = layout.block(i);
                lo[b] = lo[b].min(v);
                hi[b] = hi[b].max(v);
            }
        }
        let (qlo, qhi) = self.code_range();
        let store = Rounding::new(RoundingMode::NearestEven);
        let scale_fmt = self.scale_format.clone().with_saturation(true);
        let mut scales = vec![0.0; nb];
        let mut zeros = vec![0; nb];
        for b in 0..nb {
            let (mn, mx) = if lo[b] <= hi[b] { (lo[b].min(0.0), hi[b].max(0.0)) } else { (0.0, 0.0) };
            let raw = match self.symmetry {
                Symmetry::Symmetric { .. } => mn.abs().max(mx.abs()) / qhi as f64,
                Symmetry::Asymmetric => (mx - mn) / qhi as f64,
            };
            // An all-zero block keeps scale 0 (formats without zero, e8m0, would give NaN); a scale past the
            // scale format's range saturates to its max.
            scales[b] = if raw == 0.0 { 0.0 } else { round_value(&scale_fmt, &store, raw, 0)? };
            if self.symmetry == Symmetry::Asymmetric && scales[b] > 0.0 {
                let z = round_to_integer(-mn / scales[b], RoundingMode::NearestEven, 0, 0);
                zeros[b] = z.clamp(qlo as f64, qhi as f64) as i32;
            }
        }
        let codes = x
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let b = layout.block(i);
                let (s, z) = (scales[b], zeros[b]);
                if s == 0.0 {
                    return z;
                }
                let v = v.to_f64();
                let q =
                    if v.is_finite() { round_to_integer(v / s, cfg.mode, cfg.seed, i as u64) + z as f64 } else { v };
                q.clamp(qlo as f64, qhi as f64) as i32
            })
            .collect();
        Ok(QuantizedInt { scheme: self.clone(), shape: shape.to_vec(), axis, codes, scales, zeros })
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
        Ok(())
    }
}
