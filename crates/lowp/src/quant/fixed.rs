//! Fixed point Q(i.f): `i` integer bits including the sign, `f` fraction bits; codes are two's complement
//! integers of i + f bits, value = code * 2^-f.

use rayon::prelude::*;

use super::round_to_integer;
use crate::error::{Error, Result};
use crate::round::check_len;
use crate::{Element, Rounding};

/// What happens to values outside the range: clamp to the nearest end, or keep the low i + f bits (two's
/// complement wrap-around, what integer hardware does). Chosen explicitly; saturation is the default.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Overflow {
    /// Clamp to [min, max].
    #[default]
    Saturate,
    /// Keep the low i + f bits of the rounded integer.
    Wrap,
}

/// A signed fixed-point format Q(i.f): range [-2^(i-1), 2^(i-1) - 2^-f], step 2^-f.
///
/// # Examples
/// ```
/// use lowp::quant::{FixedPoint, Overflow};
/// let q = FixedPoint::new(1, 7, Overflow::Saturate)?; // Q1.7: [-1, 1 - 1/128]
/// assert_eq!((q.min(), q.max(), q.step(), q.bits()), (-1.0, 0.9921875, 0.0078125, 8));
/// assert!(FixedPoint::new(0, 8, Overflow::Saturate).is_err());
/// # Ok::<(), lowp::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FixedPoint {
    int_bits: u32,
    frac_bits: u32,
    overflow: Overflow,
}

impl FixedPoint {
    /// Q(`int_bits`.`frac_bits`); `int_bits` counts the sign bit, so it is at least 1; i + f <= 64.
    pub fn new(int_bits: u32, frac_bits: u32, overflow: Overflow) -> Result<FixedPoint> {
        if int_bits == 0 || int_bits + frac_bits > 64 || frac_bits > 1000 {
            return Err(Error::InvalidFormat(format!(
                "fixed point q{int_bits}.{frac_bits}: need at least 1 integer bit (the sign) and at most 64 bits in all"
            )));
        }
        Ok(FixedPoint { int_bits, frac_bits, overflow })
    }

    /// `q<i>.<f>`, optionally `:wrap` or `:sat` (the default), e.g. `q4.4`, `q1.15:wrap`; a leading `fixed:`
    /// is accepted.
    pub fn parse(spec: &str) -> Result<FixedPoint> {
        let bad = || {
            Error::InvalidFormat(format!(
                "fixed-point scheme `{spec}`: expected q<i>.<f>[:sat|:wrap], e.g. q4.4 or q1.15:wrap"
            ))
        };
        let s = spec.trim().to_ascii_lowercase();
        let s = s.strip_prefix("fixed:").unwrap_or(&s);
        let (q, overflow) = match s.split_once(':') {
            None => (s, Overflow::Saturate),
            Some((q, "sat" | "saturate")) => (q, Overflow::Saturate),
            Some((q, "wrap")) => (q, Overflow::Wrap),
            Some(_) => return Err(bad()),
        };
        let (i, f) = q.strip_prefix('q').and_then(|q| q.split_once('.')).ok_or_else(bad)?;
        let (i, f) = (i.parse().map_err(|_| bad())?, f.parse().map_err(|_| bad())?);
        FixedPoint::new(i, f, overflow)
    }

    /// Total bits i + f.
    pub fn bits(&self) -> u32 {
        self.int_bits + self.frac_bits
    }
    /// Integer bits, the sign included.
    pub fn int_bits(&self) -> u32 {
        self.int_bits
    }
    /// Fraction bits.
    pub fn frac_bits(&self) -> u32 {
        self.frac_bits
    }
    /// Overflow rule.
    pub fn overflow(&self) -> Overflow {
        self.overflow
    }
    /// 2^-f.
    pub fn step(&self) -> f64 {
        (-(self.frac_bits as f64)).exp2()
    }
    /// -2^(i-1).
    pub fn min(&self) -> f64 {
        self.min_code() as f64 * self.step()
    }
    /// 2^(i-1) - 2^-f.
    pub fn max(&self) -> f64 {
        self.max_code() as f64 * self.step()
    }
    fn min_code(&self) -> i64 {
        if self.bits() == 64 {
            i64::MIN
        } else {
            -(1i64 << (self.bits() - 1))
        }
    }
    fn max_code(&self) -> i64 {
        if self.bits() == 64 {
            i64::MAX
        } else {
            (1i64 << (self.bits() - 1)) - 1
        }
    }

    /// The code of one value, as element `index` of an array (the index picks stochastic draws).
    pub fn code_of(&self, cfg: &Rounding, x: f64, index: usize) -> Result<i64> {
        if x.is_nan() {
            return Err(Error::NotRepresentable {
                value: x,
                index,
                format: self.to_string(),
                why: "fixed point has no NaN",
            });
        }
        if x.is_infinite() {
            return match self.overflow {
                Overflow::Saturate => Ok(if x > 0.0 { self.max_code() } else { self.min_code() }),
                Overflow::Wrap => Err(Error::NotRepresentable {
                    value: x,
                    index,
                    format: self.to_string(),
                    why: "an infinity has no wrapped value",
                }),
            };
        }
        // x * 2^f is exact unless it overflows f64, which only matters past every code's range.
        let scaled = x * (self.frac_bits as f64).exp2();
        let n = if scaled.is_finite() { round_to_integer(scaled, cfg.mode, cfg.seed, index as u64) } else { scaled };
        Ok(match self.overflow {
            Overflow::Saturate => {
                if n >= self.max_code() as f64 {
                    self.max_code()
                } else if n <= self.min_code() as f64 {
                    self.min_code()
                } else {
                    n as i64
                }
            }
            Overflow::Wrap => {
                // n is an integer; above 2^126 it is a multiple of 2^74, so 0 modulo 2^64.
                let wide = if n.abs() < 2f64.powi(126) { n as i128 } else { 0 };
                let bits = self.bits();
                let low = (wide as u128) & if bits == 64 { u128::from(u64::MAX) } else { (1u128 << bits) - 1 };
                // sign-extend the low `bits` bits
                let shift = 128 - bits;
                (((low << shift) as i128) >> shift) as i64
            }
        })
    }

    /// Quantizes `x` into two's complement codes. NaN is an error (fixed point has no NaN), and so is an
    /// infinity under wrap-around; under saturation infinities clamp.
    pub fn quantize<T: Element>(&self, cfg: &Rounding, x: &[T], codes: &mut [i64]) -> Result<()> {
        check_len(x.len(), codes.len())?;
        codes.par_iter_mut().zip(x.par_iter()).enumerate().try_for_each(|(i, (c, v))| {
            *c = self.code_of(cfg, v.to_f64(), i)?;
            Ok(())
        })
    }

    /// The values of `codes`; codes outside the i + f bit range are an error, and so is a data type too
    /// narrow to hold every value exactly (Q2.30 into float32).
    pub fn dequantize<T: Element>(&self, codes: &[i64], out: &mut [T]) -> Result<()> {
        check_len(codes.len(), out.len())?;
        if self.bits() - 1 > T::MAN_BITS + 1 {
            return Err(Error::UnsupportedDtype {
                format: self.to_string(),
                dtype: T::DTYPE,
                reason: format!(
                    "its {} magnitude bits exceed the data's {} significant bits",
                    self.bits() - 1,
                    T::MAN_BITS + 1
                ),
            });
        }
        if let Some(index) = codes.iter().position(|&c| c < self.min_code() || c > self.max_code()) {
            return Err(Error::CodeTooWide { code: codes[index] as u64, index, bits: self.bits() });
        }
        let step = self.step();
        out.par_iter_mut().zip(codes.par_iter()).for_each(|(o, &c)| *o = T::from_f64(c as f64 * step));
        Ok(())
    }

    /// Rounds `x` to the fixed-point grid in place of quantize + dequantize (values, same data type).
    pub fn round<T: Element>(&self, cfg: &Rounding, x: &[T], out: &mut [T]) -> Result<()> {
        let mut codes = vec![0i64; x.len()];
        self.quantize(cfg, x, &mut codes)?;
        self.dequantize(&codes, out)
    }
}

impl std::fmt::Display for FixedPoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "q{}.{}", self.int_bits, self.frac_bits)?;
        if self.overflow == Overflow::Wrap {
            f.write_str(":wrap")?;
        }
        Ok(())
    }
}
