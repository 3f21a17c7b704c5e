"""gRPC status codes and call errors without grpcio, spelled as the Go sidecars spell them.

The lean stack (:mod:`csi_sidecars.csi.lean`) must not import ``grpc``: its C core alone costs the
node roles about 9 MiB and 0.05 s. This module holds the code numbers of the gRPC spec, their Go
names (``DeadlineExceeded``, as in metric labels and error texts) and :class:`RpcError`, whose
``str()`` is Go's ``rpc error: code = <Code> desc = <message>``. ``csi.codes`` builds its grpcio
table from the same names, so both stacks print identical texts.
"""

from __future__ import annotations

#: Go names of the gRPC status codes, indexed by code number (google.golang.org/grpc/codes).
GO_NAMES: tuple[str, ...] = (
    "OK",
    "Canceled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
)

OK = 0
CANCELLED = 1
UNKNOWN = 2
DEADLINE_EXCEEDED = 4
UNIMPLEMENTED = 12
UNAVAILABLE = 14

#: Go's text for an expired context, in error texts and bodies of the Go sidecars.
GO_DEADLINE = "context deadline exceeded"
#: Go's text for a call whose connection closed before the answer (grpc-go transport).
GO_EOF = "error reading from server: EOF"


def go_name(code: int) -> str:
    """The Go name of a status code number: ``4`` -> ``DeadlineExceeded``."""
    return GO_NAMES[code] if 0 <= code < len(GO_NAMES) else f"Code({code})"


class RpcError(Exception):
    """A unary call that ended with a non-OK status.

    Attributes:
        code: the status code number.
        details: the status message.
    """

    def __init__(self, code: int, details: str) -> None:
        """Record the status of the failed call."""
        super().__init__(code, details)
        self.code = code
        self.details = details

    @property
    def code_name(self) -> str:
        """The Go name of :attr:`code`, the ``grpc_status_code`` metric label."""
        return go_name(self.code)

    def __str__(self) -> str:
        """Go's rendering: ``rpc error: code = NotFound desc = no such volume``."""
        return f"rpc error: code = {self.code_name} desc = {self.details}"
