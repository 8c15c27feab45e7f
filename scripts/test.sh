#!/usr/bin/env bash
# Lint, check the import layers, and run the test suite (sets up .venv first if needed).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# the shared-storage tests start a throw-away PostgreSQL server: install Debian's server package when
# it is missing and we may (root, apt); quietly, bounded in time; without it those tests skip
if ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null && ! command -v initdb >/dev/null \
  && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "test: installing postgresql (for tests/test_shared_storage.py)"
  (export DEBIAN_FRONTEND=noninteractive; timeout 300 apt-get update -qq >/dev/null \
    && timeout 600 apt-get install -y -qq --no-install-recommends postgresql >/dev/null) \
    || echo "test: could not install postgresql; the PostgreSQL tests will skip" >&2
fi
# lint, format and the architecture contract (docs/ARCHITECTURE.md) before the tests
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/lint-imports
# the documentation site builds strictly (broken links, missing pages, API entries that no longer exist)
NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict --quiet --site-dir "$(mktemp -d)"
# the compile-marked tests (torch.compile of every model and of a generator for translation, 7 minutes
# on 2 idle cores) run with:
# .venv/bin/python -m pytest -m compile tests
.venv/bin/python -m pytest tests -m "not compile" "$@"
