"""Print the requirements of pyproject.toml (runtime plus the named extras, or with --only just the extras), one
per line, for pip -r."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path


def main(argv: list[str]) -> int:
    only = len(argv) > 1 and argv[1] == "--only"
    if only:
        argv = [argv[0], *argv[2:]]
    if len(argv) < 2:
        print("usage: requirements.py [--only] PYPROJECT [EXTRA...]", file=sys.stderr)
        return 2
    project = tomllib.loads(Path(argv[1]).read_text())["project"]
    lines = [] if only else list(project.get("dependencies", []))
    for extra in argv[2:]:
        lines += project.get("optional-dependencies", {}).get(extra, [])
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
