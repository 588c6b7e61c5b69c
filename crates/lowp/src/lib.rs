//! # lowp: bit-exact emulation of low-precision number formats
//!
//! lowp rounds float32 and float64 data to any element format (IEEE half and bfloat16, the OCP and
//! ml_dtypes float8/6/4 formats, IEEE P3109 formats, custom `e<E>m<M>` and MATLAB-chop `(t, emax)`
//! formats) under nine rounding modes plus limited-bit stochastic rounding, encodes values to the formats'
//! bit patterns, decodes them, and packs sub-byte codes. Every fast kernel is tested bit for bit against
//! [`round::reference`], a plain exact implementation.
//!
//! ```
//! use lowp::{round, encode, Format, Rounding, RoundingMode};
//!
//! let fmt = Format::parse("float8_e4m3fn")?;
//! let x = vec![0.1f32, 1.0, 300.0, 1000.0];
//! let mut y = vec![0.0f32; 4];
//! round(&fmt, &Rounding::new(RoundingMode::NearestEven), &x, &mut y)?;
//! assert_eq!(&y[..3], &[0.1015625, 1.0, 288.0]);
//! assert!(y[3].is_nan()); // overflow in an `fn` format gives NaN...
//!
//! let sat = fmt.with_saturation(true); // ...or ±max with saturation
//! let mut codes = vec![0u8; 4];
//! encode(&sat, &Rounding::default(), &x, &mut codes)?;
//! assert_eq!(codes, [0x1d, 0x38, 0x79, 0x7e]);
//! # Ok::<(), lowp::Error>(())
//! ```

#![warn(missing_docs)]

/// The README's Rust quickstart, compiled and run as a doctest.
#[doc = include_str!("../../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

pub mod arith;
pub mod codes;
pub mod dtype;
mod error;
pub mod format;
pub mod ptq;
pub mod quant;
pub mod round;

pub use codes::{decode, pack, unpack};
pub use dtype::{CodeInt, Element, Typed};
pub use error::{Error, Result};
pub use format::{Format, Specials};
pub use round::{encode, round, round_in_place, round_value, BitFlip, FlipScope, Isa, Rounding, RoundingMode};
