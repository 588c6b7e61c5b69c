//! Aligned text tables and the number formats the tables use.

/// How a column's cells are aligned.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// A table printed with columns padded to their widest cell.
pub struct Table {
    header: Vec<&'static str>,
    align: Vec<Align>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(columns: &[(&'static str, Align)]) -> Table {
        Table {
            header: columns.iter().map(|c| c.0).collect(),
            align: columns.iter().map(|c| c.1).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.header.len());
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let width =
            |i: usize| self.rows.iter().map(|r| r[i].chars().count()).chain([self.header[i].len()]).max().unwrap_or(0);
        let widths: Vec<usize> = (0..self.header.len()).map(width).collect();
        let line = |cells: &mut dyn Iterator<Item = &str>| {
            let mut s = String::new();
            for (i, c) in cells.enumerate() {
                if i > 0 {
                    s.push_str("  ");
                }
                let pad = widths[i].saturating_sub(c.chars().count());
                match self.align[i] {
                    Align::Left => {
                        s.push_str(c);
                        s.push_str(&" ".repeat(pad));
                    }
                    Align::Right => {
                        s.push_str(&" ".repeat(pad));
                        s.push_str(c);
                    }
                }
            }
            s.truncate(s.trim_end().len());
            s.push('\n');
            s
        };
        let mut out = line(&mut self.header.iter().copied());
        let rule: Vec<String> = widths.iter().map(|&w| "-".repeat(w)).collect();
        out.push_str(&line(&mut rule.iter().map(String::as_str)));
        for r in &self.rows {
            out.push_str(&line(&mut r.iter().map(String::as_str)));
        }
        out
    }
}

/// A value exactly when it is short (integers, short binary fractions), else to 4 significant digits.
pub fn short(v: f64) -> String {
    if !v.is_finite() {
        return special(v);
    }
    let exact = format!("{v}");
    if exact.len() <= 8 {
        exact
    } else {
        format!("{v:.3e}")
    }
}

/// The shortest string that reads back as `v` (scientific notation for very small or large values).
pub fn exact(v: f64) -> String {
    if !v.is_finite() {
        return special(v);
    }
    if v.fract() == 0.0 && v.abs() < 1e16 {
        format!("{v}") // `448`, `-0`: Debug would print `448.0`
    } else {
        format!("{v:?}")
    }
}

fn special(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v > 0.0 {
        "inf".into()
    } else {
        "-inf".into()
    }
}

/// `2^k` for an exact power of two, else [`short`].
pub fn pow2(v: f64) -> String {
    if v > 0.0 && v.is_finite() {
        let bits = v.to_bits();
        let (field, man) = ((bits >> 52) as i32, bits & ((1u64 << 52) - 1));
        if field > 0 && man == 0 {
            return format!("2^{}", field - 1023);
        }
        if field == 0 && man.is_power_of_two() {
            return format!("2^{}", -1074 + man.trailing_zeros() as i32);
        }
    }
    short(v)
}

/// Scientific notation with 3 decimals; plain `0` for zero.
pub fn sci(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if !v.is_finite() {
        special(v)
    } else {
        format!("{v:.3e}")
    }
}

/// A fraction in [0, 1] as a percentage; small nonzero fractions stay visible.
pub fn pct(f: f64) -> String {
    if f == 0.0 {
        "0".into()
    } else if f >= 1e-4 {
        format!("{:.2}%", f * 100.0)
    } else {
        format!("{:.1e}%", f * 100.0)
    }
}

/// A rate in elements per second, in millions.
pub fn mega(v: f64) -> String {
    if v >= 1e5 {
        format!("{:.0}", v / 1e6)
    } else {
        format!("{:.2}", v / 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(pow2(1.0 / 16384.0), "2^-14");
        assert_eq!(pow2(f64::from_bits(1)), "2^-1074");
        assert_eq!(pow2(448.0), "448");
        assert_eq!(short(65504.0), "65504");
        assert_eq!(short(3.3895313892515355e38), "3.390e38");
        assert_eq!(pct(0.5), "50.00%");
        assert_eq!(pct(1e-7), "1.0e-5%");
    }

    #[test]
    fn table_aligns() {
        let mut t = Table::new(&[("a", Align::Left), ("num", Align::Right)]);
        t.row(vec!["long name".into(), "1".into()]);
        assert_eq!(t.render(), "a          num\n---------  ---\nlong name    1\n");
    }
}
