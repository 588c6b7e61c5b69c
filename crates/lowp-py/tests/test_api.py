"""The Python package's contract: Format, round/encode/decode/pack/unpack, dtypes, shapes, strides, zero-copy
behaviour, seeds, errors. Bit-exactness against independent references lives in tests/python (ml_dtypes,
numpy, MPFR); the tests here compare the package with itself only where the property is structural."""

from __future__ import annotations

import pickle
import threading

import numpy as np
import pytest

import lowp

FLOATS = [np.float16, np.float32, np.float64]


# ---------------------------------------------------------------------------------------------------------
# Format


def test_format_properties_match_the_definitions():
    f = lowp.Format("float8_e4m3fn")
    assert (f.name, f.bits, f.exp_bits, f.man_bits, f.bias) == ("float8_e4m3fn", 8, 4, 3, 7)
    assert (f.max, f.min_normal, f.min_subnormal) == (448.0, 2.0**-6, 2.0**-9)
    assert (f.eps, f.unit_roundoff) == (2.0**-3, 2.0**-4)
    assert f.specials == "fn" and not f.has_inf and f.has_nan and f.signed
    h = lowp.Format("half")
    assert h.name == "float16" and h.max == float(np.finfo(np.float16).max)
    assert h.eps == float(np.finfo(np.float16).eps) and h.min_subnormal == float(np.finfo(np.float16).smallest_subnormal)


@pytest.mark.parametrize("name", lowp.formats())
def test_every_preset_parses_and_lists_its_values(name):
    f = lowp.Format(name)
    assert f.name == name
    assert lowp.Format(name) == f and hash(lowp.Format(name)) == hash(f)
    if f.bits <= 16:
        v = f.values()
        assert v.dtype == np.float64 and np.all(np.diff(v) > 0)  # ascending, distinct
        assert v[-1] == f.max and (v[0] == -f.max if f.signed else True)
        assert np.isfinite(v).all()
        codes, vals = f.code_table()
        # decode(code) is the listed value, for every code that is not NaN
        dec = lowp.decode(codes, f, np.float64)
        assert np.array_equal(dec.view(np.uint64), vals.view(np.uint64))
    else:
        with pytest.raises(lowp.OptionError, match="16 bits"):
            f.values()


def test_custom_and_chop_formats():
    assert np.array_equal(lowp.Format.custom(5, 10).values(), lowp.Format("float16").values())
    f = lowp.Format.custom(4, 3, specials="fn")
    assert f.max == 448.0
    g = lowp.Format.custom(4, 3, bias=11, specials="fnuz")
    assert g.max == 30.0 and g.min_subnormal == 2.0**-13
    assert lowp.Format.custom(2, 1, specials="none").max == 6.0
    assert not lowp.Format.custom(5, 10, subnormals=False).subnormals
    assert lowp.Format.custom(5, 10, saturate=True).saturate
    q43 = lowp.Format.from_chop(4, 7)
    assert q43.max == 240.0 and q43.emax == 7
    assert lowp.Format("q43").max == 240.0
    assert lowp.Format("binary8p3se").min_subnormal == 2.0**-17


def test_with_options_returns_a_new_format():
    f = lowp.Format("e5m2")
    g = f.with_options(subnormals=False, saturate=True, keep_inf=True, exponent_limit=False)
    assert f.subnormals and not f.saturate and f.exponent_limit
    assert (g.subnormals, g.saturate, g.keep_inf, g.exponent_limit) == (False, True, True, False)
    assert f != g


def test_repr_and_str_say_what_the_format_is():
    r = repr(lowp.Format("e4m3fn"))
    for part in ("float8_e4m3fn", "8 bits", "E4 M3", "bias 7", "max 448", "min subnormal 0.001953125"):
        assert part in r
    assert "no subnormals" in str(lowp.Format("fp16").with_options(subnormals=False))
    assert "3.4028234663852886e38" in repr(lowp.Format("float32"))


def test_formats_and_modes_lists():
    fs = lowp.formats()
    assert fs[:2] == ["float64", "float32"] and "float4_e2m1fn" in fs and len(fs) == len(set(fs))
    assert lowp.modes() == [
        "nearest_even", "toward_positive", "toward_negative", "toward_zero", "stochastic",
        "stochastic_equal", "nearest_zero", "nearest_away", "odd",
    ]  # fmt: skip


@pytest.mark.parametrize(
    "call,exc,match",
    [
        (lambda: lowp.Format("bfloat61"), lowp.FormatError, "did you mean `bfloat16`"),
        (lambda: lowp.Format("e0m3"), lowp.FormatError, "exponent"),
        (lambda: lowp.Format.custom(0, 3), lowp.FormatError, "exp"),
        (lambda: lowp.Format.custom(4, 3, specials="weird"), lowp.FormatError, "Accepted"),
        (lambda: lowp.Format.custom(2, 1, bias=5000), lowp.FormatError, "bias 5000"),
        (lambda: lowp.Format.from_chop(0, 15), lowp.FormatError, "t=0"),
        (lambda: lowp.round([1.0], "fp16", "nearest_eve"), lowp.OptionError, "did you mean `nearest_even`"),
        (lambda: lowp.round([1.0], "fp16", 12), lowp.OptionError, "1-9|1..=9|chop"),
        (lambda: lowp.round([1.0], "fp16", 3.5), lowp.OptionError, "mode must be"),
        (lambda: lowp.round([1.0], 16), lowp.FormatError, "fmt must be"),
        (lambda: lowp.round([1.0], "fp16", "stochastic:99"), lowp.OptionError, "stochastic:N"),
        (lambda: lowp.round([1.0], "fp16", flip_prob=1.5), lowp.OptionError, "prob"),
        (lambda: lowp.round([1.0], "fp16", flip_prob=0.5, flip_scope="exponent"), lowp.OptionError, "significand"),
        (lambda: lowp.round([1.0], "fp16", seed=-1), lowp.OptionError, "seed"),
        (lambda: lowp.round(np.arange(3), "fp16"), lowp.DtypeError, "int64"),
        (lambda: lowp.round(np.array(["a"]), "fp16"), lowp.DtypeError, "Accepted"),
        (lambda: lowp.round(np.ones(3, np.complex64), "fp16"), lowp.DtypeError, "complex64"),
        (lambda: lowp.round(np.ones(3, np.float32), "float64"), lowp.DtypeError, "mantissa bits"),
        (lambda: lowp.round(np.ones(3, np.float16), "bfloat16"), lowp.DtypeError, "float16"),
        (lambda: lowp.encode([np.nan], "e2m1"), lowp.RepresentationError, "NaN"),
        (lambda: lowp.encode([-1.0], "e8m0"), None, None),
        (lambda: lowp.decode(np.array([16], np.uint8), "e2m1"), lowp.RepresentationError, "4 bits"),
        (lambda: lowp.decode([-1], "e2m1"), lowp.RepresentationError, "non-negative"),
        (lambda: lowp.decode(np.ones(2), "e2m1"), lowp.DtypeError, "unsigned"),
        (lambda: lowp.decode([1], "e2m1", np.int32), lowp.DtypeError, "int32"),
        (lambda: lowp.decode([1], "e2m1", "nonsense"), lowp.DtypeError, "dtype"),
        (lambda: lowp.decode([1], "e8m0", np.float16), lowp.DtypeError, "float16"),
        (lambda: lowp.pack([1, 2], 9), lowp.OptionError, "bits"),
        (lambda: lowp.pack([16], 4), lowp.RepresentationError, "4 bits"),
        (lambda: lowp.pack([256], 8), lowp.RepresentationError, "fit"),
        (lambda: lowp.unpack(b"\x01", 4, 3), lowp.ShapeError, "need"),
        (lambda: lowp.unpack(np.ones(2, np.int32), 4, 1), lowp.DtypeError, "uint8"),
        (lambda: lowp.unpack(b"\x01", 4, -1), lowp.OptionError, "count"),
        (lambda: lowp.Format.custom(-1, 3), lowp.FormatError, "exp_bits=-1"),
        (lambda: lowp.Format.custom(5, 2**40), lowp.FormatError, "man_bits"),
        (lambda: lowp.Format.custom(5, 2, bias=2**40), lowp.FormatError, "bias"),
        (lambda: lowp.Format.from_chop(11, 2**31), lowp.FormatError, "emax"),
        (lambda: lowp.round([1.0], "fp16", flip_scope="bits"), lowp.OptionError, "flip_scope"),
        (lambda: lowp.round([1.0], "fp16", flip_prob="a"), lowp.OptionError, "flip_prob"),
        (lambda: lowp.unpack(b"\x01", 4, 2**70), lowp.OptionError, "count"),
        (lambda: lowp.round(np.ones(2, np.float16), lowp.Format("e5m2").with_options(exponent_limit=False)),
         lowp.DtypeError, "exponent limit"),
        (lambda: lowp.decode([1], "e5m2b25", np.float16), lowp.DtypeError, "cannot be decoded to float16"),
        (lambda: lowp.as_ml_dtypes(np.array([1], np.uint8), "e4m3b9"), lowp.FormatError, "ml_dtypes"),
        (lambda: lowp.as_ml_dtypes(np.array([1], np.uint16), "e4m3fn"), lowp.DtypeError, "uint16"),
    ],
)
def test_errors_are_clear_and_typed(call, exc, match):
    if exc is None:  # e8m0 gives negatives the NaN code, as ml_dtypes: not an error
        call()
        return
    with pytest.raises(exc, match=match) as info:
        call()
    assert isinstance(info.value, lowp.LowpError)


def test_flags_are_taken_by_truthiness():
    assert not lowp.Format.custom(5, 10, subnormals=0).subnormals
    assert lowp.Format.custom(5, 10, saturate=1).saturate
    assert lowp.Format("e5m2").with_options(saturate=1, subnormals=None).saturate
    assert lowp.round(1e6, "fp16", saturate=1) == 65504.0


def test_formats_pickle():
    fmts = [lowp.Format(n) for n in lowp.formats()] + [
        lowp.Format.custom(4, 3, bias=11, specials="fnuz"),
        lowp.Format.from_chop(11, 15),
        lowp.Format("e5m2").with_options(subnormals=False, saturate=True, keep_inf=True),
        lowp.Format("fp16").with_options(exponent_limit=False),
    ]
    for f in fmts:
        g = pickle.loads(pickle.dumps(f))
        assert g == f and repr(g) == repr(f)


def test_busy_arrays_raise_instead_of_crashing():
    """The bindings borrow arrays (rust-numpy); an array already borrowed for writing, or read-only, is an
    error. Reached here through the private entry point with the same array as input and output."""
    f = lowp.Format("bf16")
    a = np.ones(10)
    with pytest.raises(lowp.LowpError, match="cannot"):
        lowp._lowp.round_array(a, a, "float64", f, "nearest_even", 0, 0.0, "significand")
    ro = np.ones(10)
    ro.flags.writeable = False
    with pytest.raises(lowp.LowpError, match="read-only"):
        lowp._lowp.round_array(ro, None, "float64", f, "nearest_even", 0, 0.0, "significand")
    short = np.empty(3, np.uint16)
    with pytest.raises(lowp.ShapeError):
        lowp._lowp.round_array(np.ones(10, np.float16).view(np.uint16), short, "float16", lowp.Format("e5m2"),
                               "nearest_even", 0, 0.0, "significand")  # fmt: skip


def test_float16_nan_payloads_come_back_unchanged():
    h = np.arange(2**16, dtype=np.uint16).view(np.float16)
    nan = np.isnan(h)
    for fmt in ("float16", "e5m2", "e4m3fn"):
        y = lowp.round(h, fmt)
        assert np.array_equal(y.view(np.uint16)[nan], h.view(np.uint16)[nan]), fmt


def test_big_endian_data_in_place_and_out():
    a = np.random.default_rng(9).standard_normal(100)
    want = lowp.round(a, "e4m3fn")
    be = a.astype(">f8")
    assert lowp.round(be, "e4m3fn", out=be) is be and np.array_equal(be.astype("<f8"), want)
    out = np.empty(100, ">f4")
    lowp.round(a.astype(np.float32), "e4m3fn", out=out)
    assert np.array_equal(out.astype(np.float64), want)


def test_exception_hierarchy():
    assert issubclass(lowp.FormatError, ValueError) and issubclass(lowp.FormatError, lowp.LowpError)
    assert issubclass(lowp.OptionError, ValueError) and issubclass(lowp.ShapeError, ValueError)
    assert issubclass(lowp.RepresentationError, ValueError)
    assert issubclass(lowp.DtypeError, TypeError) and issubclass(lowp.DtypeError, lowp.LowpError)
    e = pickle.loads(pickle.dumps(lowp.FormatError("x")))
    assert isinstance(e, lowp.FormatError) and lowp.FormatError.__module__ == "lowp"


# ---------------------------------------------------------------------------------------------------------
# round: dtypes, shapes, strides, out=


def _reference(x: np.ndarray, fmt: str) -> np.ndarray:
    """Element by element, in float64: an independent path through the same core (one call per element)."""
    flat = np.asarray(x, np.float64).reshape(-1)
    return np.array([lowp.round(float(v), fmt) for v in flat]).reshape(np.shape(x))


@pytest.mark.parametrize("dtype", FLOATS)
def test_round_keeps_dtype_and_shape(dtype):
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((3, 4, 5)) * 10).astype(dtype)
    y = lowp.round(x, "e4m3fn")
    assert y.dtype == dtype and y.shape == x.shape and y.flags.c_contiguous
    assert np.array_equal(y.astype(np.float64), _reference(x, "e4m3fn"))
    assert not np.shares_memory(x, y)


@pytest.mark.parametrize("dtype", FLOATS)
def test_round_handles_any_strides(dtype):
    rng = np.random.default_rng(2)
    base = (rng.standard_normal((8, 10)) * 4).astype(dtype)
    for x in (base[::2, 1::3], base.T, base[:, ::-1], np.asfortranarray(base), base[3]):
        y = lowp.round(x, "e2m1")
        assert y.shape == x.shape and y.dtype == dtype
        assert np.array_equal(y, lowp.round(np.ascontiguousarray(x), "e2m1"))
        assert np.array_equal(y.astype(np.float64), _reference(x, "e2m1"))


def test_round_scalars_and_lists():
    assert lowp.round(0.1, "bf16") == 0.10009765625 and isinstance(lowp.round(0.1, "bf16"), np.float64)
    y32 = lowp.round(np.float32(0.1), "bf16")
    assert isinstance(y32, np.float32) and y32 == np.float32(0.10009765625)
    assert lowp.round(3, "e2m1") == 3.0
    assert np.array_equal(lowp.round([1, 2.6, 5.5], "e2m1"), [1.0, 3.0, 6.0])
    assert lowp.round([[0.1]], "e2m1").shape == (1, 1)
    assert lowp.round(np.array([], np.float32), "e2m1").shape == (0,)
    z = lowp.round(np.zeros((0, 3)), "fp16")
    assert z.shape == (0, 3) and z.dtype == np.float64


def test_round_non_native_byte_order():
    x = np.array([0.1, 1000.0], dtype=">f8")
    assert np.array_equal(lowp.round(x, "fp16"), lowp.round(x.astype("<f8"), "fp16"))


@pytest.mark.parametrize("dtype", FLOATS)
def test_out_writes_in_place_without_copies(dtype):
    rng = np.random.default_rng(3)
    x = rng.standard_normal(1000).astype(dtype)
    want = lowp.round(x, "e5m2")
    out = np.empty_like(x)
    r = lowp.round(x, "e5m2", out=out)
    assert r is out and np.array_equal(out, want)
    buf = x.copy()
    r = lowp.round(buf, "e5m2", out=buf)  # in place
    assert r is buf and np.array_equal(buf, want)
    # strided out and strided in place
    big = np.zeros(2000, dtype)
    lowp.round(x, "e5m2", out=big[::2])
    assert np.array_equal(big[::2], want) and not big[1::2].any()
    s = np.repeat(x, 2)
    view = s[::2]
    lowp.round(view, "e5m2", out=view)
    assert np.array_equal(s[::2], want) and np.array_equal(s[1::2], x)
    # overlapping but different layout
    y = x.copy()
    lowp.round(y[:-1], "e5m2", out=y[1:])
    assert np.array_equal(y[1:], want[:-1])


def test_out_errors():
    x = np.ones(4)
    with pytest.raises(lowp.DtypeError, match="float32"):
        lowp.round(x, "fp16", out=np.empty(4, np.float32))
    with pytest.raises(lowp.ShapeError, match=r"\(5,\)"):
        lowp.round(x, "fp16", out=np.empty(5))
    ro = np.empty(4)
    ro.flags.writeable = False
    with pytest.raises(lowp.OptionError, match="read-only"):
        lowp.round(x, "fp16", out=ro)
    with pytest.raises(lowp.DtypeError, match="numpy array"):
        lowp.round(x, "fp16", out=[0.0] * 4)


def test_subnormals_and_saturate_override_the_format():
    assert lowp.round(1e-6, "fp16", subnormals=False) == 0.0
    assert lowp.round(2.0**-15, "fp16", subnormals=False) == 2.0**-14  # chop's rule: >= min_normal/2 -> min_normal
    assert lowp.round(1e6, "fp16", saturate=True) == 65504.0
    assert np.isinf(lowp.round(1e6, "fp16"))


def test_every_mode_by_name_alias_and_chop_code():
    x = np.array([2.5, -2.5, 2.25, -2.75])  # e2m1 neighbours 2, 3
    want = {
        "nearest_even": [2, -2, 2, -3], "toward_positive": [3, -2, 3, -2], "toward_negative": [2, -3, 2, -3],
        "toward_zero": [2, -2, 2, -2], "nearest_zero": [2, -2, 2, -3], "nearest_away": [3, -3, 2, -3],
        "odd": [3, -3, 3, -3],
    }  # fmt: skip
    for code, name in enumerate(lowp.modes(), start=1):
        if name in want:
            assert lowp.round(x, "e2m1", name).tolist() == want[name]
            assert lowp.round(x, "e2m1", code).tolist() == want[name]
    assert lowp.round(x, "e2m1", "rne").tolist() == want["nearest_even"]
    assert lowp.round(x, "e2m1", "up").tolist() == want["toward_positive"]


# ---------------------------------------------------------------------------------------------------------
# Seeds and stochastic rounding


def test_seeded_calls_reproduce_and_unseeded_calls_differ():
    x = np.full(10_000, 1.0 + 2.0**-9, np.float32)  # a quarter of the way from 1 to the next fp16 value... of bf16
    a = lowp.round(x, "bf16", "stochastic", seed=7)
    b = lowp.round(x, "bf16", "stochastic", seed=7)
    c = lowp.round(x, "bf16", "stochastic", seed=8)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    u1 = lowp.round(x, "bf16", "stochastic")
    u2 = lowp.round(x, "bf16", "stochastic")
    assert not np.array_equal(u1, u2)
    lowp.seed(123)
    s1 = lowp.round(x, "bf16", "stochastic")
    lowp.seed(123)
    s2 = lowp.round(x, "bf16", "stochastic")
    assert np.array_equal(s1, s2)
    # The two neighbours, up with probability 1/4 (x is a quarter of an ulp above 1).
    assert set(np.unique(a)) <= {1.0, 1.0 + 2.0**-7}
    assert abs((a > 1).mean() - 0.25) < 0.02


def test_element_results_do_not_depend_on_array_length_or_dtype_path():
    x = np.linspace(-3, 3, 200_001)
    whole = lowp.round(x, "e4m3fn", "stochastic", seed=5)
    head = lowp.round(x[:1000], "e4m3fn", "stochastic", seed=5)
    assert np.array_equal(whole[:1000], head)
    flipped = lowp.round(x, "e4m3fn", flip_prob=1.0, seed=3)
    assert np.mean(flipped != lowp.round(x, "e4m3fn")) > 0.9


def test_soft_errors_honour_the_probability():
    x = np.linspace(1, 2, 100_000, endpoint=False)
    y = lowp.round(x, "bf16")
    z = lowp.round(x, "bf16", flip_prob=0.1, seed=9)
    frac = np.mean(y != z)
    assert 0.095 < frac < 0.105
    code = lowp.round(x, "bf16", flip_prob=0.1, seed=9, flip_scope="code")
    assert 0.08 < np.mean(y != code) < 0.105


def test_round_releases_the_interpreter_lock():
    """A Python thread keeps running while a long round call is in the core."""
    x = np.random.default_rng(0).standard_normal(20_000_000)
    ticks = []
    stop = threading.Event()

    def ticker():
        while not stop.is_set():
            ticks.append(1)

    t = threading.Thread(target=ticker)
    t.start()
    before = len(ticks)
    for _ in range(3):
        lowp.round(x, "bf16", "stochastic", seed=1)
    during = len(ticks) - before
    stop.set()
    t.join()
    assert during > 1000


# ---------------------------------------------------------------------------------------------------------
# encode, decode, pack, unpack, as_ml_dtypes


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("fmt", ["e4m3fn", "e5m2", "e2m1", "e3m2", "fp16", "binary8p3se", "e5m10"])
def test_decode_of_encode_is_round(dtype, fmt):
    f = lowp.Format(fmt)
    rng = np.random.default_rng(4)
    x = (rng.standard_normal((7, 9)) * 3).astype(dtype)
    codes = lowp.encode(x, fmt)
    assert codes.shape == x.shape and codes.dtype == (np.uint8 if f.bits <= 8 else np.uint16)
    back = lowp.decode(codes, fmt, dtype)
    assert back.dtype == dtype and np.array_equal(back, lowp.round(x, fmt))


def test_encode_code_widths():
    assert lowp.encode([1.0], "float32").dtype == np.uint32
    assert lowp.encode([1.0], "float64").dtype == np.uint64
    assert lowp.encode(1.0, "float32") == 0x3F800000
    assert lowp.encode([1.0], "e8m7").dtype == np.uint16


def test_decode_accepts_python_ints_and_ml_dtypes_arrays():
    ml_dtypes = pytest.importorskip("ml_dtypes")
    assert lowp.decode([0x38, 0x7E], "e4m3fn").tolist() == [1.0, 448.0]
    a = np.array([1.5, -3.0], ml_dtypes.float8_e4m3fn)
    assert lowp.decode(a, "e4m3fn").tolist() == [1.5, -3.0]


@pytest.mark.parametrize("bits", range(1, 9))
def test_pack_unpack_roundtrip_and_layout(bits):
    rng = np.random.default_rng(bits)
    codes = rng.integers(0, 2**bits, size=101, dtype=np.uint8)
    packed = lowp.pack(codes, bits)
    assert packed.dtype == np.uint8 and packed.size == (101 * bits + 7) // 8
    assert np.array_equal(lowp.unpack(packed, bits, 101), codes)
    assert np.array_equal(lowp.unpack(packed.tobytes(), bits, 101), codes)
    # FORMATS.md §5 by definition: element i occupies bits [i*b, (i+1)*b), LSB first.
    stream = np.unpackbits(packed, bitorder="little")
    for i in (0, 1, 50, 100):
        field = stream[i * bits : (i + 1) * bits]
        assert int(sum(int(b) << k for k, b in enumerate(field))) == codes[i]


def test_pack_takes_codes_in_c_order():
    codes = np.arange(16, dtype=np.uint8).reshape(4, 4)
    assert np.array_equal(lowp.pack(codes.T, 4), lowp.pack(np.ascontiguousarray(codes.T), 4))
    assert lowp.pack(np.array([1, 2]), 4).tolist() == [0x21]


def test_as_ml_dtypes_views_without_copying():
    ml_dtypes = pytest.importorskip("ml_dtypes")
    x = np.array([0.1, -2.0, 448.0])
    for name in ("float8_e4m3fn", "e4m3fn", "float4_e2m1fn", "bfloat16", "float8_e8m0fnu"):
        codes = lowp.encode(np.abs(x), name, saturate=True)
        v = lowp.as_ml_dtypes(codes, name)
        assert np.shares_memory(v, codes)
        assert v.dtype == np.dtype(getattr(ml_dtypes, lowp.Format(name).name))
        assert np.array_equal(v.astype(np.float64), lowp.decode(codes, name, np.float64), equal_nan=True)
    h = lowp.as_ml_dtypes(lowp.encode(x, "fp16"), "fp16")
    assert h.dtype == np.float16 and h.tolist() == lowp.round(x, "fp16").tolist()
    with pytest.raises(lowp.FormatError, match="tf32"):
        lowp.as_ml_dtypes(lowp.encode([1.0], "tf32"), "tf32")
    # a custom format with the same fields as a preset views as that preset
    assert lowp.as_ml_dtypes(lowp.encode([1.0], "e5m2"), lowp.Format.custom(5, 2)).dtype == ml_dtypes.float8_e5m2
