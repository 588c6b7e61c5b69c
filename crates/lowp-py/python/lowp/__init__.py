"""lowp: bit-exact emulation of low-precision number formats and rounding modes, from NumPy.

Round float16/float32/float64 arrays to any element format (IEEE half and bfloat16, the OCP and ml_dtypes
float8/6/4 formats, IEEE P3109 formats, custom ``e<E>m<M>`` and MATLAB-chop ``(t, emax)`` formats) under nine
rounding modes and limited-bit stochastic rounding; encode values to the formats' bit patterns, decode them,
pack sub-byte codes; quantize tensors with block and integer schemes (``int4:g128:asym``, ``mxfp4``,
``nvfp4``, ``nf4:g64``...) and save them as safetensors files. The work is done by lowp's Rust core, with the
interpreter lock released.

>>> import numpy as np, lowp
>>> lowp.round(np.array([0.1, 300.0, 1000.0]), "float8_e4m3fn")
array([1.015625e-01, 2.880000e+02,          nan])
>>> lowp.round(np.array([0.1, 300.0, 1000.0]), "float8_e4m3fn", saturate=True)
array([1.015625e-01, 2.880000e+02, 4.480000e+02])
>>> lowp.encode([1.0, -448.0], "e4m3fn")
array([ 56, 254], dtype=uint8)
>>> lowp.Format("bf16").eps
0.0078125

Arithmetic emulated in a format, every operation rounded once (:mod:`lowp.ops`: element-wise operations and
functions, sums, dot products and GEMM under a chosen accumulation model; :mod:`lowp.linalg`: LU, solves,
Cholesky, mixed-precision iterative refinement):

>>> lowp.ops.add(2048.0, 1.0, "float16")  # 2049 is a tie in float16: ties to even
np.float64(2048.0)
>>> lowp.ops.sum(np.full(10_000, 0.1), "bfloat16")  # recursive summation stagnates at 32
32.0

Errors are :class:`LowpError` subclasses that are also ``ValueError`` or ``TypeError`` (:class:`NumericalError`,
raised by :mod:`lowp.linalg`, is an ``ArithmeticError``).
"""

from __future__ import annotations

import functools
import operator
import os
import threading
from typing import Any, Dict, Mapping, Optional, Tuple, Union

import numpy as np

from . import _lowp
from ._errors import (
    DtypeError,
    FileFormatError,
    FormatError,
    LowpError,
    NumericalError,
    OptionError,
    RepresentationError,
    ShapeError,
)
from ._lowp import Format, QuantizedTensor

__version__: str = _lowp.__version__

__all__ = [
    "Format",
    "formats",
    "modes",
    "round",
    "encode",
    "decode",
    "pack",
    "unpack",
    "as_ml_dtypes",
    "seed",
    "QuantizedTensor",
    "quantize",
    "fake_quantize",
    "load",
    "load_all",
    "save",
    "LowpError",
    "FormatError",
    "OptionError",
    "DtypeError",
    "ShapeError",
    "RepresentationError",
    "FileFormatError",
    "NumericalError",
    "ops",
    "linalg",
    "ptq",
]

FormatLike = Union[str, Format]
ModeLike = Union[str, int]

_DATA_DTYPES = {np.dtype(np.float16): "float16", np.dtype(np.float32): "float32", np.dtype(np.float64): "float64"}
_ACCEPTED_DATA = "float16, float32 or float64"


def formats() -> list:
    """Names of the preset formats (ml_dtypes names), in the order of lowp's format table.

    >>> "float8_e4m3fn" in lowp.formats()
    True
    """
    return _lowp.formats()


def modes() -> list:
    """Names of the nine rounding modes, in MATLAB chop's code order 1-9 (``"stochastic:N"`` is also accepted).

    >>> lowp.modes()[:2]
    ['nearest_even', 'toward_positive']
    """
    return _lowp.modes()


# --- per-call seeds ---------------------------------------------------------------------------------------
# Random bits are a pure function of (seed, element index). Calls without a seed take the next value of a
# process-wide counter started at 0 (never the clock), so repeated calls differ and a fresh process
# reproduces the same sequence; lowp.seed(n) restarts it.

_GOLDEN = 0x9E3779B97F4A7C15
_seed_lock = threading.Lock()
_seed_counter = 0
_seed_base = 0


def seed(n: int) -> None:
    """Restart the sequence of seeds used by calls that pass no ``seed=`` (the initial state is ``seed(0)``).

    >>> lowp.seed(1); a = lowp.round([0.1], "bf16", "stochastic")
    >>> lowp.seed(1); b = lowp.round([0.1], "bf16", "stochastic")
    >>> bool(a[0] == b[0])
    True
    """
    global _seed_counter, _seed_base
    with _seed_lock:
        _seed_base = _check_seed(n)
        _seed_counter = 0


def _check_seed(n: Any) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise OptionError(f"seed must be an integer in [0, 2**64), got {n!r}")
    n = int(n)
    if not 0 <= n < 2**64:
        raise OptionError(f"seed must be an integer in [0, 2**64), got {n}")
    return n


def _call_seed(seed: Any, mode: str, flip_prob: float) -> int:
    global _seed_counter
    if seed is not None:
        return _check_seed(seed)
    if flip_prob == 0.0 and not _lowp.mode_is_stochastic(mode):
        return 0
    with _seed_lock:
        _seed_counter += 1
        return (_seed_base + _GOLDEN * _seed_counter) % 2**64


# --- argument conversion ----------------------------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def _parse_format(name: str) -> Format:
    return Format(name)


def _format(fmt: Any, subnormals: Optional[bool] = None, saturate: Optional[bool] = None) -> Format:
    if isinstance(fmt, Format):
        f = fmt
    elif isinstance(fmt, str):
        f = _parse_format(fmt)
    else:
        raise FormatError(f"fmt must be a format name (str) or a lowp.Format, got {type(fmt).__name__}")
    if subnormals is not None or saturate is not None:
        f = f.with_options(subnormals=subnormals, saturate=saturate)
    return f


def _mode(mode: Any) -> str:
    if isinstance(mode, (int, np.integer)) and not isinstance(mode, bool):
        mode = str(int(mode))
    if not isinstance(mode, str):
        raise OptionError(
            f"mode must be a rounding-mode name or a chop code 1-9, got {type(mode).__name__}. "
            f"Accepted: {', '.join(modes())}, stochastic:N"
        )
    return _lowp.mode_name(mode)


def _float_input(x: Any, what: str, accepted: str = _ACCEPTED_DATA) -> Tuple[np.ndarray, bool]:
    """The data as a float array, and whether the caller passed a scalar."""
    if isinstance(x, np.ndarray):
        arr = x
    else:
        arr = np.asarray(x)
        if arr.dtype.kind in "biu":
            arr = arr.astype(np.float64)
    if arr.dtype.kind == "f" and not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    if arr.dtype not in _DATA_DTYPES:
        raise DtypeError(
            f"{what}: unsupported dtype {arr.dtype}. Accepted: {accepted} arrays, Python floats, ints and "
            f"lists (convert other data first, e.g. x.astype(np.float32))"
        )
    return arr, arr.ndim == 0 and not isinstance(x, np.ndarray)


def _contiguous(a: np.ndarray) -> np.ndarray:
    return np.require(a, requirements=["C", "A"])


def _flat(a: np.ndarray) -> np.ndarray:
    """A 1-D view of a C-contiguous array; float16 travels as its uint16 bit patterns."""
    v = a.reshape(-1)
    return v.view(np.uint16) if v.dtype == np.float16 else v


def _writable_direct(out: np.ndarray) -> bool:
    f = out.flags
    return f.c_contiguous and f.aligned and f.writeable


def _check_out(out: Any, arr: np.ndarray, what: str) -> np.ndarray:
    if not isinstance(out, np.ndarray):
        raise DtypeError(f"{what}: out must be a numpy array, got {type(out).__name__}")
    if out.dtype != arr.dtype:
        raise DtypeError(f"{what}: out has dtype {out.dtype} but the data is {arr.dtype}; they must match")
    if out.shape != arr.shape:
        raise ShapeError(f"{what}: out has shape {out.shape} but the data has shape {arr.shape}; they must match")
    if not out.flags.writeable:
        raise OptionError(f"{what}: out is read-only")
    return out


def _same_layout(a: np.ndarray, b: np.ndarray) -> bool:
    ia, ib = a.__array_interface__, b.__array_interface__
    return ia["data"][0] == ib["data"][0] and a.strides == b.strides and a.shape == b.shape


# --- bulk operations --------------------------------------------------------------------------------------


def round(
    x: Any,
    fmt: FormatLike,
    mode: ModeLike = "nearest_even",
    *,
    seed: Optional[int] = None,
    subnormals: Optional[bool] = None,
    saturate: Optional[bool] = None,
    flip_prob: float = 0.0,
    flip_scope: str = "significand",
    out: Optional[np.ndarray] = None,
) -> Any:
    """Round every element of ``x`` to format ``fmt``; the result keeps ``x``'s dtype and shape.

    ``x``: a float16/float32/float64 array of any shape and strides, or a Python scalar or list (taken as
    float64; a scalar gives a scalar back). ``fmt``: a name (``"bfloat16"``, ``"e4m3fn"``, ``"e5m10"``,
    ``"binary8p3se"``, ``"chop(11,15)"``...) or a :class:`Format`. ``mode``: one of :func:`modes`, an
    alias (``"rne"``, ``"up"``, ``"down"``, ``"rtz"``, ``"sr"``), a chop code 1-9, or ``"stochastic:N"`` (N random
    bits). ``seed``: random bits are a function of (seed, element index), so a seeded call is reproducible
    on any number of threads; without a seed each call takes the next seed of :func:`seed`'s sequence.
    ``subnormals`` / ``saturate`` override the format's options. ``flip_prob``: after rounding, flip one
    random bit of the significand (``flip_scope="code"``: of the whole code) with this probability.
    ``out``: an array of the same dtype and shape to write into (``out=x`` rounds in place).

    >>> lowp.round(np.float32(1 + 2**-11), "float16")
    np.float32(1.0)
    >>> lowp.round([65519.0, 65520.0], "float16")
    array([65504.,    inf])
    >>> lowp.round([0.3, -0.3], "e2m1", "toward_zero")
    array([ 0., -0.])
    """
    f = _format(fmt, subnormals, saturate)
    m = _mode(mode)
    p = _probability(flip_prob)
    arr, scalar = _float_input(x, "round")
    s = _call_seed(seed, m, p)
    if isinstance(out, np.ndarray) and out.dtype.kind == "f" and not out.dtype.isnative:
        # A non-native `out` (big-endian data rounded in place, say): round natively, then store.
        _check_out(out.view(out.dtype.newbyteorder("=")), arr, "round")
        np.copyto(out, _round_data(arr, _DATA_DTYPES[arr.dtype], f, m, s, p, flip_scope, None))
        return out
    res = _round_data(arr, _DATA_DTYPES[arr.dtype], f, m, s, p, flip_scope, out)
    return res[()] if scalar and out is None else res


def _probability(p: Any) -> float:
    try:
        return float(p)
    except (TypeError, ValueError):
        raise OptionError(f"flip_prob must be a probability in [0, 1], got {p!r}") from None


def _round_bits(bits: np.ndarray, fmt: FormatLike, mode: ModeLike, dtype: str, *, seed: Optional[int] = None,
                subnormals: Optional[bool] = None, saturate: Optional[bool] = None, flip_prob: float = 0.0,
                flip_scope: str = "significand", out: Optional[np.ndarray] = None) -> np.ndarray:
    """:func:`round` for 16-bit data carried as uint16 bit patterns (``dtype="bfloat16"``: lowp.torch)."""
    f = _format(fmt, subnormals, saturate)
    m = _mode(mode)
    p = _probability(flip_prob)
    s = _call_seed(seed, m, p)
    return _round_data(bits, dtype, f, m, s, p, flip_scope, out)


def _round_data(arr: np.ndarray, tag: str, f: Format, m: str, s: int, flip_prob: float, flip_scope: str,
                out: Optional[np.ndarray]) -> np.ndarray:
    def run(src: np.ndarray, dst: Optional[np.ndarray]) -> None:
        _lowp.round_array(_flat(src), None if dst is None else _flat(dst), tag, f, m, s, flip_prob, flip_scope)

    if out is None:
        res = np.empty(arr.shape, arr.dtype)
        run(_contiguous(arr), res)
        return res
    _check_out(out, arr, "round")
    if _same_layout(out, arr):
        if _writable_direct(out):
            run(out, None)
        else:
            tmp = np.array(out, order="C")
            run(tmp, None)
            np.copyto(out, tmp)
    elif _writable_direct(out) and not np.may_share_memory(out, arr):
        run(_contiguous(arr), out)
    else:
        tmp = np.empty(arr.shape, arr.dtype)
        run(_contiguous(arr), tmp)
        np.copyto(out, tmp)
    return out


def _code_dtype(f: Format) -> np.dtype:
    for dt in (np.uint8, np.uint16, np.uint32, np.uint64):
        if f.bits <= 8 * np.dtype(dt).itemsize:
            return np.dtype(dt)
    raise FormatError(f"{f.name} has {f.bits} bits; codes are at most 64 bits")  # pragma: no cover


def encode(
    x: Any,
    fmt: FormatLike,
    mode: ModeLike = "nearest_even",
    *,
    seed: Optional[int] = None,
    subnormals: Optional[bool] = None,
    saturate: Optional[bool] = None,
) -> Any:
    """Round ``x`` (as :func:`round` does) and return the format's codes: uint8 for formats of up to 8 bits,
    uint16 up to 16, then uint32/uint64. Codes are the formats' bit patterns, identical to ml_dtypes' bytes
    for the formats both have. NaN in a format without NaN raises :class:`RepresentationError`.

    >>> lowp.encode(np.array([1.0, 6.0, -0.5], np.float32), "float4_e2m1fn")
    array([2, 7, 9], dtype=uint8)
    """
    f = _format(fmt, subnormals, saturate)
    m = _mode(mode)
    arr, scalar = _float_input(x, "encode")
    s = _call_seed(seed, m, 0.0)
    res = np.empty(arr.shape, _code_dtype(f))
    _lowp.encode_array(_flat(_contiguous(arr)), res.reshape(-1), _DATA_DTYPES[arr.dtype], f, m, s)
    return res[()] if scalar else res


def _codes_input(codes: Any, what: str) -> np.ndarray:
    arr = np.asarray(codes)
    if arr.dtype.kind == "u":
        pass
    elif arr.dtype.kind in "iO" or (arr.dtype.kind == "b"):
        if arr.dtype.kind == "O":
            raise DtypeError(f"{what}: codes must be unsigned integers, got objects")
        if arr.size and arr.min() < 0:
            raise RepresentationError(f"{what}: codes must be non-negative, got {arr.min()}")
        arr = arr.astype(np.uint64)
    elif arr.dtype.kind == "V" or (arr.dtype.kind == "f" and type(arr.dtype).__module__.startswith("ml_dtypes")):
        # an ml_dtypes array: its bytes are the codes
        if arr.dtype.itemsize not in (1, 2):
            raise DtypeError(f"{what}: cannot read codes from dtype {arr.dtype}")
        arr = arr.view(np.uint8 if arr.dtype.itemsize == 1 else np.uint16)
    else:
        raise DtypeError(
            f"{what}: codes must be unsigned integers (uint8/16/32/64), Python ints or an ml_dtypes array; "
            f"got dtype {arr.dtype}"
        )
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    return arr


def decode(codes: Any, fmt: FormatLike, dtype: Any = np.float32) -> np.ndarray:
    """The values of ``codes`` in format ``fmt``, as ``dtype`` (float16, float32 or float64; the format must fit
    in it). ``codes`` may be unsigned integers, Python ints, or an ml_dtypes array (its bytes are read).

    >>> lowp.decode(np.array([0x38, 0x7e, 0x7f], np.uint8), "float8_e4m3fn")
    array([  1., 448.,  nan], dtype=float32)
    """
    f = _format(fmt)
    arr = _codes_input(codes, "decode")
    try:
        dt = np.dtype(dtype)
    except TypeError as e:
        raise DtypeError(f"decode: {dtype!r} is not a dtype. Accepted: {_ACCEPTED_DATA}") from e
    if dt not in _DATA_DTYPES:
        raise DtypeError(f"decode: unsupported output dtype {dt}. Accepted: {_ACCEPTED_DATA}")
    res = np.empty(arr.shape, dt)
    _lowp.decode_array(_contiguous(arr).reshape(-1), _flat(res), _DATA_DTYPES[dt], f)
    return res


def _check_bits(bits: Any) -> int:
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)):
        raise OptionError(f"bits must be an integer in 1..=8, got {bits!r}")
    return int(bits)


def pack(codes: Any, bits: int) -> np.ndarray:
    """Pack codes of ``bits`` bits (1-8) into a little-endian bit stream (element i in bits [i*b, (i+1)*b),
    bit 0 the least significant bit of byte 0). Codes are taken in C order.

    >>> lowp.pack(np.array([1, 2, 3], np.uint8), 4)
    array([33,  3], dtype=uint8)
    """
    arr = _codes_input(codes, "pack").reshape(-1)
    if arr.dtype != np.uint8:
        if arr.size and arr.max() > 255:
            raise RepresentationError(f"pack: code {arr.max()} does not fit in {bits} bits")
        arr = arr.astype(np.uint8)
    return _lowp.pack(_contiguous(arr), _check_bits(bits))


def unpack(buf: Any, bits: int, count: int) -> np.ndarray:
    """The first ``count`` codes of ``bits`` bits from a packed bit stream (bytes or a uint8 array).

    >>> lowp.unpack(bytes([33, 3]), 4, 3)
    array([1, 2, 3], dtype=uint8)
    """
    if isinstance(buf, (bytes, bytearray, memoryview)):
        arr = np.frombuffer(buf, np.uint8)
    else:
        arr = np.asarray(buf)
        if arr.dtype != np.uint8:
            raise DtypeError(f"unpack: the packed buffer must be bytes or a uint8 array, got dtype {arr.dtype}")
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or not 0 <= count < 2**62:
        raise OptionError(f"unpack: count must be a non-negative integer, got {count!r}")
    return _lowp.unpack(_contiguous(arr.reshape(-1)), _check_bits(bits), operator.index(count))


_NUMPY_TWINS = {"float16": np.float16, "float32": np.float32, "float64": np.float64}


def _same_codes(a: Format, b: Format) -> bool:
    key = operator.attrgetter("exp_bits", "man_bits", "bias", "specials", "signed")
    return key(a) == key(b)


def as_ml_dtypes(codes: Any, fmt: FormatLike) -> np.ndarray:
    """View ``codes`` (as returned by :func:`encode`) in the matching ml_dtypes dtype (or NumPy's float16/32/64),
    without copying. Needs the ``ml_dtypes`` package for the 8-bit and smaller formats and bfloat16.

    >>> lowp.as_ml_dtypes(lowp.encode([1.5], "float16"), "float16")
    array([1.5], dtype=float16)
    """
    f = _format(fmt)
    arr = np.asarray(codes)
    if arr.dtype.kind != "u":
        raise DtypeError(f"as_ml_dtypes: codes must be an unsigned integer array, got dtype {arr.dtype}")
    twin = next((name for name in formats() if _same_codes(f, _parse_format(name))), None)
    if twin is None:
        raise FormatError(f"{f.name} has no ml_dtypes counterpart: its fields match no preset of lowp.formats()")
    width = _code_dtype(f).itemsize
    if arr.dtype.itemsize != width:
        raise DtypeError(
            f"as_ml_dtypes: {twin} takes {width}-byte codes but the codes are {arr.dtype}; pass what lowp.encode returned"
        )
    if twin in _NUMPY_TWINS:
        dt = np.dtype(_NUMPY_TWINS[twin])
    else:
        try:
            import ml_dtypes
        except ImportError as e:
            raise ImportError("as_ml_dtypes needs the ml_dtypes package: pip install ml_dtypes") from e
        if not hasattr(ml_dtypes, twin):
            raise FormatError(f"{twin} has no ml_dtypes counterpart (ml_dtypes {ml_dtypes.__version__})")
        dt = np.dtype(getattr(ml_dtypes, twin))
    return arr.view(dt)



# --- quantization schemes ---------------------------------------------------------------------------------

_ACCEPTED_QUANT = "float16, bfloat16 (ml_dtypes), float32 or float64"


def _scheme(scheme: Any) -> str:
    if not isinstance(scheme, str):
        raise FormatError(
            f"scheme must be a scheme string such as \"int4:g128:asym\", \"mxfp4\" or \"nvfp4\", got "
            f"{type(scheme).__name__}"
        )
    return scheme


def _quant_input(x: Any, what: str) -> Tuple[np.ndarray, str, bool]:
    """The data as an array, its type's name (float16, bfloat16, float32, float64), and whether a scalar came."""
    arr = x if isinstance(x, np.ndarray) else np.asarray(x)
    if arr.dtype.kind == "V" and arr.dtype.name == "bfloat16":  # ml_dtypes.bfloat16
        return arr, "bfloat16", arr.ndim == 0 and not isinstance(x, np.ndarray)
    arr, scalar = _float_input(x, what, _ACCEPTED_QUANT)
    return arr, _DATA_DTYPES[arr.dtype], scalar


def _flat16(a: np.ndarray) -> np.ndarray:
    """A 1-D C-order view of an array; 16-bit floats (float16, bfloat16) as their uint16 bit patterns."""
    v = _contiguous(a).reshape(-1)
    return v.view(np.uint16) if v.dtype.itemsize == 2 else v


def _axis(axis: Any, ndim: int, what: str) -> int:
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise OptionError(f"{what}: axis must be an integer, got {axis!r}")
    n = max(ndim, 1)  # a 0-d tensor is quantized as one block along its only "axis" 0
    a = int(axis)
    if not -n <= a < n:
        raise ShapeError(f"{what}: axis {a} is out of range for data of {ndim} dimensions (accepted: {-n} to {n - 1})")
    return a % n


def quantize(
    x: Any,
    scheme: str,
    axis: int = -1,
    *,
    mode: ModeLike = "nearest_even",
    seed: Optional[int] = None,
) -> QuantizedTensor:
    """Quantize ``x`` with ``scheme``; blocks and groups run along ``axis`` (per-channel schemes: one scale per
    index along it).

    ``x``: a float32/float64 array of any shape, strides and byte order, float16 or ml_dtypes bfloat16 data
    (widened exactly to float32), or Python floats, ints and lists (as float64). ``scheme``: a scheme string
    (``"int4:g128:asym"``, ``"int8:channel:sym"``, ``"mxfp4"``, ``"mxfp8_e4m3"``, ``"nvfp4"``, ``"bfp8:b16"``,
    ``"bitmod4:g128"``, ``"nf4:g64"``, ``"codebook(-1,0,1):g32"``, ``"fixed:q4.4"``; docs/quantization.md has
    them all). ``mode`` and ``seed`` are :func:`round`'s: the rounding of the elements (and of x/scale for
    integer schemes).

    >>> x = np.array([[0.1, -0.7, 1.3, 2.0], [8.0, 0.0, -3.0, 0.5]], np.float32)
    >>> q = lowp.quantize(x, "int4:tensor:sym")
    >>> q.codes
    array([[ 0, -1,  1,  2],
           [ 7,  0, -3,  0]], dtype=int8)
    >>> q.scales
    array([1.14285719])
    >>> q.dequantize()
    array([[ 0.       , -1.1428572,  1.1428572,  2.2857144],
           [ 8.       ,  0.       , -3.4285717,  0.       ]], dtype=float32)
    >>> lowp.quantize(x, "int8:channel:sym", axis=0).scales.shape
    (2,)
    >>> lowp.quantize(np.ones((4, 256), np.float32), "int4:g128:asym").bits_per_element
    4.28125
    """
    s = _scheme(scheme)
    m = _mode(mode)
    arr, tag, _ = _quant_input(x, "quantize")
    ax = _axis(axis, arr.ndim, "quantize")
    sd = _call_seed(seed, m, 0.0)
    return _lowp.quantize_array(_flat16(arr), tag, arr.shape, s, ax, m, sd)


def _fake_quantize_data(arr: np.ndarray, tag: str, scheme: str, axis: Any, mode: ModeLike,
                        seed: Optional[int]) -> np.ndarray:
    """:func:`fake_quantize` of an array whose data type is ``tag`` (16-bit data may come as uint16 bits)."""
    s = _scheme(scheme)
    m = _mode(mode)
    ax = _axis(axis, arr.ndim, "fake_quantize")
    sd = _call_seed(seed, m, 0.0)
    res = np.empty(arr.shape, arr.dtype)
    _lowp.fake_quantize_array(_flat16(arr), _flat16(res), tag, arr.shape, s, ax, m, sd)
    return res


def fake_quantize(
    x: Any,
    scheme: str,
    axis: int = -1,
    *,
    mode: ModeLike = "nearest_even",
    seed: Optional[int] = None,
) -> Any:
    """Quantize and dequantize in one call: ``quantize(x, scheme, axis, ...).dequantize()`` in ``x``'s float
    dtype and shape (a Python scalar gives a NumPy scalar). float16 and bfloat16 data are dequantized to float32
    and stored back rounded to nearest (even): exact when the values fit the narrow type (they do for the
    element-format schemes, MX, NVFP4 and fixed point of few bits; products with a float32 scale may not).

    >>> lowp.fake_quantize([0.3, -1.1, 2.6, 6.0], "int4:tensor:sym")  # scale float32(6/7): 7 * scale is not 6
    array([ 0.        , -0.85714287,  2.5714286 ,  6.00000006])
    >>> lowp.fake_quantize(np.array([0.3, 5.0, 0.1], np.float16), "mxfp4")  # scale 2^0; e2m1 has 0.5 and 4
    array([0.5, 4. , 0. ], dtype=float16)
    """
    arr, tag, scalar = _quant_input(x, "fake_quantize")
    res = _fake_quantize_data(arr, tag, scheme, axis, mode, seed)
    return res[()] if scalar else res


def _fake_quantize_bits(bits: np.ndarray, scheme: str, axis: Any = -1, *, mode: ModeLike = "nearest_even",
                        seed: Optional[int] = None) -> np.ndarray:
    """:func:`fake_quantize` of bfloat16 data carried as uint16 bit patterns (lowp.torch)."""
    return _fake_quantize_data(bits, "bfloat16", scheme, axis, mode, seed)


PathLike = Union[str, "os.PathLike[str]"]


def _path(path: Any) -> str:
    try:
        return os.fsdecode(os.fspath(path))
    except TypeError:
        raise OptionError(f"path must be a str or an os.PathLike, got {type(path).__name__}") from None


def load_all(path: PathLike) -> Dict[str, QuantizedTensor]:
    """Every quantized tensor of a safetensors file written by :func:`save`, by name (in name order).
    A missing file raises ``OSError`` (``FileNotFoundError``); a file lowp cannot read, :class:`FileFormatError`.
    """
    return dict(_lowp.load_file(_path(path)))


def load(path: PathLike, name: Optional[str] = None) -> QuantizedTensor:
    """The quantized tensor of a file written by :func:`save` or :meth:`QuantizedTensor.save`: its only one, or
    the one called ``name``.

    >>> import os, tempfile
    >>> q = lowp.quantize(np.arange(64, dtype=np.float32), "nvfp4")
    >>> path = os.path.join(tempfile.mkdtemp(), "w.safetensors")
    >>> q.save(path, "w")
    >>> lowp.load(path) == q
    True
    >>> lowp.save(path, {"a": q, "b": lowp.quantize(np.ones(8), "fixed:q4.4")})
    >>> sorted(lowp.load_all(path))
    ['a', 'b']
    >>> lowp.load(path, "b").codes
    array([16, 16, 16, 16, 16, 16, 16, 16], dtype=int8)
    """
    p = _path(path)
    tensors = _lowp.load_file(p)
    names = [n for n, _ in tensors]
    if name is None:
        if len(tensors) == 1:
            return tensors[0][1]
        raise OptionError(
            f"load: {p} holds {len(tensors)} quantized tensors ({', '.join(names)}); pass name= to choose one, "
            f"or call lowp.load_all"
        )
    for n, t in tensors:
        if n == name:
            return t
    raise OptionError(f"load: {p} has no quantized tensor named {name!r}. It has: {', '.join(names)}")


def save(path: PathLike, tensors: Mapping[str, QuantizedTensor]) -> None:
    """Write quantized tensors ``{name: tensor}`` to a safetensors file: each tensor's parts are stored as
    ``NAME.codes``, ``NAME.scales``... with the scheme, shape and axis in the file's metadata (key ``"lowp"``),
    so any safetensors reader opens it (docs/quantization.md has the layout). The file is written beside its
    final place and renamed into it: a failed save leaves no partial file.
    """
    if isinstance(tensors, QuantizedTensor):
        raise OptionError("save: tensors must be a dict {name: QuantizedTensor}; for one tensor use tensor.save(path)")
    if not isinstance(tensors, Mapping):
        raise OptionError(f"save: tensors must be a dict {{name: QuantizedTensor}}, got {type(tensors).__name__}")
    if not tensors:
        raise OptionError("save: no tensors to save")
    items = []
    for name, t in tensors.items():
        if not isinstance(name, str):
            raise OptionError(f"save: tensor names must be strings, got {name!r}")
        if not isinstance(t, QuantizedTensor):
            raise DtypeError(
                f"save: tensors[{name!r}] is a {type(t).__name__}, not a lowp.QuantizedTensor (lowp.quantize it first)"
            )
        items.append((name, t))
    _lowp.save_file(_path(path), items)


# The arithmetic submodules use the helpers above (formats, modes, seeds, data conversion).
from . import linalg, ops, ptq  # noqa: E402
