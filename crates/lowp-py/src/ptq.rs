//! Bindings of `lowp::ptq`: GPTQ of one weight matrix given its calibration Hessian, the Hessian of a batch
//! of inputs, and the Hessian-weighted error. Arrays arrive 1-D, C-contiguous, float64 (shapes are checked
//! in `python/lowp/ptq.py`); the interpreter lock is released around each core call.

use lowp::ptq::{self, GptqOptions, Hessian};
use lowp::quant::{Quantized, QuantizedTensor, Scheme};
use numpy::PyArray1;
use pyo3::prelude::*;

use crate::{read, to_py, PyQuantizedTensor};

/// GPTQ of `w` (`[rows, cols]`) with Hessian `h` (`[cols, cols]`) into the integer scheme named `scheme`:
/// `(quantized tensor, dequantized values, GPTQ's loss)`.
#[pyfunction]
#[pyo3(signature = (w, rows, cols, h, scheme, damp, block, act_order, static_groups))]
#[allow(clippy::too_many_arguments)]
fn gptq_array<'py>(
    py: Python<'py>,
    w: &Bound<'py, PyArray1<f64>>,
    rows: usize,
    cols: usize,
    h: &Bound<'py, PyArray1<f64>>,
    scheme: &str,
    damp: f64,
    block: usize,
    act_order: bool,
    static_groups: bool,
) -> PyResult<(PyQuantizedTensor, Bound<'py, PyArray1<f64>>, f64)> {
    let parsed = Scheme::parse(scheme).map_err(to_py)?;
    let int = ptq::gptq_scheme(&parsed).map_err(to_py)?;
    let opts = GptqOptions { damp, block, act_order, static_groups };
    let (w, h) = (read(w)?, read(h)?);
    let (w, h) = (w.as_slice()?, h.as_slice()?);
    let (g, t) = py
        .detach(|| -> lowp::Result<_> {
            let g = ptq::gptq(int, w, rows, cols, h, &opts)?;
            let t = QuantizedTensor::pack(&parsed, &Quantized::Int(g.quantized.clone()))?;
            Ok((g, t))
        })
        .map_err(to_py)?;
    Ok((PyQuantizedTensor { inner: t }, PyArray1::from_vec(py, g.values), g.loss))
}

/// H = 2 XᵀX / n of `x` (`[rows, dim]`, float32), as a flat float64 array.
#[pyfunction]
fn hessian_array<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyArray1<f32>>,
    rows: usize,
    dim: usize,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let x = read(x)?;
    let x = x.as_slice()?;
    let m = py
        .detach(|| -> lowp::Result<Vec<f64>> {
            let mut h = Hessian::new(dim);
            h.add(x, rows)?;
            Ok(h.matrix())
        })
        .map_err(to_py)?;
    Ok(PyArray1::from_vec(py, m))
}

/// tr((W − Q) H (W − Q)ᵀ) for `w`, `q` of `[rows, cols]` and `h` of `[cols, cols]`.
#[pyfunction]
fn hessian_error_array(
    py: Python<'_>,
    w: &Bound<'_, PyArray1<f64>>,
    q: &Bound<'_, PyArray1<f64>>,
    rows: usize,
    cols: usize,
    h: &Bound<'_, PyArray1<f64>>,
) -> PyResult<f64> {
    let (w, q, h) = (read(w)?, read(q)?, read(h)?);
    let (w, q, h) = (w.as_slice()?, q.as_slice()?, h.as_slice()?);
    py.detach(|| ptq::hessian_error(w, q, rows, cols, h)).map_err(to_py)
}

/// Adds the functions of this file to the extension module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(gptq_array, m)?)?;
    m.add_function(wrap_pyfunction!(hessian_array, m)?)?;
    m.add_function(wrap_pyfunction!(hessian_error_array, m)?)?;
    Ok(())
}
