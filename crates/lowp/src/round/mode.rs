//! Rounding modes (FORMATS.md §2) and the per-call rounding configuration.

use crate::error::{suggest, Error, Result};

/// How a value between two neighbours of the format is resolved.
///
/// # Examples
/// ```
/// use lowp::RoundingMode;
/// assert_eq!(RoundingMode::parse("rne")?, RoundingMode::NearestEven);
/// assert_eq!(RoundingMode::from_chop_code(5)?, RoundingMode::Stochastic);
/// assert_eq!(RoundingMode::parse("stochastic:8")?, RoundingMode::StochasticBits(8));
/// # Ok::<(), lowp::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RoundingMode {
    /// Nearest, ties to even (chop 1).
    NearestEven,
    /// Toward +inf (chop 2).
    TowardPositive,
    /// Toward -inf (chop 3).
    TowardNegative,
    /// Toward zero, truncation (chop 4).
    TowardZero,
    /// Up with probability equal to the distance fraction (chop 5). Uses every random bit the data type
    /// gives: 32 per element for float32 data, 64 for float64.
    Stochastic,
    /// Up or down with probability 1/2; exact values unchanged (chop 6).
    StochasticEqual,
    /// Nearest, ties toward zero (chop 7).
    NearestZero,
    /// Nearest, ties away from zero (chop 8).
    NearestAway,
    /// Round to odd: truncate, then set the last bit if anything was discarded (chop 9).
    Odd,
    /// Stochastic with N random bits (P3109 StochasticA): up when floor(frac * 2^N) + R >= 2^N,
    /// R uniform in [0, 2^N). N is 1..=32 for float32 data and 1..=64 for float64.
    StochasticBits(u8),
}

/// Names accepted by [`RoundingMode::parse`], canonical first, then aliases.
const NAMES: &[(&str, RoundingMode)] = &[
    ("nearest_even", RoundingMode::NearestEven),
    ("toward_positive", RoundingMode::TowardPositive),
    ("toward_negative", RoundingMode::TowardNegative),
    ("toward_zero", RoundingMode::TowardZero),
    ("stochastic", RoundingMode::Stochastic),
    ("stochastic_equal", RoundingMode::StochasticEqual),
    ("nearest_zero", RoundingMode::NearestZero),
    ("nearest_away", RoundingMode::NearestAway),
    ("odd", RoundingMode::Odd),
    ("rne", RoundingMode::NearestEven),
    ("nearest", RoundingMode::NearestEven),
    ("up", RoundingMode::TowardPositive),
    ("down", RoundingMode::TowardNegative),
    ("truncate", RoundingMode::TowardZero),
    ("rtz", RoundingMode::TowardZero),
    ("sr", RoundingMode::Stochastic),
];

impl RoundingMode {
    /// The nine fixed modes, in chop's order.
    pub const ALL: [RoundingMode; 9] = [
        RoundingMode::NearestEven,
        RoundingMode::TowardPositive,
        RoundingMode::TowardNegative,
        RoundingMode::TowardZero,
        RoundingMode::Stochastic,
        RoundingMode::StochasticEqual,
        RoundingMode::NearestZero,
        RoundingMode::NearestAway,
        RoundingMode::Odd,
    ];

    /// The deterministic modes.
    pub const DETERMINISTIC: [RoundingMode; 7] = [
        RoundingMode::NearestEven,
        RoundingMode::TowardPositive,
        RoundingMode::TowardNegative,
        RoundingMode::TowardZero,
        RoundingMode::NearestZero,
        RoundingMode::NearestAway,
        RoundingMode::Odd,
    ];

    /// Parses a name (`nearest_even`, ..., aliases such as `rne`, `up`), a chop code `1`..`9`, or
    /// `stochastic:N` for N random bits. Case-insensitive.
    pub fn parse(name: &str) -> Result<RoundingMode> {
        let key = name.trim().to_ascii_lowercase();
        if let Some(&(_, m)) = NAMES.iter().find(|(n, _)| *n == key) {
            return Ok(m);
        }
        if let Ok(code) = key.parse::<u8>() {
            return Self::from_chop_code(code);
        }
        if let Some(bits) = key.strip_prefix("stochastic:") {
            return match bits.parse::<u8>() {
                Ok(n @ 1..=64) => Ok(RoundingMode::StochasticBits(n)),
                _ => Err(Error::InvalidOption(format!("`{name}`: stochastic:N needs N in 1..=64 random bits"))),
            };
        }
        Err(Error::UnknownMode {
            name: name.to_string(),
            hint: suggest(&key, NAMES.iter().map(|(n, _)| *n)),
            accepted: format!(
                "{}, a chop code 1-9, or stochastic:N",
                NAMES[..9].iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
            ),
        })
    }

    /// The mode of chop / Pychop's `rmode` code 1..=9.
    pub fn from_chop_code(code: u8) -> Result<RoundingMode> {
        match code {
            1..=9 => Ok(Self::ALL[usize::from(code) - 1]),
            _ => Err(Error::InvalidOption(format!("chop rounding code {code}: accepted codes are 1..=9"))),
        }
    }

    /// Canonical name.
    pub fn name(self) -> String {
        match self {
            RoundingMode::StochasticBits(n) => format!("stochastic:{n}"),
            m => NAMES.iter().find(|(_, x)| *x == m).map(|(n, _)| n.to_string()).unwrap_or_default(),
        }
    }

    /// Whether the mode draws random numbers.
    pub fn is_stochastic(self) -> bool {
        matches!(self, RoundingMode::Stochastic | RoundingMode::StochasticEqual | RoundingMode::StochasticBits(_))
    }
}

impl std::fmt::Display for RoundingMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

impl std::str::FromStr for RoundingMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<RoundingMode> {
        RoundingMode::parse(s)
    }
}

/// Which bits a soft error may flip.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlipScope {
    /// One of the M stored significand bits (chop / CPFloat behaviour).
    Significand,
    /// Any bit of the code, sign and exponent included (can produce inf or NaN).
    Code,
}

/// Soft-error injection: after rounding, with probability `prob`, flip one uniformly chosen bit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BitFlip {
    /// Probability per element, in [0, 1].
    pub prob: f64,
    /// Which bits.
    pub scope: FlipScope,
}

/// Everything about one rounding call besides the format: mode, seed, soft errors.
///
/// Random numbers (stochastic modes, soft errors) are a pure function of (seed, element index): results
/// do not depend on the thread count or chunking, and element i can be reproduced alone. The default seed
/// is 0, never the clock.
///
/// # Examples
/// ```
/// use lowp::{Rounding, RoundingMode};
/// let r = Rounding::new(RoundingMode::Stochastic).with_seed(7);
/// assert_eq!(r.seed, 7);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rounding {
    /// The mode.
    pub mode: RoundingMode,
    /// Seed of the counter-based random numbers.
    pub seed: u64,
    /// Soft-error injection, if any.
    pub flip: Option<BitFlip>,
}

impl Default for Rounding {
    fn default() -> Self {
        Rounding::new(RoundingMode::NearestEven)
    }
}

impl Rounding {
    /// `mode` with seed 0 and no soft errors.
    pub fn new(mode: RoundingMode) -> Rounding {
        Rounding { mode, seed: 0, flip: None }
    }
    /// Sets the seed.
    pub fn with_seed(mut self, seed: u64) -> Rounding {
        self.seed = seed;
        self
    }
    /// Adds soft-error injection.
    pub fn with_flip(mut self, prob: f64, scope: FlipScope) -> Rounding {
        self.flip = Some(BitFlip { prob, scope });
        self
    }

    pub(crate) fn validate(&self, random_bits: u32) -> Result<()> {
        if let RoundingMode::StochasticBits(n) = self.mode {
            if u32::from(n) > random_bits {
                return Err(Error::InvalidOption(format!(
                    "stochastic:{n} asks for more random bits than the {random_bits} this data type uses"
                )));
            }
        }
        if let Some(f) = self.flip {
            if !(0.0..=1.0).contains(&f.prob) {
                return Err(Error::InvalidOption(format!("bit-flip probability {} must be in [0, 1]", f.prob)));
            }
        }
        Ok(())
    }
}
