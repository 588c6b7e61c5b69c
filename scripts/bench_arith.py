"""Emulated GEMM from Python: `lowp.ops.matmul` under the arithmetic models of `lowp bench --gemm`, against
NumPy's float32 `A @ B` (the yardstick, measured in the same run) and Pychop 0.6.0's `pychop.matmul` on the
same arrays.

    .venv/bin/python scripts/bench_arith.py [--sizes 256,512] [--reps R] [--seed S] [--no-pychop]

Prints Markdown tables for BENCHMARKS.md. lowp uses every rayon thread (RAYON_NUM_THREADS=1 for one); NumPy's
BLAS its own threads (OPENBLAS_NUM_THREADS / OMP_NUM_THREADS), reported in the header.

What is compared:
- lowp rounds every product and every addition as the model says (`lowp.ops.matmul(A, B, fmt, mode,
  accum=..., order=..., exact_products=...)`); A and B are first rounded to the model's input format.
- Pychop's `matmul(x, y, chop)` rounds only the inputs and the result: the product itself is NumPy's
  `matmul` in the inputs' precision (float64 here, the same arrays lowp gets). Its results therefore differ
  from a per-operation-rounded product by design (usually more accurate than float16 arithmetic, and much
  faster); the table says how many entries equal lowp's float16 result.
- max error = max over entries of |C - AB| / (|A||B|), AB computed in float64 from the same (rounded) inputs.
"""

import argparse
import os

import numpy as np

import lowp

from benchutil import best

# key, description, input format, lowp.ops.matmul arguments (fmt, mode, keywords).
MODELS = [
    ("fp16_recursive", "float16 products, float16 recursive sum", "float16",
     ("float16", "nearest_even", {})),
    ("bf16_fp32_accum", "bfloat16 products, float32 recursive sum", "bfloat16",
     ("bfloat16", "nearest_even", {"accum": "float32"})),
    ("blockfma4_fp32_accum", "exact products, blockfma:4 into float32 (tensor-core-like)", "float16",
     ("float32", "nearest_even", {"exact_products": True, "order": "blockfma:4"})),
    ("fp16_stochastic", "float16 products and sum, stochastic", "float16",
     ("float16", "stochastic", {"seed": 0})),
    ("fp32_recursive", "float32 products, float32 recursive sum", "float32",
     ("float32", "nearest_even", {})),
]


def max_error(c, exact, scale):
    c = np.asarray(c, dtype=np.float64)
    return float(np.max(np.abs(c - exact) / np.where(scale == 0, 1.0, scale)))


def reference(a, b):
    return a @ b, np.abs(a) @ np.abs(b)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="256,512")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-pychop", action="store_true")
    a = ap.parse_args()
    if not hasattr(lowp, "ops") or not hasattr(lowp.ops, "matmul"):
        raise SystemExit("this lowp package has no lowp.ops.matmul: install the package from the checkout "
                         "(pip install ./crates/lowp-py)")
    pychop = None
    if not a.no_pychop:
        import contextlib
        import io

        with contextlib.redirect_stdout(io.StringIO()):  # Pychop prints a backend warning on import
            import pychop as _pychop
        pychop = _pychop
    threads = os.environ.get("RAYON_NUM_THREADS", str(os.cpu_count()))
    blas = os.environ.get("OPENBLAS_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "default"))
    rng = np.random.default_rng(a.seed)
    for n in [int(s) for s in a.sizes.split(",") if s]:
        flops = 2.0 * n ** 3
        a32 = rng.standard_normal((n, n)).astype(np.float32)
        b32 = rng.standard_normal((n, n)).astype(np.float32)
        c32 = np.empty_like(a32)
        t_np = best(lambda: np.matmul(a32, b32, out=c32), a.reps)
        ex32, sc32 = reference(a32.astype(np.float64), b32.astype(np.float64))
        print(f"{n} x {n} x {n}, A and B ~ N(0, 1); lowp {threads} threads; NumPy BLAS threads: {blas}; "
              f"best of {a.reps} after a warm-up")
        print()
        print("| kernel | arithmetic | GFLOP/s | ms | x numpy | max error | entries equal to lowp fp16_recursive |")
        print("|---|---|---|---|---|---|---|")
        print(f"| numpy `A @ B` (float32) | float32 BLAS | {flops / t_np / 1e9:.2f} | {t_np * 1e3:.2f} | 1.0 | "
              f"{max_error(c32, ex32, sc32):.2e} | |")
        inputs = {}
        results = {}
        for key, description, input_fmt, (fmt, mode, kw) in MODELS:
            if input_fmt not in inputs:
                x = lowp.round(a32.astype(np.float64), input_fmt)
                y = lowp.round(b32.astype(np.float64), input_fmt)
                inputs[input_fmt] = (x, y) + reference(x, y)
            x, y, ex, sc = inputs[input_fmt]
            out = {}

            def call():
                out["c"] = lowp.ops.matmul(x, y, fmt, mode, **kw)

            t = best(call, a.reps)
            results[key] = out["c"]
            print(f"| `lowp.ops.matmul` {key} | {description} | {flops / t / 1e9:.3f} | {t * 1e3:.1f} | "
                  f"{t / t_np:.0f} | {max_error(out['c'], ex, sc):.2e} | |")
        if pychop is not None:
            ref16 = results["fp16_recursive"]
            for label, chop_args, input_fmt in [
                ("Chop(5, 10) [float16]", (5, 10), "float16"),
                ("Chop(8, 7) [bfloat16]", (8, 7), "bfloat16"),
                ("Chop(5, 10, rmode=5) [float16 stochastic]", (5, 10, 5), "float16"),
            ]:
                x, y, ex, sc = inputs[input_fmt]
                ch = pychop.Chop(*chop_args[:2], rmode=chop_args[2] if len(chop_args) > 2 else 1)
                out = {}

                def call():
                    out["c"] = pychop.matmul(x, y, ch)

                t = best(call, a.reps)
                c = np.asarray(out["c"], dtype=np.float64)
                rne_float16 = chop_args == (5, 10)
                equal = f"{np.mean(c == ref16) * 100:.1f}%" if rne_float16 else ""
                print(f"| `pychop.matmul` {label} | inputs and result rounded; product in float64 (NumPy) | "
                      f"{flops / t / 1e9:.3f} | {t * 1e3:.1f} | {t / t_np:.0f} | {max_error(c, ex, sc):.2e} | "
                      f"{equal} |")
        print()


if __name__ == "__main__":
    main()
