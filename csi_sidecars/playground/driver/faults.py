"""Scripted faults for the playground driver: errors, delays, odd replies, not-ready probes.

A :class:`FaultRule` matches calls by method name (``"*"`` for any) and optionally by request
fields; among the matching calls it lets ``after`` pass untouched, then fires ``times`` times
(forever when ``None``). A firing rule can delay the call, fail it with a gRPC code (before the
driver acts, or after it acted, which looks like a lost reply), and patch the reply with a dict
in protobuf JSON form, e.g. ``{"volume": {"volumeId": ""}}`` or ``{"ready": False}``.

In a test, use the driver's :class:`Faults`::

    drv.faults.add("ControllerPublishVolume", code=grpc.StatusCode.UNAVAILABLE, times=3)
    drv.faults.probe_not_ready(times=2)

A driver run as a subprocess reads the same rules from ``--faults-file`` (JSON: a list of rules
or ``{"rules": [...]}``), re-reading it whenever it changes; :func:`write_faults_file` writes
one atomically::

    [{"method": "Probe", "code": "FAILED_PRECONDITION", "times": 3},
     {"method": "CreateVolume", "delay": 0.5, "match": {"name": "pvc-1"}}]
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import grpc

from csi_sidecars.runtime.logging import get_logger

log = get_logger("playground-driver")

BEFORE = "before"
AFTER = "after"

Patch = Mapping[str, Any] | Callable[[Any, Any], Any]


def _code(value: Any) -> grpc.StatusCode | None:
    if value is None or isinstance(value, grpc.StatusCode):
        return value
    if isinstance(value, int):
        for code in grpc.StatusCode:
            if code.value[0] == value:
                return code
    if isinstance(value, str) and value.upper() in grpc.StatusCode.__members__:
        return grpc.StatusCode[value.upper()]
    raise ValueError(f"unknown gRPC status code {value!r}")


def _subset(want: Any, have: Any) -> bool:
    if isinstance(want, Mapping):
        return isinstance(have, Mapping) and all(_subset(v, have.get(k)) for k, v in want.items())
    return bool(want == have)


@dataclass
class FaultRule:
    """One scripted fault; see the module docstring.

    Attributes:
        method: the CSI method name (``"CreateVolume"``) or ``"*"``.
        code: the error to return, or ``None`` for no error.
        message: the error message.
        times: how many matching calls it fires for; ``None`` for every one.
        after: how many matching calls to let through before it starts firing.
        delay: seconds to wait before handling a call it fires for.
        when: ``"before"`` fails without running the driver; ``"after"`` runs it first.
        reply: a protobuf-JSON dict merged into the reply, or ``fn(request, reply)`` returning
            a replacement reply (or ``None`` to keep the one it edited in place).
        match: request fields (proto names, as ``MessageToDict`` writes them) the call must have.
        seen: matching calls so far. fired: calls it fired for.
    """

    method: str
    code: grpc.StatusCode | None = None
    message: str = "injected fault"
    times: int | None = None
    after: int = 0
    delay: float = 0.0
    when: str = BEFORE
    reply: Patch | None = None
    match: Mapping[str, Any] | None = None
    seen: int = 0
    fired: int = 0

    def exhausted(self) -> bool:
        """Whether the rule has fired all the times it was meant to."""
        return self.times is not None and self.fired >= self.times

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FaultRule:
        """Build a rule from its JSON form (``code`` as a name such as ``"UNAVAILABLE"`` or a
        number).

        Raises:
            ValueError: for unknown keys, codes or ``when`` values.
        """
        known = {"method", "code", "message", "times", "after", "delay", "when", "reply", "match"}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fault rule keys {sorted(unknown)}")
        if "method" not in data:
            raise ValueError("a fault rule needs a method")
        rule = cls(
            method=str(data["method"]),
            code=_code(data.get("code")),
            message=str(data.get("message", "injected fault")),
            times=data.get("times"),
            after=int(data.get("after", 0)),
            delay=float(data.get("delay", 0.0)),
            when=str(data.get("when", BEFORE)),
            reply=data.get("reply"),
            match=data.get("match"),
        )
        if rule.when not in (BEFORE, AFTER):
            raise ValueError(f"when must be {BEFORE!r} or {AFTER!r}, not {rule.when!r}")
        return rule


@dataclass
class Decision:
    """What the fired rules ask of one call."""

    delay: float = 0.0
    error: FaultRule | None = None
    patches: list[Patch] = field(default_factory=list)

    def error_before(self) -> FaultRule | None:
        """The rule whose error replaces the call, if any."""
        return self.error if self.error is not None and self.error.when == BEFORE else None

    def error_after(self) -> FaultRule | None:
        """The rule whose error replaces the reply after the driver acted, if any."""
        return self.error if self.error is not None and self.error.when == AFTER else None


class Faults:
    """The fault rules of one driver: added in-process, or read from a JSON file."""

    def __init__(self, path: str | None = None) -> None:
        self.rules: list[FaultRule] = []
        self.path = path
        self.file_rules: list[FaultRule] = []
        self._signature: tuple[int, int, int] | None = None

    def add(
        self,
        method: str,
        *,
        code: grpc.StatusCode | None = None,
        message: str = "injected fault",
        times: int | None = None,
        after: int = 0,
        delay: float = 0.0,
        when: str = BEFORE,
        reply: Patch | None = None,
        match: Mapping[str, Any] | None = None,
    ) -> FaultRule:
        """Add a rule (see :class:`FaultRule` for the arguments) and return it."""
        if when not in (BEFORE, AFTER):
            raise ValueError(f"when must be {BEFORE!r} or {AFTER!r}")
        rule = FaultRule(method, code, message, times, after, delay, when, reply, match)
        self.rules.append(rule)
        return rule

    def probe_not_ready(self, times: int | None = None) -> FaultRule:
        """Make Probe answer ``ready: false`` for ``times`` calls (forever when ``None``)."""
        return self.add("Probe", reply={"ready": False}, times=times)

    def probe_error(
        self, code: grpc.StatusCode = grpc.StatusCode.FAILED_PRECONDITION, times: int | None = None
    ) -> FaultRule:
        """Make Probe fail with ``code`` for ``times`` calls (forever when ``None``)."""
        return self.add("Probe", code=code, message="driver is not healthy", times=times)

    def delay(self, method: str, seconds: float, times: int | None = None) -> FaultRule:
        """Delay calls of ``method`` by ``seconds``."""
        return self.add(method, delay=seconds, times=times)

    def remove(self, rule: FaultRule) -> None:
        """Drop one in-process rule."""
        self.rules.remove(rule)

    def clear(self) -> None:
        """Drop every in-process rule."""
        self.rules.clear()

    def refresh(self) -> None:
        """Re-read the faults file when it changed (modification time, size or inode).

        A missing file means no file rules; an unreadable or invalid one is logged and the
        previous rules stay. Re-reading resets the counters of the file's rules.
        """
        if self.path is None:
            return
        try:
            st = os.stat(self.path)
            signature: tuple[int, int, int] | None = (st.st_mtime_ns, st.st_size, st.st_ino)
        except FileNotFoundError:
            signature = None
        if signature == self._signature:
            return
        self._signature = signature
        if signature is None:
            self.file_rules = []
            return
        try:
            with open(self.path, encoding="utf-8") as f:
                doc = json.load(f)
            items = doc.get("rules", []) if isinstance(doc, dict) else doc
            self.file_rules = [FaultRule.from_json(item) for item in items]
        except (OSError, ValueError, TypeError, AttributeError) as err:
            log.error("Ignoring invalid faults file", path=self.path, error=str(err))
            return
        log.info("Loaded fault rules", path=self.path, count=len(self.file_rules))

    def decide(self, method: str, request_fields: Callable[[], Mapping[str, Any]]) -> Decision:
        """Count the call against every matching rule and say what the fired rules want.

        ``request_fields`` is called (at most once) only when a rule matches on fields.
        Delays add up; the first firing rule with a code gives the error; every firing rule
        with a reply contributes a patch, in order.
        """
        decision = Decision()
        fields: Mapping[str, Any] | None = None
        for rule in [*self.rules, *self.file_rules]:
            if rule.method not in ("*", method) or rule.exhausted():
                continue
            if rule.match:
                if fields is None:
                    fields = request_fields()
                if not _subset(rule.match, fields):
                    continue
            rule.seen += 1
            if rule.seen <= rule.after:
                continue
            rule.fired += 1
            decision.delay += rule.delay
            if rule.code is not None and decision.error is None:
                decision.error = rule
            if rule.reply is not None:
                decision.patches.append(rule.reply)
        return decision


def write_faults_file(path: str | os.PathLike[str], rules: list[Mapping[str, Any]]) -> None:
    """Write ``rules`` (JSON-form :class:`FaultRule` dicts) to ``path`` for a driver process.

    The file is replaced atomically (new inode), so the driver sees the change on its next call
    even when two writes fall within the file system's timestamp granularity.

    Raises:
        ValueError: when a rule is invalid (checked before anything is written).
    """
    for rule in rules:
        FaultRule.from_json(rule)
    target = os.fspath(path)
    tmp = f"{target}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump({"rules": list(rules)}, f)
    os.replace(tmp, target)
