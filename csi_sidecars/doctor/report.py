"""What doctor found: one :class:`Finding` per object, with its evidence, in a :class:`Report`.

A finding says in one sentence what is wrong (``summary``) and what to do next (``next_step``),
with a stable machine-readable ``code`` and the evidence a person would look at, in the order
they would look. :meth:`Report.to_dict` is the ``-o json`` shape (``schemaVersion`` 1): keys are
only ever added, never renamed.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

SCHEMA_VERSION = 1


class Severity(enum.StrEnum):
    """How bad a finding is; the exit code is 1 when any finding is a problem."""

    OK = "ok"
    WARNING = "warning"
    PROBLEM = "problem"


class Status(enum.StrEnum):
    """The outcome of one piece of evidence."""

    OK = "ok"
    INFO = "info"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True)
class Evidence:
    """One thing doctor looked at: ``check`` names it, ``message`` says what it saw."""

    status: Status
    check: str
    message: str

    def to_dict(self) -> dict[str, str]:
        """The JSON form."""
        return {"status": str(self.status), "check": self.check, "message": self.message}


def ok(check: str, message: str) -> Evidence:
    """Evidence that something is as it should be."""
    return Evidence(Status.OK, check, message)


def info(check: str, message: str) -> Evidence:
    """Neutral evidence (context, events, what could not be seen)."""
    return Evidence(Status.INFO, check, message)


def warn(check: str, message: str) -> Evidence:
    """Evidence of something odd that does not by itself block the object."""
    return Evidence(Status.WARN, check, message)


def fail(check: str, message: str) -> Evidence:
    """Evidence of what blocks the object."""
    return Evidence(Status.FAIL, check, message)


@dataclass(frozen=True)
class ObjectRef:
    """The object a finding is about (``namespace`` is "" for cluster-scoped kinds)."""

    kind: str
    name: str
    namespace: str = ""

    def __str__(self) -> str:
        return (
            f"{self.kind} {self.namespace}/{self.name}"
            if self.namespace
            else (f"{self.kind} {self.name}")
        )

    def to_dict(self) -> dict[str, str]:
        """The JSON form (``namespace`` only for namespaced objects)."""
        out = {"kind": self.kind, "name": self.name}
        if self.namespace:
            out["namespace"] = self.namespace
        return out


@dataclass(frozen=True)
class Finding:
    """The diagnosis of one object.

    Attributes:
        object: what it is about.
        severity: ok, warning or problem.
        code: a stable CamelCase reason (``NoProvisioner``, ``StorageClassNotFound``, ...).
        summary: what is wrong (or that all is well), one sentence.
        next_step: what to do next, one sentence ("" when nothing is to be done).
        evidence: what doctor looked at, in order.
    """

    object: ObjectRef
    severity: Severity
    code: str
    summary: str
    next_step: str = ""
    evidence: tuple[Evidence, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "object": self.object.to_dict(),
            "severity": str(self.severity),
            "code": self.code,
            "summary": self.summary,
            "nextStep": self.next_step,
            "evidence": [e.to_dict() for e in self.evidence],
        }


@dataclass(frozen=True)
class Report:
    """Everything one doctor run found.

    Attributes:
        scope: what was examined: ``{"kind": "Cluster"}``, or the object asked about, plus
            ``namespace`` when the run was limited to one.
        findings: one per object that is not healthy (a scan), or the one object asked about.
        checked: how many objects were examined.
        notes: things doctor could not read or check, and why.
    """

    scope: dict[str, str]
    findings: tuple[Finding, ...] = ()
    checked: int = 0
    notes: tuple[str, ...] = field(default=())

    @property
    def problems(self) -> int:
        """Findings of severity problem."""
        return sum(1 for f in self.findings if f.severity is Severity.PROBLEM)

    @property
    def warnings(self) -> int:
        """Findings of severity warning."""
        return sum(1 for f in self.findings if f.severity is Severity.WARNING)

    @property
    def healthy(self) -> bool:
        """No problem found."""
        return self.problems == 0

    def exit_code(self) -> int:
        """0 when healthy, 1 when a problem was found."""
        return 0 if self.healthy else 1

    def to_dict(self) -> dict[str, Any]:
        """The ``-o json`` document."""
        return {
            "schemaVersion": SCHEMA_VERSION,
            "healthy": self.healthy,
            "scope": dict(self.scope),
            "summary": {
                "checked": self.checked,
                "problems": self.problems,
                "warnings": self.warnings,
            },
            "findings": [f.to_dict() for f in self.findings],
            "notes": list(self.notes),
        }


def worst(evidence: Iterable[Evidence]) -> Status:
    """The worst status among ``evidence`` (OK for none)."""
    order = [Status.OK, Status.INFO, Status.WARN, Status.FAIL]
    return max((e.status for e in evidence), key=order.index, default=Status.OK)
