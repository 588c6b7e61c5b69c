//! Rounding: modes, the scalar reference, the bulk kernels, and the random numbers they draw.
//!
//! Semantics (FORMATS.md §2), for every mode:
//! - one rounding, from the input straight to the target; exact inputs stay exact; NaN inputs are returned
//!   unchanged; the sign of zero is kept where the format has -0;
//! - underflow: with subnormals, rounding is to the subnormal grid in one step; without, to {0, ±min_normal},
//!   and under `nearest_even` the exact tie min_normal/2 goes to min_normal (MATLAB chop's rule);
//!   `nearest_zero` sends it to 0, `nearest_away` to min_normal, `odd` sends every inexact tiny value to
//!   ±min_normal;
//! - overflow: a result beyond ±max becomes ±inf (IEEE formats), NaN (`fn`/`fnuz` formats) or ±max (with
//!   saturation, and always for formats with neither inf nor NaN) when the mode rounds away from zero there
//!   (nearest and stochastic modes; `toward_positive` for positive values, `toward_negative` for negative);
//!   otherwise it is ±max (`toward_zero` and `odd` never overflow a finite input);
//! - stochastic modes choose between the two neighbours on the grid extended past max; a choice beyond max
//!   overflows like a nearest mode, so it gives ±inf/NaN, or ±max with saturation;
//! - ±inf inputs give ±inf when the format has it (unless saturating without `propagate_inf`), else ±max
//!   when saturating, else NaN; unsigned formats give NaN for every negative input (-0 gives +0);
//! - formats without zero (e8m0) give NaN for ±0 and their smallest value for anything below it;
//! - ties-to-even and round-to-odd look at the last bit of the *code*: for formats with no mantissa bits
//!   (e8m0) that is the exponent's last bit (ml_dtypes instead rounds e8m0 ties upward).
//!
//! Stochastic draws: see [`rng`]. With float32 data a draw has 32 bits and with float64 data 64; the
//! probability of rounding up is exact whenever the discarded part has at most that many bits, and is the
//! exact probability rounded down to a multiple of 2^-32 (2^-64) otherwise.

mod kernel;
mod mode;
pub mod reference;
pub mod rng;

pub use kernel::Isa;
pub(crate) use kernel::{isa_dispatched, prefetch};
pub use mode::{BitFlip, FlipScope, Rounding, RoundingMode};

use rayon::prelude::*;

use crate::codes;
use crate::dtype::{CodeInt, Element};
use crate::error::{Error, Result};
use crate::format::Format;
use kernel::{fast_encode, mode_id, needs_general, GENERAL};
use rng::{Rng32, Rng64, STREAM_FLIP, STREAM_FLIP_BIT, STREAM_ROUND};

/// Elements per parallel task. A power of two, so no task straddles a multiple of 2^32 (the 32-bit
/// generator keys on the high half of the index).
const CHUNK: usize = 1 << 16;

/// Outputs at least this large are written with non-temporal stores.
const STREAM_MIN_BYTES: usize = 16 << 20;

/// Kernel hooks of the storage types; sealed (only `f32` and `f64` implement it).
pub mod hooks {
    use super::*;

    /// The per-type entry points of the kernels.
    pub trait Kernels: Sized {
        #[doc(hidden)]
        type Params: Copy + Send + Sync;
        #[doc(hidden)]
        type Rng: Copy + Send + Sync;
        #[doc(hidden)]
        type Bits: Copy + Default + Send + Sync + Into<u64>;
        #[doc(hidden)]
        const MIN_NORMAL_EXP: i32;
        #[doc(hidden)]
        fn params(fmt: &Format, mode: RoundingMode) -> Self::Params;
        #[doc(hidden)]
        fn rng(seed: u64, start: u64) -> Self::Rng;
        #[doc(hidden)]
        #[allow(clippy::too_many_arguments)]
        fn round_k(
            isa: Isa,
            mode: u8,
            p: &Self::Params,
            rng: &Self::Rng,
            start: u64,
            src: &[Self],
            dst: &mut [Self],
            stream: bool,
        );
        #[doc(hidden)]
        fn round_inplace_k(isa: Isa, mode: u8, p: &Self::Params, rng: &Self::Rng, start: u64, buf: &mut [Self]);
        #[doc(hidden)]
        fn encode_k(
            isa: Isa,
            mode: u8,
            p: &Self::Params,
            rng: &Self::Rng,
            start: u64,
            src: &[Self],
            dst: &mut [Self::Bits],
        );
    }

    macro_rules! hooks_for {
        ($F:ty, $U:ty, $k:ident, $rng:ty, $emin:expr, $rng_new:expr) => {
            impl Kernels for $F {
                type Params = kernel::$k::Params;
                type Rng = $rng;
                type Bits = $U;
                const MIN_NORMAL_EXP: i32 = $emin;
                fn params(fmt: &Format, mode: RoundingMode) -> Self::Params {
                    kernel::$k::Params::new(fmt, mode)
                }
                fn rng(seed: u64, start: u64) -> Self::Rng {
                    $rng_new(seed, start)
                }
                fn round_k(
                    isa: Isa,
                    mode: u8,
                    p: &Self::Params,
                    rng: &Self::Rng,
                    start: u64,
                    src: &[Self],
                    dst: &mut [Self],
                    stream: bool,
                ) {
                    kernel::$k::round(isa, mode, p, rng, start, src, dst, stream)
                }
                fn round_inplace_k(
                    isa: Isa,
                    mode: u8,
                    p: &Self::Params,
                    rng: &Self::Rng,
                    start: u64,
                    buf: &mut [Self],
                ) {
                    kernel::$k::round_inplace(isa, mode, p, rng, start, buf)
                }
                fn encode_k(
                    isa: Isa,
                    mode: u8,
                    p: &Self::Params,
                    rng: &Self::Rng,
                    start: u64,
                    src: &[Self],
                    dst: &mut [$U],
                ) {
                    kernel::$k::encode(isa, mode, p, rng, start, src, dst)
                }
            }
        };
    }
    hooks_for!(f32, u32, k32, Rng32, -126, |seed, start: u64| Rng32::new(seed, STREAM_ROUND, (start >> 32) as u32));
    hooks_for!(f64, u64, k64, Rng64, -1022, |seed, _start| Rng64::new(seed, STREAM_ROUND));
}

/// Rounds and encodes slices as parts of a larger array: element k of a slice encoded `at` is element
/// `at + k` of the array, which picks its random draw. [`encode`] runs on it; so do the block quantizers,
/// which scale each block and encode it.
pub(crate) struct Encoder<'a, T: Element> {
    plan: Plan<'a, T>,
    fast: bool,
    coder: codes::RoundedCoder<'a>,
}

impl<'a, T: Element> Encoder<'a, T> {
    /// An encoder for `fmt` under `cfg` (soft errors are not applied here).
    pub(crate) fn new(fmt: &'a Format, cfg: &Rounding) -> Result<Self> {
        Encoder::with_isa(fmt, &Rounding { flip: None, ..*cfg }, Isa::detect())
    }

    fn with_isa(fmt: &'a Format, cfg: &Rounding, isa: Isa) -> Result<Self> {
        let plan = Plan::<T>::new(fmt, cfg, isa)?;
        Ok(Encoder { plan, fast: fast_encode(fmt, T::MIN_NORMAL_EXP), coder: codes::RoundedCoder::new(fmt) })
    }

    /// Rounds `buf` in place as elements `at..` of an array (what [`round_value`] does for one value, without
    /// preparing the rounding again for every call).
    pub(crate) fn round_at(&self, at: u64, buf: &mut [T]) {
        self.plan.round_chunk_inplace(at, buf);
    }

    /// The codes of `src` (which holds only values with a code: see `codes::check_encodable`) as elements
    /// `at..` of an array, into `dst` of the same length.
    pub(crate) fn encode_at<C: CodeInt>(&self, at: u64, src: &[T], dst: &mut [C]) {
        const TILE: usize = 1024;
        let plan = &self.plan;
        let rng = T::rng(plan.cfg.seed, at);
        let mut bits = [T::Bits::default(); TILE];
        let mut vals = [T::from_f64(0.0); TILE];
        for (t, (s, d)) in src.chunks(TILE).zip(dst.chunks_mut(TILE)).enumerate() {
            let at = at + (t * TILE) as u64;
            if self.fast {
                T::encode_k(plan.isa, plan.mode, &plan.params, &rng, at, s, &mut bits[..s.len()]);
                for (d, b) in d.iter_mut().zip(&bits) {
                    *d = C::from_u64((*b).into());
                }
            } else {
                T::round_k(plan.isa, plan.mode, &plan.params, &rng, at, s, &mut vals[..s.len()], false);
                let mut all_fast = true;
                for (d, v) in d.iter_mut().zip(&vals) {
                    let (code, ok) = self.coder.fast(v.to_f64());
                    *d = C::from_u64(code);
                    all_fast &= ok;
                }
                if !all_fast {
                    for (d, v) in d.iter_mut().zip(&vals) {
                        *d = C::from_u64(self.coder.code(v.to_f64()).unwrap_or(0));
                    }
                }
            }
        }
    }
}

/// Validated, precomputed state of one rounding call.
struct Plan<'a, T: Element> {
    fmt: &'a Format,
    cfg: Rounding,
    isa: Isa,
    mode: u8,
    params: T::Params,
    /// Write with non-temporal stores (large outputs that will not fit in cache anyway).
    stream: bool,
}

impl<'a, T: Element> Plan<'a, T> {
    fn new(fmt: &'a Format, cfg: &Rounding, isa: Isa) -> Result<Self> {
        fmt.check_dtype(T::DTYPE, T::MAN_BITS, T::MAX)?;
        cfg.validate(T::RANDOM_BITS)?;
        if let Some(f) = cfg.flip {
            if f.scope == FlipScope::Code && !fmt.exponent_limit() {
                return Err(Error::InvalidOption(
                    "bit flips of the whole code need codes; use significand flips with no exponent limit".into(),
                ));
            }
        }
        let general = if needs_general(fmt, T::MIN_NORMAL_EXP) { GENERAL } else { 0 };
        Ok(Plan {
            fmt,
            cfg: *cfg,
            isa,
            mode: mode_id(cfg.mode) | general,
            params: T::params(fmt, cfg.mode),
            stream: false,
        })
    }

    fn round_chunk(&self, start: u64, src: &[T], dst: &mut [T]) {
        let rng = T::rng(self.cfg.seed, start);
        T::round_k(self.isa, self.mode, &self.params, &rng, start, src, dst, self.stream);
        self.flips(start, dst);
    }

    fn round_chunk_inplace(&self, start: u64, buf: &mut [T]) {
        let rng = T::rng(self.cfg.seed, start);
        T::round_inplace_k(self.isa, self.mode, &self.params, &rng, start, buf);
        self.flips(start, buf);
    }

    /// Soft errors: element i is hit when its draw in the flip stream is below `prob`; the bit comes from a
    /// second stream. Draws are 64-bit for both data types.
    fn flips(&self, start: u64, buf: &mut [T]) {
        let Some(flip) = self.cfg.flip else { return };
        if flip.prob == 0.0 {
            return;
        }
        let hit = Rng64::new(self.cfg.seed, STREAM_FLIP);
        let which = Rng64::new(self.cfg.seed, STREAM_FLIP_BIT);
        for (i, v) in buf.iter_mut().enumerate() {
            let idx = start + i as u64;
            if codes::is_hit(hit.at(idx), flip.prob) {
                *v = codes::flip_bit(self.fmt, flip.scope, *v, which.at(idx));
            }
        }
    }
}

/// Runs `f(start, src_chunk, dst_chunk)` over aligned chunks, in parallel for large inputs.
fn for_chunks<A: Sync, B: Send>(src: &[A], dst: &mut [B], f: impl Fn(u64, &[A], &mut [B]) + Sync + Send) {
    if src.len() <= CHUNK {
        f(0, src, dst);
    } else {
        dst.par_chunks_mut(CHUNK)
            .zip(src.par_chunks(CHUNK))
            .enumerate()
            .for_each(|(c, (d, s))| f((c * CHUNK) as u64, s, d));
    }
}

/// An error unless the two lengths match.
pub(crate) fn check_len(input: usize, output: usize) -> Result<()> {
    if input == output {
        Ok(())
    } else {
        Err(Error::LengthMismatch { input, output })
    }
}

/// Rounds `src` into `dst` (same length). Large inputs use every thread of the current rayon pool; the
/// result does not depend on the number of threads.
///
/// # Examples
/// ```
/// use lowp::{round, Format, Rounding, RoundingMode};
/// let f = Format::parse("float16")?;
/// let x = [1.0f32 + 1.0 / 4096.0, 65520.0, -1e-8];
/// let mut y = [0.0f32; 3];
/// round(&f, &Rounding::new(RoundingMode::NearestEven), &x, &mut y)?;
/// assert_eq!(y[0], 1.0);
/// assert_eq!(y[1], f32::INFINITY);
/// assert_eq!(y[2].to_bits(), (-0.0f32).to_bits());
/// # Ok::<(), lowp::Error>(())
/// ```
pub fn round<T: Element>(fmt: &Format, cfg: &Rounding, src: &[T], dst: &mut [T]) -> Result<()> {
    round_with_isa(Isa::detect(), fmt, cfg, src, dst)
}

/// [`round`] on a chosen instruction set (one of [`Isa::available`]); for tests and benchmarks.
pub fn round_with_isa<T: Element>(isa: Isa, fmt: &Format, cfg: &Rounding, src: &[T], dst: &mut [T]) -> Result<()> {
    check_len(src.len(), dst.len())?;
    let mut plan = Plan::<T>::new(fmt, cfg, checked_isa(isa)?)?;
    plan.stream = std::mem::size_of_val(dst) >= STREAM_MIN_BYTES;
    for_chunks(src, dst, |start, s, d| plan.round_chunk(start, s, d));
    Ok(())
}

/// Rounds `buf` in place.
///
/// # Examples
/// ```
/// use lowp::{round_in_place, Format, Rounding};
/// let mut x = vec![0.1f64, 0.2, 0.3];
/// round_in_place(&Format::parse("bf16")?, &Rounding::default(), &mut x)?;
/// assert_eq!(x[0], 0.10009765625);
/// # Ok::<(), lowp::Error>(())
/// ```
pub fn round_in_place<T: Element>(fmt: &Format, cfg: &Rounding, buf: &mut [T]) -> Result<()> {
    let plan = Plan::<T>::new(fmt, cfg, Isa::detect())?;
    if buf.len() <= CHUNK {
        plan.round_chunk_inplace(0, buf);
    } else {
        buf.par_chunks_mut(CHUNK).enumerate().for_each(|(c, b)| plan.round_chunk_inplace((c * CHUNK) as u64, b));
    }
    Ok(())
}

/// Rounds one value as element `index` of an array would be (the index picks the random draw).
///
/// # Examples
/// ```
/// use lowp::{round_value, Format, Rounding, RoundingMode};
/// let f = Format::parse("e4m3fn")?;
/// assert_eq!(round_value(&f, &Rounding::new(RoundingMode::TowardZero), 1000.0f64, 0)?, 448.0);
/// # Ok::<(), lowp::Error>(())
/// ```
pub fn round_value<T: Element>(fmt: &Format, cfg: &Rounding, x: T, index: u64) -> Result<T> {
    let plan = Plan::<T>::new(fmt, cfg, Isa::Baseline)?;
    let mut out = [x];
    plan.round_chunk_inplace(index, &mut out);
    Ok(out[0])
}

fn checked_isa(isa: Isa) -> Result<Isa> {
    if Isa::available().contains(&isa) {
        Ok(isa)
    } else {
        Err(Error::InvalidOption(format!("instruction set {isa:?} is not available on this CPU")))
    }
}

/// Rounds `src` and writes the codes (the format's bit patterns) into `dst`; `C` must be wide enough.
/// NaN inputs in a format without NaN are an error naming the first one.
///
/// # Examples
/// ```
/// use lowp::{encode, Format, Rounding};
/// let f = Format::parse("float8_e4m3fn")?;
/// let mut codes = [0u8; 3];
/// encode(&f, &Rounding::default(), &[1.0f32, -448.0, f32::NAN], &mut codes)?;
/// assert_eq!(codes, [0x38, 0xfe, 0x7f]);
/// # Ok::<(), lowp::Error>(())
/// ```
pub fn encode<T: Element, C: CodeInt>(fmt: &Format, cfg: &Rounding, src: &[T], dst: &mut [C]) -> Result<()> {
    encode_with_isa(Isa::detect(), fmt, cfg, src, dst)
}

/// [`encode`] on a chosen instruction set.
pub fn encode_with_isa<T: Element, C: CodeInt>(
    isa: Isa,
    fmt: &Format,
    cfg: &Rounding,
    src: &[T],
    dst: &mut [C],
) -> Result<()> {
    check_len(src.len(), dst.len())?;
    codes::check_code_width(fmt, C::BITS)?;
    let no_flip = Rounding { flip: None, ..*cfg };
    let encoder = Encoder::<T>::with_isa(fmt, &no_flip, checked_isa(isa)?)?;
    codes::check_encodable(fmt, src)?;
    for_chunks(src, dst, |start, s, d| encoder.encode_at(start, s, d));
    if let Some(flip) = cfg.flip {
        codes::flip_codes(fmt, flip, cfg.seed, dst);
    }
    Ok(())
}
