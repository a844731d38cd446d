#!/usr/bin/env bash
# The container image's runtime root filesystem, made without a container registry (these machines reach package
# registries only, so the Dockerfile's base images cannot be pulled): Debian bookworm from debootstrap (minbase,
# from the mirror apt uses), then scripts/image-runtime.sh in it, exactly as the Dockerfile's runtime stage runs
# it. Built once into ${MARQUEE_TOOLS_CACHE:-$HOME/.cache/marquee}/image-rootfs-bookworm-<digest of that
# script>/ (about a minute) and never changed afterwards: tests/image mounts it read-only, with Marquee's
# environment at /opt/marquee, and runs the image's commands in it (docs/kubernetes.md).
#
#   scripts/image-rootfs.sh           build it if missing, then print its path
#   scripts/image-rootfs.sh --check   build nothing: print the path, or exit 1 saying it is missing
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CACHE="${MARQUEE_TOOLS_CACHE:-$HOME/.cache/marquee}"
SUITE=bookworm
SETUP="$ROOT/scripts/image-runtime.sh"
DIR="$CACHE/image-rootfs-$SUITE-$(sha256sum "$SETUP" | cut -c1-12)"

die() { printf '\033[1;31merror:\033[0m image-rootfs: %s\n' "$*" >&2; exit 1; }

if [[ "${1:-}" == "--check" ]]; then
  [[ -d "$DIR" ]] || die "missing: $DIR; run scripts/image-rootfs.sh"
  echo "$DIR"
  exit 0
fi
[[ $# -eq 0 ]] || die "usage: scripts/image-rootfs.sh [--check]"

if [[ ! -d "$DIR" ]]; then
  command -v debootstrap >/dev/null || die "debootstrap is missing (scripts/apt-packages.txt: ./dev setup installs it)"
  [[ $(id -u) -eq 0 ]] || die "debootstrap and chroot need root"
  mkdir -p "$CACHE"
  exec 9>"$CACHE/.image-rootfs.lock"
  flock 9
  if [[ ! -d "$DIR" ]]; then
    # the Debian mirror apt is configured with on this machine
    mirror="$(sed -n 's/^URIs: *\([^ ]*\).*/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1)"
    [[ -n "$mirror" ]] || mirror="$(awk '$1 == "deb" { print $2; exit }' /etc/apt/sources.list 2>/dev/null)"
    [[ -n "$mirror" ]] || die "found no Debian mirror in apt's sources"
    printf '\033[1;34m==>\033[0m image-rootfs: debootstrap %s (minbase) into %s\n' "$SUITE" "$DIR" >&2
    rm -rf "$DIR.tmp"
    debootstrap --variant=minbase --include=python3.11,tini "$SUITE" "$DIR.tmp" "$mirror" >"$CACHE/image-rootfs.log" 2>&1 \
      || die "debootstrap failed (see $CACHE/image-rootfs.log)"
    cp "$SETUP" "$DIR.tmp/tmp/image-runtime.sh"
    chroot "$DIR.tmp" sh /tmp/image-runtime.sh
    rm -f "$DIR.tmp/tmp/image-runtime.sh"
    mv "$DIR.tmp" "$DIR"
  fi
fi
echo "$DIR"
