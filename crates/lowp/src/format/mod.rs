//! What a number format is: sign, exponent and mantissa widths, bias, special values, and the options that
//! change how values are rounded into it (subnormals, saturation, exponent limit).
//!
//! Formats are built from a name ([`Format::parse`]) or from parameters ([`Format::custom`],
//! [`Format::from_chop`]). Names accepted by `parse`:
//!
//! | form | example | meaning |
//! |---|---|---|
//! | preset or alias | `float16`, `bf16`, `e4m3fn`, `fp4` | FORMATS.md §1 |
//! | `e<E>m<M>[b<BIAS>][fn\|fnuz]` | `e5m10`, `e4m3b11fnuz`, `e6m3fn` | custom; IEEE specials unless a suffix says otherwise; bias defaults to 2^(E-1)-1 |
//! | `binary<K>p<P><s\|u><e\|f>` | `binary8p4se` | IEEE P3109, K <= 16 |
//! | `chop(<t>,<emax>)` | `chop(11,15)` | precision t (hidden bit counted), emin = 1 - emax, IEEE specials |

mod presets;

use crate::error::{suggest, Error, Result};
pub(crate) use presets::PRESETS;

/// How a format spends its codes on special values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Specials {
    /// IEEE 754: the all-ones exponent holds ±inf (mantissa 0) and NaNs; ±0.
    Ieee,
    /// No infinities; the all-ones code (both signs) is NaN; ±0 (OCP `e4m3fn`).
    Fn,
    /// No infinities, no -0: the code of -0 is the single NaN (`fnuz`, P3109 signed finite).
    Fnuz,
    /// Every code is a finite number; ±0 (`e2m1fn`, `e3m2fn`, `e2m3fn`).
    Finite,
    /// P3109 signed extended: like [`Specials::Fnuz`], with ±inf in the largest magnitude code.
    Extended,
    /// No sign bit; the all-ones code is NaN; `inf` puts +inf in the code below it (P3109 unsigned).
    Unsigned {
        /// Whether +inf exists.
        inf: bool,
    },
}

impl Specials {
    /// The short name used in tables.
    pub fn describe(self) -> &'static str {
        match self {
            Specials::Ieee => "IEEE",
            Specials::Fn => "fn: no inf, NaN=all ones",
            Specials::Fnuz => "fnuz: no inf, no -0, NaN=0x80..",
            Specials::Finite => "none: all finite",
            Specials::Extended => "P3109 extended: no -0, NaN=0x80.., inf=top",
            Specials::Unsigned { inf: false } => "unsigned, NaN=all ones",
            Specials::Unsigned { inf: true } => "unsigned, NaN=all ones, inf=all ones-1",
        }
    }
}

/// A number format plus the options that govern rounding into it.
///
/// # Examples
/// ```
/// use lowp::Format;
/// let f = Format::parse("float8_e4m3fn")?;
/// assert_eq!(f.max(), 448.0);
/// assert_eq!(f.bits(), 8);
/// let g = Format::parse("e5m10")?.with_subnormals(false);
/// assert_eq!(g.min_subnormal(), g.min_normal());
/// # Ok::<(), lowp::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Format {
    name: String,
    exp_bits: u32,
    man_bits: u32,
    bias: i32,
    /// A chop format's maximum exponent, when below what the layout reaches.
    emax_limit: Option<i32>,
    specials: Specials,
    has_zero: bool,
    subnormals: bool,
    saturate: bool,
    propagate_inf: bool,
    exponent_limit: bool,
}

impl Format {
    /// A format from its parameters. `bias` defaults to 2^(E-1)-1.
    ///
    /// # Examples
    /// ```
    /// use lowp::{Format, Specials};
    /// let f = Format::custom(5, 10, None, Specials::Ieee)?;
    /// assert_eq!(f.max(), 65504.0);
    /// assert!(Format::custom(0, 3, None, Specials::Ieee).is_err());
    /// # Ok::<(), lowp::Error>(())
    /// ```
    pub fn custom(exp_bits: u32, man_bits: u32, bias: Option<i32>, specials: Specials) -> Result<Format> {
        Self::build(exp_bits, man_bits, bias, specials, true, None)
    }

    /// A format in MATLAB chop / CPFloat terms: precision `t` (hidden bit counted) and maximum exponent
    /// `emax`, with emin = 1 - emax and IEEE specials. Exponent bits are the fewest that hold the range.
    ///
    /// # Examples
    /// ```
    /// use lowp::Format;
    /// let half = Format::from_chop(11, 15)?;
    /// assert_eq!((half.exp_bits(), half.man_bits(), half.max()), (5, 10, 65504.0));
    /// # Ok::<(), lowp::Error>(())
    /// ```
    pub fn from_chop(t: u32, emax: i32) -> Result<Format> {
        if t == 0 || t > 53 {
            return Err(Error::InvalidFormat(format!("chop precision t={t} must be in 1..=53 (hidden bit counted)")));
        }
        if !(1..=1023).contains(&emax) {
            return Err(Error::InvalidFormat(format!("chop emax={emax} must be in 1..=1023")));
        }
        // Fewest exponent bits E whose IEEE layout reaches emax with bias = emax: 2^E - 2 >= 2 emax.
        let mut e = 1;
        while (1i64 << e) - 2 < 2 * i64::from(emax) {
            e += 1;
        }
        let mut f = Self::build(e, t - 1, Some(emax), Specials::Ieee, true, Some(emax))?;
        f.name = format!("chop({t},{emax})");
        Ok(f)
    }

    fn build(
        exp_bits: u32,
        man_bits: u32,
        bias: Option<i32>,
        specials: Specials,
        has_zero: bool,
        emax: Option<i32>,
    ) -> Result<Format> {
        if !(1..=11).contains(&exp_bits) {
            return Err(Error::InvalidFormat(format!("exponent bits E={exp_bits} must be in 1..=11")));
        }
        if man_bits > 52 {
            return Err(Error::InvalidFormat(format!("mantissa bits M={man_bits} must be in 0..=52")));
        }
        let signed = !matches!(specials, Specials::Unsigned { .. });
        let bits = u32::from(signed) + exp_bits + man_bits;
        if bits > 64 {
            return Err(Error::InvalidFormat(format!("{bits} bits in all; at most 64 are supported")));
        }
        if specials == Specials::Ieee && man_bits == 0 {
            return Err(Error::InvalidFormat(
                "IEEE specials need at least one mantissa bit to tell NaN from inf; use fn or fnuz".into(),
            ));
        }
        let bias = bias.unwrap_or((1 << (exp_bits - 1)) - 1);
        let mut f = Format {
            name: String::new(),
            exp_bits,
            man_bits,
            bias,
            emax_limit: emax,
            specials,
            has_zero,
            subnormals: has_zero,
            saturate: specials == Specials::Finite,
            propagate_inf: false,
            exponent_limit: true,
        };
        if f.max_mag_code() < 1 {
            return Err(Error::InvalidFormat(format!(
                "E={exp_bits}, M={man_bits} with {} special values leaves no positive finite value",
                specials.describe()
            )));
        }
        let emax = f.emax();
        if emax > 1023 || f.emin() - (man_bits as i32) < -1074 {
            return Err(Error::InvalidFormat(format!(
                "bias {bias} puts the exponent range [{}, {emax}] outside what float64 can hold ([-1074, 1023])",
                f.emin() - man_bits as i32
            )));
        }
        let suffix = match specials {
            Specials::Fn => "fn",
            Specials::Fnuz => "fnuz",
            _ => "",
        };
        let default_bias = (1 << (exp_bits - 1)) - 1;
        let bias_part = if bias == default_bias { String::new() } else { format!("b{bias}") };
        f.name = format!("e{exp_bits}m{man_bits}{bias_part}{suffix}");
        Ok(f)
    }

    /// Parses a preset, an alias, or a name pattern (see the module docs). Case-insensitive.
    ///
    /// # Examples
    /// ```
    /// use lowp::Format;
    /// assert_eq!(Format::parse("bf16")?.name(), "bfloat16");
    /// assert_eq!(Format::parse("binary8p3sf")?.max(), 57344.0);
    /// let err = Format::parse("float61").unwrap_err().to_string();
    /// assert!(err.contains("did you mean"));
    /// # Ok::<(), lowp::Error>(())
    /// ```
    pub fn parse(name: &str) -> Result<Format> {
        let key = name.trim().to_ascii_lowercase();
        if let Some(p) = PRESETS.iter().find(|p| p.name == key || p.aliases.contains(&key.as_str())) {
            return Ok(Self::preset(p));
        }
        let parsed = if key.starts_with("binary") {
            parse_p3109(&key)
        } else if key.starts_with("chop(") {
            parse_chop(&key)
        } else if key.starts_with('e') {
            parse_custom(&key)
        } else {
            None
        };
        match parsed {
            Some(r) => r,
            None => Err(Error::UnknownFormat {
                name: name.to_string(),
                hint: suggest(
                    &key,
                    PRESETS.iter().flat_map(|p| std::iter::once(p.name).chain(p.aliases.iter().copied())),
                ),
            }),
        }
    }

    pub(crate) fn preset(p: &presets::Preset) -> Format {
        let mut f = Self::build(p.exp_bits, p.man_bits, Some(p.bias), p.specials, p.has_zero, None)
            .expect("preset table entries are valid formats");
        f.name = p.name.to_string();
        f
    }

    /// Every preset, in table order.
    pub fn presets() -> Vec<Format> {
        PRESETS.iter().map(Self::preset).collect()
    }

    /// Aliases of a preset name (empty for non-presets).
    pub fn aliases(&self) -> &'static [&'static str] {
        PRESETS.iter().find(|p| p.name == self.name).map_or(&[], |p| p.aliases)
    }

    // ----- options ------------------------------------------------------------------------------------

    /// Subnormals on (default) or off. Off: values below the smallest normal round to {0, ±min_normal}.
    pub fn with_subnormals(mut self, on: bool) -> Format {
        self.subnormals = on && self.has_zero;
        self
    }

    /// Saturation: overflow clamps to ±max instead of giving inf or NaN; ±inf inputs also give ±max unless
    /// [`Format::with_propagate_inf`] is set. Always on for formats with neither inf nor NaN.
    pub fn with_saturation(mut self, on: bool) -> Format {
        self.saturate = on || self.specials == Specials::Finite;
        self
    }

    /// With saturation: keep ±inf inputs as ±inf (NaN in formats without infinities).
    pub fn with_propagate_inf(mut self, on: bool) -> Format {
        self.propagate_inf = on;
        self
    }

    /// `false` removes the exponent range (chop's `explim = 0`): only the significand is rounded, to M+1
    /// bits, and there is no overflow, underflow or subnormal range. Codes cannot be produced then.
    pub fn with_exponent_limit(mut self, on: bool) -> Format {
        self.exponent_limit = on;
        self
    }

    // ----- plain accessors ----------------------------------------------------------------------------

    /// Canonical name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Exponent field width E.
    pub fn exp_bits(&self) -> u32 {
        self.exp_bits
    }
    /// Stored mantissa width M (precision is M + 1).
    pub fn man_bits(&self) -> u32 {
        self.man_bits
    }
    /// Exponent bias.
    pub fn bias(&self) -> i32 {
        self.bias
    }
    /// Special-value policy.
    pub fn specials(&self) -> Specials {
        self.specials
    }
    /// Whether the format has a sign bit.
    pub fn signed(&self) -> bool {
        !matches!(self.specials, Specials::Unsigned { .. })
    }
    /// Whether zero is representable (false only for e8m0-like formats).
    pub fn has_zero(&self) -> bool {
        self.has_zero
    }
    /// Whether subnormals are used when rounding.
    pub fn subnormals(&self) -> bool {
        self.subnormals
    }
    /// Whether overflow saturates.
    pub fn saturate(&self) -> bool {
        self.saturate
    }
    /// Whether ±inf inputs stay infinite under saturation.
    pub fn propagate_inf(&self) -> bool {
        self.propagate_inf
    }
    /// Whether the exponent range is enforced.
    pub fn exponent_limit(&self) -> bool {
        self.exponent_limit
    }
    /// Bits per code: sign (if any) + E + M.
    pub fn bits(&self) -> u32 {
        u32::from(self.signed()) + self.exp_bits + self.man_bits
    }
    /// Number of codes, 2^bits.
    pub fn num_codes(&self) -> u128 {
        1u128 << self.bits()
    }
    /// Whether the format has ±inf.
    pub fn has_inf(&self) -> bool {
        matches!(self.specials, Specials::Ieee | Specials::Extended | Specials::Unsigned { inf: true })
    }
    /// Whether the format has a NaN code.
    pub fn has_nan(&self) -> bool {
        self.specials != Specials::Finite
    }
    /// Whether -0 has its own code.
    pub fn has_neg_zero(&self) -> bool {
        matches!(self.specials, Specials::Ieee | Specials::Fn | Specials::Finite)
    }

    // ----- numeric queries ----------------------------------------------------------------------------

    /// Smallest unbiased exponent of a normal number.
    pub fn emin(&self) -> i32 {
        if self.has_zero {
            1 - self.bias
        } else {
            -self.bias
        }
    }
    /// Largest unbiased exponent of a finite number.
    pub fn emax(&self) -> i32 {
        (self.max_mag_code() >> self.man_bits) as i32 - self.bias
    }
    /// Largest finite value.
    pub fn max(&self) -> f64 {
        self.decode_mag(self.max_mag_code())
    }
    /// Smallest positive normal value, 2^emin.
    pub fn min_normal(&self) -> f64 {
        pow2(self.emin())
    }
    /// Smallest positive value the rounding produces: 2^(emin - M) with subnormals, else `min_normal`.
    pub fn min_subnormal(&self) -> f64 {
        if self.subnormals {
            pow2(self.emin() - self.man_bits as i32)
        } else {
            self.min_normal()
        }
    }
    /// Machine epsilon, the gap from 1 to the next value: 2^-M.
    pub fn epsilon(&self) -> f64 {
        pow2(-(self.man_bits as i32))
    }
    /// Unit roundoff of round-to-nearest, 2^-(M+1).
    pub fn unit_roundoff(&self) -> f64 {
        pow2(-(self.man_bits as i32) - 1)
    }

    // ----- codes --------------------------------------------------------------------------------------

    /// Position of the sign bit in a code (codes of unsigned formats have none).
    pub(crate) fn sign_bit(&self) -> u64 {
        if self.signed() {
            1u64 << (self.exp_bits + self.man_bits)
        } else {
            0
        }
    }

    /// Largest magnitude code of a finite value.
    pub(crate) fn max_mag_code(&self) -> u64 {
        let em = self.exp_bits + self.man_bits;
        let all = (1u64 << em) - 1;
        let layout = match self.specials {
            Specials::Ieee => (((1u64 << self.exp_bits) - 1) << self.man_bits) - 1,
            Specials::Fn | Specials::Extended | Specials::Unsigned { inf: false } => all - 1,
            Specials::Fnuz | Specials::Finite => all,
            Specials::Unsigned { inf: true } => all - 2,
        };
        match self.emax_limit {
            Some(e) => layout.min((((e + self.bias) as u64) << self.man_bits) | ((1u64 << self.man_bits) - 1)),
            None => layout,
        }
    }

    /// The value of a magnitude code (no sign bit), for codes in `0..=max_mag_code`.
    pub(crate) fn decode_mag(&self, c: u64) -> f64 {
        let m = self.man_bits;
        let field = (c >> m) as i32;
        let man = c & ((1u64 << m) - 1);
        if field == 0 && self.has_zero {
            man as f64 * pow2(self.emin() - m as i32)
        } else {
            // (2^M + man) * 2^(field - bias - M); the product of two exact factors, split to stay in range.
            ((1u64 << m) + man) as f64 * pow2(field - self.bias - m as i32)
        }
    }

    /// The code of NaN for an input whose sign bit is `neg`, if the format has one.
    pub fn nan_code(&self, neg: bool) -> Option<u64> {
        let em = self.exp_bits + self.man_bits;
        let s = if neg { self.sign_bit() } else { 0 };
        match self.specials {
            Specials::Ieee => Some(s | ((1u64 << self.exp_bits) - 1) << self.man_bits | 1u64 << (self.man_bits - 1)),
            Specials::Fn => Some(s | ((1u64 << em) - 1)),
            Specials::Fnuz | Specials::Extended => Some(1u64 << em),
            Specials::Finite => None,
            Specials::Unsigned { .. } => Some((1u64 << em) - 1),
        }
    }

    /// The code of +inf (`neg = false`) or -inf, if the format has it.
    pub fn inf_code(&self, neg: bool) -> Option<u64> {
        let em = self.exp_bits + self.man_bits;
        let s = if neg { self.sign_bit() } else { 0 };
        match self.specials {
            Specials::Ieee => Some(s | ((1u64 << self.exp_bits) - 1) << self.man_bits),
            Specials::Extended => Some(s | ((1u64 << em) - 1)),
            Specials::Unsigned { inf: true } if !neg => Some((1u64 << em) - 2),
            _ => None,
        }
    }

    /// The value of any code: numbers, ±inf, NaN; codes the format does not use (wider than the format,
    /// or beyond a chop format's emax) decode to NaN.
    ///
    /// # Examples
    /// ```
    /// use lowp::Format;
    /// let f = Format::parse("float8_e4m3fn")?;
    /// assert_eq!(f.decode_code(0x7e), 448.0);
    /// assert!(f.decode_code(0x7f).is_nan());
    /// # Ok::<(), lowp::Error>(())
    /// ```
    pub fn decode_code(&self, code: u64) -> f64 {
        if self.bits() < 64 && code >> self.bits() != 0 {
            return f64::NAN;
        }
        let sb = self.sign_bit();
        let neg = code & sb != 0;
        let mag = code & !sb;
        if self.inf_code(neg) == Some(code) {
            return if neg { f64::NEG_INFINITY } else { f64::INFINITY };
        }
        let is_nan = match self.specials {
            Specials::Ieee => mag > self.inf_code(false).unwrap_or(u64::MAX),
            Specials::Fnuz | Specials::Extended => code == sb,
            _ => self.nan_code(neg) == Some(code),
        };
        if is_nan || mag > self.max_mag_code() {
            // NaN codes that carry a sign (IEEE, fn) decode to a NaN of that sign.
            return if neg && self.has_neg_zero() { -f64::NAN } else { f64::NAN };
        }
        let v = self.decode_mag(mag);
        if neg {
            -v
        } else {
            v
        }
    }

    /// Every code of a format of at most 16 bits with its value, in code order (unused codes skipped).
    ///
    /// # Examples
    /// ```
    /// use lowp::Format;
    /// let v = Format::parse("fp4")?.values()?;
    /// assert_eq!(v.len(), 16);
    /// assert_eq!(v[7], (7, 6.0));
    /// # Ok::<(), lowp::Error>(())
    /// ```
    pub fn values(&self) -> Result<Vec<(u64, f64)>> {
        if self.bits() > 16 {
            return Err(Error::InvalidOption(format!(
                "{} has {} bits; values are listed for formats of at most 16 bits",
                self.name,
                self.bits()
            )));
        }
        let sb = self.sign_bit();
        Ok((0..1u64 << self.bits())
            .filter(|&c| {
                let mag = c & !sb;
                mag <= self.max_mag_code()
                    || self.inf_code(c & sb != 0) == Some(c)
                    || self.decode_code(c).is_nan() && self.is_nan_code(c)
            })
            .map(|c| (c, self.decode_code(c)))
            .collect())
    }

    /// Whether `code` is one of the format's NaN codes.
    pub fn is_nan_code(&self, code: u64) -> bool {
        let sb = self.sign_bit();
        match self.specials {
            Specials::Ieee => (code & !sb) > self.inf_code(false).unwrap_or(u64::MAX) && code >> self.bits() == 0,
            _ => self.nan_code(code & sb != 0) == Some(code),
        }
    }

    /// Checks that data of a storage type with `man` stored mantissa bits and largest finite value `max`
    /// can be rounded to this format and hold every result exactly. The kernels run this for float32 and
    /// float64; the Python bindings run it for float16 and bfloat16 data, which they widen to float32 (exactly),
    /// round, and narrow back (exactly, because of this check).
    ///
    /// # Examples
    /// ```
    /// use lowp::Format;
    /// assert!(Format::parse("e4m3fn")?.check_dtype("float16", 10, 65504.0).is_ok());
    /// assert!(Format::parse("bfloat16")?.check_dtype("float16", 10, 65504.0).is_err()); // range
    /// assert!(Format::parse("float16")?.check_dtype("bfloat16", 7, 3.39e38).is_err()); // precision
    /// # Ok::<(), lowp::Error>(())
    /// ```
    pub fn check_dtype(&self, dtype: &'static str, man: u32, max: f64) -> Result<()> {
        if self.man_bits > man {
            return Err(Error::UnsupportedDtype {
                format: self.name.clone(),
                dtype,
                reason: format!(
                    "its {} mantissa bits exceed the {man} of the data; round float64 data or pick a narrower format",
                    self.man_bits
                ),
            });
        }
        if self.exponent_limit && self.max() > max {
            return Err(Error::UnsupportedDtype {
                format: self.name.clone(),
                dtype,
                reason: format!("its largest value {:e} exceeds the data type's {max:e}", self.max()),
            });
        }
        Ok(())
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)?;
        let mut opts = Vec::new();
        if !self.subnormals && self.has_zero {
            opts.push("no subnormals");
        }
        if self.saturate && self.specials != Specials::Finite {
            opts.push("saturating");
        }
        if self.propagate_inf {
            opts.push("inf kept");
        }
        if !self.exponent_limit {
            opts.push("no exponent limit");
        }
        if !opts.is_empty() {
            write!(f, " ({})", opts.join(", "))?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Format {
    type Err = Error;
    fn from_str(s: &str) -> Result<Format> {
        Format::parse(s)
    }
}

/// floor(log2(v)) for finite v > 0, read from the bits (never a floating log2).
pub(crate) fn exponent_of(v: f64) -> i32 {
    let bits = v.to_bits() & !(1u64 << 63);
    let field = (bits >> 52) as i32;
    if field == 0 {
        -1074 + 63 - bits.leading_zeros() as i32
    } else {
        field - 1023
    }
}

/// 2^k exactly, for k in [-1074, 1023].
pub(crate) fn pow2(k: i32) -> f64 {
    debug_assert!((-1074..=1023).contains(&k), "pow2({k}) out of f64 range");
    if k >= -1022 {
        f64::from_bits(((k + 1023) as u64) << 52)
    } else {
        f64::from_bits(1u64 << (k + 1074))
    }
}

fn parse_num<T: std::str::FromStr>(s: &str) -> Option<T> {
    if s.is_empty() {
        None
    } else {
        s.parse().ok()
    }
}

/// `e<E>m<M>[b<BIAS>][fn|fnuz]`.
fn parse_custom(key: &str) -> Option<Result<Format>> {
    let rest = key.strip_prefix('e')?;
    let m_at = rest.find('m')?;
    let e: u32 = parse_num(&rest[..m_at])?;
    let rest = &rest[m_at + 1..];
    let digits_end = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
    let m: u32 = parse_num(&rest[..digits_end])?;
    let mut rest = &rest[digits_end..];
    let mut bias = None;
    if let Some(b) = rest.strip_prefix('b') {
        let end = b.find(|c: char| !(c.is_ascii_digit() || c == '-')).unwrap_or(b.len());
        bias = Some(parse_num::<i32>(&b[..end])?);
        rest = &b[end..];
    }
    let specials = match rest {
        "" => Specials::Ieee,
        "fn" => Specials::Fn,
        "fnuz" => Specials::Fnuz,
        _ => return None,
    };
    Some(Format::custom(e, m, bias, specials))
}

/// `binary<K>p<P><s|u><e|f>` (P3109 interim report v4).
fn parse_p3109(key: &str) -> Option<Result<Format>> {
    let rest = key.strip_prefix("binary")?;
    let p_at = rest.find('p')?;
    let k: u32 = parse_num(&rest[..p_at])?;
    let tail = &rest[p_at + 1..];
    if tail.len() < 3 {
        return None;
    }
    let (p_str, flags) = tail.split_at(tail.len() - 2);
    let p: u32 = parse_num(p_str)?;
    let (signed, extended) = match flags {
        "se" => (true, true),
        "sf" => (true, false),
        "ue" => (false, true),
        "uf" => (false, false),
        _ => return None,
    };
    if !(2..=16).contains(&k) || p == 0 || p >= k {
        return Some(Err(Error::InvalidFormat(format!("P3109 binary{k}p{p}: need 2 <= K <= 16 and 1 <= P < K"))));
    }
    let (e, bias, specials) = if signed {
        (k - p, 1i32 << (k - p - 1), if extended { Specials::Extended } else { Specials::Fnuz })
    } else {
        (k - p + 1, 1i32 << (k - p), Specials::Unsigned { inf: extended })
    };
    Some(Format::custom(e, p - 1, Some(bias), specials).map(|mut f| {
        f.name = key.to_string();
        f
    }))
}

/// `chop(<t>,<emax>)`.
fn parse_chop(key: &str) -> Option<Result<Format>> {
    let inner = key.strip_prefix("chop(")?.strip_suffix(')')?;
    let (t, emax) = inner.split_once(',')?;
    Some(Format::from_chop(parse_num(t.trim())?, parse_num(emax.trim())?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preset_table_matches_formats_sheet() {
        // (name, max, min normal, min subnormal) from FORMATS.md §1.
        let rows: &[(&str, f64, f64, f64)] = &[
            ("float16", 65504.0, pow2(-14), pow2(-24)),
            ("bfloat16", 3.3895313892515355e38, pow2(-126), pow2(-133)),
            ("float8_e5m2", 57344.0, pow2(-14), pow2(-16)),
            ("float8_e4m3", 240.0, pow2(-6), pow2(-9)),
            ("float8_e3m4", 15.5, pow2(-2), pow2(-6)),
            ("float8_e4m3fn", 448.0, pow2(-6), pow2(-9)),
            ("float8_e4m3fnuz", 240.0, pow2(-7), pow2(-10)),
            ("float8_e5m2fnuz", 57344.0, pow2(-15), pow2(-17)),
            ("float8_e4m3b11fnuz", 30.0, pow2(-10), pow2(-13)),
            ("float6_e3m2fn", 28.0, pow2(-2), pow2(-4)),
            ("float6_e2m3fn", 7.5, 1.0, pow2(-3)),
            ("float4_e2m1fn", 6.0, 1.0, 0.5),
            ("tf32", (2.0 - pow2(-10)) * pow2(127), pow2(-126), pow2(-136)),
        ];
        for &(name, max, minn, mins) in rows {
            let f = Format::parse(name).unwrap();
            assert_eq!((f.max(), f.min_normal(), f.min_subnormal()), (max, minn, mins), "{name}");
        }
        let e8m0 = Format::parse("e8m0").unwrap();
        assert_eq!((e8m0.max(), e8m0.min_normal(), e8m0.bits()), (pow2(127), pow2(-127), 8));
    }

    #[test]
    fn names_and_errors() {
        assert_eq!(Format::parse("e4m3b11fnuz").unwrap().name(), "float8_e4m3b11fnuz");
        assert_eq!(Format::parse("E5M10").unwrap().max(), 65504.0);
        assert_eq!(Format::parse("e5m2b16fnuz").unwrap().max(), 57344.0);
        assert_eq!(Format::parse("binary8p4sf").unwrap().max(), 240.0);
        let ext = Format::parse("binary8p4se").unwrap();
        assert_eq!(ext.max(), 224.0);
        assert_eq!(ext.inf_code(false), Some(0x7f));
        assert_eq!(Format::parse("chop(4,7)").unwrap().max(), 240.0);
        let odd = Format::parse("chop(8,10)").unwrap();
        assert_eq!(odd.max(), (2.0 - pow2(-7)) * 1024.0);
        for bad in ["e0m3", "e12m3", "e5m60", "binary8p8sf", "binary20p4sf", "e4m0", "chop(0,5)", "floatx", "e1m0fn"] {
            assert!(Format::parse(bad).is_err(), "{bad} should be rejected");
        }
        let msg = Format::parse("bfloat61").unwrap_err().to_string();
        assert!(msg.contains("did you mean `bfloat16`"), "{msg}");
    }

    #[test]
    fn values_cover_every_code_of_small_formats() {
        for f in Format::presets().into_iter().filter(|f| f.bits() <= 16) {
            let v = f.values().unwrap();
            assert_eq!(v.len() as u128, f.num_codes(), "{}", f.name());
            let finite: Vec<f64> = v.iter().map(|p| p.1).filter(|x| x.is_finite()).collect();
            assert!(finite.iter().all(|x| x.abs() <= f.max()));
        }
    }
}
