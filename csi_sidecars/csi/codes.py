"""gRPC status codes spelled the way the Go sidecars spell them.

Python names codes ``DEADLINE_EXCEEDED``; Go (and so every existing dashboard, alert and log query
built on the Go sidecars) says ``DeadlineExceeded``. The metric label ``grpc_status_code``, error
strings such as ``rpc error: code = Unavailable desc = ...`` and event messages all use the Go
spelling, so every role converts through this module.
"""

from __future__ import annotations

import asyncio

import grpc

from csi_sidecars.csi.lean.status import GO_NAMES

#: Label value for an error that did not come from gRPC (csi-lib-utils' ``unknown-non-grpc``).
UNKNOWN_NON_GRPC = "unknown-non-grpc"

#: grpcio's codes -> their Go names, from the one table in :mod:`csi_sidecars.csi.lean.status`.
GO_CODE_NAMES: dict[grpc.StatusCode, str] = {
    code: GO_NAMES[code.value[0]] for code in grpc.StatusCode if code.value[0] < len(GO_NAMES)
}


#: Go's text for an expired context, which Go sidecars put in error messages and bodies.
GO_DEADLINE = "context deadline exceeded"
_PY_DEADLINE = "Deadline Exceeded"


def go_code_name(code: grpc.StatusCode) -> str:
    """The Go name of a gRPC status code, e.g. ``DEADLINE_EXCEEDED`` -> ``DeadlineExceeded``."""
    return GO_CODE_NAMES.get(code, f"Code({code.value[0]})")


def error_code(err: BaseException | None) -> grpc.StatusCode | None:
    """The gRPC status code carried by ``err``.

    Returns:
        ``OK`` for no error; the error's code for a gRPC error; ``CANCELLED`` for
        :class:`asyncio.CancelledError` (as Go reports a cancelled context); None for any other
        exception.
    """
    if err is None:
        return grpc.StatusCode.OK
    if isinstance(err, grpc.RpcError):
        code_fn = getattr(err, "code", None)
        if callable(code_fn):
            code = code_fn()
            if isinstance(code, grpc.StatusCode):
                return code
        return None
    if isinstance(err, asyncio.CancelledError):
        return grpc.StatusCode.CANCELLED
    return None


def status_label(err: BaseException | None) -> str:
    """The ``grpc_status_code`` metric label for the outcome of a call.

    ``OK`` when ``err`` is None, the Go code name for gRPC errors, ``unknown-non-grpc`` otherwise.
    """
    code = error_code(err)
    return UNKNOWN_NON_GRPC if code is None else go_code_name(code)


def is_grpc_code(err: BaseException, *codes: grpc.StatusCode) -> bool:
    """Whether ``err`` is a gRPC error with one of ``codes``."""
    return isinstance(err, grpc.RpcError) and error_code(err) in codes


def format_error(err: BaseException) -> str:
    """Render an error as Go does: ``rpc error: code = NotFound desc = no such volume``.

    A deadline that ran out on our side reads ``context deadline exceeded``, as Go's context
    error does (grpc's own text is ``Deadline Exceeded``). Other non-gRPC errors render as
    ``str(err)`` (or the class name when that is empty).
    """
    if isinstance(err, grpc.RpcError):
        code = error_code(err)
        details_fn = getattr(err, "details", None)
        details = details_fn() if callable(details_fn) else None
        if code == grpc.StatusCode.DEADLINE_EXCEEDED and details in (None, "", _PY_DEADLINE):
            details = GO_DEADLINE
        if code is not None:
            return f"rpc error: code = {go_code_name(code)} desc = {details or ''}"
    if isinstance(err, TimeoutError) and not str(err):
        return GO_DEADLINE
    return str(err) or type(err).__name__
