#!/usr/bin/env bash
# buf lint (STANDARD rules, buf.yaml) and buf format on proto/. Installs the pinned buf from its Go module into
# .cache/bin the first time (the Go module proxy is reachable from CI).
set -euo pipefail
cd "$(dirname "$0")/.."
BUF_VERSION=v1.75.0
BUF=.cache/bin/buf
if [[ ! -x "$BUF" ]] || [[ "$("$BUF" --version 2>/dev/null)" != "${BUF_VERSION#v}" ]]; then
  command -v go >/dev/null || { echo "go is required to install buf" >&2; exit 1; }
  echo "installing buf ${BUF_VERSION} (go install)" >&2
  GOBIN="$PWD/.cache/bin" GOFLAGS=-mod=mod go install "github.com/bufbuild/buf/cmd/buf@${BUF_VERSION}"
fi
"$BUF" lint
"$BUF" format --diff --exit-code
echo "buf lint and format: ok"
