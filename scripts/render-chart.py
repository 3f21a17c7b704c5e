#!/usr/bin/env python3
"""Lint and render the Helm chart for every value set, against the committed renderings.

Each ``tests/unit/chart/cases/<case>.yaml`` is a value set (a first line
``# helm: ARG ...`` adds helm flags, e.g. ``--api-versions``); the chart's examples
(``charts/csi-sidecars/examples/<name>.yaml``) are cases ``example-<name>``. Each is rendered
with ``helm template`` (release ``csi``, namespace ``storage``) and compared with
``tests/unit/chart/rendered/<case>.yaml``. ``--update`` rewrites the renderings (review the diff
before committing it).

usage: python scripts/render-chart.py [--update] [--helm PATH] [CASE ...]
"""

from __future__ import annotations

import argparse
import difflib
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "charts" / "csi-sidecars"
CASES = ROOT / "tests" / "unit" / "chart" / "cases"
RENDERED = ROOT / "tests" / "unit" / "chart" / "rendered"
RELEASE = "csi"
NAMESPACE = "storage"
_HELM_ARGS = "# helm:"


@dataclass(frozen=True)
class Case:
    """One value set."""

    name: str
    values: Path

    @property
    def expected(self) -> Path:
        """The committed rendering."""
        return RENDERED / f"{self.name}.yaml"

    def helm_args(self) -> list[str]:
        """Extra helm flags from the file's first line."""
        first = self.values.read_text().partition("\n")[0]
        return shlex.split(first[len(_HELM_ARGS) :]) if first.startswith(_HELM_ARGS) else []


def cases() -> list[Case]:
    """Every value set, sorted by name."""
    found = [Case(p.stem, p) for p in CASES.glob("*.yaml")]
    found += [Case(f"example-{p.stem}", p) for p in (CHART / "examples").glob("*.yaml")]
    return sorted(found, key=lambda c: c.name)


def default_helm() -> str:
    """``$HELM``, else the testbed's helm (testbed/build.sh helm), else helm on PATH."""
    explicit = os.environ.get("HELM")
    if explicit:
        return explicit
    cache = os.environ.get("CSI_SIDECARS_CACHE") or str(
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "csi-sidecars"
    )
    bin_dir = Path(os.environ.get("CSI_SIDECARS_BIN_DIR") or Path(cache) / "bin")
    built = bin_dir / "helm"
    return str(built) if built.is_file() else "helm"


def _run(argv: list[str]) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=120)
    if proc.returncode:
        raise RuntimeError(f"{shlex.join(argv)} exited {proc.returncode}:\n{proc.stderr}")
    return proc.stdout


def lint(case: Case, helm: str) -> str:
    """``helm lint --strict`` with the case's values; its output.

    Raises:
        RuntimeError: helm lint failed (the message has its output).
    """
    return _run([helm, "lint", "--strict", str(CHART), "-f", str(case.values)])


def render(case: Case, helm: str) -> str:
    """``helm template`` of the case.

    Raises:
        RuntimeError: helm failed (the message has its error).
    """
    return _run(
        [
            helm,
            "template",
            RELEASE,
            str(CHART),
            "--namespace",
            NAMESPACE,
            "-f",
            str(case.values),
            *case.helm_args(),
        ]
    )


def main() -> int:
    """Render every case; compare with (or with --update, rewrite) the committed renderings."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--update", action="store_true", help="rewrite the renderings")
    parser.add_argument("--helm", default=default_helm(), help="the helm binary")
    parser.add_argument("names", nargs="*", help="only these cases")
    args = parser.parse_args()
    selected = [c for c in cases() if not args.names or c.name in args.names]
    failed = 0
    RENDERED.mkdir(parents=True, exist_ok=True)
    for case in selected:
        try:
            lint(case, args.helm)
            text = render(case, args.helm)
        except (RuntimeError, OSError) as err:
            print(f"render-chart: {case.name}: {err}", file=sys.stderr)
            failed += 1
            continue
        if args.update:
            case.expected.write_text(text)
            continue
        have = case.expected.read_text() if case.expected.exists() else ""
        if have != text:
            failed += 1
            diff = difflib.unified_diff(
                have.splitlines(), text.splitlines(), str(case.expected), "rendered", lineterm=""
            )
            print("\n".join(list(diff)[:80]), file=sys.stderr)
    if failed:
        print(
            f"render-chart: {failed} case(s) failed; if the change is intended run "
            "python scripts/render-chart.py --update",
            file=sys.stderr,
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
