//! Python bindings of lowp, kept thin: convert arguments, release the interpreter lock around each core
//! call, map core errors to the exception classes of `lowp._errors`. Array preparation (shapes, strides,
//! scalars, `out=`) lives in `python/lowp/__init__.py`; every function here takes 1-D contiguous arrays.
//!
//! float16 and bfloat16 data arrive as their 16-bit patterns (`uint16` arrays); they are widened to float32
//! exactly, rounded, and narrowed back exactly (the format is first checked to fit the narrow type).

use half::{bf16, f16};
use lowp::quant::{self, Part, QuantizedTensor, Scheme};
use lowp::{Element, Error, FlipScope, Format, Rounding, RoundingMode, Specials};
use numpy::{
    PyArray1, PyArrayDescr, PyArrayDescrMethods, PyArrayDyn, PyArrayMethods, PyReadonlyArray1, PyReadwriteArray1,
    PyUntypedArray, PyUntypedArrayMethods,
};
use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyTuple, PyType};
use rayon::prelude::*;
use std::path::PathBuf;

mod arith;
mod ptq;

/// An exception of class `class` from `lowp._errors`.
fn raise(class: &str, msg: String) -> PyErr {
    Python::attach(|py| {
        let cls = py.import("lowp._errors").and_then(|m| m.getattr(class)).and_then(|c| Ok(c.cast_into::<PyType>()?));
        match cls {
            Ok(cls) => PyErr::from_type(cls, msg),
            Err(err) => err,
        }
    })
}

/// The Python exception for a core error.
fn to_py(e: Error) -> PyErr {
    let class = match &e {
        Error::UnknownFormat { .. } | Error::InvalidFormat(_) => "FormatError",
        Error::UnknownMode { .. } | Error::InvalidOption(_) => "OptionError",
        Error::UnsupportedDtype { .. } => "DtypeError",
        Error::LengthMismatch { .. } | Error::BufferTooShort { .. } => "ShapeError",
        Error::NotRepresentable { .. } | Error::CodeTooWide { .. } => "RepresentationError",
        Error::InvalidFile(_) => "FileFormatError",
        Error::Numerical(_) => "NumericalError",
        Error::Io { path, message } => return os_error(path, message),
        _ => "LowpError",
    };
    raise(class, e.to_string())
}

/// Python's `OSError(errno, message, path)` when the system's message carries an errno, so that Python picks
/// the subclass (`FileNotFoundError`, `PermissionError`, ...); `OSError("path: message")` otherwise.
fn os_error(path: &str, message: &str) -> PyErr {
    let split = message.rsplit_once(" (os error ");
    match split.and_then(|(text, n)| Some((text, n.strip_suffix(')')?.parse::<i32>().ok()?))) {
        Some((text, errno)) => PyOSError::new_err((errno, text.to_string(), path.to_string())),
        None => PyOSError::new_err(format!("{path}: {message}")),
    }
}

/// Borrows an array for reading: an array that another call is writing is an error, not a panic.
fn read<'py, T: numpy::Element>(a: &Bound<'py, PyArray1<T>>) -> PyResult<PyReadonlyArray1<'py, T>> {
    a.try_readonly().map_err(|e| {
        raise("LowpError", format!("cannot read the array ({e}): another thread's lowp call is writing it"))
    })
}

/// Borrows an array for writing: a read-only array, or one in use by another call, is an error.
fn write<'py, T: numpy::Element>(a: &Bound<'py, PyArray1<T>>) -> PyResult<PyReadwriteArray1<'py, T>> {
    a.try_readwrite().map_err(|e| {
        raise("LowpError", format!("cannot write the array ({e}): it is read-only or in use by another lowp call"))
    })
}

fn check_len(input: usize, output: usize) -> PyResult<()> {
    if input == output {
        Ok(())
    } else {
        Err(to_py(Error::LengthMismatch { input, output }))
    }
}

fn unsupported_dtype(what: &str, dtype: &str, accepted: &str) -> PyErr {
    raise("DtypeError", format!("{what}: unsupported dtype {dtype}. Accepted: {accepted}"))
}

// ---------------------------------------------------------------------------------------------------------
// Format

/// A number format: a preset (`"float8_e4m3fn"`, `"bf16"`, ...), `e<E>m<M>[b<BIAS>][fn|fnuz]`,
/// `binary<K>p<P><s|u><e|f>` (IEEE P3109) or `chop(<t>,<emax>)`; `Format.custom(...)` and
/// `Format.from_chop(t, emax)` build one from its fields.
///
/// >>> f = lowp.Format("float8_e4m3fn")
/// >>> (f.bits, f.max, f.min_normal, f.min_subnormal, f.eps, f.unit_roundoff)
/// (8, 448.0, 0.015625, 0.001953125, 0.125, 0.0625)
/// >>> lowp.Format.from_chop(11, 15).max
/// 65504.0
/// >>> lowp.Format("e2m1").values()
/// array([-6. , -4. , -3. , -2. , -1.5, -1. , -0.5,  0. ,  0.5,  1. ,  1.5,  2. ,  3. ,  4. ,  6. ])
#[pyclass(name = "Format", module = "lowp", frozen, eq)]
#[derive(Clone, PartialEq)]
struct PyFormat {
    inner: Format,
}

fn specials_name(s: Specials) -> &'static str {
    match s {
        Specials::Ieee => "ieee",
        Specials::Fn => "fn",
        Specials::Fnuz => "fnuz",
        Specials::Finite => "none",
        Specials::Extended => "extended",
        Specials::Unsigned { inf: true } => "unsigned_inf",
        Specials::Unsigned { inf: false } => "unsigned",
    }
}

/// The inverse of `specials_name` (and `finite` for `none`).
fn specials_from_name(name: &str) -> Option<Specials> {
    Some(match name {
        "ieee" => Specials::Ieee,
        "fn" => Specials::Fn,
        "fnuz" => Specials::Fnuz,
        "none" | "finite" => Specials::Finite,
        "extended" => Specials::Extended,
        "unsigned_inf" => Specials::Unsigned { inf: true },
        "unsigned" => Specials::Unsigned { inf: false },
        _ => return None,
    })
}

/// `(codes, values)` arrays.
type CodeTable<'py> = (Bound<'py, PyArray1<u64>>, Bound<'py, PyArray1<f64>>);

#[pymethods]
impl PyFormat {
    #[new]
    fn new(name: &str) -> PyResult<Self> {
        Ok(PyFormat { inner: Format::parse(name).map_err(to_py)? })
    }

    #[staticmethod]
    #[pyo3(signature = (exp_bits, man_bits, bias=None, subnormals=Truthy(true), specials="ieee", saturate=Truthy(false)))]
    fn custom(
        exp_bits: i64,
        man_bits: i64,
        bias: Option<i64>,
        subnormals: Truthy,
        specials: &str,
        saturate: Truthy,
    ) -> PyResult<Self> {
        let key = specials.to_ascii_lowercase();
        let sp = match specials_from_name(&key) {
            Some(sp @ (Specials::Ieee | Specials::Fn | Specials::Fnuz | Specials::Finite)) => sp,
            _ => {
                return Err(to_py(Error::InvalidFormat(format!(
                    "unknown specials policy `{key}`. Accepted: \"ieee\", \"fn\", \"fnuz\", \"none\""
                ))))
            }
        };
        let bias = bias.map(|b| small_int("bias", b, i64::from(i32::MIN), i64::from(i32::MAX))).transpose()?;
        let f = Format::custom(
            small_int("exp_bits", exp_bits, 0, 64)? as u32,
            small_int("man_bits", man_bits, 0, 64)? as u32,
            bias.map(|b| b as i32),
            sp,
        )
        .map_err(to_py)?;
        Ok(PyFormat { inner: f.with_subnormals(subnormals.0).with_saturation(saturate.0) })
    }

    #[staticmethod]
    fn from_chop(t: i64, emax: i64) -> PyResult<Self> {
        let t = small_int("t", t, 0, 64)? as u32;
        let emax = small_int("emax", emax, i64::from(i32::MIN), i64::from(i32::MAX))? as i32;
        Ok(PyFormat { inner: Format::from_chop(t, emax).map_err(to_py)? })
    }

    #[pyo3(signature = (*, subnormals=None, saturate=None, keep_inf=None, exponent_limit=None))]
    fn with_options(
        &self,
        subnormals: Option<&Bound<'_, PyAny>>,
        saturate: Option<&Bound<'_, PyAny>>,
        keep_inf: Option<&Bound<'_, PyAny>>,
        exponent_limit: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let flag = |v: Option<&Bound<'_, PyAny>>| v.filter(|v| !v.is_none()).map(|v| v.is_truthy()).transpose();
        let mut f = self.inner.clone();
        if let Some(on) = flag(subnormals)? {
            f = f.with_subnormals(on);
        }
        if let Some(on) = flag(saturate)? {
            f = f.with_saturation(on);
        }
        if let Some(on) = flag(keep_inf)? {
            f = f.with_propagate_inf(on);
        }
        if let Some(on) = flag(exponent_limit)? {
            f = f.with_exponent_limit(on);
        }
        Ok(PyFormat { inner: f })
    }

    /// Pickling: the name (or, for custom formats, the fields) and the options, checked to rebuild this
    /// very format.
    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<(Bound<'py, PyAny>, FormatState)> {
        let f = &slf.get().inner;
        let mut state = FormatState(
            true,
            f.name().to_string(),
            (f.exp_bits(), f.man_bits(), f.bias(), specials_name(f.specials()).to_string()),
            (f.subnormals(), f.saturate(), f.propagate_inf(), f.exponent_limit()),
        );
        if restore(&state).ok().as_ref() != Some(f) {
            state.0 = false;
            if restore(&state).ok().as_ref() != Some(f) {
                return Err(raise(
                    "LowpError",
                    format!("{f} cannot be pickled: neither its name nor its fields rebuild it"),
                ));
            }
        }
        let ctor = slf.py().import("lowp._lowp")?.getattr("_format_from_state")?;
        Ok((ctor, state))
    }

    #[getter]
    fn name(&self) -> &str {
        self.inner.name()
    }
    #[getter]
    fn bits(&self) -> u32 {
        self.inner.bits()
    }
    #[getter]
    fn exp_bits(&self) -> u32 {
        self.inner.exp_bits()
    }
    #[getter]
    fn man_bits(&self) -> u32 {
        self.inner.man_bits()
    }
    #[getter]
    fn bias(&self) -> i32 {
        self.inner.bias()
    }
    #[getter]
    fn emin(&self) -> i32 {
        self.inner.emin()
    }
    #[getter]
    fn emax(&self) -> i32 {
        self.inner.emax()
    }
    #[getter]
    fn max(&self) -> f64 {
        self.inner.max()
    }
    #[getter]
    fn min_normal(&self) -> f64 {
        self.inner.min_normal()
    }
    #[getter]
    fn min_subnormal(&self) -> f64 {
        self.inner.min_subnormal()
    }
    #[getter]
    fn eps(&self) -> f64 {
        self.inner.epsilon()
    }
    #[getter]
    fn unit_roundoff(&self) -> f64 {
        self.inner.unit_roundoff()
    }
    #[getter]
    fn num_codes(&self) -> u128 {
        self.inner.num_codes()
    }
    #[getter]
    fn specials(&self) -> &'static str {
        specials_name(self.inner.specials())
    }
    #[getter]
    fn subnormals(&self) -> bool {
        self.inner.subnormals()
    }
    #[getter]
    fn saturate(&self) -> bool {
        self.inner.saturate()
    }
    #[getter]
    fn keep_inf(&self) -> bool {
        self.inner.propagate_inf()
    }
    #[getter]
    fn exponent_limit(&self) -> bool {
        self.inner.exponent_limit()
    }
    #[getter]
    fn signed(&self) -> bool {
        self.inner.signed()
    }
    #[getter]
    fn has_inf(&self) -> bool {
        self.inner.has_inf()
    }
    #[getter]
    fn has_nan(&self) -> bool {
        self.inner.has_nan()
    }
    #[getter]
    fn aliases(&self) -> Vec<&'static str> {
        self.inner.aliases().to_vec()
    }

    /// Every finite value once (zero as +0), ascending; formats of at most 16 bits.
    fn values<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray1<f64>>> {
        let mut v: Vec<f64> =
            self.inner.values().map_err(to_py)?.into_iter().map(|(_, v)| v + 0.0).filter(|v| v.is_finite()).collect();
        v.sort_by(f64::total_cmp);
        v.dedup();
        Ok(PyArray1::from_vec(py, v))
    }

    /// `(codes, values)` of every code that is not NaN, in code order; formats of at most 16 bits.
    fn code_table<'py>(&self, py: Python<'py>) -> PyResult<CodeTable<'py>> {
        let t: Vec<(u64, f64)> = self.inner.values().map_err(to_py)?.into_iter().filter(|(_, v)| !v.is_nan()).collect();
        let codes = t.iter().map(|&(c, _)| c).collect();
        let vals = t.iter().map(|&(_, v)| v).collect();
        Ok((PyArray1::from_vec(py, codes), PyArray1::from_vec(py, vals)))
    }

    fn __repr__(&self) -> String {
        let f = &self.inner;
        let sign = if f.signed() { "" } else { "unsigned, " };
        format!(
            "<lowp.Format {f}: {} bits ({sign}E{} M{} bias {}), max {}, min normal {}, min subnormal {}, eps {}, specials {}>",
            f.bits(),
            f.exp_bits(),
            f.man_bits(),
            f.bias(),
            short(f.max()),
            short(f.min_normal()),
            short(f.min_subnormal()),
            short(f.epsilon()),
            f.specials().describe()
        )
    }

    fn __str__(&self) -> String {
        self.inner.to_string()
    }

    fn __hash__(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        format!("{:?}", self.inner).hash(&mut h);
        h.finish()
    }
}

/// A number as people write it: plain when short, exponent notation when very large or small.
fn short(v: f64) -> String {
    if v != 0.0 && !(1e-4..1e6).contains(&v.abs()) {
        format!("{v:e}")
    } else {
        format!("{v}")
    }
}

/// A flag taken by truthiness, as Python code passes them (`subnormal=0` in chop-style code).
struct Truthy(bool);

impl<'a, 'py> FromPyObject<'a, 'py> for Truthy {
    type Error = PyErr;
    fn extract(obj: pyo3::Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        Ok(Truthy(obj.is_truthy()?))
    }
}

/// An integer argument in `lo..=hi`, or an error naming it.
fn small_int(what: &str, v: i64, lo: i64, hi: i64) -> PyResult<i64> {
    if (lo..=hi).contains(&v) {
        Ok(v)
    } else {
        Err(to_py(Error::InvalidFormat(format!("{what}={v} is out of range ({lo}..={hi})"))))
    }
}

/// What pickles a Format: whether its name rebuilds it, the name, the fields (E, M, bias, specials) and the
/// options (subnormals, saturation, inf kept, exponent limit).
#[derive(IntoPyObject, FromPyObject)]
struct FormatState(bool, String, (u32, u32, i32, String), (bool, bool, bool, bool));

fn restore(state: &FormatState) -> lowp::Result<Format> {
    let FormatState(by_name, name, (e, m, bias, specials), (sub, sat, keep_inf, explim)) = state;
    let base = if *by_name {
        Format::parse(name)?
    } else {
        let sp = specials_from_name(specials)
            .ok_or_else(|| Error::InvalidFormat(format!("unknown specials policy `{specials}` in a pickled Format")))?;
        Format::custom(*e, *m, Some(*bias), sp)?
    };
    Ok(base.with_subnormals(*sub).with_saturation(*sat).with_propagate_inf(*keep_inf).with_exponent_limit(*explim))
}

/// Rebuilds a pickled Format.
#[pyfunction]
fn _format_from_state(
    by_name: bool,
    name: String,
    fields: (u32, u32, i32, String),
    options: (bool, bool, bool, bool),
) -> PyResult<PyFormat> {
    Ok(PyFormat { inner: restore(&FormatState(by_name, name, fields, options)).map_err(to_py)? })
}

/// Names of the presets, in the order of FORMATS.md.
#[pyfunction]
fn formats() -> Vec<String> {
    Format::presets().iter().map(|f| f.name().to_string()).collect()
}

/// The aliases of every preset: `{alias: preset name}`.
#[pyfunction]
fn aliases() -> Vec<(String, String)> {
    Format::presets()
        .iter()
        .flat_map(|f| f.aliases().iter().map(move |a| (a.to_string(), f.name().to_string())))
        .collect()
}

// ---------------------------------------------------------------------------------------------------------
// Rounding configuration

fn rounding(mode: &str, seed: u64, flip_prob: f64, flip_scope: &str) -> PyResult<Rounding> {
    let mut r = Rounding::new(RoundingMode::parse(mode).map_err(to_py)?).with_seed(seed);
    let scope = match flip_scope {
        "significand" => FlipScope::Significand,
        "code" => FlipScope::Code,
        other => {
            return Err(to_py(Error::InvalidOption(format!(
                "flip_scope `{other}`: accepted \"significand\" (chop, CPFloat) or \"code\" (any bit)"
            ))))
        }
    };
    if flip_prob != 0.0 {
        r = r.with_flip(flip_prob, scope);
    }
    Ok(r)
}

/// Canonical name of a rounding mode (validates it).
#[pyfunction]
fn mode_name(mode: &str) -> PyResult<String> {
    Ok(RoundingMode::parse(mode).map_err(to_py)?.name())
}

/// The canonical names of the nine rounding modes, in chop's code order (1-9).
#[pyfunction]
fn modes() -> Vec<String> {
    RoundingMode::ALL.iter().map(|m| m.name()).collect()
}

/// Whether a rounding mode draws random numbers.
#[pyfunction]
fn mode_is_stochastic(mode: &str) -> PyResult<bool> {
    Ok(RoundingMode::parse(mode).map_err(to_py)?.is_stochastic())
}

// ---------------------------------------------------------------------------------------------------------
// 16-bit storage types, carried as bit patterns

#[derive(Clone, Copy)]
enum Narrow {
    F16,
    Bf16,
}

impl Narrow {
    fn parse(dtype: &str) -> Option<Narrow> {
        match dtype {
            "float16" => Some(Narrow::F16),
            "bfloat16" => Some(Narrow::Bf16),
            _ => None,
        }
    }
    fn name(self) -> &'static str {
        match self {
            Narrow::F16 => "float16",
            Narrow::Bf16 => "bfloat16",
        }
    }

    /// Whether rounding to `fmt` keeps every result a value of the narrow type (so narrowing is exact).
    fn fits(self, fmt: &Format) -> lowp::Result<()> {
        if !fmt.exponent_limit() {
            return Err(Error::UnsupportedDtype {
                format: fmt.to_string(),
                dtype: self.name(),
                reason: "without an exponent limit its results can leave the data type's range; round float32 data"
                    .to_string(),
            });
        }
        match self {
            Narrow::F16 => fmt.check_dtype("float16", 10, 65504.0),
            Narrow::Bf16 => fmt.check_dtype("bfloat16", 7, bf16::MAX.to_f64()),
        }
    }

    fn check(self, fmt: &Format) -> PyResult<()> {
        self.fits(fmt).map_err(to_py)
    }

    /// Decoding needs every value of the format in the narrow type: precision, largest and smallest value.
    fn check_decode(self, fmt: &Format) -> PyResult<()> {
        let name = self.name();
        let fail =
            |reason: String| raise("DtypeError", format!("{} cannot be decoded to {name}: {reason}", fmt.name()));
        match self.fits(fmt) {
            Ok(()) => {}
            Err(Error::UnsupportedDtype { reason, .. }) => return Err(fail(reason)),
            Err(e) => return Err(to_py(e)),
        }
        let smallest = match self {
            Narrow::F16 => -24,
            Narrow::Bf16 => -133,
        };
        let fmt_smallest = if fmt.has_zero() { fmt.emin() - fmt.man_bits() as i32 } else { fmt.emin() };
        if fmt_smallest < smallest {
            return Err(fail(format!("its smallest value 2^{fmt_smallest} is below {name}'s 2^{smallest}")));
        }
        Ok(())
    }

    fn widen(self, src: &[u16]) -> Vec<f32> {
        let mut out = vec![0f32; src.len()];
        out.par_chunks_mut(1 << 16).zip(src.par_chunks(1 << 16)).for_each(|(d, s)| match self {
            Narrow::F16 => d.iter_mut().zip(s).for_each(|(d, &b)| *d = f16::from_bits(b).to_f32()),
            Narrow::Bf16 => d.iter_mut().zip(s).for_each(|(d, &b)| *d = bf16::from_bits(b).to_f32()),
        });
        out
    }
    /// Like `narrow`, but where the original element `orig` was NaN it is written back unchanged.
    fn narrow_keeping_nan(self, src: &[f32], orig: &[u16], dst: &mut [u16]) {
        let inf = match self {
            Narrow::F16 => 0x7c00,
            Narrow::Bf16 => 0x7f80,
        };
        self.narrow(src, dst);
        dst.par_chunks_mut(1 << 16).zip(orig.par_chunks(1 << 16)).for_each(|(d, o)| {
            for (d, &o) in d.iter_mut().zip(o) {
                if o & 0x7fff > inf {
                    *d = o;
                }
            }
        });
    }

    /// Exact for the values `check` admits; NaN stays NaN with its sign.
    fn narrow(self, src: &[f32], dst: &mut [u16]) {
        dst.par_chunks_mut(1 << 16).zip(src.par_chunks(1 << 16)).for_each(|(d, s)| match self {
            Narrow::F16 => d.iter_mut().zip(s).for_each(|(d, &v)| *d = f16::from_f32(v).to_bits()),
            Narrow::Bf16 => d.iter_mut().zip(s).for_each(|(d, &v)| *d = bf16::from_f32(v).to_bits()),
        });
    }
}

// ---------------------------------------------------------------------------------------------------------
// Bulk operations

/// Rounds `x` into `out` (same dtype and length), or `x` in place when `out` is None. `dtype` names the
/// data type: float32, float64, or float16/bfloat16 for uint16 bit patterns.
#[pyfunction]
#[pyo3(signature = (x, out, dtype, fmt, mode, seed, flip_prob, flip_scope))]
#[allow(clippy::too_many_arguments)]
fn round_array(
    py: Python<'_>,
    x: &Bound<'_, PyUntypedArray>,
    out: Option<&Bound<'_, PyUntypedArray>>,
    dtype: &str,
    fmt: &PyFormat,
    mode: &str,
    seed: u64,
    flip_prob: f64,
    flip_scope: &str,
) -> PyResult<()> {
    let cfg = rounding(mode, seed, flip_prob, flip_scope)?;
    let fmt = &fmt.inner;
    match dtype {
        "float32" => round_typed::<f32>(py, x, out, fmt, &cfg),
        "float64" => round_typed::<f64>(py, x, out, fmt, &cfg),
        _ => {
            let Some(n) = Narrow::parse(dtype) else {
                return Err(unsupported_dtype("round", dtype, "float16, bfloat16, float32, float64"));
            };
            n.check(fmt)?;
            // Widen first and release the borrow of `x`: `out` may be `x` itself (in place). The source bits
            // are kept to give NaN inputs back unchanged, payload and sign, as the core does.
            let (orig, mut wide) = {
                let bits = read(x.cast::<PyArray1<u16>>()?)?;
                let src = bits.as_slice()?;
                py.detach(|| (src.to_vec(), n.widen(src)))
            };
            let mut dst = write(out.unwrap_or(x).cast::<PyArray1<u16>>()?)?;
            let dst = dst.as_slice_mut()?;
            check_len(orig.len(), dst.len())?;
            py.detach(|| {
                lowp::round_in_place(fmt, &cfg, &mut wide)?;
                n.narrow_keeping_nan(&wide, &orig, dst);
                Ok(())
            })
            .map_err(to_py)
        }
    }
}

fn round_typed<T: Element + numpy::Element>(
    py: Python<'_>,
    x: &Bound<'_, PyUntypedArray>,
    out: Option<&Bound<'_, PyUntypedArray>>,
    fmt: &Format,
    cfg: &Rounding,
) -> PyResult<()> {
    let x = x.cast::<PyArray1<T>>()?;
    match out {
        None => {
            let mut buf = write(x)?;
            let buf = buf.as_slice_mut()?;
            py.detach(|| lowp::round_in_place(fmt, cfg, buf)).map_err(to_py)
        }
        Some(out) => {
            let src = read(x)?;
            let src = src.as_slice()?;
            let mut dst = write(out.cast::<PyArray1<T>>()?)?;
            let dst = dst.as_slice_mut()?;
            py.detach(|| lowp::round(fmt, cfg, src, dst)).map_err(to_py)
        }
    }
}

/// Rounds `x` and writes codes into `out` (uint8/16/32/64, same length).
#[pyfunction]
#[pyo3(signature = (x, out, dtype, fmt, mode, seed))]
fn encode_array(
    py: Python<'_>,
    x: &Bound<'_, PyUntypedArray>,
    out: &Bound<'_, PyUntypedArray>,
    dtype: &str,
    fmt: &PyFormat,
    mode: &str,
    seed: u64,
) -> PyResult<()> {
    let cfg = rounding(mode, seed, 0.0, "significand")?;
    let fmt = &fmt.inner;
    match dtype {
        "float32" => encode_from::<f32>(py, read(x.cast::<PyArray1<f32>>()?)?.as_slice()?, out, fmt, &cfg),
        "float64" => encode_from::<f64>(py, read(x.cast::<PyArray1<f64>>()?)?.as_slice()?, out, fmt, &cfg),
        _ => {
            let Some(n) = Narrow::parse(dtype) else {
                return Err(unsupported_dtype("encode", dtype, "float16, bfloat16, float32, float64"));
            };
            let bits = read(x.cast::<PyArray1<u16>>()?)?;
            let src = bits.as_slice()?;
            let wide = py.detach(|| n.widen(src));
            encode_from::<f32>(py, &wide, out, fmt, &cfg)
        }
    }
}

fn encode_from<T: Element>(
    py: Python<'_>,
    src: &[T],
    out: &Bound<'_, PyUntypedArray>,
    fmt: &Format,
    cfg: &Rounding,
) -> PyResult<()> {
    macro_rules! to {
        ($c:ty) => {{
            let mut dst = write(out.cast::<PyArray1<$c>>()?)?;
            let dst = dst.as_slice_mut()?;
            py.detach(|| lowp::encode(fmt, cfg, src, dst)).map_err(to_py)
        }};
    }
    match out.dtype().itemsize() {
        1 => to!(u8),
        2 => to!(u16),
        4 => to!(u32),
        8 => to!(u64),
        _ => Err(unsupported_dtype("encode output", &out.dtype().to_string(), "uint8, uint16, uint32, uint64")),
    }
}

/// Decodes `codes` (uint8/16/32/64) into `out` of data type `dtype` (same length).
#[pyfunction]
fn decode_array(
    py: Python<'_>,
    codes: &Bound<'_, PyUntypedArray>,
    out: &Bound<'_, PyUntypedArray>,
    dtype: &str,
    fmt: &PyFormat,
) -> PyResult<()> {
    let fmt = &fmt.inner;
    macro_rules! from {
        ($c:ty) => {{
            let src = read(codes.cast::<PyArray1<$c>>()?)?;
            let src = src.as_slice()?;
            match dtype {
                "float32" => decode_to::<$c, f32>(py, fmt, src, out),
                "float64" => decode_to::<$c, f64>(py, fmt, src, out),
                _ => {
                    let Some(n) = Narrow::parse(dtype) else {
                        return Err(unsupported_dtype("decode", dtype, "float16, bfloat16, float32, float64"));
                    };
                    n.check_decode(fmt)?;
                    let mut dst = write(out.cast::<PyArray1<u16>>()?)?;
                    let dst = dst.as_slice_mut()?;
                    check_len(src.len(), dst.len())?;
                    py.detach(|| {
                        let mut wide = vec![0f32; src.len()];
                        lowp::decode(fmt, src, &mut wide)?;
                        n.narrow(&wide, dst);
                        Ok(())
                    })
                    .map_err(to_py)
                }
            }
        }};
    }
    match codes.dtype().itemsize() {
        1 => from!(u8),
        2 => from!(u16),
        4 => from!(u32),
        8 => from!(u64),
        _ => Err(unsupported_dtype("decode input", &codes.dtype().to_string(), "uint8, uint16, uint32, uint64")),
    }
}

fn decode_to<C: lowp::CodeInt, T: Element + numpy::Element>(
    py: Python<'_>,
    fmt: &Format,
    src: &[C],
    out: &Bound<'_, PyUntypedArray>,
) -> PyResult<()> {
    let mut dst = write(out.cast::<PyArray1<T>>()?)?;
    let dst = dst.as_slice_mut()?;
    py.detach(|| lowp::decode(fmt, src, dst)).map_err(to_py)
}

/// Packs uint8 codes of `bits` bits into a little-endian bit stream.
#[pyfunction]
fn pack<'py>(py: Python<'py>, codes: PyReadonlyArray1<'py, u8>, bits: u32) -> PyResult<Bound<'py, PyArray1<u8>>> {
    let src = codes.as_slice()?;
    let packed = py.detach(|| lowp::pack(src, bits)).map_err(to_py)?;
    Ok(PyArray1::from_vec(py, packed))
}

/// Unpacks `count` codes of `bits` bits from a little-endian bit stream.
#[pyfunction]
fn unpack<'py>(
    py: Python<'py>,
    buf: PyReadonlyArray1<'py, u8>,
    bits: u32,
    count: usize,
) -> PyResult<Bound<'py, PyArray1<u8>>> {
    let src = buf.as_slice()?;
    let codes = py.detach(|| lowp::unpack(src, bits, count)).map_err(to_py)?;
    Ok(PyArray1::from_vec(py, codes))
}

// ---------------------------------------------------------------------------------------------------------
// Quantization schemes

/// A tensor quantized by a scheme (``lowp.quantize``): the scheme, shape and axis that decode it, and its
/// packed parts (``codes``, ``scales`` and, where the scheme has them, ``zeros``, ``types``,
/// ``tensor_scale``). Arrays are new copies on each access; ``dequantize()`` gives the values back.
///
/// >>> q = lowp.quantize(np.linspace(-1, 1, 64, dtype=np.float32).reshape(2, 32), "mxfp4")
/// >>> q
/// <lowp.QuantizedTensor mxfp4:b32, shape (2, 32), axis 1, 4.25 bits/element>
/// >>> q.scales  # E8M0: 2^(floor(log2(amax)) - 2) per block of 32
/// array([[0.25],
///        [0.25]])
/// >>> q.codes[0, :3]  # e2m1 bit patterns
/// array([14, 14, 14], dtype=uint8)
/// >>> lowp.as_ml_dtypes(q.codes, q.parts["codes"]["format"])[0, :3].astype(np.float32)
/// array([-4., -4., -4.], dtype=float32)
/// >>> q.dequantize()[0, :3]
/// array([-1., -1., -1.], dtype=float32)
/// >>> q.parts["scales"]["data"]
/// array([125, 125], dtype=uint8)
#[pyclass(name = "QuantizedTensor", module = "lowp", frozen, eq)]
#[derive(Clone, PartialEq)]
struct PyQuantizedTensor {
    inner: QuantizedTensor,
}

/// A Python tuple of a shape.
fn shape_tuple<'py>(py: Python<'py>, shape: &[usize]) -> PyResult<Bound<'py, PyTuple>> {
    PyTuple::new(py, shape)
}

/// Integer values as an array of `shape`, in the narrowest of uint8, int8, uint16, int16, int32 and int64
/// that holds every value `bits` bits (signed or not) can have.
fn int_array<'py>(
    py: Python<'py>,
    values: Vec<i64>,
    bits: u32,
    signed: bool,
    shape: &[usize],
) -> PyResult<Bound<'py, PyAny>> {
    macro_rules! array {
        ($t:ty) => {{
            let v: Vec<$t> = values.into_iter().map(|v| v as $t).collect();
            PyArray1::from_vec(py, v).reshape(shape.to_vec())?.into_any()
        }};
    }
    Ok(match (bits, signed) {
        (..=8, false) => array!(u8),
        (..=8, true) => array!(i8),
        (..=16, false) => array!(u16),
        (..=16, true) => array!(i16),
        (..=31, false) | (..=32, true) => array!(i32),
        _ => array!(i64),
    })
}

impl PyQuantizedTensor {
    fn part_values<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Option<Bound<'py, PyAny>>> {
        let Some(p) = self.inner.part(name) else { return Ok(None) };
        let values = py.detach(|| p.values());
        int_array(py, values, p.bits, p.signed, &p.shape).map(Some)
    }

    /// `dequantize(out=...)`: checks `out` (an ndarray of the tensor's shape, C-contiguous, float32 or float64,
    /// of `dtype` when one is given) and writes into it.
    fn dequantize_into<'py>(
        &self,
        py: Python<'py>,
        out: &Bound<'py, PyAny>,
        dtype: Option<&str>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let arr = out.cast::<PyUntypedArray>().map_err(|_| {
            raise("DtypeError", format!("dequantize: out must be a NumPy array, got {}", out.get_type()))
        })?;
        let have: String = arr.dtype().getattr("name")?.extract()?;
        if dtype.is_some_and(|d| d != have) {
            return Err(unsupported_dtype(
                "dequantize",
                &have,
                &format!("out of the requested dtype {}", dtype.unwrap_or("")),
            ));
        }
        if arr.shape() != self.inner.shape() {
            return Err(raise(
                "ShapeError",
                format!("dequantize: out has shape {:?}; the tensor's is {:?}", arr.shape(), self.inner.shape()),
            ));
        }
        if !arr.is_c_contiguous() {
            return Err(raise("ShapeError", "dequantize: out must be C-contiguous".into()));
        }
        // The array itself (not a reshaped view: ndarray subclasses such as np.matrix keep two dimensions).
        fn into<T: Element + numpy::Element>(
            py: Python<'_>,
            q: &QuantizedTensor,
            out: &Bound<'_, PyAny>,
        ) -> PyResult<()> {
            let a = out.cast::<PyArrayDyn<T>>().map_err(|_| {
                unsupported_dtype("dequantize", "of non-native byte order", "float32, float64 in native byte order")
            })?;
            let mut w = a.try_readwrite().map_err(|e| {
                raise(
                    "LowpError",
                    format!("cannot write the array ({e}): it is read-only or in use by another lowp call"),
                )
            })?;
            let s = w.as_slice_mut().map_err(|e| raise("ShapeError", format!("dequantize: out: {e}")))?;
            py.detach(|| q.dequantize(s)).map_err(to_py)
        }
        match have.as_str() {
            "float32" => into::<f32>(py, &self.inner, out)?,
            "float64" => into::<f64>(py, &self.inner, out)?,
            other => return Err(unsupported_dtype("dequantize", other, "float32, float64")),
        }
        Ok(out.clone())
    }

    fn dequantized<'py, T: Element + numpy::Element + Default>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let mut out = vec![T::default(); self.inner.len()];
        py.detach(|| self.inner.dequantize(&mut out)).map_err(to_py)?;
        Ok(PyArray1::from_vec(py, out).reshape(self.inner.shape().to_vec())?.into_any())
    }
}

#[pymethods]
impl PyQuantizedTensor {
    /// The scheme, as its canonical string.
    #[getter]
    fn scheme(&self) -> String {
        self.inner.scheme().to_string()
    }
    #[getter]
    fn shape<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        shape_tuple(py, self.inner.shape())
    }
    /// The axis blocks and groups run along (0 for fixed point, which has none).
    #[getter]
    fn axis(&self) -> usize {
        self.inner.axis()
    }
    #[getter]
    fn ndim(&self) -> usize {
        self.inner.shape().len()
    }
    #[getter]
    fn size(&self) -> usize {
        self.inner.len()
    }
    /// The element codes, with the tensor's shape.
    #[getter]
    fn codes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(self.part_values(py, "codes")?.expect("every scheme has codes"))
    }
    /// The block scales as float64 numbers, in the shape of the grid of blocks; None for fixed point.
    #[getter]
    fn scales<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let Some(p) = self.inner.part("scales") else { return Ok(None) };
        let values = py.detach(|| p.decoded());
        Ok(Some(PyArray1::from_vec(py, values).reshape(p.shape.clone())?.into_any()))
    }
    /// The zero points (asymmetric integer schemes), in the grid's shape; None otherwise.
    #[getter]
    fn zeros<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.part_values(py, "zeros")
    }
    /// The type id of each group (BitMoD), in the grid's shape; None otherwise.
    #[getter]
    fn types<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.part_values(py, "types")
    }
    /// The float32 tensor scale (NVFP4), or None.
    #[getter]
    fn tensor_scale(&self) -> Option<f32> {
        self.inner.tensor_scale()
    }
    /// Bits of storage per element, every part included.
    #[getter]
    fn bits_per_element(&self) -> f64 {
        self.inner.bits_per_element()
    }
    /// Bits of storage, every part included.
    #[getter]
    fn storage_bits(&self) -> u64 {
        self.inner.storage_bits()
    }
    /// Every stored part: `{name: {"bits", "signed", "format", "shape", "data"}}`, `data` being the packed
    /// bytes (uint8) as they are saved.
    #[getter]
    fn parts<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let parts = PyDict::new(py);
        for p in self.inner.parts() {
            let Part { name, bits, signed, format, shape, data } = p;
            let d = PyDict::new(py);
            d.set_item("bits", bits)?;
            d.set_item("signed", signed)?;
            d.set_item("format", format.as_ref().map(|f| f.name()))?;
            d.set_item("shape", shape_tuple(py, shape)?)?;
            d.set_item("data", PyArray1::from_slice(py, data))?;
            parts.set_item(name, d)?;
        }
        Ok(parts)
    }

    /// The values, with the tensor's shape, as float32 (default) or float64; or written into `out`, a
    /// C-contiguous, writable float32 or float64 array of the tensor's shape, which is returned (no new
    /// pages to fault in: the fast way to dequantize repeatedly).
    #[pyo3(signature = (dtype=None, *, out=None))]
    fn dequantize<'py>(
        &self,
        py: Python<'py>,
        dtype: Option<&Bound<'py, PyAny>>,
        out: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let name = match dtype {
            None => None,
            Some(d) => Some(
                PyArrayDescr::new(py, d)
                    .and_then(|d| d.getattr("name")?.extract::<String>())
                    .map_err(|_| unsupported_dtype("dequantize", &d.to_string(), "float32, float64"))?,
            ),
        };
        if let Some(out) = out {
            return self.dequantize_into(py, out, name.as_deref());
        }
        match name.as_deref().unwrap_or("float32") {
            "float32" => self.dequantized::<f32>(py),
            "float64" => self.dequantized::<f64>(py),
            other => Err(unsupported_dtype("dequantize", other, "float32, float64")),
        }
    }

    /// Writes this tensor, called `name`, to a safetensors file (see ``lowp.save``).
    #[pyo3(signature = (path, name="tensor"))]
    fn save(&self, py: Python<'_>, path: PathBuf, name: &str) -> PyResult<()> {
        py.detach(|| quant::save(&path, &[(name, &self.inner)])).map_err(to_py)
    }

    fn __repr__(&self) -> String {
        let t = &self.inner;
        let dims: Vec<String> = t.shape().iter().map(usize::to_string).collect();
        let shape = if dims.len() == 1 { format!("({},)", dims[0]) } else { format!("({})", dims.join(", ")) };
        format!(
            "<lowp.QuantizedTensor {}, shape {shape}, axis {}, {} bits/element>",
            t.scheme(),
            t.axis(),
            t.bits_per_element()
        )
    }

    /// Pickling: the safetensors bytes of the tensor.
    fn __reduce__<'py>(&self, py: Python<'py>) -> PyResult<(Bound<'py, PyAny>, (Bound<'py, PyBytes>,))> {
        let bytes = quant::to_bytes(&[("tensor", &self.inner)]).map_err(to_py)?;
        let ctor = py.import("lowp._lowp")?.getattr("_quantized_from_bytes")?;
        Ok((ctor, (PyBytes::new(py, &bytes),)))
    }
}

/// Rebuilds a pickled QuantizedTensor from its safetensors bytes.
#[pyfunction]
fn _quantized_from_bytes(py: Python<'_>, data: &[u8]) -> PyResult<PyQuantizedTensor> {
    let mut tensors = py.detach(|| quant::from_bytes(data)).map_err(to_py)?;
    match tensors.len() {
        1 => Ok(PyQuantizedTensor { inner: tensors.remove(0).1 }),
        n => Err(to_py(Error::InvalidFile(format!("a pickled QuantizedTensor holds one tensor, not {n}")))),
    }
}

/// Quantizes `x` (1-D, C order of `shape`) of data type `dtype` (float32, float64, or float16/bfloat16 as
/// uint16 bit patterns, widened exactly to float32) with the scheme named `scheme`, blocks along `axis`,
/// elements rounded in `mode` with `seed`.
#[allow(clippy::too_many_arguments)]
fn quantize_data(
    py: Python<'_>,
    x: &Bound<'_, PyUntypedArray>,
    dtype: &str,
    shape: &[usize],
    scheme: &str,
    axis: usize,
    mode: &str,
    seed: u64,
) -> PyResult<QuantizedTensor> {
    let scheme = &Scheme::parse(scheme).map_err(to_py)?;
    let cfg = &rounding(mode, seed, 0.0, "significand")?;
    fn run<T: Element + numpy::Element>(
        py: Python<'_>,
        x: &Bound<'_, PyUntypedArray>,
        shape: &[usize],
        scheme: &Scheme,
        axis: usize,
        cfg: &Rounding,
    ) -> PyResult<QuantizedTensor> {
        let src = read(x.cast::<PyArray1<T>>()?)?;
        let src = src.as_slice()?;
        py.detach(|| QuantizedTensor::quantize(scheme, cfg, src, shape, axis)).map_err(to_py)
    }
    match dtype {
        "float32" => run::<f32>(py, x, shape, scheme, axis, cfg),
        "float64" => run::<f64>(py, x, shape, scheme, axis, cfg),
        _ => {
            let Some(n) = Narrow::parse(dtype) else {
                return Err(unsupported_dtype("quantize", dtype, "float16, bfloat16, float32, float64"));
            };
            let bits = read(x.cast::<PyArray1<u16>>()?)?;
            let src = bits.as_slice()?;
            py.detach(|| QuantizedTensor::quantize(scheme, cfg, &n.widen(src), shape, axis)).map_err(to_py)
        }
    }
}

/// Quantizes `x` (1-D, C order of `shape`; see `quantize_data` for `dtype`) with `scheme`.
#[pyfunction]
#[pyo3(signature = (x, dtype, shape, scheme, axis, mode, seed))]
#[allow(clippy::too_many_arguments)]
fn quantize_array(
    py: Python<'_>,
    x: &Bound<'_, PyUntypedArray>,
    dtype: &str,
    shape: Vec<usize>,
    scheme: &str,
    axis: usize,
    mode: &str,
    seed: u64,
) -> PyResult<PyQuantizedTensor> {
    Ok(PyQuantizedTensor { inner: quantize_data(py, x, dtype, &shape, scheme, axis, mode, seed)? })
}

/// Quantizes `x` and writes the dequantized values into `out` (same data type and length). float16 and
/// bfloat16 data are dequantized to float32 and narrowed with round-to-nearest-even.
#[pyfunction]
#[pyo3(signature = (x, out, dtype, shape, scheme, axis, mode, seed))]
#[allow(clippy::too_many_arguments)]
fn fake_quantize_array(
    py: Python<'_>,
    x: &Bound<'_, PyUntypedArray>,
    out: &Bound<'_, PyUntypedArray>,
    dtype: &str,
    shape: Vec<usize>,
    scheme: &str,
    axis: usize,
    mode: &str,
    seed: u64,
) -> PyResult<()> {
    let q = quantize_data(py, x, dtype, &shape, scheme, axis, mode, seed)?;
    fn into<T: Element + numpy::Element>(
        py: Python<'_>,
        q: &QuantizedTensor,
        out: &Bound<'_, PyUntypedArray>,
    ) -> PyResult<()> {
        let mut dst = write(out.cast::<PyArray1<T>>()?)?;
        let dst = dst.as_slice_mut()?;
        py.detach(|| q.dequantize(dst)).map_err(to_py)
    }
    match dtype {
        "float32" => into::<f32>(py, &q, out),
        "float64" => into::<f64>(py, &q, out),
        _ => {
            let n = Narrow::parse(dtype).expect("checked by quantize_data");
            let mut dst = write(out.cast::<PyArray1<u16>>()?)?;
            let dst = dst.as_slice_mut()?;
            check_len(q.len(), dst.len())?;
            py.detach(|| {
                let mut wide = vec![0f32; q.len()];
                q.dequantize(&mut wide)?;
                n.narrow(&wide, dst);
                Ok(())
            })
            .map_err(to_py)
        }
    }
}

/// Every quantized tensor of a safetensors file written by lowp, as `(name, tensor)` in name order.
#[pyfunction]
fn load_file(py: Python<'_>, path: PathBuf) -> PyResult<Vec<(String, PyQuantizedTensor)>> {
    let tensors = py.detach(|| quant::load(&path)).map_err(to_py)?;
    Ok(tensors.into_iter().map(|(name, inner)| (name, PyQuantizedTensor { inner })).collect())
}

/// Writes `(name, tensor)` pairs to a safetensors file, atomically (no partial file on failure).
#[pyfunction]
fn save_file(py: Python<'_>, path: PathBuf, tensors: Vec<(String, PyRef<'_, PyQuantizedTensor>)>) -> PyResult<()> {
    let pairs: Vec<(&str, &QuantizedTensor)> = tensors.iter().map(|(n, t)| (n.as_str(), &t.inner)).collect();
    py.detach(|| quant::save(&path, &pairs)).map_err(to_py)
}

/// The private extension module behind the `lowp` package.
#[pymodule]
fn _lowp(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyFormat>()?;
    m.add_function(wrap_pyfunction!(formats, m)?)?;
    m.add_function(wrap_pyfunction!(_format_from_state, m)?)?;
    m.add_function(wrap_pyfunction!(aliases, m)?)?;
    m.add_function(wrap_pyfunction!(modes, m)?)?;
    m.add_function(wrap_pyfunction!(mode_name, m)?)?;
    m.add_function(wrap_pyfunction!(mode_is_stochastic, m)?)?;
    m.add_function(wrap_pyfunction!(round_array, m)?)?;
    m.add_function(wrap_pyfunction!(encode_array, m)?)?;
    m.add_function(wrap_pyfunction!(decode_array, m)?)?;
    m.add_function(wrap_pyfunction!(pack, m)?)?;
    m.add_function(wrap_pyfunction!(unpack, m)?)?;
    m.add_class::<PyQuantizedTensor>()?;
    m.add_function(wrap_pyfunction!(_quantized_from_bytes, m)?)?;
    m.add_function(wrap_pyfunction!(quantize_array, m)?)?;
    m.add_function(wrap_pyfunction!(fake_quantize_array, m)?)?;
    m.add_function(wrap_pyfunction!(load_file, m)?)?;
    m.add_function(wrap_pyfunction!(save_file, m)?)?;
    arith::register(m)?;
    ptq::register(m)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
