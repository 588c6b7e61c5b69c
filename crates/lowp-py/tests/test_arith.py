"""lowp.ops and lowp.linalg: the API (broadcasting, dtypes, scalars, empty arrays, errors, seeds) and the
arithmetic models checked against plain references written here: reductions against loops of element calls,
float64 results against Python's own float arithmetic in the same order, stochastic rounding against its
neighbours and its expected value. Correct rounding of each operation against MPFR lives in
tests/python/test_arith_mpfr.py."""

from __future__ import annotations

import math
import threading
import time
from fractions import Fraction

import numpy as np
import pytest

import lowp

OPS2 = ["add", "sub", "mul", "div"]
FUNCS = ["sqrt", "exp", "exp2", "log", "log2", "log10", "sin", "cos", "tan", "tanh"]


def op(name):
    return getattr(lowp.ops, name)


def rng(*seed):
    return np.random.default_rng(list(seed) or [0])


# ---------------------------------------------------------------------------------------------------------
# Element-wise: shapes, dtypes, scalars


def test_broadcasting_follows_numpy_and_each_element_is_its_own_call():
    x = rng(1).standard_normal((3, 1))
    y = rng(2).standard_normal(4)
    for name in OPS2:
        got = op(name)(x, y, "bfloat16")
        assert got.shape == (3, 4) and got.dtype == np.float64
        want = np.array([[op(name)(float(a), float(b), "bfloat16") for b in y] for a in x[:, 0]])
        assert np.array_equal(got, want), name
    c = rng(3).standard_normal((2, 1, 1))
    got = lowp.ops.fma(x, y, c, "float16")
    assert got.shape == (2, 3, 4)
    assert got[1, 2, 3] == lowp.ops.fma(x[2, 0], y[3], c[1, 0, 0], "float16")


def test_result_dtype_float32_only_when_every_array_is_float32():
    f32 = np.linspace(0.1, 2, 5, dtype=np.float32)
    f64 = f32.astype(np.float64)
    assert lowp.ops.add(f32, f32, "bf16").dtype == np.float32
    assert lowp.ops.add(f32, 1.5, "bf16").dtype == np.float32  # Python scalars follow the arrays
    assert lowp.ops.add(f32, f64, "bf16").dtype == np.float64
    assert lowp.ops.add(f32, [1.0] * 5, "bf16").dtype == np.float64  # a list is a float64 array
    assert lowp.ops.add(f32, np.float64(1.5), "bf16").dtype == np.float64  # NumPy scalars have their dtype
    assert lowp.ops.sqrt(f32, "bf16").dtype == np.float32
    assert lowp.ops.fma(f32, f32, 2, "bf16").dtype == np.float32
    # Same values either way: the format fits both storage types.
    assert np.array_equal(lowp.ops.div(f32, 3, "bf16"), lowp.ops.div(f64, 3, "bf16"))
    assert np.array_equal(lowp.ops.exp(f32, "e4m3fn", "toward_zero"), lowp.ops.exp(f64, "e4m3fn", "toward_zero"))


def test_scalars_zero_d_arrays_lists_and_strides():
    r = lowp.ops.div(1.0, 3.0, "float16")
    assert isinstance(r, np.float64) and r == 0.333251953125
    r32 = lowp.ops.div(np.float32(1), 3, "float16")
    assert isinstance(r32, np.float32) and r32 == np.float32(0.333251953125)
    z = lowp.ops.sqrt(np.array(2.0), "float16")
    assert isinstance(z, np.ndarray) and z.shape == () and z == 1.4140625
    assert lowp.ops.mul([1.5, 3.0], 3, "e4m3").tolist() == [4.5, 9.0]
    x = np.arange(20.0).reshape(4, 5)[:, ::2]  # not contiguous
    y = x[1]  # strided too, broadcast along the rows
    assert np.array_equal(lowp.ops.add(x, y, "float16"), lowp.ops.add(np.ascontiguousarray(x), y.copy(), "float16"))
    big_endian = np.array([1.0, 2.0], ">f8")
    assert lowp.ops.exp2(big_endian, "float16").tolist() == [2.0, 4.0]


def test_empty_arrays():
    e = np.empty((0, 3))
    assert lowp.ops.add(e, 1.0, "float16").shape == (0, 3)
    assert lowp.ops.exp(np.empty(0, np.float32), "bf16").dtype == np.float32
    assert lowp.ops.sum([], "float16") == 0.0
    assert lowp.ops.dot([], [], "float16") == 0.0
    assert lowp.ops.matmul(np.empty((0, 3)), np.ones((3, 2)), "float16").shape == (0, 2)
    assert np.array_equal(lowp.ops.matmul(np.empty((2, 0)), np.empty((0, 3)), "float16"), np.zeros((2, 3)))


def test_modes_by_name_alias_and_chop_code():
    third = [lowp.ops.div(1.0, 3.0, "float16", m) for m in ("toward_zero", "rtz", 4, "4")]
    assert len(set(third)) == 1 and third[0] == 0.333251953125
    assert lowp.ops.div(1.0, 3.0, "float16", "up") == 0.33349609375


def test_every_function_and_special_values():
    x = np.array([0.5, 1.0, 2.0])
    for name in FUNCS:
        y = op(name)(x, "float32")
        assert np.allclose(y, getattr(np, name)(x), rtol=1e-6), name
    with np.errstate(invalid="ignore", divide="ignore"):
        assert np.isnan(lowp.ops.sqrt(-1.0, "float16")) and np.isnan(lowp.ops.log(-1.0, "float16"))
        assert lowp.ops.log(0.0, "float16") == -np.inf and lowp.ops.div(1.0, -0.0, "float16") == -np.inf
        assert np.isnan(lowp.ops.mul(np.inf, 0.0, "float16"))
    assert np.signbit(lowp.ops.sqrt(-0.0, "float16")) and np.signbit(lowp.ops.sin(-0.0, "float16"))
    assert np.isnan(lowp.ops.add(np.nan, 1.0, "bf16"))
    # Overflow in an fn format is NaN, as when rounding; saturating formats clamp.
    assert np.isnan(lowp.ops.mul(300.0, 2.0, "e4m3fn"))
    assert lowp.ops.mul(300.0, 2.0, lowp.Format("e4m3fn").with_options(saturate=True)) == 448.0


def test_sign_of_exact_zeros():
    x = rng(4).standard_normal(100)
    for mode in ("nearest_even", "toward_positive", "toward_zero", "stochastic"):
        assert not np.signbit(lowp.ops.add(x, -x, "float16", mode, seed=1)).any(), mode
        assert not np.signbit(lowp.ops.fma(x, 1.0, -x, "float16", mode, seed=1)).any(), mode
    assert np.signbit(lowp.ops.add(x, -x, "float16", "toward_negative")).all()
    assert np.signbit(lowp.ops.add(-0.0, -0.0, "float16")) and not np.signbit(lowp.ops.add(0.0, -0.0, "float16"))


# ---------------------------------------------------------------------------------------------------------
# Errors


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda: lowp.ops.add(np.ones(2, np.float16), 1.0, "float16"), lowp.DtypeError, "float16.*astype"),
        (lambda: lowp.ops.add(np.ones(2, np.int32), 1.0, "float16"), lowp.DtypeError, "int32"),
        (lambda: lowp.ops.exp(np.ones(2, np.complex128), "float16"), lowp.DtypeError, "complex128"),
        (lambda: lowp.ops.add(np.ones(2, np.float32), 1.0, "float64"), lowp.DtypeError, "float64.*float32"),
        (lambda: lowp.ops.add(np.ones(2), np.ones(3), "float16"), lowp.ShapeError, r"\(2,\), \(3,\)"),
        (lambda: lowp.ops.fma(np.ones((2, 3)), 1.0, np.ones(4), "float16"), lowp.ShapeError, r"\(2, 3\).*\(4,\)"),
        (lambda: lowp.ops.dot(np.ones(2), np.ones(3), "float16"), lowp.ShapeError, r"\(2,\) and b \(3,\)"),
        (lambda: lowp.ops.dot(np.ones((2, 2)), np.ones((2, 2)), "float16"), lowp.ShapeError, "1-D"),
        (lambda: lowp.ops.matmul(np.ones((2, 3)), np.ones((4, 2)), "float16"), lowp.ShapeError, r"\(3\) must equal.*\(4\)"),
        (lambda: lowp.ops.matmul(np.ones((2, 2, 2)), np.ones((2, 2)), "float16"), lowp.ShapeError, "1-D or 2-D"),
        (lambda: lowp.ops.matmul(1.0, np.ones(2), "float16"), lowp.ShapeError, r"shape \(\)"),
        (lambda: lowp.ops.add(1.0, 2.0, "float17"), lowp.FormatError, "float17.*float16"),
        (lambda: lowp.ops.sum([1.0], "float16", accum="bogus"), lowp.FormatError, "bogus"),
        (lambda: lowp.ops.add(1.0, 2.0, "float16", "nearest_odd"), lowp.OptionError, "nearest_odd"),
        (lambda: lowp.ops.sum([1.0], "float16", order="blocky"), lowp.OptionError, "blocky.*pairwise"),
        (lambda: lowp.ops.sum([1.0], "float16", order="blocked:0"), lowp.OptionError, "blocked:0"),
        (lambda: lowp.ops.dot([1.0], [1.0], "float16", order=4), lowp.OptionError, "order must be a string"),
        (lambda: lowp.ops.add(1.0, 2.0, "float16", seed=-1), lowp.OptionError, "seed"),
        (lambda: lowp.linalg.lu(np.ones((2, 3)), "float16"), lowp.ShapeError, r"A has shape \(2, 3\).*square"),
        (lambda: lowp.linalg.lu(np.ones(4), "float16"), lowp.ShapeError, r"\(4,\)"),
        (lambda: lowp.linalg.solve(np.eye(2), np.ones(3), "float16"), lowp.ShapeError, r"b has shape \(3,\).*\(2,\)"),
        (lambda: lowp.linalg.solve(np.eye(2), np.ones((2, 1)), "float16"), lowp.ShapeError, r"\(2, 1\)"),
        (lambda: lowp.linalg.solve_triangular(np.eye(3), np.ones(2), "float16"), lowp.ShapeError, "b has shape"),
        (lambda: lowp.linalg.refine(np.eye(2), np.ones(2), x_true=np.ones(3)), lowp.ShapeError, "x_true"),
        (lambda: lowp.linalg.refine(np.eye(2), np.ones(2), max_iter=-1), lowp.OptionError, "max_iter"),
        (lambda: lowp.linalg.refine(np.eye(2), np.ones(2), residual="nope"), lowp.FormatError, "nope"),
        (lambda: lowp.linalg.lu([[1.0, np.nan], [0.0, 1.0]], "float16"), lowp.OptionError, "NaN at index 1"),
        (lambda: lowp.linalg.solve(np.eye(2), [np.inf, 1.0], "float16"), lowp.OptionError, "b holds inf"),
        (lambda: lowp.linalg.cholesky([[1.0, 0.0], [np.nan, 1.0]], "float16"), lowp.OptionError, "finite"),
        (lambda: lowp.linalg.lu([[1.0, 2.0], [2.0, 4.0]], "float16"), lowp.NumericalError, "singular in float16"),
        (lambda: lowp.linalg.solve([[1.0, 2.0], [2.0, 4.0]], [1.0, 1.0], "float64"), lowp.NumericalError, "column 1"),
        (lambda: lowp.linalg.cholesky([[1.0, 2.0], [2.0, 1.0]], "float16"), lowp.NumericalError, "not positive definite"),
        (lambda: lowp.linalg.lu([[1.0, 6e4], [-1.0, 6e4]], "float16"), lowp.NumericalError, "overflow"),
    ],
)
def test_errors_are_typed_and_say_what_was_wrong(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_numerical_error_is_an_arithmetic_error():
    assert issubclass(lowp.NumericalError, lowp.LowpError) and issubclass(lowp.NumericalError, ArithmeticError)
    assert lowp.NumericalError.__module__ == "lowp" and "NumericalError" in lowp.__all__
    try:
        lowp.linalg.lu([[0.0, 0.0], [0.0, 0.0]], "bf16")
    except ArithmeticError as e:
        assert "no nonzero pivot in column 0" in str(e)
    else:
        raise AssertionError("no error")


# ---------------------------------------------------------------------------------------------------------
# Stochastic rounding


def test_stochastic_seeds_reproduce_and_results_are_neighbours():
    x = rng(5).standard_normal(10_000)
    y = rng(6).standard_normal(10_000) + 3
    for name in OPS2:
        a = op(name)(x, y, "bf16", "stochastic", seed=1)
        assert np.array_equal(a, op(name)(x, y, "bf16", "stochastic", seed=1))
        b = op(name)(x, y, "bf16", "stochastic", seed=2)
        assert not np.array_equal(a, b)
        down = op(name)(x, y, "bf16", "toward_negative")
        up = op(name)(x, y, "bf16", "toward_positive")
        assert np.all((a == down) | (a == up)), name
        assert np.sum((a == up) & (up != down)) > 1000 and np.sum((a == down) & (up != down)) > 1000
    s = lowp.ops.exp(x, "float16", "stochastic", seed=3)
    assert np.all((s == lowp.ops.exp(x, "float16", "down")) | (s == lowp.ops.exp(x, "float16", "up")))


def test_unseeded_stochastic_calls_differ_and_lowp_seed_restarts_them():
    x = np.full(1000, 1 / 3)
    lowp.seed(11)
    a, b = lowp.ops.mul(x, 1.0, "bf16", "sr"), lowp.ops.mul(x, 1.0, "bf16", "sr")
    lowp.seed(11)
    assert not np.array_equal(a, b) and np.array_equal(a, lowp.ops.mul(x, 1.0, "bf16", "sr"))
    lowp.seed(11)
    s1 = lowp.ops.sum(x, "bf16", "sr")
    lowp.seed(11)
    assert s1 == lowp.ops.sum(x, "bf16", "sr")
    # Deterministic calls do not use the sequence.
    lowp.seed(11)
    lowp.ops.add(x, x, "bf16")
    assert np.array_equal(a, lowp.ops.mul(x, 1.0, "bf16", "sr"))


def test_stochastic_division_is_unbiased():
    n = 200_000
    q = lowp.ops.div(np.ones(n), 3.0, "bfloat16", "stochastic", seed=7)
    lo, hi = lowp.ops.div(1.0, 3.0, "bfloat16", "down"), lowp.ops.div(1.0, 3.0, "bfloat16", "up")
    p = (Fraction(1, 3) - Fraction(lo)) / (Fraction(hi) - Fraction(lo))  # probability of rounding up
    sigma = (hi - lo) * math.sqrt(float(p * (1 - p)) / n)  # standard deviation of the mean
    assert abs(q.mean() - 1 / 3) < 5 * sigma
    assert abs(np.mean(q == hi) - float(p)) < 5 * math.sqrt(float(p * (1 - p)) / n)


def test_stochastic_sums_are_unbiased_where_round_to_nearest_is_not():
    k, runs = 30, 2000
    x = np.full(k, 1 / 3)
    sums = np.array([lowp.ops.sum(x, "bfloat16", "stochastic", seed=s) for s in range(runs)])
    exact = k / 3
    # Each of the k roundings has variance at most ulp^2 / 4 (ulp at the largest partial sum), so a sum's
    # variance is at most k ulp^2 / 4 and the mean of `runs` sums has at most that over `runs`.
    ulp = 2.0 ** (math.floor(math.log2(exact)) - 7)
    sigma = math.sqrt(k * ulp**2 / 4 / runs)
    assert abs(sums.mean() - exact) < 5 * sigma
    assert abs(lowp.ops.sum(x, "bfloat16") - exact) > 5 * sigma


# ---------------------------------------------------------------------------------------------------------
# Reductions against loops of element calls


def ref_recursive(terms, fmt, s=0.0):
    for t in terms:
        s = lowp.ops.add(s, t, fmt)
    return float(s)


def ref_pairwise(terms, fmt):
    n = len(terms)
    if n == 0:
        return 0.0
    if n == 1:
        return float(lowp.ops.add(0.0, terms[0], fmt))
    mid = n // 2
    return float(lowp.ops.add(ref_pairwise(terms[:mid], fmt), ref_pairwise(terms[mid:], fmt), fmt))


def ref_blocked(terms, fmt, b):
    s = ref_recursive(terms[:b], fmt)
    for m in range(b, len(terms), b):
        s = float(lowp.ops.add(s, ref_recursive(terms[m : m + b], fmt), fmt))
    return s


REFS = {
    "recursive": ref_recursive,
    "pairwise": ref_pairwise,
    "blocked:5": lambda t, f: ref_blocked(t, f, 5),
}


@pytest.mark.parametrize("order", list(REFS))
@pytest.mark.parametrize("n", [1, 2, 7, 64, 101])
def test_sum_equals_a_loop_of_additions(order, n):
    x = list(rng(n, 8).standard_normal(n) * 10)
    for fmt in ("float16", "bfloat16", "e4m3"):
        got, want = lowp.ops.sum(x, fmt, order=order), REFS[order](x, fmt)
        assert got == want or (math.isnan(got) and math.isnan(want)), fmt
    assert lowp.ops.sum(np.array(x).reshape(-1, 1), "float16", order=order) == REFS[order](x, "float16")


@pytest.mark.parametrize("order", list(REFS))
def test_dot_and_matmul_equal_loops_of_products_and_additions(order):
    a = rng(9).standard_normal((4, 23))
    b = rng(10).standard_normal((23, 3))
    got = lowp.ops.matmul(a, b, "bfloat16", accum="float16", order=order)
    for i in range(4):
        for j in range(3):
            terms = [lowp.ops.mul(a[i, p], b[p, j], "bfloat16") for p in range(23)]
            assert got[i, j] == REFS[order](terms, "float16"), (i, j)
            assert lowp.ops.dot(a[i], b[:, j], "bfloat16", accum="float16", order=order) == got[i, j]
    # 1-D operands, as numpy.matmul takes them
    assert np.array_equal(lowp.ops.matmul(a[0], b, "bf16", accum="float16", order=order), got[0])
    assert np.array_equal(lowp.ops.matmul(a, b[:, 1], "bf16", accum="float16", order=order), got[:, 1])
    v = lowp.ops.matmul(a[2], b[:, 2], "bf16", accum="float16", order=order)
    assert isinstance(v, np.float64) and v == got[2, 2]


def test_exact_products_recursive_is_a_chain_of_fmas():
    a = rng(11).standard_normal(50)
    b = rng(12).standard_normal(50)
    s = 0.0
    for x, y in zip(a, b):
        s = lowp.ops.fma(x, y, s, "bfloat16")
    assert lowp.ops.dot(a, b, "bfloat16", exact_products=True) == s
    assert lowp.ops.dot(a, b, "e4m3fn", accum="bfloat16", exact_products=True) == s  # fmt is not used


def test_blockfma_adds_k_exact_products_with_one_rounding():
    # Small dyadic inputs: every product and every partial sum is exact in float64, so the reference
    # rounds the exact value once with lowp.round.
    a = rng(13).integers(-64, 65, 30) / 8.0
    b = rng(14).integers(-64, 65, 30) / 16.0
    for k in (1, 4, 7):
        s = 0.0
        for m in range(0, 30, k):
            s = float(lowp.round(s + float(np.dot(a[m : m + k], b[m : m + k])), "float16"))
        got = lowp.ops.dot(a, b, "e4m3fn", accum="float16", exact_products=True, order=f"blockfma:{k}")
        assert got == s, k
    # With products rounded first, the k + 1 terms are fl(a b) values.
    s = 0.0
    t = lowp.ops.mul(a, b, "e4m3")
    for m in range(0, 30, 4):
        s = float(lowp.round(s + float(np.sum(t[m : m + 4])), "float16"))
    assert lowp.ops.dot(a, b, "e4m3", accum="float16", order="blockfma:4") == s


def test_float64_matmul_is_python_float_arithmetic():
    a = rng(15).standard_normal((6, 40))
    b = rng(16).standard_normal((40, 5))
    got = lowp.ops.matmul(a, b, "float64")
    for i in range(6):
        for j in range(5):
            s = 0.0
            for p in range(40):
                s = s + float(a[i, p]) * float(b[p, j])
            assert got[i, j] == s
    assert lowp.ops.sum(a[0], "float64") == _py_sum(a[0])


def _py_sum(v):
    s = 0.0
    for t in v:
        s = s + float(t)
    return s


def test_harmonic_series_stagnates_in_float16():
    k = np.arange(1.0, 5001.0)
    terms = lowp.ops.div(1.0, k, "float16")
    assert lowp.ops.sum(terms, "float16") == 7.0859375
    assert lowp.ops.sum(terms[:600], "float16") == 7.0859375  # already stuck
    assert lowp.ops.sum(terms, "float16", order="pairwise") > 9.0
    assert lowp.ops.sum(terms, "float16", accum="float32") == pytest.approx(9.094, abs=0.01)


def test_matmul_releases_the_interpreter_lock():
    """While a long matmul runs in another thread, this one keeps running Python: the longest pause between
    two of its loop turns is a small part of the call (it would be all of it with the lock held)."""
    a = rng(17).standard_normal((200, 200))
    took = []

    def work():
        t0 = time.perf_counter()
        lowp.ops.matmul(a, a, "bf16", "stochastic", seed=1)
        took.append(time.perf_counter() - t0)

    worker = threading.Thread(target=work)
    last, longest = time.perf_counter(), 0.0
    worker.start()
    while worker.is_alive():
        now = time.perf_counter()
        longest, last = max(longest, now - last), now
    worker.join()
    assert took[0] > 0.05 and longest < took[0] / 2, (longest, took)


# ---------------------------------------------------------------------------------------------------------
# Linear algebra


def py_lu(a):
    """Right-looking LU with partial pivoting in Python floats, in lowp's operation order."""
    n = len(a)
    f = [[float(v) for v in row] for row in a]
    perm = list(range(n))
    for k in range(n):
        p = max(range(k, n), key=lambda i: (abs(f[i][k]), -i))  # the first of equal pivots
        f[k], f[p] = f[p], f[k]
        perm[k], perm[p] = perm[p], perm[k]
        for i in range(k + 1, n):
            m = f[i][k] / f[k][k]
            f[i][k] = m
            for j in range(k + 1, n):
                f[i][j] = f[i][j] - m * f[k][j]
    return f, perm


def py_substitute(t, b, lower, unit):
    n = len(b)
    x = [float(v) for v in b]
    for i in range(n) if lower else reversed(range(n)):
        s = x[i]
        for j in range(i) if lower else range(i + 1, n):
            s = s - t[i][j] * x[j]
        x[i] = s if unit else s / t[i][i]
    return x


def py_cholesky(a):
    n = len(a)
    low = [[0.0] * n for _ in range(n)]
    for j in range(n):
        s = float(a[j][j])
        for p in range(j):
            s = s - low[j][p] * low[j][p]
        d = math.sqrt(s)
        low[j][j] = d
        for i in range(j + 1, n):
            s = float(a[i][j])
            for p in range(j):
                s = s - low[i][p] * low[j][p]
            low[i][j] = s / d
    return low


def test_float64_lu_solve_and_cholesky_are_python_float_arithmetic():
    n = 9
    a = rng(18).standard_normal((n, n))
    b = rng(19).standard_normal(n)
    f, perm = py_lu(a.tolist())
    P, L, U = lowp.linalg.lu(a, "float64")
    assert np.array_equal(L, np.tril(np.array(f), -1) + np.eye(n)) and np.array_equal(U, np.triu(np.array(f)))
    assert np.array_equal(P.T @ a, a[perm])
    y = py_substitute(f, [b[p] for p in perm], lower=True, unit=True)
    x = py_substitute(f, y, lower=False, unit=False)
    assert np.array_equal(lowp.linalg.solve(a, b, "float64"), x)
    spd = a @ a.T + n * np.eye(n)
    assert np.array_equal(lowp.linalg.cholesky(spd, "float64"), np.array(py_cholesky(spd.tolist())))
    low = np.tril(a) + n * np.eye(n)
    for lower, unit in [(True, False), (True, True), (False, False), (False, True)]:
        t = low if lower else low.T
        got = lowp.linalg.solve_triangular(t, b, "float64", lower=lower, unit_diagonal=unit)
        assert np.array_equal(got, py_substitute(t.tolist(), b, lower, unit)), (lower, unit)


def test_ties_between_pivots_take_the_first_row():
    a = [[1.0, 2.0, 0.0], [-3.0, 1.0, 1.0], [3.0, 0.0, 1.0]]
    P, L, U = lowp.linalg.lu(a, "float64")
    assert U[0].tolist() == [-3.0, 1.0, 1.0]
    assert np.allclose(P @ L @ U, a)


@pytest.mark.parametrize("fmt", ["float16", "bfloat16", "e4m3"])
def test_lu_backward_error_is_within_the_classical_bound(fmt):
    n = 8
    a = rng(20).uniform(-1, 1, (n, n))
    P, L, U = lowp.linalg.lu(a, fmt)
    u = lowp.Format(fmt).unit_roundoff
    gamma = n * u / (1 - n * u)
    assert np.all(np.abs(np.tril(L, -1)) <= 1.0)  # partial pivoting
    assert np.array_equal(lowp.round(L, fmt), L) and np.array_equal(lowp.round(U, fmt), U)
    # |A - P L U| <= u |A| (rounding A) + gamma_n P |L| |U| (Higham, Theorem 9.3), with a little slack for
    # the float64 products here.
    bound = u * np.abs(a) + gamma * (P @ (np.abs(L) @ np.abs(U)))
    assert np.all(np.abs(a - P @ L @ U) <= bound * 1.001 + 1e-300)
    # and it is not float64 in disguise
    assert np.abs(a - P @ L @ U).max() > 1e-6


def test_solve_in_low_precision_is_accurate_to_its_precision():
    n = 6
    a = rng(21).standard_normal((n, n)) + n * np.eye(n)
    x_true = rng(22).standard_normal(n)
    b = a @ x_true
    for fmt in ("float16", "bfloat16", "float32"):
        x = lowp.linalg.solve(a, b, fmt)
        u = lowp.Format(fmt).unit_roundoff
        err = np.abs(x - x_true).max() / np.abs(x_true).max()
        assert err < 200 * u, fmt
        assert np.array_equal(lowp.round(x, fmt), x)


def test_stochastic_linalg_reproduces_with_a_seed():
    a = rng(23).standard_normal((5, 5)) + 5 * np.eye(5)
    b = np.ones(5)
    x1 = lowp.linalg.solve(a, b, "bf16", "stochastic", seed=3)
    assert np.array_equal(x1, lowp.linalg.solve(a, b, "bf16", "stochastic", seed=3))
    assert not np.array_equal(x1, lowp.linalg.solve(a, b, "bf16", "stochastic", seed=4))


def test_refine_converges_for_a_well_conditioned_system():
    n = 20
    r = rng(24)
    a = r.standard_normal((n, n)) + 2 * math.sqrt(n) * np.eye(n)
    x_true = r.standard_normal(n)
    b = a @ x_true
    x, info = lowp.linalg.refine(a, b, "float16", "float64", "float64", x_true=x_true)
    assert info["converged"] and 1 <= info["iterations"] <= 10
    steps = info["iterations"] + 1
    assert len(info["backward_error"]) == len(info["forward_error"]) == len(info["correction"]) == steps
    assert info["forward_error"][-1] < 1e-13
    assert info["forward_error"][0] > 1e-5  # the float16 solve alone is float16-accurate
    assert info["correction"][0] == 0.0
    assert np.abs(x - x_true).max() / np.abs(x_true).max() == info["forward_error"][-1]
    x2, info2 = lowp.linalg.refine(a, b, "float16")
    assert info2["forward_error"] is None and np.array_equal(x, x2)
    _, one = lowp.linalg.refine(a, b, "float16", max_iter=1)
    assert one["iterations"] == 1 and not one["converged"]


def test_refine_does_not_converge_when_the_factorization_is_too_imprecise():
    n = 10
    r = rng(25)
    q1, _ = np.linalg.qr(r.standard_normal((n, n)))
    q2, _ = np.linalg.qr(r.standard_normal((n, n)))
    a = q1 @ np.diag(np.logspace(0, -8, n)) @ q2.T  # condition number 1e8
    x_true = r.standard_normal(n)
    b = a @ x_true
    with np.errstate(all="ignore"):
        x, info = lowp.linalg.refine(a, b, "float16", x_true=x_true)
    # Iterates that overflow to inf must not count as converged (their backward error is not small).
    assert not info["converged"], info
    assert not info["forward_error"][-1] < 1e-3  # NaN (the iterates overflowed) also counts
    # With a float64 factorization (kappa u = 1e-8) it converges.
    _, ok = lowp.linalg.refine(a, b, "float64", x_true=x_true)
    assert ok["converged"]
