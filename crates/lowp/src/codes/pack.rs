//! Packing b-bit codes (1 <= b <= 8) into a little-endian bit stream: code i occupies bits
//! [i*b, (i+1)*b), bit 0 being the least significant bit of byte 0 (FORMATS.md §5). For b = 4 the first
//! code is in the low nibble.

use rayon::prelude::*;

use crate::error::{Error, Result};

/// Bytes needed for `count` codes of `bits` bits.
pub fn packed_len(count: usize, bits: u32) -> usize {
    (count * bits as usize).div_ceil(8)
}

fn check_bits(bits: u32) -> Result<()> {
    if (1..=8).contains(&bits) {
        Ok(())
    } else {
        Err(Error::InvalidOption(format!("packing width {bits}: accepted widths are 1..=8 bits")))
    }
}

/// Codes per group: a group of 8 codes is exactly `bits` bytes, so groups pack independently.
const GROUP: usize = 8;

/// Packs codes into a new buffer. Codes that do not fit in `bits` bits are an error naming the first one.
///
/// # Examples
/// ```
/// use lowp::codes::{pack, unpack};
/// let packed = pack(&[0x1, 0x2, 0xf], 4)?;
/// assert_eq!(packed, vec![0x21, 0x0f]);
/// assert_eq!(unpack(&packed, 4, 3)?, vec![0x1, 0x2, 0xf]);
/// # Ok::<(), lowp::Error>(())
/// ```
pub fn pack(codes: &[u8], bits: u32) -> Result<Vec<u8>> {
    check_bits(bits)?;
    if bits < 8 {
        if let Some(index) = super::first_index(codes, |&c| c >> bits != 0) {
            return Err(Error::CodeTooWide { code: u64::from(codes[index]), index, bits });
        }
    }
    let b = bits as usize;
    let mut out = vec![0u8; packed_len(codes.len(), bits)];
    // Each group of 8 codes fills `b` whole bytes; the last group may be partial.
    out.par_chunks_mut(b * 1024).zip(codes.par_chunks(GROUP * 1024)).for_each(|(o, c)| {
        for (o, c) in o.chunks_mut(b).zip(c.chunks(GROUP)) {
            let mut acc = 0u64;
            for (k, &code) in c.iter().enumerate() {
                acc |= u64::from(code) << (k * b);
            }
            let bytes = acc.to_le_bytes();
            o.copy_from_slice(&bytes[..o.len()]);
        }
    });
    Ok(out)
}

/// Unpacks `count` codes of `bits` bits.
pub fn unpack(packed: &[u8], bits: u32, count: usize) -> Result<Vec<u8>> {
    check_bits(bits)?;
    let need = packed_len(count, bits);
    if packed.len() < need {
        return Err(Error::BufferTooShort { have: packed.len(), need, count, bits });
    }
    let b = bits as usize;
    let mask = ((1u16 << bits) - 1) as u64;
    let mut out = vec![0u8; count];
    out.par_chunks_mut(GROUP * 1024).zip(packed[..need].par_chunks(b * 1024)).for_each(|(o, p)| {
        for (o, p) in o.chunks_mut(GROUP).zip(p.chunks(b)) {
            let mut bytes = [0u8; 8];
            bytes[..p.len()].copy_from_slice(p);
            let acc = u64::from_le_bytes(bytes);
            for (k, code) in o.iter_mut().enumerate() {
                *code = ((acc >> (k * b)) & mask) as u8;
            }
        }
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bit stream written one bit at a time, as the definition reads.
    fn pack_bitwise(codes: &[u8], bits: u32) -> Vec<u8> {
        let mut out = vec![0u8; packed_len(codes.len(), bits)];
        for (i, &c) in codes.iter().enumerate() {
            for j in 0..bits as usize {
                if c >> j & 1 == 1 {
                    let pos = i * bits as usize + j;
                    out[pos / 8] |= 1 << (pos % 8);
                }
            }
        }
        out
    }

    #[test]
    fn pack_matches_bitwise_definition_and_roundtrips() {
        let mut state = 0x1234_5678_u64;
        for bits in 1..=8u32 {
            for len in [0usize, 1, 2, 7, 8, 9, 15, 16, 17, 8191, 8192, 8193, 100_003] {
                let codes: Vec<u8> = (0..len)
                    .map(|_| {
                        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                        ((state >> 33) as u8) & ((1u16 << bits) - 1) as u8
                    })
                    .collect();
                let packed = pack(&codes, bits).unwrap();
                assert_eq!(packed, pack_bitwise(&codes, bits), "bits={bits} len={len}");
                assert_eq!(unpack(&packed, bits, len).unwrap(), codes, "bits={bits} len={len}");
            }
        }
    }

    #[test]
    fn pack_rejects_bad_input() {
        assert!(matches!(pack(&[0, 16], 4), Err(Error::CodeTooWide { index: 1, code: 16, bits: 4 })));
        assert!(pack(&[0], 0).is_err());
        assert!(pack(&[0], 9).is_err());
        assert!(matches!(unpack(&[0], 4, 3), Err(Error::BufferTooShort { .. })));
    }
}
