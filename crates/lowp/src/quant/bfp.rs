//! Block floating point (FORMATS.md §4): a shared exponent per block and signed integer mantissas of m bits.

use super::layout::Layout;
use super::{exponent_of, round_to_integer, Granularity};
use crate::error::{Error, Result};
use crate::round::check_len;
use crate::{Element, Rounding};

/// The shared-exponent code of a block holding NaN or an infinity (integer mantissas have neither).
const EXP_NAN: u8 = 0xFF;

/// Block floating point with m-bit signed mantissas (the sign counted) and an 8-bit shared exponent.
///
/// The shared exponent is e = floor(log2(amax)) over the block's finite values (clamped to [-127, 127], -127
/// for an all-zero block); mantissas are x / 2^(e - m + 2) rounded under the chosen mode and clamped to
/// [-(2^(m-1) - 1), 2^(m-1) - 1], so the block's largest element uses the top mantissa bit (the layout of
/// QPyTorch's block floating point and Microsoft's MSFP).
///
/// # Examples
/// ```
/// use lowp::quant::Bfp;
/// use lowp::Rounding;
///
/// let s = Bfp::parse("bfp8:b4")?;
/// let q = s.quantize(&Rounding::default(), &[1.0f32, -0.3, 3.0, 0.01], &[4], 0)?;
/// assert_eq!(q.exponents, [128]); // floor(log2 3) = 1, stored with bias 127
/// assert_eq!(q.mantissas, [32, -10, 96, 0]); // x / 2^(1 - 6): 32, -9.6, 96, 0.32
/// assert_eq!(q.bits_per_element(), 10.0);
/// # Ok::<(), lowp::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bfp {
    mantissa_bits: u32,
    block: usize,
}

/// A tensor quantized by [`Bfp`]: mantissas (C order) and biased shared exponents (0xFF = NaN block).
#[derive(Clone, Debug, PartialEq)]
pub struct BfpQuantized {
    /// The scheme.
    pub scheme: Bfp,
    /// The tensor's shape.
    pub shape: Vec<usize>,
    /// The axis blocks run along.
    pub axis: usize,
    /// Signed mantissas, C order.
    pub mantissas: Vec<i32>,
    /// Shared exponents with bias 127, in block order.
    pub exponents: Vec<u8>,
}

impl Bfp {
    /// m-bit mantissas (2..=24, the sign counted), blocks of `block`.
    pub fn new(mantissa_bits: u32, block: usize) -> Result<Bfp> {
        if !(2..=24).contains(&mantissa_bits) || block == 0 {
            return Err(Error::InvalidFormat(format!(
                "block floating point with {mantissa_bits}-bit mantissas in blocks of {block}: mantissas take 2 to 24 \
                 bits (the sign counted) and blocks at least one element"
            )));
        }
        Ok(Bfp { mantissa_bits, block })
    }

    /// `bfp<m>[:b<N>]`, e.g. `bfp8:b16` (blocks of 16 by default).
    pub fn parse(spec: &str) -> Result<Bfp> {
        let bad = |why: String| {
            Error::InvalidFormat(format!(
                "block floating point scheme `{spec}`: {why}. Accepted: bfp<m>[:b<block>], e.g. bfp8:b16"
            ))
        };
        let lower = spec.trim().to_ascii_lowercase();
        let mut parts = lower.split(':');
        let m = parts
            .next()
            .and_then(|p| p.strip_prefix("bfp"))
            .and_then(|m| m.parse::<u32>().ok())
            .ok_or_else(|| bad("it must start with bfp<mantissa bits>".into()))?;
        let mut block = 16;
        for p in parts {
            match p.strip_prefix('b').and_then(|b| b.parse::<usize>().ok()) {
                Some(b) => block = b,
                None => return Err(bad(format!("unknown part `{p}`"))),
            }
        }
        Bfp::new(m, block)
    }

    /// Mantissa bits, the sign counted.
    pub fn mantissa_bits(&self) -> u32 {
        self.mantissa_bits
    }
    /// Block size.
    pub fn block(&self) -> usize {
        self.block
    }

    /// Quantizes `x` of `shape` (C order) in blocks along `axis`; a block holding NaN or an infinity gets the
    /// NaN exponent (0xFF) and decodes to NaN.
    pub fn quantize<T: Element>(&self, cfg: &Rounding, x: &[T], shape: &[usize], axis: usize) -> Result<BfpQuantized> {
        super::check_no_flip(cfg)?;
        let layout = Layout::new(shape, axis, Granularity::Group(self.block))?;
        check_len(layout.len(), x.len())?;
        let (amax, special) = layout.block_amax(x, |_| true); // integer mantissas hold neither NaN nor inf
        let exps: Vec<i32> =
            amax.iter().map(|&a| if a == 0.0 { -127 } else { exponent_of(a).clamp(-127, 127) }).collect();
        let exponents = exps.iter().zip(&special).map(|(&e, &s)| if s { EXP_NAN } else { (e + 127) as u8 }).collect();
        let top = f64::from((1u32 << (self.mantissa_bits - 1)) - 1);
        let m = self.mantissa_bits as i32;
        let mantissas = x
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let b = layout.block(i);
                if special[b] {
                    return 0;
                }
                let q = v.to_f64() * crate::format::pow2(m - 2 - exps[b]); // exact power-of-two scaling
                round_to_integer(q, cfg.mode, cfg.seed, i as u64).clamp(-top, top) as i32
            })
            .collect();
        Ok(BfpQuantized { scheme: self.clone(), shape: shape.to_vec(), axis, mantissas, exponents })
    }
}

impl BfpQuantized {
    /// mantissa * 2^(e - m + 2) for every element (NaN in NaN blocks), C order.
    pub fn dequantize<T: Element>(&self, out: &mut [T]) -> Result<()> {
        let layout = Layout::new(&self.shape, self.axis, Granularity::Group(self.scheme.block))?;
        check_len(self.mantissas.len(), out.len())?;
        let m = self.scheme.mantissa_bits as i32;
        for (i, (o, &q)) in out.iter_mut().zip(&self.mantissas).enumerate() {
            let e = self.exponents[layout.block(i)];
            let v =
                if e == EXP_NAN { f64::NAN } else { f64::from(q) * crate::format::pow2(i32::from(e) - 127 - m + 2) };
            *o = T::from_f64(v);
        }
        Ok(())
    }

    /// Storage in bits per element: m per mantissa plus 8 per block exponent.
    pub fn bits_per_element(&self) -> f64 {
        let n = self.mantissas.len().max(1) as f64;
        self.scheme.mantissa_bits as f64 + 8.0 * self.exponents.len() as f64 / n
    }
}

impl std::fmt::Display for Bfp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "bfp{}:b{}", self.mantissa_bits, self.block)
    }
}
