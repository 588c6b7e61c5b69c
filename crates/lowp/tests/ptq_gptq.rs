//! GPTQ against a plain reference written for clarity, against round-to-nearest, and on its stored form.

mod common;

use common::TestRng;
use lowp::ptq::{gptq, hessian_error, inverse_upper_cholesky, GptqOptions, Hessian};
use lowp::quant::{AffineInt, Granularity, Quantized, QuantizedTensor, Scheme};
use lowp::Rounding;

fn normal(rng: &mut TestRng) -> f64 {
    let u = |r: &mut TestRng| ((r.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    (-2.0 * u(rng).ln()).sqrt() * (std::f64::consts::TAU * u(rng)).cos()
}

/// Calibration inputs with correlated features of unequal scale (what makes GPTQ useful), `[n, cols]`.
fn inputs(rng: &mut TestRng, n: usize, cols: usize) -> Vec<f32> {
    let mix: Vec<f64> = (0..cols * cols).map(|_| normal(rng) / (cols as f64).sqrt()).collect();
    let mut x = vec![0f32; n * cols];
    for t in 0..n {
        let z: Vec<f64> = (0..cols).map(|c| normal(rng) * (1.0 + 3.0 * (c % 5 == 0) as u8 as f64)).collect();
        for c in 0..cols {
            let v: f64 = z[c] + (0..cols).map(|k| mix[c * cols + k] * z[k]).sum::<f64>();
            x[t * cols + c] = v as f32;
        }
    }
    x
}

fn weight(rng: &mut TestRng, rows: usize, cols: usize) -> Vec<f64> {
    (0..rows * cols).map(|i| normal(rng) * 0.05 * if i % 37 == 0 { 6.0 } else { 1.0 }).collect()
}

/// GPTQ for clarity: columns in order (or act-order), each quantized, its error spread over every later
/// column at once (no blocks), grids per the module documentation.
fn reference(s: &AffineInt, w: &[f64], rows: usize, cols: usize, h: &[f64], o: &GptqOptions) -> Vec<i32> {
    let n = cols;
    let mut perm: Vec<usize> = (0..n).collect();
    if o.act_order {
        perm.sort_by(|&a, &b| h[b * n + b].total_cmp(&h[a * n + a]).then(a.cmp(&b)));
    }
    let mut w = w.to_vec();
    let mut hp: Vec<f64> = (0..n * n).map(|k| h[perm[k / n] * n + perm[k % n]]).collect();
    for i in 0..n {
        if hp[i * n + i] == 0.0 {
            hp[i * n + i] = 1.0;
            (0..rows).for_each(|r| w[r * cols + perm[i]] = 0.0);
        }
    }
    let damp = o.damp * (0..n).map(|i| hp[i * n + i]).sum::<f64>() / n as f64;
    (0..n).for_each(|i| hp[i * n + i] += damp);
    let u = inverse_upper_cholesky(&hp, n).unwrap();
    let fixed = |w: &[f64], r: usize, c: usize| -> (f64, i32) {
        match s.granularity() {
            Granularity::Tensor => s.fit(w).unwrap(),
            Granularity::Channel => s.fit(&w[r * cols..(r + 1) * cols]).unwrap(),
            Granularity::Group(g) => {
                let k = c / g;
                s.fit(&w[r * cols + k * g..r * cols + ((k + 1) * g).min(cols)]).unwrap()
            }
        }
    };
    let original = w.clone();
    let mut grid = vec![(0.0, 0); rows * cols];
    let mut codes = vec![0; rows * cols];
    for i in 0..n {
        let c = perm[i];
        for r in 0..rows {
            grid[r * cols + c] = match s.granularity() {
                Granularity::Group(g) if !o.static_groups => {
                    if c.is_multiple_of(g) {
                        fixed(&w, r, c)
                    } else {
                        grid[r * cols + c - 1]
                    }
                }
                _ => fixed(&original, r, c),
            };
            let (sc, z) = grid[r * cols + c];
            let code = s.nearest_code(w[r * cols + c], sc, z);
            codes[r * cols + c] = code;
            let e = (w[r * cols + c] - f64::from(code - z) * sc) / u[i * n + i];
            for j in i + 1..n {
                w[r * cols + perm[j]] -= e * u[i * n + j];
            }
        }
    }
    codes
}

fn hessian(x: &[f32], n: usize, cols: usize) -> Vec<f64> {
    let mut h = Hessian::new(cols);
    h.add(x, n).unwrap();
    h.matrix()
}

#[test]
fn blocked_gptq_equals_the_plain_reference() {
    let mut rng = TestRng::new(1);
    let (rows, cols, n) = (24, 70, 400);
    let x = inputs(&mut rng, n, cols);
    let mut h = hessian(&x, n, cols);
    // Two dead inputs.
    for k in [3, 41] {
        for j in 0..cols {
            h[k * cols + j] = 0.0;
            h[j * cols + k] = 0.0;
        }
    }
    let w = weight(&mut rng, rows, cols);
    for spec in ["int4:g16:asym", "int3:channel:sym", "int4:tensor:sym", "int2:g32:asym", "int4:g32:sym:full"] {
        let s = AffineInt::parse(spec).unwrap();
        for (act_order, static_groups) in [(false, false), (false, true), (true, true)] {
            if act_order && !static_groups {
                continue;
            }
            let o0 = GptqOptions { act_order, static_groups, ..GptqOptions::default() };
            let want = reference(&s, &w, rows, cols, &h, &o0);
            for block in [1, 7, 16, 128, usize::MAX] {
                let o = GptqOptions { block, ..o0.clone() };
                let got = gptq(&s, &w, rows, cols, &h, &o).unwrap();
                let differ = got.quantized.codes.iter().zip(&want).filter(|(a, b)| a != b).count();
                assert_eq!(differ, 0, "{spec} act_order {act_order} static {static_groups} block {block}");
                for k in [3, 41] {
                    for r in 0..rows {
                        assert_eq!(got.values[r * cols + k], 0.0, "dead input {k} quantized to 0");
                    }
                }
            }
        }
    }
}

#[test]
fn with_a_diagonal_hessian_gptq_is_round_to_nearest() {
    let mut rng = TestRng::new(2);
    let (rows, cols) = (10, 48);
    let w = weight(&mut rng, rows, cols);
    let h: Vec<f64> = (0..cols * cols).map(|k| if k / cols == k % cols { 1.0 + (k % 7) as f64 } else { 0.0 }).collect();
    for spec in ["int4:g16:asym", "int8:channel:sym", "int3:tensor:asym", "int4:g10:sym"] {
        let s = AffineInt::parse(spec).unwrap();
        let axis = usize::from(s.granularity() != Granularity::Channel);
        let rtn = s.quantize(&Rounding::default(), &w, &[rows, cols], axis).unwrap();
        for act_order in [false, true] {
            let o = GptqOptions { act_order, static_groups: act_order, ..GptqOptions::default() };
            let g = gptq(&s, &w, rows, cols, &h, &o).unwrap();
            assert_eq!(g.quantized, rtn, "{spec} act_order {act_order}");
        }
    }
}

#[test]
fn gptq_has_less_output_error_than_rtn() {
    let mut rng = TestRng::new(3);
    let (rows, cols, n) = (32, 96, 600);
    let x = inputs(&mut rng, n, cols);
    let h = hessian(&x, n, cols);
    let w = weight(&mut rng, rows, cols);
    for spec in ["int4:g32:asym", "int3:channel:sym", "int2:g16:asym", "int3:g32:asym"] {
        let s = AffineInt::parse(spec).unwrap();
        let axis = usize::from(s.granularity() != Granularity::Channel);
        let rtn = s.quantize(&Rounding::default(), &w, &[rows, cols], axis).unwrap();
        let mut rq = vec![0f64; rows * cols];
        rtn.dequantize(&mut rq).unwrap();
        let e_rtn = hessian_error(&w, &rq, rows, cols, &h).unwrap();
        for (act_order, static_groups) in [(false, false), (true, true)] {
            let o = GptqOptions { act_order, static_groups, ..GptqOptions::default() };
            let g = gptq(&s, &w, rows, cols, &h, &o).unwrap();
            let e = hessian_error(&w, &g.values, rows, cols, &h).unwrap();
            assert!(e < 0.8 * e_rtn, "{spec} act_order {act_order}: GPTQ {e} against RTN {e_rtn}");
        }
    }
}

#[test]
fn the_stored_form_decodes_to_the_gptq_values() {
    let mut rng = TestRng::new(4);
    let (rows, cols, n) = (12, 50, 200);
    let x = inputs(&mut rng, n, cols);
    let h = hessian(&x, n, cols);
    let w = weight(&mut rng, rows, cols);
    for spec in ["int4:g16:asym", "int8:channel:sym", "int3:tensor:sym", "int4:g64:asym:scale=bf16"] {
        let s = AffineInt::parse(spec).unwrap();
        let g = gptq(&s, &w, rows, cols, &h, &GptqOptions::default()).unwrap();
        let t = QuantizedTensor::pack(&Scheme::Int(s.clone()), &Quantized::Int(g.quantized.clone())).unwrap();
        let mut y = vec![0f64; rows * cols];
        t.dequantize(&mut y).unwrap();
        assert_eq!(y, g.values, "{spec}");
        let axis = usize::from(s.granularity() != Granularity::Channel);
        assert_eq!(t.axis(), axis);
    }
}

#[test]
fn bad_inputs_are_errors() {
    let s = AffineInt::parse("int4:g8:asym").unwrap();
    let h = vec![1.0, 0.0, 0.0, 1.0];
    let o = GptqOptions::default();
    let e = |r: lowp::Result<lowp::ptq::Gptq>| r.unwrap_err().to_string();
    assert!(e(gptq(&s, &[1.0, f64::NAN], 1, 2, &h, &o)).contains("weight 1 is NaN"));
    assert!(e(gptq(&s, &[1.0, 2.0], 1, 2, &h[..3], &o)).contains("[2, 2]"));
    assert!(e(gptq(&s, &[1.0, 2.0, 3.0], 1, 2, &h, &o)).contains("not [1, 2]"));
    let ao = GptqOptions { act_order: true, ..GptqOptions::default() };
    assert!(e(gptq(&s, &[1.0, 2.0], 1, 2, &h, &ao)).contains("static groups"));
    let neg = vec![-1.0, 0.0, 0.0, -1.0];
    let nd = GptqOptions { damp: 0.0, ..GptqOptions::default() };
    assert!(e(gptq(&s, &[1.0, 2.0], 1, 2, &neg, &nd)).contains("raise the damping"));
    assert!(e(gptq(&s, &[1.0, 2.0], 1, 2, &h, &GptqOptions { block: 0, ..o })).contains("block"));
}

#[test]
fn the_hessian_accumulates_batches() {
    let mut rng = TestRng::new(5);
    let (n, d) = (300, 9);
    let x = inputs(&mut rng, n, d);
    let mut h = Hessian::new(d);
    h.add(&x[..100 * d], 100).unwrap();
    h.add(&x[100 * d..], 200).unwrap();
    let m = h.matrix();
    for i in 0..d {
        for j in 0..d {
            let p = |t: usize| f64::from(x[t * d + i]) * f64::from(x[t * d + j]);
            let want = 2.0 * (0..n).map(p).sum::<f64>() / n as f64;
            // Products summed in float32 over at most 512 rows: within 512 * 2^-24 of the sum of magnitudes.
            let bound = 2.0 * (0..n).map(|t| p(t).abs()).sum::<f64>() / n as f64 * 512.0 * 2f64.powi(-24);
            assert!((m[i * d + j] - want).abs() <= bound, "{i},{j}");
        }
    }
    assert_eq!(h.count(), n);
    assert!(h.add(&x[..5], 1).is_err());
    assert!(h.add(&[f32::NAN; 9], 1).unwrap_err().to_string().contains("NaN"));
}
