"""The Python lock: requirements.lock holds every Python package Marquee installs (runtime, the dev and ml extras,
and the build group: uv, setuptools, wheel, cython, numpy, scipy, maturin) at exact versions with their hashes.

    python scripts/lock.py refresh     re-resolve pyproject.toml into requirements.lock with the pinned uv
                                       (./dev lock; keeps current pins where they still fit, --upgrade moves them)
    python scripts/lock.py check       exit 1, saying why, when the lock does not match pyproject.toml
    python scripts/lock.py only NAME.. print the lock's entries for NAME.. (requirement lines with hashes)
    python scripts/lock.py except NAME.. print every entry but NAME..
    python scripts/lock.py runtime [--except NAME..]
                                       print the entries an installed Marquee needs (the container image): the
                                       project's dependencies and the ml extra, with all they pull in

The lock's header records a digest of the inputs it was resolved from (the project's dependencies, extras,
dependency groups and [tool.uv]); `check` recomputes it, checks that every requirement of pyproject.toml is met by
its pin, and that every entry is an exact pin with hashes, so an edited pyproject.toml without `./dev lock`, or a
hand-edited lock, fails `./dev test`. `only`, `except` and `runtime` use the standard library alone: they run
before anything is installed. `runtime` follows uv's `# via` annotations from the runtime requirements: a package is
needed when one that pulls it in is (a superset when a dependency is conditional, never a subset).
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = ROOT / "pyproject.toml"
LOCK = ROOT / "requirements.lock"
DIGEST_PREFIX = "# inputs-sha256: "
# The machine every install targets (Debian 12 x86_64, CPython 3.11): wheels are chosen for it.
PYTHON_VERSION = "3.11"
PYTHON_PLATFORM = "x86_64-manylinux_2_28"

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Entry:
    name: str
    version: str
    hashes: tuple[str, ...]
    text: str  # the entry as written, with its hash lines


def inputs_digest(pyproject: dict[str, object]) -> str:
    """What the lock is resolved from, canonically serialised: a change anywhere else in pyproject.toml (tool
    settings, docs) does not make the lock stale."""
    project = pyproject.get("project", {})
    assert isinstance(project, dict)
    tool = pyproject.get("tool", {})
    assert isinstance(tool, dict)
    inputs = {
        "dependencies": project.get("dependencies", []),
        "optional-dependencies": project.get("optional-dependencies", {}),
        "dependency-groups": pyproject.get("dependency-groups", {}),
        "tool.uv": tool.get("uv", {}),
        "target": [PYTHON_VERSION, PYTHON_PLATFORM],
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def parse_lock(text: str) -> list[Entry]:
    """The lock's entries: a `name==version \\` line followed by `--hash=sha256:...` lines and comments."""
    entries: list[Entry] = []
    block: list[str] = []

    def flush() -> None:
        if not block:
            return
        head = block[0]
        match = _PIN.match(head)
        if match is None:
            raise ValueError(f"requirements.lock: not an exact pin: {head.strip()!r}")
        hashes = tuple(h for line in block for h in re.findall(r"--hash=(sha256:[0-9a-f]{64})", line))
        entries.append(Entry(canonical(match.group(1)), match.group(2), hashes, "\n".join(block)))
        block.clear()

    for line in text.splitlines():
        if line and not line[0].isspace() and not line.startswith("#"):
            flush()
            block.append(line)
        elif block and line.strip().startswith("--hash="):
            block.append(line)
    flush()
    return entries


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*")
# The optional extras an installed Marquee needs (the recommender trains in the running service).
RUNTIME_EXTRAS = ("ml",)


def parse_via(text: str) -> dict[str, set[str]]:
    """Each entry's parents from uv's annotations (`# via NAME`, or `# via` then `#   NAME` lines); the project
    itself appears as `marquee (pyproject.toml...)`."""
    parents: dict[str, set[str]] = {}
    current: str | None = None
    for line in text.splitlines():
        if line and not line[0].isspace() and not line.startswith("#"):
            match = _PIN.match(line)
            current = canonical(match.group(1)) if match else None
            continue
        comment = line.strip()
        if current is None or not comment.startswith("#"):
            continue
        name = comment.lstrip("#").strip()
        name = name.removeprefix("via").strip()
        if (match := _NAME.match(name)) is not None:
            parents.setdefault(current, set()).add(canonical(match.group(0)))
    return parents


def runtime_names(pyproject: dict[str, object], lock_text: str) -> set[str]:
    """The lock's packages an installed Marquee needs: its dependencies, the runtime extras, and everything they
    pull in, closed over the lock's `# via` annotations."""
    parents = parse_via(lock_text)
    needed = {canonical(match.group(0)) for r in _runtime_requirements(pyproject) if (match := _NAME.match(r))}
    while True:
        more = {name for name, via in parents.items() if name not in needed and via & needed}
        if not more:
            return needed
        needed |= more


def _runtime_requirements(pyproject: dict[str, object]) -> list[str]:
    project = pyproject.get("project", {})
    assert isinstance(project, dict)
    extras = project.get("optional-dependencies", {})
    return [*project.get("dependencies", []), *(r for extra in RUNTIME_EXTRAS for r in extras.get(extra, []))]


def _requirements(pyproject: dict[str, object]) -> list[str]:
    project = pyproject.get("project", {})
    assert isinstance(project, dict)
    reqs = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        reqs += extra
    groups = pyproject.get("dependency-groups", {})
    assert isinstance(groups, dict)
    for group in groups.values():
        reqs += [r for r in group if isinstance(r, str)]
    return reqs


def problems(pyproject_text: str, lock_text: str) -> list[str]:
    """Every way the lock disagrees with pyproject.toml (empty when it is current)."""
    from packaging.requirements import Requirement  # installed from the lock; `check` runs after set-up

    pyproject = tomllib.loads(pyproject_text)
    found: list[str] = []
    digests = [line[len(DIGEST_PREFIX) :].strip() for line in lock_text.splitlines() if line.startswith(DIGEST_PREFIX)]
    digest = digests[0] if digests else None
    if digest != inputs_digest(pyproject):
        found.append("requirements.lock was resolved from other inputs than pyproject.toml's: run ./dev lock")
    try:
        entries = {e.name: e for e in parse_lock(lock_text)}
    except ValueError as exc:
        return [*found, str(exc)]
    for entry in entries.values():
        if not entry.hashes:
            found.append(f"requirements.lock: {entry.name}=={entry.version} has no hashes")
    for text in _requirements(pyproject):
        requirement = Requirement(text)
        pinned = entries.get(canonical(requirement.name))
        if pinned is None:
            found.append(f"{text!r} is in pyproject.toml but not in requirements.lock: run ./dev lock")
        elif not requirement.specifier.contains(pinned.version, prereleases=True):
            found.append(
                f"{text!r} in pyproject.toml is not met by {pinned.name}=={pinned.version} in requirements.lock"
            )
    return found


def refresh(upgrade: bool) -> int:
    uv = Path(sys.executable).parent / "uv"
    if not uv.exists():
        print("uv is not installed in this environment (./dev setup installs it from the lock)", file=sys.stderr)
        return 1
    command = [
        str(uv),
        "pip",
        "compile",
        "pyproject.toml",
        "--all-extras",
        "--group",
        "build",
        "--generate-hashes",
        "--python-version",
        PYTHON_VERSION,
        "--python-platform",
        PYTHON_PLATFORM,
        "--custom-compile-command",
        "./dev lock",
        "--quiet",
        "-o",
        "requirements.lock",
    ]
    if upgrade:
        command.append("--upgrade")
    result = subprocess.run(command, cwd=ROOT, check=False)
    if result.returncode != 0:
        return result.returncode
    digest = inputs_digest(tomllib.loads(PYPROJECT.read_text()))
    lines = [line for line in LOCK.read_text().splitlines() if not line.startswith(DIGEST_PREFIX)]
    header = next(i for i, line in enumerate(lines) if not line.startswith("#"))
    lines.insert(header, DIGEST_PREFIX + digest)
    LOCK.write_text("\n".join(lines) + "\n")
    print(f"requirements.lock: {len(parse_lock(LOCK.read_text()))} packages")
    return 0


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    command, args = argv[1], argv[2:]
    if command == "refresh":
        return refresh(upgrade="--upgrade" in args)
    if command == "check":
        found = problems(PYPROJECT.read_text(), LOCK.read_text())
        for problem in found:
            print(problem, file=sys.stderr)
        return 1 if found else 0
    if command == "runtime":
        if args and args[0] != "--except":
            print(__doc__, file=sys.stderr)
            return 2
        lock_text = LOCK.read_text()
        needed = runtime_names(tomllib.loads(PYPROJECT.read_text()), lock_text)
        needed -= {canonical(a) for a in args[1:]}
        print("\n".join(e.text for e in parse_lock(lock_text) if e.name in needed))
        return 0
    if command in ("only", "except"):
        wanted = {canonical(a) for a in args}
        entries = parse_lock(LOCK.read_text())
        known = {e.name for e in entries}
        if missing := wanted - known:
            print(f"not in requirements.lock: {', '.join(sorted(missing))}", file=sys.stderr)
            return 1
        keep = [e.text for e in entries if (e.name in wanted) == (command == "only")]
        print("\n".join(keep))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
