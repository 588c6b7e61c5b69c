//! Where blocks lie in a C-order tensor: per tensor, per channel along an axis, or per group of G
//! consecutive elements along an axis.

use std::ops::Range;

use rayon::prelude::*;

use super::Granularity;
use crate::error::{Error, Result};
use crate::round::isa_dispatched;
use crate::Element;

isa_dispatched! {
/// The range [min, max] of the finite values of `block` together with 0, and whether it holds a non-finite
/// value (inf or NaN). Eight independent lanes, so that the scan vectorizes: min and max are exact, so the
/// order of the comparisons does not change the result.
/// Compiled per instruction set: the scan is a quarter of a group quantizer's time in the baseline build.
pub(crate) fn finite_range<T: Element>(block: &[T]) -> (f64, f64, bool) {
    const LANES: usize = 8;
    let (mut mn, mut mx, mut bad) = ([0.0f64; LANES], [0.0f64; LANES], [false; LANES]);
    let mut step = |j: usize, v: &T| {
        let v = v.to_f64();
        let finite = v.abs() < f64::INFINITY;
        let v = if finite { v } else { 0.0 };
        mn[j] = if v < mn[j] { v } else { mn[j] };
        mx[j] = if v > mx[j] { v } else { mx[j] };
        bad[j] |= !finite;
    };
    let chunks = block.chunks_exact(LANES);
    let rest = chunks.remainder();
    for c in chunks {
        for (j, v) in c.iter().enumerate() {
            step(j, v);
        }
    }
    for (j, v) in rest.iter().enumerate() {
        step(j, v);
    }
    let lo = mn.iter().fold(0.0f64, |a, &b| if b < a { b } else { a });
    let hi = mx.iter().fold(0.0f64, |a, &b| if b > a { b } else { a });
    (lo, hi, bad.iter().any(|&b| b))
}
}

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
        let nb = self.blocks();
        if nb == 0 {
            return; // no element either
        }
        let per_batch = (BATCH / self.block_range(0).len().max(1)).max(1);
        let mut batches = Vec::with_capacity(nb.div_ceil(per_batch));
        let (mut elems, mut blocks) = (per_element, per_block);
        for b0 in (0..nb).step_by(per_batch) {
            let b1 = (b0 + per_batch).min(nb);
            let (i0, i1) = (self.block_range(b0).start, self.block_range(b1 - 1).end);
            let (e, rest_e) = std::mem::take(&mut elems).split_at_mut(i1 - i0);
            let (b, rest_b) = std::mem::take(&mut blocks).split_at_mut(b1 - b0);
            batches.push((b0, i0, e, b));
            (elems, blocks) = (rest_e, rest_b);
        }
        batches.into_par_iter().for_each(|(b0, i0, e, b)| f(b0, i0, e, b));
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
