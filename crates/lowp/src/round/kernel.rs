//! Bulk rounding and encoding kernels: branch-free integer arithmetic on the bit patterns, written once
//! (a macro instantiates it for f32/u32 and f64/u64), compiled three times (AVX-512, AVX2, baseline) and
//! picked at run time. Each element goes through the same steps as [`super::reference::round`]:
//!
//! 1. split |x| into exponent and significand `m`; find the exponent `qe` of the target grid's spacing;
//! 2. `drop` = how many low bits of the input's significand fall below that spacing;
//! 3. if `drop` <= mantissa width: truncate the bit pattern (the carry of an increment walks into the
//!    exponent field by itself); otherwise the whole value is below one spacing and the truncation is 0;
//! 4. `frac` = the discarded part as a fixed-point fraction of the spacing, rounded down to the data type's
//!    width: the modes decide from it (ties, stickiness, stochastic comparisons);
//! 5. overflow, missing zero, -0 and special inputs by selects.

use crate::dtype::Element;
use crate::format::Format;
use crate::round::reference::{infinity_value, overflow_value};
use crate::round::RoundingMode;

/// Mode numbers used as const generics (the kernels are monomorphised per mode).
pub(crate) mod modes {
    pub const NE: u8 = 0;
    pub const TP: u8 = 1;
    pub const TN: u8 = 2;
    pub const TZ: u8 = 3;
    pub const SR: u8 = 4;
    pub const SE: u8 = 5;
    pub const NZ: u8 = 6;
    pub const NA: u8 = 7;
    pub const ODD: u8 = 8;
}

pub(crate) fn mode_id(mode: RoundingMode) -> u8 {
    use modes::*;
    match mode {
        RoundingMode::NearestEven => NE,
        RoundingMode::TowardPositive => TP,
        RoundingMode::TowardNegative => TN,
        RoundingMode::TowardZero => TZ,
        RoundingMode::Stochastic | RoundingMode::StochasticBits(_) => SR,
        RoundingMode::StochasticEqual => SE,
        RoundingMode::NearestZero => NZ,
        RoundingMode::NearestAway => NA,
        RoundingMode::Odd => ODD,
    }
}

/// Instruction sets a kernel can be compiled for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// AVX-512 F/BW/DQ/VL.
    Avx512,
    /// AVX2 + FMA.
    Avx2,
    /// Whatever the build target guarantees (SSE2 on x86-64).
    Baseline,
}

impl Isa {
    /// The best instruction set this CPU supports.
    pub fn detect() -> Isa {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512bw")
                && std::arch::is_x86_feature_detected!("avx512dq")
                && std::arch::is_x86_feature_detected!("avx512vl")
            {
                return Isa::Avx512;
            }
            if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                return Isa::Avx2;
            }
        }
        Isa::Baseline
    }

    /// Every instruction set this CPU can run, best first (tests compare all of them).
    pub fn available() -> Vec<Isa> {
        match Isa::detect() {
            Isa::Avx512 => vec![Isa::Avx512, Isa::Avx2, Isa::Baseline],
            Isa::Avx2 => vec![Isa::Avx2, Isa::Baseline],
            Isa::Baseline => vec![Isa::Baseline],
        }
    }
}

/// Calls `$body::<MODE>` with the mode id as a const generic.
macro_rules! with_mode {
    ($id:expr, $f:ident :: <MODE> ( $($arg:expr),* )) => {
        match $id {
            modes::NE => $f::<{ modes::NE }>($($arg),*),
            modes::TP => $f::<{ modes::TP }>($($arg),*),
            modes::TN => $f::<{ modes::TN }>($($arg),*),
            modes::TZ => $f::<{ modes::TZ }>($($arg),*),
            modes::SR => $f::<{ modes::SR }>($($arg),*),
            modes::SE => $f::<{ modes::SE }>($($arg),*),
            modes::NZ => $f::<{ modes::NZ }>($($arg),*),
            modes::NA => $f::<{ modes::NA }>($($arg),*),
            _ => $f::<{ modes::ODD }>($($arg),*),
        }
    };
}

/// Compiles one loop three times (AVX-512, AVX2, baseline) and dispatches on `Isa`.
macro_rules! isa_variants {
    ($name:ident, $inner:ident, ($($arg:ident : $ty:ty),*)) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl")]
        unsafe fn avx512<const MODE: u8>($($arg: $ty),*) {
            $inner::<MODE>($($arg),*)
        }
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn avx2<const MODE: u8>($($arg: $ty),*) {
            $inner::<MODE>($($arg),*)
        }
        fn baseline<const MODE: u8>($($arg: $ty),*) {
            $inner::<MODE>($($arg),*)
        }
        /// Runs the kernel for `mode` on `isa` (which must be available on this CPU).
        pub(crate) fn $name(isa: Isa, mode: u8, $($arg: $ty),*) {
            match isa {
                // SAFETY: callers pass only instruction sets from `Isa::available()`.
                #[cfg(target_arch = "x86_64")]
                Isa::Avx512 => unsafe { with_mode!(mode, avx512::<MODE>($($arg),*)) },
                #[cfg(target_arch = "x86_64")]
                Isa::Avx2 => unsafe { with_mode!(mode, avx2::<MODE>($($arg),*)) },
                _ => with_mode!(mode, baseline::<MODE>($($arg),*)),
            }
        }
    };
}

macro_rules! float_kernel {
    ($modname:ident, $F:ty, $U:ty, $I:ty, $Rng:ty,
     man = $MAN:expr, bias = $BIAS:expr, norm = $NORM:expr, norm_bits = $NORMB:expr) => {
        pub mod $modname {
            use super::*;
            #[allow(unused_imports)]
            use crate::round::rng::{Rng32, Rng64};

            type F = $F;
            type U = $U;
            type I = $I;
            const W: u32 = <$U>::BITS;
            const MAN: u32 = $MAN;
            const SIGN: U = 1 << (W - 1);
            const ABS: U = !SIGN;
            const INF: U = ((1 << (W - 1 - MAN)) - 1) << MAN;
            const HALF: U = 1 << (W - 1);

            /// Per-call constants, hoisted out of the loop.
            #[derive(Clone, Copy, Debug)]
            #[doc(hidden)]
            pub struct Params {
                man: I,
                man_is_zero: bool,
                bias: I,
                emin: I,
                /// Quantum exponent below emin: emin - M with subnormals, emin without.
                below_qe: I,
                /// Ties below min_normal go up (no subnormals).
                flush_tie: bool,
                max_bits: U,
                far_bits: U,
                inf_bits: U,
                /// Magnitude that replaces a zero result (min_normal for formats without zero, else 0).
                zero_bits: U,
                zero_is_nan: bool,
                neg_zero: bool,
                unsigned: bool,
                sr_mask: U,
                /// Encoding constants.
                enc_min_normal: U,
                enc_sub_scale1: F,
                enc_sub_scale2: F,
                enc_rebias: U,
                enc_sign: U,
                enc_nan_pos: U,
                enc_nan_neg: U,
                enc_inf: U,
            }

            fn bits_of(v: f64) -> U {
                (v as F).to_bits() & ABS
            }

            impl Params {
                pub(crate) fn new(fmt: &Format, mode: RoundingMode) -> Params {
                    let limited = fmt.exponent_limit();
                    let emin = if limited { fmt.emin() } else { i32::MIN / 4 };
                    let m = fmt.man_bits() as i32;
                    let mag = |v: F| v.to_bits() & ABS;
                    let sr_bits = match mode {
                        RoundingMode::StochasticBits(n) => u32::from(n),
                        _ => W,
                    };
                    let sub_scale = fmt.man_bits() as i32 - fmt.emin();
                    let (s1, s2) = (sub_scale / 2, sub_scale - sub_scale / 2);
                    let pw = |k: i32| if (-1000..1000).contains(&k) { crate::format::pow2(k) as F } else { 0.0 };
                    let sb = fmt.sign_bit();
                    Params {
                        man: m as I,
                        man_is_zero: m == 0,
                        bias: fmt.bias() as I,
                        emin: emin as I,
                        below_qe: (if fmt.subnormals() { emin - m } else { emin }) as I,
                        flush_tie: !fmt.subnormals(),
                        max_bits: if limited { bits_of(fmt.max()) } else { INF },
                        far_bits: mag(overflow_value::<F>(fmt, RoundingMode::NearestEven, false)),
                        inf_bits: mag(infinity_value::<F>(fmt, false)),
                        zero_bits: if fmt.has_zero() { 0 } else { bits_of(fmt.min_normal()) },
                        zero_is_nan: !fmt.has_zero(),
                        neg_zero: fmt.has_neg_zero(),
                        unsigned: !fmt.signed(),
                        sr_mask: if sr_bits >= W { !0 } else { !((1 as U) << (W - sr_bits)).wrapping_sub(1) },
                        enc_min_normal: if limited { bits_of(fmt.min_normal()) } else { 0 },
                        enc_sub_scale1: pw(s1),
                        enc_sub_scale2: pw(s2),
                        enc_rebias: (((($BIAS) - fmt.bias() as i64) << fmt.man_bits()) as U),
                        enc_sign: sb as U,
                        enc_nan_pos: fmt.nan_code(false).unwrap_or(0) as U,
                        enc_nan_neg: fmt.nan_code(true).unwrap_or(0) as U,
                        enc_inf: fmt.inf_code(false).unwrap_or(0) as U,
                    }
                }
            }

            /// Rounds one element given as bits; `r` is its random draw.
            #[inline(always)]
            pub(crate) fn round_bits<const MODE: u8>(p: &Params, u: U, r: U) -> U {
                use modes::*;
                let sign = u & SIGN;
                let neg = sign != 0;
                let a = u & ABS;
                let e = (a >> MAN) as I;
                // The true exponent of an input subnormal in the data type, by an exact normalising multiply.
                let y = (F::from_bits(a) * $NORM).to_bits();
                let ex = if e == 0 { (y >> MAN) as I - ($BIAS) - $NORMB } else { e - ($BIAS) };
                let below = ex < p.emin;
                let qe = if below { p.below_qe } else { ex - p.man };
                let aq = if e == 0 { 1 } else { e } - ($BIAS) - MAN as I;
                let drop = (qe - aq).clamp(0, 2 * W as I - 1) as u32;
                let m = if e == 0 { a } else { (a & ((1 << MAN) - 1)) | (1 << MAN) };
                let small = drop <= MAN;
                let d = if small { drop } else { MAN };
                let rem = a & (((1 as U) << d) - 1);
                let frac_small = (rem << (W - 1 - d)) << 1;
                let frac_big = (m << W.saturating_sub(drop).min(W - 1)) >> drop.saturating_sub(W).min(W - 1);
                let frac = if small { frac_small } else { frac_big };
                let sticky = if small { rem != 0 } else { m != 0 };
                let n_bit = small && (m >> d) & 1 != 0;
                let code_parity = ((qe + p.bias) & 1) != 0;
                let lower_odd = if p.man_is_zero { n_bit && code_parity } else { n_bit };
                let trunc = if small { (a >> d) << d } else { 0 };
                let step = if small { (1 as U) << d } else { ((qe + ($BIAS)) as U) << MAN };
                let up = match MODE {
                    NE => frac > HALF || frac == HALF && (lower_odd || below && p.flush_tie),
                    NZ => frac > HALF,
                    NA => frac >= HALF,
                    TZ => false,
                    TP => sticky && !neg,
                    TN => sticky && neg,
                    ODD => sticky && !lower_odd,
                    SR => (frac & p.sr_mask) > !(r & p.sr_mask),
                    _ => sticky && (r >> (W - 1)) != 0,
                };
                let mut out = trunc + if up { step } else { 0 };
                let far = match MODE {
                    TP => !neg,
                    TN => neg,
                    TZ | ODD => false,
                    _ => true,
                };
                if out > p.max_bits {
                    out = if far { p.far_bits } else { p.max_bits };
                }
                if out == 0 {
                    out = p.zero_bits;
                }
                if e == (1 << (W - 1 - MAN)) - 1 {
                    out = p.inf_bits; // inf input (NaN inputs are restored below)
                }
                let nan = <F as Element>::nan(false).to_bits();
                if a == 0 && p.zero_is_nan {
                    out = nan;
                }
                let keep_sign = out != 0 || p.neg_zero;
                let mut res = if keep_sign { out | sign } else { out };
                if p.unsigned && neg && a != 0 {
                    res = nan | SIGN;
                }
                if a > INF {
                    res = u;
                }
                res
            }

            /// The code of an already rounded value (valid when `fast_encode` holds for the format).
            #[inline(always)]
            pub(crate) fn code_bits(p: &Params, v: U) -> U {
                let sign = v & SIGN;
                let b = v & ABS;
                let sub = ((F::from_bits(b) * p.enc_sub_scale1) * p.enc_sub_scale2) as U;
                let norm = (b >> (MAN as I - p.man) as u32).wrapping_sub(p.enc_rebias);
                let mag = if b < p.enc_min_normal { sub } else { norm };
                let mag = if b == INF { p.enc_inf } else { mag };
                let s = if sign != 0 { p.enc_sign } else { 0 };
                if b > INF {
                    if sign != 0 { p.enc_nan_neg } else { p.enc_nan_pos }
                } else {
                    s | mag
                }
            }

            #[inline(always)]
            fn draw<const MODE: u8>(rng: &Rng, i: u64) -> U {
                if MODE == modes::SR || MODE == modes::SE {
                    rng.at(i)
                } else {
                    0
                }
            }

            pub(crate) type Rng = $Rng;

            #[inline(always)]
            fn round_loop<const MODE: u8>(p: &Params, rng: &Rng, start: u64, src: &[F], dst: &mut [F]) {
                for (i, (s, d)) in src.iter().zip(dst.iter_mut()).enumerate() {
                    let r = draw::<MODE>(rng, start.wrapping_add(i as u64));
                    *d = F::from_bits(round_bits::<MODE>(p, s.to_bits(), r));
                }
            }

            #[inline(always)]
            fn round_inplace_loop<const MODE: u8>(p: &Params, rng: &Rng, start: u64, buf: &mut [F]) {
                for (i, d) in buf.iter_mut().enumerate() {
                    let r = draw::<MODE>(rng, start.wrapping_add(i as u64));
                    *d = F::from_bits(round_bits::<MODE>(p, d.to_bits(), r));
                }
            }

            #[inline(always)]
            fn encode_loop<const MODE: u8>(p: &Params, rng: &Rng, start: u64, src: &[F], dst: &mut [U]) {
                for (i, (s, d)) in src.iter().zip(dst.iter_mut()).enumerate() {
                    let r = draw::<MODE>(rng, start.wrapping_add(i as u64));
                    *d = code_bits(p, round_bits::<MODE>(p, s.to_bits(), r));
                }
            }

            mod round_k {
                use super::*;
                isa_variants!(run, round_loop, (p: &Params, rng: &Rng, start: u64, src: &[F], dst: &mut [F]));
            }
            mod inplace_k {
                use super::*;
                isa_variants!(run, round_inplace_loop, (p: &Params, rng: &Rng, start: u64, buf: &mut [F]));
            }
            mod encode_k {
                use super::*;
                isa_variants!(run, encode_loop, (p: &Params, rng: &Rng, start: u64, src: &[F], dst: &mut [U]));
            }
            pub(crate) use encode_k::run as encode;
            pub(crate) use inplace_k::run as round_inplace;
            pub(crate) use round_k::run as round;
        }
    };
}

float_kernel!(k32, f32, u32, i32, Rng32, man = 23, bias = 127, norm = 4294967296.0f32, norm_bits = 32);
float_kernel!(k64, f64, u64, i64, Rng64, man = 52, bias = 1023, norm = 18446744073709551616.0f64, norm_bits = 64);

/// Whether the branch-free encoder is exact for `fmt` in a data type whose smallest normal is 2^`emin_dtype`.
pub(crate) fn fast_encode(fmt: &Format, emin_dtype: i32) -> bool {
    fmt.exponent_limit() && fmt.has_zero() && fmt.emin() >= emin_dtype
}
