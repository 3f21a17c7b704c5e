"""How the resizer reads a driver error: final or not, infeasible or not, in use or not.

The classes are Go's (``util.IsFinalError`` / ``util.IsInfeasibleError``): a call that was
cancelled, timed out, hit an unavailable or exhausted driver, or was aborted may still be running
in the driver, so it is *not final* and the same request is repeated; any other gRPC error means
the operation is certainly not in progress. A deadline our own client enforced
(:class:`TimeoutError`) counts as ``DeadlineExceeded``. An error that is not from gRPC at all
(a Secret that could not be read) is not final either.

Ours on top: ``Unimplemented`` is *terminal* (external-resizer #95): the same request is never
sent again; only a change of the claim (a new size or class) tries again.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc

from csi_sidecars.csi.codes import error_code, format_error, go_code_name

NOT_FINAL = frozenset(
    {
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
    }
)
INFEASIBLE = frozenset(
    {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.OUT_OF_RANGE, grpc.StatusCode.NOT_FOUND}
)


@dataclass(frozen=True, slots=True)
class DriverError:
    """One failed CSI call, classified.

    Attributes:
        code: the gRPC code (None for an error that is not from gRPC).
        text: Go's rendering (``rpc error: code = X desc = Y``).
        details: the gRPC message alone.
    """

    code: grpc.StatusCode | None
    text: str
    details: str = ""

    @property
    def final(self) -> bool:
        """The operation is certainly not running in the driver."""
        return self.code is not None and self.code not in NOT_FINAL

    @property
    def infeasible(self) -> bool:
        """InvalidArgument, OutOfRange or NotFound: the request cannot succeed as it is."""
        return self.code in INFEASIBLE

    @property
    def in_use(self) -> bool:
        """FailedPrecondition from ControllerExpandVolume: the driver expands offline only."""
        return self.code is grpc.StatusCode.FAILED_PRECONDITION

    @property
    def unimplemented(self) -> bool:
        """The driver does not implement the call."""
        return self.code is grpc.StatusCode.UNIMPLEMENTED

    @property
    def code_name(self) -> str:
        """Go's name of the code (``DeadlineExceeded``); ``Unknown`` for non-gRPC errors."""
        return go_code_name(self.code) if self.code is not None else "Unknown"


def classify(err: BaseException) -> DriverError:
    """Classify an exception a CSI call raised."""
    code = error_code(err)
    if code is None and isinstance(err, TimeoutError):
        code = grpc.StatusCode.DEADLINE_EXCEEDED
    details = ""
    if isinstance(err, grpc.RpcError):
        fn = getattr(err, "details", None)
        details = str(fn() or "") if callable(fn) else ""
    text = format_error(err)
    if code == grpc.StatusCode.DEADLINE_EXCEEDED and not isinstance(err, grpc.RpcError):
        text = f"rpc error: code = DeadlineExceeded desc = {text}"
    if code == grpc.StatusCode.DEADLINE_EXCEEDED and details in ("", "Deadline Exceeded"):
        details = "context deadline exceeded"
    return DriverError(code, text, details)


def not_grpc(message: str) -> DriverError:
    """An error that happened before any CSI call (not final)."""
    return DriverError(None, message, message)
