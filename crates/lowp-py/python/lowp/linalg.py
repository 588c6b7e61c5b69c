"""Linear algebra emulated in a number format: LU with partial pivoting, solves, Cholesky and mixed-precision
iterative refinement, with every addition, subtraction, multiplication, division and square root rounded once
to the format (an update ``a - l u`` is ``fl(a - fl(l u))``: no fused multiply-adds). The matrix and
right-hand side are rounded to the format first.

>>> A = np.array([[2.0, 1.0], [1.0, 3.0]])
>>> lowp.linalg.solve(A, [3.0, 5.0], "float16")                    # 0.8 and 1.4 in float16 arithmetic
array([0.79980469, 1.40039062])
>>> x, info = lowp.linalg.refine(A, [3.0, 5.0], factor="float16")  # float16 LU, float64 residuals and updates
>>> x, info["converged"], info["iterations"]
(array([0.8, 1.4]), True, 4)

Matrices are square 2-D arrays and right-hand sides 1-D arrays of any float dtype (or lists), converted to
float64 exactly; results are float64. NaN or infinity in the data is an :class:`lowp.OptionError`, a matrix
singular or not positive definite in the format (or a factorization that overflows its range) a
:class:`lowp.NumericalError`. ``mode`` and ``seed`` are :func:`lowp.round`'s.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import numpy as np

import lowp
from . import _lowp
from ._errors import OptionError, ShapeError

__all__ = ["lu", "solve", "solve_triangular", "cholesky", "refine"]


def _square(a: Any, what: str, name: str = "A") -> Tuple[np.ndarray, int]:
    """A square matrix as a flat C-order float64 array, and its order."""
    arr, _ = lowp._float_input(a, what)
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1]:
        raise ShapeError(f"{what}: {name} has shape {arr.shape}; accepted: a square 2-D matrix (n, n)")
    return np.asarray(arr, dtype=np.float64, order="C").reshape(-1), arr.shape[0]


def _vector(b: Any, n: int, what: str, name: str = "b") -> np.ndarray:
    """A vector of length n as a float64 array."""
    arr, _ = lowp._float_input(b, what)
    if arr.shape != (n,):
        raise ShapeError(f"{what}: {name} has shape {arr.shape}; accepted: a 1-D array of the matrix's order, ({n},)")
    return np.asarray(arr, dtype=np.float64, order="C")


def _rounding(mode: Any, seed: Optional[int]) -> Tuple[str, int]:
    m = lowp._mode(mode)
    return m, lowp._call_seed(seed, m, 0.0)


def lu(a: Any, fmt: lowp.FormatLike, mode: lowp.ModeLike = "nearest_even", *,
       seed: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The LU factorization with partial pivoting of the square matrix ``a`` in ``fmt``: ``(P, L, U)`` with
    ``a = P @ L @ U`` (as ``scipy.linalg.lu``), L unit lower triangular, U upper triangular. The pivot is the
    entry of largest magnitude in its column (the first of equal ones); each multiplier is ``fl(a_ik / a_kk)``
    and each update ``a_ij = fl(a_ij - fl(l_ik a_kj))``. A zero pivot raises :class:`lowp.NumericalError`.

    >>> P, L, U = lowp.linalg.lu([[1.0, 2.0], [3.0, 4.0]], "float16")
    >>> P
    array([[0., 1.],
           [1., 0.]])
    >>> L
    array([[1.        , 0.        ],
           [0.33325195, 1.        ]])
    >>> U                                                             # 2 - fl(fl(1/3) * 4)
    array([[3.        , 4.        ],
           [0.        , 0.66699219]])
    """
    f = lowp._format(fmt)
    m, s = _rounding(mode, seed)
    flat, n = _square(a, "linalg.lu")
    factors, perm = _lowp.linalg_array("lu", flat, n, None, True, False, f, m, s)
    lu_ = factors.reshape(n, n)
    p = np.zeros((n, n))
    p[perm, np.arange(n)] = 1.0  # row i of P A is row perm[i] of A, so A = P^T (L U) with P^T[perm[i], i] = 1
    return p, np.tril(lu_, -1) + np.eye(n), np.triu(lu_)


def solve(a: Any, b: Any, fmt: lowp.FormatLike, mode: lowp.ModeLike = "nearest_even", *,
          seed: Optional[int] = None) -> np.ndarray:
    """The solution of ``a x = b`` (``b`` 1-D) by :func:`lu` and two triangular solves, all in ``fmt``.

    >>> lowp.linalg.solve([[4.0, 1.0], [1.0, 3.0]], [1.0, 2.0], "bfloat16")
    array([0.09082031, 0.63671875])
    """
    f = lowp._format(fmt)
    m, s = _rounding(mode, seed)
    flat, n = _square(a, "linalg.solve")
    rhs = _vector(b, n, "linalg.solve")
    return _lowp.linalg_array("solve", flat, n, rhs, True, False, f, m, s)[0]


def solve_triangular(t: Any, b: Any, fmt: lowp.FormatLike, mode: lowp.ModeLike = "nearest_even", *,
                     seed: Optional[int] = None, lower: bool = True, unit_diagonal: bool = False) -> np.ndarray:
    """The solution of ``t x = b`` for a triangular ``t`` in ``fmt``, by substitution: ``s = b_i``, then
    ``s = fl(s - fl(t_ij x_j))`` for each j in turn, then ``x_i = fl(s / t_ii)`` (``unit_diagonal=True``: no
    division). Only the triangle named by ``lower`` is read. Note the default, ``lower=True``, differs from
    ``scipy.linalg.solve_triangular``'s. ``t``'s triangle and ``b`` are rounded to ``fmt`` first; the other
    triangle is ignored.

    >>> lowp.linalg.solve_triangular([[3.0, 1.0], [0.0, 1.0]], [1.0, 1.0], "bfloat16", lower=False)
    array([0., 1.])
    """
    f = lowp._format(fmt)
    m, s = _rounding(mode, seed)
    flat, n = _square(t, "linalg.solve_triangular", "T")
    rhs = _vector(b, n, "linalg.solve_triangular")
    return _lowp.linalg_array("solve_triangular", flat, n, rhs, bool(lower), bool(unit_diagonal), f, m, s)[0]


def cholesky(a: Any, fmt: lowp.FormatLike, mode: lowp.ModeLike = "nearest_even", *,
             seed: Optional[int] = None) -> np.ndarray:
    """The lower triangular L with ``a = L @ L.T`` (as ``numpy.linalg.cholesky``), in ``fmt``; only the lower
    triangle of ``a`` is read. Column j: ``d = sqrt(fl(a_jj - sum_p l_jp^2))``, then
    ``l_ij = fl(fl(a_ij - sum_p l_ip l_jp) / d)``, every sum recursive and rounded. A diagonal that is not
    positive in the format raises :class:`lowp.NumericalError`.

    >>> lowp.linalg.cholesky([[4.0, 2.0], [2.0, 5.0]], "float16")
    array([[2., 0.],
           [1., 2.]])
    """
    f = lowp._format(fmt)
    m, s = _rounding(mode, seed)
    flat, n = _square(a, "linalg.cholesky")
    return _lowp.linalg_array("cholesky", flat, n, None, True, False, f, m, s)[0].reshape(n, n)


def refine(a: Any, b: Any, factor: lowp.FormatLike = "float16", residual: lowp.FormatLike = "float64",
           working: lowp.FormatLike = "float64", max_iter: int = 10, mode: lowp.ModeLike = "nearest_even", *,
           seed: Optional[int] = None, x_true: Any = None) -> Tuple[np.ndarray, Dict[str, Any]]:
    """Mixed-precision iterative refinement (LU-IR) of ``a x = b``: LU of ``a`` in ``factor``, an initial
    solve, then up to ``max_iter`` steps of: residual ``r = b - a x`` in ``residual``, correction ``d`` from
    the LU factors in ``factor`` (r scaled by a power of two to fit its range), ``x = x + d`` in ``working``
    (``a`` and ``b`` are stored in ``working``). Stops when the correction, relative to x, is at most
    ``working``'s unit roundoff u or the backward error at most n u (converged), when an iterate is not finite,
    or after ``max_iter`` steps.

    Returns ``(x, info)``; ``info`` has ``"backward_error"`` (per step, step 0 being the initial solve:
    ``||b - a x|| / (||a|| ||x|| + ||b||)`` in the infinity norm, computed in twice float64's precision),
    ``"forward_error"`` (``||x - x_true|| / ||x_true||`` per step, or None without ``x_true``),
    ``"correction"`` (``||d|| / ||x||`` per step, 0 at step 0), ``"converged"`` and ``"iterations"`` (the
    refinement steps taken).

    >>> A = np.array([[4.0, 1.0, 0.5], [1.0, 3.0, 0.25], [0.5, 0.25, 2.0]])
    >>> x_true = np.array([1.0, -2.0, 3.0])
    >>> x, info = lowp.linalg.refine(A, A @ x_true, "float16", x_true=x_true)
    >>> info["converged"], info["forward_error"][-1] < 1e-15
    (True, True)
    """
    facs = [lowp._format(v) for v in (factor, residual, working)]
    if isinstance(max_iter, bool) or not isinstance(max_iter, (int, np.integer)) or max_iter < 0:
        raise OptionError(f"linalg.refine: max_iter must be a non-negative integer, got {max_iter!r}")
    m, s = _rounding(mode, seed)
    flat, n = _square(a, "linalg.refine")
    rhs = _vector(b, n, "linalg.refine")
    truth = None if x_true is None else _vector(x_true, n, "linalg.refine", "x_true")
    x, steps, converged = _lowp.refine_array(flat, n, rhs, *facs, int(max_iter), truth, m, s)
    backward, forward, correction = (list(v) for v in zip(*steps))
    info = {
        "backward_error": backward,
        "forward_error": None if truth is None else forward,
        "correction": correction,
        "converged": converged,
        "iterations": len(steps) - 1,
    }
    return x, info
