"""Which driver errors are final, and how errors read on contents and in events.

A CreateSnapshot error is *final* when the driver certainly created nothing and is not working
on it; then the being-created annotation can go and a deleted content can finish without a
backend snapshot. Everything else is *transient*: the call may still be running, so it is
repeated, identically, until a final answer.

Go's ``isCSIFinalError`` treats Canceled, DeadlineExceeded, Unavailable, ResourceExhausted,
Aborted and non-gRPC failures as transient. We differ in one place, as external-provisioner
does: ``ResourceExhausted`` ("out of quota or capacity") is final, because the driver refused
the request; Go retries it forever and a content deleted meanwhile can never finish
(external-snapshotter #1434).

Every message we write to ``status.error`` ends with :data:`FINAL` or :data:`TRANSIENT`, so
users and tools can tell "the driver refused" from "still trying" (#346). Errors that are not
the driver's (a missing class or Secret) are final: no call is in flight.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import grpc

from csi_sidecars.controller.actions import Emit, Patch, Plan, Retry
from csi_sidecars.csi.codes import error_code, format_error
from csi_sidecars.kube.objects import name, warning
from csi_sidecars.kube.resources import Resource
from csi_sidecars.snapshotter.objects import status_of
from csi_sidecars.snapshotter.status import error_status_patch, status_body

#: Codes after which a CreateSnapshot may still be running (ResourceExhausted is not one).
TRANSIENT_CODES = frozenset(
    {
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.ABORTED,
    }
)

FINAL = "(final error)"
TRANSIENT = "(transient error)"


def is_final(err: BaseException) -> bool:
    """Whether the driver's answer ``err`` means no operation is in progress.

    A failure that is not a gRPC status (a timeout on our side, a broken connection) is
    transient: the request may have reached the driver.
    """
    code = error_code(err)
    return code is not None and code not in TRANSIENT_CODES


def tag(final: bool) -> str:
    """The suffix of a ``status.error`` message."""
    return FINAL if final else TRANSIENT


def go_quote(text: str) -> str:
    """``text`` quoted as Go's ``%q`` does for the messages the Go sidecar nests."""
    return json.dumps(text, ensure_ascii=False)


def describe(err: BaseException) -> str:
    """A driver error in Go's form (``rpc error: code = Internal desc = ...``)."""
    return format_error(err)


def is_not_found(err: BaseException) -> bool:
    """Whether ``err`` is a gRPC NOT_FOUND."""
    return bool(error_code(err) == grpc.StatusCode.NOT_FOUND)


@dataclass(frozen=True, slots=True)
class Report:
    """How a failure is reported: Go's event reason and message prefix for that path."""

    reason: str
    prefix: str


def failure_plan(
    resource: Resource,
    obj: Mapping[str, Any],
    now: float,
    how: Report,
    detail: str,
    final: bool,
    then: Plan | None = None,
) -> Plan:
    """A Warning event and ``status.error`` for a failure, then ``then`` (default: retry).

    The message is ``<prefix>: <detail> (final error|transient error)``. When the object already
    shows that message, neither the event nor the status write is repeated (Go's rule).
    """
    message = f"{how.prefix}: {detail} {tag(final)}"
    patch = error_status_patch(status_of(obj), message, now)
    report: Plan = ()
    if patch is not None:
        report = (
            Emit(warning(how.reason, message), dict(obj), resource),
            Patch(resource, name(obj), status_body(patch), subresource="status"),
        )
    return (*report, *(then if then is not None else (Retry(message),)))
