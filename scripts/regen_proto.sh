#!/bin/sh
# Regenerate the checked-in protobuf modules from their .proto files:
#   bluezone/keyformat/gaen_export.proto (GAEN key export), bluezone/keyformat/presence.proto (CWA presence tracing).
# Needs grpcio-tools (in the test/dev venv): python -m grpc_tools.protoc.
set -eu
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY=python3
for proto in bluezone/keyformat/gaen_export.proto bluezone/keyformat/presence.proto; do
  "$PY" -m grpc_tools.protoc --proto_path=. --python_out=. --pyi_out=. "$proto"
  echo "regenerated ${proto%.proto}_pb2.py and .pyi"
done
