//! `lowp formats`, `lowp info` and `lowp values`: what the formats are.

use std::io::Write;

use anyhow::Result;
use lowp::Format;
use serde_json::{json, Value};

use crate::table::{exact, pow2, short, Align, Table};

/// Every number about a format, as JSON (shared by `formats --json` and `info --json`).
fn record(f: &Format) -> Value {
    json!({
        "name": f.name(),
        "aliases": f.aliases(),
        "bits": f.bits(),
        "signed": f.signed(),
        "exp_bits": f.exp_bits(),
        "man_bits": f.man_bits(),
        "bias": f.bias(),
        "emin": f.emin(),
        "emax": f.emax(),
        "max": f.max(),
        "min_normal": f.min_normal(),
        "min_subnormal": f.min_subnormal(),
        "epsilon": f.epsilon(),
        "unit_roundoff": f.unit_roundoff(),
        "num_codes": f.num_codes() as f64,
        "specials": f.specials().describe(),
        "has_inf": f.has_inf(),
        "has_nan": f.has_nan(),
        "has_neg_zero": f.has_neg_zero(),
        "has_zero": f.has_zero(),
        "subnormals": f.subnormals(),
        "saturate": f.saturate(),
        "overflow": overflow(f),
    })
}

/// What a finite value beyond the range becomes under round-to-nearest.
fn overflow(f: &Format) -> &'static str {
    if f.saturate() {
        "±max (saturates)"
    } else if f.has_inf() {
        "±inf"
    } else {
        "NaN"
    }
}

fn min_subnormal(f: &Format) -> String {
    if f.min_subnormal() == f.min_normal() {
        "none".into()
    } else {
        pow2(f.min_subnormal())
    }
}

pub fn formats(json: bool, out: &mut dyn Write) -> Result<()> {
    let presets = Format::presets();
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&presets.iter().map(record).collect::<Vec<_>>())?)?;
        return Ok(());
    }
    let mut t = Table::new(&[
        ("name", Align::Left),
        ("aliases", Align::Left),
        ("bits", Align::Right),
        ("E", Align::Right),
        ("M", Align::Right),
        ("bias", Align::Right),
        ("max", Align::Right),
        ("min normal", Align::Right),
        ("min subnormal", Align::Right),
        ("epsilon", Align::Right),
        ("specials", Align::Left),
    ]);
    for f in &presets {
        t.row(vec![
            f.name().into(),
            f.aliases().join(" "),
            f.bits().to_string(),
            f.exp_bits().to_string(),
            f.man_bits().to_string(),
            f.bias().to_string(),
            short(f.max()),
            pow2(f.min_normal()),
            min_subnormal(f),
            pow2(f.epsilon()),
            f.specials().describe().into(),
        ]);
    }
    write!(out, "{}", t.render())?;
    writeln!(
        out,
        "\nAlso accepted: e<E>m<M>[b<BIAS>][fn|fnuz] (e.g. e5m10, e4m3b11fnuz), binary<K>p<P><s|u><e|f> (IEEE P3109, \
         e.g. binary8p4se), chop(<t>,<emax>) (e.g. chop(11,15)). `lowp info NAME` shows one in full."
    )?;
    Ok(())
}

/// `v` exactly, followed by its power-of-two form when it has one.
fn with_pow2(v: f64) -> String {
    let p = pow2(v);
    if p.starts_with("2^") {
        format!("{} ({p})", exact(v))
    } else {
        exact(v)
    }
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

pub fn info(f: &Format, json: bool, out: &mut dyn Write) -> Result<()> {
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&record(f))?)?;
        return Ok(());
    }
    let sign = if f.signed() { "1 sign + " } else { "no sign, " };
    let rows: Vec<(&str, String)> = vec![
        ("format", f.to_string()),
        ("aliases", if f.aliases().is_empty() { "-".into() } else { f.aliases().join(", ") }),
        ("layout", format!("{sign}{} exponent + {} mantissa bits = {} bits", f.exp_bits(), f.man_bits(), f.bits())),
        ("codes", f.num_codes().to_string()),
        ("bias", f.bias().to_string()),
        ("exponents", format!("emin = {}, emax = {}", f.emin(), f.emax())),
        ("max", with_pow2(f.max())),
        ("min normal", with_pow2(f.min_normal())),
        (
            "min subnormal",
            if f.min_subnormal() == f.min_normal() {
                "none (no subnormals)".into()
            } else {
                with_pow2(f.min_subnormal())
            },
        ),
        ("epsilon", with_pow2(f.epsilon())),
        ("unit roundoff", with_pow2(f.unit_roundoff())),
        ("specials", f.specials().describe().into()),
        ("has inf", yes(f.has_inf()).into()),
        ("has NaN", yes(f.has_nan()).into()),
        ("has 0", yes(f.has_zero()).into()),
        ("has -0", yes(f.has_neg_zero()).into()),
        ("overflow gives", overflow(f).into()),
    ];
    let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    for (k, v) in rows {
        writeln!(out, "{k:width$}  {v}")?;
    }
    Ok(())
}

fn class(f: &Format, v: f64) -> &'static str {
    if v.is_nan() {
        "NaN"
    } else if v.is_infinite() {
        "inf"
    } else if v == 0.0 {
        "zero"
    } else if v.abs() < f.min_normal() {
        "subnormal"
    } else {
        "normal"
    }
}

pub fn values(f: &Format, json: bool, out: &mut dyn Write) -> Result<()> {
    if f.bits() > 16 {
        // The core's message calls this an invalid option; here it is a limit of this command.
        anyhow::bail!(
            "{} has {} bits ({} codes); `lowp values` lists formats of at most 16 bits (see `lowp info {}`)",
            f.name(),
            f.bits(),
            f.num_codes(),
            f.name()
        );
    }
    let values = f.values()?;
    let digits = f.bits().div_ceil(4) as usize;
    let hex = |c: u64| format!("0x{c:0digits$x}");
    if json {
        let recs: Vec<Value> =
            values.iter().map(|&(c, v)| json!({"code": c, "hex": hex(c), "value": v, "class": class(f, v)})).collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&recs)?)?;
        return Ok(());
    }
    writeln!(out, "{f}: {} codes ({} listed)", f.num_codes(), values.len())?;
    let mut t = Table::new(&[("code", Align::Left), ("value", Align::Right), ("class", Align::Left)]);
    for &(c, v) in &values {
        t.row(vec![hex(c), exact(v), class(f, v).into()]);
    }
    write!(out, "{}", t.render())?;
    Ok(())
}
