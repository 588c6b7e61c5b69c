//! Opt-in (`cargo test --release -p lowp --test full_sweep -- --ignored`): every one of the 2^32 float32
//! bit patterns through the kernel and the reference, for every preset of 8 bits or fewer. Modes:
//! `LOWP_SWEEP_MODES` (comma-separated names, default `nearest_even`; `all` for the seven deterministic
//! modes). `LOWP_SWEEP_FORMATS` (comma-separated names) limits the formats. About 10 minutes per mode on 2
//! cores for all of them, about one per format.

use lowp::round::{reference, round_with_isa};
use lowp::{Format, Isa, Rounding, RoundingMode};
use rayon::prelude::*;

#[test]
#[ignore = "opt-in: 2^32 inputs per format and mode; run with --ignored"]
fn every_float32_bit_pattern() {
    let modes: Vec<RoundingMode> = match std::env::var("LOWP_SWEEP_MODES").as_deref() {
        Ok("all") => RoundingMode::DETERMINISTIC.to_vec(),
        Ok(list) => list.split(',').map(|m| RoundingMode::parse(m).unwrap()).collect(),
        Err(_) => vec![RoundingMode::NearestEven],
    };
    let fmts: Vec<Format> = match std::env::var("LOWP_SWEEP_FORMATS").as_deref() {
        Ok(list) => list.split(',').map(|f| Format::parse(f).unwrap()).collect(),
        Err(_) => Format::presets().into_iter().filter(|f| f.bits() <= 8).collect(),
    };
    const BLOCK: u64 = 1 << 20;
    for fmt in &fmts {
        for &mode in &modes {
            let bad = (0..(1u64 << 32) / BLOCK).into_par_iter().find_map_any(|b| {
                let xs: Vec<f32> = (b * BLOCK..(b + 1) * BLOCK).map(|u| f32::from_bits(u as u32)).collect();
                let mut y = vec![0f32; xs.len()];
                round_with_isa(Isa::detect(), fmt, &Rounding::new(mode), &xs, &mut y).unwrap();
                xs.iter().zip(&y).find_map(|(x, y)| {
                    let want = reference::round(*x, fmt, mode, 0);
                    (want.to_bits() != y.to_bits())
                        .then(|| format!("{fmt} {mode}: x={:#x} want {want:e} got {y:e}", x.to_bits()))
                })
            });
            assert!(bad.is_none(), "{}", bad.unwrap());
            eprintln!("{fmt} {mode}: all 2^32 float32 inputs agree");
        }
    }
}
