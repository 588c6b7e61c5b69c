#!/usr/bin/env python3
"""Python side of scripts/bench.sh.

  bench_python.py run --size N --reps R --seed S --out python.json
      Times, on N float32 standard-normal values (fixed seed), single-threaded as numpy runs them:
      numpy `x.astype(np.float16)`, ml_dtypes `x.astype(fmt)` for bfloat16 and every ml_dtypes format of at
      most 8 bits, and `np.copyto(out, x)` (the memcpy yardstick). Best of R after one warm-up. Writes a JSON
      array of records shaped like `lowp bench --json` records.

  bench_python.py summary --lowp lowp.json --python python.json [--machine machine.txt] --out summary.md
      Prints a markdown summary (comparison table, lowp's full table, the Python table) and writes it.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from pathlib import Path

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


def best_time(fn, reps: int) -> float:
    fn()  # warm-up (page faults, caches)
    best = float("inf")
    for _ in range(reps):
        gc.collect()
        t0 = time.perf_counter()
        r = fn()
        t = time.perf_counter() - t0
        del r
        best = min(best, t)
    return best


def run(args) -> None:
    import warnings

    import ml_dtypes
    import numpy as np

    n = args.size
    rng = np.random.default_rng(args.seed)
    print(f"generating {n:,} float32 standard-normal values (seed {args.seed})", file=sys.stderr)
    x = rng.standard_normal(n, dtype=np.float32)
    out = np.empty_like(x)
    records = []

    def rec(lib, call, fmt, t, out_bytes):
        return {
            "impl": lib,
            "call": call,
            "op": "copy" if fmt == "float32" else "astype",
            "format": fmt,
            "mode": None if fmt == "float32" else "nearest_even",
            "dtype": "float32",
            "threads": 1,
            "elements": n,
            "seconds": t,
            "elements_per_s": n / t,
            "gbytes_per_s": (n * 4 + n * out_bytes) / t / 1e9,
        }

    t_copy = best_time(lambda: np.copyto(out, x), args.reps)
    copy_rate = n / t_copy
    records.append(rec("numpy", "np.copyto(out, x)", "float32", t_copy, 4))
    print(f"  np.copyto: {copy_rate / 1e6:9.1f} M elem/s", file=sys.stderr)
    del out
    gc.collect()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        t = best_time(lambda: x.astype(np.float16), args.reps)
        records.append(rec("numpy", "x.astype(np.float16)", "float16", t, 2))
        print(f"  numpy float16: {n / t / 1e6:9.1f} M elem/s", file=sys.stderr)
        for fmt in ML_FORMATS:
            dt = getattr(ml_dtypes, fmt)
            t = best_time(lambda: x.astype(dt), args.reps)
            records.append(rec("ml_dtypes", f"x.astype(ml_dtypes.{fmt})", fmt, t, np.dtype(dt).itemsize))
            print(f"  ml_dtypes {fmt}: {n / t / 1e6:9.1f} M elem/s", file=sys.stderr)

    for r in records:
        r["memcpy_elements_per_s"] = copy_rate
        r["memcpy_fraction"] = r["elements_per_s"] / copy_rate
    meta = {"numpy": np.__version__, "ml_dtypes": ml_dtypes.__version__, "python": sys.version.split()[0]}
    Path(args.out).write_text(json.dumps({"meta": meta, "records": records}, indent=2) + "\n")


# ---------------------------------------------------------------------------------------------------------


def fmt_rate(r) -> str:
    return f"{r['elements_per_s'] / 1e6:,.0f} M/s ({r['memcpy_fraction']:.3f})"


def summary(args) -> None:
    lowp = json.loads(Path(args.lowp).read_text())
    py = json.loads(Path(args.python).read_text())
    pyrec, meta = py["records"], py["meta"]
    lines = []
    add = lines.append

    add("# lowp throughput")
    add("")
    if args.machine and Path(args.machine).exists():
        add("Machine and run:")
        add("")
        add("```")
        add(Path(args.machine).read_text().rstrip())
        add("```")
        add("")
    n_lowp = {r["elements"] for r in lowp}
    add(
        f"Elements per array: lowp {', '.join(f'{v:,}' for v in sorted(n_lowp))}; Python {pyrec[0]['elements']:,} "
        f"float32 standard-normal values. numpy {meta['numpy']}, ml_dtypes {meta['ml_dtypes']}, "
        f"Python {meta['python']}. Rates are elements per second, best of the repetitions; the number in "
        "parentheses is the fraction of the memcpy rate measured in the same run (lowp: its own memcpy of the "
        "input; Python: `np.copyto(out, x)`)."
    )
    add("")

    def find(op, fmt, mode, threads, dtype="float32"):
        for r in lowp:
            if (r["op"], r["format"], r["mode"], r["threads"], r["dtype"]) == (op, fmt, mode, threads, dtype):
                return r
        return None

    threads = sorted({r["threads"] for r in lowp})
    cols = [(op, t) for op in ("encode", "round") for t in threads]
    add("## float32 input, nearest_even: lowp against numpy / ml_dtypes `x.astype(fmt)`")
    add("")
    hdr = ["format"] + [f"lowp {op} {t}T" for op, t in cols] + ["numpy / ml_dtypes astype (1T)"]
    add("| " + " | ".join(hdr) + " |")
    add("|" + "---|" * len(hdr))
    py_by_fmt = {r["format"]: r for r in pyrec if r["op"] == "astype"}
    formats = list(dict.fromkeys([r["format"] for r in lowp] + list(py_by_fmt)))
    for fmt in formats:
        cells = [fmt]
        for op, t in cols:
            r = find(op, fmt, "nearest_even", t)
            cells.append(fmt_rate(r) if r else "—")
        cells.append(fmt_rate(py_by_fmt[fmt]) if fmt in py_by_fmt else "—")
        add("| " + " | ".join(cells) + " |")
    copy = [r for r in pyrec if r["op"] == "copy"][0]
    lm = {r["dtype"]: r["memcpy_elements_per_s"] for r in lowp}
    add("")
    add(
        "memcpy yardsticks: lowp "
        + ", ".join(f"{d} {v / 1e6:,.0f} M/s" for d, v in sorted(lm.items()))
        + f"; Python np.copyto float32 {copy['elements_per_s'] / 1e6:,.0f} M/s."
    )
    add("")

    add("## lowp, every record")
    add("")
    add("| op | format | mode | dtype | threads | M elem/s | GB/s | fraction of memcpy |")
    add("|---|---|---|---|---|---|---|---|")
    for r in sorted(lowp, key=lambda r: (r["dtype"], r["format"], r["op"], str(r["mode"]), r["threads"])):
        add(
            f"| {r['op']} | {r['format']} | {r['mode'] or '—'} | {r['dtype']} | {r['threads']} | "
            f"{r['elements_per_s'] / 1e6:,.1f} | {r['gbytes_per_s']:.2f} | {r['memcpy_fraction']:.3f} |"
        )
    add("")
    add("## numpy / ml_dtypes (float32 input, single-threaded)")
    add("")
    add("| call | M elem/s | GB/s | fraction of np.copyto |")
    add("|---|---|---|---|")
    for r in pyrec:
        add(
            f"| `{r['call']}` | {r['elements_per_s'] / 1e6:,.1f} | {r['gbytes_per_s']:.2f} | "
            f"{r['memcpy_fraction']:.3f} |"
        )
    text = "\n".join(lines) + "\n"
    Path(args.out).write_text(text)
    sys.stdout.write(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--size", type=int, default=100_000_000)
    r.add_argument("--reps", type=int, default=5)
    r.add_argument("--seed", type=int, default=12345)
    r.add_argument("--out", required=True)
    s = sub.add_parser("summary")
    s.add_argument("--lowp", required=True)
    s.add_argument("--python", required=True)
    s.add_argument("--machine")
    s.add_argument("--out", required=True)
    args = ap.parse_args()
    run(args) if args.cmd == "run" else summary(args)


if __name__ == "__main__":
    main()
