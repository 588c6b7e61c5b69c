//! Where blocks lie in a C-order tensor: per tensor, per channel along an axis, or per group of G
//! consecutive elements along an axis.

use super::Granularity;
use crate::error::{Error, Result};
use crate::Element;

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

    /// Per block: the largest finite magnitude (0 when there is none), and whether the block holds a
    /// non-finite value for which `refused` is true (a value the scheme's element type cannot hold).
    pub(crate) fn block_amax<T: Element>(&self, x: &[T], refused: impl Fn(f64) -> bool) -> (Vec<f64>, Vec<bool>) {
        let nb = self.blocks();
        let (mut amax, mut special) = (vec![0.0f64; nb], vec![false; nb]);
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
