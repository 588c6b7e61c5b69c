//! The scheme-string entry point: every documented example parses, prints back to itself, and quantizes
//! exactly as the scheme's own type does.

use lowp::quant::{Mx, Quantized, Scheme};
use lowp::Rounding;

const NAMES: [&str; 16] = [
    "int4:g128:asym",
    "int8:channel:sym",
    "int8:tensor:pct99.9",
    "int4:g64:sym:scale=bf16:mse",
    "fixed:q4.4",
    "fixed:q1.15:wrap",
    "mxfp4",
    "mxfp6_e2m3",
    "mxfp8_e5m2",
    "mxint8:b16",
    "nvfp4",
    "bfp8:b16",
    "bitmod4:g128",
    "nf4:g64",
    "codebook(-1,-0.5,0,0.5,1):g32",
    "nf4:g32:scale=bf16",
];

#[test]
fn every_documented_scheme_parses_round_trips_and_dispatches() {
    let x: Vec<f64> = (0..512).map(|i| ((i * 37 % 101) as f64 - 50.0) / 7.0).collect();
    for name in NAMES {
        let s = Scheme::parse(name).unwrap();
        assert_eq!(Scheme::parse(&s.to_string()).unwrap(), s, "{name} -> {s}");
        let q = s.quantize(&Rounding::default(), &x, &[4, 128], 1).unwrap();
        let mut y = vec![0f64; x.len()];
        q.dequantize(&mut y).unwrap();
        let err = x.iter().zip(&y).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        // (wrap-around sends values beyond q1.15's range far away: that is what it is for)
        assert!((err < 2.0 || name.ends_with("wrap")) && q.bits_per_element() <= 16.0, "{name}: max error {err}");
    }
    let direct = Mx::parse("mxfp4").unwrap().quantize(&Rounding::default(), &x, &[4, 128], 1).unwrap();
    assert_eq!(
        Scheme::parse("mxfp4").unwrap().quantize(&Rounding::default(), &x, &[4, 128], 1).unwrap(),
        Quantized::Mx(direct)
    );
}

#[test]
fn unknown_schemes_say_what_is_accepted() {
    for bad in ["float4", "mxfp5", "int4:g0", "nvfp8", "q4"] {
        let e = Scheme::parse(bad).unwrap_err().to_string();
        assert!(e.contains("Accepted") || e.contains("expected") || e.contains("at least one"), "{bad}: {e}");
    }
}
