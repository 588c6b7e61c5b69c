//! The block quantizers' parallel batch paths, on float32 and float64 data, in stochastic and deterministic
//! modes: every
//! element code equals the per-element definition (the element rounded alone by `round_value` /
//! `round_to_integer` / `Codebook::index_of` with its own tensor index), and results do not depend on the
//! number of threads. (The deterministic modes are checked against plain references in quant_mx.rs,
//! quant_nvfp4.rs, quant_int.rs and quant_codebook.rs.)

mod common;

use common::TestRng;
use lowp::codes::code_of;
use lowp::quant::{round_to_integer, AffineInt, CodebookScheme, Mx, MxElement, Nvfp4, Scheme};
use lowp::{round_value, Element, Format, Rounding, RoundingMode};

const MODES: [RoundingMode; 3] =
    [RoundingMode::Stochastic, RoundingMode::StochasticEqual, RoundingMode::StochasticBits(3)];
const ROWS: usize = 7;
const N: usize = 301; // not a multiple of any block size used

fn data<T: Element>(seed: u64) -> Vec<T> {
    let mut r = TestRng::new(seed);
    let mut x: Vec<T> = (0..ROWS * N)
        .map(|_| {
            let u = (r.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
            T::from_f64((u - 0.5) * 2f64.powi((r.next_u64() % 16) as i32 - 8))
        })
        .collect();
    x[..40].iter_mut().for_each(|v| *v = T::from_f64(0.0));
    x[500] = T::from_f64(7e4);
    // Values that fall below float32's normal range once scaled (the float32 batch path must notice), and a
    // float32 subnormal input.
    x[700] = T::from_f64(1e-38);
    x[701] = T::from_f64(1e3);
    x[702] = T::from_f64(1e-44); // scaled by 2^-7 this is below float32's smallest subnormal: 0 in float32
    x[703] = T::from_f64(-1e-44);
    x[900] = T::from_f64(1e-40);
    x
}

fn block_of(i: usize, block: usize) -> usize {
    (i / N) * N.div_ceil(block) + (i % N) / block
}

fn check_mx<T: Element>(spec: &str, cfg: &Rounding) {
    check_mx_on(spec, cfg, &data::<T>(1));
}

fn check_mx_on<T: Element>(spec: &str, cfg: &Rounding, x: &[T]) {
    let mx = Mx::parse(spec).unwrap();
    let q = mx.quantize(cfg, x, &[ROWS, N], 1).unwrap();
    let MxElement::Float(f) = mx.element() else { unreachable!() };
    let f = f.clone().with_saturation(true).with_subnormals(true).with_propagate_inf(true);
    for (i, v) in x.iter().enumerate() {
        let e = i32::from(q.scales[block_of(i, mx.block())]) - 127;
        let scaled = v.to_f64() * 2f64.powi(-e);
        let want = code_of(&f, round_value(&f, cfg, scaled, i as u64).unwrap()).unwrap() as u8;
        assert_eq!(q.codes[i], want, "{spec} {:?} {}: element {i}", cfg.mode, T::DTYPE);
    }
}

fn check_nvfp4<T: Element>(cfg: &Rounding) {
    let s = Nvfp4::parse("nvfp4").unwrap();
    let x = data::<T>(2);
    let q = s.quantize(cfg, &x, &[ROWS, N], 1).unwrap();
    let (e4m3, e2m1) = (Format::parse("float8_e4m3fn").unwrap(), Format::parse("float4_e2m1fn").unwrap());
    for (i, v) in x.iter().enumerate() {
        let sc = e4m3.decode_code(u64::from(q.scales[block_of(i, 16)]));
        let want = if sc == 0.0 {
            0
        } else {
            let r = round_value(&e2m1, cfg, v.to_f64() / (sc * f64::from(q.tensor_scale)), i as u64).unwrap();
            code_of(&e2m1, r).unwrap() as u8
        };
        assert_eq!(q.codes[i], want, "nvfp4 {:?} {}: element {i}", cfg.mode, T::DTYPE);
    }
}

fn check_int<T: Element>(spec: &str, cfg: &Rounding) {
    let s = AffineInt::parse(spec).unwrap();
    let x = data::<T>(3);
    let q = s.quantize(cfg, &x, &[ROWS, N], 1).unwrap();
    let (lo, hi) = s.code_range();
    let g = match s.granularity() {
        lowp::quant::Granularity::Group(g) => g,
        _ => unreachable!(),
    };
    for (i, v) in x.iter().enumerate() {
        let b = block_of(i, g);
        let (sc, z) = (q.scales[b], q.zeros[b]);
        let want = if sc == 0.0 {
            z
        } else {
            let r = round_to_integer(v.to_f64() / sc, cfg.mode, cfg.seed, i as u64) + f64::from(z);
            r.clamp(f64::from(lo), f64::from(hi)) as i32
        };
        assert_eq!(q.codes[i], want, "{spec} {:?} {}: element {i}", cfg.mode, T::DTYPE);
    }
}

fn check_codebook<T: Element>(cfg: &Rounding) {
    let s = CodebookScheme::parse("nf4:g32").unwrap();
    let x = data::<T>(4);
    let q = s.quantize(cfg, &x, &[ROWS, N], 1).unwrap();
    for (i, v) in x.iter().enumerate() {
        let sc = q.scales[block_of(i, 32)];
        let v = if sc == 0.0 { 0.0 } else { v.to_f64() / sc };
        let want = s.codebook().index_of(v, cfg.mode, cfg.seed, i as u64).unwrap() as u8;
        assert_eq!(q.codes[i], want, "nf4 {:?} {}: element {i}", cfg.mode, T::DTYPE);
    }
}

#[test]
fn batch_paths_equal_the_per_element_definitions() {
    for mode in MODES {
        let codebook_mode = mode != RoundingMode::Odd; // round-to-odd has no meaning for a codebook
        let cfg = Rounding::new(mode).with_seed(9);
        for spec in ["mxfp4", "mxfp8_e4m3", "mxfp8_e5m2:b16", "mxfp6_e2m3:b7"] {
            check_mx::<f32>(spec, &cfg);
            check_mx::<f64>(spec, &cfg);
        }
        check_nvfp4::<f32>(&cfg);
        check_nvfp4::<f64>(&cfg);
        for spec in ["int4:g32:asym", "int3:g64:sym", "int8:g128:sym:full"] {
            check_int::<f32>(spec, &cfg);
            check_int::<f64>(spec, &cfg);
        }
        if codebook_mode {
            check_codebook::<f32>(&cfg);
            check_codebook::<f64>(&cfg);
        }
    }
}

#[test]
fn tiny_values_beside_huge_ones() {
    // A block whose shared exponent is large, holding float32 subnormals that scale to below float32's
    // smallest subnormal, in a batch with nothing else out of the normal range: the float32 path must see
    // them (directed modes and round-to-odd give them the smallest subnormal code, not 0).
    let mut r = TestRng::new(8);
    let mut x: Vec<f32> = (0..ROWS * N).map(|_| ((r.next_u64() >> 40) as f32 / (1u64 << 24) as f32) - 0.5).collect();
    x[0] = 3e38;
    x[1] = 1e-44;
    x[2] = -1e-44;
    x[3] = 1e-30;
    for mode in
        [RoundingMode::TowardPositive, RoundingMode::TowardNegative, RoundingMode::Odd, RoundingMode::NearestEven]
    {
        for spec in ["mxfp4", "mxfp8_e4m3", "mxfp8_e5m2", "mxfp6_e3m2"] {
            check_mx_on(spec, &Rounding::new(mode), &x);
        }
    }
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    // Large enough for many batches.
    let mut r = TestRng::new(5);
    let x: Vec<f32> = (0..1 << 18).map(|_| ((r.next_u64() >> 40) as f32 / (1u64 << 24) as f32) - 0.5).collect();
    let cfg = Rounding::new(RoundingMode::Stochastic).with_seed(3);
    for spec in ["mxfp4", "nvfp4", "int4:g128:asym", "bitmod4:g128", "nf4:g64", "bfp8:b16"] {
        let s = Scheme::parse(spec).unwrap();
        let many = s.quantize(&cfg, &x, &[512, 512], 1).unwrap();
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap()
            .install(|| s.quantize(&cfg, &x, &[512, 512], 1).unwrap());
        assert_eq!(many, one, "{spec}");
        let t = lowp::quant::QuantizedTensor::pack(&s, &many).unwrap();
        let (mut a, mut b) = (vec![0f32; x.len()], vec![0f32; x.len()]);
        t.dequantize(&mut a).unwrap();
        many.dequantize(&mut b).unwrap();
        assert!(a.iter().zip(&b).all(|(u, v)| u.to_bits() == v.to_bits()), "{spec}");
    }
}
