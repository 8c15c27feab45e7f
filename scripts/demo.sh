#!/usr/bin/env bash
# Quick start: set up .venv, then train FastCUT for a few minutes on built-in images and translate.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/unpaired demo --out runs/demo "$@"
