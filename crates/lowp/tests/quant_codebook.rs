//! Codebooks (NF4, user lists) and BitMoD against references written here.

use lowp::quant::{BitMod, Codebook, CodebookQuantized, CodebookScheme, NF4};
use lowp::{Element, Format, Rounding, RoundingMode};

mod common;
use common::TestRng;

const MODES: [RoundingMode; 6] = [
    RoundingMode::NearestEven,
    RoundingMode::NearestZero,
    RoundingMode::NearestAway,
    RoundingMode::TowardPositive,
    RoundingMode::TowardNegative,
    RoundingMode::TowardZero,
];

/// Brute force over every value: the candidates at the smallest distance, or the directed neighbour.
fn reference_index(c: &[f64], v: f64, mode: RoundingMode) -> usize {
    let below = (0..c.len()).filter(|&i| c[i] <= v).max();
    let above = (0..c.len()).filter(|&i| c[i] >= v).min();
    let (lo, hi) = match (below, above) {
        (None, _) => return 0,
        (_, None) => return c.len() - 1,
        (Some(l), Some(h)) if l == h => return l,
        (Some(l), Some(h)) => (l, h),
    };
    let mag = |i: usize| c[i].abs();
    match mode {
        RoundingMode::TowardPositive => hi,
        RoundingMode::TowardNegative => lo,
        RoundingMode::TowardZero => {
            if mag(lo) <= mag(hi) {
                lo
            } else {
                hi
            }
        }
        _ => {
            let (dl, dh) = (v - c[lo], c[hi] - v);
            if dl < dh {
                lo
            } else if dh < dl {
                hi
            } else {
                match mode {
                    RoundingMode::NearestEven => {
                        if lo % 2 == 0 {
                            lo
                        } else {
                            hi
                        }
                    }
                    RoundingMode::NearestZero => {
                        if mag(lo) <= mag(hi) {
                            lo
                        } else {
                            hi
                        }
                    }
                    _ => {
                        if mag(lo) <= mag(hi) {
                            hi
                        } else {
                            lo
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn codebook_rounding_matches_brute_force() {
    let books = [
        Codebook::nf4(),
        Codebook::new(&[-3.0, -1.0, 0.0, 0.5, 2.0, 7.0]).unwrap(),
        Codebook::new(&[1.0, 2.0]).unwrap(),
    ];
    let mut rng = TestRng::new(8);
    for book in &books {
        let c = book.values();
        let mut xs: Vec<f64> = c.windows(2).map(|w| (w[0] + w[1]) / 2.0).collect(); // ties
        xs.extend(c.iter().copied());
        let around: Vec<f64> = xs.iter().flat_map(|&v| [v.next_up(), v.next_down()]).collect();
        xs.extend(around);
        xs.extend((0..20_000).map(|_| ((rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 - 0.5) * 20.0));
        xs.extend([f64::INFINITY, f64::NEG_INFINITY, 0.0, -0.0]);
        for mode in MODES {
            for &v in &xs {
                assert_eq!(book.index_of(v, mode, 0, 0).unwrap(), reference_index(c, v, mode), "{mode} v={v:e}");
            }
        }
    }
    assert!(books[0].index_of(f64::NAN, RoundingMode::NearestEven, 0, 0).is_err());
    assert!(books[0].index_of(0.3, RoundingMode::Odd, 0, 0).unwrap_err().to_string().contains("odd"));
    // stochastic: one of the two neighbours, up with probability (v - lo) / (hi - lo)
    let b = Codebook::new(&[0.0, 1.0, 4.0]).unwrap();
    let ups = (0..100_000).filter(|&i| b.index_of(1.75, RoundingMode::Stochastic, 3, i).unwrap() == 2).count();
    assert!((ups as f64 / 1e5 - 0.25).abs() < 0.01, "{ups}");
}

#[test]
fn nf4_values_and_scheme() {
    assert_eq!(NF4.len(), 16);
    assert!(NF4.windows(2).all(|w| w[0] < w[1]) && NF4[0] == -1.0 && NF4[15] == 1.0 && NF4[7] == 0.0);
    assert_eq!(Codebook::nf4().bits(), 4);
    let s = CodebookScheme::parse("nf4:g16").unwrap();
    let mut rng = TestRng::new(2);
    let mut x: Vec<f64> = (0..100).map(|_| ((rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 - 0.5) * 3.0).collect();
    x[16..32].iter_mut().for_each(|v| *v = 0.0);
    x[40] = f64::INFINITY;
    for mode in MODES {
        let q = s.quantize(&Rounding::new(mode), &x, &[100], 0).unwrap();
        for (g, start) in (0..100).step_by(16).enumerate() {
            let blk = &x[start..(start + 16).min(100)];
            let amax = blk.iter().filter(|v| v.is_finite()).fold(0.0f64, |m, v| m.max(v.abs()));
            let scale = f64::from(amax as f32);
            assert_eq!(q.scales[g], scale, "group {g}");
            for (j, v) in blk.iter().enumerate() {
                let want = if scale == 0.0 {
                    reference_index(&NF4, 0.0, mode)
                } else {
                    reference_index(&NF4, v / scale, mode)
                };
                assert_eq!(usize::from(q.codes[start + j]), want, "{mode} x={v}");
            }
        }
        assert_eq!(q.bits_per_element(), 4.0 + 32.0 * 7.0 / 100.0);
    }
    assert!(s.quantize(&Rounding::default(), &[f64::NAN], &[1], 0).is_err());
}

fn sse(x: &[f64], y: &[f64]) -> f64 {
    x.iter().zip(y).filter(|(a, _)| a.is_finite()).map(|(a, b)| (a - b) * (a - b)).sum()
}

#[test]
fn bitmod_never_loses_to_a_single_variant() {
    let mut rng = TestRng::new(4);
    for bits in [4, 3] {
        let s = BitMod::new(bits, 32).unwrap();
        let n = 32 * 40 + 7;
        let x: Vec<f64> = (0..n)
            .map(|i| {
                let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
                let skew = if (i / 32) % 3 == 0 { 0.3 } else { -0.2 }; // asymmetric groups
                (u - 0.5 + skew) * 2f64.powi((i / 32 % 7) as i32 - 3)
            })
            .collect();
        let q = s.quantize(&Rounding::default(), &x, &[n], 0).unwrap();
        let mut y = vec![0f64; n];
        q.dequantize(&mut y).unwrap();
        let variants = s.variants();
        let singles: Vec<Vec<f64>> = variants
            .iter()
            .enumerate()
            .map(|(t, v)| {
                let one = CodebookScheme::new(&format!("v{t}"), v.clone(), 32)
                    .unwrap()
                    .with_scale_format(Format::parse("fp16").unwrap());
                let qq = one.quantize(&Rounding::default(), &x, &[n], 0).unwrap();
                let mut yy = vec![0f64; n];
                qq.dequantize(&mut yy).unwrap();
                yy
            })
            .collect();
        let mut used = [0usize; 4];
        for (g, start) in (0..n).step_by(32).enumerate() {
            let r = start..(start + 32).min(n);
            let mine = sse(&x[r.clone()], &y[r.clone()]);
            for (t, yy) in singles.iter().enumerate() {
                let theirs = sse(&x[r.clone()], &yy[r.clone()]);
                assert!(mine <= theirs, "bitmod{bits} group {g}: {mine} > variant {t}'s {theirs}");
            }
            let t = usize::from(q.types[g]);
            used[t] += 1;
            assert_eq!(y[r.clone()], singles[t][r], "group {g}: decodes as its variant");
        }
        assert!(used.iter().filter(|&&u| u > 0).count() >= 2, "bitmod{bits}: variants used {used:?}");
        assert_eq!(q.bits_per_element(), bits as f64 + 18.0 * q.scales.len() as f64 / n as f64);
    }
}

#[test]
fn bitmod_variants_and_names() {
    let v = BitMod::parse("bitmod4").unwrap().variants();
    assert_eq!(v.len(), 4);
    assert!(v.iter().all(|c| c.values().len() == 16));
    assert!(v[0].values().contains(&5.0) && v[1].values().contains(&-5.0));
    assert!(v[2].values().contains(&8.0) && v[3].values().contains(&-8.0));
    let v3 = BitMod::parse("bitmod3:g64").unwrap().variants();
    assert!(v3.iter().all(|c| c.values().len() == 8));
    assert!(v3[0].values().contains(&3.0) && v3[3].values().contains(&-6.0));
    assert_eq!(BitMod::parse("BITMOD4:G128").unwrap().to_string(), "bitmod4:g128");
    assert_eq!(CodebookScheme::parse("nf4").unwrap().to_string(), "nf4:g64");
    for bad in ["bitmod4:g0", "bitmod4:x", "bitmod5"] {
        assert!(BitMod::parse(bad).unwrap_err().to_string().contains("bitmod"), "{bad}");
    }
    for bad in ["nf4:g0", "nf5", "nf4:x"] {
        assert!(CodebookScheme::parse(bad).is_err(), "{bad}");
    }
    assert!(Codebook::new(&[1.0]).is_err() && Codebook::new(&[1.0, f64::NAN]).is_err());
}

/// Every rounding mode, for the batch kernel's differential test.
const ALL_MODES: [RoundingMode; 11] = [
    RoundingMode::NearestEven,
    RoundingMode::NearestZero,
    RoundingMode::NearestAway,
    RoundingMode::TowardPositive,
    RoundingMode::TowardNegative,
    RoundingMode::TowardZero,
    RoundingMode::Odd,
    RoundingMode::Stochastic,
    RoundingMode::StochasticEqual,
    RoundingMode::StochasticBits(3),
    RoundingMode::StochasticBits(16),
];

/// `x` (float64 values, each exact in `T`) quantized by `s` both ways, with 1 and 2 threads, in every mode: the
/// same codes, scales (bit for bit), type ids, or the same error.
/// A scheme with the batch kernel and the per-element path.
trait TwoRoutes: std::fmt::Display + Sync {
    fn both<T: Element>(&self, cfg: &Rounding, x: &[T]) -> [lowp::Result<CodebookQuantized>; 2];
}

impl TwoRoutes for BitMod {
    fn both<T: Element>(&self, cfg: &Rounding, x: &[T]) -> [lowp::Result<CodebookQuantized>; 2] {
        [self.quantize(cfg, x, &[x.len()], 0), self.quantize_per_element(cfg, x, &[x.len()], 0)]
    }
}

impl TwoRoutes for CodebookScheme {
    fn both<T: Element>(&self, cfg: &Rounding, x: &[T]) -> [lowp::Result<CodebookQuantized>; 2] {
        [self.quantize(cfg, x, &[x.len()], 0), self.quantize_per_element(cfg, x, &[x.len()], 0)]
    }
}

fn same_both_ways<T: Element>(s: &impl TwoRoutes, x: &[f64], what: &str) {
    let xt: Vec<T> = x.iter().map(|&v| T::from_f64(v)).collect();
    assert!(xt.iter().zip(x).all(|(a, b)| a.to_f64().to_bits() == b.to_bits()), "{what}: inputs exact in {}", T::DTYPE);
    for mode in ALL_MODES {
        let cfg = Rounding::new(mode).with_seed(7);
        for threads in [1, 2] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            let [fast, slow] = pool.install(|| s.both(&cfg, &xt));
            let ctx = format!("{s} {what} {} {mode:?} {threads} threads", T::DTYPE);
            match (fast, slow) {
                (Ok(f), Ok(r)) => {
                    assert_eq!(f.types, r.types, "{ctx}: types");
                    let bits = |v: &[f64]| v.iter().map(|s| s.to_bits()).collect::<Vec<u64>>();
                    assert_eq!(bits(&f.scales), bits(&r.scales), "{ctx}: scales");
                    if let Some(i) = (0..f.codes.len()).find(|&i| f.codes[i] != r.codes[i]) {
                        panic!("{ctx}: code of element {i} ({:e}): {} != {}", x[i], f.codes[i], r.codes[i]);
                    }
                    assert_eq!(f, r, "{ctx}");
                }
                (Err(f), Err(r)) => assert_eq!(f.to_string(), r.to_string(), "{ctx}: errors"),
                (f, r) => panic!("{ctx}: {:?} vs {:?}", f.map(|_| ()), r.map(|_| ())),
            }
        }
    }
}

/// Groups each starting with `amax` (so the scales are known), then `points` and their neighbours two units
/// either way in `T`, as many per group as fit.
fn groups_at<T: Element>(amax: f64, points: &[f64], group: usize) -> Vec<f64> {
    let mut vals = Vec::new();
    for &p in points {
        let mut v = T::from_f64(p);
        for _ in 0..2 {
            v = common::next_down(v);
        }
        for _ in 0..5 {
            if v.to_f64().abs() <= amax.abs() {
                vals.push(v.to_f64());
            }
            v = common::next_up(v);
        }
    }
    let per = (group - 1).max(1);
    vals.chunks(per)
        .flat_map(|c| std::iter::once(amax).chain(c.iter().copied()).chain(std::iter::repeat_n(0.0, per - c.len())))
        .collect()
}

/// The batch kernel (deterministic modes, contiguous groups) against the per-element reference.
#[test]
fn bitmod_kernel_matches_per_element() {
    let mut rng = TestRng::new(11);
    let mut uniform = move || (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    for bits in [4, 3] {
        for group in [128, 32, 7] {
            let s = BitMod::new(bits, group).unwrap();
            let n = group * 9 + group / 2 + 1; // a last group shorter than the rest
                                               // Random data over many binades, in float32 (exact in both types).
            let random: Vec<f64> = (0..n)
                .map(|_| {
                    let m = uniform() * 2.0 - 1.0;
                    f64::from((m * 2f64.powi((uniform() * 60.0) as i32 - 30)) as f32)
                })
                .collect();
            same_both_ways::<f32>(&s, &random, "random");
            same_both_ways::<f64>(&s, &random, "random");
            // Quotients on every midpoint and value of every variant (every multiple of 1/8 up to 8) and on their
            // neighbours, for several group maxima and so several scale pairs, each slot's scale in turn.
            let eighths: Vec<f64> = (-64..=64).map(|h| f64::from(h) / 8.0).collect();
            for amax in [6.0, 1.0, 0.3, 1234.5, -7.0e-3, 3.0e4] {
                let amax = f64::from(amax as f32);
                for max_abs in s.variants().iter().map(|v| v.max_abs()) {
                    let scale = half::f16::from_f64(amax / max_abs).to_f64().abs();
                    let points: Vec<f64> = eighths.iter().map(|e| e * scale).collect();
                    let x32 = groups_at::<f32>(amax, &points, group);
                    same_both_ways::<f32>(&s, &x32, &format!("midpoints amax {amax} scale {scale}"));
                    let x64 = groups_at::<f64>(amax, &points, group);
                    same_both_ways::<f64>(&s, &x64, &format!("midpoints amax {amax} scale {scale}"));
                }
            }
            // Zeros, infinities, an outlier, scales that are float16 subnormals or round to 0 or saturate, -0.
            let mut odd = vec![0.0; group]; // an all-zero group
            odd.extend((0..group).map(|i| if i == 3 { f64::INFINITY } else { i as f64 * 0.37 - 1.0 }));
            odd.extend((0..group).map(|i| if i % 5 == 1 { f64::NEG_INFINITY } else { 0.0 })); // only infinities
            odd.extend((0..group).map(|i| if i == group / 2 { 3.0e38 } else { (i as f64 - 3.0) * 0.01 }));
            odd.extend((0..group).map(|i| (i as f64 - 2.5) * 1.0e-8)); // scale below float16's range: 0
            odd.extend((0..group).map(|i| (i as f64 - 2.5) * 3.0e-7)); // a subnormal float16 scale
            odd.extend((0..group).map(|i| (i as f64 + 1.0) * -1.0e9)); // saturates at 65504
            odd.extend((0..group).map(|i| if i % 2 == 0 { -0.0 } else { 0.0 }));
            odd.extend((0..group).map(|i| if i % 3 == 0 { -0.0 } else { (i as f64).sqrt() }));
            let odd: Vec<f64> = odd.into_iter().map(|v| f64::from(v as f32)).collect();
            same_both_ways::<f32>(&s, &odd, "special values");
            same_both_ways::<f64>(&s, &odd, "special values");
            // Groups of values and their negatives: the +5 and -5 variants (and +-3 in FP3) see the same squared
            // errors in another order, so which one wins depends on the rounding of the sums in element order.
            let mut mirrored = Vec::new();
            for _ in 0..300 {
                let half: Vec<f64> =
                    (0..group.div_ceil(2)).map(|_| f64::from((uniform() * 2.0 - 1.0) as f32)).collect();
                mirrored.extend(half.iter().chain(half.iter()).take(group).enumerate().map(|(i, &v)| {
                    if i < group.div_ceil(2) {
                        v
                    } else {
                        -v
                    }
                }));
            }
            same_both_ways::<f32>(&s, &mirrored, "mirrored groups");
            same_both_ways::<f64>(&s, &mirrored, "mirrored groups");
            let huge: Vec<f64> = (0..group * 2).map(|i| (i as f64 - 5.0) * 1.0e300).collect();
            same_both_ways::<f64>(&s, &huge, "float64 beyond float32");
            let mut nan = random.clone();
            nan[n - 3] = f64::NAN;
            nan[group + 1] = f64::NAN;
            same_both_ways::<f32>(&s, &nan, "NaN");
            same_both_ways::<f64>(&s, &nan, "NaN");
        }
    }
}

/// The batch kernel with one codebook (padded to four variants inside), against the per-element path: codebooks
/// that qualify (BitMoD's variants, a short dyadic list) and ones that do not (NF4, a ratio of 3 between
/// neighbours: the per-element path either way), with float32 and float16 scales.
#[test]
fn codebook_kernel_matches_per_element() {
    let mut rng = TestRng::new(12);
    let mut uniform = move || (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    let x: Vec<f64> =
        (0..32 * 40 + 9).map(|i| f64::from(((uniform() * 2.0 - 1.0) * 2f64.powi(i / 32 % 9 - 4)) as f32)).collect();
    let eighths: Vec<f64> = (-64..=64).map(|h| f64::from(h) / 8.0).collect();
    let mut books: Vec<(String, Codebook)> = BitMod::new(4, 32)
        .unwrap()
        .variants()
        .into_iter()
        .chain(BitMod::new(3, 32).unwrap().variants())
        .enumerate()
        .map(|(i, b)| (format!("variant{i}"), b))
        .collect();
    books.push(("dyadic".into(), Codebook::new(&[-4.0, -2.0, -1.0, 0.0, 1.0, 1.5, 2.0, 3.0, 4.0]).unwrap()));
    books.push(("ratio3".into(), Codebook::new(&[-1.0, 0.0, 1.0, 3.0]).unwrap()));
    books.push(("nf4".into(), Codebook::nf4()));
    for (name, book) in books {
        for scale in ["float32", "float16"] {
            let s =
                CodebookScheme::new(&name, book.clone(), 32).unwrap().with_scale_format(Format::parse(scale).unwrap());
            same_both_ways::<f32>(&s, &x, scale);
            same_both_ways::<f64>(&s, &x, scale);
            let max_abs = book.max_abs();
            let sc = half::f16::from_f64(1.5 / max_abs).to_f64();
            let points: Vec<f64> = eighths.iter().map(|e| e * sc).collect();
            same_both_ways::<f64>(&s, &groups_at::<f64>(1.5, &points, 32), &format!("{scale} midpoints"));
        }
    }
}

#[test]
fn kernel_edge_cases_found_in_review() {
    // A non-zero amax whose scale underflows to 0 in a format without zero (e8m0): NaN scales, as per
    // element (the kernel once gave such groups the all-zero group's scale).
    let e8 = CodebookScheme::parse("codebook(0,4,8):g4:scale=e8m0").unwrap();
    same_both_ways::<f64>(&e8, &[5e-324, 0.0, -5e-324, 0.0, 1.0, 2.0, 3.0, 4.0], "underflowing scale");
    // Groups longer than the kernel takes, beside short ones.
    let long = BitMod::new(4, 5000).unwrap();
    let x: Vec<f64> = (0..12_345).map(|i| ((i * 7919 % 1000) as f64 - 500.0) / 64.0).collect();
    same_both_ways::<f32>(&long, &x, "groups of 5000");
    // Float64 subnormal scales in many one-element groups (taken aside in one pass, not one removal each).
    let tiny = CodebookScheme::parse("codebook(-1,-0.5,0,0.5,1):g1:scale=float64").unwrap();
    let x: Vec<f64> = (0..20_000).map(|i| 1e-309 * (1 + i % 7) as f64).collect();
    same_both_ways::<f64>(&tiny, &x, "subnormal float64 scales");
}
