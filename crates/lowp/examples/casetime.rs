use lowp::*;
fn main() {
    let f = Format::parse("float16").unwrap();
    let xs: Vec<f32> = (0..2_000_000u32).map(|i| f32::from_bits(i.wrapping_mul(2654435761))).collect();
    let mode = RoundingMode::NearestEven;
    let t = std::time::Instant::now();
    let want: Vec<f32> = xs.iter().map(|&x| round::reference::round(x, &f, mode, 0)).collect();
    println!("ref {:?}", t.elapsed());
    for isa in Isa::available() {
        let t = std::time::Instant::now();
        let mut got = vec![0f32; xs.len()];
        round::round_with_isa(isa, &f, &Rounding::new(mode), &xs, &mut got).unwrap();
        println!("{isa:?} {:?} {}", t.elapsed(), got == want);
        let t = std::time::Instant::now();
        let mut c = vec![0u64; xs.len()];
        round::encode_with_isa(isa, &f, &Rounding::new(mode), &xs, &mut c).unwrap();
        println!("enc {isa:?} {:?}", t.elapsed());
    }
    let t = std::time::Instant::now();
    let c: Vec<u64> = want.iter().map(|w| codes::code_of(&f, *w as f64).unwrap_or(0)).collect();
    println!("code_of {:?}", t.elapsed());
    let t = std::time::Instant::now();
    let mut back = vec![0f32; xs.len()];
    decode(&f, &c, &mut back).unwrap();
    println!("decode {:?}", t.elapsed());
}
