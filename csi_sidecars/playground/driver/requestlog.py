"""A durable log of the CSI requests the playground driver received, with wall-clock times.

The in-memory call log (:attr:`Driver.calls`) is lost with the process, and a driver run as a
subprocess cannot show it to a test. With ``--request-log FILE`` every call appends two JSON
lines to ``FILE``: one when it arrives and one when it ends (a call the driver never finished,
because it was killed, has only the first). Chaos tests read it to prove, for example, that no
CreateVolume started for a claim after the claim was deleted::

    {"ev": "start", "id": "4242-17", "t": 1718000000.123, "method": "CreateVolume",
     "fields": {"name": "pvc-3f..."}}
    {"ev": "end", "id": "4242-17", "t": 1718000000.623, "code": "OK",
     "result": {"volume_id": "9a2c..."}}

Only identifying fields are written (names, IDs, node IDs, sizes), never parameters, contexts
or secrets. :func:`read_request_log` merges the lines back into one :class:`LoggedCall` each.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

#: Request fields worth recording: they say which object a call is about.
FIELDS = (
    "name",
    "volume_id",
    "source_volume_id",
    "snapshot_id",
    "group_snapshot_id",
    "node_id",
)
#: Reply fields recorded at the end of a call: the IDs the driver handed out.
RESULTS = {
    "volume": "volume_id",
    "snapshot": "snapshot_id",
    "group_snapshot": "group_snapshot_id",
}


def _fields(message: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    descriptor = getattr(message, "DESCRIPTOR", None)
    if descriptor is None:
        return out
    names = {f.name for f in descriptor.fields}
    for name in FIELDS:
        if name in names:
            value = getattr(message, name)
            if value:
                out[name] = str(value)
    if "capacity_range" in names and message.HasField("capacity_range"):
        out["required_bytes"] = int(message.capacity_range.required_bytes)
    return out


def _results(response: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    descriptor = getattr(response, "DESCRIPTOR", None)
    if descriptor is None:
        return out
    names = {f.name for f in descriptor.fields}
    for outer, inner in RESULTS.items():
        if outer in names and response.HasField(outer):
            value = getattr(getattr(response, outer), inner, "")
            if value:
                out[inner] = str(value)
    if "capacity_bytes" in names and response.capacity_bytes:
        out["capacity_bytes"] = int(response.capacity_bytes)
    return out


class RequestLog:
    """Appends call records to one file; each line is flushed as it is written.

    Args:
        path: the log file (created, or appended to by a restarted driver).
        clock: the wall clock (tests pass their own).
    """

    def __init__(self, path: str | os.PathLike[str], clock: Callable[[], float] = time.time):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.clock = clock
        self._file: IO[str] | None = self.path.open("a", encoding="utf-8")
        self._prefix = str(os.getpid())
        self._counter = 0

    def _write(self, doc: Mapping[str, Any]) -> None:
        if self._file is None:
            return
        self._file.write(json.dumps(doc, sort_keys=True) + "\n")
        self._file.flush()

    def started(self, method: str, request: Any) -> str:
        """Record that ``method`` arrived with ``request``; returns the call's ID."""
        self._counter += 1
        call_id = f"{self._prefix}-{self._counter}"
        doc = {"ev": "start", "id": call_id, "t": self.clock(), "method": method}
        doc["fields"] = _fields(request)
        self._write(doc)
        return call_id

    def finished(self, call_id: str, code: str, response: Any = None) -> None:
        """Record the end of call ``call_id`` with status ``code`` (and its reply's IDs)."""
        doc: dict[str, Any] = {"ev": "end", "id": call_id, "t": self.clock(), "code": code}
        if response is not None:
            doc["result"] = _results(response)
        self._write(doc)

    def close(self) -> None:
        """Close the file; later records are dropped."""
        if self._file is not None:
            self._file.close()
            self._file = None


@dataclass
class LoggedCall:
    """One call read back from a request log.

    Attributes:
        id: unique per driver process and call.
        method: the CSI method name.
        started: wall time the call arrived.
        fields: the identifying request fields (see :data:`FIELDS`).
        finished: wall time it ended, or None when the driver never finished it.
        code: the gRPC status name (``OK``, ``DEADLINE_EXCEEDED``, ...), or None.
        result: IDs from the reply (``volume_id``, ``snapshot_id``, ...).
    """

    id: str
    method: str
    started: float
    fields: dict[str, Any] = field(default_factory=dict)
    finished: float | None = None
    code: str | None = None
    result: dict[str, Any] = field(default_factory=dict)


def read_request_log(path: str | os.PathLike[str]) -> list[LoggedCall]:
    """The calls in a request log, in arrival order; a missing file is an empty log.

    A torn last line (the driver was killed while writing it) is skipped.
    """
    calls: dict[str, LoggedCall] = {}
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    for line in text.splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if not isinstance(doc, dict) or "id" not in doc:
            continue
        if doc.get("ev") == "start":
            calls[doc["id"]] = LoggedCall(
                id=doc["id"],
                method=str(doc.get("method", "")),
                started=float(doc.get("t", 0.0)),
                fields=dict(doc.get("fields") or {}),
            )
        elif doc.get("ev") == "end" and doc["id"] in calls:
            call = calls[doc["id"]]
            call.finished = float(doc.get("t", 0.0))
            call.code = str(doc.get("code", ""))
            call.result = dict(doc.get("result") or {})
    return sorted(calls.values(), key=lambda c: c.started)
