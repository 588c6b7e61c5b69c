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

import threading
from typing import Any, Callable, Optional

import numpy as np

import lowp
from ._errors import DtypeError, FormatError, OptionError

__all__ = ["Chop", "FaultChop", "Customs", "backend", "get_backend"]


_backend = "auto"


def backend(lib: str = "numpy", verbose: Any = 0) -> None:
    """Pychop's ``pychop.backend(lib)``, so ``import lowp.compat as pychop`` keeps working. lowp needs no
    backend choice: it takes NumPy arrays and torch CPU tensors whatever is set; JAX and TensorFlow are refused."""
    global _backend
    if lib not in ("numpy", "torch", "auto"):
        raise OptionError(f"backend {lib!r}: lowp.compat takes NumPy arrays and torch CPU tensors ('numpy', 'torch')")
    _backend = lib
    if verbose:
        print(f"lowp.compat: backend {lib!r} (lowp dispatches on the input's type)")


def get_backend() -> str:
    """The name last given to :func:`backend` (``"auto"`` until then), as Pychop's ``get_backend``."""
    return _backend


class Customs:
    """A custom format, as Pychop's ``Customs``: ``t`` (significand bits including the hidden bit) and ``emax``,
    or ``exp_bits`` and ``sig_bits`` (significand bits without the hidden bit). Keyword arguments only: Pychop's
    positional order is (emax, t) and MATLAB chop's is (t, emax), so a positional call would be ambiguous."""

    def __init__(
        self,
        *args: Any,
        t: Optional[int] = None,
        emax: Optional[int] = None,
        exp_bits: Optional[int] = None,
        sig_bits: Optional[int] = None,
    ):
        if args:
            raise OptionError(
                "Customs takes keyword arguments (t=, emax=, exp_bits=, sig_bits=): Pychop's positional order is "
                "(emax, t) and MATLAB chop's (t, emax), so positional values are refused rather than guessed"
            )
        self.t, self.emax, self.exp_bits, self.sig_bits = t, emax, exp_bits, sig_bits

    def __repr__(self) -> str:
        return f"Customs(t={self.t}, emax={self.emax}, exp_bits={self.exp_bits}, sig_bits={self.sig_bits})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Customs) and repr(self) == repr(other)

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


def _splitmix64(z: int) -> int:
    z = (z + 0x9E3779B97F4A7C15) % 2**64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) % 2**64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) % 2**64
    return z ^ (z >> 31)


def _as_float64(X: Any):
    """X as a float64 NumPy array, and a function that turns a float64 result back into X's kind and dtype."""
    if type(X).__module__.startswith("torch"):
        import torch

        t = X.detach()
        return t.to(torch.float64).numpy(), lambda r: torch.from_numpy(r).to(X.dtype)
    if isinstance(X, np.ndarray):
        dtype = X.dtype if X.dtype.kind == "f" else np.dtype(np.float64)

        def back(r: np.ndarray) -> np.ndarray:
            with np.errstate(over="ignore"):  # storing in the data type overflows as Pychop's does
                return r.astype(dtype)

        return X.astype(np.float64), back
    x = np.asarray(X, dtype=np.float64)
    return x, (lambda r: r[()]) if x.ndim == 0 else (lambda r: r)


class _Chopper:
    """What Chop and FaultChop share: a format, a mode, soft errors, and per-call seeds."""

    def __init__(self, fmt: lowp.Format, rmode: Any, random_state: Any, flip_prob: float, verbose: Any):
        self.format = fmt
        self.mode = lowp._lowp.mode_name(_mode(rmode))
        self.random_state = random_state
        self._base = lowp._check_seed(random_state if random_state is not None else 0)
        self._calls = 0
        self._lock = threading.Lock()
        self._flip_prob = flip_prob
        self.u = fmt.unit_roundoff
        if verbose:
            print(f"The floating point format is with unit-roundoff of {self.u:e} (≈2^{int(np.log2(self.u))}).")

    def _next_seed(self) -> int:
        """Call k of an object seeded with s draws from seed splitmix64(splitmix64(s) + k): fresh bits on every
        call, the same sequence for the same random_state, apart from lowp.round's own sequence."""
        with self._lock:
            self._calls += 1
            k = self._calls
        return _splitmix64((_splitmix64(self._base ^ 0x6C6F7770) + k) % 2**64)

    def _round_native(self, X: Any, mode: str, flip_prob: float, seed: int) -> Any:
        if type(X).__module__.startswith("torch"):
            from lowp import torch as lowp_torch

            return lowp_torch.round(X, self.format, mode, seed=seed, flip_prob=flip_prob)
        if isinstance(X, np.ndarray) and X.dtype.kind in "biu":
            X = X.astype(np.float64)
        return lowp.round(X, self.format, mode, seed=seed, flip_prob=flip_prob)

    def _round(self, X: Any, mode: str, flip_prob: float, seed: int) -> Any:
        """As Pychop does, a format wider than the data (FaultChop('d') on float32) is rounded in float64 and
        stored back in the data's dtype; lowp.round refuses that instead."""
        try:
            return self._round_native(X, mode, flip_prob, seed)
        except DtypeError:
            if getattr(X, "dtype", None) is None or str(X.dtype).split(".")[-1] == "float64":
                raise
            x, back = _as_float64(X)
            return back(self._round_native(x, mode, flip_prob, seed))

    def __call__(self, X: Any) -> Any:
        """Round ``X`` (NumPy array, torch CPU tensor, list or scalar) to the format; same type and dtype out."""
        needs_seed = self._flip_prob > 0 or lowp._lowp.mode_is_stochastic(self.mode)
        return self._round(X, self.mode, self._flip_prob, self._next_seed() if needs_seed else 0)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.format.name}, mode={self.mode}, u={self.u:g})"

    def __getstate__(self) -> dict:  # picklable (the lock is not)
        state = self.__dict__.copy()
        del state["_lock"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()


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
    to supply the uniform random numbers of stochastic rounding (MATLAB chop's rule: the magnitude goes up when
    r <= its fraction, or r <= 1/2 for rmode 6), and ``random_state``."""

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
        """Stochastic rounding with the caller's uniform numbers, as MATLAB chop does it: the magnitude goes up
        (away from zero) when r <= (|x| - lo) / (hi - lo) (``stochastic``) or r <= 1/2 (``stochastic_equal``),
        lo and hi being |x|'s neighbours, computed exactly by lowp. Above max, hi is max + ulp(max), and going
        up overflows as the format does under nearest rounding."""
        x, back = _as_float64(X)
        f = self.format
        mag = np.abs(x)
        lo = lowp.round(mag, f, "toward_negative")
        hi = lowp.round(mag, f, "toward_positive")
        beyond = np.ldexp(1.0, f.emax - f.man_bits) + f.max
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            hi_val = np.where(np.isfinite(hi), hi, beyond)
            frac = (mag - lo) / (hi_val - lo) if self.mode == "stochastic" else np.full(x.shape, 0.5)
        r = np.asarray(self.randfunc(x.size), dtype=np.float64).reshape(x.shape)
        exact = (lo == hi) | ~np.isfinite(mag)
        up = ~exact & (r <= frac)
        res_mag = np.where(up, lowp.round(hi_val, f), lo)
        res = np.where(exact, lowp.round(x, f), np.copysign(res_mag, x))
        if self._flip_prob > 0:  # rounding an exact value changes nothing but applies the soft errors
            res = lowp.round(res, f, "toward_zero", flip_prob=self._flip_prob, seed=self._next_seed())
        return back(res)
