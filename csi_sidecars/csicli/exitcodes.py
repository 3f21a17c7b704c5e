"""Exit codes of ``csi-sidecars csi``: one per class of outcome, so scripts can branch on them.

gRPC errors are grouped by what the caller should do next (fix the request, look for the object,
resolve a conflict, give up on an unsupported call, retry later, fix credentials, or suspect the
driver). The table is documented in ``docs/cli.md``; keys are gRPC status code names so this
module needs no gRPC import.
"""

from __future__ import annotations

OK = 0
#: Anything else: an unreadable file, a failed ``check`` step, an unexpected reply.
FAILURE = 1
#: A bad flag, argument or request file (click's own usage errors exit 2 as well).
USAGE = 2
#: The driver socket could not be reached within ``--connect-timeout``.
UNREACHABLE = 3
#: ``--strict`` was given and a reply broke a rule of the CSI spec.
SPEC_VIOLATION = 4
#: INVALID_ARGUMENT, OUT_OF_RANGE: the request must be fixed.
BAD_REQUEST = 10
#: NOT_FOUND.
NOT_FOUND = 11
#: ALREADY_EXISTS, FAILED_PRECONDITION, ABORTED: the object's state conflicts with the call.
CONFLICT = 12
#: UNIMPLEMENTED: the driver does not offer the call.
UNIMPLEMENTED = 13
#: DEADLINE_EXCEEDED, UNAVAILABLE, RESOURCE_EXHAUSTED, CANCELLED: may succeed when retried.
RETRYABLE = 14
#: PERMISSION_DENIED, UNAUTHENTICATED: the secrets are missing or wrong.
DENIED = 15
#: INTERNAL, UNKNOWN, DATA_LOSS and any other code: the driver failed.
DRIVER_ERROR = 16

_BY_CODE = {
    "INVALID_ARGUMENT": BAD_REQUEST,
    "OUT_OF_RANGE": BAD_REQUEST,
    "NOT_FOUND": NOT_FOUND,
    "ALREADY_EXISTS": CONFLICT,
    "FAILED_PRECONDITION": CONFLICT,
    "ABORTED": CONFLICT,
    "UNIMPLEMENTED": UNIMPLEMENTED,
    "DEADLINE_EXCEEDED": RETRYABLE,
    "UNAVAILABLE": RETRYABLE,
    "RESOURCE_EXHAUSTED": RETRYABLE,
    "CANCELLED": RETRYABLE,
    "PERMISSION_DENIED": DENIED,
    "UNAUTHENTICATED": DENIED,
}

#: (exit code, meaning) in order, for ``--help`` and the documentation.
TABLE: tuple[tuple[int, str], ...] = (
    (OK, "success"),
    (FAILURE, "other failure (unreadable file, failed check step)"),
    (USAGE, "bad flag, argument or request file"),
    (UNREACHABLE, "driver not reachable"),
    (SPEC_VIOLATION, "reply violates the CSI spec (only with --strict)"),
    (BAD_REQUEST, "InvalidArgument, OutOfRange"),
    (NOT_FOUND, "NotFound"),
    (CONFLICT, "AlreadyExists, FailedPrecondition, Aborted"),
    (UNIMPLEMENTED, "Unimplemented"),
    (RETRYABLE, "DeadlineExceeded, Unavailable, ResourceExhausted, Canceled"),
    (DENIED, "PermissionDenied, Unauthenticated"),
    (DRIVER_ERROR, "Internal, Unknown, DataLoss, any other code"),
)


def for_grpc_code(name: str) -> int:
    """The exit code for a gRPC status code name such as ``NOT_FOUND`` (``OK`` gives 0)."""
    if name == "OK":
        return OK
    return _BY_CODE.get(name, DRIVER_ERROR)


def help_text() -> str:
    """The exit code table as one paragraph for ``--help``."""
    return "; ".join(f"{code} {meaning}" for code, meaning in TABLE) + "."
