"""lowp.ptq against a GPTQ written here in NumPy (unblocked, for clarity), against round-to-nearest, and on
bad input."""

from __future__ import annotations

import numpy as np
import pytest

import lowp


def inputs(rng, n, d):
    mix = rng.standard_normal((d, d)) / np.sqrt(d)
    z = rng.standard_normal((n, d)) * np.where(np.arange(d) % 5 == 0, 4.0, 1.0)
    return (z + z @ mix.T).astype(np.float32)


def numpy_gptq(W, H, bits, group, damp=0.01):
    """GPTQ, asymmetric min/max grids per group of `group` columns fitted on the current weights, every
    update applied at once; codes as lowp's int<bits>:g<group>:asym (float32 scales, ties to even)."""
    W = W.astype(np.float64).copy()
    rows, n = W.shape
    H = H.copy()
    dead = np.diag(H) == 0
    H[dead, dead] = 1.0
    W[:, dead] = 0.0
    H += damp * np.mean(np.diag(H)) * np.eye(n)
    U = np.linalg.cholesky(np.linalg.inv(H)).T
    qmax = 2**bits - 1
    codes = np.zeros((rows, n), dtype=np.int64)
    values = np.zeros((rows, n))
    for i in range(n):
        if i % group == 0:
            blk = W[:, i : i + group]
            mn, mx = np.minimum(blk.min(1), 0.0), np.maximum(blk.max(1), 0.0)
            s = ((mx - mn) / qmax).astype(np.float32).astype(np.float64)
            z = np.clip(np.round(np.divide(-mn, s, out=np.zeros_like(mn), where=s > 0)), 0, qmax)
        c = np.where(s > 0, np.clip(np.round(np.divide(W[:, i], s, out=np.zeros(rows), where=s > 0)) + z, 0, qmax), z)
        codes[:, i] = c
        values[:, i] = (c - z) * s
        e = (W[:, i] - values[:, i]) / U[i, i]
        W[:, i + 1 :] -= np.outer(e, U[i, i + 1 :])
    return codes, values


def test_gptq_matches_a_numpy_gptq():
    rng = np.random.default_rng(1)
    X = inputs(rng, 500, 48)
    H = lowp.ptq.hessian(X)
    W = rng.standard_normal((16, 48)) * 0.05
    for bits, group in [(4, 16), (3, 24), (2, 48)]:
        q = lowp.ptq.gptq(W, H, f"int{bits}:g{group}:asym")
        codes, values = numpy_gptq(W, H, bits, group)
        assert np.array_equal(q.codes, codes), (bits, group)
        assert np.allclose(q.dequantize(np.float64), values, rtol=0, atol=1e-15), (bits, group)


def test_hessian_is_twice_the_mean_outer_product():
    rng = np.random.default_rng(2)
    X = inputs(rng, 300, 20)
    H = lowp.ptq.hessian(X)
    ref = 2.0 * X.astype(np.float64).T @ X.astype(np.float64) / len(X)
    assert H.shape == (20, 20) and H.dtype == np.float64
    assert np.allclose(H, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())


def test_gptq_beats_rtn_and_equals_it_with_a_diagonal_hessian():
    rng = np.random.default_rng(3)
    X = inputs(rng, 800, 64)
    H = lowp.ptq.hessian(X)
    W = rng.standard_normal((24, 64)) * 0.05
    for scheme, axis in [("int4:g32:asym", -1), ("int3:channel:sym", 0)]:
        rtn = lowp.quantize(W, scheme, axis=axis)
        g = lowp.ptq.gptq(W, H, scheme)
        assert lowp.ptq.hessian_error(W, g.dequantize(), H) < 0.8 * lowp.ptq.hessian_error(W, rtn.dequantize(), H)
        d = lowp.ptq.gptq(W, np.diag(np.diag(H)), scheme)
        assert np.array_equal(d.codes, rtn.codes) and np.array_equal(d.scales, rtn.scales)
        assert lowp.ptq.gptq(W, H, scheme, act_order=True, static_groups=True).codes.shape == W.shape


def test_bad_input_is_a_clear_error():
    W, H = np.ones((2, 4)), np.eye(4)
    with pytest.raises(lowp.ShapeError, match=r"needs \(4, 4\)"):
        lowp.ptq.gptq(W, np.eye(3), "int4:g2")
    with pytest.raises(lowp.OptionError, match="affine integer"):
        lowp.ptq.gptq(W, H, "mxfp4")
    with pytest.raises(lowp.OptionError, match="static groups"):
        lowp.ptq.gptq(W, H, "int4:g2", act_order=True)
    with pytest.raises(lowp.OptionError, match="NaN"):
        lowp.ptq.gptq(np.array([[1.0, np.nan, 0.0, 0.0]]), H, "int4:g2")
    with pytest.raises(lowp.NumericalError, match="damping"):
        lowp.ptq.gptq(W, -np.eye(4), "int4:g2", damp=0.0)
    with pytest.raises(lowp.FormatError):
        lowp.ptq.gptq(W, H, "int99")
    with pytest.raises(lowp.ShapeError):
        lowp.ptq.hessian(np.ones(3))
