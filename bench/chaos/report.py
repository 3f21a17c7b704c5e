"""The outcome of a run: a table for people, one JSON line for machines, and how to replay it."""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .model import Result


@dataclass
class Outcome:
    """Everything a run reports.

    Attributes:
        seed, target, duration: what was run.
        roles: who played each role (``provisioner(ours) ...``).
        features: the workload features that took part.
        faults: fault kind -> count.
        invariants: name -> result.
        workload: what the workload did (counts).
        settle_seconds: how long the settle window took.
        replay: the command that runs the same seed again.
        work_dir: where the logs are (kept when the run failed).
        history: the faults as they happened (``t+12.3s sigkill: ...``).
        errors: problems of the harness itself (the API server did not answer, ...).
    """

    seed: int
    target: str
    duration: float
    roles: str
    features: list[str]
    faults: dict[str, int]
    invariants: dict[str, Result]
    workload: dict[str, int] = field(default_factory=dict)
    settle_seconds: float = 0.0
    replay: str = ""
    work_dir: str = ""
    history: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def violations(self) -> int:
        """The number of violations over every invariant."""
        return sum(
            r.violations if r.violations else (0 if r.held else 1) for r in self.invariants.values()
        )

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` object."""
        return {
            "seed": self.seed,
            "target": self.target,
            "faults": dict(sorted(self.faults.items())),
            "invariants": {k: v.to_json() for k, v in self.invariants.items()},
            "violations": self.violations,
            "roles": self.roles,
            "duration": self.duration,
            "settle_seconds": round(self.settle_seconds, 1),
            "workload": dict(sorted(self.workload.items())),
            "replay": self.replay,
        }


def replay_command(args: Mapping[str, Any]) -> str:
    """``python bench/chaos.py --seed N ...`` with every option that shapes the run."""
    parts = ["python", "bench/chaos.py"]
    for key, value in args.items():
        if value is None or value is False:
            continue
        flag = "--" + key.replace("_", "-")
        parts += [flag] if value is True else [flag, str(value)]
    return shlex.join(parts)


def _table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()

    return [line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)]


def _detail(result: Result) -> str:
    head = result.note or f"{result.checked} checked"
    if result.violations:
        head = f"{result.violations} of {result.checked}: " + head
    return head


def render(out: Outcome) -> str:
    """The human table: faults, invariants, verdict, replay."""
    lines = [
        f"chaos run: seed {out.seed}, target {out.target}, {out.duration:g}s of chaos, "
        f"settled in {out.settle_seconds:.0f}s",
        f"roles: {out.roles}",
        f"features: {' '.join(out.features)}",
        "workload: " + ", ".join(f"{v} {k}" for k, v in sorted(out.workload.items())),
        "",
    ]
    faults = [(k, str(v)) for k, v in sorted(out.faults.items())]
    faults.append(("total", str(sum(out.faults.values()))))
    lines += _table(faults, ("fault", "count"))
    lines.append("")
    rows = [(name, "yes" if r.held else "NO", _detail(r)) for name, r in out.invariants.items()]
    lines += _table(rows, ("invariant", "held", "detail"))
    for name, r in out.invariants.items():
        if r.examples:
            lines.append(f"  {name}:")
            lines += [f"    - {e}" for e in r.examples]
    if out.errors:
        lines.append("harness errors (the workload could not do everything it planned):")
        lines += [f"    - {e}" for e in out.errors[:10]]
    lines.append("")
    lines.append(f"violations: {out.violations}")
    if out.violations:
        lines.append(f"FAILED. Replay: {out.replay}")
        if out.work_dir:
            lines.append(f"logs kept in {out.work_dir} (faults as injected: faults.txt)")
    else:
        lines.append(f"replay: {out.replay}")
    return "\n".join(lines)


def json_line(out: Outcome) -> str:
    """The last line of ``--json`` output."""
    return json.dumps(out.to_json(), sort_keys=False)
