"""Output formats of ``csi-sidecars csi``: JSON, YAML and aligned tables.

``-o json`` (the default when standard output is not a terminal) prints the reply as indented
JSON; ``-o yaml`` as YAML; ``-o table`` (the default on a terminal) as one or more aligned
tables chosen per reply type (see :mod:`csi_sidecars.csicli.tables`). Streams print one item per
message as it arrives: a compact JSON line, a YAML document, or table rows.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

FORMATS = ("json", "yaml", "table")


@dataclass
class Table:
    """One table: optional title line, column headers and rows of cell text."""

    headers: Sequence[str]
    rows: Sequence[Sequence[str]] = ()
    title: str = ""


TableFn = Callable[[Any], list[Table]]


def choose_format(requested: str | None, stream: TextIO) -> str:
    """The format to use: the requested one, else table on a terminal and JSON otherwise."""
    if requested:
        return requested
    isatty = getattr(stream, "isatty", None)
    return "table" if callable(isatty) and isatty() else "json"


def dump_json(data: Any, compact: bool = False) -> str:
    """JSON text, indented (or on one line with ``compact``), non-ASCII kept."""
    if compact:
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=str)
    return json.dumps(data, ensure_ascii=False, indent=2, default=str)


def dump_yaml(data: Any) -> str:
    """Block-style YAML text, keys in reply order."""
    import yaml  # type: ignore[import-untyped]

    text = yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True)
    return str(text).rstrip("\n")


def format_tables(tables: Sequence[Table]) -> str:
    """Aligned text of ``tables``, separated by blank lines; a table without rows is skipped
    unless it has a title."""
    blocks: list[str] = []
    for table in tables:
        lines: list[str] = []
        if table.title:
            lines.append(table.title)
        if table.rows:
            cells = [list(table.headers), *[list(r) for r in table.rows]]
            widths = [max(len(row[i]) for row in cells) for i in range(len(table.headers))]
            for row in cells:
                text = "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True))
                lines.append(text.rstrip())
        if lines:
            blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def render(data: Any, fmt: str, tables: TableFn) -> str:
    """``data`` in ``fmt`` (``json``, ``yaml`` or ``table``)."""
    if fmt == "json":
        return dump_json(data)
    if fmt == "yaml":
        return dump_yaml(data)
    return format_tables(tables(data))


class StreamPrinter:
    """Prints the messages of a stream as they arrive, in one of the :data:`FORMATS`."""

    def __init__(
        self,
        out: TextIO,
        fmt: str,
        header: Callable[[Any], str],
        columns: Sequence[str],
        rows: Callable[[Any], list[Sequence[str]]],
    ) -> None:
        """Args: the stream, the format, the table preface built from the first message, the
        table's columns and the rows of one message."""
        self.out = out
        self.fmt = fmt
        self._header = header
        self._columns = columns
        self._rows = rows
        self._count = 0
        self._widths = [max(len(c), 12) for c in columns]

    def message(self, data: Any) -> None:
        """Print one stream message."""
        first = self._count == 0
        self._count += 1
        if self.fmt == "json":
            self.out.write(dump_json(data, compact=True) + "\n")
        elif self.fmt == "yaml":
            self.out.write("---\n" + dump_yaml(data) + "\n")
        else:
            if first:
                self.out.write(self._header(data) + "\n")
                self._line(self._columns)
            for row in self._rows(data):
                self._line(row)
        self.out.flush()

    def _line(self, cells: Sequence[str]) -> None:
        text = "  ".join(c.ljust(w) for c, w in zip(cells, self._widths, strict=True))
        self.out.write(text.rstrip() + "\n")
