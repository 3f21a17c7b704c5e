"""Text and JSON output of a :class:`~csi_sidecars.doctor.report.Report`.

Text is for a person at a terminal: per object a headline, the one-sentence diagnosis, the next
step and the evidence under it; then a one-line tally and the notes. JSON is
:meth:`Report.to_dict`, indented and with sorted keys so that two runs diff cleanly.
"""

from __future__ import annotations

import json
import textwrap

from csi_sidecars.doctor.report import Finding, Report, Severity

_MARK = {"ok": "ok  ", "info": "info", "warn": "warn", "fail": "FAIL"}
_WIDTH = 100


def _wrap(text: str, indent: str, width: int = _WIDTH) -> list[str]:
    return textwrap.wrap(
        text,
        width=width,
        initial_indent=indent,
        subsequent_indent=indent + "  ",
        break_long_words=False,
        break_on_hyphens=False,
    ) or [indent]


def render_finding(finding: Finding) -> list[str]:
    """The text lines of one finding."""
    head = f"{finding.object}: {finding.severity.value.upper()}"
    if finding.severity is not Severity.OK:
        head += f" ({finding.code})"
    lines = [head, *_wrap(finding.summary, "  ")]
    if finding.next_step:
        lines += _wrap("Next: " + finding.next_step, "  ")
    if finding.evidence:
        width = max(len(e.check) for e in finding.evidence)
        for item in finding.evidence:
            prefix = f"    {_MARK[item.status.value]}  {item.check.ljust(width)}  "
            wrapped = textwrap.wrap(
                item.message,
                width=max(40, _WIDTH - len(prefix)),
                break_long_words=False,
                break_on_hyphens=False,
            ) or [""]
            lines.append(prefix + wrapped[0])
            lines += [" " * len(prefix) + rest for rest in wrapped[1:]]
    return lines


def render_text(report: Report) -> str:
    """The human-readable report."""
    blocks = ["\n".join(render_finding(f)) for f in report.findings]
    kind = report.scope.get("kind", "Cluster")
    if not report.findings and kind == "Cluster":
        where = (
            f" in namespace {report.scope['namespace']}" if report.scope.get("namespace") else ""
        )
        blocks.append(f"Nothing is stuck{where}.")
    tally = (
        f"Checked {report.checked} object{'s' if report.checked != 1 else ''}: "
        f"{report.problems} problem{'s' if report.problems != 1 else ''}, "
        f"{report.warnings} warning{'s' if report.warnings != 1 else ''}."
    )
    tail = [tally, *(f"Note: {n}" for n in report.notes)]
    return "\n\n".join(blocks) + "\n\n" + "\n".join(tail) + "\n"


def render_json(report: Report) -> str:
    """The ``-o json`` document."""
    return json.dumps(report.to_dict(), indent=2, sort_keys=True) + "\n"
