#!/usr/bin/env bash
# Lint, check the import layers, and run the test suite (sets up .venv first if needed).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# lint, format and the architecture contract (docs/ARCHITECTURE.md) before the tests
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/lint-imports
# the documentation site builds strictly (broken links, missing pages, API entries that no longer exist)
NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict --quiet --site-dir "$(mktemp -d)"
# the compile-marked tests (torch.compile of every model, minutes each on 2 cores; CUT's is a known
# mismatch, README Speed) run with: .venv/bin/python -m pytest -m compile tests/test_compiled_step.py
.venv/bin/python -m pytest tests -m "not compile" "$@"
