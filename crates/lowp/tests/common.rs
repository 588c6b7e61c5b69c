//! Input sets shared by the exhaustive tests.
#![allow(dead_code)]

use lowp::{Element, Format};

/// A small deterministic generator for test inputs (not the library's).
pub struct TestRng(u64);

impl TestRng {
    pub fn new(seed: u64) -> TestRng {
        TestRng(seed ^ 0x9e37_79b9_7f4a_7c15)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// Next representable value above `x` in the element type (towards +inf).
pub fn next_up<T: Element>(x: T) -> T {
    let v = x.to_f64();
    if T::MAN_BITS == 23 {
        T::from_f64(f64::from((v as f32).next_up()))
    } else {
        T::from_f64(v.next_up())
    }
}

pub fn next_down<T: Element>(x: T) -> T {
    let v = x.to_f64();
    if T::MAN_BITS == 23 {
        T::from_f64(f64::from((v as f32).next_down()))
    } else {
        T::from_f64(v.next_down())
    }
}

/// The sorted distinct finite non-negative values of `fmt` (sampled when there are too many to list).
pub fn positive_grid(fmt: &Format) -> Vec<f64> {
    let mut v: Vec<f64> = if fmt.bits() <= 20 {
        let sb = if fmt.signed() { 1u64 << (fmt.bits() - 1) } else { 0 };
        (0..1u64 << fmt.bits()).filter(|c| c & sb == 0).map(|c| fmt.decode_code(c)).collect()
    } else {
        // Sampled codes plus the extremes.
        let mut rng = TestRng::new(fmt.bits() as u64);
        let mag_bits = fmt.exp_bits() + fmt.man_bits();
        let mut v: Vec<f64> = (0..20_000).map(|_| fmt.decode_code(rng.next_u64() >> (64 - mag_bits))).collect();
        v.extend([0.0, fmt.min_subnormal(), fmt.min_normal(), fmt.max()]);
        v
    };
    v.retain(|x| x.is_finite());
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v.dedup();
    v
}

/// The input set of the issue: all float16 and bfloat16 bit patterns, every value of the format, every
/// midpoint of neighbours with the nearest data-type values on each side, the overflow and underflow
/// thresholds and their neighbours, signed zeros, infinities, NaN, data-type subnormals, and `random`
/// random bit patterns. Both signs throughout.
pub fn inputs<T: Element>(fmt: &Format, random: usize, seed: u64) -> Vec<T> {
    let mut xs: Vec<f64> = Vec::new();
    for b in 0..=u16::MAX {
        xs.push(half::f16::from_bits(b).to_f64());
        xs.push(half::bf16::from_bits(b).to_f64());
    }
    let grid = positive_grid(fmt);
    let mut special = Vec::new();
    for w in grid.windows(2) {
        special.push(w[0]);
        special.push((w[0] + w[1]) / 2.0);
    }
    let max = fmt.max();
    let top = grid.last().copied().unwrap_or(max);
    // Past the top: where the next value would be, the overflow threshold, and far beyond.
    let ulp = if grid.len() >= 2 { top - grid[grid.len() - 2] } else { top };
    for k in [0.5, 1.0, 1.5, 2.0, 3.0] {
        special.push(top + k * ulp);
    }
    special.push(max * 2.0);
    special.push(max * 1e10);
    let mn = fmt.min_normal();
    special.extend([
        mn / 2.0,
        mn / 4.0,
        mn * 0.75,
        fmt.min_subnormal() / 2.0,
        fmt.min_subnormal() / 4.0,
        mn / 2.0 * 1.0001,
    ]);
    special.extend([
        f64::MIN_POSITIVE,
        5e-324,
        1e-310,
        f64::MAX,
        1e-45,
        1.4e-45,
        f32::MIN_POSITIVE as f64,
        1e-40,
        f32::MAX as f64,
    ]);
    for s in special {
        if !s.is_finite() {
            continue;
        }
        let t = T::from_f64(s);
        // `from_f64` rounds for f32; take both neighbours of the f64 value in the data type.
        for y in [t, next_up(t), next_down(t), next_up(next_up(t)), next_down(next_down(t))] {
            xs.push(y.to_f64());
        }
    }
    xs.extend([0.0, f64::INFINITY, f64::NAN, f64::from_bits(1), f64::from_bits(0x000f_ffff_ffff_ffff)]);
    let mut out: Vec<T> = xs.iter().flat_map(|&x| [T::from_f64(x), T::from_f64(-x)]).collect();
    let mut rng = TestRng::new(seed);
    for _ in 0..random {
        let r = rng.next_u64();
        out.push(if T::MAN_BITS == 23 {
            T::from_f64(f64::from(f32::from_bits(r as u32)))
        } else {
            T::from_f64(f64::from_bits(r))
        });
    }
    // Random values near the format's range, where rounding is most interesting.
    for _ in 0..random / 4 {
        let r = rng.next_u64();
        let mag = fmt.min_subnormal().max(1e-300)
            * 2f64.powf(
                (r >> 11) as f64 / (1u64 << 53) as f64
                    * (fmt.max().log2() - fmt.min_subnormal().max(1e-300).log2() + 4.0),
            );
        let v = T::from_f64(if r & 1 == 1 { -mag } else { mag });
        out.push(v);
    }
    out
}

/// Largest k with 2^k <= a (a finite, > 0), by doubling and halving: an exponent oracle that shares nothing
/// with reading the bits.
pub fn floor_log2(a: f64) -> i32 {
    let (mut k, mut p) = (0i32, 1.0f64);
    while p * 2.0 <= a {
        p *= 2.0;
        k += 1;
    }
    while p > a {
        p /= 2.0;
        k -= 1;
    }
    k
}
