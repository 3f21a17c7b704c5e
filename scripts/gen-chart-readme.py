#!/usr/bin/env python3
"""Write the values table of charts/csi-sidecars/README.md from values.yaml and the schema.

Every key of values.yaml is documented by a ``# -- text`` comment right above it (further
``#`` lines continue the text). A documented key whose value is a map is one row (its whole
default shown); an undocumented map is a section and its keys are rows. An undocumented key
that is not a map is an error, so a new value cannot land without its documentation. The type
column comes from values.schema.json. The table replaces what lies between the README's
``<!-- values:start -->`` and ``<!-- values:end -->`` markers.

usage: python scripts/gen-chart-readme.py [--check]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

CHART = Path(__file__).resolve().parent.parent / "charts" / "csi-sidecars"
START = "<!-- values:start -->"
END = "<!-- values:end -->"
_KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_.-]+):(?P<rest>.*)$")
_DOC = re.compile(r"^(?P<indent> *)# -- ?(?P<text>.*)$")
_MORE = re.compile(r"^(?P<indent> *)#(?: (?P<text>.*))?$")


@dataclass(frozen=True)
class Row:
    """One documented value."""

    path: str
    default: Any
    description: str


def _lookup(data: Any, path: list[str]) -> Any:
    for part in path:
        data = data[part]
    return data


def documented_rows(text: str) -> list[Row]:
    """The rows of the values table, in file order.

    Raises:
        ValueError: a value has no ``# --`` description (the message names its path).
    """
    values = yaml.safe_load(text)
    rows: list[Row] = []
    stack: list[tuple[int, str]] = []
    pending: list[str] | None = None
    pending_indent = -1
    skip_below: int | None = None
    for line in text.splitlines():
        if not line.strip():
            pending = None
            continue
        indent = len(line) - len(line.lstrip(" "))
        if skip_below is not None:
            if indent > skip_below:
                continue
            skip_below = None
        doc = _DOC.match(line)
        if doc:
            pending, pending_indent = [doc["text"].strip()], len(doc["indent"])
            continue
        more = _MORE.match(line)
        if more:
            if pending is not None and len(more["indent"]) == pending_indent:
                pending.append((more["text"] or "").strip())
            continue
        key = _KEY.match(line)
        if not key:
            continue
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = [k for _, k in stack] + [key["key"]]
        value = _lookup(values, path)
        described = pending is not None and pending_indent == indent
        description = " ".join(p for p in (pending or []) if p) if described else ""
        pending = None
        if isinstance(value, dict) and value and not described:
            stack.append((indent, key["key"]))
            continue
        if not described:
            raise ValueError(f"values.yaml: {'.'.join(path)} has no '# --' description")
        rows.append(Row(".".join(path), value, description))
        if isinstance(value, dict) and value:
            skip_below = indent
    return rows


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if ref:
        target: Any = schema
        for part in ref.removeprefix("#/").split("/"):
            target = target[part]
        return _resolve(schema, target)
    return node


def schema_type(schema: dict[str, Any], path: str) -> str:
    """The type of ``path`` in the schema, for the table (``string``, ``one of: a, b``, ...).

    Raises:
        KeyError: the schema does not know ``path``.
    """
    node = _resolve(schema, schema)
    for part in path.split("."):
        node = _resolve(schema, node["properties"][part])
    if "enum" in node:
        return "one of: " + ", ".join(json.dumps(v) for v in node["enum"])
    kind = node.get("type", "any")
    return " or ".join(kind) if isinstance(kind, list) else str(kind)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def table(values_text: str, schema: dict[str, Any]) -> str:
    """The Markdown values table."""
    lines = ["| Key | Type | Default | Description |", "|---|---|---|---|"]
    for row in documented_rows(values_text):
        default = json.dumps(row.default, ensure_ascii=False)
        lines.append(
            f"| `{row.path}` | {_cell(schema_type(schema, row.path))} | "
            f"`{_cell(default)}` | {_cell(row.description)} |"
        )
    return "\n".join(lines)


def render(readme: str, values_text: str, schema: dict[str, Any]) -> str:
    """``readme`` with the table between the markers replaced.

    Raises:
        ValueError: the markers are missing.
    """
    head, start, rest = readme.partition(START)
    _, end, tail = rest.partition(END)
    if not start or not end:
        raise ValueError(f"README.md needs the markers {START} and {END}")
    return f"{head}{START}\n{table(values_text, schema)}\n{END}{tail}"


def main() -> int:
    """Write (or with --check, verify) the chart README's values table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if README.md is stale")
    args = parser.parse_args()
    readme_path = CHART / "README.md"
    readme = readme_path.read_text()
    schema = json.loads((CHART / "values.schema.json").read_text())
    try:
        wanted = render(readme, (CHART / "values.yaml").read_text(), schema)
    except (ValueError, KeyError) as err:
        print(f"gen-chart-readme: {err}", file=sys.stderr)
        return 1
    if wanted == readme:
        return 0
    if args.check:
        print(
            "gen-chart-readme: charts/csi-sidecars/README.md is stale; run "
            "python scripts/gen-chart-readme.py",
            file=sys.stderr,
        )
        return 1
    readme_path.write_text(wanted)
    return 0


if __name__ == "__main__":
    sys.exit(main())
