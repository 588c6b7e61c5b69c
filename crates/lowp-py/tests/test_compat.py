"""lowp.compat: Pychop's argument forms, correctly rounded results, and the cases where Pychop 0.6 is wrong.

Correctness is checked against independent references (NumPy's float16/float32 casts, ml_dtypes, and
arithmetic on the inputs' bits); Pychop itself, when installed, is compared on inputs where it is right
(so code ported by changing the import gives the same numbers) and on FORMATS.md §7's traps (where it is not).
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest

import lowp
from lowp.compat import Chop, Customs, FaultChop, backend

HALF_INPUTS = np.concatenate(
    [
        np.random.default_rng(0).standard_normal(20_000) * 1000,
        np.ldexp(np.random.default_rng(1).uniform(1, 2, 5000), np.random.default_rng(2).integers(-30, 17, 5000)),
        [65519.0, 65520.0, 65536.0, 2.0**-25 * 1.0001, 2.0**-25, 2.0**-26, -0.0, 0.0, 1e-310, np.inf, -np.inf],
    ]
)


def f16(x):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.asarray(x).astype(np.float16).astype(np.float64)


def bitwise_equal(a, b) -> bool:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return bool(np.all((a.view(np.uint64) == b.view(np.uint64)) | (np.isnan(a) & np.isnan(b))))


# ---------------------------------------------------------------------------------------------------------
# Argument forms


def test_chop_half_equals_numpy_float16():
    assert bitwise_equal(Chop(5, 10)(HALF_INPUTS), f16(HALF_INPUTS))
    assert bitwise_equal(Chop(exp_bits=5, sig_bits=10, rmode=1, subnormal=True, random_state=42)(HALF_INPUTS), f16(HALF_INPUTS))
    assert Chop(5, 10).u == 2.0**-11


@pytest.mark.parametrize("prec", ["h", "half", "fp16"])
def test_faultchop_half_names(prec):
    c = FaultChop(prec)
    assert bitwise_equal(c(HALF_INPUTS), f16(HALF_INPUTS))
    assert (c.t, c.emax, c.u) == (11, 15, 2.0**-11)


@pytest.mark.parametrize("prec", ["s", "single", "fp32"])
def test_faultchop_single_equals_numpy_float32(prec):
    x = np.random.default_rng(3).standard_normal(10_000) * np.exp2(np.random.default_rng(4).integers(-140, 120, 10_000))
    with np.errstate(over="ignore"):
        assert bitwise_equal(FaultChop(prec)(x), x.astype(np.float32).astype(np.float64))


@pytest.mark.parametrize("prec", ["d", "double", "fp64"])
def test_faultchop_double_is_identity(prec):
    assert bitwise_equal(FaultChop(prec)(HALF_INPUTS), HALF_INPUTS)


@pytest.mark.parametrize("prec,ml_name", [("q43", "float8_e4m3"), ("fp8-e4m3", "float8_e4m3"),
                                          ("q52", "float8_e5m2"), ("fp8-e5m2", "float8_e5m2")])  # fmt: skip
def test_faultchop_quarter_precisions_equal_ml_dtypes(prec, ml_name):
    ml_dtypes = pytest.importorskip("ml_dtypes")
    x = np.random.default_rng(5).standard_normal(20_000).astype(np.float32) * 64
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        want = x.astype(getattr(ml_dtypes, ml_name)).astype(np.float32)
    assert bitwise_equal(FaultChop(prec)(x), want)
    assert FaultChop("q43").format.max == 240.0  # MATLAB chop's q43 is the IEEE-like E4M3, not OCP's 448


def test_bfloat16_defaults_to_no_subnormals_as_in_chop():
    b = FaultChop("b")
    assert not b.subnormal and not b.format.subnormals
    tiny = np.array([1e-40, 3e-39, 6e-39, 2.0**-126])
    # {0} U normals, with min_normal/2 = 2^-127 as the threshold (chop's rule)
    assert FaultChop("b")(tiny).tolist() == [0.0, 0.0, 2.0**-126, 2.0**-126]
    assert FaultChop("b", subnormal=True)(np.array([1e-40]))[0] == 1e-40 // 2.0**-133 * 2.0**-133
    assert FaultChop("bf16").subnormal is False


def test_customs_forms():
    half = f16(HALF_INPUTS)
    assert bitwise_equal(FaultChop(customs=Customs(t=11, emax=15))(HALF_INPUTS), half)
    assert bitwise_equal(FaultChop(customs=Customs(exp_bits=5, sig_bits=10))(HALF_INPUTS), half)
    assert bitwise_equal(FaultChop(customs=Customs(exp_bits=5, t=11))(HALF_INPUTS), half)
    assert bitwise_equal(FaultChop(customs=Customs(emax=15, sig_bits=10))(HALF_INPUTS), half)
    c = FaultChop(customs=Customs(t=4, emax=7))
    assert c.format.max == 240.0 and (c.t, c.emax) == (4, 7)
    with pytest.raises(lowp.FormatError, match="Customs needs"):
        FaultChop(customs=Customs(t=11))


def test_unknown_prec_and_rmode_are_clear_errors():
    with pytest.raises(lowp.FormatError, match="unknown format"):
        FaultChop("quarter")
    with pytest.raises(lowp.OptionError, match="rmode 11"):
        Chop(5, 10, rmode=11)
    with pytest.raises(lowp.OptionError, match="did you mean"):
        FaultChop("h", rmode="nearst")
    with pytest.raises(lowp.OptionError, match="p must be"):
        FaultChop("h", flip=True, p=2.0)
    assert FaultChop("e4m3fn").format.max == 448.0  # any lowp format name works too


def test_rmode_codes_and_names_agree():
    x = HALF_INPUTS
    names = {1: "nearest", 2: "plus_inf", 3: "minus_inf", 4: "toward_zero"}
    for code, name in names.items():
        assert bitwise_equal(FaultChop("h", rmode=code)(x), FaultChop("h", rmode=name)(x))
    for code, mode in enumerate(lowp.modes(), start=1):
        if "stochastic" not in mode:
            assert bitwise_equal(Chop(5, 10, rmode=code)(x), lowp.round(x, lowp.Format.custom(5, 10), mode))


def test_directed_and_tie_modes_are_correct_for_negative_numbers():
    """The §7 trap: ties toward zero and away from zero swapped for negative numbers."""
    t = 1 + 2.0**-11  # a tie in half
    x = np.array([t, -t, 2.0 - 2.0**-11 - 2.0**-12, -1.5 * 2.0**-24])
    assert Chop(5, 10, rmode=7)(x).tolist() == [1.0, -1.0, 2.0 - 2.0**-10, -(2.0**-24)]
    assert Chop(5, 10, rmode=8)(x).tolist() == [1 + 2.0**-10, -(1 + 2.0**-10), 2.0 - 2.0**-10, -(2.0**-23)]
    assert Chop(5, 10, rmode=2)(np.array([-t]))[0] == -1.0
    assert Chop(5, 10, rmode=3)(np.array([t]))[0] == 1.0


def test_round_to_odd_keeps_exact_values():
    exact = f16(HALF_INPUTS[np.isfinite(HALF_INPUTS)])
    assert bitwise_equal(Chop(5, 10, rmode=9)(exact), exact)


def test_underflow_and_overflow_traps():
    c = FaultChop("h")
    y = c(np.array([2.0**-25 * 1.0001, 65520.0, 65519.99, 1e-310, -1e-310, -0.0, 2.0**-24 * 0.5]))
    assert y[0] == 2.0**-24  # one rounding, no flush of a value above half the min subnormal
    assert np.isinf(y[1]) and y[2] == 65504.0
    assert y[3] == 0.0 and np.signbit(y[4]) and np.signbit(y[5])  # float64 subnormals: no NaN, sign kept
    assert y[6] == 0.0  # the exact tie at half the min subnormal goes to even (zero)
    below = np.nextafter(np.exp2(np.arange(-24.0, 16.0)), 0)  # just below powers of two: the log2 trap
    assert bitwise_equal(c(below), f16(below))
    assert FaultChop("h", rmode=4)(np.array([1e6]))[0] == 65504.0  # toward zero never overflows to inf


def test_explim_off_rounds_the_significand_only():
    x = np.array([1e6, 1e-12, 3.0e-30])
    y = FaultChop("h", explim=0)(x)
    m, e = np.frexp(x)  # 11 significant bits by arithmetic on the significand
    assert y.tolist() == np.ldexp(np.round(m * 2048) / 2048, e).tolist()


def test_stochastic_draws_fresh_bits_per_call_and_is_seeded_per_object():
    x = np.full(4000, 1 + 2.0**-12)  # a quarter of the way between 1 and 1 + 2^-10
    c = Chop(5, 10, rmode=5, random_state=1)
    a, b = c(x), c(x)
    assert not np.array_equal(a, b)
    assert set(np.unique(np.concatenate([a, b]))) == {1.0, 1 + 2.0**-10}
    assert abs((a > 1).mean() - 0.25) < 0.03
    d = Chop(5, 10, rmode=5, random_state=1)
    assert np.array_equal(d(x), a) and np.array_equal(d(x), b)  # same seed, same sequence
    assert not np.array_equal(Chop(5, 10, rmode=5, random_state=2)(x), a)
    for rmode in (6, 10, "stoc_equal", "cadna"):
        s = FaultChop("h", rmode=rmode, random_state=3)(x)
        assert abs((s > 1).mean() - 0.5) < 0.04
        assert FaultChop("h", rmode=rmode)(np.array([1.5]))[0] == 1.5  # exact values stay


def test_randfunc_supplies_the_random_numbers():
    """MATLAB chop's rule: the magnitude goes up (away from zero) when r <= fraction (mode 5) or r <= 1/2."""
    x = np.array([1 + 2.0**-12, -(1 + 2.0**-12), 1.0])  # a quarter of the way up in magnitude; exact
    up = FaultChop("h", rmode=5, randfunc=lambda n: np.zeros(n))(x)
    down = FaultChop("h", rmode=5, randfunc=lambda n: np.full(n, 0.999))(x)
    at = FaultChop("h", rmode=5, randfunc=lambda n: np.full(n, 0.25))(x)  # r == fraction: up
    assert up.tolist() == [1 + 2.0**-10, -(1 + 2.0**-10), 1.0]
    assert down.tolist() == [1.0, -1.0, 1.0]
    assert at.tolist() == up.tolist()
    half = FaultChop("h", rmode=6, randfunc=lambda n: np.full(n, 0.5))(x)
    assert half.tolist() == up.tolist()
    # Above max, the upper neighbour is max + ulp(max) = 65536, and going up overflows to inf.
    over = np.array([65530.0, -65530.0])  # 26/32 of the way from 65504 to 65536
    assert FaultChop("h", rmode=5, randfunc=lambda n: np.zeros(n))(over).tolist() == [np.inf, -np.inf]
    assert FaultChop("h", rmode=5, randfunc=lambda n: np.full(n, 0.9))(over).tolist() == [65504.0, -65504.0]
    assert np.isnan(FaultChop("e4m3fn", rmode=5, randfunc=lambda n: np.zeros(n))(np.array([460.0]))[0])
    # types come back as they went in
    y = FaultChop("h", rmode=5, randfunc=lambda n: np.zeros(n))(np.array([0.1], np.float32))
    assert y.dtype == np.float32
    assert np.ndim(FaultChop("h", rmode=5, randfunc=lambda n: np.zeros(n))(0.1)) == 0


def test_flip_probability_is_honoured_and_fresh_per_call():
    x = np.linspace(1, 2, 50_000, endpoint=False)
    c = FaultChop("h", flip=True, p=0.2, random_state=5)
    clean = f16(x)
    a, b = c(x), c(x)
    assert 0.19 < np.mean(a != clean) < 0.21 and not np.array_equal(a, b)
    # a flipped significand bit keeps sign and exponent
    assert np.all(np.floor(np.log2(a)) == np.floor(np.log2(clean)))
    assert np.array_equal(FaultChop("h", flip=False, p=0.9)(x), clean)


def test_inputs_of_every_kind():
    c = Chop(5, 10)
    assert c([1.0, 65520.0]).tolist() == [1.0, np.inf]
    assert c(0.1) == f16(0.1)
    y32 = c(np.array([0.1], np.float32))
    assert y32.dtype == np.float32 and y32[0] == np.float32(f16(0.1))
    assert c(np.array([3, 70000])).tolist() == [3.0, np.inf]  # integer arrays are taken as float64
    assert c(np.ones((2, 3))[:, ::2]).shape == (2, 2)


def test_customs_refuses_positional_arguments():
    with pytest.raises(lowp.OptionError, match="keyword"):
        Customs(15, 11)


def test_formats_wider_than_the_data_round_in_float64_as_pychop_does():
    x32 = np.random.default_rng(8).standard_normal(1000).astype(np.float32)
    y = FaultChop("d")(x32)
    assert y.dtype == np.float32 and np.array_equal(y, x32)
    h = np.array([0.1, 65504.0, 3.0], np.float16)
    b = Chop(8, 7)(h)  # bfloat16 results stored back in float16 (65504 -> 65536 -> inf, as in Pychop)
    assert b.dtype == np.float16
    assert b.tolist()[0] == float(np.float16(lowp.round(0.1, "bf16"))) and np.isinf(b[1]) and b[2] == 3.0


def test_objects_pickle():
    import pickle

    c = FaultChop("h", rmode=5, random_state=3)
    d = pickle.loads(pickle.dumps(c))
    x = np.full(1000, 1 + 2.0**-12)
    assert np.array_equal(c(x), d(x))


def test_backend_calls_are_accepted():
    import lowp.compat as pychop  # scripts that call pychop.backend(...) run after changing the import

    pychop.backend("numpy", 1)
    assert pychop.get_backend() == "numpy"
    backend("torch")
    with pytest.raises(lowp.OptionError, match="jax"):
        backend("jax")


def test_verbose_prints_the_unit_roundoff(capsys):
    Chop(5, 10, verbose=1)
    FaultChop("b", verbose=True)
    out = capsys.readouterr().out
    assert "4.882812e-04" in out and "3.906250e-03" in out


def test_torch_tensors_in_torch_tensors_out():
    torch = pytest.importorskip("torch")
    t = torch.tensor([0.1, 65520.0], dtype=torch.float32)
    y = Chop(5, 10)(t)
    assert isinstance(y, torch.Tensor) and y.dtype == torch.float32
    assert y[0].item() == np.float32(f16(0.1)) and np.isinf(y[1].item())


# ---------------------------------------------------------------------------------------------------------
# Against Pychop 0.6 itself


@pytest.fixture(scope="module")
def pychop():
    os.environ.setdefault("chop_backend", "numpy")
    return pytest.importorskip("pychop")


def test_pychop_agrees_away_from_its_traps(pychop):
    """Normal-range values away from ties: the same numbers, so ported code reproduces its results."""
    rng = np.random.default_rng(6)
    x = rng.uniform(1, 2, 20_000) * np.exp2(rng.integers(-10, 10, 20_000)) * rng.choice([-1, 1], 20_000)
    for code in (1, 2, 3, 4):
        theirs = pychop.Chop(5, 10, rmode=code)(x.copy())
        assert bitwise_equal(Chop(5, 10, rmode=code)(x), theirs), code
        theirs = pychop.FaultChop("h", rmode=code)(x.copy())
        assert bitwise_equal(FaultChop("h", rmode=code)(x), theirs), code


def test_pychop_falls_into_the_traps_lowp_avoids(pychop):
    """FORMATS.md §7, observed in Pychop 0.6 and documented in docs/python.md; lowp's answer is NumPy's."""
    t = 1 + 2.0**-11
    cases = [
        # (what, pychop call, input, lowp's correct answer)
        ("65520 to inf in half (Chop)", lambda x: pychop.Chop(5, 10)(x), 65520.0, np.inf),
        ("double rounding below the subnormals", lambda x: pychop.FaultChop("h")(x), 2.0**-25 * 1.0001, 2.0**-24),
        ("ties toward zero, negative", lambda x: pychop.Chop(5, 10, rmode=7)(x), -t, -1.0),
        ("ties away, negative", lambda x: pychop.Chop(5, 10, rmode=8)(x), -t, -(1 + 2.0**-10)),
        ("Customs(exp_bits=5): emax", lambda x: pychop.FaultChop(customs=pychop.Customs(exp_bits=5, sig_bits=10))(x),
         65520.0, np.inf),
    ]  # fmt: skip
    ours = {
        "65520 to inf in half (Chop)": lambda x: Chop(5, 10)(x),
        "double rounding below the subnormals": lambda x: FaultChop("h")(x),
        "ties toward zero, negative": lambda x: Chop(5, 10, rmode=7)(x),
        "ties away, negative": lambda x: Chop(5, 10, rmode=8)(x),
        "Customs(exp_bits=5): emax": lambda x: FaultChop(customs=Customs(exp_bits=5, sig_bits=10))(x),
    }
    for what, theirs, x, right in cases:
        xin = np.array([x])
        assert ours[what](xin)[0] == right, what
        assert theirs(xin.copy())[0] != right, f"Pychop now gets '{what}' right: update docs/python.md"
