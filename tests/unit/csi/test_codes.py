"""Go spelling of gRPC status codes."""

from __future__ import annotations

import asyncio

import grpc
import grpc.aio
import pytest

from csi_sidecars.csi import codes


def _rpc_error(code: grpc.StatusCode, details: str = "boom") -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details=details)


GO_NAMES = [
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
]


def test_every_code_has_its_go_name_in_code_order() -> None:
    by_number = sorted(grpc.StatusCode, key=lambda c: c.value[0])
    assert [codes.go_code_name(c) for c in by_number] == GO_NAMES


@pytest.mark.parametrize(
    ("err", "label"),
    [
        (None, "OK"),
        (_rpc_error(grpc.StatusCode.DEADLINE_EXCEEDED), "DeadlineExceeded"),
        (_rpc_error(grpc.StatusCode.FAILED_PRECONDITION), "FailedPrecondition"),
        (asyncio.CancelledError(), "Canceled"),
        (ValueError("x"), "unknown-non-grpc"),
        (OSError("x"), "unknown-non-grpc"),
    ],
)
def test_status_label(err: BaseException | None, label: str) -> None:
    assert codes.status_label(err) == label


def test_format_error_like_go() -> None:
    err = _rpc_error(grpc.StatusCode.NOT_FOUND, "no such volume")
    assert codes.format_error(err) == "rpc error: code = NotFound desc = no such volume"
    assert codes.format_error(ValueError("bad")) == "bad"
    assert codes.format_error(TimeoutError()) == "context deadline exceeded"
    # grpc's own client-side deadline text reads as Go's context error.
    deadline = _rpc_error(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")
    assert codes.format_error(deadline) == (
        "rpc error: code = DeadlineExceeded desc = context deadline exceeded"
    )
    driver_said = _rpc_error(grpc.StatusCode.DEADLINE_EXCEEDED, "backend slow")
    assert codes.format_error(driver_said).endswith("desc = backend slow")


def test_is_grpc_code() -> None:
    err = _rpc_error(grpc.StatusCode.ABORTED)
    assert codes.is_grpc_code(err, grpc.StatusCode.ABORTED, grpc.StatusCode.INTERNAL)
    assert not codes.is_grpc_code(err, grpc.StatusCode.INTERNAL)
    assert not codes.is_grpc_code(ValueError(), grpc.StatusCode.ABORTED)
