//! The reference rounding against an independent oracle: for formats of at most 16 bits, list every value,
//! find the two neighbours of |x| by binary search, and apply each mode's definition (FORMATS.md §2) to
//! them. No bit manipulation, no exponent arithmetic: a different route to the same answers. Plus the
//! `half` crate's float32 -> float16/bfloat16 conversions.

mod common;

use lowp::codes::code_of;
use lowp::round::reference;
use lowp::{Format, RoundingMode};
use rayon::prelude::*;
use RoundingMode::*;

struct Grid {
    fmt: Format,
    /// Positive values the rounding may produce, ascending.
    pos: Vec<f64>,
    /// The value one spacing past max: where the next value would be.
    beyond: f64,
}

impl Grid {
    fn new(fmt: &Format) -> Grid {
        let mut pos: Vec<f64> = common::positive_grid(fmt).into_iter().filter(|&v| v > 0.0).collect();
        if !fmt.subnormals() {
            pos.retain(|&v| v >= fmt.min_normal());
        }
        // The spacing of the top binade, 2^(emax - M).
        let spacing = 2f64.powi(fmt.emax() - fmt.man_bits() as i32);
        Grid { fmt: fmt.clone(), pos, beyond: fmt.max() + spacing }
    }

    fn code_parity(&self, v: f64) -> u64 {
        if v == self.beyond {
            (code_of(&self.fmt, self.fmt.max()).unwrap() + 1) & 1
        } else {
            code_of(&self.fmt, v).unwrap() & 1
        }
    }

    fn overflow(&self, mode: RoundingMode, neg: bool) -> f64 {
        let far = match mode {
            TowardPositive => !neg,
            TowardNegative => neg,
            TowardZero | Odd => false,
            _ => true,
        };
        let f = &self.fmt;
        let m = if !far || f.saturate() {
            f.max()
        } else if f.has_inf() {
            f64::INFINITY
        } else {
            f64::NAN
        };
        if neg {
            -m
        } else {
            m
        }
    }

    fn round(&self, x: f64, mode: RoundingMode) -> f64 {
        let f = &self.fmt;
        let neg = x.is_sign_negative();
        let sign = |v: f64| if neg { -v } else { v };
        if x.is_nan() || (!f.signed() && neg && x != 0.0) {
            return f64::NAN;
        }
        if x.is_infinite() {
            return if f.has_inf() && (!f.saturate() || f.propagate_inf()) {
                x
            } else if f.saturate() && (!f.propagate_inf() || !f.has_nan()) {
                sign(f.max())
            } else {
                f64::NAN
            };
        }
        if x == 0.0 {
            return if !f.has_zero() {
                f64::NAN
            } else if f.has_neg_zero() {
                x
            } else {
                0.0
            };
        }
        let a = x.abs();
        let max = f.max();
        // Neighbours lo <= a <= hi; `beyond` stands above max.
        let (lo, hi) = if a >= max {
            (max, if a == max { max } else { self.beyond })
        } else {
            let i = self.pos.partition_point(|&v| v <= a);
            let lo = if i == 0 {
                if f.has_zero() {
                    0.0
                } else {
                    self.pos[0]
                }
            } else {
                self.pos[i - 1]
            };
            let hi = if i < self.pos.len() { self.pos[i] } else { self.beyond };
            (lo, if lo == a { a } else { hi })
        };
        if a > self.beyond && lo == max {
            // Far past the top: both neighbours overflow except for modes that truncate.
            return match mode {
                TowardZero | Odd => sign(max),
                TowardPositive if neg => sign(max),
                TowardNegative if !neg => sign(max),
                _ => self.overflow(mode, neg),
            };
        }
        let pick_hi = if lo == hi {
            false
        } else {
            let mid = (lo + hi) / 2.0;
            let flush = lo == 0.0 && !f.subnormals();
            match mode {
                NearestEven => a > mid || a == mid && (flush || self.code_parity(lo) == 1),
                NearestZero => a > mid,
                NearestAway => a >= mid,
                TowardZero => false,
                TowardPositive => !neg,
                TowardNegative => neg,
                Odd => flush || self.code_parity(lo) == 0,
                _ => unreachable!(),
            }
        };
        let r = if pick_hi { hi } else { lo };
        if r > max {
            return self.overflow(mode, neg);
        }
        if r == 0.0 {
            return if f.has_neg_zero() { sign(0.0) } else { 0.0 };
        }
        sign(r)
    }
}

fn agree(a: f64, b: f64) -> bool {
    a.to_bits() == b.to_bits() || a.is_nan() && b.is_nan()
}

#[test]
fn reference_equals_grid_oracle() {
    let mut fmts: Vec<Format> = Format::presets().into_iter().filter(|f| f.bits() <= 16).collect();
    for n in ["e3m2", "e4m3b-2", "e2m0fn", "binary8p4se", "binary8p1uf", "binary6p3ue", "chop(8,10)", "e5m2b10"] {
        fmts.push(Format::parse(n).unwrap());
    }
    let variants: Vec<Format> = fmts
        .iter()
        .flat_map(|f| {
            [(true, false, false), (false, false, false), (true, true, false), (false, true, true)]
                .map(|(sub, sat, keep)| f.clone().with_subnormals(sub).with_saturation(sat).with_propagate_inf(keep))
        })
        .collect();
    let failures: Vec<String> = variants
        .par_iter()
        .filter_map(|f| {
            let grid = Grid::new(f);
            let xs: Vec<f64> = common::inputs::<f64>(f, 20_000, 3);
            for mode in RoundingMode::DETERMINISTIC {
                for &x in &xs {
                    let want = grid.round(x, mode);
                    let got = reference::round(x, f, mode, 0);
                    if !agree(want, got) {
                        return Some(format!("{f} {mode}: x={x:e} oracle {want:e} reference {got:e}"));
                    }
                    let got32 = reference::round(x as f32, f, mode, 0) as f64;
                    if f.man_bits() <= 23
                        && f.max() <= f32::MAX as f64
                        && !agree(grid.round((x as f32) as f64, mode), got32)
                    {
                        return Some(format!("{f} {mode} float32: x={:e}", x as f32));
                    }
                }
            }
            None
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn float16_and_bfloat16_match_half_crate() {
    let h = Format::parse("float16").unwrap();
    let b = Format::parse("bfloat16").unwrap();
    let mut xs: Vec<f32> = common::inputs::<f32>(&h, 1_000_000, 11);
    xs.extend(common::inputs::<f32>(&b, 1_000_000, 12));
    for x in xs {
        let want_h = half::f16::from_f32(x).to_f32();
        let got_h = reference::round(x, &h, NearestEven, 0);
        assert!(agree(f64::from(want_h), f64::from(got_h)), "float16 x={x:e}: half {want_h:e} lowp {got_h:e}");
        let want_b = half::bf16::from_f32(x).to_f32();
        let got_b = reference::round(x, &b, NearestEven, 0);
        assert!(agree(f64::from(want_b), f64::from(got_b)), "bfloat16 x={x:e}: half {want_b:e} lowp {got_b:e}");
    }
}
