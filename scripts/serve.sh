#!/usr/bin/env bash
# Set up the serving environment and run the service on the shipped models (port 8000).
# Configuration: VAE_* environment variables (see README, "Configuration").
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh service
exec .venv/bin/python -m service "$@"
