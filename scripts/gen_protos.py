"""Generate the code of the contracts in proto/: the Python gRPC stubs (and their type stubs) into marquee/v1/,
and the web player's TypeScript (messages and service descriptors for its gRPC-web client) into web/src/gen/.

    python scripts/gen_protos.py          regenerate
    python scripts/gen_protos.py --check  exit 1, listing the files, when the checked-in output is stale

The generator versions are pinned so output is reproducible: grpcio-tools and mypy-protobuf in pyproject.toml,
@bufbuild/buf and @bufbuild/protoc-gen-es in web/package-lock.json (installed by `npm ci` in web/, which
./dev does before it generates or checks).
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
PACKAGE_DIR = Path("marquee") / "v1"
BIN = Path(sys.executable).parent
HEADER = '"""Generated from proto/marquee/v1 by scripts/gen_protos.py. Do not edit."""\n'
WEB = Path("web")
WEB_GEN = WEB / "src" / "gen"


def _well_known_include() -> str:
    import grpc_tools

    return str(Path(grpc_tools.__file__).parent / "_proto")


def generate(out_dir: Path) -> list[Path]:
    """Generate every stub into ``out_dir`` (which mirrors the repo root); returns the files written."""
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in (PROTO_ROOT / PACKAGE_DIR).glob("*.proto"))
    if not protos:
        raise SystemExit("no .proto files under proto/marquee/v1")
    (out_dir / PACKAGE_DIR).mkdir(parents=True, exist_ok=True)
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{_well_known_include()}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        f"--plugin=protoc-gen-mypy={BIN / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={BIN / 'protoc-gen-mypy_grpc'}",
        f"--mypy_out=quiet:{out_dir}",
        f"--mypy_grpc_out=quiet:{out_dir}",
        *protos,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    (out_dir / PACKAGE_DIR / "__init__.py").write_text(HEADER)
    return sorted(p for p in (out_dir / PACKAGE_DIR).iterdir() if p.is_file())


def generate_web(out_dir: Path) -> list[Path]:
    """Generate the web client's TypeScript into ``out_dir/web/src/gen`` with buf and protoc-gen-es (the template is
    web/buf.gen.yaml, the same one `npm run gen` uses); returns the files written."""
    web = ROOT / WEB
    buf = web / "node_modules" / ".bin" / "buf"
    if not buf.exists():
        raise SystemExit("web/node_modules is missing: run ./dev setup (npm ci in web/) first")
    result = subprocess.run(
        [str(buf), "generate", "--template", "buf.gen.yaml", "--output", str(out_dir / WEB)],
        cwd=web,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise SystemExit(f"buf generate failed:\n{result.stderr}")
    return sorted(p for p in (out_dir / WEB_GEN).rglob("*") if p.is_file())


@dataclass(frozen=True)
class Target:
    """One kind of generated output: how to make it under a scratch root, and where it lives in the checkout."""

    name: str
    directory: Path  # relative to the repository root
    generate: Callable[[Path], list[Path]]
    suffixes: tuple[str, ...]


TARGETS = (
    Target("Python stubs", PACKAGE_DIR, generate, (".py", ".pyi")),
    Target("web client code", WEB_GEN, generate_web, (".ts",)),
)


def _generated_files(directory: Path, suffixes: tuple[str, ...]) -> set[str]:
    """Generated files below ``directory``, as paths relative to it."""
    if not directory.is_dir():
        return set()
    return {str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file() and p.suffix in suffixes}


def stale_files(target: Target, fresh_dir: Path) -> list[str]:
    current_dir = ROOT / target.directory
    current = _generated_files(current_dir, target.suffixes)
    fresh = _generated_files(fresh_dir, target.suffixes)
    changed = {n for n in current & fresh if not filecmp.cmp(current_dir / n, fresh_dir / n, shallow=False)}
    return sorted(str(target.directory / n) for n in (current ^ fresh) | changed)


def install(target: Target, fresh_dir: Path) -> int:
    """Replaces the checked-in output with the fresh one; returns how many files were written."""
    current_dir = ROOT / target.directory
    for name in _generated_files(current_dir, target.suffixes):
        (current_dir / name).unlink()
    written = 0
    for name in sorted(_generated_files(fresh_dir, target.suffixes)):
        (current_dir / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(fresh_dir / name, current_dir / name)
        written += 1
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="fail if the checked-in output is stale")
    args = parser.parse_args()
    stale: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        for target in TARGETS:
            scratch = Path(tmp) / target.name.replace(" ", "-")
            target.generate(scratch)
            fresh_dir = scratch / target.directory
            if args.check:
                found = stale_files(target, fresh_dir)
                stale += found
                if not found:
                    count = len(_generated_files(fresh_dir, target.suffixes))
                    print(f"{target.name}: current ({count} files)")
            else:
                print(f"wrote {install(target, fresh_dir)} files to {target.directory}")
    if stale:
        print("generated code is stale; run ./dev gen:\n  " + "\n  ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
