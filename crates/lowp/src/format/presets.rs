//! The one list of preset formats. Names follow ml_dtypes; aliases are what users type (FORMATS.md §1).
//! Everything that lists presets (parsing, `lowp formats`, tests) reads this table.

use super::Specials;

/// One preset: name, aliases, exponent bits, mantissa bits, bias, special-value policy, has a zero.
pub(crate) struct Preset {
    pub name: &'static str,
    pub aliases: &'static [&'static str],
    pub exp_bits: u32,
    pub man_bits: u32,
    pub bias: i32,
    pub specials: Specials,
    pub has_zero: bool,
}

const fn p(
    name: &'static str,
    aliases: &'static [&'static str],
    exp_bits: u32,
    man_bits: u32,
    bias: i32,
    specials: Specials,
) -> Preset {
    Preset { name, aliases, exp_bits, man_bits, bias, specials, has_zero: true }
}

use Specials::{Finite, Fn, Fnuz, Ieee};

pub(crate) const PRESETS: &[Preset] = &[
    p("float64", &["fp64", "double", "d"], 11, 52, 1023, Ieee),
    p("float32", &["fp32", "single", "s"], 8, 23, 127, Ieee),
    p("tf32", &[], 8, 10, 127, Ieee),
    p("float16", &["fp16", "half", "h"], 5, 10, 15, Ieee),
    p("bfloat16", &["bf16", "b"], 8, 7, 127, Ieee),
    p("float8_e5m2", &["e5m2", "q52"], 5, 2, 15, Ieee),
    p("float8_e4m3", &["e4m3", "q43"], 4, 3, 7, Ieee),
    p("float8_e3m4", &["e3m4"], 3, 4, 3, Ieee),
    p("float8_e4m3fn", &["e4m3fn"], 4, 3, 7, Fn),
    p("float8_e4m3fnuz", &["e4m3fnuz"], 4, 3, 8, Fnuz),
    p("float8_e5m2fnuz", &["e5m2fnuz"], 5, 2, 16, Fnuz),
    p("float8_e4m3b11fnuz", &["e4m3b11fnuz"], 4, 3, 11, Fnuz),
    p("float6_e3m2fn", &["fp6_e3m2", "e3m2fn"], 3, 2, 3, Finite),
    p("float6_e2m3fn", &["fp6_e2m3", "e2m3fn"], 2, 3, 1, Finite),
    p("float4_e2m1fn", &["fp4", "e2m1", "e2m1fn"], 2, 1, 1, Finite),
    Preset {
        name: "float8_e8m0fnu",
        aliases: &["e8m0", "e8m0fnu"],
        exp_bits: 8,
        man_bits: 0,
        bias: 127,
        specials: Specials::Unsigned { inf: false },
        has_zero: false,
    },
];
