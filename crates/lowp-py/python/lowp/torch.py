"""lowp for PyTorch CPU tensors: rounding without extra copies, and straight-through quantizers for training
(element formats with :func:`quantize_ste`, block and integer schemes with :func:`fake_quantize`).

float32 and float64 tensors are rounded through NumPy views of their memory (``Tensor.numpy()``), float16
and bfloat16 tensors through views of their 16-bit patterns; the result is a new tensor sharing the memory
lowp wrote (``torch.from_numpy``), or the tensor itself with ``out=``.

>>> import torch, lowp.torch
>>> lowp.torch.round(torch.tensor([0.1, 1000.0]), "e4m3fn", saturate=True)
tensor([1.0156e-01, 4.4800e+02])
>>> w = torch.tensor([0.3, -1.2], requires_grad=True)
>>> lowp.torch.quantize_ste(w, "e2m1").sum().backward()
>>> w.grad
tensor([1., 1.])
>>> v = torch.tensor([0.3, -1.1, 2.6, 6.0], requires_grad=True)
>>> y = lowp.torch.fake_quantize(v, "int4:tensor:sym")
>>> y
tensor([ 0.0000, -0.8571,  2.5714,  6.0000], grad_fn=<_FakeQuantizeSTEBackward>)
>>> (y * torch.tensor([1.0, 2.0, 3.0, 4.0])).sum().backward()
>>> v.grad
tensor([1., 2., 3., 4.])
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
import torch as _torch

import lowp as _lowp
from ._errors import DtypeError, ShapeError

__all__ = ["round", "quantize_ste", "fake_quantize"]

_NUMPY_VIEW = {_torch.float32: np.float32, _torch.float64: np.float64, _torch.float16: np.float16}


def _check_tensor(t: Any, what: str) -> _torch.Tensor:
    if not isinstance(t, _torch.Tensor):
        raise DtypeError(f"{what}: expected a torch.Tensor, got {type(t).__name__}")
    if t.device.type != "cpu":
        raise DtypeError(f"{what}: lowp works on CPU tensors; this one is on {t.device} (move it with .cpu())")
    if t.dtype not in _NUMPY_VIEW and t.dtype != _torch.bfloat16:
        raise DtypeError(f"{what}: unsupported dtype {t.dtype}. Accepted: float16, bfloat16, float32, float64")
    return t.detach().resolve_neg().resolve_conj()


def round(
    t: _torch.Tensor,
    fmt: Any,
    mode: Any = "nearest_even",
    *,
    seed: Optional[int] = None,
    subnormals: Optional[bool] = None,
    saturate: Optional[bool] = None,
    flip_prob: float = 0.0,
    flip_scope: str = "significand",
    out: Optional[_torch.Tensor] = None,
) -> _torch.Tensor:
    """:func:`lowp.round` for a CPU tensor (float16, bfloat16, float32 or float64, any strides); same dtype and
    shape out. ``out=t`` rounds in place. No autograd: see :func:`quantize_ste` for training."""
    src = _check_tensor(t, "lowp.torch.round")
    kw = dict(seed=seed, subnormals=subnormals, saturate=saturate, flip_prob=flip_prob, flip_scope=flip_scope)
    if out is not None:
        dst = _check_tensor(out, "lowp.torch.round (out)")
        if dst.dtype != src.dtype:
            raise DtypeError(f"lowp.torch.round: out is {dst.dtype} but the input is {src.dtype}; they must match")
        if dst.shape != src.shape:
            raise ShapeError(
                f"lowp.torch.round: out is {dst.dtype} {tuple(dst.shape)} but the input is {src.dtype} "
                f"{tuple(src.shape)}; they must match"
            )
        if src.dtype == _torch.bfloat16:
            if not dst.is_contiguous():
                dst.copy_(round(src, fmt, mode, **kw))
                return out
            _lowp._round_bits(_bits(src), fmt, mode, "bfloat16", out=_bits(dst), **kw)
        else:
            _lowp.round(src.numpy(), fmt, mode, out=dst.numpy(), **kw)
        return out
    if src.dtype == _torch.bfloat16:
        res = _lowp._round_bits(_bits(src), fmt, mode, "bfloat16", **kw)
        return _torch.from_numpy(res.view(np.int16)).view(_torch.bfloat16)
    return _torch.from_numpy(_lowp.round(src.numpy(), fmt, mode, **kw))


def _bits(t: _torch.Tensor) -> np.ndarray:
    """The uint16 patterns of a bfloat16 tensor, as a NumPy view (a copy only if ``t`` is not contiguous)."""
    return t.contiguous().view(_torch.int16).numpy().view(np.uint16)


class _RoundSTE(_torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, t: _torch.Tensor, fmt: Any, mode: Any, kw: dict) -> _torch.Tensor:  # type: ignore[override]
        return round(t, fmt, mode, **kw)

    @staticmethod
    def backward(ctx: Any, grad: _torch.Tensor) -> Any:  # type: ignore[override]
        return grad, None, None, None


def quantize_ste(
    t: _torch.Tensor,
    fmt: Any,
    mode: Any = "nearest_even",
    *,
    seed: Optional[int] = None,
    subnormals: Optional[bool] = None,
    saturate: Optional[bool] = None,
) -> _torch.Tensor:
    """Round ``t`` to ``fmt`` in the forward pass and pass the gradient through unchanged (straight-through
    estimator), so weights or activations can be emulated in low precision during training."""
    return _RoundSTE.apply(t, fmt, mode, dict(seed=seed, subnormals=subnormals, saturate=saturate))


def _fake_quantize(t: _torch.Tensor, scheme: Any, axis: Any, mode: Any, seed: Optional[int]) -> _torch.Tensor:
    src = _check_tensor(t, "lowp.torch.fake_quantize")
    if src.dtype == _torch.bfloat16:
        res = _lowp._fake_quantize_bits(_bits(src), scheme, axis, mode=mode, seed=seed)
        return _torch.from_numpy(res.view(np.int16)).view(_torch.bfloat16)
    return _torch.from_numpy(_lowp.fake_quantize(src.numpy(), scheme, axis, mode=mode, seed=seed))


class _FakeQuantizeSTE(_torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, t: _torch.Tensor, scheme: Any, axis: Any, mode: Any, seed: Any
    ) -> _torch.Tensor:
        return _fake_quantize(t, scheme, axis, mode, seed)

    @staticmethod
    def backward(ctx: Any, grad: _torch.Tensor) -> Any:  # type: ignore[override]
        return grad, None, None, None, None


def fake_quantize(
    t: _torch.Tensor,
    scheme: str,
    axis: int = -1,
    *,
    mode: Any = "nearest_even",
    seed: Optional[int] = None,
) -> _torch.Tensor:
    """:func:`lowp.fake_quantize` of a CPU tensor (float16, bfloat16, float32 or float64, any strides) as an
    autograd function: the forward pass quantizes with ``scheme`` (blocks along ``axis``) and dequantizes into
    the tensor's dtype; the backward pass passes the gradient through unchanged (straight-through estimator).
    """
    return _FakeQuantizeSTE.apply(t, scheme, axis, mode, seed)
