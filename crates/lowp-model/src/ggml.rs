//! ggml's tensor types as stored in GGUF files: plain floats and the 32-element block types lowp reads and
//! exports.
//!
//! | type | code | block | bytes | value of element j |
//! |---|---|---|---|---|
//! | F32 | 0 | 1 | 4 | the float32 |
//! | F16 | 1 | 1 | 2 | the float16 |
//! | Q4_0 | 2 | 32 | 18 | d · (q_j − 8); d float16, q_j 4 bits |
//! | Q4_1 | 3 | 32 | 20 | d · q_j + m; d, m float16, q_j 4 bits |
//! | Q8_0 | 8 | 32 | 34 | d · q_j; d float16, q_j int8 |
//! | BF16 | 30 | 1 | 2 | the bfloat16 |
//! | MXFP4 | 39 | 32 | 17 | e2m1(q_j) · 2^(e − 127); e an E8M0 byte, q_j 4 bits |
//!
//! In the 4-bit types the 16 bytes after the block's scales hold element j (0 ≤ j < 16) in the low nibble of
//! byte j and element j + 16 in its high nibble. Products and sums are float32 operations, each rounded (no
//! fused multiply-add), as the `gguf` Python package computes them.

use half::{bf16, f16};

/// A ggml tensor type lowp reads (and, for the block types, exports).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GgmlType {
    /// float32.
    F32,
    /// float16.
    F16,
    /// bfloat16.
    Bf16,
    /// 32 elements: a float16 scale and 4-bit codes offset by 8.
    Q4_0,
    /// 32 elements: float16 scale and minimum, 4-bit codes.
    Q4_1,
    /// 32 elements: a float16 scale and int8 codes.
    Q8_0,
    /// 32 elements: an E8M0 scale and e2m1 codes (OCP MXFP4).
    Mxfp4,
}

/// The e2m1 values of the 16 codes (sign in bit 3).
pub const E2M1: [f32; 16] = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0];

impl GgmlType {
    const ALL: [GgmlType; 7] =
        [GgmlType::F32, GgmlType::F16, GgmlType::Bf16, GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q8_0, GgmlType::Mxfp4];

    /// The type with ggml's numeric code, if lowp reads it.
    pub fn from_code(code: u32) -> Option<GgmlType> {
        GgmlType::ALL.into_iter().find(|t| t.code() == code)
    }

    /// The type by its ggml name (`q4_0`, `q4_1`, `q8_0`, `mxfp4`, `f32`, `f16`, `bf16`; any case).
    pub fn parse(name: &str) -> Option<GgmlType> {
        GgmlType::ALL.into_iter().find(|t| t.name().eq_ignore_ascii_case(name.trim()))
    }

    /// The names lowp reads, for error messages.
    pub fn accepted() -> String {
        GgmlType::ALL.map(|t| format!("{} ({})", t.name(), t.code())).join(", ")
    }

    /// ggml's numeric code.
    pub fn code(self) -> u32 {
        match self {
            GgmlType::F32 => 0,
            GgmlType::F16 => 1,
            GgmlType::Q4_0 => 2,
            GgmlType::Q4_1 => 3,
            GgmlType::Q8_0 => 8,
            GgmlType::Bf16 => 30,
            GgmlType::Mxfp4 => 39,
        }
    }

    /// ggml's name.
    pub fn name(self) -> &'static str {
        match self {
            GgmlType::F32 => "f32",
            GgmlType::F16 => "f16",
            GgmlType::Bf16 => "bf16",
            GgmlType::Q4_0 => "q4_0",
            GgmlType::Q4_1 => "q4_1",
            GgmlType::Q8_0 => "q8_0",
            GgmlType::Mxfp4 => "mxfp4",
        }
    }

    /// Elements per block.
    pub fn block_len(self) -> usize {
        match self {
            GgmlType::F32 | GgmlType::F16 | GgmlType::Bf16 => 1,
            _ => 32,
        }
    }

    /// Bytes per block.
    pub fn block_bytes(self) -> usize {
        match self {
            GgmlType::F32 => 4,
            GgmlType::F16 | GgmlType::Bf16 => 2,
            GgmlType::Q4_0 => 18,
            GgmlType::Q4_1 => 20,
            GgmlType::Q8_0 => 34,
            GgmlType::Mxfp4 => 17,
        }
    }

    /// Bytes of `n` elements, or `None` if `n` is not a whole number of blocks (or overflows).
    pub fn bytes_for(self, n: usize) -> Option<usize> {
        if !n.is_multiple_of(self.block_len()) {
            return None;
        }
        (n / self.block_len()).checked_mul(self.block_bytes())
    }

    /// Dequantizes `bytes` (whole blocks) into `out` (`bytes.len() / block_bytes * block_len` elements).
    ///
    /// # Panics
    /// If the lengths disagree (callers check them: [`crate::gguf::Gguf`] on open).
    pub fn dequantize(self, bytes: &[u8], out: &mut [f32]) {
        let (bl, bb) = (self.block_len(), self.block_bytes());
        assert_eq!(bytes.len() / bb * bl, out.len(), "{} blocks and output length", self.name());
        let half_at = |b: &[u8], i: usize| f16::from_le_bytes([b[i], b[i + 1]]).to_f32();
        for (b, o) in bytes.chunks_exact(bb).zip(out.chunks_exact_mut(bl)) {
            match self {
                GgmlType::F32 => o[0] = f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
                GgmlType::F16 => o[0] = half_at(b, 0),
                GgmlType::Bf16 => o[0] = bf16::from_le_bytes([b[0], b[1]]).to_f32(),
                GgmlType::Q4_0 => {
                    let d = half_at(b, 0);
                    nibbles(&b[2..18], o, |q| (q as f32 - 8.0) * d);
                }
                GgmlType::Q4_1 => {
                    let (d, m) = (half_at(b, 0), half_at(b, 2));
                    nibbles(&b[4..20], o, |q| q as f32 * d + m);
                }
                GgmlType::Q8_0 => {
                    let d = half_at(b, 0);
                    for (o, &q) in o.iter_mut().zip(&b[2..34]) {
                        *o = (q as i8) as f32 * d;
                    }
                }
                GgmlType::Mxfp4 => {
                    let scale = e8m0(b[0]);
                    nibbles(&b[1..17], o, |q| E2M1[usize::from(q)] * scale);
                }
            }
        }
    }
}

/// 2^(e − 127) as float32 (E8M0; the code 255, NaN in OCP, gives NaN).
pub fn e8m0(e: u8) -> f32 {
    if e == 255 {
        f32::NAN
    } else {
        (2f64.powi(i32::from(e) - 127)) as f32
    }
}

/// Applies `value` to the 32 nibbles of a 4-bit block: element j in the low nibble of byte j, element j + 16
/// in its high nibble.
fn nibbles(qs: &[u8], out: &mut [f32], value: impl Fn(u8) -> f32) {
    for (j, &q) in qs.iter().enumerate() {
        out[j] = value(q & 0x0F);
        out[j + 16] = value(q >> 4);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_names_and_sizes_round_trip() {
        for t in GgmlType::ALL {
            assert_eq!(GgmlType::from_code(t.code()), Some(t));
            assert_eq!(GgmlType::parse(&t.name().to_uppercase()), Some(t));
        }
        assert_eq!(GgmlType::from_code(12), None); // q4_K: not read
        assert_eq!(GgmlType::Q4_1.bytes_for(64), Some(40));
        assert_eq!(GgmlType::Q4_1.bytes_for(48), None);
    }

    #[test]
    fn blocks_decode_by_their_definitions() {
        // One block of each 32-element type, values worked from the table in the module docs.
        let mut q41 = vec![0u8; 20];
        q41[0..2].copy_from_slice(&f16::from_f32(0.5).to_le_bytes());
        q41[2..4].copy_from_slice(&f16::from_f32(-2.0).to_le_bytes());
        q41[4] = 0x3F; // element 0: 15, element 16: 3
        let mut out = [0f32; 32];
        GgmlType::Q4_1.dequantize(&q41, &mut out);
        assert_eq!((out[0], out[16], out[1]), (15.0 * 0.5 - 2.0, 3.0 * 0.5 - 2.0, -2.0));

        let mut q40 = vec![0u8; 18];
        q40[0..2].copy_from_slice(&f16::from_f32(0.25).to_le_bytes());
        q40[2 + 5] = 0xF0; // element 5: 0 -> -8, element 21: 15 -> 7
        GgmlType::Q4_0.dequantize(&q40, &mut out);
        assert_eq!((out[5], out[21], out[0]), (-2.0, 1.75, -2.0));

        let mut q80 = vec![0u8; 34];
        q80[0..2].copy_from_slice(&f16::from_f32(3.0).to_le_bytes());
        q80[2 + 31] = (-128i8) as u8;
        GgmlType::Q8_0.dequantize(&q80, &mut out);
        assert_eq!((out[31], out[0]), (-384.0, 0.0));

        let mut mx = vec![0u8; 17];
        mx[0] = 125; // 2^-2
        mx[1] = 0xF7; // element 0: code 7 = 6, element 16: code 15 = -6
        GgmlType::Mxfp4.dequantize(&mx, &mut out);
        assert_eq!((out[0], out[16]), (1.5, -1.5));
        assert!(e8m0(255).is_nan());
        assert_eq!(e8m0(0), 2f32.powi(-127));
    }
}
