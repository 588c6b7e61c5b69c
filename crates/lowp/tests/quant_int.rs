//! Fixed point and affine integer quantization against plain references written here: integer rounding
//! by exact integer arithmetic on the input's bits, blocks found by nested loops over multi-indices.

use lowp::quant::{
    round_to_integer, AffineInt, FixedPoint, Granularity, Overflow, Quantized, QuantizedTensor, Scheme, Symmetry,
};
use lowp::{Format, Rounding, RoundingMode};

mod common;
use common::TestRng;

/// v = m * 2^e exactly, as integers (v finite).
fn decompose(v: f64) -> (i128, i32) {
    let bits = v.to_bits();
    let sign = if bits >> 63 == 1 { -1 } else { 1 };
    let field = ((bits >> 52) & 0x7ff) as i32;
    let frac = (bits & ((1 << 52) - 1)) as i128;
    if field == 0 {
        (sign * frac, -1074)
    } else {
        (sign * (frac | 1 << 52), field - 1075)
    }
}

/// Reference integer rounding for deterministic modes: floor and remainder by integer arithmetic.
fn ref_round(v: f64, mode: RoundingMode) -> i128 {
    let (m, e) = decompose(v);
    if e >= 0 {
        return m << e.min(70);
    }
    let sh = (-e) as u32;
    if sh > 120 {
        // |v| < 2^-67: floor is 0 or -1, remainder nonzero unless v == 0
        if m == 0 {
            return 0;
        }
        // floor is -1 (fraction just below 1) or 0 (fraction just above 0)
        let fl: i128 = if m < 0 { -1 } else { 0 };
        let up = match mode {
            RoundingMode::TowardPositive => true,
            RoundingMode::TowardNegative => false,
            RoundingMode::TowardZero => m < 0,
            RoundingMode::Odd => fl % 2 == 0,
            _ => m < 0, // nearest: the fraction is above a half exactly when v < 0
        };
        return fl + up as i128;
    }
    let den = 1i128 << sh;
    let fl = m.div_euclid(den);
    let rem = m.rem_euclid(den); // in [0, den)
    if rem == 0 {
        return fl;
    }
    let half = den / 2;
    let up = match mode {
        RoundingMode::NearestEven => rem > half || (rem == half && fl % 2 != 0),
        RoundingMode::NearestZero => rem > half || (rem == half && m < 0),
        RoundingMode::NearestAway => rem > half || (rem == half && m > 0),
        RoundingMode::TowardPositive => true,
        RoundingMode::TowardNegative => false,
        RoundingMode::TowardZero => m < 0,
        RoundingMode::Odd => fl % 2 == 0,
        _ => unreachable!(),
    };
    fl + up as i128
}

fn integer_inputs() -> Vec<f64> {
    let mut xs = Vec::new();
    for k in -2000..2000 {
        let t = k as f64 + 0.5;
        xs.extend([t, t.next_up(), t.next_down(), k as f64, (k as f64).next_up(), (k as f64).next_down()]);
    }
    let mut rng = TestRng::new(11);
    for _ in 0..200_000 {
        let e = (rng.next_u64() % 120) as i32 - 60;
        let v = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * 2f64.powi(e);
        xs.push(if rng.next_u64() & 1 == 0 { v } else { -v });
    }
    for k in 50..56 {
        let p = 2f64.powi(k);
        xs.extend([p, p + 0.5, p - 0.5, p.next_up(), p.next_down(), -p - 0.5]);
    }
    xs.extend([0.0, -0.0, 1e-300, -1e-300, f64::MIN_POSITIVE, 5e-324, -5e-324]);
    xs
}

#[test]
fn integer_rounding_matches_the_integer_reference() {
    for mode in RoundingMode::DETERMINISTIC {
        for &v in &integer_inputs() {
            let got = round_to_integer(v, mode, 0, 0);
            let want = ref_round(v, mode) as f64;
            assert!(got == want, "{mode} v={v:e} ({:#x}): want {want} got {got}", v.to_bits());
        }
    }
}

#[test]
fn stochastic_integer_rounding_picks_a_neighbour_with_the_right_frequency() {
    for (mode, want) in [
        (RoundingMode::Stochastic, 0.3),
        (RoundingMode::StochasticEqual, 0.5),
        // |-2.7| has fraction 0.7: floor(0.7 * 16) = 11 of 16 draws go away from zero, 5 stay at -2
        (RoundingMode::StochasticBits(4), 5.0 / 16.0),
    ] {
        let n = 200_000;
        let ups = (0..n).filter(|&i| round_to_integer(-2.7, mode, 9, i) == -2.0).count();
        let ups_again = (0..n).filter(|&i| round_to_integer(-2.7, mode, 9, i) == -2.0).count();
        assert_eq!(ups, ups_again, "{mode}: a seed must reproduce");
        assert!((0..n).all(|i| [-3.0, -2.0].contains(&round_to_integer(-2.7, mode, 9, i))));
        let p = ups as f64 / n as f64;
        let sd = (want * (1.0 - want) / n as f64).sqrt();
        assert!((p - want).abs() < 5.0 * sd, "{mode}: up {p}, want {want}");
        assert_eq!(round_to_integer(-3.0, mode, 9, 1), -3.0, "{mode}: exact values stay");
    }
}

// ---------------------------------------------------------------------------------------------------------
// Fixed point

fn ref_fixed(q: &FixedPoint, x: f64, mode: RoundingMode) -> i64 {
    let n = ref_round(x * 2f64.powi(q.frac_bits() as i32), mode);
    let bits = q.bits();
    let (lo, hi) = (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1);
    match q.overflow() {
        Overflow::Saturate => n.clamp(lo, hi) as i64,
        Overflow::Wrap => {
            let m = n.rem_euclid(1i128 << bits);
            (if m > hi { m - (1i128 << bits) } else { m }) as i64
        }
    }
}

#[test]
fn fixed_point_matches_the_reference_on_every_half_precision_value() {
    let xs: Vec<f32> = (0..=u16::MAX)
        .map(|b| half::f16::from_bits(b).to_f32())
        .filter(|v| v.is_finite())
        .chain(integer_inputs().iter().map(|&v| v as f32).filter(|v| v.is_finite()))
        .collect();
    for spec in ["q4.4", "q1.7", "q8.8", "q1.15", "q3.0", "q16.16:wrap", "q4.4:wrap", "q2.30", "q1.0"] {
        let q = FixedPoint::parse(spec).unwrap();
        for mode in RoundingMode::DETERMINISTIC {
            let mut codes = vec![0i64; xs.len()];
            q.quantize(&Rounding::new(mode), &xs, &mut codes).unwrap();
            for (x, c) in xs.iter().zip(&codes) {
                assert_eq!(*c, ref_fixed(&q, f64::from(*x), mode), "{spec} {mode} x={x:e}");
            }
            let mut back = vec![0f32; xs.len()];
            if q.bits() - 1 > 24 {
                assert!(q.dequantize(&codes, &mut back).unwrap_err().to_string().contains("float32"));
                continue;
            }
            q.dequantize(&codes, &mut back).unwrap();
            for (c, b) in codes.iter().zip(&back) {
                assert_eq!(f64::from(*b), *c as f64 * q.step(), "{spec} decode {c}");
            }
        }
    }
}

#[test]
fn fixed_point_worked_by_hand() {
    let q = FixedPoint::parse("q4.4").unwrap(); // [-8, 7.9375], step 1/16
    assert_eq!((q.min(), q.max(), q.step(), q.bits()), (-8.0, 7.9375, 0.0625, 8));
    let x = [1.03125f64, -1.03125, 7.97, -8.2, 0.0, 1e9, f64::INFINITY, f64::NEG_INFINITY];
    let code = |m| {
        let mut c = [0i64; 8];
        q.quantize(&Rounding::new(m), &x, &mut c).unwrap();
        c
    };
    // 1.03125 * 16 = 16.5: a tie
    assert_eq!(code(RoundingMode::NearestEven), [16, -16, 127, -128, 0, 127, 127, -128]);
    assert_eq!(code(RoundingMode::NearestAway)[..2], [17, -17]);
    assert_eq!(code(RoundingMode::NearestZero)[..2], [16, -16]);
    assert_eq!(code(RoundingMode::TowardNegative)[..2], [16, -17]);
    assert_eq!(code(RoundingMode::Odd)[..2], [17, -17]);
    let w = FixedPoint::parse("q4.4:wrap").unwrap();
    let mut c = [0i64; 3];
    w.quantize(&Rounding::default(), &[8.0f64, 8.0625, -8.0625], &mut c).unwrap();
    assert_eq!(c, [-128, -127, 127]); // two's complement wrap-around
    assert!(w.quantize(&Rounding::default(), &[f64::INFINITY], &mut c[..1]).is_err());
    let mut nan = [0i64; 1];
    let e = q.quantize(&Rounding::default(), &[f64::NAN], &mut nan).unwrap_err();
    assert!(e.to_string().contains("no NaN"), "{e}");
    let mut out = [0f64; 1];
    assert!(q.dequantize(&[128], &mut out).is_err()); // outside 8 bits
}

#[test]
fn fixed_point_stochastic_is_reproducible_and_index_based() {
    let q = FixedPoint::parse("q8.8").unwrap();
    let x: Vec<f64> = (0..10_000).map(|i| i as f64 * 0.001 + 0.0001).collect();
    let cfg = Rounding::new(RoundingMode::Stochastic).with_seed(5);
    let (mut a, mut b) = (vec![0i64; x.len()], vec![0i64; 100]);
    q.quantize(&cfg, &x, &mut a).unwrap();
    q.quantize(&cfg, &x[..100], &mut b).unwrap();
    assert_eq!(a[..100], b[..]);
    for (v, c) in x.iter().zip(&a) {
        let s = v * 256.0;
        assert!(*c as f64 == s.floor() || *c as f64 == s.ceil());
    }
}

#[test]
fn fixed_point_parse_errors_say_what_is_accepted() {
    for bad in ["q0.8", "q4", "p4.4", "q4.4:clip", "q40.40"] {
        let e = FixedPoint::parse(bad).unwrap_err().to_string();
        assert!(
            e.contains("q") && (e.contains("expected") || e.contains("at most 64") || e.contains("at least 1")),
            "{bad}: {e}"
        );
    }
    assert_eq!(FixedPoint::parse("fixed:q1.15:wrap").unwrap().to_string(), "q1.15:wrap");
}

// ---------------------------------------------------------------------------------------------------------
// Affine integers

/// Reference: blocks by explicit multi-index loops, then the §3 formulas.
type Reference = (Vec<i32>, Vec<f64>, Vec<i32>, Vec<usize>);

/// (codes, scales, zeros, block of each element).
fn ref_affine(s: &AffineInt, x: &[f64], shape: &[usize], axis: usize, mode: RoundingMode) -> Reference {
    let n: usize = shape.iter().product();
    let strides: Vec<usize> = (0..shape.len()).map(|d| shape[d + 1..].iter().product()).collect();
    let block_key = |i: usize| -> Vec<usize> {
        let idx: Vec<usize> = (0..shape.len()).map(|d| (i / strides[d]) % shape[d]).collect();
        match s.granularity() {
            Granularity::Tensor => vec![],
            Granularity::Channel => vec![idx[axis]],
            Granularity::Group(g) => {
                let mut k = idx.clone();
                k[axis] /= g;
                k
            }
        }
    };
    // block order: keys sorted lexicographically = C order of the block grid
    let mut keys: Vec<Vec<usize>> = (0..n).map(block_key).collect();
    keys.sort();
    keys.dedup();
    let block_of: Vec<usize> = (0..n).map(|i| keys.binary_search(&block_key(i)).unwrap()).collect();
    let bid = |i: usize| block_of[i];
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); keys.len()];
    (0..n).for_each(|i| members[bid(i)].push(i));
    let (qlo, qhi) = s.code_range();
    let mut scales = vec![0.0; keys.len()];
    let mut zeros = vec![0; keys.len()];
    for (b, _) in keys.iter().enumerate() {
        let vals: Vec<f64> = members[b].iter().map(|&i| x[i]).filter(|v| v.is_finite()).collect();
        let mn = vals.iter().cloned().fold(0.0, f64::min);
        let mx = vals.iter().cloned().fold(0.0, f64::max);
        let raw = match s.symmetry() {
            Symmetry::Asymmetric => (mx - mn) / qhi as f64,
            _ => mn.abs().max(mx.abs()) / qhi as f64,
        };
        let sf = s.scale_format().clone().with_saturation(true);
        scales[b] = if raw == 0.0 { 0.0 } else { lowp::round_value(&sf, &Rounding::default(), raw, 0).unwrap() };
        if s.symmetry() == Symmetry::Asymmetric && scales[b] > 0.0 {
            zeros[b] =
                (ref_round(-mn / scales[b], RoundingMode::NearestEven) as f64).clamp(qlo as f64, qhi as f64) as i32;
        }
    }
    let codes = (0..n)
        .map(|i| {
            let b = bid(i);
            if scales[b] == 0.0 {
                return zeros[b];
            }
            let q = if x[i].is_finite() { (ref_round(x[i] / scales[b], mode) + zeros[b] as i128) as f64 } else { x[i] };
            q.clamp(qlo as f64, qhi as f64) as i32
        })
        .collect();
    (codes, scales, zeros, (0..n).map(bid).collect())
}

fn tensor(rng: &mut TestRng, n: usize) -> Vec<f64> {
    (0..n)
        .map(|i| {
            let g = ((rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 - 0.5) * 4.0;
            match i % 97 {
                0 => 300.0,  // an outlier
                13 => -1e-6, // tiny
                _ => g,
            }
        })
        .collect()
}

#[test]
fn affine_schemes_match_the_reference() {
    let mut rng = TestRng::new(3);
    let shape = [3, 5, 7];
    let mut x = tensor(&mut rng, 105);
    x[17] = f64::INFINITY;
    x[40] = f64::NEG_INFINITY;
    for axis in 0..3 {
        x[..5].iter_mut().for_each(|v| *v = 0.0);
        for spec in [
            "int4",
            "int8:channel:sym",
            "int4:channel:asym",
            "int4:g4:asym",
            "int3:g3:sym:full",
            "int2:g2:asym",
            "int8:g4:sym:scale=bf16",
            "int4:g4:asym:scale=e4m3fn",
            "int4:channel:sym:scale=e8m0",
            "int16:g5:asym",
            "int4:g4:sym:scale=fp16",
        ] {
            let s = AffineInt::parse(spec).unwrap();
            for mode in
                [RoundingMode::NearestEven, RoundingMode::NearestAway, RoundingMode::TowardZero, RoundingMode::Odd]
            {
                let q = s.quantize(&Rounding::new(mode), &x, &shape, axis).unwrap();
                let (codes, scales, zeros, block) = ref_affine(&s, &x, &shape, axis, mode);
                assert_eq!(q.scales, scales, "{spec} axis {axis}: scales");
                assert_eq!(q.zeros, zeros, "{spec} axis {axis}: zeros");
                assert_eq!(q.codes, codes, "{spec} axis {axis} {mode}: codes");
                let mut y = vec![0f64; x.len()];
                q.dequantize(&mut y).unwrap();
                for (i, v) in y.iter().enumerate() {
                    let b = block[i];
                    assert_eq!(*v, (codes[i] - zeros[b]) as f64 * scales[b], "{spec} axis {axis}: value {i}");
                }
            }
        }
    }
}

#[test]
fn float32_data_over_many_batches_matches_the_reference() {
    // The batch path on float32 data over many batches (rows of odd length, so batches also start at odd
    // elements), and QuantizedTensor::quantize's packed route (which declines or packs as batch starts allow)
    // giving the same tensor as packing the unpacked result.
    let mut rng = TestRng::new(12);
    let (rows, n) = (9, 4001);
    // Magnitudes changing from group to group, skewed signs, a rare outlier and tiny values: codes spread
    // over the whole range (`tensor`'s outlier every 97 elements would put most codes at the zero point).
    let x32: Vec<f32> = (0..rows * n)
        .map(|i| {
            let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
            let v = (u - 0.4) * 2f64.powi((i / 100 % 9) as i32 - 4);
            (match i % 1009 {
                0 => 50.0,
                7 => 1e-7,
                _ => v,
            }) as f32
        })
        .collect();
    let x64: Vec<f64> = x32.iter().map(|&v| f64::from(v)).collect();
    for spec in
        ["int4:g128:asym", "int3:g32:sym", "int8:g64:sym:full", "int2:g16:asym:scale=bf16", "int4:g128:sym:scale=e8m0"]
    {
        let s = AffineInt::parse(spec).unwrap();
        for mode in [RoundingMode::NearestEven, RoundingMode::NearestAway, RoundingMode::TowardZero] {
            let cfg = Rounding::new(mode);
            let q = s.quantize(&cfg, &x32, &[rows, n], 1).unwrap();
            let (codes, scales, zeros, _) = ref_affine(&s, &x64, &[rows, n], 1, mode);
            assert_eq!(q.scales, scales, "{spec}: scales");
            assert_eq!(q.zeros, zeros, "{spec}: zeros");
            assert_eq!(q.codes, codes, "{spec} {mode}: codes");
            let scheme = Scheme::Int(s.clone());
            for (len, x) in [(n, &x32[..]), (n - 1, &x32[..rows * (n - 1)])] {
                let t = QuantizedTensor::quantize(&scheme, &cfg, x, &[rows, len], 1).unwrap();
                let q = s.quantize(&cfg, x, &[rows, len], 1).unwrap();
                assert_eq!(
                    t,
                    QuantizedTensor::pack(&scheme, &Quantized::Int(q)).unwrap(),
                    "{spec} {mode} rows of {len}"
                );
            }
            // One odd-length row: every batch but the last is a whole number of bytes, the last ends mid-byte.
            let t = QuantizedTensor::quantize(&scheme, &cfg, &x32, &[rows * n], 0).unwrap();
            let q = s.quantize(&cfg, &x32, &[rows * n], 0).unwrap();
            let (mut a, mut b) = (vec![0f32; x32.len()], vec![0f32; x32.len()]);
            t.dequantize(&mut a).unwrap(); // from the packed parts, batch by batch (the last one odd)
            q.dequantize(&mut b).unwrap();
            assert!(a.iter().zip(&b).all(|(u, v)| u.to_bits() == v.to_bits()), "{spec} {mode}: dequantized");
            assert_eq!(t, QuantizedTensor::pack(&scheme, &Quantized::Int(q)).unwrap(), "{spec} {mode} one row");
        }
    }
}

#[test]
fn affine_worked_by_hand() {
    // int8 symmetric per tensor: amax 2.54 -> scale 0.02; 1.27 / 0.02 = 63.5 (a tie, up to float64's quotient)
    let s = AffineInt::parse("int8:tensor:sym").unwrap();
    let x = [2.54f64, -2.54, 1.25, 0.0];
    let q = s.quantize(&Rounding::default(), &x, &[4], 0).unwrap();
    assert_eq!(q.scales, [f64::from((2.54f64 / 127.0) as f32)]);
    assert_eq!(q.codes[..2], [127, -127]);
    assert_eq!(q.codes[3], 0);
    // full range admits -128
    let f = AffineInt::parse("int8:sym:full").unwrap();
    assert_eq!(f.code_range(), (-128, 127));
    assert_eq!(AffineInt::parse("int4:asym").unwrap().code_range(), (0, 15));
    // all-zero group: scale 0, zero codes, zero values; group sizes not dividing the axis
    let g = AffineInt::parse("int4:g3:asym").unwrap();
    let x = [0.0f32, 0.0, 0.0, 1.0, 2.0, 3.0, 4.0];
    let q = g.quantize(&Rounding::default(), &x, &[7], 0).unwrap();
    assert_eq!(q.scales.len(), 3);
    assert_eq!(q.scales[0], 0.0);
    assert_eq!(q.codes[..3], [0, 0, 0]);
    let mut y = [9f32; 7];
    q.dequantize(&mut y).unwrap();
    assert_eq!(y[..3], [0.0, 0.0, 0.0]);
    assert_eq!(y[6], 4.0); // a last group of one element, range [0, 4]: 4 is the top code exactly
                           // scales in a subnormal range of their format: the stored (rounded) scale is the one used
    let h = AffineInt::parse("int4:sym:scale=fp16").unwrap();
    let x = [7e-7f64, -3e-7];
    let q = h.quantize(&Rounding::default(), &x, &[2], 0).unwrap();
    let stored = q.scales[0];
    assert_eq!(stored, f64::from(half::f16::from_f64(7e-7 / 7.0).to_f32()));
    assert_eq!(q.codes[0], (7e-7 / stored).round_ties_even().min(7.0) as i32);
}

#[test]
fn affine_storage_is_counted_exactly() {
    let x = vec![1.0f32; 256];
    let q = AffineInt::parse("int4:g128:asym").unwrap().quantize(&Rounding::default(), &x, &[2, 128], 1).unwrap();
    assert_eq!(q.scales.len(), 2);
    assert_eq!(q.bits_per_element(), 4.0 + (32.0 + 4.0) / 128.0);
    let q =
        AffineInt::parse("int4:g128:sym:scale=fp16").unwrap().quantize(&Rounding::default(), &x, &[256], 0).unwrap();
    assert_eq!(q.bits_per_element(), 4.0 + 16.0 / 128.0);
}

#[test]
fn affine_errors_are_clear() {
    let nan =
        AffineInt::parse("int4").unwrap().quantize(&Rounding::default(), &[1.0f64, f64::NAN], &[2], 0).unwrap_err();
    assert!(nan.to_string().contains("NaN at index 1"), "{nan}");
    let axis =
        AffineInt::parse("int4:channel").unwrap().quantize(&Rounding::default(), &[1.0f64; 6], &[2, 3], 2).unwrap_err();
    assert!(axis.to_string().contains("axis 2"), "{axis}");
    let len = AffineInt::parse("int4").unwrap().quantize(&Rounding::default(), &[1.0f64; 5], &[2, 3], 0).unwrap_err();
    assert!(len.to_string().contains("length mismatch"), "{len}");
    for bad in ["int1", "int17", "int4:g0", "int4:asym:full", "int4:perchannel", "uint4", "int4:scale=fp17"] {
        let e = AffineInt::parse(bad).unwrap_err().to_string();
        assert!(e.contains("int") || e.contains("format"), "{bad}: {e}");
    }
    assert_eq!(AffineInt::parse("INT4:G128:ASYM").unwrap().to_string(), "int4:g128:asym");
    assert_eq!(
        AffineInt::parse("int8:channel:sym:full:scale=bf16")
            .unwrap()
            .with_scale_format(Format::parse("e8m0").unwrap())
            .to_string(),
        "int8:channel:sym:full:scale=float8_e8m0fnu"
    );
}

// ---------------------------------------------------------------------------------------------------------
// Range choice: percentile clipping and the MSE search

fn dequantized(q: &lowp::quant::QuantizedInt) -> Vec<f64> {
    let mut y = vec![0f64; q.codes.len()];
    q.dequantize(&mut y).unwrap();
    y
}

#[test]
fn percentile_clipping_by_nearest_rank() {
    let x: Vec<f64> = (1..=100).map(f64::from).collect();
    let q = AffineInt::parse("int8:pct99").unwrap().quantize(&Rounding::default(), &x, &[100], 0).unwrap();
    assert_eq!(q.scales, [f64::from((99.0f64 / 127.0) as f32)]); // rank ceil(0.99 * 100) = 99: the value 99
    assert_eq!(q.codes[99], 127); // 100 clips
    let x: Vec<f64> = (-10..90).map(f64::from).collect();
    let q = AffineInt::parse("int4:asym:pct90").unwrap().quantize(&Rounding::default(), &x, &[100], 0).unwrap();
    // 10th percentile: rank 10, the value -1; 90th: rank 90, the value 79
    assert_eq!(q.scales, [f64::from((80.0f64 / 15.0) as f32)]);
    let full = AffineInt::parse("int4:asym:pct100").unwrap().quantize(&Rounding::default(), &x, &[100], 0).unwrap();
    let minmax = AffineInt::parse("int4:asym").unwrap().quantize(&Rounding::default(), &x, &[100], 0).unwrap();
    assert_eq!((full.scales, full.codes), (minmax.scales, minmax.codes));
    for bad in ["int4:pct0", "int4:pct101", "int4:pctx"] {
        assert!(AffineInt::parse(bad).is_err(), "{bad}");
    }
    assert_eq!(AffineInt::parse("int8:g32:asym:pct99.9").unwrap().to_string(), "int8:g32:asym:pct99.9");
}

#[test]
fn mse_search_picks_the_best_shrink_factor() {
    let mut rng = TestRng::new(12);
    let mut x: Vec<f64> = (0..512).map(|_| ((rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 - 0.5) * 2.0).collect();
    x[7] = 9.0; // an outlier that min/max would let set the scale
    let sse = |y: &[f64]| x.iter().zip(y).map(|(a, b)| (a - b) * (a - b)).sum::<f64>();
    for spec in ["int4:sym", "int4:asym", "int3:sym:full"] {
        let mse = AffineInt::parse(&format!("{spec}:mse")).unwrap();
        let q = mse.quantize(&Rounding::default(), &x, &[512], 0).unwrap();
        let base = AffineInt::parse(spec).unwrap().quantize(&Rounding::default(), &x, &[512], 0).unwrap();
        let (e_mse, e_base) = (sse(&dequantized(&q)), sse(&dequantized(&base)));
        assert!(e_mse <= e_base, "{spec}: {e_mse} > {e_base}");
        // the reference search: every factor 1, 0.99, ..., 0.50 by the §3 formulas, keep the smallest error
        let (qlo, qhi) = mse.code_range();
        let (mn, mx) = x.iter().fold((0.0f64, 0.0f64), |(a, b), &v| (a.min(v), b.max(v)));
        let best = (0..50)
            .map(|k| {
                let f = 1.0 - k as f64 / 100.0;
                let (s, z) = match mse.symmetry() {
                    Symmetry::Asymmetric => {
                        let s = f64::from(((mx - mn) * f / qhi as f64) as f32);
                        (s, (ref_round(-mn * f / s, RoundingMode::NearestEven) as f64).clamp(qlo as f64, qhi as f64))
                    }
                    _ => (f64::from((mn.abs().max(mx.abs()) * f / qhi as f64) as f32), 0.0),
                };
                x.iter()
                    .map(|&v| {
                        let c = (ref_round(v / s, RoundingMode::NearestEven) as f64 + z).clamp(qlo as f64, qhi as f64);
                        let d = v - (c - z) * s;
                        d * d
                    })
                    .sum::<f64>()
            })
            .fold(f64::INFINITY, f64::min);
        assert!((e_mse - best).abs() <= 1e-12 * best, "{spec}: {e_mse} vs the reference's {best}");
        if spec == "int4:sym" {
            // here the outlier makes clipping pay (the asymmetric grid gains nothing above factor 0.5)
            assert!(e_mse < 0.8 * e_base, "{spec}: {e_mse} vs {e_base}");
        }
    }
}
