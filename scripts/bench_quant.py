"""Throughput of lowp's quantization schemes from Python, against np.copyto of the same bytes (the yardstick,
measured in the same run) and against Pychop's `mx_quantize` on the same array.

    .venv/bin/python scripts/bench_quant.py [--size N] [--pychop-size M] [--reps R]

Prints a Markdown table for BENCHMARKS.md. lowp uses every rayon thread (RAYON_NUM_THREADS=1 for one).
`quantize` allocates its result (as a user's call does); dequantize writes into a preallocated array
(`out=`), like the `np.copyto` yardstick.
Pychop's `mx_quantize` returns quantized-then-dequantized values, so it is compared with
`lowp.fake_quantize`; the table also says how many of its values equal lowp's.
"""

import argparse
import os

import numpy as np

import lowp

from benchutil import best

SCHEMES = ["mxfp4", "mxfp8_e4m3", "nvfp4", "int4:g128:asym", "bitmod4:g128"]
PYCHOP = {"mxfp4": "mxfp4_e2m1", "mxfp8_e4m3": "mxfp8_e4m3"}
COLUMNS = 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=1 << 24)
    ap.add_argument("--pychop-size", type=int, default=1 << 16)
    ap.add_argument("--reps", type=int, default=5)
    a = ap.parse_args()
    n = a.size // COLUMNS * COLUMNS
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(n) * 0.02).astype(np.float32).reshape(-1, COLUMNS)
    dst = np.empty_like(x)
    copy = n / best(lambda: np.copyto(dst, x), a.reps)
    threads = os.environ.get("RAYON_NUM_THREADS", str(os.cpu_count()))
    print(f"float32 [{n // COLUMNS}, {COLUMNS}], blocks along the last axis; lowp {threads} threads; "
          f"np.copyto {copy / 1e6:.0f} M elem/s")
    print()
    print("| scheme | bits/elem | quantize M/s | x copyto | dequantize(out=) M/s | x copyto | fake_quantize M/s |")
    print("|---|---|---|---|---|---|---|")
    for s in SCHEMES:
        q = lowp.quantize(x, s)
        tq = n / best(lambda: lowp.quantize(x, s), a.reps)
        td = n / best(lambda: q.dequantize(out=dst), a.reps)  # preallocated, as np.copyto's destination
        tf = n / best(lambda: lowp.fake_quantize(x, s), a.reps)
        print(f"| {q.scheme} | {q.bits_per_element:.3f} | {tq / 1e6:.0f} | {tq / copy:.2f} | {td / 1e6:.0f} | "
              f"{td / copy:.2f} | {tf / 1e6:.0f} |")
    try:
        import pychop
    except ImportError:
        print("\n(pychop not installed: no comparison)")
        return
    m = a.pychop_size // COLUMNS * COLUMNS
    small = x.reshape(-1)[:m].reshape(-1, COLUMNS)
    print()
    print(f"Against Pychop {pychop.__version__} `mx_quantize` (quantize + dequantize, NumPy backend) on the first "
          f"{m} elements:")
    print()
    print("| scheme | Pychop M/s | lowp fake_quantize M/s | lowp / Pychop | values equal to lowp's |")
    print("|---|---|---|---|---|")
    for s, name in PYCHOP.items():
        ours = lowp.fake_quantize(small, s)
        theirs = np.asarray(pychop.mx_quantize(small, name, block_size=32, backend="numpy"), dtype=np.float32)
        tp = m / best(lambda: pychop.mx_quantize(small, name, block_size=32, backend="numpy"), max(1, a.reps // 2))
        tl = m / best(lambda: lowp.fake_quantize(small, s), a.reps)
        same = np.mean((ours == theirs) | (np.isnan(ours) & np.isnan(theirs)))
        print(f"| {s} | {tp / 1e6:.2f} | {tl / 1e6:.0f} | {tl / tp:.0f}x | {same * 100:.2f}% |")


if __name__ == "__main__":
    main()
