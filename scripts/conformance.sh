#!/usr/bin/env bash
# The Connect conformance suite's gRPC-web server tests against the gateway (see docs/conformance.md).
#
#   scripts/conformance.sh [connectconformance flags, e.g. -v, --run PATTERN]     (or: ./dev conformance)
#
# Installs the pinned connectconformance from its Go module into .cache/bin (once), generates the Python modules
# of the suite's protos from the Go module cache into .cache/conformance (never checked in), then runs
# connectconformance --mode server against tests/gateway/conformance/server.py: a grpc.aio ConformanceService
# behind the gateway, both on 127.0.0.1. PYTHON picks the interpreter (default .venv/bin/python).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
# the newest release the Go module proxy serves when this was written; pinned so known failures stay meaningful
VERSION="${CONFORMANCE_VERSION:-v1.0.7}"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
BIN="$ROOT/.cache/bin/connectconformance"
GEN="$ROOT/.cache/conformance/$VERSION"
HERE=tests/gateway/conformance

command -v go >/dev/null || { echo "go is required to build connectconformance" >&2; exit 1; }
export GOFLAGS=-mod=mod
if [[ ! -x "$BIN" ]] || ! go version -m "$BIN" 2>/dev/null | grep -Eq "mod[[:space:]]+connectrpc.com/conformance[[:space:]]+$VERSION([[:space:]]|$)"; then
  echo "installing connectconformance $VERSION (go install)" >&2
  GOBIN="$ROOT/.cache/bin" go install "connectrpc.com/conformance/cmd/connectconformance@$VERSION"
fi

if [[ ! -f "$GEN/.complete" ]]; then
  echo "generating the conformance protos' Python modules into ${GEN#"$ROOT/"}" >&2
  MODULE_DIR="$(go mod download -json "connectrpc.com/conformance@$VERSION" | "$PY" -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')"
  WELL_KNOWN="$("$PY" -c 'import grpc_tools, os; print(os.path.join(os.path.dirname(grpc_tools.__file__), "_proto"))')"
  rm -rf "$GEN" && mkdir -p "$GEN"
  (cd "$MODULE_DIR/proto" && ls connectrpc/conformance/v1/*.proto) | xargs \
    "$PY" -m grpc_tools.protoc -I"$MODULE_DIR/proto" -I"$WELL_KNOWN" --python_out="$GEN"
  touch "$GEN/.complete"
fi

export PYTHONPATH="$ROOT:$GEN${PYTHONPATH:+:$PYTHONPATH}"
exec "$BIN" --mode server --conf "$HERE/config.yaml" --known-failing "@$HERE/known-failing.txt" "$@" \
  -- "$PY" "$ROOT/$HERE/server.py"
