"""Final vs transient classification of ControllerPublish/Unpublish errors, VolumeError data."""

from __future__ import annotations

import asyncio
import datetime as dt

import grpc
import pytest

from csi_sidecars.attacher import errors
from tests.unit.attacher.sim import rpc_error

C = grpc.StatusCode
TRANSIENT = {C.CANCELLED, C.DEADLINE_EXCEEDED, C.UNAVAILABLE, C.RESOURCE_EXHAUSTED, C.ABORTED}


@pytest.mark.parametrize("code", [c for c in C if c is not C.OK], ids=lambda c: c.name)
def test_is_final_error_for_every_code(code: grpc.StatusCode):
    err = rpc_error(code)
    assert errors.is_final_error(err) is (code not in TRANSIENT)
    assert errors.error_code_number(err) == code.value[0]


@pytest.mark.parametrize(
    "err", [RuntimeError("socket closed"), TimeoutError(), asyncio.CancelledError()]
)
def test_non_grpc_errors_are_transient_and_have_no_code(err: BaseException):
    assert errors.is_final_error(err) is False
    assert errors.error_code_number(err) is None


def test_error_code_numbers_are_grpc_numbers():
    assert errors.error_code_number(rpc_error(C.NOT_FOUND)) == 5
    assert errors.error_code_number(rpc_error(C.RESOURCE_EXHAUSTED)) == 8
    assert errors.error_code_number(rpc_error(C.FAILED_PRECONDITION)) == 9


def test_error_message_is_go_style():
    err = rpc_error(C.FAILED_PRECONDITION, "volume in use")
    assert errors.error_message(err) == "rpc error: code = FailedPrecondition desc = volume in use"
    assert errors.error_message(RuntimeError("x")) == "x"


def test_volume_error_shape_and_time_format():
    when = dt.datetime(2026, 1, 2, 3, 4, 5, 999999, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert errors.volume_error("m", when, 9) == {
        "message": "m",
        "time": "2026-01-02T01:04:05Z",
        "errorCode": 9,
    }
    assert errors.volume_error("m", when, None)["errorCode"] is None
