#!/usr/bin/env bash
# Regenerate service/oip/generated/ (the Open Inference Protocol's gRPC stubs) from
# service/oip/grpc_predict_v2.proto. The stubs are committed, so neither the service nor CI runs
# this; grpcio-tools 1.76 bundles a protoc whose output runs on the pinned protobuf 6.x (the
# newest grpcio-tools needs protobuf 7, which tritonclient does not accept).
set -euo pipefail
cd "$(dirname "$0")/.."
tools=${GRPC_TOOLS_VENV:-/tmp/vae-grpc-tools}
[ -x "$tools/bin/python" ] || { python3 -m venv "$tools"; "$tools/bin/pip" install --quiet grpcio-tools==1.76.0 protobuf==6.33.6; }
mkdir -p service/oip/generated
"$tools/bin/python" -m grpc_tools.protoc -I service/oip/generated=service/oip \
  --python_out=. --pyi_out=. --grpc_python_out=. service/oip/generated/grpc_predict_v2.proto
touch service/oip/generated/__init__.py
echo "gen-grpc: wrote $(ls service/oip/generated | paste -sd ' ')"
