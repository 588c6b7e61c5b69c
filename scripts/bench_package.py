#!/usr/bin/env python3
"""Benchmark of the Python package against Pychop, ml_dtypes, NumPy's float16 cast and np.copyto.

  bench_package.py --size 10000000 --reps 5 --out bench-out/package-1.json

One float64 array of N standard-normal values (fixed seed) is used for every row. Each row is the best of R
timed calls after one warm-up; rows that write a float64 result write into a preallocated array (``out=``)
where the API allows it, so they are compared with ``np.copyto(dst, x)`` (the physical limit of an
out-of-place pass, measured in the same run). lowp uses the threads of its rayon pool: run the script with
RAYON_NUM_THREADS=1 and =2 (scripts/bench.sh does). Prints a markdown table; writes JSON records.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
import warnings

import numpy as np

EIGHT_BIT = ["float8_e5m2", "float8_e4m3", "float8_e3m4", "float8_e4m3fn", "float8_e4m3fnuz", "float8_e5m2fnuz",
             "float8_e4m3b11fnuz", "float6_e3m2fn", "float6_e2m3fn", "float4_e2m1fn", "float8_e8m0fnu"]  # fmt: skip


def best_time(fn, reps: int) -> float:
    fn()
    best = float("inf")
    for _ in range(reps):
        gc.collect()
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=10_000_000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--pychop-reps", type=int, default=2)
    ap.add_argument("--seed", type=int, default=12345)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    os.environ.setdefault("chop_backend", "numpy")
    import ml_dtypes
    import pychop

    import lowp

    threads = os.environ.get("RAYON_NUM_THREADS", str(os.cpu_count()))
    n = args.size
    x = np.random.default_rng(args.seed).standard_normal(n)
    dst = np.empty_like(x)
    rows = []

    def row(group: str, name: str, fn, reps: int = args.reps) -> None:
        t = best_time(fn, reps)
        rows.append({"group": group, "name": name, "elements": n, "seconds": t, "elements_per_s": n / t,
                     "lowp_threads": int(threads)})  # fmt: skip
        print(f"  {name:<58} {n / t / 1e6:10.1f} M/s", file=sys.stderr)

    print(f"{n:,} float64 values, lowp threads {threads}", file=sys.stderr)
    row("copy", "np.copyto(dst, x)", lambda: np.copyto(dst, x))
    copy_rate = rows[-1]["elements_per_s"]
    for fmt, mode in (("float16", "nearest_even"), ("bfloat16", "nearest_even"), ("float8_e4m3fn", "nearest_even"),
                      ("float16", "stochastic")):  # fmt: skip
        row("lowp", f'lowp.round(x, "{fmt}", "{mode}", out=dst)', lambda: lowp.round(x, fmt, mode, seed=1, out=dst))
    row("lowp", 'lowp.round(x, "float16") (allocates)', lambda: lowp.round(x, "float16"))
    row("numpy", "x.astype(np.float16)", lambda: x.astype(np.float16))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        row("ml_dtypes", "x.astype(bfloat16)", lambda: x.astype(ml_dtypes.bfloat16))
        for fmt in EIGHT_BIT:
            dt = getattr(ml_dtypes, fmt)
            row("ml_dtypes", f"x.astype({fmt})", lambda: x.astype(dt))
            row("lowp-8bit", f'lowp.encode(x, "{fmt}") (uint8 codes)', lambda: lowp.encode(x, fmt))
            row("lowp-8bit", f'lowp.round(x, "{fmt}", out=dst)', lambda: lowp.round(x, fmt, out=dst))
    pr = args.pychop_reps
    row("pychop", "pychop.Chop(5, 10)(x)  [float16]", lambda: pychop.Chop(5, 10)(x), pr)
    row("pychop", "pychop.FaultChop('h')(x)", lambda: pychop.FaultChop("h")(x), pr)
    row("pychop", "pychop.Chop(8, 7)(x)  [bfloat16]", lambda: pychop.Chop(8, 7)(x), pr)
    row("pychop", "pychop.FaultChop('b')(x)", lambda: pychop.FaultChop("b")(x), pr)
    row("pychop", "pychop.Chop(4, 3)(x)  [e4m3, IEEE-like]", lambda: pychop.Chop(4, 3)(x), pr)
    row("pychop", "pychop.FaultChop('q43')(x)", lambda: pychop.FaultChop("q43")(x), pr)
    row("pychop", "pychop.Chop(5, 10, rmode=5)(x)  [stochastic]", lambda: pychop.Chop(5, 10, rmode=5)(x), pr)
    row("pychop", "pychop.FaultChop('h', rmode=5)(x)", lambda: pychop.FaultChop("h", rmode=5)(x), pr)
    from lowp.compat import Chop, FaultChop

    row("lowp.compat", "lowp.compat.Chop(5, 10)(x)", lambda: Chop(5, 10)(x))
    row("lowp.compat", "lowp.compat.FaultChop('h', rmode=5)(x)", lambda: FaultChop("h", rmode=5)(x))

    for r in rows:
        r["copy_fraction"] = r["elements_per_s"] / copy_rate
    with open(args.out, "w") as f:
        json.dump(rows, f, indent=1)
    print(f"\n| lowp threads {threads} | M elem/s | x np.copyto |\n|---|---:|---:|")
    for r in rows:
        print(f"| `{r['name']}` | {r['elements_per_s'] / 1e6:,.1f} | {r['copy_fraction']:.2f} |")


if __name__ == "__main__":
    main()
