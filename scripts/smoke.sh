#!/usr/bin/env bash
# Smoke-test the serving image through docker compose: build it, start it on 127.0.0.1, check
# what a user meets first (health, a PNG grid from /sample, /encode of a real PNG), tear it down.
#   bash scripts/smoke.sh
# Needs docker with compose, and .venv for the checks (bash scripts/setup.sh service makes it).
# On machines without Docker Hub: `source ../shared/docker/ensure-docker.sh` first (docs/docker.md).
# SMOKE_PORT (default 18000) keeps it clear of a service already running on 8000.
set -euo pipefail
cd "$(dirname "$0")/.."

read -r -a compose <<<"${COMPOSE:-docker compose}"
python=${PYTHON:-.venv/bin/python}
port=${SMOKE_PORT:-18000}
project=${SMOKE_PROJECT:-vae-smoke}
[ -x "$python" ] || bash scripts/setup.sh service

# The compose volume replaces the baked-in models/ with a folder holding only mnist: the
# checks below see which one the service loaded, and that the non-root user can read a mount.
mounted=$(mktemp -d)
cp -r models/mnist "$mounted/"
chmod -R a+rX "$mounted"

export VAE_PUBLISH_ADDR=127.0.0.1 VAE_PUBLISH_PORT=$port VAE_MODELS_DIR=$mounted
export BASE_IMAGE=${BASE_IMAGE:-python:3.11-slim}
teardown() {
  local status=$?
  if [ "$status" != 0 ]; then "${compose[@]}" -p "$project" logs --tail 60 >&2 || true; fi
  "${compose[@]}" -p "$project" down --volumes --remove-orphans >/dev/null 2>&1 || true
  rm -rf "$mounted"
  return "$status"
}
trap teardown EXIT

# Every service setting reaches the container: compose lists each VAE_* name it passes through.
"${compose[@]}" -p "$project" config --format json | "$python" -c "
import json, sys
from service.config import Settings
passed = set(json.load(sys.stdin)['services']['vae']['environment'])
missing = sorted({f'VAE_{name.upper()}' for name in Settings.model_fields} - passed)
assert not missing, f'docker-compose.yml does not pass {missing} through; add them under environment:'
print(f'smoke: docker-compose.yml passes all {len(Settings.model_fields)} VAE_* settings through')
"

start=$SECONDS
"${compose[@]}" -p "$project" up -d --build
container=$("${compose[@]}" -p "$project" ps -q vae)
# Works with compose v1 too (no --wait there): the container's own healthcheck, GET /ready.
for _ in $(seq 120); do
  health=$(docker inspect --format '{{.State.Health.Status}}' "$container")
  [ "$health" = healthy ] && break
  [ "$(docker inspect --format '{{.State.Running}}' "$container")" = true ] || { echo "smoke: the container exited" >&2; exit 1; }
  sleep 1
done
[ "$health" = healthy ] || { echo "smoke: not healthy after 120 s (status: $health)" >&2; exit 1; }
echo "smoke: build and start until healthy took $((SECONDS - start)) s"

image=$(docker inspect --format '{{.Config.Image}}' "$container")
docker image ls "$image" --format 'smoke: image {{.Repository}}:{{.Tag}} is {{.Size}}'

# What the image holds: a non-root user, no torch, no tests, the models baked in.
baked=$(cd models && ls -d */ | tr -d / | sort | paste -sd,)
docker run --rm --entrypoint python "$image" -c "
import importlib.util, os, pathlib
assert os.getuid() != 0, 'runs as root'
assert importlib.util.find_spec('torch') is None, 'torch is installed'
assert not pathlib.Path('/app/tests').exists() and not pathlib.Path('/app/training').exists(), 'tests or training copied'
baked = ','.join(sorted(p.parent.name for p in pathlib.Path('/app/models').glob('*/model.json')))
assert baked == '$baked', f'baked-in models {baked}, expected $baked'
print('smoke: image runs as uid', os.getuid(), 'without torch; baked-in models:', baked)
"

"$python" - "http://127.0.0.1:$port" <<'PY'
import io, json, sys, urllib.request, uuid
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

base = sys.argv[1]


def request(method, path, body=None, headers=None):
    req = urllib.request.Request(base + path, data=body, method=method, headers=headers or {})
    with urllib.request.urlopen(req, timeout=30) as response:
        return response.status, response.headers, response.read()


status, _, body = request("GET", "/health")
assert (status, json.loads(body)) == (200, {"status": "ok"}), (status, body)
status, _, body = request("GET", "/ready")
assert status == 200 and json.loads(body)["status"] == "ready", (status, body)
models = json.loads(request("GET", "/models")[2])
names = sorted(m["name"] for m in models["models"])
assert names == ["mnist"], f"the mounted folder holds only mnist, the service loaded {names}"
latent_dim = models["models"][0]["card"]["latent_dim"]
print(f"smoke: /health ok, /ready ok, serving {names} from the mounted folder")

# /sample?n=16: one PNG grid, 4 x 4 cells of 28 px with 2 px between them (docs/api.md).
status, headers, png = request("POST", "/sample?n=16&seed=0")
assert status == 200 and headers["Content-Type"] == "image/png", (status, headers["Content-Type"])
assert png[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG signature"
grid = Image.open(io.BytesIO(png))
grid.load()
side = 4 * 28 + 3 * 2
assert (grid.size, grid.mode) == ((side, side), "L"), (grid.size, grid.mode)
assert np.asarray(grid).std() > 0, "the grid is blank"
print(f"smoke: /sample?n=16 -> {grid.size[0]}x{grid.size[1]} grayscale PNG grid, {len(png)} bytes")

# /encode: a real digit when the tests left data/mnist.npz, else one drawn here.
npz = Path("data/mnist.npz")
if npz.exists():
    digit, source = Image.fromarray(np.load(npz)["test_images"][0]), "data/mnist.npz"
else:
    digit, source = Image.new("L", (28, 28)), "drawn"
    ImageDraw.Draw(digit).line([(14, 4), (14, 24)], fill=255, width=3)
upload = io.BytesIO()
digit.save(upload, format="PNG")
boundary = uuid.uuid4().hex
body = (
    f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="digit.png"\r\n'
    f"Content-Type: image/png\r\n\r\n"
).encode() + upload.getvalue() + f"\r\n--{boundary}--\r\n".encode()
status, _, body = request("POST", "/encode", body, {"Content-Type": f"multipart/form-data; boundary={boundary}"})
result = json.loads(body)
assert status == 200 and len(result["results"]) == 1, (status, result)
mu = np.asarray(result["results"][0]["mu"])
assert mu.shape == (latent_dim,) and np.isfinite(mu).all(), mu
print(f"smoke: /encode of a {source} PNG -> mu of {latent_dim} finite values")
PY
echo "smoke: passed"
