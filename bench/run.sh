#!/usr/bin/env bash
# The quick benchmark (about 2.5 minutes): bash bench/run.sh [--duration S] [--soak]
# The peers side by side: bash bench/run.sh --peers [--check] [--duration S]; first creates
# bench/.venvs/<peer> from bench/peers/<peer>.txt (again whenever that file changes).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || bash scripts/setup.sh dev
if [ "${1:-}" = --peers ]; then
  shift
  for requirements in bench/peers/*.txt; do
    peer=$(basename "$requirements" .txt)
    venv=bench/.venvs/$peer
    if ! cmp -s "$requirements" "$venv/requirements.txt"; then
      echo "bench/run.sh: creating $venv from $requirements"
      rm -rf "$venv"
      .venv/bin/python -m venv "$venv"
      "$venv/bin/pip" install --quiet --no-deps -r "$requirements"
      "$venv/bin/pip" check
      cp "$requirements" "$venv/requirements.txt"  # the stamp: rebuilt when the pins change
    fi
  done
  exec .venv/bin/python -m bench.peers "$@"
fi
exec .venv/bin/python -m bench "$@"
