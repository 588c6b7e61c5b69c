#!/usr/bin/env bash
# The benchmark run behind BENCHMARKS.md. Builds the release CLI, runs `lowp bench --json` (float32 and
# float64 inputs, threads 1 and 2), then times numpy / ml_dtypes casts and np.copyto on the same machine, and
# prints a combined markdown summary; then benchmarks the Python package against Pychop, ml_dtypes, numpy's
# float16 cast and np.copyto on one 10^7-element float64 array, with lowp on 1 and on 2 threads.
# Then the quantization schemes: `lowp bench --schemes` and scripts/bench_quant.py (against Pychop).
# Last, emulated GEMM: `lowp bench --gemm` (lowp::arith::matmul under five arithmetic models against
# matrixmultiply's sgemm and an i-k-j float32 loop) and scripts/bench_arith.py (lowp.ops.matmul against
# NumPy's float32 A @ B and Pychop's matmul).
# Outputs: bench-out/lowp.json, python.json, summary.md, package-1.json/.md, package-2.json/.md, schemes.txt,
# quant-1.md, quant-2.md, gemm.txt, arith-1.md, arith-2.md. BENCH_QUANT_SIZE (16777216) and BENCH_SCHEMES set
# the schemes part; BENCH_GEMM_SIZES (256,512) and BENCH_GEMM_REPS (3) the GEMM part (~1 minute).
#
# Knobs (environment): BENCH_SIZE (default 100000000 elements), BENCH_THREADS (1,2), BENCH_MODES (lowp's
# default: every deterministic mode and stochastic), BENCH_FORMATS (lowp's default: every preset of at most
# 8 bits, float16, bfloat16), BENCH_OPS (round,encode,decode), BENCH_DTYPES (f32), BENCH_REPS (5),
# BENCH_SEED (12345), BENCH_PKG_SIZE (10000000), BENCH_SKIP_CLI=1 (only the package part). Peak memory is
# about 2.5 GB at the default size.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
VENV="$ROOT/.venv"
OUT="$ROOT/bench-out"
SIZE=${BENCH_SIZE:-100000000}
THREADS=${BENCH_THREADS:-1,2}
MODES=${BENCH_MODES:-}
OPS=${BENCH_OPS:-round,encode,decode}
DTYPES=${BENCH_DTYPES:-f32}
FORMATS=${BENCH_FORMATS:-}
REPS=${BENCH_REPS:-5}
SEED=${BENCH_SEED:-12345}

section() { printf '\n==== %s ====\n' "$*" >&2; }

mkdir -p "$OUT"

section "cargo build --release -p lowp-cli"
cargo build --release -p lowp-cli >&2
LOWP="$ROOT/target/release/lowp"

section "Python environment (.venv)"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
    rm -rf "$VENV"
    python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -r tests/python/requirements.txt >&2

{
    echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "lowp: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- crates 2>/dev/null || echo ' (+ uncommitted changes)')"
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    echo "cores: $(nproc), memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
    echo "rustc: $(rustc --version)"
    echo "lowp bench --size $SIZE --threads $THREADS --ops $OPS --dtypes $DTYPES --reps $REPS${MODES:+ --modes $MODES}${FORMATS:+ --formats $FORMATS}"
} > "$OUT/machine.txt"
cat "$OUT/machine.txt" >&2

if [ "${BENCH_SKIP_CLI:-0}" != 1 ]; then
section "lowp bench (size $SIZE, threads $THREADS, ops $OPS, dtypes $DTYPES)"
args=(bench --json --size "$SIZE" --threads "$THREADS" --ops "$OPS" --dtypes "$DTYPES" --reps "$REPS" --seed "$SEED")
[ -n "$MODES" ] && args+=(--modes "$MODES")
[ -n "$FORMATS" ] && args+=(--formats "$FORMATS")
"$LOWP" "${args[@]}" > "$OUT/lowp.json.tmp"
mv "$OUT/lowp.json.tmp" "$OUT/lowp.json"
echo "wrote $OUT/lowp.json" >&2

section "numpy / ml_dtypes (size $SIZE, float32, best of $REPS)"
"$VENV/bin/python" scripts/bench_python.py run --size "$SIZE" --reps "$REPS" --seed "$SEED" --out "$OUT/python.json"

section "summary"
"$VENV/bin/python" scripts/bench_python.py summary --lowp "$OUT/lowp.json" --python "$OUT/python.json" \
    --machine "$OUT/machine.txt" --out "$OUT/summary.md"
echo "wrote $OUT/summary.md" >&2
fi

section "Python package (size ${BENCH_PKG_SIZE:-10000000} float64; lowp on 1 and 2 threads)"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check ./crates/lowp-py >&2
for t in 1 2; do
    RAYON_NUM_THREADS=$t "$VENV/bin/python" scripts/bench_package.py --size "${BENCH_PKG_SIZE:-10000000}" \
        --reps "$REPS" --seed "$SEED" --out "$OUT/package-$t.json" > "$OUT/package-$t.md"
    cat "$OUT/package-$t.md"
done

section "quantization schemes (lowp bench --schemes, and the Python package against Pychop's mx_quantize)"
QUANT_SIZE=${BENCH_QUANT_SIZE:-16777216}
QUANT_SCHEMES=${BENCH_SCHEMES:-mxfp4,mxfp8_e4m3,nvfp4,int4:g128:asym,bitmod4:g128}
"$LOWP" bench --schemes "$QUANT_SCHEMES" --dtypes f32 --size "$QUANT_SIZE" --threads "$THREADS" --reps "$REPS" \
    > "$OUT/schemes.txt"
cat "$OUT/schemes.txt"
for t in 1 2; do
    RAYON_NUM_THREADS=$t "$VENV/bin/python" scripts/bench_quant.py --size "$QUANT_SIZE" --reps "$REPS" \
        > "$OUT/quant-$t.md"
    cat "$OUT/quant-$t.md"
done

section "emulated GEMM (lowp bench --gemm, and lowp.ops.matmul against NumPy and Pychop)"
GEMM_SIZES=${BENCH_GEMM_SIZES:-256,512}
GEMM_REPS=${BENCH_GEMM_REPS:-3}
"$LOWP" bench --gemm "$GEMM_SIZES" --threads "$THREADS" --reps "$GEMM_REPS" > "$OUT/gemm.txt"
cat "$OUT/gemm.txt"
for t in 1 2; do
    RAYON_NUM_THREADS=$t OPENBLAS_NUM_THREADS=$t "$VENV/bin/python" scripts/bench_arith.py --sizes "$GEMM_SIZES" \
        --reps "$GEMM_REPS" > "$OUT/arith-$t.md"
    cat "$OUT/arith-$t.md"
done
