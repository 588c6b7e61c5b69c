"""Quantization schemes from Python: lowp.quantize, QuantizedTensor, fake_quantize, save/load, pickling,
lowp.torch.fake_quantize.

Codes, scales and dequantized values are compared exactly with NumPy references written here for clarity
(they do not call lowp): int4 g128 asymmetric, int8 per-channel symmetric, MXFP4 and MXFP8 (e4m3) and NVFP4,
whose element rounding is ml_dtypes' cast (checked below to round ties to even). Files are read back with the
`safetensors` package to show they are ordinary safetensors files.
"""

from __future__ import annotations

import copy
import json
import os
import pathlib
import pickle
import warnings

import numpy as np
import pytest

import lowp

try:
    import ml_dtypes
except ImportError:  # the references of the MX and NVFP4 tests need it; the rest runs without
    ml_dtypes = None

needs_ml_dtypes = pytest.mark.skipif(ml_dtypes is None, reason="ml_dtypes is not installed")

# Every scheme family, with the example strings of docs/quantization.md.
SCHEMES = [
    "int4:g128:asym",
    "int8:channel:sym",
    "mxfp4",
    "mxfp6_e2m3",
    "mxfp8_e4m3",
    "mxint8",
    "nvfp4",
    "bfp8:b16",
    "bitmod4:g128",
    "nf4:g64",
    "codebook(-1,0,1):g32",
    "fixed:q4.4",
]

SHAPES = [(3, 300), (2, 5, 77), (1000,), (4, 256)]


def sample(shape, seed, block=32):
    """Normal data of a random magnitude, with an all-zero block (the first block of the first row along the
    last axis) and an outlier (the last element, in a block that may be shorter than the others)."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * rng.uniform(0.01, 3.0)).astype(np.float32)
    rows = x.reshape(-1, shape[-1])
    rows[0, :block] = 0.0
    rows[-1, -1] = -250.0 * rng.uniform(1.0, 2.0)
    return x


def ties(shape, seed):
    """Multiples of 1/8 in [-6, 6] with one 6 per row of 32: with the E8M0 scale 2^0 many of them are ties of
    e2m1 (0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5)."""
    rng = np.random.default_rng(seed)
    x = rng.integers(-48, 49, shape).astype(np.float32) / 8
    x[..., ::32] = 6.0
    return x


def grouped(x, g):
    """float64 `x` zero-padded along its last axis to a multiple of g, as (..., blocks, g); and the length."""
    n = x.shape[-1]
    nb = -(-n // g)
    pad = np.zeros(x.shape[:-1] + (nb * g - n,))
    return np.concatenate([x.astype(np.float64), pad], -1).reshape(x.shape[:-1] + (nb, g)), n


def ungrouped(b, n):
    return b.reshape(b.shape[:-2] + (-1,))[..., :n]


# ---------------------------------------------------------------------------------------------------------
# References (NumPy and ml_dtypes only)


def ref_int_asym(x, bits, group):
    """Groups of `group` along the last axis: range [min, max] widened to hold 0; scale = (max - min) / (2^b - 1)
    stored as float32; zero = round-half-even(-min / scale) clipped to [0, 2^b - 1]; codes = clip(rne(x / scale)
    + zero); an all-zero group has scale 0, zero 0 and codes 0. Values (code - zero) * scale."""
    xb, n = grouped(x, group)
    qmax = 2**bits - 1
    mn = np.minimum(xb.min(-1), 0.0)
    mx = np.maximum(xb.max(-1), 0.0)
    scale = ((mx - mn) / qmax).astype(np.float32).astype(np.float64)
    safe = np.where(scale > 0, scale, 1.0)
    zero = np.where(scale > 0, np.clip(np.rint(-mn / safe), 0, qmax), 0.0)
    codes = np.where(scale[..., None] > 0, np.clip(np.rint(xb / safe[..., None]) + zero[..., None], 0, qmax), 0.0)
    values = (codes - zero[..., None]) * scale[..., None]
    return ungrouped(codes, n).astype(np.int64), scale, zero.astype(np.int64), ungrouped(values, n)


def ref_int_channel_sym(x, bits):
    """One scale per index along axis 0: scale = amax / (2^(b-1) - 1) as float32, codes = clip(rne(x / scale))
    in the narrow range [-(2^(b-1) - 1), 2^(b-1) - 1]."""
    qmax = 2 ** (bits - 1) - 1
    x64 = x.astype(np.float64)
    amax = np.abs(x64).reshape(x.shape[0], -1).max(1)
    scale = (amax / qmax).astype(np.float32).astype(np.float64)
    s = scale.reshape((-1,) + (1,) * (x.ndim - 1))
    safe = np.where(s > 0, s, 1.0)
    codes = np.where(s > 0, np.clip(np.rint(x64 / safe), -qmax, qmax), 0.0)
    return codes.astype(np.int64), scale, codes * s


def ref_mx(x, elem, emax_elem, elem_max, block=32):
    """OCP MX along the last axis: E8M0 scale 2^(floor(log2 amax) - emax_elem) (2^-127 for an all-zero block),
    elements x / scale clipped to +-max, then cast by ml_dtypes (round to nearest even)."""
    elem = getattr(ml_dtypes, elem)
    xb, n = grouped(x, block)
    amax = np.abs(xb).max(-1)
    e = np.where(amax > 0, np.frexp(amax)[1] - 1 - emax_elem, -127)  # frexp: amax = m 2^k, m in [0.5, 1)
    scale = np.ldexp(1.0, np.clip(e, -127, 127))
    elems = np.clip(xb / scale[..., None], -elem_max, elem_max).astype(elem)
    values = elems.astype(np.float64) * scale[..., None]
    return ungrouped(elems.view(np.uint8), n), scale, ungrouped(values, n)


def ref_nvfp4(x, block=16):
    """NVFP4 along the last axis: t = float32(amax / (448 * 6)); s = e4m3fn(rne, saturating) of (block amax / 6) / t;
    elements e2m1 of x / (s t) clipped to +-6; a block whose s is 0 stores +0."""
    x64 = x.astype(np.float64)
    amax = np.abs(x64).max()
    t = float(np.float32(amax / (448 * 6))) if amax > 0 else 1.0
    xb, n = grouped(x64, block)
    s = np.clip(np.abs(xb).max(-1) / 6 / t, 0, 448).astype(ml_dtypes.float8_e4m3fn)
    s64 = s.astype(np.float64)[..., None]
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(s64 > 0, np.clip(xb / (s64 * t), -6, 6), 0.0)
    elems = q.astype(ml_dtypes.float4_e2m1fn)
    values = elems.astype(np.float64) * s64 * t
    return ungrouped(elems.view(np.uint8), n), s.astype(np.float64), t, ungrouped(values, n)


@needs_ml_dtypes
def test_ml_dtypes_casts_round_ties_to_even():
    """The references rely on it: ml_dtypes' float64 -> e2m1 / e4m3fn casts round to nearest, ties to even."""
    e2m1 = np.array([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, -0.25, -5.0, 0.26]).astype(ml_dtypes.float4_e2m1fn)
    assert e2m1.astype(np.float64).tolist() == [0.0, 1.0, 1.0, 2.0, 2.0, 4.0, 4.0, -0.0, -4.0, 0.5]
    e4m3 = np.array([1 + 1 / 16, 1 + 3 / 16, 1 + 5 / 16, 416.0, 1 / 1024, 3 / 1024]).astype(ml_dtypes.float8_e4m3fn)
    assert e4m3.astype(np.float64).tolist() == [1.0, 1.25, 1.25, 416.0, 0.0, 2.0**-9 * 2]


# ---------------------------------------------------------------------------------------------------------
# Against the references


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("data", ["normal", "ties"])
def test_int4_g128_asym_matches_the_reference(shape, data):
    x = sample(shape, 1, 128) if data == "normal" else ties(shape, 2)
    codes, scale, zero, values = ref_int_asym(x, 4, 128)
    q = lowp.quantize(x, "int4:g128:asym")
    assert q.codes.dtype == np.uint8 and q.zeros.dtype == np.uint8
    assert np.array_equal(q.codes, codes)
    assert q.scales.dtype == np.float64 and q.scales.shape == scale.shape
    assert np.array_equal(q.scales, scale)
    assert np.array_equal(q.zeros, zero)
    assert np.array_equal(q.dequantize(np.float64), values)
    assert np.array_equal(q.dequantize(), values.astype(np.float32))
    assert (scale[..., 0] == 0).any() if data == "normal" else True  # the all-zero group is there


@pytest.mark.parametrize("shape", [(6, 50), (5, 3, 7), (300,)])
def test_int8_per_channel_sym_matches_the_reference(shape):
    x = sample(shape, 3, shape[-1])  # the first row along the last axis is zero: one channel of scale 0
    codes, scale, values = ref_int_channel_sym(x, 8)
    q = lowp.quantize(x, "int8:channel:sym", axis=0)
    assert q.axis == 0 and q.codes.dtype == np.int8 and q.zeros is None
    assert np.array_equal(q.codes, codes)
    assert q.scales.shape == (shape[0],) and np.array_equal(q.scales, scale)
    assert np.array_equal(q.dequantize(np.float64), values)
    assert np.abs(q.codes).max() == 127 and q.codes.min() >= -127  # narrow range


MX = {
    "mxfp4": ("float4_e2m1fn", 2, 6.0),
    "mxfp8_e4m3": ("float8_e4m3fn", 8, 448.0),
}


@needs_ml_dtypes
@pytest.mark.parametrize("scheme", sorted(MX))
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("data", ["normal", "ties"])
def test_mx_matches_the_reference(scheme, shape, data):
    x = sample(shape, 4) if data == "normal" else ties(shape, 5)
    codes, scale, values = ref_mx(x, *MX[scheme])
    q = lowp.quantize(x, scheme)
    assert q.codes.dtype == np.uint8 and q.codes.shape == shape
    assert np.array_equal(q.codes, codes)
    assert np.array_equal(q.scales, scale)
    assert np.array_equal(q.dequantize(np.float64), values)
    assert np.array_equal(q.dequantize(), values.astype(np.float32))
    # the codes are the format's bit patterns: ml_dtypes reads them as the same values
    view = lowp.as_ml_dtypes(q.codes, q.parts["codes"]["format"])
    assert np.array_equal(view.astype(np.float64) * np.repeat(scale, 32, -1)[..., : shape[-1]], values)


@needs_ml_dtypes
@pytest.mark.parametrize("shape", SHAPES)
def test_nvfp4_matches_the_reference(shape):
    x = sample(shape, 6, 16)
    codes, scale, t, values = ref_nvfp4(x)
    q = lowp.quantize(x, "nvfp4")
    assert q.tensor_scale == t and isinstance(q.tensor_scale, float)
    assert np.array_equal(q.codes, codes)
    assert np.array_equal(q.scales, scale)
    assert np.array_equal(q.dequantize(np.float64), values)
    assert (scale == 0).any()  # the all-zero block


def test_nvfp4_notensor_has_no_tensor_scale():
    q = lowp.quantize(sample((4, 64), 7, 16), "nvfp4:notensor")
    assert q.tensor_scale is None and "tensor_scale" not in q.parts
    assert q.bits_per_element == 4.5


def test_blocks_along_another_axis_are_blocks_of_the_transpose():
    x = sample((200, 3), 8)
    for scheme in ("mxfp4", "int4:g128:asym", "nvfp4"):
        a = lowp.quantize(x, scheme, axis=0)
        b = lowp.quantize(np.ascontiguousarray(x.T), scheme, axis=1)
        assert a.axis == 0 and np.array_equal(a.codes, b.codes.T), scheme
        assert np.array_equal(a.scales, b.scales.T) and np.array_equal(a.dequantize(), b.dequantize().T)
        assert lowp.quantize(x, scheme, axis=-2) == a


# ---------------------------------------------------------------------------------------------------------
# The tensor object


@pytest.mark.parametrize("scheme", SCHEMES)
def test_dequantize_equals_fake_quantize(scheme):
    x = sample((3, 300), 9)
    for dtype in (np.float32, np.float64):
        xd = x.astype(dtype)
        q = lowp.quantize(xd, scheme)
        fq = lowp.fake_quantize(xd, scheme)
        assert fq.dtype == dtype and fq.shape == x.shape
        assert np.array_equal(fq, q.dequantize(dtype), equal_nan=True)


@pytest.mark.parametrize(
    "scheme, shape, bits",
    [
        ("mxfp4", (4, 64), 4.25),
        ("mxfp4", (3, 40), 4 + 8 * 6 / 120),  # two blocks per row, the second of 8
        ("mxfp6_e2m3", (2, 64), 6.25),
        ("mxfp8_e4m3", (2, 64), 8.25),
        ("mxint8", (2, 64), 8.25),
        ("int4:g128:asym", (4, 256), 4 + (32 + 4) / 128),
        ("int8:channel:sym", (4, 256), 8 + 32 * 256 / 1024),  # one float32 scale per index along the last axis
        ("nvfp4", (160,), 4 + 8 / 16 + 32 / 160),
        ("nvfp4", (10, 64), 4 + 8 / 16 + 32 / 640),
        ("bfp8:b16", (2, 64), 8 + 8 / 16),
        ("bitmod4:g128", (2, 256), 4 + 18 / 128),
        ("nf4:g64", (2, 256), 4 + 32 / 64),
        ("fixed:q4.4", (7, 9), 8),
    ],
)
def test_bits_per_element_is_the_hand_count(scheme, shape, bits):
    q = lowp.quantize(sample(shape, 10), scheme)
    assert q.bits_per_element == bits
    assert q.storage_bits == sum(p["bits"] * int(np.prod(p["shape"])) for p in q.parts.values())
    assert q.storage_bits == round(bits * q.size)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_properties_and_parts(scheme):
    x = sample((2, 5, 77), 11)
    q = lowp.quantize(x, scheme, axis=1) if scheme != "int8:channel:sym" else lowp.quantize(x, scheme, axis=-2)
    assert q.shape == (2, 5, 77) and q.ndim == 3 and q.size == 770
    assert q.axis == (0 if scheme.startswith("fixed") else 1)
    assert q.scheme == lowp.quantize(x, q.scheme, axis=1).scheme  # canonical strings parse back to themselves
    assert q.codes.shape == x.shape
    parts = q.parts
    assert list(parts)[:1] == ["codes"] and set(parts) <= {"codes", "scales", "zeros", "types", "tensor_scale"}
    for name, p in parts.items():
        assert p["data"].dtype == np.uint8 and p["data"].size == -(-p["bits"] * int(np.prod(p["shape"])) // 8), name
        assert isinstance(p["shape"], tuple) and isinstance(p["signed"], bool)
    # the packed bytes of the codes are lowp.pack of the codes (little-endian, first element in the low bits)
    c = parts["codes"]
    if c["bits"] < 8:
        assert np.array_equal(c["data"], lowp.pack(q.codes.astype(np.uint8) & (2 ** c["bits"] - 1), c["bits"]))
    if q.scales is not None:
        assert q.scales.dtype == np.float64 and q.scales.shape == parts["scales"]["shape"]
        if scheme != "int8:channel:sym":
            assert q.scales.shape[1] == 1  # one group or block along axis 1 (length 5)
    r = repr(q)
    assert r.startswith(f"<lowp.QuantizedTensor {q.scheme}, shape (2, 5, 77), axis {q.axis}, ")
    assert r.endswith(" bits/element>") and float(r.split(", ")[-1].split()[0]) == q.bits_per_element


def test_codes_dtypes_and_optional_parts():
    x = sample((2, 64), 12)
    want = {
        "int4:g128:asym": (np.uint8, np.uint8, None),
        "int4:g128:sym": (np.int8, None, None),
        "int16:g4:asym": (np.uint16, np.uint16, None),
        "mxint8": (np.int8, None, None),
        "mxfp4": (np.uint8, None, None),
        "bfp8:b16": (np.int8, None, None),
        "fixed:q1.15": (np.int16, None, None),
        "fixed:q16.16": (np.int32, None, None),
        "fixed:q24.24": (np.int64, None, None),
        "nf4:g64": (np.uint8, None, None),
        "bitmod4:g128": (np.uint8, None, np.uint8),
    }
    for scheme, (codes, zeros, types) in want.items():
        q = lowp.quantize(x, scheme)
        assert q.codes.dtype == codes, scheme
        assert (q.zeros is None) == (zeros is None) and (zeros is None or q.zeros.dtype == zeros), scheme
        assert (q.types is None) == (types is None) and (types is None or q.types.dtype == types), scheme
        assert (q.tensor_scale is None) == (scheme != "nvfp4")
    bm = lowp.quantize(x, "bitmod4:g128")
    assert bm.types.shape == (2, 1) and bm.types.max() < 4
    assert lowp.quantize(x, "fixed:q4.4").scales is None
    assert lowp.quantize(x, "nf4:g64").codes.max() < 16


def test_scalars_and_0d_tensors():
    q = lowp.quantize(3.0, "int8:tensor:sym")
    assert q.shape == () and q.ndim == 0 and q.size == 1 and q.codes.shape == () and int(q.codes) == 127
    assert lowp.quantize(np.float32(3.0), "int8:tensor:sym", axis=0) == q
    y = lowp.fake_quantize(0.3, "int8:tensor:sym")
    assert isinstance(y, np.float64) and y == lowp.quantize(0.3, "int8:tensor:sym").dequantize(np.float64)
    assert np.ndim(lowp.fake_quantize(np.array(0.3), "int8:tensor:sym")) == 0
    assert lowp.fake_quantize(np.float64(1.5), "mxfp4") == 1.5


def test_lists_ints_strides_and_byte_order_give_the_same_tensor():
    x = sample((6, 100), 13).astype(np.float64)
    q = lowp.quantize(x, "mxfp8_e4m3")
    assert lowp.quantize(x.tolist(), "mxfp8_e4m3") == q
    assert lowp.quantize(x.astype(">f8"), "mxfp8_e4m3") == q
    wide = np.zeros((6, 200))
    wide[:, ::2] = x
    assert lowp.quantize(wide[:, ::2], "mxfp8_e4m3") == q  # strided
    assert lowp.quantize(np.asfortranarray(x), "mxfp8_e4m3") == q
    ints = lowp.quantize([[1, 2], [3, 4]], "int8:tensor:sym")
    assert ints == lowp.quantize([[1.0, 2.0], [3.0, 4.0]], "int8:tensor:sym")


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("scheme", ["mxfp4", "nvfp4", "int4:g128:asym", "nf4:g64", "fixed:q4.4"])
def test_16_bit_data_is_widened_exactly(dtype, scheme):
    if dtype == "bfloat16" and ml_dtypes is None:
        pytest.skip("bfloat16 arrays need ml_dtypes")
    dtype = np.float16 if dtype == "float16" else ml_dtypes.bfloat16
    x = sample((3, 300), 14).astype(dtype)
    q = lowp.quantize(x, scheme)
    assert q == lowp.quantize(x.astype(np.float32), scheme)
    y = lowp.fake_quantize(x, scheme)
    assert y.dtype == np.dtype(dtype) and y.shape == x.shape
    # dequantized in float32, stored rounded to nearest even (NumPy's and ml_dtypes' casts)
    want = q.dequantize().astype(dtype)
    assert np.array_equal(y.view(np.uint16), want.view(np.uint16))
    if scheme in ("mxfp4", "fixed:q4.4"):  # these values are all exact in 16 bits
        assert np.array_equal(y.astype(np.float32), q.dequantize())


def test_modes_and_seeds_follow_round():
    x = sample((4, 128), 15)
    near = lowp.quantize(x, "int4:g128:asym")
    assert lowp.quantize(x, "int4:g128:asym", mode="rne") == near
    assert lowp.quantize(x, "int4:g128:asym", mode=1) == near
    down = lowp.quantize(x, "int4:g128:asym", mode="toward_negative")
    assert (down.codes <= near.codes).all() and down != near
    a = lowp.quantize(x, "mxfp4", mode="stochastic", seed=5)
    assert lowp.quantize(x, "mxfp4", mode="stochastic", seed=5) == a
    assert lowp.quantize(x, "mxfp4", mode="stochastic", seed=6) != a
    lowp.seed(3)
    b = lowp.quantize(x, "mxfp4", mode="stochastic")
    c = lowp.quantize(x, "mxfp4", mode="stochastic")
    assert b != c  # each unseeded call takes the next seed of the sequence
    lowp.seed(3)
    assert lowp.quantize(x, "mxfp4", mode="stochastic") == b
    assert np.array_equal(lowp.fake_quantize(x, "mxfp4", mode="sr", seed=5), a.dequantize())


def test_equality():
    x = sample((2, 64), 16)
    q = lowp.quantize(x, "mxfp4")
    assert q == lowp.quantize(x.copy(), "mxfp4")
    assert q != lowp.quantize(x * 2, "mxfp4")
    assert q != lowp.quantize(x, "mxfp4", axis=0)
    assert q != lowp.quantize(x, "mxfp4:b16")
    assert (q == "mxfp4") is False and q != None  # noqa: E711


@pytest.mark.parametrize("scheme", SCHEMES)
def test_pickle_and_deepcopy(scheme):
    q = lowp.quantize(sample((3, 300), 17), scheme)
    for back in (pickle.loads(pickle.dumps(q)), copy.deepcopy(q), copy.copy(q)):
        assert back == q and back is not q
        assert np.array_equal(back.codes, q.codes) and np.array_equal(back.dequantize(), q.dequantize())


# ---------------------------------------------------------------------------------------------------------
# Files


@pytest.mark.parametrize("scheme", SCHEMES)
def test_save_load_round_trip(tmp_path, scheme):
    x = sample((3, 300), 18)
    q = lowp.quantize(x, scheme)
    path = tmp_path / "one.safetensors"
    q.save(path)
    back = lowp.load(path)
    assert back == q and back.scheme == q.scheme and back.shape == q.shape and back.axis == q.axis
    assert np.array_equal(back.codes, q.codes)
    if q.scales is not None:
        assert np.array_equal(back.scales, q.scales)
    assert np.array_equal(back.dequantize(), q.dequantize())
    assert lowp.load_all(str(path)) == {"tensor": q}


def test_load_all_and_names(tmp_path):
    x = sample((4, 256), 19)
    tensors = {s.replace(":", "_"): lowp.quantize(x, s) for s in SCHEMES}
    path = tmp_path / "all.safetensors"
    lowp.save(path, tensors)
    back = lowp.load_all(path)
    assert back == tensors and list(back) == sorted(tensors)
    assert lowp.load(str(path), name="nvfp4") == tensors["nvfp4"]
    with pytest.raises(lowp.OptionError, match="int4_g128_asym.*pass name="):
        lowp.load(path)
    with pytest.raises(lowp.OptionError, match="no quantized tensor named 'w'. It has: "):
        lowp.load(path, "w")


def test_files_are_ordinary_safetensors_files(tmp_path):
    st = pytest.importorskip("safetensors")  # tests/python/requirements.txt pins it
    from safetensors.numpy import load_file

    x = sample((6, 100), 20)
    q8 = lowp.quantize(x, "int8:channel:sym", axis=0)
    q4 = lowp.quantize(x, "int4:g128:asym")
    path = tmp_path / "w.safetensors"
    lowp.save(path, {"w8": q8, "w4": q4})
    arrays = load_file(str(path))
    assert set(arrays) == {"w8.codes", "w8.scales", "w4.codes", "w4.scales", "w4.zeros"}
    assert arrays["w8.codes"].dtype == np.int8 and np.array_equal(arrays["w8.codes"], q8.codes)
    assert arrays["w8.scales"].dtype == np.float32 and np.array_equal(arrays["w8.scales"], q8.scales)
    assert np.array_equal(arrays["w4.codes"], q4.parts["codes"]["data"])  # 4-bit codes: packed bytes
    with st.safe_open(str(path), "np") as f:
        meta = json.loads(f.metadata()["lowp"])
    assert meta["tensors"]["w8"]["scheme"] == q8.scheme and meta["tensors"]["w8"]["axis"] == 0
    assert meta["tensors"]["w4"]["parts"]["codes"] == {"bits": 4, "signed": False, "format": None, "shape": [6, 100]}


def test_file_errors(tmp_path):
    q = lowp.quantize(sample((2, 64), 21), "mxfp4")
    missing = tmp_path / "missing.safetensors"
    with pytest.raises(FileNotFoundError, match="missing.safetensors"):
        lowp.load(missing)
    with pytest.raises(OSError, match="missing.safetensors"):
        lowp.load_all(str(missing))
    good = tmp_path / "good.safetensors"
    q.save(good)
    data = good.read_bytes()
    for name, content in [("truncated", data[:-3]), ("garbage", b"not a safetensors file at all"), ("empty", b"")]:
        bad = tmp_path / f"{name}.safetensors"
        bad.write_bytes(content)
        with pytest.raises(lowp.FileFormatError, match=f"{name}.safetensors"):
            lowp.load(bad)
    assert issubclass(lowp.FileFormatError, ValueError) and issubclass(lowp.FileFormatError, lowp.LowpError)
    with pytest.raises(lowp.FileFormatError, match="pickled QuantizedTensor|invalid file"):
        pickle.loads(pickle.dumps(q).replace(b"mxfp4", b"mxfp6"))
    st = pytest.importorskip("safetensors.numpy")
    plain = tmp_path / "plain.safetensors"
    st.save_file({"w": np.ones(3, np.float32)}, str(plain))
    with pytest.raises(lowp.FileFormatError, match="no `lowp` metadata"):
        lowp.load(plain)


def test_failed_saves_leave_no_file(tmp_path):
    q = lowp.quantize(sample((2, 64), 22), "nf4:g64")
    with pytest.raises(FileNotFoundError, match="no-such-dir"):
        q.save(tmp_path / "no-such-dir" / "w.safetensors")
    with pytest.raises(FileNotFoundError):
        lowp.save(tmp_path / "no-such-dir" / "w.safetensors", {"w": q})
    assert list(tmp_path.iterdir()) == []
    path = tmp_path / "w.safetensors"
    q.save(path)
    before = path.read_bytes()
    with pytest.raises(lowp.OptionError, match="non-empty"):
        lowp.save(path, {"": q})  # refused before anything is written: the old file stays whole
    assert path.read_bytes() == before and list(tmp_path.iterdir()) == [path]
    with pytest.raises(lowp.DtypeError, match="not a lowp.QuantizedTensor"):
        lowp.save(path, {"w": np.ones(3)})
    with pytest.raises(lowp.OptionError, match="no tensors"):
        lowp.save(path, {})
    with pytest.raises(lowp.OptionError, match="tensor.save"):
        lowp.save(path, q)
    assert path.read_bytes() == before


# ---------------------------------------------------------------------------------------------------------
# Errors


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda: lowp.quantize([1.0], "foo4"), lowp.FormatError, r"unknown scheme `foo4`. Accepted: .*mxfp4.*nvfp4"),
        (lambda: lowp.quantize([1.0], "mxfp5"), lowp.FormatError, "mxfp5"),
        (lambda: lowp.quantize([1.0], 4), lowp.FormatError, "scheme must be a scheme string"),
        (lambda: lowp.quantize([1.0, np.nan], "int8:tensor:sym"), lowp.RepresentationError, "NaN at index 1"),
        (lambda: lowp.quantize([np.nan], "int4:g128:asym"), lowp.RepresentationError, "no NaN"),
        (lambda: lowp.quantize(np.ones((2, 3)), "mxfp4", axis=2), lowp.ShapeError, "axis 2 is out of range"),
        (lambda: lowp.quantize(np.ones((2, 3)), "mxfp4", axis=-3), lowp.ShapeError, "-2 to 1"),
        (lambda: lowp.fake_quantize(np.ones(3), "mxfp4", axis=1), lowp.ShapeError, "out of range"),
        (lambda: lowp.quantize(np.ones(3), "mxfp4", axis=0.5), lowp.OptionError, "axis must be an integer"),
        (lambda: lowp.quantize(np.ones(3, np.complex64), "mxfp4"), lowp.DtypeError, "complex64"),
        (lambda: lowp.quantize(np.array([1.0, None]), "mxfp4"), lowp.DtypeError, "object"),
        (lambda: lowp.quantize(["a", "b"], "mxfp4"), lowp.DtypeError, "Accepted: float16, bfloat16"),
        (lambda: lowp.fake_quantize(np.ones(3, np.int32), "mxfp4"), lowp.DtypeError, "int32"),
        (lambda: lowp.quantize([1.0], "mxfp4", mode="bogus"), lowp.OptionError, "unknown rounding mode"),
        (lambda: lowp.quantize([1.0], "mxfp4", seed=-1), lowp.OptionError, "seed"),
        (lambda: lowp.quantize([1.0], "mxfp4").dequantize(np.float16), lowp.DtypeError, "float16"),
        (lambda: lowp.quantize([1.0], "mxfp4").dequantize("nonsense"), lowp.DtypeError, "nonsense"),
        (lambda: lowp.load(3.5), lowp.OptionError, "path must be a str"),
    ],
)
def test_errors_are_clear_and_typed(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_no_constructor():
    with pytest.raises(TypeError):
        lowp.QuantizedTensor()


# ---------------------------------------------------------------------------------------------------------
# PyTorch


def test_torch_fake_quantize_forward_and_straight_through_gradient():
    torch = pytest.importorskip("torch")
    import lowp.torch as lt

    x = sample((3, 300), 23)
    for dtype in (torch.float32, torch.float64):
        t = torch.tensor(x, dtype=dtype, requires_grad=True)
        for scheme in ("int4:g128:asym", "mxfp4", "nvfp4", "nf4:g64"):
            y = lt.fake_quantize(t, scheme)
            assert y.dtype == dtype and y.shape == t.shape and y.requires_grad
            assert np.array_equal(y.detach().numpy(), lowp.fake_quantize(t.detach().numpy(), scheme)), scheme
            upstream = torch.randn(t.shape, dtype=dtype)
            t.grad = None
            y.backward(upstream)
            assert torch.equal(t.grad, upstream)  # passed through unchanged, even where values clipped


def test_torch_fake_quantize_16_bit_and_strided_tensors():
    torch = pytest.importorskip("torch")
    import lowp.torch as lt

    x = sample((3, 300), 24)
    for dtype in (torch.float16, torch.bfloat16):
        t = torch.tensor(x).to(dtype).requires_grad_()
        for scheme in ("mxfp4", "nvfp4", "int4:g128:asym"):
            y = lt.fake_quantize(t, scheme)
            assert y.dtype == dtype and y.shape == t.shape
            # quantized from the exact float32 widening, dequantized in float32, rounded to nearest even
            want = torch.from_numpy(lowp.fake_quantize(t.detach().float().numpy(), scheme)).to(dtype)
            assert torch.equal(y.detach().view(torch.int16), want.view(torch.int16)), (dtype, scheme)
        y.sum().backward()
        assert torch.equal(t.grad, torch.ones_like(t))
    t = torch.tensor(x).T  # not contiguous; blocks along its last axis (length 3)
    assert torch.equal(lt.fake_quantize(t, "mxfp4"), torch.from_numpy(lowp.fake_quantize(x.T.copy(), "mxfp4")))
    assert torch.equal(
        lt.fake_quantize(t, "mxfp4", axis=0), torch.from_numpy(lowp.fake_quantize(x, "mxfp4").T.copy())
    )
    with pytest.raises(lowp.DtypeError):
        lt.fake_quantize(torch.ones(3, dtype=torch.int32), "mxfp4")
    a = lt.fake_quantize(torch.tensor(x), "mxfp4", mode="stochastic", seed=9)
    assert torch.equal(a, torch.from_numpy(lowp.fake_quantize(x, "mxfp4", mode="stochastic", seed=9)))


def test_pathlike_paths(tmp_path):
    q = lowp.quantize(sample((2, 64), 25), "bfp8:b16")

    class P(os.PathLike):
        def __fspath__(self):
            return str(tmp_path / "p.safetensors")

    lowp.save(P(), {"w": q})
    assert lowp.load(pathlib.Path(P().__fspath__())) == q
    assert lowp.load(os.fsencode(P().__fspath__())) == q


E2M1 = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]


def _grid(x, block):
    """Scales of a per-block scheme along the last axis, repeated to the tensor's shape."""
    return lambda s: np.repeat(s, block, -1)[..., : x.shape[-1]]


def test_what_codes_and_scales_hold_per_family():
    """The decoding rules docs/python.md gives for .codes and .scales, applied by hand."""
    x = sample((3, 300), 26).astype(np.float64)
    q = lowp.quantize(x, "int4:g128:asym")
    g = _grid(x, 128)
    assert np.array_equal(q.dequantize(np.float64), (q.codes.astype(np.int64) - g(q.zeros)) * g(q.scales))
    q = lowp.quantize(x, "mxint8")
    assert np.array_equal(q.dequantize(np.float64), q.codes / 64 * _grid(x, 32)(q.scales))
    q = lowp.quantize(x, "bfp8:b16")  # scales are 2^e; mantissas of m = 8 bits are x / 2^(e - m + 2)
    assert np.array_equal(q.dequantize(np.float64), q.codes * _grid(x, 16)(q.scales) * 2.0 ** (2 - 8))
    assert np.array_equal(np.log2(q.scales), np.round(np.log2(q.scales)))
    assert np.abs(q.codes).max() == 127
    q = lowp.quantize(x, "fixed:q4.4")
    assert np.array_equal(q.dequantize(np.float64), q.codes / 16)
    q = lowp.quantize(x, "codebook(1,-1,0):g32")  # codes index the sorted codebook
    assert q.scheme == "codebook(-1,0,1):g32" and set(np.unique(q.codes)) == {0, 1, 2}
    assert np.array_equal(q.dequantize(np.float64), (q.codes.astype(np.float64) - 1) * _grid(x, 32)(q.scales))
    q = lowp.quantize(x, "nf4:g64")  # codes index NF4's 16 ascending values in [-1, 1]; scale = absmax
    s = _grid(x, 64)(q.scales)
    ratio = np.divide(q.dequantize(np.float64), s, out=np.zeros_like(s), where=s > 0)
    book = [np.unique(ratio[(q.codes == c) & (s > 0)]) for c in range(16)]
    assert all(len(b) == 1 for b in book) and np.all(np.diff(np.concatenate(book)) > 0)
    assert (book[0][0], book[7][0], book[15][0]) == (-1.0, 0.0, 1.0)
    q = lowp.quantize(x, "bitmod4:g128")  # per group: the e2m1 grid plus +5, -5, +8 or -8 (type 0-3)
    g = _grid(x, 128)
    types, scales = g(q.types), g(q.scales)
    for t, extra in enumerate([5.0, -5.0, 8.0, -8.0]):
        grid = np.array(sorted(set(E2M1) | {-v for v in E2M1} | {extra}))
        assert len(grid) == 16
        m = types == t
        assert np.array_equal(q.dequantize(np.float64)[m], grid[q.codes[m]] * scales[m])
    assert set(np.unique(q.types)) > {0}  # more than one variant was chosen
    blocks = np.abs(grouped(x, 128)[0]).max(-1)
    top = np.where(q.types % 4 < 2, 6.0, 8.0)  # +-5 variants still top out at 6; +-8 ones at 8
    assert np.array_equal(q.scales, (blocks / top).astype(np.float16).astype(np.float64))


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dequantize_into_out(scheme, dtype):
    x = np.random.default_rng(3).standard_normal((6, 200)).astype(np.float32)
    q = lowp.quantize(x, scheme)
    out = np.full(x.shape, 7.0, dtype)
    got = q.dequantize(out=out)
    assert got is out
    np.testing.assert_array_equal(out, q.dequantize(dtype))
    assert q.dequantize(dtype, out=np.empty(x.shape, dtype)).dtype == dtype


def test_dequantize_out_errors():
    q = lowp.quantize(np.ones((4, 64), np.float32), "mxfp4")
    with pytest.raises(lowp.ShapeError, match="shape"):
        q.dequantize(out=np.empty((64, 4), np.float32))
    with pytest.raises(lowp.ShapeError, match="C-contiguous"):
        q.dequantize(out=np.empty((64, 4), np.float32).T)
    with pytest.raises(lowp.DtypeError, match="int32"):
        q.dequantize(out=np.empty((4, 64), np.int32))
    with pytest.raises(lowp.DtypeError, match="requested dtype float64"):
        q.dequantize(np.float64, out=np.empty((4, 64), np.float32))
    with pytest.raises(lowp.DtypeError, match="NumPy array"):
        q.dequantize(out=[0.0] * 256)
    with pytest.raises(lowp.DtypeError, match="byte order"):
        q.dequantize(out=np.empty((4, 64), ">f4"))
    with warnings.catch_warnings():  # np.matrix is pending deprecation; still an ndarray subclass people pass
        warnings.simplefilter("ignore")
        m = np.asmatrix(np.zeros((4, 64), np.float32))  # reshape(-1) of a matrix stays 2-D: written in place
    assert q.dequantize(out=m) is m
    np.testing.assert_array_equal(np.asarray(m), q.dequantize())
    ro = np.empty((4, 64), np.float32)
    ro.flags.writeable = False
    with pytest.raises(lowp.LowpError, match="read-only"):
        q.dequantize(out=ro)
