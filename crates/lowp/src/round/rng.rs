//! Counter-based random numbers: a pure function of (seed, stream, element index).
//!
//! float32 kernels draw 32 bits per element, float64 kernels 64:
//! - 32 bits: `r = h(h(lo ^ k0) ^ k1)`, where `lo` is the low 32 bits of the index, `h` is the `lowbias32`
//!   integer hash (C. Wellons' constants `0x21f0aaad`, `0x735a2d97`), and `k0`, `k1` are the two halves of
//!   `splitmix64(splitmix64(seed ^ stream) ^ hi)`, `hi` being the high 32 bits of the index.
//! - 64 bits: `r = splitmix64(key + index * 0x9e3779b97f4a7c15)` with `key = splitmix64(seed ^ stream)`.
//!
//! Both are bijections of the counter for a fixed key, so no two elements of one call share a draw, and any
//! element can be reproduced alone. The streams keep rounding draws apart from soft-error draws.

/// Stream of the stochastic-rounding draws.
pub(crate) const STREAM_ROUND: u64 = 0;
/// Stream deciding whether an element gets a soft error.
pub(crate) const STREAM_FLIP: u64 = 0x5f1e_0000_0000_0001;
/// Stream choosing which bit a soft error flips.
pub(crate) const STREAM_FLIP_BIT: u64 = 0x5f1e_0000_0000_0002;

/// The splitmix64 output function.
#[inline(always)]
pub(crate) const fn splitmix64(z: u64) -> u64 {
    let z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    let z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[inline(always)]
const fn lowbias32(x: u32) -> u32 {
    let x = (x ^ (x >> 16)).wrapping_mul(0x21f0_aaad);
    let x = (x ^ (x >> 15)).wrapping_mul(0x735a_2d97);
    x ^ (x >> 15)
}

/// 32-bit draws for indices sharing their high 32 bits.
#[derive(Clone, Copy, Debug)]
#[doc(hidden)]
pub struct Rng32 {
    k0: u32,
    k1: u32,
}

impl Rng32 {
    pub(crate) fn new(seed: u64, stream: u64, hi: u32) -> Rng32 {
        let k = splitmix64(splitmix64(seed ^ stream) ^ u64::from(hi));
        Rng32 { k0: k as u32, k1: (k >> 32) as u32 }
    }
    /// The draw of `index`; only its low 32 bits are used (the high ones are in the key).
    #[inline(always)]
    pub(crate) fn at(&self, index: u64) -> u32 {
        lowbias32(lowbias32(index as u32 ^ self.k0) ^ self.k1)
    }
}

/// 64-bit draws.
#[derive(Clone, Copy, Debug)]
#[doc(hidden)]
pub struct Rng64 {
    key: u64,
}

impl Rng64 {
    pub(crate) fn new(seed: u64, stream: u64) -> Rng64 {
        Rng64 { key: splitmix64(seed ^ stream) }
    }
    #[inline(always)]
    pub(crate) fn at(&self, index: u64) -> u64 {
        splitmix64(self.key.wrapping_add(index.wrapping_mul(0x9e37_79b9_7f4a_7c15)))
    }
}

/// The draw that element `index` gets in `stream`, as the kernels of a data type with `bits` random bits
/// (32 or 64) see it. Used by the scalar paths and by tests.
pub fn draw(seed: u64, stream: u64, index: u64, bits: u32) -> u64 {
    if bits == 32 {
        u64::from(Rng32::new(seed, stream, (index >> 32) as u32).at(index))
    } else {
        Rng64::new(seed, stream).at(index)
    }
}
