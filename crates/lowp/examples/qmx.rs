use lowp::quant::{QuantizedTensor, Scheme};
use lowp::Rounding;
fn main() {
    let s = std::env::args().nth(1).unwrap_or("mxfp4".into());
    let n = 1 << 24;
    let x: Vec<f32> = (0..n).map(|i| ((i as f32 * 0.618).sin())).collect();
    let sc = Scheme::parse(&s).unwrap();
    for _ in 0..10 {
        let _ = QuantizedTensor::quantize(&sc, &Rounding::default(), &x, &[n / 1024, 1024], 1).unwrap();
    }
}
