"""lowp.round against MPFR (gmpy2) for custom IEEE-style formats, on float64 inputs.

MPFR is set up as the target format: precision P = M + 1, emax = emax_ieee + 1 and emin = emin_ieee - M + 1
(MPFR's significands lie in [1/2, 1)), with subnormalize on, so one conversion of a float64 to an mpfr is one
correct rounding to the format, subnormals and overflow included. The inputs: ties between neighbouring
format values and the float64 values on either side, format values themselves, overflow thresholds, values
just below powers of two, float64 subnormals, log-uniform random values across and beyond the format's
range, zeros and infinities.
"""

from __future__ import annotations

import gmpy2
import numpy as np
import pytest

import lowp

# (E, M) with IEEE specials. Some of these names are also presets with other special values (e4m3 is the
# IEEE-like float8_e4m3; e3m2 and e2m1 name the fn formats), so the formats are built by their fields.
FORMATS = [(5, 10), (8, 7), (4, 3), (11, 20), (3, 2), (5, 2), (2, 1), (6, 4)]
MODES = {
    "nearest_even": gmpy2.RoundToNearest,
    "toward_positive": gmpy2.RoundUp,
    "toward_negative": gmpy2.RoundDown,
    "toward_zero": gmpy2.RoundToZero,
}
N_RANDOM = 20_000


def context(fmt: lowp.Format, mode: str) -> gmpy2.context:
    """The MPFR context of the format (its precision, exponent range and subnormals), rounding in `mode`."""
    return gmpy2.context(
        precision=fmt.man_bits + 1,
        emax=fmt.emax + 1,
        emin=fmt.emin - fmt.man_bits + 1,
        subnormalize=True,
        round=MODES[mode],
    )


def mpfr_round(x: np.ndarray, fmt: lowp.Format, mode: str) -> np.ndarray:
    with context(fmt, mode):
        return np.array([float(gmpy2.mpfr(float(v))) for v in x], np.float64)


def battery(fmt: lowp.Format) -> np.ndarray:
    with np.errstate(over="ignore", invalid="ignore"):
        return _battery(fmt)


def _battery(fmt: lowp.Format) -> np.ndarray:
    rng = np.random.default_rng([7, fmt.exp_bits, fmt.man_bits])
    m = fmt.man_bits
    # Random format values: integer significands of M+1 bits (or fewer, in the subnormal range) at random
    # exponents from the bottom of the subnormal range to above the top.
    e = rng.integers(fmt.emin - m - 2, fmt.emax + 3, size=N_RANDOM)
    sig = rng.integers(2**m, 2 ** (m + 1), size=N_RANDOM).astype(np.float64)
    vals = np.ldexp(sig, e - m)
    quantum = np.ldexp(1.0, np.maximum(e, fmt.emin) - m)
    ties = vals + quantum / 2
    parts = [vals, ties, np.nextafter(ties, np.inf), np.nextafter(ties, -np.inf)]
    # Thresholds: overflow, min normal, min subnormal, halfway to the min subnormal.
    ulp_max = np.ldexp(1.0, fmt.emax - m)
    edges = np.array(
        [fmt.max, fmt.max + ulp_max / 2, fmt.max + ulp_max, fmt.min_normal, fmt.min_subnormal, fmt.min_subnormal / 2,
         fmt.min_subnormal * 1.5, np.ldexp(1.0, fmt.emax + 1), 2.0**-25 * 1.0001]
    )  # fmt: skip
    parts += [edges, np.nextafter(edges, np.inf), np.nextafter(edges, -np.inf)]
    k = np.arange(fmt.emin - m - 3, fmt.emax + 3, dtype=np.float64)
    parts.append(np.nextafter(np.exp2(k), 0.0))  # just below powers of two (the log2 trap)
    parts.append(np.exp2(rng.uniform(fmt.emin - m - 4, fmt.emax + 4, size=N_RANDOM)))
    sub = rng.integers(1, 2**52, size=2000, dtype=np.uint64).view(np.float64)  # float64 subnormals
    parts.append(sub)
    x = np.concatenate(parts)
    x = np.concatenate([x, -x, [0.0, -0.0, np.inf, -np.inf]])
    return x[np.isfinite(x) | np.isinf(x)]


IDS = [f"e{e}m{m}" for e, m in FORMATS]


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("fields", FORMATS, ids=IDS)
def test_round_equals_mpfr(fields, mode):
    fmt = lowp.Format.custom(*fields)
    name = fmt.name
    x = battery(fmt)
    want = mpfr_round(x, fmt, mode)
    got = lowp.round(x, fmt, mode)
    same = got.view(np.uint64) == want.view(np.uint64)  # bit for bit: signed zeros and infinities too
    bad = np.flatnonzero(~same)
    msg = "\n".join(f"x={x[i]!r} ({x[i].hex()}) mpfr {want[i]!r} lowp {got[i]!r}" for i in bad[:10])
    assert not bad.size, f"{bad.size} of {x.size} differ from MPFR ({name}, {mode}):\n{msg}"


@pytest.mark.parametrize("fields", FORMATS, ids=IDS)
def test_battery_really_has_ties_and_overflow(fields):
    """The inputs exercise what they claim: exact ties, overflow and underflow to zero."""
    fmt = lowp.Format.custom(*fields)
    x = battery(fmt)
    up = lowp.round(x, fmt, "toward_positive")
    down = lowp.round(x, fmt, "toward_negative")
    with np.errstate(over="ignore", invalid="ignore"):
        mid = (up + down) / 2
    assert np.sum((x == mid) & (up != down)) > 1000
    assert np.isinf(lowp.round(x, fmt)).sum() > 100
    assert np.sum((lowp.round(x, fmt) == 0) & (x != 0)) > 50


def test_float32_data_matches_mpfr_too():
    fmt = lowp.Format.custom(5, 10)
    with np.errstate(over="ignore"):
        x = battery(fmt).astype(np.float32)
    for mode in MODES:
        want = mpfr_round(x.astype(np.float64), fmt, mode).astype(np.float32)
        got = lowp.round(x, fmt, mode)
        assert np.array_equal(got.view(np.uint32), want.view(np.uint32)), mode
