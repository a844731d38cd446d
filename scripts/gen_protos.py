"""Generate the Python gRPC stubs (and their type stubs) from proto/ into marquee/v1/.

    python scripts/gen_protos.py          regenerate
    python scripts/gen_protos.py --check  exit 1, listing the files, when the checked-in output is stale

The generator versions are pinned in pyproject.toml (grpcio-tools, mypy-protobuf) so output is reproducible.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
PACKAGE_DIR = Path("marquee") / "v1"
BIN = Path(sys.executable).parent
HEADER = '"""Generated from proto/marquee/v1 by scripts/gen_protos.py. Do not edit."""\n'


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


def _generated_files(directory: Path) -> set[str]:
    return {p.name for p in directory.iterdir() if p.is_file() and p.suffix in (".py", ".pyi")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="fail if the checked-in stubs are stale")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        fresh_dir = Path(tmp) / PACKAGE_DIR
        generate(Path(tmp))
        target = ROOT / PACKAGE_DIR
        if args.check:
            current = _generated_files(target) if target.is_dir() else set()
            fresh = _generated_files(fresh_dir)
            stale = sorted(
                (current ^ fresh)
                | {n for n in current & fresh if not filecmp.cmp(target / n, fresh_dir / n, shallow=False)}
            )
            if stale:
                print("generated stubs are stale; run ./dev gen:\n  " + "\n  ".join(stale), file=sys.stderr)
                return 1
            print(f"generated stubs are current ({len(fresh)} files)")
            return 0
        if target.exists():
            for name in _generated_files(target):
                (target / name).unlink()
        target.mkdir(parents=True, exist_ok=True)
        for f in fresh_dir.iterdir():
            shutil.copy2(f, target / f.name)
        print(f"wrote {len(list(fresh_dir.iterdir()))} files to {PACKAGE_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
