//! The fast kernels equal the reference bit for bit: every preset x every deterministic mode x subnormals
//! on/off x saturation on/off, on float32 and float64 data, on every instruction set this CPU has, over
//! the input sets of `common::inputs` (10^6 random bit patterns each). Encoding is checked against the
//! code of the reference value, and decoding against the reference value.

mod common;

use lowp::codes::{code_of, decode};
use lowp::round::{encode_with_isa, reference, round_with_isa};
use lowp::{round_in_place, Element, Format, Isa, Rounding, RoundingMode};
use rayon::prelude::*;

fn same<T: Element>(a: T, b: T) -> bool {
    a.bits64() == b.bits64()
}

/// Checks one (format, mode) on `xs`; returns a description of the first mismatch.
fn check<T: Element>(fmt: &Format, mode: RoundingMode, xs: &[T]) -> Result<(), String> {
    let cfg = Rounding::new(mode);
    let want: Vec<T> = xs.iter().map(|&x| reference::round(x, fmt, mode, 0)).collect();
    for isa in Isa::available() {
        let mut got = vec![T::from_f64(0.0); xs.len()];
        round_with_isa(isa, fmt, &cfg, xs, &mut got).map_err(|e| e.to_string())?;
        if let Some(i) = (0..xs.len()).find(|&i| !same(got[i], want[i])) {
            return Err(format!(
                "round {isa:?} {fmt} {mode} {}: x={:e} ({:#x}) want {:e} ({:#x}) got {:e} ({:#x})",
                T::DTYPE,
                xs[i].to_f64(),
                xs[i].bits64(),
                want[i].to_f64(),
                want[i].bits64(),
                got[i].to_f64(),
                got[i].bits64()
            ));
        }
    }
    let mut inplace = xs.to_vec();
    round_in_place(fmt, &cfg, &mut inplace).map_err(|e| e.to_string())?;
    if let Some(i) = (0..xs.len()).find(|&i| !same(inplace[i], want[i])) {
        return Err(format!("round_in_place {fmt} {mode}: x={:e}", xs[i].to_f64()));
    }
    if !fmt.exponent_limit() {
        return Ok(()); // no codes without an exponent range
    }
    // Codes. Formats without NaN reject NaN inputs (tested elsewhere), so leave them out here.
    let (cx, cw): (Vec<T>, Vec<T>) =
        xs.iter().zip(&want).filter(|(x, _)| fmt.has_nan() || !x.to_f64().is_nan()).map(|(x, w)| (*x, *w)).unzip();
    let want_codes = cw
        .iter()
        .map(|w| {
            code_of(fmt, w.to_f64()).ok_or_else(|| format!("reference value {:e} of {fmt} has no code", w.to_f64()))
        })
        .collect::<Result<Vec<u64>, String>>()?;
    for isa in Isa::available() {
        let mut codes = vec![0u64; cx.len()];
        encode_with_isa(isa, fmt, &cfg, &cx, &mut codes).map_err(|e| e.to_string())?;
        if let Some(i) = (0..cx.len()).find(|&i| codes[i] != want_codes[i]) {
            return Err(format!(
                "encode {isa:?} {fmt} {mode} {}: x={:e} ({:#x}) want code {:#x} got {:#x}",
                T::DTYPE,
                cx[i].to_f64(),
                cx[i].bits64(),
                want_codes[i],
                codes[i]
            ));
        }
    }
    let mut back = vec![T::from_f64(0.0); cx.len()];
    if decode(fmt, &want_codes, &mut back).is_ok() {
        for i in 0..cx.len() {
            let ok = if cw[i].to_f64().is_nan() { back[i].to_f64().is_nan() } else { same(back[i], cw[i]) };
            if !ok {
                return Err(format!(
                    "decode {fmt}: code {:#x} gave {:e}, want {:e}",
                    want_codes[i],
                    back[i].to_f64(),
                    cw[i].to_f64()
                ));
            }
        }
    }
    Ok(())
}

fn sweep<T: Element>() {
    let cases: Vec<(Format, RoundingMode)> = Format::presets()
        .into_iter()
        .filter(|f| f.man_bits() <= T::MAN_BITS && f.max() <= T::MAX)
        .flat_map(|f| {
            [(true, false), (false, false), (true, true), (false, true)]
                .map(|(sub, sat)| f.clone().with_subnormals(sub).with_saturation(sat))
        })
        .flat_map(|f| RoundingMode::DETERMINISTIC.map(|m| (f.clone(), m)))
        .collect();
    let inputs: std::collections::HashMap<String, Vec<T>> = Format::presets()
        .into_par_iter()
        .map(|f| (f.name().to_string(), common::inputs::<T>(&f, 1_000_000, f.bits() as u64)))
        .collect();
    let failures: Vec<String> = cases.par_iter().filter_map(|(f, m)| check(f, *m, &inputs[f.name()]).err()).collect();
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

#[test]
fn float32_data_every_preset_mode_and_option() {
    sweep::<f32>();
}

#[test]
fn float64_data_every_preset_mode_and_option() {
    sweep::<f64>();
}

/// Custom, P3109, chop and no-exponent-limit formats through the same checks (fewer random inputs).
#[test]
fn other_formats_match_reference() {
    let names = [
        "e5m10",
        "e8m7",
        "e4m3",
        "e11m20",
        "e3m2",
        "e6m3fn",
        "e5m2b10",
        "e4m3b-2",
        "e2m0fn",
        "e3m0fnuz",
        "e5m0fn",
        "e4m0b4fnuz",
        "binary8p1se",
        "binary8p4se",
        "binary8p3sf",
        "binary8p1uf",
        "binary8p4ue",
        "binary6p3sf",
        "binary16p11se",
        "binary4p2uf",
        "chop(11,15)",
        "chop(8,10)",
        "chop(4,7)",
        "e8m23",
        "e11m52",
    ];
    let mut fmts: Vec<Format> = names.iter().map(|n| Format::parse(n).unwrap()).collect();
    fmts.push(Format::parse("float16").unwrap().with_exponent_limit(false));
    fmts.push(Format::parse("e4m3fn").unwrap().with_exponent_limit(false));
    fmts.push(Format::parse("e5m2").unwrap().with_saturation(true).with_propagate_inf(true));
    fmts.push(Format::parse("e4m3fn").unwrap().with_saturation(true).with_propagate_inf(true));
    let failures: Vec<String> = fmts
        .par_iter()
        .flat_map(|f| RoundingMode::DETERMINISTIC.map(|m| (f.clone(), m)).to_vec())
        .filter_map(|(f, m)| {
            if std::env::var("LOWP_ONLY").is_ok_and(|o| !f.to_string().contains(&o)) {
                return None;
            }
            let mut errs = Vec::new();
            if f.man_bits() <= 23 && f.max() <= f32::MAX as f64 {
                errs.extend(check::<f32>(&f, m, &common::inputs::<f32>(&f, 100_000, 5)).err());
            }
            errs.extend(check::<f64>(&f, m, &common::inputs::<f64>(&f, 100_000, 6)).err());
            (!errs.is_empty()).then(|| errs.join("\n"))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Outputs of 16 MB and more take the non-temporal-store path, with a scalar head up to the first cache line;
/// check it, from a misaligned start, against the reference.
#[test]
fn large_outputs_through_the_streaming_path() {
    let n = (16 << 20) / 4 + 1000;
    let mut rng = common::TestRng::new(77);
    let xs: Vec<f32> = (0..n)
        .map(|i| {
            let r = rng.next_u64();
            if i % 7 == 0 {
                f32::from_bits(r as u32)
            } else {
                ((r >> 11) as f64 / 2f64.powi(53) * 20.0 - 10.0) as f32
            }
        })
        .collect();
    let modes =
        RoundingMode::DETERMINISTIC.into_iter().chain([RoundingMode::Stochastic, RoundingMode::StochasticEqual]);
    for name in ["e4m3fn", "e2m1", "bfloat16"] {
        let fmt = Format::parse(name).unwrap();
        for mode in modes.clone() {
            for offset in [0usize, 3] {
                let src = &xs[offset..];
                let mut out = vec![0f32; n];
                let dst = &mut out[offset..];
                lowp::round(&fmt, &Rounding::new(mode).with_seed(9), src, dst).unwrap();
                for (i, (x, y)) in src.iter().zip(dst.iter()).enumerate() {
                    let want = reference::round(*x, &fmt, mode, lowp::round::rng::draw(9, 0, i as u64, 32));
                    assert_eq!(want.to_bits(), y.to_bits(), "{name} {mode} offset {offset} element {i} x={x:e}");
                }
            }
        }
    }
}
