#!/bin/sh
# Regenerate the checked-in protobuf module from bluezone/matching/gaen_export.proto.
# Needs grpcio-tools (in the test/dev venv): python -m grpc_tools.protoc.
set -eu
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY=python3
"$PY" -m grpc_tools.protoc --proto_path=. --python_out=. --pyi_out=. bluezone/matching/gaen_export.proto
echo "regenerated bluezone/matching/gaen_export_pb2.py and .pyi"
