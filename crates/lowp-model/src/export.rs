//! Export of a quantized model to GGUF, for the schemes whose stored form is a ggml block type, so that
//! llama.cpp and other GGUF readers run exactly the weights lowp evaluated.
//!
//! | lowp scheme | ggml type | block |
//! |---|---|---|
//! | `int8:g32:sym[:full]:scale=fp16` | q8_0 | d = the scale, q = the code |
//! | `int4:g32:sym[:full]:scale=fp16` | q4_0 | d = the scale, q = code + 8 |
//! | `int4:g32:asym:scale=fp16` | q4_1 | d = the scale, q = the code, m = −scale · zero point, when every m is a float16 |
//! | `mxfp4` (blocks of 32, any scale rule) | mxfp4 | e = the E8M0 scale code, q = the e2m1 code |
//!
//! Every exported value equals lowp's dequantized value exactly: the products involved have at most 19
//! significant bits, so float32 arithmetic in the reader rounds nothing. Other schemes are refused with the
//! list above. The tensors lowp did not quantize (embedding, norms) keep their bytes and types.

use std::path::Path;

use half::f16;
use lowp::quant::{Granularity, MxElement, QuantizedTensor, Scheme, Symmetry};

use crate::error::{Error, Result};
use crate::ggml::GgmlType;
use crate::gguf::{self, Gguf, TensorData, Value};

/// The schemes that export, for error messages.
pub const EXPORTABLE: &str = "int8:g32:sym:scale=fp16 (q8_0), int4:g32:sym[:full]:scale=fp16 (q4_0), \
int4:g32:asym:scale=fp16 (q4_1, when every -scale * zero is a float16), mxfp4 (mxfp4)";

/// The ggml type and block bytes of `q` (a `[rows, cols]` weight quantized along its rows), or why it has
/// none.
pub fn to_ggml(q: &QuantizedTensor) -> std::result::Result<(GgmlType, Vec<u8>), String> {
    // The scales' stored codes (float16 bits, E8M0 bytes), not their values.
    let (codes, scales) = (q.codes(), q.part("scales").map(lowp::quant::Part::values).unwrap_or_default());
    if q.shape().len() != 2 || q.axis() != 1 || !q.shape()[1].is_multiple_of(32) {
        return Err(format!(
            "shape {:?} quantized along axis {}: rows of whole 32-blocks are needed",
            q.shape(),
            q.axis()
        ));
    }
    let blocks = q.len() / 32;
    match q.scheme() {
        Scheme::Int(s)
            if s.granularity() == Granularity::Group(32)
                && s.scale_format().name() == "float16"
                && matches!(s.symmetry(), Symmetry::Symmetric { .. })
                && (s.bits() == 8 || s.bits() == 4) =>
        {
            let kind = if s.bits() == 8 { GgmlType::Q8_0 } else { GgmlType::Q4_0 };
            let mut out = Vec::with_capacity(blocks * kind.block_bytes());
            for (b, c) in codes.chunks_exact(32).enumerate() {
                out.extend_from_slice(&(scales[b] as u16).to_le_bytes());
                if kind == GgmlType::Q8_0 {
                    out.extend(c.iter().map(|&v| v as i8 as u8));
                } else {
                    out.extend(nibbles(c, |v| (v + 8) as u8));
                }
            }
            Ok((kind, out))
        }
        Scheme::Int(s)
            if s.granularity() == Granularity::Group(32)
                && s.scale_format().name() == "float16"
                && s.symmetry() == Symmetry::Asymmetric
                && s.bits() == 4 =>
        {
            let zeros = q.zeros().unwrap_or_default();
            let decoded = q.scales();
            let mut out = Vec::with_capacity(blocks * 20);
            for (b, c) in codes.chunks_exact(32).enumerate() {
                let m = -decoded[b] * zeros[b] as f64;
                let mh = f16::from_f64(m);
                if mh.to_f64() != m {
                    return Err(format!(
                        "block {b}: the minimum -scale * zero = {m} is not a float16, so q4_1 cannot hold it exactly"
                    ));
                }
                out.extend_from_slice(&(scales[b] as u16).to_le_bytes());
                out.extend_from_slice(&mh.to_le_bytes());
                out.extend(nibbles(c, |v| v as u8));
            }
            Ok((GgmlType::Q4_1, out))
        }
        Scheme::Mx(m)
            if m.block() == 32 && matches!(m.element(), MxElement::Float(f) if f.name() == "float4_e2m1fn") =>
        {
            let mut out = Vec::with_capacity(blocks * 17);
            for (b, c) in codes.chunks_exact(32).enumerate() {
                out.push(scales[b] as u8);
                out.extend(nibbles(c, |v| v as u8));
            }
            Ok((GgmlType::Mxfp4, out))
        }
        other => Err(format!("{other} has no ggml block type")),
    }
}

/// 16 bytes of a 32-element block: element j in the low nibble of byte j, element j + 16 in its high nibble.
fn nibbles(c: &[i64], nibble: impl Fn(i64) -> u8) -> [u8; 16] {
    std::array::from_fn(|j| (nibble(c[j]) & 0x0F) | (nibble(c[j + 16]) << 4))
}

/// Writes `base` to `path` as GGUF with the tensors of `layers` replaced by their ggml blocks; every other
/// tensor and all metadata are copied (with `general.file_type` set to the exported type when one type
/// covers every layer, and the scheme under `lowp.scheme`). Returns the ggml type of each layer.
pub fn gguf(base: &Gguf, layers: &[(String, QuantizedTensor)], scheme: &str, path: &Path) -> Result<Vec<GgmlType>> {
    let mut converted = Vec::with_capacity(layers.len());
    for (name, q) in layers {
        let t = base
            .tensor(name)
            .ok_or_else(|| Error::Tensor { name: name.clone(), why: format!("not in {}", base.path().display()) })?;
        if q.shape() != t.shape() {
            return Err(Error::Tensor {
                name: name.clone(),
                why: format!("quantized as {:?}, the model's is {:?}", q.shape(), t.shape()),
            });
        }
        let (kind, bytes) = to_ggml(q).map_err(|why| Error::Tensor {
            name: name.clone(),
            why: format!("cannot export to GGUF: {why}. Exportable schemes: {EXPORTABLE}"),
        })?;
        converted.push((name.as_str(), kind, bytes));
    }
    let mut tensors = Vec::with_capacity(base.tensors.len());
    for t in &base.tensors {
        let (kind, bytes) = match converted.iter().find(|(n, ..)| *n == t.name) {
            Some((_, kind, bytes)) => (*kind, bytes.clone()),
            None => (t.kind, base.raw(t).to_vec()),
        };
        tensors.push(TensorData { name: t.name.clone(), shape: t.shape(), kind, bytes });
    }
    let kinds: Vec<GgmlType> = converted.iter().map(|(_, k, _)| *k).collect();
    // llama.cpp's file types (`llama_ftype`) of the exported types.
    let file_type = match kinds.first() {
        Some(k) if kinds.iter().all(|x| x == k) => match k {
            GgmlType::Q4_0 => Some(2),
            GgmlType::Q4_1 => Some(3),
            GgmlType::Q8_0 => Some(7),
            GgmlType::Mxfp4 => Some(38),
            _ => None,
        },
        _ => None,
    };
    let mut metadata: Vec<(String, Value)> = base
        .metadata
        .iter()
        .filter(|(k, _)| k != "general.alignment" && (k != "general.file_type" || file_type.is_none()))
        .cloned()
        .collect();
    if let Some(ft) = file_type {
        metadata.push(("general.file_type".into(), Value::U32(ft)));
    }
    metadata.push(("lowp.scheme".into(), Value::Str(scheme.to_string())));
    gguf::write(path, &metadata, &tensors)?;
    Ok(kinds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lowp::Rounding;

    /// `x` quantized by `spec` along the rows of `[rows, 64]`, exported, and read back by the GGUF block
    /// decoder: the same values as lowp's dequantization, exactly.
    fn round_trip(spec: &str, x: &[f32]) -> std::result::Result<GgmlType, String> {
        let rows = x.len() / 64;
        let q =
            QuantizedTensor::quantize(&Scheme::parse(spec).unwrap(), &Rounding::default(), x, &[rows, 64], 1).unwrap();
        let (kind, bytes) = to_ggml(&q)?;
        let mut back = vec![0f32; x.len()];
        kind.dequantize(&bytes, &mut back);
        let mut want = vec![0f32; x.len()];
        q.dequantize(&mut want).unwrap();
        assert_eq!(back, want, "{spec}");
        Ok(kind)
    }

    #[test]
    fn exported_blocks_decode_to_lowps_values() {
        let x: Vec<f32> = (0..256).map(|i| ((i * 7919 % 251) as f32 - 125.0) / 37.0).collect();
        assert_eq!(round_trip("int8:g32:sym:scale=fp16", &x), Ok(GgmlType::Q8_0));
        assert_eq!(round_trip("int8:g32:sym:full:scale=fp16", &x), Ok(GgmlType::Q8_0));
        assert_eq!(round_trip("int4:g32:sym:full:scale=fp16", &x), Ok(GgmlType::Q4_0));
        assert_eq!(round_trip("int4:g32:sym:scale=fp16", &x), Ok(GgmlType::Q4_0));
        assert_eq!(round_trip("mxfp4", &x), Ok(GgmlType::Mxfp4));
        assert_eq!(round_trip("mxfp4:ceil", &x), Ok(GgmlType::Mxfp4));
        // q4_1 where every minimum -scale * zero is a float16: groups spanning [-1.5, 6] (scale 0.5, zero 3).
        let y: Vec<f32> = (0..128)
            .map(|i| {
                if i % 32 == 0 {
                    -1.5
                } else if i % 32 == 1 {
                    6.0
                } else {
                    (i % 13) as f32 / 4.0
                }
            })
            .collect();
        assert_eq!(round_trip("int4:g32:asym:scale=fp16", &y), Ok(GgmlType::Q4_1));
        assert!(round_trip("int4:g32:asym:scale=fp16", &x).unwrap_err().contains("not a float16"));
        for other in ["int4:g128:asym", "int4:g32:sym", "int8:g32:sym:scale=bf16", "mxfp6_e2m3", "nvfp4", "bitmod4:g32"]
        {
            assert!(round_trip(other, &x).is_err(), "{other}");
        }
    }
}
