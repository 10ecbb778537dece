#!/bin/sh
# Turn the replicas' VAE_* settings (seconds, possibly fractional) into HAProxy's values, then
# run HAProxy in the foreground. Defaults are service/config.py's.
set -eu
ms() { awk -v s="$1" 'BEGIN { printf "%d", s * 1000 + 0.5 }'; }

request_ms=$(ms "${VAE_REQUEST_TIMEOUT_S:-30}")
max_connections=${VAE_MAX_CONNECTIONS:-1000}
export BALANCER_HEADER_TIMEOUT_MS="$(ms "${VAE_HEADER_TIMEOUT_S:-10}")"
export BALANCER_KEEP_ALIVE_MS="$(ms "${VAE_KEEP_ALIVE_TIMEOUT_S:-5}")"
export BALANCER_SERVER_TIMEOUT_MS="$((request_ms + 5000))"
export BALANCER_QUEUE_TIMEOUT_MS="$request_ms"
export BALANCER_SHUTDOWN_MS="$(ms "${VAE_SHUTDOWN_TIMEOUT_S:-30}")"
export BALANCER_BUFSIZE="$((${VAE_MAX_HEADER_BYTES:-16384} + 16384))"
export BALANCER_MAXCONN="$max_connections"
export BALANCER_SERVER_MAXCONN="$((max_connections * 9 / 10))"
exec haproxy -W -db -f /etc/haproxy/haproxy.cfg "$@"
