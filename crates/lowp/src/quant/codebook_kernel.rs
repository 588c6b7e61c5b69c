//! The batch kernel of [`quantize_grouped`](super::codebook) for codebooks of small dyadic values (BitMoD's FP4
//! and FP3 variants) in deterministic modes: the per-element search of
//! [`Codebook::index_of`](super::Codebook::index_of), done across vector lanes.
//!
//! Why it can be: every value of such a codebook is a multiple of 1/2 and at most 8 in magnitude, so every
//! midpoint is a multiple of 1/4, and each deterministic rounding of q = x / scale depends only on where q lies
//! on the grid of multiples of 1/4: on a grid point, or strictly between two. (Directed modes compare q with
//! the values; nearest modes compare the float64 differences q - lo and hi - q, which are exact near the
//! midpoint: see [`GridBooks::new`].) That position is coded as one small integer h, "half-cells" of 1/8:
//! h = 8q on a grid point, the odd number between otherwise, clamped to [-65, 65]; the code is then the number
//! of a codebook's thresholds below h, and its value a running sum of steps: compares and adds on bytes.
//!
//! h comes from the product x * (4 / scale) where that is safely inside a cell (the affine and NVFP4 quantizers'
//! trick), else from the float64 quotient. The squared errors are the reference's float64 operations in the
//! reference's order, each group's four sums kept in independent chains, eight groups at a time.

use super::Codebook;
use crate::round::isa_dispatched;
use crate::{Element, RoundingMode, Typed};

/// Variants per group the kernel is laid out for (BitMoD's four; fewer codebooks are padded by repeating the
/// last, which never wins: ties keep the lower type id).
const BOOKS: usize = 4;
/// Most thresholds of one codebook (16 values).
const THRESHOLDS: usize = 15;
/// Byte lanes of the threshold loops: 16 elements times the 4 variants.
const LANES: usize = 64;
/// Half-cells beyond every threshold: |h| is clamped to it (the values are at most 8: h at most 64).
const H_MAX: i32 = 65;
/// Groups whose error sums are interleaved.
const GROUPS: usize = 8;

/// The tables of the kernel for a list of codebooks and a deterministic rounding mode.
#[derive(Clone, Debug)]
pub(super) struct GridBooks {
    /// Codebooks given (at most [`BOOKS`]).
    books: usize,
    /// Per variant, its scale slot: variants with the same largest magnitude share the scale.
    slot: [usize; BOOKS],
    /// Scale slots in use.
    slots: usize,
    /// Per slot, the largest magnitude of its codebooks.
    slot_max_abs: [f64; BOOKS],
    /// Thresholds used (the longest codebook's count).
    used: usize,
    /// Per variant: code = the number of its thresholds below h (padded with i8::MAX: never below).
    thresholds: [[i8; THRESHOLDS]; BOOKS],
    /// Interleaved for the lanes [element][variant]: `lane_thresholds[i][4 j + t] = thresholds[t][i]`.
    lane_thresholds: [[i8; LANES]; THRESHOLDS],
    /// Twice the value added when h passes the threshold, interleaved alike.
    lane_steps: [[i8; LANES]; THRESHOLDS],
    /// Twice the first value of each variant, interleaved alike.
    lane_first: [i8; LANES],
}

impl GridBooks {
    /// The tables, when the kernel gives what [`Codebook::index_of`] gives for every quotient: `mode`
    /// deterministic (not round-to-odd, which is an error there), 1 to 4 codebooks of at most 16 values, each a
    /// multiple of 1/2 and at most 8 in magnitude, and each two neighbours a < b either of one sign with
    /// |larger| <= 2 |smaller|, or one of them 0.
    ///
    /// Those last conditions make the nearest modes' differences dl = q - a, dh = b - q exact wherever they
    /// could compare wrongly. Say 0 <= a < q < b (the negative side is its mirror image). If a > 0, then
    /// b <= 2a, so a <= q <= 2a and b/2 <= a < q <= b: both differences are exact (Sterbenz). If a = 0, dl = q
    /// is exact, dh is exact for q >= b/2, and for q < b/2, dh >= b/2 > q = dl after rounding too. So
    /// `index_of` compares q with the midpoints exactly, and its result depends only on q's cell of the 1/4
    /// grid: it is tabulated at one point per half-cell (h / 8).
    pub(super) fn new(books: &[Codebook], mode: RoundingMode) -> Option<GridBooks> {
        use RoundingMode::*;
        if !matches!(mode, NearestEven | NearestZero | NearestAway | TowardPositive | TowardNegative | TowardZero)
            || books.is_empty()
            || books.len() > BOOKS
        {
            return None;
        }
        let fits = |c: &[f64]| {
            c.len() <= THRESHOLDS + 1
                && c.iter().all(|&v| v.abs() <= 8.0 && (2.0 * v).fract() == 0.0)
                && c.windows(2).all(|w| {
                    let (a, b) = (w[0].abs().min(w[1].abs()), w[0].abs().max(w[1].abs()));
                    a == 0.0 || (w[0] * w[1] > 0.0 && b <= 2.0 * a)
                })
        };
        if !books.iter().all(|b| fits(b.values())) {
            return None;
        }
        let mut g = GridBooks {
            books: books.len(),
            slot: [0; BOOKS],
            slots: 0,
            slot_max_abs: [0.0; BOOKS],
            used: 0,
            thresholds: [[i8::MAX; THRESHOLDS]; BOOKS],
            lane_thresholds: [[i8::MAX; LANES]; THRESHOLDS],
            lane_steps: [[0; LANES]; THRESHOLDS],
            lane_first: [0; LANES],
        };
        for t in 0..BOOKS {
            let book = &books[t.min(books.len() - 1)];
            let m = book.max_abs();
            g.slot[t] = match g.slot_max_abs[..g.slots].iter().position(|&s| s == m) {
                Some(s) => s,
                None => {
                    g.slot_max_abs[g.slots] = m;
                    g.slots += 1;
                    g.slots - 1
                }
            };
            let c = book.values();
            // The code at each half-cell; threshold i is the last half-cell whose code is at most i.
            let code: Vec<usize> = (-H_MAX..=H_MAX)
                .map(|h| book.index_of(f64::from(h) / 8.0, mode, 0, 0).ok())
                .collect::<Option<Vec<usize>>>()?;
            if code.windows(2).any(|w| w[1] < w[0]) {
                return None; // not monotone: not a deterministic rounding after all
            }
            for i in 0..c.len() - 1 {
                let last = code.iter().rposition(|&k| k <= i)?;
                g.thresholds[t][i] = (last as i32 - H_MAX) as i8;
            }
            g.used = g.used.max(c.len() - 1);
            for lane in (t..LANES).step_by(BOOKS) {
                g.lane_first[lane] = (2.0 * c[0]) as i8;
                for i in 0..c.len() - 1 {
                    g.lane_thresholds[i][lane] = g.thresholds[t][i];
                    g.lane_steps[i][lane] = (2.0 * (c[i + 1] - c[i])) as i8;
                }
            }
        }
        Some(g)
    }

    /// Scale slots in use.
    pub(super) fn slots(&self) -> usize {
        self.slots
    }

    /// The largest magnitude of the codebooks of scale slot `s`.
    pub(super) fn slot_max_abs(&self, s: usize) -> f64 {
        self.slot_max_abs[s]
    }
}

/// One group for [`fit_groups`]: its elements `at..at + len` of the batch and its scale per slot (rounded to
/// the scale format; 0 stores zeros); `fitted` receives (type id, scale).
#[derive(Clone, Copy, Debug)]
pub(super) struct GroupJob {
    pub(super) at: usize,
    pub(super) len: usize,
    pub(super) scales: [f64; BOOKS],
    pub(super) fitted: (u8, f64),
}

isa_dispatched! {
/// For each group of `jobs` (whose elements are all finite): the codebook with the least squared error of the
/// finite values (ties to the lower type id), its codes into `codes` (at the group's place), and (type id,
/// scale) into the job: what `GroupFit::best` gives. Compiled per instruction set.
pub(super) fn fit_groups<T: Element>(plan: &GridBooks, x: &[T], jobs: &mut [GroupJob], codes: &mut [u8]) {
    let longest = jobs.iter().map(|j| j.len).max().unwrap_or(0);
    let mut buf = Buffers { h: vec![0; GROUPS * BOOKS * longest], sq: vec![0.0; GROUPS * BOOKS * longest] };
    let mut rest = jobs;
    while !rest.is_empty() {
        let n = rest[0].len;
        let same = rest.iter().take(GROUPS).take_while(|j| j.len == n).count();
        let (now, later) = rest.split_at_mut(if same == GROUPS { GROUPS } else { 1 });
        match (now.len() == GROUPS, plan.used <= 7) {
            (true, true) => fit_many::<T, GROUPS, 7>(plan, x, now, codes, &mut buf),
            (true, false) => fit_many::<T, GROUPS, THRESHOLDS>(plan, x, now, codes, &mut buf),
            (false, true) => fit_many::<T, 1, 7>(plan, x, now, codes, &mut buf),
            (false, false) => fit_many::<T, 1, THRESHOLDS>(plan, x, now, codes, &mut buf),
        }
        rest = later;
    }
}
}

/// Scratch memory of [`fit_groups`], for [`GROUPS`] groups.
struct Buffers {
    /// Per group and scale slot, each element's half-cell.
    h: Vec<i8>,
    /// Per element, each group's squared error in each variant: rows [group][variant].
    sq: Vec<f64>,
}

/// Elements per step of [`fit_many`]: 64 byte lanes of [element][variant].
const E: usize = LANES / BOOKS;

/// [`fit_groups`] of `G` groups of one length, in steps of [`E`] elements: their half-cells per scale slot,
/// twice their values and their squared errors per variant; then the sums and the winner's codes.
#[inline(always)]
fn fit_many<T: Element, const G: usize, const N: usize>(
    plan: &GridBooks,
    x: &[T],
    jobs: &mut [GroupJob],
    codes: &mut [u8],
    buf: &mut Buffers,
) {
    let n = jobs[0].len;
    let row = G * BOOKS;
    let (h, sq) = (&mut buf.h[..G * BOOKS * n], &mut buf.sq[..G * BOOKS * n]);
    let mut scale = [[0.0f64; BOOKS]; G];
    for (sg, job) in scale.iter_mut().zip(jobs.iter()) {
        for (s, &slot) in sg.iter_mut().zip(&plan.slot) {
            *s = job.scales[slot];
        }
    }
    for (g, job) in jobs.iter().enumerate() {
        let xg = &x[job.at..job.at + n];
        let hg = &mut h[g * BOOKS * n..(g + 1) * BOOKS * n];
        let cells: [Cells; BOOKS] = std::array::from_fn(|s| Cells::new(job.scales[s]));
        // value * scale as val2 * (scale / 2): the same real product (the callers give scales whose half is
        // exact), rounded once, as the reference's values[k] * scale.
        let half: [f64; LANES] = std::array::from_fn(|l| scale[g][l % BOOKS] * 0.5);
        let step = Step { plan, cells: &cells, half: &half, row, n };
        let mut xs = xg.chunks_exact(E);
        for (c, xc) in (&mut xs).enumerate() {
            step.run::<T, N>(c * E, xc.try_into().expect("chunks of E"), E, hg, &mut sq[g * BOOKS..]);
        }
        let rest = xs.remainder();
        if !rest.is_empty() {
            let mut pad = [T::from_f64(0.0); E];
            pad[..rest.len()].copy_from_slice(rest);
            step.run::<T, N>(n - rest.len(), &pad, rest.len(), hg, &mut sq[g * BOOKS..]);
        }
    }
    // Added in element order, as the reference does, in independent chains: G groups times the 4 variants, one
    // contiguous row of squares per element.
    let mut err = [0.0f64; GROUPS * BOOKS];
    for r in sq.chunks_exact(row) {
        for l in 0..row {
            err[l] += r[l];
        }
    }
    for (g, job) in jobs.iter_mut().enumerate() {
        let mut best = 0;
        for t in 1..plan.books {
            if err[g * BOOKS + t] < err[g * BOOKS + best] {
                best = t;
            }
        }
        job.fitted = (best as u8, scale[g][best]);
        let s = plan.slot[best];
        let hs = &h[g * BOOKS * n + s * n..][..n];
        code_of::<N>(&plan.thresholds[best], hs, &mut codes[job.at..job.at + n]);
    }
}

/// One step of [`fit_many`] in one group.
struct Step<'a> {
    plan: &'a GridBooks,
    /// Per scale slot.
    cells: &'a [Cells; BOOKS],
    /// Half the scale of each lane's variant.
    half: &'a [f64; LANES],
    /// Squares per row (element).
    row: usize,
    /// Elements in the group.
    n: usize,
}

impl Step<'_> {
    /// Elements `j0..j0 + len` of the group (`xc`, padded to [`E`]): their half-cells into `h` (per slot, `n`
    /// each) and their squared errors into the rows of `sq` (from this group's place in the first row).
    #[inline(always)]
    fn run<T: Element, const N: usize>(&self, j0: usize, xc: &[T; E], len: usize, h: &mut [i8], sq: &mut [f64]) {
        let (plan, n) = (self.plan, self.n);
        let mut hs = [[0i8; E]; BOOKS];
        for s in 0..plan.slots {
            self.cells[s].of(xc, &mut hs[s]);
            h[s * n + j0..s * n + j0 + len].copy_from_slice(&hs[s][..len]);
        }
        let hv: [[i8; E]; BOOKS] = std::array::from_fn(|t| hs[plan.slot[t]]);
        let val2 = values::<N>(plan, &hv);
        let xf: [f64; E] = std::array::from_fn(|e| xc[e].to_f64());
        let xl: [f64; LANES] = std::array::from_fn(|l| xf[l / BOOKS]);
        let mut out = [0.0f64; LANES];
        for l in 0..LANES {
            let d = xl[l] - f64::from(val2[l]) * self.half[l];
            out[l] = d * d;
        }
        for (e, o) in out.chunks_exact(BOOKS).take(len).enumerate() {
            sq[(j0 + e) * self.row..][..BOOKS].copy_from_slice(o);
        }
    }
}

/// Twice the value of [`E`] elements in each variant, [element][variant], from their half-cells per variant,
/// over the first `N` thresholds (the rest are padding).
#[inline(always)]
fn values<const N: usize>(plan: &GridBooks, hv: &[[i8; E]; BOOKS]) -> [i8; LANES] {
    let mut hh = [0i8; LANES];
    for e in 0..E {
        for t in 0..BOOKS {
            hh[e * BOOKS + t] = hv[t][e];
        }
    }
    // Two chains of additions rather than one: the compares are independent.
    let (mut even, mut odd) = (plan.lane_first, [0i8; LANES]);
    for i in 0..N {
        let (th, st) = (&plan.lane_thresholds[i], &plan.lane_steps[i]);
        let acc = if i % 2 == 0 { &mut even } else { &mut odd };
        for l in 0..LANES {
            acc[l] = acc[l].wrapping_add(if hh[l] > th[l] { st[l] } else { 0 });
        }
    }
    std::array::from_fn(|l| even[l].wrapping_add(odd[l]))
}

/// The codes of one variant from the elements' half-cells: the number of its thresholds below each.
#[inline(always)]
fn code_of<const N: usize>(thresholds: &[i8; THRESHOLDS], h: &[i8], codes: &mut [u8]) {
    let mut hs = h.chunks_exact(LANES);
    let mut cs = codes.chunks_exact_mut(LANES);
    for (hc, cc) in (&mut hs).zip(&mut cs) {
        let count = count_below::<N>(thresholds, hc.try_into().expect("LANES"));
        cc.copy_from_slice(&count);
    }
    let (rest, out) = (hs.remainder(), cs.into_remainder());
    if !rest.is_empty() {
        let mut pad = [0i8; LANES];
        pad[..rest.len()].copy_from_slice(rest);
        out.copy_from_slice(&count_below::<N>(thresholds, &pad)[..out.len()]);
    }
}

/// The number of the first `N` thresholds below each of [`LANES`] half-cells.
#[inline(always)]
fn count_below<const N: usize>(thresholds: &[i8; THRESHOLDS], h: &[i8; LANES]) -> [u8; LANES] {
    let mut acc = [0u8; LANES];
    for &th in &thresholds[..N] {
        for l in 0..LANES {
            acc[l] += u8::from(h[l] > th);
        }
    }
    acc
}

/// The half-cells of x / s for one scale s (0 for every element when s is 0, as the reference's quotient).
struct Cells {
    s: f64,
    /// 4 / s in float64 and float32, when a normal number.
    r: Option<f64>,
    r32: Option<f32>,
}

impl Cells {
    fn new(s: f64) -> Cells {
        let r = 4.0 / s;
        let r32 = r as f32;
        Cells { s, r: r.is_normal().then_some(r), r32: r32.is_normal().then_some(r32) }
    }

    /// The half-cells of [`E`] elements.
    #[inline(always)]
    fn of<T: Element>(&self, x: &[T; E], out: &mut [i8; E]) {
        if self.s == 0.0 {
            *out = [0; E];
            return;
        }
        let all = match T::typed(x) {
            Typed::F32(x) => self.r32.is_some_and(|r| by_product_f32(x.try_into().expect("E"), r, out)),
            Typed::F64(x) => self.r.is_some_and(|r| {
                let (lo, hi) = out.split_at_mut(E / 2);
                let a = by_product_f64(x[..E / 2].try_into().expect("E"), r, lo.try_into().expect("E"));
                a & by_product_f64(x[E / 2..].try_into().expect("E"), r, hi.try_into().expect("E"))
            }),
        };
        if !all {
            for (o, v) in out.iter_mut().zip(x) {
                *o = exact_half_cell(v.to_f64() / self.s);
            }
        }
    }
}

/// The half-cell of the float64 quotient `q`: 8q on the grid of multiples of 1/4, else the odd number between,
/// clamped to [-H_MAX, H_MAX] (and 0 for -0).
#[inline(always)]
fn exact_half_cell(q: f64) -> i8 {
    const SHIFT: f64 = 6755399441055744.0; // 1.5 * 2^52
    let g = (4.0 * q).clamp(-32.5, 32.5); // exact (or beyond every threshold either way)
    let r = (g + SHIFT) - SHIFT; // g's nearest integer: exact below 2^51
    let h = 2.0 * r
        + if g > r {
            1.0
        } else if g < r {
            -1.0
        } else {
            0.0
        };
    h as i8
}

/// The half-cells of [`E`] float32 elements from the product x * r (r = 4 / s in float32), and whether each is
/// safely inside its cell: further than 2^-20 of its magnitude from every integer (and above 2^-100: no
/// underflow).
///
/// r and the product each round once in float32: the product is within 2^-23 (plus a little) of 4x / s
/// relative to itself, and 4 times the float64 quotient within 2^-52. So a product that far from every
/// integer lies in the same cell as 4q. Its integer comes out of the bit pattern of g + 1.5 * 2^23, after
/// clamping g to +-32.5 (beyond every threshold, and inside a cell).
#[inline(always)]
fn by_product_f32(x: &[f32; E], r: f32, out: &mut [i8; E]) -> bool {
    const SHIFT: f32 = 12582912.0; // 1.5 * 2^23
    const MARGIN: f32 = 1.0 / 1048576.0; // 2^-20
    const TINY: f32 = 1.0 / 1267650600228229401496703205376.0; // 2^-100
    let mut all = true;
    for l in 0..E {
        let g = (x[l] * r).clamp(-32.5, 32.5);
        let t = g + SHIFT;
        let d = g - (t - SHIFT);
        let k = t.to_bits() as i32 - 0x4B40_0000;
        out[l] = (2 * k + if d > 0.0 { 1 } else { -1 }) as i8;
        all &= (d.abs() > g.abs() * MARGIN) & (g.abs() > TINY);
    }
    all
}

/// [`by_product_f32`] for float64 data, with r = 4 / s in float64 and a margin of 2^-50: 4 / s and the product
/// round once each, the quotient once, so they are within 3 units of the 53rd bit.
#[inline(always)]
fn by_product_f64(x: &[f64; E / 2], r: f64, out: &mut [i8; E / 2]) -> bool {
    const SHIFT: f64 = 6755399441055744.0; // 1.5 * 2^52
    const MARGIN: f64 = 1.0 / 1125899906842624.0; // 2^-50
    const TINY: f64 = 1.0 / 1267650600228229401496703205376.0; // 2^-100
    let mut all = true;
    for l in 0..E / 2 {
        let g = (x[l] * r).clamp(-32.5, 32.5);
        let t = g + SHIFT;
        let d = g - (t - SHIFT);
        let k = t.to_bits() as i64 - 0x4338_0000_0000_0000;
        out[l] = (2 * k + if d > 0.0 { 1 } else { -1 }) as i8;
        all &= (d.abs() > g.abs() * MARGIN) & (g.abs() > TINY);
    }
    all
}
