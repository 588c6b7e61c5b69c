//! Bindings of `lowp::arith`: element-wise operations, sums, dot products, GEMM and linear algebra with every
//! operation rounded to a format. As in the rest of the bindings, arrays arrive 1-D and C-contiguous
//! (shapes, broadcasting and dtype promotion are done in `python/lowp/ops.py` and `linalg.py`), the
//! interpreter lock is released around each core call, and core errors map to `lowp._errors` classes.

use lowp::arith::linalg::{self, Refine};
use lowp::arith::{self, Accumulation, BinaryOp, Func, Order};
use lowp::{Element, Error, Format, Rounding};
use numpy::{PyArray1, PyUntypedArray};
use pyo3::prelude::*;

use crate::{read, rounding, to_py, unsupported_dtype, write, PyFormat};

/// An element-wise operation, by name.
#[derive(Clone, Copy)]
enum ElementOp {
    Binary(BinaryOp),
    Fma,
    Unary(Func),
}

impl ElementOp {
    fn parse(name: &str) -> PyResult<ElementOp> {
        if name == "fma" {
            return Ok(ElementOp::Fma);
        }
        let unknown = |_| {
            let (ops, funcs) = (BinaryOp::NAMES.join(", "), Func::NAMES.join(", "));
            to_py(Error::InvalidOption(format!("unknown operation `{name}`. Accepted: {ops}, fma, {funcs}")))
        };
        BinaryOp::parse(name)
            .map(ElementOp::Binary)
            .or_else(|_| Func::parse(name).map(ElementOp::Unary))
            .map_err(unknown)
    }

    fn arity(self) -> usize {
        match self {
            ElementOp::Binary(_) => 2,
            ElementOp::Fma => 3,
            ElementOp::Unary(_) => 1,
        }
    }

    /// Runs the core call on slices of equal length (checked by the core).
    fn run<T: Element>(self, fmt: &Format, cfg: &Rounding, args: &[&[T]], out: &mut [T]) -> lowp::Result<()> {
        match self {
            ElementOp::Binary(op) => arith::binary(op, fmt, cfg, args[0], args[1], out),
            ElementOp::Fma => arith::fma(fmt, cfg, args[0], args[1], args[2], out),
            ElementOp::Unary(f) => arith::unary(f, fmt, cfg, args[0], out),
        }
    }
}

/// `out = fl(op(args...))` element-wise in `fmt`: `op` is add, sub, mul, div, fma, or a function of
/// `lowp.arith.Func` (sqrt, exp, ...); `args` and `out` are 1-D arrays of one length and of data type
/// `dtype` (float32 or float64).
#[pyfunction]
#[pyo3(signature = (op, args, out, dtype, fmt, mode, seed))]
#[allow(clippy::too_many_arguments)]
fn elementwise_array(
    py: Python<'_>,
    op: &str,
    args: Vec<Bound<'_, PyUntypedArray>>,
    out: &Bound<'_, PyUntypedArray>,
    dtype: &str,
    fmt: &PyFormat,
    mode: &str,
    seed: u64,
) -> PyResult<()> {
    let op = ElementOp::parse(op)?;
    if args.len() != op.arity() {
        return Err(to_py(Error::InvalidOption(format!(
            "{} operands given; the operation takes {}",
            args.len(),
            op.arity()
        ))));
    }
    let cfg = rounding(mode, seed, 0.0, "significand")?;
    fn typed<T: Element + numpy::Element>(
        py: Python<'_>,
        op: ElementOp,
        args: &[Bound<'_, PyUntypedArray>],
        out: &Bound<'_, PyUntypedArray>,
        fmt: &Format,
        cfg: &Rounding,
    ) -> PyResult<()> {
        let arrays = args.iter().map(|a| read(a.cast::<PyArray1<T>>()?)).collect::<PyResult<Vec<_>>>()?;
        let slices = arrays.iter().map(|a| a.as_slice()).collect::<Result<Vec<_>, _>>()?;
        let mut dst = write(out.cast::<PyArray1<T>>()?)?;
        let dst = dst.as_slice_mut()?;
        py.detach(|| op.run(fmt, cfg, &slices, dst)).map_err(to_py)
    }
    match dtype {
        "float32" => typed::<f32>(py, op, &args, out, &fmt.inner, &cfg),
        "float64" => typed::<f64>(py, op, &args, out, &fmt.inner, &cfg),
        other => Err(unsupported_dtype("arithmetic", other, "float32, float64")),
    }
}

/// The arithmetic model of a sum, dot product or GEMM: products rounded to `product` (None: exact), the
/// accumulator in `accum`, in `order`, every rounding in `mode` with `seed`.
fn accumulation(
    product: Option<&PyFormat>,
    accum: &PyFormat,
    order: &str,
    mode: &str,
    seed: u64,
) -> PyResult<Accumulation> {
    Ok(Accumulation::new(&accum.inner)
        .with_product(product.map(|p| &p.inner))
        .with_order(Order::parse(order).map_err(to_py)?)
        .with_rounding(rounding(mode, seed, 0.0, "significand")?))
}

/// The sum of the float64 array `x` with the accumulator in `accum` (see `accumulation`).
#[pyfunction]
#[pyo3(signature = (x, accum, order, mode, seed))]
fn sum_array(
    py: Python<'_>,
    x: &Bound<'_, PyArray1<f64>>,
    accum: &PyFormat,
    order: &str,
    mode: &str,
    seed: u64,
) -> PyResult<f64> {
    let model = accumulation(None, accum, order, mode, seed)?;
    let x = read(x)?;
    let x = x.as_slice()?;
    py.detach(|| arith::sum(&model, x)).map_err(to_py)
}

/// `A B` for row-major float64 A (m x k) and B (k x n) under the model of `accumulation`, as a 1-D array
/// of m n elements.
#[pyfunction]
#[pyo3(signature = (a, b, m, k, n, product, accum, order, mode, seed))]
#[allow(clippy::too_many_arguments)]
fn matmul_array<'py>(
    py: Python<'py>,
    a: &Bound<'py, PyArray1<f64>>,
    b: &Bound<'py, PyArray1<f64>>,
    m: usize,
    k: usize,
    n: usize,
    product: Option<PyRef<'py, PyFormat>>,
    accum: &PyFormat,
    order: &str,
    mode: &str,
    seed: u64,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let model = accumulation(product.as_deref(), accum, order, mode, seed)?;
    let (a, b) = (read(a)?, read(b)?);
    let (a, b) = (a.as_slice()?, b.as_slice()?);
    let len = m.checked_mul(n).ok_or_else(|| to_py(Error::InvalidOption(format!("matmul: {m} x {n} is too large"))))?;
    let mut c = vec![0.0; len];
    py.detach(|| arith::matmul(&model, a, b, &mut c, m, k, n)).map_err(to_py)?;
    Ok(PyArray1::from_vec(py, c))
}

// ---------------------------------------------------------------------------------------------------------
// Linear algebra: matrices are row-major float64 arrays of n * n elements.

/// `what` of the matrix `a` in `fmt`, as `(values, perm)`:
/// - `lu`: the factors, L strictly below the diagonal (unit diagonal implied) and U on and above it; row i
///   of P A is row `perm[i]` of A;
/// - `cholesky`: the lower factor L;
/// - `solve` (with `b`): x with `a x = b`, by LU;
/// - `solve_triangular` (with `b`, `lower`, `unit`): x with `a x = b` for triangular `a`.
///
/// `perm` is empty but for `lu`.
#[pyfunction]
#[pyo3(signature = (what, a, n, b, lower, unit, fmt, mode, seed))]
#[allow(clippy::too_many_arguments)]
fn linalg_array<'py>(
    py: Python<'py>,
    what: &str,
    a: &Bound<'py, PyArray1<f64>>,
    n: usize,
    b: Option<Bound<'py, PyArray1<f64>>>,
    lower: bool,
    unit: bool,
    fmt: &PyFormat,
    mode: &str,
    seed: u64,
) -> PyResult<(Bound<'py, PyArray1<f64>>, Vec<usize>)> {
    let (fmt, cfg) = (&fmt.inner, rounding(mode, seed, 0.0, "significand")?);
    let a = read(a)?;
    let a = a.as_slice()?;
    let b = b.as_ref().map(read).transpose()?;
    let b = b.as_ref().map(|b| b.as_slice()).transpose()?;
    let run = || -> lowp::Result<(Vec<f64>, Vec<usize>)> {
        Ok(match (what, b) {
            ("lu", None) => {
                let f = linalg::lu(fmt, &cfg, a, n)?;
                (f.factors, f.perm)
            }
            ("cholesky", None) => (linalg::cholesky(fmt, &cfg, a, n)?, Vec::new()),
            ("solve", Some(b)) => (linalg::solve(fmt, &cfg, a, n, b)?, Vec::new()),
            ("solve_triangular", Some(b)) => {
                let mut x = b.to_vec();
                linalg::solve_triangular(fmt, &cfg, a, n, &mut x, lower, unit)?;
                (x, Vec::new())
            }
            _ => {
                return Err(Error::InvalidOption(format!(
                    "linear algebra call `{what}` {} a right-hand side. Accepted: lu and cholesky without one, \
                     solve and solve_triangular with one",
                    if b.is_some() { "with" } else { "without" }
                )))
            }
        })
    };
    let (values, perm) = py.detach(run).map_err(to_py)?;
    Ok((PyArray1::from_vec(py, values), perm))
}

/// One step of a refinement: (backward error, forward error or None, correction).
type StepTuple = (f64, Option<f64>, f64);

/// Mixed-precision iterative refinement of `a x = b`: `(x, steps, converged)`, step 0 being the initial
/// solve.
#[pyfunction]
#[pyo3(signature = (a, n, b, factor, residual, working, max_iter, x_true, mode, seed))]
#[allow(clippy::too_many_arguments)]
fn refine_array<'py>(
    py: Python<'py>,
    a: &Bound<'py, PyArray1<f64>>,
    n: usize,
    b: &Bound<'py, PyArray1<f64>>,
    factor: &PyFormat,
    residual: &PyFormat,
    working: &PyFormat,
    max_iter: usize,
    x_true: Option<Bound<'py, PyArray1<f64>>>,
    mode: &str,
    seed: u64,
) -> PyResult<(Bound<'py, PyArray1<f64>>, Vec<StepTuple>, bool)> {
    let mut cfg = Refine::new(&factor.inner, &residual.inner, &working.inner)
        .with_rounding(rounding(mode, seed, 0.0, "significand")?)
        .with_max_iter(max_iter);
    if let Some(t) = &x_true {
        cfg = cfg.with_x_true(read(t)?.as_slice()?);
    }
    let (a, b) = (read(a)?, read(b)?);
    let (a, b) = (a.as_slice()?, b.as_slice()?);
    let r = py.detach(|| linalg::refine(a, n, b, &cfg)).map_err(to_py)?;
    let steps = r.history.iter().map(|s| (s.backward_error, s.forward_error, s.correction)).collect();
    Ok((PyArray1::from_vec(py, r.x), steps, r.converged))
}

/// Adds the functions of this file to the extension module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(elementwise_array, m)?)?;
    m.add_function(wrap_pyfunction!(sum_array, m)?)?;
    m.add_function(wrap_pyfunction!(matmul_array, m)?)?;
    m.add_function(wrap_pyfunction!(linalg_array, m)?)?;
    m.add_function(wrap_pyfunction!(refine_array, m)?)?;
    Ok(())
}
