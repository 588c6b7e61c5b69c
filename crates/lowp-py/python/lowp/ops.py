"""Arithmetic emulated in a number format: every operation is the exact result rounded once to the format, in
any rounding mode (the stochastic ones included), as if the hardware computed in that format.

- Element-wise, with NumPy broadcasting: :func:`add`, :func:`sub`, :func:`mul`, :func:`div`, :func:`fma`
  (one rounding of ``a * b + c``) and the correctly rounded functions :func:`sqrt`, :func:`exp`, :func:`exp2`,
  :func:`log`, :func:`log2`, :func:`log10`, :func:`sin`, :func:`cos`, :func:`tan`, :func:`tanh`.
- Reductions under an explicit arithmetic model: :func:`sum`, :func:`dot`, :func:`matmul`: products rounded to
  ``fmt`` (or exact: ``exact_products=True``), the accumulator held in ``accum`` (default ``fmt``), the
  additions in ``order``: ``"recursive"``, ``"pairwise"``, ``"blocked:B"`` or ``"blockfma:K"`` (K products
  added exactly to the accumulator with one rounding: a tensor-core model).

>>> lowp.ops.add(2048.0, 1.0, "float16")                 # the tie 2049 goes to even
np.float64(2048.0)
>>> lowp.ops.add(2048.0, 1.0, "float16", "toward_positive")
np.float64(2050.0)
>>> lowp.ops.div(np.array([1.0, 2.0], np.float32), 3.0, "bfloat16")
array([0.33398438, 0.66796875], dtype=float32)
>>> lowp.ops.exp(1.0, "e4m3fn", "toward_zero")
np.float64(2.5)
>>> a = np.full(4, 1 + 2.0**-10)                          # a float16 value
>>> lowp.ops.dot(a, a, "float16")                         # products rounded to float16: (1 + 2^-10)^2 -> 1 + 2^-9
4.0078125
>>> lowp.ops.dot(a, a, "float16", exact_products=True, accum="float32", order="blockfma:4")
4.00781631...

Data: float32 and float64 arrays of any shape and strides, NumPy scalars, Python floats, ints and lists (as
float64). Element-wise results are float32 when every array operand is float32, float64 otherwise; Python
scalars take the arrays' dtype as in NumPy (so with float32 arrays a Python float is first converted to
float32: pass float64 arrays to keep it exact). A result whose operands are all scalars is a NumPy scalar.
float16 and other dtypes raise :class:`lowp.DtypeError`. Reductions take any float data, converted to float64
exactly, and return float64.

``mode`` and ``seed`` are :func:`lowp.round`'s: a call with ``seed=`` is reproducible on any number of threads;
without it, a stochastic call takes the next seed of :func:`lowp.seed`'s sequence.
"""

from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple

import numpy as np

import lowp
from . import _lowp
from ._errors import DtypeError, OptionError, ShapeError

__all__ = [
    "add",
    "sub",
    "mul",
    "div",
    "fma",
    "sqrt",
    "exp",
    "exp2",
    "log",
    "log2",
    "log10",
    "sin",
    "cos",
    "tan",
    "tanh",
    "sum",
    "dot",
    "matmul",
]

_ACCEPTED = "float32 or float64"
_SCALAR_TYPES = (bool, int, float)


def _operands(args: Sequence[Any], what: str) -> Tuple[List[np.ndarray], Tuple[int, ...], np.dtype, bool]:
    """The operands broadcast to one shape and converted to one dtype (1-D, C-contiguous), the shape, the
    dtype, and whether every operand was a scalar."""
    arrays, strong = [], []
    scalars = True
    for x in args:
        arr, scalar = lowp._float_input(x, what, _ACCEPTED)
        if arr.dtype == np.float16:
            raise DtypeError(
                f"{what}: unsupported dtype float16. Accepted: {_ACCEPTED} arrays, Python floats, ints and lists "
                f"(widen float16 data exactly with x.astype(np.float32))"
            )
        if not (isinstance(x, _SCALAR_TYPES) and not isinstance(x, np.generic)):
            strong.append(arr.dtype)  # arrays, lists and NumPy scalars set the dtype; Python scalars follow it
        arrays.append(arr)
        scalars = scalars and scalar
    dtype = np.dtype(np.float32 if strong and all(d == np.float32 for d in strong) else np.float64)
    try:
        shape = np.broadcast_shapes(*(a.shape for a in arrays))
    except ValueError:
        shapes = ", ".join(str(a.shape) for a in arrays)
        raise ShapeError(f"{what}: operands of shapes {shapes} do not broadcast to one shape (NumPy's rules)") from None
    flat = [np.ascontiguousarray(np.broadcast_to(a.astype(dtype, copy=False), shape)).reshape(-1) for a in arrays]
    return flat, shape, dtype, scalars


def _elementwise(op: str, args: Sequence[Any], fmt: Any, mode: Any, seed: Optional[int]) -> Any:
    f = lowp._format(fmt)
    m = lowp._mode(mode)
    flat, shape, dtype, scalars = _operands(args, f"ops.{op}")
    s = lowp._call_seed(seed, m, 0.0)
    res = np.empty(shape, dtype)
    _lowp.elementwise_array(op, flat, res.reshape(-1), dtype.name, f, m, s)
    return res[()] if scalars else res


def add(x: Any, y: Any, fmt: lowp.FormatLike, mode: lowp.ModeLike = "nearest_even", *,
        seed: Optional[int] = None) -> Any:
    """``fl(x + y)`` in ``fmt``, element-wise with broadcasting. The sum of opposite values is +0, or -0 under
    ``toward_negative``, as IEEE 754 says.

    >>> lowp.ops.add([65504.0, 1.0], [16.0, -1.0], "float16")                # 65520 overflows; 1 - 1 = +0
    array([inf,  0.])
    >>> lowp.ops.add(1.0, -1.0, "float16", "toward_negative")
    np.float64(-0.0)
    """
    return _elementwise("add", (x, y), fmt, mode, seed)


def sub(x: Any, y: Any, fmt: lowp.FormatLike, mode: lowp.ModeLike = "nearest_even", *,
        seed: Optional[int] = None) -> Any:
    """``fl(x - y)`` in ``fmt``, element-wise with broadcasting.

    >>> lowp.ops.sub(1.0, 2.0**-12, "float16", "toward_zero")
    np.float64(0.99951171875)
    """
    return _elementwise("sub", (x, y), fmt, mode, seed)


def mul(x: Any, y: Any, fmt: lowp.FormatLike, mode: lowp.ModeLike = "nearest_even", *,
        seed: Optional[int] = None) -> Any:
    """``fl(x * y)`` in ``fmt``, element-wise with broadcasting (subnormal results rounded once).

    >>> lowp.ops.mul(2.0**-12, 2.0**-13 * 1.5, "float16")                   # 1.5 * 2^-25 rounds up to 2^-24
    np.float64(5.960464477539063e-08)
    """
    return _elementwise("mul", (x, y), fmt, mode, seed)


def div(x: Any, y: Any, fmt: lowp.FormatLike, mode: lowp.ModeLike = "nearest_even", *,
        seed: Optional[int] = None) -> Any:
    """``fl(x / y)`` in ``fmt``, element-wise with broadcasting.

    >>> lowp.ops.div(1.0, [3.0, 0.0, -0.0], "bfloat16")
    array([0.33398438,        inf,       -inf])
    """
    return _elementwise("div", (x, y), fmt, mode, seed)


def fma(a: Any, b: Any, c: Any, fmt: lowp.FormatLike, mode: lowp.ModeLike = "nearest_even", *,
        seed: Optional[int] = None) -> Any:
    """``fl(a * b + c)`` in ``fmt`` with one rounding (a fused multiply-add), element-wise with broadcasting.

    >>> e = 2.0**-10                                                          # float16's epsilon
    >>> lowp.ops.fma(1 + e, 1 - e, -1.0, "float16")                           # -e^2, lost if a * b were rounded
    np.float64(-9.5367431640625e-07)
    """
    return _elementwise("fma", (a, b, c), fmt, mode, seed)


def sqrt(x: Any, fmt: lowp.FormatLike, mode: lowp.ModeLike = "nearest_even", *, seed: Optional[int] = None) -> Any:
    """The square root rounded once to ``fmt`` (NaN for x < 0; sqrt(-0) = -0).

    >>> lowp.ops.sqrt([2.0, -0.0], "float16", "toward_positive")
    array([ 1.41503906, -0.        ])
    """
    return _elementwise("sqrt", (x,), fmt, mode, seed)


def exp(x: Any, fmt: lowp.FormatLike, mode: lowp.ModeLike = "nearest_even", *, seed: Optional[int] = None) -> Any:
    """e^x correctly rounded to ``fmt`` (overflow and underflow as the format and mode say).

    >>> lowp.ops.exp([1.0, 11.1, -20.0], "float16")
    array([2.71875,     inf, 0.     ])
    """
    return _elementwise("exp", (x,), fmt, mode, seed)


def exp2(x: Any, fmt: lowp.FormatLike, mode: lowp.ModeLike = "nearest_even", *, seed: Optional[int] = None) -> Any:
    """2^x correctly rounded to ``fmt``.

    >>> lowp.ops.exp2([0.5, -24.0], "float16")
    array([1.41406250e+00, 5.96046448e-08])
    """
    return _elementwise("exp2", (x,), fmt, mode, seed)


def log(x: Any, fmt: lowp.FormatLike, mode: lowp.ModeLike = "nearest_even", *, seed: Optional[int] = None) -> Any:
    """The natural logarithm correctly rounded to ``fmt`` (log(0) = -inf, NaN for x < 0).

    >>> lowp.ops.log([2.0, 1.0, 0.0], "bfloat16")
    array([0.69140625, 0.        ,       -inf])
    """
    return _elementwise("log", (x,), fmt, mode, seed)


def log2(x: Any, fmt: lowp.FormatLike, mode: lowp.ModeLike = "nearest_even", *, seed: Optional[int] = None) -> Any:
    """The base-2 logarithm correctly rounded to ``fmt``.

    >>> lowp.ops.log2([3.0, 1024.0], "float16")
    array([ 1.58496094, 10.        ])
    """
    return _elementwise("log2", (x,), fmt, mode, seed)


def log10(x: Any, fmt: lowp.FormatLike, mode: lowp.ModeLike = "nearest_even", *, seed: Optional[int] = None) -> Any:
    """The base-10 logarithm correctly rounded to ``fmt``.

    >>> lowp.ops.log10([2.0, 1000.0], "float16")
    array([0.30102539, 3.        ])
    """
    return _elementwise("log10", (x,), fmt, mode, seed)


def sin(x: Any, fmt: lowp.FormatLike, mode: lowp.ModeLike = "nearest_even", *, seed: Optional[int] = None) -> Any:
    """The sine (radians) correctly rounded to ``fmt``, for arguments of any size.

    >>> lowp.ops.sin([1e22, 2.0**-30], "float64")
    array([-8.52200850e-01,  9.31322575e-10])
    """
    return _elementwise("sin", (x,), fmt, mode, seed)


def cos(x: Any, fmt: lowp.FormatLike, mode: lowp.ModeLike = "nearest_even", *, seed: Optional[int] = None) -> Any:
    """The cosine (radians) correctly rounded to ``fmt``.

    >>> lowp.ops.cos([0.0, 1.0], "bfloat16", "toward_zero")
    array([1.        , 0.5390625])
    """
    return _elementwise("cos", (x,), fmt, mode, seed)


def tan(x: Any, fmt: lowp.FormatLike, mode: lowp.ModeLike = "nearest_even", *, seed: Optional[int] = None) -> Any:
    """The tangent (radians) correctly rounded to ``fmt``.

    >>> lowp.ops.tan(1.5, "float16")
    np.float64(14.1015625)
    """
    return _elementwise("tan", (x,), fmt, mode, seed)


def tanh(x: Any, fmt: lowp.FormatLike, mode: lowp.ModeLike = "nearest_even", *, seed: Optional[int] = None) -> Any:
    """The hyperbolic tangent correctly rounded to ``fmt``.

    >>> lowp.ops.tanh([0.5, 20.0], "float16", "toward_zero")
    array([0.46191406, 0.99951172])
    """
    return _elementwise("tanh", (x,), fmt, mode, seed)


# --- reductions -------------------------------------------------------------------------------------------


def _order(order: Any) -> str:
    if not isinstance(order, str):
        raise OptionError(
            f"order must be a string, got {type(order).__name__}. Accepted: recursive, pairwise, blocked:B, blockfma:K"
        )
    return order


def _model(fmt: Any, accum: Any, exact_products: Any) -> Tuple[Optional[lowp.Format], lowp.Format]:
    """The product format (None: exact products) and the accumulator's."""
    product = lowp._format(fmt)
    acc = product if accum is None else lowp._format(accum)
    return (None if exact_products else product), acc


def _float64(x: Any, what: str) -> np.ndarray:
    arr, _ = lowp._float_input(x, what)
    return np.asarray(arr, dtype=np.float64, order="C")


def sum(x: Any, fmt: lowp.FormatLike, mode: lowp.ModeLike = "nearest_even", *, accum: Optional[lowp.FormatLike] = None,
        order: str = "recursive", seed: Optional[int] = None) -> float:
    """The sum of every element of ``x`` (flattened in C order) with each addition rounded to the accumulator
    format (``accum``, default ``fmt``), in ``order``: ``"recursive"`` (``s = fl(s + x_i)`` from s = 0),
    ``"pairwise"`` (halves, recursively; the left half has floor(n/2) terms), ``"blocked:B"`` (blocks of B
    summed recursively, then the block sums in turn) or ``"blockfma:K"`` (K terms added exactly, then rounded
    once into the accumulator). The terms are used as given (not rounded first); an empty sum is 0.0.

    >>> h = lowp.ops.div(1.0, np.arange(1.0, 3001.0), "float16")          # fl(1/k)
    >>> lowp.ops.sum(h, "float16")                                         # the harmonic series stagnates
    7.0859375
    >>> lowp.ops.sum(h, "float16", order="pairwise")
    8.5859375
    """
    acc = lowp._format(fmt if accum is None else accum)
    m = lowp._mode(mode)
    arr = _float64(x, "ops.sum").reshape(-1)
    s = lowp._call_seed(seed, m, 0.0)
    return _lowp.sum_array(arr, acc, _order(order), m, s)


def _matmul2(a: np.ndarray, b: np.ndarray, fmt: Any, mode: Any, accum: Any, order: Any, exact_products: Any,
             seed: Optional[int]) -> np.ndarray:
    """``a @ b`` for 2-D float64 arrays of matching inner dimension."""
    product, acc = _model(fmt, accum, exact_products)
    m = lowp._mode(mode)
    o = _order(order)
    s = lowp._call_seed(seed, m, 0.0)
    (rows, k), n = a.shape, b.shape[1]
    c = _lowp.matmul_array(a.reshape(-1), b.reshape(-1), rows, k, n, product, acc, o, m, s)
    return c.reshape(rows, n)


def dot(a: Any, b: Any, fmt: lowp.FormatLike, mode: lowp.ModeLike = "nearest_even", *,
        accum: Optional[lowp.FormatLike] = None, order: str = "recursive", exact_products: bool = False,
        seed: Optional[int] = None) -> float:
    """The dot product of the 1-D arrays ``a`` and ``b``: each product rounded to ``fmt`` (exact with
    ``exact_products=True``: then every accumulation step is a fused multiply-add, or with
    ``order="blockfma:K"`` a K-term fused dot product), accumulated in ``accum`` (default ``fmt``) in
    ``order`` (see :func:`sum`).

    >>> a = np.full(3, 1 / 3)
    >>> lowp.ops.dot(a, a, "bfloat16", accum="float32")                    # bfloat16 products, float32 sums
    0.333984375
    """
    x, y = _float64(a, "ops.dot"), _float64(b, "ops.dot")
    if x.ndim != 1 or y.ndim != 1 or x.shape != y.shape:
        raise ShapeError(
            f"ops.dot: a has shape {x.shape} and b {y.shape}; accepted: two 1-D arrays of one length "
            f"(use ops.matmul for matrices)"
        )
    return float(_matmul2(x.reshape(1, -1), y.reshape(-1, 1), fmt, mode, accum, order, exact_products, seed)[0, 0])


def matmul(a: Any, b: Any, fmt: lowp.FormatLike, mode: lowp.ModeLike = "nearest_even", *,
           accum: Optional[lowp.FormatLike] = None, order: str = "recursive", exact_products: bool = False,
           seed: Optional[int] = None) -> np.ndarray:
    """``a @ b`` with every entry a dot product under the model of :func:`dot`; 2-D operands, or 1-D ones
    promoted and the added dimension removed as ``numpy.matmul`` does (two vectors give a NumPy scalar).
    Returns float64.

    The draws of stochastic modes depend on the entry and the term, not on the thread that computes them.

    >>> A = np.array([[1.0, 2.0], [3.0, 4.0]])
    >>> lowp.ops.matmul(A, [1 / 3, 1.0], "float16")
    array([2.33398438, 5.        ])
    >>> lowp.ops.matmul(A, A, "e4m3fn", exact_products=True, accum="float32", order="blockfma:4")
    array([[ 7., 10.],
           [15., 22.]])
    """
    x, y = _float64(a, "ops.matmul"), _float64(b, "ops.matmul")
    if not (1 <= x.ndim <= 2 and 1 <= y.ndim <= 2):
        raise ShapeError(
            f"ops.matmul: a has shape {x.shape} and b {y.shape}; accepted: 1-D or 2-D arrays (a stack of "
            f"matrices is not taken: loop over it)"
        )
    x2 = x.reshape(1, -1) if x.ndim == 1 else x
    y2 = y.reshape(-1, 1) if y.ndim == 1 else y
    if x2.shape[1] != y2.shape[0]:
        raise ShapeError(
            f"ops.matmul: a has shape {x.shape} and b {y.shape}: a's last dimension ({x2.shape[1]}) must equal "
            f"b's first ({y2.shape[0]})"
        )
    c = _matmul2(x2, y2, fmt, mode, accum, order, exact_products, seed)
    if x.ndim == 1:
        c = c[0]
    if y.ndim == 1:
        c = c[..., 0]
    return c[()] if c.ndim == 0 else c  # two vectors give a scalar, as in NumPy
