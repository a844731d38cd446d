"""promtool's rule checks: `promtool check rules` (syntax, expressions, labels) and `promtool test rules` (unit
tests: series in, alerts expected out). A PrometheusRule object (what the chart renders) becomes the rules file
promtool reads: its spec is that file's content."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

PROMTOOL_TIMEOUT = 120.0


@dataclass(frozen=True)
class PromtoolResult:
    returncode: int
    output: str  # stdout and stderr together, as promtool reports

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def _run(promtool: Path, *args: str, cwd: Path | None = None) -> PromtoolResult:
    out = subprocess.run(
        [str(promtool), *args], capture_output=True, text=True, timeout=PROMTOOL_TIMEOUT, cwd=cwd, check=False
    )
    return PromtoolResult(out.returncode, out.stdout + out.stderr)


def check_rules(promtool: Path, *files: Path) -> PromtoolResult:
    """``promtool check rules --lint=all --lint-fatal FILE..``: lint findings fail too."""
    return _run(promtool, "check", "rules", "--lint=all", "--lint-fatal", *map(str, files))


def run_rule_tests(promtool: Path, *tests: Path) -> PromtoolResult:
    """``promtool test rules FILE..``: each test file names its rule files relative to itself."""
    return _run(promtool, "test", "rules", *(t.name for t in tests), cwd=_common_dir(tests))


def _common_dir(files: tuple[Path, ...]) -> Path:
    dirs = {f.resolve().parent for f in files}
    if len(dirs) != 1:
        raise ValueError("promtool test files must share a directory (their rule_files are relative to it)")
    return dirs.pop()


def rules_file(prometheus_rule: dict[str, Any], path: Path) -> Path:
    """Writes a PrometheusRule's spec (``groups: [...]``) as a promtool rules file at ``path``."""
    if prometheus_rule.get("kind") != "PrometheusRule":
        raise ValueError(f"not a PrometheusRule: {prometheus_rule.get('kind')!r}")
    path.write_text(yaml.safe_dump(prometheus_rule["spec"], sort_keys=False))
    return path
