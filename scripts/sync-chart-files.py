#!/usr/bin/env python3
"""Copy what the Helm chart ships from the package, and keep its appVersion equal to the package's.

The chart cannot read files outside its directory, so it carries copies:
``charts/csi-sidecars/files/crds/`` of ``csi_sidecars/crds/*.yaml`` (the snapshot CRDs) and
``charts/csi-sidecars/files/rbac/`` of ``csi_sidecars/playground/rbac/*.yaml`` (the rules each
role uses). ``appVersion`` in Chart.yaml is ``csi_sidecars.__version__``.

The image's name and the source URL have one place too, pyproject.toml (``[tool.csi-sidecars]
image`` and ``[project.urls] Source``): they are written into values.yaml (``image.registry``
and ``image.repository``), Chart.yaml (``sources``) and the Containerfile (``SOURCE_URL``).

usage: python scripts/sync-chart-files.py [--check]
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "charts" / "csi-sidecars"
#: chart directory -> package directory whose *.yaml files it copies.
COPIES = {
    CHART / "files" / "crds": ROOT / "csi_sidecars" / "crds",
    CHART / "files" / "rbac": ROOT / "csi_sidecars" / "playground" / "rbac",
}
_APP_VERSION = re.compile(r"^appVersion: .*$", re.MULTILINE)
_SOURCES = re.compile(r"^sources:\n  - .*$", re.MULTILINE)
_SOURCE_URL = re.compile(r"^ARG SOURCE_URL=.*$", re.MULTILINE)
#: values.yaml's top-level image block, up to its repository line.
_IMAGE_BLOCK = re.compile(
    r"^(image:\n(?:[ ]+#.*\n)*[ ]+registry: )(.*)\n((?:[ ]+#.*\n)*[ ]+repository: )(.*)$",
    re.MULTILINE,
)


def project_metadata(pyproject: str | None = None) -> tuple[str, str]:
    """``(image, source URL)`` from pyproject.toml (or its text): the image's name, no tag.

    Raises:
        ValueError: either is missing, or the image has no registry part or has a tag.
    """
    doc = tomllib.loads(pyproject or (ROOT / "pyproject.toml").read_text())
    image = doc.get("tool", {}).get("csi-sidecars", {}).get("image")
    source = doc.get("project", {}).get("urls", {}).get("Source")
    if not isinstance(image, str) or "/" not in image or ":" in image.rsplit("/", 1)[-1]:
        raise ValueError("pyproject.toml: [tool.csi-sidecars] image must be REGISTRY/PATH")
    if not isinstance(source, str) or not source:
        raise ValueError("pyproject.toml: [project.urls] Source is missing")
    return image, source


def _sub_once(pattern: re.Pattern[str], repl: str, text: str, where: str) -> str:
    new, count = pattern.subn(lambda _: repl, text)
    if count != 1:
        raise ValueError(f"{where}: expected one match of {pattern.pattern!r}, found {count}")
    return new


def with_image(values: str, image: str) -> str:
    """values.yaml with ``image.registry``/``image.repository`` set from ``image``."""
    registry, _, repository = image.partition("/")
    found = _IMAGE_BLOCK.search(values)
    if found is None:
        raise ValueError("values.yaml: no top-level image: block with registry and repository")
    block = f"{found[1]}{registry}\n{found[3]}{repository}"
    return values[: found.start()] + block + values[found.end() :]


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
    image, source_url = project_metadata()
    chart_yaml = (CHART / "Chart.yaml").read_text()
    chart_yaml = _APP_VERSION.sub(f'appVersion: "{package_version()}"', chart_yaml)
    files[CHART / "Chart.yaml"] = _sub_once(
        _SOURCES, f"sources:\n  - {source_url}", chart_yaml, "Chart.yaml"
    )
    files[CHART / "values.yaml"] = with_image((CHART / "values.yaml").read_text(), image)
    containerfile = (ROOT / "Containerfile").read_text()
    files[ROOT / "Containerfile"] = _sub_once(
        _SOURCE_URL, f"ARG SOURCE_URL={source_url}", containerfile, "Containerfile"
    )
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
