#!/usr/bin/env bash
# The quick benchmark (about 2.5 minutes): bash bench/run.sh [--duration S] [--soak]
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || bash scripts/setup.sh dev
exec .venv/bin/python -m bench "$@"
