use lowp::quant::{QuantizedTensor, Scheme};
use lowp::{Format, Rounding};
use std::time::Instant;
fn t<R>(name: &str, n: usize, mut f: impl FnMut() -> R) -> R {
    let mut best = f64::MAX;
    let mut r = f();
    for _ in 0..5 {
        let s = Instant::now();
        r = f();
        best = best.min(s.elapsed().as_secs_f64());
    }
    println!("{name:40} {:8.0} M/s", n as f64 / best / 1e6);
    r
}
fn main() {
    let n = 1 << 24;
    let x: Vec<f32> = (0..n).map(|i| ((i as f32 * 0.618).sin()) * 0.02).collect();
    let mut y = vec![0f32; n];
    t("copy", n, || y.copy_from_slice(&x));
    let cfg = Rounding::default();
    let f = Format::parse("e2m1").unwrap().with_saturation(true);
    let xd: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    let mut c = vec![0u8; n];
    t("encode e2m1 f64", n, || lowp::encode(&f, &cfg, &xd, &mut c).unwrap());
    t("encode e2m1 f32", n, || lowp::encode(&f, &cfg, &x, &mut c).unwrap());
    for s in ["mxfp4", "nvfp4", "int4:g128:asym", "bitmod4:g128"] {
        let sc = Scheme::parse(s).unwrap();
        let q = t(&format!("{s} scheme.quantize"), n, || sc.quantize(&cfg, &x, &[n / 1024, 1024], 1).unwrap());
        let p = t(&format!("{s} pack"), n, || QuantizedTensor::pack(&sc, &q).unwrap());
        t(&format!("{s} QuantizedTensor::quantize"), n, || {
            QuantizedTensor::quantize(&sc, &cfg, &x, &[n / 1024, 1024], 1).unwrap()
        });
        t(&format!("{s} dequantize"), n, || p.dequantize(&mut y).unwrap());
    }
}
