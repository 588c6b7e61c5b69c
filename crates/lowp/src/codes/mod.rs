//! Codes: a format's own bit patterns (sign, exponent, mantissa), so `decode(encode(x))` is exactly the
//! rounded value and codes match ml_dtypes' bytes for the formats both have. Bulk decoding, and packing
//! of sub-byte codes into the little-endian bit stream of FORMATS.md §5.

mod pack;

pub use pack::{pack, packed_len, unpack};

use rayon::prelude::*;

use crate::dtype::{CodeInt, Element};
use crate::error::{Error, Result};
use crate::format::{exponent_of, pow2, Format};
use crate::round::rng::{Rng64, STREAM_FLIP, STREAM_FLIP_BIT};
use crate::round::{BitFlip, FlipScope};

/// The code of `v`, a value of the format (already rounded), or `None` if it has no code (NaN in a format
/// without NaN, a negative number in an unsigned format, a value off the format's grid).
///
/// # Examples
/// ```
/// use lowp::{codes::code_of, Format};
/// let h = Format::parse("float16")?;
/// assert_eq!(code_of(&h, 1.0), Some(0x3c00));
/// assert_eq!(code_of(&h, -0.0), Some(0x8000));
/// assert_eq!(code_of(&h, 0.1), None);
/// # Ok::<(), lowp::Error>(())
/// ```
pub fn code_of(fmt: &Format, v: f64) -> Option<u64> {
    if !fmt.exponent_limit() {
        return None;
    }
    let neg = v.is_sign_negative();
    if v.is_nan() {
        return fmt.nan_code(neg);
    }
    if v.is_infinite() {
        return fmt.inf_code(neg);
    }
    if neg && !fmt.signed() && v != 0.0 {
        return None;
    }
    let sign = if neg && (fmt.has_neg_zero() || v != 0.0) { fmt.sign_bit() } else { 0 };
    let mag = v.abs();
    if mag == 0.0 {
        return fmt.has_zero().then_some(sign);
    }
    let m = fmt.man_bits() as i32;
    let ex = exponent_of(mag);
    let code_mag = if ex < fmt.emin() {
        if !fmt.has_zero() {
            return None;
        }
        scaled_integer(mag, fmt.emin() - m)?
    } else {
        let n = scaled_integer(mag, ex - m)?; // in [2^M, 2^(M+1))
        (((ex + fmt.bias()) as u64) << m) | (n - (1u64 << m))
    };
    (code_mag <= fmt.max_mag_code()).then_some(sign | code_mag)
}

/// [`code_of`] for values already rounded to the format, in bulk: a normal value's code is read off its bits
/// (exponent re-biased, mantissa shifted), NaN's is the format's NaN code; zeros, subnormals and infinities
/// go through [`code_of`]. The fast part is written with masks on u64 lanes so that a loop over a tile
/// vectorises (a scalar, branchy version ran e8m0 encoding at a seventh of its rounding speed).
pub(crate) struct RoundedCoder<'a> {
    fmt: &'a Format,
    man_shift: u64,
    field_lo: u64,
    field_hi: u64,
    rebias: u64,
    field_mask: u64,
    sign_bit: u64,
    unsigned_mask: u64,
    nan_mask: u64,
    nan: [u64; 2],
}

impl<'a> RoundedCoder<'a> {
    pub(crate) fn new(fmt: &'a Format) -> Self {
        let lo = (fmt.emin() + 1023).max(1) as u64;
        let hi = (fmt.emax() + 1023).min(0x7fe) as u64;
        RoundedCoder {
            fmt,
            man_shift: u64::from(52 - fmt.man_bits()),
            field_lo: lo,
            field_hi: hi,
            rebias: (fmt.bias() - 1023) as u64,
            field_mask: (1u64 << fmt.exp_bits()) - 1,
            sign_bit: fmt.sign_bit(),
            unsigned_mask: if fmt.signed() { 0 } else { u64::MAX },
            nan_mask: if fmt.has_nan() { u64::MAX } else { 0 },
            nan: [fmt.nan_code(false).unwrap_or(0), fmt.nan_code(true).unwrap_or(0)],
        }
    }

    /// The code of `v`, a value of the format, and whether it is right: true for normal values and NaN.
    /// Other values (zeros, subnormals, infinities) need [`RoundedCoder::code`].
    #[inline(always)]
    pub(crate) fn fast(&self, v: f64) -> (u64, bool) {
        let bits = v.to_bits();
        let neg = (bits >> 63).wrapping_neg(); // all ones when negative
        let field = (bits >> 52) & 0x7ff;
        let man = bits & ((1u64 << 52) - 1);
        let normal = mask(field >= self.field_lo) & mask(field <= self.field_hi) & !(neg & self.unsigned_mask);
        let nan = mask(field == 0x7ff) & mask(man != 0) & self.nan_mask;
        let code = (self.sign_bit & neg)
            | ((field.wrapping_add(self.rebias) & self.field_mask) << (52 - self.man_shift))
            | (man >> self.man_shift);
        let nan_code = (self.nan[1] & neg) | (self.nan[0] & !neg);
        ((code & normal) | (nan_code & !normal), (normal | nan) != 0)
    }

    /// The code of `v`, a value of the format (or NaN); None where [`code_of`] gives None.
    pub(crate) fn code(&self, v: f64) -> Option<u64> {
        match self.fast(v) {
            (c, true) => Some(c),
            _ => code_of(self.fmt, v),
        }
    }
}

/// All ones for true, zero for false.
#[inline(always)]
fn mask(b: bool) -> u64 {
    u64::from(b).wrapping_neg()
}

/// `mag / 2^k` if it is an integer below 2^53.
fn scaled_integer(mag: f64, k: i32) -> Option<u64> {
    // Two exact power-of-two steps keep every intermediate in range.
    let (k1, k2) = (k / 2, k - k / 2);
    let q = mag * pow2(-k1) * pow2(-k2);
    (q.fract() == 0.0 && q < 9007199254740992.0).then_some(q as u64)
}

pub(crate) fn check_code_width(fmt: &Format, width: u32) -> Result<()> {
    if !fmt.exponent_limit() {
        return Err(Error::InvalidOption(format!(
            "{fmt} has no exponent limit, so its values have no codes; round instead of encoding"
        )));
    }
    if fmt.bits() > width {
        return Err(Error::InvalidOption(format!(
            "{} codes have {} bits and do not fit in a {width}-bit integer",
            fmt.name(),
            fmt.bits()
        )));
    }
    Ok(())
}

/// The integer width codes of `fmt` are stored in: 8, 16, 32 or 64.
pub fn code_width(fmt: &Format) -> u32 {
    match fmt.bits() {
        0..=8 => 8,
        9..=16 => 16,
        17..=32 => 32,
        _ => 64,
    }
}

/// Rejects inputs without a code before anything is written: NaN in a format without NaN.
pub(crate) fn check_encodable<T: Element>(fmt: &Format, src: &[T]) -> Result<()> {
    if fmt.has_nan() {
        return Ok(());
    }
    match first_index(src, |x| x.to_f64().is_nan()) {
        None => Ok(()),
        Some(index) => Err(Error::NotRepresentable {
            value: f64::NAN,
            index,
            format: fmt.name().to_string(),
            why: "the format has no NaN",
        }),
    }
}

/// Index of the first element satisfying `bad`. Chunks are tested with a branch-free fold (which
/// vectorises) and only a failing chunk is searched; a per-element parallel search costs ~10 ns an element.
pub(crate) fn first_index<T: Sync>(xs: &[T], bad: impl Fn(&T) -> bool + Sync) -> Option<usize> {
    const BLOCK: usize = 1 << 14;
    let block = xs.par_chunks(BLOCK).position_first(|c| c.iter().fold(false, |acc, x| acc | bad(x)))?;
    let start = block * BLOCK;
    xs[start..].iter().position(bad).map(|i| start + i)
}

/// Whether a soft error hits: the draw's top 53 bits, as a fraction of 1, are below `prob`.
pub(crate) fn is_hit(draw: u64, prob: f64) -> bool {
    ((draw >> 11) as f64) * (1.0 / 9007199254740992.0) < prob
}

/// Which bit a soft error flips, from a 64-bit draw: uniform over the bits `scope` allows.
fn flip_mask(fmt: &Format, scope: FlipScope, draw: u64) -> u64 {
    let n = match scope {
        FlipScope::Significand => fmt.man_bits(),
        FlipScope::Code => fmt.bits(),
    };
    if n == 0 {
        return 0;
    }
    let b = ((draw >> 32) * u64::from(n)) >> 32;
    1u64 << b
}

/// Flips one bit of the value `v` of `fmt`, chosen by `draw`.
pub(crate) fn flip_bit<T: Element>(fmt: &Format, scope: FlipScope, v: T, draw: u64) -> T {
    let mask = flip_mask(fmt, scope, draw);
    let x = v.to_f64();
    if mask == 0 || x.is_nan() {
        return v;
    }
    if let Some(code) = code_of(fmt, x) {
        return T::from_f64(fmt.decode_code(code ^ mask));
    }
    // No exponent limit: flip a bit of the M stored significand bits of the value itself.
    if x == 0.0 || x.is_infinite() {
        return v;
    }
    let m = fmt.man_bits() as i32;
    let ex = exponent_of(x.abs());
    let Some(n) = scaled_integer(x.abs(), ex - m) else {
        return v;
    };
    let flipped = (n ^ mask) as f64 * pow2(-m) * pow2(ex);
    T::from_f64(if x < 0.0 { -flipped } else { flipped })
}

/// Applies soft errors to codes, drawing exactly as [`crate::round`] does, so encode-with-flips equals
/// encode-of-round-with-flips.
pub(crate) fn flip_codes<C: CodeInt>(fmt: &Format, flip: BitFlip, seed: u64, codes: &mut [C]) {
    if flip.prob == 0.0 {
        return;
    }
    let hit = Rng64::new(seed, STREAM_FLIP);
    let which = Rng64::new(seed, STREAM_FLIP_BIT);
    for (i, c) in codes.iter_mut().enumerate() {
        let idx = i as u64;
        if is_hit(hit.at(idx), flip.prob) {
            let code = c.to_u64();
            if fmt.is_nan_code(code) {
                continue;
            }
            *c = C::from_u64(code ^ flip_mask(fmt, flip.scope, which.at(idx)));
        }
    }
}

/// Decodes codes into values. Codes wider than the format are an error naming the first one.
///
/// # Examples
/// ```
/// use lowp::{codes::decode, Format};
/// let f = Format::parse("fp4")?;
/// let mut v = [0.0f32; 3];
/// decode(&f, &[1u8, 7, 15], &mut v)?;
/// assert_eq!(v, [0.5, 6.0, -6.0]);
/// # Ok::<(), lowp::Error>(())
/// ```
pub fn decode<C: CodeInt, T: Element>(fmt: &Format, src: &[C], dst: &mut [T]) -> Result<()> {
    if src.len() != dst.len() {
        return Err(Error::LengthMismatch { input: src.len(), output: dst.len() });
    }
    fmt.check_dtype(T::DTYPE, T::MAN_BITS, T::MAX)?;
    let smallest = if fmt.has_zero() { fmt.emin() - fmt.man_bits() as i32 } else { fmt.emin() };
    let dtype_smallest = if T::MAN_BITS == 23 { -149 } else { -1074 };
    if smallest < dtype_smallest {
        return Err(Error::UnsupportedDtype {
            format: fmt.name().to_string(),
            dtype: T::DTYPE,
            reason: format!("its smallest value 2^{smallest} is below the data type's 2^{dtype_smallest}"),
        });
    }
    let bits = fmt.bits();
    if bits < 64 {
        if let Some(index) = first_index(src, |c| c.to_u64() >> bits != 0) {
            return Err(Error::CodeTooWide { code: src[index].to_u64(), index, bits });
        }
    }
    if bits <= 16 {
        let table: Vec<T> = (0..1u64 << bits).map(|c| T::from_f64(fmt.decode_code(c))).collect();
        dst.par_chunks_mut(1 << 16).zip(src.par_chunks(1 << 16)).for_each(|(d, s)| {
            for (d, c) in d.iter_mut().zip(s) {
                *d = table[c.to_u64() as usize];
            }
        });
    } else {
        dst.par_chunks_mut(1 << 14).zip(src.par_chunks(1 << 14)).for_each(|(d, s)| {
            for (d, c) in d.iter_mut().zip(s) {
                *d = T::from_f64(fmt.decode_code(c.to_u64()));
            }
        });
    }
    Ok(())
}
