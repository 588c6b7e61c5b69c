//! `lowp round`, `lowp encode` and `lowp decode`: .npy file in, .npy file out.

use std::path::Path;

use anyhow::{anyhow, Result};
use lowp::codes::code_width;
use lowp::{CodeInt, Element, Format, Rounding};

use crate::npy::{self, Data, Scalar};

/// The element type `decode` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum FloatType {
    #[value(alias = "float32")]
    F32,
    #[value(alias = "float64")]
    F64,
}

pub fn round(fmt: &Format, cfg: &Rounding, input: &Path, output: &Path) -> Result<()> {
    let a = npy::read(input, npy::FLOATS, "round")?;
    let what = || format!("cannot round {} to {fmt}", input.display());
    match a.data {
        Data::F32(mut x) => {
            lowp::round_in_place(fmt, cfg, &mut x).map_err(|e| explain(e, &a.shape, what()))?;
            npy::write(output, &a.shape, &x)
        }
        Data::F64(mut x) => {
            lowp::round_in_place(fmt, cfg, &mut x).map_err(|e| explain(e, &a.shape, what()))?;
            npy::write(output, &a.shape, &x)
        }
        _ => unreachable!("npy::read returns only the accepted kinds"),
    }
}

pub fn encode(fmt: &Format, cfg: &Rounding, input: &Path, output: &Path) -> Result<()> {
    let a = npy::read(input, npy::FLOATS, "encode")?;
    let what = format!("cannot encode {} as {fmt}", input.display());
    match &a.data {
        Data::F32(x) => encode_floats(fmt, cfg, x, &a.shape, output, what),
        Data::F64(x) => encode_floats(fmt, cfg, x, &a.shape, output, what),
        _ => unreachable!("npy::read returns only the accepted kinds"),
    }
}

fn encode_floats<T: Element>(
    fmt: &Format,
    cfg: &Rounding,
    x: &[T],
    shape: &[u64],
    output: &Path,
    what: String,
) -> Result<()> {
    match code_width(fmt) {
        8 => encode_as::<T, u8>(fmt, cfg, x, shape, output, what),
        16 => encode_as::<T, u16>(fmt, cfg, x, shape, output, what),
        32 => encode_as::<T, u32>(fmt, cfg, x, shape, output, what),
        _ => encode_as::<T, u64>(fmt, cfg, x, shape, output, what),
    }
}

fn encode_as<T: Element, C: CodeInt + Scalar>(
    fmt: &Format,
    cfg: &Rounding,
    x: &[T],
    shape: &[u64],
    output: &Path,
    what: String,
) -> Result<()> {
    let mut codes = vec![C::default(); x.len()];
    lowp::encode(fmt, cfg, x, &mut codes).map_err(|e| explain(e, shape, what))?;
    npy::write(output, shape, &codes)
}

pub fn decode(fmt: &Format, dtype: FloatType, input: &Path, output: &Path) -> Result<()> {
    let a = npy::read(input, npy::CODES, "decode")?;
    let what = format!("cannot decode {} as {fmt}", input.display());
    match dtype {
        FloatType::F32 => decode_as::<f32>(fmt, &a, output, what),
        FloatType::F64 => decode_as::<f64>(fmt, &a, output, what),
    }
}

fn decode_as<T: Element + Scalar>(fmt: &Format, a: &npy::Array, output: &Path, what: String) -> Result<()> {
    match &a.data {
        Data::U8(c) => decode_codes::<u8, T>(fmt, c, &a.shape, output, what),
        Data::U16(c) => decode_codes::<u16, T>(fmt, c, &a.shape, output, what),
        Data::U32(c) => decode_codes::<u32, T>(fmt, c, &a.shape, output, what),
        Data::U64(c) => decode_codes::<u64, T>(fmt, c, &a.shape, output, what),
        _ => unreachable!("npy::read returns only the accepted kinds"),
    }
}

fn decode_codes<C: CodeInt, T: Element + Scalar>(
    fmt: &Format,
    codes: &[C],
    shape: &[u64],
    output: &Path,
    what: String,
) -> Result<()> {
    let mut y = vec![T::from_f64(0.0); codes.len()];
    lowp::decode(fmt, codes, &mut y).map_err(|e| match e {
        lowp::Error::UnsupportedDtype { .. } if T::DTYPE == "float32" => {
            anyhow!("{what}: {e}; decode to float64 instead with --dtype f64")
        }
        e => explain(e, shape, what),
    })?;
    npy::write(output, shape, &y)
}

/// The core error with our context, and a flat element index also shown as a position in the array.
fn explain(e: lowp::Error, shape: &[u64], what: String) -> anyhow::Error {
    let index = match &e {
        lowp::Error::CodeTooWide { index, .. } | lowp::Error::NotRepresentable { index, .. } => Some(*index),
        _ => None,
    };
    match index {
        Some(i) if shape.len() > 1 => {
            anyhow!("{what}: {e} (position {:?})", unravel(i as u64, shape))
        }
        _ => anyhow!("{what}: {e}"),
    }
}

/// The multi-index of flat C-order index `i`.
fn unravel(mut i: u64, shape: &[u64]) -> Vec<u64> {
    let mut pos = vec![0; shape.len()];
    for (p, &d) in pos.iter_mut().zip(shape).rev() {
        *p = i % d.max(1);
        i /= d.max(1);
    }
    pos
}

#[cfg(test)]
mod tests {
    #[test]
    fn unravel_is_row_major() {
        assert_eq!(super::unravel(7, &[3, 4]), [1, 3]);
        assert_eq!(super::unravel(23, &[2, 3, 4]), [1, 2, 3]);
    }
}
