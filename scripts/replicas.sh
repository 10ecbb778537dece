#!/usr/bin/env bash
# CI's replica test: three replicas of the serving image behind HAProxy (docker-compose.replicas.yml).
# Under steady load through the balancer, every replica is replaced one after another
# (scripts/roll-replicas.sh), then one is killed with SIGKILL and brought back; devtools/replicas.py
# checks every answer byte for byte and fails unless none failed, was lost or was wrong.
#   bash scripts/replicas.sh
# Reuses the vae-service image scripts/smoke.sh built (builds it only if missing); builds the balancer.
# Needs docker with compose v2.24 or later; on machines without Docker Hub:
# `source ../shared/docker/ensure-docker.sh` first. REPLICAS_PORT (default 18080) and REPLICAS_RATE
# (requests per second, default 50) are for the load; REPLICAS_PROJECT names the compose project.
set -euo pipefail
cd "$(dirname "$0")/.."

read -r -a compose <<<"${COMPOSE:-docker compose}"
python=${PYTHON:-.venv/bin/python}
project=${REPLICAS_PROJECT:-vae-replicas-test}
port=${REPLICAS_PORT:-18080}
[ -x "$python" ] || bash scripts/setup.sh service
"${compose[@]}" version --short 2>/dev/null | grep -Eq '^v?2\.(2[4-9]|[3-9][0-9])' \
  || { echo "replicas: needs docker compose v2.24 or later (!override in docker-compose.replicas.yml)" >&2; exit 1; }
compose+=(-f docker-compose.replicas.yml -p "$project")

# As in scripts/smoke.sh: only mnist, so three replicas start quickly on a small machine.
mounted=$(mktemp -d)
cp -r models/mnist "$mounted/"
chmod -R a+rX "$mounted"
export VAE_MODELS_DIR=$mounted VAE_PUBLISH_ADDR=127.0.0.1 VAE_BALANCER_PORT=$port REPLICAS_PROJECT=$project
export BASE_IMAGE=${BASE_IMAGE:-python:3.11-slim}
teardown() {
  local status=$?
  if [ "$status" != 0 ]; then "${compose[@]}" logs --tail 30 >&2 || true; fi
  "${compose[@]}" down --volumes --remove-orphans >/dev/null 2>&1 || true
  rm -rf "$mounted"
  return "$status"
}
trap teardown EXIT

start=$SECONDS
build=(balancer)
docker image inspect "vae-service:${VAE_IMAGE_TAG:-latest}" >/dev/null 2>&1 || build+=(vae1)
"${compose[@]}" build -q "${build[@]}"
echo "replicas: built ${build[*]} in $((SECONDS - start)) s"
start=$SECONDS
output=$("${compose[@]}" up -d --wait --wait-timeout 240 2>&1) || { echo "$output" >&2; "${compose[@]}" ps >&2; exit 1; }
echo "replicas: three replicas and the balancer healthy in $((SECONDS - start)) s"

"$python" -m devtools.replicas --url "http://127.0.0.1:$port" --rate "${REPLICAS_RATE:-50}" --project "$project"
