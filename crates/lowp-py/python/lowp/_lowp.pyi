"""Type stubs of lowp's extension module (the Rust bindings). Users import these names from ``lowp``."""

import os
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np
import numpy.typing as npt

__version__: str

class Format:
    """A number format: a preset (``"float8_e4m3fn"``, ``"bf16"``...), ``e<E>m<M>[b<BIAS>][fn|fnuz]``,
    ``binary<K>p<P><s|u><e|f>`` (IEEE P3109) or ``chop(<t>,<emax>)``.

    >>> f = Format("float8_e4m3fn")
    >>> (f.bits, f.max, f.min_normal, f.min_subnormal, f.eps)
    (8, 448.0, 0.015625, 0.001953125, 0.125)
    """

    def __init__(self, name: str) -> None: ...
    @staticmethod
    def custom(
        exp_bits: int,
        man_bits: int,
        bias: Optional[int] = None,
        subnormals: bool = True,
        specials: str = "ieee",
        saturate: bool = False,
    ) -> Format:
        """A format by its fields; ``specials``: ``"ieee"``, ``"fn"``, ``"fnuz"`` or ``"none"`` (all codes finite)."""
    @staticmethod
    def from_chop(t: int, emax: int) -> Format:
        """MATLAB chop / CPFloat terms: precision ``t`` (hidden bit counted), emax, emin = 1 - emax."""
    def with_options(
        self,
        *,
        subnormals: Optional[bool] = None,
        saturate: Optional[bool] = None,
        keep_inf: Optional[bool] = None,
        exponent_limit: Optional[bool] = None,
    ) -> Format:
        """A copy with options changed (``exponent_limit=False``: chop's explim=0)."""
    @property
    def name(self) -> str: ...
    @property
    def bits(self) -> int: ...
    @property
    def exp_bits(self) -> int: ...
    @property
    def man_bits(self) -> int: ...
    @property
    def bias(self) -> int: ...
    @property
    def emin(self) -> int: ...
    @property
    def emax(self) -> int: ...
    @property
    def max(self) -> float: ...
    @property
    def min_normal(self) -> float: ...
    @property
    def min_subnormal(self) -> float: ...
    @property
    def eps(self) -> float:
        """Machine epsilon: the distance from 1 to the next larger value."""
    @property
    def unit_roundoff(self) -> float:
        """eps / 2: the largest relative error of round-to-nearest in the normal range."""
    @property
    def num_codes(self) -> int: ...
    @property
    def specials(self) -> str: ...
    @property
    def subnormals(self) -> bool: ...
    @property
    def saturate(self) -> bool: ...
    @property
    def keep_inf(self) -> bool: ...
    @property
    def exponent_limit(self) -> bool: ...
    @property
    def signed(self) -> bool: ...
    @property
    def has_inf(self) -> bool: ...
    @property
    def has_nan(self) -> bool: ...
    @property
    def aliases(self) -> List[str]: ...
    def values(self) -> npt.NDArray[np.float64]:
        """Every finite value once (zero as +0), ascending; formats of at most 16 bits."""
    def code_table(self) -> Tuple[npt.NDArray[np.uint64], npt.NDArray[np.float64]]:
        """``(codes, values)`` of every code that is not NaN, in code order; formats of at most 16 bits."""
    def __eq__(self, other: object) -> bool: ...
    def __hash__(self) -> int: ...

def formats() -> List[str]: ...
def aliases() -> List[Tuple[str, str]]: ...
def modes() -> List[str]: ...
def mode_name(mode: str) -> str: ...
def mode_is_stochastic(mode: str) -> bool: ...
def round_array(
    x: np.ndarray,
    out: Optional[np.ndarray],
    dtype: str,
    fmt: Format,
    mode: str,
    seed: int,
    flip_prob: float,
    flip_scope: str,
) -> None: ...
def encode_array(x: np.ndarray, out: np.ndarray, dtype: str, fmt: Format, mode: str, seed: int) -> None: ...
def decode_array(codes: np.ndarray, out: np.ndarray, dtype: str, fmt: Format) -> None: ...
def pack(codes: npt.NDArray[np.uint8], bits: int) -> npt.NDArray[np.uint8]: ...
def unpack(buf: npt.NDArray[np.uint8], bits: int, count: int) -> npt.NDArray[np.uint8]: ...

class QuantizedTensor:
    """A tensor quantized by a scheme (``lowp.quantize``): scheme, shape, axis and packed parts. No constructor:
    made by ``lowp.quantize`` and ``lowp.load``; compares equal when scheme, shape, axis and every stored bit
    are equal; pickles (as its safetensors bytes)."""

    @property
    def scheme(self) -> str:
        """The canonical scheme string (``"mxfp4:b32"`` for ``"mxfp4"``)."""
    @property
    def shape(self) -> Tuple[int, ...]: ...
    @property
    def axis(self) -> int:
        """The axis blocks and groups run along, non-negative (0 for fixed point)."""
    @property
    def ndim(self) -> int: ...
    @property
    def size(self) -> int: ...
    @property
    def codes(self) -> npt.NDArray[np.integer]:
        """Element codes in the tensor's shape: uint8/int8/uint16/int16/int32/int64, the narrowest that holds
        the codes' width and sign."""
    @property
    def scales(self) -> Optional[npt.NDArray[np.float64]]:
        """Block scales as numbers, in the shape of the grid of blocks; None for fixed point."""
    @property
    def zeros(self) -> Optional[npt.NDArray[np.integer]]:
        """Zero points of asymmetric integer schemes, in the grid's shape; None otherwise."""
    @property
    def types(self) -> Optional[npt.NDArray[np.uint8]]:
        """BitMoD's type id per group, in the grid's shape; None otherwise."""
    @property
    def tensor_scale(self) -> Optional[float]:
        """NVFP4's float32 tensor scale; None otherwise."""
    @property
    def bits_per_element(self) -> float: ...
    @property
    def storage_bits(self) -> int: ...
    @property
    def parts(self) -> Dict[str, Dict[str, Any]]:
        """``{name: {"bits": int, "signed": bool, "format": str | None, "shape": tuple, "data": uint8 array}}``."""
    def dequantize(
        self, dtype: npt.DTypeLike = None, *, out: Optional[npt.NDArray[np.floating]] = None
    ) -> npt.NDArray[np.floating]:
        """The values in the tensor's shape, float32 (default) or float64."""
    def save(self, path: Union[str, os.PathLike[str]], name: str = "tensor") -> None: ...
    def __eq__(self, other: object) -> bool: ...

def _quantized_from_bytes(data: bytes) -> QuantizedTensor: ...
def quantize_array(
    x: np.ndarray, dtype: str, shape: Tuple[int, ...], scheme: str, axis: int, mode: str, seed: int
) -> QuantizedTensor: ...
def fake_quantize_array(
    x: np.ndarray,
    out: np.ndarray,
    dtype: str,
    shape: Tuple[int, ...],
    scheme: str,
    axis: int,
    mode: str,
    seed: int,
) -> None: ...
def load_file(path: Union[str, os.PathLike[str]]) -> List[Tuple[str, QuantizedTensor]]: ...
def save_file(path: Union[str, os.PathLike[str]], tensors: List[Tuple[str, QuantizedTensor]]) -> None: ...

# Arithmetic (crates/lowp-py/src/arith.rs): 1-D C-contiguous arrays; lowp.ops and lowp.linalg wrap them.
def elementwise_array(
    op: str, args: List[np.ndarray], out: np.ndarray, dtype: str, fmt: Format, mode: str, seed: int
) -> None:
    """``out = fl(op(*args))``; ``op``: add, sub, mul, div, fma, sqrt, exp, exp2, log, log2, log10, sin, cos,
    tan, tanh; ``dtype``: float32 or float64 (of every array)."""
def sum_array(x: npt.NDArray[np.float64], accum: Format, order: str, mode: str, seed: int) -> float: ...
def matmul_array(
    a: npt.NDArray[np.float64],
    b: npt.NDArray[np.float64],
    m: int,
    k: int,
    n: int,
    product: Optional[Format],
    accum: Format,
    order: str,
    mode: str,
    seed: int,
) -> npt.NDArray[np.float64]:
    """Row-major ``a`` (m x k) times ``b`` (k x n), as m * n elements; ``product=None``: exact products."""
def linalg_array(
    what: str,
    a: npt.NDArray[np.float64],
    n: int,
    b: Optional[npt.NDArray[np.float64]],
    lower: bool,
    unit: bool,
    fmt: Format,
    mode: str,
    seed: int,
) -> Tuple[npt.NDArray[np.float64], List[int]]:
    """``(values, perm)`` of ``what`` on the row-major n x n matrix ``a``: ``"lu"`` (the factors, L below the
    diagonal with a unit diagonal implied, U on and above; row i of P A is row ``perm[i]`` of A),
    ``"cholesky"`` (L), ``"solve"`` and ``"solve_triangular"`` (x, with ``b``); ``perm`` is empty but for lu."""
def refine_array(
    a: npt.NDArray[np.float64],
    n: int,
    b: npt.NDArray[np.float64],
    factor: Format,
    residual: Format,
    working: Format,
    max_iter: int,
    x_true: Optional[npt.NDArray[np.float64]],
    mode: str,
    seed: int,
) -> Tuple[npt.NDArray[np.float64], List[Tuple[float, Optional[float], float]], bool]:
    """``(x, steps, converged)``; each step is (backward error, forward error or None, correction)."""
def gptq_array(
    w: npt.NDArray[np.float64],
    rows: int,
    cols: int,
    h: npt.NDArray[np.float64],
    scheme: str,
    damp: float,
    block: int,
    act_order: bool,
    static_groups: bool,
) -> Tuple[QuantizedTensor, npt.NDArray[np.float64], float]:
    """``(quantized tensor, dequantized values, loss)`` of GPTQ on the row-major ``[rows, cols]`` weight."""
def hessian_array(x: npt.NDArray[np.float32], rows: int, dim: int) -> npt.NDArray[np.float64]:
    """H = 2 XᵀX / n of the row-major ``[rows, dim]`` inputs, flat."""
def hessian_error_array(
    w: npt.NDArray[np.float64],
    q: npt.NDArray[np.float64],
    rows: int,
    cols: int,
    h: npt.NDArray[np.float64],
) -> float:
    """tr((W − Q) H (W − Q)ᵀ)."""
