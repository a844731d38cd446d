"""The container image's runtime, run without a container engine or registry: the root filesystem of the
Dockerfile's runtime stage (Debian bookworm from debootstrap with scripts/image-runtime.sh applied, made once by
scripts/image-rootfs.sh), Marquee installed into its /opt/marquee the way the builder stage installs it (the lock's
runtime entries by hash, then the wheel built by maturin --locked with the web player inside and LightFM's wheel),
and each command run the way the image runs it: in new mount and PID namespaces, chrooted, the root filesystem
read-only, tmpfs on /tmp and the cache, the data directory a volume, tini as PID 1, user 10001, the image's
environment.

The root filesystem stays as it was built: each run mounts it read-only on a mount point of its own, and puts the
writable directories on top; /opt/marquee is a directory outside it, mounted read-only except while installing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".venv" / "bin"
BUILD_TIMEOUT = 1800.0  # a cold release build of the Rust extension on a busy machine; the tools report when done
USER = "10001:10001"  # the image's user (scripts/image-runtime.sh)
# The image's environment (the Dockerfile's ENV)
IMAGE_ENV = {
    "PATH": "/opt/marquee/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONUNBUFFERED": "1",
    "LANG": "C.UTF-8",
    "HOME": "/var/lib/marquee",
    "XDG_CACHE_HOME": "/var/cache/marquee",
    "MARQUEE_DATA_DIR": "/var/lib/marquee",
}

# Runs "$@" in the image: $1 the root filesystem, $2 an empty directory to mount it on, $3 Marquee's environment
# (/opt/marquee), $4 "ro" or "rw" for it, $5 the data directory (/var/lib/marquee), $6 the user; then
# HOST_DIR:/tmp/NAME binds until "--".
RUN_IN_IMAGE = r"""
set -eu
rootfs=$1 root=$2 opt=$3 opt_mode=$4 data=$5 user=$6
shift 6
mount --bind "$rootfs" "$root"
mount -o remount,bind,ro "$root"
mount --rbind /dev "$root/dev"
mount -t proc proc "$root/proc"
mount -t tmpfs -o mode=1777 tmpfs "$root/tmp"
mount -t tmpfs -o mode=0700,uid=10001,gid=10001 tmpfs "$root/var/cache/marquee"
mount --bind "$opt" "$root/opt/marquee"
mount -o "remount,bind,$opt_mode" "$root/opt/marquee"
mount --bind "$data" "$root/var/lib/marquee"
while [ "$1" != "--" ]; do
  mkdir -p "$root${1#*:}"
  mount --bind "${1%%:*}" "$root${1#*:}"
  shift
done
shift
exec chroot --userspec="$user" "$root" "$@"
"""


class ImageError(RuntimeError):
    pass


def namespaces_unavailable() -> str | None:
    """Why commands cannot run in the image here (no mount/PID namespaces, or no chroot), or None."""
    missing = [tool for tool in ("unshare", "chroot", "mount") if shutil.which(tool) is None]
    if missing:
        return f"{', '.join(missing)} not found"
    probe = subprocess.run(
        ["unshare", "--mount", "--pid", "--fork", "sh", "-c", "mount -t tmpfs tmpfs /mnt"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if probe.returncode != 0:
        return f"cannot make mount and PID namespaces here (unshare --mount --pid): {probe.stderr.strip()}"
    return None


def image_rootfs() -> Path:
    """The runtime root filesystem (scripts/image-rootfs.sh --check: ./dev test builds it before pytest)."""
    out = subprocess.run(
        [str(ROOT / "scripts" / "image-rootfs.sh"), "--check"], capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise ImageError(out.stderr.strip())
    return Path(out.stdout.strip())


def _run(cmd: list[str], cwd: Path | None = None) -> str:
    out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False)
    if out.returncode != 0:
        raise ImageError(f"{' '.join(cmd)} exited {out.returncode}:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return out.stdout


def _lock(*args: str) -> str:
    return _run([sys.executable, str(ROOT / "scripts" / "lock.py"), *args])


@dataclass(frozen=True)
class Wheels:
    dir: Path  # Marquee's and LightFM's wheels, runtime.txt, and the uv that installs them
    marquee: Path


def build_wheels(workdir: Path) -> Wheels:
    """What the builder stage builds: Marquee's wheel (maturin --locked, the web player inside), LightFM's wheel
    from its locked sdist, and the lock's runtime entries but LightFM (runtime.txt)."""
    if not (ROOT / "web" / "dist" / "index.html").is_file():
        raise ImageError("web/dist is not built (./dev setup builds it); the wheel would carry no player")
    wheels = workdir / "wheels"
    _run([str(VENV_BIN / "maturin"), "build", "--release", "--locked", "--out", str(wheels)], cwd=ROOT)
    [marquee] = wheels.glob("marquee-*.whl")
    (workdir / "lightfm.txt").write_text(_lock("only", "lightfm"))
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--require-hashes",
          "-r", str(workdir / "lightfm.txt"), "-w", str(wheels)])  # fmt: skip
    (wheels / "runtime.txt").write_text(_lock("runtime", "--except", "lightfm"))
    shutil.copy(VENV_BIN / "uv", wheels / "uv")
    return Wheels(wheels, marquee)


@dataclass(frozen=True)
class Image:
    rootfs: Path
    opt: Path  # /opt/marquee
    workdir: Path

    def command(
        self, *cmd: str, data: Path, user: str = USER, opt_mode: str = "ro", binds: dict[Path, str] | None = None
    ) -> list[str]:
        """The host command that runs ``cmd`` in the image with ``data`` as its data directory (pass it to
        subprocess with ``env=IMAGE_ENV``)."""
        root = self.workdir / f"root-{os.urandom(4).hex()}"  # a mount point of its own for each run
        root.mkdir()
        bind_args = [f"{host}:{inside}" for host, inside in (binds or {}).items()]
        return [
            "unshare", "--mount", "--pid", "--fork", "--kill-child",
            "sh", "-c", RUN_IN_IMAGE, "run-in-image",
            str(self.rootfs), str(root), str(self.opt), opt_mode, str(data), user, *bind_args, "--",
            "/usr/bin/tini", "--", *cmd,
        ]  # fmt: skip

    def run(self, *cmd: str, data: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """``cmd`` in the image as its user, to completion."""
        argv = self.command(*cmd, data=data)
        return subprocess.run(argv, env=IMAGE_ENV, capture_output=True, text=True, timeout=timeout, check=False)


def install(rootfs: Path, wheels: Wheels, workdir: Path) -> Image:
    """Marquee's environment in the image's /opt/marquee, as the builder stage makes it: a venv without pip, the
    runtime entries by hash, then the wheels (installed with uv, offline, from the machine's uv cache, where
    ./dev setup put every locked package)."""
    opt = workdir / "opt-marquee"
    opt.mkdir()
    image = Image(rootfs, opt, workdir)
    scratch = workdir / "install-data"
    scratch.mkdir()
    uv_cache = Path(_run([str(VENV_BIN / "uv"), "cache", "dir"]).strip())
    uv = [
        "/tmp/wheels/uv",
        "pip",
        "install",
        "--quiet",
        "--offline",
        "--python",
        "/opt/marquee/bin/python",
        "--compile-bytecode",
    ]
    steps = [
        ["python3.11", "-m", "venv", "--without-pip", "/opt/marquee"],
        [*uv, "--no-deps", "--require-hashes", "-r", "/tmp/wheels/runtime.txt"],
        [*uv, "--no-deps", *(f"/tmp/wheels/{w.name}" for w in sorted(wheels.dir.glob("*.whl")))],
    ]
    for step in steps:
        out = subprocess.run(
            image.command(
                *step, data=scratch, user="0:0", opt_mode="rw", binds={wheels.dir: "/tmp/wheels", uv_cache: "/tmp/uv"}
            ),
            env={**IMAGE_ENV, "UV_CACHE_DIR": "/tmp/uv"},
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT,
            check=False,
        )
        if out.returncode != 0:
            raise ImageError(f"{' '.join(step)} in the image exited {out.returncode}:\n{out.stdout}\n{out.stderr}")
    return image


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``root`` with its size and modification time."""
    found: dict[str, tuple[int, int]] = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = Path(dirpath) / name
            st = path.lstat()
            found[str(path.relative_to(root))] = (st.st_size, st.st_mtime_ns)
    return found
