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

    /// [`Isa::detect`], detected once per process (for loops chosen per call on a hot path).
    pub(crate) fn cached() -> Isa {
        static ISA: std::sync::OnceLock<Isa> = std::sync::OnceLock::new();
        *ISA.get_or_init(Isa::detect)
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

/// Bit of the kernel id that selects the general variant (formats needing exact exponents of subnormal
/// inputs, formats without zero, unsigned formats); the common formats skip that work.
pub(crate) const GENERAL: u8 = 16;

/// Calls `$f::<ID>` with the kernel id (mode, plus `GENERAL`) as a const generic.
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
            modes::ODD => $f::<{ modes::ODD }>($($arg),*),
            16 => $f::<16>($($arg),*),
            17 => $f::<17>($($arg),*),
            18 => $f::<18>($($arg),*),
            19 => $f::<19>($($arg),*),
            20 => $f::<20>($($arg),*),
            21 => $f::<21>($($arg),*),
            22 => $f::<22>($($arg),*),
            23 => $f::<23>($($arg),*),
            _ => $f::<24>($($arg),*),
        }
    };
}

/// Defines a function whose body is compiled three times (AVX-512, AVX2 + FMA, baseline) and chosen by the
/// CPU's instruction set ([`Isa::cached`]) on each call: for the loops outside the rounding kernels that are
/// hot enough to want more than the baseline build's two float64 lanes. At most one generic parameter.
macro_rules! isa_dispatched {
    ($(#[$doc:meta])* $vis:vis fn $name:ident $(<$g:ident: $bound:path>)? ($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)?
        $body:block) => {
        $(#[$doc])*
        $vis fn $name $(<$g: $bound>)? ($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn body $(<$g: $bound>)? ($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl")]
            unsafe fn avx512 $(<$g: $bound>)? ($($arg: $ty),*) $(-> $ret)? {
                body($($arg),*)
            }
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma")]
            unsafe fn avx2 $(<$g: $bound>)? ($($arg: $ty),*) $(-> $ret)? {
                body($($arg),*)
            }
            match $crate::round::Isa::cached() {
                // SAFETY: `Isa::cached()` is `Isa::detect()`: this CPU has it.
                #[cfg(target_arch = "x86_64")]
                $crate::round::Isa::Avx512 => unsafe { avx512($($arg),*) },
                #[cfg(target_arch = "x86_64")]
                $crate::round::Isa::Avx2 => unsafe { avx2($($arg),*) },
                _ => body($($arg),*),
            }
        }
    };
}
pub(crate) use isa_dispatched;

/// Compiles one loop three times (AVX-512, AVX2, baseline) and dispatches on `Isa`.
macro_rules! isa_variants {
    ($name:ident, $inner:ident, ($($arg:ident : $ty:ty),*)) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl")]
        unsafe fn avx512<const MODE: u8>($($arg: $ty),*) {
            $inner::<MODE, 2>($($arg),*)
        }
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn avx2<const MODE: u8>($($arg: $ty),*) {
            $inner::<MODE, 1>($($arg),*)
        }
        fn baseline<const MODE: u8>($($arg: $ty),*) {
            $inner::<MODE, 0>($($arg),*)
        }
        /// Runs the kernel for `mode` on `isa` (which must be available on this CPU).
        #[allow(clippy::too_many_arguments)]
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
                man_nonzero: bool,
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
                /// Fast path: bits dropped from a normal target value, the target's smallest normal
                /// exponent field in the data type, the smallest input exponent field the fast path takes,
                /// and whether it applies at all.
                base_drop: U,
                emin_b: I,
                fast_emin: I,
                fast_ok: bool,
                /// Fast path of formats without mantissa bits (e8m0): whether it applies, the smallest input
                /// exponent field it takes (normal in the data type and at least the format's min normal), and
                /// the parity that turns an input exponent field into the parity of the format's code.
                pow2_ok: bool,
                pow2_emin: I,
                pow2_parity: U,
                /// Bits of the smallest subnormal (the fast path's result for values below one quantum).
                big_step: U,
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
                        man_nonzero: m != 0,
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
                        base_drop: (MAN as i32 - m).max(0) as U,
                        emin_b: (emin as i64 + ($BIAS) as i64).clamp(-4096, 4096) as I,
                        // Without subnormals, lanes below min_normal take the general path; so do all lanes of
                        // formats whose subnormals are subnormal in the data type too.
                        fast_emin: if fmt.subnormals() && fmt.min_subnormal() >= F::MIN_POSITIVE as f64 {
                            1
                        } else {
                            (emin as i64 + ($BIAS) as i64).clamp(1, 4096) as I
                        },
                        fast_ok: limited && m >= 1 && (m as u32) < MAN && sr_bits >= W,
                        pow2_ok: limited && m == 0,
                        pow2_emin: (emin as i64 + ($BIAS) as i64).clamp(1, 4096) as I,
                        pow2_parity: ((($BIAS) as i64 - fmt.bias() as i64) & 1) as U,
                        big_step: if limited && fmt.min_subnormal() >= F::MIN_POSITIVE as f64 { bits_of(fmt.min_subnormal()) } else { 0 },
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

            /// `x << n`, or 0 when n >= W (the semantics of the vector shift instructions).
            #[inline(always)]
            fn shl0(x: U, n: U) -> U {
                if n < W as U { x << n } else { 0 }
            }

            /// `x >> n`, or 0 when n >= W.
            #[inline(always)]
            fn shr0(x: U, n: U) -> U {
                if n < W as U { x >> n } else { 0 }
            }

            /// A rounded magnitude past max becomes what the mode gives on overflow: the far value (inf,
            /// NaN, or max when saturating) where the mode rounds away from zero, else max.
            #[inline(always)]
            fn overflow<const ID: u8>(p: &Params, out: U, neg: bool) -> U {
                use modes::*;
                let far = match ID & !GENERAL {
                    TP => !neg,
                    TN => neg,
                    TZ | ODD => false,
                    _ => true,
                };
                let mut out = out;
                if out > p.max_bits {
                    out = if far { p.far_bits } else { p.max_bits };
                }
                out
            }

            /// Rounds one element given as bits; `r` is its random draw. `ID` is the mode, plus `GENERAL`.
            #[inline(always)]
            pub(crate) fn round_bits<const ID: u8>(p: &Params, u: U, r: U) -> U {
                use modes::*;
                let general = ID & GENERAL != 0;
                let mode = ID & !GENERAL;
                let sign = u & SIGN;
                let neg = sign != 0;
                let a = u & ABS;
                let e = (a >> MAN) as I;
                // Unbiased exponent. Inputs subnormal in the data type get their true exponent (by an exact
                // normalising multiply) only where it matters: formats reaching below the data type's
                // normal range, or without exponent limit. Elsewhere e - BIAS is already below emin.
                let ex = if general && e == 0 {
                    ((F::from_bits(a) * $NORM).to_bits() >> MAN) as I - ($BIAS) - $NORMB
                } else {
                    e - ($BIAS)
                };
                let below = ex < p.emin;
                let qe = if below { p.below_qe } else { ex - p.man };
                // The input's own quantum exponent; `drop` = how many of its bits fall below the target's.
                let aq = if e == 0 { 1 } else { e } - ($BIAS) - MAN as I;
                let drop = if qe > aq { (qe - aq) as U } else { 0 };
                let m = (a & ((1 << MAN) - 1)) | if e != 0 { 1 << MAN } else { 0 };
                // The whole value below one quantum: truncation is 0 (keeping `a`'s exponent bits would be wrong).
                let big = drop > MAN as U;
                let mask = shl0(1, if big { W as U } else { drop }).wrapping_sub(1);
                let trunc = a & !mask;
                let sticky = a & mask != 0;
                // The discarded part as a W-bit fraction of the quantum, rounded down.
                let frac = shl0(m, (W as U).wrapping_sub(drop)) | shr0(m, drop.wrapping_sub(W as U));
                let n_odd = shr0(m, drop) & 1 != 0;
                // Ties-to-even and round-to-odd read the code's last bit: for M = 0 that is the exponent's.
                let lower_odd = n_odd & (p.man_nonzero | ((qe + p.bias) & 1 != 0));
                let step = if big { ((qe + ($BIAS)) as U) << MAN } else { mask + 1 };
                let up = match mode {
                    NE => {
                        let tie_up = lower_odd | (below & p.flush_tie);
                        frac > HALF - tie_up as U
                    }
                    NZ => frac > HALF,
                    NA => frac >= HALF,
                    TZ => false,
                    TP => sticky & !neg,
                    TN => sticky & neg,
                    ODD => sticky & !lower_odd,
                    SR => (frac & p.sr_mask) > !(r & p.sr_mask),
                    _ => sticky & ((r >> (W - 1)) != 0),
                };
                let mut out = overflow::<ID>(p, trunc + if up { step } else { 0 }, neg);
                let nan = <F as Element>::nan(false).to_bits();
                if general {
                    if out == 0 {
                        out = p.zero_bits;
                    }
                    if (a == 0) & p.zero_is_nan {
                        out = nan;
                    }
                }
                if e == (1 << (W - 1 - MAN)) - 1 {
                    out = p.inf_bits; // inf input (NaN inputs are restored below)
                }
                let keep_sign = (out != 0) | p.neg_zero;
                let mut res = if keep_sign { out | sign } else { out };
                if general & p.unsigned & neg & (a != 0) {
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
                // The subnormal code is an integer below 2^MAN held in a float; adding 2^MAN puts it in the
                // mantissa bits exactly (a saturating `as` cast would not vectorise).
                const MAGIC: F = (1u64 << MAN) as F;
                let scaled = F::from_bits(b) * p.enc_sub_scale1 * p.enc_sub_scale2;
                let sub = (scaled + MAGIC).to_bits().wrapping_sub(MAGIC.to_bits());
                let norm = (b >> (MAN as I - p.man) as u32).wrapping_sub(p.enc_rebias);
                let mag = if b < p.enc_min_normal { sub } else { norm };
                let mag = if b == INF { p.enc_inf } else { mag };
                // Selects only, no nested branch: the block loop that calls this then vectorizes.
                let s = if sign != 0 { p.enc_sign } else { 0 };
                let nan = if sign != 0 { p.enc_nan_neg } else { p.enc_nan_pos };
                if b > INF { nan } else { s | mag }
            }

            #[inline(always)]
            fn draw<const MODE: u8>(rng: &Rng, i: u64) -> U {
                let mode = MODE & !GENERAL;
                if mode == modes::SR || mode == modes::SE {
                    rng.at(i)
                } else {
                    0
                }
            }

            pub(crate) type Rng = $Rng;



            /// Lanes per block: one 512-bit vector.
            const L: usize = 64 / std::mem::size_of::<U>();

            /// How far ahead (in blocks) the source is prefetched, into L2: 4 KB. One thread does not keep
            /// enough loads in flight to overlap the arithmetic with memory without it (measured at 10^8
            /// float32: +40-60%; into L1 (T0) or 2 KB ahead was 5-10% slower, non-temporal (NTA) far slower).
            const PREFETCH_BLOCKS: usize = 64;

            /// Hints the cache to fetch element `at` from `base` (past the end is harmless: only an address).
            #[inline(always)]
            fn prefetch(base: *const F, at: usize) {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: prefetching is a hint and never faults; the pointer is only computed, not read.
                unsafe {
                    use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T1};
                    _mm_prefetch::<_MM_HINT_T1>(base.wrapping_add(at) as *const i8);
                }
            }

            /// The common case in a few operations: the input is normal in the data type and finite, and the
            /// format has subnormals (or the input is normal in it). If the input loses between 1 and MAN
            /// bits, rounding is an add and a mask on the bit pattern, the carry walking into the exponent by
            /// itself; if it lies wholly below one quantum, the result is 0 or the smallest subnormal. Returns
            /// the result and whether the lane qualified; blocks with any lane that does not take `round_bits`.
            #[inline(always)]
            fn fast_lane<const ID: u8>(p: &Params, u: U, r: U) -> (U, bool) {
                use modes::*;
                let mode = ID & !GENERAL;
                let sign = u & SIGN;
                let neg = sign != 0;
                let a = u & ABS;
                let e = (a >> MAN) as I;
                let below = if p.emin_b > e { (p.emin_b - e) as U } else { 0 };
                let drop = p.base_drop + below;
                let ok = (e >= p.fast_emin) & (e < (1 << (W - 1 - MAN)) - 1);
                let big = drop > MAN as U;
                let sh = if big { MAN as U } else { drop };
                let mask = ((1 as U) << sh).wrapping_sub(1);
                let half_m1 = mask >> 1;
                // The last kept bit (the implicit one when all MAN bits are dropped).
                let n_odd = (((a | (1 << MAN)) & (mask + 1)) != 0) as U;
                let sticky = a & mask != 0;
                let add = match mode {
                    NE => half_m1 + n_odd,
                    NZ => half_m1,
                    NA => half_m1 + 1,
                    TZ => 0,
                    TP => if neg { 0 } else { mask },
                    TN => if neg { mask } else { 0 },
                    ODD => if sticky & (n_odd == 0) { mask + 1 } else { 0 },
                    SR => r >> ((W as U).wrapping_sub(sh) & (W as U - 1)),
                    _ => if sticky & ((r >> (W - 1)) != 0) { mask + 1 } else { 0 },
                };
                let small_out = a.wrapping_add(add) & !mask;
                // Wholly below one quantum (the lower neighbour is 0, which is even): at drop = MAN + 1 the
                // value is at least half a quantum, a tie when its mantissa is 0; further down it is less.
                let at_half = drop == MAN as U + 1;
                let above_half = at_half & (a & ((1 << MAN) - 1) != 0);
                let big_up = match mode {
                    NE | NZ => above_half,
                    NA => at_half,
                    TZ => false,
                    TP => !neg,
                    TN => neg,
                    ODD => true,
                    SR => {
                        let m = (a & ((1 << MAN) - 1)) | (1 << MAN);
                        let frac = shl0(m, (W as U).wrapping_sub(drop)) | shr0(m, drop.wrapping_sub(W as U));
                        frac > !r
                    }
                    _ => (r >> (W - 1)) != 0,
                };
                let big_out = if big_up { p.big_step } else { 0 };
                let out = overflow::<ID>(p, if big { big_out } else { small_out }, neg);
                let keep_sign = (out != 0) | p.neg_zero;
                (if keep_sign { out | sign } else { out }, ok)
            }

            /// The common case of formats without mantissa bits (e8m0, e<E>m0), whose values are powers of
            /// two: a finite input, normal in the data type and at least the format's min normal, rounds to 2^e
            /// or 2^(e+1), decided by its mantissa alone (ties to the even code); in an unsigned format a
            /// negative input gives NaN. Returns the result and whether the lane qualified, as `fast_lane` does.
            #[inline(always)]
            fn pow2_lane<const ID: u8>(p: &Params, u: U, r: U) -> (U, bool) {
                use modes::*;
                let mode = ID & !GENERAL;
                let sign = u & SIGN;
                let neg = sign != 0;
                let a = u & ABS;
                let e = (a >> MAN) as I;
                // Negative numbers (and -inf) have no value in an unsigned format: NaN, as in `round_bits`.
                let neg_unsigned = p.unsigned & neg & (a != 0) & (a <= INF);
                let ok = neg_unsigned | ((e >= p.pow2_emin) & (e < (1 << (W - 1 - MAN)) - 1));
                let frac = a & ((1 << MAN) - 1);
                let half = 1 << (MAN - 1);
                let code_odd = ((e as U) ^ p.pow2_parity) & 1 != 0;
                let up = match mode {
                    NE => frac + code_odd as U > half,
                    NZ => frac > half,
                    NA => frac >= half,
                    TZ => false,
                    TP => (frac != 0) & !neg,
                    TN => (frac != 0) & neg,
                    ODD => (frac != 0) & !code_odd,
                    SR => ((frac << (W - MAN)) & p.sr_mask) > !(r & p.sr_mask),
                    _ => (frac != 0) & ((r >> (W - 1)) != 0),
                };
                let out = overflow::<ID>(p, ((e as U) + up as U) << MAN, neg);
                let nan = <F as Element>::nan(false).to_bits() | SIGN;
                (if neg_unsigned { nan } else { out | sign }, ok)
            }

            #[inline(always)]
            fn load_block(s: &[F]) -> [U; L] {
                let mut x = [0 as U; L];
                for i in 0..L {
                    x[i] = s[i].to_bits();
                }
                x
            }

            /// `lane` over the L lanes of a block, or None when some lane did not qualify.
            #[inline(always)]
            fn all_lanes<const ID: u8>(
                p: &Params,
                rng: &Rng,
                at: u64,
                x: &[U; L],
                lane: impl Fn(&Params, U, U) -> (U, bool),
            ) -> Option<[U; L]> {
                let mut out = [0 as U; L];
                let mut ok = true;
                for i in 0..L {
                    let (v, o) = lane(p, x[i], draw::<ID>(rng, at.wrapping_add(i as u64)));
                    out[i] = v;
                    ok &= o;
                }
                ok.then_some(out)
            }

            /// Rounds one block of L bit patterns starting at element `at`: a fast path when every lane takes
            /// it, the exact general element function otherwise.
            #[inline(always)]
            fn round_block<const ID: u8>(p: &Params, rng: &Rng, at: u64, x: &[U; L]) -> [U; L] {
                let fast = if ID & GENERAL == 0 && p.fast_ok {
                    all_lanes::<ID>(p, rng, at, x, fast_lane::<ID>)
                } else if p.pow2_ok {
                    all_lanes::<ID>(p, rng, at, x, pow2_lane::<ID>)
                } else {
                    None
                };
                if let Some(out) = fast {
                    return out;
                }
                let mut out = [0 as U; L];
                for i in 0..L {
                    out[i] = round_bits::<ID>(p, x[i], draw::<ID>(rng, at.wrapping_add(i as u64)));
                }
                out
            }

            /// Rounds `src` into `dst` block by block. With `stream`, blocks are written with non-temporal
            /// stores, which skip the read-for-ownership of the destination lines: a plain store loop moves
            /// three bytes for every two a copy moves. Worth it only for outputs far larger than the caches.
            #[inline(always)]
            fn round_loop<const MODE: u8, const ISA: u8>(p: &Params, rng: &Rng, start: u64, src: &[F], dst: &mut [F], stream: bool) {
                // Align the blocks to cache lines so each non-temporal block fills a whole line.
                let head = if stream { dst.as_ptr().align_offset(64).min(dst.len()) } else { 0 };
                for (i, (s, d)) in src[..head].iter().zip(&mut dst[..head]).enumerate() {
                    *d = F::from_bits(round_bits::<MODE>(p, s.to_bits(), draw::<MODE>(rng, start.wrapping_add(i as u64))));
                }
                let mut sb = src[head..].chunks_exact(L);
                let mut db = dst[head..].chunks_exact_mut(L);
                let mut at = start.wrapping_add(head as u64);
                for (k, (s, d)) in (&mut sb).zip(&mut db).enumerate() {
                    prefetch(src.as_ptr(), head + (k + PREFETCH_BLOCKS) * L);
                    let x: [U; L] = load_block(s);
                    let y = round_block::<MODE>(p, rng, at, &x);
                    if stream {
                        stream_line::<ISA>(&y, d);
                    } else {
                        for i in 0..L {
                            d[i] = F::from_bits(y[i]);
                        }
                    }
                    at = at.wrapping_add(L as u64);
                }
                for (i, (s, d)) in sb.remainder().iter().zip(db.into_remainder()).enumerate() {
                    *d = F::from_bits(round_bits::<MODE>(p, s.to_bits(), draw::<MODE>(rng, at.wrapping_add(i as u64))));
                }
                if stream {
                    stream_fence();
                }
            }

            /// Writes one 64-byte block to a 64-byte aligned destination with non-temporal stores, as wide
            /// as the instruction set `ISA` allows (2: AVX-512, 1: AVX2, 0: SSE2).
            #[inline(always)]
            fn stream_line<const ISA: u8>(y: &[U; L], d: &mut [F]) {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: `d` holds L elements (64 bytes) starting on a 64-byte boundary (see `round_loop`), so
                // every store is in bounds and aligned; ISA 2 and 1 are used only inside functions compiled
                // for AVX-512 and AVX2 on CPUs that have them; SSE2 is part of x86-64.
                unsafe {
                    use std::arch::x86_64::*;
                    let (src, dst) = (y.as_ptr(), d.as_mut_ptr());
                    if ISA == 2 {
                        _mm512_stream_si512(dst as *mut __m512i, _mm512_loadu_si512(src as *const __m512i));
                    } else if ISA == 1 {
                        for k in 0..2 {
                            let v = _mm256_loadu_si256((src as *const __m256i).add(k));
                            _mm256_stream_si256((dst as *mut __m256i).add(k), v);
                        }
                    } else {
                        for k in 0..4 {
                            let v = _mm_loadu_si128((src as *const __m128i).add(k));
                            _mm_stream_si128((dst as *mut __m128i).add(k), v);
                        }
                    }
                }
                #[cfg(not(target_arch = "x86_64"))]
                for i in 0..L {
                    d[i] = F::from_bits(y[i]);
                }
            }

            #[inline(always)]
            fn round_inplace_loop<const MODE: u8, const _ISA: u8>(p: &Params, rng: &Rng, start: u64, buf: &mut [F]) {
                let ahead = buf.as_ptr();
                let mut blocks = buf.chunks_exact_mut(L);
                let mut at = start;
                for (k, d) in (&mut blocks).enumerate() {
                    prefetch(ahead, (k + PREFETCH_BLOCKS) * L);
                    let x: [U; L] = load_block(d);
                    let y = round_block::<MODE>(p, rng, at, &x);
                    for i in 0..L {
                        d[i] = F::from_bits(y[i]);
                    }
                    at = at.wrapping_add(L as u64);
                }
                for (i, d) in blocks.into_remainder().iter_mut().enumerate() {
                    *d = F::from_bits(round_bits::<MODE>(p, d.to_bits(), draw::<MODE>(rng, at.wrapping_add(i as u64))));
                }
            }

            #[inline(always)]
            fn encode_loop<const MODE: u8, const _ISA: u8>(p: &Params, rng: &Rng, start: u64, src: &[F], dst: &mut [U]) {
                let mut sb = src.chunks_exact(L);
                let mut db = dst.chunks_exact_mut(L);
                let mut at = start;
                for (k, (s, d)) in (&mut sb).zip(&mut db).enumerate() {
                    prefetch(src.as_ptr(), (k + PREFETCH_BLOCKS) * L);
                    let x: [U; L] = load_block(s);
                    let y = round_block::<MODE>(p, rng, at, &x);
                    for i in 0..L {
                        d[i] = code_bits(p, y[i]);
                    }
                    at = at.wrapping_add(L as u64);
                }
                for (i, (s, d)) in sb.remainder().iter().zip(db.into_remainder()).enumerate() {
                    let r = draw::<MODE>(rng, at.wrapping_add(i as u64));
                    *d = code_bits(p, round_bits::<MODE>(p, s.to_bits(), r));
                }
            }

            mod round_k {
                use super::*;
                isa_variants!(run, round_loop, (p: &Params, rng: &Rng, start: u64, src: &[F], dst: &mut [F], stream: bool));
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

/// Hints the cache to fetch into L2 the lines that hold elements [from, from + count) of `x`. Indices past
/// the end are harmless: addresses are only computed, never read. Bulk passes that read their input more than
/// once use it to have the next stretch arriving while they work on the current one.
#[inline(always)]
pub(crate) fn prefetch<T>(x: &[T], from: usize, count: usize) {
    let per_line = (64 / std::mem::size_of::<T>().max(1)).max(1);
    for at in (from..from + count).step_by(per_line) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: prefetching is a hint and never faults; the pointer is only computed, not read.
        unsafe {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T1};
            _mm_prefetch::<_MM_HINT_T1>(x.as_ptr().wrapping_add(at) as *const i8);
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = at;
    }
}

/// Orders the non-temporal stores of a task before anything that follows it.
#[inline(always)]
fn stream_fence() {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE is part of x86-64.
    unsafe {
        std::arch::x86_64::_mm_sfence()
    };
}

/// Whether `fmt` needs the general kernel variant for data whose smallest normal is 2^`emin_dtype`.
pub(crate) fn needs_general(fmt: &Format, emin_dtype: i32) -> bool {
    !fmt.exponent_limit() || fmt.emin() < emin_dtype || !fmt.has_zero() || !fmt.signed()
}

/// Whether the branch-free encoder is exact for `fmt` in a data type whose smallest normal is 2^`emin_dtype`.
pub(crate) fn fast_encode(fmt: &Format, emin_dtype: i32) -> bool {
    fmt.exponent_limit() && fmt.has_zero() && fmt.emin() >= emin_dtype
}
