//! Quantization schemes (FORMATS.md §3-§4): fixed point Q(i.f); affine integer quantization (symmetric or
//! with a zero point; per tensor, per channel, per group); OCP microscaling (MXFP8/6/4, MXINT8); NVFP4;
//! block floating point; codebooks (NF4, user lists) and BitMoD's per-group choice of FP4/FP3 variants.
//!
//! Every scheme rounds a real number to an integer with a [`RoundingMode`], made explicit because codes in
//! the field disagree (torch.round is ties-to-even, C's roundf ties-away, many PTQ codes floor(x + 0.5)).
//! Random draws of the stochastic modes come from the same counter-based generator as the float formats:
//! a function of (seed, element index), identical for any thread count.
//!
//! ```
//! use lowp::quant::FixedPoint;
//! use lowp::Rounding;
//!
//! let q = FixedPoint::parse("q4.4")?; // 8 bits: [-8, 8 - 1/16], step 1/16
//! let mut codes = [0i64; 3];
//! q.quantize(&Rounding::default(), &[1.03125f32, -9.0, 7.99], &mut codes)?;
//! assert_eq!(codes, [16, -128, 127]); // 1.03125 * 16 = 16.5 -> 16 (ties to even); the rest saturate
//! # Ok::<(), lowp::Error>(())
//! ```

mod affine;
mod bfp;
mod codebook;
mod codebook_kernel;
mod fixed;
mod layout;
mod mx;
mod nvfp4;
mod scheme;
mod store;
mod tensor;

pub use affine::{AffineInt, Granularity, QuantizedInt, ScaleChoice, Symmetry};
pub use bfp::{Bfp, BfpQuantized};
pub use codebook::{BitMod, Codebook, CodebookQuantized, CodebookScheme, NF4};
pub use fixed::{FixedPoint, Overflow};
pub use mx::{Mx, MxElement, MxQuantized, ScaleRule};
pub use nvfp4::{Nvfp4, Nvfp4Quantized};
pub use scheme::{Quantized, Scheme};
pub use store::{
    from_bytes, load, save, to_bytes, to_bytes_with, write_atomically, Floats, PlainTensor, SafetensorsFile,
    TensorInfo, METADATA_KEY,
};
pub use tensor::{packed_bytes, Part, QuantizedTensor, PART_NAMES};

pub(crate) use crate::format::exponent_of;
use crate::round::rng::{draw, STREAM_ROUND};
use crate::RoundingMode;

/// `v` rounded to an integer under `mode`; `index` picks the random draw of stochastic modes. `v` must be
/// finite. Written for clarity: the magnitude's integer part and its exact fraction |v| - trunc(|v|) (a
/// floor-based fraction of a negative number is not always exact), then the mode's rule for going away from
/// zero.
///
/// Stochastic rounding goes away from zero with probability equal to the fraction, compared with a 53-bit
/// uniform number (`stochastic`); with probability 1/2 for inexact values (`stochastic_equal`); or as
/// P3109's StochasticA with N random bits (`stochastic:N`).
pub fn round_to_integer(v: f64, mode: RoundingMode, seed: u64, index: u64) -> f64 {
    if mode == RoundingMode::NearestEven {
        return v.round_ties_even(); // the same rule, in one instruction: the quantizers' hot path
    }
    let neg = v < 0.0;
    let a = v.abs();
    let t = a.trunc();
    let frac = a - t; // exact: the bits of `a` below the units
    if frac == 0.0 {
        return v;
    }
    let t_odd = (t % 2.0) != 0.0;
    let away = match mode {
        RoundingMode::NearestEven => frac > 0.5 || (frac == 0.5 && t_odd),
        RoundingMode::NearestZero => frac > 0.5,
        RoundingMode::NearestAway => frac >= 0.5,
        RoundingMode::TowardPositive => !neg,
        RoundingMode::TowardNegative => neg,
        RoundingMode::TowardZero => false,
        RoundingMode::Odd => !t_odd,
        _ => stochastic_up(mode, frac, seed, index),
    };
    let m = if away { t + 1.0 } else { t };
    if neg {
        -m
    } else {
        m
    }
}

/// Records the error of block `block` when no earlier block failed: the error a batch-parallel run reports
/// is the first one in block order, whatever the thread timing.
pub(crate) fn keep_first(failed: &std::sync::Mutex<Option<(usize, crate::Error)>>, block: usize, e: crate::Error) {
    let mut f = failed.lock().expect("no panic while held");
    if f.as_ref().is_none_or(|(b, _)| block < *b) {
        *f = Some((block, e));
    }
}

/// An error when `cfg` asks for soft-error bit flips: they are defined on a format's codes (`lowp::round`,
/// `lowp::encode`), not on a scheme's codes and scales.
pub(crate) fn check_no_flip(cfg: &crate::Rounding) -> crate::Result<()> {
    match cfg.flip {
        None => Ok(()),
        Some(_) => Err(crate::Error::InvalidOption(
            "soft-error bit flips apply to formats (round, encode), not to quantization schemes".into(),
        )),
    }
}

/// The scale stored for a block with nothing to scale (no nonzero finite value): 0, or in a scale format
/// without a zero (E8M0) its smallest positive value. Either way the block's codes decode to zeros, and every
/// stored scale has a code in its format.
pub(crate) fn empty_block_scale(fmt: &crate::Format) -> f64 {
    if fmt.has_zero() {
        0.0
    } else {
        fmt.min_subnormal()
    }
}

/// Whether a stochastic `mode` moves to the upper of two neighbours, `frac` being the fraction of the way
/// from the lower one (in (0, 1)): with probability `frac` against a 53-bit uniform number (`stochastic`),
/// with probability 1/2 (`stochastic_equal`), or as P3109's StochasticA with N bits (`stochastic:N`).
pub(crate) fn stochastic_up(mode: RoundingMode, frac: f64, seed: u64, index: u64) -> bool {
    let r = draw(seed, STREAM_ROUND, index, 64);
    match mode {
        RoundingMode::Stochastic => ((r >> 11) as f64 * (1.0 / 9007199254740992.0)) < frac,
        RoundingMode::StochasticEqual => r >> 63 == 1,
        RoundingMode::StochasticBits(n) => {
            let n = u32::from(n);
            let scaled = (frac * (n as f64).exp2()).floor() as u128; // frac has at most 53 bits: exact
            scaled + u128::from(r >> (64 - n)) >= 1u128 << n
        }
        _ => unreachable!("stochastic_up is called for stochastic modes only"),
    }
}
