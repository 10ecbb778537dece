#!/usr/bin/env bash
# Replace the replicas of a running docker-compose.replicas.yml stack one after another, losing no
# request (docs/docker.md "Replicas"). For each replica:
#   1. the balancer drains it: no new requests, those in flight finish (HAProxy's runtime API);
#   2. compose recreates it from the current image and settings (SIGTERM: it finishes anything left);
#   3. once the new container answers GET /ready, the balancer takes it back, and the next one starts
#      only when the balancer reports it UP.
# A replica that is not running (crashed, killed) is simply started and taken back.
#   bash scripts/roll-replicas.sh [vae1 vae2 ...]     default: vae1 vae2 vae3
# REPLICAS_PROJECT (default vae-replicas) names the compose project; COMPOSE the compose command.
set -euo pipefail
cd "$(dirname "$0")/.."
read -r -a compose <<<"${COMPOSE:-docker compose}"
compose+=(-f docker-compose.replicas.yml -p "${REPLICAS_PROJECT:-vae-replicas}")
replicas=("$@")
[ ${#replicas[@]} -gt 0 ] || replicas=(vae1 vae2 vae3)
timeout=${ROLL_TIMEOUT_S:-120}

runtime_api() { echo "$*" | "${compose[@]}" exec -T balancer socat stdio /tmp/haproxy-admin.sock; }

# A field of `show stat` (scur: requests on it now; status: UP, DOWN, DRAIN, MAINT, ...) for one server.
server_stat() {
  runtime_api "show stat" | awk -F, -v server="$1" -v field="$2" '
    NR == 1 { sub(/^# /, ""); for (i = 1; i <= NF; i++) if ($i == field) column = i }
    $1 == "replicas" && $2 == server { print $column }'
}

# wait_for DESCRIPTION COMMAND...: poll every half second until COMMAND succeeds, or give up.
wait_for() {
  local what=$1 deadline=$((SECONDS + timeout))
  shift
  until "$@"; do
    [ $SECONDS -lt $deadline ] || { echo "roll: gave up after ${timeout} s waiting until $what" >&2; return 1; }
    sleep 0.5
  done
}
idle() { [ "$(server_stat "$1" scur)" = 0 ]; }
ready() { "${compose[@]}" exec -T "$1" python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/ready', timeout=2)" >/dev/null 2>&1; }
up_in_balancer() { [ "$(server_stat "$1" status)" = UP ]; }

for replica in "${replicas[@]}"; do
  start=$SECONDS
  runtime_api "set server replicas/$replica state drain" >/dev/null
  wait_for "$replica has no request in flight" idle "$replica"
  output=$("${compose[@]}" up -d --no-deps --force-recreate "$replica" 2>&1) || { echo "$output" >&2; exit 1; }
  wait_for "the new $replica is ready" ready "$replica"
  runtime_api "set server replicas/$replica state ready" >/dev/null
  wait_for "the balancer sends to $replica again" up_in_balancer "$replica"
  echo "roll: $replica replaced and back in the balancer in $((SECONDS - start)) s"
done
