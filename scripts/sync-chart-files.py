#!/usr/bin/env python3
"""Copy what the Helm chart ships from the package, and keep its appVersion equal to the package's.

The chart cannot read files outside its directory, so it carries copies:
``charts/csi-sidecars/files/crds/`` of ``csi_sidecars/crds/*.yaml`` (the snapshot CRDs) and
``charts/csi-sidecars/files/rbac/`` of ``csi_sidecars/playground/rbac/*.yaml`` (the rules each
role uses). ``appVersion`` in Chart.yaml is ``csi_sidecars.__version__``.

usage: python scripts/sync-chart-files.py [--check]
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "charts" / "csi-sidecars"
#: chart directory -> package directory whose *.yaml files it copies.
COPIES = {
    CHART / "files" / "crds": ROOT / "csi_sidecars" / "crds",
    CHART / "files" / "rbac": ROOT / "csi_sidecars" / "playground" / "rbac",
}
_APP_VERSION = re.compile(r"^appVersion: .*$", re.MULTILINE)


def package_version() -> str:
    """``__version__`` of csi_sidecars/__init__.py (read, not imported)."""
    tree = ast.parse((ROOT / "csi_sidecars" / "__init__.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__version__" for t in node.targets
        ):
            value = ast.literal_eval(node.value)
            if isinstance(value, str):
                return value
    raise ValueError("csi_sidecars/__init__.py has no __version__ string")


def wanted_files() -> dict[Path, str]:
    """Every file the chart must hold, with its content."""
    files: dict[Path, str] = {}
    for target, source in COPIES.items():
        for path in sorted(source.glob("*.yaml")):
            files[target / path.name] = path.read_text()
    chart_yaml = (CHART / "Chart.yaml").read_text()
    files[CHART / "Chart.yaml"] = _APP_VERSION.sub(f'appVersion: "{package_version()}"', chart_yaml)
    return files


def stale() -> list[str]:
    """What differs from :func:`wanted_files` (missing, different or extra copies)."""
    problems = []
    wanted = wanted_files()
    for path, text in wanted.items():
        if not path.exists() or path.read_text() != text:
            problems.append(str(path.relative_to(ROOT)))
    for target in COPIES:
        for path in sorted(target.glob("*")):
            if path not in wanted:
                problems.append(f"{path.relative_to(ROOT)} (not in the package)")
    return problems


def main() -> int:
    """Copy (or with --check, verify) the chart's files."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a copy is stale")
    args = parser.parse_args()
    problems = stale()
    if not problems:
        return 0
    if args.check:
        print(
            "sync-chart-files: stale: "
            + ", ".join(problems)
            + "; run python scripts/sync-chart-files.py",
            file=sys.stderr,
        )
        return 1
    for target in COPIES:
        target.mkdir(parents=True, exist_ok=True)
        for path in target.glob("*"):
            path.unlink()
    for path, text in wanted_files().items():
        path.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
