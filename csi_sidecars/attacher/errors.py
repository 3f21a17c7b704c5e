"""Classification of ControllerPublish/Unpublish errors, and the VolumeError they become.

A *final* error means the operation failed and is certainly not in progress in the driver; a
*transient* one (timeout, cancellation, connection trouble, ``ABORTED`` "operation pending") means
the driver may still be working on it, so the identical request must be repeated. As in the Go
attacher, both are retried with exponential back-off; the class is reported in logs and events.

Go rule (``isFinalError``): not a gRPC error -> transient; ``Canceled``, ``DeadlineExceeded``,
``Unavailable``, ``ResourceExhausted``, ``Aborted`` -> transient; every other code -> final.
"""

from __future__ import annotations

import datetime as dt

import grpc

from csi_sidecars.attacher import names
from csi_sidecars.csi.codes import error_code, format_error
from csi_sidecars.kube.objects import JsonDict

#: Codes after which the operation may still be in progress in the driver.
TRANSIENT_CODES: frozenset[grpc.StatusCode] = frozenset(
    {
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
    }
)


def grpc_code(err: BaseException) -> grpc.StatusCode | None:
    """The status code of a gRPC error; None for anything that is not a gRPC error."""
    if not isinstance(err, grpc.RpcError):
        return None
    return error_code(err)


def is_final_code(code: grpc.StatusCode | None) -> bool:
    """Whether an error with this gRPC code (None = not a gRPC error) is final."""
    return code is not None and code not in TRANSIENT_CODES


def is_final_error(err: BaseException) -> bool:
    """Whether ``err`` from ControllerPublish/Unpublish is final (see module docstring)."""
    return is_final_code(grpc_code(err))


def error_code_number(err: BaseException) -> int | None:
    """The numeric gRPC code for ``VolumeError.errorCode`` (e.g. 5 for NOT_FOUND), else None."""
    code = grpc_code(err)
    return None if code is None else int(code.value[0])


def error_message(err: BaseException) -> str:
    """The error text Go would store: ``rpc error: code = Internal desc = ...`` for gRPC."""
    return format_error(err)


def format_time(now: dt.datetime) -> str:
    """A ``metav1.Time`` value: RFC 3339 in UTC with second precision."""
    if now.tzinfo is not None:
        now = now.astimezone(dt.UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%SZ")


def volume_error(message: str, now: dt.datetime, code: int | None) -> JsonDict:
    """A ``VolumeError`` as written by a merge patch.

    ``errorCode`` is always present: None deletes a code left over from an earlier error.
    """
    return {
        names.ERROR_MESSAGE: message,
        names.ERROR_TIME: format_time(now),
        names.ERROR_CODE: code,
    }
