//! The storage types lowp rounds: float32 and float64 arrays, and the integer types that hold codes.

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
    impl Sealed for u8 {}
    impl Sealed for u16 {}
    impl Sealed for u32 {}
    impl Sealed for u64 {}
}

/// A floating-point storage type that formats are emulated in: `f32` or `f64`.
pub trait Element:
    crate::round::hooks::Kernels + Copy + Send + Sync + PartialEq + std::fmt::Debug + sealed::Sealed + 'static
{
    /// `float32` or `float64`.
    const DTYPE: &'static str;
    /// Stored mantissa bits.
    const MAN_BITS: u32;
    /// Random bits drawn per element by stochastic modes.
    const RANDOM_BITS: u32;
    /// Largest finite value.
    const MAX: f64;
    /// Exact widening.
    fn to_f64(self) -> f64;
    /// Narrowing; exact for every value lowp produces in this type.
    fn from_f64(v: f64) -> Self;
    /// The bit pattern, widened.
    fn bits64(self) -> u64;
    /// A quiet NaN with the given sign.
    fn nan(neg: bool) -> Self;
    /// The slice as what it is, for kernels written per storage type.
    fn typed(s: &[Self]) -> Typed<'_>;
}

/// A slice of an [`Element`] type, as its own type.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum Typed<'a> {
    /// float32 data.
    F32(&'a [f32]),
    /// float64 data.
    F64(&'a [f64]),
}

impl Element for f32 {
    const DTYPE: &'static str = "float32";
    const MAN_BITS: u32 = 23;
    const RANDOM_BITS: u32 = 32;
    const MAX: f64 = f32::MAX as f64;
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
    fn from_f64(v: f64) -> f32 {
        v as f32
    }
    fn bits64(self) -> u64 {
        u64::from(self.to_bits())
    }
    fn nan(neg: bool) -> f32 {
        f32::from_bits(0x7fc0_0000 | (u32::from(neg) << 31))
    }
    fn typed(s: &[f32]) -> Typed<'_> {
        Typed::F32(s)
    }
}

impl Element for f64 {
    const DTYPE: &'static str = "float64";
    const MAN_BITS: u32 = 52;
    const RANDOM_BITS: u32 = 64;
    const MAX: f64 = f64::MAX;
    fn to_f64(self) -> f64 {
        self
    }
    fn from_f64(v: f64) -> f64 {
        v
    }
    fn bits64(self) -> u64 {
        self.to_bits()
    }
    fn nan(neg: bool) -> f64 {
        f64::from_bits(0x7ff8_0000_0000_0000 | (u64::from(neg) << 63))
    }
    fn typed(s: &[f64]) -> Typed<'_> {
        Typed::F64(s)
    }
}

/// An unsigned integer type that holds codes: `u8`, `u16`, `u32` or `u64`.
pub trait CodeInt: Copy + Send + Sync + Default + PartialEq + std::fmt::Debug + sealed::Sealed + 'static {
    /// Width in bits.
    const BITS: u32;
    /// Truncating conversion (callers check the width first).
    fn from_u64(v: u64) -> Self;
    /// Widening.
    fn to_u64(self) -> u64;
}

macro_rules! code_int {
    ($($t:ty),*) => {$(
        impl CodeInt for $t {
            const BITS: u32 = <$t>::BITS;
            #[inline(always)]
            fn from_u64(v: u64) -> $t {
                v as $t
            }
            #[inline(always)]
            fn to_u64(self) -> u64 {
                self as u64
            }
        }
    )*};
}
code_int!(u8, u16, u32, u64);
