//! Bad input gets a clear error naming what was wrong and what is accepted; never a panic.

use lowp::codes::{decode, pack, unpack};
use lowp::{encode, round, Error, Format, Rounding, RoundingMode, Specials};

#[test]
fn unknown_names_list_what_is_accepted_and_suggest() {
    let e = Format::parse("flaot16").unwrap_err().to_string();
    assert!(e.contains("flaot16") && e.contains("did you mean `float16`") && e.contains("e<E>m<M>"), "{e}");
    let e = RoundingMode::parse("nearest_eve").unwrap_err().to_string();
    assert!(e.contains("did you mean `nearest_even`") && e.contains("stochastic_equal"), "{e}");
    assert!(RoundingMode::parse("10").is_err());
    assert!(RoundingMode::parse("stochastic:0").is_err());
    assert!(RoundingMode::parse("stochastic:65").is_err());
}

#[test]
fn impossible_parameters_are_errors() {
    for (e, m) in [(0, 3), (12, 3), (5, 53)] {
        assert!(matches!(Format::custom(e, m, None, Specials::Ieee), Err(Error::InvalidFormat(_))), "e{e}m{m}");
    }
    let msg = Format::custom(4, 0, None, Specials::Ieee).unwrap_err().to_string();
    assert!(msg.contains("NaN"), "{msg}");
    assert!(Format::custom(1, 0, None, Specials::Fn).is_err());
    assert!(Format::custom(5, 2, Some(-2000), Specials::Ieee).is_err());
    assert!(Format::from_chop(0, 15).is_err());
    assert!(Format::from_chop(54, 15).is_err());
    assert!(Format::parse("binary17p4sf").is_err());
    assert!(Format::parse("binary8p0sf").is_err());
}

#[test]
fn formats_more_precise_than_the_data_are_rejected() {
    let f64fmt = Format::parse("float64").unwrap();
    let mut y = [0f32; 1];
    let e = round(&f64fmt, &Rounding::default(), &[1.0f32], &mut y).unwrap_err().to_string();
    assert!(e.contains("float32") && e.contains("mantissa"), "{e}");
    let wide = Format::parse("e11m10").unwrap();
    assert!(round(&wide, &Rounding::default(), &[1.0f32], &mut y).is_err());
    assert!(round(&wide, &Rounding::default(), &[1.0f64], &mut [0.0f64]).is_ok());
    let e = round(&Format::parse("fp16").unwrap(), &Rounding::new(RoundingMode::StochasticBits(40)), &[1.0f32], &mut y);
    assert!(e.is_err());
}

#[test]
fn codes_that_do_not_fit_are_errors() {
    let h = Format::parse("float16").unwrap();
    let mut c8 = [0u8; 1];
    assert!(encode(&h, &Rounding::default(), &[1.0f32], &mut c8).is_err());
    let e2m1 = Format::parse("e2m1").unwrap();
    let err = encode(&e2m1, &Rounding::default(), &[1.0f32, f32::NAN], &mut [0u8; 2]).unwrap_err();
    assert!(matches!(err, Error::NotRepresentable { index: 1, .. }), "{err}");
    let err = decode(&e2m1, &[3u8, 16], &mut [0f32; 2]).unwrap_err();
    assert!(matches!(err, Error::CodeTooWide { index: 1, code: 16, bits: 4 }), "{err}");
    let err = round(&h, &Rounding::default(), &[1.0f32; 3], &mut [0f32; 2]).unwrap_err();
    assert!(matches!(err, Error::LengthMismatch { input: 3, output: 2 }));
    let flip = Rounding::default().with_flip(1.5, lowp::FlipScope::Code);
    assert!(round(&h, &flip, &[1.0f32], &mut [0f32]).is_err());
    assert!(encode(&h.clone().with_exponent_limit(false), &Rounding::default(), &[1.0f32], &mut [0u16]).is_err());
    assert!(pack(&[1, 2], 9).is_err());
    assert!(unpack(&[0], 8, 2).is_err());
}
