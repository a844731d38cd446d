#!/usr/bin/env bash
# The Kubernetes tooling of the chart checks (docs/kubernetes.md), built or fetched once at pinned versions into
# the tools cache outside the clone, ${MARQUEE_TOOLS_CACHE:-$HOME/.cache/marquee}:
#
#   helm-v3.22.0/bin/helm                     go install helm.sh/helm/v3/cmd/helm (about 6 min cold)
#   kubernetes-v1.37.2/bin/kube-apiserver     go build through a wrapper module that requires k8s.io/kubernetes
#   kubernetes-v1.37.2/bin/kubectl            and replaces each ./staging/src/k8s.io/X with k8s.io/X v0.37.2
#                                             (about 14 min and 3.5 GB of build cache on 2 idle cores)
#   promtool-v0.316.0/bin/promtool            go install github.com/prometheus/prometheus/cmd/promtool
#   crds-<versions>/*.yaml                    the CRDs the chart uses, from their projects' Go modules
#   go-build/                                 the Go build cache of these builds (GOCACHE)
#
# etcd is Debian's etcd-server (scripts/apt-packages.txt, installed by ./dev). Each tool goes to a temporary
# directory renamed into place when complete, so an interrupted build starts again and a finished one is never
# redone; a lock keeps two worktrees from building at once. Go builds run under `nice -n 19`.
#
#   scripts/k8s-tools.sh           build or fetch what is missing, then print NAME=PATH lines (logs go to stderr)
#   scripts/k8s-tools.sh --check   build nothing: print the lines, or exit 1 naming what is missing
set -euo pipefail

HELM_VERSION=v3.22.0
KUBE_VERSION=v1.37.2          # kube-apiserver and kubectl; the staging modules k8s.io/X are v0.MINOR.PATCH
PROMETHEUS_VERSION=v0.316.0   # the Go module version of Prometheus 3.16.0 (promtool), which it reports
PROMETHEUS_RELEASE=3.16.0
# The CRD modules and their h1 sums (`go mod download -json` reports the sum of what it fetched; the checksum
# database has no entry for scylla-operator's versions, so each module is checked against the sum pinned here).
SCYLLA_OPERATOR=github.com/scylladb/scylla-operator@v1.18.0
SCYLLA_OPERATOR_SUM=h1:Pv6IkFWtc0h9TUqQH0CO7/rdJBoxglYp0sKqYMnKLic=
PROMETHEUS_OPERATOR=github.com/prometheus-operator/prometheus-operator@v0.85.0
PROMETHEUS_OPERATOR_SUM=h1:M5xLCLEoaW2IJfnuCwFzzpL+jSVQu3KGT84Pye+fW8s=
KEDA=github.com/kedacore/keda/v2@v2.21.0
KEDA_SUM=h1:R6z2HZvstK4RLUMxroNACzBj74xGxt3kG59b5Xc+Xps=
# module  sum  file in the module  (one CRD a line; the file keeps its name in the cache)
CRD_FILES=(
  "$SCYLLA_OPERATOR $SCYLLA_OPERATOR_SUM pkg/api/scylla/v1/scylla.scylladb.com_scyllaclusters.yaml"
  "$PROMETHEUS_OPERATOR $PROMETHEUS_OPERATOR_SUM example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml"
  "$PROMETHEUS_OPERATOR $PROMETHEUS_OPERATOR_SUM example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml"
  "$KEDA $KEDA_SUM config/crd/bases/keda.sh_scaledobjects.yaml"
)

CACHE="${MARQUEE_TOOLS_CACHE:-$HOME/.cache/marquee}"
HELM_DIR="$CACHE/helm-$HELM_VERSION"
KUBE_DIR="$CACHE/kubernetes-$KUBE_VERSION"
PROMTOOL_DIR="$CACHE/promtool-$PROMETHEUS_VERSION"
CRDS_DIR="$CACHE/crds-scylla-operator-${SCYLLA_OPERATOR#*@}-prometheus-operator-${PROMETHEUS_OPERATOR#*@}-keda-${KEDA#*@}"

log() { printf '\033[1;34m==>\033[0m k8s-tools: %s\n' "$*" >&2; }
die() { printf '\033[1;31merror:\033[0m k8s-tools: %s\n' "$*" >&2; exit 1; }

paths() {  # NAME=PATH, one a line
  printf '%s\n' "helm=$HELM_DIR/bin/helm" "kube-apiserver=$KUBE_DIR/bin/kube-apiserver" "kubectl=$KUBE_DIR/bin/kubectl" \
    "promtool=$PROMTOOL_DIR/bin/promtool" "etcd=$(command -v etcd || echo /usr/bin/etcd)" "crds=$CRDS_DIR"
}

print_paths() {
  local missing=() line
  while IFS= read -r line; do
    [[ -e "${line#*=}" ]] || missing+=("${line%%=*} (${line#*=})")
  done < <(paths)
  ((${#missing[@]} == 0)) || die "missing: ${missing[*]}; run scripts/k8s-tools.sh (etcd: ./dev setup)"
  paths
}

if [[ "${1:-}" == "--check" ]]; then print_paths; exit 0; fi
[[ $# -eq 0 ]] || die "usage: scripts/k8s-tools.sh [--check]"

command -v go >/dev/null || die "go is required to build helm, kube-apiserver, kubectl and promtool"
mkdir -p "$CACHE"
exec 9>"$CACHE/.k8s-tools.lock"
flock 9  # another worktree may be building the same tools: wait for it, then find them done

export GOCACHE="$CACHE/go-build" GOFLAGS=-mod=mod CGO_ENABLED=0
# scylla-operator's versions are not in the checksum database (its lookup answers 404): the pinned sums above
# check every CRD module instead
export GONOSUMDB="${SCYLLA_OPERATOR%@*}"
GO=(nice -n 19 go)

# fresh TMP for DIR: a scratch directory next to DIR, renamed to DIR by `finish` once the tool is complete
fresh() { rm -rf "$1.tmp" && mkdir -p "$1.tmp"; }
finish() { rm -rf "$1" && mv "$1.tmp" "$1"; }

module_dir() {  # module@version expected-sum -> the module's directory in the module cache
  local json sum dir
  json="$(cd "$CACHE" && go mod download -json "$1")" || die "go mod download $1 failed: $json"
  sum="$(sed -n 's/^\t"Sum": "\(.*\)",$/\1/p' <<<"$json")"
  dir="$(sed -n 's/^\t"Dir": "\(.*\)",$/\1/p' <<<"$json")"
  [[ "$sum" == "$2" ]] || die "$1: go mod download reports sum '$sum', pinned $2"
  echo "$dir"
}

if [[ ! -x "$HELM_DIR/bin/helm" ]]; then
  log "building helm $HELM_VERSION (go install, about 6 min on 2 idle cores)"
  fresh "$HELM_DIR"
  # the version flags of helm's Makefile: its own version, and the Kubernetes version it assumes without
  # --kube-version (that of the client-go it requires; a plain go install would assume 1.20)
  helm_mod="$(cd "$CACHE" && go mod download -json "helm.sh/helm/v3@$HELM_VERSION" | sed -n 's/^\t"GoMod": "\(.*\)",$/\1/p')"
  k8s_minor="$(sed -n 's#^\tk8s\.io/client-go v0\.\([0-9]*\)\..*#\1#p' "$helm_mod")"
  [[ -n "$k8s_minor" ]] || die "found no k8s.io/client-go requirement in helm's go.mod ($helm_mod)"
  ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
  for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
    ldflags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$k8s_minor"
  done
  GOBIN="$HELM_DIR.tmp/bin" "${GO[@]}" install -trimpath -ldflags "$ldflags" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  finish "$HELM_DIR"
fi

if [[ ! -x "$KUBE_DIR/bin/kube-apiserver" || ! -x "$KUBE_DIR/bin/kubectl" ]]; then
  log "building kube-apiserver and kubectl $KUBE_VERSION (about 14 min on 2 idle cores)"
  fresh "$KUBE_DIR"
  kube_mod="$(cd "$CACHE" && go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/^\t"GoMod": "\(.*\)",$/\1/p')"
  [[ -f "$kube_mod" ]] || die "go mod download k8s.io/kubernetes@$KUBE_VERSION failed"
  staging_version="v0.${KUBE_VERSION#v1.}"
  src="$KUBE_DIR.tmp/src"
  mkdir -p "$src"
  {
    echo "// The wrapper module that builds kube-apiserver and kubectl from k8s.io/kubernetes (scripts/k8s-tools.sh):"
    echo "// k8s.io/kubernetes replaces its staging modules with directories, which only a main module may do."
    echo "module marquee.invalid/kubetools"
    echo
    grep -m1 '^go ' "$kube_mod"
    echo
    echo "require k8s.io/kubernetes $KUBE_VERSION"
    echo
    sed -n 's#^\t\(k8s\.io/[a-z0-9-]*\) => \./staging/src/k8s\.io/[a-z0-9-]*$#replace \1 => \1 '"$staging_version"'#p' "$kube_mod"
  } >"$src/go.mod"
  grep -q '^replace k8s.io/client-go ' "$src/go.mod" || die "found no staging replacements in $kube_mod"
  # the version the binaries report (what Kubernetes' own build sets from git)
  ldflags="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$(cut -d. -f2 <<<"$KUBE_VERSION")"
    ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  (cd "$src" && "${GO[@]}" build -trimpath -ldflags "$ldflags" -o "$KUBE_DIR.tmp/bin/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kubectl)
  finish "$KUBE_DIR"
fi

if [[ ! -x "$PROMTOOL_DIR/bin/promtool" ]]; then
  log "building promtool (github.com/prometheus/prometheus $PROMETHEUS_VERSION)"
  fresh "$PROMTOOL_DIR"
  # the version flags of Prometheus' own build (promu)
  ldflags="-s -w -X github.com/prometheus/common/version.Version=$PROMETHEUS_RELEASE"
  ldflags+=" -X github.com/prometheus/common/version.Branch=HEAD -X github.com/prometheus/common/version.Revision=$PROMETHEUS_VERSION"
  GOBIN="$PROMTOOL_DIR.tmp/bin" "${GO[@]}" install -trimpath -ldflags "$ldflags" \
    "github.com/prometheus/prometheus/cmd/promtool@$PROMETHEUS_VERSION"
  finish "$PROMTOOL_DIR"
fi

if [[ ! -d "$CRDS_DIR" ]]; then
  log "taking the CRDs from scylla-operator, prometheus-operator and KEDA's Go modules"
  fresh "$CRDS_DIR"
  for line in "${CRD_FILES[@]}"; do
    read -r module sum file <<<"$line"
    dir="$(module_dir "$module" "$sum")"
    [[ -f "$dir/$file" ]] || die "$module has no $file"
    cp "$dir/$file" "$CRDS_DIR.tmp/"
    echo "$(basename "$file") $module $file" >>"$CRDS_DIR.tmp/SOURCES"
  done
  chmod u+w "$CRDS_DIR.tmp"/*  # the module cache's files are read-only
  finish "$CRDS_DIR"
fi

command -v etcd >/dev/null || die "etcd is missing: it comes from Debian's etcd-server (./dev setup installs it)"
print_paths
