"""Post-training quantization of weight matrices with calibration data, for your own models.

A linear layer ``y = W x`` with ``W`` of shape ``(rows, cols)`` (output × input features), quantized to ``Q``,
changes its outputs on calibration inputs ``X`` (``(n, cols)``) by ``‖(W − Q) Xᵀ‖²``: ``n/2`` times
``tr((W − Q) H (W − Q)ᵀ)`` with the Hessian ``H = 2 XᵀX / n`` (:func:`hessian`, :func:`hessian_error`).
:func:`gptq` minimizes it column by column (Frantar et al., 2023); docs/models.md gives lowp's choices.

>>> rng = np.random.default_rng(0)
>>> X = rng.standard_normal((512, 64)) @ rng.standard_normal((64, 64))    # correlated inputs
>>> W = rng.standard_normal((32, 64)) * 0.05
>>> H = lowp.ptq.hessian(X)
>>> q = lowp.ptq.gptq(W, H, "int3:g32:asym")
>>> rtn = lowp.quantize(W, "int3:g32:asym").dequantize()
>>> round(lowp.ptq.hessian_error(W, q.dequantize(), H) / lowp.ptq.hessian_error(W, rtn, H), 2)   # of RTN's error
0.55

``W`` and ``H`` are 2-D arrays of any float dtype (converted to float64 exactly), ``X`` is converted to
float32 (its products are taken in float32 over up to 512 rows and summed in float64). Per-channel schemes
(``int8:channel:sym``) get one scale per row of ``W``; groups run along a row (the input features).
"""

from __future__ import annotations

from typing import Any, Tuple

import numpy as np

import lowp
from . import _lowp
from ._errors import ShapeError

__all__ = ["gptq", "hessian", "hessian_error"]


def _matrix(a: Any, what: str, name: str) -> np.ndarray:
    arr, _ = lowp._float_input(a, what)
    if arr.ndim != 2:
        raise ShapeError(f"{what}: {name} has shape {arr.shape}; accepted: a 2-D array")
    return np.ascontiguousarray(arr, dtype=np.float64)


def _weight_and_hessian(w: Any, h: Any, what: str) -> Tuple[np.ndarray, np.ndarray]:
    W, H = _matrix(w, what, "W"), _matrix(h, what, "H")
    if H.shape != (W.shape[1], W.shape[1]):
        raise ShapeError(
            f"{what}: H has shape {H.shape}; W of shape {W.shape} needs ({W.shape[1]}, {W.shape[1]})"
        )
    return W, H


def gptq(
    w: Any,
    h: Any,
    scheme: str,
    *,
    damp: float = 0.01,
    block: int = 128,
    act_order: bool = False,
    static_groups: bool = False,
) -> "lowp.QuantizedTensor":
    """GPTQ of the weight ``w`` (``(rows, cols)``) with Hessian ``h`` (``(cols, cols)``) into an integer
    ``scheme`` (``"int4:g128:asym"``, ``"int8:channel:sym"``, ...): a :class:`lowp.QuantizedTensor` whose
    ``dequantize()`` is the quantized weight.

    ``damp``: damping relative to the mean of H's diagonal; ``block``: columns per lazy-batch block;
    ``act_order``: columns by decreasing H diagonal (with groups it needs ``static_groups``, since lowp
    stores groups as runs of consecutive columns); ``static_groups``: group scales from the original weights.
    Inputs whose H diagonal is 0 are quantized as zeros. With a diagonal H, GPTQ is round-to-nearest:

    >>> W = np.array([[0.1, -0.7, 0.33], [0.9, 0.05, -0.2]])
    >>> q = lowp.ptq.gptq(W, np.diag([2.0, 1.0, 3.0]), "int4:channel:sym")
    >>> np.array_equal(q.codes, lowp.quantize(W, "int4:channel:sym", axis=0).codes)
    True
    """
    W, H = _weight_and_hessian(w, h, "gptq")
    rows, cols = W.shape
    t, _, _ = _lowp.gptq_array(
        W.reshape(-1), rows, cols, H.reshape(-1), lowp._scheme(scheme), float(damp), int(block), bool(act_order),
        bool(static_groups),
    )
    return t


def hessian(x: Any) -> np.ndarray:
    """``H = 2 XᵀX / n`` of calibration inputs ``x`` (``(n, cols)``, one input vector per row), float64."""
    arr, _ = lowp._float_input(x, "hessian")
    if arr.ndim != 2:
        raise ShapeError(f"hessian: X has shape {arr.shape}; accepted: a 2-D array (n, cols)")
    X = np.ascontiguousarray(arr, dtype=np.float32)
    n, d = X.shape
    return _lowp.hessian_array(X.reshape(-1), n, d).reshape(d, d)


def hessian_error(w: Any, q: Any, h: Any) -> float:
    """``tr((W − Q) H (W − Q)ᵀ)``: the output error on the inputs that made ``h`` (times n/2)."""
    W, H = _weight_and_hessian(w, h, "hessian_error")
    Q = _matrix(q, "hessian_error", "Q")
    if Q.shape != W.shape:
        raise ShapeError(f"hessian_error: Q has shape {Q.shape}, W {W.shape}; they must match")
    return _lowp.hessian_error_array(W.reshape(-1), Q.reshape(-1), W.shape[0], W.shape[1], H.reshape(-1))
