//! OCP MX against a plain reference written here (blocks by explicit loops, the shared exponent found by
//! comparing with powers of two, elements by the core's exact reference rounding), and blocks worked by hand
//! from FORMATS.md §4.

use lowp::codes::code_of;
use lowp::quant::{FixedPoint, Mx, MxElement, Overflow, ScaleRule};
use lowp::round::reference;
use lowp::{Rounding, RoundingMode};

mod common;
use common::{floor_log2, TestRng};

/// (codes, scale codes) by the definitions, for a 1-D tensor or blocks along the last axis of [rows, n].
fn reference_mx(mx: &Mx, x: &[f64], rows: usize, mode: RoundingMode) -> (Vec<u8>, Vec<u8>) {
    let n = x.len() / rows;
    let b = mx.block();
    let (mut codes, mut scales) = (vec![0u8; x.len()], Vec::new());
    let (elem_max, emax) = match mx.element() {
        MxElement::Float(f) => (f.max(), f.emax()),
        MxElement::Int8 => (127.0 / 64.0, 0),
    };
    for r in 0..rows {
        for start in (0..n).step_by(b) {
            let idx: Vec<usize> = (start..(start + b).min(n)).map(|j| r * n + j).collect();
            let amax = idx.iter().map(|&i| x[i]).filter(|v| v.is_finite()).fold(0.0f64, |m, v| m.max(v.abs()));
            let special = idx.iter().any(|&i| {
                let v = x[i];
                !v.is_finite()
                    && match mx.element() {
                        MxElement::Float(f) => !(if v.is_nan() { f.has_nan() } else { f.has_inf() }),
                        MxElement::Int8 => true,
                    }
            });
            let mut e = if amax == 0.0 { -127 } else { floor_log2(amax) - emax };
            if amax != 0.0 && mx.rule() == ScaleRule::Ceil && amax / 2f64.powi(e) > elem_max {
                e += 1;
            }
            let e = e.clamp(-127, 127);
            scales.push(if special { 0xFF } else { (e + 127) as u8 });
            if special {
                continue;
            }
            for &i in &idx {
                let scaled = x[i] / 2f64.powi(e);
                codes[i] = match mx.element() {
                    MxElement::Float(f) => {
                        let f = f.clone().with_saturation(true).with_propagate_inf(true);
                        code_of(&f, reference::round(scaled, &f, mode, 0)).unwrap() as u8
                    }
                    MxElement::Int8 => {
                        let q = FixedPoint::new(2, 6, Overflow::Saturate).unwrap();
                        q.code_of(&Rounding::new(mode), scaled, 0).unwrap() as i8 as u8
                    }
                };
            }
        }
    }
    (codes, scales)
}

fn adversarial(rng: &mut TestRng, n: usize) -> Vec<f64> {
    let mut x: Vec<f64> = (0..n)
        .map(|_| {
            let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
            let e = (rng.next_u64() % 40) as i32 - 20;
            (u - 0.5) * 2f64.powi(e)
        })
        .collect();
    for v in &mut x[0..40] {
        *v = 0.0; // an all-zero block (and part of the next)
    }
    x[70] = 1e30; // one huge outlier
    x[100..140].iter_mut().for_each(|v| *v *= 1e-40); // scales near the bottom of E8M0
    x[150] = f64::NAN;
    x[190] = f64::INFINITY;
    x[230] = f64::NEG_INFINITY;
    x
}

const SCHEMES: [&str; 10] = [
    "mxfp8_e4m3",
    "mxfp8_e5m2",
    "mxfp6_e3m2",
    "mxfp6_e2m3",
    "mxfp4",
    "mxint8",
    "mxfp4:b16",
    "mxfp8:b7:ceil",
    "mxfp4:ceil",
    "mxint8:b5",
];

#[test]
fn mx_matches_the_reference() {
    let mut rng = TestRng::new(21);
    let (rows, n) = (3, 100); // 100 is not a multiple of 32, 16, 7 or 5... 5 divides it: both cases occur
    let x = adversarial(&mut rng, rows * n);
    for spec in SCHEMES {
        let mx = Mx::parse(spec).unwrap();
        for mode in RoundingMode::DETERMINISTIC {
            let q = mx.quantize(&Rounding::new(mode), &x, &[rows, n], 1).unwrap();
            let (codes, scales) = reference_mx(&mx, &x, rows, mode);
            assert_eq!(q.scales, scales, "{spec} {mode}: scales");
            assert_eq!(q.codes, codes, "{spec} {mode}: codes");
            let mut y = vec![0f64; x.len()];
            q.dequantize(&mut y).unwrap();
            for (i, v) in y.iter().enumerate() {
                let s = q.scales[(i / n) * n.div_ceil(mx.block()) + (i % n) / mx.block()];
                if s == 0xFF {
                    assert!(v.is_nan());
                    continue;
                }
                let elem = match mx.element() {
                    MxElement::Float(f) => f.decode_code(u64::from(q.codes[i])),
                    MxElement::Int8 => f64::from(q.codes[i] as i8) / 64.0,
                };
                let want = elem * 2f64.powi(i32::from(s) - 127);
                assert!(v.to_bits() == want.to_bits() || (v.is_nan() && want.is_nan()), "{spec}: value {i}");
            }
        }
    }
}

#[test]
fn float32_data_over_many_batches_matches_the_reference() {
    // float32 data takes the float32 batch path (scaled in float32, encoded by the bulk kernels); rows of
    // odd length over several batches of blocks, so batches start at odd elements too; the same through the
    // packed route of QuantizedTensor::quantize (which declines or packs as the batch starts allow).
    let mut rng = TestRng::new(33);
    let (rows, n) = (5, 7001);
    let mut x32: Vec<f32> = adversarial(&mut rng, rows * n).iter().map(|&v| v as f32).collect();
    x32[20000] = 1e-44; // float32 subnormals beside normal values: scaled, they leave float32's normal range
    x32[20001] = 3e-39;
    let x64: Vec<f64> = x32.iter().map(|&v| f64::from(v)).collect();
    for spec in ["mxfp4", "mxfp8_e4m3", "mxfp8_e5m2:b16", "mxfp6_e2m3:b7", "mxfp4:b64:ceil"] {
        let mx = Mx::parse(spec).unwrap();
        for mode in RoundingMode::DETERMINISTIC {
            let cfg = Rounding::new(mode);
            let q = mx.quantize(&cfg, &x32, &[rows, n], 1).unwrap();
            let (codes, scales) = reference_mx(&mx, &x64, rows, mode);
            assert_eq!(q.scales, scales, "{spec} {mode}: scales");
            assert_eq!(q.codes, codes, "{spec} {mode}: codes");
            let s = lowp::quant::Scheme::Mx(mx.clone());
            let t = lowp::quant::QuantizedTensor::quantize(&s, &cfg, &x32, &[rows, n], 1).unwrap();
            assert_eq!(t.codes().iter().map(|&c| c as u8).collect::<Vec<_>>(), codes, "{spec} {mode}: packed");
            // An even row length: every batch starts on a byte, so the packed route runs.
            let even = &x32[..rows * (n - 1)];
            let t = lowp::quant::QuantizedTensor::quantize(&s, &cfg, even, &[rows, n - 1], 1).unwrap();
            let q = mx.quantize(&cfg, even, &[rows, n - 1], 1).unwrap();
            assert_eq!(t, lowp::quant::QuantizedTensor::pack(&s, &lowp::quant::Quantized::Mx(q)).unwrap(), "{spec}");
        }
    }
}

#[test]
fn blocks_along_a_leading_axis_equal_the_transposed_tensor() {
    let mut rng = TestRng::new(5);
    let (rows, n) = (40, 6);
    let x = adversarial(&mut rng, rows * n);
    let xt: Vec<f64> = (0..n).flat_map(|c| (0..rows).map(move |r| (r, c))).map(|(r, c)| x[r * n + c]).collect();
    let mx = Mx::parse("mxfp4:b16").unwrap();
    let a = mx.quantize(&Rounding::default(), &x, &[rows, n], 0).unwrap();
    let b = mx.quantize(&Rounding::default(), &xt, &[n, rows], 1).unwrap();
    let ca = &a.codes;
    let at: Vec<u8> = (0..n).flat_map(|c| (0..rows).map(move |r| (r, c))).map(|(r, c)| ca[r * n + c]).collect();
    assert_eq!(at, b.codes);
    // blocks of the leading axis are ordered (block, column); the transposed ones (column, block)
    let nbl = rows.div_ceil(16);
    let sa = &a.scales;
    let st: Vec<u8> = (0..n).flat_map(|c| (0..nbl).map(move |k| sa[k * n + c])).collect();
    assert_eq!(st, b.scales);
}

#[test]
fn blocks_worked_by_hand() {
    let q = |spec: &str, vals: &[f64]| {
        let mx = Mx::parse(spec).unwrap();
        let mut x = vec![0.0; mx.block()];
        x[..vals.len()].copy_from_slice(vals);
        let q = mx.quantize(&Rounding::default(), &x, &[x.len()], 0).unwrap();
        let mut y = vec![0.0; x.len()];
        q.dequantize(&mut y).unwrap();
        (q.scales[0], y[..vals.len()].to_vec())
    };
    // MXFP4: amax 5 -> floor(log2 5) - 2 = 0: X = 1; 5 ties between 4 and 6 (even: 4); 0.25 ties 0 / 0.5
    assert_eq!(q("mxfp4", &[5.0, 0.25, -1.75, 0.3]), (127, vec![4.0, 0.0, -2.0, 0.5]));
    // amax 7: X = 1 still (floor rule), 7 clamps to 6; the ceil rule takes X = 2 and 7/2 = 3.5 -> 4 -> 8
    assert_eq!(q("mxfp4", &[7.0, 1.0]), (127, vec![6.0, 1.0]));
    assert_eq!(q("mxfp4:ceil", &[7.0, 1.0]), (128, vec![8.0, 1.0]));
    // MXFP8 (e4m3): amax 1 -> 0 - 8: X = 2^-8, 1 is 256 in e4m3fn, exactly; 0.1 / 2^-8 = 25.6 -> 26 (step 2)
    assert_eq!(q("mxfp8", &[1.0, 0.1]), (119, vec![1.0, 26.0 / 256.0]));
    // an all-zero block: X = 2^-127 (code 0), zeros
    assert_eq!(q("mxfp6", &[0.0, -0.0]), (0, vec![0.0, 0.0]));
    // amax beyond 2^(127 + emax): the exponent clamps at 127 and elements saturate
    let (s, y) = q("mxfp8_e5m2", &[2f64.powi(200)]);
    assert_eq!((s, y[0]), (254, 57344.0 * 2f64.powi(127)));
    // MXINT8: 1.6 fixed point; amax 3 -> X = 2, 3/2 = 1.5 = 96/64
    assert_eq!(q("mxint8", &[3.0, -0.01]), (128, vec![3.0, 0.0]));
    assert_eq!(q("mxint8", &[1.99, -1.5]), (127, vec![1.984375, -1.5])); // 1.99 * 64 = 127.36 -> 127
    assert_eq!(q("mxint8", &[1.99, -2.0]), (128, vec![2.0, -2.0])); // amax 2: X = 2, 0.995 * 64 -> 64
                                                                    // NaN / inf: kept where the element type has them, otherwise the block's scale is NaN
    let (s, y) = q("mxfp8_e5m2", &[f64::INFINITY, f64::NAN, 1.0]);
    assert_eq!(s, 127 - 15);
    assert!(y[0] == f64::INFINITY && y[1].is_nan() && y[2] == 1.0);
    let (s, y) = q("mxfp8_e4m3", &[f64::NAN, 1.0, f64::INFINITY]);
    assert_eq!(s, 0xFF);
    assert!(y.iter().all(|v| v.is_nan()));
    let (s, y) = q("mxfp4", &[f64::NAN, 1.0]);
    assert_eq!(s, 0xFF);
    assert!(y.iter().all(|v| v.is_nan()));
}

#[test]
fn storage_and_names() {
    for (spec, bits) in
        [("mxfp4", 4.25), ("mxfp6_e2m3", 6.25), ("mxfp8_e5m2", 8.25), ("mxint8", 8.25), ("mxfp4:b16", 4.5)]
    {
        let mx = Mx::parse(spec).unwrap();
        let q = mx.quantize(&Rounding::default(), &vec![1.0f32; 64], &[64], 0).unwrap();
        assert_eq!(q.bits_per_element(), bits, "{spec}");
    }
    assert_eq!(Mx::parse("MXFP8").unwrap().to_string(), "mxfp8_e4m3:b32");
    assert_eq!(Mx::parse("mxfp4:b16:ceil").unwrap().to_string(), "mxfp4:b16:ceil");
    assert_eq!(Mx::parse("mxfp8_e5m2").unwrap().emax_elem(), 15);
    assert_eq!(Mx::parse("mxfp6_e3m2").unwrap().emax_elem(), 4);
    assert_eq!(Mx::parse("mxfp6_e2m3").unwrap().emax_elem(), 2);
    assert_eq!(Mx::parse("mxfp4").unwrap().emax_elem(), 2);
    assert_eq!(Mx::parse("mxfp8").unwrap().emax_elem(), 8);
    for bad in ["mxfp5", "mxfp4:b0", "mxfp4:round", "mx"] {
        let e = Mx::parse(bad).unwrap_err().to_string();
        assert!(e.contains("MX") || e.contains("block"), "{bad}: {e}");
    }
    let e = Mx::new(MxElement::Float(lowp::Format::parse("fp16").unwrap()), 32, ScaleRule::Floor).unwrap_err();
    assert!(e.to_string().contains("at most 8 bits"), "{e}");
}

#[test]
fn stochastic_elements_are_seeded_and_index_based() {
    let mx = Mx::parse("mxfp4").unwrap();
    let x: Vec<f64> = (0..256).map(|i| (i as f64 * 0.37).sin() * 3.0).collect();
    let cfg = Rounding::new(RoundingMode::Stochastic).with_seed(4);
    let a = mx.quantize(&cfg, &x, &[256], 0).unwrap();
    let b = mx.quantize(&cfg, &x, &[256], 0).unwrap();
    assert_eq!(a, b);
    let c = mx.quantize(&cfg.with_seed(5), &x, &[256], 0).unwrap();
    assert_ne!(a.codes, c.codes);
    let (down, up) = (
        mx.quantize(&Rounding::new(RoundingMode::TowardNegative), &x, &[256], 0).unwrap(),
        mx.quantize(&Rounding::new(RoundingMode::TowardPositive), &x, &[256], 0).unwrap(),
    );
    assert!(a.codes.iter().zip(down.codes.iter().zip(&up.codes)).all(|(c, (d, u))| c == d || c == u));
}
