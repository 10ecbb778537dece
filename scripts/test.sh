#!/usr/bin/env bash
# The one way to run the tests on a fresh machine: set up .venv, then pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
exec .venv/bin/python -m pytest "$@"
