use lowp::quant::Scheme;
use lowp::Rounding;
fn main() {
    let n = 1 << 22;
    let x: Vec<f32> = (0..n).map(|i| ((i as f32 * 0.618).sin()) * 0.02).collect();
    let sc = Scheme::parse("bitmod4:g128").unwrap();
    for _ in 0..10 {
        let _ = sc.quantize(&Rounding::default(), &x, &[n / 1024, 1024], 1).unwrap();
    }
}
