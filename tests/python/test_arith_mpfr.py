"""lowp.ops' element-wise arithmetic and functions against MPFR (gmpy2), bit for bit.

MPFR is set up as the target format exactly as test_mpfr.py does it (precision P = M + 1, emax = emax + 1,
emin = emin - M + 1, subnormalize on), so each MPFR operation on format values is one correct rounding to the
format: subnormals, overflow and the sign of zero included. The inputs are values of the format (MPFR needs
its inputs inside the context's exponent range): random codes, and per operation the cases where rounding is
hard: exact ties and values just above and below a midpoint, cancellation to zero, subnormal results, the
overflow threshold, huge arguments of sin/cos/tan, tiny ones of sin/tanh, exp near overflow and underflow,
log near 1. Each case runs on float64 data and, for formats float32 holds, on float32 data too. A second
set of cases takes float64 operands that are not values of the (narrower) format, inside its range: there a
correct result rounds the exact result of the operation once (no rounding of the operands, no double
rounding through float64).

float8_e4m3fn has no infinity: where a result overflows (would be inf in an IEEE format), lowp gives NaN and
MPFR gives inf or its largest value, so for that format only results within ±448 (and NaN results of invalid
operations) are compared. The IEEE formats (float16, bfloat16, float32, float64, float8_e5m2 and the IEEE-like
float8_e4m3) overflow as MPFR does and are compared everywhere.
"""

from __future__ import annotations

import functools
import math

import gmpy2
import ml_dtypes
import numpy as np
import pytest

import lowp
from test_mpfr import MODES, context

# name -> the NumPy/ml_dtypes type that holds the format's values (to draw codes and to round inputs to it).
FORMATS = {
    "float16": np.float16,
    "bfloat16": ml_dtypes.bfloat16,
    "float32": np.float32,
    "float64": np.float64,
    "float8_e5m2": ml_dtypes.float8_e5m2,
    "float8_e4m3": ml_dtypes.float8_e4m3,
    "float8_e4m3fn": ml_dtypes.float8_e4m3fn,
}
UINT = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}
N_RANDOM = 1500

MPFR_OPS = {
    "add": lambda x, y: x + y,
    "sub": lambda x, y: x - y,
    "mul": lambda x, y: x * y,
    "div": lambda x, y: x / y,
    "fma": gmpy2.fma,
    "sqrt": gmpy2.sqrt,
    "exp": gmpy2.exp,
    "exp2": gmpy2.exp2,
    "log": gmpy2.log,
    "log2": gmpy2.log2,
    "log10": gmpy2.log10,
    "sin": gmpy2.sin,
    "cos": gmpy2.cos,
    "tan": gmpy2.tan,
    "tanh": gmpy2.tanh,
}
LOWP_OPS = {name: getattr(lowp.ops, name) for name in MPFR_OPS}


# --- inputs -------------------------------------------------------------------------------------------------


class Gen:
    """Values of one format: random codes, rounding to the format, neighbours, units in the last place."""

    def __init__(self, name: str, seed: str):
        self.name = name
        self.fmt = lowp.Format(name)
        self.dt = np.dtype(FORMATS[name])
        self.rng = np.random.default_rng(list(map(ord, name + seed)))
        m, f = self.fmt.man_bits, self.fmt
        self.eps = 2.0**-m
        self.max, self.min_normal, self.min_sub = f.max, f.min_normal, f.min_subnormal

    def codes(self, n: int) -> np.ndarray:
        """n random values drawn as codes (NaN codes dropped)."""
        u = UINT[self.dt.itemsize]
        bits = self.rng.integers(0, np.iinfo(u).max, size=n, dtype=u, endpoint=True)
        with np.errstate(invalid="ignore"):
            v = bits.view(self.dt).astype(np.float64)
        return v[~np.isnan(v)]

    def finite(self, n: int) -> np.ndarray:
        v = self.codes(2 * n)
        return v[np.isfinite(v)][:n]

    def to_fmt(self, v) -> np.ndarray:
        """The format values nearest to v (finite ones only)."""
        with np.errstate(over="ignore", invalid="ignore"):
            r = np.asarray(v, np.float64).astype(self.dt).astype(np.float64)
        return r[np.isfinite(r)]

    def is_exact(self, v) -> np.ndarray:
        """Where v holds finite values of the format."""
        v = np.asarray(v, np.float64)
        with np.errstate(over="ignore", invalid="ignore"):
            return np.isfinite(v) & (v.astype(self.dt).astype(np.float64) == v)

    def exact(self, v) -> np.ndarray:
        """The elements of v that are finite values of the format."""
        v = np.asarray(v, np.float64).reshape(-1)
        return v[self.is_exact(v)]

    def around(self, v, k: int = 3) -> np.ndarray:
        """The format values v rounds to and their k neighbours on each side (by code)."""
        u = UINT[self.dt.itemsize]
        v = np.asarray(v, np.float64)
        c = np.abs(v).astype(self.dt).view(u).astype(np.int64)  # codes of the magnitudes: below 2^(bits - 1)
        c = c[:, None] + np.arange(-k, k + 1)[None, :]
        sign = np.broadcast_to(np.where(np.signbit(v), -1.0, 1.0)[:, None], c.shape)
        keep = c >= 0
        with np.errstate(invalid="ignore"):
            r = c[keep].astype(u).view(self.dt).astype(np.float64) * sign[keep]
        return r[np.isfinite(r)]

    def ulp(self, x: np.ndarray) -> np.ndarray:
        """The unit in the last place of the format at x (x finite, nonzero)."""
        e = np.frexp(np.abs(x))[1] - 1
        return np.ldexp(1.0, np.maximum(e, self.fmt.emin) - self.fmt.man_bits)


def _pairs(xs: np.ndarray, ys: np.ndarray) -> list:
    n = min(xs.size, ys.size)
    return [xs[:n], ys[:n]]


def _join(*groups: list) -> list:
    return [np.concatenate([g[i] for g in groups]) for i in range(len(groups[0]))]


def _offsets(g: Gen) -> np.ndarray:
    """Multiples of half an ulp that land on, just above and just below a midpoint (and 1.5 ulp)."""
    e = g.eps
    return np.array([1.0, 1 + e, 1 - e / 2, 1 + 2 * e, 1 - e, 3.0, 3 * (1 + e), 3 * (1 - e / 2), 0.5, 0.5 * (1 + e)])


def add_inputs(g: Gen) -> list:
    rand = _pairs(g.codes(N_RANDOM), g.codes(N_RANDOM))
    x = g.finite(200)
    x = x[x != 0]
    h = g.ulp(x) / 2
    ys = ((h[:, None] * _offsets(g)[None, :]) * g.rng.choice([-1.0, 1.0], size=(x.size, 1))).reshape(-1)
    xx = np.repeat(x, _offsets(g).size)
    keep = g.is_exact(ys)
    ties = [xx[keep], ys[keep]]
    c = g.finite(200)
    cancel = [np.concatenate([c, [0.0, 0.0, -0.0, -0.0]]), np.concatenate([-c, [0.0, -0.0, 0.0, -0.0]])]
    hmax = g.ulp(np.array([g.max]))[0] / 2
    big = g.exact(hmax * _offsets(g))
    over = [np.concatenate([np.full(big.size, g.max), np.full(big.size, -g.max), [g.max, np.inf, np.inf]]),
            np.concatenate([big, -big, [g.max, -np.inf, 1.0]])]  # fmt: skip
    sub = g.around([g.min_sub, g.min_normal, g.min_normal / 2], 4)
    subs = _pairs(np.tile(sub, 4), np.concatenate([g.rng.permutation(np.tile(sub, 2)), -g.rng.permutation(np.tile(sub, 2))]))
    return _join(rand, ties, cancel, over, subs)


def mul_inputs(g: Gen) -> list:
    rand = _pairs(g.codes(N_RANDOM), g.codes(N_RANDOM))
    x = g.finite(300)
    e = g.eps
    factors = np.array([1.5, 1.25, 0.75, 3.0, 5.0, 7.0, 1 + e, 1 - e / 2, 1 + 2 * e, 1 + 3 * e, 3 * (1 + e)])
    k = g.rng.integers(-8, 9, size=(x.size, factors.size))
    ys = g.exact(np.ldexp(factors[None, :], k))
    near = _pairs(np.repeat(x, 4)[: 4 * x.size], g.rng.choice(ys, 4 * x.size))
    # Products in and below the subnormal range, and around the overflow threshold.
    r = math.sqrt(g.min_sub)
    tiny = g.around(np.array([r, r * 1.7, math.sqrt(g.min_normal)]), 6)
    low = _pairs(np.tile(tiny, tiny.size), np.repeat(tiny, tiny.size))
    top = g.around(np.array([math.sqrt(g.max)]), 6)
    high = _pairs(np.tile(top, top.size), np.repeat(top, top.size))
    special = [np.array([0.0, -0.0, 0.0, np.inf, -np.inf, -0.0]), np.array([5.0, 5.0, -2.0, 0.0, 2.0, -0.0])]
    return _join(rand, near, low, high, special)


def div_inputs(g: Gen) -> list:
    rand = _pairs(g.codes(N_RANDOM), g.codes(N_RANDOM))
    x = g.finite(600)
    ys = g.exact(np.array([3.0, 5.0, 7.0, 9.0, 11.0, 10.0, 1 + g.eps, 1 - g.eps / 2, 0.1, 3.0 * 2**-6]))
    near = _pairs(x, g.rng.choice(ys, x.size))
    small = g.around(np.array([g.min_normal, g.min_sub * 3, g.max]), 3)
    den = g.exact(np.array([3.0, 7.0, 2**6 + 1.0, 1 / 3, 0.1]))
    edge = _pairs(np.repeat(small, den.size), np.tile(den, small.size))
    special = [np.array([1.0, -1.0, 0.0, np.inf, 1.0, -0.0]), np.array([0.0, 0.0, 0.0, np.inf, -np.inf, 3.0])]
    return _join(rand, near, edge, special)


def fma_inputs(g: Gen) -> list:
    a, b, c = g.finite(N_RANDOM), g.finite(N_RANDOM), g.codes(N_RANDOM)
    n = min(a.size, b.size, c.size)
    rand = [a[:n], b[:n], c[:n]]
    a, b = a[:500], b[:500]
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        p = (a * b).astype(g.dt).astype(np.float64)  # fl(a b): a b is exact in float64 for formats up to float32
    ok = np.isfinite(p) & (p != 0)
    a, b, p = a[ok], b[ok], p[ok]
    # c = -fl(a b): the result is the product's rounding error (exactly 0 when a b is a format value).
    cancel = [a, b, -p]
    h = g.ulp(p) / 2
    c = -p + h * g.rng.choice([-1.0, 1.0, 1 + g.eps, -3.0], size=p.size)
    keep = g.is_exact(c)
    near = [a[keep], b[keep], c[keep]]
    e = g.eps
    doc = [np.array([1 + e, 1 + e, 0.0]), np.array([1 - e, 1 - e, -0.0]), np.array([-1.0, -1.0, -0.0])]
    return _join(rand, cancel, near, doc)


def sqrt_inputs(g: Gen) -> list:
    x = g.finite(400)
    x = np.abs(x[x != 0])
    mids = x + g.ulp(x) / 2
    with np.errstate(over="ignore", under="ignore"):
        hard = g.around(mids * mids, 2)  # squares of midpoints are never format values: their neighbours are near
    squares = g.exact(np.square(np.ldexp(g.rng.integers(1, 64, 200).astype(np.float64), g.rng.integers(-10, 10, 200))))
    edge = g.around(np.array([g.min_sub, g.min_normal, g.max, 1.0, 2.0, 4.0]), 3)
    return [np.concatenate([g.codes(N_RANDOM), hard, squares, edge, [0.0, -0.0, -1.0, np.inf, -np.inf]])]


def _func_inputs(g: Gen, lo: float, hi: float, marks: list, k: int = 4) -> list:
    """Random codes, values uniform in [lo, hi], the neighbours of `marks`, tiny arguments, specials."""
    tiny = g.exact([2.0**-30, -(2.0**-30), g.min_sub, -g.min_sub, g.min_sub * 3, g.min_normal, -g.min_normal])
    uni = g.to_fmt(g.rng.uniform(lo, hi, N_RANDOM))
    near = g.around(np.array([m for m in marks if np.isfinite(m) and abs(m) <= g.max]), k)
    return [np.concatenate([g.codes(N_RANDOM), uni, near, tiny, [0.0, -0.0, np.inf, -np.inf]])]


def exp_inputs(g: Gen, base: float) -> list:
    lg = math.log(base)
    top, bottom, normal = math.log(g.max) / lg, math.log(g.min_sub) / lg, math.log(g.min_normal) / lg
    marks = [top, bottom, normal, bottom - 1, top + math.log1p(g.eps / 2) / lg, 0.5, -0.5, 1.0]
    return _func_inputs(g, bottom - 2, top + 2, marks, 6)


def log_inputs(g: Gen) -> list:
    marks = [1.0, 2.0, 0.5, 10.0, 100.0, 0.1, math.e, g.max, g.min_normal, g.min_sub]
    near1 = g.around(np.array([1.0]), 60)
    [x] = _func_inputs(g, 0.0, 4.0, marks)
    return [np.concatenate([x, near1, -near1])]


def trig_inputs(g: Gen) -> list:
    marks = [k * math.pi / 2 for k in range(-20, 21)] + [1e22, 1e300, 2.0**100, 1e10, 1e5, g.max]
    [x] = _func_inputs(g, -10.0, 10.0, marks, 3)
    return [np.concatenate([x, g.to_fmt(g.rng.uniform(-1e4, 1e4, 500))])]


def tanh_inputs(g: Gen) -> list:
    marks = [0.5, 1.0, 9.0, 10.0, 20.0, 44.0, -9.0]
    return _func_inputs(g, -20.0, 20.0, marks)


INPUTS = {
    "add": add_inputs,
    "sub": add_inputs,
    "mul": mul_inputs,
    "div": div_inputs,
    "fma": fma_inputs,
    "sqrt": sqrt_inputs,
    "exp": lambda g: exp_inputs(g, math.e),
    "exp2": lambda g: exp_inputs(g, 2.0),
    "log": log_inputs,
    "log2": log_inputs,
    "log10": log_inputs,
    "sin": trig_inputs,
    "cos": trig_inputs,
    "tan": trig_inputs,
    "tanh": tanh_inputs,
}


def off_grid_inputs(op: str, g: Gen) -> list:
    """float64 operands that are not values of the format (so a correct result must round the exact result of
    the operation once, from all 53 bits of each operand), with magnitudes in the format's range."""
    n = N_RANDOM

    def logu(lo: float, hi: float, k: int = n) -> np.ndarray:
        return np.exp(g.rng.uniform(math.log(lo), math.log(hi), k)) * g.rng.choice([-1.0, 1.0], k)

    wide = lambda k=n: logu(g.min_sub, g.max, k)  # noqa: E731
    if op in ("add", "sub", "mul", "div"):
        x = g.finite(400)
        x = x[x != 0]
        if op in ("add", "sub"):
            # x + ulp(x)/2 (1 + d): just off a midpoint of x's grid; and (T + u) + (-u + v), T a grid point or a
            # midpoint, u = T/8, |v| = 2^-51 u: a sum within half a float64 unit of T, which computing in float64
            # first would round to T (a tie, or an exact result) before the rounding to the format.
            d = g.rng.choice([0.0, 2.0**-30, -(2.0**-30), 2.0**-45, -(2.0**-45)], x.size)
            t = np.abs(x) + g.ulp(x) / 2 * g.rng.integers(0, 2, x.size)
            u = np.ldexp(1.0, np.frexp(t)[1] - 4)
            v = u * 2.0**-51 * g.rng.choice([-1.0, 1.0], x.size)
            x, y = np.concatenate([x, t + u]), np.concatenate([g.ulp(x) / 2 * (1 + d), -u + v])
            if op == "sub":
                y = -y
        elif op == "mul":  # (1 + a) T (1 - a) = T (1 - a^2) and (1 + a) T (1 - a + a^2) = T (1 + a^3), T a midpoint
            # or a grid point: within half a float64 unit of T, so computing in float64 first would round them to
            # T (a tie, or an exact result) before the rounding to the format.
            k = np.arange(x.size) % 4
            t = x + g.ulp(x) / 2 * (k % 2)
            a = np.where(k < 2, 2.0**-27, 2.0**-18)
            y = np.where(k < 2, t * (1 - a), t * (1 - a + a * a))
            x = 1 + a
        else:  # x (1 + eps/2 + k 2^-52)^-1: a quotient a few float64 units off a midpoint
            y = 1 / (1 + g.eps / 2 + g.rng.integers(-3, 4, x.size) * 2.0**-52)
        c = wide(300)
        return _join([wide(), wide()], [x, y], [c, -c if op == "add" else c])
    if op == "fma":
        a, b = wide(), wide()
        with np.errstate(over="ignore", under="ignore"):
            c = np.where(g.rng.random(n) < 0.5, -(a * b), wide())  # -fl64(a b): the product's rounding error left
        return [a, b, c]
    span = {"exp": 1.0, "exp2": math.log(2)}.get(op)
    if span is not None:
        top, bottom = math.log(g.max) / span, math.log(g.min_sub) / span
        return [np.concatenate([g.rng.uniform(bottom - 1, top + 1, n), logu(g.min_sub, 1.0, 500)])]
    if op in ("sqrt", "log", "log2", "log10"):
        return [np.abs(wide())]
    if op == "tanh":
        return [np.concatenate([g.rng.uniform(-20, 20, n), logu(g.min_sub, 1.0, 500)])]
    return [np.concatenate([g.rng.uniform(-100, 100, n), wide(500), logu(g.min_sub, 1.0, 500)])]  # sin cos tan


@functools.lru_cache(maxsize=None)
def cases(op: str, name: str, grid: bool = True) -> tuple:
    """The input columns of `op` in format `name` and their MPFR numbers: values of the format (`grid`), or
    float64 values in its range."""
    g = Gen(name, op + ("" if grid else "off"))
    cols = [np.asarray(c, np.float64) for c in (INPUTS[op](g) if grid else off_grid_inputs(op, g))]
    bad = np.zeros(cols[0].size, bool)
    for c in cols:
        if grid:  # every input a value of the format (NaN and inf included where the format has them)
            with np.errstate(over="ignore", invalid="ignore"):
                bad |= ~(np.isnan(c) | (c.astype(g.dt).astype(np.float64) == c))
        else:  # MPFR needs its inputs inside the context's exponent range
            bad |= ~((c == 0) | ((np.abs(c) >= g.min_sub) & (np.abs(c) <= g.max)))
    cols = [c[~bad] for c in cols]
    mp = [[gmpy2.mpfr(float(v)) for v in c] for c in cols]  # exact: the default context has 53 bits
    return cols, mp


def mpfr_results(op: str, name: str, mode: str, grid: bool = True) -> np.ndarray:
    cols, mp = cases(op, name, grid)
    f = MPFR_OPS[op]
    with context(lowp.Format(name), mode):
        return np.array([float(f(*xs)) for xs in zip(*mp)], np.float64)


def mismatches(cols: list, got: np.ndarray, want: np.ndarray, fmt: lowp.Format) -> np.ndarray:
    same = (got.view(np.uint64) == want.view(np.uint64)) | (np.isnan(got) & np.isnan(want))
    if not fmt.has_inf:
        # No infinity: overflow is NaN in lowp, inf or the context's largest value in MPFR (see the docstring).
        same |= ~np.isnan(want) & ~(np.abs(want) <= fmt.max)
    return np.flatnonzero(~same)


def check(op: str, name: str, mode: str, grid: bool, dtypes: list) -> None:
    fmt = lowp.Format(name)
    cols, _ = cases(op, name, grid)
    want = mpfr_results(op, name, mode, grid)
    assert want.size >= 1000, f"only {want.size} cases"
    for dt in dtypes:
        with np.errstate(over="ignore"):
            args = [c.astype(dt) for c in cols]
        got = np.asarray(LOWP_OPS[op](*args, fmt, mode), np.float64)
        bad = mismatches(cols, got, want, fmt)
        msg = "\n".join(
            f"  {op}({', '.join(f'{c[i]!r} ({c[i].hex()})' for c in cols)}): mpfr {want[i]!r} lowp {got[i]!r}"
            for i in bad[:10]
        )
        assert not bad.size, f"{bad.size} of {want.size} differ from MPFR ({op}, {name}, {mode}, {dt.__name__} data):\n{msg}"


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("name", list(FORMATS))
@pytest.mark.parametrize("op", list(MPFR_OPS))
def test_ops_equal_mpfr(op, name, mode):
    check(op, name, mode, True, [np.float64] + ([np.float32] if lowp.Format(name).bits <= 32 else []))


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("name", [n for n in FORMATS if n != "float64"])
@pytest.mark.parametrize("op", list(MPFR_OPS))
def test_ops_on_float64_operands_off_the_grid_equal_mpfr(op, name, mode):
    check(op, name, mode, False, [np.float64])


@pytest.mark.parametrize("name", ["float16", "bfloat16", "float8_e5m2", "float32"])
def test_inputs_really_hit_ties_zeros_subnormals_and_overflow(name):
    """The adversarial inputs exercise what they claim: exact ties of sums and products, exact zeros of
    cancellation (with -0 under toward_negative), subnormal and overflowing results."""
    fmt = lowp.Format(name)
    for op in ("add", "mul"):
        (x, y), _ = cases(op, name)
        up = np.asarray(LOWP_OPS[op](x, y, fmt, "toward_positive"))
        down = np.asarray(LOWP_OPS[op](x, y, fmt, "toward_negative"))
        with np.errstate(over="ignore", invalid="ignore"):
            exact = x + y if op == "add" else x * y  # exact in float64 for these formats, away from overflow
            mid = (up + down) / 2
        assert np.sum((exact == mid) & (up != down) & np.isfinite(mid)) >= 50, (op, "ties")
        res = np.asarray(LOWP_OPS[op](x, y, fmt))
        assert np.sum(np.isinf(res) & np.isfinite(x) & np.isfinite(y)) >= 5, (op, "overflow")
        assert np.sum((np.abs(res) < fmt.min_normal) & (res != 0)) >= 20, (op, "subnormal")
    (x, y), _ = cases("add", name)
    zeros = (x == -y) & np.isfinite(x) & (x != 0)
    assert zeros.sum() >= 100
    assert np.all(np.signbit(lowp.ops.add(x[zeros], y[zeros], fmt, "toward_negative")))
    assert not np.any(np.signbit(lowp.ops.add(x[zeros], y[zeros], fmt, "toward_zero")))
