#!/bin/sh
# The container image's runtime system, set up as root inside its root filesystem (Debian bookworm): Debian's
# Python 3.11 and tini, the non-root user `marquee` (uid/gid 10001) and the directories Marquee writes to (its
# volumes). The Dockerfile's runtime stage runs it, and so does scripts/image-rootfs.sh in a root filesystem made
# by debootstrap, which is how the tests run the image's commands on machines without a container registry.
set -eu
missing=""
for pkg in python3.11 tini; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing="$missing $pkg"
done
if [ -n "$missing" ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # shellcheck disable=SC2086 # a list of package names
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb
getent group marquee >/dev/null || groupadd --gid 10001 marquee
getent passwd marquee >/dev/null || useradd --uid 10001 --gid marquee --home-dir /var/lib/marquee \
  --no-create-home --shell /usr/sbin/nologin marquee
install -d -o marquee -g marquee /var/lib/marquee /var/cache/marquee
install -d /opt/marquee
