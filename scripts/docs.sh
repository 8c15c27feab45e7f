#!/usr/bin/env bash
# Build the documentation site offline into site/ (open site/index.html), or serve it with live
# reload: bash scripts/docs.sh serve
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export NO_MKDOCS_2_WARNING=1
if [ "${1:-}" = "serve" ]; then
  exec .venv/bin/mkdocs serve
fi
.venv/bin/mkdocs build --strict
echo "docs: built site/ (open site/index.html)"
