#!/usr/bin/env bash
# The project's one test command: Rust unit, integration and doc tests, then the Python comparison of the
# `lowp` CLI against ml_dtypes and numpy (tests/python). Needs only Rust, python3 and pip (PyPI, crates.io).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
VENV="$ROOT/.venv"

section() { printf '\n==== %s ====\n' "$*"; }

section "cargo test --workspace --release (Rust unit, integration and doc tests)"
cargo test --workspace --release --no-fail-fast

section "Python environment (.venv)"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
    rm -rf "$VENV"
    python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -r tests/python/requirements.txt
"$VENV/bin/python" -c 'import numpy, ml_dtypes, pytest; print(f"numpy {numpy.__version__}, ml_dtypes {ml_dtypes.__version__}, pytest {pytest.__version__}")'

section "cargo build --release -p lowp-cli"
cargo build --release -p lowp-cli
export LOWP_BIN="$ROOT/target/release/lowp"

section "pytest tests/python"
"$VENV/bin/python" -m pytest -q tests/python

section "all tests passed"
