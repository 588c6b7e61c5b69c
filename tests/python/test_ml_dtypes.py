"""lowp against ml_dtypes (and numpy's float16), code for code, through both ways in: the `lowp` CLI and the
Python package (the `lowp_api` fixture runs every test on each).

For every format that ml_dtypes has, under nearest_even, on float32 and float64 inputs, the input battery is:
all 2^16 float16 bit patterns and all 2^16 bfloat16 bit patterns as values; every value of the target format;
every midpoint between neighbouring finite values with the nearest input-type values on either side; the
overflow threshold (max + ulp(max)/2) and its neighbours; powers of two and their neighbours; subnormal inputs;
10^6 random bit patterns and 10^6 log-uniform values over the format's range. All of it goes through one
encode and one round call per format and input type, and the codes must equal
`x.astype(fmt).view(uint8/uint16)` byte for byte. float16 arrays go through the package directly (all 2^16).

Differences from ml_dtypes that are intended, excluded from the equality checks and asserted on their own:
- float8_e8m0fnu: exact ties 1.5 * 2^k. ml_dtypes rounds them up; lowp's nearest_even picks the even code,
  and lowp's nearest_away equals ml_dtypes there. Both give NaN (0xFF) for 0, negatives, inf and NaN, and
  code 0 (2^-127) for positive values below 2^-127.
- float6_e3m2fn, float6_e2m3fn, float4_e2m1fn have no NaN: ml_dtypes gives NaN a code (+NaN gets the -0
  code), `lowp encode` refuses NaN input. NaN is left out of their batteries; a test checks that encode fails
  on it (and that `round` returns NaN unchanged, the core's rule).
- numpy's float16 keeps NaN payload bits; lowp writes the quiet NaN 0x7E00 with the input's sign. NaN codes
  are compared by class and sign only in the float16 test.

Deviations of ml_dtypes 0.6.0 from correct rounding that this suite found (lowp is right on each; the
expected codes are corrected for them and separate tests pin ml_dtypes' behaviour):
- float64 input is cast through float32 for every format: double rounding at inputs that float32 rounds onto
  a tie (or the overflow threshold) of the format. The expected codes for float64 input are ml_dtypes'
  codes of the round-to-odd float32 of x, which is the correctly rounded result.
- float8_e8m0fnu: float32 inputs in (2^-127, 1.5 * 2^-127) (float32 subnormals) get 2^-126 instead of
  the nearer 2^-127; float64 inputs below the float32 range (underflow to 0) get NaN instead of code 0.
"""

from __future__ import annotations

import functools
import os
import subprocess
import warnings
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]

ML_FORMATS = [
    "bfloat16",
    "float8_e5m2",
    "float8_e4m3",
    "float8_e3m4",
    "float8_e4m3fn",
    "float8_e4m3fnuz",
    "float8_e5m2fnuz",
    "float8_e4m3b11fnuz",
    "float6_e3m2fn",
    "float6_e2m3fn",
    "float4_e2m1fn",
    "float8_e8m0fnu",
]
NO_NAN = {"float6_e3m2fn", "float6_e2m3fn", "float4_e2m1fn"}
E8M0 = "float8_e8m0fnu"
DTYPES = [np.float32, np.float64]
SEED = 20240611
N_RANDOM = 1_000_000


# ---------------------------------------------------------------------------------------------------------
# The two ways in: the `lowp` binary and the Python package


@pytest.fixture(scope="session")
def lowp_bin() -> Path:
    env = os.environ.get("LOWP_BIN")
    if env:
        path = Path(env)
        assert path.is_file(), f"LOWP_BIN={env} is not a file"
        return path
    path = REPO / "target" / "release" / "lowp"
    if not path.is_file():
        subprocess.run(["cargo", "build", "--release", "-p", "lowp-cli"], cwd=REPO, check=True)
    assert path.is_file(), f"{path} missing after cargo build"
    return path


def run_lowp(lowp_bin: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(lowp_bin), *args], capture_output=True, text=True)


class Cli:
    """`lowp encode|round|decode` on .npy files."""

    def __init__(self, lowp_bin: Path, tmp_path: Path):
        self.bin, self.tmp = lowp_bin, tmp_path

    def _call(self, cmd: str, fmt: str, x: np.ndarray, *extra: str) -> np.ndarray:
        src = self.tmp / f"{cmd}-{fmt}-in.npy"
        dst = self.tmp / f"{cmd}-{fmt}-out.npy"
        np.save(src, x)
        r = run_lowp(self.bin, cmd, "-f", fmt, *extra, str(src), str(dst))
        assert r.returncode == 0, f"lowp {cmd} -f {fmt} {' '.join(extra)} failed:\n{r.stderr}"
        out = np.load(dst)
        src.unlink()
        dst.unlink()
        return out

    def encode(self, fmt: str, x: np.ndarray, mode: str = "nearest_even") -> np.ndarray:
        return self._call("encode", fmt, x, "-m", mode)

    def round(self, fmt: str, x: np.ndarray, mode: str = "nearest_even") -> np.ndarray:
        return self._call("round", fmt, x, "-m", mode)

    def decode(self, fmt: str, codes: np.ndarray, dtype) -> np.ndarray:
        return self._call("decode", fmt, codes, "--dtype", {np.float32: "f32", np.float64: "f64"}[dtype])


class Package:
    """The `lowp` Python package."""

    def __init__(self):
        import lowp

        self.lowp = lowp

    def encode(self, fmt: str, x: np.ndarray, mode: str = "nearest_even") -> np.ndarray:
        return self.lowp.encode(x, fmt, mode)

    def round(self, fmt: str, x: np.ndarray, mode: str = "nearest_even") -> np.ndarray:
        return self.lowp.round(x, fmt, mode)

    def decode(self, fmt: str, codes: np.ndarray, dtype) -> np.ndarray:
        return self.lowp.decode(codes, fmt, dtype)


@pytest.fixture(params=["cli", "python"])
def lowp_api(request, tmp_path):
    if request.param == "cli":
        return Cli(request.getfixturevalue("lowp_bin"), tmp_path)
    return Package()


# ---------------------------------------------------------------------------------------------------------
# Formats and their values


def np_type(fmt: str):
    return np.float16 if fmt == "float16" else getattr(ml_dtypes, fmt)


def bits_of(fmt: str) -> int:
    return 16 if fmt == "float16" else ml_dtypes.finfo(np_type(fmt)).bits


def code_dtype(fmt: str):
    return np.uint8 if bits_of(fmt) <= 8 else np.uint16


def nmant(fmt: str) -> int:
    return 10 if fmt == "float16" else ml_dtypes.finfo(np_type(fmt)).nmant


def fmt_max(fmt: str) -> float:
    return float(np.finfo(np.float16).max) if fmt == "float16" else float(ml_dtypes.finfo(np_type(fmt)).max)


def fmt_min_sub(fmt: str) -> float:
    if fmt == "float16":
        return float(np.finfo(np.float16).smallest_subnormal)
    return float(ml_dtypes.finfo(np_type(fmt)).smallest_subnormal)


def all_codes(fmt: str) -> np.ndarray:
    return np.arange(2 ** bits_of(fmt), dtype=code_dtype(fmt))


def ml_codes(x: np.ndarray, fmt: str) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return x.astype(np_type(fmt)).view(code_dtype(fmt))


def ml_decode(codes: np.ndarray, fmt: str, dtype) -> np.ndarray:
    return codes.astype(code_dtype(fmt)).view(np_type(fmt)).astype(dtype)


@functools.lru_cache(maxsize=None)
def finite_values(fmt: str) -> np.ndarray:
    """Sorted distinct finite values of the format (float64; -0 merged with +0)."""
    v = ml_decode(all_codes(fmt), fmt, np.float64)
    v = v[np.isfinite(v)]
    return np.unique(v)


@functools.lru_cache(maxsize=None)
def midpoints(fmt: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lower neighbour, midpoint, upper neighbour) for every adjacent pair of finite values, float64 (exact)."""
    v = finite_values(fmt)
    return v[:-1], (v[:-1] + v[1:]) / 2, v[1:]


# ---------------------------------------------------------------------------------------------------------
# Input batteries


def _around(v: np.ndarray, dtype) -> np.ndarray:
    """v in dtype plus the nearest dtype values on either side."""
    with np.errstate(over="ignore"):
        v = v.astype(dtype)
    return np.concatenate([v, np.nextafter(v, dtype(np.inf)), np.nextafter(v, dtype(-np.inf))])


@functools.lru_cache(maxsize=None)
def generic_inputs(dtype) -> np.ndarray:
    """Inputs shared by all formats: float16 and bfloat16 bit patterns, powers of two, subnormals, specials,
    random bit patterns."""
    rng = np.random.default_rng(SEED)
    half = np.arange(2**16, dtype=np.uint16).view(np.float16).astype(dtype)
    bf16 = (np.arange(2**16, dtype=np.uint32) << 16).view(np.float32).astype(dtype)
    fi = np.finfo(dtype)
    k = np.arange(fi.minexp - fi.nmant, fi.maxexp, dtype=np.float64)
    pows = np.ldexp(np.ones_like(k), k.astype(int))
    pows = _around(np.concatenate([pows, -pows]), dtype)
    subs = np.concatenate(
        [
            np.arange(1, 4096, dtype=np.uint64),
            rng.integers(1, 2**fi.nmant, size=4096, dtype=np.uint64),
        ]
    )
    ibits = np.uint32 if dtype == np.float32 else np.uint64
    subs = subs.astype(ibits).view(dtype)
    subs = np.concatenate([subs, -subs])
    specials = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan, fi.max, -fi.max, fi.tiny, -fi.tiny], dtype)
    # The §7 trap: half(2^-25 * 1.0001) must be 2^-24.
    traps = np.array([2.0**-25 * 1.0001, -(2.0**-25) * 1.0001, 65519.99, 65520.0, 65536.0], np.float64).astype(dtype)
    if dtype == np.float32:
        rbits = rng.integers(0, 2**32, size=N_RANDOM, dtype=np.uint64).astype(np.uint32).view(np.float32)
    else:
        rbits = rng.integers(0, 2**64 - 1, size=N_RANDOM, dtype=np.uint64, endpoint=True).view(np.float64)
    return np.concatenate([half, bf16, pows, subs, specials, traps, rbits])


@functools.lru_cache(maxsize=None)
def inputs(fmt: str, dtype) -> np.ndarray:
    """The full battery for one format and input type; NaN left out for formats without NaN."""
    rng = np.random.default_rng([SEED, bits_of(fmt), nmant(fmt), int(np.dtype(dtype).itemsize)])
    vals = ml_decode(all_codes(fmt), fmt, np.float64)
    vals = vals[~np.isnan(vals)]
    lo, mid, hi = midpoints(fmt)
    mx = fmt_max(fmt)
    ulp_max = 2.0 ** (np.floor(np.log2(mx)) - nmant(fmt))
    thr = np.array([mx + ulp_max / 2, mx + ulp_max, mx + ulp_max / 4, mx + 3 * ulp_max / 4, 2 * mx, 4 * mx])
    thr = np.concatenate([thr, -thr])
    lo_e = np.log2(fmt_min_sub(fmt)) - 3
    hi_e = np.log2(mx) + 3
    mag = np.exp2(rng.uniform(lo_e, hi_e, size=N_RANDOM))
    logu = np.where(rng.random(N_RANDOM) < 0.5, -mag, mag)
    with np.errstate(over="ignore"):
        parts = [
            generic_inputs(dtype),
            vals.astype(dtype),
            _around(mid, dtype),
            _around(thr, dtype),
            logu.astype(dtype),
        ]
    x = np.concatenate(parts)
    if fmt in NO_NAN:
        x = x[~np.isnan(x)]
    return np.ascontiguousarray(x)


def e8m0_ties(x: np.ndarray) -> np.ndarray:
    """Exact ties of float8_e8m0fnu: finite positive x = 1.5 * 2^k."""
    with np.errstate(invalid="ignore"):
        m, _ = np.frexp(x)
        return np.isfinite(x) & (x > 0) & (m == 0.75)


def e8m0_low_band(x: np.ndarray) -> np.ndarray:
    """2^-127 < x < 1.5 * 2^-127: nearer to 2^-127 (code 0), but ml_dtypes gives 2^-126 (code 1)."""
    with np.errstate(invalid="ignore"):
        return (x > 2.0**-127) & (x < 1.5 * 2.0**-127)


def round_to_odd_f32(x: np.ndarray) -> np.ndarray:
    """float64 -> float32 with round-to-odd. Rounding that to a format of at most 22 significand bits (and a
    range inside float32's, subnormals included) gives the correctly rounded result of x: the standard cure for
    double rounding, used here as an oracle for float64 inputs since ml_dtypes casts float64 through float32."""
    with np.errstate(over="ignore", invalid="ignore"):
        y = x.astype(np.float32)
        inexact = (y.astype(np.float64) != x) & ~np.isnan(x)
        yb = y.view(np.uint32).copy()
        too_far = inexact & (np.abs(y.astype(np.float64)) > np.abs(x))  # inf included
    yb[too_far] -= 1  # one step toward zero: truncation
    yb[inexact] |= 1  # sticky bit
    return yb.view(np.float32)


def expected_codes(x: np.ndarray, fmt: str, mode: str = "nearest_even") -> tuple[np.ndarray, dict]:
    """ml_dtypes' codes with the intended and the known differences applied, and a mask for each of them.

    - float64 input: ml_dtypes casts through float32 (double rounding); the oracle is ml_dtypes applied to
      round_to_odd_f32(x), i.e. ml_dtypes' own (correct) float32 path without the double rounding.
    - float8_e8m0fnu, nearest_even: on ties lowp takes the even code, ml_dtypes the upper one.
    - float8_e8m0fnu: on 2^-127 < x < 1.5 * 2^-127 lowp gives code 0 (2^-127, the nearer), ml_dtypes code 1.
    """
    masks = {}
    ml = ml_codes(x, fmt)
    if x.dtype == np.float64:
        codes = ml_codes(round_to_odd_f32(x), fmt)
        masks["ml_dtypes double rounding (float64 -> float32 -> fmt)"] = codes != ml
    else:
        codes = ml.copy()
    if fmt == E8M0:
        if mode == "nearest_even":
            tie = e8m0_ties(x)
            c = codes[tie]
            codes[tie] = np.where(c % 2 == 0, c, c - 1)
            masks["e8m0 ties to even code"] = tie
        band = e8m0_low_band(x)
        codes[band] = 0
        masks["e8m0 (2^-127, 1.5*2^-127)"] = band
    return codes, masks


def describe_mismatch(x: np.ndarray, want: np.ndarray, got: np.ndarray, what: str, limit: int = 12) -> str:
    bad = np.flatnonzero(want != got) if want.dtype.kind == "u" else np.flatnonzero(~same_values(want, got))
    ib = np.uint32 if x.dtype == np.float32 else np.uint64
    lines = [f"{len(bad)} of {x.size} differ ({what}); first ones:"]
    for i in bad[:limit]:
        xb = int(x[i : i + 1].view(ib)[0])
        lines.append(f"  x={x[i]!r} (bits 0x{xb:0{2 * x.itemsize}x}, {x.dtype}) want {want[i]!r} got {got[i]!r}")
    return "\n".join(lines)


def same_values(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Elementwise: both NaN, or bit-identical (so -0 != +0)."""
    ib = np.uint32 if a.dtype == np.float32 else np.uint64
    return (np.isnan(a) & np.isnan(b)) | (a.view(ib) == b.view(ib))


# numpy warns on every cast of NaN or of an overflowing value; both are deliberate here.
pytestmark = pytest.mark.filterwarnings(
    "ignore:invalid value encountered in cast:RuntimeWarning",
    "ignore:overflow encountered in cast:RuntimeWarning",
)

PARAMS = [pytest.param(f, d, id=f"{f}-{np.dtype(d).name}") for f in ML_FORMATS for d in DTYPES]


# ---------------------------------------------------------------------------------------------------------
# Codes and values against ml_dtypes


@pytest.mark.parametrize("fmt,dtype", PARAMS)
def test_encode_matches_ml_dtypes(lowp_api, fmt, dtype):
    x = inputs(fmt, dtype)
    got = lowp_api.encode(fmt, x)
    assert got.dtype == code_dtype(fmt) and got.shape == x.shape
    want, masks = expected_codes(x, fmt)
    assert np.array_equal(want, got), describe_mismatch(x, want, got, f"encode {fmt}")
    if fmt == E8M0:
        tie = masks["e8m0 ties to even code"]
        assert tie.sum() > 200  # the battery really contains ties
        assert np.all(got[tie & (got != 0xFF)] % 2 == 0)


@pytest.mark.parametrize("fmt,dtype", PARAMS)
def test_round_matches_ml_dtypes(lowp_api, fmt, dtype):
    x = inputs(fmt, dtype)
    got = lowp_api.round(fmt, x)
    assert got.dtype == x.dtype and got.shape == x.shape
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        want = x.astype(np_type(fmt)).astype(dtype)
    codes, masks = expected_codes(x, fmt)
    for m in masks.values():
        want[m] = ml_decode(codes[m], fmt, dtype)
    ok = same_values(want, got)
    assert ok.all(), describe_mismatch(x, want, got, f"round {fmt}")


@pytest.mark.parametrize("fmt,dtype", PARAMS)
def test_midpoint_neighbours_go_to_nearer_value(lowp_api, fmt, dtype):
    """Independent of ml_dtypes: just above a midpoint rounds up, just below rounds down (catches double
    rounding through float32 for float64 inputs)."""
    lo, mid, hi = midpoints(fmt)
    with np.errstate(over="ignore"):
        m = mid.astype(dtype)
    exact = m.astype(np.float64) == mid
    lo, mid, hi, m = lo[exact], mid[exact], hi[exact], m[exact]
    up = np.nextafter(m, dtype(np.inf))
    down = np.nextafter(m, dtype(-np.inf))
    x = np.concatenate([up, down])
    got = lowp_api.round(fmt, x).astype(np.float64)
    want = np.concatenate([hi, lo])
    ok = got == want  # -0 == +0 here: the nearer value, whichever zero the format has
    assert ok.all(), describe_mismatch(x, want, got, f"nearer neighbour {fmt}")


@pytest.mark.parametrize("fmt", ML_FORMATS)
def test_decode_matches_ml_dtypes(lowp_api, fmt):
    codes = all_codes(fmt)
    for dt in (np.float32, np.float64):
        got = lowp_api.decode(fmt, codes, dt)
        assert got.dtype == dt
        want = ml_decode(codes, fmt, dt)
        assert same_values(want, got).all(), describe_mismatch(want, want, got, f"decode {fmt}")


# ---------------------------------------------------------------------------------------------------------
# The intended differences, asserted on their own


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_e8m0_nearest_away_equals_ml_dtypes(lowp_api, dtype):
    x = inputs(E8M0, dtype)
    got = lowp_api.encode(E8M0, x, "nearest_away")
    want, _ = expected_codes(x, E8M0, mode="nearest_away")
    assert np.array_equal(want, got), describe_mismatch(x, want, got, "encode e8m0 nearest_away")
    # On the ties themselves (the intended difference under nearest_even) nearest_away is ml_dtypes exactly.
    tie = e8m0_ties(x) & (x > 2.0**-127) & (x <= 1.5 * 2.0**127)  # ties between two codes
    assert tie.sum() > 200
    assert np.array_equal(ml_codes(x[tie], E8M0), got[tie])


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_e8m0_ties_and_specials(lowp_api, dtype):
    k = np.arange(-127, 128)
    ties = 1.5 * np.ldexp(1.0, k)  # 1.5 * 2^k, between codes k+127 and k+128
    x = np.concatenate(
        [ties, [0.0, -0.0, -1.0, -np.inf, np.inf, np.nan, 2.0**-127, 2.0**-128, 2.0**-130, 1e-45]]
    ).astype(dtype)
    got = lowp_api.encode(E8M0, x)
    ml = ml_codes(x, E8M0)
    lower = (k + 127).astype(np.uint8)
    # ml_dtypes: ties up (k = 127 overflows to NaN); lowp: the even code of the pair.
    assert np.array_equal(ml[: len(k)], np.where(k < 127, lower + 1, 0xFF).astype(np.uint8))
    assert np.array_equal(got[: len(k)], np.where(lower % 2 == 0, lower, lower + 1).astype(np.uint8))
    # Zero, negatives, inf and NaN are NaN (0xFF) in both; below 2^-127 is code 0 (2^-127) in both.
    tail_ml = ml[len(k) :]
    tail_lowp = got[len(k) :]
    assert list(tail_ml) == [0xFF] * 6 + [0, 0, 0, 0]
    assert list(tail_lowp) == list(tail_ml)


@pytest.mark.parametrize("fmt", sorted(NO_NAN))
def test_no_nan_formats_reject_nan_on_encode(lowp_bin, tmp_path, fmt):
    src, dst = tmp_path / "in.npy", tmp_path / "out.npy"
    for dt in DTYPES:
        for nan in (np.nan, -np.nan):
            np.save(src, np.array([1.0, nan, 2.0], dt))
            r = run_lowp(lowp_bin, "encode", "-f", fmt, str(src), str(dst))
            assert r.returncode != 0
            assert "nan" in r.stderr.lower()
            assert not dst.exists()
    import lowp

    for dt in DTYPES:
        with pytest.raises(lowp.RepresentationError, match="NaN at index 1"):
            lowp.encode(np.array([1.0, np.nan, 2.0], dt), fmt)
    # ml_dtypes, for the record, gives NaN a code instead of failing (0x20 / 0x08: the -0 code for +NaN).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert ml_codes(np.array([np.nan], np.float32), fmt)[0] == 1 << (bits_of(fmt) - 1)


@pytest.mark.parametrize("fmt", sorted(NO_NAN))
def test_no_nan_formats_round_passes_nan_through(lowp_api, fmt):
    """`round` returns NaN inputs unchanged (the core's documented rule); only `encode` needs a code."""
    x = np.array([1.0, np.nan, -np.nan, np.inf, 100.0], np.float32)
    got = lowp_api.round(fmt, x)
    mx = np.float32(fmt_max(fmt))
    assert got[0] == 1.0 and np.isnan(got[1]) and np.isnan(got[2]) and got[3] == mx and got[4] == mx


# ---------------------------------------------------------------------------------------------------------
# ml_dtypes' own deviations from correct rounding (found by this suite; lowp is right on both)


@pytest.mark.parametrize("fmt", ML_FORMATS)
def test_ml_dtypes_casts_float64_through_float32(fmt):
    """ml_dtypes 0.6.0 converts float64 to every one of these formats via float32, so float64 inputs that
    float32 rounds onto a tie of the format are double-rounded. The correct result is ml_dtypes applied to
    the round-to-odd float32 of x; the two differ exactly at such inputs."""
    x = inputs(fmt, np.float64)
    ml = ml_codes(x, fmt)
    with np.errstate(over="ignore"):
        y = x.astype(np.float32)
    assert np.array_equal(ml, ml_codes(y, fmt))
    diff = ml != ml_codes(round_to_odd_f32(x), fmt)
    assert diff.sum() > 0
    y64 = y[diff].astype(np.float64)
    assert np.all(y64 != x[diff])
    if fmt == E8M0:
        # Its ties, plus two more points where ml_dtypes' float32 result jumps: 2^-127 (the edge of the band
        # in test_ml_dtypes_e8m0_rounds_up_above_min) and 0 (float32 underflow: tiny positive float64 values
        # become 0 and then NaN, where their own value gives code 0).
        decision = e8m0_ties(y64) | (y64 == 2.0**-127) | (y64 == 0)
    else:
        mx = fmt_max(fmt)
        thr = mx + 2.0 ** (np.floor(np.log2(mx)) - nmant(fmt)) / 2
        decision = np.isin(np.abs(y64), np.append(midpoints(fmt)[1], thr))
    bad = ~decision
    assert not bad.any(), describe_mismatch(x[diff][bad], ml[diff][bad], ml_codes(round_to_odd_f32(x), fmt)[diff][bad], "unexplained")


def test_ml_dtypes_e8m0_rounds_up_above_min(lowp_api):
    """ml_dtypes 0.6.0 gives 2^-126 (code 1) for every float32 in (2^-127, 2^-126), even below the tie
    1.5 * 2^-127 where 2^-127 (code 0) is nearer; lowp gives code 0 there and code 1 above the tie."""
    b = np.arange(0x00400000, 0x00800000, dtype=np.uint32)  # float32 subnormals 2^-127 .. 2^-126
    x = b.view(np.float32)
    ml = ml_codes(x, E8M0)
    assert np.all(ml[1:] == 1) and ml[0] == 0
    got = lowp_api.encode(E8M0, x)
    lo = x <= np.float32(1.5 * 2.0**-127)
    assert np.all(got[lo] == 0) and np.all(got[~lo] == 1)  # the tie 1.5 * 2^-127 goes to the even code 0


@pytest.mark.parametrize("fmt", [f for f in ML_FORMATS if f not in NO_NAN])
def test_nan_sign_handling(lowp_api, fmt):
    """NaN of either sign: same code as ml_dtypes (formats with a signed NaN keep the sign)."""
    ib = np.array([0x7FC00000, 0xFFC00000, 0x7F800001, 0xFF800001, 0x7FFFFFFF, 0xFFFFFFFF], np.uint32)
    x = ib.view(np.float32)
    for xx in (x, x.astype(np.float64)):
        got = lowp_api.encode(fmt, xx)
        assert np.array_equal(got, ml_codes(xx, fmt)), (fmt, xx.dtype, got, ml_codes(xx, fmt))


# ---------------------------------------------------------------------------------------------------------
# numpy's float16


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_float16_matches_numpy(lowp_api, dtype):
    x = inputs("float16", dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        h = x.astype(np.float16)
    got = lowp_api.round("float16", x)
    assert same_values(h.astype(dtype), got).all(), describe_mismatch(x, h.astype(dtype), got, "round float16")
    codes = lowp_api.encode("float16", x)
    want = h.view(np.uint16)
    nan = np.isnan(x)
    assert np.array_equal(want[~nan], codes[~nan]), describe_mismatch(
        x[~nan], want[~nan], codes[~nan], "encode float16"
    )
    # NaN: numpy keeps payload bits, lowp writes the quiet NaN 0x7E00 with the input's sign.
    assert np.all((codes[nan] & 0x7FFF) == 0x7E00)
    assert np.array_equal(codes[nan] >> 15, want[nan] >> 15)


def test_numpy_float16_rounds_float64_once():
    """numpy's float64 -> float16 cast is a single rounding (no detour through float32)."""
    lo, mid, hi = midpoints("float16")
    up = np.nextafter(mid, np.inf)
    down = np.nextafter(mid, -np.inf)
    assert np.array_equal(up.astype(np.float16).astype(np.float64), hi)
    assert np.array_equal(down.astype(np.float16).astype(np.float64), lo)


# ---------------------------------------------------------------------------------------------------------
# float16 data (the Python package takes float16 arrays: widened exactly, rounded, narrowed exactly)

ALL_HALF = np.arange(2**16, dtype=np.uint16).view(np.float16)


def fits_float16(fmt: str) -> bool:
    return fmt == "float16" or (nmant(fmt) <= 10 and fmt_max(fmt) <= 65504 and fmt != E8M0)


@pytest.mark.parametrize("fmt", ["float16"] + [f for f in ML_FORMATS if fits_float16(f)])
def test_float16_data_matches_ml_dtypes(fmt):
    import lowp

    x = ALL_HALF[~np.isnan(ALL_HALF)] if fmt in NO_NAN else ALL_HALF
    got = lowp.round(x, fmt)
    assert got.dtype == np.float16
    want, masks = expected_codes(x.astype(np.float32), fmt)
    assert not masks or not any(m.any() for m in masks.values())
    codes = lowp.encode(x, fmt)
    nan = np.isnan(x)
    assert np.array_equal(codes[~nan], want[~nan]), describe_mismatch(
        x[~nan].astype(np.float32), want[~nan], codes[~nan], f"encode f16 {fmt}"
    )
    assert np.isnan(ml_decode(codes[nan], fmt, np.float32)).all()  # NaN payloads: numpy keeps them, lowp not
    back = ml_decode(want, fmt, np.float16)
    ok = (np.isnan(back) & np.isnan(got)) | (back.view(np.uint16) == got.view(np.uint16))
    assert ok.all(), describe_mismatch(x.astype(np.float32), back.astype(np.float32), got.astype(np.float32), fmt)
    dec = lowp.decode(codes, fmt, np.float16)
    assert ((np.isnan(dec) & np.isnan(got)) | (dec.view(np.uint16) == got.view(np.uint16))).all()


@pytest.mark.parametrize("fmt", [f for f in ML_FORMATS if not fits_float16(f)])
def test_float16_data_refuses_formats_it_cannot_hold(fmt):
    import lowp

    with pytest.raises(lowp.DtypeError, match="float16"):
        lowp.round(ALL_HALF, fmt)
