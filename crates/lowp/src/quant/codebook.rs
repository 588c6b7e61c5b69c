//! Lookup (codebook) quantization (FORMATS.md §4): NF4 and user codebooks with an absmax scale per group,
//! and BitMoD's mixture of FP4 / FP3 variants chosen per group by squared error.

use super::codebook_kernel::{fit_groups, GridBooks, GroupJob};
use super::layout::{finite_range, Codes, Layout};
use super::{empty_block_scale, keep_first, stochastic_up, Granularity};
use crate::error::{Error, Result};
use crate::round::{check_len, Encoder};
use crate::{Element, Format, Rounding, RoundingMode};

/// NF4: the 16 values of QLoRA's 4-bit NormalFloat (quantiles of N(0, 1) scaled to [-1, 1], with an exact 0),
/// as published with QLoRA (Dettmers et al., 2023) and used by bitsandbytes.
pub const NF4: [f64; 16] = [
    -1.0,
    -0.6961928009986877,
    -0.5250730514526367,
    -0.39491748809814453,
    -0.28444138169288635,
    -0.18477343022823334,
    -0.09105003625154495,
    0.0,
    0.07958029955625534,
    0.16093020141124725,
    0.24611230194568634,
    0.33791524171829224,
    0.44070982933044434,
    0.5626170039176941,
    0.7229568362236023,
    1.0,
];

/// A sorted list of distinct finite values; a code is an index into it.
///
/// # Examples
/// ```
/// use lowp::quant::Codebook;
/// use lowp::RoundingMode;
/// let c = Codebook::new(&[0.0, 1.0, 3.0, -2.0])?; // sorted: -2, 0, 1, 3
/// assert_eq!(c.index_of(2.0, RoundingMode::NearestEven, 0, 0)?, 2); // the tie between 1 and 3: even index
/// assert_eq!(c.index_of(0.4, RoundingMode::TowardPositive, 0, 0)?, 2);
/// assert_eq!(c.index_of(-9.0, RoundingMode::NearestEven, 0, 0)?, 0); // beyond the ends: clamp
/// # Ok::<(), lowp::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Codebook {
    values: Vec<f64>,
}

impl Codebook {
    /// A codebook of 2 to 256 distinct finite values (sorted here).
    pub fn new(values: &[f64]) -> Result<Codebook> {
        let mut v = values.to_vec();
        if v.iter().any(|x| !x.is_finite()) {
            return Err(Error::InvalidFormat("codebook values must be finite".into()));
        }
        v.sort_by(f64::total_cmp);
        v.dedup_by(|a, b| a == b);
        if !(2..=256).contains(&v.len()) {
            return Err(Error::InvalidFormat(format!("a codebook needs 2 to 256 distinct values, got {}", v.len())));
        }
        Ok(Codebook { values: v })
    }

    /// QLoRA's NF4.
    pub fn nf4() -> Codebook {
        Codebook { values: NF4.to_vec() }
    }

    /// The values, ascending.
    pub fn values(&self) -> &[f64] {
        &self.values
    }

    /// Bits per code: ceil(log2(number of values)).
    pub fn bits(&self) -> u32 {
        usize::BITS - (self.values.len() - 1).leading_zeros()
    }

    /// The largest magnitude.
    pub fn max_abs(&self) -> f64 {
        self.values[0].abs().max(self.values[self.values.len() - 1].abs())
    }

    /// The index `v` rounds to. Values beyond the ends clamp; between two neighbours lo < v < hi the mode
    /// decides: nearest (distances compared in float64; ties to the even index, or toward / away from zero),
    /// directed, or stochastic (up with probability (v - lo) / (hi - lo), 1/2, or StochasticA's N bits).
    /// Round-to-odd has no meaning for a codebook and is an error; so is NaN.
    pub fn index_of(&self, v: f64, mode: RoundingMode, seed: u64, index: u64) -> Result<usize> {
        if v.is_nan() {
            return Err(Error::NotRepresentable {
                value: v,
                index: index as usize,
                format: "codebook".into(),
                why: "codebooks have no NaN",
            });
        }
        if mode == RoundingMode::Odd {
            return Err(Error::InvalidOption("round-to-odd has no meaning for a codebook".into()));
        }
        let c = &self.values;
        // The first value >= v: counted without branches in short codebooks (NF4, BitMoD: 16 values or fewer),
        // where that beats a binary search.
        let hi =
            if c.len() <= 16 { c.iter().map(|&x| usize::from(x < v)).sum() } else { c.partition_point(|&x| x < v) };
        if hi == 0 {
            return Ok(0);
        }
        if hi == c.len() {
            return Ok(c.len() - 1);
        }
        if c[hi] == v {
            return Ok(hi);
        }
        let lo = hi - 1;
        let (dl, dh) = (v - c[lo], c[hi] - v);
        let smaller_mag = if c[lo].abs() <= c[hi].abs() { lo } else { hi };
        let larger_mag = lo + hi - smaller_mag;
        let frac = dl / (c[hi] - c[lo]);
        let pick = match mode {
            RoundingMode::NearestEven | RoundingMode::NearestZero | RoundingMode::NearestAway if dl != dh => {
                if dl < dh {
                    lo
                } else {
                    hi
                }
            }
            RoundingMode::NearestEven => {
                if lo % 2 == 0 {
                    lo
                } else {
                    hi
                }
            }
            RoundingMode::NearestZero => smaller_mag,
            RoundingMode::NearestAway => larger_mag,
            RoundingMode::TowardPositive => hi,
            RoundingMode::TowardNegative => lo,
            RoundingMode::TowardZero => smaller_mag,
            RoundingMode::Stochastic | RoundingMode::StochasticEqual | RoundingMode::StochasticBits(_) => {
                if stochastic_up(mode, frac, seed, index) {
                    hi
                } else {
                    lo
                }
            }
            RoundingMode::Odd => unreachable!("refused above"),
        };
        Ok(pick)
    }
}

/// A codebook with an absmax scale per group: scale = amax / max|value|, stored in a float format.
///
/// # Examples
/// ```
/// use lowp::quant::CodebookScheme;
/// use lowp::Rounding;
/// let s = CodebookScheme::parse("nf4:g64")?;
/// let x: Vec<f32> = (0..64).map(|i| (i as f32 - 32.0) / 8.0).collect(); // amax 4
/// let q = s.quantize(&Rounding::default(), &x, &[64], 0)?;
/// assert_eq!(q.scales, [4.0]);
/// let mut y = vec![0.0f32; 64];
/// q.dequantize(&mut y)?;
/// assert_eq!((y[0], y[32]), (-4.0, 0.0));
/// assert_eq!(q.bits_per_element(), 4.5);
/// # Ok::<(), lowp::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct CodebookScheme {
    name: String,
    codebook: Codebook,
    group: usize,
    scale_format: Format,
}

/// A tensor quantized by a [`CodebookScheme`] or [`BitMod`]: codes (indices, C order), one scale per group,
/// and for BitMoD the type id of each group.
#[derive(Clone, Debug, PartialEq)]
pub struct CodebookQuantized {
    /// The codebooks a group may use (one for a plain codebook scheme, the variants for BitMoD).
    pub codebooks: Vec<Codebook>,
    /// Bits per code, per type id and per scale.
    pub code_bits: u32,
    /// Bits of a type id (0 for a single codebook).
    pub type_bits: u32,
    /// Bits of a stored scale.
    pub scale_bits: u32,
    /// Group size.
    pub group: usize,
    /// The tensor's shape.
    pub shape: Vec<usize>,
    /// The axis groups run along.
    pub axis: usize,
    /// Codes, C order.
    pub codes: Vec<u8>,
    /// Scales (after rounding to their storage format), in group order.
    pub scales: Vec<f64>,
    /// The codebook of each group (all 0 for a single codebook).
    pub types: Vec<u8>,
}

impl CodebookScheme {
    /// `codebook` with an absmax scale per group of `group`, scales stored as float32.
    pub fn new(name: &str, codebook: Codebook, group: usize) -> Result<CodebookScheme> {
        if group == 0 {
            return Err(Error::InvalidFormat("group size 0: groups need at least one element".into()));
        }
        Ok(CodebookScheme { name: name.to_string(), codebook, group, scale_format: Format::parse("float32")? })
    }

    /// `nf4[:g<G>][:scale=<format>]` (groups of 64 and float32 scales by default, as in QLoRA), or a user
    /// codebook `codebook(v1,v2,...)[:g<G>][:scale=<format>]` with 2 to 256 distinct finite values.
    pub fn parse(spec: &str) -> Result<CodebookScheme> {
        let accepted = "nf4[:g<group>][:scale=<format>] or codebook(v1,v2,...)[:g<group>][:scale=<format>]";
        let bad = |why: String| Error::InvalidFormat(format!("codebook scheme `{spec}`: {why}. Accepted: {accepted}"));
        let lower = spec.trim().to_ascii_lowercase();
        let (name, codebook, rest) = if let Some(rest) = lower.strip_prefix("nf4") {
            ("nf4", Codebook::nf4(), rest)
        } else if let Some(list) = lower.strip_prefix("codebook(") {
            let close = list.find(')').ok_or_else(|| bad("the value list has no closing `)`".into()))?;
            let values = list[..close]
                .split(',')
                .map(|v| v.trim().parse::<f64>().map_err(|_| bad(format!("`{}` is not a number", v.trim()))))
                .collect::<Result<Vec<f64>>>()?;
            ("codebook", Codebook::new(&values)?, &list[close + 1..])
        } else {
            return Err(bad("it must start with nf4 or codebook(".into()));
        };
        let mut group = 64;
        let mut scale_format = Format::parse("float32")?;
        if !rest.is_empty() && !rest.starts_with(':') {
            return Err(bad(format!("unexpected `{rest}` after {name}")));
        }
        for p in rest.split(':').skip(1) {
            if let Some(f) = p.strip_prefix("scale=") {
                scale_format = Format::parse(f)?;
            } else {
                match p.strip_prefix('g').and_then(|g| g.parse::<usize>().ok()) {
                    Some(g) => group = g,
                    None => return Err(bad(format!("unknown part `{p}`"))),
                }
            }
        }
        Ok(CodebookScheme::new(name, codebook, group)?.with_scale_format(scale_format))
    }

    /// The codebook.
    pub fn codebook(&self) -> &Codebook {
        &self.codebook
    }
    /// Group size.
    pub fn group(&self) -> usize {
        self.group
    }
    /// The format scales are stored in.
    pub fn scale_format(&self) -> &Format {
        &self.scale_format
    }

    /// Stores scales in `fmt` (rounded to nearest even, saturating).
    pub fn with_scale_format(mut self, fmt: Format) -> CodebookScheme {
        self.scale_format = fmt;
        self
    }

    /// Quantizes `x` of `shape` in groups along `axis`: scale = amax / max|value| over the group's finite
    /// values, code = the codebook index of x / scale under the rounding mode (infinities clamp to the ends;
    /// NaN is an error); an all-zero group has scale 0 and the code of 0 (or nearest to it).
    pub fn quantize<T: Element>(
        &self,
        cfg: &Rounding,
        x: &[T],
        shape: &[usize],
        axis: usize,
    ) -> Result<CodebookQuantized> {
        let books = [self.codebook.clone()];
        quantize_grouped(&books, &self.scale_format, self.group, cfg, x, shape, axis, Route::Fastest)
    }

    /// [`quantize`](Self::quantize) one element at a time through [`Codebook::index_of`], never by the batch
    /// kernel: the reference the kernel is tested against (the same result for every input).
    #[doc(hidden)]
    pub fn quantize_per_element<T: Element>(
        &self,
        cfg: &Rounding,
        x: &[T],
        shape: &[usize],
        axis: usize,
    ) -> Result<CodebookQuantized> {
        let books = [self.codebook.clone()];
        quantize_grouped(&books, &self.scale_format, self.group, cfg, x, shape, axis, Route::PerElement)
    }
}

impl std::fmt::Display for CodebookScheme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.name == "nf4" && self.codebook == Codebook::nf4() {
            f.write_str("nf4")?;
        } else {
            let values: Vec<String> = self.codebook.values.iter().map(|v| v.to_string()).collect();
            write!(f, "codebook({})", values.join(","))?;
        }
        write!(f, ":g{}", self.group)?;
        if self.scale_format.name() != "float32" {
            write!(f, ":scale={}", self.scale_format.name())?;
        }
        Ok(())
    }
}

/// BitMoD's mixture of datatypes: per group, the FP4 (or FP3) variant with the least squared error.
///
/// FP4 variants: the e2m1 grid {0, ±0.5, ±1, ±1.5, ±2, ±3, ±4, ±6} with its redundant -0 code holding one
/// extra value: +5 or -5 ("extra resolution") or +8 or -8 ("extra asymmetry"). FP3 variants: {0, ±1, ±2, ±4}
/// plus one of +3, -3, +6, -6. Scale = amax / max|variant| stored as float16; 2 bits of type id per group.
///
/// # Examples
/// ```
/// use lowp::quant::BitMod;
/// use lowp::Rounding;
/// let s = BitMod::parse("bitmod4:g8")?;
/// let q = s.quantize(&Rounding::default(), &[8.0f32, 4.0, 2.0, 1.0, 0.5, 0.0, 3.0, 6.0], &[8], 0)?;
/// assert_eq!(q.types, [2]); // the +8 variant holds every value at scale 1: no error at all
/// assert_eq!(q.scales, [1.0]);
/// # Ok::<(), lowp::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct BitMod {
    bits: u32,
    group: usize,
}

impl BitMod {
    /// `bits` 4 (FP4 variants) or 3 (FP3 variants), groups of `group`.
    pub fn new(bits: u32, group: usize) -> Result<BitMod> {
        if !(3..=4).contains(&bits) || group == 0 {
            return Err(Error::InvalidFormat(format!(
                "bitmod{bits} with groups of {group}: BitMoD has 3- and 4-bit variants and groups of at least one"
            )));
        }
        Ok(BitMod { bits, group })
    }

    /// `bitmod4[:g<G>]` or `bitmod3[:g<G>]` (groups of 128 by default).
    pub fn parse(spec: &str) -> Result<BitMod> {
        let lower = spec.trim().to_ascii_lowercase();
        let bits = if lower.starts_with("bitmod3") { 3 } else { 4 };
        let (_, group) =
            parse_grouped(spec, &format!("bitmod{bits}"), 128, "bitmod4[:g<group>] or bitmod3[:g<group>]")?;
        BitMod::new(bits, group)
    }

    /// Bits per code: 4 or 3.
    pub fn bits(&self) -> u32 {
        self.bits
    }
    /// Group size.
    pub fn group(&self) -> usize {
        self.group
    }
    /// The format scales are stored in: float16.
    pub fn scale_format(&self) -> Format {
        Format::parse("float16").expect("float16 is a preset")
    }

    /// The candidate codebooks, in type-id order: +extra-resolution, -extra-resolution, +extra-asymmetry,
    /// -extra-asymmetry.
    pub fn variants(&self) -> Vec<Codebook> {
        let (base, extras): (&[f64], [f64; 4]) = if self.bits == 4 {
            (&[0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0], [5.0, -5.0, 8.0, -8.0])
        } else {
            (&[0.0, 1.0, 2.0, 4.0], [3.0, -3.0, 6.0, -6.0])
        };
        extras
            .iter()
            .map(|&e| {
                let mut v: Vec<f64> = base.iter().flat_map(|&b| [b, -b]).collect();
                v.push(e);
                Codebook::new(&v).expect("BitMoD variants are valid codebooks")
            })
            .collect()
    }

    /// Quantizes `x` in groups along `axis` with every variant and keeps, per group, the one with the least
    /// squared error of the dequantized values (ties to the lower type id).
    pub fn quantize<T: Element>(
        &self,
        cfg: &Rounding,
        x: &[T],
        shape: &[usize],
        axis: usize,
    ) -> Result<CodebookQuantized> {
        quantize_grouped(&self.variants(), &self.scale_format(), self.group, cfg, x, shape, axis, Route::Fastest)
    }

    /// [`quantize`](Self::quantize) straight into the packed codes, with the scales and type ids, where the
    /// batch kernel runs and the layout packs (None otherwise): what
    /// [`QuantizedTensor::quantize`](super::QuantizedTensor::quantize) uses.
    #[allow(clippy::type_complexity)]
    pub(crate) fn quantize_packed<T: Element>(
        &self,
        cfg: &Rounding,
        x: &[T],
        shape: &[usize],
        axis: usize,
    ) -> Result<Option<(Vec<u8>, Vec<f64>, Vec<u8>)>> {
        super::check_no_flip(cfg)?;
        let layout = Layout::new(shape, axis, Granularity::Group(self.group))?;
        check_len(layout.len(), x.len())?;
        let books = self.variants();
        let plan = if layout.contiguous() { GridBooks::new(&books, cfg.mode) } else { None };
        let Some(plan) = plan.filter(|_| layout.packs(self.bits)) else { return Ok(None) };
        let (codes, scales, types) = with_group_fit(&books, &self.scale_format(), cfg, |fit| {
            by_kernel(&plan, fit, &layout, x, Some(self.bits))
        })?;
        Ok(codes.packed().map(|codes| (codes, scales, types)))
    }

    /// [`quantize`](Self::quantize) one element at a time through [`Codebook::index_of`], never by the batch
    /// kernel: the reference the kernel is tested against (the same result for every input).
    #[doc(hidden)]
    pub fn quantize_per_element<T: Element>(
        &self,
        cfg: &Rounding,
        x: &[T],
        shape: &[usize],
        axis: usize,
    ) -> Result<CodebookQuantized> {
        quantize_grouped(&self.variants(), &self.scale_format(), self.group, cfg, x, shape, axis, Route::PerElement)
    }
}

impl std::fmt::Display for BitMod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "bitmod{}:g{}", self.bits, self.group)
    }
}

fn parse_grouped(spec: &str, head: &str, default_group: usize, accepted: &str) -> Result<(String, usize)> {
    let bad = |why: String| Error::InvalidFormat(format!("scheme `{spec}`: {why}. Accepted: {accepted}"));
    let lower = spec.trim().to_ascii_lowercase();
    let mut parts = lower.split(':');
    if parts.next() != Some(head) {
        return Err(bad(format!("it must start with {head}")));
    }
    let mut group = default_group;
    for p in parts {
        match p.strip_prefix('g').and_then(|g| g.parse::<usize>().ok()) {
            Some(g) => group = g,
            None => return Err(bad(format!("unknown part `{p}`"))),
        }
    }
    Ok((head.to_string(), group))
}

/// The choice of codebook and scale for one group.
struct GroupFit<'a> {
    books: &'a [Codebook],
    scale_format: &'a Format,
    /// Rounds scales to the scale format: nearest even, saturating.
    scale_rounder: Encoder<'a, f64>,
    cfg: &'a Rounding,
}

impl GroupFit<'_> {
    /// For the group `vals` (elements `first..` of the tensor): the codebook with the least squared error over
    /// the finite values (ties to the lower type id) and its scale; the codes land in `codes`.
    fn best(&self, vals: &[f64], first: usize, codes: &mut [u8]) -> Result<(usize, f64)> {
        self.best_at(vals, |j| (first + j) as u64, codes)
    }

    /// [`best`](Self::best) with element j of the group at tensor index `index(j)`.
    fn best_at(&self, vals: &[f64], index: impl Fn(usize) -> u64, codes: &mut [u8]) -> Result<(usize, f64)> {
        let amax = vals.iter().filter(|v| v.is_finite()).fold(0.0f64, |m, v| m.max(v.abs()));
        let mut candidate = vec![0u8; vals.len()];
        let mut best: Option<(f64, usize, f64)> = None;
        for (t, book) in self.books.iter().enumerate() {
            let scale = if amax == 0.0 {
                empty_block_scale(self.scale_format)
            } else {
                let mut s = [amax / book.max_abs()];
                self.scale_rounder.round_at(0, &mut s);
                s[0]
            };
            let mut err = 0.0;
            for (j, (c, &v)) in candidate.iter_mut().zip(vals).enumerate() {
                let q = if scale == 0.0 { 0.0 } else { v / scale };
                let k = book.index_of(q, self.cfg.mode, self.cfg.seed, index(j))?;
                if v.is_finite() {
                    let d = v - book.values[k] * scale;
                    err += d * d;
                }
                *c = k as u8;
            }
            if best.is_none_or(|(e, ..)| err < e) {
                best = Some((err, t, scale));
                codes.copy_from_slice(&candidate);
            }
        }
        let (_, t, scale) = best.expect("at least one codebook");
        Ok((t, scale))
    }
}

/// How [`quantize_grouped`] searches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    /// The batch kernel where it applies (see [`GridBooks::new`]; contiguous groups), else per element.
    Fastest,
    /// Per element through [`Codebook::index_of`]: the reference.
    PerElement,
}

/// Runs `f` with the [`GroupFit`] of `books`, scales stored in `scale_format` (rounded to nearest even,
/// saturating) and elements rounded by `cfg`.
fn with_group_fit<R>(
    books: &[Codebook],
    scale_format: &Format,
    cfg: &Rounding,
    f: impl FnOnce(&GroupFit) -> Result<R>,
) -> Result<R> {
    let saturating = scale_format.clone().with_saturation(true);
    let rne = Rounding::new(RoundingMode::NearestEven);
    f(&GroupFit { books, scale_format, scale_rounder: Encoder::new(&saturating, &rne)?, cfg })
}

/// Quantizes groups with each codebook of `books` and keeps the one with the least squared error.
#[allow(clippy::too_many_arguments)]
fn quantize_grouped<T: Element>(
    books: &[Codebook],
    scale_format: &Format,
    group: usize,
    cfg: &Rounding,
    x: &[T],
    shape: &[usize],
    axis: usize,
    route: Route,
) -> Result<CodebookQuantized> {
    super::check_no_flip(cfg)?;
    if group == 0 {
        return Err(Error::InvalidFormat("group size 0: groups need at least one element".into()));
    }
    let layout = Layout::new(shape, axis, Granularity::Group(group))?;
    check_len(layout.len(), x.len())?;
    let plan = if route == Route::Fastest && layout.contiguous() { GridBooks::new(books, cfg.mode) } else { None };
    let (codes, scales, types) = with_group_fit(books, scale_format, cfg, |fit| match plan {
        Some(plan) => {
            let (codes, scales, types) = by_kernel(&plan, fit, &layout, x, None)?;
            Ok((codes.each(), scales, types))
        }
        None => per_element(fit, &layout, x),
    })?;
    Ok(CodebookQuantized {
        codebooks: books.to_vec(),
        code_bits: books[0].bits(),
        type_bits: if books.len() > 1 { usize::BITS - (books.len() - 1).leading_zeros() } else { 0 },
        scale_bits: scale_format.bits(),
        group,
        shape: shape.to_vec(),
        axis,
        codes,
        scales,
        types,
    })
}

/// The error for a NaN at `index`.
fn nan_at(index: usize) -> Error {
    Error::NotRepresentable { value: f64::NAN, index, format: "codebook".into(), why: "codebooks have no NaN" }
}

/// Groups longer than this take [`GroupFit::best`]: the kernel's scratch memory grows with the group length
/// (about 300 bytes per element of the longest group in a batch).
const KERNEL_GROUP_MAX: usize = 4096;

/// Codes, scales and type ids of a contiguous layout by the batch kernel, in parallel batches of groups: per
/// group its largest finite magnitude, the scales (rounded in one call per batch), then the kernel. Groups
/// holding an infinity, longer than [`KERNEL_GROUP_MAX`], or with a scale whose half is not exact (below twice
/// float64's smallest normal number, or NaN) take [`GroupFit::best`]; a NaN is the error of the first one, as
/// per element.
#[allow(clippy::type_complexity)]
fn by_kernel<T: Element>(
    plan: &GridBooks,
    fit: &GroupFit,
    layout: &Layout,
    x: &[T],
    pack: Option<u32>,
) -> Result<(Codes<u8>, Vec<f64>, Vec<u8>)> {
    let nb = layout.blocks();
    let empty = empty_block_scale(fit.scale_format);
    let halves = |s: f64| s == 0.0 || s >= 2.0 * f64::MIN_POSITIVE;
    let failed = std::sync::Mutex::new(None);
    let mut per_block = vec![(0.0, 0u8); nb];
    let work = |b0: usize, i0: usize, codes: &mut [u8], blocks: &mut [(f64, u8)]| {
        let slots = plan.slots();
        let (mut jobs, mut aside) = (Vec::with_capacity(blocks.len()), Vec::new());
        let (mut ks, mut raw) = (Vec::with_capacity(blocks.len()), Vec::with_capacity(blocks.len() * slots));
        let mut zero = Vec::with_capacity(blocks.len());
        for (k, r) in layout.block_ranges(b0, blocks.len()).enumerate() {
            let (lo, hi, nonfinite) = finite_range(&x[r.clone()]);
            if nonfinite {
                if let Some(i) = x[r.clone()].iter().position(|v| v.to_f64().is_nan()) {
                    return keep_first(&failed, b0 + k, nan_at(r.start + i));
                }
                aside.push(k);
                continue;
            }
            if r.len() > KERNEL_GROUP_MAX {
                aside.push(k);
                continue;
            }
            let amax = hi.max(-lo);
            raw.extend((0..slots).map(|s| if amax == 0.0 { 0.0 } else { amax / plan.slot_max_abs(s) }));
            ks.push(k);
            zero.push(amax == 0.0);
            jobs.push(GroupJob { at: r.start - i0, len: r.len(), scales: [0.0; 4], fitted: (0, 0.0) });
        }
        let mut rounded = raw.clone();
        fit.scale_rounder.round_at(0, &mut rounded);
        // An all-zero group gets the empty-block scale; any other keeps its rounded scale, even when amax /
        // max|value| underflowed to 0 (a format without zero makes that NaN, and the group goes aside).
        for ((job, &zero), rounded) in jobs.iter_mut().zip(&zero).zip(rounded.chunks_exact(slots)) {
            for (scale, &r) in job.scales[..slots].iter_mut().zip(rounded) {
                *scale = if zero { empty } else { r };
            }
        }
        // Groups with a scale whose half is not exact (float64 subnormal scales, NaN) go aside, in one pass.
        let (mut kept_jobs, mut kept_ks) = (Vec::with_capacity(jobs.len()), Vec::with_capacity(ks.len()));
        for (job, k) in jobs.into_iter().zip(ks) {
            if job.scales[..slots].iter().all(|&s| halves(s)) {
                kept_jobs.push(job);
                kept_ks.push(k);
            } else {
                aside.push(k);
            }
        }
        let (mut jobs, ks) = (kept_jobs, kept_ks);
        fit_groups(plan, &x[i0..i0 + codes.len()], &mut jobs, codes);
        for (&k, job) in ks.iter().zip(&jobs) {
            blocks[k] = (job.fitted.1, job.fitted.0);
        }
        for k in aside {
            let r = layout.block_range(b0 + k);
            let vals: Vec<f64> = x[r.clone()].iter().map(|v| v.to_f64()).collect();
            match fit.best(&vals, r.start, &mut codes[r.start - i0..r.end - i0]) {
                Ok((t, scale)) => blocks[k] = (scale, t as u8),
                Err(e) => return keep_first(&failed, b0 + k, e),
            }
        }
    };
    let codes = layout.run_batches(pack, &mut per_block, work, u64::from);
    if let Some((_, e)) = failed.into_inner().expect("no panic while held") {
        return Err(e);
    }
    let (scales, types) = per_block.into_iter().unzip();
    Ok((codes.expect("callers check that the layout packs"), scales, types))
}

/// Codes, scales and type ids by [`GroupFit::best_at`], one element at a time: the reference.
#[allow(clippy::type_complexity)]
fn per_element<T: Element>(fit: &GroupFit, layout: &Layout, x: &[T]) -> Result<(Vec<u8>, Vec<f64>, Vec<u8>)> {
    let xs: Vec<f64> = x.iter().map(|v| v.to_f64()).collect();
    if let Some(index) = xs.iter().position(|v| v.is_nan()) {
        return Err(nan_at(index));
    }
    let nb = layout.blocks();
    let (mut codes, mut scales, mut types) = (vec![0u8; xs.len()], vec![0.0; nb], vec![0u8; nb]);
    if layout.contiguous() {
        // Groups are independent: batches of them in parallel.
        let failed = std::sync::Mutex::new(None);
        let mut per_block: Vec<(f64, u8)> = vec![(0.0, 0); nb];
        layout.par_batches(&mut codes, &mut per_block, |b0, i0, codes, blocks| {
            for (k, st) in blocks.iter_mut().enumerate() {
                let r = layout.block_range(b0 + k);
                match fit.best(&xs[r.clone()], r.start, &mut codes[r.start - i0..r.end - i0]) {
                    Ok((t, scale)) => *st = (scale, t as u8),
                    Err(e) => {
                        keep_first(&failed, b0 + k, e);
                        return;
                    }
                }
            }
        });
        if let Some((_, e)) = failed.into_inner().expect("no panic while held") {
            return Err(e);
        }
        (scales, types) = per_block.into_iter().unzip();
    } else {
        let mut members: Vec<Vec<usize>> = vec![Vec::new(); nb];
        for i in 0..xs.len() {
            members[layout.block(i)].push(i);
        }
        for (b, idx) in members.iter().enumerate() {
            // Gathered into a run of its own; random draws still follow the elements' indices.
            let vals: Vec<f64> = idx.iter().map(|&i| xs[i]).collect();
            let mut cs = vec![0u8; idx.len()];
            let (t, scale) = fit.best_at(&vals, |j| idx[j] as u64, &mut cs)?;
            for (&i, c) in idx.iter().zip(cs) {
                codes[i] = c;
            }
            scales[b] = scale;
            types[b] = t as u8;
        }
    }
    Ok((codes, scales, types))
}

impl CodebookQuantized {
    /// value * scale for every element, C order.
    pub fn dequantize<T: Element>(&self, out: &mut [T]) -> Result<()> {
        let layout = Layout::new(&self.shape, self.axis, Granularity::Group(self.group))?;
        check_len(self.codes.len(), out.len())?;
        for (i, (o, &c)) in out.iter_mut().zip(&self.codes).enumerate() {
            let b = layout.block(i);
            *o = T::from_f64(self.codebooks[usize::from(self.types[b])].values[usize::from(c)] * self.scales[b]);
        }
        Ok(())
    }

    /// Storage in bits per element: codes, plus a scale and a type id per group.
    pub fn bits_per_element(&self) -> f64 {
        let n = self.codes.len().max(1) as f64;
        self.code_bits as f64 + (self.scale_bits + self.type_bits) as f64 * self.scales.len() as f64 / n
    }
}
