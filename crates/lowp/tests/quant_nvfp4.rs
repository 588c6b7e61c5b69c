//! NVFP4 against a reference written here and blocks worked by hand (FORMATS.md §4).

use lowp::codes::code_of;
use lowp::quant::{Nvfp4, Quantized, QuantizedTensor, Scheme};
use lowp::round::reference;
use lowp::{Format, Rounding, RoundingMode};

mod common;
use common::TestRng;

/// (codes, scale codes, tensor scale) by the definitions, blocks along the last axis of [rows, n].
fn reference_nvfp4(s: &Nvfp4, x: &[f64], rows: usize, tensor: bool, mode: RoundingMode) -> (Vec<u8>, Vec<u8>, f32) {
    let n = x.len() / rows;
    let e4m3 = Format::parse("float8_e4m3fn").unwrap().with_saturation(true);
    let e2m1 = Format::parse("float4_e2m1fn").unwrap();
    let finite_amax = |v: &[f64]| v.iter().filter(|v| v.is_finite()).fold(0.0f64, |m, v| m.max(v.abs()));
    let ta = finite_amax(x);
    let t = if tensor && ta > 0.0 { (ta / 2688.0) as f32 } else { 1.0 };
    let (mut codes, mut scales) = (vec![0u8; x.len()], Vec::new());
    for r in 0..rows {
        for start in (0..n).step_by(s.block()) {
            let idx: Vec<usize> = (start..(start + s.block()).min(n)).map(|j| r * n + j).collect();
            let vals: Vec<f64> = idx.iter().map(|&i| x[i]).collect();
            if vals.iter().any(|v| !v.is_finite()) {
                scales.push(0x7F);
                continue;
            }
            let sv = reference::round(finite_amax(&vals) / 6.0 / f64::from(t), &e4m3, RoundingMode::NearestEven, 0);
            scales.push(code_of(&e4m3, sv).unwrap() as u8);
            if sv == 0.0 {
                continue;
            }
            for &i in &idx {
                let q = x[i] / (sv * f64::from(t));
                codes[i] = code_of(&e2m1, reference::round(q, &e2m1, mode, 0)).unwrap() as u8;
            }
        }
    }
    (codes, scales, t)
}

#[test]
fn nvfp4_matches_the_reference() {
    let mut rng = TestRng::new(77);
    let (rows, n) = (4, 90); // 90 = 5 blocks of 16 + 10
    let mut x: Vec<f64> = (0..rows * n)
        .map(|_| {
            let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
            (u - 0.5) * 2f64.powi((rng.next_u64() % 24) as i32 - 12)
        })
        .collect();
    x[0..16].iter_mut().for_each(|v| *v = 0.0); // all-zero block
    x[40] = 5e4; // outlier: its block's scale saturates at 448 without the tensor scale
    x[100..116].iter_mut().for_each(|v| *v *= 1e-9); // block scales in e4m3's subnormal range or below
    x[200] = f64::NAN;
    x[300] = f64::NEG_INFINITY;
    for spec in ["nvfp4", "nvfp4:notensor", "nvfp4:b32", "nvfp4:b7:notensor"] {
        let s = Nvfp4::parse(spec).unwrap();
        let tensor = !spec.contains("notensor");
        for mode in RoundingMode::DETERMINISTIC {
            let q = s.quantize(&Rounding::new(mode), &x, &[rows, n], 1).unwrap();
            let (codes, scales, t) = reference_nvfp4(&s, &x, rows, tensor, mode);
            assert_eq!(q.tensor_scale, t, "{spec}: tensor scale");
            assert_eq!(q.scales, scales, "{spec} {mode}: scales");
            assert_eq!(q.codes, codes, "{spec} {mode}: codes");
            let mut y = vec![0f64; x.len()];
            q.dequantize(&mut y).unwrap();
            let e4m3 = Format::parse("float8_e4m3fn").unwrap();
            let e2m1 = Format::parse("float4_e2m1fn").unwrap();
            let nbr = n.div_ceil(s.block());
            for (i, v) in y.iter().enumerate() {
                let sc = e4m3.decode_code(u64::from(q.scales[(i / n) * nbr + (i % n) / s.block()]));
                let want = e2m1.decode_code(u64::from(q.codes[i])) * sc * f64::from(t);
                assert!(v.to_bits() == want.to_bits() || (v.is_nan() && want.is_nan()), "{spec}: value {i}");
            }
        }
    }
}

/// float32 data (also widened to float64) over many batches of blocks (rows of odd length), built so that quotients land exactly on
/// e2m1's values and rounding midpoints and on their float32 neighbours: the tensor amax is 2688 (tensor
/// scale exactly 1) and every block's amax is 6 * s for an e4m3 value s (block scale exactly s).
/// `up` and `down` give the neighbours (float32's or float64's).
fn on_the_grid(rows: usize, n: usize, up: impl Fn(f64) -> f64, down: impl Fn(f64) -> f64) -> Vec<f64> {
    let mids = [0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0];
    let values = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0];
    let mut x = vec![0f64; rows * n];
    for r in 0..rows {
        for (k, start) in (0..n).step_by(16).enumerate() {
            let s = 2f64.powi((k % 12) as i32 - 6) * (1.0 + (k % 8) as f64 / 8.0); // an e4m3 value
            for (j, v) in x[r * n + start..r * n + (start + 16).min(n)].iter_mut().enumerate() {
                let m = if j % 2 == 0 { mids[(j / 2 + k) % 7] } else { values[(j / 2 + k) % 7] };
                let e = m * s; // exact: few bits
                let e = match (j + k) % 3 {
                    0 => e,
                    1 => up(e),
                    _ => down(e),
                };
                *v = if (j + k) % 5 == 0 { -e } else { e };
            }
            x[r * n + start] = 6.0 * s; // the block's amax
        }
        x[r * n + 1] = 0.0;
    }
    x[0] = 2688.0; // tensor amax: t = 2688 / 2688 = 1, and block 0's scale is 448
    x
}

#[test]
fn float32_data_over_many_batches_matches_the_reference() {
    let (rows, n) = (5, 6001);
    let mut rng = TestRng::new(5);
    let random: Vec<f32> = (0..rows * n)
        .map(|_| {
            let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
            ((u - 0.5) * 2f64.powi((rng.next_u64() % 24) as i32 - 12)) as f32
        })
        .collect();
    let grid32 = on_the_grid(rows, n, |e| f64::from((e as f32).next_up()), |e| f64::from((e as f32).next_down()));
    let grid64 = on_the_grid(rows, n, f64::next_up, f64::next_down);
    // NVFP4's own output quantized again: quotients on or within float32 rounding of e2m1's grid.
    let again = {
        let q = Nvfp4::parse("nvfp4").unwrap().quantize(&Rounding::default(), &random, &[rows, n], 1).unwrap();
        let mut y = vec![0f32; random.len()];
        q.dequantize(&mut y).unwrap();
        y.iter().map(|&v| f64::from(v)).collect::<Vec<f64>>()
    };
    let random: Vec<f64> = random.iter().map(|&v| f64::from(v)).collect();
    for (x64, x32_holds_it) in [(grid32, true), (grid64, false), (random, true), (again, true)] {
        let x32: Vec<f32> = x64.iter().map(|&v| v as f32).collect();
        for spec in ["nvfp4", "nvfp4:notensor", "nvfp4:b32"] {
            let s = Nvfp4::parse(spec).unwrap();
            for mode in RoundingMode::DETERMINISTIC {
                let cfg = Rounding::new(mode);
                let (codes, scales, t) = reference_nvfp4(&s, &x64, rows, !spec.contains("notensor"), mode);
                let q = s.quantize(&cfg, &x64, &[rows, n], 1).unwrap(); // the float64 batch path
                assert_eq!(q.tensor_scale, t, "{spec}: tensor scale");
                assert_eq!((&q.scales, &q.codes), (&scales, &codes), "{spec} {mode}: float64 data");
                if !x32_holds_it {
                    continue;
                }
                let q = s.quantize(&cfg, &x32, &[rows, n], 1).unwrap();
                assert_eq!(q.tensor_scale, t, "{spec}: tensor scale");
                assert_eq!(q.scales, scales, "{spec} {mode}: scales");
                assert_eq!(q.codes, codes, "{spec} {mode}: codes");
                // The packed route (rows of even length: batches start on whole bytes) gives the same tensor.
                let scheme = Scheme::Nvfp4(s.clone());
                let even = &x32[..rows * (n - 1)];
                let t = QuantizedTensor::quantize(&scheme, &cfg, even, &[rows, n - 1], 1).unwrap();
                let q = s.quantize(&cfg, even, &[rows, n - 1], 1).unwrap();
                assert_eq!(t, QuantizedTensor::pack(&scheme, &Quantized::Nvfp4(q)).unwrap(), "{spec} {mode}");
            }
        }
    }
}

#[test]
fn subnormal_quotients_round_as_the_quotient_does() {
    // Found in review: 5 * 2^-1074 / 10 is a tie that rounds to 0, while 5 * 2^-1074 * (1 / 10) rounds to
    // 2^-1074; toward_positive must still give code 0 (the quotient is 0), not 0.5.
    let mut x = vec![1.3f64; 16];
    x[0] = 61.0; // block scale 61 / 6 -> e4m3 10
    x[1] = f64::from_bits(5);
    x[2] = -f64::from_bits(5);
    // (No element whose product is 0: the kernel would redo the whole 16 with the division.)
    for spec in ["nvfp4:notensor", "nvfp4"] {
        let s = Nvfp4::parse(spec).unwrap();
        for mode in RoundingMode::DETERMINISTIC {
            let q = s.quantize(&Rounding::new(mode), &x, &[16], 0).unwrap();
            let (codes, scales, _) = reference_nvfp4(&s, &x, 1, !spec.contains("notensor"), mode);
            assert_eq!((q.scales, q.codes), (scales, codes), "{spec} {mode}");
        }
    }
}

#[test]
fn nvfp4_worked_by_hand() {
    let s = Nvfp4::parse("nvfp4:notensor").unwrap();
    let mut x = vec![0.0f64; 16];
    x[..4].copy_from_slice(&[3.0, -1.5, 0.25, 2.9]); // amax 3: scale 0.5 (exact in e4m3fn); x / 0.5 = 6, -3, 0.5, 5.8
    let q = s.quantize(&Rounding::default(), &x, &[16], 0).unwrap();
    assert_eq!(q.scales, [0x30]); // e4m3fn 0.5 = 0 0110 000
    let mut y = vec![0.0f64; 16];
    q.dequantize(&mut y).unwrap();
    assert_eq!(y[..4], [3.0, -1.5, 0.25, 3.0]); // 5.8 -> 6
                                                // amax 1.3: 1.3 / 6 = 0.21666 -> e4m3fn 0.21875 (= 1.75 * 2^-3); 1.3 / 0.21875 = 5.94 -> 6 -> 1.3125
    x[..4].copy_from_slice(&[1.3, 0.0, 0.0, 0.0]);
    let q = s.quantize(&Rounding::default(), &x, &[16], 0).unwrap();
    q.dequantize(&mut y).unwrap();
    assert_eq!(y[0], 1.3125);
    // a block with an infinity decodes to NaN; an all-zero tensor to zeros, tensor scale 1
    x[5] = f64::INFINITY;
    let q = Nvfp4::parse("nvfp4").unwrap().quantize(&Rounding::default(), &x, &[16], 0).unwrap();
    assert_eq!(q.scales, [0x7F]);
    q.dequantize(&mut y).unwrap();
    assert!(y.iter().all(|v| v.is_nan()));
    let q = Nvfp4::parse("nvfp4").unwrap().quantize(&Rounding::default(), &[0.0f32; 20], &[20], 0).unwrap();
    assert_eq!((q.tensor_scale, q.scales.clone(), q.codes.iter().all(|&c| c == 0)), (1.0, vec![0, 0], true));
    assert_eq!(q.bits_per_element(), 4.0 + (16.0 + 32.0) / 20.0);
}

#[test]
fn nvfp4_names_and_errors() {
    assert_eq!(Nvfp4::parse("NVFP4").unwrap().to_string(), "nvfp4:b16");
    assert_eq!(Nvfp4::parse("nvfp4:b32:notensor").unwrap().to_string(), "nvfp4:b32:notensor");
    for bad in ["nvfp8", "nvfp4:b0", "nvfp4:x"] {
        let e = Nvfp4::parse(bad).unwrap_err().to_string();
        assert!(e.contains("NVFP4"), "{bad}: {e}");
    }
    let q = Nvfp4::parse("nvfp4:notensor").unwrap().quantize(&Rounding::default(), &[1.0f32; 32], &[32], 0).unwrap();
    assert_eq!(q.bits_per_element(), 4.5);
}
