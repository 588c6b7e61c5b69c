//! Stochastic rounding and soft errors: kernels equal the reference given the same draws; every output is
//! one of the two neighbours; rounding-up frequencies match the probabilities within binomial bounds;
//! results do not depend on threads or chunking; seeds matter.

mod common;

use lowp::codes::code_of;
use lowp::round::rng::draw;
use lowp::round::{encode_with_isa, reference, round_with_isa};
use lowp::{encode, round, round_value, Element, FlipScope, Format, Isa, Rounding, RoundingMode};
use RoundingMode::*;

const STOCHASTIC: [RoundingMode; 4] = [Stochastic, StochasticEqual, StochasticBits(4), StochasticBits(13)];

fn fmts() -> Vec<Format> {
    ["float16", "bfloat16", "e4m3fn", "e5m2", "e2m1", "e8m0", "e4m3fnuz", "e3m2fn", "binary8p4se"]
        .iter()
        .flat_map(|n| {
            let f = Format::parse(n).unwrap();
            [f.clone(), f.clone().with_subnormals(false), f.with_saturation(true)]
        })
        .collect()
}

fn kernels_match<T: Element>() {
    for fmt in fmts() {
        let xs: Vec<T> = common::inputs(&fmt, 200_000, 9);
        for mode in STOCHASTIC {
            for seed in [0u64, 12345] {
                let cfg = Rounding::new(mode).with_seed(seed);
                let want: Vec<T> = xs
                    .iter()
                    .enumerate()
                    .map(|(i, &x)| reference::round(x, &fmt, mode, draw(seed, 0, i as u64, T::RANDOM_BITS)))
                    .collect();
                for isa in Isa::available() {
                    let mut got = vec![T::from_f64(0.0); xs.len()];
                    round_with_isa(isa, &fmt, &cfg, &xs, &mut got).unwrap();
                    for i in 0..xs.len() {
                        assert_eq!(
                            got[i].bits64(),
                            want[i].bits64(),
                            "{isa:?} {fmt} {mode} {} x={:e}",
                            T::DTYPE,
                            xs[i].to_f64()
                        );
                    }
                    if fmt.has_nan() {
                        let mut codes = vec![0u64; xs.len()];
                        encode_with_isa(isa, &fmt, &cfg, &xs, &mut codes).unwrap();
                        for i in 0..xs.len() {
                            assert_eq!(Some(codes[i]), code_of(&fmt, want[i].to_f64()), "encode {isa:?} {fmt} {mode}");
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn stochastic_kernels_equal_reference_float32() {
    kernels_match::<f32>();
}

#[test]
fn stochastic_kernels_equal_reference_float64() {
    kernels_match::<f64>();
}

#[test]
fn outputs_are_neighbours_and_exact_values_stay() {
    for fmt in fmts() {
        let xs: Vec<f64> = common::inputs(&fmt, 100_000, 21);
        for mode in STOCHASTIC {
            let mut got = vec![0.0; xs.len()];
            round(&fmt, &Rounding::new(mode).with_seed(99), &xs, &mut got).unwrap();
            for (x, y) in xs.iter().zip(&got) {
                let down = reference::round(*x, &fmt, TowardZero, 0);
                let up = reference::round(*x, &fmt, if *x < 0.0 { TowardNegative } else { TowardPositive }, 0);
                let ok = |v: f64| v.to_bits() == y.to_bits() || v.is_nan() && y.is_nan();
                // Past max the upward neighbour is an overflow, given as a nearest mode gives it.
                let over = reference::round(*x, &fmt, NearestAway, 0);
                assert!(ok(down) || ok(up) || ok(over), "{fmt} {mode} x={x:e} gave {y:e}, neighbours {down:e} {up:e}");
                if down.to_bits() == up.to_bits() {
                    assert!(ok(down), "{fmt} {mode}: exact x={x:e} changed to {y:e}");
                }
            }
        }
    }
}

/// |k - n p| <= 6 sigma + 1: a false alarm is about a one-in-a-billion event.
fn within_binomial(k: usize, n: usize, p: f64) -> bool {
    let mean = n as f64 * p;
    (k as f64 - mean).abs() <= 6.0 * (mean * (1.0 - p)).sqrt() + 1.0
}

#[test]
fn frequency_of_rounding_up_matches_probability() {
    let n = 1_000_000;
    let h = Format::parse("float16").unwrap();
    let e4 = Format::parse("e4m3fn").unwrap();
    // (format, x, lower neighbour, upper neighbour)
    let cases = [
        (&h, 1.0 + 0.3 * 2f64.powi(-10), 1.0, 1.0 + 2f64.powi(-10)),
        (&h, -(1.0 + 0.9 * 2f64.powi(-10)), -1.0, -(1.0 + 2f64.powi(-10))),
        (&h, 0.001 * 2f64.powi(-24), 0.0, 2f64.powi(-24)),
        (&h, 65504.0 + 0.25 * 32.0, 65504.0, f64::INFINITY),
        (&e4, 1.0 + 0.0625 * 0.125, 1.0, 1.125),
        (&e4, 3.0 + 0.5 * 0.25, 3.0, 3.25),
    ];
    for (fmt, x, lo, hi) in cases {
        let p_exact = (x - lo).abs() / (hi - lo).abs();
        let p_exact = if hi.is_infinite() { 0.25 } else { p_exact };
        for (mode, p) in [
            (Stochastic, p_exact),
            (StochasticEqual, 0.5),
            (StochasticBits(3), (p_exact * 8.0).floor() / 8.0),
            (StochasticBits(8), (p_exact * 256.0).floor() / 256.0),
        ] {
            for dtype64 in [false, true] {
                let ups = if dtype64 {
                    let xs = vec![x; n];
                    let mut y = vec![0.0; n];
                    round(fmt, &Rounding::new(mode).with_seed(7), &xs, &mut y).unwrap();
                    y.iter().filter(|&&v| v == hi).count()
                } else {
                    let xs = vec![x as f32; n];
                    let mut y = vec![0.0f32; n];
                    round(fmt, &Rounding::new(mode).with_seed(7), &xs, &mut y).unwrap();
                    y.iter().filter(|&&v| f64::from(v) == hi).count()
                };
                assert!(within_binomial(ups, n, p), "{fmt} {mode} x={x:e}: {ups} of {n} up, expected p={p}");
            }
        }
    }
}

#[test]
fn same_seed_same_result_on_any_threads_and_alone() {
    let fmt = Format::parse("bfloat16").unwrap();
    let mut rng = common::TestRng::new(4);
    let xs: Vec<f32> = (0..300_001).map(|_| (rng.next_u64() >> 40) as f32 / 77.0 - 1e5).collect();
    for mode in STOCHASTIC {
        let cfg = Rounding::new(mode).with_seed(2024).with_flip(0.01, FlipScope::Significand);
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            let mut y = vec![0f32; xs.len()];
            pool.install(|| round(&fmt, &cfg, &xs, &mut y)).unwrap();
            y
        };
        let one = run(1);
        let two = run(2);
        assert!(one.iter().zip(&two).all(|(a, b)| a.to_bits() == b.to_bits()), "{mode}: 1 vs 2 threads");
        for i in [0usize, 1, 65_535, 65_536, 65_537, 300_000] {
            let alone = round_value(&fmt, &cfg, xs[i], i as u64).unwrap();
            assert_eq!(alone.to_bits(), one[i].to_bits(), "{mode}: element {i} alone");
        }
        let other = {
            let mut y = vec![0f32; xs.len()];
            round(&fmt, &cfg.with_seed(2025), &xs, &mut y).unwrap();
            y
        };
        let differ = one.iter().zip(&other).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
        assert!(differ > xs.len() / 10, "{mode}: seeds 2024 and 2025 differ in only {differ} elements");
    }
}

#[test]
fn soft_errors_flip_one_allowed_bit_with_the_given_probability() {
    let n = 400_000;
    for (name, scope) in
        [("float16", FlipScope::Significand), ("e4m3fn", FlipScope::Code), ("bfloat16", FlipScope::Significand)]
    {
        let fmt = Format::parse(name).unwrap();
        let mut rng = common::TestRng::new(8);
        let xs: Vec<f64> = (0..n).map(|_| ((rng.next_u64() >> 11) as f64 / 2f64.powi(53) - 0.5) * 100.0).collect();
        let clean = {
            let mut y = vec![0.0; n];
            round(&fmt, &Rounding::default(), &xs, &mut y).unwrap();
            y
        };
        for p in [0.0, 0.1, 1.0] {
            let cfg = Rounding::default().with_seed(3).with_flip(p, scope);
            let mut y = vec![0.0; n];
            round(&fmt, &cfg, &xs, &mut y).unwrap();
            let mut hits = 0;
            let mut per_bit = vec![0usize; 64];
            for (a, b) in clean.iter().zip(&y) {
                let (ca, cb) = (code_of(&fmt, *a).unwrap(), code_of(&fmt, *b));
                let Some(cb) = cb else {
                    assert!(scope == FlipScope::Code && b.is_nan(), "{name}: flip gave a value without code");
                    hits += 1;
                    continue;
                };
                let diff = ca ^ cb;
                if diff != 0 {
                    assert_eq!(diff.count_ones(), 1, "{name}: more than one bit flipped");
                    let bit = diff.trailing_zeros();
                    let allowed = if scope == FlipScope::Significand { fmt.man_bits() } else { fmt.bits() };
                    assert!(bit < allowed, "{name}: bit {bit} outside the {scope:?}");
                    per_bit[bit as usize] += 1;
                    hits += 1;
                }
            }
            assert!(within_binomial(hits, n, p), "{name} p={p}: {hits} of {n} flipped");
            if p == 1.0 {
                let allowed = if scope == FlipScope::Significand { fmt.man_bits() } else { fmt.bits() } as usize;
                for (b, &c) in per_bit.iter().take(allowed).enumerate() {
                    assert!(
                        within_binomial(c, hits, 1.0 / allowed as f64),
                        "{name}: bit {b} chosen {c} times of {hits}"
                    );
                }
            }
            // Encoding with flips gives the codes of rounding with flips.
            let mut codes = vec![0u16; n];
            encode(&fmt, &cfg, &xs, &mut codes).unwrap();
            for (c, v) in codes.iter().zip(&y) {
                if !v.is_nan() {
                    assert_eq!(Some(u64::from(*c)), code_of(&fmt, *v), "{name}: encode with flips");
                }
            }
        }
    }
}
