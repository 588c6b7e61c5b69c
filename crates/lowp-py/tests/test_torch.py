"""lowp.torch: CPU tensors of every float dtype, no extra copies, the straight-through estimator.
Skipped only when torch is not installed (scripts/test.sh installs it)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import lowp  # noqa: E402
import lowp.torch as lt  # noqa: E402

DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]


def as_f64(t):
    return t.detach().to(torch.float64).numpy()


@pytest.mark.parametrize("dtype", DTYPES)
def test_round_matches_the_numpy_path(dtype):
    g = torch.Generator().manual_seed(0)
    t = (torch.randn(64, 33, generator=g) * 8).to(dtype)
    y = lt.round(t, "e4m3fn")
    assert y.dtype == dtype and y.shape == t.shape
    want = lowp.round(as_f64(t), "e4m3fn")  # every e4m3fn value is exact in all four dtypes
    assert np.array_equal(as_f64(y), want)


def test_bfloat16_data_against_its_own_bits():
    """All 2^16 bfloat16 patterns, rounded to formats that fit bfloat16 (precision <= 8 bits, range)."""
    bits = torch.arange(-(2**15), 2**15, dtype=torch.int32).to(torch.int16)
    t = bits.view(torch.bfloat16)
    for fmt in ("e4m3fn", "e5m2", "e2m1", "e8m0", "bfloat16"):
        y = lt.round(t, fmt)
        want = lowp.round(t.to(torch.float32).numpy(), fmt)
        got = y.to(torch.float32).numpy()
        assert np.array_equal(np.isnan(got), np.isnan(want))
        ok = ~np.isnan(want)
        assert np.array_equal(got[ok].view(np.uint32), want[ok].view(np.uint32)), fmt


def test_no_extra_copies():
    t = torch.randn(1000, dtype=torch.float32)
    y = lt.round(t, "bf16")
    # the result is the array lowp wrote, shared with NumPy, not a copy of it
    assert y.numpy().ctypes.data == torch.from_numpy(y.numpy()).data_ptr()
    out = torch.empty_like(t)
    ptr = out.data_ptr()
    assert lt.round(t, "bf16", out=out) is out and out.data_ptr() == ptr
    assert torch.equal(out, y)
    inplace = t.clone()
    lt.round(inplace, "bf16", out=inplace)
    assert torch.equal(inplace, y)
    b = torch.randn(100).to(torch.bfloat16)
    bo = torch.empty_like(b)
    lt.round(b, "e4m3fn", out=bo)
    assert torch.equal(bo, lt.round(b, "e4m3fn"))


def test_strided_tensors():
    base = torch.randn(20, 30, dtype=torch.float64)
    for t in (base.t(), base[::3, 1::2], base[:, 5]):
        assert np.array_equal(lt.round(t, "e2m1").numpy(), lowp.round(t.numpy(), "e2m1"))
    b = base.to(torch.bfloat16).t()
    assert torch.equal(lt.round(b, "e2m1"), lt.round(b.contiguous(), "e2m1"))


def test_requires_grad_input_gives_a_plain_tensor():
    w = torch.randn(10, requires_grad=True)
    y = lt.round(w, "e4m3fn")
    assert not y.requires_grad


def test_quantize_ste_forward_rounds_backward_passes_through():
    w = torch.tensor([0.3, -1.2, 5.0, 100.0], requires_grad=True)
    y = lt.quantize_ste(w, "e2m1", saturate=True)
    assert y.tolist() == [0.5, -1.0, 4.0, 6.0]  # e2m1 values 0.5, 1, 4 (tie 5 -> even), max 6
    (y * torch.tensor([1.0, 2.0, 3.0, 4.0])).sum().backward()
    assert w.grad.tolist() == [1.0, 2.0, 3.0, 4.0]


def test_quantize_ste_trains_a_tiny_model():
    """A linear model with weights emulated in e4m3fn still learns (the STE carries the gradient)."""
    torch.manual_seed(0)
    x = torch.randn(256, 4)
    true_w = torch.tensor([[1.5], [-2.0], [0.75], [3.0]])
    y = x @ true_w
    w = torch.zeros(4, 1, requires_grad=True)
    opt = torch.optim.SGD([w], lr=0.1)
    for _ in range(200):
        opt.zero_grad()
        loss = ((x @ lt.quantize_ste(w, "e4m3fn") - y) ** 2).mean()
        loss.backward()
        opt.step()
    assert torch.allclose(lt.round(w.detach(), "e4m3fn"), true_w)


def test_stochastic_with_seed_is_reproducible():
    t = torch.full((5000,), 1 + 2.0**-10)
    a = lt.round(t, "bf16", "stochastic", seed=4)
    assert torch.equal(a, lt.round(t, "bf16", "stochastic", seed=4))
    assert not torch.equal(lt.round(t, "bf16", "stochastic"), lt.round(t, "bf16", "stochastic"))


def test_errors():
    with pytest.raises(lowp.DtypeError, match="int64"):
        lt.round(torch.arange(3), "fp16")
    with pytest.raises(lowp.DtypeError, match="torch.Tensor"):
        lt.round(np.ones(3), "fp16")
    with pytest.raises(lowp.DtypeError, match="bfloat16"):
        lt.round(torch.ones(3, dtype=torch.bfloat16), "fp16")  # float16's precision exceeds bfloat16's
    with pytest.raises(lowp.ShapeError, match="must match"):
        lt.round(torch.ones(3), "fp16", out=torch.empty(4))
    with pytest.raises(lowp.FormatError):
        lt.round(torch.ones(3), "nope")
