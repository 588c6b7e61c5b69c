//! Where blocks lie in a C-order tensor: per tensor, per channel along an axis, or per group of G
//! consecutive elements along an axis.

use std::ops::Range;

use rayon::prelude::*;

use super::tensor::{pack_into, packed_bytes};
use super::Granularity;
use crate::error::{Error, Result};
use crate::round::{isa_dispatched, prefetch};
use crate::{Element, Typed};

/// The range [min, max] of the finite values of `block` together with 0, and whether it holds a non-finite
/// value (inf or NaN). Scanned in the data's own type (min and max are exact in it), in independent lanes of
/// one vector so that the scan vectorizes: the order of the comparisons does not change the result.
///
/// The scan is usually a quantizer's first read of its input, so it also asks for the data 4 KB further on
/// (the next blocks), which one thread otherwise does not have in flight: +10% on MXFP4 quantization.
pub(crate) fn finite_range<T: Element>(block: &[T]) -> (f64, f64, bool) {
    let ahead = 4096 / std::mem::size_of::<T>();
    prefetch(block, ahead, block.len().min(ahead)); // a long block's first 4 KB ahead: it streams anyway
    match T::typed(block) {
        Typed::F32(b) => {
            let (lo, hi, bad) = scan_f32(b);
            (f64::from(lo), f64::from(hi), bad)
        }
        Typed::F64(b) => scan_f64(b),
    }
}

/// The body of [`finite_range`] for one float type, `$lanes` lanes wide.
macro_rules! range_scan {
    ($name:ident, $f:ty, $lanes:expr) => {
        isa_dispatched! {
        /// [`finite_range`] of float data of this type, compiled per instruction set (the scan is a
        /// quarter of a group quantizer's time in a baseline build).
        fn $name(block: &[$f]) -> ($f, $f, bool) {
            const LANES: usize = $lanes;
            let (mut mn, mut mx, mut bad) = ([0.0 as $f; LANES], [0.0 as $f; LANES], [false; LANES]);
            let mut step = |j: usize, v: $f| {
                let finite = v.abs() < <$f>::INFINITY;
                let v = if finite { v } else { 0.0 };
                mn[j] = if v < mn[j] { v } else { mn[j] };
                mx[j] = if v > mx[j] { v } else { mx[j] };
                bad[j] |= !finite;
            };
            let chunks = block.chunks_exact(LANES);
            let rest = chunks.remainder();
            for c in chunks {
                for (j, &v) in c.iter().enumerate() {
                    step(j, v);
                }
            }
            for (j, &v) in rest.iter().enumerate() {
                step(j, v);
            }
            // Halving in place: shuffles within the vector, not a scalar walk through memory (which took
            // most of the time on blocks of 32).
            let mut w = LANES / 2;
            while w > 0 {
                for j in 0..w {
                    mn[j] = if mn[j + w] < mn[j] { mn[j + w] } else { mn[j] };
                    mx[j] = if mx[j + w] > mx[j] { mx[j + w] } else { mx[j] };
                    bad[j] |= bad[j + w];
                }
                w /= 2;
            }
            (mn[0], mx[0], bad[0])
        }
        }
    };
}
range_scan!(scan_f32, f32, 16);
range_scan!(scan_f64, f64, 8);

/// The largest finite magnitude of `block` (0 when there is none), and whether it holds a non-finite value
/// for which `refused` is true (looked for only when there are non-finite values).
pub(crate) fn finite_amax<T: Element>(block: &[T], refused: impl Fn(f64) -> bool) -> (f64, bool) {
    let (lo, hi, nonfinite) = finite_range(block);
    let refused_here = nonfinite
        && block.iter().any(|v| {
            let v = v.to_f64();
            !v.is_finite() && refused(v)
        });
    (hi.max(-lo), refused_here)
}

/// Element codes as a batch quantizer produced them: one value each, or already packed (see
/// [`Layout::run_batches`]).
pub(crate) enum Codes<C> {
    Each(Vec<C>),
    Packed(Vec<u8>),
}

impl<C> Codes<C> {
    /// The codes of a run that was asked for one value each.
    pub(crate) fn each(self) -> Vec<C> {
        match self {
            Codes::Each(v) => v,
            Codes::Packed(_) => unreachable!("asked for unpacked codes"),
        }
    }

    /// The packed bytes, if these are packed.
    pub(crate) fn packed(self) -> Option<Vec<u8>> {
        match self {
            Codes::Each(_) => None,
            Codes::Packed(bytes) => Some(bytes),
        }
    }
}

/// A run of elements of a batch (from its element `at`, `len` of them) that share one operand `by` (a
/// block's divisor or factor): batch kernels take a list of them, one call per batch rather than per block.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Span {
    pub(crate) at: usize,
    pub(crate) len: usize,
    pub(crate) by: f64,
}

/// `f` on `n` zeros of float64 scratch memory kept by the thread between calls: a batch's 128 KB buffer is
/// past the allocator's threshold for fresh pages from the system, which a new buffer per batch paid for in
/// page faults. (The buffer is taken out while in use, so a nested call just allocates its own.)
pub(crate) fn with_scratch<R>(n: usize, f: impl FnOnce(&mut [f64]) -> R) -> R {
    thread_local! {
        static SCRATCH: std::cell::Cell<Vec<f64>> = const { std::cell::Cell::new(Vec::new()) };
    }
    let mut buf = SCRATCH.take();
    buf.clear();
    buf.resize(n, 0.0);
    let out = f(&mut buf);
    if buf.capacity() <= 2 * BATCH {
        SCRATCH.set(buf); // kept; a larger one (blocks longer than a batch) is given back
    }
    out
}

/// Elements per batch of whole blocks handed to one thread.
const BATCH: usize = 1 << 14;

/// A C-order tensor seen as (outer, axis length, inner), and the block of each element.
pub(crate) struct Layout {
    outer: usize,
    len: usize,
    inner: usize,
    gran: Granularity,
}

impl Layout {
    pub(crate) fn new(shape: &[usize], axis: usize, gran: Granularity) -> Result<Layout> {
        if axis >= shape.len().max(1) {
            return Err(Error::InvalidOption(format!("axis {axis} is out of range for a tensor of shape {shape:?}")));
        }
        if super::tensor::checked_len(shape).is_none() {
            return Err(Error::InvalidOption(format!(
                "a tensor of shape {shape:?} has more elements than fit in memory"
            )));
        }
        let dims = if shape.is_empty() { &[1][..] } else { shape };
        Ok(Layout {
            outer: dims[..axis].iter().product(),
            len: dims[axis],
            inner: dims[axis + 1..].iter().product(),
            gran,
        })
    }
    pub(crate) fn len(&self) -> usize {
        self.outer * self.len * self.inner
    }
    fn groups(&self, g: usize) -> usize {
        self.len.div_ceil(g)
    }
    pub(crate) fn blocks(&self) -> usize {
        match self.gran {
            Granularity::Tensor => 1,
            Granularity::Channel => self.len,
            Granularity::Group(g) => self.outer * self.groups(g) * self.inner,
        }
    }
    /// The shape of the grid of blocks, whose C order is the block order: the tensor's shape with the axis
    /// cut into groups (per group), the axis alone (per channel), or `[1]` (per tensor).
    pub(crate) fn grid_shape(&self, shape: &[usize], axis: usize) -> Vec<usize> {
        match self.gran {
            Granularity::Tensor => vec![1],
            Granularity::Channel => vec![self.len],
            Granularity::Group(g) => {
                let mut grid = if shape.is_empty() { vec![1] } else { shape.to_vec() };
                grid[axis] = self.groups(g);
                grid
            }
        }
    }
    pub(crate) fn block(&self, i: usize) -> usize {
        let j = i % self.inner;
        let k = (i / self.inner) % self.len;
        let o = i / (self.inner * self.len);
        match self.gran {
            Granularity::Tensor => 0,
            Granularity::Channel => k,
            Granularity::Group(g) => (o * self.groups(g) + k / g) * self.inner + j,
        }
    }

    /// Whether every block is one run of consecutive elements, in block order: groups along the last axis,
    /// channels along the first, or the whole tensor. The fast paths need it.
    pub(crate) fn contiguous(&self) -> bool {
        match self.gran {
            Granularity::Tensor => true,
            Granularity::Channel => self.outer == 1,
            Granularity::Group(_) => self.inner == 1,
        }
    }

    /// The elements of block `b` (for a [`contiguous`](Self::contiguous) layout).
    pub(crate) fn block_range(&self, b: usize) -> Range<usize> {
        match self.gran {
            Granularity::Tensor => 0..self.len(),
            Granularity::Channel => b * self.inner..(b + 1) * self.inner,
            Granularity::Group(g) => {
                let groups = self.groups(g).max(1); // no group at all: no block to ask about
                let (o, k) = (b / groups, b % groups);
                let start = o * self.len + k * g;
                start..(start + g).min((o + 1) * self.len)
            }
        }
    }

    /// The elements of blocks `b0 .. b0 + count` (of a [`contiguous`](Self::contiguous) layout), in order:
    /// each starts where the one before ended, so one division finds the first and the rest are additions.
    pub(crate) fn block_ranges(&self, b0: usize, count: usize) -> impl Iterator<Item = Range<usize>> {
        let (unit, row) = match self.gran {
            Granularity::Tensor => (self.len(), self.len()),
            Granularity::Channel => (self.inner, self.len()),
            Granularity::Group(g) => (g, self.len),
        };
        let mut start = if count == 0 { 0 } else { self.block_range(b0).start };
        let mut in_row = if row == 0 { 0 } else { start % row };
        (0..count).map(move |_| {
            let n = unit.min(row - in_row);
            let r = start..start + n;
            start += n;
            in_row += n;
            if in_row == row {
                in_row = 0;
            }
            r
        })
    }

    /// The batches of consecutive whole blocks handed to one thread each: (first block, end block, first
    /// element, end element), for a [`contiguous`](Self::contiguous) layout.
    fn batches(&self) -> Vec<(usize, usize, usize, usize)> {
        let nb = self.blocks();
        if nb == 0 {
            return Vec::new(); // no element either
        }
        let per_batch = (BATCH / self.block_range(0).len().max(1)).max(1);
        (0..nb)
            .step_by(per_batch)
            .map(|b0| {
                let b1 = (b0 + per_batch).min(nb);
                (b0, b1, self.block_range(b0).start, self.block_range(b1 - 1).end)
            })
            .collect()
    }

    /// Runs `f(first block, first element, per-element slice, per-block slice)` on batches of consecutive whole
    /// blocks of a [`contiguous`](Self::contiguous) layout, in parallel. `per_element` has one item per element,
    /// `per_block` one per block.
    pub(crate) fn par_batches<A: Send, B: Send>(
        &self,
        per_element: &mut [A],
        per_block: &mut [B],
        f: impl Fn(usize, usize, &mut [A], &mut [B]) + Sync,
    ) {
        debug_assert!(self.contiguous() && per_element.len() == self.len() && per_block.len() == self.blocks());
        let spans = self.batches();
        let mut batches = Vec::with_capacity(spans.len());
        let (mut elems, mut blocks) = (per_element, per_block);
        for (b0, b1, i0, i1) in spans {
            let (e, rest_e) = std::mem::take(&mut elems).split_at_mut(i1 - i0);
            let (b, rest_b) = std::mem::take(&mut blocks).split_at_mut(b1 - b0);
            batches.push((b0, i0, e, b));
            (elems, blocks) = (rest_e, rest_b);
        }
        batches.into_par_iter().for_each(|(b0, i0, e, b)| f(b0, i0, e, b));
    }

    /// Whether [`par_batches_packed`](Self::par_batches_packed) runs with `bits` bits per value: a
    /// [`contiguous`](Self::contiguous) layout whose batches all start on a byte boundary.
    pub(crate) fn packs(&self, bits: u32) -> bool {
        self.contiguous()
            && self.batches().iter().all(|&(_, _, i0, _)| (i0 as u128 * u128::from(bits)).is_multiple_of(8))
    }

    /// [`par_batches`](Self::par_batches) writing the per-element results straight into their packed form:
    /// each batch fills a scratch slice of its own, whose values `low(c)` are then packed `bits` to a value
    /// into the batch's bytes of the result. Saves a tensor-sized intermediate array and a pass over it. None
    /// (and `f` not run) when some batch would start inside a byte (rows whose bit length is not a multiple of
    /// 8); the caller then takes the unpacked route.
    pub(crate) fn par_batches_packed<C: Copy + Default + Send, B: Send>(
        &self,
        bits: u32,
        per_block: &mut [B],
        f: impl Fn(usize, usize, &mut [C], &mut [B]) + Sync,
        low: impl Fn(C) -> u64 + Sync,
    ) -> Option<Vec<u8>> {
        debug_assert!(self.contiguous() && per_block.len() == self.blocks());
        if !self.packs(bits) {
            return None;
        }
        let spans = self.batches();
        let bit = |i: usize| i as u128 * u128::from(bits);
        let mut packed = vec![0u8; packed_bytes(self.len(), bits)];
        let mut batches = Vec::with_capacity(spans.len());
        let (mut bytes, mut blocks) = (&mut packed[..], per_block);
        for (b0, b1, i0, i1) in spans {
            // The next batch starts on a byte boundary: this one owns every byte up to it, the last a partial one.
            let n = (bit(i1).div_ceil(8) - bit(i0) / 8) as usize;
            let (o, rest_o) = std::mem::take(&mut bytes).split_at_mut(n);
            let (b, rest_b) = std::mem::take(&mut blocks).split_at_mut(b1 - b0);
            batches.push((b0, i0, i1 - i0, o, b));
            (bytes, blocks) = (rest_o, rest_b);
        }
        batches.into_par_iter().for_each(|(b0, i0, n, o, b)| {
            let mut codes = vec![C::default(); n];
            f(b0, i0, &mut codes, b);
            pack_into(&codes, bits, &low, o);
        });
        Some(packed)
    }

    /// [`par_batches`](Self::par_batches) into a fresh array of one value per element (`pack` None), or
    /// [`par_batches_packed`](Self::par_batches_packed) with `pack` bits per value (None when it declines).
    pub(crate) fn run_batches<C: Copy + Default + Send, B: Send>(
        &self,
        pack: Option<u32>,
        per_block: &mut [B],
        f: impl Fn(usize, usize, &mut [C], &mut [B]) + Sync,
        low: impl Fn(C) -> u64 + Sync,
    ) -> Option<Codes<C>> {
        match pack {
            None => {
                let mut codes = vec![C::default(); self.len()];
                self.par_batches(&mut codes, per_block, f);
                Some(Codes::Each(codes))
            }
            Some(bits) => self.par_batches_packed(bits, per_block, f, low).map(Codes::Packed),
        }
    }

    /// Per block: the largest finite magnitude (0 when there is none), and whether the block holds a
    /// non-finite value for which `refused` is true (a value the scheme's element type cannot hold).
    pub(crate) fn block_amax<T: Element>(
        &self,
        x: &[T],
        refused: impl Fn(f64) -> bool + Sync,
    ) -> (Vec<f64>, Vec<bool>) {
        let nb = self.blocks();
        let (mut amax, mut special) = (vec![0.0f64; nb], vec![false; nb]);
        if self.contiguous() {
            let mut both: Vec<(f64, bool)> = vec![(0.0, false); nb];
            let mut scratch = vec![(); x.len()];
            self.par_batches(&mut scratch, &mut both, |b0, _, _, out| {
                for (k, o) in out.iter_mut().enumerate() {
                    *o = finite_amax(&x[self.block_range(b0 + k)], &refused);
                }
            });
            return both.into_iter().unzip();
        }
        for (i, v) in x.iter().enumerate() {
            let (v, b) = (v.to_f64(), self.block(i));
            if v.is_finite() {
                amax[b] = amax[b].max(v.abs());
            } else if refused(v) {
                special[b] = true;
            }
        }
        (amax, special)
    }
}
