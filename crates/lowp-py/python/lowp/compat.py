"""Pychop-compatible front: ``Chop``, ``FaultChop`` and ``Customs`` with Pychop's signatures, rounding-mode
codes and format names, so Pychop code runs by changing its import, and rounds correctly.

>>> from lowp.compat import Chop, FaultChop, Customs
>>> half = FaultChop("h")                      # MATLAB chop's defaults: nearest even, subnormals
>>> half(np.array([1 + 2**-11, 65520.0]))
array([ 1., inf])
>>> Chop(exp_bits=5, sig_bits=10, rmode=4)(np.array([0.1]))
array([0.09997559])
>>> FaultChop(customs=Customs(t=4, emax=7))(np.array([250.0]))   # MATLAB chop's 'q43'
array([inf])

Where lowp and Pychop 0.6 differ, lowp follows the definitions (docs/python.md lists the cases): exponents
are read from the bits rather than from a floating log2, values below 1e-38 are not clamped, overflow and
underflow thresholds are exact, ``Customs(exp_bits=E)`` means IEEE's emax = 2^(E-1) - 1, and stochastic modes
draw fresh random bits on every call from a generator seeded once per object (``random_state``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np

import lowp
from ._errors import FormatError, OptionError

__all__ = ["Chop", "FaultChop", "Customs", "backend"]


def backend(lib: str = "numpy", verbose: Any = 0) -> None:
    """Pychop's ``pychop.backend(lib)``, so ``import lowp.compat as pychop`` keeps working. lowp needs no
    backend choice: it takes NumPy arrays and torch CPU tensors whatever is set; JAX and TensorFlow are refused."""
    if lib not in ("numpy", "torch", "auto"):
        raise OptionError(f"backend {lib!r}: lowp.compat takes NumPy arrays and torch CPU tensors ('numpy', 'torch')")
    if verbose:
        print(f"lowp.compat: backend {lib!r} (lowp dispatches on the input's type)")


@dataclass
class Customs:
    """A custom format, as Pychop's ``Customs``: ``t`` (significand bits including the hidden bit) and ``emax``,
    or ``exp_bits`` and ``sig_bits`` (significand bits without the hidden bit)."""

    t: Optional[int] = None
    emax: Optional[int] = None
    exp_bits: Optional[int] = None
    sig_bits: Optional[int] = None

    def format(self) -> lowp.Format:
        """The lowp format these parameters describe."""
        sig = self.sig_bits if self.sig_bits is not None else (None if self.t is None else self.t - 1)
        if self.exp_bits is not None and sig is not None:
            return lowp.Format.custom(self.exp_bits, sig)
        if sig is not None and self.emax is not None:
            return lowp.Format.from_chop(sig + 1, self.emax)
        raise FormatError(
            f"Customs needs (t, emax), (exp_bits, sig_bits) or (exp_bits, t); got {self!r}"
        )


# Pychop's prec names and their MATLAB-chop (t, emax).
_PREC = {
    "q43": (4, 7), "fp8-e4m3": (4, 7),
    "q52": (3, 15), "fp8-e5m2": (3, 15),
    "h": (11, 15), "half": (11, 15), "fp16": (11, 15),
    "b": (8, 127), "bfloat16": (8, 127), "bf16": (8, 127),
    "s": (24, 127), "single": (24, 127), "fp32": (24, 127),
    "d": (53, 1023), "double": (53, 1023), "fp64": (53, 1023),
}  # fmt: skip

# Pychop's rmode strings. Code 10 (CADNA random directed rounding: up or down with probability 1/2, exact
# values unchanged) is stochastic_equal.
_RMODE_NAMES = {
    "nearest": "nearest_even", "plus_inf": "toward_positive", "minus_inf": "toward_negative",
    "toward_zero": "toward_zero", "stoc_prop": "stochastic", "stoc_equal": "stochastic_equal",
    "cadna": "stochastic_equal",
}  # fmt: skip


def _mode(rmode: Any) -> str:
    if isinstance(rmode, (int, np.integer)) and not isinstance(rmode, bool):
        code = int(rmode)
        if code == 10:
            return "stochastic_equal"
        if 1 <= code <= 9:
            return lowp.modes()[code - 1]
        raise OptionError(f"rmode {code} is not a rounding mode. Accepted: 1-9 (chop's codes) and 10 (CADNA)")
    if isinstance(rmode, str):
        return _RMODE_NAMES.get(rmode.lower(), rmode)
    raise OptionError(f"rmode must be a code 1-10 or a name, got {rmode!r}")


class _Chopper:
    """What Chop and FaultChop share: a format, a mode, soft errors, and per-call seeds."""

    def __init__(self, fmt: lowp.Format, rmode: Any, random_state: Any, flip_prob: float, verbose: Any):
        self.format = fmt
        self.mode = lowp._lowp.mode_name(_mode(rmode))
        self.random_state = random_state
        self._base = lowp._check_seed(random_state if random_state is not None else 0)
        self._calls = 0
        self._flip_prob = flip_prob
        self.u = fmt.unit_roundoff
        if verbose:
            print(f"The floating point format is with unit-roundoff of {self.u:e} (≈2^{int(np.log2(self.u))}).")

    def _next_seed(self) -> int:
        self._calls += 1
        return (self._base * 0x2545F4914F6CDD1D + self._calls * lowp._GOLDEN) % 2**64

    def _round(self, X: Any, mode: str, flip_prob: float, seed: int) -> Any:
        if type(X).__module__.startswith("torch"):
            from lowp import torch as lowp_torch

            return lowp_torch.round(X, self.format, mode, seed=seed, flip_prob=flip_prob)
        if isinstance(X, np.ndarray) and X.dtype.kind in "biu":
            X = X.astype(np.float64)
        return lowp.round(X, self.format, mode, seed=seed, flip_prob=flip_prob)

    def __call__(self, X: Any) -> Any:
        """Round ``X`` (NumPy array, torch CPU tensor, list or scalar) to the format; same type and dtype out."""
        needs_seed = self._flip_prob > 0 or lowp._lowp.mode_is_stochastic(self.mode)
        return self._round(X, self.mode, self._flip_prob, self._next_seed() if needs_seed else 0)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.format.name}, mode={self.mode}, u={self.u:g})"


class Chop(_Chopper):
    """Pychop's ``Chop``: a format of ``exp_bits`` exponent bits and ``sig_bits`` stored significand bits (IEEE
    bias and specials), rounding mode ``rmode`` (1-9 as in chop, 10 = CADNA-style random rounding), subnormals
    on or off. ``chunk_size`` is accepted and ignored (lowp chunks its own work)."""

    def __init__(
        self,
        exp_bits: int,
        sig_bits: int,
        rmode: Any = 1,
        subnormal: bool = True,
        chunk_size: int = 800,
        random_state: int = 42,
        verbose: Any = 0,
    ):
        self.exp_bits, self.sig_bits, self.rmode, self.subnormal = exp_bits, sig_bits, rmode, subnormal
        self.chunk_size = chunk_size
        fmt = lowp.Format.custom(exp_bits, sig_bits, subnormals=bool(subnormal))
        super().__init__(fmt, rmode, random_state, 0.0, verbose)


class FaultChop(_Chopper):
    """Pychop's ``FaultChop`` (MATLAB chop's options): format ``prec`` (``'h'``, ``'b'``, ``'s'``, ``'d'``, ``'q43'``,
    ``'q52'`` and their long names, any lowp format name, or ``customs``), ``subnormal`` (default: off for
    bfloat16 as in chop, on otherwise), ``rmode``, soft errors (``flip``: each rounded element has one random
    significand bit flipped with probability ``p``), ``explim=0`` to ignore the exponent range, ``randfunc(n)``
    to supply the uniform random numbers of stochastic rounding, and ``random_state``."""

    def __init__(
        self,
        prec: str = "h",
        subnormal: Optional[bool] = None,
        rmode: Any = 1,
        flip: bool = False,
        explim: Any = 1,
        p: float = 0.5,
        randfunc: Optional[Callable[[int], Any]] = None,
        customs: Optional[Customs] = None,
        random_state: int = 0,
        verbose: Any = 0,
    ):
        if customs is not None:
            fmt = customs.format()
        elif isinstance(prec, str) and prec in _PREC:
            fmt = lowp.Format.from_chop(*_PREC[prec])
        elif isinstance(prec, str):
            fmt = lowp.Format(prec)
        else:
            raise FormatError(f"prec must be a name ({', '.join(_PREC)}, or a lowp format), got {prec!r}")
        if subnormal is None:
            subnormal = not (customs is None and prec in ("b", "bfloat16", "bf16"))
        fmt = fmt.with_options(subnormals=bool(subnormal), exponent_limit=bool(explim))
        if flip and not 0.0 <= float(p) <= 1.0:
            raise OptionError(f"p must be a probability in [0, 1], got {p}")
        self.prec, self.subnormal, self.rmode, self.flip, self.explim = prec, subnormal, rmode, flip, explim
        self.p, self.randfunc, self.customs = p, randfunc, customs
        super().__init__(fmt, rmode, random_state, float(p) if flip else 0.0, verbose)
        self.t = fmt.man_bits + 1
        self.emax = fmt.emax

    def __call__(self, X: Any) -> Any:
        if self.randfunc is None or self.mode not in ("stochastic", "stochastic_equal"):
            return super().__call__(X)
        return self._with_randfunc(X)

    def _with_randfunc(self, X: Any) -> Any:
        """Stochastic rounding with the caller's uniform numbers: round up when r < (x - down) / (up - down)
        (``stochastic``) or r < 1/2 (``stochastic_equal``), x's two neighbours computed exactly by lowp."""
        x = np.asarray(X, dtype=np.float64) if not isinstance(X, np.ndarray) else X
        down = self._round(x, "toward_negative", 0.0, 0)
        up = self._round(x, "toward_positive", 0.0, 0)
        r = np.asarray(self.randfunc(x.size), dtype=np.float64).reshape(x.shape)
        with np.errstate(invalid="ignore", divide="ignore"):
            frac = (x - down) / (up - down) if self.mode == "stochastic" else np.full(x.shape, 0.5)
        res = np.where((up == down) | ~(r < frac), down, up).astype(x.dtype)
        if self._flip_prob > 0:  # rounding an exact value changes nothing but applies the soft errors
            res = self._round(res, "toward_zero", self._flip_prob, self._next_seed())
        return res
