#!/usr/bin/env bash
# Format check, lint and types, as CI runs them (pinned in requirements/dev.txt; config in pyproject.toml).
#   bash scripts/lint.sh          check
#   bash scripts/lint.sh --fix    format and apply safe fixes first
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.venv/bin
[ -x "$bin/ruff" ] || bash scripts/setup.sh dev
if [ "${1:-}" = --fix ]; then
  "$bin/ruff" format .
  "$bin/ruff" check --fix .
fi
"$bin/ruff" format --check .
"$bin/ruff" check .
"$bin/mypy"  # service/ and sdk/ (pyproject.toml [tool.mypy] files)
echo "lint: ruff format, ruff check and mypy passed"
